//! The API kinds tools expect beside the workloads, end to end with the real `kubectl`:
//! `events.k8s.io/v1` Events sharing core Events' storage.
//!
//! Run with `cargo test -p skiff --test api_kinds`. Needs `kubectl` on the PATH. Every wait
//! polls a condition against a deadline.

mod support;

use support::json::str_at;
use support::{cells, Skiff};

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
    let mut new_watch = kubectl.spawn_lines(&[
        "get",
        "events.v1.events.k8s.io",
        "-w",
        "-o",
        "name",
    ]);

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
    assert_eq!(
        str_at(&core, "/reportingComponent"),
        "example.com/puller"
    );
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
    assert_eq!(str_at(&new, "/note"), "Started container through the old API");
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
    assert!(new["eventTime"].is_null(), "eventTime is never omitted: {new}");
    assert!(
        new.get("message").is_none() && new.get("reportingController").is_none(),
        "no core names and no empty omitempty fields: {new}"
    );
    // One object: both groups report the same uid and resourceVersion.
    let same = kubectl.json(&["get", "events", "web.old-api"]);
    assert_eq!(str_at(&same, "/metadata/uid"), str_at(&new, "/metadata/uid"));
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
        rows.iter().any(|r| r[1..5] == ["Normal", "Pulled", "pod/web", "Pulled"]),
        "{printed}"
    );
    assert!(
        rows.iter().any(|r| r[1..5] == ["Warning", "Started", "pod/web", "Started"]),
        "{printed}"
    );

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
    assert_eq!(str_at(&changed, "/message"), "changed through events.k8s.io");

    for name in ["web.new-api", "web.old-api"] {
        core_watch.wait_for_line(&format!("core watch sees {name}"), |l| {
            l == format!("event/{name}")
        });
        new_watch.wait_for_line(&format!("events.k8s.io watch sees {name}"), |l| {
            l == format!("event.events.k8s.io/{name}")
        });
    }
    kubectl.ok(&["delete", "events.v1.events.k8s.io", "web.new-api"]);
    let gone = kubectl.fails(&["get", "events", "web.new-api"]);
    assert!(gone.contains("NotFound"), "{gone}");
}
