//! kubelet's image garbage collection loop: every period, the images of the pods bound here
//! are kept and the image service collects the rest as its planner decides; failures are
//! reported on the Node as kubelet words them (`FreeDiskSpaceFailed` each time the unused
//! images cannot free enough, `ImageGCFailed` when a round fails again after a failed one).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde_json::Value;
use skiff_runtime::{EventRecorder, EventType, Informer, ObjectRef};

use super::runtime::{ImageGcFailure, ImageService};

/// kubelet's image garbage collection period.
pub const DEFAULT_IMAGE_GC_PERIOD: Duration = Duration::from_secs(5 * 60);

/// The `image` of every container, init container included, of `pods`, each once.
pub fn images_in_use(pods: &[Arc<Value>]) -> Vec<String> {
    let mut images: Vec<String> = Vec::new();
    for pod in pods {
        for list in ["/spec/initContainers", "/spec/containers"] {
            let containers = pod.pointer(list).and_then(Value::as_array);
            for container in containers.into_iter().flatten() {
                if let Some(image) = container.get("image").and_then(Value::as_str) {
                    if !images.iter().any(|i| i == image) {
                        images.push(image.to_string());
                    }
                }
            }
        }
    }
    images
}

/// The Node events one round's outcome gives, given whether the round before failed too.
pub fn round_events(
    previous_failed: bool,
    outcome: &Result<(), ImageGcFailure>,
) -> Vec<(&'static str, String)> {
    let Err(failure) = outcome else {
        return Vec::new();
    };
    let mut events = Vec::new();
    if let ImageGcFailure::FreeDiskSpace(message) = failure {
        events.push(("FreeDiskSpaceFailed", message.clone()));
    }
    if previous_failed {
        events.push(("ImageGCFailed", failure.message().to_string()));
    }
    events
}

/// The Node as kubelet refers to it in its events (its name standing for its UID).
fn node_ref(node: &str) -> ObjectRef {
    ObjectRef {
        api_version: "v1".to_string(),
        kind: "Node".to_string(),
        namespace: None,
        name: node.to_string(),
        uid: Some(node.to_string()),
        resource_version: None,
        field_path: None,
    }
}

/// Runs a round every `period`, forever.
pub async fn run(
    images: Arc<dyn ImageService>,
    pods: Informer,
    recorder: EventRecorder,
    node: String,
    period: Duration,
) {
    let mut ticks = tokio::time::interval(period);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.tick().await;
    let mut previous_failed = false;
    loop {
        ticks.tick().await;
        let in_use = images_in_use(&pods.list());
        let outcome = images.collect_garbage(&in_use, SystemTime::now()).await;
        if let Err(failure) = &outcome {
            tracing::warn!(error = failure.message(), "image garbage collection failed");
        }
        for (reason, message) in round_events(previous_failed, &outcome) {
            recorder.record(&node_ref(&node), EventType::Warning, reason, message);
        }
        previous_failed = outcome.is_err();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_containers_image_counts_once() {
        let pods = vec![
            Arc::new(json!({"spec": {
                "initContainers": [{"name": "i", "image": "setup:1"}],
                "containers": [{"name": "a", "image": "app:1"}, {"name": "b", "image": "setup:1"}],
            }})),
            Arc::new(json!({"spec": {"containers": [{"name": "c", "image": "app:2"}]}})),
        ];
        assert_eq!(images_in_use(&pods), vec!["setup:1", "app:1", "app:2"]);
    }

    #[test]
    fn events_follow_kubelets_rules() {
        let short = || Err(ImageGcFailure::FreeDiskSpace("not enough".into()));
        let broken = || Err(ImageGcFailure::Failed("unreadable".into()));
        type Case = (
            bool,
            Result<(), ImageGcFailure>,
            Vec<(&'static str, &'static str)>,
        );
        let cases: Vec<Case> = vec![
            (false, Ok(()), vec![]),
            (true, Ok(()), vec![]),
            (false, short(), vec![("FreeDiskSpaceFailed", "not enough")]),
            (
                true,
                short(),
                vec![
                    ("FreeDiskSpaceFailed", "not enough"),
                    ("ImageGCFailed", "not enough"),
                ],
            ),
            (false, broken(), vec![]),
            (true, broken(), vec![("ImageGCFailed", "unreadable")]),
        ];
        for (previous_failed, outcome, want) in cases {
            let got = round_events(previous_failed, &outcome);
            let got: Vec<(&str, &str)> = got.iter().map(|(r, m)| (*r, m.as_str())).collect();
            assert_eq!(got, want, "{previous_failed} {outcome:?}");
        }
    }
}
