//! The StatefulSet controller's planner, as kube-controller-manager's stateful set controller
//! decides (`getStatefulSetRevisions`, `updateStatefulSet`, `truncateHistory`), pure and with the
//! time passed in. The shell (`controller.rs`) reads caches and writes what a plan says.
//!
//! A sync makes sure the template has a ControllerRevision (`<set>-<hash>`; the revision's name
//! labels each pod as `controller-revision-hash`), then walks the ordinals `start ..
//! start+replicas`: a missing pod is created (its claims first) from the current revision below
//! the partition and from the update revision above it; a failed or succeeded pod is deleted;
//! under `OrderedReady` the walk stops at the first pod created, terminating or not Running and
//! Ready, and pods beyond the replicas go one at a time from the highest ordinal; under
//! `Parallel` nothing waits. When every pod is in place, `RollingUpdate` deletes old-revision
//! pods from the highest ordinal down to the partition, at most `maxUnavailable` unavailable at
//! once; `OnDelete` waits for the user.

pub mod controller;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{ControllerRevision, StatefulSet, StatefulSetStatus};
use k8s_openapi::api::core::v1::{
    PersistentVolumeClaim, PersistentVolumeClaimVolumeSource, Pod, PodTemplateSpec, Volume,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::runtime::RawExtension;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use skiff_api::selector::LabelSelector;

use crate::cloneset::revision::{hash_revision, revision_data, revision_name, template_of};
use crate::deployment::util::scaled_value_from_int_or_percent;
use crate::deployment::{Event, EventType};
use crate::replicaset::pods::{is_pod_available, is_pod_ready, pod_available_in};

/// The pod label holding the name of the revision a pod was made from.
pub const CONTROLLER_REVISION_HASH_LABEL: &str = "controller-revision-hash";
/// The pod label holding the pod's own name, so a Service can select one replica.
pub const POD_NAME_LABEL: &str = "statefulset.kubernetes.io/pod-name";
/// The pod label holding the pod's ordinal.
pub const POD_INDEX_LABEL: &str = "apps.kubernetes.io/pod-index";
/// The label a ControllerRevision carries with its hash (`ControllerRevisionHashLabel`).
pub const REVISION_HASH_LABEL: &str = "controller.kubernetes.io/hash";

/// What one sync observes.
pub struct StatefulSetObservation<'a> {
    /// The StatefulSet, as admitted (defaults applied).
    pub stateful_set: &'a StatefulSet,
    /// The pods of the StatefulSet's namespace.
    pub pods: &'a [Pod],
    /// The ControllerRevisions of the StatefulSet's namespace.
    pub revisions: &'a [ControllerRevision],
    /// The PersistentVolumeClaims of the namespace, when that kind is served.
    pub claims: &'a [PersistentVolumeClaim],
}

/// One write to the pods and claims, in the order the shell must make them.
#[derive(Debug, Clone, PartialEq)]
pub enum PodAction {
    /// Create the claims that are missing, then the pod.
    Create {
        /// The pod to create.
        pod: Box<Pod>,
        /// Its claims that do not exist yet.
        claims: Vec<PersistentVolumeClaim>,
    },
    /// Create the missing claims of a pod that exists (it waits in Pending for them).
    CreateClaims {
        /// The pod's name, for the events.
        pod: String,
        /// The claims to create.
        claims: Vec<PersistentVolumeClaim>,
    },
    /// Give a pod the identity labels it lacks (`updateStatefulPod`).
    Relabel {
        /// The pod's name.
        name: String,
        /// The pod's uid, as precondition.
        uid: Option<String>,
        /// Its labels after the change.
        labels: BTreeMap<String, String>,
    },
    /// Delete a pod (its uid as precondition, so a namesake is never deleted instead).
    Delete {
        /// The pod's name.
        name: String,
        /// The pod's uid.
        uid: Option<String>,
    },
}

/// A claim whose owner references the retention policy changes.
#[derive(Debug, Clone, PartialEq)]
pub struct ClaimOwnerUpdate {
    /// The claim's name.
    pub name: String,
    /// Its owner references after the change.
    pub owner_references: Vec<OwnerReference>,
}

/// An orphan pod the set adopts: its new owner references, with its uid as precondition.
#[derive(Debug, Clone, PartialEq)]
pub struct PodAdoption {
    /// The pod's name.
    pub name: String,
    /// The pod's uid.
    pub uid: Option<String>,
    /// Its owner references with the set's controller reference added.
    pub owner_references: Vec<OwnerReference>,
}

/// What one sync writes.
#[derive(Debug, Clone, Default)]
pub struct StatefulSetPlan {
    /// Orphan pods to adopt, before any other pod write.
    pub adopt: Vec<PodAdoption>,
    /// The revision new pods above the partition are made from.
    pub update_revision: String,
    /// The revision pods below the partition are made from.
    pub current_revision: String,
    /// A ControllerRevision to create for the current template.
    pub create_revision: Option<ControllerRevision>,
    /// An existing revision holding the template that must become the newest (a rollback):
    /// its name and new number.
    pub renumber_revision: Option<(String, i64)>,
    /// Pod and claim writes, in order.
    pub actions: Vec<PodAction>,
    /// Claims whose owner references change.
    pub claim_owner_updates: Vec<ClaimOwnerUpdate>,
    /// Old ControllerRevisions beyond `revisionHistoryLimit` to delete.
    pub delete_revisions: Vec<String>,
    /// The status to write, when it differs from the stored one.
    pub status: Option<StatefulSetStatus>,
    /// When to sync again besides watch events (minReadySeconds).
    pub requeue_after: Option<Duration>,
}

fn event(type_: EventType, reason: &str, message: String) -> Event {
    Event {
        type_,
        reason: reason.to_string(),
        message,
        replica_set: None,
    }
}

/// The event recorded after a pod write (`recordPodEvent`): `SuccessfulCreate` "create Pod
/// web-0 in StatefulSet web successful", or `FailedCreate` with the error.
pub fn pod_event(verb: &str, pod: &str, set: &str, error: Option<&str>) -> Event {
    let title = title_case(verb);
    match error {
        None => event(
            EventType::Normal,
            &format!("Successful{title}"),
            format!("{verb} Pod {pod} in StatefulSet {set} successful"),
        ),
        Some(error) => event(
            EventType::Warning,
            &format!("Failed{title}"),
            format!("{verb} Pod {pod} in StatefulSet {set} failed error: {error}"),
        ),
    }
}

/// The event recorded after a claim write (`recordClaimEvent`).
pub fn claim_event(verb: &str, claim: &str, pod: &str, set: &str, error: Option<&str>) -> Event {
    let title = title_case(verb);
    match error {
        None => event(
            EventType::Normal,
            &format!("Successful{title}"),
            format!("{verb} Claim {claim} Pod {pod} in StatefulSet {set} success"),
        ),
        Some(error) => event(
            EventType::Warning,
            &format!("Failed{title}"),
            format!(
                "{verb} Claim {claim} for Pod {pod} in StatefulSet {set} failed error: {error}"
            ),
        ),
    }
}

fn title_case(verb: &str) -> String {
    let mut chars = verb.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

fn name_of(meta: &ObjectMeta) -> &str {
    meta.name.as_deref().unwrap_or("")
}

fn phase(pod: &Pod) -> &str {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("")
}

fn is_terminating(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_some()
}

/// `isRunningAndReady`.
pub fn is_running_and_ready(pod: &Pod) -> bool {
    phase(pod) == "Running" && is_pod_ready(pod)
}

/// `isRunningAndAvailable`: Running and Ready for at least `min_ready_seconds`.
fn is_running_and_available(pod: &Pod, min_ready_seconds: i32, now: Timestamp) -> bool {
    phase(pod) == "Running" && is_pod_available(pod, min_ready_seconds, now)
}

/// `isHealthy`: Running and Ready, and not being deleted.
fn is_healthy(pod: &Pod) -> bool {
    is_running_and_ready(pod) && !is_terminating(pod)
}

fn spec_int(
    set: &StatefulSet,
    get: impl Fn(&k8s_openapi::api::apps::v1::StatefulSetSpec) -> Option<i32>,
    default: i32,
) -> i32 {
    set.spec.as_ref().and_then(get).unwrap_or(default)
}

/// `spec.replicas` (1 when unset).
pub fn replicas(set: &StatefulSet) -> i32 {
    spec_int(set, |s| s.replicas, 1).max(0)
}

/// `getStartOrdinal`: `spec.ordinals.start`, or 0.
pub fn start_ordinal(set: &StatefulSet) -> i32 {
    spec_int(set, |s| s.ordinals.as_ref().and_then(|o| o.start), 0).max(0)
}

fn min_ready_seconds(set: &StatefulSet) -> i32 {
    spec_int(set, |s| s.min_ready_seconds, 0)
}

fn pod_management_parallel(set: &StatefulSet) -> bool {
    set.spec
        .as_ref()
        .and_then(|s| s.pod_management_policy.as_deref())
        == Some("Parallel")
}

fn strategy_type(set: &StatefulSet) -> &str {
    set.spec
        .as_ref()
        .and_then(|s| s.update_strategy.as_ref())
        .and_then(|u| u.type_.as_deref())
        .unwrap_or("RollingUpdate")
}

fn rolling_update(
    set: &StatefulSet,
) -> Option<&k8s_openapi::api::apps::v1::RollingUpdateStatefulSetStrategy> {
    set.spec
        .as_ref()?
        .update_strategy
        .as_ref()?
        .rolling_update
        .as_ref()
}

/// `getStatefulSetMaxUnavailable`: the strategy's value against the replicas, rounded down,
/// at least 1.
pub fn max_unavailable(set: &StatefulSet) -> i32 {
    let value = rolling_update(set)
        .and_then(|r| r.max_unavailable.clone())
        .unwrap_or(IntOrString::Int(1));
    scaled_value_from_int_or_percent(Some(&value), replicas(set), false)
        .unwrap_or(1)
        .max(1)
}

/// `getPodName`: `<set>-<ordinal>`.
pub fn pod_name(set: &StatefulSet, ordinal: i64) -> String {
    format!("{}-{ordinal}", name_of(&set.metadata))
}

/// `getParentNameAndOrdinal`: the set name and ordinal a pod name encodes, if it has one.
pub fn parent_and_ordinal(name: &str) -> Option<(&str, i64)> {
    let (parent, ordinal) = name.rsplit_once('-')?;
    if ordinal.is_empty() || !ordinal.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((parent, ordinal.parse().ok()?))
}

/// `getPersistentVolumeClaimName`: `<template>-<pod>`.
pub fn claim_name(template: &str, pod: &str) -> String {
    format!("{template}-{pod}")
}

fn claim_templates(set: &StatefulSet) -> &[PersistentVolumeClaim] {
    set.spec
        .as_ref()
        .and_then(|s| s.volume_claim_templates.as_deref())
        .unwrap_or(&[])
}

fn retention(set: &StatefulSet) -> (bool, bool) {
    let policy = set
        .spec
        .as_ref()
        .and_then(|s| s.persistent_volume_claim_retention_policy.as_ref());
    let delete = |v: Option<&String>| v.map(String::as_str) == Some("Delete");
    (
        delete(policy.and_then(|p| p.when_deleted.as_ref())),
        delete(policy.and_then(|p| p.when_scaled.as_ref())),
    )
}

/// The owner reference of everything the StatefulSet controls.
pub fn controller_ref(set: &StatefulSet) -> OwnerReference {
    OwnerReference {
        api_version: "apps/v1".to_string(),
        kind: "StatefulSet".to_string(),
        name: name_of(&set.metadata).to_string(),
        uid: set.metadata.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

fn is_controlled_by(meta: &ObjectMeta, uid: &str) -> bool {
    meta.owner_references
        .iter()
        .flatten()
        .any(|r| r.controller == Some(true) && r.uid == uid)
}

fn pod_revision(pod: &Pod) -> &str {
    pod.metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(CONTROLLER_REVISION_HASH_LABEL))
        .map(String::as_str)
        .unwrap_or("")
}

/// `getPersistentVolumeClaims`: the claims a pod at `ordinal` mounts, named after it, labelled
/// with the template's labels and the set's `matchLabels`.
pub fn claims_for(set: &StatefulSet, pod: &str) -> Vec<PersistentVolumeClaim> {
    let match_labels = set
        .spec
        .as_ref()
        .and_then(|s| s.selector.match_labels.clone())
        .unwrap_or_default();
    claim_templates(set)
        .iter()
        .map(|template| {
            let mut claim = template.clone();
            let template_name = name_of(&template.metadata).to_string();
            claim.metadata.name = Some(claim_name(&template_name, pod));
            claim.metadata.namespace = set.metadata.namespace.clone();
            let mut labels = claim.metadata.labels.take().unwrap_or_default();
            labels.extend(match_labels.clone());
            claim.metadata.labels = (!labels.is_empty()).then_some(labels);
            claim.status = None;
            claim
        })
        .collect()
}

/// `newStatefulSetPod` with `setPodRevision`: the template with the stable identity (name,
/// `hostname`, `subdomain`, the pod-name and pod-index labels), the claims as volumes, the
/// revision label and the controller reference.
pub fn new_pod(set: &StatefulSet, template: &PodTemplateSpec, ordinal: i64, revision: &str) -> Pod {
    let name = pod_name(set, ordinal);
    let meta = template.metadata.clone().unwrap_or_default();
    let mut labels: BTreeMap<String, String> = meta.labels.unwrap_or_default();
    labels.insert(POD_NAME_LABEL.to_string(), name.clone());
    labels.insert(POD_INDEX_LABEL.to_string(), ordinal.to_string());
    labels.insert(
        CONTROLLER_REVISION_HASH_LABEL.to_string(),
        revision.to_string(),
    );
    let mut spec = template.spec.clone().unwrap_or_default();
    spec.hostname = Some(name.clone());
    let service = set
        .spec
        .as_ref()
        .and_then(|s| s.service_name.clone())
        .unwrap_or_default();
    spec.subdomain = (!service.is_empty()).then_some(service);
    // `updateStorage`: each claim template becomes the volume of the same name.
    let templates = claim_templates(set);
    if !templates.is_empty() {
        let mut volumes: Vec<Volume> = spec
            .volumes
            .take()
            .unwrap_or_default()
            .into_iter()
            .filter(|v| templates.iter().all(|t| name_of(&t.metadata) != v.name))
            .collect();
        for template in templates {
            let template_name = name_of(&template.metadata);
            volumes.push(Volume {
                name: template_name.to_string(),
                persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                    claim_name: claim_name(template_name, &name),
                    read_only: None,
                }),
                ..Volume::default()
            });
        }
        spec.volumes = Some(volumes);
    }
    Pod {
        metadata: ObjectMeta {
            name: Some(name),
            namespace: set.metadata.namespace.clone(),
            labels: Some(labels),
            annotations: meta.annotations.filter(|a| !a.is_empty()),
            finalizers: meta.finalizers.filter(|f| !f.is_empty()),
            owner_references: Some(vec![controller_ref(set)]),
            ..ObjectMeta::default()
        },
        spec: Some(spec),
        status: None,
    }
}

/// The revision history: the update and current revisions and what to write.
struct History<'a> {
    update: String,
    current: String,
    update_template: PodTemplateSpec,
    current_template: PodTemplateSpec,
    create: Option<ControllerRevision>,
    renumber: Option<(String, i64)>,
    owned: Vec<&'a ControllerRevision>,
}

fn collision_count(set: &StatefulSet) -> i32 {
    set.status
        .as_ref()
        .and_then(|s| s.collision_count)
        .unwrap_or(0)
}

/// `getStatefulSetRevisions`: the revision equal to the template (renumbered newest when it is
/// not), or a new one; the current revision is the one the status names, else the update one.
fn construct_history<'a>(set: &StatefulSet, revisions: &'a [ControllerRevision]) -> History<'a> {
    let uid = set.metadata.uid.as_deref().unwrap_or("");
    let template = set
        .spec
        .as_ref()
        .map(|s| s.template.clone())
        .unwrap_or_default();
    let mut owned: Vec<&ControllerRevision> = revisions
        .iter()
        .filter(|r| is_controlled_by(&r.metadata, uid) && r.metadata.deletion_timestamp.is_none())
        .collect();
    owned.sort_by(|a, b| {
        a.revision
            .cmp(&b.revision)
            .then_with(|| a.metadata.name.cmp(&b.metadata.name))
    });
    let next = owned.last().map_or(0, |r| r.revision).saturating_add(1);
    let data = revision_data(&template);
    let equal: Vec<&&ControllerRevision> = owned
        .iter()
        .filter(|r| template_of(r).as_ref() == Some(&template))
        .collect();
    let (update, create, renumber) = match equal.last() {
        Some(found) => {
            let name = name_of(&found.metadata).to_string();
            let latest = owned.last().map(|r| name_of(&r.metadata)) == Some(name.as_str());
            let renumber = (!latest).then(|| (name.clone(), next));
            (name, None, renumber)
        }
        None => {
            let hash = hash_revision(&data, Some(collision_count(set)));
            let name = revision_name(name_of(&set.metadata), &hash);
            let mut labels = template
                .metadata
                .as_ref()
                .and_then(|m| m.labels.clone())
                .unwrap_or_default();
            labels.insert(REVISION_HASH_LABEL.to_string(), hash);
            let revision = ControllerRevision {
                metadata: ObjectMeta {
                    name: Some(name.clone()),
                    namespace: set.metadata.namespace.clone(),
                    labels: Some(labels),
                    annotations: set.metadata.annotations.clone().filter(|a| !a.is_empty()),
                    owner_references: Some(vec![controller_ref(set)]),
                    ..ObjectMeta::default()
                },
                data: Some(RawExtension(data)),
                revision: next,
            };
            (name, Some(revision), None)
        }
    };
    let status_current = set
        .status
        .as_ref()
        .and_then(|s| s.current_revision.clone())
        .unwrap_or_default();
    let current_found = owned
        .iter()
        .find(|r| !status_current.is_empty() && name_of(&r.metadata) == status_current);
    let (current, current_template) = match current_found {
        Some(r) => (
            status_current.clone(),
            template_of(r).unwrap_or_else(|| template.clone()),
        ),
        None => (update.clone(), template.clone()),
    };
    History {
        update,
        current,
        update_template: template,
        current_template,
        create,
        renumber,
        owned,
    }
}

/// `truncateHistory`: revisions no pod was made from, other than the current and update ones,
/// oldest first beyond `revisionHistoryLimit`.
fn revisions_to_delete(set: &StatefulSet, history: &History<'_>, pods: &[&Pod]) -> Vec<String> {
    let limit =
        usize::try_from(spec_int(set, |s| s.revision_history_limit, 10).max(0)).unwrap_or(0);
    let live: BTreeSet<&str> = pods
        .iter()
        .map(|p| pod_revision(p))
        .chain([history.current.as_str(), history.update.as_str()])
        .collect();
    let old: Vec<&&ControllerRevision> = history
        .owned
        .iter()
        .filter(|r| !live.contains(name_of(&r.metadata)))
        .collect();
    let excess = old.len().saturating_sub(limit);
    old.into_iter()
        .take(excess)
        .map(|r| name_of(&r.metadata).to_string())
        .collect()
}

/// `updateClaimOwnerRefForSetAndPod`: the owner references a claim of `pod` should carry under
/// the retention policy (references to others are kept). WhenDeleted=Delete makes the set an
/// owner; WhenScaled=Delete makes a pod beyond the replicas the owner instead.
pub fn claim_owner_references(
    set: &StatefulSet,
    pod: &Pod,
    current: &[OwnerReference],
) -> Vec<OwnerReference> {
    let (when_deleted, when_scaled) = retention(set);
    let set_uid = set.metadata.uid.clone().unwrap_or_default();
    let pod_uid = pod.metadata.uid.clone().unwrap_or_default();
    let scaled_down = !in_ordinal_range(set, pod);
    let (own_by_set, own_by_pod) = match (when_deleted, when_scaled) {
        (false, false) => (false, false),
        (true, false) => (true, false),
        (false, true) => (false, scaled_down),
        (true, true) => (!scaled_down, scaled_down),
    };
    let mut refs: Vec<OwnerReference> = current
        .iter()
        .filter(|r| r.uid != set_uid && r.uid != pod_uid)
        .cloned()
        .collect();
    if own_by_set {
        refs.push(OwnerReference {
            api_version: "apps/v1".to_string(),
            kind: "StatefulSet".to_string(),
            name: name_of(&set.metadata).to_string(),
            uid: set_uid,
            controller: None,
            block_owner_deletion: None,
        });
    }
    if own_by_pod {
        refs.push(OwnerReference {
            api_version: "v1".to_string(),
            kind: "Pod".to_string(),
            name: name_of(&pod.metadata).to_string(),
            uid: pod_uid,
            controller: None,
            block_owner_deletion: None,
        });
    }
    refs
}

fn ordinal_of(pod: &Pod) -> Option<i64> {
    parent_and_ordinal(name_of(&pod.metadata)).map(|(_, o)| o)
}

/// `podInOrdinalRange`: `start <= ordinal < start + replicas`.
fn in_ordinal_range(set: &StatefulSet, pod: &Pod) -> bool {
    let start = i64::from(start_ordinal(set));
    let end = start + i64::from(replicas(set));
    ordinal_of(pod).is_some_and(|o| o >= start && o < end)
}

fn requeue_sooner(requeue: &mut Option<Duration>, after: Duration) {
    *requeue = Some(requeue.map_or(after, |r| r.min(after)));
}

/// Plans one sync of the StatefulSet at `now`.
pub fn plan(observation: &StatefulSetObservation<'_>, now: Timestamp) -> StatefulSetPlan {
    let set = observation.stateful_set;
    let uid = set.metadata.uid.as_deref().unwrap_or("");
    let set_name = name_of(&set.metadata);
    let history = construct_history(set, observation.revisions);
    let mut plan = StatefulSetPlan {
        update_revision: history.update.clone(),
        current_revision: history.current.clone(),
        create_revision: history.create.clone(),
        renumber_revision: history.renumber.clone(),
        ..StatefulSetPlan::default()
    };

    // The set's pods: controlled by it, selected by it, and named as its members.
    let selector = set
        .spec
        .as_ref()
        .and_then(|s| serde_json::to_value(&s.selector).ok())
        .and_then(|s| LabelSelector::from_label_selector(&s).ok());
    let labels_of = |pod: &Pod| -> serde_json::Map<String, serde_json::Value> {
        pod.metadata
            .labels
            .iter()
            .flatten()
            .map(|(k, v)| (k.clone(), serde_json::Value::from(v.as_str())))
            .collect()
    };
    let selected = |p: &Pod| selector.as_ref().is_some_and(|s| s.matches(&labels_of(p)));
    let member = |p: &Pod| {
        parent_and_ordinal(name_of(&p.metadata)).is_some_and(|(parent, _)| parent == set_name)
    };
    let has_controller = |p: &Pod| {
        p.metadata
            .owner_references
            .iter()
            .flatten()
            .any(|r| r.controller == Some(true))
    };
    // `ClaimPods`: orphans the set selects and names are adopted (not while it is deleted);
    // they count as its pods from this sync on.
    let adopting = set.metadata.deletion_timestamp.is_none();
    let mut pods: Vec<&Pod> = Vec::new();
    for pod in observation.pods {
        if is_controlled_by(&pod.metadata, uid) && selected(pod) && member(pod) {
            pods.push(pod);
        } else if adopting
            && !has_controller(pod)
            && pod.metadata.deletion_timestamp.is_none()
            && selected(pod)
            && member(pod)
        {
            let mut owner_references = pod.metadata.owner_references.clone().unwrap_or_default();
            owner_references.push(controller_ref(set));
            plan.adopt.push(PodAdoption {
                name: name_of(&pod.metadata).to_string(),
                uid: pod.metadata.uid.clone(),
                owner_references,
            });
            pods.push(pod);
        }
    }

    let min_ready = min_ready_seconds(set);
    plan.status = status_update(
        set,
        &pods,
        &history,
        min_ready,
        now,
        &mut plan.requeue_after,
    );

    if set.metadata.deletion_timestamp.is_none() {
        manage(observation, &pods, &history, now, &mut plan);
        plan.delete_revisions = revisions_to_delete(set, &history, &pods);
    }
    plan
}

/// `updateStatefulSet`: the replicas in ordinal order, then the condemned pods from the highest
/// ordinal, then the rolling update; under OrderedReady the first step that must wait ends it.
fn manage(
    observation: &StatefulSetObservation<'_>,
    pods: &[&Pod],
    history: &History<'_>,
    now: Timestamp,
    plan: &mut StatefulSetPlan,
) {
    let set = observation.stateful_set;
    let monotonic = !pod_management_parallel(set);
    let min_ready = min_ready_seconds(set);
    let start = i64::from(start_ordinal(set));
    let count = usize::try_from(replicas(set)).unwrap_or(0);
    let mut replicas: Vec<Option<&Pod>> = vec![None; count];
    let mut condemned: Vec<&Pod> = Vec::new();
    for pod in pods {
        let Some(ordinal) = ordinal_of(pod) else {
            continue;
        };
        if in_ordinal_range(set, pod) {
            let index = usize::try_from(ordinal - start).unwrap_or(usize::MAX);
            if let Some(slot) = replicas.get_mut(index) {
                *slot = Some(pod);
            }
        } else {
            condemned.push(pod);
        }
    }
    condemned.sort_by_key(|p| std::cmp::Reverse(ordinal_of(p)));
    let claim_names: BTreeSet<&str> = observation
        .claims
        .iter()
        .map(|c| name_of(&c.metadata))
        .collect();
    let missing_claims = |pod: &str| -> Vec<PersistentVolumeClaim> {
        claims_for(set, pod)
            .into_iter()
            .filter(|c| !claim_names.contains(name_of(&c.metadata)))
            .collect()
    };

    // Claims' owner references under the retention policy, for every pod.
    for pod in pods {
        for wanted in claims_for(set, name_of(&pod.metadata)) {
            let Some(claim) = observation
                .claims
                .iter()
                .find(|c| name_of(&c.metadata) == name_of(&wanted.metadata))
            else {
                continue;
            };
            let current = claim.metadata.owner_references.clone().unwrap_or_default();
            let refs = claim_owner_references(set, pod, &current);
            if refs != current {
                plan.claim_owner_updates.push(ClaimOwnerUpdate {
                    name: name_of(&claim.metadata).to_string(),
                    owner_references: refs,
                });
            }
        }
    }

    let first_unhealthy: Option<&str> = replicas
        .iter()
        .flatten()
        .chain(condemned.iter().rev())
        .find(|p| !is_healthy(p))
        .map(|p| name_of(&p.metadata));

    // The pods in the range, in ordinal order.
    let partition = rolling_update(set).and_then(|r| r.partition).unwrap_or(0);
    let current_replicas = set
        .status
        .as_ref()
        .and_then(|s| s.current_replicas)
        .unwrap_or(0);
    for (index, slot) in replicas.iter().enumerate() {
        let ordinal = start + index as i64;
        let Some(pod) = slot else {
            // `newVersionedStatefulSetPod`: below the partition from the current revision.
            let below = if strategy_type(set) == "RollingUpdate" {
                match rolling_update(set) {
                    None => ordinal < start + i64::from(current_replicas),
                    Some(_) => ordinal < start + i64::from(partition),
                }
            } else {
                false
            };
            let pod = if below {
                new_pod(set, &history.current_template, ordinal, &history.current)
            } else {
                new_pod(set, &history.update_template, ordinal, &history.update)
            };
            let claims = missing_claims(name_of(&pod.metadata));
            plan.actions.push(PodAction::Create {
                pod: Box::new(pod),
                claims,
            });
            if monotonic {
                return;
            }
            continue;
        };
        let name = name_of(&pod.metadata);
        if matches!(phase(pod), "Failed" | "Succeeded") && !is_terminating(pod) {
            plan.actions.push(PodAction::Delete {
                name: name.to_string(),
                uid: pod.metadata.uid.clone(),
            });
            if monotonic {
                return;
            }
            continue;
        }
        if phase(pod) == "Pending" {
            let claims = missing_claims(name);
            if !claims.is_empty() {
                plan.actions.push(PodAction::CreateClaims {
                    pod: name.to_string(),
                    claims,
                });
            }
        }
        if is_terminating(pod) {
            if monotonic {
                return;
            }
            continue;
        }
        if !is_running_and_ready(pod) && monotonic {
            return;
        }
        if !is_running_and_available(pod, min_ready, now) && monotonic {
            if let Some(wait) = pod_available_in(pod, min_ready, now) {
                requeue_sooner(&mut plan.requeue_after, wait);
            }
            return;
        }
        // `identityMatches`, else `updateIdentity`: the pod-name and pod-index labels.
        let labels = pod.metadata.labels.clone().unwrap_or_default();
        let wanted = [
            (POD_NAME_LABEL, name.to_string()),
            (POD_INDEX_LABEL, ordinal.to_string()),
        ];
        if wanted
            .iter()
            .any(|(k, v)| labels.get(*k).map(String::as_str) != Some(v.as_str()))
        {
            let mut labels = labels;
            for (k, v) in wanted {
                labels.insert(k.to_string(), v);
            }
            plan.actions.push(PodAction::Relabel {
                name: name.to_string(),
                uid: pod.metadata.uid.clone(),
                labels,
            });
        }
    }

    // Pods beyond the replicas, from the highest ordinal.
    for pod in &condemned {
        let name = name_of(&pod.metadata);
        if is_terminating(pod) {
            if monotonic {
                return;
            }
            continue;
        }
        let first = first_unhealthy == Some(name);
        if monotonic && !is_running_and_ready(pod) && !first {
            return;
        }
        if monotonic && !is_running_and_available(pod, min_ready, now) && !first {
            if let Some(wait) = pod_available_in(pod, min_ready, now) {
                requeue_sooner(&mut plan.requeue_after, wait);
            }
            return;
        }
        plan.actions.push(PodAction::Delete {
            name: name.to_string(),
            uid: pod.metadata.uid.clone(),
        });
        if monotonic {
            return;
        }
    }

    if strategy_type(set) != "RollingUpdate" {
        return;
    }
    // `updateStatefulSetAfterInvariantEstablished`: old pods from the highest ordinal down to
    // the partition, while fewer than maxUnavailable pods in the range are unavailable.
    let max_unavailable = max_unavailable(set);
    let unavailable = replicas
        .iter()
        .filter(|p| {
            p.is_none_or(|p| !is_healthy(p) || !is_running_and_available(p, min_ready, now))
        })
        .count();
    let room = usize::try_from(max_unavailable)
        .unwrap_or(0)
        .saturating_sub(unavailable);
    let update_min = usize::try_from(partition.max(0)).unwrap_or(usize::MAX);
    let mut deleted = 0usize;
    for index in (0..replicas.len()).rev() {
        if index < update_min || deleted >= room {
            break;
        }
        let Some(pod) = replicas[index] else {
            continue;
        };
        if pod_revision(pod) != history.update && !is_terminating(pod) {
            plan.actions.push(PodAction::Delete {
                name: name_of(&pod.metadata).to_string(),
                uid: pod.metadata.uid.clone(),
            });
            deleted += 1;
        }
    }
}

/// The status counts over the set's pods (`computeReplicaStatus`), the revisions, and the
/// rolling update's completion (`completeRollingUpdate`).
fn status_update(
    set: &StatefulSet,
    pods: &[&Pod],
    history: &History<'_>,
    min_ready: i32,
    now: Timestamp,
    requeue: &mut Option<Duration>,
) -> Option<StatefulSetStatus> {
    let (mut count, mut ready, mut available, mut current, mut updated) = (0, 0, 0, 0, 0);
    for pod in pods {
        if !phase(pod).is_empty() {
            count += 1;
        }
        if is_running_and_ready(pod) {
            ready += 1;
            if is_running_and_available(pod, min_ready, now) {
                available += 1;
            } else if let Some(wait) = pod_available_in(pod, min_ready, now) {
                requeue_sooner(requeue, wait);
            }
        }
        if !phase(pod).is_empty() && !is_terminating(pod) {
            let revision = pod_revision(pod);
            if revision == history.current {
                current += 1;
            }
            if revision == history.update {
                updated += 1;
            }
        }
    }
    let old = set.status.clone().unwrap_or_default();
    // Go's `omitempty` leaves out the zero counts; `availableReplicas` it always writes.
    let omit_zero = |n: i32| (n != 0).then_some(n);
    let mut status = StatefulSetStatus {
        available_replicas: Some(available),
        collision_count: Some(collision_count(set)),
        conditions: old.conditions.clone(),
        current_replicas: omit_zero(current),
        current_revision: Some(history.current.clone()),
        observed_generation: set.metadata.generation,
        ready_replicas: omit_zero(ready),
        replicas: count,
        update_revision: Some(history.update.clone()),
        updated_replicas: omit_zero(updated),
    };
    let desired = replicas(set);
    if strategy_type(set) == "RollingUpdate"
        && updated == desired
        && ready == desired
        && count == desired
    {
        status.current_replicas = status.updated_replicas;
        status.current_revision = status.update_revision.clone();
    }
    let normalize = |s: &StatefulSetStatus| StatefulSetStatus {
        available_replicas: Some(s.available_replicas.unwrap_or(0)),
        collision_count: Some(s.collision_count.unwrap_or(0)),
        current_replicas: Some(s.current_replicas.unwrap_or(0)),
        ready_replicas: Some(s.ready_replicas.unwrap_or(0)),
        updated_replicas: Some(s.updated_replicas.unwrap_or(0)),
        current_revision: Some(s.current_revision.clone().unwrap_or_default()),
        update_revision: Some(s.update_revision.clone().unwrap_or_default()),
        ..s.clone()
    };
    (normalize(&old) != normalize(&status)).then_some(status)
}
