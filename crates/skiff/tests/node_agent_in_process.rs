//! The node agent with real processes, against the in-process API over SQLite (which the
//! node crate may not depend on, even for its tests, so they live here). Every test checks
//! that the process groups it caused are gone when it ends.
//!
//! Run with `cargo test -p skiff --test node_agent_in_process`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Event, Pod};
use serde_json::{json, Value};
use skiff_apiserver::LocalClient;
use skiff_client::logs::{LogOptions, PodLogs};
use skiff_client::{Api, Client, DeleteOptions};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use skiff_node::agent::host_facts::HostFacts;
use skiff_node::agent::*;
use skiff_node::drain::TrafficDrain;

/// Process groups, read from `/proc` as the agent reads them.
mod process {
    /// Whether any live (not zombie) process is in group `pgid`.
    pub fn group_alive(pgid: i32) -> bool {
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return false;
        };
        entries
            .filter_map(Result::ok)
            .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
            .any(|pid| {
                let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
                // After the command's closing parenthesis: state, parent, group.
                let Some((_, rest)) = stat.rsplit_once(')') else {
                    return false;
                };
                let mut fields = rest.split_whitespace();
                let state = fields.next().unwrap_or("Z");
                let group = fields.nth(1).and_then(|g| g.parse::<i32>().ok());
                group == Some(pgid) && state != "Z" && state != "X"
            })
    }
}

const NODE: &str = "node-a";

/// An image whose first resolution panics, as a bug in an image store would.
const PANICS_ONCE: &str = "panics-once";

/// An image a fake registry serves.
const REMOTE_IMAGE: &str = "app:1";
/// An image whose pull the fake registry refuses with [`REGISTRY_ERROR`].
const BROKEN_IMAGE: &str = "registry.test/broken:1";
/// The fake registry's refusal.
const REGISTRY_ERROR: &str =
    "registry.test/team/broken:1: not found: manifest unknown: manifest unknown";
/// An image whose pull waits until the test opens [`TestImages::slow_gate`].
const SLOW_IMAGE: &str = "registry.test/slow:1";

/// The test catalog plus a fake registry: panics the first time [`PANICS_ONCE`] is looked
/// up, serves [`REMOTE_IMAGE`] and [`SLOW_IMAGE`], refuses [`BROKEN_IMAGE`], and records
/// every pull.
struct TestImages {
    images: SimpleImages,
    fired: std::sync::atomic::AtomicBool,
    pulled: std::sync::Mutex<Vec<String>>,
    slow_gate: tokio::sync::Semaphore,
    /// The images each garbage collection round was told are in use.
    gc_rounds: std::sync::Mutex<Vec<Vec<String>>>,
}

impl TestImages {
    fn pulls(&self) -> Vec<String> {
        self.pulled.lock().unwrap().clone()
    }

    fn remote(image: &str) -> ResolvedImage {
        let name = if image == REMOTE_IMAGE {
            "docker.io/library/app:1".to_string()
        } else {
            image.to_string()
        };
        ResolvedImage {
            cmd: vec!["sh".into()],
            env: vec![("PATH".into(), "/usr/bin:/bin".into())],
            image_id: format!(
                "{}@sha256:{}",
                name.split(':').next().unwrap(),
                "1".repeat(64)
            ),
            name,
            size: 1234,
            ..ResolvedImage::default()
        }
    }
}

#[async_trait::async_trait]
impl ImageService for TestImages {
    async fn find(&self, image: &str) -> Result<Option<ResolvedImage>, ImageLookupError> {
        if image == PANICS_ONCE && !self.fired.swap(true, std::sync::atomic::Ordering::SeqCst) {
            panic!("the image store broke on {image}");
        }
        if self.pulls().iter().any(|p| p == image) {
            return Ok(Some(Self::remote(image)));
        }
        self.images.find(image).await
    }

    async fn pull(
        &self,
        image: &str,
        credentials: &PullCredentials,
    ) -> Result<PulledImage, String> {
        let pulled = PulledImage {
            image: Self::remote(image),
            pull_duration: Duration::from_millis(3),
        };
        match image {
            REMOTE_IMAGE => {}
            SLOW_IMAGE => {
                let _permit = self.slow_gate.acquire().await.map_err(|e| e.to_string())?;
            }
            BROKEN_IMAGE => return Err(REGISTRY_ERROR.to_string()),
            _ => return self.images.pull(image, credentials).await,
        }
        self.pulled.lock().unwrap().push(image.to_string());
        Ok(pulled)
    }

    async fn collect_garbage(
        &self,
        in_use: &[String],
        _now: std::time::SystemTime,
    ) -> Result<(), ImageGcFailure> {
        self.gc_rounds.lock().unwrap().push(in_use.to_vec());
        Err(ImageGcFailure::FreeDiskSpace(GC_SHORTFALL.to_string()))
    }
}

/// What the fake image service's garbage collection always answers.
const GC_SHORTFALL: &str = "Failed to garbage collect required amount of images. Attempted to free 100 bytes, but only found 0 bytes eligible to free.";

struct Harness {
    images: Arc<TestImages>,
    _dir: tempfile::TempDir,
    data_dir: PathBuf,
    client: Arc<dyn Client>,
    pods: Api<Pod>,
    logs: Arc<dyn PodLogs>,
    stop: watch::Sender<bool>,
    agent: JoinHandle<Result<(), NodeAgentError>>,
}

async fn harness() -> Harness {
    harness_with(None).await
}

/// A harness whose node waits for `drain` before stopping containers; `busybox:2` is a
/// distinct image (its own imageID) for in-place updates.
async fn harness_with(drain: Option<Arc<dyn TrafficDrain>>) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let store = skiff_store::SqliteStore::open(&dir.path().join("s.db")).unwrap();
    let registry = skiff_apiserver::registry::Registry::new(Arc::new(store));
    skiff_apiserver::system::ensure_builtin_namespaces(&registry)
        .await
        .unwrap();
    let client: Arc<dyn Client> = Arc::new(LocalClient::new(registry));
    let data_dir = dir.path().join("data");
    let images = SimpleImages::new()
        .with("busybox", &[], &["sh"])
        .with("busybox:2", &[], &["sh"])
        .with(PANICS_ONCE, &[], &["sh"]);
    let images = Arc::new(TestImages {
        images,
        fired: std::sync::atomic::AtomicBool::new(false),
        pulled: std::sync::Mutex::new(Vec::new()),
        slow_gate: tokio::sync::Semaphore::new(0),
        gc_rounds: std::sync::Mutex::new(Vec::new()),
    });
    let mut config = NodeAgentConfig::new(
        NODE,
        data_dir.clone(),
        images.clone(),
        Arc::new(SimpleProber),
    );
    config.backoff = BackoffConfig {
        base: Duration::from_millis(200),
        max: Duration::from_secs(1),
    };
    config.heartbeat = Duration::from_secs(1);
    // The node's facts are fixed: its InternalIP (and so its pods' hostIP) is the default
    // route's address.
    config.host_facts = Arc::new(HostFacts {
        default_route_address: Some(std::net::Ipv4Addr::new(198, 18, 250, 7)),
        ..Default::default()
    });
    config.image_gc_period = Duration::from_millis(300);
    config.shutdown_grace = Duration::from_secs(3);
    if let Some(drain) = drain {
        config = config.with_traffic_drain(drain);
    }
    let agent = NodeAgent::new(client.clone(), config);
    let logs = agent.logs();
    let (stop, stopped) = watch::channel(false);
    let agent = tokio::spawn(agent.run(async move {
        let mut stopped = stopped;
        let _ = stopped.wait_for(|s| *s).await;
    }));
    Harness {
        images,
        _dir: dir,
        data_dir,
        pods: Api::new(client.clone(), Some("default")).unwrap(),
        client,
        logs,
        stop,
        agent,
    }
}

impl Harness {
    async fn create(&self, name: &str, spec: Value) -> Pod {
        let mut spec = spec;
        spec["nodeName"] = json!(NODE);
        let pod: Pod =
            serde_json::from_value(json!({"metadata": {"name": name}, "spec": spec})).unwrap();
        self.pods.create(&pod).await.unwrap()
    }

    /// Polls the pod until `check` holds; panics with the last state after `limit`.
    /// Waits (up to 10 s) for pod `name` to report Ready.
    async fn wait_ready(&self, name: &str) -> Pod {
        self.wait_for(name, Duration::from_secs(10), |p| {
            condition(p, "Ready").as_deref() == Some("True")
        })
        .await
    }

    /// Deletes pod `name` with a grace period of `seconds`, as `kubectl delete --grace-period`.
    async fn delete_with_grace(&self, name: &str, seconds: i64) {
        self.pods
            .delete(
                name,
                &DeleteOptions {
                    grace_period_seconds: Some(seconds),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
    }

    async fn wait_for(&self, name: &str, limit: Duration, check: impl Fn(&Pod) -> bool) -> Pod {
        let until = Instant::now() + limit;
        loop {
            let pod = self.pods.get(name).await.unwrap();
            if check(&pod) {
                return pod;
            }
            assert!(
                Instant::now() < until,
                "condition not reached; pod status: {}",
                serde_json::to_string_pretty(&pod.status).unwrap()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn wait_gone(&self, name: &str, limit: Duration) {
        let until = Instant::now() + limit;
        while self.pods.get_opt(name).await.unwrap().is_some() {
            assert!(Instant::now() < until, "pod {name} was not removed");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn pgids(&self, uid: &str) -> Vec<i32> {
        read_pgids(&self.data_dir, uid)
    }

    async fn log_text(
        &self,
        name: &str,
        options: LogOptions,
    ) -> Result<String, skiff_client::ApiError> {
        let mut stream = self.logs.logs("default", name, None, options).await?;
        let mut out = Vec::new();
        while let Some(chunk) = stream.next().await {
            out.extend_from_slice(&chunk.unwrap());
        }
        Ok(String::from_utf8(out).unwrap())
    }

    async fn events(&self, pod: &str) -> Vec<(String, String)> {
        let api: Api<Event> = Api::new(self.client.clone(), Some("default")).unwrap();
        let (events, _) = api.list(&Default::default()).await.unwrap();
        events
            .into_iter()
            .filter(|e| e.involved_object.name.as_deref() == Some(pod))
            .map(|e| (e.reason.unwrap_or_default(), e.message.unwrap_or_default()))
            .collect()
    }

    /// Waits until an event about `pod` matches; events are written in the background.
    async fn wait_event(&self, pod: &str, check: impl Fn(&str, &str) -> bool) {
        let until = Instant::now() + Duration::from_secs(5);
        loop {
            let events = self.events(pod).await;
            if events.iter().any(|(r, m)| check(r, m)) {
                return;
            }
            assert!(Instant::now() < until, "no matching event in {events:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn shutdown(self) {
        let _ = self.stop.send(true);
        tokio::time::timeout(Duration::from_secs(20), self.agent)
            .await
            .expect("the agent stops in time")
            .unwrap()
            .unwrap();
    }
}

fn read_pgids(data_dir: &Path, uid: &str) -> Vec<i32> {
    std::fs::read_to_string(sandbox::pod_dir(data_dir, uid).join("pgids"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_whitespace().next()?.parse().ok())
        .collect()
}

fn assert_all_dead(pgids: &[i32]) {
    for pgid in pgids {
        assert!(
            !process::group_alive(*pgid),
            "process group {pgid} is still alive"
        );
    }
}

/// Waits until every process group in `pgids` is gone (a forced deletion removes the pod
/// object first and its processes after).
async fn wait_all_dead(pgids: &[i32], limit: Duration) {
    assert!(!pgids.is_empty(), "the pod recorded no process group");
    let until = Instant::now() + limit;
    while let Some(alive) = pgids.iter().find(|g| process::group_alive(**g)) {
        assert!(
            Instant::now() < until,
            "process group {alive} is still alive after {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn condition(pod: &Pod, type_: &str) -> Option<String> {
    pod.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| c.status.clone())
}

fn container_status(pod: &Pod) -> Option<k8s_openapi::api::core::v1::ContainerStatus> {
    pod.status
        .as_ref()?
        .container_statuses
        .as_ref()?
        .first()
        .cloned()
}

fn waiting_reason(pod: &Pod) -> Option<String> {
    container_status(pod)?.state?.waiting?.reason
}

fn uid(pod: &Pod) -> String {
    pod.metadata.uid.clone().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_runs_becomes_ready_logs_and_goes_away_with_its_processes() {
    let h = harness().await;
    let created = h
        .create(
            "web",
            json!({"containers": [{"name": "c", "image": "busybox",
                "command": ["sh", "-c", "echo hi from $(POD); echo host=$(cat /proc/sys/kernel/hostname); sleep 30"],
                "env": [{"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]}]}),
        )
        .await;
    let pod = h.wait_ready("web").await;
    let status = pod.status.clone().unwrap();
    assert_eq!(status.phase.as_deref(), Some("Running"));
    assert!(status.pod_ip.unwrap().starts_with("127.128."));
    assert_eq!(status.host_ip.as_deref(), Some("198.18.250.7"));
    assert!(status.start_time.is_some());
    let cs = container_status(&pod).unwrap();
    assert!(cs.state.unwrap().running.is_some());
    assert_eq!(cs.restart_count, 0);

    let until = Instant::now() + Duration::from_secs(5);
    let logs = loop {
        let text = h.log_text("web", LogOptions::default()).await.unwrap();
        if text.contains("host=") || Instant::now() > until {
            break text;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(logs.contains("hi from web"), "{logs}");
    assert!(
        sandbox::isolation_available(),
        "a container gets the pod's hostname only when the node runs as root with `unshare` \
         (util-linux) installed: run the tests as root"
    );
    assert!(
        logs.contains("host=web"),
        "the hostname is the pod's: {logs}"
    );
    let err = h
        .log_text(
            "web",
            LogOptions {
                previous: true,
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(
        err.message,
        "previous terminated container \"c\" in pod \"web\" not found"
    );

    let pgids = h.pgids(&uid(&created));
    assert_eq!(pgids.len(), 1);
    assert!(process::group_alive(pgids[0]));
    h.delete_with_grace("web", 5).await;
    h.wait_gone("web", Duration::from_secs(10)).await;
    assert_all_dead(&pgids);
    let expected = [
        (
            "Pulled",
            "Container image \"busybox\" already present on machine and can be accessed by the pod",
        ),
        ("Created", "Created container: c"),
        ("Started", "Started container c"),
        ("Killing", "Stopping container c"),
    ];
    for (reason, message) in expected {
        h.wait_event("web", |r, m| r == reason && m == message)
            .await;
    }
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_containers_crash_loop_with_growing_restart_counts() {
    let h = harness().await;
    h.create(
        "crash",
        json!({"restartPolicy": "OnFailure", "containers": [{"name": "c", "image": "busybox",
            "command": ["sh", "-c", "echo run; exit 1"]}]}),
    )
    .await;
    let pod = h
        .wait_for("crash", Duration::from_secs(15), |p| {
            waiting_reason(p).as_deref() == Some("CrashLoopBackOff")
                && container_status(p).is_some_and(|c| c.restart_count >= 2)
        })
        .await;
    let cs = container_status(&pod).unwrap();
    let last = cs.last_state.unwrap().terminated.unwrap();
    assert_eq!(last.exit_code, 1);
    assert_eq!(last.reason.as_deref(), Some("Error"));
    let message = cs.state.unwrap().waiting.unwrap().message.unwrap();
    assert!(
        message.starts_with("back-off ")
            && message.contains("restarting failed container=c pod=crash_default("),
        "{message}"
    );
    assert_eq!(pod.status.unwrap().phase.as_deref(), Some("Running"));
    let previous = h
        .log_text(
            "crash",
            LogOptions {
                previous: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(previous, "run\n");
    h.wait_event("crash", |r, m| {
        r == "BackOff"
            && m.starts_with("Back-off restarting failed container c in pod crash_default(")
    })
    .await;
    let pgids = h.pgids(&uid(&pod_named(&h, "crash").await));
    h.shutdown().await;
    assert_all_dead(&pgids);
}

async fn pod_named(h: &Harness, name: &str) -> Pod {
    h.pods.get(name).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_container_ignoring_sigterm_is_killed_when_its_grace_period_ends() {
    let h = harness().await;
    let created = h
        .create(
            "stubborn",
            json!({"containers": [{"name": "c", "image": "busybox",
                "command": ["sh", "-c", "trap '' TERM; echo ready; while true; do sleep 0.2; done"]}]}),
        )
        .await;
    h.wait_ready("stubborn").await;
    let pgids = h.pgids(&uid(&created));
    let started = Instant::now();
    h.delete_with_grace("stubborn", 2).await;
    // The pod goes only once its processes are gone: not before the grace period ends (the
    // container ignores SIGTERM), and at all only because SIGKILL follows, within the wait.
    h.wait_gone("stubborn", Duration::from_secs(10)).await;
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(1_900),
        "killed before the grace period ended: {took:?}"
    );
    assert_all_dead(&pgids);
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pre_stop_runs_before_sigterm() {
    let h = harness().await;
    let out = h.data_dir.parent().unwrap().join("out");
    std::fs::create_dir_all(&out).unwrap();
    let isolated = sandbox::isolation_available();
    // With its own mounts the container sees the host directory at /tmp/out.
    let seen_at = if isolated {
        "/tmp/out".to_string()
    } else {
        out.display().to_string()
    };
    let created = h
        .create(
            "hooks",
            json!({"volumes": [{"name": "out", "hostPath": {"path": out.display().to_string()}}],
                "containers": [{"name": "c", "image": "busybox",
                "volumeMounts": [{"name": "out", "mountPath": "/tmp/out"}],
                "command": ["sh", "-c", format!("trap 'echo term >> {seen_at}/order; exit 0' TERM; while true; do sleep 0.1; done")],
                "lifecycle": {"preStop": {"exec": {"command": ["sh", "-c", format!("echo prestop >> {seen_at}/order")]}}}}]}),
        )
        .await;
    h.wait_ready("hooks").await;
    let pgids = h.pgids(&uid(&created));
    h.delete_with_grace("hooks", 10).await;
    h.wait_gone("hooks", Duration::from_secs(10)).await;
    let order = std::fs::read_to_string(out.join("order")).unwrap();
    assert_eq!(order, "prestop\nterm\n");
    assert_all_dead(&pgids);
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_images_wait_in_err_image_pull_then_image_pull_back_off() {
    let h = harness().await;
    h.create(
        "ghost",
        json!({"containers": [{"name": "c", "image": "no-such-image:1.0"}]}),
    )
    .await;
    let mut seen = Vec::new();
    let until = Instant::now() + Duration::from_secs(10);
    while seen.len() < 2 && Instant::now() < until {
        let pod = h.pods.get("ghost").await.unwrap();
        if let Some(reason) = waiting_reason(&pod) {
            if seen.last() != Some(&reason)
                && (reason == "ErrImagePull" || reason == "ImagePullBackOff")
            {
                seen.push(reason);
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(seen, vec!["ErrImagePull", "ImagePullBackOff"]);
    let pod = h.pods.get("ghost").await.unwrap();
    assert_eq!(pod.status.unwrap().phase.as_deref(), Some("Pending"));
    h.wait_event("ghost", |r, m| {
        r == "Failed" && m.starts_with("Failed to pull image \"no-such-image:1.0\": ")
    })
    .await;
    h.wait_event("ghost", |r, m| {
        r == "BackOff" && m == "Back-off pulling image \"no-such-image:1.0\""
    })
    .await;
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_liveness_probes_restart_the_container() {
    let h = harness().await;
    h.create(
        "live",
        json!({"containers": [{"name": "c", "image": "busybox",
            "command": ["sh", "-c", "touch /tmp/healthy; sleep 1; rm -f /tmp/healthy; sleep 60"],
            "livenessProbe": {"exec": {"command": ["cat", "/tmp/healthy"]},
                "periodSeconds": 1, "failureThreshold": 1}}],
            "terminationGracePeriodSeconds": 2}),
    )
    .await;
    let pod = h
        .wait_for("live", Duration::from_secs(15), |p| {
            container_status(p).is_some_and(|c| c.restart_count >= 1)
        })
        .await;
    h.wait_event("live", |r, m| {
        r == "Unhealthy" && m.starts_with("Liveness probe failed: ")
    })
    .await;
    h.wait_event("live", |r, m| {
        r == "Killing" && m == "Container c failed liveness probe, will be restarted"
    })
    .await;
    let pgids = h.pgids(&uid(&pod));
    h.shutdown().await;
    assert_all_dead(&pgids);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_the_agent_leaves_no_process_behind() {
    let h = harness().await;
    let a = h
        .create(
            "a",
            json!({"terminationGracePeriodSeconds": 30, "containers": [{"name": "c", "image": "busybox",
                "command": ["sh", "-c", "trap '' TERM; while true; do sleep 0.2; done"]}]}),
        )
        .await;
    let b = h
        .create(
            "b",
            json!({"initContainers": [{"name": "init", "image": "busybox", "command": ["sh", "-c", "echo init"]}],
                "containers": [{"name": "c", "image": "busybox", "command": ["sleep", "60"]}]}),
        )
        .await;
    for name in ["a", "b"] {
        h.wait_ready(name).await;
    }
    let b_now = h.pods.get("b").await.unwrap();
    let init = b_now.status.unwrap().init_container_statuses.unwrap()[0].clone();
    assert_eq!(
        init.state.unwrap().terminated.unwrap().reason.as_deref(),
        Some("Completed")
    );
    let mut pgids = h.pgids(&uid(&a));
    pgids.extend(h.pgids(&uid(&b)));
    assert_eq!(pgids.len(), 3);
    tokio::time::timeout(Duration::from_secs(10), h.shutdown())
        .await
        .expect("shutdown is bounded by the pods' grace periods");
    assert_all_dead(&pgids);
}

fn named_status(pod: &Pod, name: &str) -> k8s_openapi::api::core::v1::ContainerStatus {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|all| all.iter().find(|c| c.name == name))
        .cloned()
        .unwrap_or_else(|| panic!("no status for container {name}"))
}

/// Changes container `name`'s image, as `kubectl set image` or OpenKruise would: read, change,
/// write, and again on a conflict with the agent's own status writes.
async fn set_image(h: &Harness, pod: &str, name: &str, image: &str) {
    for _ in 0..20 {
        let mut current = h.pods.get(pod).await.unwrap();
        for c in current
            .spec
            .as_mut()
            .unwrap()
            .containers
            .iter_mut()
            .filter(|c| c.name == name)
        {
            c.image = Some(image.to_string());
        }
        match h.pods.update(&current).await {
            Ok(_) => return,
            Err(e) if e.is_conflict() => continue,
            Err(e) => panic!("updating {pod}: {e}"),
        }
    }
    panic!("updating {pod}: still conflicting after 20 attempts");
}

const SERVE_UNTIL_TERM: &str = "trap 'exit 0' TERM; echo up; while true; do sleep 0.1; done";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_image_restarts_that_container_in_place() {
    let h = harness().await;
    let created = h
        .create(
            "inplace",
            json!({"restartPolicy": "Never", "terminationGracePeriodSeconds": 5, "containers": [
                {"name": "app", "image": "busybox", "command": ["sh", "-c", SERVE_UNTIL_TERM]},
                {"name": "side", "image": "busybox", "command": ["sh", "-c", SERVE_UNTIL_TERM]}]}),
        )
        .await;
    let before = h.wait_ready("inplace").await;
    // Each container's process group is recorded as its run starts; a busy machine may report
    // the pod Ready before the second record is on disk.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let old_groups = loop {
        let groups = h.pgids(&uid(&created));
        if groups.len() == 2 || std::time::Instant::now() >= deadline {
            break groups;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(
        old_groups.len(),
        2,
        "process groups recorded: {old_groups:?}"
    );
    let side_before = named_status(&before, "side");
    let app_before = named_status(&before, "app");
    assert_eq!(app_before.image_id, "skiff://busybox");

    set_image(&h, "inplace", "app", "busybox:2").await;
    let after = h
        .wait_for("inplace", Duration::from_secs(10), |p| {
            let app = named_status(p, "app");
            app.restart_count == 1
                && app.state.as_ref().is_some_and(|s| s.running.is_some())
                && condition(p, "Ready").as_deref() == Some("True")
        })
        .await;
    let app = named_status(&after, "app");
    assert_eq!(app.image, "busybox:2");
    assert_eq!(app.image_id, "skiff://busybox:2");
    assert_ne!(app.container_id, app_before.container_id);
    let last = app.last_state.unwrap().terminated.unwrap();
    assert_eq!(last.exit_code, 0, "stopped with SIGTERM, which it handles");
    assert_eq!(named_status(&after, "side"), side_before, "untouched");
    let status = after.status.clone().unwrap();
    assert_eq!(status.phase.as_deref(), Some("Running"));
    assert_eq!(
        status.pod_ip,
        before.status.as_ref().unwrap().pod_ip,
        "same sandbox"
    );
    assert_eq!(after.metadata.uid, created.metadata.uid);
    let alive: Vec<i32> = old_groups
        .iter()
        .copied()
        .filter(|g| process::group_alive(*g))
        .collect();
    assert_eq!(
        alive.len(),
        1,
        "only the changed container's processes ended"
    );
    let groups = h.pgids(&uid(&created));
    assert_eq!(groups.len(), 3, "one new process group");

    h.wait_event("inplace", |r, m| {
        r == "Killing" && m == "Container app definition changed, will be restarted"
    })
    .await;
    h.wait_event("inplace", |r, m| {
        r == "Pulled" && m == "Container image \"busybox:2\" already present on machine and can be accessed by the pod"
    })
    .await;
    // The second start of `app` is counted on the same Event object, as kubelet's are.
    let api: Api<Event> = Api::new(h.client.clone(), Some("default")).unwrap();
    let until = Instant::now() + Duration::from_secs(5);
    loop {
        let (events, _) = api.list(&Default::default()).await.unwrap();
        let starts: i32 = events
            .iter()
            .filter(|e| {
                e.involved_object.name.as_deref() == Some("inplace")
                    && e.reason.as_deref() == Some("Started")
                    && e.message.as_deref() == Some("Started container app")
            })
            .map(|e| e.count.unwrap_or(1))
            .sum();
        if starts == 2 {
            break;
        }
        assert!(Instant::now() < until, "app started {starts} times");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    h.shutdown().await;
    assert_all_dead(&groups);
}

/// A drain that records each call and holds it until the test releases it; it ignores the
/// deadline on purpose, so the agent's own bound is what is tested.
struct HeldDrain {
    calls: std::sync::Mutex<Vec<(std::net::IpAddr, Instant)>>,
    released: watch::Receiver<bool>,
}

#[async_trait::async_trait]
impl TrafficDrain for HeldDrain {
    async fn wait_unrouted(&self, pod_ip: std::net::IpAddr, deadline: Instant) {
        self.calls.lock().unwrap().push((pod_ip, deadline));
        let mut released = self.released.clone();
        let _ = released.wait_for(|r| *r).await;
    }
}

fn held_drain() -> (Arc<HeldDrain>, watch::Sender<bool>) {
    let (release, released) = watch::channel(false);
    let drain = Arc::new(HeldDrain {
        calls: std::sync::Mutex::new(Vec::new()),
        released,
    });
    (drain, release)
}

impl HeldDrain {
    fn calls(&self) -> Vec<(std::net::IpAddr, Instant)> {
        self.calls.lock().unwrap().clone()
    }

    /// Waits until the agent called the drain `n` times.
    async fn wait_calls(&self, n: usize) -> Vec<(std::net::IpAddr, Instant)> {
        let until = Instant::now() + Duration::from_secs(10);
        loop {
            let calls = self.calls();
            if calls.len() >= n {
                return calls;
            }
            assert!(
                Instant::now() < until,
                "the drain was called {} times",
                calls.len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn pod_ip(pod: &Pod) -> std::net::IpAddr {
    pod.status
        .as_ref()
        .and_then(|s| s.pod_ip.as_deref())
        .and_then(|ip| ip.parse().ok())
        .expect("the pod has an address")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletion_waits_for_the_drain_before_pre_stop_and_sigterm() {
    let (drain, release) = held_drain();
    let h = harness_with(Some(drain.clone())).await;
    let out = h.data_dir.parent().unwrap().join("out");
    std::fs::create_dir_all(&out).unwrap();
    let seen_at = if sandbox::isolation_available() {
        "/tmp/out".to_string()
    } else {
        out.display().to_string()
    };
    let created = h
        .create(
            "drained",
            json!({"volumes": [{"name": "out", "hostPath": {"path": out.display().to_string()}}],
                "containers": [{"name": "c", "image": "busybox",
                "volumeMounts": [{"name": "out", "mountPath": "/tmp/out"}],
                "command": ["sh", "-c", format!("trap 'echo term >> {seen_at}/order; exit 0' TERM; while true; do sleep 0.1; done")],
                "lifecycle": {"preStop": {"exec": {"command": ["sh", "-c", format!("echo prestop >> {seen_at}/order")]}}}}]}),
        )
        .await;
    let running = h.wait_ready("drained").await;
    let groups = h.pgids(&uid(&created));
    let deleted_at = Instant::now();
    h.delete_with_grace("drained", 10).await;
    let calls = drain.wait_calls(1).await;
    assert_eq!(calls[0].0, pod_ip(&running));
    let deadline = calls[0].1;
    assert!(
        deadline > deleted_at + Duration::from_secs(9)
            && deadline <= Instant::now() + Duration::from_secs(10),
        "the drain is bounded by the grace period"
    );
    // Held: neither the hook nor the signal may come while the drain waits.
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(
        !out.join("order").exists(),
        "preStop or SIGTERM before the drain ended"
    );
    assert!(process::group_alive(groups[0]));
    assert!(h.pods.get_opt("drained").await.unwrap().is_some());

    release.send(true).unwrap();
    h.wait_gone("drained", Duration::from_secs(10)).await;
    let order = std::fs::read_to_string(out.join("order")).unwrap();
    assert_eq!(order, "prestop\nterm\n");
    assert_eq!(drain.calls().len(), 1, "one drain per pod");
    assert_all_dead(&groups);
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drain_that_never_ends_is_cut_by_the_grace_period() {
    let (drain, _release) = held_drain();
    let h = harness_with(Some(drain.clone())).await;
    let created = h
        .create(
            "slow",
            json!({"containers": [{"name": "c", "image": "busybox",
                "command": ["sh", "-c", SERVE_UNTIL_TERM]}]}),
        )
        .await;
    h.wait_ready("slow").await;
    let groups = h.pgids(&uid(&created));
    let started = Instant::now();
    h.delete_with_grace("slow", 2).await;
    // The held drain would keep the pod forever: it goes within the wait only because the
    // grace period cuts the drain, and not before that period.
    h.wait_gone("slow", Duration::from_secs(10)).await;
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(1_900), "{took:?}");
    assert_eq!(drain.calls().len(), 1);
    assert_all_dead(&groups);
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_in_place_update_drains_first_when_kruise_took_the_pod_out_of_service() {
    let (drain, release) = held_drain();
    let h = harness_with(Some(drain.clone())).await;
    let created = h
        .create(
            "kruised",
            json!({"readinessGates": [{"conditionType": "InPlaceUpdateReady"}],
                "containers": [{"name": "app", "image": "busybox",
                    "command": ["sh", "-c", SERVE_UNTIL_TERM]}]}),
        )
        .await;
    let running = h
        .wait_for("kruised", Duration::from_secs(10), |p| {
            condition(p, "ContainersReady").as_deref() == Some("True")
        })
        .await;
    assert_eq!(
        condition(&running, "Ready").as_deref(),
        Some("False"),
        "the gate holds"
    );
    let groups = h.pgids(&uid(&created));
    // OpenKruise takes the pod out of service, then changes the image.
    loop {
        let mut pod = h.pods.get("kruised").await.unwrap();
        let status = pod.status.get_or_insert_with(Default::default);
        status.conditions.get_or_insert_with(Vec::new).push(
            serde_json::from_value(json!({"type": "InPlaceUpdateReady", "status": "False",
                "reason": "StartInPlaceUpdate"}))
            .unwrap(),
        );
        match h.pods.update_status(&pod).await {
            Ok(_) => break,
            Err(e) if e.is_conflict() => continue,
            Err(e) => panic!("{e}"),
        }
    }
    set_image(&h, "kruised", "app", "busybox:2").await;
    let calls = drain.wait_calls(1).await;
    assert_eq!(calls[0].0, pod_ip(&running));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let held = h.pods.get("kruised").await.unwrap();
    assert_eq!(named_status(&held, "app").restart_count, 0);
    assert!(
        process::group_alive(groups[0]),
        "stopped before the drain ended"
    );

    release.send(true).unwrap();
    let after = h
        .wait_for("kruised", Duration::from_secs(10), |p| {
            let app = named_status(p, "app");
            app.restart_count == 1 && app.state.as_ref().is_some_and(|s| s.running.is_some())
        })
        .await;
    assert_eq!(named_status(&after, "app").image, "busybox:2");
    assert_eq!(
        condition(&after, "InPlaceUpdateReady").as_deref(),
        Some("False"),
        "the agent's status writes keep OpenKruise's condition"
    );
    assert_all_dead(&groups);
    let groups = h.pgids(&uid(&created));
    h.shutdown().await;
    assert_all_dead(&groups);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_that_panics_is_retried_and_other_pods_keep_running() {
    let h = harness().await;
    let broken = h
        .create(
            "unlucky",
            json!({"containers": [{"name": "c", "image": PANICS_ONCE,
                "command": ["sh", "-c", "sleep 30"]}]}),
        )
        .await;
    h.create(
        "bystander",
        json!({"containers": [{"name": "c", "image": "busybox", "command": ["sh", "-c", "sleep 30"]}]}),
    )
    .await;
    h.wait_ready("bystander").await;
    let pod = h.wait_ready("unlucky").await;
    let cs = container_status(&pod).unwrap();
    assert_eq!(
        cs.restart_count, 1,
        "the failed start counts as one run, the retry is the second"
    );
    let pgids = h.pgids(&uid(&broken));
    h.delete_with_grace("unlucky", 0).await;
    h.wait_gone("unlucky", Duration::from_secs(10)).await;
    wait_all_dead(&pgids, Duration::from_secs(10)).await;
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_grace_periods_neither_stop_the_node_nor_outlast_a_shorter_deletion() {
    let h = harness().await;
    let ignores_sigterm = json!(["sh", "-c", "trap '' TERM; while true; do sleep 1; done"]);
    for (name, grace) in [("long", 999_999_999_999_i64), ("longest", i64::MAX)] {
        h.create(
            name,
            json!({"terminationGracePeriodSeconds": grace,
                "containers": [{"name": "c", "image": "busybox", "command": ignores_sigterm,
                    "lifecycle": {"postStart": {"exec": {"command": ["true"]}}}}]}),
        )
        .await;
    }
    let long = h.wait_ready("long").await;
    let longest = h.wait_ready("longest").await;

    // A deletion with the pod's own huge grace period, then a shorter one: the shorter wins.
    let started = Instant::now();
    h.delete_with_grace("long", 600).await;
    h.wait_for("long", Duration::from_secs(10), |p| {
        p.metadata.deletion_timestamp.is_some()
    })
    .await;
    h.delete_with_grace("long", 1).await;
    h.wait_gone("long", Duration::from_secs(15)).await;
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "the second deletion shortened the grace period"
    );
    assert_all_dead(&h.pgids(&uid(&long)));

    // A forced deletion of a pod with the largest grace period there is.
    let pgids = h.pgids(&uid(&longest));
    h.delete_with_grace("longest", 0).await;
    h.wait_gone("longest", Duration::from_secs(10)).await;
    wait_all_dead(&pgids, Duration::from_secs(5)).await;

    // The node still runs pods.
    h.create(
        "after",
        json!({"containers": [{"name": "c", "image": "busybox", "command": ["sh", "-c", "sleep 30"]}]}),
    )
    .await;
    h.wait_ready("after").await;
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_image_is_pulled_then_started_and_reported_by_its_runtime_name() {
    let h = harness().await;
    h.create(
        "pulled",
        json!({"containers": [{"name": "c", "image": REMOTE_IMAGE,
            "command": ["sh", "-c", "sleep 30"]}]}),
    )
    .await;
    let pod = h.wait_ready("pulled").await;
    let status = container_status(&pod).unwrap();
    assert_eq!(status.image, "docker.io/library/app:1");
    assert_eq!(
        status.image_id,
        format!("docker.io/library/app@sha256:{}", "1".repeat(64))
    );
    assert_eq!(h.images.pulls(), vec![REMOTE_IMAGE.to_string()]);
    h.wait_event("pulled", |r, m| {
        r == "Pulling" && m == "Pulling image \"app:1\""
    })
    .await;
    h.wait_event("pulled", |r, m| {
        r == "Pulled"
            && m.starts_with("Successfully pulled image \"app:1\" in ")
            && m.ends_with(" including waiting). Image size: 1234 bytes.")
    })
    .await;
    h.wait_event("pulled", |r, _| r == "Started").await;
    h.delete_with_grace("pulled", 1).await;
    h.wait_gone("pulled", Duration::from_secs(10)).await;
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_pull_shows_the_registrys_error_then_backs_off_with_it() {
    let h = harness().await;
    h.create(
        "refused",
        json!({"containers": [{"name": "c", "image": BROKEN_IMAGE}]}),
    )
    .await;
    let waiting =
        |reason: &'static str| move |p: &Pod| waiting_reason(p).as_deref() == Some(reason);
    let pod = h
        .wait_for("refused", Duration::from_secs(10), waiting("ErrImagePull"))
        .await;
    let message = container_status(&pod)
        .unwrap()
        .state
        .unwrap()
        .waiting
        .unwrap()
        .message;
    assert_eq!(message.as_deref(), Some(REGISTRY_ERROR));
    let pod = h
        .wait_for(
            "refused",
            Duration::from_secs(10),
            waiting("ImagePullBackOff"),
        )
        .await;
    let message = container_status(&pod)
        .unwrap()
        .state
        .unwrap()
        .waiting
        .unwrap()
        .message;
    assert_eq!(
        message,
        Some(format!(
            "Back-off pulling image \"{BROKEN_IMAGE}\": ErrImagePull: {REGISTRY_ERROR}"
        ))
    );
    h.wait_event("refused", |r, m| {
        r == "Failed" && m == format!("Failed to pull image \"{BROKEN_IMAGE}\": {REGISTRY_ERROR}")
    })
    .await;
    h.wait_event("refused", |r, m| {
        r == "Failed" && m == "Error: ErrImagePull"
    })
    .await;
    h.wait_event("refused", |r, m| {
        r == "BackOff" && m == format!("Back-off pulling image \"{BROKEN_IMAGE}\"")
    })
    .await;
    h.wait_event("refused", |r, m| {
        r == "Failed" && m == "Error: ImagePullBackOff"
    })
    .await;
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_policy_never_fails_without_pulling() {
    let h = harness().await;
    h.create(
        "never",
        json!({"containers": [{"name": "c", "image": REMOTE_IMAGE, "imagePullPolicy": "Never"}]}),
    )
    .await;
    let pod = h
        .wait_for("never", Duration::from_secs(10), |p| {
            waiting_reason(p).as_deref() == Some("ErrImageNeverPull")
        })
        .await;
    let message = container_status(&pod)
        .unwrap()
        .state
        .unwrap()
        .waiting
        .unwrap()
        .message;
    assert_eq!(
        message.as_deref(),
        Some("Container image \"app:1\" is not present with pull policy of Never")
    );
    h.wait_event("never", |r, m| {
        r == "ErrImageNeverPull"
            && m == "Container image \"app:1\" is not present with pull policy of Never"
    })
    .await;
    h.wait_event("never", |r, m| {
        r == "Failed" && m == "Error: ErrImageNeverPull"
    })
    .await;
    assert!(h.images.pulls().is_empty(), "nothing was pulled");
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_pull_does_not_hold_up_other_pods() {
    let h = harness().await;
    h.create(
        "slow",
        json!({"containers": [{"name": "c", "image": SLOW_IMAGE,
            "command": ["sh", "-c", "sleep 30"]}]}),
    )
    .await;
    h.wait_event("slow", |r, _| r == "Pulling").await;
    h.create(
        "quick",
        json!({"containers": [{"name": "c", "image": "busybox",
            "command": ["sh", "-c", "sleep 30"]}]}),
    )
    .await;
    h.wait_ready("quick").await;
    let slow = h.pods.get("slow").await.unwrap();
    assert_eq!(
        waiting_reason(&slow).as_deref(),
        Some("ContainerCreating"),
        "the slow pod still waits for its image"
    );
    h.images.slow_gate.add_permits(1);
    h.wait_ready("slow").await;
    for name in ["slow", "quick"] {
        h.delete_with_grace(name, 1).await;
        h.wait_gone(name, Duration::from_secs(10)).await;
    }
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn image_garbage_collection_keeps_pod_images_and_reports_shortfalls_on_the_node() {
    let h = harness().await;
    h.create(
        "kept",
        json!({"containers": [{"name": "c", "image": "busybox:2",
            "command": ["sh", "-c", "sleep 30"]}]}),
    )
    .await;
    h.wait_ready("kept").await;
    let until = Instant::now() + Duration::from_secs(10);
    while !h
        .images
        .gc_rounds
        .lock()
        .unwrap()
        .iter()
        .any(|round| round == &vec!["busybox:2".to_string()])
    {
        assert!(
            Instant::now() < until,
            "no round was told the pod's image is in use"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    h.wait_event(NODE, |r, m| r == "FreeDiskSpaceFailed" && m == GC_SHORTFALL)
        .await;
    // A second failed round in a row is an ImageGCFailed.
    h.wait_event(NODE, |r, m| r == "ImageGCFailed" && m == GC_SHORTFALL)
        .await;
    h.delete_with_grace("kept", 1).await;
    h.wait_gone("kept", Duration::from_secs(10)).await;
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_deleted_while_its_image_is_pulled_leaves_no_process() {
    let h = harness().await;
    let marker = format!("pulled-late-{}", std::process::id());
    h.create(
        "gone-early",
        json!({"terminationGracePeriodSeconds": 1, "containers": [{"name": "c",
            "image": SLOW_IMAGE, "command": ["sh", "-c", "sleep 30"],
            "env": [{"name": "SKIFF_TEST_MARKER", "value": marker}]}]}),
    )
    .await;
    h.wait_event("gone-early", |r, _| r == "Pulling").await;
    h.delete_with_grace("gone-early", 1).await;
    h.images.slow_gate.add_permits(1);
    h.wait_gone("gone-early", Duration::from_secs(10)).await;
    let until = Instant::now() + Duration::from_secs(5);
    loop {
        let left = processes_with_env("SKIFF_TEST_MARKER", &marker);
        if left.is_empty() {
            break;
        }
        assert!(Instant::now() < until, "processes left: {left:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    h.shutdown().await;
}

/// The live processes whose environment holds `name=value`.
fn processes_with_env(name: &str, value: &str) -> Vec<i32> {
    let wanted = format!("{name}={value}");
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let zombie = stat
                .rsplit_once(')')
                .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'));
            !zombie && environ.split(|b| *b == 0).any(|v| v == wanted.as_bytes())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pod_tokens_are_requested_bound_to_the_pod_and_replaced_on_schedule() {
    use skiff_apiserver::service_account_tokens::{TokenSigner, API_AUDIENCES};
    use skiff_apiserver::LocalClient;
    use skiff_client::Scope;
    let dir = tempfile::tempdir().unwrap();
    let store = skiff_store::SqliteStore::open(&dir.path().join("s.db")).unwrap();
    let registry = skiff_apiserver::registry::Registry::new(Arc::new(store));
    skiff_apiserver::system::ensure_builtin_namespaces(&registry)
        .await
        .unwrap();
    let signer = Arc::new(TokenSigner::generate());
    registry.install_token_signer(signer.clone());
    let client: Arc<dyn Client> = Arc::new(LocalClient::new(registry));
    let scope = |resource| Scope {
        resource,
        namespace: Some("default"),
    };
    client
        .create(
            scope(&skiff_api::kinds::service_account::V1),
            serde_json::json!({"metadata": {"name": "default"}}),
        )
        .await
        .unwrap();
    let pod = client
        .create(
            scope(&skiff_api::kinds::pod::V1),
            serde_json::json!({"metadata": {"name": "web"},
                "spec": {"containers": [{"name": "c", "image": "busybox"}]}}),
        )
        .await
        .unwrap();
    let pod: Arc<Pod> = Arc::new(serde_json::from_value(pod).unwrap());
    let file = dir.path().join("token");
    std::fs::write(&file, "expired").unwrap();
    let tokens = vec![skiff_node::agent::sandbox::TokenFile {
        file: file.clone(),
        audience: None,
        expiration_seconds: 3607,
        mode: 0o644,
    }];
    let refresher = tokio::spawn(skiff_node::agent::sandbox::keep_tokens_fresh(
        client.clone(),
        pod.clone(),
        tokens,
        |_| std::time::Duration::from_millis(50),
    ));
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    let mut seen = Vec::new();
    while seen.len() < 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the token was replaced {} times",
            seen.len()
        );
        let current = std::fs::read_to_string(&file).unwrap();
        if current != "expired" && !seen.contains(&current) {
            seen.push(current);
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    refresher.abort();
    let now = jiff::Timestamp::now().as_second();
    for token in &seen {
        let claims = signer.verify(token, API_AUDIENCES, now).unwrap();
        assert_eq!(claims.sub, "system:serviceaccount:default:default");
        let bound = claims.kubernetes.pod.expect("bound to the pod");
        assert_eq!(bound.name, "web");
        assert_eq!(Some(bound.uid), pod.metadata.uid.clone());
        // The kubelet's 3607 seconds, which the server extends with a `warnafter`.
        assert_eq!(claims.kubernetes.warnafter, Some(claims.iat + 3607));
    }
}
