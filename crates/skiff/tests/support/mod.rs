//! Harness for end-to-end tests: runs the real `skiff up` binary in a temporary directory and
//! drives it with the real `kubectl`, so the tests see exactly what a user sees.
//!
//! Every wait polls a condition against a deadline; nothing sleeps and hopes. A started server is
//! stopped when its [`Skiff`] is dropped, also when a test panics, so no process outlives a test.

#![allow(dead_code)] // Each test file uses a different part of the harness.

pub mod api;
pub mod cli;
pub mod grace;
pub mod host;
pub mod http;
pub mod images;
pub mod json;
pub mod manifests;
pub mod oci;
pub mod process;
pub mod slow_proxy;
pub mod test_hosts;
pub mod traffic;

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

/// How long a server may take to become ready, and a kubectl command to finish, before the test
/// gives up. Generous, because CI machines are small and shared.
pub const DEADLINE: Duration = Duration::from_secs(60);

/// Short leader-election timing (lease 4 s, renew deadline 3 s, retry 1 s), so a dead
/// leader's Leases run out quickly in tests of several servers.
pub const ELECTION_FLAGS: [&str; 6] = [
    "--leader-elect-lease-duration",
    "4s",
    "--leader-elect-renew-deadline",
    "3s",
    "--leader-elect-retry-period",
    "1s",
];

/// How often conditions are polled.
const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// The kubectl minors that may sit beside the `kubectl` on the PATH as `kubectl.1.<minor>`.
pub const VERSIONED_MINORS: std::ops::RangeInclusive<u32> = 27..=33;

/// Polls `probe` until it yields a value, failing the test with `what` once `timeout` passes.
pub fn wait_for<T>(what: &str, timeout: Duration, probe: impl FnMut() -> Option<T>) -> T {
    wait_for_every(what, timeout, POLL_INTERVAL, probe)
}

/// Polls `probe` every `interval` until it yields a value, failing the test with `what` once
/// `timeout` passes; for probes too costly to run at the default pace.
pub fn wait_for_every<T>(
    what: &str,
    timeout: Duration,
    interval: Duration,
    mut probe: impl FnMut() -> Option<T>,
) -> T {
    let started = Instant::now();
    loop {
        if let Some(value) = probe() {
            return value;
        }
        if started.elapsed() > timeout {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        thread::sleep(interval);
    }
}

/// Polls `probe` until it yields a value or `timeout` passes, for callers that report the
/// failure themselves (with what they saw last).
pub fn poll<T>(timeout: Duration, mut probe: impl FnMut() -> Option<T>) -> Option<T> {
    let started = Instant::now();
    loop {
        if let Some(value) = probe() {
            return Some(value);
        }
        if started.elapsed() > timeout {
            return None;
        }
        thread::sleep(POLL_INTERVAL);
    }
}

/// A loopback `host:port` nothing serves (the discard port), where every test server's pulls
/// go unless the test names a registries file of its own.
pub const UNSERVED_REGISTRY: &str = "127.0.0.1:9";

/// A `skiff up` process with its own data directory, plus scratch space for manifests and kubectl
/// caches.
pub struct Skiff {
    root: tempfile::TempDir,
    extra_args: Vec<String>,
    process: Option<Child>,
    /// The `--listen` address: loopback, or a test host's address (port 0: any free one).
    listen: String,
    /// The network namespace (a name under `/run/netns`) the server runs in; none is the
    /// test's own.
    netns: Option<String>,
    /// The user the server runs as, when not the test's own.
    user: Option<u32>,
}

impl Skiff {
    /// Starts a server with default flags and waits until it answers `/readyz`.
    pub fn start() -> Skiff {
        // No real node: API-level tests need no processes, and stay deterministic without them.
        Skiff::start_with(&["--no-node"])
    }

    /// Starts a server with extra `skiff up` flags (kept for restarts) and waits until it is
    /// ready.
    pub fn start_with(extra_args: &[&str]) -> Skiff {
        let root = tempfile::Builder::new()
            .prefix("skiff-e2e-")
            .tempdir()
            .unwrap_or_else(|e| panic!("cannot create a temporary directory: {e}"));
        let mut skiff = Skiff {
            root,
            extra_args: with_test_container_runtime(&on_loopback(extra_args)),
            process: None,
            listen: "127.0.0.1:0".to_string(),
            netns: None,
            user: None,
        };
        skiff.launch();
        skiff
    }

    /// Starts a server whose flags name no container runtime, so `skiff up` chooses its
    /// default as it does for a user; as the user `uid` when given (the server's directories
    /// handed to that user first).
    pub fn start_choosing_runtime(extra_args: &[&str], uid: Option<u32>) -> Skiff {
        assert!(
            !extra_args
                .iter()
                .any(|a| a.starts_with("--container-runtime")),
            "the server is to choose its runtime itself"
        );
        let root = tempfile::Builder::new()
            .prefix("skiff-e2e-")
            .tempdir()
            .unwrap_or_else(|e| panic!("cannot create a temporary directory: {e}"));
        if let Some(uid) = uid {
            for dir in [root.path().to_path_buf(), root.path().join("data")] {
                std::fs::create_dir_all(&dir)
                    .unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
                std::os::unix::fs::chown(&dir, Some(uid), Some(uid))
                    .unwrap_or_else(|e| panic!("cannot hand {} to uid {uid}: {e}", dir.display()));
            }
        }
        let mut skiff = Skiff {
            root,
            extra_args: on_loopback(extra_args)
                .iter()
                .map(|a| a.to_string())
                .collect(),
            process: None,
            listen: "127.0.0.1:0".to_string(),
            netns: None,
            user: uid,
        };
        skiff.launch();
        skiff
    }

    /// Where the server keeps its state, credentials and kubeconfig.
    pub fn data_dir(&self) -> PathBuf {
        self.root.path().join("data")
    }

    /// The kubeconfig the server wrote for its admin.
    pub fn kubeconfig(&self) -> PathBuf {
        self.data_dir().join("kubeconfig")
    }

    /// The server's log (stdout and stderr) so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// The running server's process id.
    pub fn pid(&self) -> u32 {
        self.process
            .as_ref()
            .map(Child::id)
            .expect("the server is not running")
    }

    fn log_path(&self) -> PathBuf {
        self.root.path().join("skiff.log")
    }

    /// Writes `contents` to a scratch file and returns its name, which kubectl (running in the
    /// scratch directory) resolves, so messages quote it as a user would see it.
    pub fn write_file(&self, name: &str, contents: &str) -> String {
        let path = self.file_path(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .unwrap_or_else(|e| panic!("cannot create {}: {e}", parent.display()));
        }
        std::fs::write(&path, contents)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
        name.to_string()
    }

    /// The full path of a scratch file.
    pub fn file_path(&self, name: &str) -> PathBuf {
        self.root.path().join("files").join(name)
    }

    /// The `kubectl` found on the PATH, pointed at this server.
    pub fn kubectl(&self) -> Kubectl {
        self.kubectl_at(&path_kubectl())
    }

    /// A given kubectl binary pointed at this server, with a discovery cache of its own.
    pub fn kubectl_at(&self, binary: &Path) -> Kubectl {
        let label = binary
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "kubectl".to_string());
        Kubectl {
            binary: binary.to_path_buf(),
            kubeconfig: self.kubeconfig(),
            cache_dir: self.root.path().join("cache").join(&label),
            workdir: self.root.path().join("files"),
            label,
        }
    }

    /// Stops the server with SIGTERM, as a user would with Ctrl-C, and returns how it exited.
    pub fn stop(&mut self) -> ExitStatus {
        let Some(mut child) = self.process.take() else {
            panic!("the server is not running");
        };
        terminate(&mut child)
    }

    /// Stops the server if it runs and starts it again on the same data directory.
    pub fn restart(&mut self) {
        if let Some(mut child) = self.process.take() {
            let status = terminate(&mut child);
            assert!(
                status.success(),
                "skiff exited with {status} on SIGTERM; log:\n{}",
                self.log()
            );
        }
        self.launch();
    }

    /// Like [`Skiff::restart`], with `extra_args` (kept for later restarts) in place of the
    /// flags the server had.
    pub fn restart_with(&mut self, extra_args: &[&str]) {
        self.extra_args = with_test_container_runtime(&on_loopback(extra_args));
        self.restart();
    }

    /// Kills the server with SIGKILL: no chance to flush or clean up.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.process.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Kills the server if it runs, starts it again on the same data directory and kills it
    /// with SIGKILL `delay` later, ready or not: a crash during start-up. Leaves it stopped.
    pub fn kill_during_start(&mut self, delay: Duration) {
        self.kill();
        self.spawn_server();
        thread::sleep(delay);
        self.kill();
    }

    fn launch(&mut self) {
        self.spawn_server();
        self.wait_ready();
    }

    fn spawn_server(&mut self) {
        let data_dir = self.data_dir();
        std::fs::create_dir_all(self.root.path().join("files"))
            .unwrap_or_else(|e| panic!("cannot create the scratch directory: {e}"));
        // A kubeconfig left by an earlier run names the old port; readiness waits for the new one.
        let _ = std::fs::remove_file(self.kubeconfig());
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .unwrap_or_else(|e| panic!("cannot open the server log: {e}"));
        let log_err = log
            .try_clone()
            .unwrap_or_else(|e| panic!("cannot share the server log: {e}"));
        let loopback_net = self.loopback_only_registries();
        let mut command = in_netns(self.netns.as_deref(), env!("CARGO_BIN_EXE_skiff"));
        if let Some(uid) = self.user {
            use std::os::unix::process::CommandExt;
            command.uid(uid).gid(uid);
        }
        let child = command
            .arg("up")
            .arg("--data-dir")
            .arg(&data_dir)
            .args(["--listen", &self.listen])
            .args(&self.extra_args)
            .args(&loopback_net)
            .env_remove("SKIFF_DATA_DIR")
            .env("SKIFF_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start skiff: {e}"));
        self.process = Some(child);
    }

    /// The `--registry-config` arguments that keep every pull on loopback, unless the test
    /// passes a registries file of its own: all registries mirror to [`UNSERVED_REGISTRY`]
    /// with no fallback to the registry itself, so a pull of `nginx:1.18` fails at once.
    fn loopback_only_registries(&self) -> Vec<String> {
        if self
            .extra_args
            .iter()
            .any(|a| a == "--registry-config" || a.starts_with("--registry-config="))
        {
            return Vec::new();
        }
        let path = self.root.path().join("loopback-registries.yaml");
        let file = format!(
            "mirrors:\n  \"*\":\n    endpoint: [\"http://{UNSERVED_REGISTRY}\"]\ndisable_default_endpoint: true\n"
        );
        std::fs::write(&path, file)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
        vec!["--registry-config".to_string(), path.display().to_string()]
    }

    fn wait_ready(&mut self) {
        let kubeconfig = self.kubeconfig();
        let log_path = self.log_path();
        let started = Instant::now();
        loop {
            let exited = self
                .process
                .as_mut()
                .and_then(|p| p.try_wait().ok().flatten());
            if let Some(status) = exited {
                panic!(
                    "skiff exited with {status} before becoming ready; log:\n{}",
                    std::fs::read_to_string(&log_path).unwrap_or_default()
                );
            }
            // The kubeconfig is written once the port is bound; /readyz says it serves.
            // A restarted server's old kubeconfig may name a port not yet (or no longer)
            // served: a refused or reset connection means "not ready yet".
            if kubeconfig.exists()
                && self
                    .try_request_with("GET", "/readyz", None, &[], b"")
                    .is_ok_and(|r| r.body == "ok")
            {
                return;
            }
            if started.elapsed() > DEADLINE {
                panic!("skiff did not become ready within {DEADLINE:?}");
            }
            thread::sleep(POLL_INTERVAL);
        }
    }
}

impl Drop for Skiff {
    fn drop(&mut self) {
        if let Some(mut child) = self.process.take() {
            terminate(&mut child);
        }
        if thread::panicking() {
            eprintln!("--- skiff log ---\n{}--- end of skiff log ---", self.log());
        }
    }
}

/// A command running `program` in the network namespace `netns` (a name under `/run/netns`),
/// or in the test's own when none. `nsenter` changes only the network namespace and then
/// executes `program` itself (so the child's id is the program's), where `ip netns exec`
/// would also remount `/sys` and hide the cgroup hierarchies the `oci` runtime needs.
pub fn in_netns(netns: Option<&str>, program: &str) -> Command {
    match netns {
        None => Command::new(program),
        Some(name) => {
            let mut command = Command::new("nsenter");
            command
                .arg(format!("--net=/run/netns/{name}"))
                .arg("--")
                .arg(program);
            command
        }
    }
}

/// Sends SIGTERM and waits for the process to exit; kills it if it lingers.
pub fn terminate(child: &mut Child) -> ExitStatus {
    if let Ok(Some(status)) = child.try_wait() {
        return status;
    }
    send_sigterm(child);
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(10) {
        if let Ok(Some(status)) = child.try_wait() {
            return status;
        }
        thread::sleep(POLL_INTERVAL);
    }
    let _ = child.kill();
    child
        .wait()
        .unwrap_or_else(|e| panic!("cannot reap the server process: {e}"))
}

#[cfg(unix)]
fn send_sigterm(child: &Child) {
    let Ok(pid) = i32::try_from(child.id()) else {
        return;
    };
    // `pid` is our own unreaped child, so it names no other process; one that already exited
    // is no error here.
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGTERM,
    );
}

#[cfg(not(unix))]
fn send_sigterm(child: &mut Child) {
    let _ = child.kill();
}

/// The `kubectl` on the PATH (following no symlinks: that is the command users type).
pub fn path_kubectl() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join("kubectl"))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| panic!("the end-to-end tests need `kubectl` on the PATH"))
}

/// The `kubectl.1.<minor>` clients installed beside the PATH `kubectl` (after resolving its
/// symlink), oldest first.
pub fn versioned_kubectls() -> Vec<PathBuf> {
    let path_kubectl = path_kubectl();
    let resolved = std::fs::canonicalize(&path_kubectl).unwrap_or(path_kubectl);
    let Some(dir) = resolved.parent() else {
        return Vec::new();
    };
    VERSIONED_MINORS
        .map(|minor| dir.join(format!("kubectl.1.{minor}")))
        .filter(|candidate| candidate.is_file())
        .collect()
}

/// The result of one kubectl run.
#[derive(Debug)]
pub struct Outcome {
    /// How kubectl exited.
    pub status: ExitStatus,
    /// Everything kubectl printed on stdout.
    pub stdout: String,
    /// Everything kubectl printed on stderr.
    pub stderr: String,
}

impl Outcome {
    /// Whether kubectl exited 0.
    pub fn success(&self) -> bool {
        self.status.success()
    }
}

/// One kubectl binary bound to one server through `--kubeconfig` and a private `--cache-dir`.
#[derive(Clone, Debug)]
pub struct Kubectl {
    binary: PathBuf,
    kubeconfig: PathBuf,
    cache_dir: PathBuf,
    workdir: PathBuf,
    label: String,
}

impl Kubectl {
    /// The binary's file name (`kubectl`, `kubectl.1.31`, ...), for messages.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// The same binary with another kubeconfig, to test credentials.
    pub fn with_kubeconfig(&self, kubeconfig: &Path) -> Kubectl {
        Kubectl {
            kubeconfig: kubeconfig.to_path_buf(),
            ..self.clone()
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.binary);
        cmd.arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--cache-dir")
            .arg(&self.cache_dir)
            .args(args)
            .current_dir(&self.workdir)
            .env_remove("KUBECONFIG")
            .stdin(Stdio::null());
        cmd
    }

    /// Runs kubectl to completion (killing it after [`DEADLINE`]).
    pub fn run(&self, args: &[&str]) -> Outcome {
        let mut child = self
            .command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", self.binary.display()));
        let stdout = drain(child.stdout.take());
        let stderr = drain(child.stderr.take());
        let started = Instant::now();
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) if started.elapsed() > DEADLINE => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("{} {args:?} did not finish within {DEADLINE:?}", self.label);
                }
                Ok(None) => thread::sleep(Duration::from_millis(10)),
                Err(e) => panic!("cannot wait for kubectl: {e}"),
            }
        };
        Outcome {
            status,
            stdout: stdout.join().unwrap_or_default(),
            stderr: stderr.join().unwrap_or_default(),
        }
    }

    /// Runs kubectl, fails the test unless it succeeds, and returns its stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.success(),
            "{} {args:?} failed with {}:\nstdout: {}\nstderr: {}",
            self.label,
            out.status,
            out.stdout,
            out.stderr
        );
        out.stdout
    }

    /// Runs kubectl, fails the test if it succeeds, and returns its stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            !out.success(),
            "{} {args:?} should have failed but printed:\n{}",
            self.label,
            out.stdout
        );
        out.stderr
    }

    /// Starts a long-running kubectl (`get -w`) whose stdout lines arrive as it prints them.
    pub fn spawn_lines(&self, args: &[&str]) -> LineStream {
        let mut child = self
            .command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", self.binary.display()));
        let (sender, lines) = mpsc::channel();
        if let Some(stdout) = child.stdout.take() {
            thread::spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    if sender.send(line).is_err() {
                        break;
                    }
                }
            });
        }
        let stderr = drain(child.stderr.take());
        LineStream {
            child,
            lines,
            seen: Vec::new(),
            stderr: Some(stderr),
        }
    }
}

/// Reads a pipe to its end on a thread of its own, so a chatty child never blocks on a full pipe.
fn drain(pipe: Option<impl Read + Send + 'static>) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut text = String::new();
        if let Some(mut pipe) = pipe {
            let mut bytes = Vec::new();
            let _ = pipe.read_to_end(&mut bytes);
            text = String::from_utf8_lossy(&bytes).into_owned();
        }
        text
    })
}

/// The stdout of a running kubectl, line by line. The process is killed on drop.
pub struct LineStream {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
    stderr: Option<thread::JoinHandle<String>>,
}

impl LineStream {
    /// Waits until a line satisfying `wanted` is printed and returns it; earlier lines are kept
    /// in [`LineStream::seen`].
    pub fn wait_for_line(&mut self, what: &str, wanted: impl Fn(&str) -> bool) -> String {
        let started = Instant::now();
        loop {
            let left = DEADLINE.saturating_sub(started.elapsed());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if wanted(&line) {
                        return line;
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    panic!(
                        "timed out waiting for {what}; printed so far: {:#?}",
                        self.seen
                    )
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let _ = self.child.wait();
                    let stderr = self
                        .stderr
                        .take()
                        .and_then(|h| h.join().ok())
                        .unwrap_or_default();
                    panic!(
                        "kubectl exited while waiting for {what}; printed: {:#?}; stderr: {stderr}",
                        self.seen
                    )
                }
            }
        }
    }

    /// The next line, if one is printed within `timeout`; `None` also once kubectl has exited.
    /// For callers that fold every line into their own state instead of waiting for one.
    pub fn next_line(&mut self, timeout: Duration) -> Option<String> {
        let line = self.lines.recv_timeout(timeout).ok()?;
        self.seen.push(line.clone());
        Some(line)
    }

    /// Every line printed so far that a wait consumed.
    pub fn seen(&self) -> &[String] {
        &self.seen
    }

    /// Whether kubectl closes its output (ends) within `timeout`; lines printed meanwhile
    /// join [`LineStream::seen`].
    pub fn ends_within(&mut self, timeout: Duration) -> bool {
        let started = Instant::now();
        loop {
            let left = timeout.saturating_sub(started.elapsed());
            match self.lines.recv_timeout(left) {
                Ok(line) => self.seen.push(line),
                Err(mpsc::RecvTimeoutError::Timeout) => return false,
                Err(mpsc::RecvTimeoutError::Disconnected) => return true,
            }
        }
    }
}

impl Drop for LineStream {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Splits a table line into its cells, for comparing `kubectl get` output without depending on
/// column widths.
pub fn cells(line: &str) -> Vec<&str> {
    line.split_whitespace().collect()
}

/// Whether `text` is an age as kubectl prints it (`0s`, `5s`, `3m10s`, `2d`).
pub fn is_age(text: &str) -> bool {
    !text.is_empty()
        && text.chars().next().is_some_and(|c| c.is_ascii_digit())
        && text
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, 's' | 'm' | 'h' | 'd' | 'y'))
}

/// Asserts that a table printed by `kubectl get` has exactly these rows, where an expected cell
/// `<age>` matches any age.
pub fn assert_table(output: &str, expected: &[&[&str]]) {
    let rows: Vec<Vec<&str>> = output
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(cells)
        .collect();
    let matches = rows.len() == expected.len()
        && rows.iter().zip(expected).all(|(row, want)| {
            row.len() == want.len()
                && row
                    .iter()
                    .zip(want.iter())
                    .all(|(got, want)| *want == "<age>" && is_age(got) || got == want)
        });
    assert!(
        matches,
        "table differs\nexpected: {expected:#?}\nprinted:\n{output}"
    );
}

/// An HTTP response read by [`Skiff::request`].
#[derive(Debug)]
pub struct RawResponse {
    /// The status code.
    pub status: u16,
    /// The body, decoded from chunks when the server chunked it.
    pub body: String,
}

impl Skiff {
    /// Sends one HTTPS request to the server, trusting the CA from its kubeconfig, with the
    /// given bearer token or none at all: for what kubectl cannot send.
    pub fn request(&self, method: &str, path: &str, token: Option<&str>) -> RawResponse {
        self.request_with(method, path, token, &[], b"")
    }

    /// Like [`Skiff::request`], with extra header lines (`Name: value`) and a body (sent with
    /// its `Content-Length` when not empty), written whole before the answer is read, as simple
    /// clients do.
    pub fn request_with(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        headers: &[String],
        body: &[u8],
    ) -> RawResponse {
        self.try_request_with(method, path, token, headers, body)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// Like [`Skiff::request_with`], with failures to connect, send or read returned rather
    /// than panicking: for waiting on a server that is still starting.
    pub fn try_request_with(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        headers: &[String],
        body: &[u8],
    ) -> Result<RawResponse, String> {
        use std::io::Write;

        let (mut stream, address) = self.tls_stream()?;

        let mut request = format!(
            "{method} {path} HTTP/1.1\r\nHost: {address}\r\nAccept: application/json\r\nConnection: close\r\n"
        );
        if let Some(token) = token {
            request.push_str(&format!("Authorization: Bearer {token}\r\n"));
        }
        for header in headers {
            request.push_str(header);
            request.push_str("\r\n");
        }
        if !body.is_empty() {
            request.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        request.push_str("\r\n");
        stream
            .write_all(request.as_bytes())
            .and_then(|()| stream.write_all(body))
            .and_then(|()| stream.flush())
            .map_err(|e| format!("cannot send the request: {e}"))?;
        let mut raw = Vec::new();
        if let Err(e) = stream.read_to_end(&mut raw) {
            // Servers may close without a TLS close_notify; what arrived is the response.
            if e.kind() != std::io::ErrorKind::UnexpectedEof {
                return Err(format!("cannot read the response: {e}"));
            }
        }
        if raw.is_empty() {
            return Err("the server closed the connection without answering".to_string());
        }
        Ok(parse_response(&raw))
    }

    /// A TLS connection to the server, trusting the CA from its kubeconfig, with the
    /// `host:port` it reached: for requests written by hand (held open, sent in parts).
    pub fn tls_stream(
        &self,
    ) -> Result<
        (
            rustls::StreamOwned<rustls::ClientConnection, std::net::TcpStream>,
            String,
        ),
        String,
    > {
        let kubeconfig: serde_json::Value = skiff_api::yaml::from_str(
            &std::fs::read_to_string(self.kubeconfig())
                .unwrap_or_else(|e| panic!("cannot read the kubeconfig: {e}")),
        )
        .unwrap_or_else(|e| panic!("the kubeconfig is not YAML: {e}"));
        let cluster = &kubeconfig["clusters"][0]["cluster"];
        let server = cluster["server"].as_str().unwrap_or_default();
        let address = server
            .strip_prefix("https://")
            .unwrap_or_else(|| panic!("the kubeconfig server {server:?} is not https"));
        let ca_pem = {
            use base64::Engine;
            base64::engine::general_purpose::STANDARD
                .decode(
                    cluster["certificate-authority-data"]
                        .as_str()
                        .unwrap_or_default(),
                )
                .unwrap_or_else(|e| panic!("the kubeconfig CA is not base64: {e}"))
        };

        use rustls::pki_types::pem::PemObject;
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls::pki_types::CertificateDer::pem_slice_iter(&ca_pem) {
            let cert = cert.unwrap_or_else(|e| panic!("the kubeconfig CA is not PEM: {e:?}"));
            roots
                .add(cert)
                .unwrap_or_else(|e| panic!("the kubeconfig CA is unusable: {e}"));
        }
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap_or_else(|e| panic!("no TLS versions: {e}"))
            .with_root_certificates(roots)
            .with_no_client_auth();
        let host = address.rsplit_once(':').map_or(address, |(h, _)| h);
        let server_name = rustls::pki_types::ServerName::try_from(host.to_string())
            .unwrap_or_else(|e| panic!("bad server name {host}: {e}"));
        let connection = rustls::ClientConnection::new(std::sync::Arc::new(config), server_name)
            .unwrap_or_else(|e| panic!("cannot set up TLS: {e}"));
        let socket = std::net::TcpStream::connect(address)
            .map_err(|e| format!("cannot connect to {address}: {e}"))?;
        let _ = socket.set_read_timeout(Some(DEADLINE));
        let stream = rustls::StreamOwned::new(connection, socket);
        Ok((stream, address.to_string()))
    }

    /// Like [`Skiff::request`], with a body of the given content type.
    pub fn request_with_body(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<(&str, &[u8])>,
    ) -> RawResponse {
        match body {
            Some((content_type, bytes)) => self.request_with(
                method,
                path,
                token,
                &[format!("Content-Type: {content_type}")],
                bytes,
            ),
            None => self.request_with(method, path, token, &[], b""),
        }
    }
}

fn parse_response(raw: &[u8]) -> RawResponse {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("malformed HTTP response: {text:?}"));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("malformed status line in {head:?}"));
    let chunked = head.lines().any(|l| {
        l.to_ascii_lowercase()
            .starts_with("transfer-encoding: chunked")
    });
    let body = if chunked {
        let mut out = String::new();
        let mut rest = body;
        while let Some((size, after)) = rest.split_once("\r\n") {
            let size = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
            if size == 0 || after.len() < size {
                break;
            }
            out.push_str(&after[..size]);
            rest = after[size..].trim_start_matches("\r\n");
        }
        out
    } else {
        body.to_string()
    };
    RawResponse { status, body }
}

/// The variable that runs every test server's real node on another container runtime:
/// `oci` (the embedded OCI runtime) or `oci=PATH` (crun or runc at `PATH`). Unset, servers
/// run pods as processes (`--container-runtime process`): `skiff up`'s default is `oci` when
/// run as root, as CI runs, and tests that want containers say so themselves.
pub const TEST_CONTAINER_RUNTIME: &str = "SKIFF_TEST_CONTAINER_RUNTIME";

/// How many servers this process started under [`TEST_CONTAINER_RUNTIME`], for their ranges.
static OCI_SERVERS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

/// `extra_args` with `--node-ip 127.0.0.1` unless they give one: the server's node would
/// otherwise take the default route's address, and tests keep their traffic on loopback.
fn on_loopback<'a>(extra_args: &[&'a str]) -> Vec<&'a str> {
    let mut args = extra_args.to_vec();
    if !args.iter().any(|a| a.starts_with("--node-ip")) {
        args.extend(["--node-ip", "127.0.0.1"]);
    }
    args
}

/// `extra_args`, plus the flags [`TEST_CONTAINER_RUNTIME`] asks for when the server runs a
/// real node and its flags choose no runtime: ranges from 198.18.0.0/15 (a /22 of pods and
/// one of Services, picked by process and server), a bridge and a cgroup root of its own;
/// without the variable, `--container-runtime process`.
pub fn with_test_container_runtime(extra_args: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = extra_args.iter().map(|a| a.to_string()).collect();
    if args
        .iter()
        .any(|a| a == "--no-node" || a.starts_with("--container-runtime"))
    {
        return args;
    }
    let Ok(choice) = std::env::var(TEST_CONTAINER_RUNTIME) else {
        args.extend(["--container-runtime".to_string(), "process".to_string()]);
        return args;
    };
    let (runtime, program) = match choice.split_once('=') {
        Some((runtime, program)) => (runtime.to_string(), Some(program.to_string())),
        None => (choice.clone(), None),
    };
    assert_eq!(
        runtime, "oci",
        "{TEST_CONTAINER_RUNTIME} must be oci or oci=PATH, not {choice:?}"
    );
    let index = OCI_SERVERS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let pid = std::process::id();
    let share = (pid.wrapping_mul(4).wrapping_add(index) % 64) * 4;
    args.extend([
        "--container-runtime".to_string(),
        "oci".to_string(),
        "--cluster-cidr".to_string(),
        format!("198.18.{share}.0/22"),
        "--service-cidr".to_string(),
        format!("198.19.{share}.0/22"),
        "--pod-bridge".to_string(),
        format!("sks{pid}x{index}"),
        "--cgroup-root".to_string(),
        format!("skiff-suite-{pid}-{index}"),
    ]);
    if let Some(program) = program {
        args.extend(["--oci-runtime".to_string(), program]);
    }
    args
}
