//! When probes run and what their results mean, as kubelet's probe workers decide it
//! (`pkg/kubelet/prober/worker.go`), written as pure state machines: time is an input
//! (a [`Duration`] since the container started), nothing here sleeps or does I/O.
//!
//! Rules kept from kubelet:
//! * defaults: `initialDelaySeconds` 0, `periodSeconds` 10, `timeoutSeconds` 1,
//!   `successThreshold` 1, `failureThreshold` 3 (zero means "default", as the API server
//!   defaults it);
//! * a readiness probe starts as failure (not ready), a liveness probe as success, a startup
//!   probe as unknown (the container is not started);
//! * a result changes the probe's status only after `successThreshold` / `failureThreshold`
//!   equal results in a row; a probe that errored ([`ProbeResult::Unknown`]) is ignored;
//! * a liveness probe that reaches its failure threshold, and a startup probe that reaches
//!   either threshold, stop until the container is replaced ([`ProbeState::reset`]);
//! * liveness and readiness probes do not run before the startup probe succeeded; a readiness
//!   probe runs as soon as the container started, the liveness probe keeps its own period;
//! * ticks missed while a slow probe ran collapse into one immediate run (a Go ticker drops
//!   them);
//! * once the pod is being deleted, liveness and startup probes stop (readiness goes on).
//!
//! One simplification: kubelet's ticker starts with the probe worker, so the first probe of a
//! container lands anywhere within a period after `initialDelaySeconds`; here it runs exactly
//! at `initialDelaySeconds`, which is what the field promises.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, Probe};

use super::ProbeResult;

/// Which of a container's three probes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ProbeKind {
    /// Restarts the container when it fails.
    Liveness,
    /// Takes the container out of service while it fails.
    Readiness,
    /// Holds the other two back until the container has started.
    Startup,
}

impl ProbeKind {
    /// The capitalised name kubelet puts in events (`Liveness probe failed: ...`).
    pub fn as_str(self) -> &'static str {
        match self {
            ProbeKind::Liveness => "Liveness",
            ProbeKind::Readiness => "Readiness",
            ProbeKind::Startup => "Startup",
        }
    }

    /// The status a fresh container has before the probe decided anything.
    fn initial_status(self) -> ProbeStatus {
        match self {
            ProbeKind::Liveness => ProbeStatus::Success,
            ProbeKind::Readiness => ProbeStatus::Failure,
            ProbeKind::Startup => ProbeStatus::Unknown,
        }
    }
}

/// What a probe currently says about its container (kubelet's results manager value).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProbeStatus {
    /// Nothing decided yet (a startup probe before its first verdict).
    Unknown,
    /// Live, ready or started.
    Success,
    /// Not live, not ready, or failed to start.
    Failure,
}

/// A change the node agent must act on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transition {
    /// The startup probe succeeded: the container is started, the other probes begin.
    Started,
    /// The readiness probe reached its success threshold.
    Ready,
    /// The readiness probe reached its failure threshold.
    NotReady,
    /// A liveness or startup probe reached its failure threshold: kill the container (see
    /// [`killing_message`] and [`ProbeSettings::termination_grace_period_seconds`]).
    Failed,
}

/// A probe's timing and thresholds with kubelet's defaults filled in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProbeSettings {
    /// How long after the container started the probe first runs.
    pub initial_delay: Duration,
    /// Time between runs.
    pub period: Duration,
    /// How long one run may take.
    pub timeout: Duration,
    /// Consecutive successes needed to count as success.
    pub success_threshold: u32,
    /// Consecutive failures needed to count as failure.
    pub failure_threshold: u32,
    /// Grace period for a kill this probe causes, overriding the pod's when set.
    pub termination_grace_period_seconds: Option<i64>,
}

impl ProbeSettings {
    /// Reads a probe's settings; unset or non-positive values take kubelet's defaults.
    pub fn from_probe(probe: &Probe) -> ProbeSettings {
        fn seconds(value: Option<i32>, default: u64) -> Duration {
            match value {
                Some(v) if v > 0 => Duration::from_secs(v as u64),
                _ => Duration::from_secs(default),
            }
        }
        fn count(value: Option<i32>, default: u32) -> u32 {
            match value {
                Some(v) if v > 0 => v as u32,
                _ => default,
            }
        }
        ProbeSettings {
            initial_delay: seconds(probe.initial_delay_seconds, 0),
            period: seconds(probe.period_seconds, 10),
            timeout: seconds(probe.timeout_seconds, 1),
            success_threshold: count(probe.success_threshold, 1),
            failure_threshold: count(probe.failure_threshold, 3),
            termination_grace_period_seconds: probe.termination_grace_period_seconds,
        }
    }
}

/// One probe of one container: its schedule, its run of equal results and its status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProbeState {
    kind: ProbeKind,
    settings: ProbeSettings,
    status: ProbeStatus,
    /// The result of the current run of equal results, and its length.
    last_success: Option<bool>,
    run_length: u32,
    /// Reached a final verdict; nothing more until the container is replaced.
    on_hold: bool,
    /// Stopped for good (the pod is being deleted).
    stopped: bool,
    /// The tick the next run belongs to, and when it is due (later ticks collapse into an
    /// immediate run after a slow probe).
    tick: Duration,
    due: Duration,
}

impl ProbeState {
    /// A probe of a freshly started container.
    pub fn new(kind: ProbeKind, probe: &Probe) -> ProbeState {
        Self::with_settings(kind, ProbeSettings::from_probe(probe))
    }

    /// A probe with explicit settings.
    pub fn with_settings(kind: ProbeKind, settings: ProbeSettings) -> ProbeState {
        ProbeState {
            kind,
            settings,
            status: kind.initial_status(),
            last_success: None,
            run_length: 0,
            on_hold: false,
            stopped: false,
            tick: settings.initial_delay,
            due: settings.initial_delay,
        }
    }

    /// Which probe this is.
    pub fn kind(&self) -> ProbeKind {
        self.kind
    }

    /// The settings it runs with.
    pub fn settings(&self) -> &ProbeSettings {
        &self.settings
    }

    /// What the probe currently says.
    pub fn status(&self) -> ProbeStatus {
        self.status
    }

    /// When the probe should run next, as time since the container started; `None` once it
    /// reached a final verdict or was stopped (until [`ProbeState::reset`]).
    pub fn next_run(&self) -> Option<Duration> {
        (!self.on_hold && !self.stopped).then_some(self.due)
    }

    /// Records the result of the run that was due, finished at `now`, and returns the change it
    /// causes, if any. Results arriving while the probe is on hold are ignored.
    pub fn observe(&mut self, result: &ProbeResult, now: Duration) -> Option<Transition> {
        if self.on_hold || self.stopped {
            return None;
        }
        self.advance_schedule(now);
        if matches!(result, ProbeResult::Unknown(_)) {
            return None;
        }
        let success = result.is_success();
        if self.last_success == Some(success) {
            self.run_length = self.run_length.saturating_add(1);
        } else {
            self.last_success = Some(success);
            self.run_length = 1;
        }
        let threshold = if success {
            self.settings.success_threshold
        } else {
            self.settings.failure_threshold
        };
        if self.run_length < threshold {
            return None;
        }

        let previous = self.status;
        self.status = if success {
            ProbeStatus::Success
        } else {
            ProbeStatus::Failure
        };
        let final_verdict = match self.kind {
            ProbeKind::Liveness => !success,
            ProbeKind::Startup => true,
            ProbeKind::Readiness => false,
        };
        if final_verdict {
            self.on_hold = true;
            self.run_length = 0;
        }
        if previous == self.status {
            return None;
        }
        match (self.kind, success) {
            (ProbeKind::Startup, true) => Some(Transition::Started),
            (ProbeKind::Readiness, true) => Some(Transition::Ready),
            (ProbeKind::Readiness, false) => Some(Transition::NotReady),
            (ProbeKind::Liveness, false) | (ProbeKind::Startup, false) => Some(Transition::Failed),
            (ProbeKind::Liveness, true) => None,
        }
    }

    /// Starts over for a new container: initial status, counters cleared, first run after the
    /// initial delay. (Kubelet keeps a readiness probe's run of results across a restart; a
    /// new container starting from zero is the intended behaviour and what this does.)
    pub fn reset(&mut self) {
        *self = Self::with_settings(self.kind, self.settings);
    }

    /// Stops the probe for good, leaving a liveness or startup probe on success so the
    /// shutdown stays quiet (kubelet does this when the pod is being deleted).
    pub fn stop(&mut self) {
        self.stopped = true;
        if self.kind != ProbeKind::Readiness {
            self.status = ProbeStatus::Success;
        }
    }

    /// Moves the next run to the first of this probe's ticks at or after `now` (a probe held
    /// back by the startup probe resumes on its own period).
    fn resume_on_tick(&mut self, now: Duration) {
        if self.due >= now {
            return;
        }
        let period = self.settings.period.as_nanos().max(1);
        let behind = (now - self.due).as_nanos();
        let ticks = behind.div_ceil(period);
        self.tick = self.due + nanos(ticks * period);
        self.due = self.tick;
    }

    /// Runs the probe as soon as its initial delay allows (kubelet triggers a readiness probe
    /// by hand when the container started).
    fn trigger_at(&mut self, now: Duration) {
        let at = now.max(self.settings.initial_delay);
        self.tick = at;
        self.due = at;
    }

    fn advance_schedule(&mut self, now: Duration) {
        let period = self.settings.period;
        let next_tick = self.tick + period;
        if next_tick > now {
            self.tick = next_tick;
            self.due = next_tick;
            return;
        }
        // Ticks passed while the probe ran: one is kept and runs now, the rest are dropped.
        let period_nanos = period.as_nanos().max(1);
        let passed = (now - self.tick).as_nanos() / period_nanos;
        self.tick += nanos(passed * period_nanos);
        self.due = now;
    }
}

fn nanos(value: u128) -> Duration {
    let seconds = u64::try_from(value / 1_000_000_000).unwrap_or(u64::MAX);
    Duration::new(seconds, (value % 1_000_000_000) as u32)
}

/// The message of the `Killing` event for a container a probe failed, as kubelet words it:
/// `Container web failed liveness probe, will be restarted`.
pub fn killing_message(container_name: &str, kind: ProbeKind, will_restart: bool) -> String {
    let probe = match kind {
        ProbeKind::Startup => "startup",
        ProbeKind::Readiness => "readiness",
        ProbeKind::Liveness => "liveness",
    };
    let mut message = format!("Container {container_name} failed {probe} probe");
    if will_restart {
        message.push_str(", will be restarted");
    }
    message
}

/// The probes of one container together, with the gating between them: the startup probe runs
/// first, the others only once the container started.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ContainerProbes {
    startup: Option<ProbeState>,
    liveness: Option<ProbeState>,
    readiness: Option<ProbeState>,
}

impl ContainerProbes {
    /// The probes a container declares.
    pub fn new(container: &Container) -> ContainerProbes {
        ContainerProbes {
            startup: container
                .startup_probe
                .as_ref()
                .map(|p| ProbeState::new(ProbeKind::Startup, p)),
            liveness: container
                .liveness_probe
                .as_ref()
                .map(|p| ProbeState::new(ProbeKind::Liveness, p)),
            readiness: container
                .readiness_probe
                .as_ref()
                .map(|p| ProbeState::new(ProbeKind::Readiness, p)),
        }
    }

    /// One probe's state, if the container declares it.
    pub fn probe(&self, kind: ProbeKind) -> Option<&ProbeState> {
        match kind {
            ProbeKind::Startup => self.startup.as_ref(),
            ProbeKind::Liveness => self.liveness.as_ref(),
            ProbeKind::Readiness => self.readiness.as_ref(),
        }
    }

    fn probe_mut(&mut self, kind: ProbeKind) -> Option<&mut ProbeState> {
        match kind {
            ProbeKind::Startup => self.startup.as_mut(),
            ProbeKind::Liveness => self.liveness.as_mut(),
            ProbeKind::Readiness => self.readiness.as_mut(),
        }
    }

    /// The container status `started`: no startup probe, or it succeeded.
    pub fn started(&self) -> bool {
        self.startup
            .as_ref()
            .is_none_or(|p| p.status() == ProbeStatus::Success)
    }

    /// The container status `ready`: started, and no readiness probe or it succeeded.
    pub fn ready(&self) -> bool {
        self.started()
            && self
                .readiness
                .as_ref()
                .is_none_or(|p| p.status() == ProbeStatus::Success)
    }

    /// The probe to run next and when (time since the container started); `None` when no
    /// probe will run until something changes.
    pub fn next_due(&self) -> Option<(ProbeKind, Duration)> {
        let candidates: &[ProbeKind] = if self.started() {
            &[ProbeKind::Readiness, ProbeKind::Liveness]
        } else {
            &[ProbeKind::Startup]
        };
        candidates
            .iter()
            .filter_map(|&kind| Some((kind, self.probe(kind)?.next_run()?)))
            .min_by_key(|&(_, at)| at)
    }

    /// Every probe due at `now`, readiness first.
    pub fn due(&self, now: Duration) -> Vec<ProbeKind> {
        let candidates: &[ProbeKind] = if self.started() {
            &[ProbeKind::Readiness, ProbeKind::Liveness]
        } else {
            &[ProbeKind::Startup]
        };
        candidates
            .iter()
            .copied()
            .filter(|&kind| {
                self.probe(kind)
                    .and_then(ProbeState::next_run)
                    .is_some_and(|at| at <= now)
            })
            .collect()
    }

    /// Records a result of the `kind` probe finished at `now`; when it starts the container,
    /// readiness runs right away and liveness resumes on its period.
    pub fn observe(
        &mut self,
        kind: ProbeKind,
        result: &ProbeResult,
        now: Duration,
    ) -> Option<Transition> {
        if kind != ProbeKind::Startup && !self.started() {
            // Kubelet never runs these before the container started; a stray result is dropped.
            return None;
        }
        let transition = self.probe_mut(kind)?.observe(result, now);
        if transition == Some(Transition::Started) {
            if let Some(readiness) = self.readiness.as_mut() {
                readiness.trigger_at(now);
            }
            if let Some(liveness) = self.liveness.as_mut() {
                liveness.resume_on_tick(now);
            }
        }
        transition
    }

    /// Starts every probe over for a replacement container.
    pub fn reset(&mut self) {
        for probe in [&mut self.startup, &mut self.liveness, &mut self.readiness]
            .into_iter()
            .flatten()
        {
            probe.reset();
        }
    }

    /// The pod is being deleted: liveness and startup probes stop, readiness goes on.
    pub fn pod_terminating(&mut self) {
        for probe in [&mut self.startup, &mut self.liveness]
            .into_iter()
            .flatten()
        {
            probe.stop();
        }
    }

    /// The grace period for killing the container after `kind` failed: the probe's own
    /// `terminationGracePeriodSeconds` when set, else the pod's.
    pub fn kill_grace_period_seconds(&self, kind: ProbeKind, pod_grace_seconds: i64) -> i64 {
        self.probe(kind)
            .and_then(|p| p.settings().termination_grace_period_seconds)
            .unwrap_or(pod_grace_seconds)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: ProbeResult = ProbeResult::Success;

    fn fail() -> ProbeResult {
        ProbeResult::Failure("HTTP probe failed with statuscode: 500".to_string())
    }

    fn unknown() -> ProbeResult {
        ProbeResult::Unknown("strconv.Atoi: parsing \"http\": invalid syntax".to_string())
    }

    fn warn() -> ProbeResult {
        ProbeResult::Warning("Probe terminated redirects, Response body: ".to_string())
    }

    fn settings(success: u32, failure: u32) -> ProbeSettings {
        ProbeSettings {
            initial_delay: Duration::ZERO,
            period: Duration::from_secs(10),
            timeout: Duration::from_secs(1),
            success_threshold: success,
            failure_threshold: failure,
            termination_grace_period_seconds: None,
        }
    }

    fn secs(value: u64) -> Duration {
        Duration::from_secs(value)
    }

    #[test]
    fn defaults_are_kubelets() {
        let want = ProbeSettings {
            initial_delay: secs(0),
            period: secs(10),
            timeout: secs(1),
            success_threshold: 1,
            failure_threshold: 3,
            termination_grace_period_seconds: None,
        };
        assert_eq!(ProbeSettings::from_probe(&Probe::default()), want);
        let zeros = Probe {
            initial_delay_seconds: Some(0),
            period_seconds: Some(0),
            timeout_seconds: Some(0),
            success_threshold: Some(0),
            failure_threshold: Some(0),
            ..Default::default()
        };
        assert_eq!(ProbeSettings::from_probe(&zeros), want);
        let explicit = Probe {
            initial_delay_seconds: Some(10),
            period_seconds: Some(5),
            timeout_seconds: Some(2),
            success_threshold: Some(2),
            failure_threshold: Some(4),
            termination_grace_period_seconds: Some(7),
            ..Default::default()
        };
        assert_eq!(
            ProbeSettings::from_probe(&explicit),
            ProbeSettings {
                initial_delay: secs(10),
                period: secs(5),
                timeout: secs(2),
                success_threshold: 2,
                failure_threshold: 4,
                termination_grace_period_seconds: Some(7),
            }
        );
    }

    #[test]
    fn initial_status_depends_on_the_kind() {
        let cases = [
            (ProbeKind::Liveness, ProbeStatus::Success),
            (ProbeKind::Readiness, ProbeStatus::Failure),
            (ProbeKind::Startup, ProbeStatus::Unknown),
        ];
        for (kind, want) in cases {
            assert_eq!(
                ProbeState::with_settings(kind, settings(1, 3)).status(),
                want
            );
        }
    }

    /// Each step: the result observed, the transition expected, the status expected after.
    type Step = (ProbeResult, Option<Transition>, ProbeStatus);

    #[test]
    fn thresholds_and_holds_follow_kubelets_worker() {
        use ProbeStatus::{Failure as F, Success as Ok_, Unknown as U};
        let cases: Vec<(&str, ProbeKind, ProbeSettings, Vec<Step>)> = vec![
            (
                // worker_test.go TestFailureThreshold
                "readiness flips after failureThreshold failures",
                ProbeKind::Readiness,
                settings(1, 3),
                vec![
                    (S, Some(Transition::Ready), Ok_),
                    (S, None, Ok_),
                    (fail(), None, Ok_),
                    (fail(), None, Ok_),
                    (fail(), Some(Transition::NotReady), F),
                    (fail(), None, F),
                    (S, Some(Transition::Ready), Ok_),
                ],
            ),
            (
                // worker_test.go TestSuccessThreshold
                "readiness needs successThreshold successes in a row",
                ProbeKind::Readiness,
                settings(3, 1),
                vec![
                    (S, None, F),
                    (S, None, F),
                    (S, Some(Transition::Ready), Ok_),
                    (fail(), Some(Transition::NotReady), F),
                    (S, None, F),
                    (S, None, F),
                    (fail(), None, F),
                    (S, None, F),
                ],
            ),
            (
                // worker_test.go TestResultRunOnLivenessCheckFailure / TestOnHold...
                "liveness fails after failureThreshold and then holds",
                ProbeKind::Liveness,
                settings(1, 3),
                vec![
                    (fail(), None, Ok_),
                    (fail(), None, Ok_),
                    (S, None, Ok_),
                    (fail(), None, Ok_),
                    (fail(), None, Ok_),
                    (fail(), Some(Transition::Failed), F),
                    (S, None, F),
                    (fail(), None, F),
                ],
            ),
            (
                // worker_test.go TestResultRunOnStartupCheckFailure
                "startup succeeds once and then holds",
                ProbeKind::Startup,
                settings(1, 3),
                vec![
                    (fail(), None, U),
                    (fail(), None, U),
                    (S, Some(Transition::Started), Ok_),
                    (fail(), None, Ok_),
                    (fail(), None, Ok_),
                    (fail(), None, Ok_),
                ],
            ),
            (
                "startup fails after failureThreshold",
                ProbeKind::Startup,
                settings(1, 2),
                vec![
                    (fail(), None, U),
                    (fail(), Some(Transition::Failed), F),
                    (S, None, F),
                ],
            ),
            (
                "errored probes are thrown away without breaking a run",
                ProbeKind::Readiness,
                settings(1, 2),
                vec![
                    (S, Some(Transition::Ready), Ok_),
                    (fail(), None, Ok_),
                    (unknown(), None, Ok_),
                    (fail(), Some(Transition::NotReady), F),
                    (unknown(), None, F),
                ],
            ),
            (
                "a warning counts as success",
                ProbeKind::Readiness,
                settings(2, 1),
                vec![(warn(), None, F), (S, Some(Transition::Ready), Ok_)],
            ),
        ];
        for (name, kind, settings, steps) in cases {
            let mut state = ProbeState::with_settings(kind, settings);
            for (index, (result, transition, status)) in steps.into_iter().enumerate() {
                let now = secs(10 * index as u64);
                assert_eq!(
                    state.observe(&result, now),
                    transition,
                    "{name}: step {index}"
                );
                assert_eq!(state.status(), status, "{name}: status after step {index}");
            }
        }
    }

    #[test]
    fn runs_after_the_initial_delay_then_every_period() {
        let mut state = ProbeState::new(
            ProbeKind::Liveness,
            &Probe {
                initial_delay_seconds: Some(10),
                period_seconds: Some(5),
                ..Default::default()
            },
        );
        let ms = Duration::from_millis;
        assert_eq!(state.next_run(), Some(secs(10)));
        state.observe(&S, ms(10_200));
        assert_eq!(state.next_run(), Some(secs(15)));
        state.observe(&S, ms(15_100));
        assert_eq!(state.next_run(), Some(secs(20)));
        // A run that took past two ticks: one runs at once, the other is dropped.
        state.observe(&S, ms(27_000));
        assert_eq!(state.next_run(), Some(ms(27_000)));
        state.observe(&S, ms(27_500));
        assert_eq!(state.next_run(), Some(secs(30)));
    }

    #[test]
    fn reset_starts_a_held_probe_over() {
        let mut state = ProbeState::with_settings(ProbeKind::Liveness, settings(1, 1));
        assert_eq!(state.observe(&fail(), secs(0)), Some(Transition::Failed));
        assert_eq!(state.next_run(), None);
        state.reset();
        assert_eq!(state.next_run(), Some(secs(0)));
        assert_eq!(state.status(), ProbeStatus::Success);
        assert_eq!(state.observe(&fail(), secs(0)), Some(Transition::Failed));
    }

    fn probe(delay: i32, period: i32, failure: i32) -> Option<Probe> {
        Some(Probe {
            initial_delay_seconds: Some(delay),
            period_seconds: Some(period),
            failure_threshold: Some(failure),
            ..Default::default()
        })
    }

    #[test]
    fn startup_gates_liveness_and_readiness() {
        let container = Container {
            name: "web".to_string(),
            startup_probe: probe(0, 1, 30),
            liveness_probe: probe(0, 10, 3),
            readiness_probe: probe(0, 5, 3),
            ..Default::default()
        };
        let mut probes = ContainerProbes::new(&container);
        assert!(!probes.started());
        assert!(!probes.ready());
        assert_eq!(probes.next_due(), Some((ProbeKind::Startup, secs(0))));
        assert_eq!(probes.due(secs(0)), vec![ProbeKind::Startup]);

        assert_eq!(probes.observe(ProbeKind::Startup, &fail(), secs(0)), None);
        assert_eq!(probes.next_due(), Some((ProbeKind::Startup, secs(1))));
        // Other probes never run before the container started, even if asked.
        assert_eq!(probes.due(secs(1)), vec![ProbeKind::Startup]);
        assert_eq!(probes.observe(ProbeKind::Readiness, &S, secs(1)), None);
        assert!(!probes.ready());

        assert_eq!(
            probes.observe(ProbeKind::Startup, &S, secs(3)),
            Some(Transition::Started)
        );
        assert!(probes.started());
        assert!(!probes.ready(), "readiness has not succeeded yet");
        assert_eq!(probes.next_due(), Some((ProbeKind::Readiness, secs(3))));
        assert_eq!(
            probes
                .probe(ProbeKind::Liveness)
                .and_then(ProbeState::next_run),
            Some(secs(10)),
            "liveness resumes on its own period"
        );
        assert_eq!(probes.due(secs(3)), vec![ProbeKind::Readiness]);
        assert_eq!(
            probes.observe(ProbeKind::Readiness, &S, secs(3)),
            Some(Transition::Ready)
        );
        assert!(probes.ready());
        assert_eq!(probes.next_due(), Some((ProbeKind::Readiness, secs(8))));
        assert_eq!(
            probes.due(secs(10)),
            vec![ProbeKind::Readiness, ProbeKind::Liveness]
        );

        probes.reset();
        assert!(!probes.started());
        assert_eq!(probes.next_due(), Some((ProbeKind::Startup, secs(0))));
    }

    #[test]
    fn readiness_after_startup_still_waits_for_its_initial_delay() {
        let container = Container {
            startup_probe: probe(0, 1, 3),
            readiness_probe: probe(20, 5, 3),
            ..Default::default()
        };
        let mut probes = ContainerProbes::new(&container);
        probes.observe(ProbeKind::Startup, &S, secs(2));
        assert_eq!(probes.next_due(), Some((ProbeKind::Readiness, secs(20))));
    }

    #[test]
    fn readiness_and_started_without_probes() {
        let cases = [
            (Container::default(), true, true),
            (
                Container {
                    readiness_probe: probe(0, 10, 3),
                    ..Default::default()
                },
                true,
                false,
            ),
            (
                Container {
                    startup_probe: probe(0, 10, 3),
                    ..Default::default()
                },
                false,
                false,
            ),
        ];
        for (container, started, ready) in cases {
            let probes = ContainerProbes::new(&container);
            assert_eq!(probes.started(), started, "{container:?}");
            assert_eq!(probes.ready(), ready, "{container:?}");
        }
        assert_eq!(ContainerProbes::new(&Container::default()).next_due(), None);
    }

    #[test]
    fn deletion_stops_liveness_and_startup_but_not_readiness() {
        let container = Container {
            liveness_probe: probe(0, 10, 1),
            readiness_probe: probe(0, 10, 1),
            ..Default::default()
        };
        let mut probes = ContainerProbes::new(&container);
        probes.pod_terminating();
        let liveness = probes.probe(ProbeKind::Liveness).cloned();
        assert_eq!(liveness.as_ref().and_then(ProbeState::next_run), None);
        assert_eq!(liveness.map(|p| p.status()), Some(ProbeStatus::Success));
        assert_eq!(probes.observe(ProbeKind::Liveness, &fail(), secs(0)), None);
        assert_eq!(probes.next_due(), Some((ProbeKind::Readiness, secs(0))));
    }

    #[test]
    fn probe_grace_period_overrides_the_pods_for_its_kill() {
        let container = Container {
            liveness_probe: Some(Probe {
                termination_grace_period_seconds: Some(5),
                ..Default::default()
            }),
            startup_probe: Some(Probe::default()),
            ..Default::default()
        };
        let probes = ContainerProbes::new(&container);
        assert_eq!(probes.kill_grace_period_seconds(ProbeKind::Liveness, 30), 5);
        assert_eq!(probes.kill_grace_period_seconds(ProbeKind::Startup, 30), 30);
    }

    #[test]
    fn killing_messages_match_kubelet() {
        assert_eq!(
            killing_message("liveness", ProbeKind::Liveness, true),
            "Container liveness failed liveness probe, will be restarted"
        );
        assert_eq!(
            killing_message("app", ProbeKind::Startup, false),
            "Container app failed startup probe"
        );
    }
}
