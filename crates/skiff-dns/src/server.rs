//! The DNS server: answers the cluster zone from a shared [`ClusterZone`] and forwards every
//! other name to the upstream resolvers of a resolv.conf, over UDP and TCP on one address.
//!
//! The zone is behind a [`ZoneHandle`] that informers (or tests) update one object at a time;
//! the next query sees the change. Answers too big for the client's UDP buffer go out
//! truncated (TC set) and the client asks again over TCP. Names under the cluster domain are
//! never forwarded, so search-path expansions such as
//! `web.default.svc.cluster.local.default.svc.cluster.local` are answered NXDOMAIN at once.
//! Reverse names for addresses outside the cluster fall through to the upstreams, as with
//! CoreDNS's `fallthrough in-addr.arpa ip6.arpa`.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hickory_proto::op::{
    Edns, Header, HeaderCounts, Message, MessageType, Metadata, OpCode, Query, ResponseCode,
};
use hickory_proto::rr::{Name, Record, RecordType};
use hickory_server::net::runtime::Time;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponseBuilder;
use hickory_server::Server;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};

use crate::model::{ClusterZone, ReverseAnswer, ZoneAnswer, ZoneError};
use crate::resolv::parse_resolv_conf;

/// The UDP payload size advertised to upstreams (the DNS flag day's safe size).
const UPSTREAM_UDP_PAYLOAD: u16 = 1232;
/// The largest UDP response sent to a client, whatever buffer it advertises.
const MAX_UDP_PAYLOAD: u16 = 4096;
/// How many responses may wait to be written on one TCP connection.
const TCP_RESPONSE_BUFFER: usize = 32;
/// How many times to look for a port free for both UDP and TCP when asked for any port.
const PORT_ATTEMPTS: usize = 32;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    /// The listening sockets could not be bound.
    #[error("cannot listen on {address}: {source}")]
    Bind {
        /// The address asked for.
        address: SocketAddr,
        /// What the system said.
        source: std::io::Error,
    },
    /// The cluster domain is not a DNS name.
    #[error(transparent)]
    Zone(#[from] ZoneError),
    /// The server did not stop cleanly.
    #[error("dns server: {0}")]
    Server(String),
}

/// How the server runs.
#[derive(Debug, Clone)]
pub struct DnsServerConfig {
    /// Where to answer, UDP and TCP on the same port (port 0: any port free for both).
    pub listen: SocketAddr,
    /// The resolv.conf naming the upstream resolvers (the host's, usually `/etc/resolv.conf`);
    /// `None` to forward nothing (outside names get SERVFAIL).
    pub upstream_resolv_conf: Option<PathBuf>,
    /// The port of upstream nameservers, which resolv.conf cannot spell (53 outside tests).
    pub upstream_port: u16,
    /// How long to wait for one upstream before trying the next.
    pub upstream_timeout: Duration,
    /// How long an idle client TCP connection stays open.
    pub tcp_idle_timeout: Duration,
}

impl DnsServerConfig {
    /// The defaults for `listen`: the host's resolv.conf, port 53, 2 s per upstream, 5 s idle.
    pub fn new(listen: SocketAddr) -> Self {
        Self {
            listen,
            upstream_resolv_conf: Some(PathBuf::from("/etc/resolv.conf")),
            upstream_port: 53,
            upstream_timeout: Duration::from_secs(2),
            tcp_idle_timeout: Duration::from_secs(5),
        }
    }
}

/// The zone shared between whoever feeds it (informers) and the server answering from it.
#[derive(Debug, Clone)]
pub struct ZoneHandle {
    zone: Arc<RwLock<ClusterZone>>,
}

impl ZoneHandle {
    /// Shares `zone`.
    pub fn new(zone: ClusterZone) -> Self {
        let handle = Self {
            zone: Arc::new(RwLock::new(zone)),
        };
        handle.write(|_| true);
        handle
    }

    /// Adds or replaces a Service; the next query sees it.
    pub fn apply_service(&self, service: &Service) -> bool {
        self.write(|zone| zone.apply_service(service))
    }

    /// Removes a Service.
    pub fn delete_service(&self, namespace: &str, name: &str) {
        self.write(|zone| {
            zone.delete_service(namespace, name);
            true
        });
    }

    /// Adds or replaces an EndpointSlice; the next query sees it.
    pub fn apply_endpoint_slice(&self, slice: &EndpointSlice) -> bool {
        self.write(|zone| zone.apply_endpoint_slice(slice))
    }

    /// Records that a namespace exists (from a Namespace object).
    pub fn apply_namespace(&self, name: &str) {
        self.write(|zone| {
            zone.apply_namespace(name);
            true
        });
    }

    /// Forgets a Namespace object.
    pub fn delete_namespace(&self, name: &str) {
        self.write(|zone| {
            zone.delete_namespace(name);
            true
        });
    }

    /// Removes an EndpointSlice.
    pub fn delete_endpoint_slice(&self, namespace: &str, name: &str) {
        self.write(|zone| {
            zone.delete_endpoint_slice(namespace, name);
            true
        });
    }

    /// Replaces the whole zone (after an informer relists).
    pub fn replace(&self, zone: ClusterZone) {
        self.write(move |current| {
            *current = zone;
            true
        });
    }

    /// Reads the zone.
    pub fn read<T>(&self, f: impl FnOnce(&ClusterZone) -> T) -> T {
        let guard = self.zone.read().unwrap_or_else(|e| e.into_inner());
        f(&guard)
    }

    /// Changes the zone; a change stamps the SOA serial with the time, as CoreDNS does.
    fn write(&self, f: impl FnOnce(&mut ClusterZone) -> bool) -> bool {
        let mut guard = self.zone.write().unwrap_or_else(|e| e.into_inner());
        let changed = f(&mut guard);
        if changed {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or_default();
            guard.set_serial(u32::try_from(now).unwrap_or(u32::MAX));
        }
        changed
    }
}

/// Sends questions to upstream resolvers: UDP first, TCP when the answer comes back truncated.
#[derive(Debug, Clone)]
pub struct Forwarder {
    upstreams: Vec<SocketAddr>,
    timeout: Duration,
}

/// Why a question could not be forwarded.
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    /// No upstream is configured.
    #[error("no upstream resolvers")]
    NoUpstreams,
    /// Every upstream failed; the last failure.
    #[error("upstream {upstream}: {reason}")]
    Upstream {
        /// The last upstream tried.
        upstream: SocketAddr,
        /// What went wrong with it.
        reason: String,
    },
}

impl Forwarder {
    /// Forwards to `upstreams` in order, waiting `timeout` for each.
    pub fn new(upstreams: Vec<SocketAddr>, timeout: Duration) -> Self {
        Self { upstreams, timeout }
    }

    /// The upstream nameservers of a resolv.conf, on `port`, leaving out `own` (forwarding to
    /// ourselves would loop). A missing or unreadable file gives none.
    pub fn from_resolv_conf(path: &Path, port: u16, own: SocketAddr, timeout: Duration) -> Self {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(error) => {
                tracing::warn!(path = %path.display(), %error, "no upstream resolvers");
                String::new()
            }
        };
        let upstreams = parse_resolv_conf(&text)
            .config
            .nameservers
            .iter()
            .filter_map(|entry| {
                // Drop an IPv6 zone index (`fe80::1%eth0`): the address alone is kept.
                let address = entry.split('%').next().unwrap_or(entry);
                address.parse::<IpAddr>().ok()
            })
            .map(|ip| SocketAddr::new(ip, port))
            .filter(|upstream| !is_own_address(*upstream, own))
            .collect();
        Self::new(upstreams, timeout)
    }

    /// The upstreams in the order they are tried.
    pub fn upstreams(&self) -> &[SocketAddr] {
        &self.upstreams
    }

    /// Asks the upstreams `name`/`record_type` until one answers.
    pub async fn resolve(
        &self,
        name: &Name,
        record_type: RecordType,
    ) -> Result<Message, ForwardError> {
        let mut last = ForwardError::NoUpstreams;
        for upstream in &self.upstreams {
            match self.ask(*upstream, name, record_type).await {
                Ok(message) => return Ok(message),
                Err(reason) => {
                    tracing::debug!(%upstream, %reason, "upstream failed");
                    last = ForwardError::Upstream {
                        upstream: *upstream,
                        reason,
                    };
                }
            }
        }
        Err(last)
    }

    async fn ask(
        &self,
        upstream: SocketAddr,
        name: &Name,
        record_type: RecordType,
    ) -> Result<Message, String> {
        let id = random_id();
        let mut query = Message::query();
        query.metadata.id = id;
        query.metadata.recursion_desired = true;
        query.add_query(Query::query(name.clone(), record_type));
        let mut edns = Edns::new();
        edns.set_max_payload(UPSTREAM_UDP_PAYLOAD);
        query.set_edns(edns);
        let bytes = query.to_vec().map_err(|e| e.to_string())?;
        let work = async {
            let reply = udp_exchange(upstream, &bytes, id).await?;
            if reply.metadata.truncation {
                return tcp_exchange(upstream, &bytes, id).await;
            }
            Ok(reply)
        };
        match tokio::time::timeout(self.timeout, work).await {
            Ok(result) => result,
            Err(_) => Err(format!("no answer within {:?}", self.timeout)),
        }
    }
}

/// Whether an upstream is this server itself: the same address, or a loopback address on our
/// port while we listen on every address.
fn is_own_address(upstream: SocketAddr, own: SocketAddr) -> bool {
    upstream == own
        || (upstream.port() == own.port()
            && own.ip().is_unspecified()
            && upstream.ip().is_loopback())
}

/// A random message id, without a random-number crate: the standard library seeds each
/// `RandomState` randomly.
fn random_id() -> u16 {
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u8(0);
    (hasher.finish() & 0xffff) as u16
}

async fn udp_exchange(upstream: SocketAddr, bytes: &[u8], id: u16) -> Result<Message, String> {
    let local: SocketAddr = match upstream {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let socket = UdpSocket::bind(local).await.map_err(|e| e.to_string())?;
    socket.connect(upstream).await.map_err(|e| e.to_string())?;
    socket.send(bytes).await.map_err(|e| e.to_string())?;
    let mut buffer = vec![0u8; usize::from(u16::MAX)];
    loop {
        let length = socket.recv(&mut buffer).await.map_err(|e| e.to_string())?;
        // Anything not answering our id is ignored, so a stray datagram cannot pose as the
        // answer.
        if let Ok(message) = Message::from_vec(&buffer[..length]) {
            if message.metadata.id == id && message.metadata.message_type == MessageType::Response {
                return Ok(message);
            }
        }
    }
}

async fn tcp_exchange(upstream: SocketAddr, bytes: &[u8], id: u16) -> Result<Message, String> {
    let mut stream = TcpStream::connect(upstream)
        .await
        .map_err(|e| e.to_string())?;
    let length = u16::try_from(bytes.len()).map_err(|_| "query too long".to_string())?;
    let mut framed = Vec::with_capacity(bytes.len() + 2);
    framed.extend_from_slice(&length.to_be_bytes());
    framed.extend_from_slice(bytes);
    stream.write_all(&framed).await.map_err(|e| e.to_string())?;
    let reply_length = stream.read_u16().await.map_err(|e| e.to_string())?;
    let mut reply = vec![0u8; usize::from(reply_length)];
    stream
        .read_exact(&mut reply)
        .await
        .map_err(|e| e.to_string())?;
    let message = Message::from_vec(&reply).map_err(|e| e.to_string())?;
    if message.metadata.id != id {
        return Err("answer with another id".to_string());
    }
    Ok(message)
}

/// Answers DNS requests: the cluster zone from the model, the rest from upstreams.
#[derive(Debug, Clone)]
pub struct ClusterDnsHandler {
    zone: ZoneHandle,
    forwarder: Forwarder,
}

/// One response being put together.
struct Reply {
    metadata: Metadata,
    answers: Vec<Record>,
    authorities: Vec<Record>,
    additionals: Vec<Record>,
}

impl ClusterDnsHandler {
    /// Answers from `zone`, forwarding with `forwarder`.
    pub fn new(zone: ZoneHandle, forwarder: Forwarder) -> Self {
        Self { zone, forwarder }
    }

    async fn reply(&self, request: &Request) -> Reply {
        let mut metadata = Metadata::response_from_request(&request.metadata);
        metadata.recursion_available = true;
        let mut reply = Reply {
            metadata,
            answers: Vec::new(),
            authorities: Vec::new(),
            additionals: Vec::new(),
        };
        if request.metadata.message_type != MessageType::Query {
            reply.metadata.response_code = ResponseCode::FormErr;
            return reply;
        }
        if request.metadata.op_code != OpCode::Query {
            reply.metadata.response_code = ResponseCode::NotImp;
            return reply;
        }
        let Ok(info) = request.request_info() else {
            reply.metadata.response_code = ResponseCode::FormErr;
            return reply;
        };
        let name: Name = info.query.name().into();
        let record_type = info.query.query_type();
        if matches!(record_type, RecordType::AXFR | RecordType::IXFR) {
            // Zone transfers are not offered, as CoreDNS without a `transfer` block.
            reply.metadata.response_code = ResponseCode::Refused;
            return reply;
        }
        let in_zone = self.zone.read(|zone| {
            if zone.is_in_zone(&name) {
                Some(zone.answer(&name, record_type))
            } else if record_type == RecordType::PTR {
                match zone.answer_reverse(&name) {
                    ReverseAnswer::Found(answer) => Some(answer),
                    ReverseAnswer::NotInCluster => None,
                }
            } else {
                None
            }
        });
        match in_zone {
            Some(answer) => self.answer_from_zone(answer, record_type, &mut reply).await,
            None => {
                self.answer_from_upstream(&name, record_type, &mut reply)
                    .await
            }
        }
        reply
    }

    async fn answer_from_zone(
        &self,
        answer: ZoneAnswer,
        record_type: RecordType,
        reply: &mut Reply,
    ) {
        reply.metadata.authoritative = true;
        reply.metadata.response_code = answer.response_code;
        reply.answers = answer.answers;
        reply.authorities = answer.authorities;
        reply.additionals = answer.additionals;
        if let Some(target) = answer.external_target {
            // An ExternalName's target is chased upstream, as CoreDNS does, so stub resolvers
            // get addresses; without an answer the CNAME alone goes back.
            if let Ok(upstream) = self.forwarder.resolve(&target, record_type).await {
                reply.answers.extend(upstream.answers);
            }
        }
    }

    async fn answer_from_upstream(&self, name: &Name, record_type: RecordType, reply: &mut Reply) {
        match self.forwarder.resolve(name, record_type).await {
            Ok(upstream) => {
                reply.metadata.response_code = upstream.metadata.response_code;
                reply.answers = upstream.answers;
                reply.authorities = upstream.authorities;
                reply.additionals = upstream.additionals;
            }
            Err(error) => {
                tracing::debug!(%name, %error, "forwarding failed");
                reply.metadata.response_code = ResponseCode::ServFail;
            }
        }
    }
}

#[async_trait::async_trait]
impl RequestHandler for ClusterDnsHandler {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        mut response_handle: R,
    ) -> ResponseInfo {
        let reply = self.reply(request).await;
        let response_edns = request.edns.as_ref().map(|edns| {
            let mut response = Edns::new();
            response.set_max_payload(edns.max_payload().clamp(512, MAX_UDP_PAYLOAD));
            response
        });
        let mut builder = MessageResponseBuilder::new(&request.queries, None);
        if let Some(edns) = &response_edns {
            builder.edns(edns);
        }
        let metadata = reply.metadata;
        let response = builder.build(
            metadata,
            reply.answers.iter(),
            reply.authorities.iter(),
            std::iter::empty(),
            reply.additionals.iter(),
        );
        match response_handle.send_response(response).await {
            Ok(info) => info,
            Err(error) => {
                tracing::debug!(%error, "cannot send a DNS response");
                let mut failed = metadata;
                failed.response_code = ResponseCode::ServFail;
                ResponseInfo::from(Header {
                    metadata: failed,
                    counts: HeaderCounts::default(),
                })
            }
        }
    }
}

/// A running DNS server; [`RunningDns::shutdown`] stops it.
pub struct RunningDns {
    address: SocketAddr,
    server: Server<ClusterDnsHandler>,
}

impl RunningDns {
    /// Where it answers, UDP and TCP.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Stops answering and waits for the listeners to close.
    pub async fn shutdown(mut self) -> Result<(), DnsError> {
        self.server
            .shutdown_gracefully()
            .await
            .map_err(|e| DnsError::Server(e.to_string()))
    }
}

/// Starts the server for `zone` as `config` says.
pub async fn start(config: &DnsServerConfig, zone: ZoneHandle) -> Result<RunningDns, DnsError> {
    let (udp, tcp) = bind_pair(config.listen).await?;
    let address = udp.local_addr().map_err(|source| DnsError::Bind {
        address: config.listen,
        source,
    })?;
    let forwarder = match &config.upstream_resolv_conf {
        Some(path) => Forwarder::from_resolv_conf(
            path,
            config.upstream_port,
            address,
            config.upstream_timeout,
        ),
        None => Forwarder::new(Vec::new(), config.upstream_timeout),
    };
    let mut server = Server::new(ClusterDnsHandler::new(zone, forwarder));
    server.register_socket(udp);
    server.register_listener(tcp, config.tcp_idle_timeout, TCP_RESPONSE_BUFFER);
    Ok(RunningDns { address, server })
}

/// A UDP socket and a TCP listener on the same address; for port 0, a port free for both.
async fn bind_pair(listen: SocketAddr) -> Result<(UdpSocket, TcpListener), DnsError> {
    let bind_error = |source| DnsError::Bind {
        address: listen,
        source,
    };
    if listen.port() != 0 {
        let udp = UdpSocket::bind(listen).await.map_err(bind_error)?;
        let tcp = TcpListener::bind(listen).await.map_err(bind_error)?;
        return Ok((udp, tcp));
    }
    let mut last_error = None;
    for _ in 0..PORT_ATTEMPTS {
        let udp = UdpSocket::bind(listen).await.map_err(bind_error)?;
        let address = udp.local_addr().map_err(bind_error)?;
        match TcpListener::bind(address).await {
            Ok(tcp) => return Ok((udp, tcp)),
            Err(error) => last_error = Some(error),
        }
    }
    Err(bind_error(last_error.unwrap_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::AddrInUse,
            "no port free for UDP and TCP",
        )
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstreams_come_from_resolv_conf_without_ourselves() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("resolv.conf");
        std::fs::write(
            &path,
            "nameserver 198.18.250.1\nnameserver fe80::1%eth0\nnameserver 127.0.0.1\nnameserver not-an-ip\nsearch x\n",
        )
        .unwrap();
        let own: SocketAddr = "0.0.0.0:53".parse().unwrap();
        let forwarder = Forwarder::from_resolv_conf(&path, 53, own, Duration::from_secs(1));
        assert_eq!(
            forwarder.upstreams(),
            [
                "198.18.250.1:53".parse().unwrap(),
                "[fe80::1]:53".parse().unwrap()
            ],
            "loopback on our own port while we listen everywhere would loop"
        );
        let elsewhere: SocketAddr = "10.43.0.10:53".parse().unwrap();
        let forwarder = Forwarder::from_resolv_conf(&path, 53, elsewhere, Duration::from_secs(1));
        assert_eq!(forwarder.upstreams().len(), 3);
        let missing =
            Forwarder::from_resolv_conf(&dir.path().join("none"), 53, own, Duration::from_secs(1));
        assert!(missing.upstreams().is_empty());
    }
}
