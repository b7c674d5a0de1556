//! Validation of request options (`ListOptions`, `CreateOptions`, `UpdateOptions`,
//! `PatchOptions`, `DeleteOptions`) with Kubernetes' rules and messages. Pure: the server
//! calls these before it touches the registry, and a failure is a 422 naming the options kind.

use serde_json::{json, Value};
use skiff_api::errors::{FieldError, FieldErrorType};

use crate::status::ApiError;

/// `resourceVersionMatch=Exact`: a list exactly at the given resourceVersion.
pub const MATCH_EXACT: &str = "Exact";
/// `resourceVersionMatch=NotOlderThan`: a list at least as new as the given resourceVersion.
pub const MATCH_NOT_OLDER_THAN: &str = "NotOlderThan";

/// The list and watch parameters the rules look at.
#[derive(Clone, Copy, Debug, Default)]
pub struct ListParameters<'a> {
    /// `watch=true`.
    pub watch: bool,
    /// `resourceVersion`, empty when absent.
    pub resource_version: &'a str,
    /// `resourceVersionMatch`, empty when absent.
    pub resource_version_match: &'a str,
    /// `sendInitialEvents`, when given.
    pub send_initial_events: Option<bool>,
    /// `continue`, empty when absent.
    pub continue_token: &'a str,
}

fn forbidden(field: &str, detail: &str) -> FieldError {
    FieldError::forbidden(field, detail)
}

/// Checks how `resourceVersion`, `resourceVersionMatch`, `sendInitialEvents` and `continue`
/// combine, for a list or a watch (the WatchList feature is on, as in Kubernetes 1.36).
pub fn validate_list(params: &ListParameters<'_>) -> Result<(), ApiError> {
    let mut errors = Vec::new();
    let matching = params.resource_version_match;
    if params.watch {
        if params.send_initial_events.is_some() && matching != MATCH_NOT_OLDER_THAN {
            errors.push(forbidden(
                "resourceVersionMatch",
                "sendInitialEvents requires setting resourceVersionMatch to NotOlderThan",
            ));
        }
        if !matching.is_empty() {
            if params.send_initial_events.is_none() {
                errors.push(forbidden(
                    "resourceVersionMatch",
                    "resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided",
                ));
            }
            if matching != MATCH_NOT_OLDER_THAN {
                errors.push(FieldError::not_supported(
                    "resourceVersionMatch",
                    &json!(matching),
                    &[MATCH_NOT_OLDER_THAN],
                ));
            }
            if !params.continue_token.is_empty() {
                errors.push(forbidden(
                    "resourceVersionMatch",
                    "resourceVersionMatch is forbidden when continue is provided",
                ));
            }
        }
    } else {
        if !matching.is_empty() {
            if params.resource_version.is_empty() {
                errors.push(forbidden(
                    "resourceVersionMatch",
                    "resourceVersionMatch is forbidden unless resourceVersion is provided",
                ));
            }
            if !params.continue_token.is_empty() {
                errors.push(forbidden(
                    "resourceVersionMatch",
                    "resourceVersionMatch is forbidden when continue is provided",
                ));
            }
            if matching != MATCH_EXACT && matching != MATCH_NOT_OLDER_THAN {
                errors.push(FieldError::not_supported(
                    "resourceVersionMatch",
                    &json!(matching),
                    &[MATCH_EXACT, MATCH_NOT_OLDER_THAN, ""],
                ));
            }
            if matching == MATCH_EXACT && params.resource_version == "0" {
                errors.push(forbidden(
                    "resourceVersionMatch",
                    "resourceVersionMatch \"exact\" is forbidden for resourceVersion \"0\"",
                ));
            }
        }
        if params.send_initial_events.is_some() {
            errors.push(forbidden(
                "sendInitialEvents",
                "sendInitialEvents is forbidden for list",
            ));
        }
    }
    refuse("ListOptions", errors)
}

/// What a write's options need checked.
#[derive(Clone, Copy, Debug, Default)]
pub struct WriteParameters<'a> {
    /// `dryRun`, when given.
    pub dry_run: Option<&'a str>,
    /// `fieldManager`, empty when absent.
    pub field_manager: &'a str,
    /// `force`, when given.
    pub force: Option<&'a str>,
    /// For a PATCH, whether it is a server-side apply; `None` for other verbs.
    pub apply_patch: Option<bool>,
}

/// Checks a create's, update's or patch's options (`options_kind` names which) and says
/// whether the write is a dry run.
pub fn validate_write(options_kind: &str, params: &WriteParameters<'_>) -> Result<bool, ApiError> {
    let mut errors = Vec::new();
    match params.apply_patch {
        Some(true) if params.field_manager.is_empty() => errors.push(FieldError::required(
            "fieldManager",
            "is required for apply patch",
        )),
        Some(false) if params.force.is_some() => errors.push(forbidden(
            "force",
            "may not be specified for non-apply patch",
        )),
        _ => {}
    }
    let dry_run = check_dry_run(params.dry_run, &mut errors);
    refuse(options_kind, errors)?;
    Ok(dry_run)
}

/// Checks a delete's `dryRun` values (query and body together) and says whether it is a
/// dry run.
pub fn validate_delete_dry_run(values: &[&str]) -> Result<bool, ApiError> {
    let mut errors = Vec::new();
    let mut dry_run = false;
    if !values.is_empty() {
        if values.iter().all(|v| *v == "All") {
            dry_run = true;
        } else {
            errors.push(dry_run_error(values));
        }
    }
    refuse("DeleteOptions", errors)?;
    Ok(dry_run)
}

/// `dryRun` may only be `All`; returns whether it was given.
fn check_dry_run(value: Option<&str>, errors: &mut Vec<FieldError>) -> bool {
    match value {
        None => false,
        Some("All") => true,
        Some(other) => {
            errors.push(dry_run_error(&[other]));
            false
        }
    }
}

/// Kubernetes renders the bad `dryRun` list with Go syntax: `[]string{"Bogus"}`.
fn dry_run_error(values: &[&str]) -> FieldError {
    let rendered: Vec<String> = values.iter().map(|v| format!("{v:?}")).collect();
    FieldError {
        error_type: FieldErrorType::NotSupported,
        field: "dryRun".to_string(),
        bad_value: Some(format!("[]string{{{}}}", rendered.join(", "))),
        detail: "supported values: \"All\"".to_string(),
    }
}

fn refuse(options_kind: &str, errors: Vec<FieldError>) -> Result<(), ApiError> {
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid_options(options_kind, &errors))
    }
}

/// The `BOOKMARK` object that ends a watch's initial events: the kind's shape with only the
/// resourceVersion and the `k8s.io/initial-events-end` annotation.
pub fn initial_events_end_bookmark(kind: &str, api_version: &str, revision: i64) -> Value {
    json!({
        "kind": kind,
        "apiVersion": api_version,
        "metadata": {
            "resourceVersion": revision.to_string(),
            "annotations": {"k8s.io/initial-events-end": "true"},
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list_messages(params: ListParameters<'_>) -> Option<String> {
        validate_list(&params).err().map(|e| {
            assert_eq!((e.code, e.reason), (422, "Invalid"));
            e.message
        })
    }

    #[test]
    fn list_options_combine_as_kubernetes_allows() {
        let list = |rv, matching, cont| ListParameters {
            resource_version: rv,
            resource_version_match: matching,
            continue_token: cont,
            ..Default::default()
        };
        assert_eq!(list_messages(list("5", "Exact", "")), None);
        assert_eq!(list_messages(list("0", "NotOlderThan", "")), None);
        assert_eq!(list_messages(list("", "", "")), None);
        assert_eq!(
            list_messages(list("", "Exact", "")).as_deref(),
            Some("ListOptions.meta.k8s.io \"\" is invalid: resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden unless resourceVersion is provided")
        );
        assert_eq!(
            list_messages(list("0", "Exact", "")).as_deref(),
            Some("ListOptions.meta.k8s.io \"\" is invalid: resourceVersionMatch: Forbidden: resourceVersionMatch \"exact\" is forbidden for resourceVersion \"0\"")
        );
        assert_eq!(
            list_messages(list("5", "Newest", "tok")).as_deref(),
            Some("ListOptions.meta.k8s.io \"\" is invalid: [resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden when continue is provided, resourceVersionMatch: Unsupported value: \"Newest\": supported values: \"Exact\", \"NotOlderThan\", \"\"]")
        );
        let initial_on_list = ListParameters {
            send_initial_events: Some(true),
            ..Default::default()
        };
        assert_eq!(
            list_messages(initial_on_list).as_deref(),
            Some("ListOptions.meta.k8s.io \"\" is invalid: sendInitialEvents: Forbidden: sendInitialEvents is forbidden for list")
        );
    }

    #[test]
    fn watch_options_combine_as_kubernetes_allows() {
        let watch = |matching, initial| ListParameters {
            watch: true,
            resource_version_match: matching,
            send_initial_events: initial,
            ..Default::default()
        };
        assert_eq!(list_messages(watch("", None)), None);
        assert_eq!(list_messages(watch("NotOlderThan", Some(true))), None);
        assert_eq!(list_messages(watch("NotOlderThan", Some(false))), None);
        assert_eq!(
            list_messages(watch("", Some(true))).as_deref(),
            Some("ListOptions.meta.k8s.io \"\" is invalid: resourceVersionMatch: Forbidden: sendInitialEvents requires setting resourceVersionMatch to NotOlderThan")
        );
        assert_eq!(
            list_messages(watch("NotOlderThan", None)).as_deref(),
            Some("ListOptions.meta.k8s.io \"\" is invalid: resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided")
        );
        assert_eq!(
            list_messages(watch("Exact", Some(true))).as_deref(),
            Some("ListOptions.meta.k8s.io \"\" is invalid: [resourceVersionMatch: Forbidden: sendInitialEvents requires setting resourceVersionMatch to NotOlderThan, resourceVersionMatch: Unsupported value: \"Exact\": supported values: \"NotOlderThan\"]")
        );
    }

    #[test]
    fn write_options_refuse_bogus_dry_run_and_apply_without_manager() {
        let create = |dry_run| WriteParameters {
            dry_run,
            ..Default::default()
        };
        assert_eq!(validate_write("CreateOptions", &create(None)), Ok(false));
        assert_eq!(
            validate_write("CreateOptions", &create(Some("All"))),
            Ok(true)
        );
        let err = validate_write("CreateOptions", &create(Some("Bogus"))).unwrap_err();
        assert_eq!((err.code, err.reason), (422, "Invalid"));
        assert_eq!(
            err.message,
            "CreateOptions.meta.k8s.io \"\" is invalid: dryRun: Unsupported value: []string{\"Bogus\"}: supported values: \"All\""
        );
        assert_eq!(
            err.details,
            Some(
                json!({"group": "meta.k8s.io", "kind": "CreateOptions", "causes": [{
                "reason": "FieldValueNotSupported",
                "message": "Unsupported value: []string{\"Bogus\"}: supported values: \"All\"",
                "field": "dryRun"}]})
            )
        );
        let apply = |manager| WriteParameters {
            field_manager: manager,
            apply_patch: Some(true),
            ..Default::default()
        };
        assert_eq!(validate_write("PatchOptions", &apply("kubectl")), Ok(false));
        assert_eq!(
            validate_write("PatchOptions", &apply("")).unwrap_err().message,
            "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch"
        );
        let forced_merge = WriteParameters {
            force: Some("true"),
            apply_patch: Some(false),
            ..Default::default()
        };
        assert_eq!(
            validate_write("PatchOptions", &forced_merge).unwrap_err().message,
            "PatchOptions.meta.k8s.io \"\" is invalid: force: Forbidden: may not be specified for non-apply patch"
        );
        assert_eq!(validate_delete_dry_run(&[]), Ok(false));
        assert_eq!(validate_delete_dry_run(&["All"]), Ok(true));
        assert_eq!(
            validate_delete_dry_run(&["Bogus"]).unwrap_err().message,
            "DeleteOptions.meta.k8s.io \"\" is invalid: dryRun: Unsupported value: []string{\"Bogus\"}: supported values: \"All\""
        );
    }
}
