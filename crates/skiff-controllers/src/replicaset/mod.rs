//! The ReplicaSet controller's planner.
//!
//! [`plan`] takes one ReplicaSet, the pods of its namespace and the current time, and returns
//! what one sync of the upstream controller (`syncReplicaSet` / `manageReplicas`) would do:
//! which orphans to adopt and which owned pods to release, how many pods to create (with the
//! object to create and the slow-start batches) or which to delete (in upstream order), and the
//! status to write. The reconciler that applies a [`ReplicaSetPlan`] owns the API calls, the
//! create/delete expectations (`skiff_runtime::Expectations`) (it applies creates and deletes only while they are
//! satisfied, so it does not act twice before its own writes are observed), and the events, built with [`successful_create_event`] and friends after each write.
//!
//! Differences from one upstream sync, all deliberate:
//! * The status in the plan assumes creates and deletes succeed. When they fail, the reconciler
//!   asks [`ReplicaSetPlan::status_after_manage_error`] for the status carrying the
//!   ReplicaFailure condition.
//! * The requeue is computed per pod: the moment the first Ready pod passes `minReadySeconds`
//!   (plus one second), rather than a flat `minReadySeconds` when all replicas are Ready.
//! * The alpha terminating-replica count is carried over, never computed.

pub mod controller;
pub mod pods;
pub mod status;

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetStatus};
use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use serde_json::{json, Map, Value};
use skiff_api::selector::LabelSelector;

pub use crate::deployment::{Event, EventType};
pub use pods::{
    is_pod_active, is_pod_available, is_pod_ready, pods_to_delete, slow_start_batches,
    sort_for_deletion, POD_DELETION_COST_ANNOTATION,
};
pub use status::{calculate_status, status_to_write};

/// Most pods one sync creates or deletes (the controller's `burstReplicas`), so a huge scale
/// change is spread over several syncs.
pub const BURST_REPLICAS: usize = 500;
/// Size of the first slow-start batch of creates; each further batch doubles.
pub const SLOW_START_INITIAL_BATCH_SIZE: usize = 1;

/// A failed create or delete reported back by the reconciler; its text becomes the message of
/// the ReplicaFailure condition.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ManageError {
    /// The API error as text, as it will appear in the condition.
    pub message: String,
}

/// Why the planner could not manage the ReplicaSet.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplicaSetPlanError {
    /// `spec.selector` does not convert to a label selector; nothing is done until it is fixed.
    #[error("invalid selector: {0}")]
    InvalidSelector(String),
}

/// A change of one pod's ownerReferences, as the strategic-merge patch upstream sends.
#[derive(Debug, Clone, PartialEq)]
pub struct OwnerPatch {
    /// Name of the pod.
    pub pod_name: String,
    /// UID of the pod; the patch carries it so it fails on a re-created pod of the same name.
    pub pod_uid: String,
    /// The strategic-merge-patch body.
    pub patch: Value,
}

/// Pods to create in this sync.
#[derive(Debug, Clone, PartialEq)]
pub struct PodCreation {
    /// How many pods (at most [`BURST_REPLICAS`]).
    pub count: usize,
    /// The object to POST for each of them (with `generateName`, so each gets its own name).
    pub pod: Pod,
    /// Slow-start batch sizes adding up to `count`; stop after the first batch with a failure.
    pub batches: Vec<usize>,
}

/// A pod to delete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodDeletion {
    /// Name of the pod.
    pub name: String,
    /// UID, for a delete precondition.
    pub uid: Option<String>,
}

/// What one sync of one ReplicaSet decided.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplicaSetPlan {
    /// Orphans matching the selector, to take ownership of before anything else.
    pub adopt: Vec<OwnerPatch>,
    /// Owned pods that no longer match the selector, to let go of.
    pub release: Vec<OwnerPatch>,
    /// Pods to create, if too few exist.
    pub create: Option<PodCreation>,
    /// Pods to delete, if too many exist, in the order upstream picks them.
    pub delete: Vec<PodDeletion>,
    /// The active pods the ReplicaSet owns after adoption and release (what it counts).
    pub owned_pods: Vec<Pod>,
    /// How many pods the ReplicaSet controls are being deleted but still running (its
    /// `status.terminatingReplicas`).
    pub terminating_pods: i32,
    /// The status computed for a successful sync.
    pub status: ReplicaSetStatus,
    /// The status to write, `None` when the stored status is already current.
    pub status_update: Option<ReplicaSetStatus>,
    /// When to sync again to notice a pod becoming available.
    pub requeue_after: Option<Duration>,
    /// Why managing pods was skipped, if it was.
    pub error: Option<ReplicaSetPlanError>,
}

impl ReplicaSetPlan {
    /// The status write after creating or deleting pods failed: the same counts with the
    /// ReplicaFailure condition (`FailedCreate` / `FailedDelete`). `None` when the stored status
    /// already says so.
    pub fn status_after_manage_error(
        &self,
        rs: &ReplicaSet,
        error: &ManageError,
        now: Timestamp,
    ) -> Option<ReplicaSetStatus> {
        let status = calculate_status(
            rs,
            &self.owned_pods,
            self.terminating_pods,
            Some(error),
            now,
        );
        status_to_write(rs, &status)
    }
}

/// The Normal event recorded on the ReplicaSet after creating a pod.
pub fn successful_create_event(pod_name: &str) -> Event {
    event(
        EventType::Normal,
        "SuccessfulCreate",
        format!("Created pod: {pod_name}"),
    )
}

/// The Warning event recorded on the ReplicaSet when creating a pod failed.
pub fn failed_create_event(error: &str) -> Event {
    event(
        EventType::Warning,
        "FailedCreate",
        format!("Error creating: {error}"),
    )
}

/// The Normal event recorded on the ReplicaSet after deleting a pod.
pub fn successful_delete_event(pod_name: &str) -> Event {
    event(
        EventType::Normal,
        "SuccessfulDelete",
        format!("Deleted pod: {pod_name}"),
    )
}

/// The Warning event recorded on the ReplicaSet when deleting a pod failed.
pub fn failed_delete_event(error: &str) -> Event {
    event(
        EventType::Warning,
        "FailedDelete",
        format!("Error deleting: {error}"),
    )
}

fn event(type_: EventType, reason: &str, message: String) -> Event {
    Event {
        type_,
        reason: reason.to_string(),
        message,
        replica_set: None,
    }
}

/// Plans one sync of `rs` given the pods of its namespace at time `now`, ranking a scale-down
/// only by the pods its own selector matches (as upstream does for a ReplicaSet without a
/// controller).
pub fn plan(rs: &ReplicaSet, pods: &[Pod], now: Timestamp) -> ReplicaSetPlan {
    plan_with_related(rs, &[], pods, now)
}

/// Like [`plan`], with the other ReplicaSets of the namespace: those sharing `rs`'s controller
/// (the other revisions of one Deployment) contribute their pods to the "co-located pods on the
/// same node" rank that spreads a scale-down over nodes.
pub fn plan_with_related(
    rs: &ReplicaSet,
    other_replica_sets: &[ReplicaSet],
    pods: &[Pod],
    now: Timestamp,
) -> ReplicaSetPlan {
    let mut plan = ReplicaSetPlan {
        adopt: Vec::new(),
        release: Vec::new(),
        create: None,
        delete: Vec::new(),
        owned_pods: Vec::new(),
        terminating_pods: 0,
        status: ReplicaSetStatus::default(),
        status_update: None,
        requeue_after: None,
        error: None,
    };
    let selector = match selector_of(rs) {
        Ok(selector) => selector,
        Err(error) => {
            plan.error = Some(error);
            return plan;
        }
    };
    let namespace = rs.metadata.namespace.as_deref().unwrap_or("");
    let rs_uid = rs.metadata.uid.as_deref().unwrap_or("");
    let deleting = rs.metadata.deletion_timestamp.is_some();

    for pod in pods {
        if pod.metadata.namespace.as_deref().unwrap_or(namespace) != namespace {
            continue;
        }
        if pods::is_pod_terminating(pod) {
            if controller_of(&pod.metadata).is_some_and(|owner| owner.uid == rs_uid) {
                plan.terminating_pods = plan.terminating_pods.saturating_add(1);
            }
            continue;
        }
        if !is_pod_active(pod) {
            continue;
        }
        let matches = selector.matches(&labels_map(pod));
        match controller_of(&pod.metadata) {
            Some(owner) if owner.uid != rs_uid => {}
            Some(_) if matches => plan.owned_pods.push(pod.clone()),
            Some(_) => {
                if !deleting {
                    plan.release.push(release_patch(pod, rs_uid));
                }
            }
            None => {
                if !deleting && matches {
                    plan.adopt.push(adopt_patch(pod, rs));
                    plan.owned_pods.push(pod.clone());
                }
            }
        }
    }

    if !deleting {
        manage_replicas(&mut plan, rs, other_replica_sets, pods, now);
    }

    plan.status = calculate_status(rs, &plan.owned_pods, plan.terminating_pods, None, now);
    plan.status_update = status_to_write(rs, &plan.status);
    let min_ready = status::min_ready_seconds(rs);
    plan.requeue_after = plan
        .owned_pods
        .iter()
        .filter_map(|pod| pods::pod_available_in(pod, min_ready, now))
        .min()
        .map(|left| left + Duration::from_secs(1));
    plan
}

fn manage_replicas(
    plan: &mut ReplicaSetPlan,
    rs: &ReplicaSet,
    other_replica_sets: &[ReplicaSet],
    pods: &[Pod],
    now: Timestamp,
) {
    let desired = usize::try_from(status::spec_replicas(rs).max(0)).unwrap_or(0);
    let current = plan.owned_pods.len();
    if current < desired {
        let count = (desired - current).min(BURST_REPLICAS);
        plan.create = Some(PodCreation {
            count,
            pod: pod_from_template(rs),
            batches: slow_start_batches(count, SLOW_START_INITIAL_BATCH_SIZE),
        });
    } else if current > desired {
        let count = (current - desired).min(BURST_REPLICAS);
        let related = related_pods(rs, other_replica_sets, pods);
        plan.delete = pods_to_delete(&plan.owned_pods, &related, count, now)
            .into_iter()
            .map(|pod| PodDeletion {
                name: pod.metadata.name.clone().unwrap_or_default(),
                uid: pod.metadata.uid.clone(),
            })
            .collect();
    }
}

fn selector_of(rs: &ReplicaSet) -> Result<LabelSelector, ReplicaSetPlanError> {
    let value = rs
        .spec
        .as_ref()
        .map(|s| serde_json::to_value(&s.selector).unwrap_or(Value::Null))
        .unwrap_or(Value::Null);
    LabelSelector::from_label_selector(&value)
        .map_err(|e| ReplicaSetPlanError::InvalidSelector(e.to_string()))
}

fn labels_map(pod: &Pod) -> Map<String, Value> {
    pod.metadata
        .labels
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect()
}

fn controller_of(meta: &ObjectMeta) -> Option<&OwnerReference> {
    meta.owner_references
        .iter()
        .flatten()
        .find(|o| o.controller == Some(true))
}

/// The ownerReference that makes `rs` a pod's controller: it blocks foreground deletion of the
/// ReplicaSet until the pod is gone.
pub fn controller_ref(rs: &ReplicaSet) -> OwnerReference {
    OwnerReference {
        api_version: "apps/v1".to_string(),
        kind: "ReplicaSet".to_string(),
        name: rs.metadata.name.clone().unwrap_or_default(),
        uid: rs.metadata.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

fn adopt_patch(pod: &Pod, rs: &ReplicaSet) -> OwnerPatch {
    let pod_uid = pod.metadata.uid.clone().unwrap_or_default();
    let reference = serde_json::to_value(controller_ref(rs)).unwrap_or(Value::Null);
    OwnerPatch {
        pod_name: pod.metadata.name.clone().unwrap_or_default(),
        patch: json!({"metadata": {"ownerReferences": [reference], "uid": pod_uid}}),
        pod_uid,
    }
}

fn release_patch(pod: &Pod, rs_uid: &str) -> OwnerPatch {
    let pod_uid = pod.metadata.uid.clone().unwrap_or_default();
    OwnerPatch {
        pod_name: pod.metadata.name.clone().unwrap_or_default(),
        patch: json!({
            "metadata": {"ownerReferences": [{"$patch": "delete", "uid": rs_uid}], "uid": pod_uid}
        }),
        pod_uid,
    }
}

/// Pods of the ReplicaSets sharing `rs`'s controller (or of `rs` alone when it has none),
/// found by their selectors as upstream does, each once.
fn related_pods<'a>(rs: &ReplicaSet, others: &[ReplicaSet], pods: &'a [Pod]) -> Vec<&'a Pod> {
    let namespace = rs.metadata.namespace.as_deref().unwrap_or("");
    let mut family = vec![rs];
    if let Some(owner) = controller_of(&rs.metadata) {
        family.extend(others.iter().filter(|other| {
            other.metadata.uid != rs.metadata.uid
                && other.metadata.namespace.as_deref().unwrap_or("") == namespace
                && controller_of(&other.metadata).is_some_and(|o| o.uid == owner.uid)
        }));
    }
    let selectors: Vec<LabelSelector> = family
        .into_iter()
        .filter_map(|r| selector_of(r).ok())
        .collect();
    pods.iter()
        .filter(|pod| pod.metadata.namespace.as_deref().unwrap_or(namespace) == namespace)
        .filter(|pod| {
            let labels = labels_map(pod);
            selectors.iter().any(|s| s.matches(&labels))
        })
        .collect()
}

/// The pod object the controller creates from `rs`'s template (`GetPodFromTemplate`):
/// template labels, annotations, finalizers and spec, `generateName: <rs-name>-`, the
/// ReplicaSet's namespace and a controller reference to it.
pub fn pod_from_template(rs: &ReplicaSet) -> Pod {
    let template: PodTemplateSpec = rs
        .spec
        .as_ref()
        .and_then(|s| s.template.clone())
        .unwrap_or_default();
    let template_meta = template.metadata.unwrap_or_default();
    let name = rs.metadata.name.as_deref().unwrap_or("");
    Pod {
        metadata: ObjectMeta {
            generate_name: Some(pod_name_prefix(name)),
            namespace: rs.metadata.namespace.clone(),
            labels: template_meta.labels.filter(|l| !l.is_empty()),
            annotations: template_meta.annotations.filter(|a| !a.is_empty()),
            finalizers: template_meta.finalizers.filter(|f| !f.is_empty()),
            owner_references: Some(vec![controller_ref(rs)]),
            ..ObjectMeta::default()
        },
        spec: template.spec,
        status: None,
    }
}

/// `<name>-`, or the bare name when the dash would make an invalid name prefix (too long).
pub fn pod_name_prefix(controller_name: &str) -> String {
    let with_dash = format!("{controller_name}-");
    // A generateName prefix is validated with its trailing dash masked to a letter.
    let masked = format!("{controller_name}a");
    if is_dns1123_subdomain(&masked) {
        with_dash
    } else {
        controller_name.to_string()
    }
}

fn is_dns1123_subdomain(name: &str) -> bool {
    name.len() <= 253
        && !name.is_empty()
        && name.split('.').all(|label| {
            let bytes = label.as_bytes();
            let alnum = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
            !bytes.is_empty()
                && bytes.first().is_some_and(alnum)
                && bytes.last().is_some_and(alnum)
                && bytes.iter().all(|b| alnum(b) || *b == b'-')
        })
}
