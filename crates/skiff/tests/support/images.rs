//! Real test images for end-to-end tests: the names pods use, and a server started with the
//! images' archives in `DATA_DIR/images/`, so `skiff up` imports them before it serves.
//!
//! The images are built by `skiff-testkit` (once per set of inputs, cached under the target
//! directory) and named under `127.0.0.1:9/skiff-test/`, a loopback port nothing serves: a pod
//! naming an image the server was not given fails to pull at once, never reaching further.

use std::path::Path;

use skiff_testkit::images::TestImage;

use super::Skiff;

/// The demo server image's repository; tags set the version it reports.
pub const DEMO: &str = "127.0.0.1:9/skiff-test/demo";
/// The busybox `httpd` image's repository; tags set the version its page shows.
pub const HTTPD: &str = "127.0.0.1:9/skiff-test/httpd";
/// The busybox shell image.
pub const SHELL: &str = "127.0.0.1:9/skiff-test/shell:1.36";
/// The Python image with the PyPI `kubernetes` client.
pub const PYTHON: &str = "127.0.0.1:9/skiff-test/python:3";
/// An image no test server is given: pulling it fails at once (nothing serves the port).
pub const MISSING: &str = "127.0.0.1:9/skiff-test/missing:1";

/// The demo server image `DEMO:<tag>`, built from the `skiff-demo` binary Cargo built for
/// these tests.
pub fn demo(tag: &str) -> TestImage {
    skiff_testkit::images::demo_from_binary(Path::new(env!("CARGO_BIN_EXE_skiff-demo")), tag)
}

/// The busybox `httpd` image `HTTPD:<tag>`, serving `version=<tag>`.
pub fn httpd(tag: &str) -> TestImage {
    skiff_testkit::images::httpd(tag)
}

/// The busybox shell image [`SHELL`].
pub fn shell() -> TestImage {
    skiff_testkit::images::shell()
}

/// The Python image [`PYTHON`]: the host's `python3` and its `kubernetes` client.
#[allow(dead_code)]
pub fn python() -> TestImage {
    skiff_testkit::images::python()
}

/// Puts `image`'s archive in `images_dir`: a hard link to the cached archive, or a copy
/// where a link cannot be made (another file system).
pub fn place_archive(image: &TestImage, images_dir: &Path) {
    std::fs::create_dir_all(images_dir)
        .unwrap_or_else(|e| panic!("cannot create {}: {e}", images_dir.display()));
    let file_name = image
        .archive
        .file_name()
        .unwrap_or_else(|| panic!("{} names no file", image.archive.display()));
    let target = images_dir.join(file_name);
    if target.exists() {
        return;
    }
    if std::fs::hard_link(&image.archive, &target).is_err() {
        std::fs::copy(&image.archive, &target).unwrap_or_else(|e| {
            panic!(
                "cannot copy {} to {}: {e}",
                image.archive.display(),
                target.display()
            )
        });
    }
}

impl Skiff {
    /// Starts a server with extra `skiff up` flags whose data directory holds `images`'
    /// archives in `images/`, imported before it serves; waits until it is ready.
    pub fn start_with_images(extra_args: &[&str], images: &[TestImage]) -> Skiff {
        let root = tempfile::Builder::new()
            .prefix("skiff-e2e-")
            .tempdir()
            .unwrap_or_else(|e| panic!("cannot create a temporary directory: {e}"));
        let mut skiff = Skiff {
            root,
            extra_args: super::with_test_container_runtime(extra_args),
            process: None,
            listen: "127.0.0.1:0".to_string(),
            netns: None,
            user: None,
        };
        let images_dir = skiff.data_dir().join("images");
        for image in images {
            place_archive(image, &images_dir);
        }
        skiff.launch();
        skiff
    }

    /// Adds `image`'s archive to a running server's `images/` directory, imported at its
    /// next start ([`Skiff::restart`]).
    pub fn add_image(&self, image: &TestImage) {
        place_archive(image, &self.data_dir().join("images"));
    }
}
