//! Simulated nodes against the real registry over SQLite, through the in-process client.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod};
use serde_json::json;
use skiff_apiserver::registry::Registry;
use skiff_apiserver::LocalClient;
use skiff_client::{Api, Client, DeleteOptions};
use skiff_node::simulated::{self, PodTimelineConfig, SimulatedNodesConfig, SimulatedNodesError};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

const DEADLINE: Duration = Duration::from_secs(20);

async fn cluster() -> (tempfile::TempDir, Arc<dyn Client>) {
    let dir = tempfile::tempdir().unwrap();
    let store = skiff_store::SqliteStore::open(&dir.path().join("store.db")).unwrap();
    let registry = Registry::new(Arc::new(store));
    skiff_apiserver::system::ensure_builtin_namespaces(&registry)
        .await
        .unwrap();
    (dir, Arc::new(LocalClient::new(registry)))
}

fn config(count: u32) -> SimulatedNodesConfig {
    SimulatedNodesConfig {
        heartbeat_interval: Duration::from_millis(200),
        status_report_interval: Duration::from_secs(1),
        pod_timeline: PodTimelineConfig {
            start_delay_min: Duration::ZERO,
            start_delay_max: Duration::from_millis(100),
            termination_delay: Duration::ZERO,
        },
        ..SimulatedNodesConfig::with_count(count)
    }
}

/// Simulated nodes running in the background until the returned sender fires.
fn start(
    client: &Arc<dyn Client>,
    config: SimulatedNodesConfig,
) -> (
    oneshot::Sender<()>,
    JoinHandle<Result<(), SimulatedNodesError>>,
) {
    let (stop, stopped) = oneshot::channel::<()>();
    let handle = tokio::spawn(simulated::run(client.clone(), config, async {
        let _ = stopped.await;
    }));
    (stop, handle)
}

async fn stop(
    agent: (
        oneshot::Sender<()>,
        JoinHandle<Result<(), SimulatedNodesError>>,
    ),
) {
    let (stop, handle) = agent;
    stop.send(()).unwrap();
    tokio::time::timeout(DEADLINE, handle)
        .await
        .expect("the agent stops on shutdown")
        .unwrap()
        .unwrap();
}

/// Polls `check` until it yields a value or the deadline passes.
async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn bound_pod(name: &str, node: &str) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"nodeName": node, "containers": [{"name": "app", "image": "nginx:1.25"}]},
    }))
    .unwrap()
}

fn is_ready(pod: &Pod) -> bool {
    let status = pod.status.as_ref();
    status.and_then(|s| s.phase.as_deref()) == Some("Running")
        && status
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

async fn wait_ready(pods: &Api<Pod>, name: &str) -> Pod {
    eventually(&format!("pod {name} to be ready"), || async {
        pods.get(name).await.ok().filter(is_ready)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_register_heartbeat_and_run_pods() {
    let (_dir, client) = cluster().await;
    let agent = start(&client, config(2));
    let nodes: Api<Node> = Api::new(client.clone(), None).unwrap();
    let leases: Api<Lease> = Api::new(client.clone(), Some("kube-node-lease")).unwrap();
    let pods: Api<Pod> = Api::new(client.clone(), Some("default")).unwrap();

    // Nodes: registered, labelled and ready.
    let node = eventually("sim-node-2 to register", || async {
        nodes.get_opt("sim-node-2").await.unwrap()
    })
    .await;
    let labels = node.metadata.labels.clone().unwrap();
    assert_eq!(labels["kubernetes.io/hostname"], "sim-node-2");
    assert_eq!(labels["kubernetes.io/os"], "linux");
    assert_eq!(labels["skiff.dev/simulated"], "true");
    let status = node.status.clone().unwrap();
    assert_eq!(status.capacity.as_ref().unwrap()["pods"].0, "110");
    let ready = status
        .conditions
        .as_ref()
        .unwrap()
        .iter()
        .find(|c| c.type_ == "Ready")
        .unwrap()
        .clone();
    assert_eq!(ready.status, "True");
    assert_eq!(ready.reason.as_deref(), Some("KubeletReady"));
    assert_eq!(status.addresses.unwrap()[0].address, "127.0.0.2");
    assert!(nodes.get_opt("sim-node-1").await.unwrap().is_some());
    assert!(nodes.get_opt("sim-node-3").await.unwrap().is_none());

    // Leases: one per node, owned by it, renewed every heartbeat.
    let lease = eventually("the lease of sim-node-2", || async {
        leases.get_opt("sim-node-2").await.unwrap()
    })
    .await;
    let spec = lease.spec.clone().unwrap();
    assert_eq!(spec.holder_identity.as_deref(), Some("sim-node-2"));
    let owner = &lease.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.uid.as_str()),
        ("Node", node.metadata.uid.as_deref().unwrap())
    );
    let first_renewal = spec.renew_time.unwrap();
    eventually("the lease to be renewed", || async {
        let renewed = leases.get("sim-node-2").await.unwrap().spec?.renew_time?;
        (renewed > first_renewal).then_some(())
    })
    .await;
    // Node status: heartbeat times move on the report interval, transitions stay.
    let heartbeat = ready.last_heartbeat_time.clone().unwrap();
    let refreshed = eventually("a node status report", || async {
        let node = nodes.get("sim-node-2").await.unwrap();
        let ready = node
            .status?
            .conditions?
            .into_iter()
            .find(|c| c.type_ == "Ready")?;
        (ready.last_heartbeat_time.as_ref()? > &heartbeat).then_some(ready)
    })
    .await;
    assert_eq!(refreshed.last_transition_time, ready.last_transition_time);

    // A pod bound to a node runs and becomes ready with an address from the node's range.
    pods.create(&bound_pod("web", "sim-node-2")).await.unwrap();
    let web = wait_ready(&pods, "web").await;
    let status = web.status.clone().unwrap();
    assert!(status.pod_ip.as_deref().unwrap().starts_with("10.244.1."));
    assert_eq!(status.host_ip.as_deref(), Some("127.0.0.2"));
    assert!(status.start_time.is_some());
    let container = &status.container_statuses.as_ref().unwrap()[0];
    assert!(container.ready);
    assert!(container
        .container_id
        .as_deref()
        .unwrap()
        .starts_with("sim://"));
    assert!(container.state.as_ref().unwrap().running.is_some());

    // Once ready, the pod is left alone: a later pod's events pass and it was not rewritten.
    pods.create(&bound_pod("api", "sim-node-1")).await.unwrap();
    let api = wait_ready(&pods, "api").await;
    assert!(api.status.unwrap().pod_ip.unwrap().starts_with("10.244.0."));
    let again = pods.get("web").await.unwrap();
    assert_eq!(
        again.metadata.resource_version,
        web.metadata.resource_version
    );

    // Deleting it (with the default grace period) ends with the pod gone.
    let pending = pods.delete("web", &DeleteOptions::default()).await.unwrap();
    assert!(pending.is_some(), "a running pod is deleted gracefully");
    eventually("web to be gone", || async {
        pods.get_opt("web").await.unwrap().is_none().then_some(())
    })
    .await;

    stop(agent).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_agent_keeps_running_pods_running() {
    let (_dir, client) = cluster().await;
    let pods: Api<Pod> = Api::new(client.clone(), Some("default")).unwrap();

    let agent = start(&client, config(1));
    pods.create(&bound_pod("first", "sim-node-1"))
        .await
        .unwrap();
    let first = wait_ready(&pods, "first").await;
    stop(agent).await;

    let agent = start(&client, config(1));
    pods.create(&bound_pod("second", "sim-node-1"))
        .await
        .unwrap();
    let second = wait_ready(&pods, "second").await;
    let first_again = pods.get("first").await.unwrap();
    assert_eq!(
        first_again.metadata.resource_version, first.metadata.resource_version,
        "the running pod was not rewritten"
    );
    assert_ne!(
        first_again.status.unwrap().pod_ip,
        second.status.unwrap().pod_ip,
        "the restarted agent does not hand out an address in use"
    );
    stop(agent).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_on_other_nodes_are_left_alone() {
    let (_dir, client) = cluster().await;
    let pods: Api<Pod> = Api::new(client.clone(), Some("default")).unwrap();
    let agent = start(&client, config(1));
    pods.create(&bound_pod("elsewhere", "real-node"))
        .await
        .unwrap();
    pods.create(&bound_pod("here", "sim-node-1")).await.unwrap();
    wait_ready(&pods, "here").await;
    let elsewhere = pods.get("elsewhere").await.unwrap();
    let status = elsewhere.status.unwrap();
    assert_eq!(status.phase.as_deref(), Some("Pending"));
    assert!(status.start_time.is_none());
    stop(agent).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_pods_on_twenty_nodes_all_become_ready() {
    const PODS: usize = 1000;
    const NODES: u32 = 20;
    let (_dir, client) = cluster().await;
    let pods: Api<Pod> = Api::new(client.clone(), Some("default")).unwrap();
    let agent = start(&client, config(NODES));
    let started = std::time::Instant::now();
    for i in 0..PODS {
        let node = format!("sim-node-{}", i as u32 % NODES + 1);
        pods.create(&bound_pod(&format!("p-{i}"), &node))
            .await
            .unwrap();
    }
    let created = started.elapsed();
    let listed = eventually("every pod to be ready", || async {
        let (all, _) = pods.list(&Default::default()).await.unwrap();
        (all.iter().filter(|p| is_ready(p)).count() == PODS).then_some(all)
    })
    .await;
    let mut addresses: Vec<String> = listed
        .iter()
        .map(|p| p.status.as_ref().unwrap().pod_ip.clone().unwrap())
        .collect();
    addresses.sort();
    addresses.dedup();
    assert_eq!(addresses.len(), PODS, "every pod has its own address");
    eprintln!(
        "{PODS} pods created in {created:?}, all ready after {:?}",
        started.elapsed()
    );
    stop(agent).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timers_drive_readiness_delays_and_scripted_exits() {
    let (_dir, client) = cluster().await;
    let pods: Api<Pod> = Api::new(client.clone(), Some("default")).unwrap();
    let agent = start(&client, config(1));

    let mut slow = bound_pod("slow", "sim-node-1");
    let probe = json!({"initialDelaySeconds": 1, "tcpSocket": {"port": 80}});
    slow.spec.as_mut().unwrap().containers[0].readiness_probe =
        Some(serde_json::from_value(probe).unwrap());
    pods.create(&slow).await.unwrap();
    let mut failing = bound_pod("failing", "sim-node-1");
    failing.metadata.annotations = Some(
        [(
            skiff_node::simulated::timeline::FAIL_AFTER_ANNOTATION.to_string(),
            "1s".to_string(),
        )]
        .into(),
    );
    failing.spec.as_mut().unwrap().restart_policy = Some("Never".to_string());
    pods.create(&failing).await.unwrap();

    let running = eventually("slow to run", || async {
        let pod = pods.get("slow").await.unwrap();
        (pod.status.as_ref()?.phase.as_deref() == Some("Running")).then_some(pod)
    })
    .await;
    let started = running
        .status
        .as_ref()
        .unwrap()
        .container_statuses
        .as_ref()
        .unwrap()[0]
        .state
        .as_ref()
        .unwrap()
        .running
        .clone()
        .unwrap()
        .started_at
        .unwrap();
    let ready = wait_ready(&pods, "slow").await;
    let became_ready = ready
        .status
        .unwrap()
        .conditions
        .unwrap()
        .into_iter()
        .find(|c| c.type_ == "Ready")
        .unwrap()
        .last_transition_time
        .unwrap();
    assert!(became_ready.0 >= started.0 + jiff::SignedDuration::from_secs(1));

    let failed = eventually("failing to fail", || async {
        let pod = pods.get("failing").await.unwrap();
        (pod.status.as_ref()?.phase.as_deref() == Some("Failed")).then_some(pod)
    })
    .await;
    let terminated = failed.status.unwrap().container_statuses.unwrap()[0]
        .state
        .clone()
        .unwrap()
        .terminated
        .unwrap();
    assert_eq!(
        (terminated.exit_code, terminated.reason.as_deref()),
        (1, Some("Error"))
    );
    stop(agent).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_node_registers_again_on_its_next_report() {
    let (_dir, client) = cluster().await;
    let nodes: Api<Node> = Api::new(client.clone(), None).unwrap();
    let agent = start(&client, config(1));
    let first = eventually("sim-node-1 to register", || async {
        nodes.get_opt("sim-node-1").await.unwrap()
    })
    .await;
    nodes
        .delete("sim-node-1", &DeleteOptions::default())
        .await
        .unwrap();
    let second = eventually("sim-node-1 to register again", || async {
        nodes.get_opt("sim-node-1").await.unwrap()
    })
    .await;
    assert_ne!(second.metadata.uid, first.metadata.uid);
    let leases: Api<Lease> = Api::new(client.clone(), Some("kube-node-lease")).unwrap();
    eventually("the lease to name the new node as owner", || async {
        let lease = leases.get("sim-node-1").await.unwrap();
        let owner = lease.metadata.owner_references?.into_iter().next()?;
        (Some(owner.uid) == second.metadata.uid).then_some(())
    })
    .await;
    stop(agent).await;
}

#[tokio::test]
async fn a_node_annotated_silent_stops_heartbeating_and_reports_ready_when_back() {
    use skiff_api::patch::PatchType;
    use skiff_node::simulated::node::HEARTBEAT_STOPPED_ANNOTATION;

    let (_dir, client) = cluster().await;
    let agent = start(&client, config(1));
    let nodes: Api<Node> = Api::new(client.clone(), None).unwrap();
    let leases: Api<Lease> = Api::new(client.clone(), Some("kube-node-lease")).unwrap();
    let renewed = || async {
        leases
            .get_opt("sim-node-1")
            .await
            .unwrap()
            .and_then(|l| l.spec?.renew_time)
            .map(|t| t.0)
    };
    eventually("the lease", || async { renewed().await }).await;

    nodes
        .patch(
            "sim-node-1",
            PatchType::Merge,
            json!({"metadata": {"annotations": {HEARTBEAT_STOPPED_ANNOTATION: "true"}}}),
            false,
        )
        .await
        .unwrap();
    // A renewal already under way may land; after that the time stands still.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let silent_since = renewed().await;
    let watched = tokio::time::Instant::now();
    while watched.elapsed() < Duration::from_millis(1000) {
        assert_eq!(
            renewed().await,
            silent_since,
            "a silent node renewed its lease"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // As the node lifecycle controller would: Ready goes Unknown.
    let mut node = nodes.get("sim-node-1").await.unwrap();
    for c in node.status.as_mut().unwrap().conditions.as_mut().unwrap() {
        c.status = "Unknown".into();
    }
    nodes.update_status(&node).await.unwrap();
    nodes
        .patch(
            "sim-node-1",
            PatchType::Merge,
            json!({"metadata": {"annotations": {HEARTBEAT_STOPPED_ANNOTATION: null}}}),
            false,
        )
        .await
        .unwrap();
    eventually("the lease renewed and Ready reported again", || async {
        let ready = nodes
            .get("sim-node-1")
            .await
            .unwrap()
            .status?
            .conditions?
            .into_iter()
            .any(|c| c.type_ == "Ready" && c.status == "True");
        (ready && renewed().await > silent_since).then_some(())
    })
    .await;
    stop(agent).await;
}
