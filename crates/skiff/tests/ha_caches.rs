//! Two `skiff up` servers on one real etcd (Debian's `etcd-server`) see each other's writes in
//! what they cache: a RoleBinding granted (and then revoked) through server B applies to
//! requests through server A within two seconds, a ResourceQuota created through B limits
//! writes through A, a CustomResourceDefinition created (and deleted) through B is served (and
//! no longer served) by A, and a webhook configuration and an admission policy created through
//! B apply to writes through A. Each server had already read (and cached) the kind before the other one wrote
//! it.
//!
//! Run with `cargo test -p skiff --test ha_caches`. Needs `kubectl` and `etcd` on the PATH.

mod support;

use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use skiff_store::test_etcd::TestEtcd;
use support::{wait_for, Skiff, DEADLINE};

/// How long a write through one server may take to apply to requests through the other.
const PROPAGATION: Duration = Duration::from_secs(2);

fn server_on(etcd: &TestEtcd) -> Skiff {
    Skiff::start_with(&[
        "--no-node",
        "--no-proxy",
        "--simulated-nodes",
        "0",
        "--datastore-endpoint",
        &etcd.endpoint(),
    ])
}

/// The admin token, shared by every server of the datastore.
fn admin_token(server: &Skiff) -> String {
    std::fs::read_to_string(server.data_dir().join("token"))
        .expect("the admin token")
        .trim()
        .to_string()
}

/// The HTTP status of listing ConfigMaps in `default` through `server` as user `jane`.
fn jane_lists_configmaps(server: &Skiff, token: &str) -> u16 {
    server
        .request_with(
            "GET",
            "/api/v1/namespaces/default/configmaps",
            Some(token),
            &["Impersonate-User: jane".to_string()],
            b"",
        )
        .status
}

/// Polls `probe` until it holds, failing the test unless it does within [`PROPAGATION`];
/// returns how long it took.
fn within_propagation(what: &str, mut probe: impl FnMut() -> bool) -> Duration {
    let started = Instant::now();
    loop {
        if probe() {
            return started.elapsed();
        }
        let waited = started.elapsed();
        assert!(
            waited < PROPAGATION,
            "not within {PROPAGATION:?}: {what} (waited {waited:?})"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn rbac_and_quotas_written_through_one_server_apply_on_the_other() {
    let etcd = TestEtcd::start();
    let a = server_on(&etcd);
    let b = server_on(&etcd);
    let token = admin_token(&a);
    assert_eq!(token, admin_token(&b), "the servers share the admin token");

    // A decides (and caches) that jane may not list ConfigMaps.
    assert_eq!(jane_lists_configmaps(&a, &token), 403);
    assert_eq!(jane_lists_configmaps(&a, &token), 403);

    b.kubectl().ok(&[
        "create",
        "rolebinding",
        "jane-view",
        "--clusterrole=view",
        "--user=jane",
        "-n",
        "default",
    ]);
    let took = within_propagation("jane is allowed on A once B granted it", || {
        jane_lists_configmaps(&a, &token) == 200
    });
    eprintln!("the binding applied on A after {took:?}");

    b.kubectl()
        .ok(&["delete", "rolebinding", "jane-view", "-n", "default"]);
    within_propagation("jane is denied on A once B revoked it", || {
        jane_lists_configmaps(&a, &token) == 403
    });

    // A admits a ConfigMap in `limited` with no quota there, caching that it has none.
    let kubectl_a = a.kubectl();
    kubectl_a.ok(&["create", "namespace", "limited"]);
    kubectl_a.ok(&["create", "configmap", "first", "-n", "limited"]);
    b.kubectl().ok(&[
        "create",
        "quota",
        "two-configmaps",
        "--hard=count/configmaps=2",
        "-n",
        "limited",
    ]);
    wait_for("the quota's usage to be counted", DEADLINE, || {
        let used = b.kubectl().ok(&[
            "get",
            "quota",
            "two-configmaps",
            "-n",
            "limited",
            "-o",
            "jsonpath={.status.used.count/configmaps}",
        ]);
        (!used.is_empty()).then_some(())
    });
    // The namespace's `kube-root-ca.crt` may count too; fill the quota through A.
    let mut created = 0;
    let refusal = loop {
        let name = format!("more-{created}");
        let out = kubectl_a.run(&["create", "configmap", &name, "-n", "limited"]);
        if !out.success() {
            break out.stderr;
        }
        created += 1;
        assert!(
            created <= 2,
            "A admitted {created} ConfigMaps past a quota of 2 created through B"
        );
    };
    assert!(
        refusal.contains("exceeded quota: two-configmaps"),
        "A refuses with the quota created through B: {refusal}"
    );
}

const DEFINITION: &str = "\
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: gadgets.example.com
spec:
  group: example.com
  scope: Namespaced
  names:
    plural: gadgets
    singular: gadget
    kind: Gadget
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              size:
                type: integer
";

const GADGET: &str = "\
apiVersion: example.com/v1
kind: Gadget
metadata:
  name: small
spec:
  size: 1
";

/// A validating webhook on a loopback port that accepts connections and answers nothing an
/// API server can use, so that under `failurePolicy: Fail` every write it is called for is
/// refused; counts the connections.
struct SilentWebhook {
    port: u16,
    connections: Arc<AtomicUsize>,
}

impl SilentWebhook {
    fn start() -> SilentWebhook {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback port");
        let port = listener.local_addr().expect("its address").port();
        let connections = Arc::new(AtomicUsize::new(0));
        let counted = connections.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                // Closing at once fails the TLS handshake.
                if stream.is_ok() {
                    counted.fetch_add(1, Ordering::SeqCst);
                }
            }
        });
        SilentWebhook { port, connections }
    }

    fn configuration(&self) -> String {
        format!(
            "apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingWebhookConfiguration
metadata:
  name: guard
webhooks:
  - name: guard.skiff.test
    clientConfig:
      url: https://127.0.0.1:{port}/validate
    rules:
    - operations: [\"CREATE\"]
      apiGroups: [\"\"]
      apiVersions: [\"v1\"]
      resources: [\"configmaps\"]
    failurePolicy: Fail
    sideEffects: None
    admissionReviewVersions: [\"v1\"]
    timeoutSeconds: 5
",
            port = self.port
        )
    }
}

#[test]
fn definitions_and_webhook_configurations_written_through_one_server_apply_on_the_other() {
    let etcd = TestEtcd::start();
    let a = server_on(&etcd);
    let b = server_on(&etcd);
    let (kubectl_a, kubectl_b) = (a.kubectl(), b.kubectl());

    // A definition created through B is served by A.
    let definition = b.write_file("gadgets.yaml", DEFINITION);
    kubectl_b.ok(&["apply", "-f", &definition]);
    kubectl_b.ok(&[
        "wait",
        "--for=condition=Established",
        "crd/gadgets.example.com",
        "--timeout=60s",
    ]);
    let gadget = a.write_file("gadget.yaml", GADGET);
    wait_for("A to serve gadgets", DEADLINE, || {
        kubectl_a
            .run(&["apply", "-f", &gadget])
            .success()
            .then_some(())
    });
    assert_eq!(
        kubectl_b.ok(&["get", "gadget", "small", "-o", "jsonpath={.spec.size}"]),
        "1",
        "the gadget created through A is read through B"
    );
    let resources = kubectl_a.ok(&["api-resources", "--api-group=example.com", "-o", "name"]);
    assert_eq!(
        resources, "gadgets.example.com\n",
        "A's discovery lists gadgets"
    );

    // A admits (and caches) writes with no webhook configured; then B configures one.
    kubectl_a.ok(&["create", "configmap", "before"]);
    let webhook = SilentWebhook::start();
    let configuration = b.write_file("guard.yaml", &webhook.configuration());
    kubectl_b.ok(&["apply", "-f", &configuration]);
    let token = admin_token(&a);
    let mut attempt = 0;
    let mut refusal = String::new();
    within_propagation("A calls the webhook configured through B", || {
        attempt += 1;
        let body = format!(
            "{{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{{\"name\":\"after-{attempt}\"}}}}"
        );
        let answer = a.request_with_body(
            "POST",
            "/api/v1/namespaces/default/configmaps",
            Some(&token),
            Some(("application/json", body.as_bytes())),
        );
        refusal = answer.body;
        answer.status != 201
    });
    let status: serde_json::Value = serde_json::from_str(&refusal).expect("a Status");
    assert!(
        status["message"]
            .as_str()
            .is_some_and(|m| m.contains("failed calling webhook \"guard.skiff.test\"")),
        "A refuses as the webhook failed: {refusal}"
    );
    assert!(
        webhook.connections.load(Ordering::SeqCst) > 0,
        "A connected to the webhook"
    );

    // The definition deleted through B (its objects first) stops being served by A.
    kubectl_b.ok(&["delete", "crd", "gadgets.example.com", "--timeout=60s"]);
    wait_for("A to stop serving gadgets", DEADLINE, || {
        let answer = a.request(
            "GET",
            "/apis/example.com/v1/namespaces/default/gadgets",
            Some(&token),
        );
        (answer.status == 404).then_some(())
    });
}

const POLICY: &str = "apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata:
  name: names.skiff.test
spec:
  failurePolicy: Fail
  matchConstraints:
    resourceRules:
    - apiGroups:   [\"\"]
      apiVersions: [\"v1\"]
      operations:  [\"CREATE\"]
      resources:   [\"configmaps\"]
  validations:
    - expression: \"object.metadata.name.startsWith('ok-')\"
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata:
  name: names.skiff.test
spec:
  policyName: names.skiff.test
  validationActions: [Deny]
";

#[test]
fn admission_policies_written_through_one_server_apply_on_the_other() {
    let etcd = TestEtcd::start();
    let a = server_on(&etcd);
    let b = server_on(&etcd);
    let token = admin_token(&a);
    let create_on_a = |name: &str| {
        let body = format!(
            "{{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{{\"name\":\"{name}\"}}}}"
        );
        a.request_with_body(
            "POST",
            "/api/v1/namespaces/default/configmaps",
            Some(&token),
            Some(("application/json", body.as_bytes())),
        )
    };
    // A admits (and caches) writes with no policy; then B binds one.
    assert_eq!(create_on_a("before").status, 201);
    let policy = b.write_file("policy.yaml", POLICY);
    b.kubectl().ok(&["apply", "-f", &policy]);
    let mut attempt = 0;
    let mut refusal = String::new();
    within_propagation("A enforces the policy bound through B", || {
        attempt += 1;
        let answer = create_on_a(&format!("other-{attempt}"));
        refusal = answer.body;
        answer.status != 201
    });
    let status: serde_json::Value = serde_json::from_str(&refusal).expect("a Status");
    assert!(
        status["message"].as_str().is_some_and(|m| m.contains(
            "ValidatingAdmissionPolicy 'names.skiff.test' with binding 'names.skiff.test' denied request"
        )),
        "A refuses with the policy bound through B: {refusal}"
    );
    assert_eq!(create_on_a("ok-allowed").status, 201);
}
