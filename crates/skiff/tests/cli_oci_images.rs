//! `skiff image import FILE`, `pull`, `ls` and `rm` against the OCI content store, with
//! archives and a loopback registry (`docker-registry`) prepared by the image test support.

#[path = "../../skiff-images/tests/support/mod.rs"]
mod image_support;
mod support;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use image_support::{Compression, Registry, TestImage, TestLayer};
use skiff_images::pull::Platform;
use skiff_images::Digest;
use support::cli::{rows, skiff};
use support::slow_proxy::SlowProxy;

/// `skiff image pull NAME` with the registries file at `config`.
fn pull_with_config(data_dir: &Path, name: &str, config: &Path) -> (bool, String, String) {
    skiff(
        data_dir,
        &[
            "image",
            "pull",
            name,
            "--registry-config",
            config.to_str().expect("a UTF-8 path"),
        ],
    )
}

fn image(text: &str) -> TestImage {
    let files = TestLayer::of_files(&[("etc/motd", text.as_bytes().to_vec(), 0o644)]);
    TestImage::new(
        vec![TestLayer::busybox(), files],
        &Platform::current().architecture,
        &["/bin/busybox", "sh"],
    )
}

fn human(bytes: u64) -> String {
    // Sizes of a few MB print as `N.NNNMB` with four significant digits.
    let megabytes = bytes as f64 / 1e6;
    assert!(
        (1.0..10.0).contains(&megabytes),
        "test images are a few MB, not {bytes} bytes"
    );
    format!("{megabytes:.3}")
        .trim_end_matches('0')
        .trim_end_matches('.')
        .to_string()
        + "MB"
}

#[test]
fn docker_save_and_oci_archives_import_with_their_names_and_are_listed() {
    let data = tempfile::tempdir().unwrap();
    let files = tempfile::tempdir().unwrap();
    let saved = image("from docker save");
    let oci = image("from an oci archive");
    let saved_path = files.path().join("saved.tar");
    let oci_path = files.path().join("oci.tar.gz");
    saved.write_docker_save(&saved_path, &["example.test/team/tool:1.0", "tool:latest"]);
    oci.write_oci_archive(&oci_path, "docker.io/library/shell:2", Compression::Gzip);

    let (ok, stdout, stderr) = skiff(
        data.path(),
        &["image", "import", saved_path.to_str().unwrap()],
    );
    assert!(ok, "docker save import: {stderr}");
    assert_eq!(stdout.lines().count(), 2, "one line per name: {stdout}");
    let (ok, _, stderr) = skiff(
        data.path(),
        &["image", "import", oci_path.to_str().unwrap()],
    );
    assert!(ok, "OCI archive import: {stderr}");

    let (ok, stdout, stderr) = skiff(data.path(), &["image", "ls"]);
    assert!(ok, "{stderr}");
    let listed = rows(&stdout);
    // docker save archives carry no manifest: the import writes one, whose digest names it.
    let saved_digest = stdout
        .lines()
        .find(|l| l.starts_with("example.test/team/tool"))
        .and_then(|l| l.split_whitespace().nth(2))
        .expect("the docker save image is listed")
        .to_string();
    Digest::parse(&saved_digest).expect("a digest");
    let oci_digest = Digest::sha256_of(&oci.manifest()).to_string();
    assert_eq!(
        listed,
        [
            vec![
                "NAME".to_string(),
                "TAG".into(),
                "DIGEST".into(),
                "SIZE".into()
            ],
            vec![
                "example.test/team/tool".into(),
                "1.0".into(),
                saved_digest.clone(),
                human(saved_manifest_size(&saved))
            ],
            vec![
                "docker.io/library/tool".into(),
                "latest".into(),
                saved_digest,
                human(saved_manifest_size(&saved))
            ],
            vec![
                "docker.io/library/shell".into(),
                "2".into(),
                oci_digest,
                human(oci.size())
            ],
        ]
    );
    let motd = std::fs::read_dir(data.path().join("content/snapshots"))
        .unwrap()
        .filter_map(|e| std::fs::read_to_string(e.unwrap().path().join("etc/motd")).ok())
        .collect::<std::collections::BTreeSet<_>>();
    assert_eq!(
        motd,
        [
            "from an oci archive".to_string(),
            "from docker save".to_string()
        ]
        .into()
    );
}

/// The size of a docker save image: its config and uncompressed layers.
fn saved_manifest_size(image: &TestImage) -> u64 {
    use std::io::Read;
    let layers: u64 = image
        .layers
        .iter()
        .map(|l| {
            let mut plain = Vec::new();
            flate2::read::GzDecoder::new(&l.compressed[..])
                .read_to_end(&mut plain)
                .unwrap();
            plain.len() as u64
        })
        .sum();
    layers + image.config.len() as u64
}

#[test]
fn an_archive_whose_blob_does_not_match_its_digest_is_refused() {
    let data = tempfile::tempdir().unwrap();
    let files = tempfile::tempdir().unwrap();
    let mut tampered = image("original");
    let path = files.path().join("oci.tar");
    // The manifest names the original layer; the archive carries other bytes under its name.
    let original = tampered.manifest();
    tampered.write_oci_archive(&path, "tampered:1", Compression::None);
    let layer = Digest::sha256_of(&tampered.layers[1].compressed);
    tampered.layers[1] = TestLayer::of_files(&[("etc/motd", b"altered!".to_vec(), 0o644)]);
    rewrite_blob(&path, &layer, &tampered.layers[1].compressed);
    assert_ne!(original, tampered.manifest());
    let (ok, _, stderr) = skiff(data.path(), &["image", "import", path.to_str().unwrap()]);
    assert!(!ok, "the import must fail");
    assert!(
        stderr.contains(&format!("blob {layer} refused")),
        "{stderr}"
    );
    let (_, stdout, _) = skiff(data.path(), &["image", "ls"]);
    assert!(!stdout.contains("tampered"), "{stdout}");
}

/// Replaces the contents of `blobs/sha256/<digest>` in a plain tar archive.
fn rewrite_blob(archive: &Path, digest: &Digest, contents: &[u8]) {
    let bytes = std::fs::read(archive).unwrap();
    let mut input = tar::Archive::new(&bytes[..]);
    let mut output = tar::Builder::new(Vec::new());
    let name = format!("blobs/sha256/{}", digest.hex());
    for entry in input.entries().unwrap() {
        let mut entry = entry.unwrap();
        let path = entry.path().unwrap().to_string_lossy().into_owned();
        let mut header = entry.header().clone();
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut entry, &mut data).unwrap();
        if path == name {
            data = contents.to_vec();
        }
        header.set_size(data.len() as u64);
        output.append_data(&mut header, &path, &data[..]).unwrap();
    }
    std::fs::write(archive, output.into_inner().unwrap()).unwrap();
}

#[test]
fn pull_from_a_plain_http_registry_then_remove() {
    let registry = Registry::start();
    let pushed = image("pulled");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let digest = runtime.block_on(registry.push(&pushed, "test/shell", "3"));
    let data = tempfile::tempdir().unwrap();
    let config = data.path().join("registries.yaml");
    std::fs::write(
        &config,
        format!(
            "mirrors:\n  \"{0}\":\n    endpoint:\n      - \"http://{0}\"\n",
            registry.address
        ),
    )
    .unwrap();
    let name = format!("{}/test/shell:3", registry.address);

    let (ok, _, stderr) = skiff(data.path(), &["image", "pull", &name]);
    assert!(
        !ok,
        "without the registries file the registry is reached over HTTPS and fails"
    );
    assert!(stderr.contains(&format!("pulling {name}")), "{stderr}");

    let (ok, stdout, stderr) = pull_with_config(data.path(), &name, &config);
    assert!(ok, "{stderr}");
    assert_eq!(stdout, format!("pulled {name} {digest}\n"));
    let (_, stdout, _) = skiff(data.path(), &["image", "ls"]);
    assert_eq!(
        rows(&stdout)[1],
        [
            format!("{}/test/shell", registry.address),
            "3".into(),
            digest.to_string(),
            human(pushed.size())
        ]
    );

    let (ok, stdout, stderr) = skiff(data.path(), &["image", "rm", &name]);
    assert!(ok, "{stderr}");
    assert_eq!(stdout, format!("deleted {name}\n"));
    let (_, stdout, _) = skiff(data.path(), &["image", "ls"]);
    assert_eq!(
        rows(&stdout),
        [["NAME", "TAG", "DIGEST", "SIZE"]],
        "nothing is left: {stdout}"
    );
    let blobs = std::fs::read_dir(data.path().join("content/blobs/sha256"))
        .unwrap()
        .count();
    let snapshots = std::fs::read_dir(data.path().join("content/snapshots"))
        .unwrap()
        .count();
    assert_eq!(
        (blobs, snapshots),
        (0, 0),
        "blobs and snapshots go with the last image using them"
    );

    let (ok, _, stderr) = skiff(data.path(), &["image", "rm", &name]);
    assert!(!ok);
    assert!(stderr.contains("no such image"), "{stderr}");
}

fn ingest_bytes(data: &Path) -> u64 {
    std::fs::read_dir(data.join("content/ingest"))
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

#[test]
fn a_pull_killed_midway_leaves_nothing_trusted_and_the_next_pull_completes() {
    let registry = Registry::start();
    let pushed = image("interrupted");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(registry.push(&pushed, "test/slow", "1"));
    let proxy = SlowProxy::start(&registry.address);
    let data = tempfile::tempdir().unwrap();
    let config = data.path().join("registries.yaml");
    std::fs::write(
        &config,
        format!(
            "mirrors:\n  \"{0}\":\n    endpoint:\n      - \"http://{0}\"\n",
            proxy.address
        ),
    )
    .unwrap();
    let name = format!("{}/test/slow:1", proxy.address);
    let mut pull = Command::new(env!("CARGO_BIN_EXE_skiff"))
        .args([
            "image",
            "pull",
            &name,
            "--registry-config",
            config.to_str().unwrap(),
            "--data-dir",
        ])
        .arg(data.path())
        .env_remove("SKIFF_DATA_DIR")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while ingest_bytes(data.path()) < 64 * 1024 {
        assert!(
            pull.try_wait().unwrap().is_none(),
            "the pull ended before it could be interrupted"
        );
        assert!(
            Instant::now() < deadline,
            "the download did not start within 30s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    pull.kill().unwrap();
    pull.wait().unwrap();
    let busybox_layer = Digest::sha256_of(&pushed.layers[0].compressed);
    assert!(
        !data
            .path()
            .join("content/blobs/sha256")
            .join(busybox_layer.hex())
            .exists(),
        "a half-downloaded blob is not stored"
    );
    let (_, stdout, _) = skiff(data.path(), &["image", "ls"]);
    assert!(
        !stdout.contains("test/slow"),
        "no image is recorded: {stdout}"
    );

    proxy.set_throttled(false);
    let (ok, _, stderr) = pull_with_config(data.path(), &name, &config);
    assert!(ok, "the second pull completes: {stderr}");
    // The store names a snapshot by its diff ID and form (overlay or marker whiteouts).
    let snapshot = skiff_images::ContentStore::open(data.path().join("content"))
        .unwrap()
        .snapshot_path(&pushed.layers[1].diff_id);
    assert_eq!(
        std::fs::read_to_string(snapshot.join("etc/motd")).unwrap(),
        "interrupted"
    );
    assert_eq!(
        ingest_bytes(data.path()),
        0,
        "the killed pull's partial file was swept"
    );
}

#[test]
fn archives_in_the_images_directory_are_imported_when_skiff_starts() {
    let mut server = support::Skiff::start();
    server.stop();
    let images = server.data_dir().join("images");
    std::fs::create_dir_all(&images).unwrap();
    let archive = image("dropped in the images directory");
    archive.write_oci_archive(
        &images.join("dropped.tar.gz"),
        "example.test/dropped:3",
        Compression::Gzip,
    );
    std::fs::write(images.join("broken.tar"), b"not an archive").unwrap();

    // A bad file is logged and skipped: the server starts all the same.
    server.restart();
    let (ok, stdout, stderr) = skiff(&server.data_dir(), &["image", "ls"]);
    assert!(ok, "{stderr}");
    let digest = Digest::sha256_of(&archive.manifest()).to_string();
    assert!(
        rows(&stdout).contains(&vec![
            "example.test/dropped".to_string(),
            "3".into(),
            digest,
            human(archive.size()),
        ]),
        "the archive's image is listed:\n{stdout}"
    );
    let log = server.log();
    assert!(
        log.contains("cannot import image archive") && log.contains("broken.tar"),
        "the bad file is logged:\n{log}"
    );
}
