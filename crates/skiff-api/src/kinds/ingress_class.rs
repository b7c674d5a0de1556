//! IngressClasses (`networking.k8s.io/v1`): which controller implements an Ingress. Stored
//! and validated.

use jiff::Timestamp;
use serde_json::Value;

use super::{Kind, KindStrategy, TypedVersion};
use crate::printers::*;
use crate::validation::*;
use crate::{
    errors::FieldError,
    printers::Printer,
    resources::{res, ResourceInfo},
};

/// `networking.k8s.io/v1` IngressClasses.
pub static V1: ResourceInfo = ResourceInfo {
    has_generation: true,
    ..res(
        "networking.k8s.io",
        "v1",
        "IngressClass",
        "ingressclasses",
        "ingressclass",
        false,
    )
};

/// The kind's entry in the kind table.
pub static KIND: Kind = Kind {
    versions: &[&V1],
    strategy: &Strategy,
};

/// The kind's behaviour.
pub struct Strategy;

impl KindStrategy for Strategy {
    fn typed(&self, _version: &str) -> Option<TypedVersion> {
        Some(TypedVersion::of::<
            k8s_openapi::api::networking::v1::IngressClass,
        >())
    }

    fn validate(&self, obj: &Value, errs: &mut Vec<FieldError>) {
        let spec = field(obj, "spec");
        let controller = field(spec, "controller");
        match controller.as_str() {
            None | Some("") => errs.push(FieldError::required("spec.controller", "")),
            Some(c) if c.len() > 250 => errs.push(too_many("spec.controller", c.len(), 250)),
            Some(c) => {
                // A domain-prefixed path such as `example.com/ingress-controller`.
                let domain = c.split_once('/').map(|(d, _)| d);
                if domain.is_none_or(|d| !matches_dns_subdomain(d)) {
                    errs.push(FieldError::invalid(
                        "spec.controller",
                        controller,
                        "must be a domain-prefixed path (such as \"acme.io/foo\")",
                    ));
                }
            }
        }
    }

    fn validate_update(&self, new: &Value, old: &Value, errs: &mut Vec<FieldError>) {
        self.validate(new, errs);
        let (n, o) = (
            field(field(new, "spec"), "controller"),
            field(field(old, "spec"), "controller"),
        );
        if n != o {
            errs.push(FieldError::invalid(
                "spec.controller",
                n,
                "field is immutable",
            ));
        }
    }

    fn printer(&self) -> Option<Printer> {
        Some(Printer::new(
            vec![
                name_col(),
                col(
                    "Controller",
                    "string",
                    "Controller that is responsible for handling this class",
                ),
                col(
                    "Parameters",
                    "string",
                    "A reference to a resource with additional parameters",
                ),
                age_col(),
            ],
            class_cells,
        ))
    }
}

fn class_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    let parameters = match obj.pointer("/spec/parameters") {
        Some(p) if p.is_object() => {
            let mut kind = text(p, "/kind").to_string();
            if let Some(group) = p.get("apiGroup").and_then(Value::as_str) {
                kind = format!("{kind}.{group}");
            }
            format!("{kind}/{}", text(p, "/name"))
        }
        _ => "<none>".to_string(),
    };
    vec![
        name(obj),
        text(obj, "/spec/controller").into(),
        parameters.into(),
        age(obj, now),
    ]
}
