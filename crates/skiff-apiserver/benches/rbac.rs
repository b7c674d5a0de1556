//! What one authorization costs a user outside `system:masters`: reading the four RBAC kinds
//! for every request (how the authorizer worked before it kept a snapshot) against the cached
//! snapshot, over the bootstrap roles plus a RoleBinding in each of a number of namespaces.
//!
//! Run with `cargo bench -p skiff-apiserver --bench rbac` (release optimisations), or
//! `cargo test -p skiff-apiserver --bench rbac` for the debug build; `-- --quick` runs fewer
//! rounds. The store is SQLite in a fresh temporary directory.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use skiff_api::kinds;
use skiff_apiserver::authz;
use skiff_apiserver::registry::{Registry, WriteOptions};
use skiff_auth::attributes::{Attributes, ResourceTarget};
use skiff_auth::user::{UserInfo, SYSTEM_AUTHENTICATED};
use skiff_store::SqliteStore;

/// Namespaces, each with a RoleBinding of the `pod-reader` ClusterRole for its own user.
const NAMESPACES: usize = 50;

fn request(namespace: &str) -> Attributes {
    Attributes::resource(
        UserInfo::new(format!("user-{namespace}"), &[SYSTEM_AUTHENTICATED]),
        "list",
        ResourceTarget {
            namespace: namespace.into(),
            api_version: "v1".into(),
            resource: "pods".into(),
            ..ResourceTarget::default()
        },
    )
}

async fn populate(registry: &Registry) {
    skiff_apiserver::system::ensure_builtin_namespaces(registry)
        .await
        .expect("namespaces");
    skiff_apiserver::rbac_bootstrap::reconcile(registry)
        .await
        .expect("bootstrap roles");
    registry
        .create(
            &kinds::cluster_role::V1,
            None,
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                   "metadata": {"name": "pod-reader"},
                   "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]}]}),
            WriteOptions::default(),
        )
        .await
        .expect("cluster role");
    for i in 0..NAMESPACES {
        let namespace = format!("team-{i}");
        registry
            .create(
                &kinds::namespace::V1,
                None,
                json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}),
                WriteOptions::default(),
            )
            .await
            .expect("namespace");
        registry
            .create(
                &kinds::role_binding::V1,
                Some(&namespace),
                json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                       "metadata": {"name": "viewers", "namespace": namespace},
                       "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "pod-reader"},
                       "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User",
                                     "name": format!("user-{namespace}")}]}),
                WriteOptions::default(),
            )
            .await
            .expect("binding");
    }
}

fn per_call(elapsed: Duration, calls: usize) -> String {
    format!("{:.1} µs", elapsed.as_secs_f64() * 1e6 / calls as f64)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let rounds = if quick { 200 } else { 2000 };
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteStore::open(&dir.path().join("state.db")).expect("store");
    let registry = Registry::new(Arc::new(store));
    populate(&registry).await;
    let snapshot = authz::read_rbac_snapshot(&registry)
        .await
        .expect("snapshot");
    let requests: Vec<Attributes> = (0..NAMESPACES)
        .map(|i| request(&format!("team-{i}")))
        .collect();

    let started = Instant::now();
    for i in 0..rounds {
        let snapshot = authz::read_rbac_snapshot(&registry)
            .await
            .expect("snapshot");
        assert!(snapshot.authorize(&requests[i % NAMESPACES]).allowed);
    }
    let uncached = started.elapsed();

    let started = Instant::now();
    for i in 0..rounds {
        let decision = authz::authorize(&registry, &requests[i % NAMESPACES])
            .await
            .expect("authorize");
        assert!(decision.allowed);
    }
    let cached = started.elapsed();

    let started = Instant::now();
    for i in 0..rounds {
        assert!(snapshot.authorize(&requests[i % NAMESPACES]).allowed);
    }
    let decision_only = started.elapsed();

    println!(
        "RBAC authorization, {} ClusterRoles and bindings from bootstrap, {NAMESPACES} RoleBindings, {rounds} requests",
        skiff_apiserver::rbac_bootstrap::cluster_roles().len()
            + skiff_apiserver::rbac_bootstrap::cluster_role_bindings().len()
    );
    println!("| path | per request |");
    println!("| --- | --- |");
    println!(
        "| re-reading the RBAC objects each request | {} |",
        per_call(uncached, rounds)
    );
    println!("| cached snapshot | {} |", per_call(cached, rounds));
    println!(
        "| the decision alone, on a snapshot in hand | {} |",
        per_call(decision_only, rounds)
    );
}
