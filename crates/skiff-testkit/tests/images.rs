//! The test images build, their archives import into a content store, and what they hold
//! runs: each image's program is started from its own unpacked layers under `chroot`, so a
//! file missing from an image fails here and not in a pod.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use skiff_images::archive::import_archive;
use skiff_images::{ContentStore, Digest, ImageRecord};
use skiff_testkit::images::{self, TestImage, TEST_REGISTRY};

const DEADLINE: Duration = Duration::from_secs(20);

/// An image imported from its archive into a fresh store, with its layers merged into one
/// root directory as a container would see them.
struct Unpacked {
    _dir: tempfile::TempDir,
    record: ImageRecord,
    config: serde_json::Value,
    root: PathBuf,
    files: BTreeSet<String>,
}

fn unpack(image: &TestImage) -> Unpacked {
    let dir = tempfile::tempdir().unwrap();
    let store = ContentStore::open(dir.path().join("store")).unwrap();
    let records = import_archive(&store, &image.archive)
        .unwrap_or_else(|e| panic!("importing {}: {e}", image.archive.display()));
    assert_eq!(records.len(), 1, "one image per archive");
    let record = records.into_iter().next().unwrap();
    assert_eq!(
        format!("{}:{}", record.name, record.tag.clone().unwrap_or_default()),
        image.name
    );
    let config = store.read(&Digest::parse(&record.config).unwrap()).unwrap();
    let config: serde_json::Value = serde_json::from_slice(&config).unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir(&root).unwrap();
    let mut files = BTreeSet::new();
    for diff_id in &record.diff_ids {
        let snapshot = store.snapshot_path(&Digest::parse(diff_id).unwrap());
        let status = Command::new("cp")
            .arg("-a")
            .arg(format!("{}/.", snapshot.display()))
            .arg(&root)
            .status()
            .unwrap();
        assert!(status.success(), "copying {}", snapshot.display());
        list_files(&snapshot, &snapshot, &mut files);
    }
    Unpacked {
        _dir: dir,
        record,
        config,
        root,
        files,
    }
}

/// Every path under `dir` that is not a directory, relative to `base`.
fn list_files(base: &Path, dir: &Path, files: &mut BTreeSet<String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() && !path.is_symlink() {
            list_files(base, &path, files);
        } else {
            let relative = path.strip_prefix(base).unwrap();
            files.insert(relative.to_string_lossy().into_owned());
        }
    }
}

/// A command run inside `root` as its `/`, with exactly `env`: `chroot` as root, else in a
/// user namespace mapping the caller to root.
fn in_root(root: &Path, env: &[String], argv: &[String]) -> Command {
    let mut command = if nix::unistd::geteuid().is_root() {
        Command::new("chroot")
    } else {
        let mut unshare = Command::new("unshare");
        unshare.args(["--map-root-user", "chroot"]);
        unshare
    };
    command.arg(root).args(argv).env_clear();
    for pair in env {
        let (name, value) = pair.split_once('=').unwrap();
        command.env(name, value);
    }
    command
}

fn strings(value: &serde_json::Value) -> Vec<String> {
    value
        .as_array()
        .map(|items| {
            items
                .iter()
                .map(|v| v.as_str().unwrap().to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// A loopback address no other test uses, to bind port 80 on.
fn private_loopback_ip() -> String {
    let n = std::process::id();
    format!("127.77.{}.{}", (n >> 8) % 256, n % 254 + 1)
}

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn http_get(address: &str, path: &str) -> Option<String> {
    let mut stream = TcpStream::connect(address).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: test\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    Some(response)
}

fn wait_for_response(address: &str, path: &str, server: &mut KillOnDrop) -> String {
    let started = Instant::now();
    loop {
        if let Some(response) = http_get(address, path) {
            return response;
        }
        if let Ok(Some(status)) = server.0.try_wait() {
            panic!("the server exited with {status} before answering on {address}");
        }
        assert!(
            started.elapsed() < DEADLINE,
            "nothing answered on {address} within {DEADLINE:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn httpd_image_serves_its_version_on_the_pod_ip() {
    let image = images::httpd("2.2");
    assert_eq!(image.name, format!("{TEST_REGISTRY}/httpd:2.2"));
    let unpacked = unpack(&image);
    assert_eq!(unpacked.record.diff_ids.len(), 2, "busybox, then the site");
    assert!(unpacked.files.contains("bin/busybox"));
    assert!(unpacked.files.contains("www/index.html"));
    let config = &unpacked.config["config"];
    assert_eq!(config["Entrypoint"], serde_json::Value::Null);
    let cmd = strings(&config["Cmd"]);
    assert_eq!(
        cmd,
        [
            "sh",
            "-c",
            "exec httpd -f -v -p ${SKIFF_POD_IP:-0.0.0.0}:80 -h /www"
        ]
    );
    let ip = private_loopback_ip();
    let mut env = strings(&config["Env"]);
    env.push(format!("SKIFF_POD_IP={ip}"));
    let mut server = KillOnDrop(
        in_root(&unpacked.root, &env, &cmd)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let response = wait_for_response(&format!("{ip}:80"), "/", &mut server);
    assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
    assert!(response.ends_with("\r\n\r\nversion=2.2\n"), "{response}");
}

#[test]
fn shell_image_runs_sh_and_busybox_applets() {
    let image = images::shell();
    assert_eq!(image.name, format!("{TEST_REGISTRY}/shell:1.36"));
    let unpacked = unpack(&image);
    for applet in ["bin/sh", "bin/ls", "usr/bin/wget", "bin/sleep"] {
        assert!(unpacked.files.contains(applet), "{applet} missing");
        assert_eq!(
            std::fs::read_link(unpacked.root.join(applet)).unwrap(),
            Path::new("/bin/busybox")
        );
    }
    let config = &unpacked.config["config"];
    assert_eq!(strings(&config["Cmd"]), ["sh"]);
    let output = in_root(
        &unpacked.root,
        &strings(&config["Env"]),
        &[
            "sh",
            "-c",
            "echo $((6 * 7)); ls /bin/busybox; touch /tmp/x && echo written",
        ]
        .map(String::from),
    )
    .output()
    .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "42\n/bin/busybox\nwritten\n"
    );
}

/// A dynamically linked program of the host that exits 0 and needs no other file.
fn host_true() -> PathBuf {
    std::fs::canonicalize("/bin/true").unwrap()
}

#[test]
fn demo_image_holds_the_binary_its_libraries_and_loader_and_nothing_else() {
    let binary = host_true();
    let image = images::demo_from_binary(&binary, "1.18");
    assert_eq!(image.name, format!("{TEST_REGISTRY}/demo:1.18"));
    let unpacked = unpack(&image);
    let ldd = Command::new("ldd").arg(&binary).output().unwrap();
    let mut expected: BTreeSet<String> = images::parse_ldd(&String::from_utf8_lossy(&ldd.stdout))
        .unwrap()
        .iter()
        .map(|p| p.to_string_lossy().trim_start_matches('/').to_string())
        .collect();
    assert!(
        expected.iter().any(|p| p.contains("ld-linux")),
        "the loader is among the files: {expected:?}"
    );
    expected.insert("skiff-demo".into());
    assert_eq!(unpacked.files, expected);
    let config = &unpacked.config["config"];
    assert_eq!(strings(&config["Entrypoint"]), ["/skiff-demo"]);
    let env = strings(&config["Env"]);
    assert!(
        env.contains(&"SKIFF_DEMO_VERSION=1.18".to_string()),
        "{env:?}"
    );
    assert!(env.iter().any(|e| e.starts_with("PATH=/")), "{env:?}");
    // The program starts with only what the image holds.
    let status = in_root(&unpacked.root, &env, &["/skiff-demo".to_string()])
        .status()
        .unwrap();
    assert!(
        status.success(),
        "the binary could not run from its image: {status}"
    );
}

#[test]
fn an_archive_is_built_once_and_holds_what_a_fresh_build_gives() {
    let first = images::httpd("2.4");
    let second = images::httpd("2.4");
    assert_eq!(first.archive, second.archive);
    let fresh = tempfile::tempdir().unwrap();
    let again = fresh.path().join("again.tar");
    first
        .build()
        .write_oci_archive(&again, &first.name)
        .unwrap();
    assert_eq!(
        std::fs::read(&first.archive).unwrap(),
        std::fs::read(&again).unwrap(),
        "the cached archive is the image its recipe builds"
    );
    let other = images::httpd("2.5");
    assert_ne!(first.archive, other.archive, "each tag has its own archive");
}
