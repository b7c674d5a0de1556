//! The running proxy: informers in, listeners out.

use std::collections::{BTreeMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use skiff_api::resources::{self, ResourceInfo};
use skiff_client::Client;
use skiff_runtime::informer::{key_for, Notification};
use skiff_runtime::{Informer, InformerConfig};
use tokio::sync::{mpsc, watch};
use tokio::task::AbortHandle;
use tokio::time::Instant;

use crate::forward::{Connecting, ForwardSettings, Frontend};
use crate::kernel::{forwardable, removal_script, KernelForwarding, RulePlan};
use crate::table::{PodState, Route, RoutingTable};

/// The first wait before binding an address that failed again; it doubles up to
/// [`MAX_BIND_RETRY`]. Another process may hold the port for a while, or never.
const FIRST_BIND_RETRY: Duration = Duration::from_secs(1);
const MAX_BIND_RETRY: Duration = Duration::from_secs(30);

/// Why the proxy could not start.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// A resource the proxy watches is not served by this API.
    #[error("resource {0} is not served")]
    UnknownResource(&'static str),
}

/// Makes cluster IPs addresses of this host, so the proxy can listen on them: with pods in
/// network namespaces of their own, cluster IPs are not loopback addresses and must be put on
/// an interface (kube-proxy's IPVS mode does the same with `kube-ipvs0`).
#[async_trait::async_trait]
pub trait ClusterIpHost: Send + Sync {
    /// Makes `ip` local before the proxy listens on it; already local is not an error.
    async fn add(&self, ip: IpAddr) -> Result<(), String>;
    /// Gives `ip` up once no frontend listens on it; already gone is not an error.
    async fn remove(&self, ip: IpAddr) -> Result<(), String>;
}

/// Where the proxy listens and how it forwards.
#[derive(Clone)]
pub struct ProxyConfig {
    /// The node's addresses: node ports listen on each of them, and nowhere else.
    pub node_addresses: Vec<IpAddr>,
    /// The longest one connection attempt to an endpoint may take before the next is tried.
    pub connect_timeout: Duration,
    /// How long a client's connection may wait, across retries and endpoint changes, for an
    /// endpoint that accepts it before it is closed.
    pub retry_window: Duration,
    /// How long after the last connection forwarded to a pod [`Proxy::wait_unrouted`] still
    /// waits: a connection the server has not accepted and read yet would be reset by a server
    /// that stops listening on SIGTERM.
    pub drain_quiet_period: Duration,
    /// Puts cluster IPs on the host before their frontends listen, and takes them off after;
    /// none when they are loopback addresses, which need nothing.
    pub cluster_ip_host: Option<Arc<dyn ClusterIpHost>>,
    /// The node this proxy runs on, whose endpoints `Local` traffic policies keep to; none
    /// ignores those policies.
    pub node_name: Option<String>,
    /// Frontends something else in this process serves (the cluster DNS answers on its
    /// Service's address itself): the proxy neither listens there nor manages their IPs.
    pub served_elsewhere: HashSet<SocketAddr>,
    /// Cluster IPs and node ports the kernel forwards (nftables DNAT) instead of the proxy
    /// listening; none keeps every frontend in user space. Frontends the kernel cannot forward
    /// ([`crate::kernel::forwardable`]) stay in user space either way.
    pub kernel: Option<KernelForwarding>,
}

impl std::fmt::Debug for ProxyConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProxyConfig")
            .field("node_addresses", &self.node_addresses)
            .field("connect_timeout", &self.connect_timeout)
            .field("retry_window", &self.retry_window)
            .field("drain_quiet_period", &self.drain_quiet_period)
            .field("cluster_ip_host", &self.cluster_ip_host.is_some())
            .field("node_name", &self.node_name)
            .field("served_elsewhere", &self.served_elsewhere)
            .field("kernel", &self.kernel)
            .finish()
    }
}

impl ProxyConfig {
    /// Node ports on `node_addresses`, one-second connection attempts and a three-second
    /// retry window: long enough to ride out a rollout's endpoint churn, short enough that a
    /// Service without endpoints fails visibly.
    pub fn new(node_addresses: Vec<IpAddr>) -> ProxyConfig {
        ProxyConfig {
            node_addresses,
            connect_timeout: Duration::from_secs(1),
            retry_window: Duration::from_secs(3),
            drain_quiet_period: Duration::from_millis(250),
            cluster_ip_host: None,
            node_name: None,
            served_elsewhere: HashSet::new(),
            kernel: None,
        }
    }
}

/// What the proxy does right now: published after every change it applies.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProxyState {
    /// Whether the first full view of Services, EndpointSlices and pods has been applied.
    pub synced: bool,
    /// The frontends that listen, with the route each one follows.
    pub routes: BTreeMap<SocketAddr, Route>,
    /// Frontends that could not listen, with the reason; they are retried with a backoff.
    pub unbound: BTreeMap<SocketAddr, String>,
}

impl ProxyState {
    /// Whether some frontend sends new connections to `ip`.
    pub fn routes_to(&self, ip: IpAddr) -> bool {
        self.routes
            .values()
            .any(|r| r.backends.iter().any(|b| b.ip() == ip))
    }
}

/// The service proxy. Cloning is cheap; everything stops when the last clone is dropped
/// (connections already forwarded finish on their own).
#[derive(Clone)]
pub struct Proxy {
    running: Arc<Running>,
}

struct Running {
    state: watch::Receiver<Arc<ProxyState>>,
    connecting: Arc<Connecting>,
    quiet_period: Duration,
    task: AbortHandle,
    kernel: Option<Arc<KernelTable>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.task.abort();
        if let Some(kernel) = &self.kernel {
            kernel.remove();
        }
    }
}

/// The proxy's nftables table, written by the reconcile loop until the proxy stops; the lock
/// keeps a write that was under way from landing after the removal.
struct KernelTable {
    forwarding: KernelForwarding,
    stopped: std::sync::Mutex<bool>,
}

impl KernelTable {
    /// Applies `script` unless the proxy stopped; `Ok(false)` when it had.
    fn write(&self, script: &str) -> Result<bool, String> {
        let stopped = self
            .stopped
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if *stopped {
            return Ok(false);
        }
        self.forwarding.writer.apply(script).map(|()| true)
    }

    /// Removes the table for good: at stop, and at start for what a crashed run left.
    fn remove(&self) {
        let mut stopped = self
            .stopped
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *stopped = true;
        if let Err(error) = self
            .forwarding
            .writer
            .apply(&removal_script(&self.forwarding.table))
        {
            tracing::warn!(%error, table = %self.forwarding.table, "cannot remove the proxy's nftables table");
        }
    }
}

/// How often a drain looks at the connection tracking table.
const CONNTRACK_POLL: Duration = Duration::from_millis(25);

fn resource(
    group: &str,
    version: &str,
    plural: &'static str,
) -> Result<&'static ResourceInfo, ProxyError> {
    resources::find(group, version, plural).ok_or(ProxyError::UnknownResource(plural))
}

impl Proxy {
    /// Starts watching Services, EndpointSlices and pods through `client` and serving their
    /// frontends, on the current tokio runtime.
    pub fn start(client: Arc<dyn Client>, config: ProxyConfig) -> Result<Proxy, ProxyError> {
        let watched = Watched {
            services: Informer::start(
                client.clone(),
                InformerConfig::new(resource("", "v1", "services")?),
            ),
            slices: Informer::start(
                client.clone(),
                InformerConfig::new(resource("discovery.k8s.io", "v1", "endpointslices")?),
            ),
            pods: Informer::start(client, InformerConfig::new(resource("", "v1", "pods")?)),
        };
        let quiet_period = config.drain_quiet_period;
        let (state_tx, state) = watch::channel(Arc::new(ProxyState::default()));
        let connecting = Arc::new(Connecting::default());
        let kernel = config.kernel.clone().map(|forwarding| {
            // Whatever a run that crashed left goes first.
            if let Err(error) = forwarding
                .writer
                .apply(&removal_script(&forwarding.table))
            {
                tracing::warn!(%error, table = %forwarding.table, "cannot clear the proxy's nftables table");
            }
            Arc::new(KernelTable {
                forwarding,
                stopped: std::sync::Mutex::new(false),
            })
        });
        let task = tokio::spawn(reconcile(
            watched,
            config,
            state_tx,
            connecting.clone(),
            kernel.clone(),
        ));
        Ok(Proxy {
            running: Arc::new(Running {
                state,
                connecting,
                quiet_period,
                task: task.abort_handle(),
                kernel,
            }),
        })
    }

    /// Stops routing: the reconcile loop ends and the kernel's rules are removed, though other
    /// clones may still hold the proxy. Connections already forwarded finish on their own.
    pub async fn stop(&self) {
        self.running.task.abort();
        if let Some(kernel) = self.running.kernel.clone() {
            let _ = tokio::task::spawn_blocking(move || kernel.remove()).await;
        }
    }

    /// What the proxy does right now.
    pub fn state(&self) -> Arc<ProxyState> {
        self.running.state.borrow().clone()
    }

    /// Changes to [`Proxy::state`], for callers that wait for a route to appear.
    pub fn subscribe(&self) -> watch::Receiver<Arc<ProxyState>> {
        self.running.state.clone()
    }

    /// Waits until the first full view of the cluster is applied.
    pub async fn wait_synced(&self) {
        let mut state = self.subscribe();
        // The sender lives as long as the reconcile task, which `self` keeps alive.
        let _ = state.wait_for(|s| s.synced).await;
    }

    /// Resolves once no frontend sends new connections to `ip`, no connection attempt to it is
    /// under way and the last one forwarded to it is [`ProxyConfig::drain_quiet_period`] old,
    /// or at `deadline`; returns whether `ip` left rotation in time.
    ///
    /// A pod's IP leaves rotation as soon as the proxy sees the pod's deletion timestamp, so
    /// a node agent calls this after marking a pod deleted and before signalling it.
    pub async fn wait_unrouted(&self, ip: IpAddr, deadline: Instant) -> bool {
        let mut state = self.subscribe();
        let connecting = &self.running.connecting;
        loop {
            let settled = connecting.settled().notified();
            tokio::pin!(settled);
            settled.as_mut().enable();
            let routed = state.borrow_and_update().routes_to(ip);
            if !routed && connecting.count(ip) == 0 {
                // Out of rotation: give the latest connection its moment to be accepted.
                let quiet_at = connecting
                    .last_connected(ip)
                    .map(|at| at + self.running.quiet_period);
                if let Some(quiet_at) = quiet_at.filter(|at| *at > Instant::now()) {
                    tokio::time::sleep_until(quiet_at.min(deadline)).await;
                }
                self.wait_forwarded_closed(ip, deadline).await;
                return true;
            }
            tokio::select! {
                changed = state.changed() => {
                    if changed.is_err() {
                        // The proxy stopped: nothing routes anywhere any more.
                        return true;
                    }
                }
                _ = &mut settled => {}
                _ = tokio::time::sleep_until(deadline) => return false,
            }
        }
    }
}

impl Proxy {
    /// With kernel forwarding, waits until the connections the kernel forwarded to `ip` that
    /// may still carry a request have ended, or until the drain limit or `deadline`.
    async fn wait_forwarded_closed(&self, ip: IpAddr, deadline: Instant) {
        let Some(kernel) = &self.running.kernel else {
            return;
        };
        let Some(tracker) = kernel.forwarding.tracker.clone() else {
            return;
        };
        let until = deadline.min(Instant::now() + kernel.forwarding.connection_drain_limit);
        loop {
            let reading = tracker.clone();
            let open = tokio::task::spawn_blocking(move || reading.open_forwarded_to(ip)).await;
            match open {
                Ok(Ok(0)) => return,
                Ok(Ok(open)) => {
                    if Instant::now() >= until {
                        tracing::debug!(%ip, open, "connections to the pod still open at the end of its drain");
                        return;
                    }
                }
                Ok(Err(error)) => {
                    tracing::warn!(%ip, %error, "cannot read the connection tracking table");
                    return;
                }
                Err(_) => return,
            }
            tokio::time::sleep_until((Instant::now() + CONNTRACK_POLL).min(until)).await;
        }
    }
}

/// The three informers the routing table is built from.
struct Watched {
    services: Informer,
    slices: Informer,
    pods: Informer,
}

/// A frontend that could not listen, and when to try again.
struct Unbound {
    error: String,
    retry_at: Instant,
    backoff: Duration,
}

/// Pods whose deletion the proxy saw, by `namespace/name`, until no slice names them.
#[derive(Default)]
struct DeletedPods(HashSet<String>);

impl DeletedPods {
    /// Notes what a pod notification means for routing; true when the table must be rebuilt.
    fn note(&mut self, change: &Notification) -> bool {
        let Some(key) = change.key() else {
            return false;
        };
        match change {
            Notification::Added(pod) => {
                let recreated = self.0.remove(&key);
                recreated || is_deleting(pod)
            }
            Notification::Updated { old, new } => is_deleting(new) != is_deleting(old),
            Notification::Deleted(_) => {
                self.0.insert(key);
                true
            }
        }
    }

    /// Forgets pods no slice refers to any more.
    fn prune(&mut self, slices: &[Arc<Value>]) {
        if self.0.is_empty() {
            return;
        }
        let mut referenced = HashSet::new();
        for slice in slices {
            let namespace = slice
                .pointer("/metadata/namespace")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let endpoints = slice.get("endpoints").and_then(Value::as_array);
            for endpoint in endpoints.into_iter().flatten() {
                if let Some(name) = endpoint.pointer("/targetRef/name").and_then(Value::as_str) {
                    let ns = endpoint
                        .pointer("/targetRef/namespace")
                        .and_then(Value::as_str)
                        .unwrap_or(namespace);
                    referenced.insert(key_for(Some(ns), name));
                }
            }
        }
        self.0.retain(|k| referenced.contains(k));
    }
}

fn is_deleting(pod: &Value) -> bool {
    pod.pointer("/metadata/deletionTimestamp")
        .is_some_and(|t| !t.is_null())
}

/// How long the proxy waits before rebuilding its table again after a rebuild panicked,
/// unless a change comes first.
const TABLE_PANIC_PAUSE: Duration = Duration::from_secs(1);

async fn reconcile(
    watched: Watched,
    config: ProxyConfig,
    state: watch::Sender<Arc<ProxyState>>,
    connecting: Arc<Connecting>,
    kernel: Option<Arc<KernelTable>>,
) {
    let settings = ForwardSettings {
        connect_timeout: config.connect_timeout,
        retry_window: config.retry_window,
    };
    let mut service_changes = watched.services.subscribe();
    let mut slice_changes = watched.slices.subscribe();
    let mut pod_changes = watched.pods.subscribe();
    watched.services.wait_synced().await;
    watched.slices.wait_synced().await;
    watched.pods.wait_synced().await;

    let mut frontends: BTreeMap<SocketAddr, Frontend> = BTreeMap::new();
    let mut unbound: BTreeMap<SocketAddr, Unbound> = BTreeMap::new();
    let mut host_ips = HostIps {
        host: config.cluster_ip_host.clone(),
        added: HashSet::new(),
    };
    let mut deleted = DeletedPods::default();
    let mut rules = KernelRules::default();
    let mut dirty = true;
    loop {
        // Coalesce whatever else is already queued into one rebuild.
        dirty |= drain(&mut service_changes, |_| true);
        dirty |= drain(&mut slice_changes, |_| true);
        dirty |= drain(&mut pod_changes, |c| deleted.note(c));
        let retry_due = unbound.values().any(|u| u.retry_at <= Instant::now())
            || rules.retry_at.is_some_and(|at| at <= Instant::now());
        if dirty || retry_due {
            let slices = watched.slices.list();
            deleted.prune(&slices);
            let pod_state =
                |namespace: &str, name: &str| match watched.pods.get(Some(namespace), name) {
                    Some(pod) if is_deleting(&pod) => PodState::Terminating,
                    Some(_) => PodState::Live,
                    None if deleted.0.contains(&key_for(Some(namespace), name)) => PodState::Gone,
                    None => PodState::Live,
                };
            let built = skiff_runtime::panics::catch_sync(|| {
                RoutingTable::build_for_node(
                    &watched.services.list(),
                    &slices,
                    pod_state,
                    &config.node_addresses,
                    config.node_name.as_deref(),
                )
            });
            let table = match built {
                Ok(mut table) => {
                    table
                        .routes
                        .retain(|address, _| !config.served_elsewhere.contains(address));
                    table
                }
                Err(panic) => {
                    // Keep serving the routes already bound; the next change, or a pause,
                    // brings the next attempt.
                    tracing::error!("building the routing table panicked: {panic}");
                    let pause = Instant::now() + TABLE_PANIC_PAUSE;
                    for u in unbound.values_mut() {
                        u.retry_at = u.retry_at.max(pause);
                    }
                    dirty = false;
                    continue;
                }
            };
            let cluster_ips: HashSet<IpAddr> = table
                .routes
                .keys()
                .map(SocketAddr::ip)
                .filter(|ip| !config.node_addresses.contains(ip))
                .collect();
            host_ips.add_missing(&cluster_ips).await;
            let mut table = table;
            if let Some(kernel) = &kernel {
                let in_kernel: BTreeMap<SocketAddr, Route> = table
                    .routes
                    .iter()
                    .filter(|(address, route)| forwardable(address, route))
                    .map(|(address, route)| (*address, route.clone()))
                    .collect();
                table
                    .routes
                    .retain(|address, _| !in_kernel.contains_key(address));
                rules.apply(kernel, in_kernel).await;
            }
            apply(table, &mut frontends, &mut unbound, &connecting, settings).await;
            host_ips.remove_unused(&cluster_ips).await;
            // Published only once the kernel holds the rules: a drain that sees its pod gone
            // from these routes knows no new connection is translated to it.
            let mut routes: BTreeMap<SocketAddr, Route> = frontends
                .iter()
                .map(|(a, f)| (*a, (*f.route()).clone()))
                .collect();
            routes.extend(rules.applied.clone());
            state.send_replace(Arc::new(ProxyState {
                synced: true,
                routes,
                unbound: unbound.iter().map(|(a, u)| (*a, u.error.clone())).collect(),
            }));
            dirty = false;
        }
        let next_retry = unbound
            .values()
            .map(|u| u.retry_at)
            .chain(rules.retry_at)
            .min();
        tokio::select! {
            change = service_changes.recv() => match change {
                Some(_) => dirty = true,
                None => return,
            },
            change = slice_changes.recv() => match change {
                Some(_) => dirty = true,
                None => return,
            },
            change = pod_changes.recv() => match change {
                Some(change) => dirty |= deleted.note(&change),
                None => return,
            },
            _ = sleep_until_some(next_retry) => {}
        }
    }
}

/// How long the proxy waits before writing its rules again after `nft` failed.
const RULES_RETRY: Duration = Duration::from_secs(1);

/// The rules the kernel holds, and when to try again after a write failed.
#[derive(Default)]
struct KernelRules {
    /// The routes the kernel forwards now.
    applied: BTreeMap<SocketAddr, Route>,
    /// The plan the kernel holds, none before the first write.
    plan: Option<RulePlan>,
    retry_at: Option<Instant>,
}

impl KernelRules {
    /// Makes the kernel forward `wanted`; on failure the previous rules stay (the transaction
    /// applies whole or not at all) and the write is retried.
    async fn apply(&mut self, kernel: &Arc<KernelTable>, wanted: BTreeMap<SocketAddr, Route>) {
        if self.plan.is_some() && self.applied == wanted && self.retry_at.is_none() {
            return;
        }
        let plan = RulePlan::of(&wanted, &kernel.forwarding.pod_ranges);
        let script = plan.script(&kernel.forwarding.table, self.plan.as_ref());
        let writing = kernel.clone();
        let written = tokio::task::spawn_blocking(move || writing.write(&script))
            .await
            .unwrap_or_else(|e| Err(format!("the rule write failed: {e}")));
        match written {
            Ok(_) => {
                self.applied = wanted;
                self.plan = Some(plan);
                self.retry_at = None;
            }
            Err(error) => {
                tracing::warn!(%error, "cannot write the service rules");
                self.retry_at = Some(Instant::now() + RULES_RETRY);
            }
        }
    }
}

/// The cluster IPs the proxy put on the host, and what puts them there.
struct HostIps {
    host: Option<Arc<dyn ClusterIpHost>>,
    added: HashSet<IpAddr>,
}

impl HostIps {
    /// Puts on the host each of `wanted` it does not hold yet. One that fails stays out of
    /// `added`, so its frontend fails to bind and both are tried again with the bind back-off.
    async fn add_missing(&mut self, wanted: &HashSet<IpAddr>) {
        let Some(host) = &self.host else {
            return;
        };
        for ip in wanted {
            if self.added.contains(ip) {
                continue;
            }
            match host.add(*ip).await {
                Ok(()) => {
                    self.added.insert(*ip);
                }
                Err(error) => tracing::warn!(%ip, %error, "cannot put a cluster IP on the host"),
            }
        }
    }

    /// Takes off the host every address it holds that is not in `wanted` (called after the
    /// frontends on them were dropped).
    async fn remove_unused(&mut self, wanted: &HashSet<IpAddr>) {
        let Some(host) = &self.host else {
            return;
        };
        let unused: Vec<IpAddr> = self.added.difference(wanted).copied().collect();
        for ip in unused {
            match host.remove(ip).await {
                Ok(()) => {
                    self.added.remove(&ip);
                }
                Err(error) => {
                    tracing::warn!(%ip, %error, "cannot take a cluster IP off the host")
                }
            }
        }
    }
}

/// Takes every queued notification; true if any of them matters.
fn drain(
    changes: &mut mpsc::UnboundedReceiver<Notification>,
    mut matters: impl FnMut(&Notification) -> bool,
) -> bool {
    let mut any = false;
    while let Ok(change) = changes.try_recv() {
        any |= matters(&change);
    }
    any
}

async fn sleep_until_some(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Makes the listening frontends match `table`.
async fn apply(
    table: RoutingTable,
    frontends: &mut BTreeMap<SocketAddr, Frontend>,
    unbound: &mut BTreeMap<SocketAddr, Unbound>,
    connecting: &Arc<Connecting>,
    settings: ForwardSettings,
) {
    frontends.retain(|address, _| table.routes.contains_key(address));
    unbound.retain(|address, _| table.routes.contains_key(address));
    let now = Instant::now();
    for (address, route) in table.routes {
        if let Some(frontend) = frontends.get(&address) {
            frontend.set_route(route);
            continue;
        }
        if unbound.get(&address).is_some_and(|u| u.retry_at > now) {
            continue;
        }
        let service = route.service.clone();
        match Frontend::bind(address, route, connecting.clone(), settings).await {
            Ok(frontend) => {
                tracing::debug!(%address, %service, "proxy listening");
                unbound.remove(&address);
                frontends.insert(address, frontend);
            }
            Err(e) => {
                let error = e.to_string();
                let backoff = unbound
                    .get(&address)
                    .map_or(FIRST_BIND_RETRY, |u| (u.backoff * 2).min(MAX_BIND_RETRY));
                if unbound.get(&address).is_none_or(|u| u.error != error) {
                    tracing::warn!(%address, %service, %error, "proxy cannot listen");
                }
                unbound.insert(
                    address,
                    Unbound {
                        error,
                        retry_at: now + backoff,
                        backoff,
                    },
                );
            }
        }
    }
}
