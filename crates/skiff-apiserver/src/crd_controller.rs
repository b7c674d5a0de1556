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
//! status writes agree, so running twice is harmless. Each lists the definitions before every
//! watch it starts and forgets the kinds of definitions gone from the list, so a definition
//! deleted (through any server) while its watch was broken does not stay served.

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

/// Lists the definitions, forgets the kinds of those gone (deleted while no watch ran, perhaps
/// through another server), reconciles the others; returns the list's revision, to watch from.
async fn relist(registry: &Registry, memory: &Arc<Mutex<Memory>>) -> Result<String, ApiError> {
    let listed = registry.list(&CRDS, None, &ListOptions::default()).await?;
    let present: HashSet<&str> = listed.items.iter().map(meta::name).collect();
    let gone: Vec<String> = {
        let memory = memory.lock().unwrap_or_else(|e| e.into_inner());
        memory
            .registered
            .keys()
            .filter(|name| !present.contains(name.as_str()))
            .cloned()
            .collect()
    };
    for name in gone {
        // A definition's name is `<plural>.<group>`.
        if let Some((plural, group)) = name.split_once('.') {
            forget(
                memory,
                &json!({"metadata": {"name": name},
                "spec": {"group": group, "names": {"plural": plural}}}),
            );
        }
    }
    let revision = listed.resource_version.to_string();
    for definition in listed.items {
        reconcile(registry, memory, definition).await;
    }
    Ok(revision)
}

async fn run(registry: Registry) {
    let memory = Arc::new(Mutex::new(Memory::default()));
    loop {
        let revision = match relist(&registry, &memory).await {
            Ok(revision) => revision,
            Err(error) => {
                tracing::warn!(%error, "listing CustomResourceDefinitions failed");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let from_list = ListOptions {
            resource_version: Some(revision),
            send_initial_events: Some(false),
            ..ListOptions::default()
        };
        match registry.watch(&CRDS, None, &from_list).await {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn sprockets() -> Value {
        json!({
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "metadata": {"name": "sprockets.relist.example.com"},
            "spec": {
                "group": "relist.example.com",
                "scope": "Namespaced",
                "names": {"plural": "sprockets", "singular": "sprocket", "kind": "Sprocket"},
                "versions": [{"name": "v1", "served": true, "storage": true,
                    "schema": {"openAPIV3Schema": {"type": "object"}}}]
            }
        })
    }

    fn served() -> bool {
        skiff_api::resources::find("relist.example.com", "v1", "sprockets").is_some()
    }

    #[tokio::test]
    async fn a_definition_gone_while_no_watch_ran_is_forgotten_at_the_next_list() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = skiff_store::SqliteStore::open(&dir.path().join("s.db")).expect("store");
        let registry = Registry::new(Arc::new(store));
        // Registered from an earlier watch; the definition was deleted (through another
        // server) while no watch ran, so no DELETED event will come.
        skiff_api::kinds::register_custom_kind(crd::kind_for(&sprockets()).expect("a kind"));
        let memory = Arc::new(Mutex::new(Memory::default()));
        memory
            .lock()
            .unwrap()
            .registered
            .insert("sprockets.relist.example.com".into(), ("uid".into(), 1));
        assert!(served(), "the kind is served before the list");

        relist(&registry, &memory).await.expect("list");
        assert!(!served(), "the list forgets a definition that is gone");
        assert!(memory.lock().unwrap().registered.is_empty());
    }
}
