//! Keeps the API Priority and Fairness configuration objects as kube-apiserver's config
//! producer and consumer do: before serving, every missing bootstrap FlowSchema and
//! PriorityLevelConfiguration is created; afterwards a loop over watches of both kinds brings
//! back deleted mandatory objects, restores their spec while `autoupdate-spec` allows it, and
//! writes each FlowSchema's `Dangling` condition, and hands what is stored to the request
//! dispatcher ([`FlowControl`]) after every change. What to write is decided by the pure
//! [`skiff_api::flow_control::plan`]; this module only reads and writes.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use serde_json::Value;
use skiff_api::flow_control::{plan, ConfigKind, Step};
use skiff_api::kinds::{flow_schema, priority_level_configuration};
use skiff_api::resources::{ResourceInfo, Subresource};

use crate::inflight::FlowControl;
use crate::registry::{FieldManagerName, ListOptions, Registry, WriteOptions};
use crate::status::ApiError;

/// The field manager of bootstrap objects, as Kubernetes names it.
const PRODUCER: &str = "api-priority-and-fairness-config-producer-v1";
/// The field manager of FlowSchema status, as Kubernetes names it.
const CONSUMER: &str = "api-priority-and-fairness-config-consumer-v1";

fn resource_of(kind: ConfigKind) -> &'static ResourceInfo {
    match kind {
        ConfigKind::FlowSchema => &flow_schema::V1,
        ConfigKind::PriorityLevel => &priority_level_configuration::V1,
    }
}

fn writing_as(manager: &str) -> WriteOptions {
    WriteOptions {
        field_manager: FieldManagerName::new(manager),
        ..WriteOptions::default()
    }
}

fn now() -> String {
    jiff::Timestamp::now()
        .round(jiff::Unit::Second)
        .unwrap_or_else(|_| jiff::Timestamp::now())
        .to_string()
}

/// One pass: reads both kinds, plans, writes. A write that loses a race (the object was
/// created or changed meanwhile) is left to the next pass.
async fn pass(registry: &Registry, at_start: bool) -> Result<usize, ApiError> {
    let options = ListOptions::default();
    let schemas = registry.list(&flow_schema::V1, None, &options).await?.items;
    let levels = registry
        .list(&priority_level_configuration::V1, None, &options)
        .await?
        .items;
    let mut writes = 0;
    for step in plan(&schemas, &levels, at_start, &now()) {
        let written = match step {
            Step::Create(kind, object) => {
                registry
                    .create(resource_of(kind), None, object, writing_as(PRODUCER))
                    .await
            }
            Step::RestoreSpec(kind, object) => {
                let name = name_of(&object);
                registry
                    .update(
                        resource_of(kind),
                        None,
                        &name,
                        object,
                        None,
                        writing_as(PRODUCER),
                    )
                    .await
            }
            Step::WriteStatus(object) => {
                let name = name_of(&object);
                registry
                    .update(
                        &flow_schema::V1,
                        None,
                        &name,
                        object,
                        Some(Subresource::Status),
                        writing_as(CONSUMER),
                    )
                    .await
            }
        };
        match written {
            Ok(_) => writes += 1,
            Err(e) if e.code == 409 || e.code == 404 => {}
            Err(e) => return Err(e),
        }
    }
    Ok(writes)
}

fn name_of(obj: &Value) -> String {
    obj.pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string()
}

/// The passes a start makes at most: the creates, then the conditions of what they created.
const START_PASSES: usize = 3;

/// Creates the missing bootstrap objects, mandatory and suggested, and writes their
/// conditions: run before the server serves, so nothing is left to write once it does. Then
/// `flow` takes the stored configuration.
pub async fn ensure_at_start(registry: &Registry, flow: &FlowControl) -> Result<(), ApiError> {
    for _ in 0..START_PASSES {
        if pass(registry, true).await? == 0 {
            break;
        }
    }
    refresh(registry, flow).await
}

/// Hands the stored FlowSchemas and priority levels to the dispatcher.
async fn refresh(registry: &Registry, flow: &FlowControl) -> Result<(), ApiError> {
    let options = ListOptions::default();
    let schemas = registry.list(&flow_schema::V1, None, &options).await?.items;
    let levels = registry
        .list(&priority_level_configuration::V1, None, &options)
        .await?
        .items;
    flow.reconfigure(&schemas, &levels);
    Ok(())
}

/// Starts the loop keeping the mandatory objects and FlowSchema conditions, and `flow`'s
/// configuration in step with the stored objects.
pub fn spawn(registry: Registry, flow: Arc<FlowControl>) {
    tokio::spawn(run(registry, flow));
}

/// One pass, then the dispatcher takes what is stored.
async fn keep(registry: &Registry, flow: &FlowControl) {
    if let Err(error) = pass(registry, false).await {
        tracing::warn!(%error, "keeping the flow control configuration failed");
    }
    if let Err(error) = refresh(registry, flow).await {
        tracing::warn!(%error, "reading the flow control configuration failed");
    }
}

async fn run(registry: Registry, flow: Arc<FlowControl>) {
    loop {
        let options = ListOptions::default();
        let watches = futures::future::try_join(
            registry.watch(&flow_schema::V1, None, &options),
            registry.watch(&priority_level_configuration::V1, None, &options),
        )
        .await;
        match watches {
            Ok((schemas, levels)) => {
                let mut changes = futures::stream::select(schemas, levels);
                // A pass first: a change may have come before the watches started.
                keep(&registry, &flow).await;
                while let Some(event) = changes.next().await {
                    if event.event_type == "BOOKMARK" {
                        continue;
                    }
                    keep(&registry, &flow).await;
                }
            }
            Err(error) => {
                tracing::warn!(%error, "watching the flow control configuration failed");
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}
