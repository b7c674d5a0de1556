//! ValidatingAdmissionPolicy enforcement: on every create, update and delete (and the
//! subresource writes a policy's rules name), the policies whose `matchConstraints` select the
//! request are evaluated for each of their matching bindings, once per parameter object, and
//! their failures enforced as the bindings' `validationActions` say: `Deny` refuses with
//! upstream's words and the validation's reason and code, `Warn` becomes a `Warning:` header,
//! `Audit` (and `auditAnnotations`) are logged, since Skiff keeps no audit log.
//!
//! The `authorizer` expressions use answers from the cached RBAC snapshot for the requesting
//! user (writes the server makes itself act as its loopback identity in `system:masters`).
//!
//! Policies and bindings are read through [`PolicyCache`]: a snapshot retired by every write to
//! either kind (the registry's tracking store bumps its generation after such a write returns,
//! or when the store's watch shows one made through another server, as it does for RBAC), so
//! writes between policy changes list nothing.

use std::sync::Arc;

use serde_json::{json, Value};
use skiff_api::admission_authz::{
    AuthorizerBinding, CheckDecision, CheckSubject, CheckTarget, PolicyAuthorizer, ResourceCheck,
    SharedAuthorizer,
};
use skiff_api::admission_policy::{self, Enforcement, ParamLookup, PolicyRequest};
use skiff_api::kinds::admission_policy::{BINDING_V1, POLICY_V1};
use skiff_api::webhook_matching;
use skiff_auth::attributes::{Attributes, ResourceTarget};
use skiff_auth::rbac::RbacSnapshot;
use skiff_auth::user::{UserInfo, SERVICE_ACCOUNT_PREFIX, SYSTEM_AUTHENTICATED, SYSTEM_MASTERS};

use crate::meta;
use crate::registry::{ListOptions, Registry};
use crate::status::ApiError;
use crate::webhooks::{AdmissionAttempt, REQUEST_USER};

/// The store prefix both policy kinds' keys start with.
pub const POLICY_KEY_PREFIX: &str =
    "/registry/admissionregistration.k8s.io/validatingadmissionpolic";

/// Every policy and binding, as of one moment, sorted by name.
#[derive(Debug, Default)]
pub struct PolicySnapshot {
    /// The ValidatingAdmissionPolicies.
    pub policies: Vec<Value>,
    /// The ValidatingAdmissionPolicyBindings.
    pub bindings: Vec<Value>,
}

/// The cached [`PolicySnapshot`] and the generation of policy writes it reflects; shared by
/// every clone of a registry.
pub type PolicyCache = crate::snapshot_cache::SnapshotCache<PolicySnapshot>;

/// The `reason` of a refusal as a static string (validation allows only these).
fn static_reason(reason: &str) -> &'static str {
    match reason {
        "Forbidden" => "Forbidden",
        "Unauthorized" => "Unauthorized",
        "RequestEntityTooLarge" => "RequestEntityTooLarge",
        _ => "Invalid",
    }
}

/// Upstream wraps a policy's refusal as admission's `NewForbidden` (`deployments.apps "web"
/// is forbidden: ...`) and then replaces its reason and code with the validation's.
fn refusal(attempt: &AdmissionAttempt<'_>, message: &str, reason: &str) -> ApiError {
    let reason = static_reason(reason);
    let resource = attempt.resource;
    let full = format!(
        "{} \"{}\" is forbidden: {message}",
        resource.qualified_plural(),
        attempt.name
    );
    ApiError {
        code: admission_policy::reason_code(reason),
        reason,
        message: full,
        details: Some(json!({"name": attempt.name, "group": resource.group,
            "kind": resource.plural, "causes": [{"message": message}]})),
    }
}

/// The identity of writes the server makes itself, as kube-apiserver's loopback client has it.
fn loopback_user() -> UserInfo {
    UserInfo::new("system:apiserver", &[SYSTEM_MASTERS, SYSTEM_AUTHENTICATED])
}

/// The user `authorizer.serviceAccount(namespace, name)` checks for: the ServiceAccount with
/// the groups its tokens carry.
fn service_account_user(namespace: &str, name: &str) -> UserInfo {
    UserInfo::new(
        format!("{SERVICE_ACCOUNT_PREFIX}{namespace}:{name}"),
        &[
            "system:serviceaccounts",
            &format!("system:serviceaccounts:{namespace}"),
        ],
    )
}

/// Answers a policy's `authorizer` checks for one request from one RBAC snapshot, so
/// evaluation needs no I/O.
struct SnapshotAuthorizer {
    user: UserInfo,
    rbac: Arc<RbacSnapshot>,
}

impl PolicyAuthorizer for SnapshotAuthorizer {
    fn decide(&self, subject: &CheckSubject, verb: &str, target: &CheckTarget) -> CheckDecision {
        let user = match subject {
            CheckSubject::RequestUser => self.user.clone(),
            CheckSubject::ServiceAccount { namespace, name } => {
                service_account_user(namespace, name)
            }
        };
        let attrs = match target {
            CheckTarget::Resource(r) => Attributes::resource(
                user,
                verb,
                ResourceTarget {
                    namespace: r.namespace.clone(),
                    api_group: r.group.clone(),
                    api_version: r.version.clone(),
                    resource: r.resource.clone(),
                    subresource: r.subresource.clone(),
                    name: r.name.clone(),
                },
            ),
            CheckTarget::Path(path) => Attributes::non_resource(user, verb, path),
        };
        let decision = self.rbac.authorize(&attrs);
        CheckDecision {
            allowed: decision.allowed,
            reason: decision.reason,
            error: None,
        }
    }
}

impl AdmissionAttempt<'_> {
    /// `authorizer` for this write's expressions: `authorizer` answering the checks, and the
    /// written resource as `authorizer.requestResource`.
    pub(crate) fn authorizer_binding(&self, authorizer: SharedAuthorizer) -> AuthorizerBinding {
        let attrs = self.attributes();
        AuthorizerBinding {
            authorizer,
            request_resource: ResourceCheck {
                group: attrs.group.to_string(),
                version: "*".to_string(),
                resource: attrs.resource.to_string(),
                subresource: attrs.subresource.to_string(),
                namespace: attrs.namespace.to_string(),
                name: self.name.to_string(),
                ..ResourceCheck::default()
            },
        }
    }
}

/// Whether any expression of `policy` may name `authorizer`.
fn mentions_authorizer(policy: &Value) -> bool {
    policy
        .get("spec")
        .is_some_and(|spec| spec.to_string().contains("authorizer"))
}

impl Registry {
    /// The authorizer admission expressions check with: `user`'s (the server's own identity
    /// for writes it makes itself) against the current RBAC snapshot.
    pub(crate) async fn admission_authorizer(
        &self,
        user: Option<UserInfo>,
    ) -> Result<SharedAuthorizer, ApiError> {
        let rbac = crate::authz::rbac_snapshot(self).await?;
        Ok(SharedAuthorizer(Arc::new(SnapshotAuthorizer {
            user: user.unwrap_or_else(loopback_user),
            rbac,
        })))
    }

    async fn policy_snapshot(&self) -> Result<Arc<PolicySnapshot>, ApiError> {
        let cache = self.policy_cache();
        if let Some(snapshot) = cache.current() {
            return Ok(snapshot);
        }
        let tag = cache.generation();
        let mut policies = self
            .list(&POLICY_V1, None, &ListOptions::default())
            .await?
            .items;
        let mut bindings = self
            .list(&BINDING_V1, None, &ListOptions::default())
            .await?
            .items;
        policies.sort_by(|a, b| meta::name(a).cmp(meta::name(b)));
        bindings.sort_by(|a, b| meta::name(a).cmp(meta::name(b)));
        let snapshot = Arc::new(PolicySnapshot { policies, bindings });
        cache.offer(tag, snapshot.clone());
        Ok(snapshot)
    }

    /// The parameter objects of `lookup`'s kind in its namespace (all of them for a
    /// cluster-scoped kind).
    async fn fetch_params(&self, lookup: &ParamLookup) -> Result<Vec<Value>, String> {
        let resource = skiff_api::resources::find_by_kind(&lookup.api_version, &lookup.kind)
            .ok_or_else(|| {
                format!(
                    "failed to find resource referenced by paramKind: '{}, Kind={}'",
                    lookup.api_version, lookup.kind
                )
            })?;
        let namespace = if resource.namespaced {
            lookup.namespace.as_deref()
        } else {
            None
        };
        if resource.namespaced && namespace.is_none() {
            return Err(
                "cannot use namespaced paramRef in policy binding that matches cluster-scoped resources"
                    .to_string(),
            );
        }
        self.list(resource, namespace, &ListOptions::default())
            .await
            .map(|list| list.items)
            .map_err(|e| e.message)
    }

    /// Evaluates the ValidatingAdmissionPolicies the write concerns; returns their warnings, or
    /// the first refusal.
    pub(crate) async fn run_admission_policies(
        &self,
        attempt: &AdmissionAttempt<'_>,
    ) -> Result<Vec<String>, ApiError> {
        if webhook_matching::is_exempt(attempt.resource.group, attempt.resource.plural) {
            return Ok(Vec::new());
        }
        let snapshot = self.policy_snapshot().await?;
        if snapshot.policies.is_empty() || snapshot.bindings.is_empty() {
            return Ok(Vec::new());
        }
        let labels = self.namespace_labels(attempt).await?;
        let is_namespace_object =
            attempt.resource.group.is_empty() && attempt.resource.plural == "namespaces";
        let namespace_object = if attempt.namespace.is_empty() || is_namespace_object {
            None
        } else {
            self.get(&skiff_api::kinds::namespace::V1, None, attempt.namespace)
                .await
                .ok()
        };
        let request_user = REQUEST_USER.try_with(UserInfo::clone).ok();
        let user_info = request_user
            .as_ref()
            .map(|user| {
                json!({"username": user.name, "uid": user.uid, "groups": user.groups,
                       "extra": user.extra})
            })
            .unwrap_or_else(|| json!({}));
        let authorizer = if snapshot.policies.iter().any(mentions_authorizer) {
            Some(self.admission_authorizer(request_user).await?)
        } else {
            None
        };
        let attrs = attempt.attributes();
        let request = PolicyRequest {
            attrs,
            kind: attempt.resource.kind,
            name: attempt.name,
            namespace_labels: if is_namespace_object {
                None
            } else {
                labels.as_ref()
            },
            namespace_object: namespace_object.as_ref(),
            object: attempt.object.as_ref(),
            old_object: attempt.old_object.as_ref(),
            user_info,
            dry_run: attempt.dry_run,
            authorizer,
        };
        let mut enforcement = Enforcement::default();
        for policy in &snapshot.policies {
            if !admission_policy::policy_matches(policy, &request) {
                continue;
            }
            let policy_name = meta::name(policy);
            let bindings = snapshot.bindings.iter().filter(|b| {
                b.pointer("/spec/policyName").and_then(Value::as_str) == Some(policy_name)
            });
            for binding in bindings {
                if !admission_policy::binding_matches(binding, &request) {
                    continue;
                }
                let binding_name = meta::name(binding);
                let params =
                    match admission_policy::param_lookup(policy, binding, attempt.namespace) {
                        Ok(None) => vec![None],
                        Ok(Some(lookup)) => match self.fetch_params(&lookup).await {
                            Ok(found) => {
                                match admission_policy::select_params(binding, &lookup, found) {
                                    Ok(params) => params,
                                    Err(error) => {
                                        enforcement.record_configuration_error(
                                            policy,
                                            Some(binding_name),
                                            &error,
                                        );
                                        continue;
                                    }
                                }
                            }
                            Err(error) => {
                                enforcement.record_configuration_error(
                                    policy,
                                    Some(binding_name),
                                    &error,
                                );
                                continue;
                            }
                        },
                        Err(error) => {
                            enforcement.record_configuration_error(
                                policy,
                                Some(binding_name),
                                &error,
                            );
                            continue;
                        }
                    };
                for param in &params {
                    let outcome = admission_policy::evaluate(policy, param.as_ref(), &request);
                    enforcement.record(policy_name, binding, &outcome);
                }
            }
        }
        for line in &enforcement.audit {
            tracing::info!(audit = %line, "validating admission policy audit");
        }
        match enforcement.denial {
            Some((message, reason)) => Err(refusal(attempt, &message, &reason)),
            None => Ok(enforcement.warnings),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RBAC with one Role letting the ServiceAccount `team/editor` update ConfigMaps in `team`,
    /// and a ClusterRole letting everyone authenticated get `/healthz`.
    fn team_rbac() -> Arc<RbacSnapshot> {
        let mut rbac = RbacSnapshot::new();
        rbac.add_role(&json!({"metadata": {"name": "editor", "namespace": "team"},
            "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["update"]}]}));
        rbac.add_role_binding(&json!({"metadata": {"name": "editor", "namespace": "team"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "editor"},
            "subjects": [{"kind": "ServiceAccount", "name": "editor", "namespace": "team"}]}));
        rbac.add_cluster_role(&json!({"metadata": {"name": "health"},
            "rules": [{"nonResourceURLs": ["/healthz"], "verbs": ["get"]}]}));
        rbac.add_cluster_role_binding(&json!({"metadata": {"name": "health"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "health"},
            "subjects": [{"kind": "Group", "name": "system:authenticated", "apiGroup": "rbac.authorization.k8s.io"}]}));
        Arc::new(rbac)
    }

    #[test]
    fn authorizer_checks_are_decided_by_rbac_for_the_subject_named() {
        let authorizer = SnapshotAuthorizer {
            user: UserInfo::new("alice", &[SYSTEM_AUTHENTICATED]),
            rbac: team_rbac(),
        };
        let update_team_configmaps = CheckTarget::Resource(ResourceCheck {
            version: "*".into(),
            resource: "configmaps".into(),
            namespace: "team".into(),
            ..ResourceCheck::default()
        });
        let editor = CheckSubject::ServiceAccount {
            namespace: "team".into(),
            name: "editor".into(),
        };
        let allowed = authorizer.decide(&editor, "update", &update_team_configmaps);
        assert!(allowed.allowed, "{allowed:?}");
        assert!(
            allowed.reason.starts_with("RBAC: allowed by"),
            "{allowed:?}"
        );
        assert!(
            !authorizer
                .decide(
                    &CheckSubject::RequestUser,
                    "update",
                    &update_team_configmaps
                )
                .allowed,
            "alice has no binding"
        );
        assert!(
            !authorizer
                .decide(&editor, "delete", &update_team_configmaps)
                .allowed
        );
        let healthz = CheckTarget::Path("/healthz".into());
        assert!(
            authorizer
                .decide(&CheckSubject::RequestUser, "get", &healthz)
                .allowed
        );
        assert!(
            !authorizer.decide(&editor, "get", &healthz).allowed,
            "a ServiceAccount checked by name carries only its ServiceAccount groups, as upstream's"
        );
        let server = SnapshotAuthorizer {
            user: loopback_user(),
            rbac: team_rbac(),
        };
        assert!(
            server
                .decide(
                    &CheckSubject::RequestUser,
                    "delete",
                    &update_team_configmaps
                )
                .allowed,
            "the server's own writes act in system:masters"
        );
    }

    #[test]
    fn a_policy_snapshot_is_served_until_the_next_policy_write() {
        let cache = PolicyCache::default();
        assert!(cache.current().is_none());
        let tag = cache.generation();
        cache.offer(tag, Arc::new(PolicySnapshot::default()));
        assert!(cache.current().is_some());
        cache.invalidate();
        assert!(
            cache.current().is_none(),
            "a write must retire the snapshot"
        );
        let stale = cache.generation() - 1;
        cache.offer(stale, Arc::new(PolicySnapshot::default()));
        assert!(
            cache.current().is_none(),
            "a snapshot listed before a write is never served"
        );
    }

    #[test]
    fn refusals_carry_the_validation_reason_and_code() {
        let attempt = AdmissionAttempt {
            resource: &skiff_api::kinds::deployment::V1,
            subresource: "",
            operation: "CREATE",
            namespace: "default",
            name: "web",
            object: None,
            old_object: None,
            dry_run: false,
        };
        let message =
            "ValidatingAdmissionPolicy 'p' with binding 'b' denied request: failed expression: x";
        let invalid = refusal(&attempt, message, "Invalid");
        assert_eq!((invalid.code, invalid.reason), (422, "Invalid"));
        assert_eq!(
            invalid.message,
            format!("deployments.apps \"web\" is forbidden: {message}")
        );
        let forbidden = refusal(&attempt, message, "Forbidden");
        assert_eq!((forbidden.code, forbidden.reason), (403, "Forbidden"));
    }
}
