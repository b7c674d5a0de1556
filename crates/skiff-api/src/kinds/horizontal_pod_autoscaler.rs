//! HorizontalPodAutoscalers (`autoscaling/v2`, stored, and `autoscaling/v1`).

use serde_json::{Map, Value};

use super::{Kind, KindStrategy, TypedVersion};
use crate::{
    defaults,
    errors::FieldError,
    printers::{self, Printer},
    resources::{res, ResourceInfo, Subresource::Status},
    validation,
};

/// `autoscaling/v2` HorizontalPodAutoscalers, the preferred and storage version.
pub static V2: ResourceInfo = ResourceInfo {
    short_names: &["hpa"],
    categories: &["all"],
    subresources: &[Status],
    has_generation: true,
    ..res(
        "autoscaling",
        "v2",
        "HorizontalPodAutoscaler",
        "horizontalpodautoscalers",
        "horizontalpodautoscaler",
        true,
    )
};

/// `autoscaling/v1` HorizontalPodAutoscalers, converted to v2 for storage.
pub static V1: ResourceInfo = ResourceInfo {
    short_names: &["hpa"],
    categories: &["all"],
    subresources: &[Status],
    has_generation: true,
    storage_version: "v2",
    ..res(
        "autoscaling",
        "v1",
        "HorizontalPodAutoscaler",
        "horizontalpodautoscalers",
        "horizontalpodautoscaler",
        true,
    )
};

/// The kind's entry in the kind table.
pub static KIND: Kind = Kind {
    versions: &[&V2, &V1],
    strategy: &Strategy,
};

/// The kind's behaviour.
pub struct Strategy;

impl KindStrategy for Strategy {
    fn typed(&self, version: &str) -> Option<TypedVersion> {
        use k8s_openapi::api::autoscaling::{v1, v2};
        Some(match version {
            "v1" => TypedVersion::of::<v1::HorizontalPodAutoscaler>(),
            _ => TypedVersion::of::<v2::HorizontalPodAutoscaler>(),
        })
    }

    fn apply_defaults(&self, version: &str, root: &mut Map<String, Value>) {
        match version {
            "v1" => defaults::default_hpa_v1(root),
            _ => defaults::default_hpa_v2(root),
        }
    }

    fn validate(&self, obj: &Value, errs: &mut Vec<FieldError>) {
        validation::validate_hpa_spec(validation::field(obj, "spec"), errs);
    }

    fn printer(&self) -> Option<Printer> {
        Some(Printer::new(printers::hpa_columns(), printers::hpa_cells))
    }
}
