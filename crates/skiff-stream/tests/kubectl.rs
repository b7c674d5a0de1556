//! End to end: the real kubectl binaries (1.27, SPDY only, to 1.33, WebSocket first) run
//! exec and port-forward against a loopback stand-in server built on this crate.

mod support;

use std::process::Stdio;
use std::time::Duration;

use support::{download_pod, echo_pod, read_download, required_kubectls, FakeApiServer};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

const KUBECTL_LIMIT: Duration = Duration::from_secs(60);

async fn run(mut command: tokio::process::Command, stdin: &[u8]) -> std::process::Output {
    command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().expect("kubectl starts");
    let mut input = child.stdin.take().unwrap();
    let stdin = stdin.to_vec();
    let feeder = tokio::spawn(async move {
        let _ = input.write_all(&stdin).await;
        drop(input);
    });
    let output = tokio::time::timeout(KUBECTL_LIMIT, child.wait_with_output())
        .await
        .expect("kubectl finishes within a minute")
        .expect("kubectl runs");
    feeder.await.unwrap();
    output
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_splits_output_streams_and_reports_the_exit_code() {
    let server = FakeApiServer::start(1).await;
    for (minor, kubectl) in required_kubectls() {
        let mut command = server.kubectl(&kubectl);
        command.args([
            "exec",
            "p",
            "--",
            "sh",
            "-c",
            "echo out; echo err >&2; exit 3",
        ]);
        let output = run(command, b"").await;
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(3), "1.{minor}: {stderr}");
        assert_eq!(stdout, "out\n", "1.{minor}");
        assert!(stderr.starts_with("err\n"), "1.{minor}: {stderr:?}");
        assert!(
            stderr.contains("command terminated with exit code 3"),
            "1.{minor}: {stderr:?}"
        );
        let success = {
            let mut command = server.kubectl(&kubectl);
            command.args(["exec", "p", "--", "true"]);
            run(command, b"").await
        };
        assert!(
            success.status.success(),
            "1.{minor}: {}",
            String::from_utf8_lossy(&success.stderr)
        );
    }
    // kubectl 1.27 knows only SPDY; 1.30 and later open a WebSocket with v5 first.
    let upgrades = server.upgrades.lock().unwrap().clone();
    let protocols: Vec<String> = upgrades
        .iter()
        .map(|seen| {
            let upgrade = seen.headers.get("upgrade").unwrap().to_str().unwrap();
            upgrade.to_ascii_lowercase()
        })
        .collect();
    assert_eq!(protocols.first().map(String::as_str), Some("spdy/3.1"));
    assert_eq!(protocols.last().map(String::as_str), Some("websocket"));
    // Over SPDY, kubectl opens the error stream first, then stdout and stderr, each after the
    // previous one was answered, naming each by its streamType header.
    let opened = spdy_streams_opened(&upgrades[0]);
    assert_eq!(
        opened,
        vec![
            (1, "error".to_string()),
            (3, "stdout".to_string()),
            (5, "stderr".to_string())
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_with_stdin_echoes_to_end_of_file() {
    let server = FakeApiServer::start(1).await;
    // Larger than every buffer on the way, so flow control is exercised.
    let input: Vec<u8> = (0..600_000u32).map(|i| (i * 7 % 251) as u8).collect();
    for (minor, kubectl) in required_kubectls() {
        let mut command = server.kubectl(&kubectl);
        command.args(["exec", "-i", "p", "--", "cat"]);
        let output = run(command, &input).await;
        assert!(
            output.status.success(),
            "1.{minor}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert_eq!(output.stdout.len(), input.len(), "1.{minor}");
        assert!(
            output.stdout == input,
            "1.{minor}: output differs from input"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn port_forward_carries_bytes_intact_over_many_connections() {
    let (pod_port, _pod) = echo_pod().await;
    let server = FakeApiServer::start(pod_port).await;
    let payload: Vec<u8> = (0..200_000u32).map(|i| (i * 13 % 256) as u8).collect();
    for (minor, kubectl) in required_kubectls() {
        let local = free_port();
        let mut command = server.kubectl(&kubectl);
        command
            .args(["port-forward", "pod/p", &format!("{local}:80")])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let ready = tokio::time::timeout(KUBECTL_LIMIT, lines.next_line())
            .await
            .expect("port-forward announces itself")
            .unwrap()
            .unwrap_or_default();
        assert!(ready.starts_with("Forwarding from"), "1.{minor}: {ready}");
        // kubectl 1.27 (SPDY) and 1.33 (tunnelled) carry 100 connections in a row; the
        // versions between, a few each.
        let rounds = if minor == 27 || minor == 33 { 100 } else { 5 };
        for round in 0..rounds {
            let mut socket = tokio::net::TcpStream::connect(("127.0.0.1", local))
                .await
                .unwrap();
            let (mut read, mut write) = socket.split();
            let send = async {
                write.write_all(&payload).await.unwrap();
                write.shutdown().await.unwrap();
            };
            let mut echoed = Vec::new();
            let receive = read.read_to_end(&mut echoed);
            let ((), received) =
                tokio::time::timeout(KUBECTL_LIMIT, async { tokio::join!(send, receive) })
                    .await
                    .unwrap_or_else(|_| panic!("1.{minor}: round {round} timed out"));
            received.unwrap();
            assert_eq!(echoed.len(), payload.len(), "1.{minor}: round {round}");
            assert!(echoed == payload, "1.{minor}: round {round} differs");
        }
        child.kill().await.unwrap();
    }
    let upgrades = server.upgrades.lock().unwrap().clone();
    let last = upgrades.last().unwrap();
    assert_eq!(
        last.headers.get("sec-websocket-protocol").unwrap(),
        "SPDY/3.1+portforward.k8s.io"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn port_forward_reports_a_refused_pod_port() {
    // Port 1 on loopback has no listener: the pod refuses the connection.
    let server = FakeApiServer::start(1).await;
    for (minor, kubectl) in required_kubectls() {
        let local = free_port();
        let mut command = server.kubectl(&kubectl);
        command
            .args(["port-forward", "pod/p", &format!("{local}:80")])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut err = BufReader::new(child.stderr.take().unwrap()).lines();
        tokio::time::timeout(KUBECTL_LIMIT, out.next_line())
            .await
            .expect("port-forward announces itself")
            .unwrap();
        let mut socket = tokio::net::TcpStream::connect(("127.0.0.1", local))
            .await
            .unwrap();
        let mut nothing = Vec::new();
        let _ = tokio::time::timeout(KUBECTL_LIMIT, socket.read_to_end(&mut nothing)).await;
        let mut reported = String::new();
        let deadline = tokio::time::Instant::now() + KUBECTL_LIMIT;
        while !reported.contains("error forwarding port 80 to pod p, uid u1") {
            match tokio::time::timeout_at(deadline, err.next_line()).await {
                Ok(Ok(Some(line))) => {
                    reported.push_str(&line);
                    reported.push('\n');
                }
                _ => panic!("1.{minor}: kubectl did not report the pod's refusal: {reported}"),
            }
        }
        assert!(
            reported.contains("an error occurred forwarding"),
            "1.{minor}: {reported}"
        );
        child.kill().await.unwrap();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_with_a_terminal_reports_its_size() {
    let server = FakeApiServer::start(1).await;
    let kubectls = required_kubectls();
    for (minor, kubectl) in &kubectls {
        // `script` gives kubectl a pseudo-terminal of 91 columns and 27 rows.
        let inner = format!(
            "stty cols 91 rows 27; {} --kubeconfig {} exec -it p -- sh -c 'echo tty-ok'",
            kubectl.display(),
            server.kubeconfig().display()
        );
        let mut command = tokio::process::Command::new("script");
        command
            .args(["-qec", &inner, "/dev/null"])
            .kill_on_drop(true);
        let output = run(command, b"").await;
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "1.{minor}: {stdout}");
        assert!(stdout.contains("tty-ok"), "1.{minor}: {stdout}");
    }
    // kubectl 1.27 over SPDY: a terminal session adds the resize stream, and has no stderr.
    let upgrades = server.upgrades.lock().unwrap().clone();
    let opened: Vec<String> = spdy_streams_opened(&upgrades[0])
        .into_iter()
        .map(|(_, kind)| kind)
        .collect();
    assert_eq!(opened, ["error", "stdin", "stdout", "resize"]);
    let sizes = server.terminal_sizes.lock().unwrap().clone();
    assert_eq!(
        sizes.len(),
        kubectls.len(),
        "one size per session: {sizes:?}"
    );
    for size in sizes {
        assert_eq!((size.width, size.height), (91, 27));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attach_with_stdin_reaches_the_container_and_back() {
    let server = FakeApiServer::start(1).await;
    for (minor, kubectl) in required_kubectls() {
        let mut command = server.kubectl(&kubectl);
        command.args(["attach", "-i", "p"]);
        let output = run(command, b"attached line\n").await;
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "1.{minor}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(stdout.contains("attached line\n"), "1.{minor}: {stdout:?}");
    }
    let upgrades = server.upgrades.lock().unwrap().clone();
    assert!(upgrades
        .iter()
        .all(|seen| seen.request_line.contains("/pods/p/attach?")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn port_forward_downloads_50_mib_intact() {
    const SIZE: u64 = 50 << 20;
    let (pod_port, _pod) = download_pod(SIZE).await;
    let server = FakeApiServer::start(pod_port).await;
    let direct_started = std::time::Instant::now();
    let mut direct = tokio::net::TcpStream::connect(("127.0.0.1", pod_port))
        .await
        .unwrap();
    assert_eq!(read_download(&mut direct).await, SIZE);
    let direct_time = direct_started.elapsed();
    for (minor, kubectl) in required_kubectls() {
        if minor != 27 && minor != 33 {
            continue;
        }
        let local = free_port();
        let mut command = server.kubectl(&kubectl);
        command
            .args(["port-forward", "pod/p", &format!("{local}:80")])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        tokio::time::timeout(KUBECTL_LIMIT, lines.next_line())
            .await
            .expect("port-forward announces itself")
            .unwrap();
        let started = std::time::Instant::now();
        let mut socket = tokio::net::TcpStream::connect(("127.0.0.1", local))
            .await
            .unwrap();
        let received = tokio::time::timeout(Duration::from_secs(120), read_download(&mut socket))
            .await
            .expect("the download finishes within two minutes");
        assert_eq!(received, SIZE, "1.{minor}");
        let elapsed = started.elapsed();
        eprintln!(
            "kubectl 1.{minor} port-forward (debug build, every byte checked): 50 MiB in {:.2?} ({:.0} MiB/s; direct {:.2?})",
            elapsed,
            50.0 / elapsed.as_secs_f64(),
            direct_time
        );
        child.kill().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_of_a_command_that_cannot_start_is_an_internal_error() {
    let server = FakeApiServer::start(1).await;
    for (minor, kubectl) in required_kubectls() {
        let mut command = server.kubectl(&kubectl);
        command.args(["exec", "p", "--", "/nonexistent/program"]);
        let output = run(command, b"").await;
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "1.{minor}: {stderr}");
        assert!(
            stderr.contains("Internal error occurred: error executing command in container: "),
            "1.{minor}: {stderr:?}"
        );
    }
}

/// The SPDY streams a client opened on an upgraded connection, with their `streamtype`.
fn spdy_streams_opened(upgrade: &support::SeenUpgrade) -> Vec<(u32, String)> {
    let bytes = upgrade.client_bytes.lock().unwrap().clone();
    let mut buffer = bytes::BytesMut::from(&bytes[..]);
    let mut reader = skiff_stream::spdy::frame::FrameReader::new();
    let mut opened = Vec::new();
    while let Ok(Some(frame)) = reader.parse(&mut buffer) {
        if let skiff_stream::spdy::frame::Frame::SynStream {
            stream_id, headers, ..
        } = frame
        {
            let kind = headers
                .iter()
                .find(|(name, _)| name == "streamtype")
                .map(|(_, value)| value.clone())
                .unwrap_or_default();
            opened.push((stream_id, kind));
        }
    }
    opened
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cp_copies_a_directory_in_and_out_byte_for_byte() {
    // The stand-in "container" runs commands on this machine, so the pod's paths are
    // directories of this test.
    let server = FakeApiServer::start(1).await;
    let work = tempfile::tempdir().unwrap();
    let source = work.path().join("source");
    std::fs::create_dir_all(source.join("nested")).unwrap();
    let big: Vec<u8> = (0..700_000u32).map(|i| (i * 17 % 253) as u8).collect();
    std::fs::write(source.join("big.bin"), &big).unwrap();
    std::fs::write(source.join("nested/small.txt"), b"small\n").unwrap();
    for (minor, kubectl) in required_kubectls() {
        if minor != 27 && minor != 33 {
            continue;
        }
        let inside = work.path().join(format!("pod-{minor}"));
        let back = work.path().join(format!("back-{minor}"));
        let mut copy_in = server.kubectl(&kubectl);
        copy_in
            .arg("cp")
            .arg(&source)
            .arg(format!("p:{}", inside.display()))
            .current_dir(work.path());
        let output = run(copy_in, b"").await;
        assert!(
            output.status.success(),
            "1.{minor} cp in: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let mut copy_out = server.kubectl(&kubectl);
        copy_out
            .arg("cp")
            .arg(format!("p:{}", inside.display()))
            .arg(&back)
            .current_dir(work.path());
        let output = run(copy_out, b"").await;
        assert!(
            output.status.success(),
            "1.{minor} cp out: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(
            std::fs::read(back.join("big.bin")).unwrap() == big,
            "1.{minor}: big.bin differs"
        );
        assert_eq!(
            std::fs::read(back.join("nested/small.txt")).unwrap(),
            b"small\n",
            "1.{minor}"
        );
    }
}
