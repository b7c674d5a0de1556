//! Skiff's service proxy: what makes a Service's ClusterIP and NodePort answer.
//!
//! [`Proxy`] watches Services, EndpointSlices and pods through a [`skiff_client::Client`]. For
//! every Service with a cluster IP it listens on `clusterIP:port` (the cluster IP range is on
//! loopback, so this needs no privilege) and, for NodePort Services, on each node address at
//! the node port; it forwards each accepted TCP connection to an endpoint in rotation, round
//! robin or sticky per client IP.
//!
//! Nothing is lost while pods come and go:
//! - a pod leaves rotation the moment the proxy sees its deletion timestamp, and
//!   [`Proxy::wait_unrouted`] tells a node agent when it may send SIGTERM;
//! - connections already forwarded are never cut;
//! - a connection refused by an endpoint is retried on another one, and while every endpoint
//!   refuses, the proxy waits briefly for the endpoints to change before giving up.
//!
//! With [`ProxyConfig::kernel`] set, the frontends the kernel can forward are not listened on:
//! [`kernel`] turns them into nftables DNAT rules (one connection from client to endpoint, the
//! client's address kept where Kubernetes keeps it), and a drain also waits for the connections
//! the kernel forwarded to the pod to end.
//!
//! [`table`] holds the routing rules, pure and table-tested; [`kernel::RulePlan`] the nftables
//! rules, pure as well.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod forward;
pub mod kernel;
mod proxy;
pub mod table;

pub use kernel::KernelForwarding;
pub use proxy::{ClusterIpHost, Proxy, ProxyConfig, ProxyError, ProxyState};
pub use table::{FrontendKind, PodState, Route, RoutingTable};
