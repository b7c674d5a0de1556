//! Leases (`coordination.k8s.io/v1`).

use jiff::Timestamp;
use serde_json::Value;

use super::{Kind, KindStrategy, TypedVersion};
use crate::printers::*;
use crate::{
    printers::{age_col, col, name_col, Printer},
    resources::{res, ResourceInfo},
};

/// `coordination.k8s.io/v1` Leases.
pub static V1: ResourceInfo = res(
    "coordination.k8s.io",
    "v1",
    "Lease",
    "leases",
    "lease",
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
        Some(TypedVersion::of::<k8s_openapi::api::coordination::v1::Lease>())
    }

    fn printer(&self) -> Option<Printer> {
        Some(Printer::new(
            vec![
                name_col(),
                col(
                    "Holder",
                    "string",
                    "The identity of the current lease holder.",
                ),
                age_col(),
            ],
            lease_cells,
        ))
    }
}

fn lease_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    vec![
        name(obj),
        text(obj, "/spec/holderIdentity").into(),
        age(obj, now),
    ]
}
