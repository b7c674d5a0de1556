//! The CertificateSigningRequest approver and signer, as kube-controller-manager's
//! `csrapproving` and `csrsigning` controllers: a kubelet's request for a client certificate
//! (`system:node:<name>` in `system:nodes`, for the `kubernetes.io/kube-apiserver-client-kubelet`
//! signer) is approved when its requester may `create` `certificatesigningrequests/nodeclient`
//! (or `selfnodeclient`, for a node renewing its own); approved requests for the client signers
//! get a certificate from the cluster CA in `status.certificate`.
//!
//! Pure planners decide; the shell watches requests, asks an [`AccessReviewer`], signs through
//! a [`CertificateIssuer`] and writes through the client.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use futures::future::BoxFuture;
use serde_json::{json, Value};
use skiff_api::kinds;
use skiff_api::kinds::certificate_signing_request::KUBELET_CLIENT_SIGNER;
use skiff_auth::user::UserInfo;
use skiff_client::{Client, Scope};
use skiff_runtime::{Informer, WorkQueue};

use crate::shell::{run_key_syncs, KeySync, SyncError};

/// The signer of kubelet serving certificates (a node's HTTPS endpoint), which the approver
/// and the signer serve too, as k3s does for its agents.
pub const KUBELET_SERVING_SIGNER: &str = "kubernetes.io/kubelet-serving";
/// The message of the approver's `Approved` condition on a node's serving certificate.
pub const APPROVED_SERVING_MESSAGE: &str =
    "Auto approving kubelet serving certificate after SubjectAccessReview.";
/// The usages a kubelet serving certificate may carry.
const SERVING_USAGES: &[&str] = &["digital signature", "key encipherment", "server auth"];

/// The signer of client certificates for any user, which the signer serves too.
pub const APISERVER_CLIENT_SIGNER: &str = "kubernetes.io/kube-apiserver-client";
/// The prefix of a node's user name.
pub const NODE_USER_PREFIX: &str = "system:node:";
/// The group every node is in.
pub const NODES_GROUP: &str = "system:nodes";
/// The reason of the approver's `Approved` condition.
pub const APPROVED_REASON: &str = "AutoApproved";
/// The message of the approver's `Approved` condition.
pub const APPROVED_MESSAGE: &str =
    "Auto approving kubelet client certificate after SubjectAccessReview.";
/// The reason of the signer's `Failed` condition for a request it refuses.
pub const SIGNER_FAILED_REASON: &str = "SignerValidationFailure";
/// The longest lifetime the signer gives (kube-controller-manager's
/// `--cluster-signing-duration` default: one year).
pub const DEFAULT_SIGNING_DURATION: Duration = Duration::from_secs(365 * 24 * 3600);

/// The usages a client certificate may carry.
const CLIENT_USAGES: &[&str] = &["digital signature", "key encipherment", "client auth"];

/// What a request's PKCS#10 body says about the certificate it asks for.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RequestSubject {
    /// The subject's common name.
    pub common_name: String,
    /// The subject's organizations.
    pub organizations: Vec<String>,
    /// Whether it asks for any subject alternative name (DNS, IP, email or URI).
    pub has_alternative_names: bool,
}

/// Reads the subject of the PEM request in a CertificateSigningRequest's `spec.request`.
pub fn request_subject(csr: &Value) -> Result<RequestSubject, String> {
    let encoded = csr
        .pointer("/spec/request")
        .and_then(Value::as_str)
        .ok_or("the request has no spec.request")?;
    let pem_bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .map_err(|e| format!("spec.request is not base64: {e}"))?;
    let (_, pem) = x509_parser::pem::parse_x509_pem(&pem_bytes)
        .map_err(|e| format!("spec.request is not PEM: {e}"))?;
    if pem.label != "CERTIFICATE REQUEST" {
        return Err("PEM block type must be CERTIFICATE REQUEST".to_string());
    }
    let (_, request) = <x509_parser::certification_request::X509CertificationRequest
        as x509_parser::prelude::FromDer<x509_parser::error::X509Error>>::from_der(&pem.contents)
    .map_err(|e| format!("cannot parse the certificate request: {e}"))?;
    let subject = &request.certification_request_info.subject;
    let common_name = subject
        .iter_common_name()
        .filter_map(|a| a.as_str().ok())
        .next()
        .unwrap_or("")
        .to_string();
    let organizations = subject
        .iter_organization()
        .filter_map(|a| a.as_str().ok().map(str::to_string))
        .collect();
    let has_alternative_names = request.requested_extensions().is_some_and(|mut exts| {
        exts.any(|ext| {
            matches!(ext, x509_parser::extensions::ParsedExtension::SubjectAlternativeName(san)
                if !san.general_names.is_empty())
        })
    });
    Ok(RequestSubject {
        common_name,
        organizations,
        has_alternative_names,
    })
}

fn text<'v>(value: &'v Value, pointer: &str) -> &'v str {
    value.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

fn usages(csr: &Value) -> Vec<&str> {
    csr.pointer("/spec/usages")
        .and_then(Value::as_array)
        .map(|list| list.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

fn has_condition(csr: &Value, kind: &str) -> bool {
    csr.pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|list| list.iter().any(|c| text(c, "/type") == kind))
}

/// Whether a request asks for a kubelet client certificate as Kubernetes defines one: CN
/// `system:node:<name>`, organization exactly `system:nodes`, no alternative names, and the
/// usages `digital signature` and `client auth` (with `key encipherment` optional).
pub fn is_node_client_request(csr: &Value, subject: &RequestSubject) -> bool {
    let mut wanted = usages(csr);
    wanted.sort_unstable();
    wanted.dedup();
    let usages_ok = wanted.contains(&"digital signature")
        && wanted.contains(&"client auth")
        && wanted.iter().all(|u| CLIENT_USAGES.contains(u));
    subject.organizations == [NODES_GROUP]
        && !subject.has_alternative_names
        && subject
            .common_name
            .strip_prefix(NODE_USER_PREFIX)
            .is_some_and(|node| !node.is_empty())
        && usages_ok
}

/// Whether a request asks for a kubelet serving certificate as Kubernetes defines one: CN
/// `system:node:<name>`, organization exactly `system:nodes`, at least one alternative name
/// (the node's addresses and names) and the usages `digital signature` and `server auth`
/// (with `key encipherment` optional).
pub fn is_node_serving_request(csr: &Value, subject: &RequestSubject) -> bool {
    let wanted = usages(csr);
    let usages_ok = wanted.contains(&"digital signature")
        && wanted.contains(&"server auth")
        && wanted.iter().all(|u| SERVING_USAGES.contains(u));
    subject.organizations == [NODES_GROUP]
        && subject.has_alternative_names
        && subject
            .common_name
            .strip_prefix(NODE_USER_PREFIX)
            .is_some_and(|node| !node.is_empty())
        && usages_ok
}

/// What the approver does with a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ApproverPlan {
    /// Nothing: decided already, for another signer, or not a kubelet client request.
    Nothing,
    /// Approve if the requester may `create` any of these `certificatesigningrequests`
    /// subresources, tried in order.
    Review(Vec<&'static str>),
}

/// The approver's decision for `csr`, whose request parsed to `subject` (`None`: unparsable).
pub fn approver_plan(csr: &Value, subject: Option<&RequestSubject>) -> ApproverPlan {
    if has_condition(csr, "Approved") || has_condition(csr, "Denied") {
        return ApproverPlan::Nothing;
    }
    let Some(subject) = subject else {
        return ApproverPlan::Nothing;
    };
    match text(csr, "/spec/signerName") {
        KUBELET_CLIENT_SIGNER => {}
        // A node may have its own serving certificate, asked with its own credential, as a
        // renewal of its client certificate is: the `selfnodeclient` permission decides.
        KUBELET_SERVING_SIGNER => {
            let own = text(csr, "/spec/username") == subject.common_name;
            return if own && is_node_serving_request(csr, subject) {
                ApproverPlan::Review(vec!["selfnodeclient"])
            } else {
                ApproverPlan::Nothing
            };
        }
        _ => return ApproverPlan::Nothing,
    }
    if !is_node_client_request(csr, subject) {
        return ApproverPlan::Nothing;
    }
    if text(csr, "/spec/username") == subject.common_name {
        ApproverPlan::Review(vec!["selfnodeclient", "nodeclient"])
    } else {
        ApproverPlan::Review(vec!["nodeclient"])
    }
}

/// `csr` with the approver's `Approved` condition added, stamped `now` (RFC 3339).
pub fn approved(csr: &Value, now: &str) -> Value {
    let mut out = csr.clone();
    if !out["status"].is_object() {
        out["status"] = json!({});
    }
    if !out["status"]["conditions"].is_array() {
        out["status"]["conditions"] = json!([]);
    }
    let message = if text(csr, "/spec/signerName") == KUBELET_SERVING_SIGNER {
        APPROVED_SERVING_MESSAGE
    } else {
        APPROVED_MESSAGE
    };
    if let Some(list) = out["status"]["conditions"].as_array_mut() {
        list.push(
            json!({"type": "Approved", "status": "True", "reason": APPROVED_REASON,
            "message": message, "lastUpdateTime": now, "lastTransitionTime": now}),
        );
    }
    out
}

/// The requester a request recorded, as the user a review asks about.
pub fn requester(csr: &Value) -> UserInfo {
    let groups = csr
        .pointer("/spec/groups")
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    let extra: BTreeMap<String, Vec<String>> = csr
        .pointer("/spec/extra")
        .cloned()
        .and_then(|v| serde_json::from_value(v).ok())
        .unwrap_or_default();
    UserInfo {
        name: text(csr, "/spec/username").to_string(),
        uid: text(csr, "/spec/uid").to_string(),
        groups,
        extra,
    }
}

/// What the signer does with a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SignerPlan {
    /// Nothing: not approved, denied, failed, issued already, or for a signer not served here.
    Nothing,
    /// Issue a certificate valid for this long.
    Sign(Duration),
    /// Refuse: add a `Failed` condition with this message.
    Fail(String),
}

/// Why a request cannot be a kubelet client certificate, as Kubernetes' kubelet client signer
/// words it; `None` when it is one.
pub fn kubelet_client_refusal(csr: &Value, subject: Option<&RequestSubject>) -> Option<String> {
    let Some(subject) = subject else {
        return Some("unable to parse csr".to_string());
    };
    if subject.organizations != [NODES_GROUP] {
        return Some(format!("subject organization is not {NODES_GROUP}"));
    }
    if subject.has_alternative_names {
        return Some("DNS, email, IP or URI subjectAltNames are not allowed".to_string());
    }
    if !subject.common_name.starts_with(NODE_USER_PREFIX) {
        return Some(format!(
            "subject common name does not begin with {NODE_USER_PREFIX}"
        ));
    }
    (!is_node_client_request(csr, subject)).then(|| {
        "usages did not match [digital signature client auth] or [key encipherment digital signature client auth]".to_string()
    })
}

/// The signer's decision for `csr`, whose request parsed to `subject`; `max_lifetime` is the
/// longest certificate it gives.
pub fn signer_plan(
    csr: &Value,
    subject: Option<&RequestSubject>,
    max_lifetime: Duration,
) -> SignerPlan {
    let signer = text(csr, "/spec/signerName");
    if signer != KUBELET_CLIENT_SIGNER
        && signer != APISERVER_CLIENT_SIGNER
        && signer != KUBELET_SERVING_SIGNER
    {
        return SignerPlan::Nothing;
    }
    if !has_condition(csr, "Approved")
        || has_condition(csr, "Denied")
        || has_condition(csr, "Failed")
        || !text(csr, "/status/certificate").is_empty()
    {
        return SignerPlan::Nothing;
    }
    let asked = csr
        .pointer("/spec/expirationSeconds")
        .and_then(Value::as_u64)
        .map(Duration::from_secs);
    if signer == KUBELET_SERVING_SIGNER {
        if let Some(bad) = usages(csr)
            .into_iter()
            .find(|u| !SERVING_USAGES.contains(u))
        {
            return SignerPlan::Fail(format!(
                "invalid usage for kubelet serving certificate: {bad}"
            ));
        }
        return match subject {
            Some(subject) if is_node_serving_request(csr, subject) => {
                SignerPlan::Sign(asked.map_or(max_lifetime, |d| d.min(max_lifetime)))
            }
            _ => SignerPlan::Fail("not a kubelet serving certificate: the subject must be system:node:<name> in system:nodes with the node's addresses as subjectAltNames, for digital signature and server auth".to_string()),
        };
    }
    if let Some(bad) = usages(csr).into_iter().find(|u| !CLIENT_USAGES.contains(u)) {
        return SignerPlan::Fail(format!("invalid usage for client certificate: {bad}"));
    }
    if signer == KUBELET_CLIENT_SIGNER {
        if let Some(refusal) = kubelet_client_refusal(csr, subject) {
            return SignerPlan::Fail(refusal);
        }
    }
    SignerPlan::Sign(asked.map_or(max_lifetime, |d| d.min(max_lifetime)))
}

/// `csr` with the issued certificate (PEM) in `status.certificate`.
pub fn issued(csr: &Value, certificate_pem: &str) -> Value {
    let mut out = csr.clone();
    if !out["status"].is_object() {
        out["status"] = json!({});
    }
    out["status"]["certificate"] =
        json!(base64::engine::general_purpose::STANDARD.encode(certificate_pem));
    out
}

/// `csr` with the signer's `Failed` condition, stamped `now`.
pub fn failed(csr: &Value, message: &str, now: &str) -> Value {
    let mut out = csr.clone();
    if !out["status"].is_object() {
        out["status"] = json!({});
    }
    if !out["status"]["conditions"].is_array() {
        out["status"]["conditions"] = json!([]);
    }
    if let Some(list) = out["status"]["conditions"].as_array_mut() {
        list.push(
            json!({"type": "Failed", "status": "True", "reason": SIGNER_FAILED_REASON,
            "message": message, "lastUpdateTime": now, "lastTransitionTime": now}),
        );
    }
    out
}

/// Asks whether a user may do something, as a SubjectAccessReview does; the server's
/// authorizer answers, so the approver holds no RBAC logic of its own.
pub trait AccessReviewer: Send + Sync + 'static {
    /// Whether `user` may `verb` the cluster-scoped `resource/subresource` in `group`.
    fn allowed<'a>(
        &'a self,
        user: &'a UserInfo,
        verb: &'a str,
        group: &'a str,
        resource: &'a str,
        subresource: &'a str,
    ) -> BoxFuture<'a, Result<bool, String>>;
}

/// Issues certificates from the cluster CA; the server holds the key, so the controller stays
/// free of key material.
pub trait CertificateIssuer: Send + Sync + 'static {
    /// A PEM certificate for the PEM request `request_pem` (its signature checked), for
    /// `usages`, valid for `lifetime` from now.
    fn issue(
        &self,
        request_pem: &str,
        usages: &[&str],
        lifetime: Duration,
    ) -> Result<String, String>;
}

/// The shell: requests in; approvals and certificates out.
#[derive(Clone)]
pub struct CertificateController {
    client: Arc<dyn Client>,
    requests: Informer,
    reviewer: Arc<dyn AccessReviewer>,
    issuer: Arc<dyn CertificateIssuer>,
    max_lifetime: Duration,
    queue: WorkQueue<String>,
}

impl KeySync for CertificateController {
    async fn sync_key(&self, key: &str) -> Result<Option<Duration>, SyncError> {
        self.sync(key).await
    }
}

impl CertificateController {
    /// Wires the controller to the requests' informer.
    pub fn new(
        client: Arc<dyn Client>,
        requests: Informer,
        reviewer: Arc<dyn AccessReviewer>,
        issuer: Arc<dyn CertificateIssuer>,
        max_lifetime: Duration,
    ) -> Self {
        let controller = CertificateController {
            client,
            requests,
            reviewer,
            issuer,
            max_lifetime,
            queue: WorkQueue::new(),
        };
        let queue = controller.queue.clone();
        controller.requests.add_handler(move |n| {
            let name = text(n.object(), "/metadata/name");
            if !name.is_empty() {
                queue.add(name.to_string());
            }
        });
        controller
    }

    /// Syncs every request once, then follows changes with `workers` concurrent syncs until
    /// the queue shuts down.
    pub async fn run(self, workers: usize) {
        for request in self.requests.list() {
            let name = text(&request, "/metadata/name");
            if !name.is_empty() {
                self.queue.add(name.to_string());
            }
        }
        let queue = self.queue.clone();
        run_key_syncs(self, queue, workers).await;
    }

    /// Stops taking new work.
    pub fn shutdown(&self) {
        self.queue.shutdown();
    }

    async fn sync(&self, name: &str) -> Result<Option<Duration>, SyncError> {
        let Some(csr) = self.requests.get(None, name) else {
            return Ok(None);
        };
        let scope = Scope {
            resource: &kinds::certificate_signing_request::V1,
            namespace: None,
        };
        let now = jiff::Timestamp::now()
            .round(jiff::Unit::Second)
            .unwrap_or_else(|_| jiff::Timestamp::now())
            .to_string();
        let subject = request_subject(&csr).ok();
        if let ApproverPlan::Review(subresources) = approver_plan(&csr, subject.as_ref()) {
            let user = requester(&csr);
            for subresource in subresources {
                let allowed = self
                    .reviewer
                    .allowed(
                        &user,
                        "create",
                        "certificates.k8s.io",
                        "certificatesigningrequests",
                        subresource,
                    )
                    .await
                    .map_err(SyncError::Plan)?;
                if allowed {
                    return match self
                        .client
                        .update_approval(scope, approved(&csr, &now))
                        .await
                    {
                        Ok(_) => Ok(None),
                        Err(e) if e.is_conflict() || e.is_not_found() => Ok(None),
                        Err(e) => Err(e.into()),
                    };
                }
            }
            return Ok(None);
        }
        let update = match signer_plan(&csr, subject.as_ref(), self.max_lifetime) {
            SignerPlan::Nothing => return Ok(None),
            SignerPlan::Fail(message) => failed(&csr, &message, &now),
            SignerPlan::Sign(lifetime) => {
                let pem = base64::engine::general_purpose::STANDARD
                    .decode(text(&csr, "/spec/request"))
                    .ok()
                    .and_then(|bytes| String::from_utf8(bytes).ok())
                    .unwrap_or_default();
                match self.issuer.issue(&pem, &usages(&csr), lifetime) {
                    Ok(certificate) => issued(&csr, &certificate),
                    Err(message) => failed(&csr, &message, &now),
                }
            }
        };
        match self.client.update_status(scope, update).await {
            Ok(_) => Ok(None),
            Err(e) if e.is_conflict() || e.is_not_found() => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
}

/// The server's own authorizer as the approver's reviewer: the answer a SubjectAccessReview
/// would give, without a round trip.
pub struct RegistryAccessReviewer(pub skiff_apiserver::registry::Registry);

impl AccessReviewer for RegistryAccessReviewer {
    fn allowed<'a>(
        &'a self,
        user: &'a UserInfo,
        verb: &'a str,
        group: &'a str,
        resource: &'a str,
        subresource: &'a str,
    ) -> BoxFuture<'a, Result<bool, String>> {
        Box::pin(async move {
            let attrs = skiff_auth::attributes::Attributes::resource(
                user.clone(),
                verb,
                skiff_auth::attributes::ResourceTarget {
                    namespace: String::new(),
                    api_group: group.to_string(),
                    api_version: "v1".to_string(),
                    resource: resource.to_string(),
                    subresource: subresource.to_string(),
                    name: String::new(),
                },
            );
            skiff_apiserver::authz::authorize(&self.0, &attrs)
                .await
                .map(|decision| decision.allowed)
                .map_err(|e| e.message)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node_subject(name: &str) -> RequestSubject {
        RequestSubject {
            common_name: format!("{NODE_USER_PREFIX}{name}"),
            organizations: vec![NODES_GROUP.to_string()],
            has_alternative_names: false,
        }
    }

    fn request(username: &str, usages: Value) -> Value {
        json!({"metadata": {"name": "node-csr-1"}, "spec": {
            "signerName": KUBELET_CLIENT_SIGNER, "username": username,
            "groups": ["system:bootstrappers", "system:authenticated"],
            "usages": usages}, "status": {}})
    }

    #[test]
    fn a_bootstrap_request_for_a_node_client_certificate_is_reviewed_for_nodeclient() {
        let csr = request(
            "system:bootstrap:abcdef",
            json!(["digital signature", "client auth"]),
        );
        assert_eq!(
            approver_plan(&csr, Some(&node_subject("n1"))),
            ApproverPlan::Review(vec!["nodeclient"])
        );
        assert_eq!(requester(&csr).name, "system:bootstrap:abcdef");
        assert_eq!(
            requester(&csr).groups,
            ["system:bootstrappers", "system:authenticated"]
        );
    }

    #[test]
    fn a_node_renewing_its_own_certificate_is_reviewed_for_selfnodeclient_first() {
        let csr = request(
            "system:node:n1",
            json!(["key encipherment", "digital signature", "client auth"]),
        );
        assert_eq!(
            approver_plan(&csr, Some(&node_subject("n1"))),
            ApproverPlan::Review(vec!["selfnodeclient", "nodeclient"])
        );
    }

    #[test]
    fn requests_that_are_not_node_client_certificates_are_left_pending() {
        let good = request(
            "system:bootstrap:abcdef",
            json!(["digital signature", "client auth"]),
        );
        let mut other_org = node_subject("n1");
        other_org.organizations = vec!["system:masters".into()];
        assert_eq!(
            approver_plan(&good, Some(&other_org)),
            ApproverPlan::Nothing
        );
        let mut with_names = node_subject("n1");
        with_names.has_alternative_names = true;
        assert_eq!(
            approver_plan(&good, Some(&with_names)),
            ApproverPlan::Nothing
        );
        let mut not_node = node_subject("n1");
        not_node.common_name = "jane".into();
        assert_eq!(approver_plan(&good, Some(&not_node)), ApproverPlan::Nothing);
        let server = request(
            "system:bootstrap:abcdef",
            json!(["digital signature", "server auth"]),
        );
        assert_eq!(
            approver_plan(&server, Some(&node_subject("n1"))),
            ApproverPlan::Nothing
        );
        let mut other_signer = good.clone();
        other_signer["spec"]["signerName"] = json!("example.com/signer");
        assert_eq!(
            approver_plan(&other_signer, Some(&node_subject("n1"))),
            ApproverPlan::Nothing
        );
        assert_eq!(approver_plan(&good, None), ApproverPlan::Nothing);
    }

    #[test]
    fn decided_requests_are_not_reviewed_again() {
        let csr = request(
            "system:bootstrap:abcdef",
            json!(["digital signature", "client auth"]),
        );
        let done = approved(&csr, "2026-01-01T00:00:00Z");
        assert_eq!(done["status"]["conditions"][0]["reason"], APPROVED_REASON);
        assert_eq!(done["status"]["conditions"][0]["message"], APPROVED_MESSAGE);
        assert_eq!(
            approver_plan(&done, Some(&node_subject("n1"))),
            ApproverPlan::Nothing
        );
        let mut denied = csr.clone();
        denied["status"] = json!({"conditions": [{"type": "Denied", "status": "True"}]});
        assert_eq!(
            approver_plan(&denied, Some(&node_subject("n1"))),
            ApproverPlan::Nothing
        );
    }

    #[test]
    fn the_signer_signs_approved_requests_for_the_asked_lifetime_capped_by_its_own() {
        let year = DEFAULT_SIGNING_DURATION;
        let csr = request(
            "system:bootstrap:abcdef",
            json!(["digital signature", "client auth"]),
        );
        let node = node_subject("n1");
        let subject = Some(&node);
        assert_eq!(
            signer_plan(&csr, subject, year),
            SignerPlan::Nothing,
            "pending: not signed"
        );
        let mut ok = approved(&csr, "2026-01-01T00:00:00Z");
        assert_eq!(signer_plan(&ok, subject, year), SignerPlan::Sign(year));
        ok["spec"]["expirationSeconds"] = json!(3600);
        assert_eq!(
            signer_plan(&ok, subject, year),
            SignerPlan::Sign(Duration::from_secs(3600))
        );
        ok["spec"]["expirationSeconds"] = json!(10 * 365 * 24 * 3600_u64);
        assert_eq!(signer_plan(&ok, subject, year), SignerPlan::Sign(year));
        let done = issued(&ok, "PEM");
        assert_eq!(done["status"]["certificate"], "UEVN");
        assert_eq!(signer_plan(&done, subject, year), SignerPlan::Nothing);
    }

    #[test]
    fn the_signer_fails_client_requests_with_server_usages_and_ignores_other_signers() {
        let year = DEFAULT_SIGNING_DURATION;
        let csr = request("jane", json!(["digital signature", "server auth"]));
        let ok = approved(&csr, "2026-01-01T00:00:00Z");
        assert_eq!(
            signer_plan(&ok, Some(&node_subject("n1")), year),
            SignerPlan::Fail("invalid usage for client certificate: server auth".into())
        );
        let marked = failed(
            &ok,
            "invalid usage for client certificate: server auth",
            "2026-01-01T00:00:00Z",
        );
        assert_eq!(
            marked["status"]["conditions"][1]["reason"],
            SIGNER_FAILED_REASON
        );
        assert_eq!(signer_plan(&marked, None, year), SignerPlan::Nothing);
        let mut other = ok.clone();
        other["spec"]["signerName"] = json!("example.com/signer");
        assert_eq!(signer_plan(&other, None, year), SignerPlan::Nothing);
    }

    #[test]
    fn the_kubelet_signer_fails_approved_requests_that_are_not_node_client_certificates() {
        let year = DEFAULT_SIGNING_DURATION;
        let csr = request("jane", json!(["digital signature", "client auth"]));
        let ok = approved(&csr, "2026-01-01T00:00:00Z");
        let mut jane = node_subject("n1");
        jane.common_name = "jane".into();
        assert_eq!(
            signer_plan(&ok, Some(&jane), year),
            SignerPlan::Fail("subject common name does not begin with system:node:".into())
        );
        let mut masters = node_subject("n1");
        masters.organizations = vec!["system:masters".into()];
        assert_eq!(
            signer_plan(&ok, Some(&masters), year),
            SignerPlan::Fail("subject organization is not system:nodes".into())
        );
        assert_eq!(
            signer_plan(&ok, None, year),
            SignerPlan::Fail("unable to parse csr".into())
        );
        let mut general = ok.clone();
        general["spec"]["signerName"] = json!(APISERVER_CLIENT_SIGNER);
        assert_eq!(
            signer_plan(&general, Some(&jane), year),
            SignerPlan::Sign(year)
        );
    }

    #[test]
    fn a_node_serving_request_is_approved_for_its_own_node_only_and_signed_for_server_use() {
        let year = DEFAULT_SIGNING_DURATION;
        let mut serving = node_subject("n1");
        serving.has_alternative_names = true;
        let mut csr = request(
            "system:node:n1",
            json!(["digital signature", "server auth"]),
        );
        csr["spec"]["signerName"] = json!(KUBELET_SERVING_SIGNER);
        assert_eq!(
            approver_plan(&csr, Some(&serving)),
            ApproverPlan::Review(vec!["selfnodeclient"])
        );
        // Another node's request, one without names, or one for client use is left alone.
        let mut other = csr.clone();
        other["spec"]["username"] = json!("system:node:n2");
        assert_eq!(approver_plan(&other, Some(&serving)), ApproverPlan::Nothing);
        assert_eq!(
            approver_plan(&csr, Some(&node_subject("n1"))),
            ApproverPlan::Nothing
        );
        let mut client_use = csr.clone();
        client_use["spec"]["usages"] = json!(["digital signature", "client auth"]);
        assert_eq!(
            approver_plan(&client_use, Some(&serving)),
            ApproverPlan::Nothing
        );

        let ok = approved(&csr, "2026-01-01T00:00:00Z");
        assert_eq!(
            ok["status"]["conditions"][0]["message"],
            APPROVED_SERVING_MESSAGE
        );
        assert_eq!(
            signer_plan(&ok, Some(&serving), year),
            SignerPlan::Sign(year)
        );
        let mut bad_usage = ok.clone();
        bad_usage["spec"]["usages"] = json!(["digital signature", "client auth"]);
        assert_eq!(
            signer_plan(&bad_usage, Some(&serving), year),
            SignerPlan::Fail("invalid usage for kubelet serving certificate: client auth".into())
        );
        assert!(matches!(
            signer_plan(&ok, Some(&node_subject("n1")), year),
            SignerPlan::Fail(_)
        ));
    }
}
