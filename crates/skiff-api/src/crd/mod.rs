//! CustomResourceDefinitions: what a definition means for the resources it adds. Validation of
//! definitions with Kubernetes' messages, the defaults and status the apiextensions server and
//! its controllers give them, and the [`Kind`] (resource info in every served version plus a
//! strategy holding the schemas and printer columns) that serves their objects.
//!
//! Pure: the API server's definition controller decides when to register and what to write.

pub mod rules;
pub mod schema;

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde_json::{json, Map, Value};

use crate::errors::FieldError;
use crate::kinds::{Kind, KindStrategy, NameRule};
use crate::printers::CustomColumn;
use crate::resources::{ResourceInfo, Subresource};

/// The finalizer the definition controller holds while it deletes a definition's objects.
pub const CLEANUP_FINALIZER: &str = "customresourcecleanup.apiextensions.k8s.io";

fn leak(s: &str) -> &'static str {
    Box::leak(s.to_string().into_boxed_str())
}

fn text<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

/// The definition's versions as given.
fn versions(crd: &Value) -> &[Value] {
    crd.pointer("/spec/versions")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

/// Fills the definition defaults Kubernetes applies: `names.singular` (the kind in lower case),
/// `names.listKind` (`<Kind>List`) and `conversion.strategy: None`.
pub fn apply_definition_defaults(root: &mut Map<String, Value>) {
    let Some(spec) = root.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    if let Some(names) = spec.get_mut("names").and_then(Value::as_object_mut) {
        let kind = names
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        if !kind.is_empty() {
            if names
                .get("singular")
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
            {
                names.insert("singular".into(), Value::String(kind.to_lowercase()));
            }
            if names
                .get("listKind")
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
            {
                names.insert("listKind".into(), Value::String(format!("{kind}List")));
            }
        }
    }
    if !spec.get("conversion").is_some_and(Value::is_object) {
        spec.insert("conversion".into(), json!({"strategy": "None"}));
    }
}

fn dns1035(value: &str, path: &str, errs: &mut Vec<FieldError>) {
    for message in crate::validation::dns1035_label_errors(value) {
        errs.push(FieldError::invalid(
            path,
            &Value::String(value.to_string()),
            message,
        ));
    }
}

/// Validates a definition as apiextensions-apiserver does, in its words.
pub fn validate_definition(crd: &Value, errs: &mut Vec<FieldError>) {
    let group = text(crd, "/spec/group");
    let plural = text(crd, "/spec/names/plural");
    let name = text(crd, "/metadata/name");
    if name != format!("{plural}.{group}") {
        errs.push(FieldError::invalid(
            "metadata.name",
            &Value::String(name.to_string()),
            "must be spec.names.plural+\".\"+spec.group",
        ));
    }
    if group.is_empty() {
        errs.push(FieldError::required("spec.group", ""));
    } else if !group.contains('.') {
        errs.push(FieldError::invalid(
            "spec.group",
            &Value::String(group.to_string()),
            "should be a domain with at least one dot",
        ));
    } else if crate::kinds::all_resources().any(|r| r.group == group) {
        errs.push(FieldError::invalid(
            "spec.group",
            &Value::String(group.to_string()),
            "is served by this server's built-in resources",
        ));
    }
    match text(crd, "/spec/scope") {
        "" => errs.push(FieldError::required("spec.scope", "")),
        "Cluster" | "Namespaced" => {}
        other => errs.push(FieldError::not_supported(
            "spec.scope",
            &Value::String(other.to_string()),
            &["Cluster", "Namespaced"],
        )),
    }
    validate_names(crd, errs);
    let versions = versions(crd);
    if versions.is_empty() {
        errs.push(FieldError::invalid(
            "spec.versions",
            &Value::Array(Vec::new()),
            "must have exactly one version marked as storage version",
        ));
        errs.push(FieldError::required(
            "spec.versions",
            "must have at least one version",
        ));
        return;
    }
    let storage = versions
        .iter()
        .filter(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
        .count();
    if storage != 1 {
        errs.push(FieldError::invalid(
            "spec.versions",
            &Value::Array(versions.to_vec()),
            "must have exactly one version marked as storage version",
        ));
    }
    let mut seen = Vec::new();
    for (i, version) in versions.iter().enumerate() {
        let path = format!("spec.versions[{i}]");
        let name = text(version, "/name");
        if name.is_empty() {
            errs.push(FieldError::required(format!("{path}.name"), ""));
        } else {
            dns1035(name, &format!("{path}.name"), errs);
        }
        if seen.contains(&name) {
            errs.push(FieldError::invalid(
                "spec.versions",
                &Value::Array(versions.to_vec()),
                "must contain unique version names",
            ));
        }
        seen.push(name);
        let schema_path = format!("{path}.schema.openAPIV3Schema");
        match version.pointer("/schema/openAPIV3Schema") {
            Some(s) if s.is_object() => schema::validate_structural(s, &schema_path, errs),
            _ => errs.push(FieldError::required(&schema_path, "schemas are required")),
        }
        if let Some(scale) = version.pointer("/subresources/scale") {
            let scale_path = format!("{path}.subresources.scale");
            match scale.get("specReplicasPath").and_then(Value::as_str) {
                None | Some("") => errs.push(FieldError::required(
                    format!("{scale_path}.specReplicasPath"),
                    "",
                )),
                Some(p) if !p.starts_with(".spec.") => errs.push(FieldError::invalid(
                    format!("{scale_path}.specReplicasPath"),
                    &Value::String(p.to_string()),
                    "should be a json path under .spec",
                )),
                Some(_) => {}
            }
            match scale.get("statusReplicasPath").and_then(Value::as_str) {
                None | Some("") => errs.push(FieldError::required(
                    format!("{scale_path}.statusReplicasPath"),
                    "",
                )),
                Some(p) if !p.starts_with(".status.") => errs.push(FieldError::invalid(
                    format!("{scale_path}.statusReplicasPath"),
                    &Value::String(p.to_string()),
                    "should be a json path under .status",
                )),
                Some(_) => {}
            }
        }
        for (j, column) in version
            .get("additionalPrinterColumns")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or(&[])
            .iter()
            .enumerate()
        {
            let column_path = format!("{path}.additionalPrinterColumns[{j}]");
            if text(column, "/name").is_empty() {
                errs.push(FieldError::required(format!("{column_path}.name"), ""));
            }
            if text(column, "/jsonPath").is_empty() {
                errs.push(FieldError::required(format!("{column_path}.jsonPath"), ""));
            }
            let kind = text(column, "/type");
            if !matches!(kind, "integer" | "number" | "string" | "boolean" | "date") {
                errs.push(FieldError::not_supported(
                    format!("{column_path}.type"),
                    &Value::String(kind.to_string()),
                    &["boolean", "date", "integer", "number", "string"],
                ));
            }
        }
    }
}

fn validate_names(crd: &Value, errs: &mut Vec<FieldError>) {
    let plural = text(crd, "/spec/names/plural");
    if plural.is_empty() {
        errs.push(FieldError::required("spec.names.plural", ""));
    } else {
        dns1035(plural, "spec.names.plural", errs);
    }
    let singular = text(crd, "/spec/names/singular");
    if !singular.is_empty() {
        dns1035(singular, "spec.names.singular", errs);
    }
    let kind = text(crd, "/spec/names/kind");
    if kind.is_empty() {
        errs.push(FieldError::required("spec.names.kind", ""));
    } else if !crate::validation::dns1035_label_errors(&kind.to_lowercase()).is_empty() {
        errs.push(FieldError::invalid(
            "spec.names.kind",
            &Value::String(kind.to_string()),
            "may have mixed case, but should otherwise match: [a-z]([-a-z0-9]*[a-z0-9])?",
        ));
    }
    for (i, short) in crd
        .pointer("/spec/names/shortNames")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
        .iter()
        .enumerate()
    {
        let short = short.as_str().unwrap_or("");
        dns1035(short, &format!("spec.names.shortNames[{i}]"), errs);
    }
}

/// A definition is immutable in its group, scope and kind names once accepted; other changes
/// are validated as a new definition.
pub fn validate_definition_update(new: &Value, old: &Value, errs: &mut Vec<FieldError>) {
    validate_definition(new, errs);
    let stored: Vec<&str> = old
        .pointer("/status/storedVersions")
        .and_then(Value::as_array)
        .map(|v| v.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    for version in stored {
        if !versions(new).iter().any(|v| text(v, "/name") == version) {
            errs.push(FieldError::invalid(
                "status.storedVersions",
                &Value::Array(
                    old.pointer("/status/storedVersions")
                        .and_then(Value::as_array)
                        .cloned()
                        .unwrap_or_default(),
                ),
                "must appear in spec.versions",
            ));
        }
    }
    if text(new, "/spec/scope") != text(old, "/spec/scope") && !text(old, "/spec/scope").is_empty()
    {
        // Kubernetes allows a scope change only while no objects are stored; Skiff refuses it.
        errs.push(FieldError::invalid(
            "spec.scope",
            &Value::String(text(new, "/spec/scope").to_string()),
            "field is immutable",
        ));
    }
}

/// The version the definition stores its objects in.
pub fn storage_version(crd: &Value) -> Option<&str> {
    versions(crd)
        .iter()
        .find(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
        .map(|v| text(v, "/name"))
}

/// Whether the definition's `Established` condition is `True`.
pub fn is_established(crd: &Value) -> bool {
    condition_status(crd, "Established") == Some("True")
}

fn condition_status<'a>(crd: &'a Value, kind: &str) -> Option<&'a str> {
    crd.pointer("/status/conditions")
        .and_then(Value::as_array)?
        .iter()
        .find(|c| text(c, "/type") == kind)
        .map(|c| text(c, "/status"))
}

/// The names of a definition that other definitions of its group already hold, as the naming
/// controller finds them: the first conflict's reason and message (`"wd" is already in use`),
/// and the names accepted (those without conflict; a name accepted before stays accepted).
fn accepted_names(crd: &Value, others: &[Value]) -> (Option<(&'static str, String)>, Value) {
    let group = text(crd, "/spec/group");
    let name = text(crd, "/metadata/name");
    let mut resources: Vec<&str> = Vec::new();
    let mut kinds: Vec<&str> = Vec::new();
    for other in others {
        if text(other, "/spec/group") != group || text(other, "/metadata/name") == name {
            continue;
        }
        for pointer in [
            "/status/acceptedNames/plural",
            "/status/acceptedNames/singular",
        ] {
            resources.push(text(other, pointer));
        }
        if let Some(short) = other
            .pointer("/status/acceptedNames/shortNames")
            .and_then(Value::as_array)
        {
            resources.extend(short.iter().filter_map(Value::as_str));
        }
        for pointer in [
            "/status/acceptedNames/kind",
            "/status/acceptedNames/listKind",
        ] {
            kinds.push(text(other, pointer));
        }
    }
    resources.retain(|n| !n.is_empty());
    kinds.retain(|n| !n.is_empty());
    let requested = crd
        .pointer("/spec/names")
        .cloned()
        .unwrap_or_else(|| json!({}));
    let mut accepted = crd
        .pointer("/status/acceptedNames")
        .filter(|a| a.is_object())
        .cloned()
        .unwrap_or_else(|| json!({"plural": "", "kind": ""}));
    let mut conflict: Option<(&'static str, String)> = None;
    let mut check = |field: &str, reason: &'static str, claimed: &[&str]| {
        let wanted = requested.get(field).cloned().unwrap_or(Value::Null);
        let already = accepted.get(field).cloned().unwrap_or(Value::Null);
        let clash = match &wanted {
            Value::String(w) => {
                (wanted != already && claimed.contains(&w.as_str())).then(|| w.clone())
            }
            Value::Array(list) => list
                .iter()
                .filter_map(Value::as_str)
                .find(|w| {
                    claimed.contains(w)
                        && !already
                            .as_array()
                            .is_some_and(|a| a.iter().any(|x| x == *w))
                })
                .map(str::to_string),
            _ => None,
        };
        match clash {
            Some(taken) => {
                if conflict.is_none() {
                    conflict = Some((reason, format!("{taken:?} is already in use")));
                }
            }
            None => {
                if wanted.is_null() {
                    if let Some(map) = accepted.as_object_mut() {
                        map.remove(field);
                    }
                } else {
                    accepted[field] = wanted;
                }
            }
        }
    };
    check("plural", "PluralConflict", &resources);
    check("singular", "SingularConflict", &resources);
    check("shortNames", "ShortNamesConflict", &resources);
    check("kind", "KindConflict", &kinds);
    check("listKind", "ListKindConflict", &kinds);
    for field in ["categories"] {
        match requested.get(field) {
            Some(v) => accepted[field] = v.clone(),
            None => {
                if let Some(map) = accepted.as_object_mut() {
                    map.remove(field);
                }
            }
        }
    }
    if let Some(map) = accepted.as_object_mut() {
        // Accepted names are kept in Go's field order.
        let ordered: BTreeMap<String, Value> = map.clone().into_iter().collect();
        *map = ordered.into_iter().collect();
    }
    (conflict, accepted)
}

/// Whether a definition's names are all accepted, given the other definitions (the kind is
/// served only then).
pub fn names_accepted(crd: &Value, others: &[Value]) -> bool {
    accepted_names(crd, others).0.is_none()
}

/// The status the apiextensions controllers give a definition, given every other definition
/// (whose accepted names it must not take): `NamesAccepted` (`NoConflicts`, or the first
/// conflict), `Established` once the names are accepted, `Terminating` while its objects are
/// being deleted, the accepted names and the stored versions. Times of unchanged conditions are
/// kept; `now` stamps new ones.
pub fn desired_status(crd: &Value, others: &[Value], now: Timestamp) -> Value {
    let old_conditions: Vec<Value> = crd
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let stamp = now.strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
    let condition = |kind: &str, status: &str, reason: &str, message: &str| {
        let same = old_conditions
            .iter()
            .find(|c| text(c, "/type") == kind && text(c, "/status") == status);
        let time = same
            .and_then(|c| c.get("lastTransitionTime").cloned())
            .unwrap_or_else(|| Value::String(stamp.clone()));
        json!({"type": kind, "status": status, "lastTransitionTime": time,
               "reason": reason, "message": message})
    };
    let (conflict, names) = accepted_names(crd, others);
    let was_established = is_established(crd);
    let mut conditions = match &conflict {
        None => vec![
            condition("NamesAccepted", "True", "NoConflicts", "no conflicts found"),
            condition(
                "Established",
                "True",
                "InitialNamesAccepted",
                "the initial names have been accepted",
            ),
        ],
        Some((reason, message)) => vec![
            condition("NamesAccepted", "False", reason, message),
            if was_established {
                condition(
                    "Established",
                    "True",
                    "InitialNamesAccepted",
                    "the initial names have been accepted",
                )
            } else {
                condition(
                    "Established",
                    "False",
                    "NotAccepted",
                    "not all names are accepted",
                )
            },
        ],
    };
    if crd.pointer("/metadata/deletionTimestamp").is_some() {
        conditions.push(condition(
            "Terminating",
            "True",
            "InstanceDeletionInProgress",
            "CustomResource deletion is in progress",
        ));
    }
    let mut stored: Vec<Value> = crd
        .pointer("/status/storedVersions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if let Some(storage) = storage_version(crd) {
        if !stored.iter().any(|v| v == storage) {
            stored.push(Value::String(storage.to_string()));
        }
    }
    json!({"conditions": conditions, "acceptedNames": names, "storedVersions": stored})
}

/// Where a served version keeps its replica counts and selector, from its `scale` subresource.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScalePaths {
    /// JSON path of the desired replicas (`.spec.replicas`).
    pub spec_replicas: String,
    /// JSON path of the observed replicas (`.status.replicas`).
    pub status_replicas: String,
    /// JSON path of the label selector string, if declared.
    pub label_selector: Option<String>,
}

/// What a custom resource needs in one served version.
struct VersionBehaviour {
    schema: Value,
    /// Whether the schema declares CEL rules (evaluated on a thread of their own).
    has_rules: bool,
    columns: Vec<CustomColumn>,
    scale: Option<ScalePaths>,
}

/// The strategy of a custom resource: its schemas, printer columns and scale paths by version.
pub struct CustomStrategy {
    versions: BTreeMap<String, VersionBehaviour>,
    storage_version: String,
    status_enabled: bool,
}

impl CustomStrategy {
    fn version(&self, version: &str) -> Option<&VersionBehaviour> {
        self.versions
            .get(version)
            .or_else(|| self.versions.get(&self.storage_version))
    }

    /// Defaults then prunes an object as it is read or written in `version`.
    fn default_and_prune(&self, version: &str, root: &mut Map<String, Value>) {
        let Some(behaviour) = self.version(version) else {
            return;
        };
        let mut value = Value::Object(std::mem::take(root));
        schema::prune(&behaviour.schema, &mut value, "", &mut Vec::new());
        schema::apply_defaults(&behaviour.schema, &mut value);
        if let Value::Object(map) = value {
            *root = map;
        }
    }
}

impl KindStrategy for CustomStrategy {
    fn apply_defaults(&self, version: &str, root: &mut Map<String, Value>) {
        self.default_and_prune(version, root);
    }

    fn fill_never_omitted(&self, version: &str, root: &mut Map<String, Value>) {
        // Defaults apply on read too, so objects stored before a default was added carry it.
        if let Some(behaviour) = self.version(version) {
            let mut value = Value::Object(std::mem::take(root));
            schema::apply_defaults(&behaviour.schema, &mut value);
            if let Value::Object(map) = value {
                *root = map;
            }
        }
    }

    fn name_rule(&self) -> NameRule {
        NameRule::Dns1123Subdomain
    }

    fn validate(&self, obj: &Value, errs: &mut Vec<FieldError>) {
        if let Some(behaviour) = self.version(&self.storage_version) {
            schema::validate(&behaviour.schema, obj, "", errs);
            if behaviour.has_rules {
                rules::validate_object(&behaviour.schema, obj, None, errs);
            }
        }
    }

    fn validate_update(&self, new: &Value, old: &Value, errs: &mut Vec<FieldError>) {
        if let Some(behaviour) = self.version(&self.storage_version) {
            schema::validate(&behaviour.schema, new, "", errs);
            if behaviour.has_rules {
                rules::validate_object(&behaviour.schema, new, Some(old), errs);
            }
        }
    }

    fn prune(&self, version: &str, obj: &mut Value) -> Vec<String> {
        let mut pruned = Vec::new();
        if let Some(behaviour) = self.version(version) {
            schema::prune(&behaviour.schema, obj, "", &mut pruned);
        }
        pruned
    }

    fn openapi_schema(&self, version: &str) -> Option<&Value> {
        self.version(version).map(|b| &b.schema)
    }

    fn custom_columns(&self, version: &str) -> Option<&[CustomColumn]> {
        self.version(version).map(|b| b.columns.as_slice())
    }

    fn scale_paths(&self, version: &str) -> Option<ScalePaths> {
        self.version(version).and_then(|b| b.scale.clone())
    }

    fn is_custom_resource(&self) -> bool {
        true
    }

    fn prepare_for_write(&self, new: &mut Value, old: Option<&Value>) {
        // With a status subresource, status is written only through it: a new object starts
        // without one.
        if old.is_none() && self.status_enabled {
            if let Some(map) = new.as_object_mut() {
                map.remove("status");
            }
        }
    }
}

/// The printer columns of a version: the declared ones after `Name`, or `Age` when none are.
fn columns_of(version: &Value) -> Vec<CustomColumn> {
    let declared = version
        .get("additionalPrinterColumns")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    if declared.is_empty() {
        return vec![CustomColumn {
            name: "Age".into(),
            kind: "date".into(),
            format: String::new(),
            description: "Custom resource definition column (in JSONPath format): .metadata.creationTimestamp".into(),
            priority: 0,
            json_path: ".metadata.creationTimestamp".into(),
        }];
    }
    declared
        .iter()
        .map(|c| {
            let json_path = text(c, "/jsonPath").to_string();
            let description = match text(c, "/description") {
                "" => {
                    format!("Custom resource definition column (in JSONPath format): {json_path}")
                }
                d => d.to_string(),
            };
            CustomColumn {
                name: text(c, "/name").to_string(),
                kind: text(c, "/type").to_string(),
                format: text(c, "/format").to_string(),
                description,
                priority: c.get("priority").and_then(Value::as_i64).unwrap_or(0),
                json_path,
            }
        })
        .collect()
}

/// The kind a valid definition serves: one leaked [`ResourceInfo`] per served version
/// (storage version first among equals: served versions in the definition's order) and a
/// leaked [`CustomStrategy`]. `None` when no version is served or there is no storage version.
pub fn kind_for(crd: &Value) -> Option<&'static Kind> {
    let storage = storage_version(crd)?;
    let group = leak(text(crd, "/spec/group"));
    let kind = leak(text(crd, "/spec/names/kind"));
    let plural = leak(text(crd, "/spec/names/plural"));
    let singular = match text(crd, "/spec/names/singular") {
        "" => leak(&kind.to_lowercase()),
        s => leak(s),
    };
    let strings = |pointer: &str| -> &'static [&'static str] {
        let list: Vec<&'static str> = crd
            .pointer(pointer)
            .and_then(Value::as_array)
            .map(|l| l.iter().filter_map(Value::as_str).map(leak).collect())
            .unwrap_or_default();
        Box::leak(list.into_boxed_slice())
    };
    let short_names = strings("/spec/names/shortNames");
    let categories = strings("/spec/names/categories");
    let namespaced = text(crd, "/spec/scope") == "Namespaced";
    let storage_version = leak(storage);
    let mut infos = Vec::new();
    let mut behaviours = BTreeMap::new();
    let mut status_enabled = false;
    for version in versions(crd) {
        let name = text(version, "/name");
        let mut subresources = Vec::new();
        if version.pointer("/subresources/status").is_some() {
            subresources.push(Subresource::Status);
            if name == storage {
                status_enabled = true;
            }
        }
        let scale = version.pointer("/subresources/scale").map(|s| ScalePaths {
            spec_replicas: text(s, "/specReplicasPath").to_string(),
            status_replicas: text(s, "/statusReplicasPath").to_string(),
            label_selector: s
                .get("labelSelectorPath")
                .and_then(Value::as_str)
                .map(str::to_string),
        });
        if scale.is_some() {
            subresources.push(Subresource::Scale);
        }
        let version_schema = version
            .pointer("/schema/openAPIV3Schema")
            .cloned()
            .unwrap_or_else(|| json!({"type": "object"}));
        behaviours.insert(
            name.to_string(),
            VersionBehaviour {
                has_rules: rules::has_rules(&version_schema),
                schema: version_schema,
                columns: columns_of(version),
                scale,
            },
        );
        if version.get("served").and_then(Value::as_bool) != Some(true) {
            continue;
        }
        infos.push(&*Box::leak(Box::new(ResourceInfo {
            group,
            version: leak(name),
            kind,
            plural,
            singular,
            namespaced,
            short_names,
            categories,
            subresources: Box::leak(subresources.into_boxed_slice()),
            storage_version,
            storage_group: None,
            has_generation: true,
        })));
    }
    if infos.is_empty() {
        return None;
    }
    // The served storage version must be found even when it is not served: keep an entry.
    if !infos.iter().any(|i| i.version == storage_version) {
        return None;
    }
    // Kubernetes prefers versions by their names' priority (v2 > v1 > v1beta1); the order of the
    // definition is kept, which the common case (one version, or the newest first) matches.
    let strategy: &'static CustomStrategy = Box::leak(Box::new(CustomStrategy {
        versions: behaviours,
        storage_version: storage_version.to_string(),
        status_enabled,
    }));
    Some(Box::leak(Box::new(Kind {
        versions: Box::leak(infos.into_boxed_slice()),
        strategy,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn widget_crd() -> Value {
        json!({
            "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": "widgets.example.com"},
            "spec": {"group": "example.com", "scope": "Namespaced",
                "names": {"plural": "widgets", "kind": "Widget", "shortNames": ["wd"]},
                "versions": [{"name": "v1", "served": true, "storage": true,
                    "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                        "spec": {"type": "object", "properties": {"replicas": {"type": "integer", "default": 1}}}}}},
                    "subresources": {"status": {}, "scale": {"specReplicasPath": ".spec.replicas",
                        "statusReplicasPath": ".status.replicas"}}}]}
        })
    }

    fn messages(crd: &Value) -> Vec<String> {
        let mut errs = Vec::new();
        validate_definition(crd, &mut errs);
        errs.iter().map(FieldError::full).collect()
    }

    #[test]
    fn definition_validation_table() {
        let mut wrong_name = widget_crd();
        wrong_name["metadata"]["name"] = json!("gadgets.example.com");
        let mut no_dot = widget_crd();
        no_dot["spec"]["group"] = json!("example");
        no_dot["metadata"]["name"] = json!("widgets.example");
        let mut two_storage = widget_crd();
        let mut second = two_storage["spec"]["versions"][0].clone();
        second["name"] = json!("v2");
        two_storage["spec"]["versions"]
            .as_array_mut()
            .unwrap()
            .push(second);
        let mut no_schema = widget_crd();
        no_schema["spec"]["versions"][0]
            .as_object_mut()
            .unwrap()
            .remove("schema");
        let mut bad_scope = widget_crd();
        bad_scope["spec"]["scope"] = json!("Global");
        let rows: Vec<(Value, Vec<&str>)> = vec![
            (widget_crd(), vec![]),
            (
                wrong_name,
                vec!["metadata.name: Invalid value: \"gadgets.example.com\": must be spec.names.plural+\".\"+spec.group"],
            ),
            (
                no_dot,
                vec!["spec.group: Invalid value: \"example\": should be a domain with at least one dot"],
            ),
            (
                no_schema,
                vec!["spec.versions[0].schema.openAPIV3Schema: Required value: schemas are required"],
            ),
            (
                bad_scope,
                vec!["spec.scope: Unsupported value: \"Global\": supported values: \"Cluster\", \"Namespaced\""],
            ),
        ];
        assert_eq!(rows.len(), 5);
        for (crd, expected) in rows {
            assert_eq!(messages(&crd), expected);
        }
        let two = messages(&two_storage);
        assert_eq!(two.len(), 1, "{two:?}");
        assert!(
            two[0].ends_with("must have exactly one version marked as storage version"),
            "{}",
            two[0]
        );
    }

    #[test]
    fn status_accepts_names_establishes_and_records_the_storage_version() {
        let now: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let mut crd = widget_crd();
        apply_definition_defaults(crd.as_object_mut().unwrap());
        assert_eq!(crd["spec"]["names"]["singular"], "widget");
        assert_eq!(crd["spec"]["names"]["listKind"], "WidgetList");
        assert_eq!(crd["spec"]["conversion"], json!({"strategy": "None"}));
        let status = desired_status(&crd, &[], now);
        assert_eq!(status["storedVersions"], json!(["v1"]));
        assert_eq!(status["acceptedNames"]["kind"], "Widget");
        assert_eq!(
            status["conditions"][1],
            json!({"type": "Established", "status": "True", "lastTransitionTime": "2026-01-01T00:00:00Z",
                   "reason": "InitialNamesAccepted", "message": "the initial names have been accepted"})
        );
        crd["status"] = status;
        assert!(is_established(&crd));
        let later = desired_status(&crd, &[], "2026-02-01T00:00:00Z".parse().unwrap());
        assert_eq!(later["conditions"], crd["status"]["conditions"]);
    }

    #[test]
    fn names_other_definitions_hold_are_not_accepted() {
        let now: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let mut widgets = widget_crd();
        apply_definition_defaults(widgets.as_object_mut().unwrap());
        widgets["status"] = desired_status(&widgets, &[], now);
        let gadgets = |names: Value| {
            let mut crd = widget_crd();
            crd["metadata"]["name"] = json!("gadgets.example.com");
            crd["spec"]["names"] = names;
            apply_definition_defaults(crd.as_object_mut().unwrap());
            crd
        };
        let rows: Vec<(Value, Option<(&str, &str)>)> = vec![
            (json!({"plural": "gadgets", "kind": "Gadget"}), None),
            (
                json!({"plural": "gadgets", "kind": "Gadget", "shortNames": ["wd"]}),
                Some(("ShortNamesConflict", "\"wd\" is already in use")),
            ),
            (
                json!({"plural": "gadgets", "singular": "gadget", "kind": "Widget"}),
                Some(("KindConflict", "\"Widget\" is already in use")),
            ),
            (
                json!({"plural": "gadgets", "singular": "widget", "kind": "Gadget"}),
                Some(("SingularConflict", "\"widget\" is already in use")),
            ),
        ];
        assert_eq!(rows.len(), 4);
        for (names, expected) in rows {
            let crd = gadgets(names.clone());
            let status = desired_status(&crd, std::slice::from_ref(&widgets), now);
            let accepted = &status["conditions"][0];
            let established = &status["conditions"][1];
            match expected {
                None => {
                    assert_eq!(accepted["status"], "True", "{names}");
                    assert!(names_accepted(&crd, std::slice::from_ref(&widgets)));
                }
                Some((reason, message)) => {
                    assert_eq!(
                        (
                            accepted["status"].as_str(),
                            accepted["reason"].as_str(),
                            accepted["message"].as_str()
                        ),
                        (Some("False"), Some(reason), Some(message)),
                        "{names}"
                    );
                    assert_eq!(established["reason"], "NotAccepted", "{names}");
                    assert!(!names_accepted(&crd, std::slice::from_ref(&widgets)));
                }
            }
        }
    }

    #[test]
    fn the_kind_serves_each_served_version_with_its_subresources() {
        let kind = kind_for(&widget_crd()).expect("a kind");
        assert_eq!(kind.versions.len(), 1);
        let v1 = kind.versions[0];
        assert_eq!(
            (v1.group, v1.version, v1.plural, v1.singular, v1.kind),
            ("example.com", "v1", "widgets", "widget", "Widget")
        );
        assert!(v1.namespaced);
        assert_eq!(v1.short_names, &["wd"]);
        assert!(v1.has_subresource(Subresource::Status));
        assert!(v1.has_subresource(Subresource::Scale));
        let paths = kind.strategy.scale_paths("v1").expect("scale paths");
        assert_eq!(paths.spec_replicas, ".spec.replicas");
        let mut obj = json!({"apiVersion": "example.com/v1", "kind": "Widget",
            "metadata": {"name": "w"}, "spec": {"junk": true}, "status": {"replicas": 1}});
        kind.strategy
            .apply_defaults("v1", obj.as_object_mut().unwrap());
        assert_eq!(obj["spec"], json!({"replicas": 1}));
        kind.strategy.prepare_for_write(&mut obj, None);
        assert!(obj.get("status").is_none());
    }
}
