//! Services (`v1`): DNS-1035 names, service defaults and validation, and address allocation.

use serde_json::{Map, Value};

use super::{Kind, KindStrategy, NameRule, RegistryHook, TypedVersion};
use crate::{
    defaults,
    errors::FieldError,
    printers::{self, Printer},
    resources::{res, ResourceInfo, Subresource::Status},
    validation,
};

/// `v1` Services.
pub static V1: ResourceInfo = ResourceInfo {
    short_names: &["svc"],
    categories: &["all"],
    subresources: &[Status],
    ..res("", "v1", "Service", "services", "service", true)
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
        Some(TypedVersion::of::<k8s_openapi::api::core::v1::Service>())
    }

    fn apply_defaults(&self, _version: &str, root: &mut Map<String, Value>) {
        defaults::default_service(root);
    }

    fn name_rule(&self) -> NameRule {
        NameRule::Dns1035Label
    }

    fn validate(&self, obj: &Value, errs: &mut Vec<FieldError>) {
        validation::validate_service(obj, errs);
    }

    fn validate_update(&self, new: &Value, old: &Value, errs: &mut Vec<FieldError>) {
        self.validate(new, errs);
        validation::validate_service_update(new, old, errs);
    }

    fn printer(&self) -> Option<Printer> {
        Some(Printer::new(
            printers::service_columns(),
            printers::service_cells,
        ))
    }

    fn field_selectors(&self) -> Option<&'static [&'static str]> {
        Some(&[
            "metadata.namespace",
            "metadata.name",
            "spec.clusterIP",
            "spec.type",
        ])
    }

    fn registry_hook(&self) -> RegistryHook {
        RegistryHook::Service
    }
}
