//! The resource-metrics contract (`metrics.k8s.io`) between measuring nodes and the server,
//! defined in the client crate both depend on and named here too.

pub use skiff_client::metrics::{
    CombinedMetrics, ContainerUsage, NodeUsage, PodUsage, ResourceMetrics,
};
