//! Placeholder printing (name and age only) until the full column sets land.
#![allow(missing_docs)]
use crate::resources::ResourceInfo;
use serde_json::{json, Value};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IncludeObject { None, Metadata, Object }
impl IncludeObject {
    pub fn parse(v: Option<&str>) -> IncludeObject {
        match v { Some("None") => IncludeObject::None, Some("Object") => IncludeObject::Object, _ => IncludeObject::Metadata }
    }
}
pub fn table(_r: &ResourceInfo, objects: &[Value], include: IncludeObject, _now: jiff::Timestamp) -> Value {
    let rows: Vec<Value> = objects.iter().map(|o| {
        let mut row = json!({"cells": [o.pointer("/metadata/name").cloned().unwrap_or(Value::Null), "0s"]});
        match include {
            IncludeObject::None => {}
            IncludeObject::Object => row["object"] = o.clone(),
            IncludeObject::Metadata => row["object"] = json!({"kind":"PartialObjectMetadata","apiVersion":"meta.k8s.io/v1","metadata":o.get("metadata").cloned().unwrap_or(json!({}))}),
        }
        row
    }).collect();
    json!({"kind":"Table","apiVersion":"meta.k8s.io/v1","metadata":{},
      "columnDefinitions":[{"name":"Name","type":"string","format":"name","description":"","priority":0},{"name":"Age","type":"string","format":"","description":"","priority":0}],
      "rows": rows})
}
