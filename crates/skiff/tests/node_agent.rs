//! The node agent's acceptance tests: `skiff up` with its real node, driven by the real
//! `kubectl`, with pods that are real processes answering on their loopback pod IPs.
//!
//! Run with `cargo test -p skiff --test node_agent` (Linux, as root for the private `/tmp` of
//! each container; `kubectl` on the PATH). Set `SKIFF_E2E_SCENARIOS=logs,crash_loop` to run a
//! subset of the scenarios.
//!
//! Every scenario runs on the same server in a namespace of its own. The slow ones (the crash
//! loop waits out 10 s + 20 s + 40 s of back-off, the liveness probe needs ~20 s) run in threads
//! of their own while the quick ones run one after another in a fourth thread, so the whole file
//! takes about as long as the crash loop.
//!
//! Every container gets an environment variable carrying a marker unique to its scenario and to
//! this run; after each scenario (and once more after the server stopped) the test reads
//! `/proc/*/environ` to prove that no process it caused is left.
//!
//! Shortened from the tutorial, so the file stays quick: the crash-looping container sleeps 1 s
//! instead of 10 s before it fails (the back-off intervals are unchanged), and the liveness
//! example removes its file after 8 s instead of 30 s.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::grace::{event_watch_args, read_times, Termination};
use support::http::{demo_line, http_get, READ_TIMEOUT};
use support::images::{demo, shell, DEMO, MISSING, SHELL};
use support::json::{items, str_at};
use support::{cells, Kubectl, LineStream, Skiff};

/// The environment variable that tags every process a scenario causes.
const MARKER_VAR: &str = "SKIFF_E2E_MARKER";

/// How often kubectl-based conditions are polled: slower than the harness default, because
/// several scenarios poll at once on a small machine.
const POLL: Duration = Duration::from_millis(250);

/// The deadline for conditions that take a few seconds when all is well.
const SHORT: Duration = Duration::from_secs(60);

/// One scenario: its name (also its namespace) and its body.
struct Scenario {
    name: &'static str,
    body: fn(&Env),
}

/// What a scenario works with.
struct Env<'a> {
    skiff: &'a Skiff,
    kubectl: Kubectl,
    namespace: String,
    marker: String,
    node: String,
}

impl Env<'_> {
    /// Runs kubectl in the scenario's namespace and returns its stdout; fails unless it succeeds.
    fn ok(&self, args: &[&str]) -> String {
        self.kubectl.ok(&self.namespaced(args))
    }

    /// Runs kubectl in the scenario's namespace, whatever its outcome.
    fn run(&self, args: &[&str]) -> support::Outcome {
        self.kubectl.run(&self.namespaced(args))
    }

    fn namespaced<'s>(&'s self, args: &[&'s str]) -> Vec<&'s str> {
        let mut all = args.to_vec();
        all.extend(["-n", self.namespace.as_str()]);
        all
    }

    /// `kubectl get ... -o json`, parsed.
    fn json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.extend(["-o", "json"]);
        let text = self.ok(&all);
        serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("kubectl printed invalid JSON ({e}):\n{text}"))
    }

    /// Writes a manifest to a scratch file and applies it in the namespace.
    fn apply(&self, file: &str, manifest: &str) -> String {
        let name = self
            .skiff
            .write_file(&format!("{}/{file}", self.namespace), manifest);
        self.ok(&["apply", "-f", &name])
    }

    /// A `kubectl get -w` (or `logs -f`) in the namespace whose lines arrive as printed.
    fn stream(&self, args: &[&str]) -> LineStream {
        self.kubectl.spawn_lines(&self.namespaced(args))
    }

    /// The marker variable as an item of a container's `env:` list, `indent` spaces in.
    fn marker_env(&self, indent: usize) -> String {
        let pad = " ".repeat(indent);
        format!(
            "{pad}- name: {MARKER_VAR}\n{pad}  value: \"{}\"\n",
            self.marker
        )
    }

    /// A scratch directory for hostPath volumes, which kubelet would find on the host.
    fn host_dir(&self, name: &str) -> std::path::PathBuf {
        let dir = self.skiff.file_path(&format!("{}/{name}", self.namespace));
        std::fs::create_dir_all(&dir)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
        dir
    }
}

/// Polls `probe` every [`POLL`] until it yields a value; fails with `what` after `timeout`.
fn poll<T>(what: &str, timeout: Duration, probe: impl FnMut() -> Option<T>) -> T {
    support::wait_for_every(what, timeout, POLL, probe)
}

/// A status timestamp (`2026-01-02T03:04:05Z`) in whole seconds since the epoch.
fn timestamp_seconds(text: &str) -> i64 {
    text.parse::<jiff::Timestamp>()
        .unwrap_or_else(|e| panic!("{text:?} is not an RFC 3339 timestamp: {e}"))
        .as_second()
}

/// Asserts that the pod answers `GET /` with the demo server's line for `version`.
fn assert_serves(pod: &Value, version: &str) {
    let name = str_at(pod, "/metadata/name");
    let ip = str_at(pod, "/status/podIP");
    // Without a readiness probe a pod is Ready once its process started, which can be a moment
    // before the server listens (as on Kubernetes): allow it that moment.
    let answer = support::poll(Duration::from_secs(10), || {
        match http_get(&ip, "/", READ_TIMEOUT) {
            Err(e) if e.contains("Connection refused") => None,
            other => Some(other),
        }
    })
    .unwrap_or_else(|| http_get(&ip, "/", READ_TIMEOUT));
    match answer {
        Ok((200, body)) => assert_eq!(
            body,
            demo_line(version, &name),
            "pod {name} at {ip} answers the wrong line"
        ),
        other => panic!("pod {name} at {ip} does not serve: {other:?}"),
    }
}

/// Processes whose environment carries `MARKER_VAR` with a value `matches` accepts, as
/// `pid cmdline` lines.
fn tagged_processes(matches: impl Fn(&str) -> bool) -> Vec<String> {
    support::process::tagged_processes(MARKER_VAR, matches)
        .into_iter()
        .map(|process| format!("{} {}", process.pid, process.command_line))
        .collect()
}

/// Sends SIGKILL to each `pid cmdline` entry of [`tagged_processes`]: only processes carrying
/// this run's marker, so nothing else on the machine.
fn kill_listed(processes: &[String]) {
    for entry in processes {
        let pid = entry
            .split_whitespace()
            .next()
            .and_then(|p| p.parse::<i32>().ok());
        if let Some(pid) = pid.filter(|p| *p > 0) {
            // A positive pid found by its marker; one already gone is no error here.
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

/// Waits until no process carries exactly `marker`.
fn assert_no_process_left(marker: &str) {
    let started = Instant::now();
    loop {
        let left = tagged_processes(|value| value == marker);
        if left.is_empty() {
            return;
        }
        if started.elapsed() > SHORT {
            panic!("processes of {marker} are still running: {left:#?}");
        }
        thread::sleep(POLL);
    }
}

fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "panicked".to_string())
}

/// Runs one scenario in its namespace, then deletes the namespace and checks that none of its
/// processes is left. Returns how long it took, or what went wrong.
fn run_scenario(
    skiff: &Skiff,
    node: &str,
    run: &str,
    scenario: &Scenario,
) -> Result<Duration, String> {
    let started = Instant::now();
    let env = Env {
        skiff,
        kubectl: skiff.kubectl(),
        namespace: scenario.name.replace('_', "-"),
        marker: format!("{run}-{}", scenario.name),
        node: node.to_string(),
    };
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        env.kubectl.ok(&["create", "namespace", &env.namespace]);
        (scenario.body)(&env);
    }));
    if let Err(payload) = outcome {
        // Leave the pods for the final check after the server stops: they show what happened.
        return Err(panic_text(&*payload));
    }
    let cleanup = catch_unwind(AssertUnwindSafe(|| {
        env.kubectl
            .ok(&["delete", "namespace", &env.namespace, "--timeout=90s"]);
        assert_no_process_left(&env.marker);
    }));
    match cleanup {
        Ok(()) => Ok(started.elapsed()),
        Err(payload) => Err(format!("cleaning up: {}", panic_text(&*payload))),
    }
}

/// All scenarios, on one server: the slow ones each in a thread, the quick ones in turn.
#[test]
fn node_agent_acceptance() {
    let slow: &[Scenario] = &[
        Scenario {
            name: "crash_loop",
            body: crash_loop_backs_off_10_20_40,
        },
        Scenario {
            name: "liveness",
            body: liveness_probe_restarts_the_container,
        },
        Scenario {
            name: "bad_image",
            body: rollout_to_unknown_image_stalls_and_undo_recovers,
        },
    ];
    let quick: &[Scenario] = &[
        Scenario {
            name: "rolling_update",
            body: httpd_rolls_one_by_one_keeping_three_ready,
        },
        Scenario {
            name: "readiness",
            body: failing_readiness_probe_holds_the_rollout,
        },
        Scenario {
            name: "grace",
            body: sigterm_ignoring_container_is_killed_at_grace_end,
        },
        Scenario {
            name: "huge_grace",
            body: huge_grace_periods_end_with_a_shorter_or_forced_deletion,
        },
        Scenario {
            name: "private_tmp",
            body: containers_do_not_share_tmp,
        },
        Scenario {
            name: "logs",
            body: logs_previous_tail_and_follow,
        },
        Scenario {
            name: "init_containers",
            body: init_containers_run_in_turn,
        },
    ];
    let only: Option<BTreeSet<String>> = std::env::var("SKIFF_E2E_SCENARIOS")
        .ok()
        .map(|v| v.split(',').map(|s| s.trim().to_string()).collect());
    let wanted = |s: &&Scenario| only.as_ref().is_none_or(|o| o.contains(s.name));
    let slow: Vec<&Scenario> = slow.iter().filter(wanted).collect();
    let quick: Vec<&Scenario> = quick.iter().filter(wanted).collect();

    let images = ["2.2", "2.4", "1", "2", "1.25"].map(demo);
    let mut skiff = Skiff::start_with_images(&[], &[&images[..], &[shell()]].concat());
    let kubectl = skiff.kubectl();
    let node = poll("the real node to register", SHORT, || {
        let names = kubectl.ok(&["get", "nodes", "-o", "jsonpath={.items[*].metadata.name}"]);
        let names: Vec<&str> = names.split_whitespace().collect();
        (names.len() == 1).then(|| names[0].to_string())
    });
    let run = support::process::unique_run_marker();
    let results: Vec<(&str, Result<Duration, String>)> = thread::scope(|scope| {
        let skiff = &skiff;
        let (node, run) = (&node, &run);
        let mut handles = Vec::new();
        for scenario in slow {
            handles
                .push(scope.spawn(move || {
                    vec![(scenario.name, run_scenario(skiff, node, run, scenario))]
                }));
        }
        handles.push(scope.spawn(move || {
            quick
                .iter()
                .map(|scenario| (scenario.name, run_scenario(skiff, node, run, scenario)))
                .collect()
        }));
        handles
            .into_iter()
            .flat_map(|h| {
                h.join()
                    .unwrap_or_else(|p| vec![("(runner)", Err(panic_text(&*p)))])
            })
            .collect()
    });

    let status = skiff.stop();
    let left = tagged_processes(|value| value.starts_with(&format!("{run}-")));
    // Fail below, but leave nothing behind on the machine either.
    kill_listed(&left);
    let mut failures = Vec::new();
    for (name, result) in &results {
        match result {
            Ok(took) => eprintln!("scenario {name}: ok in {took:.1?}"),
            Err(message) => {
                eprintln!("scenario {name}: FAILED: {message}");
                failures.push(*name);
            }
        }
    }
    assert!(
        failures.is_empty(),
        "scenarios failed: {failures:?}; server log:\n{}",
        skiff.log()
    );
    assert!(status.success(), "skiff exited with {status} on SIGTERM");
    assert!(
        left.is_empty(),
        "processes left after skiff stopped: {left:#?}"
    );
}

// ---------------------------------------------------------------------------------------------
// 1. The tutorial's httpd Deployment and its rolling update.

fn web_deployment(env: &Env, image: &str) -> String {
    format!(
        "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 3
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      containers:
      - name: httpd
        image: {image}
        ports:
        - containerPort: 80
        env:
{marker}",
        marker = env.marker_env(8)
    )
}

/// A pod as a `get pods -w --output-watch-events` line describes it.
#[derive(Debug)]
struct WatchedPod {
    image: String,
    ready: bool,
    terminating: bool,
}

/// The watch template: event type, name, image, deletion timestamp (or nothing), Ready.
const POD_WATCH_TEMPLATE: &str = "jsonpath={.type}|{.object.metadata.name}|{.object.spec.containers[0].image}|{.object.metadata.deletionTimestamp}|{.object.status.conditions[?(@.type==\"Ready\")].status}{\"\\n\"}";

/// Folds one watch line into `pods`; returns false for lines that are not watch events.
fn fold_pod_event(pods: &mut BTreeMap<String, WatchedPod>, line: &str) -> bool {
    let fields: Vec<&str> = line.split('|').collect();
    let [kind, name, image, deletion, ready] = fields[..] else {
        return false;
    };
    if kind == "DELETED" {
        pods.remove(name);
    } else {
        pods.insert(
            name.to_string(),
            WatchedPod {
                image: image.to_string(),
                ready: ready == "True",
                terminating: !deletion.is_empty(),
            },
        );
    }
    true
}

fn httpd_rolls_one_by_one_keeping_three_ready(env: &Env) {
    assert_eq!(
        env.apply("web.yaml", &web_deployment(env, &format!("{DEMO}:2.2"))),
        "deployment.apps/web created\n"
    );
    let rolled = env.ok(&["rollout", "status", "deployment/web", "--timeout=60s"]);
    assert!(
        rolled.ends_with("deployment \"web\" successfully rolled out\n"),
        "{rolled}"
    );

    // Real processes answer on their pod IPs, one address each, on the real node.
    let pods = items(&env.json(&["get", "pods", "-l", "app=web"]));
    assert_eq!(pods.len(), 3, "{pods:#?}");
    let mut addresses = BTreeSet::new();
    for pod in &pods {
        let ip = str_at(pod, "/status/podIP");
        let octets: Vec<u8> = ip.split('.').filter_map(|o| o.parse().ok()).collect();
        assert!(
            octets.len() == 4 && octets[0] == 127 && octets[1] >= 128,
            "pod IP {ip:?} is not in the node's loopback pod range 127.128.0.0/9"
        );
        assert!(addresses.insert(ip.clone()), "pod IP {ip} is used twice");
        assert_eq!(str_at(pod, "/spec/nodeName"), env.node);
        assert_eq!(str_at(pod, "/status/phase"), "Running");
        assert_serves(pod, "2.2");
    }
    let wide = env.ok(&["get", "pods", "-o", "wide"]);
    let rows: Vec<Vec<&str>> = wide.lines().map(cells).collect();
    assert_eq!(
        rows.first().map(|r| r[..7].to_vec()),
        Some(vec![
            "NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP", "NODE"
        ]),
        "{wide}"
    );
    for pod in &pods {
        let name = str_at(pod, "/metadata/name");
        let row = rows
            .iter()
            .find(|r| r[0] == name)
            .unwrap_or_else(|| panic!("pod {name} missing from:\n{wide}"));
        assert_eq!(
            (row[1], row[2], row[3], row[5], row[6]),
            (
                "1/1",
                "Running",
                "0",
                str_at(pod, "/status/podIP").as_str(),
                env.node.as_str()
            ),
            "{wide}"
        );
    }
    let servers = tagged_processes(|value| value == env.marker);
    assert_eq!(servers.len(), 3, "one process per pod: {servers:#?}");
    assert!(
        servers.iter().all(|p| p.ends_with(" /skiff-demo")),
        "each pod runs its image's program: {servers:#?}"
    );

    // Roll to 2.4 while watching every pod change: with maxSurge 1 and maxUnavailable 0 (25%
    // of 3, rounded up and down), at no point are fewer than 3 pods ready and not terminating,
    // and never more than 4 exist.
    let mut watch = env.stream(&[
        "get",
        "pods",
        "-w",
        "--output-watch-events",
        "-o",
        POD_WATCH_TEMPLATE,
    ]);
    let mut watched = BTreeMap::new();
    let started = Instant::now();
    while watched.values().filter(|p: &&WatchedPod| p.ready).count() < 3 {
        let line = watch
            .next_line(SHORT.saturating_sub(started.elapsed()))
            .unwrap_or_else(|| panic!("the watch did not list 3 ready pods: {:#?}", watch.seen()));
        fold_pod_event(&mut watched, &line);
    }
    assert_eq!(
        env.ok(&[
            "set",
            "image",
            "deployment/web",
            &format!("httpd={DEMO}:2.4")
        ]),
        "deployment.apps/web image updated\n"
    );
    let started = Instant::now();
    let mut least_available = usize::MAX;
    let mut most_pods = 0;
    loop {
        let available = watched
            .values()
            .filter(|p| p.ready && !p.terminating)
            .count();
        least_available = least_available.min(available);
        most_pods = most_pods.max(watched.values().filter(|p| !p.terminating).count());
        let done = watched.len() == 3
            && watched
                .values()
                .all(|p| p.image == format!("{DEMO}:2.4") && p.ready && !p.terminating);
        if done {
            break;
        }
        let line = watch
            .next_line(SHORT.saturating_sub(started.elapsed()))
            .unwrap_or_else(|| panic!("the rollout did not finish: {:#?}", watch.seen()));
        fold_pod_event(&mut watched, &line);
    }
    assert!(
        least_available >= 3,
        "only {least_available} pods were available at some point: {:#?}",
        watch.seen()
    );
    assert_eq!(most_pods, 4, "one surge pod at a time: {:#?}", watch.seen());
    drop(watch);

    let rolled = env.ok(&["rollout", "status", "deployment/web", "--timeout=60s"]);
    assert!(rolled.contains("successfully rolled out"), "{rolled}");
    let pods = items(&env.json(&["get", "pods", "-l", "app=web"]));
    assert_eq!(pods.len(), 3);
    for pod in &pods {
        assert_serves(pod, "2.4");
    }
    // The old servers are gone: one process per remaining pod.
    poll("the old servers to exit", SHORT, || {
        (tagged_processes(|value| value == env.marker).len() == 3).then_some(())
    });
}

// ---------------------------------------------------------------------------------------------
// 2. A crash loop and kubelet's back-off.

/// One line per status change of the crash loop's only container: restarts, waiting reason and
/// message, the current run's ID and start, the last run's ID, start and finish.
const CRASH_TEMPLATE: &str = "jsonpath={.status.containerStatuses[0].restartCount}|{.status.containerStatuses[0].state.waiting.reason}|{.status.containerStatuses[0].state.waiting.message}|{.status.containerStatuses[0].containerID}|{.status.containerStatuses[0].state.running.startedAt}|{.status.containerStatuses[0].lastState.terminated.containerID}|{.status.containerStatuses[0].lastState.terminated.startedAt}|{.status.containerStatuses[0].lastState.terminated.finishedAt}{\"\\n\"}";

/// One run of a container as the status reported it (whole seconds since the epoch).
#[derive(Debug, Default)]
struct Run {
    id: String,
    started: Option<i64>,
    finished: Option<i64>,
}

/// The run with `id`, added after the others when first seen (runs are reported in order).
fn run_of<'r>(runs: &'r mut Vec<Run>, id: &str) -> &'r mut Run {
    let index = match runs.iter().position(|r| r.id == id) {
        Some(index) => index,
        None => {
            runs.push(Run {
                id: id.to_string(),
                ..Run::default()
            });
            runs.len() - 1
        }
    };
    &mut runs[index]
}

fn crash_loop_backs_off_10_20_40(env: &Env) {
    let manifest = format!(
        "apiVersion: v1
kind: Pod
metadata:
  name: crash
spec:
  restartPolicy: OnFailure
  containers:
  - name: crash
    image: {SHELL}
    command: [\"/bin/sh\", \"-c\", \"sleep 1; exit 1\"]
    env:
{marker}",
        marker = env.marker_env(4)
    );
    env.apply("crash.yaml", &manifest);
    let uid = env.ok(&["get", "pod", "crash", "-o", "jsonpath={.metadata.uid}"]);
    let mut watch = env.stream(&["get", "pod", "crash", "-w", "-o", CRASH_TEMPLATE]);

    let mut runs: Vec<Run> = Vec::new();
    // Each back-off message ("back-off 10s") with the restart count shown beside it.
    let mut back_offs: BTreeMap<String, i64> = BTreeMap::new();
    let mut restarts_column = Vec::new();
    let started = Instant::now();
    // The fifth run starts after 1 + 0 + 1 + 10 + 1 + 20 + 1 + 40 s.
    let deadline = Duration::from_secs(120);
    while runs.get(4).is_none_or(|r| r.started.is_none()) {
        let line = watch
            .next_line(deadline.saturating_sub(started.elapsed()))
            .unwrap_or_else(|| panic!("the crash loop did not reach run 5: {:#?}", watch.seen()));
        let fields: Vec<&str> = line.split('|').collect();
        let [restarts, reason, message, id, running_since, last_id, last_started, last_finished] =
            fields[..]
        else {
            continue;
        };
        let Ok(restarts) = restarts.parse::<i64>() else {
            continue;
        };
        if !last_id.is_empty() && !last_finished.is_empty() {
            let run = run_of(&mut runs, last_id);
            run.started = Some(timestamp_seconds(last_started));
            run.finished = Some(timestamp_seconds(last_finished));
        }
        if !id.is_empty() && !running_since.is_empty() {
            run_of(&mut runs, id).started = Some(timestamp_seconds(running_since));
        }
        if reason == "CrashLoopBackOff" {
            assert!(
                message.ends_with(&format!(
                    "restarting failed container=crash pod=crash_{}({uid})",
                    env.namespace
                )),
                "kubelet's back-off message: {message:?}"
            );
            let back_off = message
                .split(" restarting")
                .next()
                .unwrap_or("")
                .to_string();
            if back_offs.insert(back_off, restarts).is_none() && restarts >= 2 {
                // While it backs off, `kubectl get pods` says so, with the restarts so far.
                let table = env.ok(&["get", "pod", "crash", "--no-headers"]);
                let row = cells(&table);
                assert_eq!(row.get(2), Some(&"CrashLoopBackOff"), "{table}");
                restarts_column.push(row.get(3).and_then(|r| r.parse::<i64>().ok()));
                assert!(
                    row.get(4).is_some_and(|ago| ago.starts_with('(')),
                    "RESTARTS shows when the last one was: {table}"
                );
            }
        }
    }
    drop(watch);

    eprintln!("crash_loop: runs {runs:?}");
    // Kubelet restarts at once after the first crash, then waits 10 s, 20 s, 40 s, showing the
    // restarts so far (the exited run's restart count) beside each back-off.
    for (run, expected) in [0, 10, 20, 40].into_iter().enumerate() {
        let (Some(finished), Some(next)) = (runs[run].finished, runs[run + 1].started) else {
            panic!("run {run} or the next unobserved: {runs:?}");
        };
        let measured = next - finished;
        // Timestamps are whole seconds. A loaded machine only adds delay, so the bound above
        // is the next step of the doubling: this wait is this back-off, not the next one.
        let next_step = (2 * expected).max(5);
        assert!(
            measured >= expected - 1 && measured < next_step,
            "back-off after run {run}: {measured} s, kubelet waits {expected} s: {runs:?}"
        );
    }
    let expected: BTreeMap<String, i64> = [
        ("back-off 10s", 1),
        ("back-off 20s", 2),
        ("back-off 40s", 3),
    ]
    .into_iter()
    .map(|(m, r)| (m.to_string(), r))
    .collect();
    assert_eq!(
        back_offs, expected,
        "CrashLoopBackOff messages and restart counts"
    );
    assert_eq!(
        restarts_column,
        vec![Some(2), Some(3)],
        "RESTARTS grows while it backs off"
    );
}

// ---------------------------------------------------------------------------------------------
// 3. The liveness example, and private /tmp.

fn liveness_probe_restarts_the_container(env: &Env) {
    let manifest = format!(
        "apiVersion: v1
kind: Pod
metadata:
  name: liveness-exec
  labels:
    test: liveness
spec:
  containers:
  - name: liveness
    image: {SHELL}
    args:
    - /bin/sh
    - -c
    - touch /tmp/healthy; sleep 8; rm -f /tmp/healthy; sleep 600
    livenessProbe:
      exec:
        command:
        - cat
        - /tmp/healthy
      initialDelaySeconds: 10
      periodSeconds: 5
    env:
{marker}",
        marker = env.marker_env(4)
    );
    env.apply("liveness.yaml", &manifest);
    // The file goes at 8 s; probes from 10 s on, every 5 s, fail 3 times (the default
    // threshold): the kill comes 20 s to 25 s after the start, depending on the probe phase.
    // A loaded machine only delays it; a fourth failed probe would make it 30 s.
    let restarted = poll("the liveness probe to restart the container", SHORT, || {
        let pod = env.json(&["get", "pod", "liveness-exec"]);
        let status = &pod["status"]["containerStatuses"][0];
        (status["restartCount"].as_i64() >= Some(1)).then(|| status.clone())
    });
    let first_run = &restarted["lastState"]["terminated"];
    let lived = timestamp_seconds(first_run["finishedAt"].as_str().unwrap_or_default())
        - timestamp_seconds(first_run["startedAt"].as_str().unwrap_or_default());
    assert!(
        (19..30).contains(&lived),
        "the first run lived {lived} s: {restarted:#}"
    );
    // Killed by SIGTERM (143), as kubelet's kill does: sh does not trap it.
    assert_eq!(first_run["exitCode"], 143, "{restarted:#}");

    let events = poll("Unhealthy and Killing in kubectl describe", SHORT, || {
        let described = env.ok(&["describe", "pod", "liveness-exec"]);
        let events = described.split_once("\nEvents:")?.1.to_string();
        let unhealthy = events.lines().any(|l| {
            let row = cells(l);
            row.first() == Some(&"Warning")
                && row.get(1) == Some(&"Unhealthy")
                // busybox's `cat` words it so, as in Kubernetes' own liveness example.
                && l.ends_with(
                    "Liveness probe failed: cat: can't open '/tmp/healthy': No such file or directory",
                )
        });
        let killing = events.lines().any(|l| {
            let row = cells(l);
            row.first() == Some(&"Normal")
                && row.get(1) == Some(&"Killing")
                && l.ends_with("Container liveness failed liveness probe, will be restarted")
        });
        (unhealthy && killing).then_some(events)
    });
    assert!(
        events.contains("Started container liveness"),
        "the container started again: {events}"
    );
}

fn containers_do_not_share_tmp(env: &Env) {
    assert!(
        nix::unistd::geteuid().is_root(),
        "private_tmp needs root: a private /tmp is only set up for root; run the tests as root"
    );
    let shared = env.host_dir("shared");
    let secret = format!("skiff-e2e-{}", env.marker);
    let pod = |name: &str, script: &str, probe: &str| {
        format!(
            "apiVersion: v1
kind: Pod
metadata:
  name: {name}
spec:
  containers:
  - name: main
    image: {SHELL}
    command: [\"/bin/sh\", \"-c\", \"{script}\"]
{probe}    volumeMounts:
    - name: shared
      mountPath: /shared
    env:
{marker}  volumes:
  - name: shared
    hostPath:
      path: {shared}
      type: Directory
",
            marker = env.marker_env(4),
            shared = shared.display()
        )
    };
    // A writes into its /tmp, and is Ready only when its exec probe (run in the container)
    // sees the file; B waits for A, then looks for the file in its own /tmp.
    env.apply(
        "tmp-a.yaml",
        &pod(
            "tmp-a",
            &format!("echo a > /tmp/{secret}; touch /shared/a-wrote; sleep 600"),
            &format!(
                "    readinessProbe:\n      exec:\n        command: [cat, /tmp/{secret}]\n      periodSeconds: 1\n"
            ),
        ),
    );
    env.ok(&[
        "wait",
        "--for=condition=Ready",
        "pod/tmp-a",
        "--timeout=60s",
    ]);
    env.apply(
        "tmp-b.yaml",
        &pod(
            "tmp-b",
            &format!(
                "while [ ! -e /shared/a-wrote ]; do sleep 0.1; done; \
                 if [ -e /tmp/{secret} ]; then echo b sees a; else echo b does not see a; fi; \
                 ls -A /tmp; sleep 600"
            ),
            "",
        ),
    );
    let said = poll("tmp-b to look into its /tmp", SHORT, || {
        let out = env.run(&["logs", "tmp-b"]);
        (out.success() && out.stdout.lines().count() >= 1).then_some(out.stdout)
    });
    assert_eq!(said, "b does not see a\n", "B's /tmp is empty and its own");
    assert!(
        !Path::new("/tmp").join(&secret).exists(),
        "A's /tmp file leaked onto the host's /tmp"
    );
    assert!(
        shared.join("a-wrote").exists(),
        "the hostPath volume is the host directory"
    );
}

// ---------------------------------------------------------------------------------------------
// 4. A failing readiness probe holds a rollout.

fn api_deployment(env: &Env, image: &str, ready_path: &str) -> String {
    format!(
        "apiVersion: apps/v1
kind: Deployment
metadata:
  name: api
spec:
  replicas: 2
  selector:
    matchLabels:
      app: api
  template:
    metadata:
      labels:
        app: api
    spec:
      containers:
      - name: api
        image: {image}
        readinessProbe:
          httpGet:
            path: {ready_path}
            port: 80
          periodSeconds: 1
        env:
{marker}",
        marker = env.marker_env(8)
    )
}

fn failing_readiness_probe_holds_the_rollout(env: &Env) {
    env.apply(
        "api-v1.yaml",
        &api_deployment(env, &format!("{DEMO}:1"), "/readyz"),
    );
    env.ok(&["rollout", "status", "deployment/api", "--timeout=60s"]);
    let old: BTreeSet<String> = items(&env.json(&["get", "pods", "-l", "app=api"]))
        .iter()
        .map(|p| str_at(p, "/metadata/name"))
        .collect();
    assert_eq!(old.len(), 2);

    // Version 2 answers 404 on its readiness path: its first pod never becomes ready.
    assert_eq!(
        env.apply(
            "api-v2.yaml",
            &api_deployment(env, &format!("{DEMO}:2"), "/missing")
        ),
        "deployment.apps/api configured\n"
    );
    let new_pod = poll("the v2 pod to fail its readiness probe", SHORT, || {
        let pods = items(&env.json(&["get", "pods", "-l", "app=api"]));
        let new = pods
            .into_iter()
            .find(|p| !old.contains(&str_at(p, "/metadata/name")))?;
        let running = new
            .pointer("/status/containerStatuses/0/state/running")
            .is_some();
        let name = str_at(&new, "/metadata/name");
        let failed_probe = items(&env.json(&["get", "events"])).iter().any(|e| {
            str_at(e, "/involvedObject/name") == name
                && str_at(e, "/reason") == "Unhealthy"
                && str_at(e, "/type") == "Warning"
                && str_at(e, "/message")
                    == "Readiness probe failed: HTTP probe failed with statuscode: 404"
        });
        (running && failed_probe).then_some(name)
    });
    // kubectl itself waits, and gives up: the rollout goes no further.
    let status = env.run(&["rollout", "status", "deployment/api", "--timeout=5s"]);
    assert!(
        !status.success(),
        "the rollout completed: {}",
        status.stdout
    );
    assert!(
        status
            .stdout
            .contains("Waiting for deployment \"api\" rollout to finish: 1 out of 2 new replicas have been updated"),
        "{}",
        status.stdout
    );
    let deployment = env.json(&["get", "deployment", "api"]);
    let counts: Vec<i64> = [
        "replicas",
        "updatedReplicas",
        "readyReplicas",
        "availableReplicas",
        "unavailableReplicas",
    ]
    .iter()
    .map(|f| deployment["status"][f].as_i64().unwrap_or(0))
    .collect();
    assert_eq!(counts, vec![3, 1, 2, 2, 1], "{:#}", deployment["status"]);
    let pods = items(&env.json(&["get", "pods", "-l", "app=api"]));
    assert_eq!(pods.len(), 3, "no second surge pod: {pods:#?}");
    for pod in &pods {
        let name = str_at(pod, "/metadata/name");
        let ready = pod["status"]["containerStatuses"][0]["ready"].as_bool();
        if name == new_pod {
            assert_eq!(ready, Some(false), "{pod:#}");
            assert_serves(pod, "2");
        } else {
            assert!(old.contains(&name));
            assert_eq!(ready, Some(true), "{pod:#}");
            assert_serves(pod, "1");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 5. Graceful termination: preStop, SIGTERM, then SIGKILL at the end of the grace period.

fn sigterm_ignoring_container_is_killed_at_grace_end(env: &Env) {
    let data = env.host_dir("times");
    let manifest = format!(
        "apiVersion: v1
kind: Pod
metadata:
  name: stubborn
spec:
  terminationGracePeriodSeconds: 3
  containers:
  - name: main
    image: {SHELL}
    command:
    - /bin/sh
    - -c
    - trap 'read t _ < /proc/uptime; echo $t >> /data/term' TERM; while true; do read t _ < /proc/uptime; echo $t >> /data/alive; sleep 0.2; done
    lifecycle:
      preStop:
        exec:
          command: [/bin/sh, -c, 'read t _ < /proc/uptime; echo $t > /data/prestop; sleep 1']
    volumeMounts:
    - name: data
      mountPath: /data
    env:
{marker}  volumes:
  - name: data
    hostPath:
      path: {data}
      type: Directory
",
        marker = env.marker_env(4),
        data = data.display()
    );
    env.apply("stubborn.yaml", &manifest);
    env.ok(&[
        "wait",
        "--for=condition=Ready",
        "pod/stubborn",
        "--timeout=60s",
    ]);
    poll("the container to write", SHORT, || {
        (!read_times(&data.join("alive")).is_empty()).then_some(())
    });

    let watch = env.stream(&event_watch_args("stubborn"));
    let termination = Termination::after_delete(&data, watch, || {
        env.ok(&["delete", "pod", "stubborn", "--wait=false"]);
    });
    eprintln!("grace: {}", termination.report());
    termination.assert_pre_stop_then_sigterm_then_sigkill();
    assert_no_process_left(&env.marker);
}

/// Whether `kubectl get pod <name>` answers NotFound.
fn pod_gone(env: &Env, name: &str) -> bool {
    let outcome = env.run(&["get", "pod", name]);
    !outcome.success() && outcome.stderr.contains("NotFound")
}

/// Pods whose grace period no clock can hold (up to `i64::MAX` seconds) run normally, and end
/// as soon as a deletion with a short grace period, or a forced one, asks; the node keeps
/// running pods afterwards.
fn huge_grace_periods_end_with_a_shorter_or_forced_deletion(env: &Env) {
    let pod = |name: &str, grace: i64| {
        format!(
            "apiVersion: v1
kind: Pod
metadata:
  name: {name}
spec:
  terminationGracePeriodSeconds: {grace}
  containers:
  - name: main
    image: {SHELL}
    command: [/bin/sh, -c, \"trap '' TERM; while true; do sleep 0.2; done\"]
    lifecycle:
      postStart:
        exec:
          command: [/bin/sh, -c, 'true']
    env:
{marker}",
            marker = env.marker_env(4)
        )
    };
    env.apply("patient.yaml", &pod("patient", 999_999_999_999));
    env.apply("forced.yaml", &pod("forced", i64::MAX));
    for name in ["pod/patient", "pod/forced"] {
        env.ok(&["wait", "--for=condition=Ready", name, "--timeout=60s"]);
    }

    // SIGTERM is ignored: the pod goes when the 2 s grace period ends, not in 31,000 years.
    let began = Instant::now();
    env.ok(&[
        "delete",
        "pod",
        "patient",
        "--grace-period=2",
        "--wait=false",
    ]);
    poll(
        "the pod deleted with a 2 s grace period to go",
        SHORT,
        || pod_gone(env, "patient").then_some(()),
    );
    let took = began.elapsed();
    assert!(
        took < Duration::from_secs(15),
        "the pod took {took:?} to go after a 2 s grace period"
    );

    env.ok(&["delete", "pod", "forced", "--grace-period=0", "--force"]);
    assert!(
        pod_gone(env, "forced"),
        "a forced deletion removes the pod at once"
    );
    // The node stops the processes of a pod removed without a grace period at once.
    poll(
        "the forced pod's processes to be killed",
        Duration::from_secs(10),
        || {
            tagged_processes(|value| value == env.marker)
                .is_empty()
                .then_some(())
        },
    );

    // The node still runs pods.
    env.apply("after.yaml", &pod("after", 30));
    env.ok(&[
        "wait",
        "--for=condition=Ready",
        "pod/after",
        "--timeout=60s",
    ]);
    env.ok(&["delete", "pod", "after", "--grace-period=0", "--force"]);
    assert_no_process_left(&env.marker);
}

// ---------------------------------------------------------------------------------------------
// 6. An unknown image stalls a rollout; undo recovers.

fn shop_deployment(env: &Env, image: &str) -> String {
    format!(
        "apiVersion: apps/v1
kind: Deployment
metadata:
  name: shop
spec:
  replicas: 2
  selector:
    matchLabels:
      app: shop
  template:
    metadata:
      labels:
        app: shop
    spec:
      containers:
      - name: shop
        image: {image}
        env:
{marker}",
        marker = env.marker_env(8)
    )
}

fn rollout_to_unknown_image_stalls_and_undo_recovers(env: &Env) {
    env.apply("shop.yaml", &shop_deployment(env, &format!("{DEMO}:1.25")));
    env.ok(&["rollout", "status", "deployment/shop", "--timeout=60s"]);
    let serving: BTreeSet<String> = items(&env.json(&["get", "pods", "-l", "app=shop"]))
        .iter()
        .map(|p| str_at(p, "/metadata/name"))
        .collect();
    assert_eq!(serving.len(), 2);

    let mut watch = env.stream(&[
        "get",
        "pods",
        "-w",
        "-o",
        "jsonpath={.metadata.name}|{.spec.containers[0].image}|{.status.containerStatuses[0].state.waiting.reason}|{.status.containerStatuses[0].restartCount}{\"\\n\"}",
    ]);
    assert_eq!(
        env.ok(&[
            "set",
            "image",
            "deployment/shop",
            &format!("shop={MISSING}")
        ]),
        "deployment.apps/shop image updated\n"
    );
    // The pull fails, backs off, is retried (after 10 s) and fails again; the container never
    // ran, so its restart count stays 0.
    let mut reasons: Vec<String> = Vec::new();
    let started = Instant::now();
    let bad_pod = loop {
        let line = watch
            .next_line(SHORT.saturating_sub(started.elapsed()))
            .unwrap_or_else(|| panic!("the pull was not retried: {:#?}", watch.seen()));
        let fields: Vec<&str> = line.split('|').collect();
        let [name, image, reason, restarts] = fields[..] else {
            continue;
        };
        if image != MISSING || reason.is_empty() {
            continue;
        }
        assert_eq!(
            restarts,
            "0",
            "a failed pull is no restart: {:#?}",
            watch.seen()
        );
        if reasons.last().map(String::as_str) != Some(reason) {
            reasons.push(reason.to_string());
        }
        let retried = reasons
            .iter()
            .skip_while(|r| *r != "ImagePullBackOff")
            .any(|r| r == "ErrImagePull");
        if retried && reason == "ImagePullBackOff" {
            break name.to_string();
        }
    };
    drop(watch);
    // Once the first pull failed, only the pull's reasons show: never ContainerCreating again.
    assert!(
        reasons
            .iter()
            .skip_while(|r| *r == "ContainerCreating")
            .all(|r| r == "ErrImagePull" || r == "ImagePullBackOff"),
        "waiting reasons: {reasons:?}"
    );
    let table = env.ok(&["get", "pods"]);
    let row = table
        .lines()
        .map(cells)
        .find(|r| r[0] == bad_pod)
        .unwrap_or_else(|| panic!("{bad_pod} missing from:\n{table}"));
    assert_eq!(row[1], "0/1", "{table}");
    assert!(
        row[2] == "ErrImagePull" || row[2] == "ImagePullBackOff",
        "{table}"
    );
    assert_eq!(row[3], "0", "{table}");

    // Stalled: the old pods still serve, the rollout does not complete.
    let status = env.run(&["rollout", "status", "deployment/shop", "--timeout=3s"]);
    assert!(!status.success(), "{}", status.stdout);
    let pods = items(&env.json(&["get", "pods", "-l", "app=shop"]));
    for pod in pods
        .iter()
        .filter(|p| serving.contains(&str_at(p, "/metadata/name")))
    {
        assert_serves(pod, "1.25");
    }

    assert_eq!(
        env.ok(&["rollout", "undo", "deployment/shop"]),
        "deployment.apps/shop rolled back\n"
    );
    let rolled = env.ok(&["rollout", "status", "deployment/shop", "--timeout=60s"]);
    assert!(rolled.contains("successfully rolled out"), "{rolled}");
    let after = poll("the bad pod to go", SHORT, || {
        let pods = items(&env.json(&["get", "pods", "-l", "app=shop"]));
        (pods.len() == 2).then_some(pods)
    });
    let names: BTreeSet<String> = after.iter().map(|p| str_at(p, "/metadata/name")).collect();
    assert_eq!(names, serving, "the original pods serve on, untouched");
    for pod in &after {
        assert_serves(pod, "1.25");
    }
}

// ---------------------------------------------------------------------------------------------
// 7. kubectl logs: current, --previous, --tail, -f.

fn logs_previous_tail_and_follow(env: &Env) {
    // Run 1 prints its number and fails; run 2 prints its number, then ticks forever. The count
    // survives the restart in an emptyDir.
    let manifest = format!(
        "apiVersion: v1
kind: Pod
metadata:
  name: counter
spec:
  restartPolicy: Always
  containers:
  - name: counter
    image: {SHELL}
    command:
    - /bin/sh
    - -c
    - |
      n=$(cat /state/n 2>/dev/null || echo 0); n=$((n+1)); echo $n > /state/n
      echo \"run $n\"
      if [ $n -ge 2 ]; then i=0; while [ ! -e /state/stop ]; do i=$((i+1)); echo \"tick $i\"; sleep 0.2; done; fi
      exit 1
    volumeMounts:
    - name: state
      mountPath: /state
    env:
{marker}  volumes:
  - name: state
    emptyDir: {{}}
",
        marker = env.marker_env(4)
    );
    env.apply("counter.yaml", &manifest);
    poll("the second run to tick", SHORT, || {
        let out = env.run(&["logs", "counter"]);
        (out.success() && out.stdout.contains("tick 2\n")).then_some(())
    });
    assert_eq!(
        env.ok(&[
            "get",
            "pod",
            "counter",
            "-o",
            "jsonpath={.status.containerStatuses[0].restartCount}"
        ]),
        "1"
    );
    assert_eq!(env.ok(&["logs", "counter", "--previous"]), "run 1\n");
    assert_eq!(
        env.ok(&["logs", "counter", "-p", "-c", "counter"]),
        "run 1\n"
    );
    let current = env.ok(&["logs", "counter"]);
    assert!(
        current.starts_with("run 2\ntick 1\ntick 2\n"),
        "the current run's output: {current:?}"
    );
    let tick = |line: &str| -> u64 {
        line.strip_prefix("tick ")
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or_else(|| panic!("{line:?} is not a tick"))
    };
    let last = env.ok(&["logs", "counter", "--tail=1"]);
    assert_eq!(last.lines().count(), 1, "{last:?}");
    let last = tick(&last);

    // -f streams lines printed after it started, as they come.
    let mut follow = env.stream(&["logs", "-f", "counter", "--tail=1"]);
    let first = follow
        .next_line(SHORT)
        .unwrap_or_else(|| panic!("logs -f printed nothing"));
    let first = tick(&first);
    assert!(first >= last, "tail of -f: {first} < {last}");
    for expected in first + 1..first + 4 {
        let line = follow
            .next_line(Duration::from_secs(10))
            .unwrap_or_else(|| panic!("logs -f stopped streaming: {:#?}", follow.seen()));
        assert_eq!(tick(&line), expected, "{:#?}", follow.seen());
    }

    // --timestamps puts the RFC 3339 time each line was written before it; --limit-bytes
    // cuts the output; --since-time keeps the lines written from then on.
    let stamped = env.ok(&["logs", "counter", "--previous", "--timestamps"]);
    let (time, text) = stamped
        .split_once(' ')
        .unwrap_or_else(|| panic!("no timestamp: {stamped:?}"));
    assert_eq!(text, "run 1\n");
    assert!(
        time.parse::<jiff::Timestamp>().is_ok() && time.contains('T') && time.ends_with('Z'),
        "not an RFC 3339 time: {time:?}"
    );
    assert_eq!(
        env.ok(&["logs", "counter", "--previous", "--limit-bytes=3"]),
        "run"
    );
    assert_eq!(
        env.ok(&[
            "logs",
            "counter",
            "--previous",
            "--since-time=2000-01-01T00:00:00Z"
        ]),
        "run 1\n"
    );
    assert_eq!(
        env.ok(&[
            "logs",
            "counter",
            "--previous",
            "--since-time=2999-01-01T00:00:00Z"
        ]),
        ""
    );
    let after_run_1 = jiff::Timestamp::now().to_string();
    assert_eq!(
        env.ok(&[
            "logs",
            "counter",
            "--previous",
            "--since-time",
            &after_run_1
        ]),
        ""
    );

    // As with the kubelet, -f follows one run of the container: it ends when that run does,
    // not at the restart after it.
    // (The namespace goes before `--`, which `env.ok` would put it after.)
    env.kubectl.ok(&[
        "exec",
        "-n",
        &env.namespace,
        "counter",
        "--",
        "touch",
        "/state/stop",
    ]);
    assert!(
        follow.ends_within(SHORT),
        "logs -f went on after the run ended: {:#?}",
        follow.seen()
    );
}

// ---------------------------------------------------------------------------------------------
// Init containers run one after another before the container, as `kubectl get pods` shows.

fn init_containers_run_in_turn(env: &Env) {
    let manifest = format!(
        "apiVersion: v1
kind: Pod
metadata:
  name: staged
spec:
  terminationGracePeriodSeconds: 1
  initContainers:
  - name: fetch
    image: {SHELL}
    command: [/bin/sh, -c, 'sleep 2']
    env:
{marker}  - name: migrate
    image: {SHELL}
    command: [/bin/sh, -c, 'sleep 2']
    env:
{marker}  containers:
  - name: main
    image: {SHELL}
    command: [/bin/sh, -c, 'sleep 600']
    env:
{marker}",
        marker = env.marker_env(4),
    );
    let mut watch = env.stream(&["get", "pods", "-w"]);
    env.apply("staged.yaml", &manifest);
    let status_of = |line: &str| {
        let c = cells(line);
        (c.first() == Some(&"staged")).then(|| (c[1].to_string(), c[2].to_string()))
    };
    for (wanted, ready) in [("Init:0/2", "0/1"), ("Init:1/2", "0/1"), ("Running", "1/1")] {
        let line = watch.wait_for_line(&format!("staged {wanted}"), |line| {
            status_of(line).is_some_and(|(_, status)| status == wanted)
        });
        assert_eq!(
            status_of(&line).map(|(r, _)| r).as_deref(),
            Some(ready),
            "{line}"
        );
    }
    let pod = env.json(&["get", "pod", "staged"]);
    let inits = pod["status"]["initContainerStatuses"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(inits.len(), 2, "{pod}");
    let first_end = timestamp_seconds(&str_at(&inits[0], "/state/terminated/finishedAt"));
    let second_start = timestamp_seconds(&str_at(&inits[1], "/state/terminated/startedAt"));
    assert!(
        second_start >= first_end,
        "migrate started at {second_start}, before fetch ended at {first_end}"
    );
    for init in &inits {
        assert_eq!(
            str_at(init, "/state/terminated/reason"),
            "Completed",
            "{init}"
        );
        assert_eq!(init["ready"], Value::Bool(true), "{init}");
    }
    let initialized = pod["status"]["conditions"]
        .as_array()
        .and_then(|all| all.iter().find(|c| c["type"] == "Initialized"))
        .cloned()
        .unwrap_or(Value::Null);
    assert_eq!(initialized["status"], "True", "{initialized}");
}
