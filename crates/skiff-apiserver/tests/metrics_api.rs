//! `metrics.k8s.io` over real HTTP: advertised in discovery only when the server has a metrics
//! source, authenticated like every other path, answering with metrics-server's shapes.

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use axum::Router;
use http_body_util::Full;
use hyper::header::ACCEPT;
use hyper::{Method, StatusCode};
use serde_json::{json, Value};
use skiff_api::resources;
use skiff_apiserver::metrics::{ContainerUsage, NodeUsage, PodUsage, ResourceMetrics};
use skiff_apiserver::registry::WriteOptions;
use support::{Served, TOKEN};

const AGGREGATED: &str =
    "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json";

/// One pod `web` using 100m and 4Mi; no node figures.
struct OnePod;

#[async_trait]
impl ResourceMetrics for OnePod {
    async fn pods(&self) -> Vec<PodUsage> {
        vec![PodUsage {
            namespace: "default".into(),
            name: "web".into(),
            timestamp: SystemTime::now(),
            window: Duration::from_secs(5),
            containers: vec![ContainerUsage {
                name: "app".into(),
                cpu_nanocores: 100_000_000,
                memory_bytes: 4 << 20,
            }],
        }]
    }
    async fn nodes(&self) -> Vec<NodeUsage> {
        Vec::new()
    }
}

/// Serves a fresh registry holding the pod `web`, with `metrics` as its metrics source.
async fn serve(metrics: Option<Arc<dyn ResourceMetrics>>) -> Served {
    let (dir, registry) = support::fresh_registry().await;
    let pods = resources::find("", "v1", "pods").expect("pods");
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web"},
        "spec": {"containers": [{"name": "app", "image": "demo"}]}});
    registry
        .create(pods, Some("default"), pod, WriteOptions::default())
        .await
        .expect("pod");
    support::serve_registry(dir, registry, metrics, Router::new()).await
}

async fn get(address: SocketAddr, path: &str, accept: &str, token: &str) -> (StatusCode, Value) {
    let request = support::request_with_token(Method::GET, path, token)
        .header(ACCEPT, accept)
        .body(Full::default())
        .expect("request");
    let (status, body) = support::send(address, request).await;
    (status, serde_json::from_slice(&body).expect("JSON body"))
}

fn advertises_metrics(legacy: &Value, aggregated: &Value) -> (bool, bool) {
    let in_legacy = legacy["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .any(|g| g["name"] == "metrics.k8s.io");
    let in_aggregated = aggregated["items"]
        .as_array()
        .expect("items")
        .iter()
        .any(|g| g["metadata"]["name"] == "metrics.k8s.io");
    (in_legacy, in_aggregated)
}

#[tokio::test]
async fn without_a_source_the_group_does_not_exist() {
    let served = serve(None).await;
    let (_, legacy) = get(served.address, "/apis", "application/json", TOKEN).await;
    let (_, aggregated) = get(served.address, "/apis", AGGREGATED, TOKEN).await;
    assert_eq!(advertises_metrics(&legacy, &aggregated), (false, false));
    for path in [
        "/apis/metrics.k8s.io",
        "/apis/metrics.k8s.io/v1beta1",
        "/apis/metrics.k8s.io/v1beta1/pods",
    ] {
        let (status, _) = get(served.address, path, "application/json", TOKEN).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
    }
}

#[tokio::test]
async fn with_a_source_the_group_is_discovered_and_served() {
    let served = serve(Some(Arc::new(OnePod))).await;
    let (_, legacy) = get(served.address, "/apis", "application/json", TOKEN).await;
    let (_, aggregated) = get(served.address, "/apis", AGGREGATED, TOKEN).await;
    assert_eq!(advertises_metrics(&legacy, &aggregated), (true, true));

    let (status, group) = get(
        served.address,
        "/apis/metrics.k8s.io",
        "application/json",
        TOKEN,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        group["preferredVersion"]["groupVersion"],
        "metrics.k8s.io/v1beta1"
    );
    let (_, list) = get(
        served.address,
        "/apis/metrics.k8s.io/v1beta1",
        "application/json",
        TOKEN,
    )
    .await;
    assert_eq!(list["kind"], "APIResourceList");

    let (status, pods) = get(
        served.address,
        "/apis/metrics.k8s.io/v1beta1/namespaces/default/pods",
        "application/json",
        TOKEN,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(pods["kind"], "PodMetricsList");
    assert_eq!(
        pods["items"][0]["containers"],
        json!([{"name": "app", "usage": {"cpu": "100m", "memory": "4Mi"}}])
    );
    assert_eq!(pods["items"][0]["window"], "5s");

    let (status, missing) = get(
        served.address,
        "/apis/metrics.k8s.io/v1beta1/namespaces/default/pods/nope",
        "application/json",
        TOKEN,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(missing["kind"], "Status");
    assert_eq!(missing["reason"], "NotFound");
    assert_eq!(
        missing["message"],
        "podmetrics.metrics.k8s.io \"nope\" not found"
    );

    let (status, _) = get(
        served.address,
        "/apis/metrics.k8s.io/v1beta1/pods",
        "application/json",
        "wrong-token",
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}
