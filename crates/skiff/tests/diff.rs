//! `kubectl diff` and server-side dry runs: an unchanged object diffs empty with exit 0 (the
//! drift check of every GitOps tool), a real change shows exactly that change with exit 1, a
//! dry-run answer is the object as it would be stored (current `resourceVersion`, no invented
//! `annotations: {}`), and re-applying the same file changes nothing.
//!
//! Run with `cargo test -p skiff --test diff`. Needs `kubectl` on the PATH; covers the
//! `kubectl.1.<minor>` clients beside it too.

mod support;

use serde_json::Value;
use support::json::{items, json_of, str_at};
use support::{versioned_kubectls, wait_for, Kubectl, Outcome, Skiff, DEADLINE};

/// Namespaced objects of every kind the drift check covers, as a user writes them.
const NAMESPACED: &str = "apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
data:
  mode: fast
  level: \"3\"
---
apiVersion: v1
kind: Secret
metadata:
  name: creds
type: Opaque
data:
  password: c2VjcmV0
---
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  selector:
    app: web
  ports:
  - name: http
    port: 80
    targetPort: 8080
---
apiVersion: apps/v1
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
        ports:
        - containerPort: 8080
---
apiVersion: apps.kruise.io/v1alpha1
kind: CloneSet
metadata:
  name: workers
spec:
  replicas: 2
  selector:
    matchLabels:
      app: workers
  template:
    metadata:
      labels:
        app: workers
    spec:
      containers:
      - name: worker
        image: httpd:2.4
---
apiVersion: v1
kind: Pod
metadata:
  name: solo
  labels:
    role: solo
spec:
  containers:
  - name: main
    image: httpd:2.4
    command: [\"httpd-foreground\"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata:
  name: reader
rules:
- apiGroups: [\"\"]
  resources: [\"pods\", \"configmaps\"]
  verbs: [\"get\", \"list\", \"watch\"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: reader
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: Role
  name: reader
subjects:
- kind: ServiceAccount
  name: default
";

/// Cluster-scoped objects (a Namespace and RBAC), named after `suffix` so every client and
/// mode gets its own.
fn cluster_scoped(suffix: &str) -> String {
    format!(
        "apiVersion: v1
kind: Namespace
metadata:
  name: extra-{suffix}
  labels:
    team: blue
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: node-reader-{suffix}
rules:
- apiGroups: [\"\"]
  resources: [\"nodes\"]
  verbs: [\"get\", \"list\"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: node-reader-{suffix}
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: node-reader-{suffix}
subjects:
- kind: Group
  name: ops
  apiGroup: rbac.authorization.k8s.io
"
    )
}

/// One ConfigMap, the basic case every installed kubectl is checked with.
const BASIC: &str = "apiVersion: v1
kind: ConfigMap
metadata:
  name: basic
data:
  key: value
";

/// How the objects were made before they are diffed.
#[derive(Clone, Copy, Debug)]
enum Made {
    ClientSideApply,
    ServerSideApply,
    Create,
}

impl Made {
    fn args(self) -> &'static [&'static str] {
        match self {
            Made::ClientSideApply => &["apply"],
            Made::ServerSideApply => &["apply", "--server-side"],
            Made::Create => &["create"],
        }
    }

    fn tag(self) -> &'static str {
        match self {
            Made::ClientSideApply => "csa",
            Made::ServerSideApply => "ssa",
            Made::Create => "create",
        }
    }
}

/// Fails the test unless `kubectl diff` found no difference: exit 0 and nothing printed.
fn assert_no_diff(kubectl: &Kubectl, what: &str, outcome: &Outcome) {
    assert!(
        outcome.status.code() == Some(0) && outcome.stdout.is_empty(),
        "{} diff of {what} should be empty with exit 0, got {:?}:\nstdout:\n{}\nstderr:\n{}",
        kubectl.label(),
        outcome.status.code(),
        outcome.stdout,
        outcome.stderr
    );
}

/// Waits until the workload controllers have caught up with `namespace`'s Deployment and
/// CloneSet, so their own writes cannot land between diff's read and its dry run.
fn wait_controllers_settled(kubectl: &Kubectl, namespace: &str) {
    for kind in ["deployment/web", "cloneset/workers"] {
        wait_for(&format!("{kind} observed"), DEADLINE, || {
            let obj = kubectl.json(&["get", kind, "-n", namespace]);
            let generation = obj.pointer("/metadata/generation").and_then(Value::as_i64);
            let observed = obj
                .pointer("/status/observedGeneration")
                .and_then(Value::as_i64);
            (generation.is_some() && generation == observed).then_some(())
        });
    }
    // The Deployment controller records the revision on its first pass.
    wait_for("the Deployment's revision annotation", DEADLINE, || {
        let obj = kubectl.json(&["get", "deployment/web", "-n", namespace]);
        (!str_at(
            &obj,
            "/metadata/annotations/deployment.kubernetes.io~1revision",
        )
        .is_empty())
        .then_some(())
    });
}

/// Makes every kind one way, then diffs client-side and server-side: both must be empty.
fn unchanged_objects_diff_empty(skiff: &Skiff, kubectl: &Kubectl, made: Made) {
    let suffix = format!(
        "{}-{}",
        made.tag(),
        kubectl.label().replace('.', "-").to_lowercase()
    );
    let namespace = format!("ns-{suffix}");
    kubectl.ok(&["create", "namespace", &namespace]);
    let namespaced = skiff.write_file(&format!("namespaced-{suffix}.yaml"), NAMESPACED);
    let cluster = skiff.write_file(&format!("cluster-{suffix}.yaml"), &cluster_scoped(&suffix));
    let mut make = made.args().to_vec();
    make.extend(["-n", &namespace, "-f", &namespaced]);
    kubectl.ok(&make);
    let mut make = made.args().to_vec();
    make.extend(["-f", &cluster]);
    kubectl.ok(&make);
    wait_controllers_settled(kubectl, &namespace);
    for side in [&[][..], &["--server-side"][..]] {
        let what = format!("{made:?} objects ({side:?})");
        let mut diff = vec!["diff", "-n", &namespace, "-f", &namespaced];
        diff.extend(side);
        assert_no_diff(kubectl, &what, &kubectl.run(&diff));
        let mut diff = vec!["diff", "-f", &cluster];
        diff.extend(side);
        assert_no_diff(kubectl, &what, &kubectl.run(&diff));
    }
}

#[test]
fn unchanged_objects_of_every_kind_diff_empty_with_kubectl_1_27_1_33_and_the_path_one() {
    let skiff = Skiff::start();
    let mut clients = vec![skiff.kubectl()];
    for binary in versioned_kubectls() {
        let name = binary
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        if name == "kubectl.1.27" || name == "kubectl.1.33" {
            clients.push(skiff.kubectl_at(&binary));
        }
    }
    assert!(
        clients.len() == 3,
        "kubectl.1.27 and kubectl.1.33 must be installed beside the kubectl on the PATH"
    );
    for kubectl in &clients {
        for made in [Made::ClientSideApply, Made::ServerSideApply, Made::Create] {
            unchanged_objects_diff_empty(&skiff, kubectl, made);
        }
    }
}

#[test]
fn an_applied_config_map_diffs_empty_with_every_installed_kubectl() {
    let skiff = Skiff::start();
    let mut clients = vec![skiff.kubectl()];
    clients.extend(versioned_kubectls().iter().map(|b| skiff.kubectl_at(b)));
    let manifest = skiff.write_file("basic.yaml", BASIC);
    for kubectl in &clients {
        let namespace = format!("basic-{}", kubectl.label().replace('.', "-"));
        kubectl.ok(&["create", "namespace", &namespace]);
        kubectl.ok(&["apply", "-n", &namespace, "-f", &manifest]);
        let outcome = kubectl.run(&["diff", "-n", &namespace, "-f", &manifest]);
        assert_no_diff(kubectl, "an applied ConfigMap", &outcome);
        let outcome = kubectl.run(&["diff", "--server-side", "-n", &namespace, "-f", &manifest]);
        assert_no_diff(kubectl, "an applied ConfigMap (server-side)", &outcome);
    }
}

/// The lines a unified diff adds or removes, without its file headers.
fn changed_lines(diff: &str) -> Vec<String> {
    diff.lines()
        .filter(|l| l.starts_with('+') || l.starts_with('-'))
        .filter(|l| !l.starts_with("+++") && !l.starts_with("---"))
        .map(str::to_string)
        .collect()
}

#[test]
fn a_real_change_diffs_exactly_that_change_with_exit_1() {
    let skiff = Skiff::start();
    let kubectl = skiff.kubectl();
    let before = skiff.write_file("before.yaml", NAMESPACED);
    kubectl.ok(&["apply", "-f", &before]);
    wait_controllers_settled(&kubectl, "default");
    let after = skiff.write_file(
        "after.yaml",
        &NAMESPACED.replace("mode: fast", "mode: slow"),
    );
    for side in [&[][..], &["--server-side"][..]] {
        let mut args = vec!["diff", "-f", &after];
        args.extend(side);
        let outcome = kubectl.run(&args);
        assert_eq!(
            outcome.status.code(),
            Some(1),
            "diff {side:?} of a changed ConfigMap should exit 1:\nstdout:\n{}\nstderr:\n{}",
            outcome.stdout,
            outcome.stderr
        );
        assert_eq!(
            changed_lines(&outcome.stdout),
            ["-  mode: fast", "+  mode: slow"],
            "diff {side:?} should show exactly the changed value:\n{}",
            outcome.stdout
        );
        assert!(
            outcome.stdout.contains("v1.ConfigMap.default.settings"),
            "diff {side:?} should name the ConfigMap's file:\n{}",
            outcome.stdout
        );
    }
    // Diffing wrote nothing.
    let live = kubectl.json(&["get", "configmap", "settings"]);
    assert_eq!(str_at(&live, "/data/mode"), "fast");
}

#[test]
fn server_dry_runs_keep_the_resource_version_and_invent_no_annotations() {
    let skiff = Skiff::start();
    let kubectl = skiff.kubectl();
    let manifest = skiff.write_file("objects.yaml", NAMESPACED);
    kubectl.ok(&["apply", "-f", &manifest]);
    wait_controllers_settled(&kubectl, "default");

    // An unchanged apply: the dry-run answers are the live objects.
    let live = items(&kubectl.json(&["get", "-f", &manifest]));
    let dry = items(&json_of(&kubectl.ok(&[
        "apply",
        "--dry-run=server",
        "-f",
        &manifest,
        "-o",
        "json",
    ])));
    assert_eq!(live.len(), dry.len(), "one dry-run answer per object");
    for (live, dry) in live.iter().zip(&dry) {
        let kind = str_at(live, "/kind");
        assert!(
            !str_at(dry, "/metadata/resourceVersion").is_empty(),
            "the dry-run {kind} has no resourceVersion:\n{dry:#}"
        );
        assert_eq!(
            live["metadata"], dry["metadata"],
            "the dry-run {kind}'s metadata differs from the live one"
        );
        assert_eq!(live, dry, "the dry-run {kind} differs from the live one");
    }

    // Created without the last-applied annotation: kubectl's patch carries `annotations: {}`,
    // which is not stored and not answered.
    kubectl.ok(&["create", "configmap", "plain", "--from-literal=k=v"]);
    let live = kubectl.json(&["get", "configmap", "plain"]);
    let dry = json_of(&kubectl.ok(&[
        "patch",
        "configmap",
        "plain",
        "--dry-run=server",
        "-p",
        r#"{"metadata":{"annotations":{}}}"#,
        "-o",
        "json",
    ]));
    assert!(
        dry.pointer("/metadata/annotations").is_none(),
        "the dry-run answer invents annotations:\n{dry:#}"
    );
    assert_eq!(live, dry, "a no-op dry-run patch answers the live object");

    // A real change: the answer shows it, at the resourceVersion it would replace.
    let dry = json_of(&kubectl.ok(&[
        "patch",
        "configmap",
        "plain",
        "--dry-run=server",
        "-p",
        r#"{"data":{"k":"changed"}}"#,
        "-o",
        "json",
    ]));
    assert_eq!(str_at(&dry, "/data/k"), "changed");
    assert_eq!(
        str_at(&dry, "/metadata/resourceVersion"),
        str_at(&live, "/metadata/resourceVersion"),
        "a changing dry run answers with the current resourceVersion"
    );
    let after = kubectl.json(&["get", "configmap", "plain"]);
    assert_eq!(after, live, "the dry run wrote nothing");

    // An empty map sent on a real write is not stored either, and changes nothing.
    kubectl.ok(&[
        "patch",
        "configmap",
        "plain",
        "-p",
        r#"{"metadata":{"annotations":{},"labels":{}}}"#,
    ]);
    let after = kubectl.json(&["get", "configmap", "plain"]);
    assert_eq!(
        after, live,
        "a patch of empty maps changed the stored object"
    );
}

#[test]
fn a_second_apply_of_the_same_file_reports_unchanged_and_writes_nothing() {
    let skiff = Skiff::start();
    let kubectl = skiff.kubectl();
    let manifest = skiff.write_file("objects.yaml", NAMESPACED);
    let cluster = skiff.write_file("cluster.yaml", &cluster_scoped("again"));
    for file in [&manifest, &cluster] {
        kubectl.ok(&["apply", "-f", file]);
    }
    wait_controllers_settled(&kubectl, "default");
    for file in [&manifest, &cluster] {
        let before = items(&kubectl.json(&["get", "-f", file]));
        let second = kubectl.ok(&["apply", "-f", file]);
        let lines: Vec<&str> = second.lines().collect();
        assert_eq!(lines.len(), before.len(), "one line per object:\n{second}");
        for line in &lines {
            // kubectl knows no strategic merge for the CloneSet (a custom resource to it), so
            // its three-way JSON merge patch resends the container list the server defaulted,
            // and it says "configured" as it does against OpenKruise; the write is a no-op all
            // the same (checked below).
            let expected = if line.starts_with("cloneset.apps.kruise.io/") {
                " configured"
            } else {
                " unchanged"
            };
            assert!(
                line.ends_with(expected),
                "a second apply should report {line:?} as{expected}:\n{second}"
            );
        }
        let after = items(&kubectl.json(&["get", "-f", file]));
        for (before, after) in before.iter().zip(&after) {
            assert_eq!(
                str_at(before, "/metadata/resourceVersion"),
                str_at(after, "/metadata/resourceVersion"),
                "a no-op apply bumped the {}'s resourceVersion",
                str_at(before, "/kind")
            );
            assert_eq!(
                before.pointer("/metadata/generation"),
                after.pointer("/metadata/generation"),
                "a no-op apply bumped the {}'s generation",
                str_at(before, "/kind")
            );
        }
    }
}
