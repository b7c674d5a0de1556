//! Pods (`v1`): pod defaults and validation, the pod printer and the graceful deletion hook.

use jiff::Timestamp;
use serde_json::{json, Map, Value};

use super::{Kind, KindStrategy, RegistryHook, TypedVersion};
use crate::defaults::*;
use crate::printers::*;
use crate::wire::{object_at, or_insert};
use crate::{
    errors::FieldError,
    printers::Printer,
    resources::{
        res, ResourceInfo,
        Subresource::{Binding, EphemeralContainers, Eviction, Log, Status},
    },
    validation,
};

/// `v1` Pods.
pub static V1: ResourceInfo = ResourceInfo {
    short_names: &["po"],
    categories: &["all"],
    subresources: &[Status, Binding, Log, Eviction, EphemeralContainers],
    // Since 1.35 a pod's generation counts its spec changes, for `status.observedGeneration`.
    has_generation: true,
    ..res("", "v1", "Pod", "pods", "pod", true)
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
        fill_pod(root);
    }

    fn typed(&self, _version: &str) -> Option<TypedVersion> {
        Some(TypedVersion::of::<k8s_openapi::api::core::v1::Pod>())
    }

    fn apply_defaults(&self, _version: &str, root: &mut Map<String, Value>) {
        default_pod(root);
    }

    fn validate(&self, obj: &Value, errs: &mut Vec<FieldError>) {
        let spec = validation::field(obj, "spec");
        validation::validate_pod_spec(spec, "spec", errs);
        // Ephemeral containers only come later, through the `ephemeralcontainers` subresource.
        if !validation::array_at(spec, "ephemeralContainers").is_empty() {
            errs.push(FieldError::forbidden(
                "spec.ephemeralContainers",
                "cannot be set on create",
            ));
        }
    }

    /// A pod update checks only what may change in a running pod, not the whole spec again.
    fn validate_update(&self, new: &Value, old: &Value, errs: &mut Vec<FieldError>) {
        validation::validate_pod_update(new, old, errs);
    }

    fn printer(&self) -> Option<Printer> {
        Some(Printer {
            row_conditions: Some(pod_row_conditions),
            ..Printer::new(pod_columns(), pod_cells)
        })
    }

    fn field_selectors(&self) -> Option<&'static [&'static str]> {
        Some(&[
            "metadata.name",
            "metadata.namespace",
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "spec.hostNetwork",
            "status.phase",
            "status.podIP",
            "status.nominatedNodeName",
            "spec.host",
        ])
    }

    fn registry_hook(&self) -> RegistryHook {
        RegistryHook::Pod
    }
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

fn default_pod(root: &mut Map<String, Value>) {
    let Some(spec) = child(root, "spec") else {
        return;
    };
    // SetDefaults_Pod: only real pods (not templates) get requests copied from limits.
    for key in ["containers", "initContainers"] {
        for container in each_object(spec, key) {
            default_requests_from_limits(container);
        }
    }
    default_value(spec, "enableServiceLinks", json!(true));
    if spec.get("hostNetwork").and_then(Value::as_bool) == Some(true) {
        for key in ["containers", "initContainers"] {
            for container in each_object(spec, key) {
                for port in each_object(container, "ports") {
                    if let Some(container_port) = port.get("containerPort").cloned() {
                        let host_port_unset = match port.get("hostPort") {
                            None | Some(Value::Null) => true,
                            Some(v) => v.as_i64() == Some(0),
                        };
                        if host_port_unset {
                            port.insert("hostPort".to_string(), container_port);
                        }
                    }
                }
            }
        }
    }
    default_pod_spec(spec);
    default_pod_admission(spec);
}

/// What the admission plugins every Kubernetes cluster runs (`Priority`, `ServiceAccount`,
/// `DefaultTolerationSeconds`) add to a new pod.
fn default_pod_admission(spec: &mut Map<String, Value>) {
    // Skiff has no priority classes, so every pod gets the global default priority.
    default_value(spec, "priority", json!(0));
    default_value(spec, "preemptionPolicy", json!("PreemptLowerPriority"));
    let account = match str_of(spec, "serviceAccountName") {
        "" => match str_of(spec, "serviceAccount") {
            "" => "default".to_string(),
            deprecated => deprecated.to_string(),
        },
        name => name.to_string(),
    };
    spec.insert("serviceAccountName".to_string(), json!(account));
    // The deprecated alias always mirrors the real field on the way out.
    spec.insert("serviceAccount".to_string(), json!(account));

    add_default_tolerations(spec, DEFAULT_TOLERATION_SECONDS, DEFAULT_TOLERATION_SECONDS);
}

/// Kubernetes' `DefaultTolerationSeconds` admission: a pod spec tolerating no `NoExecute`
/// `not-ready` (or `unreachable`) taint gets a toleration of it for the given seconds, so its
/// pods leave a failed node after that long. Public so a server started with other seconds
/// (`--default-not-ready-toleration-seconds`, `--default-unreachable-toleration-seconds`)
/// applies them before the defaults, which then find the taints tolerated.
pub fn add_default_tolerations(
    spec: &mut Map<String, Value>,
    not_ready_seconds: i64,
    unreachable_seconds: i64,
) {
    let mut tolerations: Vec<Value> = spec
        .get("tolerations")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut added = false;
    for (taint, seconds) in [
        ("node.kubernetes.io/not-ready", not_ready_seconds),
        ("node.kubernetes.io/unreachable", unreachable_seconds),
    ] {
        let tolerated = tolerations
            .iter()
            .any(|t| tolerates_no_execute_taint(t, taint));
        if !tolerated {
            tolerations.push(json!({
                "key": taint,
                "operator": "Exists",
                "effect": "NoExecute",
                "tolerationSeconds": seconds,
            }));
            added = true;
        }
    }
    if added {
        spec.insert("tolerations".to_string(), Value::Array(tolerations));
    }
}

/// Whether a toleration already covers a `NoExecute` taint with the given key (so the
/// default one is not added).
fn tolerates_no_execute_taint(toleration: &Value, taint_key: &str) -> bool {
    let effect = toleration
        .get("effect")
        .and_then(Value::as_str)
        .unwrap_or("");
    if !effect.is_empty() && effect != "NoExecute" {
        return false;
    }
    let key = toleration.get("key").and_then(Value::as_str).unwrap_or("");
    let operator = toleration
        .get("operator")
        .and_then(Value::as_str)
        .unwrap_or("Equal");
    if key.is_empty() {
        return operator == "Exists";
    }
    key == taint_key
}

/// The seconds pods tolerate a not-ready or unreachable node before eviction, as Kubernetes'
/// `DefaultTolerationSeconds` admission plugin sets them by default.
pub const DEFAULT_TOLERATION_SECONDS: i64 = 300;

/// A pod's `status` struct, and in each condition the two `metav1.Time` fields, which Go
/// writes as `null` when unset.
fn fill_pod(root: &mut Map<String, Value>) {
    let status = object_at(root, "status");
    if let Some(Value::Array(conditions)) = status.get_mut("conditions") {
        for condition in conditions.iter_mut().filter_map(Value::as_object_mut) {
            or_insert(condition, "lastProbeTime", Value::Null);
            or_insert(condition, "lastTransitionTime", Value::Null);
        }
    }
}
