//! The Deployment controller's planner.
//!
//! [`plan`] takes what an informer cache shows about one Deployment (the Deployment, the
//! ReplicaSets it owns, and its pods) plus the current time, and returns the writes one sync of
//! the upstream controller would make, in order, with the events it would record and when to look
//! again. The reconciler that applies a [`DeploymentPlan`] owns adoption/orphaning of
//! ReplicaSets, the API calls, and hash-collision handling on create (see
//! [`next_collision_count`]).
//!
//! Differences from one upstream sync, all deliberate:
//! * Each object is written at most once per plan: successive writes to one ReplicaSet merge
//!   into one action carrying the final object, and every Deployment change (revision annotation,
//!   conditions, status) is one [`Action::UpdateDeploymentStatus`] at the end. Upstream issues
//!   the same changes as several requests.
//! * The planner assumes its writes succeed; a failed write means the reconciler should requeue
//!   rate-limited, as upstream does on any error.
//! * Alpha features (`podReplacementPolicy`, terminating-replica accounting) are not modelled.

pub mod controller;
mod hash;
mod rollout_plan;
mod sync;
pub mod util;

use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::Pod;

pub use hash::{compute_hash, replica_set_name, safe_encode_string, SAFE_ALPHABET};
pub use rollout_plan::{rollout_plan, with_defaults, RolloutPlan, Step};
pub use sync::DeploymentSync;

/// Time as the planner sees it (the same type as Kubernetes timestamps in `k8s-openapi`).
pub use jiff::Timestamp;

/// Why a sync stopped early. Upstream returns these as errors, which requeues the Deployment
/// with rate limiting.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// An int-or-percent field was absent where the controller needs a value.
    #[error("nil value for IntOrString")]
    NilIntOrString,
    /// A string int-or-percent without the `%` suffix.
    #[error("invalid value for IntOrString: invalid type: string is not a percentage")]
    NotAPercentage,
    /// A percentage whose number does not parse.
    #[error("invalid value for IntOrString: invalid value {value:?}")]
    InvalidPercentage {
        /// The offending string, as written.
        value: String,
    },
    /// `NewRSNewReplicas` was asked about a strategy it does not know.
    #[error("deployment type {0} isn't supported")]
    UnsupportedStrategy(String),
    /// The Deployment names a strategy the controller does not know.
    #[error("unexpected deployment strategy type: {0}")]
    UnexpectedStrategy(String),
    /// A scale-down step computed a larger size (available pods above spec), which upstream
    /// refuses.
    #[error("when {context}, got invalid request to scale down {namespace}/{name} {from} -> {to}")]
    InvalidScaleDown {
        /// Which step computed the size.
        context: &'static str,
        /// Namespace of the ReplicaSet.
        namespace: String,
        /// Name of the ReplicaSet.
        name: String,
        /// Its current size.
        from: i32,
        /// The computed size.
        to: i32,
    },
    /// The rollout would take more syncs than the simulation allows.
    #[error("rollout would take about {syncs} syncs, more than the {limit} simulated")]
    RolloutTooLong {
        /// Estimated syncs needed.
        syncs: u64,
        /// The simulation's limit.
        limit: u64,
    },
    /// The rollout simulation did not reach the final state.
    #[error("rollout simulation did not converge after {syncs} syncs")]
    DidNotConverge {
        /// How many syncs were simulated.
        syncs: usize,
    },
}

/// Everything the planner needs to know about one Deployment, as the informer caches show it.
#[derive(Debug, Clone, Default)]
pub struct DeploymentObservation {
    /// The Deployment, as stored (defaulted by the API server).
    pub deployment: Deployment,
    /// The ReplicaSets controlled by the Deployment, after adoption and release.
    pub replica_sets: Vec<ReplicaSet>,
    /// Pods matching the Deployment's selector; only Recreate looks at them, to wait until old
    /// pods are gone.
    pub pods: Vec<Pod>,
}

/// A size change of a ReplicaSet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScaleChange {
    /// `spec.replicas` before.
    pub from: i32,
    /// `spec.replicas` after.
    pub to: i32,
}

/// One write to make, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Create this ReplicaSet (the new template's ReplicaSet, with owner reference, labels,
    /// selector, annotations and initial size).
    CreateReplicaSet {
        /// The full object to create.
        replica_set: ReplicaSet,
    },
    /// Update this ReplicaSet to the given object: a resize (with refreshed desired/max
    /// annotations) when `scale` is set, otherwise an annotation / minReadySeconds sync.
    UpdateReplicaSet {
        /// The full object after the change.
        replica_set: ReplicaSet,
        /// The size change, if any.
        scale: Option<ScaleChange>,
    },
    /// Delete an old, fully scaled-down ReplicaSet beyond the revision history limit.
    DeleteReplicaSet {
        /// Name of the ReplicaSet.
        name: String,
        /// UID, for a delete precondition.
        uid: Option<String>,
    },
    /// Update the Deployment itself (spec and metadata): only a rollback through the deprecated
    /// annotation does this, after any status write of the same plan.
    UpdateDeployment {
        /// The full Deployment after the change.
        deployment: Deployment,
    },
    /// Write the Deployment's status subresource (the object also carries the updated revision
    /// annotation, which the status endpoint of Deployments accepts).
    UpdateDeploymentStatus {
        /// The full Deployment after the change.
        deployment: Deployment,
    },
}

/// Event severity, as in `core/v1` Events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    /// Routine progress.
    Normal,
    /// Something needs attention.
    Warning,
}

/// An event to record on the Deployment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Normal or Warning.
    pub type_: EventType,
    /// Machine-readable reason, e.g. `ScalingReplicaSet`.
    pub reason: String,
    /// Human-readable message, worded as upstream.
    pub message: String,
    /// The ReplicaSet whose create or resize this event reports, if any. Upstream records such
    /// an event only once that write succeeded, so a reconciler must drop it when the write did
    /// not happen (the retry plans it again).
    pub replica_set: Option<String>,
}

/// When the Deployment should be synced again, besides watch events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requeue {
    /// Only when something changes.
    None,
    /// Soon, through the rate limiter (an error, or a deadline due within a second).
    RateLimited,
    /// After this delay (the time left to the progress deadline plus one second of skew).
    After(Duration),
}

/// What one sync decided.
#[derive(Debug, Clone, PartialEq)]
pub struct DeploymentPlan {
    /// Writes, in the order upstream makes them.
    pub actions: Vec<Action>,
    /// Events to record on the Deployment.
    pub events: Vec<Event>,
    /// When to sync again.
    pub requeue: Requeue,
    /// Why the sync stopped early, if it did (the actions before it still apply).
    pub error: Option<PlanError>,
}

impl DeploymentPlan {
    /// The events to record after applying the actions: those about no ReplicaSet (they report
    /// a decision, not a write) and those about a ReplicaSet whose write `took_effect` says went
    /// through. A failed write must not lose the events of the writes before it, nor report its
    /// own.
    pub fn events_for_writes(&self, took_effect: impl Fn(&str) -> bool) -> Vec<Event> {
        self.events
            .iter()
            .filter(|e| e.replica_set.as_deref().is_none_or(&took_effect))
            .cloned()
            .collect()
    }
}

impl Action {
    /// The ReplicaSet this action writes, if it writes one.
    pub fn replica_set_name(&self) -> Option<&str> {
        match self {
            Action::CreateReplicaSet { replica_set }
            | Action::UpdateReplicaSet { replica_set, .. } => replica_set.metadata.name.as_deref(),
            Action::DeleteReplicaSet { name, .. } => Some(name),
            Action::UpdateDeployment { .. } | Action::UpdateDeploymentStatus { .. } => None,
        }
    }
}

/// Plans one sync of the Deployment controller for the observed state at time `now`.
///
/// Priority as upstream: an empty selector only warns; a Deployment being deleted only gets its
/// status; a paused Deployment is scaled proportionally but never rolled out; a pending
/// rollback is performed; a change of `spec.replicas` is a proportional scaling event; otherwise
/// the strategy (Recreate or RollingUpdate) moves the rollout one step.
pub fn plan(input: &DeploymentObservation, now: Timestamp) -> DeploymentPlan {
    let mut sync = DeploymentSync::new(input.deployment.clone(), now);
    let result = sync.sync_deployment(&input.replica_sets, &input.pods);
    sync.into_plan(result.err())
}

/// The collision count to write after creating the new ReplicaSet failed with AlreadyExists:
/// `None` when the existing object is this Deployment's own ReplicaSet for the current template
/// (treat it as created), otherwise the bumped count (nil counts as 0) so that the next sync
/// hashes to a different name.
pub fn next_collision_count(deployment: &Deployment, existing: &ReplicaSet) -> Option<i32> {
    let owned = existing
        .metadata
        .owner_references
        .iter()
        .flatten()
        .any(|o| o.controller == Some(true) && Some(&o.uid) == deployment.metadata.uid.as_ref());
    let template = deployment
        .spec
        .as_ref()
        .map(|s| s.template.clone())
        .unwrap_or_default();
    let existing_template = existing
        .spec
        .as_ref()
        .and_then(|s| s.template.clone())
        .unwrap_or_default();
    if owned && util::equal_ignore_hash(&existing_template, &template) {
        return None;
    }
    let current = deployment
        .status
        .as_ref()
        .and_then(|s| s.collision_count)
        .unwrap_or(0);
    Some(current.wrapping_add(1))
}
