//! EndpointSlices (`discovery.k8s.io/v1`).

use serde_json::{Map, Value};

use super::{Kind, KindStrategy, TypedVersion};
use crate::{
    defaults,
    errors::FieldError,
    printers::{self, age_col, col, name_col, Printer},
    resources::{res, ResourceInfo},
    validation,
};

/// `discovery.k8s.io/v1` EndpointSlices.
pub static V1: ResourceInfo = res(
    "discovery.k8s.io",
    "v1",
    "EndpointSlice",
    "endpointslices",
    "endpointslice",
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
            k8s_openapi::api::discovery::v1::EndpointSlice,
        >())
    }

    fn apply_defaults(&self, _version: &str, root: &mut Map<String, Value>) {
        defaults::default_endpoint_slice(root);
    }

    fn validate(&self, obj: &Value, errs: &mut Vec<FieldError>) {
        validation::validate_endpoint_slice(obj, errs);
    }

    fn printer(&self) -> Option<Printer> {
        Some(Printer::new(
            vec![
                name_col(),
                col(
                    "AddressType",
                    "string",
                    "The type of address carried by this EndpointSlice.",
                ),
                col(
                    "Ports",
                    "string",
                    "The network ports exposed by each endpoint in this slice.",
                ),
                col("Endpoints", "string", "The unique endpoints in this slice."),
                age_col(),
            ],
            printers::endpoint_slice_cells,
        ))
    }
}
