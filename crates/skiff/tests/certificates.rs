//! CertificateSigningRequests end to end with the real `kubectl`: a request records who made
//! it, `kubectl get csr` shows Kubernetes' columns, `kubectl certificate approve` and `deny`
//! decide through the `approval` subresource, and malformed requests get Kubernetes' refusals.
//!
//! Run with `cargo test -p skiff --test certificates`. Needs `kubectl` on the PATH.

mod support;

use base64::Engine;
use support::json::str_at;
use support::{assert_table, wait_for, Kubectl, Skiff, DEADLINE};

/// A PEM certificate request for `common_name`, made with a fresh key.
fn certificate_request(common_name: &str) -> String {
    let key = rcgen::KeyPair::generate().expect("a key pair");
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("parameters");
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, common_name);
    if common_name.starts_with("system:node:") {
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, "system:nodes");
    }
    params
        .serialize_request(&key)
        .expect("a certificate request")
        .pem()
        .expect("PEM")
}

/// Creates a request named `name` for `common_name` in `organization`, for `signer` with
/// `usages`, asking for an hour.
fn create_request(
    skiff: &Skiff,
    kubectl: &Kubectl,
    name: &str,
    common_name: &str,
    signer: &str,
    usages: &str,
) {
    let request =
        base64::engine::general_purpose::STANDARD.encode(certificate_request(common_name));
    let manifest = format!(
        "apiVersion: certificates.k8s.io/v1
kind: CertificateSigningRequest
metadata:
  name: {name}
spec:
  request: {request}
  signerName: {signer}
  expirationSeconds: 3600
  usages: [{usages}]
  username: someone-else
"
    );
    let file = skiff.write_file(&format!("{name}.yaml"), &manifest);
    kubectl.ok(&["create", "-f", &file]);
}

const KUBELET_SIGNER: &str = "kubernetes.io/kube-apiserver-client-kubelet";
const NODE_USAGES: &str = "digital signature, client auth";

#[test]
fn a_node_client_request_its_requester_may_make_is_approved_and_signed_by_the_cluster_ca() {
    let skiff = Skiff::start();
    let kubectl = skiff.kubectl();
    create_request(
        &skiff,
        &kubectl,
        "node-a",
        "system:node:a",
        KUBELET_SIGNER,
        NODE_USAGES,
    );
    let issued = wait_for("the request to be approved and issued", DEADLINE, || {
        let csr = kubectl.json(&["get", "csr", "node-a"]);
        (!str_at(&csr, "/status/certificate").is_empty()).then_some(csr)
    });
    assert_eq!(str_at(&issued, "/status/conditions/0/type"), "Approved");
    assert_eq!(
        str_at(&issued, "/status/conditions/0/reason"),
        "AutoApproved"
    );
    assert_eq!(
        str_at(&issued, "/status/conditions/0/message"),
        "Auto approving kubelet client certificate after SubjectAccessReview."
    );
    assert_table(
        &kubectl.ok(&["get", "csr"]),
        &[
            &[
                "NAME",
                "AGE",
                "SIGNERNAME",
                "REQUESTOR",
                "REQUESTEDDURATION",
                "CONDITION",
            ],
            &[
                "node-a",
                "<age>",
                KUBELET_SIGNER,
                "system:admin",
                "60m",
                "Approved,Issued",
            ],
        ],
    );

    let pem = base64::engine::general_purpose::STANDARD
        .decode(str_at(&issued, "/status/certificate"))
        .expect("base64 certificate");
    let (_, block) = x509_parser::pem::parse_x509_pem(&pem).expect("a PEM certificate");
    let cert = block.parse_x509().expect("an X.509 certificate");
    let names = |name: &x509_parser::x509::X509Name| {
        name.iter_attributes()
            .filter_map(|a| a.as_str().ok().map(str::to_string))
            .collect::<Vec<_>>()
    };
    assert_eq!(names(cert.subject()), ["system:node:a", "system:nodes"]);
    assert_eq!(names(cert.issuer()), ["skiff-ca"]);
    let ca_pem = std::fs::read(skiff.data_dir().join("ca.crt")).expect("the cluster CA");
    let (_, ca_block) = x509_parser::pem::parse_x509_pem(&ca_pem).expect("CA PEM");
    let ca = ca_block.parse_x509().expect("CA certificate");
    cert.verify_signature(Some(ca.public_key()))
        .expect("the certificate is signed by the cluster CA");
    let validity = cert.validity();
    let lifetime = validity.not_after.timestamp() - validity.not_before.timestamp();
    assert_eq!(
        lifetime,
        3600 + 5 * 60,
        "an hour as asked, from five minutes back"
    );
    let eku = cert
        .extended_key_usage()
        .expect("extensions parse")
        .expect("extended key usage present");
    assert!(eku.value.client_auth && !eku.value.server_auth);
}

#[test]
fn kubectl_approves_and_denies_requests_the_controllers_leave_alone() {
    let skiff = Skiff::start();
    let kubectl = skiff.kubectl();
    let other_signer = "example.com/signer";
    create_request(&skiff, &kubectl, "one", "jane", other_signer, "client auth");
    create_request(&skiff, &kubectl, "two", "jane", other_signer, "client auth");
    create_request(
        &skiff,
        &kubectl,
        "three",
        "jane",
        "kubernetes.io/kube-apiserver-client",
        "digital signature, server auth",
    );

    let stored = kubectl.json(&["get", "csr", "one"]);
    assert_eq!(
        str_at(&stored, "/spec/username"),
        "system:admin",
        "the requester replaces the username the body claimed: {stored}"
    );
    assert_eq!(
        stored["spec"]["groups"],
        serde_json::json!(["system:masters", "system:authenticated"])
    );
    assert_table(
        &kubectl.ok(&["get", "csr", "one", "two"]),
        &[
            &[
                "NAME",
                "AGE",
                "SIGNERNAME",
                "REQUESTOR",
                "REQUESTEDDURATION",
                "CONDITION",
            ],
            &[
                "one",
                "<age>",
                other_signer,
                "system:admin",
                "60m",
                "Pending",
            ],
            &[
                "two",
                "<age>",
                other_signer,
                "system:admin",
                "60m",
                "Pending",
            ],
        ],
    );

    assert_eq!(
        kubectl.ok(&["certificate", "approve", "one"]).trim(),
        "certificatesigningrequest.certificates.k8s.io/one approved"
    );
    assert_eq!(
        kubectl.ok(&["certificate", "deny", "two"]).trim(),
        "certificatesigningrequest.certificates.k8s.io/two denied"
    );
    assert_eq!(
        kubectl.ok(&["certificate", "approve", "three"]).trim(),
        "certificatesigningrequest.certificates.k8s.io/three approved"
    );
    let approved = kubectl.json(&["get", "csr", "one"]);
    assert_eq!(str_at(&approved, "/status/conditions/0/type"), "Approved");
    assert_eq!(
        str_at(&approved, "/status/conditions/0/reason"),
        "KubectlApprove"
    );
    assert_eq!(
        approved["spec"], stored["spec"],
        "approval leaves the spec as it was"
    );
    // The client signer refuses a server usage once the request is approved.
    wait_for("the signer to fail request three", DEADLINE, || {
        let csr = kubectl.json(&["get", "csr", "three"]);
        (str_at(&csr, "/status/conditions/1/type") == "Failed").then_some(())
    });
    assert_table(
        &kubectl.ok(&["get", "csr"]),
        &[
            &[
                "NAME",
                "AGE",
                "SIGNERNAME",
                "REQUESTOR",
                "REQUESTEDDURATION",
                "CONDITION",
            ],
            &[
                "one",
                "<age>",
                other_signer,
                "system:admin",
                "60m",
                "Approved",
            ],
            &[
                "three",
                "<age>",
                "kubernetes.io/kube-apiserver-client",
                "system:admin",
                "60m",
                "Approved,Failed",
            ],
            &[
                "two",
                "<age>",
                other_signer,
                "system:admin",
                "60m",
                "Denied",
            ],
        ],
    );
    let failed = kubectl.json(&["get", "csr", "three"]);
    assert_eq!(
        str_at(&failed, "/status/conditions/1/message"),
        "invalid usage for client certificate: server auth"
    );
}

#[test]
fn malformed_requests_are_refused_with_kubernetes_messages() {
    let skiff = Skiff::start();
    let kubectl = skiff.kubectl();
    assert_table(
        &kubectl.ok(&["api-resources", "--api-group=certificates.k8s.io"]),
        &[
            &["NAME", "SHORTNAMES", "APIVERSION", "NAMESPACED", "KIND"],
            &[
                "certificatesigningrequests",
                "csr",
                "certificates.k8s.io/v1",
                "false",
                "CertificateSigningRequest",
            ],
        ],
    );
    let file = skiff.write_file(
        "bad.yaml",
        "apiVersion: certificates.k8s.io/v1
kind: CertificateSigningRequest
metadata:
  name: bad
spec:
  request: aGVsbG8=
  signerName: nodomain
  expirationSeconds: 60
",
    );
    let refused = kubectl.fails(&["create", "-f", &file]);
    assert!(
        refused.contains("The CertificateSigningRequest \"bad\" is invalid"),
        "{refused}"
    );
    for message in [
        "spec.request: Invalid value",
        "PEM block type must be CERTIFICATE REQUEST",
        "spec.signerName: Invalid value: \"nodomain\": must be a fully qualified domain and path of the form 'example.com/signer-name'",
        "spec.usages: Required value: usages must be provided",
        "spec.expirationSeconds: Invalid value: 60: may not specify a duration less than 600 seconds (10 minutes)",
    ] {
        assert!(refused.contains(message), "missing {message:?} in:\n{refused}");
    }
}

/// The bootstrap token in `DATA/node-token` (`K10<ca-hash>::<id>.<secret>`), checked to be
/// private and to pin the cluster CA.
fn join_token(skiff: &Skiff) -> String {
    use std::os::unix::fs::PermissionsExt;
    let path = skiff.data_dir().join("node-token");
    let mode = std::fs::metadata(&path)
        .expect("skiff up writes DATA/node-token")
        .permissions()
        .mode();
    assert_eq!(
        mode & 0o777,
        0o600,
        "the join token is readable only by its owner"
    );
    let text = std::fs::read_to_string(&path).expect("node-token");
    let (hash, token) = text
        .trim()
        .strip_prefix("K10")
        .and_then(|rest| rest.split_once("::"))
        .unwrap_or_else(|| panic!("node-token is K10<hash>::<token>: {text:?}"));
    let ca = std::fs::read(skiff.data_dir().join("ca.crt")).expect("ca.crt");
    let digest: String = ring::digest::digest(&ring::digest::SHA256, &ca)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(hash, digest, "the token pins the cluster CA");
    token.to_string()
}

#[test]
fn the_join_token_may_only_ask_for_a_node_certificate_which_is_approved_and_issued() {
    let skiff = Skiff::start();
    let admin = skiff.kubectl();
    let token = join_token(&skiff);
    let id = token.split('.').next().expect("token id").to_string();
    let as_bootstrap = |args: &[&str]| {
        let mut all = vec!["--token", token.as_str()];
        all.extend_from_slice(args);
        all.iter().map(|s| s.to_string()).collect::<Vec<_>>()
    };
    let run = |args: Vec<String>| {
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        admin.run(&refs)
    };

    let request =
        base64::engine::general_purpose::STANDARD.encode(certificate_request("system:node:joiner"));
    let file = skiff.write_file(
        "joiner.yaml",
        &format!(
            "apiVersion: certificates.k8s.io/v1
kind: CertificateSigningRequest
metadata:
  name: joiner
spec:
  request: {request}
  signerName: {KUBELET_SIGNER}
  usages: [digital signature, client auth]
"
        ),
    );
    let created = run(as_bootstrap(&["create", "-f", &file]));
    assert!(
        created.success(),
        "the join token may create a CSR: {created:?}"
    );
    wait_for("the joiner's request to be issued", DEADLINE, || {
        let csr = admin.json(&["get", "csr", "joiner"]);
        (!str_at(&csr, "/status/certificate").is_empty()).then_some(())
    });
    let requestor = format!("system:bootstrap:{id}");
    assert_table(
        &admin.ok(&["get", "csr"]),
        &[
            &[
                "NAME",
                "AGE",
                "SIGNERNAME",
                "REQUESTOR",
                "REQUESTEDDURATION",
                "CONDITION",
            ],
            &[
                "joiner",
                "<age>",
                KUBELET_SIGNER,
                &requestor,
                "<none>",
                "Approved,Issued",
            ],
        ],
    );
    let read_back = run(as_bootstrap(&["get", "csr", "joiner", "-o", "name"]));
    assert!(
        read_back.success(),
        "the join token may read its CSR: {read_back:?}"
    );

    let refused = run(as_bootstrap(&["get", "pods"]));
    assert!(!refused.success());
    assert!(
        refused.stderr.contains(&format!(
            "User \"system:bootstrap:{id}\" cannot list resource \"pods\" in API group \"\" in the namespace \"default\""
        )),
        "{refused:?}"
    );

    let wrong = admin.run(&["--token", "abcdef.0000000000000000", "get", "csr"]);
    assert!(!wrong.success());
    assert!(
        wrong
            .stderr
            .contains("You must be logged in to the server (Unauthorized)"),
        "{wrong:?}"
    );
}
