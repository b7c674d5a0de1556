//! The events the scheduler reports about pods (`Scheduled`, `FailedScheduling`), behind a
//! small trait so a shared event recorder can take over later.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use k8s_openapi::api::core::v1::Pod;
use serde_json::{json, Value};
use skiff_api::patch::PatchType;
use skiff_api::resources;
use skiff_client::{Client, Scope};

use crate::planner::DEFAULT_SCHEDULER_NAME;

/// How many distinct events the recorder remembers for folding repeats.
const MAX_REMEMBERED_EVENTS: usize = 4096;

/// One event about a pod.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodEvent {
    /// The pod's namespace.
    pub namespace: String,
    /// The pod's name.
    pub name: String,
    /// The pod's uid.
    pub uid: String,
    /// The pod's resourceVersion when the event happened.
    pub resource_version: String,
    /// `Normal` or `Warning`.
    pub event_type: &'static str,
    /// `Scheduled` or `FailedScheduling`.
    pub reason: &'static str,
    /// What the scheduler was doing: `Binding` or `Scheduling`.
    pub action: &'static str,
    /// The human-readable message.
    pub message: String,
}

impl PodEvent {
    /// An event about `pod`.
    pub fn about(
        pod: &Pod,
        event_type: &'static str,
        reason: &'static str,
        action: &'static str,
        message: String,
    ) -> PodEvent {
        PodEvent {
            namespace: pod.metadata.namespace.clone().unwrap_or_default(),
            name: pod.metadata.name.clone().unwrap_or_default(),
            uid: pod.metadata.uid.clone().unwrap_or_default(),
            resource_version: pod.metadata.resource_version.clone().unwrap_or_default(),
            event_type,
            reason,
            action,
            message,
        }
    }
}

/// Where the scheduler's events go. Recording is best effort: a lost event never stops
/// scheduling.
#[async_trait]
pub trait EventRecorder: Send + Sync + 'static {
    /// Records one event.
    async fn record(&self, event: PodEvent);
}

/// What makes two events the same: the pod (namespace, name, uid), reason and message.
type EventIdentity = (String, String, String, &'static str, String);

/// Writes events as `core/v1` Events through the client, folding a repeat of the same event
/// into the existing object (`count` and `lastTimestamp`) as Kubernetes' recorder does.
pub struct ClientEventRecorder {
    client: Arc<dyn Client>,
    /// Event object name and count, by what makes two events the same.
    seen: Mutex<HashMap<EventIdentity, (String, i64)>>,
}

impl ClientEventRecorder {
    /// A recorder writing through `client`.
    pub fn new(client: Arc<dyn Client>) -> ClientEventRecorder {
        ClientEventRecorder {
            client,
            seen: Mutex::new(HashMap::new()),
        }
    }
}

fn now_rfc3339() -> String {
    jiff::Timestamp::now()
        .round(jiff::Unit::Second)
        .unwrap_or_else(|_| jiff::Timestamp::now())
        .to_string()
}

fn event_object(event: &PodEvent, name: &str, now: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": name, "namespace": event.namespace},
        "involvedObject": {
            "apiVersion": "v1",
            "kind": "Pod",
            "namespace": event.namespace,
            "name": event.name,
            "uid": event.uid,
            "resourceVersion": event.resource_version,
        },
        "reason": event.reason,
        "message": event.message,
        "type": event.event_type,
        "action": event.action,
        "source": {"component": DEFAULT_SCHEDULER_NAME},
        "reportingComponent": DEFAULT_SCHEDULER_NAME,
        "reportingInstance": DEFAULT_SCHEDULER_NAME,
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
    })
}

#[async_trait]
impl EventRecorder for ClientEventRecorder {
    async fn record(&self, event: PodEvent) {
        let Some(resource) = resources::find("", "v1", "events") else {
            return;
        };
        let scope = Scope {
            resource,
            namespace: Some(&event.namespace),
        };
        let key = (
            event.namespace.clone(),
            event.name.clone(),
            event.uid.clone(),
            event.reason,
            event.message.clone(),
        );
        let now = now_rfc3339();
        let previous = self
            .seen
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(&key)
            .cloned();
        if let Some((name, count)) = previous {
            let patch = json!({"count": count + 1, "lastTimestamp": now});
            match self
                .client
                .patch(scope, &name, PatchType::Merge, patch, false)
                .await
            {
                Ok(_) => {
                    self.seen
                        .lock()
                        .unwrap_or_else(|poisoned| poisoned.into_inner())
                        .insert(key, (name, count + 1));
                    return;
                }
                // The event expired or was deleted: write a fresh one.
                Err(e) if e.is_not_found() => {}
                Err(e) => {
                    tracing::warn!(error = %e, "updating event failed");
                    return;
                }
            }
        }
        let nanos = jiff::Timestamp::now().as_nanosecond();
        let name = format!("{}.{:x}", event.name, nanos);
        match self
            .client
            .create(scope, event_object(&event, &name, &now))
            .await
        {
            Ok(_) => {
                let mut seen = self
                    .seen
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                // Only recent repeats need folding; forget the rest rather than grow forever.
                if seen.len() >= MAX_REMEMBERED_EVENTS {
                    seen.clear();
                }
                seen.insert(key, (name, 1));
            }
            Err(e) => tracing::warn!(error = %e, "writing event failed"),
        }
    }
}
