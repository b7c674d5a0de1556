//! The CustomResourceDefinition controller: what apiextensions-apiserver's naming, establishing
//! and finalizing controllers do, in one loop over a watch of the definitions.
//!
//! For each definition it registers the kind the definition serves in the process-wide catalogue
//! (`skiff_api::kinds::register_custom_kind`) before writing `NamesAccepted` and `Established`,
//! so a client that waits for `Established` finds the resource served. A deleted definition
//! (marked, holding `customresourcecleanup.apiextensions.k8s.io`) gets `Terminating`, its
//! objects are deleted, then the finalizer is removed and its kind leaves the catalogue.
//!
//! Every server of a shared datastore runs it, since each serves from its own catalogue; their
//! status writes agree, so running twice is harmless.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use serde_json::{json, Value};
use skiff_api::crd;
use skiff_api::kinds::custom_resource_definition::V1 as CRDS;

use crate::meta;
use crate::registry::{DeleteOptions, ListOptions, Registry};
use crate::status::ApiError;

/// How long the cleanup waits between passes while objects with finalizers remain.
const CLEANUP_RETRY: Duration = Duration::from_millis(500);

/// Registers the kinds of every stored, established definition: run before the server serves,
/// so custom resources are answered from the first request after a restart.
pub async fn register_stored(registry: &Registry) -> Result<(), ApiError> {
    for definition in registry
        .list(&CRDS, None, &ListOptions::default())
        .await?
        .items
    {
        if crd::is_established(&definition) {
            if let Some(kind) = crd::kind_for(&definition) {
                skiff_api::kinds::register_custom_kind(kind);
            }
        }
    }
    Ok(())
}

/// Starts the controller in the background.
pub fn spawn(registry: Registry) {
    tokio::spawn(run(registry));
}

/// What the controller remembers between events: the generation each definition's kind was
/// registered at (a kind is rebuilt, and leaked, only when its definition changes) and the
/// definitions being cleaned up.
#[derive(Default)]
struct Memory {
    registered: HashMap<String, (String, i64)>,
    cleaning: HashSet<String>,
}

async fn run(registry: Registry) {
    let memory = Arc::new(Mutex::new(Memory::default()));
    loop {
        match registry.watch(&CRDS, None, &ListOptions::default()).await {
            Ok(mut events) => {
                while let Some(event) = events.next().await {
                    match event.event_type {
                        "ADDED" | "MODIFIED" => {
                            reconcile(&registry, &memory, event.object).await;
                        }
                        "DELETED" => forget(&memory, &event.object),
                        _ => {}
                    }
                }
            }
            Err(error) => {
                tracing::warn!(%error, "watching CustomResourceDefinitions failed");
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

fn text<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

fn forget(memory: &Mutex<Memory>, definition: &Value) {
    skiff_api::kinds::unregister_custom_kind(
        text(definition, "/spec/group"),
        text(definition, "/spec/names/plural"),
    );
    let mut memory = memory.lock().unwrap_or_else(|e| e.into_inner());
    memory.registered.remove(meta::name(definition));
}

async fn reconcile(registry: &Registry, memory: &Arc<Mutex<Memory>>, definition: Value) {
    let name = meta::name(&definition).to_string();
    let generation = definition
        .pointer("/metadata/generation")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    let uid = meta::uid(&definition).to_string();
    let others = match registry.list(&CRDS, None, &ListOptions::default()).await {
        Ok(list) => list.items,
        Err(error) => {
            tracing::warn!(%error, "listing CustomResourceDefinitions failed");
            return;
        }
    };
    // A definition whose names another holds is not served until they are free.
    let accepted = crd::names_accepted(&definition, &others) || crd::is_established(&definition);
    let changed = {
        let memory = memory.lock().unwrap_or_else(|e| e.into_inner());
        memory.registered.get(&name) != Some(&(uid.clone(), generation))
    };
    if changed && accepted {
        match crd::kind_for(&definition) {
            Some(kind) => skiff_api::kinds::register_custom_kind(kind),
            None => skiff_api::kinds::unregister_custom_kind(
                text(&definition, "/spec/group"),
                text(&definition, "/spec/names/plural"),
            ),
        }
        let mut memory = memory.lock().unwrap_or_else(|e| e.into_inner());
        memory.registered.insert(name.clone(), (uid, generation));
    }
    if let Err(error) = write_status(registry, &name, &others).await {
        tracing::warn!(%error, definition = %name, "updating a definition's status failed");
    }
    if meta::is_deleting(&definition)
        && meta::finalizers(&definition)
            .iter()
            .any(|f| f == crd::CLEANUP_FINALIZER)
    {
        let start = {
            let mut memory = memory.lock().unwrap_or_else(|e| e.into_inner());
            memory.cleaning.insert(name.clone())
        };
        if start {
            let registry = registry.clone();
            let memory = memory.clone();
            tokio::spawn(async move {
                while let Err(error) = clean_up(&registry, &definition).await {
                    tracing::warn!(%error, definition = %name, "deleting a definition's objects failed");
                    tokio::time::sleep(CLEANUP_RETRY).await;
                }
                let mut memory = memory.lock().unwrap_or_else(|e| e.into_inner());
                memory.cleaning.remove(&name);
            });
        }
    }
}

/// Writes the status the controllers give the definition, when it differs.
async fn write_status(registry: &Registry, name: &str, others: &[Value]) -> Result<(), ApiError> {
    registry
        .system_update(&CRDS, None, name, |mut current| {
            let status = crd::desired_status(&current, others, jiff::Timestamp::now());
            current["status"] = status;
            Ok(current)
        })
        .await
        .map(|_| ())
}

/// Deletes every object of the definition's resource, waits until none is left, then removes
/// the finalizer (which lets the definition go).
async fn clean_up(registry: &Registry, definition: &Value) -> Result<(), ApiError> {
    let group = text(definition, "/spec/group");
    let plural = text(definition, "/spec/names/plural");
    let Some(storage_version) = crd::storage_version(definition) else {
        return remove_finalizer(registry, definition).await;
    };
    if let Some(resource) = skiff_api::resources::find(group, storage_version, plural) {
        loop {
            let items = registry
                .list(resource, None, &ListOptions::default())
                .await?
                .items;
            if items.is_empty() {
                break;
            }
            for item in &items {
                match registry
                    .delete(
                        resource,
                        meta::namespace(item),
                        meta::name(item),
                        &DeleteOptions::default(),
                    )
                    .await
                {
                    Ok(_) => {}
                    Err(e) if e.code == 404 => {}
                    Err(e) => return Err(e),
                }
            }
            tokio::time::sleep(CLEANUP_RETRY).await;
        }
    }
    remove_finalizer(registry, definition).await
}

async fn remove_finalizer(registry: &Registry, definition: &Value) -> Result<(), ApiError> {
    let result = registry
        .system_update(&CRDS, None, meta::name(definition), |mut current| {
            let kept: Vec<String> = meta::finalizers(&current)
                .into_iter()
                .filter(|f| f != crd::CLEANUP_FINALIZER)
                .collect();
            meta::set(&mut current, "finalizers", json!(kept));
            if kept.is_empty() {
                meta::remove(&mut current, "finalizers");
            }
            Ok(current)
        })
        .await;
    match result {
        Ok(_) => Ok(()),
        Err(e) if e.code == 404 => Ok(()),
        Err(e) => Err(e),
    }
}
