//! When probes run and what their results mean, as kubelet's prober workers decide it, kept
//! pure so every threshold and delay can be checked in a table.
//!
//! A tracker exists per container instance and probe kind. It is due first at the container's
//! start plus `initialDelaySeconds`, then every `periodSeconds`; a result only flips after
//! `failureThreshold` failures or `successThreshold` successes in a row. Readiness starts as
//! failure, liveness as success, startup as failure; until the startup probe succeeds, the
//! others do not run (the caller checks [`ProbeTracker::kind`] against the container's
//! `started`).

use std::time::Duration;

use k8s_openapi::api::core::v1::Probe;
use tokio::time::Instant;

/// Which probe.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ProbeKind {
    /// Restarts the container when it fails.
    Liveness,
    /// Decides whether the container is ready.
    Readiness,
    /// Gates the other two until the container has started.
    Startup,
}

impl ProbeKind {
    /// The word kubelet's messages use: `Liveness probe failed: ...`.
    pub fn title(self) -> &'static str {
        match self {
            ProbeKind::Liveness => "Liveness",
            ProbeKind::Readiness => "Readiness",
            ProbeKind::Startup => "Startup",
        }
    }

    /// Lower-case, as in `Container c failed liveness probe, will be restarted`.
    pub fn word(self) -> &'static str {
        match self {
            ProbeKind::Liveness => "liveness",
            ProbeKind::Readiness => "readiness",
            ProbeKind::Startup => "startup",
        }
    }
}

/// A probe's timing fields with Kubernetes' defaults filled in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProbeTiming {
    /// `initialDelaySeconds` (0).
    pub initial_delay: Duration,
    /// `periodSeconds` (10).
    pub period: Duration,
    /// `timeoutSeconds` (1).
    pub timeout: Duration,
    /// `successThreshold` (1).
    pub success_threshold: u32,
    /// `failureThreshold` (3).
    pub failure_threshold: u32,
}

impl ProbeTiming {
    /// The timing of `probe`; values below the API minimum are raised to it.
    pub fn of(probe: &Probe) -> ProbeTiming {
        let secs = |v: Option<i32>, default: i32, min: i32| {
            Duration::from_secs(v.unwrap_or(default).max(min) as u64)
        };
        let count = |v: Option<i32>, default: i32| v.unwrap_or(default).max(1) as u32;
        ProbeTiming {
            initial_delay: secs(probe.initial_delay_seconds, 0, 0),
            period: secs(probe.period_seconds, 10, 1),
            timeout: secs(probe.timeout_seconds, 1, 1),
            success_threshold: count(probe.success_threshold, 1),
            failure_threshold: count(probe.failure_threshold, 3),
        }
    }
}

/// The state of one probe of one container instance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProbeTracker {
    kind: ProbeKind,
    timing: ProbeTiming,
    next_due: Instant,
    in_flight: bool,
    /// The last raw result and how many times in a row it came.
    streak: Option<(bool, u32)>,
    /// The result that counts (after thresholds).
    result: bool,
}

impl ProbeTracker {
    /// A tracker for a container that started at `started`.
    pub fn new(kind: ProbeKind, timing: ProbeTiming, started: Instant) -> ProbeTracker {
        ProbeTracker {
            kind,
            timing,
            next_due: super::deadline::after(started, timing.initial_delay),
            in_flight: false,
            streak: None,
            result: kind == ProbeKind::Liveness,
        }
    }

    /// Which probe this is.
    pub fn kind(&self) -> ProbeKind {
        self.kind
    }

    /// The probe's timing.
    pub fn timing(&self) -> ProbeTiming {
        self.timing
    }

    /// When the next check is due (meaningless while one is in flight).
    pub fn next_due(&self) -> Option<Instant> {
        (!self.in_flight).then_some(self.next_due)
    }

    /// Whether a check should start at `now`.
    pub fn is_due(&self, now: Instant) -> bool {
        !self.in_flight && now >= self.next_due
    }

    /// Marks a check as started at `now`; the next is due a period later.
    pub fn begin(&mut self, now: Instant) {
        self.in_flight = true;
        self.next_due = super::deadline::after(now, self.timing.period);
    }

    /// Records a check's outcome; returns the new result when it flips.
    pub fn record(&mut self, success: bool) -> Option<bool> {
        self.in_flight = false;
        let count = match self.streak {
            Some((last, n)) if last == success => n.saturating_add(1),
            _ => 1,
        };
        self.streak = Some((success, count));
        let threshold = if success {
            self.timing.success_threshold
        } else {
            self.timing.failure_threshold
        };
        if count < threshold || self.result == success {
            return None;
        }
        self.result = success;
        Some(success)
    }

    /// The result that counts: ready, alive or started.
    pub fn result(&self) -> bool {
        self.result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe(fields: serde_json::Value) -> Probe {
        serde_json::from_value(fields).unwrap()
    }

    #[test]
    fn timing_fields_default_as_kubernetes() {
        let cases = [
            (serde_json::json!({}), (0, 10, 1, 1, 3)),
            (
                serde_json::json!({"initialDelaySeconds": 10, "periodSeconds": 5,
                    "timeoutSeconds": 2, "successThreshold": 2, "failureThreshold": 1}),
                (10, 5, 2, 2, 1),
            ),
            (
                serde_json::json!({"periodSeconds": 0, "failureThreshold": 0, "initialDelaySeconds": -3}),
                (0, 1, 1, 1, 1),
            ),
        ];
        for (fields, (delay, period, timeout, success, failure)) in cases {
            let t = ProbeTiming::of(&probe(fields.clone()));
            assert_eq!(
                (
                    t.initial_delay.as_secs(),
                    t.period.as_secs(),
                    t.timeout.as_secs(),
                    t.success_threshold,
                    t.failure_threshold
                ),
                (delay, period, timeout, success, failure),
                "{fields}"
            );
        }
    }

    #[test]
    fn results_flip_only_after_their_threshold() {
        // (kind, success threshold, failure threshold, outcomes, expected flips)
        type Case = (
            ProbeKind,
            u32,
            u32,
            &'static [bool],
            &'static [Option<bool>],
        );
        let cases: &[Case] = &[
            // Readiness starts unready and turns ready on the first success.
            (
                ProbeKind::Readiness,
                1,
                3,
                &[true, true],
                &[Some(true), None],
            ),
            (
                ProbeKind::Readiness,
                2,
                3,
                &[true, false, true, true],
                &[None, None, None, Some(true)],
            ),
            // Liveness starts alive: it takes three failures in a row.
            (
                ProbeKind::Liveness,
                1,
                3,
                &[false, false, true, false, false, false],
                &[None, None, None, None, None, Some(false)],
            ),
            // Readiness drops after the failure threshold and comes back.
            (
                ProbeKind::Readiness,
                1,
                2,
                &[true, false, false, true],
                &[Some(true), None, Some(false), Some(true)],
            ),
            (
                ProbeKind::Startup,
                1,
                3,
                &[false, true],
                &[None, Some(true)],
            ),
        ];
        for (kind, success, failure, outcomes, flips) in cases {
            let timing = ProbeTiming {
                initial_delay: Duration::ZERO,
                period: Duration::from_secs(1),
                timeout: Duration::from_secs(1),
                success_threshold: *success,
                failure_threshold: *failure,
            };
            let mut t = ProbeTracker::new(*kind, timing, Instant::now());
            let got: Vec<Option<bool>> = outcomes.iter().map(|o| t.record(*o)).collect();
            assert_eq!(&got, flips, "{kind:?} {outcomes:?}");
        }
    }

    #[test]
    fn checks_are_due_after_the_initial_delay_then_every_period() {
        let start = Instant::now();
        let timing = ProbeTiming::of(&probe(
            serde_json::json!({"initialDelaySeconds": 10, "periodSeconds": 5}),
        ));
        let mut t = ProbeTracker::new(ProbeKind::Liveness, timing, start);
        let at = |s| start + Duration::from_secs(s);
        assert!(!t.is_due(at(9)));
        assert!(t.is_due(at(10)));
        t.begin(at(10));
        assert!(!t.is_due(at(20)), "one check at a time");
        assert_eq!(t.next_due(), None);
        t.record(true);
        assert_eq!(t.next_due(), Some(at(15)));
        assert!(t.is_due(at(15)));
    }
}
