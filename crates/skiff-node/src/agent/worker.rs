//! The asynchronous shell around one pod's [`PodMachine`]: it prepares the sandbox, carries out
//! the machine's actions (processes, probes, hooks, events, the final delete), feeds their
//! outcomes back, and writes the pod's status whenever it changes.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, Pod, PodStatus};
use nix::sys::signal::Signal;
use serde_json::Value;
use skiff_api::resources::ResourceInfo;
use skiff_client::{Client, DeleteOptions, Scope};
use skiff_runtime::{EventRecorder, EventType, ObjectRef};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::command::{environment, expanded_command, PodFacts};
use super::deadline;
use super::graceful::stop_within;
use super::logfiles::{log_path, LiveRuns};
use super::machine::{Action, BackoffConfig, Input, Now, PodMachine, Severity, StartFailure};
use super::probe_timing::ProbeKind;
use super::process::{self, ContainerProcess, SpawnRequest};
use super::pull::{ensure_image, PullPolicy};
use super::pull_secrets::pull_credentials;
use super::rootfs::{
    find_program, image_file, pod_hostname, resolve_in_root, resolve_user, rooted_argv, EtcFiles,
    HostFiles, RootedRun, RunAs, RunDirs,
};
use super::runtime::ImageRoot;
use super::runtime::{ExecFn, ImageService, ProbeContext, ProbeResult, Prober};
use super::sandbox::{self, container_mounts, isolated_argv, pod_dir, PreparedVolume};
use crate::drain::TrafficDrain;

/// How long to wait before setting up a sandbox again after a volume failed.
const SANDBOX_RETRY: Duration = Duration::from_secs(2);
/// The default PATH containers get when their image sets none (containerd's).
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// What every pod worker shares.
pub(crate) struct Shared {
    pub client: Arc<dyn Client>,
    pub pods: &'static ResourceInfo,
    pub data_dir: PathBuf,
    pub host_ip: String,
    pub backoff: BackoffConfig,
    /// `unshare`/`nsenter` paths when containers get their own namespaces.
    pub isolation: Option<(PathBuf, PathBuf)>,
    pub log_cap: u64,
    pub kubernetes_service: Option<(String, u16)>,
    /// Allocatable CPU (millicores) and memory (bytes).
    pub allocatable: (i64, i64),
    pub images: Arc<dyn ImageService>,
    pub prober: Arc<dyn Prober>,
    pub recorder: EventRecorder,
    pub live: LiveRuns,
    /// Waits for service proxies to stop routing to a pod before it is stopped.
    pub traffic_drain: Option<Arc<dyn TrafficDrain>>,
    /// Which process group runs which container, for resource metrics.
    pub processes: crate::metrics::ContainerProcesses,
    /// Gives each pod a network namespace and address before its first container; none keeps
    /// pods on the host's network.
    pub pod_network: Option<Arc<super::PodNetworkHandle>>,
    /// A cgroup per pod and per container, with the spec's limits; none leaves containers in
    /// the agent's cgroup.
    pub cgroups: Option<Arc<skiff_cgroups::PodCgroups>>,
    /// Where each running container's commands run, for `kubectl exec`.
    pub exec_places: super::streams::ExecPlaces,
    /// Runs containers from their image's root through an OCI runtime; none runs them as
    /// process groups.
    pub oci: Option<Arc<dyn skiff_oci::OciRuntime>>,
    /// The cluster DNS containers' resolv.conf names; none gives them the node's.
    pub cluster_dns: Option<super::ClusterDnsSettings>,
}

/// The manager's handle on a pod worker.
pub(crate) struct PodHandle {
    /// New versions of the pod.
    pub updates: watch::Sender<Arc<Pod>>,
    /// `Some(grace)`: stop everything (agent shutdown, or the pod vanished).
    pub stop: watch::Sender<Option<Duration>>,
    /// The worker.
    pub task: tokio::task::JoinHandle<()>,
}

/// Starts the worker of `pod` with address `pod_ip`; `done` hears its UID when it ends.
pub(crate) fn spawn_worker(
    shared: Arc<Shared>,
    pod: Arc<Pod>,
    pod_ip: Ipv4Addr,
    done: mpsc::UnboundedSender<String>,
) -> PodHandle {
    let (updates, updates_rx) = watch::channel(pod.clone());
    let (stop, stop_rx) = watch::channel(None);
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let task = tokio::spawn(async move {
        supervise(&uid, WORKER_RESTART_BACKOFF, |restarts| {
            let shared = shared.clone();
            // Fresh receivers see the latest pod and any stop request as new.
            let pod = if restarts == 0 {
                pod.clone()
            } else {
                updates_rx.borrow().clone()
            };
            let (updates, stop) = (updates_rx.clone(), stop_rx.clone());
            let uid = uid.clone();
            async move {
                if restarts > 0 {
                    // The failed worker's processes are unknown to the new one: end them, as
                    // kubelet does with containers of a sandbox it restarts.
                    let pgids = pod_dir(&shared.data_dir, &uid).join("pgids");
                    process::kill_leftovers(&pgids, &uid).await;
                }
                Worker::new(shared, pod, pod_ip).run(updates, stop).await;
            }
        })
        .await;
        let _ = done.send(uid);
    });
    PodHandle {
        updates,
        stop,
        task,
    }
}

/// The wait before a pod worker that panicked starts again, doubling up to the second value.
const WORKER_RESTART_BACKOFF: (Duration, Duration) =
    (Duration::from_millis(500), Duration::from_secs(30));

/// Runs a pod's worker (`attempt(restarts)`) until it returns; after a panic, logs it and,
/// after a doubling back-off, runs a fresh attempt, so one pod's bug never stops the others'
/// workers nor leaves this pod unattended.
pub(crate) async fn supervise<F, Fut>(uid: &str, backoff: (Duration, Duration), mut attempt: F)
where
    F: FnMut(u32) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let (mut delay, max) = backoff;
    let mut restarts = 0u32;
    loop {
        match skiff_runtime::panics::catch(attempt(restarts)).await {
            Ok(()) => return,
            Err(panic) => {
                tracing::error!(
                    pod_uid = %uid,
                    restarts,
                    "the pod worker panicked; starting it again in {delay:?}: {panic}"
                );
                tokio::time::sleep(delay).await;
                delay = delay.saturating_mul(2).min(max);
                restarts = restarts.saturating_add(1);
            }
        }
    }
}

/// Runs one of a worker's background steps; if it panics, `fallback` gets the panic message
/// and tells the machine what became of the step, so the pod never waits for an answer that
/// cannot come.
fn spawn_step<F>(
    uid: &str,
    step: &'static str,
    work: F,
    fallback: impl FnOnce(String) + Send + 'static,
) where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    let uid = uid.to_string();
    tokio::spawn(async move {
        if let Err(panic) = skiff_runtime::panics::catch(work).await {
            tracing::error!(pod_uid = %uid, step, "a pod worker step panicked: {panic}");
            fallback(panic);
        }
    });
}

/// Messages from the worker's own tasks.
enum Msg {
    Input(Input),
    Spawned {
        container: String,
        process: ContainerProcess,
        run: i32,
        env: Vec<(String, String)>,
        cwd: PathBuf,
        root: Option<ExecRoot>,
    },
}

/// A background task that ends when its owner is dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

struct Worker {
    shared: Arc<Shared>,
    pod: Arc<Pod>,
    uid: String,
    pod_ip: Ipv4Addr,
    /// The pod's pinned network namespace, once attached to the pod network.
    netns: Option<PathBuf>,
    /// The pod's cgroup, once created.
    pod_cgroup: Option<skiff_cgroups::PodCgroup>,
    dir: PathBuf,
    machine: PodMachine,
    volumes: Option<Vec<PreparedVolume>>,
    /// Replaces the pod's projected ServiceAccount tokens before they expire; stops with
    /// the worker.
    token_refresher: Option<AbortOnDrop>,
    sandbox_retry: Option<Instant>,
    processes: HashMap<String, ContainerProcess>,
    /// The environment and working directory of each container's current run, for exec.
    exec_env: HashMap<String, ExecPlace>,
    last_written: Option<PodStatus>,
    /// A pod that had finished before this worker started: report nothing, start nothing.
    adopted_terminal: bool,
    /// The grace period (seconds) of the deletion last passed to the machine.
    deletion_seen: Option<i64>,
    warned_no_isolation: bool,
    tx: mpsc::UnboundedSender<Msg>,
    rx: mpsc::UnboundedReceiver<Msg>,
}

fn grace_of(pod: &Pod) -> Duration {
    deadline::seconds(
        pod.spec
            .as_ref()
            .and_then(|s| s.termination_grace_period_seconds)
            .unwrap_or(30),
    )
}

/// The container `name` of the pod: a regular, init or ephemeral one (as a container).
fn find_container(pod: &Pod, name: &str) -> Option<Container> {
    let spec = pod.spec.as_ref()?;
    spec.containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .find(|c| c.name == name)
        .cloned()
        .or_else(|| {
            spec.ephemeral_containers
                .iter()
                .flatten()
                .find(|c| c.name == name)
                .map(super::machine::ephemeral_as_container)
        })
}

/// The list of the pod's spec that holds container `name`, for events' `fieldPath`.
fn container_list_of(pod: &Pod, name: &str) -> &'static str {
    let spec = pod.spec.as_ref();
    let holds = |list: Option<Vec<&str>>| list.is_some_and(|l| l.contains(&name));
    if holds(
        spec.and_then(|s| s.init_containers.as_ref())
            .map(|l| l.iter().map(|c| c.name.as_str()).collect()),
    ) {
        "initContainers"
    } else if holds(
        spec.and_then(|s| s.ephemeral_containers.as_ref())
            .map(|l| l.iter().map(|c| c.name.as_str()).collect()),
    ) {
        "ephemeralContainers"
    } else {
        "containers"
    }
}

impl Worker {
    fn new(shared: Arc<Shared>, pod: Arc<Pod>, pod_ip: Ipv4Addr) -> Worker {
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let dir = pod_dir(&shared.data_dir, &uid);
        // Pods on the host's network have no address of their own to drain.
        let own_address = !pod
            .spec
            .as_ref()
            .and_then(|s| s.host_network)
            .unwrap_or(false);
        let mut machine = PodMachine::new(&pod, shared.backoff, Now::current())
            .with_traffic_drain(shared.traffic_drain.is_some() && own_address);
        let adopted_terminal = pod
            .status
            .as_ref()
            .is_some_and(crate::simulated::timeline::is_terminal);
        if adopted_terminal {
            // Nothing runs for a finished pod; only its deletion may need confirming.
            machine.step(
                Input::Stop {
                    grace: Duration::ZERO,
                },
                Now::current(),
            );
        }
        let (tx, rx) = mpsc::unbounded_channel();
        Worker {
            shared,
            pod,
            uid,
            pod_ip,
            netns: None,
            pod_cgroup: None,
            dir,
            machine,
            volumes: None,
            token_refresher: None,
            sandbox_retry: None,
            processes: HashMap::new(),
            exec_env: HashMap::new(),
            last_written: None,
            adopted_terminal,
            deletion_seen: None,
            warned_no_isolation: false,
            tx,
            rx,
        }
    }

    fn scope(&self) -> Scope<'_> {
        Scope {
            resource: self.shared.pods,
            namespace: self.pod.metadata.namespace.as_deref(),
        }
    }

    fn facts(&self) -> PodFacts {
        PodFacts {
            pod_ip: self.pod_ip.to_string(),
            host_ip: self.shared.host_ip.clone(),
            kubernetes_service: self.shared.kubernetes_service.clone(),
            node_allocatable: self.shared.allocatable,
        }
    }

    async fn run(
        mut self,
        mut updates: watch::Receiver<Arc<Pod>>,
        mut stop: watch::Receiver<Option<Duration>>,
    ) {
        if let Err(e) = std::fs::create_dir_all(&self.dir) {
            tracing::warn!(pod_uid = %self.uid, error = %e, "creating the pod directory failed");
        }
        let _ = std::fs::write(
            self.dir.join("pod"),
            format!(
                "{}/{}\n",
                self.pod.metadata.namespace.as_deref().unwrap_or(""),
                self.pod.metadata.name.as_deref().unwrap_or("")
            ),
        );
        if self.shared.oci.is_some() && !self.adopted_terminal {
            // Containers an earlier run of the agent left running are taken over, in the
            // sandbox they already have, before anything could start them again.
            self.prepare_sandbox().await;
            self.adopt_leftovers().await;
        }
        let mut first = Some(Input::Sync);
        let mut queued: Option<Input> = None;
        let mut updates_open = true;
        let mut stop_open = true;
        loop {
            let input = if let Some(input) = first.take() {
                self.deletion_input().unwrap_or(input)
            } else if let Some(input) = queued.take() {
                input
            } else {
                let wake = [self.machine.next_wake(), self.sandbox_retry]
                    .into_iter()
                    .flatten()
                    .min();
                tokio::select! {
                    changed = updates.changed(), if updates_open => {
                        if changed.is_err() {
                            updates_open = false;
                            Input::Stop { grace: grace_of(&self.pod) }
                        } else {
                            self.pod = updates.borrow_and_update().clone();
                            self.deletion_input()
                                .unwrap_or_else(|| Input::Updated(self.pod.clone()))
                        }
                    }
                    changed = stop.changed(), if stop_open => {
                        match (changed, *stop.borrow_and_update()) {
                            (Ok(()), Some(grace)) => Input::Stop { grace: grace.min(grace_of(&self.pod)) },
                            (Ok(()), None) => Input::Sync,
                            (Err(_), _) => {
                                stop_open = false;
                                Input::Stop { grace: grace_of(&self.pod) }
                            }
                        }
                    }
                    Some(msg) = self.rx.recv() => match msg {
                        Msg::Input(input) => input,
                        Msg::Spawned { container, process, run, env, cwd, root } => {
                            self.register(container, process, run, env, cwd, root);
                            continue;
                        }
                    },
                    _ = sleep_until(wake) => Input::Sync,
                }
            };
            if !self.machine.is_stopping() && self.volumes.is_none() && !self.adopted_terminal {
                self.prepare_sandbox().await;
            }
            let actions = self.machine.step(input, Now::current());
            let mut confirm = false;
            for action in actions {
                if action == Action::ConfirmDeletion {
                    confirm = true;
                } else {
                    self.execute(action).await;
                }
            }
            // An input already waiting (the sandbox just made ready, a container just started)
            // is taken first and one write carries both steps, as kubelet's status manager
            // batches: no write sits between a pod's sandbox and its containers' start.
            if !confirm && !self.machine.is_done() {
                queued = self.next_queued_input();
            }
            if queued.is_some() {
                continue;
            }
            // The final status goes out before the pod object does.
            self.write_status().await;
            if confirm {
                self.execute(Action::ConfirmDeletion).await;
            }
            if self.machine.is_done() {
                break;
            }
        }
        self.remove_cgroup().await;
        self.detach_network().await;
    }

    /// The next input already waiting on the worker's own channel, if any; started runs
    /// found on the way are registered.
    fn next_queued_input(&mut self) -> Option<Input> {
        loop {
            match self.rx.try_recv().ok()? {
                Msg::Input(input) => return Some(input),
                Msg::Spawned {
                    container,
                    process,
                    run,
                    env,
                    cwd,
                    root,
                } => self.register(container, process, run, env, cwd, root),
            }
        }
    }

    /// Keeps a started run's process: its end is watched, and exec and probes find it.
    fn register(
        &mut self,
        container: String,
        process: ContainerProcess,
        run: i32,
        env: Vec<(String, String)>,
        cwd: PathBuf,
        root: Option<ExecRoot>,
    ) {
        self.watch_exit(&container, process.clone(), run);
        let place = exec_place(&self.shared.isolation, &process, &env, &cwd, &root);
        self.shared
            .exec_places
            .started(&self.uid, &container, place);
        self.exec_env.insert(container.clone(), (env, cwd, root));
        self.processes.insert(container, process);
    }

    /// Takes over the containers of this pod that its status reports running and that the
    /// OCI runtime still runs (or saw end while the agent was down): the same processes,
    /// start times and restart counts, their output flowing again into the run's log.
    async fn adopt_leftovers(&mut self) {
        let Some(runtime) = self.shared.oci.clone() else {
            return;
        };
        let status = self.pod.status.clone().unwrap_or_default();
        let statuses = status
            .init_container_statuses
            .into_iter()
            .flatten()
            .chain(status.container_statuses.into_iter().flatten());
        for known in statuses {
            let name = known.name.clone();
            let Some(started_at) = known
                .state
                .as_ref()
                .and_then(|s| s.running.as_ref())
                .and_then(|r| r.started_at.as_ref())
                .map(|t| t.0)
            else {
                continue;
            };
            if find_container(&self.pod, &name).is_none() {
                continue;
            }
            let Ok(id) = super::oci::container_id(&self.uid, &name) else {
                continue;
            };
            let container_dir = self.dir.join("containers").join(&name);
            let cgroup = match (&self.shared.cgroups, &self.pod_cgroup) {
                (Some(cgroups), Some(pod)) => cgroups.container_path(pod, &name).ok().map(|path| {
                    let managed = cgroups
                        .driver()
                        .procs_files(&path)
                        .iter()
                        .filter_map(|p| p.parent().map(Path::to_path_buf))
                        .collect();
                    (path.runtime_path(), managed)
                }),
                _ => None,
            };
            let log = log_path(&self.dir, &name, known.restart_count);
            let log_cap = self.shared.log_cap;
            let dir = container_dir.clone();
            let runtime = runtime.clone();
            let attach = find_container(&self.pod, &name)
                .map(|c| super::streams::AttachConfig::of(&c))
                .unwrap_or_default();
            let adopted = tokio::task::spawn_blocking(move || {
                super::oci::adopt(runtime, id, &dir, cgroup, &attach, &log, log_cap)
            })
            .await
            .ok()
            .flatten();
            let Some(leftover) = adopted else {
                continue;
            };
            let process = match leftover {
                super::oci::Leftover::Running(process) => {
                    tracing::info!(pod_uid = %self.uid, container = %name, pid = process.pgid, "adopted a running container");
                    if let Err(e) = process::record_pgid(&self.dir.join("pgids"), process.pgid) {
                        tracing::warn!(pod_uid = %self.uid, error = %e, "recording a process group failed");
                    }
                    self.shared
                        .processes
                        .started(crate::metrics::RunningContainer {
                            pod_uid: self.uid.clone(),
                            namespace: self.pod.metadata.namespace.clone().unwrap_or_default(),
                            pod: self.pod.metadata.name.clone().unwrap_or_default(),
                            container: name.clone(),
                            pgid: process.pgid,
                            cgroup: match (&self.shared.cgroups, &self.pod_cgroup) {
                                (Some(cgroups), Some(pod)) => {
                                    cgroups.container_path(pod, &name).ok()
                                }
                                _ => None,
                            },
                        });
                    process
                }
                super::oci::Leftover::Ended(process) => {
                    tracing::info!(pod_uid = %self.uid, container = %name, "a container ended while the agent was down");
                    process
                }
            };
            self.shared
                .live
                .insert(&self.uid, &name, known.restart_count);
            let super::oci::BundleProcess {
                env,
                working_dir,
                run_as,
            } = super::oci::bundle_process(&container_dir).unwrap_or(super::oci::BundleProcess {
                env: Vec::new(),
                working_dir: "/".to_string(),
                run_as: RunAs { uid: 0, gid: 0 },
            });
            let root = Some(ExecRoot {
                root: RunDirs::under(&container_dir).root,
                working_dir,
                run_as,
                oci: process.oci.clone(),
            });
            let actions = self.machine.step(
                Input::Adopted {
                    container: name.clone(),
                    started_at,
                    container_id: known.container_id.clone().unwrap_or_default(),
                },
                Now::current(),
            );
            for action in actions {
                self.execute(action).await;
            }
            self.register(name, process, known.restart_count, env, container_dir, root);
        }
    }

    /// Creates the pod's cgroup with the limits its spec sums to.
    fn create_cgroup(&mut self) -> Result<(), String> {
        let Some(cgroups) = &self.shared.cgroups else {
            return Ok(());
        };
        if self.pod_cgroup.is_some() {
            return Ok(());
        }
        let spec = self.pod.spec.clone().unwrap_or_default();
        let cgroup = cgroups
            .create_pod(&self.uid, &spec)
            .map_err(|e| format!("Failed to create pod sandbox: creating the pod's cgroup: {e}"))?;
        self.pod_cgroup = Some(cgroup);
        Ok(())
    }

    /// Kills whatever is left in the pod's cgroup and removes it with its containers'.
    async fn remove_cgroup(&mut self) {
        let Some(cgroups) = self.shared.cgroups.clone() else {
            return;
        };
        let uid = self.uid.clone();
        let removed = tokio::task::spawn_blocking(move || remove_pod_cgroup(&cgroups, &uid)).await;
        if let Ok(Err(error)) = removed {
            tracing::warn!(pod_uid = %self.uid, %error, "removing the pod's cgroup failed");
        }
        self.pod_cgroup = None;
    }

    /// Whether the pod shares the host's network namespace.
    fn host_network(&self) -> bool {
        self.pod
            .spec
            .as_ref()
            .and_then(|s| s.host_network)
            .unwrap_or(false)
    }

    /// Gives the pod its network namespace and address (the ones it had, after a restart).
    async fn attach_network(&mut self) -> Result<(), String> {
        let Some(network) = self.shared.pod_network.clone() else {
            return Ok(());
        };
        if self.host_network() {
            // On the host's network the pod's address is the node's, as kubelet reports it.
            if let Ok(host_ip) = self.shared.host_ip.parse() {
                self.pod_ip = host_ip;
            }
            return Ok(());
        }
        if self.netns.is_some() {
            return Ok(());
        }
        let attachment = network.attach(&self.uid).await.map_err(|e| {
            format!("Failed to create pod sandbox: setting up the pod network: {e}")
        })?;
        self.pod_ip = attachment.ip;
        self.netns = Some(attachment.netns_path);
        Ok(())
    }

    /// Removes the pod's namespace and veth and frees its address, once nothing runs in it.
    async fn detach_network(&mut self) {
        let Some(network) = self.shared.pod_network.clone() else {
            return;
        };
        if self.host_network() {
            return;
        }
        if let Err(error) = network.detach(&self.uid).await {
            tracing::warn!(pod_uid = %self.uid, %error, "removing the pod's network failed");
        }
        self.netns = None;
    }

    /// `Delete` the first time the pod shows a deletion timestamp, and again whenever a later
    /// deletion shortens its grace period.
    fn deletion_input(&mut self) -> Option<Input> {
        self.pod.metadata.deletion_timestamp.as_ref()?;
        let seconds = self
            .pod
            .metadata
            .deletion_grace_period_seconds
            .or_else(|| self.pod.spec.as_ref()?.termination_grace_period_seconds)
            .unwrap_or(30);
        if self.deletion_seen.is_some_and(|seen| seen <= seconds) {
            return None;
        }
        self.deletion_seen = Some(seconds);
        Some(Input::Delete {
            grace: deadline::seconds(seconds),
        })
    }

    async fn prepare_sandbox(&mut self) {
        if self.sandbox_retry.is_some_and(|at| Instant::now() < at) {
            return;
        }
        let began = std::time::Instant::now();
        if let Err(message) = self.create_cgroup() {
            self.sandbox_retry = Some(Instant::now() + SANDBOX_RETRY);
            self.event(Severity::Warning, "FailedCreatePodSandBox", message, None);
            return;
        }
        let began = super::oci::start_step("pod_cgroup", began);
        if let Err(message) = self.attach_network().await {
            self.sandbox_retry = Some(Instant::now() + SANDBOX_RETRY);
            self.event(Severity::Warning, "FailedCreatePodSandBox", message, None);
            return;
        }
        let began = super::oci::start_step("network", began);
        match sandbox::prepare_volumes(
            self.shared.client.clone(),
            &self.pod,
            &self.dir,
            &self.facts(),
        )
        .await
        {
            Ok(volumes) => {
                super::oci::start_step("volumes", began);
                self.volumes = Some(volumes);
                self.sandbox_retry = None;
                let tokens = sandbox::token_files(&self.pod, &self.dir);
                if !tokens.is_empty() {
                    self.token_refresher =
                        Some(AbortOnDrop(tokio::spawn(sandbox::keep_tokens_fresh(
                            self.shared.client.clone(),
                            self.pod.clone(),
                            tokens,
                            sandbox::kubelet_refresh_delay,
                        ))));
                }
                if self.shared.isolation.is_none() && !self.warned_no_isolation {
                    self.warned_no_isolation = true;
                    self.event(
                        Severity::Warning,
                        "NoIsolation",
                        "containers run without their own mounts, /tmp or hostname, and images without a root of their own (programs run from the image's files on the host): this node is not running as root with unshare available".to_string(),
                        None,
                    );
                }
                let _ = self.tx.send(Msg::Input(Input::SandboxReady));
            }
            Err(e) => {
                self.sandbox_retry = Some(Instant::now() + SANDBOX_RETRY);
                self.event(Severity::Warning, "FailedMount", e.to_string(), None);
            }
        }
    }

    fn event(&self, severity: Severity, reason: &str, message: String, container: Option<&str>) {
        let Ok(mut involved) = ObjectRef::from_object(&*self.pod) else {
            return;
        };
        if let Some(name) = container {
            let field = container_list_of(&self.pod, name);
            involved = involved.with_field_path(&format!("spec.{field}{{{name}}}"));
        }
        let kind = match severity {
            Severity::Normal => EventType::Normal,
            Severity::Warning => EventType::Warning,
        };
        self.shared
            .recorder
            .record(&involved, kind, reason, message);
    }

    async fn execute(&mut self, action: Action) {
        match action {
            Action::Event {
                severity,
                reason,
                message,
                container,
            } => self.event(severity, reason, message, container.as_deref()),
            Action::Start {
                container,
                restart_count,
                run,
            } => self.start(container, restart_count, run),
            Action::Kill {
                container,
                grace,
                pre_stop,
            } => self.kill(&container, grace, pre_stop),
            Action::Probe {
                container,
                kind,
                run,
            } => self.probe(container, kind, run),
            Action::Drain { drain, deadline } => self.drain_traffic(drain, deadline),
            Action::ConfirmDeletion => self.confirm_deletion().await,
        }
    }

    /// Waits, in the background, until no proxy routes to the pod (or `deadline`), then
    /// tells the machine.
    fn drain_traffic(&self, drain: u32, deadline: Instant) {
        let tx = self.tx.clone();
        let Some(traffic) = self.shared.traffic_drain.clone() else {
            let _ = tx.send(Msg::Input(Input::Drained { drain }));
            return;
        };
        let pod_ip = IpAddr::V4(self.pod_ip);
        let uid = self.uid.clone();
        let fallback_tx = tx.clone();
        spawn_step(
            &self.uid,
            "drain",
            async move {
                let began = Instant::now();
                let unrouted =
                    tokio::time::timeout_at(deadline, traffic.wait_unrouted(pod_ip, deadline))
                        .await
                        .is_ok();
                tracing::debug!(
                    pod_uid = %uid,
                    %pod_ip,
                    took_ms = began.elapsed().as_millis() as u64,
                    gave_up = !unrouted,
                    "waited for proxies to stop routing to the pod"
                );
                let _ = tx.send(Msg::Input(Input::Drained { drain }));
            },
            move |_| {
                let _ = fallback_tx.send(Msg::Input(Input::Drained { drain }));
            },
        );
    }

    /// The environment exec checks and hooks run in: the container's env and namespaces.
    fn exec_fn(
        &self,
        env: Vec<(String, String)>,
        cwd: PathBuf,
        pgid: Option<i32>,
        root: Option<ExecRoot>,
    ) -> ExecFn {
        make_exec(self.shared.isolation.clone(), env, cwd, pgid, root)
    }

    /// The exec function for a container's current run.
    fn exec_for(&self, name: &str, pgid: Option<i32>) -> ExecFn {
        let (env, cwd, root) = self.exec_env.get(name).cloned().unwrap_or_else(|| {
            (
                vec![("PATH".to_string(), DEFAULT_PATH.to_string())],
                self.dir.join("containers").join(name),
                None,
            )
        });
        self.exec_fn(env, cwd, pgid, root)
    }

    /// For an ephemeral container naming a `targetContainerName` that runs as a runtime
    /// container: the target's PID namespace, by its PID 1 (`/proc/<pid>/ns/pid`), for the
    /// debugger to join. Process-group containers all share the node's PID namespace, so they
    /// need nothing.
    fn target_pid_namespace(&self, name: &str) -> Option<PathBuf> {
        let target = self
            .pod
            .spec
            .as_ref()?
            .ephemeral_containers
            .as_ref()?
            .iter()
            .find(|c| c.name == name)?
            .target_container_name
            .clone()?;
        let process = self.processes.get(&target)?;
        process.oci.as_ref()?;
        Some(PathBuf::from(format!("/proc/{}/ns/pid", process.pgid)))
    }

    fn start(&mut self, name: String, restart_count: i32, run: u32) {
        let Some(container) = find_container(&self.pod, &name) else {
            return;
        };
        let shared = self.shared.clone();
        let pod = self.pod.clone();
        let tx = self.tx.clone();
        let facts = self.facts();
        let volumes = self.volumes.clone().unwrap_or_default();
        let container_dir = self.dir.join("containers").join(&name);
        let log = log_path(&self.dir, &name, restart_count);
        let pgids = self.dir.join("pgids");
        let uid = self.uid.clone();
        let pod_ip = self.pod_ip;
        let netns = self.netns.clone();
        let target_pid_namespace = self.target_pid_namespace(&name);
        let pod_cgroup = self.pod_cgroup.clone();
        let isolation = self.shared.isolation.clone();
        let (fallback_tx, fallback_name) = (tx.clone(), name.clone());
        spawn_step(
            &self.uid,
            "start",
            async move {
                let fail = |failure, message: String| {
                    let _ = tx.send(Msg::Input(Input::StartFailed {
                        container: name.clone(),
                        failure,
                        message,
                    }));
                };
                let step_began = std::time::Instant::now();
                let image_ref = container.image.clone().unwrap_or_default();
                let record = |severity: EventType, reason: &str, message: String| {
                    if let Ok(r) = ObjectRef::from_object(&*pod) {
                        let field = container_list_of(&pod, &name);
                        shared.recorder.record(
                            &r.with_field_path(&format!("spec.{field}{{{name}}}")),
                            severity,
                            reason,
                            message,
                        );
                    }
                };
                let policy =
                    PullPolicy::effective(container.image_pull_policy.as_deref(), &image_ref);
                let credentials =
                    pull_credentials(shared.client.clone(), &pod, &image_ref, &shared.recorder);
                let ensured = ensure_image(
                    shared.images.as_ref(),
                    &image_ref,
                    policy,
                    credentials,
                    &mut |severity, reason, message| {
                        let kind = match severity {
                            Severity::Normal => EventType::Normal,
                            Severity::Warning => EventType::Warning,
                        };
                        record(kind, reason, message);
                    },
                )
                .await;
                let step_began = super::oci::start_step("image", step_began);
                let image = match ensured {
                    Ok(image) => image,
                    Err((failure, message)) => {
                        fail(failure, message);
                        return;
                    }
                };
                let mut env = match environment(
                    shared.client.clone(),
                    &pod,
                    &container,
                    &image,
                    &facts,
                )
                .await
                {
                    Ok(env) => env,
                    Err(e) => {
                        fail(StartFailure::Config, e.0);
                        return;
                    }
                };
                if env.get("PATH").is_none() {
                    env.set("PATH", DEFAULT_PATH.to_string());
                }
                let step_began = super::oci::start_step("environment", step_began);
                let command = expanded_command(&container, &image, &env);
                if command.is_empty() {
                    fail(StartFailure::Runtime, "no command specified".to_string());
                    return;
                }
                let working_dir = container
                    .working_dir
                    .clone()
                    .filter(|d| !d.is_empty())
                    .or_else(|| image.working_dir.clone());
                let pod_name = pod.metadata.name.clone().unwrap_or_default();
                let mounts = container_mounts(&container, &volumes);
                let launch = match (&image.root, &shared.isolation) {
                    (None, isolation) => host_launch(
                        command,
                        &container_dir,
                        &mounts,
                        &pod_name,
                        working_dir,
                        isolation.as_ref().map(|(unshare, _)| unshare.as_path()),
                    ),
                    (Some(root), Some((unshare, _))) => {
                        match container_user(&pod, &container, &image, root) {
                            Ok(run_as) => rooted_launch(
                                command,
                                root,
                                &container_dir,
                                &mounts,
                                &pod,
                                &pod_ip.to_string(),
                                working_dir.as_deref(),
                                unshare,
                                run_as,
                                shared.cluster_dns.as_ref(),
                            ),
                            Err((failure, message)) => {
                                fail(failure, message);
                                return;
                            }
                        }
                    }
                    (Some(root), None) => {
                        merged_launch(command, root, &container_dir, working_dir, &env)
                    }
                };
                let (argv, cwd, arg0, root) = match launch {
                    Ok(launch) => launch,
                    Err(message) => {
                        fail(StartFailure::Runtime, message);
                        return;
                    }
                };
                let argv = match (&netns, &isolation) {
                    (Some(netns), Some((_, nsenter))) => in_network_namespace(nsenter, netns, argv),
                    _ => argv,
                };
                record(
                    EventType::Normal,
                    "Created",
                    format!("Created container: {name}"),
                );
                let cgroup_procs = match (&shared.cgroups, &pod_cgroup) {
                    (Some(cgroups), Some(pod_cgroup)) => {
                        match fresh_container_cgroup(cgroups, pod_cgroup, &container) {
                            Ok(procs) => procs,
                            Err(message) => {
                                fail(StartFailure::Runtime, message);
                                return;
                            }
                        }
                    }
                    _ => Vec::new(),
                };
                let env_pairs = env.pairs();
                let oci_run = match (&shared.oci, &root, &shared.cgroups, &pod_cgroup) {
                    (Some(runtime), Some(exec_root), Some(cgroups), Some(pod_cgroup)) => Some((
                        runtime.clone(),
                        exec_root.clone(),
                        cgroups.container_path(pod_cgroup, &name).ok().map(|path| {
                            let dirs = cgroups.driver().procs_files(&path);
                            (path, dirs)
                        }),
                    )),
                    _ => None,
                };
                let (spawned, root) = match (oci_run, &image.root) {
                    (Some((runtime, mut exec_root, cgroup)), Some(image_root)) => {
                        let step_began = super::oci::start_step("container_cgroup", step_began);
                        let started = start_oci(OciStart {
                            runtime,
                            pod: pod.clone(),
                            container: container.clone(),
                            container_dir: container_dir.clone(),
                            image: image_root.clone(),
                            command: expanded_command(&container, &image, &env),
                            env: env_pairs.clone(),
                            exec_root: exec_root.clone(),
                            mounts: mounts.clone(),
                            netns: netns.clone(),
                            pid_namespace: target_pid_namespace.clone(),
                            cgroups_path: cgroup.as_ref().map(|(c, _)| c.runtime_path()),
                            managed_cgroup_dirs: cgroup
                                .map(|(_, procs)| {
                                    procs
                                        .iter()
                                        .filter_map(|p| p.parent().map(Path::to_path_buf))
                                        .collect()
                                })
                                .unwrap_or_default(),
                            log_path: log,
                            log_cap: shared.log_cap,
                        })
                        .await;
                        super::oci::start_step("launch", step_began);
                        exec_root.oci = started.as_ref().ok().and_then(|p| p.oci.clone());
                        (started, Some(exec_root))
                    }
                    _ => (
                        process::spawn(SpawnRequest {
                            cgroup_procs,
                            argv,
                            env: env_pairs.clone(),
                            cwd: cwd.clone(),
                            log_path: log,
                            log_cap: shared.log_cap,
                            arg0,
                            attach: super::streams::AttachConfig::of(&container),
                        }),
                        root,
                    ),
                };
                let process = match spawned {
                    Ok(p) => p,
                    Err(e) => {
                        record(
                            EventType::Warning,
                            "Failed",
                            format!("Error: failed to start container \"{name}\": {e}"),
                        );
                        fail(
                            StartFailure::Runtime,
                            format!("failed to start container \"{name}\": {e}"),
                        );
                        return;
                    }
                };
                if let Err(e) = process::record_pgid(&pgids, process.pgid) {
                    tracing::warn!(pod_uid = %uid, error = %e, "recording a process group failed");
                }
                shared.live.insert(&uid, &name, restart_count);
                shared.processes.started(crate::metrics::RunningContainer {
                    pod_uid: uid.clone(),
                    namespace: pod.metadata.namespace.clone().unwrap_or_default(),
                    pod: pod.metadata.name.clone().unwrap_or_default(),
                    container: name.clone(),
                    pgid: process.pgid,
                    cgroup: match (&shared.cgroups, &pod_cgroup) {
                        (Some(cgroups), Some(pod)) => cgroups.container_path(pod, &name).ok(),
                        _ => None,
                    },
                });
                let pgid = process.pgid;
                let oci_container = process.oci.clone();
                if root.is_some() && oci_container.is_none() {
                    // Started means the container's root is in place, as for a created
                    // container: probes and hooks must not run in a half-assembled one.
                    wait_for_root(&RunDirs::under(&container_dir).ready, &process).await;
                }
                let _ = tx.send(Msg::Spawned {
                    container: name.clone(),
                    process,
                    run: restart_count,
                    env: env_pairs.clone(),
                    cwd: cwd.clone(),
                    root: root.clone(),
                });
                record(
                    EventType::Normal,
                    "Started",
                    format!("Started container {name}"),
                );
                if let Some(handler) = container
                    .lifecycle
                    .as_ref()
                    .and_then(|l| l.post_start.as_ref())
                {
                    let ctx = ProbeContext {
                        pod_ip,
                        container_ports: container.ports.clone().unwrap_or_default(),
                        exec: make_exec(isolation, env_pairs, cwd, Some(pgid), root),
                    };
                    let deadline = deadline::after(Instant::now(), grace_of(&pod));
                    if let Err(message) = shared.prober.run_hook(handler, &ctx, deadline).await {
                        record(
                            EventType::Warning,
                            "FailedPostStartHook",
                            format!("PostStartHook failed: {message}"),
                        );
                        match &oci_container {
                            Some(container) => container.signal(Signal::SIGKILL),
                            None => process::signal_group(pgid, Signal::SIGKILL),
                        }
                    }
                }
                let _ = tx.send(Msg::Input(Input::Started {
                    container: name.clone(),
                    image_id: image.image_id.clone(),
                    image: image.name.clone(),
                    container_id: format!("skiff://{uid}/{name}/{run}"),
                }));
            },
            move |panic| {
                let _ = fallback_tx.send(Msg::Input(Input::StartFailed {
                    container: fallback_name,
                    failure: StartFailure::Runtime,
                    message: format!("starting the container failed: {panic}"),
                }));
            },
        );
    }

    /// Reports the container's exit once its process group is gone.
    fn watch_exit(&self, name: &str, process: ContainerProcess, run: i32) {
        let tx = self.tx.clone();
        let live = self.shared.live.clone();
        let processes = self.shared.processes.clone();
        let exec_places = self.shared.exec_places.clone();
        let uid = self.uid.clone();
        let name = name.to_string();
        let cgroup = match (&self.shared.cgroups, &self.pod_cgroup) {
            (Some(cgroups), Some(pod)) => cgroups
                .container_path(pod, &name)
                .ok()
                .map(|path| (cgroups.clone(), path)),
            _ => None,
        };
        tokio::spawn(async move {
            let code = process.wait().await;
            live.remove(&uid, &name, run);
            processes.exited(&uid, &name, process.pgid);
            exec_places.exited(&uid, &name, process.pgid);
            // The kernel counts the container's OOM kills in its cgroup, fresh for each run.
            let oom = cgroup.is_some_and(|(cgroups, path)| {
                cgroups.oom_kills(&path).is_ok_and(|kills| kills > 0)
            });
            if let Some(container) = process.oci.clone() {
                // The run is over: its container and root go before the exit is reported.
                let _ = tokio::task::spawn_blocking(move || container.release()).await;
            }
            let _ = tx.send(Msg::Input(Input::Exited {
                container: name,
                exit_code: code,
                oom,
            }));
        });
    }

    fn kill(&mut self, name: &str, grace: Option<Duration>, pre_stop: bool) {
        let Some(process) = self.processes.get(name).cloned() else {
            return;
        };
        let grace = grace.unwrap_or_else(|| grace_of(&self.pod));
        let container = find_container(&self.pod, name);
        let shared = self.shared.clone();
        let pod = self.pod.clone();
        let pod_ip = self.pod_ip;
        let exec = self.exec_for(name, Some(process.pgid));
        let name = name.to_string();
        let killed = process.clone();
        spawn_step(
            &self.uid,
            "kill",
            async move {
                let deadline = deadline::after(Instant::now(), grace);
                let pre_stop_handler = container
                    .as_ref()
                    .and_then(|c| c.lifecycle.as_ref())
                    .and_then(|l| l.pre_stop.clone());
                if let (true, Some(handler)) = (pre_stop, pre_stop_handler) {
                    let ctx = ProbeContext {
                        pod_ip,
                        container_ports: container
                            .as_ref()
                            .and_then(|c| c.ports.clone())
                            .unwrap_or_default(),
                        exec,
                    };
                    let hook = shared.prober.run_hook(&handler, &ctx, deadline);
                    match tokio::time::timeout_at(deadline, hook).await {
                        Ok(Ok(())) => {}
                        Ok(Err(message)) => {
                            if let Ok(r) = ObjectRef::from_object(&*pod) {
                                shared.recorder.record(
                                    &r.with_field_path(&format!("spec.containers{{{name}}}")),
                                    EventType::Warning,
                                    "FailedPreStopHook",
                                    format!("PreStopHook failed: {message}"),
                                );
                            }
                        }
                        Err(_) => {}
                    }
                }
                stop_within(&process, deadline).await;
            },
            move |_| killed.signal(Signal::SIGKILL),
        );
    }

    fn probe(&self, name: String, kind: ProbeKind, run: u32) {
        let Some(container) = find_container(&self.pod, &name) else {
            return;
        };
        let probe = match kind {
            ProbeKind::Liveness => container.liveness_probe.clone(),
            ProbeKind::Readiness => container.readiness_probe.clone(),
            ProbeKind::Startup => container.startup_probe.clone(),
        };
        let Some(probe) = probe else {
            return;
        };
        let pgid = self.processes.get(&name).map(|p| p.pgid);
        let exec = self.exec_for(&name, pgid);
        let ctx = ProbeContext {
            pod_ip: self.pod_ip,
            container_ports: container.ports.clone().unwrap_or_default(),
            exec,
        };
        let prober = self.shared.prober.clone();
        let tx = self.tx.clone();
        let timeout = Duration::from_secs(probe.timeout_seconds.unwrap_or(1).max(1) as u64);
        let (fallback_tx, fallback_name) = (tx.clone(), name.clone());
        spawn_step(
            &self.uid,
            "probe",
            async move {
                // A prober that overruns its own timeout still answers: as a failure.
                let result = match tokio::time::timeout(
                    timeout + Duration::from_secs(1),
                    prober.probe(&probe, &ctx),
                )
                .await
                {
                    Ok(result) => result,
                    Err(_) => ProbeResult::Failure(format!(
                        "probe timed out after {}s",
                        timeout.as_secs()
                    )),
                };
                let _ = tx.send(Msg::Input(Input::Probed {
                    container: name,
                    kind,
                    run,
                    result,
                }));
            },
            move |panic| {
                let _ = fallback_tx.send(Msg::Input(Input::Probed {
                    container: fallback_name,
                    kind,
                    run,
                    result: ProbeResult::Failure(format!("probe failed: {panic}")),
                }));
            },
        );
    }

    async fn confirm_deletion(&mut self) {
        let name = self.pod.metadata.name.clone().unwrap_or_default();
        let options = DeleteOptions {
            grace_period_seconds: Some(0),
            precondition_uid: Some(self.uid.clone()),
            ..DeleteOptions::default()
        };
        for attempt in 0..5u32 {
            match self
                .shared
                .client
                .delete(self.scope(), &name, &options)
                .await
            {
                Ok(_) => break,
                Err(e) if e.is_not_found() || e.is_conflict() => break,
                Err(e) => {
                    tracing::warn!(pod = %name, error = %e, "confirming a pod's deletion failed");
                    tokio::time::sleep(Duration::from_millis(200 << attempt)).await;
                }
            }
        }
        // Kubelet removes a deleted pod's directory once nothing runs in it.
        if let Err(e) = std::fs::remove_dir_all(&self.dir) {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(pod = %name, error = %e, "removing the pod directory failed");
            }
        }
    }

    async fn write_status(&mut self) {
        if self.adopted_terminal {
            return;
        }
        let mut base = (*self.pod).clone();
        if let Some(previous) = &self.last_written {
            base.status = Some(super::machine::with_foreign_conditions(
                previous,
                self.pod.status.as_ref(),
            ));
        }
        let pod_ip = self.volumes.is_some().then(|| self.pod_ip.to_string());
        let status = self.machine.status(
            &base,
            &self.shared.host_ip,
            pod_ip.as_deref(),
            jiff::Timestamp::now(),
        );
        if self.last_written.as_ref() == Some(&status) {
            return;
        }
        // Written against the version it was computed from: a condition someone else wrote
        // since (OpenKruise's InPlaceUpdateReady) must not be overwritten with an older value.
        let mut body = (*self.pod).clone();
        // The status describes the spec of this generation, as kubelet reports it.
        body.status = Some(crate::observed::observe_generation(
            status.clone(),
            body.metadata.generation,
        ));
        let Ok(mut value) = serde_json::to_value(&body) else {
            return;
        };
        spell_out_probe_times(&mut value);
        let began = std::time::Instant::now();
        let written = self.shared.client.update_status(self.scope(), value).await;
        super::oci::start_step("status_write", began);
        match written {
            Ok(written) => {
                self.last_written = Some(status);
                if let Some(version) = written
                    .pointer("/metadata/resourceVersion")
                    .and_then(Value::as_str)
                {
                    Arc::make_mut(&mut self.pod).metadata.resource_version =
                        Some(version.to_string());
                }
            }
            Err(e) if e.is_not_found() => self.last_written = Some(status),
            Err(e) if e.is_conflict() => {
                // The newer version is on its way from the watch; the next step writes again.
                tracing::debug!(pod_uid = %self.uid, "pod status changed meanwhile; writing again once seen");
            }
            Err(e) => {
                tracing::warn!(pod_uid = %self.uid, error = %e, "writing pod status failed");
            }
        }
    }
}

/// How a container run starts: its argv, working directory, `argv[0]` override, and the root
/// its exec commands run in.
type Launch = (Vec<String>, PathBuf, Option<String>, Option<ExecRoot>);

/// Where a container run's exec commands run: its environment, working directory (of the
/// `nsenter` itself) and own root.
type ExecPlace = (Vec<(String, String)>, PathBuf, Option<ExecRoot>);

/// A container run's own root (the mount point of its image, inside its mount namespace) and
/// working directory there.
#[derive(Clone, Debug)]
struct ExecRoot {
    root: PathBuf,
    working_dir: String,
    run_as: RunAs,
    /// The runtime's container, when the run is one: commands run through its `exec`.
    oci: Option<Arc<super::oci::OciContainer>>,
}

/// Who a container run from its image runs as: the security context's `runAsUser` and
/// `runAsGroup` (the container's, else the pod's), else the image's `USER`, resolved against
/// the image's `/etc/passwd` and `/etc/group`; `runAsNonRoot` is checked as kubelet checks it.
fn container_user(
    pod: &Pod,
    container: &Container,
    image: &super::runtime::ResolvedImage,
    root: &ImageRoot,
) -> Result<RunAs, (StartFailure, String)> {
    let pod_context = pod.spec.as_ref().and_then(|s| s.security_context.as_ref());
    let context = container.security_context.as_ref();
    let run_as_user = context
        .and_then(|c| c.run_as_user)
        .or_else(|| pod_context.and_then(|c| c.run_as_user));
    let run_as_group = context
        .and_then(|c| c.run_as_group)
        .or_else(|| pod_context.and_then(|c| c.run_as_group));
    let non_root = context
        .and_then(|c| c.run_as_non_root)
        .or_else(|| pod_context.and_then(|c| c.run_as_non_root))
        .unwrap_or(false);
    let id = |value: i64, what: &str| {
        u32::try_from(value).map_err(|_| (StartFailure::Config, format!("invalid {what} {value}")))
    };
    let described = format!(
        "{}_{}({})",
        pod.metadata.name.as_deref().unwrap_or(""),
        pod.metadata.namespace.as_deref().unwrap_or(""),
        pod.metadata.uid.as_deref().unwrap_or("")
    );
    let image_user = image.user.clone().unwrap_or_default();
    if non_root {
        match run_as_user {
            Some(0) => {
                return Err((
                    StartFailure::Config,
                    format!(
                        "container's runAsUser breaks non-root policy (pod: \"{described}\", container: {})",
                        container.name
                    ),
                ))
            }
            Some(_) => {}
            None => {
                let user = image_user.split(':').next().unwrap_or("");
                let message = if user.is_empty() || user.parse::<u32>() == Ok(0) {
                    Some(format!(
                        "container has runAsNonRoot and image will run as root (pod: \"{described}\", container: {})",
                        container.name
                    ))
                } else if user.parse::<u32>().is_err() {
                    Some(format!(
                        "container has runAsNonRoot and image has non-numeric user ({user}), cannot verify user is non-root (pod: \"{described}\", container: {})",
                        container.name
                    ))
                } else {
                    None
                };
                if let Some(message) = message {
                    return Err((StartFailure::Config, message));
                }
            }
        }
    }
    let passwd = image_file(root, "/etc/passwd");
    let group = image_file(root, "/etc/group");
    let user_spec = match run_as_user {
        Some(uid) => id(uid, "runAsUser")?.to_string(),
        None => image_user,
    };
    let mut run_as = resolve_user(&user_spec, passwd.as_deref(), group.as_deref())
        .map_err(|message| (StartFailure::Runtime, message))?;
    if let Some(gid) = run_as_group {
        run_as.gid = id(gid, "runAsGroup")?;
    }
    Ok(run_as)
}

/// The longest a container's root may take to be assembled before it counts as started.
const ROOT_ASSEMBLY_DEADLINE: Duration = Duration::from_secs(30);

/// Waits until the container's root is assembled (its script leaves `marker`), the process
/// ends, or [`ROOT_ASSEMBLY_DEADLINE`] passes.
async fn wait_for_root(marker: &Path, process: &ContainerProcess) {
    let deadline = deadline::after(Instant::now(), ROOT_ASSEMBLY_DEADLINE);
    let mut done = process.done.clone();
    let mut ticks = tokio::time::interval(Duration::from_millis(10));
    loop {
        if marker.exists() || done.borrow().is_some() {
            return;
        }
        tokio::select! {
            _ = ticks.tick() => {}
            changed = done.changed() => if changed.is_err() { return; },
            _ = tokio::time::sleep_until(deadline) => return,
        }
    }
}

/// What [`start_oci`] needs, owned so that it can move to a blocking thread.
struct OciStart {
    runtime: Arc<dyn skiff_oci::OciRuntime>,
    pod: Arc<Pod>,
    container: Container,
    container_dir: PathBuf,
    image: ImageRoot,
    command: Vec<String>,
    env: Vec<(String, String)>,
    exec_root: ExecRoot,
    mounts: Vec<sandbox::Mount>,
    netns: Option<PathBuf>,
    pid_namespace: Option<PathBuf>,
    cgroups_path: Option<String>,
    managed_cgroup_dirs: Vec<PathBuf>,
    log_path: PathBuf,
    log_cap: u64,
}

/// Creates and starts a run as an OCI container, in the root, `/etc` files and cgroup the
/// process path prepared, off the async threads.
async fn start_oci(start: OciStart) -> std::io::Result<ContainerProcess> {
    let uid = start.pod.metadata.uid.clone().unwrap_or_default();
    let id =
        super::oci::container_id(&uid, &start.container.name).map_err(std::io::Error::other)?;
    let handle = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || {
        // The launch spawns the log copiers and the waiter on the agent's runtime.
        let _entered = handle.enter();
        let hostname = pod_hostname(&start.pod, &HostFiles::read());
        super::oci::launch(
            super::oci::OciRun {
                runtime: start.runtime.clone(),
                pod: &start.pod,
                container: &start.container,
                container_dir: &start.container_dir,
                image: &start.image,
                command: start.command.clone(),
                env: start.env.clone(),
                working_dir: &start.exec_root.working_dir,
                run_as: start.exec_root.run_as,
                mounts: &start.mounts,
                hostname: &hostname,
                netns: start.netns.as_deref(),
                pid_namespace: start.pid_namespace.as_deref(),
                cgroups_path: start.cgroups_path.clone(),
                managed_cgroup_dirs: start.managed_cgroup_dirs.clone(),
                log_path: &start.log_path,
                log_cap: start.log_cap,
            },
            id,
        )
        .map_err(std::io::Error::other)
    })
    .await
    .map_err(std::io::Error::other)?
}

/// Gives the container a new cgroup under its pod's (what an earlier run left is killed and
/// removed, so its OOM count starts at zero) with its own limits, and returns the files its
/// process writes to join it.
fn fresh_container_cgroup(
    cgroups: &skiff_cgroups::PodCgroups,
    pod: &skiff_cgroups::PodCgroup,
    container: &Container,
) -> Result<Vec<PathBuf>, String> {
    let failed = |e: &dyn std::fmt::Display| format!("creating the container's cgroup: {e}");
    let path = cgroups
        .container_path(pod, &container.name)
        .map_err(|e| failed(&e))?;
    cgroups.remove_container(&path).map_err(|e| failed(&e))?;
    cgroups
        .create_container(pod, &container.name, container)
        .map_err(|e| failed(&e))?;
    Ok(cgroups.driver().procs_files(&path))
}

/// Kills what is left in pod `uid`'s cgroup and removes it, wherever its class put it.
pub(crate) fn remove_pod_cgroup(
    cgroups: &skiff_cgroups::PodCgroups,
    uid: &str,
) -> Result<(), String> {
    match cgroups.find_pod(uid) {
        Ok(Some((_, path))) => cgroups.remove_pod(&path).map_err(|e| e.to_string()),
        Ok(None) => Ok(()),
        Err(e) => Err(e.to_string()),
    }
}

/// `argv` run inside the pod's network namespace (pinned at `netns`), through `nsenter`.
fn in_network_namespace(nsenter: &Path, netns: &Path, argv: Vec<String>) -> Vec<String> {
    let mut wrapped = vec![
        nsenter.to_string_lossy().into_owned(),
        format!("--net={}", netns.to_string_lossy()),
        "--".to_string(),
    ];
    wrapped.extend(argv);
    wrapped
}

/// A container on the host's filesystem (the transitional aliases and imported directories):
/// in its own mount and UTS namespaces with a private `/tmp` when isolated.
fn host_launch(
    command: Vec<String>,
    container_dir: &Path,
    mounts: &[sandbox::Mount],
    pod_name: &str,
    working_dir: Option<String>,
    unshare: Option<&Path>,
) -> Result<Launch, String> {
    let private_tmp = container_dir.join("tmp");
    std::fs::create_dir_all(&private_tmp)
        .map_err(|e| format!("creating the container directory: {e}"))?;
    Ok(match unshare {
        Some(unshare) => {
            let mut argv = isolated_argv(
                &command,
                mounts,
                &private_tmp,
                pod_name,
                working_dir.as_deref(),
            );
            argv[0] = unshare.to_string_lossy().into_owned();
            (argv, container_dir.to_path_buf(), None, None)
        }
        None => {
            let cwd = working_dir
                .map(PathBuf::from)
                .filter(|d| d.is_dir())
                .unwrap_or_else(|| container_dir.to_path_buf());
            (command, cwd, None, None)
        }
    })
}

/// A container whose root is its image, assembled in its own mount namespace.
#[allow(clippy::too_many_arguments)]
fn rooted_launch(
    command: Vec<String>,
    root: &ImageRoot,
    container_dir: &Path,
    mounts: &[sandbox::Mount],
    pod: &Pod,
    pod_ip: &str,
    working_dir: Option<&str>,
    unshare: &Path,
    run_as: RunAs,
    cluster_dns: Option<&super::ClusterDnsSettings>,
) -> Result<Launch, String> {
    let dirs = RunDirs::under(container_dir);
    dirs.prepare()
        .map_err(|e| format!("preparing the container's root: {e}"))?;
    let host = HostFiles::read();
    let hostname = pod_hostname(pod, &host);
    let mut etc = EtcFiles::for_pod(pod, pod_ip, &host);
    if let Some(dns) = cluster_dns {
        etc.resolv_conf = super::rootfs::pod_resolv_conf(pod, &host, dns);
    }
    etc.write(&dirs.etc)
        .map_err(|e| format!("writing the container's /etc files: {e}"))?;
    let working_dir = working_dir.unwrap_or("/");
    let argv = rooted_argv(
        &RootedRun {
            unshare,
            image: root,
            dirs: &dirs,
            mounts,
            hostname: &hostname,
            working_dir,
            run_as,
        },
        &command,
    );
    let exec_root = ExecRoot {
        root: dirs.root.clone(),
        working_dir: working_dir.to_string(),
        run_as,
        oci: None,
    };
    Ok((argv, container_dir.to_path_buf(), None, Some(exec_root)))
}

/// A container run from its image's merged tree without a root of its own (no isolation):
/// the program is found inside the tree, volumes are not mounted.
fn merged_launch(
    mut command: Vec<String>,
    root: &ImageRoot,
    container_dir: &Path,
    working_dir: Option<String>,
    env: &super::command::Environment,
) -> Result<Launch, String> {
    let ImageRoot::Merged(tree) = root else {
        return Err(
            "the image's layers can only be stacked with isolation (root and unshare)".to_string(),
        );
    };
    let name = command.first().cloned().unwrap_or_default();
    let path = env.get("PATH").unwrap_or_else(|| DEFAULT_PATH.to_string());
    let program = find_program(tree, &name, &path).ok_or_else(|| {
        format!(
            "failed to create containerd task: exec: \"{name}\": executable file not found in $PATH"
        )
    })?;
    command[0] = program.to_string_lossy().into_owned();
    let cwd = working_dir
        .and_then(|d| resolve_in_root(tree, &d))
        .filter(|d| d.is_dir())
        .unwrap_or_else(|| tree.clone());
    std::fs::create_dir_all(container_dir)
        .map_err(|e| format!("creating the container directory: {e}"))?;
    Ok((command, cwd, Some(name), None))
}

/// Runs commands with the container's environment, inside its namespaces (through
/// `nsenter` into the group leader's) when containers are isolated, and inside its image's
/// root and working directory when it runs from one.
fn make_exec(
    isolation: Option<(PathBuf, PathBuf)>,
    env: Vec<(String, String)>,
    cwd: PathBuf,
    pgid: Option<i32>,
    root: Option<ExecRoot>,
) -> ExecFn {
    if let Some((container, root)) = root.as_ref().and_then(|r| Some((r.oci.clone()?, r))) {
        return super::oci::exec_fn(container, env, root.working_dir.clone());
    }
    Arc::new(move |command: Vec<String>, timeout: Duration| {
        let argv = enter_argv(&isolation, pgid, &root, command);
        let env = env.clone();
        let cwd = cwd.clone();
        Box::pin(async move { process::run_to_completion(&argv, &env, &cwd, timeout).await })
    })
}

/// The argv that runs `command` inside a container run: through `nsenter` into the group
/// leader's namespaces (and `unshare` into its image root) when containers are isolated.
fn enter_argv(
    isolation: &Option<(PathBuf, PathBuf)>,
    pgid: Option<i32>,
    root: &Option<ExecRoot>,
    command: Vec<String>,
) -> Vec<String> {
    match (isolation, pgid) {
        (Some((unshare, nsenter)), Some(pid)) => {
            let mut argv = vec![
                nsenter.to_string_lossy().into_owned(),
                "-t".to_string(),
                pid.to_string(),
                "-m".to_string(),
                "-u".to_string(),
                // The container's network namespace: the pod's own, or the host's.
                "-n".to_string(),
            ];
            match root {
                // The root's mount point is resolved inside the container's namespace,
                // where the image is mounted on it.
                Some(root) => {
                    argv.extend([
                        "--".to_string(),
                        unshare.to_string_lossy().into_owned(),
                        format!("--root={}", root.root.to_string_lossy()),
                        format!("--wd={}", root.working_dir),
                    ]);
                    argv.extend(root.run_as.unshare_options());
                }
                None => argv.push("-w".to_string()),
            }
            argv.push("--".to_string());
            argv.extend(command);
            argv
        }
        _ => command,
    }
}

/// The argv entering a container an OCI runtime made, whose PID 1 is `pid`: every namespace
/// of it (PID included, so the command ends with it), its root and working directory there,
/// and its user; the runtime has pivoted into the image, so no host path leads there.
fn enter_runtime_container_argv(
    nsenter: &Path,
    pid: i32,
    root: &ExecRoot,
    command: Vec<String>,
) -> Vec<String> {
    let mut argv = vec![
        nsenter.to_string_lossy().into_owned(),
        "-t".to_string(),
        pid.to_string(),
        "-m".to_string(),
        "-u".to_string(),
        "-i".to_string(),
        "-n".to_string(),
        "-p".to_string(),
        "-r".to_string(),
        format!("--wdns={}", root.working_dir),
    ];
    argv.extend(root.run_as.unshare_options());
    argv.push("--".to_string());
    argv.extend(command);
    argv
}

/// Where `kubectl exec` runs commands for a container run: where its exec probes run.
fn exec_place(
    isolation: &Option<(PathBuf, PathBuf)>,
    process: &ContainerProcess,
    env: &[(String, String)],
    cwd: &Path,
    root: &Option<ExecRoot>,
) -> super::streams::ExecPlace {
    let (isolation, root, pgid) = (isolation.clone(), root.clone(), process.pgid);
    let through_runtime = root.as_ref().is_some_and(|r| r.oci.is_some());
    let oci = root.as_ref().and_then(|root| {
        Some(super::streams::OciExec {
            container: root.oci.clone()?,
            env: env.iter().map(|(k, v)| format!("{k}={v}")).collect(),
            cwd: root.working_dir.clone(),
        })
    });
    super::streams::ExecPlace {
        oci,
        pgid,
        attach: process.attach.clone(),
        env: env.to_vec(),
        cwd: cwd.to_path_buf(),
        enter: Arc::new(move |command| match (&isolation, &root) {
            (Some((_, nsenter)), Some(root)) if through_runtime => {
                enter_runtime_container_argv(nsenter, pgid, root, command)
            }
            _ => enter_argv(&isolation, Some(pgid), &root, command),
        }),
        join_group: !through_runtime,
    }
}

/// Pod conditions carry `lastProbeTime: null` in Kubernetes' JSON; typed conditions drop it.
fn spell_out_probe_times(pod: &mut Value) {
    if let Some(conditions) = pod
        .pointer_mut("/status/conditions")
        .and_then(Value::as_array_mut)
    {
        for condition in conditions {
            if let Some(map) = condition.as_object_mut() {
                map.entry("lastProbeTime").or_insert(Value::Null);
            }
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Where `unshare` and `nsenter` are, if both are installed.
pub(crate) fn isolation_tools() -> Option<(PathBuf, PathBuf)> {
    let find = |name: &str| {
        ["/usr/bin", "/bin", "/usr/sbin", "/sbin"]
            .iter()
            .map(|d| Path::new(d).join(name))
            .find(|p| p.is_file())
    };
    Some((find("unshare")?, find("nsenter")?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[test]
    fn exec_into_a_runtime_container_enters_every_namespace_its_root_and_its_user() {
        let root = ExecRoot {
            root: PathBuf::from("/host/path/rootfs"),
            working_dir: "/srv".into(),
            run_as: RunAs {
                uid: 1000,
                gid: 2000,
            },
            oci: None,
        };
        let argv = enter_runtime_container_argv(
            Path::new("/usr/bin/nsenter"),
            4242,
            &root,
            vec!["cat".into(), "/etc/resolv.conf".into()],
        );
        assert_eq!(
            argv,
            [
                "/usr/bin/nsenter",
                "-t",
                "4242",
                "-m",
                "-u",
                "-i",
                "-n",
                "-p",
                "-r",
                "--wdns=/srv",
                "--setgid=2000",
                "--setuid=1000",
                "--",
                "cat",
                "/etc/resolv.conf"
            ],
            "the host's path to the root means nothing once the runtime pivoted into it"
        );
    }

    #[test]
    fn pod_network_commands_enter_the_pinned_namespace_first() {
        let argv = in_network_namespace(
            Path::new("/usr/bin/nsenter"),
            Path::new("/run/skiff/netns/u1"),
            vec![
                "/usr/bin/unshare".into(),
                "--mount".into(),
                "--".into(),
                "sh".into(),
            ],
        );
        assert_eq!(
            argv,
            [
                "/usr/bin/nsenter",
                "--net=/run/skiff/netns/u1",
                "--",
                "/usr/bin/unshare",
                "--mount",
                "--",
                "sh"
            ]
        );
    }

    #[test]
    fn the_user_comes_from_the_security_context_else_the_image() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("etc")).unwrap();
        std::fs::write(
            dir.path().join("etc/passwd"),
            "root:x:0:0::/root:/bin/sh\nweb:x:101:102::/srv:/bin/sh\n",
        )
        .unwrap();
        let root = ImageRoot::Merged(dir.path().to_path_buf());
        let image = |user: Option<&str>| super::super::runtime::ResolvedImage {
            user: user.map(str::to_string),
            ..Default::default()
        };
        let pod =
            |pod_context: serde_json::Value, context: serde_json::Value| -> (Pod, Container) {
                let pod: Pod = serde_json::from_value(serde_json::json!({
                    "metadata": {"name": "p", "namespace": "ns", "uid": "u1"},
                    "spec": {"securityContext": pod_context,
                        "containers": [{"name": "c", "securityContext": context}]},
                }))
                .unwrap();
                let container = pod.spec.as_ref().unwrap().containers[0].clone();
                (pod, container)
            };
        let run = |pod_context, context, user: Option<&str>| {
            let (p, c) = pod(pod_context, context);
            container_user(&p, &c, &image(user), &root)
        };
        let none = serde_json::json!({});
        assert_eq!(
            run(none.clone(), none.clone(), None),
            Ok(RunAs { uid: 0, gid: 0 })
        );
        assert_eq!(
            run(none.clone(), none.clone(), Some("web")),
            Ok(RunAs { uid: 101, gid: 102 })
        );
        assert_eq!(
            run(
                serde_json::json!({"runAsUser": 2000, "runAsGroup": 3000}),
                none.clone(),
                Some("web")
            ),
            Ok(RunAs {
                uid: 2000,
                gid: 3000
            })
        );
        assert_eq!(
            run(
                serde_json::json!({"runAsUser": 2000}),
                serde_json::json!({"runAsUser": 101}),
                None
            ),
            Ok(RunAs { uid: 101, gid: 102 }),
            "the container's context wins, and the image's passwd gives the group"
        );
        let non_root = serde_json::json!({"runAsNonRoot": true});
        assert_eq!(
            run(non_root.clone(), none.clone(), None),
            Err((
                StartFailure::Config,
                "container has runAsNonRoot and image will run as root (pod: \"p_ns(u1)\", container: c)".to_string()
            ))
        );
        assert_eq!(
            run(non_root.clone(), none.clone(), Some("web")),
            Err((
                StartFailure::Config,
                "container has runAsNonRoot and image has non-numeric user (web), cannot verify user is non-root (pod: \"p_ns(u1)\", container: c)".to_string()
            ))
        );
        assert_eq!(
            run(non_root, none.clone(), Some("101")),
            Ok(RunAs { uid: 101, gid: 102 })
        );
        assert_eq!(
            run(
                none,
                serde_json::json!({"runAsUser": 0, "runAsNonRoot": true}),
                None
            ),
            Err((
                StartFailure::Config,
                "container's runAsUser breaks non-root policy (pod: \"p_ns(u1)\", container: c)"
                    .to_string()
            ))
        );
    }

    #[test]
    fn without_isolation_the_program_and_working_directory_come_from_the_merged_tree() {
        let dir = tempfile::tempdir().unwrap();
        let tree = dir.path().join("merged");
        std::fs::create_dir_all(tree.join("bin")).unwrap();
        std::fs::create_dir_all(tree.join("srv")).unwrap();
        std::fs::write(tree.join("bin/busybox"), b"#!").unwrap();
        std::os::unix::fs::symlink("/bin/busybox", tree.join("bin/hello")).unwrap();
        let mut env = super::super::command::Environment::default();
        env.set("PATH", "/usr/bin:/bin".to_string());
        let container_dir = dir.path().join("containers/c");
        let (argv, cwd, arg0, root) = merged_launch(
            vec!["hello".into(), "world".into()],
            &ImageRoot::Merged(tree.clone()),
            &container_dir,
            Some("/srv".into()),
            &env,
        )
        .unwrap();
        assert_eq!(
            argv,
            vec![
                tree.join("bin/busybox").to_string_lossy().into_owned(),
                "world".into()
            ]
        );
        assert_eq!(
            arg0.as_deref(),
            Some("hello"),
            "busybox dispatches on argv[0]"
        );
        assert_eq!(cwd, tree.join("srv"));
        assert!(root.is_none());
        let missing = merged_launch(
            vec!["absent".into()],
            &ImageRoot::Merged(tree.clone()),
            &container_dir,
            None,
            &env,
        )
        .unwrap_err();
        assert!(
            missing.contains("\"absent\": executable file not found in $PATH"),
            "{missing}"
        );
        let layered = merged_launch(
            vec!["hello".into()],
            &ImageRoot::Overlay(vec![tree]),
            &container_dir,
            None,
            &env,
        );
        assert!(
            layered.is_err(),
            "layers cannot be stacked without isolation"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_worker_that_panics_is_started_again_after_a_doubling_back_off() {
        let began = Instant::now();
        let attempts: Arc<Mutex<Vec<(u32, Duration)>>> = Arc::default();
        supervise(
            "uid-1",
            (Duration::from_millis(500), Duration::from_millis(800)),
            |restarts| {
                let attempts = attempts.clone();
                async move {
                    attempts
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push((restarts, began.elapsed()));
                    if restarts < 3 {
                        panic!("worker bug number {restarts}");
                    }
                }
            },
        )
        .await;
        let attempts = attempts.lock().unwrap_or_else(|e| e.into_inner()).clone();
        assert_eq!(
            attempts,
            vec![
                (0, Duration::ZERO),
                (1, Duration::from_millis(500)),
                (2, Duration::from_millis(1300)),
                (3, Duration::from_millis(2100)),
            ]
        );
    }
}
