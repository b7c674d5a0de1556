use serde_json::{json, Value};

use super::schema::{FieldRule, Schema, Strategy};
use super::*;
use crate::resources::{find, ResourceInfo};

fn deployments() -> &'static ResourceInfo {
    find("apps", "v1", "deployments").expect("deployments are served")
}

fn pods() -> &'static ResourceInfo {
    find("", "v1", "pods").expect("pods are served")
}

fn clonesets() -> &'static ResourceInfo {
    find("apps.kruise.io", "v1alpha1", "clonesets").expect("clonesets are served")
}

fn deployment(containers: Value) -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "nginx",
            "namespace": "default",
            "labels": {"app": "nginx"},
            "annotations": {"deployment.kubernetes.io/revision": "2", "team": "web"}
        },
        "spec": {
            "replicas": 1,
            "paused": true,
            "selector": {"matchLabels": {"app": "nginx"}},
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}
            },
            "template": {
                "metadata": {"labels": {"app": "nginx"}},
                "spec": {"containers": containers}
            }
        }
    })
}

fn containers_of(object: &Value) -> &Value {
    &object["spec"]["template"]["spec"]["containers"]
}

fn smp(target: &Value, patch: Value) -> Result<Value, PatchError> {
    apply_patch(deployments(), target, PatchType::StrategicMerge, &patch)
}

#[test]
fn content_types_are_recognised_with_parameters() {
    let cases = [
        ("application/json-patch+json", Some(PatchType::Json)),
        ("application/merge-patch+json", Some(PatchType::Merge)),
        (
            "application/strategic-merge-patch+json; charset=utf-8",
            Some(PatchType::StrategicMerge),
        ),
        ("application/apply-patch+yaml", Some(PatchType::Apply)),
        ("application/json", None),
        ("application/apply-patch+cbor", None),
        ("", None),
    ];
    for (content_type, expected) in cases {
        assert_eq!(
            PatchType::from_content_type(content_type),
            expected,
            "{content_type}"
        );
    }
    for patch_type in PatchType::ALL {
        assert_eq!(
            PatchType::from_content_type(patch_type.content_type()),
            Some(patch_type)
        );
    }
}

// ---- Strategic merge patch: what kubectl sends ----

#[test]
fn set_image_changes_one_container_and_keeps_the_others_in_order() {
    let target = deployment(json!([
        {"name": "nginx", "image": "nginx:1.18", "ports": [{"containerPort": 80}]},
        {"name": "sidecar", "image": "busybox"}
    ]));
    let patched = smp(
        &target,
        json!({"spec": {"template": {"spec": {
            "$setElementOrder/containers": [{"name": "nginx"}, {"name": "sidecar"}],
            "containers": [{"image": "nginx:1.20.1", "name": "nginx"}]
        }}}}),
    )
    .expect("set image patch applies");
    assert_eq!(
        containers_of(&patched),
        &json!([
            {"name": "nginx", "image": "nginx:1.20.1", "ports": [{"containerPort": 80}]},
            {"name": "sidecar", "image": "busybox"}
        ])
    );
    assert_eq!(patched["metadata"], target["metadata"]);
    assert_eq!(patched["spec"]["replicas"], json!(1));
}

#[test]
fn apply_adds_and_removes_env_vars_by_name() {
    let target = deployment(json!([
        {"name": "nginx", "image": "nginx", "env": [
            {"name": "A", "value": "1"},
            {"name": "B", "value": "2"}
        ]}
    ]));
    // kubectl apply after the manifest dropped B and added C.
    let patched = smp(
        &target,
        json!({"spec": {"template": {"spec": {
            "$setElementOrder/containers": [{"name": "nginx"}],
            "containers": [{
                "$setElementOrder/env": [{"name": "A"}, {"name": "C"}],
                "env": [{"name": "C", "value": "3"}, {"$patch": "delete", "name": "B"}],
                "name": "nginx"
            }]
        }}}}),
    )
    .expect("apply patch applies");
    assert_eq!(
        containers_of(&patched)[0]["env"],
        json!([{"name": "A", "value": "1"}, {"name": "C", "value": "3"}])
    );
}

#[test]
fn rollout_pause_resume_and_restart() {
    let target = deployment(json!([{"name": "nginx", "image": "nginx"}]));
    let resumed = smp(&target, json!({"spec": {"paused": null}})).expect("resume applies");
    assert!(resumed["spec"].get("paused").is_none());

    let paused = smp(&resumed, json!({"spec": {"paused": true}})).expect("pause applies");
    assert_eq!(paused["spec"]["paused"], json!(true));

    let restarted = smp(
        &target,
        json!({"spec": {"template": {"metadata": {"annotations": {
            "kubectl.kubernetes.io/restartedAt": "2026-11-21T23:12:57Z"
        }}}}}),
    )
    .expect("restart applies");
    assert_eq!(
        restarted["spec"]["template"]["metadata"],
        json!({
            "labels": {"app": "nginx"},
            "annotations": {"kubectl.kubernetes.io/restartedAt": "2026-11-21T23:12:57Z"}
        })
    );
}

#[test]
fn container_list_merges_by_name_in_patch_order_with_server_items_kept() {
    let target = deployment(json!([
        {"name": "a", "image": "a:1"},
        {"name": "b", "image": "b:1"},
        {"name": "c", "image": "c:1"}
    ]));
    let patched = smp(
        &target,
        json!({"spec": {"template": {"spec": {"containers": [
            {"name": "d", "image": "d:1"},
            {"name": "b", "image": "b:2"}
        ]}}}}),
    )
    .expect("patch applies");
    let names: Vec<&str> = containers_of(&patched)
        .as_array()
        .map(|items| items.iter().filter_map(|c| c["name"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(names, ["d", "a", "b", "c"]);
    assert_eq!(containers_of(&patched)[2]["image"], json!("b:2"));
}

#[test]
fn patch_delete_directive_removes_a_container() {
    let target = deployment(json!([
        {"name": "a", "image": "a"},
        {"name": "b", "image": "b"}
    ]));
    let patched = smp(
        &target,
        json!({"spec": {"template": {"spec": {"containers": [
            {"name": "a", "$patch": "delete"}
        ]}}}}),
    )
    .expect("patch applies");
    assert_eq!(
        containers_of(&patched),
        &json!([{"name": "b", "image": "b"}])
    );
}

#[test]
fn patch_replace_directive_replaces_a_list_and_a_map() {
    let target = deployment(json!([
        {"name": "a", "image": "a"},
        {"name": "b", "image": "b"}
    ]));
    let patched = smp(
        &target,
        json!({
            "metadata": {"labels": {"$patch": "replace", "tier": "front"}},
            "spec": {"template": {"spec": {"containers": [
                {"$patch": "replace"},
                {"name": "c", "image": "c"}
            ]}}}
        }),
    )
    .expect("patch applies");
    assert_eq!(
        containers_of(&patched),
        &json!([{"name": "c", "image": "c"}])
    );
    assert_eq!(patched["metadata"]["labels"], json!({"tier": "front"}));
}

#[test]
fn patch_delete_directive_on_a_map_empties_it() {
    let target = deployment(json!([{"name": "a", "image": "a"}]));
    let patched = smp(
        &target,
        json!({"metadata": {"labels": {"$patch": "delete"}}}),
    )
    .expect("patch applies");
    assert_eq!(patched["metadata"]["labels"], json!({}));
}

#[test]
fn retain_keys_clears_the_other_strategy_fields() {
    let target = deployment(json!([{"name": "a", "image": "a"}]));
    // kubectl apply switching to Recreate.
    let patched = smp(
        &target,
        json!({"spec": {"strategy": {
            "$retainKeys": ["type"],
            "rollingUpdate": null,
            "type": "Recreate"
        }}}),
    )
    .expect("patch applies");
    assert_eq!(patched["spec"]["strategy"], json!({"type": "Recreate"}));
}

#[test]
fn retain_keys_on_a_volume_switches_its_source() {
    let target = json!({
        "metadata": {"name": "p"},
        "spec": {
            "containers": [{"name": "c", "image": "i"}],
            "volumes": [
                {"name": "cache", "emptyDir": {}},
                {"name": "conf", "configMap": {"name": "old"}}
            ]
        }
    });
    // kubectl apply after the manifest changed `cache` from emptyDir to a configMap.
    let patched = apply_patch(
        pods(),
        &target,
        PatchType::StrategicMerge,
        &json!({"spec": {
            "$setElementOrder/volumes": [{"name": "cache"}, {"name": "conf"}],
            "volumes": [{
                "$retainKeys": ["configMap", "name"],
                "configMap": {"name": "new"},
                "emptyDir": null,
                "name": "cache"
            }]
        }}),
    )
    .expect("patch applies");
    assert_eq!(
        patched["spec"]["volumes"],
        json!([
            {"name": "cache", "configMap": {"name": "new"}},
            {"name": "conf", "configMap": {"name": "old"}}
        ])
    );
}

#[test]
fn owner_references_merge_by_uid() {
    let target = json!({"metadata": {"name": "rs", "ownerReferences": [
        {"uid": "u1", "kind": "Deployment", "name": "a", "controller": true}
    ]}});
    let patched = apply_patch(
        find("apps", "v1", "replicasets").expect("replicasets are served"),
        &target,
        PatchType::StrategicMerge,
        &json!({"metadata": {"ownerReferences": [
            {"uid": "u1", "controller": null},
            {"uid": "u2", "kind": "Deployment", "name": "b"}
        ]}}),
    )
    .expect("patch applies");
    assert_eq!(
        patched["metadata"]["ownerReferences"],
        json!([
            {"uid": "u1", "kind": "Deployment", "name": "a"},
            {"uid": "u2", "kind": "Deployment", "name": "b"}
        ])
    );
}

#[test]
fn retain_keys_rejects_a_patch_field_it_does_not_list() {
    let target = deployment(json!([{"name": "a", "image": "a"}]));
    let err = smp(
        &target,
        json!({"spec": {"strategy": {"$retainKeys": ["type"], "rollingUpdate": {}}}}),
    )
    .expect_err("unlisted field is refused");
    assert_eq!(
        err,
        PatchError::MalformedPatch("invalid patch format of retainKeys".to_string())
    );
    assert_eq!(err.code(), 400);
}

#[test]
fn finalizers_merge_as_a_set_and_delete_from_primitive_list() {
    let target = json!({
        "metadata": {"name": "p", "finalizers": ["a", "b"]},
        "spec": {"containers": [{"name": "c", "image": "i"}]}
    });
    let cases = [
        // New items come first unless `$setElementOrder` says otherwise, as upstream.
        (
            json!({"metadata": {"finalizers": ["c", "a"]}}),
            json!(["c", "a", "b"]),
        ),
        (
            json!({"metadata": {"finalizers": ["b"]}}),
            json!(["a", "b"]),
        ),
        (
            json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"]}}),
            json!(["b"]),
        ),
        (
            json!({"metadata": {
                "$setElementOrder/finalizers": ["b", "c"],
                "$deleteFromPrimitiveList/finalizers": ["a"],
                "finalizers": ["c"]
            }}),
            json!(["b", "c"]),
        ),
    ];
    for (patch, expected) in cases {
        let patched =
            apply_patch(pods(), &target, PatchType::StrategicMerge, &patch).expect("patch applies");
        assert_eq!(patched["metadata"]["finalizers"], expected, "{patch}");
    }
}

#[test]
fn lists_without_a_merge_strategy_are_replaced() {
    let target = json!({
        "metadata": {"name": "p"},
        "spec": {
            "containers": [{"name": "c", "image": "i", "args": ["a", "b"]}],
            "tolerations": [
                {"key": "k1", "operator": "Exists"},
                {"key": "k2", "operator": "Exists"}
            ]
        }
    });
    let patched = apply_patch(
        pods(),
        &target,
        PatchType::StrategicMerge,
        &json!({"spec": {
            "tolerations": [{"key": "k3", "operator": "Exists"}],
            "containers": [{"name": "c", "args": ["z"]}]
        }}),
    )
    .expect("patch applies");
    assert_eq!(
        patched["spec"]["tolerations"],
        json!([{"key": "k3", "operator": "Exists"}])
    );
    assert_eq!(patched["spec"]["containers"][0]["args"], json!(["z"]));
    assert_eq!(patched["spec"]["containers"][0]["image"], json!("i"));
}

#[test]
fn ports_merge_by_container_port_and_volume_mounts_by_path() {
    let target = deployment(json!([{
        "name": "web", "image": "nginx",
        "ports": [{"containerPort": 80, "name": "http"}],
        "volumeMounts": [{"mountPath": "/data", "name": "data"}]
    }]));
    let patched = smp(
        &target,
        json!({"spec": {"template": {"spec": {"containers": [{
            "name": "web",
            "ports": [{"containerPort": 80, "protocol": "TCP"}, {"containerPort": 443}],
            "volumeMounts": [{"mountPath": "/data", "readOnly": true}]
        }]}}}}),
    )
    .expect("patch applies");
    let container = &containers_of(&patched)[0];
    assert_eq!(
        container["ports"],
        json!([
            {"containerPort": 80, "name": "http", "protocol": "TCP"},
            {"containerPort": 443}
        ])
    );
    assert_eq!(
        container["volumeMounts"],
        json!([{"mountPath": "/data", "name": "data", "readOnly": true}])
    );
}

#[test]
fn status_conditions_merge_by_type() {
    let target = json!({
        "metadata": {"name": "nginx"},
        "status": {"conditions": [
            {"type": "Available", "status": "False"},
            {"type": "Progressing", "status": "True"}
        ]}
    });
    let patched = smp(
        &target,
        json!({"status": {"conditions": [{"type": "Available", "status": "True"}]}}),
    )
    .expect("patch applies");
    assert_eq!(
        patched["status"]["conditions"],
        json!([
            {"type": "Available", "status": "True"},
            {"type": "Progressing", "status": "True"}
        ])
    );
}

#[test]
fn new_list_items_lose_nulls_and_directives() {
    let target = deployment(json!([{"name": "a", "image": "a"}]));
    let patched = smp(
        &target,
        json!({"spec": {"template": {"spec": {"containers": [
            {"name": "b", "image": "b", "command": null, "$setElementOrder/env": [{"name": "X"}]}
        ]}}}}),
    )
    .expect("patch applies");
    // A new item without `$setElementOrder` goes before the server's items, as upstream.
    assert_eq!(
        containers_of(&patched)[0],
        json!({"name": "b", "image": "b"})
    );
}

#[test]
fn strategic_merge_patch_errors() {
    let target = deployment(json!([{"name": "a", "image": "a"}]));
    let cases: [(Value, u16, &str); 6] = [
        (
            json!({"spec": {"template": {"spec": {"containers": [{"image": "x"}]}}}}),
            500,
            "map: map[image:x] does not contain declared merge key: name",
        ),
        (
            json!({"spec": {"template": {"spec": {"containers": [{"name": "a", "$patch": "merge"}]}}}}),
            500,
            "merging lists cannot yet be specified in the patch",
        ),
        (
            json!({"metadata": {"labels": {"$patch": "bogus"}}}),
            500,
            "unknown patch type: bogus in map: map[$patch:bogus]",
        ),
        (
            json!({"spec": {"template": {"spec": {
                "$setElementOrder/containers": [{"name": "a"}],
                "containers": [{"name": "b", "image": "b"}]
            }}}}),
            500,
            "doesn't match $setElementOrder list",
        ),
        (
            json!({"metadata": {"$deleteFromPrimitiveList": ["x"]}}),
            400,
            "invalid patch format of primitive list",
        ),
        (
            json!(["not", "a", "map"]),
            400,
            "json: cannot unmarshal array into Go value of type map[string]interface {}",
        ),
    ];
    for (patch, code, message) in cases {
        let err = smp(&target, patch.clone()).expect_err("patch is refused");
        assert_eq!(err.code(), code, "{patch}");
        assert!(
            err.to_string().contains(message),
            "{patch}: {err} should contain {message}"
        );
    }
}

#[test]
fn list_of_lists_is_unprocessable() {
    let target = json!({"metadata": {"finalizers": ["a"]}});
    let err = apply_patch(
        pods(),
        &target,
        PatchType::StrategicMerge,
        &json!({"metadata": {"finalizers": [["b"]]}}),
    )
    .expect_err("lists of lists are refused");
    assert_eq!(err.code(), 422);
    assert_eq!(err.reason(), "Invalid");
}

#[test]
fn strategic_merge_on_a_custom_resource_is_unsupported_media_type() {
    let err = apply_patch(
        clonesets(),
        &json!({"spec": {}}),
        PatchType::StrategicMerge,
        &json!({"spec": {"replicas": 2}}),
    )
    .expect_err("custom resources refuse strategic merge patch");
    assert_eq!(err.code(), 415);
    assert_eq!(err.reason(), "UnsupportedMediaType");
    assert_eq!(
        err.status_message(),
        "the body of the request was in an unknown format - accepted media types include: \
         application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml"
    );
}

#[test]
fn null_strategic_patch_changes_nothing() {
    let target = deployment(json!([{"name": "a", "image": "a"}]));
    assert_eq!(smp(&target, Value::Null), Ok(target));
}

// ---- JSON merge patch ----

#[test]
fn merge_patch_cases() {
    let target = deployment(json!([{"name": "a", "image": "a"}, {"name": "b", "image": "b"}]));
    // label via `kubectl label`
    let labelled = apply_patch(
        deployments(),
        &target,
        PatchType::Merge,
        &json!({"metadata": {"labels": {"tier": "front", "app": null}}}),
    )
    .expect("label patch applies");
    assert_eq!(labelled["metadata"]["labels"], json!({"tier": "front"}));

    // scale through the /scale subresource
    let scale = json!({"kind": "Scale", "spec": {"replicas": 1}, "status": {"replicas": 1}});
    let scaled = apply_patch(
        deployments(),
        &scale,
        PatchType::Merge,
        &json!({"spec": {"replicas": 3}}),
    )
    .expect("scale patch applies");
    assert_eq!(scaled["spec"]["replicas"], json!(3));
    assert_eq!(scaled["status"]["replicas"], json!(1));

    // lists are replaced whole (CloneSet apply)
    let replaced = apply_patch(
        clonesets(),
        &target,
        PatchType::Merge,
        &json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "c"}]}}}}),
    )
    .expect("merge patch applies");
    assert_eq!(
        containers_of(&replaced),
        &json!([{"name": "c", "image": "c"}])
    );

    let err = apply_patch(deployments(), &target, PatchType::Merge, &json!([1]))
        .expect_err("non-object merge patch is refused");
    assert_eq!(
        err,
        PatchError::MalformedPatch("Invalid JSON Patch".to_string())
    );
}

// ---- JSON patch ----

#[test]
fn rollout_undo_json_patch_replaces_template_and_annotations() {
    let target = deployment(json!([{"name": "nginx", "image": "nginx:1.20"}]));
    let template = json!({
        "metadata": {"creationTimestamp": null, "labels": {"app": "nginx"}},
        "spec": {"containers": [{"name": "nginx", "image": "nginx:1.18", "resources": {}}]}
    });
    let patched = apply_patch(
        deployments(),
        &target,
        PatchType::Json,
        &json!([
            {"op": "replace", "path": "/spec/template", "value": template},
            {"op": "replace", "path": "/metadata/annotations",
             "value": {"deployment.kubernetes.io/revision": "3"}}
        ]),
    )
    .expect("undo patch applies");
    assert_eq!(patched["spec"]["template"], template);
    assert_eq!(
        patched["metadata"]["annotations"],
        json!({"deployment.kubernetes.io/revision": "3"})
    );
}

#[test]
fn json_patch_operations() {
    let target = json!({"metadata": {"name": "x", "labels": {"a/b": "1", "c~d": "2"}},
                        "spec": {"list": [1, 2]}});
    let cases = [
        (
            json!([{"op": "add", "path": "/spec/list/-", "value": 3}]),
            "/spec/list",
            json!([1, 2, 3]),
        ),
        (
            json!([{"op": "add", "path": "/spec/list/0", "value": 0}]),
            "/spec/list",
            json!([0, 1, 2]),
        ),
        (
            json!([{"op": "remove", "path": "/metadata/labels/a~1b"}]),
            "/metadata/labels",
            json!({"c~d": "2"}),
        ),
        (
            json!([{"op": "replace", "path": "/metadata/labels/c~0d", "value": "3"}]),
            "/metadata/labels/c~0d",
            json!("3"),
        ),
        (
            json!([{"op": "move", "from": "/spec/list", "path": "/spec/moved"}]),
            "/spec",
            json!({"moved": [1, 2]}),
        ),
        (
            json!([{"op": "copy", "from": "/metadata/name", "path": "/spec/name"}]),
            "/spec/name",
            json!("x"),
        ),
        (
            json!([
                {"op": "test", "path": "/metadata/name", "value": "x"},
                {"op": "add", "path": "/spec/ok", "value": true}
            ]),
            "/spec/ok",
            json!(true),
        ),
    ];
    for (patch, pointer, expected) in cases {
        let patched = apply_patch(deployments(), &target, PatchType::Json, &patch)
            .expect("operation applies");
        assert_eq!(patched.pointer(pointer), Some(&expected), "{patch}");
    }
}

#[test]
fn json_patch_errors() {
    let target = json!({"metadata": {"name": "x"}, "spec": {"replicas": 1}});
    let cases: [(Value, u16, &str); 6] = [
        (
            json!([{"op": "test", "path": "/spec/replicas", "value": 2}]),
            422,
            "Invalid",
        ),
        (
            json!([{"op": "replace", "path": "/spec/missing", "value": 2}]),
            422,
            "Invalid",
        ),
        (
            json!([{"op": "add", "path": "/nope/deeper", "value": 2}]),
            422,
            "Invalid",
        ),
        (
            json!([{"op": "frobnicate", "path": "/spec"}]),
            422,
            "Invalid",
        ),
        (json!({"op": "add"}), 400, "BadRequest"),
        (json!(["add"]), 400, "BadRequest"),
    ];
    for (patch, code, reason) in cases {
        let err = apply_patch(deployments(), &target, PatchType::Json, &patch)
            .expect_err("patch is refused");
        assert_eq!((err.code(), err.reason()), (code, reason), "{patch}: {err}");
        if code == 422 {
            assert_eq!(
                err.status_message(),
                "the server rejected our request due to an error in our request"
            );
        }
    }
}

#[test]
fn json_patch_with_too_many_operations_is_refused() {
    let op = json!({"op": "test", "path": "/a", "value": 1});
    let patch = Value::Array(vec![op; MAX_JSON_PATCH_OPERATIONS + 1]);
    let err = apply_patch(deployments(), &json!({"a": 1}), PatchType::Json, &patch)
        .expect_err("too many operations");
    assert_eq!(err.code(), 413);
    assert_eq!(
        err.to_string(),
        "The allowed maximum operations in a JSON patch is 10000, got 10001"
    );
}

// ---- Apply ----

#[test]
fn apply_merges_the_desired_object_without_deleting() {
    let target = deployment(json!([
        {"name": "nginx", "image": "nginx:1.18", "env": [{"name": "A", "value": "1"}]},
        {"name": "sidecar", "image": "busybox"}
    ]));
    let body = decode_patch_body(
        PatchType::Apply,
        br#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: nginx
  labels: {tier: front}
spec:
  replicas: 3
  paused: null
  template:
    spec:
      containers:
      - name: nginx
        image: nginx:1.20.1
        env:
        - {name: B, value: "2"}
"#,
    )
    .expect("yaml decodes");
    let applied =
        apply_patch(deployments(), &target, PatchType::Apply, &body).expect("apply applies");
    assert_eq!(applied["spec"]["replicas"], json!(3));
    assert_eq!(applied["spec"]["paused"], json!(true));
    assert_eq!(
        applied["metadata"]["labels"],
        json!({"app": "nginx", "tier": "front"})
    );
    assert_eq!(
        containers_of(&applied),
        &json!([
            {"name": "nginx", "image": "nginx:1.20.1",
             "env": [{"name": "B", "value": "2"}, {"name": "A", "value": "1"}]},
            {"name": "sidecar", "image": "busybox"}
        ])
    );
}

#[test]
fn apply_on_a_custom_resource_replaces_lists() {
    let target = json!({"spec": {"replicas": 1, "template": {"spec": {"containers": [
        {"name": "a", "image": "a"}, {"name": "b", "image": "b"}
    ]}}}});
    let applied = apply_patch(
        clonesets(),
        &target,
        PatchType::Apply,
        &json!({"spec": {"template": {"spec": {"containers": [{"name": "a", "image": "a2"}]}}}}),
    )
    .expect("apply applies");
    assert_eq!(applied["spec"]["replicas"], json!(1));
    assert_eq!(
        containers_of(&applied),
        &json!([{"name": "a", "image": "a2"}])
    );
}

#[test]
fn patch_bodies_decode_with_kubernetes_messages() {
    assert_eq!(
        decode_patch_body(PatchType::Json, b"[{\"op\":"),
        Err(PatchError::MalformedPatch("invalid JSON patch".to_string()))
    );
    assert_eq!(
        decode_patch_body(PatchType::Apply, br#"{"kind":"Deployment"}"#),
        Ok(json!({"kind": "Deployment"}))
    );
    let err = decode_patch_body(PatchType::Apply, b"a: [").expect_err("bad yaml");
    assert!(err.to_string().starts_with("error encoding patch: "));
    assert_eq!(err.code(), 400);
}

// ---- Cases from upstream's strategicpatch tests, on their test type ----

const MERGE_ITEM: &str = "MergeItem";

/// The test type of upstream's patch_test.go, reduced to the fields the cases below use.
static MERGE_ITEM_RULES: &[FieldRule] = &[
    FieldRule {
        owner: MERGE_ITEM,
        field: "mergingList",
        child: Some(MERGE_ITEM),
        strategy: Strategy::MergeByKey("name"),
    },
    FieldRule {
        owner: MERGE_ITEM,
        field: "mergeItemPtr",
        child: Some(MERGE_ITEM),
        strategy: Strategy::MergeByKey("name"),
    },
    FieldRule {
        owner: MERGE_ITEM,
        field: "mergingIntList",
        child: None,
        strategy: Strategy::MergeSet,
    },
    FieldRule {
        owner: MERGE_ITEM,
        field: "nonMergingList",
        child: Some(MERGE_ITEM),
        strategy: Strategy::Default,
    },
    FieldRule {
        owner: MERGE_ITEM,
        field: "replacingItem",
        child: None,
        strategy: Strategy::Replace,
    },
];

fn merge_item(original: Value, patch: Value) -> Result<Value, PatchError> {
    apply_strategic_merge_patch(Schema::new(MERGE_ITEM_RULES, MERGE_ITEM), &original, &patch)
}

#[test]
fn upstream_cases() {
    let cases = [
        (
            "unique scalars when merging lists",
            json!({"mergingIntList": [1, 2]}),
            json!({"mergingIntList": [2, 3]}),
            json!({"mergingIntList": [1, 2, 3]}),
        ),
        (
            "delete all duplicate entries in a merging list",
            json!({"mergingList": [{"name": 1}, {"name": 1}, {"name": 2, "value": "a"},
                                   {"name": 3}, {"name": 3}]}),
            json!({"mergingList": [{"name": 1, "$patch": "delete"},
                                   {"name": 3, "$patch": "delete"}]}),
            json!({"mergingList": [{"name": 2, "value": "a"}]}),
        ),
        (
            "preserve the order from the patch in a merging list",
            json!({"mergingList": [{"name": 1}, {"name": 2, "value": "b"}, {"name": 3}]}),
            json!({"mergingList": [{"name": 3, "value": "c"}, {"name": 1, "value": "a"},
                                   {"name": 2, "other": "x"}]}),
            json!({"mergingList": [{"name": 3, "value": "c"}, {"name": 1, "value": "a"},
                                   {"name": 2, "value": "b", "other": "x"}]}),
        ),
        (
            "preserve the order from the patch in a merging list 2",
            json!({"mergingList": [{"name": 1}, {"name": 2, "value": "b"}, {"name": 3}]}),
            json!({"mergingList": [{"name": 3, "value": "c"}, {"name": 1, "value": "a"}]}),
            json!({"mergingList": [{"name": 2, "value": "b"}, {"name": 3, "value": "c"},
                                   {"name": 1, "value": "a"}]}),
        ),
        (
            "preserve the order from the patch in a merging int list",
            json!({"mergingIntList": [1, 2, 3]}),
            json!({"mergingIntList": [3, 1]}),
            json!({"mergingIntList": [2, 3, 1]}),
        ),
        (
            "$setElementOrder contains item that is not present in the list to be merged",
            json!({"mergingList": [{"name": 1}, {"name": 3}]}),
            json!({"$setElementOrder/mergingList": [{"name": 3}, {"name": 2}, {"name": 1}],
                   "mergingList": [{"name": 3, "value": 3}, {"name": 1, "value": 1}]}),
            json!({"mergingList": [{"name": 3, "value": 3}, {"name": 1, "value": 1}]}),
        ),
        (
            "$setElementOrder contains item that is not present in the int list",
            json!({"mergingIntList": [1, 3]}),
            json!({"$setElementOrder/mergingIntList": [3, 2, 1]}),
            json!({"mergingIntList": [3, 1]}),
        ),
        (
            "$deleteFromPrimitiveList of nonexistent item",
            json!({"mergingIntList": [1, 2]}),
            json!({"$deleteFromPrimitiveList/mergingIntList": [3]}),
            json!({"mergingIntList": [1, 2]}),
        ),
        (
            "$deleteFromPrimitiveList on nonexistent primitive list",
            json!({"foo": ["bar"]}),
            json!({"$deleteFromPrimitiveList/mergingIntList": [3]}),
            json!({"foo": ["bar"]}),
        ),
        (
            "$deleteFromPrimitiveList without merge patch strategy",
            json!({"nonMergingIntList": [1, 2, 3]}),
            json!({"$deleteFromPrimitiveList/nonMergingIntList": [2]}),
            json!({"nonMergingIntList": [1, 3]}),
        ),
        (
            "set elements order in a list with server-only items",
            json!({"mergingList": [{"name": 1, "other": "a"}, {"name": 3, "value": 3},
                                   {"name": 4, "value": 4}, {"name": 2, "value": 2},
                                   {"name": 9}]}),
            json!({"$setElementOrder/mergingList": [{"name": 4}, {"name": 2}, {"name": 3},
                                                    {"name": 1}]}),
            json!({"mergingList": [{"name": 4, "value": 4}, {"name": 2, "value": 2},
                                   {"name": 3, "value": 3}, {"name": 1, "other": "a"},
                                   {"name": 9}]}),
        ),
        (
            "set elements order in a list with server-only items 3",
            json!({"mergingList": [{"name": 1, "other": "a"}, {"name": 2, "value": 2},
                                   {"name": 7}, {"name": 9}, {"name": 8},
                                   {"name": 3, "value": 3}, {"name": 4, "value": 4}]}),
            json!({"$setElementOrder/mergingList": [{"name": 2}, {"name": 1}, {"name": 4},
                                                    {"name": 3}]}),
            json!({"mergingList": [{"name": 2, "value": 2}, {"name": 1, "other": "a"},
                                   {"name": 7}, {"name": 9}, {"name": 8},
                                   {"name": 4, "value": 4}, {"name": 3, "value": 3}]}),
        ),
        (
            "set element order for a merging list with duplicate",
            json!({"mergingList": [{"name": 1}, {"name": 2, "value": "dup1"}, {"name": 3},
                                   {"name": 2, "value": "dup2"}, {"name": 4}]}),
            json!({"$setElementOrder/mergingList": [{"name": 2}, {"name": 1}, {"name": 4},
                                                    {"name": 3}, {"name": 2}]}),
            json!({"mergingList": [{"name": 2, "value": "dup1"}, {"name": 2, "value": "dup2"},
                                   {"name": 1}, {"name": 4}, {"name": 3}]}),
        ),
        (
            "delete and reorder in one list, reorder in another",
            json!({"mergingList": [{"name": "a", "value": "a"}, {"name": "b", "value": "b"}],
                   "mergeItemPtr": [{"name": "c", "value": "c"}, {"name": "d", "value": "d"}]}),
            json!({"$setElementOrder/mergingList": [{"name": "b"}],
                   "$setElementOrder/mergeItemPtr": [{"name": "d"}, {"name": "c"}],
                   "mergingList": [{"$patch": "delete", "name": "a"}]}),
            json!({"mergingList": [{"name": "b", "value": "b"}],
                   "mergeItemPtr": [{"name": "d", "value": "d"}, {"name": "c", "value": "c"}]}),
        ),
        (
            "replace non merging list nested in merging list",
            json!({"mergingList": [{"name": 1, "nonMergingList": [{"name": 1}, {"name": 2}]},
                                   {"name": 2}]}),
            json!({"mergingList": [{"name": 1, "nonMergingList": [{"name": 1, "value": 1}]}]}),
            json!({"mergingList": [{"name": 1, "nonMergingList": [{"name": 1, "value": 1}]},
                                   {"name": 2}]}),
        ),
        (
            "replace strategy replaces a map",
            json!({"name": "x", "replacingItem": {"a": 1, "b": 2}}),
            json!({"replacingItem": {"c": 3}}),
            json!({"name": "x", "replacingItem": {"c": 3}}),
        ),
        (
            "add key and delete all keys from map",
            json!({"name": 1, "value": 1}),
            json!({"other": "a", "$patch": "replace"}),
            json!({"other": "a"}),
        ),
    ];
    for (description, original, patch, expected) in cases {
        let result = merge_item(original, patch);
        assert_eq!(result, Ok(expected), "{description}");
    }
}

#[test]
fn upstream_error_cases() {
    let cases = [
        (
            "order in $setElementOrder and patch list must match",
            json!({"mergingList": [{"name": 1}, {"name": 3}, {"name": 2}]}),
            json!({"$setElementOrder/mergingList": [{"name": 1}, {"name": 2}, {"name": 3}],
                   "mergingList": [{"name": 3, "value": 3}, {"name": 1, "value": 1}]}),
            "doesn't match",
        ),
        (
            "order in $setElementOrder and int patch list must match",
            json!({"mergingIntList": [1, 3, 2]}),
            json!({"$setElementOrder/mergingIntList": [1, 2, 3], "mergingIntList": [3, 1]}),
            "doesn't match",
        ),
        (
            "missing merge key should error out",
            json!({"mergingList": [{"name": 1, "value": "a"}]}),
            json!({"mergingList": [{"value": "b"}]}),
            "does not contain declared merge key",
        ),
        (
            "lists without merge key cannot merge maps",
            json!({"nonMergingList": [{"name": 1}]}),
            json!({"$deleteFromPrimitiveList/nonMergingList": [{"name": 1}]}),
            "cannot merge lists without merge key",
        ),
    ];
    for (description, original, patch, expected) in cases {
        let err = merge_item(original, patch).expect_err(description);
        assert!(
            err.to_string().contains(expected),
            "{description}: {err} should contain {expected}"
        );
    }
}

#[test]
fn json_patch_copy_chains_stop_at_the_copy_size_limit() {
    // Each copy puts the map inside itself, doubling it: 40 doublings would need terabytes.
    let target = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "bomb", "annotations": {"seed": "x".repeat(1000)}}});
    let mut operations = Vec::new();
    for level in 0..40 {
        operations.push(json!({"op": "copy", "from": "/metadata/annotations",
            "path": format!("/metadata/annotations/l{level}")}));
    }
    let configmaps = find("", "v1", "configmaps").unwrap();
    let started = std::time::Instant::now();
    let Err(err) = apply_patch(
        configmaps,
        &target,
        PatchType::Json,
        &Value::Array(operations),
    ) else {
        panic!("a copy chain past the limit must fail");
    };
    assert_eq!(err.code(), 422, "{err}");
    assert_eq!(err.reason(), "Invalid");
    assert!(err.to_string().contains("accumulated size"), "{err}");
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
}

#[test]
fn json_patch_copies_under_the_limit_still_apply() {
    let target = json!({"metadata": {"name": "n", "labels": {"a": "b"}}});
    let patched = apply_patch(
        find("", "v1", "configmaps").unwrap(),
        &target,
        PatchType::Json,
        &json!([{"op": "copy", "from": "/metadata/labels", "path": "/metadata/annotations"},
                {"op": "copy", "from": "/metadata/labels/a", "path": "/metadata/labels/c"}]),
    )
    .unwrap();
    assert_eq!(patched["metadata"]["annotations"], json!({"a": "b"}));
    assert_eq!(patched["metadata"]["labels"], json!({"a": "b", "c": "b"}));
}

#[test]
fn long_strategic_merge_lists_merge_in_bounded_time() {
    // Reordering a long list by `$setElementOrder` took minutes for a thousand items when
    // every comparison searched the order list.
    let n = 20_000;
    let containers: Vec<Value> = (0..n)
        .map(|i| json!({"name": format!("c{i}"), "image": "x"}))
        .collect();
    let target = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p",
        "finalizers": (0..n).map(|i| format!("f{i}")).collect::<Vec<_>>()},
        "spec": {"containers": containers}});
    let order: Vec<Value> = (0..n)
        .rev()
        .map(|i| json!({"name": format!("c{i}")}))
        .collect();
    let patch_items: Vec<Value> = (0..n)
        .rev()
        .map(|i| json!({"name": format!("c{i}"), "image": "y"}))
        .collect();
    let deletes: Vec<Value> = (0..n)
        .step_by(2)
        .map(|i| json!({"name": format!("c{i}"), "$patch": "delete"}))
        .collect();
    let patch = json!({
        "metadata": {"finalizers": (0..n).rev().map(|i| format!("g{i}")).collect::<Vec<_>>()},
        "spec": {"$setElementOrder/containers": order, "containers": patch_items}});
    let started = std::time::Instant::now();
    let patched = apply_patch(pods(), &target, PatchType::StrategicMerge, &patch).unwrap();
    let names: Vec<&str> = patched["spec"]["containers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), n);
    assert_eq!(names[0], format!("c{}", n - 1));
    assert_eq!(names[n - 1], "c0");
    assert_eq!(
        patched["metadata"]["finalizers"].as_array().unwrap().len(),
        2 * n
    );
    let deleted = apply_patch(
        pods(),
        &target,
        PatchType::StrategicMerge,
        &json!({"spec": {"containers": deletes}}),
    )
    .unwrap();
    assert_eq!(
        deleted["spec"]["containers"].as_array().unwrap().len(),
        n / 2
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(20),
        "took {:?}",
        started.elapsed()
    );
}

mod element_order {
    use proptest::prelude::*;
    use serde_json::{json, Value};

    use super::super::strategic::sort_by_order_for_tests as sort_by_order;

    /// The insertion sort with upstream's comparison, as the reference.
    fn insertion_sorted(items: &[Value], order: &[Value]) -> Vec<Value> {
        let position = |item: &Value| order.iter().position(|o| o["name"] == item["name"]);
        let mut items = items.to_vec();
        for i in 1..items.len() {
            let mut j = i;
            while j > 0 {
                let less = match (position(&items[j]), position(&items[j - 1])) {
                    (Some(a), Some(b)) => a < b,
                    _ => true,
                };
                if !less {
                    break;
                }
                items.swap(j, j - 1);
                j -= 1;
            }
        }
        items
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn ordering_matches_the_insertion_sort(
            items in prop::collection::vec((0u8..12, any::<u8>()), 0..30),
            order in prop::collection::vec(0u8..12, 0..14),
        ) {
            let items: Vec<Value> = items
                .iter()
                .map(|(name, tag)| json!({"name": format!("n{name}"), "tag": tag}))
                .collect();
            let order: Vec<Value> = order.iter().map(|name| json!({"name": format!("n{name}")})).collect();
            let fast = sort_by_order(items.clone(), &order, "name");
            prop_assert_eq!(fast, insertion_sorted(&items, &order));
        }
    }
}

#[test]
fn daemon_set_template_containers_merge_by_name() {
    // What `kubectl set image ds/x main=web:2` sends.
    let target = json!({"kind": "DaemonSet", "spec": {"template": {"spec": {"containers": [
        {"name": "main", "image": "web:1"},
        {"name": "side", "image": "side:1"}
    ]}}}});
    let patched = apply_patch(
        find("apps", "v1", "daemonsets").expect("daemonsets are served"),
        &target,
        PatchType::StrategicMerge,
        &json!({"spec": {"template": {"spec": {
            "$setElementOrder/containers": [{"name": "main"}],
            "containers": [{"name": "main", "image": "web:2"}]
        }}}}),
    )
    .expect("patch applies");
    assert_eq!(
        patched["spec"]["template"]["spec"]["containers"],
        json!([{"name": "main", "image": "web:2"}, {"name": "side", "image": "side:1"}])
    );
}

#[test]
fn stateful_set_template_containers_merge_by_name_and_claim_templates_are_atomic() {
    // What `kubectl set image sts/x main=web:2` sends.
    let target = json!({"kind": "StatefulSet", "spec": {
        "template": {"spec": {"containers": [
            {"name": "main", "image": "web:1"},
            {"name": "side", "image": "side:1"}
        ]}},
        "volumeClaimTemplates": [{"metadata": {"name": "data"}}, {"metadata": {"name": "logs"}}]
    }});
    let patched = apply_patch(
        find("apps", "v1", "statefulsets").expect("statefulsets are served"),
        &target,
        PatchType::StrategicMerge,
        &json!({"spec": {
            "template": {"spec": {
                "$setElementOrder/containers": [{"name": "main"}],
                "containers": [{"name": "main", "image": "web:2"}]
            }},
            "volumeClaimTemplates": [{"metadata": {"name": "cache"}}]
        }}),
    )
    .expect("patch applies");
    assert_eq!(
        patched["spec"]["template"]["spec"]["containers"],
        json!([{"name": "main", "image": "web:2"}, {"name": "side", "image": "side:1"}])
    );
    assert_eq!(
        patched["spec"]["volumeClaimTemplates"],
        json!([{"metadata": {"name": "cache"}}])
    );
}
