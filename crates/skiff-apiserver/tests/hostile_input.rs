//! Hostile input over real HTTP: a panicking handler or stream answers that request only, an
//! oversized body gets a 413 `Status`, an oversized header block a 431, and a JSON patch copy
//! chain a 422, while the server keeps serving.

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::routing::get as route_get;
use axum::Router;
use bytes::Bytes;
use futures::StreamExt;
use http_body_util::{BodyExt, Full};
use hyper::{Method, StatusCode};
use serde_json::{json, Value};
use skiff_apiserver::recovery::PANIC_MESSAGE;
use skiff_apiserver::server::ServerState;
use support::{Served, TOKEN};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const DEADLINE: Duration = Duration::from_secs(60);

/// Routes that fail on purpose: a handler that panics, a stream that panics after its first
/// chunk, and a steady stream that must outlive the panicking one.
fn faulty_routes() -> Router<Arc<ServerState>> {
    Router::new()
        .route(
            "/test/panic",
            route_get(|| async {
                if std::hint::black_box(true) {
                    panic!("deliberate handler panic");
                }
                "unreachable"
            }),
        )
        .route(
            "/test/panicking-stream",
            route_get(|| async {
                // The panic waits until the head and the first chunk are on their way.
                let chunks = futures::stream::iter(0..2).then(|i| async move {
                    if i == 1 {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        panic!("deliberate stream panic");
                    }
                    Ok::<_, std::io::Error>(Bytes::from_static(b"first\n"))
                });
                Body::from_stream(chunks)
            }),
        )
        .route(
            "/test/steady-stream",
            route_get(|| async {
                let chunks = futures::stream::iter(0..10).then(|i| async move {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    Ok::<_, std::io::Error>(Bytes::from(format!("line {i}\n")))
                });
                Body::from_stream(chunks)
            }),
        )
}

async fn serve() -> Served {
    let (dir, registry) = support::fresh_registry().await;
    support::serve_registry(dir, registry, None, faulty_routes()).await
}

/// Sends a GET on a fresh connection and returns the response with its body unread.
async fn get_streaming(address: SocketAddr, path: &str) -> hyper::Response<hyper::body::Incoming> {
    let request = support::request(Method::GET, path)
        .body(Full::default())
        .expect("request");
    support::send_streaming(address, request).await
}

async fn get(address: SocketAddr, path: &str) -> (StatusCode, Bytes) {
    let request = support::request(Method::GET, path)
        .body(Full::default())
        .expect("request");
    support::send(address, request).await
}

/// Writes `head` and `body` on a fresh connection, all of it before reading anything (as
/// simple clients do), then reads the whole answer: its status code, head and body.
async fn raw_exchange(address: SocketAddr, head: &str, body: &[u8]) -> (u16, String, Vec<u8>) {
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(address)
            .await
            .expect("connect");
        stream.write_all(head.as_bytes()).await.expect("send head");
        stream.write_all(body).await.expect("send body");
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await.expect("read answer");
        raw
    };
    let raw = tokio::time::timeout(DEADLINE, exchange)
        .await
        .expect("the exchange finishes in time");
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no response head in {:?}", String::from_utf8_lossy(&raw)));
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status code in {head:?}"));
    (code, head, raw[split + 4..].to_vec())
}

fn status_of(body: &[u8]) -> Value {
    serde_json::from_slice(body)
        .unwrap_or_else(|e| panic!("not a Status ({e}): {:?}", String::from_utf8_lossy(body)))
}

#[tokio::test]
async fn a_panicking_handler_answers_500_and_the_server_keeps_serving() {
    let served = serve().await;
    let (code, body) = get(served.address, "/test/panic").await;
    assert_eq!(code, StatusCode::INTERNAL_SERVER_ERROR);
    let status = status_of(&body);
    assert_eq!(status["kind"], "Status");
    assert_eq!(status["status"], "Failure");
    assert_eq!(status["reason"], "InternalError");
    assert_eq!(status["code"], 500);
    assert_eq!(status["message"], PANIC_MESSAGE);

    let (code, body) = get(served.address, "/api/v1/namespaces").await;
    assert_eq!(code, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    assert_eq!(status_of(&body)["kind"], "NamespaceList");
}

/// The next frame of a streamed answer, which must be data.
async fn next_data(body: &mut hyper::body::Incoming) -> Bytes {
    body.frame()
        .await
        .expect("a next frame")
        .expect("no error")
        .into_data()
        .expect("data")
}

#[tokio::test]
async fn a_panicking_stream_ends_only_itself() {
    let served = serve().await;
    let steady = get_streaming(served.address, "/test/steady-stream").await;
    assert_eq!(steady.status(), StatusCode::OK);
    let mut steady = steady.into_body();
    let first = next_data(&mut steady).await;
    assert_eq!(first, Bytes::from_static(b"line 0\n"));

    let panicking = get_streaming(served.address, "/test/panicking-stream").await;
    assert_eq!(panicking.status(), StatusCode::OK);
    let mut panicking = panicking.into_body();
    let first = next_data(&mut panicking).await;
    assert_eq!(first, Bytes::from_static(b"first\n"));
    let cut = tokio::time::timeout(DEADLINE, panicking.collect())
        .await
        .expect("the panicking stream ends");
    assert!(
        cut.is_err(),
        "a stream cut by a panic must not end as if complete"
    );

    let rest = tokio::time::timeout(DEADLINE, steady.collect())
        .await
        .expect("the steady stream ends")
        .expect("the steady stream is not cut")
        .to_bytes();
    let expected: String = (1..10).map(|i| format!("line {i}\n")).collect();
    assert_eq!(String::from_utf8_lossy(&rest), expected);

    let (code, _) = get(served.address, "/api/v1/namespaces").await;
    assert_eq!(code, StatusCode::OK);
}

#[tokio::test]
async fn a_100_mib_body_gets_a_413_status() {
    let served = serve().await;
    let body = vec![b' '; 100 * 1024 * 1024];
    for (framing, head) in [
        (
            "Content-Length",
            format!(
                "POST /api/v1/namespaces/default/configmaps HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            ),
        ),
        (
            "chunked",
            format!(
                "POST /api/v1/namespaces/default/configmaps HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
            ),
        ),
    ] {
        let payload = if framing == "chunked" {
            let mut framed = Vec::with_capacity(body.len() + 64);
            for chunk in body.chunks(1024 * 1024) {
                framed.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
                framed.extend_from_slice(chunk);
                framed.extend_from_slice(b"\r\n");
            }
            framed.extend_from_slice(b"0\r\n\r\n");
            framed
        } else {
            body.clone()
        };
        let (code, head, answer) = raw_exchange(served.address, &head, &payload).await;
        assert_eq!(code, 413, "{framing}: {head}");
        let status = status_of(&answer);
        assert_eq!(status["reason"], "RequestEntityTooLarge", "{framing}");
        assert_eq!(status["code"], 413);
        assert_eq!(status["message"], "Request entity too large: limit is 3145728");
    }
    let (code, _) = get(served.address, "/api/v1/namespaces").await;
    assert_eq!(code, StatusCode::OK);
}

#[tokio::test]
async fn an_oversized_header_block_gets_a_431() {
    let served = serve().await;
    let huge = "a".repeat(1024 * 1024);
    let head = format!(
        "GET /api/v1/namespaces HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {TOKEN}\r\nX-Filler: {huge}\r\nConnection: close\r\n\r\n"
    );
    let (code, head, _) = raw_exchange(served.address, &head, b"").await;
    assert_eq!(code, 431, "{head}");
    let (code, _) = get(served.address, "/api/v1/namespaces").await;
    assert_eq!(code, StatusCode::OK);
}

#[tokio::test]
async fn a_json_patch_copy_chain_gets_a_422() {
    let served = serve().await;
    let create = serde_json::to_vec(&json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "bomb", "annotations": {"seed": "x".repeat(1000)}}}))
    .unwrap();
    let head = format!(
        "POST /api/v1/namespaces/default/configmaps HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        create.len()
    );
    let (code, _, body) = raw_exchange(served.address, &head, &create).await;
    assert_eq!(code, 201, "{}", String::from_utf8_lossy(&body));

    let operations: Vec<Value> = (0..40)
        .map(|level| {
            json!({"op": "copy", "from": "/metadata/annotations",
            "path": format!("/metadata/annotations/l{level}")})
        })
        .collect();
    let patch = serde_json::to_vec(&operations).unwrap();
    assert!(patch.len() < 4096, "the patch itself is small");
    let head = format!(
        "PATCH /api/v1/namespaces/default/configmaps/bomb HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {TOKEN}\r\nContent-Type: application/json-patch+json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        patch.len()
    );
    let (code, head, body) = raw_exchange(served.address, &head, &patch).await;
    assert_eq!(code, 422, "{head}");
    let status = status_of(&body);
    assert_eq!(status["reason"], "Invalid");
    assert_eq!(status["code"], 422);
}

/// Sends `body` with `method` and `content_type` to `path` and returns the code and body.
async fn send(
    address: SocketAddr,
    method: &str,
    path: &str,
    content_type: &str,
    body: &[u8],
) -> (u16, Vec<u8>) {
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {TOKEN}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let (code, _, answer) = raw_exchange(address, &head, body).await;
    (code, answer)
}

#[tokio::test]
async fn scale_replicas_that_are_not_int32_are_refused_not_zeroed() {
    let served = serve().await;
    let deployment = json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}});
    let (code, body) = send(
        served.address,
        "POST",
        "/apis/apps/v1/namespaces/default/deployments",
        "application/json",
        &serde_json::to_vec(&deployment).unwrap(),
    )
    .await;
    assert_eq!(code, 201, "{}", String::from_utf8_lossy(&body));
    let scale_path = "/apis/apps/v1/namespaces/default/deployments/web/scale";
    for replicas in [json!("5"), json!(1.5), json!(1u64 << 40), json!(-1)] {
        let scale = json!({"apiVersion": "autoscaling/v1", "kind": "Scale",
            "metadata": {"name": "web", "namespace": "default"}, "spec": {"replicas": replicas}});
        let (code, body) = send(
            served.address,
            "PUT",
            scale_path,
            "application/json",
            &serde_json::to_vec(&scale).unwrap(),
        )
        .await;
        let expected = if replicas == json!(-1) { 422 } else { 400 };
        assert_eq!(
            code,
            expected,
            "replicas {replicas}: {}",
            String::from_utf8_lossy(&body)
        );
        let patch = json!({"spec": {"replicas": replicas}});
        let (code, body) = send(
            served.address,
            "PATCH",
            scale_path,
            "application/merge-patch+json",
            &serde_json::to_vec(&patch).unwrap(),
        )
        .await;
        assert_eq!(
            code,
            expected,
            "patched replicas {replicas}: {}",
            String::from_utf8_lossy(&body)
        );
    }
    let (code, body) = get(served.address, scale_path).await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(
        status_of(&body)["spec"]["replicas"],
        3,
        "the replicas are untouched"
    );
}

#[tokio::test]
async fn extreme_limits_and_watch_timeouts_are_served() {
    let served = serve().await;
    let max = u64::MAX;
    let (code, body) = get(served.address, &format!("/api/v1/namespaces?limit={max}")).await;
    assert_eq!(code, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    assert_eq!(status_of(&body)["kind"], "NamespaceList");

    let watch = get_streaming(
        served.address,
        &format!("/api/v1/namespaces?watch=1&timeoutSeconds={max}"),
    )
    .await;
    assert_eq!(watch.status(), StatusCode::OK);
    let mut events = watch.into_body();
    let first = tokio::time::timeout(DEADLINE, events.frame())
        .await
        .expect("a first event in time")
        .expect("a first frame")
        .expect("no error")
        .into_data()
        .expect("data");
    let event: Value = serde_json::from_slice(&first).expect("a JSON watch event");
    assert_eq!(event["type"], "ADDED");

    let (code, body) = get(
        served.address,
        "/api/v1/namespaces?timeoutSeconds=-1&watch=1",
    )
    .await;
    assert_eq!(
        code,
        StatusCode::BAD_REQUEST,
        "{}",
        String::from_utf8_lossy(&body)
    );
    assert_eq!(status_of(&body)["reason"], "BadRequest");
}
