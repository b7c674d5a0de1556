//! Events (`v1` core): the event printer and its field selectors.

use jiff::Timestamp;
use serde_json::{json, Map, Value};

use super::{Kind, KindStrategy, TypedVersion};
use crate::printers::*;
use crate::wire::{object_at, or_insert};
use crate::{
    printers::Printer,
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
    fn fill_never_omitted(&self, _version: &str, root: &mut Map<String, Value>) {
        fill_event(root);
    }

    fn typed(&self, _version: &str) -> Option<TypedVersion> {
        Some(TypedVersion::of::<k8s_openapi::api::core::v1::Event>())
    }

    fn printer(&self) -> Option<Printer> {
        Some(Printer::new(event_columns(), event_cells))
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

pub(crate) fn event_columns() -> Vec<Column> {
    vec![
        col("Last Seen", "string", "When the event was last observed."),
        col("Type", "string", "Normal or Warning."),
        col("Reason", "string", "Why the event happened, in CamelCase."),
        col("Object", "string", "The object the event is about."),
        wide(
            "Subobject",
            "string",
            "The part of the object the event is about.",
        ),
        wide("Source", "string", "The component that reported the event."),
        col("Message", "string", "What happened, for humans."),
        wide("First Seen", "string", "When the event was first observed."),
        wide("Count", "string", "How many times the event happened."),
        Column {
            priority: 1,
            ..name_col()
        },
    ]
}

fn first_non_empty<'a>(a: &'a str, b: &'a str) -> &'a str {
    if a.is_empty() {
        b
    } else {
        a
    }
}

pub(crate) fn event_cells(ev: &Value, now: Timestamp) -> Vec<Value> {
    let first_seen = match timestamp(ev, "/firstTimestamp") {
        Some(ts) => since(Some(ts), now),
        None => since(timestamp(ev, "/eventTime"), now),
    };
    let mut last_seen = match timestamp(ev, "/lastTimestamp") {
        Some(ts) => since(Some(ts), now),
        None => first_seen.clone(),
    };
    let mut count = int(ev, "/count", 0);
    if ev.get("series").is_some_and(|s| !s.is_null()) {
        last_seen = since(timestamp(ev, "/series/lastObservedTime"), now);
        count = int(ev, "/series/count", 0);
    } else if count == 0 {
        // Events written through events.k8s.io leave count unset for singletons.
        count = 1;
    }
    let kind = text(ev, "/involvedObject/kind").to_lowercase();
    let involved_name = text(ev, "/involvedObject/name");
    let target = if involved_name.is_empty() {
        kind
    } else {
        format!("{kind}/{involved_name}")
    };
    let component = first_non_empty(
        text(ev, "/source/component"),
        text(ev, "/reportingComponent"),
    );
    let instance = first_non_empty(text(ev, "/source/host"), text(ev, "/reportingInstance"));
    let source = if instance.is_empty() {
        component.to_string()
    } else {
        format!("{component}, {instance}")
    };
    vec![
        last_seen.into(),
        text(ev, "/type").into(),
        text(ev, "/reason").into(),
        target.into(),
        text(ev, "/involvedObject/fieldPath").into(),
        source.into(),
        text(ev, "/message").trim().into(),
        first_seen.into(),
        count.into(),
        name(ev),
    ]
}

/// A core/v1 Event: the timestamps of both event APIs, the reporting fields and `source`.
pub(crate) fn fill_event(root: &mut Map<String, Value>) {
    for key in ["eventTime", "firstTimestamp", "lastTimestamp"] {
        or_insert(root, key, Value::Null);
    }
    for key in ["reportingComponent", "reportingInstance"] {
        or_insert(root, key, json!(""));
    }
    object_at(root, "source");
    object_at(root, "involvedObject");
}
