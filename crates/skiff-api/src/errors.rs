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
    /// The offending value rendered as Kubernetes renders it (Go syntax: `"abc"`, `0`,
    /// `map[string]string{"app":"x"}`), when the message shows one.
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

/// Renders a JSON value the way Go's `%#v` renders the decoded value in Kubernetes messages.
pub fn go_value(value: &Value) -> String {
    match value {
        Value::Null => "null".to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => format!("{s:?}"),
        Value::Array(items) => {
            let inner = items.iter().map(go_value).collect::<Vec<_>>().join(", ");
            format!("[]interface {{}}{{{inner}}}")
        }
        Value::Object(map) => {
            if map.values().all(Value::is_string) {
                let mut entries: Vec<_> = map.iter().collect();
                entries.sort_by(|a, b| a.0.cmp(b.0));
                let inner = entries
                    .iter()
                    .map(|(k, v)| format!("{:?}:{:?}", k, v.as_str().unwrap_or_default()))
                    .collect::<Vec<_>>()
                    .join(", ");
                format!("map[string]string{{{inner}}}")
            } else {
                serde_json::to_string(value).unwrap_or_default()
            }
        }
    }
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
            "spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"x\"}: `selector` does not match template `labels`"
        );
        assert_eq!(
            invalid_message("Deployment.apps", "web", std::slice::from_ref(&e)),
            format!("Deployment.apps \"web\" is invalid: {}", e.full())
        );
        let two = invalid_message("Deployment.apps", "web", &[e.clone(), e.clone()]);
        assert!(two.contains(": [spec.template") && two.ends_with(']'));
    }
}
