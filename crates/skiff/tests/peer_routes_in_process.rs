//! The node agent's host-gw routes to other nodes' pods, against the in-process API over
//! SQLite (which the node crate may not depend on, even for its tests) and the recording route
//! table: routes follow the peers' ranges, addresses and deletions, and go when it stops.
//!
//! Run with `cargo test -p skiff --test peer_routes_in_process`.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use ipnet::Ipv4Net;
use serde_json::json;
use skiff_apiserver::LocalClient;
use skiff_client::{Api, Client};
use skiff_net::{PeerRoute, RecordingPeerRoutes, RouteChange};
use skiff_node::agent::peer_routes::PeerRouter;

fn net(text: &str) -> Ipv4Net {
    text.parse().unwrap()
}

fn ip(text: &str) -> Ipv4Addr {
    text.parse().unwrap()
}

async fn client() -> (tempfile::TempDir, Arc<dyn Client>) {
    let dir = tempfile::tempdir().unwrap();
    let store = skiff_store::SqliteStore::open(&dir.path().join("s.db")).unwrap();
    let registry = skiff_apiserver::registry::Registry::new(Arc::new(store));
    (dir, Arc::new(LocalClient::new(registry)))
}

fn node(name: &str, pod_cidr: Option<&str>, address: &str) -> k8s_openapi::api::core::v1::Node {
    let mut spec = json!({});
    if let Some(cidr) = pod_cidr {
        spec = json!({"podCIDR": cidr, "podCIDRs": [cidr]});
    }
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": spec,
        "status": {"addresses": [
            {"type": "InternalIP", "address": address},
            {"type": "Hostname", "address": name},
        ]},
    }))
    .unwrap()
}

/// Creates the Node, then writes its status (addresses), as a kubelet registers.
async fn add_node(
    nodes: &Api<k8s_openapi::api::core::v1::Node>,
    wanted: k8s_openapi::api::core::v1::Node,
) {
    let mut created = nodes.create(&wanted).await.unwrap();
    created.status = wanted.status;
    nodes.update_status(&created).await.unwrap();
}

async fn wait_for_routes(table: &RecordingPeerRoutes, wanted: &[(&str, &str)], what: &str) {
    let wanted: BTreeMap<Ipv4Net, Ipv4Addr> = wanted.iter().map(|(d, g)| (net(d), ip(g))).collect();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while table.routes() != wanted {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: the routes are {:?}, not {wanted:?}",
            table.routes()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_follow_peers_ranges_addresses_and_deletions_and_go_at_stop() {
    let (_dir, client) = client().await;
    let nodes: Api<k8s_openapi::api::core::v1::Node> = Api::new(client.clone(), None).unwrap();
    let table = Arc::new(RecordingPeerRoutes::with_addresses(vec![
        net("127.0.0.1/8"),
        net("198.18.8.10/24"),
        net("198.18.0.1/24"),
    ]));
    // A route an earlier run left for a node that is gone since.
    table.preinstall(PeerRoute {
        destination: net("198.18.5.0/24"),
        gateway: ip("198.18.8.15"),
    });
    add_node(&nodes, node("a", Some("198.18.0.0/24"), "198.18.8.10")).await;
    add_node(&nodes, node("b", None, "198.18.8.11")).await;
    let router = PeerRouter::start(
        client.clone(),
        "a",
        net("198.18.0.0/21"),
        table.clone(),
        Duration::from_secs(3600),
    );
    wait_for_routes(&table, &[], "the stale route goes; b has no range yet").await;

    let mut b = nodes.get("b").await.unwrap();
    b.spec = node("b", Some("198.18.1.0/24"), "198.18.8.11").spec;
    nodes.update(&b).await.unwrap();
    wait_for_routes(
        &table,
        &[("198.18.1.0/24", "198.18.8.11")],
        "b got its range",
    )
    .await;

    add_node(&nodes, node("c", Some("198.18.2.0/24"), "198.19.254.12")).await;
    let mut c = nodes.get("c").await.unwrap();
    c.status = node("c", None, "198.18.8.12").status;
    nodes.update_status(&c).await.unwrap();
    wait_for_routes(
        &table,
        &[
            ("198.18.1.0/24", "198.18.8.11"),
            ("198.18.2.0/24", "198.18.8.12"),
        ],
        "c moved onto the shared link",
    )
    .await;

    nodes
        .delete("b", &skiff_client::DeleteOptions::default())
        .await
        .unwrap();
    wait_for_routes(&table, &[("198.18.2.0/24", "198.18.8.12")], "b was deleted").await;
    assert!(
        table.changes().contains(&RouteChange::Delete(PeerRoute {
            destination: net("198.18.1.0/24"),
            gateway: ip("198.18.8.11"),
        })),
        "b's route was deleted, not left: {:?}",
        table.changes()
    );

    router.stop().await;
    assert_eq!(
        table.routes(),
        BTreeMap::new(),
        "stopping removes every route"
    );
}
