//! API semantics that Kubernetes' own kubectl test suite exercises: Secret `stringData`,
//! unconditional updates, protobuf `DeleteOptions`, `Status` details on every 404, error
//! messages, list and watch options, write options, and a private data directory.
//!
//! Run with `cargo test -p skiff --test api_semantics`. Needs `kubectl` on the PATH.

mod support;

use serde_json::{json, Value};
use support::json::{items, json_of, str_at};
use support::{versioned_kubectls, wait_for, Skiff, DEADLINE};

/// The admin token of a running server, for requests kubectl cannot make.
fn token(skiff: &Skiff) -> String {
    std::fs::read_to_string(skiff.data_dir().join("token"))
        .unwrap_or_else(|e| panic!("cannot read the token: {e}"))
        .trim()
        .to_string()
}

/// Watch events as `kubectl get --raw` prints them: one JSON document per line.
fn watch_events(text: &str) -> Vec<Value> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(json_of)
        .collect()
}

#[test]
fn secret_string_data_is_merged_into_data_and_dropped_on_every_write() {
    let skiff = Skiff::start();
    let kubectl = skiff.kubectl();
    let manifest = skiff.write_file(
        "secret.yaml",
        "apiVersion: v1
kind: Secret
metadata:
  name: creds
data:
  kept: a2VwdA==
  user: b2xk
stringData:
  user: admin
  password: s3cret
",
    );
    kubectl.ok(&["create", "-f", &manifest]);
    let created = kubectl.json(&["get", "secret", "creds", "-o", "json"]);
    assert_eq!(created.get("stringData"), None, "{created}");
    assert_eq!(
        created["data"],
        json!({"kept": "a2VwdA==", "user": "YWRtaW4=", "password": "czNjcmV0"}),
        "stringData wins over data and is stored base64-encoded"
    );

    // Update (PUT) with stringData.
    let mut replaced = created.clone();
    replaced["stringData"] = json!({"password": "rotated"});
    let file = skiff.write_file("replace.json", &replaced.to_string());
    kubectl.ok(&["replace", "-f", &file]);
    let after_replace = kubectl.json(&["get", "secret", "creds", "-o", "json"]);
    assert_eq!(after_replace.get("stringData"), None, "{after_replace}");
    assert_eq!(str_at(&after_replace, "/data/password"), "cm90YXRlZA==");

    // Patch with stringData.
    kubectl.ok(&[
        "patch",
        "secret",
        "creds",
        "-p",
        r#"{"stringData":{"token":"abc"}}"#,
    ]);
    let patched = kubectl.json(&["get", "secret", "creds", "-o", "json"]);
    assert_eq!(patched.get("stringData"), None, "{patched}");
    assert_eq!(str_at(&patched, "/data/token"), "YWJj");
    assert_eq!(str_at(&patched, "/data/kept"), "a2VwdA==");
}

#[test]
fn replace_with_resource_version_zero_is_unconditional() {
    let skiff = Skiff::start();
    let kubectl = skiff.kubectl();
    kubectl.ok(&["create", "configmap", "settings", "--from-literal=mode=a"]);
    let first = kubectl.json(&["get", "configmap", "settings", "-o", "json"]);
    kubectl.ok(&[
        "patch",
        "configmap",
        "settings",
        "-p",
        r#"{"data":{"mode":"b"}}"#,
    ]);

    // The first read is stale now: replacing with its resourceVersion is a conflict.
    let mut stale = first.clone();
    stale["data"]["mode"] = json!("stale");
    let stale_file = skiff.write_file("stale.json", &stale.to_string());
    let stderr = kubectl.fails(&["replace", "-f", &stale_file]);
    assert!(
        stderr.contains("the object has been modified"),
        "a stale resourceVersion conflicts: {stderr}"
    );

    // resourceVersion "0" (and an empty one) make the update unconditional.
    for (rv, mode) in [("0", "zero"), ("", "empty")] {
        let mut unconditional = first.clone();
        unconditional["metadata"]["resourceVersion"] = json!(rv);
        unconditional["data"]["mode"] = json!(mode);
        let file = skiff.write_file("unconditional.json", &unconditional.to_string());
        kubectl.ok(&["replace", "-f", &file]);
        let now = kubectl.json(&["get", "configmap", "settings", "-o", "json"]);
        assert_eq!(str_at(&now, "/data/mode"), mode, "resourceVersion {rv:?}");
    }
}

#[test]
fn drain_without_eviction_deletes_pods_with_protobuf_delete_options() {
    let skiff = Skiff::start_with(&["--no-node", "--simulated-nodes", "1"]);
    let kubectl = skiff.kubectl();
    wait_for("the simulated node to register", DEADLINE, || {
        kubectl
            .run(&["get", "node", "sim-node-1"])
            .success()
            .then_some(())
    });
    kubectl.ok(&["run", "lonely", "--image=nginx"]);
    wait_for("the pod to be bound to sim-node-1", DEADLINE, || {
        let out = kubectl.run(&["get", "pod", "lonely", "-o", "jsonpath={.spec.nodeName}"]);
        (out.stdout.trim() == "sim-node-1").then_some(())
    });
    // Exec into a pod on another node goes to that node's kubelet endpoint; a request that is
    // no upgrade is refused first, as kube-apiserver's proxy refuses it, in a Status.
    let exec = skiff.request(
        "POST",
        "/api/v1/namespaces/default/pods/lonely/exec?container=lonely&command=true&stdout=true",
        Some(&token(&skiff)),
    );
    assert_eq!(exec.status, 400, "{}", exec.body);
    assert_eq!(json_of(&exec.body)["message"], "Upgrade request required");
    // `--disable-eviction` makes drain delete each pod with protobuf DeleteOptions.
    let out = kubectl.run(&[
        "drain",
        "sim-node-1",
        "--disable-eviction",
        "--force",
        "--grace-period=0",
        "--timeout=60s",
        "-v=8",
    ]);
    assert!(
        out.success(),
        "drain failed:\nstdout: {}\nstderr: {}",
        out.stdout,
        out.stderr
    );
    assert!(
        out.stderr
            .contains("Content-Type: application/vnd.kubernetes.protobuf"),
        "this kubectl sent no protobuf body, so the test proves nothing:\n{}",
        out.stderr
    );
    assert!(out.stdout.contains("pod/lonely deleted"), "{}", out.stdout);
    let stderr = kubectl.fails(&["get", "pod", "lonely"]);
    assert!(stderr.contains("NotFound"), "{stderr}");
}

#[test]
fn every_not_found_carries_details_and_streams_check_the_container() {
    let skiff = Skiff::start();
    let kubectl = skiff.kubectl();
    let token = token(&skiff);
    for path in [
        "/api/v1/namespaces/default/widgets",
        "/apis/nothing.example.com/v1/things",
    ] {
        let response = skiff.request("GET", path, Some(&token));
        assert_eq!(response.status, 404, "{path}: {}", response.body);
        let status = json_of(&response.body);
        assert_eq!(status["reason"], "NotFound", "{path}: {status}");
        assert_eq!(status["details"], json!({}), "{path}: {status}");
    }
    let missing = json_of(
        &skiff
            .request("GET", "/api/v1/namespaces/default/pods/nope", Some(&token))
            .body,
    );
    assert_eq!(
        missing["details"],
        json!({"name": "nope", "group": "", "kind": "pods"})
    );
    // A subresource of a missing pod names the pod, as kube-apiserver's 404 does.
    let missing_ephemeral = skiff.request(
        "GET",
        "/api/v1/namespaces/default/pods/nope/ephemeralcontainers",
        Some(&token),
    );
    assert_eq!(missing_ephemeral.status, 404, "{}", missing_ephemeral.body);
    assert_eq!(
        json_of(&missing_ephemeral.body)["details"],
        json!({"name": "nope", "group": "", "kind": "pods"})
    );

    kubectl.ok(&["run", "web", "--image=nginx"]);
    // kubectl debug adds an ephemeral container through the subresource; every installed
    // kubectl must get through without crashing on what the server answers.
    let clients: Vec<_> = std::iter::once(kubectl.clone())
        .chain(
            versioned_kubectls()
                .into_iter()
                .map(|b| skiff.kubectl_at(&b)),
        )
        .collect();
    for (index, client) in clients.iter().enumerate() {
        let name = format!("debugger-{index}");
        let out = client.run(&["debug", "web", "--image=busybox", "-c", &name, "--", "true"]);
        let label = client.label();
        assert!(
            out.success(),
            "{label}: debug failed:\nstdout: {}\nstderr: {}",
            out.stdout,
            out.stderr
        );
        assert!(!out.stderr.contains("panic"), "{label}: {}", out.stderr);
    }
    let pod = json_of(&kubectl.ok(&["get", "pod", "web", "-o", "json"]));
    let added: Vec<&str> = pod["spec"]["ephemeralContainers"]
        .as_array()
        .map(|list| list.iter().filter_map(|c| c["name"].as_str()).collect())
        .unwrap_or_default();
    let expected: Vec<String> = (0..clients.len())
        .map(|i| format!("debugger-{i}"))
        .collect();
    assert_eq!(added, expected, "{pod}");

    // Exec into a container the pod lacks: Kubernetes' 400.
    let response = skiff.request(
        "POST",
        "/api/v1/namespaces/default/pods/web/exec?container=nope&command=true&stdout=true",
        Some(&token),
    );
    assert_eq!(response.status, 400, "{}", response.body);
    assert_eq!(
        json_of(&response.body)["message"],
        "container nope is not valid for pod web"
    );
    let stderr = kubectl.fails(&["exec", "web", "-c", "nope", "--", "true"]);
    assert!(
        stderr.contains("container nope is not valid for pod web"),
        "{stderr}"
    );
    let attach = skiff.request(
        "POST",
        "/api/v1/namespaces/default/pods/web/attach?container=nope&stdout=true",
        Some(&token),
    );
    assert_eq!(attach.status, 400, "{}", attach.body);
    let missing_pod = skiff.request(
        "POST",
        "/api/v1/namespaces/default/pods/ghost/exec?command=true",
        Some(&token),
    );
    assert_eq!(missing_pod.status, 404, "{}", missing_pod.body);
    // A valid container of a pod no node runs: Kubernetes' 400.
    let valid = skiff.request(
        "POST",
        "/api/v1/namespaces/default/pods/web/exec?container=web&command=true&stdout=true",
        Some(&token),
    );
    assert_eq!(valid.status, 400, "{}", valid.body);
    assert_eq!(
        json_of(&valid.body)["message"],
        "pod web does not have a host assigned"
    );
}

#[test]
fn error_messages_match_kubernetes() {
    let skiff = Skiff::start();
    let kubectl = skiff.kubectl();
    kubectl.ok(&[
        "run",
        "valid-pod",
        "--image=nginx",
        "--labels=name=valid-pod",
    ]);
    let stderr = kubectl.fails(&[
        "patch",
        "pod",
        "valid-pod",
        "-p",
        r#"{"metadata":{"labels":"invalid"}}"#,
    ]);
    assert!(
        stderr.contains(
            r#"patch: Invalid value: "map[metadata:map[labels:invalid]]": cannot restore map from string"#
        ),
        "{stderr}"
    );

    // kubectl itself refuses this manifest with the same words, so it goes raw.
    let labels = skiff.write_file(
        "labels.json",
        r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"labelled","labels":"x"}}"#,
    );
    let stderr = kubectl.fails(&[
        "create",
        "--raw",
        "/api/v1/namespaces/default/configmaps",
        "-f",
        &labels,
    ]);
    assert!(
        stderr.contains(
            r#"ConfigMap in version "v1" cannot be handled as a ConfigMap: json: cannot unmarshal string into Go struct field ObjectMeta.metadata.labels of type map[string]string"#
        ),
        "{stderr}"
    );

    // Posting a pod (as YAML, which --raw sends unconverted) to namespaces.
    let pod = skiff.write_file(
        "valid-pod.yaml",
        "apiVersion: v1
kind: Pod
metadata:
  name: raw-pod
spec:
  containers:
  - name: c
    image: nginx
",
    );
    let stderr = kubectl.fails(&["create", "--raw", "/api/v1/namespaces", "-f", &pod]);
    assert!(
        stderr.contains("the object provided is unrecognized (must be of type Namespace)"),
        "{stderr}"
    );
}

#[test]
fn list_and_watch_options_follow_kubernetes() {
    let skiff = Skiff::start();
    let kubectl = skiff.kubectl();
    kubectl.ok(&["create", "namespace", "opts"]);
    // Every namespace gets the cluster's CA bundle; wait for it so the lists below are stable.
    const ROOT_CA: &str = "kube-root-ca.crt";
    wait_for("the namespace's kube-root-ca.crt", DEADLINE, || {
        let list = kubectl.json(&["get", "configmaps", "-n", "opts", "-o", "json"]);
        items(&list)
            .iter()
            .any(|cm| str_at(cm, "/metadata/name") == ROOT_CA)
            .then_some(())
    });
    kubectl.ok(&["create", "configmap", "first", "-n", "opts"]);
    let first_rv = str_at(
        &kubectl.json(&["get", "configmap", "first", "-n", "opts", "-o", "json"]),
        "/metadata/resourceVersion",
    );
    kubectl.ok(&["create", "configmap", "second", "-n", "opts"]);
    kubectl.ok(&[
        "patch",
        "configmap",
        "first",
        "-n",
        "opts",
        "-p",
        r#"{"data":{"k":"v"}}"#,
    ]);

    // Exact: the list as it was at that revision.
    let exact = json_of(&kubectl.ok(&[
        "get",
        "--raw",
        &format!("/api/v1/namespaces/opts/configmaps?resourceVersion={first_rv}&resourceVersionMatch=Exact"),
    ]));
    let names: Vec<String> = items(&exact)
        .iter()
        .map(|cm| str_at(cm, "/metadata/name"))
        .collect();
    assert_eq!(names, ["first", ROOT_CA], "{exact}");
    assert_eq!(str_at(&exact, "/metadata/resourceVersion"), first_rv);
    assert_eq!(exact["items"][0].pointer("/data"), None, "{exact}");

    // NotOlderThan: the current state.
    let newer = json_of(&kubectl.ok(&[
        "get",
        "--raw",
        &format!("/api/v1/namespaces/opts/configmaps?resourceVersion={first_rv}&resourceVersionMatch=NotOlderThan"),
    ]));
    assert_eq!(items(&newer).len(), 3, "{newer}");

    // Wrong combinations: Kubernetes' 422s.
    let stderr = kubectl.fails(&[
        "get",
        "--raw",
        "/api/v1/namespaces/opts/configmaps?resourceVersionMatch=Exact",
    ]);
    assert!(
        stderr.contains("resourceVersionMatch is forbidden unless resourceVersion is provided"),
        "{stderr}"
    );
    let stderr = kubectl.fails(&[
        "get",
        "--raw",
        "/api/v1/namespaces/opts/configmaps?watch=true&sendInitialEvents=true",
    ]);
    assert!(
        stderr.contains("sendInitialEvents requires setting resourceVersionMatch to NotOlderThan"),
        "{stderr}"
    );

    // sendInitialEvents: the state as ADDED events, then a bookmark marking their end.
    let out = kubectl.ok(&[
        "get",
        "--raw",
        "/api/v1/namespaces/opts/configmaps?watch=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true&timeoutSeconds=2",
    ]);
    let events = watch_events(&out);
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| e["type"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(kinds, ["ADDED", "ADDED", "ADDED", "BOOKMARK"], "{out}");
    let bookmark = &events[3]["object"];
    assert_eq!(
        bookmark.pointer("/metadata/annotations/k8s.io~1initial-events-end"),
        Some(&json!("true")),
        "{bookmark}"
    );
    assert_eq!(
        str_at(bookmark, "/metadata/resourceVersion"),
        str_at(&newer, "/metadata/resourceVersion")
    );

    // sendInitialEvents=false: changes only, so a quiet namespace sends nothing.
    let out = kubectl.ok(&[
        "get",
        "--raw",
        "/api/v1/namespaces/opts/configmaps?watch=true&sendInitialEvents=false&resourceVersionMatch=NotOlderThan&timeoutSeconds=1",
    ]);
    assert_eq!(watch_events(&out), Vec::<Value>::new(), "{out}");
}

#[test]
fn write_options_are_validated_before_anything_is_written() {
    let skiff = Skiff::start();
    let kubectl = skiff.kubectl();
    let token = token(&skiff);
    let configmap = skiff.write_file(
        "cm.json",
        r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"dry"}}"#,
    );
    let stderr = kubectl.fails(&[
        "create",
        "--raw",
        "/api/v1/namespaces/default/configmaps?dryRun=Bogus",
        "-f",
        &configmap,
    ]);
    assert!(
        stderr.contains(r#"dryRun: Unsupported value: []string{"Bogus"}: supported values: "All""#),
        "{stderr}"
    );
    let stderr = kubectl.fails(&["get", "configmap", "dry"]);
    assert!(stderr.contains("NotFound"), "nothing was created: {stderr}");

    let apply = br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"applied"}}"#;
    let response = skiff.request_with_body(
        "PATCH",
        "/api/v1/namespaces/default/configmaps/applied",
        Some(&token),
        Some(("application/apply-patch+yaml", apply)),
    );
    assert_eq!(response.status, 422, "{}", response.body);
    let status = json_of(&response.body);
    assert_eq!(
        status["message"],
        r#"PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: is required for apply patch"#
    );
    let stderr = kubectl.fails(&["get", "configmap", "applied"]);
    assert!(stderr.contains("NotFound"), "nothing was applied: {stderr}");
    let response = skiff.request_with_body(
        "PATCH",
        "/api/v1/namespaces/default/configmaps/applied?fieldManager=tester",
        Some(&token),
        Some(("application/apply-patch+yaml", apply)),
    );
    assert_eq!(response.status, 201, "{}", response.body);
}

#[cfg(unix)]
#[test]
fn the_data_directory_and_its_secrets_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let skiff = Skiff::start();
    // A write makes sure the write-ahead log exists.
    skiff
        .kubectl()
        .ok(&["create", "secret", "generic", "s", "--from-literal=k=v"]);
    let dir = skiff.data_dir();
    let mode = |path: &std::path::Path| {
        std::fs::metadata(path)
            .unwrap_or_else(|e| panic!("{} is missing: {e}", path.display()))
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode(&dir), 0o700, "the data directory");
    for file in ["state.db", "state.db-wal", "token", "ca.key"] {
        assert_eq!(mode(&dir.join(file)), 0o600, "{file}");
    }
    let shm = dir.join("state.db-shm");
    if shm.exists() {
        assert_eq!(mode(&shm), 0o600, "state.db-shm");
    }
}
