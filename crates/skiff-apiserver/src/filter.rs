//! Label and field selection of list and watch requests.

use serde_json::Value;
use skiff_api::resources::ResourceInfo;
use skiff_api::selector::{FieldSelector, LabelSelector};

use crate::status::ApiError;

/// The parsed `labelSelector` and `fieldSelector` of one request.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    label: Option<LabelSelector>,
    field: Option<FieldSelector>,
}

impl Filter {
    /// Parses both selectors, refusing syntax errors and fields the kind does not support.
    pub fn parse(
        resource: &ResourceInfo,
        label_selector: Option<&str>,
        field_selector: Option<&str>,
    ) -> Result<Filter, ApiError> {
        let label = match label_selector.filter(|s| !s.trim().is_empty()) {
            // The parser's message already reads as Kubernetes' (`unable to parse
            // requirement: ...` where a requirement is at fault).
            Some(s) => {
                Some(LabelSelector::parse(s).map_err(|e| ApiError::bad_request(e.to_string()))?)
            }
            None => None,
        };
        let field = match field_selector.filter(|s| !s.trim().is_empty()) {
            Some(s) => {
                let f =
                    FieldSelector::parse(s).map_err(|e| ApiError::bad_request(e.to_string()))?;
                f.validate_for(resource)
                    .map_err(|e| ApiError::bad_request(e.to_string()))?;
                // Objects are matched as stored.
                Some(f.for_storage(resource))
            }
            None => None,
        };
        Ok(Filter { label, field })
    }

    /// Whether the filter selects everything.
    pub fn is_everything(&self) -> bool {
        self.label.is_none() && self.field.is_none()
    }

    /// Whether `metadata` alone decides a match (no field selector), so a caller may decode
    /// only that part of a stored object.
    pub fn reads_only_metadata(&self) -> bool {
        self.field.is_none()
    }

    /// Whether a label map satisfies the label selector (true without one). Decides a match
    /// alone only when [`Filter::reads_only_metadata`] holds.
    pub fn labels_match(&self, labels: &serde_json::Map<String, Value>) -> bool {
        self.label.as_ref().is_none_or(|l| l.matches(labels))
    }

    /// Whether `obj` is selected.
    pub fn matches(&self, resource: &ResourceInfo, obj: &Value) -> bool {
        self.label.as_ref().is_none_or(|l| l.matches_object(obj))
            && self.field.as_ref().is_none_or(|f| f.matches(resource, obj))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pods() -> &'static ResourceInfo {
        skiff_api::resources::find_by_kind("v1", "Pod").expect("pods are served")
    }

    #[test]
    fn a_bad_requirement_is_named_once() {
        let err = Filter::parse(pods(), Some("app in (a"), None).expect_err("unbalanced");
        assert_eq!(err.code, 400);
        assert_eq!(
            err.message,
            "unable to parse requirement: found '', expected: ',' or ')'"
        );
        assert_eq!(
            err.message.matches("unable to parse requirement").count(),
            1
        );
    }

    #[test]
    fn a_grammar_error_between_requirements_has_no_requirement_prefix() {
        let err = Filter::parse(pods(), Some("a=b,"), None).expect_err("trailing comma");
        assert_eq!(err.code, 400);
        assert!(
            !err.message.contains("unable to parse requirement"),
            "{}",
            err.message
        );
    }
}
