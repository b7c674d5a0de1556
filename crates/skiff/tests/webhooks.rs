//! Admission webhooks end to end, with the real `kubectl`: a validating webhook served over
//! HTTPS by this test (a test CA signs its certificate for 127.0.0.1, handed to the server as
//! `caBundle`) refuses a ConfigMap with its own message; a mutating webhook adds a label with a
//! JSONPatch; object and namespace selectors and a false `matchConditions` entry exclude
//! objects; once the webhook server is gone, `failurePolicy: Fail` refuses writes with
//! upstream's message and `Ignore` lets them through.
//!
//! Run with `cargo test -p skiff --test webhooks`. Needs `kubectl` on the PATH.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};

use base64::Engine;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::{json, Value};
use support::json::str_at;
use support::Skiff;

/// The TLS name of the Service fronting the webhook in the service test.
const SERVICE_HOST: &str = "admission.default.svc";

/// A CA and a serving certificate it signed for 127.0.0.1 and [`SERVICE_HOST`]: the CA's PEM, the certificate's
/// PEM and its key's PEM.
fn certificates() -> (String, String, String) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, SanType};
    let ca_key = KeyPair::generate().expect("a CA key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "skiff-test-webhook-ca");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key).expect("a CA certificate");
    let issuer = Issuer::from_params(&ca_params, ca_key);
    let key = KeyPair::generate().expect("a server key");
    let mut params =
        CertificateParams::new(vec![SERVICE_HOST.to_string()]).expect("server parameters");
    params
        .subject_alt_names
        .push(SanType::IpAddress(std::net::IpAddr::V4(
            std::net::Ipv4Addr::LOCALHOST,
        )));
    let cert = params
        .signed_by(&key, &issuer)
        .expect("a server certificate");
    (ca_cert.pem(), cert.pem(), key.serialize_pem())
}

/// What the test webhook answers for one AdmissionReview request on a path.
fn answer(path: &str, request: &Value) -> Value {
    let uid = request["uid"].clone();
    let object = &request["object"];
    match path {
        "/validate" => {
            if object.pointer("/data/forbidden").is_some() {
                json!({"uid": uid, "allowed": false,
                       "status": {"code": 403, "message": "the key forbidden is not allowed"}})
            } else {
                json!({"uid": uid, "allowed": true, "warnings": ["checked by the test webhook"]})
            }
        }
        "/mutate" => {
            let patch = if object.pointer("/metadata/labels").is_some() {
                json!([{"op": "add", "path": "/metadata/labels/mutated", "value": "yes"}])
            } else {
                json!([{"op": "add", "path": "/metadata/labels", "value": {"mutated": "yes"}}])
            };
            let encoded = base64::engine::general_purpose::STANDARD.encode(patch.to_string());
            json!({"uid": uid, "allowed": true, "patchType": "JSONPatch", "patch": encoded})
        }
        _ => json!({"uid": uid, "allowed": false, "status": {"message": "unknown path"}}),
    }
}

/// An HTTPS AdmissionReview server on a loopback port, answering with [`answer`], in this
/// process; it stops (and its port refuses connections) when stopped or dropped.
struct WebhookServer {
    port: u16,
    ca_pem: String,
    reviews: Arc<AtomicUsize>,
    stopping: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl WebhookServer {
    fn start() -> WebhookServer {
        let (ca_pem, cert_pem, key_pem) = certificates();
        let chain = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .expect("certificate PEM");
        let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).expect("key PEM");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .expect("a serving certificate");
        let config = Arc::new(config);
        let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback port");
        let port = listener.local_addr().expect("its address").port();
        let reviews = Arc::new(AtomicUsize::new(0));
        let stopping = Arc::new(AtomicBool::new(false));
        let thread = {
            let (reviews, stopping) = (reviews.clone(), stopping.clone());
            thread::spawn(move || {
                for stream in listener.incoming() {
                    if stopping.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    let (config, reviews) = (config.clone(), reviews.clone());
                    thread::spawn(move || serve(config, stream, &reviews));
                }
            })
        };
        WebhookServer {
            port,
            ca_pem,
            reviews,
            stopping,
            thread: Some(thread),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}{path}", self.port)
    }

    fn ca_bundle(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(&self.ca_pem)
    }

    fn stop(&mut self) {
        self.stopping.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(thread) = self.thread.take() {
            thread.join().expect("the webhook server thread ends");
        }
    }
}

impl Drop for WebhookServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Serves one connection: one HTTP/1.1 POST carrying an AdmissionReview.
fn serve(config: Arc<rustls::ServerConfig>, stream: TcpStream, reviews: &AtomicUsize) {
    let Ok(connection) = rustls::ServerConnection::new(config) else {
        return;
    };
    let mut tls = rustls::StreamOwned::new(connection, stream);
    let mut reader = BufReader::new(&mut tls);
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    let path = request_line
        .split_whitespace()
        .nth(1)
        .unwrap_or("/")
        .split('?')
        .next()
        .unwrap_or("/")
        .to_string();
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().unwrap_or(0);
            }
        }
    }
    let mut body = vec![0; length];
    if reader.read_exact(&mut body).is_err() {
        return;
    }
    let review: Value = serde_json::from_slice(&body).unwrap_or_default();
    reviews.fetch_add(1, Ordering::SeqCst);
    let reply = json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                       "response": answer(&path, &review["request"])})
    .to_string();
    let response = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{reply}",
        reply.len()
    );
    let _ = tls.write_all(response.as_bytes());
    let _ = tls.flush();
    tls.conn.send_close_notify();
    let _ = tls.flush();
}

fn configurations(server: &WebhookServer, validating_policy: &str) -> String {
    let ca = server.ca_bundle();
    let rules = "    rules:
    - operations: [\"CREATE\", \"UPDATE\"]
      apiGroups: [\"\"]
      apiVersions: [\"v1\"]
      resources: [\"configmaps\"]";
    format!(
        "apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingWebhookConfiguration
metadata:
  name: deny-forbidden
webhooks:
  - name: deny.skiff.test
    clientConfig:
      url: {validate}
      caBundle: {ca}
{rules}
    failurePolicy: {validating_policy}
    sideEffects: None
    admissionReviewVersions: [\"v1\"]
    matchConditions:
    - name: not-excused
      expression: \"object.metadata.name != 'excused'\"
    objectSelector:
      matchExpressions:
      - {{key: skip-webhooks, operator: DoesNotExist}}
    namespaceSelector:
      matchExpressions:
      - {{key: webhooks, operator: NotIn, values: [\"off\"]}}
---
apiVersion: admissionregistration.k8s.io/v1
kind: MutatingWebhookConfiguration
metadata:
  name: add-label
webhooks:
  - name: label.skiff.test
    clientConfig:
      url: {mutate}
      caBundle: {ca}
{rules}
    failurePolicy: Ignore
    sideEffects: None
    admissionReviewVersions: [\"v1\"]
",
        validate = server.url("/validate"),
        mutate = server.url("/mutate"),
    )
}

#[test]
fn webhooks_refuse_mutate_respect_selectors_and_failure_policies() {
    let mut server = WebhookServer::start();
    let skiff = Skiff::start();
    let kubectl = skiff.kubectl();
    let file = skiff.write_file("webhooks.yaml", &configurations(&server, "Fail"));
    kubectl.ok(&["apply", "-f", &file]);

    let resources = kubectl.ok(&["api-resources", "--api-group=admissionregistration.k8s.io"]);
    for row in [
        [
            "mutatingwebhookconfigurations",
            "admissionregistration.k8s.io/v1",
            "false",
            "MutatingWebhookConfiguration",
        ],
        [
            "validatingwebhookconfigurations",
            "admissionregistration.k8s.io/v1",
            "false",
            "ValidatingWebhookConfiguration",
        ],
    ] {
        assert!(
            resources.lines().any(|l| support::cells(l) == row),
            "no row {row:?} in:\n{resources}"
        );
    }
    let listed = kubectl.ok(&["get", "validatingwebhookconfigurations"]);
    let rows: Vec<Vec<&str>> = listed.lines().map(support::cells).collect();
    assert_eq!(rows[0], ["NAME", "WEBHOOKS", "AGE"], "{listed}");
    assert_eq!(rows[1][..2], ["deny-forbidden", "1"], "{listed}");
    let stored = kubectl.json(&["get", "mutatingwebhookconfiguration", "add-label"]);
    assert_eq!(str_at(&stored, "/webhooks/0/reinvocationPolicy"), "Never");
    assert_eq!(str_at(&stored, "/webhooks/0/matchPolicy"), "Equivalent");
    assert_eq!(
        stored.pointer("/webhooks/0/timeoutSeconds"),
        Some(&json!(10))
    );

    // The validating webhook refuses with its own message, worded as Kubernetes words it.
    let bad = skiff.write_file(
        "bad.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: bad\ndata:\n  forbidden: \"1\"\n",
    );
    let refused = kubectl.fails(&["apply", "-f", &bad]);
    assert_eq!(
        refused.trim(),
        format!(
            "Error from server: error when creating \"{bad}\": admission webhook \"deny.skiff.test\" denied the request: the key forbidden is not allowed"
        ),
    );

    // A false match condition keeps the webhook from being called at all.
    let before = server.reviews.load(Ordering::SeqCst);
    let excused = skiff.write_file(
        "excused.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: excused\ndata:\n  forbidden: \"1\"\n",
    );
    kubectl.ok(&["apply", "-f", &excused]);
    // Only the mutating webhook saw it.
    assert_eq!(server.reviews.load(Ordering::SeqCst), before + 1);

    // An allowed object passes, carries the mutating webhook's label and the warning.
    let created = kubectl.run(&["create", "configmap", "good", "--from-literal=a=b"]);
    assert!(created.success(), "{}", created.stderr);
    assert!(
        created
            .stderr
            .contains("Warning: checked by the test webhook"),
        "stderr: {}",
        created.stderr
    );
    let good = kubectl.json(&["get", "configmap", "good"]);
    assert_eq!(str_at(&good, "/metadata/labels/mutated"), "yes");

    // The object selector and the namespace selector exclude objects from the webhook.
    let skipped = skiff.write_file(
        "skipped.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: skipped\n  labels:\n    skip-webhooks: \"yes\"\ndata:\n  forbidden: \"1\"\n",
    );
    kubectl.ok(&["apply", "-f", &skipped]);
    kubectl.ok(&["create", "namespace", "quiet"]);
    kubectl.ok(&["label", "namespace", "quiet", "webhooks=off"]);
    kubectl.ok(&["apply", "-n", "quiet", "-f", &bad]);
    assert!(server.reviews.load(Ordering::SeqCst) > 0);

    // With the server gone, Fail refuses with upstream's message and Ignore lets writes in.
    let port = server.port;
    server.stop();
    let refused = kubectl.fails(&["create", "configmap", "while-down", "--from-literal=a=b"]);
    assert_eq!(
        refused.trim(),
        format!(
            "error: failed to create configmap: Internal error occurred: failed calling webhook \"deny.skiff.test\": failed to call webhook: Post \"https://127.0.0.1:{port}/validate?timeout=10s\": dial tcp 127.0.0.1:{port}: connect: connection refused"
        ),
    );
    let file = skiff.write_file("webhooks-ignore.yaml", &configurations(&server, "Ignore"));
    kubectl.ok(&["apply", "-f", &file]);
    kubectl.ok(&["create", "configmap", "while-down", "--from-literal=a=b"]);
    let down = kubectl.json(&["get", "configmap", "while-down"]);
    assert!(
        down.pointer("/metadata/labels/mutated").is_none(),
        "no webhook could have labelled it: {down}"
    );
}

#[test]
fn a_webhook_behind_a_service_is_reached_at_its_endpoints() {
    let server = WebhookServer::start();
    let skiff = Skiff::start();
    let kubectl = skiff.kubectl();
    let manifest = format!(
        "apiVersion: v1
kind: Service
metadata:
  name: admission
spec:
  ports:
  - name: https
    port: 443
    targetPort: {port}
---
apiVersion: v1
kind: Endpoints
metadata:
  name: admission
subsets:
- addresses:
  - ip: 127.0.0.1
  ports:
  - name: https
    port: {port}
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingWebhookConfiguration
metadata:
  name: through-service
webhooks:
  - name: service.skiff.test
    clientConfig:
      service:
        namespace: default
        name: admission
        path: /validate
      caBundle: {ca}
    rules:
    - operations: [\"CREATE\"]
      apiGroups: [\"\"]
      apiVersions: [\"v1\"]
      resources: [\"configmaps\"]
    sideEffects: None
    admissionReviewVersions: [\"v1\"]
",
        port = server.port,
        ca = server.ca_bundle(),
    );
    let file = skiff.write_file("service-webhook.yaml", &manifest);
    kubectl.ok(&["apply", "-f", &file]);
    let stored = kubectl.json(&["get", "validatingwebhookconfiguration", "through-service"]);
    assert_eq!(
        stored.pointer("/webhooks/0/clientConfig/service/port"),
        Some(&json!(443))
    );
    let refused = kubectl.fails(&["create", "configmap", "bad", "--from-literal=forbidden=1"]);
    assert_eq!(
        refused.trim(),
        "error: failed to create configmap: admission webhook \"service.skiff.test\" denied the request: the key forbidden is not allowed"
    );
    kubectl.ok(&["create", "configmap", "fine", "--from-literal=a=b"]);
    assert!(server.reviews.load(Ordering::SeqCst) >= 2);
}
