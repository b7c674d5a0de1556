//! ClusterRoles (`rbac.authorization.k8s.io/v1`): cluster-wide sets of policy rules, possibly
//! aggregated from other ClusterRoles by label selectors.

use serde_json::Value;

use super::{Kind, KindStrategy, NameRule, TypedVersion};
use crate::errors::FieldError;
use crate::rbac;
use crate::resources::{res, ResourceInfo};

/// `rbac.authorization.k8s.io/v1` ClusterRoles.
pub static V1: ResourceInfo = res(
    rbac::GROUP,
    "v1",
    "ClusterRole",
    "clusterroles",
    "clusterrole",
    false,
);

/// The kind's entry in the kind table.
pub static KIND: Kind = Kind {
    versions: &[&V1],
    strategy: &Strategy,
};

/// The kind's behaviour. Kubernetes prints ClusterRoles with the generic `Name` and
/// `Created At`.
pub struct Strategy;

impl KindStrategy for Strategy {
    fn typed(&self, _version: &str) -> Option<TypedVersion> {
        Some(TypedVersion::of::<k8s_openapi::api::rbac::v1::ClusterRole>())
    }

    fn name_rule(&self) -> NameRule {
        NameRule::PathSegment
    }

    fn validate(&self, obj: &Value, errs: &mut Vec<FieldError>) {
        rbac::validate_rules(obj, false, errs);
        rbac::validate_aggregation_rule(obj, errs);
    }
}
