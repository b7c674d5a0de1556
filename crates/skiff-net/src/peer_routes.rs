//! Routes to other nodes' pods, as flannel's `host-gw` backend installs them: each other
//! node's `podCIDR` via that node's InternalIP, when that address is on a link this node shares
//! (inside the subnet of one of this node's own interface addresses). Packets then cross the
//! link unchanged, so pods see each other's real addresses.
//!
//! Planned without touching the host: [`plan_peer_routes`] turns the Nodes and this node's
//! addresses into the wanted routes (and the peers it cannot route to, with why), and
//! [`route_changes`] turns the installed and the wanted routes into the changes to make. The
//! changes are applied through the [`PeerRouteTable`] trait: netlink on Linux
//! ([`NetlinkPeerRoutes`]), a recording fake in tests ([`RecordingPeerRoutes`]).
//!
//! A peer not on a shared link would need an overlay (VXLAN), which Skiff does not build.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::sync::Mutex;

use async_trait::async_trait;
use futures::TryStreamExt;
use ipnet::Ipv4Net;
use rtnetlink::packet_route::address::{AddressAttribute, AddressMessage};
use rtnetlink::packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteType,
};
use rtnetlink::{Handle, RouteMessageBuilder};

use crate::linux::{errno_of, netlink, spawn_connection};
use crate::network::NetError;

/// What the planner needs of one Node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerNode {
    /// The Node's name.
    pub name: String,
    /// Its `spec.podCIDR`, as written (none until it is given one).
    pub pod_cidr: Option<String>,
    /// Its `status.addresses` of type `InternalIP`, in order, as written.
    pub internal_ips: Vec<String>,
}

/// One route to another node's pods: `DESTINATION via GATEWAY`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct PeerRoute {
    /// The peer's `podCIDR`.
    pub destination: Ipv4Net,
    /// The peer's InternalIP on the shared link.
    pub gateway: Ipv4Addr,
}

impl std::fmt::Display for PeerRoute {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} via {}", self.destination, self.gateway)
    }
}

/// Why a peer's pods get no route from this node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unroutable {
    /// The `podCIDR` is not an IPv4 range.
    InvalidPodCidr(String),
    /// The `podCIDR` is not inside the cluster's pod range: routing it would claim addresses
    /// that are not pods'.
    OutsideClusterRange(Ipv4Net),
    /// Another node (named) already holds an overlapping range.
    Overlaps(String),
    /// The Node reports no IPv4 InternalIP.
    NoInternalIp,
    /// None of its InternalIPs is on a link this node shares; an overlay would be needed.
    NoSharedLink(Vec<String>),
}

impl std::fmt::Display for Unroutable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unroutable::InvalidPodCidr(cidr) => write!(f, "its podCIDR {cidr:?} is not an IPv4 range"),
            Unroutable::OutsideClusterRange(cidr) => {
                write!(f, "its podCIDR {cidr} is outside the cluster's pod range")
            }
            Unroutable::Overlaps(other) => {
                write!(f, "its podCIDR overlaps the one of node {other}")
            }
            Unroutable::NoInternalIp => write!(f, "it reports no IPv4 InternalIP"),
            Unroutable::NoSharedLink(addresses) => write!(
                f,
                "none of its InternalIPs ({}) is on a link this node shares; host-gw routing needs one (VXLAN is not supported)",
                addresses.join(", ")
            ),
        }
    }
}

/// A peer this node cannot route to, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnroutablePeer {
    /// The peer's Node name.
    pub node: String,
    /// Why.
    pub reason: Unroutable,
}

/// The routes this node wants to its peers' pods, and the peers it cannot reach.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeerRoutePlan {
    /// The wanted routes, by destination.
    pub routes: BTreeMap<Ipv4Net, Ipv4Addr>,
    /// The peers with a `podCIDR` that get no route, in name order.
    pub unroutable: Vec<UnroutablePeer>,
}

/// Plans the routes of node `own_node` (whose interfaces hold `own_addresses`, each with its
/// prefix length) to every other Node's `podCIDR` inside `cluster_cidr`. Nodes without a
/// `podCIDR` yet are left out. Of several nodes claiming overlapping ranges, the first by name
/// keeps its route (the range allocator never gives one range twice).
pub fn plan_peer_routes(
    own_node: &str,
    own_addresses: &[Ipv4Net],
    cluster_cidr: Ipv4Net,
    nodes: &[PeerNode],
) -> PeerRoutePlan {
    let mut peers: Vec<&PeerNode> = nodes.iter().filter(|n| n.name != own_node).collect();
    peers.sort_by(|a, b| a.name.cmp(&b.name));
    // The links a peer may be reached on: subnets of our own addresses, except loopback, host
    // routes and the pod range (the bridge's gateway address).
    let links: Vec<Ipv4Net> = own_addresses
        .iter()
        .filter(|net| {
            !net.addr().is_loopback() && net.prefix_len() < 32 && !cluster_cidr.contains(*net)
        })
        .map(|net| net.trunc())
        .collect();
    let own_pod_cidr: Option<Ipv4Net> = nodes
        .iter()
        .find(|n| n.name == own_node)
        .and_then(|n| n.pod_cidr.as_deref())
        .and_then(|cidr| cidr.parse().ok());
    let mut plan = PeerRoutePlan::default();
    let mut holders: Vec<(Ipv4Net, &str)> = Vec::new();
    if let Some(own) = own_pod_cidr {
        holders.push((own, own_node));
    }
    for peer in peers {
        let Some(raw) = peer.pod_cidr.as_deref() else {
            continue;
        };
        let mut unroutable = |reason| {
            plan.unroutable.push(UnroutablePeer {
                node: peer.name.clone(),
                reason,
            })
        };
        let Ok(destination) = raw.parse::<Ipv4Net>() else {
            unroutable(Unroutable::InvalidPodCidr(raw.to_string()));
            continue;
        };
        let destination = destination.trunc();
        if !cluster_cidr.contains(&destination) {
            unroutable(Unroutable::OutsideClusterRange(destination));
            continue;
        }
        if let Some((_, holder)) = holders
            .iter()
            .find(|(held, _)| held.contains(&destination) || destination.contains(held))
        {
            unroutable(Unroutable::Overlaps(holder.to_string()));
            continue;
        }
        let addresses: Vec<Ipv4Addr> = peer
            .internal_ips
            .iter()
            .filter_map(|ip| ip.parse().ok())
            .collect();
        if addresses.is_empty() {
            unroutable(Unroutable::NoInternalIp);
            continue;
        }
        let gateway = addresses.iter().copied().find(|ip| {
            !ip.is_loopback()
                && !own_addresses.iter().any(|own| own.addr() == *ip)
                && links.iter().any(|link| link.contains(ip))
        });
        match gateway {
            Some(gateway) => {
                holders.push((destination, &peer.name));
                plan.routes.insert(destination, gateway);
            }
            None => unroutable(Unroutable::NoSharedLink(
                addresses.iter().map(ToString::to_string).collect(),
            )),
        }
    }
    plan
}

/// One change to the routing table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteChange {
    /// Install a route for a destination that has none.
    Add(PeerRoute),
    /// Point an installed destination at a new gateway (the peer's address changed).
    Replace(PeerRoute),
    /// Remove the route (the peer is gone or unreachable).
    Delete(PeerRoute),
}

/// The changes that turn the `installed` routes into the `wanted` ones: deletions first (a
/// range that moved to another node must be freed before it is claimed), then replacements
/// and additions, each in destination order.
pub fn route_changes(
    installed: &BTreeMap<Ipv4Net, Ipv4Addr>,
    wanted: &BTreeMap<Ipv4Net, Ipv4Addr>,
) -> Vec<RouteChange> {
    let mut changes: Vec<RouteChange> = installed
        .iter()
        .filter(|(destination, _)| !wanted.contains_key(*destination))
        .map(|(&destination, &gateway)| {
            RouteChange::Delete(PeerRoute {
                destination,
                gateway,
            })
        })
        .collect();
    for (&destination, &gateway) in wanted {
        let route = PeerRoute {
            destination,
            gateway,
        };
        match installed.get(&destination) {
            None => changes.push(RouteChange::Add(route)),
            Some(current) if *current != gateway => changes.push(RouteChange::Replace(route)),
            Some(_) => {}
        }
    }
    changes
}

/// The host's routing table as the peer router sees it. Implementations must make each change
/// idempotent: adding a route that exists, or deleting one that does not, succeeds.
#[async_trait]
pub trait PeerRouteTable: Send + Sync {
    /// This host's IPv4 interface addresses, each with its prefix length.
    async fn own_addresses(&self) -> Result<Vec<Ipv4Net>, NetError>;

    /// The routes via a gateway inside `cluster_cidr` already in the table: those an earlier
    /// run left, to adopt or remove.
    async fn installed_routes(
        &self,
        cluster_cidr: Ipv4Net,
    ) -> Result<BTreeMap<Ipv4Net, Ipv4Addr>, NetError>;

    /// Makes one change.
    async fn apply(&self, change: RouteChange) -> Result<(), NetError>;
}

/// [`PeerRouteTable`] over netlink, in the network namespace of the thread that made it.
pub struct NetlinkPeerRoutes {
    handle: Handle,
}

impl NetlinkPeerRoutes {
    /// Opens a netlink connection on the current tokio runtime.
    pub fn new() -> Result<Self, NetError> {
        Ok(NetlinkPeerRoutes {
            handle: spawn_connection()?,
        })
    }
}

fn route_message(route: PeerRoute) -> RouteMessage {
    RouteMessageBuilder::<Ipv4Addr>::new()
        .destination_prefix(route.destination.network(), route.destination.prefix_len())
        .gateway(route.gateway)
        .build()
}

fn address_of(message: &AddressMessage) -> Option<Ipv4Net> {
    message
        .attributes
        .iter()
        .find_map(|attribute| match attribute {
            AddressAttribute::Address(std::net::IpAddr::V4(ip)) => {
                Ipv4Net::new(*ip, message.header.prefix_len).ok()
            }
            _ => None,
        })
}

#[async_trait]
impl PeerRouteTable for NetlinkPeerRoutes {
    async fn own_addresses(&self) -> Result<Vec<Ipv4Net>, NetError> {
        let mut messages = self.handle.address().get().execute();
        let mut addresses = Vec::new();
        while let Some(message) = messages
            .try_next()
            .await
            .map_err(|source| netlink("list the host's addresses".into(), source))?
        {
            addresses.extend(address_of(&message));
        }
        Ok(addresses)
    }

    async fn installed_routes(
        &self,
        cluster_cidr: Ipv4Net,
    ) -> Result<BTreeMap<Ipv4Net, Ipv4Addr>, NetError> {
        let mut messages = self
            .handle
            .route()
            .get(RouteMessageBuilder::<Ipv4Addr>::new().build())
            .execute();
        let mut routes = BTreeMap::new();
        while let Some(message) = messages
            .try_next()
            .await
            .map_err(|source| netlink("list the host's routes".into(), source))?
        {
            // Only the main table's gateway routes are the kind this router makes.
            if message.header.kind != RouteType::Unicast
                || message.header.table != RouteHeader::RT_TABLE_MAIN
            {
                continue;
            }
            let mut destination = None;
            let mut gateway = None;
            for attribute in &message.attributes {
                match attribute {
                    RouteAttribute::Destination(RouteAddress::Inet(ip)) => {
                        destination =
                            Ipv4Net::new(*ip, message.header.destination_prefix_length).ok();
                    }
                    RouteAttribute::Gateway(RouteAddress::Inet(ip)) => gateway = Some(*ip),
                    _ => {}
                }
            }
            if let (Some(destination), Some(gateway)) = (destination, gateway) {
                if cluster_cidr.contains(&destination) {
                    routes.insert(destination, gateway);
                }
            }
        }
        Ok(routes)
    }

    async fn apply(&self, change: RouteChange) -> Result<(), NetError> {
        match change {
            RouteChange::Add(route) | RouteChange::Replace(route) => self
                .handle
                .route()
                .add(route_message(route))
                .replace()
                .execute()
                .await
                .map_err(|source| netlink(format!("add route {route}"), source)),
            RouteChange::Delete(route) => match self
                .handle
                .route()
                .del(route_message(route))
                .execute()
                .await
            {
                Err(error) if errno_of(&error) == Some(nix::errno::Errno::ESRCH) => Ok(()),
                other => other.map_err(|source| netlink(format!("delete route {route}"), source)),
            },
        }
    }
}

/// A [`PeerRouteTable`] that keeps its routes in memory and records every change, for tests of
/// the code that drives it.
#[derive(Debug, Default)]
pub struct RecordingPeerRoutes {
    state: Mutex<RecordedRoutes>,
}

#[derive(Debug, Default)]
struct RecordedRoutes {
    addresses: Vec<Ipv4Net>,
    routes: BTreeMap<Ipv4Net, Ipv4Addr>,
    changes: Vec<RouteChange>,
}

impl RecordingPeerRoutes {
    /// A table whose host holds `addresses`.
    pub fn with_addresses(addresses: Vec<Ipv4Net>) -> Self {
        let table = RecordingPeerRoutes::default();
        table.lock().addresses = addresses;
        table
    }

    /// Changes the host's addresses, as an administrator would.
    pub fn set_addresses(&self, addresses: Vec<Ipv4Net>) {
        self.lock().addresses = addresses;
    }

    /// Puts a route in the table as an earlier run would have left it.
    pub fn preinstall(&self, route: PeerRoute) {
        self.lock().routes.insert(route.destination, route.gateway);
    }

    /// The routes in the table now.
    pub fn routes(&self) -> BTreeMap<Ipv4Net, Ipv4Addr> {
        self.lock().routes.clone()
    }

    /// Every change applied so far, in order.
    pub fn changes(&self) -> Vec<RouteChange> {
        self.lock().changes.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, RecordedRoutes> {
        self.state
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }
}

#[async_trait]
impl PeerRouteTable for RecordingPeerRoutes {
    async fn own_addresses(&self) -> Result<Vec<Ipv4Net>, NetError> {
        Ok(self.lock().addresses.clone())
    }

    async fn installed_routes(
        &self,
        cluster_cidr: Ipv4Net,
    ) -> Result<BTreeMap<Ipv4Net, Ipv4Addr>, NetError> {
        Ok(self
            .lock()
            .routes
            .iter()
            .filter(|(destination, _)| cluster_cidr.contains(*destination))
            .map(|(d, g)| (*d, *g))
            .collect())
    }

    async fn apply(&self, change: RouteChange) -> Result<(), NetError> {
        let mut state = self.lock();
        state.changes.push(change);
        match change {
            RouteChange::Add(route) | RouteChange::Replace(route) => {
                state.routes.insert(route.destination, route.gateway);
            }
            RouteChange::Delete(route) => {
                state.routes.remove(&route.destination);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(text: &str) -> Ipv4Net {
        text.parse().unwrap()
    }

    fn ip(text: &str) -> Ipv4Addr {
        text.parse().unwrap()
    }

    fn node(name: &str, pod_cidr: Option<&str>, internal_ips: &[&str]) -> PeerNode {
        PeerNode {
            name: name.into(),
            pod_cidr: pod_cidr.map(str::to_string),
            internal_ips: internal_ips.iter().map(|a| a.to_string()).collect(),
        }
    }

    /// This node: `a`, on the link 198.18.8.0/24, its bridge holding 198.18.0.1/24.
    fn plan(nodes: &[PeerNode]) -> PeerRoutePlan {
        plan_peer_routes(
            "a",
            &[
                net("127.0.0.1/8"),
                net("198.18.8.10/24"),
                net("198.18.0.1/24"),
            ],
            net("198.18.0.0/21"),
            nodes,
        )
    }

    fn routes(pairs: &[(&str, &str)]) -> BTreeMap<Ipv4Net, Ipv4Addr> {
        pairs.iter().map(|(d, g)| (net(d), ip(g))).collect()
    }

    #[test]
    fn planning_routes_each_peer_on_a_shared_link_and_says_why_not_the_others() {
        struct Case {
            name: &'static str,
            nodes: Vec<PeerNode>,
            routes: BTreeMap<Ipv4Net, Ipv4Addr>,
            unroutable: Vec<(&'static str, Unroutable)>,
        }
        let own = node("a", Some("198.18.0.0/24"), &["198.18.8.10"]);
        let cases = vec![
            Case {
                name: "a peer on the shared link is routed via its InternalIP",
                nodes: vec![
                    own.clone(),
                    node("b", Some("198.18.1.0/24"), &["198.18.8.11"]),
                ],
                routes: routes(&[("198.18.1.0/24", "198.18.8.11")]),
                unroutable: vec![],
            },
            Case {
                name: "the node's own range is never routed",
                nodes: vec![own.clone()],
                routes: routes(&[]),
                unroutable: vec![],
            },
            Case {
                name: "a peer without a podCIDR yet is left out",
                nodes: vec![own.clone(), node("b", None, &["198.18.8.11"])],
                routes: routes(&[]),
                unroutable: vec![],
            },
            Case {
                name: "the first InternalIP on a shared link is the gateway",
                nodes: vec![
                    own.clone(),
                    node(
                        "b",
                        Some("198.18.1.0/24"),
                        &["198.19.254.5", "198.18.8.12", "198.18.8.11"],
                    ),
                ],
                routes: routes(&[("198.18.1.0/24", "198.18.8.12")]),
                unroutable: vec![],
            },
            Case {
                name: "a peer on another network needs an overlay",
                nodes: vec![
                    own.clone(),
                    node("b", Some("198.18.1.0/24"), &["198.19.254.5"]),
                ],
                routes: routes(&[]),
                unroutable: vec![("b", Unroutable::NoSharedLink(vec!["198.19.254.5".into()]))],
            },
            Case {
                name: "loopback and this node's own addresses are no gateway",
                nodes: vec![
                    own.clone(),
                    node("b", Some("198.18.1.0/24"), &["127.0.0.1", "198.18.8.10"]),
                ],
                routes: routes(&[]),
                unroutable: vec![(
                    "b",
                    Unroutable::NoSharedLink(vec!["127.0.0.1".into(), "198.18.8.10".into()]),
                )],
            },
            Case {
                name: "an address in the pod range does not make a shared link",
                nodes: vec![
                    own.clone(),
                    node("b", Some("198.18.1.0/24"), &["198.18.0.7"]),
                ],
                routes: routes(&[]),
                unroutable: vec![("b", Unroutable::NoSharedLink(vec!["198.18.0.7".into()]))],
            },
            Case {
                name: "a peer without an IPv4 InternalIP",
                nodes: vec![own.clone(), node("b", Some("198.18.1.0/24"), &["fd00::1"])],
                routes: routes(&[]),
                unroutable: vec![("b", Unroutable::NoInternalIp)],
            },
            Case {
                name: "a podCIDR outside the cluster range is refused",
                nodes: vec![
                    own.clone(),
                    node("b", Some("198.19.0.0/24"), &["198.18.8.11"]),
                ],
                routes: routes(&[]),
                unroutable: vec![("b", Unroutable::OutsideClusterRange(net("198.19.0.0/24")))],
            },
            Case {
                name: "a podCIDR that does not parse",
                nodes: vec![own.clone(), node("b", Some("not-a-cidr"), &["198.18.8.11"])],
                routes: routes(&[]),
                unroutable: vec![("b", Unroutable::InvalidPodCidr("not-a-cidr".into()))],
            },
            Case {
                name: "a peer claiming this node's range is not routed",
                nodes: vec![
                    own.clone(),
                    node("b", Some("198.18.0.0/23"), &["198.18.8.11"]),
                ],
                routes: routes(&[]),
                unroutable: vec![("b", Unroutable::Overlaps("a".into()))],
            },
            Case {
                name: "of two peers sharing a range the first by name keeps it",
                nodes: vec![
                    own.clone(),
                    node("c", Some("198.18.1.0/24"), &["198.18.8.12"]),
                    node("b", Some("198.18.1.0/24"), &["198.18.8.11"]),
                ],
                routes: routes(&[("198.18.1.0/24", "198.18.8.11")]),
                unroutable: vec![("c", Unroutable::Overlaps("b".into()))],
            },
            Case {
                name: "several peers, each via its own address",
                nodes: vec![
                    node("c", Some("198.18.2.0/24"), &["198.18.8.12"]),
                    own.clone(),
                    node("b", Some("198.18.1.0/24"), &["198.18.8.11"]),
                ],
                routes: routes(&[
                    ("198.18.1.0/24", "198.18.8.11"),
                    ("198.18.2.0/24", "198.18.8.12"),
                ]),
                unroutable: vec![],
            },
        ];
        for case in cases {
            let planned = plan(&case.nodes);
            assert_eq!(planned.routes, case.routes, "{}", case.name);
            let unroutable: Vec<(String, Unroutable)> = planned
                .unroutable
                .into_iter()
                .map(|u| (u.node, u.reason))
                .collect();
            let expected: Vec<(String, Unroutable)> = case
                .unroutable
                .into_iter()
                .map(|(n, r)| (n.to_string(), r))
                .collect();
            assert_eq!(unroutable, expected, "{}", case.name);
        }
    }

    #[test]
    fn an_unroutable_peer_is_explained_in_words() {
        assert_eq!(
            Unroutable::NoSharedLink(vec!["198.19.254.5".into()]).to_string(),
            "none of its InternalIPs (198.19.254.5) is on a link this node shares; host-gw routing needs one (VXLAN is not supported)"
        );
        assert_eq!(
            Unroutable::OutsideClusterRange(net("198.19.0.0/24")).to_string(),
            "its podCIDR 198.19.0.0/24 is outside the cluster's pod range"
        );
    }

    #[test]
    fn a_host_route_or_loopback_address_is_no_shared_link() {
        let planned = plan_peer_routes(
            "a",
            &[net("127.0.0.1/8"), net("198.18.8.10/32")],
            net("198.18.0.0/21"),
            &[node("b", Some("198.18.1.0/24"), &["198.18.8.11"])],
        );
        assert!(planned.routes.is_empty());
        assert_eq!(planned.unroutable.len(), 1);
    }

    #[test]
    fn changes_delete_first_then_replace_and_add() {
        let cases = [
            (
                "nothing installed",
                routes(&[]),
                routes(&[("198.18.1.0/24", "198.18.8.11")]),
                vec![RouteChange::Add(PeerRoute {
                    destination: net("198.18.1.0/24"),
                    gateway: ip("198.18.8.11"),
                })],
            ),
            (
                "already in step",
                routes(&[("198.18.1.0/24", "198.18.8.11")]),
                routes(&[("198.18.1.0/24", "198.18.8.11")]),
                vec![],
            ),
            (
                "the peer's address changed",
                routes(&[("198.18.1.0/24", "198.18.8.11")]),
                routes(&[("198.18.1.0/24", "198.18.8.21")]),
                vec![RouteChange::Replace(PeerRoute {
                    destination: net("198.18.1.0/24"),
                    gateway: ip("198.18.8.21"),
                })],
            ),
            (
                "the peer is gone",
                routes(&[("198.18.1.0/24", "198.18.8.11")]),
                routes(&[]),
                vec![RouteChange::Delete(PeerRoute {
                    destination: net("198.18.1.0/24"),
                    gateway: ip("198.18.8.11"),
                })],
            ),
            (
                "one gone, one new",
                routes(&[("198.18.2.0/24", "198.18.8.12")]),
                routes(&[("198.18.1.0/24", "198.18.8.11")]),
                vec![
                    RouteChange::Delete(PeerRoute {
                        destination: net("198.18.2.0/24"),
                        gateway: ip("198.18.8.12"),
                    }),
                    RouteChange::Add(PeerRoute {
                        destination: net("198.18.1.0/24"),
                        gateway: ip("198.18.8.11"),
                    }),
                ],
            ),
        ];
        for (name, installed, wanted, expected) in cases {
            assert_eq!(route_changes(&installed, &wanted), expected, "{name}");
        }
    }

    #[tokio::test]
    async fn the_recording_table_keeps_what_the_changes_leave() {
        let table = RecordingPeerRoutes::with_addresses(vec![net("198.18.8.10/24")]);
        table.preinstall(PeerRoute {
            destination: net("198.19.254.0/24"),
            gateway: ip("198.18.8.1"),
        });
        let route = PeerRoute {
            destination: net("198.18.1.0/24"),
            gateway: ip("198.18.8.11"),
        };
        table.apply(RouteChange::Add(route)).await.unwrap();
        assert_eq!(
            table.installed_routes(net("198.18.0.0/21")).await.unwrap(),
            routes(&[("198.18.1.0/24", "198.18.8.11")]),
            "only routes inside the cluster range are reported"
        );
        table.apply(RouteChange::Delete(route)).await.unwrap();
        assert_eq!(table.routes().len(), 1);
        assert_eq!(table.changes().len(), 2);
    }
}
