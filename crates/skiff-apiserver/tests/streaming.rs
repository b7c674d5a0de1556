//! `pods/exec`, `pods/attach` and `pods/portforward` over real HTTP, with a recording node:
//! the checks kube-apiserver makes before any upgrade, the node's refusal passed through, and
//! the `101` after which the node owns the connection.

mod support;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{json, Value};
use skiff_api::resources;
use skiff_apiserver::registry::WriteOptions;
use skiff_apiserver::server::{self, ServerState};
use skiff_apiserver::streaming::{
    PodStreamKind, PodStreamRequest, PodStreams, Refusal, UpgradedConnection,
};
use support::TOKEN;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A node that records what it was handed and greets every upgraded connection; it refuses
/// the container `stopped` as the kubelet refuses one that does not run.
#[derive(Default)]
struct RecordingNode {
    served: Mutex<Vec<PodStreamRequest>>,
}

#[async_trait]
impl PodStreams for RecordingNode {
    async fn check(&self, request: &PodStreamRequest) -> Result<(), Refusal> {
        if request.container.as_deref() == Some("stopped") {
            return Err(Refusal {
                status: hyper::StatusCode::INTERNAL_SERVER_ERROR,
                content_type: "text/plain; charset=utf-8",
                body: "container not found (\"stopped\")".into(),
                headers: Vec::new(),
            });
        }
        Ok(())
    }

    async fn serve(&self, request: PodStreamRequest, mut connection: UpgradedConnection) {
        self.served.lock().unwrap().push(request);
        let _ = connection.write_all(b"hello from the node").await;
        let _ = connection.shutdown().await;
    }
}

async fn serve(node: Arc<RecordingNode>) -> (tempfile::TempDir, SocketAddr) {
    let (dir, registry) = support::fresh_registry().await;
    let pods = resources::find("", "v1", "pods").expect("pods");
    for (name, node_name) in [("web", Some("node-1")), ("unscheduled", None)] {
        let mut pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"containers": [{"name": "app", "image": "demo"},
                                    {"name": "stopped", "image": "demo"}]}});
        if let Some(node_name) = node_name {
            pod["spec"]["nodeName"] = json!(node_name);
        }
        registry
            .create(pods, Some("default"), pod, WriteOptions::default())
            .await
            .expect("pod");
    }
    let state = Arc::new(ServerState {
        registry,
        tokens: vec![TOKEN.to_string()],
        advertise_address: "127.0.0.1:0".to_string(),
        logs: None,
        streams: Some(node),
        metrics: None,
        inflight: Default::default(),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    let app = server::router(state);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (dir, address)
}

/// Sends a raw HTTP/1.1 request and reads the connection to its end (bounded).
async fn raw(address: SocketAddr, method: &str, path: &str, upgrade: bool) -> String {
    raw_with(
        address,
        method,
        path,
        upgrade.then_some("v4.channel.k8s.io"),
    )
    .await
}

/// Like [`raw`], upgrading to SPDY with `protocol` when given.
async fn raw_with(address: SocketAddr, method: &str, path: &str, protocol: Option<&str>) -> String {
    let mut stream = tokio::net::TcpStream::connect(address)
        .await
        .expect("connect");
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {TOKEN}\r\nContent-Length: 0\r\n"
    );
    if let Some(protocol) = protocol {
        head.push_str(&format!(
            "Connection: Upgrade\r\nUpgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: {protocol}\r\n"
        ));
    } else {
        head.push_str("Connection: close\r\n");
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await.expect("send");
    let read = tokio::time::timeout(Duration::from_secs(10), read_answer(&mut stream));
    read.await.expect("the server answers in time")
}

/// Reads one answer: a `101` and everything after it until the node closes the connection, or
/// another status and its `Content-Length` body (the connection stays open for the next
/// request, as HTTP/1.1 keeps it).
async fn read_answer(stream: &mut tokio::net::TcpStream) -> String {
    let mut answer = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        let n = stream.read(&mut buffer).await.expect("read");
        answer.extend_from_slice(&buffer[..n]);
        let text = String::from_utf8_lossy(&answer).into_owned();
        let Some(head_end) = text.find("\r\n\r\n") else {
            assert!(n > 0, "the connection ended inside the head: {text}");
            continue;
        };
        if text.starts_with("HTTP/1.1 101") {
            if n == 0 {
                return text;
            }
            continue;
        }
        let length: usize = text[..head_end]
            .lines()
            .find_map(|line| {
                let (name, value) = line.split_once(':')?;
                name.eq_ignore_ascii_case("content-length")
                    .then(|| value.trim().parse().ok())?
            })
            .unwrap_or_else(|| panic!("no Content-Length: {text}"));
        if answer.len() >= head_end + 4 + length || n == 0 {
            return text;
        }
    }
}

fn status_line(answer: &str) -> &str {
    answer.lines().next().unwrap_or("")
}

fn body_json(answer: &str) -> Value {
    let body = answer.split("\r\n\r\n").nth(1).unwrap_or("");
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {answer}"))
}

#[tokio::test]
async fn an_exec_upgrade_hands_the_connection_and_the_checked_request_to_the_node() {
    let node = Arc::new(RecordingNode::default());
    let (_dir, address) = serve(node.clone()).await;
    let answer = raw(
        address,
        "POST",
        "/api/v1/namespaces/default/pods/web/exec?command=sh&command=-c&command=echo+hi&container=app&stdout=true&stderr=true",
        true,
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 101"), "{answer}");
    assert!(
        answer
            .to_ascii_lowercase()
            .contains("x-stream-protocol-version: v4.channel.k8s.io"),
        "{answer}"
    );
    assert!(answer.ends_with("hello from the node"), "{answer}");
    let served = node.served.lock().unwrap();
    assert_eq!(served.len(), 1);
    let request = &served[0];
    assert_eq!(request.kind, PodStreamKind::Exec);
    assert_eq!(
        (request.namespace.as_str(), request.pod.as_str()),
        ("default", "web")
    );
    assert_eq!(request.container.as_deref(), Some("app"));
    assert_eq!(request.command, ["sh", "-c", "echo hi"]);
    assert!(request.remote_command.stdout && request.remote_command.stderr);
    assert!(!request.remote_command.stdin && !request.remote_command.tty);
    assert!(!request.uid.is_empty(), "the pod's uid goes to the node");
}

#[tokio::test]
async fn streaming_requests_are_refused_as_kubernetes_refuses_them() {
    let node = Arc::new(RecordingNode::default());
    let (_dir, address) = serve(node.clone()).await;
    let exec = "/api/v1/namespaces/default/pods";

    let answer = raw(
        address,
        "PUT",
        &format!("{exec}/web/exec?command=true&stdout=1"),
        true,
    )
    .await;
    assert!(status_line(&answer).contains(" 405"), "{answer}");

    let answer = raw(
        address,
        "GET",
        &format!("{exec}/nope/exec?command=true&stdout=1"),
        true,
    )
    .await;
    assert!(status_line(&answer).contains(" 404"), "{answer}");
    assert_eq!(body_json(&answer)["message"], "pods \"nope\" not found");

    let answer = raw(
        address,
        "GET",
        &format!("{exec}/web/exec?container=app&stdout=1"),
        true,
    )
    .await;
    assert!(status_line(&answer).contains(" 400"), "{answer}");
    assert_eq!(
        body_json(&answer)["message"],
        "you must specify at least 1 command"
    );

    let answer = raw(
        address,
        "GET",
        &format!("{exec}/web/exec?container=nope&command=true&stdout=1"),
        true,
    )
    .await;
    assert!(status_line(&answer).contains(" 400"), "{answer}");
    assert_eq!(
        body_json(&answer)["message"],
        "container nope is not valid for pod web"
    );

    let answer = raw(
        address,
        "GET",
        &format!("{exec}/unscheduled/attach?container=app&stdout=1"),
        true,
    )
    .await;
    assert!(status_line(&answer).contains(" 400"), "{answer}");
    assert_eq!(
        body_json(&answer)["message"],
        "pod unscheduled does not have a host assigned"
    );

    let answer = raw(
        address,
        "GET",
        &format!("{exec}/web/exec?container=app&command=true&stdout=1"),
        false,
    )
    .await;
    assert!(status_line(&answer).contains(" 400"), "{answer}");
    assert_eq!(body_json(&answer)["message"], "Upgrade request required");

    // The node's refusal passes through as it wrote it: kubectl prints
    // `unable to upgrade connection: container not found ("stopped")`.
    let answer = raw(
        address,
        "POST",
        &format!("{exec}/web/exec?container=stopped&command=true&stdout=1"),
        true,
    )
    .await;
    assert!(status_line(&answer).contains(" 500"), "{answer}");
    assert!(
        answer.ends_with("container not found (\"stopped\")"),
        "{answer}"
    );

    // Port-forward needs no container, and speaks its own protocol.
    let answer = raw(address, "POST", &format!("{exec}/web/portforward"), true).await;
    assert!(status_line(&answer).contains(" 403"), "{answer}");
    let path = format!("{exec}/web/portforward");
    let answer = raw_with(address, "POST", &path, Some("portforward.k8s.io")).await;
    assert!(answer.starts_with("HTTP/1.1 101"), "{answer}");

    let served = node.served.lock().unwrap();
    let kinds: Vec<PodStreamKind> = served.iter().map(|r| r.kind).collect();
    assert_eq!(
        kinds,
        [PodStreamKind::PortForward],
        "no refused request reached the node"
    );
    assert_eq!(served[0].container, None);
}
