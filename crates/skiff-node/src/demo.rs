//! The demo HTTP server behind the built-in images (`skiff/demo`, `nginx`, `httpd`,
//! `ikubernetes/myapp`): a small, scriptable workload for rollouts, probes, autoscaling and
//! termination, run as its own process by `skiff demo-server`.
//!
//! Endpoints:
//! - `GET /` answers `200 text/plain` with exactly `version=<version> pod=<pod>\n`, so a client
//!   can tell which version and which replica served it.
//! - `GET /healthz`: `200 ok`, or `500` once `DEMO_FAIL_HEALTH_AFTER` has passed.
//! - `GET /readyz`: `503` until `DEMO_READY_AFTER` has passed, then `200 ok`.
//! - `GET /burn?ms=N` keeps one CPU busy for N milliseconds (default 100, at most 60000) before
//!   answering: load for autoscaling.
//! - `GET /log?msg=TEXT` writes TEXT as one line to stdout, for log tests.
//!
//! Configuration comes from the environment (see [`DemoConfig::from_lookup`]). Durations are
//! Go-style (`500ms`, `5s`, `2m`) or bare seconds. On SIGTERM the server keeps serving for
//! `DEMO_SHUTDOWN_DELAY`, then stops accepting, finishes the requests in flight and exits 0;
//! with `DEMO_IGNORE_SIGTERM=true` it keeps serving until SIGKILL. Its only output is a line when
//! it starts (`listening on IP:PORT version=V pod=P`, with the port actually bound, so port 0
//! works) and lines when it stops.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;

use crate::simulated::duration::parse_go_duration;

/// The port the demo server listens on unless `SKIFF_DEMO_PORT` says otherwise: 80, as the
/// web servers it stands in for in tests.
pub const DEMO_PORT: u16 = 80;

/// The longest `/burn` accepted: one request must not pin a CPU for longer than a minute.
pub const MAX_BURN: Duration = Duration::from_secs(60);

/// How long `/burn` burns when `ms` is not given.
pub const DEFAULT_BURN: Duration = Duration::from_millis(100);

/// What `DEMO_EXIT_CODE` defaults to: a scripted exit is mostly a crash to watch.
pub const DEFAULT_EXIT_CODE: u8 = 1;

/// How the demo server behaves: all of it comes from the container's environment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DemoConfig {
    /// Reported by `GET /`; the image tag (`SKIFF_DEMO_VERSION`).
    pub version: String,
    /// Reported by `GET /`; the pod's name (`SKIFF_POD_NAME`, else `HOSTNAME`).
    pub pod_name: String,
    /// Where to listen (`SKIFF_POD_IP`, `SKIFF_DEMO_PORT`): each pod binds its own IP.
    pub listen: SocketAddr,
    /// `/readyz` fails until this long after start (`DEMO_READY_AFTER`).
    pub ready_after: Duration,
    /// `/healthz` fails from this long after start (`DEMO_FAIL_HEALTH_AFTER`).
    pub fail_health_after: Option<Duration>,
    /// The process exits on its own this long after start (`DEMO_EXIT_AFTER`).
    pub exit_after: Option<Duration>,
    /// The code of that exit (`DEMO_EXIT_CODE`).
    pub exit_code: u8,
    /// SIGTERM is logged and otherwise ignored (`DEMO_IGNORE_SIGTERM=true`).
    pub ignore_sigterm: bool,
    /// How long to keep serving after SIGTERM before draining (`DEMO_SHUTDOWN_DELAY`).
    pub shutdown_delay: Duration,
}

/// Why the demo server could not start or keep running.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// An environment variable holds something the server cannot use.
    #[error("invalid {name}={value:?}: {reason}")]
    InvalidSetting {
        /// The variable.
        name: &'static str,
        /// Its value.
        value: String,
        /// What was expected.
        reason: &'static str,
    },
    /// Binding, serving or the signal handlers failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The failure.
        #[source]
        source: std::io::Error,
    },
}

impl DemoConfig {
    /// Reads the configuration from the process environment.
    pub fn from_env() -> Result<Self, DemoError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the configuration through `lookup` (an environment); empty values count as unset.
    ///
    /// Defaults: version = the `skiff` version, pod = `unknown`, address `0.0.0.0:80`, ready at
    /// once, always healthy, no scripted exit (code 1 if `DEMO_EXIT_AFTER` is set alone),
    /// SIGTERM honoured without delay.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, DemoError> {
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let duration = |name: &'static str| -> Result<Option<Duration>, DemoError> {
            get(name)
                .map(|value| {
                    parse_demo_duration(&value).ok_or(DemoError::InvalidSetting {
                        name,
                        value,
                        reason: "expected a duration such as 500ms, 5s or 2m",
                    })
                })
                .transpose()
        };
        let ip = match get("SKIFF_POD_IP") {
            Some(value) => {
                value
                    .trim()
                    .parse::<IpAddr>()
                    .map_err(|_| DemoError::InvalidSetting {
                        name: "SKIFF_POD_IP",
                        value,
                        reason: "expected an IP address",
                    })?
            }
            None => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        };
        let port = match get("SKIFF_DEMO_PORT") {
            Some(value) => value
                .trim()
                .parse::<u16>()
                .map_err(|_| DemoError::InvalidSetting {
                    name: "SKIFF_DEMO_PORT",
                    value,
                    reason: "expected a port number from 0 to 65535",
                })?,
            None => DEMO_PORT,
        };
        let exit_code = match get("DEMO_EXIT_CODE") {
            Some(value) => value
                .trim()
                .parse::<u8>()
                .map_err(|_| DemoError::InvalidSetting {
                    name: "DEMO_EXIT_CODE",
                    value,
                    reason: "expected an exit code from 0 to 255",
                })?,
            None => DEFAULT_EXIT_CODE,
        };
        let ignore_sigterm = match get("DEMO_IGNORE_SIGTERM") {
            Some(value) => parse_bool(&value).ok_or(DemoError::InvalidSetting {
                name: "DEMO_IGNORE_SIGTERM",
                value,
                reason: "expected true or false",
            })?,
            None => false,
        };
        Ok(DemoConfig {
            version: get("SKIFF_DEMO_VERSION")
                .unwrap_or_else(|| env!("CARGO_PKG_VERSION").to_string()),
            pod_name: get("SKIFF_POD_NAME")
                .or_else(|| get("HOSTNAME"))
                .unwrap_or_else(|| "unknown".to_string()),
            listen: SocketAddr::new(ip, port),
            ready_after: duration("DEMO_READY_AFTER")?.unwrap_or(Duration::ZERO),
            fail_health_after: duration("DEMO_FAIL_HEALTH_AFTER")?,
            exit_after: duration("DEMO_EXIT_AFTER")?,
            exit_code,
            ignore_sigterm,
            shutdown_delay: duration("DEMO_SHUTDOWN_DELAY")?.unwrap_or(Duration::ZERO),
        })
    }
}

/// Go-style durations, plus bare numbers as seconds since that is what people type.
fn parse_demo_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    match text.parse::<u64>() {
        Ok(seconds) => Some(Duration::from_secs(seconds)),
        Err(_) => parse_go_duration(text),
    }
}

/// The spellings Go's `strconv.ParseBool` accepts.
fn parse_bool(text: &str) -> Option<bool> {
    match text.trim() {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

/// What the handlers share: the configuration and the moment the server started.
struct Shared {
    config: DemoConfig,
    started: Instant,
    /// `/burn` requests being served right now: lets tests stop the server mid-request.
    burning: AtomicUsize,
}

/// Serves on `listener` until `shutdown` resolves (then keeps serving for the configured
/// shutdown delay and drains) or the scripted exit fires. Returns the exit code the process
/// should end with: 0 after a shutdown, the configured code after a scripted exit.
pub async fn serve(
    listener: tokio::net::TcpListener,
    config: DemoConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<u8, DemoError> {
    let shared = Arc::new(Shared {
        config,
        started: Instant::now(),
        burning: AtomicUsize::new(0),
    });
    serve_shared(listener, shared, shutdown).await
}

async fn serve_shared(
    listener: tokio::net::TcpListener,
    shared: Arc<Shared>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<u8, DemoError> {
    let started = shared.started;
    let shutdown_delay = shared.config.shutdown_delay;
    let exit_after = shared.config.exit_after;
    let exit_code = shared.config.exit_code;
    let app = Router::new()
        .route("/", get(root))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/burn", get(burn))
        .route("/log", get(log))
        .with_state(shared);
    let draining = async move {
        shutdown.await;
        if !shutdown_delay.is_zero() {
            say(&format!(
                "shutting down in {}ms; still serving",
                shutdown_delay.as_millis()
            ));
            tokio::time::sleep(shutdown_delay).await;
        }
        say("draining requests in flight");
    };
    let server = axum::serve(listener, app).with_graceful_shutdown(draining);
    let scripted_exit = async move {
        match exit_after {
            Some(after) => tokio::time::sleep_until((started + after).into()).await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        served = server => {
            served.map_err(|source| DemoError::Io { context: "serving".to_string(), source })?;
            say("stopped");
            Ok(0)
        }
        () = scripted_exit => {
            say(&format!("exiting with code {exit_code} as DEMO_EXIT_AFTER asks"));
            Ok(exit_code)
        }
    }
}

/// Runs the server as a process does: binds the configured address, announces it, and treats
/// SIGTERM (and SIGINT) as the request to stop, unless told to ignore SIGTERM.
pub async fn run(config: DemoConfig) -> Result<u8, DemoError> {
    // Handlers go in before anything else, so a SIGTERM arriving right after the start line
    // never meets the default action (which would end the process unlike any configuration).
    let stop = stop_signal(config.ignore_sigterm)?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|source| DemoError::Io {
            context: format!("cannot listen on {}", config.listen),
            source,
        })?;
    let bound = listener.local_addr().map_err(|source| DemoError::Io {
        context: "reading the bound address".to_string(),
        source,
    })?;
    say(&format!(
        "listening on {bound} version={} pod={}",
        config.version, config.pod_name
    ));
    serve(listener, config, stop).await
}

/// The `skiff demo-server` entry point: a single-threaded runtime (hundreds of replicas may
/// run on one machine) running [`run`] with the environment's configuration.
pub fn main_from_env() -> u8 {
    let config = match DemoConfig::from_env() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("demo-server: {e}");
            return 2;
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("demo-server: cannot start the async runtime: {e}");
            return 1;
        }
    };
    match runtime.block_on(run(config)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("demo-server: {e}");
            1
        }
    }
}

/// A future that resolves on the first stop request: SIGTERM (unless ignored) or SIGINT.
fn stop_signal(ignore_sigterm: bool) -> Result<impl Future<Output = ()> + Send, DemoError> {
    use tokio::signal::unix::{signal, SignalKind};
    let install = |kind: SignalKind, name: &str| {
        signal(kind).map_err(|source| DemoError::Io {
            context: format!("cannot handle {name}"),
            source,
        })
    };
    let mut terminate = install(SignalKind::terminate(), "SIGTERM")?;
    let mut interrupt = install(SignalKind::interrupt(), "SIGINT")?;
    Ok(async move {
        loop {
            tokio::select! {
                _ = terminate.recv() => {
                    if ignore_sigterm {
                        say("ignoring SIGTERM");
                        continue;
                    }
                    say("SIGTERM received");
                    return;
                }
                _ = interrupt.recv() => {
                    say("SIGINT received");
                    return;
                }
            }
        }
    })
}

/// One line to stdout: the container's log.
fn say(line: &str) {
    println!("{line}");
}

async fn root(State(shared): State<Arc<Shared>>) -> String {
    format!(
        "version={} pod={}\n",
        shared.config.version, shared.config.pod_name
    )
}

async fn healthz(State(shared): State<Arc<Shared>>) -> (StatusCode, &'static str) {
    match shared.config.fail_health_after {
        Some(after) if shared.started.elapsed() >= after => {
            (StatusCode::INTERNAL_SERVER_ERROR, "unhealthy\n")
        }
        _ => (StatusCode::OK, "ok\n"),
    }
}

async fn readyz(State(shared): State<Arc<Shared>>) -> (StatusCode, &'static str) {
    if shared.started.elapsed() >= shared.config.ready_after {
        (StatusCode::OK, "ok\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
    }
}

async fn burn(
    State(shared): State<Arc<Shared>>,
    Query(query): Query<HashMap<String, String>>,
) -> (StatusCode, String) {
    let duration = match query.get("ms") {
        None => DEFAULT_BURN,
        Some(ms) => match ms.parse::<u64>() {
            Ok(ms) if Duration::from_millis(ms) <= MAX_BURN => Duration::from_millis(ms),
            _ => {
                return (
                    StatusCode::BAD_REQUEST,
                    format!(
                        "ms must be a whole number of milliseconds up to {}\n",
                        MAX_BURN.as_millis()
                    ),
                )
            }
        },
    };
    shared.burning.fetch_add(1, Ordering::SeqCst);
    let burned = tokio::task::spawn_blocking(move || burn_cpu(duration)).await;
    shared.burning.fetch_sub(1, Ordering::SeqCst);
    match burned {
        Ok(()) => (
            StatusCode::OK,
            format!("burned {}ms\n", duration.as_millis()),
        ),
        Err(_) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "burning failed\n".to_string(),
        ),
    }
}

/// Spins one CPU until this thread has used `duration` of CPU time: real work the optimiser
/// cannot remove, no sleeping. Counting CPU rather than wall time keeps the load per request
/// the same on a busy machine; the wall-clock cap keeps a starved thread from running forever.
fn burn_cpu(duration: Duration) {
    let started = Instant::now();
    let wall_deadline = started + duration * 20 + Duration::from_secs(1);
    let start = thread_cpu_time();
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    loop {
        for _ in 0..10_000 {
            state = std::hint::black_box(
                state
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407),
            );
        }
        let spent = match (start, thread_cpu_time()) {
            (Some(start), Some(now)) => now.saturating_sub(start),
            // Without a thread clock, wall time is the best measure there is.
            _ => started.elapsed(),
        };
        if spent >= duration || Instant::now() >= wall_deadline {
            return;
        }
    }
}

/// The CPU time the calling thread has used, if the platform tells.
fn thread_cpu_time() -> Option<Duration> {
    let now = nix::time::clock_gettime(nix::time::ClockId::CLOCK_THREAD_CPUTIME_ID).ok()?;
    let seconds = u64::try_from(now.tv_sec()).ok()?;
    let nanos = u32::try_from(now.tv_nsec()).ok()?;
    Some(Duration::new(seconds, nanos))
}

async fn log(Query(query): Query<HashMap<String, String>>) -> &'static str {
    if let Some(message) = query.get("msg") {
        say(message);
    }
    "ok\n"
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::sync::oneshot;
    use tokio::task::JoinHandle;

    /// Everything here is local and quick; anything slower than this is a hang.
    const BOUND: Duration = Duration::from_secs(20);

    fn config() -> DemoConfig {
        DemoConfig {
            version: "v1".to_string(),
            pod_name: "web-1".to_string(),
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            ready_after: Duration::ZERO,
            fail_health_after: None,
            exit_after: None,
            exit_code: DEFAULT_EXIT_CODE,
            ignore_sigterm: false,
            shutdown_delay: Duration::ZERO,
        }
    }

    struct Running {
        address: SocketAddr,
        stop: Option<oneshot::Sender<()>>,
        served: JoinHandle<Result<u8, DemoError>>,
    }

    impl Running {
        async fn start(config: DemoConfig) -> Running {
            Self::start_shared(Arc::new(Shared {
                config,
                started: Instant::now(),
                burning: AtomicUsize::new(0),
            }))
            .await
        }

        async fn start_shared(shared: Arc<Shared>) -> Running {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            let address = listener.local_addr().expect("address");
            let (stop, stopped) = oneshot::channel::<()>();
            let served = tokio::spawn(serve_shared(listener, shared, async move {
                let _ = stopped.await;
            }));
            Running {
                address,
                stop: Some(stop),
                served,
            }
        }

        fn request_stop(&mut self) {
            if let Some(stop) = self.stop.take() {
                let _ = stop.send(());
            }
        }

        async fn finished(self) -> u8 {
            tokio::time::timeout(BOUND, self.served)
                .await
                .expect("server ends in time")
                .expect("server task")
                .expect("server result")
        }
    }

    /// One HTTP/1.1 GET on a fresh connection: (status, content type, body).
    async fn get(address: SocketAddr, path: &str) -> (u16, String, String) {
        let exchange = async {
            let mut stream = tokio::net::TcpStream::connect(address)
                .await
                .expect("connect");
            let request = format!("GET {path} HTTP/1.1\r\nHost: demo\r\nConnection: close\r\n\r\n");
            stream
                .write_all(request.as_bytes())
                .await
                .expect("write request");
            let mut response = Vec::new();
            stream
                .read_to_end(&mut response)
                .await
                .expect("read response");
            String::from_utf8(response).expect("utf-8 response")
        };
        let response = tokio::time::timeout(BOUND, exchange)
            .await
            .expect("response in time");
        let (head, body) = response.split_once("\r\n\r\n").expect("head and body");
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .expect("status code");
        let content_type = head
            .lines()
            .find_map(|line| {
                let (name, value) = line.split_once(':')?;
                name.eq_ignore_ascii_case("content-type")
                    .then(|| value.trim().to_string())
            })
            .unwrap_or_default();
        (status, content_type, body.to_string())
    }

    /// Polls `path` until it answers `status`, returning how long after `since` it did.
    async fn wait_for_status(
        address: SocketAddr,
        path: &str,
        status: u16,
        since: Instant,
    ) -> Duration {
        loop {
            if get(address, path).await.0 == status {
                return since.elapsed();
            }
            assert!(since.elapsed() < BOUND, "{path} never answered {status}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    #[tokio::test]
    async fn root_reports_version_and_pod() {
        let mut server = Running::start(config()).await;
        let (status, content_type, body) = get(server.address, "/").await;
        assert_eq!(status, 200);
        assert!(content_type.starts_with("text/plain"), "{content_type}");
        assert_eq!(body, "version=v1 pod=web-1\n");
        assert_eq!(get(server.address, "/nope").await.0, 404);
        server.request_stop();
        assert_eq!(server.finished().await, 0);
    }

    #[tokio::test]
    async fn health_and_readiness_pass_by_default() {
        let mut server = Running::start(config()).await;
        assert_eq!(get(server.address, "/healthz").await.0, 200);
        assert_eq!(get(server.address, "/readyz").await.0, 200);
        server.request_stop();
        server.finished().await;
    }

    #[tokio::test]
    async fn readiness_waits_for_ready_after() {
        let started = Instant::now();
        let mut server = Running::start(DemoConfig {
            ready_after: Duration::from_millis(600),
            ..config()
        })
        .await;
        assert_eq!(get(server.address, "/readyz").await.0, 503);
        assert_eq!(get(server.address, "/healthz").await.0, 200);
        let became_ready = wait_for_status(server.address, "/readyz", 200, started).await;
        assert!(
            became_ready >= Duration::from_millis(600),
            "{became_ready:?}"
        );
        server.request_stop();
        server.finished().await;
    }

    #[tokio::test]
    async fn health_fails_after_fail_health_after() {
        let started = Instant::now();
        let mut server = Running::start(DemoConfig {
            fail_health_after: Some(Duration::from_millis(500)),
            ..config()
        })
        .await;
        assert_eq!(get(server.address, "/healthz").await.0, 200);
        let failed = wait_for_status(server.address, "/healthz", 500, started).await;
        assert!(failed >= Duration::from_millis(500), "{failed:?}");
        // Failing health is not failing readiness, and it stays failed.
        assert_eq!(get(server.address, "/readyz").await.0, 200);
        assert_eq!(get(server.address, "/healthz").await.0, 500);
        server.request_stop();
        server.finished().await;
    }

    /// CPU time this process has used (user + system), from `/proc/self/stat`.
    #[cfg(target_os = "linux")]
    fn process_cpu_time() -> Duration {
        let stat = std::fs::read_to_string("/proc/self/stat").expect("stat");
        // Fields after the parenthesised command name; utime and stime are the 14th and 15th.
        let after_name = &stat[stat.rfind(')').expect("comm") + 2..];
        let fields: Vec<u64> = after_name
            .split(' ')
            .skip(11)
            .take(2)
            .map(|f| f.parse().expect("tick count"))
            .collect();
        // USER_HZ is 100 on every Linux this runs on.
        Duration::from_millis((fields[0] + fields[1]) * 10)
    }

    #[tokio::test]
    async fn burn_spends_cpu_for_the_time_asked() {
        let mut server = Running::start(config()).await;
        #[cfg(target_os = "linux")]
        let cpu_before = process_cpu_time();
        let started = Instant::now();
        let (status, _, body) = get(server.address, "/burn?ms=400").await;
        let took = started.elapsed();
        assert_eq!((status, body.as_str()), (200, "burned 400ms\n"));
        assert!(took >= Duration::from_millis(400), "{took:?}");
        #[cfg(target_os = "linux")]
        {
            // Burning, not sleeping: the CPU clock moved (ticks are 10 ms, hence the margin).
            let spent = process_cpu_time() - cpu_before;
            assert!(spent >= Duration::from_millis(380), "only {spent:?} of CPU");
        }
        server.request_stop();
        server.finished().await;
    }

    #[tokio::test]
    async fn burn_refuses_bad_durations() {
        let mut server = Running::start(config()).await;
        for path in ["/burn?ms=abc", "/burn?ms=-1", "/burn?ms=60001"] {
            let (status, _, body) = get(server.address, path).await;
            assert_eq!(status, 400, "{path}");
            assert!(body.starts_with("ms must be"), "{path}: {body}");
        }
        assert_eq!(get(server.address, "/burn?ms=0").await.0, 200);
        server.request_stop();
        server.finished().await;
    }

    #[tokio::test]
    async fn log_answers_ok() {
        let mut server = Running::start(config()).await;
        let (status, _, body) = get(server.address, "/log?msg=hello%20world").await;
        assert_eq!((status, body.as_str()), (200, "ok\n"));
        server.request_stop();
        server.finished().await;
    }

    #[tokio::test]
    async fn scripted_exit_returns_its_code_after_the_delay() {
        let started = Instant::now();
        let server = Running::start(DemoConfig {
            exit_after: Some(Duration::from_millis(300)),
            exit_code: 7,
            ..config()
        })
        .await;
        assert_eq!(get(server.address, "/").await.0, 200);
        assert_eq!(server.finished().await, 7);
        assert!(started.elapsed() >= Duration::from_millis(300));
    }

    #[tokio::test]
    async fn stopping_drains_requests_in_flight() {
        let shared = Arc::new(Shared {
            config: config(),
            started: Instant::now(),
            burning: AtomicUsize::new(0),
        });
        let mut server = Running::start_shared(shared.clone()).await;
        let address = server.address;
        let in_flight = tokio::spawn(async move { get(address, "/burn?ms=700").await });
        // Stop only once the handler is running.
        let asked = Instant::now();
        while shared.burning.load(Ordering::SeqCst) == 0 {
            assert!(asked.elapsed() < BOUND, "the burn never started");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        server.request_stop();
        let (status, _, body) = in_flight.await.expect("request task");
        assert_eq!((status, body.as_str()), (200, "burned 700ms\n"));
        assert_eq!(server.finished().await, 0);
        assert!(tokio::net::TcpStream::connect(address).await.is_err());
    }

    #[tokio::test]
    async fn shutdown_delay_keeps_serving_new_requests() {
        let mut server = Running::start(DemoConfig {
            shutdown_delay: Duration::from_millis(600),
            ..config()
        })
        .await;
        let address = server.address;
        let asked = Instant::now();
        server.request_stop();
        let (status, _, body) = get(address, "/").await;
        assert_eq!((status, body.as_str()), (200, "version=v1 pod=web-1\n"));
        assert_eq!(server.finished().await, 0);
        assert!(asked.elapsed() >= Duration::from_millis(600));
    }

    #[test]
    fn configuration_comes_from_the_environment() {
        let defaults = DemoConfig {
            version: env!("CARGO_PKG_VERSION").to_string(),
            pod_name: "unknown".to_string(),
            listen: SocketAddr::from(([0, 0, 0, 0], 80)),
            ..config()
        };
        let cases: Vec<(Vec<(&str, &str)>, DemoConfig)> = vec![
            (vec![], defaults.clone()),
            (vec![("SKIFF_DEMO_VERSION", "")], defaults.clone()),
            (
                vec![("SKIFF_DEMO_VERSION", "2.4"), ("HOSTNAME", "web-7")],
                DemoConfig {
                    version: "2.4".to_string(),
                    pod_name: "web-7".to_string(),
                    ..defaults.clone()
                },
            ),
            (
                vec![("SKIFF_POD_NAME", "pod-a"), ("HOSTNAME", "host")],
                DemoConfig {
                    pod_name: "pod-a".to_string(),
                    ..defaults.clone()
                },
            ),
            (
                vec![("SKIFF_POD_IP", "127.1.2.3"), ("SKIFF_DEMO_PORT", "0")],
                DemoConfig {
                    listen: SocketAddr::from(([127, 1, 2, 3], 0)),
                    ..defaults.clone()
                },
            ),
            (
                vec![
                    ("DEMO_READY_AFTER", "5s"),
                    ("DEMO_FAIL_HEALTH_AFTER", "2m"),
                    ("DEMO_EXIT_AFTER", "500ms"),
                    ("DEMO_EXIT_CODE", "3"),
                    ("DEMO_IGNORE_SIGTERM", "true"),
                    ("DEMO_SHUTDOWN_DELAY", "10"),
                ],
                DemoConfig {
                    ready_after: Duration::from_secs(5),
                    fail_health_after: Some(Duration::from_secs(120)),
                    exit_after: Some(Duration::from_millis(500)),
                    exit_code: 3,
                    ignore_sigterm: true,
                    shutdown_delay: Duration::from_secs(10),
                    ..defaults.clone()
                },
            ),
        ];
        for (env, expected) in cases {
            let lookup = |name: &str| {
                env.iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| v.to_string())
            };
            let got = DemoConfig::from_lookup(lookup).expect("valid configuration");
            assert_eq!(got, expected, "{env:?}");
        }
    }

    #[test]
    fn bad_settings_are_refused_with_their_name() {
        let cases = [
            ("SKIFF_DEMO_PORT", "80000"),
            ("SKIFF_DEMO_PORT", "http"),
            ("SKIFF_POD_IP", "pod"),
            ("DEMO_READY_AFTER", "soon"),
            ("DEMO_FAIL_HEALTH_AFTER", "-5s"),
            ("DEMO_EXIT_AFTER", "5 s"),
            ("DEMO_EXIT_CODE", "256"),
            ("DEMO_SHUTDOWN_DELAY", "5x"),
            ("DEMO_IGNORE_SIGTERM", "yes please"),
        ];
        for (name, value) in cases {
            let error = DemoConfig::from_lookup(|n| (n == name).then(|| value.to_string()))
                .expect_err(name);
            assert!(
                error.to_string().starts_with(&format!("invalid {name}=")),
                "{name}={value}: {error}"
            );
        }
    }
}
