//! What ServiceAccount tokens mean against the stored objects: the `serviceaccounts/NAME/token`
//! subresource (TokenRequest, `kubectl create token`), the bearer-token check every request
//! with a ServiceAccount token passes (signature, issuer, audience and times, then the
//! ServiceAccount and the bound pod, Secret or node still existing with the uids the token
//! names), and TokenReview, which answers that same check for another client.

use serde_json::{json, Value};
use skiff_api::errors::FieldError;
use skiff_api::kinds;
use skiff_auth::user::UserInfo;

use crate::registry::Registry;
use crate::service_account_tokens::{
    user_of, Claims, ObjectRef, TokenError, TokenSigner, API_AUDIENCES,
};
use crate::status::ApiError;

/// The lifetime of a requested token when the request names none (one hour).
pub const DEFAULT_EXPIRATION_SECONDS: i64 = 3600;
/// The shortest lifetime a TokenRequest may ask for (ten minutes).
pub const MIN_EXPIRATION_SECONDS: i64 = 600;
/// The longest lifetime a TokenRequest may ask for (2^32 seconds).
pub const MAX_EXPIRATION_SECONDS: i64 = 1 << 32;

/// How long a pod may have been marked for deletion before tokens bound to it stop working,
/// as kube-apiserver allows.
const DELETED_POD_GRACE_SECONDS: i64 = 60;

/// The namespace and ServiceAccount name of a `.../serviceaccounts/NAME/token` path.
pub fn parse_token_path(path: &str) -> Option<(String, String)> {
    let rest = path.strip_prefix("/api/v1/namespaces/")?;
    let parts: Vec<&str> = rest.trim_end_matches('/').split('/').collect();
    match parts.as_slice() {
        [namespace, "serviceaccounts", name, "token"]
            if !namespace.is_empty() && !name.is_empty() =>
        {
            Some((namespace.to_string(), name.to_string()))
        }
        _ => None,
    }
}

/// Seconds since the epoch, for callers that act now.
pub fn now_seconds() -> i64 {
    jiff::Timestamp::now().as_second()
}

fn no_signer() -> ApiError {
    ApiError::internal("this server issues no ServiceAccount tokens: it has no signing key")
}

fn strings_at(value: &Value, pointer: &str) -> Vec<String> {
    value
        .pointer(pointer)
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn text_at<'v>(value: &'v Value, pointer: &str) -> &'v str {
    value.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

fn invalid_token_request(name: &str, errors: &[FieldError]) -> ApiError {
    let causes: Vec<Value> = errors
        .iter()
        .map(|e| json!({"reason": e.error_type.reason(), "message": e.message(), "field": e.field}))
        .collect();
    ApiError {
        details: Some(json!({
            "name": name, "group": "authentication.k8s.io", "kind": "TokenRequest", "causes": causes
        })),
        ..ApiError::new(
            422,
            "Invalid",
            skiff_api::errors::invalid_message("TokenRequest.authentication.k8s.io", name, errors),
        )
    }
}

/// The uid of an object as stored.
fn uid_of(object: &Value) -> String {
    text_at(object, "/metadata/uid").to_string()
}

/// Answers a TokenRequest for the ServiceAccount `name` in `namespace` at `now`: the
/// request with its defaults filled in and `status.token` and `status.expirationTimestamp`.
pub async fn request_token(
    registry: &Registry,
    namespace: &str,
    name: &str,
    mut request: Value,
    now: i64,
) -> Result<Value, ApiError> {
    let signer = registry.token_signer().cloned().ok_or_else(no_signer)?;
    if !request.is_object() {
        return Err(ApiError::bad_request(
            "the TokenRequest is not a JSON object",
        ));
    }
    let expiration = match request.pointer("/spec/expirationSeconds") {
        None | Some(Value::Null) => DEFAULT_EXPIRATION_SECONDS,
        Some(value) => value.as_i64().ok_or_else(|| {
            ApiError::bad_request(format!(
                "json: cannot unmarshal {} into Go struct field TokenRequestSpec.spec.expirationSeconds of type int64",
                crate::bodies::go_json_kind(value)
            ))
        })?,
    };
    if expiration < MIN_EXPIRATION_SECONDS {
        return Err(invalid_token_request(
            name,
            &[FieldError::invalid(
                "spec.expirationSeconds",
                &json!(expiration),
                "may not specify a duration less than 10 minutes",
            )],
        ));
    }
    if expiration > MAX_EXPIRATION_SECONDS {
        return Err(invalid_token_request(
            name,
            &[FieldError::invalid(
                "spec.expirationSeconds",
                &json!(expiration),
                "may not specify a duration larger than 2^32 seconds",
            )],
        ));
    }
    let mut audiences = strings_at(&request, "/spec/audiences");
    if audiences.is_empty() {
        audiences = API_AUDIENCES.iter().map(|a| a.to_string()).collect();
    }
    let account = registry
        .get(&kinds::service_account::V1, Some(namespace), name)
        .await?;
    let mut claims = Claims::new(
        namespace,
        ObjectRef {
            name: name.to_string(),
            uid: uid_of(&account),
        },
        audiences.clone(),
        now,
        expiration,
    );
    let bound = request
        .pointer("/spec/boundObjectRef")
        .filter(|b| b.is_object())
        .cloned();
    if let Some(bound) = &bound {
        bind(registry, namespace, name, bound, &mut claims).await?;
    }
    let expires = jiff::Timestamp::from_second(claims.exp)
        .map_err(|e| ApiError::internal(format!("token expiry out of range: {e}")))?;
    extend_kubelet_token(&mut claims, expiration, now);
    let token = signer.sign(&claims);
    request["kind"] = json!("TokenRequest");
    request["apiVersion"] = json!("authentication.k8s.io/v1");
    let metadata = request
        .as_object_mut()
        .expect("checked to be an object")
        .entry("metadata")
        .or_insert_with(|| json!({}));
    if !metadata.is_object() {
        *metadata = json!({});
    }
    metadata["name"] = json!(name);
    metadata["namespace"] = json!(namespace);
    metadata
        .as_object_mut()
        .expect("an object")
        .entry("creationTimestamp")
        .or_insert(Value::Null);
    let mut spec = json!({"audiences": audiences, "expirationSeconds": expiration});
    spec["boundObjectRef"] = bound.unwrap_or(Value::Null);
    request["spec"] = spec;
    request["status"] = json!({
        "token": token,
        "expirationTimestamp": expires.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
    });
    Ok(request)
}

/// The lifetime kube-apiserver gives the kubelet's projected tokens instead of the 3607
/// seconds asked for (a year), so that old clients that never reread the file keep working;
/// `warnafter` records when the token should have expired.
pub const EXTENDED_EXPIRATION_SECONDS: i64 = 365 * 24 * 3600;

/// As kube-apiserver's `--service-account-extend-token-expiration` (on by default): a
/// pod-bound token for the API server asked for exactly 3607 seconds is valid for a year,
/// with `warnafter` at the 3607 seconds. Its TokenRequest still reports the 3607 seconds, and
/// the node refreshes it on that schedule.
pub fn extend_kubelet_token(claims: &mut Claims, expiration: i64, now: i64) {
    let for_api_server = claims
        .aud
        .iter()
        .all(|a| API_AUDIENCES.contains(&a.as_str()));
    if claims.kubernetes.pod.is_some()
        && expiration == skiff_api::service_account_admission::PROJECTED_TOKEN_EXPIRATION_SECONDS
        && for_api_server
    {
        claims.kubernetes.warnafter = Some(claims.exp);
        claims.exp = now.saturating_add(EXTENDED_EXPIRATION_SECONDS);
    }
}

/// Checks the object a TokenRequest binds to and records it in the claims.
async fn bind(
    registry: &Registry,
    namespace: &str,
    account: &str,
    bound: &Value,
    claims: &mut Claims,
) -> Result<(), ApiError> {
    let kind = text_at(bound, "/kind");
    let api_version = text_at(bound, "/apiVersion");
    let name = text_at(bound, "/name");
    let uid = text_at(bound, "/uid");
    let (resource, scope) = match (api_version, kind) {
        ("v1", "Pod") => (&kinds::pod::V1, Some(namespace)),
        ("v1", "Secret") => (&kinds::secret::V1, Some(namespace)),
        ("v1", "Node") => (&kinds::node::V1, None),
        _ => {
            let (group, version) = match api_version.split_once('/') {
                Some((g, v)) => (g, v),
                None => ("", api_version),
            };
            return Err(ApiError::bad_request(format!(
                "cannot bind token to object of type {group}/{version}, Kind={kind}"
            )));
        }
    };
    let object = registry.get(resource, scope, name).await?;
    let live_uid = uid_of(&object);
    if !uid.is_empty() && uid != live_uid {
        return Err(ApiError::conflict_message(
            resource,
            name,
            format!(
                "Operation cannot be fulfilled on {} \"{name}\": the UID in the bound object reference ({uid}) does not match the UID in record. The object might have been deleted and then recreated",
                resource.qualified_plural()
            ),
        ));
    }
    let reference = ObjectRef {
        name: name.to_string(),
        uid: live_uid,
    };
    if kind == "Pod" {
        if text_at(&object, "/spec/serviceAccountName") != account {
            return Err(ApiError::bad_request(format!(
                "cannot bind token for serviceaccount {account:?} to pod running with different serviceaccount name."
            )));
        }
        let node_name = text_at(&object, "/spec/nodeName");
        if !node_name.is_empty() {
            if let Ok(node) = registry.get(&kinds::node::V1, None, node_name).await {
                claims.kubernetes.node = Some(ObjectRef {
                    name: node_name.to_string(),
                    uid: uid_of(&node),
                });
            }
        }
        claims.kubernetes.pod = Some(reference);
    } else if kind == "Node" {
        claims.kubernetes.node = Some(reference);
    } else {
        claims.kubernetes.secret = Some(reference);
    }
    Ok(())
}

/// Whether `token` looks like a JWT, so that the admin token (an opaque string) is never
/// parsed as one.
pub fn looks_like_jwt(token: &str) -> bool {
    token.split('.').count() == 3
}

/// The user a ServiceAccount token speaks for, if the token verifies for one of `audiences`
/// at `now` and the ServiceAccount and bound objects it names still exist with their uids.
pub async fn authenticate(
    registry: &Registry,
    token: &str,
    audiences: &[&str],
    now: i64,
) -> Result<(UserInfo, Vec<String>), TokenError> {
    let signer: &TokenSigner = registry
        .token_signer()
        .ok_or_else(|| TokenError::Invalid("no signing key".into()))?;
    let claims = match signer.verify(token, audiences, now) {
        Ok(claims) => claims,
        Err(bound_error) => {
            return match signer.verify_legacy(token) {
                Ok(legacy) => authenticate_legacy(registry, token, &legacy, audiences).await,
                Err(_) => Err(bound_error),
            }
        }
    };
    let namespace = claims.kubernetes.namespace.as_str();
    let lookup_failed = |what: &str| TokenError::Rejected(format!("token lookup failed: {what}"));
    let account = registry
        .get(
            &kinds::service_account::V1,
            Some(namespace),
            &claims.kubernetes.serviceaccount.name,
        )
        .await
        .map_err(|e| lookup_failed(&e.message))?;
    if uid_of(&account) != claims.kubernetes.serviceaccount.uid {
        return Err(TokenError::Rejected(format!(
            "service account UID ({}) does not match claim ({})",
            uid_of(&account),
            claims.kubernetes.serviceaccount.uid
        )));
    }
    if let Some(pod_ref) = &claims.kubernetes.pod {
        let pod = registry
            .get(&kinds::pod::V1, Some(namespace), &pod_ref.name)
            .await
            .map_err(|e| lookup_failed(&e.message))?;
        if uid_of(&pod) != pod_ref.uid {
            return Err(TokenError::Rejected(format!(
                "pod UID ({}) does not match claim ({})",
                uid_of(&pod),
                pod_ref.uid
            )));
        }
        let deleted_at = pod
            .pointer("/metadata/deletionTimestamp")
            .and_then(Value::as_str)
            .and_then(|t| t.parse::<jiff::Timestamp>().ok());
        if let Some(deleted_at) = deleted_at {
            if deleted_at.as_second() < now.saturating_sub(DELETED_POD_GRACE_SECONDS) {
                return Err(TokenError::Rejected(format!(
                    "pod {namespace}/{} has been deleted",
                    pod_ref.name
                )));
            }
        }
    }
    // A pod's node is only informative; a token bound to a node needs the node.
    if let (None, Some(node_ref)) = (&claims.kubernetes.pod, &claims.kubernetes.node) {
        let node = registry
            .get(&kinds::node::V1, None, &node_ref.name)
            .await
            .map_err(|e| lookup_failed(&e.message))?;
        if uid_of(&node) != node_ref.uid {
            return Err(TokenError::Rejected(format!(
                "node UID ({}) does not match claim ({})",
                uid_of(&node),
                node_ref.uid
            )));
        }
    }
    if let Some(secret_ref) = &claims.kubernetes.secret {
        let secret = registry
            .get(&kinds::secret::V1, Some(namespace), &secret_ref.name)
            .await
            .map_err(|e| lookup_failed(&e.message))?;
        if uid_of(&secret) != secret_ref.uid {
            return Err(TokenError::Rejected(format!(
                "secret UID ({}) does not match claim ({})",
                uid_of(&secret),
                secret_ref.uid
            )));
        }
    }
    let accepted: Vec<String> = claims
        .aud
        .iter()
        .filter(|a| audiences.contains(&a.as_str()))
        .cloned()
        .collect();
    Ok((user_of(&claims), accepted))
}

/// The user of a legacy Secret token: its Secret must still hold exactly this token and its
/// ServiceAccount still exist with the uid it names. Such tokens name no audience: they are
/// the API server's own, so they count only where one of its audiences is asked for.
async fn authenticate_legacy(
    registry: &Registry,
    token: &str,
    claims: &crate::service_account_tokens::LegacyClaims,
    audiences: &[&str],
) -> Result<(UserInfo, Vec<String>), TokenError> {
    let accepted: Vec<String> = audiences
        .iter()
        .filter(|a| API_AUDIENCES.contains(a))
        .map(|a| a.to_string())
        .collect();
    if accepted.is_empty() {
        return Err(TokenError::Rejected("token audiences are invalid".into()));
    }
    let lookup_failed = |what: &str| TokenError::Rejected(format!("token lookup failed: {what}"));
    let secret = registry
        .get(
            &kinds::secret::V1,
            Some(&claims.namespace),
            &claims.secret_name,
        )
        .await
        .map_err(|e| lookup_failed(&e.message))?;
    let held = secret
        .pointer("/data/token")
        .and_then(Value::as_str)
        .and_then(|t| {
            use base64::Engine as _;
            base64::engine::general_purpose::STANDARD.decode(t).ok()
        })
        .unwrap_or_default();
    if held != token.as_bytes() {
        return Err(TokenError::Rejected(format!(
            "token of secret {}/{} does not match",
            claims.namespace, claims.secret_name
        )));
    }
    let account = registry
        .get(
            &kinds::service_account::V1,
            Some(&claims.namespace),
            &claims.service_account_name,
        )
        .await
        .map_err(|e| lookup_failed(&e.message))?;
    if uid_of(&account) != claims.service_account_uid {
        return Err(TokenError::Rejected(format!(
            "service account UID ({}) does not match claim ({})",
            uid_of(&account),
            claims.service_account_uid
        )));
    }
    Ok((claims.user(), accepted))
}

/// Answers a TokenReview: whether its token authenticates, as whom, and for which of the
/// audiences asked (the API server's when none are).
pub async fn token_review(
    registry: &Registry,
    mut review: Value,
    now: i64,
) -> Result<Value, ApiError> {
    let token = text_at(&review, "/spec/token").to_string();
    if token.is_empty() {
        return Err(ApiError::bad_request(
            "token is required for TokenReview in authentication",
        ));
    }
    let asked = strings_at(&review, "/spec/audiences");
    let audiences: Vec<&str> = if asked.is_empty() {
        API_AUDIENCES.to_vec()
    } else {
        asked.iter().map(String::as_str).collect()
    };
    let status = match authenticate(registry, &token, &audiences, now).await {
        Ok((user, accepted)) => {
            let mut info = json!({"username": user.name, "uid": user.uid, "groups": user.groups});
            if !user.extra.is_empty() {
                info["extra"] = json!(user.extra);
            }
            json!({"authenticated": true, "user": info, "audiences": accepted})
        }
        Err(e) => {
            tracing::debug!(error = %e, "TokenReview refused a token");
            json!({"user": {}, "error": format!("[invalid bearer token, {e}]")})
        }
    };
    if let Some(obj) = review.as_object_mut() {
        obj.insert("status".into(), status);
        let metadata = obj.entry("metadata").or_insert_with(|| json!({}));
        if let Some(metadata) = metadata.as_object_mut() {
            metadata.entry("creationTimestamp").or_insert(Value::Null);
        }
    }
    Ok(review)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_paths_name_namespace_and_service_account() {
        assert_eq!(
            parse_token_path("/api/v1/namespaces/dev/serviceaccounts/builder/token"),
            Some(("dev".to_string(), "builder".to_string()))
        );
        assert_eq!(
            parse_token_path("/api/v1/namespaces/dev/serviceaccounts/builder"),
            None
        );
        assert_eq!(
            parse_token_path("/api/v1/namespaces/dev/pods/builder/token"),
            None
        );
    }

    #[test]
    fn only_kubelet_shaped_tokens_are_extended_to_a_year() {
        let account = ObjectRef {
            name: "default".into(),
            uid: "sa".into(),
        };
        let api: Vec<String> = API_AUDIENCES.iter().map(|a| a.to_string()).collect();
        let pod = Some(ObjectRef {
            name: "web".into(),
            uid: "p".into(),
        });
        let mut kubelet = Claims::new("dev", account.clone(), api.clone(), 1_000, 3607);
        kubelet.kubernetes.pod = pod.clone();
        extend_kubelet_token(&mut kubelet, 3607, 1_000);
        assert_eq!(kubelet.exp, 1_000 + EXTENDED_EXPIRATION_SECONDS);
        assert_eq!(kubelet.kubernetes.warnafter, Some(1_000 + 3607));

        let mut other_length = Claims::new("dev", account.clone(), api.clone(), 1_000, 3600);
        other_length.kubernetes.pod = pod.clone();
        extend_kubelet_token(&mut other_length, 3600, 1_000);
        assert_eq!(other_length.exp, 4_600);
        assert_eq!(other_length.kubernetes.warnafter, None);

        let mut unbound = Claims::new("dev", account.clone(), api, 1_000, 3607);
        extend_kubelet_token(&mut unbound, 3607, 1_000);
        assert_eq!(unbound.exp, 4_607);

        let mut foreign = Claims::new("dev", account, vec!["vault".into()], 1_000, 3607);
        foreign.kubernetes.pod = pod;
        extend_kubelet_token(&mut foreign, 3607, 1_000);
        assert_eq!(foreign.exp, 4_607);
    }

    #[test]
    fn only_three_part_tokens_are_tried_as_jwts() {
        assert!(looks_like_jwt("a.b.c"));
        assert!(!looks_like_jwt("0123456789abcdef"));
    }
}
