//! The side effects of a pod network, behind one trait so the node agent's logic is tested
//! without root, and the answers every implementation gives.

use std::net::Ipv4Addr;
use std::path::PathBuf;

use async_trait::async_trait;

use crate::config::{HostConfig, InvalidPodUid};
use crate::ipam::IpamError;

/// Where a pod's network lives once set up: what an OCI runtime's `config.json` names as the
/// pod's network namespace, and what the pod's status reports as its IP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodAttachment {
    /// The bind-mounted namespace file (`/run/skiff/netns/<uid>`).
    pub netns_path: PathBuf,
    /// The pod's address on `eth0`.
    pub ip: Ipv4Addr,
    /// The prefix length of the pod's address (the node's `podCIDR`'s).
    pub prefix_len: u8,
    /// The pod's default gateway: the bridge's address.
    pub gateway: Ipv4Addr,
    /// The host end of the pod's veth pair.
    pub host_interface: String,
}

/// Why a pod network step failed.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// The pod uid cannot name a namespace file.
    #[error(transparent)]
    InvalidPodUid(#[from] InvalidPodUid),
    /// No address could be allocated or recorded.
    #[error(transparent)]
    Ipam(#[from] IpamError),
    /// A netlink request was refused.
    #[error("{step}: {source}")]
    Netlink {
        /// What was being done.
        step: String,
        /// The kernel's answer.
        source: rtnetlink::Error,
    },
    /// A system call or file operation failed.
    #[error("{step}: {source}")]
    Io {
        /// What was being done.
        step: String,
        /// What failed.
        source: std::io::Error,
    },
    /// `nft` refused a script.
    #[error("nft failed ({status}): {stderr}")]
    Nft {
        /// Its exit status.
        status: String,
        /// What it printed.
        stderr: String,
    },
    /// The kernel's state is not what the step needs (a missing interface, for one).
    #[error("{0}")]
    Unexpected(String),
}

impl NetError {
    /// Wraps an I/O error with the step that failed.
    pub fn io(step: impl Into<String>, source: std::io::Error) -> Self {
        NetError::Io {
            step: step.into(),
            source,
        }
    }
}

/// The side effects of a node's pod network. Every method is idempotent: calling it again
/// after success, or after a failure or crash half-way, converges on the same state.
#[async_trait]
pub trait PodNetwork: Send + Sync {
    /// The configuration the network was made for.
    fn config(&self) -> &HostConfig;

    /// Makes the host ready: the bridge up with the gateway address, IPv4 forwarding on, the
    /// `unreachable` guard routes, and the masquerading rules.
    async fn ensure_host(&self) -> Result<(), NetError>;

    /// Gives the pod its network namespace with `eth0` holding `ip` on the bridge, `lo` up and a
    /// default route via the gateway. Called again for a pod already set up with the same
    /// address, it returns the same attachment and changes nothing.
    async fn setup_pod(&self, pod_uid: &str, ip: Ipv4Addr) -> Result<PodAttachment, NetError>;

    /// Removes the pod's veth pair and namespace; nothing to remove is not an error.
    async fn teardown_pod(&self, pod_uid: &str) -> Result<(), NetError>;

    /// Removes the bridge, the guard routes and the NAT table (pods are torn down first).
    /// IPv4 forwarding stays on: other software on the host may rely on it.
    async fn teardown_host(&self) -> Result<(), NetError>;
}
