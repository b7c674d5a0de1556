//! The test images build, their archives import into a content store, and what they hold
//! runs: each image's program is started from its own unpacked layers as its root, so a file
//! missing from an image fails here and not in a pod.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use skiff_testkit::images::{self, TEST_REGISTRY};
use skiff_testkit::rootfs::UnpackedImage;

const DEADLINE: Duration = Duration::from_secs(20);

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
    let unpacked = UnpackedImage::of(&image);
    assert_eq!(unpacked.record.diff_ids.len(), 2, "busybox, then the site");
    assert!(unpacked.files.contains("bin/busybox"));
    assert!(unpacked.files.contains("www/index.html"));
    assert!(unpacked.config_strings("Entrypoint").is_empty());
    let cmd = unpacked.config_strings("Cmd");
    assert_eq!(
        cmd,
        [
            "sh",
            "-c",
            "exec httpd -f -v -p ${SKIFF_POD_IP:-0.0.0.0}:80 -h /www"
        ]
    );
    let ip = private_loopback_ip();
    let argv: Vec<&str> = cmd.iter().map(String::as_str).collect();
    let mut server = KillOnDrop(
        unpacked
            .command(&argv, &[&format!("SKIFF_POD_IP={ip}")])
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
    let unpacked = UnpackedImage::of(&image);
    for applet in ["bin/sh", "bin/ls", "usr/bin/wget", "bin/sleep"] {
        assert!(unpacked.files.contains(applet), "{applet} missing");
        assert_eq!(
            std::fs::read_link(unpacked.root.join(applet)).unwrap(),
            Path::new("/bin/busybox")
        );
    }
    assert_eq!(unpacked.config_strings("Cmd"), ["sh"]);
    let output = unpacked
        .command(
            &[
                "sh",
                "-c",
                "echo $((6 * 7)); ls /bin/busybox; touch /tmp/x && echo written",
            ],
            &[],
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
    // A tag of its own: the cache keeps one archive per name, and the real demo is 1.18.
    let image = images::demo_from_binary(&binary, "true-1");
    assert_eq!(image.name, format!("{TEST_REGISTRY}/demo:true-1"));
    let unpacked = UnpackedImage::of(&image);
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
    assert_eq!(unpacked.config_strings("Entrypoint"), ["/skiff-demo"]);
    let env = unpacked.config_strings("Env");
    assert!(
        env.contains(&"SKIFF_DEMO_VERSION=true-1".to_string()),
        "{env:?}"
    );
    assert!(env.iter().any(|e| e.starts_with("PATH=/")), "{env:?}");
    // The program starts with only what the image holds.
    let status = unpacked.command(&["/skiff-demo"], &[]).status().unwrap();
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

#[test]
fn python_image_runs_the_kubernetes_client_alone_without_other_site_packages() {
    let image = images::python();
    assert_eq!(image.name, format!("{TEST_REGISTRY}/python:3"));
    let unpacked = UnpackedImage::of(&image);
    assert_eq!(unpacked.config_strings("Cmd"), ["python3"]);
    assert!(unpacked.files.contains("usr/bin/python3"));
    let site_packages: BTreeSet<&str> = unpacked
        .files
        .iter()
        .filter_map(|path| path.split_once("-packages/").map(|(_, rest)| rest))
        .filter_map(|rest| rest.split('/').next())
        .collect();
    for wanted in ["kubernetes", "urllib3", "yaml", "dateutil", "six.py"] {
        assert!(
            site_packages.contains(wanted),
            "{wanted} missing from the image's site-packages: {site_packages:?}"
        );
    }
    for unwanted in ["pip", "setuptools"] {
        assert!(
            !site_packages.contains(unwanted),
            "{unwanted} is not required by kubernetes yet is in the image"
        );
    }
    assert!(
        !unpacked.files.iter().any(|path| path.contains("/test/")),
        "the standard library's tests are left out"
    );
    assert!(
        !unpacked
            .files
            .iter()
            .any(|path| path.contains("kubernetes/aio/")),
        "the client's asyncio twin is left out"
    );
    // The client and the TLS it uses import from the image alone; without the environment a
    // pod has, the in-cluster configuration refuses with the client's own message.
    let script = "import ssl, kubernetes.client\n\
        from kubernetes import config\n\
        try:\n    config.load_incluster_config()\n\
        except config.ConfigException as e:\n    print('refused:', e)\n";
    let output = unpacked
        .command(&["python3", "-c", script], &[])
        .output()
        .expect("chroot runs");
    assert!(
        output.status.success(),
        "python3 in the image failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "refused: Service host/port is not set.\n"
    );
}
