//! Keeps this host's routes to other nodes' pods in step with the Nodes, as flannel's `host-gw`
//! backend does: a Node informer feeds `skiff_net`'s pure planner, and the changes it asks for
//! go to a [`PeerRouteTable`] (netlink on a real node, a recording fake in tests). A route is
//! added when a peer gets its `podCIDR`, changed when its InternalIP changes, removed when the
//! Node goes, and every route is removed when the router stops.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use ipnet::Ipv4Net;
use serde_json::Value;
use skiff_client::Client;
use skiff_net::{plan_peer_routes, route_changes, PeerNode, PeerRouteTable, RouteChange};
use skiff_runtime::{Informer, InformerConfig};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// How often the routes are checked again without a Node change: this host's own addresses
/// may change under it.
pub const PEER_ROUTE_RESYNC: Duration = Duration::from_secs(30);

/// What the planner needs of a Node object: its name, `spec.podCIDR` and IPv4 or IPv6
/// `InternalIP` addresses, in order.
pub fn peer_node_of(node: &Value) -> Option<PeerNode> {
    let name = node.pointer("/metadata/name")?.as_str()?.to_string();
    let pod_cidr = node
        .pointer("/spec/podCIDR")
        .and_then(Value::as_str)
        .map(str::to_string);
    let internal_ips = node
        .pointer("/status/addresses")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|address| address["type"] == "InternalIP")
        .filter_map(|address| address["address"].as_str().map(str::to_string))
        .collect();
    Some(PeerNode {
        name,
        pod_cidr,
        internal_ips,
    })
}

/// A running router; [`PeerRouter::stop`] removes the routes it installed.
pub struct PeerRouter {
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl PeerRouter {
    /// Starts routing node `own_node`'s host to every other Node's `podCIDR` inside
    /// `cluster_cidr`, through `table`; routes an earlier run left in the range are adopted
    /// (kept if still wanted, removed if not).
    pub fn start(
        client: Arc<dyn Client>,
        own_node: &str,
        cluster_cidr: Ipv4Net,
        table: Arc<dyn PeerRouteTable>,
        resync: Duration,
    ) -> PeerRouter {
        let (stop, stopped) = oneshot::channel();
        let routing = Routing {
            own_node: own_node.to_string(),
            cluster_cidr,
            table,
            installed: BTreeMap::new(),
            reported: BTreeMap::new(),
        };
        let task = tokio::spawn(routing.run(client, resync, stopped));
        PeerRouter {
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// Stops following the Nodes and removes every route this router installed.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            if let Err(error) = task.await {
                tracing::warn!(%error, "the peer route task failed");
            }
        }
    }
}

impl Drop for PeerRouter {
    fn drop(&mut self) {
        // Not stopped through `stop`: leave the routes (a restart adopts them).
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

struct Routing {
    own_node: String,
    cluster_cidr: Ipv4Net,
    table: Arc<dyn PeerRouteTable>,
    /// The routes in the table that this router answers for.
    installed: BTreeMap<Ipv4Net, Ipv4Addr>,
    /// The reason last logged for each peer that gets no route, so each is said once.
    reported: BTreeMap<String, String>,
}

impl Routing {
    async fn run(
        mut self,
        client: Arc<dyn Client>,
        resync: Duration,
        mut stopped: oneshot::Receiver<()>,
    ) {
        match self.table.installed_routes(self.cluster_cidr).await {
            Ok(left) => self.installed = left,
            Err(error) => {
                tracing::warn!(%error, "cannot list the routes an earlier run left")
            }
        }
        let Some(nodes) = skiff_api::resources::find("", "v1", "nodes") else {
            tracing::error!("the API serves no v1 nodes: no routes to other nodes' pods");
            return;
        };
        let informer = Informer::start(client, InformerConfig::new(nodes));
        let mut changes = informer.subscribe();
        let synced = tokio::select! {
            _ = informer.wait_synced() => true,
            _ = &mut stopped => false,
        };
        if synced {
            let mut ticks = tokio::time::interval(resync);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                // Changes that queued up meanwhile are all in the cache: one pass covers them.
                while changes.try_recv().is_ok() {}
                self.reconcile(&informer).await;
                tokio::select! {
                    _ = &mut stopped => break,
                    change = changes.recv() => if change.is_none() { break },
                    _ = ticks.tick() => {}
                }
            }
        }
        let installed = std::mem::take(&mut self.installed);
        for (destination, gateway) in installed {
            let route = skiff_net::PeerRoute {
                destination,
                gateway,
            };
            if let Err(error) = self.table.apply(RouteChange::Delete(route)).await {
                tracing::warn!(%error, %route, "cannot remove the route to a node's pods");
            }
        }
    }

    async fn reconcile(&mut self, informer: &Informer) {
        let own_addresses = match self.table.own_addresses().await {
            Ok(addresses) => addresses,
            Err(error) => {
                tracing::warn!(%error, "cannot list this host's addresses; routes to other nodes' pods wait");
                return;
            }
        };
        let nodes: Vec<PeerNode> = informer
            .list()
            .iter()
            .filter_map(|node| peer_node_of(node))
            .collect();
        let plan = plan_peer_routes(&self.own_node, &own_addresses, self.cluster_cidr, &nodes);
        let mut reported = BTreeMap::new();
        for peer in &plan.unroutable {
            let reason = peer.reason.to_string();
            if self.reported.get(&peer.node) != Some(&reason) {
                tracing::warn!(node = %peer.node, "no route to the node's pods: {reason}");
            }
            reported.insert(peer.node.clone(), reason);
        }
        self.reported = reported;
        for change in route_changes(&self.installed, &plan.routes) {
            match self.table.apply(change).await {
                Ok(()) => match change {
                    RouteChange::Add(route) | RouteChange::Replace(route) => {
                        tracing::info!(%route, "routing a node's pods");
                        self.installed.insert(route.destination, route.gateway);
                    }
                    RouteChange::Delete(route) => {
                        tracing::info!(%route, "no longer routing a node's pods");
                        self.installed.remove(&route.destination);
                    }
                },
                // Tried again on the next change or resync.
                Err(error) => {
                    tracing::warn!(%error, ?change, "cannot change a route to a node's pods")
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_node_object_gives_its_name_range_and_internal_ips() {
        let node = json!({
            "metadata": {"name": "b"},
            "spec": {"podCIDR": "198.18.1.0/24"},
            "status": {"addresses": [
                {"type": "Hostname", "address": "b"},
                {"type": "InternalIP", "address": "198.18.8.11"},
                {"type": "ExternalIP", "address": "198.19.254.9"},
                {"type": "InternalIP", "address": "fd00::11"},
            ]},
        });
        assert_eq!(
            peer_node_of(&node),
            Some(PeerNode {
                name: "b".into(),
                pod_cidr: Some("198.18.1.0/24".into()),
                internal_ips: vec!["198.18.8.11".into(), "fd00::11".into()],
            })
        );
        assert_eq!(peer_node_of(&json!({"spec": {}})), None);
    }
}
