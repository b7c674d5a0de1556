//! What the control plane does on its own: the built-in namespaces, emptying namespaces that are
//! being deleted, and compacting old store history.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use skiff_api::resources;
use skiff_store::Store;

use crate::meta;
use crate::registry::{DeleteOptions, Deleted, ListOptions, Registry, WriteOptions};
use crate::status::ApiError;

/// Namespaces every cluster has.
pub const BUILTIN_NAMESPACES: &[&str] =
    &["default", "kube-system", "kube-public", "kube-node-lease"];

/// Creates the built-in namespaces that do not exist yet.
pub async fn ensure_builtin_namespaces(registry: &Registry) -> Result<(), ApiError> {
    let ns = &skiff_api::kinds::namespace::V1;
    for name in BUILTIN_NAMESPACES {
        let obj = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}});
        match registry
            .create(ns, None, obj, WriteOptions::default())
            .await
        {
            Ok(_) => {}
            Err(e) if e.code == 409 => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Deletes everything in a terminating namespace, then releases the namespace itself.
pub async fn finalize_namespace(registry: &Registry, name: &str) -> Result<(), ApiError> {
    let ns_resource = &skiff_api::kinds::namespace::V1;
    loop {
        let mut remaining = 0usize;
        for resource in resources::all().filter(|r| r.namespaced && r.is_storage_entry()) {
            let list = registry
                .list(resource, Some(name), &ListOptions::default())
                .await?;
            for item in list.items {
                remaining += 1;
                if meta::is_deleting(&item) {
                    continue;
                }
                match registry
                    .delete(
                        resource,
                        Some(name),
                        meta::name(&item),
                        // As the namespace controller: in the background, whatever a kind's
                        // default (Jobs would orphan their pods).
                        &DeleteOptions {
                            propagation_policy: Some("Background".to_string()),
                            ..DeleteOptions::default()
                        },
                    )
                    .await
                {
                    Ok(Deleted::Gone(_)) => remaining -= 1,
                    Ok(Deleted::Pending(_)) => {}
                    Err(e) if e.code == 404 => remaining -= 1,
                    Err(e) => return Err(e),
                }
            }
        }
        if remaining == 0 {
            break;
        }
        // Graceful deletions finish elsewhere (node agents, finalizer holders); look again soon.
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let result = registry
        .system_update(ns_resource, None, name, |mut ns| {
            if let Some(spec) = ns.get_mut("spec").and_then(Value::as_object_mut) {
                spec.insert("finalizers".into(), json!([]));
            }
            Ok(ns)
        })
        .await;
    match result {
        Ok(_) => Ok(()),
        Err(e) if e.code == 404 => Ok(()),
        Err(e) => Err(e),
    }
}

/// Starts emptying every namespace already marked for deletion (after a restart).
pub async fn resume_namespace_finalizers(registry: &Registry) -> Result<(), ApiError> {
    let ns = &skiff_api::kinds::namespace::V1;
    for item in registry
        .list(ns, None, &ListOptions::default())
        .await?
        .items
    {
        if meta::is_deleting(&item) {
            spawn_namespace_finalizer(registry.clone(), meta::name(&item).to_string());
        }
    }
    Ok(())
}

/// Runs [`finalize_namespace`] in the background, logging failures.
pub fn spawn_namespace_finalizer(registry: Registry, name: String) {
    tokio::spawn(async move {
        if let Err(e) = finalize_namespace(&registry, &name).await {
            tracing::warn!(namespace = %name, error = %e, "finalizing namespace failed");
        }
    });
}

/// Compacts store history periodically, keeping one interval's worth of revisions, as
/// Kubernetes compacts etcd every five minutes.
pub async fn compaction_loop(store: Arc<dyn Store>, every: Duration) {
    let mut previous = None;
    loop {
        tokio::time::sleep(every).await;
        let current = match store.current_revision().await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "reading revision for compaction failed");
                continue;
            }
        };
        if let Some(rev) = previous {
            if let Err(e) = store.compact(rev).await {
                tracing::warn!(error = %e, revision = rev, "compaction failed");
            }
        }
        previous = Some(current);
    }
}

/// The `default/kubernetes` Service, as every cluster has it (`kubectl get all` shows it). Its
/// Endpoints and EndpointSlices list the live API servers; every server keeps them (the
/// controllers' `apiserver_endpoints`).
pub async fn ensure_kubernetes_service(
    registry: &Registry,
    api: std::net::SocketAddr,
) -> Result<(), ApiError> {
    let services = &skiff_api::kinds::service::V1;
    let first_ip = registry.service_range().first();
    let service = json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "kubernetes", "namespace": "default",
                     "labels": {"component": "apiserver", "provider": "kubernetes"}},
        "spec": {"type": "ClusterIP", "clusterIP": first_ip.to_string(),
                 "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": api.port()}]},
    });
    // On a restart the Service exists already; creating it again would fail on its cluster IP,
    // which the stored Service holds, before the name clash is noticed.
    match registry.get(services, Some("default"), "kubernetes").await {
        Ok(_) => Ok(()),
        Err(e) if e.code == 404 => match registry
            .create(services, Some("default"), service, WriteOptions::default())
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.code == 409 => Ok(()),
            Err(e) => Err(e),
        },
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use skiff_store::SqliteStore;

    fn registry(dir: &tempfile::TempDir) -> Registry {
        let store = SqliteStore::open(&dir.path().join("state.db")).expect("open store");
        Registry::new(Arc::new(store))
    }

    #[tokio::test]
    async fn kubernetes_service_survives_a_restart_on_the_same_store() {
        let dir = tempfile::tempdir().expect("tempdir");
        let services = &skiff_api::kinds::service::V1;
        let first: std::net::SocketAddr = "127.0.0.1:6443".parse().expect("address");
        let second: std::net::SocketAddr = "127.0.0.1:7443".parse().expect("address");
        let started = registry(&dir);
        ensure_builtin_namespaces(&started)
            .await
            .expect("namespaces");
        ensure_kubernetes_service(&started, first)
            .await
            .expect("first start");
        drop(started);
        // A restart opens the same store with a fresh registry, on another port.
        let restarted = registry(&dir);
        ensure_builtin_namespaces(&restarted)
            .await
            .expect("namespaces again");
        ensure_kubernetes_service(&restarted, second)
            .await
            .expect("restart");
        ensure_kubernetes_service(&restarted, second)
            .await
            .expect("a second call on the same registry");
        let service = restarted
            .get(services, Some("default"), "kubernetes")
            .await
            .expect("service");
        assert_eq!(service["spec"]["clusterIP"], json!("127.96.0.1"));
        assert_eq!(service["spec"]["ports"][0]["port"], json!(443));
    }

    #[tokio::test]
    async fn deleted_namespace_is_emptied_and_then_removed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let registry = registry(&dir);
        let ns = &skiff_api::kinds::namespace::V1;
        let cm = &skiff_api::kinds::config_map::V1;
        let created = registry
            .create(
                ns,
                None,
                json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-a"}, "spec": {"finalizers": []}}),
                WriteOptions::default(),
            )
            .await
            .expect("create namespace");
        assert_eq!(created.object["spec"]["finalizers"], json!(["kubernetes"]));
        registry
            .create(
                cm,
                Some("team-a"),
                json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}),
                WriteOptions::default(),
            )
            .await
            .expect("create config map");

        let deleted = registry
            .delete(ns, None, "team-a", &DeleteOptions::default())
            .await
            .expect("delete namespace");
        assert!(matches!(deleted, Deleted::Pending(_)));
        finalize_namespace(&registry, "team-a")
            .await
            .expect("finalize");

        assert_eq!(
            registry
                .get(cm, Some("team-a"), "c")
                .await
                .unwrap_err()
                .code,
            404
        );
        assert_eq!(
            registry.get(ns, None, "team-a").await.unwrap_err().code,
            404
        );
    }
}
