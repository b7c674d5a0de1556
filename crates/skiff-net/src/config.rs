//! What a node's pod network is made of: the bridge's name, the ranges, the node's pod range and
//! where pod namespaces are pinned; and the names derived from them.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use crate::ipam::PodRange;
use crate::ranges::ClusterRanges;

/// The bridge Skiff uses unless told otherwise.
pub const DEFAULT_BRIDGE: &str = "skiff0";
/// Where pod namespaces are pinned unless told otherwise.
pub const DEFAULT_NETNS_DIR: &str = "/run/skiff/netns";
/// The pod's side of its veth pair, as every CNI plugin names it.
pub const POD_INTERFACE: &str = "eth0";
/// Linux's limit on an interface name's length (IFNAMSIZ less the terminating zero).
pub const MAX_INTERFACE_NAME_LEN: usize = 15;
/// The longest pod uid accepted (Kubernetes' are 36-character UUIDs).
pub const MAX_POD_UID_LEN: usize = 128;

/// A configuration that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The bridge name is not a usable interface name.
    #[error("bridge name {0:?} must be 1 to 15 letters, digits, '_' or '-'")]
    BadBridgeName(String),
    /// The node's range is not inside the cluster range.
    #[error("pod range {pod_cidr} is not inside the cluster range {cluster_cidr}")]
    PodRangeOutsideCluster {
        /// The node's range.
        pod_cidr: ipnet::Ipv4Net,
        /// The cluster range.
        cluster_cidr: ipnet::Ipv4Net,
    },
    /// The pod namespace directory is not absolute.
    #[error("the network namespace directory {0} must be an absolute path")]
    RelativeNetnsDir(PathBuf),
}

/// One node's pod network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostConfig {
    /// The bridge every pod's veth joins (`skiff0`); unique per Skiff on a machine.
    pub bridge: String,
    /// The cluster's pod and Service ranges.
    pub ranges: ClusterRanges,
    /// This node's `podCIDR`.
    pub pod_range: PodRange,
    /// The directory holding one bind-mounted namespace file per pod.
    pub netns_dir: PathBuf,
    /// The `nft` program (found on `PATH` when it is a bare name).
    pub nft_program: PathBuf,
    /// The MTU of the bridge and every veth; `None` keeps the kernel's 1500. Set it to the
    /// uplink's MTU when that is smaller, so pod traffic leaving the node is not fragmented.
    pub mtu: Option<u32>,
    /// How many network namespaces are kept made ahead of pods (0: each pod's is made at its
    /// setup).
    pub spare_namespaces: usize,
}

impl HostConfig {
    /// A checked configuration using `nft` from `PATH`.
    pub fn new(
        bridge: &str,
        ranges: ClusterRanges,
        pod_range: PodRange,
        netns_dir: impl Into<PathBuf>,
    ) -> Result<Self, ConfigError> {
        let valid_name = !bridge.is_empty()
            && bridge.len() <= MAX_INTERFACE_NAME_LEN
            && bridge
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if !valid_name {
            return Err(ConfigError::BadBridgeName(bridge.to_string()));
        }
        if !ranges.cluster_cidr.contains(&pod_range.pod_cidr) {
            return Err(ConfigError::PodRangeOutsideCluster {
                pod_cidr: pod_range.pod_cidr,
                cluster_cidr: ranges.cluster_cidr,
            });
        }
        let netns_dir = netns_dir.into();
        if !netns_dir.is_absolute() {
            return Err(ConfigError::RelativeNetnsDir(netns_dir));
        }
        Ok(HostConfig {
            bridge: bridge.to_string(),
            ranges,
            pod_range,
            netns_dir,
            nft_program: PathBuf::from("nft"),
            mtu: None,
            spare_namespaces: crate::spare::DEFAULT_SPARE_NAMESPACES,
        })
    }

    /// The bridge's address and the pods' default gateway.
    pub fn gateway(&self) -> Ipv4Addr {
        self.pod_range.gateway()
    }

    /// The nftables table holding Skiff's rules for this bridge.
    pub fn nat_table(&self) -> String {
        format!("skiff_{}", self.bridge.replace('-', "_"))
    }

    /// The host end of a pod's veth pair: `veth` and 11 hex digits of a hash of the bridge and
    /// the pod's uid, so two Skiffs with different bridges never pick the same name.
    pub fn host_interface(&self, pod_uid: &str) -> String {
        format!(
            "veth{:011x}",
            name_hash(&self.bridge, pod_uid) & 0xfff_ffff_ffff
        )
    }

    /// The bridge's MAC address: fixed, derived from its name and locally administered. A
    /// bridge left to choose its own takes the lowest of its ports' addresses, so a new pod's
    /// veth could change it, and every pod would then send to the old gateway address until its
    /// ARP entry expired: tens of seconds without Services or DNS.
    pub fn bridge_mac(&self) -> [u8; 6] {
        let hash = name_hash(&self.bridge, "").to_be_bytes();
        // Locally administered (bit 1 set), unicast (bit 0 clear).
        [
            (hash[0] | 0x02) & 0xfe,
            hash[1],
            hash[2],
            hash[3],
            hash[4],
            hash[5],
        ]
    }

    /// The file pinning a pod's network namespace.
    pub fn netns_path(&self, pod_uid: &str) -> Result<PathBuf, InvalidPodUid> {
        check_pod_uid(pod_uid)?;
        Ok(self.netns_dir.join(pod_uid))
    }

    /// The directory holding the pins.
    pub fn netns_dir(&self) -> &Path {
        &self.netns_dir
    }

    /// The directory holding the spare namespaces made ahead of pods: inside the pins'
    /// directory, named after the bridge so two Skiffs never share one, and with a dot that
    /// no pod uid has.
    pub fn spare_netns_dir(&self) -> PathBuf {
        self.netns_dir.join(format!(".spare-{}", self.bridge))
    }
}

/// A pod uid that cannot name a file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("pod uid {0:?} must be 1 to 128 letters, digits, '-' or '_'")]
pub struct InvalidPodUid(pub String);

/// Accepts uids that are safe as file names (Kubernetes' are UUIDs).
pub fn check_pod_uid(pod_uid: &str) -> Result<(), InvalidPodUid> {
    let valid = !pod_uid.is_empty()
        && pod_uid.len() <= MAX_POD_UID_LEN
        && pod_uid
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if valid {
        Ok(())
    } else {
        Err(InvalidPodUid(pod_uid.to_string()))
    }
}

/// FNV-1a over the bridge name, a separator and the uid: stable across releases, unlike std's
/// hasher, so names survive an upgrade.
fn name_hash(bridge: &str, pod_uid: &str) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in bridge.bytes().chain([0]).chain(pod_uid.bytes()) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bridge_mac_is_fixed_by_name_locally_administered_and_unicast() {
        let mac = config("skiff0").unwrap().bridge_mac();
        assert_eq!(mac, config("skiff0").unwrap().bridge_mac());
        assert_ne!(mac, config("skiff1").unwrap().bridge_mac());
        assert_eq!(mac[0] & 0x02, 0x02, "locally administered: {mac:02x?}");
        assert_eq!(mac[0] & 0x01, 0, "unicast: {mac:02x?}");
    }

    fn config(bridge: &str) -> Result<HostConfig, ConfigError> {
        HostConfig::new(
            bridge,
            ClusterRanges::parse("198.18.0.0/16", "198.19.0.0/16", 24).unwrap(),
            PodRange::new("198.18.2.0/24".parse().unwrap()).unwrap(),
            "/run/skiff/netns",
        )
    }

    #[test]
    fn bridge_names_table() {
        for ok in ["skiff0", "sk-test_1", "a", "fifteen-chars-x"] {
            assert!(config(ok).is_ok(), "{ok}");
        }
        for bad in ["", "sixteen-chars-xx", "sk 0", "sk/0", "sk.0", "ëth"] {
            assert_eq!(
                config(bad).unwrap_err(),
                ConfigError::BadBridgeName(bad.into()),
                "{bad}"
            );
        }
    }

    #[test]
    fn the_pod_range_must_be_in_the_cluster_range_and_the_pin_dir_absolute() {
        let ranges = ClusterRanges::parse("198.18.0.0/16", "198.19.0.0/16", 24).unwrap();
        let outside = PodRange::new("198.20.0.0/24".parse().unwrap()).unwrap();
        assert!(matches!(
            HostConfig::new("skiff0", ranges, outside, "/run/x"),
            Err(ConfigError::PodRangeOutsideCluster { .. })
        ));
        let inside = PodRange::new("198.18.0.0/24".parse().unwrap()).unwrap();
        assert!(matches!(
            HostConfig::new("skiff0", ranges, inside, "run/x"),
            Err(ConfigError::RelativeNetnsDir(_))
        ));
    }

    #[test]
    fn derived_names_fit_and_differ() {
        let a = config("skiff0").unwrap();
        let b = config("skiff1").unwrap();
        let uid = "6f1c1f7e-8a53-4c1e-9a55-0c2f1b1d8e10";
        assert_eq!(a.host_interface(uid).len(), MAX_INTERFACE_NAME_LEN);
        assert_eq!(a.host_interface(uid), a.host_interface(uid));
        assert_ne!(a.host_interface(uid), b.host_interface(uid));
        assert_ne!(a.host_interface(uid), a.host_interface("another"));
        assert_eq!(a.nat_table(), "skiff_skiff0");
        assert_eq!(config("sk-0").unwrap().nat_table(), "skiff_sk_0");
        assert_eq!(
            a.netns_path(uid).unwrap(),
            PathBuf::from("/run/skiff/netns").join(uid)
        );
        for bad in ["", "..", "a/b", "a b", &"x".repeat(129)] {
            assert!(a.netns_path(bad).is_err(), "{bad}");
        }
    }
}
