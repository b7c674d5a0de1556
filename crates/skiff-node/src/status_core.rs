//! The one place a pod's reported status is computed, for the real node and simulated nodes
//! alike.
//!
//! A node agent knows, for each container, what it observed: where the container is (waiting,
//! running, terminated), how its previous run ended, how often it restarted, and whether its
//! probes call it started and ready. [`ObservedContainer`] holds that record. From those records,
//! the pod spec, the status reported before and the time (passed in, never read), this module
//! computes what kubelet would report:
//!
//! - each container's status ([`ObservedContainer::status`]), with kubelet's rules for `ready`
//!   and `started` of init containers and restartable init containers (sidecars);
//! - `status.phase` ([`pod_phase`]), following kubelet's `getPhase`;
//! - the conditions kubelet owns ([`pod_conditions`]): `PodReadyToStartContainers`,
//!   `Initialized`, `Ready` and `ContainersReady` with kubelet's reasons and messages, the
//!   scheduler's `PodScheduled` kept, everyone else's conditions left as they were, and each
//!   `lastTransitionTime` kept while its condition's status does not change.
//!
//! [`fill_pod_status`] puts it all together. Everything here is pure.

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{
    Container, ContainerState, ContainerStateRunning, ContainerStateTerminated,
    ContainerStateWaiting, ContainerStatus, PodCondition, PodSpec, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::simulated::duration::whole_seconds;

/// `Pending`: not every container has started yet.
pub const PENDING: &str = "Pending";
/// `Running`: every container started and at least one runs (or restarts).
pub const RUNNING: &str = "Running";
/// `Succeeded`: every container exited with code 0 and none restarts.
pub const SUCCEEDED: &str = "Succeeded";
/// `Failed`: every container stopped, at least one in failure, and none restarts.
pub const FAILED: &str = "Failed";

/// The pod conditions a node agent writes; any other belongs to someone else (OpenKruise's
/// `InPlaceUpdateReady`, a readiness gate's controller) and is passed through untouched.
pub const NODE_OWNED_CONDITIONS: [&str; 5] = [
    "PodReadyToStartContainers",
    "Initialized",
    "Ready",
    "ContainersReady",
    "PodScheduled",
];

/// How one run of a container ended (`state.terminated` or `lastState.terminated`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Exit {
    /// The exit code (128 + signal for a signal).
    pub exit_code: i32,
    /// `Completed`, `Error`, `OOMKilled`, `StartError`, ...
    pub reason: Option<String>,
    /// Details, for start errors.
    pub message: Option<String>,
    /// When that run started.
    pub started_at: Option<Timestamp>,
    /// When it ended.
    pub finished_at: Option<Timestamp>,
    /// The run's container ID.
    pub container_id: Option<String>,
}

impl Exit {
    fn state(&self) -> ContainerState {
        ContainerState {
            terminated: Some(ContainerStateTerminated {
                exit_code: self.exit_code,
                reason: self.reason.clone(),
                message: self.message.clone(),
                started_at: self.started_at.map(|t| Time(whole_seconds(t))),
                finished_at: self.finished_at.map(|t| Time(whole_seconds(t))),
                container_id: self.container_id.clone(),
                ..ContainerStateTerminated::default()
            }),
            ..ContainerState::default()
        }
    }

    fn of(t: &ContainerStateTerminated) -> Exit {
        Exit {
            exit_code: t.exit_code,
            reason: t.reason.clone(),
            message: t.message.clone(),
            started_at: t.started_at.as_ref().map(|t| t.0),
            finished_at: t.finished_at.as_ref().map(|t| t.0),
            container_id: t.container_id.clone(),
        }
    }
}

/// Where a container is, as the node observed it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ObservedState {
    /// Not running: why (`ContainerCreating`, `PodInitializing`, `CrashLoopBackOff`, ...).
    Waiting {
        /// kubelet's waiting reason.
        reason: String,
        /// Details, such as the back-off message.
        message: Option<String>,
    },
    /// A process runs.
    Running {
        /// When it started.
        started_at: Timestamp,
    },
    /// The last run ended and the container is not (yet) restarted.
    Terminated(Exit),
}

/// What a node observed of one container: the record [`ObservedContainer::status`] turns into
/// the container's reported status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObservedContainer {
    /// The container's name.
    pub name: String,
    /// The image, as the status reports it.
    pub image: String,
    /// The image's ID (empty until pulled).
    pub image_id: String,
    /// The current (or last) run's container ID.
    pub container_id: Option<String>,
    /// Where it is.
    pub state: ObservedState,
    /// How the previous run ended.
    pub last_exit: Option<Exit>,
    /// `restartCount`.
    pub restart_count: i32,
    /// Whether its readiness probe (or the lack of one) calls the running container ready.
    pub ready: bool,
    /// Whether its startup probe (or the lack of one) calls the running container started.
    pub started: bool,
}

/// What kind of container a spec entry is, which decides how it counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ContainerKind {
    /// A regular init container: runs to completion before the next starts.
    Init,
    /// A restartable init container (`restartPolicy: Always`): starts in init order, then runs
    /// alongside the regular containers.
    Sidecar,
    /// A regular container.
    Regular,
}

impl ContainerKind {
    /// The kind of an entry of `spec.initContainers`.
    pub fn of_init(container: &Container) -> ContainerKind {
        if is_sidecar(container) {
            ContainerKind::Sidecar
        } else {
            ContainerKind::Init
        }
    }
}

/// Whether an init container is restartable (a sidecar): its `restartPolicy` is `Always`.
pub fn is_sidecar(container: &Container) -> bool {
    container.restart_policy.as_deref() == Some("Always")
}

impl ObservedContainer {
    /// The container's reported status. `ready` and `started` hold only for a running
    /// container, except that a regular init container that completed is reported ready, as
    /// kubelet's probe manager does.
    pub fn status(&self, kind: ContainerKind) -> ContainerStatus {
        let running = matches!(self.state, ObservedState::Running { .. });
        let completed_init = kind == ContainerKind::Init
            && matches!(&self.state, ObservedState::Terminated(exit) if exit.exit_code == 0);
        let state = match &self.state {
            ObservedState::Waiting { reason, message } => ContainerState {
                waiting: Some(ContainerStateWaiting {
                    reason: Some(reason.clone()),
                    message: message.clone(),
                }),
                ..ContainerState::default()
            },
            ObservedState::Running { started_at } => ContainerState {
                running: Some(ContainerStateRunning {
                    started_at: Some(Time(whole_seconds(*started_at))),
                }),
                ..ContainerState::default()
            },
            ObservedState::Terminated(exit) => exit.state(),
        };
        ContainerStatus {
            name: self.name.clone(),
            image: self.image.clone(),
            image_id: self.image_id.clone(),
            container_id: self.container_id.clone(),
            ready: completed_init || (running && self.ready),
            started: Some(running && self.started),
            restart_count: self.restart_count,
            state: Some(state),
            last_state: Some(self.last_exit.as_ref().map(Exit::state).unwrap_or_default()),
            ..ContainerStatus::default()
        }
    }

    /// The record a reported status describes (the inverse of [`ObservedContainer::status`]),
    /// for agents that keep their state in the pod's status.
    pub fn from_status(status: &ContainerStatus) -> ObservedContainer {
        let state = status.state.clone().unwrap_or_default();
        let observed = if let Some(running) = &state.running {
            ObservedState::Running {
                started_at: running
                    .started_at
                    .as_ref()
                    .map_or(Timestamp::UNIX_EPOCH, |t| t.0),
            }
        } else if let Some(terminated) = &state.terminated {
            ObservedState::Terminated(Exit::of(terminated))
        } else {
            let waiting = state.waiting.unwrap_or_default();
            ObservedState::Waiting {
                reason: waiting.reason.unwrap_or_default(),
                message: waiting.message,
            }
        };
        ObservedContainer {
            name: status.name.clone(),
            image: status.image.clone(),
            image_id: status.image_id.clone(),
            container_id: status.container_id.clone(),
            state: observed,
            last_exit: status
                .last_state
                .as_ref()
                .and_then(|s| s.terminated.as_ref())
                .map(Exit::of),
            restart_count: status.restart_count,
            ready: status.ready,
            started: status.started.unwrap_or(false),
        }
    }
}

fn find<'s>(statuses: &'s [ContainerStatus], name: &str) -> Option<&'s ContainerStatus> {
    statuses.iter().find(|s| s.name == name)
}

fn state_of(status: &ContainerStatus) -> ContainerState {
    status.state.clone().unwrap_or_default()
}

fn has_last_exit(status: &ContainerStatus) -> bool {
    status
        .last_state
        .as_ref()
        .is_some_and(|s| s.terminated.is_some())
}

/// Whether a regular container has started at least once (it runs or has run): from then on
/// the pod counts as initialized even while a sidecar restarts.
pub fn any_regular_container_started(spec: &PodSpec, statuses: &[ContainerStatus]) -> bool {
    spec.containers.iter().any(|c| {
        find(statuses, &c.name).is_some_and(|s| {
            let state = state_of(s);
            state.running.is_some() || state.terminated.is_some() || has_last_exit(s)
        })
    })
}

/// The pod phase, as kubelet's `getPhase` decides it from the container statuses.
///
/// `pod_is_terminal` says the pod will run nothing again (it is being deleted and its
/// containers stopped): stopped containers then end the pod whatever the restart policy.
pub fn pod_phase(
    spec: &PodSpec,
    init_statuses: &[ContainerStatus],
    statuses: &[ContainerStatus],
    pod_is_terminal: bool,
) -> &'static str {
    let policy = spec.restart_policy.as_deref().unwrap_or("Always");
    let initialized_before = any_regular_container_started(spec, statuses);
    let (mut pending_init, mut pending_sidecars, mut failed_init) = (0, 0, 0);
    let (mut unknown, mut running, mut waiting, mut stopped, mut succeeded) = (0, 0, 0, 0, 0);
    for container in spec.init_containers.as_deref().unwrap_or_default() {
        let Some(status) = find(init_statuses, &container.name) else {
            if is_sidecar(container) {
                unknown += 1;
            } else {
                pending_init += 1;
            }
            continue;
        };
        let state = state_of(status);
        if is_sidecar(container) {
            if state.running.is_some() {
                if status.started != Some(true) {
                    pending_sidecars += 1;
                }
                running += 1;
            } else if state.terminated.is_some() || has_last_exit(status) {
                // A stopped sidecar does not count for the phase.
            } else if state.waiting.is_some() {
                pending_sidecars += 1;
                waiting += 1;
            } else {
                pending_sidecars += 1;
                unknown += 1;
            }
            continue;
        }
        if state.running.is_some() {
            pending_init += 1;
        } else if let Some(t) = &state.terminated {
            if t.exit_code != 0 {
                failed_init += 1;
            }
        } else if state.waiting.is_some() {
            match status
                .last_state
                .as_ref()
                .and_then(|s| s.terminated.as_ref())
            {
                Some(last) if last.exit_code != 0 => failed_init += 1,
                Some(_) => {}
                None => pending_init += 1,
            }
        } else {
            pending_init += 1;
        }
    }
    for container in &spec.containers {
        let Some(status) = find(statuses, &container.name) else {
            unknown += 1;
            continue;
        };
        let state = state_of(status);
        if state.running.is_some() {
            running += 1;
        } else if let Some(t) = &state.terminated {
            stopped += 1;
            if t.exit_code == 0 {
                succeeded += 1;
            }
        } else if state.waiting.is_some() {
            if has_last_exit(status) {
                stopped += 1;
            } else {
                waiting += 1;
            }
        } else {
            unknown += 1;
        }
    }
    if failed_init > 0 && policy == "Never" {
        return FAILED;
    }
    if pending_init > 0 || (pending_sidecars > 0 && !initialized_before) || waiting > 0 {
        return PENDING;
    }
    if running > 0 && unknown == 0 {
        return RUNNING;
    }
    if running == 0 && stopped > 0 && unknown == 0 {
        if pod_is_terminal {
            return if stopped == succeeded {
                SUCCEEDED
            } else {
                FAILED
            };
        }
        return match policy {
            "Always" => RUNNING,
            _ if stopped == succeeded => SUCCEEDED,
            "Never" => FAILED,
            _ => RUNNING,
        };
    }
    PENDING
}

/// The phase a pod ends with once its containers were stopped for good: what [`pod_phase`]
/// says when that is terminal, `Failed` otherwise (kubelet fails a pod it terminated before
/// its containers all ran).
pub fn final_phase(phase: &'static str) -> &'static str {
    if phase == SUCCEEDED {
        SUCCEEDED
    } else {
        FAILED
    }
}

/// Whether a phase is `Succeeded` or `Failed`, which a pod never leaves.
pub fn is_terminal_phase(phase: &str) -> bool {
    phase == SUCCEEDED || phase == FAILED
}

/// A condition without its times: the part kubelet computes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConditionValue {
    /// `True` or `False`.
    pub ok: bool,
    /// The reason, when kubelet gives one.
    pub reason: Option<&'static str>,
    /// The message, when kubelet gives one.
    pub message: Option<String>,
}

impl ConditionValue {
    fn ok() -> ConditionValue {
        ConditionValue {
            ok: true,
            reason: None,
            message: None,
        }
    }

    fn ok_because(reason: &'static str) -> ConditionValue {
        ConditionValue {
            ok: true,
            reason: Some(reason),
            message: None,
        }
    }

    fn not(reason: &'static str, message: Option<String>) -> ConditionValue {
        ConditionValue {
            ok: false,
            reason: Some(reason),
            message,
        }
    }
}

/// Go's `%v` of a string slice: `[a b]`.
pub fn go_list(names: &[&str]) -> String {
    format!("[{}]", names.join(" "))
}

fn unready_message(unknown: &[&str], pending: &[&str], what: &str) -> Option<String> {
    let mut parts = Vec::new();
    if !unknown.is_empty() {
        parts.push(format!(
            "containers with unknown status: {}",
            go_list(unknown)
        ));
    }
    if !pending.is_empty() {
        parts.push(format!(
            "containers with {what} status: {}",
            go_list(pending)
        ));
    }
    (!parts.is_empty()).then(|| parts.join(", "))
}

/// kubelet's `Initialized` condition: every regular init container completed and every
/// sidecar started (or a regular container already started, so the pod initialized before).
pub fn initialized_condition(
    spec: &PodSpec,
    init_statuses: &[ContainerStatus],
    statuses: &[ContainerStatus],
    phase: &str,
) -> ConditionValue {
    let inits = spec.init_containers.as_deref().unwrap_or_default();
    if inits.is_empty() {
        return ConditionValue::ok();
    }
    let (mut unknown, mut incomplete) = (Vec::new(), Vec::new());
    for container in inits {
        let Some(status) = find(init_statuses, &container.name) else {
            unknown.push(container.name.as_str());
            continue;
        };
        let state = state_of(status);
        let complete = if is_sidecar(container) {
            status.started == Some(true)
        } else {
            state.terminated.as_ref().is_some_and(|t| t.exit_code == 0)
        };
        if !complete {
            incomplete.push(container.name.as_str());
        }
    }
    if phase == SUCCEEDED && unknown.is_empty() {
        return ConditionValue::ok_because("PodCompleted");
    }
    if any_regular_container_started(spec, statuses) {
        return ConditionValue::ok();
    }
    match unready_message(&unknown, &incomplete, "incomplete") {
        Some(message) => ConditionValue::not("ContainersNotInitialized", Some(message)),
        None => ConditionValue::ok(),
    }
}

/// kubelet's `ContainersReady` condition: every regular container and sidecar is ready.
pub fn containers_ready_condition(
    spec: &PodSpec,
    init_statuses: &[ContainerStatus],
    statuses: &[ContainerStatus],
    phase: &str,
) -> ConditionValue {
    let (mut unknown, mut unready) = (Vec::new(), Vec::new());
    let sidecars = spec
        .init_containers
        .as_deref()
        .unwrap_or_default()
        .iter()
        .filter(|c| is_sidecar(c))
        .map(|c| (c, init_statuses));
    let regular = spec.containers.iter().map(|c| (c, statuses));
    for (container, list) in sidecars.chain(regular) {
        match find(list, &container.name) {
            Some(status) if !status.ready => unready.push(container.name.as_str()),
            Some(_) => {}
            None => unknown.push(container.name.as_str()),
        }
    }
    if phase == SUCCEEDED && unknown.is_empty() {
        return ConditionValue::not("PodCompleted", None);
    }
    if phase == FAILED {
        return ConditionValue::not("PodFailed", None);
    }
    match unready_message(&unknown, &unready, "unready") {
        Some(message) => ConditionValue::not("ContainersNotReady", Some(message)),
        None => ConditionValue::ok(),
    }
}

/// kubelet's `Ready` condition: `ContainersReady`, then every readiness gate's condition (read
/// from `conditions`) `True`.
pub fn ready_condition(
    spec: &PodSpec,
    conditions: &[PodCondition],
    containers_ready: &ConditionValue,
) -> ConditionValue {
    if !containers_ready.ok {
        return containers_ready.clone();
    }
    let unmet = unmet_readiness_gates(spec, conditions);
    if unmet.is_empty() {
        ConditionValue::ok()
    } else {
        ConditionValue::not("ReadinessGatesNotReady", Some(unmet.join(", ")))
    }
}

/// kubelet's messages for `spec.readinessGates` whose condition is missing or not `True`.
pub fn unmet_readiness_gates(spec: &PodSpec, conditions: &[PodCondition]) -> Vec<String> {
    spec.readiness_gates
        .as_deref()
        .unwrap_or_default()
        .iter()
        .filter_map(
            |gate| match conditions.iter().find(|c| c.type_ == gate.condition_type) {
                None => Some(format!(
                    "corresponding condition of pod readiness gate \"{}\" does not exist.",
                    gate.condition_type
                )),
                Some(c) if c.status != "True" => Some(format!(
                    "the status of pod readiness gate \"{}\" is not \"True\", but {}",
                    gate.condition_type, c.status
                )),
                Some(_) => None,
            },
        )
        .collect()
}

/// The condition `type_` with `value`, keeping the previous `lastTransitionTime` (and the
/// generation it was stamped with) while its status stays.
pub fn condition(
    previous: &PodStatus,
    type_: &str,
    value: &ConditionValue,
    now: Timestamp,
) -> PodCondition {
    let status = if value.ok { "True" } else { "False" };
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
        reason: value.reason.map(str::to_string),
        message: value.message.clone(),
        last_transition_time,
        last_probe_time: None,
        // Stamped when written; kept here so an unchanged condition plans no write.
        observed_generation: before.and_then(|c| c.observed_generation),
    }
}

/// What the conditions are computed from.
#[derive(Clone, Copy, Debug)]
pub struct ConditionInputs<'a> {
    /// The pod's spec.
    pub spec: &'a PodSpec,
    /// The status reported before: transition times, `PodScheduled` and everyone else's
    /// conditions (readiness gates) come from it.
    pub previous: &'a PodStatus,
    /// The init containers' statuses.
    pub init_statuses: &'a [ContainerStatus],
    /// The regular containers' statuses.
    pub statuses: &'a [ContainerStatus],
    /// The phase [`pod_phase`] gave.
    pub phase: &'a str,
    /// Whether the sandbox (address, volumes) is up.
    pub sandbox_ready: bool,
    /// The time.
    pub now: Timestamp,
}

/// The pod's conditions in kubelet's order (`PodReadyToStartContainers`, `Initialized`,
/// `Ready`, `ContainersReady`, `PodScheduled`), then everyone else's unchanged.
pub fn pod_conditions(inputs: &ConditionInputs<'_>) -> Vec<PodCondition> {
    let ConditionInputs {
        spec,
        previous,
        init_statuses,
        statuses,
        phase,
        sandbox_ready,
        now,
    } = *inputs;
    let previous_conditions = previous.conditions.as_deref().unwrap_or_default();
    let sandbox = if sandbox_ready && !is_terminal_phase(phase) {
        ConditionValue::ok()
    } else {
        ConditionValue {
            ok: false,
            reason: None,
            message: None,
        }
    };
    let initialized = initialized_condition(spec, init_statuses, statuses, phase);
    let containers_ready = containers_ready_condition(spec, init_statuses, statuses, phase);
    let ready = ready_condition(spec, previous_conditions, &containers_ready);
    let mut out = vec![
        condition(previous, "PodReadyToStartContainers", &sandbox, now),
        condition(previous, "Initialized", &initialized, now),
        condition(previous, "Ready", &ready, now),
        condition(previous, "ContainersReady", &containers_ready, now),
    ];
    out.push(
        previous_conditions
            .iter()
            .find(|c| c.type_ == "PodScheduled" && c.status == "True")
            .cloned()
            .unwrap_or_else(|| condition(previous, "PodScheduled", &ConditionValue::ok(), now)),
    );
    out.extend(
        previous_conditions
            .iter()
            .filter(|c| !NODE_OWNED_CONDITIONS.contains(&c.type_.as_str()))
            .cloned(),
    );
    out
}

/// The observed containers of a pod, init containers in spec order, then regular ones.
#[derive(Clone, Debug, Default)]
pub struct ObservedPod {
    /// One record per init container that the node knows about.
    pub init_containers: Vec<ObservedContainer>,
    /// One record per regular container that the node knows about.
    pub containers: Vec<ObservedContainer>,
    /// Whether the sandbox (address, volumes) is up.
    pub sandbox_ready: bool,
    /// Whether the pod will run nothing again (deleted, its containers stopped).
    pub terminal: bool,
}

/// Fills `status` (which starts as the previous status with the addresses set) with the
/// container statuses, phase and conditions of `observed`. A pod that reached `Succeeded` or
/// `Failed` keeps that phase.
pub fn fill_pod_status(
    status: &mut PodStatus,
    spec: &PodSpec,
    previous: &PodStatus,
    observed: &ObservedPod,
    now: Timestamp,
) {
    let inits = spec.init_containers.as_deref().unwrap_or_default();
    let init_statuses: Vec<ContainerStatus> = observed
        .init_containers
        .iter()
        .map(|o| {
            let kind = inits
                .iter()
                .find(|c| c.name == o.name)
                .map_or(ContainerKind::Init, ContainerKind::of_init);
            o.status(kind)
        })
        .collect();
    let statuses: Vec<ContainerStatus> = observed
        .containers
        .iter()
        .map(|o| o.status(ContainerKind::Regular))
        .collect();
    let mut phase = pod_phase(spec, &init_statuses, &statuses, observed.terminal);
    if let Some(before) = previous.phase.as_deref().filter(|p| is_terminal_phase(p)) {
        if !is_terminal_phase(phase) {
            phase = if before == SUCCEEDED {
                SUCCEEDED
            } else {
                FAILED
            };
        }
    }
    if observed.terminal {
        phase = final_phase(phase);
    }
    status.conditions = Some(pod_conditions(&ConditionInputs {
        spec,
        previous,
        init_statuses: &init_statuses,
        statuses: &statuses,
        phase,
        sandbox_ready: observed.sandbox_ready,
        now,
    }));
    status.phase = Some(phase.to_string());
    status.init_container_statuses = (!init_statuses.is_empty()).then_some(init_statuses);
    status.container_statuses = Some(statuses);
}

#[cfg(test)]
mod tests;
