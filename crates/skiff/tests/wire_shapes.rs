//! Objects on the wire have Kubernetes 1.36's shape: the scenario the captures in
//! `tests/captures/` were taken with on a real 1.36 control plane runs again on Skiff, and every
//! key the real server sent (recursively, nulls included) must be in what Skiff sends for the
//! same object. Values differ from run to run (names, times, addresses); keys must not.

mod support;

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;
use support::json::{items, json_of, str_at};
use support::{wait_for, Kubectl, Skiff, DEADLINE};

const CAPTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/captures");

/// Keys the real server sent that Skiff may lack, each for a reason that does not make the
/// shapes differ for a client: `(capture file, key path prefix, why)`.
const ALLOWED_MISSING: &[(&str, &str, &str)] = &[
    // Field ownership is recorded by server-side apply bookkeeping that kubectl strips from its
    // output; its keys are the paths of the fields each manager wrote, different per manager.
    ("*", ".metadata.managedFields", "field manager bookkeeping"),
];

fn capture(name: &str) -> Value {
    let path = format!("{CAPTURES}/{name}");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path} is not JSON: {e}"))
}

/// Every key path in `value`: `.a.b` for objects, `[]` for any element of an array (elements
/// merged), so `.status.conditions[].lastProbeTime` names that key in any condition.
fn key_paths(value: &Value) -> BTreeSet<String> {
    fn walk(value: &Value, prefix: &str, out: &mut BTreeSet<String>) {
        match value {
            Value::Object(map) => {
                for (key, child) in map {
                    let path = format!("{prefix}.{key}");
                    out.insert(path.clone());
                    walk(child, &path, out);
                }
            }
            Value::Array(elements) => {
                let path = format!("{prefix}[]");
                for element in elements {
                    walk(element, &path, out);
                }
            }
            _ => {}
        }
    }
    let mut out = BTreeSet::new();
    walk(value, "", &mut out);
    out
}

fn allowed(file: &str, path: &str) -> bool {
    ALLOWED_MISSING
        .iter()
        .any(|(f, prefix, _)| (*f == "*" || *f == file) && path.starts_with(prefix))
}

/// The keys of the capture `file` that `served` lacks, apart from the allowed ones.
fn missing_keys(file: &str, captured: &Value, served: &Value) -> Vec<String> {
    let served = key_paths(served);
    key_paths(captured)
        .into_iter()
        .filter(|path| !served.contains(path) && !allowed(file, path))
        .collect()
}

/// Events grouped by reason: each reason is written by a different component, with its own
/// shape (the scheduler's come through events.k8s.io, the controllers' through core/v1).
fn events_by_reason(list: &Value) -> BTreeMap<String, Value> {
    let mut grouped: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for event in items(list) {
        grouped
            .entry(str_at(&event, "/reason"))
            .or_default()
            .push(event);
    }
    grouped
        .into_iter()
        .map(|(reason, events)| (reason, Value::Array(events)))
        .collect()
}

const DEPLOYMENT: &str = "\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: http-deploy
  namespace: demo
  labels:
    run: apache
spec:
  replicas: 3
  selector:
    matchLabels:
      run: apache
  template:
    metadata:
      labels:
        run: apache
    spec:
      containers:
      - name: httpd
        image: httpd:2.2
        ports:
        - containerPort: 80
";

fn rolled_out(kubectl: &Kubectl) {
    kubectl.ok(&[
        "rollout",
        "status",
        "deployment/http-deploy",
        "-n",
        "demo",
        "--timeout=60s",
    ]);
}

/// The revision a list of `path` reflects (kubectl's own `-o json` of a list carries none).
fn list_revision(kubectl: &Kubectl, path: &str) -> String {
    let list = json_of(&kubectl.ok(&["get", "--raw", path]));
    let revision = str_at(&list, "/metadata/resourceVersion");
    assert!(
        !revision.is_empty(),
        "the list of {path} has no resourceVersion: {list}"
    );
    revision
}

/// The watch events the server has for ReplicaSets in `demo` since `resource_version`.
fn replica_set_watch_since(skiff: &Skiff, resource_version: &str) -> Vec<Value> {
    let token = std::fs::read_to_string(skiff.data_dir().join("token"))
        .unwrap_or_else(|e| panic!("cannot read the admin token: {e}"));
    let path = format!(
        "/apis/apps/v1/namespaces/demo/replicasets?watch=1&resourceVersion={resource_version}&timeoutSeconds=1"
    );
    let response = skiff.request("GET", &path, Some(token.trim()));
    assert_eq!(response.status, 200, "watch answered {}", response.body);
    response
        .body
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(json_of)
        .collect()
}

/// What `kubectl get ARGS -o json` prints, or `null` when the server has no such object (the
/// comparison then reports every key as missing).
fn served(kubectl: &Kubectl, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.extend(["-o", "json"]);
    let out = kubectl.run(&all);
    if out.success() {
        json_of(&out.stdout)
    } else {
        eprintln!("kubectl {args:?} failed: {}", out.stderr);
        Value::Null
    }
}

/// Creates the namespace `demo` with [`DEPLOYMENT`] rolled out, then rolls it out again on a
/// new image; the ReplicaSet list's revision from before the image changed.
fn deploy_then_update_image(skiff: &Skiff, kubectl: &Kubectl) -> String {
    kubectl.ok(&["create", "namespace", "demo"]);
    let file = skiff.write_file("deploy.yaml", DEPLOYMENT);
    kubectl.ok(&["apply", "-f", &file]);
    rolled_out(kubectl);
    let before_update = list_revision(kubectl, "/apis/apps/v1/namespaces/demo/replicasets");
    kubectl.ok(&[
        "set",
        "image",
        "deployment/http-deploy",
        "httpd=httpd:2.4",
        "-n",
        "demo",
    ]);
    rolled_out(kubectl);
    before_update
}

/// `kubectl autoscale` of the Deployment between 1 and 10 replicas at 50% CPU.
fn autoscale(kubectl: &Kubectl) {
    kubectl.ok(&[
        "autoscale",
        "deployment",
        "http-deploy",
        "--cpu-percent=50",
        "--min=1",
        "--max=10",
        "-n",
        "demo",
    ]);
}

#[test]
fn served_objects_have_every_key_kubernetes_sends() {
    let skiff = Skiff::start_with(&["--simulated-nodes", "2", "--no-node"]);
    let kubectl = skiff.kubectl();

    let before_update = deploy_then_update_image(&skiff, &kubectl);
    kubectl.ok(&[
        "expose",
        "deployment",
        "http-deploy",
        "--type=NodePort",
        "--port=80",
        "-n",
        "demo",
    ]);
    autoscale(&kubectl);
    kubectl.ok(&[
        "create",
        "configmap",
        "cfg",
        "--from-literal=a=b",
        "-n",
        "demo",
    ]);
    kubectl.ok(&[
        "create",
        "secret",
        "generic",
        "sec",
        "--from-literal=a=b",
        "-n",
        "demo",
    ]);
    wait_for("three endpoints in the EndpointSlice", DEADLINE, || {
        let slices = kubectl.json(&[
            "get",
            "endpointslices",
            "-n",
            "demo",
            "-l",
            "kubernetes.io/service-name=http-deploy",
        ]);
        let count: usize = items(&slices)
            .iter()
            .map(|s| s["endpoints"].as_array().map_or(0, Vec::len))
            .sum();
        (count == 3).then_some(())
    });
    wait_for("the autoscaler's first status", DEADLINE, || {
        let hpa = kubectl.json(&["get", "hpa", "http-deploy", "-n", "demo"]);
        hpa.get("status").is_some().then_some(())
    });

    // The new ReplicaSet as its ADDED watch event carried it.
    let events = replica_set_watch_since(&skiff, &before_update);
    let added = events.iter().filter(|e| e["type"] == "ADDED").count();
    assert_eq!(
        added, 1,
        "one ReplicaSet is new since the image changed: {events:#?}"
    );
    let just_created = events
        .iter()
        .find(|e| e["type"] == "ADDED")
        .map(|e| e["object"].clone())
        .unwrap_or_else(|| panic!("no ReplicaSet was added after the image changed: {events:#?}"));

    let mut compared: Vec<(String, Value, Value)> = vec![
        (
            "replicaset-just-created.json".into(),
            capture("replicaset-just-created.json"),
            just_created,
        ),
        (
            "deployment.json".into(),
            capture("deployment.json"),
            served(
                &kubectl,
                &["get", "deployment", "http-deploy", "-n", "demo"],
            ),
        ),
        (
            "replicasets-after-rollout.json".into(),
            capture("replicasets-after-rollout.json"),
            served(&kubectl, &["get", "rs", "-n", "demo"]),
        ),
        (
            "pods.json".into(),
            capture("pods.json"),
            served(&kubectl, &["get", "pods", "-n", "demo"]),
        ),
        (
            "service-nodeport.json".into(),
            capture("service-nodeport.json"),
            served(&kubectl, &["get", "service", "http-deploy", "-n", "demo"]),
        ),
        (
            "endpoints.json".into(),
            capture("endpoints.json"),
            served(&kubectl, &["get", "endpoints", "http-deploy", "-n", "demo"]),
        ),
        (
            "endpointslices.json".into(),
            capture("endpointslices.json"),
            served(&kubectl, &["get", "endpointslices", "-n", "demo"]),
        ),
        (
            "hpa-v2.json".into(),
            capture("hpa-v2.json"),
            served(&kubectl, &["get", "hpa", "http-deploy", "-n", "demo"]),
        ),
        (
            "hpa-v1.json".into(),
            capture("hpa-v1.json"),
            // kubectl reads its preferred version whatever version it is asked for.
            json_of(&kubectl.ok(&[
                "get",
                "--raw",
                "/apis/autoscaling/v1/namespaces/demo/horizontalpodautoscalers/http-deploy",
            ])),
        ),
        (
            "configmap.json".into(),
            capture("configmap.json"),
            served(&kubectl, &["get", "configmap", "cfg", "-n", "demo"]),
        ),
        (
            "secret.json".into(),
            capture("secret.json"),
            served(&kubectl, &["get", "secret", "sec", "-n", "demo"]),
        ),
        (
            "serviceaccount-default.json".into(),
            capture("serviceaccount-default.json"),
            served(
                &kubectl,
                &["get", "serviceaccount", "default", "-n", "demo"],
            ),
        ),
        (
            "configmap-kube-root-ca.json".into(),
            capture("configmap-kube-root-ca.json"),
            served(
                &kubectl,
                &["get", "configmap", "kube-root-ca.crt", "-n", "demo"],
            ),
        ),
        (
            "namespace.json".into(),
            capture("namespace.json"),
            served(&kubectl, &["get", "namespace", "demo"]),
        ),
    ];

    let served_events = events_by_reason(&served(&kubectl, &["get", "events", "-n", "demo"]));
    for (reason, captured) in events_by_reason(&capture("events.json")) {
        let served = served_events.get(&reason).cloned().unwrap_or_else(|| {
            panic!(
                "Skiff recorded no {reason} event; it has {:?}",
                served_events.keys()
            )
        });
        compared.push((format!("events.json ({reason})"), captured, served));
    }

    let mut report = String::new();
    for (file, captured, served) in &compared {
        let missing = missing_keys(file, captured, served);
        if !missing.is_empty() {
            report.push_str(&format!("{file}: {missing:#?}\n"));
        }
    }
    assert!(
        report.is_empty(),
        "Skiff's objects lack keys Kubernetes 1.36 sends:\n{report}"
    );
}

#[test]
fn values_kubernetes_1_36_sets_are_set_alike() {
    let skiff = Skiff::start_with(&["--simulated-nodes", "2", "--no-node"]);
    let kubectl = skiff.kubectl();
    let before_update = deploy_then_update_image(&skiff, &kubectl);

    // A new ReplicaSet says it has no replicas yet, as its first watch event.
    let added = replica_set_watch_since(&skiff, &before_update)
        .into_iter()
        .find(|e| e["type"] == "ADDED")
        .expect("the new ReplicaSet was added");
    assert_eq!(
        added["object"]["status"],
        serde_json::json!({"replicas": 0})
    );

    // Pods: a generation, observed in the status; conditions in kubelet's order.
    let pods = kubectl.json(&["get", "pods", "-n", "demo"]);
    assert_eq!(items(&pods).len(), 3, "{pods:#}");
    for pod in items(&pods) {
        assert_eq!(pod["metadata"]["generation"], 1, "{pod:#}");
        assert_eq!(pod["status"]["observedGeneration"], 1, "{pod:#}");
        for condition in pod["status"]["conditions"].as_array().into_iter().flatten() {
            if condition["type"] != "PodScheduled" {
                assert_eq!(condition["observedGeneration"], 1, "{pod:#}");
            }
        }
        let order: Vec<&str> = pod["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c["type"].as_str())
            .collect();
        assert_eq!(
            order,
            [
                "PodReadyToStartContainers",
                "Initialized",
                "Ready",
                "ContainersReady",
                "PodScheduled"
            ],
            "{pod:#}"
        );
    }

    // Deployments and ReplicaSets count terminating replicas, zero once settled.
    let deployment = kubectl.json(&["get", "deployment", "http-deploy", "-n", "demo"]);
    assert_eq!(deployment["status"]["terminatingReplicas"], 0);
    for rs in items(&kubectl.json(&["get", "rs", "-n", "demo"])) {
        assert_eq!(rs["status"]["terminatingReplicas"], 0, "{rs:#}");
    }

    // Autoscalers carry no generation.
    autoscale(&kubectl);
    let hpa = kubectl.json(&["get", "hpa", "http-deploy", "-n", "demo"]);
    assert!(
        hpa["metadata"].get("generation").is_none(),
        "an autoscaler has no generation: {hpa:#}"
    );

    // The Endpoints controller labels what it manages; slices have a generation.
    kubectl.ok(&[
        "expose",
        "deployment",
        "http-deploy",
        "--port=80",
        "-n",
        "demo",
    ]);
    let endpoints = wait_for("the Service's Endpoints", DEADLINE, || {
        let out = kubectl.run(&[
            "get",
            "endpoints",
            "http-deploy",
            "-n",
            "demo",
            "-o",
            "json",
        ]);
        out.success().then(|| json_of(&out.stdout))
    });
    assert_eq!(
        endpoints["metadata"]["labels"]["endpoints.kubernetes.io/managed-by"],
        "endpoint-controller"
    );
    let slices = kubectl.json(&["get", "endpointslices", "-n", "demo"]);
    assert!(!items(&slices).is_empty());
    for slice in items(&slices) {
        assert!(
            slice["metadata"]["generation"]
                .as_i64()
                .is_some_and(|g| g >= 1),
            "{slice:#}"
        );
    }
}
