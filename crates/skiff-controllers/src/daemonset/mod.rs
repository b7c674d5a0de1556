//! The DaemonSet controller's planner: one daemon pod on every node that should run it, as
//! kube-controller-manager's daemon controller decides (`manage`, `rollingUpdate`,
//! `updateDaemonSetStatus`, `constructHistory`, `cleanupHistory`), pure and with the time
//! passed in. The shell (`controller.rs`) reads caches and writes what a plan says.
//!
//! A sync first makes sure the current template has a ControllerRevision (named
//! `<daemonset>-<hash>`, the hash also labelling every pod as `controller-revision-hash`);
//! then, per node in name order, creates the missing pod, deletes failed pods (with back-off),
//! extra pods and pods on nodes that should no longer run one; then, when nothing of that was
//! needed on a node, lets the update strategy replace its old pod (RollingUpdate with
//! maxUnavailable or maxSurge; OnDelete waits for the user); and it reports the status counts.

pub mod backoff;
pub mod controller;
pub mod placement;

#[cfg(test)]
mod tests;

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{ControllerRevision, DaemonSet, DaemonSetStatus};
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::runtime::RawExtension;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

pub use backoff::FailedPodBackoff;
pub use placement::{node_fit, NodeFit, CONTROLLER_REVISION_HASH_LABEL};

use skiff_api::selector::LabelSelector;

use crate::cloneset::revision::{hash_revision, revision_data, revision_name, template_of};
use crate::deployment::util::scaled_value_from_int_or_percent;
use crate::deployment::{Event, EventType};
use crate::replicaset::pods::{is_pod_available, is_pod_ready, pod_available_in};
use crate::replicaset::slow_start_batches;

/// Most pods one sync creates or deletes (the daemon controller's `BurstReplicas`).
pub const BURST_REPLICAS: usize = 250;

/// What one sync observes.
pub struct DaemonSetObservation<'a> {
    /// The DaemonSet, as admitted (defaults applied).
    pub daemon_set: &'a DaemonSet,
    /// Every node.
    pub nodes: &'a [Node],
    /// The pods of the DaemonSet's namespace.
    pub pods: &'a [Pod],
    /// The ControllerRevisions of the DaemonSet's namespace.
    pub revisions: &'a [ControllerRevision],
    /// Whether the creations and deletions of earlier syncs have all been observed; if not,
    /// only the status is planned, so the controller never acts twice on a stale view.
    pub expectations_satisfied: bool,
}

/// A pod to delete, with its uid as precondition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodDeletion {
    /// The pod's name.
    pub name: String,
    /// The pod's uid, so a namesake is never deleted instead.
    pub uid: Option<String>,
}

/// What one sync writes.
#[derive(Debug, Clone, Default)]
pub struct DaemonSetPlan {
    /// The `controller-revision-hash` of the current template.
    pub hash: String,
    /// A ControllerRevision to create for the current template.
    pub create_revision: Option<ControllerRevision>,
    /// An existing revision holding the current template that must become the newest
    /// (after a rollback): its name and new number.
    pub renumber_revision: Option<(String, i64)>,
    /// Nodes to create a daemon pod on, in order.
    pub create_on_nodes: Vec<String>,
    /// Sizes of the slow-start batches the creations go in.
    pub create_batches: Vec<usize>,
    /// Pods to delete.
    pub delete: Vec<PodDeletion>,
    /// Old ControllerRevisions beyond `revisionHistoryLimit` to delete.
    pub delete_revisions: Vec<String>,
    /// Events to record on the DaemonSet.
    pub events: Vec<Event>,
    /// The status to write, when it differs from the stored one.
    pub status: Option<DaemonSetStatus>,
    /// When to sync again besides watch events (back-off, minReadySeconds).
    pub requeue_after: Option<Duration>,
}

/// The Normal event recorded after creating a daemon pod.
pub fn successful_create_event(pod_name: &str) -> Event {
    event(
        EventType::Normal,
        "SuccessfulCreate",
        format!("Created pod: {pod_name}"),
    )
}

/// The Warning event recorded when creating a daemon pod failed.
pub fn failed_create_event(error: &str) -> Event {
    event(
        EventType::Warning,
        "FailedCreate",
        format!("Error creating: {error}"),
    )
}

/// The Normal event recorded after deleting a daemon pod.
pub fn successful_delete_event(pod_name: &str) -> Event {
    event(
        EventType::Normal,
        "SuccessfulDelete",
        format!("Deleted pod: {pod_name}"),
    )
}

/// The Warning event recorded when deleting a daemon pod failed.
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

fn name_of(meta: &ObjectMeta) -> &str {
    meta.name.as_deref().unwrap_or("")
}

fn phase(pod: &Pod) -> &str {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("")
}

fn is_terminal(pod: &Pod) -> bool {
    matches!(phase(pod), "Succeeded" | "Failed")
}

fn label_map(pod: &Pod) -> serde_json::Map<String, serde_json::Value> {
    pod.metadata
        .labels
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), serde_json::Value::from(v.as_str())))
        .collect()
}

fn pod_hash(pod: &Pod) -> Option<&str> {
    pod.metadata
        .labels
        .as_ref()?
        .get(CONTROLLER_REVISION_HASH_LABEL)
        .map(String::as_str)
}

/// `IsPodUpdated`: the pod carries the current revision's hash.
pub fn is_pod_updated(pod: &Pod, hash: &str) -> bool {
    !hash.is_empty() && pod_hash(pod) == Some(hash)
}

/// `podByCreationTimestampAndPhase`: scheduled pods first, then oldest, then by name.
fn cmp_by_creation_and_phase(a: &Pod, b: &Pod) -> Ordering {
    let scheduled = |p: &Pod| {
        p.spec
            .as_ref()
            .and_then(|s| s.node_name.as_deref())
            .is_some_and(|n| !n.is_empty())
    };
    scheduled(b)
        .cmp(&scheduled(a))
        .then_with(|| {
            let created = |p: &Pod| p.metadata.creation_timestamp.as_ref().map(|t| t.0);
            created(a).cmp(&created(b))
        })
        .then_with(|| name_of(&a.metadata).cmp(name_of(&b.metadata)))
}

fn is_controlled_by(meta: &ObjectMeta, uid: &str) -> bool {
    meta.owner_references
        .iter()
        .flatten()
        .any(|r| r.controller == Some(true) && r.uid == uid)
}

fn min_ready_seconds(ds: &DaemonSet) -> i32 {
    ds.spec
        .as_ref()
        .and_then(|s| s.min_ready_seconds)
        .unwrap_or(0)
}

fn strategy_type(ds: &DaemonSet) -> &str {
    ds.spec
        .as_ref()
        .and_then(|s| s.update_strategy.as_ref())
        .and_then(|u| u.type_.as_deref())
        .unwrap_or("RollingUpdate")
}

fn rolling_value(ds: &DaemonSet, surge: bool) -> Option<IntOrString> {
    let rolling = ds
        .spec
        .as_ref()?
        .update_strategy
        .as_ref()?
        .rolling_update
        .as_ref()?;
    if surge {
        rolling.max_surge.clone()
    } else {
        rolling.max_unavailable.clone()
    }
}

/// `SurgeCount` and `UnavailableCount`: the strategy's values against `desired` (rounded
/// up); an unset or unreadable value counts as 0, and with both 0 one pod may be unavailable.
pub fn surge_and_unavailable(ds: &DaemonSet, desired: i32) -> (i32, i32) {
    if strategy_type(ds) != "RollingUpdate" {
        return (0, 0);
    }
    let resolve = |surge: bool| {
        rolling_value(ds, surge)
            .map(|v| scaled_value_from_int_or_percent(Some(&v), desired, true).unwrap_or(0))
            .unwrap_or(0)
            .max(0)
    };
    let (surge, unavailable) = (resolve(true), resolve(false));
    if desired > 0 && surge == 0 && unavailable == 0 {
        return (0, 1);
    }
    (surge, unavailable)
}

/// `AllowsSurge`: the strategy lets a node run a new pod beside the old one.
pub fn allows_surge(ds: &DaemonSet) -> bool {
    surge_and_unavailable(ds, 1).0 != 0
}

/// The revision history: which revision holds the current template, the hash its pods carry,
/// and what to write.
struct History<'a> {
    hash: String,
    create: Option<ControllerRevision>,
    renumber: Option<(String, i64)>,
    old: Vec<&'a ControllerRevision>,
}

/// `constructHistory`: finds the revision whose template is the DaemonSet's, or plans a new
/// one numbered above every other; a matching revision that is not the newest (the template
/// went back to it) is renumbered to be.
fn construct_history<'a>(ds: &DaemonSet, revisions: &'a [ControllerRevision]) -> History<'a> {
    let uid = ds.metadata.uid.as_deref().unwrap_or("");
    let template = ds
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
    let (matching, old): (Vec<&ControllerRevision>, Vec<&ControllerRevision>) = owned
        .into_iter()
        .partition(|r| template_of(r).as_ref() == Some(&template));
    let max_old = old.iter().map(|r| r.revision).max().unwrap_or(0);
    // Of several equal revisions the newest is current; the rest are history.
    let current = matching.last().copied();
    let mut old = old;
    old.extend(matching.iter().rev().skip(1).copied());
    let next = max_old.saturating_add(1);
    match current {
        Some(cur) => {
            let computed = || {
                let collision = ds.status.as_ref().and_then(|s| s.collision_count);
                hash_revision(&revision_data(&template), collision)
            };
            let hash = cur
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(CONTROLLER_REVISION_HASH_LABEL).cloned())
                .unwrap_or_else(computed);
            let renumber =
                (cur.revision < next).then(|| (name_of(&cur.metadata).to_string(), next));
            History {
                hash,
                create: None,
                renumber,
                old,
            }
        }
        None => {
            let collision = ds.status.as_ref().and_then(|s| s.collision_count);
            let data = revision_data(&template);
            let hash = hash_revision(&data, collision);
            let mut labels = template
                .metadata
                .as_ref()
                .and_then(|m| m.labels.clone())
                .unwrap_or_default();
            labels.insert(CONTROLLER_REVISION_HASH_LABEL.to_string(), hash.clone());
            let revision = ControllerRevision {
                metadata: ObjectMeta {
                    name: Some(revision_name(name_of(&ds.metadata), &hash)),
                    namespace: ds.metadata.namespace.clone(),
                    labels: Some(labels),
                    annotations: ds.metadata.annotations.clone().filter(|a| !a.is_empty()),
                    owner_references: Some(vec![placement::controller_ref(ds)]),
                    ..ObjectMeta::default()
                },
                data: Some(RawExtension(data)),
                revision: next,
            };
            History {
                hash,
                create: Some(revision),
                renumber: None,
                old,
            }
        }
    }
}

/// `cleanupHistory`: old revisions no live pod was created from, oldest first, beyond
/// `revisionHistoryLimit`.
fn revisions_to_delete(ds: &DaemonSet, history: &History<'_>, pods: &[&Pod]) -> Vec<String> {
    let limit = ds
        .spec
        .as_ref()
        .and_then(|s| s.revision_history_limit)
        .unwrap_or(10)
        .max(0);
    let limit = usize::try_from(limit).unwrap_or(0);
    let live: BTreeSet<&str> = pods
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter_map(|p| pod_hash(p))
        .collect();
    let unused: Vec<&&ControllerRevision> = history
        .old
        .iter()
        .filter(|r| {
            let hash = r
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(CONTROLLER_REVISION_HASH_LABEL));
            !hash.is_some_and(|h| live.contains(h.as_str()))
        })
        .collect();
    let excess = history.old.len().saturating_sub(limit);
    let mut unused = unused;
    unused.sort_by_key(|r| r.revision);
    unused
        .into_iter()
        .take(excess)
        .map(|r| name_of(&r.metadata).to_string())
        .collect()
}

/// Plans one sync of the DaemonSet at `now`. `backoff` holds the failed-pod back-off per
/// node across syncs; the plan advances it for the failed pods it deletes.
pub fn plan(
    observation: &DaemonSetObservation<'_>,
    backoff: &mut FailedPodBackoff,
    now: Timestamp,
) -> DaemonSetPlan {
    let ds = observation.daemon_set;
    let uid = ds.metadata.uid.as_deref().unwrap_or("");
    let history = construct_history(ds, observation.revisions);
    let hash = history.hash.clone();
    let mut plan = DaemonSetPlan {
        hash: hash.clone(),
        create_revision: history.create.clone(),
        renumber_revision: history.renumber.clone(),
        ..DaemonSetPlan::default()
    };

    // The DaemonSet's pods by the node they are on or target; deleted pods that finished
    // are gone for good and count nowhere.
    let selector = ds
        .spec
        .as_ref()
        .and_then(|s| serde_json::to_value(&s.selector).ok())
        .and_then(|s| LabelSelector::from_label_selector(&s).ok());
    let owned: Vec<&Pod> = observation
        .pods
        .iter()
        .filter(|p| is_controlled_by(&p.metadata, uid))
        .filter(|p| selector.as_ref().is_some_and(|s| s.matches(&label_map(p))))
        .filter(|p| !(is_terminal(p) && p.metadata.deletion_timestamp.is_some()))
        .collect();
    let node_names: BTreeSet<&str> = observation
        .nodes
        .iter()
        .map(|n| name_of(&n.metadata))
        .collect();
    let mut by_node: BTreeMap<String, Vec<&Pod>> = BTreeMap::new();
    for pod in &owned {
        match placement::target_node(pod) {
            Some(node) => by_node.entry(node).or_default().push(pod),
            None => continue,
        }
    }

    let deleting = ds.metadata.deletion_timestamp.is_some();
    if observation.expectations_satisfied && !deleting {
        manage(
            observation,
            &by_node,
            &node_names,
            &hash,
            backoff,
            now,
            &mut plan,
        );
        plan.delete_revisions = revisions_to_delete(ds, &history, &owned);
    }
    plan.status = status_update(
        ds,
        observation.nodes,
        &by_node,
        &hash,
        now,
        &mut plan.requeue_after,
    );
    plan
}

fn requeue_sooner(requeue: &mut Option<Duration>, after: Duration) {
    *requeue = Some(requeue.map_or(after, |r| r.min(after)));
}

/// `manage` then the update strategy, node by node in name order.
fn manage(
    observation: &DaemonSetObservation<'_>,
    by_node: &BTreeMap<String, Vec<&Pod>>,
    node_names: &BTreeSet<&str>,
    hash: &str,
    backoff: &mut FailedPodBackoff,
    now: Timestamp,
    plan: &mut DaemonSetPlan,
) {
    let ds = observation.daemon_set;
    let ds_key = format!(
        "{}/{}",
        ds.metadata.namespace.as_deref().unwrap_or(""),
        name_of(&ds.metadata)
    );
    let surge = allows_surge(ds);
    let min_ready = min_ready_seconds(ds);
    let mut create = Vec::new();
    let mut delete: Vec<&Pod> = Vec::new();
    // Nodes the manage step left alone, where the update strategy may act.
    let mut settled: BTreeSet<String> = BTreeSet::new();
    let mut desired = 0i32;
    let mut nodes: Vec<&Node> = observation.nodes.iter().collect();
    nodes.sort_by(|a, b| name_of(&a.metadata).cmp(name_of(&b.metadata)));
    let mut wanted: Vec<String> = Vec::new();
    for node in nodes {
        let node_name = name_of(&node.metadata);
        let fit = node_fit(ds, node);
        if fit.should_run {
            desired += 1;
            wanted.push(node_name.to_string());
        }
        let pods: &[&Pod] = by_node.get(node_name).map(Vec::as_slice).unwrap_or(&[]);
        let before = (create.len(), delete.len());
        if fit.should_run && pods.is_empty() {
            create.push(node_name.to_string());
        } else if fit.should_continue_running {
            let mut running: Vec<&Pod> = Vec::new();
            for pod in pods {
                if pod.metadata.deletion_timestamp.is_some() {
                    continue;
                }
                match phase(pod) {
                    "Failed" => {
                        let key = format!("{ds_key}/{node_name}");
                        if backoff.in_backoff_since_update(&key, now) {
                            requeue_sooner(&mut plan.requeue_after, backoff.delay(&key));
                            continue;
                        }
                        backoff.next(&key, now);
                        plan.events.push(event(
                            EventType::Warning,
                            "FailedDaemonPod",
                            format!(
                                "Found failed daemon pod {}/{} on node {node_name}, will try to kill it",
                                pod.metadata.namespace.as_deref().unwrap_or(""),
                                name_of(&pod.metadata)
                            ),
                        ));
                        delete.push(pod);
                    }
                    "Succeeded" => {
                        plan.events.push(event(
                            EventType::Warning,
                            "SucceededDaemonPod",
                            format!(
                                "Found succeeded daemon pod {}/{} on node {node_name}, will try to delete it",
                                pod.metadata.namespace.as_deref().unwrap_or(""),
                                name_of(&pod.metadata)
                            ),
                        ));
                        delete.push(pod);
                    }
                    _ => running.push(pod),
                }
            }
            running.sort_by(|a, b| cmp_by_creation_and_phase(a, b));
            if !surge {
                // One pod per node: all but the oldest go.
                delete.extend(running.iter().skip(1));
            } else {
                // Two pods only while the newest revision's pod is not yet available beside a
                // ready old one.
                let mut oldest_new: Option<&Pod> = None;
                let mut oldest_old: Option<&Pod> = None;
                for pod in running {
                    let slot = if pod_hash(pod) == Some(hash) {
                        &mut oldest_new
                    } else {
                        &mut oldest_old
                    };
                    if slot.is_none() {
                        *slot = Some(pod);
                    } else {
                        delete.push(pod);
                    }
                }
                if let (Some(new), Some(old)) = (oldest_new, oldest_old) {
                    if !is_pod_ready(old) || is_pod_available(new, min_ready, now) {
                        delete.push(old);
                    }
                }
            }
        } else {
            // The node should no longer run the daemon: every pod on it goes.
            delete.extend(
                pods.iter()
                    .filter(|p| p.metadata.deletion_timestamp.is_none()),
            );
        }
        if (create.len(), delete.len()) == before && fit.should_run {
            settled.insert(node_name.to_string());
        }
    }
    // Pods never scheduled whose node is gone.
    for (node, pods) in by_node {
        if node_names.contains(node.as_str()) {
            continue;
        }
        delete.extend(pods.iter().filter(|p| {
            p.metadata.deletion_timestamp.is_none()
                && p.spec
                    .as_ref()
                    .and_then(|s| s.node_name.as_deref())
                    .is_none_or(str::is_empty)
        }));
    }

    if strategy_type(ds) == "RollingUpdate" {
        let (update_create, update_delete) =
            rolling_update(ds, by_node, &wanted, &settled, hash, desired, now);
        create.extend(update_create);
        delete.extend(update_delete);
    }

    create.truncate(BURST_REPLICAS);
    let mut seen = BTreeSet::new();
    delete.retain(|p| seen.insert(name_of(&p.metadata).to_string()));
    delete.truncate(BURST_REPLICAS);
    plan.create_batches = slow_start_batches(create.len(), 1);
    plan.create_on_nodes = create;
    plan.delete = delete
        .into_iter()
        .map(|p| PodDeletion {
            name: name_of(&p.metadata).to_string(),
            uid: p.metadata.uid.clone(),
        })
        .collect();
}

/// `findUpdatedPodsOnNode`: the node's live new and old pod, `None` when it has more than one
/// of either (the manage step cleans that up first).
fn updated_and_old<'p>(pods: &[&'p Pod], hash: &str) -> Option<(Option<&'p Pod>, Option<&'p Pod>)> {
    let (mut new, mut old) = (None, None);
    for pod in pods
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
    {
        let slot = if is_pod_updated(pod, hash) {
            &mut new
        } else {
            &mut old
        };
        if slot.is_some() {
            return None;
        }
        *slot = Some(*pod);
    }
    Some((new, old))
}

/// `rollingUpdate`: without surge, delete old pods while at most maxUnavailable nodes lack an
/// available pod (an unavailable old pod is always replaced); with surge, start new pods beside
/// available old ones on at most maxSurge nodes at once and delete each old pod once its new
/// one is available. Returns (nodes to create on, pods to delete).
fn rolling_update<'p>(
    ds: &DaemonSet,
    by_node: &BTreeMap<String, Vec<&'p Pod>>,
    wanted: &[String],
    settled: &BTreeSet<String>,
    hash: &str,
    desired: i32,
    now: Timestamp,
) -> (Vec<String>, Vec<&'p Pod>) {
    let (max_surge, max_unavailable) = surge_and_unavailable(ds, desired);
    let min_ready = min_ready_seconds(ds);
    let available = |p: &Pod| is_pod_available(p, min_ready, now);
    let no_pods: Vec<&Pod> = Vec::new();
    // Every node with pods, and every node that should run one.
    let mut nodes: BTreeSet<&str> = by_node.keys().map(String::as_str).collect();
    nodes.extend(wanted.iter().map(String::as_str));
    let mut create = Vec::new();
    let mut delete = Vec::new();
    if max_surge == 0 {
        let mut unavailable = 0i32;
        let mut replace_now: Vec<&Pod> = Vec::new();
        let mut candidates: Vec<&Pod> = Vec::new();
        for node in nodes {
            let pods = by_node.get(node).unwrap_or(&no_pods);
            let Some((new, old)) = updated_and_old(pods, hash) else {
                unavailable = unavailable.saturating_add(1);
                continue;
            };
            match (new, old) {
                (None, None) | (Some(_), Some(_)) => unavailable = unavailable.saturating_add(1),
                (Some(new), None) => {
                    if !available(new) {
                        unavailable = unavailable.saturating_add(1);
                    }
                }
                (None, Some(old)) => {
                    if !settled.contains(node) {
                        continue;
                    }
                    if !available(old) {
                        replace_now.push(old);
                    } else if unavailable < max_unavailable {
                        candidates.push(old);
                    }
                }
            }
        }
        let room = usize::try_from(max_unavailable.saturating_sub(unavailable).max(0)).unwrap_or(0);
        delete.extend(replace_now);
        delete.extend(candidates.into_iter().take(room));
    } else {
        let mut surging = 0i32;
        let mut replace_now: Vec<String> = Vec::new();
        let mut candidates: Vec<String> = Vec::new();
        for node in nodes {
            let pods = by_node.get(node).unwrap_or(&no_pods);
            let Some((new, old)) = updated_and_old(pods, hash) else {
                surging = surging.saturating_add(1);
                continue;
            };
            match (new, old) {
                (_, None) => {}
                (None, Some(old)) => {
                    if !settled.contains(node) {
                        continue;
                    }
                    if !available(old) {
                        replace_now.push(node.to_string());
                    } else if surging < max_surge {
                        candidates.push(node.to_string());
                    }
                }
                (Some(new), Some(old)) => {
                    if !available(new) {
                        surging = surging.saturating_add(1);
                    } else {
                        delete.push(old);
                    }
                }
            }
        }
        let room = usize::try_from(max_surge.saturating_sub(surging).max(0)).unwrap_or(0);
        create.extend(replace_now);
        create.extend(candidates.into_iter().take(room));
    }
    (create, delete)
}

/// `updateDaemonSetStatus`: the counts over nodes, each node judged by its oldest pod.
fn status_update(
    ds: &DaemonSet,
    nodes: &[Node],
    by_node: &BTreeMap<String, Vec<&Pod>>,
    hash: &str,
    now: Timestamp,
    requeue: &mut Option<Duration>,
) -> Option<DaemonSetStatus> {
    let min_ready = min_ready_seconds(ds);
    let (mut desired, mut current, mut misscheduled) = (0i32, 0i32, 0i32);
    let (mut ready, mut available, mut updated) = (0i32, 0i32, 0i32);
    for node in nodes {
        let fit = node_fit(ds, node);
        let pods = by_node.get(name_of(&node.metadata));
        let scheduled = pods.is_some_and(|p| !p.is_empty());
        if !fit.should_run {
            if scheduled {
                misscheduled += 1;
            }
            continue;
        }
        desired += 1;
        let Some(pods) = pods.filter(|p| !p.is_empty()) else {
            continue;
        };
        current += 1;
        let mut pods = pods.clone();
        pods.sort_by(|a, b| cmp_by_creation_and_phase(a, b));
        let pod = pods[0];
        if is_pod_ready(pod) {
            ready += 1;
            if is_pod_available(pod, min_ready, now) {
                available += 1;
            } else if let Some(wait) = pod_available_in(pod, min_ready, now) {
                requeue_sooner(requeue, wait);
            }
        }
        if is_pod_updated(pod, hash) {
            updated += 1;
        }
    }
    let old = ds.status.clone().unwrap_or_default();
    let status = DaemonSetStatus {
        collision_count: old.collision_count,
        conditions: old.conditions.clone(),
        current_number_scheduled: current,
        desired_number_scheduled: desired,
        number_available: Some(available),
        number_misscheduled: misscheduled,
        number_ready: ready,
        number_unavailable: Some(desired - available),
        observed_generation: ds.metadata.generation,
        updated_number_scheduled: Some(updated),
    };
    let normalize = |s: &DaemonSetStatus| DaemonSetStatus {
        number_available: Some(s.number_available.unwrap_or(0)),
        number_unavailable: Some(s.number_unavailable.unwrap_or(0)),
        updated_number_scheduled: Some(s.updated_number_scheduled.unwrap_or(0)),
        ..s.clone()
    };
    (normalize(&old) != status).then_some(status)
}
