//! ServiceAccount tokens end to end with the real `kubectl`: the token volume admission adds to
//! pods and the node fills (token, `ca.crt`, `namespace`), what that token may do before and
//! after a RoleBinding, its refusal once its pod is gone; `kubectl create token` with a
//! duration, an audience, another ServiceAccount and a bound pod; TokenReview; tampered tokens;
//! `automountServiceAccountToken: false`; a missing ServiceAccount; tokens kept valid across a
//! restart; legacy token Secrets filled by the tokens controller.
//!
//! Run with `cargo test -p skiff --test service_accounts`. Needs `kubectl` on the PATH; the
//! pod test runs the test kit's shell image on the real node, and the official Python client
//! (`pip install kubernetes`) with its in-cluster configuration. Every wait polls a condition
//! against a deadline.

mod support;

use base64::Engine as _;
use serde_json::{json, Value};
use support::{wait_for, Kubectl, Skiff, DEADLINE};

/// Where every container finds its credentials.
const MOUNT: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// The official Python client listing pods with its in-cluster configuration.
const IN_CLUSTER_SCRIPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/python/in_cluster_list_pods.py"
);

/// A shell pod that stays up and stops at once when deleted.
const SHELL_POD: &str = "apiVersion: v1
kind: Pod
metadata:
  name: shell
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: sh
    image: 127.0.0.1:9/skiff-test/shell:1.36
    command: [\"sh\", \"-c\", \"trap 'exit 0' TERM; while true; do sleep 1; done\"]
";

/// The claims of a JWT, decoded without checking it.
fn claims_of(token: &str) -> Value {
    let payload = token
        .split('.')
        .nth(1)
        .unwrap_or_else(|| panic!("{token:?} is not a JWT"));
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap_or_else(|e| panic!("the JWT payload is not base64url: {e}"));
    serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("the JWT payload is not JSON: {e}"))
}

/// `kubectl auth whoami` with `token` instead of the kubeconfig's credentials.
fn whoami(kubectl: &Kubectl, token: &str) -> support::Outcome {
    kubectl.run(&["auth", "whoami", "--token", token])
}

/// The value cells of a `kubectl auth whoami` row named `attribute` (which may hold spaces,
/// as `Extra: authentication.kubernetes.io/pod-name` does).
fn whoami_row(output: &str, attribute: &str) -> Vec<String> {
    output
        .lines()
        .find_map(|line| {
            line.strip_prefix(attribute)
                .filter(|rest| rest.starts_with(char::is_whitespace))
        })
        .unwrap_or_else(|| panic!("no {attribute} row in:\n{output}"))
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

const UNAUTHORIZED: &str = "error: You must be logged in to the server (Unauthorized)\n";

/// Creates `review` (a TokenReview for `token`) and returns the answer.
fn token_review(skiff: &Skiff, kubectl: &Kubectl, token: &str, audiences: &[&str]) -> Value {
    let mut review = json!({
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenReview",
        "spec": {"token": token},
    });
    if !audiences.is_empty() {
        review["spec"]["audiences"] = json!(audiences);
    }
    let file = skiff.write_file("review.json", &review.to_string());
    serde_json::from_str(&kubectl.ok(&["create", "-f", &file, "-o", "json"]))
        .expect("a TokenReview")
}

#[test]
fn pods_get_a_token_volume_whose_token_speaks_for_their_service_account() {
    let skiff = Skiff::start_with_images(&[], &[support::images::shell()]);
    let kubectl = skiff.kubectl();
    // A Service in the namespace before the pod: its link variables reach the container.
    kubectl.ok(&[
        "create",
        "service",
        "clusterip",
        "web-front",
        "--tcp=80:8080",
    ]);
    let manifest = skiff.write_file("shell.yaml", SHELL_POD);
    kubectl.ok(&["apply", "-f", &manifest]);

    // Admission gave the pod its ServiceAccount and the projected volume, mounted read-only.
    let pod: Value = serde_json::from_str(&kubectl.ok(&["get", "pod", "shell", "-o", "json"]))
        .expect("pod JSON");
    assert_eq!(pod["spec"]["serviceAccountName"], "default");
    assert_eq!(pod["spec"]["serviceAccount"], "default");
    let volumes = pod["spec"]["volumes"].as_array().expect("volumes");
    assert_eq!(volumes.len(), 1, "{volumes:?}");
    let volume_name = volumes[0]["name"].as_str().expect("a name").to_string();
    let suffix = volume_name
        .strip_prefix("kube-api-access-")
        .unwrap_or_else(|| panic!("volume {volume_name} is not kube-api-access-*"));
    assert_eq!(suffix.len(), 5, "{volume_name}");
    assert!(
        suffix
            .bytes()
            .all(|b| b"bcdfghjklmnpqrstvwxz2456789".contains(&b)),
        "{volume_name}"
    );
    assert_eq!(
        volumes[0]["projected"],
        json!({
            "defaultMode": 420,
            "sources": [
                {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}},
            ],
        })
    );
    assert_eq!(
        pod["spec"]["containers"][0]["volumeMounts"],
        json!([{"name": volume_name, "readOnly": true, "mountPath": MOUNT}])
    );

    wait_for("pod shell to run", DEADLINE, || {
        let phase = kubectl.ok(&["get", "pod", "shell", "-o", "jsonpath={.status.phase}"]);
        (phase == "Running").then_some(())
    });
    let token = kubectl.ok(&["exec", "shell", "--", "cat", &format!("{MOUNT}/token")]);
    let namespace = kubectl.ok(&["exec", "shell", "--", "cat", &format!("{MOUNT}/namespace")]);
    assert_eq!(namespace, "default");
    let ca = kubectl.ok(&["exec", "shell", "--", "cat", &format!("{MOUNT}/ca.crt")]);
    let root_ca = kubectl.ok(&[
        "get",
        "configmap",
        "kube-root-ca.crt",
        "-o",
        "jsonpath={.data.ca\\.crt}",
    ]);
    assert!(ca.starts_with("-----BEGIN CERTIFICATE-----"), "{ca}");
    assert_eq!(ca, root_ca);
    let env = kubectl.ok(&["exec", "shell", "--", "env"]);
    for variable in [
        "KUBERNETES_SERVICE_HOST=",
        "KUBERNETES_SERVICE_PORT=",
        "KUBERNETES_PORT=tcp://",
        "WEB_FRONT_SERVICE_HOST=",
        "WEB_FRONT_SERVICE_PORT=80",
        "WEB_FRONT_PORT_80_TCP_PROTO=tcp",
    ] {
        assert!(
            env.lines().any(|l| l.starts_with(variable)),
            "no {variable} in:\n{env}"
        );
    }

    // The token is bound to the pod, for the API server, for 3607 seconds (extended to a
    // year with a `warnafter`, as kube-apiserver extends the kubelet's tokens).
    let claims = claims_of(&token);
    let pod_uid = pod["metadata"]["uid"].as_str().expect("uid");
    assert_eq!(claims["sub"], "system:serviceaccount:default:default");
    assert_eq!(
        claims["iss"],
        "https://kubernetes.default.svc.cluster.local"
    );
    assert_eq!(claims["kubernetes.io"]["pod"]["name"], "shell");
    assert_eq!(claims["kubernetes.io"]["pod"]["uid"], pod_uid);
    let issued = claims["iat"].as_i64().expect("iat");
    assert_eq!(
        claims["kubernetes.io"]["warnafter"]
            .as_i64()
            .expect("warnafter")
            - issued,
        3607
    );
    assert_eq!(
        claims["exp"].as_i64().expect("exp") - issued,
        365 * 24 * 3600
    );

    let me = whoami(&kubectl, &token);
    assert!(me.success(), "{}", me.stderr);
    assert_eq!(
        whoami_row(&me.stdout, "Username"),
        ["system:serviceaccount:default:default"]
    );
    assert_eq!(
        whoami_row(&me.stdout, "Groups"),
        [
            "[system:serviceaccounts",
            "system:serviceaccounts:default",
            "system:authenticated]"
        ]
    );
    assert_eq!(
        whoami_row(&me.stdout, "Extra: authentication.kubernetes.io/pod-name"),
        ["[shell]"]
    );
    assert_eq!(
        whoami_row(&me.stdout, "Extra: authentication.kubernetes.io/pod-uid"),
        [format!("[{pod_uid}]")]
    );

    // The official Python client's in-cluster configuration, given the pod's mounted files.
    // It is pointed at the server's own address: the `kubernetes` Service's cluster IP is
    // shared by every server on this machine, so it may reach another one.
    let credentials = skiff.file_path("serviceaccount");
    std::fs::create_dir_all(&credentials).expect("a credentials directory");
    for (name, contents) in [
        ("token", &token),
        ("ca.crt", &ca),
        ("namespace", &namespace),
    ] {
        std::fs::write(credentials.join(name), contents).expect("a credentials file");
    }
    let server = kubectl.ok(&[
        "config",
        "view",
        "-o",
        "jsonpath={.clusters[0].cluster.server}",
    ]);
    let (service_host, service_port) = server
        .strip_prefix("https://")
        .and_then(|a| a.rsplit_once(':'))
        .map(|(h, p)| (h.to_string(), p.to_string()))
        .unwrap_or_else(|| panic!("unexpected server address {server:?}"));
    let in_cluster = || {
        let out = std::process::Command::new("python3")
            .arg(IN_CLUSTER_SCRIPT)
            .arg(&credentials)
            .args([&service_host, &service_port])
            .output()
            .unwrap_or_else(|e| panic!("cannot run python3: {e}"));
        assert!(
            out.status.success(),
            "the in-cluster client failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert_eq!(
        in_cluster(),
        "HTTP 403 pods is forbidden: User \"system:serviceaccount:default:default\" cannot list resource \"pods\" in API group \"\" in the namespace \"default\"\n"
    );

    // What the ServiceAccount may do is RBAC's: nothing, then what `view` grants.
    let denied = kubectl.run(&["get", "pods", "--token", &token]);
    assert!(!denied.success());
    assert_eq!(
        denied.stderr,
        "Error from server (Forbidden): pods is forbidden: User \"system:serviceaccount:default:default\" cannot list resource \"pods\" in API group \"\" in the namespace \"default\"\n"
    );
    kubectl.ok(&[
        "create",
        "rolebinding",
        "default-view",
        "--clusterrole=view",
        "--serviceaccount=default:default",
    ]);
    let listed = kubectl.ok(&["get", "pods", "--token", &token, "-o", "name"]);
    assert_eq!(listed, "pod/shell\n");
    assert_eq!(in_cluster(), "shell\n");

    // Once the pod is gone its token is refused.
    kubectl.ok(&["delete", "pod", "shell", "--wait=false"]);
    wait_for("pod shell to be gone", DEADLINE, || {
        let out = kubectl.run(&["get", "pod", "shell"]);
        (!out.success()).then_some(())
    });
    let refused = whoami(&kubectl, &token);
    assert!(!refused.success(), "{}", refused.stdout);
    assert_eq!(refused.stderr, UNAUTHORIZED);
    let raw = skiff.request("GET", "/api/v1/namespaces/default/pods", Some(&token));
    assert_eq!(raw.status, 401, "{}", raw.body);
    let status: Value = serde_json::from_str(&raw.body).expect("a Status");
    assert_eq!(
        status,
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": "Unauthorized", "reason": "Unauthorized", "code": 401})
    );
}

#[test]
fn kubectl_create_token_issues_tokens_the_server_accepts_and_reviews() {
    let mut skiff = Skiff::start();
    let kubectl = skiff.kubectl();

    // `--duration 10m`: a ten-minute token for the default ServiceAccount.
    let token = kubectl
        .ok(&["create", "token", "default", "--duration", "10m"])
        .trim()
        .to_string();
    let claims = claims_of(&token);
    assert_eq!(
        claims["exp"].as_i64().expect("exp") - claims["iat"].as_i64().expect("iat"),
        600
    );
    assert_eq!(
        claims["aud"],
        json!(["https://kubernetes.default.svc.cluster.local", "k3s"])
    );
    let me = whoami(&kubectl, &token);
    assert!(me.success(), "{}", me.stderr);
    assert_eq!(
        whoami_row(&me.stdout, "Username"),
        ["system:serviceaccount:default:default"]
    );

    // Shorter than ten minutes is refused as Kubernetes refuses it.
    let short = kubectl.fails(&["create", "token", "default", "--duration", "5m"]);
    assert!(
        short.contains(
            "TokenRequest.authentication.k8s.io \"default\" is invalid: spec.expirationSeconds: Invalid value: 300: may not specify a duration less than 10 minutes"
        ),
        "{short}"
    );
    let missing = kubectl.fails(&["create", "token", "nobody"]);
    assert!(
        missing.contains("serviceaccounts \"nobody\" not found"),
        "{missing}"
    );

    // Another ServiceAccount's token is that account, until the account is deleted.
    kubectl.ok(&["create", "serviceaccount", "builder"]);
    let builder = kubectl
        .ok(&["create", "token", "builder"])
        .trim()
        .to_string();
    let me = whoami(&kubectl, &builder);
    assert!(me.success(), "{}", me.stderr);
    assert_eq!(
        whoami_row(&me.stdout, "Username"),
        ["system:serviceaccount:default:builder"]
    );

    // TokenReview answers for valid, foreign-audience and tampered tokens.
    let review = token_review(&skiff, &kubectl, &builder, &[]);
    assert_eq!(review["status"]["authenticated"], true, "{review}");
    assert_eq!(
        review["status"]["user"]["username"],
        "system:serviceaccount:default:builder"
    );
    assert_eq!(
        review["status"]["user"]["groups"],
        json!([
            "system:serviceaccounts",
            "system:serviceaccounts:default",
            "system:authenticated"
        ])
    );
    assert_eq!(
        review["status"]["audiences"],
        json!(["https://kubernetes.default.svc.cluster.local", "k3s"])
    );
    let vault = kubectl
        .ok(&["create", "token", "builder", "--audience", "vault"])
        .trim()
        .to_string();
    assert_eq!(whoami(&kubectl, &vault).stderr, UNAUTHORIZED);
    let review = token_review(&skiff, &kubectl, &vault, &["vault"]);
    assert_eq!(review["status"]["authenticated"], true, "{review}");
    assert_eq!(review["status"]["audiences"], json!(["vault"]));
    let mut parts: Vec<String> = builder.split('.').map(str::to_string).collect();
    let mut forged = claims_of(&builder);
    forged["sub"] = json!("system:serviceaccount:kube-system:default");
    forged["kubernetes.io"]["namespace"] = json!("kube-system");
    parts[1] = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(forged.to_string());
    let tampered = parts.join(".");
    assert_eq!(whoami(&kubectl, &tampered).stderr, UNAUTHORIZED);
    let review = token_review(&skiff, &kubectl, &tampered, &[]);
    assert!(review["status"].get("authenticated").is_none(), "{review}");
    assert!(
        review["status"]["error"]
            .as_str()
            .is_some_and(|e| e.starts_with("[invalid bearer token")),
        "{review}"
    );

    // A token bound to a pod works while the pod exists.
    kubectl.ok(&[
        "run",
        "bound",
        "--image",
        support::images::SHELL,
        "--restart=Never",
    ]);
    let bound = kubectl
        .ok(&[
            "create",
            "token",
            "default",
            "--bound-object-kind",
            "Pod",
            "--bound-object-name",
            "bound",
        ])
        .trim()
        .to_string();
    let me = whoami(&kubectl, &bound);
    assert!(me.success(), "{}", me.stderr);
    assert_eq!(
        whoami_row(&me.stdout, "Extra: authentication.kubernetes.io/pod-name"),
        ["[bound]"]
    );

    // A token bound to a node works while the node exists.
    let node = skiff.write_file(
        "node.yaml",
        "apiVersion: v1\nkind: Node\nmetadata:\n  name: edge-1\n",
    );
    kubectl.ok(&["create", "-f", &node]);
    let node_bound = kubectl
        .ok(&[
            "create",
            "token",
            "default",
            "--bound-object-kind",
            "Node",
            "--bound-object-name",
            "edge-1",
        ])
        .trim()
        .to_string();
    let me = whoami(&kubectl, &node_bound);
    assert!(me.success(), "{}", me.stderr);
    assert_eq!(
        whoami_row(&me.stdout, "Extra: authentication.kubernetes.io/node-name"),
        ["[edge-1]"]
    );
    kubectl.ok(&["delete", "node", "edge-1"]);
    wait_for("node edge-1 to be gone", DEADLINE, || {
        (!kubectl.run(&["get", "node", "edge-1"]).success()).then_some(())
    });
    assert_eq!(whoami(&kubectl, &node_bound).stderr, UNAUTHORIZED);

    // Tokens outlive a restart: the signing key is kept in the data directory.
    skiff.restart();
    let kubectl = skiff.kubectl();
    let me = whoami(&kubectl, &builder);
    assert!(me.success(), "after a restart: {}", me.stderr);

    kubectl.ok(&["delete", "pod", "bound", "--grace-period=0", "--force"]);
    wait_for("pod bound to be gone", DEADLINE, || {
        (!kubectl.run(&["get", "pod", "bound"]).success()).then_some(())
    });
    assert_eq!(whoami(&kubectl, &bound).stderr, UNAUTHORIZED);
    // A legacy token Secret is filled by the tokens controller and speaks for its account.
    let secret = skiff.write_file(
        "builder-token.yaml",
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: builder-token\n  annotations:\n    kubernetes.io/service-account.name: builder\ntype: kubernetes.io/service-account-token\n",
    );
    kubectl.ok(&["create", "-f", &secret]);
    let filled: Value = wait_for("the token Secret to be filled", DEADLINE, || {
        let secret: Value =
            serde_json::from_str(&kubectl.ok(&["get", "secret", "builder-token", "-o", "json"]))
                .expect("secret JSON");
        secret["data"]["token"].is_string().then_some(secret)
    });
    let decode = |key: &str| {
        let encoded = filled["data"][key]
            .as_str()
            .unwrap_or_else(|| panic!("no {key} in {filled}"));
        String::from_utf8(
            base64::engine::general_purpose::STANDARD
                .decode(encoded)
                .expect("base64"),
        )
        .expect("UTF-8")
    };
    assert_eq!(decode("namespace"), "default");
    let root_ca = kubectl.ok(&[
        "get",
        "configmap",
        "kube-root-ca.crt",
        "-o",
        "jsonpath={.data.ca\\.crt}",
    ]);
    assert_eq!(decode("ca.crt"), root_ca);
    let builder_uid = kubectl.ok(&["get", "sa", "builder", "-o", "jsonpath={.metadata.uid}"]);
    assert_eq!(
        filled["metadata"]["annotations"]["kubernetes.io/service-account.uid"],
        builder_uid.as_str()
    );
    let legacy = decode("token");
    assert_eq!(claims_of(&legacy)["iss"], "kubernetes/serviceaccount");
    let me = whoami(&kubectl, &legacy);
    assert!(me.success(), "{}", me.stderr);
    assert_eq!(
        whoami_row(&me.stdout, "Username"),
        ["system:serviceaccount:default:builder"]
    );

    // Deleting the account ends its tokens and its token Secret.
    kubectl.ok(&["delete", "serviceaccount", "builder"]);
    assert_eq!(whoami(&kubectl, &builder).stderr, UNAUTHORIZED);
    assert_eq!(whoami(&kubectl, &legacy).stderr, UNAUTHORIZED);
    wait_for("the token Secret to be deleted", DEADLINE, || {
        (!kubectl.run(&["get", "secret", "builder-token"]).success()).then_some(())
    });
}

#[test]
fn automount_false_and_missing_service_accounts() {
    let skiff = Skiff::start();
    let kubectl = skiff.kubectl();

    let pod = |name: &str, extra: &str| {
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n{extra}  containers:\n  - name: c\n    image: {}\n",
            support::images::SHELL
        )
    };
    let volumes_of = |name: &str| -> Value {
        let pod: Value =
            serde_json::from_str(&kubectl.ok(&["get", "pod", name, "-o", "json"])).expect("pod");
        pod["spec"].get("volumes").cloned().unwrap_or(Value::Null)
    };

    // On the pod.
    let file = skiff.write_file(
        "quiet.yaml",
        &pod("quiet", "  automountServiceAccountToken: false\n"),
    );
    kubectl.ok(&["create", "-f", &file]);
    assert_eq!(volumes_of("quiet"), Value::Null);

    // On its ServiceAccount, and the pod's own true wins over it.
    let account = skiff.write_file(
        "robot.yaml",
        "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: robot\nautomountServiceAccountToken: false\n",
    );
    kubectl.ok(&["create", "-f", &account]);
    let file = skiff.write_file(
        "robot-pod.yaml",
        &pod("robot-pod", "  serviceAccountName: robot\n"),
    );
    kubectl.ok(&["create", "-f", &file]);
    assert_eq!(volumes_of("robot-pod"), Value::Null);
    let file = skiff.write_file(
        "robot-loud.yaml",
        &pod(
            "robot-loud",
            "  serviceAccountName: robot\n  automountServiceAccountToken: true\n",
        ),
    );
    kubectl.ok(&["create", "-f", &file]);
    assert!(
        volumes_of("robot-loud")[0]["name"]
            .as_str()
            .is_some_and(|n| n.starts_with("kube-api-access-")),
        "{}",
        volumes_of("robot-loud")
    );

    // A ServiceAccount that does not exist.
    let file = skiff.write_file("ghost.yaml", &pod("ghost", "  serviceAccountName: ghost\n"));
    let refused = kubectl.fails(&["create", "-f", &file]);
    assert_eq!(
        refused,
        format!("Error from server (Forbidden): error when creating \"{file}\": pods \"ghost\" is forbidden: error looking up service account default/ghost: serviceaccount \"ghost\" not found\n")
    );
}
