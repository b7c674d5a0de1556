//! The scheduler against a real in-process API server over SQLite.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Event, Node, Pod};
use serde_json::json;
use skiff_api::patch::PatchType;
use skiff_apiserver::registry::Registry;
use skiff_apiserver::LocalClient;
use skiff_client::{Api, Client, ListOptions};

async fn cluster() -> (tempfile::TempDir, Arc<dyn Client>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = skiff_store::SqliteStore::open(&dir.path().join("s.db")).expect("store");
    let registry = Registry::new(Arc::new(store));
    skiff_apiserver::system::ensure_builtin_namespaces(&registry)
        .await
        .expect("namespaces");
    (dir, Arc::new(LocalClient::new(registry)))
}

async fn add_ready_node(nodes: &Api<Node>, name: &str, cpu: &str, memory: &str) {
    let node: Node = serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}}
    }))
    .expect("node");
    nodes.create(&node).await.expect("create node");
    nodes
        .patch(
            name,
            PatchType::Merge,
            json!({"status": {
                "allocatable": {"cpu": cpu, "memory": memory, "pods": "110"},
                "capacity": {"cpu": cpu, "memory": memory, "pods": "110"},
                "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}]
            }}),
            true,
        )
        .await
        .expect("node status");
}

fn web_pod(name: &str, cpu: &str, memory: &str) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"app": "web"}},
        "spec": {"containers": [{
            "name": "web", "image": "nginx",
            "resources": {"requests": {"cpu": cpu, "memory": memory}}
        }]}
    }))
    .expect("pod")
}

/// Polls `check` until it returns `Some`, failing the test after ten seconds.
async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn node_of(pod: &Pod) -> Option<String> {
    pod.spec.as_ref().and_then(|s| s.node_name.clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binds_spreads_reports_and_retries() {
    let _ = tracing_subscriber::fmt().with_test_writer().try_init();
    let (_dir, client) = cluster().await;
    let nodes: Api<Node> = Api::new(client.clone(), None).expect("nodes api");
    let pods: Api<Pod> = Api::new(client.clone(), Some("default")).expect("pods api");
    let events: Api<Event> = Api::new(client.clone(), Some("default")).expect("events api");
    add_ready_node(&nodes, "node-1", "2", "4Gi").await;
    add_ready_node(&nodes, "node-2", "2", "4Gi").await;
    for i in 0..4 {
        pods.create(&web_pod(&format!("web-{i}"), "500m", "1Gi"))
            .await
            .expect("create pod");
    }
    pods.create(&web_pod("huge", "16", "1Gi"))
        .await
        .expect("create pod");

    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let scheduler = tokio::spawn(skiff_scheduler::run(client.clone(), async move {
        let _ = stopped.await;
    }));

    let placement = eventually("the four web pods to be bound", || {
        let pods = pods.clone();
        async move {
            let (all, _) = pods.list(&ListOptions::default()).await.ok()?;
            let placed: BTreeMap<String, String> = all
                .iter()
                .filter(|p| p.metadata.name.as_deref() != Some("huge"))
                .map(|p| Some((p.metadata.name.clone()?, node_of(p)?)))
                .collect::<Option<_>>()?;
            (placed.len() == 4).then_some(placed)
        }
    })
    .await;
    let mut per_node: BTreeMap<&str, usize> = BTreeMap::new();
    for node in placement.values() {
        *per_node.entry(node.as_str()).or_insert(0) += 1;
    }
    assert_eq!(per_node, BTreeMap::from([("node-1", 2), ("node-2", 2)]));

    let scheduled = eventually("a Scheduled event for web-0", || {
        let events = events.clone();
        async move {
            let (all, _) = events.list(&ListOptions::default()).await.ok()?;
            all.into_iter().find(|e| {
                e.reason.as_deref() == Some("Scheduled")
                    && e.involved_object.name.as_deref() == Some("web-0")
            })
        }
    })
    .await;
    assert_eq!(scheduled.type_.as_deref(), Some("Normal"));
    assert_eq!(
        scheduled.message.as_deref(),
        Some(
            format!(
                "Successfully assigned default/web-0 to {}",
                placement["web-0"]
            )
            .as_str()
        )
    );
    // Written through events.k8s.io/v1 as kube-scheduler writes it: no deprecated source,
    // count or timestamps in the core view, the reporting controller and action instead.
    assert_eq!(
        scheduled.reporting_component.as_deref(),
        Some("default-scheduler")
    );
    assert_eq!(scheduled.action.as_deref(), Some("Binding"));
    assert!(
        scheduled
            .reporting_instance
            .as_deref()
            .is_some_and(|i| i.starts_with("default-scheduler-")),
        "{:?}",
        scheduled.reporting_instance
    );
    assert!(scheduled.event_time.is_some(), "{scheduled:?}");
    assert_eq!(scheduled.count, None, "{scheduled:?}");
    assert_eq!(scheduled.first_timestamp, None, "{scheduled:?}");
    assert_eq!(
        scheduled.source.and_then(|s| s.component),
        None,
        "no deprecated source"
    );

    let expected = "0/2 nodes are available: 2 Insufficient cpu. no new claims to deallocate, preemption: 0/2 nodes are available: 2 No preemption victims found for incoming pod.";
    let failed = eventually("a FailedScheduling event for huge", || {
        let events = events.clone();
        async move {
            let (all, _) = events.list(&ListOptions::default()).await.ok()?;
            all.into_iter().find(|e| {
                e.reason.as_deref() == Some("FailedScheduling")
                    && e.involved_object.name.as_deref() == Some("huge")
            })
        }
    })
    .await;
    assert_eq!(failed.type_.as_deref(), Some("Warning"));
    assert_eq!(failed.message.as_deref(), Some(expected));

    let condition = eventually("PodScheduled=False on huge", || {
        let pods = pods.clone();
        async move {
            let pod = pods.get("huge").await.ok()?;
            pod.status?
                .conditions?
                .into_iter()
                .find(|c| c.type_ == "PodScheduled" && c.status == "False")
        }
    })
    .await;
    assert_eq!(condition.reason.as_deref(), Some("Unschedulable"));
    assert_eq!(condition.message.as_deref(), Some(expected));
    assert!(node_of(&pods.get("huge").await.expect("huge")).is_none());

    // A node big enough arrives: the waiting pod is retried and lands there.
    add_ready_node(&nodes, "node-3", "32", "64Gi").await;
    let node = eventually("huge to be bound after node-3 joined", || {
        let pods = pods.clone();
        async move { node_of(&pods.get("huge").await.ok()?) }
    })
    .await;
    assert_eq!(node, "node-3");
    let huge = pods.get("huge").await.expect("huge");
    let scheduled_condition = huge
        .status
        .and_then(|s| s.conditions)
        .and_then(|cs| cs.into_iter().find(|c| c.type_ == "PodScheduled"))
        .expect("PodScheduled condition");
    assert_eq!(scheduled_condition.status, "True");

    stop.send(()).expect("scheduler still running");
    scheduler
        .await
        .expect("scheduler task")
        .expect("scheduler stopped cleanly");
}
