//! Nodes (`v1`): node defaults, the node printer and field selectors.

use jiff::Timestamp;
use serde_json::{Map, Value};

use super::{Kind, KindStrategy, RegistryHook, TypedVersion};
use crate::defaults::*;
use crate::printers::*;
use crate::{
    printers::Printer,
    resources::{res, ResourceInfo, Subresource::Status},
};

/// `v1` Nodes.
pub static V1: ResourceInfo = ResourceInfo {
    short_names: &["no"],
    subresources: &[Status],
    ..res("", "v1", "Node", "nodes", "node", false)
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
        Some(TypedVersion::of::<k8s_openapi::api::core::v1::Node>())
    }

    fn apply_defaults(&self, _version: &str, root: &mut Map<String, Value>) {
        default_node(root);
    }

    fn printer(&self) -> Option<Printer> {
        Some(Printer::new(node_columns(), node_cells))
    }

    fn field_selectors(&self) -> Option<&'static [&'static str]> {
        Some(&["metadata.name", "spec.unschedulable"])
    }

    fn registry_hook(&self) -> RegistryHook {
        RegistryHook::Node
    }
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

fn default_node(root: &mut Map<String, Value>) {
    // SetDefaults_NodeStatus: allocatable starts equal to capacity.
    if let Some(status) = existing(root, "status") {
        if is_unset(status, "allocatable") {
            if let Some(capacity) = status.get("capacity").cloned() {
                if capacity.is_object() {
                    status.insert("allocatable".to_string(), capacity);
                }
            }
        }
    }
}
