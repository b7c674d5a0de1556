//! RuntimeClasses (`node.k8s.io/v1`): named container runtime configurations a pod selects
//! with `runtimeClassName`. Stored and validated.

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

/// `node.k8s.io/v1` RuntimeClasses.
pub static V1: ResourceInfo = res(
    "node.k8s.io",
    "v1",
    "RuntimeClass",
    "runtimeclasses",
    "runtimeclass",
    false,
);

/// The kind's entry in the kind table.
pub static KIND: Kind = Kind {
    versions: &[&V1],
    strategy: &Strategy,
};

/// The kind's behaviour.
pub struct Strategy;

impl KindStrategy for Strategy {
    fn typed(&self, _version: &str) -> Option<TypedVersion> {
        Some(TypedVersion::of::<k8s_openapi::api::node::v1::RuntimeClass>())
    }

    fn validate(&self, obj: &Value, errs: &mut Vec<FieldError>) {
        let handler = field(obj, "handler");
        match handler.as_str() {
            None | Some("") => errs.push(FieldError::required("handler", "")),
            Some(h) => {
                for message in dns1123_label_errors(h) {
                    errs.push(FieldError::invalid("handler", handler, message));
                }
            }
        }
    }

    fn validate_update(&self, new: &Value, old: &Value, errs: &mut Vec<FieldError>) {
        self.validate(new, errs);
        if field(new, "handler") != field(old, "handler") {
            errs.push(FieldError::invalid(
                "handler",
                field(new, "handler"),
                "field is immutable",
            ));
        }
    }

    fn printer(&self) -> Option<Printer> {
        Some(Printer::new(
            vec![
                name_col(),
                col(
                    "Handler",
                    "string",
                    "Handler specifies the underlying runtime and configuration that the CRI implementation will use to handle pods of this class.",
                ),
                age_col(),
            ],
            runtime_class_cells,
        ))
    }
}

fn runtime_class_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    vec![name(obj), text(obj, "/handler").into(), age(obj, now)]
}
