//! An image's root filesystem as a container runtime mounts it: either its layer snapshots as
//! overlayfs lower layers, or one directory with every layer applied.
//!
//! Overlay lower layers must hold their whiteouts in overlayfs' own form (0/0 character devices
//! and the `trusted.overlay.opaque` attribute), which only root can create, and only where the
//! store's filesystem takes them and the kernel will mount them (probed when the store opens);
//! any other store keeps the OCI marker files and hands out a merged copy instead.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::digest::Digest;
use crate::store::{ContentStore, ImageRecord, StoreError};
use crate::unpack::{self, UnpackOptions};

/// The read-only directories an image's root filesystem is made of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LowerDirs {
    /// The layer snapshots, top-most first (the order of overlayfs' `lowerdir=`), whiteouts in
    /// overlayfs' form.
    Overlay(Vec<PathBuf>),
    /// One directory holding every layer applied in order, whiteouts applied.
    Merged(PathBuf),
}

/// How a store keeps its layer snapshots' whiteouts; the snapshot directory's name says which,
/// so a snapshot of one form is never taken for the other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnapshotForm {
    /// OCI `.wh.` marker files (`snapshots/sha256-<hex>`): anyone can write them, and images are
    /// handed out as [`LowerDirs::Merged`].
    Markers,
    /// overlayfs whiteouts (`snapshots/overlay-sha256-<hex>`): root only, and images are handed
    /// out as [`LowerDirs::Overlay`].
    Overlay,
}

impl SnapshotForm {
    /// Overlay when running as root on a kernel that has overlayfs, markers otherwise.
    pub fn for_this_host() -> Self {
        let root = nix::unistd::geteuid().is_root();
        let overlay_known = fs::read_to_string("/proc/filesystems").is_ok_and(|list| {
            list.lines()
                .any(|line| line.split_whitespace().last() == Some("overlay"))
        });
        if root && overlay_known {
            SnapshotForm::Overlay
        } else {
            SnapshotForm::Markers
        }
    }

    /// [`SnapshotForm::for_this_host`], checked on the filesystem of the store under `root`:
    /// overlay form only if whiteouts can be made there and the kernel mounts them as
    /// overlayfs lower layers (not so, say, for root in a container without the privilege to
    /// mount, or a store on a filesystem without trusted attributes). Probed once per store
    /// directory and process.
    pub fn for_store(root: &Path) -> Self {
        static PROBED: Mutex<BTreeMap<PathBuf, SnapshotForm>> = Mutex::new(BTreeMap::new());
        if Self::for_this_host() == SnapshotForm::Markers {
            return SnapshotForm::Markers;
        }
        let mut probed = PROBED
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        *probed.entry(root.to_path_buf()).or_insert_with(|| {
            match overlay_mount_works(&root.join("ingest")) {
                Ok(()) => SnapshotForm::Overlay,
                Err(error) => {
                    tracing::info!(store = %root.display(), %error, "overlayfs lower layers cannot be used here; images are handed out as merged trees");
                    SnapshotForm::Markers
                }
            }
        })
    }

    /// The prefix of this form's snapshot directory names, before `<algorithm>-<hex>`.
    pub(crate) fn directory_prefix(self) -> &'static str {
        match self {
            SnapshotForm::Markers => "",
            SnapshotForm::Overlay => "overlay-",
        }
    }

    /// What unpacking a snapshot of this form does with whiteouts.
    pub(crate) fn whiteouts(self) -> unpack::Whiteouts {
        match self {
            SnapshotForm::Markers => unpack::Whiteouts::Markers,
            SnapshotForm::Overlay => unpack::Whiteouts::Overlay,
        }
    }
}

/// Makes two layers in overlay form under `work` (a whiteout and an opaque directory), mounts
/// them read-only and checks the merged view hides what they hide; everything is removed after.
fn overlay_mount_works(work: &Path) -> io::Result<()> {
    let probe = work.join(format!(
        "{}-overlay-probe-{:016x}",
        std::process::id(),
        rand::random::<u64>()
    ));
    let (low, high, merged) = (probe.join("low"), probe.join("high"), probe.join("merged"));
    let result = (|| {
        for dir in [&low.join("opaque"), &high.join("opaque"), &merged] {
            fs::create_dir_all(dir)?;
        }
        fs::write(low.join("hidden"), b"")?;
        fs::write(low.join("opaque/hidden"), b"")?;
        nix::sys::stat::mknod(
            &high.join("hidden"),
            nix::sys::stat::SFlag::S_IFCHR,
            nix::sys::stat::Mode::empty(),
            nix::sys::stat::makedev(0, 0),
        )?;
        xattr::set(high.join("opaque"), unpack::OVERLAY_OPAQUE_XATTR, b"y")?;
        let options = format!("lowerdir={}:{}", high.display(), low.display());
        nix::mount::mount(
            Some("overlay"),
            &merged,
            Some("overlay"),
            nix::mount::MsFlags::MS_RDONLY,
            Some(options.as_str()),
        )?;
        let hides = !merged.join("hidden").exists() && !merged.join("opaque/hidden").exists();
        nix::mount::umount(&merged)?;
        if hides {
            Ok(())
        } else {
            Err(io::Error::other(
                "the mounted overlay showed whiteouts' targets",
            ))
        }
    })();
    let _ = fs::remove_dir_all(&probe);
    result
}

impl ContentStore {
    /// The read-only directories a container's root filesystem is built from: the layer
    /// snapshots when the store keeps them in overlay form, else one merged copy of the image,
    /// made once (and removed with the last record of the image's config).
    pub fn lower_dirs(&self, record: &ImageRecord) -> Result<LowerDirs, StoreError> {
        let layers = self.layers_of(record)?;
        match self.snapshot_form() {
            SnapshotForm::Overlay => {
                let mut dirs = layers
                    .iter()
                    .map(|(layer, diff_id)| self.ensure_snapshot(layer, diff_id))
                    .collect::<Result<Vec<_>, _>>()?;
                dirs.reverse();
                Ok(LowerDirs::Overlay(dirs))
            }
            SnapshotForm::Markers => self.ensure_merged(record, &layers).map(LowerDirs::Merged),
        }
    }

    /// One read-only directory holding the image's layers applied in order, whatever form
    /// the store keeps its snapshots in: for running without a mount of one's own (no
    /// overlayfs, no mount namespace). Made once, removed with the last record of its config.
    pub fn merged_rootfs(&self, record: &ImageRecord) -> Result<PathBuf, StoreError> {
        let layers = self.layers_of(record)?;
        self.ensure_merged(record, &layers)
    }

    /// Where the merged root filesystem of the image with config `config` lives.
    pub fn merged_path(&self, config: &Digest) -> PathBuf {
        self.root()
            .join("rootfs")
            .join(format!("{}-{}", config.algorithm_name(), config.hex()))
    }

    /// Each layer blob of the record's manifest with its diff ID, bottom first.
    fn layers_of(&self, record: &ImageRecord) -> Result<Vec<(Digest, Digest)>, StoreError> {
        let manifest_digest = parse_stored_digest(&record.manifest)?;
        let invalid = |reason: String| StoreError::InvalidImage {
            digest: record.manifest.clone(),
            reason,
        };
        let manifest: serde_json::Value = serde_json::from_slice(&self.read(&manifest_digest)?)
            .map_err(|e| invalid(e.to_string()))?;
        let layers = manifest
            .get("layers")
            .and_then(serde_json::Value::as_array)
            .ok_or_else(|| invalid("the manifest has no layers".to_string()))?;
        if layers.len() != record.diff_ids.len() {
            return Err(invalid(format!(
                "{} layers for {} diff IDs",
                layers.len(),
                record.diff_ids.len()
            )));
        }
        layers
            .iter()
            .zip(&record.diff_ids)
            .map(|(layer, diff_id)| {
                let digest = layer
                    .get("digest")
                    .and_then(serde_json::Value::as_str)
                    .ok_or_else(|| invalid("a layer has no digest".to_string()))?;
                Ok((parse_stored_digest(digest)?, parse_stored_digest(diff_id)?))
            })
            .collect()
    }

    /// Builds the merged directory of `record` unless it exists: every layer blob applied in
    /// order into a temporary directory, each checked against its diff ID, then renamed in.
    fn ensure_merged(
        &self,
        record: &ImageRecord,
        layers: &[(Digest, Digest)],
    ) -> Result<PathBuf, StoreError> {
        let config = parse_stored_digest(&record.config)?;
        let target = self.merged_path(&config);
        self.build_sealed(&target, |dir| {
            for (layer, diff_id) in layers {
                self.unpack_checked(layer, diff_id, dir, &UnpackOptions::for_current_user())?;
            }
            Ok(())
        })?;
        Ok(target)
    }
}

/// A digest the store itself recorded; one that does not parse means the records are damaged.
pub(crate) fn parse_stored_digest(text: &str) -> Result<Digest, StoreError> {
    Digest::parse(text).map_err(|e| StoreError::InvalidImage {
        digest: text.to_string(),
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
    use std::path::Path;

    fn require_root() {
        assert!(
            nix::unistd::geteuid().is_root(),
            "this test makes overlayfs whiteouts (device nodes, trusted attributes): run it as root"
        );
    }

    /// An uncompressed layer of `(path, contents)` files; a path ending in `/` is a directory.
    fn layer(entries: &[(&str, &str)]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for (path, contents) in entries {
            let mut header = tar::Header::new_ustar();
            header.set_mtime(1_700_000_000);
            header.set_uid(0);
            header.set_gid(0);
            if path.ends_with('/') {
                header.set_entry_type(tar::EntryType::Directory);
                header.set_mode(0o755);
                header.set_size(0);
            } else {
                header.set_entry_type(tar::EntryType::Regular);
                header.set_mode(0o644);
                header.set_size(contents.len() as u64);
            }
            builder
                .append_data(&mut header, path, contents.as_bytes())
                .unwrap();
        }
        builder.into_inner().unwrap()
    }

    /// Stores an image of plain-tar `layers` under `name:tag` as a pull would.
    fn store_image(store: &ContentStore, name: &str, layers: &[Vec<u8>]) -> ImageRecord {
        let diff_ids: Vec<Digest> = layers.iter().map(|l| Digest::sha256_of(l)).collect();
        let config = serde_json::to_vec(&serde_json::json!({
            "config": {"Cmd": ["/bin/sh"]},
            "rootfs": {"type": "layers", "diff_ids": diff_ids.iter().map(Digest::to_string).collect::<Vec<_>>()},
        }))
        .unwrap();
        let config_digest = Digest::sha256_of(&config);
        store.put(&config_digest, &config).unwrap();
        let mut descriptors = Vec::new();
        for (bytes, diff_id) in layers.iter().zip(&diff_ids) {
            store.put(diff_id, bytes).unwrap();
            store.ensure_snapshot(diff_id, diff_id).unwrap();
            descriptors
                .push(serde_json::json!({"digest": diff_id.to_string(), "size": bytes.len()}));
        }
        let manifest = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "config": {"digest": config_digest.to_string(), "size": config.len()},
            "layers": descriptors,
        }))
        .unwrap();
        let manifest_digest = Digest::sha256_of(&manifest);
        store.put(&manifest_digest, &manifest).unwrap();
        let record = ImageRecord {
            name: name.to_string(),
            tag: Some("1".to_string()),
            digest: manifest_digest.to_string(),
            manifest: manifest_digest.to_string(),
            config: config_digest.to_string(),
            size: 0,
            blobs: [&manifest_digest, &config_digest]
                .into_iter()
                .chain(&diff_ids)
                .map(Digest::to_string)
                .collect(),
            diff_ids: diff_ids.iter().map(Digest::to_string).collect(),
        };
        store.put_image(record.clone()).unwrap();
        record
    }

    fn three_layers() -> Vec<Vec<u8>> {
        vec![
            layer(&[
                ("etc/", ""),
                ("etc/keep", "kept"),
                ("etc/gone", "old"),
                ("etc/sub/", ""),
                ("etc/sub/deep", "old"),
                ("var/", ""),
                ("var/old", "old"),
            ]),
            layer(&[("etc/", ""), ("etc/.wh.gone", ""), ("etc/.wh.sub", "")]),
            layer(&[("var/", ""), ("var/.wh..wh..opq", ""), ("var/new", "new")]),
        ]
    }

    /// Every path under `root` with its content (`/` for a directory), sorted.
    fn tree(root: &Path) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        let mut pending = vec![root.to_path_buf()];
        while let Some(dir) = pending.pop() {
            for entry in fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                let name = path.strip_prefix(root).unwrap().display().to_string();
                if path.is_dir() {
                    out.insert(name, "/".to_string());
                    pending.push(path);
                } else {
                    out.insert(name, fs::read_to_string(&path).unwrap());
                }
            }
        }
        out
    }

    #[test]
    fn a_marker_store_hands_out_one_merged_tree_with_whiteouts_applied() {
        let dir = tempfile::tempdir().unwrap();
        let store = ContentStore::open_with_form(dir.path(), SnapshotForm::Markers).unwrap();
        let record = store_image(&store, "r/app", &three_layers());
        let LowerDirs::Merged(merged) = store.lower_dirs(&record).unwrap() else {
            panic!("a marker-form store must hand out a merged tree");
        };
        let expected: BTreeMap<String, String> = [
            ("etc", "/"),
            ("etc/keep", "kept"),
            ("var", "/"),
            ("var/new", "new"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(tree(&merged), expected);
        assert_eq!(
            fs::metadata(&merged).unwrap().permissions().mode() & 0o777,
            0o555,
            "the merged tree is sealed read-only"
        );
        // The snapshots themselves keep the markers.
        let second = store.snapshot_path(&Digest::parse(&record.diff_ids[1]).unwrap());
        assert!(second
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with("sha256-"));
        assert!(second.join("etc/.wh.gone").is_file());
        let inode = fs::metadata(&merged).unwrap().ino();
        assert_eq!(
            store.lower_dirs(&record).unwrap(),
            LowerDirs::Merged(merged.clone())
        );
        assert_eq!(
            fs::metadata(&merged).unwrap().ino(),
            inode,
            "built once, reused after"
        );
        let leftovers: Vec<_> = fs::read_dir(dir.path().join("rootfs"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(
            leftovers.len(),
            1,
            "no temporary tree is left: {leftovers:?}"
        );
    }

    #[test]
    fn the_merged_tree_goes_with_the_last_record_of_its_image() {
        let dir = tempfile::tempdir().unwrap();
        let store = ContentStore::open_with_form(dir.path(), SnapshotForm::Markers).unwrap();
        let first = store_image(&store, "r/app", &three_layers());
        let second = store_image(&store, "r/copy", &three_layers());
        let LowerDirs::Merged(merged) = store.lower_dirs(&first).unwrap() else {
            panic!("merged expected");
        };
        store.remove_image("r/app", Some("1"), None).unwrap();
        assert!(merged.is_dir(), "r/copy still uses the tree");
        assert_eq!(
            store.lower_dirs(&second).unwrap(),
            LowerDirs::Merged(merged.clone())
        );
        store.remove_image("r/copy", Some("1"), None).unwrap();
        assert!(!merged.exists(), "the last record took the tree with it");
        assert_eq!(
            fs::read_dir(dir.path().join("snapshots")).unwrap().count(),
            0
        );
    }

    #[test]
    fn an_overlay_store_hands_out_snapshots_top_first_with_overlay_whiteouts() {
        require_root();
        let dir = tempfile::tempdir().unwrap();
        let store = ContentStore::open_with_form(dir.path(), SnapshotForm::Overlay).unwrap();
        let record = store_image(&store, "r/app", &three_layers());
        let LowerDirs::Overlay(dirs) = store.lower_dirs(&record).unwrap() else {
            panic!("an overlay-form store must hand out its snapshots");
        };
        let expected: Vec<PathBuf> = record
            .diff_ids
            .iter()
            .rev()
            .map(|id| {
                let id = Digest::parse(id).unwrap();
                dir.path()
                    .join("snapshots")
                    .join(format!("overlay-sha256-{}", id.hex()))
            })
            .collect();
        assert_eq!(dirs, expected, "top-most layer first");
        let deletions = &dirs[1];
        for hidden in ["etc/gone", "etc/sub"] {
            let meta = fs::symlink_metadata(deletions.join(hidden)).unwrap();
            assert!(
                meta.file_type().is_char_device(),
                "{hidden} is a whiteout device"
            );
            assert_eq!(meta.rdev(), 0, "{hidden} is device 0/0");
        }
        assert!(
            !deletions.join("etc/.wh.gone").exists(),
            "no marker file is kept"
        );
        let opaque = dirs[0].join("var");
        assert_eq!(
            xattr::get(&opaque, unpack::OVERLAY_OPAQUE_XATTR).unwrap(),
            Some(b"y".to_vec())
        );
        assert!(!opaque.join(".wh..wh..opq").exists());
        assert_eq!(fs::read_to_string(opaque.join("new")).unwrap(), "new");
    }

    #[test]
    fn an_overlay_store_also_makes_a_merged_tree_when_asked() {
        require_root();
        let dir = tempfile::tempdir().unwrap();
        let store = ContentStore::open_with_form(dir.path(), SnapshotForm::Overlay).unwrap();
        let record = store_image(&store, "r/app", &three_layers());
        let merged = store.merged_rootfs(&record).unwrap();
        let config = Digest::parse(&record.config).unwrap();
        assert_eq!(merged, store.merged_path(&config));
        let files: Vec<_> = tree(&merged).into_keys().collect();
        assert_eq!(files, ["etc", "etc/keep", "var", "var/new"]);
        assert!(
            matches!(store.lower_dirs(&record).unwrap(), LowerDirs::Overlay(_)),
            "the runtime's choice is still the overlay"
        );
        store.remove_image("r/app", Some("1"), None).unwrap();
        assert!(!merged.exists());
    }

    #[test]
    fn a_marker_snapshot_is_never_taken_for_an_overlay_one() {
        require_root();
        let dir = tempfile::tempdir().unwrap();
        let markers = ContentStore::open_with_form(dir.path(), SnapshotForm::Markers).unwrap();
        let record = store_image(&markers, "r/app", &three_layers());
        let deletions = Digest::parse(&record.diff_ids[1]).unwrap();
        assert!(markers
            .snapshot_path(&deletions)
            .join("etc/.wh.gone")
            .is_file());
        // The same store opened by root later: its lower dirs are new overlay snapshots.
        let overlay = ContentStore::open_with_form(dir.path(), SnapshotForm::Overlay).unwrap();
        let LowerDirs::Overlay(dirs) = overlay.lower_dirs(&record).unwrap() else {
            panic!("overlay expected");
        };
        assert_eq!(dirs[1], overlay.snapshot_path(&deletions));
        assert_ne!(dirs[1], markers.snapshot_path(&deletions));
        assert!(fs::symlink_metadata(dirs[1].join("etc/gone"))
            .unwrap()
            .file_type()
            .is_char_device());
        // Removing the image removes the snapshots of both forms.
        overlay.remove_image("r/app", Some("1"), None).unwrap();
        assert_eq!(
            fs::read_dir(dir.path().join("snapshots")).unwrap().count(),
            0
        );
    }

    #[test]
    fn concurrent_builders_of_one_snapshot_unpack_it_once() {
        let dir = tempfile::tempdir().unwrap();
        let names: Vec<String> = (0..1500).map(|i| format!("files/{i}")).collect();
        let mut entries: Vec<(&str, &str)> = vec![("files/", "")];
        entries.extend(names.iter().map(|name| (name.as_str(), "content")));
        let bytes = layer(&entries);
        let diff_id = Digest::sha256_of(&bytes);
        // Two handles on one directory share no memory, as two processes would not.
        let handles: Vec<ContentStore> = (0..2)
            .map(|_| ContentStore::open_with_form(dir.path(), SnapshotForm::Markers).unwrap())
            .collect();
        handles[0].put(&diff_id, &bytes).unwrap();
        let start = std::sync::Barrier::new(4);
        let paths: Vec<PathBuf> = std::thread::scope(|scope| {
            let workers: Vec<_> = (0..4)
                .map(|i| {
                    let (store, start, diff_id) = (&handles[i % 2], &start, &diff_id);
                    scope.spawn(move || {
                        start.wait();
                        store.ensure_snapshot(diff_id, diff_id).unwrap()
                    })
                })
                .collect();
            workers.into_iter().map(|w| w.join().unwrap()).collect()
        });
        assert!(paths.iter().all(|p| p == &paths[0]));
        assert_eq!(fs::read_dir(paths[0].join("files")).unwrap().count(), 1500);
        assert_eq!(
            handles[0].unpacks() + handles[1].unpacks(),
            1,
            "one builder unpacks, the others wait and find it done"
        );
        let ingest: Vec<_> = fs::read_dir(dir.path().join("ingest")).unwrap().collect();
        assert!(ingest.is_empty(), "no lock file is left: {ingest:?}");
    }

    #[test]
    fn a_record_whose_manifest_disagrees_with_its_diff_ids_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = ContentStore::open_with_form(dir.path(), SnapshotForm::Markers).unwrap();
        let mut record = store_image(&store, "r/app", &three_layers());
        record.diff_ids.pop();
        let error = store.lower_dirs(&record).unwrap_err();
        assert!(matches!(error, StoreError::InvalidImage { .. }), "{error}");
        assert!(
            error.to_string().contains("3 layers for 2 diff IDs"),
            "{error}"
        );
    }
}
