//! `skiff up`: the whole control plane in one process.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use skiff_apiserver::registry::Registry;
use skiff_apiserver::server::{self, ServerState};
use skiff_apiserver::system;
use skiff_apiserver::LocalClient;
use skiff_client::metrics::{CombinedMetrics, ResourceMetrics};
use skiff_client::Client;
use skiff_controllers::apiserver_endpoints::{self, ApiServerIdentity};
use skiff_controllers::hpa::{HpaConfig, ReplicaCalculator};
use skiff_controllers::leader_election::planner::ElectionTiming;
use skiff_controllers::leader_election::{
    self, candidate_identity, ElectedWork, Election, CONTROLLER_MANAGER_LEASE, SCHEDULER_LEASE,
};
use skiff_node::simulated::metrics::SimulatedMetrics;
use skiff_node::simulated::{self, SimulatedNodesConfig};
use skiff_store::{EtcdOptions, EtcdStore, EtcdTls, SqliteStore, Store};

use crate::node_host::{
    choose_container_runtime, host_node_name, pod_network_settings, NodeHost, NodeHostSettings,
    ServiceNetwork,
};
use crate::UpArgs;
use crate::{kubeconfig, pki};

/// The default data directory: `$XDG_DATA_HOME/skiff`, `~/.local/share/skiff`, else `./.skiff`.
pub(crate) fn default_data_dir() -> PathBuf {
    if let Some(xdg) = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(xdg).join("skiff");
    }
    if let Some(home) = std::env::var_os("HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(home).join(".local/share/skiff");
    }
    PathBuf::from(".skiff")
}

/// Raises the open-file limit to its hard maximum: every pod holds a few descriptors (log files,
/// process handles), and the common soft default of 1,024 would cap a node at a few hundred pods.
/// Go programs, Kubernetes' among them, do the same at start.
pub(crate) fn raise_open_file_limit() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        if soft < hard {
            if let Err(e) = setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
                tracing::warn!(error = %e, "cannot raise the open-file limit");
            }
        }
    }
}

/// Resolves when SIGINT or SIGTERM arrives.
pub(crate) async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

/// Makes the data directory reachable by its owner only: it holds the store with every
/// Secret, the CA key and the admin token.
pub(crate) fn make_private_directory(
    dir: &std::path::Path,
) -> Result<(), Box<dyn std::error::Error>> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let restrict = |path: &std::path::Path, mode: u32| {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
                .map_err(|e| format!("cannot restrict {} to its owner: {e}", path.display()))
        };
        restrict(dir, 0o700)?;
        // Credentials an older run wrote keep no looser mode than new ones get.
        for secret in ["token", "ca.key"] {
            let path = dir.join(secret);
            if path.exists() {
                restrict(&path, 0o600)?;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// Runs the control plane until a signal stops it.
/// Imports the archives dropped in `DATA_DIR/images/` that were not imported before, as k3s
/// does with its agent images directory; a file that cannot be imported is logged and
/// skipped, so one bad archive never stops the cluster.
pub(crate) async fn import_image_archives(data_dir: &Path) {
    let images = data_dir.join("images");
    let content = data_dir.join(crate::image_cmd::CONTENT_SUBDIR);
    let result = tokio::task::spawn_blocking(move || {
        let store = skiff_images::ContentStore::open(content)?;
        skiff_images::archive::import_directory(&store, &images)
    })
    .await;
    let report = match result {
        Ok(Ok(report)) => report,
        Ok(Err(error)) => {
            tracing::warn!(%error, "cannot import the images directory");
            return;
        }
        Err(error) => {
            tracing::warn!(%error, "importing the images directory was interrupted");
            return;
        }
    };
    for (path, records) in &report.imported {
        for record in records {
            tracing::info!(archive = %path.display(), image = %record.name, digest = %record.digest, "imported image archive");
        }
    }
    for (path, error) in &report.failed {
        tracing::warn!(archive = %path.display(), %error, "cannot import image archive; skipped");
    }
}

/// The SQLite file in the data directory, or etcd with `--datastore-endpoint`.
async fn open_store(args: &UpArgs, data_dir: &Path) -> Result<Arc<dyn Store>, String> {
    let Some(endpoints) = &args.datastore_endpoint else {
        let store = SqliteStore::open(&data_dir.join("state.db"))
            .map_err(|e| format!("cannot open the store in {}: {e}", data_dir.display()))?;
        return Ok(Arc::new(store));
    };
    let mut options =
        EtcdOptions::new(EtcdOptions::parse_endpoints(endpoints).map_err(|e| e.to_string())?);
    if let (Some(ca_file), Some(cert_file), Some(key_file)) = (
        &args.datastore_cafile,
        &args.datastore_certfile,
        &args.datastore_keyfile,
    ) {
        options.tls = Some(EtcdTls {
            ca_file: ca_file.clone(),
            cert_file: cert_file.clone(),
            key_file: key_file.clone(),
        });
    }
    let store = EtcdStore::connect(options)
        .await
        .map_err(|e| format!("cannot open the store at {endpoints}: {e}"))?;
    Ok(Arc::new(store))
}

/// The node lifecycle controller's settings from `skiff up`'s flags.
fn node_lifecycle_settings(
    args: &UpArgs,
) -> Result<skiff_controllers::node_lifecycle::controller::NodeLifecycleSettings, String> {
    use skiff_controllers::node_lifecycle::{controller::NodeLifecycleSettings, LifecycleConfig};
    let signed = |d: Duration, flag: &str| {
        jiff::SignedDuration::try_from(d).map_err(|_| format!("{flag} is too long"))
    };
    if !args.node_eviction_rate.is_finite() || args.node_eviction_rate < 0.0 {
        return Err("--node-eviction-rate must be a number of at least 0".to_string());
    }
    if args.node_monitor_period.is_zero() {
        return Err("--node-monitor-period must be positive".to_string());
    }
    Ok(NodeLifecycleSettings {
        config: LifecycleConfig {
            grace_period: signed(
                args.node_monitor_grace_period,
                "--node-monitor-grace-period",
            )?,
            startup_grace_period: signed(
                args.node_startup_grace_period,
                "--node-startup-grace-period",
            )?,
            eviction_rate: args.node_eviction_rate,
            ..LifecycleConfig::default()
        },
        monitor_period: args.node_monitor_period,
    })
}

pub async fn run(args: UpArgs) -> Result<(), Box<dyn std::error::Error>> {
    let started = Instant::now();
    let node_args = args.node_args();
    let runtime = choose_container_runtime(&node_args, !args.no_node);
    let pod_network = pod_network_settings(&node_args, runtime.runtime)?;
    let service_network = match &pod_network {
        Some(settings) => Some(ServiceNetwork::for_pod_network(&node_args, settings)?),
        None => None,
    };
    raise_open_file_limit();
    let data_dir = args.data_dir.clone().unwrap_or_else(default_data_dir);
    std::fs::create_dir_all(&data_dir)
        .map_err(|e| format!("cannot create data directory {}: {e}", data_dir.display()))?;
    let data_dir = data_dir.canonicalize()?;
    make_private_directory(&data_dir)?;
    import_image_archives(&data_dir).await;
    let store = open_store(&args, &data_dir).await?;
    if args.datastore_endpoint.is_some() {
        // Every server of the datastore serves with the same CA and accepts the same tokens.
        crate::bootstrap::share_credentials(&*store, &data_dir).await?;
    }
    let token = kubeconfig::load_or_create_token(&data_dir.join("token"))?;
    let registry = match &service_network {
        Some(network) => Registry::with_service_range(store.clone(), network.range),
        None => Registry::new(store.clone()),
    }
    .with_default_toleration_seconds(
        args.default_not_ready_toleration_seconds,
        args.default_unreachable_toleration_seconds,
    );
    // ServiceAccount tokens stay valid across restarts: the key is made once and kept.
    let token_signer = skiff_apiserver::service_account_tokens::TokenSigner::load_or_create(
        &data_dir.join("service-account.key"),
    )?;
    let token_signer = Arc::new(token_signer);
    registry.install_token_signer(token_signer.clone());
    // Other servers of a shared datastore write RBAC, webhook configurations, quotas and
    // admission policies too: the caches of those follow the store's watch.
    registry.follow_store_for_caches();
    system::ensure_builtin_namespaces(&registry).await?;
    skiff_apiserver::rbac_bootstrap::reconcile(&registry).await?;
    skiff_apiserver::policy_admission::ensure_system_priority_classes(&registry).await?;
    system::resume_namespace_finalizers(&registry).await?;
    skiff_apiserver::crd_controller::register_stored(&registry).await?;
    skiff_apiserver::crd_controller::spawn(registry.clone());
    let flow_control = Arc::new(skiff_apiserver::inflight::FlowControl::new(
        args.max_requests_inflight,
        args.max_mutating_requests_inflight,
    )?);
    skiff_apiserver::flow_control::ensure_at_start(&registry, &flow_control).await?;
    skiff_apiserver::flow_control::spawn(registry.clone(), flow_control.clone());

    let listener = std::net::TcpListener::bind(args.listen)
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    let address = listener.local_addr()?;
    // Valid for the `kubernetes` Service's address and names too, as kube-apiserver's is.
    let domain = args.node.cluster_domain.trim_end_matches('.');
    let service_names: Vec<String> = [
        "kubernetes".to_string(),
        "kubernetes.default".to_string(),
        "kubernetes.default.svc".to_string(),
        format!("kubernetes.default.svc.{domain}"),
    ]
    .into();
    // And for `--tls-san`'s names and addresses.
    let (mut san_ips, san_names) = pki::subject_alternative_names(&args.tls_san)?;
    san_ips.splice(
        0..0,
        [address.ip(), IpAddr::V4(registry.service_range().first())],
    );
    let mut names = service_names;
    names.extend(san_names);
    let tls = pki::serving_material(&data_dir, &san_ips, &names)?;
    system::ensure_kubernetes_service(&registry, address).await?;
    if let Some(network) = &service_network {
        // Before any user Service can take its address.
        crate::cluster_dns::ensure_dns_service(&registry, network.dns_ip).await?;
    }
    let server_url = format!("https://{address}");
    let kubeconfig_path = data_dir.join("kubeconfig");
    kubeconfig::write_private(
        &kubeconfig_path,
        kubeconfig::render(&server_url, &tls.ca_pem, &token).as_bytes(),
    )?;

    // The join token nodes use (`DATA/node-token`), backed by its bootstrap token Secret.
    let join_token = crate::join_token::load_or_create(&data_dir.join("node-token"), &tls.ca_pem)?;
    skiff_apiserver::bootstrap_tokens::ensure_token(
        &registry,
        &join_token,
        &[skiff_apiserver::bootstrap_tokens::NODE_TOKEN_GROUP],
    )
    .await?;

    let (stop, stopped) = tokio::sync::watch::channel(false);
    let until_stopped = move || {
        let mut stopped = stopped.clone();
        async move {
            let _ = stopped.wait_for(|s| *s).await;
        }
    };
    let client: Arc<dyn Client> = Arc::new(LocalClient::new(registry.clone()));
    // Every server lists itself in the `kubernetes` Service's endpoints before it serves, and
    // keeps its identity Lease renewed so the others keep it listed while it lives.
    let advertised = if address.ip().is_unspecified() {
        SocketAddr::new(IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), address.port())
    } else {
        address
    };
    let identity = ApiServerIdentity::new(&host_node_name(), advertised);
    apiserver_endpoints::reconcile(&client, &identity)
        .await
        .map_err(|e| format!("cannot list this server in the kubernetes endpoints: {e}"))?;
    let endpoint_reconciler = tokio::spawn(apiserver_endpoints::run(
        client.clone(),
        identity,
        until_stopped(),
    ));
    skiff_controllers::manager::ensure_controller_service_accounts(&client).await;
    skiff_controllers::namespace_defaults::ensure_all(&client, &tls.ca_pem)
        .await
        .map_err(|e| format!("cannot give the namespaces their defaults: {e}"))?;
    // On a shared datastore, the controllers and the scheduler run on the elected server only.
    let election = match &args.datastore_endpoint {
        Some(_) => {
            let timing = ElectionTiming {
                lease_duration: args.leader_elect_lease_duration,
                renew_deadline: args.leader_elect_renew_deadline,
                retry_period: args.leader_elect_retry_period,
            };
            timing.validate()?;
            Some((timing, host_node_name()))
        }
        None => None,
    };
    let elect = |lease_name: &str, event_component: &str| {
        election.as_ref().map(|(timing, host)| Election {
            lease_name: lease_name.to_string(),
            identity: candidate_identity(host),
            timing: *timing,
            event_component: event_component.to_string(),
        })
    };
    let scheduler_client = client.clone();
    let scheduler_work: ElectedWork = Box::new(move |stop| {
        let client = scheduler_client.clone();
        Box::pin(async move {
            if let Err(error) = skiff_scheduler::run(client, stop).await {
                tracing::warn!(%error, "the scheduler stopped with an error");
            }
        })
    });
    let scheduler = run_maybe_elected(
        client.clone(),
        elect(SCHEDULER_LEASE, "default-scheduler"),
        scheduler_work,
        until_stopped(),
    );
    let resolution = Duration::from_secs(args.metric_resolution);
    let mut metric_sources: Vec<Arc<dyn ResourceMetrics>> = Vec::new();
    let simulated_nodes = if args.simulated_nodes > 0 {
        let config = SimulatedNodesConfig::with_count(args.simulated_nodes);
        config.validate()?;
        metric_sources.push(SimulatedMetrics::start(
            client.clone(),
            config.nodes().into_iter().map(|n| n.name),
            resolution,
        )?);
        Some(tokio::spawn(simulated::run(
            client.clone(),
            config,
            until_stopped(),
        )))
    } else {
        None
    };

    let node_name = args.node.node_name.clone().unwrap_or_else(host_node_name);
    let node = NodeHost::start(
        client.clone(),
        NodeHostSettings {
            args: &node_args,
            data_dir: &data_dir,
            node_name: node_name.clone(),
            run_agent: !args.no_node,
            control_plane: true,
            primary_address: address.ip(),
            pod_network,
            service_network: service_network.as_ref(),
            metric_resolution: resolution,
            // `skiff up` stops its pods with itself: nothing of a one-machine cluster outlives it.
            leave_pods_running: false,
            runtime_fallback: runtime.fallback,
        },
        until_stopped(),
    )
    .await?;
    metric_sources.extend(node.metrics.clone());
    // Pods on this server's node are served in process; pods on other nodes through their
    // kubelet endpoints, with the server's kubelet client certificate.
    let kubelet_client = pki::client_material(
        &data_dir,
        crate::kubelet_server::APISERVER_KUBELET_CLIENT,
        None,
    )?;
    let kubelet_tls = crate::kubelet_proxy::kubelet_client_tls(
        tls.ca_pem.as_bytes(),
        kubelet_client.cert_pem.as_bytes(),
        kubelet_client.key_pem.as_bytes(),
    )?;
    let router = Arc::new(crate::kubelet_proxy::NodeRouter::new(
        client.clone(),
        (!args.no_node).then(|| node_name.clone()),
        node.logs.clone(),
        node.streams.clone(),
        kubelet_tls.clone(),
    ));
    let logs: Option<Arc<dyn skiff_client::logs::PodLogs>> = Some(router.clone());
    let streams: Option<Arc<dyn skiff_client::streams::PodStreams>> = Some(router);

    // Every measured pod and node, real and simulated; the autoscaler reads the same source.
    // With nothing measured in this process, `metrics.k8s.io` is not advertised, as on a
    // cluster without metrics-server; nodes measured elsewhere (agents) are read from their
    // kubelet endpoints beside the local sources.
    let measured = !metric_sources.is_empty();
    let mut measured_here: std::collections::HashSet<String> =
        SimulatedNodesConfig::with_count(args.simulated_nodes)
            .nodes()
            .into_iter()
            .map(|n| n.name)
            .collect();
    if !args.no_node {
        measured_here.insert(node_name.clone());
    }
    metric_sources.push(Arc::new(crate::kubelet_metrics::KubeletMetrics::new(
        client.clone(),
        kubelet_tls,
        measured_here,
        resolution,
    )));
    let metrics: Arc<dyn ResourceMetrics> = Arc::new(CombinedMetrics(metric_sources));
    // `metrics.k8s.io` is served here, not by an aggregated server, so its APIService is local.
    let extra_api_services = if measured {
        vec![(
            skiff_apiserver::metrics_api::GROUP,
            skiff_apiserver::metrics_api::VERSION,
        )]
    } else {
        Vec::new()
    };
    // Aggregated servers trust requests that carry the front-proxy client certificate.
    let front_proxy = pki::front_proxy_material(&data_dir)?;
    registry
        .aggregator()
        .install_client(skiff_apiserver::aggregator::FrontProxyClient {
            cert_pem: front_proxy.cert_pem,
            key_pem: front_proxy.key_pem,
        });
    skiff_apiserver::aggregator::publish_authentication(
        &registry,
        &tls.ca_pem,
        &front_proxy.ca_pem,
    )
    .await?;
    skiff_apiserver::api_services::ensure_at_start(&registry, &extra_api_services).await?;
    skiff_apiserver::api_services::spawn(registry.clone(), extra_api_services);
    let state = Arc::new(ServerState {
        registry,
        tokens: vec![token],
        advertise_address: address.to_string(),
        logs,
        streams,
        metrics: measured.then(|| metrics.clone()),
        inflight: flow_control,
    });
    let controller_manager = ControllerManager {
        client: client.clone(),
        ca_pem: tls.ca_pem.clone(),
        signer: Arc::new(LegacySigner(token_signer)),
        metrics: metrics.clone(),
        hpa: HpaConfig {
            sync_period: args.horizontal_pod_autoscaler_sync_period,
            downscale_stabilization: args.horizontal_pod_autoscaler_downscale_stabilization,
            calculator: ReplicaCalculator {
                tolerance: args.horizontal_pod_autoscaler_tolerance,
                cpu_initialization_period: args.horizontal_pod_autoscaler_cpu_initialization_period,
                delay_of_initial_readiness_status: args
                    .horizontal_pod_autoscaler_initial_readiness_delay,
            },
        },
        node_lifecycle: node_lifecycle_settings(&args)?,
        storage_root: data_dir.join("storage"),
        reviewer: Arc::new(skiff_controllers::certificates::RegistryAccessReviewer(
            state.registry.clone(),
        )),
        issuer: Arc::new(
            crate::pki::ClusterIssuer::load(&data_dir)
                .map_err(|e| format!("cannot load the cluster CA: {e}"))?,
        ),
    };
    let controllers = run_maybe_elected(
        client.clone(),
        elect(CONTROLLER_MANAGER_LEASE, "kube-controller-manager"),
        controller_manager.into_work(),
        until_stopped(),
    );
    tokio::spawn(system::compaction_loop(
        store.clone(),
        Duration::from_secs(args.compaction_interval),
    ));
    tokio::spawn(crate::memory::release_loop(crate::memory::RELEASE_INTERVAL));
    tracing::info!(%address, data_dir = %data_dir.display(), elapsed_ms = started.elapsed().as_millis() as u64, "skiff is serving");
    println!("export KUBECONFIG={}", kubeconfig_path.display());
    server::serve_tls_with_client_ca(
        listener,
        state,
        tls.cert_pem.into_bytes(),
        tls.key_pem.into_bytes(),
        tls.ca_pem.into_bytes(),
        async move {
            shutdown_signal().await;
            let _ = stop.send(true);
        },
    )
    .await?;
    // The node stops its pods first, then its proxy and cluster DNS.
    node.finish().await;
    if let Err(e) = endpoint_reconciler.await {
        tracing::warn!(error = %e, "the kubernetes endpoint reconciler task failed");
    }
    if let Err(e) = controllers.await {
        tracing::warn!(error = %e, "the controller manager task failed");
    }
    if let Err(e) = scheduler.await {
        tracing::warn!(error = %e, "the scheduler task failed");
    }
    if let Some(task) = simulated_nodes {
        match task.await {
            Ok(Err(e)) => tracing::warn!(error = %e, "simulated nodes stopped with an error"),
            Err(e) => tracing::warn!(error = %e, "simulated nodes task failed"),
            Ok(Ok(())) => {}
        }
    }
    tracing::info!("skiff stopped");
    Ok(())
}

/// Runs `work` until `shutdown`: directly on a server of its own, or whenever `election` is
/// won on a shared datastore.
fn run_maybe_elected(
    client: Arc<dyn Client>,
    election: Option<Election>,
    work: ElectedWork,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> tokio::task::JoinHandle<()> {
    match election {
        Some(election) => tokio::spawn(leader_election::run_elected(
            client, election, work, shutdown,
        )),
        None => tokio::spawn(work(Box::pin(shutdown))),
    }
}

/// What kube-controller-manager runs in Skiff: the controllers of the manager, the namespace
/// defaults, the legacy token Secrets, the autoscaler and the node lifecycle and disruption
/// controllers, started and stopped together.
struct ControllerManager {
    client: Arc<dyn Client>,
    ca_pem: String,
    signer: Arc<LegacySigner>,
    metrics: Arc<dyn ResourceMetrics>,
    hpa: HpaConfig,
    node_lifecycle: skiff_controllers::node_lifecycle::controller::NodeLifecycleSettings,
    /// Where the local-path provisioner keeps volumes: `DATA/storage`.
    storage_root: PathBuf,
    /// The authorizer the certificate approver asks.
    reviewer: Arc<dyn skiff_controllers::certificates::AccessReviewer>,
    /// The cluster CA signing approved client certificate requests.
    issuer: Arc<dyn skiff_controllers::certificates::CertificateIssuer>,
}

impl ControllerManager {
    fn into_work(self) -> ElectedWork {
        let this = Arc::new(self);
        Box::new(move |stop| {
            let this = this.clone();
            Box::pin(async move {
                let (stop_all, stopped) = tokio::sync::watch::channel(false);
                let until_stopped = move || {
                    let mut stopped = stopped.clone();
                    async move {
                        let _ = stopped.wait_for(|s| *s).await;
                    }
                };
                let manager = skiff_controllers::manager::run(this.client.clone(), until_stopped());
                let namespace_defaults = skiff_controllers::manager::run_namespace_defaults(
                    this.client.clone(),
                    this.ca_pem.clone(),
                    until_stopped(),
                );
                let token_secrets = skiff_controllers::manager::run_token_secrets(
                    this.client.clone(),
                    this.signer.clone(),
                    this.ca_pem.clone(),
                    until_stopped(),
                );
                let autoscaler = skiff_controllers::hpa::run(
                    this.client.clone(),
                    this.metrics.clone(),
                    this.hpa,
                    until_stopped(),
                );
                let node_controllers = skiff_controllers::manager::run_node_controllers(
                    this.client.clone(),
                    this.node_lifecycle.clone(),
                    until_stopped(),
                );
                let volume_binder = skiff_controllers::volume::controller::run(
                    this.client.clone(),
                    skiff_controllers::manager::controller_client(
                        &this.client,
                        skiff_controllers::manager::identities::PERSISTENT_VOLUME_BINDER,
                    ),
                    this.storage_root.clone(),
                    until_stopped(),
                );
                let certificates = skiff_controllers::manager::run_certificates(
                    this.client.clone(),
                    this.reviewer.clone(),
                    this.issuer.clone(),
                    until_stopped(),
                );
                let all = async {
                    tokio::join!(
                        manager,
                        namespace_defaults,
                        token_secrets,
                        autoscaler,
                        node_controllers,
                        volume_binder,
                        certificates
                    );
                };
                tokio::pin!(all);
                tokio::select! {
                    _ = &mut all => {}
                    _ = stop => {
                        let _ = stop_all.send(true);
                        all.await;
                    }
                }
            })
        })
    }
}

/// The API server's key signing the tokens of legacy ServiceAccount token Secrets.
struct LegacySigner(Arc<skiff_apiserver::service_account_tokens::TokenSigner>);

impl skiff_controllers::token_secrets::LegacyTokenSigner for LegacySigner {
    fn sign(&self, namespace: &str, account: &str, account_uid: &str, secret: &str) -> String {
        self.0
            .sign_legacy(&skiff_apiserver::service_account_tokens::LegacyClaims::new(
                namespace,
                account,
                account_uid,
                secret,
            ))
    }
}
