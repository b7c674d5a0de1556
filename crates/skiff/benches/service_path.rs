//! Pod → Service → pod against pod → pod, and the cluster DNS, under `skiff up --container-runtime
//! oci`: requests per second and p50/p99 latency of HTTP GETs from a client pod's network
//! namespace to an `httpd` backend pod's IP directly and to its Service's cluster IP (through the
//! kernel's nftables translation the proxy writes, or with `--proxy-mode userspace` the
//! user-space proxy), and A queries per second with p50/p99 for the Service's name against the
//! cluster DNS.
//!
//! Run with `cargo bench -p skiff --bench service_path` (or `cargo test -p skiff --bench
//! service_path` against the debug build) as root, with `kubectl` and `ip` on the PATH. Arguments:
//! `--requests N` (5,000 by default), `--backends N` (1 by default), `--quick` for 500 requests,
//! `--proxy-mode nftables|userspace` (the server's default, `nftables`, when not given).
//!
//! The load generator runs in this process: its threads join the client pod's network namespace
//! (`/run/skiff/netns/<pod uid>`) with `setns`, so the measured path is the pod's own: its veth,
//! the bridge, and for the Service the proxy on the host. Each HTTP request is a fresh HTTP/1.0
//! connection (busybox `httpd` keeps no connection alive), so the figures include the TCP
//! handshake, and for the Service path in user space the proxy's accept, its connect to the
//! backend and its two copies. Addresses come from 198.18.0.0/15 only and the `unreachable` guard routes are checked
//! before any packet is sent. The server is stopped however the run ends (also on Ctrl-C and
//! SIGTERM), and the bridge must be gone afterwards.

#[path = "../tests/support/mod.rs"]
mod support;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream, UdpSocket};
use std::os::fd::AsRawFd;
use std::process::{Command, ExitCode};
use std::sync::{Barrier, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{SigSet, Signal};
use support::json::{items, json_of, str_at};
use support::oci::TestNetwork;
use support::Skiff;

/// How long pods may take to run and answer.
const SETTLE: Duration = Duration::from_secs(120);
/// How often conditions are polled.
const POLL: Duration = Duration::from_millis(250);
/// The bound of one request or query; one that takes longer fails the run.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Concurrent clients of the second round of each path.
const CONCURRENCY: usize = 8;

/// The run's settings, from the command line.
struct Settings {
    requests: usize,
    backends: usize,
    proxy_mode: Option<String>,
}

fn settings() -> Result<Settings, String> {
    let mut settings = Settings {
        requests: 5_000,
        backends: 1,
        proxy_mode: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut number = |name: &str| -> Result<usize, String> {
            args.next()
                .and_then(|v| v.parse().ok())
                .filter(|n: &usize| *n > 0)
                .ok_or_else(|| format!("{name} wants a positive number"))
        };
        match arg.as_str() {
            "--quick" => settings.requests = 500,
            "--requests" => settings.requests = number("--requests")?,
            "--backends" => settings.backends = number("--backends")?,
            "--proxy-mode" => {
                settings.proxy_mode = Some(
                    args.next()
                        .filter(|m| m == "nftables" || m == "userspace")
                        .ok_or("--proxy-mode wants nftables or userspace")?,
                )
            }
            // `cargo bench` and `cargo test` pass their own flags; they mean nothing here.
            _ => {}
        }
    }
    Ok(settings)
}

/// Runs a host command; its stdout, or why it failed.
fn run(program: &str, args: &[&str]) -> Result<String, String> {
    let output = Command::new(program)
        .args(args)
        .output()
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "{program} {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

fn manifests(backends: usize) -> String {
    format!(
        "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: {backends}
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: httpd
        image: {httpd}:v1
        ports:
        - containerPort: 80
---
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  selector:
    app: web
  ports:
  - name: http
    port: 80
    targetPort: 80
---
{client}",
        httpd = support::images::HTTPD,
        client = support::manifests::client_pod()
    )
}

/// Waits for `probe` to give a value, or fails after `limit`.
fn wait<T>(what: &str, limit: Duration, mut probe: impl FnMut() -> Option<T>) -> Result<T, String> {
    let started = Instant::now();
    loop {
        if let Some(value) = probe() {
            return Ok(value);
        }
        if started.elapsed() > limit {
            return Err(format!("gave up waiting for {what} after {limit:?}"));
        }
        thread::sleep(POLL);
    }
}

/// Stops the server when SIGINT or SIGTERM arrives, then exits: the signals are blocked in
/// every thread started after this call and taken by one that waits for them. The server's
/// temporary directory `scratch` is removed once it has stopped.
fn stop_server_on_signal(server_pid: u32, scratch: std::path::PathBuf) {
    let mut signals = SigSet::empty();
    signals.add(Signal::SIGINT);
    signals.add(Signal::SIGTERM);
    if signals.thread_block().is_err() {
        return;
    }
    thread::spawn(move || {
        let Ok(signal) = signals.wait() else {
            return;
        };
        eprintln!("{signal:?}: stopping the server");
        if let Ok(pid) = i32::try_from(server_pid) {
            let pid = nix::unistd::Pid::from_raw(pid);
            let _ = nix::sys::signal::kill(pid, Signal::SIGTERM);
            // The server is our child: wait for it to end, its network and pods removed.
            let deadline = Instant::now() + Duration::from_secs(45);
            while Instant::now() < deadline {
                match nix::sys::wait::waitpid(pid, Some(nix::sys::wait::WaitPidFlag::WNOHANG)) {
                    Ok(nix::sys::wait::WaitStatus::StillAlive) => {
                        thread::sleep(Duration::from_millis(100))
                    }
                    _ => break,
                }
            }
        }
        let _ = std::fs::remove_dir_all(&scratch);
        std::process::exit(130);
    });
}

/// Moves the calling thread into the network namespace at `path`.
fn enter_network_namespace(path: &str) -> Result<(), String> {
    let file = std::fs::File::open(path).map_err(|e| format!("opening {path}: {e}"))?;
    // `setns(2)` on a network namespace file changes only this thread's namespace; the file
    // stays open for the call.
    #[allow(unsafe_code)]
    let result = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
    if result != 0 {
        return Err(format!(
            "setns into {path}: {}",
            std::io::Error::last_os_error()
        ));
    }
    Ok(())
}

/// One HTTP/1.0 GET of `/` on a fresh connection; fails unless the answer is 200 with the
/// backend's page.
fn http_get(target: SocketAddr) -> Result<(), String> {
    let mut stream = TcpStream::connect_timeout(&target, REQUEST_TIMEOUT)
        .map_err(|e| format!("connecting to {target}: {e}"))?;
    stream
        .set_read_timeout(Some(REQUEST_TIMEOUT))
        .and_then(|()| stream.set_write_timeout(Some(REQUEST_TIMEOUT)))
        .map_err(|e| e.to_string())?;
    stream
        .write_all(b"GET / HTTP/1.0\r\nHost: web\r\n\r\n")
        .map_err(|e| format!("sending to {target}: {e}"))?;
    let mut answer = Vec::with_capacity(512);
    stream
        .read_to_end(&mut answer)
        .map_err(|e| format!("reading from {target}: {e}"))?;
    let text = String::from_utf8_lossy(&answer);
    if !(text.starts_with("HTTP/1.0 200") || text.starts_with("HTTP/1.1 200"))
        || !text.contains("version=v1")
    {
        return Err(format!("{target} answered {text:?}"));
    }
    Ok(())
}

/// A DNS query for `name`'s A record with id `id`.
fn dns_query(name: &str, id: u16) -> Vec<u8> {
    let mut packet = Vec::with_capacity(64);
    packet.extend_from_slice(&id.to_be_bytes());
    // Recursion desired; one question.
    packet.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.trim_end_matches('.').split('.') {
        packet.push(u8::try_from(label.len()).unwrap_or(63));
        packet.extend_from_slice(label.as_bytes());
    }
    // The root; type A; class IN.
    packet.extend_from_slice(&[0, 0, 1, 0, 1]);
    packet
}

/// Sends one A query on `socket` (connected to the DNS server) and checks the answer: the same
/// id, NOERROR and at least one answer record.
fn dns_lookup(socket: &UdpSocket, name: &str, id: u16) -> Result<(), String> {
    socket
        .send(&dns_query(name, id))
        .map_err(|e| format!("sending the query: {e}"))?;
    let mut answer = [0u8; 1500];
    loop {
        let n = socket
            .recv(&mut answer)
            .map_err(|e| format!("waiting for the answer to {name}: {e}"))?;
        let Some(header) = answer.get(..12).filter(|_| n >= 12) else {
            return Err(format!("a {n}-byte answer to {name}"));
        };
        if u16::from_be_bytes([header[0], header[1]]) != id {
            // A late answer to an earlier query that timed out; not this one.
            continue;
        }
        let rcode = header[3] & 0x0f;
        let answers = u16::from_be_bytes([header[6], header[7]]);
        if rcode != 0 || answers == 0 {
            return Err(format!("{name}: rcode {rcode} with {answers} answers"));
        }
        return Ok(());
    }
}

/// What one round measured.
struct Round {
    path: String,
    clients: usize,
    count: usize,
    elapsed: Duration,
    latencies: Vec<Duration>,
}

impl Round {
    fn per_second(&self) -> f64 {
        self.count as f64 / self.elapsed.as_secs_f64()
    }

    fn percentile(&self, p: usize) -> Duration {
        let index = self.latencies.len().saturating_sub(1) * p / 100;
        self.latencies.get(index).copied().unwrap_or_default()
    }
}

/// Runs `count` operations spread over `clients` threads, each in the network namespace at
/// `namespace`; `operation(client, i)` gets a per-client state made by `open`.
fn measure<S>(
    path: &str,
    namespace: &str,
    clients: usize,
    count: usize,
    open: impl Fn() -> Result<S, String> + Sync,
    operation: impl Fn(&mut S, usize) -> Result<(), String> + Sync,
) -> Result<Round, String> {
    let latencies = Mutex::new(Vec::with_capacity(count));
    let start = Barrier::new(clients + 1);
    let started = Mutex::new(Instant::now());
    let failures: Mutex<Vec<String>> = Mutex::new(Vec::new());
    thread::scope(|scope| {
        for client in 0..clients {
            let (latencies, start, failures, open, operation) =
                (&latencies, &start, &failures, &open, &operation);
            scope.spawn(move || {
                let ready = enter_network_namespace(namespace).and_then(|()| open());
                start.wait();
                let mut state = match ready {
                    Ok(state) => state,
                    Err(e) => {
                        failures.lock().unwrap_or_else(|e| e.into_inner()).push(e);
                        return;
                    }
                };
                let mut mine = Vec::with_capacity(count / clients + 1);
                for i in (client..count).step_by(clients) {
                    let before = Instant::now();
                    if let Err(e) = operation(&mut state, i) {
                        failures.lock().unwrap_or_else(|e| e.into_inner()).push(e);
                        return;
                    }
                    mine.push(before.elapsed());
                }
                latencies
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .extend(mine);
            });
        }
        start.wait();
        *started.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
    });
    let elapsed = started
        .into_inner()
        .unwrap_or_else(|e| e.into_inner())
        .elapsed();
    let failures = failures.into_inner().unwrap_or_else(|e| e.into_inner());
    if let Some(first) = failures.first() {
        return Err(format!(
            "{path}: {} of {clients} clients failed; first: {first}",
            failures.len()
        ));
    }
    let mut latencies = latencies.into_inner().unwrap_or_else(|e| e.into_inner());
    latencies.sort();
    Ok(Round {
        path: path.to_string(),
        clients,
        count: latencies.len(),
        elapsed,
        latencies,
    })
}

fn http_round(
    path: &str,
    namespace: &str,
    clients: usize,
    count: usize,
    targets: &[SocketAddr],
) -> Result<Round, String> {
    measure(
        path,
        namespace,
        clients,
        count,
        || Ok(()),
        |(), i| http_get(targets[i % targets.len()]),
    )
}

fn dns_round(
    namespace: &str,
    clients: usize,
    count: usize,
    server: SocketAddr,
    name: &str,
) -> Result<Round, String> {
    measure(
        &format!("DNS A {name}"),
        namespace,
        clients,
        count,
        || {
            let socket = UdpSocket::bind("0.0.0.0:0").map_err(|e| e.to_string())?;
            socket.connect(server).map_err(|e| e.to_string())?;
            socket
                .set_read_timeout(Some(REQUEST_TIMEOUT))
                .map_err(|e| e.to_string())?;
            Ok(socket)
        },
        |socket, i| dns_lookup(socket, name, (i % 65_536) as u16),
    )
}

fn ms(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64() * 1000.0)
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn bench(settings: &Settings, network: &TestNetwork) -> Result<Vec<Round>, String> {
    let mut flags = network.flags_with_gateway_node_ip();
    if let Some(mode) = &settings.proxy_mode {
        flags.extend(["--proxy-mode".to_string(), mode.clone()]);
    }
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let skiff = Skiff::start_with_images(
        &flags,
        &[support::images::shell(), support::images::httpd("v1")],
    );
    let scratch = skiff
        .data_dir()
        .parent()
        .map(std::path::Path::to_path_buf)
        .ok_or("the server's data directory has no parent")?;
    stop_server_on_signal(skiff.pid(), scratch);
    let kubectl = skiff.kubectl();

    // The guard routes are in place before any packet goes to a pod or Service address.
    network.wait_for_guard_routes(SETTLE);

    skiff.write_file("app.yaml", &manifests(settings.backends));
    kubectl.ok(&["apply", "-f", "app.yaml"]);
    let backends: Vec<SocketAddr> = wait("the ready web pods", SETTLE, || {
        let list = json_of(&kubectl.ok(&["get", "pods", "-l", "app=web", "-o", "json"]));
        let ips: Vec<SocketAddr> = items(&list)
            .iter()
            .filter(|pod| {
                pod.pointer("/status/conditions")
                    .and_then(|c| c.as_array())
                    .is_some_and(|c| {
                        c.iter().any(|c| {
                            str_at(c, "/type") == "Ready" && str_at(c, "/status") == "True"
                        })
                    })
            })
            .filter_map(|pod| str_at(pod, "/status/podIP").parse::<Ipv4Addr>().ok())
            .map(|ip| SocketAddr::from((ip, 80)))
            .collect();
        (ips.len() == settings.backends).then_some(ips)
    })?;
    let client_uid = wait("the client pod to run", SETTLE, || {
        let pod = json_of(&kubectl.ok(&["get", "pod", "client", "-o", "json"]));
        (str_at(&pod, "/status/phase") == "Running").then(|| str_at(&pod, "/metadata/uid"))
    })?;
    let namespace = format!("/run/skiff/netns/{client_uid}");
    let service = json_of(&kubectl.ok(&["get", "service", "web", "-o", "json"]));
    let cluster_ip: Ipv4Addr = str_at(&service, "/spec/clusterIP")
        .parse()
        .map_err(|e| format!("the Service's cluster IP: {e}"))?;
    let service_target = [SocketAddr::from((cluster_ip, 80))];
    // The cluster DNS Service's address, the Service range's tenth.
    let dns_server = SocketAddr::from((network.service_ip(10), 53));
    let name = "web.default.svc.cluster.local";

    // Every path answers from the pod before the clock starts.
    wait("the Service to answer from the client pod", SETTLE, || {
        http_round("warm-up", &namespace, 1, 1, &service_target).ok()
    })?;
    wait(
        "the cluster DNS to answer the Service's name",
        SETTLE,
        || dns_round(&namespace, 1, 1, dns_server, name).ok(),
    )?;
    let warm_up = settings.requests / 10;
    http_round("warm-up", &namespace, CONCURRENCY, warm_up, &backends)?;
    http_round("warm-up", &namespace, CONCURRENCY, warm_up, &service_target)?;
    dns_round(&namespace, CONCURRENCY, warm_up, dns_server, name)?;

    let count = settings.requests;
    let mut rounds = Vec::new();
    eprintln!("load average before: {}", load_average());
    for clients in [1, CONCURRENCY] {
        rounds.push(http_round(
            "pod → pod (direct)",
            &namespace,
            clients,
            count,
            &backends,
        )?);
        rounds.push(http_round(
            "pod → Service → pod",
            &namespace,
            clients,
            count,
            &service_target,
        )?);
        rounds.push(dns_round(&namespace, clients, count, dns_server, name)?);
    }
    eprintln!("load average after: {}", load_average());
    drop(skiff);
    Ok(rounds)
}

fn print(rounds: &[Round]) {
    println!(
        "{:<42} {:>7} {:>8} {:>10} {:>9} {:>9} {:>9}",
        "path", "clients", "count", "per s", "p50 ms", "p99 ms", "max ms"
    );
    for round in rounds {
        println!(
            "{:<42} {:>7} {:>8} {:>10.0} {:>9} {:>9} {:>9}",
            round.path,
            round.clients,
            round.count,
            round.per_second(),
            ms(round.percentile(50)),
            ms(round.percentile(99)),
            ms(round.latencies.last().copied().unwrap_or_default()),
        );
    }
    for clients in [1, CONCURRENCY] {
        let of = |path: &str| {
            rounds
                .iter()
                .find(|r| r.clients == clients && r.path.starts_with(path))
                .map(Round::per_second)
        };
        if let (Some(direct), Some(service)) = (of("pod → pod"), of("pod → Service")) {
            println!(
                "{clients} client(s): the Service path runs at {:.2}× direct (goal ≥ 0.80)",
                service / direct
            );
        }
    }
}

fn main() -> ExitCode {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("this benchmark needs root (network namespaces, veths, routes)");
        return ExitCode::FAILURE;
    }
    let settings = match settings() {
        Ok(settings) => settings,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let network = TestNetwork::next("b");
    let outcome = bench(&settings, &network);
    // The server is stopped; its bridge must be gone with it.
    let bridge_left = run("ip", &["link", "show", "dev", &network.bridge]).is_ok();
    match outcome {
        Ok(rounds) => {
            print(&rounds);
            if bridge_left {
                eprintln!("the bridge {} outlived the server", network.bridge);
                return ExitCode::FAILURE;
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}
