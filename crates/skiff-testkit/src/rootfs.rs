//! A test image unpacked the way a container sees it, to run its programs without Skiff:
//! imported from its archive into a fresh content store, its layers copied in order into one
//! root directory, and commands run with that directory as `/` (`chroot` as root, else inside
//! a user namespace), so a file the image lacks makes the program fail.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use skiff_images::archive::import_archive;
use skiff_images::{ContentStore, Digest, ImageRecord};

use crate::images::TestImage;

/// An image imported from its archive and merged into one root directory; removed on drop.
pub struct UnpackedImage {
    _dir: tempfile::TempDir,
    /// The record the import made.
    pub record: ImageRecord,
    /// The image config (`config.Env`, `config.Cmd`...).
    pub config: serde_json::Value,
    /// The merged root directory.
    pub root: PathBuf,
    /// Every path in the layers that is not a directory, relative to the root.
    pub files: BTreeSet<String>,
}

impl UnpackedImage {
    /// Imports `image`'s archive into a fresh store (checking it holds one image, under the
    /// image's name) and merges its layers.
    pub fn of(image: &TestImage) -> UnpackedImage {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("a temporary directory: {e}"));
        let store = ContentStore::open(dir.path().join("store"))
            .unwrap_or_else(|e| panic!("opening a content store: {e}"));
        let records = import_archive(&store, &image.archive)
            .unwrap_or_else(|e| panic!("importing {}: {e}", image.archive.display()));
        assert_eq!(
            records.len(),
            1,
            "{} holds one image",
            image.archive.display()
        );
        let record = records.into_iter().next().unwrap_or_else(|| unreachable!());
        let imported_as = format!("{}:{}", record.name, record.tag.as_deref().unwrap_or(""));
        assert_eq!(imported_as, image.name, "the archive names the image");
        let config = Digest::parse(&record.config)
            .ok()
            .and_then(|digest| store.read(&digest).ok())
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_else(|| panic!("{} has no readable config", image.name));
        let root = dir.path().join("root");
        std::fs::create_dir(&root).unwrap_or_else(|e| panic!("creating the root: {e}"));
        let mut files = BTreeSet::new();
        for diff_id in &record.diff_ids {
            let diff_id = Digest::parse(diff_id)
                .unwrap_or_else(|e| panic!("{}: a bad diff ID: {e}", image.name));
            let snapshot = store.snapshot_path(&diff_id);
            let status = Command::new("cp")
                .arg("-a")
                .arg(format!("{}/.", snapshot.display()))
                .arg(&root)
                .status()
                .unwrap_or_else(|e| panic!("running cp: {e}"));
            assert!(status.success(), "copying {} failed", snapshot.display());
            list_files(&snapshot, &snapshot, &mut files);
        }
        UnpackedImage {
            _dir: dir,
            record,
            config,
            root,
            files,
        }
    }

    /// A string list of the runtime config (`Env`, `Cmd`, `Entrypoint`); empty when unset.
    pub fn config_strings(&self, field: &str) -> Vec<String> {
        self.config["config"][field]
            .as_array()
            .map(|items| {
                items
                    .iter()
                    .filter_map(|item| item.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// `argv` run inside the root with the image's `Env` plus `extra_env` (`NAME=value`)
    /// and nothing of the caller's environment.
    pub fn command(&self, argv: &[&str], extra_env: &[&str]) -> Command {
        let mut command = if nix::unistd::geteuid().is_root() {
            Command::new("chroot")
        } else {
            let mut unshare = Command::new("unshare");
            unshare.args(["--map-root-user", "chroot"]);
            unshare
        };
        command.arg(&self.root).args(argv).env_clear();
        let image_env = self.config_strings("Env");
        for pair in image_env
            .iter()
            .map(String::as_str)
            .chain(extra_env.iter().copied())
        {
            if let Some((name, value)) = pair.split_once('=') {
                command.env(name, value);
            }
        }
        command
    }
}

/// Every path under `dir` that is not a directory, relative to `base`.
fn list_files(base: &Path, dir: &Path, files: &mut BTreeSet<String>) {
    let entries =
        std::fs::read_dir(dir).unwrap_or_else(|e| panic!("listing {}: {e}", dir.display()));
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() && !path.is_symlink() {
            list_files(base, &path, files);
        } else if let Ok(relative) = path.strip_prefix(base) {
            files.insert(relative.to_string_lossy().into_owned());
        }
    }
}
