//! Skiff's pod network: one network namespace per pod, joined to a bridge, with an address from
//! the node's `podCIDR`.
//!
//! # How the node agent uses it
//!
//! 1. At start, parse the ranges with [`ClusterRanges::parse`] (`--cluster-cidr`,
//!    `--service-cidr`; k3s's defaults otherwise). If the Node has no `spec.podCIDR` yet, pick
//!    one with [`next_free_pod_cidr`] from the values other Nodes hold and write it to the Node.
//! 2. Build a [`HostConfig`] (bridge `skiff0`, pins under `/run/skiff/netns`) and start a
//!    [`PodNetworkManager`] over a [`NetlinkPodNetwork`] with an address file in the data
//!    directory. Starting installs the `unreachable` guard routes for both ranges before anything
//!    else, the bridge with the gateway address, IPv4 forwarding and masquerading, then starts
//!    keeping [`HostConfig::spare_namespaces`] namespaces made ahead of pods.
//! 3. Before a pod's first container: [`PodNetworkManager::attach`] returns the
//!    [`PodAttachment`]: its namespace file (for the runtime's `config.json`) and its IP (for
//!    `status.podIP`). After a restart the same call returns what the pod already had.
//! 4. When the pod is gone: [`PodNetworkManager::detach`]. At start, detach the pods listed by
//!    [`PodNetworkManager::attached_pods`] that the node no longer runs.
//! 5. While it runs, keep other nodes' pod ranges routed (host-gw): on every Node change, plan
//!    with [`plan_peer_routes`], diff with [`route_changes`] and apply through a
//!    [`PeerRouteTable`] ([`NetlinkPeerRoutes`]); delete those routes when it stops.
//! 6. When `skiff up` stops: detach every pod, then [`PodNetworkManager::shutdown`].
//!
//! Tests of the agent use [`RecordingPodNetwork`] instead of the netlink implementation.
//!
//! # What it needs
//!
//! Root (`CAP_NET_ADMIN` and `CAP_SYS_ADMIN` for the bind mounts) and the `nft` command (Debian
//! package `nftables`) for masquerading. Pod namespaces are made without forking: a short-lived
//! thread unshares its network namespace and bind-mounts it, so the multi-threaded process never
//! forks. No step changes the namespace of a thread that outlives it.
//!
//! A pin is a mount: a mount namespace copied while it exists (a container's, before its
//! runtime pivots to the rootfs and detaches the old root) holds that namespace alive until the
//! copy goes, so runtimes should drop the host's mounts from containers, as runc and crun do.
//!
//! Measured on a 2-core machine, debug build, in the root tests' setting: `ensure_host` about
//! 25 ms; `attach` 18 ms at the median and 45 ms at p99 over 100 pods (1 ms for a pod already
//! attached); `detach` 40 ms and 90 ms, most of it the kernel deleting the veth.

pub mod config;
pub mod fake;
pub mod ipam;
mod linux;
pub mod manager;
pub mod network;
pub mod peer_routes;
pub mod plan;
pub mod pod_cidr;
pub mod ranges;
pub mod service_interface;
mod spare;

pub use config::{HostConfig, DEFAULT_BRIDGE, DEFAULT_NETNS_DIR, POD_INTERFACE};
pub use fake::{NetworkCall, RecordingPodNetwork};
pub use ipam::{IpamError, PodAddressFile, PodAddresses, PodRange};
pub use linux::{run_in_netns, NetlinkPodNetwork};
pub use manager::PodNetworkManager;
pub use network::{NetError, PodAttachment, PodNetwork};
pub use peer_routes::{
    plan_peer_routes, route_changes, NetlinkPeerRoutes, PeerNode, PeerRoute, PeerRoutePlan,
    PeerRouteTable, RecordingPeerRoutes, RouteChange, Unroutable, UnroutablePeer,
};
pub use plan::{host_routes, HostRoute};
pub use pod_cidr::{
    next_free_pod_cidr, node_pod_cidr, parse_taken_pod_cidrs, NoFreePodCidr, NodePodCidrError,
};
pub use ranges::{ClusterRanges, RangeError};
pub use service_interface::{service_interface_name, ServiceInterface};
pub use spare::DEFAULT_SPARE_NAMESPACES;
