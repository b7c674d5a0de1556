//! CustomResourceDefinitions (`apiextensions.k8s.io/v1`): the kind that adds kinds. What a
//! definition means for the resources it serves lives in `crate::crd`.

use serde_json::{Map, Value};

use super::{Kind, KindStrategy, TypedVersion};
use crate::errors::FieldError;
use crate::resources::{res, ResourceInfo, Subresource::Status};

/// `apiextensions.k8s.io/v1` CustomResourceDefinitions.
pub static V1: ResourceInfo = ResourceInfo {
    short_names: &["crd", "crds"],
    categories: &["api-extensions"],
    subresources: &[Status],
    has_generation: true,
    ..res(
        "apiextensions.k8s.io",
        "v1",
        "CustomResourceDefinition",
        "customresourcedefinitions",
        "customresourcedefinition",
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
            k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
        >())
    }

    fn apply_defaults(&self, _version: &str, root: &mut Map<String, Value>) {
        crate::crd::apply_definition_defaults(root);
    }

    fn validate(&self, obj: &Value, errs: &mut Vec<FieldError>) {
        crate::crd::validate_definition(obj, errs);
    }

    fn validate_update(&self, new: &Value, old: &Value, errs: &mut Vec<FieldError>) {
        crate::crd::validate_definition_update(new, old, errs);
    }

    fn deletion_finalizer(&self) -> Option<&'static str> {
        Some(crate::crd::CLEANUP_FINALIZER)
    }
}
