//! Cluster DNS throughput and latency over loopback UDP: a zone of 1,000 Services (100 of them
//! headless with 5 endpoints each), several clients asking A, SRV and NXDOMAIN questions in
//! turn, each waiting for its answer before the next. Prints queries/s, p50 and p99, and the
//! cost of applying one EndpointSlice change to the zone.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, Query};
use hickory_proto::rr::{Name, RecordType};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use serde_json::json;
use skiff_dns::server::{start, DnsServerConfig, ZoneHandle};
use skiff_dns::ClusterZone;
use tokio::net::UdpSocket;

const SERVICES: usize = 1000;
const HEADLESS_EVERY: usize = 10;
const CLIENTS: usize = 4;
const QUERIES_PER_CLIENT: usize = 5000;

fn objects() -> (Vec<Service>, Vec<EndpointSlice>) {
    let mut services = Vec::new();
    let mut slices = Vec::new();
    for i in 0..SERVICES {
        let headless = i % HEADLESS_EVERY == 0;
        let cluster_ip = if headless {
            "None".to_string()
        } else {
            format!("198.19.{}.{}", i / 250, i % 250 + 2)
        };
        services.push(
            serde_json::from_value(
                json!({"metadata": {"name": format!("svc-{i}"), "namespace": "bench"},
                "spec": {"clusterIP": cluster_ip, "ports": [{"name": "http", "port": 80}]}}),
            )
            .expect("service"),
        );
        let endpoints: Vec<serde_json::Value> = (0..5)
            .map(|e| json!({"addresses": [format!("198.18.{}.{}", i / 50, (i % 50) * 5 + e)], "conditions": {"ready": true}}))
            .collect();
        slices.push(
            serde_json::from_value(
                json!({"metadata": {"name": format!("svc-{i}-x"), "namespace": "bench",
                    "labels": {"kubernetes.io/service-name": format!("svc-{i}")}},
                "addressType": "IPv4", "ports": [{"name": "http", "port": 8080}],
                "endpoints": endpoints}),
            )
            .expect("slice"),
        );
    }
    (services, slices)
}

fn questions() -> Vec<(Name, RecordType)> {
    let mut questions = Vec::new();
    for i in (0..SERVICES).step_by(7) {
        let service = format!("svc-{i}.bench.svc.cluster.local.");
        questions.push((Name::from_ascii(&service).unwrap(), RecordType::A));
        questions.push((
            Name::from_ascii(format!("_http._tcp.{service}")).unwrap(),
            RecordType::SRV,
        ));
        questions.push((
            Name::from_ascii(format!("{service}bench.svc.cluster.local.")).unwrap(),
            RecordType::A,
        ));
    }
    questions
}

async fn client(
    server: SocketAddr,
    questions: Vec<(Name, RecordType)>,
    offset: usize,
) -> Vec<Duration> {
    let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    socket.connect(server).await.expect("connect");
    let mut buffer = vec![0u8; 4096];
    let mut latencies = Vec::with_capacity(QUERIES_PER_CLIENT);
    for n in 0..QUERIES_PER_CLIENT {
        let (name, record_type) = &questions[(n + offset) % questions.len()];
        let mut message = Message::query();
        let id = (n & 0xffff) as u16;
        message.metadata.id = id;
        message.metadata.recursion_desired = true;
        message.add_query(Query::query(name.clone(), *record_type));
        let bytes = message.to_vec().expect("encode");
        let started = Instant::now();
        socket.send(&bytes).await.expect("send");
        loop {
            let length = tokio::time::timeout(Duration::from_secs(5), socket.recv(&mut buffer))
                .await
                .expect("answer within 5 s")
                .expect("recv");
            let reply = Message::from_vec(&buffer[..length]).expect("decode");
            if reply.metadata.id == id {
                break;
            }
        }
        latencies.push(started.elapsed());
    }
    latencies
}

fn percentile(sorted: &[Duration], fraction: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * fraction).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let (services, slices) = objects();

    let built = Instant::now();
    let zone = ClusterZone::from_snapshot("cluster.local", &services, &slices).expect("zone");
    println!(
        "zone of {SERVICES} Services and {} slices built in {:?}",
        slices.len(),
        built.elapsed()
    );

    let mut update_zone = zone.clone();
    let rounds = 10_000;
    let started = Instant::now();
    for n in 0..rounds {
        update_zone.apply_endpoint_slice(&slices[n % slices.len()]);
    }
    println!(
        "one EndpointSlice applied in {:?} on average",
        started.elapsed() / rounds as u32
    );

    runtime.block_on(async {
        let handle = ZoneHandle::new(zone);
        let mut config = DnsServerConfig::new("127.0.0.1:0".parse().unwrap());
        config.upstream_resolv_conf = None;
        let dns = start(&config, handle).await.expect("server");
        let server = dns.address();
        let questions = questions();
        // Warm up.
        client(server, questions.clone(), 0).await;
        let started = Instant::now();
        let tasks: Vec<_> = (0..CLIENTS)
            .map(|c| tokio::spawn(client(server, questions.clone(), c * 97)))
            .collect();
        let mut latencies = Vec::new();
        for task in tasks {
            latencies.extend(task.await.expect("client"));
        }
        let elapsed = started.elapsed();
        latencies.sort();
        println!(
            "{} queries from {CLIENTS} clients over loopback UDP in {elapsed:?}: {:.0} queries/s, p50 {:?}, p99 {:?}",
            latencies.len(),
            latencies.len() as f64 / elapsed.as_secs_f64(),
            percentile(&latencies, 0.50),
            percentile(&latencies, 0.99),
        );
        dns.shutdown().await.expect("shutdown");
    });
}
