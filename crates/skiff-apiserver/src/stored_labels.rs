//! Objects' labels kept parsed by the store beside their bytes.
//!
//! A label selector needs only `metadata.labels`, yet a list selecting by label would otherwise
//! parse the metadata of every stored object under the prefix, matching or not. The registry
//! installs [`LabelExtractor`] in the store, which then keeps each current object's labels as
//! [`StoredLabels`] (recomputed on every write, so never stale), and the list path asks
//! [`label_verdict`] first. The store stays ignorant of what the extracted part means.

use serde_json::{Map, Value};
use skiff_store::{Extracted, KeyValue, ValueExtractor};

use crate::filter::Filter;

/// An object's `metadata.labels`, parsed when the object was written. An object without labels,
/// or whose labels are not a map, has an empty map, as a label selector sees it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StoredLabels(pub Map<String, Value>);

/// The only part of a stored object [`LabelExtractor`] reads; everything else is skipped
/// while parsing without being built.
#[derive(serde::Deserialize)]
struct LabelsOnly {
    #[serde(default)]
    metadata: MetadataLabels,
}

#[derive(Default, serde::Deserialize)]
struct MetadataLabels {
    #[serde(default)]
    labels: Value,
}

/// Parses stored objects' `metadata.labels` into [`StoredLabels`] for the store to keep.
#[derive(Clone, Copy, Debug, Default)]
pub struct LabelExtractor;

impl LabelExtractor {
    /// The labels of one stored object, or `None` when its bytes are not an object with an
    /// object `metadata` (readers then parse it themselves and report what is wrong).
    pub fn labels(value: &[u8]) -> Option<StoredLabels> {
        let only: LabelsOnly = serde_json::from_slice(value).ok()?;
        Some(StoredLabels(match only.metadata.labels {
            Value::Object(labels) => labels,
            _ => Map::new(),
        }))
    }
}

impl ValueExtractor for LabelExtractor {
    fn extract(&self, _key: &str, value: &[u8]) -> Option<Extracted> {
        Self::labels(value).map(Extracted::new)
    }
}

/// What the labels the store keeps for `kv` say about `filter`'s label selector: `Some(true)`
/// if they satisfy it (or there is none), `Some(false)` if they do not, `None` when the store
/// keeps no labels for this value and the caller must parse it.
pub fn label_verdict(filter: &Filter, kv: &KeyValue) -> Option<bool> {
    let labels = kv.extracted.as_ref()?.downcast_ref::<StoredLabels>()?;
    Some(filter.labels_match(&labels.0))
}

#[cfg(test)]
mod tests;
