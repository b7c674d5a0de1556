//! The event recorder writing through the real in-process API.

mod common;

use std::sync::{Arc, Mutex};

use jiff::{Timestamp, ToSpan};
use serde_json::{json, Value};
use skiff_api::resources;
use skiff_client::{Client, DeleteOptions, ListOptions, Scope};
use skiff_runtime::events::{
    EventRecorder, EventSource, EventType, ObjectRef, RecorderOptions, WallClock,
};

/// A clock the test moves by hand.
struct ManualClock(Mutex<Timestamp>);

impl ManualClock {
    fn advance(&self, seconds: i64) {
        if let Ok(mut now) = self.0.lock() {
            *now = now.checked_add(seconds.seconds()).unwrap_or(*now);
        }
    }
}

impl WallClock for ManualClock {
    fn now(&self) -> Timestamp {
        self.0.lock().map(|t| *t).unwrap_or(Timestamp::UNIX_EPOCH)
    }
}

const START: &str = "2024-05-01T12:00:00Z";

fn recorder(client: Arc<dyn Client>, source: EventSource) -> (EventRecorder, Arc<ManualClock>) {
    let start: Timestamp = START.parse().unwrap_or(Timestamp::UNIX_EPOCH);
    let clock = Arc::new(ManualClock(Mutex::new(start)));
    let options = RecorderOptions {
        clock: clock.clone(),
        ..RecorderOptions::default()
    };
    (EventRecorder::with_options(client, source, options), clock)
}

fn events_in(namespace: &str) -> Scope<'_> {
    Scope {
        resource: resources::find("", "v1", "events").expect("events are served"),
        namespace: Some(namespace),
    }
}

async fn list_events(client: &dyn Client, namespace: &str) -> Vec<Value> {
    client
        .list(events_in(namespace), &ListOptions::default())
        .await
        .expect("list events")
        .items
}

async fn configmap(client: &dyn Client) -> Value {
    let scope = Scope {
        resource: resources::find("", "v1", "configmaps").expect("configmaps are served"),
        namespace: Some("default"),
    };
    client
        .create(
            scope,
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings"}}),
        )
        .await
        .expect("create configmap")
}

#[tokio::test]
async fn identical_events_become_one_event_with_a_count() {
    let cluster = common::cluster().await;
    let client = &*cluster.client;
    let cm = configmap(client).await;
    let involved = ObjectRef::from_value(&cm).expect("reference");
    let (recorder, clock) = recorder(
        cluster.client.clone(),
        EventSource::component("settings-controller"),
    );
    recorder.record(
        &involved,
        EventType::Warning,
        "BadValue",
        "value v is not a number",
    );
    clock.advance(60);
    recorder.record(
        &involved,
        EventType::Warning,
        "BadValue",
        "value v is not a number",
    );
    clock.advance(660);
    recorder.record(
        &involved,
        EventType::Warning,
        "BadValue",
        "value v is not a number",
    );
    recorder.flush().await;

    let events = list_events(client, "default").await;
    assert_eq!(events.len(), 1, "{events:#?}");
    let event = &events[0];
    let name = event["metadata"]["name"].as_str().unwrap_or("");
    let (prefix, hex) = name.split_once('.').unwrap_or(("", ""));
    assert_eq!(prefix, "settings");
    assert_eq!(hex.len(), 16, "{name}");
    assert!(hex.chars().all(|c| c.is_ascii_hexdigit()), "{name}");
    assert_eq!(
        event["involvedObject"],
        json!({
            "kind": "ConfigMap",
            "namespace": "default",
            "name": "settings",
            "uid": cm["metadata"]["uid"],
            "apiVersion": "v1",
            "resourceVersion": cm["metadata"]["resourceVersion"],
        })
    );
    assert_eq!(event["count"], 3);
    assert_eq!(event["firstTimestamp"], START);
    assert_eq!(event["lastTimestamp"], "2024-05-01T12:12:00Z");
    assert_eq!(event["type"], "Warning");
    assert_eq!(event["reason"], "BadValue");
    assert_eq!(event["message"], "value v is not a number");
    assert_eq!(event["source"], json!({"component": "settings-controller"}));
    assert_eq!(event["reportingComponent"], "settings-controller");
}

#[tokio::test]
async fn cluster_scoped_objects_get_events_in_default() {
    let cluster = common::cluster().await;
    let (recorder, _clock) = recorder(
        cluster.client.clone(),
        EventSource {
            component: "kubelet".into(),
            host: Some("node-1".into()),
        },
    );
    let node = json!({"apiVersion": "v1", "kind": "Node",
        "metadata": {"name": "node-1", "uid": "n-uid"}});
    let involved = ObjectRef::from_value(&node).expect("reference");
    recorder.record(
        &involved,
        EventType::Normal,
        "NodeReady",
        "Node node-1 status is now: NodeReady",
    );
    recorder.flush().await;
    let events = list_events(&*cluster.client, "default").await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["involvedObject"]["kind"], "Node");
    assert!(events[0]["involvedObject"].get("namespace").is_none());
    assert_eq!(
        events[0]["source"],
        json!({"component": "kubelet", "host": "node-1"})
    );
    assert_eq!(events[0]["reportingInstance"], "node-1");
    assert_eq!(events[0]["count"], 1);
}

#[tokio::test]
async fn many_similar_events_are_combined() {
    let cluster = common::cluster().await;
    let cm = configmap(&*cluster.client).await;
    let involved = ObjectRef::from_value(&cm).expect("reference");
    let (recorder, clock) = recorder(cluster.client.clone(), EventSource::component("tester"));
    for i in 0..12 {
        recorder.record(
            &involved,
            EventType::Warning,
            "FailedSync",
            format!("attempt {i} failed"),
        );
        clock.advance(1);
    }
    recorder.flush().await;
    let events = list_events(&*cluster.client, "default").await;
    assert_eq!(events.len(), 10, "9 single events and one combined");
    let combined: Vec<&Value> = events
        .iter()
        .filter(|e| {
            e["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("(combined from similar events): "))
        })
        .collect();
    assert_eq!(combined.len(), 1);
    assert_eq!(combined[0]["count"], 3);
    assert_eq!(
        combined[0]["message"],
        "(combined from similar events): attempt 11 failed"
    );
}

#[tokio::test]
async fn a_deleted_event_is_written_again_with_its_count() {
    let cluster = common::cluster().await;
    let client = &*cluster.client;
    let cm = configmap(client).await;
    let involved = ObjectRef::from_value(&cm).expect("reference");
    let (recorder, _clock) = recorder(cluster.client.clone(), EventSource::component("tester"));
    recorder.record(&involved, EventType::Normal, "Synced", "ok");
    recorder.flush().await;
    let first = list_events(client, "default").await;
    let name = first[0]["metadata"]["name"]
        .as_str()
        .unwrap_or("")
        .to_string();
    client
        .delete(events_in("default"), &name, &DeleteOptions::default())
        .await
        .expect("delete event");
    recorder.record(&involved, EventType::Normal, "Synced", "ok");
    recorder.flush().await;
    let events = list_events(client, "default").await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["metadata"]["name"], name.as_str());
    assert_eq!(events[0]["count"], 2);
}

#[tokio::test(flavor = "current_thread")]
async fn recording_never_blocks_and_drops_what_does_not_fit() {
    let cluster = common::cluster().await;
    let cm = configmap(&*cluster.client).await;
    let involved = ObjectRef::from_value(&cm).expect("reference");
    let options = RecorderOptions {
        queue_capacity: 2,
        ..RecorderOptions::default()
    };
    let recorder = EventRecorder::with_options(
        cluster.client.clone(),
        EventSource::component("tester"),
        options,
    );
    // On this single-threaded runtime the writer cannot run until the test awaits, so only
    // the first two events fit in the queue; the rest are dropped without blocking.
    for i in 0..5 {
        recorder.record(&involved, EventType::Normal, &format!("Reason{i}"), "m");
    }
    recorder.flush().await;
    let mut reasons: Vec<String> = list_events(&*cluster.client, "default")
        .await
        .iter()
        .filter_map(|e| e["reason"].as_str().map(str::to_string))
        .collect();
    reasons.sort();
    assert_eq!(reasons, ["Reason0", "Reason1"]);
}
