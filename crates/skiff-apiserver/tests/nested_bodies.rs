//! Deeply nested request bodies over real HTTP, handled on the server's worker threads: past
//! Kubernetes' depth limit they get Kubernetes' 400 before any parsing; within Skiff's own
//! limits they are parsed; between the two they get a 400 naming the limit, never a crash.

mod support;

use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{ACCEPT, CONTENT_TYPE};
use hyper::{Method, StatusCode};
use serde_json::Value;
use skiff_api::nesting::{KUBERNETES_MAX_DEPTH, MAX_STORED_DEPTH, MAX_YAML_DEPTH};
use support::serve;

const CONFIGMAPS: &str = "/api/v1/namespaces/default/configmaps";

/// One POST of `body` as `content_type`; the status and the decoded answer.
async fn post(address: SocketAddr, content_type: &str, body: String) -> (StatusCode, Value) {
    let request = support::request(Method::POST, CONFIGMAPS)
        .header(ACCEPT, "application/json")
        .header(CONTENT_TYPE, content_type)
        .body(Full::new(Bytes::from(body)))
        .expect("request");
    let (status, bytes) = support::send(address, request).await;
    let answer = serde_json::from_slice(&bytes)
        .unwrap_or_else(|e| panic!("the answer is not JSON ({e}): {bytes:?}"));
    (status, answer)
}

/// A ConfigMap carrying `nested` under a field ConfigMaps do not have, which the default field
/// validation drops after parsing: the body must parse for the create to succeed.
fn json_config_map(name: &str, nested: &str) -> String {
    format!(
        r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"{name}"}},"extra":{nested}}}"#
    )
}

fn yaml_config_map(name: &str, nested: &str) -> String {
    format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\nextra: {nested}\n")
}

/// `depth` nested arrays around a number.
fn arrays(depth: usize) -> String {
    format!("{}1{}", "[".repeat(depth), "]".repeat(depth))
}

fn assert_bad_request(status: StatusCode, answer: &Value, message: &str) {
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert_eq!(answer["kind"], "Status", "{answer}");
    assert_eq!(answer["reason"], "BadRequest", "{answer}");
    assert_eq!(answer["code"], 400, "{answer}");
    let got = answer["message"].as_str().unwrap_or_default();
    assert!(got.contains(message), "expected {message:?} in {got:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn yaml_past_kubernetes_depth_gets_its_status_before_parsing() {
    let served = serve().await;
    // Flow nesting: the whole document on one line, which Kubernetes reports without a line.
    let (status, answer) = post(
        served.address,
        "application/yaml",
        yaml_config_map("flow", &arrays(100_000)),
    )
    .await;
    // The nesting is on line 5, as the decoder counts lines from 1.
    assert_bad_request(
        status,
        &answer,
        "error converting YAML to JSON: yaml: line 5: exceeded max depth of 10000",
    );
    let flat = format!("{{\"extra\": {}}}", arrays(KUBERNETES_MAX_DEPTH + 1));
    let (status, answer) = post(served.address, "application/yaml", flat).await;
    assert_bad_request(
        status,
        &answer,
        "error converting YAML to JSON: yaml: exceeded max depth of 10000",
    );
    // Block nesting: 100000 compact sequences, a few hundred KiB of text.
    let block = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: block\nextra:\n{}x\n",
        "- ".repeat(100_000)
    );
    let (status, answer) = post(served.address, "application/yaml", block).await;
    assert_bad_request(status, &answer, "yaml: line 6: exceeded max depth of 10000");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn yaml_within_its_budget_is_parsed_and_deeper_is_refused() {
    let served = serve().await;
    // The ConfigMap's own mapping is one level, `extra` holds the rest.
    let (status, answer) = post(
        served.address,
        "application/yaml",
        yaml_config_map("deepest", &arrays(MAX_YAML_DEPTH - 1)),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    assert_eq!(answer["metadata"]["name"], "deepest");
    let (status, answer) = post(
        served.address,
        "application/yaml",
        yaml_config_map("deeper", &arrays(MAX_YAML_DEPTH)),
    )
    .await;
    assert_bad_request(status, &answer, "error converting YAML to JSON: yaml: ");
    assert_bad_request(status, &answer, "Depth");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_past_kubernetes_depth_gets_its_status_and_within_storage_depth_is_parsed() {
    let served = serve().await;
    let (status, answer) = post(
        served.address,
        "application/json",
        json_config_map("far", &arrays(100_000)),
    )
    .await;
    assert_bad_request(
        status,
        &answer,
        "couldn't get version/kind; json parse error: invalid character '[' exceeded max depth",
    );
    // Kubernetes takes up to 10000 levels; Skiff stores what serde_json reads back.
    let (status, answer) = post(
        served.address,
        "application/json",
        json_config_map("deepest", &arrays(MAX_STORED_DEPTH - 1)),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    let (status, answer) = post(
        served.address,
        "application/json",
        json_config_map("deeper", &arrays(MAX_STORED_DEPTH)),
    )
    .await;
    assert_bad_request(
        status,
        &answer,
        "couldn't get version/kind; json parse error: recursion limit exceeded",
    );
}
