//! CertificateSigningRequests end to end with the real `kubectl`: a request records who made
//! it, `kubectl get csr` shows Kubernetes' columns, `kubectl certificate approve` and `deny`
//! decide through the `approval` subresource, and malformed requests get Kubernetes' refusals.
//!
//! Run with `cargo test -p skiff --test certificates`. Needs `kubectl` on the PATH.

mod support;

use base64::Engine;
use support::json::str_at;
use support::{assert_table, Kubectl, Skiff};

/// A PEM certificate request for `common_name`, made with a fresh key.
fn certificate_request(common_name: &str) -> String {
    let key = rcgen::KeyPair::generate().expect("a key pair");
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("parameters");
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, common_name);
    params
        .distinguished_name
        .push(rcgen::DnType::OrganizationName, "system:nodes");
    params
        .serialize_request(&key)
        .expect("a certificate request")
        .pem()
        .expect("PEM")
}

/// Creates a request named `name` for the kubelet client signer, asking for an hour.
fn create_request(skiff: &Skiff, kubectl: &Kubectl, name: &str) {
    let request = base64::engine::general_purpose::STANDARD.encode(certificate_request(
        &format!("system:node:{name}"),
    ));
    let manifest = format!(
        "apiVersion: certificates.k8s.io/v1
kind: CertificateSigningRequest
metadata:
  name: {name}
spec:
  request: {request}
  signerName: kubernetes.io/kube-apiserver-client-kubelet
  expirationSeconds: 3600
  usages: [digital signature, client auth]
  username: someone-else
"
    );
    let file = skiff.write_file(&format!("{name}.yaml"), &manifest);
    kubectl.ok(&["create", "-f", &file]);
}

#[test]
fn kubectl_lists_approves_and_denies_requests_recording_their_requestor() {
    let skiff = Skiff::start();
    let kubectl = skiff.kubectl();
    create_request(&skiff, &kubectl, "one");
    create_request(&skiff, &kubectl, "two");

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

    let listed = kubectl.ok(&["get", "csr"]);
    assert_table(
        &listed,
        &[
            &["NAME", "AGE", "SIGNERNAME", "REQUESTOR", "REQUESTEDDURATION", "CONDITION"],
            &["one", "<age>", "kubernetes.io/kube-apiserver-client-kubelet", "system:admin", "60m", "Pending"],
            &["two", "<age>", "kubernetes.io/kube-apiserver-client-kubelet", "system:admin", "60m", "Pending"],
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
    let approved = kubectl.json(&["get", "csr", "one"]);
    assert_eq!(str_at(&approved, "/status/conditions/0/type"), "Approved");
    assert_eq!(str_at(&approved, "/status/conditions/0/reason"), "KubectlApprove");
    assert_eq!(
        approved["spec"], stored["spec"],
        "approval leaves the spec as it was"
    );
    let listed = kubectl.ok(&["get", "csr"]);
    assert_table(
        &listed,
        &[
            &["NAME", "AGE", "SIGNERNAME", "REQUESTOR", "REQUESTEDDURATION", "CONDITION"],
            &["one", "<age>", "kubernetes.io/kube-apiserver-client-kubelet", "system:admin", "60m", "Approved"],
            &["two", "<age>", "kubernetes.io/kube-apiserver-client-kubelet", "system:admin", "60m", "Denied"],
        ],
    );

}

#[test]
fn malformed_requests_are_refused_with_kubernetes_messages() {
    let skiff = Skiff::start();
    let kubectl = skiff.kubectl();
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
