//! List answers over real HTTP: the JSON list written from stored bytes and the Table built one
//! object at a time must be what decoding every object and rendering the whole list gives, and
//! paging must report `remainingItemCount` as Kubernetes does.

mod support;

use std::net::SocketAddr;

use base64::Engine;
use bytes::Bytes;
use http_body_util::Full;
use hyper::header::ACCEPT;
use hyper::{Method, StatusCode};
use serde_json::{json, Value};
use skiff_api::printers::{self, IncludeObject};
use skiff_api::resources::{self, ResourceInfo};
use skiff_apiserver::registry::{ListOptions, ObjectList, Registry, WriteOptions};
use support::serve;

const TABLE_ACCEPT: &str = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json";

/// One GET on a fresh connection; the whole body, however it was framed.
async fn get(address: SocketAddr, path: &str, accept: &str) -> (StatusCode, Bytes) {
    let request = support::request(Method::GET, path)
        .header(ACCEPT, accept)
        .body(Full::default())
        .expect("request");
    support::send(address, request).await
}

fn res(group: &str, version: &str, plural: &str) -> &'static ResourceInfo {
    resources::find(group, version, plural).expect("registered resource")
}

/// Creates the objects every case lists: ConfigMaps whose data exercises JSON escaping and
/// whose total size spans several body chunks, Deployments in two namespaces, an HPA stored in
/// one version and served in two.
async fn populate(registry: &Registry) {
    let configmaps = res("", "v1", "configmaps");
    let namespaces = res("", "v1", "namespaces");
    let deployments = res("apps", "v1", "deployments");
    let hpa_v1 = res("autoscaling", "v1", "horizontalpodautoscalers");
    let write = WriteOptions::default();
    registry
        .create(
            namespaces,
            None,
            json!({"metadata": {"name": "other"}}),
            write,
        )
        .await
        .expect("namespace");
    let filler = "x".repeat(1200);
    for n in 0..260 {
        let cm = json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": format!("cm-{n:03}"), "labels": {"shard": (n % 3).to_string()},
                         "annotations": {"note": "quote \" brace } bracket ] ünïcødé \u{1F600}"}},
            "data": {"filler": filler, "tricky": "{\"metadata\":{}}\\\n\t"},
        });
        registry
            .create(configmaps, Some("default"), cm, write)
            .await
            .expect("configmap");
    }
    for (namespace, n) in [("default", 0), ("default", 1), ("other", 2)] {
        let name = format!("web-{n}");
        let deployment = json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "labels": {"app": name}},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [{"name": "c", "image": "nginx:1.27",
                                           "ports": [{"containerPort": 80}],
                                           "resources": {"requests": {"cpu": "100m"}}}]}}},
        });
        registry
            .create(deployments, Some(namespace), deployment, write)
            .await
            .expect("deployment");
    }
    let hpa = json!({"apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "web"},
        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web-0"},
                 "minReplicas": 1, "maxReplicas": 5, "targetCPUUtilizationPercentage": 60}});
    registry
        .create(hpa_v1, Some("default"), hpa, write)
        .await
        .expect("hpa");
}

/// The list's `metadata` as the server has always rendered it.
fn list_metadata(list: &ObjectList) -> Value {
    let mut metadata = json!({"resourceVersion": list.resource_version.to_string()});
    if let Some(token) = &list.continue_token {
        metadata["continue"] = json!(token);
    }
    if let Some(remaining) = list.remaining {
        metadata["remainingItemCount"] = json!(remaining);
    }
    metadata
}

/// The reference JSON answer: every object decoded, one tree for the list, encoded at once.
fn decoded_json_answer(resource: &ResourceInfo, list: &ObjectList) -> Vec<u8> {
    let answer = json!({
        "kind": resource.list_kind(),
        "apiVersion": resource.api_version(),
        "metadata": list_metadata(list),
        "items": list.items,
    });
    serde_json::to_vec(&answer).expect("encodes")
}

/// Blanks the `Age` cells, the one column that depends on when the Table was built.
fn without_age(mut table: Value) -> Value {
    let age = table["columnDefinitions"]
        .as_array()
        .and_then(|columns| columns.iter().position(|c| c["name"] == "Age"));
    if let (Some(age), Some(rows)) = (age, table["rows"].as_array_mut()) {
        for row in rows {
            row["cells"][age] = Value::Null;
        }
    }
    table
}

fn options(label: Option<&str>, field: Option<&str>, limit: Option<usize>) -> ListOptions {
    ListOptions {
        label_selector: label.map(str::to_string),
        field_selector: field.map(str::to_string),
        limit,
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_and_table_lists_match_decoding_every_object() {
    let served = serve().await;
    populate(&served.registry).await;
    let configmaps = res("", "v1", "configmaps");
    let deployments = res("apps", "v1", "deployments");
    let namespaces = res("", "v1", "namespaces");
    let leases = res("coordination.k8s.io", "v1", "leases");
    let hpa_v1 = res("autoscaling", "v1", "horizontalpodautoscalers");
    let hpa_v2 = res("autoscaling", "v2", "horizontalpodautoscalers");
    let default_configmaps = "/api/v1/namespaces/default/configmaps";
    struct Case {
        name: &'static str,
        resource: &'static ResourceInfo,
        namespace: Option<&'static str>,
        path: String,
        options: ListOptions,
    }
    let case = |name, resource, namespace, path: &str, options| Case {
        name,
        resource,
        namespace,
        path: path.to_string(),
        options,
    };
    let cases = [
        case(
            "every configmap, several chunks",
            configmaps,
            Some("default"),
            default_configmaps,
            options(None, None, None),
        ),
        case(
            "label selector",
            configmaps,
            Some("default"),
            &format!("{default_configmaps}?labelSelector=shard%3D1"),
            options(Some("shard=1"), None, None),
        ),
        case(
            "field selector",
            configmaps,
            Some("default"),
            &format!("{default_configmaps}?fieldSelector=metadata.name%3Dcm-007"),
            options(None, Some("metadata.name=cm-007"), None),
        ),
        case(
            "first page",
            configmaps,
            Some("default"),
            &format!("{default_configmaps}?limit=50"),
            options(None, None, Some(50)),
        ),
        case(
            "selected page",
            configmaps,
            Some("default"),
            &format!("{default_configmaps}?limit=20&labelSelector=shard%3D2"),
            options(Some("shard=2"), None, Some(20)),
        ),
        case(
            "deployments in every namespace",
            deployments,
            None,
            "/apis/apps/v1/deployments",
            options(None, None, None),
        ),
        case(
            "cluster-scoped",
            namespaces,
            None,
            "/api/v1/namespaces",
            options(None, None, None),
        ),
        case(
            "empty",
            leases,
            Some("other"),
            "/apis/coordination.k8s.io/v1/namespaces/other/leases",
            options(None, None, None),
        ),
        case(
            "converted to a version other than the stored one",
            hpa_v1,
            Some("default"),
            "/apis/autoscaling/v1/namespaces/default/horizontalpodautoscalers",
            options(None, None, None),
        ),
        case(
            "stored version",
            hpa_v2,
            Some("default"),
            "/apis/autoscaling/v2/namespaces/default/horizontalpodautoscalers",
            options(None, None, None),
        ),
    ];
    for case in cases {
        let decoded = served
            .registry
            .list(case.resource, case.namespace, &case.options)
            .await
            .expect("decoded list");

        let (status, body) = get(served.address, &case.path, "application/json").await;
        assert_eq!(status, StatusCode::OK, "{}", case.name);
        let want = decoded_json_answer(case.resource, &decoded);
        assert!(
            body.as_ref() == want.as_slice(),
            "{}: JSON answer differs from decoding every object\n got: {}\nwant: {}",
            case.name,
            String::from_utf8_lossy(&body[..body.len().min(600)]),
            String::from_utf8_lossy(&want[..want.len().min(600)]),
        );

        for include in ["", "&includeObject=Object", "&includeObject=None"] {
            let separator = if case.path.contains('?') { "&" } else { "?" };
            let path = format!(
                "{}{separator}{}",
                case.path,
                include.trim_start_matches('&')
            );
            let (status, body) = get(served.address, &path, TABLE_ACCEPT).await;
            assert_eq!(status, StatusCode::OK, "{} Table {include}", case.name);
            let got: Value = serde_json::from_slice(&body).expect("Table is JSON");
            let include = IncludeObject::parse(include.split('=').nth(1));
            let mut want = printers::table(
                case.resource,
                &decoded.items,
                include,
                jiff::Timestamp::now(),
            );
            want["metadata"] = list_metadata(&decoded);
            assert_eq!(
                without_age(got),
                without_age(want),
                "{} Table {include:?}",
                case.name
            );
        }
    }
}

fn continue_of(page: &Value) -> Option<String> {
    page["metadata"]["continue"]
        .as_str()
        .filter(|t| !t.is_empty())
        .map(str::to_string)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_report_what_remains_without_recounting() {
    let served = serve().await;
    populate(&served.registry).await;
    let base = "/api/v1/namespaces/default/configmaps?limit=100";

    let mut names = Vec::new();
    let mut remaining = Vec::new();
    let mut resource_versions = Vec::new();
    let mut path = base.to_string();
    loop {
        let (status, body) = get(served.address, &path, "application/json").await;
        assert_eq!(status, StatusCode::OK);
        let page: Value = serde_json::from_slice(&body).expect("JSON page");
        names.extend(
            page["items"]
                .as_array()
                .expect("items")
                .iter()
                .map(|item| item["metadata"]["name"].as_str().unwrap_or("").to_string()),
        );
        remaining.push(page["metadata"]["remainingItemCount"].as_u64());
        resource_versions.push(page["metadata"]["resourceVersion"].clone());
        match continue_of(&page) {
            Some(token) => path = format!("{base}&continue={token}"),
            None => break,
        }
    }
    let want: Vec<String> = (0..260).map(|n| format!("cm-{n:03}")).collect();
    assert_eq!(names, want, "pages cover every object once, in order");
    assert_eq!(remaining, [Some(160), Some(60), None]);
    assert!(
        resource_versions.windows(2).all(|w| w[0] == w[1]),
        "every page reports the first page's resourceVersion: {resource_versions:?}"
    );

    // A token from before counts were carried (only a revision and a start key) still pages,
    // counting what follows.
    let revision = resource_versions[0].as_str().unwrap_or("0");
    let raw = format!(
        r#"{{"v":"meta.k8s.io/v1","rv":{revision},"start":"/registry/core/configmaps/default/cm-199"}}"#
    );
    let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw);
    let (status, body) = get(
        served.address,
        &format!("/api/v1/namespaces/default/configmaps?limit=10&continue={token}"),
        "application/json",
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let page: Value = serde_json::from_slice(&body).expect("JSON page");
    assert_eq!(page["items"][0]["metadata"]["name"], "cm-200");
    assert_eq!(page["metadata"]["remainingItemCount"], 50);

    // Selectors make the count unknown, as in Kubernetes.
    let (_, body) = get(
        served.address,
        "/api/v1/namespaces/default/configmaps?limit=10&labelSelector=shard%3D0",
        "application/json",
    )
    .await;
    let page: Value = serde_json::from_slice(&body).expect("JSON page");
    assert!(continue_of(&page).is_some());
    assert!(page["metadata"].get("remainingItemCount").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stored_lists_select_what_decoded_lists_select() {
    let served = serve().await;
    populate(&served.registry).await;
    let configmaps = res("", "v1", "configmaps");
    let deployments = res("apps", "v1", "deployments");
    let cases = [
        (
            configmaps,
            Some("default"),
            options(Some("shard in (0,2)"), None, None),
        ),
        (
            configmaps,
            Some("default"),
            options(Some("shard!=1"), None, Some(30)),
        ),
        (
            configmaps,
            Some("default"),
            options(None, Some("metadata.name!=cm-001"), Some(5)),
        ),
        (
            deployments,
            None,
            options(Some("app=web-2"), Some("metadata.namespace=other"), None),
        ),
        (deployments, None, options(Some("app"), None, Some(2))),
    ];
    for (resource, namespace, options) in cases {
        let decoded = served
            .registry
            .list(resource, namespace, &options)
            .await
            .expect("decoded");
        let stored = served
            .registry
            .list_stored(resource, namespace, &options)
            .await
            .expect("stored");
        let stored_items: Vec<Value> = stored
            .items
            .iter()
            .map(|kv| {
                served
                    .registry
                    .decode_listed(resource, kv)
                    .expect("decodes")
            })
            .collect();
        assert_eq!(stored_items, decoded.items, "{options:?}");
        assert_eq!(stored.continue_token, decoded.continue_token, "{options:?}");
        assert_eq!(stored.remaining, decoded.remaining, "{options:?}");
        assert_eq!(stored.resource_version, decoded.resource_version);
    }
}
