//! Container probes as kubelet runs them: one probe execution ([`run_probe`]) and the schedule
//! that turns results into state changes ([`ProbeState`], [`ContainerProbes`]).
//!
//! Execution follows kubelet's `pkg/probe/{exec,http,tcp,grpc}` and `pkg/kubelet/prober`:
//! results and failure messages are worded the same, so an event built with
//! [`ProbeResult::event`] reads `Liveness probe failed: HTTP probe failed with statuscode: 500`
//! just as on a real cluster. A probe that cannot run at all (an unknown port name, a broken
//! exec runner) is [`ProbeResult::Unknown`]: kubelet retries it up to three times, reports it as
//! "errored", and its schedule ignores it.
//!
//! How a node agent drives a running container (times are since the container started):
//! 1. build [`ContainerProbes::new`] when the container starts, [`ContainerProbes::reset`] when
//!    it is replaced, [`ContainerProbes::pod_terminating`] when the pod is being deleted;
//! 2. sleep until [`ContainerProbes::next_due`], run each probe of [`ContainerProbes::due`]
//!    with [`run_probe`], record [`ProbeResult::event`] if there is one;
//! 3. feed the result to [`ContainerProbes::observe`] and act on the [`Transition`]: report
//!    `started` / `ready` from [`ContainerProbes::started`] and [`ContainerProbes::ready`], and on
//!    [`Transition::Failed`] record `Killing` with [`killing_message`] and kill the container
//!    with [`ContainerProbes::kill_grace_period_seconds`].

mod exec;
mod grpc;
mod http;
mod schedule;
mod text;

pub use http::SkipServerVerification;

#[cfg(test)]
pub(crate) mod test_support;
#[cfg(test)]
mod tests_io;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use k8s_openapi::api::core::v1::{ContainerPort, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use tokio::net::TcpStream;

pub use exec::{truncate_output, LocalExecRunner, MAX_EXEC_OUTPUT_BYTES};
pub use schedule::{
    killing_message, ContainerProbes, ProbeKind, ProbeSettings, ProbeState, ProbeStatus, Transition,
};

pub(crate) use http::{build_request, get, GetError, Scheme, HTTP_RESPONSE_TO_HTTPS_CLIENT};
pub(crate) use text::go_quote;

/// The Kubernetes minor version Skiff speaks, used in `kube-probe/1.36` user agents.
pub(crate) const KUBE_MINOR_VERSION: &str = "1.36";

/// Kubelet runs a probe that errors up to this many times in a row before reporting it.
const MAX_PROBE_ATTEMPTS: usize = 3;

/// Extra time given to an exec runner past the probe timeout before the probe stops waiting
/// for it: the runner is expected to enforce the timeout itself and report `timed_out`.
const EXEC_RUNNER_GRACE: Duration = Duration::from_secs(1);

/// What running a command inside a container produced.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExecOutput {
    /// The command's exit code; meaningless when `timed_out`.
    pub exit_code: i32,
    /// Standard output and standard error interleaved, cut to [`MAX_EXEC_OUTPUT_BYTES`] as
    /// kubelet keeps only that much.
    pub output: String,
    /// The command ran past its timeout and was killed.
    pub timed_out: bool,
}

/// Runs a command in a container's environment (its filesystem view, environment and working
/// directory). The node agent implements it; probes and hooks only decide what to run.
#[async_trait]
pub trait ExecRunner: Send + Sync {
    /// Runs `command` (argv, no shell) and waits at most `timeout`, killing it past that.
    /// An `Err` means the command could not be run at all.
    async fn exec(&self, command: &[String], timeout: Duration) -> std::io::Result<ExecOutput>;
}

/// Where a probe or hook reaches its container: kubelet takes these from the pod status and
/// the container spec.
#[derive(Clone)]
pub struct ProbeTarget {
    /// The pod's IP: the host of `httpGet` and `tcpSocket` without an explicit `host`, and of
    /// every `grpc` probe.
    pub pod_ip: IpAddr,
    /// The node's IP; probes never use it themselves, but it completes the view a handler has.
    pub host_ip: IpAddr,
    /// The container's declared ports, so that a port given by name resolves.
    pub container_ports: Vec<ContainerPort>,
    /// Runs `exec` probes and hooks inside the container.
    pub exec: Arc<dyn ExecRunner>,
}

impl std::fmt::Debug for ProbeTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProbeTarget")
            .field("pod_ip", &self.pod_ip)
            .field("host_ip", &self.host_ip)
            .field("container_ports", &self.container_ports)
            .finish_non_exhaustive()
    }
}

/// The outcome of one probe execution, with kubelet's message for everything but success.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProbeResult {
    /// The container answered as healthy.
    Success,
    /// Healthy, with something worth an event: an HTTP probe that stopped at a redirect to
    /// another host. Counts as a success.
    Warning(String),
    /// The container answered as unhealthy (or did not answer in time).
    Failure(String),
    /// The probe could not be run: kubelet records the error and discards the result.
    Unknown(String),
}

/// An event to record about a probe result: always of type `Warning`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProbeEvent {
    /// `Unhealthy` or `ProbeWarning`.
    pub reason: &'static str,
    /// The event's message, e.g. `Liveness probe failed: ...`.
    pub message: String,
}

/// Event reason of failed and errored probes.
pub const UNHEALTHY_REASON: &str = "Unhealthy";
/// Event reason of probes that succeeded with a warning.
pub const PROBE_WARNING_REASON: &str = "ProbeWarning";

impl ProbeResult {
    /// Whether the schedule counts this result as a success (warnings do).
    pub fn is_success(&self) -> bool {
        matches!(self, ProbeResult::Success | ProbeResult::Warning(_))
    }

    /// The event kubelet records for this result of a `kind` probe, if any.
    pub fn event(&self, kind: ProbeKind) -> Option<ProbeEvent> {
        let name = kind.as_str();
        match self {
            ProbeResult::Success => None,
            ProbeResult::Warning(output) => Some(ProbeEvent {
                reason: PROBE_WARNING_REASON,
                message: format!("{name} probe warning: {output}"),
            }),
            ProbeResult::Failure(output) => Some(ProbeEvent {
                reason: UNHEALTHY_REASON,
                message: format!("{name} probe failed: {output}"),
            }),
            ProbeResult::Unknown(error) => Some(ProbeEvent {
                reason: UNHEALTHY_REASON,
                message: format!("{name} probe errored and resulted in unknown state: {error}"),
            }),
        }
    }
}

/// Runs `probe` once against its container, retrying a probe that errors as kubelet does, and
/// returns the result with kubelet's message.
pub async fn run_probe(probe: &Probe, target: &ProbeTarget) -> ProbeResult {
    let timeout = ProbeSettings::from_probe(probe).timeout;
    let mut result = ProbeResult::Unknown("probe did not run".to_string());
    for _ in 0..MAX_PROBE_ATTEMPTS {
        result = run_once(probe, target, timeout).await;
        if !matches!(result, ProbeResult::Unknown(_)) {
            break;
        }
    }
    result
}

async fn run_once(probe: &Probe, target: &ProbeTarget, timeout: Duration) -> ProbeResult {
    if let Some(exec) = &probe.exec {
        let command = exec.command.clone().unwrap_or_default();
        return run_exec(&command, target, timeout).await;
    }
    if let Some(action) = &probe.http_get {
        let request = match build_request(action, target.pod_ip, &target.container_ports, "probe") {
            Ok(request) => request,
            Err(error) => return ProbeResult::Unknown(error),
        };
        let deadline = tokio::time::Instant::now() + timeout;
        return match get(&request, Some(deadline)).await {
            Ok(response) => {
                let body = String::from_utf8_lossy(&response.body).into_owned();
                match response.status {
                    200..=299 => ProbeResult::Success,
                    300..=399 => ProbeResult::Warning(format!(
                        "Probe terminated redirects, Response body: {body}"
                    )),
                    status => {
                        ProbeResult::Failure(format!("HTTP probe failed with statuscode: {status}"))
                    }
                }
            }
            Err(GetError::Transport(message)) => ProbeResult::Failure(message),
            Err(GetError::Body(message)) => ProbeResult::Unknown(message),
        };
    }
    if let Some(action) = &probe.tcp_socket {
        let port = match resolve_container_port(&action.port, &target.container_ports) {
            Ok(port) => port,
            Err(error) => return ProbeResult::Unknown(error),
        };
        let host = match action.host.as_deref() {
            Some(host) if !host.is_empty() => host.to_string(),
            _ => target.pod_ip.to_string(),
        };
        return run_tcp(&host, port, timeout).await;
    }
    if let Some(action) = &probe.grpc {
        let Ok(port) =
            u16::try_from(action.port).map_err(drop).and_then(
                |p| {
                    if p == 0 {
                        Err(())
                    } else {
                        Ok(p)
                    }
                },
            )
        else {
            return ProbeResult::Unknown(format!("invalid port number: {}", action.port));
        };
        let service = action.service.clone().unwrap_or_default();
        return grpc::check(target.pod_ip, port, &service, timeout).await;
    }
    ProbeResult::Unknown("missing probe handler".to_string())
}

/// The message kubelet gives an exec that ran past its timeout.
pub(crate) fn exec_timeout_message(command: &[String]) -> String {
    format!("command {} timed out", go_quote(&command.join(" ")))
}

async fn run_exec(command: &[String], target: &ProbeTarget, timeout: Duration) -> ProbeResult {
    let bounded = tokio::time::timeout(
        timeout + EXEC_RUNNER_GRACE,
        target.exec.exec(command, timeout),
    );
    match bounded.await {
        Err(_) => ProbeResult::Failure(exec_timeout_message(command)),
        Ok(Err(error)) => ProbeResult::Unknown(error.to_string()),
        Ok(Ok(output)) if output.timed_out => ProbeResult::Failure(exec_timeout_message(command)),
        Ok(Ok(output)) if output.exit_code == 0 => ProbeResult::Success,
        Ok(Ok(output)) => ProbeResult::Failure(truncate_output(&output.output)),
    }
}

async fn run_tcp(host: &str, port: u16, timeout: Duration) -> ProbeResult {
    let address = text::join_host_port(host, port);
    match tokio::time::timeout(timeout, TcpStream::connect((host, port))).await {
        Err(_) => ProbeResult::Failure(text::dial_timeout(&address)),
        Ok(Err(error)) => ProbeResult::Failure(text::dial_error(&address, &error)),
        Ok(Ok(stream)) => {
            drop(stream);
            ProbeResult::Success
        }
    }
}

/// Turns a probe's port (number, or name of a declared container port, or a number written as
/// a string) into a port number, with kubelet's error messages.
pub(crate) fn resolve_container_port(
    port: &IntOrString,
    ports: &[ContainerPort],
) -> Result<u16, String> {
    let number: i64 = match port {
        IntOrString::Int(number) => i64::from(*number),
        IntOrString::String(name) => {
            let declared = ports
                .iter()
                .find(|p| p.name.as_deref() == Some(name.as_str()))
                .map(|p| i64::from(p.container_port));
            match declared {
                Some(number) => number,
                None => parse_go_int(name)?,
            }
        }
    };
    match u16::try_from(number) {
        Ok(port) if port > 0 => Ok(port),
        _ => Err(format!("invalid port number: {number}")),
    }
}

/// `strconv.Atoi`, with its error messages.
fn parse_go_int(text: &str) -> Result<i64, String> {
    text.parse::<i64>().map_err(|error| {
        let why = match error.kind() {
            std::num::IntErrorKind::PosOverflow | std::num::IntErrorKind::NegOverflow => {
                "value out of range"
            }
            _ => "invalid syntax",
        };
        format!("strconv.Atoi: parsing {}: {why}", go_quote(text))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_ports_with_kubelet_messages() {
        let ports = vec![ContainerPort {
            name: Some("http".to_string()),
            container_port: 8080,
            ..Default::default()
        }];
        let cases: Vec<(IntOrString, Result<u16, String>)> = vec![
            (IntOrString::Int(80), Ok(80)),
            (IntOrString::String("http".into()), Ok(8080)),
            (IntOrString::String("9090".into()), Ok(9090)),
            (
                IntOrString::String("web".into()),
                Err("strconv.Atoi: parsing \"web\": invalid syntax".into()),
            ),
            (
                IntOrString::String("99999999999999999999".into()),
                Err("strconv.Atoi: parsing \"99999999999999999999\": value out of range".into()),
            ),
            (IntOrString::Int(0), Err("invalid port number: 0".into())),
            (
                IntOrString::Int(70000),
                Err("invalid port number: 70000".into()),
            ),
        ];
        for (port, want) in cases {
            assert_eq!(resolve_container_port(&port, &ports), want, "port {port:?}");
        }
    }

    #[test]
    fn events_are_worded_like_kubelet() {
        let cases = [
            (ProbeResult::Success, ProbeKind::Liveness, None),
            (
                ProbeResult::Failure("HTTP probe failed with statuscode: 500".into()),
                ProbeKind::Liveness,
                Some((UNHEALTHY_REASON, "Liveness probe failed: HTTP probe failed with statuscode: 500")),
            ),
            (
                ProbeResult::Warning("Probe terminated redirects, Response body: ".into()),
                ProbeKind::Readiness,
                Some((PROBE_WARNING_REASON, "Readiness probe warning: Probe terminated redirects, Response body: ")),
            ),
            (
                ProbeResult::Unknown("strconv.Atoi: parsing \"http\": invalid syntax".into()),
                ProbeKind::Startup,
                Some((
                    UNHEALTHY_REASON,
                    "Startup probe errored and resulted in unknown state: strconv.Atoi: parsing \"http\": invalid syntax",
                )),
            ),
        ];
        for (result, kind, want) in cases {
            let got = result.event(kind).map(|e| (e.reason, e.message));
            let want = want.map(|(reason, message)| (reason, message.to_string()));
            assert_eq!(got, want, "{result:?}");
        }
    }
}
