//! RoleBindings (`rbac.authorization.k8s.io/v1`): grant a Role or ClusterRole to subjects within
//! one namespace.

use jiff::Timestamp;
use serde_json::{Map, Value};

use super::{Kind, KindStrategy, NameRule, TypedVersion};
use crate::errors::FieldError;
use crate::printers::*;
use crate::rbac;
use crate::{
    printers::{age_col, col, name_col, Printer},
    resources::{res, ResourceInfo},
};

/// `rbac.authorization.k8s.io/v1` RoleBindings.
pub static V1: ResourceInfo = res(
    rbac::GROUP,
    "v1",
    "RoleBinding",
    "rolebindings",
    "rolebinding",
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
        Some(TypedVersion::of::<k8s_openapi::api::rbac::v1::RoleBinding>())
    }

    fn apply_defaults(&self, _version: &str, root: &mut Map<String, Value>) {
        rbac::default_binding(root);
    }

    fn name_rule(&self) -> NameRule {
        NameRule::PathSegment
    }

    fn validate(&self, obj: &Value, errs: &mut Vec<FieldError>) {
        rbac::validate_binding(obj, true, &["Role", "ClusterRole"], errs);
    }

    fn validate_update(&self, new: &Value, old: &Value, errs: &mut Vec<FieldError>) {
        self.validate(new, errs);
        rbac::validate_role_ref_unchanged(new, old, errs);
    }

    fn printer(&self) -> Option<Printer> {
        Some(binding_printer())
    }
}

/// The columns Kubernetes prints for RoleBindings and ClusterRoleBindings.
pub(crate) fn binding_printer() -> Printer {
    Printer::new(
        vec![
            name_col(),
            col("Role", "string", "The kind and name of the role granted."),
            age_col(),
            wide("Users", "string", "Users in the roleBinding"),
            wide("Groups", "string", "Groups in the roleBinding"),
            wide(
                "ServiceAccounts",
                "string",
                "ServiceAccounts in the roleBinding",
            ),
        ],
        binding_cells,
    )
}

fn binding_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    let [users, groups, accounts] = rbac::subject_cells(obj);
    vec![
        name(obj),
        rbac::role_cell(obj),
        age(obj, now),
        users,
        groups,
        accounts,
    ]
}
