//! A real in-process API (registry over SQLite in a temporary directory) for the tests, and
//! a client wrapper that lets tests count and hold list and watch calls.

#![allow(dead_code)] // Each test binary uses a different part of this module.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::stream::BoxStream;
use serde_json::Value;
use skiff_api::patch::PatchType;
use skiff_apiserver::registry::Registry;
use skiff_apiserver::LocalClient;
use skiff_client::{
    ApiError, Client, ClientError, DeleteOptions, ListOptions, ObjectList, Scope, WatchEvent,
};
use tokio::sync::{mpsc, watch};

/// A registry and a client over it; the directory lives as long as this value.
pub struct Cluster {
    pub _dir: tempfile::TempDir,
    pub registry: Registry,
    pub client: Arc<dyn Client>,
}

pub async fn cluster() -> Cluster {
    let dir = tempfile::tempdir().expect("temporary directory");
    let store = skiff_store::SqliteStore::open(&dir.path().join("store.db")).expect("store");
    let registry = Registry::new(Arc::new(store));
    skiff_apiserver::system::ensure_builtin_namespaces(&registry)
        .await
        .expect("namespaces");
    let client: Arc<dyn Client> = Arc::new(LocalClient::new(registry.clone()));
    Cluster {
        _dir: dir,
        registry,
        client,
    }
}

/// One watch call as the wrapper saw it.
#[derive(Debug, Clone, PartialEq)]
pub struct WatchCall {
    /// The resourceVersion the watch started from.
    pub resource_version: Option<String>,
    /// Whether the call is being held back by the test.
    pub held: bool,
}

/// Delegates to a client, counting lists and reporting (and optionally holding) watches.
pub struct Observed {
    inner: Arc<dyn Client>,
    pub lists: AtomicUsize,
    /// How many of the next watch calls fail with a server error.
    pub failing_watches: AtomicUsize,
    watches: mpsc::UnboundedSender<WatchCall>,
    hold: watch::Receiver<bool>,
}

/// The test's side of an [`Observed`] client.
pub struct Controls {
    pub watches: mpsc::UnboundedReceiver<WatchCall>,
    pub hold: watch::Sender<bool>,
}

impl Controls {
    /// The next watch call, failing the test if none comes within 10 seconds.
    pub async fn next_watch(&mut self) -> WatchCall {
        tokio::time::timeout(Duration::from_secs(10), self.watches.recv())
            .await
            .expect("a watch call within 10 seconds")
            .expect("the client is alive")
    }
}

pub fn observed(inner: Arc<dyn Client>) -> (Arc<Observed>, Controls) {
    let (tx, rx) = mpsc::unbounded_channel();
    let (hold_tx, hold_rx) = watch::channel(false);
    (
        Arc::new(Observed {
            inner,
            lists: AtomicUsize::new(0),
            failing_watches: AtomicUsize::new(0),
            watches: tx,
            hold: hold_rx,
        }),
        Controls {
            watches: rx,
            hold: hold_tx,
        },
    )
}

impl Observed {
    pub fn list_calls(&self) -> usize {
        self.lists.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl Client for Observed {
    async fn get(&self, scope: Scope<'_>, name: &str) -> Result<Value, ClientError> {
        self.inner.get(scope, name).await
    }

    async fn list(
        &self,
        scope: Scope<'_>,
        options: &ListOptions,
    ) -> Result<ObjectList, ClientError> {
        self.lists.fetch_add(1, Ordering::SeqCst);
        self.inner.list(scope, options).await
    }

    async fn watch(
        &self,
        scope: Scope<'_>,
        options: &ListOptions,
    ) -> Result<BoxStream<'static, WatchEvent>, ClientError> {
        let mut hold = self.hold.clone();
        let held = *hold.borrow();
        let _ = self.watches.send(WatchCall {
            resource_version: options.resource_version.clone(),
            held,
        });
        let _ = hold.wait_for(|h| !*h).await;
        let fail = self
            .failing_watches
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if fail {
            return Err(ClientError::Api(ApiError::internal("etcd is on fire")));
        }
        self.inner.watch(scope, options).await
    }

    async fn create(&self, scope: Scope<'_>, object: Value) -> Result<Value, ClientError> {
        self.inner.create(scope, object).await
    }

    async fn update(&self, scope: Scope<'_>, object: Value) -> Result<Value, ClientError> {
        self.inner.update(scope, object).await
    }

    async fn update_status(&self, scope: Scope<'_>, object: Value) -> Result<Value, ClientError> {
        self.inner.update_status(scope, object).await
    }

    async fn patch(
        &self,
        scope: Scope<'_>,
        name: &str,
        patch_type: PatchType,
        patch: Value,
        status: bool,
    ) -> Result<Value, ClientError> {
        self.inner
            .patch(scope, name, patch_type, patch, status)
            .await
    }

    async fn delete(
        &self,
        scope: Scope<'_>,
        name: &str,
        options: &DeleteOptions,
    ) -> Result<Option<Value>, ClientError> {
        self.inner.delete(scope, name, options).await
    }

    async fn bind_pod(&self, namespace: &str, name: &str, node: &str) -> Result<(), ClientError> {
        self.inner.bind_pod(namespace, name, node).await
    }
}
