//! What the host needs, planned without touching it: the routes and the NAT rules.
//!
//! Routes: an `unreachable` route for the whole cluster range and for the whole Service range,
//! so a packet for a pod or Service address that no more specific route claims is refused on
//! the spot instead of following the default route off the machine; and the node's own
//! `podCIDR` on the bridge, which the kernel adds itself once the gateway address is on the
//! bridge. Other nodes' ranges are routed to their node addresses by `peer_routes.rs`.
//!
//! NAT: pod traffic leaving the node (to anything outside the cluster range) is masqueraded.
//! Rules live in an nftables table of Skiff's own, written with the `nft` command in one
//! transaction: nftables is the kernel's packet filter on current distributions, `nft` applies a
//! whole table atomically and is the interface its authors keep stable, and a table of our own
//! never touches rules other software installed (iptables-nft would share its tables with
//! Docker and firewalls). Removing the table removes every rule Skiff added.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

use crate::config::HostConfig;

/// One route in the host's main table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostRoute {
    /// `unreachable DST`: refuse packets no more specific route claims.
    Unreachable {
        /// The guarded range.
        destination: Ipv4Net,
    },
    /// `DST dev BRIDGE scope link src GATEWAY`: the node's pods, on the bridge. The kernel
    /// creates this route itself when the gateway address is added to the bridge.
    Bridge {
        /// The node's `podCIDR`.
        destination: Ipv4Net,
        /// The bridge's name.
        bridge: String,
        /// The bridge's address, used as the source of host-to-pod traffic.
        source: Ipv4Addr,
    },
}

/// The host's routes, guard routes first: they must be in place before anything is routed.
pub fn host_routes(config: &HostConfig) -> Vec<HostRoute> {
    vec![
        HostRoute::Unreachable {
            destination: config.ranges.cluster_cidr,
        },
        HostRoute::Unreachable {
            destination: config.ranges.service_cidr,
        },
        HostRoute::Bridge {
            destination: config.pod_range.pod_cidr,
            bridge: config.bridge.clone(),
            source: config.pod_range.gateway(),
        },
    ]
}

/// The `nft` script that installs (or replaces, atomically) Skiff's NAT table: declaring the
/// table first makes the deletion that follows valid even on the first run.
pub fn nat_install_script(config: &HostConfig) -> String {
    let table = config.nat_table();
    format!(
        "add table ip {table}\n\
         delete table ip {table}\n\
         table ip {table} {{\n\
         \tchain postrouting {{\n\
         \t\ttype nat hook postrouting priority srcnat; policy accept;\n\
         \t\tip saddr {pods} ip daddr != {cluster} ip daddr != 224.0.0.0/4 oifname != \"{bridge}\" masquerade\n\
         \t}}\n\
         }}\n",
        pods = config.pod_range.pod_cidr,
        cluster = config.ranges.cluster_cidr,
        bridge = config.bridge,
    )
}

/// The `nft` script that removes Skiff's NAT table, whether or not it exists.
pub fn nat_remove_script(config: &HostConfig) -> String {
    let table = config.nat_table();
    format!("add table ip {table}\ndelete table ip {table}\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipam::PodRange;
    use crate::ranges::ClusterRanges;

    fn config() -> HostConfig {
        HostConfig::new(
            "sktest0",
            ClusterRanges::parse("198.18.0.0/16", "198.19.0.0/16", 24).unwrap(),
            PodRange::new("198.18.7.0/24".parse().unwrap()).unwrap(),
            "/run/skiff/netns",
        )
        .unwrap()
    }

    #[test]
    fn guard_routes_cover_both_ranges_and_the_bridge_claims_the_node_range() {
        assert_eq!(
            host_routes(&config()),
            vec![
                HostRoute::Unreachable {
                    destination: "198.18.0.0/16".parse().unwrap()
                },
                HostRoute::Unreachable {
                    destination: "198.19.0.0/16".parse().unwrap()
                },
                HostRoute::Bridge {
                    destination: "198.18.7.0/24".parse().unwrap(),
                    bridge: "sktest0".into(),
                    source: "198.18.7.1".parse().unwrap(),
                },
            ]
        );
    }

    #[test]
    fn nat_scripts_use_a_table_of_our_own() {
        let install = nat_install_script(&config());
        assert!(install.starts_with(
            "add table ip skiff_sktest0\ndelete table ip skiff_sktest0\ntable ip skiff_sktest0 {\n"
        ));
        assert!(install.contains("type nat hook postrouting priority srcnat; policy accept;"));
        assert!(install.contains(
            "ip saddr 198.18.7.0/24 ip daddr != 198.18.0.0/16 ip daddr != 224.0.0.0/4 oifname != \"sktest0\" masquerade"
        ));
        assert_eq!(
            nat_remove_script(&config()),
            "add table ip skiff_sktest0\ndelete table ip skiff_sktest0\n"
        );
    }
}
