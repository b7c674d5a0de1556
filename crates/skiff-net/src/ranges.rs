//! The cluster's address ranges: `--cluster-cidr`, `--service-cidr` and the size of each node's
//! share, parsed and checked before anything is routed.
//!
//! Defaults are k3s's: pods in `10.42.0.0/16` with a /24 per node, Services in `10.43.0.0/16`.
//! Like Kubernetes' flags, a range written with host bits set (`10.42.0.1/16`) means its network
//! (`10.42.0.0/16`). Only IPv4 is built so far: a dual-stack or IPv6 range is refused with a
//! message saying so, rather than half-honoured.

use std::net::IpAddr;

use ipnet::{IpNet, Ipv4Net};

/// k3s's default pod range (`--cluster-cidr`).
pub const DEFAULT_CLUSTER_CIDR: &str = "10.42.0.0/16";
/// k3s's default Service range (`--service-cidr`).
pub const DEFAULT_SERVICE_CIDR: &str = "10.43.0.0/16";
/// kube-controller-manager's default `--node-cidr-mask-size-ipv4`: a /24 per node.
pub const DEFAULT_NODE_CIDR_MASK_SIZE: u8 = 24;

/// The widest IPv4 Service range kube-apiserver accepts (a /12: about a million addresses).
pub const MIN_SERVICE_PREFIX_LEN: u8 = 12;
/// The narrowest node share that still holds a network address, a gateway, one pod and a
/// broadcast address.
pub const MAX_NODE_PREFIX_LEN: u8 = 30;
/// kube-controller-manager refuses to cut a cluster range into more than 2^16 node ranges.
pub const MAX_NODE_MASK_DIFFERENCE: u8 = 16;

/// Why a range given on the command line cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RangeError {
    /// The text is not `ADDRESS/PREFIX`.
    #[error("invalid CIDR address: {0}")]
    Unparsable(String),
    /// An empty flag value.
    #[error("{flag} must not be empty")]
    Empty {
        /// The flag's name.
        flag: &'static str,
    },
    /// More than two ranges, or two of the same family.
    #[error("{flag} accepts one range, or one IPv4 and one IPv6 range separated by a comma, got {value:?}")]
    BadDualStack {
        /// The flag's name.
        flag: &'static str,
        /// The value given.
        value: String,
    },
    /// An IPv6 range, which Skiff's pod network does not route yet.
    #[error("{flag}: IPv6 ranges are not supported yet, got {range}")]
    Ipv6NotSupported {
        /// The flag's name.
        flag: &'static str,
        /// The IPv6 range given.
        range: String,
    },
    /// The Service range is wider than kube-apiserver allows.
    #[error("specified --service-cidr {range} is too large; for 32-bit addresses, the mask must be >= {MIN_SERVICE_PREFIX_LEN}")]
    ServiceRangeTooLarge {
        /// The range given.
        range: Ipv4Net,
    },
    /// The node mask is wider than the cluster range itself.
    #[error("the node CIDR mask size /{node_prefix} is larger than the cluster CIDR {cluster}")]
    NodeMaskTooBig {
        /// The cluster range.
        cluster: Ipv4Net,
        /// The node mask size.
        node_prefix: u8,
    },
    /// The node mask leaves no address for a pod.
    #[error("the node CIDR mask size /{node_prefix} leaves no address for pods; it must be at most /{MAX_NODE_PREFIX_LEN}")]
    NodeMaskTooSmall {
        /// The node mask size.
        node_prefix: u8,
    },
    /// Too many node ranges in the cluster range.
    #[error("the difference between the cluster CIDR mask /{cluster_prefix} and the node CIDR mask /{node_prefix} must be at most {MAX_NODE_MASK_DIFFERENCE}")]
    NodeMaskDifferenceTooBig {
        /// The cluster range's prefix length.
        cluster_prefix: u8,
        /// The node mask size.
        node_prefix: u8,
    },
    /// Pods and Services would share addresses.
    #[error("--cluster-cidr {cluster} and --service-cidr {service} overlap")]
    Overlap {
        /// The pod range.
        cluster: Ipv4Net,
        /// The Service range.
        service: Ipv4Net,
    },
    /// A range in loopback, multicast or another block that cannot carry pod traffic.
    #[error("{flag} {range} is in a reserved block (loopback, link-local, multicast, broadcast or 0.0.0.0/8)")]
    Reserved {
        /// The flag's name.
        flag: &'static str,
        /// The range given.
        range: Ipv4Net,
    },
}

/// The cluster's pod and Service ranges and each node's share, checked together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClusterRanges {
    /// Every pod address in the cluster (`--cluster-cidr`).
    pub cluster_cidr: Ipv4Net,
    /// Every Service cluster IP (`--service-cidr`).
    pub service_cidr: Ipv4Net,
    /// The prefix length of each node's `podCIDR`.
    pub node_prefix_len: u8,
}

impl Default for ClusterRanges {
    fn default() -> Self {
        ClusterRanges::parse(
            DEFAULT_CLUSTER_CIDR,
            DEFAULT_SERVICE_CIDR,
            DEFAULT_NODE_CIDR_MASK_SIZE,
        )
        .expect("the k3s defaults are valid")
    }
}

impl ClusterRanges {
    /// Parses and checks the flags' values as `skiff up` receives them.
    pub fn parse(cluster: &str, service: &str, node_prefix_len: u8) -> Result<Self, RangeError> {
        let cluster_cidr = parse_ipv4_flag("--cluster-cidr", cluster)?;
        let service_cidr = parse_ipv4_flag("--service-cidr", service)?;
        Self::new(cluster_cidr, service_cidr, node_prefix_len)
    }

    /// Checks ranges already parsed (their host bits are cleared).
    pub fn new(
        cluster_cidr: Ipv4Net,
        service_cidr: Ipv4Net,
        node_prefix_len: u8,
    ) -> Result<Self, RangeError> {
        let cluster_cidr = cluster_cidr.trunc();
        let service_cidr = service_cidr.trunc();
        check_usable("--cluster-cidr", cluster_cidr)?;
        check_usable("--service-cidr", service_cidr)?;
        if service_cidr.prefix_len() < MIN_SERVICE_PREFIX_LEN {
            return Err(RangeError::ServiceRangeTooLarge {
                range: service_cidr,
            });
        }
        if node_prefix_len < cluster_cidr.prefix_len() {
            return Err(RangeError::NodeMaskTooBig {
                cluster: cluster_cidr,
                node_prefix: node_prefix_len,
            });
        }
        if node_prefix_len > MAX_NODE_PREFIX_LEN {
            return Err(RangeError::NodeMaskTooSmall {
                node_prefix: node_prefix_len,
            });
        }
        if node_prefix_len - cluster_cidr.prefix_len() > MAX_NODE_MASK_DIFFERENCE {
            return Err(RangeError::NodeMaskDifferenceTooBig {
                cluster_prefix: cluster_cidr.prefix_len(),
                node_prefix: node_prefix_len,
            });
        }
        if cluster_cidr.contains(&service_cidr) || service_cidr.contains(&cluster_cidr) {
            return Err(RangeError::Overlap {
                cluster: cluster_cidr,
                service: service_cidr,
            });
        }
        Ok(ClusterRanges {
            cluster_cidr,
            service_cidr,
            node_prefix_len,
        })
    }
}

/// Parses one flag's value: one range, or a dual-stack pair (refused until IPv6 is routed).
fn parse_ipv4_flag(flag: &'static str, value: &str) -> Result<Ipv4Net, RangeError> {
    let value = value.trim();
    if value.is_empty() {
        return Err(RangeError::Empty { flag });
    }
    let parts: Vec<&str> = value.split(',').map(str::trim).collect();
    if parts.len() > 2 {
        return Err(RangeError::BadDualStack {
            flag,
            value: value.to_string(),
        });
    }
    let nets = parts
        .iter()
        .map(|part| parse_cidr(part))
        .collect::<Result<Vec<_>, _>>()?;
    if let [first, second] = nets.as_slice() {
        if first.addr().is_ipv4() == second.addr().is_ipv4() {
            return Err(RangeError::BadDualStack {
                flag,
                value: value.to_string(),
            });
        }
    }
    if let Some(v6) = nets.iter().find(|net| matches!(net, IpNet::V6(_))) {
        return Err(RangeError::Ipv6NotSupported {
            flag,
            range: v6.trunc().to_string(),
        });
    }
    match nets[0] {
        IpNet::V4(net) => Ok(net.trunc()),
        IpNet::V6(_) => unreachable!("IPv6 ranges were refused above"),
    }
}

/// Parses `ADDRESS/PREFIX` strictly: a bare address is not a range.
fn parse_cidr(text: &str) -> Result<IpNet, RangeError> {
    let (address, prefix) = text
        .split_once('/')
        .ok_or_else(|| RangeError::Unparsable(text.to_string()))?;
    let address: IpAddr = address
        .parse()
        .map_err(|_| RangeError::Unparsable(text.to_string()))?;
    let prefix: u8 = prefix
        .parse()
        .map_err(|_| RangeError::Unparsable(text.to_string()))?;
    IpNet::new(address, prefix).map_err(|_| RangeError::Unparsable(text.to_string()))
}

/// Refuses ranges no pod or Service address may come from.
fn check_usable(flag: &'static str, range: Ipv4Net) -> Result<(), RangeError> {
    let network = range.network();
    let reserved = ["0.0.0.0/8", "127.0.0.0/8", "169.254.0.0/16", "224.0.0.0/3"]
        .iter()
        .map(|block| block.parse::<Ipv4Net>().expect("a valid literal"))
        .any(|block| block.contains(&network) || range.contains(&block.network()));
    if reserved {
        return Err(RangeError::Reserved { flag, range });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(text: &str) -> Ipv4Net {
        text.parse().unwrap()
    }

    #[test]
    fn defaults_are_k3s_ranges() {
        let ranges = ClusterRanges::default();
        assert_eq!(ranges.cluster_cidr, net("10.42.0.0/16"));
        assert_eq!(ranges.service_cidr, net("10.43.0.0/16"));
        assert_eq!(ranges.node_prefix_len, 24);
    }

    #[test]
    fn parse_table() {
        let ok = |c: &str, s: &str, m: u8, want: (&str, &str)| {
            let got = ClusterRanges::parse(c, s, m)
                .unwrap_or_else(|e| panic!("{c} {s} /{m} should parse: {e}"));
            assert_eq!(
                (got.cluster_cidr, got.service_cidr),
                (net(want.0), net(want.1)),
                "{c} {s}"
            );
        };
        ok(
            "198.18.0.0/16",
            "198.19.0.0/16",
            24,
            ("198.18.0.0/16", "198.19.0.0/16"),
        );
        // Host bits are cleared, as Kubernetes' flag parsing does.
        ok(
            "198.18.7.9/16",
            " 198.19.1.1/20 ",
            24,
            ("198.18.0.0/16", "198.19.0.0/20"),
        );
        // A /24 cluster range with a /24 node mask holds exactly one node.
        ok(
            "198.18.4.0/24",
            "198.19.0.0/24",
            24,
            ("198.18.4.0/24", "198.19.0.0/24"),
        );
        ok(
            "198.18.0.0/16",
            "198.19.0.0/16",
            30,
            ("198.18.0.0/16", "198.19.0.0/16"),
        );
    }

    #[test]
    fn rejection_table() {
        let cases: &[(&str, &str, u8, RangeError)] = &[
            (
                "10.42.0.0",
                "10.43.0.0/16",
                24,
                RangeError::Unparsable("10.42.0.0".into()),
            ),
            (
                "10.42.0.0/33",
                "10.43.0.0/16",
                24,
                RangeError::Unparsable("10.42.0.0/33".into()),
            ),
            (
                "ten/8",
                "10.43.0.0/16",
                24,
                RangeError::Unparsable("ten/8".into()),
            ),
            (
                "",
                "10.43.0.0/16",
                24,
                RangeError::Empty {
                    flag: "--cluster-cidr",
                },
            ),
            (
                "10.42.0.0/16,10.44.0.0/16",
                "10.43.0.0/16",
                24,
                RangeError::BadDualStack {
                    flag: "--cluster-cidr",
                    value: "10.42.0.0/16,10.44.0.0/16".into(),
                },
            ),
            (
                "10.42.0.0/16,fd00::/56,fd01::/56",
                "10.43.0.0/16",
                24,
                RangeError::BadDualStack {
                    flag: "--cluster-cidr",
                    value: "10.42.0.0/16,fd00::/56,fd01::/56".into(),
                },
            ),
            (
                "10.42.0.0/16,fd00::/56",
                "10.43.0.0/16",
                24,
                RangeError::Ipv6NotSupported {
                    flag: "--cluster-cidr",
                    range: "fd00::/56".into(),
                },
            ),
            (
                "10.42.0.0/16",
                "fd00::1/112",
                24,
                RangeError::Ipv6NotSupported {
                    flag: "--service-cidr",
                    range: "fd00::/112".into(),
                },
            ),
            (
                "10.42.0.0/16",
                "10.0.0.0/8",
                24,
                RangeError::ServiceRangeTooLarge {
                    range: net("10.0.0.0/8"),
                },
            ),
            (
                "10.42.0.0/16",
                "10.43.0.0/16",
                12,
                RangeError::NodeMaskTooBig {
                    cluster: net("10.42.0.0/16"),
                    node_prefix: 12,
                },
            ),
            (
                "10.42.0.0/16",
                "10.43.0.0/16",
                31,
                RangeError::NodeMaskTooSmall { node_prefix: 31 },
            ),
            (
                "10.0.0.0/8",
                "10.43.0.0/16",
                26,
                RangeError::NodeMaskDifferenceTooBig {
                    cluster_prefix: 8,
                    node_prefix: 26,
                },
            ),
            (
                "10.42.0.0/15",
                "10.43.0.0/16",
                24,
                RangeError::Overlap {
                    cluster: net("10.42.0.0/15"),
                    service: net("10.43.0.0/16"),
                },
            ),
            (
                "198.18.0.0/16",
                "198.19.0.0/12",
                24,
                RangeError::Overlap {
                    cluster: net("198.18.0.0/16"),
                    service: net("198.16.0.0/12"),
                },
            ),
            (
                "127.0.0.0/16",
                "10.43.0.0/16",
                24,
                RangeError::Reserved {
                    flag: "--cluster-cidr",
                    range: net("127.0.0.0/16"),
                },
            ),
            (
                "10.42.0.0/16",
                "224.0.0.0/16",
                24,
                RangeError::Reserved {
                    flag: "--service-cidr",
                    range: net("224.0.0.0/16"),
                },
            ),
            (
                "0.0.0.0/0",
                "10.43.0.0/16",
                24,
                RangeError::Reserved {
                    flag: "--cluster-cidr",
                    range: net("0.0.0.0/0"),
                },
            ),
        ];
        for (cluster, service, mask, want) in cases {
            let got = ClusterRanges::parse(cluster, service, *mask);
            assert_eq!(
                got.as_ref().err(),
                Some(want),
                "{cluster} {service} /{mask}: {got:?}"
            );
        }
    }

    #[test]
    fn messages_name_the_flag_and_the_limit() {
        let err = ClusterRanges::parse("10.42.0.0/16", "10.0.0.0/8", 24).unwrap_err();
        assert_eq!(
            err.to_string(),
            "specified --service-cidr 10.0.0.0/8 is too large; for 32-bit addresses, the mask must be >= 12"
        );
        let err = ClusterRanges::parse("10.42.0.0/16,fd00::/56", "10.43.0.0/16", 24).unwrap_err();
        assert_eq!(
            err.to_string(),
            "--cluster-cidr: IPv6 ranges are not supported yet, got fd00::/56"
        );
    }
}
