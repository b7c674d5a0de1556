//! API aggregation end to end, with the real `kubectl`: a small aggregated API server served
//! by this test over HTTPS on loopback (its certificate signed by a test CA handed to Skiff as
//! the APIService's `caBundle`; it accepts only clients whose certificate the requestheader CA
//! from `extension-apiserver-authentication` signed) serves `wardle.example.com/v1alpha1`
//! flunders behind a Service whose EndpointSlice points at it. Requests reach it through Skiff
//! with the caller's identity in `X-Remote-*` headers, discovery lists it, watches stream
//! through, and once it stops the APIService turns `Available=False` (`FailedDiscoveryCheck`)
//! and its requests get 503. The metrics API is a local APIService.
//!
//! Run with `cargo test -p skiff --test aggregation`. Needs `kubectl` on the PATH.

mod support;

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use base64::Engine;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::{json, Value};
use support::json::{json_of, str_at};
use support::{wait_for_every, Skiff};

const GROUP: &str = "wardle.example.com";
const VERSION: &str = "v1alpha1";

/// The TLS name Skiff checks for the Service `wardle-api` in `default`.
const SERVICE_HOST: &str = "wardle-api.default.svc";

/// A CA and a serving certificate it signed for [`SERVICE_HOST`]: CA PEM, cert PEM, key PEM.
fn serving_certificates() -> (String, String, String) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().expect("a CA key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "wardle-test-ca");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key).expect("a CA certificate");
    let issuer = Issuer::from_params(&ca_params, ca_key);
    let key = KeyPair::generate().expect("a server key");
    let params = CertificateParams::new(vec![SERVICE_HOST.to_string()]).expect("server parameters");
    let cert = params
        .signed_by(&key, &issuer)
        .expect("a server certificate");
    (ca_cert.pem(), cert.pem(), key.serialize_pem())
}

/// One request the aggregated server received: path with query, the identity headers, the
/// client certificate's common name, and whether credentials reached it.
#[derive(Clone, Debug)]
struct Seen {
    path: String,
    user: Option<String>,
    groups: Vec<String>,
    extra: Vec<(String, String)>,
    client_name: String,
    authorization: bool,
}

/// The aggregated API server on a loopback port; it stops (its port refusing connections)
/// when stopped or dropped.
struct AggregatedServer {
    port: u16,
    ca_pem: String,
    seen: Arc<Mutex<Vec<Seen>>>,
    stopping: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl AggregatedServer {
    /// Serves with a fresh certificate, accepting only client certificates `client_ca_pem`
    /// signed.
    fn start(client_ca_pem: &str) -> AggregatedServer {
        let (ca_pem, cert_pem, key_pem) = serving_certificates();
        let chain = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .expect("certificate PEM");
        let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).expect("key PEM");
        let mut client_roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(client_ca_pem.as_bytes()) {
            client_roots
                .add(cert.expect("requestheader CA PEM"))
                .expect("a requestheader CA certificate");
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            Arc::new(client_roots),
            provider.clone(),
        )
        .build()
        .expect("a client verifier");
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain, key)
            .expect("a serving certificate");
        let config = Arc::new(config);
        let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback port");
        let port = listener.local_addr().expect("its address").port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stopping = Arc::new(AtomicBool::new(false));
        let thread = {
            let (seen, stopping) = (seen.clone(), stopping.clone());
            thread::spawn(move || {
                for stream in listener.incoming() {
                    if stopping.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    let (config, seen) = (config.clone(), seen.clone());
                    thread::spawn(move || serve(config, stream, &seen));
                }
            })
        };
        AggregatedServer {
            port,
            ca_pem,
            seen,
            stopping,
            thread: Some(thread),
        }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().expect("the request log").clone()
    }

    fn stop(&mut self) {
        self.stopping.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(thread) = self.thread.take() {
            thread.join().expect("the server thread ends");
        }
    }
}

impl Drop for AggregatedServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn resource_list() -> Value {
    json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": format!("{GROUP}/{VERSION}"),
        "resources": [{"name": "flunders", "singularName": "flunder", "namespaced": true,
            "kind": "Flunder", "verbs": ["get", "list", "watch"], "shortNames": ["fl"]}]})
}

fn flunder(name: &str, seen_by: &str) -> Value {
    json!({"apiVersion": format!("{GROUP}/{VERSION}"), "kind": "Flunder",
        "metadata": {"name": name, "namespace": "default", "resourceVersion": "1",
            "creationTimestamp": "2026-01-01T00:00:00Z"},
        "spec": {"seenBy": seen_by}})
}

/// The answer to one request: status, content type and body, or the watch events to stream.
enum Answer {
    Whole(u16, &'static str, String),
    Events(Vec<String>),
}

fn answer(path_and_query: &str, accept: &str, user: &str) -> Answer {
    let (path, query) = path_and_query
        .split_once('?')
        .unwrap_or((path_and_query, ""));
    let flunders = format!("/apis/{GROUP}/{VERSION}/namespaces/default/flunders");
    if path == format!("/apis/{GROUP}/{VERSION}") {
        return Answer::Whole(200, "application/json", resource_list().to_string());
    }
    if path != flunders {
        return Answer::Whole(
            404,
            "application/json",
            json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                "reason": "NotFound", "code": 404, "message": "not found"})
            .to_string(),
        );
    }
    if query
        .split('&')
        .any(|p| p == "watch=true" || p == "watch=1")
    {
        return Answer::Events(
            ["first", "second"]
                .iter()
                .map(|name| json!({"type": "ADDED", "object": flunder(name, user)}).to_string())
                .collect(),
        );
    }
    if accept.contains("as=Table") {
        let table = json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": {},
            "columnDefinitions": [
                {"name": "Name", "type": "string", "format": "name", "description": "", "priority": 0},
                {"name": "Seen By", "type": "string", "format": "", "description": "", "priority": 0}],
            "rows": [{"cells": ["first", user], "object": {"kind": "PartialObjectMetadata",
                "apiVersion": "meta.k8s.io/v1", "metadata": flunder("first", user)["metadata"]}}]});
        return Answer::Whole(200, "application/json", table.to_string());
    }
    let list = json!({"apiVersion": format!("{GROUP}/{VERSION}"), "kind": "FlunderList",
        "metadata": {"resourceVersion": "1"}, "items": [flunder("first", user)]});
    Answer::Whole(200, "application/json", list.to_string())
}

/// Serves one connection: one HTTP/1.1 request without a body.
fn serve(config: Arc<rustls::ServerConfig>, stream: TcpStream, seen: &Mutex<Vec<Seen>>) {
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
        .to_string();
    let mut request = Seen {
        path: path.clone(),
        user: None,
        groups: Vec::new(),
        extra: Vec::new(),
        client_name: String::new(),
        authorization: false,
    };
    let mut accept = String::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
            break;
        }
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let (name, value) = (name.to_ascii_lowercase(), value.trim().to_string());
        match name.as_str() {
            "x-remote-user" => request.user = Some(value),
            "x-remote-group" => request.groups.push(value),
            "authorization" => request.authorization = true,
            "accept" => accept = value,
            other => {
                if let Some(key) = other.strip_prefix("x-remote-extra-") {
                    request.extra.push((key.to_string(), value));
                }
            }
        }
    }
    drop(reader);
    if let Some(der) = tls.conn.peer_certificates().and_then(|certs| certs.first()) {
        if let Ok((_, cert)) = x509_parser::parse_x509_certificate(der) {
            request.client_name = cert
                .subject()
                .iter_common_name()
                .next()
                .and_then(|cn| cn.as_str().ok())
                .unwrap_or("")
                .to_string();
        }
    }
    let user = request.user.clone().unwrap_or_default();
    seen.lock().expect("the request log").push(request);
    let head = |status: u16, content_type: &str| {
        format!("HTTP/1.1 {status} X\r\ncontent-type: {content_type}\r\nconnection: close\r\n")
    };
    match answer(&path, &accept, &user) {
        Answer::Whole(status, content_type, body) => {
            let response = format!(
                "{}content-length: {}\r\n\r\n{body}",
                head(status, content_type),
                body.len()
            );
            let _ = tls.write_all(response.as_bytes());
        }
        Answer::Events(events) => {
            let mut response = format!(
                "{}transfer-encoding: chunked\r\n\r\n",
                head(200, "application/json")
            );
            for event in events {
                let line = format!("{event}\n");
                response.push_str(&format!("{:x}\r\n{line}\r\n", line.len()));
            }
            response.push_str("0\r\n\r\n");
            let _ = tls.write_all(response.as_bytes());
        }
    }
    let _ = tls.flush();
    tls.conn.send_close_notify();
    let _ = tls.flush();
}

fn manifest(server: &AggregatedServer) -> String {
    format!(
        "apiVersion: v1
kind: Service
metadata:
  name: wardle-api
spec:
  ports:
  - name: https
    port: 443
    targetPort: {port}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: wardle-api-1
  labels:
    kubernetes.io/service-name: wardle-api
addressType: IPv4
endpoints:
- addresses: [\"127.0.0.1\"]
  conditions:
    ready: true
ports:
- name: https
  port: {port}
  protocol: TCP
---
apiVersion: apiregistration.k8s.io/v1
kind: APIService
metadata:
  name: {VERSION}.{GROUP}
spec:
  group: {GROUP}
  version: {VERSION}
  service:
    namespace: default
    name: wardle-api
  caBundle: {ca}
  groupPriorityMinimum: 1000
  versionPriority: 15
",
        port = server.port,
        ca = base64::engine::general_purpose::STANDARD.encode(&server.ca_pem),
    )
}

/// The `Available` condition of an APIService.
fn available(kubectl: &support::Kubectl, name: &str) -> Value {
    let api_service = kubectl.json(&["get", "apiservice", name]);
    api_service["status"]["conditions"]
        .as_array()
        .and_then(|conditions| conditions.iter().find(|c| c["type"] == "Available"))
        .cloned()
        .unwrap_or(Value::Null)
}

#[test]
fn an_aggregated_server_is_reached_with_the_callers_identity_and_watched_for_availability() {
    let skiff = Skiff::start();
    let kubectl = skiff.kubectl();
    let authentication = kubectl.json(&[
        "get",
        "configmap",
        "-n",
        "kube-system",
        "extension-apiserver-authentication",
    ]);
    for (key, value) in [
        ("requestheader-allowed-names", "[\"front-proxy-client\"]"),
        ("requestheader-username-headers", "[\"X-Remote-User\"]"),
        ("requestheader-group-headers", "[\"X-Remote-Group\"]"),
        (
            "requestheader-extra-headers-prefix",
            "[\"X-Remote-Extra-\"]",
        ),
    ] {
        assert_eq!(
            str_at(&authentication, &format!("/data/{key}")),
            value,
            "{key}"
        );
    }
    let client_ca = str_at(&authentication, "/data/requestheader-client-ca-file");
    assert!(
        str_at(&authentication, "/data/client-ca-file").contains("BEGIN CERTIFICATE"),
        "the client CA is published: {authentication}"
    );
    let mut server = AggregatedServer::start(&client_ca);
    let file = skiff.write_file("wardle.yaml", &manifest(&server));
    kubectl.ok(&["apply", "-f", &file]);
    let name = format!("{VERSION}.{GROUP}");

    let condition = wait_for_every(
        "the APIService to pass its checks",
        Duration::from_secs(30),
        Duration::from_millis(250),
        || Some(available(&kubectl, &name)).filter(|c| c["status"] == "True"),
    );
    assert_eq!(
        (&condition["reason"], &condition["message"]),
        (&json!("Passed"), &json!("all checks passed"))
    );
    let listed = kubectl.ok(&["get", "apiservice", &name]);
    assert!(
        listed.contains("default/wardle-api") && listed.contains("True"),
        "{listed}"
    );

    // Discovery lists the remote group version in both formats.
    let groups = json_of(&kubectl.ok(&["get", "--raw", "/apis"]));
    assert!(
        groups["groups"]
            .as_array()
            .is_some_and(|g| g.iter().any(|g| g["name"] == GROUP)),
        "legacy /apis lists {GROUP}: {groups}"
    );
    let resources = kubectl.ok(&["api-resources", "--api-group", GROUP]);
    assert!(
        resources.contains("flunders") && resources.contains("Flunder"),
        "{resources}"
    );

    // A raw request and kubectl get reach the server as the caller.
    let raw = json_of(&kubectl.ok(&[
        "get",
        "--raw",
        &format!("/apis/{GROUP}/{VERSION}/namespaces/default/flunders"),
    ]));
    assert_eq!(raw["kind"], "FlunderList", "{raw}");
    assert_eq!(raw["items"][0]["spec"]["seenBy"], "system:admin", "{raw}");
    let table = kubectl.ok(&["get", "flunders"]);
    assert!(
        table.contains("first") && table.contains("system:admin"),
        "kubectl get prints the server's table: {table}"
    );
    let impersonated = kubectl.ok(&[
        "get",
        "--raw",
        &format!("/apis/{GROUP}/{VERSION}/namespaces/default/flunders"),
        "--as",
        "jane",
        "--as-group",
        "system:masters",
    ]);
    assert!(
        impersonated.contains("\"seenBy\":\"jane\""),
        "{impersonated}"
    );
    let requests = server.seen();
    let user_requests: Vec<&Seen> = requests
        .iter()
        .filter(|s| s.path.contains("/flunders"))
        .collect();
    assert!(
        !user_requests.is_empty(),
        "the server saw no flunder request"
    );
    for request in &user_requests {
        assert_eq!(request.client_name, "front-proxy-client", "{request:?}");
        assert!(
            !request.authorization,
            "credentials stay with Skiff: {request:?}"
        );
    }
    let jane = user_requests
        .iter()
        .find(|s| s.user.as_deref() == Some("jane"))
        .expect("the impersonated request arrived");
    assert!(
        jane.groups.contains(&"system:masters".to_string()),
        "{jane:?}"
    );
    let admin = user_requests
        .iter()
        .find(|s| s.user.as_deref() == Some("system:admin"))
        .expect("the admin's request arrived");
    assert!(
        admin.groups.contains(&"system:masters".to_string()),
        "{admin:?}"
    );

    // A user Skiff does not authorize never reaches the server.
    let before = server.seen().len();
    let refused = kubectl.fails(&[
        "get",
        "--raw",
        &format!("/apis/{GROUP}/{VERSION}/namespaces/default/flunders"),
        "--as",
        "nobody",
    ]);
    assert!(refused.contains("Forbidden"), "{refused}");
    let after: Vec<Seen> = server.seen()[before..].to_vec();
    assert!(
        after.iter().all(|s| s.user.as_deref() != Some("nobody")),
        "{after:?}"
    );

    // A watch streams through.
    let watched = kubectl.ok(&[
        "get",
        "--raw",
        &format!("/apis/{GROUP}/{VERSION}/namespaces/default/flunders?watch=true"),
    ]);
    let events: Vec<Value> = watched.lines().map(json_of).collect();
    assert_eq!(
        events
            .iter()
            .map(|e| e["object"]["metadata"]["name"].clone())
            .collect::<Vec<_>>(),
        [json!("first"), json!("second")],
        "{watched}"
    );

    // Once the server is gone the APIService is unavailable and its requests get 503.
    let port = server.port;
    server.stop();
    let condition = wait_for_every(
        "the APIService to fail its discovery check",
        Duration::from_secs(30),
        Duration::from_millis(250),
        || Some(available(&kubectl, &name)).filter(|c| c["status"] == "False"),
    );
    let url = format!("https://127.0.0.1:{port}/apis/{GROUP}/{VERSION}");
    assert_eq!(condition["reason"], "FailedDiscoveryCheck", "{condition}");
    assert_eq!(
        condition["message"],
        json!(format!(
            "failing or missing response from {url}: Get \"{url}\": dial tcp 127.0.0.1:{port}: connect: connection refused"
        ))
    );
    let down = kubectl.fails(&[
        "get",
        "--raw",
        &format!("/apis/{GROUP}/{VERSION}/namespaces/default/flunders"),
    ]);
    assert!(
        down.contains("the server is currently unable to handle the request"),
        "a 503 while unavailable: {down}"
    );
}

#[test]
fn a_missing_service_or_endpoints_are_reported_in_kube_aggregators_words() {
    let skiff = Skiff::start();
    let kubectl = skiff.kubectl();
    let api_service = format!(
        "apiVersion: apiregistration.k8s.io/v1
kind: APIService
metadata:
  name: {VERSION}.{GROUP}
spec:
  group: {GROUP}
  version: {VERSION}
  service:
    namespace: default
    name: wardle-api
  insecureSkipTLSVerify: true
  groupPriorityMinimum: 1000
  versionPriority: 15
"
    );
    let file = skiff.write_file("api-service.yaml", &api_service);
    kubectl.ok(&["apply", "-f", &file]);
    let name = format!("{VERSION}.{GROUP}");
    let reason_becomes = |reason: &str| {
        wait_for_every(
            &format!("the APIService's reason to become {reason}"),
            Duration::from_secs(30),
            Duration::from_millis(250),
            || Some(available(&kubectl, &name)).filter(|c| c["reason"] == reason),
        )
    };
    let condition = reason_becomes("ServiceNotFound");
    assert_eq!(
        (&condition["status"], &condition["message"]),
        (
            &json!("False"),
            &json!("service/wardle-api in \"default\" is not present")
        )
    );
    let service = "apiVersion: v1
kind: Service
metadata:
  name: wardle-api
spec:
  ports:
  - name: https
    port: 443
    targetPort: 8443
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: wardle-api-1
  labels:
    kubernetes.io/service-name: wardle-api
addressType: IPv4
endpoints:
- addresses: [\"127.0.0.1\"]
  conditions:
    ready: false
ports:
- name: https
  port: 8443
  protocol: TCP
";
    let file = skiff.write_file("service.yaml", service);
    kubectl.ok(&["apply", "-f", &file]);
    let condition = reason_becomes("MissingEndpoints");
    assert_eq!(
        condition["message"],
        "endpointslices for service/wardle-api in \"default\" have no addresses with port name \"https\""
    );
    let refused = kubectl.fails(&[
        "get",
        "--raw",
        &format!("/apis/{GROUP}/{VERSION}/namespaces/default/flunders"),
    ]);
    assert!(
        refused.contains("the server is currently unable to handle the request"),
        "{refused}"
    );
}

#[test]
fn the_metrics_api_is_a_local_api_service_and_kubectl_top_still_works() {
    let skiff = Skiff::start_with(&[
        "--no-node",
        "--simulated-nodes",
        "1",
        "--metric-resolution",
        "1",
    ]);
    let kubectl = skiff.kubectl();
    let metrics = kubectl.json(&["get", "apiservice", "v1beta1.metrics.k8s.io"]);
    assert!(
        metrics["spec"].get("service").is_none_or(Value::is_null),
        "served by Skiff itself: {metrics}"
    );
    assert_eq!(
        (
            &metrics["spec"]["group"],
            &metrics["spec"]["version"],
            &metrics["spec"]["groupPriorityMinimum"],
            &metrics["spec"]["versionPriority"]
        ),
        (
            &json!("metrics.k8s.io"),
            &json!("v1beta1"),
            &json!(100),
            &json!(100)
        ),
        "{metrics}"
    );
    let condition = available(&kubectl, "v1beta1.metrics.k8s.io");
    assert_eq!(
        (&condition["status"], &condition["reason"]),
        (&json!("True"), &json!("Local")),
        "{metrics}"
    );
    let listed = kubectl.ok(&["get", "apiservice", "v1beta1.metrics.k8s.io"]);
    let row: Vec<&str> = listed
        .lines()
        .nth(1)
        .map(support::cells)
        .unwrap_or_default();
    assert_eq!(
        row.get(..3),
        Some(&["v1beta1.metrics.k8s.io", "Local", "True"][..]),
        "{listed}"
    );
    let top = wait_for_every(
        "kubectl top node to print the simulated node",
        Duration::from_secs(60),
        Duration::from_millis(500),
        || {
            let out = kubectl.run(&["top", "node", "--no-headers"]);
            (out.success() && out.stdout.contains("sim-node-1")).then_some(out.stdout)
        },
    );
    assert!(top.contains("sim-node-1"), "{top}");
}
