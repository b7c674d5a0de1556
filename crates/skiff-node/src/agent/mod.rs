//! The real node agent: pods as processes on this machine.
//!
//! Like kubelet, the agent registers its Node (real CPUs and memory), keeps its Lease, watches
//! the pods bound to it and makes reality match them: one worker per pod drives a pure state
//! machine ([`machine::PodMachine`]) whose actions start container processes (each in its own
//! process group, in its own mount and UTS namespaces when running as root), run probes and
//! hooks, stop containers gracefully and confirm deletions. Status goes back through the
//! client exactly as kubelet reports it.
//!
//! A container whose image changes on a live pod is restarted in place (kubelet's "definition
//! changed"), keeping the pod's sandbox, address and other containers. With a
//! [`crate::drain::TrafficDrain`] ([`NodeAgentConfig::with_traffic_drain`]) a deleted pod, or one
//! OpenKruise took out of service for an in-place update, keeps serving until proxies no longer
//! route to it, within its grace period, before preStop hooks and SIGTERM.
//!
//! Images and probes plug in through [`ImageService`] and [`Prober`]; [`SimpleImages`] and
//! [`SimpleProber`] are small built-in implementations.
//!
//! Guarantees: when [`NodeAgent::run`] returns, no process it started is left: every pod was
//! stopped within its grace period (bounded by [`NodeAgentConfig::shutdown_grace`]) and then
//! killed (unless [`NodeAgentConfig::leave_pods_running`] leaves the OCI runtime's containers
//! running for the next run, as kubelet does when it stops). Process groups are recorded per
//! pod with their leader's start time, so leftovers of a crashed agent are killed at the next start (never a process that merely got a recorded PID
//! again), as are processes carrying a known pod's UID that the crash left unrecorded; the pods
//! then start afresh, counting a restart. They are not adopted: their output pipes died with
//! the agent.
//!
//! With [`NodeAgentConfig::pod_network`] and [`NodeAgentConfig::cgroup_root`] (the `oci`
//! container runtime) each pod gets its own network namespace with an address from the Node's
//! `podCIDR`, and a cgroup per pod and per container with the spec's limits; a container the
//! OOM killer ended is reported `OOMKilled`.
//!
//! Not done yet: containers through an OCI runtime (they are still process groups), service
//! environment variables other than the `kubernetes` Service's, service account tokens in
//! projected volumes, ephemeral and sidecar (restartable init) containers.

mod backoff;
pub mod command;
pub mod deadline;
mod graceful;
pub mod host_facts;
pub mod image_gc;
#[cfg(test)]
mod lifecycle_tests;
pub mod logfiles;
pub mod machine;
mod node;
mod oci;
pub mod peer_routes;
pub mod pod_range;
pub mod probe_timing;
mod process;
pub mod pull;
pub mod pull_secrets;
pub mod rootfs;
mod runtime;
pub mod sandbox;
mod streams;
mod worker;

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::future::Future;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use k8s_openapi::api::core::v1::{Pod, Service};
use skiff_client::logs::PodLogs;
use skiff_client::{Api, Client, ClientError};
use skiff_runtime::{EventRecorder, EventSource, Informer, InformerConfig, Notification};
use tokio::sync::mpsc;

pub use backoff::Backoff;

/// How often zombie children nobody else collects are looked for under the OCI runtime.
const ZOMBIE_SWEEP_PERIOD: Duration = Duration::from_secs(5);
pub use logfiles::{AgentLogs, LiveRuns};
pub use machine::BackoffConfig;
pub use node::{detect_capacity, NodeReporter, RealNode, NODE_ADDRESS};
pub use runtime::{
    image_repository, ExecFn, ExecOutput, ImageGcFailure, ImageLookupError, ImageRoot,
    ImageService, ProbeContext, ProbeResult, Prober, PullCredentials, PulledImage, ResolvedImage,
    SimpleImages, SimpleProber,
};
pub use streams::AgentStreams;

use crate::drain::TrafficDrain;
use crate::simulated::ipam::PodIpPool;
use crate::simulated::NodeCapacity;

/// How the real node runs.
#[derive(Clone)]
pub struct NodeAgentConfig {
    /// The Node's name.
    pub node_name: String,
    /// Where pods live: `DATA/pods/<uid>/`.
    pub data_dir: PathBuf,
    /// The pod range (default `127.128.0.0/16`): loopback addresses, so every pod can listen
    /// on any port without privileges.
    pub pod_cidr: (Ipv4Addr, u8),
    /// What the node offers; [`detect_capacity`] reads this machine's.
    pub capacity: NodeCapacity,
    /// Finds and pulls images.
    pub images: Arc<dyn ImageService>,
    /// Runs probes and hooks.
    pub prober: Arc<dyn Prober>,
    /// How often the Lease is renewed (kubelet: 10 s).
    pub heartbeat: Duration,
    /// Crash-loop and image-pull back-off (kubelet: 10 s doubling to 5 min); tests shorten it.
    pub backoff: BackoffConfig,
    /// The longest any pod gets to stop when the agent stops.
    pub shutdown_grace: Duration,
    /// Whether the agent leaves its pods running when it stops, as kubelet does: their
    /// containers, sandboxes and cgroups stay for the next run to adopt. Only containers an
    /// OCI runtime's monitor holds outlive the agent, so without [`Self::oci_runtime`] the
    /// pods are stopped anyway. Off by default: `skiff up` stops its pods with itself.
    pub leave_pods_running: bool,
    /// Whether to give containers their own mount and UTS namespaces when possible.
    pub isolate: bool,
    /// Where a container's log file is rotated.
    pub log_cap: u64,
    /// Holds a stopping pod's preStop and SIGTERM until proxies no longer route to it; none
    /// means no wait (Kubernetes' behaviour).
    pub traffic_drain: Option<Arc<dyn TrafficDrain>>,
    /// How often unused images are garbage collected (kubelet: 5 minutes); tests shorten it.
    pub image_gc_period: Duration,
    /// A network namespace per pod on a bridge, with addresses from the Node's `podCIDR`;
    /// none keeps pods on the host's network with loopback addresses from `pod_cidr`.
    pub pod_network: Option<PodNetworkSettings>,
    /// The cgroup (relative to each hierarchy's root, e.g. `skiff`) under which pods get the
    /// kubelet's `kubepods` tree with a cgroup per pod and per container; none leaves
    /// containers unlimited in the agent's cgroup.
    pub cgroup_root: Option<String>,
    /// Runs containers as OCI containers (each in its image's root, with its own PID, IPC,
    /// UTS and mount namespaces) when pods get a network namespace and a cgroup; none runs
    /// them as process groups.
    pub oci_runtime: Option<Arc<dyn skiff_oci::OciRuntime>>,
    /// The cluster DNS pods' resolv.conf names, as kubelet's `--cluster-dns` and
    /// `--cluster-domain`; none gives containers the node's resolv.conf, whatever their
    /// `dnsPolicy`.
    pub cluster_dns: Option<ClusterDnsSettings>,
    /// The port the node's kubelet endpoint serves on, reported in the Node's
    /// `status.daemonEndpoints.kubeletEndpoint.Port` (the kubelet's 10250 by default).
    pub kubelet_port: u16,
    /// `--node-ip`: the node's `InternalIP`s in order; none takes the default route's
    /// address (else loopback), as kubelet does.
    pub node_ips: Vec<std::net::IpAddr>,
    /// Whether this is a server's node, labelled with the control-plane role as k3s does.
    pub control_plane: bool,
    /// Why pods run as processes though the OCI runtime was the default (not root, say),
    /// shown on the Node in [`node::RUNTIME_FALLBACK_ANNOTATION`] for `kubectl describe node`.
    pub runtime_fallback: Option<String>,
    /// Where the node reads what it reports of the machine (this machine by default).
    pub host_facts: Arc<dyn host_facts::HostFactSource>,
}

/// The kubelet's default port.
pub const DEFAULT_KUBELET_PORT: u16 = 10250;

/// Where pods find the cluster DNS: what kubelet's `--cluster-dns` and `--cluster-domain` say.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterDnsSettings {
    /// The DNS Service's addresses.
    pub servers: Vec<std::net::IpAddr>,
    /// The cluster domain (`cluster.local`).
    pub domain: String,
}

/// The pod network a node agent builds when pods get their own network namespaces.
#[derive(Clone, Debug)]
pub struct PodNetworkSettings {
    /// `--cluster-cidr`, `--service-cidr` and the node share's size: the node's `podCIDR`
    /// comes from the first, and both get `unreachable` guard routes on the host.
    pub ranges: skiff_net::ClusterRanges,
    /// The bridge pods' veths join (`skiff0`); one per Skiff on a machine.
    pub bridge: String,
    /// Where pod namespaces are pinned (`/run/skiff/netns`).
    pub netns_dir: PathBuf,
}

impl PodNetworkSettings {
    /// k3s's ranges on bridge `skiff0`, namespaces pinned under `/run/skiff/netns`.
    pub fn new(ranges: skiff_net::ClusterRanges) -> PodNetworkSettings {
        PodNetworkSettings {
            ranges,
            bridge: skiff_net::DEFAULT_BRIDGE.to_string(),
            netns_dir: PathBuf::from(skiff_net::DEFAULT_NETNS_DIR),
        }
    }
}

/// The pod network the agent drives (netlink and nftables on this machine).
pub(crate) type PodNetworkHandle = skiff_net::PodNetworkManager<skiff_net::NetlinkPodNetwork>;

impl NodeAgentConfig {
    /// The defaults for node `node_name` keeping pods under `data_dir`, with this machine's
    /// capacity.
    pub fn new(
        node_name: &str,
        data_dir: PathBuf,
        images: Arc<dyn ImageService>,
        prober: Arc<dyn Prober>,
    ) -> NodeAgentConfig {
        NodeAgentConfig {
            node_name: node_name.to_string(),
            data_dir,
            pod_cidr: (Ipv4Addr::new(127, 128, 0, 0), 16),
            capacity: detect_capacity(),
            images,
            prober,
            heartbeat: Duration::from_secs(10),
            backoff: BackoffConfig::default(),
            shutdown_grace: Duration::from_secs(30),
            leave_pods_running: false,
            isolate: true,
            log_cap: logfiles::DEFAULT_LOG_CAP,
            traffic_drain: None,
            image_gc_period: image_gc::DEFAULT_IMAGE_GC_PERIOD,
            pod_network: None,
            cgroup_root: None,
            oci_runtime: None,
            cluster_dns: None,
            kubelet_port: DEFAULT_KUBELET_PORT,
            node_ips: Vec::new(),
            control_plane: false,
            runtime_fallback: None,
            host_facts: Arc::new(host_facts::ThisHost),
        }
    }

    /// Makes deleted pods (and pods OpenKruise took out of service for an in-place update)
    /// wait for `drain` before their containers are signalled, so no proxy sends a new
    /// connection to a process that is shutting down.
    pub fn with_traffic_drain(mut self, drain: Arc<dyn TrafficDrain>) -> NodeAgentConfig {
        self.traffic_drain = Some(drain);
        self
    }
}

/// Why the agent could not run.
#[derive(Debug, thiserror::Error)]
pub enum NodeAgentError {
    /// The API does not serve what the agent needs.
    #[error("the API does not serve what the node agent needs: {0}")]
    Unserved(#[source] Box<ClientError>),
    /// Registering the Node failed.
    #[error("registering node {node}: {source}")]
    Register {
        /// The node.
        node: String,
        /// What the API answered.
        #[source]
        source: Box<ClientError>,
    },
    /// Pod cgroups cannot be set up.
    #[error("setting up pod cgroups: {0}")]
    Cgroups(String),
    /// The pod network cannot be set up.
    #[error("setting up the pod network: {0}")]
    PodNetwork(String),
    /// The data directory cannot be used.
    #[error("preparing the data directory {path}: {source}")]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// The real node agent.
pub struct NodeAgent {
    client: Arc<dyn Client>,
    config: NodeAgentConfig,
    live: LiveRuns,
    processes: crate::metrics::ContainerProcesses,
    exec_places: streams::ExecPlaces,
}

impl NodeAgent {
    /// An agent over `client`; nothing runs until [`NodeAgent::run`].
    pub fn new(client: Arc<dyn Client>, config: NodeAgentConfig) -> NodeAgent {
        NodeAgent {
            client,
            config,
            live: LiveRuns::default(),
            processes: crate::metrics::ContainerProcesses::default(),
            exec_places: streams::ExecPlaces::default(),
        }
    }

    /// The node's and its pods' resource usage, sampled every `resolution`, to serve
    /// `metrics.k8s.io` (hand it to the API server and the autoscaler). Needs a Tokio runtime.
    pub fn metrics(&self, resolution: Duration) -> Arc<dyn skiff_client::metrics::ResourceMetrics> {
        crate::metrics::RealNodeMetrics::start(
            &self.config.node_name,
            self.processes.clone(),
            resolution,
        )
    }

    /// The agent's logs, to serve `pods/NAME/log` (hand it to the API server).
    pub fn logs(&self) -> Arc<dyn PodLogs> {
        Arc::new(AgentLogs::new(
            self.client.clone(),
            self.config.data_dir.clone(),
            self.live.clone(),
        ))
    }

    /// The agent's exec, attach and port-forward sessions, to serve `pods/exec`,
    /// `pods/attach` and `pods/portforward` (hand it to the API server).
    pub fn streams(&self) -> Arc<dyn skiff_client::streams::PodStreams> {
        Arc::new(streams::AgentStreams::new(
            self.client.clone(),
            self.exec_places.clone(),
        ))
    }

    /// Registers the node and runs its pods until `shutdown` completes, then stops every pod
    /// (gracefully, bounded by `shutdown_grace`) and returns once no process is left; with
    /// [`NodeAgentConfig::leave_pods_running`] and an OCI runtime it returns at once, leaving
    /// the pods' containers, network and cgroups to the next run.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), NodeAgentError> {
        let pods_dir = self.config.data_dir.join("pods");
        std::fs::create_dir_all(&pods_dir).map_err(|source| NodeAgentError::DataDir {
            path: pods_dir.clone(),
            source,
        })?;
        let mut pod_cidr = self.config.pod_cidr;
        if let Some(settings) = &self.config.pod_network {
            let net = node_pod_cidr(&self.client, &self.config.node_name, settings).await?;
            pod_cidr = (net.network(), net.prefix_len());
        }
        let facts = self.config.host_facts.gather();
        let internal_ips = host_facts::internal_ips(&self.config.node_ips, &facts);
        let host_ip = internal_ips
            .first()
            .map_or_else(|| NODE_ADDRESS.to_string(), ToString::to_string);
        let node = RealNode::new(
            &self.config.node_name,
            pod_cidr,
            self.config.capacity.clone(),
        )
        .with_kubelet_port(self.config.kubelet_port)
        .with_host(internal_ips, facts)
        .with_runtime_name(if self.config.oci_runtime.is_some() {
            "skiff-oci"
        } else {
            "skiff"
        })
        .with_control_plane(self.config.control_plane)
        .with_runtime_fallback(self.config.runtime_fallback.clone());
        let mut reporter = NodeReporter::new(self.client.clone(), node, self.config.heartbeat)
            .map_err(|e| NodeAgentError::Unserved(Box::new(e)))?
            .with_images(self.config.images.clone());
        reporter
            .register()
            .await
            .map_err(|source| NodeAgentError::Register {
                node: self.config.node_name.clone(),
                source: Box::new(source),
            })?;
        let pod_network = match &self.config.pod_network {
            Some(settings) => {
                let network = start_pod_network(settings, pod_cidr, &self.config.data_dir).await?;
                tracing::info!(pod_cidr = %format!("{}/{}", pod_cidr.0, pod_cidr.1), bridge = %settings.bridge, "pods get their own network namespaces");
                Some(Arc::new(network))
            }
            None => None,
        };
        let cgroups = match &self.config.cgroup_root {
            Some(root) => match start_cgroups(root) {
                Ok(cgroups) => {
                    let cgroups = Arc::new(cgroups);
                    self.processes.measure_cgroups_with(cgroups.clone());
                    Some(cgroups)
                }
                Err(error) => {
                    // Leave nothing of the network behind when the node cannot run pods.
                    if let Some(network) = &pod_network {
                        shut_down_pod_network(network).await;
                    }
                    return Err(error);
                }
            },
            None => None,
        };
        // Other nodes' pods are reached through their nodes' addresses (host-gw).
        let peer_router = match &self.config.pod_network {
            Some(settings) if pod_network.is_some() => match skiff_net::NetlinkPeerRoutes::new() {
                Ok(table) => Some(peer_routes::PeerRouter::start(
                    self.client.clone(),
                    &self.config.node_name,
                    settings.ranges.cluster_cidr,
                    Arc::new(table),
                    peer_routes::PEER_ROUTE_RESYNC,
                )),
                Err(error) => {
                    tracing::error!(%error, "cannot route to other nodes' pods");
                    None
                }
            },
            _ => None,
        };
        let pods = skiff_api::resources::find("", "v1", "pods").ok_or_else(|| {
            NodeAgentError::Unserved(Box::new(ClientError::UnknownResource("v1/pods".into())))
        })?;
        let isolation = if self.config.isolate && sandbox::isolation_available() {
            worker::isolation_tools()
        } else {
            None
        };
        if isolation.is_none() {
            tracing::warn!("containers run without mount/UTS isolation (needs root and unshare)");
        }
        let kubernetes_service = kubernetes_service(&self.client).await;
        let allocatable = (
            skiff_api::quantity::parse_milli(&self.config.capacity.cpu).unwrap_or(1000),
            skiff_api::quantity::parse_value(&self.config.capacity.memory).unwrap_or(0),
        );
        let recorder = EventRecorder::new(
            self.client.clone(),
            EventSource {
                component: "kubelet".to_string(),
                host: Some(self.config.node_name.clone()),
            },
        );
        let shared = Arc::new(worker::Shared {
            client: self.client.clone(),
            pods,
            data_dir: self.config.data_dir.clone(),
            host_ip,
            backoff: self.config.backoff,
            isolation,
            log_cap: self.config.log_cap,
            kubernetes_service,
            allocatable,
            images: self.config.images.clone(),
            prober: self.config.prober.clone(),
            recorder: recorder.clone(),
            live: self.live.clone(),
            traffic_drain: self.config.traffic_drain.clone(),
            processes: self.processes.clone(),
            pod_network: pod_network.clone(),
            cgroups: cgroups.clone(),
            exec_places: self.exec_places.clone(),
            oci: self.config.oci_runtime.clone(),
            cluster_dns: self.config.cluster_dns.clone(),
        });
        // Containers' PID 1s come back to this process (a child subreaper); the rare orphan
        // that is neither a container nor tokio's own child is collected here.
        let zombie_sweep = self.config.oci_runtime.is_some().then(|| {
            tokio::spawn(async {
                let mut sweep = oci::ZombieSweep::default();
                let mut ticks = tokio::time::interval(ZOMBIE_SWEEP_PERIOD);
                loop {
                    ticks.tick().await;
                    oci::sweep_zombies(&mut sweep);
                }
            })
        });
        let heartbeat = tokio::spawn(reporter.run());
        let informer = Informer::start(
            self.client.clone(),
            InformerConfig::new(pods).fields(&format!("spec.nodeName={}", self.config.node_name)),
        );
        let leave_pods_running =
            self.config.leave_pods_running && self.config.oci_runtime.is_some();
        let mut shutdown = std::pin::pin!(shutdown.fuse());
        tokio::select! {
            _ = informer.wait_synced() => {}
            _ = &mut shutdown => {
                heartbeat.abort();
                if leave_pods_running {
                    return Ok(());
                }
                // No worker runs yet: containers an earlier run left go with the rest.
                remove_unowned_containers(&shared, |_| true).await;
                if let Some(router) = peer_router {
                    router.stop().await;
                }
                if let Some(network) = &pod_network {
                    shut_down_pod_network(network).await;
                }
                if let Some(cgroups) = &cgroups {
                    remove_cgroup_root(cgroups);
                }
                return Ok(());
            }
        }
        let mut pods_manager = PodManager {
            shared,
            pool: PodIpPool::new(pod_cidr.0, pod_cidr.1),
            workers: HashMap::new(),
            uids_by_key: HashMap::new(),
            specs: HashMap::new(),
            waiting_for_address: std::collections::BTreeSet::new(),
        };
        pods_manager.clean_leftovers(&informer).await;
        let image_gc = tokio::spawn(image_gc::run(
            self.config.images.clone(),
            informer.clone(),
            recorder.clone(),
            self.config.node_name.clone(),
            self.config.image_gc_period,
        ));
        let mut changes = informer.subscribe();
        let (done_tx, mut done_rx) = mpsc::unbounded_channel::<String>();
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                change = changes.recv() => match change {
                    Some(change) => {
                        let handled = skiff_runtime::panics::catch_sync(|| {
                            pods_manager.on_change(change, &done_tx)
                        });
                        if let Err(panic) = handled {
                            tracing::error!("handling a pod change panicked: {panic}");
                        }
                    }
                    None => break,
                },
                Some(uid) = done_rx.recv() => {
                    pods_manager.on_worker_done(&uid, &informer, &done_tx)
                }
            }
        }
        image_gc.abort();
        if let Some(sweep) = &zombie_sweep {
            sweep.abort();
        }
        if leave_pods_running {
            // The containers run on under the runtime's monitor; the next run adopts them.
            pods_manager.abandon_all();
            heartbeat.abort();
            recorder.flush().await;
            tracing::info!("the node agent stopped and left its pods running");
            return Ok(());
        }
        pods_manager
            .stop_all(self.config.shutdown_grace, &mut done_rx)
            .await;
        if let Some(router) = peer_router {
            router.stop().await;
        }
        if let Some(network) = &pod_network {
            shut_down_pod_network(network).await;
        }
        if let Some(cgroups) = &cgroups {
            remove_cgroup_root(cgroups);
        }
        heartbeat.abort();
        recorder.flush().await;
        Ok(())
    }
}

/// Removes the runtime's containers of pods `unowned` picks by UID, which no worker
/// runs: at start those of pods no longer bound here, at stop those no worker adopted.
async fn remove_unowned_containers(shared: &worker::Shared, unowned: impl Fn(&str) -> bool) {
    let Some(runtime) = shared.oci.clone() else {
        return;
    };
    let pods_dir = shared.data_dir.join("pods");
    let managed: Vec<PathBuf> = shared
        .cgroups
        .as_ref()
        .map(|cgroups| {
            cgroups
                .driver()
                .procs_files(&skiff_cgroups::CgroupPath::root())
                .iter()
                .filter_map(|file| file.parent().map(Path::to_path_buf))
                .collect()
        })
        .unwrap_or_default();
    let ids: Vec<_> = runtime
        .list()
        .into_iter()
        .filter(|id| oci::pod_and_container(id).is_some_and(|(uid, _)| unowned(uid)))
        .collect();
    if ids.is_empty() {
        return;
    }
    let _ = tokio::task::spawn_blocking(move || {
        for id in ids {
            tracing::info!(container = %id, "removing a container no pod runs");
            oci::remove_unowned(runtime.as_ref(), &id, &pods_dir, &managed);
        }
    })
    .await;
}

/// Registers the node and runs its pods until `shutdown`: see [`NodeAgent::run`].
pub async fn run(
    client: Arc<dyn Client>,
    config: NodeAgentConfig,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), NodeAgentError> {
    NodeAgent::new(client, config).run(shutdown).await
}

/// The `podCIDR` of this node: the one its Node holds, else the next free share of the cluster
/// range given every other Node's (kube-controller-manager's range allocator, decided by
/// `skiff_net::node_pod_cidr`). Registration writes it to `spec.podCIDR` and `spec.podCIDRs`.
async fn node_pod_cidr(
    client: &Arc<dyn Client>,
    node_name: &str,
    settings: &PodNetworkSettings,
) -> Result<ipnet::Ipv4Net, NodeAgentError> {
    let unserved = |e: ClientError| NodeAgentError::Unserved(Box::new(e));
    let nodes: Api<k8s_openapi::api::core::v1::Node> =
        Api::new(client.clone(), None).map_err(unserved)?;
    let (listed, _) = nodes
        .list(&skiff_client::ListOptions::default())
        .await
        .map_err(unserved)?;
    let pod_cidr_of = |node: &k8s_openapi::api::core::v1::Node| {
        node.spec.as_ref().and_then(|s| s.pod_cidr.clone())
    };
    let held = listed
        .iter()
        .find(|n| n.metadata.name.as_deref() == Some(node_name))
        .and_then(pod_cidr_of);
    let others: Vec<String> = listed
        .iter()
        .filter(|n| n.metadata.name.as_deref() != Some(node_name))
        .filter_map(pod_cidr_of)
        .collect();
    skiff_net::node_pod_cidr(
        &settings.ranges,
        held.as_deref(),
        others.iter().map(String::as_str),
    )
    .map_err(|e| NodeAgentError::PodNetwork(e.to_string()))
}

/// Installs the guard routes, the bridge and masquerading, with pod addresses kept in
/// `pod-addresses.json` in the agent's data directory.
async fn start_pod_network(
    settings: &PodNetworkSettings,
    pod_cidr: (Ipv4Addr, u8),
    data_dir: &std::path::Path,
) -> Result<PodNetworkHandle, NodeAgentError> {
    let failed = |e: &dyn std::fmt::Display| NodeAgentError::PodNetwork(e.to_string());
    let net = ipnet::Ipv4Net::new(pod_cidr.0, pod_cidr.1).map_err(|e| failed(&e))?;
    let range = skiff_net::PodRange::new(net).map_err(|e| failed(&e))?;
    let host = skiff_net::HostConfig::new(
        &settings.bridge,
        settings.ranges,
        range,
        settings.netns_dir.clone(),
    )
    .map_err(|e| failed(&e))?;
    let network = skiff_net::NetlinkPodNetwork::new(host).map_err(|e| failed(&e))?;
    skiff_net::PodNetworkManager::start(network, data_dir.join("pod-addresses.json"))
        .await
        .map_err(|e| failed(&e))
}

/// Finds the machine's cgroup hierarchy and creates `ROOT/kubepods` with its QoS tiers.
fn start_cgroups(root: &str) -> Result<skiff_cgroups::PodCgroups, NodeAgentError> {
    let failed = |e: &dyn std::fmt::Display| NodeAgentError::Cgroups(e.to_string());
    let layout = skiff_cgroups::CgroupLayout::new(root).map_err(|e| failed(&e))?;
    if layout.root() == &skiff_cgroups::CgroupPath::root() {
        return Err(NodeAgentError::Cgroups(
            "the cgroup root must name a cgroup of Skiff's own, not the hierarchy's root"
                .to_string(),
        ));
    }
    let driver = skiff_cgroups::detect().map_err(|e| failed(&e))?;
    let cgroups = skiff_cgroups::PodCgroups::new(driver, layout);
    cgroups
        .ensure_node(None, std::iter::empty())
        .map_err(|e| failed(&e))?;
    Ok(cgroups)
}

/// Removes Skiff's cgroup tree (every pod's is gone by then; anything left is killed).
fn remove_cgroup_root(cgroups: &skiff_cgroups::PodCgroups) {
    let root = cgroups.layout().root().clone();
    let removed = cgroups
        .driver()
        .kill_all(&root, Duration::from_secs(5))
        .and_then(|()| cgroups.driver().remove(&root));
    if let Err(error) = removed {
        tracing::warn!(%error, "removing the pods' cgroups failed");
    }
}

/// Removes every pod's namespace and veth that is left, then the host's part: the bridge,
/// the guard routes and the nftables table.
async fn shut_down_pod_network(network: &PodNetworkHandle) {
    for uid in network.attached_pods().await.into_keys() {
        if let Err(error) = network.detach(&uid).await {
            tracing::warn!(pod_uid = %uid, %error, "removing a pod's network failed");
        }
    }
    if let Err(error) = network.shutdown().await {
        tracing::warn!(%error, "removing the pod network failed");
    }
}

/// The `kubernetes` Service's address, for containers' `KUBERNETES_SERVICE_*` variables.
async fn kubernetes_service(client: &Arc<dyn Client>) -> Option<(String, u16)> {
    let api: Api<Service> = Api::new(client.clone(), Some("default")).ok()?;
    let service = api.get_opt("kubernetes").await.ok()??;
    let spec = service.spec?;
    let ip = spec
        .cluster_ip
        .filter(|ip| !ip.is_empty() && ip != "None")?;
    let port = spec
        .ports
        .and_then(|p| p.first().map(|p| p.port))
        .and_then(|p| u16::try_from(p).ok())
        .unwrap_or(443);
    Some((ip, port))
}

struct PodManager {
    shared: Arc<worker::Shared>,
    pool: PodIpPool,
    workers: HashMap<String, worker::PodHandle>,
    /// `namespace/name` to UID of the workers' pods.
    uids_by_key: HashMap<String, String>,
    /// The workers' pod specs, which size the QoS tier cgroups.
    specs: HashMap<String, k8s_openapi::api::core::v1::PodSpec>,
    /// UIDs of bound pods that found the node's range full: tried again each time a worker
    /// ends and gives its address back (a burst of new pods can arrive while the deleted ones'
    /// workers are still cleaning up).
    waiting_for_address: std::collections::BTreeSet<String>,
}

/// The pods of `listed` (the informer's bound pods) whose UID is in `waiting`, to be tried
/// again now that an address is free; the others no longer wait (they were deleted).
fn pods_waiting_for_address(
    waiting: &std::collections::BTreeSet<String>,
    listed: &[Arc<serde_json::Value>],
) -> Vec<Arc<serde_json::Value>> {
    listed
        .iter()
        .filter(|pod| {
            pod.pointer("/metadata/uid")
                .and_then(|u| u.as_str())
                .is_some_and(|uid| waiting.contains(uid))
        })
        .cloned()
        .collect()
}

fn uid_of(pod: &Pod) -> String {
    pod.metadata.uid.clone().unwrap_or_default()
}

impl PodManager {
    /// Kills processes left by an earlier run and removes directories of pods no longer here.
    async fn clean_leftovers(&mut self, informer: &Informer) {
        let bound: std::collections::HashSet<String> = informer
            .list()
            .iter()
            .filter_map(|v| {
                v.pointer("/metadata/uid")
                    .and_then(|u| u.as_str())
                    .map(str::to_string)
            })
            .collect();
        if let Some(network) = &self.shared.pod_network {
            for uid in network.attached_pods().await.into_keys() {
                if !bound.contains(&uid) {
                    if let Err(error) = network.detach(&uid).await {
                        tracing::warn!(pod_uid = %uid, %error, "removing the network of a pod no longer here failed");
                    }
                }
            }
        }
        if let Some(cgroups) = &self.shared.cgroups {
            for pod in cgroups.existing_pods().unwrap_or_default() {
                if !bound.contains(&pod.uid) {
                    if let Err(error) = cgroups.remove_pod(&pod.path) {
                        tracing::warn!(pod_uid = %pod.uid, %error, "removing the cgroup of a pod no longer here failed");
                    }
                }
            }
        }
        remove_unowned_containers(&self.shared, |uid| !bound.contains(uid)).await;
        let pods_dir = self.shared.data_dir.join("pods");
        let Ok(entries) = std::fs::read_dir(&pods_dir) else {
            return;
        };
        let entries: Vec<_> = entries.filter_map(Result::ok).collect();
        // Groups started by a run killed before it could record them carry their pod's UID.
        let known: std::collections::HashSet<String> = entries
            .iter()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .chain(bound.iter().cloned())
            .collect();
        // Containers the node's monitor kept running across the restart are adopted by their
        // pods' workers, not killed.
        let spared = self
            .shared
            .oci
            .as_ref()
            .and_then(|runtime| runtime.keeper_pid())
            .map(process::descendant_groups)
            .unwrap_or_default();
        let unrecorded = process::kill_unrecorded_sparing(&known, &spared).await;
        if unrecorded > 0 {
            tracing::info!(
                groups = unrecorded,
                "killed unrecorded processes left by an earlier run"
            );
        }
        for entry in entries {
            let uid = entry.file_name().to_string_lossy().into_owned();
            let dir = entry.path();
            let killed = process::kill_leftovers_sparing(&dir.join("pgids"), &uid, &spared).await;
            if killed > 0 {
                tracing::info!(pod_uid = %uid, groups = killed, "killed processes left by an earlier run");
            }
            let _ = std::fs::remove_file(dir.join("pgids"));
            if !bound.contains(&uid) {
                if let Err(e) = std::fs::remove_dir_all(&dir) {
                    tracing::warn!(pod_uid = %uid, error = %e, "removing a stale pod directory failed");
                }
            }
        }
    }

    fn on_change(&mut self, change: Notification, done: &mpsc::UnboundedSender<String>) {
        let object = change.object().clone();
        let pod: Pod = match serde_json::from_value((*object).clone()) {
            Ok(pod) => pod,
            Err(error) => {
                tracing::warn!(%error, "skipping a pod that does not decode");
                return;
            }
        };
        let uid = uid_of(&pod);
        match change {
            Notification::Added(_) | Notification::Updated { .. } => {
                if let Some(handle) = self.workers.get(&uid) {
                    let _ = handle.updates.send(Arc::new(pod));
                    return;
                }
                let key = format!(
                    "{}/{}",
                    pod.metadata.namespace.as_deref().unwrap_or(""),
                    pod.metadata.name.as_deref().unwrap_or("")
                );
                let reported = pod
                    .status
                    .as_ref()
                    .and_then(|s| s.pod_ip.as_deref())
                    .and_then(|ip| ip.parse().ok());
                let ip = match reported {
                    Some(ip) if self.pool.reserve(&uid, ip) => Some(ip),
                    _ => self.pool.allocate(&uid),
                };
                let Some(ip) = ip else {
                    if self.waiting_for_address.insert(uid) {
                        tracing::warn!(pod = %key, "no pod address left in the node's range; waiting for one to be freed");
                    }
                    return;
                };
                self.waiting_for_address.remove(&uid);
                self.specs
                    .insert(uid.clone(), pod.spec.clone().unwrap_or_default());
                // The tiers grow before the pod's cgroup is made, as the kubelet orders it.
                self.resize_tiers();
                let handle =
                    worker::spawn_worker(self.shared.clone(), Arc::new(pod), ip, done.clone());
                self.uids_by_key.insert(key, uid.clone());
                self.workers.insert(uid, handle);
            }
            Notification::Deleted(_) => {
                self.waiting_for_address.remove(&uid);
                // Gone from the API (force-deleted, or confirmed by us): stop what is left. A
                // pod removed without a graceful mark was deleted with a grace period of 0.
                if let Some(handle) = self.workers.get(&uid) {
                    let grace = pod
                        .metadata
                        .deletion_grace_period_seconds
                        .map(deadline::seconds)
                        .unwrap_or(Duration::ZERO);
                    let _ = handle.stop.send(Some(grace));
                }
            }
        }
    }

    /// Sizes `kubepods` to the node's allocatable resources and the Burstable tier to what its
    /// pods request together (the kubelet's QoS container manager).
    fn resize_tiers(&self) {
        let Some(cgroups) = &self.shared.cgroups else {
            return;
        };
        let (milli_cpu, memory_bytes) = self.shared.allocatable;
        let allocatable = skiff_cgroups::resources::NodeAllocatable {
            milli_cpu,
            memory_bytes,
        };
        if let Err(error) = cgroups.ensure_node(Some(allocatable), self.specs.values()) {
            tracing::warn!(%error, "sizing the QoS tier cgroups failed");
        }
    }

    fn on_worker_done(
        &mut self,
        uid: &str,
        informer: &Informer,
        done: &mpsc::UnboundedSender<String>,
    ) {
        self.workers.remove(uid);
        if self.specs.remove(uid).is_some() {
            self.resize_tiers();
        }
        self.pool.release(uid);
        if !self.waiting_for_address.is_empty() {
            let listed = informer.list();
            let retry = pods_waiting_for_address(&self.waiting_for_address, &listed);
            // Those no longer bound here stop waiting; the others try again, and those that
            // still find no address keep waiting (without a second warning).
            self.waiting_for_address.retain(|waiting| {
                retry.iter().any(|pod| {
                    pod.pointer("/metadata/uid").and_then(|u| u.as_str()) == Some(waiting)
                })
            });
            for pod in retry {
                self.on_change(Notification::Added(pod), done);
            }
        }
        self.uids_by_key.retain(|_, u| u != uid);
        let still_bound = informer
            .list()
            .iter()
            .any(|v| v.pointer("/metadata/uid").and_then(|u| u.as_str()) == Some(uid));
        if !still_bound {
            let dir = sandbox::pod_dir(&self.shared.data_dir, uid);
            let _ = std::fs::remove_dir_all(dir);
        }
    }

    /// Ends every worker without touching its pod: the containers, sandbox and cgroups stay
    /// as they are, for the next run of the agent to adopt.
    fn abandon_all(&mut self) {
        for (_, handle) in self.workers.drain() {
            handle.task.abort();
        }
    }

    /// Stops every pod within `grace` and waits for their workers; anything still running
    /// after that is killed outright.
    async fn stop_all(&mut self, grace: Duration, done: &mut mpsc::UnboundedReceiver<String>) {
        for handle in self.workers.values() {
            let _ = handle.stop.send(Some(grace));
        }
        let deadline = deadline::after(
            tokio::time::Instant::now(),
            grace.saturating_add(Duration::from_secs(5)),
        );
        while !self.workers.is_empty() {
            tokio::select! {
                Some(uid) = done.recv() => {
                    self.workers.remove(&uid);
                    self.pool.release(&uid);
                }
                _ = tokio::time::sleep_until(deadline) => break,
            }
        }
        remove_unowned_containers(&self.shared, |_| true).await;
        for (uid, handle) in self.workers.drain() {
            handle.task.abort();
            if let Some(cgroups) = &self.shared.cgroups {
                if let Err(error) = worker::remove_pod_cgroup(cgroups, &uid) {
                    tracing::warn!(pod_uid = %uid, %error, "removing a pod's cgroup failed");
                }
            }
            if let Some(network) = &self.shared.pod_network {
                if let Err(error) = network.detach(&uid).await {
                    tracing::warn!(pod_uid = %uid, %error, "removing a pod's network failed");
                }
            }
            let pgids = sandbox::pod_dir(&self.shared.data_dir, &uid).join("pgids");
            process::kill_leftovers(&pgids, &uid).await;
        }
    }
}
