//! What admission adds to a write: ConfigMap creates through the registry in a namespace with
//! no ResourceQuota and in one with two (one counting ConfigMaps, so each create also writes
//! that quota's usage), with no webhook configurations. Before webhook configurations and quotas
//! were cached, each create listed both webhook kinds and the namespace's quotas from the store.
//!
//! Run with `cargo test -p skiff-apiserver --bench write_admission` for the debug build, or
//! `cargo bench -p skiff-apiserver --bench write_admission` for release; `-- --quick` runs
//! fewer creates. The store is SQLite in a fresh temporary directory (`SKIFF_BENCH_DIR` puts it
//! on another disk), so every create includes a synced commit (two with a quota to charge);
//! dry-run creates are admitted and validated but not stored, which shows admission's own cost.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use skiff_api::kinds;
use skiff_api::resources::Subresource;
use skiff_apiserver::registry::{Registry, WriteOptions};
use skiff_store::SqliteStore;

async fn create_namespace(registry: &Registry, name: &str) {
    registry
        .create(
            &kinds::namespace::V1,
            None,
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}),
            WriteOptions::default(),
        )
        .await
        .expect("namespace");
}

/// Creates a quota with its status filled in, as the quota controller would leave it.
async fn create_quota(registry: &Registry, namespace: &str, name: &str, hard: Value) {
    let created = registry
        .create(
            &kinds::resource_quota::V1,
            Some(namespace),
            json!({"apiVersion": "v1", "kind": "ResourceQuota",
                   "metadata": {"name": name, "namespace": namespace},
                   "spec": {"hard": hard}}),
            WriteOptions::default(),
        )
        .await
        .expect("quota")
        .object;
    let used: serde_json::Map<String, Value> = hard
        .as_object()
        .expect("hard is a map")
        .keys()
        .map(|k| (k.clone(), json!("0")))
        .collect();
    let mut with_status = created;
    with_status["status"] = json!({"hard": hard, "used": used});
    registry
        .update(
            &kinds::resource_quota::V1,
            Some(namespace),
            name,
            with_status,
            Some(Subresource::Status),
            WriteOptions::default(),
        )
        .await
        .expect("quota status");
}

/// Creates `count` ConfigMaps one after another (or only admits them, for a dry run, which
/// leaves out the synced commit); returns each create's latency, sorted.
async fn timed_creates(
    registry: &Registry,
    namespace: &str,
    count: usize,
    dry_run: bool,
) -> Vec<Duration> {
    let mut latencies = Vec::with_capacity(count);
    for i in 0..count {
        let started = Instant::now();
        registry
            .create(
                &kinds::config_map::V1,
                Some(namespace),
                json!({"apiVersion": "v1", "kind": "ConfigMap",
                       "metadata": {"name": format!("cm-{i}"), "namespace": namespace},
                       "data": {"key": "value"}}),
                WriteOptions {
                    dry_run,
                    ..WriteOptions::default()
                },
            )
            .await
            .expect("configmap");
        latencies.push(started.elapsed());
    }
    latencies.sort();
    latencies
}

fn percentile(sorted: &[Duration], fraction: f64) -> String {
    let index = ((sorted.len() as f64 - 1.0) * fraction).round() as usize;
    format!("{:.0} µs", sorted[index].as_secs_f64() * 1e6)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let creates = if quick { 100 } else { 1000 };
    let dir = match std::env::var_os("SKIFF_BENCH_DIR") {
        Some(base) => tempfile::tempdir_in(base),
        None => tempfile::tempdir(),
    }
    .expect("tempdir");
    let store = SqliteStore::open(&dir.path().join("state.db")).expect("store");
    let registry = Registry::new(Arc::new(store));
    skiff_apiserver::system::ensure_builtin_namespaces(&registry)
        .await
        .expect("namespaces");
    create_namespace(&registry, "plain").await;
    create_namespace(&registry, "quoted").await;
    create_quota(
        &registry,
        "quoted",
        "objects",
        json!({"count/configmaps": "1000000"}),
    )
    .await;
    create_quota(&registry, "quoted", "compute", json!({"pods": "100"})).await;

    // Warm-up, so neither run pays for first-use costs.
    timed_creates(&registry, "default", 20, false).await;
    let plain = timed_creates(&registry, "plain", creates, false).await;
    let quoted = timed_creates(&registry, "quoted", creates, false).await;
    let plain_dry = timed_creates(&registry, "plain", creates, true).await;
    let quoted_dry = timed_creates(&registry, "quoted", creates, true).await;

    let used = registry
        .get(&kinds::resource_quota::V1, Some("quoted"), "objects")
        .await
        .expect("quota")["status"]["used"]["count/configmaps"]
        .clone();
    let charged = used
        .as_str()
        .and_then(|text| skiff_api::quantity::Quantity::parse(text).ok())
        .map(|q| q.milli_value() / 1000);
    assert_eq!(
        charged,
        i64::try_from(creates).ok(),
        "every create was charged: {used}"
    );

    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load = load.split_whitespace().next().unwrap_or("unknown");
    println!(
        "ConfigMap creates through the registry, no webhook configurations, {creates} each (load {load})"
    );
    println!("| namespace | create p50 | create p99 | dry-run p50 | dry-run p99 |");
    println!("| --- | --- | --- | --- | --- |");
    for (namespace, stored, dry) in [
        ("no ResourceQuota", &plain, &plain_dry),
        (
            "2 ResourceQuotas, one counting ConfigMaps",
            &quoted,
            &quoted_dry,
        ),
    ] {
        println!(
            "| {namespace} | {} | {} | {} | {} |",
            percentile(stored, 0.5),
            percentile(stored, 0.99),
            percentile(dry, 0.5),
            percentile(dry, 0.99)
        );
    }
}
