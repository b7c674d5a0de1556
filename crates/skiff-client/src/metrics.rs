//! The resource-metrics contract (`metrics.k8s.io`) between whoever measures pods and nodes
//! (the node agent, simulated nodes) and whoever reads the figures (the API server, the
//! HorizontalPodAutoscaler controller), so neither side knows how the other works.
//!
//! It lives in the client crate, which both sides depend on.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;

/// One container's usage over a sampling window, as metrics-server reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerUsage {
    /// The container's name in the pod spec.
    pub name: String,
    /// Mean CPU use over the window, in nanocores (1 core = 1e9).
    pub cpu_nanocores: u64,
    /// Working-set memory at the end of the window, in bytes.
    pub memory_bytes: u64,
}

/// One pod's usage: what `PodMetrics` carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodUsage {
    /// The pod's namespace.
    pub namespace: String,
    /// The pod's name.
    pub name: String,
    /// When the window ended.
    pub timestamp: SystemTime,
    /// How long the window was.
    pub window: Duration,
    /// One entry per running container.
    pub containers: Vec<ContainerUsage>,
}

/// One node's usage: what `NodeMetrics` carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeUsage {
    /// The node's name.
    pub name: String,
    /// When the window ended.
    pub timestamp: SystemTime,
    /// How long the window was.
    pub window: Duration,
    /// Mean CPU use over the window, in nanocores.
    pub cpu_nanocores: u64,
    /// Working-set memory at the end of the window, in bytes.
    pub memory_bytes: u64,
}

/// A source of pod and node usage; implemented by the node agent and the simulated nodes.
#[async_trait]
pub trait ResourceMetrics: Send + Sync {
    /// Every pod this source has a complete window for. Pods without one are left out, as
    /// metrics-server leaves them out.
    async fn pods(&self) -> Vec<PodUsage>;
    /// Every node this source measures.
    async fn nodes(&self) -> Vec<NodeUsage>;
}

/// Several sources read as one (a real node beside simulated ones).
pub struct CombinedMetrics(pub Vec<Arc<dyn ResourceMetrics>>);

#[async_trait]
impl ResourceMetrics for CombinedMetrics {
    async fn pods(&self) -> Vec<PodUsage> {
        let mut out = Vec::new();
        for source in &self.0 {
            out.extend(source.pods().await);
        }
        out
    }

    async fn nodes(&self) -> Vec<NodeUsage> {
        let mut out = Vec::new();
        for source in &self.0 {
            out.extend(source.nodes().await);
        }
        out
    }
}
