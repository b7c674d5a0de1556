//! A node's `podCIDR`: the next free share of the cluster range, as kube-controller-manager's
//! range allocator hands them out.
//!
//! The allocator cuts `--cluster-cidr` into ranges of the node mask size and gives a node the
//! first one that no Node's `spec.podCIDR` already covers. A taken range of another size marks
//! every share it overlaps; one outside the cluster range is ignored, as the allocator does. A
//! node that already has a `podCIDR` keeps it: call this only for a node without one.

use ipnet::Ipv4Net;

use crate::ranges::ClusterRanges;

/// The cluster range has no free share left.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("CIDR allocation failed; there are no remaining CIDRs left to allocate in the accepted range {cluster}")]
pub struct NoFreePodCidr {
    /// The exhausted cluster range.
    pub cluster: Ipv4Net,
}

/// The first share of the cluster range that none of `taken` overlaps.
pub fn next_free_pod_cidr<'a>(
    ranges: &ClusterRanges,
    taken: impl IntoIterator<Item = &'a Ipv4Net>,
) -> Result<Ipv4Net, NoFreePodCidr> {
    let cluster = ranges.cluster_cidr;
    let taken: Vec<Ipv4Net> = taken
        .into_iter()
        .map(Ipv4Net::trunc)
        .filter(|net| overlaps(net, &cluster))
        .collect();
    // `ClusterRanges` keeps the node mask within 16 bits of the cluster's, so there are at
    // most 65536 shares to walk.
    cluster
        .subnets(ranges.node_prefix_len)
        .expect("ClusterRanges checked the node mask against the cluster range")
        .find(|share| !taken.iter().any(|net| overlaps(net, share)))
        .ok_or(NoFreePodCidr { cluster })
}

/// Why a node cannot use the cluster range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NodePodCidrError {
    /// Every share is taken.
    #[error(transparent)]
    Exhausted(#[from] NoFreePodCidr),
    /// The Node already holds a range outside the cluster range; `spec.podCIDR` cannot change
    /// once set, so the node cannot join this pod network.
    #[error("node's podCIDR {held} is not inside the cluster range {cluster}; a podCIDR cannot change once set, so delete the Node or use its cluster range")]
    HeldOutsideCluster {
        /// What the Node holds.
        held: String,
        /// The cluster range.
        cluster: Ipv4Net,
    },
}

/// The `podCIDR` a node runs with: the one its Node already holds (a restart keeps it), else the
/// first free share given the ranges other Nodes hold (`others`, their raw `spec.podCIDR`
/// values), as kube-controller-manager's range allocator decides for a new node.
pub fn node_pod_cidr<'a>(
    ranges: &ClusterRanges,
    held: Option<&str>,
    others: impl IntoIterator<Item = &'a str>,
) -> Result<Ipv4Net, NodePodCidrError> {
    let cluster = ranges.cluster_cidr;
    if let Some(held) = held.map(str::trim).filter(|h| !h.is_empty()) {
        return match held.parse::<Ipv4Net>() {
            Ok(net) if cluster.contains(&net) && net.prefix_len() >= cluster.prefix_len() => {
                Ok(net.trunc())
            }
            _ => Err(NodePodCidrError::HeldOutsideCluster {
                held: held.to_string(),
                cluster,
            }),
        };
    }
    let taken = parse_taken_pod_cidrs(others);
    Ok(next_free_pod_cidr(ranges, &taken)?)
}

/// Parses Nodes' `spec.podCIDR` values, skipping ones that are not IPv4 ranges (the allocator
/// logs and skips them too).
pub fn parse_taken_pod_cidrs<'a>(values: impl IntoIterator<Item = &'a str>) -> Vec<Ipv4Net> {
    values
        .into_iter()
        .filter_map(|value| value.trim().parse::<Ipv4Net>().ok())
        .map(|net| net.trunc())
        .collect()
}

fn overlaps(a: &Ipv4Net, b: &Ipv4Net) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(text: &str) -> Ipv4Net {
        text.parse().unwrap()
    }

    fn ranges(cluster: &str, mask: u8) -> ClusterRanges {
        ClusterRanges::parse(cluster, "198.19.0.0/16", mask).unwrap()
    }

    #[test]
    fn allocation_table() {
        /// Cluster range, node mask, taken ranges, and the share expected (`None`: full).
        type Case<'a> = (&'a str, u8, &'a [&'a str], Option<&'a str>);
        let cases: &[Case] = &[
            ("10.42.0.0/16", 24, &[], Some("10.42.0.0/24")),
            ("10.42.0.0/16", 24, &["10.42.0.0/24"], Some("10.42.1.0/24")),
            // A hole left by a deleted node is filled first.
            (
                "10.42.0.0/16",
                24,
                &["10.42.0.0/24", "10.42.2.0/24"],
                Some("10.42.1.0/24"),
            ),
            // A wider taken range covers several shares.
            ("10.42.0.0/16", 24, &["10.42.0.0/23"], Some("10.42.2.0/24")),
            // A narrower one makes the share that holds it busy.
            (
                "10.42.0.0/16",
                24,
                &["10.42.0.128/25"],
                Some("10.42.1.0/24"),
            ),
            // Ranges outside the cluster range are ignored.
            ("10.42.0.0/16", 24, &["10.99.0.0/24"], Some("10.42.0.0/24")),
            // Host bits in a Node's value do not matter.
            ("10.42.0.0/16", 24, &["10.42.0.7/24"], Some("10.42.1.0/24")),
            (
                "198.18.0.0/23",
                24,
                &["198.18.0.0/24"],
                Some("198.18.1.0/24"),
            ),
            (
                "198.18.0.0/23",
                24,
                &["198.18.0.0/24", "198.18.1.0/24"],
                None,
            ),
            ("198.18.0.0/24", 24, &["198.18.0.0/16"], None),
            (
                "198.18.0.0/16",
                26,
                &["198.18.0.0/26"],
                Some("198.18.0.64/26"),
            ),
        ];
        for (cluster, mask, taken, want) in cases {
            let taken: Vec<Ipv4Net> = taken.iter().map(|t| net(t)).collect();
            let got = next_free_pod_cidr(&ranges(cluster, *mask), &taken);
            match want {
                Some(expected) => assert_eq!(got, Ok(net(expected)), "{cluster} /{mask} {taken:?}"),
                None => assert_eq!(
                    got,
                    Err(NoFreePodCidr {
                        cluster: net(cluster)
                    }),
                    "{cluster} /{mask} {taken:?}"
                ),
            }
        }
    }

    #[test]
    fn a_full_cluster_says_so() {
        let ranges = ranges("198.18.0.0/24", 24);
        let err = next_free_pod_cidr(&ranges, &[net("198.18.0.0/24")]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "CIDR allocation failed; there are no remaining CIDRs left to allocate in the accepted range 198.18.0.0/24"
        );
    }

    #[test]
    fn many_nodes_get_distinct_shares() {
        let ranges = ranges("198.18.0.0/16", 24);
        let mut taken = Vec::new();
        for _ in 0..256 {
            let next = next_free_pod_cidr(&ranges, &taken).unwrap();
            assert!(!taken.contains(&next), "{next} handed out twice");
            taken.push(next);
        }
        assert_eq!(taken.last(), Some(&net("198.18.255.0/24")));
        assert!(next_free_pod_cidr(&ranges, &taken).is_err());
    }

    #[test]
    fn a_node_keeps_its_range_and_a_new_one_gets_the_next_free_share() {
        let ranges = ranges("198.18.0.0/16", 24);
        let held = node_pod_cidr(&ranges, Some("198.18.7.0/24"), ["198.18.0.0/24"]);
        assert_eq!(held, Ok(net("198.18.7.0/24")));
        let new = node_pod_cidr(&ranges, None, ["198.18.0.0/24", "garbage", "10.244.0.0/24"]);
        assert_eq!(new, Ok(net("198.18.1.0/24")));
        let empty = node_pod_cidr(&ranges, Some(""), ["198.18.0.0/24"]);
        assert_eq!(empty, Ok(net("198.18.1.0/24")));
        // A range from the process runtime's loopback pods cannot be changed into this one.
        let outside = node_pod_cidr(&ranges, Some("127.128.0.0/16"), []).unwrap_err();
        assert!(matches!(
            outside,
            NodePodCidrError::HeldOutsideCluster { .. }
        ));
        assert!(outside.to_string().contains("127.128.0.0/16"), "{outside}");
        let full = ranges_full();
        assert!(matches!(
            node_pod_cidr(&full, None, ["198.18.0.0/24"]),
            Err(NodePodCidrError::Exhausted(_))
        ));
    }

    fn ranges_full() -> ClusterRanges {
        ranges("198.18.0.0/24", 24)
    }

    #[test]
    fn node_values_are_parsed_leniently() {
        let parsed =
            parse_taken_pod_cidrs(["10.42.0.0/24", "", "garbage", " 10.42.3.1/24", "fd00::/64"]);
        assert_eq!(parsed, vec![net("10.42.0.0/24"), net("10.42.3.0/24")]);
    }
}
