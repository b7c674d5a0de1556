//! Test support shared by the HTTP tests: a registry over a fresh SQLite store served on a
//! loopback port, and one-request clients that each open a fresh connection.

// Each test binary uses only part of this module.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{AUTHORIZATION, HOST};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use skiff_apiserver::metrics::ResourceMetrics;
use skiff_apiserver::registry::Registry;
use skiff_apiserver::server::{self, ServerState};
use skiff_apiserver::system;
use skiff_store::SqliteStore;

/// The bearer token every served test server accepts.
pub const TOKEN: &str = "apiserver-test-token";

/// A registry over a fresh store in a temporary directory (kept while this lives), served over
/// plain HTTP on a loopback port.
pub struct Served {
    _dir: tempfile::TempDir,
    /// The registry the server answers from, for seeding and checking objects directly.
    pub registry: Registry,
    /// Where the server listens.
    pub address: SocketAddr,
}

/// A registry over a fresh store holding the built-in namespaces, with the directory that must
/// outlive it.
pub async fn fresh_registry() -> (tempfile::TempDir, Registry) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqliteStore::open(&dir.path().join("state.db")).expect("open store");
    let registry = Registry::new(Arc::new(store));
    system::ensure_builtin_namespaces(&registry)
        .await
        .expect("namespaces");
    (dir, registry)
}

/// Serves a fresh registry with no metrics source and no extra routes.
pub async fn serve() -> Served {
    let (dir, registry) = fresh_registry().await;
    serve_registry(dir, registry, None, Router::new()).await
}

/// Serves `registry` (whose store lives in `dir`) with `metrics` as its metrics source and
/// `extra` routes beside the API, accepting [`TOKEN`].
pub async fn serve_registry(
    dir: tempfile::TempDir,
    registry: Registry,
    metrics: Option<Arc<dyn ResourceMetrics>>,
    extra: Router<Arc<ServerState>>,
) -> Served {
    let state = Arc::new(ServerState {
        registry: registry.clone(),
        tokens: vec![TOKEN.to_string()],
        advertise_address: "127.0.0.1:0".to_string(),
        logs: None,
        streams: None,
        metrics,
        inflight: Default::default(),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    let app = server::router_with(state, extra);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Served {
        _dir: dir,
        registry,
        address,
    }
}

/// A request to `path` carrying the Host header and `token` as its bearer token; the caller
/// adds its own headers and body.
pub fn request_with_token(
    method: Method,
    path: &str,
    token: &str,
) -> hyper::http::request::Builder {
    Request::builder()
        .method(method)
        .uri(path)
        .header(HOST, "localhost")
        .header(AUTHORIZATION, format!("Bearer {token}"))
}

/// A request to `path` carrying the Host header and [`TOKEN`].
pub fn request(method: Method, path: &str) -> hyper::http::request::Builder {
    request_with_token(method, path, TOKEN)
}

/// Sends `request` on a fresh HTTP/1.1 connection and returns the response with its body
/// unread.
pub async fn send_streaming(
    address: SocketAddr,
    request: Request<Full<Bytes>>,
) -> hyper::Response<hyper::body::Incoming> {
    let stream = tokio::net::TcpStream::connect(address)
        .await
        .expect("connect");
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    tokio::spawn(connection);
    sender.send_request(request).await.expect("send")
}

/// Sends `request` on a fresh connection; the status and the whole body, however it was
/// framed.
pub async fn send(address: SocketAddr, request: Request<Full<Bytes>>) -> (StatusCode, Bytes) {
    let response = send_streaming(address, request).await;
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    (status, body)
}
