//! `skiff agent`: this machine joins a cluster as a node, as `k3s agent` does.
//!
//! The join token (`K10<sha256 of the CA>::<id>.<secret>`) pins the cluster CA: the agent
//! fetches the server's bundle from `/cacerts` without trusting it yet and refuses it unless its
//! SHA-256 matches. Then Kubernetes' TLS bootstrap: a new key and a CertificateSigningRequest
//! for `system:node:<name>` in `system:nodes`, signer
//! `kubernetes.io/kube-apiserver-client-kubelet`, sent with the bootstrap token, approved and
//! signed by the server's controllers. The key and certificate are kept in the data directory
//! and reused by later starts; the certificate is renewed, with itself as the credential, at a
//! random point between 70 and 90 % of its life. The node agent and the service proxy then run
//! against the server with that certificate.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use base64::Engine;
use futures::stream::BoxStream;
use futures::StreamExt;
use serde_json::{json, Value};
use skiff_api::patch::PatchType;
use skiff_auth::user::UserInfo;
use skiff_client::{
    Client, ClientError, Credentials, DeleteOptions, ListOptions, ObjectList, RemoteClient,
    RemoteConfig, Scope, WatchEvent,
};

use crate::join_token::{ca_hash, JoinToken};
use crate::node_host::{
    choose_container_runtime, host_node_name, pod_network_settings, NodeArgs, NodeHost,
    NodeHostSettings, ServiceNetwork,
};

/// The signer of node client certificates.
pub const KUBELET_CLIENT_SIGNER: &str = "kubernetes.io/kube-apiserver-client-kubelet";
/// The cluster CA bundle the agent pinned, in its data directory.
const CA_FILE: &str = "ca.crt";
/// The node's client certificate, in its data directory (k3s's name).
const CERT_FILE: &str = "client-kubelet.crt";
/// Its private key.
const KEY_FILE: &str = "client-kubelet.key";
/// The kubelet endpoint's serving certificate, in the data directory (k3s's name).
const SERVING_CERT_FILE: &str = "serving-kubelet.crt";
/// Its private key.
const SERVING_KEY_FILE: &str = "serving-kubelet.key";
/// The largest `/cacerts` answer accepted.
const MAX_CA_BUNDLE_BYTES: usize = 1024 * 1024;
/// How long fetching the CA bundle may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(30);
/// How long after a failed renewal the next attempt comes.
const RENEWAL_RETRY: Duration = Duration::from_secs(30);

/// Options of `skiff agent`.
#[derive(clap::Args, Clone, Debug)]
pub struct AgentArgs {
    /// The server to join, `https://HOST:PORT` (k3s's flag). Repeat it (or separate URLs by
    /// commas) for several servers of one cluster: the agent joins through the first that
    /// answers and fails over along the list when one stops answering.
    #[arg(
        long,
        env = "SKIFF_URL",
        value_name = "URL",
        value_delimiter = ',',
        required = true
    )]
    pub server: Vec<String>,
    /// The join token, as the server wrote it to `DATA/node-token`:
    /// `K10<sha256 of the cluster CA>::<id>.<secret>`.
    #[arg(long, env = "SKIFF_TOKEN", required_unless_present = "token_file")]
    pub token: Option<String>,
    /// A file holding the join token.
    #[arg(long, value_name = "FILE", conflicts_with = "token")]
    pub token_file: Option<PathBuf>,
    /// Where the node's CA, key, certificate, pods and images live (default: the user's data
    /// directory's `agent`, or ./.skiff/agent).
    #[arg(long, env = "SKIFF_AGENT_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// How long to wait for the certificate request to be approved and signed.
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = crate::parse_duration)]
    pub certificate_timeout: Duration,
    /// Seconds between samples of pod and node usage, served on the kubelet endpoint's
    /// Summary API for the server's `metrics.k8s.io` and autoscalers.
    #[arg(long, value_name = "SECONDS", default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..))]
    pub metric_resolution: u64,
    /// Stop every pod of this node when the agent stops. Without it the agent leaves the
    /// `oci` runtime's containers running, as a stopped kubelet does, and adopts them when it
    /// starts again (drain the node first to move its pods away: `kubectl drain NODE`). The
    /// `process` runtime's pods always stop with the agent.
    #[arg(long)]
    pub stop_pods_on_exit: bool,
    /// The node's flags.
    #[command(flatten)]
    pub node: NodeArgs,
}

/// What an error of the join says to the user.
type AgentResult<T> = Result<T, Box<dyn std::error::Error>>;

/// Joins the cluster and runs the node until a signal stops it.
pub async fn run(args: AgentArgs) -> AgentResult<()> {
    let token_text = match (&args.token, &args.token_file) {
        (Some(token), _) => token.clone(),
        (None, Some(file)) => std::fs::read_to_string(file)
            .map_err(|e| format!("cannot read the join token {}: {e}", file.display()))?,
        (None, None) => return Err("give the join token with --token or --token-file".into()),
    };
    let token = JoinToken::parse(&token_text).ok_or(
        "the join token is not K10<sha256 of the cluster CA>::<id>.<secret>, as the server's DATA/node-token holds it",
    )?;
    let Some(pinned_hash) = token.ca_hash.clone() else {
        return Err("the join token carries no CA hash: use the whole K10<hash>::<id>.<secret> token from the server's DATA/node-token".into());
    };
    let servers: Vec<String> = args
        .server
        .iter()
        .map(|url| url.trim().trim_end_matches('/').to_string())
        .filter(|url| !url.is_empty())
        .collect();
    if servers.is_empty() {
        return Err("give the server to join with --server https://HOST:PORT".into());
    }
    let runtime = choose_container_runtime(&args.node, true);
    let pod_network = pod_network_settings(&args.node, runtime.runtime)?;
    let service_network = match &pod_network {
        Some(settings) => Some(ServiceNetwork::for_pod_network(&args.node, settings)?),
        None => None,
    };
    crate::up::raise_open_file_limit();
    let data_dir = args
        .data_dir
        .clone()
        .unwrap_or_else(|| crate::up::default_data_dir().join("agent"));
    std::fs::create_dir_all(&data_dir)
        .map_err(|e| format!("cannot create data directory {}: {e}", data_dir.display()))?;
    let data_dir = data_dir.canonicalize()?;
    crate::up::make_private_directory(&data_dir)?;
    for private in [KEY_FILE, CERT_FILE, SERVING_KEY_FILE, SERVING_CERT_FILE] {
        restrict_if_present(&data_dir.join(private))?;
    }
    crate::up::import_image_archives(&data_dir).await;

    let (ca_pem, servers) = fetch_cluster_ca_from_any(&servers, &pinned_hash).await?;
    let server = servers[0].clone();
    let previous_ca = std::fs::read(data_dir.join(CA_FILE)).ok();
    crate::kubeconfig::write_private(&data_dir.join(CA_FILE), &ca_pem)?;
    let node_name = args.node.node_name.clone().unwrap_or_else(host_node_name);
    if !is_node_name(&node_name) {
        return Err(format!(
            "--node-name {node_name:?} is not a valid node name: lowercase letters, digits, '-' and '.', starting and ending with a letter or digit, at most 253 characters"
        )
        .into());
    }

    let kept = (previous_ca.as_deref() == Some(ca_pem.as_slice()))
        .then(|| NodeCredential::load(&data_dir, &node_name, now_seconds()))
        .flatten();
    let credential = match kept {
        Some(credential) => {
            tracing::info!(node = %node_name, not_after = credential.not_after, "reusing the node's client certificate");
            credential
        }
        None => {
            let bootstrap = RemoteClient::new(with_fallbacks(
                RemoteConfig::new(
                    &server,
                    &ca_pem,
                    Credentials::Token(token.bootstrap.clone()),
                ),
                &servers,
            ))?;
            let credential =
                request_certificate(&bootstrap, &node_name, args.certificate_timeout).await?;
            credential.store(&data_dir)?;
            credential
        }
    };
    let client = Arc::new(SwappableClient::new(node_client(
        &servers,
        &ca_pem,
        &credential,
    )?));

    let (stop, stopped) = tokio::sync::watch::channel(false);
    let until_stopped = move || {
        let mut stopped = stopped.clone();
        async move {
            let _ = stopped.wait_for(|s| *s).await;
        }
    };
    let renewal = tokio::spawn(renew_forever(
        Renewal {
            client: client.clone(),
            servers: servers.clone(),
            ca_pem: ca_pem.clone(),
            node_name: node_name.clone(),
            data_dir: data_dir.clone(),
            timeout: args.certificate_timeout,
        },
        credential,
        until_stopped(),
    ));

    // The node's addresses, as its Node reports them: `--node-ip`'s, else the default
    // route's; the kubelet endpoint listens on the first.
    let mut node_args = args.node.clone();
    node_args.node_ip = skiff_node::agent::host_facts::internal_ips(
        &args.node.node_ip,
        &skiff_node::agent::host_facts::HostFactSource::gather(
            &skiff_node::agent::host_facts::ThisHost,
        ),
    );
    let primary_address = node_args
        .node_ip
        .first()
        .copied()
        .unwrap_or(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST));
    // The kubelet endpoint: bound first (a port in use stops the agent before anything runs),
    // its serving certificate asked of the cluster with the node's own credential.
    let kubelet_listen = std::net::SocketAddr::new(primary_address, args.node.kubelet_port);
    let kubelet_listener = tokio::net::TcpListener::bind(kubelet_listen)
        .await
        .map_err(|e| format!("cannot listen on the kubelet port {kubelet_listen}: {e}"))?;
    // The serving certificate an earlier start kept is reused while it is valid, for this
    // node and for the same names and address (and the CA unchanged); it is renewed while
    // running, as the client certificate is.
    let serving_use = NodeCertificateUse::Serving {
        addresses: vec![primary_address],
        names: vec![node_name.clone()],
    };
    let kept_serving = (previous_ca.as_deref() == Some(ca_pem.as_slice()))
        .then(|| {
            NodeCredential::load_files(
                &data_dir,
                (SERVING_KEY_FILE, SERVING_CERT_FILE),
                &node_name,
                now_seconds(),
            )
        })
        .flatten()
        .filter(|kept| {
            let same = serving_use.alternative_names_match(&kept.cert_pem);
            if !same {
                tracing::info!(
                    "the node's addresses changed; requesting a new serving certificate"
                );
            }
            same
        });
    let serving = match kept_serving {
        Some(serving) => {
            tracing::info!(node = %node_name, not_after = serving.not_after, "reusing the kubelet endpoint's serving certificate");
            serving
        }
        None => {
            let serving = request_node_certificate(
                &*client.current(),
                &node_name,
                args.certificate_timeout,
                &serving_use,
            )
            .await?;
            serving.store_files(&data_dir, (SERVING_KEY_FILE, SERVING_CERT_FILE))?;
            serving
        }
    };
    let _ = rustls::crypto::ring::default_provider().install_default();
    let kubelet_tls = kubelet_serving_config(&serving, &ca_pem)?;
    let (kubelet_tls_sender, kubelet_tls_receiver) =
        tokio::sync::watch::channel(Arc::new(kubelet_tls));
    let serving_renewal = tokio::spawn(renew_serving_forever(
        ServingRenewal {
            client: client.clone(),
            ca_pem: ca_pem.clone(),
            node_name: node_name.clone(),
            data_dir: data_dir.clone(),
            timeout: args.certificate_timeout,
            usage: serving_use,
            tls: kubelet_tls_sender,
        },
        serving,
        until_stopped(),
    ));
    let node = NodeHost::start(
        client.clone(),
        NodeHostSettings {
            args: &node_args,
            data_dir: &data_dir,
            node_name: node_name.clone(),
            run_agent: true,
            control_plane: false,
            primary_address,
            pod_network,
            service_network: service_network.as_ref(),
            metric_resolution: Duration::from_secs(args.metric_resolution),
            leave_pods_running: !args.stop_pods_on_exit,
            runtime_fallback: runtime.fallback,
        },
        until_stopped(),
    )
    .await?;
    let kubelet = match (node.logs.clone(), node.streams.clone()) {
        (Some(logs), Some(streams)) => {
            let endpoint = Arc::new(crate::kubelet_server::KubeletEndpoint {
                logs,
                streams,
                client: client.clone(),
                node_name: node_name.clone(),
                metrics: node.metrics.clone(),
            });
            tracing::info!(address = %kubelet_listen, "serving the kubelet endpoint");
            Some(tokio::spawn(crate::kubelet_server::serve(
                kubelet_listener,
                kubelet_tls_receiver,
                endpoint,
            )))
        }
        _ => None,
    };
    tokio::spawn(crate::memory::release_loop(crate::memory::RELEASE_INTERVAL));
    tokio::spawn(shed_start_up_pages(START_UP_SETTLE));
    tracing::info!(node = %node_name, %server, data_dir = %data_dir.display(), "skiff agent joined the cluster");
    crate::up::shutdown_signal().await;
    let _ = stop.send(true);
    node.finish().await;
    if let Some(kubelet) = kubelet {
        kubelet.abort();
    }
    renewal.abort();
    serving_renewal.abort();
    tracing::info!("skiff agent stopped");
    Ok(())
}

/// How long after joining the agent's start-up is over: the first node status, the informers'
/// first lists and the first lease renewal are done well within it.
const START_UP_SETTLE: Duration = Duration::from_secs(10);

/// Once the start-up has settled, lets go of the binary's pages that only the start-up used
/// (argument parsing, TLS bootstrap, key generation, registration): an agent is a small
/// process on each machine of a cluster, and those pages would otherwise stay counted in its
/// resident memory for as long as it runs. What it runs afterwards maps its pages back from
/// the page cache.
async fn shed_start_up_pages(after: Duration) {
    tokio::time::sleep(after).await;
    match tokio::task::spawn_blocking(skiff_oci::pages::shed_clean_file_pages).await {
        Ok(mappings) => tracing::debug!(mappings, "let go of the start-up's program pages"),
        Err(e) => tracing::warn!(error = %e, "letting go of the start-up's program pages failed"),
    }
}

/// Whether `name` may name a Node (an RFC 1123 subdomain).
fn is_node_name(name: &str) -> bool {
    let alphanumeric = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            let bytes = label.as_bytes();
            matches!((bytes.first(), bytes.last()), (Some(&f), Some(&l)) if alphanumeric(f) && alphanumeric(l))
                && bytes.iter().all(|&b| alphanumeric(b) || b == b'-')
        })
}

/// Keeps a credential file no looser than its owner's.
fn restrict_if_present(path: &Path) -> AgentResult<()> {
    use std::os::unix::fs::PermissionsExt;
    if path.exists() {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| format!("cannot restrict {} to its owner: {e}", path.display()))?;
    }
    Ok(())
}

/// Seconds since the Unix epoch, now.
fn now_seconds() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// The cluster CA from the first of `servers` that serves one matching `pinned_hash`, with the
/// servers reordered to start at that one (the others, in their order, are its fallbacks).
/// Every server's error is reported when none answers.
async fn fetch_cluster_ca_from_any(
    servers: &[String],
    pinned_hash: &str,
) -> AgentResult<(Vec<u8>, Vec<String>)> {
    let mut errors = Vec::new();
    for (index, server) in servers.iter().enumerate() {
        match fetch_cluster_ca(server, pinned_hash).await {
            Ok(ca_pem) => {
                let mut ordered = servers[index..].to_vec();
                ordered.extend_from_slice(&servers[..index]);
                return Ok((ca_pem, ordered));
            }
            Err(e) => errors.push(e.to_string()),
        }
    }
    Err(errors.join("; ").into())
}

/// `config` with the rest of `servers` (all but the first, which `config` names) as its
/// fallbacks.
fn with_fallbacks(mut config: RemoteConfig, servers: &[String]) -> RemoteConfig {
    config.fallback_servers = servers.iter().skip(1).cloned().collect();
    config
}

/// The server's CA bundle from `/cacerts`, fetched before the server is trusted and accepted
/// only if its SHA-256 is `pinned_hash`, the join token's.
async fn fetch_cluster_ca(server: &str, pinned_hash: &str) -> AgentResult<Vec<u8>> {
    let url = format!("{server}{}", skiff_apiserver::server::CA_CERTS_PATH);
    let bundle = tokio::time::timeout(FETCH_TIMEOUT, fetch_unverified(server))
        .await
        .map_err(|_| {
            format!("cannot fetch the cluster CA from {url}: no answer within {FETCH_TIMEOUT:?}")
        })?
        .map_err(|e| format!("cannot fetch the cluster CA from {url}: {e}"))?;
    let text = String::from_utf8(bundle)
        .map_err(|_| format!("the cluster CA from {url} is not PEM text"))?;
    let served = ca_hash(&text);
    if !served.eq_ignore_ascii_case(pinned_hash) {
        return Err(format!(
            "the cluster CA served at {url} does not match the join token: its SHA-256 is {served}, the token pins {pinned_hash}; refusing to trust this server"
        )
        .into());
    }
    Ok(text.into_bytes())
}

/// GETs `/cacerts` over TLS without checking the server's certificate: the answer is trusted
/// only once its hash matches the token's pin.
async fn fetch_unverified(server: &str) -> Result<Vec<u8>, String> {
    use http_body_util::BodyExt;
    let authority = server
        .strip_prefix("https://")
        .filter(|a| !a.is_empty() && !a.contains('/'))
        .ok_or_else(|| format!("--server {server:?} must be https://HOST:PORT"))?;
    let host = match authority.rsplit_once(':') {
        Some((host, port)) if port.parse::<u16>().is_ok() => host,
        _ => authority,
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let address = if authority
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
    {
        authority.to_string()
    } else {
        format!("{authority}:443")
    };
    let server_name = rustls::pki_types::ServerName::try_from(host.to_string())
        .map_err(|e| format!("bad server name {host:?}: {e}"))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .dangerous()
        // Any certificate is accepted for this one request: its answer is checked against the
        // token's pinned hash before it is trusted.
        .with_custom_certificate_verifier(Arc::new(skiff_node::probes::SkipServerVerification(
            provider,
        )))
        .with_no_client_auth();
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    let tcp = tokio::net::TcpStream::connect(&address)
        .await
        .map_err(|e| e.to_string())?;
    let stream = tokio_rustls::TlsConnector::from(Arc::new(tls))
        .connect(server_name, tcp)
        .await
        .map_err(|e| format!("TLS: {e}"))?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|e| e.to_string())?;
    let driver = tokio::spawn(connection);
    let request = hyper::Request::get(skiff_apiserver::server::CA_CERTS_PATH)
        .header(hyper::header::HOST, authority)
        .body(http_body_util::Empty::<hyper::body::Bytes>::new())
        .map_err(|e| e.to_string())?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status();
    let body = http_body_util::Limited::new(response.into_body(), MAX_CA_BUNDLE_BYTES)
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    driver.abort();
    if !status.is_success() {
        return Err(format!(
            "the server answered {status}: {}",
            String::from_utf8_lossy(&body).trim()
        ));
    }
    Ok(body.to_vec())
}

/// The node's client key and certificate (both PEM) and the certificate's validity.
#[derive(Clone)]
pub(crate) struct NodeCredential {
    pub(crate) key_pem: String,
    pub(crate) cert_pem: String,
    not_before: i64,
    not_after: i64,
}

impl NodeCredential {
    /// `cert_pem` with its key, if it is a certificate for `node_name`'s identity.
    fn new(key_pem: String, cert_pem: String, node_name: &str) -> Result<NodeCredential, String> {
        let (_, block) = x509_parser::pem::parse_x509_pem(cert_pem.as_bytes())
            .map_err(|e| format!("the certificate is not PEM: {e}"))?;
        let cert = block
            .parse_x509()
            .map_err(|e| format!("the certificate is not X.509: {e}"))?;
        let common_name = cert
            .subject()
            .iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok())
            .unwrap_or_default();
        let wanted = node_user(node_name);
        if common_name != wanted {
            return Err(format!(
                "the certificate is for {common_name:?}, not {wanted:?}"
            ));
        }
        let validity = cert.validity();
        Ok(NodeCredential {
            not_before: validity.not_before.timestamp(),
            not_after: validity.not_after.timestamp(),
            key_pem,
            cert_pem,
        })
    }

    /// The credential an earlier start kept in `data_dir`, if it is `node_name`'s and still
    /// valid at `now`.
    fn load(data_dir: &Path, node_name: &str, now: i64) -> Option<NodeCredential> {
        NodeCredential::load_files(data_dir, (KEY_FILE, CERT_FILE), node_name, now)
    }

    /// Like [`NodeCredential::load`], from the `(key, certificate)` files named.
    fn load_files(
        data_dir: &Path,
        (key_file, cert_file): (&str, &str),
        node_name: &str,
        now: i64,
    ) -> Option<NodeCredential> {
        let key_pem = std::fs::read_to_string(data_dir.join(key_file)).ok()?;
        let cert_pem = std::fs::read_to_string(data_dir.join(cert_file)).ok()?;
        match NodeCredential::new(key_pem, cert_pem, node_name) {
            Ok(credential) if credential.not_after > now => Some(credential),
            Ok(_) => {
                tracing::info!("the node's kept certificate has expired; requesting a new one");
                None
            }
            Err(error) => {
                tracing::warn!(%error, "the node's kept certificate is unusable; requesting a new one");
                None
            }
        }
    }

    /// Writes the key and the certificate, each readable by its owner only.
    fn store(&self, data_dir: &Path) -> std::io::Result<()> {
        self.store_files(data_dir, (KEY_FILE, CERT_FILE))
    }

    /// Like [`NodeCredential::store`], to the `(key, certificate)` files named.
    fn store_files(
        &self,
        data_dir: &Path,
        (key_file, cert_file): (&str, &str),
    ) -> std::io::Result<()> {
        crate::kubeconfig::write_private(&data_dir.join(key_file), self.key_pem.as_bytes())?;
        crate::kubeconfig::write_private(&data_dir.join(cert_file), self.cert_pem.as_bytes())
    }
}

/// The user name of a node.
fn node_user(node_name: &str) -> String {
    format!("system:node:{node_name}")
}

/// A client of the servers (the first, then the others on failure) speaking as the node,
/// with its certificate.
fn node_client(
    servers: &[String],
    ca_pem: &[u8],
    credential: &NodeCredential,
) -> Result<RemoteClient, ClientError> {
    let first = servers.first().map(String::as_str).unwrap_or_default();
    RemoteClient::new(with_fallbacks(
        RemoteConfig::new(
            first,
            ca_pem,
            Credentials::Certificate {
                certificate_pem: credential.cert_pem.clone().into_bytes(),
                key_pem: credential.key_pem.clone().into_bytes(),
            },
        ),
        servers,
    ))
}

/// Makes a new key, asks for a certificate for it through `client` (the bootstrap token, or
/// the node's current certificate when renewing) and waits for it to be issued.
async fn request_certificate(
    client: &dyn Client,
    node_name: &str,
    timeout: Duration,
) -> AgentResult<NodeCredential> {
    request_node_certificate(client, node_name, timeout, &NodeCertificateUse::Client).await
}

/// What a node's certificate is for.
pub(crate) enum NodeCertificateUse {
    /// Speaking to the API server (`kube-apiserver-client-kubelet`).
    Client,
    /// Serving the kubelet endpoint (`kubelet-serving`), for these addresses and names.
    Serving {
        /// The node's addresses, as IP alternative names.
        addresses: Vec<std::net::IpAddr>,
        /// The node's host names, as DNS alternative names.
        names: Vec<String>,
    },
}

impl NodeCertificateUse {
    /// Whether `cert_pem` names exactly the addresses and names this use asks for (a client
    /// certificate names none). Pure.
    fn alternative_names_match(&self, cert_pem: &str) -> bool {
        use x509_parser::extensions::GeneralName;
        let Ok((_, block)) = x509_parser::pem::parse_x509_pem(cert_pem.as_bytes()) else {
            return false;
        };
        let Ok(cert) = block.parse_x509() else {
            return false;
        };
        let mut names = std::collections::BTreeSet::new();
        let mut addresses = std::collections::BTreeSet::new();
        if let Ok(Some(extension)) = cert.subject_alternative_name() {
            for name in &extension.value.general_names {
                match name {
                    GeneralName::DNSName(dns) => {
                        names.insert(dns.to_string());
                    }
                    GeneralName::IPAddress(bytes) => {
                        let address = match bytes.len() {
                            4 => <[u8; 4]>::try_from(*bytes).ok().map(std::net::IpAddr::from),
                            16 => <[u8; 16]>::try_from(*bytes)
                                .ok()
                                .map(std::net::IpAddr::from),
                            _ => None,
                        };
                        match address {
                            Some(address) => {
                                addresses.insert(address);
                            }
                            None => return false,
                        }
                    }
                    _ => return false,
                }
            }
        }
        match self {
            NodeCertificateUse::Client => names.is_empty() && addresses.is_empty(),
            NodeCertificateUse::Serving {
                addresses: wanted_addresses,
                names: wanted_names,
            } => {
                names == wanted_names.iter().cloned().collect()
                    && addresses == wanted_addresses.iter().copied().collect()
            }
        }
    }
}

/// Makes a new key, asks for a certificate of use `usage` for it through `client` and waits
/// for it to be issued.
pub(crate) async fn request_node_certificate(
    client: &dyn Client,
    node_name: &str,
    timeout: Duration,
    usage: &NodeCertificateUse,
) -> AgentResult<NodeCredential> {
    let key = rcgen::KeyPair::generate()?;
    let (signer, usages, alternative_names) = match usage {
        NodeCertificateUse::Client => (
            KUBELET_CLIENT_SIGNER,
            json!(["digital signature", "client auth"]),
            Vec::new(),
        ),
        NodeCertificateUse::Serving { addresses, names } => {
            let mut alternative_names = Vec::new();
            for name in names {
                alternative_names.push(rcgen::SanType::DnsName(name.clone().try_into()?));
            }
            alternative_names.extend(addresses.iter().copied().map(rcgen::SanType::IpAddress));
            (
                skiff_controllers::certificates::KUBELET_SERVING_SIGNER,
                json!(["digital signature", "server auth"]),
                alternative_names,
            )
        }
    };
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new())?;
    params.subject_alt_names = alternative_names;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, node_user(node_name));
    params
        .distinguished_name
        .push(rcgen::DnType::OrganizationName, "system:nodes");
    let request_pem = params.serialize_request(&key)?.pem()?;
    let request = json!({
        "apiVersion": "certificates.k8s.io/v1",
        "kind": "CertificateSigningRequest",
        "metadata": {"generateName": "csr-"},
        "spec": {
            "request": base64::engine::general_purpose::STANDARD.encode(request_pem),
            "signerName": signer,
            "usages": usages,
        },
    });
    let scope = csr_scope();
    let created = client
        .create(scope, request)
        .await
        .map_err(|e| match e.code() {
            401 => format!("the server refused the join token: {}", e.message()),
            403 => format!(
                "the join token may not ask for a node certificate: {}",
                e.message()
            ),
            _ => format!("cannot create the certificate request: {e}"),
        })?;
    let name = created["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    tracing::info!(request = %name, node = %node_name, "waiting for the node's certificate request to be approved and signed");
    let cert_pem = tokio::time::timeout(timeout, wait_for_certificate(client, &name, created))
        .await
        .map_err(|_| {
            format!(
                "the certificate request {name} was not approved and signed within {timeout:?} (see kubectl get csr {name})"
            )
        })??;
    Ok(NodeCredential::new(
        key.serialize_pem(),
        cert_pem,
        node_name,
    )?)
}

fn csr_scope() -> Scope<'static> {
    Scope {
        resource: &skiff_api::kinds::certificate_signing_request::V1,
        namespace: None,
    }
}

/// Where a certificate request stands.
#[derive(Debug, PartialEq, Eq)]
enum RequestOutcome {
    /// Neither decided nor signed yet (or approved and not yet signed).
    Pending,
    /// Signed: the certificate, PEM.
    Issued(String),
    /// Denied or failed, with why.
    Refused(String),
}

/// What `csr` says of its request: its certificate once issued, a `Denied` or `Failed`
/// condition's reason and message, else still pending.
fn request_outcome(csr: &Value) -> RequestOutcome {
    let name = csr["metadata"]["name"].as_str().unwrap_or_default();
    for condition in csr["status"]["conditions"].as_array().into_iter().flatten() {
        let kind = condition["type"].as_str().unwrap_or_default();
        if matches!(kind, "Denied" | "Failed") && condition["status"].as_str() != Some("False") {
            let reason = condition["reason"].as_str().unwrap_or_default();
            let message = condition["message"].as_str().unwrap_or_default();
            return RequestOutcome::Refused(format!(
                "the certificate request {name} was {} ({reason}): {message}",
                kind.to_ascii_lowercase()
            ));
        }
    }
    let issued = csr["status"]["certificate"]
        .as_str()
        .filter(|c| !c.is_empty())
        .and_then(|c| base64::engine::general_purpose::STANDARD.decode(c).ok())
        .and_then(|pem| String::from_utf8(pem).ok());
    match issued {
        Some(pem) => RequestOutcome::Issued(pem),
        None => RequestOutcome::Pending,
    }
}

/// Follows the request `name` (as created: `latest`) until it is issued or refused; the
/// caller bounds the wait.
async fn wait_for_certificate(
    client: &dyn Client,
    name: &str,
    mut latest: Value,
) -> Result<String, String> {
    loop {
        match request_outcome(&latest) {
            RequestOutcome::Issued(pem) => return Ok(pem),
            RequestOutcome::Refused(why) => return Err(why),
            RequestOutcome::Pending => {}
        }
        let options = ListOptions {
            field_selector: Some(format!("metadata.name={name}")),
            resource_version: latest["metadata"]["resourceVersion"]
                .as_str()
                .map(str::to_string),
            allow_bookmarks: true,
            ..ListOptions::default()
        };
        let mut events = client
            .watch(csr_scope(), &options)
            .await
            .map_err(|e| format!("cannot watch the certificate request {name}: {e}"))?;
        let mut relist = true;
        while let Some(event) = events.next().await {
            match event.event_type {
                "ADDED" | "MODIFIED" => {
                    latest = event.object;
                    if request_outcome(&latest) != RequestOutcome::Pending {
                        relist = false;
                        break;
                    }
                }
                "DELETED" => {
                    return Err(format!(
                        "the certificate request {name} was deleted before it was issued"
                    ))
                }
                _ => {}
            }
        }
        if relist {
            // The watch ended (or its revision expired): read the request again and follow
            // it from there.
            latest = client
                .get(csr_scope(), name)
                .await
                .map_err(|e| format!("cannot read the certificate request {name}: {e}"))?;
        }
    }
}

/// When to renew a certificate valid from `not_before` to `not_after` (seconds since the
/// epoch), as the kubelet does: at 70 % of its life plus up to 20 % more, `jitter` (0 to 1)
/// of that. A certificate with no life left is renewed at once (at `not_before`).
pub fn renewal_time(not_before: i64, not_after: i64, jitter: f64) -> i64 {
    let Some(lifetime) = not_after.checked_sub(not_before).filter(|l| *l > 0) else {
        return not_before;
    };
    let jitter = if jitter.is_finite() {
        jitter.clamp(0.0, 1.0)
    } else {
        0.0
    };
    // In thousandths of the lifetime, in integers, so 90 % of 100 s is 90 s exactly.
    let thousandths = 700 + (200.0 * jitter).round() as i128;
    let share = i128::from(lifetime) * thousandths / 1000;
    not_before.saturating_add(i64::try_from(share).unwrap_or(i64::MAX))
}

/// What renewing the node's certificate needs.
struct Renewal {
    client: Arc<SwappableClient>,
    /// The servers, the one joined through first.
    servers: Vec<String>,
    ca_pem: Vec<u8>,
    node_name: String,
    data_dir: PathBuf,
    timeout: Duration,
}

/// Renews the node's certificate between 70 and 90 % of each certificate's life, with the
/// current certificate as the credential; a failed attempt is retried shortly.
async fn renew_forever(
    renewal: Renewal,
    mut credential: NodeCredential,
    shutdown: impl std::future::Future<Output = ()> + Send,
) {
    tokio::pin!(shutdown);
    let mut due = renewal_time(
        credential.not_before,
        credential.not_after,
        rand::random::<f64>(),
    );
    loop {
        let wait = u64::try_from(due.saturating_sub(now_seconds())).unwrap_or(0);
        tokio::select! {
            _ = &mut shutdown => return,
            _ = tokio::time::sleep(Duration::from_secs(wait)) => {}
        }
        let current = renewal.client.current();
        match request_certificate(&*current, &renewal.node_name, renewal.timeout).await {
            Ok(renewed) => {
                let stored = renewed.store(&renewal.data_dir);
                let client = node_client(&renewal.servers, &renewal.ca_pem, &renewed);
                match (stored, client) {
                    (Ok(()), Ok(client)) => {
                        renewal.client.replace(Arc::new(client));
                        tracing::info!(
                            not_after = renewed.not_after,
                            "renewed the node's client certificate"
                        );
                        credential = renewed;
                        due = renewal_time(
                            credential.not_before,
                            credential.not_after,
                            rand::random::<f64>(),
                        );
                        continue;
                    }
                    (Err(error), _) => {
                        tracing::warn!(%error, "cannot store the renewed certificate")
                    }
                    (_, Err(error)) => {
                        tracing::warn!(%error, "the renewed certificate is unusable")
                    }
                }
            }
            Err(error) => tracing::warn!(%error, "cannot renew the node's client certificate"),
        }
        due = now_seconds().saturating_add(RENEWAL_RETRY.as_secs() as i64);
    }
}

/// The kubelet endpoint's TLS with `serving` as its certificate: HTTP/1.1, client
/// certificates checked against the cluster CA.
fn kubelet_serving_config(
    serving: &NodeCredential,
    ca_pem: &[u8],
) -> AgentResult<rustls::ServerConfig> {
    let mut tls = skiff_apiserver::client_certs::server_config(
        serving.cert_pem.as_bytes(),
        serving.key_pem.as_bytes(),
        ca_pem,
    )?;
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(tls)
}

/// What renewing the kubelet endpoint's serving certificate needs.
struct ServingRenewal {
    client: Arc<SwappableClient>,
    ca_pem: Vec<u8>,
    node_name: String,
    data_dir: PathBuf,
    timeout: Duration,
    usage: NodeCertificateUse,
    /// Where the endpoint takes its TLS from for each new connection.
    tls: tokio::sync::watch::Sender<Arc<rustls::ServerConfig>>,
}

/// Renews the serving certificate between 70 and 90 % of each certificate's life, as the
/// client certificate is renewed; connections accepted after a renewal present the new one.
async fn renew_serving_forever(
    renewal: ServingRenewal,
    mut credential: NodeCredential,
    shutdown: impl std::future::Future<Output = ()> + Send,
) {
    tokio::pin!(shutdown);
    let mut due = renewal_time(
        credential.not_before,
        credential.not_after,
        rand::random::<f64>(),
    );
    loop {
        let wait = u64::try_from(due.saturating_sub(now_seconds())).unwrap_or(0);
        tokio::select! {
            _ = &mut shutdown => return,
            _ = tokio::time::sleep(Duration::from_secs(wait)) => {}
        }
        let current = renewal.client.current();
        let renewed = request_node_certificate(
            &*current,
            &renewal.node_name,
            renewal.timeout,
            &renewal.usage,
        )
        .await
        .and_then(|renewed| {
            renewed.store_files(&renewal.data_dir, (SERVING_KEY_FILE, SERVING_CERT_FILE))?;
            let tls = kubelet_serving_config(&renewed, &renewal.ca_pem)?;
            Ok((renewed, tls))
        });
        match renewed {
            Ok((renewed, tls)) => {
                renewal.tls.send_replace(Arc::new(tls));
                tracing::info!(
                    not_after = renewed.not_after,
                    "renewed the kubelet endpoint's serving certificate"
                );
                credential = renewed;
                due = renewal_time(
                    credential.not_before,
                    credential.not_after,
                    rand::random::<f64>(),
                );
            }
            Err(error) => {
                tracing::warn!(%error, "cannot renew the kubelet endpoint's serving certificate");
                due = now_seconds().saturating_add(RENEWAL_RETRY.as_secs() as i64);
            }
        }
    }
}

/// A [`Client`] whose connection can be replaced while components hold it: a renewed
/// certificate takes effect for every call made after the swap.
struct SwappableClient {
    current: RwLock<Arc<dyn Client>>,
}

impl SwappableClient {
    fn new(client: impl Client) -> SwappableClient {
        SwappableClient {
            current: RwLock::new(Arc::new(client)),
        }
    }

    fn current(&self) -> Arc<dyn Client> {
        match self.current.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn replace(&self, client: Arc<dyn Client>) {
        match self.current.write() {
            Ok(mut guard) => *guard = client,
            Err(poisoned) => *poisoned.into_inner() = client,
        }
    }
}

#[async_trait]
impl Client for SwappableClient {
    async fn get(&self, scope: Scope<'_>, name: &str) -> Result<Value, ClientError> {
        self.current().get(scope, name).await
    }
    async fn list(
        &self,
        scope: Scope<'_>,
        options: &ListOptions,
    ) -> Result<ObjectList, ClientError> {
        self.current().list(scope, options).await
    }
    async fn watch(
        &self,
        scope: Scope<'_>,
        options: &ListOptions,
    ) -> Result<BoxStream<'static, WatchEvent>, ClientError> {
        self.current().watch(scope, options).await
    }
    async fn create(&self, scope: Scope<'_>, object: Value) -> Result<Value, ClientError> {
        self.current().create(scope, object).await
    }
    async fn update(&self, scope: Scope<'_>, object: Value) -> Result<Value, ClientError> {
        self.current().update(scope, object).await
    }
    async fn update_status(&self, scope: Scope<'_>, object: Value) -> Result<Value, ClientError> {
        self.current().update_status(scope, object).await
    }
    async fn patch(
        &self,
        scope: Scope<'_>,
        name: &str,
        patch_type: PatchType,
        patch: Value,
        status: bool,
    ) -> Result<Value, ClientError> {
        self.current()
            .patch(scope, name, patch_type, patch, status)
            .await
    }
    async fn delete(
        &self,
        scope: Scope<'_>,
        name: &str,
        options: &DeleteOptions,
    ) -> Result<Option<Value>, ClientError> {
        self.current().delete(scope, name, options).await
    }
    async fn bind_pod(&self, namespace: &str, name: &str, node: &str) -> Result<(), ClientError> {
        self.current().bind_pod(namespace, name, node).await
    }
    async fn create_token(
        &self,
        namespace: &str,
        name: &str,
        request: Value,
    ) -> Result<Value, ClientError> {
        self.current().create_token(namespace, name, request).await
    }
    fn as_user(&self, user: UserInfo) -> Option<Arc<dyn Client>> {
        self.current().as_user(user)
    }
    async fn update_approval(&self, scope: Scope<'_>, object: Value) -> Result<Value, ClientError> {
        self.current().update_approval(scope, object).await
    }
    async fn get_scale(&self, scope: Scope<'_>, name: &str) -> Result<Value, ClientError> {
        self.current().get_scale(scope, name).await
    }
    async fn update_scale(&self, scope: Scope<'_>, scale: Value) -> Result<Value, ClientError> {
        self.current().update_scale(scope, scale).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// How the fake server answers a node's certificate request.
    #[derive(Clone, Copy, PartialEq)]
    enum Answer {
        /// The watch reports it approved and signed.
        IssueOnWatch,
        /// The watch ends with nothing; a read finds it signed.
        IssueOnRead,
        /// The watch reports it denied.
        Deny,
        /// Nothing ever happens.
        Ignore,
    }

    /// An API server holding one certificate request, signing with a CA of its own.
    struct FakeServer {
        answer: Answer,
        created: std::sync::Mutex<Option<Value>>,
    }

    impl FakeServer {
        fn new(answer: Answer) -> FakeServer {
            FakeServer {
                answer,
                created: std::sync::Mutex::new(None),
            }
        }

        fn created(&self) -> Value {
            self.created
                .lock()
                .unwrap()
                .clone()
                .expect("a request was created")
        }

        /// The request as the server has it after its decision.
        fn decided(&self, approve: bool) -> Value {
            let mut csr = self.created();
            csr["metadata"]["resourceVersion"] = json!("2");
            if !approve {
                csr["status"] = json!({"conditions": [{"type": "Denied", "status": "True",
                    "reason": "KubectlDeny", "message": "not this one"}]});
                return csr;
            }
            let request = base64::engine::general_purpose::STANDARD
                .decode(csr["spec"]["request"].as_str().unwrap())
                .unwrap();
            let request = rcgen::CertificateSigningRequestParams::from_pem(
                std::str::from_utf8(&request).unwrap(),
            )
            .unwrap();
            let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
            ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
            let issuer = rcgen::Issuer::from_params(&ca, rcgen::KeyPair::generate().unwrap());
            let cert = request.signed_by(&issuer).unwrap();
            csr["status"] = json!({
                "conditions": [{"type": "Approved", "status": "True", "reason": "AutoApproved"}],
                "certificate": base64::engine::general_purpose::STANDARD.encode(cert.pem()),
            });
            csr
        }
    }

    fn unserved() -> ClientError {
        ClientError::UnknownResource("not in this fake".into())
    }

    #[async_trait]
    impl Client for FakeServer {
        async fn get(&self, _: Scope<'_>, _: &str) -> Result<Value, ClientError> {
            Ok(match self.answer {
                Answer::IssueOnRead => self.decided(true),
                _ => self.created(),
            })
        }
        async fn list(&self, _: Scope<'_>, _: &ListOptions) -> Result<ObjectList, ClientError> {
            Err(unserved())
        }
        async fn watch(
            &self,
            _: Scope<'_>,
            options: &ListOptions,
        ) -> Result<BoxStream<'static, WatchEvent>, ClientError> {
            assert_eq!(
                options.field_selector.as_deref(),
                Some("metadata.name=csr-abcde")
            );
            let events = match self.answer {
                Answer::IssueOnWatch => vec![self.decided(true)],
                Answer::Deny => vec![self.decided(false)],
                Answer::IssueOnRead => vec![],
                Answer::Ignore => return Ok(futures::stream::pending().boxed()),
            };
            Ok(
                futures::stream::iter(events.into_iter().map(|object| WatchEvent {
                    event_type: "MODIFIED",
                    object,
                }))
                .boxed(),
            )
        }
        async fn create(&self, _: Scope<'_>, mut object: Value) -> Result<Value, ClientError> {
            object["metadata"]["name"] = json!("csr-abcde");
            object["metadata"]["resourceVersion"] = json!("1");
            *self.created.lock().unwrap() = Some(object.clone());
            Ok(object)
        }
        async fn update(&self, _: Scope<'_>, _: Value) -> Result<Value, ClientError> {
            Err(unserved())
        }
        async fn update_status(&self, _: Scope<'_>, _: Value) -> Result<Value, ClientError> {
            Err(unserved())
        }
        async fn patch(
            &self,
            _: Scope<'_>,
            _: &str,
            _: PatchType,
            _: Value,
            _: bool,
        ) -> Result<Value, ClientError> {
            Err(unserved())
        }
        async fn delete(
            &self,
            _: Scope<'_>,
            _: &str,
            _: &DeleteOptions,
        ) -> Result<Option<Value>, ClientError> {
            Err(unserved())
        }
        async fn bind_pod(&self, _: &str, _: &str, _: &str) -> Result<(), ClientError> {
            Err(unserved())
        }
    }

    #[tokio::test]
    async fn a_node_asks_for_its_client_certificate_and_takes_it_once_issued() {
        for answer in [Answer::IssueOnWatch, Answer::IssueOnRead] {
            let server = FakeServer::new(answer);
            let credential = request_certificate(&server, "n1", Duration::from_secs(10))
                .await
                .expect("the certificate is issued");
            let sent = server.created();
            assert_eq!(sent["metadata"]["generateName"], "csr-");
            assert_eq!(sent["spec"]["signerName"], KUBELET_CLIENT_SIGNER);
            assert_eq!(
                sent["spec"]["usages"],
                json!(["digital signature", "client auth"])
            );
            let request = base64::engine::general_purpose::STANDARD
                .decode(sent["spec"]["request"].as_str().unwrap())
                .unwrap();
            let request = rcgen::CertificateSigningRequestParams::from_pem(
                std::str::from_utf8(&request).unwrap(),
            )
            .unwrap();
            let subject: Vec<String> = request
                .params
                .distinguished_name
                .iter()
                .map(|(_, value)| match value {
                    rcgen::DnValue::Utf8String(s) => s.clone(),
                    other => format!("{other:?}"),
                })
                .collect();
            assert_eq!(subject, ["system:node:n1", "system:nodes"]);
            assert!(credential.not_after > credential.not_before);
            let kept = rcgen::KeyPair::from_pem(&credential.key_pem).expect("the key is PEM");
            let (_, block) = x509_parser::pem::parse_x509_pem(credential.cert_pem.as_bytes())
                .expect("the certificate is PEM");
            let cert = block.parse_x509().expect("the certificate is X.509");
            use rcgen::PublicKeyData;
            assert_eq!(
                &*cert.public_key().subject_public_key.data,
                kept.der_bytes(),
                "the certificate is for the key the node keeps"
            );
        }
    }

    #[tokio::test]
    async fn a_certificate_past_its_renewal_time_is_renewed_and_the_client_swapped() {
        let dir = tempfile::tempdir().unwrap();
        let fake: Arc<dyn Client> = Arc::new(FakeServer::new(Answer::IssueOnWatch));
        let client = Arc::new(SwappableClient {
            current: RwLock::new(fake.clone()),
        });
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca_pem = ca.self_signed(&ca_key).unwrap().pem().into_bytes();
        // Valid from the epoch for 100 seconds: long past its renewal time.
        let expired = NodeCredential {
            key_pem: String::new(),
            cert_pem: String::new(),
            not_before: 0,
            not_after: 100,
        };
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(renew_forever(
            Renewal {
                client: client.clone(),
                servers: vec!["https://127.0.0.1:6443".to_string()],
                ca_pem,
                node_name: "n1".to_string(),
                data_dir: dir.path().to_path_buf(),
                timeout: Duration::from_secs(10),
            },
            expired,
            async move {
                let _ = stopped.await;
            },
        ));
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while Arc::ptr_eq(&client.current(), &fake) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the certificate was not renewed in time"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let kept = NodeCredential::load(dir.path(), "n1", now_seconds())
            .expect("the renewed certificate is stored for n1");
        assert!(kept.not_after > now_seconds());
        stop.send(()).unwrap();
        tokio::time::timeout(Duration::from_secs(10), task)
            .await
            .expect("renewal stops on shutdown")
            .unwrap();
    }

    #[tokio::test]
    async fn a_denied_or_unanswered_request_ends_with_a_clear_error() {
        let denied = request_certificate(
            &FakeServer::new(Answer::Deny),
            "n1",
            Duration::from_secs(10),
        )
        .await
        .err()
        .expect("a denied request fails")
        .to_string();
        assert_eq!(
            denied,
            "the certificate request csr-abcde was denied (KubectlDeny): not this one"
        );
        let unanswered = request_certificate(
            &FakeServer::new(Answer::Ignore),
            "n1",
            Duration::from_millis(200),
        )
        .await
        .err()
        .expect("an unanswered request times out")
        .to_string();
        assert!(
            unanswered.starts_with(
                "the certificate request csr-abcde was not approved and signed within 200ms"
            ),
            "{unanswered}"
        );
    }

    #[test]
    fn renewal_falls_between_seventy_and_ninety_percent_of_the_life() {
        let year = 365 * 24 * 3600;
        let cases: &[(i64, i64, f64, i64)] = &[
            // not_before, not_after, jitter, renew at
            (0, 100, 0.0, 70),
            (0, 100, 1.0, 90),
            (0, 100, 0.5, 80),
            (1_000, 1_100, 0.25, 1_075),
            (
                1_700_000_000,
                1_700_000_000 + year,
                0.0,
                1_700_000_000 + year * 7 / 10,
            ),
            (
                1_700_000_000,
                1_700_000_000 + year,
                1.0,
                1_700_000_000 + year * 9 / 10,
            ),
            // Out-of-range jitter is held to the window.
            (0, 100, -3.0, 70),
            (0, 100, 7.0, 90),
            (0, 100, f64::NAN, 70),
            // No life left: renew at once.
            (500, 500, 0.5, 500),
            (500, 100, 0.5, 500),
            // Extreme bounds do not overflow.
            (i64::MIN, i64::MAX, 0.5, i64::MIN),
        ];
        for &(not_before, not_after, jitter, expected) in cases {
            assert_eq!(
                renewal_time(not_before, not_after, jitter),
                expected,
                "renewal of [{not_before}, {not_after}] with jitter {jitter}"
            );
        }
    }

    #[test]
    fn a_request_is_issued_refused_or_pending_from_its_status() {
        let pem = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        let encoded = base64::engine::general_purpose::STANDARD.encode(pem);
        let csr = |status: Value| json!({"metadata": {"name": "csr-x"}, "status": status});
        assert_eq!(request_outcome(&csr(json!({}))), RequestOutcome::Pending);
        assert_eq!(
            request_outcome(&csr(
                json!({"conditions": [{"type": "Approved", "status": "True"}]})
            )),
            RequestOutcome::Pending,
            "approved but not yet signed"
        );
        assert_eq!(
            request_outcome(&csr(json!({
                "conditions": [{"type": "Approved", "status": "True"}],
                "certificate": encoded,
            }))),
            RequestOutcome::Issued(pem.to_string())
        );
        assert_eq!(
            request_outcome(&csr(json!({"conditions": [
                {"type": "Denied", "status": "True", "reason": "KubectlDeny", "message": "no"}
            ]}))),
            RequestOutcome::Refused(
                "the certificate request csr-x was denied (KubectlDeny): no".to_string()
            )
        );
        assert_eq!(
            request_outcome(&csr(json!({"conditions": [
                {"type": "Approved", "status": "True"},
                {"type": "Failed", "status": "True", "reason": "SignerValidationFailure", "message": "bad"}
            ]}))),
            RequestOutcome::Refused(
                "the certificate request csr-x was failed (SignerValidationFailure): bad"
                    .to_string()
            )
        );
    }

    #[test]
    fn a_kept_serving_certificate_must_name_the_nodes_current_names_and_address() {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["n1".to_string()]).unwrap();
        params
            .subject_alt_names
            .push(rcgen::SanType::IpAddress("198.18.0.2".parse().unwrap()));
        let cert = params.self_signed(&key).unwrap().pem();
        let serving = |addresses: &[&str], names: &[&str]| NodeCertificateUse::Serving {
            addresses: addresses.iter().map(|a| a.parse().unwrap()).collect(),
            names: names.iter().map(|n| n.to_string()).collect(),
        };
        assert!(serving(&["198.18.0.2"], &["n1"]).alternative_names_match(&cert));
        assert!(
            !serving(&["198.18.0.3"], &["n1"]).alternative_names_match(&cert),
            "a changed address"
        );
        assert!(
            !serving(&["198.18.0.2"], &["n2"]).alternative_names_match(&cert),
            "a changed name"
        );
        assert!(
            !serving(&["198.18.0.2", "::1"], &["n1"]).alternative_names_match(&cert),
            "an added address"
        );
        assert!(!NodeCertificateUse::Client.alternative_names_match(&cert));
        assert!(!serving(&["198.18.0.2"], &["n1"]).alternative_names_match("not PEM"));
    }

    #[test]
    fn a_kept_certificate_is_reused_only_for_its_own_node_while_valid() {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "system:node:n1");
        params.not_before = rcgen::date_time_ymd(2020, 1, 1);
        params.not_after = rcgen::date_time_ymd(2030, 1, 1);
        let cert = params.self_signed(&key).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let credential =
            NodeCredential::new(key.serialize_pem(), cert.pem(), "n1").expect("n1's certificate");
        credential.store(dir.path()).unwrap();
        use std::os::unix::fs::PermissionsExt;
        for file in [KEY_FILE, CERT_FILE] {
            let mode = std::fs::metadata(dir.path().join(file))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{file} is private");
        }
        let in_2025 = 1_735_689_600;
        let in_2031 = 1_924_992_000;
        assert!(NodeCredential::load(dir.path(), "n1", in_2025).is_some());
        assert!(
            NodeCredential::load(dir.path(), "n2", in_2025).is_none(),
            "another node's certificate"
        );
        assert!(
            NodeCredential::load(dir.path(), "n1", in_2031).is_none(),
            "an expired certificate"
        );
    }
}
