use std::sync::Arc;

use async_trait::async_trait;
use serde_json::json;

use super::*;
use crate::metrics::ContainerUsage;
use crate::registry::WriteOptions;

#[test]
fn cpu_prints_as_canonical_decimal_quantities() {
    let cases = [
        (0, "0"),
        (1, "1n"),
        (12_345, "12345n"),
        (1_000, "1u"),
        (250_000_000, "250m"),
        (1_500_000_000, "1500m"),
        (2_000_000_000, "2"),
        (2_000_000_001, "2000000001n"),
        (3_000_000_000_000, "3k"),
    ];
    for (nanocores, text) in cases {
        assert_eq!(format_nanocores(nanocores), text, "{nanocores}");
    }
}

#[test]
fn memory_prints_as_canonical_binary_quantities() {
    let cases = [
        (0, "0"),
        (512, "512"),
        (1024, "1Ki"),
        (1_263_616, "1234Ki"),
        (64 << 20, "64Mi"),
        (3 << 30, "3Gi"),
        (1_000_000, "1000000"),
        (1536, "1536"),
    ];
    for (bytes, text) in cases {
        assert_eq!(format_bytes(bytes), text, "{bytes}");
    }
}

#[test]
fn windows_print_as_go_durations() {
    let cases = [
        (Duration::ZERO, "0s"),
        (Duration::from_secs(15), "15s"),
        (Duration::from_millis(10_500), "10.5s"),
        (Duration::from_millis(5_003), "5.003s"),
        (Duration::from_secs(60), "1m0s"),
        (Duration::from_secs(3723), "1h2m3s"),
        (Duration::from_millis(250), "250ms"),
        (Duration::from_micros(1500), "1.5ms"),
        (Duration::from_nanos(800), "800ns"),
    ];
    for (duration, text) in cases {
        assert_eq!(go_duration(duration), text, "{duration:?}");
    }
}

#[test]
fn times_print_in_whole_seconds() {
    let at = UNIX_EPOCH + Duration::from_millis(1_700_000_000_750);
    assert_eq!(format_time(at), "2023-11-14T22:13:20Z");
}

#[test]
fn paths_name_pods_and_nodes() {
    let pods = |ns: Option<&str>, name: Option<&str>| {
        Some(Ok(MetricsTarget::Pods {
            namespace: ns.map(str::to_string),
            name: name.map(str::to_string),
        }))
    };
    let cases = [
        ("/apis/metrics.k8s.io/v1beta1/pods", pods(None, None)),
        (
            "/apis/metrics.k8s.io/v1beta1/namespaces/a/pods",
            pods(Some("a"), None),
        ),
        (
            "/apis/metrics.k8s.io/v1beta1/namespaces/a/pods/web",
            pods(Some("a"), Some("web")),
        ),
        (
            "/apis/metrics.k8s.io/v1beta1/nodes",
            Some(Ok(MetricsTarget::Nodes { name: None })),
        ),
        (
            "/apis/metrics.k8s.io/v1beta1/nodes/n1",
            Some(Ok(MetricsTarget::Nodes {
                name: Some("n1".into()),
            })),
        ),
        ("/apis/metrics.k8s.io/v1beta1", None),
        ("/apis/apps/v1/deployments", None),
        (
            "/apis/metrics.k8s.io/v1beta1/pods/web",
            Some(Err(ApiError::path_not_found())),
        ),
        (
            "/apis/metrics.k8s.io/v1beta1/widgets",
            Some(Err(ApiError::path_not_found())),
        ),
    ];
    for (path, expected) in cases {
        assert_eq!(parse_path(path), expected, "{path}");
    }
}

/// A source with fixed figures.
struct Fixed {
    pods: Vec<PodUsage>,
    nodes: Vec<NodeUsage>,
}

#[async_trait]
impl ResourceMetrics for Fixed {
    async fn pods(&self) -> Vec<PodUsage> {
        self.pods.clone()
    }
    async fn nodes(&self) -> Vec<NodeUsage> {
        self.nodes.clone()
    }
}

fn at() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_700_000_000)
}

fn usage(namespace: &str, name: &str, cpu: &[u64]) -> PodUsage {
    PodUsage {
        namespace: namespace.to_string(),
        name: name.to_string(),
        timestamp: at(),
        window: Duration::from_secs(15),
        containers: cpu
            .iter()
            .enumerate()
            .map(|(i, cpu)| ContainerUsage {
                name: format!("c{i}"),
                cpu_nanocores: *cpu,
                memory_bytes: 8 << 20,
            })
            .collect(),
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    registry: Registry,
    metrics: Arc<dyn ResourceMetrics>,
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = skiff_store::SqliteStore::open(&dir.path().join("s.db")).unwrap();
    let registry = Registry::new(Arc::new(store));
    crate::system::ensure_builtin_namespaces(&registry)
        .await
        .unwrap();
    let pods = &skiff_api::kinds::pod::V1;
    let nodes = &skiff_api::kinds::node::V1;
    for (ns, name, app) in [
        ("default", "web-1", "web"),
        ("default", "web-2", "web"),
        ("default", "db", "db"),
        ("default", "fresh", "web"),
        ("kube-system", "dns", "dns"),
    ] {
        let pod = json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "labels": {"app": app}},
            "spec": {"containers": [{"name": "c0", "image": "demo"}]}});
        registry
            .create(pods, Some(ns), pod, WriteOptions::default())
            .await
            .unwrap();
    }
    for name in ["node-a", "node-b"] {
        let node = json!({"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}}});
        registry
            .create(nodes, None, node, WriteOptions::default())
            .await
            .unwrap();
    }
    let metrics = Arc::new(Fixed {
        pods: vec![
            usage("default", "web-2", &[2_000_000, 3_000_000]),
            usage("default", "web-1", &[250_000_000]),
            usage("default", "db", &[12_345]),
            usage("kube-system", "dns", &[1_000_000]),
            // Measured but no longer stored: never reported.
            usage("default", "deleted", &[1]),
        ],
        nodes: vec![NodeUsage {
            name: "node-a".to_string(),
            timestamp: at(),
            window: Duration::from_millis(10_500),
            cpu_nanocores: 1_500_000_000,
            memory_bytes: 2 << 30,
        }],
    });
    Fixture {
        _dir: dir,
        registry,
        metrics,
    }
}

impl Fixture {
    async fn serve(&self, target: MetricsTarget, query: MetricsQuery) -> Result<Value, ApiError> {
        serve(&self.registry, self.metrics.as_ref(), target, &query).await
    }
}

fn names(list: &Value) -> Vec<String> {
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            format!(
                "{}/{}",
                i["metadata"]["namespace"].as_str().unwrap_or(""),
                i["metadata"]["name"].as_str().unwrap()
            )
        })
        .collect()
}

fn pods_in(ns: Option<&str>) -> MetricsTarget {
    MetricsTarget::Pods {
        namespace: ns.map(str::to_string),
        name: None,
    }
}

#[tokio::test]
async fn lists_hold_measured_stored_pods_in_order() {
    let f = fixture().await;
    let all = f
        .serve(pods_in(None), MetricsQuery::default())
        .await
        .unwrap();
    assert_eq!(all["kind"], "PodMetricsList");
    assert_eq!(all["apiVersion"], "metrics.k8s.io/v1beta1");
    assert_eq!(all["metadata"], json!({}));
    assert_eq!(
        names(&all),
        [
            "default/db",
            "default/web-1",
            "default/web-2",
            "kube-system/dns"
        ]
    );
    let default = f
        .serve(pods_in(Some("default")), MetricsQuery::default())
        .await
        .unwrap();
    assert_eq!(
        names(&default),
        ["default/db", "default/web-1", "default/web-2"]
    );
    let selected = f
        .serve(
            pods_in(Some("default")),
            MetricsQuery {
                label_selector: Some("app=web".into()),
                ..MetricsQuery::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(names(&selected), ["default/web-1", "default/web-2"]);
    let bad = f
        .serve(
            pods_in(None),
            MetricsQuery {
                label_selector: Some("app==,".into()),
                ..MetricsQuery::default()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(bad.code, 400);
}

#[tokio::test]
async fn a_pod_metrics_object_is_shaped_like_metrics_servers() {
    let f = fixture().await;
    let web = f
        .serve(
            MetricsTarget::Pods {
                namespace: Some("default".into()),
                name: Some("web-2".into()),
            },
            MetricsQuery::default(),
        )
        .await
        .unwrap();
    assert_eq!(web["kind"], "PodMetrics");
    assert_eq!(web["metadata"]["name"], "web-2");
    assert_eq!(web["metadata"]["namespace"], "default");
    assert_eq!(web["metadata"]["labels"], json!({"app": "web"}));
    assert!(web["metadata"]["creationTimestamp"].is_string());
    assert_eq!(web["timestamp"], "2023-11-14T22:13:20Z");
    assert_eq!(web["window"], "15s");
    assert_eq!(
        web["containers"],
        json!([
            {"name": "c0", "usage": {"cpu": "2m", "memory": "8Mi"}},
            {"name": "c1", "usage": {"cpu": "3m", "memory": "8Mi"}},
        ])
    );
}

#[tokio::test]
async fn unknown_and_unmeasured_pods_are_not_found() {
    let f = fixture().await;
    for name in ["nope", "fresh"] {
        let err = f
            .serve(
                MetricsTarget::Pods {
                    namespace: Some("default".into()),
                    name: Some(name.into()),
                },
                MetricsQuery::default(),
            )
            .await
            .unwrap_err();
        assert_eq!(err.code, 404);
        assert_eq!(err.reason, "NotFound");
        assert_eq!(
            err.message,
            format!("podmetrics.metrics.k8s.io \"{name}\" not found")
        );
        assert_eq!(
            err.details,
            Some(json!({"name": name, "group": "metrics.k8s.io", "kind": "podmetrics"}))
        );
    }
    let err = f
        .serve(
            MetricsTarget::Nodes {
                name: Some("node-b".into()),
            },
            MetricsQuery::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(
        err.message,
        "nodemetrics.metrics.k8s.io \"node-b\" not found"
    );
}

#[tokio::test]
async fn nodes_report_usage_and_labels() {
    let f = fixture().await;
    let list = f
        .serve(MetricsTarget::Nodes { name: None }, MetricsQuery::default())
        .await
        .unwrap();
    assert_eq!(list["kind"], "NodeMetricsList");
    assert_eq!(names(&list), ["/node-a"]);
    let node = &list["items"][0];
    assert_eq!(node["kind"], "NodeMetrics");
    assert_eq!(node["usage"], json!({"cpu": "1500m", "memory": "2Gi"}));
    assert_eq!(node["window"], "10.5s");
    assert_eq!(
        node["metadata"]["labels"],
        json!({"kubernetes.io/hostname": "node-a"})
    );
    assert!(node["metadata"].get("namespace").is_none());
}

#[tokio::test]
async fn tables_sum_containers() {
    let f = fixture().await;
    let table = f
        .serve(
            pods_in(Some("default")),
            MetricsQuery {
                table: true,
                ..MetricsQuery::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(table["kind"], "Table");
    let columns: Vec<&str> = table["columnDefinitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(columns, ["Name", "cpu", "memory", "Window"]);
    assert_eq!(
        table["rows"][2]["cells"],
        json!(["web-2", "5m", "16Mi", "15s"])
    );
    assert_eq!(table["rows"][2]["object"]["kind"], "PartialObjectMetadata");
}
