//! Building real OCI images from files: layers from a list of entries, an image config, and
//! the ways out of the process (an OCI image archive, a `docker save` archive, straight into a
//! [`ContentStore`], or a push to a registry).
//!
//! Builds are deterministic: entries are written sorted by path (hard links after the files
//! they name), every modification time is 0, owners are 0:0 with no user or group names, and
//! gzip carries no name or time, so the same inputs always give the same digests. Tests rely
//! on that to cache what they build.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

use oci_client::client::{Certificate, CertificateEncoding, ClientConfig, ClientProtocol};
use oci_client::manifest::{
    IMAGE_CONFIG_MEDIA_TYPE, IMAGE_LAYER_GZIP_MEDIA_TYPE, IMAGE_LAYER_MEDIA_TYPE,
    OCI_IMAGE_INDEX_MEDIA_TYPE, OCI_IMAGE_MEDIA_TYPE,
};
use oci_client::secrets::RegistryAuth;

pub use crate::config::ImageConfig;
use crate::digest::Digest;
use crate::pull::Platform;
use crate::reference::Reference;
use crate::store::{ContentStore, ImageRecord, StoreError};

/// The annotation containerd and Docker read an image's full name from.
const CONTAINERD_NAME: &str = "io.containerd.image.name";
/// The OCI annotation naming a manifest in a layout; by containerd's convention, the tag.
const OCI_REF_NAME: &str = "org.opencontainers.image.ref.name";

/// Why an image could not be built or delivered.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// A path inside the image is empty or climbs out of the root (`..`).
    #[error("{0:?} is not a plain path inside an image")]
    InvalidPath(String),
    /// A hard link names something that is not a regular file of the same layer.
    #[error("hard link {link:?} names {target:?}, which is not a regular file in the layer")]
    HardLinkTarget {
        /// The link's path.
        link: String,
        /// The path it names.
        target: String,
    },
    /// Reading an input file or writing an output failed.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file it was done to.
        path: PathBuf,
        /// The operating system's error.
        source: io::Error,
    },
    /// The image name is not a valid reference.
    #[error("image name {name:?}: {reason}")]
    InvalidName {
        /// The name given.
        name: String,
        /// Why it was refused.
        reason: String,
    },
    /// The registry refused the push or could not be reached.
    #[error("pushing to {registry}: {reason}")]
    Push {
        /// The registry's `host:port`.
        registry: String,
        /// What the registry or the client said.
        reason: String,
    },
    /// The content store refused a blob or a snapshot.
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn io_error<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> BuildError + 'a {
    move |source| BuildError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

/// Where a regular file's bytes come from.
#[derive(Debug, Clone)]
enum FileContent {
    Bytes(Vec<u8>),
    HostPath(PathBuf),
}

/// One entry of a layer, before it is written.
#[derive(Debug, Clone)]
enum Entry {
    Directory { mode: u32 },
    File { content: FileContent, mode: u32 },
    Symlink { target: String },
    HardLink { target: String },
}

/// The entries of one layer, kept sorted by their path inside the image.
///
/// Paths are relative to the image root (a leading `/` is allowed and dropped); missing parent
/// directories are added with mode `0755`. A later entry at the same path replaces the
/// earlier one.
#[derive(Debug, Clone, Default)]
pub struct LayerBuilder {
    entries: BTreeMap<String, Entry>,
}

/// How a layer blob is stored: plain tar is fastest to build and unpack; gzip is smaller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayerCompression {
    /// `application/vnd.oci.image.layer.v1.tar`.
    None,
    /// `application/vnd.oci.image.layer.v1.tar+gzip`, at the fastest level.
    Gzip,
}

/// The normalized form of a path inside an image: `a/b/c`, no `.`, `..` or empty parts.
fn image_path(path: &str) -> Result<String, BuildError> {
    let mut parts = Vec::new();
    for component in Path::new(path).components() {
        match component {
            Component::RootDir | Component::CurDir => {}
            Component::Normal(part) => parts.push(
                part.to_str()
                    .ok_or_else(|| BuildError::InvalidPath(path.to_string()))?,
            ),
            Component::ParentDir | Component::Prefix(_) => {
                return Err(BuildError::InvalidPath(path.to_string()))
            }
        }
    }
    if parts.is_empty() {
        return Err(BuildError::InvalidPath(path.to_string()));
    }
    Ok(parts.join("/"))
}

impl LayerBuilder {
    /// An empty layer.
    pub fn new() -> Self {
        Self::default()
    }

    fn insert(&mut self, path: &str, entry: Entry) -> Result<&mut Self, BuildError> {
        let path = image_path(path)?;
        let mut end = path.len();
        while let Some(slash) = path[..end].rfind('/') {
            self.entries
                .entry(path[..slash].to_string())
                .or_insert(Entry::Directory { mode: 0o755 });
            end = slash;
        }
        self.entries.insert(path, entry);
        Ok(self)
    }

    /// A directory with `mode` (permission bits, plus setuid, setgid and sticky).
    pub fn directory(&mut self, path: &str, mode: u32) -> Result<&mut Self, BuildError> {
        self.insert(path, Entry::Directory { mode })
    }

    /// A regular file holding `bytes`.
    pub fn file(
        &mut self,
        path: &str,
        bytes: impl Into<Vec<u8>>,
        mode: u32,
    ) -> Result<&mut Self, BuildError> {
        let content = FileContent::Bytes(bytes.into());
        self.insert(path, Entry::File { content, mode })
    }

    /// A regular file copied from `host_path` (symlinks followed) when the layer is built,
    /// with the host file's permission bits.
    pub fn host_file(
        &mut self,
        path: &str,
        host_path: impl Into<PathBuf>,
    ) -> Result<&mut Self, BuildError> {
        let host_path = host_path.into();
        let metadata = std::fs::metadata(&host_path).map_err(io_error("reading", &host_path))?;
        let mode = metadata.permissions().mode() & 0o7777;
        self.host_file_with_mode(path, host_path, mode)
    }

    /// A regular file copied from `host_path` when the layer is built, with `mode`.
    pub fn host_file_with_mode(
        &mut self,
        path: &str,
        host_path: impl Into<PathBuf>,
        mode: u32,
    ) -> Result<&mut Self, BuildError> {
        let content = FileContent::HostPath(host_path.into());
        self.insert(path, Entry::File { content, mode })
    }

    /// A symbolic link to `target`, written as given (absolute or relative).
    pub fn symlink(&mut self, path: &str, target: &str) -> Result<&mut Self, BuildError> {
        let target = target.to_string();
        self.insert(path, Entry::Symlink { target })
    }

    /// A hard link to the regular file at `target` in this layer.
    pub fn hard_link(&mut self, path: &str, target: &str) -> Result<&mut Self, BuildError> {
        let target = image_path(target)?;
        self.insert(path, Entry::HardLink { target })
    }

    /// Writes the layer's tar stream and compresses it.
    pub fn build(&self, compression: LayerCompression) -> Result<Layer, BuildError> {
        let tar = self.tar()?;
        let diff_id = Digest::sha256_of(&tar);
        let (blob, media_type) = match compression {
            LayerCompression::None => (tar, IMAGE_LAYER_MEDIA_TYPE),
            LayerCompression::Gzip => {
                let mut encoder = flate2::GzBuilder::new()
                    .mtime(0)
                    .write(Vec::new(), flate2::Compression::fast());
                let gzipped = encoder
                    .write_all(&tar)
                    .and_then(|()| encoder.finish())
                    .map_err(io_error("compressing", Path::new("layer")))?;
                (gzipped, IMAGE_LAYER_GZIP_MEDIA_TYPE)
            }
        };
        Ok(Layer {
            digest: Digest::sha256_of(&blob),
            blob,
            diff_id,
            media_type,
        })
    }

    /// The uncompressed tar stream: every entry but hard links in path order, then the hard
    /// links (whose targets must precede them).
    fn tar(&self) -> Result<Vec<u8>, BuildError> {
        let mut builder = tar::Builder::new(Vec::new());
        let hard_links = self
            .entries
            .iter()
            .filter(|(_, entry)| matches!(entry, Entry::HardLink { .. }));
        let others = self
            .entries
            .iter()
            .filter(|(_, entry)| !matches!(entry, Entry::HardLink { .. }));
        for (path, entry) in others.chain(hard_links) {
            let written = match entry {
                Entry::Directory { mode } => {
                    let mut header = header(tar::EntryType::Directory, *mode, 0);
                    builder.append_data(&mut header, format!("{path}/"), io::empty())
                }
                Entry::File {
                    content: FileContent::Bytes(bytes),
                    mode,
                } => {
                    let mut header = header(tar::EntryType::Regular, *mode, bytes.len() as u64);
                    builder.append_data(&mut header, path, &bytes[..])
                }
                Entry::File {
                    content: FileContent::HostPath(host_path),
                    mode,
                } => {
                    let file = File::open(host_path).map_err(io_error("reading", host_path))?;
                    let size = file
                        .metadata()
                        .map_err(io_error("reading", host_path))?
                        .len();
                    let mut header = header(tar::EntryType::Regular, *mode, size);
                    // A file that changes size while it is read must not yield a corrupt
                    // entry: read exactly `size` bytes and fail if fewer come.
                    let mut reader = ExactReader {
                        inner: file.take(size),
                        remaining: size,
                    };
                    builder
                        .append_data(&mut header, path, &mut reader)
                        .map_err(io_error("reading", host_path))?;
                    continue;
                }
                Entry::Symlink { target } => {
                    let mut header = header(tar::EntryType::Symlink, 0o777, 0);
                    builder.append_link(&mut header, path, target)
                }
                Entry::HardLink { target } => {
                    if !matches!(self.entries.get(target), Some(Entry::File { .. })) {
                        return Err(BuildError::HardLinkTarget {
                            link: path.clone(),
                            target: target.clone(),
                        });
                    }
                    let mut header = header(tar::EntryType::Link, 0o644, 0);
                    builder.append_link(&mut header, path, target)
                }
            };
            written.map_err(io_error("writing entry", Path::new(path)))?;
        }
        builder
            .into_inner()
            .map_err(io_error("writing", Path::new("layer")))
    }
}

/// Reads exactly the announced number of bytes, failing on a short read.
struct ExactReader<R> {
    inner: R,
    remaining: u64,
}

impl<R: Read> Read for ExactReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.remaining == 0 {
            return Ok(0);
        }
        let n = self.inner.read(buf)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the file shrank while it was read",
            ));
        }
        self.remaining = self.remaining.saturating_sub(n as u64);
        Ok(n)
    }
}

fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(kind);
    header.set_mode(mode);
    header.set_size(size);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(0);
    header
}

/// A built layer blob with the digests that name it.
#[derive(Debug, Clone)]
pub struct Layer {
    /// The blob as stored and pushed (compressed or not).
    pub blob: Vec<u8>,
    /// The blob's digest, as the manifest names it.
    pub digest: Digest,
    /// The digest of the uncompressed tar stream, as the config names it.
    pub diff_id: Digest,
    /// The layer media type, which says how the blob is compressed.
    pub media_type: &'static str,
}

/// The `PATH` Docker gives images that set none.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Assembles layers and a config into an image for a platform (the node's by default).
#[derive(Debug, Clone)]
pub struct ImageBuilder {
    layers: Vec<Layer>,
    config: ImageConfig,
    platform: Platform,
}

impl Default for ImageBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl ImageBuilder {
    /// An image of no layers for this machine's platform.
    pub fn new() -> Self {
        ImageBuilder {
            layers: Vec::new(),
            config: ImageConfig::default(),
            platform: Platform::current(),
        }
    }

    /// Adds `layer` on top of those added before.
    pub fn layer(mut self, layer: Layer) -> Self {
        self.layers.push(layer);
        self
    }

    /// Sets the runtime config.
    pub fn config(mut self, config: ImageConfig) -> Self {
        self.config = config;
        self
    }

    /// Builds for `platform` instead of this machine's.
    pub fn platform(mut self, platform: Platform) -> Self {
        self.platform = platform;
        self
    }

    /// Writes the config and manifest.
    pub fn build(self) -> BuiltImage {
        let ImageConfig {
            entrypoint,
            cmd,
            env,
            working_dir,
            exposed_ports,
            labels,
            user,
        } = self.config;
        let mut runtime = serde_json::Map::new();
        if let Some(user) = user {
            runtime.insert("User".into(), user.into());
        }
        if !exposed_ports.is_empty() {
            let ports: serde_json::Map<_, _> = exposed_ports
                .into_iter()
                .map(|port| (port, serde_json::json!({})))
                .collect();
            runtime.insert("ExposedPorts".into(), ports.into());
        }
        if !env.is_empty() {
            let env: Vec<String> = env
                .into_iter()
                .map(|(name, value)| format!("{name}={value}"))
                .collect();
            runtime.insert("Env".into(), env.into());
        }
        if !entrypoint.is_empty() {
            runtime.insert("Entrypoint".into(), entrypoint.into());
        }
        if !cmd.is_empty() {
            runtime.insert("Cmd".into(), cmd.into());
        }
        if let Some(working_dir) = working_dir {
            runtime.insert("WorkingDir".into(), working_dir.into());
        }
        if !labels.is_empty() {
            let labels: serde_json::Map<_, _> = labels
                .into_iter()
                .map(|(key, value)| (key, value.into()))
                .collect();
            runtime.insert("Labels".into(), labels.into());
        }
        let mut config = serde_json::json!({
            "created": "1970-01-01T00:00:00Z",
            "architecture": self.platform.architecture,
            "os": self.platform.os,
            "config": runtime,
            "rootfs": {
                "type": "layers",
                "diff_ids": self.layers.iter().map(|l| l.diff_id.to_string()).collect::<Vec<_>>(),
            },
        });
        if let Some(variant) = &self.platform.variant {
            config["variant"] = variant.clone().into();
        }
        let config = serde_json::to_vec(&config).expect("an image config serializes");
        let manifest = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_IMAGE_MEDIA_TYPE,
            "config": descriptor(IMAGE_CONFIG_MEDIA_TYPE, &Digest::sha256_of(&config), config.len()),
            "layers": self.layers.iter().map(|l| descriptor(l.media_type, &l.digest, l.blob.len())).collect::<Vec<_>>(),
        }))
        .expect("a manifest serializes");
        BuiltImage {
            layers: self.layers,
            platform: self.platform,
            config_digest: Digest::sha256_of(&config),
            config,
            manifest_digest: Digest::sha256_of(&manifest),
            manifest,
        }
    }
}

fn descriptor(media_type: &str, digest: &Digest, size: usize) -> serde_json::Value {
    serde_json::json!({"mediaType": media_type, "digest": digest.to_string(), "size": size})
}

/// Where and how to push: a registry's `host:port`, plain HTTP or HTTPS (trusting an extra CA),
/// and optional basic-auth credentials.
#[derive(Debug, Clone)]
pub struct PushTarget {
    /// `host:port` of the registry.
    pub registry: String,
    /// Speak plain HTTP instead of HTTPS.
    pub plain_http: bool,
    /// A CA certificate (PEM) to trust besides the system's, for HTTPS.
    pub ca_pem: Option<String>,
    /// User name and password for HTTP basic auth.
    pub credentials: Option<(String, String)>,
}

impl PushTarget {
    /// A registry reached over plain HTTP without credentials.
    pub fn plain_http(registry: impl Into<String>) -> Self {
        PushTarget {
            registry: registry.into(),
            plain_http: true,
            ca_pem: None,
            credentials: None,
        }
    }
}

/// A built image: its layers, config and manifest bytes, and their digests.
#[derive(Debug, Clone)]
pub struct BuiltImage {
    /// The layers, bottom first.
    pub layers: Vec<Layer>,
    /// The platform the config names, which an index entry for the image repeats.
    pub platform: Platform,
    /// The config blob.
    pub config: Vec<u8>,
    /// The config blob's digest.
    pub config_digest: Digest,
    /// The image manifest (OCI).
    pub manifest: Vec<u8>,
    /// The manifest's digest, which is the image's digest.
    pub manifest_digest: Digest,
}

impl BuiltImage {
    /// The compressed size of config and layers, as `docker images` reports it.
    pub fn size(&self) -> u64 {
        self.layers
            .iter()
            .fold(self.config.len() as u64, |total, layer| {
                total.saturating_add(layer.blob.len() as u64)
            })
    }

    /// Writes an OCI image layout as a tar at `path`, naming the image `name`
    /// (`registry/repository:tag`): the full name in `io.containerd.image.name` and the tag in
    /// `org.opencontainers.image.ref.name`, as containerd and Docker export.
    pub fn write_oci_archive(&self, path: &Path, name: &str) -> Result<(), BuildError> {
        self.write_oci_archive_compressed(path, name, ArchiveCompression::None)
    }

    /// [`BuiltImage::write_oci_archive`], the whole file compressed (`.tar.gz`, `.tar.zst`).
    pub fn write_oci_archive_compressed(
        &self,
        path: &Path,
        name: &str,
        compression: ArchiveCompression,
    ) -> Result<(), BuildError> {
        let reference = parse_name(name)?;
        let tag = reference.effective_tag().unwrap_or("latest").to_string();
        let index = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_IMAGE_INDEX_MEDIA_TYPE,
            "manifests": [{
                "mediaType": OCI_IMAGE_MEDIA_TYPE,
                "digest": self.manifest_digest.to_string(),
                "size": self.manifest.len(),
                "annotations": {CONTAINERD_NAME: name, OCI_REF_NAME: tag},
            }],
        }))
        .expect("an index serializes");
        let mut files: Vec<(String, &[u8])> = vec![
            ("oci-layout".into(), br#"{"imageLayoutVersion":"1.0.0"}"#),
            ("index.json".into(), &index),
        ];
        for (digest, bytes) in self.blobs() {
            files.push((format!("blobs/sha256/{}", digest.hex()), bytes));
        }
        write_archive(path, &["blobs", "blobs/sha256"], &files, compression)
    }

    /// Writes a `docker save` archive at `path` naming the image `repo_tags`
    /// (`registry/repository:tag` each), with uncompressed layers as `docker save` writes them.
    pub fn write_docker_archive(&self, path: &Path, repo_tags: &[&str]) -> Result<(), BuildError> {
        self.write_docker_archive_compressed(path, repo_tags, ArchiveCompression::None)
    }

    /// [`BuiltImage::write_docker_archive`], the whole file compressed (`.tar.gz`, `.tar.zst`).
    pub fn write_docker_archive_compressed(
        &self,
        path: &Path,
        repo_tags: &[&str],
        compression: ArchiveCompression,
    ) -> Result<(), BuildError> {
        for name in repo_tags {
            parse_name(name)?;
        }
        let config_name = format!("{}.json", self.config_digest.hex());
        let mut layer_tars = Vec::new();
        for layer in &self.layers {
            layer_tars.push(uncompressed(layer)?);
        }
        let layer_names: Vec<String> = self
            .layers
            .iter()
            .map(|layer| format!("{}/layer.tar", layer.diff_id.hex()))
            .collect();
        let manifest = serde_json::to_vec(&serde_json::json!([{
            "Config": config_name,
            "RepoTags": repo_tags,
            "Layers": layer_names,
        }]))
        .expect("a docker manifest serializes");
        let mut directories: Vec<&str> = Vec::new();
        let mut files: Vec<(String, &[u8])> = vec![(config_name.clone(), &self.config[..])];
        for (name, tar) in layer_names.iter().zip(&layer_tars) {
            directories.push(name.split('/').next().unwrap_or_default());
            files.push((name.clone(), tar));
        }
        files.push(("manifest.json".into(), &manifest));
        write_archive(path, &directories, &files, compression)
    }

    /// Every blob with its digest: the manifest, the config, then the layers.
    fn blobs(&self) -> impl Iterator<Item = (&Digest, &[u8])> {
        [
            (&self.manifest_digest, &self.manifest[..]),
            (&self.config_digest, &self.config[..]),
        ]
        .into_iter()
        .chain(self.layers.iter().map(|l| (&l.digest, &l.blob[..])))
    }

    /// Stores the image in `store` under `name` (`registry/repository:tag`), as an import
    /// would: every blob verified, every layer unpacked into its snapshot, then the record.
    pub fn import_into(&self, store: &ContentStore, name: &str) -> Result<ImageRecord, BuildError> {
        let reference = parse_name(name)?;
        for (digest, bytes) in self.blobs() {
            store.put(digest, bytes)?;
        }
        for layer in &self.layers {
            store.ensure_snapshot(&layer.digest, &layer.diff_id)?;
        }
        let record = ImageRecord {
            name: reference.name(),
            tag: reference.effective_tag().map(str::to_string),
            digest: self.manifest_digest.to_string(),
            manifest: self.manifest_digest.to_string(),
            config: self.config_digest.to_string(),
            size: self.size(),
            blobs: self.blobs().map(|(digest, _)| digest.to_string()).collect(),
            diff_ids: self.layers.iter().map(|l| l.diff_id.to_string()).collect(),
        };
        store.put_image(record.clone())?;
        Ok(record)
    }

    /// Pushes the image as `repository:tag` to `target`; blobs the registry has are not sent
    /// again. Returns the manifest's digest.
    pub async fn push(
        &self,
        target: &PushTarget,
        repository: &str,
        tag: &str,
    ) -> Result<Digest, BuildError> {
        let pusher = Pusher::connect(target, repository).await?;
        pusher.push_image(self).await?;
        pusher
            .push_manifest(tag, &self.manifest, OCI_IMAGE_MEDIA_TYPE)
            .await?;
        Ok(self.manifest_digest.clone())
    }
}

/// A multi-platform image: an OCI index naming one image per platform.
#[derive(Debug, Clone)]
pub struct ImageIndex {
    /// The index's bytes.
    pub bytes: Vec<u8>,
    /// Their digest, the image's digest.
    pub digest: Digest,
}

impl ImageIndex {
    /// The index of `images`, each entry carrying its image's platform.
    pub fn of(images: &[&BuiltImage]) -> ImageIndex {
        let entries: Vec<serde_json::Value> = images
            .iter()
            .map(|image| {
                let mut platform = serde_json::json!({
                    "architecture": image.platform.architecture,
                    "os": image.platform.os,
                });
                if let Some(variant) = &image.platform.variant {
                    platform["variant"] = variant.clone().into();
                }
                let mut entry = descriptor(
                    OCI_IMAGE_MEDIA_TYPE,
                    &image.manifest_digest,
                    image.manifest.len(),
                );
                entry["platform"] = platform;
                entry
            })
            .collect();
        let bytes = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_IMAGE_INDEX_MEDIA_TYPE,
            "manifests": entries,
        }))
        .expect("an index serializes");
        ImageIndex {
            digest: Digest::sha256_of(&bytes),
            bytes,
        }
    }

    /// Pushes every image by digest and the index of them as `repository:tag`; returns the
    /// index's digest.
    pub async fn push(
        images: &[&BuiltImage],
        target: &PushTarget,
        repository: &str,
        tag: &str,
    ) -> Result<Digest, BuildError> {
        let index = ImageIndex::of(images);
        let pusher = Pusher::connect(target, repository).await?;
        for image in images {
            pusher.push_image(image).await?;
            pusher
                .push_manifest(
                    &image.manifest_digest.to_string(),
                    &image.manifest,
                    OCI_IMAGE_MEDIA_TYPE,
                )
                .await?;
        }
        pusher
            .push_manifest(tag, &index.bytes, OCI_IMAGE_INDEX_MEDIA_TYPE)
            .await?;
        Ok(index.digest)
    }
}

/// A registry client authenticated to push to one repository.
struct Pusher {
    client: oci_client::Client,
    registry: String,
    repository: String,
}

impl Pusher {
    async fn connect(target: &PushTarget, repository: &str) -> Result<Pusher, BuildError> {
        // The registry client's TLS uses the process-wide provider; the workspace's is ring.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let protocol = if target.plain_http {
            ClientProtocol::HttpsExcept(vec![target.registry.clone()])
        } else {
            ClientProtocol::Https
        };
        let client = oci_client::Client::try_from(ClientConfig {
            protocol,
            extra_root_certificates: target
                .ca_pem
                .iter()
                .map(|pem| Certificate {
                    encoding: CertificateEncoding::Pem,
                    data: pem.clone().into_bytes(),
                })
                .collect(),
            ..ClientConfig::default()
        })
        .map_err(|e| push_failed(&target.registry, e))?;
        let pusher = Pusher {
            client,
            registry: target.registry.clone(),
            repository: repository.to_string(),
        };
        let auth = match &target.credentials {
            Some((user, password)) => RegistryAuth::Basic(user.clone(), password.clone()),
            None => RegistryAuth::Anonymous,
        };
        pusher
            .client
            .auth(
                &pusher.reference("latest"),
                &auth,
                oci_client::RegistryOperation::Push,
            )
            .await
            .map_err(|e| push_failed(&pusher.registry, e))?;
        Ok(pusher)
    }

    /// The reference of `tag_or_digest` (`sha256:...` pins a digest) in the repository.
    fn reference(&self, tag_or_digest: &str) -> oci_client::Reference {
        let (registry, repository) = (self.registry.clone(), self.repository.clone());
        if tag_or_digest.contains(':') {
            oci_client::Reference::with_digest(registry, repository, tag_or_digest.to_string())
        } else {
            oci_client::Reference::with_tag(registry, repository, tag_or_digest.to_string())
        }
    }

    /// Sends the config and layers the registry lacks.
    async fn push_image(&self, image: &BuiltImage) -> Result<(), BuildError> {
        let reference = self.reference(&image.manifest_digest.to_string());
        for (digest, bytes) in image.blobs().skip(1) {
            let digest = digest.to_string();
            let present = self
                .client
                .blob_exists(&reference, &digest)
                .await
                .map_err(|e| push_failed(&self.registry, e))?;
            if !present {
                self.client
                    .push_blob(&reference, bytes.to_vec(), &digest)
                    .await
                    .map_err(|e| push_failed(&self.registry, e))?;
            }
        }
        Ok(())
    }

    async fn push_manifest(
        &self,
        tag_or_digest: &str,
        bytes: &[u8],
        media_type: &str,
    ) -> Result<(), BuildError> {
        let content_type = media_type
            .parse()
            .map_err(|_| push_failed(&self.registry, format!("bad media type {media_type}")))?;
        self.client
            .push_manifest_raw(&self.reference(tag_or_digest), bytes.to_vec(), content_type)
            .await
            .map_err(|e| push_failed(&self.registry, e))?;
        Ok(())
    }
}

fn push_failed(registry: &str, reason: impl std::fmt::Display) -> BuildError {
    BuildError::Push {
        registry: registry.to_string(),
        reason: reason.to_string(),
    }
}

fn parse_name(name: &str) -> Result<Reference, BuildError> {
    Reference::parse(name).map_err(|e| BuildError::InvalidName {
        name: name.to_string(),
        reason: e.to_string(),
    })
}

/// The uncompressed tar stream of a layer, as `docker save` archives hold it.
fn uncompressed(layer: &Layer) -> Result<Vec<u8>, BuildError> {
    if layer.media_type != IMAGE_LAYER_GZIP_MEDIA_TYPE {
        return Ok(layer.blob.clone());
    }
    let mut tar = Vec::new();
    flate2::read::GzDecoder::new(&layer.blob[..])
        .read_to_end(&mut tar)
        .map_err(io_error("decompressing", Path::new("layer")))?;
    Ok(tar)
}

/// How a whole archive file is compressed, as `skiff image import` accepts them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArchiveCompression {
    /// A plain `.tar`.
    None,
    /// `.tar.gz`, at the fastest level.
    Gzip,
    /// `.tar.zst`, at the fastest level.
    Zstd,
}

/// Writes a tar of `directories` and `files` at `path`, deterministically and compressed as
/// asked, through a temporary file renamed into place so no reader sees half an archive.
fn write_archive(
    path: &Path,
    directories: &[&str],
    files: &[(String, &[u8])],
    compression: ArchiveCompression,
) -> Result<(), BuildError> {
    let mut builder = tar::Builder::new(Vec::new());
    let tarred = (|| {
        for directory in directories {
            let mut header = header(tar::EntryType::Directory, 0o755, 0);
            builder.append_data(&mut header, format!("{directory}/"), io::empty())?;
        }
        for (name, bytes) in files {
            let mut header = header(tar::EntryType::Regular, 0o644, bytes.len() as u64);
            builder.append_data(&mut header, name, *bytes)?;
        }
        builder.into_inner()
    })()
    .map_err(io_error("writing", path))?;
    let bytes = match compression {
        ArchiveCompression::None => tarred,
        ArchiveCompression::Gzip => {
            let mut encoder = flate2::GzBuilder::new()
                .mtime(0)
                .write(Vec::new(), flate2::Compression::fast());
            encoder
                .write_all(&tarred)
                .and_then(|()| encoder.finish())
                .map_err(io_error("compressing", path))?
        }
        ArchiveCompression::Zstd => ruzstd::encoding::compress_to_vec(
            &tarred[..],
            ruzstd::encoding::CompressionLevel::Fastest,
        ),
    };
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temporary = path.with_file_name(format!(
        ".{file_name}.tmp-{}-{:016x}",
        std::process::id(),
        rand::random::<u64>()
    ));
    let result = (|| {
        let mut file = File::create(&temporary).map_err(io_error("creating", &temporary))?;
        file.write_all(&bytes)
            .map_err(io_error("writing", &temporary))?;
        file.sync_all().map_err(io_error("syncing", &temporary))?;
        std::fs::rename(&temporary, path).map_err(io_error("renaming into place", path))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive::import_archive;
    use std::os::unix::fs::MetadataExt;

    /// A layer of every entry kind, one of its files copied from `host_file`.
    fn every_kind_of_entry(host_file: &Path) -> LayerBuilder {
        let mut layer = LayerBuilder::new();
        layer
            .file("/etc/motd", "hello\n", 0o644)
            .unwrap()
            .host_file_with_mode("bin/tool", host_file, 0o755)
            .unwrap()
            .directory("tmp", 0o1777)
            .unwrap()
            .symlink("bin/tool-link", "/bin/tool")
            .unwrap()
            .hard_link("bin/tool-hard", "/bin/tool")
            .unwrap();
        layer
    }

    fn image(host_file: &Path, compression: LayerCompression) -> BuiltImage {
        let base = every_kind_of_entry(host_file).build(compression).unwrap();
        let mut top = LayerBuilder::new();
        top.file("www/index.html", "version=2\n", 0o644).unwrap();
        ImageBuilder::new()
            .layer(base)
            .layer(top.build(compression).unwrap())
            .config(runtime_config())
            .build()
    }

    fn runtime_config() -> ImageConfig {
        ImageConfig {
            entrypoint: vec!["/bin/tool".into()],
            cmd: vec!["serve".into()],
            env: vec![
                ("PATH".into(), DEFAULT_PATH.into()),
                ("VERSION".into(), "2".into()),
            ],
            working_dir: Some("/www".into()),
            exposed_ports: vec!["80/tcp".into()],
            labels: BTreeMap::from([("purpose".into(), "test".into())]),
            user: None,
        }
    }

    fn host_file(dir: &Path) -> PathBuf {
        let path = dir.join("tool");
        std::fs::write(&path, b"#!/bin/sh\necho tool\n").unwrap();
        path
    }

    /// The merged view of a record's snapshots is not needed here: each check names the
    /// layer (bottom first) its file is in.
    fn snapshot(store: &ContentStore, record: &ImageRecord, layer: usize) -> PathBuf {
        store.snapshot_path(&Digest::parse(&record.diff_ids[layer]).unwrap())
    }

    fn assert_holds_the_files(store: &ContentStore, record: &ImageRecord) {
        let base = snapshot(store, record, 0);
        let top = snapshot(store, record, 1);
        assert_eq!(std::fs::read(base.join("etc/motd")).unwrap(), b"hello\n");
        assert_eq!(
            std::fs::read(base.join("bin/tool")).unwrap(),
            b"#!/bin/sh\necho tool\n"
        );
        let tool = std::fs::metadata(base.join("bin/tool")).unwrap();
        assert_eq!(tool.permissions().mode() & 0o7777, 0o755);
        assert_eq!(
            std::fs::read_link(base.join("bin/tool-link")).unwrap(),
            Path::new("/bin/tool")
        );
        let hard = std::fs::metadata(base.join("bin/tool-hard")).unwrap();
        assert_eq!(
            hard.ino(),
            tool.ino(),
            "the hard link shares the file's inode"
        );
        let tmp = std::fs::metadata(base.join("tmp")).unwrap();
        assert!(tmp.is_dir());
        assert_eq!(tmp.permissions().mode() & 0o7777, 0o1777);
        assert_eq!(
            std::fs::read(top.join("www/index.html")).unwrap(),
            b"version=2\n"
        );
    }

    #[test]
    fn an_oci_archive_it_writes_imports_with_its_name_and_files() {
        let dir = tempfile::tempdir().unwrap();
        let built = image(&host_file(dir.path()), LayerCompression::None);
        let archive = dir.path().join("image.tar");
        built
            .write_oci_archive(&archive, "127.0.0.1:9/skiff-test/app:2")
            .unwrap();
        let store = ContentStore::open(dir.path().join("store")).unwrap();
        let records = import_archive(&store, &archive).unwrap();
        assert_eq!(records.len(), 1);
        let record = &records[0];
        assert_eq!(record.name, "127.0.0.1:9/skiff-test/app");
        assert_eq!(record.tag.as_deref(), Some("2"));
        assert_eq!(record.digest, built.manifest_digest.to_string());
        assert_holds_the_files(&store, record);
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|name| name.contains(".tmp-"))
            .collect();
        assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
    }

    #[test]
    fn a_docker_save_archive_it_writes_imports_under_every_tag() {
        let dir = tempfile::tempdir().unwrap();
        let built = image(&host_file(dir.path()), LayerCompression::Gzip);
        let archive = dir.path().join("image.tar");
        built
            .write_docker_archive(&archive, &["example.com/app:2", "example.com/app:stable"])
            .unwrap();
        let store = ContentStore::open(dir.path().join("store")).unwrap();
        let records = import_archive(&store, &archive).unwrap();
        let tags: Vec<_> = records.iter().filter_map(|r| r.tag.clone()).collect();
        assert_eq!(tags, ["2", "stable"]);
        assert!(records.iter().all(|r| r.name == "example.com/app"));
        assert_holds_the_files(&store, &records[0]);
    }

    #[test]
    fn compressed_archives_import_like_plain_ones() {
        let dir = tempfile::tempdir().unwrap();
        let built = image(&host_file(dir.path()), LayerCompression::None);
        for (compression, magic) in [
            (ArchiveCompression::Gzip, &[0x1f, 0x8b][..]),
            (ArchiveCompression::Zstd, &[0x28, 0xb5, 0x2f, 0xfd][..]),
        ] {
            let oci = dir.path().join("oci.tar.x");
            built
                .write_oci_archive_compressed(&oci, "example.com/app:oci", compression)
                .unwrap();
            let docker = dir.path().join("docker.tar.x");
            built
                .write_docker_archive_compressed(&docker, &["example.com/app:docker"], compression)
                .unwrap();
            for archive in [&oci, &docker] {
                assert!(
                    std::fs::read(archive).unwrap().starts_with(magic),
                    "{compression:?}"
                );
                let store =
                    ContentStore::open(dir.path().join(format!("{compression:?}"))).unwrap();
                let records = import_archive(&store, archive).unwrap();
                assert_eq!(records.len(), 1, "{compression:?}");
                assert_holds_the_files(&store, &records[0]);
            }
        }
    }

    #[test]
    fn an_image_imports_straight_into_a_store() {
        let dir = tempfile::tempdir().unwrap();
        let built = image(&host_file(dir.path()), LayerCompression::Gzip);
        let store = ContentStore::open(dir.path().join("store")).unwrap();
        let record = built.import_into(&store, "shell").unwrap();
        assert_eq!(record.name, "docker.io/library/shell");
        assert_eq!(record.tag.as_deref(), Some("latest"));
        assert_eq!(store.images().unwrap(), vec![record.clone()]);
        for blob in &record.blobs {
            assert!(store.contains(&Digest::parse(blob).unwrap()), "{blob}");
        }
        assert_eq!(record.size, built.size());
        assert_holds_the_files(&store, &record);
    }

    #[test]
    fn the_same_inputs_give_the_same_digests() {
        let dir = tempfile::tempdir().unwrap();
        let tool = host_file(dir.path());
        for compression in [LayerCompression::None, LayerCompression::Gzip] {
            let first = image(&tool, compression);
            let second = image(&tool, compression);
            assert_eq!(first.manifest_digest, second.manifest_digest);
            assert_eq!(first.manifest, second.manifest);
            let a = dir.path().join("a.tar");
            let b = dir.path().join("b.tar");
            first.write_oci_archive(&a, "app:1").unwrap();
            second.write_oci_archive(&b, "app:1").unwrap();
            assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
        }
        // Entries given in another order make the same layer.
        let mut reversed = LayerBuilder::new();
        reversed
            .hard_link("bin/tool-hard", "bin/tool")
            .unwrap()
            .symlink("bin/tool-link", "/bin/tool")
            .unwrap()
            .directory("tmp", 0o1777)
            .unwrap()
            .host_file_with_mode("bin/tool", &tool, 0o755)
            .unwrap()
            .file("etc/motd", "hello\n", 0o644)
            .unwrap();
        let ordered = every_kind_of_entry(&tool);
        assert_eq!(
            reversed.build(LayerCompression::None).unwrap().diff_id,
            ordered.build(LayerCompression::None).unwrap().diff_id
        );
        // And a changed input changes it.
        let before = image(&tool, LayerCompression::None).manifest_digest;
        std::fs::write(&tool, b"changed").unwrap();
        assert_ne!(image(&tool, LayerCompression::None).manifest_digest, before);
    }

    #[test]
    fn the_config_carries_the_runtime_settings_and_platform() {
        let dir = tempfile::tempdir().unwrap();
        let built = image(&host_file(dir.path()), LayerCompression::None);
        let config: serde_json::Value = serde_json::from_slice(&built.config).unwrap();
        let platform = Platform::current();
        assert_eq!(config["os"], platform.os.as_str());
        assert_eq!(config["architecture"], platform.architecture.as_str());
        assert_eq!(
            config["config"],
            serde_json::json!({
                "ExposedPorts": {"80/tcp": {}},
                "Env": [format!("PATH={DEFAULT_PATH}"), "VERSION=2".to_string()],
                "Entrypoint": ["/bin/tool"],
                "Cmd": ["serve"],
                "WorkingDir": "/www",
                "Labels": {"purpose": "test"},
            })
        );
        assert_eq!(
            ImageConfig::parse(&built.config).unwrap(),
            runtime_config(),
            "the config reads back as written"
        );
        let diff_ids: Vec<String> = built.layers.iter().map(|l| l.diff_id.to_string()).collect();
        assert_eq!(config["rootfs"]["diff_ids"], serde_json::json!(diff_ids));
        let manifest: serde_json::Value = serde_json::from_slice(&built.manifest).unwrap();
        assert_eq!(
            manifest["config"]["digest"],
            built.config_digest.to_string().as_str()
        );
        assert_eq!(manifest["layers"][0]["mediaType"], IMAGE_LAYER_MEDIA_TYPE);
    }

    #[test]
    fn an_index_names_each_image_with_its_platform() {
        let mut layer = LayerBuilder::new();
        layer.file("etc/motd", "hi\n", 0o644).unwrap();
        let layer = layer.build(LayerCompression::None).unwrap();
        let arm = Platform {
            os: "linux".into(),
            architecture: "arm".into(),
            variant: Some("v7".into()),
        };
        let here = ImageBuilder::new().layer(layer.clone()).build();
        let there = ImageBuilder::new().layer(layer).platform(arm).build();
        assert_ne!(here.manifest_digest, there.manifest_digest);
        let index = ImageIndex::of(&[&here, &there]);
        assert_eq!(index.digest, Digest::sha256_of(&index.bytes));
        let parsed: serde_json::Value = serde_json::from_slice(&index.bytes).unwrap();
        assert_eq!(parsed["mediaType"], OCI_IMAGE_INDEX_MEDIA_TYPE);
        let entries = parsed["manifests"].as_array().unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(
            entries[0]["digest"],
            here.manifest_digest.to_string().as_str()
        );
        assert_eq!(
            entries[0]["platform"]["architecture"],
            Platform::current().architecture.as_str()
        );
        assert_eq!(
            entries[1]["digest"],
            there.manifest_digest.to_string().as_str()
        );
        assert_eq!(
            entries[1]["platform"],
            serde_json::json!({"architecture": "arm", "os": "linux", "variant": "v7"})
        );
        assert_eq!(entries[1]["size"], there.manifest.len());
    }

    #[test]
    fn paths_outside_the_root_and_dangling_hard_links_are_refused() {
        let mut layer = LayerBuilder::new();
        for bad in ["", "/", "../etc/passwd", "a/../../b"] {
            let error = layer.file(bad, "x", 0o644).unwrap_err();
            assert!(
                matches!(error, BuildError::InvalidPath(_)),
                "{bad}: {error}"
            );
        }
        layer.directory("bin", 0o755).unwrap();
        layer.hard_link("bin/sh", "bin/busybox").unwrap();
        let error = layer.build(LayerCompression::None).unwrap_err();
        assert!(
            matches!(error, BuildError::HardLinkTarget { .. }),
            "{error}"
        );
        let mut to_a_directory = LayerBuilder::new();
        to_a_directory.hard_link("bin/sh", "bin").unwrap();
        assert!(to_a_directory.build(LayerCompression::None).is_err());
    }

    #[test]
    fn a_missing_host_file_is_an_error_naming_it() {
        let mut layer = LayerBuilder::new();
        let error = layer
            .host_file("bin/tool", "/nonexistent/skiff-build-input")
            .unwrap_err();
        assert!(
            error.to_string().contains("/nonexistent/skiff-build-input"),
            "{error}"
        );
    }
}
