//! Imports of image archives for machines without a registry: `docker save` archives and OCI
//! image layouts in a tar (`oci-archive`), plain or compressed with gzip or zstd.
//!
//! The archive is unpacked into a scratch directory in the store; every blob is copied into
//! the content store and verified against its digest; the layers are unpacked into snapshots
//! (which verifies their diff IDs); and only then are the images recorded under the names and
//! tags the archive carries.

use std::fs::{self, File};
use std::io::BufReader;
use std::path::{Path, PathBuf};

use oci_client::manifest::{
    OciImageIndex, OciImageManifest, IMAGE_CONFIG_MEDIA_TYPE, IMAGE_LAYER_GZIP_MEDIA_TYPE,
    IMAGE_LAYER_MEDIA_TYPE, OCI_IMAGE_MEDIA_TYPE,
};
use serde::Deserialize;

use crate::digest::Digest;
use crate::pull::{choose_manifest, diff_ids, Platform};
use crate::reference::Reference;
use crate::store::{ContentStore, ImageRecord, StoreError};
use crate::unpack;

/// The zstd-compressed layer media type (OCI image spec 1.1).
const IMAGE_LAYER_ZSTD_MEDIA_TYPE: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
/// The annotation containerd and Docker put the full image name in.
const CONTAINERD_NAME: &str = "io.containerd.image.name";
/// The OCI annotation naming a manifest in a layout.
const OCI_REF_NAME: &str = "org.opencontainers.image.ref.name";

/// Why an archive could not be imported.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// Reading or unpacking the archive failed.
    #[error("reading archive {path}: {reason}")]
    Archive {
        /// The archive.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The archive is neither a `docker save` archive nor an OCI layout.
    #[error(
        "{0}: not a docker save archive nor an OCI image archive (no manifest.json or index.json)"
    )]
    UnknownFormat(PathBuf),
    /// The archive's metadata is not what its format requires.
    #[error("{path}: {reason}")]
    Invalid {
        /// The archive.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// Storing or verifying a blob failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// One image of `docker save`'s `manifest.json`.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DockerSaveEntry {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

/// Imports every image in the archive at `path`; returns the records made.
pub fn import_archive(store: &ContentStore, path: &Path) -> Result<Vec<ImageRecord>, ImportError> {
    let scratch = store.root().join("ingest").join(format!(
        "import-{}-{:016x}",
        std::process::id(),
        rand::random::<u64>()
    ));
    let result = unpack_archive(path, &scratch).and_then(|()| import_layout(store, path, &scratch));
    let _ = fs::remove_dir_all(&scratch);
    result
}

/// What importing a directory of archives did, file by file.
#[derive(Debug, Default)]
pub struct DirectoryImport {
    /// Archives imported now, with the images each held.
    pub imported: Vec<(PathBuf, Vec<ImageRecord>)>,
    /// Archives whose content (by digest) was imported before.
    pub already_imported: Vec<PathBuf>,
    /// Archives that could not be imported, and why; the others are imported all the same.
    pub failed: Vec<(PathBuf, String)>,
}

/// The file in the content store listing the digests of the archives imported from the
/// images directory, one a line.
const IMPORTED_ARCHIVES: &str = "imported-archives";

/// Imports every archive in `dir` (as k3s does with its agent images directory) that was not
/// imported before, by the digest of its bytes. A missing directory imports nothing; a bad
/// file is reported in [`DirectoryImport::failed`] and does not stop the others. Hidden files
/// and directories are skipped.
pub fn import_directory(store: &ContentStore, dir: &Path) -> Result<DirectoryImport, StoreError> {
    let mut report = DirectoryImport::default();
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(report),
        Err(e) => {
            report.failed.push((dir.to_path_buf(), e.to_string()));
            return Ok(report);
        }
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .filter(|entry| !entry.file_name().to_string_lossy().starts_with('.'))
        .map(|entry| entry.path())
        .filter(|path| path.is_file())
        .collect();
    files.sort();
    let record_path = store.root().join(IMPORTED_ARCHIVES);
    let mut imported: Vec<String> = match fs::read_to_string(&record_path) {
        Ok(text) => text.lines().map(str::to_string).collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(source) => {
            return Err(StoreError::Io {
                action: "read",
                path: record_path,
                source,
            })
        }
    };
    for path in files {
        let digest = match file_digest(&path) {
            Ok(digest) => digest.to_string(),
            Err(e) => {
                report.failed.push((path, e.to_string()));
                continue;
            }
        };
        if imported.contains(&digest) {
            report.already_imported.push(path);
            continue;
        }
        match import_archive(store, &path) {
            Ok(records) => {
                imported.push(digest);
                write_atomically(&record_path, imported.join("\n") + "\n")?;
                report.imported.push((path, records));
            }
            Err(e) => report.failed.push((path, e.to_string())),
        }
    }
    Ok(report)
}

fn file_digest(path: &Path) -> std::io::Result<Digest> {
    crate::digest::HashingReader::new(
        BufReader::new(File::open(path)?),
        crate::digest::Algorithm::Sha256,
    )
    .finish()
}

fn write_atomically(path: &Path, text: String) -> Result<(), StoreError> {
    let temporary = path.with_extension(format!("tmp-{}", std::process::id()));
    let failed = |action: &'static str| {
        move |source| StoreError::Io {
            action,
            path: path.to_path_buf(),
            source,
        }
    };
    fs::write(&temporary, text).map_err(failed("write"))?;
    fs::rename(&temporary, path).map_err(failed("rename into place"))
}

fn unpack_archive(path: &Path, scratch: &Path) -> Result<(), ImportError> {
    let failed = |reason: String| ImportError::Archive {
        path: path.to_path_buf(),
        reason,
    };
    let file = File::open(path).map_err(|e| failed(e.to_string()))?;
    fs::create_dir_all(scratch).map_err(|e| failed(e.to_string()))?;
    let reader = unpack::decompress(BufReader::new(file)).map_err(|e| failed(e.to_string()))?;
    let mut archive = tar::Archive::new(reader);
    archive.set_preserve_permissions(false);
    archive.set_preserve_ownerships(false);
    archive.unpack(scratch).map_err(|e| failed(e.to_string()))
}

fn import_layout(
    store: &ContentStore,
    path: &Path,
    dir: &Path,
) -> Result<Vec<ImageRecord>, ImportError> {
    if dir.join("manifest.json").is_file() {
        import_docker_save(store, path, dir)
    } else if dir.join("index.json").is_file() {
        import_oci_layout(store, path, dir)
    } else {
        Err(ImportError::UnknownFormat(path.to_path_buf()))
    }
}

fn invalid(path: &Path, reason: impl Into<String>) -> ImportError {
    ImportError::Invalid {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

fn read_json<T: serde::de::DeserializeOwned>(
    archive: &Path,
    file: &Path,
) -> Result<T, ImportError> {
    let bytes = fs::read(file).map_err(|e| invalid(archive, format!("{}: {e}", file.display())))?;
    serde_json::from_slice(&bytes).map_err(|e| invalid(archive, format!("{}: {e}", file.display())))
}

/// A file inside the unpacked archive, refusing names that climb out of it.
fn member(archive: &Path, dir: &Path, name: &str) -> Result<PathBuf, ImportError> {
    if Path::new(name)
        .components()
        .any(|c| !matches!(c, std::path::Component::Normal(_)))
    {
        return Err(invalid(
            archive,
            format!("member {name:?} is not a plain path inside the archive"),
        ));
    }
    Ok(dir.join(name))
}

/// The digest a file name states, for `blobs/sha256/<hex>` and `<hex>.json` names.
fn digest_in_name(name: &str) -> Option<Digest> {
    let file_name = Path::new(name).file_name()?.to_str()?;
    let hex = file_name.strip_suffix(".json").unwrap_or(file_name);
    Digest::parse(&format!("sha256:{hex}")).ok()
}

fn layer_media_type(path: &Path) -> &'static str {
    let mut head = [0u8; 4];
    let read = File::open(path)
        .and_then(|mut f| std::io::Read::read(&mut f, &mut head))
        .unwrap_or(0);
    if read >= 2 && head[..2] == [0x1f, 0x8b] {
        IMAGE_LAYER_GZIP_MEDIA_TYPE
    } else if read == 4 && head == [0x28, 0xb5, 0x2f, 0xfd] {
        IMAGE_LAYER_ZSTD_MEDIA_TYPE
    } else {
        IMAGE_LAYER_MEDIA_TYPE
    }
}

fn descriptor(media_type: &str, digest: &Digest, size: u64) -> serde_json::Value {
    serde_json::json!({"mediaType": media_type, "digest": digest.to_string(), "size": size})
}

fn import_docker_save(
    store: &ContentStore,
    archive: &Path,
    dir: &Path,
) -> Result<Vec<ImageRecord>, ImportError> {
    let entries: Vec<DockerSaveEntry> = read_json(archive, &dir.join("manifest.json"))?;
    let mut records = Vec::new();
    for entry in entries {
        let config_path = member(archive, dir, &entry.config)?;
        let (config_digest, config_size) =
            store.put_file(&config_path, digest_in_name(&entry.config).as_ref())?;
        let mut layers = Vec::new();
        let mut blobs = vec![config_digest.to_string()];
        let mut size = config_size;
        for layer in &entry.layers {
            let layer_path = member(archive, dir, layer)?;
            let media_type = layer_media_type(&layer_path);
            let (digest, layer_size) = store.put_file(&layer_path, None)?;
            size = size.saturating_add(layer_size);
            blobs.push(digest.to_string());
            layers.push(descriptor(media_type, &digest, layer_size));
        }
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_IMAGE_MEDIA_TYPE,
            "config": descriptor(IMAGE_CONFIG_MEDIA_TYPE, &config_digest, config_size),
            "layers": layers,
        });
        let manifest_bytes = serde_json::to_vec(&manifest).expect("a manifest serializes");
        let manifest_digest = Digest::sha256_of(&manifest_bytes);
        store.put(&manifest_digest, &manifest_bytes)?;
        blobs.insert(0, manifest_digest.to_string());
        let manifest: OciImageManifest =
            serde_json::from_slice(&manifest_bytes).expect("the manifest just built");
        let diff_ids = snapshot_layers(store, archive, &manifest, &config_digest)?;
        let image = ImageRecord {
            name: String::new(),
            tag: None,
            digest: manifest_digest.to_string(),
            manifest: manifest_digest.to_string(),
            config: config_digest.to_string(),
            size,
            blobs,
            diff_ids,
        };
        records.extend(record_names(
            store,
            archive,
            &image,
            entry.repo_tags.unwrap_or_default(),
        )?);
    }
    Ok(records)
}

/// Unpacks each layer into its snapshot and returns the diff IDs.
fn snapshot_layers(
    store: &ContentStore,
    archive: &Path,
    manifest: &OciImageManifest,
    config_digest: &Digest,
) -> Result<Vec<String>, ImportError> {
    let config = store.read(config_digest)?;
    let diff_ids = diff_ids(&config, config_digest, manifest.layers.len())
        .map_err(|e| invalid(archive, e.to_string()))?;
    for (layer, diff_id) in manifest.layers.iter().zip(&diff_ids) {
        let layer = Digest::parse(&layer.digest).map_err(|e| invalid(archive, e.to_string()))?;
        store.ensure_snapshot(&layer, diff_id)?;
    }
    Ok(diff_ids.iter().map(Digest::to_string).collect())
}

/// Records `image` once per name; an image without names is refused, as it could not be
/// referred to.
fn record_names(
    store: &ContentStore,
    archive: &Path,
    image: &ImageRecord,
    names: Vec<String>,
) -> Result<Vec<ImageRecord>, ImportError> {
    if names.is_empty() {
        return Err(invalid(
            archive,
            format!(
                "image {} has no name or tag to import it under",
                image.digest
            ),
        ));
    }
    let mut records = Vec::new();
    for name in names {
        let reference = Reference::parse(&name)
            .map_err(|e| invalid(archive, format!("image name {name:?}: {e}")))?;
        let record = ImageRecord {
            name: reference.name(),
            tag: reference.effective_tag().map(str::to_string),
            ..image.clone()
        };
        store.put_image(record.clone())?;
        records.push(record);
    }
    Ok(records)
}

/// Copies the blob `digest` from the layout into the store, verifying it.
fn copy_blob(
    store: &ContentStore,
    archive: &Path,
    dir: &Path,
    digest: &str,
) -> Result<(Digest, u64), ImportError> {
    let digest = Digest::parse(digest).map_err(|e| invalid(archive, e.to_string()))?;
    let path = dir
        .join("blobs")
        .join(digest.algorithm_name())
        .join(digest.hex());
    if !path.is_file() {
        return Err(invalid(
            archive,
            format!("blob {digest} is missing from the archive"),
        ));
    }
    Ok(store.put_file(&path, Some(&digest))?)
}

fn import_oci_layout(
    store: &ContentStore,
    archive: &Path,
    dir: &Path,
) -> Result<Vec<ImageRecord>, ImportError> {
    let index: OciImageIndex = read_json(archive, &dir.join("index.json"))?;
    let mut records = Vec::new();
    for entry in &index.manifests {
        let annotations = entry.annotations.clone().unwrap_or_default();
        let names: Vec<String> = annotations
            .get(CONTAINERD_NAME)
            .or_else(|| annotations.get(OCI_REF_NAME))
            .cloned()
            .into_iter()
            .collect();
        let (top_digest, _) = copy_blob(store, archive, dir, &entry.digest)?;
        let mut blobs = vec![top_digest.to_string()];
        let top_bytes = store.read(&top_digest)?;
        let top: serde_json::Value =
            serde_json::from_slice(&top_bytes).map_err(|e| invalid(archive, e.to_string()))?;
        let manifest_digest = if top.get("manifests").is_some() {
            let nested: OciImageIndex =
                serde_json::from_value(top).map_err(|e| invalid(archive, e.to_string()))?;
            let platform = Platform::current();
            let chosen = choose_manifest(&nested.manifests, &platform).ok_or_else(|| {
                invalid(
                    archive,
                    format!("no manifest for {platform} in index {top_digest}"),
                )
            })?;
            let (digest, _) = copy_blob(store, archive, dir, &chosen.digest)?;
            blobs.push(digest.to_string());
            digest
        } else {
            top_digest.clone()
        };
        let manifest: OciImageManifest = serde_json::from_slice(&store.read(&manifest_digest)?)
            .map_err(|e| invalid(archive, e.to_string()))?;
        let mut size: u64 = 0;
        for blob in std::iter::once(&manifest.config).chain(manifest.layers.iter()) {
            let (digest, blob_size) = copy_blob(store, archive, dir, &blob.digest)?;
            size = size.saturating_add(blob_size);
            blobs.push(digest.to_string());
        }
        let config_digest =
            Digest::parse(&manifest.config.digest).map_err(|e| invalid(archive, e.to_string()))?;
        let diff_ids = snapshot_layers(store, archive, &manifest, &config_digest)?;
        let image = ImageRecord {
            name: String::new(),
            tag: None,
            digest: top_digest.to_string(),
            manifest: manifest_digest.to_string(),
            config: config_digest.to_string(),
            size,
            blobs,
            diff_ids,
        };
        records.extend(record_names(store, archive, &image, names)?);
    }
    Ok(records)
}
