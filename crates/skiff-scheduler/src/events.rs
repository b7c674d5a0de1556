//! The events the scheduler reports about pods (`Scheduled`, `FailedScheduling`), written as
//! kube-scheduler 1.36 writes them: through `events.k8s.io/v1`, reported by the controller
//! `default-scheduler` from the instance `default-scheduler-<host name>`, with repeats folded
//! into a `series` as client-go's events library folds them.
//!
//! The library's correlation is [`SeriesCorrelator`], pure with time passed in; the
//! [`ClientEventRecorder`] only writes what it decides.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use async_trait::async_trait;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::Pod;
use serde_json::{json, Value};
use skiff_api::patch::PatchType;
use skiff_api::resources::{self, ResourceInfo};
use skiff_client::{Client, Scope};

use crate::planner::DEFAULT_SCHEDULER_NAME;

/// How many distinct events the recorder remembers for folding repeats, so the memory stays
/// bounded even if the upkeep falls behind.
const MAX_REMEMBERED_EVENTS: usize = 4096;

/// How long after its last occurrence an event stops collecting repeats (the events
/// library's `finishTime`).
pub const FINISH_AFTER: Duration = Duration::from_secs(6 * 60);

/// How often open series are written again, so their Events outlive the server's event TTL
/// (the events library's `refreshTime`).
pub const REFRESH_EVERY: Duration = Duration::from_secs(30 * 60);

/// The API version events are written in.
pub const EVENTS_API_VERSION: &str = "events.k8s.io/v1";

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

/// The instance kube-scheduler reports: the scheduler's name, a dash and the host name.
pub fn reporting_instance(host_name: &str) -> String {
    format!("{DEFAULT_SCHEDULER_NAME}-{host_name}")
}

/// A time as a `MicroTime`, which the API writes with exactly six fractional digits.
pub fn micro_time(at: Timestamp) -> String {
    format!("{at:.6}")
}

/// The name the events library gives a new Event: the regarding object's name and the time in
/// nanoseconds, in hexadecimal.
pub fn event_name(pod_name: &str, at: Timestamp) -> String {
    format!("{pod_name}.{:x}", at.as_nanosecond())
}

/// A new `events.k8s.io/v1` Event as the events library makes it: no series yet, no
/// deprecated fields.
pub fn event_object(event: &PodEvent, name: &str, at: Timestamp, instance: &str) -> Value {
    json!({
        "apiVersion": EVENTS_API_VERSION,
        "kind": "Event",
        "metadata": {"name": name, "namespace": event.namespace},
        "eventTime": micro_time(at),
        "reportingController": DEFAULT_SCHEDULER_NAME,
        "reportingInstance": instance,
        "action": event.action,
        "reason": event.reason,
        "regarding": {
            "apiVersion": "v1",
            "kind": "Pod",
            "namespace": event.namespace,
            "name": event.name,
            "uid": event.uid,
            "resourceVersion": event.resource_version,
        },
        "note": event.message,
        "type": event.event_type,
    })
}

/// What makes two events one series in the events library: the action, the reason, the
/// reporting controller and the regarding object (the note is not part of it: a repeat with
/// another note joins the first one's series).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct SeriesKey {
    action: &'static str,
    reason: &'static str,
    namespace: String,
    name: String,
    uid: String,
    resource_version: String,
}

impl SeriesKey {
    fn of(event: &PodEvent) -> SeriesKey {
        SeriesKey {
            action: event.action,
            reason: event.reason,
            namespace: event.namespace.clone(),
            name: event.name.clone(),
            uid: event.uid.clone(),
            resource_version: event.resource_version.clone(),
        }
    }
}

/// A series of repeats: how many occurrences and when the last one was seen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Series {
    /// Occurrences so far, the first included.
    pub count: i64,
    /// The last occurrence.
    pub last_observed: Timestamp,
}

/// An event remembered for folding its repeats.
#[derive(Clone, Debug)]
struct Remembered {
    /// The Event as first written.
    object: Value,
    event_time: Timestamp,
    series: Option<Series>,
}

/// One write the correlator asks for.
#[derive(Clone, Debug, PartialEq)]
pub enum EventWrite {
    /// Create this Event.
    Create(Value),
    /// Patch the Event's `series`; create `object` (with the series) if it is gone.
    Series {
        /// The Event as first written, with the series set.
        object: Value,
        /// The series to write.
        series: Series,
    },
}

impl EventWrite {
    /// The Event a write concerns, as it should be once written.
    pub fn object(&self) -> &Value {
        match self {
            EventWrite::Create(object) | EventWrite::Series { object, .. } => object,
        }
    }
}

/// The merge patch setting an Event's series.
pub fn series_patch(series: &Series) -> Value {
    json!({"series": {"count": series.count,
        "lastObservedTime": micro_time(series.last_observed)}})
}

fn with_series(object: &Value, series: &Series) -> Value {
    let mut object = object.clone();
    object["series"] = series_patch(series)["series"].clone();
    object
}

/// The events library's correlation, pure: the first occurrence of an event is created; the
/// second turns it into a series of 2, written at once; later ones only count, and are written
/// when the series is refreshed or finishes.
#[derive(Debug, Default)]
pub struct SeriesCorrelator {
    remembered: HashMap<SeriesKey, Remembered>,
}

impl SeriesCorrelator {
    /// What recording `event` at `now` writes, if anything; `instance` is the reporting
    /// instance of a new Event.
    pub fn observe(
        &mut self,
        event: &PodEvent,
        now: Timestamp,
        instance: &str,
    ) -> Option<EventWrite> {
        let key = SeriesKey::of(event);
        if let Some(known) = self.remembered.get_mut(&key) {
            return match known.series.as_mut() {
                Some(series) => {
                    series.count = series.count.saturating_add(1);
                    series.last_observed = now;
                    None
                }
                None => {
                    let series = Series {
                        count: 2,
                        last_observed: now,
                    };
                    known.series = Some(series.clone());
                    Some(EventWrite::Series {
                        object: with_series(&known.object, &series),
                        series,
                    })
                }
            };
        }
        if self.remembered.len() >= MAX_REMEMBERED_EVENTS {
            self.remembered.clear();
        }
        let object = event_object(event, &event_name(&event.name, now), now, instance);
        self.remembered.insert(
            key,
            Remembered {
                object: object.clone(),
                event_time: now,
                series: None,
            },
        );
        Some(EventWrite::Create(object))
    }

    /// The library's periodic finish at `now`: a series last seen more than [`FINISH_AFTER`]
    /// ago is written one last time and forgotten, as is (without a write) a single event
    /// that old.
    pub fn finish(&mut self, now: Timestamp) -> Vec<EventWrite> {
        let Ok(cutoff) = now.checked_sub(FINISH_AFTER) else {
            return Vec::new();
        };
        let mut writes = Vec::new();
        self.remembered.retain(|_, known| match &known.series {
            Some(series) if series.last_observed < cutoff => {
                writes.push(EventWrite::Series {
                    object: with_series(&known.object, series),
                    series: series.clone(),
                });
                false
            }
            Some(_) => true,
            None => known.event_time >= cutoff,
        });
        writes
    }

    /// The library's periodic refresh: every open series is written with its current count.
    pub fn refresh(&self) -> Vec<EventWrite> {
        self.remembered
            .values()
            .filter_map(|known| {
                let series = known.series.as_ref()?;
                Some(EventWrite::Series {
                    object: with_series(&known.object, series),
                    series: series.clone(),
                })
            })
            .collect()
    }
}

/// Writes events as `events.k8s.io/v1` Events through the client, folding repeats as the
/// events library does.
pub struct ClientEventRecorder {
    client: Arc<dyn Client>,
    instance: String,
    correlator: Mutex<SeriesCorrelator>,
}

impl ClientEventRecorder {
    /// A recorder writing through `client`, reporting `instance`.
    pub fn new(client: Arc<dyn Client>, instance: String) -> ClientEventRecorder {
        ClientEventRecorder {
            client,
            instance,
            correlator: Mutex::new(SeriesCorrelator::default()),
        }
    }

    fn correlator(&self) -> std::sync::MutexGuard<'_, SeriesCorrelator> {
        self.correlator
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Finishes and refreshes series on the library's schedule while the recorder lives.
    pub fn spawn_upkeep(self: &Arc<Self>) {
        let recorder: Weak<ClientEventRecorder> = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut finish = tokio::time::interval(FINISH_AFTER);
            let mut refresh = tokio::time::interval(REFRESH_EVERY);
            // Both intervals tick at once first; nothing is due then.
            finish.tick().await;
            refresh.tick().await;
            loop {
                let writes = tokio::select! {
                    _ = finish.tick() => {
                        let Some(recorder) = recorder.upgrade() else { return };
                        let writes = recorder.correlator().finish(Timestamp::now());
                        (recorder, writes)
                    }
                    _ = refresh.tick() => {
                        let Some(recorder) = recorder.upgrade() else { return };
                        let writes = recorder.correlator().refresh();
                        (recorder, writes)
                    }
                };
                let (recorder, writes) = writes;
                for write in writes {
                    recorder.write(write).await;
                }
            }
        });
    }

    async fn write(&self, write: EventWrite) {
        let Some(resource) = events_resource() else {
            return;
        };
        let object = write.object();
        let namespace = object
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let scope = Scope {
            resource,
            namespace: Some(&namespace),
        };
        if let EventWrite::Series { series, object } = &write {
            let name = object
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or_default();
            match self
                .client
                .patch(scope, name, PatchType::Merge, series_patch(series), false)
                .await
            {
                Ok(_) => return,
                // The Event expired or was deleted: it is written anew, as the library does.
                Err(e) if e.is_not_found() => {}
                Err(e) => {
                    tracing::warn!(error = %e, "updating event failed");
                    return;
                }
            }
        }
        if let Err(e) = self.client.create(scope, write.object().clone()).await {
            tracing::warn!(error = %e, "writing event failed");
        }
    }
}

fn events_resource() -> Option<&'static ResourceInfo> {
    resources::find("events.k8s.io", "v1", "events")
}

#[async_trait]
impl EventRecorder for ClientEventRecorder {
    async fn record(&self, event: PodEvent) {
        let write = self
            .correlator()
            .observe(&event, Timestamp::now(), &self.instance);
        if let Some(write) = write {
            self.write(write).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> Timestamp {
        text.parse().expect("a timestamp")
    }

    fn failed(resource_version: &str, message: &str) -> PodEvent {
        PodEvent {
            namespace: "demo".into(),
            name: "web-0".into(),
            uid: "u-1".into(),
            resource_version: resource_version.into(),
            event_type: "Warning",
            reason: "FailedScheduling",
            action: "Scheduling",
            message: message.into(),
        }
    }

    #[test]
    fn a_new_event_has_kube_schedulers_fields_in_the_events_k8s_io_shape() {
        let event = PodEvent {
            reason: "Scheduled",
            action: "Binding",
            event_type: "Normal",
            ..failed("41", "Successfully assigned demo/web-0 to node-1")
        };
        let now = at("2026-12-06T10:44:28.716748123Z");
        let object = event_object(
            &event,
            &event_name("web-0", now),
            now,
            &reporting_instance("vm"),
        );
        assert_eq!(
            object,
            json!({
                "apiVersion": "events.k8s.io/v1",
                "kind": "Event",
                "metadata": {"name": "web-0.18eea4399cb72d5b", "namespace": "demo"},
                "eventTime": "2026-12-06T10:44:28.716748Z",
                "reportingController": "default-scheduler",
                "reportingInstance": "default-scheduler-vm",
                "action": "Binding",
                "reason": "Scheduled",
                "regarding": {"apiVersion": "v1", "kind": "Pod", "namespace": "demo",
                    "name": "web-0", "uid": "u-1", "resourceVersion": "41"},
                "note": "Successfully assigned demo/web-0 to node-1",
                "type": "Normal",
            })
        );
    }

    #[test]
    fn micro_times_always_carry_six_fractional_digits() {
        assert_eq!(
            micro_time(at("2026-12-06T10:44:28Z")),
            "2026-12-06T10:44:28.000000Z"
        );
        assert_eq!(
            micro_time(at("2026-12-06T10:44:28.5Z")),
            "2026-12-06T10:44:28.500000Z"
        );
    }

    #[test]
    fn the_second_occurrence_starts_a_series_of_two_and_later_ones_only_count() {
        let mut correlator = SeriesCorrelator::default();
        let first = correlator
            .observe(&failed("7", "0/2 nodes"), at("2026-12-06T10:00:00Z"), "i")
            .expect("the first occurrence is written");
        let EventWrite::Create(created) = &first else {
            panic!("the first occurrence is a create: {first:?}");
        };
        assert!(created.get("series").is_none(), "{created}");

        // The note is not part of the key: a new message joins the series.
        let second = correlator
            .observe(&failed("7", "0/3 nodes"), at("2026-12-06T10:00:10Z"), "i")
            .expect("the second occurrence is written");
        let EventWrite::Series { object, series } = &second else {
            panic!("the second occurrence patches the series: {second:?}");
        };
        assert_eq!(series.count, 2);
        assert_eq!(
            series_patch(series),
            json!({"series": {"count": 2, "lastObservedTime": "2026-12-06T10:00:10.000000Z"}})
        );
        assert_eq!(object["metadata"]["name"], created["metadata"]["name"]);
        assert_eq!(object["note"], "0/2 nodes");
        assert_eq!(object["series"]["count"], 2);

        assert_eq!(
            correlator.observe(&failed("7", "0/3 nodes"), at("2026-12-06T10:00:20Z"), "i"),
            None,
            "a third occurrence is only counted"
        );
        let refreshed = correlator.refresh();
        assert_eq!(refreshed.len(), 1);
        let EventWrite::Series { series, .. } = &refreshed[0] else {
            panic!("a refresh patches series: {refreshed:?}");
        };
        assert_eq!(series.count, 3);
        assert_eq!(series.last_observed, at("2026-12-06T10:00:20Z"));
    }

    #[test]
    fn another_pod_version_or_reason_is_another_event() {
        let mut correlator = SeriesCorrelator::default();
        let now = at("2026-12-06T10:00:00Z");
        assert!(matches!(
            correlator.observe(&failed("7", "m"), now, "i"),
            Some(EventWrite::Create(_))
        ));
        assert!(matches!(
            correlator.observe(&failed("8", "m"), now, "i"),
            Some(EventWrite::Create(_))
        ));
        let scheduled = PodEvent {
            reason: "Scheduled",
            action: "Binding",
            ..failed("8", "m")
        };
        assert!(matches!(
            correlator.observe(&scheduled, now, "i"),
            Some(EventWrite::Create(_))
        ));
    }

    #[test]
    fn finished_series_are_written_once_more_and_forgotten() {
        let mut correlator = SeriesCorrelator::default();
        let start = at("2026-12-06T10:00:00Z");
        correlator.observe(&failed("7", "m"), start, "i");
        correlator.observe(&failed("7", "m"), at("2026-12-06T10:01:00Z"), "i");
        correlator.observe(&failed("7", "m"), at("2026-12-06T10:02:00Z"), "i");
        correlator.observe(&failed("9", "single"), start, "i");
        assert!(
            correlator.finish(at("2026-12-06T10:07:59Z")).is_empty(),
            "the series was seen less than six minutes ago"
        );
        let finished = correlator.finish(at("2026-12-06T10:08:01Z"));
        assert_eq!(finished.len(), 1, "{finished:?}");
        assert_eq!(finished[0].object()["series"]["count"], 3);
        assert!(correlator.remembered.is_empty(), "both are forgotten");
        // Forgotten, the next occurrence is a new Event.
        assert!(matches!(
            correlator.observe(&failed("7", "m"), at("2026-12-06T10:09:00Z"), "i"),
            Some(EventWrite::Create(_))
        ));
    }
}
