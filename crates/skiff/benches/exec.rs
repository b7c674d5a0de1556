//! `kubectl exec` and `kubectl port-forward` against `skiff up`: the round trip of
//! `kubectl exec POD -- true` (p50 and p99, kubectl's own start included, as a user sees it),
//! and port-forward throughput against a direct connection to the same pod address.
//!
//! Run with `cargo bench -p skiff --bench exec` (Linux, as root, `kubectl` on the PATH); add
//! `-- --quick` for a small sanity run. The download's source listens on the pod's own loopback
//! address (the pod only sleeps), so both paths end at the same socket: the difference is
//! kubectl, the API server's upgrade, the SPDY or WebSocket framing and the node's forwarding.
//! The server and every process it started are stopped however the run ends.

use std::io::{Read, Write};
use std::net::{IpAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// The pod the commands run in.
const SHELL_POD: &str = "apiVersion: v1
kind: Pod
metadata:
  name: bench-shell
spec:
  containers:
  - name: sh
    image: 127.0.0.1:9/skiff-test/shell:1.36
    command: [\"sh\", \"-c\", \"sleep 3600\"]
";

/// The server under test, stopped (SIGTERM, then SIGKILL) when dropped.
struct Server {
    child: Child,
    _dir: tempfile::TempDir,
    kubeconfig: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(pid) = i32::try_from(self.child.id()) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
        let deadline = Instant::now() + Duration::from_secs(45);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_server() -> Result<Server, String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| e.to_string())?
        .port();
    let data = dir.path().join("data");
    // The test kit's shell image, imported at start: the pod the commands run in.
    let images = data.join("images");
    std::fs::create_dir_all(&images).map_err(|e| e.to_string())?;
    let shell = skiff_testkit::images::shell();
    let file_name = shell
        .archive
        .file_name()
        .ok_or("the shell image's archive has no file name")?;
    std::fs::copy(&shell.archive, images.join(file_name)).map_err(|e| e.to_string())?;
    let log = std::fs::File::create(dir.path().join("skiff.log")).map_err(|e| e.to_string())?;
    let child = Command::new(env!("CARGO_BIN_EXE_skiff"))
        .args(["up", "--data-dir"])
        .arg(&data)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        // Pods as processes, as measured (`oci` is the default as root).
        .args(["--container-runtime", "process"])
        .stdin(Stdio::null())
        .stdout(log.try_clone().map_err(|e| e.to_string())?)
        .stderr(log)
        .spawn()
        .map_err(|e| format!("starting skiff: {e}"))?;
    let server = Server {
        child,
        kubeconfig: data.join("kubeconfig"),
        _dir: dir,
    };
    wait("the server to be ready", Duration::from_secs(60), || {
        server.kubeconfig.exists() && kubectl(&server.kubeconfig, &["get", "ns"]).is_ok()
    })?;
    Ok(server)
}

fn kubectl(kubeconfig: &Path, args: &[&str]) -> Result<String, String> {
    let output = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .env_remove("KUBECONFIG")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("running kubectl: {e}"))?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&output.stderr).into_owned())
    }
}

fn wait(what: &str, limit: Duration, mut done: impl FnMut() -> bool) -> Result<(), String> {
    let started = Instant::now();
    while !done() {
        if started.elapsed() > limit {
            return Err(format!("gave up waiting for {what} after {limit:?}"));
        }
        thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}

fn percentile(sorted: &[Duration], p: usize) -> Duration {
    let index = (sorted.len().saturating_sub(1) * p) / 100;
    sorted.get(index).copied().unwrap_or_default()
}

/// Serves `size` bytes to every connection on `ip:port`, from a thread per connection.
fn serve_bytes(ip: IpAddr, size: u64) -> Result<u16, String> {
    let listener = TcpListener::bind((ip, 0)).map_err(|e| format!("binding {ip}: {e}"))?;
    let port = listener.local_addr().map_err(|e| e.to_string())?.port();
    thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            thread::spawn(move || {
                let mut stream = stream;
                let chunk = vec![7u8; 256 * 1024];
                let mut left = size;
                while left > 0 {
                    let n = left.min(chunk.len() as u64) as usize;
                    if stream.write_all(&chunk[..n]).is_err() {
                        return;
                    }
                    left -= n as u64;
                }
            });
        }
    });
    Ok(port)
}

/// Reads one connection to its end; the bytes and the time it took.
fn download(port: u16, ip: &str) -> Result<(u64, Duration), String> {
    let started = Instant::now();
    let mut stream = TcpStream::connect((ip, port)).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .map_err(|e| e.to_string())?;
    let mut buffer = vec![0u8; 256 * 1024];
    let mut total = 0u64;
    loop {
        match stream.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => total += n as u64,
            Err(e) => return Err(format!("reading: {e}")),
        }
    }
    Ok((total, started.elapsed()))
}

fn mib_per_second(bytes: u64, took: Duration) -> f64 {
    bytes as f64 / (1024.0 * 1024.0) / took.as_secs_f64().max(f64::EPSILON)
}

fn run(quick: bool) -> Result<(), String> {
    let server = start_server()?;
    let config = &server.kubeconfig;
    let manifest = server._dir.path().join("shell.yaml");
    std::fs::write(&manifest, SHELL_POD).map_err(|e| e.to_string())?;
    kubectl(config, &["apply", "-f", &manifest.to_string_lossy()])?;
    wait("the pod to run", Duration::from_secs(60), || {
        kubectl(
            config,
            &[
                "get",
                "pod",
                "bench-shell",
                "-o",
                "jsonpath={.status.phase}",
            ],
        )
        .is_ok_and(|phase| phase == "Running")
    })?;

    let rounds = if quick { 10 } else { 100 };
    let mut times = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let started = Instant::now();
        kubectl(config, &["exec", "bench-shell", "--", "true"])?;
        times.push(started.elapsed());
    }
    times.sort();
    println!(
        "exec -- true, {rounds} rounds: p50 {:.1} ms, p99 {:.1} ms",
        percentile(&times, 50).as_secs_f64() * 1000.0,
        percentile(&times, 99).as_secs_f64() * 1000.0
    );

    let pod_ip: IpAddr = kubectl(
        config,
        &[
            "get",
            "pod",
            "bench-shell",
            "-o",
            "jsonpath={.status.podIP}",
        ],
    )?
    .parse()
    .map_err(|e| format!("the pod's IP: {e}"))?;
    let size: u64 = if quick { 64 << 20 } else { 512 << 20 };
    let port = serve_bytes(pod_ip, size)?;
    let (bytes, took) = download(port, &pod_ip.to_string())?;
    println!(
        "direct to {pod_ip}:{port}: {} MiB in {:.2} s, {:.0} MiB/s",
        bytes >> 20,
        took.as_secs_f64(),
        mib_per_second(bytes, took)
    );
    let local = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| e.to_string())?
        .port();
    let mut forward = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(config)
        .args([
            "port-forward",
            "pod/bench-shell",
            &format!("{local}:{port}"),
        ])
        .env_remove("KUBECONFIG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("kubectl port-forward: {e}"))?;
    // kubectl prints "Forwarding from ..." once it listens; a probe connection would start a
    // download of its own.
    let mut first_line = String::new();
    let listening = match forward.stdout.take() {
        Some(stdout) => {
            let mut stdout = std::io::BufReader::new(stdout);
            let read = std::io::BufRead::read_line(&mut stdout, &mut first_line);
            // kubectl prints a line per connection; a closed pipe would kill it.
            thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
            read.map_err(|e| e.to_string()).and_then(|_| {
                match first_line.starts_with("Forwarding from") {
                    true => Ok(()),
                    false => Err(format!("kubectl port-forward said {first_line:?}")),
                }
            })
        }
        None => Err("kubectl port-forward's output is not piped".to_string()),
    };
    let measured = listening.and_then(|()| download(local, "127.0.0.1"));
    let _ = forward.kill();
    let _ = forward.wait();
    let (forwarded, took) = measured?;
    if forwarded != size {
        return Err(format!("port-forward carried {forwarded} of {size} bytes"));
    }
    println!(
        "kubectl port-forward: {} MiB in {:.2} s, {:.0} MiB/s",
        forwarded >> 20,
        took.as_secs_f64(),
        mib_per_second(forwarded, took)
    );
    let _ = kubectl(
        config,
        &["delete", "pod", "bench-shell", "--grace-period=1"],
    );
    Ok(())
}

fn main() -> ExitCode {
    let quick =
        std::env::args().any(|a| a == "--quick") || std::env::var_os("SKIFF_BENCH_QUICK").is_some();
    match run(quick) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("exec bench failed: {error}");
            ExitCode::FAILURE
        }
    }
}
