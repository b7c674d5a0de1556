//! The timeline of a pod on a simulated node, as a pure function of the pod and the time.
//!
//! [`plan_pod`] reads the pod (spec, annotations and the status written so far) and `now`, and
//! decides what a kubelet would report next: the new status (if it changed), whether the pod's
//! deletion can be confirmed, and when to look again. All state lives in the pod's status, so a
//! restarted agent picks every pod up where it was: running pods stay running.
//!
//! The timeline, following kubelet's status reporting:
//! 1. First sight: `Pending`, `startTime` and `hostIP` set, containers `Waiting`
//!    (`ContainerCreating`, or `PodInitializing` when the pod has init containers).
//! 2. After the start delay ([`PodTimelineConfig::start_delay`]) the pod gets its IP and its
//!    init containers run one after another, each for [`INIT_RUN_FOR_ANNOTATION`] (at once
//!    without it) until `Completed`; a sidecar (`restartPolicy: Always`) starts in its turn and
//!    counts as done once started. Then the pod is `Running`, its containers `Running`. A
//!    container is `started` once its startup
//!    probe's `initialDelaySeconds` passed and ready once its readiness probe's did too (at once
//!    without probes), unless [`NEVER_READY_ANNOTATION`] says otherwise.
//! 3. [`FAIL_AFTER_ANNOTATION`] / [`COMPLETE_AFTER_ANNOTATION`] make every container exit (code 1
//!    `Error` / code 0 `Completed`) that long after it started. Under `restartPolicy` `Always`
//!    (or `OnFailure` for failures) it restarts with kubelet's crash-loop back-off (first restart
//!    at once, then 10 s doubling up to 5 min, in `CrashLoopBackOff` meanwhile); otherwise it
//!    stays terminated and the pod ends `Failed` or `Succeeded`.
//! 4. Once `deletionTimestamp` is set: after [`PodTimelineConfig::termination_delay`] (at most
//!    the grace period) every container is terminated, the pod gets a terminal phase, and its
//!    deletion is confirmed (delete with grace period 0).
//!
//! Phase, conditions and container statuses come from [`crate::status_core`], as the real
//! node's do.
//!
//! Times in a status have one-second resolution, like every `metav1.Time`; delays are measured
//! from those stored times.

use std::net::Ipv4Addr;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::core::v1::{
    Container, ContainerState, ContainerStateRunning, ContainerStateTerminated,
    ContainerStateWaiting, ContainerStatus, HostIP, Pod, PodIP, PodSpec, PodStatus, Probe,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::duration::{add, format_go_seconds, parse_go_duration, whole_seconds};
use crate::status_core::{fill_pod_status, is_sidecar, ObservedContainer, ObservedPod};

/// Annotation that keeps every container of a pod unready forever (value `"true"`), to exercise
/// rollouts that never progress.
pub const NEVER_READY_ANNOTATION: &str = "sim.skiff.dev/never-ready";
/// Annotation with a Go duration (`"5s"`): each container exits with code 1 (`Error`) that long
/// after it started. Wins over [`COMPLETE_AFTER_ANNOTATION`].
pub const FAIL_AFTER_ANNOTATION: &str = "sim.skiff.dev/fail-after";
/// Annotation with a Go duration (`"5s"`): each container exits with code 0 (`Completed`) that
/// long after it started, as a batch job would.
pub const COMPLETE_AFTER_ANNOTATION: &str = "sim.skiff.dev/complete-after";
/// Annotation with a Go duration (`"2s"`): how long each regular init container runs before it
/// completes; without it they complete as soon as they start, still one after another.
pub const INIT_RUN_FOR_ANNOTATION: &str = "sim.skiff.dev/init-run-for";

/// kubelet's initial crash-loop back-off.
const INITIAL_BACKOFF_SECONDS: u64 = 10;
/// kubelet's `MaxContainerBackOff`.
const MAX_BACKOFF_SECONDS: u64 = 300;
/// How often a pod waiting for an address is looked at again.
const NO_ADDRESS_RETRY: Duration = Duration::from_secs(1);
/// Bound on the steps one plan takes for a container (exit, restart, exit, back-off, ...).
const MAX_CONTAINER_STEPS: usize = 8;

/// How long simulated pods take to start and to stop.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodTimelineConfig {
    /// Shortest delay between a pod's `startTime` and its containers running.
    pub start_delay_min: Duration,
    /// Longest such delay; each pod gets one in `[min, max]`, fixed by its UID.
    pub start_delay_max: Duration,
    /// How long containers take to stop once deletion is requested (capped by the grace
    /// period); zero stops them as soon as the deletion is seen.
    pub termination_delay: Duration,
}

impl Default for PodTimelineConfig {
    fn default() -> Self {
        PodTimelineConfig {
            start_delay_min: Duration::ZERO,
            start_delay_max: Duration::from_millis(200),
            termination_delay: Duration::ZERO,
        }
    }
}

impl PodTimelineConfig {
    /// The start delay of the pod with this UID: spread over the range so a rollout does not
    /// start in lockstep, yet the same for the pod every time it is planned (and after an agent
    /// restart).
    pub fn start_delay(&self, uid: &str) -> Duration {
        let min = self.start_delay_min.as_millis() as u64;
        let max = (self.start_delay_max.as_millis() as u64).max(min);
        let spread = (max - min).saturating_add(1);
        Duration::from_millis(min + fnv1a(uid.as_bytes(), 0) % spread)
    }
}

/// What the node knows about the pod besides the pod itself.
#[derive(Clone, Debug)]
pub struct PodContext<'a> {
    /// The node's `InternalIP`, reported as the pod's `hostIP`.
    pub host_ip: Ipv4Addr,
    /// The address reserved for this pod, used when its sandbox starts; `None` while the node's
    /// range is exhausted (the pod then stays `Pending`).
    pub pod_ip: Option<Ipv4Addr>,
    /// Delays of the timeline.
    pub config: &'a PodTimelineConfig,
}

/// What to do for a pod now.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PodPlan {
    /// The status to write (replacing the current one), if it changed.
    pub status: Option<PodStatus>,
    /// Confirm the deletion (delete with grace period 0) after writing the status.
    pub delete: bool,
    /// When the pod's status changes next on its own, if ever; always later than `now`.
    pub next_check: Option<Timestamp>,
}

/// Plans the next step of `pod` on a simulated node at `now`.
pub fn plan_pod(pod: &Pod, now: Timestamp, ctx: &PodContext<'_>) -> PodPlan {
    let Some(spec) = pod.spec.as_ref() else {
        return PodPlan::default();
    };
    let current = pod.status.clone().unwrap_or_default();
    let facts = PodFacts::of(pod, spec);
    let mut next = NextCheck::after(now);
    if let Some(deleted) = &pod.metadata.deletion_timestamp {
        return plan_termination(pod, spec, ctx.config, &current, deleted.0, now, &mut next);
    }
    if is_terminal(&current) {
        return PodPlan::default();
    }

    let mut status = current.clone();
    let start_time = status
        .start_time
        .get_or_insert_with(|| Time(whole_seconds(now)))
        .0;
    status.host_ip = Some(ctx.host_ip.to_string());
    status.host_ips = Some(vec![HostIP {
        ip: ctx.host_ip.to_string(),
    }]);
    if status.pod_ip.is_none() {
        let start_at = add(start_time, ctx.config.start_delay(facts.uid));
        match ctx.pod_ip {
            Some(ip) if start_at <= now => start_sandbox(&mut status, ip),
            Some(_) => {
                waiting_for_sandbox(&mut status, spec);
                next.at(start_at);
            }
            None => {
                waiting_for_sandbox(&mut status, spec);
                next.at(add(now, NO_ADDRESS_RETRY));
            }
        }
    }
    let sandbox = status.pod_ip.is_some();
    if sandbox {
        let initialized = run_init_containers(&mut status, spec, &facts, now, &mut next);
        if !initialized {
            let statuses = spec
                .containers
                .iter()
                .map(|c| {
                    find_status(&status, &c.name)
                        .cloned()
                        .unwrap_or_else(|| not_started(c, "PodInitializing"))
                })
                .collect();
            status.container_statuses = Some(statuses);
        } else {
            let statuses = spec
                .containers
                .iter()
                .map(|c| {
                    advance_container(c, find_status(&status, &c.name), &facts, now, &mut next)
                })
                .collect();
            status.container_statuses = Some(statuses);
            stop_sidecars_after_the_containers(&mut status, spec, now);
        }
    }
    fill_from_statuses(&mut status, spec, &current, sandbox, false, now);
    PodPlan {
        status: (status != current).then_some(status),
        delete: false,
        next_check: next.earliest(),
    }
}

/// Recomputes the container statuses, phase and conditions through the status core from the
/// container statuses in `status`, which hold the timeline's state.
fn fill_from_statuses(
    status: &mut PodStatus,
    spec: &PodSpec,
    previous: &PodStatus,
    sandbox_ready: bool,
    terminal: bool,
    now: Timestamp,
) {
    let observe = |list: &Option<Vec<ContainerStatus>>| -> Vec<ObservedContainer> {
        list.iter()
            .flatten()
            .map(ObservedContainer::from_status)
            .collect()
    };
    let observed = ObservedPod {
        init_containers: observe(&status.init_container_statuses),
        containers: observe(&status.container_statuses),
        sandbox_ready,
        terminal,
    };
    fill_pod_status(status, spec, previous, &observed, now);
}

/// Runs the init containers in order up to `now`: each regular one runs for the pod's
/// [`INIT_RUN_FOR_ANNOTATION`] (at once without it) and completes before the next starts; a
/// sidecar starts in its turn, counts as done once started, and keeps running. Returns whether
/// the pod is initialized, so its containers may start.
fn run_init_containers(
    status: &mut PodStatus,
    spec: &PodSpec,
    facts: &PodFacts<'_>,
    now: Timestamp,
    next: &mut NextCheck,
) -> bool {
    let inits = spec.init_containers.as_deref().unwrap_or_default();
    // Once a container ran, the pod stays initialized (a restarting sidecar does not undo it).
    let mut initialized = spec.containers.iter().any(|c| {
        find_status(status, &c.name).is_some_and(|cs| !matches!(life_of(cs), Life::NotStarted))
    });
    let sidecar_facts = PodFacts {
        script: Script {
            exit: None,
            ..facts.script
        },
        ..*facts
    };
    let mut blocked = false;
    // When the previous init container finished: the next one starts then.
    let mut turn = now;
    let mut statuses = Vec::with_capacity(inits.len());
    for container in inits {
        let current = status
            .init_container_statuses
            .as_deref()
            .unwrap_or_default()
            .iter()
            .find(|cs| cs.name == container.name)
            .cloned();
        if blocked || (initialized && !is_sidecar(container)) {
            statuses.push(current.unwrap_or_else(|| not_started(container, "PodInitializing")));
            continue;
        }
        if is_sidecar(container) {
            let cs = advance_container(container, current.as_ref(), &sidecar_facts, now, next);
            blocked = !initialized && cs.started != Some(true);
            statuses.push(cs);
            continue;
        }
        let cs = advance_init_container(container, current, facts, turn, now, next);
        match cs
            .state
            .as_ref()
            .and_then(|s| s.terminated.as_ref())
            .and_then(|t| t.finished_at.as_ref())
        {
            Some(finished) => turn = finished.0,
            None => blocked = true,
        }
        statuses.push(cs);
    }
    status.init_container_statuses = (!statuses.is_empty()).then_some(statuses);
    initialized = initialized || !blocked;
    initialized
}

/// Once every container exited for good, the sidecars stop too (with code 0, as a sidecar
/// that handles `SIGTERM` does), so the pod can complete.
fn stop_sidecars_after_the_containers(status: &mut PodStatus, spec: &PodSpec, now: Timestamp) {
    let containers_done = status
        .container_statuses
        .iter()
        .flatten()
        .all(|cs| cs.state.as_ref().is_some_and(|s| s.terminated.is_some()));
    if !containers_done {
        return;
    }
    let sidecars: Vec<&str> = spec
        .init_containers
        .iter()
        .flatten()
        .filter(|c| is_sidecar(c))
        .map(|c| c.name.as_str())
        .collect();
    for cs in status.init_container_statuses.iter_mut().flatten() {
        if !sidecars.contains(&cs.name.as_str()) {
            continue;
        }
        let Some(running) = cs.state.as_ref().and_then(|s| s.running.clone()) else {
            continue;
        };
        cs.state = Some(ContainerState {
            terminated: Some(ContainerStateTerminated {
                container_id: cs.container_id.clone(),
                exit_code: 0,
                reason: Some("Completed".to_string()),
                started_at: running.started_at,
                finished_at: Some(Time(whole_seconds(now))),
                ..ContainerStateTerminated::default()
            }),
            ..ContainerState::default()
        });
    }
}

/// One regular init container up to `now`: started at `turn` (when the one before it
/// finished), it completes with code 0 after the pod's init run time.
fn advance_init_container(
    container: &Container,
    current: Option<ContainerStatus>,
    facts: &PodFacts<'_>,
    turn: Timestamp,
    now: Timestamp,
    next: &mut NextCheck,
) -> ContainerStatus {
    let mut cs = current.unwrap_or_else(|| not_started(container, "PodInitializing"));
    let started_at = match cs.state.as_ref() {
        Some(state) if state.terminated.is_some() => return cs,
        Some(ContainerState {
            running: Some(running),
            ..
        }) => running.started_at.as_ref().map_or(turn, |t| t.0),
        _ => whole_seconds(turn),
    };
    let image = container.image.clone().unwrap_or_default();
    let id = container_id(facts.uid, &container.name, cs.restart_count);
    cs.image_id = image_id(&image);
    cs.image = image;
    cs.container_id = Some(id.clone());
    let finish_at = add(started_at, facts.script.init_run_for);
    if finish_at <= now {
        cs.state = Some(ContainerState {
            terminated: Some(ContainerStateTerminated {
                container_id: Some(id),
                exit_code: 0,
                reason: Some("Completed".to_string()),
                started_at: Some(Time(started_at)),
                finished_at: Some(Time(whole_seconds(finish_at))),
                ..ContainerStateTerminated::default()
            }),
            ..ContainerState::default()
        });
    } else {
        cs.state = Some(ContainerState {
            running: Some(ContainerStateRunning {
                started_at: Some(Time(started_at)),
            }),
            ..ContainerState::default()
        });
        // Init containers have no startup probe: a running one counts as started.
        cs.started = Some(true);
        next.at(finish_at);
    }
    cs
}

/// Whether the pod reached `Succeeded` or `Failed`, which it never leaves.
pub fn is_terminal(status: &PodStatus) -> bool {
    matches!(status.phase.as_deref(), Some("Succeeded" | "Failed"))
}

/// The container ID of one run of a container: the pod, the container and which run it is.
pub fn container_id(pod_uid: &str, container: &str, restart_count: i32) -> String {
    format!(
        "sim://{}",
        digest(&[pod_uid, container, &restart_count.to_string()])
    )
}

/// The image ID reported for an image: stable per image reference, like a resolved digest.
pub fn image_id(image: &str) -> String {
    format!("sim://sha256:{}", digest(&[image]))
}

/// What a pod's annotations script for its containers.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct Script {
    never_ready: bool,
    /// How long after starting each container exits, and with which code.
    exit: Option<(Duration, i32)>,
    /// How long each regular init container runs.
    init_run_for: Duration,
}

impl Script {
    fn of(pod: &Pod) -> Script {
        let annotation = |key: &str| {
            pod.metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(key))
                .map(String::as_str)
        };
        let exit = annotation(FAIL_AFTER_ANNOTATION)
            .and_then(parse_go_duration)
            .map(|d| (d, 1))
            .or_else(|| {
                annotation(COMPLETE_AFTER_ANNOTATION)
                    .and_then(parse_go_duration)
                    .map(|d| (d, 0))
            });
        Script {
            never_ready: annotation(NEVER_READY_ANNOTATION)
                .is_some_and(|v| v.eq_ignore_ascii_case("true")),
            exit,
            init_run_for: annotation(INIT_RUN_FOR_ANNOTATION)
                .and_then(parse_go_duration)
                .unwrap_or(Duration::ZERO),
        }
    }
}

/// The parts of a pod every container decision needs.
#[derive(Clone, Copy)]
struct PodFacts<'a> {
    name: &'a str,
    namespace: &'a str,
    uid: &'a str,
    restart_policy: &'a str,
    script: Script,
}

impl<'a> PodFacts<'a> {
    fn of(pod: &'a Pod, spec: &'a PodSpec) -> PodFacts<'a> {
        PodFacts {
            name: pod.metadata.name.as_deref().unwrap_or(""),
            namespace: pod.metadata.namespace.as_deref().unwrap_or(""),
            uid: pod.metadata.uid.as_deref().unwrap_or(""),
            restart_policy: spec.restart_policy.as_deref().unwrap_or("Always"),
            script: Script::of(pod),
        }
    }

    /// Whether kubelet restarts a container that exited with `exit_code`.
    fn restarts(&self, exit_code: i32) -> bool {
        match self.restart_policy {
            "Never" => false,
            "OnFailure" => exit_code != 0,
            _ => true,
        }
    }
}

/// The earliest future moment something changes.
struct NextCheck {
    now: Timestamp,
    earliest: Option<Timestamp>,
}

impl NextCheck {
    fn after(now: Timestamp) -> NextCheck {
        NextCheck {
            now,
            earliest: None,
        }
    }

    fn at(&mut self, at: Timestamp) {
        if at > self.now && self.earliest.is_none_or(|e| at < e) {
            self.earliest = Some(at);
        }
    }

    fn earliest(&self) -> Option<Timestamp> {
        self.earliest
    }
}

fn find_status<'s>(status: &'s PodStatus, name: &str) -> Option<&'s ContainerStatus> {
    status
        .container_statuses
        .as_deref()
        .unwrap_or_default()
        .iter()
        .find(|cs| cs.name == name)
}

fn waiting(reason: &str, message: Option<String>) -> ContainerState {
    ContainerState {
        waiting: Some(ContainerStateWaiting {
            reason: Some(reason.to_string()),
            message,
        }),
        ..ContainerState::default()
    }
}

/// Statuses of containers whose sandbox is not there yet.
fn waiting_for_sandbox(status: &mut PodStatus, spec: &PodSpec) {
    let has_init = spec.init_containers.as_ref().is_some_and(|i| !i.is_empty());
    let reason = if has_init {
        "PodInitializing"
    } else {
        "ContainerCreating"
    };
    if has_init {
        status.init_container_statuses = spec
            .init_containers
            .as_ref()
            .map(|cs| cs.iter().map(|c| not_started(c, reason)).collect());
    }
    status.container_statuses = Some(
        spec.containers
            .iter()
            .map(|c| not_started(c, reason))
            .collect(),
    );
}

/// The status of a container that has not run yet, waiting for `reason`.
fn not_started(c: &Container, reason: &str) -> ContainerStatus {
    ContainerStatus {
        name: c.name.clone(),
        image: c.image.clone().unwrap_or_default(),
        image_id: String::new(),
        ready: false,
        restart_count: 0,
        started: Some(false),
        state: Some(waiting(reason, None)),
        last_state: Some(ContainerState::default()),
        ..ContainerStatus::default()
    }
}

/// The sandbox is up: the pod gets its address; its init containers run from now on.
fn start_sandbox(status: &mut PodStatus, ip: Ipv4Addr) {
    status.pod_ip = Some(ip.to_string());
    status.pod_ips = Some(vec![PodIP { ip: ip.to_string() }]);
}

/// Where one container is in its life, read from its status.
enum Life {
    NotStarted,
    Running { started_at: Timestamp },
    BackOff { last: ContainerStateTerminated },
    Exited,
}

fn life_of(cs: &ContainerStatus) -> Life {
    let state = cs.state.as_ref();
    if let Some(running) = state.and_then(|s| s.running.as_ref()) {
        let started_at = running
            .started_at
            .as_ref()
            .map_or(Timestamp::UNIX_EPOCH, |t| t.0);
        return Life::Running { started_at };
    }
    if state.is_some_and(|s| s.terminated.is_some()) {
        return Life::Exited;
    }
    match cs.last_state.as_ref().and_then(|s| s.terminated.clone()) {
        Some(last) => Life::BackOff { last },
        None => Life::NotStarted,
    }
}

fn initial_delay(probe: Option<&Probe>) -> Duration {
    let seconds = probe
        .and_then(|p| p.initial_delay_seconds)
        .unwrap_or(0)
        .max(0);
    Duration::from_secs(seconds as u64)
}

/// kubelet's delay before restart number `restart` (1-based) of a container whose last run
/// lasted `ran_for`: the first restart is immediate, then 10 s doubling up to 5 min; a run of
/// twice the maximum resets the back-off.
fn restart_backoff(restart: i32, ran_for: SignedDuration) -> Duration {
    if restart <= 1 || ran_for >= SignedDuration::from_secs(2 * MAX_BACKOFF_SECONDS as i64) {
        return Duration::ZERO;
    }
    let doublings = (restart - 2).min(16) as u32;
    Duration::from_secs((INITIAL_BACKOFF_SECONDS << doublings).min(MAX_BACKOFF_SECONDS))
}

/// Moves one container along its life up to `now`.
fn advance_container(
    container: &Container,
    current: Option<&ContainerStatus>,
    facts: &PodFacts<'_>,
    now: Timestamp,
    next: &mut NextCheck,
) -> ContainerStatus {
    let image = container.image.clone().unwrap_or_default();
    let mut cs = current.cloned().unwrap_or_else(|| ContainerStatus {
        name: container.name.clone(),
        ..ContainerStatus::default()
    });
    cs.image = image.clone();
    cs.image_id = image_id(&image);
    if cs.last_state.is_none() {
        cs.last_state = Some(ContainerState::default());
    }
    let run = |cs: &mut ContainerStatus, started_at: Timestamp| {
        let id = container_id(facts.uid, &container.name, cs.restart_count);
        cs.container_id = Some(id);
        cs.state = Some(ContainerState {
            running: Some(ContainerStateRunning {
                started_at: Some(Time(whole_seconds(started_at))),
            }),
            ..ContainerState::default()
        });
    };
    for _ in 0..MAX_CONTAINER_STEPS {
        match life_of(&cs) {
            Life::NotStarted => run(&mut cs, now),
            Life::Running { started_at } => {
                let exit = facts
                    .script
                    .exit
                    .map(|(after, code)| (add(started_at, after), code));
                match exit {
                    Some((exit_at, code)) if exit_at <= now => {
                        let terminated = ContainerStateTerminated {
                            container_id: cs.container_id.clone(),
                            exit_code: code,
                            reason: Some(if code == 0 { "Completed" } else { "Error" }.to_string()),
                            started_at: Some(Time(started_at)),
                            finished_at: Some(Time(whole_seconds(exit_at))),
                            ..ContainerStateTerminated::default()
                        };
                        if facts.restarts(code) {
                            cs.last_state = Some(ContainerState {
                                terminated: Some(terminated),
                                ..ContainerState::default()
                            });
                            // Not running and not terminated: the back-off decides below.
                            cs.state = Some(waiting("CrashLoopBackOff", None));
                        } else {
                            cs.state = Some(ContainerState {
                                terminated: Some(terminated),
                                ..ContainerState::default()
                            });
                        }
                    }
                    _ => {
                        let startup_at =
                            add(started_at, initial_delay(container.startup_probe.as_ref()));
                        let readiness_at = add(
                            started_at,
                            initial_delay(container.readiness_probe.as_ref()),
                        );
                        let ready_at = startup_at.max(readiness_at);
                        cs.started = Some(now >= startup_at);
                        cs.ready = !facts.script.never_ready && now >= ready_at;
                        next.at(startup_at);
                        if !facts.script.never_ready {
                            next.at(ready_at);
                        }
                        if let Some((exit_at, _)) = exit {
                            next.at(exit_at);
                        }
                        return cs;
                    }
                }
            }
            Life::BackOff { last } => {
                let finished_at = last.finished_at.as_ref().map_or(now, |t| t.0);
                let started_at = last.started_at.as_ref().map_or(finished_at, |t| t.0);
                let restart = cs.restart_count.saturating_add(1);
                let delay = restart_backoff(restart, finished_at.duration_since(started_at));
                let restart_at = add(finished_at, delay);
                if restart_at <= now {
                    cs.restart_count = restart;
                    run(&mut cs, now);
                } else {
                    let message = format!(
                        "back-off {} restarting failed container={} pod={}_{}({})",
                        format_go_seconds(delay.as_secs()),
                        container.name,
                        facts.name,
                        facts.namespace,
                        facts.uid
                    );
                    cs.state = Some(waiting("CrashLoopBackOff", Some(message)));
                    cs.ready = false;
                    cs.started = Some(false);
                    next.at(restart_at);
                    return cs;
                }
            }
            Life::Exited => {
                cs.ready = false;
                cs.started = Some(false);
                return cs;
            }
        }
    }
    // A script that exits faster than the planner steps: report what was reached and look
    // again shortly.
    next.at(add(now, Duration::from_secs(1)));
    cs.ready = false;
    cs
}

/// The deletion branch: wait for the simulated shutdown, stop every container, give the pod its
/// terminal phase and confirm the deletion.
fn plan_termination(
    pod: &Pod,
    spec: &PodSpec,
    config: &PodTimelineConfig,
    current: &PodStatus,
    deletion_timestamp: Timestamp,
    now: Timestamp,
    next: &mut NextCheck,
) -> PodPlan {
    // Nothing ran (or everything already stopped): there is nothing to shut down.
    if current.pod_ip.is_none() || is_terminal(current) {
        return PodPlan {
            status: None,
            delete: true,
            next_check: None,
        };
    }
    let grace = pod
        .metadata
        .deletion_grace_period_seconds
        .unwrap_or(0)
        .max(0);
    let requested = deletion_timestamp
        .checked_sub(SignedDuration::from_secs(grace))
        .unwrap_or(deletion_timestamp);
    // The simulated shutdown, never longer than the grace period allows.
    let shutdown = config
        .termination_delay
        .min(Duration::from_secs(grace as u64));
    let stop_at = add(requested, shutdown);
    if stop_at > now {
        next.at(stop_at);
        return PodPlan {
            status: None,
            delete: false,
            next_check: next.earliest(),
        };
    }

    let mut status = current.clone();
    let at = Time(whole_seconds(now));
    let stop = |mut cs: ContainerStatus| {
        let state = cs.state.take().unwrap_or_default();
        let final_state = if let Some(running) = state.running {
            Some(ContainerStateTerminated {
                container_id: cs.container_id.clone(),
                exit_code: 0,
                reason: Some("Completed".to_string()),
                started_at: running.started_at,
                finished_at: Some(at.clone()),
                ..ContainerStateTerminated::default()
            })
        } else if let Some(t) = state.terminated {
            Some(t)
        } else {
            // A container waiting to restart ends with its last run.
            cs.last_state.as_ref().and_then(|s| s.terminated.clone())
        };
        cs.state = Some(match final_state {
            Some(t) => ContainerState {
                terminated: Some(t),
                ..ContainerState::default()
            },
            // Never ran: it keeps waiting, and the pod fails.
            None => ContainerState {
                waiting: state.waiting,
                ..ContainerState::default()
            },
        });
        cs.ready = false;
        cs.started = Some(false);
        cs
    };
    status.init_container_statuses = status
        .init_container_statuses
        .take()
        .map(|list| list.into_iter().map(stop).collect());
    status.container_statuses = status
        .container_statuses
        .take()
        .map(|list| list.into_iter().map(stop).collect());
    fill_from_statuses(&mut status, spec, current, false, true, now);
    PodPlan {
        status: (&status != current).then_some(status),
        delete: true,
        next_check: None,
    }
}

/// 64-bit FNV-1a, seeded, for stable made-up identifiers.
fn fnv1a(bytes: &[u8], seed: u64) -> u64 {
    let mut hash = 0xcbf2_9ce4_8422_2325u64 ^ seed.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    for b in bytes {
        hash ^= u64::from(*b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

/// A 64-hex-digit identifier derived from `parts`, shaped like a sha256 digest.
fn digest(parts: &[&str]) -> String {
    let joined = parts.join("\u{0}");
    (0..4u64)
        .map(|seed| format!("{:016x}", fnv1a(joined.as_bytes(), seed + 1)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::PodCondition;
    use serde_json::{json, Value};

    const HOST: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 1);
    const POD_IP: Ipv4Addr = Ipv4Addr::new(10, 244, 0, 2);

    fn t(offset_secs: i64) -> Timestamp {
        let base: Timestamp = "2024-05-01T10:00:00Z".parse().unwrap();
        base + SignedDuration::from_secs(offset_secs)
    }

    fn t_ms(offset_millis: i64) -> Timestamp {
        t(0) + SignedDuration::from_millis(offset_millis)
    }

    fn stamp(offset_secs: i64) -> String {
        t(offset_secs).to_string()
    }

    fn instant() -> PodTimelineConfig {
        PodTimelineConfig {
            start_delay_min: Duration::ZERO,
            start_delay_max: Duration::ZERO,
            termination_delay: Duration::ZERO,
        }
    }

    fn pod_with(annotations: Value, spec: Value) -> Pod {
        let mut spec = spec;
        if spec.get("containers").is_none() {
            spec["containers"] = json!([{"name": "app", "image": "nginx:1.25"}]);
        }
        spec["nodeName"] = json!("sim-node-1");
        serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "default", "uid": "uid-1",
                         "annotations": annotations},
            "spec": spec,
            "status": {"phase": "Pending", "qosClass": "BestEffort", "conditions": [
                {"type": "PodScheduled", "status": "True", "lastTransitionTime": stamp(-5)}
            ]},
        }))
        .unwrap()
    }

    fn plain_pod() -> Pod {
        pod_with(json!({}), json!({}))
    }

    /// Plans at `now` and stores the status the way the API does (a JSON round trip, which cuts
    /// times to seconds), then checks that planning again at once changes nothing.
    fn step(pod: &mut Pod, now: Timestamp, config: &PodTimelineConfig) -> PodPlan {
        let ctx = PodContext {
            host_ip: HOST,
            pod_ip: Some(POD_IP),
            config,
        };
        let plan = plan_pod(pod, now, &ctx);
        if let Some(status) = &plan.status {
            let stored = serde_json::to_value(status).unwrap();
            pod.status = Some(serde_json::from_value(stored).unwrap());
            let again = plan_pod(pod, now, &ctx);
            assert_eq!(again.status, None, "planning twice at {now} must settle");
            assert_eq!(again.next_check, plan.next_check);
        }
        if let Some(next) = plan.next_check {
            assert!(next > now, "next check {next} is not after {now}");
        }
        plan
    }

    fn status_json(pod: &Pod) -> Value {
        serde_json::to_value(pod.status.as_ref().unwrap()).unwrap()
    }

    fn condition_of(pod: &Pod, type_: &str) -> Value {
        status_json(pod)["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == type_)
            .cloned()
            .unwrap_or(Value::Null)
    }

    fn container(pod: &Pod) -> Value {
        status_json(pod)["containerStatuses"][0].clone()
    }

    #[test]
    fn first_sight_reports_pending_with_creating_containers() {
        let config = PodTimelineConfig {
            start_delay_min: Duration::from_secs(2),
            start_delay_max: Duration::from_secs(2),
            ..instant()
        };
        let mut pod = plain_pod();
        let plan = step(&mut pod, t_ms(400), &config);
        assert!(!plan.delete);
        assert_eq!(plan.next_check, Some(t(2)));
        let status = status_json(&pod);
        assert_eq!(status["phase"], "Pending");
        assert_eq!(status["startTime"], stamp(0));
        assert_eq!(status["hostIP"], "127.0.0.1");
        assert_eq!(status["hostIPs"], json!([{"ip": "127.0.0.1"}]));
        assert_eq!(status["qosClass"], "BestEffort");
        assert!(status.get("podIP").is_none());
        assert_eq!(
            container(&pod),
            json!({"name": "app", "image": "nginx:1.25", "imageID": "", "lastState": {},
                   "ready": false, "restartCount": 0, "started": false,
                   "state": {"waiting": {"reason": "ContainerCreating"}}})
        );
        let types: Vec<Value> = status["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| json!([c["type"], c["status"]]))
            .collect();
        assert_eq!(
            types,
            vec![
                json!(["PodReadyToStartContainers", "False"]),
                json!(["Initialized", "True"]),
                json!(["Ready", "False"]),
                json!(["ContainersReady", "False"]),
                json!(["PodScheduled", "True"]),
            ]
        );
        assert_eq!(
            condition_of(&pod, "Ready"),
            json!({"type": "Ready", "status": "False", "reason": "ContainersNotReady",
                   "message": "containers with unready status: [app]",
                   "lastTransitionTime": stamp(0)})
        );
        assert_eq!(
            condition_of(&pod, "PodScheduled")["lastTransitionTime"],
            stamp(-5),
            "the scheduler's condition is kept"
        );
    }

    #[test]
    fn pod_runs_and_is_ready_after_the_start_delay() {
        let config = PodTimelineConfig {
            start_delay_min: Duration::from_secs(2),
            start_delay_max: Duration::from_secs(2),
            ..instant()
        };
        let mut pod = plain_pod();
        step(&mut pod, t(0), &config);
        let early = step(&mut pod, t_ms(1_500), &config);
        assert_eq!(early.status, None, "nothing changes before the delay");
        let plan = step(&mut pod, t(2), &config);
        assert_eq!(
            plan.next_check, None,
            "a running ready pod waits for nothing"
        );
        let status = status_json(&pod);
        assert_eq!(status["phase"], "Running");
        assert_eq!(status["podIP"], "10.244.0.2");
        assert_eq!(status["podIPs"], json!([{"ip": "10.244.0.2"}]));
        assert_eq!(status["startTime"], stamp(0));
        let cs = container(&pod);
        assert_eq!(cs["state"], json!({"running": {"startedAt": stamp(2)}}));
        assert_eq!(cs["ready"], true);
        assert_eq!(cs["started"], true);
        assert_eq!(cs["restartCount"], 0);
        assert_eq!(cs["containerID"], container_id("uid-1", "app", 0));
        assert!(cs["containerID"].as_str().unwrap().starts_with("sim://"));
        assert_eq!(cs["imageID"], image_id("nginx:1.25"));
        for type_ in [
            "PodReadyToStartContainers",
            "Initialized",
            "Ready",
            "ContainersReady",
        ] {
            let c = condition_of(&pod, type_);
            assert_eq!(c["status"], "True", "{type_}");
            assert!(c.get("reason").is_none(), "{type_}");
        }
        assert_eq!(condition_of(&pod, "Ready")["lastTransitionTime"], stamp(2));
        assert_eq!(
            condition_of(&pod, "Initialized")["lastTransitionTime"],
            stamp(0),
            "an unchanged condition keeps its transition time"
        );
    }

    #[test]
    fn without_a_delay_the_first_plan_already_runs_the_pod() {
        let mut pod = plain_pod();
        let plan = step(&mut pod, t_ms(300), &instant());
        assert_eq!(plan.next_check, None);
        assert_eq!(status_json(&pod)["phase"], "Running");
        assert_eq!(condition_of(&pod, "Ready")["status"], "True");
    }

    #[test]
    fn readiness_and_startup_probes_delay_started_and_ready() {
        // (startup delay, readiness delay, when started, when ready)
        let cases: &[(Option<i32>, Option<i32>, i64, i64)] = &[
            (None, None, 0, 0),
            (None, Some(5), 0, 5),
            (Some(3), None, 3, 3),
            (Some(3), Some(1), 3, 3),
            (Some(2), Some(6), 2, 6),
        ];
        for &(startup, readiness, started_at, ready_at) in cases {
            let mut c = json!({"name": "app", "image": "nginx:1.25"});
            if let Some(d) = startup {
                c["startupProbe"] = json!({"initialDelaySeconds": d, "tcpSocket": {"port": 80}});
            }
            if let Some(d) = readiness {
                c["readinessProbe"] = json!({"initialDelaySeconds": d, "tcpSocket": {"port": 80}});
            }
            let mut pod = pod_with(json!({}), json!({"containers": [c]}));
            let label = format!("startup {startup:?} readiness {readiness:?}");
            let mut now = t(0);
            for second in 0..8 {
                if second > 0 {
                    now = t(second);
                }
                let plan = step(&mut pod, now, &instant());
                let cs = container(&pod);
                assert_eq!(cs["started"], second >= started_at, "{label} at {second}s");
                assert_eq!(cs["ready"], second >= ready_at, "{label} at {second}s");
                let ready = condition_of(&pod, "Ready");
                assert_eq!(ready["status"] == "True", second >= ready_at, "{label}");
                if second < ready_at {
                    assert!(plan.next_check.is_some(), "{label} must look again");
                }
            }
            assert_eq!(
                condition_of(&pod, "Ready")["lastTransitionTime"],
                stamp(ready_at),
                "{label}"
            );
        }
    }

    #[test]
    fn never_ready_pods_run_unready_and_wait_for_nothing() {
        let mut pod = pod_with(json!({NEVER_READY_ANNOTATION: "true"}), json!({}));
        let plan = step(&mut pod, t(0), &instant());
        assert_eq!(plan.next_check, None);
        assert_eq!(status_json(&pod)["phase"], "Running");
        assert_eq!(container(&pod)["ready"], false);
        assert_eq!(container(&pod)["started"], true);
        assert_eq!(
            condition_of(&pod, "ContainersReady")["message"],
            "containers with unready status: [app]"
        );
        assert_eq!(step(&mut pod, t(600), &instant()).status, None);
    }

    #[test]
    fn failing_containers_restart_with_crash_loop_back_off() {
        let mut pod = pod_with(json!({FAIL_AFTER_ANNOTATION: "5s"}), json!({}));
        let plan = step(&mut pod, t(0), &instant());
        assert_eq!(plan.next_check, Some(t(5)));

        // First exit: restarted at once.
        let plan = step(&mut pod, t(5), &instant());
        let cs = container(&pod);
        assert_eq!(cs["restartCount"], 1);
        assert_eq!(cs["state"], json!({"running": {"startedAt": stamp(5)}}));
        assert_eq!(
            cs["lastState"],
            json!({"terminated": {"exitCode": 1, "reason": "Error", "startedAt": stamp(0),
                   "finishedAt": stamp(5), "containerID": container_id("uid-1", "app", 0)}})
        );
        assert_eq!(cs["containerID"], container_id("uid-1", "app", 1));
        assert_eq!(plan.next_check, Some(t(10)));
        assert_eq!(status_json(&pod)["phase"], "Running");

        // Second exit: back-off of 10 s.
        let plan = step(&mut pod, t(10), &instant());
        let cs = container(&pod);
        assert_eq!(cs["restartCount"], 1);
        assert_eq!(
            cs["state"],
            json!({"waiting": {"reason": "CrashLoopBackOff",
                   "message": "back-off 10s restarting failed container=app pod=web_default(uid-1)"}})
        );
        assert_eq!(cs["lastState"]["terminated"]["finishedAt"], stamp(10));
        assert_eq!(cs["ready"], false);
        assert_eq!(plan.next_check, Some(t(20)));
        assert_eq!(status_json(&pod)["phase"], "Running");
        assert_eq!(condition_of(&pod, "Ready")["reason"], "ContainersNotReady");

        assert_eq!(step(&mut pod, t(19), &instant()).status, None);
        let plan = step(&mut pod, t(20), &instant());
        let cs = container(&pod);
        assert_eq!(cs["restartCount"], 2);
        assert_eq!(cs["state"], json!({"running": {"startedAt": stamp(20)}}));
        assert_eq!(cs["ready"], true);
        assert_eq!(plan.next_check, Some(t(25)));

        // Third exit: back-off doubles.
        let plan = step(&mut pod, t(25), &instant());
        assert_eq!(plan.next_check, Some(t(45)));
        assert!(container(&pod)["state"]["waiting"]["message"]
            .as_str()
            .unwrap()
            .starts_with("back-off 20s"));
    }

    #[test]
    fn an_agent_that_was_away_catches_up_without_replaying_history() {
        let mut pod = pod_with(json!({FAIL_AFTER_ANNOTATION: "5s"}), json!({}));
        step(&mut pod, t(0), &instant());
        // Seen again an hour later: the container died at 5 s and restarts now.
        step(&mut pod, t(3_600), &instant());
        let cs = container(&pod);
        assert_eq!(cs["restartCount"], 1);
        assert_eq!(cs["lastState"]["terminated"]["finishedAt"], stamp(5));
        assert_eq!(cs["state"]["running"]["startedAt"], stamp(3_600));
    }

    #[test]
    fn exits_end_the_pod_when_the_policy_does_not_restart() {
        // (annotation, value, restartPolicy, phase, exit code, reason, ContainersReady reason)
        let cases = [
            (
                FAIL_AFTER_ANNOTATION,
                "5s",
                "Never",
                "Failed",
                1,
                "Error",
                "PodFailed",
            ),
            (
                COMPLETE_AFTER_ANNOTATION,
                "5s",
                "Never",
                "Succeeded",
                0,
                "Completed",
                "PodCompleted",
            ),
            (
                COMPLETE_AFTER_ANNOTATION,
                "2s",
                "OnFailure",
                "Succeeded",
                0,
                "Completed",
                "PodCompleted",
            ),
        ];
        for (key, value, policy, phase, code, reason, not_ready) in cases {
            let mut pod = pod_with(json!({key: value}), json!({"restartPolicy": policy}));
            step(&mut pod, t(0), &instant());
            let plan = step(&mut pod, t(5), &instant());
            assert_eq!(plan.next_check, None, "{policy} {key}");
            let status = status_json(&pod);
            assert_eq!(status["phase"], phase, "{policy} {key}");
            let cs = container(&pod);
            assert_eq!(cs["restartCount"], 0);
            assert_eq!(cs["state"]["terminated"]["exitCode"], code);
            assert_eq!(cs["state"]["terminated"]["reason"], reason);
            assert_eq!(cs["ready"], false);
            assert_eq!(condition_of(&pod, "ContainersReady")["reason"], not_ready);
            assert_eq!(condition_of(&pod, "Ready")["reason"], not_ready);
            assert_eq!(
                condition_of(&pod, "PodReadyToStartContainers")["status"],
                "False"
            );
            // Terminal pods are never touched again.
            assert_eq!(step(&mut pod, t(100), &instant()), PodPlan::default());
        }
    }

    #[test]
    fn on_failure_restarts_failures_only() {
        let mut pod = pod_with(
            json!({FAIL_AFTER_ANNOTATION: "1s"}),
            json!({"restartPolicy": "OnFailure"}),
        );
        step(&mut pod, t(0), &instant());
        step(&mut pod, t(1), &instant());
        assert_eq!(container(&pod)["restartCount"], 1);
        assert_eq!(status_json(&pod)["phase"], "Running");
    }

    #[test]
    fn back_off_follows_kubelet() {
        let short = SignedDuration::from_secs(5);
        let cases = [
            (1, 0),
            (2, 10),
            (3, 20),
            (4, 40),
            (5, 80),
            (6, 160),
            (7, 300),
            (8, 300),
            (40, 300),
        ];
        for (restart, secs) in cases {
            assert_eq!(
                restart_backoff(restart, short),
                Duration::from_secs(secs),
                "restart {restart}"
            );
        }
        assert_eq!(
            restart_backoff(6, SignedDuration::from_secs(600)),
            Duration::ZERO,
            "a ten-minute run resets the back-off"
        );
    }

    fn deleting(mut pod: Pod, requested: i64, grace: i64) -> Pod {
        pod.metadata.deletion_timestamp = Some(Time(t(requested + grace)));
        pod.metadata.deletion_grace_period_seconds = Some(grace);
        pod
    }

    #[test]
    fn deletion_stops_containers_and_confirms() {
        let mut pod = plain_pod();
        step(&mut pod, t(0), &instant());
        let mut pod = deleting(pod, 10, 30);
        let plan = step(&mut pod, t(10), &instant());
        assert!(plan.delete);
        assert_eq!(plan.next_check, None);
        let status = status_json(&pod);
        assert_eq!(status["phase"], "Succeeded");
        assert_eq!(
            container(&pod)["state"],
            json!({"terminated": {"exitCode": 0, "reason": "Completed", "startedAt": stamp(0),
                   "finishedAt": stamp(10), "containerID": container_id("uid-1", "app", 0)}})
        );
        assert_eq!(condition_of(&pod, "Ready")["reason"], "PodCompleted");
        // Seen again (say, the delete failed): confirm again without another status.
        let again = step(&mut pod, t(11), &instant());
        assert_eq!(again.status, None);
        assert!(again.delete);
    }

    #[test]
    fn termination_delay_is_bounded_by_the_grace_period() {
        let config = PodTimelineConfig {
            termination_delay: Duration::from_secs(3),
            ..instant()
        };
        // (grace period, when the containers stop)
        for (grace, stop) in [(30, 3), (1, 1), (0, 0)] {
            let mut pod = plain_pod();
            step(&mut pod, t(0), &config);
            let mut pod = deleting(pod, 10, grace);
            if stop > 0 {
                let plan = step(&mut pod, t(10), &config);
                assert_eq!(plan.status, None, "grace {grace}");
                assert!(!plan.delete, "grace {grace}");
                assert_eq!(plan.next_check, Some(t(10 + stop)), "grace {grace}");
            }
            let plan = step(&mut pod, t(10 + stop), &config);
            assert!(plan.delete, "grace {grace}");
            assert_eq!(status_json(&pod)["phase"], "Succeeded");
        }
    }

    #[test]
    fn deletion_of_a_pod_that_never_started_is_confirmed_at_once() {
        let config = PodTimelineConfig {
            start_delay_min: Duration::from_secs(5),
            start_delay_max: Duration::from_secs(5),
            termination_delay: Duration::from_secs(5),
        };
        let mut pod = plain_pod();
        step(&mut pod, t(0), &config);
        let mut pod = deleting(pod, 1, 30);
        let plan = step(&mut pod, t(1), &config);
        assert_eq!(
            plan,
            PodPlan {
                status: None,
                delete: true,
                next_check: None
            }
        );
    }

    #[test]
    fn deleting_a_crash_looping_pod_fails_it() {
        let mut pod = pod_with(json!({FAIL_AFTER_ANNOTATION: "0s"}), json!({}));
        step(&mut pod, t(0), &instant());
        assert_eq!(
            container(&pod)["state"]["waiting"]["reason"],
            "CrashLoopBackOff",
            "an instant failure reaches back-off within one plan"
        );
        let mut pod = deleting(pod, 2, 30);
        let plan = step(&mut pod, t(2), &instant());
        assert!(plan.delete);
        assert_eq!(status_json(&pod)["phase"], "Failed");
        assert_eq!(container(&pod)["state"]["terminated"]["exitCode"], 1);
    }

    #[test]
    fn init_containers_complete_when_the_pod_starts() {
        let config = PodTimelineConfig {
            start_delay_min: Duration::from_secs(1),
            start_delay_max: Duration::from_secs(1),
            ..instant()
        };
        let mut pod = pod_with(
            json!({}),
            json!({"initContainers": [{"name": "setup", "image": "busybox"}]}),
        );
        step(&mut pod, t(0), &config);
        assert_eq!(
            condition_of(&pod, "Initialized"),
            json!({"type": "Initialized", "status": "False", "reason": "ContainersNotInitialized",
                   "message": "containers with incomplete status: [setup]",
                   "lastTransitionTime": stamp(0)})
        );
        assert_eq!(
            container(&pod)["state"]["waiting"]["reason"],
            "PodInitializing"
        );
        let init = status_json(&pod)["initContainerStatuses"][0].clone();
        assert_eq!(init["state"]["waiting"]["reason"], "PodInitializing");

        step(&mut pod, t(1), &config);
        assert_eq!(condition_of(&pod, "Initialized")["status"], "True");
        let init = status_json(&pod)["initContainerStatuses"][0].clone();
        assert_eq!(init["state"]["terminated"]["reason"], "Completed");
        assert_eq!(init["ready"], true);
        assert_eq!(status_json(&pod)["phase"], "Running");
    }

    fn init_status(pod: &Pod, i: usize) -> Value {
        status_json(pod)["initContainerStatuses"][i].clone()
    }

    fn two_init_containers() -> Pod {
        pod_with(
            json!({INIT_RUN_FOR_ANNOTATION: "2s"}),
            json!({"initContainers": [
                {"name": "first", "image": "busybox"},
                {"name": "second", "image": "busybox"},
            ]}),
        )
    }

    #[test]
    fn init_containers_run_one_after_another_before_the_containers() {
        let mut pod = two_init_containers();
        let plan = step(&mut pod, t(0), &instant());
        assert_eq!(
            plan.next_check,
            Some(t(2)),
            "the first init container ends at 2 s"
        );
        assert_eq!(status_json(&pod)["phase"], "Pending");
        assert_eq!(
            init_status(&pod, 0)["state"]["running"]["startedAt"],
            stamp(0)
        );
        assert_eq!(init_status(&pod, 0)["started"], true);
        assert_eq!(init_status(&pod, 0)["ready"], false);
        assert_eq!(
            init_status(&pod, 1)["state"]["waiting"]["reason"],
            "PodInitializing"
        );
        assert_eq!(
            container(&pod)["state"]["waiting"]["reason"],
            "PodInitializing"
        );
        assert_eq!(
            condition_of(&pod, "Initialized")["message"],
            "containers with incomplete status: [first second]"
        );

        let plan = step(&mut pod, t(2), &instant());
        assert_eq!(plan.next_check, Some(t(4)));
        let first = init_status(&pod, 0);
        assert_eq!(first["state"]["terminated"]["reason"], "Completed");
        assert_eq!(first["state"]["terminated"]["finishedAt"], stamp(2));
        assert_eq!(first["ready"], true, "a completed init container is ready");
        assert_eq!(first["started"], false);
        assert_eq!(
            init_status(&pod, 1)["state"]["running"]["startedAt"],
            stamp(2)
        );
        assert_eq!(
            container(&pod)["state"]["waiting"]["reason"],
            "PodInitializing"
        );
        assert_eq!(
            condition_of(&pod, "Initialized")["message"],
            "containers with incomplete status: [second]"
        );
        assert_eq!(status_json(&pod)["phase"], "Pending");

        step(&mut pod, t(4), &instant());
        assert_eq!(
            init_status(&pod, 1)["state"]["terminated"]["finishedAt"],
            stamp(4)
        );
        assert_eq!(container(&pod)["state"]["running"]["startedAt"], stamp(4));
        assert_eq!(condition_of(&pod, "Initialized")["status"], "True");
        assert_eq!(
            condition_of(&pod, "Initialized")["lastTransitionTime"],
            stamp(4)
        );
        assert_eq!(status_json(&pod)["phase"], "Running");
        assert_eq!(condition_of(&pod, "Ready")["status"], "True");
    }

    #[test]
    fn an_agent_that_was_away_runs_the_missed_init_containers_on_their_own_times() {
        let mut pod = two_init_containers();
        step(&mut pod, t(0), &instant());
        step(&mut pod, t(100), &instant());
        assert_eq!(
            init_status(&pod, 0)["state"]["terminated"]["finishedAt"],
            stamp(2)
        );
        assert_eq!(
            init_status(&pod, 1)["state"]["terminated"]["startedAt"],
            stamp(2)
        );
        assert_eq!(
            init_status(&pod, 1)["state"]["terminated"]["finishedAt"],
            stamp(4)
        );
        assert_eq!(container(&pod)["state"]["running"]["startedAt"], stamp(100));
        assert_eq!(status_json(&pod)["phase"], "Running");
    }

    #[test]
    fn a_sidecar_starts_in_its_turn_and_runs_beside_the_containers() {
        let mut pod = pod_with(
            json!({}),
            json!({"initContainers": [
                {"name": "proxy", "image": "envoy", "restartPolicy": "Always",
                 "startupProbe": {"exec": {"command": ["true"]}, "initialDelaySeconds": 3}},
            ]}),
        );
        let plan = step(&mut pod, t(0), &instant());
        assert_eq!(plan.next_check, Some(t(3)));
        let proxy = init_status(&pod, 0);
        assert_eq!(proxy["state"]["running"]["startedAt"], stamp(0));
        assert_eq!(proxy["started"], false);
        assert_eq!(
            container(&pod)["state"]["waiting"]["reason"],
            "PodInitializing"
        );
        assert_eq!(
            condition_of(&pod, "Initialized")["message"],
            "containers with incomplete status: [proxy]"
        );
        assert_eq!(status_json(&pod)["phase"], "Pending");

        step(&mut pod, t(3), &instant());
        let proxy = init_status(&pod, 0);
        assert_eq!(proxy["started"], true);
        assert_eq!(proxy["ready"], true);
        assert_eq!(container(&pod)["state"]["running"]["startedAt"], stamp(3));
        assert_eq!(condition_of(&pod, "Initialized")["status"], "True");
        assert_eq!(condition_of(&pod, "ContainersReady")["status"], "True");
        assert_eq!(status_json(&pod)["phase"], "Running");

        // Deleted: the sidecar stops with the containers and the pod succeeds.
        let mut pod = deleting(pod, 10, 30);
        let plan = step(&mut pod, t(10), &instant());
        assert!(plan.delete);
        assert_eq!(
            init_status(&pod, 0)["state"]["terminated"]["reason"],
            "Completed"
        );
        assert_eq!(status_json(&pod)["phase"], "Succeeded");
    }

    #[test]
    fn a_sidecar_stops_once_the_containers_completed() {
        let mut pod = pod_with(
            json!({COMPLETE_AFTER_ANNOTATION: "5s"}),
            json!({"restartPolicy": "Never",
                   "initContainers": [{"name": "proxy", "image": "envoy", "restartPolicy": "Always"}]}),
        );
        step(&mut pod, t(0), &instant());
        assert_eq!(status_json(&pod)["phase"], "Running");
        assert_eq!(
            init_status(&pod, 0)["state"]["running"]["startedAt"],
            stamp(0)
        );
        step(&mut pod, t(5), &instant());
        assert_eq!(
            container(&pod)["state"]["terminated"]["reason"],
            "Completed"
        );
        let proxy = init_status(&pod, 0);
        assert_eq!(proxy["state"]["terminated"]["finishedAt"], stamp(5));
        assert_eq!(proxy["ready"], false);
        assert_eq!(status_json(&pod)["phase"], "Succeeded");
        assert_eq!(condition_of(&pod, "Initialized")["reason"], "PodCompleted");
    }

    #[test]
    fn deleting_a_pod_during_its_init_containers_fails_it() {
        let mut pod = two_init_containers();
        step(&mut pod, t(0), &instant());
        let mut pod = deleting(pod, 1, 30);
        let plan = step(&mut pod, t(1), &instant());
        assert!(plan.delete);
        assert_eq!(status_json(&pod)["phase"], "Failed");
        assert_eq!(
            init_status(&pod, 0)["state"]["terminated"]["finishedAt"],
            stamp(1)
        );
        assert_eq!(
            container(&pod)["state"]["waiting"]["reason"],
            "PodInitializing",
            "a container that never ran keeps waiting"
        );
        assert_eq!(condition_of(&pod, "ContainersReady")["reason"], "PodFailed");
    }

    #[test]
    fn without_an_address_the_pod_waits() {
        let config = instant();
        let pod = plain_pod();
        let ctx = PodContext {
            host_ip: HOST,
            pod_ip: None,
            config: &config,
        };
        let plan = plan_pod(&pod, t(0), &ctx);
        let status = serde_json::to_value(plan.status.unwrap()).unwrap();
        assert_eq!(status["phase"], "Pending");
        assert_eq!(plan.next_check, Some(t(1)));
    }

    #[test]
    fn readiness_gates_hold_ready_until_their_conditions_are_true() {
        let mut pod = pod_with(
            json!({}),
            json!({"readinessGates": [{"conditionType": "example.com/lb"}]}),
        );
        step(&mut pod, t(0), &instant());
        assert_eq!(condition_of(&pod, "ContainersReady")["status"], "True");
        assert_eq!(
            condition_of(&pod, "Ready"),
            json!({"type": "Ready", "status": "False", "reason": "ReadinessGatesNotReady",
                   "message": "corresponding condition of pod readiness gate \"example.com/lb\" does not exist.",
                   "lastTransitionTime": stamp(0)})
        );
        let mut status = pod.status.clone().unwrap();
        status.conditions.as_mut().unwrap().push(PodCondition {
            type_: "example.com/lb".into(),
            status: "True".into(),
            ..PodCondition::default()
        });
        pod.status = Some(status);
        step(&mut pod, t(4), &instant());
        assert_eq!(condition_of(&pod, "Ready")["status"], "True");
        assert_eq!(
            condition_of(&pod, "example.com/lb")["status"],
            "True",
            "kept"
        );
    }

    #[test]
    fn start_delay_stays_in_range_and_is_stable() {
        let config = PodTimelineConfig::default();
        for uid in ["a", "b", "c", "0c8f6d2e-9f3b-4c4e-a5f4-1b2c3d4e5f60"] {
            let d = config.start_delay(uid);
            assert!(d <= Duration::from_millis(200), "{uid}: {d:?}");
            assert_eq!(d, config.start_delay(uid));
        }
        let fixed = PodTimelineConfig {
            start_delay_min: Duration::from_millis(50),
            start_delay_max: Duration::from_millis(50),
            ..config
        };
        assert_eq!(fixed.start_delay("x"), Duration::from_millis(50));
        let huge = PodTimelineConfig {
            start_delay_min: Duration::ZERO,
            start_delay_max: Duration::MAX,
            ..PodTimelineConfig::default()
        };
        let _ = huge.start_delay("x");
    }

    #[test]
    fn invalid_annotations_are_ignored() {
        let mut pod = pod_with(
            json!({FAIL_AFTER_ANNOTATION: "soon", NEVER_READY_ANNOTATION: "yes"}),
            json!({}),
        );
        let plan = step(&mut pod, t(0), &instant());
        assert_eq!(plan.next_check, None);
        assert_eq!(container(&pod)["ready"], true);
    }
}
