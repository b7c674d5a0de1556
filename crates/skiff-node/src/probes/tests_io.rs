//! Probes run against real loopback servers and processes.

use std::convert::Infallible;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use hyper::http::{HeaderMap, HeaderValue, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use k8s_openapi::api::core::v1::{
    ExecAction, GRPCAction, HTTPGetAction, HTTPHeader, Probe, TCPSocketAction,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use tokio::net::TcpListener;

use super::test_support::{closed_port, command, target, FakeRunner, Reply, TestServer};
use super::{run_probe, ExecOutput, LocalExecRunner, ProbeResult, MAX_EXEC_OUTPUT_BYTES};

/// How long a probe with a 1 s timeout may take on a loaded machine before the test calls it
/// hung: the timeout itself shows in the result ("timed out", "within 1s"), this only keeps a
/// probe that ignores it from hanging the test.
const PROBE_DEADLINE: Duration = Duration::from_secs(30);

/// Runs a probe that must end on its own, failing the test if it does not within the deadline.
async fn run_bounded(probe: &Probe, target: &super::ProbeTarget) -> ProbeResult {
    tokio::time::timeout(PROBE_DEADLINE, run_probe(probe, target))
        .await
        .unwrap_or_else(|_| panic!("the probe did not end within {PROBE_DEADLINE:?}"))
}

fn http_probe(port: IntOrString, path: &str) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.to_string()),
            port,
            ..Default::default()
        }),
        timeout_seconds: Some(1),
        ..Default::default()
    }
}

fn no_exec() -> Arc<FakeRunner> {
    FakeRunner::answering(Ok(ExecOutput::default()))
}

#[tokio::test]
async fn http_probes_read_statuses_redirects_and_timeouts_like_kubelet() {
    let big = vec![b'x'; 20 * 1024];
    let server = TestServer::start(vec![
        ("/ok", Reply::status(200)),
        ("/fail", Reply::status(500)),
        ("/not-found-is-failure", Reply::status(404)),
        ("/moved", Reply::redirect("/ok", "")),
        ("/elsewhere", Reply::redirect("/placeholder", "gone")),
        ("/loop", Reply::redirect("/loop", "")),
        (
            "/slow",
            Reply {
                delay: Duration::from_secs(5),
                ..Reply::status(200)
            },
        ),
        (
            "/big",
            Reply {
                body: big.clone(),
                ..Reply::status(200)
            },
        ),
    ])
    .await;
    let port = server.port();
    // A redirect to another host name (same address) must stop the chain with a warning.
    let away = TestServer::start(vec![(
        "/elsewhere",
        Reply::redirect(&format!("http://localhost:{port}/ok"), "gone"),
    )])
    .await;

    let target = target(no_exec(), vec![("http", port)]);
    let url = |path: &str| format!("http://127.0.0.1:{port}{path}");
    let cases: Vec<(Probe, ProbeResult)> = vec![
        (http_probe(IntOrString::Int(port.into()), "/ok"), ProbeResult::Success),
        (http_probe(IntOrString::String("http".into()), "/ok"), ProbeResult::Success),
        (http_probe(IntOrString::String(port.to_string()), "/ok"), ProbeResult::Success),
        (
            http_probe(IntOrString::Int(port.into()), "/fail"),
            ProbeResult::Failure("HTTP probe failed with statuscode: 500".into()),
        ),
        (
            http_probe(IntOrString::Int(port.into()), "/not-found-is-failure"),
            ProbeResult::Failure("HTTP probe failed with statuscode: 404".into()),
        ),
        (http_probe(IntOrString::Int(port.into()), "/moved"), ProbeResult::Success),
        (
            http_probe(IntOrString::Int(away.port().into()), "/elsewhere"),
            ProbeResult::Warning("Probe terminated redirects, Response body: gone".into()),
        ),
        (
            http_probe(IntOrString::Int(port.into()), "/loop"),
            ProbeResult::Failure("Get \"/loop\": stopped after 10 redirects".into()),
        ),
        (
            http_probe(IntOrString::Int(port.into()), "/slow"),
            ProbeResult::Failure(format!(
                "Get \"{}\": context deadline exceeded (Client.Timeout exceeded while awaiting headers)",
                url("/slow")
            )),
        ),
        (http_probe(IntOrString::Int(port.into()), "/big"), ProbeResult::Success),
        (
            http_probe(IntOrString::String("metrics".into()), "/ok"),
            ProbeResult::Unknown("strconv.Atoi: parsing \"metrics\": invalid syntax".into()),
        ),
    ];
    for (probe, want) in cases {
        let got = run_bounded(&probe, &target).await;
        assert_eq!(got, want, "{:?}", probe.http_get);
    }

    let loops = server
        .requests()
        .iter()
        .filter(|r| r.target == "/loop")
        .count();
    assert_eq!(loops, 10, "Go's client sends 10 requests before giving up");
}

#[tokio::test]
async fn http_probe_to_a_closed_port_is_refused() {
    let port = closed_port().await;
    let target = target(no_exec(), vec![]);
    let got = run_probe(
        &http_probe(IntOrString::Int(port.into()), "/healthz"),
        &target,
    )
    .await;
    assert_eq!(
        got,
        ProbeResult::Failure(format!(
            "Get \"http://127.0.0.1:{port}/healthz\": dial tcp 127.0.0.1:{port}: connect: connection refused"
        ))
    );
}

#[tokio::test]
async fn http_probes_send_kubelets_headers() {
    let server = TestServer::start(vec![("/healthz", Reply::status(200))]).await;
    let target = target(no_exec(), vec![]);
    let mut probe = http_probe(IntOrString::Int(server.port().into()), "/healthz?verbose=1");
    if let Some(action) = probe.http_get.as_mut() {
        action.http_headers = Some(vec![
            HTTPHeader {
                name: "X-Custom".into(),
                value: "yes".into(),
            },
            HTTPHeader {
                name: "Host".into(),
                value: "app.example".into(),
            },
        ]);
    }
    assert_eq!(run_probe(&probe, &target).await, ProbeResult::Success);
    let seen = server.requests();
    let request = seen.first().expect("one request");
    assert_eq!(request.target, "/healthz?verbose=1");
    let header = |name: &str| request.headers.get(name).map(String::as_str);
    assert_eq!(header("user-agent"), Some("kube-probe/1.36"));
    assert_eq!(header("accept"), Some("*/*"));
    assert_eq!(header("x-custom"), Some("yes"));
    assert_eq!(header("host"), Some("app.example"));
    assert_eq!(header("connection"), Some("close"));
    assert_eq!(header("accept-encoding"), None);
}

#[tokio::test]
async fn redirect_warning_keeps_only_ten_kibibytes_of_body() {
    let long = "y".repeat(20 * 1024);
    let server = TestServer::start(vec![(
        "/away",
        Reply::redirect("http://elsewhere.invalid/", &long),
    )])
    .await;
    let target = target(no_exec(), vec![]);
    let got = run_probe(
        &http_probe(IntOrString::Int(server.port().into()), "/away"),
        &target,
    )
    .await;
    let ProbeResult::Warning(message) = got else {
        panic!("expected a warning, got {got:?}");
    };
    let body = message
        .strip_prefix("Probe terminated redirects, Response body: ")
        .expect("kubelet's wording");
    assert_eq!(body.len(), 10 * 1024);
}

fn tcp_probe(port: u16) -> Probe {
    Probe {
        tcp_socket: Some(TCPSocketAction {
            port: IntOrString::Int(port.into()),
            host: None,
        }),
        ..Default::default()
    }
}

#[tokio::test]
async fn tcp_probes_connect_or_report_the_dial_error() {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .await
        .expect("bind");
    let open = listener.local_addr().expect("address").port();
    let closed = closed_port().await;
    let target = target(no_exec(), vec![]);
    assert_eq!(
        run_probe(&tcp_probe(open), &target).await,
        ProbeResult::Success
    );
    assert_eq!(
        run_probe(&tcp_probe(closed), &target).await,
        ProbeResult::Failure(format!(
            "dial tcp 127.0.0.1:{closed}: connect: connection refused"
        ))
    );
}

fn exec_probe(words: &[&str], timeout: i32) -> Probe {
    Probe {
        exec: Some(ExecAction {
            command: Some(command(words)),
        }),
        timeout_seconds: Some(timeout),
        ..Default::default()
    }
}

#[tokio::test]
async fn exec_probes_judge_the_runners_answer() {
    let output = |exit_code: i32, text: &str, timed_out: bool| ExecOutput {
        exit_code,
        output: text.to_string(),
        timed_out,
    };
    let cases: Vec<(std::io::Result<ExecOutput>, ProbeResult, usize)> = vec![
        (Ok(output(0, "fine", false)), ProbeResult::Success, 1),
        (
            Ok(output(
                1,
                "cat: /tmp/healthy: No such file or directory\n",
                false,
            )),
            ProbeResult::Failure("cat: /tmp/healthy: No such file or directory\n".into()),
            1,
        ),
        (
            Ok(output(-1, "", true)),
            ProbeResult::Failure("command \"cat /tmp/healthy\" timed out".into()),
            1,
        ),
        (
            Err(std::io::Error::other("container not running")),
            ProbeResult::Unknown("container not running".into()),
            3,
        ),
    ];
    for (answer, want, calls) in cases {
        let runner = FakeRunner::answering(answer);
        let target = target(runner.clone(), vec![]);
        let got = run_probe(&exec_probe(&["cat", "/tmp/healthy"], 2), &target).await;
        assert_eq!(got, want);
        let seen = runner.calls();
        assert_eq!(
            seen.len(),
            calls,
            "errored probes are retried up to 3 times"
        );
        assert_eq!(
            seen[0],
            (command(&["cat", "/tmp/healthy"]), Duration::from_secs(2))
        );
    }
}

#[tokio::test]
async fn exec_probes_run_real_commands() {
    let target = target(Arc::new(LocalExecRunner::default()), vec![]);
    assert_eq!(
        run_probe(&exec_probe(&["sh", "-c", "exit 0"], 1), &target).await,
        ProbeResult::Success
    );

    let got = run_probe(
        &exec_probe(&["sh", "-c", "echo out; echo err >&2; exit 3"], 1),
        &target,
    )
    .await;
    let ProbeResult::Failure(output) = got else {
        panic!("expected a failure, got {got:?}");
    };
    assert!(
        output.contains("out\n") && output.contains("err\n"),
        "{output:?}"
    );

    let got = run_probe(
        &exec_probe(
            &["sh", "-c", "head -c 20000 /dev/zero | tr '\\0' a; exit 1"],
            2,
        ),
        &target,
    )
    .await;
    let ProbeResult::Failure(output) = got else {
        panic!("expected a failure, got {got:?}");
    };
    assert_eq!(output.len(), MAX_EXEC_OUTPUT_BYTES);
}

#[tokio::test]
async fn exec_probe_timeouts_kill_the_whole_process_group() {
    let dir = tempfile::tempdir().expect("temp dir");
    let pid_file = dir.path().join("pid");
    let script = format!("sleep 30 & echo $! > {}; wait", pid_file.display());
    let target = target(Arc::new(LocalExecRunner::default()), vec![]);
    let got = run_bounded(&exec_probe(&["sh", "-c", &script], 1), &target).await;
    assert_eq!(
        got,
        ProbeResult::Failure(format!(
            "command {} timed out",
            super::go_quote(&format!("sh -c {script}"))
        ))
    );

    assert_process_gone(&pid_file).await;
}

// ---- gRPC ----

/// A gRPC answer body: an optional message, then trailers.
type GrpcBody =
    StreamBody<futures::stream::Iter<std::vec::IntoIter<Result<Frame<Bytes>, Infallible>>>>;

fn grpc_reply(status: Option<u8>, code: u32, message: &str) -> Response<GrpcBody> {
    let mut trailers = HeaderMap::new();
    trailers.insert("grpc-status", HeaderValue::from(code));
    if !message.is_empty() {
        if let Ok(value) = HeaderValue::from_str(&message.replace(' ', "%20")) {
            trailers.insert("grpc-message", value);
        }
    }
    let mut frames = Vec::new();
    if let Some(status) = status {
        frames.push(Ok(Frame::data(super::grpc::frame(&[0x08, status]))));
    }
    frames.push(Ok(Frame::trailers(trailers)));
    let mut response = Response::new(StreamBody::new(futures::stream::iter(frames)));
    response
        .headers_mut()
        .insert("content-type", HeaderValue::from_static("application/grpc"));
    response
}

/// A health server: service "" serves, "sick" does not, anything else is unknown;
/// "slow" answers after 5 s; other paths are unimplemented.
async fn start_health_server() -> (u16, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .await
        .expect("bind");
    let port = listener.local_addr().expect("address").port();
    let task = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let service = hyper::service::service_fn(
                    |request: hyper::Request<hyper::body::Incoming>| async move {
                        let path = request.uri().path().to_string();
                        let body = request
                            .into_body()
                            .collect()
                            .await
                            .map(|c| c.to_bytes())
                            .unwrap_or_default();
                        let name =
                            String::from_utf8_lossy(body.get(7..).unwrap_or_default()).into_owned();
                        let reply = if path != "/grpc.health.v1.Health/Check" {
                            grpc_reply(None, 12, "unknown service")
                        } else {
                            match name.as_str() {
                                "" => grpc_reply(Some(1), 0, ""),
                                "sick" => grpc_reply(Some(2), 0, ""),
                                "slow" => {
                                    tokio::time::sleep(Duration::from_secs(5)).await;
                                    grpc_reply(Some(1), 0, "")
                                }
                                _ => grpc_reply(None, 5, "unknown service"),
                            }
                        };
                        Ok::<_, Infallible>(reply)
                    },
                );
                let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (port, task)
}

fn grpc_probe(port: u16, service: Option<&str>) -> Probe {
    Probe {
        grpc: Some(GRPCAction {
            port: port.into(),
            service: service.map(str::to_string),
        }),
        timeout_seconds: Some(1),
        ..Default::default()
    }
}

#[tokio::test]
async fn grpc_probes_call_the_health_service() {
    let (port, server) = start_health_server().await;
    let closed = closed_port().await;
    let target = target(no_exec(), vec![]);
    let cases = vec![
        (grpc_probe(port, None), ProbeResult::Success),
        (grpc_probe(port, Some("")), ProbeResult::Success),
        (
            grpc_probe(port, Some("sick")),
            ProbeResult::Failure("service unhealthy (responded with \"NOT_SERVING\")".into()),
        ),
        (
            grpc_probe(port, Some("db")),
            ProbeResult::Failure(
                "error: health rpc probe failed: rpc error: code = NotFound desc = unknown service".into(),
            ),
        ),
        (
            grpc_probe(port, Some("slow")),
            ProbeResult::Failure("timeout: health rpc did not complete within 1s".into()),
        ),
        (
            grpc_probe(closed, None),
            ProbeResult::Failure(format!(
                "timeout: failed to connect service \"127.0.0.1:{closed}\" within 1s: context deadline exceeded"
            )),
        ),
    ];
    for (probe, want) in cases {
        assert_eq!(run_bounded(&probe, &target).await, want, "{:?}", probe.grpc);
    }
    server.abort();
}

#[tokio::test]
async fn a_probe_without_a_handler_errors() {
    let runner = no_exec();
    let target = target(runner, vec![]);
    assert_eq!(
        run_probe(&Probe::default(), &target).await,
        ProbeResult::Unknown("missing probe handler".into())
    );
}

#[tokio::test]
async fn abandoning_an_exec_kills_its_process_group() {
    use super::ExecRunner;
    let dir = tempfile::tempdir().expect("temp dir");
    let pid_file = dir.path().join("pid");
    let script = format!("sleep 30 & echo $! > {}; wait", pid_file.display());
    let runner = LocalExecRunner::default();
    let words = command(&["sh", "-c", &script]);
    let abandoned = tokio::time::timeout(
        Duration::from_millis(500),
        runner.exec(&words, Duration::from_secs(30)),
    )
    .await;
    assert!(abandoned.is_err(), "the exec was still running");

    assert_process_gone(&pid_file).await;
}

/// Asserts that the process whose id is in `pid_file` is dead (gone or a zombie), allowing
/// the kernel a moment to deliver the kill.
async fn assert_process_gone(pid_file: &std::path::Path) {
    let pid = std::fs::read_to_string(pid_file).expect("pid written");
    let mut state = Some("S".to_string());
    for _ in 0..100 {
        let stat =
            std::fs::read_to_string(format!("/proc/{}/stat", pid.trim())).unwrap_or_default();
        state = stat
            .rsplit(')')
            .next()
            .and_then(|rest| rest.split_whitespace().next())
            .map(str::to_string);
        if matches!(state.as_deref(), None | Some("Z") | Some("X")) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!(
        "background child {} still alive in state {state:?}",
        pid.trim()
    );
}

fn https_probe(port: u16, path: &str) -> Probe {
    let mut probe = http_probe(IntOrString::Int(port.into()), path);
    if let Some(action) = probe.http_get.as_mut() {
        action.scheme = Some("HTTPS".to_string());
    }
    probe
}

#[tokio::test]
async fn https_probes_skip_certificate_verification() {
    let server = TestServer::start_tls(vec![
        ("/ok", Reply::status(200)),
        ("/fail", Reply::status(503)),
    ])
    .await;
    let target = target(no_exec(), vec![]);
    assert_eq!(
        run_probe(&https_probe(server.port(), "/ok"), &target).await,
        ProbeResult::Success
    );
    assert_eq!(
        run_probe(&https_probe(server.port(), "/fail"), &target).await,
        ProbeResult::Failure("HTTP probe failed with statuscode: 503".into())
    );
}

#[tokio::test]
async fn https_probe_to_a_plain_http_server_fails_like_go() {
    let server = TestServer::start(vec![("/ok", Reply::status(200))]).await;
    let port = server.port();
    let target = target(no_exec(), vec![]);
    assert_eq!(
        run_probe(&https_probe(port, "/ok"), &target).await,
        ProbeResult::Failure(format!(
            "Get \"https://127.0.0.1:{port}/ok\": http: server gave HTTP response to HTTPS client"
        ))
    );
}

#[tokio::test]
async fn local_exec_runner_sets_environment_and_directory() {
    use super::ExecRunner;
    let dir = tempfile::tempdir().expect("temp dir");
    let runner = LocalExecRunner {
        env: vec![("GREETING".to_string(), "hello".to_string())],
        clear_env: true,
        working_dir: Some(dir.path().to_path_buf()),
    };
    let output = runner
        .exec(
            &command(&["/bin/sh", "-c", "echo \"$GREETING ${HOME:-unset}\"; pwd"]),
            Duration::from_secs(5),
        )
        .await
        .expect("runs");
    let canonical = dir.path().canonicalize().expect("canonical dir");
    assert_eq!(output.exit_code, 0);
    assert_eq!(
        output.output,
        format!("hello unset\n{}\n", canonical.display())
    );
}
