//! Resource usage of the real node's pods and of the node itself, for `metrics.k8s.io`.
//!
//! Like metrics-server over kubelet, a sampler reads every running container's cumulative CPU
//! time and memory once per resolution and keeps the last two readings ([`window::Window`]); a
//! pod is reported once each of its running containers has two, with the mean CPU rate between
//! them. A container with a cgroup of its own (the `oci` runtime) is measured from it, as
//! cAdvisor does: CPU time used and the working set; one without (the `process` runtime) is
//! its process group measured from `/proc` ([`procfs`]). The node is measured from
//! `/proc/stat` and `/proc/meminfo`.
//!
//! The agent tells [`ContainerProcesses`] which process group runs which container; the
//! sampler runs until the [`RealNodeMetrics`] it feeds is dropped.

pub mod procfs;
pub mod window;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use async_trait::async_trait;
use skiff_client::metrics::{ContainerUsage, NodeUsage, PodUsage, ResourceMetrics};

use window::{Sample, Window};

/// How often usage is sampled by default. metrics-server's `--metric-resolution` is 15 s;
/// a shorter default makes `kubectl top` and the autoscaler react sooner on a laptop.
pub const DEFAULT_RESOLUTION: Duration = Duration::from_secs(5);

/// One running container as the sampler needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunningContainer {
    /// The pod's UID: containers of a pod that was recreated under the same name stay apart.
    pub pod_uid: String,
    /// The pod's namespace.
    pub namespace: String,
    /// The pod's name.
    pub pod: String,
    /// The container's name.
    pub container: String,
    /// The process group running the container.
    pub pgid: i32,
    /// The container's own cgroup, measured instead of its process group when
    /// [`ContainerProcesses::measure_cgroups_with`] was given the pod cgroups.
    pub cgroup: Option<skiff_cgroups::CgroupPath>,
}

/// Which process group runs which container right now; the agent's workers keep it current.
#[derive(Clone, Debug, Default)]
pub struct ContainerProcesses {
    running: Arc<Mutex<HashMap<(String, String), RunningContainer>>>,
    cgroups: Arc<std::sync::OnceLock<Arc<skiff_cgroups::PodCgroups>>>,
}

impl ContainerProcesses {
    /// Measures containers that have a cgroup through `cgroups` from now on (set once, when
    /// the agent has created them).
    pub fn measure_cgroups_with(&self, cgroups: Arc<skiff_cgroups::PodCgroups>) {
        let _ = self.cgroups.set(cgroups);
    }

    /// Records a container run that just started (replacing its earlier run).
    pub fn started(&self, container: RunningContainer) {
        if let Ok(mut running) = self.running.lock() {
            let key = (container.pod_uid.clone(), container.container.clone());
            running.insert(key, container);
        }
    }

    /// Forgets a container run whose processes are gone; a newer run of the same container is
    /// kept.
    pub fn exited(&self, pod_uid: &str, container: &str, pgid: i32) {
        if let Ok(mut running) = self.running.lock() {
            let key = (pod_uid.to_string(), container.to_string());
            if running.get(&key).is_some_and(|c| c.pgid == pgid) {
                running.remove(&key);
            }
        }
    }

    /// Every running container.
    pub fn snapshot(&self) -> Vec<RunningContainer> {
        self.running
            .lock()
            .map(|running| running.values().cloned().collect())
            .unwrap_or_default()
    }
}

/// Something sampled on an interval by [`spawn_sampler`].
pub(crate) trait Sampler: Send + Sync + 'static {
    /// Takes one sample; may block briefly on file reads.
    fn sample(&self);
}

/// Samples `source` now and then every `resolution`, on a blocking thread, until every other
/// reference to it is dropped.
pub(crate) fn spawn_sampler<T: Sampler>(source: &Arc<T>, resolution: Duration) {
    let weak = Arc::downgrade(source);
    let resolution = resolution.max(Duration::from_millis(100));
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(resolution);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            let Some(source) = weak.upgrade() else {
                break;
            };
            if tokio::task::spawn_blocking(move || source.sample())
                .await
                .is_err()
            {
                tracing::warn!("a metrics sample failed");
            }
        }
    });
}

/// A container's window, with the process group it measures (a new group starts over).
#[derive(Debug)]
struct TrackedContainer {
    pgid: i32,
    window: Window,
}

#[derive(Debug, Default)]
struct RealState {
    containers: HashMap<(String, String), TrackedContainer>,
    node: Window,
}

/// Usage of this machine's node and its pods, measured from `/proc`.
pub struct RealNodeMetrics {
    node_name: String,
    processes: ContainerProcesses,
    proc_root: PathBuf,
    ns_per_tick: u64,
    state: Mutex<RealState>,
}

impl RealNodeMetrics {
    /// A source for node `node_name` over the containers `processes` names, reading
    /// `proc_root` (normally `/proc`). Nothing is sampled until [`RealNodeMetrics::start`] or
    /// [`RealNodeMetrics::sample_now`].
    pub fn new(
        node_name: &str,
        processes: ContainerProcesses,
        proc_root: PathBuf,
    ) -> RealNodeMetrics {
        RealNodeMetrics {
            node_name: node_name.to_string(),
            processes,
            proc_root,
            ns_per_tick: 1_000_000_000 / procfs::clock_ticks_per_second().max(1),
            state: Mutex::new(RealState::default()),
        }
    }

    /// Starts sampling every `resolution` (needs a Tokio runtime); sampling stops when the
    /// returned source is dropped.
    pub fn start(
        node_name: &str,
        processes: ContainerProcesses,
        resolution: Duration,
    ) -> Arc<RealNodeMetrics> {
        let source = Arc::new(RealNodeMetrics::new(
            node_name,
            processes,
            PathBuf::from("/proc"),
        ));
        spawn_sampler(&source, resolution);
        source
    }

    /// Takes one sample of every running container and of the node.
    pub fn sample_now(&self) {
        let running = self.processes.snapshot();
        let cgroups = self.processes.cgroups.get().cloned();
        // Containers with a cgroup are read from it; the others from their process groups.
        let from_cgroup = |c: &RunningContainer| -> Option<(u64, u64)> {
            let usage = cgroups.as_ref()?.usage(c.cgroup.as_ref()?).ok()?;
            Some((usage.cpu_usage_ns, usage.memory_working_set_bytes))
        };
        let cgroup_usage: HashMap<(String, String), (u64, u64)> = running
            .iter()
            .filter_map(|c| {
                from_cgroup(c).map(|usage| ((c.pod_uid.clone(), c.container.clone()), usage))
            })
            .collect();
        let groups: Vec<i32> = running
            .iter()
            .filter(|c| !cgroup_usage.contains_key(&(c.pod_uid.clone(), c.container.clone())))
            .map(|c| c.pgid)
            .collect();
        let totals = procfs::group_totals(&self.proc_root, &groups);
        let machine = procfs::machine_totals(&self.proc_root);
        let at = SystemTime::now();
        let taken = Instant::now();
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        let mut seen = HashSet::new();
        for container in &running {
            let key = (container.pod_uid.clone(), container.container.clone());
            seen.insert(key.clone());
            let measured = match cgroup_usage.get(&key) {
                Some(&usage) => usage,
                None => match totals.get(&container.pgid) {
                    Some(group) => (
                        group.cpu_ticks.saturating_mul(self.ns_per_tick),
                        group.rss_bytes,
                    ),
                    None => continue,
                },
            };
            let tracked = state
                .containers
                .entry(key)
                .or_insert_with(|| TrackedContainer {
                    pgid: container.pgid,
                    window: Window::new(),
                });
            if tracked.pgid != container.pgid {
                tracked.pgid = container.pgid;
                tracked.window = Window::new();
            }
            tracked.window.push(Sample {
                at,
                taken,
                cpu_time_ns: measured.0,
                memory_bytes: measured.1,
            });
        }
        state.containers.retain(|key, _| seen.contains(key));
        if let Some((busy_ticks, memory_bytes)) = machine {
            state.node.push(Sample {
                at,
                taken,
                cpu_time_ns: busy_ticks.saturating_mul(self.ns_per_tick),
                memory_bytes,
            });
        }
    }
}

impl Sampler for RealNodeMetrics {
    fn sample(&self) {
        self.sample_now();
    }
}

/// A pod under assembly: its identity and its containers' usage so far.
struct PodParts {
    namespace: String,
    name: String,
    containers: Vec<ContainerUsage>,
    latest: Option<(SystemTime, Duration)>,
    complete: bool,
}

#[async_trait]
impl ResourceMetrics for RealNodeMetrics {
    async fn pods(&self) -> Vec<PodUsage> {
        let running = self.processes.snapshot();
        let Ok(state) = self.state.lock() else {
            return Vec::new();
        };
        let mut pods: BTreeMap<String, PodParts> = BTreeMap::new();
        for container in running {
            let parts = pods
                .entry(container.pod_uid.clone())
                .or_insert_with(|| PodParts {
                    namespace: container.namespace.clone(),
                    name: container.pod.clone(),
                    containers: Vec::new(),
                    latest: None,
                    complete: true,
                });
            let usage = state
                .containers
                .get(&(container.pod_uid.clone(), container.container.clone()))
                .filter(|t| t.pgid == container.pgid)
                .and_then(|t| t.window.usage());
            let Some(usage) = usage else {
                // metrics-server reports a pod only once all its containers have a window.
                parts.complete = false;
                continue;
            };
            if parts.latest.is_none_or(|(at, _)| usage.timestamp > at) {
                parts.latest = Some((usage.timestamp, usage.window));
            }
            parts.containers.push(ContainerUsage {
                name: container.container,
                cpu_nanocores: usage.cpu_nanocores,
                memory_bytes: usage.memory_bytes,
            });
        }
        pods.into_values()
            .filter(|p| p.complete)
            .filter_map(|mut p| {
                let (timestamp, window) = p.latest?;
                p.containers.sort_by(|a, b| a.name.cmp(&b.name));
                Some(PodUsage {
                    namespace: p.namespace,
                    name: p.name,
                    timestamp,
                    window,
                    containers: p.containers,
                })
            })
            .collect()
    }

    async fn nodes(&self) -> Vec<NodeUsage> {
        let Ok(state) = self.state.lock() else {
            return Vec::new();
        };
        state
            .node
            .usage()
            .map(|usage| NodeUsage {
                name: self.node_name.clone(),
                timestamp: usage.timestamp,
                window: usage.window,
                cpu_nanocores: usage.cpu_nanocores,
                memory_bytes: usage.memory_bytes,
            })
            .into_iter()
            .collect()
    }
}

#[cfg(test)]
mod tests;
