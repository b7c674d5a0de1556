//! ServiceAccounts (`v1`).

use jiff::Timestamp;
use serde_json::Value;

use super::{Kind, KindStrategy, TypedVersion};
use crate::printers::*;
use crate::{
    printers::{age_col, col, name_col, Printer},
    resources::{res, ResourceInfo},
};

/// `v1` ServiceAccounts.
pub static V1: ResourceInfo = ResourceInfo {
    short_names: &["sa"],
    subresources: &[crate::resources::Subresource::Token],
    ..res(
        "",
        "v1",
        "ServiceAccount",
        "serviceaccounts",
        "serviceaccount",
        true,
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
        Some(TypedVersion::of::<k8s_openapi::api::core::v1::ServiceAccount>())
    }

    fn printer(&self) -> Option<Printer> {
        Some(Printer::new(
            vec![
                name_col(),
                col("Secrets", "string", "Number of secrets the account lists."),
                age_col(),
            ],
            service_account_cells,
        ))
    }
}

fn service_account_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    vec![name(obj), list(obj, "/secrets").len().into(), age(obj, now)]
}
