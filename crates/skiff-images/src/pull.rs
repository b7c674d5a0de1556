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
use oci_client::client::{Certificate, CertificateEncoding, ClientConfig, ClientProtocol};
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

/// How to reach registries: which speak plain HTTP, which credentials to present, which
/// mirrors to try first and which certificates to trust.
#[derive(Debug, Clone, Default)]
pub struct RegistryConfig {
    /// Hosts (`host:port`) reached over plain HTTP instead of HTTPS.
    pub plain_http: Vec<String>,
    /// Basic-auth credentials by host (`host:port`): user name and password.
    pub credentials: HashMap<String, (String, String)>,
    /// Mirrors by registry name (`docker.io`, or `*` for every registry).
    pub mirrors: HashMap<String, MirrorConfig>,
    /// TLS settings by host.
    pub tls: HashMap<String, TlsConfig>,
    /// Never fall back to the registry itself after its mirrors (k3s's
    /// `--disable-default-registry-endpoint`).
    pub disable_default_endpoint: bool,
}

/// The endpoints standing in for one registry, tried in order before the registry itself.
#[derive(Debug, Clone, Default)]
pub struct MirrorConfig {
    /// Hosts (`host:port`), in order of preference.
    pub endpoints: Vec<String>,
    /// Repository rewrites applied on these endpoints: a prefix and what replaces it.
    pub rewrites: Vec<PrefixRewrite>,
}

/// A repository rewrite of the simple kind `^PREFIX(.*)` to `REPLACEMENT$1`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrefixRewrite {
    /// The repository prefix matched.
    pub prefix: String,
    /// What replaces it.
    pub replacement: String,
}

/// How to check one host's certificate.
#[derive(Debug, Clone, Default)]
pub struct TlsConfig {
    /// PEM certificates of the authorities trusted for this host, besides the system's.
    pub ca_pem: Option<Vec<u8>>,
    /// Accept any certificate from this host.
    pub insecure_skip_verify: bool,
}

/// One place to try a pull: a host and the repository's name there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `host:port`.
    pub host: String,
    /// The repository on that host (after rewrites).
    pub repository: String,
}

/// Where to pull `reference` from, in order: the registry's mirrors (or the `*` mirrors),
/// then the registry itself unless it is listed already or the default is disabled. Pure,
/// so the order is tested without a network.
pub fn plan_endpoints(config: &RegistryConfig, reference: &Reference) -> Vec<Endpoint> {
    let registry = reference.registry();
    let repository = reference.repository();
    let mirror = config
        .mirrors
        .get(registry)
        .or_else(|| config.mirrors.get("*"));
    let mut endpoints: Vec<Endpoint> = mirror
        .map(|mirror| {
            let repository = mirror
                .rewrites
                .iter()
                .find_map(|rewrite| {
                    repository
                        .strip_prefix(&rewrite.prefix)
                        .map(|rest| format!("{}{rest}", rewrite.replacement))
                })
                .unwrap_or_else(|| repository.to_string());
            mirror
                .endpoints
                .iter()
                .map(|host| Endpoint {
                    host: host.clone(),
                    repository: repository.clone(),
                })
                .collect()
        })
        .unwrap_or_default();
    let listed = endpoints.iter().any(|endpoint| endpoint.host == registry);
    if !listed && (!config.disable_default_endpoint || endpoints.is_empty()) {
        endpoints.push(Endpoint {
            host: registry.to_string(),
            repository: repository.to_string(),
        });
    }
    endpoints
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
    clients: Arc<Mutex<HashMap<String, Arc<oci_client::Client>>>>,
    attempted: Arc<Mutex<Vec<String>>>,
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
            clients: Arc::default(),
            attempted: Arc::default(),
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

    /// The hosts this puller has asked for a manifest, in order.
    pub fn attempted_hosts(&self) -> Vec<String> {
        self.attempted
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// The given credentials (from a pod's pull Secrets) first, else the registries file's.
    fn auth(&self, host: &str, credentials: Option<&Credentials>) -> RegistryAuth {
        if let Some(credentials) = credentials {
            return RegistryAuth::Basic(credentials.username.clone(), credentials.password.clone());
        }
        match self.config.credentials.get(host) {
            Some((user, password)) => RegistryAuth::Basic(user.clone(), password.clone()),
            None => RegistryAuth::Anonymous,
        }
    }

    /// The client for `host`, shared unless `own` asks for a fresh one.
    fn client_for(&self, host: &str, own: bool) -> Result<Arc<oci_client::Client>, PullError> {
        if own {
            return Ok(Arc::new(new_client(&self.config, host)?));
        }
        let mut clients = self
            .clients
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(client) = clients.get(host) {
            return Ok(client.clone());
        }
        let client = Arc::new(new_client(&self.config, host)?);
        clients.insert(host.to_string(), client.clone());
        Ok(client)
    }

    fn oci_reference(endpoint: &Endpoint, reference: &Reference) -> oci_client::Reference {
        let registry = endpoint.host.clone();
        let repository = endpoint.repository.clone();
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
        let mut last_error = None;
        for endpoint in plan_endpoints(&self.config, reference) {
            self.attempted
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .push(endpoint.host.clone());
            match self.pull_from(&endpoint, reference, credentials).await {
                Ok(record) => return Ok(record),
                // A store failure is local: another endpoint would not help.
                Err(error @ PullError::Store(_)) => return Err(error),
                Err(error) => {
                    tracing::debug!(host = %endpoint.host, %error, "endpoint failed; trying the next");
                    last_error = Some(error);
                }
            }
        }
        Err(last_error.unwrap_or_else(|| {
            PullError::Registry(format!("no endpoint to pull {} from", reference.name()))
        }))
    }

    /// One pull attempt from one endpoint.
    async fn pull_from(
        &self,
        endpoint: &Endpoint,
        reference: &Reference,
        credentials: Option<&Credentials>,
    ) -> Result<ImageRecord, PullError> {
        let auth = self.auth(&endpoint.host, credentials);
        // The client keeps the first credentials it saw per registry; a pull with its own gets
        // a client of its own, so one pod's login never serves (or blocks) another's pull.
        let client = self.client_for(&endpoint.host, credentials.is_some())?;
        let (top_bytes, top_digest) = self
            .fetch_manifest(&client, endpoint, reference, &auth)
            .await?;
        let mut blobs = vec![top_digest.to_string()];
        let (manifest_bytes, manifest_digest) = if is_index(&top_bytes) {
            let index: OciImageIndex = parse_json(&top_bytes, &top_digest)?;
            let entry = choose_manifest(&index.manifests, &self.platform).ok_or_else(|| {
                PullError::NoMatchingPlatform {
                    platform: self.platform.to_string(),
                }
            })?;
            let pinned = reference.with_digest(&entry.digest);
            let (bytes, digest) = self
                .fetch_manifest(&client, endpoint, &pinned, &auth)
                .await?;
            blobs.push(digest.to_string());
            (bytes, digest)
        } else {
            (top_bytes, top_digest.clone())
        };
        let manifest: OciImageManifest = parse_json(&manifest_bytes, &manifest_digest)?;
        let mut size: u64 = 0;
        for descriptor in std::iter::once(&manifest.config).chain(manifest.layers.iter()) {
            self.fetch_blob(&client, endpoint, reference, descriptor)
                .await?;
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
        endpoint: &Endpoint,
        reference: &Reference,
        auth: &RegistryAuth,
    ) -> Result<(Vec<u8>, Digest), PullError> {
        let (bytes, _) = client
            .pull_manifest_raw(
                &Self::oci_reference(endpoint, reference),
                auth,
                &ACCEPTED_MANIFESTS,
            )
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
        endpoint: &Endpoint,
        reference: &Reference,
        descriptor: &OciDescriptor,
    ) -> Result<(), PullError> {
        let digest = parse_digest(&descriptor.digest)?;
        let lock = self.lock_for(&format!("blob {digest}"));
        let _guard = lock.lock().await;
        if self.store.contains(&digest) {
            return Ok(());
        }
        // Other processes (or stores opened separately) pulling the same blob wait here, then
        // find it stored by whoever went first.
        let store = self.store.clone();
        let locked = digest.clone();
        let _blob_lock = tokio::task::spawn_blocking(move || store.lock_blob(&locked))
            .await
            .map_err(|e| PullError::Registry(format!("waiting for blob {digest}: {e}")))??;
        if self.store.contains(&digest) {
            return Ok(());
        }
        self.downloads.fetch_add(1, Ordering::Relaxed);
        let expected_size = u64::try_from(descriptor.size).ok();
        // The client checks the digest as the stream ends as well; the store checks it again
        // before the blob is moved into place, so storage never rests on the client's word.
        let mut stream = client
            .pull_blob_stream(&Self::oci_reference(endpoint, reference), descriptor)
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

/// A registry client for `host`: plain HTTP where configured, and the host's TLS settings.
fn new_client(config: &RegistryConfig, host: &str) -> Result<oci_client::Client, PullError> {
    let tls = config.tls.get(host).cloned().unwrap_or_default();
    let extra_root_certificates = tls
        .ca_pem
        .map(|pem| Certificate {
            encoding: CertificateEncoding::Pem,
            data: pem,
        })
        .into_iter()
        .collect();
    let client = oci_client::Client::try_from(ClientConfig {
        protocol: ClientProtocol::HttpsExcept(config.plain_http.clone()),
        platform_resolver: None,
        extra_root_certificates,
        accept_invalid_certificates: tls.insecure_skip_verify,
        ..ClientConfig::default()
    })
    .map_err(|e| PullError::Registry(format!("TLS settings for {host}: {e}")))?;
    Ok(client)
}

/// The registry client's error, with a refusal of credentials told apart and the causes
/// (such as a certificate the client does not trust) spelled out.
fn registry_error(error: oci_client::errors::OciDistributionError) -> PullError {
    match error {
        oci_client::errors::OciDistributionError::UnauthorizedError { url } => {
            PullError::Unauthorized { url }
        }
        other => {
            let mut text = other.to_string();
            let mut source = std::error::Error::source(&other);
            while let Some(cause) = source {
                let cause_text = cause.to_string();
                if !text.contains(&cause_text) {
                    text.push_str(": ");
                    text.push_str(&cause_text);
                }
                source = cause.source();
            }
            PullError::Registry(text)
        }
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
