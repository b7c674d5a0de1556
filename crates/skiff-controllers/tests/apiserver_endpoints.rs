//! The `kubernetes` Service's endpoint reconciler against the real registry over SQLite: each
//! server's identity Lease, the Endpoints and EndpointSlices listing the live servers, stale
//! servers dropped, expired Leases deleted, and a clean stop removing its own server.

use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Endpoints;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use skiff_apiserver::registry::Registry;
use skiff_apiserver::LocalClient;
use skiff_client::{Api, Client, ListOptions};
use skiff_controllers::apiserver_endpoints::{self, ApiServerIdentity};

async fn cluster() -> (tempfile::TempDir, Arc<dyn Client>) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = skiff_store::SqliteStore::open(&dir.path().join("store.db")).expect("a store");
    let registry = Registry::new(Arc::new(store));
    skiff_apiserver::system::ensure_builtin_namespaces(&registry)
        .await
        .expect("namespaces");
    (dir, Arc::new(LocalClient::new(registry)))
}

fn identity(address: &str) -> ApiServerIdentity {
    ApiServerIdentity::new("host", address.parse().expect("an address"))
}

/// The Endpoints as `(port, [ips])` per subset.
async fn endpoint_groups(client: &Arc<dyn Client>) -> Vec<(i32, Vec<String>)> {
    let api = Api::<Endpoints>::new(client.clone(), Some("default")).expect("endpoints api");
    let endpoints = api
        .get("kubernetes")
        .await
        .expect("the kubernetes Endpoints");
    endpoints
        .subsets
        .unwrap_or_default()
        .into_iter()
        .map(|subset| {
            let ports = subset.ports.unwrap_or_default();
            assert_eq!(ports.len(), 1, "one port per subset: {ports:?}");
            assert_eq!(ports[0].name.as_deref(), Some("https"));
            let ips = subset
                .addresses
                .unwrap_or_default()
                .into_iter()
                .map(|a| a.ip)
                .collect();
            (ports[0].port, ips)
        })
        .collect()
}

/// The `kubernetes` EndpointSlices as `(name, port, [ips])`, by name.
async fn slice_groups(client: &Arc<dyn Client>) -> Vec<(String, i32, Vec<String>)> {
    let api = Api::<EndpointSlice>::new(client.clone(), Some("default")).expect("slices api");
    let options = ListOptions {
        label_selector: Some("kubernetes.io/service-name=kubernetes".to_string()),
        ..ListOptions::default()
    };
    let (mut slices, _) = api.list(&options).await.expect("list slices");
    slices.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    slices
        .into_iter()
        .map(|slice| {
            let port = slice
                .ports
                .unwrap_or_default()
                .first()
                .and_then(|p| p.port)
                .unwrap_or_default();
            let ips = slice
                .endpoints
                .unwrap_or_default()
                .into_iter()
                .flat_map(|e| {
                    assert_eq!(e.conditions.and_then(|c| c.ready), Some(true));
                    e.addresses
                })
                .collect();
            (slice.metadata.name.unwrap_or_default(), port, ips)
        })
        .collect()
}

/// Sets a server's last renewal `ago` in the past, as if it had stopped renewing then.
async fn renewed_ago(client: &Arc<dyn Client>, server: &ApiServerIdentity, ago: SignedDuration) {
    let leases = Api::<Lease>::new(client.clone(), Some("kube-system")).expect("lease api");
    let mut lease = leases.get(&server.lease_name).await.expect("the lease");
    let then = Timestamp::now().checked_sub(ago).expect("a valid time");
    lease.spec.as_mut().expect("a spec").renew_time = Some(MicroTime(then));
    leases.update(&lease).await.expect("update the lease");
}

fn strings(values: &[&str]) -> Vec<String> {
    values.iter().map(|v| v.to_string()).collect()
}

#[tokio::test]
async fn the_endpoints_list_the_servers_whose_leases_are_live() {
    let (_dir, client) = cluster().await;
    let a = identity("10.0.0.2:6443");
    let b = identity("10.0.0.1:6443");
    let c = identity("127.0.0.1:7443");
    for server in [&a, &b, &c] {
        apiserver_endpoints::reconcile(&client, server)
            .await
            .expect("reconcile");
    }

    let leases = Api::<Lease>::new(client.clone(), Some("kube-system")).expect("lease api");
    let lease = leases.get(&a.lease_name).await.expect("A's identity lease");
    let labels = lease.metadata.labels.clone().unwrap_or_default();
    assert_eq!(
        labels
            .get("apiserver.kubernetes.io/identity")
            .map(String::as_str),
        Some("kube-apiserver")
    );
    assert_eq!(
        labels.get("kubernetes.io/hostname").map(String::as_str),
        Some("host")
    );
    let spec = lease.spec.clone().expect("a spec");
    assert_eq!(spec.lease_duration_seconds, Some(3600));
    assert_eq!(
        spec.holder_identity.as_deref(),
        Some(a.holder_identity.as_str())
    );
    assert!(
        a.holder_identity.starts_with(&format!("{}_", a.lease_name)),
        "{}",
        a.holder_identity
    );
    assert!(spec.renew_time.is_some());

    assert_eq!(
        endpoint_groups(&client).await,
        vec![
            (6443, strings(&["10.0.0.1", "10.0.0.2"])),
            (7443, strings(&["127.0.0.1"])),
        ]
    );
    assert_eq!(
        slice_groups(&client).await,
        vec![
            (
                "kubernetes".to_string(),
                6443,
                strings(&["10.0.0.1", "10.0.0.2"])
            ),
            ("kubernetes-7443".to_string(), 7443, strings(&["127.0.0.1"])),
        ]
    );

    // B stops renewing: 20 s later it is no longer listed, though its Lease stays.
    renewed_ago(&client, &b, SignedDuration::from_secs(20)).await;
    apiserver_endpoints::reconcile(&client, &a)
        .await
        .expect("reconcile");
    assert_eq!(
        endpoint_groups(&client).await,
        vec![
            (6443, strings(&["10.0.0.2"])),
            (7443, strings(&["127.0.0.1"]))
        ]
    );
    assert!(leases.get_opt(&b.lease_name).await.expect("get").is_some());

    // C's Lease runs out its own hour: it is deleted, and so is its port's slice.
    renewed_ago(&client, &c, SignedDuration::from_secs(3601)).await;
    apiserver_endpoints::reconcile(&client, &a)
        .await
        .expect("reconcile");
    assert!(leases.get_opt(&c.lease_name).await.expect("get").is_none());
    assert_eq!(
        endpoint_groups(&client).await,
        vec![(6443, strings(&["10.0.0.2"]))]
    );
    assert_eq!(
        slice_groups(&client).await,
        vec![("kubernetes".to_string(), 6443, strings(&["10.0.0.2"]))]
    );

    // B comes back: listed again at its next renewal.
    apiserver_endpoints::reconcile(&client, &b)
        .await
        .expect("reconcile");
    assert_eq!(
        endpoint_groups(&client).await,
        vec![(6443, strings(&["10.0.0.1", "10.0.0.2"]))]
    );

    // A stops cleanly: its Lease goes and it is no longer listed.
    apiserver_endpoints::run(client.clone(), a.clone(), async {}).await;
    assert!(leases.get_opt(&a.lease_name).await.expect("get").is_none());
    assert_eq!(
        endpoint_groups(&client).await,
        vec![(6443, strings(&["10.0.0.1"]))]
    );
}
