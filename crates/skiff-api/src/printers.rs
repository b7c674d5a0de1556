//! Server-side printing: `meta.k8s.io/v1` `Table` answers with the columns and cells Kubernetes'
//! own printers produce, because `kubectl get` shows whatever the server puts in the table and
//! only falls back to `NAME AGE` without one.
//!
//! Like the real server, every table is built "wide": priority-1 columns always carry cells and
//! kubectl hides them unless `-o wide` is given.

use jiff::Timestamp;
use serde_json::{json, Map, Value};

use crate::resources::ResourceInfo;

/// What each table row carries in `object`, from the `includeObject` query parameter.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum IncludeObject {
    /// `includeObject=None`: rows carry no object.
    None,
    /// The default: a `PartialObjectMetadata`, which kubectl needs for `-A`, `--show-labels`
    /// and `-L`.
    #[default]
    Metadata,
    /// `includeObject=Object`: the full object, which `kubectl get --sort-by` needs.
    Object,
}

impl IncludeObject {
    /// Reads the `includeObject` query parameter; absent or unknown values mean `Metadata`.
    pub fn parse(value: Option<&str>) -> IncludeObject {
        match value {
            Some("None") => IncludeObject::None,
            Some("Object") => IncludeObject::Object,
            _ => IncludeObject::Metadata,
        }
    }
}

/// One column of a table, as `metav1.TableColumnDefinition`.
pub(crate) struct Column {
    pub(crate) name: &'static str,
    pub(crate) kind: &'static str,
    pub(crate) format: &'static str,
    pub(crate) description: &'static str,
    /// 0 for always shown, 1 for `-o wide` only.
    pub(crate) priority: u8,
}

impl Column {
    fn to_json(&self) -> Value {
        json!({
            "name": self.name,
            "type": self.kind,
            "format": self.format,
            "description": self.description,
            "priority": self.priority,
        })
    }
}

const NAME_DESC: &str =
    "Name of the object, unique within its namespace (or cluster-wide for cluster-scoped kinds).";
pub(crate) const AGE_DESC: &str =
    "Time since the server created the object (metadata.creationTimestamp).";
pub(crate) const CONTAINERS_DESC: &str = "Names of the containers in the pod template.";
pub(crate) const IMAGES_DESC: &str = "Images the containers in the pod template run.";

/// A priority-0 column.
pub(crate) const fn col(
    name: &'static str,
    kind: &'static str,
    description: &'static str,
) -> Column {
    Column {
        name,
        kind,
        format: "",
        description,
        priority: 0,
    }
}

/// A priority-1 column, shown by kubectl only with `-o wide`.
pub(crate) const fn wide(
    name: &'static str,
    kind: &'static str,
    description: &'static str,
) -> Column {
    Column {
        priority: 1,
        ..col(name, kind, description)
    }
}

/// The `Name` column, marked `format: name` so clients know which column identifies the row.
pub(crate) const fn name_col() -> Column {
    Column {
        format: "name",
        ..col("Name", "string", NAME_DESC)
    }
}

pub(crate) const fn age_col() -> Column {
    col("Age", "string", AGE_DESC)
}

/// Computes one row's cells from an object and the current time.
pub(crate) type CellFn = fn(&Value, Timestamp) -> Vec<Value>;

/// The printer for one kind: its columns and how to compute one row's cells. Kinds declare
/// theirs in their module under `kinds`; kinds without one get [`Printer::generic`].
pub struct Printer {
    pub(crate) columns: Vec<Column>,
    pub(crate) cells: CellFn,
    /// The row `conditions` (pods mark finished ones `Completed`), for kinds that have them.
    pub(crate) row_conditions: Option<fn(&Value) -> Option<Value>>,
}

impl Printer {
    /// A printer with no row conditions.
    pub(crate) fn new(columns: Vec<Column>, cells: CellFn) -> Printer {
        Printer {
            columns,
            cells,
            row_conditions: None,
        }
    }

    /// The `Name` and `Created At` columns Kubernetes prints for kinds without a printer.
    fn generic() -> Printer {
        Printer::new(
            vec![
                name_col(),
                col("Created At", "date", "When the server created the object."),
            ],
            default_cells,
        )
    }
}

/// One printer column a CustomResourceDefinition declares (`additionalPrinterColumns`), whose
/// cells come from a JSONPath into each object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CustomColumn {
    /// The column's header.
    pub name: String,
    /// `integer`, `number`, `string`, `boolean` or `date`.
    pub kind: String,
    /// The OpenAPI format hint, possibly empty.
    pub format: String,
    /// The column's description.
    pub description: String,
    /// 0 for always shown, more for `-o wide` only.
    pub priority: i64,
    /// Where each cell comes from, e.g. `.spec.replicas`.
    pub json_path: String,
}

/// The value a simple JSONPath (`.a.b`, `.a[0].b`, `{.a.b}`, `.a[-1]`) names in an object.
pub fn json_path_value<'a>(obj: &'a Value, path: &str) -> Option<&'a Value> {
    let path = path.trim();
    let path = path
        .strip_prefix('{')
        .and_then(|p| p.strip_suffix('}'))
        .unwrap_or(path);
    let mut current = obj;
    for part in path.split('.').filter(|p| !p.is_empty()) {
        let (field, indexes) = match part.find('[') {
            Some(i) => (&part[..i], &part[i..]),
            None => (part, ""),
        };
        if !field.is_empty() {
            current = current.get(field)?;
        }
        for index in indexes.split(['[', ']']).filter(|i| !i.is_empty()) {
            let list = current.as_array()?;
            let i: i64 = index.parse().ok()?;
            let i = if i < 0 {
                i64::try_from(list.len()).ok()?.checked_add(i)?
            } else {
                i
            };
            current = list.get(usize::try_from(i).ok()?)?;
        }
    }
    Some(current)
}

fn custom_cell(column: &CustomColumn, obj: &Value, now: Timestamp) -> Value {
    let Some(value) = json_path_value(obj, &column.json_path) else {
        return Value::Null;
    };
    match (column.kind.as_str(), value) {
        ("date", Value::String(s)) => match s.parse::<Timestamp>() {
            Ok(t) => Value::String(human_duration(now.duration_since(t).as_secs())),
            Err(_) => Value::String(s.clone()),
        },
        ("integer", Value::Number(_)) | ("number", Value::Number(_)) => value.clone(),
        ("boolean", Value::Bool(_)) => value.clone(),
        ("string", Value::String(_)) => value.clone(),
        (_, Value::Null) => Value::Null,
        (_, Value::String(s)) => Value::String(s.clone()),
        (_, other) => Value::String(crate::errors::go_json(other)),
    }
}

/// The `Table` of a custom resource: `Name`, then the definition's columns.
fn custom_table(
    columns: &[CustomColumn],
    objects: &[Value],
    include: IncludeObject,
    now: Timestamp,
) -> Value {
    let mut definitions = vec![name_col().to_json()];
    definitions.extend(columns.iter().map(|c| {
        json!({"name": c.name, "type": c.kind, "format": c.format,
               "description": c.description, "priority": c.priority})
    }));
    let rows: Vec<Value> = objects
        .iter()
        .map(|obj| {
            let mut cells = vec![name(obj)];
            cells.extend(columns.iter().map(|c| custom_cell(c, obj, now)));
            json!({"cells": cells, "object": row_object(obj, include)})
        })
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {},
        "columnDefinitions": definitions,
        "rows": rows,
    })
}

fn printer_for(resource: &ResourceInfo) -> Printer {
    crate::kinds::strategy_for(resource)
        .printer()
        .unwrap_or_else(Printer::generic)
}

/// Builds the `Table` Kubernetes answers a list or get with when asked for
/// `application/json;as=Table;v=v1;g=meta.k8s.io`. `metadata` is left empty for the caller to
/// fill with `resourceVersion` and `continue`. Ages are computed against `now`.
pub fn table(
    resource: &ResourceInfo,
    objects: &[Value],
    include: IncludeObject,
    now: Timestamp,
) -> Value {
    if let Some(columns) = crate::kinds::strategy_for(resource).custom_columns(resource.version) {
        return custom_table(columns, objects, include, now);
    }
    let printer = printer_for(resource);
    let columns: Vec<Value> = printer.columns.iter().map(Column::to_json).collect();
    let rows: Vec<Value> = objects
        .iter()
        .map(|obj| {
            let mut row = Map::new();
            row.insert("cells".into(), Value::Array((printer.cells)(obj, now)));
            if let Some(conditions) = printer.row_conditions.and_then(|f| f(obj)) {
                row.insert("conditions".into(), conditions);
            }
            row.insert("object".into(), row_object(obj, include));
            Value::Object(row)
        })
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {},
        "columnDefinitions": columns,
        "rows": rows,
    })
}

fn row_object(obj: &Value, include: IncludeObject) -> Value {
    match include {
        IncludeObject::None => Value::Null,
        IncludeObject::Object => obj.clone(),
        IncludeObject::Metadata => json!({
            "kind": "PartialObjectMetadata",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": obj.get("metadata").cloned().unwrap_or_else(|| json!({})),
        }),
    }
}

/// Formats an elapsed time as `duration.HumanDuration` does: precise when recent, coarser as it
/// grows (`5s`, `3m10s`, `59m`, `3h5m`, `2d3h`, `8d`, `2y123d`). Up to one second in the future
/// reads `0s` (clock skew); further is `<invalid>`.
pub fn human_duration(seconds: i64) -> String {
    if seconds < -1 {
        return "<invalid>".to_string();
    }
    if seconds < 0 {
        return "0s".to_string();
    }
    if seconds < 60 * 2 {
        return format!("{seconds}s");
    }
    let minutes = seconds / 60;
    if minutes < 10 {
        let s = seconds % 60;
        return if s == 0 {
            format!("{minutes}m")
        } else {
            format!("{minutes}m{s}s")
        };
    }
    if minutes < 60 * 3 {
        return format!("{minutes}m");
    }
    let hours = seconds / 3600;
    if hours < 8 {
        let m = minutes % 60;
        return if m == 0 {
            format!("{hours}h")
        } else {
            format!("{hours}h{m}m")
        };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        let h = hours % 24;
        return if h == 0 {
            format!("{}d", hours / 24)
        } else {
            format!("{}d{h}h", hours / 24)
        };
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    if hours < 24 * 365 * 8 {
        let days = (hours / 24) % 365;
        return if days == 0 {
            format!("{}y", hours / 24 / 365)
        } else {
            format!("{}y{days}d", hours / 24 / 365)
        };
    }
    format!("{}y", hours / 24 / 365)
}

/// The string at a JSON pointer, or `""`.
pub(crate) fn text<'a>(obj: &'a Value, pointer: &str) -> &'a str {
    obj.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

/// The integer at a JSON pointer, or `default`.
pub(crate) fn int(obj: &Value, pointer: &str, default: i64) -> i64 {
    obj.pointer(pointer)
        .and_then(Value::as_i64)
        .unwrap_or(default)
}

/// The array at a JSON pointer, or an empty slice.
pub(crate) fn list<'a>(obj: &'a Value, pointer: &str) -> &'a [Value] {
    obj.pointer(pointer)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
}

pub(crate) fn or_none(s: &str) -> String {
    if s.is_empty() {
        "<none>".to_string()
    } else {
        s.to_string()
    }
}

pub(crate) fn timestamp(obj: &Value, pointer: &str) -> Option<Timestamp> {
    text(obj, pointer).parse::<Timestamp>().ok()
}

/// `translateTimestampSince`: the age of a timestamp, `<unknown>` when it is unset.
pub(crate) fn since(ts: Option<Timestamp>, now: Timestamp) -> String {
    match ts {
        Some(ts) => human_duration(now.duration_since(ts).as_secs()),
        None => "<unknown>".to_string(),
    }
}

pub(crate) fn age(obj: &Value, now: Timestamp) -> Value {
    Value::from(since(timestamp(obj, "/metadata/creationTimestamp"), now))
}

pub(crate) fn name(obj: &Value) -> Value {
    Value::from(text(obj, "/metadata/name"))
}

/// `layoutContainerCells`: container names and images, comma-joined.
pub(crate) fn container_cells(obj: &Value) -> [Value; 2] {
    let containers = list(obj, "/spec/template/spec/containers");
    let names: Vec<&str> = containers.iter().map(|c| text(c, "/name")).collect();
    let images: Vec<&str> = containers.iter().map(|c| text(c, "/image")).collect();
    [names.join(",").into(), images.join(",").into()]
}

pub(crate) fn map_len(obj: &Value, pointer: &str) -> usize {
    obj.pointer(pointer)
        .and_then(Value::as_object)
        .map_or(0, Map::len)
}

/// The server's default table for kinds without a printer: name and creation time.
pub(crate) fn default_cells(obj: &Value, _now: Timestamp) -> Vec<Value> {
    vec![name(obj), text(obj, "/metadata/creationTimestamp").into()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::find;

    const NOW: &str = "2024-05-01T12:00:00Z";
    /// One hour before `NOW`, so every age cell reads `60m`.
    const CREATED: &str = "2024-05-01T11:00:00Z";

    fn now() -> Timestamp {
        NOW.parse().expect("valid timestamp")
    }

    fn resource(group: &str, version: &str, plural: &str) -> &'static ResourceInfo {
        find(group, version, plural).expect("registered resource")
    }

    /// The cells of each row of the table for `objects`.
    fn cells(group: &str, version: &str, plural: &str, objects: &[Value]) -> Vec<Vec<Value>> {
        let t = table(
            resource(group, version, plural),
            objects,
            IncludeObject::Metadata,
            now(),
        );
        t["rows"]
            .as_array()
            .expect("rows")
            .iter()
            .map(|r| r["cells"].as_array().expect("cells").clone())
            .collect()
    }

    fn one_row(group: &str, version: &str, plural: &str, object: Value) -> Vec<Value> {
        cells(group, version, plural, &[object]).remove(0)
    }

    /// Column names with their priorities, as kubectl reads them.
    fn columns(group: &str, version: &str, plural: &str) -> Vec<(String, u64)> {
        let t = table(
            resource(group, version, plural),
            &[],
            IncludeObject::None,
            now(),
        );
        t["columnDefinitions"]
            .as_array()
            .expect("columns")
            .iter()
            .map(|c| {
                assert!(
                    !c["description"].as_str().unwrap_or_default().is_empty(),
                    "{c}"
                );
                (
                    c["name"].as_str().unwrap_or_default().to_string(),
                    c["priority"].as_u64().unwrap_or(99),
                )
            })
            .collect()
    }

    fn named(cols: &[(&str, u64)]) -> Vec<(String, u64)> {
        cols.iter().map(|(n, p)| (n.to_string(), *p)).collect()
    }

    #[test]
    fn human_duration_matches_kubernetes_buckets() {
        let day = 86_400;
        let cases = [
            (-5, "<invalid>"),
            (-2, "<invalid>"),
            (-1, "0s"),
            (0, "0s"),
            (5, "5s"),
            (119, "119s"),
            (120, "2m"),
            (190, "3m10s"),
            (599, "9m59s"),
            (600, "10m"),
            (3540, "59m"),
            (3600, "60m"),
            (10_799, "179m"),
            (10_800, "3h"),
            (11_100, "3h5m"),
            (8 * 3600 - 1, "7h59m"),
            (8 * 3600, "8h"),
            (47 * 3600 + 59 * 60, "47h"),
            (2 * day, "2d"),
            (2 * day + 3 * 3600, "2d3h"),
            (8 * day, "8d"),
            (729 * day, "729d"),
            (730 * day, "2y"),
            ((730 + 123) * day, "2y123d"),
            (8 * 365 * day, "8y"),
        ];
        for (seconds, want) in cases {
            assert_eq!(human_duration(seconds), want, "{seconds}s");
        }
    }

    #[test]
    fn include_object_parses_the_query_parameter() {
        assert_eq!(IncludeObject::parse(None), IncludeObject::Metadata);
        assert_eq!(
            IncludeObject::parse(Some("Metadata")),
            IncludeObject::Metadata
        );
        assert_eq!(IncludeObject::parse(Some("Object")), IncludeObject::Object);
        assert_eq!(IncludeObject::parse(Some("None")), IncludeObject::None);
    }

    #[test]
    fn table_envelope_and_row_objects() {
        let cm = json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "cfg", "namespace": "default", "labels": {"a": "b"},
                         "creationTimestamp": CREATED},
            "data": {"k": "v"}
        });
        let configmaps = resource("", "v1", "configmaps");
        let t = table(
            configmaps,
            std::slice::from_ref(&cm),
            IncludeObject::Metadata,
            now(),
        );
        assert_eq!(t["kind"], "Table");
        assert_eq!(t["apiVersion"], "meta.k8s.io/v1");
        assert_eq!(t["metadata"], json!({}));
        assert_eq!(
            t["columnDefinitions"][0],
            json!({"name": "Name", "type": "string", "format": "name",
                   "description": NAME_DESC, "priority": 0})
        );
        assert_eq!(
            t["rows"][0]["object"],
            json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                   "metadata": cm["metadata"].clone()})
        );
        let full = table(
            configmaps,
            std::slice::from_ref(&cm),
            IncludeObject::Object,
            now(),
        );
        assert_eq!(full["rows"][0]["object"], cm);
        let bare = table(configmaps, &[cm], IncludeObject::None, now());
        assert_eq!(bare["rows"][0]["object"], Value::Null);
        assert_eq!(bare["rows"][0]["cells"], json!(["cfg", 1, "60m"]));
    }

    fn pod(spec: Value, status: Value) -> Value {
        json!({
            "metadata": {"name": "web-1", "namespace": "default", "creationTimestamp": CREATED},
            "spec": spec,
            "status": status
        })
    }

    fn running(name: &str, ready: bool, restarts: i64) -> Value {
        json!({"name": name, "ready": ready, "restartCount": restarts,
               "state": {"running": {"startedAt": CREATED}}})
    }

    #[test]
    fn pod_columns_match_kubernetes() {
        assert_eq!(
            columns("", "v1", "pods"),
            named(&[
                ("Name", 0),
                ("Ready", 0),
                ("Status", 0),
                ("Restarts", 0),
                ("Age", 0),
                ("IP", 1),
                ("Node", 1),
                ("Nominated Node", 1),
                ("Readiness Gates", 1),
            ])
        );
    }

    #[test]
    fn pod_status_ready_and_restarts() {
        let two = json!({"containers": [{"name": "web"}, {"name": "log"}]});
        let one = json!({"containers": [{"name": "web"}]});
        let with_init =
            json!({"initContainers": [{"name": "init"}], "containers": [{"name": "web"}]});
        let cases: Vec<(&str, Value, Value, [&str; 3])> = vec![
            (
                "running and ready",
                two.clone(),
                json!({"phase": "Running", "containerStatuses": [
                    running("web", true, 0), running("log", true, 0)]}),
                ["2/2", "Running", "0"],
            ),
            (
                "pending without statuses",
                one.clone(),
                json!({"phase": "Pending"}),
                ["0/1", "Pending", "0"],
            ),
            (
                "image pull waiting",
                one.clone(),
                json!({"phase": "Pending", "containerStatuses": [{"name": "web", "ready": false,
                    "restartCount": 0, "state": {"waiting": {"reason": "ErrImagePull"}}}]}),
                ["0/1", "ErrImagePull", "0"],
            ),
            (
                "crash loop with last restart five minutes ago",
                one.clone(),
                json!({"phase": "Running", "containerStatuses": [{"name": "web", "ready": false,
                    "restartCount": 3, "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                    "lastState": {"terminated": {"exitCode": 1, "reason": "Error",
                        "finishedAt": "2024-05-01T11:55:00Z"}}}]}),
                ["0/1", "CrashLoopBackOff", "3 (5m ago)"],
            ),
            (
                "restarted and running again",
                one.clone(),
                json!({"phase": "Running", "containerStatuses": [{"name": "web", "ready": true,
                    "restartCount": 2, "state": {"running": {}},
                    "lastState": {"terminated": {"exitCode": 137, "reason": "OOMKilled",
                        "finishedAt": "2024-05-01T09:00:00Z"}}}]}),
                ["1/1", "Running", "2 (3h ago)"],
            ),
            (
                "terminated without reason shows exit code",
                one.clone(),
                json!({"phase": "Failed", "containerStatuses": [{"name": "web", "ready": false,
                    "restartCount": 0, "state": {"terminated": {"exitCode": 2}}}]}),
                ["0/1", "ExitCode:2", "0"],
            ),
            (
                "terminated by signal",
                one.clone(),
                json!({"phase": "Failed", "containerStatuses": [{"name": "web", "ready": false,
                    "restartCount": 0, "state": {"terminated": {"exitCode": 0, "signal": 9}}}]}),
                ["0/1", "Signal:9", "0"],
            ),
            (
                "completed",
                one.clone(),
                json!({"phase": "Succeeded", "containerStatuses": [{"name": "web", "ready": false,
                    "restartCount": 0, "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}]}),
                ["0/1", "Completed", "0"],
            ),
            (
                "one container completed while another runs, pod not ready",
                two.clone(),
                json!({"phase": "Running", "conditions": [{"type": "Ready", "status": "False"}],
                    "containerStatuses": [
                        {"name": "web", "ready": false, "restartCount": 0,
                         "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}},
                        running("log", true, 0)]}),
                ["1/2", "NotReady", "0"],
            ),
            (
                "one container completed while another runs, pod ready",
                two.clone(),
                json!({"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}],
                    "containerStatuses": [
                        {"name": "web", "ready": false, "restartCount": 0,
                         "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}},
                        running("log", true, 0)]}),
                ["1/2", "Running", "0"],
            ),
            (
                "init container still running",
                with_init.clone(),
                json!({"phase": "Pending",
                    "initContainerStatuses": [{"name": "init", "ready": false, "restartCount": 0,
                        "state": {"running": {}}}],
                    "containerStatuses": [{"name": "web", "ready": false, "restartCount": 0,
                        "state": {"waiting": {"reason": "PodInitializing"}}}]}),
                ["0/1", "Init:0/1", "0"],
            ),
            (
                "init container waiting on image",
                with_init.clone(),
                json!({"phase": "Pending", "initContainerStatuses": [{"name": "init",
                    "ready": false, "restartCount": 0,
                    "state": {"waiting": {"reason": "ImagePullBackOff"}}}]}),
                ["0/1", "Init:ImagePullBackOff", "0"],
            ),
            (
                "init container failed",
                with_init.clone(),
                json!({"phase": "Pending", "initContainerStatuses": [{"name": "init",
                    "ready": false, "restartCount": 4,
                    "state": {"terminated": {"exitCode": 1, "reason": "Error"}},
                    "lastState": {"terminated": {"exitCode": 1, "reason": "Error",
                        "finishedAt": "2024-05-01T11:59:00Z"}}}]}),
                ["0/1", "Init:Error", "4 (60s ago)"],
            ),
            (
                "init done, main container running",
                with_init.clone(),
                json!({"phase": "Running",
                    "conditions": [{"type": "Initialized", "status": "True"}],
                    "initContainerStatuses": [{"name": "init", "ready": true, "restartCount": 0,
                        "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}],
                    "containerStatuses": [running("web", true, 0)]}),
                ["1/1", "Running", "0"],
            ),
            (
                "sidecar init container counts toward ready",
                json!({"initContainers": [{"name": "proxy", "restartPolicy": "Always"}],
                       "containers": [{"name": "web"}]}),
                json!({"phase": "Running",
                    "conditions": [{"type": "Initialized", "status": "True"}],
                    "initContainerStatuses": [{"name": "proxy", "ready": true, "started": true,
                        "restartCount": 1, "state": {"running": {}},
                        "lastState": {"terminated": {"exitCode": 1,
                            "finishedAt": "2024-05-01T11:58:00Z"}}}],
                    "containerStatuses": [running("web", true, 0)]}),
                ["2/2", "Running", "1 (2m ago)"],
            ),
            (
                "scheduling gated",
                one.clone(),
                json!({"phase": "Pending", "conditions": [
                    {"type": "PodScheduled", "status": "False", "reason": "SchedulingGated"}]}),
                ["0/1", "SchedulingGated", "0"],
            ),
            (
                "evicted",
                one.clone(),
                json!({"phase": "Failed", "reason": "Evicted"}),
                ["0/1", "Evicted", "0"],
            ),
        ];
        for (case, spec, status, want) in cases {
            let row = one_row("", "v1", "pods", pod(spec, status));
            assert_eq!(
                [row[1].clone(), row[2].clone(), row[3].clone()],
                want.map(Value::from),
                "{case}"
            );
            assert_eq!(row[4], "60m", "{case}");
        }
    }

    #[test]
    fn deleting_pods_read_terminating_or_unknown() {
        let mut p = pod(
            json!({"containers": [{"name": "web"}]}),
            json!({"phase": "Running", "containerStatuses": [running("web", true, 0)]}),
        );
        p["metadata"]["deletionTimestamp"] = json!("2024-05-01T11:59:30Z");
        assert_eq!(one_row("", "v1", "pods", p.clone())[2], "Terminating");
        p["status"]["reason"] = json!("NodeLost");
        assert_eq!(one_row("", "v1", "pods", p.clone())[2], "Unknown");
        p["status"] = json!({"phase": "Succeeded"});
        assert_eq!(one_row("", "v1", "pods", p)[2], "Succeeded");
    }

    #[test]
    fn pod_wide_cells_and_completed_condition() {
        let p = pod(
            json!({"nodeName": "node-a", "containers": [{"name": "web"}],
                   "readinessGates": [{"conditionType": "example.com/lb"},
                                      {"conditionType": "example.com/dns"}]}),
            json!({"phase": "Running", "podIP": "10.1.0.5", "podIPs": [{"ip": "10.1.0.5"}],
                   "nominatedNodeName": "node-b",
                   "conditions": [{"type": "example.com/lb", "status": "True"},
                                  {"type": "example.com/dns", "status": "False"}],
                   "containerStatuses": [running("web", true, 0)]}),
        );
        let row = one_row("", "v1", "pods", p);
        assert_eq!(
            row[5..].to_vec(),
            vec![
                json!("10.1.0.5"),
                json!("node-a"),
                json!("node-b"),
                json!("1/2")
            ]
        );
        let bare = one_row(
            "",
            "v1",
            "pods",
            pod(json!({"containers": []}), json!({"phase": "Pending"})),
        );
        assert_eq!(
            bare[5..].to_vec(),
            vec![
                json!("<none>"),
                json!("<none>"),
                json!("<none>"),
                json!("<none>")
            ]
        );

        let done = pod(json!({"containers": []}), json!({"phase": "Succeeded"}));
        let t = table(
            resource("", "v1", "pods"),
            &[done],
            IncludeObject::None,
            now(),
        );
        assert_eq!(
            t["rows"][0]["conditions"],
            json!([{"type": "Completed", "status": "True", "reason": "Succeeded",
                    "message": "The pod has completed successfully."}])
        );
        let live = pod(json!({"containers": []}), json!({"phase": "Running"}));
        let t = table(
            resource("", "v1", "pods"),
            &[live],
            IncludeObject::None,
            now(),
        );
        assert!(t["rows"][0].get("conditions").is_none());
    }

    fn workload(kind_spec: Value, status: Value) -> Value {
        json!({
            "metadata": {"name": "web", "namespace": "default", "creationTimestamp": CREATED},
            "spec": kind_spec,
            "status": status
        })
    }

    fn template() -> Value {
        json!({"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [
            {"name": "web", "image": "nginx:1.25"}, {"name": "log", "image": "busybox"}]}})
    }

    #[test]
    fn deployments_print_ready_over_desired_and_selector() {
        assert_eq!(
            columns("apps", "v1", "deployments"),
            named(&[
                ("Name", 0),
                ("Ready", 0),
                ("Up-to-date", 0),
                ("Available", 0),
                ("Age", 0),
                ("Containers", 1),
                ("Images", 1),
                ("Selector", 1),
            ])
        );
        let d = workload(
            json!({"replicas": 3, "selector": {"matchLabels": {"app": "web"},
                "matchExpressions": [{"key": "tier", "operator": "In", "values": ["b", "a"]}]},
                "template": template()}),
            json!({"replicas": 3, "readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2}),
        );
        assert_eq!(
            one_row("apps", "v1", "deployments", d),
            vec![
                json!("web"),
                json!("2/3"),
                json!(3),
                json!(2),
                json!("60m"),
                json!("web,log"),
                json!("nginx:1.25,busybox"),
                json!("app=web,tier in (a,b)"),
            ]
        );
        let fresh = workload(json!({"template": template()}), json!({}));
        let row = one_row("apps", "v1", "deployments", fresh);
        assert_eq!(row[1..4].to_vec(), vec![json!("0/1"), json!(0), json!(0)]);
        assert_eq!(row[7], "");
    }

    #[test]
    fn replicasets_print_counts_and_formatted_selector() {
        assert_eq!(
            columns("apps", "v1", "replicasets"),
            named(&[
                ("Name", 0),
                ("Desired", 0),
                ("Current", 0),
                ("Ready", 0),
                ("Age", 0),
                ("Containers", 1),
                ("Images", 1),
                ("Selector", 1),
            ])
        );
        let rs = workload(
            json!({"replicas": 3, "selector": {"matchLabels":
                {"pod-template-hash": "abc", "app": "web"}}, "template": template()}),
            json!({"replicas": 3, "readyReplicas": 1}),
        );
        assert_eq!(
            one_row("apps", "v1", "replicasets", rs),
            vec![
                json!("web"),
                json!(3),
                json!(3),
                json!(1),
                json!("60m"),
                json!("web,log"),
                json!("nginx:1.25,busybox"),
                json!("app=web,pod-template-hash=abc"),
            ]
        );
        let empty = workload(json!({"replicas": 0, "selector": {}}), json!({}));
        let row = one_row("apps", "v1", "replicasets", empty);
        assert_eq!(row[7], "<none>");
        assert_eq!(row[5], "");
    }

    fn node(labels: Value, unschedulable: bool, conditions: Value) -> Value {
        json!({
            "metadata": {"name": "node-a", "labels": labels, "creationTimestamp": "2024-04-28T09:00:00Z"},
            "spec": {"unschedulable": unschedulable},
            "status": {
                "conditions": conditions,
                "addresses": [{"type": "Hostname", "address": "node-a"},
                              {"type": "InternalIP", "address": "192.168.1.10"}],
                "nodeInfo": {"kubeletVersion": "v1.32.4", "osImage": "Debian GNU/Linux 12",
                             "kernelVersion": "6.1.0", "containerRuntimeVersion": "containerd://1.7.0"}
            }
        })
    }

    #[test]
    fn nodes_print_status_roles_and_system_info() {
        assert_eq!(
            columns("", "v1", "nodes"),
            named(&[
                ("Name", 0),
                ("Status", 0),
                ("Roles", 0),
                ("Age", 0),
                ("Version", 0),
                ("Internal-IP", 1),
                ("External-IP", 1),
                ("OS-Image", 1),
                ("Kernel-Version", 1),
                ("Container-Runtime", 1),
            ])
        );
        let ready = json!([{"type": "MemoryPressure", "status": "False"},
                           {"type": "Ready", "status": "True"}]);
        let cases = [
            (
                node(
                    json!({"node-role.kubernetes.io/control-plane": "",
                           "kubernetes.io/role": "master", "kubernetes.io/hostname": "node-a"}),
                    false,
                    ready.clone(),
                ),
                "Ready",
                "control-plane,master",
            ),
            (
                node(
                    json!({}),
                    true,
                    json!([{"type": "Ready", "status": "False"}]),
                ),
                "NotReady,SchedulingDisabled",
                "<none>",
            ),
            (node(json!({}), false, json!([])), "Unknown", "<none>"),
            (
                node(
                    json!({"node-role.kubernetes.io/": ""}),
                    false,
                    json!([{"type": "Ready", "status": "Unknown"}]),
                ),
                "NotReady",
                "<none>",
            ),
        ];
        for (n, status, roles) in cases {
            let row = one_row("", "v1", "nodes", n);
            assert_eq!(row[1], status);
            assert_eq!(row[2], roles);
            assert_eq!(row[3], "3d3h");
            assert_eq!(
                row[4..].to_vec(),
                vec![
                    json!("v1.32.4"),
                    json!("192.168.1.10"),
                    json!("<none>"),
                    json!("Debian GNU/Linux 12"),
                    json!("6.1.0"),
                    json!("containerd://1.7.0"),
                ]
            );
        }
        let bare = one_row("", "v1", "nodes", json!({"metadata": {"name": "n"}}));
        assert_eq!(
            bare,
            vec![
                json!("n"),
                json!("Unknown"),
                json!("<none>"),
                json!("<unknown>"),
                json!(""),
                json!("<none>"),
                json!("<none>"),
                json!("<unknown>"),
                json!("<unknown>"),
                json!("<unknown>"),
            ]
        );
    }

    #[test]
    fn namespaces_print_phase() {
        assert_eq!(
            columns("", "v1", "namespaces"),
            named(&[("Name", 0), ("Status", 0), ("Age", 0)])
        );
        let ns = json!({"metadata": {"name": "default", "creationTimestamp": CREATED},
                        "status": {"phase": "Active"}});
        assert_eq!(
            one_row("", "v1", "namespaces", ns),
            vec![json!("default"), json!("Active"), json!("60m")]
        );
    }

    fn service(spec: Value, status: Value) -> Value {
        json!({"metadata": {"name": "web", "namespace": "default", "creationTimestamp": CREATED},
               "spec": spec, "status": status})
    }

    #[test]
    fn services_print_type_ips_and_ports() {
        assert_eq!(
            columns("", "v1", "services"),
            named(&[
                ("Name", 0),
                ("Type", 0),
                ("Cluster-IP", 0),
                ("External-IP", 0),
                ("Port(s)", 0),
                ("Age", 0),
                ("Selector", 1),
            ])
        );
        let cases = [
            (
                service(
                    json!({"type": "ClusterIP", "clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10"],
                           "ports": [{"port": 80, "protocol": "TCP"}, {"port": 53, "protocol": "UDP"}],
                           "selector": {"tier": "web", "app": "web"}}),
                    json!({}),
                ),
                [
                    "ClusterIP",
                    "10.96.0.10",
                    "<none>",
                    "80/TCP,53/UDP",
                    "app=web,tier=web",
                ],
            ),
            (
                service(
                    json!({"type": "NodePort", "clusterIPs": ["10.96.0.11"],
                           "externalIPs": ["1.2.3.4"],
                           "ports": [{"port": 80, "nodePort": 31234, "protocol": "TCP"},
                                     {"port": 443, "protocol": "TCP"}]}),
                    json!({}),
                ),
                [
                    "NodePort",
                    "10.96.0.11",
                    "1.2.3.4",
                    "80:31234/TCP,443/TCP",
                    "<none>",
                ],
            ),
            (
                service(
                    json!({"type": "LoadBalancer", "clusterIPs": ["10.96.0.12"],
                           "ports": [{"port": 80, "nodePort": 30080, "protocol": "TCP"}]}),
                    json!({}),
                ),
                [
                    "LoadBalancer",
                    "10.96.0.12",
                    "<pending>",
                    "80:30080/TCP",
                    "<none>",
                ],
            ),
            (
                service(
                    json!({"type": "LoadBalancer", "clusterIPs": ["10.96.0.12"],
                           "externalIPs": ["9.9.9.9"], "ports": []}),
                    json!({"loadBalancer": {"ingress": [{"ip": "5.6.7.8"}, {"hostname": "lb.example.com"}]}}),
                ),
                [
                    "LoadBalancer",
                    "10.96.0.12",
                    "5.6.7.8,lb.example.com,9.9.9.9",
                    "<none>",
                    "<none>",
                ],
            ),
            (
                service(
                    json!({"type": "ExternalName", "externalName": "db.example.com"}),
                    json!({}),
                ),
                [
                    "ExternalName",
                    "<none>",
                    "db.example.com",
                    "<none>",
                    "<none>",
                ],
            ),
            (
                service(
                    json!({"clusterIP": "None", "clusterIPs": ["None"],
                           "ports": [{"port": 5432}], "selector": {"app": "db"}}),
                    json!({}),
                ),
                ["ClusterIP", "None", "<none>", "5432/TCP", "app=db"],
            ),
        ];
        for (svc, want) in cases {
            let row = one_row("", "v1", "services", svc);
            assert_eq!(
                [
                    row[1].clone(),
                    row[2].clone(),
                    row[3].clone(),
                    row[4].clone(),
                    row[6].clone()
                ],
                want.map(Value::from)
            );
            assert_eq!(row[5], "60m");
        }
    }

    #[test]
    fn endpoint_slices_show_ports_and_addresses_like_kubectl() {
        assert_eq!(
            columns("discovery.k8s.io", "v1", "endpointslices"),
            named(&[
                ("Name", 0),
                ("AddressType", 0),
                ("Ports", 0),
                ("Endpoints", 0),
                ("Age", 0)
            ])
        );
        let slice = |ports: Value, endpoints: Value| {
            json!({"metadata": {"name": "web-abc12", "creationTimestamp": CREATED},
                   "addressType": "IPv4", "ports": ports, "endpoints": endpoints})
        };
        let cases = [
            (json!(null), json!(null), "<unset>", "<unset>"),
            (
                json!([{"port": 80}, {"name": "metrics"}, {}]),
                json!([{"addresses": ["10.0.0.1"]}, {"addresses": ["10.0.0.2"]}]),
                "80,metrics,*",
                "10.0.0.1,10.0.0.2",
            ),
            (
                json!([{"port": 1}, {"port": 2}, {"port": 3}, {"port": 4}]),
                json!([{"addresses": ["10.0.0.1", "10.0.0.2"]},
                       {"addresses": ["10.0.0.3"]}, {"addresses": ["10.0.0.4"]},
                       {"addresses": ["10.0.0.5"]}]),
                "1,2,3 + 1 more...",
                "10.0.0.1,10.0.0.2,10.0.0.3 + 2 more...",
            ),
        ];
        for (ports, endpoints, want_ports, want_endpoints) in cases {
            let row = one_row(
                "discovery.k8s.io",
                "v1",
                "endpointslices",
                slice(ports, endpoints),
            );
            assert_eq!(row[1], "IPv4");
            assert_eq!(row[2], want_ports);
            assert_eq!(row[3], want_endpoints);
        }
    }

    #[test]
    fn endpoints_list_the_first_three_and_count_the_rest() {
        assert_eq!(
            columns("", "v1", "endpoints"),
            named(&[("Name", 0), ("Endpoints", 0), ("Age", 0)])
        );
        let ep = |subsets: Value| json!({"metadata": {"name": "web", "creationTimestamp": CREATED}, "subsets": subsets});
        let cases = [
            (json!(null), "<none>"),
            (
                json!([{"addresses": [{"ip": "10.0.0.1"}, {"ip": "10.0.0.2"}],
                        "ports": [{"port": 80}]}]),
                "10.0.0.1:80,10.0.0.2:80",
            ),
            (
                json!([{"addresses": [{"ip": "10.0.0.1"}, {"ip": "10.0.0.2"},
                                      {"ip": "10.0.0.3"}, {"ip": "10.0.0.4"}],
                        "ports": [{"port": 80}]}]),
                "10.0.0.1:80,10.0.0.2:80,10.0.0.3:80 + 1 more...",
            ),
            (
                json!([{"addresses": [{"ip": "10.0.0.1"}, {"ip": "10.0.0.2"}],
                        "ports": [{"name": "http", "port": 80}, {"name": "https", "port": 443}]}]),
                "10.0.0.1:80,10.0.0.2:80,10.0.0.1:443 + 1 more...",
            ),
            (json!([{"addresses": [{"ip": "10.0.0.9"}]}]), "10.0.0.9"),
            (
                json!([{"addresses": [{"ip": "fd00::1"}], "ports": [{"port": 8080}]}]),
                "[fd00::1]:8080",
            ),
        ];
        for (subsets, want) in cases {
            let row = one_row("", "v1", "endpoints", ep(subsets));
            assert_eq!(row, vec![json!("web"), json!(want), json!("60m")]);
        }
    }

    #[test]
    fn events_print_core_v1_columns() {
        assert_eq!(
            columns("", "v1", "events"),
            named(&[
                ("Last Seen", 0),
                ("Type", 0),
                ("Reason", 0),
                ("Object", 0),
                ("Subobject", 1),
                ("Source", 1),
                ("Message", 0),
                ("First Seen", 1),
                ("Count", 1),
                ("Name", 1),
            ])
        );
        let kubelet = json!({
            "metadata": {"name": "web-1.17c", "namespace": "default"},
            "involvedObject": {"kind": "Pod", "name": "web-1", "fieldPath": "spec.containers{web}"},
            "reason": "BackOff", "type": "Warning",
            "message": "Back-off restarting failed container\n",
            "source": {"component": "kubelet", "host": "node-a"},
            "firstTimestamp": "2024-05-01T11:50:00Z", "lastTimestamp": "2024-05-01T11:58:00Z",
            "count": 7
        });
        assert_eq!(
            one_row("", "v1", "events", kubelet),
            vec![
                json!("2m"),
                json!("Warning"),
                json!("BackOff"),
                json!("pod/web-1"),
                json!("spec.containers{web}"),
                json!("kubelet, node-a"),
                json!("Back-off restarting failed container"),
                json!("10m"),
                json!(7),
                json!("web-1.17c"),
            ]
        );
        let new_api = json!({
            "metadata": {"name": "web.17d"},
            "involvedObject": {"kind": "Deployment", "name": "web"},
            "reason": "ScalingReplicaSet", "type": "Normal", "message": "Scaled up",
            "eventTime": "2024-05-01T11:59:50.123456Z",
            "reportingComponent": "deployment-controller", "reportingInstance": "",
            "source": {}
        });
        let row = one_row("", "v1", "events", new_api);
        // 9.88 seconds ago: Kubernetes truncates, it does not round.
        assert_eq!(row[0], "9s");
        assert_eq!(row[3], "deployment/web");
        assert_eq!(row[5], "deployment-controller");
        assert_eq!(row[7], "9s");
        assert_eq!(row[8], 1);
        let series = json!({
            "metadata": {"name": "e"}, "involvedObject": {"kind": "Node"},
            "eventTime": "2024-05-01T11:00:00Z",
            "series": {"count": 4, "lastObservedTime": "2024-05-01T11:59:00.000000Z"}
        });
        let row = one_row("", "v1", "events", series);
        assert_eq!(row[0], "60s");
        assert_eq!(row[3], "node");
        assert_eq!(row[7], "60m");
        assert_eq!(row[8], 4);
        let undated =
            json!({"metadata": {"name": "e"}, "involvedObject": {"kind": "Pod", "name": "p"}});
        let row = one_row("", "v1", "events", undated);
        assert_eq!(row[0], "<unknown>");
        assert_eq!(row[7], "<unknown>");
    }

    #[test]
    fn small_kinds_print_counts_and_owners() {
        let meta = |name: &str| json!({"name": name, "namespace": "default", "creationTimestamp": CREATED});
        let cases: Vec<(&str, &str, &str, Value, Vec<Value>)> = vec![
            (
                "",
                "v1",
                "configmaps",
                json!({"metadata": meta("cfg"), "data": {"a": "1", "b": "2"}, "binaryData": {"c": "AA=="}}),
                vec![json!("cfg"), json!(3), json!("60m")],
            ),
            (
                "",
                "v1",
                "configmaps",
                json!({"metadata": meta("empty")}),
                vec![json!("empty"), json!(0), json!("60m")],
            ),
            (
                "",
                "v1",
                "secrets",
                json!({"metadata": meta("tls"), "type": "kubernetes.io/tls",
                       "data": {"tls.crt": "", "tls.key": ""}}),
                vec![
                    json!("tls"),
                    json!("kubernetes.io/tls"),
                    json!(2),
                    json!("60m"),
                ],
            ),
            (
                "",
                "v1",
                "serviceaccounts",
                json!({"metadata": meta("default")}),
                vec![json!("default"), json!(0), json!("60m")],
            ),
            (
                "",
                "v1",
                "serviceaccounts",
                json!({"metadata": meta("builder"), "secrets": [{"name": "builder-token"}]}),
                vec![json!("builder"), json!(1), json!("60m")],
            ),
            (
                "apps",
                "v1",
                "controllerrevisions",
                json!({"metadata": {"name": "web-5d8f", "creationTimestamp": CREATED,
                    "ownerReferences": [
                        {"apiVersion": "v1", "kind": "Pod", "name": "not-controller"},
                        {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "web", "controller": true}]},
                    "revision": 2}),
                vec![
                    json!("web-5d8f"),
                    json!("statefulset.apps/web"),
                    json!(2),
                    json!("60m"),
                ],
            ),
            (
                "apps",
                "v1",
                "controllerrevisions",
                json!({"metadata": {"name": "web-6c9a", "creationTimestamp": CREATED,
                    "ownerReferences": [{"apiVersion": "apps.kruise.io/v1alpha1",
                        "kind": "CloneSet", "name": "web", "controller": true}]},
                    "revision": 1}),
                vec![
                    json!("web-6c9a"),
                    json!("cloneset.apps.kruise.io/web"),
                    json!(1),
                    json!("60m"),
                ],
            ),
            (
                "apps",
                "v1",
                "controllerrevisions",
                json!({"metadata": {"name": "orphan", "creationTimestamp": CREATED}, "revision": 3}),
                vec![json!("orphan"), json!("<none>"), json!(3), json!("60m")],
            ),
            (
                "coordination.k8s.io",
                "v1",
                "leases",
                json!({"metadata": meta("skiff-controller"),
                       "spec": {"holderIdentity": "skiff-0_1a2b"}}),
                vec![
                    json!("skiff-controller"),
                    json!("skiff-0_1a2b"),
                    json!("60m"),
                ],
            ),
            (
                "coordination.k8s.io",
                "v1",
                "leases",
                json!({"metadata": meta("free"), "spec": {}}),
                vec![json!("free"), json!(""), json!("60m")],
            ),
        ];
        for (group, version, plural, obj, want) in cases {
            assert_eq!(one_row(group, version, plural, obj), want, "{plural}");
        }
        assert_eq!(
            columns("", "v1", "secrets"),
            named(&[("Name", 0), ("Type", 0), ("Data", 0), ("Age", 0)])
        );
        assert_eq!(
            columns("apps", "v1", "controllerrevisions"),
            named(&[("Name", 0), ("Controller", 0), ("Revision", 0), ("Age", 0)])
        );
        assert_eq!(
            columns("coordination.k8s.io", "v1", "leases"),
            named(&[("Name", 0), ("Holder", 0), ("Age", 0)])
        );
    }

    fn hpa(spec: Value, status: Value) -> Value {
        let mut full_spec = json!({"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment",
            "name": "nginx"}, "maxReplicas": 10});
        if let (Some(base), Some(extra)) = (full_spec.as_object_mut(), spec.as_object()) {
            base.extend(extra.clone());
        }
        json!({"metadata": {"name": "nginx", "namespace": "default", "creationTimestamp": CREATED},
               "spec": full_spec, "status": status})
    }

    fn cpu_target(percent: i64) -> Value {
        json!({"type": "Resource", "resource": {"name": "cpu",
            "target": {"type": "Utilization", "averageUtilization": percent}}})
    }

    #[test]
    fn horizontal_pod_autoscalers_print_targets_in_both_versions() {
        let want_columns = named(&[
            ("Name", 0),
            ("Reference", 0),
            ("Targets", 0),
            ("MinPods", 0),
            ("MaxPods", 0),
            ("Replicas", 0),
            ("Age", 0),
        ]);
        assert_eq!(
            columns("autoscaling", "v2", "horizontalpodautoscalers"),
            want_columns
        );
        assert_eq!(
            columns("autoscaling", "v1", "horizontalpodautoscalers"),
            want_columns
        );

        let memory_avg = json!({"type": "Resource", "resource": {"name": "memory",
            "target": {"type": "AverageValue", "averageValue": "500Mi"}}});
        let pods_metric = json!({"type": "Pods", "pods": {"metric": {"name": "qps"},
            "target": {"type": "AverageValue", "averageValue": "10"}}});
        let cases: Vec<(&str, &str, Value, &str)> = vec![
            (
                "v2",
                "no status yet",
                hpa(
                    json!({"minReplicas": 1, "metrics": [cpu_target(50)]}),
                    json!({}),
                ),
                "cpu: <unknown>/50%",
            ),
            (
                "v2",
                "measured",
                hpa(
                    json!({"minReplicas": 1, "metrics": [cpu_target(50)]}),
                    json!({"currentReplicas": 3, "currentMetrics": [{"type": "Resource",
                        "resource": {"name": "cpu", "current": {"averageUtilization": 80,
                            "averageValue": "400m"}}}]}),
                ),
                "cpu: 80%/50%",
            ),
            (
                "v2",
                "average value and pods metrics, more than two",
                hpa(
                    json!({"metrics": [memory_avg.clone(), pods_metric.clone(), cpu_target(70)]}),
                    json!({"currentMetrics": [
                        {"type": "Resource", "resource": {"name": "memory",
                            "current": {"averageValue": "300Mi"}}}]}),
                ),
                "memory: 300Mi/500Mi, <unknown>/10 + 1 more...",
            ),
            (
                "v2",
                "no metrics",
                hpa(json!({"metrics": []}), json!({})),
                "<none>",
            ),
            (
                "v2",
                "external average",
                hpa(
                    json!({"metrics": [{"type": "External", "external": {
                        "metric": {"name": "queue"},
                        "target": {"type": "AverageValue", "averageValue": "30"}}}]}),
                    json!({}),
                ),
                "<unknown>/30 (avg)",
            ),
            (
                "v1",
                "cpu percentage without status",
                hpa(
                    json!({"minReplicas": 1, "targetCPUUtilizationPercentage": 50}),
                    json!({}),
                ),
                "cpu: <unknown>/50%",
            ),
            (
                "v1",
                "cpu percentage with status",
                hpa(
                    json!({"targetCPUUtilizationPercentage": 50}),
                    json!({"currentReplicas": 2, "currentCPUUtilizationPercentage": 35}),
                ),
                "cpu: 35%/50%",
            ),
        ];
        for (version, case, obj, targets) in cases {
            let row = one_row(
                "autoscaling",
                version,
                "horizontalpodautoscalers",
                obj.clone(),
            );
            assert_eq!(row[0], "nginx", "{case}");
            assert_eq!(row[1], "Deployment/nginx", "{case}");
            assert_eq!(row[2], targets, "{case}");
            let min = obj
                .pointer("/spec/minReplicas")
                .map_or(json!("<unset>"), |m| json!(m.to_string()));
            assert_eq!(row[3], min, "{case}");
            assert_eq!(row[4], 10, "{case}");
            assert_eq!(
                row[5],
                obj.pointer("/status/currentReplicas")
                    .cloned()
                    .unwrap_or(json!(0)),
                "{case}"
            );
            assert_eq!(row[6], "60m", "{case}");
        }
    }

    #[test]
    fn clonesets_print_kruise_printer_columns() {
        let t = table(
            resource("apps.kruise.io", "v1alpha1", "clonesets"),
            &[],
            IncludeObject::None,
            now(),
        );
        let defs: Vec<(String, String, u64)> = t["columnDefinitions"]
            .as_array()
            .expect("columns")
            .iter()
            .map(|c| {
                (
                    c["name"].as_str().unwrap_or_default().to_string(),
                    c["type"].as_str().unwrap_or_default().to_string(),
                    c["priority"].as_u64().unwrap_or(99),
                )
            })
            .collect();
        let want: Vec<(String, String, u64)> = [
            ("Name", "string", 0),
            ("DESIRED", "integer", 0),
            ("UPDATED", "integer", 0),
            ("UPDATED_READY", "integer", 0),
            ("READY", "integer", 0),
            ("TOTAL", "integer", 0),
            ("AGE", "date", 0),
            ("CONTAINERS", "string", 1),
            ("IMAGES", "string", 1),
            ("SELECTOR", "string", 1),
        ]
        .iter()
        .map(|(n, t, p)| (n.to_string(), t.to_string(), *p))
        .collect();
        assert_eq!(defs, want);
        assert_eq!(
            t["columnDefinitions"][1]["description"],
            "The desired number of pods."
        );

        let cs = workload(
            json!({"replicas": 5, "selector": {"matchLabels": {"app": "web"}}, "template": template()}),
            json!({"replicas": 5, "updatedReplicas": 3, "updatedReadyReplicas": 2,
                   "updatedAvailableReplicas": 2, "readyReplicas": 4,
                   "labelSelector": "app=web"}),
        );
        assert_eq!(
            one_row("apps.kruise.io", "v1alpha1", "clonesets", cs),
            vec![
                json!("web"),
                json!(5),
                json!(3),
                json!(2),
                json!(4),
                json!(5),
                json!("60m"),
                json!("web"),
                json!("nginx:1.25"),
                json!("app=web"),
            ]
        );
        let fresh = json!({"metadata": {"name": "new"}, "spec": {"replicas": 1}});
        assert_eq!(
            one_row("apps.kruise.io", "v1alpha1", "clonesets", fresh),
            vec![
                json!("new"),
                json!(1),
                Value::Null,
                Value::Null,
                Value::Null,
                Value::Null,
                Value::Null,
                Value::Null,
                Value::Null,
                Value::Null,
            ]
        );
    }

    #[test]
    fn hostile_values_do_not_panic() {
        let p = pod(
            json!({"containers": [{"name": "a"}, {"name": "b"}]}),
            json!({"phase": 7, "containerStatuses": [
                {"name": "a", "restartCount": i64::MAX, "state": "running"},
                {"name": "b", "restartCount": i64::MAX, "lastState": {"terminated": {"finishedAt": "yesterday"}}}]}),
        );
        let row = one_row("", "v1", "pods", p);
        assert_eq!(row[3], json!(i64::MAX.to_string()));
        assert_eq!(row[2], "");
        let weird = json!({"metadata": {"name": 5, "creationTimestamp": "not a time"}, "spec": []});
        for r in crate::resources::all() {
            let t = table(
                r,
                std::slice::from_ref(&weird),
                IncludeObject::Metadata,
                now(),
            );
            assert_eq!(t["rows"].as_array().map(Vec::len), Some(1), "{}", r.plural);
        }
    }

    #[test]
    fn json_paths_of_printer_columns_table() {
        let obj = json!({"metadata": {"name": "w", "labels": {"app": "web"}},
            "spec": {"replicas": 2, "ports": [{"port": 80}, {"port": 443}]}});
        let rows: Vec<(&str, Option<Value>)> = vec![
            (".spec.replicas", Some(json!(2))),
            ("{.spec.replicas}", Some(json!(2))),
            (".metadata.labels.app", Some(json!("web"))),
            (".spec.ports[1].port", Some(json!(443))),
            (".spec.ports[-1].port", Some(json!(443))),
            (".spec.ports[2].port", None),
            (".spec.missing", None),
        ];
        assert_eq!(rows.len(), 7);
        for (path, expected) in rows {
            assert_eq!(json_path_value(&obj, path).cloned(), expected, "{path}");
        }
    }

    #[test]
    fn custom_columns_follow_name_with_typed_cells() {
        let columns = vec![
            CustomColumn {
                name: "Replicas".into(),
                kind: "integer".into(),
                format: String::new(),
                description: "d".into(),
                priority: 0,
                json_path: ".spec.replicas".into(),
            },
            CustomColumn {
                name: "Age".into(),
                kind: "date".into(),
                format: String::new(),
                description: "d".into(),
                priority: 0,
                json_path: ".metadata.creationTimestamp".into(),
            },
            CustomColumn {
                name: "Mode".into(),
                kind: "string".into(),
                format: String::new(),
                description: "d".into(),
                priority: 1,
                json_path: ".spec.mode".into(),
            },
        ];
        let obj = json!({"metadata": {"name": "w", "creationTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {"replicas": 2}});
        let now: Timestamp = "2026-01-01T00:05:00Z".parse().unwrap();
        let table = custom_table(&columns, &[obj], IncludeObject::None, now);
        let names: Vec<&str> = table["columnDefinitions"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|c| c["name"].as_str())
            .collect();
        assert_eq!(names, vec!["Name", "Replicas", "Age", "Mode"]);
        assert_eq!(table["columnDefinitions"][3]["priority"], 1);
        assert_eq!(table["rows"][0]["cells"], json!(["w", 2, "5m", null]));
    }

    #[test]
    fn every_registered_resource_has_a_specific_printer() {
        // Kubernetes' own printers for Roles, ClusterRoles, LimitRanges and
        // CustomResourceDefinitions are `Name` and `Created At`.
        let generic_in_kubernetes = [
            "roles",
            "clusterroles",
            "limitranges",
            "customresourcedefinitions",
        ];
        for r in crate::resources::all().filter(|r| !generic_in_kubernetes.contains(&r.plural)) {
            let t = table(r, &[], IncludeObject::None, now());
            let first = &t["columnDefinitions"][1]["name"];
            assert_ne!(
                first, "Created At",
                "{} falls back to the default table",
                r.plural
            );
        }
    }
}
