//! API Priority and Fairness under a noisy client: `skiff up` with a small server concurrency
//! (`--max-requests-inflight=4 --max-mutating-requests-inflight=2`, six seats), a quiet
//! ServiceAccount (the bootstrap `service-accounts` FlowSchema, level `workload-low`) sending
//! one list of 20 ConfigMaps at a time, and a noisy ServiceAccount flooding lists of 1,000
//! ConfigMaps from many threads. The quiet client's requests per second and p50/p99 latency
//! are measured alone, then under the noise with the noisy account matched to a small level of
//! its own (`Reject`), then under the same noise with that FlowSchema deleted, so both accounts
//! share `workload-low`.
//!
//! Run with `cargo bench -p skiff --bench fairness` (release) or `cargo test -p skiff --bench
//! fairness` (debug); add `-- --quick` for a short run. Needs `kubectl` on the PATH. The server
//! is stopped however the run ends.

#[path = "../tests/support/mod.rs"]
mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use support::Skiff;

type TlsStream = rustls::StreamOwned<rustls::ClientConnection, std::net::TcpStream>;

const NAMESPACE: &str = "load";
const QUIET_NAMESPACE: &str = "quiet";

/// The noisy account's own level and FlowSchema.
const NOISY_FLOW: &str = "apiVersion: flowcontrol.apiserver.k8s.io/v1
kind: PriorityLevelConfiguration
metadata:
  name: noisy
spec:
  type: Limited
  limited:
    nominalConcurrencyShares: 5
    lendablePercent: 0
    limitResponse:
      type: Reject
---
apiVersion: flowcontrol.apiserver.k8s.io/v1
kind: FlowSchema
metadata:
  name: noisy
spec:
  priorityLevelConfiguration:
    name: noisy
  matchingPrecedence: 500
  distinguisherMethod:
    type: ByUser
  rules:
  - subjects:
    - kind: ServiceAccount
      serviceAccount:
        namespace: load
        name: noisy
    resourceRules:
    - verbs: [\"*\"]
      apiGroups: [\"*\"]
      resources: [\"*\"]
      namespaces: [\"*\"]
      clusterScope: true
";

/// One keep-alive HTTPS connection sending requests with a bearer token.
struct Connection {
    reader: BufReader<TlsStream>,
    address: String,
    token: String,
    /// The priority level the last answer named.
    priority_level: Option<String>,
}

impl Connection {
    fn open(skiff: &Skiff, token: &str) -> Result<Connection, String> {
        let (stream, address) = skiff.tls_stream()?;
        Ok(Connection {
            reader: BufReader::new(stream),
            address,
            token: token.to_string(),
            priority_level: None,
        })
    }

    /// Sends one request and reads its whole answer; the status code.
    fn send(&mut self, method: &str, path: &str, body: &str) -> Result<u16, String> {
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\nAccept: application/json\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            self.address,
            self.token,
            body.len()
        );
        let stream = self.reader.get_mut();
        stream
            .write_all(request.as_bytes())
            .and_then(|()| stream.flush())
            .map_err(|e| format!("cannot send: {e}"))?;
        let mut status_line = String::new();
        self.reader
            .read_line(&mut status_line)
            .map_err(|e| format!("cannot read: {e}"))?;
        let status = status_line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse::<u16>().ok())
            .ok_or_else(|| format!("no status in {status_line:?}"))?;
        let (mut length, mut chunked, mut close) = (0usize, false, false);
        loop {
            let mut line = String::new();
            self.reader
                .read_line(&mut line)
                .map_err(|e| format!("cannot read: {e}"))?;
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            let Some((name, value)) = line.split_once(':') else {
                continue;
            };
            let (name, value) = (name.trim().to_ascii_lowercase(), value.trim());
            match name.as_str() {
                "content-length" => length = value.parse().unwrap_or(0),
                "transfer-encoding" => chunked = value.eq_ignore_ascii_case("chunked"),
                "connection" => close = value.eq_ignore_ascii_case("close"),
                "x-kubernetes-pf-prioritylevel-uid" => {
                    self.priority_level = Some(value.to_string());
                }
                _ => {}
            }
        }
        if chunked {
            loop {
                let mut size = String::new();
                self.reader
                    .read_line(&mut size)
                    .map_err(|e| format!("cannot read: {e}"))?;
                let size = usize::from_str_radix(size.trim(), 16)
                    .map_err(|e| format!("bad chunk size {size:?}: {e}"))?;
                let mut chunk = vec![0u8; size + 2];
                self.reader
                    .read_exact(&mut chunk)
                    .map_err(|e| format!("cannot read: {e}"))?;
                if size == 0 {
                    break;
                }
            }
        } else {
            let mut body = vec![0u8; length];
            self.reader
                .read_exact(&mut body)
                .map_err(|e| format!("cannot read: {e}"))?;
        }
        if close {
            return Err("closed".into());
        }
        Ok(status)
    }
}

/// Figures of one phase of the quiet client.
struct QuietFigures {
    requests: usize,
    failed: usize,
    per_second: f64,
    p50: Duration,
    p99: Duration,
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((sorted.len() as f64) * p).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// The quiet client sends `count` lists one after another.
fn quiet_run(skiff: &Skiff, token: &str, count: usize) -> Result<QuietFigures, String> {
    let mut connection = Connection::open(skiff, token)?;
    let path = format!("/api/v1/namespaces/{QUIET_NAMESPACE}/configmaps");
    let mut latencies = Vec::with_capacity(count);
    let mut failed = 0;
    let started = Instant::now();
    for _ in 0..count {
        let sent = Instant::now();
        let status = match connection.send("GET", &path, "") {
            Ok(status) => status,
            Err(_) => {
                connection = Connection::open(skiff, token)?;
                connection.send("GET", &path, "")?
            }
        };
        latencies.push(sent.elapsed());
        if status != 200 {
            failed += 1;
        }
    }
    let elapsed = started.elapsed();
    latencies.sort_unstable();
    Ok(QuietFigures {
        requests: count,
        failed,
        per_second: count as f64 / elapsed.as_secs_f64(),
        p50: percentile(&latencies, 0.50),
        p99: percentile(&latencies, 0.99),
    })
}

/// Noisy threads list the large collection until told to stop; (served, refused).
fn with_noise<T>(
    skiff: &Skiff,
    token: &str,
    threads: usize,
    work: impl FnOnce() -> T,
) -> (T, u64, u64) {
    let stop = AtomicBool::new(false);
    let (served, refused) = (AtomicU64::new(0), AtomicU64::new(0));
    let path = format!("/api/v1/namespaces/{NAMESPACE}/configmaps");
    let result = std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                let mut connection = None;
                while !stop.load(Ordering::Relaxed) {
                    if connection.is_none() {
                        connection = Connection::open(skiff, token).ok();
                    }
                    let Some(open) = connection.as_mut() else {
                        continue;
                    };
                    match open.send("GET", &path, "") {
                        Ok(200) => served.fetch_add(1, Ordering::Relaxed),
                        Ok(_) => refused.fetch_add(1, Ordering::Relaxed),
                        Err(_) => {
                            connection = None;
                            0
                        }
                    };
                }
            });
        }
        // The flood is under way before measuring.
        support::wait_for("the noisy threads to start", support::DEADLINE, || {
            let sent = served.load(Ordering::Relaxed) + refused.load(Ordering::Relaxed);
            (sent >= threads as u64).then_some(())
        });
        let result = work();
        stop.store(true, Ordering::Relaxed);
        result
    });
    (
        result,
        served.load(Ordering::Relaxed),
        refused.load(Ordering::Relaxed),
    )
}

fn report(phase: &str, figures: &QuietFigures, noise: Option<(u64, u64)>) {
    let noise = match noise {
        Some((served, refused)) => format!(", noisy lists served {served}, refused 429 {refused}"),
        None => String::new(),
    };
    println!(
        "{phase:<34} quiet: {} lists, {} not 200, {:.1} req/s, p50 {:.1} ms, p99 {:.1} ms{noise}",
        figures.requests,
        figures.failed,
        figures.per_second,
        figures.p50.as_secs_f64() * 1000.0,
        figures.p99.as_secs_f64() * 1000.0,
    );
}

fn run(quick: bool) -> Result<(), String> {
    let (objects, quiet_requests, noisy_threads) = if quick {
        (200, 100, 8)
    } else {
        (1000, 400, 16)
    };
    let skiff = Skiff::start_with(&[
        "--no-node",
        "--max-requests-inflight=4",
        "--max-mutating-requests-inflight=2",
    ]);
    let kubectl = skiff.kubectl();
    for namespace in [NAMESPACE, QUIET_NAMESPACE] {
        kubectl.ok(&["create", "namespace", namespace]);
    }
    kubectl.ok(&["create", "serviceaccount", "noisy", "-n", NAMESPACE]);
    kubectl.ok(&["create", "serviceaccount", "quiet", "-n", NAMESPACE]);
    for namespace in [NAMESPACE, QUIET_NAMESPACE] {
        kubectl.ok(&[
            "create",
            "rolebinding",
            "load-view",
            "-n",
            namespace,
            "--clusterrole=view",
            "--serviceaccount=load:noisy",
            "--serviceaccount=load:quiet",
        ]);
    }
    let token = |account: &str| {
        kubectl
            .ok(&["create", "token", account, "-n", NAMESPACE, "--duration=2h"])
            .trim()
            .to_string()
    };
    let (noisy, quiet) = (token("noisy"), token("quiet"));
    let padding = "x".repeat(1024);
    for (namespace, count) in [(NAMESPACE, objects), (QUIET_NAMESPACE, 20)] {
        let items: Vec<String> = (0..count)
            .map(|i| {
                format!(
                    r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"cm-{i}","namespace":"{namespace}"}},"data":{{"pad":"{padding}"}}}}"#
                )
            })
            .collect();
        let list = format!(
            r#"{{"apiVersion":"v1","kind":"List","items":[{}]}}"#,
            items.join(",")
        );
        let file = skiff.write_file(&format!("{namespace}-configmaps.json"), &list);
        kubectl.ok(&["create", "-f", &file]);
    }
    let flow_file = skiff.write_file("noisy-flow.yaml", NOISY_FLOW);
    kubectl.ok(&["apply", "-f", &flow_file]);
    println!(
        "server concurrency 6; {objects} ConfigMaps listed by {noisy_threads} noisy threads; \
         the quiet client lists 20, {quiet_requests} times in a row"
    );

    let alone = quiet_run(&skiff, &quiet, quiet_requests)?;
    report("no noise", &alone, None);

    let (isolated, served, refused) = with_noise(&skiff, &noisy, noisy_threads, || {
        quiet_run(&skiff, &quiet, quiet_requests)
    });
    report(
        "noise in its own level (Reject)",
        &isolated?,
        Some((served, refused)),
    );

    kubectl.ok(&["delete", "flowschema", "noisy"]);
    // The server reads the change from its watch; a noisy answer names the level once it has.
    let shared_level = kubectl
        .ok(&[
            "get",
            "prioritylevelconfiguration",
            "workload-low",
            "-o",
            "jsonpath={.metadata.uid}",
        ])
        .trim()
        .to_string();
    let mut probe = Connection::open(&skiff, &noisy)?;
    let probe_path = format!("/api/v1/namespaces/{NAMESPACE}/configmaps?limit=1");
    support::wait_for(
        "the noisy account to share workload-low",
        support::DEADLINE,
        || {
            probe.send("GET", &probe_path, "").ok()?;
            (probe.priority_level.as_deref() == Some(shared_level.as_str())).then_some(())
        },
    );
    let (shared, served, refused) = with_noise(&skiff, &noisy, noisy_threads, || {
        quiet_run(&skiff, &quiet, quiet_requests)
    });
    report(
        "noise sharing workload-low (Queue)",
        &shared?,
        Some((served, refused)),
    );
    Ok(())
}

fn main() -> ExitCode {
    let quick = std::env::args().any(|a| a == "--quick");
    match run(quick) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("fairness bench failed: {error}");
            ExitCode::FAILURE
        }
    }
}
