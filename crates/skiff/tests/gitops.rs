//! The GitOps flow with kubectl alone, as a drift-checking tool runs it: `kubectl apply -k DIR
//! --server-side` of a kustomization holding a CustomResourceDefinition and objects of it, a
//! Deployment, a Service, ConfigMaps (one made by a `configMapGenerator`), a ServiceAccount, a
//! Role and a RoleBinding; `kubectl diff -k DIR` empty while nothing changed, showing exactly a
//! change and exiting 1 when the directory changes, empty again after re-applying; re-applying
//! an unchanged directory writes nothing. And `kubectl api-resources` lists every kind the API
//! machinery issue names, with Kubernetes 1.36's names, short names, versions and scopes.
//!
//! Run with `cargo test -p skiff --test gitops`. Needs `kubectl` on the PATH, and
//! `kubectl.1.27` and `kubectl.1.33` beside it. Every wait polls a condition against a deadline.

mod support;

use std::collections::BTreeMap;

use serde_json::Value;
use support::json::{items, str_at};
use support::{
    assert_table, cells, versioned_kubectls, wait_for, Kubectl, Outcome, Skiff, DEADLINE,
};

/// The kustomization's directory, relative to the scratch directory kubectl runs in.
const DIR: &str = "shop";

/// The kustomization: everything lands in one namespace, carries one label, and the
/// Deployment's environment comes from a generated ConfigMap whose name carries a hash.
const KUSTOMIZATION: &str = "\
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
namespace: shop
labels:
- pairs:
    app.kubernetes.io/part-of: shop
resources:
- namespace.yaml
- crd.yaml
- gadgets.yaml
- deployment.yaml
- service.yaml
- configmap.yaml
- rbac.yaml
configMapGenerator:
- name: shop-env
  literals:
  - MODE=fast
";

const NAMESPACE: &str = "\
apiVersion: v1
kind: Namespace
metadata:
  name: shop
";

/// A definition with a structural schema, a CEL rule, a default, the status subresource and
/// printer columns.
const CRD: &str = "\
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: gadgets.shop.example.com
spec:
  group: shop.example.com
  scope: Namespaced
  names:
    plural: gadgets
    singular: gadget
    kind: Gadget
    shortNames: [gd]
  versions:
  - name: v1
    served: true
    storage: true
    subresources:
      status: {}
    additionalPrinterColumns:
    - name: Color
      type: string
      jsonPath: .spec.color
    - name: Size
      type: integer
      jsonPath: .spec.size
    - name: Age
      type: date
      jsonPath: .metadata.creationTimestamp
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            required: [color]
            x-kubernetes-validations:
            - rule: self.size <= 10
              message: size must be at most 10
            properties:
              color:
                type: string
                enum: [red, blue, green]
              size:
                type: integer
                minimum: 1
                default: 1
          status:
            type: object
            properties:
              ready:
                type: boolean
";

/// Two objects of the definition; the second leaves `size` to its default.
const GADGETS: &str = "\
apiVersion: shop.example.com/v1
kind: Gadget
metadata:
  name: alpha
spec:
  color: red
  size: 3
---
apiVersion: shop.example.com/v1
kind: Gadget
metadata:
  name: beta
spec:
  color: green
";

const DEPLOYMENT: &str = "\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 1
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      serviceAccountName: shop-bot
      containers:
      - name: web
        image: nginx:1.25
        ports:
        - containerPort: 8080
        envFrom:
        - configMapRef:
            name: shop-env
";

const SERVICE: &str = "\
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
";

const CONFIG_MAP: &str = "\
apiVersion: v1
kind: ConfigMap
metadata:
  name: shop-settings
data:
  mode: fast
  level: \"3\"
";

const RBAC: &str = "\
apiVersion: v1
kind: ServiceAccount
metadata:
  name: shop-bot
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata:
  name: gadget-reader
rules:
- apiGroups: [shop.example.com]
  resources: [gadgets]
  verbs: [get, list, watch]
- apiGroups: [\"\"]
  resources: [configmaps]
  verbs: [get]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: shop-bot-reads-gadgets
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: Role
  name: gadget-reader
subjects:
- kind: ServiceAccount
  name: shop-bot
  namespace: shop
";

/// What the kustomization says, from the first version to the last.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Revision {
    /// As first applied.
    First,
    /// The replicas raised, a ConfigMap value and a custom object's field changed.
    Changed,
    /// Then the generated ConfigMap's literal changed too: a new name, which the Deployment
    /// follows.
    Regenerated,
}

/// Writes the kustomization directory at `revision`.
fn write_kustomization(skiff: &Skiff, revision: Revision) {
    let (deployment, config_map, gadgets) = if revision == Revision::First {
        (
            DEPLOYMENT.to_string(),
            CONFIG_MAP.to_string(),
            GADGETS.to_string(),
        )
    } else {
        (
            DEPLOYMENT.replace("replicas: 1", "replicas: 2"),
            CONFIG_MAP.replace("mode: fast", "mode: slow"),
            GADGETS.replacen("color: red", "color: blue", 1),
        )
    };
    let kustomization = if revision == Revision::Regenerated {
        KUSTOMIZATION.replace("MODE=fast", "MODE=slow")
    } else {
        KUSTOMIZATION.to_string()
    };
    for (file, text) in [
        ("kustomization.yaml", kustomization.as_str()),
        ("namespace.yaml", NAMESPACE),
        ("crd.yaml", CRD),
        ("gadgets.yaml", &gadgets),
        ("deployment.yaml", &deployment),
        ("service.yaml", SERVICE),
        ("configmap.yaml", &config_map),
        ("rbac.yaml", RBAC),
    ] {
        skiff.write_file(&format!("{DIR}/{file}"), text);
    }
}

/// What `kubectl apply --server-side` prints for each object of the kustomization, in the
/// order kubectl applies them (kustomize's: namespaces and definitions first), without the
/// custom objects. The generated ConfigMap's name ends in a hash, matched separately.
const APPLIED_BEFORE_CUSTOM_OBJECTS: &[&str] = &[
    "namespace/shop serverside-applied",
    "customresourcedefinition.apiextensions.k8s.io/gadgets.shop.example.com serverside-applied",
    "serviceaccount/shop-bot serverside-applied",
    "role.rbac.authorization.k8s.io/gadget-reader serverside-applied",
    "rolebinding.rbac.authorization.k8s.io/shop-bot-reads-gadgets serverside-applied",
    "configmap/shop-env-<hash> serverside-applied",
    "configmap/shop-settings serverside-applied",
    "service/web serverside-applied",
    "deployment.apps/web serverside-applied",
];

/// The custom objects' lines, printed once their kind is served.
const APPLIED_CUSTOM_OBJECTS: &[&str] = &[
    "gadget.shop.example.com/alpha serverside-applied",
    "gadget.shop.example.com/beta serverside-applied",
];

/// Whether `name` is a generated ConfigMap name: the base, a dash and kustomize's ten-letter
/// hash.
fn is_generated_name(name: &str, base: &str) -> bool {
    name.strip_prefix(base)
        .and_then(|rest| rest.strip_prefix('-'))
        .is_some_and(|hash| hash.len() == 10 && hash.chars().all(|c| c.is_ascii_alphanumeric()))
}

/// Fails unless kubectl printed exactly `expected`, a generated name standing for `<hash>`.
fn assert_applied(kubectl: &Kubectl, stdout: &str, expected: &[&str]) {
    let printed: Vec<&str> = stdout.lines().filter(|l| !l.trim().is_empty()).collect();
    let matches = printed.len() == expected.len()
        && printed.iter().zip(expected).all(|(line, want)| {
            match want.strip_prefix("configmap/shop-env-<hash>") {
                Some(rest) => line
                    .strip_prefix("configmap/")
                    .and_then(|l| l.strip_suffix(rest))
                    .is_some_and(|name| is_generated_name(name, "shop-env")),
                None => line == want,
            }
        });
    assert!(
        matches,
        "{} apply printed other lines\nexpected: {expected:#?}\nprinted:\n{stdout}",
        kubectl.label()
    );
}

fn apply(kubectl: &Kubectl) -> Outcome {
    kubectl.run(&["apply", "-k", DIR, "--server-side"])
}

/// Fails unless `kubectl diff` found no difference: exit 0 and nothing printed.
fn assert_no_diff(kubectl: &Kubectl, when: &str, outcome: &Outcome) {
    assert!(
        outcome.status.code() == Some(0) && outcome.stdout.is_empty(),
        "{} diff -k {when} should be empty with exit 0, got {:?}:\nstdout:\n{}\nstderr:\n{}",
        kubectl.label(),
        outcome.status.code(),
        outcome.stdout,
        outcome.stderr
    );
}

/// Diffs the directory both client-side and server-side; both must be empty.
fn assert_no_diffs(kubectl: &Kubectl, when: &str) {
    assert_no_diff(kubectl, when, &kubectl.run(&["diff", "-k", DIR]));
    assert_no_diff(
        kubectl,
        &format!("--server-side {when}"),
        &kubectl.run(&["diff", "-k", DIR, "--server-side"]),
    );
}

/// Waits until the Deployment controller has caught up with the Deployment (its generation
/// observed, its revision recorded, its `pods` counted), so its own writes cannot land
/// between a diff's read and its dry run, or between two reads of the resourceVersions.
fn wait_deployment_settled(kubectl: &Kubectl, pods: i64) {
    wait_for("the Deployment to settle", DEADLINE, || {
        let d = kubectl.json(&["get", "deployment/web", "-n", "shop"]);
        let generation = d.pointer("/metadata/generation").and_then(Value::as_i64);
        let observed = d
            .pointer("/status/observedGeneration")
            .and_then(Value::as_i64);
        let counted = d.pointer("/status/replicas").and_then(Value::as_i64);
        let revision = str_at(
            &d,
            "/metadata/annotations/deployment.kubernetes.io~1revision",
        );
        (generation.is_some()
            && generation == observed
            && counted == Some(pods)
            && !revision.is_empty())
        .then_some(())
    });
}

/// The kustomization's objects as the server has them, managedFields included.
fn live_objects(kubectl: &Kubectl) -> Vec<Value> {
    let list = kubectl.json(&["get", "-k", DIR, "--show-managed-fields"]);
    items(&list)
}

/// `Kind/name` of an object, for messages and maps.
fn identity(obj: &Value) -> String {
    format!("{}/{}", str_at(obj, "/kind"), str_at(obj, "/metadata/name"))
}

/// Every object's resourceVersion by identity.
fn resource_versions(kubectl: &Kubectl) -> BTreeMap<String, String> {
    live_objects(kubectl)
        .iter()
        .map(|o| (identity(o), str_at(o, "/metadata/resourceVersion")))
        .collect()
}

/// The lines a unified diff adds or removes, without its file headers, sorted.
fn changed_lines(diff: &str) -> Vec<String> {
    let mut lines: Vec<String> = diff
        .lines()
        .filter(|l| l.starts_with('+') || l.starts_with('-'))
        .filter(|l| !l.starts_with("+++") && !l.starts_with("---"))
        .map(str::to_string)
        .collect();
    lines.sort();
    lines
}

/// The objects a `kubectl diff` output compares, by the file names it gives them, sorted.
fn diffed_files(diff: &str) -> Vec<String> {
    let mut files: Vec<String> = diff
        .lines()
        .filter_map(|l| l.strip_prefix("diff -u -N "))
        .filter_map(|l| l.split_whitespace().next())
        .filter_map(|path| path.rsplit('/').next())
        .map(str::to_string)
        .collect();
    files.sort();
    files
}

/// The whole flow against a fresh server with one kubectl.
fn gitops_flow(skiff: &Skiff, kubectl: &Kubectl) {
    write_kustomization(skiff, Revision::First);

    // As against Kubernetes: kubectl maps every object before it applies any, so on a cluster
    // that does not know the definition yet the custom objects fail with kubectl's hint and
    // everything else is applied, the definition first.
    let first = apply(kubectl);
    assert_eq!(
        first.status.code(),
        Some(1),
        "{} first apply should fail only for the custom objects:\nstdout:\n{}\nstderr:\n{}",
        kubectl.label(),
        first.stdout,
        first.stderr
    );
    assert_applied(kubectl, &first.stdout, APPLIED_BEFORE_CUSTOM_OBJECTS);
    for name in ["alpha", "beta"] {
        let unmapped = format!(
            "resource mapping not found for name: \"{name}\" namespace: \"shop\" from \"{DIR}\": no matches for kind \"Gadget\" in version \"shop.example.com/v1\""
        );
        assert!(
            first.stderr.contains(&unmapped),
            "{} should say why {name} was not applied:\n{}",
            kubectl.label(),
            first.stderr
        );
    }
    assert!(
        first.stderr.contains("ensure CRDs are installed first"),
        "{}",
        first.stderr
    );

    // Re-applied at once, with no wait for the definition: its objects are served as soon as
    // its create was acknowledged.
    let second = apply(kubectl);
    assert!(
        second.success(),
        "{} second apply failed:\nstdout:\n{}\nstderr:\n{}",
        kubectl.label(),
        second.stdout,
        second.stderr
    );
    let everything = [APPLIED_BEFORE_CUSTOM_OBJECTS, APPLIED_CUSTOM_OBJECTS].concat();
    assert_applied(kubectl, &second.stdout, &everything);

    // The printer columns, the defaulted size.
    assert_table(
        &kubectl.ok(&["get", "gadgets", "-n", "shop"]),
        &[
            &["NAME", "COLOR", "SIZE", "AGE"],
            &["alpha", "red", "3", "<age>"],
            &["beta", "green", "1", "<age>"],
        ],
    );
    // The Deployment reads the generated ConfigMap by its hashed name.
    let deployment = kubectl.json(&["get", "deployment/web", "-n", "shop"]);
    let env_name = str_at(&deployment, ENV_FROM);
    assert!(is_generated_name(&env_name, "shop-env"), "{env_name}");

    // Every object is owned by kubectl's apply, its label included.
    let objects = live_objects(kubectl);
    assert_eq!(
        objects.len(),
        11,
        "{} objects: {objects:#?}",
        kubectl.label()
    );
    for obj in &objects {
        let entries = obj
            .pointer("/metadata/managedFields")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let applied = entries
            .iter()
            .find(|e| str_at(e, "/manager") == "kubectl" && str_at(e, "/operation") == "Apply");
        let Some(applied) = applied else {
            panic!(
                "{} has no Apply entry of kubectl: {entries:#?}",
                identity(obj)
            );
        };
        assert!(
            applied
                .pointer("/fieldsV1/f:metadata/f:labels/f:app.kubernetes.io~1part-of")
                .is_some(),
            "{}'s applied fields lack its label: {applied:#}",
            identity(obj)
        );
    }

    wait_deployment_settled(kubectl, 1);
    assert_no_diffs(kubectl, "of the applied directory");

    // Re-applying what is applied writes nothing.
    let before = resource_versions(kubectl);
    assert_applied(
        kubectl,
        &kubectl.ok(&["apply", "-k", DIR, "--server-side"]),
        &everything,
    );
    let after = resource_versions(kubectl);
    assert_eq!(
        before,
        after,
        "{} re-applying an unchanged directory changed resourceVersions",
        kubectl.label()
    );

    // A change shows exactly that change, with exit 1, and writes nothing.
    write_kustomization(skiff, Revision::Changed);
    let changed = kubectl.run(&["diff", "-k", DIR]);
    assert_eq!(
        changed.status.code(),
        Some(1),
        "{} diff of a changed directory should exit 1:\nstdout:\n{}\nstderr:\n{}",
        kubectl.label(),
        changed.stdout,
        changed.stderr
    );
    assert_eq!(
        diffed_files(&changed.stdout),
        [
            "apps.v1.Deployment.shop.web",
            "shop.example.com.v1.Gadget.shop.alpha",
            "v1.ConfigMap.shop.shop-settings",
        ],
        "{} diff should compare exactly the changed objects:\n{}",
        kubectl.label(),
        changed.stdout
    );
    let mut expected = vec![
        // The Deployment: its generation moves with its spec.
        "-  generation: 1",
        "+  generation: 2",
        "-  replicas: 1",
        "+  replicas: 2",
        // The custom object: likewise.
        "-  generation: 1",
        "+  generation: 2",
        "-  color: red",
        "+  color: blue",
        // The ConfigMap has no generation.
        "-  mode: fast",
        "+  mode: slow",
    ];
    expected.sort();
    assert_eq!(
        changed_lines(&changed.stdout),
        expected,
        "{} diff should show exactly the changes:\n{}",
        kubectl.label(),
        changed.stdout
    );
    assert_eq!(
        resource_versions(kubectl),
        after,
        "{} diffing wrote something",
        kubectl.label()
    );

    // Applied, the directory diffs empty again, and the changes are live.
    assert_applied(
        kubectl,
        &kubectl.ok(&["apply", "-k", DIR, "--server-side"]),
        &everything,
    );
    wait_deployment_settled(kubectl, 2);
    assert_no_diffs(kubectl, "after re-applying the change");
    let live = |args: &[&str], pointer: &str| str_at(&kubectl.json(args), pointer);
    assert_eq!(
        kubectl
            .json(&["get", "deployment/web", "-n", "shop"])
            .pointer("/spec/replicas")
            .and_then(Value::as_i64),
        Some(2)
    );
    assert_eq!(
        live(
            &["get", "configmap/shop-settings", "-n", "shop"],
            "/data/mode"
        ),
        "slow"
    );
    assert_eq!(
        live(&["get", "gadget/alpha", "-n", "shop"], "/spec/color"),
        "blue"
    );

    // A new generated ConfigMap: diff shows it whole, as a dry-run create answers it, and the
    // Deployment following its new name.
    let old_env = live(&["get", "deployment/web", "-n", "shop"], ENV_FROM);
    write_kustomization(skiff, Revision::Regenerated);
    let regenerated = kubectl.run(&["diff", "-k", DIR]);
    assert_eq!(
        regenerated.status.code(),
        Some(1),
        "{} diff of a regenerated ConfigMap should exit 1:\nstdout:\n{}\nstderr:\n{}",
        kubectl.label(),
        regenerated.stdout,
        regenerated.stderr
    );
    let files = diffed_files(&regenerated.stdout);
    let new_env = files
        .iter()
        .find_map(|f| f.strip_prefix("v1.ConfigMap.shop."))
        .unwrap_or_default()
        .to_string();
    assert!(
        files.len() == 2
            && files[0] == "apps.v1.Deployment.shop.web"
            && is_generated_name(&new_env, "shop-env")
            && new_env != old_env,
        "{} diff should compare the Deployment and a new generated ConfigMap, not {old_env}:\n{}",
        kubectl.label(),
        regenerated.stdout
    );
    let lines = changed_lines(&regenerated.stdout);
    for wanted in [
        "-  generation: 2".to_string(),
        "+  generation: 3".to_string(),
        format!("-            name: {old_env}"),
        format!("+            name: {new_env}"),
        "+kind: ConfigMap".to_string(),
        "+  MODE: slow".to_string(),
        format!("+  name: {new_env}"),
        "+  namespace: shop".to_string(),
    ] {
        assert!(
            lines.contains(&wanted),
            "{} diff lacks {wanted:?}:\n{}",
            kubectl.label(),
            regenerated.stdout
        );
    }
    assert!(
        !lines
            .iter()
            .any(|l| l.starts_with('-') && !l.contains("generation") && !l.contains("name:")),
        "{} diff removes more than the old generation and name:\n{}",
        kubectl.label(),
        regenerated.stdout
    );
    assert!(
        !regenerated.stdout.contains("resourceVersion: \"\""),
        "{} a dry-run create answers no empty resourceVersion:\n{}",
        kubectl.label(),
        regenerated.stdout
    );
    assert_applied(
        kubectl,
        &kubectl.ok(&["apply", "-k", DIR, "--server-side"]),
        &everything,
    );
    assert_eq!(
        live(&["get", "deployment/web", "-n", "shop"], ENV_FROM),
        new_env
    );
    // The rollout stalls at one surge pod beside the two old ones: no node runs them.
    wait_deployment_settled(kubectl, 3);
    assert_no_diffs(kubectl, "after re-applying the regenerated ConfigMap");
}

/// Where the Deployment names its environment's ConfigMap.
const ENV_FROM: &str = "/spec/template/spec/containers/0/envFrom/0/configMapRef/name";

#[test]
fn a_kustomization_applies_diffs_empty_and_shows_exactly_a_change_with_kubectl_1_27_1_33_and_the_path_one(
) {
    let mut binaries = vec![None];
    for binary in versioned_kubectls() {
        let name = binary
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        if name == "kubectl.1.27" || name == "kubectl.1.33" {
            binaries.push(Some(binary));
        }
    }
    assert!(
        binaries.len() == 3,
        "kubectl.1.27 and kubectl.1.33 must be installed beside the kubectl on the PATH"
    );
    for binary in binaries {
        // A fresh server each: the first apply must meet a cluster without the definition.
        let skiff = Skiff::start();
        let kubectl = match &binary {
            Some(path) => skiff.kubectl_at(path),
            None => skiff.kubectl(),
        };
        gitops_flow(&skiff, &kubectl);
    }
}

/// `kubectl api-resources` rows (NAME, SHORTNAMES, APIVERSION, NAMESPACED, KIND) of the kinds
/// the API machinery issue names and the GitOps flow applies, as Kubernetes 1.36 lists them; an
/// empty SHORTNAMES cell is left out, as the printed table leaves it blank.
const ISSUE_KINDS: &[&[&str]] = &[
    &["configmaps", "cm", "v1", "true", "ConfigMap"],
    &["events", "ev", "v1", "true", "Event"],
    &["limitranges", "limits", "v1", "true", "LimitRange"],
    &["namespaces", "ns", "v1", "false", "Namespace"],
    &["podtemplates", "v1", "true", "PodTemplate"],
    &[
        "replicationcontrollers",
        "rc",
        "v1",
        "true",
        "ReplicationController",
    ],
    &["resourcequotas", "quota", "v1", "true", "ResourceQuota"],
    &["serviceaccounts", "sa", "v1", "true", "ServiceAccount"],
    &["services", "svc", "v1", "true", "Service"],
    &[
        "mutatingwebhookconfigurations",
        "admissionregistration.k8s.io/v1",
        "false",
        "MutatingWebhookConfiguration",
    ],
    &[
        "validatingwebhookconfigurations",
        "admissionregistration.k8s.io/v1",
        "false",
        "ValidatingWebhookConfiguration",
    ],
    &[
        "customresourcedefinitions",
        "crd,crds",
        "apiextensions.k8s.io/v1",
        "false",
        "CustomResourceDefinition",
    ],
    &["deployments", "deploy", "apps/v1", "true", "Deployment"],
    &[
        "ingressclasses",
        "networking.k8s.io/v1",
        "false",
        "IngressClass",
    ],
    &[
        "ingresses",
        "ing",
        "networking.k8s.io/v1",
        "true",
        "Ingress",
    ],
    &[
        "networkpolicies",
        "netpol",
        "networking.k8s.io/v1",
        "true",
        "NetworkPolicy",
    ],
    &["runtimeclasses", "node.k8s.io/v1", "false", "RuntimeClass"],
    &[
        "rolebindings",
        "rbac.authorization.k8s.io/v1",
        "true",
        "RoleBinding",
    ],
    &["roles", "rbac.authorization.k8s.io/v1", "true", "Role"],
    &[
        "priorityclasses",
        "pc",
        "scheduling.k8s.io/v1",
        "false",
        "PriorityClass",
    ],
    &[
        "validatingadmissionpolicies",
        "admissionregistration.k8s.io/v1",
        "false",
        "ValidatingAdmissionPolicy",
    ],
    &[
        "validatingadmissionpolicybindings",
        "admissionregistration.k8s.io/v1",
        "false",
        "ValidatingAdmissionPolicyBinding",
    ],
    &[
        "apiservices",
        "apiregistration.k8s.io/v1",
        "false",
        "APIService",
    ],
    &["events", "ev", "events.k8s.io/v1", "true", "Event"],
    &[
        "flowschemas",
        "flowcontrol.apiserver.k8s.io/v1",
        "false",
        "FlowSchema",
    ],
    &[
        "prioritylevelconfigurations",
        "flowcontrol.apiserver.k8s.io/v1",
        "false",
        "PriorityLevelConfiguration",
    ],
];

/// Fails unless every expected row is printed exactly once, cell for cell.
fn assert_rows_listed(kubectl: &Kubectl, expected: &[&[&str]]) {
    let listed = kubectl.ok(&["api-resources"]);
    let header = listed.lines().next().map(cells).unwrap_or_default();
    assert_eq!(
        header,
        ["NAME", "SHORTNAMES", "APIVERSION", "NAMESPACED", "KIND"],
        "{}",
        kubectl.label()
    );
    let rows: Vec<Vec<&str>> = listed.lines().skip(1).map(cells).collect();
    for want in expected {
        let found = rows.iter().filter(|row| row.as_slice() == *want).count();
        assert_eq!(
            found,
            1,
            "{} api-resources should list {want:?} once:\n{listed}",
            kubectl.label()
        );
    }
}

#[test]
fn api_resources_lists_every_kind_of_the_api_machinery_issue_as_kubernetes_does() {
    let skiff = Skiff::start();
    let mut clients = vec![skiff.kubectl()];
    clients.extend(versioned_kubectls().iter().map(|b| skiff.kubectl_at(b)));
    for kubectl in &clients {
        assert_rows_listed(kubectl, ISSUE_KINDS);
    }
}
