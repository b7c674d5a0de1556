//! Pod and container cgroups over any driver: what the node agent and the container runtime
//! call. It computes each cgroup's place and limits with the pure modules and leaves the
//! file work to the [`CgroupDriver`].

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, PodSpec};

use crate::driver::{CgroupDriver, CgroupError, CgroupUsage};
use crate::layout::{CgroupLayout, CgroupPath, NameError};
use crate::qos::QosClass;
use crate::resources::{
    container_limits, node_allocatable_limits, pod_resource_config, tier_limits, CgroupLimits,
    NodeAllocatable,
};

/// How long removing a pod waits for its killed processes to be gone, unless told otherwise.
pub const DEFAULT_KILL_WAIT: Duration = Duration::from_secs(10);

/// A pod's cgroup: where it is and what it was given.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodCgroup {
    /// The pod's UID.
    pub uid: String,
    /// Its QoS class, which placed it.
    pub qos: QosClass,
    /// Its cgroup.
    pub path: CgroupPath,
    /// The limits written to it.
    pub limits: CgroupLimits,
}

/// A pod cgroup found on the node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExistingPod {
    /// The tier it is in.
    pub qos: QosClass,
    /// The pod UID its name carries.
    pub uid: String,
    /// The cgroup.
    pub path: CgroupPath,
}

/// Pod and container cgroups under one layout, through one driver.
#[derive(Clone)]
pub struct PodCgroups {
    driver: Arc<dyn CgroupDriver>,
    layout: CgroupLayout,
    kill_wait: Duration,
    pod_pids_limit: Option<u64>,
}

impl std::fmt::Debug for PodCgroups {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PodCgroups")
            .field("version", &self.driver.version())
            .field("layout", &self.layout)
            .field("kill_wait", &self.kill_wait)
            .field("pod_pids_limit", &self.pod_pids_limit)
            .finish()
    }
}

impl PodCgroups {
    /// Pod cgroups laid out by `layout`, made by `driver`.
    pub fn new(driver: Arc<dyn CgroupDriver>, layout: CgroupLayout) -> PodCgroups {
        PodCgroups {
            driver,
            layout,
            kill_wait: DEFAULT_KILL_WAIT,
            pod_pids_limit: None,
        }
    }

    /// Sets how long removals wait for killed processes to be gone.
    pub fn with_kill_wait(mut self, wait: Duration) -> PodCgroups {
        self.kill_wait = wait;
        self
    }

    /// Limits every pod to this many processes, as the kubelet's `podPidsLimit`.
    pub fn with_pod_pids_limit(mut self, limit: Option<u64>) -> PodCgroups {
        self.pod_pids_limit = limit;
        self
    }

    /// The driver, for reading usage or moving processes directly.
    pub fn driver(&self) -> &dyn CgroupDriver {
        self.driver.as_ref()
    }

    /// The layout.
    pub fn layout(&self) -> &CgroupLayout {
        &self.layout
    }

    /// Creates `kubepods` (limited to `allocatable` when given) and the two QoS tiers, shared
    /// out for `pods`, the pods the node runs. Called at start and again when pods come or go.
    pub fn ensure_node<'a>(
        &self,
        allocatable: Option<NodeAllocatable>,
        pods: impl IntoIterator<Item = &'a PodSpec>,
    ) -> Result<(), CgroupError> {
        let kubepods = allocatable.map(node_allocatable_limits).unwrap_or_default();
        self.driver.create(&self.layout.kubepods(), &kubepods)?;
        let tiers = tier_limits(pods);
        self.driver
            .create(&self.layout.tier(QosClass::Burstable), &tiers.burstable)?;
        self.driver
            .create(&self.layout.tier(QosClass::BestEffort), &tiers.besteffort)
    }

    /// Where a pod's cgroup goes and what it gets, without touching anything.
    pub fn plan_pod(&self, uid: &str, spec: &PodSpec) -> Result<PodCgroup, NameError> {
        let config = pod_resource_config(spec);
        let mut limits = config.limits;
        limits.pids_max = self.pod_pids_limit;
        Ok(PodCgroup {
            uid: uid.to_string(),
            qos: config.qos,
            path: self.layout.pod(config.qos, uid)?,
            limits,
        })
    }

    /// Creates (or updates) a pod's cgroup.
    pub fn create_pod(&self, uid: &str, spec: &PodSpec) -> Result<PodCgroup, CgroupError> {
        let pod = self.plan_pod(uid, spec)?;
        self.driver.create(&pod.path, &pod.limits)?;
        Ok(pod)
    }

    /// A container's cgroup below its pod's, for an OCI runtime's `cgroupsPath`
    /// ([`CgroupPath::runtime_path`]) when the runtime creates it itself.
    pub fn container_path(
        &self,
        pod: &PodCgroup,
        container_id: &str,
    ) -> Result<CgroupPath, NameError> {
        self.layout.container(&pod.path, container_id)
    }

    /// Creates (or updates) a container's cgroup with its own limits.
    pub fn create_container(
        &self,
        pod: &PodCgroup,
        container_id: &str,
        container: &Container,
    ) -> Result<CgroupPath, CgroupError> {
        let path = self.container_path(pod, container_id)?;
        self.driver.create(&path, &container_limits(container))?;
        Ok(path)
    }

    /// Kills what is left in a container's cgroup and removes it; gone already is fine.
    pub fn remove_container(&self, path: &CgroupPath) -> Result<(), CgroupError> {
        self.driver.kill_all(path, self.kill_wait)?;
        self.driver.remove(path)
    }

    /// Kills every process of the pod and removes its containers' cgroups, then its own;
    /// gone already is fine.
    pub fn remove_pod(&self, pod: &CgroupPath) -> Result<(), CgroupError> {
        self.driver.kill_all(pod, self.kill_wait)?;
        self.driver.remove(pod)
    }

    /// Every pod cgroup that exists under the layout, for removing those of pods the node no
    /// longer runs (the kubelet's orphaned pod cgroup clean-up).
    pub fn existing_pods(&self) -> Result<Vec<ExistingPod>, CgroupError> {
        let mut pods = Vec::new();
        for qos in [
            QosClass::Guaranteed,
            QosClass::Burstable,
            QosClass::BestEffort,
        ] {
            let tier = self.layout.tier(qos);
            for name in self.driver.children(&tier)? {
                let Some(uid) = name.strip_prefix("pod").filter(|uid| !uid.is_empty()) else {
                    // The other tiers under `kubepods`, or something not ours.
                    continue;
                };
                pods.push(ExistingPod {
                    qos,
                    uid: uid.to_string(),
                    path: tier.join(&name)?,
                });
            }
        }
        Ok(pods)
    }

    /// The existing cgroup of the pod with this UID, in whichever tier it is (its class
    /// cannot change, but after a restart the agent may only know the UID).
    pub fn find_pod(&self, uid: &str) -> Result<Option<(QosClass, CgroupPath)>, NameError> {
        for qos in [
            QosClass::Guaranteed,
            QosClass::Burstable,
            QosClass::BestEffort,
        ] {
            let path = self.layout.pod(qos, uid)?;
            if self.driver.exists(&path) {
                return Ok(Some((qos, path)));
            }
        }
        Ok(None)
    }

    /// What a pod (or container) cgroup has used.
    pub fn usage(&self, path: &CgroupPath) -> Result<CgroupUsage, CgroupError> {
        self.driver.usage(path)
    }

    /// How many of its processes the OOM killer killed.
    pub fn oom_kills(&self, path: &CgroupPath) -> Result<u64, CgroupError> {
        self.driver.oom_kills(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::driver::CgroupVersion;
    use crate::fake::{DriverCall, RecordingDriver};
    use crate::resources::tests::{container, pod};
    use crate::resources::{CpuQuota, MIN_SHARES, QUOTA_PERIOD_US};

    fn manager() -> (Arc<RecordingDriver>, PodCgroups) {
        let fake = Arc::new(RecordingDriver::new(CgroupVersion::V1));
        let cgroups = PodCgroups::new(fake.clone(), CgroupLayout::new("skiff").unwrap());
        (fake, cgroups)
    }

    fn path(p: &str) -> CgroupPath {
        CgroupPath::parse(p).unwrap()
    }

    #[test]
    fn a_pod_and_its_container_get_their_places_and_limits() {
        let (fake, cgroups) = manager();
        let spec = pod(vec![container(("100m", "16Mi"), ("200m", "32Mi"))]);
        let pod = cgroups.create_pod("uid-1", &spec).unwrap();
        assert_eq!(pod.qos, QosClass::Burstable);
        assert_eq!(pod.path, path("skiff/kubepods/burstable/poduid-1"));
        let ctr = cgroups
            .create_container(&pod, "abc123", &spec.containers[0])
            .unwrap();
        assert_eq!(ctr, path("skiff/kubepods/burstable/poduid-1/abc123"));
        let limits = CgroupLimits {
            cpu_shares: Some(102),
            cpu_quota: Some(CpuQuota {
                quota_us: 20_000,
                period_us: QUOTA_PERIOD_US,
            }),
            memory_limit_bytes: Some(32 << 20),
            pids_max: None,
            no_swap: false,
            oom_kills_group: false,
        };
        let container_limits = CgroupLimits {
            no_swap: true,
            oom_kills_group: true,
            ..limits
        };
        assert_eq!(
            fake.calls(),
            vec![
                DriverCall::Create(pod.path.clone(), limits),
                DriverCall::Create(ctr.clone(), container_limits),
            ]
        );
        assert_eq!(
            cgroups.find_pod("uid-1").unwrap(),
            Some((QosClass::Burstable, pod.path.clone()))
        );
        assert_eq!(cgroups.find_pod("uid-2").unwrap(), None);

        fake.add_process(&ctr, 4242).unwrap();
        cgroups.remove_pod(&pod.path).unwrap();
        let calls = fake.calls();
        assert_eq!(
            calls[calls.len() - 2..],
            [
                DriverCall::KillAll(pod.path.clone()),
                DriverCall::Remove(pod.path.clone())
            ]
        );
        assert!(!fake.exists(&ctr) && !fake.exists(&pod.path));
        assert!(fake.exists(&path("skiff/kubepods/burstable")));
        // A second removal (a retried cleanup) finds nothing and succeeds.
        cgroups.remove_pod(&pod.path).unwrap();
    }

    #[test]
    fn best_effort_pods_get_minimal_shares_and_the_pids_limit() {
        let (fake, cgroups) = manager();
        let cgroups = cgroups.with_pod_pids_limit(Some(1024));
        let spec = pod(vec![container(("", ""), ("", ""))]);
        let pod = cgroups.create_pod("u", &spec).unwrap();
        assert_eq!(pod.path, path("skiff/kubepods/besteffort/podu"));
        assert_eq!(
            fake.limits(&pod.path),
            Some(CgroupLimits {
                cpu_shares: Some(MIN_SHARES),
                pids_max: Some(1024),
                ..CgroupLimits::default()
            })
        );
    }

    #[test]
    fn the_node_gets_kubepods_and_tiers() {
        let (fake, cgroups) = manager();
        let burstable = pod(vec![container(("500m", ""), ("", ""))]);
        let guaranteed = pod(vec![container(("1", "1Gi"), ("1", "1Gi"))]);
        cgroups
            .ensure_node(
                Some(NodeAllocatable {
                    milli_cpu: 2000,
                    memory_bytes: 1 << 30,
                }),
                [&burstable, &guaranteed],
            )
            .unwrap();
        let kubepods = fake.limits(&path("skiff/kubepods")).unwrap();
        assert_eq!(kubepods.cpu_shares, Some(2048));
        assert_eq!(kubepods.memory_limit_bytes, Some(1 << 30));
        let tier = fake.limits(&path("skiff/kubepods/burstable")).unwrap();
        assert_eq!(tier.cpu_shares, Some(512));
        let tier = fake.limits(&path("skiff/kubepods/besteffort")).unwrap();
        assert_eq!(tier.cpu_shares, Some(MIN_SHARES));
    }

    #[test]
    fn existing_pods_are_found_in_every_tier() {
        let (_fake, cgroups) = manager();
        cgroups.ensure_node(None, []).unwrap();
        let specs = [
            ("g", pod(vec![container(("1", "1Gi"), ("1", "1Gi"))])),
            ("b", pod(vec![container(("1", ""), ("", ""))])),
            ("e", pod(vec![container(("", ""), ("", ""))])),
        ];
        for (uid, spec) in &specs {
            let pod = cgroups.create_pod(uid, spec).unwrap();
            cgroups
                .create_container(&pod, "c", &spec.containers[0])
                .unwrap();
        }
        let found = cgroups.existing_pods().unwrap();
        let summary: Vec<(QosClass, &str, &str)> = found
            .iter()
            .map(|p| (p.qos, p.uid.as_str(), p.path.as_str()))
            .collect();
        assert_eq!(
            summary,
            [
                (QosClass::Guaranteed, "g", "skiff/kubepods/podg"),
                (QosClass::Burstable, "b", "skiff/kubepods/burstable/podb"),
                (QosClass::BestEffort, "e", "skiff/kubepods/besteffort/pode"),
            ]
        );
        cgroups.remove_pod(&found[1].path).unwrap();
        assert_eq!(cgroups.existing_pods().unwrap().len(), 2);
        // Nothing created yet: nothing found.
        let (_, empty) = manager();
        assert!(empty.existing_pods().unwrap().is_empty());
    }

    #[test]
    fn bad_names_are_errors_not_cgroups() {
        let (fake, cgroups) = manager();
        let spec = pod(vec![]);
        assert!(matches!(
            cgroups.create_pod("../../x", &spec),
            Err(CgroupError::Name(_))
        ));
        let pod = cgroups.create_pod("ok", &spec).unwrap();
        assert!(cgroups
            .create_container(&pod, "cpu.max", &Container::default())
            .is_err());
        assert_eq!(fake.calls().len(), 1, "only the valid pod was created");
    }
}
