//! Server-side printing: `meta.k8s.io/v1` `Table` answers with the columns and cells Kubernetes'
//! own printers produce, because `kubectl get` shows whatever the server puts in the table and
//! only falls back to `NAME AGE` without one.
//!
//! Like the real server, every table is built "wide": priority-1 columns always carry cells and
//! kubectl hides them unless `-o wide` is given.

use jiff::Timestamp;
use serde_json::{json, Map, Value};

use crate::resources::ResourceInfo;
use crate::selector::{format_labels, LabelSelector};

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
struct Column {
    name: &'static str,
    kind: &'static str,
    format: &'static str,
    description: &'static str,
    priority: u8,
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
const AGE_DESC: &str = "Time since the server created the object (metadata.creationTimestamp).";
const CONTAINERS_DESC: &str = "Names of the containers in the pod template.";
const IMAGES_DESC: &str = "Images the containers in the pod template run.";

/// A priority-0 column.
const fn col(name: &'static str, kind: &'static str, description: &'static str) -> Column {
    Column {
        name,
        kind,
        format: "",
        description,
        priority: 0,
    }
}

/// A priority-1 column, shown by kubectl only with `-o wide`.
const fn wide(name: &'static str, kind: &'static str, description: &'static str) -> Column {
    Column {
        priority: 1,
        ..col(name, kind, description)
    }
}

/// The `Name` column, marked `format: name` so clients know which column identifies the row.
const fn name_col() -> Column {
    Column {
        format: "name",
        ..col("Name", "string", NAME_DESC)
    }
}

const fn age_col() -> Column {
    col("Age", "string", AGE_DESC)
}

/// Computes one row's cells from an object and the current time.
type CellFn = fn(&Value, Timestamp) -> Vec<Value>;

/// The printer for one kind: its columns and how to compute one row's cells.
struct Printer {
    columns: Vec<Column>,
    cells: CellFn,
}

fn printer_for(resource: &ResourceInfo) -> Printer {
    let (columns, cells): (Vec<Column>, CellFn) = match (resource.group, resource.kind) {
        ("", "Pod") => (pod_columns(), pod_cells),
        ("apps", "Deployment") => (deployment_columns(), deployment_cells),
        ("apps", "ReplicaSet") => (replica_set_columns(), replica_set_cells),
        ("", "Node") => (node_columns(), node_cells),
        ("", "Namespace") => (
            vec![
                name_col(),
                col("Status", "string", "The phase of the namespace."),
                age_col(),
            ],
            namespace_cells,
        ),
        ("", "Service") => (service_columns(), service_cells),
        ("", "ComponentStatus") => (
            vec![
                name_col(),
                col("Status", "string", "Status of the component conditions"),
                col("Message", "string", "Message of the component conditions"),
                col("Error", "string", "Error of the component conditions"),
            ],
            component_status_cells,
        ),
        ("", "Endpoints") => (
            vec![
                name_col(),
                col(
                    "Endpoints",
                    "string",
                    "The first addresses and ports the endpoints hold.",
                ),
                age_col(),
            ],
            endpoints_cells,
        ),
        ("", "Event") => (event_columns(), event_cells),
        ("", "ConfigMap") => (
            vec![
                name_col(),
                col(
                    "Data",
                    "string",
                    "Number of entries in data and binaryData.",
                ),
                age_col(),
            ],
            config_map_cells,
        ),
        ("", "Secret") => (
            vec![
                name_col(),
                col("Type", "string", "The type of the secret."),
                col("Data", "string", "Number of entries in data."),
                age_col(),
            ],
            secret_cells,
        ),
        ("", "ServiceAccount") => (
            vec![
                name_col(),
                col("Secrets", "string", "Number of secrets the account lists."),
                age_col(),
            ],
            service_account_cells,
        ),
        ("apps", "ControllerRevision") => (
            vec![
                name_col(),
                col(
                    "Controller",
                    "string",
                    "The object that controls this revision.",
                ),
                col(
                    "Revision",
                    "string",
                    "The revision number of the stored state.",
                ),
                age_col(),
            ],
            controller_revision_cells,
        ),
        ("autoscaling", "HorizontalPodAutoscaler") => (hpa_columns(), hpa_cells),
        ("coordination.k8s.io", "Lease") => (
            vec![
                name_col(),
                col(
                    "Holder",
                    "string",
                    "The identity of the current lease holder.",
                ),
                age_col(),
            ],
            lease_cells,
        ),
        ("discovery.k8s.io", "EndpointSlice") => (
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
            endpoint_slice_cells,
        ),
        ("apps.kruise.io", "CloneSet") => (clone_set_columns(), clone_set_cells),
        _ => (
            vec![
                name_col(),
                col("Created At", "date", "When the server created the object."),
            ],
            default_cells,
        ),
    };
    Printer { columns, cells }
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
    let printer = printer_for(resource);
    let columns: Vec<Value> = printer.columns.iter().map(Column::to_json).collect();
    let is_pod = resource.group.is_empty() && resource.kind == "Pod";
    let rows: Vec<Value> = objects
        .iter()
        .map(|obj| {
            let mut row = Map::new();
            row.insert("cells".into(), Value::Array((printer.cells)(obj, now)));
            if is_pod {
                if let Some(conditions) = pod_row_conditions(obj) {
                    row.insert("conditions".into(), conditions);
                }
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
fn text<'a>(obj: &'a Value, pointer: &str) -> &'a str {
    obj.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

/// The integer at a JSON pointer, or `default`.
fn int(obj: &Value, pointer: &str, default: i64) -> i64 {
    obj.pointer(pointer)
        .and_then(Value::as_i64)
        .unwrap_or(default)
}

/// The array at a JSON pointer, or an empty slice.
fn list<'a>(obj: &'a Value, pointer: &str) -> &'a [Value] {
    obj.pointer(pointer)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
}

fn or_none(s: &str) -> String {
    if s.is_empty() {
        "<none>".to_string()
    } else {
        s.to_string()
    }
}

fn timestamp(obj: &Value, pointer: &str) -> Option<Timestamp> {
    text(obj, pointer).parse::<Timestamp>().ok()
}

/// `translateTimestampSince`: the age of a timestamp, `<unknown>` when it is unset.
fn since(ts: Option<Timestamp>, now: Timestamp) -> String {
    match ts {
        Some(ts) => human_duration(now.duration_since(ts).as_secs()),
        None => "<unknown>".to_string(),
    }
}

fn age(obj: &Value, now: Timestamp) -> Value {
    Value::from(since(timestamp(obj, "/metadata/creationTimestamp"), now))
}

fn name(obj: &Value) -> Value {
    Value::from(text(obj, "/metadata/name"))
}

/// `layoutContainerCells`: container names and images, comma-joined.
fn container_cells(obj: &Value) -> [Value; 2] {
    let containers = list(obj, "/spec/template/spec/containers");
    let names: Vec<&str> = containers.iter().map(|c| text(c, "/name")).collect();
    let images: Vec<&str> = containers.iter().map(|c| text(c, "/image")).collect();
    [names.join(",").into(), images.join(",").into()]
}

fn pod_columns() -> Vec<Column> {
    vec![
        name_col(),
        col(
            "Ready",
            "string",
            "Ready containers out of all containers of the pod.",
        ),
        col(
            "Status",
            "string",
            "The aggregate status of the containers in the pod.",
        ),
        col(
            "Restarts",
            "string",
            "Container restarts in the pod, and how long ago the last one was.",
        ),
        age_col(),
        wide("IP", "string", "The pod's primary IP address."),
        wide("Node", "string", "The node the pod is bound to."),
        wide(
            "Nominated Node",
            "string",
            "The node the scheduler nominated after preempting pods.",
        ),
        wide(
            "Readiness Gates",
            "string",
            "Readiness gates whose condition is True, out of all.",
        ),
    ]
}

fn is_true_condition(obj: &Value, pointer: &str, kind: &str) -> bool {
    list(obj, pointer)
        .iter()
        .any(|c| text(c, "/type") == kind && text(c, "/status") == "True")
}

/// The later of two optional times, as Go's zero-time-aware `Before` comparison picks it.
fn latest(current: Option<Timestamp>, candidate: Option<Timestamp>) -> Option<Timestamp> {
    match (current, candidate) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

fn terminated_reason(terminated: &Value, prefix: &str) -> String {
    let reason = text(terminated, "/reason");
    if !reason.is_empty() {
        return format!("{prefix}{reason}");
    }
    let signal = int(terminated, "/signal", 0);
    if signal != 0 {
        format!("{prefix}Signal:{signal}")
    } else {
        format!("{prefix}ExitCode:{}", int(terminated, "/exitCode", 0))
    }
}

/// The STATUS, READY and RESTARTS of a pod, computed as Kubernetes' pod printer does.
fn pod_cells(pod: &Value, now: Timestamp) -> Vec<Value> {
    let init_specs = list(pod, "/spec/initContainers");
    let is_restartable_init = |name: &str| {
        init_specs
            .iter()
            .any(|c| text(c, "/name") == name && text(c, "/restartPolicy") == "Always")
    };
    let mut total = list(pod, "/spec/containers").len();
    total += init_specs
        .iter()
        .filter(|c| text(c, "/restartPolicy") == "Always")
        .count();

    let phase = text(pod, "/status/phase");
    let mut reason = phase.to_string();
    let status_reason = text(pod, "/status/reason");
    if !status_reason.is_empty() {
        reason = status_reason.to_string();
    }
    if list(pod, "/status/conditions")
        .iter()
        .any(|c| text(c, "/type") == "PodScheduled" && text(c, "/reason") == "SchedulingGated")
    {
        reason = "SchedulingGated".to_string();
    }

    let mut restarts: i64 = 0;
    let mut sidecar_restarts: i64 = 0;
    let mut last_restart: Option<Timestamp> = None;
    let mut last_sidecar_restart: Option<Timestamp> = None;
    let mut ready = 0;
    let mut initializing = false;

    for (i, status) in list(pod, "/status/initContainerStatuses")
        .iter()
        .enumerate()
    {
        let count = int(status, "/restartCount", 0);
        let finished = timestamp(status, "/lastState/terminated/finishedAt");
        restarts = restarts.saturating_add(count);
        last_restart = latest(last_restart, finished);
        let sidecar = is_restartable_init(text(status, "/name"));
        if sidecar {
            sidecar_restarts = sidecar_restarts.saturating_add(count);
            last_sidecar_restart = latest(last_sidecar_restart, finished);
        }
        let terminated = status.pointer("/state/terminated").filter(|t| !t.is_null());
        let waiting_reason = text(status, "/state/waiting/reason");
        if terminated.is_some_and(|t| int(t, "/exitCode", 0) == 0) {
            continue;
        }
        if sidecar && status.get("started").and_then(Value::as_bool) == Some(true) {
            if status.get("ready").and_then(Value::as_bool) == Some(true) {
                ready += 1;
            }
            continue;
        }
        reason = match terminated {
            Some(t) => terminated_reason(t, "Init:"),
            None if !waiting_reason.is_empty() && waiting_reason != "PodInitializing" => {
                format!("Init:{waiting_reason}")
            }
            None => format!("Init:{i}/{}", init_specs.len()),
        };
        initializing = true;
        break;
    }

    if !initializing || is_true_condition(pod, "/status/conditions", "Initialized") {
        restarts = sidecar_restarts;
        last_restart = last_sidecar_restart;
        let mut has_running = false;
        for status in list(pod, "/status/containerStatuses").iter().rev() {
            restarts = restarts.saturating_add(int(status, "/restartCount", 0));
            last_restart = latest(
                last_restart,
                timestamp(status, "/lastState/terminated/finishedAt"),
            );
            let waiting_reason = text(status, "/state/waiting/reason");
            let terminated = status.pointer("/state/terminated").filter(|t| !t.is_null());
            let running = status
                .pointer("/state/running")
                .is_some_and(|r| !r.is_null());
            if !waiting_reason.is_empty() {
                reason = waiting_reason.to_string();
            } else if let Some(t) = terminated {
                reason = terminated_reason(t, "");
            } else if status.get("ready").and_then(Value::as_bool) == Some(true) && running {
                has_running = true;
                ready += 1;
            }
        }
        if reason == "Completed" && has_running {
            reason = if is_true_condition(pod, "/status/conditions", "Ready") {
                "Running".to_string()
            } else {
                "NotReady".to_string()
            };
        }
    }

    let deleting = pod
        .pointer("/metadata/deletionTimestamp")
        .is_some_and(|d| !d.is_null());
    if deleting && status_reason == "NodeLost" {
        reason = "Unknown".to_string();
    } else if deleting && phase != "Succeeded" && phase != "Failed" {
        reason = "Terminating".to_string();
    }

    let restarts_cell = match last_restart {
        Some(last) if restarts != 0 => format!("{restarts} ({} ago)", since(Some(last), now)),
        _ => restarts.to_string(),
    };

    let pod_ip = pod
        .pointer("/status/podIPs/0/ip")
        .and_then(Value::as_str)
        .unwrap_or_else(|| text(pod, "/status/podIP"));
    let gates = list(pod, "/spec/readinessGates");
    let readiness_gates = if gates.is_empty() {
        "<none>".to_string()
    } else {
        let conditions = list(pod, "/status/conditions");
        let true_gates = gates
            .iter()
            .filter(|gate| {
                let wanted = text(gate, "/conditionType");
                conditions
                    .iter()
                    .find(|c| text(c, "/type") == wanted)
                    .is_some_and(|c| text(c, "/status") == "True")
            })
            .count();
        format!("{true_gates}/{}", gates.len())
    };

    vec![
        name(pod),
        format!("{ready}/{total}").into(),
        reason.into(),
        restarts_cell.into(),
        age(pod, now),
        or_none(pod_ip).into(),
        or_none(text(pod, "/spec/nodeName")).into(),
        or_none(text(pod, "/status/nominatedNodeName")).into(),
        readiness_gates.into(),
    ]
}

/// Finished pods are marked `Completed` so clients may hide them.
fn pod_row_conditions(pod: &Value) -> Option<Value> {
    let (reason, message) = match text(pod, "/status/phase") {
        "Succeeded" => ("Succeeded", "The pod has completed successfully."),
        "Failed" => ("Failed", "The pod failed."),
        _ => return None,
    };
    Some(json!([{
        "type": "Completed",
        "status": "True",
        "reason": reason,
        "message": message,
    }]))
}

fn deployment_columns() -> Vec<Column> {
    vec![
        name_col(),
        col(
            "Ready",
            "string",
            "Ready pods out of the desired number of pods.",
        ),
        col(
            "Up-to-date",
            "string",
            "Pods running the current pod template.",
        ),
        col(
            "Available",
            "string",
            "Pods ready for at least minReadySeconds.",
        ),
        age_col(),
        wide("Containers", "string", CONTAINERS_DESC),
        wide("Images", "string", IMAGES_DESC),
        wide("Selector", "string", "The label selector of the pods."),
    ]
}

fn deployment_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    let desired = int(obj, "/spec/replicas", 1);
    let ready = int(obj, "/status/readyReplicas", 0);
    let selector = obj.get("spec").and_then(|s| s.get("selector"));
    let selector = match LabelSelector::from_label_selector(selector.unwrap_or(&Value::Null)) {
        Ok(sel) => sel.to_string(),
        Err(_) => "<invalid>".to_string(),
    };
    let [containers, images] = container_cells(obj);
    vec![
        name(obj),
        format!("{ready}/{desired}").into(),
        int(obj, "/status/updatedReplicas", 0).into(),
        int(obj, "/status/availableReplicas", 0).into(),
        age(obj, now),
        containers,
        images,
        selector.into(),
    ]
}

/// `metav1.FormatLabelSelector`: the canonical string, `<none>` when empty, `<error>` when bad.
fn format_label_selector(selector: Option<&Value>) -> String {
    match LabelSelector::from_label_selector(selector.unwrap_or(&Value::Null)) {
        Ok(sel) => or_none(&sel.to_string()),
        Err(_) => "<error>".to_string(),
    }
}

fn replica_set_columns() -> Vec<Column> {
    vec![
        name_col(),
        col("Desired", "integer", "The number of pods wanted."),
        col("Current", "integer", "The number of pods that exist."),
        col("Ready", "integer", "The number of ready pods."),
        age_col(),
        wide("Containers", "string", CONTAINERS_DESC),
        wide("Images", "string", IMAGES_DESC),
        wide("Selector", "string", "The label selector of the pods."),
    ]
}

fn replica_set_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    let [containers, images] = container_cells(obj);
    vec![
        name(obj),
        int(obj, "/spec/replicas", 1).into(),
        int(obj, "/status/replicas", 0).into(),
        int(obj, "/status/readyReplicas", 0).into(),
        age(obj, now),
        containers,
        images,
        format_label_selector(obj.pointer("/spec/selector")).into(),
    ]
}

fn node_columns() -> Vec<Column> {
    vec![
        name_col(),
        col("Status", "string", "The status of the node."),
        col("Roles", "string", "The roles of the node."),
        age_col(),
        col("Version", "string", "The kubelet version of the node."),
        wide(
            "Internal-IP",
            "string",
            "The node's first internal IP address.",
        ),
        wide(
            "External-IP",
            "string",
            "The node's first external IP address.",
        ),
        wide(
            "OS-Image",
            "string",
            "The operating system image of the node.",
        ),
        wide(
            "Kernel-Version",
            "string",
            "The kernel version of the node.",
        ),
        wide(
            "Container-Runtime",
            "string",
            "The container runtime and its version.",
        ),
    ]
}

fn node_address(node: &Value, kind: &str) -> String {
    list(node, "/status/addresses")
        .iter()
        .find(|a| text(a, "/type") == kind)
        .map(|a| text(a, "/address").to_string())
        .unwrap_or_else(|| "<none>".to_string())
}

fn or_unknown(s: &str) -> String {
    if s.is_empty() {
        "<unknown>".to_string()
    } else {
        s.to_string()
    }
}

fn node_cells(node: &Value, now: Timestamp) -> Vec<Value> {
    let mut status: Vec<String> = Vec::new();
    // The last condition of a type wins, as it does when Kubernetes builds its condition map.
    if let Some(ready) = list(node, "/status/conditions")
        .iter()
        .rev()
        .find(|c| text(c, "/type") == "Ready")
    {
        status.push(if text(ready, "/status") == "True" {
            "Ready".to_string()
        } else {
            "NotReady".to_string()
        });
    }
    if status.is_empty() {
        status.push("Unknown".to_string());
    }
    if node.pointer("/spec/unschedulable").and_then(Value::as_bool) == Some(true) {
        status.push("SchedulingDisabled".to_string());
    }

    let mut roles: Vec<String> = Vec::new();
    if let Some(labels) = node.pointer("/metadata/labels").and_then(Value::as_object) {
        for (key, value) in labels {
            let role = match key.strip_prefix("node-role.kubernetes.io/") {
                Some(role) => role,
                None if key == "kubernetes.io/role" => value.as_str().unwrap_or_default(),
                None => "",
            };
            if !role.is_empty() {
                roles.push(role.to_string());
            }
        }
    }
    roles.sort();
    roles.dedup();

    vec![
        name(node),
        status.join(",").into(),
        or_none(&roles.join(",")).into(),
        age(node, now),
        text(node, "/status/nodeInfo/kubeletVersion").into(),
        node_address(node, "InternalIP").into(),
        node_address(node, "ExternalIP").into(),
        or_unknown(text(node, "/status/nodeInfo/osImage")).into(),
        or_unknown(text(node, "/status/nodeInfo/kernelVersion")).into(),
        or_unknown(text(node, "/status/nodeInfo/containerRuntimeVersion")).into(),
    ]
}

/// `printComponentStatus`: the Healthy condition as Healthy/Unhealthy, else Unknown.
fn component_status_cells(obj: &Value, _now: Timestamp) -> Vec<Value> {
    let mut status = "Unknown";
    let mut message = "";
    let mut error = "";
    for condition in obj["conditions"].as_array().into_iter().flatten() {
        if condition["type"] == "Healthy" {
            status = if condition["status"] == "True" {
                "Healthy"
            } else {
                "Unhealthy"
            };
            message = condition["message"].as_str().unwrap_or("");
            error = condition["error"].as_str().unwrap_or("");
            break;
        }
    }
    vec![name(obj), status.into(), message.into(), error.into()]
}

fn namespace_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    vec![name(obj), text(obj, "/status/phase").into(), age(obj, now)]
}

fn service_columns() -> Vec<Column> {
    vec![
        name_col(),
        col("Type", "string", "How the service is exposed."),
        col(
            "Cluster-IP",
            "string",
            "The service's virtual IP in the cluster.",
        ),
        col(
            "External-IP",
            "string",
            "Addresses the service is reachable at from outside the cluster.",
        ),
        col("Port(s)", "string", "The ports the service exposes."),
        age_col(),
        wide(
            "Selector",
            "string",
            "Labels of the pods traffic is routed to.",
        ),
    ]
}

fn string_list(obj: &Value, pointer: &str) -> Vec<String> {
    list(obj, pointer)
        .iter()
        .filter_map(Value::as_str)
        .map(str::to_string)
        .collect()
}

fn service_external_ip(svc: &Value, kind: &str) -> String {
    let external_ips = string_list(svc, "/spec/externalIPs");
    match kind {
        "ClusterIP" | "NodePort" => {
            if external_ips.is_empty() {
                "<none>".to_string()
            } else {
                external_ips.join(",")
            }
        }
        "LoadBalancer" => {
            let mut ingress: Vec<String> = list(svc, "/status/loadBalancer/ingress")
                .iter()
                .map(|i| {
                    let ip = text(i, "/ip");
                    if ip.is_empty() {
                        text(i, "/hostname").to_string()
                    } else {
                        ip.to_string()
                    }
                })
                .filter(|s| !s.is_empty())
                .collect();
            ingress.sort();
            ingress.dedup();
            ingress.extend(external_ips);
            if ingress.is_empty() {
                "<pending>".to_string()
            } else {
                ingress.join(",")
            }
        }
        "ExternalName" => text(svc, "/spec/externalName").to_string(),
        _ => "<unknown>".to_string(),
    }
}

fn service_cells(svc: &Value, now: Timestamp) -> Vec<Value> {
    // Stored services always carry a type; ClusterIP is what the server defaults it to.
    let kind = match text(svc, "/spec/type") {
        "" => "ClusterIP",
        other => other,
    };
    let cluster_ip = string_list(svc, "/spec/clusterIPs")
        .into_iter()
        .next()
        .unwrap_or_else(|| or_none(text(svc, "/spec/clusterIP")));
    let ports: Vec<String> = list(svc, "/spec/ports")
        .iter()
        .map(|p| {
            let port = int(p, "/port", 0);
            let protocol = match text(p, "/protocol") {
                "" => "TCP",
                other => other,
            };
            match int(p, "/nodePort", 0) {
                node_port if node_port > 0 => format!("{port}:{node_port}/{protocol}"),
                _ => format!("{port}/{protocol}"),
            }
        })
        .collect();
    vec![
        name(svc),
        kind.into(),
        cluster_ip.into(),
        service_external_ip(svc, kind).into(),
        or_none(&ports.join(",")).into(),
        age(svc, now),
        format_labels(svc.pointer("/spec/selector").and_then(Value::as_object)).into(),
    ]
}

/// `net.JoinHostPort`: brackets around IPv6 hosts.
fn join_host_port(host: &str, port: i64) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// `formatEndpoints`: the first three `ip:port` pairs and how many more there are.
fn format_endpoints(obj: &Value) -> String {
    const MAX: usize = 3;
    let subsets = list(obj, "/subsets");
    if subsets.is_empty() {
        return "<none>".to_string();
    }
    let mut shown: Vec<String> = Vec::new();
    let mut more = false;
    let mut count = 0;
    for subset in subsets {
        let addresses = list(subset, "/addresses");
        let ports = list(subset, "/ports");
        if ports.is_empty() {
            count += addresses.len();
            for address in addresses {
                if shown.len() == MAX {
                    more = true;
                    break;
                }
                shown.push(text(address, "/ip").to_string());
            }
            continue;
        }
        for port in ports {
            count += addresses.len();
            for address in addresses {
                if shown.len() == MAX {
                    more = true;
                    break;
                }
                shown.push(join_host_port(text(address, "/ip"), int(port, "/port", 0)));
            }
        }
    }
    let joined = shown.join(",");
    if more {
        format!("{joined} + {} more...", count - MAX)
    } else {
        joined
    }
}

fn endpoints_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    vec![name(obj), format_endpoints(obj).into(), age(obj, now)]
}

fn event_columns() -> Vec<Column> {
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

fn event_cells(ev: &Value, now: Timestamp) -> Vec<Value> {
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

fn map_len(obj: &Value, pointer: &str) -> usize {
    obj.pointer(pointer)
        .and_then(Value::as_object)
        .map_or(0, Map::len)
}

fn config_map_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    let entries = map_len(obj, "/data") + map_len(obj, "/binaryData");
    vec![name(obj), entries.into(), age(obj, now)]
}

fn secret_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    vec![
        name(obj),
        text(obj, "/type").into(),
        map_len(obj, "/data").into(),
        age(obj, now),
    ]
}

fn service_account_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    vec![name(obj), list(obj, "/secrets").len().into(), age(obj, now)]
}

fn controller_revision_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    let controller = list(obj, "/metadata/ownerReferences")
        .iter()
        .find(|r| r.get("controller").and_then(Value::as_bool) == Some(true))
        .map(|r| {
            let group = text(r, "/apiVersion")
                .split_once('/')
                .map(|(g, _)| g)
                .unwrap_or("");
            let kind = text(r, "/kind");
            let group_kind = if group.is_empty() {
                kind.to_string()
            } else {
                format!("{kind}.{group}")
            };
            let owner = text(r, "/name");
            if group_kind.is_empty() {
                owner.to_string()
            } else {
                format!("{}/{owner}", group_kind.to_lowercase())
            }
        })
        .unwrap_or_else(|| "<none>".to_string());
    vec![
        name(obj),
        controller.into(),
        int(obj, "/revision", 0).into(),
        age(obj, now),
    ]
}

fn hpa_columns() -> Vec<Column> {
    vec![
        name_col(),
        col("Reference", "string", "The workload the autoscaler scales."),
        col(
            "Targets",
            "string",
            "Current and target values of the metrics.",
        ),
        col("MinPods", "string", "The lower limit of replicas."),
        col("MaxPods", "string", "The upper limit of replicas."),
        col("Replicas", "string", "The current number of replicas."),
        age_col(),
    ]
}

/// `Quantity.String()` of an optional quantity: a missing one prints `<nil>`, as in Go.
fn quantity(v: Option<&Value>) -> String {
    match v {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => "<nil>".to_string(),
    }
}

fn present<'a>(v: &'a Value, key: &str) -> Option<&'a Value> {
    v.get(key).filter(|x| !x.is_null())
}

/// `formatHPAMetrics`: up to two `current/target` pairs, in spec order, matched to statuses by
/// position as Kubernetes matches them.
fn format_hpa_metrics(specs: &[Value], statuses: &[Value]) -> String {
    const MAX: usize = 2;
    if specs.is_empty() {
        return "<none>".to_string();
    }
    let mut shown: Vec<String> = Vec::new();
    for (i, spec) in specs.iter().enumerate() {
        let status = statuses.get(i);
        let source_of = |key: &str| status.and_then(|s| present(s, key));
        let entry = match text(spec, "/type") {
            kind @ ("External" | "Object") => {
                let key = if kind == "External" {
                    "external"
                } else {
                    "object"
                };
                let target = spec.get(key).and_then(|s| s.get("target"));
                let avg = target.and_then(|t| present(t, "averageValue"));
                let current = source_of(key).and_then(|s| s.get("current"));
                match avg {
                    Some(avg) => {
                        let cur = current
                            .and_then(|c| present(c, "averageValue"))
                            .map(|c| quantity(Some(c)))
                            .unwrap_or_else(|| "<unknown>".to_string());
                        format!("{cur}/{} (avg)", quantity(Some(avg)))
                    }
                    None => {
                        let cur = match source_of(key) {
                            Some(_) => quantity(current.and_then(|c| present(c, "value"))),
                            None => "<unknown>".to_string(),
                        };
                        let want = quantity(target.and_then(|t| present(t, "value")));
                        format!("{cur}/{want}")
                    }
                }
            }
            "Pods" => {
                let cur = match source_of("pods") {
                    Some(s) => quantity(s.pointer("/current/averageValue")),
                    None => "<unknown>".to_string(),
                };
                format!(
                    "{cur}/{}",
                    quantity(spec.pointer("/pods/target/averageValue"))
                )
            }
            kind @ ("Resource" | "ContainerResource") => {
                let key = if kind == "Resource" {
                    "resource"
                } else {
                    "containerResource"
                };
                let source = spec.get(key);
                let resource_name = source.map(|s| text(s, "/name")).unwrap_or("");
                let target = source.and_then(|s| s.get("target"));
                match target.and_then(|t| present(t, "averageValue")) {
                    Some(avg) => {
                        let cur = match source_of(key) {
                            Some(s) => quantity(s.pointer("/current/averageValue")),
                            None => "<unknown>".to_string(),
                        };
                        format!("{resource_name}: {cur}/{}", quantity(Some(avg)))
                    }
                    None => {
                        let cur = source_of(key)
                            .and_then(|s| s.pointer("/current/averageUtilization"))
                            .and_then(Value::as_i64)
                            .map(|u| format!("{u}%"))
                            .unwrap_or_else(|| "<unknown>".to_string());
                        let want = target
                            .and_then(|t| t.get("averageUtilization"))
                            .and_then(Value::as_i64)
                            .map(|u| format!("{u}%"))
                            .unwrap_or_else(|| "<auto>".to_string());
                        format!("{resource_name}: {cur}/{want}")
                    }
                }
            }
            _ => "<unknown type>".to_string(),
        };
        shown.push(entry);
    }
    let count = shown.len();
    if count > MAX {
        shown.truncate(MAX);
        format!("{} + {} more...", shown.join(", "), count - MAX)
    } else {
        shown.join(", ")
    }
}

/// The metric specs and statuses of an HPA in either served version; autoscaling/v1's single
/// CPU target is read as the v2 `Resource` metric it converts to.
fn hpa_metrics(hpa: &Value) -> (Vec<Value>, Vec<Value>) {
    if hpa.pointer("/spec/metrics").is_some() || hpa.pointer("/status/currentMetrics").is_some() {
        return (
            list(hpa, "/spec/metrics").to_vec(),
            list(hpa, "/status/currentMetrics").to_vec(),
        );
    }
    let specs = hpa
        .pointer("/spec/targetCPUUtilizationPercentage")
        .and_then(Value::as_i64)
        .map(|target| {
            vec![json!({"type": "Resource", "resource": {
                "name": "cpu",
                "target": {"type": "Utilization", "averageUtilization": target}
            }})]
        })
        .unwrap_or_default();
    let statuses = hpa
        .pointer("/status/currentCPUUtilizationPercentage")
        .and_then(Value::as_i64)
        .map(|current| {
            vec![json!({"type": "Resource", "resource": {
                "name": "cpu",
                "current": {"averageUtilization": current}
            }})]
        })
        .unwrap_or_default();
    (specs, statuses)
}

fn hpa_cells(hpa: &Value, now: Timestamp) -> Vec<Value> {
    let reference = format!(
        "{}/{}",
        text(hpa, "/spec/scaleTargetRef/kind"),
        text(hpa, "/spec/scaleTargetRef/name")
    );
    let (specs, statuses) = hpa_metrics(hpa);
    let min_pods = hpa
        .pointer("/spec/minReplicas")
        .and_then(Value::as_i64)
        .map(|m| m.to_string())
        .unwrap_or_else(|| "<unset>".to_string());
    vec![
        name(hpa),
        reference.into(),
        format_hpa_metrics(&specs, &statuses).into(),
        min_pods.into(),
        int(hpa, "/spec/maxReplicas", 0).into(),
        int(hpa, "/status/currentReplicas", 0).into(),
        age(hpa, now),
    ]
}

fn lease_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    vec![
        name(obj),
        text(obj, "/spec/holderIdentity").into(),
        age(obj, now),
    ]
}

/// `listWithMoreString`: up to three items, then how many more; `<unset>` when empty.
fn first_three_and_more(items: Vec<String>) -> String {
    const MAX: usize = 3;
    if items.is_empty() {
        return "<unset>".to_string();
    }
    let joined = items[..items.len().min(MAX)].join(",");
    if items.len() > MAX {
        format!("{joined} + {} more...", items.len() - MAX)
    } else {
        joined
    }
}

/// `printEndpointSlice`: port numbers (else names, else `*`) and every endpoint address,
/// whatever its conditions.
fn endpoint_slice_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    let ports = list(obj, "/ports")
        .iter()
        .map(|p| match p.get("port").and_then(Value::as_i64) {
            Some(n) => n.to_string(),
            None => p
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or("*")
                .to_string(),
        })
        .collect();
    let addresses = list(obj, "/endpoints")
        .iter()
        .flat_map(|e| list(e, "/addresses"))
        .filter_map(|a| a.as_str().map(str::to_string))
        .collect();
    vec![
        name(obj),
        text(obj, "/addressType").into(),
        first_three_and_more(ports).into(),
        first_three_and_more(addresses).into(),
        age(obj, now),
    ]
}

/// OpenKruise declares these with `+kubebuilder:printcolumn` on CloneSet; the server prepends
/// `Name` as it does for every custom resource with printer columns. These are the columns of
/// OpenKruise's v1alpha1 CRD before v1.8 added `UPDATED_AVAILABLE`, the set users see in its
/// documentation (`status.updatedAvailableReplicas` is still reported).
fn clone_set_columns() -> Vec<Column> {
    vec![
        name_col(),
        col("DESIRED", "integer", "The desired number of pods."),
        col("UPDATED", "integer", "The number of pods updated."),
        col(
            "UPDATED_READY",
            "integer",
            "The number of pods updated and ready.",
        ),
        col("READY", "integer", "The number of pods ready."),
        col("TOTAL", "integer", "The number of currently all pods."),
        col("AGE", "date", AGE_DESC),
        wide(
            "CONTAINERS",
            "string",
            "The containers of currently cloneset.",
        ),
        wide("IMAGES", "string", "The images of currently cloneset."),
        wide("SELECTOR", "string", "The selector of currently cloneset."),
    ]
}

/// A custom resource's integer printer column: absent values are `null` cells.
fn crd_integer(obj: &Value, pointer: &str) -> Value {
    match obj.pointer(pointer) {
        Some(Value::Number(n)) => n
            .as_i64()
            .or_else(|| n.as_f64().map(|f| f as i64))
            .map_or(Value::Null, Value::from),
        _ => Value::Null,
    }
}

/// A custom resource's string printer column. Only the first match of a `[*]` path is shown,
/// as the server evaluates these paths.
fn crd_string(value: Option<&Value>) -> Value {
    match value {
        None | Some(Value::Null) => Value::Null,
        Some(Value::String(s)) => Value::from(s.as_str()),
        Some(other) => Value::from(other.to_string()),
    }
}

fn clone_set_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    let age = match obj.pointer("/metadata/creationTimestamp") {
        Some(Value::String(ts)) => match ts.parse::<Timestamp>() {
            Ok(ts) => since(Some(ts), now).into(),
            Err(_) => "<invalid>".into(),
        },
        _ => Value::Null,
    };
    vec![
        name(obj),
        crd_integer(obj, "/spec/replicas"),
        crd_integer(obj, "/status/updatedReplicas"),
        crd_integer(obj, "/status/updatedReadyReplicas"),
        crd_integer(obj, "/status/readyReplicas"),
        crd_integer(obj, "/status/replicas"),
        age,
        crd_string(obj.pointer("/spec/template/spec/containers/0/name")),
        crd_string(obj.pointer("/spec/template/spec/containers/0/image")),
        crd_string(obj.pointer("/status/labelSelector")),
    ]
}

/// The server's default table for kinds without a printer: name and creation time.
fn default_cells(obj: &Value, _now: Timestamp) -> Vec<Value> {
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
        for r in crate::resources::RESOURCES {
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
    fn every_registered_resource_has_a_specific_printer() {
        for r in crate::resources::RESOURCES {
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
