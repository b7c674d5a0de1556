//! The DNS server on a loopback port, asked real questions over UDP and TCP, with a fake
//! upstream resolver on loopback for names outside the cluster.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hickory_proto::op::{Edns, Message, MessageType, Query, ResponseCode};
use hickory_proto::rr::rdata::{A, SOA};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use serde_json::json;
use skiff_dns::server::{start, DnsServerConfig, RunningDns, ZoneHandle};
use skiff_dns::ClusterZone;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};

/// How long any single exchange may take before the test fails.
const DEADLINE: Duration = Duration::from_secs(5);

fn service(value: serde_json::Value) -> Service {
    serde_json::from_value(value).expect("a valid Service")
}

fn slice(value: serde_json::Value) -> EndpointSlice {
    serde_json::from_value(value).expect("a valid EndpointSlice")
}

fn name(text: &str) -> Name {
    Name::from_ascii(text).expect("a valid name")
}

fn headless_slice(count: usize) -> EndpointSlice {
    let endpoints: Vec<serde_json::Value> = (0..count)
        .map(|i| json!({"addresses": [format!("198.18.{}.{}", i / 200, i % 200 + 2)], "conditions": {"ready": true}}))
        .collect();
    slice(json!({"metadata": {"name": "db-1", "namespace": "data",
            "labels": {"kubernetes.io/service-name": "db"}},
        "addressType": "IPv4",
        "ports": [{"name": "pg", "port": 5432, "protocol": "TCP"}],
        "endpoints": endpoints}))
}

fn cluster_zone() -> ClusterZone {
    let services = [
        service(json!({"metadata": {"name": "web", "namespace": "default"},
            "spec": {"clusterIP": "198.19.0.20", "ports": [{"name": "http", "port": 80}]}})),
        service(json!({"metadata": {"name": "db", "namespace": "data"},
            "spec": {"clusterIP": "None", "ports": [{"name": "pg", "port": 5432}]}})),
        service(json!({"metadata": {"name": "ext", "namespace": "default"},
            "spec": {"type": "ExternalName", "externalName": "outside.example"}})),
    ];
    let slices = [
        slice(json!({"metadata": {"name": "web-1", "namespace": "default",
                "labels": {"kubernetes.io/service-name": "web"}},
            "addressType": "IPv4",
            "ports": [{"name": "http", "port": 8080}],
            "endpoints": [{"addresses": ["198.18.0.5"], "conditions": {"ready": true}}]})),
        slice(json!({"metadata": {"name": "db-1", "namespace": "data",
                "labels": {"kubernetes.io/service-name": "db"}},
            "addressType": "IPv4",
            "ports": [{"name": "pg", "port": 5432}],
            "endpoints": [
                {"addresses": ["198.18.0.7"], "hostname": "db-0", "conditions": {"ready": true}},
                {"addresses": ["198.18.0.8"], "hostname": "db-1", "conditions": {"ready": true}},
                {"addresses": ["198.18.0.9"], "hostname": "db-2", "conditions": {"ready": false}}]})),
    ];
    ClusterZone::from_snapshot("cluster.local", &services, &slices).expect("zone")
}

/// A resolver on loopback standing in for the host's: `outside.example` has an address,
/// `big.example` has 60 (truncated over UDP), every other name is NXDOMAIN. It counts the
/// questions it gets.
struct FakeUpstream {
    address: SocketAddr,
    questions: Arc<AtomicUsize>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl FakeUpstream {
    async fn start() -> Self {
        let (udp, tcp) = loop {
            let udp = UdpSocket::bind("127.0.0.1:0").await.expect("bind udp");
            if let Ok(tcp) = TcpListener::bind(udp.local_addr().unwrap()).await {
                break (udp, tcp);
            }
        };
        let address = udp.local_addr().unwrap();
        let questions = Arc::new(AtomicUsize::new(0));
        let udp_questions = questions.clone();
        let udp_task = tokio::spawn(async move {
            let mut buffer = vec![0u8; 65535];
            while let Ok((length, from)) = udp.recv_from(&mut buffer).await {
                udp_questions.fetch_add(1, Ordering::SeqCst);
                if let Some(reply) = upstream_reply(&buffer[..length], true) {
                    let _ = udp.send_to(&reply, from).await;
                }
            }
        });
        let tcp_questions = questions.clone();
        let tcp_task = tokio::spawn(async move {
            while let Ok((mut stream, _)) = tcp.accept().await {
                let tcp_questions = tcp_questions.clone();
                tokio::spawn(async move {
                    let Ok(length) = stream.read_u16().await else {
                        return;
                    };
                    let mut query = vec![0u8; usize::from(length)];
                    if stream.read_exact(&mut query).await.is_err() {
                        return;
                    }
                    tcp_questions.fetch_add(1, Ordering::SeqCst);
                    if let Some(reply) = upstream_reply(&query, false) {
                        let mut framed = (reply.len() as u16).to_be_bytes().to_vec();
                        framed.extend_from_slice(&reply);
                        let _ = stream.write_all(&framed).await;
                    }
                });
            }
        });
        Self {
            address,
            questions,
            tasks: vec![udp_task, tcp_task],
        }
    }

    fn questions(&self) -> usize {
        self.questions.load(Ordering::SeqCst)
    }
}

impl Drop for FakeUpstream {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

fn upstream_reply(query: &[u8], over_udp: bool) -> Option<Vec<u8>> {
    let query = Message::from_vec(query).ok()?;
    let question = query.queries.first()?.clone();
    let mut reply = Message::response(query.metadata.id, query.metadata.op_code);
    reply.metadata.recursion_available = true;
    reply.add_query(question.clone());
    let asked = question.name().to_ascii().to_ascii_lowercase();
    let address = |i: u8| {
        Record::from_rdata(
            question.name().clone(),
            60,
            RData::A(A(Ipv4Addr::new(198, 18, 254, i))),
        )
    };
    match (asked.as_str(), question.query_type()) {
        ("outside.example.", RecordType::A) => {
            reply.add_answer(address(7));
        }
        ("big.example.", RecordType::A) if over_udp => {
            reply.metadata.truncation = true;
        }
        ("big.example.", RecordType::A) => {
            reply.add_answers((1..=60).map(address));
        }
        ("9.2.0.192.in-addr.arpa.", RecordType::PTR) => {
            reply.add_answer(Record::from_rdata(
                question.name().clone(),
                60,
                RData::PTR(hickory_proto::rr::rdata::PTR(name("host.outside.example."))),
            ));
        }
        _ => {
            reply.metadata.response_code = ResponseCode::NXDomain;
        }
    }
    reply.to_vec().ok()
}

struct Running {
    dns: RunningDns,
    zone: ZoneHandle,
    _resolv_dir: tempfile::TempDir,
}

async fn start_dns(upstream: Option<SocketAddr>, upstream_timeout: Duration) -> Running {
    let resolv_dir = tempfile::tempdir().expect("temp dir");
    let resolv_conf = resolv_dir.path().join("resolv.conf");
    let upstream_port = upstream.map_or(53, |u| u.port());
    let nameserver = upstream.map_or("127.0.0.1".to_string(), |u| u.ip().to_string());
    std::fs::write(
        &resolv_conf,
        format!("search example\nnameserver {nameserver}\n"),
    )
    .unwrap();
    let mut config = DnsServerConfig::new("127.0.0.1:0".parse().unwrap());
    config.upstream_resolv_conf = Some(resolv_conf);
    config.upstream_port = upstream_port;
    config.upstream_timeout = upstream_timeout;
    let zone = ZoneHandle::new(cluster_zone());
    let dns = start(&config, zone.clone())
        .await
        .expect("dns server starts");
    Running {
        dns,
        zone,
        _resolv_dir: resolv_dir,
    }
}

fn query_bytes(
    question: &str,
    record_type: RecordType,
    edns_payload: Option<u16>,
) -> (u16, Vec<u8>) {
    let mut message = Message::query();
    let id = 0x5a5a;
    message.metadata.id = id;
    message.metadata.recursion_desired = true;
    message.add_query(Query::query(name(question), record_type));
    if let Some(payload) = edns_payload {
        let mut edns = Edns::new();
        edns.set_max_payload(payload);
        message.set_edns(edns);
    }
    (id, message.to_vec().expect("encode query"))
}

/// One question over UDP, as a stub resolver asks it.
async fn ask_udp(
    server: SocketAddr,
    question: &str,
    record_type: RecordType,
    edns_payload: Option<u16>,
) -> Message {
    let (id, bytes) = query_bytes(question, record_type, edns_payload);
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    socket.connect(server).await.unwrap();
    socket.send(&bytes).await.unwrap();
    let mut buffer = vec![0u8; 65535];
    let length = tokio::time::timeout(DEADLINE, socket.recv(&mut buffer))
        .await
        .unwrap_or_else(|_| {
            panic!("no UDP answer for {question} {record_type} within {DEADLINE:?}")
        })
        .unwrap();
    assert!(
        length <= usize::from(edns_payload.unwrap_or(512)),
        "UDP answer of {length} bytes exceeds the client's buffer"
    );
    let message = Message::from_vec(&buffer[..length]).expect("decode answer");
    assert_eq!(message.metadata.id, id);
    assert_eq!(message.metadata.message_type, MessageType::Response);
    message
}

/// One question over TCP.
async fn ask_tcp(server: SocketAddr, question: &str, record_type: RecordType) -> Message {
    let (id, bytes) = query_bytes(question, record_type, None);
    let exchange = async {
        let mut stream = TcpStream::connect(server).await.unwrap();
        let mut framed = (bytes.len() as u16).to_be_bytes().to_vec();
        framed.extend_from_slice(&bytes);
        stream.write_all(&framed).await.unwrap();
        let length = stream.read_u16().await.unwrap();
        let mut reply = vec![0u8; usize::from(length)];
        stream.read_exact(&mut reply).await.unwrap();
        reply
    };
    let reply = tokio::time::timeout(DEADLINE, exchange)
        .await
        .unwrap_or_else(|_| panic!("no TCP answer for {question} within {DEADLINE:?}"));
    let message = Message::from_vec(&reply).expect("decode answer");
    assert_eq!(message.metadata.id, id);
    message
}

fn texts(records: &[Record]) -> Vec<String> {
    let mut texts: Vec<String> = records.iter().map(ToString::to_string).collect();
    texts.sort();
    texts
}

#[tokio::test]
async fn answers_a_srv_ptr_and_nxdomain_with_the_soa() {
    let running = start_dns(None, Duration::from_millis(500)).await;
    let server = running.dns.address();

    let a = ask_udp(
        server,
        "web.default.svc.cluster.local.",
        RecordType::A,
        None,
    )
    .await;
    assert_eq!(a.metadata.response_code, ResponseCode::NoError);
    assert!(
        a.metadata.authoritative,
        "cluster answers are authoritative"
    );
    assert_eq!(
        texts(&a.answers),
        ["web.default.svc.cluster.local. 5 IN A 198.19.0.20"]
    );

    let srv = ask_udp(
        server,
        "_http._tcp.web.default.svc.cluster.local.",
        RecordType::SRV,
        Some(1232),
    )
    .await;
    assert_eq!(
        texts(&srv.answers),
        ["_http._tcp.web.default.svc.cluster.local. 5 IN SRV 0 100 80 web.default.svc.cluster.local."]
    );
    assert_eq!(
        texts(&srv.additionals),
        ["web.default.svc.cluster.local. 5 IN A 198.19.0.20"]
    );
    assert!(srv.edns.is_some(), "an EDNS question gets an EDNS answer");

    let ptr = ask_udp(server, "20.0.19.198.in-addr.arpa.", RecordType::PTR, None).await;
    assert_eq!(
        texts(&ptr.answers),
        ["20.0.19.198.in-addr.arpa. 5 IN PTR web.default.svc.cluster.local."]
    );

    let missing = ask_udp(
        server,
        "nope.default.svc.cluster.local.",
        RecordType::A,
        None,
    )
    .await;
    assert_eq!(missing.metadata.response_code, ResponseCode::NXDomain);
    assert!(missing.answers.is_empty());
    let [soa] = missing.authorities.as_slice() else {
        panic!(
            "NXDOMAIN carries exactly the SOA, got {:?}",
            missing.authorities
        );
    };
    assert_eq!(soa.name, name("cluster.local."));
    assert_eq!(soa.ttl, 5);
    let RData::SOA(SOA {
        mname,
        rname,
        refresh,
        retry,
        expire,
        minimum,
        serial,
        ..
    }) = &soa.data
    else {
        panic!("not an SOA: {soa}");
    };
    assert_eq!(mname, &name("ns.dns.cluster.local."));
    assert_eq!(rname, &name("hostmaster.cluster.local."));
    assert_eq!(
        (*refresh, *retry, *expire, *minimum),
        (7200, 1800, 86400, 5)
    );
    assert!(
        *serial > 1_600_000_000,
        "serial is the time of the last change: {serial}"
    );

    let nodata = ask_udp(
        server,
        "web.default.svc.cluster.local.",
        RecordType::AAAA,
        None,
    )
    .await;
    assert_eq!(nodata.metadata.response_code, ResponseCode::NoError);
    assert!(nodata.answers.is_empty());
    assert_eq!(nodata.authorities.len(), 1, "NODATA carries the SOA");

    let over_tcp = ask_tcp(server, "web.default.svc.cluster.local.", RecordType::A).await;
    assert_eq!(
        texts(&over_tcp.answers),
        ["web.default.svc.cluster.local. 5 IN A 198.19.0.20"]
    );
    running.dns.shutdown().await.expect("clean shutdown");
}

#[tokio::test]
async fn headless_services_list_ready_endpoints_and_follow_slice_updates() {
    let running = start_dns(None, Duration::from_millis(500)).await;
    let server = running.dns.address();
    let headless = "db.data.svc.cluster.local.";

    let before = ask_udp(server, headless, RecordType::A, None).await;
    assert_eq!(
        texts(&before.answers),
        [
            "db.data.svc.cluster.local. 5 IN A 198.18.0.7",
            "db.data.svc.cluster.local. 5 IN A 198.18.0.8"
        ],
        "every ready endpoint and only those"
    );
    let srv = ask_udp(
        server,
        "_pg._tcp.db.data.svc.cluster.local.",
        RecordType::SRV,
        None,
    )
    .await;
    assert_eq!(
        texts(&srv.answers),
        [
            "_pg._tcp.db.data.svc.cluster.local. 5 IN SRV 0 50 5432 db-0.db.data.svc.cluster.local.",
            "_pg._tcp.db.data.svc.cluster.local. 5 IN SRV 0 50 5432 db-1.db.data.svc.cluster.local.",
        ]
    );
    let pod = ask_udp(
        server,
        "db-1.db.data.svc.cluster.local.",
        RecordType::A,
        None,
    )
    .await;
    assert_eq!(
        texts(&pod.answers),
        ["db-1.db.data.svc.cluster.local. 5 IN A 198.18.0.8"]
    );

    // db-2 becomes ready: the very next query lists it.
    let changed_at = Instant::now();
    running.zone.apply_endpoint_slice(&slice(
        json!({"metadata": {"name": "db-1", "namespace": "data",
            "labels": {"kubernetes.io/service-name": "db"}},
        "addressType": "IPv4",
        "ports": [{"name": "pg", "port": 5432}],
        "endpoints": [
            {"addresses": ["198.18.0.7"], "hostname": "db-0", "conditions": {"ready": true}},
            {"addresses": ["198.18.0.9"], "hostname": "db-2", "conditions": {"ready": true}}]}),
    ));
    let after = ask_udp(server, headless, RecordType::A, None).await;
    let elapsed = changed_at.elapsed();
    assert_eq!(
        texts(&after.answers),
        [
            "db.data.svc.cluster.local. 5 IN A 198.18.0.7",
            "db.data.svc.cluster.local. 5 IN A 198.18.0.9"
        ]
    );
    println!("slice change to answer: {elapsed:?}");
    let gone = ask_udp(
        server,
        "db-1.db.data.svc.cluster.local.",
        RecordType::A,
        None,
    )
    .await;
    assert_eq!(gone.metadata.response_code, ResponseCode::NXDomain);

    // A new Service is answered on the next query too.
    running.zone.apply_service(&service(
        json!({"metadata": {"name": "api", "namespace": "default"},
        "spec": {"clusterIP": "198.19.0.44", "ports": [{"port": 443}]}}),
    ));
    let api = ask_udp(
        server,
        "api.default.svc.cluster.local.",
        RecordType::A,
        None,
    )
    .await;
    assert_eq!(
        texts(&api.answers),
        ["api.default.svc.cluster.local. 5 IN A 198.19.0.44"]
    );
    running.dns.shutdown().await.unwrap();
}

#[tokio::test]
async fn big_answers_are_truncated_over_udp_and_complete_over_tcp() {
    let running = start_dns(None, Duration::from_millis(500)).await;
    let server = running.dns.address();
    running.zone.apply_endpoint_slice(&headless_slice(120));

    let udp = ask_udp(server, "db.data.svc.cluster.local.", RecordType::A, None).await;
    assert!(
        udp.metadata.truncation,
        "120 addresses do not fit in 512 bytes: TC must be set"
    );
    assert!(udp.answers.len() < 120);

    let tcp = ask_tcp(server, "db.data.svc.cluster.local.", RecordType::A).await;
    assert!(!tcp.metadata.truncation);
    assert_eq!(tcp.answers.len(), 120, "TCP carries every ready endpoint");
    running.dns.shutdown().await.unwrap();
}

#[tokio::test]
async fn outside_names_go_upstream_and_cluster_names_never_do() {
    let upstream = FakeUpstream::start().await;
    let running = start_dns(Some(upstream.address), Duration::from_secs(2)).await;
    let server = running.dns.address();

    let outside = ask_udp(server, "outside.example.", RecordType::A, None).await;
    assert_eq!(outside.metadata.response_code, ResponseCode::NoError);
    assert!(
        !outside.metadata.authoritative,
        "forwarded answers are not ours"
    );
    assert_eq!(
        texts(&outside.answers),
        ["outside.example. 60 IN A 198.18.254.7"]
    );

    let unknown = ask_udp(server, "unknown.example.", RecordType::A, None).await;
    assert_eq!(unknown.metadata.response_code, ResponseCode::NXDomain);

    // A reverse name for an address outside the cluster falls through to the upstream.
    let ptr = ask_udp(server, "9.2.0.192.in-addr.arpa.", RecordType::PTR, None).await;
    assert_eq!(
        texts(&ptr.answers),
        ["9.2.0.192.in-addr.arpa. 60 IN PTR host.outside.example."]
    );

    // The upstream truncates big.example over UDP; the forwarder asks again over TCP.
    let big = ask_tcp(server, "big.example.", RecordType::A).await;
    assert_eq!(big.answers.len(), 60);

    // An ExternalName's target is resolved upstream after the CNAME.
    let external = ask_udp(
        server,
        "ext.default.svc.cluster.local.",
        RecordType::A,
        None,
    )
    .await;
    assert_eq!(
        texts(&external.answers),
        [
            "ext.default.svc.cluster.local. 5 IN CNAME outside.example.",
            "outside.example. 60 IN A 198.18.254.7",
        ]
    );

    // Search-path expansions inside the cluster domain are answered here, at once.
    let asked_upstream = upstream.questions();
    let started = Instant::now();
    for expanded in [
        "web.default.svc.cluster.local.default.svc.cluster.local.",
        "web.default.svc.cluster.local.svc.cluster.local.",
        "web.default.svc.cluster.local.cluster.local.",
    ] {
        let answer = ask_udp(server, expanded, RecordType::A, None).await;
        assert_eq!(
            answer.metadata.response_code,
            ResponseCode::NXDomain,
            "{expanded}"
        );
        assert_eq!(
            answer.authorities.len(),
            1,
            "{expanded}: SOA for negative caching"
        );
    }
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "search-path misses are quick: {:?}",
        started.elapsed()
    );
    assert_eq!(
        upstream.questions(),
        asked_upstream,
        "no cluster name is forwarded"
    );
    running.dns.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_silent_upstream_gives_servfail_after_the_timeout() {
    // A bound socket nobody answers on.
    let silent = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let running = start_dns(
        Some(silent.local_addr().unwrap()),
        Duration::from_millis(300),
    )
    .await;
    let started = Instant::now();
    let answer = ask_udp(
        running.dns.address(),
        "outside.example.",
        RecordType::A,
        None,
    )
    .await;
    assert_eq!(answer.metadata.response_code, ResponseCode::ServFail);
    assert!(started.elapsed() < DEADLINE);
    // The cluster zone still answers.
    let web = ask_udp(
        running.dns.address(),
        "web.default.svc.cluster.local.",
        RecordType::A,
        None,
    )
    .await;
    assert_eq!(web.answers.len(), 1);
    running.dns.shutdown().await.unwrap();
}

#[tokio::test]
async fn garbage_and_updates_get_error_codes_not_crashes() {
    let running = start_dns(None, Duration::from_millis(300)).await;
    let server = running.dns.address();
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    socket.connect(server).await.unwrap();
    socket.send(&[0x12, 0x34, 0xff]).await.unwrap();

    // An UPDATE is not implemented.
    let mut update = Message::query();
    update.metadata.id = 7;
    update.metadata.op_code = hickory_proto::op::OpCode::Update;
    update.add_query(Query::query(name("cluster.local."), RecordType::SOA));
    socket.send(&update.to_vec().unwrap()).await.unwrap();
    let mut buffer = vec![0u8; 4096];
    let reply = loop {
        let length = tokio::time::timeout(DEADLINE, socket.recv(&mut buffer))
            .await
            .expect("an answer to the update")
            .unwrap();
        let message = Message::from_vec(&buffer[..length]).unwrap();
        if message.metadata.id == 7 {
            break message;
        }
    };
    assert_eq!(reply.metadata.response_code, ResponseCode::NotImp);
    let transfer = ask_udp(server, "cluster.local.", RecordType::AXFR, None).await;
    assert_eq!(
        transfer.metadata.response_code,
        ResponseCode::Refused,
        "no zone transfers"
    );
    let web = ask_udp(
        server,
        "web.default.svc.cluster.local.",
        RecordType::A,
        None,
    )
    .await;
    assert_eq!(web.answers.len(), 1, "still serving");
    running.dns.shutdown().await.unwrap();
}

/// hickory's own DNS client over UDP, as an independent implementation of the protocol.
async fn hickory_client(
    server: SocketAddr,
) -> hickory_net::client::Client<hickory_net::runtime::TokioRuntimeProvider> {
    use hickory_net::runtime::TokioRuntimeProvider;
    let stream =
        hickory_net::udp::UdpClientStream::builder(server, TokioRuntimeProvider::default())
            .with_timeout(Some(DEADLINE))
            .build();
    let (client, background) =
        hickory_net::client::Client::<TokioRuntimeProvider>::from_sender(stream);
    tokio::spawn(background);
    client
}

#[tokio::test]
async fn hickory_client_gets_records_errors_forwarded_answers_and_updates() {
    use hickory_net::client::ClientHandle;
    use hickory_proto::rr::DNSClass;

    let upstream = FakeUpstream::start().await;
    let running = start_dns(Some(upstream.address), Duration::from_secs(2)).await;
    let mut client = hickory_client(running.dns.address()).await;
    let mut ask = async |question: &str, record_type: RecordType| -> Message {
        let response = tokio::time::timeout(
            DEADLINE,
            client.query(name(question), DNSClass::IN, record_type),
        )
        .await
        .unwrap_or_else(|_| panic!("{question}: no answer within {DEADLINE:?}"))
        .unwrap_or_else(|e| panic!("{question}: {e}"));
        response.into_message()
    };

    let a = ask("web.default.svc.cluster.local.", RecordType::A).await;
    assert_eq!(
        texts(&a.answers),
        ["web.default.svc.cluster.local. 5 IN A 198.19.0.20"]
    );

    let headless = ask("db.data.svc.cluster.local.", RecordType::A).await;
    assert_eq!(
        texts(&headless.answers),
        [
            "db.data.svc.cluster.local. 5 IN A 198.18.0.7",
            "db.data.svc.cluster.local. 5 IN A 198.18.0.8",
        ]
    );

    let srv = ask("_pg._tcp.db.data.svc.cluster.local.", RecordType::SRV).await;
    assert_eq!(srv.answers.len(), 2);
    assert_eq!(
        srv.additionals.len(),
        2,
        "the targets' addresses come along"
    );

    let ptr = ask("8.0.18.198.in-addr.arpa.", RecordType::PTR).await;
    assert_eq!(
        texts(&ptr.answers),
        ["8.0.18.198.in-addr.arpa. 5 IN PTR db-1.db.data.svc.cluster.local."]
    );

    let missing = ask("nope.data.svc.cluster.local.", RecordType::A).await;
    assert_eq!(missing.metadata.response_code, ResponseCode::NXDomain);
    assert_eq!(
        texts(&missing.authorities),
        [running.zone.read(|zone| zone.soa()).to_string()]
    );
    assert!(texts(&missing.authorities)[0]
        .starts_with("cluster.local. 5 IN SOA ns.dns.cluster.local. hostmaster.cluster.local. "));

    let outside = ask("outside.example.", RecordType::A).await;
    assert_eq!(
        texts(&outside.answers),
        ["outside.example. 60 IN A 198.18.254.7"]
    );

    running.zone.delete_service("default", "web");
    let deleted = ask("web.default.svc.cluster.local.", RecordType::A).await;
    assert_eq!(
        deleted.metadata.response_code,
        ResponseCode::NXDomain,
        "a deleted Service is gone on the next query"
    );
    running.dns.shutdown().await.unwrap();
}

/// Runs `busybox nslookup [-type=T] NAME 127.0.0.1:PORT`, the client pods use.
async fn busybox_nslookup(
    server: SocketAddr,
    record_type: Option<&str>,
    question: &str,
) -> (bool, String) {
    let mut command = tokio::process::Command::new("busybox");
    command.arg("nslookup");
    if let Some(record_type) = record_type {
        command.arg(format!("-type={record_type}"));
    }
    command
        .arg(question)
        .arg(server.to_string())
        .kill_on_drop(true);
    let output = tokio::time::timeout(DEADLINE, command.output())
        .await
        .unwrap_or_else(|_| {
            panic!("busybox nslookup {question} did not finish within {DEADLINE:?}")
        })
        .expect("busybox must be installed (Debian package busybox or busybox-static)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

#[tokio::test]
async fn busybox_nslookup_lists_headless_endpoints_srv_and_unknown_names() {
    let running = start_dns(None, Duration::from_millis(300)).await;
    let server = running.dns.address();

    let (ok, text) = busybox_nslookup(server, None, "db.data.svc.cluster.local").await;
    println!("{text}");
    assert!(ok, "nslookup of the headless Service failed:\n{text}");
    for ready in ["198.18.0.7", "198.18.0.8"] {
        assert!(
            text.contains(&format!("Address: {ready}")),
            "{ready} missing:\n{text}"
        );
    }
    assert!(
        !text.contains("198.18.0.9"),
        "a not-ready endpoint is listed:\n{text}"
    );

    let (ok, text) = busybox_nslookup(
        server,
        Some("srv"),
        "_http._tcp.web.default.svc.cluster.local",
    )
    .await;
    println!("{text}");
    assert!(ok, "SRV lookup failed:\n{text}");
    assert!(
        text.contains("0 100 80 web.default.svc.cluster.local"),
        "{text}"
    );

    let (ok, text) = busybox_nslookup(server, None, "nope.default.svc.cluster.local").await;
    println!("{text}");
    assert!(!ok, "an unknown name must fail:\n{text}");
    assert!(text.contains("NXDOMAIN"), "{text}");
    running.dns.shutdown().await.unwrap();
}
