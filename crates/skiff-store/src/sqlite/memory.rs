//! The in-memory mirror of the database that serves every read and every watch.
//!
//! Only the writer thread mutates it, and only after the transaction holding the same changes has
//! committed, so a reader never sees a write that could still be lost.

use std::collections::{BTreeMap, VecDeque};
use std::ops::Bound;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use tokio::sync::broadcast;

use crate::{
    EventKind, Extracted, KeyValue, ListResult, Revision, StoreError, ValueExtractor, WatchEvent,
};

/// How much of the rest of a prefix a list page walks to fill in `remaining`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Counting {
    /// Count every key after the page: exact, but a walk over the rest of the prefix.
    Exact,
    /// Look at one key past the page: `remaining` is 1 if it exists, else 0.
    AnyMore,
}

/// Everything a read or a watch needs, guarded by one lock so that a watch can take its history
/// snapshot and subscribe to live events atomically with respect to the writer.
pub(crate) struct MemoryState {
    /// The current value of every key, in key order.
    pub current: BTreeMap<String, KeyValue>,
    /// The latest committed revision.
    pub revision: Revision,
    /// The latest compacted revision; `history` starts right after it.
    pub compacted: Revision,
    /// Every event with a revision in `compacted + 1 ..= revision`, oldest first.
    pub history: VecDeque<Arc<WatchEvent>>,
    /// Fan-out of committed events to running watches; `None` once the store has stopped.
    pub live: Option<broadcast::Sender<Arc<WatchEvent>>>,
    /// Why the store can no longer be used, once it cannot.
    pub failure: Option<String>,
    /// What computes [`KeyValue::extracted`] for every value in `current`, once installed.
    pub extractor: Option<Arc<dyn ValueExtractor>>,
}

impl MemoryState {
    /// Fails with the reason the store stopped working, if it has.
    pub fn ensure_usable(&self) -> Result<(), StoreError> {
        match &self.failure {
            Some(reason) => Err(StoreError::Backend(reason.clone())),
            None => Ok(()),
        }
    }

    /// What the installed extractor makes of `kv`'s value (nothing without one).
    pub fn extract(&self, kv: &KeyValue) -> Option<Extracted> {
        self.extractor
            .as_ref()
            .and_then(|extractor| extractor.extract(&kv.key, &kv.value))
    }

    /// Installs `extractor` and extracts every current value with it, so that from now on each
    /// value in `current` carries what the extractor computes for it.
    pub fn set_extractor(&mut self, extractor: Arc<dyn ValueExtractor>) {
        for kv in self.current.values_mut() {
            kv.extracted = extractor.extract(&kv.key, &kv.value);
        }
        self.extractor = Some(extractor);
    }

    /// Lists keys starting with `prefix`, after `start_after`, at most `limit` of them, counting
    /// the keys left after the page as `counting` asks.
    pub fn list(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: Option<usize>,
        counting: Counting,
    ) -> ListResult {
        let lower = match start_after {
            Some(after) if after >= prefix => Bound::Excluded(after),
            _ => Bound::Included(prefix),
        };
        let mut matching = self
            .current
            .range::<str, _>((lower, Bound::Unbounded))
            .take_while(|(key, _)| key.starts_with(prefix))
            .map(|(_, kv)| kv);
        let items: Vec<KeyValue> = match limit {
            Some(limit) => matching.by_ref().take(limit).cloned().collect(),
            None => matching.by_ref().cloned().collect(),
        };
        let remaining = match counting {
            Counting::Exact => matching.count(),
            Counting::AnyMore => usize::from(matching.next().is_some()),
        };
        ListResult {
            items,
            revision: self.revision,
            remaining,
        }
    }

    /// The retained events under `prefix` with a revision above `after`, oldest first.
    pub fn history_after(&self, prefix: &str, after: Revision) -> Vec<Arc<WatchEvent>> {
        let start = self
            .history
            .partition_point(|event| event.revision <= after);
        self.history
            .range(start..)
            .filter(|event| event.kv.key.starts_with(prefix))
            .cloned()
            .collect()
    }

    /// Starts a watch: the retained events after `after` under `prefix`, and a subscription to
    /// every event committed later. Taking both under one lock (the caller's guard on `self`) is
    /// what makes replay and live events meet without a gap or an overlap.
    pub fn start_watch(&self, prefix: &str, after: Revision) -> Result<WatchStart, StoreError> {
        self.ensure_usable()?;
        if after < self.compacted {
            return Err(StoreError::Compacted {
                requested: after,
                compacted: self.compacted,
            });
        }
        let live = self
            .live
            .as_ref()
            .ok_or_else(|| StoreError::Backend("the store is closed".to_owned()))?
            .subscribe();
        Ok(WatchStart {
            replay: self.history_after(prefix, after),
            live,
            replayed_up_to: self.revision.max(after),
        })
    }

    /// Applies one committed event to the current state and history, and tells live watchers.
    pub fn apply(&mut self, event: Arc<WatchEvent>) {
        match event.kind {
            EventKind::Created | EventKind::Updated => {
                self.current.insert(event.kv.key.clone(), event.kv.clone());
            }
            EventKind::Deleted => {
                self.current.remove(&event.kv.key);
            }
        }
        self.revision = event.revision;
        if let Some(live) = &self.live {
            // An error only means nobody is watching right now.
            let _ = live.send(Arc::clone(&event));
        }
        self.history.push_back(event);
    }

    /// Forgets history at and below `revision`.
    pub fn compact(&mut self, revision: Revision) {
        while self
            .history
            .front()
            .is_some_and(|event| event.revision <= revision)
        {
            self.history.pop_front();
        }
        self.compacted = self.compacted.max(revision);
    }

    /// Marks the store unusable: later reads fail with `reason` and every watch ends.
    pub fn fail(&mut self, reason: String) {
        self.failure.get_or_insert(reason);
        self.live = None;
    }
}

/// What a new watch begins with.
pub(crate) struct WatchStart {
    /// Retained events to deliver first.
    pub replay: Vec<Arc<WatchEvent>>,
    /// Events committed after the replay was taken.
    pub live: broadcast::Receiver<Arc<WatchEvent>>,
    /// Live events at or below this revision were already covered by the replay (or precede the
    /// requested start) and must be skipped.
    pub replayed_up_to: Revision,
}

/// The lock around [`MemoryState`], with poisoning turned into a backend error instead of a
/// panic.
pub(crate) struct SharedState(RwLock<MemoryState>);

impl SharedState {
    /// Wraps a freshly loaded state.
    pub fn new(state: MemoryState) -> Self {
        Self(RwLock::new(state))
    }

    /// Locks for reading.
    pub fn read(&self) -> Result<RwLockReadGuard<'_, MemoryState>, StoreError> {
        self.0.read().map_err(|_| poisoned())
    }

    /// Locks for writing; only the writer thread calls this.
    pub fn write(&self) -> Result<RwLockWriteGuard<'_, MemoryState>, StoreError> {
        self.0.write().map_err(|_| poisoned())
    }
}

fn poisoned() -> StoreError {
    StoreError::Backend("in-memory state is unusable after an internal panic".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(key: &str, revision: Revision) -> KeyValue {
        KeyValue {
            key: key.to_owned(),
            value: Arc::from(key.as_bytes()),
            create_revision: revision,
            mod_revision: revision,
            extracted: None,
        }
    }

    fn state_with(keys: &[&str]) -> MemoryState {
        let mut state = MemoryState {
            current: BTreeMap::new(),
            revision: 0,
            compacted: 0,
            history: VecDeque::new(),
            live: None,
            failure: None,
            extractor: None,
        };
        for (index, key) in keys.iter().enumerate() {
            let revision = index as Revision + 1;
            state.apply(Arc::new(WatchEvent {
                kind: EventKind::Created,
                revision,
                kv: kv(key, revision),
                prev: None,
            }));
        }
        state
    }

    fn keys(result: &ListResult) -> Vec<&str> {
        result.items.iter().map(|kv| kv.key.as_str()).collect()
    }

    #[test]
    fn list_bounds_table() {
        let state = state_with(&["/a/1", "/a/2", "/a/3", "/ab/1", "/b/1"]);
        struct Case {
            prefix: &'static str,
            start_after: Option<&'static str>,
            limit: Option<usize>,
            want: Vec<&'static str>,
            remaining: usize,
        }
        let cases = [
            Case {
                prefix: "/a/",
                start_after: None,
                limit: None,
                want: vec!["/a/1", "/a/2", "/a/3"],
                remaining: 0,
            },
            Case {
                prefix: "/a/",
                start_after: Some("/a/1"),
                limit: Some(1),
                want: vec!["/a/2"],
                remaining: 1,
            },
            Case {
                prefix: "/a/",
                start_after: Some("/"),
                limit: Some(2),
                want: vec!["/a/1", "/a/2"],
                remaining: 1,
            },
            Case {
                prefix: "/a/",
                start_after: Some("/a/3"),
                limit: None,
                want: vec![],
                remaining: 0,
            },
            Case {
                prefix: "/a/",
                start_after: Some("/zzz"),
                limit: None,
                want: vec![],
                remaining: 0,
            },
            Case {
                prefix: "/a",
                start_after: None,
                limit: Some(0),
                want: vec![],
                remaining: 4,
            },
            Case {
                prefix: "",
                start_after: Some("/ab/1"),
                limit: None,
                want: vec!["/b/1"],
                remaining: 0,
            },
        ];
        for case in cases {
            let uncounted =
                state.list(case.prefix, case.start_after, case.limit, Counting::AnyMore);
            assert_eq!(keys(&uncounted), case.want);
            assert_eq!(
                uncounted.remaining,
                case.remaining.min(1),
                "uncounted remaining only says whether more follow, for {:?} after {:?}",
                case.prefix,
                case.start_after
            );
            let result = state.list(case.prefix, case.start_after, case.limit, Counting::Exact);
            assert_eq!(
                keys(&result),
                case.want,
                "prefix {:?} after {:?} limit {:?}",
                case.prefix,
                case.start_after,
                case.limit
            );
            assert_eq!(
                result.remaining, case.remaining,
                "remaining for {:?}",
                case.prefix
            );
            assert_eq!(result.revision, 5);
        }
    }

    fn created(key: &str, revision: Revision) -> Arc<WatchEvent> {
        Arc::new(WatchEvent {
            kind: EventKind::Created,
            revision,
            kv: kv(key, revision),
            prev: None,
        })
    }

    #[test]
    fn watch_start_splits_replay_and_live_at_the_snapshot() {
        let mut state = state_with(&["/a/1", "/a/2"]);
        state.live = Some(broadcast::channel(16).0);
        let mut start = match state.start_watch("/a/", 1) {
            Ok(start) => start,
            Err(error) => panic!("start_watch: {error}"),
        };
        state.apply(created("/a/3", 3));
        let replayed: Vec<Revision> = start.replay.iter().map(|event| event.revision).collect();
        assert_eq!(
            replayed,
            vec![2],
            "replay holds what was committed before the start"
        );
        assert_eq!(start.replayed_up_to, 2);
        match start.live.try_recv() {
            Ok(event) => assert_eq!(event.revision, 3, "live holds what came after"),
            Err(error) => panic!("live event missing: {error}"),
        }
        assert!(
            start.live.try_recv().is_err(),
            "no event is delivered twice"
        );

        state.compact(2);
        assert!(matches!(
            state.start_watch("/a/", 1),
            Err(StoreError::Compacted {
                requested: 1,
                compacted: 2
            })
        ));
        assert!(state.start_watch("/a/", 2).is_ok());
        state.fail("broken".to_owned());
        assert!(matches!(
            state.start_watch("/a/", 3),
            Err(StoreError::Backend(_))
        ));
    }

    #[test]
    fn history_after_and_compact() {
        let mut state = state_with(&["/a/1", "/b/1", "/a/2", "/a/3"]);
        let revisions = |events: Vec<Arc<WatchEvent>>| -> Vec<Revision> {
            events.iter().map(|event| event.revision).collect()
        };
        assert_eq!(revisions(state.history_after("/a/", 0)), vec![1, 3, 4]);
        assert_eq!(revisions(state.history_after("/a/", 3)), vec![4]);
        assert_eq!(
            revisions(state.history_after("", 9)),
            Vec::<Revision>::new()
        );
        state.compact(2);
        assert_eq!(state.compacted, 2);
        assert_eq!(revisions(state.history_after("", 0)), vec![3, 4]);
        state.compact(1);
        assert_eq!(state.compacted, 2, "compaction never moves backwards");
    }
}
