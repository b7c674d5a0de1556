//! A client sending HTTP requests to the demo server through one address (a node port, a
//! cluster IP) on a new connection each, bounded in count and time, recording every outcome,
//! so zero-downtime tests can check that not one request failed.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use super::http::{http_get_at, parse_answer, Answer};
use super::{wait_for, Kubectl, DEADLINE};

/// The most requests the client sends, and the longest it runs: the loop is bounded even if
/// the test body hangs.
const MAX_REQUESTS: usize = 40_000;
const MAX_CLIENT_TIME: Duration = Duration::from_secs(150);
/// The pause between two requests: about 200 requests a second, enough to hit every window of
/// a rollout without starving the server on a small machine.
const REQUEST_PACE: Duration = Duration::from_millis(5);
/// How long one request may take before it counts as failed.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// What one request got.
#[derive(Clone, Debug)]
pub struct Sample {
    /// When the request was sent.
    pub started: Instant,
    /// The answer, or why there was none.
    pub outcome: Result<Answer, String>,
}

/// One GET / through `address` on a new connection: the demo server's answer, or why not.
pub fn request(address: SocketAddr) -> Result<Answer, String> {
    match http_get_at(address, "/", REQUEST_TIMEOUT, REQUEST_TIMEOUT)? {
        (200, body) => parse_answer(&body).ok_or_else(|| format!("unexpected body {body:?}")),
        (status, body) => Err(format!("status {status}: {body:?}")),
    }
}

/// `127.0.0.1:<nodePort>` of Service `web` in `namespace` (the kubeconfig's own when `None`),
/// once a request through it is answered, failing after `timeout`.
pub fn answering_node_port(
    kubectl: &Kubectl,
    namespace: Option<&str>,
    timeout: Duration,
) -> SocketAddr {
    let mut args = vec![
        "get",
        "svc",
        "web",
        "-o",
        "jsonpath={.spec.ports[0].nodePort}",
    ];
    args.extend(
        namespace
            .map(|namespace| ["-n", namespace])
            .into_iter()
            .flatten(),
    );
    let node_port = kubectl.ok(&args);
    let node_port: u16 = node_port
        .trim()
        .parse()
        .unwrap_or_else(|e| panic!("node port {node_port:?}: {e}"));
    let address = SocketAddr::from(([127, 0, 0, 1], node_port));
    wait_for("the node port to answer", timeout, || request(address).ok());
    address
}

/// A client thread sending requests until stopped (or its bounds run out).
pub struct Client {
    samples: Arc<Mutex<Vec<Sample>>>,
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Client {
    /// Starts sending requests to `address`.
    pub fn start(address: SocketAddr) -> Client {
        let samples = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let samples = samples.clone();
            let stop = stop.clone();
            thread::spawn(move || {
                let begun = Instant::now();
                for _ in 0..MAX_REQUESTS {
                    if stop.load(Ordering::SeqCst) || begun.elapsed() > MAX_CLIENT_TIME {
                        break;
                    }
                    let started = Instant::now();
                    let outcome = request(address);
                    samples
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push(Sample { started, outcome });
                    thread::sleep(REQUEST_PACE);
                }
            })
        };
        Client {
            samples,
            stop,
            thread: Some(thread),
        }
    }

    /// Every sample so far.
    pub fn samples(&self) -> Vec<Sample> {
        self.samples
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The answers to requests started at or after `since`, once at least `count` exist.
    pub fn answers_since(&self, since: Instant, count: usize) -> Vec<Answer> {
        wait_for(
            &format!("{count} answers after a point in time"),
            DEADLINE,
            || {
                let answers: Vec<Answer> = self
                    .samples()
                    .into_iter()
                    .filter(|s| s.started >= since)
                    .filter_map(|s| s.outcome.ok())
                    .collect();
                (answers.len() >= count).then_some(answers)
            },
        )
    }

    /// Stops the client and returns every sample.
    pub fn finish(mut self) -> Vec<Sample> {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        self.samples()
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Fails with every failed request, if there is any.
pub fn assert_no_failures(namespace: &str, samples: &[Sample]) {
    let failures: Vec<String> = samples
        .iter()
        .filter_map(|s| s.outcome.as_ref().err().cloned())
        .collect();
    assert!(
        samples.len() > 100,
        "{namespace}: the client sent only {} requests",
        samples.len()
    );
    assert!(
        failures.is_empty(),
        "{namespace}: {} of {} requests failed, first ones: {:?}",
        failures.len(),
        samples.len(),
        &failures[..failures.len().min(10)]
    );
}
