//! Table tests after structured-merge-diff's merge tests (multiple appliers, sets, list-map
//! keys, atomic values, updates mixed with applies) and the API server's apply tests
//! (managed fields of a create, conflict messages, force, no-op applies).

use serde_json::{json, Value};

use super::*;
use crate::resources::{find, ResourceInfo};

const NOW: &str = "2026-12-06T10:00:00Z";
const LATER: &str = "2026-12-06T11:00:00Z";

fn deployments() -> &'static ResourceInfo {
    find("apps", "v1", "deployments").expect("deployments are served")
}

fn configmaps() -> &'static ResourceInfo {
    find("", "v1", "configmaps").expect("configmaps are served")
}

fn services() -> &'static ResourceInfo {
    find("", "v1", "services").expect("services are served")
}

fn clonesets() -> &'static ResourceInfo {
    find("apps.kruise.io", "v1alpha1", "clonesets").expect("clonesets are served")
}

/// One write of a scenario.
enum Step {
    /// Apply by a manager, expected to succeed.
    Apply(&'static str, Value),
    /// Apply with `force=true`.
    ForceApply(&'static str, Value),
    /// Apply expected to fail with exactly these conflicting fields.
    Conflicts(&'static str, Value, &'static [&'static str]),
    /// An update (PUT) by a manager to this whole object.
    Update(&'static str, Value),
}

struct Case {
    name: &'static str,
    resource: fn() -> &'static ResourceInfo,
    steps: Vec<Step>,
    /// The object at the end, without `managedFields`.
    object: Value,
    /// Each manager's fields at the end, as paths; managers not listed own nothing.
    owners: Vec<Owner>,
}

/// A manager, how it wrote, and the fields it owns at the end of a case, as paths.
type Owner = (&'static str, Operation, Vec<String>);

/// A row of [`Case::owners`]: `manager` applied and owns `paths`.
fn applied(manager: &'static str, paths: &[&str]) -> Owner {
    (
        manager,
        Operation::Apply,
        paths.iter().map(|p| p.to_string()).collect(),
    )
}

/// A row of [`Case::owners`]: `manager` updated and owns `paths`.
fn updated(manager: &'static str, paths: &[&str]) -> Owner {
    (
        manager,
        Operation::Update,
        paths.iter().map(|p| p.to_string()).collect(),
    )
}

/// A row of [`Case::owners`]: `manager` applied and owns the pod template's container
/// `container` (its list-map entry) and the `fields` below it.
fn container_applied(manager: &'static str, container: &str, fields: &[&str]) -> Owner {
    let entry = format!("{C}[name=\"{container}\"]");
    let below = fields.iter().map(|field| format!("{entry}.{field}"));
    (
        manager,
        Operation::Apply,
        std::iter::once(entry.clone()).chain(below).collect(),
    )
}

fn writer<'a>(manager: &'a str, resource: &'a ResourceInfo, api_version: &'a str) -> Writer<'a> {
    let _ = resource;
    Writer {
        manager,
        api_version,
        subresource: "",
        now: NOW,
    }
}

fn run(case: &Case) -> Value {
    let resource = (case.resource)();
    let api_version = resource.api_version();
    let mut live: Option<Value> = None;
    for (index, step) in case.steps.iter().enumerate() {
        let at = format!("{} step {index}", case.name);
        match step {
            Step::Apply(manager, config) | Step::ForceApply(manager, config) => {
                let force = matches!(step, Step::ForceApply(..));
                let applied = apply(
                    resource,
                    live.as_ref(),
                    config,
                    &writer(manager, resource, &api_version),
                    force,
                )
                .unwrap_or_else(|e| panic!("{at}: {e}"));
                live = Some(applied.object);
            }
            Step::Conflicts(manager, config, fields) => {
                match apply(
                    resource,
                    live.as_ref(),
                    config,
                    &writer(manager, resource, &api_version),
                    false,
                ) {
                    Err(ApplyError::Conflicts(found)) => {
                        let mut found: Vec<&str> = found.iter().map(|c| c.field.as_str()).collect();
                        found.sort();
                        let mut expected = fields.to_vec();
                        expected.sort();
                        assert_eq!(found, expected, "{at}");
                    }
                    other => panic!("{at}: expected conflicts, got {other:?}"),
                }
            }
            Step::Update(manager, object) => {
                let mut new = object.clone();
                let entries = live.as_ref().map(entries_of).unwrap_or_default();
                let recorded = record_update(
                    resource,
                    entries,
                    live.as_ref(),
                    &new,
                    &writer(manager, resource, &api_version),
                );
                set_entries(&mut new, recorded);
                live = Some(new);
            }
        }
    }
    let live = live.unwrap_or_else(|| panic!("{}: no object was written", case.name));
    let mut without = live.clone();
    if let Some(md) = without.get_mut("metadata").and_then(Value::as_object_mut) {
        md.shift_remove("managedFields");
    }
    assert_eq!(without, case.object, "{}: object", case.name);
    let entries = entries_of(&live);
    for entry in &entries {
        let expected = case
            .owners
            .iter()
            .find(|(m, op, _)| *m == entry.manager && *op == entry.operation)
            .unwrap_or_else(|| {
                panic!(
                    "{}: unexpected entry for {} ({:?}): {:?}",
                    case.name,
                    entry.manager,
                    entry.operation,
                    entry.fields.paths()
                )
            });
        let mut found: Vec<String> = entry
            .fields
            .paths()
            .iter()
            .map(|p| path_string(p))
            .collect();
        found.sort();
        let mut wanted = expected.2.clone();
        wanted.sort();
        assert_eq!(found, wanted, "{}: fields of {}", case.name, entry.manager);
    }
    assert_eq!(
        entries.len(),
        case.owners.len(),
        "{}: entries {:?}",
        case.name,
        entries.iter().map(|e| &e.manager).collect::<Vec<_>>()
    );
    live
}

fn cm(data: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": data})
}

fn deploy(spec: Value) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"}, "spec": spec})
}

fn pod_spec_deploy(containers: Value) -> Value {
    deploy(json!({"template": {"spec": {"containers": containers}}}))
}

const C: &str = ".spec.template.spec.containers";

fn multiple_appliers_cases() -> Vec<Case> {
    vec![
        Case {
            name: "two appliers own their own keys of one map",
            resource: configmaps,
            steps: vec![
                Step::Apply("a", cm(json!({"x": "1"}))),
                Step::Apply("b", cm(json!({"y": "2"}))),
            ],
            object: cm(json!({"x": "1", "y": "2"})),
            owners: vec![applied("a", &[".data.x"]), applied("b", &[".data.y"])],
        },
        Case {
            name: "a second applier changing a value conflicts",
            resource: configmaps,
            steps: vec![
                Step::Apply("a", cm(json!({"x": "1"}))),
                Step::Conflicts("b", cm(json!({"x": "2"})), &[".data.x"]),
            ],
            object: cm(json!({"x": "1"})),
            owners: vec![applied("a", &[".data.x"])],
        },
        Case {
            name: "the same value makes the field shared",
            resource: configmaps,
            steps: vec![
                Step::Apply("a", cm(json!({"x": "1"}))),
                Step::Apply("b", cm(json!({"x": "1"}))),
            ],
            object: cm(json!({"x": "1"})),
            owners: vec![applied("a", &[".data.x"]), applied("b", &[".data.x"])],
        },
        Case {
            name: "force moves ownership to the forcing applier",
            resource: configmaps,
            steps: vec![
                Step::Apply("a", cm(json!({"x": "1", "z": "0"}))),
                Step::ForceApply("b", cm(json!({"x": "2"}))),
            ],
            object: cm(json!({"x": "2", "z": "0"})),
            owners: vec![applied("a", &[".data.z"]), applied("b", &[".data.x"])],
        },
        Case {
            name: "a field the applier stops applying is removed",
            resource: configmaps,
            steps: vec![
                Step::Apply("a", cm(json!({"x": "1", "y": "2"}))),
                Step::Apply("a", cm(json!({"x": "1"}))),
            ],
            object: cm(json!({"x": "1"})),
            owners: vec![applied("a", &[".data.x"])],
        },
        Case {
            name: "a shared field one applier stops applying stays",
            resource: configmaps,
            steps: vec![
                Step::Apply("a", cm(json!({"x": "1", "y": "2"}))),
                Step::Apply("b", cm(json!({"y": "2"}))),
                Step::Apply("a", cm(json!({"x": "1"}))),
            ],
            object: cm(json!({"x": "1", "y": "2"})),
            owners: vec![applied("a", &[".data.x"]), applied("b", &[".data.y"])],
        },
        Case {
            name: "appliers of different containers both keep them",
            resource: deployments,
            steps: vec![
                Step::Apply(
                    "a",
                    pod_spec_deploy(json!([{"name": "one", "image": "i1"}])),
                ),
                Step::Apply(
                    "b",
                    pod_spec_deploy(json!([{"name": "two", "image": "i2"}])),
                ),
            ],
            object: pod_spec_deploy(
                json!([{"name": "one", "image": "i1"}, {"name": "two", "image": "i2"}]),
            ),
            owners: vec![
                container_applied("a", "one", &["image", "name"]),
                container_applied("b", "two", &["image", "name"]),
            ],
        },
        Case {
            name: "appliers of env entries of one shared container both keep them",
            resource: deployments,
            steps: vec![
                Step::Apply(
                    "a",
                    pod_spec_deploy(json!([{"name": "web", "env": [{"name": "A", "value": "1"}]}])),
                ),
                Step::Apply(
                    "b",
                    pod_spec_deploy(json!([{"name": "web", "env": [{"name": "B", "value": "2"}]}])),
                ),
                Step::Apply(
                    "a",
                    pod_spec_deploy(json!([{"name": "web", "env": [{"name": "A", "value": "3"}]}])),
                ),
            ],
            object: pod_spec_deploy(json!([{"name": "web", "env": [
                {"name": "A", "value": "3"}, {"name": "B", "value": "2"}]}])),
            owners: vec![
                container_applied(
                    "a",
                    "web",
                    &[
                        "env[name=\"A\"]",
                        "env[name=\"A\"].name",
                        "env[name=\"A\"].value",
                        "name",
                    ],
                ),
                container_applied(
                    "b",
                    "web",
                    &[
                        "env[name=\"B\"]",
                        "env[name=\"B\"].name",
                        "env[name=\"B\"].value",
                        "name",
                    ],
                ),
            ],
        },
        Case {
            name: "a container dropped by its only applier is removed, a shared one stays",
            resource: deployments,
            steps: vec![
                Step::Apply(
                    "a",
                    pod_spec_deploy(
                        json!([{"name": "one", "image": "i1"}, {"name": "two", "image": "i2"}]),
                    ),
                ),
                Step::Apply(
                    "b",
                    pod_spec_deploy(json!([{"name": "two", "image": "i2"}])),
                ),
                Step::Apply("a", pod_spec_deploy(json!([]))),
            ],
            object: pod_spec_deploy(json!([{"name": "two", "image": "i2"}])),
            owners: vec![container_applied("b", "two", &["image", "name"])],
        },
    ]
}

#[test]
fn multiple_appliers() {
    let cases = multiple_appliers_cases();
    assert_eq!(cases.len(), 9);
    for case in &cases {
        run(case);
    }
}

fn finalizers(list: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "finalizers": list}})
}

fn ports(list: Value) -> Value {
    pod_spec_deploy(json!([{"name": "web", "ports": list}]))
}

fn set_and_key_cases() -> Vec<Case> {
    vec![
        Case {
            name: "two appliers of a set each own their values",
            resource: configmaps,
            steps: vec![
                Step::Apply("a", finalizers(json!(["x/a"]))),
                Step::Apply("b", finalizers(json!(["x/b"]))),
            ],
            object: finalizers(json!(["x/a", "x/b"])),
            owners: vec![
                applied("a", &[".metadata.finalizers[=\"x/a\"]"]),
                applied("b", &[".metadata.finalizers[=\"x/b\"]"]),
            ],
        },
        Case {
            name: "a set value its applier drops goes, others stay",
            resource: configmaps,
            steps: vec![
                Step::Apply("a", finalizers(json!(["x/a", "x/c"]))),
                Step::Apply("b", finalizers(json!(["x/b"]))),
                Step::Apply("a", finalizers(json!(["x/a"]))),
            ],
            object: finalizers(json!(["x/a", "x/b"])),
            owners: vec![
                applied("a", &[".metadata.finalizers[=\"x/a\"]"]),
                applied("b", &[".metadata.finalizers[=\"x/b\"]"]),
            ],
        },
        Case {
            name: "ports are keyed by port and protocol, the protocol defaulting to TCP",
            resource: deployments,
            steps: vec![
                Step::Apply("a", ports(json!([{"containerPort": 53}]))),
                Step::Apply(
                    "b",
                    ports(json!([{"containerPort": 53, "protocol": "UDP"}])),
                ),
            ],
            object: ports(json!([{"containerPort": 53}, {"containerPort": 53, "protocol": "UDP"}])),
            owners: vec![
                container_applied(
                    "a",
                    "web",
                    &[
                        "name",
                        "ports[containerPort=53,protocol=\"TCP\"]",
                        "ports[containerPort=53,protocol=\"TCP\"].containerPort",
                    ],
                ),
                container_applied(
                    "b",
                    "web",
                    &[
                        "name",
                        "ports[containerPort=53,protocol=\"UDP\"]",
                        "ports[containerPort=53,protocol=\"UDP\"].containerPort",
                        "ports[containerPort=53,protocol=\"UDP\"].protocol",
                    ],
                ),
            ],
        },
        Case {
            name: "service ports with the same number and another protocol are distinct",
            resource: services,
            steps: vec![
                Step::Apply(
                    "a",
                    json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
                    "spec": {"ports": [{"port": 53, "protocol": "TCP"}]}}),
                ),
                Step::Apply(
                    "b",
                    json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
                    "spec": {"ports": [{"port": 53, "protocol": "UDP"}]}}),
                ),
            ],
            object: json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
                "spec": {"ports": [{"port": 53, "protocol": "TCP"}, {"port": 53, "protocol": "UDP"}]}}),
            owners: vec![
                applied(
                    "a",
                    &[
                        ".spec.ports[port=53,protocol=\"TCP\"]",
                        ".spec.ports[port=53,protocol=\"TCP\"].port",
                        ".spec.ports[port=53,protocol=\"TCP\"].protocol",
                    ],
                ),
                applied(
                    "b",
                    &[
                        ".spec.ports[port=53,protocol=\"UDP\"]",
                        ".spec.ports[port=53,protocol=\"UDP\"].port",
                        ".spec.ports[port=53,protocol=\"UDP\"].protocol",
                    ],
                ),
            ],
        },
        Case {
            name: "an atomic selector is owned whole and conflicts whole",
            resource: deployments,
            steps: vec![
                Step::Apply(
                    "a",
                    deploy(json!({"selector": {"matchLabels": {"app": "x"}}})),
                ),
                Step::Conflicts(
                    "b",
                    deploy(json!({"selector": {"matchLabels": {"app": "x", "tier": "y"}}})),
                    &[".spec.selector"],
                ),
            ],
            object: deploy(json!({"selector": {"matchLabels": {"app": "x"}}})),
            owners: vec![applied("a", &[".spec.selector"])],
        },
        Case {
            name: "lists of custom resources are atomic",
            resource: clonesets,
            steps: vec![
                Step::Apply(
                    "a",
                    json!({"apiVersion": "apps.kruise.io/v1alpha1", "kind": "CloneSet",
                    "metadata": {"name": "c"}, "spec": {"items": ["a"]}}),
                ),
                Step::Conflicts(
                    "b",
                    json!({"apiVersion": "apps.kruise.io/v1alpha1", "kind": "CloneSet",
                    "metadata": {"name": "c"}, "spec": {"items": ["b"]}}),
                    &[".spec.items"],
                ),
            ],
            object: json!({"apiVersion": "apps.kruise.io/v1alpha1", "kind": "CloneSet",
                "metadata": {"name": "c"}, "spec": {"items": ["a"]}}),
            owners: vec![applied("a", &[".spec.items"])],
        },
        Case {
            name: "a CloneSet's containers merge by name like a built-in workload's",
            resource: clonesets,
            steps: vec![
                Step::Apply(
                    "a",
                    cloneset_containers(json!([{"name": "one", "image": "i1"}])),
                ),
                Step::Apply(
                    "b",
                    cloneset_containers(json!([{"name": "two", "image": "i2"}])),
                ),
            ],
            object: cloneset_containers(
                json!([{"name": "one", "image": "i1"}, {"name": "two", "image": "i2"}]),
            ),
            owners: vec![
                container_applied("a", "one", &["image", "name"]),
                container_applied("b", "two", &["image", "name"]),
            ],
        },
    ]
}

fn cloneset_containers(containers: Value) -> Value {
    json!({"apiVersion": "apps.kruise.io/v1alpha1", "kind": "CloneSet", "metadata": {"name": "c"},
        "spec": {"template": {"spec": {"containers": containers}}}})
}

#[test]
fn sets_keys_and_atomic_values() {
    let cases = set_and_key_cases();
    assert_eq!(cases.len(), 7);
    for case in &cases {
        run(case);
    }
}

fn updates_with_applies_cases() -> Vec<Case> {
    vec![
        Case {
            name: "an update takes a changed field from its applier",
            resource: deployments,
            steps: vec![
                Step::Apply("kubectl", deploy(json!({"replicas": 2, "paused": false}))),
                Step::Update("scaler", deploy(json!({"replicas": 5, "paused": false}))),
            ],
            object: deploy(json!({"replicas": 5, "paused": false})),
            owners: vec![
                applied("kubectl", &[".spec.paused"]),
                updated("scaler", &[".spec.replicas"]),
            ],
        },
        Case {
            name: "re-applying without a field another manager took keeps its value",
            resource: deployments,
            steps: vec![
                Step::Apply("kubectl", deploy(json!({"replicas": 2, "paused": false}))),
                Step::Update("scaler", deploy(json!({"replicas": 5, "paused": false}))),
                Step::Apply("kubectl", deploy(json!({"paused": false}))),
            ],
            object: deploy(json!({"replicas": 5, "paused": false})),
            owners: vec![
                applied("kubectl", &[".spec.paused"]),
                updated("scaler", &[".spec.replicas"]),
            ],
        },
        Case {
            name: "an applier changing an updater's field conflicts until forced",
            resource: deployments,
            steps: vec![
                Step::Update("editor", deploy(json!({"replicas": 3}))),
                Step::Conflicts(
                    "kubectl",
                    deploy(json!({"replicas": 4})),
                    &[".spec.replicas"],
                ),
                Step::ForceApply("kubectl", deploy(json!({"replicas": 4}))),
            ],
            object: deploy(json!({"replicas": 4})),
            owners: vec![applied("kubectl", &[".spec.replicas"])],
        },
        Case {
            name: "an update removing a field takes it from every manager",
            resource: configmaps,
            steps: vec![
                Step::Apply("a", cm(json!({"x": "1", "y": "2"}))),
                Step::Update("editor", cm(json!({"x": "1"}))),
            ],
            object: cm(json!({"x": "1"})),
            owners: vec![applied("a", &[".data.x"])],
        },
        Case {
            name: "updates record new maps as members and leave server fields out",
            resource: configmaps,
            steps: vec![Step::Update(
                "kubectl-create",
                json!({"apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": "c", "uid": "u", "resourceVersion": "5", "labels": {"a": "b"}},
                    "data": {"k": "v"}}),
            )],
            object: json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "c", "uid": "u", "resourceVersion": "5", "labels": {"a": "b"}},
                "data": {"k": "v"}}),
            owners: vec![updated(
                "kubectl-create",
                &[".data", ".data.k", ".metadata.labels", ".metadata.labels.a"],
            )],
        },
    ]
}

#[test]
fn updates_mixed_with_applies() {
    let cases = updates_with_applies_cases();
    assert_eq!(cases.len(), 5);
    for case in &cases {
        run(case);
    }
}

/// A ReplicaSet as Kubernetes 1.36 stored it, and the fields its creator was recorded owning.
#[test]
fn a_create_records_the_fields_kubernetes_records() {
    let uid = "f4ea7749-165b-4d6c-8cad-ea3d3bdb58ce";
    let created = json!({
        "kind": "ReplicaSet", "apiVersion": "apps/v1",
        "metadata": {"name": "http-deploy-5cb4775b55", "namespace": "demo", "uid": "x",
            "generation": 1, "creationTimestamp": "2026-12-06T10:44:27Z",
            "labels": {"pod-template-hash": "5cb4775b55", "run": "apache"},
            "annotations": {"deployment.kubernetes.io/desired-replicas": "3",
                "deployment.kubernetes.io/max-replicas": "4", "deployment.kubernetes.io/revision": "2"},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "http-deploy",
                "uid": uid, "controller": true, "blockOwnerDeletion": true}]},
        "spec": {"replicas": 1,
            "selector": {"matchLabels": {"pod-template-hash": "5cb4775b55", "run": "apache"}},
            "template": {"metadata": {"labels": {"pod-template-hash": "5cb4775b55", "run": "apache"}},
                "spec": {"containers": [{"name": "httpd", "image": "httpd:2.4",
                    "ports": [{"containerPort": 80, "protocol": "TCP"}], "resources": {},
                    "terminationMessagePath": "/dev/termination-log",
                    "terminationMessagePolicy": "File", "imagePullPolicy": "IfNotPresent"}],
                    "restartPolicy": "Always", "terminationGracePeriodSeconds": 30,
                    "dnsPolicy": "ClusterFirst", "securityContext": {},
                    "schedulerName": "default-scheduler"}}},
        "status": {"replicas": 0}
    });
    let expected = json!({
        "f:metadata": {
            "f:annotations": {".": {}, "f:deployment.kubernetes.io/desired-replicas": {},
                "f:deployment.kubernetes.io/max-replicas": {}, "f:deployment.kubernetes.io/revision": {}},
            "f:labels": {".": {}, "f:pod-template-hash": {}, "f:run": {}},
            "f:ownerReferences": {".": {}, format!("k:{{\"uid\":\"{uid}\"}}"): {}}
        },
        "f:spec": {
            "f:replicas": {}, "f:selector": {},
            "f:template": {
                "f:metadata": {"f:labels": {".": {}, "f:pod-template-hash": {}, "f:run": {}}},
                "f:spec": {
                    "f:containers": {"k:{\"name\":\"httpd\"}": {
                        ".": {}, "f:image": {}, "f:imagePullPolicy": {}, "f:name": {},
                        "f:ports": {".": {}, "k:{\"containerPort\":80,\"protocol\":\"TCP\"}": {
                            ".": {}, "f:containerPort": {}, "f:protocol": {}}},
                        "f:resources": {}, "f:terminationMessagePath": {},
                        "f:terminationMessagePolicy": {}}},
                    "f:dnsPolicy": {}, "f:restartPolicy": {}, "f:schedulerName": {},
                    "f:securityContext": {}, "f:terminationGracePeriodSeconds": {}
                }
            }
        }
    });
    let resource = find("apps", "v1", "replicasets").expect("replicasets are served");
    let entries = record_update(
        resource,
        Vec::new(),
        None,
        &created,
        &Writer {
            manager: "kube-controller-manager",
            api_version: "apps/v1",
            subresource: "",
            now: NOW,
        },
    );
    assert_eq!(entries.len(), 1);
    let entry = entries[0].to_json();
    assert_eq!(entry["fieldsV1"], expected);
    assert_eq!(entry["manager"], "kube-controller-manager");
    assert_eq!(entry["operation"], "Update");
    assert_eq!(entry["fieldsType"], "FieldsV1");
    assert_eq!(entry["time"], NOW);
    assert!(entry.get("subresource").is_none());
    let keys: Vec<&str> = entry
        .as_object()
        .map(|m| m.keys().map(String::as_str).collect())
        .unwrap_or_default();
    assert_eq!(
        keys,
        [
            "manager",
            "operation",
            "apiVersion",
            "time",
            "fieldsType",
            "fieldsV1"
        ]
    );
}

#[test]
fn conflict_messages_name_managers_as_kubernetes_does() {
    let cases: [(&[(&str, &str)], &str); 3] = [
        (
            &[("\"kubectl\"", ".spec.replicas")],
            "Apply failed with 1 conflict: conflict with \"kubectl\": .spec.replicas",
        ),
        (
            &[
                ("\"b\" using apps/v1 at 2026-12-06T10:00:00Z", ".spec.replicas"),
                ("\"a\"", ".data.x"),
                ("\"b\" using apps/v1 at 2026-12-06T10:00:00Z", ".spec.paused"),
            ],
            "Apply failed with 3 conflicts: conflicts with \"a\":\n- .data.x\nconflicts with \"b\" using apps/v1 at 2026-12-06T10:00:00Z:\n- .spec.replicas\n- .spec.paused",
        ),
        (
            &[("\"x\" with subresource \"status\"", ".status.phase")],
            "Apply failed with 1 conflict: conflict with \"x\" with subresource \"status\": .status.phase",
        ),
    ];
    assert_eq!(cases.len(), 3);
    for (conflicts, message) in cases {
        let conflicts: Vec<Conflict> = conflicts
            .iter()
            .map(|(m, f)| Conflict {
                manager: m.to_string(),
                field: f.to_string(),
            })
            .collect();
        assert_eq!(conflict_message(&conflicts), message);
    }
}

#[test]
fn updaters_are_described_with_version_and_time_in_conflicts() {
    let resource = deployments();
    let mut live = deploy(json!({"replicas": 3}));
    let entries = record_update(
        resource,
        Vec::new(),
        None,
        &live,
        &writer("kubectl-scale", resource, "apps/v1"),
    );
    set_entries(&mut live, entries);
    let err = apply(
        resource,
        Some(&live),
        &deploy(json!({"replicas": 4})),
        &writer("kubectl", resource, "apps/v1"),
        false,
    )
    .expect_err("a changed replicas conflicts");
    assert_eq!(
        err.to_string(),
        format!("Apply failed with 1 conflict: conflict with \"kubectl-scale\" using apps/v1 at {NOW}: .spec.replicas")
    );
}

#[test]
fn a_no_op_apply_keeps_the_entry_time_and_a_change_moves_it() {
    let resource = configmaps();
    let first = apply(
        resource,
        None,
        &cm(json!({"x": "1"})),
        &writer("a", resource, "v1"),
        false,
    )
    .expect("first apply");
    let again = apply(
        resource,
        Some(&first.object),
        &cm(json!({"x": "1"})),
        &Writer {
            now: LATER,
            ..writer("a", resource, "v1")
        },
        false,
    )
    .expect("same apply");
    assert_eq!(again.object, first.object);
    let changed = apply(
        resource,
        Some(&first.object),
        &cm(json!({"x": "2"})),
        &Writer {
            now: LATER,
            ..writer("a", resource, "v1")
        },
        false,
    )
    .expect("changed apply");
    assert_eq!(entries_of(&changed.object)[0].time.as_deref(), Some(LATER));
}

#[test]
fn status_writes_own_only_status_and_say_so() {
    let resource = deployments();
    let old = deploy(json!({"replicas": 1}));
    let mut new = old.clone();
    new["status"] = json!({"replicas": 1});
    let entries = record_update(
        resource,
        Vec::new(),
        Some(&old),
        &new,
        &Writer {
            subresource: "status",
            ..writer("kube-controller-manager", resource, "apps/v1")
        },
    );
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].subresource, "status");
    let paths: Vec<String> = entries[0]
        .fields
        .paths()
        .iter()
        .map(|p| path_string(p))
        .collect();
    assert_eq!(paths, [".status.replicas"]);
    assert_eq!(entries[0].to_json()["subresource"], "status");
}

#[test]
fn client_side_apply_fields_in_last_applied_do_not_conflict() {
    let resource = deployments();
    let mut live = deploy(json!({"replicas": 2}));
    live["metadata"]["annotations"] =
        json!({LAST_APPLIED_ANNOTATION: deploy(json!({"replicas": 2})).to_string()});
    let entries = record_update(
        resource,
        Vec::new(),
        None,
        &live,
        &writer("kubectl-client-side-apply", resource, "apps/v1"),
    );
    set_entries(&mut live, entries);
    let applied = apply(
        resource,
        Some(&live),
        &deploy(json!({"replicas": 3})),
        &writer("kubectl", resource, "apps/v1"),
        false,
    )
    .expect("the applier had applied replicas client-side");
    assert_eq!(applied.object["spec"]["replicas"], 3);
    // Without the annotation the same apply is a conflict.
    let mut bare = live.clone();
    bare["metadata"]
        .as_object_mut()
        .map(|m| m.shift_remove("annotations"));
    let refused = apply(
        resource,
        Some(&bare),
        &deploy(json!({"replicas": 3})),
        &writer("kubectl", resource, "apps/v1"),
        false,
    );
    assert!(
        matches!(refused, Err(ApplyError::Conflicts(_))),
        "{refused:?}"
    );
}

#[test]
fn manager_names_come_from_the_user_agent_prefix() {
    assert_eq!(
        manager_from_user_agent("kubectl/v1.36.0 (linux/amd64) kubernetes/abc"),
        "kubectl"
    );
    assert_eq!(manager_from_user_agent(""), "");
    assert_eq!(manager_from_user_agent(&"x".repeat(300)).len(), 128);
}

#[test]
fn a_non_object_configuration_is_refused() {
    let resource = configmaps();
    let err = apply(
        resource,
        None,
        &json!([1]),
        &writer("a", resource, "v1"),
        false,
    )
    .expect_err("a list is no configuration");
    assert!(matches!(err, ApplyError::Malformed(_)), "{err:?}");
}
