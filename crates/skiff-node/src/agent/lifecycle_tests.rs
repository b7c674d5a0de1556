//! Whole pod lifecycles on the real node's state machine, without processes: a recording
//! runtime carries out the machine's actions on scripted containers, and a fake clock jumps
//! from one wake-up to the next, so minutes of crash-looping take microseconds.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::json;
use tokio::time::Instant;

use super::machine::{Action, BackoffConfig, Input, Now, PodMachine};

/// What one run of a container does.
#[derive(Clone, Copy, Debug)]
enum Run {
    /// Exits with `code` after `ms`.
    ExitsAfter { ms: u64, code: i32 },
    /// Runs until stopped; ends `term_ms` after `SIGTERM` (never, when `None`, until `SIGKILL`).
    Serves { term_ms: Option<u64> },
}

/// A runtime that records every side effect the machine asks for and plays the scripted
/// containers: what started when, what was stopped with which grace period.
struct RecordingRuntime {
    scripts: HashMap<String, Vec<Run>>,
    runs: HashMap<String, usize>,
    /// When each running container ends, and with which code (`None`: not on its own).
    running: HashMap<String, Option<(u64, i32)>>,
    /// `(ms, "start a")`, `(ms, "kill a 30s")`, `(ms, "exit a 1")`, `(ms, "confirm")`.
    log: Vec<(u64, String)>,
}

impl RecordingRuntime {
    fn run_of(&mut self, container: &str) -> Run {
        let index = self.runs.entry(container.to_string()).or_default();
        let script = self
            .scripts
            .get(container)
            .unwrap_or_else(|| panic!("no script for container {container}"));
        let run = script[(*index).min(script.len() - 1)];
        *index += 1;
        run
    }
}

/// The machine, its recording runtime and the fake clock.
struct Lifecycle {
    machine: PodMachine,
    origin: Now,
    now_ms: u64,
    runtime: RecordingRuntime,
}

impl Lifecycle {
    fn new(spec: serde_json::Value, scripts: &[(&str, Vec<Run>)]) -> Lifecycle {
        let pod = serde_json::from_value(json!({
            "metadata": {"name": "p", "namespace": "ns", "uid": "u1"},
            "spec": spec,
        }))
        .expect("a valid pod");
        let origin = Now::current();
        let backoff = BackoffConfig {
            base: Duration::from_secs(10),
            max: Duration::from_secs(300),
        };
        let mut lifecycle = Lifecycle {
            machine: PodMachine::new(&pod, backoff, origin),
            origin,
            now_ms: 0,
            runtime: RecordingRuntime {
                scripts: scripts
                    .iter()
                    .map(|(name, runs)| (name.to_string(), runs.clone()))
                    .collect(),
                runs: HashMap::new(),
                running: HashMap::new(),
                log: Vec::new(),
            },
        };
        lifecycle.feed(Input::SandboxReady);
        lifecycle
    }

    fn now(&self) -> Now {
        let offset = Duration::from_millis(self.now_ms);
        Now {
            mono: self.origin.mono + offset,
            wall: self.origin.wall + jiff::SignedDuration::try_from(offset).expect("small"),
        }
    }

    fn ms_of(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.origin.mono).as_millis() as u64
    }

    fn feed(&mut self, input: Input) {
        let mut inputs = vec![input];
        while let Some(input) = inputs.pop() {
            let actions = self.machine.step(input, self.now());
            for action in actions {
                if let Some(next) = self.carry_out(action) {
                    inputs.push(next);
                }
            }
        }
    }

    fn carry_out(&mut self, action: Action) -> Option<Input> {
        let now = self.now_ms;
        match action {
            Action::Start { container, .. } => {
                self.runtime.log.push((now, format!("start {container}")));
                let ends = match self.runtime.run_of(&container) {
                    Run::ExitsAfter { ms, code } => Some((now + ms, code)),
                    Run::Serves { .. } => None,
                };
                self.runtime.running.insert(container.clone(), ends);
                Some(Input::Started {
                    container: container.clone(),
                    image_id: "sha256:test".to_string(),
                    image: String::new(),
                    container_id: format!("test://{container}/{now}"),
                })
            }
            Action::Kill {
                container, grace, ..
            } => {
                // No grace period given: the pod's, which these pods leave at 30 s.
                let shown = grace.map_or("default".to_string(), |g| format!("{}s", g.as_secs()));
                let grace = grace.unwrap_or(Duration::from_secs(30));
                self.runtime
                    .log
                    .push((now, format!("kill {container} {shown}")));
                let term_ms = match self.runtime.scripts[&container][0] {
                    Run::Serves { term_ms } => term_ms,
                    Run::ExitsAfter { .. } => Some(0),
                };
                // SIGTERM now; SIGKILL when the grace period ends.
                let ends = match term_ms {
                    Some(ms) if u128::from(ms) < grace.as_millis() => (now + ms, 143),
                    _ => (now + grace.as_millis() as u64, 137),
                };
                self.runtime.running.insert(container, Some(ends));
                None
            }
            Action::ConfirmDeletion => {
                self.runtime.log.push((now, "confirm".to_string()));
                None
            }
            Action::Event { .. } | Action::Probe { .. } | Action::Drain { .. } => None,
        }
    }

    /// Lets time pass until `end_ms`, jumping from one event (an exit, a wake-up the machine
    /// asked for) to the next.
    fn run_until(&mut self, end_ms: u64) {
        loop {
            let exit = self
                .runtime
                .running
                .iter()
                .filter_map(|(name, ends)| ends.map(|(at, code)| (at, name.clone(), code)))
                .min();
            let wake = self.machine.next_wake().map(|at| self.ms_of(at));
            let next = match (exit.as_ref().map(|e| e.0), wake) {
                (Some(a), Some(b)) => a.min(b),
                (Some(a), None) => a,
                (None, Some(b)) => b,
                (None, None) => break,
            };
            if next > end_ms {
                break;
            }
            self.now_ms = next.max(self.now_ms);
            match exit {
                Some((at, name, code)) if at == next => {
                    self.runtime.running.remove(&name);
                    self.runtime
                        .log
                        .push((self.now_ms, format!("exit {name} {code}")));
                    self.feed(Input::Exited {
                        container: name,
                        exit_code: code,
                        oom: false,
                    });
                }
                _ => self.feed(Input::Sync),
            }
        }
        self.now_ms = end_ms.max(self.now_ms);
        self.feed(Input::Sync);
    }

    fn log(&self) -> Vec<(u64, &str)> {
        self.runtime
            .log
            .iter()
            .map(|(at, what)| (*at / 1000, what.as_str()))
            .collect()
    }

    /// The moments (in seconds) `container` was started.
    fn starts(&self, container: &str) -> Vec<u64> {
        let wanted = format!("start {container}");
        self.runtime
            .log
            .iter()
            .filter(|(_, what)| *what == wanted)
            .map(|(at, _)| at / 1000)
            .collect()
    }
}

fn exits(ms: u64, code: i32) -> Run {
    Run::ExitsAfter { ms, code }
}

const SERVES: Run = Run::Serves { term_ms: Some(0) };

#[test]
fn init_containers_run_in_order_before_the_containers() {
    let mut pod = Lifecycle::new(
        json!({"initContainers": [{"name": "i1"}, {"name": "i2"}],
               "containers": [{"name": "a"}, {"name": "b"}]}),
        &[
            ("i1", vec![exits(2_000, 0)]),
            ("i2", vec![exits(3_000, 0)]),
            ("a", vec![SERVES]),
            ("b", vec![SERVES]),
        ],
    );
    assert_eq!(pod.machine.phase(), "Pending");
    pod.run_until(60_000);
    assert_eq!(
        pod.log(),
        vec![
            (0, "start i1"),
            (2, "exit i1 0"),
            (2, "start i2"),
            (5, "exit i2 0"),
            (5, "start a"),
            (5, "start b"),
        ]
    );
    assert_eq!(pod.machine.phase(), "Running");
}

#[test]
fn a_failed_init_container_is_retried_with_back_off_unless_the_policy_is_never() {
    let scripts = || {
        vec![
            (
                "init",
                vec![exits(1_000, 1), exits(1_000, 1), exits(1_000, 0)],
            ),
            ("a", vec![SERVES]),
        ]
    };
    let spec = |policy: &str| {
        json!({"restartPolicy": policy, "initContainers": [{"name": "init"}],
               "containers": [{"name": "a"}]})
    };
    let mut always = Lifecycle::new(spec("Always"), &scripts());
    always.run_until(60_000);
    assert_eq!(always.starts("init"), vec![0, 1, 12]);
    assert_eq!(always.starts("a"), vec![13]);
    assert_eq!(always.machine.phase(), "Running");

    let mut never = Lifecycle::new(spec("Never"), &scripts());
    never.run_until(60_000);
    assert_eq!(never.starts("init"), vec![0]);
    assert!(never.starts("a").is_empty(), "{:?}", never.log());
    assert_eq!(never.machine.phase(), "Failed");
}

#[test]
fn restart_policies_decide_which_exits_restart() {
    // (policy, exit code, starts within a minute, final phase)
    let cases = [
        ("Always", 0, vec![0, 1, 12, 33], "Running"),
        ("Always", 1, vec![0, 1, 12, 33], "Running"),
        ("OnFailure", 0, vec![0], "Succeeded"),
        ("OnFailure", 1, vec![0, 1, 12, 33], "Running"),
        ("Never", 0, vec![0], "Succeeded"),
        ("Never", 1, vec![0], "Failed"),
    ];
    for (policy, code, starts, phase) in cases {
        let mut pod = Lifecycle::new(
            json!({"restartPolicy": policy, "containers": [{"name": "a"}]}),
            &[("a", vec![exits(1_000, code)])],
        );
        pod.run_until(60_000);
        assert_eq!(pod.starts("a"), starts, "{policy} exit {code}");
        assert_eq!(pod.machine.phase(), phase, "{policy} exit {code}");
    }
}

#[test]
fn crash_loop_back_off_doubles_from_ten_seconds_to_five_minutes() {
    let mut pod = Lifecycle::new(
        json!({"containers": [{"name": "a"}]}),
        &[("a", vec![exits(1_000, 1)])],
    );
    pod.run_until(30 * 60_000);
    let starts = pod.starts("a");
    // Each run lasts a second; the wait before each restart is what remains.
    let waits: Vec<u64> = starts.windows(2).map(|w| w[1] - w[0] - 1).collect();
    assert_eq!(
        waits[..9],
        [0, 10, 20, 40, 80, 160, 300, 300, 300],
        "starts: {starts:?}"
    );
}

#[test]
fn crash_loop_back_off_starts_over_after_ten_minutes_of_running() {
    let mut runs = vec![exits(1_000, 1); 4];
    runs.push(exits(11 * 60_000, 1));
    runs.push(exits(1_000, 1));
    let mut pod = Lifecycle::new(json!({"containers": [{"name": "a"}]}), &[("a", runs)]);
    pod.run_until(30 * 60_000);
    let starts = pod.starts("a");
    let waits: Vec<u64> = starts.windows(2).map(|w| w[1] - w[0]).collect();
    // Runs of 1 s with waits of 0, 10, 20 and 40 s; then the long run (660 s), after which the
    // back-off begins again: an immediate restart, then 10 s.
    assert_eq!(waits[..6], [1, 11, 21, 41, 660, 11], "starts: {starts:?}");
}

#[test]
fn deletion_stops_containers_within_the_grace_period_then_confirms() {
    let mut pod = Lifecycle::new(
        json!({"terminationGracePeriodSeconds": 30,
               "containers": [{"name": "polite"}, {"name": "stubborn"}]}),
        &[
            (
                "polite",
                vec![Run::Serves {
                    term_ms: Some(2_000),
                }],
            ),
            ("stubborn", vec![Run::Serves { term_ms: None }]),
        ],
    );
    pod.run_until(10_000);
    pod.feed(Input::Delete {
        grace: Duration::from_secs(30),
    });
    pod.run_until(60_000);
    let mut log = pod.log();
    log[2..4].sort();
    assert_eq!(
        log,
        vec![
            (0, "start polite"),
            (0, "start stubborn"),
            (10, "kill polite 30s"),
            (10, "kill stubborn 30s"),
            (12, "exit polite 143"),
            (40, "exit stubborn 137"),
            (40, "confirm"),
        ]
    );
    assert!(pod.machine.is_done());
}

#[test]
fn a_sidecar_starts_in_init_order_and_restarts_beside_the_containers() {
    let mut pod = Lifecycle::new(
        json!({"restartPolicy": "Never",
               "initContainers": [{"name": "proxy", "restartPolicy": "Always"},
                                  {"name": "setup"}],
               "containers": [{"name": "a"}]}),
        &[
            (
                "proxy",
                vec![exits(10_000, 1), Run::Serves { term_ms: Some(0) }],
            ),
            ("setup", vec![exits(2_000, 0)]),
            ("a", vec![exits(30_000, 0)]),
        ],
    );
    pod.run_until(20_000);
    assert_eq!(
        pod.log(),
        vec![
            (0, "start proxy"),
            (0, "start setup"),
            (2, "exit setup 0"),
            (2, "start a"),
            (10, "exit proxy 1"),
            (10, "start proxy"),
        ],
        "the sidecar restarts whatever the pod's policy, and the container keeps running"
    );
    assert_eq!(pod.machine.phase(), "Running");
    let status = pod.machine.status(
        &serde_json::from_value(json!({"metadata": {"name": "p"},
            "spec": {"restartPolicy": "Never",
                     "initContainers": [{"name": "proxy", "restartPolicy": "Always"},
                                        {"name": "setup"}],
                     "containers": [{"name": "a"}]}}))
        .expect("a valid pod"),
        "198.18.0.1",
        None,
        pod.now().wall,
    );
    let initialized = status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "Initialized")
        .expect("an Initialized condition");
    assert_eq!(initialized.status, "True");
    let proxy = &status
        .init_container_statuses
        .as_ref()
        .expect("init statuses")[0];
    assert_eq!(proxy.restart_count, 1);
    assert!(proxy.ready, "a running sidecar without probes is ready");
}

#[test]
fn sidecars_are_stopped_once_the_containers_completed() {
    let mut pod = Lifecycle::new(
        json!({"restartPolicy": "Never",
               "initContainers": [{"name": "proxy", "restartPolicy": "Always"}],
               "containers": [{"name": "job"}]}),
        &[
            (
                "proxy",
                vec![Run::Serves {
                    term_ms: Some(1_000),
                }],
            ),
            ("job", vec![exits(5_000, 0)]),
        ],
    );
    pod.run_until(60_000);
    assert_eq!(
        pod.log(),
        vec![
            (0, "start proxy"),
            (0, "start job"),
            (5, "exit job 0"),
            (5, "kill proxy default"),
            (6, "exit proxy 143"),
        ]
    );
    assert_eq!(pod.machine.phase(), "Succeeded");
}
