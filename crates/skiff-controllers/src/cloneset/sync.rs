//! One pass of the CloneSet controller, as a plan: the Scale step, and when it has nothing to
//! do, the Update step (`syncCloneSet`). The controller never scales and updates in the same
//! pass, so each plan holds the writes of one step only.
//!
//! Pod edits that must land on the freshest copy of a pod (an in-place update, the end of a
//! grace period, a condition) are planned as intents; the controller re-reads the pod and
//! applies the matching function of [`super::inplace`] before writing.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::ControllerRevision;
use k8s_openapi::api::core::v1::{
    PersistentVolumeClaim, PersistentVolumeClaimVolumeSource, Pod, PodReadinessGate,
    PodTemplateSpec, Volume,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::Value;
use skiff_api::cloneset::{
    update_strategy_type, CloneSet, INSTANCE_ID_LABEL, IN_PLACE_UPDATE_READY_CONDITION,
};

use super::arithmetic::{
    calculate_diffs, limit_update_count, DiffParams, EXCLUDE_PREPARING_DELETE_LABEL,
    PARTITION_ROLLBACK_ENABLED,
};
use super::inplace::{self, GraceStep};
use super::pods::{
    choose_pods_to_delete, is_at_revision, is_available, is_specified_delete, lifecycle_state,
    pod_facts, pod_name, short_hash, sort_update_indexes,
};
use super::revision::{in_place_change, owner_reference, template_of, InPlaceChange};
use super::{scale_up_limited_event, CONTROLLER_REVISION_HASH_LABEL};
use crate::deployment::Event;
use lifecycle_names::*;

mod lifecycle_names {
    pub use crate::cloneset::pods::lifecycle_state::{
        NORMAL, PREPARING_DELETE, PREPARING_NORMAL, PREPARING_UPDATE, UPDATED, UPDATING,
    };
}

/// What one pass reads.
#[derive(Debug, Clone, Copy)]
pub struct SyncInput<'a> {
    /// The CloneSet.
    pub cloneset: &'a CloneSet,
    /// Its active pods (not finished, not being deleted).
    pub pods: &'a [Pod],
    /// The revision pods were last all on.
    pub current_revision: &'a ControllerRevision,
    /// The revision of the current template.
    pub update_revision: &'a ControllerRevision,
    /// Every revision of the CloneSet, to find what a pod's own revision held.
    pub revisions: &'a [ControllerRevision],
    /// The instance ids of the claims the CloneSet's `volumeClaimTemplates` made that still
    /// exist: a new pod takes one whose pod is gone before a fresh id, and so its claims.
    pub claim_ids: &'a [String],
    /// The time of the pass.
    pub now: Timestamp,
}

/// One write a pass plans.
#[derive(Debug, Clone, PartialEq)]
pub enum PodAction {
    /// Create this pod; it is at `revision`.
    Create {
        /// The pod to POST.
        pod: Box<Pod>,
        /// The revision it is created at.
        revision: String,
    },
    /// Delete a pod.
    Delete {
        /// Its name.
        name: String,
        /// Its UID, as a precondition.
        uid: Option<String>,
    },
    /// Merge-patch a pod's labels or annotations.
    Patch {
        /// Its name.
        name: String,
        /// The JSON merge patch.
        patch: Value,
    },
    /// Set `InPlaceUpdateReady` (pods/status) on the freshest copy.
    SetInPlaceReady {
        /// Its name.
        name: String,
        /// True once the in-place update is done (or none is under way).
        ready: bool,
    },
    /// Start an in-place update: `InPlaceUpdateReady=False`, then the pod edit of
    /// [`inplace::start_update`].
    StartInPlace {
        /// Its name.
        name: String,
        /// What changes.
        change: InPlaceChange,
        /// `inPlaceUpdateStrategy.gracePeriodSeconds`.
        grace_seconds: i32,
    },
    /// Mark a pod for deletion by a ReCreate update (the Scale step deletes it later).
    MarkForRecreate {
        /// Its name.
        name: String,
        /// The revision it is replaced by.
        revision: String,
    },
    /// Apply the images parked for the grace period ([`inplace::finish_grace`]).
    FinishGrace {
        /// Its name.
        name: String,
    },
}

/// What a pass decided.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PassPlan {
    /// Writes, in order; stop at the first failure.
    pub actions: Vec<PodAction>,
    /// Events that do not depend on a write succeeding.
    pub events: Vec<Event>,
    /// When to look again (grace periods ending).
    pub requeue_after: Option<Duration>,
    /// Which step the plan belongs to.
    pub step: Step,
    /// Why the step stopped, if it failed; becomes a `FailedScale` / `FailedUpdate` condition.
    pub error: Option<String>,
}

/// The step a pass ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Step {
    /// Creating and deleting pods.
    #[default]
    Scale,
    /// Refreshing and updating pods.
    Update,
}

fn min_duration(a: Option<Duration>, b: Duration) -> Option<Duration> {
    Some(a.map_or(b, |a| a.min(b)))
}

fn spec_values(cs: &CloneSet) -> (Vec<String>, i32) {
    let spec = cs.spec.as_ref();
    let to_delete = spec
        .and_then(|s| s.scale_strategy.as_ref())
        .and_then(|s| s.pods_to_delete.clone())
        .unwrap_or_default();
    let min_ready = spec.and_then(|s| s.min_ready_seconds).unwrap_or(0);
    (to_delete, min_ready)
}

fn revision_name(revision: &ControllerRevision) -> &str {
    revision.metadata.name.as_deref().unwrap_or("")
}

fn diff_params(input: &SyncInput<'_>) -> DiffParams {
    let spec = input.cloneset.spec.clone().unwrap_or_default();
    let differ = revision_name(input.current_revision) != revision_name(input.update_revision);
    let mut params = DiffParams::resolve(&spec, differ, PARTITION_ROLLBACK_ENABLED);
    params.exclude_preparing_delete = input
        .cloneset
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(EXCLUDE_PREPARING_DELETE_LABEL))
        .is_some_and(|v| v == "true");
    params
}

/// A new pod of the CloneSet at `revision` from `template` (`newVersionedPods`): named
/// `<cloneset>-<id>`, labelled with its revision and instance id, owned by the CloneSet, and
/// carrying the `InPlaceUpdateReady` readiness gate whatever the update type.
pub fn new_pod(
    cs: &CloneSet,
    template: &PodTemplateSpec,
    revision: &str,
    instance_id: &str,
    now: Timestamp,
) -> Pod {
    let cs_name = cs.metadata.name.clone().unwrap_or_default();
    let template_meta = template.metadata.clone().unwrap_or_default();
    let mut labels = template_meta.labels.unwrap_or_default();
    labels.insert(CONTROLLER_REVISION_HASH_LABEL.into(), revision.into());
    labels.insert("pod-template-hash".into(), short_hash(revision).into());
    labels.insert(INSTANCE_ID_LABEL.into(), instance_id.into());
    let mut pod = Pod {
        metadata: ObjectMeta {
            name: Some(format!("{cs_name}-{instance_id}")),
            generate_name: Some(format!("{cs_name}-")),
            namespace: cs.metadata.namespace.clone(),
            labels: Some(labels),
            annotations: template_meta.annotations,
            finalizers: template_meta.finalizers,
            owner_references: Some(vec![owner_reference(cs)]),
            ..ObjectMeta::default()
        },
        spec: template.spec.clone(),
        status: None,
    };
    mount_claims(cs, &mut pod, instance_id);
    inplace::set_lifecycle(&mut pod, PREPARING_NORMAL, now);
    let spec = pod.spec.get_or_insert_with(Default::default);
    let gates = spec.readiness_gates.get_or_insert_with(Vec::new);
    if !gates
        .iter()
        .any(|g| g.condition_type == IN_PLACE_UPDATE_READY_CONDITION)
    {
        gates.push(PodReadinessGate {
            condition_type: IN_PLACE_UPDATE_READY_CONDITION.into(),
        });
    }
    pod
}

/// The name of the claim template `template` makes for the pod with `instance_id`:
/// `<template>-<cloneset>-<id>`, as OpenKruise names it.
pub fn claim_name(template: &str, cs_name: &str, instance_id: &str) -> String {
    format!("{template}-{cs_name}-{instance_id}")
}

/// The claims a new pod with `instance_id` gets from the `volumeClaimTemplates`: each named by
/// [`claim_name`], labelled with the selector's labels and the instance id, and owned by the
/// CloneSet, so they go with it.
pub fn new_claims(cs: &CloneSet, instance_id: &str) -> Vec<PersistentVolumeClaim> {
    let cs_name = cs.metadata.name.clone().unwrap_or_default();
    let spec = cs.spec.clone().unwrap_or_default();
    let selector_labels = spec.selector.match_labels.clone().unwrap_or_default();
    spec.volume_claim_templates
        .unwrap_or_default()
        .into_iter()
        .map(|template| {
            let mut claim = template;
            let name = claim.metadata.name.clone().unwrap_or_default();
            let mut labels = claim.metadata.labels.take().unwrap_or_default();
            labels.extend(selector_labels.clone());
            labels.insert(INSTANCE_ID_LABEL.into(), instance_id.into());
            claim.metadata = ObjectMeta {
                name: Some(claim_name(&name, &cs_name, instance_id)),
                namespace: cs.metadata.namespace.clone(),
                labels: Some(labels),
                annotations: claim.metadata.annotations.take(),
                owner_references: Some(vec![owner_reference(cs)]),
                ..ObjectMeta::default()
            };
            claim.status = None;
            claim
        })
        .collect()
}

/// Points the pod's volume named after each claim template at its own claim, adding the
/// volume when the template does not declare one.
fn mount_claims(cs: &CloneSet, pod: &mut Pod, instance_id: &str) {
    let cs_name = cs.metadata.name.clone().unwrap_or_default();
    let templates = cs
        .spec
        .as_ref()
        .and_then(|s| s.volume_claim_templates.clone())
        .unwrap_or_default();
    if templates.is_empty() {
        return;
    }
    let spec = pod.spec.get_or_insert_with(Default::default);
    let volumes = spec.volumes.get_or_insert_with(Vec::new);
    for template in templates {
        let name = template.metadata.name.unwrap_or_default();
        let source = PersistentVolumeClaimVolumeSource {
            claim_name: claim_name(&name, &cs_name, instance_id),
            read_only: None,
        };
        volumes.retain(|v| v.name != name);
        volumes.push(Volume {
            name,
            persistent_volume_claim: Some(source),
            ..Volume::default()
        });
    }
}

/// Instance ids in use by the pods.
pub fn used_instance_ids(pods: &[Pod]) -> BTreeSet<String> {
    pods.iter()
        .filter_map(|p| p.metadata.labels.as_ref()?.get(INSTANCE_ID_LABEL).cloned())
        .collect()
}

/// The Scale step (`Scale`). `None` when it has nothing to do, so the Update step runs.
/// `new_id` yields fresh instance ids (5 random characters); ids in use are skipped.
pub fn plan_scale(input: &SyncInput<'_>, new_id: &mut dyn FnMut() -> String) -> Option<PassPlan> {
    let cs = input.cloneset;
    let spec = cs.spec.clone().unwrap_or_default();
    let replicas = spec.replicas.unwrap_or(1);
    let (to_delete_names, min_ready) = spec_values(cs);
    let update_name = revision_name(input.update_revision);
    let pods = input.pods;
    let mut plan = PassPlan::default();

    let specified: Vec<&Pod> = pods
        .iter()
        .filter(|p| is_specified_delete(p, &to_delete_names))
        .collect();
    let pre_deleting: Vec<&Pod> = pods
        .iter()
        .filter(|p| lifecycle_state(p) == PREPARING_DELETE)
        .collect();
    let num_to_delete = pods
        .iter()
        .filter(|p| {
            is_specified_delete(p, &to_delete_names) || lifecycle_state(p) == PREPARING_DELETE
        })
        .count() as i32;

    // Pods held in PreparingDelete go back to Normal while replicas are short.
    let mut room = replicas - pods.len() as i32 + num_to_delete;
    for pod in &pre_deleting {
        if room <= 0 {
            break;
        }
        if is_specified_delete(pod, &to_delete_names) {
            continue;
        }
        plan.actions.push(PodAction::Patch {
            name: pod_name(pod).into(),
            patch: inplace::lifecycle_patch(NORMAL, input.now),
        });
        room -= 1;
    }
    if !plan.actions.is_empty() {
        return Some(plan);
    }

    let facts: Vec<_> = pods
        .iter()
        .map(|p| pod_facts(p, update_name, &to_delete_names, min_ready, input.now))
        .collect();
    let diffs = calculate_diffs(&diff_params(input), &facts);
    if diffs.scale_up_num > diffs.scale_up_limit {
        plan.events
            .push(scale_up_limited_event(diffs.scale_up_limit));
    }

    if diffs.scale_up_num > 0 {
        let count = diffs.scale_up_limit.max(0) as usize;
        let old_count = (diffs.scale_up_num_old_revision.max(0) as usize).min(count);
        let current_template = template_of(input.current_revision);
        let update_template = template_of(input.update_revision).unwrap_or(spec.template.clone());
        let mut used = used_instance_ids(pods);
        for i in 0..count {
            let (template, revision) = match (&current_template, i < old_count) {
                (Some(t), true) => (t, revision_name(input.current_revision)),
                _ => (&update_template, update_name),
            };
            // A pod deleted by someone else left its claims: its replacement takes its id
            // (OpenKruise's PVC reuse) before any fresh one.
            let reused = input
                .claim_ids
                .iter()
                .find(|id| !used.contains(*id))
                .cloned();
            let mut id = reused.unwrap_or_else(&mut *new_id);
            let mut attempts = 0;
            while used.contains(&id) && attempts < 100 {
                id = new_id();
                attempts += 1;
            }
            used.insert(id.clone());
            plan.actions.push(PodAction::Create {
                pod: Box::new(new_pod(cs, template, revision, &id, input.now)),
                revision: revision.to_string(),
            });
        }
        return (!plan.actions.is_empty() || !plan.events.is_empty()).then_some(plan);
    }

    let delete = |pod: &Pod| PodAction::Delete {
        name: pod_name(pod).into(),
        uid: pod.metadata.uid.clone(),
    };
    if !pre_deleting.is_empty() {
        plan.actions.extend(pre_deleting.iter().map(|p| delete(p)));
        return Some(plan);
    }

    let mut ready_budget = diffs.delete_ready_limit;
    let mut may_delete = |pod: &Pod| {
        if !is_available(pod, 0, input.now) {
            true
        } else if ready_budget > 0 {
            ready_budget -= 1;
            true
        } else {
            false
        }
    };
    let specified_now: Vec<&Pod> = specified
        .iter()
        .filter(|p| lifecycle_state(p) != PREPARING_DELETE)
        .copied()
        .collect();
    if !specified_now.is_empty() {
        let (new, old): (Vec<&Pod>, Vec<&Pod>) = specified_now
            .iter()
            .partition(|p| is_at_revision(p, update_name));
        for pod in new.into_iter().chain(old) {
            if may_delete(pod) {
                plan.actions.push(delete(pod));
            }
        }
        if !plan.actions.is_empty() {
            return Some(plan);
        }
    }

    if diffs.scale_down_num > 0 {
        if num_to_delete > 0 {
            return (!plan.events.is_empty()).then_some(plan);
        }
        let (new, old): (Vec<&Pod>, Vec<&Pod>) =
            pods.iter().partition(|p| is_at_revision(p, update_name));
        let all: Vec<&Pod> = pods.iter().collect();
        let chosen = choose_pods_to_delete(
            diffs.scale_down_num as usize,
            diffs.scale_down_num_old_revision.max(0) as usize,
            &old,
            &new,
            &all,
            min_ready,
            input.now,
        );
        for pod in chosen {
            if may_delete(pod) {
                plan.actions.push(delete(pod));
            }
        }
        if !plan.actions.is_empty() {
            return Some(plan);
        }
    }
    (!plan.events.is_empty()).then_some(plan)
}

/// Whether the pod is scheduled (has a node).
fn scheduled(pod: &Pod) -> bool {
    pod.spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .is_some_and(|n| !n.is_empty())
}

/// The Update step (`Update`): refresh every pod (grace periods, the `InPlaceUpdateReady`
/// condition, lifecycle states); unless that changed a lifecycle or the CloneSet is paused,
/// move as many pods towards the target revision as partition and budget allow.
pub fn plan_update(input: &SyncInput<'_>) -> PassPlan {
    let cs = input.cloneset;
    let spec = cs.spec.clone().unwrap_or_default();
    let (to_delete_names, min_ready) = spec_values(cs);
    let update_name = revision_name(input.update_revision);
    let strategy = spec.update_strategy.clone().unwrap_or_default();
    let mut plan = PassPlan {
        step: Step::Update,
        ..PassPlan::default()
    };

    // 1. Refresh.
    let mut lifecycle_changed = false;
    for pod in input.pods {
        let name = pod_name(pod).to_string();
        match inplace::finish_grace(pod, input.now) {
            GraceStep::Wait(left) => {
                plan.requeue_after = min_duration(plan.requeue_after, left);
            }
            GraceStep::Write(_) => {
                plan.actions
                    .push(PodAction::FinishGrace { name: name.clone() });
            }
            GraceStep::None => {
                if inplace::update_completed(pod).is_ok()
                    && inplace::with_in_place_condition(pod, true, input.now).is_some()
                {
                    plan.actions.push(PodAction::SetInPlaceReady {
                        name: name.clone(),
                        ready: true,
                    });
                }
            }
        }
        let next_state = match lifecycle_state(pod) {
            PREPARING_NORMAL if scheduled(pod) => Some(NORMAL),
            PREPARING_UPDATE if is_at_revision(pod, update_name) => Some(NORMAL),
            UPDATING if inplace::update_completed(pod).is_ok() => Some(NORMAL),
            UPDATED => Some(NORMAL),
            _ => None,
        };
        if let Some(state) = next_state {
            plan.actions.push(PodAction::Patch {
                name,
                patch: inplace::lifecycle_patch(state, input.now),
            });
            lifecycle_changed = true;
        }
    }
    if lifecycle_changed || strategy.paused.unwrap_or(false) {
        return plan;
    }

    // 2. How many pods to move, and which way.
    let pods = input.pods;
    let facts: Vec<_> = pods
        .iter()
        .map(|p| pod_facts(p, update_name, &to_delete_names, min_ready, input.now))
        .collect();
    let diffs = calculate_diffs(&diff_params(input), &facts);
    if diffs.update_num == 0 {
        return plan;
    }
    let forward = diffs.update_num > 0;
    let target = if forward {
        input.update_revision
    } else {
        input.current_revision
    };

    // 3. Candidates, 4. order, 5. limit.
    let candidates: Vec<usize> = pods
        .iter()
        .enumerate()
        .filter(|(_, p)| is_at_revision(p, update_name) != forward)
        .filter(|(_, p)| match lifecycle_state(p) {
            PREPARING_DELETE => false,
            UPDATED => true,
            _ => !inplace::in_grace(p),
        })
        .map(|(i, _)| i)
        .collect();
    let sorted = sort_update_indexes(pods, &candidates);
    let allowed = limit_update_count(&diffs, &facts, &sorted, forward);

    // 6. Update each chosen pod.
    let update_type = strategy
        .type_
        .as_deref()
        .unwrap_or(update_strategy_type::RECREATE);
    let grace_seconds = strategy
        .in_place_update_strategy
        .as_ref()
        .and_then(|s| s.grace_period_seconds)
        .unwrap_or(0);
    let target_name = revision_name(target);
    let target_template = template_of(target);
    for &index in &sorted[..allowed] {
        let pod = &pods[index];
        let name = pod_name(pod).to_string();
        if update_type != update_strategy_type::RECREATE {
            let own_template = input
                .revisions
                .iter()
                .find(|r| is_at_revision(pod, revision_name(r)))
                .and_then(template_of);
            let change = match (&own_template, &target_template) {
                (Some(old), Some(new)) => in_place_change(old, new, target_name),
                _ => None,
            };
            if let Some(change) = change {
                match lifecycle_state(pod) {
                    "" | NORMAL | UPDATING | PREPARING_UPDATE => {}
                    state => {
                        plan.error = Some(format!(
                            "not allowed to in-place update pod {name} in state {state}"
                        ));
                        return plan;
                    }
                }
                plan.actions.push(PodAction::StartInPlace {
                    name,
                    change,
                    grace_seconds,
                });
                continue;
            }
            if update_type == update_strategy_type::IN_PLACE_ONLY {
                plan.error = Some(format!(
                    "find Pod {name} update strategy is InPlaceOnly but can not update in-place"
                ));
                return plan;
            }
        }
        plan.actions.push(PodAction::MarkForRecreate {
            name,
            revision: target_name.to_string(),
        });
    }
    if grace_seconds > 0
        && plan
            .actions
            .iter()
            .any(|a| matches!(a, PodAction::StartInPlace { .. }))
    {
        plan.requeue_after = min_duration(
            plan.requeue_after,
            Duration::from_secs(grace_seconds.unsigned_abs().into()),
        );
    }
    plan
}

/// One pass: the Scale step, or the Update step when scaling has nothing to do.
pub fn plan_pass(input: &SyncInput<'_>, new_id: &mut dyn FnMut() -> String) -> PassPlan {
    if let Some(plan) = plan_scale(input, new_id) {
        if !plan.actions.is_empty() || plan.error.is_some() {
            return plan;
        }
        let mut update = plan_update(input);
        let mut events = plan.events;
        events.append(&mut update.events);
        update.events = events;
        return update;
    }
    plan_update(input)
}

/// The `podsToDelete` list without names of pods that no longer exist, when it changes
/// (`truncatePodsToDelete`).
pub fn truncated_pods_to_delete(cs: &CloneSet, pods: &[Pod]) -> Option<Vec<String>> {
    let (names, _) = spec_values(cs);
    if names.is_empty() {
        return None;
    }
    let existing: BTreeSet<&str> = pods.iter().map(pod_name).collect();
    let kept: Vec<String> = names
        .iter()
        .filter(|n| existing.contains(n.as_str()))
        .cloned()
        .collect();
    (kept.len() != names.len()).then_some(kept)
}

/// The revision label of each pod, for pruning history.
pub fn live_revisions(pods: &[Pod]) -> BTreeSet<String> {
    pods.iter()
        .filter_map(|p| {
            p.metadata
                .labels
                .as_ref()?
                .get(CONTROLLER_REVISION_HASH_LABEL)
                .cloned()
        })
        .collect()
}

/// Counts of pods per revision, for logs and tests.
pub fn pods_per_revision(pods: &[Pod]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for name in pods.iter().filter_map(|p| {
        p.metadata
            .labels
            .as_ref()?
            .get(CONTROLLER_REVISION_HASH_LABEL)
            .cloned()
    }) {
        *counts.entry(name).or_default() += 1;
    }
    counts
}
