//! The patch formats of `PATCH` requests: JSON Patch (RFC 6902), JSON Merge Patch (RFC 7386),
//! strategic merge patch and a simplified server-side apply.
//!
//! kubectl chooses the format per command (apply and set/rollout use strategic merge, label and
//! scale use merge patch, rollout undo uses JSON Patch, `apply --server-side` uses apply), so the
//! server must speak all four, with Kubernetes' status codes for each kind of failure.

pub(crate) mod schema;
pub(crate) mod strategic;

use serde_json::Value;

use crate::resources::ResourceInfo;

use schema::{schema_for, Schema};

/// The most operations Kubernetes accepts in one JSON Patch.
pub const MAX_JSON_PATCH_OPERATIONS: usize = 10_000;

/// The most bytes the `copy` operations of one JSON Patch may add to a document, as
/// Kubernetes bounds them (its `JSONPatchMaxCopyBytes`, the request body limit of 3 MiB):
/// without it, a chain of copies that each double a value grows memory exponentially.
pub const MAX_JSON_PATCH_COPY_BYTES: usize = 3 * 1024 * 1024;

/// The message Kubernetes sends for every 422 a patch causes; the underlying detail stays in
/// the server log.
const UNPROCESSABLE_MESSAGE: &str =
    "the server rejected our request due to an error in our request";

/// A patch format, chosen by the request's `Content-Type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PatchType {
    /// `application/json-patch+json`: a list of RFC 6902 operations.
    Json,
    /// `application/merge-patch+json`: RFC 7386; `null` deletes, lists are replaced.
    Merge,
    /// `application/strategic-merge-patch+json`: merge patch that merges lists by key.
    StrategicMerge,
    /// `application/apply-patch+yaml`: server-side apply of a full desired object.
    Apply,
}

impl PatchType {
    const ALL: [PatchType; 4] = [
        PatchType::Json,
        PatchType::Merge,
        PatchType::StrategicMerge,
        PatchType::Apply,
    ];

    /// The patch type a `Content-Type` header names, ignoring parameters such as
    /// `; charset=utf-8`; `None` for anything else (the server answers 415).
    pub fn from_content_type(ct: &str) -> Option<PatchType> {
        let media_type = ct.split(';').next().unwrap_or_default().trim();
        PatchType::ALL
            .into_iter()
            .find(|t| t.content_type().eq_ignore_ascii_case(media_type))
    }

    /// The media type naming this format.
    pub fn content_type(self) -> &'static str {
        match self {
            PatchType::Json => "application/json-patch+json",
            PatchType::Merge => "application/merge-patch+json",
            PatchType::StrategicMerge => "application/strategic-merge-patch+json",
            PatchType::Apply => "application/apply-patch+yaml",
        }
    }
}

/// The patch types a resource accepts, in the order Kubernetes lists them in a 415: built-in
/// kinds take all four, custom resources all but strategic merge.
pub fn supported_patch_types(resource: &ResourceInfo) -> &'static [PatchType] {
    if schema_for(resource).is_some() {
        &[
            PatchType::Json,
            PatchType::Merge,
            PatchType::StrategicMerge,
            PatchType::Apply,
        ]
    } else {
        &[PatchType::Json, PatchType::Merge, PatchType::Apply]
    }
}

/// Why a patch could not be applied. Each variant maps to the status Kubernetes answers with;
/// see [`PatchError::code`], [`PatchError::reason`] and [`PatchError::status_message`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PatchError {
    /// The content type is not accepted for this resource (strategic merge patch on a custom
    /// resource, or an unknown type): 415.
    #[error("the body of the request was in an unknown format - accepted media types include: {}", .accepted.join(", "))]
    UnsupportedMediaType {
        /// The media types the resource accepts.
        accepted: Vec<&'static str>,
    },
    /// The patch document is not of the shape its format requires: 400.
    #[error("{0}")]
    MalformedPatch(String),
    /// A JSON Patch operation failed (failed `test`, missing path, bad operation): 422.
    #[error("{0}")]
    JsonPatchFailed(String),
    /// The patch is well formed but cannot apply to this object (lists of lists): 422.
    #[error("{0}")]
    Unprocessable(String),
    /// More JSON Patch operations than Kubernetes allows: 413.
    #[error("The allowed maximum operations in a JSON patch is {max}, got {got}")]
    TooManyOperations {
        /// The limit.
        max: usize,
        /// How many the patch had.
        got: usize,
    },
    /// A strategic merge failure Kubernetes does not classify (missing merge key, order
    /// mismatch, unknown directive): it answers 500 with this message.
    #[error("{0}")]
    MergeFailed(String),
}

impl PatchError {
    /// The 415 error for a resource, listing what it accepts.
    pub fn unsupported_media_type(resource: &ResourceInfo) -> PatchError {
        PatchError::UnsupportedMediaType {
            accepted: supported_patch_types(resource)
                .iter()
                .map(|t| t.content_type())
                .collect(),
        }
    }

    /// The HTTP status code Kubernetes answers with.
    pub fn code(&self) -> u16 {
        match self {
            PatchError::UnsupportedMediaType { .. } => 415,
            PatchError::MalformedPatch(_) => 400,
            PatchError::JsonPatchFailed(_) | PatchError::Unprocessable(_) => 422,
            PatchError::TooManyOperations { .. } => 413,
            PatchError::MergeFailed(_) => 500,
        }
    }

    /// The `Status.reason`; empty for the unclassified 500, as Kubernetes leaves it.
    pub fn reason(&self) -> &'static str {
        match self {
            PatchError::UnsupportedMediaType { .. } => "UnsupportedMediaType",
            PatchError::MalformedPatch(_) => "BadRequest",
            PatchError::JsonPatchFailed(_) | PatchError::Unprocessable(_) => "Invalid",
            PatchError::TooManyOperations { .. } => "RequestEntityTooLarge",
            PatchError::MergeFailed(_) => "",
        }
    }

    /// The `Status.message` Kubernetes sends. For 422s it is a fixed sentence, not the detail
    /// (which `Display` gives, for logs).
    pub fn status_message(&self) -> String {
        match self {
            PatchError::JsonPatchFailed(_) | PatchError::Unprocessable(_) => {
                UNPROCESSABLE_MESSAGE.to_string()
            }
            other => other.to_string(),
        }
    }
}

/// Decodes a request body for `patch_type`: JSON for the three patch formats, YAML (of which
/// JSON is a subset) for apply. Errors carry Kubernetes' 400 messages.
pub fn decode_patch_body(patch_type: PatchType, body: &[u8]) -> Result<Value, PatchError> {
    match patch_type {
        PatchType::Apply => crate::yaml::from_slice(body)
            .map_err(|e| PatchError::MalformedPatch(format!("error encoding patch: {e}"))),
        _ => serde_json::from_slice(body)
            .map_err(|_| PatchError::MalformedPatch("invalid JSON patch".to_string())),
    }
}

/// Applies `patch` of `patch_type` to `target` (the current object of `resource`, in Kubernetes
/// JSON form) and returns the patched object. The target is not modified. Validation,
/// defaulting and the "object absent" case of apply are the caller's.
pub fn apply_patch(
    resource: &ResourceInfo,
    target: &Value,
    patch_type: PatchType,
    patch: &Value,
) -> Result<Value, PatchError> {
    match patch_type {
        PatchType::Json => apply_json_patch(target, patch),
        PatchType::Merge => apply_merge_patch(target, patch),
        PatchType::StrategicMerge => {
            let schema =
                schema_for(resource).ok_or_else(|| PatchError::unsupported_media_type(resource))?;
            apply_strategic_merge_patch(schema, target, patch)
        }
        PatchType::Apply => apply_configuration(resource, target, patch),
    }
}

/// RFC 6902. Kubernetes answers 400 when the body is not a list of operation objects, and 422
/// (with a fixed message) when an operation is invalid or fails.
fn apply_json_patch(target: &Value, patch: &Value) -> Result<Value, PatchError> {
    let Value::Array(operations) = patch else {
        return Err(PatchError::MalformedPatch(format!(
            "json: cannot unmarshal {} into Go value of type jsonpatch.Patch",
            json_kind(patch)
        )));
    };
    if let Some(bad) = operations.iter().find(|op| !op.is_object()) {
        return Err(PatchError::MalformedPatch(format!(
            "json: cannot unmarshal {} into Go value of type jsonpatch.Operation",
            json_kind(bad)
        )));
    }
    if operations.len() > MAX_JSON_PATCH_OPERATIONS {
        return Err(PatchError::TooManyOperations {
            max: MAX_JSON_PATCH_OPERATIONS,
            got: operations.len(),
        });
    }
    let mut parsed = Vec::with_capacity(operations.len());
    for (index, operation) in operations.iter().enumerate() {
        let op = serde_json::from_value::<json_patch::PatchOperation>(operation.clone())
            .map_err(|e| PatchError::JsonPatchFailed(format!("operation {index}: {e}")))?;
        parsed.push(op);
    }
    let mut document = target.clone();
    let mut copied_bytes = 0usize;
    for (index, op) in parsed.iter().enumerate() {
        if let json_patch::PatchOperation::Copy(copy) = op {
            if let Some(source) = document.pointer(copy.from.as_str()) {
                let budget = MAX_JSON_PATCH_COPY_BYTES - copied_bytes;
                match encoded_size_within(source, budget) {
                    Some(size) => copied_bytes += size,
                    None => {
                        return Err(PatchError::JsonPatchFailed(format!(
                            "operation {index}: unable to complete the copy: the accumulated size of copies exceeds the limit of {MAX_JSON_PATCH_COPY_BYTES} bytes"
                        )))
                    }
                }
            }
        }
        json_patch::patch_unsafe(&mut document, std::slice::from_ref(op))
            .map_err(|e| PatchError::JsonPatchFailed(format!("operation {index}: {e}")))?;
    }
    Ok(document)
}

/// The size of `value` encoded as JSON, if it is at most `budget` bytes; encoding stops as soon
/// as the budget is spent, so measuring a huge value costs no more than the budget.
fn encoded_size_within(value: &Value, budget: usize) -> Option<usize> {
    struct Counter {
        count: usize,
        budget: usize,
    }
    impl std::io::Write for Counter {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.count = self.count.saturating_add(buf.len());
            if self.count > self.budget {
                return Err(std::io::Error::other("over budget"));
            }
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut counter = Counter { count: 0, budget };
    serde_json::to_writer(&mut counter, value).ok()?;
    Some(counter.count)
}

/// RFC 7386. Kubernetes refuses a patch that is not an object with `Invalid JSON Patch` (400).
fn apply_merge_patch(target: &Value, patch: &Value) -> Result<Value, PatchError> {
    if !patch.is_object() {
        return Err(PatchError::MalformedPatch("Invalid JSON Patch".to_string()));
    }
    let mut document = target.clone();
    json_patch::merge(&mut document, patch);
    Ok(document)
}

fn apply_strategic_merge_patch(
    schema: Schema,
    target: &Value,
    patch: &Value,
) -> Result<Value, PatchError> {
    let patch = match patch {
        Value::Object(map) => map.clone(),
        // Go decodes `null` into an empty patch map.
        Value::Null => return Ok(target.clone()),
        other => {
            return Err(PatchError::MalformedPatch(format!(
                "json: cannot unmarshal {} into Go value of type map[string]interface {{}}",
                json_kind(other)
            )))
        }
    };
    let original = match target {
        Value::Object(map) => map.clone(),
        Value::Null => serde_json::Map::new(),
        other => {
            return Err(PatchError::MergeFailed(format!(
                "expected a map[string]interface {{}}, but received a {}",
                strategic::go_type_name(other)
            )))
        }
    };
    strategic::merge_map(original, patch, schema).map(Value::Object)
}

/// Server-side apply, simplified: the body is the desired object and is merged into the target
/// as a strategic merge patch (by merge key on built-in kinds, lists replaced whole on custom
/// resources) after dropping `null`s and patch directives, so nothing is ever deleted.
///
/// This is the ownership-free merge the `scale` subresource and in-process clients use; the
/// API's server-side apply of whole objects, with `managedFields`, conflicts and removal of
/// fields a manager stops applying, is [`crate::managed_fields::apply`].
fn apply_configuration(
    resource: &ResourceInfo,
    target: &Value,
    patch: &Value,
) -> Result<Value, PatchError> {
    if !patch.is_object() {
        return Err(PatchError::MalformedPatch(format!(
            "error decoding patch: json: cannot unmarshal {} into Go value of type map[string]interface {{}}",
            json_kind(patch)
        )));
    }
    let desired = match strategic::strip_value(patch.clone()) {
        Some(desired) => desired,
        None => return Ok(target.clone()),
    };
    let schema = schema_for(resource).unwrap_or_else(Schema::untyped);
    apply_strategic_merge_patch(schema, target, &desired)
}

/// The JSON kind as Go's decoder names it in type errors.
fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

#[cfg(test)]
mod tests;
