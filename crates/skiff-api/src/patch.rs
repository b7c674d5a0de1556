//! Placeholder patching (merge patch only) until the full implementation lands.
#![allow(missing_docs)]
use crate::resources::ResourceInfo;
use serde_json::Value;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PatchType { Json, Merge, StrategicMerge, Apply }
impl PatchType {
    pub fn from_content_type(ct: &str) -> Option<PatchType> {
        match ct.split(';').next().unwrap_or("").trim() {
            "application/json-patch+json" => Some(PatchType::Json),
            "application/merge-patch+json" => Some(PatchType::Merge),
            "application/strategic-merge-patch+json" => Some(PatchType::StrategicMerge),
            "application/apply-patch+yaml" => Some(PatchType::Apply),
            _ => None,
        }
    }
}
#[derive(Debug, thiserror::Error)]
pub enum PatchError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Unsupported(String),
}
fn merge(target: &mut Value, patch: &Value) {
    if let Value::Object(p) = patch {
        if !target.is_object() { *target = Value::Object(Default::default()); }
        let t = target.as_object_mut().unwrap();
        for (k, v) in p {
            if v.is_null() { t.remove(k); } else { merge(t.entry(k.clone()).or_insert(Value::Null), v); }
        }
    } else { *target = patch.clone(); }
}
pub fn apply_patch(_r: &ResourceInfo, target: &Value, pt: PatchType, patch: &Value) -> Result<Value, PatchError> {
    match pt {
        PatchType::Json => Err(PatchError::Unsupported("json patch".into())),
        _ => { let mut t = target.clone(); merge(&mut t, patch); Ok(t) }
    }
}
