//! `RequestInfo`: what a request asks to do, derived from its method and URL alone as
//! kube-apiserver's `RequestInfoFactory` derives it, before anything is looked up. Paths under
//! `/api/VERSION` and `/apis/GROUP/VERSION` with a resource are resource requests (a `GET`
//! without a name is `list` or `watch`, a `DELETE` without one `deletecollection`, `/watch/`
//! and `/proxy/` prefixes name their verb); every other path is a non-resource request whose
//! verb is the lowercase method.

use skiff_api::selector::FieldSelector;

use crate::attributes::{Attributes, ResourceTarget};
use crate::user::UserInfo;

/// What kube-apiserver reads from a request's method and URL.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RequestInfo {
    /// Whether the path names API resources.
    pub is_resource_request: bool,
    /// The URL path.
    pub path: String,
    /// The verb: a REST verb for resource requests, the lowercase method otherwise.
    pub verb: String,
    /// `api` or `apis` for resource requests.
    pub api_prefix: String,
    /// The API group, empty for the core group.
    pub api_group: String,
    /// The API version.
    pub api_version: String,
    /// The namespace, empty for cluster scope or all namespaces.
    pub namespace: String,
    /// The plural resource.
    pub resource: String,
    /// The subresource, if any.
    pub subresource: String,
    /// The object's name, if the path (or a `metadata.name` field selector) gives one.
    pub name: String,
    /// The path segments from the resource on.
    pub parts: Vec<String>,
}

/// A path with a `/watch/` or `/proxy/` prefix but nothing after it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestInfoError(pub String);

const SPECIAL_VERBS: [&str; 2] = ["proxy", "watch"];
const NAMESPACE_SUBRESOURCES: [&str; 2] = ["status", "finalize"];

/// `metav1` boolean query parameters: present and neither `0` nor `false` means true.
fn query_bool(value: Option<&str>) -> bool {
    value.is_some_and(|v| v != "0" && !v.eq_ignore_ascii_case("false"))
}

/// Derives the request's attributes from its `method`, URL `path` and raw `query`.
pub fn request_info(
    method: &str,
    path: &str,
    query: Option<&str>,
) -> Result<RequestInfo, RequestInfoError> {
    let mut info = RequestInfo {
        path: path.to_string(),
        verb: method.to_ascii_lowercase(),
        ..RequestInfo::default()
    };
    let trimmed = path.trim_matches('/');
    let mut parts: Vec<&str> = if trimmed.is_empty() {
        Vec::new()
    } else {
        trimmed.split('/').collect()
    };
    if parts.len() < 3 || !matches!(parts[0], "api" | "apis") {
        return Ok(info);
    }
    let prefix = parts.remove(0);
    if prefix == "apis" {
        if parts.len() < 3 {
            return Ok(info);
        }
        info.api_group = parts.remove(0).to_string();
    }
    info.api_prefix = prefix.to_string();
    info.is_resource_request = true;
    info.api_version = parts.remove(0).to_string();

    if SPECIAL_VERBS.contains(&parts[0]) {
        if parts.len() < 2 {
            return Err(RequestInfoError(format!(
                "unable to determine kind and namespace from url, {path}"
            )));
        }
        info.verb = parts.remove(0).to_string();
    } else {
        info.verb = match method.to_ascii_uppercase().as_str() {
            "POST" => "create",
            "GET" | "HEAD" => "get",
            "PUT" => "update",
            "PATCH" => "patch",
            "DELETE" => "delete",
            _ => "",
        }
        .to_string();
    }

    if parts[0] == "namespaces" {
        // Server-side apply creates a namespace with a PATCH to `/namespaces/NAME`, which is
        // not a request inside that namespace.
        let applying_a_namespace = parts.len() == 2 && info.verb == "patch";
        if !applying_a_namespace && parts.len() > 1 {
            info.namespace = parts[1].to_string();
            if parts.len() > 2 && !NAMESPACE_SUBRESOURCES.contains(&parts[2]) {
                parts.drain(..2);
            }
        }
    }
    info.parts = parts.iter().map(|p| p.to_string()).collect();
    if parts.len() >= 3 && info.verb != "proxy" {
        info.subresource = parts[2].to_string();
    }
    if parts.len() >= 2 {
        info.name = parts[1].to_string();
    }
    info.resource = parts[0].to_string();

    if info.name.is_empty() && info.verb == "get" {
        let pairs: Vec<(String, String)> =
            serde_urlencoded::from_str(query.unwrap_or("")).unwrap_or_default();
        let param = |key: &str| {
            pairs
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.as_str())
        };
        info.verb = if query_bool(param("watch")) {
            "watch"
        } else {
            "list"
        }
        .to_string();
        if let Some(selector) = param("fieldSelector") {
            if let Ok(selector) = FieldSelector::parse(selector) {
                if let Some(name) = selector.requires_exact_match("metadata.name") {
                    if skiff_api::validation::is_path_segment_name(name) {
                        info.name = name.to_string();
                    }
                }
            }
        }
    }
    if info.name.is_empty() && info.verb == "delete" {
        info.verb = "deletecollection".to_string();
    }
    Ok(info)
}

impl RequestInfo {
    /// The authorizer's attributes of this request made by `user`.
    pub fn attributes(&self, user: UserInfo) -> Attributes {
        if !self.is_resource_request {
            return Attributes::non_resource(user, &self.verb, &self.path);
        }
        Attributes::resource(
            user,
            &self.verb,
            ResourceTarget {
                namespace: self.namespace.clone(),
                api_group: self.api_group.clone(),
                api_version: self.api_version.clone(),
                resource: self.resource.clone(),
                subresource: self.subresource.clone(),
                name: self.name.clone(),
            },
        )
    }
}

#[cfg(test)]
mod tests;
