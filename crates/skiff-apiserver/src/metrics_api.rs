//! `metrics.k8s.io/v1beta1`: `PodMetrics` and `NodeMetrics` as metrics-server serves them, read
//! from a [`ResourceMetrics`] source, with labels and selectors taken from the stored pods and
//! nodes.
//!
//! Only `get` and `list` exist, as in metrics-server. A pod or node without a complete
//! sampling window is left out of lists and is `NotFound` on its own, which is how `kubectl top`
//! and the HorizontalPodAutoscaler tell "no metrics yet" apart from a failure.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Map, Value};
use skiff_api::printers::IncludeObject;
use skiff_api::resources::{self, ResourceInfo};

use crate::metrics::{NodeUsage, PodUsage, ResourceMetrics};
use crate::registry::{ListOptions, Registry};
use crate::status::ApiError;

/// The API group metrics-server registers.
pub const GROUP: &str = "metrics.k8s.io";
/// The only version of the group kubectl and the autoscaler use.
pub const VERSION: &str = "v1beta1";
/// `apiVersion` of every object in the group.
pub const API_VERSION: &str = "metrics.k8s.io/v1beta1";

/// What a request under `/apis/metrics.k8s.io/v1beta1/` asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MetricsTarget {
    /// Pods in one namespace (`Some`) or all of them.
    Pods {
        /// The namespace, `None` for all.
        namespace: Option<String>,
        /// One pod, or `None` to list.
        name: Option<String>,
    },
    /// Nodes: one, or `None` to list.
    Nodes {
        /// One node, or `None` to list.
        name: Option<String>,
    },
}

/// Parses a request path; `None` when it is not a metrics resource path (the group's
/// discovery documents are answered elsewhere).
pub fn parse_path(path: &str) -> Option<Result<MetricsTarget, ApiError>> {
    let segments: Vec<&str> = path
        .trim_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    let rest = match segments.as_slice() {
        ["apis", group, version, rest @ ..] if *group == GROUP && *version == VERSION => rest,
        _ => return None,
    };
    let own = |s: &&str| Some(s.to_string());
    let target = match rest {
        [] => return None,
        ["pods"] => Ok(MetricsTarget::Pods {
            namespace: None,
            name: None,
        }),
        ["namespaces", ns, "pods"] => Ok(MetricsTarget::Pods {
            namespace: own(ns),
            name: None,
        }),
        ["namespaces", ns, "pods", name] => Ok(MetricsTarget::Pods {
            namespace: own(ns),
            name: own(name),
        }),
        ["nodes"] => Ok(MetricsTarget::Nodes { name: None }),
        ["nodes", name] => Ok(MetricsTarget::Nodes { name: own(name) }),
        _ => Err(ApiError::path_not_found()),
    };
    Some(target)
}

/// The query parameters the group honours.
#[derive(Clone, Debug, Default)]
pub struct MetricsQuery {
    /// `labelSelector`, matched against the pods' or nodes' labels.
    pub label_selector: Option<String>,
    /// `fieldSelector`, matched against the pods or nodes.
    pub field_selector: Option<String>,
    /// Whether the client asked for a `Table` (`kubectl get podmetrics`).
    pub table: bool,
    /// What each table row carries.
    pub include_object: IncludeObject,
}

/// `404` for missing metrics, named like metrics-server names them:
/// `podmetrics.metrics.k8s.io "web" not found`.
pub fn metrics_not_found(plural: &str, name: &str) -> ApiError {
    ApiError {
        code: 404,
        reason: "NotFound",
        message: format!("{plural}.{GROUP} \"{name}\" not found"),
        details: Some(json!({"name": name, "group": GROUP, "kind": plural})),
    }
}

/// Answers a metrics request: a `PodMetrics`, `NodeMetrics`, their lists, or a `Table`.
pub async fn serve(
    registry: &Registry,
    metrics: &dyn ResourceMetrics,
    target: MetricsTarget,
    query: &MetricsQuery,
) -> Result<Value, ApiError> {
    let now = SystemTime::now();
    match target {
        MetricsTarget::Pods { namespace, name } => {
            let pods = core_resource("pods")?;
            let stored = match &name {
                Some(name) => vec![registry
                    .get(pods, namespace.as_deref(), name)
                    .await
                    .map_err(|e| not_found_as(e, "podmetrics", name))?],
                None => {
                    registry
                        .list(pods, namespace.as_deref(), &list_options(query))
                        .await?
                        .items
                }
            };
            let usage: HashMap<(String, String), PodUsage> = metrics
                .pods()
                .await
                .into_iter()
                .map(|p| ((p.namespace.clone(), p.name.clone()), p))
                .collect();
            let items: Vec<Item> = stored
                .iter()
                .filter_map(|pod| {
                    let key = (
                        text(pod, "/metadata/namespace"),
                        text(pod, "/metadata/name"),
                    );
                    let u = usage.get(&key)?;
                    Some(Item {
                        object: pod_metrics(u, labels(pod), now),
                        cpu_nanocores: u.containers.iter().map(|c| c.cpu_nanocores).sum(),
                        memory_bytes: u.containers.iter().map(|c| c.memory_bytes).sum(),
                    })
                })
                .collect();
            finish("PodMetrics", name.as_deref(), "podmetrics", items, query)
        }
        MetricsTarget::Nodes { name } => {
            let nodes = core_resource("nodes")?;
            let stored = match &name {
                Some(name) => vec![registry
                    .get(nodes, None, name)
                    .await
                    .map_err(|e| not_found_as(e, "nodemetrics", name))?],
                None => {
                    registry
                        .list(nodes, None, &list_options(query))
                        .await?
                        .items
                }
            };
            let usage: HashMap<String, NodeUsage> = metrics
                .nodes()
                .await
                .into_iter()
                .map(|n| (n.name.clone(), n))
                .collect();
            let items: Vec<Item> = stored
                .iter()
                .filter_map(|node| {
                    let u = usage.get(&text(node, "/metadata/name"))?;
                    Some(Item {
                        object: node_metrics(u, labels(node), now),
                        cpu_nanocores: u.cpu_nanocores,
                        memory_bytes: u.memory_bytes,
                    })
                })
                .collect();
            finish("NodeMetrics", name.as_deref(), "nodemetrics", items, query)
        }
    }
}

fn core_resource(plural: &str) -> Result<&'static ResourceInfo, ApiError> {
    resources::find("", "v1", plural)
        .ok_or_else(|| ApiError::internal(format!("the core resource {plural} is not served")))
}

fn list_options(query: &MetricsQuery) -> ListOptions {
    ListOptions {
        label_selector: query.label_selector.clone(),
        field_selector: query.field_selector.clone(),
        ..ListOptions::default()
    }
}

/// A missing pod or node is missing metrics, in the metrics resource's words.
fn not_found_as(error: ApiError, plural: &str, name: &str) -> ApiError {
    if error.code == 404 {
        metrics_not_found(plural, name)
    } else {
        error
    }
}

fn text(obj: &Value, pointer: &str) -> String {
    obj.pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

fn labels(obj: &Value) -> Option<&Map<String, Value>> {
    obj.pointer("/metadata/labels").and_then(Value::as_object)
}

/// One object for a get, else the list (or its table).
fn finish(
    kind: &str,
    name: Option<&str>,
    plural: &str,
    mut items: Vec<Item>,
    query: &MetricsQuery,
) -> Result<Value, ApiError> {
    items.sort_by_key(|item| {
        (
            text(&item.object, "/metadata/namespace"),
            text(&item.object, "/metadata/name"),
        )
    });
    if let Some(name) = name {
        let item = items
            .into_iter()
            .next()
            .ok_or_else(|| metrics_not_found(plural, name))?;
        return Ok(if query.table {
            table(std::slice::from_ref(&item), query.include_object)
        } else {
            item.object
        });
    }
    if query.table {
        return Ok(table(&items, query.include_object));
    }
    let items: Vec<Value> = items.into_iter().map(|i| i.object).collect();
    Ok(json!({
        "kind": format!("{kind}List"),
        "apiVersion": API_VERSION,
        "metadata": {},
        "items": items,
    }))
}

/// `metav1.Time` as JSON writes it: RFC 3339 in UTC, whole seconds.
pub fn format_time(at: SystemTime) -> String {
    let seconds = at
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0);
    jiff::Timestamp::from_second(seconds)
        .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
        .to_string()
}

/// Go's `time.Duration.String()`, which `metav1.Duration` writes: `15s`, `10.5s`, `1m0s`,
/// `1h2m3s`, `250ms`, `0s`.
pub fn go_duration(d: Duration) -> String {
    let nanos = d.as_nanos();
    if nanos == 0 {
        return "0s".to_string();
    }
    if nanos < 1_000_000_000 {
        let (unit, scale) = if nanos < 1_000 {
            ("ns", 1)
        } else if nanos < 1_000_000 {
            ("µs", 1_000)
        } else {
            ("ms", 1_000_000)
        };
        return format!("{}{unit}", decimal(nanos, scale));
    }
    let total_seconds = d.as_secs();
    let hours = total_seconds / 3600;
    let minutes = (total_seconds % 3600) / 60;
    let seconds = decimal(
        u128::from(total_seconds % 60) * 1_000_000_000 + u128::from(d.subsec_nanos()),
        1_000_000_000,
    );
    if hours > 0 {
        format!("{hours}h{minutes}m{seconds}s")
    } else if minutes > 0 {
        format!("{minutes}m{seconds}s")
    } else {
        format!("{seconds}s")
    }
}

/// `value / scale` with as many decimals as needed and no trailing zeros.
fn decimal(value: u128, scale: u128) -> String {
    let whole = value / scale;
    let fraction = value % scale;
    if fraction == 0 {
        return whole.to_string();
    }
    let width = scale.to_string().len() - 1;
    let digits = format!("{fraction:0width$}");
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

/// A CPU amount as a canonical decimal quantity, the way metrics-server's nanocore quantities
/// print: `12345n`, `250m`, `1500m`, `2`, `0`.
pub fn format_nanocores(nanocores: u64) -> String {
    if nanocores == 0 {
        return "0".to_string();
    }
    // Suffixes by power of ten, from nano up; pick the largest that keeps the number whole.
    const SUFFIXES: [&str; 10] = ["n", "u", "m", "", "k", "M", "G", "T", "P", "E"];
    let mut value = nanocores;
    let mut index = 0;
    while index + 1 < SUFFIXES.len() && value.is_multiple_of(1000) {
        value /= 1000;
        index += 1;
    }
    format!("{value}{}", SUFFIXES[index])
}

/// A byte count as a canonical binary quantity, the way metrics-server's memory prints:
/// `1234Ki`, `64Mi`, `1000` (not a whole number of KiB), `0`.
pub fn format_bytes(bytes: u64) -> String {
    if bytes < 1024 {
        return bytes.to_string();
    }
    const SUFFIXES: [&str; 7] = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"];
    let mut value = bytes;
    let mut index = 0;
    while index + 1 < SUFFIXES.len() && value.is_multiple_of(1024) {
        value /= 1024;
        index += 1;
    }
    format!("{value}{}", SUFFIXES[index])
}

fn metadata(
    name: &str,
    namespace: Option<&str>,
    labels: Option<&Map<String, Value>>,
    now: SystemTime,
) -> Value {
    let mut meta = Map::new();
    meta.insert("name".into(), json!(name));
    if let Some(ns) = namespace {
        meta.insert("namespace".into(), json!(ns));
    }
    meta.insert("creationTimestamp".into(), json!(format_time(now)));
    if let Some(labels) = labels.filter(|l| !l.is_empty()) {
        meta.insert("labels".into(), Value::Object(labels.clone()));
    }
    Value::Object(meta)
}

/// A `PodMetrics` object.
pub fn pod_metrics(
    usage: &PodUsage,
    labels: Option<&Map<String, Value>>,
    now: SystemTime,
) -> Value {
    let containers: Vec<Value> = usage
        .containers
        .iter()
        .map(|c| {
            json!({
                "name": c.name,
                "usage": {"cpu": format_nanocores(c.cpu_nanocores), "memory": format_bytes(c.memory_bytes)},
            })
        })
        .collect();
    json!({
        "kind": "PodMetrics",
        "apiVersion": API_VERSION,
        "metadata": metadata(&usage.name, Some(&usage.namespace), labels, now),
        "timestamp": format_time(usage.timestamp),
        "window": go_duration(usage.window),
        "containers": containers,
    })
}

/// A `NodeMetrics` object.
pub fn node_metrics(
    usage: &NodeUsage,
    labels: Option<&Map<String, Value>>,
    now: SystemTime,
) -> Value {
    json!({
        "kind": "NodeMetrics",
        "apiVersion": API_VERSION,
        "metadata": metadata(&usage.name, None, labels, now),
        "timestamp": format_time(usage.timestamp),
        "window": go_duration(usage.window),
        "usage": {"cpu": format_nanocores(usage.cpu_nanocores), "memory": format_bytes(usage.memory_bytes)},
    })
}

/// An object with its CPU (nanocores) and memory (bytes), summed over containers, for tables.
struct Item {
    object: Value,
    cpu_nanocores: u64,
    memory_bytes: u64,
}

/// The `Table` metrics-server prints: name, CPU, memory (summed over containers) and window.
fn table(items: &[Item], include: IncludeObject) -> Value {
    let columns = json!([
        {"name": "Name", "type": "string", "format": "name", "description": "Name of the resource", "priority": 0},
        {"name": "cpu", "type": "string", "format": "quantity", "description": "", "priority": 0},
        {"name": "memory", "type": "string", "format": "quantity", "description": "", "priority": 0},
        {"name": "Window", "type": "string", "format": "duration", "description": "", "priority": 0},
    ]);
    let rows: Vec<Value> = items
        .iter()
        .map(
            |Item {
                 object: item,
                 cpu_nanocores,
                 memory_bytes,
             }| {
                let object = match include {
                    IncludeObject::None => Value::Null,
                    IncludeObject::Object => item.clone(),
                    IncludeObject::Metadata => json!({
                        "kind": "PartialObjectMetadata",
                        "apiVersion": "meta.k8s.io/v1",
                        "metadata": item.get("metadata").cloned().unwrap_or_else(|| json!({})),
                    }),
                };
                json!({
                    "cells": [
                        text(item, "/metadata/name"),
                        format_nanocores(*cpu_nanocores),
                        format_bytes(*memory_bytes),
                        text(item, "/window"),
                    ],
                    "object": object,
                })
            },
        )
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {},
        "columnDefinitions": columns,
        "rows": rows,
    })
}

#[cfg(test)]
mod tests;
