//! The Node authorizer's graph kept current by an informer over pods and
//! PersistentVolumeClaims: listed once, then watched from the list's resourceVersion and
//! relisted when the watch ends or its revision is compacted, so that deciding a kubelet's
//! request reads memory, never the store. The informer starts with the first node request and
//! that request waits for the first list.

use std::sync::{Arc, RwLock};

use serde_json::Value;
use skiff_api::kinds;
use skiff_api::resources::ResourceInfo;
use skiff_auth::node::NodeGraph;
use skiff_store::Revision;
use tokio::sync::OnceCell;

use crate::meta;
use crate::registry::{ListOptions, Registry};
use crate::status::ApiError;

/// How long a watch that failed waits before listing again.
const RELIST_DELAY: std::time::Duration = std::time::Duration::from_millis(500);

/// The graph shared by every clone of a registry, and whether its informer runs.
#[derive(Default)]
pub struct NodeGraphCache {
    graph: RwLock<NodeGraph>,
    started: OnceCell<()>,
}

/// Which objects an informer feeds into the graph.
#[derive(Clone, Copy)]
enum Fed {
    Pods,
    Claims,
}

impl Fed {
    fn resource(self) -> &'static ResourceInfo {
        match self {
            Fed::Pods => &kinds::pod::V1,
            Fed::Claims => &kinds::persistent_volume_claim::V1,
        }
    }

    fn set(self, graph: &mut NodeGraph, object: &Value) {
        match self {
            Fed::Pods => graph.set_pod(object),
            Fed::Claims => graph.set_claim(object),
        }
    }

    fn remove(self, graph: &mut NodeGraph, object: &Value) {
        let namespace = meta::namespace(object).unwrap_or("default");
        let name = meta::name(object);
        match self {
            Fed::Pods => graph.remove_pod(namespace, name),
            Fed::Claims => graph.remove_claim(namespace, name),
        }
    }
}

impl NodeGraphCache {
    /// Runs `decide` over the graph, starting its informers (and waiting for their first
    /// lists) on the first call.
    pub async fn read<T>(
        self: &Arc<Self>,
        registry: &Registry,
        decide: impl FnOnce(&NodeGraph) -> T,
    ) -> Result<T, ApiError> {
        self.started
            .get_or_try_init(|| async {
                for fed in [Fed::Pods, Fed::Claims] {
                    let revision = self.relist(registry, fed).await?;
                    tokio::spawn(self.clone().follow(registry.clone(), fed, revision));
                }
                Ok::<(), ApiError>(())
            })
            .await?;
        let graph = self.graph.read().unwrap_or_else(|e| e.into_inner());
        Ok(decide(&graph))
    }

    /// Replaces what the graph holds of `fed` with a fresh list; returns the list's revision.
    async fn relist(&self, registry: &Registry, fed: Fed) -> Result<Revision, ApiError> {
        let listed = registry
            .list(fed.resource(), None, &ListOptions::default())
            .await?;
        let mut graph = self.graph.write().unwrap_or_else(|e| e.into_inner());
        let mut fresh = std::mem::take(&mut *graph);
        match fed {
            Fed::Pods => fresh.clear_pods(),
            Fed::Claims => fresh.clear_claims(),
        }
        for item in &listed.items {
            fed.set(&mut fresh, item);
        }
        *graph = fresh;
        Ok(listed.resource_version)
    }

    /// Applies `fed`'s changes after `revision` for as long as the server runs.
    async fn follow(self: Arc<Self>, registry: Registry, fed: Fed, mut revision: Revision) {
        use futures::StreamExt;
        loop {
            let options = ListOptions {
                resource_version: Some(revision.to_string()),
                send_initial_events: Some(false),
                ..ListOptions::default()
            };
            if let Ok(mut events) = registry.watch(fed.resource(), None, &options).await {
                while let Some(event) = events.next().await {
                    if event.event_type == "ERROR" {
                        break;
                    }
                    let mut graph = self.graph.write().unwrap_or_else(|e| e.into_inner());
                    match event.event_type {
                        "ADDED" | "MODIFIED" => fed.set(&mut graph, &event.object),
                        "DELETED" => fed.remove(&mut graph, &event.object),
                        _ => {}
                    }
                }
            }
            // The watch ended (the server closes long watches, or the revision was
            // compacted): relist, which replaces what the graph holds, and watch again.
            tokio::time::sleep(RELIST_DELAY).await;
            loop {
                match self.relist(&registry, fed).await {
                    Ok(listed) => {
                        revision = listed;
                        break;
                    }
                    Err(error) => {
                        tracing::warn!(%error, "listing for the node authorizer failed");
                        tokio::time::sleep(RELIST_DELAY).await;
                    }
                }
            }
        }
    }
}
