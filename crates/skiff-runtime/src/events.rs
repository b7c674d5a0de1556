//! Recording core/v1 Events the way Kubernetes components do.
//!
//! [`EventRecorder::record`] never blocks: it hands the event to a background task over a
//! bounded channel (dropping it with a warning when the channel is full). That task runs
//! client-go's correlator before writing:
//! - **spam filter**: one source may write 25 events about one object at once, then one per
//!   5 minutes;
//! - **aggregation**: when 10 events about one object share source, type and reason but differ
//!   in message within 10 minutes, further ones are folded into a single event whose message
//!   starts with `(combined from similar events): `;
//! - **deduplication**: an event identical to one already written bumps that Event's `count`
//!   and `lastTimestamp` with a patch, so `kubectl describe` shows `(x3 over 12m)`.
//!
//! Event names are `<involved name>.<hex nanoseconds>`, in the involved object's namespace
//! (`default` for cluster-scoped objects).

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::{json, Map, Value};
use skiff_api::patch::PatchType;
use skiff_api::resources::{self, ResourceInfo};
use skiff_client::{Client, Scope};
use tokio::sync::{mpsc, oneshot};

/// How many events may wait for the writer before new ones are dropped.
pub const DEFAULT_QUEUE_CAPACITY: usize = 1000;
/// Entries kept per correlator cache, as in client-go.
const CACHE_ENTRIES: usize = 4096;
/// Similar events within this window count towards aggregation.
const AGGREGATE_WINDOW_NANOS: i128 = 600 * 1_000_000_000;
/// Distinct messages tolerated before similar events are aggregated.
const AGGREGATE_MAX_EVENTS: usize = 10;
/// Events one source may write about one object at once.
const SPAM_BURST: f64 = 25.0;
/// Refill rate of that allowance: one event per 5 minutes.
const SPAM_QPS: f64 = 1.0 / 300.0;
const AGGREGATE_PREFIX: &str = "(combined from similar events): ";

/// Whether an event reports normal operation or something the user should look at.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventType {
    /// `Normal`.
    Normal,
    /// `Warning`.
    Warning,
}

impl EventType {
    /// The API spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Normal => "Normal",
            EventType::Warning => "Warning",
        }
    }
}

/// Why an object cannot be referred to by an event.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ObjectRefError {
    /// A field every reference needs is missing.
    #[error("object has no {0}")]
    Missing(&'static str),
}

/// The object an event is about (a core/v1 `ObjectReference`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ObjectRef {
    /// `apiVersion` of the object.
    pub api_version: String,
    /// `kind` of the object.
    pub kind: String,
    /// Namespace, `None` for cluster-scoped objects.
    pub namespace: Option<String>,
    /// Name.
    pub name: String,
    /// UID, which tells incarnations of the same name apart.
    pub uid: Option<String>,
    /// The resourceVersion the event was about.
    pub resource_version: Option<String>,
    /// A part of the object, such as `spec.containers{app}`.
    pub field_path: Option<String>,
}

impl ObjectRef {
    /// A reference to a JSON object carrying `apiVersion`, `kind` and `metadata.name`.
    pub fn from_value(object: &Value) -> Result<ObjectRef, ObjectRefError> {
        fn text(v: Option<&Value>) -> Option<&str> {
            v.and_then(Value::as_str).filter(|s| !s.is_empty())
        }
        let meta = object.get("metadata");
        let field = |name: &str| text(meta.and_then(|m| m.get(name))).map(str::to_string);
        Ok(ObjectRef {
            api_version: text(object.get("apiVersion"))
                .ok_or(ObjectRefError::Missing("apiVersion"))?
                .to_string(),
            kind: text(object.get("kind"))
                .ok_or(ObjectRefError::Missing("kind"))?
                .to_string(),
            namespace: field("namespace"),
            name: field("name").ok_or(ObjectRefError::Missing("metadata.name"))?,
            uid: field("uid"),
            resource_version: field("resourceVersion"),
            field_path: None,
        })
    }

    /// A reference to a typed object; kind and apiVersion come from its type.
    pub fn from_object<K>(object: &K) -> Result<ObjectRef, ObjectRefError>
    where
        K: k8s_openapi::Resource + k8s_openapi::Metadata<Ty = ObjectMeta>,
    {
        let meta = object.metadata();
        let present = |s: &Option<String>| s.clone().filter(|s| !s.is_empty());
        Ok(ObjectRef {
            api_version: K::API_VERSION.to_string(),
            kind: K::KIND.to_string(),
            namespace: present(&meta.namespace),
            name: present(&meta.name).ok_or(ObjectRefError::Missing("metadata.name"))?,
            uid: present(&meta.uid),
            resource_version: present(&meta.resource_version),
            field_path: None,
        })
    }

    /// The same reference narrowed to a part of the object.
    pub fn with_field_path(mut self, field_path: &str) -> ObjectRef {
        self.field_path = Some(field_path.to_string());
        self
    }

    fn to_json(&self) -> Value {
        let mut out = Map::new();
        out.insert("kind".into(), json!(self.kind));
        if let Some(ns) = &self.namespace {
            out.insert("namespace".into(), json!(ns));
        }
        out.insert("name".into(), json!(self.name));
        if let Some(uid) = &self.uid {
            out.insert("uid".into(), json!(uid));
        }
        out.insert("apiVersion".into(), json!(self.api_version));
        if let Some(rv) = &self.resource_version {
            out.insert("resourceVersion".into(), json!(rv));
        }
        if let Some(path) = &self.field_path {
            out.insert("fieldPath".into(), json!(path));
        }
        Value::Object(out)
    }
}

/// Who reports events: `source.component` (and `reportingComponent`), e.g.
/// `deployment-controller`, and for node agents the node's name as `host`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventSource {
    /// The reporting component.
    pub component: String,
    /// The node the component runs on, for per-node components.
    pub host: Option<String>,
}

impl EventSource {
    /// A source without a host, as cluster-wide controllers report.
    pub fn component(component: &str) -> EventSource {
        EventSource {
            component: component.to_string(),
            host: None,
        }
    }
}

/// Wall-clock time for event timestamps; replaceable so correlation windows can be tested.
pub trait WallClock: Send + Sync {
    /// The current time.
    fn now(&self) -> Timestamp;
}

/// The system's clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl WallClock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}

/// Tuning of an [`EventRecorder`].
#[derive(Clone)]
pub struct RecorderOptions {
    /// Events buffered for the writer before new ones are dropped.
    pub queue_capacity: usize,
    /// Where event timestamps come from.
    pub clock: Arc<dyn WallClock>,
}

impl Default for RecorderOptions {
    fn default() -> Self {
        RecorderOptions {
            queue_capacity: DEFAULT_QUEUE_CAPACITY,
            clock: Arc::new(SystemClock),
        }
    }
}

/// One call to `record`, as the writer receives it.
struct Observation {
    involved: ObjectRef,
    event_type: EventType,
    reason: String,
    message: String,
    at: Timestamp,
}

enum Command {
    Record(Box<Observation>),
    Flush(oneshot::Sender<()>),
}

/// Records events about objects. Cloning is cheap; all clones feed the same writer, which
/// stops when the last clone is dropped.
#[derive(Clone)]
pub struct EventRecorder {
    sender: mpsc::Sender<Command>,
    clock: Arc<dyn WallClock>,
}

impl EventRecorder {
    /// A recorder writing through `client` as `source`; spawns its writer on the current
    /// tokio runtime.
    pub fn new(client: Arc<dyn Client>, source: EventSource) -> EventRecorder {
        Self::with_options(client, source, RecorderOptions::default())
    }

    /// A recorder with explicit tuning.
    pub fn with_options(
        client: Arc<dyn Client>,
        source: EventSource,
        options: RecorderOptions,
    ) -> EventRecorder {
        let (sender, receiver) = mpsc::channel(options.queue_capacity.max(1));
        tokio::spawn(write_events(client, source, receiver));
        EventRecorder {
            sender,
            clock: options.clock,
        }
    }

    /// Records that `reason` happened to `involved`. Returns at once; the event is written in
    /// the background, or dropped with a warning if the writer is too far behind.
    pub fn record(
        &self,
        involved: &ObjectRef,
        event_type: EventType,
        reason: &str,
        message: impl Into<String>,
    ) {
        let observation = Observation {
            involved: involved.clone(),
            event_type,
            reason: reason.to_string(),
            message: message.into(),
            at: self.clock.now(),
        };
        if let Err(e) = self.sender.try_send(Command::Record(Box::new(observation))) {
            let dropped = match &e {
                mpsc::error::TrySendError::Full(Command::Record(o))
                | mpsc::error::TrySendError::Closed(Command::Record(o)) => o.reason.as_str(),
                _ => "",
            };
            tracing::warn!(
                reason = dropped,
                "event writer is not keeping up, dropping event"
            );
        }
    }

    /// Waits until every event recorded before this call was written (or given up on).
    pub async fn flush(&self) {
        let (done, written) = oneshot::channel();
        if self.sender.send(Command::Flush(done)).await.is_ok() {
            let _ = written.await;
        }
    }
}

/// A small least-recently-used map, bounding the correlator's memory.
struct Lru<V> {
    entries: HashMap<String, (V, u64)>,
    tick: u64,
}

impl<V> Lru<V> {
    fn new() -> Self {
        Lru {
            entries: HashMap::new(),
            tick: 0,
        }
    }

    fn get_mut(&mut self, key: &str) -> Option<&mut V> {
        self.tick += 1;
        let tick = self.tick;
        self.entries.get_mut(key).map(|(v, used)| {
            *used = tick;
            v
        })
    }

    fn insert(&mut self, key: String, value: V) {
        self.tick += 1;
        self.entries.insert(key, (value, self.tick));
        if self.entries.len() > CACHE_ENTRIES {
            let oldest = self
                .entries
                .iter()
                .min_by_key(|(_, (_, used))| *used)
                .map(|(k, _)| k.clone());
            if let Some(oldest) = oldest {
                self.entries.remove(&oldest);
            }
        }
    }
}

struct TokenBucket {
    tokens: f64,
    last_nanos: i128,
}

struct AggregateRecord {
    messages: BTreeSet<String>,
    last_nanos: i128,
}

struct EventLog {
    name: String,
    first: Timestamp,
    count: u64,
}

/// A write the correlator decided on.
#[derive(Debug, PartialEq)]
enum Write {
    /// A new Event.
    Create(Value),
    /// An update of an existing Event; `fallback` creates it again if it is gone.
    Patch {
        namespace: String,
        name: String,
        patch: Value,
        fallback: Value,
    },
}

/// client-go's EventCorrelator: spam filter, aggregation and deduplication.
struct Correlator {
    source: EventSource,
    spam: Lru<TokenBucket>,
    aggregates: Lru<AggregateRecord>,
    log: Lru<EventLog>,
    last_name_nanos: i128,
}

fn rfc3339(at: Timestamp) -> String {
    at.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

impl Correlator {
    fn new(source: EventSource) -> Self {
        Correlator {
            source,
            spam: Lru::new(),
            aggregates: Lru::new(),
            log: Lru::new(),
            last_name_nanos: 0,
        }
    }

    /// A fresh, never reused name for an event about `involved_name`.
    fn fresh_name(&mut self, involved_name: &str, at: Timestamp) -> String {
        let nanos = at.as_nanosecond().max(self.last_name_nanos + 1);
        self.last_name_nanos = nanos;
        format!("{involved_name}.{nanos:x}")
    }

    /// Whether the source may still write about this object.
    fn allow(&mut self, spam_key: String, now_nanos: i128) -> bool {
        let bucket = match self.spam.get_mut(&spam_key) {
            Some(bucket) => bucket,
            None => {
                self.spam.insert(
                    spam_key.clone(),
                    TokenBucket {
                        tokens: SPAM_BURST,
                        last_nanos: now_nanos,
                    },
                );
                match self.spam.get_mut(&spam_key) {
                    Some(bucket) => bucket,
                    None => return true,
                }
            }
        };
        let elapsed = (now_nanos - bucket.last_nanos).max(0) as f64 / 1e9;
        bucket.tokens = (bucket.tokens + elapsed * SPAM_QPS).min(SPAM_BURST);
        bucket.last_nanos = now_nanos;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    fn correlate(&mut self, observation: Observation) -> Option<Write> {
        let Observation {
            involved,
            event_type,
            reason,
            message,
            at,
        } = observation;
        let now = at.as_nanosecond();
        let source = &self.source;
        let host = source.host.clone().unwrap_or_default();
        let object_key = [
            source.component.as_str(),
            &host,
            &involved.kind,
            involved.namespace.as_deref().unwrap_or(""),
            &involved.name,
            involved.uid.as_deref().unwrap_or(""),
            &involved.api_version,
        ]
        .join("\u{0}");
        let aggregate_key = [
            object_key.as_str(),
            event_type.as_str(),
            &reason,
            &source.component,
            &host,
        ]
        .join("\u{0}");
        let exact_key = [
            object_key.as_str(),
            involved.field_path.as_deref().unwrap_or(""),
            event_type.as_str(),
            &reason,
            &message,
        ]
        .join("\u{0}");

        // Aggregation: many similar events become one.
        let similar = match self.aggregates.get_mut(&aggregate_key) {
            Some(record) if now - record.last_nanos <= AGGREGATE_WINDOW_NANOS => record,
            _ => {
                self.aggregates.insert(
                    aggregate_key.clone(),
                    AggregateRecord {
                        messages: BTreeSet::new(),
                        last_nanos: now,
                    },
                );
                self.aggregates.get_mut(&aggregate_key)?
            }
        };
        similar.messages.insert(message.clone());
        similar.last_nanos = now;
        let (message, key) = if similar.messages.len() < AGGREGATE_MAX_EVENTS {
            (message, exact_key)
        } else {
            // Keep the set below the threshold so the next similar event aggregates too.
            similar.messages.pop_first();
            (format!("{AGGREGATE_PREFIX}{message}"), aggregate_key)
        };

        // Deduplication: the same event again bumps the existing Event.
        let (name, first, count) = match self.log.get_mut(&key) {
            Some(seen) => {
                seen.count += 1;
                (seen.name.clone(), seen.first, seen.count)
            }
            None => {
                let name = self.fresh_name(&involved.name, at);
                self.log.insert(
                    key,
                    EventLog {
                        name: name.clone(),
                        first: at,
                        count: 1,
                    },
                );
                (name, at, 1)
            }
        };

        if !self.allow(object_key, now) {
            tracing::debug!(reason, name, "event dropped by the spam filter");
            return None;
        }

        let namespace = involved
            .namespace
            .clone()
            .unwrap_or_else(|| "default".to_string());
        let mut source_json = json!({"component": self.source.component});
        if let Some(host) = &self.source.host {
            source_json["host"] = json!(host);
        }
        let body = json!({
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": name, "namespace": namespace},
            "involvedObject": involved.to_json(),
            "reason": reason,
            "message": message,
            "source": source_json,
            "firstTimestamp": rfc3339(first),
            "lastTimestamp": rfc3339(at),
            "count": count,
            "type": event_type.as_str(),
            "eventTime": null,
            "reportingComponent": self.source.component,
            "reportingInstance": self.source.host.clone().unwrap_or_default(),
        });
        Some(if count > 1 {
            Write::Patch {
                namespace,
                name,
                patch: json!({
                    "count": count,
                    "lastTimestamp": rfc3339(at),
                    "message": body["message"],
                }),
                fallback: body,
            }
        } else {
            Write::Create(body)
        })
    }
}

/// The writer task: correlates and writes events one at a time, in order.
async fn write_events(
    client: Arc<dyn Client>,
    source: EventSource,
    mut commands: mpsc::Receiver<Command>,
) {
    let events = resources::find("", "v1", "events");
    let mut correlator = Correlator::new(source);
    while let Some(command) = commands.recv().await {
        match command {
            Command::Flush(done) => {
                let _ = done.send(());
            }
            Command::Record(observation) => {
                let (Some(resource), Some(write)) = (events, correlator.correlate(*observation))
                else {
                    continue;
                };
                perform(&*client, resource, write).await;
            }
        }
    }
}

async fn perform(client: &dyn Client, resource: &'static ResourceInfo, write: Write) {
    let fallback = match write {
        Write::Create(body) => body,
        Write::Patch {
            namespace,
            name,
            patch,
            fallback,
        } => {
            let scope = Scope {
                resource,
                namespace: Some(&namespace),
            };
            match client
                .patch(scope, &name, PatchType::Merge, patch, false)
                .await
            {
                Ok(_) => return,
                // Someone deleted it (or it was never written): write it afresh.
                Err(e) if e.is_not_found() => fallback,
                Err(e) => {
                    tracing::warn!(name, "could not update event: {e}");
                    return;
                }
            }
        }
    };
    let namespace = fallback
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or("default")
        .to_string();
    let scope = Scope {
        resource,
        namespace: Some(&namespace),
    };
    match client.create(scope, fallback).await {
        Ok(_) => {}
        Err(e) if e.is_conflict() => tracing::debug!("event already exists: {e}"),
        Err(e) => tracing::warn!("could not write event: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod_ref() -> ObjectRef {
        ObjectRef {
            api_version: "v1".into(),
            kind: "Pod".into(),
            namespace: Some("ns".into()),
            name: "web-1".into(),
            uid: Some("u-1".into()),
            resource_version: Some("7".into()),
            field_path: None,
        }
    }

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + seconds).unwrap_or(Timestamp::UNIX_EPOCH)
    }

    fn observe(reason: &str, message: &str, seconds: i64) -> Observation {
        Observation {
            involved: pod_ref(),
            event_type: EventType::Warning,
            reason: reason.into(),
            message: message.into(),
            at: at(seconds),
        }
    }

    #[test]
    fn references_from_json_and_types() {
        let obj = json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"namespace": "ns", "name": "web", "uid": "u", "resourceVersion": "3"}});
        let r = ObjectRef::from_value(&obj);
        assert_eq!(
            r.as_ref().map(|r| (r.kind.as_str(), r.uid.as_deref())),
            Ok(("Deployment", Some("u")))
        );
        assert_eq!(
            ObjectRef::from_value(&json!({"kind": "Pod", "metadata": {"name": "a"}})),
            Err(ObjectRefError::Missing("apiVersion"))
        );
        let mut node = k8s_openapi::api::core::v1::Node::default();
        node.metadata.name = Some("n1".into());
        let r = ObjectRef::from_object(&node);
        assert_eq!(
            r.map(|r| (r.api_version, r.kind, r.namespace)),
            Ok(("v1".to_string(), "Node".to_string(), None))
        );
        assert_eq!(
            ObjectRef::from_object(&k8s_openapi::api::core::v1::Pod::default()),
            Err(ObjectRefError::Missing("metadata.name"))
        );
    }

    #[test]
    fn identical_events_patch_the_first_one() {
        let mut c = Correlator::new(EventSource::component("tester"));
        let first = c.correlate(observe("Failed", "boom", 0));
        let Some(Write::Create(body)) = first else {
            panic!("first event is created: {first:?}");
        };
        let name = body["metadata"]["name"].as_str().unwrap_or("").to_string();
        let second = c.correlate(observe("Failed", "boom", 60));
        assert_eq!(
            second,
            Some(Write::Patch {
                namespace: "ns".into(),
                name: name.clone(),
                patch: json!({"count": 2, "lastTimestamp": rfc3339(at(60)), "message": "boom"}),
                fallback: {
                    let mut b = body.clone();
                    b["count"] = json!(2);
                    b["lastTimestamp"] = json!(rfc3339(at(60)));
                    b
                },
            })
        );
        // A different message is a different event.
        assert!(matches!(
            c.correlate(observe("Failed", "other", 61)),
            Some(Write::Create(_))
        ));
    }

    #[test]
    fn names_are_unique_even_within_one_nanosecond() {
        let mut c = Correlator::new(EventSource::component("tester"));
        let a = c.fresh_name("x", at(0));
        let b = c.fresh_name("x", at(0));
        assert_ne!(a, b);
        assert_eq!(a, format!("x.{:x}", at(0).as_nanosecond()));
    }

    #[test]
    fn similar_events_aggregate_after_ten_within_the_window() {
        let mut c = Correlator::new(EventSource::component("tester"));
        let mut creates = 0;
        for i in 0..9 {
            match c.correlate(observe("Failed", &format!("m{i}"), i)) {
                Some(Write::Create(body)) => {
                    assert_eq!(body["message"], format!("m{i}"));
                    creates += 1;
                }
                other => panic!("event {i} is written as is: {other:?}"),
            }
        }
        assert_eq!(creates, 9);
        let Some(Write::Create(combined)) = c.correlate(observe("Failed", "m9", 9)) else {
            panic!("the tenth similar event starts an aggregate");
        };
        assert_eq!(combined["message"], "(combined from similar events): m9");
        let Some(Write::Patch { name, patch, .. }) = c.correlate(observe("Failed", "m10", 10))
        else {
            panic!("later similar events update the aggregate");
        };
        assert_eq!(name, combined["metadata"]["name"].as_str().unwrap_or(""));
        assert_eq!(patch["count"], 2);
        assert_eq!(patch["message"], "(combined from similar events): m10");
        // Another reason is not similar.
        assert!(matches!(
            c.correlate(observe("Other", "m11", 11)),
            Some(Write::Create(b)) if b["message"] == "m11"
        ));
    }

    #[test]
    fn the_aggregation_window_restarts_after_ten_minutes_of_quiet() {
        let mut c = Correlator::new(EventSource::component("tester"));
        for i in 0..9 {
            c.correlate(observe("Failed", &format!("m{i}"), i));
        }
        let later = c.correlate(observe("Failed", "m9", 9 + 601));
        assert!(matches!(later, Some(Write::Create(b)) if b["message"] == "m9"));
    }

    #[test]
    fn spam_filter_allows_a_burst_then_one_per_five_minutes() {
        let mut c = Correlator::new(EventSource::component("tester"));
        // Distinct reasons so neither aggregation nor dedup interferes.
        let written = (0..30)
            .filter(|i| c.correlate(observe(&format!("R{i}"), "m", 0)).is_some())
            .count();
        assert_eq!(written, 25);
        // Tokens trickle back: one whole token after 300 seconds.
        assert!(c.correlate(observe("Late", "m", 299)).is_none());
        assert!(c.correlate(observe("Later", "m", 301)).is_some());
        assert!(c.correlate(observe("Latest", "m", 302)).is_none());
    }
}
