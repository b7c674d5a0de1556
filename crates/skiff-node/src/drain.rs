//! Holding a dying pod's SIGTERM until service proxies stop sending it new connections.
//!
//! Kubernetes removes a terminating pod from its Services' endpoints and signals its containers
//! at the same moment; proxies that have not yet heard of the removal keep routing new
//! connections to a process that is shutting down. Operators paper over that race with
//! `preStop: sleep`. The node agent instead asks a [`TrafficDrain`] (implemented by whoever
//! knows the proxies' routing tables) to wait until the pod's address is no longer routed,
//! bounded by the pod's grace period, and only then runs preStop hooks and sends SIGTERM.

use std::net::IpAddr;

use tokio::time::Instant;

/// Lets the node agent hold a dying pod's SIGTERM until service proxies stop sending it new
/// connections, closing the race Kubernetes leaves to `preStop: sleep`.
#[async_trait::async_trait]
pub trait TrafficDrain: Send + Sync {
    /// Resolves once no proxy routes new connections to `pod_ip`, or at `deadline`.
    async fn wait_unrouted(&self, pod_ip: IpAddr, deadline: Instant);
}
