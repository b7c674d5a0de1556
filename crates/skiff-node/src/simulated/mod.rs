//! Simulated nodes: Node objects, Leases and pod lifecycles without running anything.
//!
//! Like KWOK's fake nodes, each simulated node registers a Node that reports itself healthy,
//! renews its Lease in `kube-node-lease` every heartbeat, and plays a kubelet's part for the
//! pods bound to it: they go `Pending` → `Running` → ready on a short timeline (see
//! [`timeline`]), can be scripted to stay unready or to crash through pod annotations
//! ([`timeline::NEVER_READY_ANNOTATION`], [`timeline::FAIL_AFTER_ANNOTATION`],
//! [`timeline::COMPLETE_AFTER_ANNOTATION`]), run their init containers in turn
//! ([`timeline::INIT_RUN_FOR_ANNOTATION`]), and have their deletion confirmed once their
//! containers stopped. A node annotated [`node::HEARTBEAT_STOPPED_ANNOTATION`] goes silent (no
//! Lease renewal, no status report) until the annotation goes, as a machine cut off would.
//!
//! Everything goes through a [`Client`]; all pod state lives in the pods' status, so restarting
//! the agent leaves running pods running.

mod agent;
mod delay_queue;
pub mod duration;
mod heartbeat;
pub mod ipam;
pub mod metrics;
pub mod node;
pub mod timeline;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use skiff_api::resources;
use skiff_client::{Client, ClientError};

pub use node::{NodeSoftware, SimulatedNode, SIMULATED_NODE_LABEL};
pub use timeline::PodTimelineConfig;

/// The most simulated nodes one agent runs: their pod ranges (`10.244.(i-1).0/24`) stay
/// inside `10.244.0.0/14`.
pub const MAX_SIMULATED_NODES: u32 = 1000;

/// What each simulated node offers the scheduler: capacity and allocatable alike.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeCapacity {
    /// CPU quantity, e.g. `"4"`.
    pub cpu: String,
    /// Memory quantity, e.g. `"8Gi"`.
    pub memory: String,
    /// How many pods fit.
    pub pods: u32,
    /// Ephemeral storage quantity.
    pub ephemeral_storage: String,
}

impl Default for NodeCapacity {
    /// A small real node: 4 CPUs, 8 GiB, kubelet's default of 110 pods.
    fn default() -> Self {
        NodeCapacity {
            cpu: "4".to_string(),
            memory: "8Gi".to_string(),
            pods: 110,
            ephemeral_storage: "100Gi".to_string(),
        }
    }
}

/// How many simulated nodes to run and how they behave.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimulatedNodesConfig {
    /// How many nodes, named `{name_prefix}1` to `{name_prefix}{count}`.
    pub count: u32,
    /// The start of every node's name.
    pub name_prefix: String,
    /// Resources each node reports.
    pub capacity: NodeCapacity,
    /// Versions and architecture each node reports.
    pub software: NodeSoftware,
    /// How often Leases are renewed (kubelet: 10 s); the Lease lasts four of these.
    pub heartbeat_interval: Duration,
    /// How often node status is written again when nothing changed, refreshing the
    /// conditions' `lastHeartbeatTime` (kubelet's `nodeStatusReportFrequency`: 5 min).
    pub status_report_interval: Duration,
    /// How pods start and stop.
    pub pod_timeline: PodTimelineConfig,
    /// How many pod writes may be in flight at once.
    pub max_concurrent_writes: usize,
}

impl Default for SimulatedNodesConfig {
    fn default() -> Self {
        SimulatedNodesConfig {
            count: 1,
            name_prefix: "sim-node-".to_string(),
            capacity: NodeCapacity::default(),
            software: NodeSoftware::default(),
            heartbeat_interval: Duration::from_secs(10),
            status_report_interval: Duration::from_secs(300),
            pod_timeline: PodTimelineConfig::default(),
            max_concurrent_writes: 16,
        }
    }
}

impl SimulatedNodesConfig {
    /// The defaults with `count` nodes.
    pub fn with_count(count: u32) -> SimulatedNodesConfig {
        SimulatedNodesConfig {
            count,
            ..SimulatedNodesConfig::default()
        }
    }

    /// The nodes this configuration describes.
    pub fn nodes(&self) -> Vec<SimulatedNode> {
        (1..=self.count)
            .map(|i| SimulatedNode::new(&self.name_prefix, i))
            .collect()
    }

    /// Refuses configurations that cannot work, before anything is written.
    pub fn validate(&self) -> Result<(), SimulatedNodesError> {
        let invalid = |message: String| Err(SimulatedNodesError::InvalidConfig(message));
        if self.count > MAX_SIMULATED_NODES {
            return invalid(format!(
                "count {} exceeds the maximum of {MAX_SIMULATED_NODES}",
                self.count
            ));
        }
        let longest = format!("{}{}", self.name_prefix, self.count.max(1));
        let valid_name = longest.len() <= 253
            && longest
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
            && longest
                .bytes()
                .next()
                .is_some_and(|b| b.is_ascii_alphanumeric());
        if !valid_name {
            return invalid(format!(
                "name prefix {:?} does not make valid node names (lowercase letters, digits, '-' and '.', starting with a letter or digit)",
                self.name_prefix
            ));
        }
        if self.heartbeat_interval.is_zero() || self.status_report_interval.is_zero() {
            return invalid("heartbeat and status report intervals must be positive".to_string());
        }
        if self.max_concurrent_writes == 0 {
            return invalid("max_concurrent_writes must be at least 1".to_string());
        }
        if self.pod_timeline.start_delay_min > self.pod_timeline.start_delay_max {
            return invalid("start_delay_min must not exceed start_delay_max".to_string());
        }
        Ok(())
    }
}

/// Why simulated nodes could not run.
#[derive(Debug, thiserror::Error)]
pub enum SimulatedNodesError {
    /// The configuration cannot work.
    #[error("invalid simulated nodes configuration: {0}")]
    InvalidConfig(String),
    /// Registering a node failed.
    #[error("registering simulated node {node}: {source}")]
    Register {
        /// The node.
        node: String,
        /// What the API answered.
        #[source]
        source: Box<ClientError>,
    },
    /// The API does not serve what nodes need (pods, nodes or leases).
    #[error("the API does not serve what simulated nodes need: {0}")]
    Unserved(#[source] Box<ClientError>),
}

/// A set of simulated nodes over one client.
pub struct SimulatedNodes {
    client: Arc<dyn Client>,
    config: SimulatedNodesConfig,
}

impl SimulatedNodes {
    /// Checks the configuration; nothing is written until [`SimulatedNodes::run`].
    pub fn new(
        client: Arc<dyn Client>,
        config: SimulatedNodesConfig,
    ) -> Result<SimulatedNodes, SimulatedNodesError> {
        config.validate()?;
        Ok(SimulatedNodes { client, config })
    }

    /// The nodes that will run.
    pub fn nodes(&self) -> Vec<SimulatedNode> {
        self.config.nodes()
    }

    /// Registers the nodes and their Leases, then keeps them alive and drives their pods until
    /// `shutdown` completes. Fails only if a node cannot be registered; later API errors are
    /// logged and retried.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), SimulatedNodesError> {
        let nodes = self.config.nodes();
        let mut heartbeat = heartbeat::Heartbeat::new(
            self.client.clone(),
            nodes.clone(),
            self.config.capacity.clone(),
            self.config.software.clone(),
            self.config.heartbeat_interval,
            self.config.status_report_interval,
        )
        .map_err(|e| SimulatedNodesError::Unserved(Box::new(e)))?;
        heartbeat
            .register_all()
            .await
            .map_err(|(node, source)| SimulatedNodesError::Register {
                node,
                source: Box::new(source),
            })?;
        let pods = resources::find("", "v1", "pods").ok_or_else(|| {
            SimulatedNodesError::Unserved(Box::new(ClientError::UnknownResource(
                "v1/pods".to_string(),
            )))
        })?;
        let agent = agent::PodAgent::new(
            self.client.clone(),
            pods,
            &nodes,
            self.config.pod_timeline.clone(),
            self.config.max_concurrent_writes,
        );
        tracing::info!(count = nodes.len(), "simulated nodes registered");
        tokio::select! {
            _ = heartbeat.run() => {}
            _ = agent.run(shutdown) => {}
        }
        Ok(())
    }
}

/// Runs `config.count` simulated nodes until `shutdown` completes: see [`SimulatedNodes::run`].
pub async fn run(
    client: Arc<dyn Client>,
    config: SimulatedNodesConfig,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), SimulatedNodesError> {
    SimulatedNodes::new(client, config)?.run(shutdown).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configurations_that_cannot_work_are_refused() {
        let cases: Vec<(SimulatedNodesConfig, bool)> = vec![
            (SimulatedNodesConfig::default(), true),
            (SimulatedNodesConfig::with_count(0), true),
            (SimulatedNodesConfig::with_count(MAX_SIMULATED_NODES), true),
            (
                SimulatedNodesConfig::with_count(MAX_SIMULATED_NODES + 1),
                false,
            ),
            (
                SimulatedNodesConfig {
                    name_prefix: "Sim_".into(),
                    ..SimulatedNodesConfig::default()
                },
                false,
            ),
            (
                SimulatedNodesConfig {
                    name_prefix: "-x".into(),
                    ..SimulatedNodesConfig::default()
                },
                false,
            ),
            (
                SimulatedNodesConfig {
                    name_prefix: String::new(),
                    ..SimulatedNodesConfig::default()
                },
                true,
            ),
            (
                SimulatedNodesConfig {
                    heartbeat_interval: Duration::ZERO,
                    ..SimulatedNodesConfig::default()
                },
                false,
            ),
            (
                SimulatedNodesConfig {
                    max_concurrent_writes: 0,
                    ..SimulatedNodesConfig::default()
                },
                false,
            ),
            (
                SimulatedNodesConfig {
                    pod_timeline: PodTimelineConfig {
                        start_delay_min: Duration::from_secs(2),
                        start_delay_max: Duration::from_secs(1),
                        termination_delay: Duration::ZERO,
                    },
                    ..SimulatedNodesConfig::default()
                },
                false,
            ),
        ];
        for (config, ok) in cases {
            assert_eq!(config.validate().is_ok(), ok, "{config:?}");
        }
    }

    #[test]
    fn nodes_are_numbered_from_one() {
        let names: Vec<String> = SimulatedNodesConfig::with_count(3)
            .nodes()
            .into_iter()
            .map(|n| n.name)
            .collect();
        assert_eq!(names, ["sim-node-1", "sim-node-2", "sim-node-3"]);
    }
}
