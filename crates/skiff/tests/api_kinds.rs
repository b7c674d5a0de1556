//! The API kinds tools expect beside the workloads, end to end with the real `kubectl`:
//! `events.k8s.io/v1` Events sharing core Events' storage, the API Priority and Fairness
//! bootstrap configuration, and the server-wide in-flight limits.
//!
//! Run with `cargo test -p skiff --test api_kinds`. Needs `kubectl` on the PATH. Every wait
//! polls a condition against a deadline.

mod support;

use std::collections::BTreeSet;
use std::io::{Read, Write};

use support::json::{items, str_at};
use support::{cells, wait_for, Skiff, DEADLINE};

/// An Event in the `events.k8s.io/v1` shape, about the pod `web`.
const EVENTS_K8S_IO_EVENT: &str = "apiVersion: events.k8s.io/v1
kind: Event
metadata:
  name: web.new-api
  namespace: default
eventTime: 2026-12-06T10:44:28.716748Z
regarding:
  apiVersion: v1
  kind: Pod
  name: web
  namespace: default
note: Pulled image through the new API
reason: Pulled
action: Pulling
type: Normal
reportingController: example.com/puller
reportingInstance: puller-1
";

/// An Event in the core `v1` shape, about the same pod.
const CORE_EVENT: &str = "apiVersion: v1
kind: Event
metadata:
  name: web.old-api
  namespace: default
involvedObject:
  apiVersion: v1
  kind: Pod
  name: web
  namespace: default
message: Started container through the old API
reason: Started
type: Warning
count: 3
firstTimestamp: 2026-12-06T10:40:00Z
lastTimestamp: 2026-12-06T10:44:00Z
source:
  component: kubelet
  host: node-1
";

#[test]
fn events_written_in_one_group_are_read_and_watched_in_the_other() {
    let skiff = Skiff::start();
    let kubectl = skiff.kubectl();
    let mut core_watch = kubectl.spawn_lines(&["get", "events", "-w", "-o", "name"]);
    let mut new_watch =
        kubectl.spawn_lines(&["get", "events.v1.events.k8s.io", "-w", "-o", "name"]);

    let new_file = skiff.write_file("new-event.yaml", EVENTS_K8S_IO_EVENT);
    kubectl.ok(&["create", "-f", &new_file]);
    let old_file = skiff.write_file("old-event.yaml", CORE_EVENT);
    kubectl.ok(&["create", "-f", &old_file]);

    // Written through events.k8s.io, read as a core Event.
    let core = kubectl.json(&["get", "events", "web.new-api"]);
    assert_eq!(str_at(&core, "/apiVersion"), "v1");
    assert_eq!(
        str_at(&core, "/message"),
        "Pulled image through the new API"
    );
    assert_eq!(str_at(&core, "/involvedObject/name"), "web");
    assert_eq!(str_at(&core, "/reportingComponent"), "example.com/puller");
    assert_eq!(str_at(&core, "/reportingInstance"), "puller-1");
    assert_eq!(str_at(&core, "/action"), "Pulling");
    assert_eq!(core["source"], serde_json::json!({}));
    assert!(core["firstTimestamp"].is_null() && core["lastTimestamp"].is_null());
    assert!(
        core.get("note").is_none() && core.get("regarding").is_none(),
        "no events.k8s.io names in the core shape: {core}"
    );

    // Written as a core Event, read through events.k8s.io.
    let new = kubectl.json(&["get", "events.v1.events.k8s.io", "web.old-api"]);
    assert_eq!(str_at(&new, "/apiVersion"), "events.k8s.io/v1");
    assert_eq!(
        str_at(&new, "/note"),
        "Started container through the old API"
    );
    assert_eq!(str_at(&new, "/regarding/kind"), "Pod");
    assert_eq!(
        new["deprecatedSource"],
        serde_json::json!({"component": "kubelet", "host": "node-1"})
    );
    assert_eq!(new["deprecatedCount"], 3);
    assert_eq!(
        str_at(&new, "/deprecatedFirstTimestamp"),
        "2026-12-06T10:40:00Z"
    );
    assert!(
        new["eventTime"].is_null(),
        "eventTime is never omitted: {new}"
    );
    assert!(
        new.get("message").is_none() && new.get("reportingController").is_none(),
        "no core names and no empty omitempty fields: {new}"
    );
    // One object: both groups report the same uid and resourceVersion.
    let same = kubectl.json(&["get", "events", "web.old-api"]);
    assert_eq!(
        str_at(&same, "/metadata/uid"),
        str_at(&new, "/metadata/uid")
    );
    assert_eq!(
        str_at(&same, "/metadata/resourceVersion"),
        str_at(&new, "/metadata/resourceVersion")
    );

    // Both groups print Kubernetes' event columns.
    let printed = kubectl.ok(&["get", "events.v1.events.k8s.io"]);
    let mut lines = printed.lines();
    assert_eq!(
        lines.next().map(cells),
        Some(vec!["LAST", "SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"]),
        "{printed}"
    );
    let rows: Vec<Vec<&str>> = lines.map(cells).collect();
    assert!(
        rows.iter()
            .any(|r| r[1..5] == ["Normal", "Pulled", "pod/web", "Pulled"]),
        "{printed}"
    );
    assert!(
        rows.iter()
            .any(|r| r[1..5] == ["Warning", "Started", "pod/web", "Started"]),
        "{printed}"
    );

    // Field selectors name events.k8s.io's fields.
    let selected = kubectl.ok(&[
        "get",
        "events.v1.events.k8s.io",
        "--field-selector",
        "regarding.name=web,type=Warning",
        "-o",
        "name",
    ]);
    assert_eq!(selected.trim(), "event.events.k8s.io/web.old-api");
    let by_controller = kubectl.ok(&[
        "get",
        "events.v1.events.k8s.io",
        "--field-selector",
        "reportingController=example.com/puller",
        "-o",
        "name",
    ]);
    assert_eq!(by_controller.trim(), "event.events.k8s.io/web.new-api");

    // `kubectl events` shows an event written through events.k8s.io.
    let listed = kubectl.ok(&["events", "--for", "pod/web"]);
    assert!(
        listed.contains("Pulled image through the new API")
            && listed.contains("Started container through the old API"),
        "{listed}"
    );

    // A change through one group reaches watchers of both.
    kubectl.ok(&[
        "patch",
        "events.v1.events.k8s.io",
        "web.old-api",
        "--type=merge",
        "-p",
        r#"{"note": "changed through events.k8s.io"}"#,
    ]);
    let changed = kubectl.json(&["get", "events", "web.old-api"]);
    assert_eq!(
        str_at(&changed, "/message"),
        "changed through events.k8s.io"
    );

    for name in ["web.new-api", "web.old-api"] {
        core_watch.wait_for_line(&format!("core watch sees {name}"), |l| {
            l == format!("event/{name}")
        });
        new_watch.wait_for_line(&format!("events.k8s.io watch sees {name}"), |l| {
            l == format!("event.events.k8s.io/{name}")
        });
    }
    // events.k8s.io holds new events to its own rules; the core group does not.
    let bad = skiff.write_file(
        "bad-event.yaml",
        &EVENTS_K8S_IO_EVENT
            .replace("web.new-api", "bad")
            .replace("type: Normal", "type: Normal\ndeprecatedCount: 2"),
    );
    let refused = kubectl.fails(&["create", "-f", &bad]);
    assert!(
        refused.contains(
            r#"Event "bad" is invalid: deprecatedCount: Invalid value: "": needs to be unset"#
        ),
        "{refused}"
    );
    kubectl.ok(&["delete", "events.v1.events.k8s.io", "web.new-api"]);
    let gone = kubectl.fails(&["get", "events", "web.new-api"]);
    assert!(gone.contains("NotFound"), "{gone}");
}

/// The rows of a `kubectl get` table after its header, each as its cells, with the AGE column
/// (at `age_column`) checked and dropped.
fn rows_without_age(printed: &str, age_column: usize) -> BTreeSet<Vec<String>> {
    printed
        .lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let mut row: Vec<String> = cells(line).into_iter().map(str::to_string).collect();
            assert!(
                support::is_age(&row[age_column]),
                "no age in column {age_column}: {line}"
            );
            row.remove(age_column);
            row
        })
        .collect()
}

fn set(rows: &[&[&str]]) -> BTreeSet<Vec<String>> {
    rows.iter()
        .map(|r| r.iter().map(|c| c.to_string()).collect())
        .collect()
}

#[test]
fn priority_and_fairness_bootstrap_objects_are_served_and_kept() {
    let skiff = Skiff::start();
    let kubectl = skiff.kubectl();

    let levels = kubectl.ok(&["get", "prioritylevelconfigurations"]);
    assert_eq!(
        levels.lines().next().map(cells),
        Some(vec![
            "NAME",
            "TYPE",
            "NOMINALCONCURRENCYSHARES",
            "QUEUES",
            "HANDSIZE",
            "QUEUELENGTHLIMIT",
            "AGE"
        ]),
        "{levels}"
    );
    assert_eq!(
        rows_without_age(&levels, 6),
        set(&[
            &["catch-all", "Limited", "5", "<none>", "<none>", "<none>"],
            &["exempt", "Exempt", "<none>", "<none>", "<none>", "<none>"],
            &["global-default", "Limited", "20", "128", "6", "50"],
            &["leader-election", "Limited", "10", "16", "4", "50"],
            &["node-high", "Limited", "40", "64", "6", "50"],
            &["system", "Limited", "30", "64", "6", "50"],
            &["workload-high", "Limited", "40", "128", "6", "50"],
            &["workload-low", "Limited", "100", "128", "6", "50"],
        ]),
        "{levels}"
    );

    // Every FlowSchema's Dangling condition is written by the server: MISSINGPL False.
    let expected_schemas = set(&[
        &["exempt", "exempt", "1", "<none>", "False"],
        &["probes", "exempt", "2", "<none>", "False"],
        &[
            "system-leader-election",
            "leader-election",
            "100",
            "ByUser",
            "False",
        ],
        &[
            "endpoint-controller",
            "workload-high",
            "150",
            "ByUser",
            "False",
        ],
        &[
            "workload-leader-election",
            "leader-election",
            "200",
            "ByUser",
            "False",
        ],
        &["system-node-high", "node-high", "400", "ByUser", "False"],
        &["system-nodes", "system", "500", "ByUser", "False"],
        &[
            "kube-controller-manager",
            "workload-high",
            "800",
            "ByNamespace",
            "False",
        ],
        &[
            "kube-scheduler",
            "workload-high",
            "800",
            "ByNamespace",
            "False",
        ],
        &[
            "kube-system-service-accounts",
            "workload-high",
            "900",
            "ByNamespace",
            "False",
        ],
        &[
            "service-accounts",
            "workload-low",
            "9000",
            "ByUser",
            "False",
        ],
        &[
            "global-default",
            "global-default",
            "9900",
            "ByUser",
            "False",
        ],
        &["catch-all", "catch-all", "10000", "ByUser", "False"],
    ]);
    let schemas = wait_for("every FlowSchema's Dangling condition", DEADLINE, || {
        let printed = kubectl.ok(&["get", "flowschemas"]);
        (rows_without_age(&printed, 4) == expected_schemas).then_some(printed)
    });
    assert_eq!(
        schemas.lines().next().map(cells),
        Some(vec![
            "NAME",
            "PRIORITYLEVEL",
            "MATCHINGPRECEDENCE",
            "DISTINGUISHERMETHOD",
            "AGE",
            "MISSINGPL"
        ]),
    );
    let exempt = kubectl.json(&["get", "flowschema", "exempt"]);
    let condition = &exempt["status"]["conditions"][0];
    assert_eq!(
        (
            str_at(condition, "/type"),
            str_at(condition, "/status"),
            str_at(condition, "/reason")
        ),
        (
            "Dangling".to_string(),
            "False".to_string(),
            "Found".to_string()
        )
    );
    assert_eq!(
        str_at(condition, "/message"),
        "This FlowSchema references the PriorityLevelConfiguration object named \"exempt\" and it exists"
    );
    assert_eq!(
        exempt["spec"]["rules"][0]["subjects"],
        serde_json::json!([{"kind": "Group", "group": {"name": "system:masters"}}])
    );
    assert_eq!(
        str_at(
            &exempt,
            "/metadata/annotations/apf.kubernetes.io~1autoupdate-spec"
        ),
        "true"
    );

    // A deleted suggested object stays deleted; a deleted mandatory one comes back.
    let old_uid = str_at(
        &kubectl.json(&["get", "flowschema", "catch-all"]),
        "/metadata/uid",
    );
    kubectl.ok(&["delete", "flowschema", "global-default"]);
    kubectl.ok(&["delete", "flowschema", "catch-all"]);
    kubectl.ok(&["delete", "prioritylevelconfiguration", "exempt"]);
    wait_for("catch-all and exempt to come back", DEADLINE, || {
        let names: Vec<String> = items(&kubectl.json(&["get", "flowschemas"]))
            .iter()
            .map(|fs| str_at(fs, "/metadata/name"))
            .collect();
        let catch_all = kubectl.run(&[
            "get",
            "flowschema",
            "catch-all",
            "-o",
            "jsonpath={.metadata.uid}",
        ]);
        let level = kubectl.run(&["get", "prioritylevelconfiguration", "exempt"]);
        (catch_all.success()
            && catch_all.stdout.trim() != old_uid
            && level.success()
            && !names.contains(&"global-default".to_string()))
        .then_some(())
    });

    // A FlowSchema naming a level that does not exist is marked dangling.
    let file = skiff.write_file(
        "orphan.yaml",
        "apiVersion: flowcontrol.apiserver.k8s.io/v1
kind: FlowSchema
metadata:
  name: orphan
spec:
  priorityLevelConfiguration:
    name: nowhere
  rules:
  - subjects:
    - kind: User
      user:
        name: jane
    nonResourceRules:
    - verbs: [\"*\"]
      nonResourceURLs: [\"*\"]
",
    );
    kubectl.ok(&["create", "-f", &file]);
    let orphan = wait_for("orphan's Dangling condition", DEADLINE, || {
        let fs = kubectl.json(&["get", "flowschema", "orphan"]);
        (str_at(&fs, "/status/conditions/0/status") == "True").then_some(fs)
    });
    assert_eq!(str_at(&orphan, "/status/conditions/0/reason"), "NotFound");
    assert_eq!(orphan["spec"]["matchingPrecedence"], 1000, "defaulted");
    let invalid = kubectl.fails(&[
        "patch",
        "flowschema",
        "orphan",
        "--type=merge",
        "-p",
        r#"{"spec": {"matchingPrecedence": 10001}}"#,
    ]);
    assert!(
        invalid.contains(
            "spec.matchingPrecedence: Invalid value: 10001: must be between 1 and 10000, inclusive"
        ),
        "{invalid}"
    );
}

/// Sends a request head announcing a body it never sends, so the server holds the request
/// open (in flight) until the connection is dropped.
fn held_request(
    skiff: &Skiff,
    path: &str,
    token: &str,
) -> rustls::StreamOwned<rustls::ClientConnection, std::net::TcpStream> {
    let (mut stream, address) = skiff.tls_stream().unwrap_or_else(|e| panic!("{e}"));
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n"
    );
    stream
        .write_all(head.as_bytes())
        .and_then(|()| stream.flush())
        .unwrap_or_else(|e| panic!("cannot send a held request: {e}"));
    stream
}

/// One request written whole; the raw answer (status line, headers and body).
fn raw_answer(skiff: &Skiff, method: &str, path: &str, token: &str, body: &str) -> String {
    let (mut stream, address) = skiff.tls_stream().unwrap_or_else(|e| panic!("{e}"));
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nAccept: application/json\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream
        .write_all(request.as_bytes())
        .unwrap_or_else(|e| panic!("cannot send: {e}"));
    let mut raw = Vec::new();
    if let Err(e) = stream.read_to_end(&mut raw) {
        assert_eq!(
            e.kind(),
            std::io::ErrorKind::UnexpectedEof,
            "cannot read: {e}"
        );
    }
    String::from_utf8_lossy(&raw).into_owned()
}

fn status_of(answer: &str) -> &str {
    answer.split_whitespace().nth(1).unwrap_or("")
}

/// Opens a watch and waits for its response head, so it is being served.
fn open_watch(
    skiff: &Skiff,
    path: &str,
    token: &str,
) -> rustls::StreamOwned<rustls::ClientConnection, std::net::TcpStream> {
    let (mut stream, address) = skiff.tls_stream().unwrap_or_else(|e| panic!("{e}"));
    let head = format!(
        "GET {path} HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {token}\r\nAccept: application/json\r\n\r\n"
    );
    stream
        .write_all(head.as_bytes())
        .unwrap_or_else(|e| panic!("cannot start a watch: {e}"));
    let mut first = [0u8; 12];
    stream
        .read_exact(&mut first)
        .unwrap_or_else(|e| panic!("the watch did not answer: {e}"));
    assert_eq!(&first, b"HTTP/1.1 200", "the watch is served");
    stream
}

#[test]
fn requests_beyond_the_inflight_limits_are_refused_but_long_running_and_admin_ones_are_not() {
    let skiff = Skiff::start_with(&[
        "--max-requests-inflight=1",
        "--max-mutating-requests-inflight=2",
    ]);
    let kubectl = skiff.kubectl();
    kubectl.ok(&[
        "create",
        "rolebinding",
        "default-edit",
        "--clusterrole=edit",
        "--serviceaccount=default:default",
    ]);
    let token = kubectl
        .ok(&["create", "token", "default"])
        .trim()
        .to_string();
    let configmaps = "/api/v1/namespaces/default/configmaps";
    let body = r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"generateName":"probe-"}}"#;

    // Long-running requests do not count: two open watches, and a list is still served under
    // a read-only limit of one.
    let _watches = [
        open_watch(&skiff, "/api/v1/namespaces/default/pods?watch=true", &token),
        open_watch(
            &skiff,
            "/api/v1/namespaces/default/configmaps?watch=true",
            &token,
        ),
    ];
    let listed = raw_answer(&skiff, "GET", configmaps, &token, "");
    assert_eq!(status_of(&listed), "200", "{listed}");

    // Two mutating requests held open (authorized, then waiting for their bodies) fill the
    // mutating limit.
    let held = [
        held_request(&skiff, configmaps, &token),
        held_request(&skiff, configmaps, &token),
    ];
    let refused = wait_for("a third write to be refused", DEADLINE, || {
        let answer = raw_answer(&skiff, "POST", configmaps, &token, body);
        (status_of(&answer) == "429").then_some(answer)
    });
    let lower = refused.to_ascii_lowercase();
    assert!(lower.contains("\r\nretry-after: 1\r\n"), "{refused}");
    assert!(
        lower.contains("\r\ncontent-type: text/plain; charset=utf-8\r\n"),
        "{refused}"
    );
    assert!(
        refused.ends_with("\r\n\r\nToo many requests, please try again later.\n"),
        "{refused}"
    );
    // Reads have their own limit, and system:masters is served beyond the limit.
    let read = raw_answer(&skiff, "GET", configmaps, &token, "");
    assert_eq!(status_of(&read), "200", "{read}");
    kubectl.ok(&["create", "configmap", "by-admin"]);

    // Once the held requests end, writes are served again.
    drop(held);
    let answer = wait_for("writes to be served again", DEADLINE, || {
        let answer = raw_answer(&skiff, "POST", configmaps, &token, body);
        (status_of(&answer) != "429").then_some(answer)
    });
    assert_eq!(status_of(&answer), "201", "{answer}");
}

/// A minimal definition of a namespaced custom resource in `widgets.example.com/v1`.
const WIDGET_DEFINITION: &str = "apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.widgets.example.com
spec:
  group: widgets.example.com
  scope: Namespaced
  names:
    plural: widgets
    singular: widget
    kind: Widget
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        x-kubernetes-preserve-unknown-fields: true
";

/// The APIService names `kubectl api-versions` implies: `version.group`, `v1.` for core.
fn api_service_names_of_served_versions(kubectl: &support::Kubectl) -> BTreeSet<String> {
    kubectl
        .ok(&["api-versions"])
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|gv| match gv.split_once('/') {
            Some((group, version)) => format!("{version}.{group}"),
            None => format!("{gv}."),
        })
        .collect()
}

#[test]
fn every_served_group_version_has_a_local_available_api_service() {
    let skiff = Skiff::start();
    let kubectl = skiff.kubectl();

    let printed = wait_for("every APIService to be Available", DEADLINE, || {
        let printed = kubectl.ok(&["get", "apiservices"]);
        printed
            .lines()
            .skip(1)
            .all(|l| cells(l)[1..3] == ["Local", "True"])
            .then_some(printed)
    });
    assert_eq!(
        printed.lines().next().map(cells),
        Some(vec!["NAME", "SERVICE", "AVAILABLE", "AGE"]),
        "{printed}"
    );
    let listed: BTreeSet<String> = printed
        .lines()
        .skip(1)
        .map(|l| cells(l)[0].to_string())
        .collect();
    assert_eq!(listed, api_service_names_of_served_versions(&kubectl));
    for name in [
        "v1.",
        "v1.apps",
        "v1.events.k8s.io",
        "v2.autoscaling",
        "v1.autoscaling",
        "v1.flowcontrol.apiserver.k8s.io",
        "v1.apiregistration.k8s.io",
    ] {
        assert!(listed.contains(name), "{name} missing from {listed:?}");
    }
    let apps = kubectl.json(&["get", "apiservice", "v1.apps"]);
    assert_eq!(apps["spec"]["groupPriorityMinimum"], 17800);
    assert_eq!(apps["spec"]["versionPriority"], 15);
    assert_eq!(
        str_at(
            &apps,
            "/metadata/labels/kube-aggregator.kubernetes.io~1automanaged"
        ),
        "onstart"
    );
    let condition = &apps["status"]["conditions"][0];
    assert_eq!(
        str_at(condition, "/message"),
        "Local APIServices are always available"
    );
    assert_eq!(str_at(condition, "/reason"), "Local");

    // A custom resource's group gets one, and loses it with its definition.
    let file = skiff.write_file("widgets.yaml", WIDGET_DEFINITION);
    kubectl.ok(&["apply", "-f", &file]);
    let widgets = wait_for("v1.widgets.example.com to be Available", DEADLINE, || {
        let got = kubectl.run(&["get", "apiservice", "v1.widgets.example.com", "-o", "json"]);
        let obj = got.success().then(|| support::json::json_of(&got.stdout))?;
        (str_at(&obj, "/status/conditions/0/status") == "True").then_some(obj)
    });
    assert_eq!(widgets["spec"]["groupPriorityMinimum"], 1000);
    assert_eq!(
        str_at(
            &widgets,
            "/metadata/labels/kube-aggregator.kubernetes.io~1automanaged"
        ),
        "true"
    );
    kubectl.ok(&["delete", "-f", &file]);
    wait_for("v1.widgets.example.com to go", DEADLINE, || {
        (!kubectl
            .run(&["get", "apiservice", "v1.widgets.example.com"])
            .success())
        .then_some(())
    });

    // A deleted local APIService of a served group comes back.
    kubectl.ok(&["delete", "apiservice", "v1.apps"]);
    wait_for("v1.apps to come back", DEADLINE, || {
        kubectl
            .run(&["get", "apiservice", "v1.apps"])
            .success()
            .then_some(())
    });
}

#[test]
fn a_group_handed_to_a_service_answers_503_as_kube_aggregator_does() {
    let skiff = Skiff::start();
    let kubectl = skiff.kubectl();
    let file = skiff.write_file(
        "remote.yaml",
        "apiVersion: apiregistration.k8s.io/v1
kind: APIService
metadata:
  name: v1alpha1.remote.example.com
spec:
  group: remote.example.com
  version: v1alpha1
  groupPriorityMinimum: 1000
  versionPriority: 15
  service:
    namespace: default
    name: remote-api
  insecureSkipTLSVerify: true
",
    );
    kubectl.ok(&["create", "-f", &file]);
    let printed = kubectl.ok(&["get", "apiservice", "v1alpha1.remote.example.com"]);
    let row: Vec<&str> = printed.lines().nth(1).map(cells).unwrap_or_default();
    assert_eq!(
        row[..2],
        ["v1alpha1.remote.example.com", "default/remote-api"],
        "{printed}"
    );
    let token = std::fs::read_to_string(skiff.data_dir().join("token")).expect("token");
    let answer = skiff.request(
        "GET",
        "/apis/remote.example.com/v1alpha1/things",
        Some(token.trim()),
    );
    assert_eq!(answer.status, 503, "{}", answer.body);
    assert_eq!(answer.body, "service unavailable\n");
    // A group nothing hands anywhere is still a 404.
    let unknown = skiff.request(
        "GET",
        "/apis/nowhere.example.com/v1/things",
        Some(token.trim()),
    );
    assert_eq!(unknown.status, 404, "{}", unknown.body);
    // The stored APIService is kept, not marked local: the availability check reports the
    // missing Service.
    let stored = wait_for("the availability check", DEADLINE, || {
        let stored = kubectl.json(&["get", "apiservice", "v1alpha1.remote.example.com"]);
        (!stored["status"]["conditions"].is_null()).then_some(stored)
    });
    assert_eq!(
        stored["status"]["conditions"][0]["reason"], "ServiceNotFound",
        "{stored}"
    );
}
