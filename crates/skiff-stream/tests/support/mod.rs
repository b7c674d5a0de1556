//! A stand-in for kube-apiserver that real kubectl binaries talk to over loopback HTTP: it
//! answers discovery and the pod GET kubectl does first, then serves `exec`, `attach` and
//! `portforward` with this crate. The "container" runs commands as local processes, and the
//! "pod" port 80 is a loopback listener the test chooses.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::{HeaderMap, HeaderName, HeaderValue};
use skiff_stream::negotiate::{negotiate, StreamKind};
use skiff_stream::portforward::{ForwardErrors, PortForwardOptions, PortForwardSession};
use skiff_stream::remotecommand::{
    CommandOutcome, RemoteCommandOptions, RemoteCommandSession, TerminalSize,
    STREAM_CREATION_TIMEOUT,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The kubectl minors tried, as the workspace's end-to-end support lists them.
pub const VERSIONED_MINORS: std::ops::RangeInclusive<u32> = 27..=33;

/// Every `kubectl.1.<minor>` installed beside the PATH `kubectl`, with its minor.
pub fn versioned_kubectls() -> Vec<(u32, PathBuf)> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let path_kubectl = std::env::split_paths(&path)
        .map(|dir| dir.join("kubectl"))
        .find(|candidate| candidate.is_file())
        .expect("the end-to-end tests need `kubectl` on the PATH");
    let resolved = std::fs::canonicalize(&path_kubectl).unwrap_or(path_kubectl);
    let dir = resolved.parent().expect("kubectl lives in a directory");
    VERSIONED_MINORS
        .map(|minor| (minor, dir.join(format!("kubectl.1.{minor}"))))
        .filter(|(_, candidate)| candidate.is_file())
        .collect()
}

/// The installed kubectls, failing the test unless 1.27 (SPDY only) and 1.33 (WebSocket first)
/// are among them.
pub fn required_kubectls() -> Vec<(u32, PathBuf)> {
    let found = versioned_kubectls();
    for minor in [27, 33] {
        assert!(
            found.iter().any(|(m, _)| *m == minor),
            "kubectl.1.{minor} must be installed beside the PATH kubectl"
        );
    }
    found
}

/// What one upgrade request carried, for tests to inspect.
#[derive(Debug, Clone)]
pub struct SeenUpgrade {
    /// The request line.
    pub request_line: String,
    /// Its headers.
    pub headers: HeaderMap,
    /// The first bytes the client sent after the upgrade (at most [`RECORDED_BYTES`]).
    pub client_bytes: Arc<Mutex<Vec<u8>>>,
}

/// How much of each upgraded connection's client bytes is recorded.
pub const RECORDED_BYTES: usize = 16 * 1024;

/// A connection that keeps a copy of the first bytes read from it.
struct Recording {
    inner: TcpStream,
    copy: Arc<Mutex<Vec<u8>>>,
}

impl tokio::io::AsyncRead for Recording {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let result = std::pin::Pin::new(&mut self.inner).poll_read(cx, buf);
        let fresh = &buf.filled()[before..];
        let mut copy = self.copy.lock().unwrap();
        let room = RECORDED_BYTES.saturating_sub(copy.len());
        copy.extend_from_slice(&fresh[..fresh.len().min(room)]);
        result
    }
}

impl tokio::io::AsyncWrite for Recording {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        data: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.inner).poll_write(cx, data)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// A running stand-in server.
pub struct FakeApiServer {
    /// Where it listens.
    pub address: SocketAddr,
    /// Every upgrade request it received, in order.
    pub upgrades: Arc<Mutex<Vec<SeenUpgrade>>>,
    /// The first terminal size of every terminal session, in order.
    pub terminal_sizes: Arc<Mutex<Vec<TerminalSize>>>,
    task: tokio::task::JoinHandle<()>,
    dir: tempfile::TempDir,
}

impl Drop for FakeApiServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeApiServer {
    /// Starts a server whose pod port 80 is `pod_port_80` on loopback.
    pub async fn start(pod_port_80: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let upgrades = Arc::new(Mutex::new(Vec::new()));
        let terminal_sizes = Arc::new(Mutex::new(Vec::new()));
        let seen = upgrades.clone();
        let sizes = terminal_sizes.clone();
        let task = tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                tokio::spawn(serve_connection(
                    socket,
                    seen.clone(),
                    sizes.clone(),
                    pod_port_80,
                ));
            }
        });
        let dir = tempfile::tempdir().unwrap();
        let kubeconfig = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: http://{address}\nusers:\n- name: admin\n  user:\n    token: test\ncontexts:\n- name: fake\n  context:\n    cluster: fake\n    user: admin\n    namespace: default\ncurrent-context: fake\n"
        );
        std::fs::write(dir.path().join("kubeconfig"), kubeconfig).unwrap();
        Self {
            address,
            upgrades,
            terminal_sizes,
            task,
            dir,
        }
    }

    /// A kubeconfig pointing at this server.
    pub fn kubeconfig(&self) -> PathBuf {
        self.dir.path().join("kubeconfig")
    }

    /// A kubectl command bound to this server, with a private cache directory.
    pub fn kubectl(&self, binary: &Path) -> tokio::process::Command {
        let mut command = tokio::process::Command::new(binary);
        command
            .arg("--kubeconfig")
            .arg(self.kubeconfig())
            .arg("--cache-dir")
            .arg(self.dir.path().join("cache"))
            .env_remove("KUBECONFIG")
            .kill_on_drop(true);
        command
    }
}

async fn serve_connection(
    mut socket: TcpStream,
    seen: Arc<Mutex<Vec<SeenUpgrade>>>,
    terminal_sizes: Arc<Mutex<Vec<TerminalSize>>>,
    pod_port_80: u16,
) {
    loop {
        let Some((request_line, headers)) = read_head(&mut socket).await else {
            return;
        };
        let target = request_line.split(' ').nth(1).unwrap_or("/").to_string();
        let (path, query) = target.split_once('?').unwrap_or((&target, ""));
        let kind = if path.ends_with("/exec") || path.ends_with("/attach") {
            Some(StreamKind::RemoteCommand)
        } else if path.ends_with("/portforward") {
            Some(StreamKind::PortForward)
        } else {
            None
        };
        let Some(kind) = kind else {
            let body = answer_get(path);
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                body.len()
            );
            if socket.write_all(head.as_bytes()).await.is_err()
                || socket.write_all(body.as_bytes()).await.is_err()
            {
                return;
            }
            continue;
        };
        let client_bytes = Arc::new(Mutex::new(Vec::new()));
        seen.lock().unwrap().push(SeenUpgrade {
            request_line: request_line.clone(),
            headers: headers.clone(),
            client_bytes: client_bytes.clone(),
        });
        let negotiated = match negotiate(kind, &headers) {
            Ok(negotiated) => negotiated,
            Err(refusal) => {
                let _ = socket.write_all(&refusal.response_bytes()).await;
                return;
            }
        };
        if kind == StreamKind::RemoteCommand {
            let options = match RemoteCommandOptions::from_query(query) {
                Ok(options) => options,
                Err(refusal) => {
                    let _ = socket.write_all(&refusal.response_bytes()).await;
                    return;
                }
            };
            socket.write_all(&negotiated.response_head()).await.unwrap();
            // An attached "container" echoes its input, as `cat` would as its main process.
            let attach = path.ends_with("/attach");
            let command: Vec<String> = query
                .split('&')
                .filter_map(|pair| pair.strip_prefix("command="))
                .map(percent_decode)
                .chain(attach.then(|| "cat".to_string()))
                .collect();
            let socket = Recording {
                inner: socket,
                copy: client_bytes,
            };
            let session =
                RemoteCommandSession::start(socket, &negotiated, options, STREAM_CREATION_TIMEOUT)
                    .await
                    .expect("kubectl opens its streams");
            let mut session = session;
            if let Some(resize) = session.resize.as_mut() {
                // A terminal client reports its size first: wait for it (bounded) so the
                // test can check it arrived, then run the command.
                if let Ok(Some(size)) =
                    tokio::time::timeout(Duration::from_secs(10), resize.recv()).await
                {
                    terminal_sizes.lock().unwrap().push(size);
                }
            }
            run_command(session, command).await;
        } else {
            let options = match PortForwardOptions::from_query(query, negotiated.transport) {
                Ok(options) => options,
                Err(refusal) => {
                    let _ = socket.write_all(&refusal.response_bytes()).await;
                    return;
                }
            };
            socket.write_all(&negotiated.response_head()).await.unwrap();
            let socket = Recording {
                inner: socket,
                copy: client_bytes,
            };
            let mut session = PortForwardSession::start(socket, &negotiated, &options)
                .await
                .expect("a port-forward session");
            while let Some(forwarded) = session.next().await {
                tokio::spawn(async move {
                    let target = if forwarded.port == 80 {
                        pod_port_80
                    } else {
                        forwarded.port
                    };
                    match TcpStream::connect(("127.0.0.1", target)).await {
                        Ok(pod) => splice(forwarded.data, pod, forwarded.errors).await,
                        Err(error) => {
                            forwarded
                                .errors
                                .forwarding_failed(forwarded.port, "p", "u1", &error.to_string())
                                .await;
                        }
                    }
                });
            }
        }
        return;
    }
}

/// Copies both ways, as a kubelet's forwarder does: the client's half-close shuts the pod's
/// input; the pod closing its output ends the forwarded connection (data and error streams
/// both end, which is what kubectl waits for before closing its local connection).
async fn splice(data: tokio::io::DuplexStream, pod: TcpStream, errors: ForwardErrors) {
    let (mut data_read, mut data_write) = tokio::io::split(data);
    let (mut pod_read, mut pod_write) = pod.into_split();
    tokio::spawn(async move {
        let _ = tokio::io::copy(&mut data_read, &mut pod_write).await;
        let _ = pod_write.shutdown().await;
    });
    let _ = tokio::io::copy(&mut pod_read, &mut data_write).await;
    let _ = data_write.shutdown().await;
    drop(errors);
}

/// Runs `command` as a local process wired to the session's streams.
async fn run_command(mut session: RemoteCommandSession, command: Vec<String>) {
    let Some((program, args)) = command.split_first() else {
        session
            .finish(CommandOutcome::Failed("no command".into()))
            .await;
        return;
    };
    let mut child = match tokio::process::Command::new(program)
        .args(args)
        .stdin(if session.stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
    {
        Ok(child) => child,
        Err(error) => {
            session
                .finish(CommandOutcome::Failed(error.to_string()))
                .await;
            return;
        }
    };
    let stdin_copy = match (session.stdin.take(), child.stdin.take()) {
        (Some(mut from), Some(mut to)) => Some(tokio::spawn(async move {
            let _ = tokio::io::copy(&mut from, &mut to).await;
        })),
        _ => None,
    };
    let mut stdout = session.stdout.take();
    let mut stderr = session.stderr.take();
    let mut child_out = child.stdout.take().unwrap();
    let mut child_err = child.stderr.take().unwrap();
    let out_copy = async {
        match stdout.as_mut() {
            Some(to) => drop(tokio::io::copy(&mut child_out, to).await),
            None => drop(tokio::io::copy(&mut child_out, &mut tokio::io::sink()).await),
        }
    };
    let err_copy = async {
        match stderr.as_mut() {
            Some(to) => drop(tokio::io::copy(&mut child_err, to).await),
            None => drop(tokio::io::copy(&mut child_err, &mut tokio::io::sink()).await),
        }
    };
    tokio::join!(out_copy, err_copy);
    let status = child.wait().await;
    if let Some(copy) = stdin_copy {
        copy.abort();
    }
    session.stdout = stdout;
    session.stderr = stderr;
    let outcome = match status {
        Ok(status) => CommandOutcome::Exited(status.code().unwrap_or(137)),
        Err(error) => CommandOutcome::Failed(error.to_string()),
    };
    session.finish(outcome).await;
}

fn answer_get(path: &str) -> String {
    if let Some(rest) = path.strip_prefix("/api/v1/namespaces/default/pods/") {
        let name = rest.split('/').next().unwrap_or("p");
        return serde_json::json!({
            "kind": "Pod",
            "apiVersion": "v1",
            "metadata": {"name": name, "namespace": "default", "uid": "u1"},
            "spec": {"containers": [{"name": "c", "image": "busybox", "stdin": true,
                "ports": [{"containerPort": 80}]}]},
            "status": {"phase": "Running"},
        })
        .to_string();
    }
    match path {
        "/api" => serde_json::json!({"kind": "APIVersions", "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}]}),
        "/apis" => serde_json::json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": []}),
        "/api/v1" => serde_json::json!({"kind": "APIResourceList", "groupVersion": "v1", "resources": [
            {"name": "pods", "singularName": "pod", "namespaced": true, "kind": "Pod",
             "verbs": ["get", "list"], "shortNames": ["po"]},
            {"name": "pods/exec", "singularName": "", "namespaced": true, "kind": "PodExecOptions", "verbs": ["create", "get"]},
            {"name": "pods/attach", "singularName": "", "namespaced": true, "kind": "PodAttachOptions", "verbs": ["create", "get"]},
            {"name": "pods/portforward", "singularName": "", "namespaced": true, "kind": "PodPortForwardOptions", "verbs": ["create", "get"]},
        ]}),
        _ => serde_json::json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": "the server could not find the requested resource", "reason": "NotFound", "code": 404}),
    }
    .to_string()
}

/// Reads one request head byte by byte (so nothing after it is consumed), with its headers.
async fn read_head(socket: &mut TcpStream) -> Option<(String, HeaderMap)> {
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let byte = socket.read_u8().await.ok()?;
        head.push(byte);
        assert!(head.len() < 64 * 1024, "request head too long");
    }
    let text = String::from_utf8(head).ok()?;
    let mut lines = text.split("\r\n");
    let request_line = lines.next()?.to_string();
    let mut headers = HeaderMap::new();
    for line in lines.filter(|line| !line.is_empty()) {
        let (name, value) = line.split_once(':')?;
        headers.append(
            HeaderName::from_bytes(name.trim().as_bytes()).ok()?,
            HeaderValue::from_str(value.trim()).ok()?,
        );
    }
    Some((request_line, headers))
}

/// Decodes a query value as Go's `url.QueryUnescape` does.
pub fn percent_decode(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        match bytes[index] {
            b'+' => out.push(b' '),
            b'%' if index + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[index + 1..index + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(byte) => {
                        out.push(byte);
                        index += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            other => out.push(other),
        }
        index += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A loopback "pod" listener echoing each connection's bytes until the client half-closes.
pub async fn echo_pod() -> (u16, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut read, mut write) = socket.into_split();
                let _ = tokio::io::copy(&mut read, &mut write).await;
                let _ = write.shutdown().await;
            });
        }
    });
    (port, task)
}

/// Waits for `condition` to hold, failing with `what` after `limit`.
pub async fn wait_until<F, Fut>(what: &str, limit: Duration, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + limit;
    while !condition().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The byte at `offset` of the download a [`download_pod`] serves.
pub fn download_byte(offset: u64) -> u8 {
    (offset.wrapping_mul(31).wrapping_add(offset / 4096) % 251) as u8
}

/// A loopback "pod" listener sending `size` bytes of [`download_byte`] on every connection,
/// then closing it.
pub async fn download_pod(size: u64) -> (u16, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut offset = 0u64;
                let mut chunk = vec![0u8; 64 * 1024];
                while offset < size {
                    let length = (size - offset).min(chunk.len() as u64) as usize;
                    for (index, byte) in chunk[..length].iter_mut().enumerate() {
                        *byte = download_byte(offset + index as u64);
                    }
                    if socket.write_all(&chunk[..length]).await.is_err() {
                        return;
                    }
                    offset += length as u64;
                }
                let _ = socket.shutdown().await;
            });
        }
    });
    (port, task)
}

/// Reads a whole download from `socket`, checking every byte; returns how many arrived.
pub async fn read_download(socket: &mut TcpStream) -> u64 {
    let mut offset = 0u64;
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        let read = socket.read(&mut chunk).await.unwrap();
        if read == 0 {
            return offset;
        }
        for (index, byte) in chunk[..read].iter().enumerate() {
            assert_eq!(
                *byte,
                download_byte(offset + index as u64),
                "byte {} differs",
                offset + index as u64
            );
        }
        offset += read as u64;
    }
}
