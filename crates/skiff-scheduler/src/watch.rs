//! A minimal list-then-watch loop feeding the scheduler's cache.
//!
//! It lists, then watches from the listed revision, resumes from the last revision it saw when
//! a watch ends, and relists when the revision is too old. Kept apart so that the shared
//! informers can replace it without touching the scheduling loop.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use serde_json::Value;
use skiff_api::resources::ResourceInfo;
use skiff_client::{Client, ListOptions, Scope};
use tokio::sync::mpsc;

/// How long to wait before retrying a failed list or watch call.
const RETRY_DELAY: Duration = Duration::from_secs(1);

/// What the watched collection did.
#[derive(Debug)]
pub(crate) enum Change {
    /// A full listing: everything not in it is gone.
    Listed(Vec<Value>),
    /// An object was added or modified.
    Applied(Value),
    /// An object was deleted (or left the selection).
    Deleted(Value),
}

fn revision_of(object: &Value) -> Option<String> {
    object
        .pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .map(str::to_string)
}

/// Mirrors `resource` (cluster-wide, filtered by `field_selector`) into `tx` until the
/// receiver goes away.
pub(crate) async fn reflect(
    client: Arc<dyn Client>,
    resource: &'static ResourceInfo,
    field_selector: Option<String>,
    tx: mpsc::Sender<Change>,
) {
    let scope = Scope {
        resource,
        namespace: None,
    };
    loop {
        let list_options = ListOptions {
            field_selector: field_selector.clone(),
            ..ListOptions::default()
        };
        let listed = match client.list(scope, &list_options).await {
            Ok(list) => list,
            Err(e) => {
                tracing::warn!(resource = resource.plural, error = %e, "listing failed");
                tokio::time::sleep(RETRY_DELAY).await;
                continue;
            }
        };
        if tx.send(Change::Listed(listed.items)).await.is_err() {
            return;
        }
        let mut revision = listed.resource_version;
        // Watch, resuming from the last revision seen, until the revision expires.
        loop {
            let watch_options = ListOptions {
                field_selector: field_selector.clone(),
                resource_version: Some(revision.clone()),
                allow_bookmarks: true,
                ..ListOptions::default()
            };
            let mut events = match client.watch(scope, &watch_options).await {
                Ok(events) => events,
                Err(e) if e.code() == 410 => break,
                Err(e) => {
                    tracing::warn!(resource = resource.plural, error = %e, "watch failed");
                    tokio::time::sleep(RETRY_DELAY).await;
                    continue;
                }
            };
            let mut expired = false;
            let mut quiet = true;
            while let Some(event) = events.next().await {
                quiet = false;
                if event.event_type == "ERROR" {
                    expired = true;
                    break;
                }
                if let Some(rv) = revision_of(&event.object) {
                    revision = rv;
                }
                let change = match event.event_type {
                    "ADDED" | "MODIFIED" => Change::Applied(event.object),
                    "DELETED" => Change::Deleted(event.object),
                    _ => continue,
                };
                if tx.send(change).await.is_err() {
                    return;
                }
            }
            if expired {
                break;
            }
            if quiet {
                // A watch that ends at once must not turn into a busy loop.
                tokio::time::sleep(RETRY_DELAY).await;
            }
        }
    }
}
