//! The single writer thread: group commit of every queued request into one transaction.
//!
//! Requests arrive over a channel. The thread takes whatever is queued at that moment (up to a
//! cap), checks each request's precondition against the state as the earlier requests of the
//! same batch leave it, writes the survivors in one transaction, syncs, publishes the changes to
//! memory and only then answers. A request whose precondition fails is answered with its own
//! error and takes no revision; the others in the batch are unaffected.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::Receiver;
use std::sync::Arc;

use rusqlite::Connection;
use tokio::sync::oneshot;

use super::disk::{self, Change};
use super::memory::{MemoryState, SharedState};
use crate::{EventKind, KeyValue, Revision, StoreError, WatchEvent};

/// The most requests folded into one transaction, so one batch cannot delay its first request
/// indefinitely or build an unbounded transaction.
const MAX_BATCH: usize = 512;

/// A write a caller asked for.
pub(crate) enum WriteOp {
    Create {
        key: String,
        value: Vec<u8>,
    },
    Update {
        key: String,
        value: Vec<u8>,
        expected: Option<Revision>,
    },
    Delete {
        key: String,
        expected: Option<Revision>,
    },
}

/// A request to the writer thread, with the channel its answer goes back on.
pub(crate) enum Command {
    Write {
        op: WriteOp,
        reply: oneshot::Sender<Result<KeyValue, StoreError>>,
    },
    Compact {
        revision: Revision,
        reply: oneshot::Sender<Result<(), StoreError>>,
    },
}

/// Counters describing how well group commit is batching.
#[derive(Default)]
pub(crate) struct Counters {
    pub transactions: AtomicU64,
    pub writes: AtomicU64,
}

/// What the writer decided for one request of a batch.
enum Outcome {
    Rejected(StoreError),
    Event(Arc<WatchEvent>),
    Compact(Revision),
    AlreadyCompacted,
}

/// Marks the store failed if the writer thread stops for any reason other than the store being
/// dropped, so readers and watchers get an error instead of waiting forever.
struct StopGuard<'a> {
    shared: &'a SharedState,
}

impl Drop for StopGuard<'_> {
    fn drop(&mut self) {
        let reason = if std::thread::panicking() {
            "the writer stopped after an internal error"
        } else {
            "the store is closed"
        };
        if let Ok(mut state) = self.shared.write() {
            state.fail(reason.to_owned());
        }
    }
}

/// Runs until every sender is gone, answering each request exactly once.
pub(crate) fn run(
    mut conn: Connection,
    shared: Arc<SharedState>,
    counters: Arc<Counters>,
    commands: Receiver<Command>,
) {
    let _guard = StopGuard { shared: &shared };
    while let Ok(first) = commands.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match commands.try_recv() {
                Ok(command) => batch.push(command),
                Err(_) => break,
            }
        }
        process_batch(&mut conn, &shared, &counters, batch);
    }
}

fn process_batch(
    conn: &mut Connection,
    shared: &SharedState,
    counters: &Counters,
    batch: Vec<Command>,
) {
    let planned = match shared.read() {
        Ok(state) => match state.ensure_usable() {
            Ok(()) => plan(&state, &batch),
            Err(error) => return answer_all_with(batch, &error),
        },
        Err(error) => return answer_all_with(batch, &error),
    };
    let Planned {
        outcomes,
        revision,
        compacted,
    } = planned;

    let changes = outcomes.iter().filter_map(|outcome| match outcome {
        Outcome::Event(event) => Some(Change::Event(event)),
        Outcome::Compact(revision) => Some(Change::Compact(*revision)),
        Outcome::Rejected(_) | Outcome::AlreadyCompacted => None,
    });
    let has_changes = outcomes
        .iter()
        .any(|outcome| matches!(outcome, Outcome::Event(_) | Outcome::Compact(_)));
    if has_changes {
        if let Err(error) = disk::commit_batch(conn, changes, revision, compacted) {
            tracing::warn!(%error, "store transaction failed");
            if !conn.is_autocommit() {
                // The transaction could not even be rolled back: the file and memory may disagree
                // from now on, so refuse everything rather than serve a wrong answer.
                if let Ok(mut state) = shared.write() {
                    state.fail(format!("transaction could not be rolled back: {error}"));
                }
            }
            return answer(batch, outcomes, Some(&error));
        }
        counters.transactions.fetch_add(1, Ordering::Relaxed);
        match shared.write() {
            Ok(mut state) => publish(&mut state, &outcomes, counters),
            Err(error) => return answer(batch, outcomes, Some(&error)),
        }
    }
    answer(batch, outcomes, None);
}

/// Applies committed outcomes to memory, in batch order.
fn publish(state: &mut MemoryState, outcomes: &[Outcome], counters: &Counters) {
    for outcome in outcomes {
        match outcome {
            Outcome::Event(event) => {
                state.apply(Arc::clone(event));
                counters.writes.fetch_add(1, Ordering::Relaxed);
            }
            Outcome::Compact(revision) => state.compact(*revision),
            Outcome::Rejected(_) | Outcome::AlreadyCompacted => {}
        }
    }
}

struct Planned {
    outcomes: Vec<Outcome>,
    revision: Revision,
    compacted: Revision,
}

/// Decides every request of the batch against the committed state plus the batch's own earlier
/// writes.
fn plan(state: &MemoryState, batch: &[Command]) -> Planned {
    // Keys written earlier in this batch: `None` means deleted.
    let mut pending: HashMap<&str, Option<KeyValue>> = HashMap::new();
    let mut revision = state.revision;
    let mut compacted = state.compacted;
    let mut outcomes = Vec::with_capacity(batch.len());
    for command in batch {
        let outcome = match command {
            Command::Write { op, .. } => {
                let key = match op {
                    WriteOp::Create { key, .. }
                    | WriteOp::Update { key, .. }
                    | WriteOp::Delete { key, .. } => key.as_str(),
                };
                let existing = match pending.get(key) {
                    Some(written) => written.clone(),
                    None => state.current.get(key).cloned(),
                };
                match decide(op, existing, revision + 1) {
                    Ok(mut event) => {
                        if event.kind != EventKind::Deleted {
                            // Extracted here, under the read lock only, so readers are not
                            // held up while the batch is published.
                            event.kv.extracted = state.extract(&event.kv);
                        }
                        revision = event.revision;
                        let after = match event.kind {
                            EventKind::Deleted => None,
                            EventKind::Created | EventKind::Updated => Some(event.kv.clone()),
                        };
                        pending.insert(key, after);
                        Outcome::Event(Arc::new(event))
                    }
                    Err(error) => Outcome::Rejected(error),
                }
            }
            Command::Compact {
                revision: target, ..
            } => {
                if *target > revision {
                    Outcome::Rejected(StoreError::Backend(format!(
                        "cannot compact at revision {target}: the latest revision is {revision}"
                    )))
                } else if *target <= compacted {
                    Outcome::AlreadyCompacted
                } else {
                    compacted = *target;
                    Outcome::Compact(*target)
                }
            }
        };
        outcomes.push(outcome);
    }
    Planned {
        outcomes,
        revision,
        compacted,
    }
}

/// Checks one write's precondition and builds the event it would produce at `revision`.
fn decide(
    op: &WriteOp,
    existing: Option<KeyValue>,
    revision: Revision,
) -> Result<WatchEvent, StoreError> {
    let check_expected = |key: &str, current: &KeyValue, expected: &Option<Revision>| match expected
    {
        Some(expected) if *expected != current.mod_revision => Err(StoreError::Conflict {
            key: key.to_owned(),
            expected: *expected,
            actual: current.mod_revision,
        }),
        _ => Ok(()),
    };
    match (op, existing) {
        (WriteOp::Create { key, .. }, Some(_)) => Err(StoreError::AlreadyExists(key.clone())),
        (WriteOp::Create { key, value }, None) => Ok(WatchEvent {
            kind: EventKind::Created,
            revision,
            kv: KeyValue {
                key: key.clone(),
                value: Arc::from(value.as_slice()),
                create_revision: revision,
                mod_revision: revision,
                extracted: None,
            },
            prev: None,
        }),
        (WriteOp::Update { key, .. } | WriteOp::Delete { key, .. }, None) => {
            Err(StoreError::NotFound(key.clone()))
        }
        (
            WriteOp::Update {
                key,
                value,
                expected,
            },
            Some(current),
        ) => {
            check_expected(key, &current, expected)?;
            Ok(WatchEvent {
                kind: EventKind::Updated,
                revision,
                kv: KeyValue {
                    key: key.clone(),
                    value: Arc::from(value.as_slice()),
                    create_revision: current.create_revision,
                    mod_revision: revision,
                    extracted: None,
                },
                prev: Some(current),
            })
        }
        (WriteOp::Delete { key, expected }, Some(current)) => {
            check_expected(key, &current, expected)?;
            Ok(WatchEvent {
                kind: EventKind::Deleted,
                revision,
                kv: KeyValue {
                    mod_revision: revision,
                    ..current.clone()
                },
                prev: Some(current),
            })
        }
    }
}

/// Sends each request its answer; `failure` overrides the outcome of every accepted change when
/// the transaction did not commit.
fn answer(batch: Vec<Command>, outcomes: Vec<Outcome>, failure: Option<&StoreError>) {
    for (command, outcome) in batch.into_iter().zip(outcomes) {
        let result = match (outcome, failure) {
            (Outcome::Rejected(error), _) => Err(error),
            (Outcome::Event(_) | Outcome::Compact(_), Some(failure)) => Err(copy_error(failure)),
            (accepted, None) | (accepted @ Outcome::AlreadyCompacted, Some(_)) => Ok(accepted),
        };
        // A caller that gave up waiting dropped its receiver; there is nobody left to tell, so
        // send errors are ignored.
        match command {
            Command::Write { reply, .. } => {
                let _ = reply.send(result.and_then(|outcome| match outcome {
                    Outcome::Event(event) => Ok(event.kv.clone()),
                    _ => Err(StoreError::Backend("write produced no change".to_owned())),
                }));
            }
            Command::Compact { reply, .. } => {
                let _ = reply.send(result.map(|_| ()));
            }
        }
    }
}

fn answer_all_with(batch: Vec<Command>, error: &StoreError) {
    for command in batch {
        match command {
            Command::Write { reply, .. } => {
                let _ = reply.send(Err(copy_error(error)));
            }
            Command::Compact { reply, .. } => {
                let _ = reply.send(Err(copy_error(error)));
            }
        }
    }
}

/// `StoreError` is not `Clone` (its definition is shared with other backends), so a batch-wide
/// failure is rebuilt for each caller.
fn copy_error(error: &StoreError) -> StoreError {
    match error {
        StoreError::AlreadyExists(key) => StoreError::AlreadyExists(key.clone()),
        StoreError::NotFound(key) => StoreError::NotFound(key.clone()),
        StoreError::Conflict {
            key,
            expected,
            actual,
        } => StoreError::Conflict {
            key: key.clone(),
            expected: *expected,
            actual: *actual,
        },
        StoreError::Compacted {
            requested,
            compacted,
        } => StoreError::Compacted {
            requested: *requested,
            compacted: *compacted,
        },
        StoreError::WatcherTooSlow => StoreError::WatcherTooSlow,
        StoreError::Backend(message) => StoreError::Backend(message.clone()),
        StoreError::Timeout(message) => StoreError::Timeout(message.clone()),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, VecDeque};

    use super::*;

    fn state_with_key(key: &str, revision: Revision) -> MemoryState {
        let kv = KeyValue {
            key: key.to_owned(),
            value: Arc::from(&b"old"[..]),
            create_revision: revision,
            mod_revision: revision,
            extracted: None,
        };
        MemoryState {
            current: BTreeMap::from([(key.to_owned(), kv)]),
            revision,
            compacted: 0,
            history: VecDeque::new(),
            live: None,
            failure: None,
            extractor: None,
        }
    }

    fn write(op: WriteOp) -> Command {
        let (reply, _) = oneshot::channel();
        Command::Write { op, reply }
    }

    fn create(key: &str) -> Command {
        write(WriteOp::Create {
            key: key.to_owned(),
            value: b"new".to_vec(),
        })
    }

    fn update(key: &str, expected: Option<Revision>) -> Command {
        write(WriteOp::Update {
            key: key.to_owned(),
            value: b"new".to_vec(),
            expected,
        })
    }

    fn delete(key: &str, expected: Option<Revision>) -> Command {
        write(WriteOp::Delete {
            key: key.to_owned(),
            expected,
        })
    }

    fn compact(revision: Revision) -> Command {
        let (reply, _) = oneshot::channel();
        Command::Compact { revision, reply }
    }

    /// A compact summary of an outcome, to compare against a table.
    fn summary(outcome: &Outcome) -> String {
        match outcome {
            Outcome::Rejected(StoreError::AlreadyExists(_)) => "exists".to_owned(),
            Outcome::Rejected(StoreError::NotFound(_)) => "not found".to_owned(),
            Outcome::Rejected(StoreError::Conflict { actual, .. }) => format!("conflict@{actual}"),
            Outcome::Rejected(other) => format!("error {other}"),
            Outcome::Event(event) => format!("{:?}@{}", event.kind, event.revision),
            Outcome::Compact(revision) => format!("compact@{revision}"),
            Outcome::AlreadyCompacted => "already compacted".to_owned(),
        }
    }

    #[test]
    fn later_requests_in_a_batch_see_earlier_ones() {
        // The state holds "/k" at revision 10.
        let cases: Vec<(&str, Vec<Command>, Vec<&str>, Revision)> = vec![
            (
                "two creates of one key",
                vec![create("/n"), create("/n")],
                vec!["Created@11", "exists"],
                11,
            ),
            (
                "update requiring the revision an earlier write gave",
                vec![update("/k", Some(10)), update("/k", Some(11))],
                vec!["Updated@11", "Updated@12"],
                12,
            ),
            (
                "two updates requiring the same revision",
                vec![update("/k", Some(10)), update("/k", Some(10))],
                vec!["Updated@11", "conflict@11"],
                11,
            ),
            (
                "update after a delete in the same batch",
                vec![delete("/k", None), update("/k", None), create("/k")],
                vec!["Deleted@11", "not found", "Created@12"],
                12,
            ),
            (
                "rejected requests take no revision",
                vec![
                    create("/k"),
                    delete("/x", None),
                    update("/k", Some(3)),
                    create("/y"),
                ],
                vec!["exists", "not found", "conflict@10", "Created@11"],
                11,
            ),
            (
                "compaction of a revision written earlier in the batch",
                vec![create("/a"), compact(11), compact(5), compact(13)],
                vec!["Created@11", "compact@11", "already compacted", "error"],
                11,
            ),
        ];
        for (name, batch, want, want_revision) in cases {
            let state = state_with_key("/k", 10);
            let planned = plan(&state, &batch);
            let got: Vec<String> = planned.outcomes.iter().map(summary).collect();
            for (got, want) in got.iter().zip(&want) {
                assert!(got.starts_with(want), "{name}: got {got:?}, want {want:?}");
            }
            assert_eq!(got.len(), want.len(), "{name}");
            assert_eq!(planned.revision, want_revision, "{name}: final revision");
        }
    }

    #[test]
    fn delete_event_keeps_create_revision_and_last_value() {
        let state = state_with_key("/k", 10);
        let planned = plan(&state, &[update("/k", None), delete("/k", Some(11))]);
        let Outcome::Event(deleted) = &planned.outcomes[1] else {
            panic!("delete was rejected");
        };
        assert_eq!(deleted.kind, EventKind::Deleted);
        assert_eq!(deleted.kv.create_revision, 10);
        assert_eq!(deleted.kv.mod_revision, 12);
        assert_eq!(&*deleted.kv.value, b"new");
        assert_eq!(
            deleted.prev.as_ref().map(|prev| prev.mod_revision),
            Some(11)
        );
    }
}
