//! ValidatingAdmissionPolicies end to end, with the real `kubectl`: the Kubernetes
//! documentation's example (Deployments of more than 5 replicas refused in namespaces labelled
//! `environment: test`, with Kubernetes' message), a policy parameterized by a ConfigMap, a
//! `Warn` binding whose failures show as `Warning:` lines, a policy whose expression has a
//! type error refused when it is created, and `authorizer` checks deciding for one
//! ServiceAccount and against another by their RoleBindings.
//!
//! Run with `cargo test -p skiff --test admission_policies`. Needs `kubectl` on the PATH.

mod support;

use support::Skiff;

const DOCS_EXAMPLE: &str = "apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata:
  name: demo-policy.example.com
spec:
  failurePolicy: Fail
  matchConstraints:
    resourceRules:
    - apiGroups:   [\"apps\"]
      apiVersions: [\"v1\"]
      operations:  [\"CREATE\", \"UPDATE\"]
      resources:   [\"deployments\"]
  validations:
    - expression: \"object.spec.replicas <= 5\"
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata:
  name: demo-binding-test.example.com
spec:
  policyName: demo-policy.example.com
  validationActions: [Deny]
  matchResources:
    namespaceSelector:
      matchLabels:
        environment: test
";

fn deployment(name: &str, replicas: u32) -> String {
    format!(
        "apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
spec:
  replicas: {replicas}
  selector:
    matchLabels: {{app: {name}}}
  template:
    metadata:
      labels: {{app: {name}}}
    spec:
      containers:
      - name: web
        image: nginx
"
    )
}

#[test]
fn the_documentation_example_refuses_six_replicas_only_in_labelled_namespaces() {
    let skiff = Skiff::start();
    let kubectl = skiff.kubectl();
    let file = skiff.write_file("policy.yaml", DOCS_EXAMPLE);
    kubectl.ok(&["apply", "-f", &file]);

    let resources = kubectl.ok(&["api-resources", "--api-group=admissionregistration.k8s.io"]);
    for row in [
        [
            "validatingadmissionpolicies",
            "admissionregistration.k8s.io/v1",
            "false",
            "ValidatingAdmissionPolicy",
        ],
        [
            "validatingadmissionpolicybindings",
            "admissionregistration.k8s.io/v1",
            "false",
            "ValidatingAdmissionPolicyBinding",
        ],
    ] {
        assert!(
            resources.lines().any(|l| support::cells(l) == row),
            "no row {row:?} in:\n{resources}"
        );
    }
    let policies = kubectl.ok(&["get", "validatingadmissionpolicies"]);
    let rows: Vec<Vec<&str>> = policies.lines().map(support::cells).collect();
    assert_eq!(
        rows[0],
        ["NAME", "VALIDATIONS", "PARAMKIND", "AGE"],
        "{policies}"
    );
    assert_eq!(
        rows[1][..3],
        ["demo-policy.example.com", "1", "<unset>"],
        "{policies}"
    );
    let bindings = kubectl.ok(&["get", "validatingadmissionpolicybindings"]);
    let rows: Vec<Vec<&str>> = bindings.lines().map(support::cells).collect();
    assert_eq!(
        rows[0],
        ["NAME", "POLICYNAME", "PARAMREF", "AGE"],
        "{bindings}"
    );
    assert_eq!(
        rows[1][..3],
        [
            "demo-binding-test.example.com",
            "demo-policy.example.com",
            "<unset>"
        ],
        "{bindings}"
    );
    let stored = kubectl.json(&[
        "get",
        "validatingadmissionpolicy",
        "demo-policy.example.com",
    ]);
    assert_eq!(
        stored.pointer("/spec/matchConstraints/matchPolicy"),
        Some(&serde_json::json!("Equivalent"))
    );

    kubectl.ok(&["create", "namespace", "test"]);
    kubectl.ok(&["label", "namespace", "test", "environment=test"]);
    let refused = kubectl.fails(&[
        "create",
        "deployment",
        "web",
        "--image=nginx",
        "--replicas=6",
        "-n",
        "test",
    ]);
    assert_eq!(
        refused.trim(),
        "error: failed to create deployment: deployments.apps \"web\" is forbidden: ValidatingAdmissionPolicy 'demo-policy.example.com' with binding 'demo-binding-test.example.com' denied request: failed expression: object.spec.replicas <= 5"
    );
    // The refusal is an Invalid (422) status, which kubectl prints as Kubernetes' field error.
    let six = skiff.write_file("six.yaml", &deployment("six", 6));
    let refused = kubectl.fails(&["apply", "-n", "test", "-f", &six]);
    assert!(
        refused.contains("The deployments \"six\" is invalid: : ValidatingAdmissionPolicy 'demo-policy.example.com' with binding 'demo-binding-test.example.com' denied request: failed expression: object.spec.replicas <= 5"),
        "{refused}"
    );
    kubectl.ok(&[
        "create",
        "deployment",
        "web",
        "--image=nginx",
        "--replicas=5",
        "-n",
        "test",
    ]);
    // Updates are checked too.
    let patched = kubectl.fails(&[
        "patch",
        "deployment",
        "web",
        "-n",
        "test",
        "--type=merge",
        "-p",
        "{\"spec\":{\"replicas\":7}}",
    ]);
    assert!(
        patched.contains("denied request: failed expression: object.spec.replicas <= 5"),
        "{patched}"
    );
    // The `scale` subresource is another resource to the rules (`deployments/scale`), which
    // this policy does not name, so Kubernetes lets it through.
    kubectl.ok(&["scale", "deployment", "web", "--replicas=7", "-n", "test"]);

    kubectl.ok(&["create", "namespace", "prod"]);
    kubectl.ok(&[
        "create",
        "deployment",
        "web",
        "--image=nginx",
        "--replicas=6",
        "-n",
        "prod",
    ]);
}

#[test]
fn a_config_map_parameterizes_a_policy_and_its_absence_follows_the_binding() {
    let skiff = Skiff::start();
    let kubectl = skiff.kubectl();
    let manifest = "apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata:
  name: replica-limit
spec:
  paramKind:
    apiVersion: v1
    kind: ConfigMap
  matchConstraints:
    resourceRules:
    - apiGroups:   [\"apps\"]
      apiVersions: [\"v1\"]
      operations:  [\"CREATE\", \"UPDATE\"]
      resources:   [\"deployments\"]
  variables:
  - name: limit
    expression: \"int(params.data.maxReplicas)\"
  validations:
  - expression: \"object.spec.replicas <= variables.limit\"
    messageExpression: \"'replicas must be at most ' + string(variables.limit)\"
    reason: Forbidden
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata:
  name: replica-limit-default
spec:
  policyName: replica-limit
  validationActions: [Deny]
  paramRef:
    name: limits
    namespace: default
    parameterNotFoundAction: Deny
  matchResources:
    namespaceSelector:
      matchLabels:
        kubernetes.io/metadata.name: default
";
    let file = skiff.write_file("params.yaml", manifest);
    kubectl.ok(&["apply", "-f", &file]);
    let policies = kubectl.ok(&["get", "validatingadmissionpolicies"]);
    assert!(
        policies
            .lines()
            .any(|l| support::cells(l)[..3] == ["replica-limit", "1", "v1/ConfigMap"]),
        "{policies}"
    );
    let bindings = kubectl.ok(&["get", "validatingadmissionpolicybindings"]);
    assert!(
        bindings.lines().any(|l| support::cells(l)[..3]
            == ["replica-limit-default", "replica-limit", "default/limits"]),
        "{bindings}"
    );

    kubectl.ok(&[
        "create",
        "configmap",
        "limits",
        "--from-literal=maxReplicas=3",
    ]);
    let refused = kubectl.fails(&[
        "create",
        "deployment",
        "big",
        "--image=nginx",
        "--replicas=4",
    ]);
    assert_eq!(
        refused.trim(),
        "error: failed to create deployment: deployments.apps \"big\" is forbidden: ValidatingAdmissionPolicy 'replica-limit' with binding 'replica-limit-default' denied request: replicas must be at most 3"
    );
    kubectl.ok(&[
        "create",
        "deployment",
        "small",
        "--image=nginx",
        "--replicas=3",
    ]);

    // Without its parameter the binding refuses, as `parameterNotFoundAction: Deny` says.
    kubectl.ok(&["delete", "configmap", "limits"]);
    let refused = kubectl.fails(&[
        "create",
        "deployment",
        "other",
        "--image=nginx",
        "--replicas=1",
    ]);
    assert_eq!(
        refused.trim(),
        "error: failed to create deployment: deployments.apps \"other\" is forbidden: ValidatingAdmissionPolicy 'replica-limit' with binding 'replica-limit-default' denied request: failed to configure binding: no params found for policy binding with `Deny` parameterNotFoundAction"
    );
}

#[test]
fn a_warn_binding_lets_the_write_through_with_a_warning() {
    let skiff = Skiff::start();
    let kubectl = skiff.kubectl();
    let manifest = "apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata:
  name: require-owner
spec:
  matchConstraints:
    resourceRules:
    - apiGroups:   [\"\"]
      apiVersions: [\"v1\"]
      operations:  [\"CREATE\"]
      resources:   [\"configmaps\"]
  matchConditions:
  - name: not-the-root-ca
    expression: \"object.metadata.name != 'kube-root-ca.crt'\"
  validations:
  - expression: \"has(object.metadata.labels) && 'owner' in object.metadata.labels\"
    message: configmaps must carry an owner label
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata:
  name: require-owner-warn
spec:
  policyName: require-owner
  validationActions: [Warn, Audit]
";
    let file = skiff.write_file("warn.yaml", manifest);
    kubectl.ok(&["apply", "-f", &file]);
    let created = kubectl.run(&["create", "configmap", "unowned", "--from-literal=a=b"]);
    assert!(created.success(), "{}", created.stderr);
    assert!(
        created.stderr.contains(
            "Warning: Validation failed for ValidatingAdmissionPolicy 'require-owner' with binding 'require-owner-warn': configmaps must carry an owner label"
        ),
        "stderr: {}",
        created.stderr
    );
    kubectl.ok(&["get", "configmap", "unowned"]);
    let owned = skiff.write_file(
        "owned.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: owned\n  labels:\n    owner: team-a\n",
    );
    let created = kubectl.run(&["create", "-f", &owned]);
    assert!(created.success(), "{}", created.stderr);
    assert!(!created.stderr.contains("Warning:"), "{}", created.stderr);
}

#[test]
fn a_policy_with_a_type_error_is_refused_on_create() {
    let skiff = Skiff::start();
    let kubectl = skiff.kubectl();
    let manifest = "apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata:
  name: broken
spec:
  matchConstraints:
    resourceRules:
    - apiGroups:   [\"apps\"]
      apiVersions: [\"v1\"]
      operations:  [\"CREATE\"]
      resources:   [\"deployments\"]
  validations:
  - expression: \"object.spec.replicas > 1 && 'yes'\"
";
    let file = skiff.write_file("broken.yaml", manifest);
    let refused = kubectl.fails(&["create", "-f", &file]);
    assert!(
        refused.contains("The ValidatingAdmissionPolicy \"broken\" is invalid: spec.validations[0].expression: Invalid value: \"object.spec.replicas > 1 && 'yes'\": compilation failed: ERROR: <input>:1:26: found no matching overload for '_&&_' applied to '(bool, string)'"),
        "{refused}"
    );
    let missing = kubectl.fails(&["get", "validatingadmissionpolicy", "broken"]);
    assert!(missing.contains("NotFound"), "{missing}");
}

const UPDATERS_ONLY: &str = "apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata:
  name: configmap-updaters-only
spec:
  matchConstraints:
    resourceRules:
    - apiGroups:   [\"\"]
      apiVersions: [\"v1\"]
      operations:  [\"CREATE\"]
      resources:   [\"configmaps\"]
  validations:
  - expression: \"authorizer.requestResource.check('create').allowed()\"
  - expression: \"authorizer.group('').resource('configmaps').namespace(object.metadata.namespace).check('update').allowed()\"
  - expression: \"authorizer.serviceAccount('team', 'editor').group('').resource('configmaps').namespace('team').check('update').allowed()\"
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata:
  name: configmap-updaters-only-team
spec:
  policyName: configmap-updaters-only
  validationActions: [Deny]
  matchResources:
    namespaceSelector:
      matchLabels:
        kubernetes.io/metadata.name: team
";

#[test]
fn an_authorizer_check_lets_one_service_account_through_and_refuses_another() {
    let skiff = Skiff::start();
    let kubectl = skiff.kubectl();
    kubectl.ok(&["create", "namespace", "team"]);
    for account in ["editor", "creator"] {
        kubectl.ok(&["create", "serviceaccount", account, "-n", "team"]);
    }
    kubectl.ok(&[
        "create",
        "role",
        "configmap-editor",
        "--verb=create,update",
        "--resource=configmaps",
        "-n",
        "team",
    ]);
    kubectl.ok(&[
        "create",
        "role",
        "configmap-creator",
        "--verb=create",
        "--resource=configmaps",
        "-n",
        "team",
    ]);
    kubectl.ok(&[
        "create",
        "rolebinding",
        "editor",
        "--role=configmap-editor",
        "--serviceaccount=team:editor",
        "-n",
        "team",
    ]);
    kubectl.ok(&[
        "create",
        "rolebinding",
        "creator",
        "--role=configmap-creator",
        "--serviceaccount=team:creator",
        "-n",
        "team",
    ]);
    let file = skiff.write_file("updaters.yaml", UPDATERS_ONLY);
    kubectl.ok(&["apply", "-f", &file]);

    kubectl.ok(&[
        "create",
        "configmap",
        "allowed",
        "--from-literal=a=b",
        "-n",
        "team",
        "--as=system:serviceaccount:team:editor",
    ]);
    let refused = kubectl.fails(&[
        "create",
        "configmap",
        "blocked",
        "--from-literal=a=b",
        "-n",
        "team",
        "--as=system:serviceaccount:team:creator",
    ]);
    assert!(
        refused.contains("configmaps \"blocked\" is forbidden: ValidatingAdmissionPolicy 'configmap-updaters-only' with binding 'configmap-updaters-only-team' denied request: failed expression: authorizer.group('').resource('configmaps').namespace(object.metadata.namespace).check('update').allowed()"),
        "{refused}"
    );
    let missing = kubectl.fails(&["get", "configmap", "blocked", "-n", "team"]);
    assert!(missing.contains("NotFound"), "{missing}");
    kubectl.ok(&["get", "configmap", "allowed", "-n", "team"]);

    // Taking the editor's update right away refuses it too, through the
    // `serviceAccount('team', 'editor')` check as well as its own.
    kubectl.ok(&["delete", "rolebinding", "editor", "-n", "team"]);
    kubectl.ok(&[
        "create",
        "rolebinding",
        "editor-creates",
        "--role=configmap-creator",
        "--serviceaccount=team:editor",
        "-n",
        "team",
    ]);
    let refused = kubectl.fails(&[
        "create",
        "configmap",
        "later",
        "--from-literal=a=b",
        "-n",
        "team",
        "--as=system:serviceaccount:team:editor",
    ]);
    assert!(
        refused.contains(
            "denied request: failed expression: authorizer.group('').resource('configmaps')"
        ),
        "{refused}"
    );
}

#[test]
fn a_wrong_authorizer_call_is_refused_on_create() {
    let skiff = Skiff::start();
    let kubectl = skiff.kubectl();
    let manifest = "apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata:
  name: wrong-check
spec:
  matchConstraints:
    resourceRules:
    - apiGroups:   [\"\"]
      apiVersions: [\"v1\"]
      operations:  [\"CREATE\"]
      resources:   [\"configmaps\"]
  validations:
  - expression: \"authorizer.group('').check('update').allowed()\"
";
    let file = skiff.write_file("wrong.yaml", manifest);
    let refused = kubectl.fails(&["create", "-f", &file]);
    assert!(
        refused.contains("The ValidatingAdmissionPolicy \"wrong-check\" is invalid: spec.validations[0].expression: Invalid value: \"authorizer.group('').check('update').allowed()\": compilation failed: ERROR: <input>:1:27: found no matching overload for 'check' applied to 'kubernetes.authorization.GroupCheck.(string)'"),
        "{refused}"
    );
}
