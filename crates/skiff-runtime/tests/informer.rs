//! The informer against the real in-process API over SQLite.

mod common;

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;
use serde_json::{json, Value};
use skiff_api::patch::PatchType;
use skiff_api::resources;
use skiff_client::{Client, DeleteOptions, Scope};
use skiff_runtime::informer::{Informer, InformerConfig, Notification};
use skiff_runtime::store::Store;
use tokio::sync::mpsc::UnboundedReceiver;

fn configmaps() -> Scope<'static> {
    Scope {
        resource: resources::find("", "v1", "configmaps").expect("configmaps are served"),
        namespace: Some("default"),
    }
}

fn secrets() -> Scope<'static> {
    Scope {
        resource: resources::find("", "v1", "secrets").expect("secrets are served"),
        namespace: Some("default"),
    }
}

fn config() -> InformerConfig {
    InformerConfig::new(configmaps().resource).namespace("default")
}

async fn create_cm(client: &dyn Client, name: &str, data: &str, owner: Option<&str>) -> Value {
    let mut cm = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name}, "data": {"v": data}});
    if let Some(uid) = owner {
        cm["metadata"]["ownerReferences"] =
            json!([{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "uid": uid}]);
    }
    client.create(configmaps(), cm).await.expect("create")
}

async fn set_data(client: &dyn Client, name: &str, data: &str) -> Value {
    client
        .patch(
            configmaps(),
            name,
            PatchType::Merge,
            json!({"data": {"v": data}}),
            false,
        )
        .await
        .expect("patch")
}

async fn delete(client: &dyn Client, name: &str) {
    client
        .delete(configmaps(), name, &DeleteOptions::default())
        .await
        .expect("delete");
}

/// A notification reduced to what the tests compare: kind, name and data value.
fn summary(n: &Notification) -> (String, String, String) {
    let kind = match n {
        Notification::Added(_) => "added",
        Notification::Updated { .. } => "updated",
        Notification::Deleted(_) => "deleted",
    };
    let obj = n.object();
    (
        kind.to_string(),
        obj["metadata"]["name"].as_str().unwrap_or("").to_string(),
        obj["data"]["v"].as_str().unwrap_or("").to_string(),
    )
}

async fn next(rx: &mut UnboundedReceiver<Notification>) -> Notification {
    tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("a notification within 10 seconds")
        .expect("the informer is running")
}

async fn expect(rx: &mut UnboundedReceiver<Notification>, want: &[(&str, &str, &str)]) {
    for (i, (kind, name, data)) in want.iter().enumerate() {
        let got = summary(&next(rx).await);
        assert_eq!(
            got,
            (kind.to_string(), name.to_string(), data.to_string()),
            "notification {i}"
        );
    }
}

fn data_of(object: Option<Arc<Value>>) -> Option<String> {
    object.and_then(|o| o["data"]["v"].as_str().map(str::to_string))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_arrive_in_order_and_the_cache_follows() {
    let cluster = common::cluster().await;
    let client = &*cluster.client;
    create_cm(client, "a", "1", None).await;

    let informer = Informer::start(cluster.client.clone(), config());
    informer.wait_synced().await;
    assert!(informer.has_synced());
    let typed: Store<ConfigMap> = Store::new(&informer);
    let mut rx = informer.subscribe();
    // Late subscribers first hear about what is already cached.
    expect(&mut rx, &[("added", "a", "1")]).await;

    create_cm(client, "b", "1", Some("owner-1")).await;
    let updated = set_data(client, "a", "2").await;
    delete(client, "b").await;
    let first = next(&mut rx).await;
    assert_eq!(summary(&first), ("added".into(), "b".into(), "1".into()));
    let second = next(&mut rx).await;
    match &second {
        Notification::Updated { old, new } => {
            assert_eq!(old["data"]["v"], "1");
            assert_eq!(new["data"]["v"], "2");
        }
        other => panic!("expected an update of a, got {other:?}"),
    }
    expect(&mut rx, &[("deleted", "b", "1")]).await;

    assert_eq!(
        data_of(informer.get(Some("default"), "a")),
        Some("2".into())
    );
    assert!(informer.get(Some("default"), "b").is_none());
    assert_eq!(informer.len(), 1);
    assert_eq!(informer.list_by_namespace("default").len(), 1);
    assert!(informer.list_by_namespace("kube-system").is_empty());
    assert!(informer.by_owner("owner-1").is_empty());
    let cache_rv: u64 = informer.resource_version().parse().unwrap_or(0);
    let update_rv: u64 = updated["metadata"]["resourceVersion"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or(u64::MAX);
    assert!(cache_rv > update_rv, "the cache reflects the later delete");

    let typed_a = typed.get(Some("default"), "a").expect("typed a");
    assert_eq!(
        typed_a
            .data
            .as_ref()
            .and_then(|d| d.get("v"))
            .map(String::as_str),
        Some("2")
    );
    assert!(typed.get(Some("default"), "b").is_none());

    create_cm(client, "c", "1", Some("owner-1")).await;
    expect(&mut rx, &[("added", "c", "1")]).await;
    let owned: Vec<String> = typed
        .by_owner("owner-1")
        .iter()
        .filter_map(|cm| cm.metadata.name.clone())
        .collect();
    assert_eq!(owned, ["c"]);
    assert_eq!(typed.list().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_that_ends_is_resumed_without_listing_again() {
    let cluster = common::cluster().await;
    let (client, mut controls) = common::observed(cluster.client.clone());
    let mut config = config();
    config.watch_timeout = Some(Duration::from_millis(100));
    let informer = Informer::start(client.clone(), config);
    informer.wait_synced().await;
    let mut rx = informer.subscribe();

    let first = controls.next_watch().await;
    let synced_rv = informer.resource_version();
    assert_eq!(first.resource_version.as_deref(), Some(synced_rv.as_str()));
    // Let a few watches time out and be resumed.
    for _ in 0..3 {
        controls.next_watch().await;
    }
    let created = create_cm(&*cluster.client, "x", "1", None).await;
    expect(&mut rx, &[("added", "x", "1")]).await;
    let created_rv = created["metadata"]["resourceVersion"]
        .as_str()
        .map(str::to_string);
    // A later watch resumes from the creation's revision.
    loop {
        let call = controls.next_watch().await;
        if call.resource_version == created_rv {
            break;
        }
        assert_eq!(call.resource_version.as_deref(), Some(synced_rv.as_str()));
    }
    assert_eq!(client.list_calls(), 1, "resuming never lists again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compacted_revision_makes_the_informer_relist_and_announce_the_difference() {
    let cluster = common::cluster().await;
    let api = &*cluster.client;
    create_cm(api, "a", "1", None).await;
    create_cm(api, "b", "1", None).await;
    let (client, mut controls) = common::observed(cluster.client.clone());
    let mut config = config();
    config.watch_timeout = Some(Duration::from_millis(100));
    let informer = Informer::start(client.clone(), config);
    informer.wait_synced().await;
    let mut rx = informer.subscribe();
    expect(&mut rx, &[("added", "a", "1"), ("added", "b", "1")]).await;

    // Hold the next watch back while the world changes and history is compacted away.
    controls.hold.send_replace(true);
    while !controls.next_watch().await.held {}
    delete(api, "a").await;
    set_data(api, "b", "2").await;
    create_cm(api, "c", "1", None).await;
    api.create(
        secrets(),
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}}),
    )
    .await
    .expect("create secret");
    let store = cluster.registry.store();
    let current = store.current_revision().await.expect("revision");
    store.compact(current).await.expect("compact");
    controls.hold.send_replace(false);

    // The resumed watch is refused with 410; the relist announces what was missed.
    expect(
        &mut rx,
        &[
            ("deleted", "a", "1"),
            ("updated", "b", "2"),
            ("added", "c", "1"),
        ],
    )
    .await;
    assert_eq!(client.list_calls(), 2);
    let names: Vec<String> = informer
        .list()
        .iter()
        .filter_map(|o| o["metadata"]["name"].as_str().map(str::to_string))
        .collect();
    assert_eq!(names, ["b", "c"]);
    assert_eq!(
        data_of(informer.get(Some("default"), "b")),
        Some("2".into())
    );
    // The informer keeps watching after the relist.
    create_cm(api, "d", "1", None).await;
    expect(&mut rx, &[("added", "d", "1")]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn selectors_narrow_the_cache_and_handlers_see_the_change() {
    let cluster = common::cluster().await;
    let api = &*cluster.client;
    let labelled = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "yes", "labels": {"app": "web"}}, "data": {"v": "1"}});
    api.create(configmaps(), labelled).await.expect("create");
    create_cm(api, "no", "1", None).await;
    let informer = Informer::start(cluster.client.clone(), config().labels("app=web"));
    informer.wait_synced().await;
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    informer.add_handler({
        let seen = seen.clone();
        let reader = informer.downgrade();
        move |n| {
            // The cache already holds the change when handlers run.
            let cached = reader
                .upgrade()
                .zip(n.key())
                .and_then(|(informer, k)| informer.get_by_key(&k))
                .is_some();
            if let Ok(mut seen) = seen.lock() {
                seen.push((n.key().unwrap_or_default(), cached));
            }
        }
    });
    assert_eq!(
        seen.lock().map(|s| s.clone()).unwrap_or_default(),
        [("default/yes".to_string(), true)]
    );
    assert_eq!(informer.len(), 1);
    assert!(informer.get(Some("default"), "no").is_none());

    // Dropping the last handle stops the informer: subscriptions end.
    let mut rx = informer.subscribe();
    drop(informer);
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        while rx.recv().await.is_some() {}
    })
    .await;
    assert!(
        ended.is_ok(),
        "the subscription ends once the informer is gone"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_watch_backs_off_and_lists_again() {
    let cluster = common::cluster().await;
    let api = &*cluster.client;
    let (client, mut controls) = common::observed(cluster.client.clone());
    client
        .failing_watches
        .store(1, std::sync::atomic::Ordering::SeqCst);
    let informer = Informer::start(client.clone(), config());
    informer.wait_synced().await;
    let mut rx = informer.subscribe();
    controls.next_watch().await;
    // The failed watch is followed by a second list, then a working watch.
    controls.next_watch().await;
    assert_eq!(client.list_calls(), 2);
    create_cm(api, "after", "1", None).await;
    expect(&mut rx, &[("added", "after", "1")]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_that_panics_loses_one_notification_not_the_informer() {
    let cluster = common::cluster().await;
    let client = &*cluster.client;
    let informer = Informer::start(cluster.client.clone(), config());
    informer.wait_synced().await;
    let (seen_tx, mut seen) = tokio::sync::mpsc::unbounded_channel::<String>();
    informer.add_handler(move |n| {
        let name = n.object()["metadata"]["name"]
            .as_str()
            .unwrap_or("")
            .to_string();
        if name == "poison" {
            panic!("the handler cannot take {name}");
        }
        let _ = seen_tx.send(name);
    });
    create_cm(client, "poison", "1", None).await;
    create_cm(client, "after", "1", None).await;
    set_data(client, "after", "2").await;
    let mut names = Vec::new();
    for _ in 0..2 {
        let name = tokio::time::timeout(Duration::from_secs(10), seen.recv())
            .await
            .expect("the handler keeps hearing changes after a panic")
            .expect("the informer is running");
        names.push(name);
    }
    assert_eq!(names, ["after", "after"]);
    assert_eq!(
        data_of(informer.get(Some("default"), "after")),
        Some("2".into()),
        "the cache still follows the watch"
    );
    assert!(informer.get(Some("default"), "poison").is_some());
}
