//! Test hosts: network namespaces that stand for machines, joined by a bridge the test owns,
//! with addresses from 198.18.0.0/15 only. A server runs in one host and agents in others, each
//! node with its pod bridge, pod namespaces and rules inside its own host's namespace, so a
//! multi-node cluster runs on one machine and its traffic never leaves the namespaces the test
//! made (and loopback).
//!
//! Declare the [`TestHosts`] before the servers and agents that run in them: locals drop in
//! reverse order, so the processes stop (and clean up their pods) before the namespaces go.

use std::path::PathBuf;
use std::process::{Child, ExitStatus, Stdio};
use std::time::Duration;

use skiff_testkit::images::TestImage;

use super::host::host;
use super::images::place_archive;
use super::oci::{cgroup_hierarchies, TestNetwork};
use super::{in_netns, terminate, wait_for, wait_for_every, Skiff, DEADLINE, UNSERVED_REGISTRY};

/// A set of test hosts on one bridge, and the cluster's ranges for the nodes they run.
pub struct TestHosts {
    /// The pods' range (`--cluster-cidr`): a /21 of 198.18.0.0/16, a /24 `podCIDR` per node.
    pub cluster_cidr: String,
    /// The Services' range (`--service-cidr`): a /20 of 198.19.0.0/16.
    pub service_cidr: String,
    /// The hosts' shared link: the /24 right after the pods' range.
    pub link_cidr: String,
    /// The test's bridge joining the hosts, holding the link's first address.
    pub bridge: String,
    /// The hosts, in the order they were made.
    pub hosts: Vec<TestHost>,
    /// The `unreachable` routes the test put in its own namespace for the cluster's ranges:
    /// the test's namespace has no route into them, and must never send there off the machine.
    guards: Vec<String>,
    /// Whether the bridge was made (and so must be removed).
    bridge_made: bool,
}

/// One test host: a network namespace with one link (`eth0`) into the test's bridge.
#[derive(Clone, Debug)]
pub struct TestHost {
    /// The network namespace's name (under `/run/netns`).
    pub netns: String,
    /// The host's address on the shared link (its `--node-ip`).
    pub address: String,
    /// The pod bridge a node on this host uses.
    pub pod_bridge: String,
    /// The cgroup root a node on this host uses.
    pub cgroup_root: String,
    /// The host end of its link, on the test's bridge.
    pub link: String,
}

impl TestHosts {
    /// Makes `count` hosts on a new bridge, with ranges no route or address on the machine
    /// uses yet. `label` (one letter) tells test files' bridges apart.
    pub fn new(label: &str, count: usize) -> TestHosts {
        assert!(count <= 8, "a test may make at most 8 hosts");
        let network = TestNetwork::next(label);
        let share: u32 = network
            .cluster_cidr
            .split('.')
            .nth(2)
            .and_then(|octet| octet.parse().ok())
            .expect("the pods' range is 198.18.<share>.0/20");
        let link_prefix = format!("198.18.{}", share + 8);
        let mut hosts = TestHosts {
            cluster_cidr: format!("198.18.{share}.0/21"),
            service_cidr: network.service_cidr.clone(),
            link_cidr: format!("{link_prefix}.0/24"),
            bridge: network.bridge.clone(),
            hosts: Vec::new(),
            guards: Vec::new(),
            bridge_made: false,
        };
        // Every step is recorded before the next, so a failure half-way still cleans up.
        for range in [hosts.cluster_cidr.clone(), hosts.service_cidr.clone()] {
            host("ip", &["route", "add", "unreachable", &range]);
            hosts.guards.push(range);
        }
        let bridge = hosts.bridge.clone();
        host("ip", &["link", "add", &bridge, "type", "bridge"]);
        hosts.bridge_made = true;
        host(
            "ip",
            &[
                "addr",
                "add",
                &format!("{link_prefix}.1/24"),
                "dev",
                &bridge,
            ],
        );
        host("ip", &["link", "set", &bridge, "up"]);
        for index in 0..count {
            let made = TestHost {
                netns: format!("{bridge}h{index}"),
                address: format!("{link_prefix}.{}", 10 + index),
                pod_bridge: format!("skpod{index}"),
                cgroup_root: format!("{}-h{index}", network.cgroup_root),
                link: format!("{bridge}v{index}"),
            };
            host("ip", &["netns", "add", &made.netns]);
            hosts.hosts.push(made.clone());
            host(
                "ip",
                &[
                    "link",
                    "add",
                    &made.link,
                    "type",
                    "veth",
                    "peer",
                    "name",
                    "eth0",
                    "netns",
                    &made.netns,
                ],
            );
            host("ip", &["link", "set", &made.link, "master", &bridge, "up"]);
            let inside = |args: &[&str]| {
                let mut all = vec!["-n", made.netns.as_str()];
                all.extend_from_slice(args);
                host("ip", &all);
            };
            inside(&["link", "set", "lo", "up"]);
            inside(&[
                "addr",
                "add",
                &format!("{}/24", made.address),
                "dev",
                "eth0",
            ]);
            inside(&["link", "set", "eth0", "up"]);
        }
        hosts
    }

    /// The test bridge's own address: the test's namespace as one more machine on the link,
    /// for servers the hosts reach there.
    pub fn bridge_address(&self) -> String {
        let prefix = self
            .link_cidr
            .strip_suffix(".0/24")
            .expect("the link is a /24");
        format!("{prefix}.1")
    }

    /// The host at `index`.
    pub fn host(&self, index: usize) -> &TestHost {
        self.hosts
            .get(index)
            .unwrap_or_else(|| panic!("there is no test host {index}"))
    }

    /// The flags that run a node on host `index` on the `oci` runtime in this cluster's ranges:
    /// its address, ranges, pod bridge and cgroup root.
    pub fn node_flags(&self, index: usize) -> Vec<String> {
        let at = self.host(index);
        [
            "--node-ip",
            &at.address,
            "--container-runtime",
            "oci",
            "--cluster-cidr",
            &self.cluster_cidr,
            "--service-cidr",
            &self.service_cidr,
            "--pod-bridge",
            &at.pod_bridge,
            "--cgroup-root",
            &at.cgroup_root,
        ]
        .iter()
        .map(|flag| flag.to_string())
        .collect()
    }

    /// Runs `program` with `args` in host `index`'s network namespace and returns its stdout,
    /// failing the test unless it succeeds.
    pub fn run_in(&self, index: usize, program: &str, args: &[&str]) -> String {
        let net = format!("--net=/run/netns/{}", self.host(index).netns);
        let mut all = vec![net.as_str(), "--", program];
        all.extend_from_slice(args);
        host("nsenter", &all)
    }

    /// The destinations of host `index`'s `unreachable` routes.
    pub fn unreachable_routes_in(&self, index: usize) -> Vec<String> {
        self.run_in(index, "ip", &["-4", "route", "show", "type", "unreachable"])
            .lines()
            .filter_map(|line| {
                line.split_whitespace()
                    .find(|word| *word != "unreachable")
                    .map(str::to_string)
            })
            .collect()
    }

    /// Waits until the node on host `index` has put the `unreachable` guard routes for both
    /// ranges in its namespace: nothing is sent into the ranges from there before.
    pub fn wait_for_guard_routes(&self, index: usize) {
        wait_for_every(
            &format!("the unreachable guard routes in test host {index}"),
            DEADLINE,
            Duration::from_millis(250),
            || {
                let routes = self.unreachable_routes_in(index);
                (routes.contains(&self.cluster_cidr) && routes.contains(&self.service_cidr))
                    .then_some(())
            },
        );
    }

    /// Takes host `index` off the link (its `eth0` down), as a cut cable.
    pub fn cut(&self, index: usize) {
        host(
            "ip",
            &["-n", &self.host(index).netns, "link", "set", "eth0", "down"],
        );
    }

    /// Puts host `index` back on the link.
    pub fn reconnect(&self, index: usize) {
        host(
            "ip",
            &["-n", &self.host(index).netns, "link", "set", "eth0", "up"],
        );
    }

    /// What these hosts left on the machine, described; empty when nothing is left. Meant
    /// for after the hosts are dropped, so it takes only the names.
    pub fn leftovers_of(names: &TestHostNames) -> Vec<String> {
        let mut left = Vec::new();
        let namespaces = host("ip", &["netns", "list"]);
        for netns in &names.netns {
            if namespaces
                .lines()
                .any(|line| line.split_whitespace().next() == Some(netns.as_str()))
            {
                left.push(format!("network namespace {netns}"));
            }
        }
        let links = host("ip", &["-o", "link", "show"]);
        for link in names.links.iter().chain([&names.bridge]) {
            if links.contains(&format!(": {link}:")) || links.contains(&format!(": {link}@")) {
                left.push(format!("link {link}"));
            }
        }
        let routes = super::host::unreachable_routes();
        for range in &names.guards {
            if routes.contains(range) {
                left.push(format!("unreachable route {range}"));
            }
        }
        for hierarchy in cgroup_hierarchies() {
            for root in &names.cgroup_roots {
                let dir = hierarchy.join(root);
                if dir.exists() {
                    left.push(format!("cgroup {}", dir.display()));
                }
            }
        }
        left
    }

    /// The names of what these hosts made, to check after they are gone.
    pub fn names(&self) -> TestHostNames {
        TestHostNames {
            netns: self.hosts.iter().map(|h| h.netns.clone()).collect(),
            links: self.hosts.iter().map(|h| h.link.clone()).collect(),
            bridge: self.bridge.clone(),
            guards: vec![self.cluster_cidr.clone(), self.service_cidr.clone()],
            cgroup_roots: self.hosts.iter().map(|h| h.cgroup_root.clone()).collect(),
        }
    }
}

/// The names of what a [`TestHosts`] made: namespaces, links, guard routes, cgroup roots.
pub struct TestHostNames {
    netns: Vec<String>,
    links: Vec<String>,
    bridge: String,
    guards: Vec<String>,
    cgroup_roots: Vec<String>,
}

impl Drop for TestHosts {
    fn drop(&mut self) {
        // Best effort, and every step tried: a failing step must not leave the rest behind.
        let quiet = |args: &[&str]| {
            let _ = std::process::Command::new("ip")
                .args(args)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        };
        for made in &self.hosts {
            quiet(&["netns", "del", &made.netns]);
            quiet(&["link", "del", &made.link]);
            for hierarchy in cgroup_hierarchies() {
                remove_empty_tree(&hierarchy.join(&made.cgroup_root));
            }
        }
        if self.bridge_made {
            quiet(&["link", "del", &self.bridge]);
        }
        for range in &self.guards {
            quiet(&["route", "del", "unreachable", range]);
        }
    }
}

/// Removes a cgroup directory and the ones below it, deepest first; a cgroup that still
/// holds a process stays (and the leftovers check reports it).
fn remove_empty_tree(dir: &std::path::Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            remove_empty_tree(&entry.path());
        }
    }
    let _ = std::fs::remove_dir(dir);
}

impl Skiff {
    /// Starts `skiff up` in test host `index` listening on the host's address, with the
    /// cluster's ranges and `extra_args` (`--no-node` for a server without a node; otherwise
    /// its node runs on the `oci` runtime on that host) and `images`' archives imported.
    pub fn start_in_host(
        hosts: &TestHosts,
        index: usize,
        extra_args: &[&str],
        images: &[TestImage],
    ) -> Skiff {
        let at = hosts.host(index);
        let root = tempfile::Builder::new()
            .prefix("skiff-e2e-host-")
            .tempdir()
            .unwrap_or_else(|e| panic!("cannot create a temporary directory: {e}"));
        let mut args = if extra_args.contains(&"--no-node") {
            // A server without a node takes the ranges (it allocates from them) and its address.
            [
                "--node-ip",
                &at.address,
                "--cluster-cidr",
                &hosts.cluster_cidr,
                "--service-cidr",
                &hosts.service_cidr,
            ]
            .iter()
            .map(|flag| flag.to_string())
            .collect()
        } else {
            hosts.node_flags(index)
        };
        args.extend(extra_args.iter().map(|a| a.to_string()));
        let mut skiff = Skiff {
            root,
            extra_args: args,
            process: None,
            listen: format!("{}:0", at.address),
            netns: Some(at.netns.clone()),
            user: None,
        };
        let images_dir = skiff.data_dir().join("images");
        for image in images {
            place_archive(image, &images_dir);
        }
        skiff.launch();
        skiff
    }

    /// Starts `skiff up` in the test's own namespace listening on the test bridge's address,
    /// so agents in the hosts reach it, with the cluster's ranges and `extra_args` (for
    /// servers that share a datastore on loopback, which the hosts cannot reach).
    pub fn start_on_link(hosts: &TestHosts, extra_args: &[&str]) -> Skiff {
        let root = tempfile::Builder::new()
            .prefix("skiff-e2e-link-")
            .tempdir()
            .unwrap_or_else(|e| panic!("cannot create a temporary directory: {e}"));
        let address = hosts.bridge_address();
        let mut args: Vec<String> = [
            "--node-ip",
            &address,
            "--cluster-cidr",
            &hosts.cluster_cidr,
            "--service-cidr",
            &hosts.service_cidr,
        ]
        .iter()
        .map(|flag| flag.to_string())
        .collect();
        args.extend(extra_args.iter().map(|a| a.to_string()));
        let mut skiff = Skiff {
            root,
            extra_args: args,
            process: None,
            listen: format!("{address}:0"),
            netns: None,
            user: None,
        };
        skiff.launch();
        skiff
    }

    /// The server's URL, from the kubeconfig it wrote.
    pub fn server_url(&self) -> String {
        let kubeconfig = std::fs::read_to_string(self.kubeconfig())
            .unwrap_or_else(|e| panic!("cannot read the kubeconfig: {e}"));
        kubeconfig
            .lines()
            .find_map(|line| line.trim().strip_prefix("server:"))
            .map(|url| url.trim().to_string())
            .expect("the kubeconfig names the server")
    }

    /// The server's join token (`DATA/node-token`).
    pub fn join_token(&self) -> String {
        std::fs::read_to_string(self.data_dir().join("node-token"))
            .unwrap_or_else(|e| panic!("skiff up writes DATA/node-token: {e}"))
            .trim()
            .to_string()
    }
}

/// A `skiff agent` running in a test host, joined to a server with its join token.
pub struct HostAgent {
    root: tempfile::TempDir,
    /// The node's name.
    pub node_name: String,
    /// The host it runs in.
    pub host: TestHost,
    command_args: Vec<String>,
    process: Option<Child>,
    runs: usize,
}

impl HostAgent {
    /// Starts `skiff agent` named `node_name` in test host `index`, joining `server`, its node
    /// on the `oci` runtime with `images`' archives imported, plus `extra_args`; waits until
    /// it says it joined. It stops its pods when it stops (`--stop-pods-on-exit`), so nothing
    /// of a test outlives it.
    pub fn start(
        hosts: &TestHosts,
        index: usize,
        server: &Skiff,
        node_name: &str,
        images: &[TestImage],
        extra_args: &[&str],
    ) -> HostAgent {
        let mut agent = HostAgent::prepare(hosts, index, server, node_name, images, extra_args);
        agent.set_stop_pods_on_exit(true);
        agent.launch();
        agent.wait_joined();
        agent
    }

    /// As [`HostAgent::start`], but the agent leaves its pods running when it stops, as
    /// `skiff agent` does by default; [`HostAgent::set_stop_pods_on_exit`] changes that for
    /// its next start.
    pub fn start_leaving_pods(
        hosts: &TestHosts,
        index: usize,
        server: &Skiff,
        node_name: &str,
        images: &[TestImage],
        extra_args: &[&str],
    ) -> HostAgent {
        let mut agent = HostAgent::prepare(hosts, index, server, node_name, images, extra_args);
        agent.launch();
        agent.wait_joined();
        agent
    }

    /// Whether the agent's next start stops its pods when it stops (`--stop-pods-on-exit`).
    pub fn set_stop_pods_on_exit(&mut self, stop: bool) {
        const FLAG: &str = "--stop-pods-on-exit";
        self.command_args.retain(|arg| arg != FLAG);
        if stop {
            self.command_args.push(FLAG.to_string());
        }
    }

    fn prepare(
        hosts: &TestHosts,
        index: usize,
        server: &Skiff,
        node_name: &str,
        images: &[TestImage],
        extra_args: &[&str],
    ) -> HostAgent {
        let root = tempfile::Builder::new()
            .prefix("skiff-agent-host-")
            .tempdir()
            .unwrap_or_else(|e| panic!("cannot create a temporary directory: {e}"));
        let data_dir = root.path().join("data");
        for image in images {
            place_archive(image, &data_dir.join("images"));
        }
        let registries = root.path().join("loopback-registries.yaml");
        std::fs::write(
            &registries,
            format!(
                "mirrors:\n  \"*\":\n    endpoint: [\"http://{UNSERVED_REGISTRY}\"]\ndisable_default_endpoint: true\n"
            ),
        )
        .unwrap_or_else(|e| panic!("cannot write the registries file: {e}"));
        let mut command_args: Vec<String> = vec![
            "agent".into(),
            "--server".into(),
            server.server_url(),
            "--token".into(),
            server.join_token(),
            "--data-dir".into(),
            data_dir.display().to_string(),
            "--certificate-timeout".into(),
            "60s".into(),
            "--node-name".into(),
            node_name.into(),
            "--registry-config".into(),
            registries.display().to_string(),
        ];
        command_args.extend(hosts.node_flags(index));
        command_args.extend(extra_args.iter().map(|a| a.to_string()));
        HostAgent {
            root,
            node_name: node_name.to_string(),
            host: hosts.host(index).clone(),
            command_args,
            process: None,
            runs: 0,
        }
    }

    /// The agent's log (stdout and stderr) so far, every run.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Where the agent keeps its state and credentials.
    pub fn data_dir(&self) -> PathBuf {
        self.root.path().join("data")
    }

    /// The running agent's process id.
    pub fn pid(&self) -> u32 {
        self.process
            .as_ref()
            .map(Child::id)
            .expect("the agent is not running")
    }

    fn log_path(&self) -> PathBuf {
        self.root.path().join("agent.log")
    }

    fn launch(&mut self) {
        self.runs += 1;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .unwrap_or_else(|e| panic!("cannot open the agent log: {e}"));
        let log_err = log
            .try_clone()
            .unwrap_or_else(|e| panic!("cannot share the agent log: {e}"));
        let child = in_netns(Some(&self.host.netns), env!("CARGO_BIN_EXE_skiff"))
            .args(&self.command_args)
            .env_remove("SKIFF_DATA_DIR")
            .env_remove("SKIFF_AGENT_DATA_DIR")
            .env_remove("SKIFF_URL")
            .env_remove("SKIFF_TOKEN")
            .env("SKIFF_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start skiff agent: {e}"));
        self.process = Some(child);
    }

    /// Waits until this run of the agent says it joined the cluster.
    pub fn wait_joined(&mut self) {
        let runs = self.runs;
        wait_for("the agent to join", DEADLINE, || {
            if let Some(status) = self
                .process
                .as_mut()
                .and_then(|p| p.try_wait().ok().flatten())
            {
                panic!("skiff agent exited with {status}; log:\n{}", self.log());
            }
            (self.log().matches("skiff agent joined the cluster").count() >= runs).then_some(())
        });
    }

    /// Stops the agent with SIGTERM and returns how it exited.
    pub fn stop(&mut self) -> ExitStatus {
        let mut child = self.process.take().expect("the agent is not running");
        terminate(&mut child)
    }

    /// Kills the agent with SIGKILL: its containers keep running.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.process.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the stopped (or killed) agent again on the same data directory and waits until
    /// it joined.
    pub fn start_again(&mut self) {
        assert!(self.process.is_none(), "the agent is still running");
        self.launch();
        self.wait_joined();
    }
}

impl Drop for HostAgent {
    fn drop(&mut self) {
        if let Some(mut child) = self.process.take() {
            terminate(&mut child);
        }
        if std::thread::panicking() {
            eprintln!(
                "--- agent {} log ---\n{}--- end of agent log ---",
                self.node_name,
                self.log()
            );
        }
    }
}
