//! Batch and stateful workloads at scale on simulated nodes: a 1,000-pod Job, and a 100-replica
//! StatefulSet scaled up with `Parallel` and with `OrderedReady` pod management.
//!
//! It starts the `skiff` binary cargo built beside it (`skiff up --no-node --simulated-nodes N`)
//! on a free loopback port in a temporary directory and drives it with the real `kubectl`:
//!
//! ```text
//! cargo bench -p skiff --bench workloads
//! cargo test -p skiff --bench workloads            # the same against the debug build
//! cargo bench -p skiff --bench workloads -- --job-pods 100 --replicas 20   # a quick run
//! ```
//!
//! The Job's pods carry `sim.skiff.dev/complete-after: 1s`, so each succeeds a second after it
//! starts; the Job runs them all at once (`parallelism` = `completions`). Its status is polled:
//! the pods created are `active + succeeded + failed + terminating`, the pods completed
//! `succeeded`. The StatefulSets' pods are Ready as soon as they run; their
//! `status.readyReplicas` is polled. Every wait is bounded, and the server is stopped (SIGTERM,
//! then SIGKILL) however the run ends.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use serde_json::Value;

/// How often the benchmark reads the object it waits on.
const POLL: Duration = Duration::from_millis(200);
/// How long startup (kubeconfig written, every node Ready) may take.
const STARTUP_LIMIT: Duration = Duration::from_secs(120);
/// How long any one measured phase may take.
const PHASE_LIMIT: Duration = Duration::from_secs(600);
/// The start of a probe's error that ends its wait at once.
const FINAL: &str = "final: ";
/// How long the server gets to stop after SIGTERM before it is killed.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Prints a line of the report, ignoring a closed stdout so cleanup still runs.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

/// What the run is asked to do.
struct Options {
    nodes: u32,
    job_pods: u32,
    replicas: u32,
    job: bool,
    stateful_sets: bool,
}

impl Options {
    fn parse() -> Result<Options, String> {
        let mut options = Options {
            nodes: 20,
            job_pods: 1000,
            replicas: 100,
            job: true,
            stateful_sets: true,
        };
        let mut args = std::env::args().skip(1);
        while let Some(flag) = args.next() {
            let target = match flag.as_str() {
                "--nodes" => &mut options.nodes,
                "--job-pods" => &mut options.job_pods,
                "--replicas" => &mut options.replicas,
                // Cargo passes `--bench` to every bench binary.
                "--bench" => continue,
                "--only-job" => {
                    options.stateful_sets = false;
                    continue;
                }
                "--only-statefulsets" => {
                    options.job = false;
                    continue;
                }
                other => return Err(format!("unknown argument {other}")),
            };
            let value = args.next().ok_or(format!("{flag} needs a value"))?;
            *target = value
                .parse()
                .ok()
                .filter(|v| *v > 0)
                .ok_or(format!("{flag} needs a positive number, not {value}"))?;
        }
        Ok(options)
    }
}

/// A running `skiff up`; dropping it stops the server.
struct Server {
    child: Child,
    kubeconfig: PathBuf,
}

impl Server {
    fn start(nodes: u32, dir: &Path) -> Result<Server, String> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("cannot find a free loopback port: {e}"))?
            .port();
        let data = dir.join("data");
        let log = std::fs::File::create(dir.join("server.log"))
            .map_err(|e| format!("cannot create the server log: {e}"))?;
        let log_err = log
            .try_clone()
            .map_err(|e| format!("cannot share the server log: {e}"))?;
        let child = Command::new(env!("CARGO_BIN_EXE_skiff"))
            .arg("up")
            .arg("--data-dir")
            .arg(&data)
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--no-node")
            .arg("--simulated-nodes")
            .arg(nodes.to_string())
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .map_err(|e| format!("cannot start skiff: {e}"))?;
        Ok(Server {
            child,
            kubeconfig: data.join("kubeconfig"),
        })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(pid) = i32::try_from(self.pid()) {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), Signal::SIGTERM);
        }
        let deadline = Instant::now() + SHUTDOWN_GRACE;
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_)) | Err(_)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs the PATH's `kubectl` against the server.
struct Kubectl {
    kubeconfig: PathBuf,
}

impl Kubectl {
    fn run(&self, args: &[&str], stdin: Option<&str>) -> Result<String, String> {
        use std::io::Write as _;
        let mut child = Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(args)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot run kubectl: {e}"))?;
        if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
            pipe.write_all(text.as_bytes())
                .map_err(|e| format!("cannot write to kubectl: {e}"))?;
        }
        let out = child
            .wait_with_output()
            .map_err(|e| format!("cannot wait for kubectl: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "kubectl {} failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    fn json(&self, args: &[&str]) -> Result<Value, String> {
        let mut full = vec!["get"];
        full.extend_from_slice(args);
        full.extend_from_slice(&["-o", "json"]);
        let text = self.run(&full, None)?;
        serde_json::from_str(&text).map_err(|e| format!("kubectl get: {e}"))
    }

    fn apply(&self, manifest: &str) -> Result<(), String> {
        self.run(&["apply", "-f", "-"], Some(manifest)).map(drop)
    }
}

/// Polls `probe` until it yields a value, failing after `limit`.
fn wait<T>(
    what: &str,
    limit: Duration,
    mut probe: impl FnMut() -> Result<Option<T>, String>,
) -> Result<T, String> {
    let deadline = Instant::now() + limit;
    loop {
        // A busy server may refuse a poll now and then; only the deadline or a verdict the
        // probe marks as final ends the wait.
        match probe() {
            Ok(Some(value)) => return Ok(value),
            Err(e) if e.starts_with(FINAL) => return Err(e),
            _ => {}
        }
        if Instant::now() > deadline {
            return Err(format!("{what} took longer than {limit:?}"));
        }
        std::thread::sleep(POLL);
    }
}

fn int(v: &Value, pointer: &str) -> u64 {
    v.pointer(pointer).and_then(Value::as_u64).unwrap_or(0)
}

fn job_manifest(pods: u32) -> String {
    format!(
        "apiVersion: batch/v1
kind: Job
metadata:
  name: bench-job
spec:
  completions: {pods}
  parallelism: {pods}
  template:
    metadata:
      annotations:
        sim.skiff.dev/complete-after: 1s
    spec:
      restartPolicy: Never
      containers:
      - name: work
        image: busybox
"
    )
}

fn stateful_set_manifest(name: &str, replicas: u32, policy: &str) -> String {
    format!(
        "apiVersion: v1
kind: Service
metadata:
  name: {name}
spec:
  clusterIP: None
  selector:
    app: {name}
---
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: {name}
spec:
  serviceName: {name}
  replicas: {replicas}
  podManagementPolicy: {policy}
  selector:
    matchLabels:
      app: {name}
  template:
    metadata:
      labels:
        app: {name}
    spec:
      containers:
      - name: web
        image: nginx
"
    )
}

/// Figures of one measured phase.
struct Phase {
    what: String,
    count: u64,
    seconds: f64,
}

fn per_second(count: u64, seconds: f64) -> f64 {
    if seconds > 0.0 {
        count as f64 / seconds
    } else {
        0.0
    }
}

fn run(options: &Options, kubectl: &Kubectl, phases: &mut Vec<Phase>) -> Result<(), String> {
    let job = if options.job {
        run_job(options, kubectl, phases)
    } else {
        Ok(())
    };
    let sets = if options.stateful_sets {
        run_stateful_sets(options, kubectl, phases)
    } else {
        Ok(())
    };
    job.and(sets)
}

fn run_job(options: &Options, kubectl: &Kubectl, phases: &mut Vec<Phase>) -> Result<(), String> {
    let pods = u64::from(options.job_pods);
    let started = Instant::now();
    kubectl.apply(&job_manifest(options.job_pods))?;
    let created_after = wait("creating the Job's pods", PHASE_LIMIT, || {
        let job = kubectl.json(&["job", "bench-job"])?;
        let created = ["/status/active", "/status/succeeded", "/status/failed"]
            .iter()
            .map(|p| int(&job, p))
            .sum::<u64>()
            + int(&job, "/status/terminating");
        Ok((created >= pods).then(|| started.elapsed()))
    })?;
    let completed_after = wait("completing the Job", PHASE_LIMIT, || {
        let job = kubectl.json(&["job", "bench-job"])?;
        let complete = job
            .pointer("/status/conditions")
            .and_then(Value::as_array)
            .is_some_and(|cs| {
                cs.iter()
                    .any(|c| c["type"] == "Complete" && c["status"] == "True")
            });
        if let Some(failed) = job
            .pointer("/status/conditions")
            .and_then(Value::as_array)
            .and_then(|cs| {
                cs.iter()
                    .find(|c| c["type"] == "Failed" && c["status"] == "True")
            })
        {
            return Err(format!(
                "{FINAL}the Job failed ({}: {}) with {} pods succeeded and {} failed",
                failed["reason"].as_str().unwrap_or(""),
                failed["message"].as_str().unwrap_or(""),
                int(&job, "/status/succeeded"),
                int(&job, "/status/failed")
            ));
        }
        Ok(complete.then(|| (started.elapsed(), int(&job, "/status/succeeded"))))
    })?;
    if completed_after.1 != pods {
        return Err(format!(
            "the Job completed with {} pods, not {pods}",
            completed_after.1
        ));
    }
    phases.push(Phase {
        what: format!("Job: {pods} pods created"),
        count: pods,
        seconds: created_after.as_secs_f64(),
    });
    phases.push(Phase {
        what: format!("Job: {pods} pods completed (Complete condition)"),
        count: pods,
        seconds: completed_after.0.as_secs_f64(),
    });
    kubectl.run(
        &[
            "delete",
            "job",
            "bench-job",
            "--cascade=background",
            "--wait=false",
        ],
        None,
    )?;
    Ok(())
}

fn run_stateful_sets(
    options: &Options,
    kubectl: &Kubectl,
    phases: &mut Vec<Phase>,
) -> Result<(), String> {
    for (name, policy) in [
        ("bench-parallel", "Parallel"),
        ("bench-ordered", "OrderedReady"),
    ] {
        let replicas = u64::from(options.replicas);
        let started = Instant::now();
        kubectl.apply(&stateful_set_manifest(name, options.replicas, policy))?;
        let ready_after = wait(&format!("{name} to be ready"), PHASE_LIMIT, || {
            let set = kubectl.json(&["statefulset", name])?;
            Ok((int(&set, "/status/readyReplicas") >= replicas).then(|| started.elapsed()))
        })?;
        phases.push(Phase {
            what: format!("StatefulSet {policy}: 0 to {replicas} Ready"),
            count: replicas,
            seconds: ready_after.as_secs_f64(),
        });
    }
    Ok(())
}

fn main() -> ExitCode {
    let options = match Options::parse() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{e}\nusage: workloads [--nodes N] [--job-pods N] [--replicas N] [--only-job | --only-statefulsets]");
            return ExitCode::FAILURE;
        }
    };
    let dir = match tempfile::Builder::new()
        .prefix("skiff-workloads-bench-")
        .tempdir()
    {
        Ok(d) => d,
        Err(e) => {
            eprintln!("cannot create a temporary directory: {e}");
            return ExitCode::FAILURE;
        }
    };
    say!(
        "workloads benchmark: {} simulated nodes, a {}-pod Job, {}-replica StatefulSets",
        options.nodes,
        options.job_pods,
        options.replicas
    );
    say!("skiff binary: {}", env!("CARGO_BIN_EXE_skiff"));
    let server = match Server::start(options.nodes, dir.path()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let kubectl = Kubectl {
        kubeconfig: server.kubeconfig.clone(),
    };
    let nodes = u64::from(options.nodes);
    let startup = wait("startup", STARTUP_LIMIT, || {
        if !kubectl.kubeconfig.exists() {
            return Ok(None);
        }
        let list = kubectl.json(&["nodes"])?;
        let ready = list["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|n| {
                n.pointer("/status/conditions")
                    .and_then(Value::as_array)
                    .is_some_and(|cs| {
                        cs.iter()
                            .any(|c| c["type"] == "Ready" && c["status"] == "True")
                    })
            })
            .count();
        Ok((ready as u64 >= nodes).then_some(()))
    });
    if let Err(e) = startup {
        eprintln!("{e}");
        return ExitCode::FAILURE;
    }
    let mut phases = Vec::new();
    let outcome = run(&options, &kubectl, &mut phases);
    say!("");
    say!("| phase | pods | seconds | pods/s |");
    say!("| --- | ---: | ---: | ---: |");
    for p in &phases {
        say!(
            "| {} | {} | {:.1} | {:.1} |",
            p.what,
            p.count,
            p.seconds,
            per_second(p.count, p.seconds)
        );
    }
    drop(server);
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("the run failed: {e}\nserver log: {}", dir.path().display());
            // Keep the directory so the log can be read.
            let _ = dir.keep();
            ExitCode::FAILURE
        }
    }
}
