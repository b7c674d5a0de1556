//! An imported image's root filesystem as a runtime sees it: its overlay lower dirs mounted by
//! the kernel's overlayfs, and the merged tree of a store without overlay support, showing the
//! same files.

mod support;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use skiff_images::archive::import_archive;
use skiff_images::pull::Platform;
use skiff_images::{ContentStore, ImageRecord, LowerDirs, Reference, SnapshotForm};
use support::{Compression, TestImage, TestLayer};

/// Three layers: files and a directory; then a file and that directory deleted; then a
/// directory made opaque with a new file in it.
fn layered_image() -> TestImage {
    let file = |path: &'static str, text: &str| (path, text.as_bytes().to_vec(), 0o644);
    let base = TestLayer::of_files(&[
        file("etc/keep", "kept\n"),
        file("etc/gone", "deleted above\n"),
        file("etc/sub/deep", "deleted above\n"),
        file("var/old", "hidden by an opaque directory\n"),
        file("var/cache/older", "hidden by an opaque directory\n"),
    ]);
    let deletions = TestLayer::of_files(&[file("etc/.wh.gone", ""), file("etc/.wh.sub", "")]);
    let opaque = TestLayer::of_files(&[
        file("var/.wh..wh..opq", ""),
        file("var/new", "new\n"),
        file("etc/added", "added\n"),
    ]);
    TestImage::new(
        vec![base, deletions, opaque],
        &Platform::current().architecture,
        &["/bin/sh"],
    )
}

/// What the image's root filesystem must show.
fn expected_tree() -> BTreeMap<String, String> {
    [
        ("etc", "/"),
        ("etc/added", "added\n"),
        ("etc/keep", "kept\n"),
        ("var", "/"),
        ("var/new", "new\n"),
    ]
    .into_iter()
    .map(|(path, content)| (path.to_string(), content.to_string()))
    .collect()
}

/// Imports the image into a store of `form` under `dir`, as `layered:1`.
fn import(dir: &Path, form: SnapshotForm) -> (ContentStore, ImageRecord) {
    let store = ContentStore::open_with_form(dir.join("store"), form).expect("store opens");
    let archive = dir.join("layered.tar");
    layered_image().write_oci_archive(&archive, "layered:1", Compression::Gzip);
    import_archive(&store, &archive).expect("the archive imports");
    let record = store
        .find_image(&Reference::parse("layered:1").unwrap())
        .expect("records read")
        .expect("the imported image is found by its name");
    (store, record)
}

/// Every path under `root` with its content (`/` for a directory); any other kind of entry
/// (a whiteout device, a marker file left visible) shows up as such and fails the comparison.
fn tree(root: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in fs::read_dir(&dir).unwrap_or_else(|e| panic!("listing {dir:?}: {e}")) {
            let path = entry.unwrap().path();
            let name = path.strip_prefix(root).unwrap().display().to_string();
            let kind = fs::symlink_metadata(&path).unwrap().file_type();
            if kind.is_dir() {
                out.insert(name, "/".to_string());
                pending.push(path);
            } else if kind.is_file() {
                out.insert(name, fs::read_to_string(&path).unwrap());
            } else {
                out.insert(name, format!("unexpected {kind:?}"));
            }
        }
    }
    out
}

/// An overlayfs mount, unmounted when dropped (also when an assertion fails).
struct OverlayMount {
    target: PathBuf,
}

impl OverlayMount {
    fn new(lower: &[PathBuf], target: &Path) -> OverlayMount {
        let lowerdir = lower
            .iter()
            .map(|dir| dir.to_str().expect("store paths are UTF-8"))
            .collect::<Vec<_>>()
            .join(":");
        let output = Command::new("mount")
            .args(["-t", "overlay", "overlay", "-o"])
            .arg(format!("ro,lowerdir={lowerdir}"))
            .arg(target)
            .output()
            .expect("mount runs");
        assert!(
            output.status.success(),
            "mounting overlayfs failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        OverlayMount {
            target: target.to_path_buf(),
        }
    }
}

impl Drop for OverlayMount {
    fn drop(&mut self) {
        let status = Command::new("umount").arg(&self.target).status();
        if !matches!(status, Ok(s) if s.success()) && !std::thread::panicking() {
            panic!("unmounting {:?} failed: {status:?}", self.target);
        }
    }
}

#[test]
fn overlay_lower_dirs_mounted_by_the_kernel_show_the_image() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test creates overlayfs whiteouts and mounts overlayfs: run it as root"
    );
    let dir = tempfile::tempdir().unwrap();
    let (store, record) = import(dir.path(), SnapshotForm::Overlay);
    let LowerDirs::Overlay(lower) = store.lower_dirs(&record).unwrap() else {
        panic!("a store kept in overlay form hands out overlay lower dirs");
    };
    assert_eq!(lower.len(), 3);
    let target = dir.path().join("merged");
    fs::create_dir(&target).unwrap();
    {
        let _mount = OverlayMount::new(&lower, &target);
        assert_eq!(tree(&target), expected_tree());
    }
    assert_eq!(
        fs::read_dir(&target).unwrap().count(),
        0,
        "the mount is gone once the test is done with it"
    );
    store.remove_image(&record.name, Some("1"), None).unwrap();
    for layer in &lower {
        assert!(!layer.exists(), "{layer:?} went with the image");
    }
}

/// A read-write overlayfs mount of empty directories, as a container's root would be.
struct WritableOverlay {
    _mount: OverlayMountGuard,
    target: PathBuf,
}

/// Unmounts when dropped.
struct OverlayMountGuard(PathBuf);

impl Drop for OverlayMountGuard {
    fn drop(&mut self) {
        let status = Command::new("umount").arg(&self.0).status();
        if !matches!(status, Ok(s) if s.success()) && !std::thread::panicking() {
            panic!("unmounting {:?} failed: {status:?}", self.0);
        }
    }
}

impl WritableOverlay {
    fn new(dir: &Path) -> WritableOverlay {
        let [lower, upper, work, target] = ["lower", "upper", "work", "target"].map(|name| {
            let path = dir.join(name);
            fs::create_dir(&path).unwrap();
            path
        });
        let output = Command::new("mount")
            .args(["-t", "overlay", "overlay", "-o"])
            .arg(format!(
                "lowerdir={},upperdir={},workdir={}",
                lower.display(),
                upper.display(),
                work.display()
            ))
            .arg(&target)
            .output()
            .expect("mount runs");
        assert!(
            output.status.success(),
            "mounting a writable overlayfs failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        WritableOverlay {
            _mount: OverlayMountGuard(target.clone()),
            target,
        }
    }
}

#[test]
fn root_gets_overlay_snapshots_where_the_kernel_mounts_them_and_merged_trees_elsewhere() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test probes overlayfs support as root: run it as root"
    );
    let plain = tempfile::tempdir().unwrap();
    let store = ContentStore::open(plain.path()).unwrap();
    assert_eq!(store.snapshot_form(), SnapshotForm::Overlay);
    assert_eq!(
        fs::read_dir(plain.path().join("ingest")).unwrap().count(),
        0,
        "the probe leaves nothing behind"
    );

    // overlayfs refuses its own attributes from above, so a store inside a container's
    // root filesystem cannot hold overlay snapshots: it must fall back, and still work.
    let dir = tempfile::tempdir().unwrap();
    let overlay = WritableOverlay::new(dir.path());
    let inside = overlay.target.join("data");
    fs::create_dir(&inside).unwrap();
    let store = ContentStore::open(inside.join("store")).unwrap();
    assert_eq!(store.snapshot_form(), SnapshotForm::Markers);
    let archive = inside.join("layered.tar");
    layered_image().write_oci_archive(&archive, "layered:1", Compression::Gzip);
    let records = import_archive(&store, &archive).expect("the archive imports");
    let LowerDirs::Merged(merged) = store.lower_dirs(&records[0]).unwrap() else {
        panic!("a store that cannot hold overlay snapshots hands out merged trees");
    };
    assert_eq!(tree(&merged), expected_tree());
    drop(store);
    // The store's files go before the mount does.
    let _ = Command::new("chmod")
        .args(["-R", "u+w"])
        .arg(&inside)
        .status();
    fs::remove_dir_all(&inside).unwrap();
}

#[test]
fn the_merged_tree_shows_what_overlayfs_shows() {
    let dir = tempfile::tempdir().unwrap();
    let (store, record) = import(dir.path(), SnapshotForm::Markers);
    let LowerDirs::Merged(merged) = store.lower_dirs(&record).unwrap() else {
        panic!("a store kept in marker form hands out a merged tree");
    };
    assert_eq!(tree(&merged), expected_tree());
    store.remove_image(&record.name, Some("1"), None).unwrap();
    assert!(!merged.exists(), "the merged tree went with the image");
}

#[test]
fn the_imported_images_config_is_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let (store, record) = import(dir.path(), SnapshotForm::Markers);
    let config = store.image_config(&record).unwrap();
    assert_eq!(config.entrypoint, ["/bin/sh"]);
    assert!(config.cmd.is_empty());
    let by_digest = Reference::parse(&format!("layered@{}", record.digest)).unwrap();
    assert_eq!(store.find_image(&by_digest).unwrap(), Some(record));
}
