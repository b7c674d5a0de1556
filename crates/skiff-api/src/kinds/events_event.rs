//! Events as `events.k8s.io/v1` serves them: the same stored objects as core `v1` Events, in the
//! newer shape (`note`, `regarding`, `reportingController`, the `deprecated*` fields), so an
//! event written through one group is read through the other, as in Kubernetes.
//!
//! The two shapes differ only in names; [`from_core`] and [`to_core`] rename the fields both
//! ways and leave every value as it is.

use jiff::Timestamp;
use serde_json::{json, Map, Value};

use super::{Kind, KindStrategy, TypedVersion};
use crate::errors::FieldError;
use crate::printers::Printer;
use crate::resources::{res, ResourceInfo};
use crate::wire::{object_at, or_insert};

/// `events.k8s.io/v1` Events, stored as core `v1` Events.
pub static V1: ResourceInfo = ResourceInfo {
    short_names: &["ev"],
    storage_group: Some(""),
    ..res("events.k8s.io", "v1", "Event", "events", "event", true)
};

/// The kind's entry in the kind table.
pub static KIND: Kind = Kind {
    versions: &[&V1],
    strategy: &Strategy,
};

/// The API version of this shape.
pub const API_VERSION: &str = "events.k8s.io/v1";

/// Core field name and `events.k8s.io/v1` field name of every field the shapes name
/// differently; all other fields (`eventTime`, `series`, `reportingInstance`, `action`,
/// `reason`, `related`, `type`, `metadata`) keep their names.
pub const RENAMED_FIELDS: &[(&str, &str)] = &[
    ("involvedObject", "regarding"),
    ("message", "note"),
    ("source", "deprecatedSource"),
    ("reportingComponent", "reportingController"),
    ("firstTimestamp", "deprecatedFirstTimestamp"),
    ("lastTimestamp", "deprecatedLastTimestamp"),
    ("count", "deprecatedCount"),
];

/// `events.k8s.io/v1` fields Go omits when empty (`omitempty` on a string, number or pointer).
const OMITTED_WHEN_EMPTY: &[&str] = &[
    "reportingController",
    "reportingInstance",
    "action",
    "reason",
    "note",
    "type",
    "deprecatedCount",
    "series",
    "related",
];

/// A core `v1` Event in the `events.k8s.io/v1` shape.
pub fn from_core(core: Value) -> Value {
    let Value::Object(fields) = core else {
        return core;
    };
    let mut out = Map::new();
    for (key, value) in fields {
        let key = match RENAMED_FIELDS.iter().find(|(c, _)| *c == key) {
            Some((_, renamed)) => renamed.to_string(),
            None => key,
        };
        if OMITTED_WHEN_EMPTY.contains(&key.as_str()) && is_empty(&value) {
            continue;
        }
        out.insert(key, value);
    }
    out.insert("apiVersion".into(), json!(API_VERSION));
    fill_events_event(&mut out);
    Value::Object(out)
}

/// An `events.k8s.io/v1` Event in the core `v1` shape.
pub fn to_core(event: Value) -> Value {
    let Value::Object(fields) = event else {
        return event;
    };
    let mut out = Map::new();
    for (key, value) in fields {
        let key = match RENAMED_FIELDS.iter().find(|(_, e)| *e == key) {
            Some((core, _)) => core.to_string(),
            None => key,
        };
        out.insert(key, value);
    }
    out.insert("apiVersion".into(), json!("v1"));
    super::event::fill_event(&mut out);
    Value::Object(out)
}

fn is_empty(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        Value::Number(n) => n.as_i64() == Some(0),
        _ => false,
    }
}

/// The keys Go never omits in an `events.k8s.io/v1` Event: `eventTime` and the deprecated
/// timestamps (`null` when unset), `regarding` and `deprecatedSource` (structs, `{}`).
fn fill_events_event(root: &mut Map<String, Value>) {
    for key in [
        "eventTime",
        "deprecatedFirstTimestamp",
        "deprecatedLastTimestamp",
    ] {
        or_insert(root, key, Value::Null);
    }
    object_at(root, "regarding");
    object_at(root, "deprecatedSource");
}

/// The kind's behaviour.
pub struct Strategy;

impl KindStrategy for Strategy {
    fn fill_never_omitted(&self, _version: &str, root: &mut Map<String, Value>) {
        fill_events_event(root);
    }

    fn typed(&self, _version: &str) -> Option<TypedVersion> {
        Some(TypedVersion::of::<k8s_openapi::api::events::v1::Event>())
    }

    fn field_selectors(&self) -> Option<&'static [&'static str]> {
        Some(&[
            "reason",
            "regarding.kind",
            "regarding.namespace",
            "regarding.name",
            "regarding.uid",
            "regarding.apiVersion",
            "regarding.resourceVersion",
            "regarding.fieldPath",
            "reportingController",
            "source",
            "type",
            "metadata.namespace",
            "metadata.name",
        ])
    }

    fn stored_field_label(&self, label: &str) -> Option<&'static str> {
        let stored = match label {
            "regarding.kind" => "involvedObject.kind",
            "regarding.namespace" => "involvedObject.namespace",
            "regarding.name" => "involvedObject.name",
            "regarding.uid" => "involvedObject.uid",
            "regarding.apiVersion" => "involvedObject.apiVersion",
            "regarding.resourceVersion" => "involvedObject.resourceVersion",
            "regarding.fieldPath" => "involvedObject.fieldPath",
            "reportingController" => "reportingComponent",
            _ => return None,
        };
        Some(stored)
    }

    fn validate_create_as_sent(&self, obj: &Value, errs: &mut Vec<FieldError>) {
        validate_create(obj, errs);
    }

    fn printer(&self) -> Option<Printer> {
        // Kubernetes prints both groups' Events with one printer.
        Some(Printer::new(super::event::event_columns(), events_cells))
    }
}

/// The most characters `reportingInstance`, `action` and `reason` may have.
const SHORT_FIELD_LIMIT: usize = 128;
/// The most bytes a note may have.
const NOTE_LIMIT: usize = 1024;

/// The rules a new Event written through `events.k8s.io/v1` must follow, in Kubernetes' words:
/// the fields a new event needs, and none of the deprecated ones a core client writes.
fn validate_create(event: &Value, errs: &mut Vec<FieldError>) {
    let text = |key: &str| event.get(key).and_then(Value::as_str).unwrap_or("");
    let set = |key: &str| event.get(key).is_some_and(|v| !v.is_null());
    if !set("eventTime") {
        errs.push(FieldError::required("eventTime", ""));
    }
    let event_type = text("type");
    if event_type != "Normal" && event_type != "Warning" {
        errs.push(FieldError::invalid(
            "type",
            &json!(""),
            format!("has invalid value: {event_type}"),
        ));
    }
    let controller = text("reportingController");
    if controller.is_empty() {
        errs.push(FieldError::required("reportingController", ""));
    }
    for message in crate::validation::qualified_name_errors(controller) {
        errs.push(FieldError::invalid(
            "reportingController",
            &json!(controller),
            message,
        ));
    }
    for key in ["reportingInstance", "action", "reason"] {
        let value = text(key);
        if value.is_empty() {
            errs.push(FieldError::required(key, ""));
        }
        if value.chars().count() > SHORT_FIELD_LIMIT {
            errs.push(FieldError::invalid(
                key,
                &json!(""),
                format!("can have at most {SHORT_FIELD_LIMIT} characters"),
            ));
        }
    }
    if text("note").len() > NOTE_LIMIT {
        errs.push(FieldError::invalid(
            "note",
            &json!(""),
            format!("can have at most {NOTE_LIMIT} characters"),
        ));
    }
    let source_set = ["component", "host"].iter().any(|k| {
        event
            .pointer(&format!("/deprecatedSource/{k}"))
            .and_then(Value::as_str)
            .is_some_and(|s| !s.is_empty())
    });
    let count_set = event
        .get("deprecatedCount")
        .and_then(Value::as_i64)
        .is_some_and(|c| c != 0);
    for (key, unset) in [
        ("deprecatedFirstTimestamp", !set("deprecatedFirstTimestamp")),
        ("deprecatedLastTimestamp", !set("deprecatedLastTimestamp")),
        ("deprecatedCount", !count_set),
        ("deprecatedSource", !source_set),
    ] {
        if !unset {
            errs.push(FieldError::invalid(key, &json!(""), "needs to be unset"));
        }
    }
}

fn events_cells(event: &Value, now: Timestamp) -> Vec<Value> {
    super::event::event_cells(&to_core(event.clone()), now)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One field in both shapes: the core object's key and value, the events.k8s.io one's.
    struct Case {
        core: (&'static str, Value),
        events: (&'static str, Value),
    }

    fn cases() -> Vec<Case> {
        let reference = json!({"kind": "Pod", "name": "web", "namespace": "demo", "uid": "u1"});
        let related = json!({"kind": "Node", "name": "node-1"});
        let series = json!({"count": 3, "lastObservedTime": "2026-12-06T10:44:28.716748Z"});
        vec![
            Case {
                core: ("involvedObject", reference.clone()),
                events: ("regarding", reference),
            },
            Case {
                core: ("related", related.clone()),
                events: ("related", related),
            },
            Case {
                core: ("message", json!("Pulled image")),
                events: ("note", json!("Pulled image")),
            },
            Case {
                core: ("reportingComponent", json!("kubelet")),
                events: ("reportingController", json!("kubelet")),
            },
            Case {
                core: ("reportingInstance", json!("node-1")),
                events: ("reportingInstance", json!("node-1")),
            },
            Case {
                core: ("source", json!({"component": "kubelet", "host": "node-1"})),
                events: (
                    "deprecatedSource",
                    json!({"component": "kubelet", "host": "node-1"}),
                ),
            },
            Case {
                core: ("firstTimestamp", json!("2026-12-06T10:44:27Z")),
                events: ("deprecatedFirstTimestamp", json!("2026-12-06T10:44:27Z")),
            },
            Case {
                core: ("lastTimestamp", json!("2026-12-06T10:44:29Z")),
                events: ("deprecatedLastTimestamp", json!("2026-12-06T10:44:29Z")),
            },
            Case {
                core: ("count", json!(4)),
                events: ("deprecatedCount", json!(4)),
            },
            Case {
                core: ("eventTime", json!("2026-12-06T10:44:28.716748Z")),
                events: ("eventTime", json!("2026-12-06T10:44:28.716748Z")),
            },
            Case {
                core: ("series", series.clone()),
                events: ("series", series),
            },
            Case {
                core: ("action", json!("Binding")),
                events: ("action", json!("Binding")),
            },
            Case {
                core: ("reason", json!("Scheduled")),
                events: ("reason", json!("Scheduled")),
            },
            Case {
                core: ("type", json!("Warning")),
                events: ("type", json!("Warning")),
            },
        ]
    }

    fn core_event() -> Value {
        json!({"apiVersion": "v1", "kind": "Event",
            "metadata": {"name": "web.1", "namespace": "demo"}})
    }

    fn events_event() -> Value {
        json!({"apiVersion": API_VERSION, "kind": "Event",
            "metadata": {"name": "web.1", "namespace": "demo"}})
    }

    #[test]
    fn each_core_field_maps_to_its_events_field() {
        for case in cases() {
            let mut core = core_event();
            core[case.core.0] = case.core.1.clone();
            let converted = from_core(core);
            assert_eq!(
                converted.get(case.events.0),
                Some(&case.events.1),
                "core {} becomes events.k8s.io {}",
                case.core.0,
                case.events.0
            );
            if case.core.0 != case.events.0 {
                assert!(
                    converted.get(case.core.0).is_none(),
                    "{} keeps no core name",
                    case.core.0
                );
            }
            assert_eq!(converted["apiVersion"], API_VERSION);
            assert_eq!(converted["metadata"]["name"], "web.1");
        }
    }

    #[test]
    fn each_events_field_maps_to_its_core_field() {
        for case in cases() {
            let mut event = events_event();
            event[case.events.0] = case.events.1.clone();
            let converted = to_core(event);
            assert_eq!(
                converted.get(case.core.0),
                Some(&case.core.1),
                "events.k8s.io {} becomes core {}",
                case.events.0,
                case.core.0
            );
            if case.core.0 != case.events.0 {
                assert!(converted.get(case.events.0).is_none());
            }
            assert_eq!(converted["apiVersion"], "v1");
        }
    }

    #[test]
    fn a_full_event_round_trips_through_both_shapes() {
        let mut core = core_event();
        for case in cases() {
            core[case.core.0] = case.core.1;
        }
        let back = to_core(from_core(core.clone()));
        assert_eq!(back, core);
    }

    #[test]
    fn empty_core_fields_are_omitted_and_never_omitted_ones_filled() {
        // A core event as the server answers it: empty reporting fields and null timestamps.
        let mut core = core_event();
        super::super::event::fill_event(core.as_object_mut().expect("object"));
        core["count"] = json!(0);
        let converted = from_core(core);
        for omitted in [
            "reportingController",
            "reportingInstance",
            "deprecatedCount",
        ] {
            assert!(converted.get(omitted).is_none(), "{omitted} is omitted");
        }
        assert_eq!(converted["eventTime"], Value::Null);
        assert_eq!(converted["deprecatedFirstTimestamp"], Value::Null);
        assert_eq!(converted["deprecatedLastTimestamp"], Value::Null);
        assert_eq!(converted["regarding"], json!({}));
        assert_eq!(converted["deprecatedSource"], json!({}));
    }

    #[test]
    fn new_events_need_their_fields_and_none_of_the_deprecated_ones() {
        let mut event = events_event();
        for case in cases() {
            event[case.events.0] = case.events.1;
        }
        let mut errs = Vec::new();
        validate_create(&event, &mut errs);
        let messages: Vec<String> = errs.iter().map(FieldError::full).collect();
        assert_eq!(
            messages,
            [
                "deprecatedFirstTimestamp: Invalid value: \"\": needs to be unset",
                "deprecatedLastTimestamp: Invalid value: \"\": needs to be unset",
                "deprecatedCount: Invalid value: \"\": needs to be unset",
                "deprecatedSource: Invalid value: \"\": needs to be unset",
            ]
        );
        let mut errs = Vec::new();
        validate_create(&events_event(), &mut errs);
        let messages: Vec<String> = errs.iter().map(FieldError::full).collect();
        assert_eq!(
            messages[..4],
            [
                "eventTime: Required value",
                "type: Invalid value: \"\": has invalid value: ",
                "reportingController: Required value",
                "reportingController: Invalid value: \"\": name part must be non-empty",
            ]
        );
        assert!(
            messages.contains(&"action: Required value".to_string()),
            "{messages:?}"
        );
        let mut good = events_event();
        for case in cases() {
            if !case.events.0.starts_with("deprecated") {
                good[case.events.0] = case.events.1;
            }
        }
        good["reportingController"] = json!("example.com/puller");
        let mut errs = Vec::new();
        validate_create(&good, &mut errs);
        assert!(errs.is_empty(), "{errs:?}");
    }

    #[test]
    fn field_selectors_name_events_fields_and_match_the_stored_ones() {
        let selector = crate::selector::FieldSelector::parse(
            "regarding.name=web,reportingController=kubelet,type=Warning",
        )
        .expect("parses");
        selector.validate_for(&V1).expect("supported");
        let stored = selector.for_storage(&V1);
        let mut core = core_event();
        for case in cases() {
            core[case.core.0] = case.core.1;
        }
        assert!(stored.matches(&super::super::event::V1, &core));
        core["reportingComponent"] = json!("scheduler");
        assert!(!stored.matches(&super::super::event::V1, &core));
        let core_name =
            crate::selector::FieldSelector::parse("involvedObject.name=web").expect("parses");
        assert!(
            core_name.validate_for(&V1).is_err(),
            "the core spelling is not accepted through events.k8s.io"
        );
    }

    #[test]
    fn both_groups_print_the_same_row() {
        let now: Timestamp = "2026-12-06T10:45:28Z".parse().expect("time");
        let mut core = core_event();
        for case in cases() {
            core[case.core.0] = case.core.1;
        }
        let core_row = super::super::event::event_cells(&core, now);
        let events_row = events_cells(&from_core(core), now);
        assert_eq!(core_row, events_row);
        assert_eq!(events_row[3], "pod/web");
    }
}
