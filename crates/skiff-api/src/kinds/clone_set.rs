//! OpenKruise CloneSets (`apps.kruise.io/v1alpha1`).

use serde_json::{Map, Value};

use super::{Kind, KindStrategy, TypedVersion};
use crate::{
    defaults,
    errors::FieldError,
    printers::{self, Printer},
    resources::{
        res, ResourceInfo,
        Subresource::{Scale, Status},
    },
    validation,
};

/// `apps.kruise.io/v1alpha1` CloneSets.
pub static V1ALPHA1: ResourceInfo = ResourceInfo {
    short_names: &["clone"],
    categories: &["all"],
    subresources: &[Status, Scale],
    has_generation: true,
    ..res(
        "apps.kruise.io",
        "v1alpha1",
        "CloneSet",
        "clonesets",
        "cloneset",
        true,
    )
};

/// The kind's entry in the kind table.
pub static KIND: Kind = Kind {
    versions: &[&V1ALPHA1],
    strategy: &Strategy,
};

/// The kind's behaviour.
pub struct Strategy;

impl KindStrategy for Strategy {
    fn typed(&self, _version: &str) -> Option<TypedVersion> {
        Some(TypedVersion::of::<crate::cloneset::CloneSet>())
    }

    fn is_custom_resource(&self) -> bool {
        true
    }

    fn apply_defaults(&self, _version: &str, root: &mut Map<String, Value>) {
        defaults::default_clone_set(root);
    }

    fn validate(&self, obj: &Value, errs: &mut Vec<FieldError>) {
        validation::validate_clone_set_spec(validation::field(obj, "spec"), errs);
    }

    fn validate_update(&self, new: &Value, old: &Value, errs: &mut Vec<FieldError>) {
        validation::validate_clone_set_update(new, old, errs);
        self.validate(new, errs);
    }

    fn printer(&self) -> Option<Printer> {
        Some(Printer::new(
            printers::clone_set_columns(),
            printers::clone_set_cells,
        ))
    }

    fn field_selectors(&self) -> Option<&'static [&'static str]> {
        Some(&["metadata.name", "metadata.namespace"])
    }
}
