//! The real node's images: the OCI content store first, then registries through the puller.
//! An image name means only what the store or its registry says.
//!
//! Lookups and unpacking touch the disk, so they run on the blocking pool; concurrent pulls of
//! one reference with the same credentials share one pull (the puller already shares each
//! blob's download between different references).

use std::collections::BTreeSet;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use futures::future::{BoxFuture, FutureExt, Shared};
use k8s_openapi::api::core::v1::ContainerImage;
use skiff_images::{ContentStore, ImageRecord, LowerDirs, PullError, Puller, Reference};
use tokio::time::Instant;

use crate::agent::{
    ImageGcFailure, ImageLookupError, ImageRoot, ImageService, PullCredentials, PulledImage,
    ResolvedImage,
};
use skiff_images::gc::{GcPolicy, ImageGc, RemovalReason};

/// A pull in flight: its outcome (record, or the registry's error) and how long it took.
type SharedPull = Shared<BoxFuture<'static, Result<(ImageRecord, Duration), String>>>;

/// The node's images from the content store, pulled through registries when missing.
pub struct StoreImages {
    store: ContentStore,
    puller: Puller,
    in_flight: Mutex<HashMap<String, SharedPull>>,
    /// The garbage collector's memory of images (first seen, last used).
    gc: Arc<Mutex<ImageGc>>,
}

impl StoreImages {
    /// Images from `store`, pulled with `puller` when missing.
    pub fn new(store: ContentStore, puller: Puller) -> StoreImages {
        StoreImages {
            store,
            puller,
            in_flight: Mutex::new(HashMap::new()),
            gc: Arc::new(Mutex::new(new_collector(SystemTime::now()))),
        }
    }

    /// Pulls `reference`, one pull per reference and credentials at a time.
    async fn shared_pull(
        &self,
        reference: Reference,
        credentials: &PullCredentials,
    ) -> Result<(ImageRecord, Duration), String> {
        let users: Vec<&str> = credentials.iter().map(|c| c.username.as_str()).collect();
        let key = format!("{reference}\u{0}{}", users.join("\u{0}"));
        let pull = {
            let mut in_flight = self
                .in_flight
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            in_flight
                .entry(key.clone())
                .or_insert_with(|| {
                    let puller = self.puller.clone();
                    let credentials = credentials.clone();
                    async move {
                        let began = Instant::now();
                        let record = pull_trying(&puller, &reference, &credentials).await?;
                        Ok((record, began.elapsed()))
                    }
                    .boxed()
                    .shared()
                })
                .clone()
        };
        let outcome = pull.await;
        self.in_flight
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .remove(&key);
        outcome
    }
}

/// Tries each credential in order (the next only when the registry refused the last), then
/// the registries file's credentials or none.
async fn pull_trying(
    puller: &Puller,
    reference: &Reference,
    credentials: &PullCredentials,
) -> Result<ImageRecord, String> {
    for credential in credentials {
        match puller
            .pull_with_credentials(reference, Some(credential))
            .await
        {
            Ok(record) => return Ok(record),
            Err(PullError::Unauthorized { .. }) => continue,
            Err(error) => return Err(error.to_string()),
        }
    }
    puller
        .pull_with_credentials(reference, None)
        .await
        .map_err(|error| error.to_string())
}

/// What runs from a stored image: its config and root filesystem (unpacked on first use).
fn resolve_record(
    store: &ContentStore,
    record: &ImageRecord,
    reference: &Reference,
) -> Result<ResolvedImage, String> {
    let config = store.image_config(record).map_err(|e| e.to_string())?;
    let root = match store.lower_dirs(record).map_err(|e| e.to_string())? {
        LowerDirs::Overlay(dirs) if fits_in_mount_options(&dirs) => ImageRoot::Overlay(dirs),
        // Too many layers to name in one `lowerdir=` option: one merged tree instead.
        LowerDirs::Overlay(_) => {
            ImageRoot::Merged(store.merged_rootfs(record).map_err(|e| e.to_string())?)
        }
        LowerDirs::Merged(dir) => ImageRoot::Merged(dir),
    };
    Ok(ResolvedImage {
        entrypoint: config.entrypoint,
        cmd: config.cmd,
        env: config.env,
        working_dir: config.working_dir.filter(|d| !d.is_empty()),
        user: config.user.filter(|u| !u.is_empty()),
        image_id: format!("{}@{}", record.name, record.digest),
        name: reference.to_string(),
        root: Some(root),
        size: record.size,
        local_only: false,
    })
}

/// The room the kernel gives one mount's options (a page), less what the upper and work
/// directories and the option names take.
const LOWERDIR_OPTION_BUDGET: usize = 4096 - 1024;

/// Whether overlayfs can be given `dirs` as its `lowerdir=` in one mount: the kernel copies
/// mount options into a single page, so a deep image's snapshot paths may not fit.
fn fits_in_mount_options(dirs: &[std::path::PathBuf]) -> bool {
    let joined: usize = dirs.iter().map(|d| d.as_os_str().len() + 1).sum();
    joined <= LOWERDIR_OPTION_BUDGET
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, String> + Send + 'static,
) -> Result<T, String> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| format!("image store task failed: {e}"))?
}

#[async_trait]
impl ImageService for StoreImages {
    async fn find(&self, image: &str) -> Result<Option<ResolvedImage>, ImageLookupError> {
        let reference =
            Reference::parse(image).map_err(|e| ImageLookupError::InvalidName(e.to_string()))?;
        let store = self.store.clone();
        blocking(move || {
            let Some(record) = store.find_image(&reference).map_err(|e| e.to_string())? else {
                return Ok(None);
            };
            resolve_record(&store, &record, &reference).map(Some)
        })
        .await
        .map_err(ImageLookupError::Inspect)
    }

    async fn pull(
        &self,
        image: &str,
        credentials: &PullCredentials,
    ) -> Result<PulledImage, String> {
        let reference = Reference::parse(image).map_err(|e| e.to_string())?;
        let (record, pull_duration) = self.shared_pull(reference.clone(), credentials).await?;
        let store = self.store.clone();
        let image = blocking(move || resolve_record(&store, &record, &reference)).await?;
        Ok(PulledImage {
            image,
            pull_duration,
        })
    }

    async fn collect_garbage(
        &self,
        in_use: &[String],
        now: SystemTime,
    ) -> Result<(), ImageGcFailure> {
        let store = self.store.clone();
        let gc = self.gc.clone();
        let in_use = in_use.to_vec();
        tokio::task::spawn_blocking(move || collect(&store, &gc, &in_use, now))
            .await
            .map_err(|e| ImageGcFailure::Failed(format!("image garbage collection stopped: {e}")))?
    }

    fn node_images(&self) -> Vec<ContainerImage> {
        match self.store.images() {
            Ok(records) => node_images(&records),
            Err(error) => {
                tracing::warn!(%error, "listing stored images failed");
                Vec::new()
            }
        }
    }
}

/// A collector with kubelet's policy (85 % / 80 %, two minutes' minimum age).
fn new_collector(began: SystemTime) -> ImageGc {
    match ImageGc::new(GcPolicy::default(), began) {
        Ok(gc) => gc,
        Err(error) => unreachable!("kubelet's default image GC policy is valid: {error}"),
    }
}

/// One round: the pods' images (by image ID) are kept, the planner decides from the store's
/// filesystem usage, and what it picks is removed with every name it has.
fn collect(
    store: &ContentStore,
    gc: &Mutex<ImageGc>,
    in_use: &[String],
    now: SystemTime,
) -> Result<(), ImageGcFailure> {
    let failed = |e: skiff_images::StoreError| ImageGcFailure::Failed(e.to_string());
    let used: BTreeSet<String> = in_use
        .iter()
        .filter_map(|image| Reference::parse(image).ok())
        .filter_map(|reference| store.find_image(&reference).ok().flatten())
        .map(|record| record.image_id().to_string())
        .collect();
    let present = store.gc_inventory().map_err(failed)?;
    let usage = store.filesystem_usage().map_err(failed)?;
    let mut gc = gc.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let plan = gc
        .plan(now, &present, &used, usage)
        .map_err(|e| ImageGcFailure::Failed(e.to_string()))?;
    let mut freed: u64 = 0;
    for removal in &plan.removals {
        match store.remove_image_id(&removal.id) {
            Ok(_) => {
                gc.forget(&removal.id);
                tracing::info!(image = %removal.id, size = removal.size, "removed an unused image");
                if removal.reason == RemovalReason::Space {
                    freed = freed.saturating_add(removal.size);
                }
            }
            Err(error) => tracing::warn!(image = %removal.id, %error, "removing an image failed"),
        }
    }
    match plan.shortfall_message(freed) {
        Some(message) => Err(ImageGcFailure::FreeDiskSpace(message)),
        None => Ok(()),
    }
}

/// The Node's `status.images`: one entry per stored image content, named `repo@digest` and
/// `repo:tag` for each tag, largest first, as kubelet lists them.
pub fn node_images(records: &[ImageRecord]) -> Vec<ContainerImage> {
    let mut by_content: BTreeMap<(String, String), (Vec<String>, u64)> = BTreeMap::new();
    for record in records {
        let entry = by_content
            .entry((record.name.clone(), record.digest.clone()))
            .or_insert_with(|| (vec![format!("{}@{}", record.name, record.digest)], 0));
        if let Some(tag) = &record.tag {
            entry.0.push(format!("{}:{tag}", record.name));
        }
        entry.1 = entry.1.max(record.size);
    }
    let mut images: Vec<ContainerImage> = by_content
        .into_values()
        .map(|(names, size)| ContainerImage {
            names: Some(names),
            size_bytes: i64::try_from(size).ok(),
        })
        .collect();
    images.sort_by_key(|image| std::cmp::Reverse(image.size_bytes));
    images
}

#[cfg(test)]
mod tests {
    #[test]
    fn deep_images_fall_back_to_a_merged_tree_beyond_one_page_of_lower_dirs() {
        let dir = |i: usize| {
            std::path::PathBuf::from(format!("/data/content/snapshots/overlay-sha256-{i:064}"))
        };
        let shallow: Vec<_> = (0..10).map(dir).collect();
        let deep: Vec<_> = (0..40).map(dir).collect();
        assert!(super::fits_in_mount_options(&shallow));
        assert!(!super::fits_in_mount_options(&deep));
    }

    use super::*;

    fn record(name: &str, tag: Option<&str>, digest: &str, size: u64) -> ImageRecord {
        ImageRecord {
            name: name.into(),
            tag: tag.map(str::to_string),
            digest: digest.into(),
            manifest: digest.into(),
            config: "sha256:c".into(),
            size,
            blobs: Vec::new(),
            diff_ids: Vec::new(),
        }
    }

    fn service(dir: &std::path::Path) -> StoreImages {
        let store = ContentStore::open(dir.join("content")).unwrap();
        let puller = Puller::new(store.clone(), skiff_images::RegistryConfig::default());
        StoreImages::new(store, puller)
    }

    #[tokio::test]
    async fn lookups_parse_the_reference_and_find_only_stored_images() {
        let dir = tempfile::tempdir().unwrap();
        let images = service(dir.path());
        match images.find("Upper/Case:1").await {
            Err(ImageLookupError::InvalidName(message)) => {
                assert!(message.starts_with("invalid reference format"), "{message}")
            }
            other => panic!("an invalid name, not {other:?}"),
        }
        assert_eq!(images.find("example.test/app:1").await, Ok(None));
        // Names that once meant built-in programs mean nothing until stored.
        for former_alias in ["nginx:1.18", "busybox", "httpd:2.4", "skiff/demo:1"] {
            assert_eq!(images.find(former_alias).await, Ok(None), "{former_alias}");
        }
        assert!(images.node_images().is_empty());
    }

    #[tokio::test]
    async fn concurrent_pulls_of_one_image_share_one_pull() {
        use tokio::io::AsyncReadExt;
        // A "registry" that takes the first connection, holds it until told, then hangs up.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let host = listener.local_addr().unwrap().to_string();
        let (accepted_tx, accepted_rx) = tokio::sync::oneshot::channel();
        let (release_tx, release_rx) = tokio::sync::oneshot::channel::<()>();
        let registry = tokio::spawn(async move {
            let (mut connection, _) = listener.accept().await.unwrap();
            let mut request = [0u8; 1024];
            let _ = connection.read(&mut request).await;
            let _ = accepted_tx.send(());
            let _ = release_rx.await;
            drop(connection);
        });
        let dir = tempfile::tempdir().unwrap();
        let store = ContentStore::open(dir.path().join("content")).unwrap();
        let config = skiff_images::RegistryConfig {
            plain_http: vec![host.clone()],
            ..Default::default()
        };
        let puller = Puller::new(store.clone(), config);
        let images = StoreImages::new(store, puller.clone());
        let image = format!("{host}/team/app:1");
        let no_credentials = PullCredentials::new();
        let release = async {
            accepted_rx.await.unwrap();
            // Both pulls have been polled by now: the second joined the first's.
            for _ in 0..10 {
                tokio::task::yield_now().await;
            }
            release_tx.send(()).unwrap();
        };
        let (first, second, ()) = tokio::join!(
            images.pull(&image, &no_credentials),
            images.pull(&image, &no_credentials),
            release
        );
        registry.await.unwrap();
        let (first, second) = (first.unwrap_err(), second.unwrap_err());
        assert_eq!(first, second, "both callers get the one pull's error");
        assert_eq!(
            puller.attempted_hosts(),
            vec![host],
            "one pull reached the registry"
        );
    }

    #[test]
    fn node_images_name_each_content_by_digest_then_tags_largest_first() {
        let records = [
            record("docker.io/library/small", Some("1"), "sha256:aa", 10),
            record("docker.io/library/big", Some("1"), "sha256:bb", 500),
            record("docker.io/library/big", Some("stable"), "sha256:bb", 500),
            record("docker.io/library/pinned", None, "sha256:cc", 20),
        ];
        let images = node_images(&records);
        let names: Vec<Vec<String>> = images.iter().map(|i| i.names.clone().unwrap()).collect();
        assert_eq!(
            names,
            vec![
                vec![
                    "docker.io/library/big@sha256:bb".to_string(),
                    "docker.io/library/big:1".to_string(),
                    "docker.io/library/big:stable".to_string(),
                ],
                vec!["docker.io/library/pinned@sha256:cc".to_string()],
                vec![
                    "docker.io/library/small@sha256:aa".to_string(),
                    "docker.io/library/small:1".to_string(),
                ],
            ]
        );
        assert_eq!(images[0].size_bytes, Some(500));
    }
}
