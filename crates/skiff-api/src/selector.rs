//! Placeholder selectors (equality only) until the full implementation lands.
#![allow(missing_docs)]
use crate::resources::ResourceInfo;
use serde_json::Value;

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SelectorError(String);

#[derive(Clone, Debug)]
pub struct LabelSelector(Vec<(String, String)>);
impl LabelSelector {
    pub fn parse(s: &str) -> Result<LabelSelector, SelectorError> {
        let mut out = Vec::new();
        for part in s.split(',') {
            let (k, v) = part.split_once('=').ok_or_else(|| SelectorError(part.to_string()))?;
            out.push((k.trim().to_string(), v.trim_start_matches('=').trim().to_string()));
        }
        Ok(LabelSelector(out))
    }
    pub fn from_label_selector(sel: &Value) -> Result<LabelSelector, SelectorError> {
        let mut out: Vec<(String, String)> = sel.get("matchLabels").and_then(Value::as_object).map(|m| m.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string())).collect()).unwrap_or_default();
        out.sort();
        Ok(LabelSelector(out))
    }
    pub fn matches_object(&self, obj: &Value) -> bool {
        self.0.iter().all(|(k, v)| obj.pointer("/metadata/labels").and_then(|l| l.get(k)).and_then(Value::as_str) == Some(v))
    }
}
#[derive(Clone, Debug)]
pub struct FieldSelector(Vec<(String, String)>);
impl FieldSelector {
    pub fn parse(s: &str) -> Result<FieldSelector, SelectorError> {
        let mut out = Vec::new();
        for part in s.split(',') {
            let (k, v) = part.split_once('=').ok_or_else(|| SelectorError(part.to_string()))?;
            out.push((k.trim().to_string(), v.trim_start_matches('=').trim().to_string()));
        }
        Ok(FieldSelector(out))
    }
    pub fn validate_for(&self, _r: &ResourceInfo) -> Result<(), SelectorError> { Ok(()) }
    pub fn matches(&self, _r: &ResourceInfo, obj: &Value) -> bool {
        self.0.iter().all(|(k, v)| {
            let p = format!("/{}", k.replace('.', "/"));
            obj.pointer(&p).and_then(Value::as_str).unwrap_or("") == v
        })
    }
}

impl std::fmt::Display for LabelSelector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(","))
    }
}
