//! Expectations: what a controller is waiting to see in its informer after its own writes.
//!
//! A controller that creates three pods must not count again before its informer has
//! observed them, or it would create more. It records "expect 3 creations" for the owner's
//! key; informer handlers lower the count as the pods appear; the owner is synced again only
//! once the expectations are met, or once they are older than a TTL (5 minutes in Kubernetes),
//! which recovers from writes whose watch events were lost.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

/// How long expectations hold a controller back before they are considered stale.
pub const EXPECTATIONS_TTL: Duration = Duration::from_secs(5 * 60);

/// Outstanding creations and deletions for one controller key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pending {
    /// Creations not yet observed.
    pub adds: i64,
    /// Deletions not yet observed.
    pub deletes: i64,
}

impl Pending {
    /// Whether everything expected was observed (more than expected also counts).
    pub fn fulfilled(&self) -> bool {
        self.adds <= 0 && self.deletes <= 0
    }
}

#[derive(Debug)]
struct Record {
    pending: Pending,
    set_at: Instant,
}

/// Expectations of all keys of one controller; shared by its workers and informer handlers.
#[derive(Debug)]
pub struct Expectations {
    ttl: Duration,
    records: Mutex<HashMap<String, Record>>,
}

impl Default for Expectations {
    fn default() -> Self {
        Self::new()
    }
}

impl Expectations {
    /// Expectations with Kubernetes' 5 minute TTL.
    pub fn new() -> Self {
        Self::with_ttl(EXPECTATIONS_TTL)
    }

    /// Expectations that expire after `ttl`.
    pub fn with_ttl(ttl: Duration) -> Self {
        Expectations {
            ttl,
            records: Mutex::new(HashMap::new()),
        }
    }

    fn records(&self) -> MutexGuard<'_, HashMap<String, Record>> {
        // Each critical section is one map operation; a panic elsewhere cannot tear it.
        self.records.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Replaces `key`'s expectations and restarts its TTL.
    pub fn set(&self, key: &str, adds: i64, deletes: i64) {
        self.records().insert(
            key.to_string(),
            Record {
                pending: Pending { adds, deletes },
                set_at: Instant::now(),
            },
        );
    }

    /// Expects `count` creations for `key` (replacing earlier expectations).
    pub fn expect_creations(&self, key: &str, count: usize) {
        self.set(key, i64::try_from(count).unwrap_or(i64::MAX), 0);
    }

    /// Expects `count` deletions for `key` (replacing earlier expectations).
    pub fn expect_deletions(&self, key: &str, count: usize) {
        self.set(key, 0, i64::try_from(count).unwrap_or(i64::MAX));
    }

    /// Adds to `key`'s outstanding counts, if it has expectations; the TTL is not restarted.
    pub fn raise(&self, key: &str, adds: i64, deletes: i64) {
        if let Some(record) = self.records().get_mut(key) {
            record.pending.adds = record.pending.adds.saturating_add(adds);
            record.pending.deletes = record.pending.deletes.saturating_add(deletes);
        }
    }

    /// Subtracts from `key`'s outstanding counts, if it has expectations; used when writes
    /// were observed or will never happen (a failed create).
    pub fn lower(&self, key: &str, adds: i64, deletes: i64) {
        self.raise(key, adds.saturating_neg(), deletes.saturating_neg());
    }

    /// One expected creation was observed.
    pub fn creation_observed(&self, key: &str) {
        self.lower(key, 1, 0);
    }

    /// One expected deletion was observed.
    pub fn deletion_observed(&self, key: &str) {
        self.lower(key, 0, 1);
    }

    /// Whether `key` may be synced: it has no expectations, they are fulfilled, or they are
    /// older than the TTL.
    pub fn satisfied(&self, key: &str) -> bool {
        match self.records().get(key) {
            None => true,
            Some(record) if record.pending.fulfilled() => true,
            Some(record) => {
                let expired = Instant::now().saturating_duration_since(record.set_at) > self.ttl;
                if expired {
                    tracing::debug!(key, ?record.pending, "expectations expired");
                }
                expired
            }
        }
    }

    /// `key`'s outstanding counts, if it has expectations.
    pub fn get(&self, key: &str) -> Option<Pending> {
        self.records().get(key).map(|r| r.pending)
    }

    /// Forgets `key`, for example when its object was deleted.
    pub fn delete(&self, key: &str) {
        self.records().remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn satisfied_table() {
        enum Op {
            Creations(usize),
            Deletions(usize),
            Created,
            Deleted,
            Raise(i64, i64),
            Lower(i64, i64),
            Wait(u64),
            Forget,
        }
        use Op::*;
        let cases: Vec<(&str, Vec<Op>, bool)> = vec![
            ("no expectations", vec![], true),
            ("creations outstanding", vec![Creations(2), Created], false),
            (
                "all creations seen",
                vec![Creations(2), Created, Created],
                true,
            ),
            (
                "more seen than expected",
                vec![Creations(1), Created, Created],
                true,
            ),
            ("deletions outstanding", vec![Deletions(1)], false),
            ("deletions seen", vec![Deletions(1), Deleted], true),
            (
                "raised after set",
                vec![Creations(1), Raise(1, 0), Created],
                false,
            ),
            (
                "lowered for failed writes",
                vec![Creations(3), Lower(2, 0), Created],
                true,
            ),
            (
                "observations without expectations do nothing",
                vec![Created, Raise(3, 3)],
                true,
            ),
            ("younger than the TTL", vec![Creations(1), Wait(299)], false),
            ("older than the TTL", vec![Creations(1), Wait(301)], true),
            (
                "raise does not restart the TTL",
                vec![Creations(1), Wait(200), Raise(1, 0), Wait(101)],
                true,
            ),
            (
                "set restarts the TTL",
                vec![Creations(1), Wait(200), Deletions(1), Wait(101)],
                false,
            ),
            ("deleted key", vec![Creations(1), Forget], true),
        ];
        for (name, ops, want) in cases {
            let e = Expectations::new();
            let key = "default/rs";
            for op in ops {
                match op {
                    Creations(n) => e.expect_creations(key, n),
                    Deletions(n) => e.expect_deletions(key, n),
                    Created => e.creation_observed(key),
                    Deleted => e.deletion_observed(key),
                    Raise(a, d) => e.raise(key, a, d),
                    Lower(a, d) => e.lower(key, a, d),
                    Wait(s) => tokio::time::advance(Duration::from_secs(s)).await,
                    Forget => e.delete(key),
                }
            }
            assert_eq!(e.satisfied(key), want, "{name}");
            assert!(
                e.satisfied("other/key"),
                "{name}: other keys are independent"
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn pending_counts_are_visible() {
        let e = Expectations::with_ttl(Duration::from_secs(1));
        e.set("k", 2, 1);
        e.creation_observed("k");
        assert_eq!(
            e.get("k"),
            Some(Pending {
                adds: 1,
                deletes: 1
            })
        );
        assert_eq!(e.get("missing"), None);
        tokio::time::advance(Duration::from_secs(2)).await;
        assert!(e.satisfied("k"));
    }
}
