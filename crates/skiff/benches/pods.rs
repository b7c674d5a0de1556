//! The real node under load: how fast pods start, and what a node with hundreds of running pods
//! costs. Starts the `skiff` binary (`skiff up`, one real node whose pods are processes) on a
//! free loopback port in a temporary directory and drives it over HTTPS with the kubeconfig's
//! bearer token, exactly as kubectl would.
//!
//! Run with `cargo bench -p skiff --bench pods`; add `-- --quick` (or set `SKIFF_BENCH_QUICK=1`)
//! for a small sanity run. Linux only: it reads `/proc`.
//!
//! `-- --runtime oci` (as root) or `-- --runtime process` runs the runtime comparison instead:
//! 200 pods of a cached image created and timed to Ready, then 200 running pods measured, on
//! the named container runtime, so the two runs side by side compare the runtimes on one
//! machine. Under `oci` the node's pod range and Service range come from 198.18.0.0/15
//! (reserved for benchmarking; no packet is sent to them), and the memory per pod counts the
//! node monitor that holds every container's pipes. `cargo test -p skiff --bench pods -- ...`
//! runs the same against the debug build.
//!
//! Per pod it records, from one watch opened before the first create, when the pod was seen
//! bound to the node, when a container turned running and when the pod turned Ready, against
//! the instant its POST was sent: `metadata.creationTimestamp` has one-second resolution, far
//! too coarse. Everything is bounded: the whole run aborts after ten minutes, and however it
//! ends, every pod is deleted, the server gets SIGTERM, and any pod process still alive after
//! that is found by its `SKIFF_POD_UID` and killed.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HOST};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use nix::sys::signal::Signal;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// Prints a line of the report; a closed stdout (say, piped into `head`) must not abort the
/// run before its cleanup.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

/// Like [`say`], on stderr.
macro_rules! complain {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

/// The whole run is abandoned (and cleaned up) after this long, so a hung server cannot hold
/// the machine.
const RUN_LIMIT: Duration = Duration::from_secs(600);
/// How long the server may take to stop its pods and exit after SIGTERM before it is killed.
/// The agent gives pods up to 30 s; the rest is margin.
const SERVER_STOP_LIMIT: Duration = Duration::from_secs(45);
/// The node's name, fixed so pods can be bound to it without asking.
const NODE_NAME: &str = "skiff-bench";
/// Where the pods live.
const NAMESPACE: &str = "default";
/// How often a wait re-reads the tracker. Timestamps come from the watch task itself, so this
/// only decides how soon a wait notices, not what is measured.
const POLL: Duration = Duration::from_millis(20);
/// Connections used to delete pods in parallel.
const DELETERS: usize = 4;
/// Grace period of every benchmark pod: both images stop on SIGTERM at once, so this only
/// bounds a misbehaving run.
const GRACE_SECONDS: u64 = 5;

/// Why a run failed; any failure ends the measuring (cleanup still runs).
#[derive(Debug, thiserror::Error)]
enum BenchError {
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("setting up: {0}")]
    Setup(String),
    #[error("HTTP: {0}")]
    Http(#[from] hyper::Error),
    #[error("building a request: {0}")]
    Request(#[from] hyper::http::Error),
    #[error("{method} {path}: HTTP {status}: {body}")]
    Status {
        method: Method,
        path: String,
        status: StatusCode,
        body: String,
    },
    #[error("decoding {what}: {source}")]
    Json {
        what: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("timed out after {limit:?} waiting for {what}")]
    Timeout { limit: Duration, what: String },
    #[error("the pod watch failed: {0}")]
    Watch(String),
    #[error("the server exited during the run with {0}")]
    ServerExited(std::process::ExitStatus),
}

fn io_error(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> BenchError {
    let context = context.into();
    move |source| BenchError::Io { context, source }
}

/// How much work one run does; the quick run only checks that everything works.
#[derive(Clone, Copy, Debug)]
struct Config {
    /// Pods created for the start-latency figure, bound to the node directly.
    latency_pods: usize,
    /// Pods created for the start-latency figure through the scheduler; at most the node's
    /// pod capacity (110, kubelet's default) fits.
    scheduled_pods: usize,
    /// Pods kept running while the control plane idles.
    idle_pods: usize,
    /// How long the idle control plane is watched.
    idle_window: Duration,
    /// How long the control plane is watched with no pods, as the baseline.
    baseline_window: Duration,
}

impl Config {
    /// The runtime comparison: start latency over 200 pods, then 200 running pods.
    const COMPARISON: Config = Config {
        latency_pods: 200,
        scheduled_pods: 0,
        idle_pods: 200,
        idle_window: Duration::from_secs(15),
        baseline_window: Duration::from_secs(5),
    };
    const COMPARISON_QUICK: Config = Config {
        latency_pods: 20,
        scheduled_pods: 0,
        idle_pods: 20,
        idle_window: Duration::from_secs(3),
        baseline_window: Duration::from_secs(2),
    };
    const FULL: Config = Config {
        latency_pods: 200,
        scheduled_pods: 100,
        idle_pods: 500,
        idle_window: Duration::from_secs(30),
        baseline_window: Duration::from_secs(10),
    };
    const QUICK: Config = Config {
        latency_pods: 20,
        scheduled_pods: 10,
        idle_pods: 30,
        idle_window: Duration::from_secs(3),
        baseline_window: Duration::from_secs(2),
    };
}

/// The container runtime `--runtime` names: the run then compares runtimes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Runtime {
    /// Pods as process groups (`--container-runtime process`).
    Process,
    /// Pods as OCI containers through the embedded runtime (`--container-runtime oci`).
    Oci,
}

impl Runtime {
    fn name(self) -> &'static str {
        match self {
            Runtime::Process => "process",
            Runtime::Oci => "oci",
        }
    }

    /// The `skiff up` flags that choose this runtime. Under `oci`: ranges of 198.18.0.0/15
    /// picked by the process id, a bridge and a cgroup root of the run's own.
    fn server_flags(self) -> Vec<String> {
        let pid = std::process::id();
        let share = pid % 16 * 16;
        match self {
            Runtime::Process => vec!["--container-runtime".into(), "process".into()],
            Runtime::Oci => vec![
                "--container-runtime".into(),
                "oci".into(),
                "--cluster-cidr".into(),
                format!("198.18.{share}.0/20"),
                "--service-cidr".into(),
                format!("198.19.{share}.0/20"),
                "--pod-bridge".into(),
                format!("skb{pid}"),
                "--cgroup-root".into(),
                format!("skiff-bench-{pid}"),
            ],
        }
    }
}

/// The demo test image's tag; its archive is in the server's `images/` directory at start,
/// so every pod finds it cached.
const DEMO_TAG: &str = "1";
/// The demo test image's reference.
const DEMO_IMAGE: &str = "127.0.0.1:9/skiff-test/demo:1";
/// The shell test image's reference, imported at start as well.
const SHELL_IMAGE: &str = "127.0.0.1:9/skiff-test/shell:1.36";

/// Puts the test images' archives in `images_dir`, which `skiff up` imports before it serves.
fn place_test_images(images_dir: &Path) -> Result<(), BenchError> {
    std::fs::create_dir_all(images_dir).map_err(io_error("creating the images directory"))?;
    let demo = skiff_testkit::images::demo_from_binary(
        Path::new(env!("CARGO_BIN_EXE_skiff-demo")),
        DEMO_TAG,
    );
    let shell = skiff_testkit::images::shell();
    for image in [&demo, &shell] {
        let file_name = image.archive.file_name().ok_or_else(|| {
            BenchError::Setup(format!("{} names no file", image.archive.display()))
        })?;
        std::fs::copy(&image.archive, images_dir.join(file_name))
            .map_err(io_error(format!("copying {}", image.archive.display())))?;
    }
    Ok(())
}

/// What a benchmark pod runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Workload {
    /// The demo test image ([`DEMO_IMAGE`]): the demo HTTP server, one `skiff-demo` process
    /// per pod.
    Demo,
    /// The shell test image ([`SHELL_IMAGE`]) running `sleep 3600`: one busybox `sleep`
    /// process per pod.
    Sleep,
}

impl Workload {
    fn describe(self) -> &'static str {
        match self {
            Workload::Demo => "the demo test image (demo HTTP server)",
            Workload::Sleep => "the shell test image, sleep 3600",
        }
    }

    fn container(self) -> Value {
        match self {
            Workload::Demo => json!({"name": "web", "image": DEMO_IMAGE}),
            Workload::Sleep => json!({
                "name": "sleep",
                "image": SHELL_IMAGE,
                "command": ["sleep", "3600"],
            }),
        }
    }
}

/// The API server's address and credentials, from the kubeconfig `skiff up` wrote.
struct ApiTarget {
    address: SocketAddr,
    token: String,
    tls: TlsConnector,
}

impl ApiTarget {
    fn from_kubeconfig(path: &Path) -> Result<ApiTarget, BenchError> {
        use base64::Engine;

        let text = std::fs::read_to_string(path).map_err(io_error("reading the kubeconfig"))?;
        let config: Value = skiff_api::yaml::from_str(&text)
            .map_err(|e| BenchError::Setup(format!("the kubeconfig is not YAML: {e}")))?;
        let cluster = &config["clusters"][0]["cluster"];
        let server = cluster["server"].as_str().unwrap_or_default();
        let address: SocketAddr = server
            .strip_prefix("https://")
            .and_then(|a| a.parse().ok())
            .ok_or_else(|| BenchError::Setup(format!("unexpected server {server:?}")))?;
        let ca = base64::engine::general_purpose::STANDARD
            .decode(
                cluster["certificate-authority-data"]
                    .as_str()
                    .unwrap_or_default(),
            )
            .map_err(|e| BenchError::Setup(format!("the CA is not base64: {e}")))?;
        let token = config["users"][0]["user"]["token"]
            .as_str()
            .ok_or_else(|| BenchError::Setup("the kubeconfig has no token".into()))?
            .to_string();
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(&ca) {
            let cert = cert.map_err(|e| BenchError::Setup(format!("the CA is not PEM: {e:?}")))?;
            roots
                .add(cert)
                .map_err(|e| BenchError::Setup(format!("the CA is unusable: {e}")))?;
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| BenchError::Setup(format!("no TLS versions: {e}")))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(ApiTarget {
            address,
            token,
            tls: TlsConnector::from(Arc::new(tls)),
        })
    }

    /// Opens one kept-alive HTTPS connection, as a client-go client holds.
    async fn connect(&self) -> Result<Connection, BenchError> {
        let tcp = TcpStream::connect(self.address)
            .await
            .map_err(io_error("connecting to the API server"))?;
        let tls = self
            .tls
            .connect(ServerName::IpAddress(self.address.ip().into()), tcp)
            .await
            .map_err(io_error("TLS handshake"))?;
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await?;
        tokio::spawn(async move {
            // Ends when the sender is dropped; an error then is of no interest.
            let _ = connection.await;
        });
        Ok(Connection {
            sender,
            host: self.address.to_string(),
            authorization: format!("Bearer {}", self.token),
        })
    }
}

/// One connection sending one request at a time.
struct Connection {
    sender: SendRequest<Full<Bytes>>,
    host: String,
    authorization: String,
}

impl Connection {
    async fn send(
        &mut self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Response<Incoming>, BenchError> {
        let body = match body {
            Some(value) => Bytes::from(value.to_string()),
            None => Bytes::new(),
        };
        let request = Request::builder()
            .method(method)
            .uri(path)
            .header(HOST, &self.host)
            .header(AUTHORIZATION, &self.authorization)
            .header(ACCEPT, "application/json")
            .header(CONTENT_TYPE, "application/json")
            .body(Full::new(body))?;
        self.sender.ready().await?;
        Ok(self.sender.send_request(request).await?)
    }

    /// Sends a request and returns the decoded answer, failing unless its status is `expected`.
    async fn call(
        &mut self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        expected: &[StatusCode],
    ) -> Result<Value, BenchError> {
        let response = self.send(method.clone(), path, body).await?;
        let status = response.status();
        let bytes = response.into_body().collect().await?.to_bytes();
        if !expected.contains(&status) {
            return Err(BenchError::Status {
                method,
                path: path.to_string(),
                status,
                body: String::from_utf8_lossy(&bytes).into_owned(),
            });
        }
        serde_json::from_slice(&bytes).map_err(|source| BenchError::Json {
            what: format!("{method} {path}"),
            source,
        })
    }
}

/// What the run observed of one pod, each as the instant the bench learnt it.
#[derive(Clone, Debug, Default)]
struct PodTimes {
    uid: Option<String>,
    /// Just before its POST was sent (pods this run creates itself).
    created: Option<Instant>,
    /// Its first watch event (for pods a controller creates, the closest to their creation).
    seen: Option<Instant>,
    /// First seen with `spec.nodeName` set.
    bound: Option<Instant>,
    /// First seen with a container in state `running`.
    running: Option<Instant>,
    /// First seen with condition `Ready=True`.
    ready: Option<Instant>,
    /// Just before its DELETE was sent.
    delete_sent: Option<Instant>,
    /// Its `DELETED` watch event.
    gone: Option<Instant>,
}

/// Every benchmark pod's timeline, fed by one watch task.
#[derive(Default)]
struct Tracker {
    pods: HashMap<String, PodTimes>,
    watch_error: Option<String>,
}

impl Tracker {
    fn observe(&mut self, event_type: &str, pod: &Value, at: Instant) {
        let Some(name) = pod["metadata"]["name"].as_str() else {
            return;
        };
        let times = self.pods.entry(name.to_string()).or_default();
        times.seen.get_or_insert(at);
        if times.uid.is_none() {
            times.uid = pod["metadata"]["uid"].as_str().map(str::to_string);
        }
        if event_type == "DELETED" {
            times.gone.get_or_insert(at);
            return;
        }
        if pod["spec"]["nodeName"]
            .as_str()
            .is_some_and(|n| !n.is_empty())
        {
            times.bound.get_or_insert(at);
        }
        let running = pod["status"]["containerStatuses"]
            .as_array()
            .is_some_and(|statuses| statuses.iter().any(|s| s["state"]["running"].is_object()));
        if running {
            times.running.get_or_insert(at);
        }
        let ready = pod["status"]["conditions"]
            .as_array()
            .is_some_and(|conditions| {
                conditions
                    .iter()
                    .any(|c| c["type"] == "Ready" && c["status"] == "True")
            });
        if ready {
            times.ready.get_or_insert(at);
        }
    }

    /// The pods whose name starts with `prefix`, sorted.
    fn named_like(&self, prefix: &str) -> Vec<String> {
        let mut names: Vec<String> = self
            .pods
            .keys()
            .filter(|n| n.starts_with(prefix))
            .cloned()
            .collect();
        names.sort();
        names
    }

    fn count(&self, names: &[String], pick: impl Fn(&PodTimes) -> Option<Instant>) -> usize {
        names
            .iter()
            .filter(|n| self.pods.get(*n).and_then(&pick).is_some())
            .count()
    }
}

type SharedTracker = Arc<Mutex<Tracker>>;

fn lock(tracker: &SharedTracker) -> std::sync::MutexGuard<'_, Tracker> {
    // A poisoned lock only means a task panicked mid-update; the timestamps are still usable.
    tracker.lock().unwrap_or_else(|p| p.into_inner())
}

/// Follows every pod in the namespace from `resource_version` on, reopening the watch when the
/// server ends it, until the task is aborted.
async fn follow_pods(target: Arc<ApiTarget>, tracker: SharedTracker, resource_version: String) {
    let mut resource_version = resource_version;
    loop {
        if let Err(e) = follow_once(&target, &tracker, &mut resource_version).await {
            lock(&tracker).watch_error = Some(e.to_string());
            return;
        }
    }
}

async fn follow_once(
    target: &ApiTarget,
    tracker: &SharedTracker,
    resource_version: &mut String,
) -> Result<(), BenchError> {
    let mut connection = target.connect().await?;
    let path = format!(
        "/api/v1/namespaces/{NAMESPACE}/pods?watch=true&resourceVersion={resource_version}"
    );
    let response = connection.send(Method::GET, &path, None).await?;
    if response.status() != StatusCode::OK {
        let status = response.status();
        let bytes = response.into_body().collect().await?.to_bytes();
        return Err(BenchError::Status {
            method: Method::GET,
            path,
            status,
            body: String::from_utf8_lossy(&bytes).into_owned(),
        });
    }
    let mut body = response.into_body();
    let mut pending = Vec::new();
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame?.into_data() else {
            continue;
        };
        let at = Instant::now();
        pending.extend_from_slice(&data);
        while let Some(end) = pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = pending.drain(..=end).collect();
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let event: Value =
                serde_json::from_slice(&line).map_err(|source| BenchError::Json {
                    what: "a watch event".into(),
                    source,
                })?;
            let event_type = event["type"].as_str().unwrap_or_default();
            if event_type == "ERROR" {
                return Err(BenchError::Watch(event["object"].to_string()));
            }
            let object = &event["object"];
            if let Some(rv) = object["metadata"]["resourceVersion"].as_str() {
                *resource_version = rv.to_string();
            }
            if event_type != "BOOKMARK" {
                lock(tracker).observe(event_type, object, at);
            }
        }
    }
    Ok(())
}

/// Polls `done` against the tracker until it holds or `limit` passes; fails early if the watch
/// died or the server exited.
async fn wait_for(
    tracker: &SharedTracker,
    server: &mut Server,
    what: &str,
    limit: Duration,
    done: impl Fn(&Tracker) -> bool,
) -> Result<(), BenchError> {
    let started = Instant::now();
    loop {
        {
            let tracker = lock(tracker);
            if let Some(error) = &tracker.watch_error {
                return Err(BenchError::Watch(error.clone()));
            }
            if done(&tracker) {
                return Ok(());
            }
        }
        server.check_alive()?;
        if started.elapsed() > limit {
            return Err(BenchError::Timeout {
                limit,
                what: what.to_string(),
            });
        }
        tokio::time::sleep(POLL).await;
    }
}

/// The `skiff up` process under test.
struct Server {
    child: Child,
    pid: i32,
    root: tempfile::TempDir,
}

impl Server {
    fn start(binary: &Path, runtime: Option<Runtime>) -> Result<Server, BenchError> {
        let root = tempfile::Builder::new()
            .prefix("skiff-bench-pods-")
            .tempdir()
            .map_err(io_error("creating a temporary directory"))?;
        place_test_images(&root.path().join("data").join("images"))?;
        let log = std::fs::File::create(root.path().join("skiff.log"))
            .map_err(io_error("creating the server log"))?;
        let log_err = log
            .try_clone()
            .map_err(io_error("sharing the server log"))?;
        let child = Command::new(binary)
            .arg("up")
            .arg("--data-dir")
            .arg(root.path().join("data"))
            .args(["--listen", "127.0.0.1:0", "--node-name", NODE_NAME])
            // Without `--runtime`, pods are processes as in the results recorded for it.
            .args(runtime.unwrap_or(Runtime::Process).server_flags())
            .env_remove("SKIFF_DATA_DIR")
            // The node's start steps are timed at debug level, for the breakdown.
            .env("SKIFF_LOG", "warn,skiff_node::start_timing=debug")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .map_err(io_error(format!("starting {}", binary.display())))?;
        let pid = i32::try_from(child.id())
            .map_err(|_| BenchError::Setup("the server's pid does not fit an i32".into()))?;
        Ok(Server { child, pid, root })
    }

    fn kubeconfig(&self) -> PathBuf {
        self.root.path().join("data").join("kubeconfig")
    }

    /// Where the `oci` runtime keeps its state, which its node monitor's command line names.
    fn oci_root(&self) -> PathBuf {
        self.root.path().join("data").join("oci")
    }

    /// The server's log from byte `from` on.
    fn log_since(&self, from: usize) -> String {
        let text = std::fs::read_to_string(self.root.path().join("skiff.log")).unwrap_or_default();
        text.get(from..).unwrap_or_default().to_string()
    }

    /// How long the server's log is now, in bytes.
    fn log_length(&self) -> usize {
        std::fs::metadata(self.root.path().join("skiff.log"))
            .map(|m| usize::try_from(m.len()).unwrap_or(usize::MAX))
            .unwrap_or(0)
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.root.path().join("skiff.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    fn check_alive(&mut self) -> Result<(), BenchError> {
        match self.child.try_wait() {
            Ok(Some(status)) => Err(BenchError::ServerExited(status)),
            _ => Ok(()),
        }
    }

    /// SIGTERM, as Ctrl-C would; SIGKILL if the server is still there after
    /// [`SERVER_STOP_LIMIT`]. Returns how it went, for the report.
    fn stop(&mut self) -> String {
        if let Ok(Some(status)) = self.child.try_wait() {
            return format!("had already exited with {status}");
        }
        let started = Instant::now();
        send_signal(self.pid, Signal::SIGTERM);
        while started.elapsed() < SERVER_STOP_LIMIT {
            if let Ok(Some(status)) = self.child.try_wait() {
                return format!(
                    "exited with {status} {:.2} s after SIGTERM",
                    started.elapsed().as_secs_f64()
                );
            }
            std::thread::sleep(POLL);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        format!("ignored SIGTERM for {SERVER_STOP_LIMIT:?} and was killed")
    }
}

impl Drop for Server {
    /// However the run ends, even by a panic, the server and so its pods are stopped.
    fn drop(&mut self) {
        self.stop();
    }
}

/// Callers pass the server (our own child, not yet reaped) or a process just identified by its
/// environment as one of this run's pods; one already gone is not worth reporting.
fn send_signal(pid: i32, signal: Signal) {
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), signal);
}

/// Clock ticks per second, the unit of CPU times in `/proc/<pid>/stat`.
fn clock_ticks() -> f64 {
    match nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK) {
        Ok(Some(ticks)) if ticks > 0 => ticks as f64,
        _ => 100.0,
    }
}

/// What `/proc/<pid>/stat` says about one process.
#[derive(Clone, Copy, Debug, Default)]
struct ProcStat {
    /// `R`, `S`, `Z`, ...
    state: char,
    /// Its own CPU time so far, in ticks.
    own: u64,
    /// CPU time of its children that it has waited for, in ticks.
    waited_children: u64,
    /// When it started, in ticks since boot: with the pid, names one process for good.
    start_time: u64,
}

fn proc_stat(pid: i32) -> Option<ProcStat> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may contain anything; fields follow the last ')'.
    let fields: Vec<&str> = stat[stat.rfind(')')? + 1..].split_whitespace().collect();
    // Counting from field 3 (the state): utime, stime, cutime, cstime are fields 14-17 and
    // starttime is field 22.
    let number = |field: usize| fields.get(field - 3)?.parse::<u64>().ok();
    Some(ProcStat {
        state: fields.first()?.chars().next()?,
        own: number(14)? + number(15)?,
        waited_children: number(16)? + number(17)?,
        start_time: number(22)?,
    })
}

/// CPU time of the live threads of process `pid`, in nanoseconds, from their `schedstat`:
/// exact, where `stat` counts in 10 ms ticks that round a quiet process down to nothing.
fn runtime_ns(pid: i32) -> u64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    tasks
        .filter_map(Result::ok)
        .filter_map(|task| std::fs::read_to_string(task.path().join("schedstat")).ok())
        .filter_map(|text| text.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

/// A `kB` figure from a `/proc` file such as `status` or `smaps_rollup`.
fn proc_kib(pid: i32, file: &str, key: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/{file}")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(key))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

fn open_fds(pid: i32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// The live processes that carry one of `uids` as `SKIFF_POD_UID`, with their stat: every
/// process of this run's pods, and nothing of anyone else's.
fn pod_processes(uids: &HashSet<String>) -> Vec<(i32, ProcStat)> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for pid in entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
    {
        let Ok(environ) = std::fs::read(format!("/proc/{pid}/environ")) else {
            continue;
        };
        let ours = environ.split(|b| *b == 0).any(|entry| {
            entry
                .strip_prefix(b"SKIFF_POD_UID=")
                .and_then(|uid| std::str::from_utf8(uid).ok())
                .is_some_and(|uid| uids.contains(uid))
        });
        if !ours {
            continue;
        }
        // A zombie has no memory and is not "left running".
        if let Some(stat) = proc_stat(pid).filter(|s| s.state != 'Z') {
            found.push((pid, stat));
        }
    }
    found
}

/// The node monitors (`skiff node-monitor`) serving the `oci` runtime rooted at `root`: the
/// process holding every container's pipes, part of what a running pod costs.
fn node_monitors(root: &Path) -> Vec<i32> {
    let wanted = root.display().to_string();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|cmdline| {
                let words: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
                words.contains(&b"node-monitor".as_slice()) && words.contains(&wanted.as_bytes())
            })
        })
        .collect()
}

/// The control plane's and the pods' resource use at one instant.
struct Snapshot {
    at: Instant,
    server: ProcStat,
    server_rss_kib: u64,
    server_hwm_kib: u64,
    server_threads: u64,
    server_fds: usize,
    /// Per pod process: its stat and the CPU time of its live threads in nanoseconds.
    pods: HashMap<i32, (ProcStat, u64)>,
    pods_rss_kib: u64,
    pods_pss_kib: u64,
    /// The node monitors' (oci runtime) count and summed Pss.
    monitors: usize,
    monitors_pss_kib: u64,
}

fn snapshot(server_pid: i32, uids: &HashSet<String>) -> Snapshot {
    snapshot_with_monitors(server_pid, uids, None)
}

/// A [`snapshot`] that also measures the node monitors of the `oci` runtime at `oci_root`.
fn snapshot_with_monitors(
    server_pid: i32,
    uids: &HashSet<String>,
    oci_root: Option<&Path>,
) -> Snapshot {
    let monitors = oci_root.map(node_monitors).unwrap_or_default();
    let monitors_pss_kib = monitors
        .iter()
        .map(|pid| proc_kib(*pid, "smaps_rollup", "Pss:").unwrap_or(0))
        .sum();
    let mut pods = HashMap::new();
    let mut pods_rss_kib = 0;
    let mut pods_pss_kib = 0;
    for (pid, stat) in pod_processes(uids) {
        pods.insert(pid, (stat, runtime_ns(pid)));
        pods_rss_kib += proc_kib(pid, "status", "VmRSS:").unwrap_or(0);
        pods_pss_kib += proc_kib(pid, "smaps_rollup", "Pss:").unwrap_or(0);
    }
    Snapshot {
        at: Instant::now(),
        server: proc_stat(server_pid).unwrap_or_default(),
        server_rss_kib: proc_kib(server_pid, "status", "VmRSS:").unwrap_or(0),
        server_hwm_kib: proc_kib(server_pid, "status", "VmHWM:").unwrap_or(0),
        server_threads: proc_kib(server_pid, "status", "Threads:").unwrap_or(0),
        server_fds: open_fds(server_pid),
        pods,
        pods_rss_kib,
        pods_pss_kib,
        monitors: monitors.len(),
        monitors_pss_kib,
    }
}

/// CPU used between two snapshots, as a percentage of one core.
fn cpu_percent(ticks: u64, wall: Duration) -> f64 {
    let seconds = wall.as_secs_f64();
    if seconds <= 0.0 {
        return 0.0;
    }
    ticks as f64 / clock_ticks() / seconds * 100.0
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// The value at percentile `p` (nearest rank) of sorted `values`.
fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// One distribution row: count, p50, p90, p99, max in milliseconds.
fn distribution_row(label: &str, mut values: Vec<Duration>) -> String {
    values.sort();
    format!(
        "  {label:<48} {:>5} {:>9.1} {:>9.1} {:>9.1} {:>9.1}",
        values.len(),
        ms(percentile(&values, 0.50)),
        ms(percentile(&values, 0.90)),
        ms(percentile(&values, 0.99)),
        ms(values.last().copied().unwrap_or_default()),
    )
}

/// The node's timed start steps in `log` (`skiff_node::start_timing` events: `step=NAME
/// micros=N`), each step's durations in the order steps first appear.
fn start_steps(log: &str) -> Vec<(String, Vec<Duration>)> {
    let mut steps: Vec<(String, Vec<Duration>)> = Vec::new();
    for line in log
        .lines()
        .filter(|l| l.contains("skiff_node::start_timing"))
    {
        let field = |name: &str| {
            line.split_whitespace()
                .find_map(|word| word.strip_prefix(name)?.strip_prefix('='))
        };
        let (Some(step), Some(micros)) = (
            field("step"),
            field("micros").and_then(|m| m.parse::<u64>().ok()),
        ) else {
            continue;
        };
        // A `&str` field is printed quoted.
        let step = step.trim_matches('"');
        let took = Duration::from_micros(micros);
        match steps.iter_mut().find(|(name, _)| name == step) {
            Some((_, values)) => values.push(took),
            None => steps.push((step.to_string(), vec![took])),
        }
    }
    steps
}

fn distribution_header() -> String {
    format!(
        "  {:<48} {:>5} {:>9} {:>9} {:>9} {:>9}",
        "interval (ms)", "pods", "p50", "p90", "p99", "max"
    )
}

/// The run: one server, the scenarios in order, and the report.
struct Bench {
    target: Arc<ApiTarget>,
    tracker: SharedTracker,
    uids: Arc<Mutex<HashSet<String>>>,
    sequence: usize,
    /// The server's reaped-children CPU ticks when the current pods were created: pod
    /// processes are the server's children, so their whole CPU use (mount helpers included)
    /// lands there once they are reaped.
    reaped_mark: u64,
    /// How many pods run while [`Bench::idle`] measures, for the per-pod figure.
    running_pods: Option<usize>,
}

impl Bench {
    fn line(&self, text: impl AsRef<str>) {
        say!("{}", text.as_ref());
    }

    fn known_uids(&self) -> HashSet<String> {
        self.uids.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn pod_manifest(&self, name: &str, workload: Workload, bind: bool) -> Value {
        let mut spec = json!({
            "containers": [workload.container()],
            "terminationGracePeriodSeconds": GRACE_SECONDS,
        });
        if bind {
            spec["nodeName"] = json!(NODE_NAME);
        }
        json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "labels": {"bench": "pods"}},
            "spec": spec,
        })
    }

    /// Creates `count` pods one after another on one connection (as `kubectl create -f` does)
    /// and waits until all are Ready. Returns their names.
    async fn start_pods(
        &mut self,
        server: &mut Server,
        count: usize,
        workload: Workload,
        bind: bool,
    ) -> Result<Vec<String>, BenchError> {
        self.start_pods_paced(server, count, workload, bind, false)
            .await
    }

    /// [`Bench::start_pods`], or with `one_at_a_time` each POST sent only once the previous
    /// pod is Ready: every start then finds the node idle, so its latency is the start's own,
    /// without the queue a burst builds.
    async fn start_pods_paced(
        &mut self,
        server: &mut Server,
        count: usize,
        workload: Workload,
        bind: bool,
        one_at_a_time: bool,
    ) -> Result<Vec<String>, BenchError> {
        self.sequence += 1;
        let prefix = format!("bench-{}", self.sequence);
        let names: Vec<String> = (0..count).map(|i| format!("{prefix}-{i:04}")).collect();
        let mut connection = self.target.connect().await?;
        let path = format!("/api/v1/namespaces/{NAMESPACE}/pods");
        let before = snapshot(server.pid, &HashSet::new());
        self.reaped_mark = before.server.waited_children;
        let started = Instant::now();
        for name in &names {
            let manifest = self.pod_manifest(name, workload, bind);
            lock(&self.tracker)
                .pods
                .entry(name.clone())
                .or_default()
                .created = Some(Instant::now());
            connection
                .call(Method::POST, &path, Some(&manifest), &[StatusCode::CREATED])
                .await?;
            if one_at_a_time {
                let this_one = std::slice::from_ref(name);
                wait_for(
                    &self.tracker,
                    server,
                    "the pod to turn Ready",
                    RUN_LIMIT,
                    |t: &Tracker| t.count(this_one, |p| p.ready) == 1,
                )
                .await?;
            }
        }
        let creates_took = started.elapsed();
        let all_ready = |t: &Tracker| t.count(&names, |p| p.ready) == names.len();
        wait_for(
            &self.tracker,
            server,
            "every pod to turn Ready",
            RUN_LIMIT,
            all_ready,
        )
        .await?;
        let all_ready_after = started.elapsed();
        self.remember_uids(&names);
        let after = snapshot(server.pid, &self.known_uids());

        let how = match (bind, one_at_a_time) {
            (true, true) => {
                "bound to the node in the manifest, each POST once the previous pod was Ready"
            }
            (true, false) => "bound to the node in the manifest",
            (false, _) => "placed by the scheduler",
        };
        self.line(format!(
            "{count} pods of {}, {how}: {count} POSTs took {:.2} s on one connection; \
             the last pod was Ready {:.2} s after the first POST",
            workload.describe(),
            creates_took.as_secs_f64(),
            all_ready_after.as_secs_f64()
        ));
        self.report_start(&names, |p| p.created, "POST sent", &before, &after);
        Ok(names)
    }

    /// Creates a Deployment of `replicas` demo pods (placed by the scheduler) and waits until
    /// all are Ready. Returns the Deployment's name and its pods' names.
    async fn start_deployment(
        &mut self,
        server: &mut Server,
        replicas: usize,
    ) -> Result<(String, Vec<String>), BenchError> {
        self.sequence += 1;
        let name = format!("bench-deploy-{}", self.sequence);
        let manifest = json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": name, "labels": {"bench": "pods"}},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": {"bench-deployment": name}},
                "template": {
                    "metadata": {"labels": {"bench": "pods", "bench-deployment": name}},
                    "spec": {
                        "containers": [Workload::Demo.container()],
                        "terminationGracePeriodSeconds": GRACE_SECONDS,
                    },
                },
            },
        });
        let mut connection = self.target.connect().await?;
        let before = snapshot(server.pid, &HashSet::new());
        self.reaped_mark = before.server.waited_children;
        let started = Instant::now();
        connection
            .call(
                Method::POST,
                &format!("/apis/apps/v1/namespaces/{NAMESPACE}/deployments"),
                Some(&manifest),
                &[StatusCode::CREATED],
            )
            .await?;
        let prefix = format!("{name}-");
        let all_ready = |t: &Tracker| {
            let names = t.named_like(&prefix);
            names.len() == replicas && t.count(&names, |p| p.ready) == replicas
        };
        wait_for(
            &self.tracker,
            server,
            "every replica to turn Ready",
            RUN_LIMIT,
            all_ready,
        )
        .await?;
        let all_ready_after = started.elapsed();
        let names = lock(&self.tracker).named_like(&prefix);
        self.remember_uids(&names);
        let after = snapshot(server.pid, &self.known_uids());
        self.line(format!(
            "a Deployment of {replicas} replicas of {}, placed by the scheduler: the last pod \
             was Ready {:.2} s after the Deployment's POST",
            Workload::Demo.describe(),
            all_ready_after.as_secs_f64()
        ));
        self.report_start(&names, |p| p.seen, "first watch event", &before, &after);
        Ok((name, names))
    }

    /// Records the UIDs the watch saw for `names`, so their processes can be found.
    fn remember_uids(&self, names: &[String]) {
        let tracker = lock(&self.tracker);
        let mut uids = self.uids.lock().unwrap_or_else(|p| p.into_inner());
        for times in names.iter().filter_map(|n| tracker.pods.get(n)) {
            if let Some(uid) = &times.uid {
                uids.insert(uid.clone());
            }
        }
    }

    /// Prints the CPU spent starting `names` and the distribution of each step of their start,
    /// counted from `origin`.
    fn report_start(
        &self,
        names: &[String],
        origin: fn(&PodTimes) -> Option<Instant>,
        origin_label: &str,
        before: &Snapshot,
        after: &Snapshot,
    ) {
        let wall = after.at - before.at;
        let server_ticks = after.server.own.saturating_sub(before.server.own);
        let pod_ns: u64 = after.pods.values().map(|(_, ns)| ns).sum();
        self.line(format!(
            "  CPU meanwhile: control plane {:.2} s ({:.0}% of one core); the {} pod processes \
             {:.2} s so far (not counting their sandbox's mount helpers)",
            server_ticks as f64 / clock_ticks(),
            cpu_percent(server_ticks, wall),
            after.pods.len(),
            pod_ns as f64 / 1e9,
        ));
        let rows = {
            let tracker = lock(&self.tracker);
            let span = |from: fn(&PodTimes) -> Option<Instant>,
                        to: fn(&PodTimes) -> Option<Instant>| {
                names
                    .iter()
                    .filter_map(|n| tracker.pods.get(n))
                    .filter_map(|p| Some(to(p)?.saturating_duration_since(from(p)?)))
                    .collect::<Vec<_>>()
            };
            [
                distribution_header(),
                distribution_row(
                    &format!("{origin_label} -> Ready (start latency)"),
                    span(origin, |p| p.ready),
                ),
                distribution_row(
                    &format!("{origin_label} -> container running (cached image)"),
                    span(origin, |p| p.running),
                ),
                distribution_row(
                    &format!("{origin_label} -> seen bound to the node"),
                    span(origin, |p| p.bound),
                ),
                distribution_row(
                    "bound -> container running",
                    span(|p| p.bound, |p| p.running),
                ),
                distribution_row(
                    "container running -> Ready",
                    span(|p| p.running, |p| p.ready),
                ),
            ]
        };
        for row in rows {
            self.line(row);
        }
        let (seen, bound) = {
            let tracker = lock(&self.tracker);
            let spread = |pick: fn(&PodTimes) -> Option<Instant>| {
                let mut at: Vec<Instant> = names
                    .iter()
                    .filter_map(|n| tracker.pods.get(n).and_then(pick))
                    .collect();
                at.sort();
                match (at.first(), at.last()) {
                    (Some(first), Some(last)) => (*last - *first, at.len()),
                    _ => (Duration::ZERO, 0),
                }
            };
            (spread(|p| p.seen), spread(|p| p.bound))
        };
        self.line(format!(
            "  the pods appeared over {:.0} ms and were bound over {:.0} ms (one every {:.1} ms)",
            ms(seen.0),
            ms(bound.0),
            ms(bound.0) / bound.1.saturating_sub(1).max(1) as f64,
        ));
    }

    /// Deletes `names` over [`DELETERS`] connections and waits until every pod object is gone
    /// (the agent removes it only when its processes are).
    async fn delete_pods(
        &mut self,
        server: &mut Server,
        names: &[String],
    ) -> Result<(), BenchError> {
        let started = Instant::now();
        let before = snapshot(server.pid, &HashSet::new());
        let mut tasks = Vec::new();
        for share in names.chunks(names.len().div_ceil(DELETERS).max(1)) {
            let share = share.to_vec();
            let target = self.target.clone();
            let tracker = self.tracker.clone();
            tasks.push(tokio::spawn(async move {
                let mut connection = target.connect().await?;
                for name in share {
                    lock(&tracker)
                        .pods
                        .entry(name.clone())
                        .or_default()
                        .delete_sent = Some(Instant::now());
                    let path = format!("/api/v1/namespaces/{NAMESPACE}/pods/{name}");
                    connection
                        .call(
                            Method::DELETE,
                            &path,
                            None,
                            &[StatusCode::OK, StatusCode::ACCEPTED, StatusCode::NOT_FOUND],
                        )
                        .await?;
                }
                Ok::<(), BenchError>(())
            }));
        }
        for task in tasks {
            task.await
                .map_err(|e| BenchError::Setup(format!("a delete task failed: {e}")))??;
        }
        let requests = format!(
            "{} DELETEs took {:.2} s on {DELETERS} connections",
            names.len(),
            started.elapsed().as_secs_f64()
        );
        self.finish_delete(server, names, started, &before, &requests)
            .await
    }

    /// Deletes a Deployment as kubectl does (background propagation: the garbage collector
    /// removes its ReplicaSet, then the pods) and waits until its pods are gone.
    async fn delete_deployment(
        &mut self,
        server: &mut Server,
        name: &str,
        names: &[String],
    ) -> Result<(), BenchError> {
        let mut connection = self.target.connect().await?;
        let before = snapshot(server.pid, &HashSet::new());
        let started = Instant::now();
        {
            let mut tracker = lock(&self.tracker);
            for pod in names {
                tracker.pods.entry(pod.clone()).or_default().delete_sent = Some(started);
            }
        }
        connection
            .call(
                Method::DELETE,
                &format!("/apis/apps/v1/namespaces/{NAMESPACE}/deployments/{name}"),
                Some(&json!({"kind": "DeleteOptions", "apiVersion": "v1",
                    "propagationPolicy": "Background"})),
                &[StatusCode::OK, StatusCode::ACCEPTED],
            )
            .await?;
        self.finish_delete(
            server,
            names,
            started,
            &before,
            "one DELETE of the Deployment",
        )
        .await
    }

    async fn finish_delete(
        &mut self,
        server: &mut Server,
        names: &[String],
        started: Instant,
        before: &Snapshot,
        requests: &str,
    ) -> Result<(), BenchError> {
        let all_gone = |t: &Tracker| t.count(names, |p| p.gone) == names.len();
        wait_for(
            &self.tracker,
            server,
            "every pod to be gone",
            RUN_LIMIT,
            all_gone,
        )
        .await?;
        let gone_after = started.elapsed();
        let after = snapshot(server.pid, &HashSet::new());
        let wall = after.at - before.at;
        let server_ticks = after.server.own.saturating_sub(before.server.own);
        self.line(format!(
            "  deleting them: {requests}; the last pod object was gone {:.2} s after the \
             first DELETE; control plane CPU {:.2} s ({:.0}% of one core)",
            gone_after.as_secs_f64(),
            server_ticks as f64 / clock_ticks(),
            cpu_percent(server_ticks, wall),
        ));
        let gone: Vec<Duration> = {
            let tracker = lock(&self.tracker);
            names
                .iter()
                .filter_map(|n| tracker.pods.get(n))
                .filter_map(|p| Some(p.gone?.saturating_duration_since(p.delete_sent?)))
                .collect()
        };
        self.line(distribution_row("DELETE sent -> pod object gone", gone));
        let reaped = after
            .server
            .waited_children
            .saturating_sub(self.reaped_mark);
        self.line(format!(
            "  CPU of these pods' processes over their whole life, sandbox setup included: \
             {:.2} s ({:.1} ms per pod)",
            reaped as f64 / clock_ticks(),
            reaped as f64 / clock_ticks() * 1000.0 / names.len().max(1) as f64,
        ));
        Ok(())
    }

    /// Watches the control plane and the pods for `window` without doing anything.
    async fn idle(
        &mut self,
        server: &mut Server,
        window: Duration,
        label: &str,
    ) -> Result<(), BenchError> {
        let uids = self.known_uids();
        let oci_root = server.oci_root();
        let before = snapshot(server.pid, &uids);
        // The measurement itself: nothing is waited for, the window is the point.
        tokio::time::sleep(window).await;
        server.check_alive()?;
        let after = snapshot_with_monitors(server.pid, &uids, Some(&oci_root));
        let wall = after.at - before.at;
        let server_ticks = after.server.own.saturating_sub(before.server.own);
        self.line(format!("{label}: idle for {:.1} s", wall.as_secs_f64()));
        self.line(format!(
            "  control plane: CPU {:.2}% of one core ({:.2} s); VmRSS {:.1} MiB, VmHWM {:.1} \
             MiB, {} threads, {} open fds",
            cpu_percent(server_ticks, wall),
            server_ticks as f64 / clock_ticks(),
            mib(after.server_rss_kib),
            mib(after.server_hwm_kib),
            after.server_threads,
            after.server_fds,
        ));
        if !after.pods.is_empty() {
            let pod_ns: u64 = after
                .pods
                .iter()
                .filter_map(|(pid, (stat, ns))| {
                    let (earlier_stat, earlier_ns) = before.pods.get(pid)?;
                    (earlier_stat.start_time == stat.start_time)
                        .then(|| ns.saturating_sub(*earlier_ns))
                })
                .sum();
            let count = after.pods.len();
            self.line(format!(
                "  pods: {count} processes, total RSS {:.1} MiB ({:.2} MiB each), total PSS \
                 {:.1} MiB ({:.2} MiB each), CPU {:.3}% of one core together",
                mib(after.pods_rss_kib),
                mib(after.pods_rss_kib) / count as f64,
                mib(after.pods_pss_kib),
                mib(after.pods_pss_kib) / count as f64,
                pod_ns as f64 / 1e9 / wall.as_secs_f64().max(f64::EPSILON) * 100.0,
            ));
            if let Some(pods) = self.running_pods.filter(|n| *n > 0) {
                self.line(format!(
                    "  per running pod, its processes and the node monitor ({} process, Pss \
                     {:.2} MiB) together: Pss {:.2} MiB ({pods} pods)",
                    after.monitors,
                    mib(after.monitors_pss_kib),
                    mib(after.pods_pss_kib + after.monitors_pss_kib) / pods as f64,
                ));
            }
        }
        Ok(())
    }

    /// The runtime comparison: the start latency of `latency_pods` demo pods created one at a
    /// time and then in a burst, then `idle_pods` running sleep pods measured.
    async fn compare(&mut self, server: &mut Server, config: Config) -> Result<(), BenchError> {
        self.idle(server, config.baseline_window, "no pods (baseline)")
            .await?;
        self.line("");
        for one_at_a_time in [true, false] {
            let log_mark = server.log_length();
            let names = self
                .start_pods_paced(
                    server,
                    config.latency_pods,
                    Workload::Demo,
                    true,
                    one_at_a_time,
                )
                .await?;
            let steps = start_steps(&server.log_since(log_mark));
            if !steps.is_empty() {
                self.line("  the node's start steps (a pod's sandbox, then each container run):");
                self.line(distribution_header());
                for (step, values) in steps {
                    self.line(distribution_row(&step, values));
                }
            }
            self.delete_pods(server, &names).await?;
            self.line("");
        }
        let names = self
            .start_pods(server, config.idle_pods, Workload::Sleep, true)
            .await?;
        let label = format!(
            "{} running pods of {}",
            names.len(),
            Workload::Sleep.describe()
        );
        self.running_pods = Some(names.len());
        self.idle(server, config.idle_window, &label).await?;
        self.running_pods = None;
        self.delete_pods(server, &names).await?;
        self.line("");
        // Left running: the server's SIGTERM at the end stops them all, and its time is the
        // shutdown figure with that many running pods.
        let names = self
            .start_pods(server, config.latency_pods, Workload::Demo, true)
            .await?;
        self.line(format!(
            "{} pods of {} left running for the server's shutdown",
            names.len(),
            Workload::Demo.describe()
        ));
        Ok(())
    }

    async fn run(&mut self, server: &mut Server, config: Config) -> Result<(), BenchError> {
        self.idle(server, config.baseline_window, "no pods (baseline)")
            .await?;
        self.line("");

        let names = self
            .start_pods(server, config.latency_pods, Workload::Demo, true)
            .await?;
        self.delete_pods(server, &names).await?;
        self.line("");

        let names = self
            .start_pods(server, config.scheduled_pods, Workload::Demo, false)
            .await?;
        self.delete_pods(server, &names).await?;
        self.line("");

        let (deployment, names) = self.start_deployment(server, config.scheduled_pods).await?;
        self.delete_deployment(server, &deployment, &names).await?;
        self.line("");

        for workload in [Workload::Sleep, Workload::Demo] {
            let names = self
                .start_pods(server, config.idle_pods, workload, true)
                .await?;
            let label = format!("{} running pods of {}", names.len(), workload.describe());
            self.idle(server, config.idle_window, &label).await?;
            self.delete_pods(server, &names).await?;
            self.line("");
        }
        Ok(())
    }
}

/// Waits until the server answers `/readyz` and its node is registered.
async fn wait_until_serving(server: &mut Server) -> Result<Arc<ApiTarget>, BenchError> {
    let started = Instant::now();
    let limit = Duration::from_secs(60);
    loop {
        server.check_alive()?;
        if server.kubeconfig().exists() {
            let target = Arc::new(ApiTarget::from_kubeconfig(&server.kubeconfig())?);
            if let Ok(mut connection) = target.connect().await {
                let node = connection
                    .call(
                        Method::GET,
                        &format!("/api/v1/nodes/{NODE_NAME}"),
                        None,
                        &[StatusCode::OK],
                    )
                    .await;
                if node.is_ok() {
                    return Ok(target);
                }
            }
        }
        if started.elapsed() > limit {
            return Err(BenchError::Timeout {
                limit,
                what: "the server to serve and register its node".into(),
            });
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The list's resourceVersion, where the pod watch starts.
async fn current_resource_version(target: &ApiTarget) -> Result<String, BenchError> {
    let mut connection = target.connect().await?;
    let list = connection
        .call(
            Method::GET,
            &format!("/api/v1/namespaces/{NAMESPACE}/pods"),
            None,
            &[StatusCode::OK],
        )
        .await?;
    list["metadata"]["resourceVersion"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| BenchError::Setup("the pod list has no resourceVersion".into()))
}

/// Deletes whatever benchmark Deployments and pods are left, after a failed or aborted run, and waits a little
/// for them to go. Best effort: the server's own shutdown stops the rest.
async fn delete_leftover_pods(target: &ApiTarget) -> Result<usize, BenchError> {
    let mut connection = target.connect().await?;
    let deployments = format!("/apis/apps/v1/namespaces/{NAMESPACE}/deployments");
    let list = connection
        .call(
            Method::GET,
            &format!("{deployments}?labelSelector=bench%3Dpods"),
            None,
            &[StatusCode::OK],
        )
        .await?;
    for name in list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|d| d["metadata"]["name"].as_str())
    {
        connection
            .call(
                Method::DELETE,
                &format!("{deployments}/{name}"),
                None,
                &[StatusCode::OK, StatusCode::ACCEPTED, StatusCode::NOT_FOUND],
            )
            .await?;
    }
    let path = format!("/api/v1/namespaces/{NAMESPACE}/pods?labelSelector=bench%3Dpods");
    let list = connection
        .call(Method::GET, &path, None, &[StatusCode::OK])
        .await?;
    let names: Vec<String> = list["items"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|p| p["metadata"]["name"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    for name in &names {
        connection
            .call(
                Method::DELETE,
                &format!("/api/v1/namespaces/{NAMESPACE}/pods/{name}"),
                None,
                &[StatusCode::OK, StatusCode::ACCEPTED, StatusCode::NOT_FOUND],
            )
            .await?;
    }
    Ok(names.len())
}

fn machine_description() -> String {
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|v| v.trim_start_matches([' ', '\t', ':']).to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))?
                .split_whitespace()
                .next()?
                .parse::<u64>()
                .ok()
        })
        .map(|kib| format!("{:.1} GiB", kib as f64 / 1024.0 / 1024.0))
        .unwrap_or_else(|| "unknown memory".into());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    let rustc = Command::new(std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into()))
        .arg("--version")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "rustc (unknown version)".into());
    format!("{cores} cores ({model}), {memory} memory, Linux {kernel}, {rustc}")
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn main() -> ExitCode {
    let quick = std::env::args().any(|a| a == "--quick")
        || std::env::var_os("SKIFF_BENCH_QUICK").is_some_and(|v| v != "0" && !v.is_empty());
    let args: Vec<String> = std::env::args().collect();
    let runtime = match args
        .iter()
        .position(|a| a == "--runtime")
        .map(|i| args.get(i + 1).map(String::as_str))
    {
        None => None,
        Some(Some("process")) => Some(Runtime::Process),
        Some(Some("oci")) => Some(Runtime::Oci),
        Some(other) => {
            complain!("--runtime takes process or oci, not {other:?}");
            return ExitCode::FAILURE;
        }
    };
    if runtime == Some(Runtime::Oci) && !nix::unistd::geteuid().is_root() {
        complain!("--runtime oci needs root (network namespaces, veths, cgroups)");
        return ExitCode::FAILURE;
    }
    let config = match (runtime, quick) {
        (None, false) => Config::FULL,
        (None, true) => Config::QUICK,
        (Some(_), false) => Config::COMPARISON,
        (Some(_), true) => Config::COMPARISON_QUICK,
    };
    let tokio_runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(tokio_runtime) => tokio_runtime,
        Err(e) => {
            complain!("cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    tokio_runtime.block_on(run(config, quick, runtime))
}

async fn run(config: Config, quick: bool, runtime: Option<Runtime>) -> ExitCode {
    let binary = PathBuf::from(env!("CARGO_BIN_EXE_skiff"));
    let mut header = String::new();
    let _ = writeln!(
        header,
        "command: cargo bench -p skiff --bench pods{}{}{}",
        if quick || runtime.is_some() {
            " --"
        } else {
            ""
        },
        runtime
            .map(|r| format!(" --runtime {}", r.name()))
            .unwrap_or_default(),
        if quick { " --quick" } else { "" }
    );
    let _ = writeln!(header, "machine: {}", machine_description());
    let _ = writeln!(
        header,
        "date: {}, load average at start: {}",
        jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ"),
        load_average()
    );
    let _ = writeln!(
        header,
        "server: skiff up --listen 127.0.0.1:0 --node-name {NODE_NAME}{}, the {} build \
         beside this benchmark (one real node; {})",
        runtime
            .map(|r| format!(" {}", r.server_flags().join(" ")))
            .unwrap_or_default(),
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        },
        if runtime == Some(Runtime::Oci) {
            "pods are OCI containers of the embedded runtime, each in its own namespaces, \
             cgroup and network namespace"
        } else {
            "pods are processes, each in its own mount and UTS namespace when run as root"
        }
    );
    say!("{}", header.trim_end());
    say!("");

    let mut server = match Server::start(&binary, runtime) {
        Ok(server) => server,
        Err(e) => {
            complain!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let run_started = Instant::now();
    let tracker = SharedTracker::default();
    let uids = Arc::new(Mutex::new(HashSet::new()));
    let mut target = None;
    let mut watcher = None;
    let outcome = tokio::time::timeout(RUN_LIMIT, async {
        let serving = wait_until_serving(&mut server).await?;
        target = Some(serving.clone());
        let resource_version = current_resource_version(&serving).await?;
        watcher = Some(tokio::spawn(follow_pods(
            serving.clone(),
            tracker.clone(),
            resource_version,
        )));
        let mut bench = Bench {
            target: serving,
            tracker: tracker.clone(),
            uids: uids.clone(),
            sequence: 0,
            reaped_mark: 0,
            running_pods: None,
        };
        match runtime {
            Some(_) => bench.compare(&mut server, config).await,
            None => bench.run(&mut server, config).await,
        }
    })
    .await;
    let failed = match outcome {
        Ok(Ok(())) => false,
        Ok(Err(e)) => {
            complain!(
                "error: {e}\n--- server log (tail) ---\n{}",
                server.log_tail()
            );
            true
        }
        Err(_) => {
            complain!("error: the run exceeded its limit of {RUN_LIMIT:?}; cleaning up");
            true
        }
    };
    if let Some(watcher) = watcher {
        watcher.abort();
    }

    // Cleanup, bounded and whatever happened above.
    if failed {
        if let Some(target) = &target {
            match tokio::time::timeout(Duration::from_secs(60), delete_leftover_pods(target)).await
            {
                Ok(Ok(count)) => say!("cleanup: deleted {count} leftover pods"),
                Ok(Err(e)) => complain!("cleanup: deleting leftover pods failed: {e}"),
                Err(_) => complain!("cleanup: deleting leftover pods timed out"),
            }
        }
    }
    let stopped = server.stop();
    let mut uids = uids.lock().unwrap_or_else(|p| p.into_inner()).clone();
    uids.extend(lock(&tracker).pods.values().filter_map(|p| p.uid.clone()));
    let leftovers = pod_processes(&uids);
    for (pid, _) in &leftovers {
        send_signal(*pid, Signal::SIGKILL);
    }
    say!(
        "shutdown: the server {stopped}; pod processes left afterwards: {}{}",
        leftovers.len(),
        if leftovers.is_empty() {
            String::new()
        } else {
            " (killed with SIGKILL)".to_string()
        }
    );
    say!(
        "total time {:.1} s, load average at the end: {}",
        run_started.elapsed().as_secs_f64(),
        load_average()
    );
    if failed || !leftovers.is_empty() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
