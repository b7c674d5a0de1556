//! Field errors in Kubernetes' shape, as validation reports them and `Status.details.causes`
//! carries them.

use serde_json::Value;

/// The kind of a field error, named as Kubernetes names it in `causes[].reason`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldErrorType {
    /// `Required value`.
    Required,
    /// `Invalid value`.
    Invalid,
    /// `Unsupported value`.
    NotSupported,
    /// `Duplicate value`.
    Duplicate,
    /// `Forbidden`.
    Forbidden,
    /// `Too long`.
    TooLong,
    /// `Not found`.
    NotFound,
    /// `Too many`.
    TooMany,
}

impl FieldErrorType {
    /// The `reason` Kubernetes puts in a `StatusCause`.
    pub fn reason(self) -> &'static str {
        match self {
            FieldErrorType::Required => "FieldValueRequired",
            FieldErrorType::Invalid => "FieldValueInvalid",
            FieldErrorType::NotSupported => "FieldValueNotSupported",
            FieldErrorType::Duplicate => "FieldValueDuplicate",
            FieldErrorType::Forbidden => "FieldValueForbidden",
            FieldErrorType::TooLong => "FieldValueTooLong",
            FieldErrorType::NotFound => "FieldValueNotFound",
            FieldErrorType::TooMany => "FieldValueTooMany",
        }
    }

    /// The words Kubernetes starts the message with.
    pub fn words(self) -> &'static str {
        match self {
            FieldErrorType::Required => "Required value",
            FieldErrorType::Invalid => "Invalid value",
            FieldErrorType::NotSupported => "Unsupported value",
            FieldErrorType::Duplicate => "Duplicate value",
            FieldErrorType::Forbidden => "Forbidden",
            FieldErrorType::TooLong => "Too long",
            FieldErrorType::NotFound => "Not found",
            FieldErrorType::TooMany => "Too many",
        }
    }
}

/// One problem with one field of a submitted object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    /// What kind of problem.
    pub error_type: FieldErrorType,
    /// The field path, e.g. `spec.template.metadata.labels`.
    pub field: String,
    /// The offending value rendered as Kubernetes renders it (`"abc"`, `0`, `{"app":"x"}`),
    /// when the message shows one.
    pub bad_value: Option<String>,
    /// The explanation after the value, possibly empty.
    pub detail: String,
}

impl FieldError {
    /// An `Invalid value` error with the value rendered from JSON.
    pub fn invalid(field: impl Into<String>, value: &Value, detail: impl Into<String>) -> Self {
        FieldError {
            error_type: FieldErrorType::Invalid,
            field: field.into(),
            bad_value: Some(go_value(value)),
            detail: detail.into(),
        }
    }

    /// A `Required value` error.
    pub fn required(field: impl Into<String>, detail: impl Into<String>) -> Self {
        FieldError {
            error_type: FieldErrorType::Required,
            field: field.into(),
            bad_value: None,
            detail: detail.into(),
        }
    }

    /// An `Unsupported value` error listing the supported values.
    pub fn not_supported(field: impl Into<String>, value: &Value, supported: &[&str]) -> Self {
        let list = supported
            .iter()
            .map(|s| format!("\"{s}\""))
            .collect::<Vec<_>>()
            .join(", ");
        FieldError {
            error_type: FieldErrorType::NotSupported,
            field: field.into(),
            bad_value: Some(go_value(value)),
            detail: format!("supported values: {list}"),
        }
    }

    /// A `Forbidden` error.
    pub fn forbidden(field: impl Into<String>, detail: impl Into<String>) -> Self {
        FieldError {
            error_type: FieldErrorType::Forbidden,
            field: field.into(),
            bad_value: None,
            detail: detail.into(),
        }
    }

    /// A `Too many` error: a list longer than allowed, worded as Kubernetes' `field.TooMany`.
    pub fn too_many(field: impl Into<String>, actual: usize, max: usize) -> Self {
        FieldError {
            error_type: FieldErrorType::TooMany,
            field: field.into(),
            bad_value: Some(actual.to_string()),
            detail: format!("must have at most {max} items"),
        }
    }

    /// A `Duplicate value` error.
    pub fn duplicate(field: impl Into<String>, value: &Value) -> Self {
        FieldError {
            error_type: FieldErrorType::Duplicate,
            field: field.into(),
            bad_value: Some(go_value(value)),
            detail: String::new(),
        }
    }

    /// The cause message without the field: `Invalid value: "x": detail`.
    pub fn message(&self) -> String {
        let mut out = self.error_type.words().to_string();
        if let Some(v) = &self.bad_value {
            out.push_str(": ");
            out.push_str(v);
        }
        if !self.detail.is_empty() {
            out.push_str(": ");
            out.push_str(&self.detail);
        }
        out
    }

    /// The full error line: `field: Invalid value: "x": detail`.
    pub fn full(&self) -> String {
        format!("{}: {}", self.field, self.message())
    }
}

/// The message Kubernetes writes for an `Invalid` status: `Kind.group "name" is invalid: ...`,
/// with several causes wrapped in brackets.
pub fn invalid_message(qualified_kind: &str, name: &str, errors: &[FieldError]) -> String {
    let joined = errors
        .iter()
        .map(FieldError::full)
        .collect::<Vec<_>>()
        .join(", ");
    if errors.len() == 1 {
        format!("{qualified_kind} \"{name}\" is invalid: {joined}")
    } else {
        format!("{qualified_kind} \"{name}\" is invalid: [{joined}]")
    }
}

/// Renders a value as Kubernetes 1.34 and later render it in field errors: strings quoted,
/// numbers and booleans bare, `null` for nothing, and anything structured as its JSON (map keys
/// sorted, as Go's encoder writes maps).
pub fn go_value(value: &Value) -> String {
    match value {
        Value::String(s) => format!("{s:?}"),
        other => go_json(other),
    }
}

/// Compact JSON with object keys sorted, as Go's `json.Marshal` writes a map.
pub fn go_json(value: &Value) -> String {
    fn sorted(value: &Value) -> Value {
        match value {
            Value::Object(map) => {
                let mut entries: Vec<_> = map.iter().collect();
                entries.sort_by(|a, b| a.0.cmp(b.0));
                Value::Object(
                    entries
                        .into_iter()
                        .map(|(k, v)| (k.clone(), sorted(v)))
                        .collect(),
                )
            }
            Value::Array(items) => Value::Array(items.iter().map(sorted).collect()),
            other => other.clone(),
        }
    }
    serde_json::to_string(&sorted(value)).unwrap_or_else(|_| "null".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn messages_read_like_kubernetes() {
        let e = FieldError::invalid(
            "spec.template.metadata.labels",
            &json!({"app": "x"}),
            "`selector` does not match template `labels`",
        );
        assert_eq!(
            e.full(),
            "spec.template.metadata.labels: Invalid value: {\"app\":\"x\"}: `selector` does not match template `labels`"
        );
        assert_eq!(
            invalid_message("Deployment.apps", "web", std::slice::from_ref(&e)),
            format!("Deployment.apps \"web\" is invalid: {}", e.full())
        );
        let two = invalid_message("Deployment.apps", "web", &[e.clone(), e.clone()]);
        assert!(two.contains(": [spec.template") && two.ends_with(']'));
    }

    #[test]
    fn structured_values_render_as_json_with_sorted_keys() {
        assert_eq!(
            go_value(&json!({"b": "2", "a": "1"})),
            r#"{"a":"1","b":"2"}"#
        );
        assert_eq!(go_value(&json!(["198.18.0.2"])), r#"["198.18.0.2"]"#);
        assert_eq!(go_value(&json!("x")), r#""x""#);
        assert_eq!(go_value(&json!(-1)), "-1");
        assert_eq!(go_value(&Value::Null), "null");
        assert!(!go_value(&json!({"app": "b"})).contains("map["));
    }
}
