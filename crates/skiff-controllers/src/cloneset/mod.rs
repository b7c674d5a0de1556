//! The CloneSet controller (OpenKruise's `apps.kruise.io/v1alpha1`).
//!
//! A CloneSet keeps `replicas` interchangeable pods like a ReplicaSet, but owns its pods
//! directly and rolls them between revisions itself: by partition (a number or percent of pods
//! kept at the old revision), within `maxUnavailable` / `maxSurge`, paused or not, and, when
//! only container images change, in place: the pod keeps its name, UID and IP while the node
//! restarts the changed containers on the new image.
//!
//! The decisions are pure and live in the submodules, each following the OpenKruise source it
//! names: [`arithmetic`] (how many pods to create, delete and update), [`pods`] (revision,
//! availability, update and deletion order), [`revision`] (ControllerRevisions and what can be
//! updated in place), [`inplace`] (the in-place update of one pod), [`status`] and [`sync`]
//! (one Scale or Update pass). [`controller`] applies them through the API.
//!
//! Not implemented, all deliberate for now: lifecycle hooks (`spec.lifecycle`: pods never stop
//! in PreparingDelete, PreparingUpdate or Updated on their own), `priorityStrategy` and
//! `scatterStrategy` (the default update order is used), in-place changes of env values taken
//! from labels (they need OpenKruise's node daemon) and of resources, container launch
//! priorities, image pre-download, and partition rollback (an off-by-default gate upstream).

pub mod arithmetic;
pub mod controller;
pub mod inplace;
pub mod pods;
pub mod revision;
pub mod status;
pub mod sync;

use crate::deployment::{Event, EventType};

/// Label naming the revision a pod is at (`<cloneset>-<hash>`).
pub const CONTROLLER_REVISION_HASH_LABEL: &str = "controller-revision-hash";

fn event(type_: EventType, reason: &str, message: String) -> Event {
    Event {
        type_,
        reason: reason.to_string(),
        message,
        replica_set: None,
    }
}

/// `SuccessfulCreate`, after a pod was created.
pub fn successful_create_event(pod: &str) -> Event {
    event(
        EventType::Normal,
        "SuccessfulCreate",
        format!("succeed to create pod {pod}"),
    )
}

/// `FailedCreate`, when creating a pod failed.
pub fn failed_create_event(error: &str, pod_json: &str) -> Event {
    event(
        EventType::Warning,
        "FailedCreate",
        format!("failed to create pod: {error}, pod: {pod_json}"),
    )
}

/// `SuccessfulDelete`, after a pod was deleted.
pub fn successful_delete_event(pod: &str) -> Event {
    event(
        EventType::Normal,
        "SuccessfulDelete",
        format!("succeed to delete pod {pod}"),
    )
}

/// `FailedDelete`, when deleting a pod failed.
pub fn failed_delete_event(pod: &str, error: &str) -> Event {
    event(
        EventType::Warning,
        "FailedDelete",
        format!("failed to delete pod {pod}: {error}"),
    )
}

/// `SuccessfulUpdatePodInPlace`, after an in-place update of a pod started.
pub fn successful_in_place_event(pod: &str, revision: &str) -> Event {
    event(
        EventType::Normal,
        "SuccessfulUpdatePodInPlace",
        format!("successfully update pod {pod} in-place(revision {revision})"),
    )
}

/// `FailedUpdatePodInPlace`, when starting an in-place update failed.
pub fn failed_in_place_event(pod: &str, revision: &str, error: &str) -> Event {
    event(
        EventType::Warning,
        "FailedUpdatePodInPlace",
        format!("failed to update pod {pod} in-place(revision {revision}): {error}"),
    )
}

/// `SuccessfulUpdatePodReCreate`, after a pod was marked for deletion by a ReCreate update.
pub fn successful_recreate_event(pod: &str, revision: &str) -> Event {
    event(
        EventType::Normal,
        "SuccessfulUpdatePodReCreate",
        format!("successfully patch pod {pod} specified-delete for update(revision {revision})"),
    )
}

/// `FailedUpdatePodReCreate`, when marking a pod for a ReCreate update failed.
pub fn failed_recreate_event(pod: &str, revision: &str, error: &str) -> Event {
    event(
        EventType::Warning,
        "FailedUpdatePodReCreate",
        format!(
            "failed to patch pod specified-delete {pod} for update(revision {revision}): {error}"
        ),
    )
}

/// `ScaleUpLimited`, when scaleStrategy.maxUnavailable holds creations back.
pub fn scale_up_limited_event(limit: i32) -> Event {
    event(
        EventType::Warning,
        "ScaleUpLimited",
        format!("scaleUp is limited because of scaleStrategy.maxUnavailable, limit: {limit}"),
    )
}
