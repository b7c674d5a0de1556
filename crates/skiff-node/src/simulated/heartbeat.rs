//! Registration and heartbeats of simulated nodes: Node objects, their status reports and
//! their Leases, on kubelet's cadence.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Node;
use serde_json::json;
use skiff_api::patch::PatchType;
use skiff_client::{Api, Client, ClientError, ListOptions};
use tokio::time::{interval_at, Instant, MissedTickBehavior};

use super::node::{
    heartbeat_stopped, lease_duration_seconds, lease_object, node_object, node_status,
    reported_ready, NodeSoftware, SimulatedNode, NODE_LEASE_NAMESPACE, SIMULATED_NODE_LABEL,
};
use super::NodeCapacity;

/// How often a status write that lost a race is tried again at once.
const CONFLICT_RETRIES: usize = 5;

/// Keeps a set of simulated nodes registered and alive.
pub(crate) struct Heartbeat {
    nodes_api: Api<Node>,
    leases_api: Api<Lease>,
    nodes: Vec<SimulatedNode>,
    capacity: NodeCapacity,
    software: NodeSoftware,
    heartbeat_interval: Duration,
    status_report_interval: Duration,
    /// The Nodes' UIDs, which their Leases point to.
    uids: HashMap<String, String>,
}

impl Heartbeat {
    pub(crate) fn new(
        client: Arc<dyn Client>,
        nodes: Vec<SimulatedNode>,
        capacity: NodeCapacity,
        software: NodeSoftware,
        heartbeat_interval: Duration,
        status_report_interval: Duration,
    ) -> Result<Heartbeat, ClientError> {
        Ok(Heartbeat {
            nodes_api: Api::new(client.clone(), None)?,
            leases_api: Api::new(client, Some(NODE_LEASE_NAMESPACE))?,
            nodes,
            capacity,
            software,
            heartbeat_interval,
            status_report_interval,
            uids: HashMap::new(),
        })
    }

    /// Registers every node (or refreshes a node registered before) and its Lease.
    pub(crate) async fn register_all(&mut self) -> Result<(), (String, ClientError)> {
        for node in self.nodes.clone() {
            self.register(&node)
                .await
                .map_err(|error| (node.name.clone(), error))?;
        }
        Ok(())
    }

    async fn register(&mut self, node: &SimulatedNode) -> Result<(), ClientError> {
        let object = node_object(node, &self.capacity, &self.software, Timestamp::now());
        let registered = match self.nodes_api.create(&object).await {
            Ok(created) => created,
            Err(error) if error.is_conflict() => {
                // Registered by an earlier run: make sure the labels are ours, then report.
                let labels = object.metadata.labels.clone().unwrap_or_default();
                self.nodes_api
                    .patch(
                        &node.name,
                        PatchType::Merge,
                        json!({"metadata": {"labels": labels}}),
                        false,
                    )
                    .await?;
                self.report_status(node).await?
            }
            Err(error) => return Err(error),
        };
        if let Some(uid) = registered.metadata.uid {
            self.uids.insert(node.name.clone(), uid);
        }
        self.renew_lease(node).await
    }

    /// Writes a fresh status (new heartbeat times), keeping what others put in it.
    async fn report_status(&self, node: &SimulatedNode) -> Result<Node, ClientError> {
        let mut last_error = None;
        for _ in 0..CONFLICT_RETRIES {
            let mut current = self.nodes_api.get(&node.name).await?;
            current.status = Some(node_status(
                node,
                &self.capacity,
                &self.software,
                current.status.as_ref(),
                Timestamp::now(),
            ));
            match self.nodes_api.update_status(&current).await {
                Ok(stored) => return Ok(stored),
                Err(error) if error.is_conflict() => last_error = Some(error),
                Err(error) => return Err(error),
            }
        }
        Err(last_error.unwrap_or_else(|| ClientError::Decode("no status write attempted".into())))
    }

    /// Renews the node's Lease, creating it if it is missing.
    async fn renew_lease(&self, node: &SimulatedNode) -> Result<(), ClientError> {
        let now = Timestamp::now();
        let duration = lease_duration_seconds(self.heartbeat_interval);
        let uid = self.uids.get(&node.name).map(String::as_str);
        let lease = lease_object(&node.name, uid, duration, now);
        // The owner too: a Node registered again has a new UID.
        let renewal = json!({
            "metadata": {"ownerReferences": lease.metadata.owner_references},
            "spec": lease.spec,
        });
        match self
            .leases_api
            .patch(&node.name, PatchType::Merge, renewal, false)
            .await
        {
            Ok(_) => Ok(()),
            Err(error) if error.is_not_found() => match self.leases_api.create(&lease).await {
                Ok(_) => Ok(()),
                Err(error) if error.is_conflict() => Ok(()),
                Err(error) => Err(error),
            },
            Err(error) => Err(error),
        }
    }

    /// The simulated Nodes as stored, by name, read with one list (empty when it fails: the
    /// nodes then heartbeat as usual).
    async fn stored_nodes(&self) -> HashMap<String, Node> {
        let options = ListOptions {
            label_selector: Some(SIMULATED_NODE_LABEL.to_string()),
            ..ListOptions::default()
        };
        match self.nodes_api.list(&options).await {
            Ok((nodes, _)) => nodes
                .into_iter()
                .filter_map(|n| Some((n.metadata.name.clone()?, n)))
                .collect(),
            Err(error) => {
                tracing::warn!(%error, "listing the simulated nodes failed");
                HashMap::new()
            }
        }
    }

    /// Renews leases every heartbeat and reports node status every report interval, forever.
    /// Failures are logged and retried on the next tick; a deleted Node is registered again.
    pub(crate) async fn run(mut self) {
        let start = Instant::now();
        let mut leases = interval_at(start + self.heartbeat_interval, self.heartbeat_interval);
        leases.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut reports = interval_at(
            start + self.status_report_interval,
            self.status_report_interval,
        );
        reports.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = leases.tick() => {
                    let stored = self.stored_nodes().await;
                    for node in self.nodes.clone() {
                        let stored = stored.get(&node.name);
                        if stored.is_some_and(heartbeat_stopped) {
                            continue;
                        }
                        if let Err(error) = self.renew_lease(&node).await {
                            tracing::warn!(node = %node.name, %error, "renewing the node lease failed");
                        }
                        // Back from silence (or marked Unknown meanwhile): say so at once.
                        if stored.is_some_and(|n| !reported_ready(n)) {
                            if let Err(error) = self.report_status(&node).await {
                                tracing::warn!(node = %node.name, %error, "reporting node status failed");
                            }
                        }
                    }
                }
                _ = reports.tick() => {
                    let stored = self.stored_nodes().await;
                    for node in self.nodes.clone() {
                        if stored.get(&node.name).is_some_and(heartbeat_stopped) {
                            continue;
                        }
                        let result = match self.report_status(&node).await {
                            Err(error) if error.is_not_found() => self.register(&node).await,
                            other => other.map(|_| ()),
                        };
                        if let Err(error) = result {
                            tracing::warn!(node = %node.name, %error, "reporting node status failed");
                        }
                    }
                }
            }
        }
    }
}
