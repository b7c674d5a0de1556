//! What every namespace gets: the `default` ServiceAccount (kube-controller-manager's
//! serviceaccount controller) and the `kube-root-ca.crt` ConfigMap holding the cluster CA
//! (its root-ca-cert-publisher). A pure planner decides what to write; the shell watches
//! namespaces and those objects and writes through the client.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use skiff_api::kinds;
use skiff_api::resources::ResourceInfo;
use skiff_client::{Client, Scope};
use skiff_runtime::{Informer, Notification, WorkQueue};

use crate::shell::{run_key_syncs, KeySync, SyncError};

/// The ServiceAccount every namespace has.
pub const DEFAULT_SERVICE_ACCOUNT: &str = "default";
/// The ConfigMap publishing the cluster's CA in every namespace.
pub const ROOT_CA_CONFIG_MAP: &str = "kube-root-ca.crt";
/// Its key holding the PEM bundle.
pub const ROOT_CA_KEY: &str = "ca.crt";
/// The annotation saying what the ConfigMap is for.
pub const DESCRIPTION_ANNOTATION: &str = "kubernetes.io/description";
/// The annotation's value, word for word as kube-controller-manager's root CA publisher writes it.
const DESCRIPTION: &str = "Contains a CA bundle that can be used to verify the kube-apiserver \
when using internal endpoints such as the internal service IP or kubernetes.default.svc. No \
other usage is guaranteed across distributions of Kubernetes clusters.";

/// One object to write for a namespace.
#[derive(Clone, Debug, PartialEq)]
pub enum NamespaceWrite {
    /// Create the `default` ServiceAccount.
    CreateServiceAccount(Value),
    /// Create the CA ConfigMap.
    CreateRootCa(Value),
    /// Put the current CA into an existing ConfigMap (the full object to update).
    UpdateRootCa(Value),
}

/// What `namespace` lacks, given its current `default` ServiceAccount and CA ConfigMap (if
/// any) and the cluster CA. A namespace being deleted gets nothing new.
pub fn plan(
    namespace: &Value,
    service_account: Option<&Value>,
    root_ca: Option<&Value>,
    ca_pem: &str,
) -> Vec<NamespaceWrite> {
    let name = namespace
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let terminating = namespace.pointer("/metadata/deletionTimestamp").is_some()
        || namespace.pointer("/status/phase").and_then(Value::as_str) == Some("Terminating");
    if name.is_empty() || terminating {
        return Vec::new();
    }
    let mut writes = Vec::new();
    if service_account.is_none() {
        writes.push(NamespaceWrite::CreateServiceAccount(json!({
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": DEFAULT_SERVICE_ACCOUNT, "namespace": name},
        })));
    }
    match root_ca {
        None => writes.push(NamespaceWrite::CreateRootCa(json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": ROOT_CA_CONFIG_MAP,
                "namespace": name,
                "annotations": {DESCRIPTION_ANNOTATION: DESCRIPTION},
            },
            "data": {ROOT_CA_KEY: ca_pem},
        }))),
        Some(existing) => {
            let current = existing
                .pointer(&format!("/data/{}", ROOT_CA_KEY.replace('/', "~1")))
                .and_then(Value::as_str);
            if current != Some(ca_pem) {
                let mut updated = existing.clone();
                updated["data"] = json!({ROOT_CA_KEY: ca_pem});
                writes.push(NamespaceWrite::UpdateRootCa(updated));
            }
        }
    }
    writes
}

/// The shell: namespaces, ServiceAccounts and ConfigMaps in; missing defaults out.
#[derive(Clone)]
pub struct NamespaceDefaultsController {
    client: Arc<dyn Client>,
    namespaces: Informer,
    service_accounts: Informer,
    config_maps: Informer,
    ca_pem: Arc<str>,
    queue: WorkQueue<String>,
}

impl KeySync for NamespaceDefaultsController {
    async fn sync_key(&self, key: &str) -> Result<Option<Duration>, SyncError> {
        self.sync(key).await
    }
}

impl NamespaceDefaultsController {
    /// Wires the controller to shared informers; `ca_pem` is the cluster CA to publish.
    pub fn new(
        client: Arc<dyn Client>,
        namespaces: Informer,
        service_accounts: Informer,
        config_maps: Informer,
        ca_pem: &str,
    ) -> Self {
        let controller = NamespaceDefaultsController {
            client,
            namespaces,
            service_accounts,
            config_maps,
            ca_pem: Arc::from(ca_pem),
            queue: WorkQueue::new(),
        };
        let queue = controller.queue.clone();
        controller.namespaces.add_handler(move |n| {
            if let Some(name) = object_name(n.object()) {
                queue.add(name.to_string());
            }
        });
        // A deleted or changed default is written again: the namespace is synced.
        for (informer, watched) in [
            (&controller.service_accounts, DEFAULT_SERVICE_ACCOUNT),
            (&controller.config_maps, ROOT_CA_CONFIG_MAP),
        ] {
            let queue = controller.queue.clone();
            informer.add_handler(move |n| {
                let object = n.object();
                if object_name(object) == Some(watched) && !matches!(n, Notification::Added(_)) {
                    if let Some(ns) = object
                        .pointer("/metadata/namespace")
                        .and_then(Value::as_str)
                    {
                        queue.add(ns.to_string());
                    }
                }
            });
        }
        controller
    }

    /// Syncs every namespace once, then follows changes with `workers` concurrent syncs until
    /// the queue shuts down.
    pub async fn run(self, workers: usize) {
        for namespace in self.namespaces.list() {
            if let Some(name) = object_name(&namespace) {
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

    async fn sync(&self, namespace: &str) -> Result<Option<Duration>, SyncError> {
        let Some(cached) = self.namespaces.get(None, namespace) else {
            return Ok(None);
        };
        let service_account = self
            .service_accounts
            .get(Some(namespace), DEFAULT_SERVICE_ACCOUNT);
        let root_ca = self.config_maps.get(Some(namespace), ROOT_CA_CONFIG_MAP);
        let writes = plan(
            &cached,
            service_account.as_deref(),
            root_ca.as_deref(),
            &self.ca_pem,
        );
        write_all(&self.client, namespace, writes).await?;
        Ok(None)
    }
}

/// Gives every existing namespace its defaults now, reading through `client`: run at startup
/// before the API serves, so clients never see a built-in namespace without them.
pub async fn ensure_all(client: &Arc<dyn Client>, ca_pem: &str) -> Result<(), SyncError> {
    let namespaces = client
        .list(
            Scope {
                resource: &kinds::namespace::V1,
                namespace: None,
            },
            &skiff_client::ListOptions::default(),
        )
        .await?;
    for namespace in &namespaces.items {
        let Some(name) = object_name(namespace) else {
            continue;
        };
        let get = |resource: &'static ResourceInfo, object: &'static str| {
            let client = client.clone();
            let name = name.to_string();
            async move {
                let scope = Scope {
                    resource,
                    namespace: Some(&name),
                };
                match client.get(scope, object).await {
                    Ok(found) => Ok(Some(found)),
                    Err(e) if e.is_not_found() => Ok(None),
                    Err(e) => Err(e),
                }
            }
        };
        let service_account = get(&kinds::service_account::V1, DEFAULT_SERVICE_ACCOUNT).await?;
        let root_ca = get(&kinds::config_map::V1, ROOT_CA_CONFIG_MAP).await?;
        let writes = plan(
            namespace,
            service_account.as_ref(),
            root_ca.as_ref(),
            ca_pem,
        );
        write_all(client, name, writes).await?;
    }
    Ok(())
}

/// Performs the planned writes into `namespace`, leaving conflicts and vanished namespaces to
/// the next sync.
async fn write_all(
    client: &Arc<dyn Client>,
    namespace: &str,
    writes: Vec<NamespaceWrite>,
) -> Result<(), SyncError> {
    for write in writes {
        let (resource, object, create) = match write {
            NamespaceWrite::CreateServiceAccount(o) => (&kinds::service_account::V1, o, true),
            NamespaceWrite::CreateRootCa(o) => (&kinds::config_map::V1, o, true),
            NamespaceWrite::UpdateRootCa(o) => (&kinds::config_map::V1, o, false),
        };
        let scope = Scope {
            resource,
            namespace: Some(namespace),
        };
        let result = if create {
            client.create(scope, object).await
        } else {
            client.update(scope, object).await
        };
        match result {
            Ok(_) => {}
            Err(e) if e.code() == 409 || e.is_not_found() || e.code() == 403 => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

fn object_name(object: &Value) -> Option<&str> {
    object.pointer("/metadata/name").and_then(Value::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CA: &str = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";

    fn namespace(name: &str) -> Value {
        json!({"metadata": {"name": name}, "status": {"phase": "Active"}})
    }

    #[test]
    fn a_new_namespace_gets_a_default_service_account_and_the_ca() {
        let writes = plan(&namespace("demo"), None, None, CA);
        assert_eq!(writes.len(), 2, "{writes:?}");
        let NamespaceWrite::CreateServiceAccount(sa) = &writes[0] else {
            panic!("{writes:?}");
        };
        assert_eq!(
            sa["metadata"],
            json!({"name": "default", "namespace": "demo"})
        );
        assert_eq!(sa["kind"], "ServiceAccount");
        let NamespaceWrite::CreateRootCa(cm) = &writes[1] else {
            panic!("{writes:?}");
        };
        assert_eq!(cm["metadata"]["name"], "kube-root-ca.crt");
        assert_eq!(cm["data"]["ca.crt"], CA);
        assert!(cm["metadata"]["annotations"][DESCRIPTION_ANNOTATION]
            .as_str()
            .is_some_and(|d| d.starts_with(
                "Contains a CA bundle that can be used to verify the kube-apiserver"
            )));
    }

    #[test]
    fn nothing_is_written_when_both_exist_with_the_current_ca() {
        let sa = json!({"metadata": {"name": "default", "namespace": "demo"}});
        let cm = json!({"metadata": {"name": "kube-root-ca.crt", "namespace": "demo"},
                        "data": {"ca.crt": CA}});
        assert_eq!(plan(&namespace("demo"), Some(&sa), Some(&cm), CA), vec![]);
    }

    #[test]
    fn a_changed_ca_is_put_back() {
        let sa = json!({"metadata": {"name": "default"}});
        let cm = json!({"metadata": {"name": "kube-root-ca.crt", "resourceVersion": "7"},
                        "data": {"ca.crt": "stale"}});
        let writes = plan(&namespace("demo"), Some(&sa), Some(&cm), CA);
        let [NamespaceWrite::UpdateRootCa(updated)] = writes.as_slice() else {
            panic!("{writes:?}");
        };
        assert_eq!(updated["data"]["ca.crt"], CA);
        assert_eq!(updated["metadata"]["resourceVersion"], "7");
    }

    #[test]
    fn a_terminating_namespace_gets_nothing_new() {
        let mut ns = namespace("demo");
        ns["status"]["phase"] = json!("Terminating");
        assert_eq!(plan(&ns, None, None, CA), vec![]);
    }
}
