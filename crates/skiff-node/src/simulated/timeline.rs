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
//! 2. After the start delay ([`PodTimelineConfig::start_delay`]): `Running` with a pod IP, init
//!    containers `Completed`, containers `Running`. A container is `started` once its startup
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
//! Times in a status have one-second resolution, like every `metav1.Time`; delays are measured
//! from those stored times.

use std::net::Ipv4Addr;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::core::v1::{
    Container, ContainerState, ContainerStateRunning, ContainerStateTerminated,
    ContainerStateWaiting, ContainerStatus, HostIP, Pod, PodCondition, PodIP, PodSpec, PodStatus,
    Probe,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::duration::{add, format_go_seconds, parse_go_duration, whole_seconds};

/// Annotation that keeps every container of a pod unready forever (value `"true"`), to exercise
/// rollouts that never progress.
pub const NEVER_READY_ANNOTATION: &str = "sim.skiff.dev/never-ready";
/// Annotation with a Go duration (`"5s"`): each container exits with code 1 (`Error`) that long
/// after it started. Wins over [`COMPLETE_AFTER_ANNOTATION`].
pub const FAIL_AFTER_ANNOTATION: &str = "sim.skiff.dev/fail-after";
/// Annotation with a Go duration (`"5s"`): each container exits with code 0 (`Completed`) that
/// long after it started, as a batch job would.
pub const COMPLETE_AFTER_ANNOTATION: &str = "sim.skiff.dev/complete-after";

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
        let spread = max - min + 1;
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
            Some(ip) if start_at <= now => start_sandbox(&mut status, spec, &facts, ip, now),
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
        let statuses = spec
            .containers
            .iter()
            .map(|c| advance_container(c, find_status(&status, &c.name), &facts, now, &mut next))
            .collect();
        status.container_statuses = Some(statuses);
    }
    let phase = pod_phase(&status, &facts, sandbox);
    status.phase = Some(phase.to_string());
    status.conditions = Some(conditions(spec, &current, &status, sandbox, phase, now));
    PodPlan {
        status: (status != current).then_some(status),
        delete: false,
        next_check: next.earliest(),
    }
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
        }
    }
}

/// The parts of a pod every container decision needs.
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
    let not_started = |c: &Container| ContainerStatus {
        name: c.name.clone(),
        image: c.image.clone().unwrap_or_default(),
        image_id: String::new(),
        ready: false,
        restart_count: 0,
        started: Some(false),
        state: Some(waiting(reason, None)),
        last_state: Some(ContainerState::default()),
        ..ContainerStatus::default()
    };
    if has_init {
        status.init_container_statuses = spec
            .init_containers
            .as_ref()
            .map(|cs| cs.iter().map(not_started).collect());
    }
    status.container_statuses = Some(spec.containers.iter().map(not_started).collect());
}

/// The sandbox is up: the pod gets its address and its init containers run to completion.
fn start_sandbox(
    status: &mut PodStatus,
    spec: &PodSpec,
    facts: &PodFacts<'_>,
    ip: Ipv4Addr,
    now: Timestamp,
) {
    status.pod_ip = Some(ip.to_string());
    status.pod_ips = Some(vec![PodIP { ip: ip.to_string() }]);
    let at = Time(whole_seconds(now));
    status.init_container_statuses = spec.init_containers.as_ref().map(|inits| {
        inits
            .iter()
            .map(|c| {
                let id = container_id(facts.uid, &c.name, 0);
                ContainerStatus {
                    name: c.name.clone(),
                    image: c.image.clone().unwrap_or_default(),
                    image_id: image_id(c.image.as_deref().unwrap_or_default()),
                    container_id: Some(id.clone()),
                    ready: true,
                    restart_count: 0,
                    started: Some(false),
                    state: Some(ContainerState {
                        terminated: Some(ContainerStateTerminated {
                            container_id: Some(id),
                            exit_code: 0,
                            reason: Some("Completed".to_string()),
                            started_at: Some(at.clone()),
                            finished_at: Some(at.clone()),
                            ..ContainerStateTerminated::default()
                        }),
                        ..ContainerState::default()
                    }),
                    last_state: Some(ContainerState::default()),
                    ..ContainerStatus::default()
                }
            })
            .collect()
    });
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
                        let startup_at = add(started_at, initial_delay(container.startup_probe.as_ref()));
                        let readiness_at =
                            add(started_at, initial_delay(container.readiness_probe.as_ref()));
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

/// The pod phase from its containers, as kubelet's `getPhase` decides it.
fn pod_phase(status: &PodStatus, facts: &PodFacts<'_>, sandbox: bool) -> &'static str {
    if !sandbox {
        return "Pending";
    }
    let (mut running, mut waiting, mut stopped, mut succeeded) = (0, 0, 0, 0);
    for cs in status.container_statuses.as_deref().unwrap_or_default() {
        let state = cs.state.as_ref();
        if state.is_some_and(|s| s.running.is_some()) {
            running += 1;
        } else if let Some(t) = state.and_then(|s| s.terminated.as_ref()) {
            stopped += 1;
            if t.exit_code == 0 {
                succeeded += 1;
            }
        } else if cs
            .last_state
            .as_ref()
            .is_some_and(|s| s.terminated.is_some())
        {
            stopped += 1;
        } else {
            waiting += 1;
        }
    }
    if waiting > 0 {
        "Pending"
    } else if running > 0 {
        "Running"
    } else if stopped > 0 {
        match facts.restart_policy {
            "Never" if stopped != succeeded => "Failed",
            _ if stopped == succeeded && facts.restart_policy != "Always" => "Succeeded",
            _ => "Running",
        }
    } else {
        "Pending"
    }
}

/// Sets a condition, keeping its `lastTransitionTime` while its status stays.
fn condition(
    previous: &PodStatus,
    type_: &str,
    ok: bool,
    reason: Option<&str>,
    message: Option<String>,
    now: Timestamp,
) -> PodCondition {
    let status = if ok { "True" } else { "False" };
    let before = previous
        .conditions
        .as_deref()
        .unwrap_or_default()
        .iter()
        .find(|c| c.type_ == type_);
    let last_transition_time = match before {
        Some(c) if c.status == status && c.last_transition_time.is_some() => {
            c.last_transition_time.clone()
        }
        _ => Some(Time(whole_seconds(now))),
    };
    PodCondition {
        type_: type_.to_string(),
        status: status.to_string(),
        reason: reason.map(str::to_string),
        message,
        last_transition_time,
        last_probe_time: None,
        ..PodCondition::default()
    }
}

/// Go's `%v` of a string slice: `[a b]`.
fn go_list(names: &[&str]) -> String {
    format!("[{}]", names.join(" "))
}

/// The kubelet-owned conditions, in kubelet's order, followed by everyone else's unchanged.
fn conditions(
    spec: &PodSpec,
    previous: &PodStatus,
    status: &PodStatus,
    sandbox: bool,
    phase: &str,
    now: Timestamp,
) -> Vec<PodCondition> {
    const OWNED: [&str; 5] = [
        "PodReadyToStartContainers",
        "Initialized",
        "Ready",
        "ContainersReady",
        "PodScheduled",
    ];
    let mut out = vec![condition(
        previous,
        "PodReadyToStartContainers",
        sandbox && !is_terminal(status),
        None,
        None,
        now,
    )];

    let pending_inits: Vec<&str> = if sandbox {
        Vec::new()
    } else {
        spec.init_containers
            .as_deref()
            .unwrap_or_default()
            .iter()
            .map(|c| c.name.as_str())
            .collect()
    };
    out.push(if pending_inits.is_empty() {
        condition(previous, "Initialized", true, None, None, now)
    } else {
        condition(
            previous,
            "Initialized",
            false,
            Some("ContainersNotInitialized"),
            Some(format!(
                "containers with incomplete status: {}",
                go_list(&pending_inits)
            )),
            now,
        )
    });

    let unready: Vec<&str> = spec
        .containers
        .iter()
        .filter(|c| !find_status(status, &c.name).is_some_and(|cs| cs.ready))
        .map(|c| c.name.as_str())
        .collect();
    let containers_ready = if phase == "Succeeded" {
        condition(
            previous,
            "ContainersReady",
            false,
            Some("PodCompleted"),
            None,
            now,
        )
    } else if unready.is_empty() {
        condition(previous, "ContainersReady", true, None, None, now)
    } else {
        condition(
            previous,
            "ContainersReady",
            false,
            Some("ContainersNotReady"),
            Some(format!(
                "containers with unready status: {}",
                go_list(&unready)
            )),
            now,
        )
    };
    let ready = if containers_ready.status != "True" {
        PodCondition {
            type_: "Ready".to_string(),
            ..condition(
                previous,
                "Ready",
                false,
                containers_ready.reason.as_deref(),
                containers_ready.message.clone(),
                now,
            )
        }
    } else {
        let unmet = unmet_readiness_gates(spec, previous);
        if unmet.is_empty() {
            condition(previous, "Ready", true, None, None, now)
        } else {
            condition(
                previous,
                "Ready",
                false,
                Some("ReadinessGatesNotReady"),
                Some(unmet.join(", ")),
                now,
            )
        }
    };
    out.push(ready);
    out.push(containers_ready);

    let scheduled = previous
        .conditions
        .as_deref()
        .unwrap_or_default()
        .iter()
        .find(|c| c.type_ == "PodScheduled" && c.status == "True")
        .cloned()
        .unwrap_or_else(|| condition(previous, "PodScheduled", true, None, None, now));
    out.push(scheduled);

    out.extend(
        previous
            .conditions
            .as_deref()
            .unwrap_or_default()
            .iter()
            .filter(|c| !OWNED.contains(&c.type_.as_str()))
            .cloned(),
    );
    out
}

/// kubelet's messages for `spec.readinessGates` whose condition is missing or not `True`.
fn unmet_readiness_gates(spec: &PodSpec, status: &PodStatus) -> Vec<String> {
    spec.readiness_gates
        .as_deref()
        .unwrap_or_default()
        .iter()
        .filter_map(|gate| {
            let found = status
                .conditions
                .as_deref()
                .unwrap_or_default()
                .iter()
                .find(|c| c.type_ == gate.condition_type);
            match found {
                None => Some(format!(
                    "corresponding condition of pod readiness gate \"{}\" does not exist.",
                    gate.condition_type
                )),
                Some(c) if c.status != "True" => Some(format!(
                    "the status of pod readiness gate \"{}\" is not \"True\", but {}",
                    gate.condition_type, c.status
                )),
                Some(_) => None,
            }
        })
        .collect()
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
    let mut failed = false;
    let statuses: Vec<ContainerStatus> = status
        .container_statuses
        .take()
        .unwrap_or_default()
        .into_iter()
        .map(|mut cs| {
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
            if let Some(t) = &final_state {
                failed |= t.exit_code != 0;
            }
            cs.state = Some(match final_state {
                Some(t) => ContainerState {
                    terminated: Some(t),
                    ..ContainerState::default()
                },
                None => waiting("ContainerCreating", None),
            });
            cs.ready = false;
            cs.started = Some(false);
            cs
        })
        .collect();
    status.container_statuses = Some(statuses);
    let phase = if failed { "Failed" } else { "Succeeded" };
    status.phase = Some(phase.to_string());
    status.conditions = Some(conditions(spec, current, &status, true, phase, now));
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
