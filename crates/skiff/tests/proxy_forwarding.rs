//! The proxy over a real in-process API and real TCP: endpoints are small servers on loopback
//! addresses, Services and EndpointSlices are written through the client as the endpoints
//! controller would.
//!
//! Each test uses its own loopback addresses (cluster IPs in 127.105.N.0/24, endpoints in
//! 127.55.N.0/24, node address 127.77.N.1), so tests running side by side never share a port.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use skiff_api::resources::{self, ResourceInfo};
use skiff_apiserver::registry::Registry;
use skiff_apiserver::LocalClient;
use skiff_client::{Client, DeleteOptions, Scope};
use skiff_proxy::{ClusterIpHost, Proxy, ProxyConfig, ProxyState};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::task::JoinHandle;
use tokio::time::{timeout, Instant};

/// How long any single wait in these tests may take before the test fails.
const WAIT: Duration = Duration::from_secs(10);
const BACKEND_PORT: u16 = 8080;
/// How long a drain waits after the last connection to the pod.
const QUIET_PERIOD: Duration = Duration::from_millis(300);

struct Cluster {
    _dir: tempfile::TempDir,
    client: Arc<dyn Client>,
    proxy: Proxy,
    node: IpAddr,
}

async fn cluster(test: u8) -> Cluster {
    cluster_with(test, |config| config).await
}

/// A cluster whose proxy runs with `adjust`'s changes to the tests' configuration.
async fn cluster_with(test: u8, adjust: impl FnOnce(ProxyConfig) -> ProxyConfig) -> Cluster {
    cluster_on(test, None, adjust).await
}

/// As [`cluster_with`], cluster IPs from `service_range` when given.
async fn cluster_on(
    test: u8,
    service_range: Option<skiff_apiserver::allocator::ServiceRange>,
    adjust: impl FnOnce(ProxyConfig) -> ProxyConfig,
) -> Cluster {
    let dir = tempfile::tempdir().expect("temporary directory");
    let store =
        Arc::new(skiff_store::SqliteStore::open(&dir.path().join("store.db")).expect("store"));
    let registry = match service_range {
        Some(range) => Registry::with_service_range(store, range),
        None => Registry::new(store),
    };
    skiff_apiserver::system::ensure_builtin_namespaces(&registry)
        .await
        .expect("namespaces");
    let client: Arc<dyn Client> = Arc::new(LocalClient::new(registry));
    let node: IpAddr = format!("127.77.{test}.1").parse().expect("node address");
    let config = adjust(ProxyConfig {
        drain_quiet_period: QUIET_PERIOD,
        ..ProxyConfig::new(vec![node])
    });
    let proxy = Proxy::start(client.clone(), config).expect("proxy");
    timeout(WAIT, proxy.wait_synced())
        .await
        .expect("proxy syncs");
    Cluster {
        _dir: dir,
        client,
        proxy,
        node,
    }
}

fn scope(resource: &'static ResourceInfo) -> Scope<'static> {
    Scope {
        resource,
        namespace: Some("default"),
    }
}

fn services() -> &'static ResourceInfo {
    resources::find("", "v1", "services").expect("services")
}

fn slices() -> &'static ResourceInfo {
    resources::find("discovery.k8s.io", "v1", "endpointslices").expect("endpointslices")
}

fn pods() -> &'static ResourceInfo {
    resources::find("", "v1", "pods").expect("pods")
}

impl Cluster {
    async fn create_service(&self, name: &str, spec: Value) -> Value {
        self.client
            .create(
                scope(services()),
                json!({"apiVersion": "v1", "kind": "Service",
                       "metadata": {"name": name, "namespace": "default"}, "spec": spec}),
            )
            .await
            .expect("service created")
    }

    /// Writes the EndpointSlice of `service` with `endpoints` as (ip, pod name, ready).
    async fn set_endpoints(&self, service: &str, endpoints: &[(&str, &str, bool)]) {
        let endpoints: Vec<Value> = endpoints
            .iter()
            .map(|(ip, pod, ready)| {
                json!({"addresses": [ip],
                       "conditions": {"ready": ready, "serving": ready, "terminating": false},
                       "targetRef": {"kind": "Pod", "namespace": "default", "name": pod}})
            })
            .collect();
        let name = format!("{service}-slice");
        let mut slice = json!({
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": name, "namespace": "default",
                         "labels": {"kubernetes.io/service-name": service}},
            "addressType": "IPv4",
            "ports": [{"name": "http", "port": BACKEND_PORT, "protocol": "TCP"}],
            "endpoints": endpoints,
        });
        match self.client.get(scope(slices()), &name).await {
            Ok(existing) => {
                slice["metadata"]["resourceVersion"] =
                    existing["metadata"]["resourceVersion"].clone();
                self.client
                    .update(scope(slices()), slice)
                    .await
                    .expect("slice updated");
            }
            Err(_) => {
                self.client
                    .create(scope(slices()), slice)
                    .await
                    .expect("slice created");
            }
        }
    }

    /// Waits until the proxy state satisfies `done`.
    async fn wait_state(&self, what: &str, done: impl Fn(&ProxyState) -> bool) -> Arc<ProxyState> {
        let mut state = self.proxy.subscribe();
        let reached = match timeout(WAIT, state.wait_for(|s| done(s))).await {
            Ok(Ok(s)) => Some(s.clone()),
            _ => None,
        };
        reached.unwrap_or_else(|| {
            panic!(
                "timed out waiting for {what}; last state: {:?}",
                self.proxy.state()
            )
        })
    }

    /// Waits until the frontend `address` routes to exactly `backends`.
    async fn wait_backends(&self, address: SocketAddr, backends: &[&str]) {
        let expected: Vec<SocketAddr> = backends.iter().map(|ip| backend(ip)).collect();
        self.wait_state(&format!("{address} -> {backends:?}"), |s| {
            s.routes
                .get(&address)
                .is_some_and(|r| r.backends == expected)
        })
        .await;
    }
}

fn backend(ip: &str) -> SocketAddr {
    SocketAddr::new(ip.parse().expect("ip"), BACKEND_PORT)
}

/// A server on `ip:8080` that greets each connection with `name` and then echoes.
async fn serve(ip: &str, name: &'static str) -> JoinHandle<()> {
    let listener = TcpListener::bind(backend(ip))
        .await
        .expect("backend listens");
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let _ = stream.write_all(format!("{name}\n").as_bytes()).await;
                let (mut read, mut write) = stream.split();
                let _ = tokio::io::copy(&mut read, &mut write).await;
            });
        }
    })
}

/// Connects to `address` (from `source`, if given) and returns the greeting line.
async fn greeting(address: SocketAddr, source: Option<IpAddr>) -> String {
    let socket = TcpSocket::new_v4().expect("socket");
    if let Some(source) = source {
        socket
            .bind(SocketAddr::new(source, 0))
            .expect("bind source");
    }
    let stream = timeout(WAIT, socket.connect(address))
        .await
        .expect("connect in time")
        .expect("connected");
    let mut line = String::new();
    timeout(WAIT, BufReader::new(stream).read_line(&mut line))
        .await
        .expect("greeting in time")
        .expect("greeting read");
    line.trim().to_string()
}

fn tally(names: Vec<String>) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for name in names {
        *counts.entry(name).or_default() += 1;
    }
    counts
}

fn cluster_ip_service(ip: &str) -> Value {
    json!({"clusterIP": ip, "ports": [{"name": "http", "port": 80, "targetPort": BACKEND_PORT}]})
}

#[tokio::test]
async fn round_robin_spreads_connections_evenly_over_a_cluster_ip() {
    let c = cluster(1).await;
    let _a = serve("127.55.1.1", "a").await;
    let _b = serve("127.55.1.2", "b").await;
    let _c = serve("127.55.1.3", "c").await;
    c.create_service("web", cluster_ip_service("127.105.1.1"))
        .await;
    c.set_endpoints(
        "web",
        &[
            ("127.55.1.1", "a", true),
            ("127.55.1.2", "b", true),
            ("127.55.1.3", "c", true),
            ("127.55.1.4", "d", false),
        ],
    )
    .await;
    let frontend: SocketAddr = "127.105.1.1:80".parse().expect("frontend");
    c.wait_backends(frontend, &["127.55.1.1", "127.55.1.2", "127.55.1.3"])
        .await;

    let mut seen = Vec::new();
    for _ in 0..30 {
        seen.push(greeting(frontend, None).await);
    }
    assert_eq!(
        tally(seen),
        BTreeMap::from([
            ("a".to_string(), 10),
            ("b".to_string(), 10),
            ("c".to_string(), 10)
        ])
    );
}

#[tokio::test]
async fn client_ip_affinity_keeps_each_client_on_one_endpoint() {
    let c = cluster(2).await;
    let _a = serve("127.55.2.1", "a").await;
    let _b = serve("127.55.2.2", "b").await;
    let mut spec = cluster_ip_service("127.105.2.1");
    spec["sessionAffinity"] = json!("ClientIP");
    spec["sessionAffinityConfig"] = json!({"clientIP": {"timeoutSeconds": 60}});
    c.create_service("sticky", spec).await;
    c.set_endpoints(
        "sticky",
        &[("127.55.2.1", "a", true), ("127.55.2.2", "b", true)],
    )
    .await;
    let frontend: SocketAddr = "127.105.2.1:80".parse().expect("frontend");
    c.wait_backends(frontend, &["127.55.2.1", "127.55.2.2"])
        .await;

    let mut chosen = Vec::new();
    for client in 1..=4u8 {
        let source: IpAddr = format!("127.66.2.{client}").parse().expect("client ip");
        let first = greeting(frontend, Some(source)).await;
        for _ in 0..5 {
            assert_eq!(
                greeting(frontend, Some(source)).await,
                first,
                "client {source}"
            );
        }
        chosen.push(first);
    }
    // The first choice of each client is still round robin: both endpoints get clients.
    assert_eq!(tally(chosen).len(), 2);

    // When its endpoint leaves, a client moves on and sticks to the new one.
    let source: IpAddr = "127.66.2.1".parse().expect("client ip");
    let before = greeting(frontend, Some(source)).await;
    let (keep_ip, keep_name) = if before == "a" {
        ("127.55.2.2", "b")
    } else {
        ("127.55.2.1", "a")
    };
    c.set_endpoints("sticky", &[(keep_ip, keep_name, true)])
        .await;
    c.wait_backends(frontend, &[keep_ip]).await;
    for _ in 0..3 {
        assert_eq!(greeting(frontend, Some(source)).await, keep_name);
    }
}

#[tokio::test]
async fn a_refused_connection_is_retried_on_another_endpoint() {
    let c = cluster(3).await;
    let _alive = serve("127.55.3.1", "alive").await;
    // 127.55.3.2 is in the slice as ready but nothing listens there: every attempt is refused.
    c.create_service("web", cluster_ip_service("127.105.3.1"))
        .await;
    c.set_endpoints(
        "web",
        &[("127.55.3.1", "alive", true), ("127.55.3.2", "dead", true)],
    )
    .await;
    let frontend: SocketAddr = "127.105.3.1:80".parse().expect("frontend");
    c.wait_backends(frontend, &["127.55.3.1", "127.55.3.2"])
        .await;
    for _ in 0..10 {
        assert_eq!(greeting(frontend, None).await, "alive");
    }
}

#[tokio::test]
async fn a_connection_waits_for_an_endpoint_to_appear_within_the_retry_window() {
    let c = cluster(4).await;
    c.create_service("late", cluster_ip_service("127.105.4.1"))
        .await;
    let frontend: SocketAddr = "127.105.4.1:80".parse().expect("frontend");
    c.wait_state("the frontend", |s| s.routes.contains_key(&frontend))
        .await;

    // The client connects while there is no endpoint at all; one shows up afterwards.
    let client = tokio::spawn(greeting(frontend, None));
    let _late = serve("127.55.4.1", "late").await;
    c.set_endpoints("late", &[("127.55.4.1", "late", true)])
        .await;
    assert_eq!(client.await.expect("client task"), "late");
}

#[tokio::test]
async fn removed_endpoints_get_no_new_connections_but_open_ones_finish() {
    let c = cluster(5).await;
    let _a = serve("127.55.5.1", "a").await;
    let _b = serve("127.55.5.2", "b").await;
    c.create_service("web", cluster_ip_service("127.105.5.1"))
        .await;
    c.set_endpoints(
        "web",
        &[("127.55.5.1", "a", true), ("127.55.5.2", "b", true)],
    )
    .await;
    let frontend: SocketAddr = "127.105.5.1:80".parse().expect("frontend");
    c.wait_backends(frontend, &["127.55.5.1", "127.55.5.2"])
        .await;

    // Open one connection to each endpoint.
    let mut open = BTreeMap::new();
    while open.len() < 2 {
        let mut stream = TcpStream::connect(frontend).await.expect("connected");
        let mut greeting = [0u8; 2];
        stream.read_exact(&mut greeting).await.expect("greeting");
        open.insert(greeting[0] as char, stream);
    }

    // Endpoint a becomes not ready: it leaves rotation within the wait's deadline.
    c.set_endpoints(
        "web",
        &[("127.55.5.1", "a", false), ("127.55.5.2", "b", true)],
    )
    .await;
    c.wait_backends(frontend, &["127.55.5.2"]).await;
    for _ in 0..6 {
        assert_eq!(greeting(frontend, None).await, "b");
    }

    // The connection already open to a still works both ways.
    let stream = open.get_mut(&'a').expect("connection to a");
    stream.write_all(b"ping\n").await.expect("write");
    let mut echo = [0u8; 5];
    timeout(WAIT, stream.read_exact(&mut echo))
        .await
        .expect("echo in time")
        .expect("echo");
    assert_eq!(&echo, b"ping\n");
}

#[tokio::test]
async fn node_ports_listen_on_the_node_address_and_follow_the_service() {
    let c = cluster(6).await;
    let _a = serve("127.55.6.1", "a").await;
    let service = c
        .create_service(
            "exposed",
            json!({"type": "NodePort", "clusterIP": "127.105.6.1",
                   "ports": [{"name": "http", "port": 80, "targetPort": BACKEND_PORT}]}),
        )
        .await;
    let node_port = service
        .pointer("/spec/ports/0/nodePort")
        .and_then(Value::as_u64)
        .and_then(|p| u16::try_from(p).ok())
        .expect("a node port was allocated");
    c.set_endpoints("exposed", &[("127.55.6.1", "a", true)])
        .await;
    let cluster_frontend: SocketAddr = "127.105.6.1:80".parse().expect("frontend");
    let node_frontend = SocketAddr::new(c.node, node_port);
    c.wait_backends(node_frontend, &["127.55.6.1"]).await;
    let listening: Vec<SocketAddr> = c.proxy.state().routes.keys().copied().collect();
    assert_eq!(listening, vec![node_frontend, cluster_frontend]);
    assert_eq!(greeting(node_frontend, None).await, "a");
    assert_eq!(greeting(cluster_frontend, None).await, "a");

    // Deleting the Service closes both listeners.
    c.client
        .delete(scope(services()), "exposed", &DeleteOptions::default())
        .await
        .expect("service deleted");
    c.wait_state("no frontends", |s| s.routes.is_empty()).await;
    for address in [node_frontend, cluster_frontend] {
        let refused = TcpStream::connect(address).await;
        assert!(refused.is_err(), "{address} still accepts");
    }
}

#[tokio::test]
async fn wait_unrouted_resolves_when_the_pod_is_marked_for_deletion() {
    let c = cluster(7).await;
    let _a = serve("127.55.7.1", "a").await;
    let _b = serve("127.55.7.2", "b").await;
    for name in ["a", "b"] {
        c.client
            .create(
                scope(pods()),
                json!({"apiVersion": "v1", "kind": "Pod",
                       "metadata": {"name": name, "namespace": "default"},
                       "spec": {"nodeName": "node-1", "terminationGracePeriodSeconds": 30,
                                "containers": [{"name": "c", "image": "demo"}]}}),
            )
            .await
            .expect("pod created");
    }
    c.create_service("web", cluster_ip_service("127.105.7.1"))
        .await;
    c.set_endpoints(
        "web",
        &[("127.55.7.1", "a", true), ("127.55.7.2", "b", true)],
    )
    .await;
    let frontend: SocketAddr = "127.105.7.1:80".parse().expect("frontend");
    c.wait_backends(frontend, &["127.55.7.1", "127.55.7.2"])
        .await;

    let a_ip: IpAddr = "127.55.7.1".parse().expect("ip");
    // A connection forwarded to a, so its drain must give that connection a quiet period.
    while greeting(frontend, None).await != "a" {}
    let last_connection_to_a = Instant::now();
    // While routed, the wait ends at its deadline and says so.
    let short = Instant::now() + Duration::from_millis(50);
    assert!(!c.proxy.wait_unrouted(a_ip, short).await);

    // A graceful delete only marks the pod; its slice still says ready. The proxy drops it
    // from rotation on the mark alone.
    let waiter = {
        let proxy = c.proxy.clone();
        tokio::spawn(async move { proxy.wait_unrouted(a_ip, Instant::now() + WAIT).await })
    };
    let pending = c
        .client
        .delete(scope(pods()), "a", &DeleteOptions::default())
        .await
        .expect("pod deleted");
    assert!(pending.is_some(), "the pod waits for its graceful shutdown");
    assert!(
        waiter.await.expect("waiter task"),
        "a left rotation before the deadline"
    );
    assert!(
        Instant::now() >= last_connection_to_a + QUIET_PERIOD,
        "the drain waited out the quiet period after the last connection"
    );
    assert_eq!(
        c.proxy.state().routes[&frontend].backends,
        vec![backend("127.55.7.2")]
    );
    for _ in 0..4 {
        assert_eq!(greeting(frontend, None).await, "b");
    }

    // An IP nothing routes to is unrouted at once.
    let stranger: IpAddr = "127.55.7.99".parse().expect("ip");
    assert!(c.proxy.wait_unrouted(stranger, Instant::now()).await);
}

/// Records what the proxy asks of the host, in order.
#[derive(Default)]
struct RecordingHost(std::sync::Mutex<Vec<String>>);

impl RecordingHost {
    fn calls(&self) -> Vec<String> {
        self.0.lock().expect("calls").clone()
    }
}

#[async_trait::async_trait]
impl ClusterIpHost for RecordingHost {
    async fn add(&self, ip: IpAddr) -> Result<(), String> {
        self.0.lock().expect("calls").push(format!("add {ip}"));
        Ok(())
    }
    async fn remove(&self, ip: IpAddr) -> Result<(), String> {
        self.0.lock().expect("calls").push(format!("remove {ip}"));
        Ok(())
    }
}

#[tokio::test]
async fn cluster_ips_are_put_on_the_host_while_a_service_has_them_and_served_elsewhere_is_left_alone(
) {
    let host = Arc::new(RecordingHost::default());
    let dns_frontend: SocketAddr = "127.105.8.2:53".parse().expect("dns frontend");
    let c = cluster_with(8, |mut config| {
        config.cluster_ip_host = Some(host.clone());
        config.served_elsewhere.insert(dns_frontend);
        config
    })
    .await;
    let _a = serve("127.55.8.1", "a").await;
    c.create_service(
        "dns",
        json!({"clusterIP": "127.105.8.2",
        "ports": [{"name": "dns-tcp", "port": 53, "protocol": "TCP"}]}),
    )
    .await;
    c.create_service("web", cluster_ip_service("127.105.8.1"))
        .await;
    c.set_endpoints("web", &[("127.55.8.1", "a", true)]).await;
    let frontend: SocketAddr = "127.105.8.1:80".parse().expect("frontend");
    c.wait_backends(frontend, &["127.55.8.1"]).await;
    assert_eq!(greeting(frontend, None).await, "a");
    assert_eq!(
        host.calls(),
        ["add 127.105.8.1"],
        "only web's IP is put on the host"
    );
    let state = c.proxy.state();
    assert!(
        !state.routes.contains_key(&dns_frontend) && !state.unbound.contains_key(&dns_frontend),
        "the proxy does not serve what is served elsewhere: {state:?}"
    );
    // Nothing of the proxy's holds the DNS frontend: its owner can listen there.
    let _owner = TcpListener::bind(dns_frontend)
        .await
        .expect("the address served elsewhere is free");

    c.client
        .delete(scope(services()), "web", &DeleteOptions::default())
        .await
        .expect("service deleted");
    c.wait_state("web's frontend gone", |s| !s.routes.contains_key(&frontend))
        .await;
    assert_eq!(
        host.calls(),
        ["add 127.105.8.1", "remove 127.105.8.1"],
        "the IP leaves the host with its last frontend"
    );
}

/// A connection tracking table whose count of open connections the test sets.
#[derive(Clone, Default)]
struct SetTracker(Arc<std::sync::Mutex<usize>>);

impl SetTracker {
    fn set(&self, open: usize) {
        *self.0.lock().expect("count") = open;
    }
}

impl skiff_proxy::kernel::ConnectionTracker for SetTracker {
    fn open_forwarded_to(&self, _ip: IpAddr) -> Result<usize, String> {
        Ok(*self.0.lock().expect("count"))
    }
}

#[tokio::test]
async fn kernel_forwarding_writes_rules_before_routes_are_published_and_drains_on_conntrack() {
    use skiff_proxy::kernel::{removal_script, RecordingRuleWriter};
    const TABLE: &str = "skiff_svc_test";
    let writer = RecordingRuleWriter::default();
    let tracker = SetTracker::default();
    // Addresses the kernel may forward: not loopback (nothing is sent to them here).
    let range =
        skiff_apiserver::allocator::ServiceRange::new("198.19.20.0".parse().expect("ip"), 24)
            .expect("range");
    let c = cluster_on(20, Some(range), |config| ProxyConfig {
        kernel: Some(skiff_proxy::KernelForwarding {
            table: TABLE.to_string(),
            pod_ranges: vec![("198.18.0.0".parse().expect("ip"), 16)],
            writer: Arc::new(writer.clone()),
            tracker: Some(Arc::new(tracker.clone())),
            connection_drain_limit: WAIT,
        }),
        ..config
    })
    .await;
    // What a crashed run left is removed before anything else.
    assert_eq!(writer.scripts().first(), Some(&removal_script(TABLE)));

    c.create_service("web", cluster_ip_service("198.19.20.5"))
        .await;
    c.set_endpoints(
        "web",
        &[("198.18.20.7", "a", true), ("198.18.20.8", "b", true)],
    )
    .await;
    let frontend: SocketAddr = "198.19.20.5:80".parse().expect("frontend");
    c.wait_backends(frontend, &["198.18.20.7", "198.18.20.8"])
        .await;
    // The routes are published only once the kernel has them.
    let last = writer.scripts().last().cloned().unwrap_or_default();
    assert!(
        last.contains("dnat to 198.18.20.7:8080") && last.contains("dnat to 198.18.20.8:8080"),
        "{last}"
    );
    assert!(
        last.contains("numgen random mod 2"),
        "both endpoints are balanced: {last}"
    );

    // a leaves the Service while a connection to it is still open: the drain waits for it.
    tracker.set(1);
    c.set_endpoints("web", &[("198.18.20.8", "b", true)]).await;
    c.wait_backends(frontend, &["198.18.20.8"]).await;
    let last = writer.scripts().last().cloned().unwrap_or_default();
    assert!(
        !last.contains("198.18.20.7"),
        "a is still in the rules: {last}"
    );
    let a: IpAddr = "198.18.20.7".parse().expect("ip");
    let waiter = {
        let proxy = c.proxy.clone();
        tokio::spawn(async move { proxy.wait_unrouted(a, Instant::now() + WAIT).await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !waiter.is_finished(),
        "the drain ended while a forwarded connection was open"
    );
    tracker.set(0);
    let unrouted = timeout(WAIT, waiter)
        .await
        .expect("the drain ends once the connection closed")
        .expect("waiter task");
    assert!(unrouted);

    // A failed write keeps the rules the kernel holds and is tried again.
    writer.fail(true);
    c.set_endpoints("web", &[]).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        c.proxy.state().routes[&frontend].backends,
        vec![backend("198.18.20.8")],
        "routes the kernel did not take were published"
    );
    writer.fail(false);
    c.wait_backends(frontend, &[]).await;

    c.proxy.stop().await;
    assert_eq!(writer.scripts().last(), Some(&removal_script(TABLE)));
}
