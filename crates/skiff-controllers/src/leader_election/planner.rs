//! The pure decision of one leader-election attempt, as client-go's `tryAcquireOrRenew` makes
//! it: given the Lease as read, what this candidate last saw of it and when, and the time, say
//! whether to create the Lease, take it or renew it, or wait.
//!
//! Expiry is judged on the candidate's own clock, from the moment it last saw the record
//! change, never from the `renewTime` another server wrote: clocks of different machines may
//! disagree, and a record that keeps changing is alive whatever its times say.

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};

/// The fields of a `coordination.k8s.io/v1` Lease spec that leader election reads and writes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaderRecord {
    /// Who holds the lease; empty once a leader released it.
    pub holder_identity: String,
    /// How long the holder's claim lasts without renewal.
    pub lease_duration_seconds: i32,
    /// When the current holder took the lease.
    pub acquire_time: Option<Timestamp>,
    /// When the current holder last renewed it.
    pub renew_time: Option<Timestamp>,
    /// How many times the lease changed hands.
    pub lease_transitions: i32,
}

/// What a candidate remembers of the Lease between attempts: the record it last saw and when
/// it first saw it (on its own clock).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Observation {
    /// The record as last read or written.
    pub record: LeaderRecord,
    /// When this candidate first saw that record.
    pub observed_at: Timestamp,
}

/// The timing of an election, as kube-controller-manager's `--leader-elect-*` flags give it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ElectionTiming {
    /// How long a claim lasts: others wait this long after the record last changed.
    pub lease_duration: Duration,
    /// How long a leader keeps leading without a successful renewal before it steps down.
    pub renew_deadline: Duration,
    /// How often candidates try to take the lease and leaders renew it.
    pub retry_period: Duration,
}

impl ElectionTiming {
    /// Kubernetes' defaults: 15 s lease, 10 s renew deadline, 2 s retry period.
    pub const KUBERNETES: ElectionTiming = ElectionTiming {
        lease_duration: Duration::from_secs(15),
        renew_deadline: Duration::from_secs(10),
        retry_period: Duration::from_secs(2),
    };

    /// Checks the relations client-go requires, so that a leader always stops before its
    /// lease can be taken: lease duration > renew deadline > retry period × 1.2, all positive.
    pub fn validate(&self) -> Result<(), String> {
        if self.retry_period.is_zero() {
            return Err("--leader-elect-retry-period must be greater than zero".into());
        }
        if self.lease_duration <= self.renew_deadline {
            return Err(
                "--leader-elect-lease-duration must be greater than --leader-elect-renew-deadline"
                    .into(),
            );
        }
        if self.renew_deadline.as_secs_f64() <= JITTER_FACTOR * self.retry_period.as_secs_f64() {
            return Err(format!(
                "--leader-elect-renew-deadline must be greater than {JITTER_FACTOR} × --leader-elect-retry-period"
            ));
        }
        if i32::try_from(self.lease_duration.as_secs()).is_err()
            || self.lease_duration_seconds() < 1
        {
            return Err("--leader-elect-lease-duration must be between 1 s and 2^31 s".into());
        }
        Ok(())
    }

    /// The lease duration as the Lease's whole seconds (at least 1).
    pub fn lease_duration_seconds(&self) -> i32 {
        i32::try_from(self.lease_duration.as_secs())
            .unwrap_or(i32::MAX)
            .max(1)
    }
}

/// client-go's jitter factor for the retry period: attempts are spread over 1 to 2.2 periods.
pub const JITTER_FACTOR: f64 = 1.2;

/// What one attempt does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Attempt {
    /// No Lease exists: create it with this record.
    Create(LeaderRecord),
    /// Write this record over the Lease read (a conflict means someone else wrote first).
    Write(LeaderRecord),
    /// Another candidate holds a claim that has not run out: try again later.
    Wait {
        /// The current holder.
        holder: String,
    },
}

/// Decides one attempt of `identity` to take or renew the lease.
///
/// `current` is the Lease as just read (`None` if it does not exist); `remembered` what this
/// candidate saw before. Returns the attempt and what to remember next.
pub fn plan_attempt(
    identity: &str,
    timing: &ElectionTiming,
    current: Option<&LeaderRecord>,
    remembered: Option<&Observation>,
    now: Timestamp,
) -> (Attempt, Option<Observation>) {
    let fresh = LeaderRecord {
        holder_identity: identity.to_string(),
        lease_duration_seconds: timing.lease_duration_seconds(),
        acquire_time: Some(now),
        renew_time: Some(now),
        lease_transitions: 0,
    };
    let Some(current) = current else {
        return (Attempt::Create(fresh), None);
    };
    // A changed record restarts the clock: its writer was alive just now.
    let observation = match remembered {
        Some(seen) if seen.record == *current => seen.clone(),
        _ => Observation {
            record: current.clone(),
            observed_at: now,
        },
    };
    let held_by_us = current.holder_identity == identity;
    if !current.holder_identity.is_empty() && !held_by_us {
        let expires = observation
            .observed_at
            .checked_add(SignedDuration::from_secs(i64::from(
                current.lease_duration_seconds.max(0),
            )))
            .unwrap_or(Timestamp::MAX);
        if expires > now {
            let holder = current.holder_identity.clone();
            return (Attempt::Wait { holder }, Some(observation));
        }
    }
    let record = if held_by_us {
        LeaderRecord {
            acquire_time: current.acquire_time,
            lease_transitions: current.lease_transitions,
            ..fresh
        }
    } else {
        LeaderRecord {
            lease_transitions: current.lease_transitions.saturating_add(1),
            ..fresh
        }
    };
    (Attempt::Write(record), Some(observation))
}

/// The record a leader writes when it stops on purpose, so that others need not wait for the
/// lease to run out: no holder, a one-second duration, the transition count kept.
pub fn released(current: &LeaderRecord, now: Timestamp) -> LeaderRecord {
    LeaderRecord {
        holder_identity: String::new(),
        lease_duration_seconds: 1,
        acquire_time: Some(now),
        renew_time: Some(now),
        lease_transitions: current.lease_transitions,
    }
}

/// Whether a leader whose last successful renewal was at `last_renewed` must stop leading now:
/// once the renew deadline has passed, others may take the lease as soon as it runs out, so
/// the leader stops first.
pub fn must_step_down(timing: &ElectionTiming, last_renewed: Timestamp, now: Timestamp) -> bool {
    let deadline = last_renewed
        .checked_add(SignedDuration::try_from(timing.renew_deadline).unwrap_or(SignedDuration::MAX))
        .unwrap_or(Timestamp::MAX);
    now >= deadline
}

#[cfg(test)]
mod tests {
    use super::*;

    const ME: &str = "server-a_11111111-1111-1111-1111-111111111111";
    const OTHER: &str = "server-b_22222222-2222-2222-2222-222222222222";

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + seconds).unwrap()
    }

    fn held_by(holder: &str, acquired: i64, renewed: i64, transitions: i32) -> LeaderRecord {
        LeaderRecord {
            holder_identity: holder.to_string(),
            lease_duration_seconds: 15,
            acquire_time: Some(at(acquired)),
            renew_time: Some(at(renewed)),
            lease_transitions: transitions,
        }
    }

    fn seen(record: &LeaderRecord, when: i64) -> Observation {
        Observation {
            record: record.clone(),
            observed_at: at(when),
        }
    }

    #[test]
    fn kubernetes_default_timing_is_valid() {
        assert_eq!(ElectionTiming::KUBERNETES.validate(), Ok(()));
        assert_eq!(ElectionTiming::KUBERNETES.lease_duration_seconds(), 15);
    }

    #[test]
    fn timing_that_could_let_two_leaders_overlap_is_refused() {
        let cases = [
            (15, 15, 2, "lease-duration must be greater than"),
            (15, 10, 0, "retry-period must be greater than zero"),
            (15, 2, 2, "renew-deadline must be greater than 1.2"),
        ];
        for (lease, renew, retry, message) in cases {
            let timing = ElectionTiming {
                lease_duration: Duration::from_secs(lease),
                renew_deadline: Duration::from_secs(renew),
                retry_period: Duration::from_secs(retry),
            };
            let error = timing.validate().expect_err("invalid timing accepted");
            assert!(error.contains(message), "{lease}/{renew}/{retry}: {error}");
        }
    }

    #[test]
    fn attempts_follow_client_go() {
        let timing = ElectionTiming::KUBERNETES;
        let theirs = held_by(OTHER, 0, 5, 3);
        let mine = held_by(ME, 0, 5, 3);
        let released_record = released(&theirs, at(6));
        struct Case {
            name: &'static str,
            current: Option<LeaderRecord>,
            remembered: Option<Observation>,
            now: i64,
            attempt: Attempt,
            observed_at: Option<i64>,
        }
        let cases = [
            Case {
                name: "no lease: create it, first holder, no transition",
                current: None,
                remembered: None,
                now: 10,
                attempt: Attempt::Create(held_by(ME, 10, 10, 0)),
                observed_at: None,
            },
            Case {
                name: "another's lease seen for the first time: wait a full duration",
                current: Some(theirs.clone()),
                remembered: None,
                now: 100,
                attempt: Attempt::Wait {
                    holder: OTHER.into(),
                },
                observed_at: Some(100),
            },
            Case {
                name: "another's unchanged lease within its duration: wait",
                current: Some(theirs.clone()),
                remembered: Some(seen(&theirs, 100)),
                now: 114,
                attempt: Attempt::Wait {
                    holder: OTHER.into(),
                },
                observed_at: Some(100),
            },
            Case {
                name: "another's lease renewed since: the clock restarts",
                current: Some(held_by(OTHER, 0, 20, 3)),
                remembered: Some(seen(&theirs, 100)),
                now: 120,
                attempt: Attempt::Wait {
                    holder: OTHER.into(),
                },
                observed_at: Some(120),
            },
            Case {
                name: "another's unchanged lease past its duration: take it, one more transition",
                current: Some(theirs.clone()),
                remembered: Some(seen(&theirs, 100)),
                now: 115,
                attempt: Attempt::Write(held_by(ME, 115, 115, 4)),
                observed_at: Some(100),
            },
            Case {
                name: "expiry ignores the holder's renewTime (clock skew)",
                current: Some(held_by(OTHER, 0, -1000, 3)),
                remembered: None,
                now: 0,
                attempt: Attempt::Wait {
                    holder: OTHER.into(),
                },
                observed_at: Some(0),
            },
            Case {
                name: "our own lease: renew, keeping acquireTime and transitions",
                current: Some(mine.clone()),
                remembered: Some(seen(&mine, 5)),
                now: 7,
                attempt: Attempt::Write(held_by(ME, 0, 7, 3)),
                observed_at: Some(5),
            },
            Case {
                name: "our own lease, even past its duration: renew",
                current: Some(mine.clone()),
                remembered: Some(seen(&mine, 5)),
                now: 60,
                attempt: Attempt::Write(held_by(ME, 0, 60, 3)),
                observed_at: Some(5),
            },
            Case {
                name: "a released lease: take it at once, one more transition",
                current: Some(released_record.clone()),
                remembered: None,
                now: 7,
                attempt: Attempt::Write(held_by(ME, 7, 7, 4)),
                observed_at: Some(7),
            },
        ];
        for case in cases {
            let (attempt, observation) = plan_attempt(
                ME,
                &timing,
                case.current.as_ref(),
                case.remembered.as_ref(),
                at(case.now),
            );
            assert_eq!(attempt, case.attempt, "{}", case.name);
            assert_eq!(
                observation.as_ref().map(|o| o.observed_at),
                case.observed_at.map(at),
                "{}",
                case.name
            );
            if let Some(observation) = observation {
                assert_eq!(
                    Some(&observation.record),
                    case.current.as_ref(),
                    "{}: the record read is remembered",
                    case.name
                );
            }
        }
    }

    #[test]
    fn a_shorter_lease_duration_is_written_and_honoured() {
        let timing = ElectionTiming {
            lease_duration: Duration::from_secs(4),
            renew_deadline: Duration::from_secs(3),
            retry_period: Duration::from_secs(1),
        };
        let (attempt, _) = plan_attempt(ME, &timing, None, None, at(0));
        let Attempt::Create(record) = attempt else {
            panic!("expected a create, got {attempt:?}");
        };
        assert_eq!(record.lease_duration_seconds, 4);
        let theirs = LeaderRecord {
            lease_duration_seconds: 4,
            ..held_by(OTHER, 0, 0, 0)
        };
        let remembered = seen(&theirs, 0);
        let (waiting, _) = plan_attempt(ME, &timing, Some(&theirs), Some(&remembered), at(3));
        assert!(matches!(waiting, Attempt::Wait { .. }), "{waiting:?}");
        let (taking, _) = plan_attempt(ME, &timing, Some(&theirs), Some(&remembered), at(4));
        assert_eq!(
            taking,
            Attempt::Write(held_by(ME, 4, 4, 1)).with_duration(4)
        );
    }

    impl Attempt {
        fn with_duration(self, seconds: i32) -> Attempt {
            match self {
                Attempt::Write(record) => Attempt::Write(LeaderRecord {
                    lease_duration_seconds: seconds,
                    ..record
                }),
                other => other,
            }
        }
    }

    #[test]
    fn releasing_clears_the_holder_and_keeps_the_count() {
        let record = released(&held_by(ME, 0, 5, 7), at(9));
        assert_eq!(
            record,
            LeaderRecord {
                holder_identity: String::new(),
                lease_duration_seconds: 1,
                acquire_time: Some(at(9)),
                renew_time: Some(at(9)),
                lease_transitions: 7,
            }
        );
    }

    #[test]
    fn a_leader_steps_down_at_the_renew_deadline_before_the_lease_runs_out() {
        let timing = ElectionTiming::KUBERNETES;
        assert!(!must_step_down(&timing, at(0), at(9)));
        assert!(must_step_down(&timing, at(0), at(10)));
        assert!(must_step_down(&timing, at(0), at(11)));
        // The others wait a full lease duration from the last renewal they saw.
        assert!(timing.renew_deadline < timing.lease_duration);
    }
}
