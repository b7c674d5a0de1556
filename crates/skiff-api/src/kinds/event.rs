//! Events (`v1` core): the event printer and its field selectors.

use super::{Kind, KindStrategy, TypedVersion};
use crate::{
    printers::{self, Printer},
    resources::{res, ResourceInfo},
};

/// `v1` Events.
pub static V1: ResourceInfo = ResourceInfo {
    short_names: &["ev"],
    ..res("", "v1", "Event", "events", "event", true)
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
        Some(TypedVersion::of::<k8s_openapi::api::core::v1::Event>())
    }

    fn printer(&self) -> Option<Printer> {
        Some(Printer::new(
            printers::event_columns(),
            printers::event_cells,
        ))
    }

    fn field_selectors(&self) -> Option<&'static [&'static str]> {
        Some(&[
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "involvedObject.apiVersion",
            "involvedObject.resourceVersion",
            "involvedObject.fieldPath",
            "reason",
            "reportingComponent",
            "source",
            "type",
            "metadata.namespace",
            "metadata.name",
        ])
    }
}
