//! What runs on every machine that is a node, whether `skiff up` runs it beside the control
//! plane or `skiff agent` beside a remote server: the `oci` runtime's cluster IP interface and
//! cluster DNS, the service proxy and the node agent, all speaking to the cluster through one
//! [`Client`].

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use skiff_apiserver::allocator::ServiceRange;
use skiff_client::logs::PodLogs;
use skiff_client::metrics::ResourceMetrics;
use skiff_client::streams::PodStreams;
use skiff_client::Client;
use skiff_node::agent::pod_range::pod_range_for;
use skiff_node::agent::{
    ClusterDnsSettings, ImageService, NodeAgent, NodeAgentConfig, NodeAgentError,
    PodNetworkSettings,
};
use skiff_node::drain::TrafficDrain;
use skiff_node::store_images::StoreImages;
use skiff_node::wiring::KubeletProber;
use skiff_proxy::{Proxy, ProxyConfig};

use crate::runtime_choice::RuntimeChoice;
use crate::{ContainerRuntime, ProxyMode};

/// The flags of a node that `skiff up` (for its built-in node) and `skiff agent` both take,
/// declared once so both commands offer the same names, defaults and help.
#[derive(clap::Args, Clone, Debug)]
pub struct NodeFlags {
    /// The name of this machine's node (default: the host name).
    #[arg(long)]
    pub node_name: Option<String>,
    /// The node's addresses (k3s's flag; repeat it or separate addresses with commas):
    /// NodePorts listen on each of them (under `skiff up` also on `--listen`'s address, which
    /// alone keeps them on loopback by default).
    #[arg(long, value_name = "IP", value_delimiter = ',')]
    pub node_ip: Vec<IpAddr>,
    /// Run no service proxy on this node: ClusterIPs and NodePorts are allocated but nothing
    /// here listens on them.
    #[arg(long)]
    pub no_proxy: bool,
    /// A registries file in k3s' `registries.yaml` shape (`mirrors`, `configs` with `auth`
    /// and `tls`) for the node's image pulls: mirrors, plain-HTTP registries, credentials.
    #[arg(long, value_name = "FILE")]
    pub registry_config: Option<PathBuf>,
    /// How the node runs pods: `process` (process groups on the host's network, loopback pod
    /// addresses) or `oci` (namespaces and a network namespace per pod; needs root and `nft`).
    /// Without the flag: `oci` where the machine allows it, else `process`, said at start and
    /// on the Node.
    #[arg(long, value_enum)]
    pub container_runtime: Option<ContainerRuntime>,
    /// The pod range the Nodes' `podCIDR`s are cut from, a /24 each (k3s's flag and default).
    /// Used by the `oci` runtime, which routes it `unreachable` on the host except this node's
    /// share.
    #[arg(long, value_name = "CIDR", default_value = skiff_net::ranges::DEFAULT_CLUSTER_CIDR)]
    pub cluster_cidr: String,
    /// The Service range (k3s's flag and default), routed `unreachable` on the host by the
    /// `oci` runtime so its packets never leave the machine.
    #[arg(long, value_name = "CIDR", default_value = skiff_net::ranges::DEFAULT_SERVICE_CIDR)]
    pub service_cidr: String,
    /// The bridge pods' network namespaces join under the `oci` runtime; two Skiffs on one
    /// machine need two bridges.
    #[arg(long, value_name = "NAME", default_value = skiff_net::DEFAULT_BRIDGE)]
    pub pod_bridge: String,
    /// The cluster domain (k3s's flag and default): under the `oci` runtime the cluster DNS
    /// answers `<service>.<namespace>.svc.<domain>` and pods search it.
    #[arg(long, value_name = "DOMAIN", default_value = "cluster.local")]
    pub cluster_domain: String,
    /// The cgroup (in every hierarchy) under which the `oci` runtime puts the kubelet's
    /// `kubepods` tree: a cgroup per pod and per container with the spec's limits. Two Skiffs
    /// on one machine need two roots.
    #[arg(long, value_name = "NAME", default_value = "skiff")]
    pub cgroup_root: String,
    /// The OCI runtime (`crun` or `runc`, by path) that runs containers under
    /// `--container-runtime oci`; without it, the one built into `skiff` (youki's
    /// `libcontainer`) runs them, so nothing else needs installing.
    #[arg(long, value_name = "PATH")]
    pub oci_runtime: Option<PathBuf>,
    /// How the service proxy forwards under `--container-runtime oci`: `nftables` (the
    /// kernel translates connections to cluster IPs and node ports, kube-proxy's nftables
    /// mode) or `userspace` (the proxy accepts and splices each connection). The `process`
    /// runtime always proxies in user space.
    #[arg(long, value_enum, default_value = "nftables")]
    pub proxy_mode: ProxyMode,
}

/// A node's settings as its parts take them: the [`NodeFlags`] both commands share, and the
/// port of the kubelet endpoint, a flag of `skiff agent` only (the server reaches its own
/// node in process). Reads of the shared flags go through to [`NodeFlags`].
#[derive(clap::Args, Clone, Debug)]
pub struct NodeArgs {
    /// The flags `skiff up` and `skiff agent` share.
    #[command(flatten)]
    pub shared: NodeFlags,
    /// The port of the node's kubelet endpoint (HTTPS, on the first `--node-ip`, else
    /// loopback), through which the API server reaches its pods (`skiff agent` serves it).
    #[arg(long, value_name = "PORT", default_value_t = skiff_node::agent::DEFAULT_KUBELET_PORT)]
    pub kubelet_port: u16,
}

impl std::ops::Deref for NodeArgs {
    type Target = NodeFlags;

    fn deref(&self) -> &NodeFlags {
        &self.shared
    }
}

impl std::ops::DerefMut for NodeArgs {
    fn deref_mut(&mut self) -> &mut NodeFlags {
        &mut self.shared
    }
}

/// The nftables table of the service proxy, named after the pod bridge so two Skiffs on one
/// machine never share one.
pub(crate) fn proxy_table_name(bridge: &str) -> String {
    format!("skiff_svc_{bridge}")
}

/// The host name as a node name (lowercase, as node names must be), or `localhost`.
pub(crate) fn host_node_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|h| h.trim().to_ascii_lowercase())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}

/// The runtime the node runs pods on: `--container-runtime`'s, else `oci` where this machine
/// allows it; a fall back to processes is logged here and returned for the Node to show.
pub(crate) fn choose_container_runtime(args: &NodeArgs, runs_pods: bool) -> RuntimeChoice {
    let host = match (args.container_runtime, runs_pods) {
        (None, true) => crate::runtime_choice::probe_host(),
        // Not looked at: the choice is made without the machine.
        _ => crate::runtime_choice::HostAbilities {
            root: false,
            namespaces: false,
            nft: false,
        },
    };
    let choice = crate::runtime_choice::choose_runtime(args.container_runtime, runs_pods, host);
    if let Some(reason) = &choice.fallback {
        tracing::warn!(
            "container runtime process, not oci: {reason} (--container-runtime oci needs root, namespaces and nft)"
        );
    }
    choice
}

/// The pod network the `oci` runtime builds, checked before anything starts.
pub(crate) fn pod_network_settings(
    args: &NodeArgs,
    runtime: ContainerRuntime,
) -> Result<Option<PodNetworkSettings>, Box<dyn std::error::Error>> {
    let ranges = skiff_net::ClusterRanges::parse(
        &args.cluster_cidr,
        &args.service_cidr,
        skiff_net::ranges::DEFAULT_NODE_CIDR_MASK_SIZE,
    )?;
    match runtime {
        ContainerRuntime::Process if args.oci_runtime.is_some() => {
            Err("--oci-runtime needs --container-runtime oci".into())
        }
        ContainerRuntime::Process => Ok(None),
        ContainerRuntime::Oci => {
            if !nix::unistd::geteuid().is_root() {
                return Err(
                    "--container-runtime oci needs root: pods get network namespaces, veths and routes"
                        .into(),
                );
            }
            let mut settings = PodNetworkSettings::new(ranges);
            settings.bridge = args.pod_bridge.clone();
            Ok(Some(settings))
        }
    }
}

/// What the `oci` runtime adds around the pod network: cluster IPs from `--service-cidr`, put
/// on a dummy interface named after the pod bridge, and the cluster DNS at the range's `.10`.
pub(crate) struct ServiceNetwork {
    pub(crate) range: ServiceRange,
    pub(crate) dns_ip: Ipv4Addr,
    interface: String,
    domain: String,
}

impl ServiceNetwork {
    pub(crate) fn for_pod_network(
        args: &NodeArgs,
        settings: &PodNetworkSettings,
    ) -> Result<ServiceNetwork, Box<dyn std::error::Error>> {
        let cidr = settings.ranges.service_cidr;
        let range = ServiceRange::new(cidr.network(), cidr.prefix_len())
            .ok_or_else(|| format!("--service-cidr {cidr} must hold at least 8 addresses"))?;
        let dns_ip = range
            .nth(crate::cluster_dns::DNS_SERVICE_OFFSET)
            .ok_or_else(|| format!("--service-cidr {cidr} is too small for the DNS Service"))?;
        // Checked now, so a bad domain stops nothing half-started.
        skiff_dns::ClusterZone::new(&args.cluster_domain)?;
        Ok(ServiceNetwork {
            range,
            dns_ip,
            interface: skiff_net::service_interface_name(&settings.bridge),
            domain: args.cluster_domain.trim_end_matches('.').to_string(),
        })
    }

    /// The frontends the DNS server answers on itself, which the proxy leaves alone.
    fn dns_frontends(&self) -> std::collections::HashSet<SocketAddr> {
        [53, crate::cluster_dns::DNS_METRICS_PORT]
            .into_iter()
            .map(|port| SocketAddr::new(IpAddr::V4(self.dns_ip), port))
            .collect()
    }
}

/// The OCI runtime containers run through: `--oci-runtime`'s program, else the embedded one
/// (this binary re-executed for its hidden shim subcommand), with its state under `DATA/oci`;
/// containers are created through the node's monitor (this binary's hidden `node-monitor`).
fn oci_runtime(
    args: &NodeArgs,
    data_dir: &Path,
) -> Result<Arc<dyn skiff_oci::OciRuntime>, Box<dyn std::error::Error>> {
    let root = data_dir.join("oci");
    let program = std::env::current_exe()?;
    let runtime = match &args.oci_runtime {
        Some(runtime) => skiff_oci::CliRuntime::at_path(runtime, root)?,
        None => skiff_oci::embedded_runtime(
            program.clone(),
            vec![crate::OCI_SHIM_SUBCOMMAND.into()],
            root,
        )?,
    }
    .with_monitor(program, vec![crate::NODE_MONITOR_SUBCOMMAND.into()]);
    // Reconnect to the monitor a previous run left (its containers are adopted), or start one.
    runtime.connect_monitor()?;
    tracing::info!(
        runtime = skiff_oci::OciRuntime::name(&runtime),
        "containers run through an OCI runtime"
    );
    Ok(Arc::new(runtime))
}

/// Lets the node agent hold a dying pod's SIGTERM until this process's proxy stops routing to
/// it: the proxy is the only one on this node, so its routes are all that matter.
struct ProxyDrain(Proxy);

#[async_trait::async_trait]
impl TrafficDrain for ProxyDrain {
    async fn wait_unrouted(&self, pod_ip: IpAddr, deadline: tokio::time::Instant) {
        if !self.0.wait_unrouted(pod_ip, deadline).await {
            tracing::warn!(%pod_ip, "the proxy still routed to the pod when its drain ended");
        }
    }
}

/// How to start a node's parts.
pub(crate) struct NodeHostSettings<'a> {
    /// The node's flags.
    pub(crate) args: &'a NodeArgs,
    /// Where the node keeps its pods, images and OCI state.
    pub(crate) data_dir: &'a Path,
    /// The node's name.
    pub(crate) node_name: String,
    /// Whether a node agent runs (`skiff up --no-node` runs the proxy alone).
    pub(crate) run_agent: bool,
    /// Whether the node is a server's (labelled with the control-plane role).
    pub(crate) control_plane: bool,
    /// The address NodePorts always listen on, beside `--node-ip`'s.
    pub(crate) primary_address: IpAddr,
    /// The pod network of the `oci` runtime, from [`pod_network_settings`].
    pub(crate) pod_network: Option<PodNetworkSettings>,
    /// Its Service network, from [`ServiceNetwork::for_pod_network`].
    pub(crate) service_network: Option<&'a ServiceNetwork>,
    /// How often pod and node usage is sampled.
    pub(crate) metric_resolution: Duration,
    /// Whether the `oci` runtime's pods keep running when the node stops, as they do when
    /// kubelet stops (`skiff agent`), for the next start to adopt.
    pub(crate) leave_pods_running: bool,
    /// Why the node runs pods as processes though `oci` was the default, for the Node.
    pub(crate) runtime_fallback: Option<String>,
}

/// A node's running parts; [`NodeHost::finish`] waits for the agent and takes the rest down.
pub(crate) struct NodeHost {
    service_interface: Option<Arc<skiff_net::ServiceInterface>>,
    cluster_dns: Option<crate::cluster_dns::ClusterDns>,
    proxy: Option<Proxy>,
    agent: Option<tokio::task::JoinHandle<Result<(), NodeAgentError>>>,
    /// The agent's pod logs, for the API server in the same process.
    pub(crate) logs: Option<Arc<dyn PodLogs>>,
    /// The agent's exec, attach and port-forward sessions, likewise.
    pub(crate) streams: Option<Arc<dyn PodStreams>>,
    /// The agent's measured usage, likewise.
    pub(crate) metrics: Option<Arc<dyn ResourceMetrics>>,
}

impl NodeHost {
    /// Starts the node's parts against `client`; the agent stops its pods once `shutdown`
    /// completes (or leaves them running, with [`NodeHostSettings::leave_pods_running`]).
    pub(crate) async fn start(
        client: Arc<dyn Client>,
        settings: NodeHostSettings<'_>,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Result<NodeHost, Box<dyn std::error::Error>> {
        let args = settings.args;
        let data_dir = settings.data_dir;
        // Cluster IPs live on a dummy interface under the oci runtime; the DNS Service's
        // address is put there first, for the DNS server to answer on.
        let service_interface = match settings.service_network {
            Some(network) => {
                let interface =
                    Arc::new(skiff_net::ServiceInterface::create(&network.interface).await?);
                interface.add(network.dns_ip).await?;
                Some(interface)
            }
            None => None,
        };
        let cluster_dns = match settings.service_network {
            Some(network) => {
                let listen = SocketAddr::new(IpAddr::V4(network.dns_ip), 53);
                match crate::cluster_dns::ClusterDns::start(client.clone(), listen, &network.domain)
                    .await
                {
                    Ok(dns) => Some(dns),
                    Err(error) => {
                        if let Some(interface) = &service_interface {
                            let _ = interface.delete().await;
                        }
                        return Err(format!("cannot start the cluster DNS: {error}").into());
                    }
                }
            }
            None => None,
        };

        // The proxy starts before the node agent so that the agent's drain waits see its
        // routes.
        let proxy = if args.no_proxy {
            None
        } else {
            // Node ports listen on the node's primary address and on `--node-ip`'s, and
            // nowhere else.
            let mut node_addresses = vec![settings.primary_address];
            for ip in &args.node_ip {
                if !node_addresses.contains(ip) {
                    node_addresses.push(*ip);
                }
            }
            let mut config = ProxyConfig::new(node_addresses);
            // `Local` traffic policies keep to the pods of this machine's node.
            config.node_name = settings.run_agent.then(|| settings.node_name.clone());
            if let (Some(network), Some(interface)) = (settings.service_network, &service_interface)
            {
                config.cluster_ip_host = Some(Arc::new(crate::cluster_dns::DummyClusterIps(
                    interface.clone(),
                )));
                config.served_elsewhere = network.dns_frontends();
            }
            if let Some(pod_network) = settings
                .pod_network
                .as_ref()
                .filter(|_| args.proxy_mode == ProxyMode::Nftables)
            {
                let pods = pod_network.ranges.cluster_cidr;
                config.kernel = Some(skiff_proxy::KernelForwarding::nft(
                    proxy_table_name(&pod_network.bridge),
                    vec![(pods.network(), pods.prefix_len())],
                ));
            }
            Some(Proxy::start(client.clone(), config)?)
        };

        let mut host = NodeHost {
            service_interface,
            cluster_dns,
            proxy,
            agent: None,
            logs: None,
            streams: None,
            metrics: None,
        };
        if !settings.run_agent {
            return Ok(host);
        }
        let content =
            skiff_images::ContentStore::open(data_dir.join(crate::image_cmd::CONTENT_SUBDIR))?;
        let registries = crate::image_cmd::registry_config(args.registry_config.as_deref())?;
        let puller = skiff_images::Puller::new(content.clone(), registries);
        let images: Arc<dyn ImageService> = Arc::new(StoreImages::new(content, puller));
        let mut config = NodeAgentConfig::new(
            &settings.node_name,
            data_dir.join("node"),
            images,
            Arc::new(KubeletProber),
        );
        match settings.pod_network {
            Some(pod_network) => {
                tracing::info!(
                    cluster_cidr = %pod_network.ranges.cluster_cidr,
                    service_cidr = %pod_network.ranges.service_cidr,
                    "container runtime oci: each pod gets its own network namespace"
                );
                config.pod_network = Some(pod_network);
                config.cluster_dns = settings.service_network.map(|network| ClusterDnsSettings {
                    servers: vec![IpAddr::V4(network.dns_ip)],
                    domain: network.domain.clone(),
                });
                config.cgroup_root = Some(args.cgroup_root.clone());
                config.oci_runtime = Some(oci_runtime(args, data_dir)?);
            }
            None => {
                config.pod_cidr = pod_range_for(&data_dir.join("node").join("pod-range"));
            }
        }
        config.runtime_fallback = settings.runtime_fallback.clone();
        config.kubelet_port = args.kubelet_port;
        config.node_ips = args.node_ip.clone();
        config.control_plane = settings.control_plane;
        config.leave_pods_running = settings.leave_pods_running;
        if let Some(proxy) = &host.proxy {
            config = config.with_traffic_drain(Arc::new(ProxyDrain(proxy.clone())));
        }
        let agent = NodeAgent::new(client, config);
        host.logs = Some(agent.logs());
        host.streams = Some(agent.streams());
        host.metrics = Some(agent.metrics(settings.metric_resolution));
        let run = agent.run(shutdown);
        // Said when it happens (a pod network that cannot be built, say), not only at exit.
        host.agent = Some(tokio::spawn(async move {
            let result = run.await;
            if let Err(error) = &result {
                tracing::error!(%error, "the node agent stopped; this machine runs no pods");
            }
            result
        }));
        Ok(host)
    }

    /// Waits for the node agent to stop (or leave) its pods once its shutdown completed, then
    /// stops the proxy and the cluster DNS and removes the cluster IP interface.
    pub(crate) async fn finish(self) {
        if let Some(agent) = self.agent {
            match agent.await {
                // Already logged when it happened.
                Ok(Err(_)) | Ok(Ok(())) => {}
                Err(e) => tracing::warn!(error = %e, "the node agent task failed"),
            }
        }
        if let Some(proxy) = &self.proxy {
            proxy.stop().await;
        }
        drop(self.proxy);
        if let Some(dns) = self.cluster_dns {
            dns.stop().await;
        }
        if let Some(interface) = self.service_interface {
            if let Err(error) = interface.delete().await {
                tracing::warn!(%error, interface = interface.name(), "cannot remove the cluster IP interface");
            }
        }
    }
}
