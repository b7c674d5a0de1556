//! The life of one pod on the real node, as a pure state machine.
//!
//! [`PodMachine::step`] takes one [`Input`] (a process started or exited, a probe answered,
//! the pod is being deleted, or just "look again") and the time, updates what the machine
//! knows about each container, and returns the [`Action`]s the shell must carry out: start or
//! kill a container, run a probe, record an event, confirm the deletion. The shell owns the
//! processes and the clock; the machine owns every decision kubelet makes: init containers in
//! order (sidecars started in their turn), restart policy, crash-loop and image-pull back-off,
//! probe thresholds. Pod phase, conditions and container statuses ([`PodMachine::status`]) come
//! from [`crate::status_core`], which simulated nodes use too.
//!
//! Two waits come before containers are stopped when the node has a traffic drain
//! ([`PodMachine::with_traffic_drain`]): a deleted pod's, and an in-place update's when
//! OpenKruise took the pod out of service first. The machine asks for it with [`Action::Drain`]
//! and goes on when [`Input::Drained`] answers or the grace period's deadline passes; the
//! time spent counts against the grace period.

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{
    Container, ContainerStatus, EphemeralContainer, HostIP, Pod, PodIP, PodSpec, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use tokio::time::Instant;

use super::backoff::Backoff;
use super::deadline;
use super::probe_timing::{ProbeKind, ProbeTiming, ProbeTracker};
use super::runtime::ProbeResult;
use crate::simulated::duration::{format_go_seconds, whole_seconds};
use crate::status_core::{
    self, is_sidecar, ConditionInputs, ContainerKind, Exit, ObservedContainer, ObservedState,
};

/// The readiness gate OpenKruise gives pods it may update in place; it turns the condition
/// False before changing a container's image, so services stop routing to the pod first.
pub const IN_PLACE_UPDATE_READY: &str = "InPlaceUpdateReady";

/// Whether OpenKruise took `pod` out of service for an in-place update: it has the
/// [`IN_PLACE_UPDATE_READY`] readiness gate and that condition is currently False.
pub fn taken_out_for_in_place_update(pod: &Pod) -> bool {
    let gated = pod
        .spec
        .as_ref()
        .and_then(|s| s.readiness_gates.as_ref())
        .is_some_and(|gates| {
            gates
                .iter()
                .any(|g| g.condition_type == IN_PLACE_UPDATE_READY)
        });
    gated
        && pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|conditions| {
                conditions
                    .iter()
                    .any(|c| c.type_ == IN_PLACE_UPDATE_READY && c.status == "False")
            })
}

/// How long `ErrImagePull` shows before the container turns `ImagePullBackOff`.
const PULL_ERROR_SHOWN: Duration = Duration::from_secs(1);

/// How long `ErrImagePull` shows: a second, or half the back-off when that is shorter, so
/// `ImagePullBackOff` always shows before the next pull.
fn pull_error_shown(backoff: &Backoff) -> Duration {
    PULL_ERROR_SHOWN.min(backoff.current() / 2)
}

/// Whether a waiting reason is one kubelet keeps reporting until a retry has a running
/// container to show (it never shows `ContainerCreating` for a retry).
fn is_back_off_reason(reason: &str) -> bool {
    matches!(
        reason,
        "CrashLoopBackOff"
            | "ErrImagePull"
            | "ImagePullBackOff"
            | "CreateContainerConfigError"
            | "ErrImageNeverPull"
            | "InvalidImageName"
            | "ImageInspectError"
    )
}

/// The time, as both clocks: monotonic for delays, wall for statuses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Now {
    /// For back-off, probes and deadlines.
    pub mono: Instant,
    /// For `startedAt`, `finishedAt` and conditions.
    pub wall: Timestamp,
}

impl Now {
    /// The current time.
    pub fn current() -> Now {
        Now {
            mono: Instant::now(),
            wall: Timestamp::now(),
        }
    }
}

/// `spec.restartPolicy`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RestartPolicy {
    /// Restart whenever a container exits.
    Always,
    /// Restart containers that failed.
    OnFailure,
    /// Never restart.
    Never,
}

impl RestartPolicy {
    /// The policy a spec names (`Always` when unset, as defaulting makes it).
    pub fn of(spec: &PodSpec) -> RestartPolicy {
        match spec.restart_policy.as_deref() {
            Some("OnFailure") => RestartPolicy::OnFailure,
            Some("Never") => RestartPolicy::Never,
            _ => RestartPolicy::Always,
        }
    }

    fn restarts(self, exit_code: i32) -> bool {
        match self {
            RestartPolicy::Always => true,
            RestartPolicy::OnFailure => exit_code != 0,
            RestartPolicy::Never => false,
        }
    }
}

/// How back-offs are tuned (kubelet: 10 s doubling to 300 s).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BackoffConfig {
    /// The first delay.
    pub base: Duration,
    /// The cap.
    pub max: Duration,
}

impl Default for BackoffConfig {
    fn default() -> Self {
        BackoffConfig {
            base: Duration::from_secs(10),
            max: Duration::from_secs(300),
        }
    }
}

/// How one run of a container ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Termination {
    /// The exit code (128 + signal for a signal).
    pub exit_code: i32,
    /// `Completed`, `Error`, `OOMKilled` or `StartError`.
    pub reason: String,
    /// A message, for start errors.
    pub message: Option<String>,
    /// When that run started.
    pub started_at: Timestamp,
    /// When it ended.
    pub finished_at: Timestamp,
    /// When it ended, on the monotonic clock.
    pub finished_mono: Instant,
    /// The run's container ID.
    pub container_id: String,
}

/// Where a container is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Not running: why, and since when on the monotonic clock.
    Waiting {
        /// `ContainerCreating`, `PodInitializing`, `CrashLoopBackOff`, `ErrImagePull`, ...
        reason: String,
        /// Details, such as the back-off message.
        message: Option<String>,
        /// When it began waiting for this reason.
        since: Instant,
    },
    /// A start was requested; waiting for the process.
    Starting,
    /// A process runs.
    Running {
        /// When it started.
        started_at: Timestamp,
        /// The run's container ID.
        container_id: String,
    },
    /// The last run ended and the container will not restart (or has not been told yet).
    Terminated(Termination),
}

/// Why a container start failed before any process ran.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StartFailure {
    /// The image could not be pulled (kubelet's `ErrImagePull`, then `ImagePullBackOff`).
    ImagePull,
    /// The image is not on this node and its pull policy is `Never` (`ErrImageNeverPull`).
    NeverPull,
    /// The image reference does not parse (`InvalidImageName`).
    InvalidImageName,
    /// The node's images could not be read (`ImageInspectError`).
    ImageInspect,
    /// The container's configuration cannot be made (a missing ConfigMap key, say).
    Config,
    /// The process could not be started.
    Runtime,
}

/// One container (init or regular) as the machine tracks it.
#[derive(Clone, Debug)]
pub struct ContainerTrack {
    /// Its name.
    pub name: String,
    /// The image of its current (or last) run, as its status reports it.
    pub image: String,
    /// The image the pod's spec asks for now; the next run uses it.
    pub spec_image: String,
    /// Its spec changed while it ran: it is stopped and started again whatever the restart
    /// policy, as kubelet does when a container's definition changes.
    pub replacing: bool,
    /// Whether it is an init container (a sidecar is one too).
    pub init: bool,
    /// Whether it is an ephemeral container (`kubectl debug`): started once when added, never
    /// restarted, and outside the pod's phase and conditions.
    pub ephemeral: bool,
    /// Whether it is a restartable init container (`restartPolicy: Always`): it starts in init
    /// order, counts as done once started, and then runs (and restarts) beside the containers.
    pub sidecar: bool,
    /// Where it is.
    pub phase: Phase,
    /// `restartCount`.
    pub restart_count: i32,
    /// How many runs were started.
    pub runs: u32,
    /// The previous run's end (`lastState.terminated`).
    pub last_termination: Option<Termination>,
    /// `imageID` of the running image.
    pub image_id: String,
    /// The image as the runtime names the current run's (`docker.io/library/nginx:1.25`);
    /// `None` reports the spec's spelling.
    pub runtime_image: Option<String>,
    /// The last pull's error, which `ImagePullBackOff` keeps showing (`ErrImagePull: ...`).
    last_pull_error: Option<String>,
    /// `started`.
    pub started: bool,
    /// `ready`.
    pub ready: bool,
    /// Probes of the current run.
    pub probes: Vec<ProbeTracker>,
    /// A kill is in progress.
    pub killing: bool,
    crash_backoff: Backoff,
    pull_backoff: Backoff,
    /// The back-off event was recorded for this wait.
    backoff_reported: bool,
    /// While a retry after a back-off starts: the waiting state and restart count to keep
    /// reporting, because kubelet only reports the new run once it exists.
    retry_shows: Option<RetryShows>,
    probe_specs: Vec<(ProbeKind, ProbeTiming)>,
}

impl ContainerTrack {
    /// A track for an ephemeral container just added to the pod: waiting to be created.
    fn ephemeral(c: &Container, backoff: BackoffConfig, now: Now) -> ContainerTrack {
        ContainerTrack {
            name: c.name.clone(),
            image: c.image.clone().unwrap_or_default(),
            spec_image: c.image.clone().unwrap_or_default(),
            replacing: false,
            init: false,
            ephemeral: true,
            sidecar: false,
            phase: Phase::Waiting {
                reason: "ContainerCreating".to_string(),
                message: None,
                since: now.mono,
            },
            restart_count: 0,
            runs: 0,
            last_termination: None,
            image_id: String::new(),
            runtime_image: None,
            last_pull_error: None,
            started: false,
            ready: false,
            probes: Vec::new(),
            killing: false,
            crash_backoff: Backoff::new(backoff.base, backoff.max),
            pull_backoff: Backoff::new(backoff.base, backoff.max),
            backoff_reported: false,
            retry_shows: None,
            probe_specs: Vec::new(),
        }
    }

    fn is_running(&self) -> bool {
        matches!(self.phase, Phase::Running { .. } | Phase::Starting)
    }

    fn succeeded(&self) -> bool {
        matches!(&self.phase, Phase::Terminated(t) if t.exit_code == 0)
    }
}

/// The pod's ephemeral containers as containers: the fields they share, which are all the
/// node needs to run one (`targetContainerName` aside, which the shell reads from the spec).
pub fn ephemeral_containers(spec: &PodSpec) -> Vec<Container> {
    spec.ephemeral_containers
        .iter()
        .flatten()
        .map(ephemeral_as_container)
        .collect()
}

/// One ephemeral container as a container.
pub fn ephemeral_as_container(e: &EphemeralContainer) -> Container {
    Container {
        name: e.name.clone(),
        image: e.image.clone(),
        image_pull_policy: e.image_pull_policy.clone(),
        command: e.command.clone(),
        args: e.args.clone(),
        working_dir: e.working_dir.clone(),
        env: e.env.clone(),
        env_from: e.env_from.clone(),
        volume_mounts: e.volume_mounts.clone(),
        volume_devices: e.volume_devices.clone(),
        security_context: e.security_context.clone(),
        stdin: e.stdin,
        stdin_once: e.stdin_once,
        tty: e.tty,
        termination_message_path: e.termination_message_path.clone(),
        termination_message_policy: e.termination_message_policy.clone(),
        ..Container::default()
    }
}

/// The end an ephemeral container's earlier run had, as its status reported it (a run still
/// reported running when the agent stopped ended with it, killed).
fn earlier_end(known: Option<&ContainerStatus>, now: Now) -> Termination {
    let terminated = known
        .and_then(|s| s.state.as_ref())
        .and_then(|st| st.terminated.as_ref());
    let time = |t: Option<&Time>| t.map(|t| t.0).unwrap_or(now.wall);
    match terminated {
        Some(t) => Termination {
            exit_code: t.exit_code,
            reason: t.reason.clone().unwrap_or_else(|| "Error".to_string()),
            message: t.message.clone(),
            started_at: time(t.started_at.as_ref()),
            finished_at: time(t.finished_at.as_ref()),
            finished_mono: now.mono,
            container_id: t.container_id.clone().unwrap_or_default(),
        },
        None => Termination {
            exit_code: 137,
            reason: "Error".to_string(),
            message: None,
            started_at: now.wall,
            finished_at: now.wall,
            finished_mono: now.mono,
            container_id: known
                .and_then(|s| s.container_id.clone())
                .unwrap_or_default(),
        },
    }
}

/// What a container's status keeps saying while a retry after a back-off is under way.
#[derive(Clone, Debug, PartialEq, Eq)]
struct RetryShows {
    reason: String,
    message: Option<String>,
    restart_count: i32,
}

/// What happened.
#[derive(Clone, Debug, PartialEq)]
pub enum Input {
    /// Nothing in particular: re-evaluate (timers, a new pod version).
    Sync,
    /// The sandbox (pod directory, volumes, address) is ready.
    SandboxReady,
    /// A container's process is running.
    Started {
        /// The container.
        container: String,
        /// Its image's ID.
        image_id: String,
        /// The image as the runtime names it; empty keeps the spec's spelling.
        image: String,
        /// Its container ID.
        container_id: String,
    },
    /// A container an earlier run of the agent started runs on, taken over as it is: its
    /// run keeps its start time and container ID, and the restart count the pod's status
    /// had (nothing is counted).
    Adopted {
        /// The container.
        container: String,
        /// When the run started (the pod's status says).
        started_at: Timestamp,
        /// Its container ID.
        container_id: String,
    },
    /// A container could not be started.
    StartFailed {
        /// The container.
        container: String,
        /// Why.
        failure: StartFailure,
        /// The error text.
        message: String,
    },
    /// A container's processes are all gone.
    Exited {
        /// The container.
        container: String,
        /// Its exit code.
        exit_code: i32,
        /// Whether the memory limit killed it.
        oom: bool,
    },
    /// A probe answered.
    Probed {
        /// The container.
        container: String,
        /// Which probe.
        kind: ProbeKind,
        /// The run it was for, so late answers about a previous run are dropped.
        run: u32,
        /// The outcome.
        result: ProbeResult,
    },
    /// A new version of the pod object: a container's image may have changed, or OpenKruise's
    /// readiness gate may have turned.
    Updated(Arc<Pod>),
    /// The traffic drain numbered `drain` finished: no proxy routes to the pod any more (or
    /// the drain gave up at its deadline).
    Drained {
        /// The drain, as [`Action::Drain`] numbered it.
        drain: u32,
    },
    /// The pod is being deleted: stop everything within `grace`, then confirm.
    Delete {
        /// The grace period left.
        grace: Duration,
    },
    /// The agent stops (or the pod vanished): stop everything within `grace`, confirm nothing.
    Stop {
        /// The grace period.
        grace: Duration,
    },
}

/// Event severity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Severity {
    /// `Normal`.
    Normal,
    /// `Warning`.
    Warning,
}

/// What the shell must do.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Start a run of a container, logging to its `restart_count`-th file.
    Start {
        /// The container.
        container: String,
        /// The run's `restartCount`.
        restart_count: i32,
        /// The run number, for probes.
        run: u32,
    },
    /// Stop a container's processes: preStop (if asked), SIGTERM, SIGKILL after `grace`.
    Kill {
        /// The container.
        container: String,
        /// The grace period; `None` for the pod's `terminationGracePeriodSeconds`.
        grace: Option<Duration>,
        /// Whether to run the preStop hook first.
        pre_stop: bool,
    },
    /// Run a probe.
    Probe {
        /// The container.
        container: String,
        /// Which probe.
        kind: ProbeKind,
        /// The run it is for.
        run: u32,
    },
    /// Record an event about the pod (or one of its containers).
    Event {
        /// Normal or Warning.
        severity: Severity,
        /// kubelet's reason.
        reason: &'static str,
        /// kubelet's message.
        message: String,
        /// The container it is about, for `fieldPath`.
        container: Option<String>,
    },
    /// Wait until no service proxy routes new connections to the pod, giving up at
    /// `deadline`, then answer with [`Input::Drained`]; containers stay untouched meanwhile.
    Drain {
        /// The drain's number, to tell a late answer from a current one.
        drain: u32,
        /// When to stop waiting (the end of the grace period).
        deadline: Instant,
    },
    /// Every process is gone: delete the pod object for good.
    ConfirmDeletion,
}

/// A traffic drain under way.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Draining {
    id: u32,
    deadline: Instant,
}

/// How the pod is being stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stopping {
    Delete { deadline: Instant },
    Stop { deadline: Instant },
}

/// The pod as the machine tracks it.
#[derive(Clone, Debug)]
pub struct PodMachine {
    /// `name_namespace(uid)`, as kubelet names pods in messages.
    pod_label: String,
    policy: RestartPolicy,
    /// The spec's containers and policies, which the status core reads.
    shape: PodSpec,
    /// Init containers first, in order, then regular containers.
    containers: Vec<ContainerTrack>,
    sandbox_ready: bool,
    stopping: Option<Stopping>,
    confirmed: bool,
    /// The terminal phase, once reached.
    terminal: Option<&'static str>,
    backoff: BackoffConfig,
    /// `terminationGracePeriodSeconds`.
    termination_grace: Duration,
    /// Whether to wait for proxies before stopping containers.
    drains_traffic: bool,
    /// OpenKruise took the pod out of service for an in-place update.
    out_of_service: bool,
    draining: Option<Draining>,
    drains_started: u32,
    /// The end of the grace period of replacements whose drain has begun.
    replace_deadline: Option<Instant>,
}

impl PodMachine {
    /// A machine for `pod`, picking up restart counts from the status it already has (after
    /// an agent restart, containers are started again and count as restarts).
    pub fn new(pod: &Pod, backoff: BackoffConfig, now: Now) -> PodMachine {
        let spec = pod.spec.clone().unwrap_or_default();
        let status = pod.status.clone().unwrap_or_default();
        let pod_label = format!(
            "{}_{}({})",
            pod.metadata.name.as_deref().unwrap_or(""),
            pod.metadata.namespace.as_deref().unwrap_or(""),
            pod.metadata.uid.as_deref().unwrap_or("")
        );
        let has_init = spec.init_containers.as_ref().is_some_and(|i| !i.is_empty());
        let mut containers = Vec::new();
        let inits = spec.init_containers.as_deref().unwrap_or_default();
        let ephemeral = ephemeral_containers(&spec);
        for (init, is_ephemeral, list, statuses) in [
            (
                true,
                false,
                inits,
                status.init_container_statuses.as_deref(),
            ),
            (
                false,
                false,
                &spec.containers[..],
                status.container_statuses.as_deref(),
            ),
            (
                false,
                true,
                &ephemeral[..],
                status.ephemeral_container_statuses.as_deref(),
            ),
        ] {
            for c in list {
                let sidecar = init && is_sidecar(c);
                let known = statuses
                    .unwrap_or_default()
                    .iter()
                    .find(|s| s.name == c.name);
                let ran_before = known.is_some_and(|s| {
                    s.state
                        .as_ref()
                        .is_some_and(|st| st.running.is_some() || st.terminated.is_some())
                        || s.last_state
                            .as_ref()
                            .is_some_and(|st| st.terminated.is_some())
                });
                let mut probe_specs = Vec::new();
                if !init || sidecar {
                    for (kind, probe) in [
                        (ProbeKind::Startup, &c.startup_probe),
                        (ProbeKind::Liveness, &c.liveness_probe),
                        (ProbeKind::Readiness, &c.readiness_probe),
                    ] {
                        if let Some(p) = probe {
                            probe_specs.push((kind, ProbeTiming::of(p)));
                        }
                    }
                }
                let reason = if (init || has_init) && !is_ephemeral {
                    "PodInitializing"
                } else {
                    "ContainerCreating"
                };
                let mut track = ContainerTrack {
                    name: c.name.clone(),
                    image: c.image.clone().unwrap_or_default(),
                    spec_image: c.image.clone().unwrap_or_default(),
                    replacing: false,
                    init,
                    ephemeral: is_ephemeral,
                    sidecar,
                    phase: Phase::Waiting {
                        reason: reason.to_string(),
                        message: None,
                        since: now.mono,
                    },
                    restart_count: known.map(|s| s.restart_count).unwrap_or(0),
                    runs: u32::from(ran_before),
                    last_termination: None,
                    image_id: known.map(|s| s.image_id.clone()).unwrap_or_default(),
                    runtime_image: None,
                    last_pull_error: None,
                    started: false,
                    ready: false,
                    probes: Vec::new(),
                    killing: false,
                    crash_backoff: Backoff::new(backoff.base, backoff.max),
                    pull_backoff: Backoff::new(backoff.base, backoff.max),
                    backoff_reported: false,
                    retry_shows: None,
                    probe_specs,
                };
                if is_ephemeral && ran_before {
                    // An ephemeral container runs once: after an agent restart it is not
                    // started again, and keeps the end it had.
                    track.phase = Phase::Terminated(earlier_end(known, now));
                }
                containers.push(track);
            }
        }
        PodMachine {
            pod_label,
            policy: RestartPolicy::of(&spec),
            shape: spec.clone(),
            containers,
            sandbox_ready: false,
            stopping: None,
            confirmed: false,
            terminal: None,
            backoff,
            termination_grace: deadline::seconds(
                spec.termination_grace_period_seconds.unwrap_or(30),
            ),
            drains_traffic: false,
            out_of_service: taken_out_for_in_place_update(pod),
            draining: None,
            drains_started: 0,
            replace_deadline: None,
        }
    }

    /// Makes the machine wait for service proxies to stop routing to the pod before it stops
    /// containers of a deleted pod or of one OpenKruise took out of service for an in-place
    /// update (when the node has a traffic drain and the pod its own address).
    pub fn with_traffic_drain(mut self, drains: bool) -> PodMachine {
        self.drains_traffic = drains;
        self
    }

    /// The containers, init containers first.
    pub fn containers(&self) -> &[ContainerTrack] {
        &self.containers
    }

    /// One container.
    pub fn container(&self, name: &str) -> Option<&ContainerTrack> {
        self.containers.iter().find(|c| c.name == name)
    }

    fn track(&mut self, name: &str) -> Option<&mut ContainerTrack> {
        self.containers.iter_mut().find(|c| c.name == name)
    }

    /// Whether the pod is being stopped (deleted or the agent stops).
    pub fn is_stopping(&self) -> bool {
        self.stopping.is_some()
    }

    /// Whether nothing runs and nothing will: the worker may end.
    pub fn is_done(&self) -> bool {
        let idle = !self.containers.iter().any(|c| c.is_running() || c.killing);
        match self.stopping {
            Some(Stopping::Delete { .. }) => idle && self.confirmed,
            Some(Stopping::Stop { .. }) => idle,
            None => false,
        }
    }

    /// Feeds one input and returns what to do.
    pub fn step(&mut self, input: Input, now: Now) -> Vec<Action> {
        let mut actions = Vec::new();
        self.apply(input, now, &mut actions);
        self.reconcile(now, &mut actions);
        actions
    }

    fn apply(&mut self, input: Input, now: Now, actions: &mut Vec<Action>) {
        match input {
            Input::Sync => {}
            Input::SandboxReady => self.sandbox_ready = true,
            Input::Started {
                container,
                image_id,
                image,
                container_id,
            } => {
                if let Some(c) = self.track(&container) {
                    c.runtime_image = (!image.is_empty()).then_some(image);
                    c.last_pull_error = None;
                    c.phase = Phase::Running {
                        started_at: now.wall,
                        container_id,
                    };
                    c.image_id = image_id;
                    c.replacing = c.spec_image != c.image;
                    c.probes = c
                        .probe_specs
                        .iter()
                        .map(|(kind, timing)| ProbeTracker::new(*kind, *timing, now.mono))
                        .collect();
                    c.started = !c.probes.iter().any(|p| p.kind() == ProbeKind::Startup);
                    c.ready =
                        c.started && !c.probes.iter().any(|p| p.kind() == ProbeKind::Readiness);
                    c.backoff_reported = false;
                }
            }
            Input::Adopted {
                container,
                started_at,
                container_id,
            } => self.adopt(&container, started_at, container_id, now),
            Input::StartFailed {
                container,
                failure,
                message,
            } => {
                let backoff = self.backoff;
                let Some(c) = self.track(&container) else {
                    return;
                };
                c.replacing = false;
                if failure != StartFailure::Runtime {
                    // No container was created, so the attempt is not a run: kubelet's
                    // restartCount stays where it was while a pull or a config keeps failing.
                    Self::forget_attempt(c);
                }
                match failure {
                    StartFailure::ImagePull => {
                        c.pull_backoff.next(now.mono, now.mono);
                        c.last_pull_error = Some(format!("ErrImagePull: {message}"));
                        let image = c.image.clone();
                        c.phase = Phase::Waiting {
                            reason: "ErrImagePull".to_string(),
                            message: Some(message.clone()),
                            since: now.mono,
                        };
                        c.backoff_reported = false;
                        actions.push(warning(
                            "Failed",
                            format!("Failed to pull image \"{image}\": {message}"),
                            &container,
                        ));
                        actions.push(warning("Failed", "Error: ErrImagePull".into(), &container));
                    }
                    StartFailure::Config => {
                        c.pull_backoff.next(now.mono, now.mono);
                        c.phase = Phase::Waiting {
                            reason: "CreateContainerConfigError".to_string(),
                            message: Some(message.clone()),
                            since: now.mono,
                        };
                        actions.push(warning("Failed", format!("Error: {message}"), &container));
                    }
                    StartFailure::NeverPull
                    | StartFailure::InvalidImageName
                    | StartFailure::ImageInspect => {
                        // No pull was tried, so no pull back-off: kubelet tries again at its
                        // next sync of the pod, which the first back-off step stands for.
                        c.pull_backoff = Backoff::new(backoff.base, backoff.max);
                        c.pull_backoff.next(now.mono, now.mono);
                        let reason = match failure {
                            StartFailure::NeverPull => "ErrImageNeverPull",
                            StartFailure::InvalidImageName => "InvalidImageName",
                            _ => "ImageInspectError",
                        };
                        c.phase = Phase::Waiting {
                            reason: reason.to_string(),
                            message: Some(message.clone()),
                            since: now.mono,
                        };
                        actions.push(warning("Failed", format!("Error: {reason}"), &container));
                    }
                    StartFailure::Runtime => {
                        c.phase = Phase::Terminated(Termination {
                            exit_code: 128,
                            reason: "StartError".to_string(),
                            message: Some(message.clone()),
                            started_at: now.wall,
                            finished_at: now.wall,
                            finished_mono: now.mono,
                            container_id: String::new(),
                        });
                        actions.push(warning("Failed", format!("Error: {message}"), &container));
                    }
                }
            }
            Input::Exited {
                container,
                exit_code,
                oom,
            } => {
                let Some(c) = self.track(&container) else {
                    return;
                };
                let (started_at, container_id) = match &c.phase {
                    Phase::Running {
                        started_at,
                        container_id,
                    } => (*started_at, container_id.clone()),
                    _ => (now.wall, String::new()),
                };
                let reason = if oom {
                    "OOMKilled"
                } else if exit_code == 0 {
                    "Completed"
                } else {
                    "Error"
                };
                c.phase = Phase::Terminated(Termination {
                    exit_code,
                    reason: reason.to_string(),
                    message: None,
                    started_at,
                    finished_at: now.wall,
                    finished_mono: now.mono,
                    container_id,
                });
                // Only a container stopped for its new definition restarts whatever the
                // policy; one that ended on its own follows the policy.
                if !c.killing {
                    c.replacing = false;
                }
                c.killing = false;
                c.started = false;
                c.ready = false;
                c.probes.clear();
            }
            Input::Probed {
                container,
                kind,
                run,
                result,
            } => self.on_probe(&container, kind, run, result, actions),
            Input::Updated(pod) => self.on_update(&pod, now),
            Input::Drained { drain } => {
                if self.draining.is_some_and(|d| d.id == drain) {
                    self.draining = None;
                }
            }
            Input::Delete { grace } => {
                let deadline = deadline::after(now.mono, grace);
                if matches!(self.stopping, Some(Stopping::Delete { .. })) {
                    self.shorten_grace(deadline, now, actions);
                } else {
                    let deadline = match self.stopping {
                        Some(Stopping::Stop { deadline: stop }) => stop.min(deadline),
                        _ => deadline,
                    };
                    self.stopping = Some(Stopping::Delete { deadline });
                    self.end_replacements();
                    let serving = self
                        .containers
                        .iter()
                        .any(|c| matches!(c.phase, Phase::Running { .. }) && !c.killing);
                    if self.drains_traffic && serving {
                        match &mut self.draining {
                            Some(draining) => draining.deadline = draining.deadline.min(deadline),
                            None => self.begin_drain(deadline, actions),
                        }
                    }
                }
            }
            Input::Stop { grace } => {
                // The agent is going away (or the pod already is): no waiting for proxies.
                self.draining = None;
                self.end_replacements();
                let deadline = deadline::after(now.mono, grace);
                if self.stopping.is_none() {
                    self.stopping = Some(Stopping::Stop { deadline });
                } else {
                    self.shorten_grace(deadline, now, actions);
                }
            }
        }
    }

    /// Takes over a running container: it counts as one run already made (so its next start
    /// is a restart), its probes begin again as at a start.
    fn adopt(&mut self, container: &str, started_at: Timestamp, container_id: String, now: Now) {
        let Some(c) = self.track(container) else {
            return;
        };
        c.runs = c.runs.max(1);
        c.phase = Phase::Running {
            started_at,
            container_id,
        };
        c.probes = c
            .probe_specs
            .iter()
            .map(|(kind, timing)| ProbeTracker::new(*kind, *timing, now.mono))
            .collect();
        c.started = !c.probes.iter().any(|p| p.kind() == ProbeKind::Startup);
        c.ready = c.started && !c.probes.iter().any(|p| p.kind() == ProbeKind::Readiness);
    }

    /// A second deletion or stop may only shorten the grace period, as kubelet's does: the
    /// deadline moves earlier and containers already stopping are signalled again with what
    /// is left of it (their preStop hooks are not run twice).
    fn shorten_grace(&mut self, deadline: Instant, now: Now, actions: &mut Vec<Action>) {
        let Some(stopping) = self.stopping.as_mut() else {
            return;
        };
        let current = match stopping {
            Stopping::Delete { deadline } | Stopping::Stop { deadline } => deadline,
        };
        if deadline >= *current {
            return;
        }
        *current = deadline;
        if let Some(draining) = &mut self.draining {
            draining.deadline = draining.deadline.min(deadline);
        }
        let grace = deadline.saturating_duration_since(now.mono);
        for c in &self.containers {
            if c.killing && c.is_running() {
                actions.push(Action::Kill {
                    container: c.name.clone(),
                    grace: Some(grace),
                    pre_stop: false,
                });
            }
        }
    }

    /// Takes in a new version of the pod: containers whose image changed are marked for
    /// replacement (or, when not running, simply use the new image next time).
    fn on_update(&mut self, pod: &Pod, now: Now) {
        self.out_of_service = taken_out_for_in_place_update(pod);
        let Some(spec) = pod.spec.as_ref() else {
            return;
        };
        let backoff = self.backoff;
        let stopping = self.stopping.is_some();
        for added in ephemeral_containers(spec) {
            if self.track(&added.name).is_none() {
                self.containers
                    .push(ContainerTrack::ephemeral(&added, backoff, now));
            }
        }
        for container in spec
            .init_containers
            .iter()
            .flatten()
            .chain(spec.containers.iter())
        {
            let image = container.image.clone().unwrap_or_default();
            let Some(c) = self.track(&container.name) else {
                continue;
            };
            if c.spec_image == image {
                continue;
            }
            c.spec_image = image;
            if c.init {
                continue;
            }
            // kubelet keys back-offs by the container's definition: a new one starts afresh.
            c.crash_backoff = Backoff::new(backoff.base, backoff.max);
            c.pull_backoff = Backoff::new(backoff.base, backoff.max);
            if !c.killing && !stopping {
                c.replacing = c.is_running() && c.spec_image != c.image;
            }
        }
    }

    /// A pod being stopped replaces nothing.
    fn end_replacements(&mut self) {
        self.replace_deadline = None;
        for c in &mut self.containers {
            c.replacing = false;
        }
    }

    fn begin_drain(&mut self, deadline: Instant, actions: &mut Vec<Action>) {
        self.drains_started += 1;
        self.draining = Some(Draining {
            id: self.drains_started,
            deadline,
        });
        actions.push(Action::Drain {
            drain: self.drains_started,
            deadline,
        });
    }

    /// Stops running containers whose definition changed, after a traffic drain when
    /// OpenKruise took the pod out of service; [`PodMachine::advance`] starts them again.
    fn stop_replaced(&mut self, now: Now, actions: &mut Vec<Action>) {
        let due: Vec<usize> = (0..self.containers.len())
            .filter(|&i| {
                let c = &self.containers[i];
                c.replacing && !c.killing && matches!(c.phase, Phase::Running { .. })
            })
            .collect();
        if self.draining.is_some() {
            return;
        }
        if due.is_empty() {
            self.replace_deadline = None;
            return;
        }
        let grace = match self.replace_deadline.take() {
            Some(deadline) => Some(deadline.saturating_duration_since(now.mono)),
            None if self.drains_traffic && self.out_of_service => {
                let deadline = deadline::after(now.mono, self.termination_grace);
                self.replace_deadline = Some(deadline);
                self.begin_drain(deadline, actions);
                return;
            }
            None => None,
        };
        for i in due {
            let c = &mut self.containers[i];
            c.killing = true;
            c.ready = false;
            actions.push(Action::Event {
                severity: Severity::Normal,
                reason: "Killing",
                message: format!("Container {} definition changed, will be restarted", c.name),
                container: Some(c.name.clone()),
            });
            actions.push(Action::Kill {
                container: c.name.clone(),
                grace,
                pre_stop: true,
            });
        }
    }

    fn on_probe(
        &mut self,
        container: &str,
        kind: ProbeKind,
        run: u32,
        result: ProbeResult,
        actions: &mut Vec<Action>,
    ) {
        let stopping = self.stopping.is_some();
        let Some(c) = self.track(container) else {
            return;
        };
        if c.runs != run || !matches!(c.phase, Phase::Running { .. }) || c.killing {
            return;
        }
        let Some(tracker) = c.probes.iter_mut().find(|p| p.kind() == kind) else {
            return;
        };
        let success = result == ProbeResult::Success;
        if let ProbeResult::Failure(message) = &result {
            actions.push(warning(
                "Unhealthy",
                format!("{} probe failed: {}", kind.title(), message.trim_end()),
                container,
            ));
        }
        let flipped = tracker.record(success);
        match (kind, flipped) {
            (ProbeKind::Startup, Some(true)) => {
                c.started = true;
                c.ready = !c.probes.iter().any(|p| p.kind() == ProbeKind::Readiness);
            }
            (ProbeKind::Readiness, Some(ready)) => c.ready = ready,
            (ProbeKind::Liveness | ProbeKind::Startup, Some(false)) if !stopping => {
                c.killing = true;
                c.ready = false;
                actions.push(Action::Event {
                    severity: Severity::Normal,
                    reason: "Killing",
                    message: format!(
                        "Container {container} failed {} probe, will be restarted",
                        kind.word()
                    ),
                    container: Some(container.to_string()),
                });
                actions.push(Action::Kill {
                    container: container.to_string(),
                    grace: None,
                    pre_stop: true,
                });
            }
            _ => {}
        }
    }

    fn reconcile(&mut self, now: Now, actions: &mut Vec<Action>) {
        if self.draining.is_some_and(|d| now.mono >= d.deadline) {
            // The grace period is over: stop waiting for proxies.
            self.draining = None;
        }
        if let Some(stopping) = self.stopping {
            let deadline = match stopping {
                Stopping::Delete { deadline } | Stopping::Stop { deadline } => deadline,
            };
            let grace = deadline.saturating_duration_since(now.mono);
            let draining = self.draining.is_some();
            for c in &mut self.containers {
                if matches!(c.phase, Phase::Running { .. }) && !c.killing && !draining {
                    c.killing = true;
                    actions.push(Action::Event {
                        severity: Severity::Normal,
                        reason: "Killing",
                        message: format!("Stopping container {}", c.name),
                        container: Some(c.name.clone()),
                    });
                    actions.push(Action::Kill {
                        container: c.name.clone(),
                        grace: Some(grace),
                        pre_stop: true,
                    });
                }
            }
            let idle = !self.containers.iter().any(|c| c.is_running() || c.killing);
            if idle && matches!(stopping, Stopping::Delete { .. }) && !self.confirmed {
                self.confirmed = true;
                actions.push(Action::ConfirmDeletion);
            }
            return;
        }
        if self.terminal.is_some() || !self.sandbox_ready {
            return;
        }
        // Init containers, one at a time, in order; a sidecar is done once it started. Once a
        // regular container ran, the pod stays initialized while a sidecar restarts.
        let mut initialized = self.containers.iter().any(|c| {
            !c.init
                && !c.ephemeral
                && (matches!(c.phase, Phase::Running { .. } | Phase::Terminated(_))
                    || c.last_termination.is_some())
        });
        if !initialized {
            initialized = true;
            for i in 0..self.containers.len() {
                let c = &self.containers[i];
                let done = if c.sidecar {
                    c.started && matches!(c.phase, Phase::Running { .. })
                } else {
                    c.succeeded()
                };
                if !c.init || done {
                    continue;
                }
                initialized = false;
                self.advance(i, now, actions);
                break;
            }
        }
        // Ephemeral containers start as soon as they are added, initialized or not.
        for i in 0..self.containers.len() {
            if self.containers[i].ephemeral {
                self.advance(i, now, actions);
            }
        }
        if initialized {
            for i in 0..self.containers.len() {
                if !self.containers[i].init && !self.containers[i].ephemeral {
                    self.advance(i, now, actions);
                }
            }
            // Sidecars serve the containers: once every container has exited for good, they
            // are stopped (and not restarted), so the pod can complete.
            let containers_done = self
                .containers
                .iter()
                .filter(|c| !c.init && !c.ephemeral)
                .all(|c| matches!(c.phase, Phase::Terminated(_)));
            for i in 0..self.containers.len() {
                if !self.containers[i].sidecar {
                    continue;
                }
                if containers_done {
                    self.stop_sidecar(i, actions);
                } else {
                    self.advance(i, now, actions);
                }
            }
        }
        self.stop_replaced(now, actions);
        // Probes of running containers.
        for c in &mut self.containers {
            if !matches!(c.phase, Phase::Running { .. }) || c.killing {
                continue;
            }
            let started = c.started;
            for tracker in &mut c.probes {
                let eligible = match tracker.kind() {
                    ProbeKind::Startup => !started,
                    _ => started,
                };
                if eligible && tracker.is_due(now.mono) {
                    tracker.begin(now.mono);
                    actions.push(Action::Probe {
                        container: c.name.clone(),
                        kind: tracker.kind(),
                        run: c.runs,
                    });
                }
            }
        }
        let phase = self.phase();
        if phase == "Succeeded" || phase == "Failed" {
            self.terminal = Some(phase);
        }
    }

    /// Stops a running sidecar whose containers all ended, with the pod's grace period.
    fn stop_sidecar(&mut self, i: usize, actions: &mut Vec<Action>) {
        let c = &mut self.containers[i];
        if !matches!(c.phase, Phase::Running { .. }) || c.killing {
            return;
        }
        c.killing = true;
        c.ready = false;
        actions.push(Action::Event {
            severity: Severity::Normal,
            reason: "Killing",
            message: format!("Stopping container {}", c.name),
            container: Some(c.name.clone()),
        });
        actions.push(Action::Kill {
            container: c.name.clone(),
            grace: None,
            pre_stop: true,
        });
    }

    /// Moves one container on: start it, restart it, or keep it waiting.
    fn advance(&mut self, i: usize, now: Now, actions: &mut Vec<Action>) {
        let policy = self.policy;
        let pod_label = self.pod_label.clone();
        let c = &mut self.containers[i];
        // Sidecars always restart; init containers restart on failure unless the policy is
        // Never.
        let restarts = |code: i32| {
            if c.ephemeral {
                false
            } else if c.sidecar {
                true
            } else if c.init {
                policy != RestartPolicy::Never && code != 0
            } else {
                policy.restarts(code)
            }
        };
        match c.phase.clone() {
            Phase::Starting | Phase::Running { .. } => {}
            Phase::Terminated(t) => {
                if !restarts(t.exit_code) && !c.replacing {
                    return;
                }
                let finished = t.finished_mono;
                c.last_termination = Some(t);
                if c.crash_backoff.in_backoff_since(finished, now.mono) {
                    Self::crash_wait(c, &pod_label, now, actions);
                } else {
                    c.crash_backoff.next(finished, now.mono);
                    Self::start(c, actions);
                }
            }
            Phase::Waiting { reason, since, .. } => match reason.as_str() {
                "CrashLoopBackOff" => {
                    let finished = c
                        .last_termination
                        .as_ref()
                        .map(|t| t.finished_mono)
                        .unwrap_or(since);
                    if !c.crash_backoff.in_backoff_since(finished, now.mono) {
                        c.crash_backoff.next(finished, now.mono);
                        Self::start(c, actions);
                    }
                }
                "ErrImagePull"
                | "ImagePullBackOff"
                | "CreateContainerConfigError"
                | "ErrImageNeverPull"
                | "InvalidImageName"
                | "ImageInspectError" => {
                    if !c.pull_backoff.in_backoff_since(since, now.mono) {
                        Self::start(c, actions);
                    } else if reason == "ErrImagePull"
                        && now.mono.saturating_duration_since(since)
                            >= pull_error_shown(&c.pull_backoff)
                    {
                        let image = c.image.clone();
                        let shown = match &c.last_pull_error {
                            Some(error) => format!("Back-off pulling image \"{image}\": {error}"),
                            None => format!("Back-off pulling image \"{image}\""),
                        };
                        c.phase = Phase::Waiting {
                            reason: "ImagePullBackOff".to_string(),
                            message: Some(shown),
                            since,
                        };
                        actions.push(Action::Event {
                            severity: Severity::Normal,
                            reason: "BackOff",
                            message: format!("Back-off pulling image \"{image}\""),
                            container: Some(c.name.clone()),
                        });
                        actions.push(warning("Failed", "Error: ImagePullBackOff".into(), &c.name));
                    }
                }
                _ => Self::start(c, actions),
            },
        }
    }

    fn crash_wait(c: &mut ContainerTrack, pod_label: &str, now: Now, actions: &mut Vec<Action>) {
        let delay = format_go_seconds(c.crash_backoff.current().as_secs());
        c.phase = Phase::Waiting {
            reason: "CrashLoopBackOff".to_string(),
            message: Some(format!(
                "back-off {delay} restarting failed container={} pod={pod_label}",
                c.name
            )),
            since: now.mono,
        };
        if !c.backoff_reported {
            c.backoff_reported = true;
            actions.push(warning(
                "BackOff",
                format!(
                    "Back-off restarting failed container {} in pod {pod_label}",
                    c.name
                ),
                &c.name,
            ));
        }
    }

    fn start(c: &mut ContainerTrack, actions: &mut Vec<Action>) {
        c.retry_shows = match &c.phase {
            Phase::Waiting {
                reason, message, ..
            } if is_back_off_reason(reason) => Some(RetryShows {
                reason: reason.clone(),
                message: message.clone(),
                restart_count: c.restart_count,
            }),
            _ => None,
        };
        if c.runs > 0 {
            c.restart_count += 1;
        }
        c.runs += 1;
        if c.image != c.spec_image {
            c.runtime_image = None;
        }
        c.image = c.spec_image.clone();
        c.phase = Phase::Starting;
        c.backoff_reported = false;
        actions.push(Action::Start {
            container: c.name.clone(),
            restart_count: c.restart_count,
            run: c.runs,
        });
    }

    /// Undoes the counting [`PodMachine::start`] did for an attempt that never ran.
    fn forget_attempt(c: &mut ContainerTrack) {
        if matches!(c.phase, Phase::Starting) {
            c.retry_shows = None;
            c.runs = c.runs.saturating_sub(1);
            if c.runs > 0 {
                c.restart_count = c.restart_count.saturating_sub(1).max(0);
            }
        }
    }

    /// When the machine next needs a [`Input::Sync`] without anything else happening.
    pub fn next_wake(&self) -> Option<Instant> {
        let drain_ends = self.draining.map(|d| d.deadline);
        if self.stopping.is_some() || self.terminal.is_some() {
            return drain_ends;
        }
        let mut wake: Option<Instant> = None;
        let mut consider = |at: Instant| {
            wake = Some(wake.map_or(at, |w| w.min(at)));
        };
        if let Some(at) = drain_ends {
            consider(at);
        }
        for c in &self.containers {
            match &c.phase {
                Phase::Waiting { reason, since, .. } => match reason.as_str() {
                    "CrashLoopBackOff" => {
                        let finished = c
                            .last_termination
                            .as_ref()
                            .map(|t| t.finished_mono)
                            .unwrap_or(*since);
                        consider(c.crash_backoff.ends_at(finished));
                    }
                    "ErrImagePull" => {
                        consider(deadline::after(*since, pull_error_shown(&c.pull_backoff)));
                    }
                    "ImagePullBackOff"
                    | "CreateContainerConfigError"
                    | "ErrImageNeverPull"
                    | "InvalidImageName"
                    | "ImageInspectError" => {
                        consider(c.pull_backoff.ends_at(*since));
                    }
                    _ => {}
                },
                Phase::Running { .. } if !c.killing => {
                    for tracker in &c.probes {
                        let eligible = match tracker.kind() {
                            ProbeKind::Startup => !c.started,
                            _ => c.started,
                        };
                        if let (true, Some(at)) = (eligible, tracker.next_due()) {
                            consider(at);
                        }
                    }
                }
                _ => {}
            }
        }
        wake
    }

    /// The observed record of every container, init containers first, as the status core
    /// reads them.
    fn observed(&self) -> (Vec<ObservedContainer>, Vec<ObservedContainer>) {
        let (inits, regular): (Vec<&ContainerTrack>, Vec<&ContainerTrack>) = self
            .containers
            .iter()
            .filter(|c| !c.ephemeral)
            .partition(|c| c.init);
        (
            inits.into_iter().map(observe).collect(),
            regular.into_iter().map(observe).collect(),
        )
    }

    /// Whether the pod was deleted and nothing of it runs any more.
    fn stopped_for_good(&self) -> bool {
        matches!(self.stopping, Some(Stopping::Delete { .. }))
            && !self.containers.iter().any(|c| c.is_running() || c.killing)
    }

    /// The pod phase, as the status core decides it from the container statuses.
    pub fn phase(&self) -> &'static str {
        if let Some(terminal) = self.terminal {
            return terminal;
        }
        let (inits, regular) = self.observed();
        let statuses = |list: &[ObservedContainer], kind: ContainerKind| -> Vec<ContainerStatus> {
            list.iter().map(|o| o.status(kind)).collect()
        };
        let init_statuses = self.init_statuses(&inits);
        // kubelet stops and starts a container replaced for a new definition in one pass, so
        // its phase never sees the gap between the two.
        let regular: Vec<ObservedContainer> = regular
            .into_iter()
            .map(|mut o| {
                let replacing = self
                    .container(&o.name)
                    .is_some_and(|c| c.replacing && matches!(c.phase, Phase::Starting));
                if replacing {
                    o.state = ObservedState::Running {
                        started_at: Timestamp::UNIX_EPOCH,
                    };
                }
                o
            })
            .collect();
        let phase = status_core::pod_phase(
            &self.shape,
            &init_statuses,
            &statuses(&regular, ContainerKind::Regular),
            matches!(self.stopping, Some(Stopping::Delete { .. })),
        );
        if self.stopped_for_good() {
            status_core::final_phase(phase)
        } else {
            phase
        }
    }

    fn init_statuses(&self, inits: &[ObservedContainer]) -> Vec<ContainerStatus> {
        inits
            .iter()
            .map(|o| {
                let sidecar = self.container(&o.name).is_some_and(|c| c.sidecar);
                o.status(if sidecar {
                    ContainerKind::Sidecar
                } else {
                    ContainerKind::Init
                })
            })
            .collect()
    }

    /// The status to report: phase, conditions, addresses and container statuses, keeping
    /// what others wrote (`qosClass`, foreign conditions) and transition times that did not
    /// change.
    pub fn status(
        &self,
        pod: &Pod,
        host_ip: &str,
        pod_ip: Option<&str>,
        now: Timestamp,
    ) -> PodStatus {
        let spec = pod.spec.clone().unwrap_or_default();
        let previous = pod.status.clone().unwrap_or_default();
        let phase = self.phase();
        let (inits, regular) = self.observed();
        let init_statuses = self.init_statuses(&inits);
        let statuses: Vec<ContainerStatus> = regular
            .iter()
            .map(|o| o.status(ContainerKind::Regular))
            .collect();
        // Ephemeral containers are never ready: they serve no one.
        let ephemeral_statuses: Vec<ContainerStatus> = self
            .containers
            .iter()
            .filter(|c| c.ephemeral)
            .map(|c| ContainerStatus {
                ready: false,
                ..observe(c).status(ContainerKind::Regular)
            })
            .collect();
        let conditions = status_core::pod_conditions(&ConditionInputs {
            spec: &spec,
            previous: &previous,
            init_statuses: &init_statuses,
            statuses: &statuses,
            phase,
            sandbox_ready: self.sandbox_ready && !self.is_done(),
            now,
        });
        PodStatus {
            phase: Some(phase.to_string()),
            host_ip: Some(host_ip.to_string()),
            host_ips: Some(vec![HostIP {
                ip: host_ip.to_string(),
            }]),
            start_time: previous
                .start_time
                .clone()
                .or_else(|| Some(Time(whole_seconds(now)))),
            pod_ip: pod_ip.map(str::to_string),
            pod_ips: pod_ip.map(|ip| vec![PodIP { ip: ip.to_string() }]),
            init_container_statuses: (!init_statuses.is_empty()).then_some(init_statuses),
            container_statuses: Some(statuses),
            ephemeral_container_statuses: (!ephemeral_statuses.is_empty())
                .then_some(ephemeral_statuses),
            conditions: Some(conditions),
            ..previous
        }
    }
}

/// The pod conditions the node agent writes; any other belongs to someone else.
const OWNED_CONDITIONS: [&str; 5] = status_core::NODE_OWNED_CONDITIONS;

/// The status to build on: what the agent last wrote, with the conditions others own taken
/// from the newest pod object, so a condition written since (a readiness gate turning, say)
/// is neither lost nor overwritten with an older value.
pub fn with_foreign_conditions(ours: &PodStatus, newest: Option<&PodStatus>) -> PodStatus {
    let mut merged = ours.clone();
    let owned = ours
        .conditions
        .iter()
        .flatten()
        .filter(|c| OWNED_CONDITIONS.contains(&c.type_.as_str()));
    let foreign = newest
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .filter(|c| !OWNED_CONDITIONS.contains(&c.type_.as_str()));
    let conditions: Vec<_> = owned.chain(foreign).cloned().collect();
    merged.conditions = (!conditions.is_empty()).then_some(conditions);
    merged
}

fn warning(reason: &'static str, message: String, container: &str) -> Action {
    Action::Event {
        severity: Severity::Warning,
        reason,
        message,
        container: Some(container.to_string()),
    }
}

fn exit_of(t: &Termination) -> Exit {
    Exit {
        exit_code: t.exit_code,
        reason: Some(t.reason.clone()),
        message: t.message.clone(),
        started_at: Some(t.started_at),
        finished_at: Some(t.finished_at),
        container_id: (!t.container_id.is_empty()).then(|| t.container_id.clone()),
    }
}

/// What the machine knows of one container, as the status core's record: a retry after a
/// back-off keeps showing the back-off until its container runs, and a start under way shows
/// `PodInitializing` (a first init run) or `ContainerCreating`.
fn observe(c: &ContainerTrack) -> ObservedContainer {
    let last_id = || {
        c.last_termination
            .as_ref()
            .map(|t| t.container_id.clone())
            .filter(|id| !id.is_empty())
    };
    let (state, container_id) = match &c.phase {
        Phase::Waiting {
            reason, message, ..
        } => (
            ObservedState::Waiting {
                reason: reason.clone(),
                message: message.clone(),
            },
            last_id(),
        ),
        Phase::Starting => match &c.retry_shows {
            Some(shown) => (
                ObservedState::Waiting {
                    reason: shown.reason.clone(),
                    message: shown.message.clone(),
                },
                last_id(),
            ),
            None => (
                ObservedState::Waiting {
                    reason: if c.init && !c.sidecar && c.runs <= 1 {
                        "PodInitializing".to_string()
                    } else {
                        "ContainerCreating".to_string()
                    },
                    message: None,
                },
                None,
            ),
        },
        Phase::Running {
            started_at,
            container_id,
        } => (
            ObservedState::Running {
                started_at: *started_at,
            },
            Some(container_id.clone()),
        ),
        Phase::Terminated(t) => (
            ObservedState::Terminated(exit_of(t)),
            (!t.container_id.is_empty()).then(|| t.container_id.clone()),
        ),
    };
    ObservedContainer {
        name: c.name.clone(),
        image: c.runtime_image.clone().unwrap_or_else(|| c.image.clone()),
        image_id: c.image_id.clone(),
        container_id,
        state,
        last_exit: c.last_termination.as_ref().map(exit_of),
        restart_count: match (&c.phase, &c.retry_shows) {
            (Phase::Starting, Some(shown)) => shown.restart_count,
            _ => c.restart_count,
        },
        ready: c.ready,
        started: c.started,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(spec: serde_json::Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "p", "namespace": "ns", "uid": "u1"},
            "spec": spec,
        }))
        .unwrap()
    }

    struct Clock {
        origin: Now,
        offset: Duration,
    }

    impl Clock {
        fn new() -> Clock {
            Clock {
                origin: Now::current(),
                offset: Duration::ZERO,
            }
        }
        fn at(&mut self, ms: u64) -> Now {
            self.offset = Duration::from_millis(ms);
            Now {
                mono: self.origin.mono + self.offset,
                wall: self.origin.wall + jiff::SignedDuration::try_from(self.offset).unwrap(),
            }
        }
    }

    fn starts(actions: &[Action]) -> Vec<(String, i32)> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Start {
                    container,
                    restart_count,
                    ..
                } => Some((container.clone(), *restart_count)),
                _ => None,
            })
            .collect()
    }

    fn reasons(actions: &[Action]) -> Vec<&'static str> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Event { reason, .. } => Some(*reason),
                _ => None,
            })
            .collect()
    }

    fn waiting_reason(m: &PodMachine, name: &str) -> Option<String> {
        match &m.container(name)?.phase {
            Phase::Waiting { reason, .. } => Some(reason.clone()),
            _ => None,
        }
    }

    fn started(name: &str) -> Input {
        Input::Started {
            container: name.into(),
            image_id: "img".into(),
            image: String::new(),
            container_id: format!("skiff://{name}"),
        }
    }

    fn exited(name: &str, code: i32) -> Input {
        Input::Exited {
            container: name.into(),
            exit_code: code,
            oom: false,
        }
    }

    fn backoff() -> BackoffConfig {
        BackoffConfig {
            base: Duration::from_secs(10),
            max: Duration::from_secs(300),
        }
    }

    #[test]
    fn an_adopted_container_keeps_its_run_and_its_next_start_is_a_restart() {
        let mut clock = Clock::new();
        let mut p = pod(json!({"containers": [{"name": "a"}, {"name": "b"}]}));
        p.status = serde_json::from_value(json!({
            "containerStatuses": [
                {"name": "a", "restartCount": 2, "ready": true, "image": "x", "imageID": "x",
                 "state": {"running": {"startedAt": "2026-01-02T03:04:05Z"}}},
                {"name": "b", "restartCount": 0, "ready": true, "image": "x", "imageID": "x",
                 "state": {"running": {"startedAt": "2026-01-02T03:04:05Z"}}}
            ]
        }))
        .unwrap();
        let mut m = PodMachine::new(&p, backoff(), clock.at(0));
        let started_at: Timestamp = "2026-01-02T03:04:05Z".parse().unwrap();
        for name in ["a", "b"] {
            let adopted = Input::Adopted {
                container: name.into(),
                started_at,
                container_id: format!("skiff://u1/{name}/0"),
            };
            assert!(starts(&m.step(adopted, clock.at(0))).is_empty());
        }
        assert!(
            starts(&m.step(Input::SandboxReady, clock.at(10))).is_empty(),
            "an adopted container is not started again"
        );
        let a = m.container("a").unwrap();
        assert_eq!(a.restart_count, 2);
        assert!(a.ready, "no readiness probe: ready once adopted");
        assert_eq!(
            a.phase,
            Phase::Running {
                started_at,
                container_id: "skiff://u1/a/0".into()
            }
        );
        assert_eq!(m.phase(), "Running");
        // The one that ended while the agent was down restarts per policy, counted.
        assert_eq!(
            starts(&m.step(exited("b", 137), clock.at(20))),
            vec![("b".to_string(), 1)]
        );
        let b = m.container("b").unwrap();
        let last = b.last_termination.as_ref().unwrap();
        assert_eq!((last.exit_code, last.reason.as_str()), (137, "Error"));
        assert_eq!(last.started_at, started_at);
        assert_eq!(last.container_id, "skiff://u1/b/0");
    }

    #[test]
    fn nothing_starts_before_the_sandbox_then_init_containers_run_in_order() {
        let mut clock = Clock::new();
        let p = pod(json!({"initContainers": [{"name": "i1"}, {"name": "i2"}],
                           "containers": [{"name": "a"}, {"name": "b"}]}));
        let mut m = PodMachine::new(&p, backoff(), clock.at(0));
        assert!(starts(&m.step(Input::Sync, clock.at(0))).is_empty());
        assert_eq!(m.phase(), "Pending");
        let table: Vec<(Input, Vec<(&str, i32)>)> = vec![
            (Input::SandboxReady, vec![("i1", 0)]),
            (started("i1"), vec![]),
            (exited("i1", 0), vec![("i2", 0)]),
            (started("i2"), vec![]),
            (exited("i2", 0), vec![("a", 0), ("b", 0)]),
        ];
        for (i, (input, expected)) in table.into_iter().enumerate() {
            let got = starts(&m.step(input.clone(), clock.at(i as u64 * 10)));
            let expected: Vec<(String, i32)> = expected
                .into_iter()
                .map(|(n, c)| (n.to_string(), c))
                .collect();
            assert_eq!(got, expected, "{input:?}");
        }
        assert_eq!(m.phase(), "Pending", "containers are still starting");
        m.step(started("a"), clock.at(100));
        m.step(started("b"), clock.at(100));
        assert_eq!(m.phase(), "Running");
    }

    #[test]
    fn restart_policies_decide_restarts_and_the_phase() {
        // (policy, exit code, restarts, phase after the exit)
        let cases = [
            ("Always", 0, true, "Running"),
            ("Always", 1, true, "Running"),
            ("OnFailure", 0, false, "Succeeded"),
            ("OnFailure", 1, true, "Running"),
            ("Never", 0, false, "Succeeded"),
            ("Never", 2, false, "Failed"),
        ];
        for (policy, code, restarts, phase) in cases {
            let mut clock = Clock::new();
            let p = pod(json!({"restartPolicy": policy, "containers": [{"name": "c"}]}));
            let mut m = PodMachine::new(&p, backoff(), clock.at(0));
            m.step(Input::SandboxReady, clock.at(0));
            m.step(started("c"), clock.at(0));
            let actions = m.step(exited("c", code), clock.at(5_000));
            assert_eq!(!starts(&actions).is_empty(), restarts, "{policy} {code}");
            if restarts {
                m.step(started("c"), clock.at(5_000));
            }
            assert_eq!(m.phase(), phase, "{policy} {code}");
            let status = m.status(&p, "127.0.0.1", Some("127.128.0.2"), clock.at(5_000).wall);
            let cs = &status.container_statuses.unwrap()[0];
            if !restarts {
                let t = cs.state.as_ref().unwrap().terminated.as_ref().unwrap();
                assert_eq!(t.exit_code, code);
                assert_eq!(
                    t.reason.as_deref(),
                    Some(if code == 0 { "Completed" } else { "Error" })
                );
            } else {
                assert_eq!(cs.restart_count, 1);
                let last = cs.last_state.as_ref().unwrap().terminated.as_ref().unwrap();
                assert_eq!(last.exit_code, code);
            }
        }
    }

    #[test]
    fn crashing_containers_back_off_with_kubelets_messages() {
        let mut clock = Clock::new();
        let p = pod(json!({"restartPolicy": "OnFailure", "containers": [{"name": "c"}]}));
        let mut m = PodMachine::new(&p, backoff(), clock.at(0));
        m.step(Input::SandboxReady, clock.at(0));
        m.step(started("c"), clock.at(0));
        // First crash: restarted at once.
        let a = m.step(exited("c", 1), clock.at(1_000));
        assert_eq!(starts(&a), vec![("c".to_string(), 1)]);
        m.step(started("c"), clock.at(1_000));
        // Second crash: 10 s of back-off.
        let a = m.step(exited("c", 1), clock.at(2_000));
        assert!(starts(&a).is_empty());
        assert_eq!(reasons(&a), vec!["BackOff"]);
        assert_eq!(
            a.iter().find_map(|x| match x {
                Action::Event { message, .. } => Some(message.clone()),
                _ => None,
            }),
            Some("Back-off restarting failed container c in pod p_ns(u1)".to_string())
        );
        assert_eq!(waiting_reason(&m, "c").as_deref(), Some("CrashLoopBackOff"));
        let status = m.status(&p, "127.0.0.1", None, clock.at(2_000).wall);
        let waiting = status.container_statuses.unwrap()[0]
            .state
            .clone()
            .unwrap()
            .waiting
            .unwrap();
        assert_eq!(
            waiting.message.as_deref(),
            Some("back-off 10s restarting failed container=c pod=p_ns(u1)")
        );
        assert_eq!(m.next_wake(), Some(clock.at(12_000).mono));
        assert!(starts(&m.step(Input::Sync, clock.at(11_999))).is_empty());
        assert!(
            reasons(&m.step(Input::Sync, clock.at(11_999))).is_empty(),
            "reported once"
        );
        assert_eq!(
            starts(&m.step(Input::Sync, clock.at(12_000))),
            vec![("c".to_string(), 2)]
        );
        m.step(started("c"), clock.at(12_000));
        m.step(exited("c", 1), clock.at(13_000));
        assert_eq!(m.next_wake(), Some(clock.at(33_000).mono), "then 20 s");
        assert_eq!(m.phase(), "Running");
    }

    #[test]
    fn unknown_images_go_from_err_image_pull_to_image_pull_back_off() {
        let mut clock = Clock::new();
        let p = pod(json!({"containers": [{"name": "c", "image": "nope:1"}]}));
        let mut m = PodMachine::new(&p, backoff(), clock.at(0));
        assert_eq!(starts(&m.step(Input::SandboxReady, clock.at(0))).len(), 1);
        let a = m.step(
            Input::StartFailed {
                container: "c".into(),
                failure: StartFailure::ImagePull,
                message: "image not known".into(),
            },
            clock.at(0),
        );
        assert_eq!(reasons(&a), vec!["Failed", "Failed"]);
        assert_eq!(waiting_reason(&m, "c").as_deref(), Some("ErrImagePull"));
        let a = m.step(Input::Sync, clock.at(1_000));
        assert_eq!(reasons(&a), vec!["BackOff", "Failed"]);
        assert_eq!(waiting_reason(&m, "c").as_deref(), Some("ImagePullBackOff"));
        assert_eq!(m.next_wake(), Some(clock.at(10_000).mono));
        assert_eq!(
            starts(&m.step(Input::Sync, clock.at(10_000))).len(),
            1,
            "pull retried"
        );
        assert_eq!(m.phase(), "Pending");
    }

    #[test]
    fn failed_pulls_and_config_errors_are_not_restarts() {
        for failure in [StartFailure::ImagePull, StartFailure::Config] {
            let mut clock = Clock::new();
            let p = pod(json!({"containers": [{"name": "c", "image": "nope:1"}]}));
            let mut m = PodMachine::new(&p, backoff(), clock.at(0));
            let failed = || Input::StartFailed {
                container: "c".into(),
                failure,
                message: "cannot".into(),
            };
            assert_eq!(starts(&m.step(Input::SandboxReady, clock.at(0))).len(), 1);
            m.step(failed(), clock.at(0));
            for at in [10_000, 40_000, 100_000] {
                let retried = starts(&m.step(Input::Sync, clock.at(at)));
                assert_eq!(
                    retried,
                    vec![("c".to_string(), 0)],
                    "{failure:?}: retry at {at} ms logs to run 0"
                );
                m.step(failed(), clock.at(at));
                assert_eq!(m.container("c").unwrap().restart_count, 0, "{failure:?}");
            }
            // Once a process finally runs and exits, that is the first restart.
            assert_eq!(starts(&m.step(Input::Sync, clock.at(300_000))).len(), 1);
            m.step(started("c"), clock.at(300_000));
            let restarted = starts(&m.step(exited("c", 1), clock.at(301_000)));
            assert_eq!(restarted, vec![("c".to_string(), 1)], "{failure:?}");
        }
    }

    #[test]
    fn retries_after_a_back_off_keep_showing_the_back_off_until_running() {
        let mut clock = Clock::new();
        let p = pod(json!({"containers": [{"name": "c", "image": "busybox"}]}));
        let mut m = PodMachine::new(&p, backoff(), clock.at(0));
        let shown = |m: &PodMachine| {
            let status = observe(m.container("c").unwrap()).status(ContainerKind::Regular);
            let waiting = status.state.and_then(|s| s.waiting);
            (
                waiting.and_then(|w| w.reason),
                status.restart_count,
                status.container_id,
            )
        };
        m.step(Input::SandboxReady, clock.at(0));
        assert_eq!(
            shown(&m).0.as_deref(),
            Some("ContainerCreating"),
            "a first start"
        );
        m.step(started("c"), clock.at(0));
        // The first crash restarts at once; the second waits 10 s in CrashLoopBackOff.
        m.step(exited("c", 1), clock.at(1_000));
        m.step(started("c"), clock.at(1_000));
        m.step(exited("c", 1), clock.at(2_000));
        assert_eq!(
            shown(&m),
            (
                Some("CrashLoopBackOff".to_string()),
                1,
                Some("skiff://c".to_string())
            )
        );
        assert_eq!(starts(&m.step(Input::Sync, clock.at(12_000))).len(), 1);
        assert_eq!(
            shown(&m),
            (
                Some("CrashLoopBackOff".to_string()),
                1,
                Some("skiff://c".to_string())
            ),
            "the retry is not shown before it runs"
        );
        m.step(started("c"), clock.at(12_000));
        assert_eq!(shown(&m), (None, 2, Some("skiff://c".to_string())));

        // Image pulls: retried from ImagePullBackOff, which shows until the outcome is known.
        let p = pod(json!({"containers": [{"name": "c", "image": "nope:1"}]}));
        let mut m = PodMachine::new(&p, backoff(), clock.at(0));
        m.step(Input::SandboxReady, clock.at(0));
        let not_found = || Input::StartFailed {
            container: "c".into(),
            failure: StartFailure::ImagePull,
            message: "not here".into(),
        };
        m.step(not_found(), clock.at(0));
        m.step(Input::Sync, clock.at(1_000));
        assert_eq!(starts(&m.step(Input::Sync, clock.at(10_000))).len(), 1);
        assert_eq!(shown(&m).0.as_deref(), Some("ImagePullBackOff"));
        m.step(not_found(), clock.at(10_000));
        assert_eq!(shown(&m).0.as_deref(), Some("ErrImagePull"));
    }

    #[test]
    fn liveness_failures_kill_and_readiness_gates_ready() {
        let mut clock = Clock::new();
        let p = pod(json!({"containers": [{"name": "c",
            "livenessProbe": {"exec": {"command": ["true"]}, "failureThreshold": 2, "periodSeconds": 1},
            "readinessProbe": {"exec": {"command": ["true"]}, "periodSeconds": 1}}]}));
        let mut m = PodMachine::new(&p, backoff(), clock.at(0));
        m.step(Input::SandboxReady, clock.at(0));
        let a = m.step(started("c"), clock.at(0));
        let probes: Vec<ProbeKind> = a
            .iter()
            .filter_map(|x| match x {
                Action::Probe { kind, .. } => Some(*kind),
                _ => None,
            })
            .collect();
        assert_eq!(probes, vec![ProbeKind::Liveness, ProbeKind::Readiness]);
        assert!(
            !m.container("c").unwrap().ready,
            "readiness starts as failure"
        );
        let probed = |kind, result| Input::Probed {
            container: "c".into(),
            kind,
            run: 1,
            result,
        };
        m.step(
            probed(ProbeKind::Readiness, ProbeResult::Success),
            clock.at(10),
        );
        assert!(m.container("c").unwrap().ready);
        let a = m.step(
            probed(ProbeKind::Liveness, ProbeResult::Failure("boom".into())),
            clock.at(20),
        );
        assert_eq!(reasons(&a), vec!["Unhealthy"]);
        m.step(Input::Sync, clock.at(1_000));
        let a = m.step(
            probed(ProbeKind::Liveness, ProbeResult::Failure("boom".into())),
            clock.at(1_010),
        );
        assert_eq!(reasons(&a), vec!["Unhealthy", "Killing"]);
        assert!(a.iter().any(|x| matches!(x, Action::Event { message, .. }
            if message == "Container c failed liveness probe, will be restarted")));
        assert!(a.iter().any(|x| matches!(x, Action::Kill { .. })));
        let a = m.step(exited("c", 137), clock.at(1_500));
        assert_eq!(
            starts(&a),
            vec![("c".to_string(), 1)],
            "restarted by policy"
        );
    }

    #[test]
    fn deletion_stops_running_containers_then_confirms() {
        let mut clock = Clock::new();
        let p = pod(json!({"containers": [{"name": "a"}, {"name": "b"}]}));
        let mut m = PodMachine::new(&p, backoff(), clock.at(0));
        m.step(Input::SandboxReady, clock.at(0));
        m.step(started("a"), clock.at(0));
        m.step(started("b"), clock.at(0));
        let a = m.step(
            Input::Delete {
                grace: Duration::from_secs(30),
            },
            clock.at(1_000),
        );
        let kills: Vec<(String, Option<Duration>)> = a
            .iter()
            .filter_map(|x| match x {
                Action::Kill {
                    container, grace, ..
                } => Some((container.clone(), *grace)),
                _ => None,
            })
            .collect();
        assert_eq!(
            kills,
            vec![
                ("a".to_string(), Some(Duration::from_secs(30))),
                ("b".to_string(), Some(Duration::from_secs(30)))
            ]
        );
        assert_eq!(reasons(&a), vec!["Killing", "Killing"]);
        let a = m.step(exited("a", 143), clock.at(2_000));
        assert!(!a.contains(&Action::ConfirmDeletion));
        assert!(starts(&a).is_empty(), "nothing restarts while deleting");
        let a = m.step(exited("b", 0), clock.at(2_000));
        assert!(a.contains(&Action::ConfirmDeletion));
        assert!(m.is_done());
        assert_eq!(m.phase(), "Failed");
    }

    #[test]
    fn a_pod_that_never_started_is_confirmed_at_once() {
        let mut clock = Clock::new();
        let p = pod(json!({"containers": [{"name": "a"}]}));
        let mut m = PodMachine::new(&p, backoff(), clock.at(0));
        let a = m.step(
            Input::Delete {
                grace: Duration::from_secs(30),
            },
            clock.at(0),
        );
        assert_eq!(a, vec![Action::ConfirmDeletion]);
    }

    #[test]
    fn conditions_follow_readiness_and_gates() {
        let mut clock = Clock::new();
        let p = pod(json!({"containers": [{"name": "a"}],
            "readinessGates": [{"conditionType": "example.com/ok"}]}));
        let mut m = PodMachine::new(&p, backoff(), clock.at(0));
        m.step(Input::SandboxReady, clock.at(0));
        m.step(started("a"), clock.at(0));
        let status = m.status(&p, "127.0.0.1", Some("127.128.0.2"), clock.at(0).wall);
        let get = |t: &str| {
            status
                .conditions
                .as_ref()
                .unwrap()
                .iter()
                .find(|c| c.type_ == t)
                .cloned()
                .unwrap()
        };
        assert_eq!(get("ContainersReady").status, "True");
        assert_eq!(get("Initialized").status, "True");
        assert_eq!(get("PodReadyToStartContainers").status, "True");
        let ready = get("Ready");
        assert_eq!(ready.status, "False");
        assert_eq!(ready.reason.as_deref(), Some("ReadinessGatesNotReady"));
        assert_eq!(status.pod_ip.as_deref(), Some("127.128.0.2"));
        assert_eq!(status.phase.as_deref(), Some("Running"));
    }

    fn kills(actions: &[Action]) -> Vec<(String, Option<Duration>)> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Kill {
                    container, grace, ..
                } => Some((container.clone(), *grace)),
                _ => None,
            })
            .collect()
    }

    fn drains(actions: &[Action]) -> Vec<(u32, Instant)> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Drain { drain, deadline } => Some((*drain, *deadline)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn an_ephemeral_container_starts_once_when_added_and_leaves_phase_and_readiness_alone() {
        let mut clock = Clock::new();
        let p = pod(json!({"restartPolicy": "Always",
                           "containers": [{"name": "app", "image": "busybox"}]}));
        let mut m = PodMachine::new(&p, backoff(), clock.at(0));
        m.step(Input::SandboxReady, clock.at(0));
        m.step(started("app"), clock.at(0));
        assert_eq!(m.phase(), "Running");

        let mut debugged = p.clone();
        debugged.spec.as_mut().unwrap().ephemeral_containers = Some(vec![serde_json::from_value(
            json!({"name": "debugger", "image": "busybox", "targetContainerName": "app",
                   "stdin": true, "tty": true}),
        )
        .unwrap()]);
        let actions = m.step(Input::Updated(Arc::new(debugged.clone())), clock.at(1_000));
        assert_eq!(starts(&actions), vec![("debugger".to_string(), 0)]);
        m.step(started("debugger"), clock.at(1_000));
        let status = m.status(&debugged, "127.0.0.1", None, clock.at(1_000).wall);
        let ephemeral = status
            .ephemeral_container_statuses
            .expect("ephemeral statuses");
        assert_eq!(ephemeral.len(), 1);
        assert_eq!(ephemeral[0].name, "debugger");
        assert_eq!(ephemeral[0].image, "busybox");
        assert!(!ephemeral[0].ready, "an ephemeral container is never ready");
        assert!(ephemeral[0].state.as_ref().unwrap().running.is_some());
        assert_eq!(status.container_statuses.unwrap().len(), 1);
        let ready = status
            .conditions
            .unwrap()
            .into_iter()
            .find(|c| c.type_ == "Ready")
            .unwrap();
        assert_eq!(
            ready.status, "True",
            "the unready debugger leaves the pod ready"
        );

        // It ends and is never restarted, whatever the pod's restart policy; the pod runs on.
        let actions = m.step(exited("debugger", 1), clock.at(2_000));
        assert!(starts(&actions).is_empty(), "restarted: {actions:?}");
        let later = m.step(Input::Sync, clock.at(600_000));
        assert!(starts(&later).is_empty(), "restarted later: {later:?}");
        assert_eq!(m.next_wake(), None);
        assert_eq!(m.phase(), "Running");
        let status = m.status(&debugged, "127.0.0.1", None, clock.at(600_000).wall);
        let ended = &status.ephemeral_container_statuses.unwrap()[0];
        let terminated = ended.state.as_ref().unwrap().terminated.as_ref().unwrap();
        assert_eq!((terminated.exit_code, ended.restart_count), (1, 0));

        // A restarted agent does not run it again.
        let mut known = debugged.clone();
        known.status = Some(m.status(&debugged, "127.0.0.1", None, clock.at(600_000).wall));
        let mut again = PodMachine::new(&known, backoff(), clock.at(600_000));
        let actions = again.step(Input::SandboxReady, clock.at(600_000));
        assert_eq!(starts(&actions), vec![("app".to_string(), 1)]);
    }

    /// `p` with container `name` now running `image`.
    fn with_image(p: &Pod, name: &str, image: &str) -> Input {
        let mut p = p.clone();
        if let Some(spec) = p.spec.as_mut() {
            for c in spec.containers.iter_mut().filter(|c| c.name == name) {
                c.image = Some(image.to_string());
            }
        }
        Input::Updated(Arc::new(p))
    }

    /// `p` with OpenKruise's `InPlaceUpdateReady` condition at `status`.
    fn kruise_condition(p: &Pod, status: &str) -> Pod {
        let mut p = p.clone();
        p.status = Some(
            serde_json::from_value(json!({"conditions": [
                {"type": IN_PLACE_UPDATE_READY, "status": status}]}))
            .unwrap(),
        );
        p
    }

    #[test]
    fn a_changed_image_restarts_only_that_container_whatever_the_policy() {
        for policy in ["Always", "OnFailure", "Never"] {
            let mut clock = Clock::new();
            let p = pod(json!({"restartPolicy": policy, "containers": [
                {"name": "app", "image": "web:1",
                 "readinessProbe": {"exec": {"command": ["true"]}, "periodSeconds": 1}},
                {"name": "side", "image": "side:1"}]}));
            let mut m = PodMachine::new(&p, backoff(), clock.at(0));
            m.step(Input::SandboxReady, clock.at(0));
            m.step(started("app"), clock.at(0));
            m.step(started("side"), clock.at(0));
            m.step(
                Input::Probed {
                    container: "app".into(),
                    kind: ProbeKind::Readiness,
                    run: 1,
                    result: ProbeResult::Success,
                },
                clock.at(10),
            );
            assert!(m.container("app").unwrap().ready);

            let a = m.step(with_image(&p, "app", "web:2"), clock.at(1_000));
            assert_eq!(kills(&a), vec![("app".to_string(), None)], "{policy}");
            assert!(
                a.contains(&Action::Event {
                    severity: Severity::Normal,
                    reason: "Killing",
                    message: "Container app definition changed, will be restarted".into(),
                    container: Some("app".into()),
                }),
                "{policy}: {a:?}"
            );
            assert!(!m.container("app").unwrap().ready, "out of service at once");
            assert!(
                kills(&m.step(Input::Sync, clock.at(1_100))).is_empty(),
                "killed once"
            );

            // The old run ends (SIGTERM): started again at once, no back-off.
            let a = m.step(exited("app", 143), clock.at(1_500));
            assert_eq!(starts(&a), vec![("app".to_string(), 1)], "{policy}");
            assert_eq!(m.phase(), "Running", "{policy}: never Pending or Failed");
            let a = m.step(
                Input::Started {
                    container: "app".into(),
                    image_id: "web-2-id".into(),
                    image: String::new(),
                    container_id: "skiff://app/1".into(),
                },
                clock.at(1_600),
            );
            assert!(
                a.contains(&Action::Probe {
                    container: "app".into(),
                    kind: ProbeKind::Readiness,
                    run: 2,
                }),
                "probes start over for the new run: {a:?}"
            );
            let status = m.status(&p, "127.0.0.1", Some("127.128.0.2"), clock.at(1_600).wall);
            let statuses = status.container_statuses.unwrap();
            let app = &statuses[0];
            assert_eq!(app.image, "web:2", "{policy}");
            assert_eq!(app.image_id, "web-2-id");
            assert_eq!(app.restart_count, 1);
            assert!(!app.ready, "readiness starts over for the new run");
            assert!(app.state.as_ref().unwrap().running.is_some());
            let last = app
                .last_state
                .as_ref()
                .unwrap()
                .terminated
                .as_ref()
                .unwrap();
            assert_eq!(last.exit_code, 143);
            let side = &statuses[1];
            assert_eq!(
                (side.image.as_str(), side.restart_count),
                ("side:1", 0),
                "untouched"
            );
            assert!(m.container("side").unwrap().ready);
            assert_eq!(m.phase(), "Running");

            assert!(
                kills(&m.step(Input::Sync, clock.at(3_000))).is_empty(),
                "the new run stays"
            );
        }
    }

    #[test]
    fn image_changes_of_stopped_or_crashing_containers_follow_kubelet() {
        // A crash-looping container tries the new image at once: the back-off is the old
        // definition's.
        let mut clock = Clock::new();
        let p = pod(json!({"containers": [{"name": "c", "image": "bad:1"}]}));
        let mut m = PodMachine::new(&p, backoff(), clock.at(0));
        m.step(Input::SandboxReady, clock.at(0));
        m.step(started("c"), clock.at(0));
        m.step(exited("c", 1), clock.at(1_000));
        m.step(started("c"), clock.at(1_000));
        m.step(exited("c", 1), clock.at(2_000));
        assert_eq!(waiting_reason(&m, "c").as_deref(), Some("CrashLoopBackOff"));
        let a = m.step(with_image(&p, "c", "good:1"), clock.at(3_000));
        assert_eq!(starts(&a), vec![("c".to_string(), 2)]);
        assert!(kills(&a).is_empty(), "nothing runs to kill");
        assert_eq!(m.container("c").unwrap().image, "good:1");

        // A container that finished under restartPolicy Never stays finished.
        let p = pod(json!({"restartPolicy": "Never",
            "containers": [{"name": "c", "image": "job:1"}, {"name": "d", "image": "job:1"}]}));
        let mut m = PodMachine::new(&p, backoff(), clock.at(0));
        m.step(Input::SandboxReady, clock.at(0));
        m.step(started("c"), clock.at(0));
        m.step(started("d"), clock.at(0));
        m.step(exited("c", 0), clock.at(1_000));
        let a = m.step(with_image(&p, "c", "job:2"), clock.at(2_000));
        assert!(starts(&a).is_empty() && kills(&a).is_empty(), "{a:?}");

        // Changed and changed back before anything happened: nothing to do.
        let p = pod(json!({"containers": [{"name": "c", "image": "web:1"}]}));
        let mut m = PodMachine::new(&p, backoff(), clock.at(0));
        m.step(Input::SandboxReady, clock.at(0));
        m.step(
            Input::Delete {
                grace: Duration::ZERO,
            },
            clock.at(0),
        );
        let p2 = pod(json!({"containers": [{"name": "c", "image": "web:1"}]}));
        let a = m.step(with_image(&p2, "c", "web:2"), clock.at(0));
        assert!(starts(&a).is_empty(), "a deleted pod restarts nothing");
    }

    #[test]
    fn replacements_wait_for_a_running_container_and_crashes_follow_the_policy() {
        let mut clock = Clock::new();
        let p = pod(json!({"restartPolicy": "Never", "containers": [
            {"name": "c", "image": "web:1"}, {"name": "d", "image": "web:1"}]}));
        // The image changes while the old one is still starting: replaced once it runs.
        let mut m = PodMachine::new(&p, backoff(), clock.at(0));
        m.step(Input::SandboxReady, clock.at(0));
        let a = m.step(with_image(&p, "c", "web:2"), clock.at(5));
        assert!(kills(&a).is_empty(), "not running yet: nothing to kill");
        let a = m.step(started("c"), clock.at(6));
        assert_eq!(kills(&a), vec![("c".to_string(), None)]);
        let a = m.step(exited("c", 143), clock.at(20));
        assert_eq!(starts(&a), vec![("c".to_string(), 1)]);

        // A container that dies on its own while its replacement waits for the drain follows
        // the policy: Never does not restart it.
        let gated = kruise_condition(
            &pod(json!({"restartPolicy": "Never",
                "readinessGates": [{"conditionType": IN_PLACE_UPDATE_READY}],
                "containers": [{"name": "c", "image": "web:1"}, {"name": "d", "image": "web:1"}]})),
            "False",
        );
        let mut m = PodMachine::new(&gated, backoff(), clock.at(0)).with_traffic_drain(true);
        m.step(Input::SandboxReady, clock.at(0));
        m.step(started("c"), clock.at(0));
        m.step(started("d"), clock.at(0));
        let a = m.step(with_image(&gated, "c", "web:2"), clock.at(10));
        assert_eq!(drains(&a).len(), 1);
        let a = m.step(exited("c", 1), clock.at(20));
        assert!(starts(&a).is_empty(), "{a:?}");
        let a = m.step(Input::Drained { drain: 1 }, clock.at(30));
        assert!(starts(&a).is_empty() && kills(&a).is_empty(), "{a:?}");
        assert_eq!(m.container("d").unwrap().restart_count, 0);
    }

    #[test]
    fn an_in_place_update_waits_for_the_drain_when_kruise_took_the_pod_out() {
        let mut clock = Clock::new();
        let p = pod(json!({"terminationGracePeriodSeconds": 20,
            "readinessGates": [{"conditionType": IN_PLACE_UPDATE_READY}],
            "containers": [{"name": "app", "image": "web:1"}]}));
        let mut m = PodMachine::new(&p, backoff(), clock.at(0)).with_traffic_drain(true);
        m.step(Input::SandboxReady, clock.at(0));
        m.step(started("app"), clock.at(0));
        let out = kruise_condition(&p, "False");
        assert!(taken_out_for_in_place_update(&out));
        assert!(!taken_out_for_in_place_update(&kruise_condition(
            &p, "True"
        )));
        let a = m.step(with_image(&out, "app", "web:2"), clock.at(1_000));
        assert_eq!(drains(&a), vec![(1, clock.at(21_000).mono)]);
        assert!(kills(&a).is_empty(), "no SIGTERM while draining");
        assert_eq!(m.next_wake(), Some(clock.at(21_000).mono));
        assert!(kills(&m.step(Input::Sync, clock.at(5_000))).is_empty());
        assert!(
            kills(&m.step(Input::Drained { drain: 7 }, clock.at(5_000))).is_empty(),
            "an unknown drain's answer changes nothing"
        );
        let a = m.step(Input::Drained { drain: 1 }, clock.at(6_000));
        assert_eq!(
            kills(&a),
            vec![("app".to_string(), Some(Duration::from_secs(15)))],
            "the drain's time comes out of the grace period"
        );
        assert_eq!(reasons(&a), vec!["Killing"]);

        // Without Kruise's gate turned False, or without a drain on the node: no wait.
        for (pod_now, drain) in [(kruise_condition(&p, "True"), true), (out.clone(), false)] {
            let mut m = PodMachine::new(&p, backoff(), clock.at(0)).with_traffic_drain(drain);
            m.step(Input::SandboxReady, clock.at(0));
            m.step(started("app"), clock.at(0));
            let a = m.step(with_image(&pod_now, "app", "web:2"), clock.at(1_000));
            assert!(drains(&a).is_empty());
            assert_eq!(kills(&a), vec![("app".to_string(), None)]);
        }

        // A drain that never answers ends with the grace period: SIGKILL follows at once.
        let mut m = PodMachine::new(&p, backoff(), clock.at(0)).with_traffic_drain(true);
        m.step(Input::SandboxReady, clock.at(0));
        m.step(started("app"), clock.at(0));
        m.step(with_image(&out, "app", "web:2"), clock.at(1_000));
        assert!(kills(&m.step(Input::Sync, clock.at(20_999))).is_empty());
        let a = m.step(Input::Sync, clock.at(21_000));
        assert_eq!(kills(&a), vec![("app".to_string(), Some(Duration::ZERO))]);
    }

    #[test]
    fn deletion_waits_for_the_drain_within_the_grace_period() {
        let mut clock = Clock::new();
        let p = pod(json!({"containers": [{"name": "a"}, {"name": "b"}]}));
        let mut m = PodMachine::new(&p, backoff(), clock.at(0)).with_traffic_drain(true);
        m.step(Input::SandboxReady, clock.at(0));
        m.step(started("a"), clock.at(0));
        m.step(started("b"), clock.at(0));
        let a = m.step(
            Input::Delete {
                grace: Duration::from_secs(10),
            },
            clock.at(1_000),
        );
        assert_eq!(
            drains(&a),
            vec![(1, clock.at(11_000).mono)],
            "one drain per pod"
        );
        assert!(kills(&a).is_empty() && reasons(&a).is_empty(), "{a:?}");
        assert_eq!(m.next_wake(), Some(clock.at(11_000).mono));
        let a = m.step(Input::Drained { drain: 1 }, clock.at(4_000));
        assert_eq!(
            kills(&a),
            vec![
                ("a".to_string(), Some(Duration::from_secs(7))),
                ("b".to_string(), Some(Duration::from_secs(7)))
            ]
        );
        assert_eq!(reasons(&a), vec!["Killing", "Killing"]);
        m.step(exited("a", 143), clock.at(4_100));
        let a = m.step(exited("b", 143), clock.at(4_100));
        assert!(a.contains(&Action::ConfirmDeletion));

        // The drain is cut by the grace period.
        let mut m = PodMachine::new(&p, backoff(), clock.at(0)).with_traffic_drain(true);
        m.step(Input::SandboxReady, clock.at(0));
        m.step(started("a"), clock.at(0));
        m.step(
            Input::Delete {
                grace: Duration::from_secs(2),
            },
            clock.at(0),
        );
        assert!(kills(&m.step(Input::Sync, clock.at(1_999))).is_empty());
        assert_eq!(
            kills(&m.step(Input::Sync, clock.at(2_000))),
            vec![("a".to_string(), Some(Duration::ZERO))]
        );

        // The agent stopping does not wait for proxies.
        let mut m = PodMachine::new(&p, backoff(), clock.at(0)).with_traffic_drain(true);
        m.step(Input::SandboxReady, clock.at(0));
        m.step(started("a"), clock.at(0));
        m.step(
            Input::Delete {
                grace: Duration::from_secs(30),
            },
            clock.at(0),
        );
        let a = m.step(
            Input::Stop {
                grace: Duration::from_secs(3),
            },
            clock.at(100),
        );
        assert_eq!(kills(&a).len(), 1);

        // Nothing running: nothing to drain.
        let mut m = PodMachine::new(&p, backoff(), clock.at(0)).with_traffic_drain(true);
        let a = m.step(
            Input::Delete {
                grace: Duration::from_secs(30),
            },
            clock.at(0),
        );
        assert_eq!(a, vec![Action::ConfirmDeletion]);
    }

    #[test]
    fn extreme_grace_periods_saturate_and_later_deletions_shorten_them() {
        const HUGE: i64 = 999_999_999_999;
        let longest = deadline::LONGEST_WAIT;
        // (terminationGracePeriodSeconds, first deletion's grace, the kill's grace)
        let cases: &[(i64, Duration, Duration)] = &[
            (HUGE, Duration::from_secs(HUGE as u64), longest),
            (i64::MAX, Duration::from_secs(i64::MAX as u64), longest),
            (i64::MAX, Duration::MAX, longest),
            (-5, Duration::ZERO, Duration::ZERO),
            (30, Duration::from_secs(30), Duration::from_secs(30)),
        ];
        for &(termination, grace, kill_grace) in cases {
            let mut clock = Clock::new();
            let p = pod(json!({"terminationGracePeriodSeconds": termination,
                "containers": [{"name": "app"}]}));
            for drain in [false, true] {
                let label = format!("terminationGracePeriodSeconds {termination}, drain {drain}");
                let mut m = PodMachine::new(&p, backoff(), clock.at(0)).with_traffic_drain(drain);
                m.step(Input::SandboxReady, clock.at(0));
                m.step(started("app"), clock.at(0));
                let a = m.step(Input::Delete { grace }, clock.at(1_000));
                if drain && !grace.is_zero() {
                    assert_eq!(
                        drains(&a),
                        vec![(1, clock.at(1_000).mono + kill_grace)],
                        "{label}"
                    );
                    assert_eq!(m.next_wake(), Some(clock.at(1_000).mono + kill_grace));
                    m.step(Input::Drained { drain: 1 }, clock.at(1_000));
                } else {
                    assert_eq!(
                        kills(&a),
                        vec![("app".to_string(), Some(kill_grace))],
                        "{label}"
                    );
                }
                // A forced deletion (grace 0) ends the wait at once.
                let a = m.step(
                    Input::Delete {
                        grace: Duration::ZERO,
                    },
                    clock.at(2_000),
                );
                if kill_grace > Duration::ZERO {
                    assert_eq!(
                        kills(&a),
                        vec![("app".to_string(), Some(Duration::ZERO))],
                        "{label}"
                    );
                    assert!(
                        !a.iter()
                            .any(|a| matches!(a, Action::Kill { pre_stop: true, .. })),
                        "preStop runs once: {label}"
                    );
                }
                let a = m.step(exited("app", 137), clock.at(2_100));
                assert_eq!(a, vec![Action::ConfirmDeletion], "{label}");
            }
        }
    }

    #[test]
    fn a_longer_second_deletion_or_stop_does_not_extend_the_grace_period() {
        let mut clock = Clock::new();
        let p = pod(json!({"containers": [{"name": "app"}]}));
        let mut m = PodMachine::new(&p, backoff(), clock.at(0));
        m.step(Input::SandboxReady, clock.at(0));
        m.step(started("app"), clock.at(0));
        let a = m.step(
            Input::Delete {
                grace: Duration::from_secs(5),
            },
            clock.at(0),
        );
        assert_eq!(
            kills(&a),
            vec![("app".to_string(), Some(Duration::from_secs(5)))]
        );
        for input in [
            Input::Delete {
                grace: Duration::from_secs(60),
            },
            Input::Stop {
                grace: Duration::MAX,
            },
        ] {
            assert!(kills(&m.step(input, clock.at(1_000))).is_empty());
        }
        let a = m.step(
            Input::Stop {
                grace: Duration::from_secs(1),
            },
            clock.at(2_000),
        );
        assert_eq!(
            kills(&a),
            vec![("app".to_string(), Some(Duration::from_secs(1)))]
        );
    }

    #[test]
    fn foreign_conditions_come_from_the_newest_pod() {
        let ours: PodStatus = serde_json::from_value(json!({"phase": "Running", "conditions": [
            {"type": "Ready", "status": "True"},
            {"type": IN_PLACE_UPDATE_READY, "status": "True"}]}))
        .unwrap();
        let newest: PodStatus = serde_json::from_value(json!({"phase": "Pending", "conditions": [
            {"type": "Ready", "status": "False"},
            {"type": IN_PLACE_UPDATE_READY, "status": "False"}]}))
        .unwrap();
        let merged = with_foreign_conditions(&ours, Some(&newest));
        let got: Vec<(String, String)> = merged
            .conditions
            .unwrap()
            .into_iter()
            .map(|c| (c.type_, c.status))
            .collect();
        assert_eq!(
            got,
            vec![
                ("Ready".to_string(), "True".to_string()),
                (IN_PLACE_UPDATE_READY.to_string(), "False".to_string())
            ]
        );
        assert_eq!(merged.phase.as_deref(), Some("Running"));
    }
}
