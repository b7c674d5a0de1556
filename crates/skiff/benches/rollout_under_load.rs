//! Traffic through the service proxy while a Deployment rolls: does any request fail, what does
//! it cost in latency, and how does the proxy compare with talking to a pod directly.
//!
//! It drives a real `skiff up` (with its real node: pods are demo-server processes) through the
//! real `kubectl`; cargo builds the `skiff` binary next to it:
//!
//! ```text
//! cargo bench -p skiff --bench rollout-under-load
//! cargo bench -p skiff --bench rollout-under-load -- --clients 4 --measure 10
//! ```
//!
//! Phases:
//! 1. a 3-replica Deployment of `127.0.0.1:9/skiff-test/demo:v1` (the demo test image, imported at start) (readiness probe on `/readyz`, maxSurge 0 /
//!    maxUnavailable 1) is applied and exposed with `kubectl expose --type=NodePort`;
//! 2. under load: `--clients` threads send `GET /` in a closed loop through
//!    `127.0.0.1:<nodePort>`, a new connection per request, while the Deployment is rolled to
//!    v2, restarted and rolled back, each step waited for with `kubectl rollout status`;
//!    every request's latency and outcome is recorded;
//! 3. throughput: the same clients for `--measure` seconds each against the node port and
//!    directly against one pod's IP, alternating twice, so both see the same machine.
//!
//! Everything stays on loopback. The server is stopped (SIGTERM, then SIGKILL) however the
//! run ends.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long one request may take before it counts as failed.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the server may take to write its kubeconfig and answer, and the service to answer.
const STARTUP_LIMIT: Duration = Duration::from_secs(120);
/// How long the server gets after SIGTERM before it is killed.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(20);
/// How often startup conditions are polled.
const POLL: Duration = Duration::from_millis(200);

/// Why a run could not produce figures.
#[derive(Debug, thiserror::Error)]
enum BenchError {
    #[error("{0}\n\n{USAGE}")]
    Usage(String),
    #[error("cannot run {program}: {source}")]
    Spawn {
        program: String,
        source: std::io::Error,
    },
    #[error("{0} did not happen within the limit")]
    Timeout(String),
    #[error("{what} failed ({status}): {output}")]
    CommandFailed {
        what: String,
        status: ExitStatus,
        output: String,
    },
    #[error("unexpected answer from {what}: {detail}")]
    Unexpected { what: String, detail: String },
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
}

const USAGE: &str = "usage: rollout-under-load [--clients N] [--measure SECONDS] [--skiff PATH] \
[--kubectl PATH]
  --clients N        concurrent client threads (default 2)
  --measure SECONDS  length of each throughput run (default 5)
  --skiff PATH       the skiff binary (default: the one cargo built; env SKIFF_BIN)
  --kubectl PATH     the kubectl binary (default: kubectl on PATH; env KUBECTL)";

/// What to run.
#[derive(Debug, Clone)]
struct Options {
    clients: u32,
    measure: Duration,
    skiff: PathBuf,
    kubectl: PathBuf,
}

impl Options {
    /// Reads flags; `--bench`, which cargo passes to every bench binary, is ignored.
    fn parse(args: impl IntoIterator<Item = String>) -> Result<Options, BenchError> {
        let mut options = Options {
            clients: 2,
            measure: Duration::from_secs(5),
            skiff: std::env::var_os("SKIFF_BIN")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_skiff"))),
            kubectl: std::env::var_os("KUBECTL")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("kubectl")),
        };
        let mut args = args.into_iter();
        while let Some(flag) = args.next() {
            let mut value = || {
                args.next()
                    .ok_or_else(|| BenchError::Usage(format!("{flag} needs a value")))
            };
            match flag.as_str() {
                "--bench" => {}
                "--clients" => options.clients = positive(&flag, &value()?)?,
                "--measure" => {
                    options.measure = Duration::from_secs(u64::from(positive(&flag, &value()?)?))
                }
                "--skiff" => options.skiff = PathBuf::from(value()?),
                "--kubectl" => options.kubectl = PathBuf::from(value()?),
                "-h" | "--help" => return Err(BenchError::Usage(String::new())),
                other => return Err(BenchError::Usage(format!("unknown argument {other:?}"))),
            }
        }
        Ok(options)
    }
}

fn positive(flag: &str, value: &str) -> Result<u32, BenchError> {
    match value.parse::<u32>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(BenchError::Usage(format!(
            "{flag} wants a positive integer, not {value:?}"
        ))),
    }
}

/// Locks a mutex holding plain samples, which stay usable even if a holder panicked.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

// ---------------------------------------------------------------------------------------------
// The server and kubectl
// ---------------------------------------------------------------------------------------------

/// A running `skiff up`; dropping it stops the server and with it every pod.
/// Puts the demo test image's `v1` and `v2` archives in `images_dir`, which `skiff up`
/// imports before it serves, so the rollout's pods never pull.
fn place_demo_images(images_dir: &Path) -> Result<(), BenchError> {
    let io = |context: String| move |source| BenchError::Io { context, source };
    std::fs::create_dir_all(images_dir)
        .map_err(io("cannot create the images directory".to_string()))?;
    for tag in ["v1", "v2"] {
        let image = skiff_testkit::images::demo_from_binary(
            Path::new(env!("CARGO_BIN_EXE_skiff-demo")),
            tag,
        );
        let file_name = image.archive.file_name().unwrap_or_default();
        std::fs::copy(&image.archive, images_dir.join(file_name))
            .map_err(io(format!("cannot copy {}", image.archive.display())))?;
    }
    Ok(())
}

struct Server {
    child: Child,
    kubeconfig: PathBuf,
}

impl Server {
    fn start(options: &Options, work_dir: &Path) -> Result<Server, BenchError> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .map_err(|source| BenchError::Io {
                context: "cannot find a free loopback port".to_string(),
                source,
            })?;
        let data_dir = work_dir.join("data");
        place_demo_images(&data_dir.join("images"))?;
        let log_path = work_dir.join("server.log");
        let log = std::fs::File::create(&log_path).map_err(|source| BenchError::Io {
            context: "cannot create the server log".to_string(),
            source,
        })?;
        let log_err = log.try_clone().map_err(|source| BenchError::Io {
            context: "cannot share the server log".to_string(),
            source,
        })?;
        let child = Command::new(&options.skiff)
            .arg("up")
            .arg("--data-dir")
            .arg(&data_dir)
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            // Pods as processes, as measured (`oci` is the default as root).
            .args(["--container-runtime", "process"])
            .env("SKIFF_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .map_err(|source| BenchError::Spawn {
                program: options.skiff.display().to_string(),
                source,
            })?;
        let server = Server {
            child,
            kubeconfig: data_dir.join("kubeconfig"),
        };
        wait_until("the kubeconfig", || {
            server.kubeconfig.exists().then_some(())
        })?;
        Ok(server)
    }

    /// SIGTERM, then SIGKILL if it has not exited within [`SHUTDOWN_GRACE`].
    fn stop(&mut self) -> Option<ExitStatus> {
        if let Ok(Some(status)) = self.child.try_wait() {
            return Some(status);
        }
        if let Ok(pid) = i32::try_from(self.child.id()) {
            // Our own unreaped child; one that already exited is no error here.
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
        let deadline = Instant::now() + SHUTDOWN_GRACE;
        while Instant::now() < deadline {
            match self.child.try_wait() {
                Ok(Some(status)) => return Some(status),
                Ok(None) => std::thread::sleep(Duration::from_millis(50)),
                Err(_) => break,
            }
        }
        let _ = self.child.kill();
        self.child.wait().ok()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Polls `probe` every [`POLL`] until it yields a value, or fails after [`STARTUP_LIMIT`].
fn wait_until<T>(what: &str, mut probe: impl FnMut() -> Option<T>) -> Result<T, BenchError> {
    let deadline = Instant::now() + STARTUP_LIMIT;
    loop {
        if let Some(value) = probe() {
            return Ok(value);
        }
        if Instant::now() > deadline {
            return Err(BenchError::Timeout(what.to_string()));
        }
        std::thread::sleep(POLL);
    }
}

struct Kubectl {
    program: PathBuf,
    kubeconfig: PathBuf,
}

impl Kubectl {
    /// Runs kubectl to completion (`rollout status` carries its own `--timeout`), failing on a
    /// non-zero exit.
    fn run(&self, args: &[&str], stdin: Option<&str>) -> Result<String, BenchError> {
        let what = format!("kubectl {}", args.join(" "));
        let mut command = Command::new(&self.program);
        command
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(args)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().map_err(|source| BenchError::Spawn {
            program: self.program.display().to_string(),
            source,
        })?;
        if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
            pipe.write_all(text.as_bytes())
                .map_err(|source| BenchError::Io {
                    context: format!("cannot write to {what}"),
                    source,
                })?;
        }
        let output = child.wait_with_output().map_err(|source| BenchError::Io {
            context: format!("cannot wait for {what}"),
            source,
        })?;
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        if !output.status.success() {
            return Err(BenchError::CommandFailed {
                what,
                status: output.status,
                output: String::from_utf8_lossy(&output.stderr).trim().to_string(),
            });
        }
        Ok(stdout)
    }

    fn rollout_status(&self) -> Result<(), BenchError> {
        self.run(
            &["rollout", "status", "deployment/web", "--timeout=180s"],
            None,
        )
        .map(drop)
    }
}

const DEPLOYMENT: &str = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 3
  strategy:
    type: RollingUpdate
    rollingUpdate:
      maxSurge: 0
      maxUnavailable: 1
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      containers:
      - name: web
        image: 127.0.0.1:9/skiff-test/demo:v1
        ports:
        - containerPort: 80
        readinessProbe:
          httpGet:
            path: /readyz
            port: 80
          periodSeconds: 1
";

// ---------------------------------------------------------------------------------------------
// Load
// ---------------------------------------------------------------------------------------------

/// One `GET /` on a new connection; the time it took, or why it failed.
fn request(address: SocketAddr) -> Result<Duration, String> {
    let started = Instant::now();
    let mut stream = TcpStream::connect_timeout(&address, REQUEST_TIMEOUT)
        .map_err(|e| format!("connect: {e}"))?;
    stream
        .set_read_timeout(Some(REQUEST_TIMEOUT))
        .map_err(|e| format!("socket option: {e}"))?;
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: web\r\nConnection: close\r\n\r\n")
        .map_err(|e| format!("write: {e}"))?;
    let mut response = Vec::with_capacity(256);
    stream
        .read_to_end(&mut response)
        .map_err(|e| format!("read: {e}"))?;
    if !response.starts_with(b"HTTP/1.1 200") || !response.windows(8).any(|w| w == b"version=") {
        return Err(format!(
            "unexpected response {:?}",
            String::from_utf8_lossy(&response)
        ));
    }
    Ok(started.elapsed())
}

/// What a load run saw.
#[derive(Debug, Default)]
struct LoadResult {
    latencies: Vec<Duration>,
    failures: Vec<String>,
    elapsed: Duration,
}

impl LoadResult {
    fn sent(&self) -> usize {
        self.latencies.len() + self.failures.len()
    }

    fn per_second(&self) -> f64 {
        self.latencies.len() as f64 / self.elapsed.as_secs_f64().max(f64::EPSILON)
    }

    /// The `q` quantile (0..=1) of the successful requests' latencies.
    fn quantile(&mut self, q: f64) -> Duration {
        if self.latencies.is_empty() {
            return Duration::ZERO;
        }
        self.latencies.sort_unstable();
        let index = ((self.latencies.len() - 1) as f64 * q).round() as usize;
        self.latencies[index.min(self.latencies.len() - 1)]
    }
}

/// `clients` threads sending requests to `address` in a closed loop until `stop` is set.
struct Load {
    results: Arc<Mutex<LoadResult>>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    started: Instant,
}

impl Load {
    fn start(address: SocketAddr, clients: u32) -> Load {
        let results = Arc::new(Mutex::new(LoadResult::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let threads = (0..clients)
            .map(|_| {
                let results = results.clone();
                let stop = stop.clone();
                std::thread::spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        let outcome = request(address);
                        let mut results = lock(&results);
                        match outcome {
                            Ok(latency) => results.latencies.push(latency),
                            Err(e) => results.failures.push(e),
                        }
                    }
                })
            })
            .collect();
        Load {
            results,
            stop,
            threads,
            started: Instant::now(),
        }
    }

    fn finish(self) -> LoadResult {
        self.stop.store(true, Ordering::Relaxed);
        for thread in self.threads {
            let _ = thread.join();
        }
        let mut result = std::mem::take(&mut *lock(&self.results));
        result.elapsed = self.started.elapsed();
        result
    }
}

fn measure(address: SocketAddr, options: &Options) -> LoadResult {
    let load = Load::start(address, options.clients);
    std::thread::sleep(options.measure);
    load.finish()
}

// ---------------------------------------------------------------------------------------------
// The run
// ---------------------------------------------------------------------------------------------

fn run(options: &Options, server: &Server) -> Result<bool, BenchError> {
    let kubectl = Kubectl {
        program: options.kubectl.clone(),
        kubeconfig: server.kubeconfig.clone(),
    };
    wait_until("the API server", || {
        kubectl.run(&["get", "--raw", "/readyz"], None).ok()
    })?;
    kubectl.run(&["apply", "-f", "-"], Some(DEPLOYMENT))?;
    kubectl.rollout_status()?;
    kubectl.run(
        &[
            "expose",
            "deployment",
            "web",
            "--type=NodePort",
            "--port=80",
            "--target-port=80",
        ],
        None,
    )?;
    let node_port = kubectl.run(
        &[
            "get",
            "svc",
            "web",
            "-o",
            "jsonpath={.spec.ports[0].nodePort}",
        ],
        None,
    )?;
    let node_port: u16 = node_port
        .trim()
        .parse()
        .map_err(|e| BenchError::Unexpected {
            what: "the service's node port".to_string(),
            detail: format!("{node_port:?}: {e}"),
        })?;
    let through_proxy = SocketAddr::from(([127, 0, 0, 1], node_port));
    wait_until("the node port to answer", || request(through_proxy).ok())?;

    println!(
        "rolling out under load: {} clients, a new connection per request (load average {})",
        options.clients,
        load_average()
    );
    let load = Load::start(through_proxy, options.clients);
    let steps: [(&str, &[&str]); 3] = [
        (
            "image v1 -> v2",
            &[
                "set",
                "image",
                "deployment/web",
                "web=127.0.0.1:9/skiff-test/demo:v2",
            ],
        ),
        ("restart", &["rollout", "restart", "deployment/web"]),
        ("undo (v2 -> v1)", &["rollout", "undo", "deployment/web"]),
    ];
    let rollout_started = Instant::now();
    for (name, args) in steps {
        let step_started = Instant::now();
        kubectl.run(args, None)?;
        kubectl.rollout_status()?;
        println!(
            "  {name:<16} complete in {:.1} s",
            step_started.elapsed().as_secs_f64()
        );
    }
    let rollout_time = rollout_started.elapsed();
    let mut during = load.finish();

    let pod_ip = kubectl.run(
        &[
            "get",
            "pods",
            "-l",
            "app=web",
            "--field-selector=status.phase=Running",
            "-o",
            "jsonpath={.items[0].status.podIP}",
        ],
        None,
    )?;
    let pod_ip: std::net::IpAddr = pod_ip.trim().parse().map_err(|e| BenchError::Unexpected {
        what: "a pod's IP".to_string(),
        detail: format!("{pod_ip:?}: {e}"),
    })?;
    let direct = SocketAddr::new(pod_ip, 80);
    println!(
        "throughput: {} s per run, {} clients, direct to {direct} and through {through_proxy}",
        options.measure.as_secs(),
        options.clients
    );
    let mut direct_runs = Vec::new();
    let mut proxy_runs = Vec::new();
    for _ in 0..2 {
        direct_runs.push(measure(direct, options));
        proxy_runs.push(measure(through_proxy, options));
    }

    let failures = during.failures.len();
    println!();
    println!("== rollout-under-load ==");
    println!(
        "rollouts (image, restart, undo)   {:.1} s",
        rollout_time.as_secs_f64()
    );
    println!(
        "requests sent during rollouts     {} ({:.0} per second)",
        during.sent(),
        during.sent() as f64 / during.elapsed.as_secs_f64().max(f64::EPSILON)
    );
    println!("failed requests                   {failures}");
    println!(
        "latency p50 / p99 / max           {:.2} / {:.2} / {:.2} ms",
        ms(during.quantile(0.50)),
        ms(during.quantile(0.99)),
        ms(during.quantile(1.0))
    );
    for failure in during.failures.iter().take(5) {
        println!("  failure: {failure}");
    }
    let rate = |runs: &[LoadResult]| {
        let ok: usize = runs.iter().map(|r| r.latencies.len()).sum();
        let secs: f64 = runs.iter().map(|r| r.elapsed.as_secs_f64()).sum();
        ok as f64 / secs.max(f64::EPSILON)
    };
    let (direct_rate, proxy_rate) = (rate(&direct_runs), rate(&proxy_runs));
    let per_run: Vec<(f64, f64)> = direct_runs
        .iter()
        .zip(&proxy_runs)
        .map(|(d, p)| (d.per_second(), p.per_second()))
        .collect();
    let throughput_failures: usize = direct_runs
        .iter()
        .chain(&proxy_runs)
        .map(|r| r.failures.len())
        .sum();
    let mut all_direct = merged(direct_runs);
    let mut all_proxy = merged(proxy_runs);
    println!(
        "direct to a pod                   {direct_rate:.0} req/s (p50 {:.2} ms, p99 {:.2} ms)",
        ms(all_direct.quantile(0.5)),
        ms(all_direct.quantile(0.99))
    );
    println!(
        "through the proxy (node port)     {proxy_rate:.0} req/s (p50 {:.2} ms, p99 {:.2} ms)",
        ms(all_proxy.quantile(0.5)),
        ms(all_proxy.quantile(0.99))
    );
    println!(
        "proxy / direct                    {:.2}",
        proxy_rate / direct_rate.max(f64::EPSILON)
    );
    for (i, (direct, proxy)) in per_run.iter().enumerate() {
        println!(
            "  run {}: direct {direct:.0} req/s, proxy {proxy:.0} req/s",
            i + 1
        );
    }
    if throughput_failures > 0 {
        println!("failed requests while measuring   {throughput_failures}");
    }
    println!("load average at the end           {}", load_average());
    Ok(failures == 0)
}

/// The successful latencies of several runs together.
fn merged(runs: Vec<LoadResult>) -> LoadResult {
    let mut all = LoadResult::default();
    for mut run in runs {
        all.latencies.append(&mut run.latencies);
    }
    all
}

/// The 1-, 5- and 15-minute load averages: on a shared machine they say how busy it was.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".to_string())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn main() -> ExitCode {
    let options = match Options::parse(std::env::args().skip(1)) {
        Ok(options) => options,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let work_dir = match tempfile::Builder::new()
        .prefix("skiff-traffic-bench-")
        .tempdir()
    {
        Ok(dir) => dir,
        Err(e) => {
            eprintln!("error: cannot create a temporary directory: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut server = match Server::start(&options, work_dir.path()) {
        Ok(server) => server,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = run(&options, &server);
    server.stop();
    match outcome {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("error: requests failed during the rollouts");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("error: {e}");
            if let Ok(log) = std::fs::read_to_string(work_dir.path().join("server.log")) {
                let lines: Vec<&str> = log.lines().collect();
                eprintln!(
                    "last lines of the server log:\n{}",
                    lines[lines.len().saturating_sub(30)..].join("\n")
                );
            }
            ExitCode::FAILURE
        }
    }
}
