//! Container lifecycle hooks (`postStart`, `preStop`) as kubelet runs them
//! (`pkg/kubelet/lifecycle/handlers.go`, `kuberuntime_container.go`).
//!
//! * `exec` runs through the container's [`ExecRunner`]; a non-zero exit is a failure.
//! * `httpGet` sends kubelet's lifecycle GET (user agent `kube-lifecycle/1.36`, TLS without
//!   verification, same-host redirects only); any HTTP answer counts as success, only a
//!   request that gets no answer fails. An HTTPS hook answered in plain HTTP is retried over
//!   HTTP, as kubelet does.
//! * `sleep` waits its seconds.
//! * `tcpSocket` is accepted by the API for compatibility but never runs: it fails as an
//!   invalid handler.
//!
//! Kubelet keeps hook output out of events (it may hold secrets): a failed postStart records
//! [`FAILED_POST_START_HOOK_REASON`] / [`POST_START_HOOK_FAILED_MESSAGE`] and kills the
//! container, a failed preStop records [`FAILED_PRE_STOP_HOOK_REASON`] /
//! [`PRE_STOP_HOOK_FAILED_MESSAGE`]; the detailed [`HookError::message`] goes to logs and, for
//! postStart, to the container's last termination message.

use std::time::Duration;

use k8s_openapi::api::core::v1::{LifecycleHandler, TCPSocketAction};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use tokio::time::Instant;

use crate::probes::{
    build_request, exec_timeout_message, get, go_quote, ExecRunner, GetError, ProbeTarget, Scheme,
    HTTP_RESPONSE_TO_HTTPS_CLIENT,
};

/// Event reason when a postStart hook failed.
pub const FAILED_POST_START_HOOK_REASON: &str = "FailedPostStartHook";
/// Event message when a postStart hook failed.
pub const POST_START_HOOK_FAILED_MESSAGE: &str = "PostStartHook failed";
/// Event reason when a preStop hook failed.
pub const FAILED_PRE_STOP_HOOK_REASON: &str = "FailedPreStopHook";
/// Event message when a preStop hook failed.
pub const PRE_STOP_HOOK_FAILED_MESSAGE: &str = "PreStop hook failed";
/// Reason of the container's waiting state after its postStart hook failed.
pub const POST_START_HOOK_ERROR_REASON: &str = "PostStartHookError";

/// The exec timeout given to a hook that has no deadline: kubelet waits for a postStart
/// command without limit; a day stands in for that without overflowing any clock.
pub const UNBOUNDED_HOOK_TIMEOUT: Duration = Duration::from_secs(24 * 60 * 60);

/// Why a hook failed. `Display` gives the error as kubelet's handler reports it; the full
/// sentence kubelet logs is [`HookError::message`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HookError {
    /// The command ran and exited non-zero.
    #[error("command '{}' exited with {exit_code}: {output}", command.join(" "))]
    ExecExited {
        /// The hook's command.
        command: Vec<String>,
        /// Its exit code.
        exit_code: i32,
        /// Its combined output.
        output: String,
    },
    /// The command outlived its deadline.
    #[error("{}", exec_timeout_message(command))]
    ExecTimedOut {
        /// The hook's command.
        command: Vec<String>,
    },
    /// The command could not be run.
    #[error("{error}")]
    ExecFailed {
        /// The hook's command.
        command: Vec<String>,
        /// Why it could not run.
        error: String,
    },
    /// The GET got no answer, or could not be built.
    #[error("{error}")]
    Http {
        /// The hook's path, as kubelet names the hook in its message.
        path: String,
        /// Go's client error, e.g. `Get "http://...": dial tcp ...: connect: connection refused`.
        error: String,
    },
    /// The hook has no handler kubelet can run (none, or the unsupported `tcpSocket`).
    #[error("invalid handler: {0}")]
    InvalidHandler(String),
}

impl HookError {
    /// Kubelet's full description of the failure, naming the container and the pod
    /// (`pod` as kubelet prints it: `name_namespace(uid)`).
    pub fn message(&self, container_name: &str, pod: &str) -> String {
        let container = go_quote(container_name);
        let pod = go_quote(pod);
        match self {
            HookError::ExecExited {
                command, output, ..
            } => format!(
                "Exec lifecycle hook ([{}]) for Container {container} in Pod {pod} failed - error: {self}, message: {}",
                command.join(" "),
                go_quote(output)
            ),
            HookError::ExecTimedOut { command } | HookError::ExecFailed { command, .. } => format!(
                "Exec lifecycle hook ([{}]) for Container {container} in Pod {pod} failed - error: {self}, message: \"\"",
                command.join(" ")
            ),
            HookError::Http { path, .. } => format!(
                "HTTP lifecycle hook ({path}) for Container {container} in Pod {pod} failed - error: {self}"
            ),
            HookError::InvalidHandler(_) => format!("Cannot run handler: {self}"),
        }
    }
}

/// Runs a hook to completion, as kubelet runs postStart: without a time limit.
pub async fn run_handler(
    handler: &LifecycleHandler,
    target: &ProbeTarget,
) -> Result<(), HookError> {
    run_with_exec_timeout(handler, target, UNBOUNDED_HOOK_TIMEOUT).await
}

/// How a preStop hook ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PreStopOutcome {
    /// The hook finished successfully.
    Completed,
    /// The hook failed: record [`FAILED_PRE_STOP_HOOK_REASON`] and go on with the stop.
    Failed(HookError),
    /// The grace period ran out first: go on with the stop, no event (as kubelet).
    DeadlineReached,
}

/// Runs a preStop hook within the container's grace period, which ends at `deadline`; the
/// caller sends the stop signal after this returns.
pub async fn run_pre_stop(
    handler: &LifecycleHandler,
    target: &ProbeTarget,
    deadline: Instant,
) -> PreStopOutcome {
    let remaining = deadline.saturating_duration_since(Instant::now());
    if remaining.is_zero() {
        return PreStopOutcome::DeadlineReached;
    }
    let hook = run_with_exec_timeout(handler, target, remaining);
    match tokio::time::timeout_at(deadline, hook).await {
        Err(_) => PreStopOutcome::DeadlineReached,
        Ok(Ok(())) => PreStopOutcome::Completed,
        Ok(Err(HookError::ExecTimedOut { .. })) => PreStopOutcome::DeadlineReached,
        Ok(Err(error)) => PreStopOutcome::Failed(error),
    }
}

async fn run_with_exec_timeout(
    handler: &LifecycleHandler,
    target: &ProbeTarget,
    exec_timeout: Duration,
) -> Result<(), HookError> {
    if let Some(exec) = &handler.exec {
        let command = exec.command.clone().unwrap_or_default();
        return run_exec(target.exec.as_ref(), command, exec_timeout).await;
    }
    if let Some(action) = &handler.http_get {
        let path = action.path.clone().unwrap_or_default();
        let request = build_request(action, target.pod_ip, &target.container_ports, "lifecycle")
            .map_err(|error| HookError::Http {
                path: path.clone(),
                error,
            })?;
        let mut outcome = get(&request, None).await;
        let answered_in_http = matches!(&outcome, Err(GetError::Transport(message)) if message.contains(HTTP_RESPONSE_TO_HTTPS_CLIENT));
        if answered_in_http && request.url.scheme == Scheme::Https {
            tracing::info!(host = %request.url.host, "HTTPS lifecycle hook got an HTTP response, retrying with HTTP");
            outcome = get(&request.downgraded_to_http(), None).await;
        }
        return match outcome {
            // Any answer will do; a body that breaks off midway is not the hook's failure.
            Ok(_) | Err(GetError::Body(_)) => Ok(()),
            Err(GetError::Transport(error)) => Err(HookError::Http { path, error }),
        };
    }
    if let Some(sleep) = &handler.sleep {
        let seconds = u64::try_from(sleep.seconds).unwrap_or(0);
        tokio::time::sleep(Duration::from_secs(seconds)).await;
        return Ok(());
    }
    Err(HookError::InvalidHandler(describe_handler(handler)))
}

async fn run_exec(
    runner: &dyn ExecRunner,
    command: Vec<String>,
    timeout: Duration,
) -> Result<(), HookError> {
    match runner.exec(&command, timeout).await {
        Err(error) => Err(HookError::ExecFailed {
            command,
            error: error.to_string(),
        }),
        Ok(output) if output.timed_out => Err(HookError::ExecTimedOut { command }),
        Ok(output) if output.exit_code == 0 => Ok(()),
        Ok(output) => Err(HookError::ExecExited {
            command,
            exit_code: output.exit_code,
            output: output.output,
        }),
    }
}

/// The handler as Go prints it with `%v`, for the "invalid handler" message.
fn describe_handler(handler: &LifecycleHandler) -> String {
    let tcp = match &handler.tcp_socket {
        Some(action) => describe_tcp(action),
        None => "nil".to_string(),
    };
    format!("&LifecycleHandler{{Exec:nil,HTTPGet:nil,TCPSocket:{tcp},Sleep:nil,}}")
}

fn describe_tcp(action: &TCPSocketAction) -> String {
    let port = match &action.port {
        IntOrString::Int(number) => format!("{{0 {number} }}"),
        IntOrString::String(name) => format!("{{1 0 {name}}}"),
    };
    let host = action.host.as_deref().unwrap_or("");
    format!("&TCPSocketAction{{Port:{port},Host:{host},}}")
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use k8s_openapi::api::core::v1::{ExecAction, HTTPGetAction, SleepAction};

    use super::*;
    use crate::probes::test_support::{
        closed_port, command, target, FakeRunner, Reply, TestServer,
    };
    use crate::probes::{ExecOutput, LocalExecRunner};

    const POD: &str = "web-0_default(6f1c)";

    /// Fails the test when a hook outlives its deadline, however loaded the machine: the hooks
    /// cut at a deadline below would run for 30 s if it were ignored.
    async fn bounded<F: std::future::Future>(future: F) -> F::Output {
        tokio::time::timeout(Duration::from_secs(20), future)
            .await
            .expect("the hook was not cut at its deadline")
    }

    fn exec_hook(words: &[&str]) -> LifecycleHandler {
        LifecycleHandler {
            exec: Some(ExecAction {
                command: Some(command(words)),
            }),
            ..Default::default()
        }
    }

    fn sleep_hook(seconds: i64) -> LifecycleHandler {
        LifecycleHandler {
            sleep: Some(SleepAction { seconds }),
            ..Default::default()
        }
    }

    fn http_hook(port: u16, path: &str) -> LifecycleHandler {
        LifecycleHandler {
            http_get: Some(HTTPGetAction {
                path: Some(path.to_string()),
                port: IntOrString::Int(port.into()),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn exec_hook_failures_carry_kubelets_message() {
        let runner = FakeRunner::answering(Ok(ExecOutput {
            exit_code: 3,
            output: "boom\n".to_string(),
            timed_out: false,
        }));
        let target = target(runner.clone(), vec![]);
        let error = run_handler(&exec_hook(&["sh", "-c", "exit 3"]), &target)
            .await
            .expect_err("non-zero exit fails the hook");
        assert_eq!(
            error.to_string(),
            "command 'sh -c exit 3' exited with 3: boom\n"
        );
        assert_eq!(
            error.message("web", POD),
            "Exec lifecycle hook ([sh -c exit 3]) for Container \"web\" in Pod \"web-0_default(6f1c)\" \
             failed - error: command 'sh -c exit 3' exited with 3: boom\n, message: \"boom\\n\""
        );
        assert_eq!(runner.calls()[0].1, UNBOUNDED_HOOK_TIMEOUT);
    }

    #[tokio::test]
    async fn exec_hooks_run_real_commands() {
        let dir = tempfile::tempdir().expect("temp dir");
        let marker = dir.path().join("started");
        let target = target(Arc::new(LocalExecRunner::default()), vec![]);
        let script = format!("touch {}", marker.display());
        assert_eq!(
            run_handler(&exec_hook(&["sh", "-c", &script]), &target).await,
            Ok(())
        );
        assert!(marker.exists());
    }

    #[tokio::test]
    async fn http_hooks_succeed_on_any_answer_and_fail_without_one() {
        let server = TestServer::start(vec![("/stop", Reply::status(500))]).await;
        let target = target(FakeRunner::answering(Ok(ExecOutput::default())), vec![]);
        assert_eq!(
            run_handler(&http_hook(server.port(), "/stop"), &target).await,
            Ok(())
        );
        let seen = server.requests();
        assert_eq!(
            seen[0].headers.get("user-agent").map(String::as_str),
            Some("kube-lifecycle/1.36")
        );

        let closed = closed_port().await;
        let error = run_handler(&http_hook(closed, "/stop"), &target)
            .await
            .expect_err("nothing listens");
        assert_eq!(
            error.message("web", POD),
            format!(
                "HTTP lifecycle hook (/stop) for Container \"web\" in Pod \"{POD}\" failed - error: \
                 Get \"http://127.0.0.1:{closed}/stop\": dial tcp 127.0.0.1:{closed}: connect: connection refused"
            )
        );
    }

    #[tokio::test]
    async fn tcp_socket_hooks_are_invalid() {
        let handler = LifecycleHandler {
            tcp_socket: Some(TCPSocketAction {
                port: IntOrString::Int(80),
                host: None,
            }),
            ..Default::default()
        };
        let target = target(FakeRunner::answering(Ok(ExecOutput::default())), vec![]);
        let error = run_handler(&handler, &target)
            .await
            .expect_err("unsupported");
        assert_eq!(
            error.message("web", POD),
            "Cannot run handler: invalid handler: &LifecycleHandler{Exec:nil,HTTPGet:nil,\
             TCPSocket:&TCPSocketAction{Port:{0 80 },Host:,},Sleep:nil,}"
        );
    }

    #[tokio::test]
    async fn sleep_hooks_sleep_and_pre_stop_honours_the_deadline() {
        let target = target(FakeRunner::answering(Ok(ExecOutput::default())), vec![]);

        let started = Instant::now();
        let outcome = run_pre_stop(&sleep_hook(1), &target, started + Duration::from_secs(5)).await;
        assert_eq!(outcome, PreStopOutcome::Completed);
        assert!(
            started.elapsed() >= Duration::from_secs(1),
            "slept its second"
        );

        let started = Instant::now();
        let outcome = bounded(run_pre_stop(
            &sleep_hook(30),
            &target,
            started + Duration::from_millis(300),
        ))
        .await;
        // The 30 s sleep was cut (the test's own deadline is shorter), at the deadline and
        // not before.
        assert_eq!(outcome, PreStopOutcome::DeadlineReached);
        let took = started.elapsed();
        assert!(took >= Duration::from_millis(300), "{took:?}");

        let past = Instant::now();
        assert_eq!(
            run_pre_stop(&sleep_hook(1), &target, past).await,
            PreStopOutcome::DeadlineReached
        );
    }

    #[tokio::test]
    async fn pre_stop_commands_are_cut_at_the_deadline() {
        let target = target(Arc::new(LocalExecRunner::default()), vec![]);
        let started = Instant::now();
        let outcome = bounded(run_pre_stop(
            &exec_hook(&["sleep", "30"]),
            &target,
            started + Duration::from_millis(500),
        ))
        .await;
        assert_eq!(outcome, PreStopOutcome::DeadlineReached);

        let failing = run_pre_stop(
            &exec_hook(&["sh", "-c", "exit 2"]),
            &target,
            Instant::now() + Duration::from_secs(5),
        )
        .await;
        assert!(
            matches!(
                failing,
                PreStopOutcome::Failed(HookError::ExecExited { exit_code: 2, .. })
            ),
            "{failing:?}"
        );
    }

    #[tokio::test]
    async fn https_hooks_answered_in_plain_http_are_retried_over_http() {
        let server = TestServer::start(vec![("/stop", Reply::status(200))]).await;
        let target = target(FakeRunner::answering(Ok(ExecOutput::default())), vec![]);
        let mut handler = http_hook(server.port(), "/stop");
        if let Some(action) = handler.http_get.as_mut() {
            action.scheme = Some("HTTPS".to_string());
        }
        assert_eq!(run_handler(&handler, &target).await, Ok(()));
        let targets: Vec<String> = server.requests().into_iter().map(|r| r.target).collect();
        assert_eq!(
            targets,
            vec!["/stop".to_string()],
            "the HTTP retry reached the server"
        );
    }
}
