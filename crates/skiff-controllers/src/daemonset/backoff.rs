//! The failed-pod back-off of the daemon controller (`flowcontrol.Backoff` with 1 s initial
//! and 15 min maximum delay), keyed by DaemonSet and node: a node whose daemon pod keeps
//! failing gets it deleted and recreated at growing intervals, not in a hot loop. Pure: the
//! time is passed in.

use std::collections::HashMap;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};

/// First delay after a failed pod is deleted.
pub const INITIAL_DELAY: Duration = Duration::from_secs(1);
/// Longest delay.
pub const MAX_DELAY: Duration = Duration::from_secs(15 * 60);

#[derive(Debug, Clone, Copy)]
struct Entry {
    delay: Duration,
    last_update: Timestamp,
}

/// Back-off state per key, kept by the shell across syncs.
#[derive(Debug, Default, Clone)]
pub struct FailedPodBackoff {
    entries: HashMap<String, Entry>,
}

fn elapsed(since: Timestamp, now: Timestamp) -> Duration {
    let span: SignedDuration = now.duration_since(since);
    Duration::try_from(span).unwrap_or(Duration::ZERO)
}

impl FailedPodBackoff {
    /// No key backs off yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// The current delay of `key` (zero when it has none).
    pub fn delay(&self, key: &str) -> Duration {
        self.entries.get(key).map_or(Duration::ZERO, |e| e.delay)
    }

    /// `IsInBackOffSinceUpdate`: less than the current delay has passed since the last step.
    pub fn in_backoff_since_update(&self, key: &str, now: Timestamp) -> bool {
        self.entries
            .get(key)
            .is_some_and(|e| elapsed(e.last_update, now) < e.delay)
    }

    /// `Next`: starts the delay at [`INITIAL_DELAY`] (also after twice [`MAX_DELAY`] without a
    /// step), else doubles it up to [`MAX_DELAY`].
    pub fn next(&mut self, key: &str, now: Timestamp) {
        let delay = match self.entries.get(key) {
            Some(e) if elapsed(e.last_update, now) <= MAX_DELAY * 2 => (e.delay * 2).min(MAX_DELAY),
            _ => INITIAL_DELAY,
        };
        self.entries.insert(
            key.to_string(),
            Entry {
                delay,
                last_update: now,
            },
        );
    }

    /// Drops the entries not stepped for twice [`MAX_DELAY`] (`GC`).
    pub fn forget_expired(&mut self, now: Timestamp) {
        self.entries
            .retain(|_, e| elapsed(e.last_update, now) <= MAX_DELAY * 2);
    }
}
