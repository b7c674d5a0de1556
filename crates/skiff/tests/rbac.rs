//! RBAC end to end with the real `kubectl`: who the admin is (`auth whoami`), `auth can-i` for
//! the admin and for `--as=jane`, a RoleBinding of `edit` in `dev` and what it allows there and
//! not elsewhere, `auth can-i --list`, Kubernetes' 403 messages, escalation refused, the
//! bootstrap roles and their aggregation.
//!
//! Run with `cargo test -p skiff --test rbac`. Needs `kubectl` on the PATH. Every wait polls a
//! condition against a deadline.

mod support;

use serde_json::Value;
use support::{cells, wait_for, Kubectl, Skiff, DEADLINE};

/// Runs kubectl acting as `jane` through impersonation (`--as=jane`).
fn run_as_jane(kubectl: &Kubectl, args: &[&str]) -> support::Outcome {
    let mut all = args.to_vec();
    all.push("--as=jane");
    kubectl.run(&all)
}

/// The rules of a ClusterRole, once it has some.
fn rules_of(kubectl: &Kubectl, role: &str) -> Vec<Value> {
    kubectl.json(&["get", "clusterrole", role])["rules"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[test]
fn rbac_decides_what_the_admin_and_jane_may_do() {
    let skiff = Skiff::start();
    let kubectl = skiff.kubectl();

    // The admin token is system:admin in system:masters.
    let whoami = kubectl.ok(&["auth", "whoami"]);
    let rows: Vec<Vec<&str>> = whoami.lines().map(cells).collect();
    assert_eq!(rows[0], ["ATTRIBUTE", "VALUE"], "{whoami}");
    assert_eq!(rows[1], ["Username", "system:admin"], "{whoami}");
    assert_eq!(
        rows[2],
        ["Groups", "[system:masters", "system:authenticated]"],
        "{whoami}"
    );
    assert_eq!(kubectl.ok(&["auth", "can-i", "create", "pods"]), "yes\n");
    assert_eq!(kubectl.ok(&["auth", "can-i", "*", "*"]), "yes\n");

    // jane holds nothing yet.
    let denied = run_as_jane(&kubectl, &["auth", "can-i", "create", "pods"]);
    assert!(!denied.success(), "jane may not create pods");
    assert_eq!(denied.stdout, "no\n");
    let whoami = run_as_jane(&kubectl, &["auth", "whoami"]);
    assert!(whoami.success(), "{}", whoami.stderr);
    assert!(
        whoami
            .stdout
            .lines()
            .any(|l| cells(l) == ["Username", "jane"]),
        "{}",
        whoami.stdout
    );
    let forbidden = run_as_jane(&kubectl, &["get", "pods"]);
    assert_eq!(
        forbidden.stderr,
        "Error from server (Forbidden): pods is forbidden: User \"jane\" cannot list resource \"pods\" in API group \"\" in the namespace \"default\"\n"
    );
    let forbidden = run_as_jane(&kubectl, &["get", "nodes"]);
    assert_eq!(
        forbidden.stderr,
        "Error from server (Forbidden): nodes is forbidden: User \"jane\" cannot list resource \"nodes\" in API group \"\" at the cluster scope\n"
    );

    // Without credentials a request is system:anonymous: discovery is for authenticated users.
    let anonymous = skiff.request("GET", "/api", None);
    assert_eq!(anonymous.status, 403, "{}", anonymous.body);
    let status: Value = serde_json::from_str(&anonymous.body).expect("a Status");
    assert_eq!(
        status["message"],
        "forbidden: User \"system:anonymous\" cannot get path \"/api\""
    );
    assert_eq!(skiff.request("GET", "/version", None).status, 200);

    // The bootstrap roles are there, and edit gathers the aggregate-to-edit rules.
    let roles = kubectl.ok(&["get", "clusterroles", "-o", "name"]);
    for role in [
        "cluster-admin",
        "admin",
        "edit",
        "view",
        "system:basic-user",
        "system:discovery",
        "system:public-info-viewer",
        "system:aggregate-to-edit",
    ] {
        assert!(
            roles
                .lines()
                .any(|l| l == format!("clusterrole.rbac.authorization.k8s.io/{role}")),
            "{role} missing from\n{roles}"
        );
    }
    wait_for("edit to aggregate its rules", DEADLINE, || {
        (!rules_of(&kubectl, "edit").is_empty()).then_some(())
    });

    // An edit binding in dev: jane may create Deployments there, not in default.
    kubectl.ok(&["create", "namespace", "dev"]);
    kubectl.ok(&[
        "create",
        "rolebinding",
        "jane-edit",
        "--clusterrole=edit",
        "--user=jane",
        "-n",
        "dev",
    ]);
    let binding = kubectl.ok(&["get", "rolebinding", "jane-edit", "-n", "dev", "-o", "wide"]);
    let rows: Vec<Vec<&str>> = binding.lines().map(cells).collect();
    assert_eq!(
        rows[0],
        ["NAME", "ROLE", "AGE", "USERS", "GROUPS", "SERVICEACCOUNTS"],
        "{binding}"
    );
    assert_eq!(rows[1][..2], ["jane-edit", "ClusterRole/edit"], "{binding}");
    assert_eq!(rows[1][3], "jane", "{binding}");

    let allowed = run_as_jane(
        &kubectl,
        &["auth", "can-i", "create", "deployments", "-n", "dev"],
    );
    assert_eq!(allowed.stdout, "yes\n", "{}", allowed.stderr);
    let elsewhere = run_as_jane(
        &kubectl,
        &["auth", "can-i", "create", "deployments", "-n", "default"],
    );
    assert_eq!(elsewhere.stdout, "no\n", "{}", elsewhere.stderr);
    let created = run_as_jane(
        &kubectl,
        &["create", "deployment", "web", "--image=demo", "-n", "dev"],
    );
    assert!(created.success(), "{}", created.stderr);
    let refused = run_as_jane(
        &kubectl,
        &[
            "create",
            "deployment",
            "web",
            "--image=demo",
            "-n",
            "default",
        ],
    );
    assert_eq!(
        refused.stderr,
        "error: failed to create deployment: deployments.apps is forbidden: User \"jane\" cannot create resource \"deployments\" in API group \"apps\" in the namespace \"default\"\n"
    );

    // A SubjectAccessReview names the binding that allows.
    let token = std::fs::read_to_string(skiff.data_dir().join("token")).expect("admin token");
    let review = r#"{"apiVersion":"authorization.k8s.io/v1","kind":"SubjectAccessReview",
        "spec":{"user":"jane","resourceAttributes":{"namespace":"dev","verb":"create","group":"apps","resource":"deployments"}}}"#;
    let answer = skiff.request_with_body(
        "POST",
        "/apis/authorization.k8s.io/v1/subjectaccessreviews",
        Some(token.trim()),
        Some(("application/json", review.as_bytes())),
    );
    assert_eq!(answer.status, 201, "{}", answer.body);
    let answer: Value = serde_json::from_str(&answer.body).expect("a review");
    assert_eq!(
        answer["status"],
        serde_json::json!({"allowed": true,
            "reason": "RBAC: allowed by RoleBinding \"jane-edit/dev\" of ClusterRole \"edit\" to User \"jane\""})
    );

    // The review kinds are discovered, so kubectl can create one from a manifest.
    let reviews = kubectl.ok(&["api-resources", "--api-group=authorization.k8s.io"]);
    let names: Vec<&str> = reviews
        .lines()
        .skip(1)
        .filter_map(|l| cells(l).first().copied())
        .collect();
    assert_eq!(
        names,
        [
            "selfsubjectaccessreviews",
            "selfsubjectrulesreviews",
            "subjectaccessreviews"
        ],
        "{reviews}"
    );
    let manifest = skiff.write_file(
        "sar.yaml",
        "apiVersion: authorization.k8s.io/v1
kind: SubjectAccessReview
spec:
  user: jane
  resourceAttributes: {verb: list, resource: pods, namespace: default}
",
    );
    let created = kubectl.json(&[
        "create",
        "-f",
        &skiff.file_path(&manifest).to_string_lossy(),
    ]);
    assert_eq!(created["status"], serde_json::json!({"allowed": false}));

    // A client certificate for jane (in group devs) from `skiff kubeconfig` behaves the same.
    let (ok, kubeconfig, stderr) = support::cli::skiff(
        &skiff.data_dir(),
        &["kubeconfig", "--user", "jane", "--group", "devs"],
    );
    assert!(ok, "skiff kubeconfig failed: {stderr}");
    let jane_config = skiff.write_file("jane.kubeconfig", &kubeconfig);
    let jane = kubectl.with_kubeconfig(&skiff.file_path(&jane_config));
    let whoami = jane.ok(&["auth", "whoami"]);
    let rows: Vec<Vec<&str>> = whoami.lines().map(cells).collect();
    assert_eq!(rows[1], ["Username", "jane"], "{whoami}");
    assert_eq!(
        rows[2],
        ["Groups", "[devs", "system:authenticated]"],
        "{whoami}"
    );
    assert_eq!(
        jane.ok(&["auth", "can-i", "create", "deployments", "-n", "dev"]),
        "yes\n"
    );
    let outcome = jane.run(&["auth", "can-i", "create", "deployments", "-n", "default"]);
    assert_eq!(outcome.stdout, "no\n", "{}", outcome.stderr);
    assert_eq!(
        jane.fails(&["get", "pods", "-n", "default"]),
        "Error from server (Forbidden): pods is forbidden: User \"jane\" cannot list resource \"pods\" in API group \"\" in the namespace \"default\"\n"
    );
    assert!(jane
        .ok(&["get", "deployments", "-n", "dev"])
        .contains("web"));
    // Impersonating needs the impersonate verb, which the admin holds and jane does not.
    assert_eq!(
        jane.fails(&["get", "pods", "-n", "dev", "--as=bob"]),
        "Error from server (Forbidden): users \"bob\" is forbidden: User \"jane\" cannot impersonate resource \"users\" in API group \"\" at the cluster scope\n"
    );
    let whoami = kubectl.ok(&["auth", "whoami", "--as=bob", "--as-group=devs"]);
    let rows: Vec<Vec<&str>> = whoami.lines().map(cells).collect();
    assert_eq!(rows[1], ["Username", "bob"], "{whoami}");
    assert_eq!(
        rows[2],
        ["Groups", "[devs", "system:authenticated]"],
        "{whoami}"
    );

    // can-i --list shows the self-review rules, the edit rules and the discovery paths.
    let list = run_as_jane(&kubectl, &["auth", "can-i", "--list", "-n", "dev"]);
    assert!(list.success(), "{}", list.stderr);
    let rows: Vec<Vec<&str>> = list.stdout.lines().map(cells).collect();
    assert_eq!(
        rows[0],
        [
            "Resources",
            "Non-Resource",
            "URLs",
            "Resource",
            "Names",
            "Verbs"
        ],
        "{}",
        list.stdout
    );
    let row_of = |first: &str| {
        rows.iter()
            .find(|r| r.first() == Some(&first))
            .unwrap_or_else(|| panic!("no {first} row in\n{}", list.stdout))
            .clone()
    };
    assert_eq!(
        row_of("selfsubjectaccessreviews.authorization.k8s.io"),
        [
            "selfsubjectaccessreviews.authorization.k8s.io",
            "[]",
            "[]",
            "[create]"
        ]
    );
    let deployments = row_of("deployments.apps");
    for verb in ["create", "delete", "get", "list", "watch"] {
        assert!(
            deployments
                .iter()
                .any(|c| c.trim_matches(|x| x == '[' || x == ']') == verb),
            "deployments.apps lacks {verb}: {deployments:?}"
        );
    }
    assert!(
        rows.iter().any(|r| r == &["[/api/*]", "[]", "[get]"]),
        "no discovery path row in\n{}",
        list.stdout
    );

    // Escalation: edit cannot write bindings at all; admin can, but not bind cluster-admin.
    let refused = run_as_jane(
        &kubectl,
        &[
            "create",
            "rolebinding",
            "root",
            "--clusterrole=cluster-admin",
            "--user=jane",
            "-n",
            "dev",
        ],
    );
    assert_eq!(
        refused.stderr,
        "error: failed to create rolebinding: rolebindings.rbac.authorization.k8s.io is forbidden: User \"jane\" cannot create resource \"rolebindings\" in API group \"rbac.authorization.k8s.io\" in the namespace \"dev\"\n"
    );
    kubectl.ok(&[
        "create",
        "rolebinding",
        "jane-admin",
        "--clusterrole=admin",
        "--user=jane",
        "-n",
        "dev",
    ]);
    wait_for("admin to aggregate the edit rules", DEADLINE, || {
        (rules_of(&kubectl, "admin").len() > rules_of(&kubectl, "system:aggregate-to-admin").len())
            .then_some(())
    });
    let escalating = run_as_jane(
        &kubectl,
        &[
            "create",
            "rolebinding",
            "root",
            "--clusterrole=cluster-admin",
            "--user=jane",
            "-n",
            "dev",
        ],
    );
    assert!(
        escalating.stderr.starts_with(
            "error: failed to create rolebinding: rolebindings.rbac.authorization.k8s.io \"root\" is forbidden: user \"jane\" (groups=[\"system:authenticated\"]) is attempting to grant RBAC permissions not currently held:\n"
        ),
        "{}",
        escalating.stderr
    );
    assert!(
        escalating
            .stderr
            .contains("{APIGroups:[\"*\"], Resources:[\"*\"], Verbs:[\"*\"]}"),
        "{}",
        escalating.stderr
    );
    // A role she holds the rules of may be written; patching in more is refused too.
    let created = run_as_jane(
        &kubectl,
        &[
            "create",
            "role",
            "pod-reader",
            "--verb=get",
            "--resource=pods",
            "-n",
            "dev",
        ],
    );
    assert!(
        created.success(),
        "a role within her rights: {}",
        created.stderr
    );
    let patched = run_as_jane(
        &kubectl,
        &[
            "patch",
            "role",
            "pod-reader",
            "-n",
            "dev",
            "--type=json",
            "-p",
            r#"[{"op":"add","path":"/rules/-","value":{"apiGroups":["*"],"resources":["*"],"verbs":["*"]}}]"#,
        ],
    );
    assert_eq!(
        patched.stderr,
        "Error from server (Forbidden): roles.rbac.authorization.k8s.io \"pod-reader\" is forbidden: user \"jane\" (groups=[\"system:authenticated\"]) is attempting to grant RBAC permissions not currently held:\n{APIGroups:[\"*\"], Resources:[\"*\"], Verbs:[\"*\"]}\n"
    );
    let held = run_as_jane(
        &kubectl,
        &[
            "create",
            "rolebinding",
            "viewers",
            "--clusterrole=view",
            "--group=devs",
            "-n",
            "dev",
        ],
    );
    assert!(held.success(), "binding a role she holds: {}", held.stderr);
}

#[test]
fn cluster_roles_aggregate_labelled_roles() {
    let skiff = Skiff::start();
    let kubectl = skiff.kubectl();
    let manifest = skiff.write_file(
        "aggregate.yaml",
        "apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: widget-reader
  labels:
    rbac.authorization.k8s.io/aggregate-to-view: \"true\"
rules:
- apiGroups: [example.com]
  resources: [widgets]
  verbs: [get, list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: monitoring
aggregationRule:
  clusterRoleSelectors:
  - matchLabels:
      team: monitoring
",
    );
    kubectl.ok(&["apply", "-f", &skiff.file_path(&manifest).to_string_lossy()]);
    let has_widgets = |role: &str| {
        rules_of(&kubectl, role)
            .iter()
            .any(|r| r["resources"] == serde_json::json!(["widgets"]))
    };
    for role in ["view", "edit", "admin"] {
        wait_for(&format!("{role} to gather widget-reader"), DEADLINE, || {
            has_widgets(role).then_some(())
        });
    }
    kubectl.ok(&["label", "clusterrole", "widget-reader", "team=monitoring"]);
    wait_for("monitoring to gather widget-reader", DEADLINE, || {
        has_widgets("monitoring").then_some(())
    });
    kubectl.ok(&["delete", "clusterrole", "widget-reader"]);
    wait_for(
        "monitoring to drop the deleted role's rules",
        DEADLINE,
        || rules_of(&kubectl, "monitoring").is_empty().then_some(()),
    );

    // Writing ClusterRoles: rules the writer holds are fine; an aggregation rule takes every
    // right there is.
    kubectl.ok(&[
        "create",
        "clusterrole",
        "role-writer",
        "--verb=create,get",
        "--resource=clusterroles.rbac.authorization.k8s.io,pods",
    ]);
    kubectl.ok(&[
        "create",
        "clusterrolebinding",
        "jane-role-writer",
        "--clusterrole=role-writer",
        "--user=jane",
    ]);
    let held = kubectl.run(&[
        "create",
        "clusterrole",
        "pod-getter",
        "--verb=get",
        "--resource=pods",
        "--as=jane",
    ]);
    assert!(held.success(), "{}", held.stderr);
    let gathering = kubectl.run(&[
        "create",
        "clusterrole",
        "gatherer",
        "--aggregation-rule=team=monitoring",
        "--as=jane",
    ]);
    assert!(
        gathering.stderr.contains(
            "clusterroles.rbac.authorization.k8s.io \"gatherer\" is forbidden: must have cluster-admin privileges to use the aggregationRule"
        ),
        "{}",
        gathering.stderr
    );

    // Roles are validated with Kubernetes' messages.
    let bad = skiff.write_file(
        "bad.yaml",
        "apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata:
  name: bad
rules:
- nonResourceURLs: [/healthz]
  verbs: [get]
",
    );
    let stderr = kubectl.fails(&["create", "-f", &skiff.file_path(&bad).to_string_lossy()]);
    assert_eq!(
        stderr,
        "The Role \"bad\" is invalid: rules[0].nonResourceURLs: Invalid value: [\"/healthz\"]: namespaced rules cannot apply to non-resource URLs\n"
    );
}
