//! Secrets (`v1`): the `Opaque` default, type-specific keys, and immutability.

use serde_json::{Map, Value};

use super::{Kind, KindStrategy, RegistryHook, TypedVersion};
use crate::{
    defaults,
    errors::FieldError,
    printers::{self, age_col, col, name_col, Printer},
    resources::{res, ResourceInfo},
    validation,
};

/// `v1` Secrets.
pub static V1: ResourceInfo = res("", "v1", "Secret", "secrets", "secret", true);

/// The kind's entry in the kind table.
pub static KIND: Kind = Kind {
    versions: &[&V1],
    strategy: &Strategy,
};

/// The kind's behaviour.
pub struct Strategy;

impl KindStrategy for Strategy {
    fn typed(&self, _version: &str) -> Option<TypedVersion> {
        Some(TypedVersion::of::<k8s_openapi::api::core::v1::Secret>())
    }

    fn apply_defaults(&self, _version: &str, root: &mut Map<String, Value>) {
        defaults::default_str(root, "type", "Opaque");
    }

    fn validate(&self, obj: &Value, errs: &mut Vec<FieldError>) {
        validation::validate_secret(obj, errs);
    }

    fn validate_update(&self, new: &Value, old: &Value, errs: &mut Vec<FieldError>) {
        validation::immutable_secret_type(new, old, errs);
        validation::validate_immutable_data(new, old, errs);
        self.validate(new, errs);
    }

    fn printer(&self) -> Option<Printer> {
        Some(Printer::new(
            vec![
                name_col(),
                col("Type", "string", "The type of the secret."),
                col("Data", "string", "Number of entries in data."),
                age_col(),
            ],
            printers::secret_cells,
        ))
    }

    fn registry_hook(&self) -> RegistryHook {
        RegistryHook::Secret
    }

    fn field_selectors(&self) -> Option<&'static [&'static str]> {
        Some(&["type", "metadata.namespace", "metadata.name"])
    }
}
