//! Pod and node resource usage (`metrics.k8s.io`).
//!
//! The contract is defined next to the API server, which serves it to `kubectl top`; it is
//! re-exported here so measuring agents and the autoscaler name it through the client crate.

pub use skiff_apiserver::metrics::{
    CombinedMetrics, ContainerUsage, NodeUsage, PodUsage, ResourceMetrics,
};
