//! The API kinds tools expect beside the workloads, end to end with the real `kubectl`:
//! `events.k8s.io/v1` Events sharing core Events' storage, the API Priority and Fairness
//! bootstrap configuration and requests dispatched by it, the scheduler's Events.
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

#[test]
fn the_scheduler_writes_its_events_through_events_k8s_io_as_kube_scheduler_does() {
    let skiff = Skiff::start_with(&["--simulated-nodes", "1", "--no-node"]);
    let kubectl = skiff.kubectl();
    kubectl.ok(&["run", "web", "--image=nginx"]);
    kubectl.ok(&[
        "run",
        "pinned",
        "--image=nginx",
        "--overrides",
        r#"{"spec": {"nodeSelector": {"disk": "ssd"}}}"#,
    ]);
    let node = wait_for("web to be bound", DEADLINE, || {
        let pod = kubectl.json(&["get", "pod", "web"]);
        let node = str_at(&pod, "/spec/nodeName");
        (!node.is_empty()).then_some(node)
    });

    let scheduled = wait_for(
        "the Scheduled event through events.k8s.io",
        DEADLINE,
        || {
            let events = kubectl.json(&[
                "get",
                "events.v1.events.k8s.io",
                "--field-selector",
                "regarding.name=web,reason=Scheduled",
            ]);
            items(&events).into_iter().next()
        },
    );
    assert_eq!(str_at(&scheduled, "/apiVersion"), "events.k8s.io/v1");
    assert_eq!(
        str_at(&scheduled, "/reportingController"),
        "default-scheduler"
    );
    let instance = str_at(&scheduled, "/reportingInstance");
    assert!(
        instance.starts_with("default-scheduler-") && instance.len() > "default-scheduler-".len(),
        "{scheduled}"
    );
    assert_eq!(str_at(&scheduled, "/action"), "Binding");
    assert_eq!(str_at(&scheduled, "/type"), "Normal");
    assert_eq!(
        str_at(&scheduled, "/note"),
        format!("Successfully assigned default/web to {node}")
    );
    assert_eq!(str_at(&scheduled, "/regarding/kind"), "Pod");
    assert_eq!(str_at(&scheduled, "/regarding/apiVersion"), "v1");
    assert_eq!(str_at(&scheduled, "/regarding/name"), "web");
    let pod_uid = str_at(&kubectl.json(&["get", "pod", "web"]), "/metadata/uid");
    assert_eq!(str_at(&scheduled, "/regarding/uid"), pod_uid);
    // A MicroTime, as the events library stamps it; none of the deprecated core fields.
    let event_time = str_at(&scheduled, "/eventTime");
    let fraction = event_time
        .split('.')
        .nth(1)
        .unwrap_or_else(|| panic!("no fraction in {event_time}"));
    assert_eq!(fraction.len(), "716748Z".len(), "{event_time}");
    assert_eq!(scheduled["deprecatedSource"], serde_json::json!({}));
    assert!(
        scheduled["deprecatedFirstTimestamp"].is_null(),
        "{scheduled}"
    );
    assert!(
        scheduled["deprecatedLastTimestamp"].is_null(),
        "{scheduled}"
    );
    assert!(scheduled.get("deprecatedCount").is_none(), "{scheduled}");
    assert!(scheduled.get("series").is_none(), "{scheduled}");
    let name = str_at(&scheduled, "/metadata/name");
    let suffix = name
        .strip_prefix("web.")
        .unwrap_or_else(|| panic!("the event is named after the pod: {name}"));
    assert!(
        suffix.chars().all(|c| c.is_ascii_hexdigit()),
        "named after the time in hexadecimal nanoseconds: {name}"
    );

    // The core view is the one Kubernetes 1.36 answers for the scheduler's events.
    let core = kubectl.json(&["get", "events", &name]);
    assert_eq!(core["source"], serde_json::json!({}));
    assert!(core["firstTimestamp"].is_null() && core["lastTimestamp"].is_null());
    assert!(core.get("count").is_none(), "{core}");
    assert_eq!(str_at(&core, "/reportingComponent"), "default-scheduler");
    assert_eq!(str_at(&core, "/reportingInstance"), instance);

    let failed = wait_for("the FailedScheduling event", DEADLINE, || {
        let events = kubectl.json(&[
            "get",
            "events.v1.events.k8s.io",
            "--field-selector",
            "regarding.name=pinned,reason=FailedScheduling",
        ]);
        items(&events).into_iter().next()
    });
    assert_eq!(str_at(&failed, "/action"), "Scheduling");
    assert_eq!(str_at(&failed, "/type"), "Warning");
    assert_eq!(str_at(&failed, "/reportingController"), "default-scheduler");
    let expected = "0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector. \
no new claims to deallocate, preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling.";
    assert_eq!(str_at(&failed, "/note"), expected);

    // kubectl prints them as against Kubernetes: `get events` rows and describe's Events.
    let printed = kubectl.ok(&["get", "events", "--field-selector", "reason=Scheduled"]);
    let row: Vec<&str> = printed
        .lines()
        .skip(1)
        .map(cells)
        .find(|r| r.get(3) == Some(&"pod/web"))
        .unwrap_or_else(|| panic!("no row for pod/web: {printed}"));
    assert!(support::is_age(row[0]), "{printed}");
    assert_eq!(
        row[1..].join(" "),
        format!("Normal Scheduled pod/web Successfully assigned default/web to {node}")
    );
    let wide = kubectl.ok(&["get", "events", &name, "-o", "wide"]);
    assert!(
        wide.contains(&format!("default-scheduler, {instance}")),
        "SOURCE is the reporting controller and instance: {wide}"
    );
    let described = kubectl.ok(&["describe", "pod", "web"]);
    let events_part = described
        .split("Events:")
        .nth(1)
        .unwrap_or_else(|| panic!("no Events in {described}"));
    let line = events_part
        .lines()
        .find(|l| l.contains("Scheduled"))
        .unwrap_or_else(|| panic!("no Scheduled line: {described}"));
    let line_cells = cells(line);
    assert_eq!(line_cells[..2], ["Normal", "Scheduled"], "{line}");
    assert!(support::is_age(line_cells[2]), "{line}");
    assert_eq!(
        line_cells[3..].join(" "),
        format!("default-scheduler Successfully assigned default/web to {node}")
    );
    let described = kubectl.ok(&["describe", "pod", "pinned"]);
    let failed_line = described
        .lines()
        .find(|l| l.contains("FailedScheduling"))
        .unwrap_or_else(|| panic!("no FailedScheduling line: {described}"));
    let failed_cells = cells(failed_line);
    assert_eq!(
        failed_cells[..2],
        ["Warning", "FailedScheduling"],
        "{failed_line}"
    );
    assert_eq!(failed_cells[3], "default-scheduler", "{failed_line}");
    assert!(described.contains(expected), "{described}");
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

/// A priority level with few shares that refuses beyond them, and the FlowSchema sending the
/// ServiceAccount `load:noisy` there.
const NOISY_FLOW: &str = "apiVersion: flowcontrol.apiserver.k8s.io/v1
kind: PriorityLevelConfiguration
metadata:
  name: noisy
spec:
  type: Limited
  limited:
    nominalConcurrencyShares: 5
    lendablePercent: 0
    limitResponse:
      type: Reject
---
apiVersion: flowcontrol.apiserver.k8s.io/v1
kind: FlowSchema
metadata:
  name: noisy
spec:
  priorityLevelConfiguration:
    name: noisy
  matchingPrecedence: 500
  distinguisherMethod:
    type: ByUser
  rules:
  - subjects:
    - kind: ServiceAccount
      serviceAccount:
        namespace: load
        name: noisy
    resourceRules:
    - verbs: [\"*\"]
      apiGroups: [\"*\"]
      resources: [\"*\"]
      namespaces: [\"*\"]
      clusterScope: true
";

/// The value of a header in a raw answer (names compared without case).
fn header_of(answer: &str, name: &str) -> Option<String> {
    let head = answer.split("\r\n\r\n").next().unwrap_or("");
    head.lines().skip(1).find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.trim()
            .eq_ignore_ascii_case(name)
            .then(|| value.trim().to_string())
    })
}

fn uid_of(kubectl: &support::Kubectl, kind: &str, name: &str) -> String {
    kubectl
        .ok(&["get", kind, name, "-o", "jsonpath={.metadata.uid}"])
        .trim()
        .to_string()
}

#[test]
fn a_noisy_client_gets_429s_from_its_own_priority_level_while_another_is_served() {
    // A server concurrency of 6: the noisy level's 5 shares of 250 give it one seat.
    let skiff = Skiff::start_with(&[
        "--no-node",
        "--max-requests-inflight=4",
        "--max-mutating-requests-inflight=2",
    ]);
    let kubectl = skiff.kubectl();
    kubectl.ok(&["create", "namespace", "load"]);
    for account in ["noisy", "quiet"] {
        kubectl.ok(&["create", "serviceaccount", account, "-n", "load"]);
    }
    kubectl.ok(&[
        "create",
        "rolebinding",
        "load-edit",
        "-n",
        "load",
        "--clusterrole=edit",
        "--serviceaccount=load:noisy",
        "--serviceaccount=load:quiet",
    ]);
    let token = |account: &str| {
        kubectl
            .ok(&["create", "token", account, "-n", "load"])
            .trim()
            .to_string()
    };
    let (noisy, quiet) = (token("noisy"), token("quiet"));
    let flow_file = skiff.write_file("noisy-flow.yaml", NOISY_FLOW);
    kubectl.ok(&["apply", "-f", &flow_file]);
    let noisy_schema = uid_of(&kubectl, "flowschema", "noisy");
    let noisy_level = uid_of(&kubectl, "prioritylevelconfiguration", "noisy");
    let configmaps = "/api/v1/namespaces/load/configmaps";

    // Classified by the new FlowSchema once the server has read it; the answer says so.
    let answer = wait_for("the noisy FlowSchema to classify", DEADLINE, || {
        let answer = raw_answer(&skiff, "GET", configmaps, &noisy, "");
        (header_of(&answer, "X-Kubernetes-PF-FlowSchema-UID").as_deref()
            == Some(noisy_schema.as_str()))
        .then_some(answer)
    });
    assert_eq!(status_of(&answer), "200", "{answer}");
    assert_eq!(
        header_of(&answer, "X-Kubernetes-PF-PriorityLevel-UID").as_deref(),
        Some(noisy_level.as_str()),
        "{answer}"
    );
    let found = kubectl.ok(&[
        "get",
        "flowschema",
        "noisy",
        "-o",
        "jsonpath={.status.conditions[?(@.type==\"Dangling\")].status}",
    ]);
    assert_eq!(found.trim(), "False");
    // Another service account is classified by the bootstrap configuration.
    let answer = raw_answer(&skiff, "GET", configmaps, &quiet, "");
    assert_eq!(status_of(&answer), "200", "{answer}");
    assert_eq!(
        header_of(&answer, "X-Kubernetes-PF-FlowSchema-UID"),
        Some(uid_of(&kubectl, "flowschema", "service-accounts")),
        "{answer}"
    );
    assert_eq!(
        header_of(&answer, "X-Kubernetes-PF-PriorityLevel-UID"),
        Some(uid_of(
            &kubectl,
            "prioritylevelconfiguration",
            "workload-low"
        )),
        "{answer}"
    );

    // Watches hold no seat: one open watch, and the noisy level still serves a list.
    let watch = open_watch(&skiff, &format!("{configmaps}?watch=true"), &noisy);
    let listed = raw_answer(&skiff, "GET", configmaps, &noisy, "");
    assert_eq!(status_of(&listed), "200", "{listed}");

    // A write held open (authorized, waiting for its body) takes the level's one seat.
    let held = held_request(&skiff, configmaps, &noisy);
    let refused = wait_for("the noisy client to be refused", DEADLINE, || {
        let answer = raw_answer(&skiff, "GET", configmaps, &noisy, "");
        (status_of(&answer) == "429").then_some(answer)
    });
    assert_eq!(header_of(&refused, "Retry-After").as_deref(), Some("1"));
    assert_eq!(
        header_of(&refused, "Content-Type").as_deref(),
        Some("text/plain; charset=utf-8")
    );
    assert_eq!(
        header_of(&refused, "X-Kubernetes-PF-FlowSchema-UID"),
        Some(noisy_schema.clone()),
        "{refused}"
    );
    assert!(
        refused.ends_with("\r\n\r\nToo many requests, please try again later.\n"),
        "{refused}"
    );

    // While noisy threads flood their level, the quiet client is answered every time, and so
    // is the administrator (exempt).
    let stop = std::sync::atomic::AtomicBool::new(false);
    let (noisy_ok, noisy_refused) = std::thread::scope(|scope| {
        let flooders: Vec<_> = (0..4)
            .map(|_| {
                scope.spawn(|| {
                    let (mut ok, mut refused) = (0u32, 0u32);
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        match status_of(&raw_answer(&skiff, "GET", configmaps, &noisy, "")) {
                            "200" => ok += 1,
                            "429" => refused += 1,
                            other => panic!("the noisy client got {other}"),
                        }
                    }
                    (ok, refused)
                })
            })
            .collect();
        for i in 0..30 {
            let answer = raw_answer(&skiff, "GET", configmaps, &quiet, "");
            assert_eq!(status_of(&answer), "200", "quiet request {i}: {answer}");
        }
        kubectl.ok(&["get", "configmaps", "-n", "load"]);
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        flooders
            .into_iter()
            .map(|f| f.join().expect("a flooder"))
            .fold((0, 0), |(a, b), (c, d)| (a + c, b + d))
    });
    assert!(noisy_refused > 0, "the noisy client was never refused");
    assert_eq!(noisy_ok, 0, "its one seat stayed held");

    // Once the held write ends, the noisy client is served again.
    drop(held);
    drop(watch);
    let answer = wait_for("the noisy client to be served again", DEADLINE, || {
        let answer = raw_answer(&skiff, "GET", configmaps, &noisy, "");
        (status_of(&answer) == "200").then_some(answer)
    });
    assert_eq!(
        header_of(&answer, "X-Kubernetes-PF-PriorityLevel-UID"),
        Some(noisy_level)
    );
    // A priority level's status stays empty, as kube-apiserver leaves it.
    let status = kubectl.ok(&[
        "get",
        "prioritylevelconfiguration",
        "noisy",
        "-o",
        "jsonpath={.status}",
    ]);
    assert!(matches!(status.trim(), "" | "{}"), "{status}");
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
