//! The test images the end-to-end tests run: the demo server image holds the `skiff-demo`
//! binary and exactly what it needs to run, and archives placed in the data directory are
//! imported when `skiff up` starts.

mod support;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::Duration;

use skiff_testkit::images::parse_ldd;
use skiff_testkit::rootfs::UnpackedImage;
use support::cli::{rows, skiff};
use support::images::{demo, httpd, shell, DEMO, HTTPD, SHELL};
use support::{wait_for, Skiff, DEADLINE};

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

#[test]
fn the_demo_image_runs_the_demo_server_from_its_own_files() {
    let image = demo("1.18");
    assert_eq!(image.name, format!("{DEMO}:1.18"));
    let unpacked = UnpackedImage::of(&image);
    let ldd = std::process::Command::new("ldd")
        .arg(env!("CARGO_BIN_EXE_skiff-demo"))
        .output()
        .unwrap();
    let mut expected: BTreeSet<String> = parse_ldd(&String::from_utf8_lossy(&ldd.stdout))
        .unwrap()
        .iter()
        .map(|path| path.to_string_lossy().trim_start_matches('/').to_string())
        .collect();
    expected.insert("skiff-demo".to_string());
    assert_eq!(
        unpacked.files, expected,
        "the binary, its libraries and the loader, nothing else"
    );
    let entrypoint = unpacked.config_strings("Entrypoint");
    assert_eq!(entrypoint, ["/skiff-demo"]);

    // Started as a container would start it: its entrypoint, its environment, its files.
    let n = std::process::id();
    let ip = format!("127.78.{}.{}", (n >> 8) % 256, n % 254 + 1);
    let mut server = KillOnDrop(
        unpacked
            .command(
                &["/skiff-demo"],
                &[
                    &format!("SKIFF_POD_IP={ip}"),
                    "SKIFF_DEMO_PORT=0",
                    "SKIFF_POD_NAME=web-1",
                ],
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let stdout = server.0.stdout.take().unwrap();
    let (lines, received) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    let first = received.recv_timeout(DEADLINE).unwrap_or_else(|_| {
        let mut stderr = String::new();
        let _ = server.0.kill();
        if let Some(mut err) = server.0.stderr.take() {
            let _ = err.read_to_string(&mut stderr);
        }
        panic!("the demo server printed no start line; stderr:\n{stderr}")
    });
    let address = first
        .strip_prefix("listening on ")
        .and_then(|rest| rest.strip_suffix(" version=1.18 pod=web-1"))
        .unwrap_or_else(|| panic!("unexpected start line {first:?}"))
        .to_string();
    assert!(address.starts_with(&format!("{ip}:")), "{address}");
    let response = wait_for("the demo server to answer", DEADLINE, || {
        http_get(&address, "/")
    });
    assert!(response.starts_with("HTTP/1.0 200 OK\r\n"), "{response}");
    assert!(
        response.ends_with("\r\n\r\nversion=1.18 pod=web-1\n"),
        "{response}"
    );
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(server.0.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let status = wait_for("the demo server to stop on SIGTERM", DEADLINE, || {
        server.0.try_wait().unwrap()
    });
    assert!(status.success(), "{status}");
}

#[test]
fn archives_in_the_data_directory_are_imported_when_skiff_starts() {
    let images = [demo("1.18"), httpd("2.2"), shell()];
    let server = Skiff::start_with_images(&["--no-node"], &images);
    let (ok, out, err) = skiff(&server.data_dir(), &["image", "ls"]);
    assert!(ok, "{err}");
    let listed: BTreeSet<String> = rows(&out)
        .into_iter()
        .take_while(|row| !row.is_empty())
        .skip(1)
        .map(|row| format!("{}:{}", row[0], row[1]))
        .collect();
    let expected: BTreeSet<String> = [format!("{DEMO}:1.18"), format!("{HTTPD}:2.2"), SHELL.into()]
        .into_iter()
        .collect();
    assert_eq!(listed, expected, "skiff image ls printed:\n{out}");
    for image in &images {
        let placed = server
            .data_dir()
            .join("images")
            .join(image.archive.file_name().unwrap());
        assert!(
            same_file(&placed, &image.archive),
            "{} is linked, not copied",
            placed.display()
        );
    }
}

fn same_file(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let (a, b) = (std::fs::metadata(a).unwrap(), std::fs::metadata(b).unwrap());
    a.dev() == b.dev() && a.ino() == b.ino()
}
