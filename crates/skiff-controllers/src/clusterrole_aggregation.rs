//! kube-controller-manager's `clusterrole-aggregation` controller: a ClusterRole with an
//! `aggregationRule` is kept holding the rules of the ClusterRoles its selectors match (how
//! `admin`, `edit` and `view` gather the `aggregate-to-*` roles). The decision is
//! `skiff_auth::aggregation`'s pure planner; this shell watches ClusterRoles and writes.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use skiff_api::kinds;
use skiff_auth::aggregation::aggregated_rules;
use skiff_auth::rule::PolicyRule;
use skiff_client::{Client, Scope};
use skiff_runtime::{Informer, WorkQueue};

use crate::shell::{run_key_syncs, KeySync, SyncError};

/// The shell: ClusterRoles in, aggregated rules out.
#[derive(Clone)]
pub struct ClusterRoleAggregationController {
    client: Arc<dyn Client>,
    cluster_roles: Informer,
    queue: WorkQueue<String>,
}

impl KeySync for ClusterRoleAggregationController {
    async fn sync_key(&self, key: &str) -> Result<Option<Duration>, SyncError> {
        self.sync(key).await
    }
}

fn name_of(role: &Value) -> Option<&str> {
    role.pointer("/metadata/name").and_then(Value::as_str)
}

fn aggregates(role: &Value) -> bool {
    role.get("aggregationRule").is_some_and(|r| !r.is_null())
}

impl ClusterRoleAggregationController {
    /// Wires the controller to a ClusterRole informer. Any change to any ClusterRole queues
    /// every aggregated one, as upstream does: the set is small and who selects whom is not
    /// indexed.
    pub fn new(client: Arc<dyn Client>, cluster_roles: Informer) -> Self {
        let controller = ClusterRoleAggregationController {
            client,
            cluster_roles,
            queue: WorkQueue::new(),
        };
        let queue = controller.queue.clone();
        let informer = controller.cluster_roles.clone();
        controller
            .cluster_roles
            .add_handler(move |_| enqueue_aggregated(&informer, &queue));
        controller
    }

    /// Syncs every aggregated ClusterRole once, then follows changes with `workers` concurrent
    /// syncs until the queue shuts down.
    pub async fn run(self, workers: usize) {
        enqueue_aggregated(&self.cluster_roles, &self.queue);
        let queue = self.queue.clone();
        run_key_syncs(self, queue, workers).await;
    }

    /// Stops taking new work.
    pub fn shutdown(&self) {
        self.queue.shutdown();
    }

    async fn sync(&self, name: &str) -> Result<Option<Duration>, SyncError> {
        let Some(role) = self.cluster_roles.get(None, name) else {
            return Ok(None);
        };
        let all: Vec<Value> = self
            .cluster_roles
            .list()
            .iter()
            .map(|r| (**r).clone())
            .collect();
        let Some(rules) = aggregated_rules(&role, &all).map_err(SyncError::Plan)? else {
            return Ok(None);
        };
        if rules == PolicyRule::list_from_json(&role) {
            return Ok(None);
        }
        let mut updated = (*role).clone();
        updated["rules"] = Value::Array(rules.iter().map(PolicyRule::to_json).collect());
        let scope = Scope {
            resource: &kinds::cluster_role::V1,
            namespace: None,
        };
        match self.client.update(scope, updated).await {
            Ok(_) => Ok(None),
            // A role deleted meanwhile needs nothing; a conflict is retried with the newer one.
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
}

fn enqueue_aggregated(informer: &Informer, queue: &WorkQueue<String>) {
    for role in informer.list() {
        if aggregates(&role) {
            if let Some(name) = name_of(&role) {
                queue.add(name.to_string());
            }
        }
    }
}
