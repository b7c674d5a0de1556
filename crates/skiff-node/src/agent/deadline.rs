//! Turning user-given seconds into waits and deadlines without overflow.
//!
//! `terminationGracePeriodSeconds` and `deletionGracePeriodSeconds` are `int64`: the API
//! accepts values (999999999999, `i64::MAX`) that no monotonic clock can add. Kubelet never
//! waits longer than a process lives anyway, so every wait is capped at [`LONGEST_WAIT`], far
//! beyond any real deadline, and adding it to an instant can never fail.

use std::time::Duration;

use tokio::time::Instant;

/// The longest wait the agent arms: thirty years, the horizon tokio's own "far future" uses.
pub const LONGEST_WAIT: Duration = Duration::from_secs(30 * 365 * 24 * 60 * 60);

/// A wait of `seconds` given by a user: negative means none, huge means [`LONGEST_WAIT`].
pub fn seconds(seconds: i64) -> Duration {
    let seconds = u64::try_from(seconds).unwrap_or(0);
    Duration::from_secs(seconds).min(LONGEST_WAIT)
}

/// `at + wait`, with `wait` capped at [`LONGEST_WAIT`] so that the sum always exists.
pub fn after(at: Instant, wait: Duration) -> Instant {
    let wait = wait.min(LONGEST_WAIT);
    // Cannot fail for any instant a running process reads from its clock; the fallback
    // keeps the answer in the future all the same.
    at.checked_add(wait)
        .or_else(|| at.checked_add(Duration::from_secs(24 * 60 * 60)))
        .unwrap_or(at)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_are_clamped_to_what_a_clock_can_hold() {
        let cases: &[(i64, Duration)] = &[
            (i64::MIN, Duration::ZERO),
            (-1, Duration::ZERO),
            (0, Duration::ZERO),
            (30, Duration::from_secs(30)),
            (86_400 * 365, Duration::from_secs(86_400 * 365)),
            (i32::MAX as i64, LONGEST_WAIT),
            (999_999_999_999, LONGEST_WAIT),
            (i64::MAX, LONGEST_WAIT),
        ];
        for &(given, expected) in cases {
            assert_eq!(seconds(given), expected, "seconds({given})");
        }
    }

    #[test]
    fn deadlines_saturate_instead_of_overflowing() {
        let now = Instant::now();
        let cases: &[(Duration, Duration)] = &[
            (Duration::ZERO, Duration::ZERO),
            (Duration::from_secs(30), Duration::from_secs(30)),
            (Duration::from_secs(999_999_999_999), LONGEST_WAIT),
            (Duration::from_secs(i64::MAX as u64), LONGEST_WAIT),
            (Duration::MAX, LONGEST_WAIT),
        ];
        for &(wait, expected) in cases {
            assert_eq!(after(now, wait) - now, expected, "after(now, {wait:?})");
        }
    }
}
