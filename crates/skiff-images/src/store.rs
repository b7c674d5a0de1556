//! The content store: blobs kept once by digest, the image records naming them, and the layer
//! snapshots unpacked from them.
//!
//! Layout under the store's directory:
//!
//! | path                         | what                                                      |
//! |------------------------------|-----------------------------------------------------------|
//! | `blobs/sha256/<hex>`         | a blob whose content was verified against its digest       |
//! | `ingest/`                    | blobs being written; never read, so a crash leaves nothing trusted |
//! | `ingest/<alg>-<hex>.lock`    | held by the one process downloading that blob             |
//! | `snapshots/sha256-<hex>`     | a layer unpacked, keyed by its diff ID, renamed in when complete |
//! | `snapshots/overlay-sha256-<hex>` | the same with overlayfs whiteouts (stores run by root)   |
//! | `rootfs/sha256-<hex>`        | an image's layers merged into one tree, keyed by its config |
//! | `images.json`                | the image records, rewritten whole and renamed in          |
//! | `lock`                       | an advisory lock serializing record updates across processes |

use std::collections::BTreeSet;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::config::ImageConfig;
use crate::digest::{Algorithm, Digest, Hasher};
use crate::gc::FilesystemUsage;
use crate::reference::Reference;
use crate::rootfs::{parse_stored_digest, SnapshotForm};
use crate::unpack::{self, UnpackOptions};

/// What can go wrong in the content store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A file operation failed.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file it was done to.
        path: PathBuf,
        /// The operating system's error.
        source: io::Error,
    },
    /// The bytes received do not hash to the digest they were announced with.
    #[error("blob {expected} refused: its content has digest {actual}")]
    DigestMismatch {
        /// The digest the manifest or reference promised.
        expected: Digest,
        /// The digest of the bytes actually received.
        actual: Digest,
    },
    /// The bytes received are not as long as announced.
    #[error("blob {digest} refused: {actual} bytes received, {expected} announced")]
    SizeMismatch {
        /// The blob's digest.
        digest: Digest,
        /// The size the descriptor announced.
        expected: u64,
        /// The size received.
        actual: u64,
    },
    /// A layer's uncompressed content does not hash to the diff ID its config names.
    #[error("layer refused: its uncompressed content has digest {actual}, the image config says {expected}")]
    DiffIdMismatch {
        /// The diff ID from the image config.
        expected: Digest,
        /// The digest of the uncompressed tar stream.
        actual: Digest,
    },
    /// The layer archive could not be unpacked.
    #[error("unpacking layer {layer}: {source}")]
    Unpack {
        /// The layer blob's digest.
        layer: Digest,
        /// Why.
        source: unpack::UnpackError,
    },
    /// A stored manifest or config (or a record's digest) does not say what an image needs.
    #[error("image {digest} is not usable: {reason}")]
    InvalidImage {
        /// The digest of the blob (or the digest text) at fault.
        digest: String,
        /// What is wrong with it.
        reason: String,
    },
    /// `images.json` is not valid.
    #[error("reading {path}: {source}")]
    Records {
        /// The records file.
        path: PathBuf,
        /// The parse error.
        source: serde_json::Error,
    },
}

fn io_error<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> StoreError + 'a {
    move |source| StoreError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

/// One stored image: a name and tag (or pinned digest) and every blob and snapshot it needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageRecord {
    /// The full repository name, `docker.io/library/nginx`.
    pub name: String,
    /// The tag, or `None` for an image pulled by digest only.
    pub tag: Option<String>,
    /// The digest the name resolved to: the index's for a multi-platform image, as the
    /// kubelet reports in `imageID`.
    pub digest: String,
    /// The digest of the platform's image manifest.
    pub manifest: String,
    /// The digest of the image config.
    pub config: String,
    /// The compressed size of config and layers, as `kubectl` and `crictl` report it.
    pub size: u64,
    /// Every blob the image needs: manifests, config and layers.
    pub blobs: Vec<String>,
    /// The layers' diff IDs, bottom first, which key their snapshots.
    pub diff_ids: Vec<String>,
}

impl ImageRecord {
    /// Whether this record answers to `name` with `tag` (any tag when `None`).
    fn is_named(&self, name: &str, tag: Option<&str>) -> bool {
        self.name == name && self.tag.as_deref() == tag
    }
}

/// The on-disk content store; see the module documentation for its layout.
#[derive(Debug, Clone)]
pub struct ContentStore {
    root: PathBuf,
    form: SnapshotForm,
    /// Snapshots and merged trees this handle (and its clones) built.
    built: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl ContentStore {
    /// Opens (creating if needed) the store under `root`, keeping snapshots in the form this
    /// host and filesystem allow ([`SnapshotForm::for_store`]).
    pub fn open(root: impl Into<PathBuf>) -> Result<Self, StoreError> {
        let mut store = Self::open_with_form(root, SnapshotForm::Markers)?;
        store.form = SnapshotForm::for_store(&store.root);
        Ok(store)
    }

    /// Opens the store under `root` keeping new snapshots in `form` (overlay form needs root).
    pub fn open_with_form(
        root: impl Into<PathBuf>,
        form: SnapshotForm,
    ) -> Result<Self, StoreError> {
        let root = root.into();
        for dir in [
            "blobs/sha256",
            "blobs/sha512",
            "ingest",
            "snapshots",
            "rootfs",
        ] {
            let path = root.join(dir);
            fs::create_dir_all(&path).map_err(io_error("creating", &path))?;
        }
        let store = ContentStore {
            root,
            form,
            built: Default::default(),
        };
        store.sweep_abandoned_work();
        Ok(store)
    }

    /// Removes what processes that are gone (killed during a pull or an import) left in
    /// `ingest/` (lock files nobody holds included) and as `snapshots/tmp-*` or `rootfs/tmp-*`: every such name carries its writer's process ID.
    /// None of it was ever trusted; this only frees the space.
    fn sweep_abandoned_work(&self) {
        let writer_pid = |name: &str| -> Option<i32> {
            let name = name
                .strip_prefix("tmp-")
                .or_else(|| name.strip_prefix("import-"))
                .or_else(|| name.strip_prefix("images-"))
                .unwrap_or(name);
            let digits: String = name.chars().take_while(char::is_ascii_digit).collect();
            digits.parse().ok()
        };
        let writer_is_gone = |pid: i32| {
            nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None)
                == Err(nix::errno::Errno::ESRCH)
        };
        for dir in ["ingest", "snapshots", "rootfs"] {
            let Ok(entries) = fs::read_dir(self.root.join(dir)) else {
                continue;
            };
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if dir == "ingest" && name.ends_with(".lock") {
                    remove_unheld_lock(&entry.path());
                    continue;
                }
                if dir != "ingest" && !name.starts_with("tmp-") {
                    continue;
                }
                if writer_pid(&name).is_some_and(|pid| pid > 0 && writer_is_gone(pid)) {
                    remove_tree(&entry.path());
                    let _ = fs::remove_file(entry.path());
                }
            }
        }
    }

    /// The store's directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The capacity and free space of the filesystem holding the store, for image garbage
    /// collection ([`crate::gc`]).
    pub fn filesystem_usage(&self) -> Result<FilesystemUsage, StoreError> {
        let stats = nix::sys::statvfs::statvfs(&self.root)
            .map_err(|errno| io_error("measuring the filesystem of", &self.root)(errno.into()))?;
        let fragment = stats.fragment_size();
        let bytes = |blocks: u64| blocks.saturating_mul(fragment);
        Ok(FilesystemUsage {
            capacity_bytes: bytes(stats.blocks()),
            available_bytes: bytes(stats.blocks_available()),
        })
    }

    /// How many snapshots and merged trees this handle and its clones unpacked (those found
    /// already built are not counted).
    pub fn unpacks(&self) -> u64 {
        self.built.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The form new snapshots are unpacked in.
    pub fn snapshot_form(&self) -> SnapshotForm {
        self.form
    }

    /// Where the blob with `digest` lives once verified.
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.root
            .join("blobs")
            .join(digest.algorithm_name())
            .join(digest.hex())
    }

    /// Whether a verified blob with `digest` is stored.
    pub fn contains(&self, digest: &Digest) -> bool {
        self.blob_path(digest).is_file()
    }

    /// The bytes of a stored blob.
    pub fn read(&self, digest: &Digest) -> Result<Vec<u8>, StoreError> {
        let path = self.blob_path(digest);
        fs::read(&path).map_err(io_error("reading", &path))
    }

    /// Starts writing a blob; nothing is visible until [`BlobWriter::commit`] verifies it.
    pub fn writer(&self, algorithm: Algorithm) -> Result<BlobWriter, StoreError> {
        let path = self.root.join("ingest").join(format!(
            "{}-{:016x}",
            std::process::id(),
            rand::random::<u64>()
        ));
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(io_error("creating", &path))?;
        Ok(BlobWriter {
            store: self.clone(),
            file: Some(file),
            path,
            hasher: Some(Hasher::new(algorithm)),
            written: 0,
        })
    }

    /// Waits for the cross-process lock on downloading the blob `digest` (a `flock` on
    /// `ingest/<algorithm>-<hex>.lock`) and holds it until the returned guard drops. Whoever
    /// gets it checks [`ContentStore::contains`] again: a process that held it before may have
    /// stored the blob meanwhile. Blocks, so async callers run it on a blocking thread.
    pub fn lock_blob(&self, digest: &Digest) -> Result<BlobLock, StoreError> {
        self.lock_named(&format!("{}-{}", digest.algorithm_name(), digest.hex()))
    }

    /// Waits for and holds the lock file `ingest/<name>.lock`, removed as it is let go.
    fn lock_named(&self, name: &str) -> Result<BlobLock, StoreError> {
        use std::os::unix::fs::MetadataExt;
        let path = self.root.join("ingest").join(format!("{name}.lock"));
        loop {
            let file = OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&path)
                .map_err(io_error("opening", &path))?;
            let lock = nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive)
                .map_err(|(_, errno)| io_error("locking", &path)(errno.into()))?;
            // The holder before us removes the file as it lets go; a lock on a file no longer
            // at the path guards nothing, so take the one that is there now.
            let held = lock.metadata().map_err(io_error("inspecting", &path))?;
            match fs::metadata(&path) {
                Ok(current) if current.ino() == held.ino() && current.dev() == held.dev() => {
                    return Ok(BlobLock { path, _lock: lock })
                }
                Ok(_) => continue,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io_error("inspecting", &path)(e)),
            }
        }
    }

    /// Stores `bytes` as the blob `expected`, refusing them if they hash otherwise.
    pub fn put(&self, expected: &Digest, bytes: &[u8]) -> Result<(), StoreError> {
        if self.contains(expected) {
            return Ok(());
        }
        let mut writer = self.writer(expected.algorithm())?;
        writer.write(bytes)?;
        writer.commit(expected, None)
    }

    /// Stores the file at `path` as a blob and returns its digest; `expected` is checked
    /// when the source names one.
    pub fn put_file(
        &self,
        path: &Path,
        expected: Option<&Digest>,
    ) -> Result<(Digest, u64), StoreError> {
        let mut file = File::open(path).map_err(io_error("opening", path))?;
        let mut writer = self.writer(expected.map_or(Algorithm::Sha256, Digest::algorithm))?;
        let mut buffer = vec![0u8; 64 * 1024];
        loop {
            let n = file.read(&mut buffer).map_err(io_error("reading", path))?;
            if n == 0 {
                break;
            }
            writer.write(&buffer[..n])?;
        }
        let size = writer.written;
        let digest = match expected {
            Some(expected) => expected.clone(),
            None => writer.current_digest(),
        };
        writer.commit(&digest, None)?;
        Ok((digest, size))
    }

    /// The snapshot directory, in this store's form, of the layer whose uncompressed content
    /// has `diff_id`.
    pub fn snapshot_path(&self, diff_id: &Digest) -> PathBuf {
        self.root.join("snapshots").join(format!(
            "{}{}-{}",
            self.form.directory_prefix(),
            diff_id.algorithm_name(),
            diff_id.hex()
        ))
    }

    /// Unpacks the stored layer blob `layer` into the read-only snapshot keyed by `diff_id`,
    /// in this store's form, unless it is there already. The layer is unpacked into a
    /// temporary directory and renamed into place only once complete and its diff ID verified.
    pub fn ensure_snapshot(&self, layer: &Digest, diff_id: &Digest) -> Result<PathBuf, StoreError> {
        let target = self.snapshot_path(diff_id);
        let options = UnpackOptions::for_current_user().with_whiteouts(self.form.whiteouts());
        self.build_sealed(&target, |dir| {
            self.unpack_checked(layer, diff_id, dir, &options)
        })?;
        Ok(target)
    }

    /// Makes the read-only directory `target` with `build` unless it exists: built in a
    /// temporary sibling, sealed, and renamed in only when complete.
    /// Builders of the same directory, in this process or another, take turns on a lock file
    /// named after it, and whoever comes second finds it done.
    pub(crate) fn build_sealed(
        &self,
        target: &Path,
        build: impl FnOnce(&Path) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        if target.is_dir() {
            return Ok(());
        }
        let parent = target.parent().unwrap_or(&self.root);
        let lock_name = format!(
            "{}-{}",
            parent.file_name().unwrap_or_default().to_string_lossy(),
            target.file_name().unwrap_or_default().to_string_lossy()
        );
        let _turn = self.lock_named(&lock_name)?;
        if target.is_dir() {
            return Ok(());
        }
        self.built
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let temp = parent.join(format!(
            "tmp-{}-{:016x}",
            std::process::id(),
            rand::random::<u64>()
        ));
        fs::create_dir(&temp).map_err(io_error("creating", &temp))?;
        let result = build(&temp);
        let outcome = result.and_then(|()| {
            fs::set_permissions(&temp, fs::Permissions::from_mode(0o555))
                .map_err(io_error("sealing", &temp))?;
            match fs::rename(&temp, target) {
                Ok(()) => Ok(()),
                // Another pull finished the same snapshot first; its copy is as good.
                Err(_) if target.is_dir() => {
                    remove_tree(&temp);
                    Ok(())
                }
                Err(e) => Err(io_error("renaming", target)(e)),
            }
        });
        if outcome.is_err() {
            remove_tree(&temp);
        }
        outcome
    }

    /// Applies the stored layer blob `layer` onto `dir` and checks its diff ID.
    pub(crate) fn unpack_checked(
        &self,
        layer: &Digest,
        diff_id: &Digest,
        dir: &Path,
        options: &UnpackOptions,
    ) -> Result<(), StoreError> {
        let path = self.blob_path(layer);
        let file = File::open(&path).map_err(io_error("opening", &path))?;
        let actual =
            unpack::unpack_layer(io::BufReader::new(file), dir, options, diff_id.algorithm())
                .map_err(|source| StoreError::Unpack {
                    layer: layer.clone(),
                    source,
                })?;
        if &actual != diff_id {
            return Err(StoreError::DiffIdMismatch {
                expected: diff_id.clone(),
                actual,
            });
        }
        Ok(())
    }

    fn records_path(&self) -> PathBuf {
        self.root.join("images.json")
    }

    /// Every image record, in the order they were added.
    pub fn images(&self) -> Result<Vec<ImageRecord>, StoreError> {
        let path = self.records_path();
        match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|source| StoreError::Records { path, source }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(io_error("reading", &path)(e)),
        }
    }

    /// The record `reference` names: by digest when it carries one (the record's `digest` or
    /// its platform `manifest`), else by name and tag (`latest` when none is written).
    pub fn find_image(&self, reference: &Reference) -> Result<Option<ImageRecord>, StoreError> {
        let name = reference.name();
        let records = self.images()?;
        let found = match reference.digest() {
            Some(digest) => {
                let same_content = |r: &&ImageRecord| {
                    r.name == name && (r.digest == digest || r.manifest == digest)
                };
                // A tag written beside the digest picks that record when several share it.
                records
                    .iter()
                    .filter(same_content)
                    .find(|r| reference.tag().is_some() && r.tag.as_deref() == reference.tag())
                    .or_else(|| records.iter().find(same_content))
            }
            None => records
                .iter()
                .find(|r| r.is_named(&name, reference.effective_tag())),
        };
        Ok(found.cloned())
    }

    /// The runtime settings (entrypoint, command, environment...) of a stored image.
    pub fn image_config(&self, record: &ImageRecord) -> Result<ImageConfig, StoreError> {
        let digest = parse_stored_digest(&record.config)?;
        ImageConfig::parse(&self.read(&digest)?).map_err(|e| StoreError::InvalidImage {
            digest: record.config.clone(),
            reason: format!("its config does not parse: {e}"),
        })
    }

    /// Adds `record`, replacing any record with the same name and tag (a tag moves).
    pub fn put_image(&self, record: ImageRecord) -> Result<(), StoreError> {
        self.update_records(|records| {
            records.retain(|r| {
                !r.is_named(&record.name, record.tag.as_deref())
                    || (record.tag.is_none() && r.digest != record.digest)
            });
            records.push(record);
        })
    }

    /// Removes the records named `name` with `tag` (every record of the name whose digest is
    /// `digest` when pinned), then the blobs and snapshots no record needs any more. Returns
    /// the records removed.
    pub fn remove_image(
        &self,
        name: &str,
        tag: Option<&str>,
        digest: Option<&str>,
    ) -> Result<Vec<ImageRecord>, StoreError> {
        let mut removed = Vec::new();
        self.update_records(|records| {
            let (gone, kept): (Vec<_>, Vec<_>) = records.drain(..).partition(|r| {
                r.name == name
                    && match digest {
                        Some(d) => r.digest == d,
                        None => r.tag.as_deref() == tag,
                    }
            });
            *records = kept;
            removed = gone;
        })?;
        if !removed.is_empty() {
            self.collect_garbage()?;
        }
        Ok(removed)
    }

    /// Deletes blobs, snapshots (of either form) and merged trees that no record names.
    fn collect_garbage(&self) -> Result<(), StoreError> {
        let _lock = self.lock()?;
        let records = self.images()?;
        let blobs: BTreeSet<&str> = records
            .iter()
            .flat_map(|r| r.blobs.iter().map(String::as_str))
            .collect();
        let diff_ids: BTreeSet<&str> = records
            .iter()
            .flat_map(|r| r.diff_ids.iter().map(String::as_str))
            .collect();
        for algorithm in ["sha256", "sha512"] {
            let dir = self.root.join("blobs").join(algorithm);
            for entry in fs::read_dir(&dir)
                .map_err(io_error("listing", &dir))?
                .flatten()
            {
                let name = format!("{algorithm}:{}", entry.file_name().to_string_lossy());
                if !blobs.contains(name.as_str()) {
                    let _ = fs::remove_file(entry.path());
                }
            }
        }
        let configs: BTreeSet<&str> = records.iter().map(|r| r.config.as_str()).collect();
        for (dir, kept) in [("snapshots", &diff_ids), ("rootfs", &configs)] {
            let dir = self.root.join(dir);
            for entry in fs::read_dir(&dir)
                .map_err(io_error("listing", &dir))?
                .flatten()
            {
                let file_name = entry.file_name().to_string_lossy().into_owned();
                let key = file_name.strip_prefix("overlay-").unwrap_or(&file_name);
                let Some((algorithm, hex)) = key.split_once('-') else {
                    continue;
                };
                if algorithm != "tmp" && !kept.contains(format!("{algorithm}:{hex}").as_str()) {
                    remove_tree(&entry.path());
                }
            }
        }
        Ok(())
    }

    fn lock(&self) -> Result<nix::fcntl::Flock<File>, StoreError> {
        let path = self.root.join("lock");
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io_error("opening", &path))?;
        nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive)
            .map_err(|(_, errno)| io_error("locking", &path)(errno.into()))
    }

    fn update_records(&self, change: impl FnOnce(&mut Vec<ImageRecord>)) -> Result<(), StoreError> {
        let _lock = self.lock()?;
        let mut records = self.images()?;
        change(&mut records);
        let path = self.records_path();
        let temp = self
            .root
            .join("ingest")
            .join(format!("images-{}.json", std::process::id()));
        let bytes = serde_json::to_vec_pretty(&records).expect("records serialize");
        write_synced(&temp, &bytes)?;
        fs::rename(&temp, &path).map_err(io_error("renaming", &path))
    }
}

/// Removes a lock file left by a process that died holding it, unless someone holds it now.
/// Removing it while holding it is what a holder does on release, so waiters notice.
fn remove_unheld_lock(path: &Path) {
    let Ok(file) = OpenOptions::new().write(true).open(path) else {
        return;
    };
    if let Ok(held) = nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock) {
        let _ = fs::remove_file(path);
        drop(held);
    }
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let mut file = File::create(path).map_err(io_error("creating", path))?;
    file.write_all(bytes).map_err(io_error("writing", path))?;
    file.sync_all().map_err(io_error("syncing", path))
}

/// Removes a directory tree, first making read-only directories writable again.
fn remove_tree(path: &Path) {
    fn make_writable(path: &Path) {
        if let Ok(meta) = fs::symlink_metadata(path) {
            if meta.is_dir() {
                let _ = fs::set_permissions(path, fs::Permissions::from_mode(0o755));
                if let Ok(entries) = fs::read_dir(path) {
                    for entry in entries.flatten() {
                        make_writable(&entry.path());
                    }
                }
            }
        }
    }
    make_writable(path);
    let _ = fs::remove_dir_all(path);
}

/// The lock on downloading one blob (or building one snapshot); dropping it removes the lock file and lets the next
/// waiter (in this process or another) go on.
#[derive(Debug)]
pub struct BlobLock {
    path: PathBuf,
    _lock: nix::fcntl::Flock<File>,
}

impl Drop for BlobLock {
    fn drop(&mut self) {
        // Removed while still locked, so no waiter can take a lock on a file about to vanish
        // without noticing (it compares the file it locked with the one at the path).
        let _ = fs::remove_file(&self.path);
    }
}

/// A blob being written into `ingest/`; dropped without a commit, it leaves nothing.
pub struct BlobWriter {
    store: ContentStore,
    file: Option<File>,
    path: PathBuf,
    hasher: Option<Hasher>,
    written: u64,
}

impl BlobWriter {
    /// Appends `bytes`.
    pub fn write(&mut self, bytes: &[u8]) -> Result<(), StoreError> {
        let file = self
            .file
            .as_mut()
            .expect("a blob writer is written before its commit");
        file.write_all(bytes)
            .map_err(io_error("writing", &self.path))?;
        if let Some(hasher) = &mut self.hasher {
            hasher.update(bytes);
        }
        self.written = self.written.saturating_add(bytes.len() as u64);
        Ok(())
    }

    /// The digest of the bytes written so far.
    pub fn current_digest(&self) -> Digest {
        self.hasher
            .clone()
            .expect("a blob writer has its hasher until dropped")
            .finish()
    }

    /// Verifies the bytes written against `expected` (and `size`, when announced), then moves
    /// the blob into place. On a mismatch the bytes are discarded.
    pub fn commit(mut self, expected: &Digest, size: Option<u64>) -> Result<(), StoreError> {
        let mut file = self.file.take().expect("a blob writer commits once");
        let actual = self.current_digest();
        if &actual != expected {
            return Err(StoreError::DigestMismatch {
                expected: expected.clone(),
                actual,
            });
        }
        if let Some(size) = size {
            if size != self.written {
                return Err(StoreError::SizeMismatch {
                    digest: expected.clone(),
                    expected: size,
                    actual: self.written,
                });
            }
        }
        file.flush().map_err(io_error("writing", &self.path))?;
        file.sync_all().map_err(io_error("syncing", &self.path))?;
        drop(file);
        let target = self.store.blob_path(expected);
        fs::rename(&self.path, &target).map_err(io_error("renaming", &target))?;
        Ok(())
    }
}

impl Drop for BlobWriter {
    fn drop(&mut self) {
        // Whatever was not committed is removed; committed blobs were renamed away already.
        let _ = fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_blob_is_stored_under_its_digest_once_verified() {
        let dir = tempfile::tempdir().unwrap();
        let store = ContentStore::open(dir.path()).unwrap();
        let digest = Digest::sha256_of(b"hello");
        store.put(&digest, b"hello").unwrap();
        assert!(store.contains(&digest));
        assert_eq!(store.read(&digest).unwrap(), b"hello");
        assert_eq!(fs::read_dir(dir.path().join("ingest")).unwrap().count(), 0);
    }

    #[test]
    fn a_blob_whose_digest_does_not_match_is_refused_and_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = ContentStore::open(dir.path()).unwrap();
        let promised = Digest::sha256_of(b"hello");
        let error = store.put(&promised, b"tampered").unwrap_err();
        let message = error.to_string();
        assert!(
            matches!(error, StoreError::DigestMismatch { .. }),
            "{message}"
        );
        assert!(
            message.contains(&promised.to_string())
                && message.contains(&Digest::sha256_of(b"tampered").to_string()),
            "{message}"
        );
        assert!(!store.contains(&promised));
        assert_eq!(
            fs::read_dir(dir.path().join("ingest")).unwrap().count(),
            0,
            "no partial file is left"
        );
    }

    #[test]
    fn an_interrupted_write_leaves_nothing_a_later_store_trusts() {
        let dir = tempfile::tempdir().unwrap();
        let store = ContentStore::open(dir.path()).unwrap();
        let digest = Digest::sha256_of(b"whole blob");
        let mut writer = store.writer(Algorithm::Sha256).unwrap();
        writer.write(b"whole").unwrap();
        drop(writer);
        let reopened = ContentStore::open(dir.path()).unwrap();
        assert!(!reopened.contains(&digest));
    }

    #[test]
    fn a_short_blob_is_refused_even_with_the_right_digest_shape() {
        let dir = tempfile::tempdir().unwrap();
        let store = ContentStore::open(dir.path()).unwrap();
        let digest = Digest::sha256_of(b"abc");
        let mut writer = store.writer(Algorithm::Sha256).unwrap();
        writer.write(b"abc").unwrap();
        let error = writer.commit(&digest, Some(4)).unwrap_err();
        assert!(
            matches!(
                error,
                StoreError::SizeMismatch {
                    expected: 4,
                    actual: 3,
                    ..
                }
            ),
            "{error}"
        );
        assert!(!store.contains(&digest));
    }

    #[test]
    fn work_left_by_a_killed_process_is_swept_and_work_in_progress_kept() {
        let dir = tempfile::tempdir().unwrap();
        ContentStore::open(dir.path()).unwrap();
        // No process can have this ID: it is above the kernel's largest PID.
        let gone = 1 << 23;
        let ours = std::process::id();
        let stale_blob = dir.path().join(format!("ingest/{gone}-00000000000000aa"));
        let stale_snapshot = dir
            .path()
            .join(format!("snapshots/tmp-{gone}-00000000000000bb"));
        let live_blob = dir.path().join(format!("ingest/{ours}-00000000000000cc"));
        fs::write(&stale_blob, b"half a blob").unwrap();
        fs::create_dir_all(stale_snapshot.join("usr/bin")).unwrap();
        fs::write(&live_blob, b"being written").unwrap();
        ContentStore::open(dir.path()).unwrap();
        assert!(
            !stale_blob.exists(),
            "a dead writer's partial blob is removed"
        );
        assert!(
            !stale_snapshot.exists(),
            "a dead writer's partial snapshot is removed"
        );
        assert!(live_blob.exists(), "a live writer's file is left alone");
    }

    fn record(name: &str, tag: &str, blob: &Digest) -> ImageRecord {
        ImageRecord {
            name: name.into(),
            tag: Some(tag.into()),
            digest: blob.to_string(),
            manifest: blob.to_string(),
            config: blob.to_string(),
            size: 5,
            blobs: vec![blob.to_string()],
            diff_ids: vec![],
        }
    }

    #[test]
    fn removing_an_image_deletes_blobs_only_it_used() {
        let dir = tempfile::tempdir().unwrap();
        let store = ContentStore::open(dir.path()).unwrap();
        let shared = Digest::sha256_of(b"shared");
        let own = Digest::sha256_of(b"own");
        store.put(&shared, b"shared").unwrap();
        store.put(&own, b"own").unwrap();
        store
            .put_image(record("docker.io/library/a", "1", &shared))
            .unwrap();
        store
            .put_image(record("docker.io/library/b", "1", &shared))
            .unwrap();
        let mut c = record("docker.io/library/c", "1", &own);
        c.blobs.push(shared.to_string());
        store.put_image(c).unwrap();
        let removed = store
            .remove_image("docker.io/library/c", Some("1"), None)
            .unwrap();
        assert_eq!(removed.len(), 1);
        assert!(!store.contains(&own));
        assert!(store.contains(&shared));
        store
            .remove_image("docker.io/library/a", Some("1"), None)
            .unwrap();
        assert!(store.contains(&shared), "b still needs it");
        assert_eq!(store.images().unwrap().len(), 1);
    }

    #[test]
    fn removing_by_digest_removes_every_tag_of_that_content_only() {
        let dir = tempfile::tempdir().unwrap();
        let store = ContentStore::open(dir.path()).unwrap();
        let old = Digest::sha256_of(b"old");
        let new = Digest::sha256_of(b"new");
        store.put(&old, b"old").unwrap();
        store.put(&new, b"new").unwrap();
        store.put_image(record("r/app", "1", &old)).unwrap();
        store.put_image(record("r/app", "stable", &old)).unwrap();
        store.put_image(record("r/app", "2", &new)).unwrap();
        let removed = store
            .remove_image("r/app", None, Some(&old.to_string()))
            .unwrap();
        let tags: Vec<_> = removed.iter().filter_map(|r| r.tag.clone()).collect();
        assert_eq!(tags, ["1", "stable"]);
        assert!(!store.contains(&old));
        let left: Vec<_> = store
            .images()
            .unwrap()
            .into_iter()
            .filter_map(|r| r.tag)
            .collect();
        assert_eq!(left, ["2"]);
    }

    #[test]
    fn find_image_matches_name_and_tag_or_either_digest() {
        let dir = tempfile::tempdir().unwrap();
        let store = ContentStore::open(dir.path()).unwrap();
        let index = Digest::sha256_of(b"index");
        let manifest = Digest::sha256_of(b"manifest");
        let mut latest = record("docker.io/library/nginx", "latest", &index);
        latest.manifest = manifest.to_string();
        store.put_image(latest.clone()).unwrap();
        let mut pinned = latest.clone();
        pinned.tag = Some("1.27".into());
        store.put_image(pinned.clone()).unwrap();
        let other = record("docker.io/library/redis", "latest", &index);
        store.put_image(other.clone()).unwrap();
        let find = |text: &str| store.find_image(&Reference::parse(text).unwrap()).unwrap();
        assert_eq!(find("nginx"), Some(latest.clone()), "no tag means latest");
        assert_eq!(find("docker.io/library/nginx:1.27"), Some(pinned.clone()));
        assert_eq!(find("redis:latest"), Some(other));
        assert_eq!(find("nginx:1.28"), None);
        assert_eq!(
            find("quay.io/nginx"),
            None,
            "another registry is another image"
        );
        assert_eq!(find(&format!("nginx@{index}")), Some(latest.clone()));
        assert_eq!(
            find(&format!("nginx@{manifest}")),
            Some(latest),
            "the platform manifest's digest names the image too"
        );
        assert_eq!(
            find(&format!("nginx:1.27@{index}")),
            Some(pinned),
            "a tag beside the digest picks its record"
        );
        assert_eq!(find(&format!("nginx@{}", Digest::sha256_of(b"x"))), None);
    }

    #[test]
    fn image_config_reads_the_records_config_blob() {
        let dir = tempfile::tempdir().unwrap();
        let store = ContentStore::open(dir.path()).unwrap();
        let config = br#"{"config": {"Entrypoint": ["/bin/httpd"], "Env": ["A=1"]}}"#;
        let digest = Digest::sha256_of(config);
        store.put(&digest, config).unwrap();
        let image = record("r/app", "1", &digest);
        let parsed = store.image_config(&image).unwrap();
        assert_eq!(parsed.entrypoint, ["/bin/httpd"]);
        assert_eq!(parsed.env, [("A".to_string(), "1".to_string())]);

        let broken = b"[1, 2]";
        let broken_digest = Digest::sha256_of(broken);
        store.put(&broken_digest, broken).unwrap();
        let error = store
            .image_config(&record("r/bad", "1", &broken_digest))
            .unwrap_err();
        assert!(matches!(error, StoreError::InvalidImage { .. }), "{error}");
        let missing = store
            .image_config(&record("r/gone", "1", &Digest::sha256_of(b"gone")))
            .unwrap_err();
        assert!(matches!(missing, StoreError::Io { .. }), "{missing}");
    }

    #[test]
    fn a_blob_lock_is_held_by_one_handle_at_a_time_and_leaves_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let store = ContentStore::open(dir.path()).unwrap();
        let other = ContentStore::open(dir.path()).unwrap();
        let digest = Digest::sha256_of(b"contended");
        let held = store.lock_blob(&digest).unwrap();
        let (got_it, waiting) = std::sync::mpsc::channel();
        let waiter = {
            let digest = digest.clone();
            std::thread::spawn(move || {
                let lock = other.lock_blob(&digest).unwrap();
                got_it.send(()).unwrap();
                drop(lock);
            })
        };
        assert!(
            waiting
                .recv_timeout(std::time::Duration::from_millis(300))
                .is_err(),
            "the second handle must wait while the first holds the lock"
        );
        drop(held);
        waiting
            .recv_timeout(std::time::Duration::from_secs(10))
            .expect("the second handle gets the lock once the first lets go");
        waiter.join().unwrap();
        assert_eq!(
            fs::read_dir(dir.path().join("ingest")).unwrap().count(),
            0,
            "the lock file goes with the last holder"
        );
        // A lock file a killed process left behind is swept when a store opens, unless held.
        let stale = dir.path().join("ingest/sha256-abandoned.lock");
        fs::write(&stale, b"").unwrap();
        let held_path = dir.path().join("ingest/sha256-held.lock");
        fs::write(&held_path, b"").unwrap();
        let held = nix::fcntl::Flock::lock(
            File::open(&held_path).unwrap(),
            nix::fcntl::FlockArg::LockExclusive,
        )
        .unwrap();
        ContentStore::open(dir.path()).unwrap();
        assert!(!stale.exists(), "an abandoned lock file is swept");
        assert!(held_path.exists(), "a held lock file stays");
        drop(held);
        // One left at a blob's own name is simply taken over.
        let stale = dir
            .path()
            .join(format!("ingest/sha256-{}.lock", digest.hex()));
        fs::write(&stale, b"").unwrap();
        drop(store.lock_blob(&digest).unwrap());
        assert!(!stale.exists());
    }

    #[test]
    fn filesystem_usage_agrees_with_df() {
        let dir = tempfile::tempdir().unwrap();
        let store = ContentStore::open(dir.path()).unwrap();
        let usage = store.filesystem_usage().unwrap();
        assert!(usage.capacity_bytes > 0);
        assert!(usage.available_bytes <= usage.capacity_bytes);
        let output = std::process::Command::new("df")
            .args(["--block-size=1", "--output=size,avail"])
            .arg(dir.path())
            .output()
            .expect("df runs");
        let text = String::from_utf8(output.stdout).unwrap();
        let numbers: Vec<u64> = text
            .lines()
            .nth(1)
            .expect("df prints a row")
            .split_whitespace()
            .map(|n| n.parse().unwrap())
            .collect();
        assert_eq!(usage.capacity_bytes, numbers[0], "{text}");
        // Other writers on the machine move free space a little between the two readings.
        let drift = usage.available_bytes.abs_diff(numbers[1]);
        assert!(
            drift < 256 << 20,
            "available {} vs df {text}",
            usage.available_bytes
        );
    }

    #[test]
    fn a_tag_moves_to_the_newest_record() {
        let dir = tempfile::tempdir().unwrap();
        let store = ContentStore::open(dir.path()).unwrap();
        let first = Digest::sha256_of(b"1");
        let second = Digest::sha256_of(b"2");
        store.put_image(record("r/app", "v1", &first)).unwrap();
        store.put_image(record("r/app", "v1", &second)).unwrap();
        let images = store.images().unwrap();
        assert_eq!(images.len(), 1);
        assert_eq!(images[0].digest, second.to_string());
    }
}
