//! One timer for many pods: keys ordered by when they are due, so thousands of pods cost one
//! sleep rather than one task each.

use std::collections::{BTreeSet, HashMap};
use std::hash::Hash;

use tokio::time::Instant;

/// Keys waiting for their moment. Scheduling a key that is already waiting keeps the earlier
/// of the two moments.
#[derive(Debug)]
pub(crate) struct DelayQueue<K> {
    by_time: BTreeSet<(Instant, u64, K)>,
    by_key: HashMap<K, (Instant, u64)>,
    sequence: u64,
}

impl<K: Clone + Ord + Hash> DelayQueue<K> {
    pub(crate) fn new() -> DelayQueue<K> {
        DelayQueue {
            by_time: BTreeSet::new(),
            by_key: HashMap::new(),
            sequence: 0,
        }
    }

    /// Makes `key` due at `at`, or earlier if it already was.
    pub(crate) fn schedule(&mut self, key: K, at: Instant) {
        if let Some((existing, seq)) = self.by_key.get(&key).copied() {
            if existing <= at {
                return;
            }
            self.by_time.remove(&(existing, seq, key.clone()));
        }
        self.sequence += 1;
        self.by_time.insert((at, self.sequence, key.clone()));
        self.by_key.insert(key, (at, self.sequence));
    }

    /// Forgets `key`.
    pub(crate) fn remove(&mut self, key: &K) {
        if let Some((at, seq)) = self.by_key.remove(key) {
            self.by_time.remove(&(at, seq, key.clone()));
        }
    }

    /// When the first key is due.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.by_time.first().map(|(at, ..)| *at)
    }

    /// Takes the first key if it is due at `now`.
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<K> {
        let first = self.by_time.first()?;
        if first.0 > now {
            return None;
        }
        let (_, _, key) = self.by_time.pop_first()?;
        self.by_key.remove(&key);
        Some(key)
    }

    /// How many keys wait.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.by_key.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn keys_come_out_in_time_order_once_due() {
        let start = Instant::now();
        let at = |ms| start + Duration::from_millis(ms);
        let mut q = DelayQueue::new();
        q.schedule("b", at(20));
        q.schedule("a", at(10));
        q.schedule("c", at(30));
        assert_eq!(q.next_deadline(), Some(at(10)));
        assert_eq!(q.pop_due(at(5)), None);
        assert_eq!(q.pop_due(at(25)), Some("a"));
        assert_eq!(q.pop_due(at(25)), Some("b"));
        assert_eq!(q.pop_due(at(25)), None);
        assert_eq!(q.len(), 1);
    }

    #[test]
    fn rescheduling_keeps_the_earlier_moment() {
        let start = Instant::now();
        let at = |ms| start + Duration::from_millis(ms);
        let mut q = DelayQueue::new();
        q.schedule("a", at(50));
        q.schedule("a", at(10));
        q.schedule("a", at(40));
        assert_eq!(q.len(), 1);
        assert_eq!(q.next_deadline(), Some(at(10)));
        q.remove(&"a");
        assert_eq!(q.next_deadline(), None);
        assert_eq!(q.pop_due(at(100)), None);
    }
}
