//! Legacy ServiceAccount token Secrets, as kube-controller-manager's tokens controller keeps
//! them: a Secret of type `kubernetes.io/service-account-token` annotated with its
//! ServiceAccount's name gets `data.token` (a non-expiring token the API server signs),
//! `data["ca.crt"]`, `data.namespace` and the ServiceAccount's uid annotation; one whose
//! ServiceAccount is gone (or was recreated with another uid) is deleted. A pure planner
//! decides; the shell watches Secrets and ServiceAccounts, signs through a
//! [`LegacyTokenSigner`] and writes through the client.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use serde_json::{json, Value};
use skiff_api::kinds;
use skiff_client::{Client, DeleteOptions, Scope};
use skiff_runtime::{Informer, WorkQueue};

use crate::shell::{run_key_syncs, KeySync, SyncError};

/// The Secret type the controller fills.
pub const TOKEN_SECRET_TYPE: &str = "kubernetes.io/service-account-token";
/// The annotation naming the Secret's ServiceAccount.
pub const SERVICE_ACCOUNT_NAME_ANNOTATION: &str = "kubernetes.io/service-account.name";
/// The annotation recording the ServiceAccount's uid.
pub const SERVICE_ACCOUNT_UID_ANNOTATION: &str = "kubernetes.io/service-account.uid";

/// Signs the non-expiring tokens legacy Secrets hold; the API server's key does it, so the
/// controller stays free of key material.
pub trait LegacyTokenSigner: Send + Sync + 'static {
    /// The token for ServiceAccount `account` (uid `account_uid`) in `namespace`, held by
    /// Secret `secret`.
    fn sign(&self, namespace: &str, account: &str, account_uid: &str, secret: &str) -> String;
}

/// What a token Secret needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TokenSecretPlan {
    /// Nothing: not a token Secret, or already complete.
    Nothing,
    /// Its ServiceAccount is gone or was replaced: delete the Secret.
    Delete,
    /// Fill in the token, CA and namespace for the ServiceAccount with this uid.
    Populate {
        /// The ServiceAccount's uid.
        account_uid: String,
    },
}

fn text<'v>(value: &'v Value, pointer: &str) -> &'v str {
    value.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

fn annotation<'v>(secret: &'v Value, key: &str) -> &'v str {
    secret
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(key))
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// The name of the ServiceAccount a token Secret is for, if it is one.
pub fn account_of(secret: &Value) -> Option<&str> {
    (text(secret, "/type") == TOKEN_SECRET_TYPE)
        .then(|| annotation(secret, SERVICE_ACCOUNT_NAME_ANNOTATION))
        .filter(|n| !n.is_empty())
}

/// What `secret` needs given its ServiceAccount as currently found (`None`: missing).
pub fn plan(secret: &Value, account: Option<&Value>) -> TokenSecretPlan {
    if account_of(secret).is_none() || secret.pointer("/metadata/deletionTimestamp").is_some() {
        return TokenSecretPlan::Nothing;
    }
    let Some(account) = account else {
        return TokenSecretPlan::Delete;
    };
    let account_uid = text(account, "/metadata/uid");
    let recorded_uid = annotation(secret, SERVICE_ACCOUNT_UID_ANNOTATION);
    if !recorded_uid.is_empty() && recorded_uid != account_uid {
        return TokenSecretPlan::Delete;
    }
    let has = |key: &str| {
        secret
            .pointer("/data")
            .and_then(|d| d.get(key))
            .and_then(Value::as_str)
            .is_some_and(|v| !v.is_empty())
    };
    if recorded_uid.is_empty() || !has("token") || !has("ca.crt") || !has("namespace") {
        TokenSecretPlan::Populate {
            account_uid: account_uid.to_string(),
        }
    } else {
        TokenSecretPlan::Nothing
    }
}

/// `secret` with its token, CA bundle, namespace and ServiceAccount uid filled in.
pub fn populated(secret: &Value, token: &str, ca_pem: &str, account_uid: &str) -> Value {
    let encode = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let namespace = text(secret, "/metadata/namespace").to_string();
    let mut out = secret.clone();
    if !out["metadata"]["annotations"].is_object() {
        out["metadata"]["annotations"] = json!({});
    }
    out["metadata"]["annotations"][SERVICE_ACCOUNT_UID_ANNOTATION] = json!(account_uid);
    if !out["data"].is_object() {
        out["data"] = json!({});
    }
    out["data"]["ca.crt"] = json!(encode(ca_pem));
    out["data"]["namespace"] = json!(encode(&namespace));
    out["data"]["token"] = json!(encode(token));
    out
}

/// The shell: token Secrets and ServiceAccounts in; filled or deleted Secrets out.
#[derive(Clone)]
pub struct TokenSecretsController {
    client: Arc<dyn Client>,
    secrets: Informer,
    service_accounts: Informer,
    signer: Arc<dyn LegacyTokenSigner>,
    ca_pem: Arc<str>,
    queue: WorkQueue<String>,
}

impl KeySync for TokenSecretsController {
    async fn sync_key(&self, key: &str) -> Result<Option<Duration>, SyncError> {
        self.sync(key).await
    }
}

fn key_of(object: &Value) -> Option<String> {
    let namespace = object.pointer("/metadata/namespace")?.as_str()?;
    let name = object.pointer("/metadata/name")?.as_str()?;
    Some(format!("{namespace}/{name}"))
}

impl TokenSecretsController {
    /// Wires the controller to shared informers; `ca_pem` is the cluster CA the Secrets carry.
    pub fn new(
        client: Arc<dyn Client>,
        secrets: Informer,
        service_accounts: Informer,
        signer: Arc<dyn LegacyTokenSigner>,
        ca_pem: &str,
    ) -> Self {
        let controller = TokenSecretsController {
            client,
            secrets,
            service_accounts,
            signer,
            ca_pem: Arc::from(ca_pem),
            queue: WorkQueue::new(),
        };
        let queue = controller.queue.clone();
        controller.secrets.add_handler(move |n| {
            if account_of(n.object()).is_some() {
                if let Some(key) = key_of(n.object()) {
                    queue.add(key);
                }
            }
        });
        // A ServiceAccount's change or deletion revisits the token Secrets naming it.
        let queue = controller.queue.clone();
        let secrets = controller.secrets.clone();
        controller.service_accounts.add_handler(move |n| {
            let account = n.object();
            let (Some(namespace), Some(name)) = (
                account
                    .pointer("/metadata/namespace")
                    .and_then(Value::as_str),
                account.pointer("/metadata/name").and_then(Value::as_str),
            ) else {
                return;
            };
            for secret in secrets.list() {
                if text(&secret, "/metadata/namespace") == namespace
                    && account_of(&secret) == Some(name)
                {
                    if let Some(key) = key_of(&secret) {
                        queue.add(key);
                    }
                }
            }
        });
        controller
    }

    /// Syncs every token Secret once, then follows changes with `workers` concurrent syncs
    /// until the queue shuts down.
    pub async fn run(self, workers: usize) {
        for secret in self.secrets.list() {
            if account_of(&secret).is_some() {
                if let Some(key) = key_of(&secret) {
                    self.queue.add(key);
                }
            }
        }
        let queue = self.queue.clone();
        run_key_syncs(self, queue, workers).await;
    }

    /// Stops taking new work.
    pub fn shutdown(&self) {
        self.queue.shutdown();
    }

    async fn sync(&self, key: &str) -> Result<Option<Duration>, SyncError> {
        let Some((namespace, name)) = key.split_once('/') else {
            return Ok(None);
        };
        let Some(secret) = self.secrets.get(Some(namespace), name) else {
            return Ok(None);
        };
        let Some(account_name) = account_of(&secret).map(str::to_string) else {
            return Ok(None);
        };
        let scope = |resource| Scope {
            resource,
            namespace: Some(namespace),
        };
        // A live read, as the tokens controller does, so a just-created account is not
        // mistaken for a missing one.
        let account = match self
            .client
            .get(scope(&kinds::service_account::V1), &account_name)
            .await
        {
            Ok(found) => Some(found),
            Err(e) if e.is_not_found() => None,
            Err(e) => return Err(e.into()),
        };
        let result = match plan(&secret, account.as_ref()) {
            TokenSecretPlan::Nothing => return Ok(None),
            TokenSecretPlan::Delete => self
                .client
                .delete(scope(&kinds::secret::V1), name, &DeleteOptions::default())
                .await
                .map(|_| ()),
            TokenSecretPlan::Populate { account_uid } => {
                let token = self
                    .signer
                    .sign(namespace, &account_name, &account_uid, name);
                let updated = populated(&secret, &token, &self.ca_pem, &account_uid);
                self.client
                    .update(scope(&kinds::secret::V1), updated)
                    .await
                    .map(|_| ())
            }
        };
        match result {
            Ok(()) => Ok(None),
            // A conflict means a newer Secret is on its way through the informer.
            Err(e) if e.is_not_found() || e.is_conflict() => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(annotations: Value, data: Value) -> Value {
        json!({
            "metadata": {"name": "robot-token", "namespace": "dev", "annotations": annotations},
            "type": TOKEN_SECRET_TYPE,
            "data": data,
        })
    }

    fn account() -> Value {
        json!({"metadata": {"name": "robot", "namespace": "dev", "uid": "sa-1"}})
    }

    #[test]
    fn a_new_token_secret_is_populated_for_its_account() {
        let new = secret(
            json!({SERVICE_ACCOUNT_NAME_ANNOTATION: "robot"}),
            Value::Null,
        );
        assert_eq!(
            plan(&new, Some(&account())),
            TokenSecretPlan::Populate {
                account_uid: "sa-1".into()
            }
        );
        let filled = populated(&new, "jwt", "PEM", "sa-1");
        assert_eq!(
            filled["metadata"]["annotations"][SERVICE_ACCOUNT_UID_ANNOTATION],
            "sa-1"
        );
        assert_eq!(filled["data"]["token"], "and0");
        assert_eq!(filled["data"]["ca.crt"], "UEVN");
        assert_eq!(filled["data"]["namespace"], "ZGV2");
        assert_eq!(plan(&filled, Some(&account())), TokenSecretPlan::Nothing);
    }

    #[test]
    fn secrets_of_missing_or_replaced_accounts_are_deleted() {
        let new = secret(
            json!({SERVICE_ACCOUNT_NAME_ANNOTATION: "robot"}),
            Value::Null,
        );
        assert_eq!(plan(&new, None), TokenSecretPlan::Delete);
        let filled = populated(&new, "jwt", "PEM", "old-uid");
        assert_eq!(plan(&filled, Some(&account())), TokenSecretPlan::Delete);
    }

    #[test]
    fn other_secrets_are_left_alone() {
        let mut opaque = secret(json!({SERVICE_ACCOUNT_NAME_ANNOTATION: "robot"}), json!({}));
        opaque["type"] = json!("Opaque");
        assert_eq!(plan(&opaque, None), TokenSecretPlan::Nothing);
        let unnamed = secret(json!({}), json!({}));
        assert_eq!(plan(&unnamed, None), TokenSecretPlan::Nothing);
    }
}
