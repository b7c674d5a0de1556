//! The `skiff` command: Kubernetes workloads in one binary.

mod image_cmd;
mod kubeconfig;
mod memory;
mod pki;
mod plan;
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
    Up(UpArgs),
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
    /// The address the API server listens on.
    #[arg(long, default_value = "127.0.0.1:6443")]
    pub listen: SocketAddr,
    /// Also run this many simulated nodes (`sim-node-1` ...), whose pods go Pending, Running
    /// and Ready on a simulated timeline without running any process.
    #[arg(long, default_value_t = 0)]
    pub simulated_nodes: u32,
    /// The name of this machine's node (default: the host name).
    #[arg(long)]
    pub node_name: Option<String>,
    /// Run no real node: pods run only on simulated nodes (or stay Pending).
    #[arg(long)]
    pub no_node: bool,
    /// Run no service proxy: ClusterIPs and NodePorts are allocated but nothing listens on them.
    #[arg(long)]
    pub no_proxy: bool,
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
}

/// Reads a duration written as kube-controller-manager takes it (`15s`, `5m`, `1m30s`).
fn parse_duration(text: &str) -> Result<Duration, String> {
    let parsed: jiff::SignedDuration = text
        .parse()
        .map_err(|e| format!("invalid duration {text:?}: {e}"))?;
    Duration::try_from(parsed).map_err(|_| format!("duration {text:?} must not be negative"))
}

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SKIFF_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
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
        Command::Up(args) => runtime.block_on(up::run(args)),
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
