//! What the `oci` container runtime's end-to-end tests share: a network of their own carved
//! out of 198.18.0.0/15 (reserved for benchmarking) with the flags that give it to `skiff up`,
//! the root check, the cgroups a container runs in, and the list of what a stopped server left
//! behind on the host.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use skiff_testkit::images::TestImage;

use super::host::{host, unreachable_routes};
use super::Skiff;

/// Where Skiff pins pod network namespaces.
pub const NETNS_DIR: &str = "/run/skiff/netns";

/// The ranges, bridge and cgroup root of one test server.
pub struct TestNetwork {
    /// The pods' range (`--cluster-cidr`), a /20 of 198.18.0.0/16.
    pub cluster_cidr: String,
    /// The Services' range (`--service-cidr`), a /20 of 198.19.0.0/16.
    pub service_cidr: String,
    /// The node's share of the pods' range, its `podCIDR`.
    pub node_pod_cidr: String,
    /// The pod bridge's name, unique to the server.
    pub bridge: String,
    /// The cgroup root, unique to the server.
    pub cgroup_root: String,
}

/// How many test servers this process started, so each gets its own share.
static SERVERS: AtomicU32 = AtomicU32::new(0);

impl TestNetwork {
    /// The first share of the ranges, from one picked by the process id and a counter, that
    /// no route or address on the host uses yet, so tests running side by side (in this
    /// process or another) never meet. `label` (one letter) tells the test files' bridges and
    /// cgroup roots apart.
    pub fn next(label: &str) -> TestNetwork {
        let index = SERVERS.fetch_add(1, Ordering::SeqCst);
        let pid = std::process::id();
        let in_use = format!(
            "{}{}",
            host("ip", &["-4", "route", "show", "table", "all"]),
            host("ip", &["-4", "-o", "addr", "show"])
        );
        let first = (pid % 16 + index * 5) % 16;
        let share = (0..16)
            .map(|step| (first + step) % 16 * 16)
            .find(|share| {
                let prefix = |range: u32| format!("198.{range}.{share}.");
                let last = |range: u32| format!("198.{range}.{}.", share + 15);
                ![prefix(18), prefix(19), last(18), last(19)]
                    .iter()
                    .any(|taken| in_use.contains(taken.as_str()))
            })
            .unwrap_or(first * 16);
        TestNetwork {
            cluster_cidr: format!("198.18.{share}.0/20"),
            service_cidr: format!("198.19.{share}.0/20"),
            node_pod_cidr: format!("198.18.{share}.0/24"),
            bridge: format!("sk{label}{pid}x{index}"),
            cgroup_root: format!("skiff-test-{label}-{pid}-{index}"),
        }
    }

    /// The `skiff up` flags that run pods on the `oci` runtime in this network.
    pub fn flags(&self) -> Vec<String> {
        vec![
            "--container-runtime".into(),
            "oci".into(),
            "--cluster-cidr".into(),
            self.cluster_cidr.clone(),
            "--service-cidr".into(),
            self.service_cidr.clone(),
            "--pod-bridge".into(),
            self.bridge.clone(),
            "--cgroup-root".into(),
            self.cgroup_root.clone(),
        ]
    }

    /// [`TestNetwork::flags`] and the bridge's address, the pods' gateway, as `--node-ip`, so
    /// NodePorts listen there too and pods reach them.
    pub fn flags_with_gateway_node_ip(&self) -> Vec<String> {
        let mut flags = self.flags();
        flags.extend(["--node-ip".to_string(), self.gateway().to_string()]);
        flags
    }

    /// Starts `skiff up` on the `oci` runtime in this network, with `extra` flags after
    /// `flags` and `images` imported, and waits up to `timeout` for the guard routes before
    /// anything else runs.
    pub fn start_skiff(
        &self,
        flags: &[String],
        extra: &[&str],
        images: &[TestImage],
        timeout: Duration,
    ) -> Skiff {
        let mut all: Vec<&str> = flags.iter().map(String::as_str).collect();
        all.extend_from_slice(extra);
        let skiff = Skiff::start_with_images(&all, images);
        self.wait_for_guard_routes(timeout);
        skiff
    }

    /// The Service range's `n`th address (`.1` the `kubernetes` Service, `.10` the DNS).
    pub fn service_ip(&self, n: u32) -> Ipv4Addr {
        let range: ipnet::Ipv4Net = self.service_cidr.parse().expect("service range");
        Ipv4Addr::from(u32::from(range.network()) + n)
    }

    /// The bridge's address: the first of the node's pod range, the pods' gateway.
    pub fn gateway(&self) -> Ipv4Addr {
        let range: ipnet::Ipv4Net = self.node_pod_cidr.parse().expect("node pod range");
        Ipv4Addr::from(u32::from(range.network()) + 1)
    }

    /// The interface holding the cluster IPs, named after the bridge.
    pub fn service_interface(&self) -> String {
        skiff_net::service_interface_name(&self.bridge)
    }

    /// Waits until the `unreachable` guard routes of both ranges are in place: no test sends
    /// a packet into the ranges before.
    pub fn wait_for_guard_routes(&self, timeout: Duration) {
        super::wait_for_every(
            "the unreachable guard routes",
            timeout,
            Duration::from_millis(250),
            || {
                let routes = unreachable_routes();
                (routes.contains(&self.cluster_cidr) && routes.contains(&self.service_cidr))
                    .then_some(())
            },
        );
    }
}

/// Fails the test unless it runs as root, which the `oci` runtime needs.
pub fn assert_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "the oci runtime tests need root (network namespaces, veths, routes); run them as root"
    );
}

/// What the pod network left on the host, described; empty when nothing is left.
pub fn leftovers(network: &TestNetwork, pod_uids: &[String]) -> Vec<String> {
    let mut left = Vec::new();
    let links = host("ip", &["-o", "link", "show"]);
    if links.contains(&format!(": {}:", network.bridge)) {
        left.push(format!("bridge {}", network.bridge));
    }
    if links.contains(&format!("master {} ", network.bridge)) {
        left.push("a veth on the bridge".to_string());
    }
    let routes = unreachable_routes();
    for range in [&network.cluster_cidr, &network.service_cidr] {
        if routes.contains(range.as_str()) {
            left.push(format!("unreachable route {range}"));
        }
    }
    if host("ip", &["-4", "route", "show"]).contains(&network.node_pod_cidr) {
        left.push(format!("route to {}", network.node_pod_cidr));
    }
    let table = format!("skiff_{}", network.bridge);
    if host("nft", &["list", "tables"]).contains(&table) {
        left.push(format!("nftables table {table}"));
    }
    for hierarchy in cgroup_hierarchies() {
        let dir = hierarchy.join(&network.cgroup_root);
        if dir.exists() {
            left.push(format!("cgroup {}", dir.display()));
        }
    }
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    for uid in pod_uids {
        let pin = Path::new(NETNS_DIR).join(uid);
        if pin.exists() {
            left.push(format!("namespace pin {}", pin.display()));
        }
        if mounts.contains(uid.as_str()) {
            left.push(format!("a mount naming pod {uid}"));
        }
    }
    left
}

/// The processes whose environment names one of `pod_uids` (every container process carries
/// its pod's UID), described.
pub fn processes_of_pods(pod_uids: &[String]) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let environ = std::fs::read(entry.path().join("environ")).unwrap_or_default();
        let environ = String::from_utf8_lossy(&environ);
        for uid in pod_uids {
            if environ.contains(uid.as_str()) {
                found.push(format!("process {:?} of pod {uid}", entry.file_name()));
            }
        }
    }
    found
}

/// The mount points of the machine's cgroup hierarchies (v1's, or the unified one).
pub fn cgroup_hierarchies() -> Vec<PathBuf> {
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let found: Vec<PathBuf> = mounts
        .lines()
        .filter(|line| {
            let fstype = line
                .split(" - ")
                .nth(1)
                .and_then(|t| t.split_whitespace().next());
            matches!(fstype, Some("cgroup") | Some("cgroup2"))
        })
        .filter_map(|line| line.split_whitespace().nth(4).map(PathBuf::from))
        .collect();
    assert!(
        !found.is_empty(),
        "no cgroup hierarchy is mounted:\n{mounts}"
    );
    found
}

/// The cgroup directories (one per hierarchy) holding container `name` of pod `uid`.
pub fn container_cgroups(network: &TestNetwork, uid: &str, name: &str) -> Vec<PathBuf> {
    let pod = format!("pod{uid}");
    cgroup_hierarchies()
        .into_iter()
        .flat_map(|hierarchy| {
            let kubepods = hierarchy.join(&network.cgroup_root).join("kubepods");
            [
                kubepods.join(&pod),
                kubepods.join("burstable").join(&pod),
                kubepods.join("besteffort").join(&pod),
            ]
        })
        .map(|pod_dir| pod_dir.join(name))
        .filter(|dir| dir.is_dir())
        .collect()
}

/// The manifest with the test images' names put in: `SHELL_IMAGE` (busybox and its applets)
/// and `DEMO_IMAGE` (the demo HTTP server at `v1`). A shell or `sleep` as PID 1 of its own PID
/// namespace ignores SIGTERM, as on Kubernetes, so such pods get a short grace period.
pub fn with_test_images(yaml: &str) -> String {
    yaml.replace("SHELL_IMAGE", super::images::SHELL)
        .replace("DEMO_IMAGE", &format!("{}:v1", super::images::DEMO))
}
