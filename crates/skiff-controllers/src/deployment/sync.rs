//! One controller sync, simulated in memory.
//!
//! [`DeploymentSync`] plays the role of the upstream `DeploymentController` during one
//! `syncDeployment`: it holds the working copy of the Deployment and records every write and
//! event instead of sending them. Its steps are public so that each upstream helper can be
//! exercised on its own, as the upstream unit tests do with a fake client.

use std::collections::{BTreeMap, HashMap, HashSet};

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, ReplicaSetSpec};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

use super::hash::{compute_hash, replica_set_name};
use super::util::*;
use super::{Action, DeploymentPlan, Event, EventType, PlanError, Requeue, ScaleChange};

/// The in-memory controller for one sync of one Deployment.
#[derive(Debug, Clone)]
pub struct DeploymentSync {
    original: Deployment,
    d: Deployment,
    now: Timestamp,
    actions: Vec<Action>,
    events: Vec<Event>,
    requeue: Requeue,
    spec_updated: bool,
}

fn rs_namespace(rs: &ReplicaSet) -> String {
    rs.metadata.namespace.clone().unwrap_or_default()
}

fn set_rs_replicas(rs: &mut ReplicaSet, replicas: i32) {
    rs.spec.get_or_insert_with(ReplicaSetSpec::default).replicas = Some(replicas);
}

impl DeploymentSync {
    /// Starts a sync of `deployment` at time `now`.
    pub fn new(deployment: Deployment, now: Timestamp) -> Self {
        Self {
            original: deployment.clone(),
            d: deployment,
            now,
            actions: Vec::new(),
            events: Vec::new(),
            requeue: Requeue::None,
            spec_updated: false,
        }
    }

    /// The working copy of the Deployment, with every change this sync made so far.
    pub fn deployment(&self) -> &Deployment {
        &self.d
    }

    /// The ReplicaSet writes recorded so far (the Deployment write is added by
    /// [`Self::into_plan`]).
    pub fn actions(&self) -> &[Action] {
        &self.actions
    }

    /// The events recorded so far.
    pub fn events(&self) -> &[Event] {
        &self.events
    }

    /// Finishes the sync: appends the Deployment write when the Deployment changed and turns an
    /// error into a rate-limited requeue.
    pub fn into_plan(mut self, error: Option<PlanError>) -> DeploymentPlan {
        let status_changed = normalize_status(&self.d.status.clone().unwrap_or_default())
            != normalize_status(&self.original.status.clone().unwrap_or_default());
        let annotations_changed = self.d.metadata.annotations.clone().unwrap_or_default()
            != self
                .original
                .metadata
                .annotations
                .clone()
                .unwrap_or_default();
        if status_changed || (annotations_changed && !self.spec_updated) {
            self.actions.push(Action::UpdateDeploymentStatus {
                deployment: self.d.clone(),
            });
        }
        if self.spec_updated {
            self.actions.push(Action::UpdateDeployment {
                deployment: self.d.clone(),
            });
        }
        let requeue = if error.is_some() {
            Requeue::RateLimited
        } else {
            self.requeue
        };
        DeploymentPlan {
            actions: self.actions,
            events: self.events,
            requeue,
            error,
        }
    }

    fn event(&mut self, type_: EventType, reason: &str, message: String) {
        self.events.push(Event {
            type_,
            reason: reason.to_string(),
            message,
            replica_set: None,
        });
    }

    /// A `ScalingReplicaSet` event, which holds only if the write of `rs_name` succeeds.
    fn scaling_event(&mut self, rs_name: &str, message: String) {
        self.events.push(Event {
            type_: EventType::Normal,
            reason: "ScalingReplicaSet".to_string(),
            message,
            replica_set: Some(rs_name.to_string()),
        });
    }

    /// Records a write of `rs`, merging it into an earlier write of the same object.
    fn record_rs_write(&mut self, rs: ReplicaSet, scale: Option<ScaleChange>) {
        let name = rs.metadata.name.clone();
        for action in &mut self.actions {
            match action {
                Action::CreateReplicaSet { replica_set } if replica_set.metadata.name == name => {
                    *replica_set = rs;
                    return;
                }
                Action::UpdateReplicaSet {
                    replica_set,
                    scale: previous,
                } if replica_set.metadata.name == name => {
                    *replica_set = rs;
                    let merged = match (*previous, scale) {
                        (Some(a), Some(b)) => Some(ScaleChange {
                            from: a.from,
                            to: b.to,
                        }),
                        (a, b) => b.or(a),
                    };
                    *previous = merged.filter(|c| c.from != c.to);
                    return;
                }
                _ => {}
            }
        }
        self.actions.push(Action::UpdateReplicaSet {
            replica_set: rs,
            scale,
        });
    }

    // -----------------------------------------------------------------------------------------
    // Top level

    /// Runs one `syncDeployment` over the owned ReplicaSets and the Deployment's pods.
    pub fn sync_deployment(
        &mut self,
        replica_sets: &[ReplicaSet],
        pods: &[Pod],
    ) -> Result<(), PlanError> {
        if self.selects_everything() {
            self.event(
                EventType::Warning,
                "SelectingAll",
                "This deployment is selecting all pods. A non-empty selector is required."
                    .to_string(),
            );
            let generation = self.d.metadata.generation.unwrap_or(0);
            let status = self.d.status.get_or_insert_with(Default::default);
            if status.observed_generation.unwrap_or(0) < generation {
                status.observed_generation = Some(generation);
            }
            return Ok(());
        }

        let mut rs_list = replica_sets.to_vec();
        rs_list.sort_by(cmp_by_creation);

        if self.d.metadata.deletion_timestamp.is_some() {
            return self.sync_status_only(&mut rs_list);
        }

        self.check_paused_conditions();

        if self.is_paused() {
            return self.sync(&mut rs_list);
        }

        if let Some(revision) = self.rollback_to() {
            return self.rollback(&mut rs_list, revision);
        }

        if self.is_scaling_event(&mut rs_list)? {
            return self.sync(&mut rs_list);
        }

        match strategy_type(&self.d) {
            STRATEGY_RECREATE => self.rollout_recreate(&mut rs_list, pods),
            STRATEGY_ROLLING_UPDATE => self.rollout_rolling(&mut rs_list),
            other => Err(PlanError::UnexpectedStrategy(other.to_string())),
        }
    }

    fn selects_everything(&self) -> bool {
        let Some(spec) = self.d.spec.as_ref() else {
            return true;
        };
        let selector = &spec.selector;
        selector.match_labels.as_ref().is_none_or(|m| m.is_empty())
            && selector
                .match_expressions
                .as_ref()
                .is_none_or(|e| e.is_empty())
    }

    fn is_paused(&self) -> bool {
        self.d.spec.as_ref().and_then(|s| s.paused).unwrap_or(false)
    }

    fn rollback_to(&self) -> Option<i64> {
        self.d
            .metadata
            .annotations
            .as_ref()?
            .get(ROLLBACK_TO_ANNOTATION)
            .filter(|v| !v.is_empty())?
            .parse()
            .ok()
    }

    fn status_mut(&mut self) -> &mut k8s_openapi::api::apps::v1::DeploymentStatus {
        self.d.status.get_or_insert_with(Default::default)
    }

    fn current_status(&self) -> k8s_openapi::api::apps::v1::DeploymentStatus {
        self.d.status.clone().unwrap_or_default()
    }

    /// Adds or clears the paused condition so the deadline clock stops while paused and restarts
    /// on resume (`checkPausedConditions`).
    pub fn check_paused_conditions(&mut self) {
        if !has_progress_deadline(&self.d) {
            return;
        }
        let status = self.current_status();
        let condition = get_condition(&status, CONDITION_PROGRESSING);
        let reason = condition.and_then(|c| c.reason.as_deref());
        if reason == Some(REASON_PROGRESS_DEADLINE_EXCEEDED) {
            return;
        }
        let paused_condition_exists = reason == Some(REASON_DEPLOYMENT_PAUSED);
        let now = self.now;
        if self.is_paused() && !paused_condition_exists {
            let c = new_condition(
                CONDITION_PROGRESSING,
                "Unknown",
                REASON_DEPLOYMENT_PAUSED,
                "Deployment is paused",
                now,
            );
            set_condition(self.status_mut(), c);
        } else if !self.is_paused() && paused_condition_exists {
            let c = new_condition(
                CONDITION_PROGRESSING,
                "Unknown",
                REASON_DEPLOYMENT_RESUMED,
                "Deployment is resumed",
                now,
            );
            set_condition(self.status_mut(), c);
        }
    }

    /// Whether `spec.replicas` differs from the desired-replicas annotation of an active
    /// ReplicaSet: the Deployment was resized, not given a new template.
    pub fn is_scaling_event(&mut self, rs_list: &mut [ReplicaSet]) -> Result<bool, PlanError> {
        let (new_rs, old_rss) = self.get_all_replica_sets_and_sync_revision(rs_list, false)?;
        let mut all = old_rss;
        all.extend(new_rs);
        let replicas = deployment_replicas(&self.d);
        Ok(filter_active(&all)
            .iter()
            .filter_map(desired_replicas_annotation)
            .any(|desired| desired != replicas))
    }

    fn sync_status_only(&mut self, rs_list: &mut [ReplicaSet]) -> Result<(), PlanError> {
        let (new_rs, old_rss) = self.get_all_replica_sets_and_sync_revision(rs_list, false)?;
        let mut all = old_rss;
        all.extend(new_rs.clone());
        self.sync_deployment_status(&all, new_rs.as_ref());
        Ok(())
    }

    /// Reconciles a scaling event or a paused Deployment (`sync`): proportional scaling,
    /// history clean-up when paused, and the status without progress estimation.
    pub fn sync(&mut self, rs_list: &mut [ReplicaSet]) -> Result<(), PlanError> {
        let (new_rs, old_rss) = self.get_all_replica_sets_and_sync_revision(rs_list, false)?;
        self.scale(new_rs.as_ref(), &old_rss)?;
        if self.is_paused() && self.rollback_to().is_none() {
            self.cleanup_deployment(&old_rss);
        }
        let mut all = old_rss;
        all.extend(new_rs.clone());
        self.sync_deployment_status(&all, new_rs.as_ref());
        Ok(())
    }

    // -----------------------------------------------------------------------------------------
    // New ReplicaSet and revisions

    /// Splits the ReplicaSets into the new one and the old ones, syncing the new one's
    /// annotations and the Deployment's revision, and creating the new one if asked to
    /// (`getAllReplicaSetsAndSyncRevision`).
    pub fn get_all_replica_sets_and_sync_revision(
        &mut self,
        rs_list: &mut [ReplicaSet],
        create_if_not_existed: bool,
    ) -> Result<(Option<ReplicaSet>, Vec<ReplicaSet>), PlanError> {
        let old_rss = find_old_replica_sets(&self.d, rs_list);
        let new_rs = self.get_new_replica_set(rs_list, &old_rss, create_if_not_existed)?;
        Ok((new_rs, old_rss))
    }

    fn get_new_replica_set(
        &mut self,
        rs_list: &mut [ReplicaSet],
        old_rss: &[ReplicaSet],
        create_if_not_existed: bool,
    ) -> Result<Option<ReplicaSet>, PlanError> {
        let existing = find_new_replica_set(&self.d, rs_list);
        let new_revision = (max_revision(old_rss) + 1).to_string();

        if let Some(existing) = existing {
            let mut copy = existing.clone();
            let annotations_updated = set_new_replica_set_annotations(
                &self.d,
                &mut copy,
                &new_revision,
                true,
                MAX_REVISION_HISTORY_CHARS,
            );
            let min_ready = self.d.spec.as_ref().and_then(|s| s.min_ready_seconds);
            let rs_min_ready = copy.spec.as_ref().and_then(|s| s.min_ready_seconds);
            if annotations_updated || min_ready.unwrap_or(0) != rs_min_ready.unwrap_or(0) {
                copy.spec
                    .get_or_insert_with(ReplicaSetSpec::default)
                    .min_ready_seconds = min_ready;
                self.record_rs_write(copy.clone(), None);
                if let Some(slot) = rs_list.iter_mut().find(|rs| same_replica_set(rs, &copy)) {
                    *slot = copy.clone();
                }
                return Ok(Some(copy));
            }
            let rs_revision = copy
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(REVISION_ANNOTATION))
                .cloned()
                .unwrap_or_default();
            set_deployment_revision(&mut self.d, &rs_revision);
            let status = self.current_status();
            if has_progress_deadline(&self.d)
                && get_condition(&status, CONDITION_PROGRESSING).is_none()
            {
                let c = new_condition(
                    CONDITION_PROGRESSING,
                    "True",
                    REASON_FOUND_NEW_REPLICA_SET,
                    &format!("Found new replica set {:?}", rs_name(&copy)),
                    self.now,
                );
                set_condition(self.status_mut(), c);
            }
            return Ok(Some(copy));
        }

        if !create_if_not_existed {
            return Ok(None);
        }

        let new_rs = self.new_replica_set_object(old_rss, &new_revision)?;
        let replicas = rs_spec_replicas(&new_rs);
        let name = rs_name(&new_rs).to_string();
        self.actions.push(Action::CreateReplicaSet {
            replica_set: new_rs.clone(),
        });
        if replicas > 0 {
            self.scaling_event(
                &name,
                format!("Scaled up replica set {name} from 0 to {replicas}"),
            );
        }
        set_deployment_revision(&mut self.d, &new_revision);
        if has_progress_deadline(&self.d) {
            let c = new_condition(
                CONDITION_PROGRESSING,
                "True",
                REASON_NEW_REPLICA_SET_CREATED,
                &format!("Created new replica set {name:?}"),
                self.now,
            );
            set_condition(self.status_mut(), c);
        }
        Ok(Some(new_rs))
    }

    /// The ReplicaSet object for the Deployment's current template, as it would be created.
    fn new_replica_set_object(
        &self,
        old_rss: &[ReplicaSet],
        new_revision: &str,
    ) -> Result<ReplicaSet, PlanError> {
        let spec = self.d.spec.clone().unwrap_or_default();
        let collision_count = self.d.status.as_ref().and_then(|s| s.collision_count);
        let mut template = spec.template.clone();
        let hash = compute_hash(&template, collision_count);
        let template_meta = template.metadata.get_or_insert_with(ObjectMeta::default);
        template_meta
            .labels
            .get_or_insert_with(BTreeMap::new)
            .insert(POD_TEMPLATE_HASH_LABEL.to_string(), hash.clone());
        let labels = template_meta.labels.clone();
        let mut selector = spec.selector.clone();
        selector
            .match_labels
            .get_or_insert_with(BTreeMap::new)
            .insert(POD_TEMPLATE_HASH_LABEL.to_string(), hash.clone());
        let name = replica_set_name(self.d.metadata.name.as_deref().unwrap_or(""), &hash);
        let owner = OwnerReference {
            api_version: "apps/v1".to_string(),
            kind: "Deployment".to_string(),
            name: self.d.metadata.name.clone().unwrap_or_default(),
            uid: self.d.metadata.uid.clone().unwrap_or_default(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        };
        let mut rs = ReplicaSet {
            metadata: ObjectMeta {
                name: Some(name),
                namespace: self.d.metadata.namespace.clone(),
                owner_references: Some(vec![owner]),
                labels,
                ..Default::default()
            },
            spec: Some(ReplicaSetSpec {
                replicas: Some(0),
                min_ready_seconds: spec.min_ready_seconds,
                selector,
                template: Some(template),
            }),
            status: None,
        };
        let mut all = old_rss.to_vec();
        all.push(rs.clone());
        let replicas = new_rs_new_replicas(&self.d, &all, &rs)?;
        set_rs_replicas(&mut rs, replicas);
        set_new_replica_set_annotations(
            &self.d,
            &mut rs,
            new_revision,
            false,
            MAX_REVISION_HISTORY_CHARS,
        );
        Ok(rs)
    }

    // -----------------------------------------------------------------------------------------
    // Scaling

    /// Resizes a ReplicaSet if needed and records the event (`scaleReplicaSetAndRecordEvent`).
    /// Returns whether the size changed and the ReplicaSet as written.
    pub fn scale_replica_set_and_record_event(
        &mut self,
        rs: &ReplicaSet,
        new_scale: i32,
    ) -> (bool, ReplicaSet) {
        let current = rs_spec_replicas(rs);
        if current == new_scale {
            return (false, rs.clone());
        }
        let direction = if current < new_scale { "up" } else { "down" };
        self.scale_replica_set(rs, new_scale, direction)
    }

    /// Writes the size and the desired/max annotations when either is stale (`scaleReplicaSet`);
    /// only a size change counts as "scaled" and emits `ScalingReplicaSet`.
    pub fn scale_replica_set(
        &mut self,
        rs: &ReplicaSet,
        new_scale: i32,
        direction: &str,
    ) -> (bool, ReplicaSet) {
        let old_scale = rs_spec_replicas(rs);
        let size_needs_update = old_scale != new_scale;
        let desired = deployment_replicas(&self.d);
        let max = desired.saturating_add(max_surge(&self.d));
        if !size_needs_update && !replicas_annotations_need_update(rs, desired, max) {
            return (false, rs.clone());
        }
        let mut copy = rs.clone();
        set_rs_replicas(&mut copy, new_scale);
        set_replicas_annotations(&mut copy, desired, max);
        let change = size_needs_update.then_some(ScaleChange {
            from: old_scale,
            to: new_scale,
        });
        self.record_rs_write(copy.clone(), change);
        if size_needs_update {
            let name = rs_name(rs).to_string();
            self.scaling_event(
                &name,
                format!("Scaled {direction} replica set {name} from {old_scale} to {new_scale}"),
            );
        }
        (size_needs_update, copy)
    }

    /// Proportional scaling for scaling events and paused Deployments (`scale`): a lone active
    /// ReplicaSet takes the whole size; a saturated new ReplicaSet drains the old ones; otherwise
    /// the difference to `replicas + maxSurge` is spread over active ReplicaSets by size.
    pub fn scale(
        &mut self,
        new_rs: Option<&ReplicaSet>,
        old_rss: &[ReplicaSet],
    ) -> Result<(), PlanError> {
        let replicas = deployment_replicas(&self.d);
        if let Some(target) = find_active_or_latest(new_rs, old_rss) {
            if rs_spec_replicas(&target) != replicas {
                self.scale_replica_set_and_record_event(&target, replicas);
            }
            return Ok(());
        }

        if is_saturated(&self.d, new_rs) {
            for old in filter_active(old_rss) {
                self.scale_replica_set_and_record_event(&old, 0);
            }
            return Ok(());
        }

        if !is_rolling_update(&self.d) {
            return Ok(());
        }

        let mut all = old_rss.to_vec();
        all.extend(new_rs.cloned());
        let mut all = filter_active(&all);
        let current = replica_count(&all);
        let allowed = if replicas > 0 {
            replicas.saturating_add(max_surge(&self.d))
        } else {
            0
        };
        let to_add = allowed - current;
        let direction = match to_add.signum() {
            1 => {
                all.sort_by(cmp_by_size_newer);
                "up"
            }
            -1 => {
                all.sort_by(cmp_by_size_older);
                "down"
            }
            _ => "",
        };

        let mut added = 0;
        let mut sizes: Vec<i32> = Vec::with_capacity(all.len());
        for rs in &all {
            if to_add != 0 {
                let p = proportion(rs, &self.d, to_add, added);
                sizes.push(rs_spec_replicas(rs).saturating_add(p));
                added = added.saturating_add(p);
            } else {
                sizes.push(rs_spec_replicas(rs));
            }
        }
        for (i, rs) in all.iter().enumerate() {
            let mut size = sizes[i];
            if i == 0 && to_add != 0 {
                size = size.saturating_add(to_add).saturating_sub(added).max(0);
            }
            self.scale_replica_set(rs, size, direction);
        }
        Ok(())
    }

    // -----------------------------------------------------------------------------------------
    // RollingUpdate

    fn rollout_rolling(&mut self, rs_list: &mut [ReplicaSet]) -> Result<(), PlanError> {
        let (new_rs, old_rss) = self.get_all_replica_sets_and_sync_revision(rs_list, true)?;
        let mut all = old_rss.clone();
        all.extend(new_rs.clone());
        let Some(new_rs) = new_rs else {
            // Creation was requested, so a new ReplicaSet always exists here.
            return Ok(());
        };

        if self.reconcile_new_replica_set(&all, &new_rs)? {
            self.sync_rollout_status(&all, Some(&new_rs));
            return Ok(());
        }

        let active_old = filter_active(&old_rss);
        if self.reconcile_old_replica_sets(&all, &active_old, &new_rs) {
            self.sync_rollout_status(&all, Some(&new_rs));
            return Ok(());
        }

        let status = self.current_status();
        if deployment_complete(&self.d, &status) {
            self.cleanup_deployment(&old_rss);
        }
        self.sync_rollout_status(&all, Some(&new_rs));
        Ok(())
    }

    /// Moves the new ReplicaSet toward `spec.replicas`: down at once if above it, otherwise up
    /// as far as maxSurge allows (`reconcileNewReplicaSet`). Returns whether it was resized.
    pub fn reconcile_new_replica_set(
        &mut self,
        all_rss: &[ReplicaSet],
        new_rs: &ReplicaSet,
    ) -> Result<bool, PlanError> {
        let replicas = deployment_replicas(&self.d);
        let current = rs_spec_replicas(new_rs);
        if current == replicas {
            return Ok(false);
        }
        if current > replicas {
            return Ok(self.scale_replica_set_and_record_event(new_rs, replicas).0);
        }
        let target = new_rs_new_replicas(&self.d, all_rss, new_rs)?;
        Ok(self.scale_replica_set_and_record_event(new_rs, target).0)
    }

    /// Scales old ReplicaSets down as far as maxUnavailable allows, unhealthy pods first
    /// (`reconcileOldReplicaSets`). `old_rss` are the active old ReplicaSets. Returns whether
    /// anything was scaled; internal errors end the step quietly, as upstream.
    pub fn reconcile_old_replica_sets(
        &mut self,
        all_rss: &[ReplicaSet],
        old_rss: &[ReplicaSet],
        new_rs: &ReplicaSet,
    ) -> bool {
        if replica_count(old_rss) == 0 {
            return false;
        }
        let all_pods = replica_count(all_rss);
        let min_available = deployment_replicas(&self.d) - max_unavailable(&self.d);
        let new_unavailable = rs_spec_replicas(new_rs) - rs_available_replicas(new_rs);
        let max_scaled_down = all_pods - min_available - new_unavailable;
        if max_scaled_down <= 0 {
            return false;
        }
        let Ok((old_rss, cleaned)) =
            self.cleanup_unhealthy_replicas(old_rss.to_vec(), max_scaled_down)
        else {
            return false;
        };
        let mut all = old_rss.clone();
        all.push(new_rs.clone());
        let Ok(scaled_down) = self.scale_down_old_replica_sets_for_rolling_update(&all, &old_rss)
        else {
            return false;
        };
        cleaned + scaled_down > 0
    }

    /// Removes up to `max_cleanup_count` not-available pods from old ReplicaSets, oldest first,
    /// so broken old pods do not block the rollout (`cleanupUnhealthyReplicas`). Returns the old
    /// ReplicaSets (resized ones updated, oldest first) and how many pods were removed.
    pub fn cleanup_unhealthy_replicas(
        &mut self,
        mut old_rss: Vec<ReplicaSet>,
        max_cleanup_count: i32,
    ) -> Result<(Vec<ReplicaSet>, i32), PlanError> {
        old_rss.sort_by(cmp_by_creation);
        let mut total = 0;
        for slot in old_rss.iter_mut() {
            if total >= max_cleanup_count {
                break;
            }
            let target = slot.clone();
            let spec = rs_spec_replicas(&target);
            let available = rs_available_replicas(&target);
            if spec == 0 || spec == available {
                continue;
            }
            let count = (max_cleanup_count - total).min(spec - available);
            let new_count = spec - count;
            if new_count > spec {
                return Err(PlanError::InvalidScaleDown {
                    context: "cleaning up unhealthy replicas",
                    namespace: rs_namespace(&target),
                    name: rs_name(&target).to_string(),
                    from: spec,
                    to: new_count,
                });
            }
            let (_, updated) = self.scale_replica_set_and_record_event(&target, new_count);
            total += count;
            *slot = updated;
        }
        Ok((old_rss, total))
    }

    /// Scales old ReplicaSets down, oldest first, by as many pods as are available beyond the
    /// minimum (`scaleDownOldReplicaSetsForRollingUpdate`). Returns how many were removed.
    pub fn scale_down_old_replica_sets_for_rolling_update(
        &mut self,
        all_rss: &[ReplicaSet],
        old_rss: &[ReplicaSet],
    ) -> Result<i32, PlanError> {
        let min_available = deployment_replicas(&self.d) - max_unavailable(&self.d);
        let available = available_replica_count(all_rss);
        if available <= min_available {
            return Ok(0);
        }
        let mut old_rss = old_rss.to_vec();
        old_rss.sort_by(cmp_by_creation);
        let budget = available - min_available;
        let mut total = 0;
        for target in &old_rss {
            if total >= budget {
                break;
            }
            let spec = rs_spec_replicas(target);
            if spec == 0 {
                continue;
            }
            let count = spec.min(budget - total);
            let new_count = spec - count;
            if new_count > spec {
                return Err(PlanError::InvalidScaleDown {
                    context: "scaling down old RS",
                    namespace: rs_namespace(target),
                    name: rs_name(target).to_string(),
                    from: spec,
                    to: new_count,
                });
            }
            self.scale_replica_set_and_record_event(target, new_count);
            total += count;
        }
        Ok(total)
    }

    // -----------------------------------------------------------------------------------------
    // Recreate

    fn rollout_recreate(
        &mut self,
        rs_list: &mut [ReplicaSet],
        pods: &[Pod],
    ) -> Result<(), PlanError> {
        let (mut new_rs, mut old_rss) =
            self.get_all_replica_sets_and_sync_revision(rs_list, false)?;
        let mut all = old_rss.clone();
        all.extend(new_rs.clone());

        let mut scaled_down = false;
        for old in filter_active(&old_rss) {
            if self.scale_replica_set_and_record_event(&old, 0).0 {
                scaled_down = true;
            }
        }
        if scaled_down {
            self.sync_rollout_status(&all, new_rs.as_ref());
            return Ok(());
        }

        if old_pods_running(new_rs.as_ref(), &old_rss, rs_list, pods) {
            self.sync_rollout_status(&all, new_rs.as_ref());
            return Ok(());
        }

        if new_rs.is_none() {
            let (created, olds) = self.get_all_replica_sets_and_sync_revision(rs_list, true)?;
            new_rs = created;
            old_rss = olds;
            all = old_rss.clone();
            all.extend(new_rs.clone());
        }

        if let Some(new_rs) = new_rs.as_ref() {
            let replicas = deployment_replicas(&self.d);
            self.scale_replica_set_and_record_event(new_rs, replicas);
        }

        let status = self.current_status();
        if deployment_complete(&self.d, &status) {
            self.cleanup_deployment(&old_rss);
        }
        self.sync_rollout_status(&all, new_rs.as_ref());
        Ok(())
    }

    // -----------------------------------------------------------------------------------------
    // Rollback (deprecated annotation)

    fn rollback(&mut self, rs_list: &mut [ReplicaSet], requested: i64) -> Result<(), PlanError> {
        let (new_rs, old_rss) = self.get_all_replica_sets_and_sync_revision(rs_list, true)?;
        let mut all = old_rss;
        all.extend(new_rs);
        let mut target_revision = requested;
        if target_revision == 0 {
            target_revision = last_revision(&all);
            if target_revision == 0 {
                self.rollback_warning("Unable to find last revision.");
                self.clear_rollback_to();
                return Ok(());
            }
        }
        let found = all
            .iter()
            .find(|rs| revision(rs).ok() == Some(target_revision))
            .cloned();
        let Some(rs) = found else {
            self.rollback_warning("Unable to find the revision to rollback to.");
            self.clear_rollback_to();
            return Ok(());
        };
        let template = self
            .d
            .spec
            .as_ref()
            .map(|s| s.template.clone())
            .unwrap_or_default();
        let mut rs_template = rs
            .spec
            .as_ref()
            .and_then(|s| s.template.clone())
            .unwrap_or_default();
        let name = self.d.metadata.name.clone().unwrap_or_default();
        if equal_ignore_hash(&template, &rs_template) {
            self.event(
                EventType::Warning,
                "DeploymentRollbackTemplateUnchanged",
                format!(
                    "The rollback revision contains the same template as current deployment {name:?}"
                ),
            );
        } else {
            if let Some(labels) = rs_template
                .metadata
                .as_mut()
                .and_then(|m| m.labels.as_mut())
            {
                labels.remove(POD_TEMPLATE_HASH_LABEL);
            }
            if let Some(spec) = self.d.spec.as_mut() {
                spec.template = rs_template;
            }
            // The Deployment takes the annotations of the revision it returns to, except the
            // controller's own bookkeeping.
            let mut annotations: BTreeMap<String, String> = self
                .d
                .metadata
                .annotations
                .clone()
                .unwrap_or_default()
                .into_iter()
                .filter(|(k, _)| skip_copy_annotation(k))
                .collect();
            for (k, v) in rs.metadata.annotations.iter().flatten() {
                if !skip_copy_annotation(k) {
                    annotations.insert(k.clone(), v.clone());
                }
            }
            self.d.metadata.annotations = Some(annotations);
            self.event(
                EventType::Normal,
                "DeploymentRollback",
                format!("Rolled back deployment {name:?} to revision {target_revision}"),
            );
        }
        self.clear_rollback_to();
        Ok(())
    }

    fn rollback_warning(&mut self, message: &str) {
        self.event(
            EventType::Warning,
            "DeploymentRollbackRevisionNotFound",
            message.to_string(),
        );
    }

    fn clear_rollback_to(&mut self) {
        if let Some(a) = self.d.metadata.annotations.as_mut() {
            a.remove(ROLLBACK_TO_ANNOTATION);
        }
        self.spec_updated = true;
    }

    // -----------------------------------------------------------------------------------------
    // History clean-up and status

    /// Deletes the oldest revisions beyond `revisionHistoryLimit`, skipping (not replacing) any
    /// that still have pods or unobserved changes (`cleanupDeployment`).
    pub fn cleanup_deployment(&mut self, old_rss: &[ReplicaSet]) {
        if !has_revision_history_limit(&self.d) {
            return;
        }
        let limit = self
            .d
            .spec
            .as_ref()
            .and_then(|s| s.revision_history_limit)
            .unwrap_or(0);
        let mut cleanable: Vec<&ReplicaSet> = old_rss
            .iter()
            .filter(|rs| rs.metadata.deletion_timestamp.is_none())
            .collect();
        let diff = cleanable.len() as i64 - i64::from(limit);
        if diff <= 0 {
            return;
        }
        cleanable.sort_by(|a, b| cmp_by_revision(a, b));
        for rs in cleanable.into_iter().take(diff as usize) {
            let observed = rs
                .status
                .as_ref()
                .and_then(|s| s.observed_generation)
                .unwrap_or(0);
            if rs_status_replicas(rs) != 0
                || rs_spec_replicas(rs) != 0
                || rs.metadata.generation.unwrap_or(0) > observed
                || rs.metadata.deletion_timestamp.is_some()
            {
                continue;
            }
            self.actions.push(Action::DeleteReplicaSet {
                name: rs_name(rs).to_string(),
                uid: rs.metadata.uid.clone(),
            });
        }
    }

    /// Recomputes the status without judging progress (`syncDeploymentStatus`).
    pub fn sync_deployment_status(&mut self, all_rss: &[ReplicaSet], new_rs: Option<&ReplicaSet>) {
        let new_status = calculate_status(all_rss, new_rs, &self.d, self.now);
        if normalize_status(&self.current_status()) != normalize_status(&new_status) {
            self.d.status = Some(new_status);
        }
    }

    /// Recomputes the status and the Progressing condition (`syncRolloutStatus`); when nothing
    /// changed, schedules the next deadline check.
    pub fn sync_rollout_status(&mut self, all_rss: &[ReplicaSet], new_rs: Option<&ReplicaSet>) {
        let mut new_status = calculate_status(all_rss, new_rs, &self.d, self.now);
        if !has_progress_deadline(&self.d) {
            remove_condition(&mut new_status, CONDITION_PROGRESSING);
        }
        let current = self.current_status();
        let current_condition = get_condition(&current, CONDITION_PROGRESSING).cloned();
        let is_complete = new_status.replicas == new_status.updated_replicas
            && current_condition.as_ref().and_then(|c| c.reason.as_deref())
                == Some(REASON_NEW_REPLICA_SET_AVAILABLE);
        let name = self.d.metadata.name.clone().unwrap_or_default();
        let subject = match new_rs {
            Some(rs) => format!("ReplicaSet {:?}", rs_name(rs)),
            None => format!("Deployment {name:?}"),
        };
        if has_progress_deadline(&self.d) && !is_complete {
            if deployment_complete(&self.d, &new_status) {
                let c = new_condition(
                    CONDITION_PROGRESSING,
                    "True",
                    REASON_NEW_REPLICA_SET_AVAILABLE,
                    &format!("{subject} has successfully progressed."),
                    self.now,
                );
                set_condition(&mut new_status, c);
            } else if deployment_progressing(&self.d, &new_status) {
                let mut c = new_condition(
                    CONDITION_PROGRESSING,
                    "True",
                    REASON_REPLICA_SET_UPDATED,
                    &format!("{subject} is progressing."),
                    self.now,
                );
                if let Some(current) = current_condition.as_ref() {
                    if current.status == "True" {
                        c.last_transition_time = current.last_transition_time.clone();
                    }
                    remove_condition(&mut new_status, CONDITION_PROGRESSING);
                }
                set_condition(&mut new_status, c);
            } else if deployment_timed_out(&self.d, &new_status, self.now) {
                let c = new_condition(
                    CONDITION_PROGRESSING,
                    "False",
                    REASON_PROGRESS_DEADLINE_EXCEEDED,
                    &format!("{subject} has timed out progressing."),
                    self.now,
                );
                set_condition(&mut new_status, c);
            }
        }

        match replica_failures(all_rss, new_rs).into_iter().next() {
            Some(failure) => set_condition(&mut new_status, failure),
            None => remove_condition(&mut new_status, CONDITION_REPLICA_FAILURE),
        }

        if normalize_status(&current) == normalize_status(&new_status) {
            self.requeue = match requeue_stuck_deployment(&self.d, &new_status, self.now) {
                None => Requeue::None,
                Some(after) if after.is_zero() => Requeue::RateLimited,
                Some(after) => Requeue::After(after + std::time::Duration::from_secs(1)),
            };
            return;
        }
        self.d.status = Some(new_status);
    }
}

/// Whether pods of old ReplicaSets may still run, which holds Recreate back: old ReplicaSets
/// report pods, or a non-terminal pod belongs to a ReplicaSet other than the new one.
fn old_pods_running(
    new_rs: Option<&ReplicaSet>,
    old_rss: &[ReplicaSet],
    rs_list: &[ReplicaSet],
    pods: &[Pod],
) -> bool {
    if actual_replica_count(old_rss) > 0 {
        return true;
    }
    let known: HashSet<&str> = rs_list
        .iter()
        .filter_map(|rs| rs.metadata.uid.as_deref())
        .collect();
    let new_uid = new_rs.and_then(|rs| rs.metadata.uid.as_deref());
    let mut by_owner: HashMap<&str, Vec<&Pod>> = HashMap::new();
    for pod in pods {
        let controller = pod
            .metadata
            .owner_references
            .iter()
            .flatten()
            .find(|o| o.controller == Some(true));
        if let Some(owner) = controller {
            if known.contains(owner.uid.as_str()) {
                by_owner.entry(owner.uid.as_str()).or_default().push(pod);
            }
        }
    }
    by_owner
        .iter()
        .filter(|(uid, _)| Some(**uid) != new_uid)
        .flat_map(|(_, pods)| pods.iter())
        .any(|pod| {
            let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
            !matches!(phase, Some("Failed") | Some("Succeeded"))
        })
}
