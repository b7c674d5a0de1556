//! Property tests over everything a client can send: body decoders (JSON, YAML, protobuf), the
//! patch formats and apply, label and field selectors, quantities, int-or-percent fields, and
//! admission of random mutations of a valid object of every served kind. None may panic, and
//! every rejection must be a client error (4xx) `Status`.
//!
//! Each property runs a bounded number of cases so that the whole file stays within seconds
//! in a debug build; `PROPTEST_CASES` raises the count for a longer hunt.

mod support;

use std::sync::OnceLock;

use axum::http::Method;
use axum::http::{header, HeaderMap, HeaderValue};
use proptest::prelude::*;
use serde_json::{json, Map, Value};
use skiff_api::patch::PatchType;
use skiff_api::printers::{self, IncludeObject};
use skiff_api::quantity::Quantity;
use skiff_api::resources::{self, ResourceInfo};
use skiff_apiserver::filter::Filter;
use skiff_apiserver::registry::{Registry, WriteOptions};
use skiff_apiserver::status::ApiError;
use skiff_apiserver::{bodies, scale};

/// Cases per property unless `PROPTEST_CASES` says otherwise.
const CASES: u32 = 256;

fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(CASES);
    ProptestConfig {
        cases,
        // Shrinking replays the failing input many times; a short budget keeps failures quick.
        max_shrink_iters: 256,
        // Failures are reported with their minimal input; nothing is written to the tree.
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// One registry over a store in a temporary directory, shared by every case, with the runtime
/// that drives it.
struct Harness {
    _dir: tempfile::TempDir,
    runtime: tokio::runtime::Runtime,
    registry: Registry,
}

fn harness() -> &'static Harness {
    static HARNESS: OnceLock<Harness> = OnceLock::new();
    HARNESS.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let (dir, registry) = runtime.block_on(support::fresh_registry());
        Harness {
            _dir: dir,
            runtime,
            registry,
        }
    })
}

fn dry_run() -> WriteOptions {
    WriteOptions {
        dry_run: true,
        ..WriteOptions::default()
    }
}

/// A rejection is acceptable when it is a client error. Strategic merge failures Kubernetes
/// does not classify are its one deliberate 500 (with an empty reason), kept for fidelity.
fn assert_client_error(err: &ApiError, what: &str) -> Result<(), TestCaseError> {
    let unclassified_merge_failure = err.code == 500 && err.reason.is_empty();
    prop_assert!(
        (400..500).contains(&err.code) || unclassified_merge_failure,
        "{what}: expected a 4xx Status, got {err}"
    );
    prop_assert!(
        !err.message.is_empty(),
        "{what}: a Status without a message"
    );
    Ok(())
}

/// A valid object of the kind `resource` serves, in its version.
fn sample(resource: &ResourceInfo) -> Option<Value> {
    let template = json!({
        "metadata": {"labels": {"app": "sample"}},
        "spec": {"containers": [{"name": "c", "image": "nginx:1.27",
            "ports": [{"containerPort": 80}],
            "resources": {"requests": {"cpu": "100m", "memory": "64Mi"},
                          "limits": {"cpu": "1", "memory": "128Mi"}}}]}
    });
    let selector = json!({"matchLabels": {"app": "sample"}});
    let body = match (resource.group, resource.version, resource.kind) {
        ("", "v1", "Namespace") => json!({}),
        ("", "v1", "Pod") => json!({"spec": template["spec"].clone()}),
        ("", "v1", "Node") => json!({"spec": {"unschedulable": false},
            "status": {"capacity": {"cpu": "4", "memory": "8Gi", "pods": "110"}}}),
        ("", "v1", "Service") => json!({"spec": {"selector": {"app": "sample"},
            "ports": [{"port": 80, "targetPort": 8080, "protocol": "TCP"}]}}),
        ("", "v1", "Endpoints") => json!({"subsets": [{"addresses": [{"ip": "198.18.0.1"}],
            "ports": [{"port": 80, "protocol": "TCP"}]}]}),
        ("", "v1", "Event") => json!({"involvedObject": {"kind": "Pod", "name": "p",
            "namespace": "default"}, "reason": "Started", "message": "started",
            "type": "Normal", "source": {"component": "sample"}, "count": 1,
            "firstTimestamp": "2024-01-01T00:00:00Z", "lastTimestamp": "2024-01-01T00:00:00Z"}),
        ("", "v1", "ConfigMap") => json!({"data": {"key": "value"}}),
        ("", "v1", "Secret") => json!({"data": {"key": "dmFsdWU="}, "type": "Opaque"}),
        ("", "v1", "ServiceAccount") => json!({}),
        ("certificates.k8s.io", "v1", "CertificateSigningRequest") => json!({"spec": {
            "request": "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURSBSRVFVRVNULS0tLS0KLS0tLS1FTkQgQ0VSVElGSUNBVEUgUkVRVUVTVC0tLS0tCg==",
            "signerName": "example.com/signer", "usages": ["client auth"]}}),
        ("rbac.authorization.k8s.io", "v1", "Role") => json!({"rules": [
            {"apiGroups": [""], "resources": ["pods", "pods/log"], "verbs": ["get", "list"]}]}),
        ("rbac.authorization.k8s.io", "v1", "ClusterRole") => json!({"rules": [
            {"apiGroups": ["apps"], "resources": ["deployments"], "resourceNames": ["web"],
             "verbs": ["get"]},
            {"nonResourceURLs": ["/healthz", "/api/*"], "verbs": ["get"]}],
            "aggregationRule": {"clusterRoleSelectors": [{"matchLabels": {"team": "a"}}]}}),
        ("rbac.authorization.k8s.io", "v1", "RoleBinding") => json!({
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                        "name": "view"},
            "subjects": [{"kind": "User", "name": "jane"},
                         {"kind": "ServiceAccount", "name": "default"}]}),
        ("rbac.authorization.k8s.io", "v1", "ClusterRoleBinding") => json!({
            "roleRef": {"kind": "ClusterRole", "name": "view"},
            "subjects": [{"kind": "Group", "name": "devs"},
                         {"kind": "ServiceAccount", "name": "default", "namespace": "dev"}]}),
        ("apps", "v1", "Deployment") => json!({"spec": {"replicas": 3, "selector": selector,
            "template": template, "minReadySeconds": 5, "revisionHistoryLimit": 4,
            "progressDeadlineSeconds": 600,
            "strategy": {"type": "RollingUpdate",
                         "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 1}}}}),
        ("apps", "v1", "ReplicaSet") => json!({"spec": {"replicas": 2, "selector": selector,
            "template": template}}),
        ("apps", "v1", "ControllerRevision") => json!({"revision": 1, "data": {"spec": {}}}),
        ("autoscaling", "v2", "HorizontalPodAutoscaler") => json!({"spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
            "minReplicas": 1, "maxReplicas": 5,
            "metrics": [{"type": "Resource", "resource": {"name": "cpu",
                "target": {"type": "Utilization", "averageUtilization": 50}}}],
            "behavior": {"scaleDown": {"stabilizationWindowSeconds": 300,
                "policies": [{"type": "Percent", "value": 100, "periodSeconds": 15}]}}}}),
        ("autoscaling", "v1", "HorizontalPodAutoscaler") => json!({"spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
            "minReplicas": 1, "maxReplicas": 5, "targetCPUUtilizationPercentage": 60}}),
        ("coordination.k8s.io", "v1", "Lease") => json!({"spec": {"holderIdentity": "node",
            "leaseDurationSeconds": 40, "renewTime": "2024-01-01T00:00:00.000000Z"}}),
        ("discovery.k8s.io", "v1", "EndpointSlice") => json!({"addressType": "IPv4",
            "endpoints": [{"addresses": ["198.18.0.1"], "conditions": {"ready": true}}],
            "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}),
        ("apps.kruise.io", "v1alpha1", "CloneSet") => json!({"spec": {"replicas": 4,
            "selector": selector, "template": template,
            "updateStrategy": {"type": "InPlaceIfPossible", "partition": 1,
                               "maxUnavailable": "20%", "maxSurge": 0},
            "scaleStrategy": {"maxUnavailable": 1}}}),
        ("batch", "v1", "Job") => {
            let mut pod_template = template.clone();
            pod_template["spec"]["restartPolicy"] = json!("Never");
            json!({"spec": {"completions": 3, "parallelism": 2, "backoffLimit": 4,
                "activeDeadlineSeconds": 600, "ttlSecondsAfterFinished": 60,
                "template": pod_template}})
        }
        ("batch", "v1", "CronJob") => {
            let mut pod_template = template.clone();
            pod_template["spec"]["restartPolicy"] = json!("OnFailure");
            json!({"spec": {"schedule": "*/5 * * * *", "concurrencyPolicy": "Forbid",
                "startingDeadlineSeconds": 30,
                "jobTemplate": {"spec": {"template": pod_template}}}})
        }
        ("", "v1", "PersistentVolume") => json!({"spec": {"capacity": {"storage": "2Gi"},
            "accessModes": ["ReadWriteOnce"], "persistentVolumeReclaimPolicy": "Retain",
            "storageClassName": "manual", "hostPath": {"path": "/srv/data"},
            "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                {"key": "kubernetes.io/hostname", "operator": "In", "values": ["node"]}]}]}}}}),
        ("", "v1", "PersistentVolumeClaim") => json!({"spec": {"accessModes": ["ReadWriteOnce"],
            "storageClassName": "manual", "resources": {"requests": {"storage": "1Gi"}},
            "selector": selector}}),
        ("storage.k8s.io", "v1", "StorageClass") => json!({"provisioner": "rancher.io/local-path",
            "reclaimPolicy": "Delete", "volumeBindingMode": "WaitForFirstConsumer",
            "allowVolumeExpansion": false, "parameters": {"type": "local"}}),
        ("policy", "v1", "PodDisruptionBudget") => json!({"spec": {"minAvailable": "50%",
            "selector": selector, "unhealthyPodEvictionPolicy": "IfHealthyBudget"}}),
        ("apps", "v1", "DaemonSet") => json!({"spec": {"selector": selector,
            "template": template, "minReadySeconds": 2, "revisionHistoryLimit": 5,
            "updateStrategy": {"type": "RollingUpdate",
                               "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": 0}}}}),
        ("apps", "v1", "StatefulSet") => json!({"spec": {"replicas": 3, "serviceName": "web",
            "selector": selector, "template": template, "podManagementPolicy": "Parallel",
            "ordinals": {"start": 1}, "revisionHistoryLimit": 5,
            "updateStrategy": {"type": "RollingUpdate",
                               "rollingUpdate": {"partition": 1, "maxUnavailable": "50%"}},
            "persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Delete",
                                                     "whenScaled": "Retain"},
            "volumeClaimTemplates": [{"metadata": {"name": "data"},
                "spec": {"accessModes": ["ReadWriteOnce"],
                         "resources": {"requests": {"storage": "1Gi"}}}}]}}),
        ("", "v1", "ResourceQuota") => json!({"spec": {"hard": {"pods": "10",
            "requests.cpu": "4", "limits.memory": "8Gi", "count/deployments.apps": "5"},
            "scopes": ["NotTerminating"]}}),
        ("", "v1", "LimitRange") => json!({"spec": {"limits": [
            {"type": "Container", "max": {"cpu": "2"}, "min": {"cpu": "50m"},
             "default": {"cpu": "500m"}, "defaultRequest": {"cpu": "100m"},
             "maxLimitRequestRatio": {"cpu": "10"}},
            {"type": "Pod", "max": {"memory": "4Gi"}}]}}),
        ("", "v1", "PodTemplate") => json!({"template": template}),
        ("", "v1", "ReplicationController") => json!({"spec": {"replicas": 2,
            "selector": {"app": "sample"}, "template": template}}),
        ("scheduling.k8s.io", "v1", "PriorityClass") => json!({"value": 1000,
            "description": "sample", "preemptionPolicy": "Never"}),
        ("node.k8s.io", "v1", "RuntimeClass") => json!({"handler": "runc"}),
        ("networking.k8s.io", "v1", "IngressClass") => json!({"spec": {
            "controller": "example.com/ingress"}}),
        ("networking.k8s.io", "v1", "Ingress") => json!({"spec": {"ingressClassName": "web",
            "tls": [{"hosts": ["shop.example"], "secretName": "tls"}],
            "rules": [{"host": "shop.example", "http": {"paths": [{"path": "/",
                "pathType": "Prefix", "backend": {"service": {"name": "shop",
                "port": {"number": 80}}}}]}}]}}),
        ("networking.k8s.io", "v1", "NetworkPolicy") => json!({"spec": {
            "podSelector": selector,
            "ingress": [{"from": [{"ipBlock": {"cidr": "198.18.0.0/15"}},
                                  {"namespaceSelector": {"matchLabels": {"team": "a"}}}],
                         "ports": [{"port": 80, "endPort": 90}]}],
            "egress": [{"to": [{"podSelector": {}}], "ports": [{"port": "dns"}]}]}}),
        ("apiextensions.k8s.io", "v1", "CustomResourceDefinition") => {
            json!({"spec": {"group": "sample.example.com", "scope": "Namespaced",
                "names": {"plural": "samples", "kind": "Sample", "shortNames": ["smp"]},
                "versions": [{"name": "v1", "served": true, "storage": true,
                    "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                        "spec": {"type": "object", "properties": {
                            "size": {"type": "integer", "minimum": 0, "default": 1},
                            "mode": {"type": "string", "enum": ["a", "b"]}}}}}},
                    "subresources": {"status": {}}}]}})
        }
        (
            "admissionregistration.k8s.io",
            "v1",
            kind @ ("ValidatingWebhookConfiguration" | "MutatingWebhookConfiguration"),
        ) => json!({"webhooks": [{
            "name": format!("{}.example.com", kind.to_lowercase()),
            "clientConfig": {"url": "https://198.18.0.1/admit"},
            // Rules on a resource no case writes: once stored, a configuration must not make
            // every later ConfigMap create call an address that never answers.
            "rules": [{"operations": ["CREATE"], "apiGroups": ["example.com"],
                       "apiVersions": ["v1"], "resources": ["widgets"]}],
            "sideEffects": "None", "admissionReviewVersions": ["v1"]}]}),
        _ => return None,
    };
    let mut object = body;
    object["apiVersion"] = json!(resource.api_version());
    object["kind"] = json!(resource.kind);
    // A definition's name is its plural and group.
    let name = match resource.kind {
        "CustomResourceDefinition" => "samples.sample.example.com",
        _ => "sample",
    };
    object["metadata"] = json!({"name": name, "labels": {"app": "sample"},
        "annotations": {"note": "sample"}});
    Some(object)
}

fn namespace_of(resource: &ResourceInfo) -> Option<&'static str> {
    resource.namespaced.then_some("default")
}

#[test]
fn every_served_kind_has_a_valid_sample() {
    let h = harness();
    for resource in resources::all() {
        let object = sample(resource).unwrap_or_else(|| {
            panic!(
                "no sample object for {}; add one so its admission is property-tested",
                resource.qualified_kind()
            )
        });
        let created = h.runtime.block_on(h.registry.create(
            resource,
            namespace_of(resource),
            object,
            dry_run(),
        ));
        if let Err(e) = created {
            panic!("the sample {} is refused: {e}", resource.qualified_kind());
        }
    }
}

/// Numbers, strings and shapes that break naive code: extremes, signs, percentages,
/// quantities, separators, non-ASCII.
fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        prop_oneof![
            Just(i64::MAX),
            Just(i64::MIN),
            Just(-1i64),
            Just(0),
            Just(1),
            Just(i64::from(i32::MAX) + 1),
            Just(999_999_999_999)
        ]
        .prop_map(Value::from),
        Just(Value::from(u64::MAX)),
        any::<f64>()
            .prop_filter("JSON numbers are finite", |f| f.is_finite())
            .prop_map(Value::from),
        prop_oneof![
            Just(""),
            Just("-1"),
            Just("0"),
            Just("100%"),
            Just("-5%"),
            Just("101%"),
            Just("99999999999999999999%"),
            Just("1e308"),
            Just("9223372036854775807"),
            Just("1Ei"),
            Just("999999999999999999999999999999999999999999Ei"),
            Just("0.000000000000000000000000001m"),
            Just("é"),
            Just("kubernetes.io/x"),
            Just("a=b,c!=d"),
            Just("2024-01-01T00:00:00Z"),
            Just("10000-01-01T00:00:00Z"),
        ]
        .prop_map(Value::from),
        "[a-zA-Z0-9.%/:=!,()+-]{0,12}".prop_map(Value::from),
        "\\PC{0,8}".prop_map(Value::from),
    ]
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        prop_oneof![
            Just("metadata"),
            Just("spec"),
            Just("status"),
            Just("name"),
            Just("replicas"),
            Just("containers"),
            Just("template"),
            Just("selector"),
            Just("matchLabels"),
            Just("ports"),
            Just("port"),
            Just("resources"),
            Just("requests"),
            Just("cpu"),
            Just("maxSurge"),
            Just("$patch"),
            Just("$retainKeys"),
            Just("$setElementOrder/containers"),
            Just("$deleteFromPrimitiveList/finalizers"),
        ]
        .prop_map(str::to_string),
        "[a-zA-Z$/]{1,10}",
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(4, 32, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((key(), inner), 0..4)
                .prop_map(|entries| Value::Object(entries.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// One change to an object: at the `n`th of its paths, replace the value, remove it, or add a
/// member beside it.
#[derive(Clone, Debug)]
enum Mutation {
    Replace(usize, Value),
    Remove(usize),
    Insert(usize, String, Value),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), json_value()).prop_map(|(n, v)| Mutation::Replace(n, v)),
        any::<usize>().prop_map(Mutation::Remove),
        (any::<usize>(), key(), json_value()).prop_map(|(n, k, v)| Mutation::Insert(n, k, v)),
    ]
}

/// Every JSON pointer inside `value`, in document order.
fn paths(value: &Value, prefix: String, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                let path = format!("{prefix}/{}", k.replace('~', "~0").replace('/', "~1"));
                out.push(path.clone());
                paths(v, path, out);
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                let path = format!("{prefix}/{i}");
                out.push(path.clone());
                paths(v, path, out);
            }
        }
        _ => {}
    }
}

fn mutate(object: &mut Value, mutation: &Mutation) {
    let mut all = Vec::new();
    paths(object, String::new(), &mut all);
    if all.is_empty() {
        return;
    }
    let pick = |n: usize| all[n % all.len()].clone();
    match mutation {
        Mutation::Replace(n, v) => {
            if let Some(slot) = object.pointer_mut(&pick(*n)) {
                *slot = v.clone();
            }
        }
        Mutation::Remove(n) => {
            let path = pick(*n);
            let (parent, last) = path.rsplit_once('/').unwrap_or(("", ""));
            match object.pointer_mut(parent) {
                Some(Value::Object(map)) => {
                    map.remove(&last.replace("~1", "/").replace("~0", "~"));
                }
                Some(Value::Array(items)) => {
                    if let Ok(i) = last.parse::<usize>() {
                        if i < items.len() {
                            items.remove(i);
                        }
                    }
                }
                _ => {}
            }
        }
        Mutation::Insert(n, k, v) => match object.pointer_mut(&pick(*n)) {
            Some(Value::Object(map)) => {
                map.insert(k.clone(), v.clone());
            }
            Some(Value::Array(items)) => items.push(v.clone()),
            _ => {}
        },
    }
}

fn any_resource() -> impl Strategy<Value = &'static ResourceInfo> {
    prop::sample::select(resources::all().collect::<Vec<_>>())
}

fn headers(content_type: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(content_type).expect("header value"),
    );
    headers
}

/// Kubernetes protobuf bodies kubectl sent, to mutate.
fn protobuf_seeds() -> &'static [Vec<u8>] {
    static SEEDS: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    SEEDS.get_or_init(|| {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/protobuf");
        let mut seeds: Vec<Vec<u8>> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|path| path.extension().is_some_and(|x| x == "pb"))
            .map(|path| std::fs::read(path).expect("read seed"))
            .collect();
        seeds.sort();
        assert!(!seeds.is_empty(), "no protobuf fixtures to mutate");
        seeds
    })
}

/// Byte-level damage to a seed: overwrite, cut, or splice in bytes.
#[derive(Clone, Debug)]
enum ByteEdit {
    Set(usize, u8),
    Truncate(usize),
    Splice(usize, Vec<u8>),
}

fn byte_edit() -> impl Strategy<Value = ByteEdit> {
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| ByteEdit::Set(i, b)),
        any::<usize>().prop_map(ByteEdit::Truncate),
        (any::<usize>(), prop::collection::vec(any::<u8>(), 1..12))
            .prop_map(|(i, bytes)| ByteEdit::Splice(i, bytes)),
    ]
}

fn apply_edit(bytes: &mut Vec<u8>, edit: &ByteEdit) {
    let len = bytes.len().max(1);
    match edit {
        ByteEdit::Set(i, b) => {
            if !bytes.is_empty() {
                bytes[i % len] = *b;
            }
        }
        ByteEdit::Truncate(i) => bytes.truncate(i % len),
        ByteEdit::Splice(i, extra) => {
            let at = (i % len).min(bytes.len());
            bytes.splice(at..at, extra.iter().copied());
        }
    }
}

/// Decodes a body, then admits what decoded as a dry-run create: the whole path a POST takes.
fn decode_and_admit(content_type: &str, body: &[u8]) -> Result<(), TestCaseError> {
    let object = match bodies::decode_object(&headers(content_type), body) {
        Ok(object) => object,
        Err(e) => return assert_client_error(&e, content_type),
    };
    let resource = object
        .get("apiVersion")
        .and_then(Value::as_str)
        .zip(object.get("kind").and_then(Value::as_str))
        .and_then(|(v, k)| resources::find_by_kind(v, k))
        .unwrap_or_else(|| resources::find("", "v1", "configmaps").expect("configmaps"));
    let h = harness();
    let created =
        h.runtime.block_on(
            h.registry
                .create(resource, namespace_of(resource), object, dry_run()),
        );
    match created {
        Ok(_) => Ok(()),
        Err(e) => assert_client_error(&e, "admission of a decoded body"),
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn random_bytes_decode_to_objects_or_400s(
        body in prop::collection::vec(any::<u8>(), 0..256),
        content_type in prop::sample::select(vec![
            "application/json", "application/yaml", "application/vnd.kubernetes.protobuf",
        ]),
    ) {
        decode_and_admit(content_type, &body)?;
    }

    #[test]
    fn random_json_and_yaml_documents_decode_and_admit_or_fail_as_4xx(
        document in json_value(),
        resource in any_resource(),
        yaml in any::<bool>(),
    ) {
        let mut document = document;
        if let Value::Object(map) = &mut document {
            map.insert("apiVersion".into(), json!(resource.api_version()));
            map.insert("kind".into(), json!(resource.kind));
        }
        if yaml {
            let text = skiff_api::yaml::to_string(&document).expect("YAML");
            decode_and_admit("application/yaml", text.as_bytes())?;
        } else {
            let text = serde_json::to_vec(&document).expect("JSON");
            decode_and_admit("application/json", &text)?;
        }
    }

    #[test]
    fn damaged_protobuf_bodies_decode_or_fail_as_4xx(
        seed in any::<prop::sample::Index>(),
        edits in prop::collection::vec(byte_edit(), 1..6),
    ) {
        let seeds = protobuf_seeds();
        let mut body = seeds[seed.index(seeds.len())].clone();
        for edit in &edits {
            apply_edit(&mut body, edit);
        }
        decode_and_admit("application/vnd.kubernetes.protobuf", &body)?;
    }

    #[test]
    fn random_mutations_of_valid_objects_are_admitted_or_refused_as_4xx(
        resource in any_resource(),
        mutations in prop::collection::vec(mutation(), 1..4),
    ) {
        let mut object = sample(resource).expect("every kind has a sample");
        for m in &mutations {
            mutate(&mut object, m);
        }
        let h = harness();
        let created = h.runtime.block_on(h.registry.create(
            resource,
            namespace_of(resource),
            object,
            dry_run(),
        ));
        match created {
            // What is admitted must also print: `kubectl get` asks for a Table of it, at any
            // time, however far its timestamps lie.
            Ok(written) => {
                for now in [jiff::Timestamp::MIN, jiff::Timestamp::UNIX_EPOCH, jiff::Timestamp::MAX] {
                    let _ = printers::table(
                        resource,
                        std::slice::from_ref(&written.object),
                        IncludeObject::Object,
                        now,
                    );
                }
            }
            Err(e) => assert_client_error(&e, &format!("create {}", resource.qualified_kind()))?,
        }
    }

    #[test]
    fn random_patches_of_every_format_apply_or_fail_as_4xx(
        resource in any_resource(),
        patch_type in prop::sample::select(vec![
            PatchType::Json, PatchType::Merge, PatchType::StrategicMerge, PatchType::Apply,
        ]),
        mutations in prop::collection::vec(mutation(), 0..4),
        operations in prop::collection::vec(
            (prop::sample::select(vec!["add", "remove", "replace", "move", "copy", "test", "bogus"]),
             any::<usize>(), any::<usize>(), json_value()),
            0..5),
        raw_garbage in prop::option::weighted(0.1, prop::collection::vec(any::<u8>(), 0..64)),
    ) {
        let h = harness();
        let namespace = namespace_of(resource);
        let name = format!("patched-{}", resource.plural);
        // The object to patch exists from the first case on.
        let mut existing = sample(resource).expect("every kind has a sample");
        existing["metadata"]["name"] = json!(name);
        let _ = h.runtime.block_on(h.registry.create(
            resource, namespace, existing.clone(), WriteOptions::default()));

        let body = match (&raw_garbage, patch_type) {
            (Some(garbage), _) => garbage.clone(),
            (None, PatchType::Json) => {
                let mut all = Vec::new();
                paths(&existing, String::new(), &mut all);
                all.push("/-".to_string());
                all.push("/spec/template/spec/containers/-".to_string());
                all.push("/metadata/annotations/999999999999999999999".to_string());
                let operations: Vec<Value> = operations
                    .iter()
                    .map(|(op, path, from, value)| json!({
                        "op": op,
                        "path": all[path % all.len()],
                        "from": all[from % all.len()],
                        "value": value,
                    }))
                    .collect();
                serde_json::to_vec(&operations).expect("JSON")
            }
            (None, _) => {
                let mut desired = existing.clone();
                for m in &mutations {
                    mutate(&mut desired, m);
                }
                if patch_type == PatchType::Apply {
                    skiff_api::yaml::to_string(&desired).expect("YAML").into_bytes()
                } else {
                    serde_json::to_vec(&desired).expect("JSON")
                }
            }
        };
        let result = h.runtime.block_on(bodies::patch(
            &h.registry,
            resource,
            namespace,
            &name,
            None,
            &headers(patch_type.content_type()),
            &body,
            dry_run(),
        ));
        if let Err(e) = result {
            assert_client_error(&e, &format!("{patch_type:?} patch of {}", resource.qualified_kind()))?;
        }
    }

    #[test]
    fn random_selectors_parse_or_fail_as_400(
        resource in any_resource(),
        label in prop::option::of(prop_oneof![
            "[a-z0-9./=!,() -]{0,24}",
            "\\PC{0,16}",
            Just("a in (b,c),!d,e notin (f),g==h,i!=j,k>1,l<99999999999999999999".to_string()),
        ]),
        field in prop::option::of(prop_oneof![
            "[a-zA-Z0-9./=!,-]{0,24}",
            "\\PC{0,16}",
            Just("metadata.name=a,metadata.namespace!=b,spec.nodeName==c,status.phase=d".to_string()),
        ]),
    ) {
        if let Err(e) = Filter::parse(resource, label.as_deref(), field.as_deref()) {
            prop_assert_eq!(e.code, 400, "{}", e);
        }
    }

    #[test]
    fn random_quantities_parse_or_are_refused(text in prop_oneof![
        "[-+]?[0-9.]{0,45}([eE][-+]?[0-9]{0,12}|[numkKMGTPE]i?)?",
        "\\PC{0,16}",
    ]) {
        if let Ok(quantity) = Quantity::parse(&text) {
            // Rounding and scaling saturate instead of overflowing.
            let _ = quantity.value();
            let _ = quantity.milli_value();
            let _ = quantity.is_zero();
        }
    }

    #[test]
    fn random_int_or_percent_fields_are_admitted_or_refused_as_4xx(
        max_surge in leaf(),
        max_unavailable in leaf(),
        partition in leaf(),
        kruise in any::<bool>(),
    ) {
        let resource = if kruise {
            resources::find("apps.kruise.io", "v1alpha1", "clonesets").expect("clonesets")
        } else {
            resources::find("apps", "v1", "deployments").expect("deployments")
        };
        let mut object = sample(resource).expect("sample");
        if kruise {
            object["spec"]["updateStrategy"]["maxSurge"] = max_surge;
            object["spec"]["updateStrategy"]["maxUnavailable"] = max_unavailable;
            object["spec"]["updateStrategy"]["partition"] = partition;
        } else {
            object["spec"]["strategy"]["rollingUpdate"]["maxSurge"] = max_surge;
            object["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] = max_unavailable;
            object["spec"]["replicas"] = partition;
        }
        let h = harness();
        let created = h.runtime.block_on(h.registry.create(resource, Some("default"), object, dry_run()));
        if let Err(e) = created {
            assert_client_error(&e, resource.kind)?;
        }
    }

    #[test]
    fn random_scale_writes_apply_or_fail_as_4xx(
        plural in prop::sample::select(vec!["deployments", "replicasets", "clonesets"]),
        replicas in leaf(),
        patch in any::<bool>(),
    ) {
        let resource = resources::all()
            .find(|r| r.plural == plural)
            .expect("a scalable resource");
        let h = harness();
        let name = format!("scaled-{plural}");
        let mut existing = sample(resource).expect("sample");
        existing["metadata"]["name"] = json!(name);
        let _ = h.runtime.block_on(h.registry.create(
            resource, Some("default"), existing, WriteOptions::default()));
        let (method, content_type, body) = if patch {
            (Method::PATCH, "application/merge-patch+json", json!({"spec": {"replicas": replicas}}))
        } else {
            (Method::PUT, "application/json", json!({"apiVersion": "autoscaling/v1", "kind": "Scale",
                "metadata": {"name": name, "namespace": "default"},
                "spec": {"replicas": replicas}}))
        };
        let body = serde_json::to_vec(&body).expect("JSON");
        let result = h.runtime.block_on(scale::handle(
            &h.registry, resource, Some("default"), &name, &method,
            &headers(content_type), &body, dry_run()));
        match result {
            Ok(_) => prop_assert!(
                replicas.is_null()
                    || replicas.as_i64().is_some_and(|r| (0..=i64::from(i32::MAX)).contains(&r)),
                "replicas {} accepted", replicas
            ),
            Err(e) => assert_client_error(&e, "scale")?,
        }
    }
}
