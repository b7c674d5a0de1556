//! `skiff demo-server` as the node agent runs it: a process that announces its port, answers
//! HTTP, and ends on signals the way its environment says.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Everything here is local; anything slower than this is a hang.
const BOUND: Duration = Duration::from_secs(20);

/// A running demo server, killed if a test ends early so no process outlives the test.
struct Demo {
    child: Child,
    address: SocketAddr,
    lines: mpsc::Receiver<String>,
}

impl Demo {
    fn start(env: &[(&str, &str)]) -> Demo {
        let mut command = Command::new(env!("CARGO_BIN_EXE_skiff"));
        command
            .arg("demo-server")
            .env_clear()
            .env("SKIFF_POD_IP", "127.0.0.1")
            .env("SKIFF_DEMO_PORT", "0")
            .env("SKIFF_DEMO_VERSION", "v9")
            .env("SKIFF_POD_NAME", "demo-0")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (key, value) in env {
            command.env(key, value);
        }
        let mut child = command.spawn().expect("start skiff demo-server");
        let stdout = child.stdout.take().expect("stdout");
        let (sender, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        let mut demo = Demo {
            child,
            address: SocketAddr::from(([127, 0, 0, 1], 0)),
            lines,
        };
        let first = demo.next_line();
        let address = first
            .strip_prefix("listening on ")
            .and_then(|rest| rest.split(' ').next())
            .and_then(|address| address.parse().ok())
            .unwrap_or_else(|| panic!("unexpected first line {first:?}"));
        assert_eq!(
            first,
            format!("listening on {address} version=v9 pod=demo-0")
        );
        demo.address = address;
        demo
    }

    fn next_line(&self) -> String {
        self.lines
            .recv_timeout(BOUND)
            .expect("a line on stdout in time")
    }

    /// Reads stdout until `line` appears.
    fn wait_for_line(&self, line: &str) {
        loop {
            if self.next_line() == line {
                return;
            }
        }
    }

    fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{name} failed");
    }

    fn wait_exit(&mut self) -> ExitStatus {
        let deadline = Instant::now() + BOUND;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(Instant::now() < deadline, "the demo server did not exit");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn get(&self, path: &str) -> (u16, String) {
        get(self.address, path)
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// One HTTP/1.1 GET on a fresh connection: (status, body).
fn get(address: SocketAddr, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect_timeout(&address, BOUND).expect("connect");
    stream.set_read_timeout(Some(BOUND)).expect("timeout");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: demo\r\nConnection: close\r\n\r\n"
    )
    .expect("write request");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read response");
    let (head, body) = response.split_once("\r\n\r\n").expect("head and body");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status code");
    (status, body.to_string())
}

#[test]
fn serves_version_and_pod_and_exits_zero_on_sigterm() {
    let mut demo = Demo::start(&[]);
    assert_eq!(demo.get("/"), (200, "version=v9 pod=demo-0\n".to_string()));
    assert_eq!(demo.get("/healthz").0, 200);
    assert_eq!(demo.get("/readyz").0, 200);
    demo.get("/log?msg=hello%20from%20the%20test");
    demo.wait_for_line("hello from the test");
    demo.signal("TERM");
    let status = demo.wait_exit();
    assert_eq!(status.code(), Some(0), "{status:?}");
}

#[test]
fn shutdown_delay_keeps_serving_after_sigterm() {
    let mut demo = Demo::start(&[("DEMO_SHUTDOWN_DELAY", "1s")]);
    let signalled = Instant::now();
    demo.signal("TERM");
    demo.wait_for_line("SIGTERM received");
    assert_eq!(demo.get("/"), (200, "version=v9 pod=demo-0\n".to_string()));
    let status = demo.wait_exit();
    assert_eq!(status.code(), Some(0), "{status:?}");
    let took = signalled.elapsed();
    assert!(took >= Duration::from_secs(1), "exited after {took:?}");
}

#[test]
fn ignoring_sigterm_keeps_serving_until_sigkill() {
    let mut demo = Demo::start(&[("DEMO_IGNORE_SIGTERM", "true")]);
    demo.signal("TERM");
    demo.wait_for_line("ignoring SIGTERM");
    assert_eq!(demo.get("/").0, 200);
    assert!(
        demo.child.try_wait().expect("wait").is_none(),
        "still running"
    );
    demo.signal("KILL");
    let status = demo.wait_exit();
    assert_eq!(status.signal(), Some(9), "{status:?}");
}

#[test]
fn scripted_exit_ends_with_its_code() {
    let mut demo = Demo::start(&[("DEMO_EXIT_AFTER", "300ms"), ("DEMO_EXIT_CODE", "7")]);
    let status = demo.wait_exit();
    assert_eq!(status.code(), Some(7), "{status:?}");
}

#[test]
fn bad_configuration_fails_before_listening() {
    let output = Command::new(env!("CARGO_BIN_EXE_skiff"))
        .arg("demo-server")
        .env_clear()
        .env("SKIFF_DEMO_PORT", "eighty")
        .output()
        .expect("run");
    assert_eq!(output.status.code(), Some(2));
    assert!(output.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("invalid SKIFF_DEMO_PORT=\"eighty\""),
        "{stderr}"
    );
}
