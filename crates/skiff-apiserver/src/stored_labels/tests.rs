use std::sync::Arc;

use async_trait::async_trait;
use futures::stream::BoxStream;
use serde_json::json;
use skiff_api::resources;
use skiff_store::{ListResult, Revision, SqliteStore, Store, StoreError, WatchEvent};

use super::*;
use crate::registry::{ListOptions, Registry};

fn labels(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        other => panic!("not a map: {other}"),
    }
}

#[test]
fn extractor_reads_labels_as_a_selector_sees_them() {
    let cases: [(&[u8], Option<Value>); 6] = [
        (
            br#"{"kind":"ConfigMap","metadata":{"name":"a","labels":{"app":"web","shard":"3"}},"data":{"k":"v"}}"#,
            Some(json!({"app": "web", "shard": "3"})),
        ),
        (br#"{"metadata":{"name":"a"}}"#, Some(json!({}))),
        (br#"{"metadata":{"labels":null}}"#, Some(json!({}))),
        (br#"{"metadata":{"labels":"app=web"}}"#, Some(json!({}))),
        (br#"{"data":{}}"#, Some(json!({}))),
        (b"not json", None),
    ];
    for (value, want) in cases {
        let got = LabelExtractor::labels(value).map(|stored| Value::Object(stored.0));
        assert_eq!(got, want, "labels of {}", String::from_utf8_lossy(value));
    }
}

fn configmap(name: &str, shard: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": "default", "labels": {"shard": shard}},
        "data": {"payload": "x"},
    }))
    .expect("encode")
}

fn kept_labels(kv: &KeyValue) -> Option<Map<String, Value>> {
    kv.extracted
        .as_ref()
        .and_then(|part| part.downcast_ref::<StoredLabels>())
        .map(|stored| stored.0.clone())
}

#[tokio::test]
async fn the_registry_makes_the_store_keep_every_objects_labels() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store: Arc<dyn Store> =
        Arc::new(SqliteStore::open(&dir.path().join("state.db")).expect("open store"));
    let cm = resources::find("", "v1", "configmaps").expect("configmaps");
    let key = cm.key(Some("default"), "before");
    store
        .create(&key, configmap("before", "1"))
        .await
        .expect("create");

    let _registry = Registry::new(Arc::clone(&store));
    let kv = store.get(&key).await.expect("get").expect("present");
    assert_eq!(
        kept_labels(&kv),
        Some(labels(json!({"shard": "1"}))),
        "objects stored before the registry started get their labels parsed"
    );

    store
        .update(&key, configmap("before", "2"), None)
        .await
        .expect("update");
    let kv = store.get(&key).await.expect("get").expect("present");
    assert_eq!(
        kept_labels(&kv),
        Some(labels(json!({"shard": "2"}))),
        "a write replaces the kept labels"
    );
}

/// A store whose lists return every object's bytes replaced by something that is not JSON,
/// keeping what the store extracted: a list can then only select by the kept labels.
struct UnreadableBytes(Arc<dyn Store>);

impl UnreadableBytes {
    fn scramble(mut result: ListResult) -> ListResult {
        for kv in &mut result.items {
            kv.value = Arc::from(&b"\x00 not json"[..]);
        }
        result
    }
}

#[async_trait]
impl Store for UnreadableBytes {
    async fn create(&self, key: &str, value: Vec<u8>) -> Result<KeyValue, StoreError> {
        self.0.create(key, value).await
    }
    async fn update(
        &self,
        key: &str,
        value: Vec<u8>,
        expected: Option<Revision>,
    ) -> Result<KeyValue, StoreError> {
        self.0.update(key, value, expected).await
    }
    async fn delete(&self, key: &str, expected: Option<Revision>) -> Result<KeyValue, StoreError> {
        self.0.delete(key, expected).await
    }
    async fn get(&self, key: &str) -> Result<Option<KeyValue>, StoreError> {
        self.0.get(key).await
    }
    async fn list(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: Option<usize>,
    ) -> Result<ListResult, StoreError> {
        Ok(Self::scramble(
            self.0.list(prefix, start_after, limit).await?,
        ))
    }
    async fn list_uncounted(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: Option<usize>,
    ) -> Result<ListResult, StoreError> {
        Ok(Self::scramble(
            self.0.list_uncounted(prefix, start_after, limit).await?,
        ))
    }
    async fn watch(
        &self,
        prefix: &str,
        after: Revision,
    ) -> Result<BoxStream<'static, Result<WatchEvent, StoreError>>, StoreError> {
        self.0.watch(prefix, after).await
    }
    async fn current_revision(&self) -> Result<Revision, StoreError> {
        self.0.current_revision().await
    }
    async fn compact(&self, revision: Revision) -> Result<(), StoreError> {
        self.0.compact(revision).await
    }
    async fn compacted_revision(&self) -> Result<Revision, StoreError> {
        self.0.compacted_revision().await
    }
    fn set_extractor(&self, extractor: Arc<dyn ValueExtractor>) -> Result<(), StoreError> {
        self.0.set_extractor(extractor)
    }
}

#[tokio::test]
async fn label_selector_lists_select_by_the_kept_labels_without_parsing_objects() {
    let dir = tempfile::tempdir().expect("temp dir");
    let sqlite: Arc<dyn Store> =
        Arc::new(SqliteStore::open(&dir.path().join("state.db")).expect("open store"));
    let registry = Registry::new(Arc::new(UnreadableBytes(Arc::clone(&sqlite))));
    let cm = resources::find("", "v1", "configmaps").expect("configmaps");
    for (name, shard) in [("a", "1"), ("b", "3"), ("c", "3"), ("d", "2")] {
        sqlite
            .create(&cm.key(Some("default"), name), configmap(name, shard))
            .await
            .expect("create");
    }
    let options = ListOptions {
        label_selector: Some("shard=3".to_owned()),
        ..ListOptions::default()
    };
    let page = match registry.list_stored(cm, Some("default"), &options).await {
        Ok(page) => page,
        Err(error) => panic!("a label selector list parsed stored bytes: {error:?}"),
    };
    let names: Vec<&str> = page.items.iter().map(|kv| kv.key.as_str()).collect();
    assert_eq!(
        names,
        vec![
            cm.key(Some("default"), "b").as_str(),
            cm.key(Some("default"), "c").as_str()
        ]
    );

    let options = ListOptions {
        label_selector: Some("shard=3".to_owned()),
        field_selector: Some("metadata.name=b".to_owned()),
        ..ListOptions::default()
    };
    assert!(
        registry
            .list_stored(cm, Some("default"), &options)
            .await
            .is_err(),
        "a field selector still reads the object, so unreadable bytes that pass the label \
         selector are an error"
    );
    let options = ListOptions {
        label_selector: Some("shard=9".to_owned()),
        field_selector: Some("metadata.name=b".to_owned()),
        ..ListOptions::default()
    };
    let page = match registry.list_stored(cm, Some("default"), &options).await {
        Ok(page) => page,
        Err(error) => panic!("objects the kept labels reject were parsed: {error:?}"),
    };
    assert!(page.items.is_empty());

    let options = ListOptions {
        label_selector: Some("shard=9".to_owned()),
        ..ListOptions::default()
    };
    match registry.list(cm, Some("default"), &options).await {
        Ok(page) => assert!(page.items.is_empty()),
        Err(error) => panic!("the decoding list decoded objects the kept labels reject: {error:?}"),
    }
}
