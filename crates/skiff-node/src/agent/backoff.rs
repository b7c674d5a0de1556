//! kubelet's per-container back-off (client-go's `flowcontrol.Backoff`), as a pure value.
//!
//! The first failure restarts at once and arms the back-off at its base; each failure seen
//! while armed doubles it up to the maximum; a failure more than twice the maximum after the
//! last step starts over from the base (a container that ran for 10 minutes with kubelet's
//! 5 minute cap).

use std::time::Duration;

use tokio::time::Instant;

/// One container's back-off.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Backoff {
    base: Duration,
    max: Duration,
    /// The current delay and when it was last stepped.
    entry: Option<(Duration, Instant)>,
}

impl Backoff {
    /// A back-off starting at `base`, doubling up to `max`.
    pub fn new(base: Duration, max: Duration) -> Backoff {
        Backoff {
            base,
            max: max.max(base),
            entry: None,
        }
    }

    fn expired(&self, event_time: Instant, last_update: Instant) -> bool {
        event_time.saturating_duration_since(last_update) > self.max * 2
    }

    /// Whether an event (a container's exit) at `event_time` must still wait at `now`.
    pub fn in_backoff_since(&self, event_time: Instant, now: Instant) -> bool {
        match self.entry {
            None => false,
            Some((delay, last)) if !self.expired(event_time, last) => {
                now.saturating_duration_since(event_time) < delay
            }
            Some(_) => false,
        }
    }

    /// When the wait for an event at `event_time` ends.
    pub fn ends_at(&self, event_time: Instant) -> Instant {
        super::deadline::after(event_time, self.current())
    }

    /// Steps the back-off for an event at `event_time`: armed at the base the first time (or
    /// after a long quiet spell), doubled otherwise.
    pub fn next(&mut self, event_time: Instant, now: Instant) {
        let delay = match self.entry {
            Some((delay, last)) if !self.expired(event_time, last) => (delay * 2).min(self.max),
            _ => self.base,
        };
        self.entry = Some((delay, now));
    }

    /// The current delay (zero before the first step).
    pub fn current(&self) -> Duration {
        self.entry.map(|(d, _)| d).unwrap_or(Duration::ZERO)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_from_ten_seconds_to_five_minutes() {
        let origin = Instant::now();
        let mut backoff = Backoff::new(Duration::from_secs(10), Duration::from_secs(300));
        let mut now = origin;
        let mut waits = vec![];
        for _ in 0..8 {
            // The container runs for one second, then crashes.
            let exit = now + Duration::from_secs(1);
            let restart = if backoff.in_backoff_since(exit, exit) {
                backoff.ends_at(exit)
            } else {
                exit
            };
            waits.push((restart - exit).as_secs());
            backoff.next(exit, restart);
            now = restart;
        }
        assert_eq!(waits, [0, 10, 20, 40, 80, 160, 300, 300]);
    }

    #[test]
    fn waiting_is_measured_from_the_exit() {
        let start = Instant::now();
        let at = |ms: u64| start + Duration::from_millis(ms);
        let mut backoff = Backoff::new(Duration::from_secs(10), Duration::from_secs(300));
        let cases = [
            // (exit, now, in back-off before stepping)
            (0, 0, false),
        ];
        for (exit, now, waits) in cases {
            assert_eq!(backoff.in_backoff_since(at(exit), at(now)), waits);
            backoff.next(at(exit), at(now));
        }
        let table = [
            (1_000, 1_000, true),
            (1_000, 10_999, true),
            (1_000, 11_000, false),
        ];
        for (exit, now, waits) in table {
            assert_eq!(backoff.in_backoff_since(at(exit), at(now)), waits, "{now}");
        }
    }

    #[test]
    fn ten_quiet_minutes_reset_the_delay() {
        let start = Instant::now();
        let at = |s: u64| start + Duration::from_secs(s);
        let mut backoff = Backoff::new(Duration::from_secs(10), Duration::from_secs(300));
        backoff.next(at(0), at(0));
        backoff.next(at(5), at(10));
        assert_eq!(backoff.current(), Duration::from_secs(20));
        assert!(!backoff.in_backoff_since(at(10 + 601), at(10 + 601)));
        backoff.next(at(10 + 601), at(10 + 601));
        assert_eq!(backoff.current(), Duration::from_secs(10));
    }
}
