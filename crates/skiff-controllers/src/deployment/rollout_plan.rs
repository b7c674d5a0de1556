//! `skiff rollout plan`: the sequence of ReplicaSet sizes a rollout goes through.
//!
//! The simulation replays the real planner ([`plan`]) sync after sync against an idealised
//! cluster: syncs run until nothing more can move, then every pod created so far becomes
//! available at once; scaled-down pods vanish at once. Each ReplicaSet write is its own step, so
//! the steps shown are every state the controller's arithmetic passes through for the
//! Deployment's strategy, including the one between creating the new ReplicaSet and scaling the
//! old one down in the same sync.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentStatus, ReplicaSet, ReplicaSetSpec, ReplicaSetStatus,
};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference, Time};
use serde::Serialize;

use super::hash::{compute_hash, replica_set_name};
use super::util::*;
use super::{plan, Action, DeploymentObservation, PlanError};

/// Sizes of the new and old ReplicaSets after one ReplicaSet write that changed them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Step {
    /// `spec.replicas` of the new ReplicaSet.
    pub new: i32,
    /// Sum of `spec.replicas` over the old ReplicaSets.
    pub old: i32,
}

/// A rollout from a fully available old ReplicaSet to the Deployment's template.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RolloutPlan {
    /// maxSurge resolved against `spec.replicas` (0 for Recreate).
    pub max_surge: i32,
    /// maxUnavailable resolved against `spec.replicas` (0 for Recreate).
    pub max_unavailable: i32,
    /// From `{new: 0, old: replicas}` to `{new: replicas, old: 0}`.
    pub steps: Vec<Step>,
}

impl RolloutPlan {
    /// The plan as a `kubectl`-style table, for `-o table`.
    pub fn render_table(&self) -> String {
        let mut out = format!(
            "MAX SURGE: {}   MAX UNAVAILABLE: {}\n",
            self.max_surge, self.max_unavailable
        );
        let rows: Vec<[String; 4]> = self
            .steps
            .iter()
            .enumerate()
            .map(|(i, s)| {
                [
                    i.to_string(),
                    s.new.to_string(),
                    s.old.to_string(),
                    (i64::from(s.new) + i64::from(s.old)).to_string(),
                ]
            })
            .collect();
        let header = ["STEP", "NEW", "OLD", "TOTAL"].map(String::from);
        let mut widths = header.clone().map(|h| h.len());
        for row in &rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.len());
            }
        }
        for row in std::iter::once(&header).chain(rows.iter()) {
            let mut line = String::new();
            for (i, cell) in row.iter().enumerate() {
                if i + 1 == row.len() {
                    line.push_str(cell);
                } else {
                    let _ = write!(line, "{cell:<width$}   ", width = widths[i]);
                }
            }
            out.push_str(&line);
            out.push('\n');
        }
        out
    }
}

/// The Deployment with the API server's defaults applied (replicas 1, RollingUpdate 25%/25%,
/// revisionHistoryLimit 10, progressDeadlineSeconds 600), so a manifest read from a file plans
/// as it would run.
pub fn with_defaults(deployment: &Deployment) -> Deployment {
    // The one defaulting implementation is the API server's; go through its JSON form.
    let resource = skiff_api::resources::find("apps", "v1", "deployments")
        .expect("deployments are registered");
    let Ok(mut value) = serde_json::to_value(deployment) else {
        return deployment.clone();
    };
    skiff_api::defaults::apply_defaults(resource, &mut value);
    serde_json::from_value(value).unwrap_or_else(|_| deployment.clone())
}

/// Upper bound on simulated syncs, reached only by very large Deployments with tiny fenceposts.
const MAX_SIMULATED_SYNCS: usize = 40_000;

const SIMULATION_START_SECONDS: i64 = 946_684_800; // 2000-01-01T00:00:00Z

fn at(seconds: i64) -> Timestamp {
    Timestamp::from_second(SIMULATION_START_SECONDS + seconds).unwrap_or(Timestamp::UNIX_EPOCH)
}

/// Marks every pod of a ReplicaSet as existing and available, as the simulation assumes once
/// no sync can move anything more.
fn settle(rs: &mut ReplicaSet) {
    let replicas = rs_spec_replicas(rs);
    set_status(rs, replicas);
}

/// Records a write of a ReplicaSet's size: its pods exist at once, but only those already
/// available stay so (pods removed by a scale-down vanish, new pods are not yet ready).
fn resize(rs: &mut ReplicaSet, available_before: i32) {
    let available = available_before.min(rs_spec_replicas(rs)).max(0);
    set_status(rs, available);
}

fn set_status(rs: &mut ReplicaSet, available: i32) {
    let replicas = rs_spec_replicas(rs);
    rs.status = Some(ReplicaSetStatus {
        replicas,
        ready_replicas: Some(available),
        available_replicas: Some(available),
        fully_labeled_replicas: Some(replicas),
        observed_generation: rs.metadata.generation,
        ..Default::default()
    });
}

/// The sizes of the new ReplicaSet and of the old ones together, as the plan shows them.
fn sizes(observation: &DeploymentObservation) -> Step {
    let d = &observation.deployment;
    let new_rs = find_new_replica_set(d, &observation.replica_sets);
    let new = new_rs.as_ref().map(rs_spec_replicas).unwrap_or(0);
    let old = find_old_replica_sets(d, &observation.replica_sets)
        .iter()
        .map(rs_spec_replicas)
        .fold(0_i32, |sum, replicas| sum.saturating_add(replicas));
    Step { new, old }
}

fn old_replica_set(d: &Deployment, replicas: i32) -> ReplicaSet {
    let spec = d.spec.clone().unwrap_or_default();
    // Any template other than the Deployment's makes this ReplicaSet an old one.
    let mut template: PodTemplateSpec = spec.template.clone();
    template
        .metadata
        .get_or_insert_with(ObjectMeta::default)
        .annotations
        .get_or_insert_with(BTreeMap::new)
        .insert(
            "skiff.dev/previous-template".to_string(),
            "true".to_string(),
        );
    let hash = compute_hash(&template, None);
    let mut labels = template
        .metadata
        .as_ref()
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    labels.insert(POD_TEMPLATE_HASH_LABEL.to_string(), hash.clone());
    if let Some(meta) = template.metadata.as_mut() {
        meta.labels = Some(labels.clone());
    }
    let mut selector = spec.selector.clone();
    selector
        .match_labels
        .get_or_insert_with(BTreeMap::new)
        .insert(POD_TEMPLATE_HASH_LABEL.to_string(), hash.clone());
    let name = d.metadata.name.clone().unwrap_or_default();
    let annotations = BTreeMap::from([
        (REVISION_ANNOTATION.to_string(), "1".to_string()),
        (
            DESIRED_REPLICAS_ANNOTATION.to_string(),
            replicas.to_string(),
        ),
        (
            MAX_REPLICAS_ANNOTATION.to_string(),
            replicas.saturating_add(max_surge(d)).to_string(),
        ),
    ]);
    let mut rs = ReplicaSet {
        metadata: ObjectMeta {
            name: Some(replica_set_name(&name, &hash)),
            namespace: d.metadata.namespace.clone(),
            uid: Some("previous-replicaset".to_string()),
            generation: Some(1),
            creation_timestamp: Some(Time(at(-3600))),
            labels: Some(labels),
            annotations: Some(annotations),
            owner_references: Some(vec![OwnerReference {
                api_version: "apps/v1".to_string(),
                kind: "Deployment".to_string(),
                name,
                uid: d.metadata.uid.clone().unwrap_or_default(),
                controller: Some(true),
                block_owner_deletion: Some(true),
            }]),
            ..Default::default()
        },
        spec: Some(ReplicaSetSpec {
            replicas: Some(replicas),
            min_ready_seconds: spec.min_ready_seconds,
            selector,
            template: Some(template),
        }),
        status: None,
    };
    settle(&mut rs);
    rs
}

/// Simulates a rollout of `deployment`'s template from an old ReplicaSet running all
/// `spec.replicas` pods, applying the planner sync after sync. Syncs run until one moves nothing
/// more; then every pod becomes available at once and syncing resumes. Scaled-down pods
/// disappear at once. Every ReplicaSet write that changes a size is a step, so a sync that
/// creates the new ReplicaSet and scales the old one down shows both states. Recreate shows the
/// old ReplicaSet going to 0 before the new one appears at full size.
pub fn rollout_plan(deployment: &Deployment) -> Result<RolloutPlan, PlanError> {
    let mut d = with_defaults(deployment);
    if d.metadata.name.is_none() {
        d.metadata.name = Some("deployment".to_string());
    }
    if d.metadata.uid.is_none() {
        d.metadata.uid = Some("deployment".to_string());
    }
    d.metadata.generation = Some(2);
    let replicas = deployment_replicas(&d).max(0);
    if is_rolling_update(&d) {
        let rolling = d
            .spec
            .as_ref()
            .and_then(|s| s.strategy.as_ref())
            .and_then(|s| s.rolling_update.as_ref());
        resolve_fenceposts(
            rolling.and_then(|r| r.max_surge.as_ref()),
            rolling.and_then(|r| r.max_unavailable.as_ref()),
            replicas,
        )?;
    }
    d.status = Some(DeploymentStatus {
        observed_generation: Some(1),
        replicas: Some(replicas),
        updated_replicas: Some(replicas),
        ready_replicas: Some(replicas),
        available_replicas: Some(replicas),
        ..Default::default()
    });

    let mut observation = DeploymentObservation {
        replica_sets: vec![old_replica_set(&d, replicas)],
        deployment: d,
        pods: Vec::new(),
    };
    let result = RolloutPlan {
        max_surge: max_surge(&observation.deployment),
        max_unavailable: max_unavailable(&observation.deployment),
        steps: vec![Step {
            new: 0,
            old: replicas,
        }],
    };
    let mut result = result;
    let final_step = Step {
        new: replicas,
        old: 0,
    };
    // Every round of at most four syncs (scale up, settle, scale down, settle) moves at least
    // maxSurge + maxUnavailable pods; refuse sizes whose simulation would take too long
    // instead of spinning.
    let per_round = i64::from(result.max_surge.max(0)) + i64::from(result.max_unavailable.max(0));
    let needed = 4 * (i64::from(replicas) / per_round.max(1) + 1) + 4;
    if needed > MAX_SIMULATED_SYNCS as i64 {
        return Err(PlanError::RolloutTooLong {
            syncs: needed as u64,
            limit: MAX_SIMULATED_SYNCS as u64,
        });
    }
    let max_syncs = (needed as usize + 16).min(MAX_SIMULATED_SYNCS);
    let mut created = 0;
    for sync in 0..max_syncs {
        if result.steps.last() == Some(&final_step) {
            return Ok(result);
        }
        let now = at(sync as i64);
        let planned = plan(&observation, now);
        if let Some(error) = planned.error {
            return Err(error);
        }
        let mut moved = false;
        for action in planned.actions {
            match action {
                Action::CreateReplicaSet { mut replica_set } => {
                    created += 1;
                    replica_set.metadata.uid = Some(format!("replicaset-{created}"));
                    replica_set.metadata.generation = Some(1);
                    replica_set.metadata.creation_timestamp = Some(Time(now));
                    resize(&mut replica_set, 0);
                    observation.replica_sets.push(replica_set);
                }
                Action::UpdateReplicaSet {
                    mut replica_set, ..
                } => {
                    if let Some(slot) = observation
                        .replica_sets
                        .iter_mut()
                        .find(|rs| rs.metadata.name == replica_set.metadata.name)
                    {
                        resize(&mut replica_set, rs_available_replicas(slot));
                        *slot = replica_set;
                    }
                }
                Action::DeleteReplicaSet { name, .. } => observation
                    .replica_sets
                    .retain(|rs| rs.metadata.name.as_deref() != Some(name.as_str())),
                Action::UpdateDeploymentStatus { deployment }
                | Action::UpdateDeployment { deployment } => observation.deployment = deployment,
            }
            let step = sizes(&observation);
            if result.steps.last() != Some(&step) {
                result.steps.push(step);
                moved = true;
            }
        }
        if !moved {
            // Nothing more can move until pods become available: let them all be at once.
            observation.replica_sets.iter_mut().for_each(settle);
        }
    }
    if result.steps.last() == Some(&final_step) {
        return Ok(result);
    }
    Err(PlanError::DidNotConverge { syncs: max_syncs })
}
