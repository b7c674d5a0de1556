//! The PersistentVolume binder's shell: claims, volumes, classes and pods from informers,
//! each claim and volume planned by [`super::plan_claim`] and [`super::plan_volume`], the
//! writes applied in order as the `persistent-volume-binder` ServiceAccount, and the local-path
//! provisioner's directories made and removed through [`VolumeDirectories`].

use std::collections::HashMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use skiff_api::kinds;
use skiff_api::kinds::storage_class::DEFAULT_CLASS_ANNOTATION;
use skiff_client::{Client, DeleteOptions, Scope};
use skiff_runtime::informer::split_key;
use skiff_runtime::{
    EventRecorder, EventSource, EventType, Informer, InformerConfig, Notification, ObjectRef,
    WorkQueue,
};

use super::{
    plan_claim, plan_volume, pod_claims, pod_holds_claims, Cluster, EventKind, Plan, Write,
    LOCAL_PATH_CLASS, LOCAL_PATH_PROVISIONER,
};
use crate::shell::{run_key_syncs, KeySync, SyncError};

/// kube-controller-manager runs the binder with one worker; two keep claims and volumes moving
/// without racing each other much.
const WORKERS: usize = 2;
/// The prefixes of the two kinds of queue keys.
const CLAIM_KEY: &str = "claim:";
const VOLUME_KEY: &str = "volume:";

/// Where the local-path provisioner's volumes live on disk: made when a volume is provisioned,
/// removed when it is deleted. A trait so that the planner's shell can be run without a disk.
pub trait VolumeDirectories: Send + Sync + 'static {
    /// Makes the directory (and its parents).
    fn create(&self, path: &str) -> std::io::Result<()>;
    /// Removes the directory and its contents.
    fn remove(&self, path: &str) -> std::io::Result<()>;
}

/// The directories under one root (`DATA/storage`), refusing any path outside it.
pub struct LocalDirectories {
    root: PathBuf,
}

impl LocalDirectories {
    /// Directories under `root`.
    pub fn new(root: PathBuf) -> LocalDirectories {
        LocalDirectories { root }
    }

    /// `path` when it is a volume directory right under the root, else an error: a volume's
    /// path comes from its object, which a user can write.
    fn checked<'a>(&self, path: &'a str) -> std::io::Result<&'a Path> {
        let p = Path::new(path);
        let inside = p.parent() == Some(self.root.as_path())
            && p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("pvc-") && n != "." && n != "..");
        if inside {
            Ok(p)
        } else {
            Err(std::io::Error::new(
                std::io::ErrorKind::PermissionDenied,
                format!("{path} is not a local-path volume directory"),
            ))
        }
    }
}

impl VolumeDirectories for LocalDirectories {
    fn create(&self, path: &str) -> std::io::Result<()> {
        let p = self.checked(path)?;
        std::fs::create_dir_all(p)?;
        // Writable by whichever user the containers run as, as k3s' provisioner makes it.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o777))
    }

    fn remove(&self, path: &str) -> std::io::Result<()> {
        let p = self.checked(path)?;
        match std::fs::remove_dir_all(p) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            other => other,
        }
    }
}

/// The shell.
#[derive(Clone)]
pub struct VolumeBinder {
    client: Arc<dyn Client>,
    claims: Informer,
    volumes: Informer,
    classes: Informer,
    pods: Informer,
    directories: Arc<dyn VolumeDirectories>,
    storage_root: String,
    recorder: EventRecorder,
    queue: WorkQueue<String>,
}

impl KeySync for VolumeBinder {
    async fn sync_key(&self, key: &str) -> Result<Option<Duration>, SyncError> {
        if let Some(claim) = key.strip_prefix(CLAIM_KEY) {
            self.sync_claim(claim).await
        } else if let Some(volume) = key.strip_prefix(VOLUME_KEY) {
            self.sync_volume(volume).await
        } else {
            Ok(None)
        }
    }
}

fn text<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

fn claim_key_of(claim: &Value) -> String {
    format!(
        "{CLAIM_KEY}{}/{}",
        text(claim, "/metadata/namespace"),
        text(claim, "/metadata/name")
    )
}

impl VolumeBinder {
    /// Wires the binder to its informers.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        client: Arc<dyn Client>,
        claims: Informer,
        volumes: Informer,
        classes: Informer,
        pods: Informer,
        directories: Arc<dyn VolumeDirectories>,
        storage_root: String,
    ) -> Self {
        let recorder = EventRecorder::new(
            client.clone(),
            EventSource::component("persistentvolume-controller"),
        );
        let binder = VolumeBinder {
            client,
            claims,
            volumes,
            classes,
            pods,
            directories,
            storage_root,
            recorder,
            queue: WorkQueue::new(),
        };
        let queue = binder.queue.clone();
        binder.claims.add_handler(move |n: &Notification| {
            let claim = n.object();
            queue.add(claim_key_of(claim));
            let volume = text(claim, "/spec/volumeName");
            if !volume.is_empty() {
                queue.add(format!("{VOLUME_KEY}{volume}"));
            }
        });
        let queue = binder.queue.clone();
        let claims = binder.claims.downgrade();
        binder.volumes.add_handler(move |n: &Notification| {
            let volume = n.object();
            queue.add(format!("{VOLUME_KEY}{}", text(volume, "/metadata/name")));
            let referenced = text(volume, "/spec/claimRef/name");
            if !referenced.is_empty() {
                queue.add(format!(
                    "{CLAIM_KEY}{}/{referenced}",
                    text(volume, "/spec/claimRef/namespace")
                ));
            }
            // A new or freed volume may be what a pending claim waits for.
            if let Some(claims) = claims.upgrade() {
                for claim in claims.list() {
                    if text(&claim, "/status/phase") != "Bound" {
                        queue.add(claim_key_of(&claim));
                    }
                }
            }
        });
        let queue = binder.queue.clone();
        let claims = binder.claims.downgrade();
        binder.classes.add_handler(move |_n: &Notification| {
            if let Some(claims) = claims.upgrade() {
                for claim in claims.list() {
                    if text(&claim, "/status/phase") != "Bound" {
                        queue.add(claim_key_of(&claim));
                    }
                }
            }
        });
        let queue = binder.queue.clone();
        binder.pods.add_handler(move |n: &Notification| {
            let pod = n.object();
            let namespace = text(pod, "/metadata/namespace");
            for claim in pod_claims(pod) {
                queue.add(format!("{CLAIM_KEY}{namespace}/{claim}"));
            }
        });
        binder
    }

    /// Syncs every claim and volume, then follows changes until the queue shuts down.
    pub async fn run(self, workers: usize) {
        for claim in self.claims.list() {
            self.queue.add(claim_key_of(&claim));
        }
        for volume in self.volumes.list() {
            self.queue
                .add(format!("{VOLUME_KEY}{}", text(&volume, "/metadata/name")));
        }
        let queue = self.queue.clone();
        run_key_syncs(self, queue, workers).await;
    }

    /// Stops taking new work.
    pub fn shutdown(&self) {
        self.queue.shutdown();
    }

    async fn sync_claim(&self, key: &str) -> Result<Option<Duration>, SyncError> {
        let (namespace, name) = split_key(key);
        let Some(claim) = self.claims.get(namespace, name) else {
            return Ok(None);
        };
        let volumes = self.volumes.list();
        let classes = self.classes.list();
        let volume_refs: Vec<&Value> = volumes.iter().map(|v| &**v).collect();
        let class_refs: Vec<&Value> = classes.iter().map(|v| &**v).collect();
        let in_use = self
            .pods
            .list_by_namespace(namespace.unwrap_or(""))
            .iter()
            .any(|p| pod_holds_claims(p) && pod_claims(p).contains(&name));
        let cluster = Cluster {
            volumes: &volume_refs,
            classes: &class_refs,
            storage_root: &self.storage_root,
        };
        let plan = plan_claim(&claim, &cluster, in_use);
        self.apply(plan, &claim).await
    }

    async fn sync_volume(&self, name: &str) -> Result<Option<Duration>, SyncError> {
        let Some(volume) = self.volumes.get(None, name) else {
            return Ok(None);
        };
        let claim = match text(&volume, "/spec/claimRef/name") {
            "" => None,
            claim_name => {
                // The cache may lag behind a claim just made; ask the server before releasing.
                let namespace = text(&volume, "/spec/claimRef/namespace");
                match self.claims.get(Some(namespace), claim_name) {
                    Some(c) => Some((*c).clone()),
                    None => {
                        let scope = Scope {
                            resource: &kinds::persistent_volume_claim::V1,
                            namespace: Some(namespace),
                        };
                        match self.client.get(scope, claim_name).await {
                            Ok(c) => Some(c),
                            Err(e) if e.is_not_found() => None,
                            Err(e) => return Err(e.into()),
                        }
                    }
                }
            }
        };
        let plan = plan_volume(&volume, claim.as_ref());
        self.apply(plan, &volume).await
    }

    /// Applies the writes in order, each on the latest copy of its object, then records the
    /// events on `subject`.
    async fn apply(&self, plan: Plan, subject: &Value) -> Result<Option<Duration>, SyncError> {
        let pv_scope = Scope {
            resource: &kinds::persistent_volume::V1,
            namespace: None,
        };
        let mut latest_claim: Option<Value> = None;
        let mut latest_volumes: HashMap<String, Value> = HashMap::new();
        for write in plan.writes {
            match write {
                Write::UpdateClaim(claim) => {
                    let namespace = text(&claim, "/metadata/namespace").to_string();
                    let scope = Scope {
                        resource: &kinds::persistent_volume_claim::V1,
                        namespace: Some(&namespace),
                    };
                    latest_claim = Some(self.client.update(scope, claim).await?);
                }
                Write::ClaimStatus(status) => {
                    let mut claim = latest_claim.take().unwrap_or_else(|| subject.clone());
                    claim["status"] = status;
                    let namespace = text(&claim, "/metadata/namespace").to_string();
                    let scope = Scope {
                        resource: &kinds::persistent_volume_claim::V1,
                        namespace: Some(&namespace),
                    };
                    latest_claim = Some(self.client.update_status(scope, claim).await?);
                }
                Write::UpdateVolume(volume) => {
                    let name = text(&volume, "/metadata/name").to_string();
                    let stored = self.client.update(pv_scope, volume).await?;
                    latest_volumes.insert(name, stored);
                }
                Write::VolumeStatus { name, status } => {
                    let base = match latest_volumes.remove(&name) {
                        Some(v) => v,
                        None => match self.volumes.get(None, &name) {
                            Some(v) => (*v).clone(),
                            None => continue,
                        },
                    };
                    let mut volume = base;
                    volume["status"] = status;
                    let stored = self.client.update_status(pv_scope, volume).await?;
                    latest_volumes.insert(name, stored);
                }
                Write::CreateVolume { volume, directory } => {
                    self.directories
                        .create(&directory)
                        .map_err(|e| SyncError::Plan(format!("cannot make {directory}: {e}")))?;
                    match self.client.create(pv_scope, volume).await {
                        Ok(_) => {}
                        Err(e) if e.is_conflict() => {}
                        Err(e) => return Err(e.into()),
                    }
                }
                Write::DeleteVolume { name, directory } => {
                    if let Some(directory) = directory {
                        if let Err(e) = self.directories.remove(&directory) {
                            self.record(
                                subject,
                                EventType::Warning,
                                "VolumeFailedDelete",
                                e.to_string(),
                            );
                            return Err(SyncError::Plan(e.to_string()));
                        }
                    }
                    match self
                        .client
                        .delete(pv_scope, &name, &DeleteOptions::default())
                        .await
                    {
                        Ok(_) => {}
                        Err(e) if e.is_not_found() => {}
                        Err(e) => return Err(e.into()),
                    }
                }
            }
        }
        for event in plan.events {
            let kind = match event.kind {
                EventKind::Normal => EventType::Normal,
                EventKind::Warning => EventType::Warning,
            };
            self.record(subject, kind, event.reason, event.message);
        }
        Ok(None)
    }

    fn record(&self, subject: &Value, kind: EventType, reason: &str, message: String) {
        if let Ok(reference) = ObjectRef::from_value(subject) {
            self.recorder.record(&reference, kind, reason, message);
        }
    }
}

/// The built-in default class: Skiff's local-path provisioner, binding when the first pod is
/// scheduled and deleting volumes with their claims.
pub fn local_path_class() -> Value {
    json!({
        "apiVersion": "storage.k8s.io/v1",
        "kind": "StorageClass",
        "metadata": {"name": LOCAL_PATH_CLASS,
                     "annotations": {DEFAULT_CLASS_ANNOTATION: "true"}},
        "provisioner": LOCAL_PATH_PROVISIONER,
        "reclaimPolicy": "Delete",
        "volumeBindingMode": "WaitForFirstConsumer",
    })
}

/// Creates the `local-path` class unless it exists, as k3s applies its manifest at start.
pub async fn ensure_local_path_class(client: &Arc<dyn Client>) {
    let scope = Scope {
        resource: &kinds::storage_class::V1,
        namespace: None,
    };
    match client.create(scope, local_path_class()).await {
        Ok(_) => {}
        Err(e) if e.is_conflict() => {}
        Err(error) => tracing::warn!(%error, "cannot create the local-path StorageClass"),
    }
}

/// Runs the binder and the local-path provisioner over their own informers until `shutdown`
/// resolves; `client` makes the `local-path` class, `binder_client` (the binder's identity)
/// does the rest; volume directories live under `storage_root`.
pub async fn run(
    client: Arc<dyn Client>,
    binder_client: Arc<dyn Client>,
    storage_root: PathBuf,
    shutdown: impl Future<Output = ()> + Send,
) {
    tokio::pin!(shutdown);
    // A store that does not answer must not hold up a stop (a leader losing its lease).
    tokio::select! {
        _ = ensure_local_path_class(&client) => {}
        _ = &mut shutdown => return,
    }
    let informer = |resource| Informer::start(client.clone(), InformerConfig::new(resource));
    let claims = informer(&kinds::persistent_volume_claim::V1);
    let volumes = informer(&kinds::persistent_volume::V1);
    let classes = informer(&kinds::storage_class::V1);
    let pods = informer(&kinds::pod::V1);
    for i in [&claims, &volumes, &classes, &pods] {
        tokio::select! {
            _ = i.wait_synced() => {}
            _ = &mut shutdown => return,
        }
    }
    let root = storage_root.to_string_lossy().into_owned();
    let binder = VolumeBinder::new(
        binder_client,
        claims,
        volumes,
        classes,
        pods,
        Arc::new(LocalDirectories::new(storage_root)),
        root,
    );
    let stopper = binder.clone();
    tokio::select! {
        _ = binder.run(WORKERS) => {}
        _ = &mut shutdown => stopper.shutdown(),
    }
}
