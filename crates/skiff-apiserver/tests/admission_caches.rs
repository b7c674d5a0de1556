//! The webhook configurations and ResourceQuotas admission reads come from caches retired by
//! every write of those kinds: a configuration or quota acknowledged before a write always
//! applies to it, and a quota changed behind the cache (by another server on the same store)
//! costs a conflict and a re-read, never an admission past the quota.

mod support;

use std::sync::Arc;

use serde_json::{json, Value};
use skiff_api::kinds;
use skiff_api::resources::Subresource;
use skiff_apiserver::registry::{DeleteOptions, Registry, WriteOptions};
use skiff_apiserver::system;
use skiff_store::{SqliteStore, Store};
use support::fresh_registry;

fn config_map(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap",
           "metadata": {"name": name, "namespace": "default"}, "data": {"k": "v"}})
}

async fn create_config_map(registry: &Registry, name: &str) -> Result<(), String> {
    registry
        .create(
            &kinds::config_map::V1,
            Some("default"),
            config_map(name),
            WriteOptions::default(),
        )
        .await
        .map(|_| ())
        .map_err(|e| format!("{} {}", e.code, e.message))
}

/// A quota of `limit` ConfigMaps in `default` with its status filled in, as the quota
/// controller would leave it.
async fn create_config_map_quota(registry: &Registry, limit: &str) {
    let quota = &kinds::resource_quota::V1;
    let hard = json!({"count/configmaps": limit});
    let mut created = registry
        .create(
            quota,
            Some("default"),
            json!({"apiVersion": "v1", "kind": "ResourceQuota",
                   "metadata": {"name": "objects", "namespace": "default"},
                   "spec": {"hard": hard}}),
            WriteOptions::default(),
        )
        .await
        .expect("quota")
        .object;
    created["status"] = json!({"hard": hard, "used": {"count/configmaps": "0"}});
    registry
        .update(
            quota,
            Some("default"),
            "objects",
            created,
            Some(Subresource::Status),
            WriteOptions::default(),
        )
        .await
        .expect("quota status");
}

async fn used_config_maps(registry: &Registry) -> Value {
    registry
        .get(&kinds::resource_quota::V1, Some("default"), "objects")
        .await
        .expect("quota")["status"]["used"]["count/configmaps"]
        .clone()
}

#[tokio::test]
async fn a_quota_created_after_writes_were_admitted_applies_to_the_next_write() {
    let (_dir, registry) = fresh_registry().await;
    // This create finds no quota and leaves that answer cached.
    create_config_map(&registry, "before")
        .await
        .expect("no quota yet");
    create_config_map_quota(&registry, "1").await;

    create_config_map(&registry, "first")
        .await
        .expect("the quota has room for one");
    assert_eq!(used_config_maps(&registry).await, json!("1"));
    let refused = create_config_map(&registry, "second")
        .await
        .expect_err("a second ConfigMap exceeds the quota");
    assert_eq!(
        refused,
        "403 configmaps \"second\" is forbidden: exceeded quota: objects, \
         requested: count/configmaps=1, used: count/configmaps=1, limited: count/configmaps=1"
    );

    // Raising the quota applies at once too.
    let mut quota = registry
        .get(&kinds::resource_quota::V1, Some("default"), "objects")
        .await
        .expect("quota");
    quota["status"]["hard"]["count/configmaps"] = json!("2");
    registry
        .update(
            &kinds::resource_quota::V1,
            Some("default"),
            "objects",
            quota,
            Some(Subresource::Status),
            WriteOptions::default(),
        )
        .await
        .expect("raise the quota");
    create_config_map(&registry, "second")
        .await
        .expect("the raised quota has room");
    assert_eq!(used_config_maps(&registry).await, json!("2"));
}

#[tokio::test]
async fn a_quota_changed_behind_the_cache_is_read_again_after_the_conflict() {
    let dir = tempfile::tempdir().expect("temp dir");
    let raw = Arc::new(SqliteStore::open(&dir.path().join("state.db")).expect("open store"));
    let registry = Registry::new(raw.clone());
    system::ensure_builtin_namespaces(&registry)
        .await
        .expect("namespaces");
    create_config_map_quota(&registry, "2").await;
    create_config_map(&registry, "first")
        .await
        .expect("room for two");
    assert_eq!(used_config_maps(&registry).await, json!("1"));

    // Another writer on the same store takes the last slot; this registry's cache cannot know.
    let key = kinds::resource_quota::V1.key(Some("default"), "objects");
    let stored = raw.get(&key).await.expect("read").expect("stored quota");
    let mut quota: Value = serde_json::from_slice(&stored.value).expect("stored JSON");
    quota["status"]["used"]["count/configmaps"] = json!("2");
    raw.update(
        &key,
        serde_json::to_vec(&quota).expect("JSON"),
        Some(stored.mod_revision),
    )
    .await
    .expect("write behind the cache");

    let refused = create_config_map(&registry, "second")
        .await
        .expect_err("the quota is full in the store");
    assert!(
        refused.starts_with("403 configmaps \"second\" is forbidden: exceeded quota: objects"),
        "{refused}"
    );
    assert_eq!(used_config_maps(&registry).await, json!("2"));
}

#[tokio::test]
async fn a_webhook_configuration_applies_from_the_write_after_it_until_it_is_deleted() {
    let (_dir, registry) = fresh_registry().await;
    // This create finds no webhook and leaves that answer cached.
    create_config_map(&registry, "before")
        .await
        .expect("no webhook yet");

    // Nothing listens on port 1 of loopback: calling the webhook fails, and `Fail` refuses.
    let configurations = &kinds::webhook_configuration::VALIDATING_V1;
    registry
        .create(
            configurations,
            None,
            json!({"apiVersion": "admissionregistration.k8s.io/v1",
                   "kind": "ValidatingWebhookConfiguration",
                   "metadata": {"name": "guard"},
                   "webhooks": [{"name": "guard.example.com",
                                 "clientConfig": {"url": "https://127.0.0.1:1/validate"},
                                 "rules": [{"apiGroups": [""], "apiVersions": ["v1"],
                                            "operations": ["CREATE"], "resources": ["configmaps"]}],
                                 "failurePolicy": "Fail", "sideEffects": "None",
                                 "admissionReviewVersions": ["v1"]}]}),
            WriteOptions::default(),
        )
        .await
        .expect("webhook configuration");
    let refused = create_config_map(&registry, "during")
        .await
        .expect_err("the webhook cannot be called");
    assert!(
        refused.starts_with(
            "500 Internal error occurred: failed calling webhook \"guard.example.com\""
        ),
        "{refused}"
    );

    registry
        .delete(configurations, None, "guard", &DeleteOptions::default())
        .await
        .expect("delete the configuration");
    create_config_map(&registry, "after")
        .await
        .expect("no webhook once the configuration is gone");
}
