//! Pod and node usage of nodes the API server does not run itself, read from each node's
//! kubelet endpoint as metrics-server reads kubelets: the node serves the kubelet's Summary
//! API (`/stats/summary`, `stats/v1alpha1`: per node, pod and container `usageNanoCores` and
//! `workingSetBytes` with the time they were measured), and the server fetches it over the
//! same TLS path `kubectl logs` takes to reach the node ([`crate::kubelet_proxy`]), turning
//! it into the [`ResourceMetrics`] the `metrics.k8s.io` API and the autoscaler read.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use skiff_client::metrics::{ContainerUsage, NodeUsage, PodUsage, ResourceMetrics};
use skiff_client::{Client, ListOptions, Scope};

/// The Summary API's path, with metrics-server's query (only what `metrics.k8s.io` reports).
pub(crate) const SUMMARY_PATH: &str = "/stats/summary?only_cpu_and_memory=true";
/// How long one node's answer may take (metrics-server's kubelet request timeout).
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest Summary accepted from a node.
const MAX_SUMMARY_BYTES: usize = 16 * 1024 * 1024;

/// RFC 3339 text of `at`, as the kubelet writes its times.
fn rfc3339(at: SystemTime) -> String {
    jiff::Timestamp::try_from(at)
        .map(|t| t.to_string())
        .unwrap_or_default()
}

/// One measurement in the Summary's shape: CPU and memory, each with its time.
fn usage_stats(at: SystemTime, cpu_nanocores: u64, memory_bytes: u64) -> (Value, Value) {
    let time = rfc3339(at);
    (
        json!({"time": time, "usageNanoCores": cpu_nanocores}),
        json!({"time": time, "workingSetBytes": memory_bytes}),
    )
}

/// The kubelet's Summary of `node_name` from what its node measured: the node's usage (when
/// it has a window) and every measured pod's, each pod's own figures the sum of its
/// containers'. Pure.
pub(crate) fn summary_document(
    node_name: &str,
    node: Option<&NodeUsage>,
    pods: &[PodUsage],
) -> Value {
    let mut node_stats = json!({"nodeName": node_name});
    if let Some(node) = node {
        let (cpu, memory) = usage_stats(node.timestamp, node.cpu_nanocores, node.memory_bytes);
        node_stats["cpu"] = cpu;
        node_stats["memory"] = memory;
    }
    let pods: Vec<Value> = pods
        .iter()
        .map(|pod| {
            let containers: Vec<Value> = pod
                .containers
                .iter()
                .map(|c| {
                    let (cpu, memory) = usage_stats(pod.timestamp, c.cpu_nanocores, c.memory_bytes);
                    json!({"name": c.name, "cpu": cpu, "memory": memory})
                })
                .collect();
            let cpu_total = pod
                .containers
                .iter()
                .fold(0u64, |sum, c| sum.saturating_add(c.cpu_nanocores));
            let memory_total = pod
                .containers
                .iter()
                .fold(0u64, |sum, c| sum.saturating_add(c.memory_bytes));
            let (cpu, memory) = usage_stats(pod.timestamp, cpu_total, memory_total);
            json!({
                "podRef": {"name": pod.name, "namespace": pod.namespace},
                "containers": containers,
                "cpu": cpu,
                "memory": memory,
            })
        })
        .collect();
    json!({"node": node_stats, "pods": pods})
}

/// A CPU and memory reading of a Summary entry: usage, working set and the later of their
/// times; `None` when either figure is missing, as metrics-server skips such entries.
fn read_usage(entry: &Value) -> Option<(u64, u64, SystemTime)> {
    let cpu = entry.pointer("/cpu/usageNanoCores")?.as_u64()?;
    let memory = entry.pointer("/memory/workingSetBytes")?.as_u64()?;
    let time = |path: &str| -> Option<SystemTime> {
        let text = entry.pointer(path)?.as_str()?;
        let parsed: jiff::Timestamp = text.parse().ok()?;
        Some(SystemTime::from(parsed))
    };
    let at = match (time("/cpu/time"), time("/memory/time")) {
        (Some(a), Some(b)) => a.max(b),
        (Some(a), None) | (None, Some(a)) => a,
        (None, None) => return None,
    };
    Some((cpu, memory, at))
}

/// What a node's Summary says: the node's usage (named `node_name`, the Node it was fetched
/// for, whatever the document calls itself) and every pod whose containers all carry both
/// figures, with `window` as the window (the Summary names none). Pure.
pub(crate) fn read_summary(
    node_name: &str,
    summary: &Value,
    window: Duration,
) -> (Option<NodeUsage>, Vec<PodUsage>) {
    let node = summary
        .get("node")
        .and_then(read_usage)
        .map(|(cpu, memory, at)| NodeUsage {
            name: node_name.to_string(),
            timestamp: at,
            window,
            cpu_nanocores: cpu,
            memory_bytes: memory,
        });
    let pods = summary
        .get("pods")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|pod| {
            let name = pod.pointer("/podRef/name")?.as_str()?;
            let namespace = pod.pointer("/podRef/namespace")?.as_str()?;
            let mut latest: Option<SystemTime> = None;
            let mut containers = Vec::new();
            for container in pod.get("containers")?.as_array()? {
                let container_name = container.get("name")?.as_str()?;
                let (cpu, memory, at) = read_usage(container)?;
                latest = Some(latest.map_or(at, |l| l.max(at)));
                containers.push(ContainerUsage {
                    name: container_name.to_string(),
                    cpu_nanocores: cpu,
                    memory_bytes: memory,
                });
            }
            containers.sort_by(|a, b| a.name.cmp(&b.name));
            Some(PodUsage {
                namespace: namespace.to_string(),
                name: name.to_string(),
                timestamp: latest?,
                window,
                containers,
            })
        })
        .collect();
    (node, pods)
}

/// Usage of every node measured by its own kubelet endpoint: all Nodes but those measured
/// in this process (the server's own node, simulated nodes).
pub(crate) struct KubeletMetrics {
    /// Lists the Nodes.
    client: Arc<dyn Client>,
    /// TLS toward kubelets: the cluster CA as the only root, the kubelet client certificate.
    tls: tokio_rustls::TlsConnector,
    /// Nodes another source measures.
    measured_here: HashSet<String>,
    /// The window reported for remote figures: the server's metric resolution.
    window: Duration,
}

impl KubeletMetrics {
    /// A source reading nodes through `client`, skipping `measured_here`, fetching with
    /// `tls` and reporting `window`.
    pub(crate) fn new(
        client: Arc<dyn Client>,
        tls: rustls::ClientConfig,
        measured_here: HashSet<String>,
        window: Duration,
    ) -> KubeletMetrics {
        KubeletMetrics {
            client,
            tls: tokio_rustls::TlsConnector::from(Arc::new(tls)),
            measured_here,
            window,
        }
    }

    /// Every remote node's Summary, read; a node that cannot be read is left out (and said
    /// in the log), as metrics-server leaves it out.
    async fn scrape(&self) -> Vec<(Option<NodeUsage>, Vec<PodUsage>)> {
        let scope = Scope {
            resource: &skiff_api::kinds::node::V1,
            namespace: None,
        };
        let nodes = match self.client.list(scope, &ListOptions::default()).await {
            Ok(list) => list.items,
            Err(error) => {
                tracing::warn!(%error, "cannot list the nodes to read their usage");
                return Vec::new();
            }
        };
        let fetches = nodes.iter().filter_map(|node| {
            let name = node.pointer("/metadata/name")?.as_str()?.to_string();
            if self.measured_here.contains(&name) {
                return None;
            }
            let address = crate::kubelet_proxy::kubelet_address(node);
            Some(async move {
                let fetched = match address {
                    Ok((host, port)) => {
                        tokio::time::timeout(SCRAPE_TIMEOUT, self.fetch(&host, port))
                            .await
                            .unwrap_or_else(|_| Err("timed out".to_string()))
                    }
                    Err(error) => Err(error),
                };
                match fetched {
                    Ok(summary) => Some(read_summary(&name, &summary, self.window)),
                    Err(error) => {
                        tracing::debug!(node = %name, %error, "cannot read the node's usage");
                        None
                    }
                }
            })
        });
        futures::future::join_all(fetches)
            .await
            .into_iter()
            .flatten()
            .collect()
    }

    /// One node's Summary.
    async fn fetch(&self, host: &str, port: u16) -> Result<Value, String> {
        let mut sender = crate::kubelet_proxy::connect_kubelet(&self.tls, host, port).await?;
        let request = hyper::Request::builder()
            .method(hyper::Method::GET)
            .uri(SUMMARY_PATH)
            .header(hyper::header::HOST, format!("{host}:{port}"))
            .body(http_body_util::Empty::new())
            .map_err(|e| e.to_string())?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| e.to_string())?;
        let status = response.status();
        let body = http_body_util::Limited::new(response.into_body(), MAX_SUMMARY_BYTES)
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        if !status.is_success() {
            return Err(format!(
                "the kubelet answered {status}: {}",
                String::from_utf8_lossy(&body).trim()
            ));
        }
        serde_json::from_slice(&body).map_err(|e| format!("the Summary is not JSON: {e}"))
    }
}

#[async_trait]
impl ResourceMetrics for KubeletMetrics {
    async fn pods(&self) -> Vec<PodUsage> {
        self.scrape()
            .await
            .into_iter()
            .flat_map(|(_, pods)| pods)
            .collect()
    }

    async fn nodes(&self) -> Vec<NodeUsage> {
        self.scrape()
            .await
            .into_iter()
            .filter_map(|(node, _)| node)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(seconds)
    }

    #[test]
    fn a_summary_carries_the_nodes_and_pods_usage_and_reads_back_the_same() {
        let node = NodeUsage {
            name: "agent-a".into(),
            timestamp: at(1_700_000_000),
            window: Duration::from_secs(5),
            cpu_nanocores: 250_000_000,
            memory_bytes: 1 << 30,
        };
        let pod = PodUsage {
            namespace: "default".into(),
            name: "burner".into(),
            timestamp: at(1_700_000_003),
            window: Duration::from_secs(5),
            containers: vec![
                ContainerUsage {
                    name: "main".into(),
                    cpu_nanocores: 900_000_000,
                    memory_bytes: 4096,
                },
                ContainerUsage {
                    name: "side".into(),
                    cpu_nanocores: 100_000_000,
                    memory_bytes: 1024,
                },
            ],
        };
        let document = summary_document("agent-a", Some(&node), std::slice::from_ref(&pod));
        assert_eq!(document["node"]["nodeName"], "agent-a");
        assert_eq!(document["node"]["cpu"]["usageNanoCores"], 250_000_000);
        assert_eq!(document["node"]["cpu"]["time"], "2023-11-14T22:13:20Z");
        assert_eq!(document["pods"][0]["podRef"]["name"], "burner");
        assert_eq!(document["pods"][0]["cpu"]["usageNanoCores"], 1_000_000_000);
        assert_eq!(document["pods"][0]["memory"]["workingSetBytes"], 5120);

        let window = Duration::from_secs(15);
        let (read_node, read_pods) = read_summary("agent-a", &document, window);
        assert_eq!(
            read_node,
            Some(NodeUsage {
                window,
                ..node.clone()
            })
        );
        assert_eq!(read_pods, vec![PodUsage { window, ..pod }]);
    }

    #[test]
    fn entries_missing_a_figure_are_left_out_as_metrics_server_leaves_them() {
        let summary = json!({
            "node": {"nodeName": "n", "cpu": {"time": "2024-05-01T10:00:00Z"}},
            "pods": [
                {"podRef": {"name": "half", "namespace": "default"},
                 "containers": [
                    {"name": "a", "cpu": {"time": "2024-05-01T10:00:00Z", "usageNanoCores": 5},
                     "memory": {"time": "2024-05-01T10:00:00Z", "workingSetBytes": 7}},
                    {"name": "b", "cpu": {"time": "2024-05-01T10:00:00Z", "usageNanoCores": 5}}]},
                {"podRef": {"name": "whole", "namespace": "web"},
                 "containers": [
                    {"name": "a", "cpu": {"time": "2024-05-01T10:00:00Z", "usageNanoCores": 5},
                     "memory": {"time": "2024-05-01T10:00:02Z", "workingSetBytes": 7}}]},
                {"podRef": {"namespace": "nameless"}, "containers": []},
                "not an object"
            ]
        });
        let (node, pods) = read_summary("n", &summary, Duration::from_secs(5));
        assert_eq!(node, None, "the node has no memory figure");
        assert_eq!(pods.len(), 1, "{pods:?}");
        assert_eq!(pods[0].name, "whole");
        assert_eq!(pods[0].namespace, "web");
        assert_eq!(
            pods[0].timestamp,
            SystemTime::from("2024-05-01T10:00:02Z".parse::<jiff::Timestamp>().unwrap())
        );
        let (node, pods) = read_summary("n", &json!("garbage"), Duration::from_secs(5));
        assert_eq!((node, pods), (None, Vec::new()));
    }
}
