//! Rollout benchmark at scale: a 1,000-replica Deployment on 20 simulated nodes.
//!
//! It drives a real `skiff up` process the way a user would, through the real `kubectl`, so the
//! figures cover everything a rollout costs: API server, store, controllers, scheduler and the
//! simulated kubelets. It builds nothing itself; cargo builds the `skiff` binary next to it:
//!
//! ```text
//! cargo bench -p skiff --bench rollout
//! cargo bench -p skiff --bench rollout -- --replicas 100 --nodes 4   # a quick smoke run
//! ```
//!
//! Phases, each bounded by `--timeout` (default 10 minutes):
//! 1. start `skiff up --simulated-nodes N` on a free loopback port in a temporary directory and
//!    wait for the kubeconfig and N Ready nodes;
//! 2. `kubectl apply` a Deployment with the default 25%/25% strategy and wait with
//!    `kubectl rollout status` until it is fully available (scale-up time);
//! 3. `kubectl apply` it again with a new image and wait the same way (rollout time).
//!
//! Meanwhile the server's `/proc/<pid>/status` is sampled every 100 ms for its resident set,
//! its CPU time is read from `/proc/<pid>/stat` at each phase boundary, and a
//! `kubectl get replicasets --watch` records every change of a ReplicaSet's `spec.replicas`.
//! The server is stopped (SIGTERM, then SIGKILL after a deadline) however the run ends.

use std::collections::BTreeMap;
use std::io::{BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use nix::sys::signal::Signal;
use serde_json::Value;

/// The Deployment's name and `app` label: distinct enough to never meet a system object.
const APP: &str = "rollout-bench";
/// How often the server's memory is sampled.
const MEMORY_SAMPLE_INTERVAL: Duration = Duration::from_millis(100);
/// How long the server gets to stop after SIGTERM before it is killed.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// How long a one-shot `kubectl` call (get, apply) may take.
const KUBECTL_CALL_LIMIT: Duration = Duration::from_secs(60);
/// How long startup (kubeconfig written, every node Ready) may take.
const STARTUP_LIMIT: Duration = Duration::from_secs(120);
/// How often startup readiness is checked.
const STARTUP_POLL: Duration = Duration::from_millis(250);
/// Extra time given to `kubectl rollout status` beyond its own `--timeout`, so its own
/// message, not ours, reports a slow rollout when it can.
const ROLLOUT_STATUS_SLACK: Duration = Duration::from_secs(30);
/// How many lines of the server log are shown when a run fails.
const LOG_TAIL_LINES: usize = 40;

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
    #[error("{what} did not finish within {limit:?}")]
    Timeout { what: String, limit: Duration },
    #[error("{what} failed ({status}): {output}")]
    CommandFailed {
        what: String,
        status: ExitStatus,
        output: String,
    },
    #[error("the skiff server exited early ({0})")]
    ServerExited(ExitStatus),
    #[error("unexpected answer from {what}: {detail}")]
    Unexpected { what: String, detail: String },
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
}

const USAGE: &str = "usage: rollout [--replicas N] [--nodes N] [--timeout SECONDS] [--keep] \
[--skiff PATH] [--kubectl PATH]
  --replicas N      Deployment size (default 1000)
  --nodes N         simulated nodes (default 20)
  --timeout SECONDS limit for the scale-up and for the rollout, each (default 600)
  --keep            keep the data directory and server log afterwards
  --skiff PATH      the skiff binary (default: the one cargo built for this bench; env SKIFF_BIN)
  --kubectl PATH    the kubectl binary (default: kubectl on PATH; env KUBECTL)";

/// What to run; defaults give the benchmark of record.
#[derive(Debug, Clone)]
struct Options {
    replicas: u32,
    nodes: u32,
    phase_limit: Duration,
    keep: bool,
    skiff: PathBuf,
    kubectl: PathBuf,
}

impl Options {
    /// Reads flags; `--bench`, which cargo passes to every bench binary, is ignored.
    fn parse(args: impl IntoIterator<Item = String>) -> Result<Options, BenchError> {
        let mut options = Options {
            replicas: 1000,
            nodes: 20,
            phase_limit: Duration::from_secs(600),
            keep: false,
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
                "--keep" => options.keep = true,
                "--replicas" => options.replicas = parse_positive(&flag, &value()?)?,
                "--nodes" => options.nodes = parse_positive(&flag, &value()?)?,
                "--timeout" => {
                    options.phase_limit =
                        Duration::from_secs(u64::from(parse_positive(&flag, &value()?)?))
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

fn parse_positive(flag: &str, value: &str) -> Result<u32, BenchError> {
    match value.parse::<u32>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(BenchError::Usage(format!(
            "{flag} wants a positive integer, not {value:?}"
        ))),
    }
}

// ---------------------------------------------------------------------------------------------
// The server process
// ---------------------------------------------------------------------------------------------

/// A running `skiff up`; dropping it stops the server, so no exit path leaves it behind.
struct Server {
    child: Child,
    kubeconfig: PathBuf,
    log: PathBuf,
    data_dir: PathBuf,
}

impl Server {
    /// Starts `skiff up` on a free loopback port; its output goes to `server.log` beside the data.
    fn start(options: &Options, work_dir: &Path) -> Result<Server, BenchError> {
        let port = free_loopback_port()?;
        let data_dir = work_dir.join("data");
        let log = work_dir.join("server.log");
        let log_file = std::fs::File::create(&log).map_err(|source| BenchError::Io {
            context: format!("cannot create {}", log.display()),
            source,
        })?;
        let log_err = log_file.try_clone().map_err(|source| BenchError::Io {
            context: "cannot share the server log".to_string(),
            source,
        })?;
        let mut command = Command::new(&options.skiff);
        command
            .arg("up")
            .arg("--data-dir")
            .arg(&data_dir)
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--simulated-nodes")
            .arg(options.nodes.to_string())
            // Only the simulated nodes: the machine's own node would take its share of the
            // pods and fail to pull the benchmark's images, which no registry serves here.
            .arg("--no-node")
            .stdin(Stdio::null())
            .stdout(log_file)
            .stderr(log_err);
        die_with_parent(&mut command);
        let child = command.spawn().map_err(|source| BenchError::Spawn {
            program: format!(
                "{} (build it first: cargo build --release -p skiff)",
                options.skiff.display()
            ),
            source,
        })?;
        Ok(Server {
            child,
            kubeconfig: data_dir.join("kubeconfig"),
            log,
            data_dir,
        })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Fails if the server is gone, so waits end with the real cause instead of a timeout.
    fn ensure_running(&mut self) -> Result<(), BenchError> {
        match self.child.try_wait() {
            Ok(Some(status)) => Err(BenchError::ServerExited(status)),
            Ok(None) => Ok(()),
            Err(source) => Err(BenchError::Io {
                context: "cannot check on the server".to_string(),
                source,
            }),
        }
    }

    /// SIGTERM, then SIGKILL if it has not exited within [`SHUTDOWN_GRACE`].
    fn stop(&mut self) -> Option<ExitStatus> {
        if let Ok(Some(status)) = self.child.try_wait() {
            return Some(status);
        }
        signal(self.pid(), Signal::SIGTERM);
        let deadline = Instant::now() + SHUTDOWN_GRACE;
        while Instant::now() < deadline {
            match self.child.try_wait() {
                Ok(Some(status)) => return Some(status),
                Ok(None) => std::thread::sleep(Duration::from_millis(50)),
                Err(_) => break,
            }
        }
        eprintln!("the server did not stop within {SHUTDOWN_GRACE:?} of SIGTERM; killing it");
        let _ = self.child.kill();
        self.child.wait().ok()
    }

    /// The end of the server log, to show why a failed run failed.
    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A port nothing listens on right now; the server binds it a moment later.
fn free_loopback_port() -> Result<u16, BenchError> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|source| BenchError::Io {
        context: "cannot find a free loopback port".to_string(),
        source,
    })?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|source| BenchError::Io {
            context: "cannot find a free loopback port".to_string(),
            source,
        })
}

/// Makes the kernel kill the child if this process dies (Ctrl-C, a crash), where `Drop`
/// never runs.
fn die_with_parent(command: &mut Command) {
    use std::os::unix::process::CommandExt;
    // `pre_exec` is unsafe because the closure runs between fork and exec, where only
    // async-signal-safe calls are allowed; prctl is one, and the closure allocates nothing.
    #[allow(unsafe_code)]
    // SAFETY: see above.
    unsafe {
        command.pre_exec(|| {
            nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(std::io::Error::from)
        });
    }
}

/// Sends `sig` to `pid`; a process that already exited is not an error worth reporting.
fn signal(pid: u32, sig: Signal) {
    if let Ok(pid) = i32::try_from(pid) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), sig);
    }
}

// ---------------------------------------------------------------------------------------------
// /proc sampling
// ---------------------------------------------------------------------------------------------

/// Memory figures from `/proc/<pid>/status`, in KiB.
#[derive(Debug, Clone, Copy, Default)]
struct MemoryReading {
    rss_kib: u64,
    hwm_kib: u64,
}

/// Reads `VmRSS` and `VmHWM` (the kernel's own peak); `None` once the process is gone.
fn read_memory(pid: u32) -> Option<MemoryReading> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| -> Option<u64> {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.trim_start_matches(':').split_whitespace().next())
            .and_then(|n| n.parse().ok())
    };
    Some(MemoryReading {
        rss_kib: field("VmRSS")?,
        hwm_kib: field("VmHWM")?,
    })
}

/// User plus system CPU time of every thread of the process so far.
fn read_cpu_time(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name in parentheses may hold spaces; fields count from after its `)`.
    let after_name = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // Field 3 (state) is fields[0], so utime (14) and stime (15) are fields[11] and fields[12].
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    let ticks_per_second = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK).ok()??;
    let ticks_per_second = u64::try_from(ticks_per_second).ok().filter(|t| *t > 0)?;
    Some(Duration::from_secs_f64(
        (utime + stime) as f64 / ticks_per_second as f64,
    ))
}

/// Resident-set peaks seen by the sampler, overall and since the last phase boundary.
#[derive(Debug, Default)]
struct MemoryPeaks {
    last: MemoryReading,
    overall_rss_kib: u64,
    phase_rss_kib: u64,
    samples: u64,
}

/// Samples the server's memory every [`MEMORY_SAMPLE_INTERVAL`] on its own thread.
struct MemorySampler {
    peaks: Arc<Mutex<MemoryPeaks>>,
    stop: mpsc::Sender<()>,
    thread: Option<JoinHandle<()>>,
}

impl MemorySampler {
    fn start(pid: u32) -> MemorySampler {
        let peaks = Arc::new(Mutex::new(MemoryPeaks::default()));
        let (stop, stopped) = mpsc::channel::<()>();
        let shared = peaks.clone();
        let thread = std::thread::spawn(move || loop {
            let Some(reading) = read_memory(pid) else {
                return;
            };
            {
                let mut peaks = lock(&shared);
                peaks.last = reading;
                peaks.overall_rss_kib = peaks.overall_rss_kib.max(reading.rss_kib);
                peaks.phase_rss_kib = peaks.phase_rss_kib.max(reading.rss_kib);
                peaks.samples += 1;
            }
            match stopped.recv_timeout(MEMORY_SAMPLE_INTERVAL) {
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                _ => return,
            }
        });
        MemorySampler {
            peaks,
            stop,
            thread: Some(thread),
        }
    }

    /// The peak since the previous call (or the start), and the current RSS; starts a new phase.
    fn end_phase(&self) -> (u64, u64) {
        let mut peaks = lock(&self.peaks);
        let phase_peak = peaks.phase_rss_kib.max(peaks.last.rss_kib);
        peaks.phase_rss_kib = peaks.last.rss_kib;
        (phase_peak, peaks.last.rss_kib)
    }

    fn finish(mut self) -> MemoryPeaks {
        let _ = self.stop.send(());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        std::mem::take(&mut *lock(&self.peaks))
    }
}

/// Locks a mutex whose data stays consistent even if a holder panicked (plain counters).
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

// ---------------------------------------------------------------------------------------------
// kubectl
// ---------------------------------------------------------------------------------------------

/// Runs `kubectl` against the benchmark's server.
#[derive(Clone)]
struct Kubectl {
    program: PathBuf,
    kubeconfig: PathBuf,
}

impl Kubectl {
    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(&self.program);
        command
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(args)
            .stdin(Stdio::null());
        command
    }

    /// Runs to completion within `limit`, killing kubectl when it overruns; fails on a
    /// non-zero exit.
    fn run(
        &self,
        args: &[&str],
        stdin: Option<&str>,
        limit: Duration,
    ) -> Result<String, BenchError> {
        let what = format!("kubectl {}", args.join(" "));
        let mut command = self.command(args);
        command.stdout(Stdio::piped()).stderr(Stdio::piped());
        if stdin.is_some() {
            command.stdin(Stdio::piped());
        }
        die_with_parent(&mut command);
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
        let output = wait_with_limit(child, limit).ok_or_else(|| BenchError::Timeout {
            what: what.clone(),
            limit,
        })?;
        let output = output.map_err(|source| BenchError::Io {
            context: format!("cannot wait for {what}"),
            source,
        })?;
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            return Err(BenchError::CommandFailed {
                what,
                status: output.status,
                output: last_lines(&format!("{}\n{}", stdout.trim_end(), stderr.trim_end()), 3),
            });
        }
        Ok(stdout)
    }

    fn get_json(&self, args: &[&str]) -> Result<Value, BenchError> {
        let mut full = vec!["get"];
        full.extend_from_slice(args);
        full.extend_from_slice(&["-o", "json"]);
        let text = self.run(&full, None, KUBECTL_CALL_LIMIT)?;
        serde_json::from_str(&text).map_err(|e| BenchError::Unexpected {
            what: format!("kubectl {}", full.join(" ")),
            detail: e.to_string(),
        })
    }
}

/// The last `count` non-empty lines: `rollout status` prints a line per change, and only the
/// latest ones say where things stand.
fn last_lines(text: &str, count: usize) -> String {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(count)..].join("\n")
}

/// Waits for a child and collects its output; `None` (after killing it) past `limit`.
fn wait_with_limit(child: Child, limit: Duration) -> Option<std::io::Result<Output>> {
    let pid = child.id();
    let (done, finished) = mpsc::channel();
    let waiter = std::thread::spawn(move || {
        let _ = done.send(child.wait_with_output());
    });
    match finished.recv_timeout(limit) {
        Ok(result) => {
            let _ = waiter.join();
            Some(result)
        }
        Err(_) => {
            // The child is not reaped until the waiter returns, so the pid is still ours.
            signal(pid, Signal::SIGKILL);
            let _ = waiter.join();
            None
        }
    }
}

// ---------------------------------------------------------------------------------------------
// ReplicaSet scaling steps
// ---------------------------------------------------------------------------------------------

/// One change of a ReplicaSet's `spec.replicas`, as a watch saw it.
#[derive(Debug, Clone)]
struct ScalingStep {
    at: Instant,
    replica_set: String,
    from: Option<i64>,
    to: i64,
}

/// Watches the benchmark's ReplicaSets through `kubectl get --watch` and records each change
/// of their desired size; a watch the server closes is opened again.
struct ScalingWatcher {
    steps: Arc<Mutex<Vec<ScalingStep>>>,
    stop: Arc<AtomicBool>,
    current_pid: Arc<AtomicU32>,
    thread: Option<JoinHandle<()>>,
}

impl ScalingWatcher {
    fn start(kubectl: Kubectl) -> ScalingWatcher {
        let steps = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let current_pid = Arc::new(AtomicU32::new(0));
        let (steps_out, stop_in, pid_out) = (steps.clone(), stop.clone(), current_pid.clone());
        let thread = std::thread::spawn(move || {
            let mut sizes: BTreeMap<String, i64> = BTreeMap::new();
            let selector = format!("app={APP}");
            while !stop_in.load(Ordering::SeqCst) {
                let mut command = kubectl.command(&[
                    "get",
                    "replicasets",
                    "-l",
                    &selector,
                    "--watch",
                    "--output-watch-events",
                    "-o",
                    "json",
                ]);
                command.stdout(Stdio::piped()).stderr(Stdio::null());
                die_with_parent(&mut command);
                let Ok(mut child) = command.spawn() else {
                    return;
                };
                pid_out.store(child.id(), Ordering::SeqCst);
                if stop_in.load(Ordering::SeqCst) {
                    let _ = child.kill();
                }
                if let Some(stdout) = child.stdout.take() {
                    record_steps(stdout, &mut sizes, &steps_out);
                }
                let _ = child.wait();
                pid_out.store(0, Ordering::SeqCst);
                if !stop_in.load(Ordering::SeqCst) {
                    // Reconnect without spinning if the server keeps refusing.
                    std::thread::sleep(Duration::from_millis(200));
                }
            }
        });
        ScalingWatcher {
            steps,
            stop,
            current_pid,
            thread: Some(thread),
        }
    }

    fn steps(&self) -> Vec<ScalingStep> {
        lock(&self.steps).clone()
    }

    fn finish(mut self) -> Vec<ScalingStep> {
        self.shutdown();
        self.steps()
    }

    fn shutdown(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let pid = self.current_pid.load(Ordering::SeqCst);
        if pid != 0 {
            signal(pid, Signal::SIGTERM);
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for ScalingWatcher {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Reads a stream of `{"type":…,"object":…}` documents and appends each size change.
fn record_steps(
    stream: impl Read,
    sizes: &mut BTreeMap<String, i64>,
    steps: &Mutex<Vec<ScalingStep>>,
) {
    let events = serde_json::Deserializer::from_reader(BufReader::new(stream)).into_iter::<Value>();
    for event in events {
        let Ok(event) = event else {
            return;
        };
        let object = &event["object"];
        let (Some(name), Some(size)) = (
            object["metadata"]["name"].as_str(),
            object["spec"]["replicas"].as_i64(),
        ) else {
            continue;
        };
        if event["type"] == "DELETED" {
            continue;
        }
        let previous = sizes.insert(name.to_string(), size);
        if previous != Some(size) {
            lock(steps).push(ScalingStep {
                at: Instant::now(),
                replica_set: name.to_string(),
                from: previous,
                to: size,
            });
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The run
// ---------------------------------------------------------------------------------------------

/// The Deployment under test; only the image differs between the two applies.
fn deployment_manifest(replicas: u32, image: &str) -> String {
    format!(
        "apiVersion: apps/v1
kind: Deployment
metadata:
  name: {APP}
  namespace: default
spec:
  replicas: {replicas}
  selector:
    matchLabels:
      app: {APP}
  template:
    metadata:
      labels:
        app: {APP}
    spec:
      containers:
      - name: web
        image: {image}
"
    )
}

/// Figures of one timed phase.
#[derive(Debug, Clone, Default)]
struct PhaseFigures {
    wall: Duration,
    cpu: Duration,
    peak_rss_kib: u64,
    end_rss_kib: u64,
    steps: Vec<ScalingStep>,
}

/// Everything the report prints; phases a failed run did not reach stay `None`.
#[derive(Debug, Default)]
struct Figures {
    startup: Option<PhaseFigures>,
    scale_up: Option<PhaseFigures>,
    rollout: Option<PhaseFigures>,
    total_cpu: Option<Duration>,
    peak_rss_kib: u64,
    hwm_kib: Option<u64>,
    memory_samples: u64,
    store_bytes: u64,
    /// kubectl calls repeated because the server was too busy to answer in time.
    retries: u32,
    /// The rollout's figures up to the moment it was given up.
    unfinished_rollout: Option<PhaseFigures>,
}

/// Tracks phase boundaries: wall clock, server CPU and the sampler's phase peak.
struct PhaseClock {
    pid: u32,
    started: Instant,
    cpu_at_start: Duration,
}

impl PhaseClock {
    fn start(pid: u32) -> PhaseClock {
        PhaseClock {
            pid,
            started: Instant::now(),
            cpu_at_start: read_cpu_time(pid).unwrap_or_default(),
        }
    }

    /// Closes the phase and opens the next one at the same instant.
    fn lap(&mut self, sampler: &MemorySampler, steps: Vec<ScalingStep>) -> PhaseFigures {
        let now = Instant::now();
        let cpu = read_cpu_time(self.pid).unwrap_or(self.cpu_at_start);
        let (peak_rss_kib, end_rss_kib) = sampler.end_phase();
        let figures = PhaseFigures {
            wall: now - self.started,
            cpu: cpu.saturating_sub(self.cpu_at_start),
            peak_rss_kib,
            end_rss_kib,
            steps: steps
                .into_iter()
                .filter(|s| s.at >= self.started && s.at <= now)
                .collect(),
        };
        self.started = now;
        self.cpu_at_start = cpu;
        figures
    }
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
        .prefix("skiff-rollout-bench-")
        .tempdir()
    {
        Ok(dir) => dir,
        Err(e) => {
            eprintln!("error: cannot create a temporary directory: {e}");
            return ExitCode::FAILURE;
        }
    };
    print_preamble(&options);
    let mut server = match Server::start(&options, work_dir.path()) {
        Ok(server) => server,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut figures = Figures::default();
    let result = run(&options, &mut server, &mut figures);
    print_report(&options, &figures);
    let exit = match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("\nerror: {e}");
            eprintln!("\nlast lines of the server log:\n{}\n", server.log_tail());
            ExitCode::FAILURE
        }
    };
    match server.stop() {
        Some(status) if status.success() => println!("server stopped cleanly"),
        Some(status) => println!("server stopped: {status}"),
        None => println!("server stop status unknown"),
    }
    if options.keep {
        let kept = work_dir.keep();
        println!(
            "kept the data directory and server log in {}",
            kept.display()
        );
    }
    exit
}

fn print_preamble(options: &Options) {
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let since_epoch = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    println!(
        "rollout benchmark: {} replicas on {} simulated nodes",
        options.replicas, options.nodes
    );
    println!("  skiff:   {}", options.skiff.display());
    println!("  kubectl: {}", options.kubectl.display());
    println!(
        "  cores: {}, load average at start: {}, unix time: {since_epoch}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
}

fn run(options: &Options, server: &mut Server, figures: &mut Figures) -> Result<(), BenchError> {
    let pid = server.pid();
    let sampler = MemorySampler::start(pid);
    let kubectl = Kubectl {
        program: options.kubectl.clone(),
        kubeconfig: server.kubeconfig.clone(),
    };
    let mut watcher = None;
    let outcome = run_phases(options, server, &kubectl, &sampler, &mut watcher, figures);
    // Totals are taken whatever happened, so a failed run still shows what it cost.
    figures.total_cpu = read_cpu_time(pid);
    figures.hwm_kib = read_memory(pid).map(|m| m.hwm_kib);
    figures.store_bytes = store_size(&server.data_dir);
    if let Some(watcher) = watcher {
        drop(watcher.finish());
    }
    let peaks = sampler.finish();
    figures.peak_rss_kib = peaks.overall_rss_kib;
    figures.memory_samples = peaks.samples;
    outcome
}

/// The three timed phases; each fills its part of `figures` as it completes.
fn run_phases(
    options: &Options,
    server: &mut Server,
    kubectl: &Kubectl,
    sampler: &MemorySampler,
    watcher: &mut Option<ScalingWatcher>,
    figures: &mut Figures,
) -> Result<(), BenchError> {
    let mut clock = PhaseClock::start(server.pid());
    wait_for_startup(options, server, kubectl)?;
    let startup = clock.lap(sampler, Vec::new());
    println!(
        "ready: {} nodes Ready after {:.2} s",
        options.nodes,
        startup.wall.as_secs_f64()
    );
    figures.startup = Some(startup);

    let watcher = watcher.insert(ScalingWatcher::start(kubectl.clone()));
    let deployment = format!("deployment/{APP}");

    // From nothing to every replica available, timed from the apply.
    let _ = clock.lap(sampler, Vec::new());
    let v1 = deployment_manifest(options.replicas, "registry.example/web:v1");
    figures.retries += apply(kubectl, &v1, options.phase_limit)?;
    figures.retries += wait_for_rollout(kubectl, &deployment, options.phase_limit, "scale-up")?;
    let scale_up = clock.lap(sampler, watcher.steps());
    println!(
        "scaled up: {} available after {:.2} s",
        options.replicas,
        scale_up.wall.as_secs_f64()
    );
    figures.scale_up = Some(scale_up);
    ensure_complete(kubectl, options.replicas)?;

    // A new image, rolled out with the default 25%/25% strategy, timed from the apply; the
    // checks above are not part of it.
    server.ensure_running()?;
    let _ = clock.lap(sampler, Vec::new());
    let v2 = deployment_manifest(options.replicas, "registry.example/web:v2");
    figures.retries += apply(kubectl, &v2, options.phase_limit)?;
    let waited = wait_for_rollout(kubectl, &deployment, options.phase_limit, "rollout");
    let rollout = clock.lap(sampler, watcher.steps());
    match waited {
        Ok(retries) => {
            figures.retries += retries;
            println!("rolled out: {:.2} s", rollout.wall.as_secs_f64());
            figures.rollout = Some(rollout);
        }
        Err(e) => {
            // Show how far it got: the steps explain a stall better than the error does.
            figures.unfinished_rollout = Some(rollout);
            return Err(e);
        }
    }
    ensure_complete(kubectl, options.replicas)?;
    server.ensure_running()
}

/// Waits for the kubeconfig and for every simulated node to report Ready.
fn wait_for_startup(
    options: &Options,
    server: &mut Server,
    kubectl: &Kubectl,
) -> Result<(), BenchError> {
    let deadline = Instant::now() + STARTUP_LIMIT;
    let mut last_problem = String::from("no kubeconfig yet");
    while Instant::now() < deadline {
        server.ensure_running()?;
        if server.kubeconfig.exists() {
            match kubectl.get_json(&["nodes"]) {
                Ok(list) => {
                    let ready = count_ready_nodes(&list);
                    if ready >= options.nodes as usize {
                        return Ok(());
                    }
                    last_problem = format!("{ready} of {} nodes Ready", options.nodes);
                }
                Err(e) => last_problem = e.to_string(),
            }
        }
        std::thread::sleep(STARTUP_POLL);
    }
    Err(BenchError::Timeout {
        what: format!("startup (last seen: {last_problem})"),
        limit: STARTUP_LIMIT,
    })
}

fn count_ready_nodes(list: &Value) -> usize {
    list["items"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter(|node| {
                    node["status"]["conditions"]
                        .as_array()
                        .is_some_and(|conditions| {
                            conditions
                                .iter()
                                .any(|c| c["type"] == "Ready" && c["status"] == "True")
                        })
                })
                .count()
        })
        .unwrap_or(0)
}

/// Whether a failed kubectl call is worth repeating: the server was too busy to answer in
/// time, as opposed to refusing the request or the rollout itself failing.
fn transient(error: &BenchError) -> bool {
    match error {
        BenchError::CommandFailed { output, .. } => [
            "TLS handshake timeout",
            "Client.Timeout",
            "context deadline exceeded",
            "connection reset",
            "EOF",
            "the server was unable to return a response in the time allotted",
        ]
        .iter()
        .any(|sign| output.contains(sign)),
        BenchError::Timeout { .. } => true,
        _ => false,
    }
}

/// Applies a manifest, repeating transient failures until `limit`; returns how many calls
/// were repeated.
fn apply(kubectl: &Kubectl, manifest: &str, limit: Duration) -> Result<u32, BenchError> {
    let deadline = Instant::now() + limit;
    let mut retries = 0;
    loop {
        match kubectl.run(&["apply", "-f", "-"], Some(manifest), KUBECTL_CALL_LIMIT) {
            Ok(_) => return Ok(retries),
            Err(e) if transient(&e) && Instant::now() < deadline => {
                eprintln!("kubectl apply failed, trying again: {e}");
                retries += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

/// `kubectl rollout status` until `limit` has passed since the call; its success means the
/// Deployment's generation is observed and every updated replica is available with no old
/// ones left. A server too busy to answer makes kubectl give up early; it is asked again
/// (the count of such repeats is returned), so the time measured is the rollout's.
fn wait_for_rollout(
    kubectl: &Kubectl,
    deployment: &str,
    limit: Duration,
    phase: &str,
) -> Result<u32, BenchError> {
    let started = Instant::now();
    let mut retries = 0;
    loop {
        let remaining = limit.saturating_sub(started.elapsed());
        if remaining < Duration::from_secs(1) {
            return Err(BenchError::Timeout {
                what: format!("the {phase}"),
                limit,
            });
        }
        let timeout = format!("--timeout={}s", remaining.as_secs());
        match kubectl.run(
            &["rollout", "status", deployment, &timeout],
            None,
            remaining + ROLLOUT_STATUS_SLACK,
        ) {
            Ok(_) => return Ok(retries),
            Err(e) if transient(&e) => {
                eprintln!(
                    "kubectl rollout status gave up after {:.1} s into the {phase}, asking again: {e}",
                    started.elapsed().as_secs_f64()
                );
                retries += 1;
            }
            Err(BenchError::CommandFailed { output, .. }) => {
                return Err(BenchError::Unexpected {
                    what: format!("the {phase}"),
                    detail: format!(
                        "kubectl rollout status failed after {:.1} s: {output}",
                        started.elapsed().as_secs_f64()
                    ),
                })
            }
            Err(other) => return Err(other),
        }
    }
}

/// Confirms the state `rollout status` promised, straight from the Deployment's status.
fn ensure_complete(kubectl: &Kubectl, replicas: u32) -> Result<(), BenchError> {
    let deployment = kubectl.get_json(&["deployment", APP])?;
    let status = &deployment["status"];
    let want = i64::from(replicas);
    let generation = deployment["metadata"]["generation"].as_i64();
    let observed = status["observedGeneration"].as_i64();
    let checks = [
        (
            "observedGeneration",
            observed == generation && observed.is_some(),
        ),
        (
            "availableReplicas",
            status["availableReplicas"].as_i64() == Some(want),
        ),
        (
            "updatedReplicas",
            status["updatedReplicas"].as_i64() == Some(want),
        ),
    ];
    match checks.iter().find(|(_, ok)| !ok) {
        None => Ok(()),
        Some((field, _)) => Err(BenchError::Unexpected {
            what: format!("deployment {APP}"),
            detail: format!(
                "{field} is not what rollout status promised (generation {generation:?}): {}",
                status
            ),
        }),
    }
}

/// Bytes of the SQLite store and its write-ahead log.
fn store_size(data_dir: &Path) -> u64 {
    ["state.db", "state.db-wal", "state.db-shm"]
        .iter()
        .filter_map(|name| std::fs::metadata(data_dir.join(name)).ok())
        .map(|m| m.len())
        .sum()
}

// ---------------------------------------------------------------------------------------------
// The report
// ---------------------------------------------------------------------------------------------

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn print_report(options: &Options, figures: &Figures) {
    println!();
    println!(
        "=== rollout benchmark: {} replicas, {} simulated nodes ===",
        options.replicas, options.nodes
    );
    println!(
        "{:<24} {:>10} {:>15} {:>15} {:>14} {:>9}",
        "phase", "wall (s)", "server CPU (s)", "peak RSS (MiB)", "end RSS (MiB)", "RS steps"
    );
    for (name, phase) in [
        ("startup (nodes Ready)", &figures.startup),
        ("scale-up to available", &figures.scale_up),
        ("rollout (apply→status)", &figures.rollout),
    ] {
        match phase {
            Some(phase) => println!(
                "{:<24} {:>10.2} {:>15.2} {:>15.1} {:>14.1} {:>9}",
                name,
                phase.wall.as_secs_f64(),
                phase.cpu.as_secs_f64(),
                mib(phase.peak_rss_kib),
                mib(phase.end_rss_kib),
                phase.steps.len()
            ),
            None => println!("{name:<24} {:>10}", "not reached"),
        }
    }
    let seconds = |phase: &Option<PhaseFigures>| {
        phase.as_ref().map_or("not reached".to_string(), |p| {
            format!("{:.2} s", p.wall.as_secs_f64())
        })
    };
    println!();
    println!(
        "time to {} available:   {}",
        options.replicas,
        seconds(&figures.scale_up)
    );
    println!("rollout duration:         {}", seconds(&figures.rollout));
    println!(
        "peak RSS (100 ms samples): {:.1} MiB over {} samples",
        mib(figures.peak_rss_kib),
        figures.memory_samples
    );
    match figures.hwm_kib {
        Some(hwm) => println!("VmHWM at the end:         {:.1} MiB", mib(hwm)),
        None => println!("VmHWM at the end:         unknown (server gone)"),
    }
    match figures.total_cpu {
        Some(cpu) => println!("server CPU time, total:   {:.2} s", cpu.as_secs_f64()),
        None => println!("server CPU time, total:   unknown (server gone)"),
    }
    println!(
        "store size at the end:    {:.1} MiB",
        figures.store_bytes as f64 / (1024.0 * 1024.0)
    );
    println!("kubectl calls repeated:   {}", figures.retries);
    if let Some(rollout) = figures
        .rollout
        .as_ref()
        .or(figures.unfinished_rollout.as_ref())
    {
        println!();
        let unfinished = if figures.rollout.is_none() {
            ", unfinished"
        } else {
            ""
        };
        println!(
            "ReplicaSet scaling steps during the rollout{unfinished} (spec.replicas, as watched):"
        );
        let origin = rollout.steps.first().map(|s| s.at);
        for step in &rollout.steps {
            let offset = origin.map_or(0.0, |o| (step.at - o).as_secs_f64());
            let from = step
                .from
                .map_or_else(|| "new".to_string(), |n| n.to_string());
            println!(
                "  +{offset:>7.2} s  {:<40} {from:>5} -> {}",
                step.replica_set, step.to
            );
        }
    }
}
