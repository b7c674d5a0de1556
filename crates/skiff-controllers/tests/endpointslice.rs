//! The EndpointSlice planner: endpoint conditions, slice reuse and packing, placeholders and
//! ownership (upstream `reconciler_test.go` and `utils_test.go` in
//! `staging/src/k8s.io/endpointslice`).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use serde_json::{json, Value};
use skiff_controllers::endpoints::{HEADLESS_SERVICE_LABEL, LAST_CHANGE_TRIGGER_TIME_ANNOTATION};
use skiff_controllers::endpointslice::{
    plan, SliceInputs, SlicePlan, CONTROLLER_NAME, MANAGED_BY_LABEL, MAX_ENDPOINTS_PER_SLICE,
    SERVICE_NAME_LABEL,
};

const NS: &str = "ns";

fn service_with(spec: Value) -> Service {
    serde_json::from_value(json!({
        "metadata": {"name": "web", "namespace": NS, "uid": "svc-uid", "labels": {"tier": "front"}},
        "spec": spec,
    }))
    .expect("valid service")
}

fn web_service() -> Service {
    service_with(json!({
        "selector": {"app": "web"},
        "clusterIP": "127.96.0.10",
        "ipFamilies": ["IPv4"],
        "ports": [{"port": 80, "targetPort": "http", "protocol": "TCP"}],
    }))
}

fn pod(name: &str, ip: &str, ready: bool) -> Value {
    json!({
        "metadata": {"name": name, "namespace": NS, "uid": format!("uid-{name}"),
                     "labels": {"app": "web"}},
        "spec": {"nodeName": "node-1", "containers": [{"name": "c", "image": "demo",
                 "ports": [{"name": "http", "containerPort": 8080}]}]},
        "status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}],
                   "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]},
    })
}

fn pods(values: &[Value]) -> Vec<Pod> {
    values
        .iter()
        .map(|p| serde_json::from_value(p.clone()).expect("valid pod"))
        .collect()
}

fn many_pods(from: usize, to: usize) -> Vec<Value> {
    (from..to)
        .map(|i| {
            pod(
                &format!("p{i:03}"),
                &format!("10.1.{}.{}", i / 200, i % 200),
                true,
            )
        })
        .collect()
}

fn nodes() -> BTreeMap<String, Option<String>> {
    [("node-1".to_string(), Some("zone-a".to_string()))].into()
}

fn run(service: &Service, pod_values: &[Value], existing: &[EndpointSlice]) -> SlicePlan {
    let pods = pods(pod_values);
    let nodes = nodes();
    plan(&SliceInputs {
        service,
        pods: &pods,
        existing,
        nodes: &nodes,
        trigger_time: None,
        max_endpoints_per_slice: MAX_ENDPOINTS_PER_SLICE,
    })
}

/// What the API server would store for a planned slice: a name (generated for creates) and a
/// resourceVersion.
fn stored(slices: &[EndpointSlice], first_name: usize) -> Vec<EndpointSlice> {
    slices
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let mut s = s.clone();
            if s.metadata.name.is_none() {
                s.metadata.name = Some(format!("web-{:05}", first_name + i));
            }
            s.metadata.generate_name = None;
            s.metadata.resource_version = Some("10".to_string());
            s
        })
        .collect()
}

fn counts(plan: &SlicePlan) -> (usize, usize, usize) {
    (plan.create.len(), plan.update.len(), plan.delete.len())
}

fn sizes(slices: &[EndpointSlice]) -> Vec<usize> {
    let mut sizes: Vec<usize> = slices
        .iter()
        .map(|s| s.endpoints.as_ref().map_or(0, Vec::len))
        .collect();
    sizes.sort_unstable();
    sizes
}

#[test]
fn a_new_service_gets_one_slice_with_labels_owner_ports_and_conditions() {
    let svc = web_service();
    let mut terminating = pod("c", "10.0.0.3", true);
    terminating["metadata"]["deletionTimestamp"] = json!("2025-01-01T00:01:00Z");
    let result = run(
        &svc,
        &[
            pod("a", "10.0.0.1", true),
            pod("b", "10.0.0.2", false),
            terminating,
        ],
        &[],
    );
    assert_eq!(counts(&result), (1, 0, 0));
    let slice = serde_json::to_value(&result.create[0]).expect("encodes");
    assert_eq!(
        slice["metadata"],
        json!({
            "generateName": "web-",
            "namespace": NS,
            "labels": {
                "tier": "front",
                SERVICE_NAME_LABEL: "web",
                MANAGED_BY_LABEL: CONTROLLER_NAME,
            },
            "ownerReferences": [{"apiVersion": "v1", "kind": "Service", "name": "web",
                                  "uid": "svc-uid", "controller": true,
                                  "blockOwnerDeletion": true}],
        })
    );
    assert_eq!(slice["addressType"], json!("IPv4"));
    assert_eq!(
        slice["ports"],
        json!([{"name": "", "port": 8080, "protocol": "TCP"}])
    );
    let endpoint = |ip: &str, name: &str, ready: bool, serving: bool, terminating: bool| {
        json!({
            "addresses": [ip],
            "conditions": {"ready": ready, "serving": serving, "terminating": terminating},
            "nodeName": "node-1",
            "targetRef": {"kind": "Pod", "name": name, "namespace": NS, "uid": format!("uid-{name}")},
            "zone": "zone-a",
        })
    };
    assert_eq!(
        slice["endpoints"],
        json!([
            endpoint("10.0.0.1", "a", true, true, false),
            endpoint("10.0.0.2", "b", false, false, false),
            endpoint("10.0.0.3", "c", false, true, true),
        ])
    );
}

#[test]
fn publish_not_ready_addresses_marks_every_endpoint_ready() {
    let mut svc = web_service();
    if let Some(spec) = svc.spec.as_mut() {
        spec.publish_not_ready_addresses = Some(true);
    }
    let mut terminating = pod("c", "10.0.0.3", false);
    terminating["metadata"]["deletionTimestamp"] = json!("2025-01-01T00:01:00Z");
    let result = run(&svc, &[pod("b", "10.0.0.2", false), terminating], &[]);
    let conditions: Vec<Value> = result.create[0]
        .endpoints
        .iter()
        .flatten()
        .map(|e| serde_json::to_value(&e.conditions).expect("encodes"))
        .collect();
    assert_eq!(
        conditions,
        vec![
            json!({"ready": true, "serving": false, "terminating": false}),
            json!({"ready": true, "serving": false, "terminating": true}),
        ]
    );
}

#[test]
fn pods_without_ip_terminal_or_unselected_get_no_endpoint() {
    let mut no_ip = pod("x", "", true);
    no_ip["status"]["podIPs"] = json!([]);
    let mut failed = pod("f", "10.0.0.8", false);
    failed["status"]["phase"] = json!("Failed");
    let mut other = pod("o", "10.0.0.9", true);
    other["metadata"]["labels"] = json!({"app": "db"});
    let result = run(
        &web_service(),
        &[pod("a", "10.0.0.1", true), no_ip, failed, other],
        &[],
    );
    let addresses: Vec<&str> = result.create[0]
        .endpoints
        .iter()
        .flatten()
        .flat_map(|e| e.addresses.iter().map(String::as_str))
        .collect();
    assert_eq!(addresses, vec!["10.0.0.1"]);
}

#[test]
fn the_same_state_plans_nothing_and_a_change_updates_the_slice_in_place() {
    let svc = web_service();
    let first = run(
        &svc,
        &[pod("a", "10.0.0.1", true), pod("b", "10.0.0.2", true)],
        &[],
    );
    let existing = stored(&first.create, 0);
    let again = run(
        &svc,
        &[pod("a", "10.0.0.1", true), pod("b", "10.0.0.2", true)],
        &existing,
    );
    assert!(again.is_empty(), "{again:?}");

    // b turns terminating: the same slice is rewritten, carrying its resourceVersion.
    let mut b = pod("b", "10.0.0.2", true);
    b["metadata"]["deletionTimestamp"] = json!("2025-01-01T00:01:00Z");
    let changed = run(&svc, &[pod("a", "10.0.0.1", true), b], &existing);
    assert_eq!(counts(&changed), (0, 1, 0));
    let slice = &changed.update[0];
    assert_eq!(slice.metadata.name.as_deref(), Some("web-00000"));
    assert_eq!(slice.metadata.resource_version.as_deref(), Some("10"));
    let b_conditions = slice.endpoints.as_ref().expect("endpoints")[1]
        .conditions
        .clone()
        .expect("conditions");
    assert_eq!(
        (
            b_conditions.ready,
            b_conditions.serving,
            b_conditions.terminating
        ),
        (Some(false), Some(true), Some(true))
    );

    // b is gone: removed from the slice.
    let shrunk = run(&svc, &[pod("a", "10.0.0.1", true)], &existing);
    assert_eq!(counts(&shrunk), (0, 1, 0));
    assert_eq!(shrunk.update[0].endpoints.as_ref().map_or(0, Vec::len), 1);
}

#[test]
fn a_service_selecting_nothing_keeps_one_placeholder_slice() {
    let svc = web_service();
    let empty = run(&svc, &[], &[]);
    assert_eq!(counts(&empty), (1, 0, 0));
    assert!(empty.create[0].endpoints.as_ref().is_none_or(Vec::is_empty));
    assert_eq!(empty.create[0].ports, None);

    let placeholder = stored(&empty.create, 0);
    assert!(
        run(&svc, &[], &placeholder).is_empty(),
        "the placeholder is kept"
    );

    // Pods appear: the placeholder is recycled into the real slice rather than replaced.
    let filled = run(&svc, &[pod("a", "10.0.0.1", true)], &placeholder);
    assert_eq!(counts(&filled), (0, 1, 0));
    assert_eq!(filled.update[0].metadata.name.as_deref(), Some("web-00000"));
    assert_eq!(filled.update[0].endpoints.as_ref().map_or(0, Vec::len), 1);

    // And they all go: the slice becomes the placeholder again, still in place.
    let existing = stored(&filled.update, 0);
    let emptied = run(&svc, &[], &existing);
    assert_eq!(counts(&emptied), (0, 1, 0));
    assert!(emptied.update[0]
        .endpoints
        .as_ref()
        .is_none_or(Vec::is_empty));
    assert_eq!(emptied.update[0].ports, None);
}

#[test]
fn slices_hold_at_most_a_hundred_and_leftovers_fill_the_best_fitting_slice() {
    let svc = web_service();
    let first = run(&svc, &many_pods(0, 250), &[]);
    assert_eq!(counts(&first), (3, 0, 0));
    assert_eq!(sizes(&first.create), vec![50, 100, 100]);

    // Ten more pods go into the half-empty slice; the full ones are not touched.
    let existing = stored(&first.create, 0);
    let more = run(&svc, &many_pods(0, 260), &existing);
    assert_eq!(counts(&more), (0, 1, 0));
    assert_eq!(more.update[0].endpoints.as_ref().map_or(0, Vec::len), 60);

    // Replacing a pod of a full slice rewrites only that slice: the new pod takes the room.
    let mut fewer = many_pods(1, 250);
    fewer.extend(many_pods(300, 301));
    let churn = run(&svc, &fewer, &existing);
    assert_eq!(counts(&churn), (0, 1, 0), "{:?}", sizes(&churn.update));
    assert_eq!(churn.update[0].endpoints.as_ref().map_or(0, Vec::len), 100);
}

#[test]
fn pods_serving_different_port_sets_get_different_slices() {
    let svc = service_with(json!({
        "selector": {"app": "web"},
        "clusterIP": "127.96.0.10",
        "ports": [
            {"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"},
            {"name": "admin", "port": 9000, "targetPort": 9000, "protocol": "TCP"},
        ],
    }));
    let mut no_http = pod("b", "10.0.0.2", true);
    no_http["spec"]["containers"][0]["ports"] = json!([]);
    let result = run(&svc, &[pod("a", "10.0.0.1", true), no_http], &[]);
    assert_eq!(counts(&result), (2, 0, 0));
    let mut shapes: Vec<(Value, Vec<String>)> = result
        .create
        .iter()
        .map(|s| {
            (
                serde_json::to_value(&s.ports).expect("encodes"),
                s.endpoints
                    .iter()
                    .flatten()
                    .flat_map(|e| e.addresses.clone())
                    .collect(),
            )
        })
        .collect();
    shapes.sort_by_key(|(_, a)| a.clone());
    assert_eq!(
        shapes,
        vec![
            (
                json!([{"name": "admin", "port": 9000, "protocol": "TCP"},
                       {"name": "http", "port": 8080, "protocol": "TCP"}]),
                vec!["10.0.0.1".to_string()]
            ),
            (
                json!([{"name": "admin", "port": 9000, "protocol": "TCP"}]),
                vec!["10.0.0.2".to_string()]
            ),
        ]
    );
}

#[test]
fn pods_on_unknown_nodes_are_skipped_and_reported() {
    let mut elsewhere = pod("b", "10.0.0.2", true);
    elsewhere["spec"]["nodeName"] = json!("node-9");
    let result = run(
        &web_service(),
        &[pod("a", "10.0.0.1", true), elsewhere],
        &[],
    );
    assert_eq!(result.skipped_pods, vec!["b".to_string()]);
    assert_eq!(result.create[0].endpoints.as_ref().map_or(0, Vec::len), 1);
}

#[test]
fn foreign_stale_and_unselected_slices_are_deleted() {
    let svc = web_service();
    let first = stored(&run(&svc, &[pod("a", "10.0.0.1", true)], &[]).create, 0);

    // A slice left by an earlier Service of the same name (other UID) goes, and is not
    // recycled: a new one is created.
    let mut foreign = first.clone();
    if let Some(refs) = foreign[0].metadata.owner_references.as_mut() {
        refs[0].uid = "old-uid".to_string();
    }
    let result = run(&svc, &[pod("a", "10.0.0.1", true)], &foreign);
    assert_eq!(counts(&result), (1, 0, 1));

    // A slice of an address family the Service no longer serves goes.
    let mut v6 = first.clone();
    v6[0].address_type = "IPv6".to_string();
    v6[0].metadata.name = Some("web-v6".to_string());
    let mut both = first.clone();
    both.extend(v6);
    let result = run(&svc, &[pod("a", "10.0.0.1", true)], &both);
    assert_eq!(counts(&result), (0, 0, 1));
    assert_eq!(result.delete[0].metadata.name.as_deref(), Some("web-v6"));

    // The selector removed: every managed slice goes.
    let mut selectorless = svc.clone();
    if let Some(spec) = selectorless.spec.as_mut() {
        spec.selector = None;
    }
    let result = run(&selectorless, &[pod("a", "10.0.0.1", true)], &first);
    assert_eq!(counts(&result), (0, 0, 1));
}

#[test]
fn labels_follow_the_service_and_mark_headless_services() {
    let svc = web_service();
    let existing = stored(&run(&svc, &[pod("a", "10.0.0.1", true)], &[]).create, 0);
    let mut relabelled = svc.clone();
    relabelled.metadata.labels = Some(
        [
            ("tier".to_string(), "back".to_string()),
            (SERVICE_NAME_LABEL.to_string(), "spoof".to_string()),
        ]
        .into(),
    );
    let result = run(&relabelled, &[pod("a", "10.0.0.1", true)], &existing);
    assert_eq!(counts(&result), (0, 1, 0));
    let labels = result.update[0].metadata.labels.clone().expect("labels");
    assert_eq!(labels.get("tier").map(String::as_str), Some("back"));
    assert_eq!(
        labels.get(SERVICE_NAME_LABEL).map(String::as_str),
        Some("web")
    );

    let headless = service_with(json!({"selector": {"app": "web"}, "clusterIP": "None"}));
    let mut member = pod("a", "10.0.0.1", true);
    member["spec"]["hostname"] = json!("a");
    member["spec"]["subdomain"] = json!("web");
    let result = run(&headless, &[member], &[]);
    let slice = &result.create[0];
    assert_eq!(
        slice
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(HEADLESS_SERVICE_LABEL))
            .map(String::as_str),
        Some("")
    );
    assert_eq!(slice.ports, None, "a headless Service without ports");
    assert_eq!(
        slice.endpoints.as_ref().expect("endpoints")[0]
            .hostname
            .as_deref(),
        Some("a")
    );
}

#[test]
fn a_deleting_service_creates_nothing_and_writes_carry_the_trigger_time() {
    let mut svc = web_service();
    svc.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
        "2025-01-01T00:00:00Z".parse().expect("time"),
    ));
    assert!(run(&svc, &[pod("a", "10.0.0.1", true)], &[])
        .create
        .is_empty());

    let svc = web_service();
    let pods = pods(&[pod("a", "10.0.0.1", true)]);
    let nodes = nodes();
    let result = plan(&SliceInputs {
        service: &svc,
        pods: &pods,
        existing: &[],
        nodes: &nodes,
        trigger_time: Some("2025-01-01T00:00:10.5Z".parse().expect("time")),
        max_endpoints_per_slice: MAX_ENDPOINTS_PER_SLICE,
    });
    assert_eq!(
        result.create[0]
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(LAST_CHANGE_TRIGGER_TIME_ANNOTATION))
            .map(String::as_str),
        Some("2025-01-01T00:00:10.5Z")
    );
}
