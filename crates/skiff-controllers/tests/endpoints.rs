//! The Endpoints planner: which pods become addresses, ready or not, on which ports
//! (upstream `endpoints_controller_test.go`), and how subsets are repacked
//! (`pkg/api/v1/endpoints` `TestPackSubsets`).

use k8s_openapi::api::core::v1::{EndpointSubset, Endpoints, Pod, Service};
use serde_json::{json, Value};
use skiff_controllers::endpoints::pods::find_port;
use skiff_controllers::endpoints::{
    plan, repack_subsets, truncate_subsets, EndpointsWrite, HEADLESS_SERVICE_LABEL,
    LAST_CHANGE_TRIGGER_TIME_ANNOTATION, MANAGED_BY_LABEL, MAX_CAPACITY, OVER_CAPACITY_ANNOTATION,
};

const NS: &str = "ns";

fn service(spec: Value) -> Service {
    serde_json::from_value(json!({
        "metadata": {"name": "web", "namespace": NS, "uid": "svc-uid",
                     "labels": {"app": "web"}, "creationTimestamp": "2025-01-01T00:00:00Z"},
        "spec": spec,
    }))
    .expect("valid service")
}

/// A Service selecting `app=web`, port 80 to `target`, with a cluster IP.
fn web_service(target: Value) -> Service {
    service(json!({
        "selector": {"app": "web"},
        "clusterIP": "127.96.0.10",
        "ipFamilies": ["IPv4"],
        "ports": [{"port": 80, "targetPort": target, "protocol": "TCP"}],
    }))
}

/// A pod `app=web` on node-1 with `ip` (none when empty), Ready or not, with a container
/// port named `http` on 8080.
fn pod(name: &str, ip: &str, ready: bool) -> Value {
    let mut status = json!({
        "phase": "Running",
        "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" },
                        "lastTransitionTime": "2025-01-01T00:00:10Z"}],
    });
    if !ip.is_empty() {
        status["podIP"] = json!(ip);
        status["podIPs"] = json!([{"ip": ip}]);
    }
    json!({
        "metadata": {"name": name, "namespace": NS, "uid": format!("uid-{name}"),
                     "labels": {"app": "web"}},
        "spec": {"nodeName": "node-1", "containers": [{"name": "c", "image": "demo",
                 "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]}]},
        "status": status,
    })
}

fn typed_pods(pods: &[Value]) -> Vec<Pod> {
    pods.iter()
        .map(|p| serde_json::from_value(p.clone()).expect("valid pod"))
        .collect()
}

fn subsets(value: Value) -> Vec<EndpointSubset> {
    serde_json::from_value(value).expect("valid subsets")
}

fn address(ip: &str, pod: &str) -> Value {
    json!({"ip": ip, "nodeName": "node-1",
           "targetRef": {"kind": "Pod", "namespace": NS, "name": pod, "uid": format!("uid-{pod}")}})
}

fn written(write: Option<EndpointsWrite>) -> Endpoints {
    match write {
        Some(EndpointsWrite::Create(e)) | Some(EndpointsWrite::Update(e)) => e,
        None => panic!("expected a write"),
    }
}

fn subsets_of(write: Option<EndpointsWrite>) -> Value {
    serde_json::to_value(written(write).subsets.unwrap_or_default()).expect("encodes")
}

#[test]
fn pods_become_ready_and_not_ready_addresses() {
    struct Case {
        name: &'static str,
        service: Service,
        pods: Vec<Value>,
        want: Value,
    }
    let mut terminating = pod("gone", "10.0.0.9", true);
    terminating["metadata"]["deletionTimestamp"] = json!("2025-01-01T00:01:00Z");
    let mut succeeded = pod("done", "10.0.0.8", false);
    succeeded["status"]["phase"] = json!("Succeeded");
    let mut other_labels = pod("other", "10.0.0.7", true);
    other_labels["metadata"]["labels"] = json!({"app": "db"});
    let mut other_namespace = pod("elsewhere", "10.0.0.6", true);
    other_namespace["metadata"]["namespace"] = json!("other");
    let mut publishing = web_service(json!(8080));
    if let Some(spec) = publishing.spec.as_mut() {
        spec.publish_not_ready_addresses = Some(true);
    }

    let cases = vec![
        Case {
            name: "ready and not-ready pods split, sorted by IP",
            service: web_service(json!(8080)),
            pods: vec![
                pod("b", "10.0.0.2", true),
                pod("a", "10.0.0.1", true),
                pod("c", "10.0.0.3", false),
            ],
            want: json!([{
                "addresses": [address("10.0.0.1", "a"), address("10.0.0.2", "b")],
                "notReadyAddresses": [address("10.0.0.3", "c")],
                "ports": [{"port": 8080, "protocol": "TCP"}],
            }]),
        },
        Case {
            name: "pods without IP, terminal, terminating, unselected or elsewhere are left out",
            service: web_service(json!(8080)),
            pods: vec![
                pod("a", "10.0.0.1", true),
                pod("pending", "", false),
                terminating.clone(),
                succeeded,
                other_labels,
                other_namespace,
            ],
            want: json!([{
                "addresses": [address("10.0.0.1", "a")],
                "ports": [{"port": 8080, "protocol": "TCP"}],
            }]),
        },
        Case {
            name: "publishNotReadyAddresses lists every pod as ready, terminating ones too",
            service: publishing,
            pods: vec![pod("c", "10.0.0.3", false), terminating],
            want: json!([{
                "addresses": [address("10.0.0.3", "c"), address("10.0.0.9", "gone")],
                "ports": [{"port": 8080, "protocol": "TCP"}],
            }]),
        },
        Case {
            name: "a named target port resolves to the container port",
            service: web_service(json!("http")),
            pods: vec![pod("a", "10.0.0.1", true)],
            want: json!([{
                "addresses": [address("10.0.0.1", "a")],
                "ports": [{"port": 8080, "protocol": "TCP"}],
            }]),
        },
        Case {
            name: "a pod lacking the named port is skipped",
            service: web_service(json!("metrics")),
            pods: vec![pod("a", "10.0.0.1", true)],
            want: json!([]),
        },
    ];
    for case in cases {
        let write = plan(&case.service, &typed_pods(&case.pods), None, None);
        assert_eq!(subsets_of(write), case.want, "{}", case.name);
    }
}

#[test]
fn several_ports_group_addresses_by_the_ports_they_serve() {
    let svc = service(json!({
        "selector": {"app": "web"},
        "clusterIP": "127.96.0.10",
        "ports": [
            {"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"},
            {"name": "admin", "port": 9000, "targetPort": 9000, "protocol": "TCP"},
        ],
    }));
    let mut no_http = pod("b", "10.0.0.2", true);
    no_http["spec"]["containers"][0]["ports"] = json!([]);
    let pods = typed_pods(&[pod("a", "10.0.0.1", true), no_http]);
    let got = subsets_of(plan(&svc, &pods, None, None));
    assert_eq!(
        got,
        json!([
            {
                "addresses": [address("10.0.0.1", "a"), address("10.0.0.2", "b")],
                "ports": [{"name": "admin", "port": 9000, "protocol": "TCP"}],
            },
            {
                "addresses": [address("10.0.0.1", "a")],
                "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
            },
        ])
    );
}

#[test]
fn headless_services_are_labelled_and_may_have_no_ports() {
    let svc = service(json!({"selector": {"app": "web"}, "clusterIP": "None"}));
    let pods = typed_pods(&[pod("a", "10.0.0.1", true), pod("b", "10.0.0.2", false)]);
    let endpoints = written(plan(&svc, &pods, None, None));
    assert_eq!(
        serde_json::to_value(endpoints.subsets).expect("encodes"),
        json!([{
            "addresses": [address("10.0.0.1", "a")],
            "notReadyAddresses": [address("10.0.0.2", "b")],
        }])
    );
    let labels = endpoints.metadata.labels.expect("labels");
    assert_eq!(
        labels.get(HEADLESS_SERVICE_LABEL).map(String::as_str),
        Some("")
    );
    assert_eq!(labels.get("app").map(String::as_str), Some("web"));

    // A headful Service without ports gets no addresses at all.
    let headful = service(json!({"selector": {"app": "web"}, "clusterIP": "127.96.0.10"}));
    let endpoints = written(plan(&headful, &pods, None, None));
    assert_eq!(endpoints.subsets, None);
    assert!(!endpoints
        .metadata
        .labels
        .unwrap_or_default()
        .contains_key(HEADLESS_SERVICE_LABEL));
}

#[test]
fn hostname_is_set_only_for_pods_of_the_services_subdomain() {
    let svc = service(json!({"selector": {"app": "web"}, "clusterIP": "None"}));
    let mut member = pod("a", "10.0.0.1", true);
    member["spec"]["hostname"] = json!("a-host");
    member["spec"]["subdomain"] = json!("web");
    let mut stranger = pod("b", "10.0.0.2", true);
    stranger["spec"]["hostname"] = json!("b-host");
    stranger["spec"]["subdomain"] = json!("other");
    let got = subsets_of(plan(&svc, &typed_pods(&[member, stranger]), None, None));
    assert_eq!(got[0]["addresses"][0]["hostname"], json!("a-host"));
    assert_eq!(got[0]["addresses"][1].get("hostname"), None);
}

#[test]
fn services_without_selector_or_external_name_are_left_alone() {
    let pods = typed_pods(&[pod("a", "10.0.0.1", true)]);
    for spec in [
        json!({"clusterIP": "127.96.0.1", "ports": [{"port": 443}]}),
        json!({"selector": {}, "clusterIP": "127.96.0.1", "ports": [{"port": 443}]}),
        json!({"type": "ExternalName", "externalName": "example.com", "selector": {"app": "web"}}),
    ] {
        assert_eq!(
            plan(&service(spec.clone()), &pods, None, None),
            None,
            "{spec}"
        );
    }
}

#[test]
fn creates_then_updates_only_on_change_and_keeps_trigger_time() {
    let svc = web_service(json!(8080));
    let pods = typed_pods(&[pod("a", "10.0.0.1", true)]);
    let time = "2025-01-01T00:00:10Z".parse().expect("time");
    let created = match plan(&svc, &pods, None, Some(time)) {
        Some(EndpointsWrite::Create(e)) => e,
        other => panic!("expected a create, got {other:?}"),
    };
    assert_eq!(created.metadata.name.as_deref(), Some("web"));
    assert_eq!(created.metadata.namespace.as_deref(), Some(NS));
    assert_eq!(
        created
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(MANAGED_BY_LABEL))
            .map(String::as_str),
        Some("endpoint-controller"),
        "Kubernetes 1.33 and later label the Endpoints they manage"
    );
    assert_eq!(
        created
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(LAST_CHANGE_TRIGGER_TIME_ANNOTATION))
            .map(String::as_str),
        Some("2025-01-01T00:00:10Z")
    );

    // Stored (with a resourceVersion and the pod's resourceVersion in the reference), the
    // same pods plan nothing.
    let mut stored = serde_json::to_value(&created).expect("encodes");
    stored["metadata"]["resourceVersion"] = json!("5");
    stored["subsets"][0]["addresses"][0]["targetRef"]["resourceVersion"] = json!("77");
    let stored: Endpoints = serde_json::from_value(stored).expect("decodes");
    assert_eq!(plan(&svc, &pods, Some(&stored), None), None);

    // Endpoints written before the controller labelled its objects get the label.
    let mut unlabelled = stored.clone();
    if let Some(labels) = unlabelled.metadata.labels.as_mut() {
        labels.remove(MANAGED_BY_LABEL);
    }
    match plan(&svc, &pods, Some(&unlabelled), None) {
        Some(EndpointsWrite::Update(e)) => assert_eq!(
            e.metadata
                .labels
                .and_then(|l| l.get(MANAGED_BY_LABEL).cloned())
                .as_deref(),
            Some("endpoint-controller")
        ),
        other => panic!("expected the label to be added, got {other:?}"),
    }

    // A Service label change is an update, and clears the trigger time when none is given.
    let mut relabelled = svc.clone();
    relabelled.metadata.labels = Some([("app".to_string(), "web2".to_string())].into());
    match plan(&relabelled, &pods, Some(&stored), None) {
        Some(EndpointsWrite::Update(e)) => {
            assert_eq!(e.metadata.resource_version.as_deref(), Some("5"));
            assert_eq!(
                e.metadata.labels.and_then(|l| l.get("app").cloned()),
                Some("web2".to_string())
            );
            assert!(!e
                .metadata
                .annotations
                .unwrap_or_default()
                .contains_key(LAST_CHANGE_TRIGGER_TIME_ANNOTATION));
        }
        other => panic!("expected an update, got {other:?}"),
    }

    // A pod turning unready moves its address.
    let unready = typed_pods(&[pod("a", "10.0.0.1", false)]);
    let got = subsets_of(plan(&svc, &unready, Some(&stored), None));
    assert_eq!(got[0].get("addresses"), None);
    assert_eq!(got[0]["notReadyAddresses"][0]["ip"], json!("10.0.0.1"));
}

#[test]
fn selector_changes_move_the_endpoints_to_the_newly_selected_pods() {
    let mut db = pod("db-0", "10.0.0.5", true);
    db["metadata"]["labels"] = json!({"app": "db"});
    let pods = typed_pods(&[pod("a", "10.0.0.1", true), db]);
    let before = written(plan(&web_service(json!(8080)), &pods, None, None));
    let mut moved = web_service(json!(8080));
    if let Some(spec) = moved.spec.as_mut() {
        spec.selector = Some([("app".to_string(), "db".to_string())].into());
    }
    let got = subsets_of(plan(&moved, &pods, Some(&before), None));
    assert_eq!(got[0]["addresses"], json!([address("10.0.0.5", "db-0")]));
}

#[test]
fn find_port_by_number_name_and_protocol() {
    let mut p = pod("a", "10.0.0.1", true);
    p["spec"]["containers"][0]["ports"] = json!([
        {"name": "dns", "containerPort": 53, "protocol": "UDP"},
        {"name": "dns", "containerPort": 5353, "protocol": "TCP"},
    ]);
    p["spec"]["initContainers"] = json!([
        {"name": "sidecar", "image": "demo", "restartPolicy": "Always",
         "ports": [{"name": "proxy", "containerPort": 15001}]},
        {"name": "init", "image": "demo", "ports": [{"name": "setup", "containerPort": 1}]},
    ]);
    let pod: Pod = serde_json::from_value(p).expect("pod");
    let port = |v: Value| serde_json::from_value(v).expect("service port");
    let cases = [
        (json!({"port": 80, "targetPort": 8080}), Some(8080)),
        (json!({"port": 80}), Some(80)),
        (
            json!({"port": 53, "targetPort": "dns", "protocol": "UDP"}),
            Some(53),
        ),
        (json!({"port": 53, "targetPort": "dns"}), Some(5353)),
        (
            json!({"port": 53, "targetPort": "dns", "protocol": "SCTP"}),
            None,
        ),
        (json!({"port": 1, "targetPort": "proxy"}), Some(15001)),
        (json!({"port": 1, "targetPort": "setup"}), None),
    ];
    for (service_port, want) in cases {
        assert_eq!(
            find_port(&pod, &port(service_port.clone())),
            want,
            "{service_port}"
        );
    }
}

#[test]
fn repack_subsets_like_upstream() {
    let addr = |ip: &str, uid: &str| json!({"ip": ip, "targetRef": {"uid": uid}});
    let cases: Vec<(&str, Value, Value)> = vec![
        ("empty everything", json!([]), json!([])),
        (
            "empty addresses",
            json!([{"ports": [{"port": 111}]}]),
            json!([]),
        ),
        (
            "empty ports keep their addresses",
            json!([{"addresses": [addr("1.2.3.4", "")]}]),
            json!([{"addresses": [addr("1.2.3.4", "")]}]),
        ),
        (
            "two ips in two subsets with one port merge",
            json!([
                {"addresses": [addr("5.6.7.8", "")], "ports": [{"port": 111}]},
                {"addresses": [addr("1.2.3.4", "")], "ports": [{"port": 111}]},
            ]),
            json!([{"addresses": [addr("1.2.3.4", ""), addr("5.6.7.8", "")],
                    "ports": [{"port": 111}]}]),
        ),
        (
            "one ip with two ports in two subsets merge",
            json!([
                {"addresses": [addr("1.2.3.4", "")], "ports": [{"port": 111}]},
                {"addresses": [addr("1.2.3.4", "")], "ports": [{"port": 222}]},
            ]),
            json!([{"addresses": [addr("1.2.3.4", "")],
                    "ports": [{"port": 111}, {"port": 222}]}]),
        ),
        (
            "the same ip for two pods stays twice",
            json!([
                {"addresses": [addr("1.2.3.4", "b")], "ports": [{"port": 111}]},
                {"addresses": [addr("1.2.3.4", "a")], "ports": [{"port": 111}]},
            ]),
            json!([{"addresses": [addr("1.2.3.4", "a"), addr("1.2.3.4", "b")],
                    "ports": [{"port": 111}]}]),
        ),
        (
            "duplicates collapse",
            json!([
                {"addresses": [addr("1.2.3.4", "")], "ports": [{"port": 111}]},
                {"addresses": [addr("1.2.3.4", "")], "ports": [{"port": 111}]},
            ]),
            json!([{"addresses": [addr("1.2.3.4", "")], "ports": [{"port": 111}]}]),
        ),
        (
            "not ready wins over ready for the same address and port",
            json!([
                {"addresses": [addr("1.2.3.4", "")], "ports": [{"port": 111}]},
                {"notReadyAddresses": [addr("1.2.3.4", "")], "ports": [{"port": 111}]},
            ]),
            json!([{"notReadyAddresses": [addr("1.2.3.4", "")], "ports": [{"port": 111}]}]),
        ),
        (
            "different address sets stay apart",
            json!([
                {"addresses": [addr("1.2.3.4", "")], "ports": [{"port": 111}]},
                {"addresses": [addr("5.6.7.8", "")], "ports": [{"port": 222}]},
            ]),
            json!([
                {"addresses": [addr("1.2.3.4", "")], "ports": [{"port": 111}]},
                {"addresses": [addr("5.6.7.8", "")], "ports": [{"port": 222}]},
            ]),
        ),
    ];
    for (name, input, want) in cases {
        let got = repack_subsets(subsets(input));
        assert_eq!(serde_json::to_value(got).expect("encodes"), want, "{name}");
    }
}

#[test]
fn endpoints_over_capacity_are_truncated_and_annotated() {
    let many: Vec<Value> = (0..MAX_CAPACITY + 5)
        .map(|i| {
            pod(
                &format!("p{i}"),
                &format!("10.1.{}.{}", i / 250, i % 250),
                true,
            )
        })
        .collect();
    let endpoints = written(plan(
        &web_service(json!(8080)),
        &typed_pods(&many),
        None,
        None,
    ));
    let kept: usize = endpoints
        .subsets
        .iter()
        .flatten()
        .map(|s| s.addresses.as_ref().map_or(0, Vec::len))
        .sum();
    assert_eq!(kept, MAX_CAPACITY);
    assert_eq!(
        endpoints
            .metadata
            .annotations
            .and_then(|a| a.get(OVER_CAPACITY_ANNOTATION).cloned()),
        Some("truncated".to_string())
    );

    // Ready addresses are kept before not-ready ones, proportionally per subset.
    let addr = |i: usize| json!({"ip": format!("10.2.{}.{}", i / 250, i % 250)});
    let mut subsets = subsets(json!([
        {"addresses": (0..600).map(addr).collect::<Vec<_>>(),
         "notReadyAddresses": (600..700).map(addr).collect::<Vec<_>>(), "ports": [{"port": 1}]},
        {"addresses": (700..1000).map(addr).collect::<Vec<_>>(),
         "notReadyAddresses": (1000..1300).map(addr).collect::<Vec<_>>(), "ports": [{"port": 2}]},
    ]));
    assert!(truncate_subsets(&mut subsets));
    let counts: Vec<(usize, usize)> = subsets
        .iter()
        .map(|s| {
            (
                s.addresses.as_ref().map_or(0, Vec::len),
                s.not_ready_addresses.as_ref().map_or(0, Vec::len),
            )
        })
        .collect();
    assert_eq!(counts, vec![(600, 25), (300, 75)]);
}
