//! The structure server-side apply sees in an object: which maps and lists are atomic, which
//! lists are sets or list-maps (and by which keys), and the walks built on it: the field set of
//! an applied configuration, the comparison of two versions of an object, the merge of a
//! configuration into a live object and the removal of a path.
//!
//! Types come from the strategic-merge schema (`patch::schema`): a list with a patch merge key
//! is a list-map keyed by it, a merge-strategy list of scalars is a set, except where the
//! Kubernetes types say otherwise with `+listType`/`+listMapKey`/`+structType`/`+mapType`
//! (the tables below). Lists the schema does not know are atomic; maps are granular.

use serde_json::{Map, Value};

use super::fieldset::{FieldSet, Path, PathElement};
use crate::patch::schema::{Schema, Strategy};

/// How a value at one position merges and is owned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Shape {
    /// Maps are merged field by field; lists and scalars are replaced whole.
    Granular,
    /// Replaced and owned whole, whatever it holds.
    Atomic,
    /// A list of scalars merged as a set.
    Set,
    /// A list of objects merged by key fields; `atomic_items` when each item is owned whole.
    ListMap {
        keys: &'static [&'static str],
        atomic_items: bool,
    },
}

/// List-maps whose keys are more than the patch merge key (`+listMapKey` on several fields).
const COMPOSITE_KEYS: &[(&str, &str, &[&str])] = &[
    ("Container", "ports", &["containerPort", "protocol"]),
    ("ServiceSpec", "ports", &["port", "protocol"]),
    (
        "PodSpec",
        "topologySpreadConstraints",
        &["topologyKey", "whenUnsatisfiable"],
    ),
];

/// Maps and structs owned whole (`+structType=atomic`, `+mapType=atomic`).
const ATOMIC_FIELDS: &[(&str, &str)] = &[
    ("DeploymentSpec", "selector"),
    ("ReplicaSetSpec", "selector"),
    ("DaemonSetSpec", "selector"),
    ("ServiceSpec", "selector"),
    ("PodSpec", "nodeSelector"),
    ("HorizontalPodAutoscalerSpec", "scaleTargetRef"),
];

/// List-maps whose items are owned whole (`OwnerReference` is an atomic struct).
const ATOMIC_ITEMS: &[(&str, &str)] = &[("ObjectMeta", "ownerReferences")];

/// Key fields Kubernetes defaults, used when an item leaves them out.
const KEY_DEFAULTS: &[(&str, &str)] = &[("protocol", "TCP")];

/// The single-field keys of strategic-merge lists, as `'static` slices.
fn single_key(key: &'static str) -> &'static [&'static str] {
    const KEYS: &[&str] = &[
        "name",
        "uid",
        "ip",
        "type",
        "containerPort",
        "port",
        "mountPath",
        "devicePath",
        "topologyKey",
    ];
    for (index, known) in KEYS.iter().enumerate() {
        if *known == key {
            return &KEYS[index..index + 1];
        }
    }
    &[]
}

/// The schema and shape of field `name` of an object at `parent`.
pub(crate) fn field_of(parent: Schema, name: &str) -> (Schema, Shape) {
    let (child, strategy) = parent.field(name);
    let owner = parent.named_type().unwrap_or("");
    if ATOMIC_FIELDS.contains(&(owner, name)) {
        return (child, Shape::Atomic);
    }
    let shape = match strategy {
        Strategy::MergeByKey(key) => {
            let keys = COMPOSITE_KEYS
                .iter()
                .find(|(o, f, _)| *o == owner && *f == name)
                .map(|(_, _, keys)| *keys)
                .unwrap_or_else(|| single_key(key));
            if keys.is_empty() {
                Shape::Atomic
            } else {
                Shape::ListMap {
                    keys,
                    atomic_items: ATOMIC_ITEMS.contains(&(owner, name)),
                }
            }
        }
        Strategy::MergeSet => Shape::Set,
        Strategy::Replace => Shape::Atomic,
        Strategy::Default => Shape::Granular,
    };
    (child, shape)
}

/// The path element of a list-map item, or `None` when it lacks a key field that has no
/// default (the list is then treated as atomic).
fn item_key(item: &Value, keys: &[&str]) -> Option<PathElement> {
    let map = item.as_object()?;
    let defaults: Vec<(&str, Value)> = KEY_DEFAULTS
        .iter()
        .map(|(k, v)| (*k, Value::String((*v).to_string())))
        .collect();
    let mut fields: Vec<(&str, &Value)> = Vec::with_capacity(keys.len());
    for key in keys {
        match map.get(*key).filter(|v| !v.is_null()) {
            Some(value) => fields.push((key, value)),
            None => {
                let default = defaults.iter().find(|(k, _)| k == key)?;
                fields.push((key, &default.1));
            }
        }
    }
    Some(PathElement::key(&fields))
}

/// The item elements of a list at `shape`, or `None` when the list must be handled as atomic.
fn item_elements(items: &[Value], shape: Shape) -> Option<Vec<PathElement>> {
    let elements: Option<Vec<PathElement>> = match shape {
        Shape::Set => items
            .iter()
            .map(|item| (!item.is_object() && !item.is_array()).then(|| PathElement::value(item)))
            .collect(),
        Shape::ListMap { keys, .. } => items.iter().map(|item| item_key(item, keys)).collect(),
        Shape::Granular | Shape::Atomic => None,
    };
    let elements = elements?;
    // Duplicate keys cannot be merged item by item.
    let mut seen = std::collections::BTreeSet::new();
    elements
        .iter()
        .all(|e| seen.insert(e.clone()))
        .then_some(elements)
}

/// The fields an applied configuration sets: scalars and atomic values, each list item, but
/// not the maps that lead to them.
pub(crate) fn applied_set(config: &Map<String, Value>, schema: Schema) -> FieldSet {
    let mut set = FieldSet::new();
    let mut path = Vec::new();
    applied_fields(config, schema, &mut path, &mut set);
    set
}

fn applied_fields(map: &Map<String, Value>, schema: Schema, path: &mut Path, set: &mut FieldSet) {
    for (name, value) in map {
        let (child, shape) = field_of(schema, name);
        path.push(PathElement::field(name));
        applied_value(value, child, shape, path, set);
        path.pop();
    }
}

fn applied_value(value: &Value, schema: Schema, shape: Shape, path: &mut Path, set: &mut FieldSet) {
    match (value, shape) {
        (Value::Object(map), Shape::Granular) if !map.is_empty() => {
            applied_fields(map, schema, path, set)
        }
        (Value::Array(items), Shape::Set | Shape::ListMap { .. }) => {
            let Some(elements) = item_elements(items, shape) else {
                set.insert(path);
                return;
            };
            for (item, element) in items.iter().zip(elements) {
                path.push(element);
                set.insert(path);
                if let (Value::Object(fields), Shape::ListMap { atomic_items, .. }) = (item, shape)
                {
                    if !atomic_items {
                        applied_fields(fields, schema, path, set);
                    }
                }
                path.pop();
            }
        }
        _ => set.insert(path),
    }
}

/// What changed between two versions of an object: paths added or modified (with newly
/// created maps and lists as members) and paths removed (each standing for its whole subtree).
#[derive(Debug, Default)]
pub(crate) struct Comparison {
    pub changed: FieldSet,
    pub removed: FieldSet,
}

/// Maps and lists an update does not make the writer own when they appear: the structs every
/// object of a kind has even when empty, and the one list Kubernetes never omits.
fn always_present(path: &[PathElement]) -> bool {
    let names: Option<Vec<&str>> = path
        .iter()
        .map(|e| match e {
            PathElement::Field(name) => Some(name.as_str()),
            _ => None,
        })
        .collect();
    matches!(
        names.as_deref(),
        Some(
            ["metadata"]
                | ["spec"]
                | ["status"]
                | ["spec", "template"]
                | ["spec", "template", "metadata"]
                | ["spec", "template", "spec"]
                | ["spec", "strategy"]
                | ["spec", "updateStrategy"]
                | ["spec", "containers"]
                | ["spec", "template", "spec", "containers"]
        )
    )
}

/// Compares `old` (absent on create) with `new`.
pub(crate) fn compare(old: Option<&Value>, new: &Value, schema: Schema) -> Comparison {
    let mut comparison = Comparison::default();
    let mut path = Vec::new();
    let empty = Map::new();
    let old_map = old.and_then(Value::as_object).unwrap_or(&empty);
    let new_map = new.as_object().unwrap_or(&empty);
    compare_maps(old_map, new_map, schema, &mut path, &mut comparison);
    comparison
}

fn compare_maps(
    old: &Map<String, Value>,
    new: &Map<String, Value>,
    schema: Schema,
    path: &mut Path,
    out: &mut Comparison,
) {
    for (name, value) in new {
        if value.is_null() && !old.contains_key(name) {
            // Go decodes an explicit null as the zero value: nothing was added.
            continue;
        }
        let (child, shape) = field_of(schema, name);
        path.push(PathElement::field(name));
        compare_values(old.get(name), value, child, shape, path, out);
        path.pop();
    }
    for name in old.keys().filter(|name| !new.contains_key(*name)) {
        path.push(PathElement::field(name));
        out.removed.insert(path);
        path.pop();
    }
}

fn compare_values(
    old: Option<&Value>,
    new: &Value,
    schema: Schema,
    shape: Shape,
    path: &mut Path,
    out: &mut Comparison,
) {
    match (new, shape) {
        (Value::Object(new_map), Shape::Granular) => match old {
            Some(Value::Object(old_map)) => compare_maps(old_map, new_map, schema, path, out),
            _ if new_map.is_empty() => out.changed.insert(path),
            _ => {
                if !always_present(path) {
                    out.changed.insert(path);
                }
                compare_maps(&Map::new(), new_map, schema, path, out);
            }
        },
        (Value::Array(new_items), Shape::Set | Shape::ListMap { .. }) => {
            let Some(new_elements) = item_elements(new_items, shape) else {
                if old != Some(new) {
                    out.changed.insert(path);
                }
                return;
            };
            let old_items: Vec<(PathElement, &Value)> = match old {
                Some(Value::Array(items)) => match item_elements(items, shape) {
                    Some(elements) => elements.into_iter().zip(items.iter()).collect(),
                    None => {
                        out.changed.insert(path);
                        Vec::new()
                    }
                },
                _ => {
                    if !always_present(path) {
                        out.changed.insert(path);
                    }
                    Vec::new()
                }
            };
            let atomic_items = matches!(
                shape,
                Shape::Set
                    | Shape::ListMap {
                        atomic_items: true,
                        ..
                    }
            );
            for (element, item) in new_elements.iter().zip(new_items) {
                let previous = old_items.iter().find(|(e, _)| e == element).map(|p| p.1);
                path.push(element.clone());
                match (previous, item) {
                    (None, _) => {
                        out.changed.insert(path);
                        if let (false, Value::Object(fields)) = (atomic_items, item) {
                            compare_maps(&Map::new(), fields, schema, path, out);
                        }
                    }
                    (Some(before), _) if atomic_items => {
                        if before != item {
                            out.changed.insert(path);
                        }
                    }
                    (Some(before), Value::Object(fields)) => {
                        let empty = Map::new();
                        compare_maps(
                            before.as_object().unwrap_or(&empty),
                            fields,
                            schema,
                            path,
                            out,
                        )
                    }
                    (Some(before), _) => {
                        if before != item {
                            out.changed.insert(path);
                        }
                    }
                }
                path.pop();
            }
            for (element, _) in old_items {
                if !new_elements.contains(&element) {
                    path.push(element);
                    out.removed.insert(path);
                    path.pop();
                }
            }
        }
        _ => {
            if old != Some(new) {
                out.changed.insert(path);
            }
        }
    }
}

/// Merges an applied configuration into the live object: granular maps field by field,
/// list-maps and sets item by item (live items first, new ones after in the configuration's
/// order), everything else replaced by the configuration's value.
pub(crate) fn merge(live: &Value, config: &Value, schema: Schema, shape: Shape) -> Value {
    match (live, config, shape) {
        (Value::Object(live_map), Value::Object(config_map), Shape::Granular) => {
            let mut out = live_map.clone();
            for (name, value) in config_map {
                let (child, child_shape) = field_of(schema, name);
                let merged = match live_map.get(name) {
                    Some(current) => merge(current, value, child, child_shape),
                    None => value.clone(),
                };
                out.insert(name.clone(), merged);
            }
            Value::Object(out)
        }
        (
            Value::Array(live_items),
            Value::Array(config_items),
            Shape::Set | Shape::ListMap { .. },
        ) => {
            let (Some(live_elements), Some(config_elements)) = (
                item_elements(live_items, shape),
                item_elements(config_items, shape),
            ) else {
                return config.clone();
            };
            let atomic_items = matches!(
                shape,
                Shape::Set
                    | Shape::ListMap {
                        atomic_items: true,
                        ..
                    }
            );
            let mut out: Vec<Value> = Vec::with_capacity(live_items.len() + config_items.len());
            for (element, item) in live_elements.iter().zip(live_items) {
                match config_elements.iter().position(|e| e == element) {
                    Some(index) if atomic_items => out.push(config_items[index].clone()),
                    Some(index) => {
                        out.push(merge(item, &config_items[index], schema, Shape::Granular))
                    }
                    None => out.push(item.clone()),
                }
            }
            for (element, item) in config_elements.iter().zip(config_items) {
                if !live_elements.contains(element) {
                    out.push(item.clone());
                }
            }
            Value::Array(out)
        }
        _ => config.clone(),
    }
}

/// Removes the value at `path` from `object`: a map field, or a list item named by key, value
/// or index. Nothing happens when the path is absent.
pub(crate) fn remove_path(object: &mut Value, path: &[PathElement], schema: Schema) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let Some((parent, shape)) = walk_mut(object, parents, schema) else {
        return;
    };
    match (parent, last) {
        (Value::Object(map), PathElement::Field(name)) => {
            map.shift_remove(name);
        }
        (Value::Array(items), PathElement::Index(index)) if *index < items.len() => {
            items.remove(*index);
        }
        (Value::Array(items), element) => {
            if let Some(elements) = item_elements(items, shape) {
                if let Some(index) = elements.iter().position(|e| e == element) {
                    items.remove(index);
                }
            }
        }
        _ => {}
    }
}

/// The value at `path` (and the shape of its position), if present.
fn walk_mut<'a>(
    object: &'a mut Value,
    path: &[PathElement],
    schema: Schema,
) -> Option<(&'a mut Value, Shape)> {
    let mut current = object;
    let mut schema = schema;
    let mut shape = Shape::Granular;
    for element in path {
        let next_shape;
        current = match (current, element) {
            (Value::Object(map), PathElement::Field(name)) => {
                let (child, child_shape) = field_of(schema, name);
                schema = child;
                next_shape = child_shape;
                map.get_mut(name)?
            }
            (Value::Array(items), PathElement::Index(index)) => {
                next_shape = Shape::Granular;
                items.get_mut(*index)?
            }
            (Value::Array(items), element) => {
                let elements = item_elements(items, shape)?;
                let index = elements.iter().position(|e| e == element)?;
                next_shape = Shape::Granular;
                items.get_mut(index)?
            }
            _ => return None,
        };
        shape = next_shape;
    }
    Some((current, shape))
}
