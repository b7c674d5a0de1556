//! Loopback servers and fake runners for the probe and hook tests.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;

use super::{ExecOutput, ExecRunner, ProbeTarget};

/// A canned answer.
#[derive(Clone, Debug)]
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
    pub(crate) delay: Duration,
}

impl Reply {
    pub(crate) fn status(status: u16) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: Vec::new(),
            delay: Duration::ZERO,
        }
    }

    pub(crate) fn redirect(location: &str, body: &str) -> Reply {
        Reply {
            headers: vec![("Location".to_string(), location.to_string())],
            body: body.as_bytes().to_vec(),
            ..Reply::status(302)
        }
    }
}

/// What the server saw of one request.
#[derive(Clone, Debug)]
pub(crate) struct SeenRequest {
    pub(crate) target: String,
    /// Header names lowercased.
    pub(crate) headers: HashMap<String, String>,
}

/// A minimal HTTP/1.1 server on 127.0.0.1 answering each path from a table (404 otherwise).
pub(crate) struct TestServer {
    pub(crate) address: SocketAddr,
    pub(crate) seen: Arc<Mutex<Vec<SeenRequest>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TestServer {
    pub(crate) async fn start(routes: Vec<(&str, Reply)>) -> TestServer {
        Self::start_with(routes, None).await
    }

    /// The same server behind TLS with a self-signed certificate.
    pub(crate) async fn start_tls(routes: Vec<(&str, Reply)>) -> TestServer {
        let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_string()])
            .expect("self-signed certificate");
        let key = rustls::pki_types::PrivateKeyDer::Pkcs8(
            rustls::pki_types::PrivatePkcs8KeyDer::from(certified.signing_key.serialize_der()),
        );
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_no_client_auth()
        .with_single_cert(vec![certified.cert.der().clone()], key)
        .expect("server config");
        Self::start_with(routes, Some(Arc::new(config))).await
    }

    async fn start_with(
        routes: Vec<(&str, Reply)>,
        tls: Option<Arc<rustls::ServerConfig>>,
    ) -> TestServer {
        let routes: Arc<HashMap<String, Reply>> = Arc::new(
            routes
                .into_iter()
                .map(|(path, reply)| (path.to_string(), reply))
                .collect(),
        );
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .expect("bind loopback");
        let address = listener.local_addr().expect("local address");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let seen_by_server = seen.clone();
        let tls = tls.map(tokio_rustls::TlsAcceptor::from);
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let routes = routes.clone();
                let seen = seen_by_server.clone();
                let tls = tls.clone();
                tokio::spawn(async move {
                    match tls {
                        Some(acceptor) => {
                            if let Ok(stream) = acceptor.accept(stream).await {
                                answer(stream, &routes, &seen).await;
                            }
                        }
                        None => answer(stream, &routes, &seen).await,
                    }
                });
            }
        });
        TestServer {
            address,
            seen,
            task,
        }
    }

    pub(crate) fn port(&self) -> u16 {
        self.address.port()
    }

    pub(crate) fn requests(&self) -> Vec<SeenRequest> {
        self.seen.lock().expect("seen lock").clone()
    }
}

async fn answer<S>(mut stream: S, routes: &HashMap<String, Reply>, seen: &Mutex<Vec<SeenRequest>>)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let request = match read_head(&mut stream).await {
        Head::Request(request) => request,
        Head::NotHttp => {
            // What an HTTP server says to a TLS handshake.
            let _ = stream
                .write_all(b"HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n")
                .await;
            return;
        }
        Head::Closed => return,
    };
    seen.lock().expect("seen lock").push(request.clone());
    let path = request.target.split('?').next().unwrap_or("").to_string();
    let reply = routes.get(&path).cloned().unwrap_or(Reply::status(404));
    tokio::time::sleep(reply.delay).await;
    let mut head = format!("HTTP/1.1 {} Whatever\r\n", reply.status);
    for (name, value) in &reply.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str(&format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n",
        reply.body.len()
    ));
    let _ = stream.write_all(head.as_bytes()).await;
    let _ = stream.write_all(&reply.body).await;
    let _ = stream.shutdown().await;
}

enum Head {
    Request(SeenRequest),
    NotHttp,
    Closed,
}

async fn read_head<S: AsyncRead + Unpin>(stream: &mut S) -> Head {
    match read_head_inner(stream).await {
        Some(head) => head,
        None => Head::Closed,
    }
}

async fn read_head_inner<S: AsyncRead + Unpin>(stream: &mut S) -> Option<Head> {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 1024];
    while !buffer.windows(4).any(|w| w == b"\r\n\r\n") {
        let read = stream.read(&mut chunk).await.ok()?;
        if read == 0 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..read]);
        if buffer.first() == Some(&0x16) {
            return Some(Head::NotHttp);
        }
    }
    let text = String::from_utf8_lossy(&buffer).into_owned();
    let mut lines = text.split("\r\n");
    let target = lines.next()?.split(' ').nth(1)?.to_string();
    let headers = lines
        .take_while(|line| !line.is_empty())
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_string()))
        .collect();
    Some(Head::Request(SeenRequest { target, headers }))
}

/// A port nothing listens on (bound, then released).
pub(crate) async fn closed_port() -> u16 {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .await
        .expect("bind loopback");
    listener.local_addr().expect("local address").port()
}

/// An exec runner that answers from a script and records what it was asked.
#[derive(Default)]
pub(crate) struct FakeRunner {
    pub(crate) answer: Mutex<Option<std::io::Result<ExecOutput>>>,
    pub(crate) calls: Mutex<Vec<(Vec<String>, Duration)>>,
}

impl FakeRunner {
    pub(crate) fn answering(answer: std::io::Result<ExecOutput>) -> Arc<FakeRunner> {
        Arc::new(FakeRunner {
            answer: Mutex::new(Some(answer)),
            calls: Mutex::new(Vec::new()),
        })
    }

    pub(crate) fn calls(&self) -> Vec<(Vec<String>, Duration)> {
        self.calls.lock().expect("calls lock").clone()
    }
}

#[async_trait]
impl ExecRunner for FakeRunner {
    async fn exec(&self, command: &[String], timeout: Duration) -> std::io::Result<ExecOutput> {
        self.calls
            .lock()
            .expect("calls lock")
            .push((command.to_vec(), timeout));
        match &*self.answer.lock().expect("answer lock") {
            Some(Ok(output)) => Ok(output.clone()),
            Some(Err(error)) => Err(std::io::Error::new(error.kind(), error.to_string())),
            None => Ok(ExecOutput::default()),
        }
    }
}

/// A target on 127.0.0.1 with the given runner and declared ports.
pub(crate) fn target(exec: Arc<dyn ExecRunner>, ports: Vec<(&str, u16)>) -> ProbeTarget {
    ProbeTarget {
        pod_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
        host_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
        container_ports: ports
            .into_iter()
            .map(|(name, port)| k8s_openapi::api::core::v1::ContainerPort {
                name: Some(name.to_string()),
                container_port: i32::from(port),
                ..Default::default()
            })
            .collect(),
        exec,
    }
}

pub(crate) fn command(words: &[&str]) -> Vec<String> {
    words.iter().map(|w| w.to_string()).collect()
}
