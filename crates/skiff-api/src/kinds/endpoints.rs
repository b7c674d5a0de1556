//! Endpoints (`v1`, deprecated in favour of EndpointSlices).

use serde_json::{Map, Value};

use super::{Kind, KindStrategy, TypedVersion};
use crate::{
    defaults,
    errors::FieldError,
    printers::{self, age_col, col, name_col, Printer},
    resources::{res, ResourceInfo},
    validation,
};

/// `v1` Endpoints.
pub static V1: ResourceInfo = ResourceInfo {
    short_names: &["ep"],
    ..res("", "v1", "Endpoints", "endpoints", "endpoints", true)
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
        Some(TypedVersion::of::<k8s_openapi::api::core::v1::Endpoints>())
    }

    fn apply_defaults(&self, _version: &str, root: &mut Map<String, Value>) {
        defaults::default_endpoints(root);
    }

    fn validate(&self, obj: &Value, errs: &mut Vec<FieldError>) {
        validation::validate_endpoints(obj, errs);
    }

    fn printer(&self) -> Option<Printer> {
        Some(Printer::new(
            vec![
                name_col(),
                col(
                    "Endpoints",
                    "string",
                    "The first addresses and ports the endpoints hold.",
                ),
                age_col(),
            ],
            printers::endpoints_cells,
        ))
    }

    fn deprecation_warning(&self, version: &str) -> Option<&'static str> {
        (version == "v1").then_some(
            "v1 Endpoints is deprecated in v1.33+; use discovery.k8s.io/v1 EndpointSlice",
        )
    }
}
