//! Server-side apply with field ownership, driven by the real kubectl: conflicts between
//! managers in Kubernetes' words, `--force-conflicts` moving ownership, managers sharing a
//! list-map item by item, fields a manager stops applying removed, a `kubectl scale` by another
//! manager surviving a re-apply, and `managedFields` shown only with `--show-managed-fields`.
//!
//! Run with `cargo test -p skiff --test server_side_apply`. Needs `kubectl` on the PATH.

mod support;

use serde_json::Value;
use support::json::json_of;
use support::{Kubectl, Skiff};

const DEPLOYMENT: &str = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels:
    app: web
spec:
  replicas: 2
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      containers:
      - name: web
        image: httpd:2.4
";

/// The object with its managed fields, as `kubectl get -o json --show-managed-fields` prints it.
fn with_managed_fields(kubectl: &Kubectl, what: &str) -> Value {
    json_of(&kubectl.ok(&["get", what, "-o", "json", "--show-managed-fields"]))
}

/// The `managedFields` entry of `manager` with `operation`, failing the test when absent.
fn entry<'a>(object: &'a Value, manager: &str, operation: &str) -> &'a Value {
    let entries = object
        .pointer("/metadata/managedFields")
        .and_then(Value::as_array)
        .unwrap_or_else(|| panic!("no managedFields in {object}"));
    entries
        .iter()
        .find(|e| e["manager"] == manager && e["operation"] == operation)
        .unwrap_or_else(|| {
            panic!(
                "no {operation} entry for {manager:?} in {}",
                serde_json::to_string_pretty(entries).unwrap_or_default()
            )
        })
}

fn owns_replicas(entry: &Value) -> bool {
    entry.pointer("/fieldsV1/f:spec/f:replicas").is_some()
}

#[test]
fn a_second_manager_conflicts_until_it_forces_and_then_owns_the_field() {
    let skiff = Skiff::start();
    let kubectl = skiff.kubectl();
    let first = skiff.write_file("deploy.yaml", DEPLOYMENT);
    kubectl.ok(&["apply", "--server-side", "-f", &first]);

    let plain = json_of(&kubectl.ok(&["get", "deployment/web", "-o", "json"]));
    assert!(
        plain.pointer("/metadata/managedFields").is_none(),
        "kubectl hides managedFields without --show-managed-fields: {plain}"
    );
    let shown = with_managed_fields(&kubectl, "deployment/web");
    let applied = entry(&shown, "kubectl", "Apply");
    assert_eq!(applied["apiVersion"], "apps/v1");
    assert_eq!(applied["fieldsType"], "FieldsV1");
    assert!(applied["time"].as_str().is_some_and(|t| t.ends_with('Z')));
    assert!(owns_replicas(applied), "{applied}");
    assert!(
        applied
            .pointer("/fieldsV1/f:spec/f:template/f:spec/f:containers/k:{\"name\":\"web\"}/f:image")
            .is_some(),
        "the applier owns its container's image: {applied}"
    );

    let other = skiff.write_file(
        "other.yaml",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: 3\n",
    );
    let refused = kubectl.fails(&[
        "apply",
        "--server-side",
        "--field-manager=other",
        "-f",
        &other,
    ]);
    assert!(
        refused.contains("Apply failed with 1 conflict: conflict with \"kubectl\": .spec.replicas"),
        "kubectl prints Kubernetes' conflict message: {refused}"
    );
    assert!(refused.contains("--force-conflicts"), "{refused}");
    let unchanged = json_of(&kubectl.ok(&["get", "deployment/web", "-o", "json"]));
    assert_eq!(unchanged["spec"]["replicas"], 2);

    kubectl.ok(&[
        "apply",
        "--server-side",
        "--field-manager=other",
        "--force-conflicts",
        "-f",
        &other,
    ]);
    let forced = with_managed_fields(&kubectl, "deployment/web");
    assert_eq!(forced["spec"]["replicas"], 3);
    assert!(owns_replicas(entry(&forced, "other", "Apply")));
    assert!(
        !owns_replicas(entry(&forced, "kubectl", "Apply")),
        "force took replicas from the first applier: {forced}"
    );

    // Applying the same value as the owner makes the field shared, without a conflict.
    let same = skiff.write_file(
        "same.yaml",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: 3\n",
    );
    kubectl.ok(&[
        "apply",
        "--server-side",
        "--field-manager=third",
        "-f",
        &same,
    ]);
    let shared = with_managed_fields(&kubectl, "deployment/web");
    assert!(owns_replicas(entry(&shared, "other", "Apply")));
    assert!(owns_replicas(entry(&shared, "third", "Apply")));
}

#[test]
fn managers_share_a_container_item_by_item_and_dropped_fields_go() {
    let skiff = Skiff::start();
    let kubectl = skiff.kubectl();
    let with_env = |name: &str, env: &str, label: &str| {
        format!(
            "apiVersion: apps/v1
kind: Deployment
metadata:
  name: shared
  labels:
    app: shared
{label}spec:
  selector:
    matchLabels:
      app: shared
  template:
    metadata:
      labels:
        app: shared
    spec:
      containers:
      - name: web
        image: httpd:2.4
        env:
        - name: {name}
          value: \"{env}\"
"
        )
    };
    let a = skiff.write_file("a.yaml", &with_env("FROM_A", "1", "    tier: front\n"));
    let b = skiff.write_file("b.yaml", &with_env("FROM_B", "2", ""));
    kubectl.ok(&["apply", "--server-side", "--field-manager=a", "-f", &a]);
    kubectl.ok(&["apply", "--server-side", "--field-manager=b", "-f", &b]);

    let env_names = |object: &Value| -> Vec<String> {
        object
            .pointer("/spec/template/spec/containers/0/env")
            .and_then(Value::as_array)
            .map(|list| {
                list.iter()
                    .filter_map(|e| e["name"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let both = with_managed_fields(&kubectl, "deployment/shared");
    assert_eq!(env_names(&both), ["FROM_A", "FROM_B"]);
    let container = "/fieldsV1/f:spec/f:template/f:spec/f:containers/k:{\"name\":\"web\"}";
    for (manager, mine, theirs) in [("a", "FROM_A", "FROM_B"), ("b", "FROM_B", "FROM_A")] {
        let owned = entry(&both, manager, "Apply");
        let env = |name: &str| format!("{container}/f:env/k:{{\"name\":\"{name}\"}}");
        assert!(owned.pointer(&env(mine)).is_some(), "{manager}: {owned}");
        assert!(owned.pointer(&env(theirs)).is_none(), "{manager}: {owned}");
    }

    // `a` drops its env entry and its label: both go, `b`'s entry stays.
    let a_without = skiff.write_file(
        "a2.yaml",
        "apiVersion: apps/v1
kind: Deployment
metadata:
  name: shared
  labels:
    app: shared
spec:
  selector:
    matchLabels:
      app: shared
  template:
    metadata:
      labels:
        app: shared
    spec:
      containers:
      - name: web
        image: httpd:2.4
",
    );
    kubectl.ok(&[
        "apply",
        "--server-side",
        "--field-manager=a",
        "-f",
        &a_without,
    ]);
    let after = json_of(&kubectl.ok(&["get", "deployment/shared", "-o", "json"]));
    assert_eq!(env_names(&after), ["FROM_B"]);
    assert!(
        after.pointer("/metadata/labels/tier").is_none(),
        "the label only `a` applied is gone: {}",
        after["metadata"]
    );
    assert_eq!(
        after.pointer("/metadata/labels/app"),
        Some(&Value::from("shared"))
    );
}

#[test]
fn a_scale_by_another_manager_survives_a_reapply_without_replicas() {
    let skiff = Skiff::start();
    let kubectl = skiff.kubectl();
    let file = skiff.write_file("deploy.yaml", DEPLOYMENT);
    kubectl.ok(&["apply", "--server-side", "-f", &file]);
    kubectl.ok(&["scale", "deployment/web", "--replicas=4"]);

    let scaled = with_managed_fields(&kubectl, "deployment/web");
    let entries = scaled
        .pointer("/metadata/managedFields")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let scaler = entries
        .iter()
        .find(|e| e["operation"] == "Update" && e["subresource"] == "scale")
        .unwrap_or_else(|| panic!("no scale entry in {entries:?}"));
    assert!(owns_replicas(scaler), "{scaler}");
    assert!(!owns_replicas(entry(&scaled, "kubectl", "Apply")));

    let without_replicas = DEPLOYMENT.replace("  replicas: 2\n", "");
    let file = skiff.write_file("deploy2.yaml", &without_replicas);
    kubectl.ok(&["apply", "--server-side", "-f", &file]);
    let after = json_of(&kubectl.ok(&["get", "deployment/web", "-o", "json"]));
    assert_eq!(after["spec"]["replicas"], 4, "the scaled value stays");

    // Applying replicas again conflicts with the scale's manager, named as Kubernetes names it.
    let file = skiff.write_file("deploy3.yaml", DEPLOYMENT);
    let refused = kubectl.fails(&["apply", "--server-side", "-f", &file]);
    assert!(
        refused.contains("Apply failed with 1 conflict: conflict with \"kubectl\" with subresource \"scale\" using apps/v1 at ")
            && refused.contains(": .spec.replicas"),
        "{refused}"
    );
}

#[test]
fn client_side_applied_objects_move_to_server_side_apply_and_diff_empty() {
    let skiff = Skiff::start();
    let kubectl = skiff.kubectl();
    let file = skiff.write_file("deploy.yaml", DEPLOYMENT);
    kubectl.ok(&["apply", "-f", &file]);
    let created = with_managed_fields(&kubectl, "deployment/web");
    assert!(owns_replicas(entry(
        &created,
        "kubectl-client-side-apply",
        "Update"
    )));
    let diff = kubectl.run(&["diff", "-f", &file]);
    assert!(
        diff.status.code() == Some(0) && diff.stdout.is_empty(),
        "diff of an unchanged client-side applied object: {diff:?}"
    );

    // The same user switches to server-side apply with a changed value: no conflict with
    // their own client-side apply.
    let changed = skiff.write_file(
        "deploy-changed.yaml",
        &DEPLOYMENT.replace("replicas: 2", "replicas: 5"),
    );
    kubectl.ok(&["apply", "--server-side", "-f", &changed]);
    let moved = with_managed_fields(&kubectl, "deployment/web");
    assert_eq!(moved["spec"]["replicas"], 5);
    assert!(owns_replicas(entry(&moved, "kubectl", "Apply")));
    let diff = kubectl.run(&["diff", "--server-side", "-f", &changed]);
    assert!(
        diff.status.code() == Some(0) && diff.stdout.is_empty(),
        "server-side diff after the move: {diff:?}"
    );

    // Objects made with create carry the creator's Update entry and diff empty too.
    let config = skiff.write_file(
        "cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: made\ndata:\n  k: v\n",
    );
    kubectl.ok(&["create", "-f", &config]);
    let made = with_managed_fields(&kubectl, "configmap/made");
    let creator = entry(&made, "kubectl-create", "Update");
    assert!(
        creator.pointer("/fieldsV1/f:data/f:k").is_some(),
        "{creator}"
    );
    let diff = kubectl.run(&["diff", "-f", &config]);
    assert!(
        diff.status.code() == Some(0) && diff.stdout.is_empty(),
        "diff of a created object: {diff:?}"
    );
}
