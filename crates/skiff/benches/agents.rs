//! Rollout with pods on two `skiff agent` nodes against the same rollout on one node, and an
//! agent's idle memory.
//!
//! It drives real processes on loopback through the real `kubectl`, as `tests/agent.rs` does:
//!
//! ```text
//! cargo bench -p skiff --bench agents --profile dev                  # the debug build
//! cargo bench -p skiff --bench agents                                # the release build
//! cargo bench -p skiff --bench agents -- --replicas 40
//! ```
//!
//! 1. One node: `skiff up` with its own node (process runtime); a Deployment of `--replicas`
//!    demo pods (default 20) with a 1 s readiness probe is applied and awaited with
//!    `kubectl rollout status` (scale-up), then its image changed and awaited again (rollout).
//! 2. Two agents: `skiff up --no-node` and two `skiff agent`s joining it with its join token.
//!    Once both nodes are Ready and the agents have idled for [`IDLE_SETTLE`], each agent's
//!    resident set (`VmRSS`) and proportional set (`Pss`, `/proc/PID/smaps_rollup`) are read;
//!    then the same Deployment runs over both agents' nodes, timed the same way.
//!
//! Every process is stopped (SIGTERM, then SIGKILL after a deadline) however the run ends.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

/// The Deployment's name and `app` label.
const APP: &str = "agents-bench";
/// The demo image, imported from each data directory's `images/` at start.
const DEMO_IMAGE: &str = "127.0.0.1:9/skiff-test/demo";
/// How long startup, joins and each rollout may take.
const LIMIT: Duration = Duration::from_secs(600);
/// How long the agents idle after joining before their memory is read.
const IDLE_SETTLE: Duration = Duration::from_secs(15);
/// How long a stopping process gets before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(30);

/// A started process, stopped when dropped.
struct Running {
    name: String,
    child: Child,
}

impl Running {
    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(pid) = i32::try_from(self.child.id()) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
        let started = Instant::now();
        while started.elapsed() < STOP_GRACE {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        eprintln!(
            "{} did not stop within {STOP_GRACE:?}; killing it",
            self.name
        );
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `probe` every 250 ms until it answers or `LIMIT` passes.
fn wait_for<T>(what: &str, mut probe: impl FnMut() -> Option<T>) -> Result<T, String> {
    let started = Instant::now();
    loop {
        if let Some(value) = probe() {
            return Ok(value);
        }
        if started.elapsed() > LIMIT {
            return Err(format!("{what} did not happen within {LIMIT:?}"));
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Puts the demo image's archives (tags 1 and 2) in `data_dir/images`.
fn place_images(data_dir: &Path) -> Result<(), String> {
    let images = data_dir.join("images");
    std::fs::create_dir_all(&images).map_err(|e| format!("{}: {e}", images.display()))?;
    for tag in ["1", "2"] {
        let image = skiff_testkit::images::demo_from_binary(
            Path::new(env!("CARGO_BIN_EXE_skiff-demo")),
            tag,
        );
        let name = image
            .archive
            .file_name()
            .ok_or_else(|| format!("{} names no file", image.archive.display()))?;
        std::fs::copy(&image.archive, images.join(name))
            .map_err(|e| format!("copying {}: {e}", image.archive.display()))?;
    }
    Ok(())
}

/// Starts `skiff ARGS`, its output in `log`.
fn spawn_skiff(name: &str, args: &[String], log: &Path) -> Result<Running, String> {
    let out = std::fs::File::create(log).map_err(|e| format!("{}: {e}", log.display()))?;
    let err = out.try_clone().map_err(|e| e.to_string())?;
    let child = Command::new(env!("CARGO_BIN_EXE_skiff"))
        .args(args)
        .env_remove("SKIFF_DATA_DIR")
        .env_remove("SKIFF_AGENT_DATA_DIR")
        .env("SKIFF_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .map_err(|e| format!("cannot start skiff {name}: {e}"))?;
    Ok(Running {
        name: name.to_string(),
        child,
    })
}

/// `skiff up` in `root/server` (`extra` flags added), waited for until its kubeconfig exists.
fn start_server(root: &Path, extra: &[&str]) -> Result<(Running, PathBuf), String> {
    let data = root.join("server");
    place_images(&data)?;
    // Pods as processes on loopback, as on the agents: the same runtime on both sides.
    let mut args: Vec<String> = [
        "up",
        "--listen",
        "127.0.0.1:0",
        "--node-ip",
        "127.0.0.1",
        "--container-runtime",
        "process",
    ]
    .map(String::from)
    .into();
    args.push("--data-dir".into());
    args.push(data.display().to_string());
    args.extend(extra.iter().map(|a| a.to_string()));
    let mut server = spawn_skiff("server", &args, &root.join("server.log"))?;
    let kubeconfig = data.join("kubeconfig");
    wait_for("the server's kubeconfig", || {
        if let Ok(Some(status)) = server.child.try_wait() {
            eprintln!("the server exited with {status}");
            return Some(());
        }
        kubeconfig.exists().then_some(())
    })?;
    if let Ok(Some(status)) = server.child.try_wait() {
        return Err(format!("the server exited with {status}"));
    }
    Ok((server, kubeconfig))
}

/// `kubectl ARGS` against `kubeconfig`; its stdout, or why it failed.
fn kubectl(kubeconfig: &Path, args: &[&str]) -> Result<String, String> {
    let output = Command::new("kubectl")
        .args(args)
        .env("KUBECONFIG", kubeconfig)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run kubectl: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "kubectl {args:?}: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Waits until `count` nodes are Ready.
fn wait_nodes_ready(kubeconfig: &Path, count: usize) -> Result<(), String> {
    wait_for(&format!("{count} Ready nodes"), || {
        let listing = kubectl(kubeconfig, &["get", "nodes", "--no-headers"]).ok()?;
        let ready = listing
            .lines()
            .filter(|line| line.split_whitespace().nth(1) == Some("Ready"))
            .count();
        (ready >= count).then_some(())
    })
}

/// The Deployment with `replicas` demo pods of image tag `tag`.
fn deployment(replicas: u32, tag: &str) -> String {
    format!(
        "apiVersion: apps/v1
kind: Deployment
metadata:
  name: {APP}
spec:
  replicas: {replicas}
  selector:
    matchLabels: {{app: {APP}}}
  template:
    metadata:
      labels: {{app: {APP}}}
    spec:
      containers:
      - name: web
        image: {DEMO_IMAGE}:{tag}
        readinessProbe:
          httpGet: {{path: /, port: 80}}
          periodSeconds: 1
"
    )
}

/// Applies the Deployment at `tag` and times it until `kubectl rollout status` says done.
fn timed_apply(
    root: &Path,
    kubeconfig: &Path,
    replicas: u32,
    tag: &str,
) -> Result<Duration, String> {
    let file = root.join(format!("deployment-{tag}.yaml"));
    std::fs::write(&file, deployment(replicas, tag)).map_err(|e| e.to_string())?;
    let started = Instant::now();
    kubectl(kubeconfig, &["apply", "-f", &file.display().to_string()])?;
    kubectl(
        kubeconfig,
        &[
            "rollout",
            "status",
            &format!("deployment/{APP}"),
            &format!("--timeout={}s", LIMIT.as_secs()),
        ],
    )?;
    Ok(started.elapsed())
}

/// How many of the Deployment's pods each node runs.
fn pods_per_node(kubeconfig: &Path) -> Result<Vec<(String, usize)>, String> {
    let listing = kubectl(
        kubeconfig,
        &[
            "get",
            "pods",
            "-l",
            &format!("app={APP}"),
            "-o",
            "jsonpath={range .items[*]}{.spec.nodeName}{\"\\n\"}{end}",
        ],
    )?;
    let mut counts: std::collections::BTreeMap<String, usize> = Default::default();
    for node in listing.lines().filter(|l| !l.is_empty()) {
        *counts.entry(node.to_string()).or_default() += 1;
    }
    Ok(counts.into_iter().collect())
}

/// A process's memory, in KiB, from `/proc/PID/status` and `/proc/PID/smaps_rollup`.
#[derive(Clone, Copy, Debug)]
struct Memory {
    /// Resident set (`VmRSS`).
    rss: u64,
    /// Proportional set (`Pss`): shared pages divided among their sharers.
    pss: u64,
    /// Pages only this process has written (`Private_Dirty`): heap, stacks, written data.
    private_dirty: u64,
}

fn memory_kib(pid: u32) -> Result<Memory, String> {
    let field = |text: &str, name: &str| -> Option<u64> {
        text.lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|value| value.parse().ok())
    };
    let status =
        std::fs::read_to_string(format!("/proc/{pid}/status")).map_err(|e| e.to_string())?;
    let rollup =
        std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).map_err(|e| e.to_string())?;
    match (
        field(&status, "VmRSS:"),
        field(&rollup, "Pss:"),
        field(&rollup, "Private_Dirty:"),
    ) {
        (Some(rss), Some(pss), Some(private_dirty)) => Ok(Memory {
            rss,
            pss,
            private_dirty,
        }),
        _ => Err(format!("no VmRSS, Pss or Private_Dirty for process {pid}")),
    }
}

/// A rollout's timings.
struct Timings {
    scale_up: Duration,
    rollout: Duration,
    placement: Vec<(String, usize)>,
}

fn rollout(root: &Path, kubeconfig: &Path, replicas: u32) -> Result<Timings, String> {
    let scale_up = timed_apply(root, kubeconfig, replicas, "1")?;
    let rollout = timed_apply(root, kubeconfig, replicas, "2")?;
    Ok(Timings {
        scale_up,
        rollout,
        placement: pods_per_node(kubeconfig)?,
    })
}

fn one_node(replicas: u32) -> Result<Timings, String> {
    let root = tempfile::tempdir().map_err(|e| e.to_string())?;
    let (server, kubeconfig) = start_server(root.path(), &["--node-name", "bench-node"])?;
    wait_nodes_ready(&kubeconfig, 1)?;
    let timings = rollout(root.path(), &kubeconfig, replicas);
    drop(server);
    timings
}

fn free_port() -> Result<u16, String> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| e.to_string())
}

fn two_agents(replicas: u32) -> Result<(Timings, Vec<Memory>), String> {
    let root = tempfile::tempdir().map_err(|e| e.to_string())?;
    let (server, kubeconfig) = start_server(root.path(), &["--no-node"])?;
    let token = std::fs::read_to_string(root.path().join("server/node-token"))
        .map_err(|e| format!("the join token: {e}"))?;
    let config = std::fs::read_to_string(&kubeconfig).map_err(|e| e.to_string())?;
    let url = config
        .lines()
        .find_map(|line| line.trim().strip_prefix("server:"))
        .map(|url| url.trim().to_string())
        .ok_or("the kubeconfig names no server")?;
    let mut agents = Vec::new();
    for index in 1..=2 {
        let name = format!("bench-agent-{index}");
        let data = root.path().join(&name);
        place_images(&data)?;
        let args: Vec<String> = vec![
            "agent".into(),
            "--server".into(),
            url.clone(),
            "--token".into(),
            token.trim().to_string(),
            "--data-dir".into(),
            data.display().to_string(),
            "--node-name".into(),
            name.clone(),
            "--node-ip".into(),
            "127.0.0.1".into(),
            "--kubelet-port".into(),
            free_port()?.to_string(),
            "--container-runtime".into(),
            "process".into(),
        ];
        agents.push(spawn_skiff(
            &name,
            &args,
            &root.path().join(format!("{name}.log")),
        )?);
    }
    wait_nodes_ready(&kubeconfig, 2)?;
    std::thread::sleep(IDLE_SETTLE);
    let memory = agents
        .iter()
        .map(|agent| memory_kib(agent.pid()))
        .collect::<Result<Vec<_>, _>>()?;
    let timings = rollout(root.path(), &kubeconfig, replicas);
    drop(agents);
    drop(server);
    Ok((timings?, memory))
}

fn run() -> Result<(), String> {
    let args: Vec<String> = std::env::args().collect();
    let replicas = match args.iter().position(|a| a == "--replicas") {
        Some(at) => args
            .get(at + 1)
            .and_then(|v| v.parse::<u32>().ok())
            .filter(|r| *r > 0)
            .ok_or("--replicas takes a positive number")?,
        None => 20,
    };
    let seconds = |d: Duration| format!("{:.1} s", d.as_secs_f64());
    let print = |label: &str, t: &Timings| {
        println!(
            "{label}: scale-up to {replicas} {}, rollout {}, pods per node {:?}",
            seconds(t.scale_up),
            seconds(t.rollout),
            t.placement
        );
    };
    let single = one_node(replicas)?;
    print("one node (skiff up)", &single);
    let (spread, memory) = two_agents(replicas)?;
    print("two agents", &spread);
    let mib = |kib: u64| kib as f64 / 1024.0;
    for (index, m) in memory.iter().enumerate() {
        println!(
            "agent {} idle: RSS {:.1} MiB, Pss {:.1} MiB, Private_Dirty {:.1} MiB",
            index + 1,
            mib(m.rss),
            mib(m.pss),
            mib(m.private_dirty)
        );
    }
    Ok(())
}

fn main() -> ExitCode {
    // `cargo bench` passes `--bench`; nothing else is read.
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("agents benchmark failed: {error}");
            ExitCode::FAILURE
        }
    }
}
