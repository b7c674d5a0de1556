//! `skiff image import NAME:TAG DIR` and `skiff image ls`: a directory becomes a one-layer image
//! in the content store, listed with the store's other images, and runs as a pod with
//! `imagePullPolicy: Never`. The pod test runs as root (its root is the image) with `kubectl`
//! and Debian's `busybox-static` installed.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use serde_json::json;
use skiff_images::{ContentStore, Reference};
use skiff_testkit::images::BUSYBOX;
use support::cli::{rows, skiff};
use support::json::str_at;
use support::{wait_for, Skiff};

/// The store's listing header, Docker's columns.
const HEADER: [&str; 4] = ["NAME", "TAG", "DIGEST", "SIZE"];

/// A directory holding busybox, a message only this image has, and a link to it.
fn image_dir(message: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("image dir");
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).expect("bin");
    std::fs::copy(BUSYBOX, bin.join("busybox"))
        .expect("busybox must be installed (Debian package busybox-static)");
    std::fs::set_permissions(bin.join("busybox"), std::fs::Permissions::from_mode(0o755))
        .expect("busybox mode");
    let etc = dir.path().join("srv");
    std::fs::create_dir(&etc).expect("srv");
    std::fs::write(etc.join("message.txt"), message).expect("message");
    std::os::unix::fs::symlink("srv/message.txt", dir.path().join("message")).expect("link");
    dir
}

fn utf8(path: &Path) -> &str {
    path.to_str().expect("a UTF-8 path")
}

#[test]
fn an_empty_store_lists_no_image_at_all() {
    let data = tempfile::tempdir().expect("tempdir");
    let (ok, stdout, stderr) = skiff(data.path(), &["image", "ls"]);
    assert!(ok, "{stderr}");
    assert_eq!(
        rows(&stdout),
        [HEADER],
        "no name means anything before it is stored"
    );
}

#[test]
fn an_imported_directory_is_a_one_layer_image_with_the_given_config() {
    let data = tempfile::tempdir().expect("tempdir");
    let dir = image_dir("from a directory");
    let (ok, stdout, stderr) = skiff(
        data.path(),
        &[
            "image",
            "import",
            "tools:1.0",
            utf8(dir.path()),
            "--entrypoint",
            "/bin/busybox",
            "--cmd",
            "--fast",
            "--env",
            "A=b=c",
            "--workdir",
            "/srv",
        ],
    );
    assert!(ok, "{stderr}");
    let printed: Vec<&str> = stdout.split_whitespace().collect();
    assert_eq!(printed.len(), 5, "{stdout}");
    assert_eq!(printed[..2], ["imported", "docker.io/library/tools:1.0"]);
    let digest = printed[2];
    assert!(digest.starts_with("sha256:"), "{stdout}");
    assert_eq!(printed[3..], ["from", utf8(dir.path())]);

    let (ok, stdout, stderr) = skiff(data.path(), &["image", "ls"]);
    assert!(ok, "{stderr}");
    let listed = rows(&stdout);
    assert_eq!(listed.len(), 2, "{stdout}");
    assert_eq!(listed[0], HEADER);
    assert_eq!(listed[1][..3], ["docker.io/library/tools", "1.0", digest]);

    let store = ContentStore::open(data.path().join("content")).expect("content store");
    let record = store
        .find_image(&Reference::parse("tools:1.0").unwrap())
        .expect("readable store")
        .expect("the imported image");
    assert_eq!(record.digest, digest);
    assert_eq!(record.diff_ids.len(), 1, "one layer: {record:?}");
    let config = store.image_config(&record).expect("its config");
    assert_eq!(config.entrypoint, ["/bin/busybox"]);
    assert_eq!(config.cmd, ["--fast"]);
    assert_eq!(config.env, [("A".to_string(), "b=c".to_string())]);
    assert_eq!(config.working_dir.as_deref(), Some("/srv"));
}

#[test]
fn bad_imports_fail_with_a_message_and_store_nothing() {
    let data = tempfile::tempdir().expect("tempdir");
    let dir = image_dir("unused");
    let dir = utf8(dir.path());
    let missing = format!("{dir}/missing");
    let file = format!("{dir}/srv/message.txt");
    let cases: [(&[&str], &str); 5] = [
        (&["image", "import", "Tools:1", dir], "must be lowercase"),
        (&["image", "import", "tools:1", &missing], "No such file"),
        (&["image", "import", "tools:1", &file], "not a directory"),
        (
            &["image", "import", "tools@sha256:0123", dir],
            "invalid reference format",
        ),
        (
            &["image", "import", "tools:1", dir, "--env", "NOEQUALS"],
            "expected K=V",
        ),
    ];
    for (args, message) in cases {
        let (ok, _, stderr) = skiff(data.path(), args);
        assert!(!ok, "{args:?} succeeded");
        assert!(stderr.contains(message), "{args:?}: {stderr}");
    }
    let (ok, stdout, stderr) = skiff(data.path(), &["image", "ls"]);
    assert!(ok, "{stderr}");
    assert_eq!(rows(&stdout), [HEADER]);
}

#[test]
fn an_imported_directory_runs_as_a_pod_with_pull_policy_never() {
    assert!(
        nix::unistd::Uid::effective().is_root(),
        "this test needs root (see the module docs)"
    );
    let skiff_server = Skiff::start_with(&["--no-proxy"]);
    let dir = image_dir("served from an imported directory");
    let (ok, stdout, stderr) = skiff(
        &skiff_server.data_dir(),
        &["image", "import", "dir-app:1", utf8(dir.path())],
    );
    assert!(ok, "{stderr}");
    let digest = stdout
        .split_whitespace()
        .nth(2)
        .expect("the digest")
        .to_string();

    let kubectl = skiff_server.kubectl();
    let pod = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "from-dir"},
        "spec": {
            "restartPolicy": "Never",
            "containers": [{
                "name": "app",
                "image": "dir-app:1",
                "imagePullPolicy": "Never",
                "command": ["/bin/busybox", "cat", "/message"],
            }],
        },
    });
    let file = skiff_server.write_file("from-dir.json", &pod.to_string());
    kubectl.ok(&["apply", "-f", &file]);
    let done = wait_for(
        "the pod from the directory to finish",
        Duration::from_secs(60),
        || {
            let pod: serde_json::Value =
                serde_json::from_str(&kubectl.ok(&["get", "pod", "from-dir", "-o", "json"]))
                    .ok()?;
            let phase = str_at(&pod, "/status/phase");
            (phase == "Succeeded" || phase == "Failed").then_some(pod)
        },
    );
    assert_eq!(
        str_at(&done, "/status/phase"),
        "Succeeded",
        "the container read its image's file: {done}"
    );
    assert_eq!(
        str_at(&done, "/status/containerStatuses/0/imageID"),
        format!("docker.io/library/dir-app@{digest}")
    );
    let logs = kubectl.ok(&["logs", "from-dir"]);
    assert_eq!(logs.trim_end(), "served from an imported directory");
    let (ok, stdout, stderr) = skiff(&skiff_server.data_dir(), &["image", "ls"]);
    assert!(ok, "{stderr}");
    assert!(
        rows(&stdout)
            .iter()
            .any(|row| row[..2] == ["docker.io/library/dir-app", "1"]),
        "{stdout}"
    );
}
