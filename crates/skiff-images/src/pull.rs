//! Pulling images from OCI distribution registries into the content store.
//!
//! A pull resolves the reference to a manifest (through a multi-platform index to the node's
//! platform), fetches every blob it lacks, verifies each against its digest before it is
//! stored, unpacks the layers into snapshots, and only then records the image. Pulls in one
//! process share one download per blob.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::manifest::{
    ImageIndexEntry, OciDescriptor, OciImageIndex, OciImageManifest,
    IMAGE_MANIFEST_LIST_MEDIA_TYPE, IMAGE_MANIFEST_MEDIA_TYPE, OCI_IMAGE_INDEX_MEDIA_TYPE,
    OCI_IMAGE_MEDIA_TYPE,
};
use oci_client::secrets::RegistryAuth;

use crate::digest::Digest;
use crate::keyring::Credentials;
use crate::reference::Reference;
use crate::store::{ContentStore, ImageRecord, StoreError};

/// The manifest kinds a pull accepts, OCI's and Docker's.
const ACCEPTED_MANIFESTS: [&str; 4] = [
    OCI_IMAGE_MEDIA_TYPE,
    OCI_IMAGE_INDEX_MEDIA_TYPE,
    IMAGE_MANIFEST_MEDIA_TYPE,
    IMAGE_MANIFEST_LIST_MEDIA_TYPE,
];

/// Why a pull failed.
#[derive(Debug, thiserror::Error)]
pub enum PullError {
    /// The registry answered with an error, or could not be reached; its text is kept.
    #[error("{0}")]
    Registry(String),
    /// The registry refused the credentials presented (or their absence).
    #[error("unauthorized: the registry refused access to {url} (HTTP 401); check the registry credentials")]
    Unauthorized {
        /// The URL refused.
        url: String,
    },
    /// The registry sent a manifest that cannot be read.
    #[error("invalid manifest {digest}: {reason}")]
    InvalidManifest {
        /// The manifest's digest.
        digest: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A multi-platform image has no manifest for this node.
    #[error("no matching manifest for {platform} in the manifest list entries")]
    NoMatchingPlatform {
        /// `os/architecture` of this node.
        platform: String,
    },
    /// Storing, verifying or unpacking failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// How to reach registries: which speak plain HTTP, and which credentials to present.
#[derive(Debug, Clone, Default)]
pub struct RegistryConfig {
    /// Registries (`host:port`) reached over plain HTTP instead of HTTPS.
    pub plain_http: Vec<String>,
    /// Basic-auth credentials by registry (`host:port`): user name and password.
    pub credentials: HashMap<String, (String, String)>,
}

/// The operating system and architecture whose manifest an index resolves to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platform {
    /// `linux`.
    pub os: String,
    /// GOARCH spelling: `amd64`, `arm64`...
    pub architecture: String,
    /// The architecture variant, if one is required (`v7` for 32-bit ARM).
    pub variant: Option<String>,
}

impl Platform {
    /// The platform this process runs on, in the OCI spelling.
    pub fn current() -> Self {
        let architecture = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            "x86" => "386",
            "arm" => "arm",
            "powerpc64" => "ppc64le",
            "s390x" => "s390x",
            "riscv64" => "riscv64",
            other => other,
        };
        Platform {
            os: std::env::consts::OS.to_string(),
            architecture: architecture.to_string(),
            variant: None,
        }
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(variant) = &self.variant {
            write!(f, "/{variant}")?;
        }
        Ok(())
    }
}

/// The index entry for `platform`: same OS and architecture, and the variant when the
/// platform names one. A pure choice, so it is tested without a registry.
pub fn choose_manifest<'a>(
    entries: &'a [ImageIndexEntry],
    platform: &Platform,
) -> Option<&'a ImageIndexEntry> {
    entries.iter().find(|entry| {
        entry.platform.as_ref().is_some_and(|p| {
            p.os.to_string() == platform.os
                && p.architecture.to_string() == platform.architecture
                && platform
                    .variant
                    .as_ref()
                    .is_none_or(|v| p.variant.as_ref() == Some(v))
        })
    })
}

/// Pulls images into a content store; cheap to clone and share between tasks.
#[derive(Clone)]
pub struct Puller {
    store: ContentStore,
    client: Arc<oci_client::Client>,
    config: RegistryConfig,
    platform: Platform,
    in_flight: Arc<Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>>,
    downloads: Arc<AtomicU64>,
}

impl Puller {
    /// A puller into `store` for this node's platform.
    pub fn new(store: ContentStore, config: RegistryConfig) -> Self {
        Self::for_platform(store, config, Platform::current())
    }

    /// A puller resolving indexes to `platform`.
    pub fn for_platform(store: ContentStore, config: RegistryConfig, platform: Platform) -> Self {
        // The registry client's TLS uses the process-wide provider; the workspace's is ring.
        let _ = rustls::crypto::ring::default_provider().install_default();
        Puller {
            store,
            client: Arc::new(new_client(&config)),
            config,
            platform,
            in_flight: Arc::default(),
            downloads: Arc::default(),
        }
    }

    /// How many blobs this puller has downloaded (blobs already stored are not fetched).
    pub fn downloads(&self) -> u64 {
        self.downloads.load(Ordering::Relaxed)
    }

    /// The given credentials (from a pod's pull Secrets) first, else the registries file's.
    fn auth(&self, reference: &Reference, credentials: Option<&Credentials>) -> RegistryAuth {
        if let Some(credentials) = credentials {
            return RegistryAuth::Basic(credentials.username.clone(), credentials.password.clone());
        }
        match self.config.credentials.get(reference.registry()) {
            Some((user, password)) => RegistryAuth::Basic(user.clone(), password.clone()),
            None => RegistryAuth::Anonymous,
        }
    }

    fn oci_reference(reference: &Reference) -> oci_client::Reference {
        let registry = reference.registry().to_string();
        let repository = reference.repository().to_string();
        match (reference.digest(), reference.tag()) {
            (Some(digest), _) => {
                oci_client::Reference::with_digest(registry, repository, digest.to_string())
            }
            (None, tag) => oci_client::Reference::with_tag(
                registry,
                repository,
                tag.unwrap_or(crate::reference::DEFAULT_TAG).to_string(),
            ),
        }
    }

    /// Pulls `reference` and records it with the registries file's credentials, if any.
    pub async fn pull(&self, reference: &Reference) -> Result<ImageRecord, PullError> {
        self.pull_with_credentials(reference, None).await
    }

    /// Pulls `reference` presenting `credentials` (such as a [`crate::Keyring`] match for a
    /// pod's pull Secrets) instead of the registries file's; records it and returns the record.
    pub async fn pull_with_credentials(
        &self,
        reference: &Reference,
        credentials: Option<&Credentials>,
    ) -> Result<ImageRecord, PullError> {
        let auth = self.auth(reference, credentials);
        // The client keeps the first credentials it saw per registry; a pull with its own gets
        // a client of its own, so one pod's login never serves (or blocks) another's pull.
        let client = match credentials {
            Some(_) => Arc::new(new_client(&self.config)),
            None => self.client.clone(),
        };
        let (top_bytes, top_digest) = self.fetch_manifest(&client, reference, &auth).await?;
        let mut blobs = vec![top_digest.to_string()];
        let (manifest_bytes, manifest_digest) = if is_index(&top_bytes) {
            let index: OciImageIndex = parse_json(&top_bytes, &top_digest)?;
            let entry = choose_manifest(&index.manifests, &self.platform).ok_or_else(|| {
                PullError::NoMatchingPlatform {
                    platform: self.platform.to_string(),
                }
            })?;
            let pinned = reference.with_digest(&entry.digest);
            let (bytes, digest) = self.fetch_manifest(&client, &pinned, &auth).await?;
            blobs.push(digest.to_string());
            (bytes, digest)
        } else {
            (top_bytes, top_digest.clone())
        };
        let manifest: OciImageManifest = parse_json(&manifest_bytes, &manifest_digest)?;
        let mut size: u64 = 0;
        for descriptor in std::iter::once(&manifest.config).chain(manifest.layers.iter()) {
            self.fetch_blob(&client, reference, descriptor).await?;
            blobs.push(descriptor.digest.clone());
            size = size.saturating_add(u64::try_from(descriptor.size).unwrap_or(0));
        }
        let config_digest = parse_digest(&manifest.config.digest)?;
        let config = self.store.read(&config_digest)?;
        let diff_ids = diff_ids(&config, &config_digest, manifest.layers.len())?;
        for (layer, diff_id) in manifest.layers.iter().zip(&diff_ids) {
            let layer = parse_digest(&layer.digest)?;
            let diff_id = diff_id.clone();
            let store = self.store.clone();
            let lock = self.lock_for(&format!("snapshot {diff_id}"));
            let _guard = lock.lock().await;
            tokio::task::spawn_blocking(move || store.ensure_snapshot(&layer, &diff_id))
                .await
                .map_err(|e| PullError::Registry(format!("unpacking was interrupted: {e}")))??;
        }
        let record = ImageRecord {
            name: reference.name(),
            tag: reference
                .tag()
                .map(str::to_string)
                .or_else(|| reference.effective_tag().map(str::to_string)),
            digest: top_digest.to_string(),
            manifest: manifest_digest.to_string(),
            config: config_digest.to_string(),
            size,
            blobs,
            diff_ids: diff_ids.iter().map(Digest::to_string).collect(),
        };
        self.store.put_image(record.clone())?;
        Ok(record)
    }

    /// Fetches a manifest, verifies it against the pinned digest (if any) and stores it.
    async fn fetch_manifest(
        &self,
        client: &oci_client::Client,
        reference: &Reference,
        auth: &RegistryAuth,
    ) -> Result<(Vec<u8>, Digest), PullError> {
        let (bytes, _) = client
            .pull_manifest_raw(&Self::oci_reference(reference), auth, &ACCEPTED_MANIFESTS)
            .await
            .map_err(registry_error)?;
        let digest = match reference.digest() {
            Some(pinned) => parse_digest(pinned)?,
            None => Digest::sha256_of(&bytes),
        };
        self.store.put(&digest, &bytes)?;
        Ok((bytes.to_vec(), digest))
    }

    fn lock_for(&self, key: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut in_flight = self
            .in_flight
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        // Forget the locks nobody holds or waits for, so the map stays as small as the work.
        in_flight.retain(|_, lock| Arc::strong_count(lock) > 1);
        in_flight.entry(key.to_string()).or_default().clone()
    }

    /// Downloads a blob unless stored; one download at a time per digest.
    async fn fetch_blob(
        &self,
        client: &oci_client::Client,
        reference: &Reference,
        descriptor: &OciDescriptor,
    ) -> Result<(), PullError> {
        let digest = parse_digest(&descriptor.digest)?;
        let lock = self.lock_for(&format!("blob {digest}"));
        let _guard = lock.lock().await;
        if self.store.contains(&digest) {
            return Ok(());
        }
        self.downloads.fetch_add(1, Ordering::Relaxed);
        let expected_size = u64::try_from(descriptor.size).ok();
        // The client checks the digest as the stream ends as well; the store checks it again
        // before the blob is moved into place, so storage never rests on the client's word.
        let mut stream = client
            .pull_blob_stream(&Self::oci_reference(reference), descriptor)
            .await
            .map_err(registry_error)?
            .stream;
        let mut writer = self.store.writer(digest.algorithm())?;
        while let Some(chunk) = stream.next().await {
            let chunk =
                chunk.map_err(|e| PullError::Registry(format!("downloading {digest}: {e}")))?;
            writer.write(&chunk)?;
        }
        writer.commit(&digest, expected_size)?;
        Ok(())
    }
}

/// A registry client speaking plain HTTP to the registries configured so.
fn new_client(config: &RegistryConfig) -> oci_client::Client {
    oci_client::Client::new(ClientConfig {
        protocol: ClientProtocol::HttpsExcept(config.plain_http.clone()),
        platform_resolver: None,
        ..ClientConfig::default()
    })
}

/// The registry client's error, with a refusal of credentials told apart.
fn registry_error(error: oci_client::errors::OciDistributionError) -> PullError {
    match error {
        oci_client::errors::OciDistributionError::UnauthorizedError { url } => {
            PullError::Unauthorized { url }
        }
        other => PullError::Registry(other.to_string()),
    }
}

fn is_index(bytes: &[u8]) -> bool {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(bytes) else {
        return false;
    };
    let media_type = value
        .get("mediaType")
        .and_then(|m| m.as_str())
        .unwrap_or_default();
    media_type == OCI_IMAGE_INDEX_MEDIA_TYPE
        || media_type == IMAGE_MANIFEST_LIST_MEDIA_TYPE
        || value.get("manifests").is_some()
}

fn parse_json<T: serde::de::DeserializeOwned>(
    bytes: &[u8],
    digest: &Digest,
) -> Result<T, PullError> {
    serde_json::from_slice(bytes).map_err(|e| PullError::InvalidManifest {
        digest: digest.to_string(),
        reason: e.to_string(),
    })
}

fn parse_digest(text: &str) -> Result<Digest, PullError> {
    Digest::parse(text).map_err(|e| PullError::InvalidManifest {
        digest: text.to_string(),
        reason: e.to_string(),
    })
}

/// The config's `rootfs.diff_ids`, one per layer.
pub(crate) fn diff_ids(
    config: &[u8],
    digest: &Digest,
    layers: usize,
) -> Result<Vec<Digest>, PullError> {
    let invalid = |reason: String| PullError::InvalidManifest {
        digest: digest.to_string(),
        reason,
    };
    let value: serde_json::Value =
        serde_json::from_slice(config).map_err(|e| invalid(e.to_string()))?;
    let ids = value
        .pointer("/rootfs/diff_ids")
        .and_then(|ids| ids.as_array())
        .ok_or_else(|| invalid("the image config has no rootfs.diff_ids".to_string()))?;
    if ids.len() != layers {
        return Err(invalid(format!(
            "{} diff IDs for {layers} layers",
            ids.len()
        )));
    }
    ids.iter()
        .map(|id| parse_digest(id.as_str().unwrap_or_default()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(digest: &str, os: &str, arch: &str, variant: Option<&str>) -> ImageIndexEntry {
        serde_json::from_value(serde_json::json!({
            "mediaType": OCI_IMAGE_MEDIA_TYPE,
            "digest": digest,
            "size": 1,
            "platform": {"os": os, "architecture": arch, "variant": variant},
        }))
        .unwrap()
    }

    #[test]
    fn an_index_resolves_to_the_nodes_platform() {
        let entries = vec![
            entry("sha256:arm", "linux", "arm", Some("v7")),
            entry("sha256:arm64", "linux", "arm64", Some("v8")),
            entry("sha256:amd64", "linux", "amd64", None),
            entry("sha256:windows", "windows", "amd64", None),
        ];
        let linux = |arch: &str, variant: Option<&str>| Platform {
            os: "linux".into(),
            architecture: arch.into(),
            variant: variant.map(String::from),
        };
        assert_eq!(
            choose_manifest(&entries, &linux("amd64", None))
                .unwrap()
                .digest,
            "sha256:amd64"
        );
        assert_eq!(
            choose_manifest(&entries, &linux("arm64", None))
                .unwrap()
                .digest,
            "sha256:arm64"
        );
        assert_eq!(
            choose_manifest(&entries, &linux("arm", Some("v7")))
                .unwrap()
                .digest,
            "sha256:arm"
        );
        assert!(choose_manifest(&entries, &linux("arm", Some("v6"))).is_none());
        assert!(choose_manifest(&entries, &linux("s390x", None)).is_none());
    }
}
