//! What the controllers' asynchronous shells share: decoding cached objects, owner lookups, and
//! turning planner events into recorded Events.

use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde_json::Value;
use skiff_client::ClientError;
use skiff_runtime::{EventRecorder, EventType, ObjectRef};

use crate::deployment::{Event, EventType as PlannedType};

/// Decodes a cached object into its typed form; objects the cache holds were admitted by the
/// API server, so a failure means a newer schema and the object is skipped. It decodes from
/// the shared value in place: syncs decode whole namespaces of pods, and copying each one
/// first doubled that work.
pub fn typed<K: DeserializeOwned>(object: &Arc<Value>) -> Option<K> {
    match K::deserialize(&**object) {
        Ok(k) => Some(k),
        Err(e) => {
            tracing::warn!(error = %e, "skipping an object that does not decode");
            None
        }
    }
}

/// The controlling owner reference of an object: (kind, name, uid).
pub fn controller_of(object: &Value) -> Option<(&str, &str, &str)> {
    object
        .pointer("/metadata/ownerReferences")?
        .as_array()?
        .iter()
        .find(|r| r.get("controller").and_then(Value::as_bool) == Some(true))
        .and_then(|r| {
            Some((
                r.get("kind")?.as_str()?,
                r.get("name")?.as_str()?,
                r.get("uid")?.as_str()?,
            ))
        })
}

/// `namespace/name` of an object.
pub fn key_of(object: &Value) -> Option<String> {
    skiff_runtime::informer::object_key(object)
}

/// The namespace of an object, or "".
pub fn namespace_of(object: &Value) -> &str {
    object
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// Records the planner's events on `involved`.
pub fn record_events(recorder: &EventRecorder, involved: &Value, events: &[Event]) {
    let Ok(reference) = ObjectRef::from_value(involved) else {
        return;
    };
    for event in events {
        let event_type = match event.type_ {
            PlannedType::Normal => EventType::Normal,
            PlannedType::Warning => EventType::Warning,
        };
        recorder.record(&reference, event_type, &event.reason, event.message.clone());
    }
}

/// The current time as planners take it.
pub fn now() -> jiff::Timestamp {
    jiff::Timestamp::now()
}

/// A client error the work queue retries.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// A write failed.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// The planner stopped early.
    #[error("{0}")]
    Plan(String),
    /// An object could not be encoded.
    #[error("encoding: {0}")]
    Encode(#[from] serde_json::Error),
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Pod;
    use serde_json::json;

    #[test]
    fn typed_decodes_admitted_objects_and_skips_undecodable_ones() {
        let pod = Arc::new(json!({
            "metadata": {"name": "p", "labels": {"app": "web"}},
            "spec": {"containers": [{"name": "c", "image": "i"}]},
        }));
        let decoded: Pod = typed(&pod).expect("a valid pod decodes");
        assert_eq!(decoded.metadata.name.as_deref(), Some("p"));
        assert_eq!(
            decoded.spec.map(|s| s.containers[0].image.clone()),
            Some(Some("i".to_string()))
        );
        let broken = Arc::new(json!({"metadata": {"name": 5}}));
        assert!(typed::<Pod>(&broken).is_none());
    }
}
