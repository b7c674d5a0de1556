//! End-to-end figures for the API server, printed as a table: the real HTTPS server on
//! loopback, bearer-token authentication, admission, and a fresh SQLite store in a temporary
//! directory, driven by HTTP/1.1 clients that each keep one connection open as client-go does.
//!
//! Run with `cargo bench -p skiff-apiserver --bench api`; add `-- --quick` (or set
//! `SKIFF_BENCH_QUICK=1`) for a small sanity run, and `SKIFF_BENCH_DIR` to put the database on
//! another disk. Clients and server share one process and its cores, so every figure is what the
//! server does while also paying for its load generator: a floor, not a ceiling.
//!
//! Requests carry a client-go style user agent, so writes record `managedFields` under it;
//! `SKIFF_BENCH_ANONYMOUS=1` leaves it out and with it the recording, for comparison.
//!
//! With `SKIFF_BENCH_SERVER=ADDR:PORT` and `SKIFF_BENCH_DATA_DIR=DIR` the same load goes to a
//! running `skiff up` instead (its token and CA are read from its data directory), the
//! in-process breakdown is left out, and memory figures are that process's when
//! `SKIFF_BENCH_PID` names it.

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HOST, USER_AGENT};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, SanType};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::ServerName;
use serde::de::IgnoredAny;
use serde::Deserialize;
use skiff_api::resources::{self, ResourceInfo};
use skiff_apiserver::registry::{ListOptions, Registry};
use skiff_apiserver::server::{self, ServerState};
use skiff_apiserver::system;
use skiff_store::{SqliteStore, Store};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// The Accept header kubectl sends for `kubectl get`: server-side printing, JSON fallback.
const TABLE_ACCEPT: &str = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json";
/// The namespace the ConfigMaps live in.
const CONFIGMAP_NAMESPACE: &str = "bench";
/// The namespace the Deployments live in, apart so each list sees one kind's count.
const DEPLOYMENT_NAMESPACE: &str = "bench-apps";
/// Distinct values of the `shard` label; a selector on one shard matches this fraction.
const SHARDS: usize = 10;
/// Size of the ConfigMap payload, so a stored ConfigMap is a little over 1 KiB.
const PAYLOAD_BYTES: usize = 1024;

/// Why a run failed; any failure aborts the run, since later figures would be meaningless.
#[derive(Debug, thiserror::Error)]
enum BenchError {
    #[error("{context}: {source}")]
    Io {
        context: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("setting up: {0}")]
    Setup(String),
    #[error("HTTP: {0}")]
    Http(#[from] hyper::Error),
    #[error("building a request: {0}")]
    Request(#[from] hyper::http::Error),
    #[error("{method} {path}: expected {expected}, got {status}: {body}")]
    Unexpected {
        method: Method,
        path: String,
        expected: StatusCode,
        status: StatusCode,
        body: String,
    },
    #[error("decoding the answer to {path}: {source}")]
    Decode {
        path: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("{path}: expected {expected} items, got {actual}")]
    Count {
        path: String,
        expected: usize,
        actual: usize,
    },
    #[error("in-process registry call: {0}")]
    Registry(#[from] skiff_apiserver::status::ApiError),
    #[error("a client task failed: {0}")]
    Join(#[from] tokio::task::JoinError),
}

fn io(context: &'static str) -> impl FnOnce(std::io::Error) -> BenchError {
    move |source| BenchError::Io { context, source }
}

/// How much work one run does; the quick run checks that everything works in seconds.
#[derive(Clone, Copy, Debug)]
struct Config {
    /// ConfigMaps (and Deployments) that exist once creation is done.
    objects: usize,
    /// How many of them one client creates one after another before the concurrent phase.
    sequential: usize,
    /// Concurrent clients, each with its own connection.
    clients: usize,
    /// Timed repetitions of each list.
    list_runs: usize,
    /// Timed single-object reads.
    gets: usize,
}

impl Config {
    const FULL: Config = Config {
        objects: 10_000,
        sequential: 1_000,
        clients: 32,
        list_runs: 20,
        gets: 2_000,
    };
    const QUICK: Config = Config {
        objects: 1_000,
        sequential: 200,
        clients: 32,
        list_runs: 5,
        gets: 300,
    };
}

/// Where the server listens and how to reach it.
struct Target {
    address: SocketAddr,
    authorization: String,
    tls: TlsConnector,
}

/// One client: a kept-alive TLS connection sending one request at a time.
struct Connection {
    sender: SendRequest<Full<Bytes>>,
    host: String,
    authorization: String,
}

impl Connection {
    async fn open(target: &Target) -> Result<Connection, BenchError> {
        let tcp = TcpStream::connect(target.address)
            .await
            .map_err(io("connecting"))?;
        tcp.set_nodelay(true).map_err(io("setting TCP_NODELAY"))?;
        let name = ServerName::IpAddress(target.address.ip().into());
        let tls = target
            .tls
            .connect(name, tcp)
            .await
            .map_err(io("TLS handshake"))?;
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await?;
        tokio::spawn(async move {
            // The connection ends when the sender is dropped; its error then is of no interest.
            let _ = connection.await;
        });
        Ok(Connection {
            sender,
            host: target.address.to_string(),
            authorization: target.authorization.clone(),
        })
    }

    /// Sends one request and reads the whole answer, failing unless its status is `expected`.
    async fn call(
        &mut self,
        method: Method,
        path: &str,
        content_type: Option<&str>,
        accept: &str,
        body: Bytes,
        expected: StatusCode,
    ) -> Result<Bytes, BenchError> {
        self.sender.ready().await?;
        let mut request = Request::builder()
            .method(method.clone())
            .uri(path)
            .header(HOST, &self.host)
            .header(AUTHORIZATION, &self.authorization)
            .header(ACCEPT, accept);
        // Like client-go, so every write is recorded in managedFields as kubectl's are;
        // `SKIFF_BENCH_ANONYMOUS=1` sends none, so writes record no field manager.
        if std::env::var_os("SKIFF_BENCH_ANONYMOUS").is_none_or(|v| v.is_empty() || v == "0") {
            request = request.header(USER_AGENT, "skiff-bench/v0 (linux/amd64)");
        }
        if let Some(content_type) = content_type {
            request = request.header(CONTENT_TYPE, content_type);
        }
        let response = self
            .sender
            .send_request(request.body(Full::new(body))?)
            .await?;
        let status = response.status();
        let body = response.into_body().collect().await?.to_bytes();
        if status != expected {
            return Err(BenchError::Unexpected {
                method,
                path: path.to_string(),
                expected,
                status,
                body: String::from_utf8_lossy(&body).chars().take(400).collect(),
            });
        }
        Ok(body)
    }
}

/// The part of a written object the clients keep: its resourceVersion, for the next PUT.
#[derive(Deserialize)]
struct Written {
    metadata: WrittenMeta,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WrittenMeta {
    resource_version: String,
}

/// The parts of a list (or Table) the clients look at: how many entries, and where to go on.
#[derive(Deserialize)]
struct ListPage {
    metadata: ListMeta,
    #[serde(default)]
    items: Vec<IgnoredAny>,
    #[serde(default)]
    rows: Vec<IgnoredAny>,
}

#[derive(Deserialize)]
struct ListMeta {
    #[serde(rename = "continue", default)]
    continue_token: Option<String>,
}

fn decode<'a, T: Deserialize<'a>>(path: &str, body: &'a [u8]) -> Result<T, BenchError> {
    serde_json::from_slice(body).map_err(|source| BenchError::Decode {
        path: path.to_string(),
        source,
    })
}

fn configmap_name(n: usize) -> String {
    format!("cm-{n:05}")
}

fn deployment_name(n: usize) -> String {
    format!("web-{n:05}")
}

fn configmap_path(n: usize) -> String {
    format!(
        "/api/v1/namespaces/{CONFIGMAP_NAMESPACE}/configmaps/{}",
        configmap_name(n)
    )
}

/// A payload of `PAYLOAD_BYTES` that differs per object, so nothing can be shared or elided.
fn payload(n: usize) -> String {
    let seed = format!("{n:05}-");
    seed.chars()
        .chain("abcdefghijklmnopqrstuvwxyz0123456789".chars())
        .cycle()
        .take(PAYLOAD_BYTES)
        .collect()
}

/// A ConfigMap as a client would send it; `extra` adds a data key (for updates) and
/// `resource_version` makes the PUT conditional.
fn configmap(n: usize, extra: Option<(&str, &str)>, resource_version: Option<&str>) -> Bytes {
    let mut data = serde_json::json!({ "payload": payload(n) });
    if let Some((key, value)) = extra {
        data[key] = serde_json::Value::String(value.to_string());
    }
    let mut metadata = serde_json::json!({
        "name": configmap_name(n),
        "labels": {"app": "bench", "shard": (n % SHARDS).to_string()},
    });
    if let Some(rv) = resource_version {
        metadata["resourceVersion"] = serde_json::Value::String(rv.to_string());
    }
    let body = serde_json::json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": metadata,
        "data": data,
    });
    Bytes::from(body.to_string())
}

/// A typical small web Deployment.
fn deployment(n: usize) -> Bytes {
    let name = deployment_name(n);
    let body = serde_json::json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": {"app": "web", "shard": (n % SHARDS).to_string()}},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web", "instance": name}},
            "template": {
                "metadata": {"labels": {"app": "web", "instance": name}},
                "spec": {"containers": [{
                    "name": "web",
                    "image": "nginx:1.27",
                    "ports": [{"containerPort": 80, "name": "http"}],
                    "env": [{"name": "INSTANCE", "value": name}, {"name": "LOG_LEVEL", "value": "info"}],
                    "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"memory": "128Mi"}},
                    "readinessProbe": {"httpGet": {"path": "/healthz", "port": "http"}},
                }]},
            },
        },
    });
    Bytes::from(body.to_string())
}

/// One kind of timed request, so the sequential and concurrent drivers share the code.
#[derive(Clone, Copy, Debug)]
enum Op {
    CreateConfigMap,
    CreateDeployment,
    /// PUT with the last known resourceVersion; the tag goes into the data so it is a change.
    PutConfigMap(&'static str),
    /// Merge PATCH of one data key; the tag makes it a change.
    PatchConfigMap(&'static str),
    GetConfigMap,
}

impl Op {
    /// Performs the request for object `n`; returns the new resourceVersion for writes that
    /// the PUTs need to know.
    async fn perform(
        self,
        connection: &mut Connection,
        n: usize,
        resource_version: &str,
    ) -> Result<Option<String>, BenchError> {
        match self {
            Op::CreateConfigMap => {
                let path = format!("/api/v1/namespaces/{CONFIGMAP_NAMESPACE}/configmaps");
                let body = connection
                    .call(
                        Method::POST,
                        &path,
                        Some("application/json"),
                        "application/json",
                        configmap(n, None, None),
                        StatusCode::CREATED,
                    )
                    .await?;
                let written: Written = decode(&path, &body)?;
                Ok(Some(written.metadata.resource_version))
            }
            Op::CreateDeployment => {
                let path = format!("/apis/apps/v1/namespaces/{DEPLOYMENT_NAMESPACE}/deployments");
                connection
                    .call(
                        Method::POST,
                        &path,
                        Some("application/json"),
                        "application/json",
                        deployment(n),
                        StatusCode::CREATED,
                    )
                    .await?;
                Ok(None)
            }
            Op::PutConfigMap(tag) => {
                let path = configmap_path(n);
                let body = connection
                    .call(
                        Method::PUT,
                        &path,
                        Some("application/json"),
                        "application/json",
                        configmap(n, Some(("revision", tag)), Some(resource_version)),
                        StatusCode::OK,
                    )
                    .await?;
                let written: Written = decode(&path, &body)?;
                Ok(Some(written.metadata.resource_version))
            }
            Op::PatchConfigMap(tag) => {
                let path = configmap_path(n);
                let patch = serde_json::json!({"data": {"patched": tag}}).to_string();
                let body = connection
                    .call(
                        Method::PATCH,
                        &path,
                        Some("application/merge-patch+json"),
                        "application/json",
                        Bytes::from(patch),
                        StatusCode::OK,
                    )
                    .await?;
                let written: Written = decode(&path, &body)?;
                Ok(Some(written.metadata.resource_version))
            }
            Op::GetConfigMap => {
                connection
                    .call(
                        Method::GET,
                        &configmap_path(n),
                        None,
                        "application/json",
                        Bytes::new(),
                        StatusCode::OK,
                    )
                    .await?;
                Ok(None)
            }
        }
    }
}

/// What one timed phase measured.
struct Measured {
    operations: usize,
    elapsed: Duration,
    latencies: Vec<Duration>,
}

/// Runs `op` on each of `objects` in order over one connection.
async fn sequentially(
    connection: &mut Connection,
    op: Op,
    objects: &[usize],
    versions: &mut [String],
) -> Result<Measured, BenchError> {
    let mut latencies = Vec::with_capacity(objects.len());
    let started = Instant::now();
    for &n in objects {
        let began = Instant::now();
        let version = versions.get(n).map(String::as_str).unwrap_or("");
        let new_version = op.perform(connection, n, version).await?;
        latencies.push(began.elapsed());
        if let (Some(v), Some(slot)) = (new_version, versions.get_mut(n)) {
            *slot = v;
        }
    }
    Ok(Measured {
        operations: objects.len(),
        elapsed: started.elapsed(),
        latencies,
    })
}

/// Runs `op` on each of `objects`, spread round-robin over `connections`, all at once.
/// Connections are opened before the clock starts, as long-lived clients hold theirs.
async fn concurrently(
    target: &Target,
    clients: usize,
    op: Op,
    objects: &[usize],
    versions: &mut [String],
) -> Result<Measured, BenchError> {
    let mut connections = Vec::with_capacity(clients);
    for _ in 0..clients {
        connections.push(Connection::open(target).await?);
    }
    let started = Instant::now();
    let tasks: Vec<_> = connections
        .into_iter()
        .enumerate()
        .map(|(client, mut connection)| {
            let mine: Vec<(usize, String)> = objects
                .iter()
                .skip(client)
                .step_by(clients)
                .map(|&n| (n, versions.get(n).cloned().unwrap_or_default()))
                .collect();
            tokio::spawn(async move {
                let mut latencies = Vec::with_capacity(mine.len());
                let mut written = Vec::new();
                for (n, version) in mine {
                    let began = Instant::now();
                    let new_version = op.perform(&mut connection, n, &version).await?;
                    latencies.push(began.elapsed());
                    if let Some(v) = new_version {
                        written.push((n, v));
                    }
                }
                Ok::<_, BenchError>((latencies, written))
            })
        })
        .collect();
    let mut latencies = Vec::with_capacity(objects.len());
    let mut outcomes = Vec::with_capacity(tasks.len());
    for task in tasks {
        outcomes.push(task.await?);
    }
    let elapsed = started.elapsed();
    for outcome in outcomes {
        let (task_latencies, written) = outcome?;
        latencies.extend(task_latencies);
        for (n, v) in written {
            if let Some(slot) = versions.get_mut(n) {
                *slot = v;
            }
        }
    }
    Ok(Measured {
        operations: objects.len(),
        elapsed,
        latencies,
    })
}

/// Runs timed phases of single-object requests and prints a row for each, with how many
/// writes each store commit carried (group commit is what concurrency buys for writes).
struct Phases<'a> {
    target: &'a Target,
    main: &'a mut Connection,
    sqlite: Option<&'a SqliteStore>,
    clients: usize,
}

impl Phases<'_> {
    async fn run(
        &mut self,
        label: &str,
        op: Op,
        objects: &[usize],
        concurrent: bool,
        versions: &mut [String],
    ) -> Result<(), BenchError> {
        let before = self.sqlite.map(SqliteStore::stats).unwrap_or_default();
        let measured = if concurrent {
            concurrently(self.target, self.clients, op, objects, versions).await?
        } else {
            sequentially(self.main, op, objects, versions).await?
        };
        let after = self.sqlite.map(SqliteStore::stats).unwrap_or_default();
        let writes = after.writes.saturating_sub(before.writes);
        let commits = after.transactions.saturating_sub(before.transactions);
        let note = if writes == 0 {
            String::new()
        } else {
            format!(
                "{:.1} writes per commit",
                writes as f64 / commits.max(1) as f64
            )
        };
        let who = if concurrent {
            format!("{} clients", self.clients)
        } else {
            "1 client".to_string()
        };
        Table::row(&format!("{label}, {who}"), measured, &note);
        Ok(())
    }
}

fn percentile(sorted: &[Duration], percent: usize) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = (sorted.len() * percent).div_ceil(100).max(1);
    sorted[rank.min(sorted.len()) - 1]
}

fn millis(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1000.0)
}

/// The printed table; rows appear as phases finish so a long run shows progress.
struct Table;

impl Table {
    fn header() {
        println!(
            "{:<50} {:>7} {:>9} {:>9} {:>9} {:>9}  note",
            "benchmark", "ops", "ops/s", "p50 ms", "p99 ms", "max ms"
        );
        println!("{}", "-".repeat(110));
    }

    fn row(name: &str, measured: Measured, note: &str) {
        let mut sorted = measured.latencies;
        sorted.sort_unstable();
        let per_second = measured.operations as f64 / measured.elapsed.as_secs_f64();
        println!(
            "{name:<50} {:>7} {per_second:>9.0} {:>9} {:>9} {:>9}  {note}",
            measured.operations,
            millis(percentile(&sorted, 50)),
            millis(percentile(&sorted, 99)),
            millis(sorted.last().copied().unwrap_or_default()),
        );
    }

    fn note(text: &str) {
        println!("  {text}");
    }
}

/// The process whose memory is reported: this one, or the server `SKIFF_BENCH_PID` names.
fn measured_process() -> String {
    std::env::var("SKIFF_BENCH_PID").unwrap_or_else(|_| "self".to_owned())
}

/// Memory figures of the measured process (server and clients when in process), in KiB.
fn memory_kib() -> (u64, u64) {
    let status =
        std::fs::read_to_string(format!("/proc/{}/status", measured_process())).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|kib| kib.parse::<u64>().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn report_memory(when: &str) {
    let (rss, hwm) = memory_kib();
    Table::note(&format!(
        "process memory {when}: VmRSS {:.1} MiB, VmHWM {:.1} MiB",
        rss as f64 / 1024.0,
        hwm as f64 / 1024.0
    ));
}

/// The 1, 5 and 15 minute load averages: other work on the machine moves every figure here,
/// and this says how much there was.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| "?".into())
}

/// The machine and toolchain, so a figure can be compared with the right baseline.
fn describe_machine() -> String {
    let cores = std::thread::available_parallelism()
        .map(|n| n.get().to_string())
        .unwrap_or_else(|_| "?".into());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let memory = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse::<u64>().ok())
        .map(|kib| format!("{:.1} GiB", kib as f64 / 1024.0 / 1024.0))
        .unwrap_or_else(|| "?".into());
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|rest| rest.trim_start_matches([' ', '\t', ':']).to_string())
        .unwrap_or_else(|| "?".into());
    let rustc = std::process::Command::new("rustc")
        .arg("--version")
        .output()
        .ok()
        .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_string())
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "rustc ?".into());
    let load = load_average();
    let now = jiff::Timestamp::now();
    let mut text = String::new();
    let _ = write!(
        text,
        "machine: {cores} cores ({cpu}), {memory} memory, {rustc}\ndate: {}, load average at start: {load}",
        now.round(jiff::Unit::Second).unwrap_or(now)
    );
    text
}

/// Serving material like the cluster's own: a CA and a serving certificate it signed for
/// 127.0.0.1, so the client verifies a real chain.
fn certificates() -> Result<(Vec<u8>, Vec<u8>, rustls::RootCertStore), BenchError> {
    let setup = |e: rcgen::Error| BenchError::Setup(format!("certificates: {e}"));
    let ca_key = KeyPair::generate().map_err(setup)?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(setup)?;
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "bench-ca");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key).map_err(setup)?;
    let issuer = Issuer::from_params(&ca_params, ca_key);
    let key = KeyPair::generate().map_err(setup)?;
    let mut params = CertificateParams::new(vec!["localhost".to_string()]).map_err(setup)?;
    params
        .subject_alt_names
        .push(SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)));
    let cert = params.signed_by(&key, &issuer).map_err(setup)?;
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(ca_cert.der().clone())
        .map_err(|e| BenchError::Setup(format!("trusting the CA: {e}")))?;
    Ok((
        cert.pem().into_bytes(),
        key.serialize_pem().into_bytes(),
        roots,
    ))
}

fn client_tls(roots: rustls::RootCertStore) -> Result<TlsConnector, BenchError> {
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| BenchError::Setup(format!("TLS versions: {e}")))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(TlsConnector::from(Arc::new(config)))
}

/// Times `runs` reads of a whole list at `path` (following `continue` tokens when paged),
/// checking the first one returns `expected` entries. Returns whole-list and per-page figures
/// and the size of the first answer.
async fn time_list(
    connection: &mut Connection,
    path: &str,
    accept: &str,
    runs: usize,
    expected: usize,
) -> Result<(Measured, Measured, usize), BenchError> {
    let mut whole = Vec::with_capacity(runs);
    let mut pages = Vec::new();
    let mut first_size = 0;
    let started = Instant::now();
    for run in 0..runs {
        let began = Instant::now();
        let mut token: Option<String> = None;
        let mut entries = 0;
        loop {
            let page_path = match &token {
                Some(t) => format!("{path}&continue={t}"),
                None => path.to_string(),
            };
            let page_began = Instant::now();
            let body = connection
                .call(
                    Method::GET,
                    &page_path,
                    None,
                    accept,
                    Bytes::new(),
                    StatusCode::OK,
                )
                .await?;
            pages.push(page_began.elapsed());
            if run == 0 && token.is_none() {
                first_size = body.len();
            }
            let page: ListPage = decode(&page_path, &body)?;
            entries += page.items.len() + page.rows.len();
            token = page.metadata.continue_token.filter(|t| !t.is_empty());
            if token.is_none() {
                break;
            }
        }
        whole.push(began.elapsed());
        if entries != expected {
            return Err(BenchError::Count {
                path: path.to_string(),
                expected,
                actual: entries,
            });
        }
    }
    let elapsed = started.elapsed();
    let page_count = pages.len();
    Ok((
        Measured {
            operations: runs,
            elapsed,
            latencies: whole,
        },
        Measured {
            operations: page_count,
            elapsed,
            latencies: pages,
        },
        first_size,
    ))
}

/// Times the server's own share of a full list, without HTTP, TLS or a client: reading and
/// decoding every object (`Registry::list`), encoding the answer, and freeing the decoded
/// objects; then the path JSON list answers take, reading the stored objects
/// (`Registry::list_stored`) and writing each one's stored bytes. Shows where a list's time
/// goes when the end-to-end figure looks slow.
async fn time_list_in_process(
    registry: &Registry,
    resource: &ResourceInfo,
    namespace: &str,
    runs: usize,
) -> Result<[Measured; 4], BenchError> {
    let mut phases: [Vec<Duration>; 4] = Default::default();
    for _ in 0..runs {
        let began = Instant::now();
        let list = registry
            .list_stored(resource, Some(namespace), &ListOptions::default())
            .await?;
        let mut written = Vec::new();
        for kv in &list.items {
            registry.write_listed_json(resource, kv, &mut written)?;
        }
        drop(list);
        drop(written);
        phases[3].push(began.elapsed());
        let began = Instant::now();
        let list = registry
            .list(resource, Some(namespace), &ListOptions::default())
            .await?;
        let decoded = Instant::now();
        let encoded = serde_json::to_vec(&list.items).map_err(|source| BenchError::Decode {
            path: namespace.to_string(),
            source,
        })?;
        let encoded_at = Instant::now();
        drop(list);
        drop(encoded);
        phases[0].push(decoded - began);
        phases[1].push(encoded_at - decoded);
        phases[2].push(encoded_at.elapsed());
    }
    // Each part's rate is over its own time, not the whole loop's.
    Ok(phases.map(|latencies| Measured {
        operations: runs,
        elapsed: latencies.iter().sum(),
        latencies,
    }))
}

/// Prints the in-process breakdown of one kind's full list under its end-to-end row.
async fn report_list_in_process(
    registry: &Registry,
    (group, version, plural): (&str, &str, &str),
    namespace: &str,
    runs: usize,
) -> Result<(), BenchError> {
    let resource = resources::find(group, version, plural)
        .ok_or_else(|| BenchError::Setup(format!("no resource {group}/{version} {plural}")))?;
    let [decode, encode, free, stored] =
        time_list_in_process(registry, resource, namespace, runs).await?;
    let note = "in process, no HTTP";
    Table::row("  decoded: read + decode (Registry::list)", decode, note);
    Table::row("  decoded: JSON encoding of the items", encode, note);
    Table::row("  decoded: freeing the decoded items", free, note);
    Table::row("  stored: read + write stored bytes", stored, note);
    Ok(())
}

fn megabytes(bytes: usize) -> String {
    format!("{:.1} MB per answer", bytes as f64 / 1_000_000.0)
}

/// A running `skiff up` to send the load to, from `SKIFF_BENCH_SERVER` and
/// `SKIFF_BENCH_DATA_DIR`.
fn external_target() -> Result<Option<Target>, BenchError> {
    let Ok(server) = std::env::var("SKIFF_BENCH_SERVER") else {
        return Ok(None);
    };
    let address: SocketAddr = server
        .parse()
        .map_err(|e| BenchError::Setup(format!("SKIFF_BENCH_SERVER {server:?}: {e}")))?;
    let dir = std::env::var_os("SKIFF_BENCH_DATA_DIR").ok_or_else(|| {
        BenchError::Setup("SKIFF_BENCH_SERVER needs SKIFF_BENCH_DATA_DIR".to_owned())
    })?;
    let dir = std::path::PathBuf::from(dir);
    let token = std::fs::read_to_string(dir.join("token")).map_err(io("reading the token"))?;
    let ca = std::fs::read(dir.join("ca.crt")).map_err(io("reading the CA"))?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_slice_iter(&ca) {
        let cert = cert.map_err(|e| BenchError::Setup(format!("parsing the CA: {e}")))?;
        roots
            .add(cert)
            .map_err(|e| BenchError::Setup(format!("trusting the CA: {e}")))?;
    }
    Ok(Some(Target {
        address,
        authorization: format!("Bearer {}", token.trim()),
        tls: client_tls(roots)?,
    }))
}

async fn run(config: Config, command: &str) -> Result<(), BenchError> {
    match external_target()? {
        Some(target) => load(config, command, &target, None).await,
        None => run_in_process(config, command).await,
    }
}

async fn run_in_process(config: Config, command: &str) -> Result<(), BenchError> {
    let dir = match std::env::var_os("SKIFF_BENCH_DIR") {
        Some(base) => tempfile::tempdir_in(base),
        None => tempfile::tempdir(),
    }
    .map_err(io("creating the data directory"))?;
    let sqlite = Arc::new(
        SqliteStore::open(&dir.path().join("state.db"))
            .map_err(|e| BenchError::Setup(format!("opening the store: {e}")))?,
    );
    let store: Arc<dyn Store> = sqlite.clone();
    let registry = Registry::new(store);
    system::ensure_builtin_namespaces(&registry)
        .await
        .map_err(|e| BenchError::Setup(format!("built-in namespaces: {e}")))?;

    let (cert_pem, key_pem, roots) = certificates()?;
    let listener = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .map_err(io("binding the listener"))?;
    let address = listener.local_addr().map_err(io("reading the address"))?;
    let token = format!("bench-{}", uuid::Uuid::new_v4().simple());
    let state = Arc::new(ServerState {
        registry: registry.clone(),
        tokens: vec![token.clone()],
        advertise_address: address.to_string(),
        logs: None,
        streams: None,
        metrics: None,
        inflight: Default::default(),
    });
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(server::serve_tls(
        listener,
        state,
        cert_pem,
        key_pem,
        async move {
            let _ = stopped.await;
        },
    ));
    let target = Target {
        address,
        authorization: format!("Bearer {token}"),
        tls: client_tls(roots)?,
    };
    load(config, command, &target, Some((&registry, &*sqlite))).await?;
    let _ = stop.send(());
    match server.await? {
        Ok(()) => Ok(()),
        Err(e) => Err(BenchError::Io {
            context: "serving",
            source: e,
        }),
    }
}

/// The whole workload against `target`; `in_process` is the server's registry and store when
/// it runs in this process, for commit counts and the in-process list breakdown.
async fn load(
    config: Config,
    command: &str,
    target: &Target,
    in_process: Option<(&Registry, &SqliteStore)>,
) -> Result<(), BenchError> {
    println!("command: {command}");
    println!("{}", describe_machine());
    println!(
        "workload: {} ConfigMaps (~1 KiB) in one namespace and {} Deployments in another, \
         {} sequential then {} concurrent clients; HTTP/1.1 over TLS with a bearer token\n",
        config.objects, config.objects, config.sequential, config.clients
    );
    Table::header();

    let mut main = Connection::open(target).await?;
    for namespace in [CONFIGMAP_NAMESPACE, DEPLOYMENT_NAMESPACE] {
        let body = serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}});
        main.call(
            Method::POST,
            "/api/v1/namespaces",
            Some("application/json"),
            "application/json",
            Bytes::from(body.to_string()),
            StatusCode::CREATED,
        )
        .await?;
    }

    let all: Vec<usize> = (0..config.objects).collect();
    let sequential_part = &all[..config.sequential.min(all.len())];
    let concurrent_part = &all[config.sequential.min(all.len())..];
    let clients = config.clients;
    let mut versions = vec![String::new(); config.objects];
    let mut unused = Vec::new();

    let mut writer = Phases {
        target,
        main: &mut main,
        sqlite: in_process.map(|(_, sqlite)| sqlite),
        clients,
    };
    let (first, rest) = (sequential_part, concurrent_part);
    writer
        .run(
            "create ConfigMap",
            Op::CreateConfigMap,
            first,
            false,
            &mut versions,
        )
        .await?;
    writer
        .run(
            "create ConfigMap",
            Op::CreateConfigMap,
            rest,
            true,
            &mut versions,
        )
        .await?;
    writer
        .run(
            "create Deployment",
            Op::CreateDeployment,
            first,
            false,
            &mut unused,
        )
        .await?;
    writer
        .run(
            "create Deployment",
            Op::CreateDeployment,
            rest,
            true,
            &mut unused,
        )
        .await?;
    report_memory(&format!("with {} objects of each kind", config.objects));
    let put = "update ConfigMap (PUT with rv)";
    writer
        .run(put, Op::PutConfigMap("put-1"), first, false, &mut versions)
        .await?;
    writer
        .run(put, Op::PutConfigMap("put-n"), &all, true, &mut versions)
        .await?;
    let patch = "merge PATCH ConfigMap";
    writer
        .run(
            patch,
            Op::PatchConfigMap("patch-1"),
            first,
            false,
            &mut versions,
        )
        .await?;
    writer
        .run(
            patch,
            Op::PatchConfigMap("patch-n"),
            &all,
            true,
            &mut versions,
        )
        .await?;

    // Reads spread over the whole key space (7919 is prime, so the stride visits everything).
    let spread: Vec<usize> = (0..config.gets)
        .map(|i| (i * 7919) % config.objects.max(1))
        .collect();
    writer
        .run(
            "get ConfigMap",
            Op::GetConfigMap,
            &spread,
            false,
            &mut unused,
        )
        .await?;
    writer
        .run("get ConfigMap", Op::GetConfigMap, &all, true, &mut unused)
        .await?;

    let configmaps = format!("/api/v1/namespaces/{CONFIGMAP_NAMESPACE}/configmaps");
    let deployments = format!("/apis/apps/v1/namespaces/{DEPLOYMENT_NAMESPACE}/deployments");
    let runs = config.list_runs;
    let n = config.objects;
    let (m, _, size) = time_list(
        &mut main,
        &format!("{configmaps}?"),
        "application/json",
        runs,
        n,
    )
    .await?;
    Table::row(&format!("list {n} ConfigMaps, JSON"), m, &megabytes(size));
    let (m, _, size) =
        time_list(&mut main, &format!("{configmaps}?"), TABLE_ACCEPT, runs, n).await?;
    Table::row(&format!("list {n} ConfigMaps, Table"), m, &megabytes(size));
    let (whole, pages, size) = time_list(
        &mut main,
        &format!("{configmaps}?limit=500"),
        "application/json",
        runs,
        n,
    )
    .await?;
    Table::row(
        &format!("list {n} ConfigMaps, limit=500, all pages"),
        whole,
        "",
    );
    Table::row(
        "  one page of 500",
        pages,
        &format!("{} (first page)", megabytes(size)),
    );
    let selected = (0..n).filter(|i| i % SHARDS == 3).count();
    let (m, _, size) = time_list(
        &mut main,
        &format!("{configmaps}?labelSelector=shard%3D3"),
        "application/json",
        runs,
        selected,
    )
    .await?;
    let median = {
        let mut sorted = m.latencies.clone();
        sorted.sort_unstable();
        percentile(&sorted, 50)
    };
    let per_stored_object = median.as_secs_f64() * 1e6 / n.max(1) as f64;
    Table::row(
        "list ConfigMaps, labelSelector shard=3",
        m,
        &format!(
            "{selected} of {n} match; {}; p50 {per_stored_object:.2} µs per stored object",
            megabytes(size)
        ),
    );
    let (m, _, size) =
        time_list(&mut main, &format!("{deployments}?"), TABLE_ACCEPT, runs, n).await?;
    Table::row(&format!("list {n} Deployments, Table"), m, &megabytes(size));
    let (m, _, size) = time_list(
        &mut main,
        &format!("{deployments}?"),
        "application/json",
        runs,
        n,
    )
    .await?;
    Table::row(&format!("list {n} Deployments, JSON"), m, &megabytes(size));
    // Before the in-process breakdown, whose decoded lists would raise the high-water mark.
    report_memory("after the HTTP lists (VmHWM includes their peaks)");
    let Some((registry, _)) = in_process else {
        return Ok(());
    };
    Table::note(&format!("{n} ConfigMaps, in process:"));
    let configmap_resource = ("", "v1", "configmaps");
    report_list_in_process(registry, configmap_resource, CONFIGMAP_NAMESPACE, runs).await?;
    Table::note(&format!("{n} Deployments, in process:"));
    let deployment_resource = ("apps", "v1", "deployments");
    report_list_in_process(registry, deployment_resource, DEPLOYMENT_NAMESPACE, runs).await?;
    report_memory("at the end (VmHWM includes the decoded lists)");
    Ok(())
}

fn main() -> std::process::ExitCode {
    // `cargo bench` appends `--bench`; only `--quick` means anything here.
    let quick = std::env::args().any(|a| a == "--quick")
        || std::env::var_os("SKIFF_BENCH_QUICK").is_some_and(|v| !v.is_empty() && v != "0");
    let (config, command) = if quick {
        (
            Config::QUICK,
            "cargo bench -p skiff-apiserver --bench api -- --quick",
        )
    } else {
        (Config::FULL, "cargo bench -p skiff-apiserver --bench api")
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let started = Instant::now();
    match runtime.block_on(run(config, command)) {
        Ok(()) => {
            println!(
                "\ntotal time {:.1} s, load average at the end: {}",
                started.elapsed().as_secs_f64(),
                load_average()
            );
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
