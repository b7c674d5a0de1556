//! The real node's Node object, status and Lease, built on the simulated node's builders with
//! what this machine really is: its CPUs, memory, kernel and OS.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ContainerImage, Node, NodeStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use serde_json::json;
use skiff_api::patch::PatchType;
use skiff_client::{Api, Client, ClientError};

use crate::agent::host_facts::{
    node_addresses, node_system_info, role_labels, HostFacts, NodeSoftwareFacts,
};
use crate::agent::ImageService;
use crate::simulated::node::{
    lease_duration_seconds, lease_object, node_object, node_status, NodeSoftware, SimulatedNode,
    NODE_LEASE_NAMESPACE, SIMULATED_NODE_LABEL,
};
use crate::simulated::NodeCapacity;

/// The real node's `InternalIP` when nothing better is known.
pub const NODE_ADDRESS: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 1);

/// This machine's CPUs and memory, as a node's capacity.
pub fn detect_capacity() -> NodeCapacity {
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let memory_kib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| parse_meminfo_total(&text))
        .unwrap_or(1024 * 1024);
    NodeCapacity {
        cpu: cpus.to_string(),
        memory: format!("{memory_kib}Ki"),
        ..NodeCapacity::default()
    }
}

/// `MemTotal` in KiB from `/proc/meminfo`.
pub fn parse_meminfo_total(text: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Who the real node is.
#[derive(Clone, Debug)]
pub struct RealNode {
    identity: SimulatedNode,
    capacity: NodeCapacity,
    software: NodeSoftware,
    kubelet_port: u16,
    internal_ips: Vec<IpAddr>,
    facts: HostFacts,
    runtime_name: &'static str,
    control_plane: bool,
    runtime_fallback: Option<String>,
}

/// The Node annotation saying why its pods run as plain processes though the OCI runtime was
/// the default (Skiff not root, namespaces refused): `kubectl describe node` lists it.
pub const RUNTIME_FALLBACK_ANNOTATION: &str = "skiff.dev/container-runtime-fallback";

impl RealNode {
    /// The node `name` with pod range `pod_cidr` and `capacity`.
    pub fn new(name: &str, pod_cidr: (Ipv4Addr, u8), capacity: NodeCapacity) -> RealNode {
        RealNode {
            identity: SimulatedNode {
                name: name.to_string(),
                index: 0,
                internal_ip: NODE_ADDRESS,
                pod_cidr,
            },
            capacity,
            software: NodeSoftware::default(),
            kubelet_port: crate::agent::DEFAULT_KUBELET_PORT,
            internal_ips: vec![IpAddr::V4(NODE_ADDRESS)],
            facts: HostFacts::default(),
            runtime_name: "skiff",
            control_plane: false,
            runtime_fallback: None,
        }
    }

    /// The node with these `InternalIP`s (the first one first) and this machine's `facts`.
    pub fn with_host(mut self, internal_ips: Vec<IpAddr>, facts: HostFacts) -> RealNode {
        if !internal_ips.is_empty() {
            self.internal_ips = internal_ips;
        }
        self.facts = facts;
        self
    }

    /// The node whose pods run on the runtime `name` (`containerRuntimeVersion`'s scheme).
    pub fn with_runtime_name(mut self, name: &'static str) -> RealNode {
        self.runtime_name = name;
        self
    }

    /// The node of a server (a control-plane machine), labelled with its role.
    pub fn with_control_plane(mut self, control_plane: bool) -> RealNode {
        self.control_plane = control_plane;
        self
    }

    /// The node whose pods run as processes for `reason` though `oci` was the default, which
    /// its [`RUNTIME_FALLBACK_ANNOTATION`] says.
    pub fn with_runtime_fallback(mut self, reason: Option<String>) -> RealNode {
        self.runtime_fallback = reason;
        self
    }

    /// The node with its kubelet endpoint on `port`, which its status reports.
    pub fn with_kubelet_port(mut self, port: u16) -> RealNode {
        self.kubelet_port = port;
        self
    }

    /// The node's name.
    pub fn name(&self) -> &str {
        &self.identity.name
    }

    fn fix_status(&self, status: &mut NodeStatus) {
        status.addresses = Some(node_addresses(&self.internal_ips, &self.identity.name));
        status.node_info = Some(node_system_info(
            &self.facts,
            &NodeSoftwareFacts {
                container_runtime_version: format!(
                    "{}://{}",
                    self.runtime_name,
                    env!("CARGO_PKG_VERSION")
                ),
                kubelet_version: self.software.kubelet_version.clone(),
                architecture: self.software.architecture.clone(),
            },
        ));
        status.daemon_endpoints = Some(k8s_openapi::api::core::v1::NodeDaemonEndpoints {
            kubelet_endpoint: Some(k8s_openapi::api::core::v1::DaemonEndpoint {
                port: i32::from(self.kubelet_port),
            }),
        });
    }

    /// The Node to register.
    pub fn object(&self, now: Timestamp) -> Node {
        let mut node = node_object(&self.identity, &self.capacity, &self.software, now);
        if let Some(labels) = node.metadata.labels.as_mut() {
            labels.remove(SIMULATED_NODE_LABEL);
            labels.extend(role_labels(self.control_plane));
        }
        if let Some(reason) = &self.runtime_fallback {
            node.metadata
                .annotations
                .get_or_insert_with(Default::default)
                .insert(RUNTIME_FALLBACK_ANNOTATION.to_string(), reason.clone());
        }
        if let Some(status) = node.status.as_mut() {
            self.fix_status(status);
        }
        node
    }

    /// A fresh status, keeping what others wrote.
    pub fn status(&self, previous: Option<&NodeStatus>, now: Timestamp) -> NodeStatus {
        let mut status = node_status(
            &self.identity,
            &self.capacity,
            &self.software,
            previous,
            now,
        );
        self.fix_status(&mut status);
        status
    }
}

/// Registers the node and keeps its Lease and status fresh.
pub struct NodeReporter {
    nodes: Api<Node>,
    leases: Api<Lease>,
    node: RealNode,
    heartbeat: Duration,
    uid: Option<String>,
    images: Option<Arc<dyn ImageService>>,
    /// The images the last status written listed.
    reported_images: Vec<ContainerImage>,
}

impl NodeReporter {
    /// A reporter through `client`.
    pub fn new(
        client: Arc<dyn Client>,
        node: RealNode,
        heartbeat: Duration,
    ) -> Result<NodeReporter, ClientError> {
        Ok(NodeReporter {
            nodes: Api::new(client.clone(), None)?,
            leases: Api::new(client, Some(NODE_LEASE_NAMESPACE))?,
            node,
            heartbeat,
            uid: None,
            images: None,
            reported_images: Vec::new(),
        })
    }

    /// Lists `images`' stored images in the Node's `status.images`, refreshed whenever they
    /// change (checked every heartbeat).
    pub fn with_images(mut self, images: Arc<dyn ImageService>) -> NodeReporter {
        self.images = Some(images);
        self
    }

    fn current_images(&self) -> Vec<ContainerImage> {
        self.images
            .as_ref()
            .map(|images| images.node_images())
            .unwrap_or_default()
    }

    /// Creates the Node (or refreshes one registered before) and its Lease.
    pub async fn register(&mut self) -> Result<(), ClientError> {
        let object = self.node.object(Timestamp::now());
        let registered = match self.nodes.create(&object).await {
            Ok(created) => created,
            Err(e) if e.is_conflict() => {
                let labels = object.metadata.labels.clone().unwrap_or_default();
                // A fallback of an earlier run that no longer holds is removed (null).
                let fallback = self.node.runtime_fallback.clone();
                self.nodes
                    .patch(
                        self.node.name(),
                        PatchType::Merge,
                        json!({"metadata": {
                            "labels": labels,
                            "annotations": {RUNTIME_FALLBACK_ANNOTATION: fallback},
                        }}),
                        false,
                    )
                    .await?;
                self.report_status().await?
            }
            Err(e) => return Err(e),
        };
        self.uid = registered.metadata.uid;
        self.renew_lease().await
    }

    /// Writes a fresh status.
    pub async fn report_status(&mut self) -> Result<Node, ClientError> {
        let mut last = None;
        let images = self.current_images();
        for _ in 0..5 {
            let mut current = self.nodes.get(self.node.name()).await?;
            let mut status = self.node.status(current.status.as_ref(), Timestamp::now());
            if self.images.is_some() {
                // kubelet omits the list when the node has no images.
                status.images = (!images.is_empty()).then(|| images.clone());
            }
            current.status = Some(status);
            match self.nodes.update_status(&current).await {
                Ok(stored) => {
                    self.reported_images = images;
                    return Ok(stored);
                }
                Err(e) if e.is_conflict() => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| ClientError::Decode("no status write attempted".into())))
    }

    /// Renews the Lease, creating it when missing.
    pub async fn renew_lease(&self) -> Result<(), ClientError> {
        let now = Timestamp::now();
        let duration = lease_duration_seconds(self.heartbeat);
        let renewal = json!({"spec": {
            "holderIdentity": self.node.name(),
            "leaseDurationSeconds": duration,
            "renewTime": MicroTime(now),
        }});
        match self
            .leases
            .patch(self.node.name(), PatchType::Merge, renewal, false)
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.is_not_found() => {
                let lease = lease_object(self.node.name(), self.uid.as_deref(), duration, now);
                match self.leases.create(&lease).await {
                    Ok(_) => Ok(()),
                    Err(e) if e.is_conflict() => Ok(()),
                    Err(e) => Err(e),
                }
            }
            Err(e) => Err(e),
        }
    }

    /// Renews the Lease every heartbeat and reports status every sixth, forever.
    pub async fn run(mut self) {
        let mut ticks = tokio::time::interval(self.heartbeat);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticks.tick().await;
        let mut count: u64 = 0;
        loop {
            ticks.tick().await;
            count += 1;
            if let Err(error) = self.renew_lease().await {
                tracing::warn!(node = %self.node.name(), %error, "renewing the node lease failed");
            }
            let images_changed =
                self.images.is_some() && self.current_images() != self.reported_images;
            // Marked Unknown by the node lifecycle controller (the server was away, or this
            // node was slow): kubelet reports at once when the stored status is not its own.
            let marked_unready = match self.nodes.get_opt(self.node.name()).await {
                Ok(Some(stored)) => !crate::simulated::node::reported_ready(&stored),
                _ => false,
            };
            if count.is_multiple_of(6) || images_changed || marked_unready {
                let result = match self.report_status().await {
                    Err(e) if e.is_not_found() => self.register().await,
                    other => other.map(|_| ()),
                };
                if let Err(error) = result {
                    tracing::warn!(node = %self.node.name(), %error, "reporting node status failed");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meminfo_total_is_read_in_kib() {
        let text = "MemTotal:       16314444 kB\nMemFree:         1234 kB\n";
        assert_eq!(parse_meminfo_total(text), Some(16_314_444));
        assert_eq!(parse_meminfo_total("nothing"), None);
    }

    #[test]
    fn the_real_node_reports_its_runtime_and_no_simulation_label() {
        let node = RealNode::new(
            "host-a",
            ("127.128.0.0".parse().unwrap(), 16),
            NodeCapacity {
                cpu: "2".into(),
                memory: "1000Ki".into(),
                ..NodeCapacity::default()
            },
        );
        let object = node.object(Timestamp::now());
        let labels = object.metadata.labels.clone().unwrap();
        assert!(!labels.contains_key(SIMULATED_NODE_LABEL));
        assert_eq!(labels["kubernetes.io/hostname"], "host-a");
        let status = object.status.unwrap();
        let info = status.node_info.unwrap();
        assert!(info.container_runtime_version.starts_with("skiff://"));
        assert_eq!(status.capacity.unwrap()["cpu"].0, "2");
        assert_eq!(status.addresses.unwrap()[0].address, "127.0.0.1");
        assert_eq!(
            status
                .daemon_endpoints
                .unwrap()
                .kubelet_endpoint
                .unwrap()
                .port,
            10250
        );
        let moved = node
            .clone()
            .with_kubelet_port(41234)
            .status(None, Timestamp::now());
        assert_eq!(
            moved
                .daemon_endpoints
                .unwrap()
                .kubelet_endpoint
                .unwrap()
                .port,
            41234
        );
        assert_eq!(
            object.spec.unwrap().pod_cidr.as_deref(),
            Some("127.128.0.0/16")
        );
    }

    #[test]
    fn the_real_node_reports_its_addresses_facts_runtime_and_role() {
        let facts = HostFacts {
            default_route_address: Some(Ipv4Addr::new(192, 168, 1, 20)),
            os_release: Some("PRETTY_NAME=\"Debian GNU/Linux 13 (trixie)\"\n".into()),
            kernel_release: Some("6.12.48+deb13-amd64".into()),
            boot_id: Some("b00710d0-0000-4000-8000-000000000001".into()),
            ..HostFacts::default()
        };
        let server = RealNode::new(
            "server-a",
            ("10.42.0.0".parse().unwrap(), 24),
            NodeCapacity::default(),
        )
        .with_host(vec!["127.0.0.2".parse().unwrap()], facts.clone())
        .with_runtime_name("skiff-oci")
        .with_control_plane(true);
        let object = server.object(Timestamp::now());
        let labels = object.metadata.labels.unwrap();
        assert_eq!(labels["node-role.kubernetes.io/control-plane"], "true");
        assert_eq!(labels["node-role.kubernetes.io/master"], "true");
        let status = server.status(object.status.as_ref(), Timestamp::now());
        let addresses: Vec<(String, String)> = status
            .addresses
            .unwrap()
            .into_iter()
            .map(|a| (a.type_, a.address))
            .collect();
        assert_eq!(
            addresses,
            [
                ("InternalIP".to_string(), "127.0.0.2".to_string()),
                ("Hostname".to_string(), "server-a".to_string()),
            ]
        );
        let info = status.node_info.unwrap();
        assert_eq!(info.os_image, "Debian GNU/Linux 13 (trixie)");
        assert_eq!(info.kernel_version, "6.12.48+deb13-amd64");
        assert_eq!(info.boot_id, "b00710d0-0000-4000-8000-000000000001");
        assert_eq!(
            info.container_runtime_version,
            format!("skiff-oci://{}", env!("CARGO_PKG_VERSION"))
        );

        let agent = RealNode::new(
            "agent-b",
            ("10.42.1.0".parse().unwrap(), 24),
            NodeCapacity::default(),
        )
        .with_host(Vec::new(), facts);
        let labels = agent.object(Timestamp::now()).metadata.labels.unwrap();
        assert!(
            !labels
                .keys()
                .any(|k| k.starts_with("node-role.kubernetes.io/")),
            "{labels:?}"
        );
    }

    #[test]
    fn a_node_that_fell_back_to_processes_says_why_in_an_annotation() {
        let node = RealNode::new(
            "plain",
            ("10.42.0.0".parse().unwrap(), 24),
            NodeCapacity::default(),
        );
        let annotations = node.object(Timestamp::now()).metadata.annotations.unwrap();
        assert!(
            !annotations.contains_key(RUNTIME_FALLBACK_ANNOTATION),
            "{annotations:?}"
        );
        let fell_back = node.with_runtime_fallback(Some("skiff does not run as root".into()));
        let annotations = fell_back
            .object(Timestamp::now())
            .metadata
            .annotations
            .unwrap();
        assert_eq!(
            annotations[RUNTIME_FALLBACK_ANNOTATION],
            "skiff does not run as root"
        );
    }
}
