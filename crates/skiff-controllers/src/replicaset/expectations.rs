//! Create/delete expectations: the bookkeeping that keeps a ReplicaSet from acting twice on a
//! stale cache.
//!
//! After a sync creates N pods or deletes some, the informer cache still shows the old pod
//! list until the watch events arrive. Until they have (or five minutes passed), a new plan's
//! creates and deletes must not be applied, only its status. This is upstream's
//! `ControllerExpectations` / `UIDTrackingControllerExpectations`, as a plain value the
//! reconciler keeps per ReplicaSet and updates from its pod event handlers.

use std::collections::BTreeSet;
use std::time::Duration;

use jiff::Timestamp;

/// How long expectations are trusted; after that the controller acts again even if some
/// events never arrived (a lost watch event must not wedge the ReplicaSet).
pub const EXPECTATIONS_TIMEOUT: Duration = Duration::from_secs(5 * 60);

/// What one ReplicaSet is still waiting to observe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expectations {
    pending_creates: u64,
    pending_deletes: BTreeSet<String>,
    recorded_at: Timestamp,
}

impl Expectations {
    /// Expects `creates` pod creations and the deletion of the pods with these keys
    /// (`namespace/name`), from `now` on.
    pub fn new(creates: usize, deleted_pod_keys: &[String], now: Timestamp) -> Expectations {
        Expectations {
            pending_creates: u64::try_from(creates).unwrap_or(u64::MAX),
            pending_deletes: deleted_pod_keys.iter().cloned().collect(),
            recorded_at: now,
        }
    }

    /// A pod of this ReplicaSet showed up (or a create was never attempted or failed, so its
    /// event will never come).
    pub fn creation_observed(&mut self) {
        self.pending_creates = self.pending_creates.saturating_sub(1);
    }

    /// A pod expected to go was seen deleted or terminating (or its delete failed). Each pod
    /// counts once, however many events it produces.
    pub fn deletion_observed(&mut self, pod_key: &str) {
        self.pending_deletes.remove(pod_key);
    }

    /// Whether the ReplicaSet may create or delete pods again: everything observed, or the
    /// expectations are older than [`EXPECTATIONS_TIMEOUT`].
    pub fn satisfied(&self, now: Timestamp) -> bool {
        let fulfilled = self.pending_creates == 0 && self.pending_deletes.is_empty();
        let age = now.as_nanosecond() - self.recorded_at.as_nanosecond();
        fulfilled || age > EXPECTATIONS_TIMEOUT.as_nanos() as i128
    }
}
