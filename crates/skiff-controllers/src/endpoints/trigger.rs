//! The `endpoints.kubernetes.io/last-change-trigger-time` bookkeeping (upstream
//! `TriggerTimeTracker`): the annotation tells a proxy (and a latency SLI) when the change an
//! endpoints write carries first happened, so it needs the earliest trigger not yet written.

use std::collections::HashMap;
use std::sync::Mutex;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Pod, Service};

/// What the last sync of one Service saw.
#[derive(Debug, Default, Clone)]
struct ServiceState {
    pod_trigger_times: HashMap<String, Timestamp>,
    service_trigger_time: Option<Timestamp>,
}

/// Per-Service memory of trigger times between syncs. A controller keeps one, shared by its
/// workers; the work queue never syncs one Service on two workers at once.
#[derive(Debug, Default)]
pub struct TriggerTimeTracker {
    services: Mutex<HashMap<String, ServiceState>>,
}

/// When a pod last changed in a way that moves it in or out of endpoints: the last transition
/// of its Ready condition.
fn pod_trigger_time(pod: &Pod) -> Option<Timestamp> {
    pod.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready")?
        .last_transition_time
        .as_ref()
        .map(|t| t.0)
}

fn service_key(service: &Service) -> String {
    format!(
        "{}/{}",
        service.metadata.namespace.as_deref().unwrap_or(""),
        service.metadata.name.as_deref().unwrap_or("")
    )
}

impl TriggerTimeTracker {
    /// An empty tracker.
    pub fn new() -> Self {
        Self::default()
    }

    /// The trigger time for a sync of `service` over its selected `pods`, remembering what was
    /// seen: the Service's creation on its first sync, afterwards the earliest trigger time
    /// that moved since the previous sync, `None` when nothing moved. Call it on every sync,
    /// written or not, so the memory stays current.
    pub fn compute(&self, service: &Service, pods: &[&Pod]) -> Option<Timestamp> {
        let key = service_key(service);
        let mut services = match self.services.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        let previous = services.get(&key).cloned();
        let known = previous.is_some();
        let previous = previous.unwrap_or_default();

        let mut earliest_changed: Option<Timestamp> = None;
        let mut pod_trigger_times = HashMap::new();
        for pod in pods {
            let (Some(name), Some(time)) = (pod.metadata.name.as_ref(), pod_trigger_time(pod))
            else {
                continue;
            };
            pod_trigger_times.insert(name.clone(), time);
            let moved = previous
                .pod_trigger_times
                .get(name)
                .is_none_or(|seen| time > *seen);
            if moved {
                earliest_changed = Some(earliest_changed.map_or(time, |e| e.min(time)));
            }
        }
        let service_time = service.metadata.creation_timestamp.as_ref().map(|t| t.0);
        if let Some(time) = service_time {
            if previous.service_trigger_time.is_none_or(|seen| time > seen) {
                earliest_changed = Some(earliest_changed.map_or(time, |e| e.min(time)));
            }
        }
        services.insert(
            key,
            ServiceState {
                pod_trigger_times,
                service_trigger_time: service_time,
            },
        );
        if known {
            earliest_changed
        } else {
            service_time
        }
    }

    /// Forgets a deleted Service.
    pub fn forget(&self, namespace: &str, name: &str) {
        let mut services = match self.services.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        services.remove(&format!("{namespace}/{name}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn service(created: &str) -> Service {
        serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "ns", "creationTimestamp": created},
        }))
        .expect("service")
    }

    fn pod(name: &str, ready_since: &str) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "ns"},
            "status": {"conditions": [
                {"type": "Ready", "status": "True", "lastTransitionTime": ready_since}
            ]},
        }))
        .expect("pod")
    }

    fn at(s: &str) -> Option<Timestamp> {
        Some(s.parse().expect("time"))
    }

    #[test]
    fn first_sync_reports_creation_then_earliest_change_then_nothing() {
        let tracker = TriggerTimeTracker::new();
        let svc = service("2025-01-01T00:00:00Z");
        let a = pod("a", "2025-01-01T00:00:05Z");
        assert_eq!(tracker.compute(&svc, &[&a]), at("2025-01-01T00:00:00Z"));
        assert_eq!(tracker.compute(&svc, &[&a]), None, "nothing moved");

        let a2 = pod("a", "2025-01-01T00:00:30Z");
        let b = pod("b", "2025-01-01T00:00:20Z");
        assert_eq!(
            tracker.compute(&svc, &[&a2, &b]),
            at("2025-01-01T00:00:20Z"),
            "the earliest of the moved trigger times"
        );

        tracker.forget("ns", "web");
        assert_eq!(
            tracker.compute(&svc, &[&a2, &b]),
            at("2025-01-01T00:00:00Z"),
            "a forgotten service starts over"
        );
    }
}
