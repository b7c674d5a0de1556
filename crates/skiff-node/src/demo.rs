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
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;

use crate::simulated::duration::parse_go_duration;

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
            None => crate::images::DEMO_PORT,
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
}

/// Serves on `listener` until `shutdown` resolves (then keeps serving for the configured
/// shutdown delay and drains) or the scripted exit fires. Returns the exit code the process
/// should end with: 0 after a shutdown, the configured code after a scripted exit.
pub async fn serve(
    listener: tokio::net::TcpListener,
    config: DemoConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<u8, DemoError> {
    let started = Instant::now();
    let shutdown_delay = config.shutdown_delay;
    let exit_after = config.exit_after;
    let exit_code = config.exit_code;
    let shared = Arc::new(Shared { config, started });
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

async fn burn(Query(query): Query<HashMap<String, String>>) -> (StatusCode, String) {
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
    match tokio::task::spawn_blocking(move || burn_cpu(duration)).await {
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

/// Spins one CPU for `duration`: real work the optimiser cannot remove, no sleeping.
fn burn_cpu(duration: Duration) {
    let deadline = Instant::now() + duration;
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    while Instant::now() < deadline {
        for _ in 0..10_000 {
            state = std::hint::black_box(
                state
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407),
            );
        }
    }
}

async fn log(Query(query): Query<HashMap<String, String>>) -> &'static str {
    if let Some(message) = query.get("msg") {
        say(message);
    }
    "ok\n"
}
