//! The `skiff` command: Kubernetes workloads in one binary.

mod agent;
mod bootstrap;
mod cluster_dns;
mod image_cmd;
mod join_token;
mod kubeconfig;
mod kubelet_metrics;
mod kubelet_proxy;
mod kubelet_server;
mod memory;
mod node_host;
mod pki;
mod plan;
mod runtime_choice;
mod up;
mod user_kubeconfig;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};

/// Kubernetes workloads in one binary.
#[derive(Parser)]
#[command(name = "skiff", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start a whole single-machine control plane in this process.
    Up(Box<UpArgs>),
    /// Join a cluster as a node: fetch and pin its CA, get a client certificate through the
    /// join token, then run the node agent and the service proxy against the server.
    Agent(Box<agent::AgentArgs>),
    /// Inspect rollouts without a server.
    Rollout {
        #[command(subcommand)]
        command: RolloutCommand,
    },
    /// Manage the node's image catalog.
    Image {
        #[command(subcommand)]
        command: image_cmd::ImageCommand,
    },
    /// Print a kubeconfig for another user, with a new client certificate the cluster CA signs.
    Kubeconfig(user_kubeconfig::KubeconfigArgs),
    /// Run the demo HTTP server the built-in images stand for.
    #[command(hide = true)]
    DemoServer,
}

#[derive(Subcommand)]
enum RolloutCommand {
    /// Print every state (new and old ReplicaSet sizes) a rollout to a new template passes
    /// through.
    ///
    /// Each ReplicaSet write of the Deployment controller is one step, so a sync that creates
    /// the new ReplicaSet and then scales the old one down shows both states. Assumption:
    /// syncs run until nothing more can move, then the new pods become available together;
    /// pods removed by a scale-down are gone at once.
    Plan {
        /// The manifest holding the Deployment (`-` for standard input).
        #[arg(short = 'f', long = "filename")]
        file: PathBuf,
        /// Output format.
        #[arg(short = 'o', long = "output", value_enum, default_value = "table")]
        output: plan::Output,
    },
}

/// Options of `skiff up`.
#[derive(clap::Args, Clone, Debug)]
pub struct UpArgs {
    /// Where state, credentials and the kubeconfig live (default: the user's data directory,
    /// or ./.skiff).
    #[arg(long, env = "SKIFF_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Keep the cluster's state in etcd instead of the SQLite file in the data directory: a
    /// comma-separated list of `http://` or `https://` client URLs (k3s' flag).
    #[arg(long, env = "SKIFF_DATASTORE_ENDPOINT", value_name = "URLS")]
    pub datastore_endpoint: Option<String>,
    /// PEM file of the certificate authority that signed etcd's serving certificates.
    #[arg(long, value_name = "FILE", requires_all = ["datastore_endpoint", "datastore_certfile", "datastore_keyfile"])]
    pub datastore_cafile: Option<PathBuf>,
    /// PEM file of the client certificate presented to etcd.
    #[arg(long, value_name = "FILE", requires = "datastore_cafile")]
    pub datastore_certfile: Option<PathBuf>,
    /// PEM file of the private key of `--datastore-certfile`.
    #[arg(long, value_name = "FILE", requires = "datastore_cafile")]
    pub datastore_keyfile: Option<PathBuf>,
    /// With `--datastore-endpoint`, how long a leader's claim on the controller manager's and
    /// the scheduler's Leases lasts without renewal (kube-controller-manager's flag and default).
    #[arg(long, value_name = "DURATION", default_value = "15s", value_parser = parse_duration)]
    pub leader_elect_lease_duration: Duration,
    /// How long a leader keeps leading without renewing its Lease before it stops its work.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    pub leader_elect_renew_deadline: Duration,
    /// How often candidates try to take a leader Lease and leaders renew theirs.
    #[arg(long, value_name = "DURATION", default_value = "2s", value_parser = parse_duration)]
    pub leader_elect_retry_period: Duration,
    /// The address the API server listens on.
    #[arg(long, default_value = "127.0.0.1:6443")]
    pub listen: SocketAddr,
    /// A further host name or IP address the API server's certificate is valid for (k3s's
    /// flag; repeat it or separate values with commas): the name clients reach the server by,
    /// or its address when `--listen` names none (`0.0.0.0`). The certificate is issued at
    /// every start, so a changed list takes effect at the next.
    #[arg(long, value_name = "NAME|IP", value_delimiter = ',')]
    pub tls_san: Vec<String>,
    /// Also run this many simulated nodes (`sim-node-1` ...), whose pods go Pending, Running
    /// and Ready on a simulated timeline without running any process.
    #[arg(long, default_value_t = 0)]
    pub simulated_nodes: u32,
    /// Run no real node (a control-plane machine): pods run on the nodes `skiff agent` joins,
    /// on simulated nodes, or stay Pending.
    #[arg(long)]
    pub no_node: bool,
    /// The built-in node's flags, which `skiff agent` takes too.
    #[command(flatten)]
    pub node: node_host::NodeFlags,
    /// Seconds between compactions of store history; each compaction forgets the revisions
    /// older than the previous one. Kubernetes compacts every five minutes; tests shorten it.
    #[arg(long, value_name = "SECONDS", default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..))]
    pub compaction_interval: u64,
    /// How often the HorizontalPodAutoscaler controller re-examines every autoscaler
    /// (kube-controller-manager's flag and default).
    #[arg(long, value_name = "DURATION", default_value = "15s", value_parser = parse_duration)]
    pub horizontal_pod_autoscaler_sync_period: Duration,
    /// How far back an autoscaler without `behavior.scaleDown.stabilizationWindowSeconds`
    /// looks for higher recommendations before scaling down.
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = parse_duration)]
    pub horizontal_pod_autoscaler_downscale_stabilization: Duration,
    /// After a pod starts, how long its CPU samples count only once it is ready and a full
    /// sampling window has passed since.
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = parse_duration)]
    pub horizontal_pod_autoscaler_cpu_initialization_period: Duration,
    /// After a pod starts, how long an unready pod is taken to have never been ready.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_duration)]
    pub horizontal_pod_autoscaler_initial_readiness_delay: Duration,
    /// The relative distance from an autoscaler's target within which it does not scale.
    #[arg(long, value_name = "RATIO", default_value_t = 0.1)]
    pub horizontal_pod_autoscaler_tolerance: f64,
    /// Seconds between samples of pod and node usage (metrics-server's `--metric-resolution`,
    /// 15 s there); `kubectl top` and autoscalers see a pod once it was sampled twice.
    #[arg(long, value_name = "SECONDS", default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..))]
    pub metric_resolution: u64,
    /// How long a node may go without renewing its Lease or reporting Ready before its
    /// conditions turn Unknown and it is tainted `unreachable` (kube-controller-manager's flag
    /// and its default since Kubernetes 1.32).
    #[arg(long, value_name = "DURATION", default_value = "50s", value_parser = parse_duration)]
    pub node_monitor_grace_period: Duration,
    /// The same for a node that never reported Ready.
    #[arg(long, value_name = "DURATION", default_value = "1m", value_parser = parse_duration)]
    pub node_startup_grace_period: Duration,
    /// How often the node lifecycle controller checks every node.
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_duration)]
    pub node_monitor_period: Duration,
    /// Nodes per second, per zone, that may be tainted NoExecute (so their pods evicted).
    #[arg(long, value_name = "RATE", default_value_t = 0.1)]
    pub node_eviction_rate: f64,
    /// Seconds a new pod without such a toleration tolerates a `not-ready` node before it is
    /// evicted (kube-apiserver's `DefaultTolerationSeconds` admission).
    #[arg(long, value_name = "SECONDS", default_value_t = 300, value_parser = clap::value_parser!(i64).range(0..))]
    pub default_not_ready_toleration_seconds: i64,
    /// Seconds a new pod without such a toleration tolerates an `unreachable` node before it
    /// is evicted.
    #[arg(long, value_name = "SECONDS", default_value_t = 300, value_parser = clap::value_parser!(i64).range(0..))]
    pub default_unreachable_toleration_seconds: i64,
    /// With --max-mutating-requests-inflight, summed into the server's total concurrency
    /// (which must be positive), shared among the priority levels of API Priority and
    /// Fairness; requests beyond a level's share wait in its queues or are answered 429.
    /// Watches hold no seat; exec, logs, attach and port-forward are not limited.
    #[arg(long, value_name = "N", default_value_t = skiff_apiserver::inflight::DEFAULT_MAX_REQUESTS_INFLIGHT)]
    pub max_requests_inflight: usize,
    /// Summed with --max-requests-inflight into the server's total concurrency.
    #[arg(long, value_name = "N", default_value_t = skiff_apiserver::inflight::DEFAULT_MAX_MUTATING_REQUESTS_INFLIGHT)]
    pub max_mutating_requests_inflight: usize,
}

/// How the service proxy forwards under the `oci` runtime.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProxyMode {
    /// nftables DNAT rules the proxy writes: one connection from client to endpoint.
    Nftables,
    /// The proxy accepts each connection and opens its own to the endpoint.
    Userspace,
}

impl UpArgs {
    /// The flags of the built-in node, as the node's parts take them.
    pub fn node_args(&self) -> node_host::NodeArgs {
        node_host::NodeArgs {
            shared: self.node.clone(),
            // The server reaches its own node in process; the port is only reported.
            kubelet_port: skiff_node::agent::DEFAULT_KUBELET_PORT,
        }
    }
}

/// How the real node runs pods.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ContainerRuntime {
    /// Process groups on the host's network, loopback pod addresses.
    Process,
    /// A network namespace per pod, addresses from the Node's `podCIDR`.
    Oci,
}

/// Reads a duration written as kube-controller-manager takes it (`15s`, `5m`, `1m30s`).
fn parse_duration(text: &str) -> Result<Duration, String> {
    let parsed: jiff::SignedDuration = text
        .parse()
        .map_err(|e| format!("invalid duration {text:?}: {e}"))?;
    Duration::try_from(parsed).map_err(|_| format!("duration {text:?} must not be negative"))
}

/// The hidden subcommand that runs one operation of the embedded OCI runtime.
pub const OCI_SHIM_SUBCOMMAND: &str = "oci-shim";

/// The hidden subcommand running the node's container monitor (`skiff_oci::monitor`), which
/// keeps containers and their exit codes while `skiff up` restarts.
pub const NODE_MONITOR_SUBCOMMAND: &str = "node-monitor";

fn main() -> std::process::ExitCode {
    // The embedded runtime forks containers: it must run before any thread exists, so it is
    // dispatched ahead of everything else (runc-style arguments, not clap's).
    let mut args = std::env::args_os();
    if args.nth(1).is_some_and(|a| a == OCI_SHIM_SUBCOMMAND) {
        let code = skiff_oci::shim_main(args);
        return std::process::ExitCode::from(u8::try_from(code).unwrap_or(1));
    }
    if std::env::args_os()
        .nth(1)
        .is_some_and(|a| a == NODE_MONITOR_SUBCOMMAND)
    {
        // The node's container monitor forks runtimes too, and must stay single-threaded.
        let code = skiff_oci::monitor_main(std::env::args_os().skip(2));
        return std::process::ExitCode::from(u8::try_from(code).unwrap_or(1));
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SKIFF_LOG")
                // The DNS server logs every query at info; CoreDNS logs none without its `log`
                // plugin, and the cluster DNS keeps as quiet.
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,hickory_server=warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match &cli.command {
        Command::Image { command } => return image_cmd::run(command),
        Command::DemoServer => return image_cmd::demo_server(),
        Command::Kubeconfig(args) => {
            return match user_kubeconfig::run(args) {
                Ok(()) => std::process::ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e}");
                    std::process::ExitCode::FAILURE
                }
            }
        }
        _ => {}
    }
    if let Command::Rollout {
        command: RolloutCommand::Plan { file, output },
    } = &cli.command
    {
        return match plan::run(file, *output) {
            Ok(()) => std::process::ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e}");
                std::process::ExitCode::FAILURE
            }
        };
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = match cli.command {
        Command::Up(args) => runtime.block_on(up::run(*args)),
        Command::Agent(args) => runtime.block_on(agent::run(*args)),
        Command::Rollout { .. }
        | Command::Image { .. }
        | Command::Kubeconfig(_)
        | Command::DemoServer => Ok(()),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser};

    use super::*;

    /// Every node flag with its value as a user would give it, none of them the default.
    const NODE_FLAGS: [(&str, &str); 12] = [
        ("--node-name", "worker-1"),
        ("--node-ip", "198.18.0.7,198.18.0.8"),
        ("--no-proxy", ""),
        ("--registry-config", "/etc/skiff/registries.yaml"),
        ("--container-runtime", "oci"),
        ("--cluster-cidr", "198.18.64.0/18"),
        ("--service-cidr", "198.19.64.0/18"),
        ("--pod-bridge", "skiff9"),
        ("--cluster-domain", "example.internal"),
        ("--cgroup-root", "other"),
        ("--oci-runtime", "/usr/bin/crun"),
        ("--proxy-mode", "userspace"),
    ];

    /// The node flags `skiff up` parsed from `extra`.
    fn up_node_flags(extra: &[&str]) -> node_host::NodeFlags {
        let args = [&["skiff", "up"], extra].concat();
        match Cli::try_parse_from(args).expect("skiff up parses").command {
            Command::Up(up) => up.node,
            _ => panic!("not skiff up"),
        }
    }

    /// The node settings `skiff agent` parsed from `extra`.
    fn agent_node_args(extra: &[&str]) -> node_host::NodeArgs {
        let args = [
            &["skiff", "agent", "--server", "https://198.18.0.1:6443"],
            extra,
        ]
        .concat();
        match Cli::try_parse_from(args)
            .expect("skiff agent parses")
            .command
        {
            Command::Agent(agent) => agent.node,
            _ => panic!("not skiff agent"),
        }
    }

    #[test]
    fn up_and_agent_take_the_same_node_flags_with_the_same_defaults() {
        Cli::command().debug_assert();
        let up = up_node_flags(&[]);
        let agent = agent_node_args(&["--token", "t"]);
        assert_eq!(format!("{up:?}"), format!("{:?}", agent.shared));
        assert_eq!(up.container_runtime, None, "no flag: the machine decides");
        assert_eq!(up.proxy_mode, ProxyMode::Nftables);
        assert_eq!(up.cluster_cidr, "10.42.0.0/16");
        assert_eq!(up.service_cidr, "10.43.0.0/16");
        assert_eq!(up.pod_bridge, "skiff0");
        assert_eq!(up.cluster_domain, "cluster.local");
        assert_eq!(up.cgroup_root, "skiff");
        assert!(up.node_name.is_none() && up.node_ip.is_empty() && !up.no_proxy);
        assert_eq!(agent.kubelet_port, 10250);

        let given: Vec<&str> = NODE_FLAGS
            .iter()
            .flat_map(|(flag, value)| {
                [*flag]
                    .into_iter()
                    .chain((!value.is_empty()).then_some(*value))
            })
            .collect();
        let up = up_node_flags(&given);
        let agent = agent_node_args(&[given.as_slice(), &["--token", "t"]].concat());
        assert_eq!(format!("{up:?}"), format!("{:?}", agent.shared));
        assert_eq!(up.node_ip.len(), 2, "{up:?}");
        assert_eq!(up.container_runtime, Some(ContainerRuntime::Oci));
        assert_eq!(up.proxy_mode, ProxyMode::Userspace);
        assert!(up.no_proxy);
    }

    #[test]
    fn only_the_agent_takes_a_kubelet_port() {
        let agent = agent_node_args(&["--token", "t", "--kubelet-port", "10260"]);
        assert_eq!(agent.kubelet_port, 10260);
        let refused = Cli::try_parse_from(["skiff", "up", "--kubelet-port", "10260"])
            .err()
            .expect("skiff up has no --kubelet-port");
        assert_eq!(refused.kind(), clap::error::ErrorKind::UnknownArgument);
        let up = Cli::try_parse_from(["skiff", "up"]).expect("skiff up parses");
        let Command::Up(up) = up.command else {
            panic!("not skiff up");
        };
        assert_eq!(
            up.node_args().kubelet_port,
            skiff_node::agent::DEFAULT_KUBELET_PORT
        );
    }
}
