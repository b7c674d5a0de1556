//! Field ownership (`metadata.managedFields`) and server-side apply, as Kubernetes' field
//! manager and structured-merge-diff define them.
//!
//! Every write names a manager. An update (create, PUT, any non-apply patch) gives its manager
//! the fields it added or changed, takes changed fields away from the others and forgets removed
//! ones. An apply makes the applied configuration's field set the manager's, merges it into the
//! live object, removes fields the manager applied before and no longer applies when no one else
//! owns them, and refuses (409) to change a value another manager owns unless forced.
//!
//! Everything here is pure: the caller passes the time and stores the result.

mod fieldset;
mod typed;

#[cfg(test)]
mod tests;

use serde_json::{json, Map, Value};

pub use fieldset::{path_string, FieldSet, Path, PathElement};

use crate::patch::schema::{apply_schema_for, Schema};
use crate::resources::ResourceInfo;
use typed::{Comparison, Shape};

/// The annotation client-side `kubectl apply` keeps its last configuration in.
pub const LAST_APPLIED_ANNOTATION: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// The two operations a `managedFields` entry records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Operation {
    /// Server-side apply.
    Apply,
    /// Any other write.
    Update,
}

impl Operation {
    fn as_str(self) -> &'static str {
        match self {
            Operation::Apply => "Apply",
            Operation::Update => "Update",
        }
    }
}

/// One `managedFields` entry, with its field set decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManagedEntry {
    /// Who wrote.
    pub manager: String,
    /// How.
    pub operation: Operation,
    /// The API version the fields are expressed in.
    pub api_version: String,
    /// When the manager's fields last changed (RFC 3339, seconds).
    pub time: Option<String>,
    /// The fields owned.
    pub fields: FieldSet,
    /// `status` (or another subresource) when written through one.
    pub subresource: String,
}

impl ManagedEntry {
    fn same_writer(&self, manager: &str, operation: Operation, subresource: &str) -> bool {
        self.manager == manager && self.operation == operation && self.subresource == subresource
    }

    /// The entry in Kubernetes' JSON shape.
    pub fn to_json(&self) -> Value {
        let mut entry = Map::new();
        entry.insert("manager".into(), json!(self.manager));
        entry.insert("operation".into(), json!(self.operation.as_str()));
        entry.insert("apiVersion".into(), json!(self.api_version));
        if let Some(time) = &self.time {
            entry.insert("time".into(), json!(time));
        }
        entry.insert("fieldsType".into(), json!("FieldsV1"));
        entry.insert("fieldsV1".into(), self.fields.to_fields_v1());
        if !self.subresource.is_empty() {
            entry.insert("subresource".into(), json!(self.subresource));
        }
        Value::Object(entry)
    }

    /// Reads one entry; `None` for anything malformed, which Kubernetes drops rather than fail
    /// the write.
    pub fn from_json(value: &Value) -> Option<ManagedEntry> {
        let operation = match value.get("operation")?.as_str()? {
            "Apply" => Operation::Apply,
            "Update" => Operation::Update,
            _ => return None,
        };
        let fields = match value.get("fieldsV1") {
            Some(v) => FieldSet::from_fields_v1(v).ok()?,
            None => FieldSet::new(),
        };
        Some(ManagedEntry {
            manager: value.get("manager")?.as_str()?.to_string(),
            operation,
            api_version: value
                .get("apiVersion")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            time: value
                .get("time")
                .and_then(Value::as_str)
                .map(str::to_string),
            fields,
            subresource: value
                .get("subresource")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
        })
    }

    /// How conflict messages name the manager: `"name"`, with the subresource, and for
    /// updates the API version and time.
    fn describe(&self) -> String {
        let mut text = format!("{:?}", self.manager);
        if !self.subresource.is_empty() {
            text.push_str(&format!(" with subresource {:?}", self.subresource));
        }
        if self.operation == Operation::Update {
            text.push_str(&format!(" using {}", self.api_version));
            if let Some(time) = &self.time {
                text.push_str(&format!(" at {time}"));
            }
        }
        text
    }
}

/// The entries of an object's `metadata.managedFields` (malformed ones dropped).
pub fn entries_of(object: &Value) -> Vec<ManagedEntry> {
    object
        .pointer("/metadata/managedFields")
        .and_then(Value::as_array)
        .map(|list| list.iter().filter_map(ManagedEntry::from_json).collect())
        .unwrap_or_default()
}

/// Sets `metadata.managedFields` from `entries` (removing it when there are none), in the
/// order Kubernetes keeps: applies first, then by time, manager and API version.
pub fn set_entries(object: &mut Value, mut entries: Vec<ManagedEntry>) {
    entries.retain(|e| !e.fields.is_empty());
    entries.sort_by(|a, b| {
        (
            a.operation,
            &a.time,
            &a.manager,
            &a.api_version,
            &a.subresource,
        )
            .cmp(&(
                b.operation,
                &b.time,
                &b.manager,
                &b.api_version,
                &b.subresource,
            ))
    });
    let Some(metadata) = object.get_mut("metadata").and_then(Value::as_object_mut) else {
        return;
    };
    if entries.is_empty() {
        metadata.shift_remove("managedFields");
    } else {
        metadata.insert(
            "managedFields".into(),
            Value::Array(entries.iter().map(ManagedEntry::to_json).collect()),
        );
    }
}

/// Who is writing and through what.
#[derive(Clone, Debug)]
pub struct Writer<'a> {
    /// The manager name (`fieldManager`, or the client's user agent up to its first `/`).
    pub manager: &'a str,
    /// The API version of the request.
    pub api_version: &'a str,
    /// `status` for status writes, empty for the main resource.
    pub subresource: &'a str,
    /// The time of the write (RFC 3339, seconds).
    pub now: &'a str,
}

/// The manager name Kubernetes records when the request names none: the user agent up to its
/// first `/`, at most 128 characters.
pub fn manager_from_user_agent(user_agent: &str) -> String {
    let prefix = user_agent.split('/').next().unwrap_or_default();
    prefix.chars().take(128).collect()
}

fn schema_of(resource: &ResourceInfo) -> Schema {
    apply_schema_for(resource)
}

/// Fields no manager owns: identity and bookkeeping the server sets.
fn strip_server_fields(set: &mut FieldSet, subresource: &str) {
    for name in ["apiVersion", "kind"] {
        set.remove_subtree(&[PathElement::field(name)]);
    }
    for name in [
        "name",
        "namespace",
        "creationTimestamp",
        "selfLink",
        "uid",
        "resourceVersion",
        "generation",
        "managedFields",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
    ] {
        set.remove_subtree(&[PathElement::field("metadata"), PathElement::field(name)]);
    }
    set.remove(&[PathElement::field("metadata")]);
    // A write of the main resource cannot own status, nor a status write the spec.
    if subresource == "status" {
        for path in set.paths() {
            if !matches!(path.first(), Some(PathElement::Field(f)) if f == "status" || f == "metadata")
            {
                set.remove(&path);
            }
        }
    } else if subresource.is_empty() {
        set.remove_subtree(&[PathElement::field("status")]);
    }
}

fn compare_objects(
    resource: &ResourceInfo,
    old: Option<&Value>,
    new: &Value,
    subresource: &str,
) -> Comparison {
    let mut comparison = typed::compare(old, new, schema_of(resource));
    strip_server_fields(&mut comparison.changed, subresource);
    comparison
}

/// Records an update (create when `old` is `None`): the writer's `Update` entry gains what it
/// added or changed; every manager loses what was changed by it or removed. `entries` are the
/// ones the write starts from (the request's own `managedFields` if it sent any, else the live
/// object's). The writer's time moves only when its fields change.
pub fn record_update(
    resource: &ResourceInfo,
    entries: Vec<ManagedEntry>,
    old: Option<&Value>,
    new: &Value,
    writer: &Writer<'_>,
) -> Vec<ManagedEntry> {
    let comparison = compare_objects(resource, old, new, writer.subresource);
    let mut entries = entries;
    for entry in &mut entries {
        let is_writer = entry.same_writer(writer.manager, Operation::Update, writer.subresource);
        if !is_writer {
            entry.fields = entry.fields.difference(&comparison.changed);
        }
        for removed in comparison.removed.paths() {
            entry.fields.remove_subtree(&removed);
        }
    }
    if comparison.changed.is_empty() {
        return entries;
    }
    match entries
        .iter_mut()
        .find(|e| e.same_writer(writer.manager, Operation::Update, writer.subresource))
    {
        Some(entry) => {
            let before = entry.fields.clone();
            entry.fields.union_with(&comparison.changed);
            if entry.fields != before || entry.api_version != writer.api_version {
                entry.time = Some(writer.now.to_string());
            }
            entry.api_version = writer.api_version.to_string();
        }
        None => entries.push(ManagedEntry {
            manager: writer.manager.to_string(),
            operation: Operation::Update,
            api_version: writer.api_version.to_string(),
            time: Some(writer.now.to_string()),
            fields: comparison.changed,
            subresource: writer.subresource.to_string(),
        }),
    }
    entries
}

/// One field another manager owns with a different value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conflict {
    /// The owner, as conflict messages name it (see [`ManagedEntry`]).
    pub manager: String,
    /// The field, e.g. `.spec.replicas`.
    pub field: String,
}

/// Why an apply was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ApplyError {
    /// Other managers own fields the configuration changes (409 unless forced).
    #[error("{}", conflict_message(.0))]
    Conflicts(Vec<Conflict>),
    /// The configuration is not an object (400).
    #[error("{0}")]
    Malformed(String),
}

/// Kubernetes' message for a refused apply.
pub fn conflict_message(conflicts: &[Conflict]) -> String {
    if let [only] = conflicts {
        return format!(
            "Apply failed with 1 conflict: conflict with {}: {}",
            only.manager, only.field
        );
    }
    let mut managers: Vec<&str> = conflicts.iter().map(|c| c.manager.as_str()).collect();
    managers.sort();
    managers.dedup();
    let mut lines = Vec::new();
    for manager in managers {
        lines.push(format!("conflicts with {manager}:"));
        for conflict in conflicts.iter().filter(|c| c.manager == manager) {
            lines.push(format!("- {}", conflict.field));
        }
    }
    format!(
        "Apply failed with {} conflicts: {}",
        conflicts.len(),
        lines.join("\n")
    )
}

/// The outcome of an apply: the merged object (its `managedFields` set) for the caller to
/// default, validate and store.
#[derive(Clone, Debug)]
pub struct Applied {
    /// The new object.
    pub object: Value,
}

/// Server-side apply of `config` onto `live` (`None` when the object does not exist yet).
pub fn apply(
    resource: &ResourceInfo,
    live: Option<&Value>,
    config: &Value,
    writer: &Writer<'_>,
    force: bool,
) -> Result<Applied, ApplyError> {
    // Nulls and patch directives mean nothing in a configuration.
    let config = &crate::patch::strategic::strip_value(config.clone()).unwrap_or_else(|| json!({}));
    let Value::Object(config_map) = config else {
        return Err(ApplyError::Malformed(format!(
            "error decoding patch: json: cannot unmarshal {} into Go value of type map[string]interface {{}}",
            json_kind(config)
        )));
    };
    let schema = schema_of(resource);
    let mut config_set = typed::applied_set(config_map, schema);
    strip_server_fields(&mut config_set, writer.subresource);

    let empty = json!({});
    let live_value = live.unwrap_or(&empty);
    let mut entries = entries_of(live_value);
    let mut merged = typed::merge(live_value, config, schema, Shape::Granular);
    if let Some(metadata) = merged.get_mut("metadata").and_then(Value::as_object_mut) {
        // The configuration's own managedFields are never taken.
        match live_value.pointer("/metadata/managedFields") {
            Some(list) => metadata.insert("managedFields".into(), list.clone()),
            None => metadata.shift_remove("managedFields"),
        };
    }

    // Fields this manager applied before and no longer applies go, unless someone else (or the
    // new configuration, below them) still owns them.
    let previous = entries
        .iter()
        .find(|e| e.same_writer(writer.manager, Operation::Apply, writer.subresource))
        .map(|e| e.fields.clone())
        .unwrap_or_default();
    let mut others = FieldSet::new();
    for entry in entries
        .iter()
        .filter(|e| !e.same_writer(writer.manager, Operation::Apply, writer.subresource))
    {
        others.union_with(&entry.fields);
    }
    // Parents come before their fields, so an item goes whole while its key still names it.
    for path in previous.difference(&config_set).paths() {
        if !others.contains_at_or_below(&path) && !config_set.contains_at_or_below(&path) {
            typed::remove_path(&mut merged, &path, schema);
        }
    }

    let comparison = compare_objects(resource, live, &merged, writer.subresource);
    let mut conflicts = Vec::new();
    for entry in &entries {
        if entry.same_writer(writer.manager, Operation::Apply, writer.subresource) {
            continue;
        }
        for path in entry.fields.intersection(&comparison.changed).paths() {
            conflicts.push(Conflict {
                manager: entry.describe(),
                field: path_string(&path),
            });
        }
    }
    if !conflicts.is_empty() && !force && !allowed_by_last_applied(live_value, &conflicts, schema) {
        return Err(ApplyError::Conflicts(conflicts));
    }
    for entry in &mut entries {
        if entry.same_writer(writer.manager, Operation::Apply, writer.subresource) {
            continue;
        }
        entry.fields = entry.fields.difference(&comparison.changed);
        for removed in comparison.removed.paths() {
            entry.fields.remove_subtree(&removed);
        }
    }
    let object_changed = !comparison.changed.is_empty() || !comparison.removed.is_empty();
    match entries
        .iter_mut()
        .find(|e| e.same_writer(writer.manager, Operation::Apply, writer.subresource))
    {
        Some(entry) => {
            if entry.fields != config_set || object_changed {
                entry.time = Some(writer.now.to_string());
            }
            entry.fields = config_set;
            entry.api_version = writer.api_version.to_string();
        }
        None => entries.push(ManagedEntry {
            manager: writer.manager.to_string(),
            operation: Operation::Apply,
            api_version: writer.api_version.to_string(),
            time: Some(writer.now.to_string()),
            fields: config_set,
            subresource: writer.subresource.to_string(),
        }),
    }
    set_entries(&mut merged, entries);
    Ok(Applied { object: merged })
}

/// The migration from client-side apply: conflicts are allowed when every conflicting field is
/// in the object's `last-applied-configuration`, i.e. the applier had set it with a
/// client-side apply before.
fn allowed_by_last_applied(live: &Value, conflicts: &[Conflict], schema: Schema) -> bool {
    let Some(Value::Object(last)) = last_applied(live) else {
        return false;
    };
    let mut set = typed::applied_set(&last, schema);
    strip_server_fields(&mut set, "");
    let fields: Vec<String> = set.paths().iter().map(|p| path_string(p)).collect();
    conflicts.iter().all(|c| fields.contains(&c.field))
}

fn last_applied(object: &Value) -> Option<Value> {
    let text = object
        .pointer("/metadata/annotations")?
        .get(LAST_APPLIED_ANNOTATION)?
        .as_str()?;
    serde_json::from_str(text).ok()
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}
