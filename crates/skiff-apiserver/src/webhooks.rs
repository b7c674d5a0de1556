//! Dynamic admission: the API server consults the HTTPS endpoints named by
//! MutatingWebhookConfigurations and ValidatingWebhookConfigurations before an object is
//! stored, as kube-apiserver does. Mutating webhooks are called one after another (their
//! configurations by name, webhooks in their listed order) and may return a JSONPatch;
//! validating webhooks are called together once the object passed the kind's validation.
//!
//! Each call sends an `admission.k8s.io/v1` AdmissionReview and reads one back. A webhook
//! that refuses is reported as `admission webhook "NAME" denied the request: MESSAGE`; one
//! that cannot be called (refused connection, timeout, TLS failure, malformed answer) is
//! skipped under `failurePolicy: Ignore` and refuses the request under `Fail` with
//! `failed calling webhook "NAME": ...` as an internal error, as upstream words it.
//!
//! A webhook named by `clientConfig.service` is reached at the Service's ready endpoints (its
//! Endpoints object), not at its cluster IP: the API server does not always run where the
//! service proxy routes cluster IPs. The TLS name checked is `NAME.NAMESPACE.svc`, as upstream
//! checks it.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::{json, Map, Value};
use skiff_api::kinds::webhook_configuration::{self, DEFAULT_TIMEOUT_SECONDS};
use skiff_api::resources::ResourceInfo;
use skiff_api::webhook_matching::{self, ConditionOutcome, RequestAttributes};
use skiff_auth::user::UserInfo;

use crate::meta;
use crate::registry::{ListOptions, Registry};
use crate::status::ApiError;

/// The largest AdmissionReview answer read from a webhook.
const MAX_RESPONSE_BYTES: usize = 3 * 1024 * 1024;

tokio::task_local! {
    /// Who makes the request being served, for the `userInfo` of AdmissionReviews; the HTTP
    /// layer sets it around each request. Writes made by the server itself have none.
    pub static REQUEST_USER: UserInfo;
}

/// One write as webhooks see it.
pub struct AdmissionAttempt<'a> {
    /// The resource written, in the version the client used.
    pub resource: &'a ResourceInfo,
    /// The subresource written, or `""`.
    pub subresource: &'a str,
    /// `CREATE`, `UPDATE` or `DELETE`.
    pub operation: &'a str,
    /// The object's namespace, `""` when cluster-scoped.
    pub namespace: &'a str,
    /// The object's name.
    pub name: &'a str,
    /// The new object (none on delete), in the client's version.
    pub object: Option<Value>,
    /// The object before the write (none on create), in the client's version.
    pub old_object: Option<Value>,
    /// Whether the write is a dry run.
    pub dry_run: bool,
}

impl AdmissionAttempt<'_> {
    /// The attributes rules are matched against.
    pub(crate) fn attributes(&self) -> RequestAttributes<'_> {
        RequestAttributes {
            operation: self.operation,
            group: self.resource.group,
            version: self.resource.version,
            resource: self.resource.plural,
            subresource: self.subresource,
            namespace: if self.is_namespace_object() {
                self.name
            } else {
                self.namespace
            },
        }
    }

    fn is_namespace_object(&self) -> bool {
        self.resource.group.is_empty() && self.resource.plural == "namespaces"
    }

    /// The AdmissionReview sent to a webhook.
    fn review(&self, uid: &str) -> Value {
        let user = REQUEST_USER
            .try_with(|user| {
                json!({"username": user.name, "uid": user.uid, "groups": user.groups,
                       "extra": user.extra})
            })
            .unwrap_or_else(|_| json!({}));
        let gvk = json!({"group": self.resource.group, "version": self.resource.version,
                         "kind": self.resource.kind});
        let gvr = json!({"group": self.resource.group, "version": self.resource.version,
                         "resource": self.resource.plural});
        let options_kind = match self.operation {
            "CREATE" => "CreateOptions",
            "UPDATE" => "UpdateOptions",
            _ => "DeleteOptions",
        };
        let mut request = json!({
            "uid": uid, "kind": gvk, "resource": gvr, "requestKind": gvk,
            "requestResource": gvr, "name": self.name, "operation": self.operation,
            "userInfo": user, "object": self.object, "oldObject": self.old_object,
            "dryRun": self.dry_run,
            "options": {"apiVersion": "meta.k8s.io/v1", "kind": options_kind},
        });
        if !self.subresource.is_empty() {
            request["subResource"] = json!(self.subresource);
            request["requestSubResource"] = json!(self.subresource);
        }
        if !self.namespace.is_empty() {
            request["namespace"] = json!(self.namespace);
        }
        json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
               "request": request})
    }
}

/// A webhook's answer, once read and checked.
struct Verdict {
    allowed: bool,
    status: Value,
    patch: Option<Vec<u8>>,
    warnings: Vec<String>,
}

/// Why a webhook could not be called, in the words upstream's `ErrCallingWebhook` uses.
struct CallFailure(String);

impl Registry {
    /// The webhooks of every configuration of `resource`'s kind, configurations by name, from
    /// the cache while no configuration was written since it was listed.
    async fn webhooks_of(&self, resource: &ResourceInfo) -> Result<Vec<Value>, ApiError> {
        let cache = self.webhook_cache();
        let both = match cache.current() {
            Some(both) => both,
            None => {
                let tag = cache.generation();
                let both = Arc::new((
                    self.list_webhooks(&webhook_configuration::MUTATING_V1)
                        .await?,
                    self.list_webhooks(&webhook_configuration::VALIDATING_V1)
                        .await?,
                ));
                cache.offer(tag, both.clone());
                both
            }
        };
        Ok(
            if resource.plural == webhook_configuration::MUTATING_V1.plural {
                both.0.clone()
            } else {
                both.1.clone()
            },
        )
    }

    /// Reads the webhooks of every configuration of one kind from the store.
    async fn list_webhooks(&self, resource: &ResourceInfo) -> Result<Vec<Value>, ApiError> {
        let mut configurations = self
            .list(resource, None, &ListOptions::default())
            .await?
            .items;
        configurations.sort_by(|a, b| meta::name(a).cmp(meta::name(b)));
        Ok(configurations
            .into_iter()
            .flat_map(|c| match c.get("webhooks") {
                Some(Value::Array(items)) => items.clone(),
                _ => Vec::new(),
            })
            .collect())
    }

    /// The labels the namespace selector is matched against: the namespace object's own for a
    /// namespace, its namespace's for a namespaced object, none for other cluster-scoped ones.
    pub(crate) async fn namespace_labels(
        &self,
        attempt: &AdmissionAttempt<'_>,
    ) -> Result<Option<Map<String, Value>>, ApiError> {
        let labels_of = |obj: &Value| {
            obj.pointer("/metadata/labels")
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default()
        };
        if attempt.is_namespace_object() {
            let obj = attempt.object.as_ref().or(attempt.old_object.as_ref());
            return Ok(Some(obj.map(labels_of).unwrap_or_default()));
        }
        if attempt.namespace.is_empty() {
            return Ok(None);
        }
        let ns = &skiff_api::kinds::namespace::V1;
        match self.get(ns, None, attempt.namespace).await {
            Ok(obj) => Ok(Some(labels_of(&obj))),
            Err(e) if e.code == 404 => Ok(Some(Map::new())),
            Err(e) => Err(e),
        }
    }

    async fn matching_webhooks(
        &self,
        configurations: &ResourceInfo,
        attempt: &AdmissionAttempt<'_>,
    ) -> Result<Vec<Value>, ApiError> {
        if webhook_matching::is_exempt(attempt.resource.group, attempt.resource.plural) {
            return Ok(Vec::new());
        }
        let webhooks = self.webhooks_of(configurations).await?;
        if webhooks.is_empty() {
            return Ok(webhooks);
        }
        let labels = self.namespace_labels(attempt).await?;
        let attrs = attempt.attributes();
        let matched: Vec<Value> = webhooks
            .into_iter()
            .filter(|w| {
                webhook_matching::webhook_matches(
                    w,
                    &attrs,
                    labels.as_ref(),
                    attempt.object.as_ref(),
                    attempt.old_object.as_ref(),
                )
            })
            .collect();
        if !matched.iter().any(|w| w.get("matchConditions").is_some()) {
            return Ok(matched);
        }
        let mut request = attempt.review("")["request"].take();
        if let Some(fields) = request.as_object_mut() {
            for key in ["uid", "object", "oldObject"] {
                fields.remove(key);
            }
        }
        let user = REQUEST_USER.try_with(UserInfo::clone).ok();
        let authorizer = Some(attempt.authorizer_binding(self.admission_authorizer(user).await?));
        let mut called = Vec::new();
        for webhook in matched {
            match webhook_matching::match_conditions(
                &webhook,
                attempt.object.as_ref(),
                attempt.old_object.as_ref(),
                &request,
                authorizer.clone(),
            ) {
                ConditionOutcome::Call => called.push(webhook),
                ConditionOutcome::Skip => {}
                ConditionOutcome::Fail(message) => {
                    return Err(condition_refusal(attempt, &message));
                }
            }
        }
        Ok(called)
    }

    /// Calls the mutating webhooks the write concerns, in order, applying each one's patch to
    /// `attempt.object`. Returns the webhooks' warnings.
    pub(crate) async fn run_mutating_webhooks(
        &self,
        attempt: &mut AdmissionAttempt<'_>,
    ) -> Result<Vec<String>, ApiError> {
        let webhooks = self
            .matching_webhooks(&webhook_configuration::MUTATING_V1, attempt)
            .await?;
        let mut warnings = Vec::new();
        for webhook in webhooks {
            let name = webhook_name(&webhook);
            let verdict = match self.call(&webhook, attempt).await {
                Ok(verdict) => verdict,
                Err(failure) => {
                    fail_or_ignore(&webhook, failure)?;
                    continue;
                }
            };
            warnings.extend(verdict.warnings.iter().cloned());
            if !verdict.allowed {
                return Err(denial(&name, &verdict.status));
            }
            if let (Some(patch), Some(object)) = (&verdict.patch, attempt.object.as_mut()) {
                if let Err(failure) = apply_patch(object, patch) {
                    fail_or_ignore(&webhook, failure)?;
                }
            }
        }
        Ok(warnings)
    }

    /// Evaluates the ValidatingAdmissionPolicies the write concerns, then calls the validating
    /// webhooks it concerns, all at once, as upstream orders the two plugins. Returns their
    /// warnings, or the first refusal (policies first, then in the webhooks' order).
    pub(crate) async fn run_validating_webhooks(
        &self,
        attempt: &AdmissionAttempt<'_>,
    ) -> Result<Vec<String>, ApiError> {
        // NodeRestriction runs before the webhooks, as compiled-in plugins do.
        if let Ok(Err(reason)) =
            REQUEST_USER.try_with(|user| crate::node_restriction::admit(user, attempt))
        {
            return Err(crate::policy_admission::forbidden(
                attempt.resource,
                attempt.name,
                &reason,
            ));
        }
        let mut warnings = self.run_admission_policies(attempt).await?;
        let webhooks = self
            .matching_webhooks(&webhook_configuration::VALIDATING_V1, attempt)
            .await?;
        let calls = webhooks.iter().map(|w| self.call(w, attempt));
        let answers = futures::future::join_all(calls).await;
        let mut refusal = None;
        for (webhook, answer) in webhooks.iter().zip(answers) {
            let outcome = match answer {
                Ok(verdict) => {
                    warnings.extend(verdict.warnings.iter().cloned());
                    if verdict.allowed {
                        Ok(())
                    } else {
                        Err(denial(&webhook_name(webhook), &verdict.status))
                    }
                }
                Err(failure) => fail_or_ignore(webhook, failure),
            };
            if let (Err(e), None) = (outcome, &refusal) {
                refusal = Some(e);
            }
        }
        match refusal {
            Some(e) => Err(e),
            None => Ok(warnings),
        }
    }

    async fn call(
        &self,
        webhook: &Value,
        attempt: &AdmissionAttempt<'_>,
    ) -> Result<Verdict, CallFailure> {
        let timeout_seconds = webhook
            .get("timeoutSeconds")
            .and_then(Value::as_i64)
            .unwrap_or(DEFAULT_TIMEOUT_SECONDS)
            .clamp(1, webhook_configuration::MAX_TIMEOUT_SECONDS);
        let target = self.target_of(webhook).await?;
        let url = format!("{}?timeout={timeout_seconds}s", target.url);
        let uid = uuid::Uuid::new_v4().to_string();
        let body = serde_json::to_vec(&attempt.review(&uid))
            .map_err(|e| CallFailure(format!("failed to encode the review: {e}")))?;
        let exchange = post(&target, &url, body);
        let answer = tokio::time::timeout(Duration::from_secs(timeout_seconds as u64), exchange)
            .await
            .unwrap_or_else(|_| Err("context deadline exceeded".to_string()))
            .map_err(|e| CallFailure(format!("failed to call webhook: Post \"{url}\": {e}")))?;
        read_verdict(&answer, &uid)
    }

    /// Where a webhook is called: its URL, or the ready endpoints of its Service.
    async fn target_of(&self, webhook: &Value) -> Result<Target, CallFailure> {
        let config = webhook.get("clientConfig").cloned().unwrap_or_default();
        let ca_bundle = match config.get("caBundle").and_then(Value::as_str) {
            Some(text) => base64::engine::general_purpose::STANDARD
                .decode(text)
                .map_err(|e| CallFailure(format!("could not get REST client: caBundle: {e}")))?,
            None => Vec::new(),
        };
        if let Some(url) = config.get("url").and_then(Value::as_str) {
            let rest = url.strip_prefix("https://").unwrap_or(url);
            let authority = rest.split(['/', '?']).next().unwrap_or("");
            let host = match authority.rsplit_once(':') {
                Some((host, port)) if port.parse::<u16>().is_ok() => host,
                _ => authority,
            };
            let address = if authority.contains(':') && !authority.ends_with(']') {
                authority.to_string()
            } else {
                format!("{authority}:443")
            };
            return Ok(Target {
                url: url.to_string(),
                address,
                server_name: host
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .to_string(),
                ca_bundle,
            });
        }
        let service = config.get("service").cloned().unwrap_or_default();
        let name = service.get("name").and_then(Value::as_str).unwrap_or("");
        let namespace = service
            .get("namespace")
            .and_then(Value::as_str)
            .unwrap_or("");
        let port = service.get("port").and_then(Value::as_i64).unwrap_or(443);
        let path = service.get("path").and_then(Value::as_str).unwrap_or("");
        let address = self
            .service_endpoint(namespace, name, port)
            .await
            .map_err(CallFailure)?;
        Ok(Target {
            url: format!("https://{name}.{namespace}.svc:{port}{path}"),
            address,
            server_name: format!("{name}.{namespace}.svc"),
            ca_bundle,
        })
    }

    /// The address of a ready endpoint serving `port` of a Service, as upstream's endpoint
    /// routing resolves webhook services.
    async fn service_endpoint(
        &self,
        namespace: &str,
        name: &str,
        port: i64,
    ) -> Result<String, String> {
        let not_found = || format!("service \"{name}\" not found");
        let service = self
            .get(&skiff_api::kinds::service::V1, Some(namespace), name)
            .await
            .map_err(|_| not_found())?;
        let ports = service
            .pointer("/spec/ports")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let service_port = ports
            .iter()
            .find(|p| p.get("port").and_then(Value::as_i64) == Some(port))
            .ok_or_else(|| format!("no service port {port} found for service \"{name}\""))?;
        let port_name = service_port
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("");
        let endpoints = self
            .get(&skiff_api::kinds::endpoints::V1, Some(namespace), name)
            .await
            .map_err(|_| format!("endpoints \"{name}\" not found"))?;
        for subset in endpoints
            .get("subsets")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let target_port = subset
                .get("ports")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .find(|p| p.get("name").and_then(Value::as_str).unwrap_or("") == port_name)
                .and_then(|p| p.get("port").and_then(Value::as_i64));
            let address = subset.pointer("/addresses/0/ip").and_then(Value::as_str);
            if let (Some(ip), Some(port)) = (address, target_port) {
                return Ok(if ip.contains(':') {
                    format!("[{ip}]:{port}")
                } else {
                    format!("{ip}:{port}")
                });
            }
        }
        Err(format!(
            "service {namespace}/{name} has no active endpoints"
        ))
    }
}

/// Where one webhook call goes.
struct Target {
    url: String,
    address: String,
    server_name: String,
    ca_bundle: Vec<u8>,
}

fn webhook_name(webhook: &Value) -> String {
    webhook
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string()
}

/// Under `failurePolicy: Ignore` a failed call lets the write through; under `Fail` (the
/// default) it refuses it as an internal error, as upstream's dispatchers do.
fn fail_or_ignore(webhook: &Value, failure: CallFailure) -> Result<(), ApiError> {
    let name = webhook_name(webhook);
    if webhook.get("failurePolicy").and_then(Value::as_str) == Some("Ignore") {
        tracing::warn!(webhook = %name, error = %failure.0, "ignoring a failed admission webhook");
        return Ok(());
    }
    let reason = format!("failed calling webhook \"{name}\": {}", failure.0);
    Err(ApiError {
        details: Some(json!({"causes": [{"message": reason}]})),
        ..ApiError::internal(format!("Internal error occurred: {reason}"))
    })
}

/// A webhook whose `matchConditions` could not be evaluated under `failurePolicy: Fail`
/// refuses the request as upstream's dispatchers do: `deployments.apps "web" is forbidden:
/// <the evaluation errors>`.
fn condition_refusal(attempt: &AdmissionAttempt<'_>, message: &str) -> ApiError {
    ApiError {
        details: Some(
            json!({"name": attempt.name, "group": attempt.resource.group,
            "kind": attempt.resource.plural}),
        ),
        ..ApiError::forbidden(format!(
            "{} \"{}\" is forbidden: {message}",
            attempt.resource.qualified_plural(),
            attempt.name
        ))
    }
}

/// Upstream's `ToStatusErr`: a refusal keeps the webhook's code when it is an error code
/// (400 otherwise) and is worded `admission webhook "NAME" denied the request: MESSAGE`.
pub fn denial(name: &str, status: &Value) -> ApiError {
    let denied_by = format!("admission webhook \"{name}\" denied the request");
    let message = status.get("message").and_then(Value::as_str).unwrap_or("");
    let reason = status.get("reason").and_then(Value::as_str).unwrap_or("");
    let text = if !message.is_empty() {
        format!("{denied_by}: {message}")
    } else if !reason.is_empty() {
        format!("{denied_by}: {reason}")
    } else {
        format!("{denied_by} without explanation")
    };
    let code = status
        .get("code")
        .and_then(Value::as_u64)
        .and_then(|c| u16::try_from(c).ok())
        .filter(|c| (400..600).contains(c))
        .unwrap_or(400);
    ApiError {
        code,
        reason: known_reason(reason),
        message: text,
        details: status.get("details").cloned(),
    }
}

/// The `StatusReason` a webhook gave, when it is one Kubernetes defines; other text is kept in
/// the message only.
fn known_reason(reason: &str) -> &'static str {
    const KNOWN: &[&str] = &[
        "Unauthorized",
        "Forbidden",
        "NotFound",
        "AlreadyExists",
        "Conflict",
        "Gone",
        "Invalid",
        "ServerTimeout",
        "Timeout",
        "TooManyRequests",
        "BadRequest",
        "MethodNotAllowed",
        "NotAcceptable",
        "RequestEntityTooLarge",
        "UnsupportedMediaType",
        "InternalError",
        "Expired",
        "ServiceUnavailable",
    ];
    KNOWN.iter().copied().find(|k| *k == reason).unwrap_or("")
}

fn read_verdict(body: &[u8], uid: &str) -> Result<Verdict, CallFailure> {
    let invalid =
        |detail: String| CallFailure(format!("received invalid webhook response: {detail}"));
    let review: Value = serde_json::from_slice(body).map_err(|e| invalid(e.to_string()))?;
    let response = review
        .get("response")
        .filter(|r| r.is_object())
        .ok_or_else(|| invalid("webhook response was absent".to_string()))?;
    let answered_uid = response.get("uid").and_then(Value::as_str).unwrap_or("");
    if answered_uid != uid {
        return Err(invalid(format!(
            "expected response.uid=\"{uid}\", got \"{answered_uid}\""
        )));
    }
    let patch = match response.get("patch").and_then(Value::as_str) {
        None => None,
        Some(text) => {
            let patch_type = response
                .get("patchType")
                .and_then(Value::as_str)
                .unwrap_or("");
            if patch_type != "JSONPatch" {
                return Err(invalid(format!(
                    "expected patchType \"JSONPatch\", got \"{patch_type}\""
                )));
            }
            Some(
                base64::engine::general_purpose::STANDARD
                    .decode(text)
                    .map_err(|e| invalid(e.to_string()))?,
            )
        }
    };
    Ok(Verdict {
        allowed: response
            .get("allowed")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        status: response.get("status").cloned().unwrap_or_default(),
        patch,
        warnings: response
            .get("warnings")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect(),
    })
}

fn apply_patch(object: &mut Value, patch: &[u8]) -> Result<(), CallFailure> {
    let patch: json_patch::Patch = serde_json::from_slice(patch)
        .map_err(|e| CallFailure(format!("JSONPatch decode error: {e}")))?;
    let mut patched = object.clone();
    json_patch::patch(&mut patched, &patch)
        .map_err(|e| CallFailure(format!("JSONPatch apply error: {e}")))?;
    *object = patched;
    Ok(())
}

/// Sends one POST over HTTPS and returns the answer's body; errors are worded as Go's
/// network errors are, since upstream's messages quote them.
async fn post(target: &Target, url: &str, body: Vec<u8>) -> Result<Vec<u8>, String> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&target.ca_bundle).flatten() {
        let _ = roots.add(cert);
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    let server_name = ServerName::try_from(target.server_name.clone())
        .map_err(|e| format!("invalid server name {:?}: {e}", target.server_name))?;
    let tcp = tokio::net::TcpStream::connect(&target.address)
        .await
        .map_err(|e| {
            let cause = match e.kind() {
                std::io::ErrorKind::ConnectionRefused => "connection refused".to_string(),
                _ => e.to_string(),
            };
            format!("dial tcp {}: connect: {cause}", target.address)
        })?;
    let stream = tokio_rustls::TlsConnector::from(Arc::new(tls))
        .connect(server_name, tcp)
        .await
        .map_err(|e| format!("tls: failed to verify certificate: {e}"))?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(connection);
    let after_scheme = url.strip_prefix("https://").unwrap_or(url);
    let path_and_query = match after_scheme.find(['/', '?']) {
        Some(i) if after_scheme[i..].starts_with('/') => after_scheme[i..].to_string(),
        Some(i) => format!("/{}", &after_scheme[i..]),
        None => "/".to_string(),
    };
    let request = hyper::Request::post(path_and_query)
        .header(hyper::header::HOST, target.address.as_str())
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .header(hyper::header::ACCEPT, "application/json")
        .body(axum::body::Body::from(Bytes::from(body)))
        .map_err(|e| e.to_string())?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status();
    let bytes = axum::body::to_bytes(
        axum::body::Body::new(response.into_body()),
        MAX_RESPONSE_BYTES,
    )
    .await
    .map_err(|e| e.to_string())?;
    if !status.is_success() {
        return Err(format!(
            "expected webhook response of admission.k8s.io/v1, Kind=AdmissionReview, got status {}",
            status.as_u16()
        ));
    }
    Ok(bytes.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn denials_are_worded_and_coded_as_upstream() {
        let with_message = denial("v.example.com", &json!({"message": "no", "code": 403}));
        assert_eq!(with_message.code, 403);
        assert_eq!(
            with_message.message,
            "admission webhook \"v.example.com\" denied the request: no"
        );
        let bare = denial("v.example.com", &json!({}));
        assert_eq!(bare.code, 400);
        assert_eq!(
            bare.message,
            "admission webhook \"v.example.com\" denied the request without explanation"
        );
        let low_code = denial(
            "v.example.com",
            &json!({"code": 200, "reason": "Forbidden"}),
        );
        assert_eq!((low_code.code, low_code.reason), (400, "Forbidden"));
    }

    #[test]
    fn match_condition_errors_refuse_as_forbidden() {
        let attempt = AdmissionAttempt {
            resource: &skiff_api::kinds::config_map::V1,
            subresource: "",
            operation: "CREATE",
            namespace: "default",
            name: "settings",
            object: None,
            old_object: None,
            dry_run: false,
        };
        let error = condition_refusal(&attempt, "expression 'x' resulted in error: no such key");
        assert_eq!((error.code, error.reason), (403, "Forbidden"));
        assert_eq!(
            error.message,
            "configmaps \"settings\" is forbidden: expression 'x' resulted in error: no such key"
        );
    }

    #[test]
    fn failures_refuse_under_fail_and_pass_under_ignore() {
        let fail = json!({"name": "f.example.com", "failurePolicy": "Fail"});
        let err = fail_or_ignore(&fail, CallFailure("boom".into())).unwrap_err();
        assert_eq!(err.code, 500);
        assert_eq!(
            err.message,
            "Internal error occurred: failed calling webhook \"f.example.com\": boom"
        );
        let ignore = json!({"name": "i.example.com", "failurePolicy": "Ignore"});
        assert!(fail_or_ignore(&ignore, CallFailure("boom".into())).is_ok());
    }

    #[test]
    fn answers_are_checked_and_patches_applied() {
        let patch = base64::engine::general_purpose::STANDARD
            .encode(br#"[{"op":"add","path":"/metadata/labels","value":{"added":"yes"}}]"#);
        let answer = json!({"response": {"uid": "u1", "allowed": true, "patch": patch,
            "patchType": "JSONPatch", "warnings": ["careful"]}});
        let verdict = read_verdict(answer.to_string().as_bytes(), "u1")
            .ok()
            .unwrap();
        assert!(verdict.allowed);
        assert_eq!(verdict.warnings, vec!["careful"]);
        let mut object = json!({"metadata": {"name": "x"}});
        assert!(apply_patch(&mut object, &verdict.patch.unwrap()).is_ok());
        assert_eq!(object["metadata"]["labels"]["added"], "yes");
        let wrong_uid = read_verdict(answer.to_string().as_bytes(), "u2")
            .err()
            .unwrap();
        assert_eq!(
            wrong_uid.0,
            "received invalid webhook response: expected response.uid=\"u2\", got \"u1\""
        );
        let absent = read_verdict(b"{}", "u1").err().unwrap();
        assert_eq!(
            absent.0,
            "received invalid webhook response: webhook response was absent"
        );
    }
}
