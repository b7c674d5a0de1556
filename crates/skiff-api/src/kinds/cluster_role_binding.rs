//! ClusterRoleBindings (`rbac.authorization.k8s.io/v1`): grant a ClusterRole to subjects across
//! the whole cluster.

use serde_json::{Map, Value};

use super::{Kind, KindStrategy, NameRule, TypedVersion};
use crate::errors::FieldError;
use crate::printers::Printer;
use crate::rbac;
use crate::resources::{res, ResourceInfo};

/// `rbac.authorization.k8s.io/v1` ClusterRoleBindings.
pub static V1: ResourceInfo = res(
    rbac::GROUP,
    "v1",
    "ClusterRoleBinding",
    "clusterrolebindings",
    "clusterrolebinding",
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
        Some(TypedVersion::of::<
            k8s_openapi::api::rbac::v1::ClusterRoleBinding,
        >())
    }

    fn apply_defaults(&self, _version: &str, root: &mut Map<String, Value>) {
        rbac::default_binding(root);
    }

    fn name_rule(&self) -> NameRule {
        NameRule::PathSegment
    }

    fn validate(&self, obj: &Value, errs: &mut Vec<FieldError>) {
        rbac::validate_binding(obj, false, &["ClusterRole"], errs);
    }

    fn validate_update(&self, new: &Value, old: &Value, errs: &mut Vec<FieldError>) {
        self.validate(new, errs);
        rbac::validate_role_ref_unchanged(new, old, errs);
    }

    fn printer(&self) -> Option<Printer> {
        Some(super::role_binding::binding_printer())
    }
}
