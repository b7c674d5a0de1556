//! ControllerRevisions (`apps/v1`): a non-negative revision and immutable data.

use jiff::Timestamp;
use serde_json::Value;

use super::{Kind, KindStrategy, TypedVersion};
use crate::errors::FieldErrorType;
use crate::printers::*;
use crate::validation::*;
use crate::{
    errors::FieldError,
    printers::{age_col, col, name_col, Printer},
    resources::{res, ResourceInfo},
    validation,
};

/// `apps/v1` ControllerRevisions.
pub static V1: ResourceInfo = res(
    "apps",
    "v1",
    "ControllerRevision",
    "controllerrevisions",
    "controllerrevision",
    true,
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
        Some(TypedVersion::of::<
            k8s_openapi::api::apps::v1::ControllerRevision,
        >())
    }

    fn validate(&self, obj: &Value, errs: &mut Vec<FieldError>) {
        validation::nonnegative(obj.get("revision"), "revision", errs);
    }

    fn validate_update(&self, new: &Value, old: &Value, errs: &mut Vec<FieldError>) {
        self.validate(new, errs);
        immutable_revision_data(new, old, errs);
    }

    fn printer(&self) -> Option<Printer> {
        Some(Printer::new(
            vec![
                name_col(),
                col(
                    "Controller",
                    "string",
                    "The object that controls this revision.",
                ),
                col(
                    "Revision",
                    "string",
                    "The revision number of the stored state.",
                ),
                age_col(),
            ],
            controller_revision_cells,
        ))
    }
}

/// The update rule of ControllerRevisions: `data` never changes once written.
fn immutable_revision_data(new: &Value, old: &Value, errs: &mut Vec<FieldError>) {
    if new.get("data") != old.get("data") {
        errs.push(FieldError {
            error_type: FieldErrorType::Invalid,
            field: "data".to_string(),
            bad_value: Some(go_struct_json(new.get("data"))),
            detail: IMMUTABLE.to_string(),
        });
    }
}

fn controller_revision_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    let controller = list(obj, "/metadata/ownerReferences")
        .iter()
        .find(|r| r.get("controller").and_then(Value::as_bool) == Some(true))
        .map(|r| {
            let group = text(r, "/apiVersion")
                .split_once('/')
                .map(|(g, _)| g)
                .unwrap_or("");
            let kind = text(r, "/kind");
            let group_kind = if group.is_empty() {
                kind.to_string()
            } else {
                format!("{kind}.{group}")
            };
            let owner = text(r, "/name");
            if group_kind.is_empty() {
                owner.to_string()
            } else {
                format!("{}/{owner}", group_kind.to_lowercase())
            }
        })
        .unwrap_or_else(|| "<none>".to_string());
    vec![
        name(obj),
        controller.into(),
        int(obj, "/revision", 0).into(),
        age(obj, now),
    ]
}
