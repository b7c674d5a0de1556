//! The seams where images and probes plug into the agent, with small built-in implementations.
//!
//! The agent only needs to find or pull an image ([`ImageService`]) and to check on a
//! container or run one of its lifecycle hooks ([`Prober`]); a richer catalog and prober can be
//! plugged in without touching the pod lifecycle.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::{
    ContainerImage, ContainerPort, HTTPGetAction, LifecycleHandler, Probe,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

/// Where an image's files are, to become a container's root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ImageRoot {
    /// Layer snapshots to stack with overlayfs, top-most first.
    Overlay(Vec<PathBuf>),
    /// One read-only tree holding the whole image.
    Merged(PathBuf),
}

/// What an image runs, once on this node.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ResolvedImage {
    /// The image's `ENTRYPOINT`.
    pub entrypoint: Vec<String>,
    /// The image's `CMD`.
    pub cmd: Vec<String>,
    /// Environment the image sets, before the pod's.
    pub env: Vec<(String, String)>,
    /// The image's `WORKDIR`, if any.
    pub working_dir: Option<String>,
    /// The image's `USER` (`name`, `uid`, `name:group`, `uid:gid`), if any.
    pub user: Option<String>,
    /// The `imageID` reported in container statuses.
    pub image_id: String,
    /// The image as container statuses report it in `image` (the normalized reference, as
    /// containerd names it); empty to report the pod's own spelling.
    pub name: String,
    /// The image's files; `None` runs the container on the host's filesystem (the
    /// transitional built-in aliases).
    pub root: Option<ImageRoot>,
    /// The image's size in bytes, as `Pulled` events and the Node's `status.images` report it.
    pub size: u64,
    /// Whether this image exists only on this node (a built-in alias or an imported
    /// directory): it is used whatever the pull policy says and never pulled.
    pub local_only: bool,
}

/// Why an image reference cannot be looked up.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ImageLookupError {
    /// The reference does not parse: kubelet's `InvalidImageName`; the text is the parser's.
    #[error("{0}")]
    InvalidName(String),
    /// The node's image store could not be read: kubelet's `ImageInspectError`.
    #[error("{0}")]
    Inspect(String),
}

/// Credentials to present to a registry, from a pod's pull Secrets, best match first.
pub type PullCredentials = Vec<skiff_images::keyring::Credentials>;

/// A finished pull.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PulledImage {
    /// What the pulled image runs.
    pub image: ResolvedImage,
    /// How long the download itself took (without waiting for another pull of it).
    pub pull_duration: Duration,
}

/// The node's images: what is stored here, and pulls of what is not. The agent applies the
/// pull policy and reports events; implementations only look up and fetch.
#[async_trait]
pub trait ImageService: Send + Sync {
    /// The image `image` (a pod's `image` field) if this node has it.
    async fn find(&self, image: &str) -> Result<Option<ResolvedImage>, ImageLookupError>;
    /// Pulls `image`, trying `credentials` in order and then the node's own; the error is
    /// the registry's own text.
    async fn pull(&self, image: &str, credentials: &PullCredentials)
        -> Result<PulledImage, String>;
    /// The images stored on this node, for the Node's `status.images`, largest first.
    fn node_images(&self) -> Vec<ContainerImage> {
        Vec::new()
    }
    /// One image garbage collection round at `now`, keeping the images `in_use` (the pods'
    /// `image` fields); a service with nothing to collect does nothing.
    async fn collect_garbage(
        &self,
        _in_use: &[String],
        _now: std::time::SystemTime,
    ) -> Result<(), ImageGcFailure> {
        Ok(())
    }
}

/// Why an image garbage collection round failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ImageGcFailure {
    /// The images that could go do not free enough space: kubelet's `FreeDiskSpaceFailed`
    /// text.
    FreeDiskSpace(String),
    /// The round could not run (the store or its filesystem could not be read).
    Failed(String),
}

impl ImageGcFailure {
    /// The failure's text, as kubelet's events carry it.
    pub fn message(&self) -> &str {
        match self {
            ImageGcFailure::FreeDiskSpace(message) | ImageGcFailure::Failed(message) => message,
        }
    }
}
/// The outcome of one probe.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProbeResult {
    /// The check passed.
    Success,
    /// The check failed; the text is what kubelet puts after "Liveness probe failed: ".
    Failure(String),
}

/// The output of a command run inside a container's environment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExecOutput {
    /// The exit code (128 + signal when killed, 124-style timeouts are reported as errors).
    pub exit_code: i32,
    /// Standard output and error, combined.
    pub output: String,
}

/// Runs a command inside a container's environment (its mounts, hostname, env and working
/// directory) with a timeout.
pub type ExecFn = Arc<
    dyn Fn(Vec<String>, Duration) -> BoxFuture<'static, std::io::Result<ExecOutput>> + Send + Sync,
>;

/// What a probe or hook may need to reach its container.
#[derive(Clone)]
pub struct ProbeContext {
    /// The pod's IP, the default host of `httpGet` and `tcpSocket` checks.
    pub pod_ip: Ipv4Addr,
    /// The container's ports, to resolve named ports.
    pub container_ports: Vec<ContainerPort>,
    /// Runs `exec` checks and hooks inside the container.
    pub exec: ExecFn,
}

impl ProbeContext {
    /// The port number a probe names, by number or by container port name.
    pub fn resolve_port(&self, port: &IntOrString) -> Result<u16, String> {
        match port {
            IntOrString::Int(n) => {
                u16::try_from(*n).map_err(|_| format!("invalid port number: {n}"))
            }
            IntOrString::String(name) => {
                if let Ok(n) = name.parse::<u16>() {
                    return Ok(n);
                }
                self.container_ports
                    .iter()
                    .find(|p| p.name.as_deref() == Some(name.as_str()))
                    .and_then(|p| u16::try_from(p.container_port).ok())
                    .ok_or_else(|| format!("couldn't find port: {name}"))
            }
        }
    }
}

/// Runs probes and lifecycle hooks; the agent decides when.
#[async_trait]
pub trait Prober: Send + Sync {
    /// Runs one check of `probe`, bounded by its `timeoutSeconds`.
    async fn probe(&self, probe: &Probe, ctx: &ProbeContext) -> ProbeResult;
    /// Runs a `postStart` or `preStop` handler, giving up at `deadline`.
    async fn run_hook(
        &self,
        handler: &LifecycleHandler,
        ctx: &ProbeContext,
        deadline: Instant,
    ) -> Result<(), String>;
}

/// A fixed map of images, enough for tests and for running host tools as "images".
#[derive(Clone, Debug, Default)]
pub struct SimpleImages {
    images: HashMap<String, ResolvedImage>,
}

impl SimpleImages {
    /// An empty catalog: every image is unknown.
    pub fn new() -> SimpleImages {
        SimpleImages::default()
    }

    /// Adds `name` (a repository such as `busybox`, matching any tag, or an exact
    /// `repository:tag`) running `entrypoint` with `cmd`.
    pub fn with(mut self, name: &str, entrypoint: &[&str], cmd: &[&str]) -> SimpleImages {
        let owned = |v: &[&str]| v.iter().map(|s| s.to_string()).collect();
        self.images.insert(
            name.to_string(),
            ResolvedImage {
                entrypoint: owned(entrypoint),
                cmd: owned(cmd),
                env: vec![(
                    "PATH".to_string(),
                    "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_string(),
                )],
                working_dir: None,
                image_id: format!("skiff://{name}"),
                local_only: true,
                ..ResolvedImage::default()
            },
        );
        self
    }

    /// Adds a fully described image.
    pub fn with_image(mut self, name: &str, image: ResolvedImage) -> SimpleImages {
        self.images.insert(name.to_string(), image);
        self
    }
}

/// The repository part of an image reference: no tag, no digest.
pub fn image_repository(image: &str) -> &str {
    let without_digest = image.split('@').next().unwrap_or(image);
    match without_digest.rfind(':') {
        // A colon after the last slash is a tag; before it, a registry port.
        Some(colon) if !without_digest[colon..].contains('/') => &without_digest[..colon],
        _ => without_digest,
    }
}

#[async_trait]
impl ImageService for SimpleImages {
    async fn find(&self, image: &str) -> Result<Option<ResolvedImage>, ImageLookupError> {
        Ok(self
            .images
            .get(image)
            .or_else(|| self.images.get(image_repository(image)))
            .cloned())
    }

    async fn pull(
        &self,
        image: &str,
        _credentials: &PullCredentials,
    ) -> Result<PulledImage, String> {
        Err(format!(
            "image \"{image}\" is not in this node's image catalog"
        ))
    }
}

/// Probes and hooks with plain sockets and the container's exec: `exec`, `httpGet` (HTTP/1.1,
/// no TLS), `tcpSocket` and `sleep`; `grpc` is reported as a failure.
#[derive(Clone, Copy, Debug, Default)]
pub struct SimpleProber;

/// A probe's `timeoutSeconds` (kubelet default 1 s).
fn probe_timeout(probe: &Probe) -> Duration {
    Duration::from_secs(probe.timeout_seconds.unwrap_or(1).max(1) as u64)
}

#[async_trait]
impl Prober for SimpleProber {
    async fn probe(&self, probe: &Probe, ctx: &ProbeContext) -> ProbeResult {
        let timeout = probe_timeout(probe);
        if let Some(exec) = &probe.exec {
            let command = exec.command.clone().unwrap_or_default();
            return match (ctx.exec)(command, timeout).await {
                Ok(out) if out.exit_code == 0 => ProbeResult::Success,
                Ok(out) => ProbeResult::Failure(out.output),
                Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
                    ProbeResult::Failure(format!("command timed out after {}s", timeout.as_secs()))
                }
                Err(e) => ProbeResult::Failure(e.to_string()),
            };
        }
        if let Some(get) = &probe.http_get {
            return match http_get(get, ctx, timeout).await {
                Ok(()) => ProbeResult::Success,
                Err(message) => ProbeResult::Failure(message),
            };
        }
        if let Some(tcp) = &probe.tcp_socket {
            let port = match ctx.resolve_port(&tcp.port) {
                Ok(port) => port,
                Err(message) => return ProbeResult::Failure(message),
            };
            let host = tcp.host.clone().unwrap_or_else(|| ctx.pod_ip.to_string());
            return match tokio::time::timeout(timeout, TcpStream::connect((host.as_str(), port)))
                .await
            {
                Ok(Ok(_)) => ProbeResult::Success,
                Ok(Err(e)) => ProbeResult::Failure(format!(
                    "dial tcp {host}:{port}: connect: {}",
                    io_reason(&e)
                )),
                Err(_) => ProbeResult::Failure(format!("dial tcp {host}:{port}: i/o timeout")),
            };
        }
        if probe.grpc.is_some() {
            return ProbeResult::Failure("grpc probes are not supported by this prober".into());
        }
        ProbeResult::Failure("probe has no handler".to_string())
    }

    async fn run_hook(
        &self,
        handler: &LifecycleHandler,
        ctx: &ProbeContext,
        deadline: Instant,
    ) -> Result<(), String> {
        let left = deadline.saturating_duration_since(Instant::now());
        if let Some(exec) = &handler.exec {
            let command = exec.command.clone().unwrap_or_default();
            return match (ctx.exec)(command.clone(), left).await {
                Ok(out) if out.exit_code == 0 => Ok(()),
                Ok(out) => Err(format!(
                    "command '{}' exited with {}: {}",
                    command.join(" "),
                    out.exit_code,
                    out.output
                )),
                Err(e) => Err(format!("command '{}' failed: {e}", command.join(" "))),
            };
        }
        if let Some(get) = &handler.http_get {
            return http_get(get, ctx, left).await;
        }
        if let Some(sleep) = &handler.sleep {
            let wanted = Duration::from_secs(sleep.seconds.max(0) as u64);
            tokio::time::sleep(wanted.min(left)).await;
            return Ok(());
        }
        Err("lifecycle handler has no action".to_string())
    }
}

/// Go's wording of common connection errors, as kubelet messages show them.
fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::ConnectionRefused => "connection refused".to_string(),
        _ => e.to_string(),
    }
}

/// One `GET`; success is a status from 200 to 399, as kubelet's HTTP prober decides.
async fn http_get(
    get: &HTTPGetAction,
    ctx: &ProbeContext,
    timeout: Duration,
) -> Result<(), String> {
    if get
        .scheme
        .as_deref()
        .is_some_and(|s| s.eq_ignore_ascii_case("https"))
    {
        return Err("HTTPS probes are not supported by this prober".to_string());
    }
    let port = ctx.resolve_port(&get.port)?;
    let host = get.host.clone().unwrap_or_else(|| ctx.pod_ip.to_string());
    let path = get.path.clone().unwrap_or_else(|| "/".to_string());
    let path = if path.starts_with('/') {
        path
    } else {
        format!("/{path}")
    };
    let url = format!("http://{host}:{port}{path}");
    let attempt = async {
        let mut stream = TcpStream::connect((host.as_str(), port))
            .await
            .map_err(|e| {
                format!(
                    "Get \"{url}\": dial tcp {host}:{port}: connect: {}",
                    io_reason(&e)
                )
            })?;
        let mut request = format!(
            "GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: kube-probe/1.36\r\nAccept: */*\r\nConnection: close\r\n"
        );
        for header in get.http_headers.as_deref().unwrap_or_default() {
            request.push_str(&format!("{}: {}\r\n", header.name, header.value));
        }
        request.push_str("\r\n");
        stream
            .write_all(request.as_bytes())
            .await
            .map_err(|e| format!("Get \"{url}\": {e}"))?;
        let mut head = Vec::new();
        let mut buf = [0u8; 512];
        while !head.windows(2).any(|w| w == b"\r\n") && head.len() < 8192 {
            let n = stream
                .read(&mut buf)
                .await
                .map_err(|e| format!("Get \"{url}\": {e}"))?;
            if n == 0 {
                break;
            }
            head.extend_from_slice(&buf[..n]);
        }
        let line = String::from_utf8_lossy(&head);
        let code: u16 = line
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| format!("Get \"{url}\": malformed HTTP response"))?;
        if (200..400).contains(&code) {
            Ok(())
        } else {
            Err(format!("HTTP probe failed with statuscode: {code}"))
        }
    };
    match tokio::time::timeout(timeout, attempt).await {
        Ok(result) => result,
        Err(_) => Err(format!(
            "Get \"{url}\": context deadline exceeded (Client.Timeout exceeded while awaiting headers)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn image_references_resolve_by_exact_name_then_repository() {
        let images =
            SimpleImages::new()
                .with("busybox", &[], &["sh"])
                .with("busybox:exact", &["echo"], &[]);
        let cases = [
            ("busybox", Some("sh")),
            ("busybox:1.36", Some("sh")),
            ("busybox@sha256:abc", Some("sh")),
            ("busybox:exact", None),
            ("nginx", None),
        ];
        for (image, cmd) in cases {
            let got = images.find(image).await.unwrap();
            match cmd {
                Some(cmd) => assert_eq!(got.unwrap().cmd, vec![cmd.to_string()], "{image}"),
                None if image == "busybox:exact" => {
                    assert_eq!(got.unwrap().entrypoint, vec!["echo".to_string()])
                }
                None => assert!(got.is_none(), "{image}"),
            }
        }
        assert_eq!(
            image_repository("registry:5000/app:v1"),
            "registry:5000/app"
        );
        assert_eq!(image_repository("registry:5000/app"), "registry:5000/app");
    }
}
