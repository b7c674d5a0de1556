//! From a pod's `resources` to the numbers its cgroups are given, as the kubelet computes them.
//!
//! CPU requests become `cpu.shares` (v1) or `cpu.weight` (v2), CPU limits a CFS quota over a
//! 100 ms period, memory limits a limit in bytes. A pod's cgroup gets its containers' sums
//! (raised to the largest init container, counting sidecars, plus the pod overhead) or its
//! pod-level `resources`; what it gets also depends on its QoS class (`BestEffort` pods only get
//! the minimal shares). Every computation on user-given quantities is checked: sums saturate
//! and conversions clamp to the range the kernel accepts, so no quantity the API admits can
//! overflow or panic.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, PodSpec, ResourceRequirements};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use skiff_api::quantity::Quantity as ParsedQuantity;

use crate::qos::{pod_qos, QosClass};

/// The smallest `cpu.shares` the kubelet writes (and the kernel accepts).
pub const MIN_SHARES: u64 = 2;
/// The largest `cpu.shares` the kernel accepts.
pub const MAX_SHARES: u64 = 262_144;
/// Shares that stand for one whole CPU.
pub const SHARES_PER_CPU: u64 = 1024;
/// The CFS period the kubelet uses: 100 ms, in microseconds.
pub const QUOTA_PERIOD_US: u64 = 100_000;
/// The smallest quota the kubelet writes: 1 ms, in microseconds.
pub const MIN_QUOTA_US: u64 = 1_000;
/// The largest quota the kernel accepts, in microseconds (about 203 days); a larger CPU limit
/// is written as this, which no machine can use up in a 100 ms period anyway.
pub const MAX_QUOTA_US: u64 = (1 << 44) - 1;
/// The smallest cgroup v2 `cpu.weight`.
pub const MIN_WEIGHT: u64 = 1;
/// The largest cgroup v2 `cpu.weight`.
pub const MAX_WEIGHT: u64 = 10_000;

/// A CFS bandwidth limit: `quota_us` of CPU time in every `period_us`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CpuQuota {
    /// CPU time allowed per period, in microseconds (v1 `cpu.cfs_quota_us`).
    pub quota_us: u64,
    /// The period, in microseconds (v1 `cpu.cfs_period_us`).
    pub period_us: u64,
}

/// The limits one cgroup is given, in the units the kernel takes. Drivers write them to the
/// version's files (`cpu.shares` or `cpu.weight`, `cpu.cfs_*` or `cpu.max`,
/// `memory.limit_in_bytes` or `memory.max`, `pids.max`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CgroupLimits {
    /// CPU shares as cgroup v1 counts them (v2 converts them to a weight); `None` leaves the
    /// cgroup's current value.
    pub cpu_shares: Option<u64>,
    /// The CFS quota; `None` means no quota.
    pub cpu_quota: Option<CpuQuota>,
    /// The memory limit in bytes; `None` means no limit.
    pub memory_limit_bytes: Option<u64>,
    /// The most processes the cgroup may hold; `None` means no limit.
    pub pids_max: Option<u64>,
    /// Forbids swapping, the kubelet's default (`NoSwap`) for containers, so a container over
    /// its memory limit is OOM-killed rather than swapped out: v1 caps memory plus swap at the
    /// memory limit, v2 writes `memory.swap.max` 0. Only where the kernel accounts swap.
    pub no_swap: bool,
    /// Makes an OOM kill take every process of the cgroup at once (v2 `memory.oom.group`),
    /// as the kubelet asks for containers on cgroup v2; v1 has no such switch.
    pub oom_kills_group: bool,
}

/// Node capacity set aside for pods, which the kubelet enforces on the `kubepods` cgroup.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NodeAllocatable {
    /// Allocatable CPU, in millicores.
    pub milli_cpu: i64,
    /// Allocatable memory, in bytes.
    pub memory_bytes: i64,
}

/// `cpu.shares` for a CPU request in millicores, as the kubelet's `MilliCPUToShares`: 1024
/// per CPU, at least [`MIN_SHARES`] (also for no request at all), at most [`MAX_SHARES`].
pub fn milli_cpu_to_shares(milli_cpu: i64) -> u64 {
    // i128 holds any i64 times 1024 exactly.
    let shares = i128::from(milli_cpu) * i128::from(SHARES_PER_CPU) / 1000;
    let clamped = shares.clamp(i128::from(MIN_SHARES), i128::from(MAX_SHARES));
    u64::try_from(clamped).unwrap_or(MIN_SHARES)
}

/// The CFS quota for a CPU limit in millicores over `period_us`, as the kubelet's
/// `MilliCPUToQuota`: `None` for no limit (zero or less), otherwise at least 1 ms and at most
/// [`MAX_QUOTA_US`].
pub fn milli_cpu_to_quota(milli_cpu: i64, period_us: u64) -> Option<CpuQuota> {
    if milli_cpu <= 0 {
        return None;
    }
    let quota = i128::from(milli_cpu) * i128::from(period_us) / 1000;
    let clamped = quota.clamp(i128::from(MIN_QUOTA_US), i128::from(MAX_QUOTA_US));
    Some(CpuQuota {
        quota_us: u64::try_from(clamped).unwrap_or(MAX_QUOTA_US),
        period_us,
    })
}

/// The cgroup v2 `cpu.weight` for cgroup v1 `cpu.shares`, with the conversion runc (1.3.2 on)
/// and crun (1.23 on) apply for Kubernetes: a quadratic in `log2(shares)` through (2, 1),
/// (1024, 100) and (262144, 10000), so one requested CPU weighs as much as an unlimited
/// process (the default weight, 100). Shares at or below the minimum (0 included) give the
/// minimum weight; at or above the maximum, the maximum.
pub fn cpu_shares_to_weight(shares: u64) -> u64 {
    if shares <= MIN_SHARES {
        return MIN_WEIGHT;
    }
    if shares >= MAX_SHARES {
        return MAX_WEIGHT;
    }
    // Exact for every integer in (2, 262144): f64 holds them all.
    let l = (shares as f64).log2();
    let exponent = (l * l + 125.0 * l) / 612.0 - 7.0 / 34.0;
    let weight = 10f64.powf(exponent).ceil();
    // The quadratic stays within [1, 10000] on the open range; clamp all the same.
    (weight as u64).clamp(MIN_WEIGHT, MAX_WEIGHT)
}

/// The limits of a pod's cgroup and the QoS class they follow from, as the kubelet's
/// `ResourceConfigForPod` computes them (CPU limits enforced, the default 100 ms period).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PodResourceConfig {
    /// The pod's QoS class, which also places its cgroup.
    pub qos: QosClass,
    /// What the pod cgroup is given.
    pub limits: CgroupLimits,
}

/// The pod cgroup's limits: shares from the pod's CPU requests; for `Guaranteed` pods the CPU
/// quota and memory limit of the pod's limits; for `Burstable` pods each only when every
/// container (or the pod-level `resources`) limits it; for `BestEffort` pods the minimal shares.
pub fn pod_resource_config(spec: &PodSpec) -> PodResourceConfig {
    let qos = pod_qos(spec);
    let requests = pod_requests(spec);
    let mut cpu_limits_declared = true;
    let mut memory_limits_declared = true;
    let limits = pod_limits(spec, |effective| {
        if effective.cpu_milli.unwrap_or(0) == 0 {
            cpu_limits_declared = false;
        }
        if effective.memory.unwrap_or(0) == 0 {
            memory_limits_declared = false;
        }
    });
    if pod_level_resources_set(spec) {
        let pod_limits = CpuMemory::all(spec.resources.as_ref().and_then(|r| r.limits.as_ref()));
        if pod_limits.cpu_milli.unwrap_or(0) != 0 {
            cpu_limits_declared = true;
        }
        if pod_limits.memory.unwrap_or(0) != 0 {
            memory_limits_declared = true;
        }
    }
    let shares = milli_cpu_to_shares(requests.cpu_milli.unwrap_or(0));
    let quota = milli_cpu_to_quota(limits.cpu_milli.unwrap_or(0), QUOTA_PERIOD_US);
    let memory = positive_bytes(limits.memory);
    let limits = match qos {
        QosClass::Guaranteed => CgroupLimits {
            cpu_shares: Some(shares),
            cpu_quota: quota,
            memory_limit_bytes: memory,
            ..CgroupLimits::default()
        },
        QosClass::Burstable => CgroupLimits {
            cpu_shares: Some(shares),
            cpu_quota: quota.filter(|_| cpu_limits_declared),
            memory_limit_bytes: memory.filter(|_| memory_limits_declared),
            ..CgroupLimits::default()
        },
        QosClass::BestEffort => CgroupLimits {
            cpu_shares: Some(MIN_SHARES),
            ..CgroupLimits::default()
        },
    };
    PodResourceConfig { qos, limits }
}

/// A container's cgroup limits, as the kubelet hands them to the runtime: shares from its CPU
/// request (from its limit when it requests nothing but limits CPU), the quota of its CPU limit,
/// its memory limit, no swap, and OOM kills that take the whole container.
pub fn container_limits(container: &Container) -> CgroupLimits {
    let resources = container.resources.as_ref();
    let requests = CpuMemory::all(resources.and_then(|r| r.requests.as_ref()));
    let limits = CpuMemory::all(resources.and_then(|r| r.limits.as_ref()));
    let cpu_limit = limits.cpu_milli.unwrap_or(0);
    let shares = match requests.cpu_milli {
        None if cpu_limit != 0 => milli_cpu_to_shares(cpu_limit),
        request => milli_cpu_to_shares(request.unwrap_or(0)),
    };
    CgroupLimits {
        cpu_shares: Some(shares),
        cpu_quota: milli_cpu_to_quota(cpu_limit, QUOTA_PERIOD_US),
        memory_limit_bytes: positive_bytes(limits.memory),
        pids_max: None,
        no_swap: true,
        oom_kills_group: true,
    }
}

/// The limits of the two QoS tier cgroups, as the kubelet's QoS container manager sets them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TierLimits {
    /// `kubepods/burstable`: shares for the CPU all `Burstable` pods request together.
    pub burstable: CgroupLimits,
    /// `kubepods/besteffort`: always the minimal shares.
    pub besteffort: CgroupLimits,
}

/// The tier limits for the pods running on the node.
pub fn tier_limits<'a>(pods: impl IntoIterator<Item = &'a PodSpec>) -> TierLimits {
    let burstable_milli_cpu = pods
        .into_iter()
        .filter(|spec| pod_qos(spec) == QosClass::Burstable)
        .map(|spec| pod_requests(spec).cpu_milli.unwrap_or(0))
        .fold(0i64, i64::saturating_add);
    TierLimits {
        burstable: CgroupLimits {
            cpu_shares: Some(milli_cpu_to_shares(burstable_milli_cpu)),
            ..CgroupLimits::default()
        },
        besteffort: CgroupLimits {
            cpu_shares: Some(MIN_SHARES),
            ..CgroupLimits::default()
        },
    }
}

/// The `kubepods` cgroup's limits when the node enforces its allocatable resources on pods.
pub fn node_allocatable_limits(allocatable: NodeAllocatable) -> CgroupLimits {
    CgroupLimits {
        cpu_shares: Some(milli_cpu_to_shares(allocatable.milli_cpu)),
        cpu_quota: None,
        memory_limit_bytes: positive_bytes(Some(allocatable.memory_bytes)),
        ..CgroupLimits::default()
    }
}

/// The pod's requests as the kubelet sums them (component-helpers' `PodRequests`): containers
/// and sidecars together, raised to any init container's need (with the sidecars started
/// before it), replaced by pod-level requests where given, plus the overhead.
pub(crate) fn pod_requests(spec: &PodSpec) -> CpuMemory {
    let mut requests = aggregate(spec, |r| r.requests.as_ref(), |_| {});
    if let Some(pod_requests) = spec
        .resources
        .as_ref()
        .and_then(|r| r.requests.as_ref())
        .filter(|list| names_cpu_or_memory(list))
    {
        requests = requests.replaced_by(&CpuMemory::all(Some(pod_requests)));
    }
    if let Some(overhead) = spec.overhead.as_ref() {
        requests = requests.plus(&CpuMemory::all(Some(overhead)));
    }
    requests
}

/// The pod's limits as the kubelet sums them (`PodLimits`), calling `each_container` with every
/// container's limits and every init container's limits counted with the sidecars before it.
fn pod_limits(spec: &PodSpec, each_container: impl FnMut(&CpuMemory)) -> CpuMemory {
    let mut limits = aggregate(spec, |r| r.limits.as_ref(), each_container);
    if pod_level_resources_set(spec) {
        let pod_limits = CpuMemory::all(spec.resources.as_ref().and_then(|r| r.limits.as_ref()));
        limits = limits.replaced_by(&pod_limits);
    }
    if let Some(overhead) = spec.overhead.as_ref() {
        // The overhead only raises limits that are set: no limit stays no limit.
        let overhead = CpuMemory::all(Some(overhead));
        if limits.cpu_milli.unwrap_or(0) != 0 {
            limits.cpu_milli = sum(limits.cpu_milli, overhead.cpu_milli);
        }
        if limits.memory.unwrap_or(0) != 0 {
            limits.memory = sum(limits.memory, overhead.memory);
        }
    }
    limits
}

/// Sums one of a pod's resource lists over its containers as the sidecar KEP defines it.
fn aggregate(
    spec: &PodSpec,
    list: impl Fn(&ResourceRequirements) -> Option<&BTreeMap<String, Quantity>>,
    mut each_container: impl FnMut(&CpuMemory),
) -> CpuMemory {
    let of = |c: &Container| CpuMemory::all(c.resources.as_ref().and_then(&list));
    let mut total = CpuMemory::default();
    for container in &spec.containers {
        let own = of(container);
        each_container(&own);
        total = total.plus(&own);
    }
    let mut sidecars = CpuMemory::default();
    let mut init_peak = CpuMemory::default();
    for container in spec.init_containers.iter().flatten() {
        let own = of(container);
        let effective = if container.restart_policy.as_deref() == Some("Always") {
            total = total.plus(&own);
            sidecars = sidecars.plus(&own);
            sidecars
        } else {
            own.plus(&sidecars)
        };
        each_container(&effective);
        init_peak = init_peak.max(&effective);
    }
    total.max(&init_peak)
}

/// Whether the pod-level `resources` name CPU or memory (`IsPodLevelResourcesSet`), in which
/// case they, not the containers, decide the QoS class and the pod cgroup's limits.
pub(crate) fn pod_level_resources_set(spec: &PodSpec) -> bool {
    spec.resources.as_ref().is_some_and(|r| {
        r.requests.as_ref().is_some_and(names_cpu_or_memory)
            || r.limits.as_ref().is_some_and(names_cpu_or_memory)
    })
}

fn names_cpu_or_memory(list: &BTreeMap<String, Quantity>) -> bool {
    list.contains_key("cpu") || list.contains_key("memory")
}

fn positive_bytes(bytes: Option<i64>) -> Option<u64> {
    bytes.filter(|b| *b > 0).and_then(|b| u64::try_from(b).ok())
}

fn sum(a: Option<i64>, b: Option<i64>) -> Option<i64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.saturating_add(b)),
        (a, b) => a.or(b),
    }
}

/// CPU (in millicores, rounded up) and memory (in bytes, rounded up) of one resource list;
/// `None` where the list does not name the resource.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct CpuMemory {
    /// `cpu`, in millicores.
    pub cpu_milli: Option<i64>,
    /// `memory`, in bytes.
    pub memory: Option<i64>,
}

impl CpuMemory {
    /// Every CPU and memory entry of the list, zero included. A quantity that does not parse
    /// (the API server refuses those) counts as absent.
    pub fn all(list: Option<&BTreeMap<String, Quantity>>) -> CpuMemory {
        let parse = |name: &str| {
            list.and_then(|l| l.get(name))
                .and_then(|q| ParsedQuantity::parse(&q.0).ok())
        };
        CpuMemory {
            cpu_milli: parse("cpu").map(|q| q.milli_value()),
            memory: parse("memory").map(|q| q.value()),
        }
    }

    /// Only the entries above zero, as QoS classification counts them.
    pub fn positive(list: Option<&BTreeMap<String, Quantity>>) -> CpuMemory {
        let all = CpuMemory::all(list);
        CpuMemory {
            cpu_milli: all.cpu_milli.filter(|v| *v > 0),
            memory: all.memory.filter(|v| *v > 0),
        }
    }

    /// Whether neither resource is named.
    pub fn is_empty(&self) -> bool {
        self.count() == 0
    }

    /// How many of the two resources are named.
    pub fn count(&self) -> usize {
        usize::from(self.cpu_milli.is_some()) + usize::from(self.memory.is_some())
    }

    /// Both lists added, resource by resource (saturating).
    pub fn plus(&self, other: &CpuMemory) -> CpuMemory {
        CpuMemory {
            cpu_milli: sum(self.cpu_milli, other.cpu_milli),
            memory: sum(self.memory, other.memory),
        }
    }

    /// The larger of both lists, resource by resource.
    pub fn max(&self, other: &CpuMemory) -> CpuMemory {
        let larger = |a: Option<i64>, b: Option<i64>| match (a, b) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        CpuMemory {
            cpu_milli: larger(self.cpu_milli, other.cpu_milli),
            memory: larger(self.memory, other.memory),
        }
    }

    /// `self` with each resource `other` names replaced by `other`'s amount.
    pub fn replaced_by(&self, other: &CpuMemory) -> CpuMemory {
        CpuMemory {
            cpu_milli: other.cpu_milli.or(self.cpu_milli),
            memory: other.memory.or(self.memory),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ResourceRequirements;

    /// A resource list of `(cpu, memory)`, an empty string leaving the resource out.
    pub fn list(cpu_memory: (&str, &str)) -> BTreeMap<String, Quantity> {
        let (cpu, memory) = cpu_memory;
        let mut list = BTreeMap::new();
        if !cpu.is_empty() {
            list.insert("cpu".to_string(), Quantity(cpu.to_string()));
        }
        if !memory.is_empty() {
            list.insert("memory".to_string(), Quantity(memory.to_string()));
        }
        list
    }

    /// Requirements from `(cpu, memory)` requests and limits.
    pub fn resources(requests: (&str, &str), limits: (&str, &str)) -> ResourceRequirements {
        ResourceRequirements {
            requests: Some(list(requests)),
            limits: Some(list(limits)),
            ..Default::default()
        }
    }

    /// A container with `(cpu, memory)` requests and limits.
    pub fn container(requests: (&str, &str), limits: (&str, &str)) -> Container {
        Container {
            name: "c".to_string(),
            resources: Some(resources(requests, limits)),
            ..Default::default()
        }
    }

    /// A sidecar: an init container that keeps running (`restartPolicy: Always`).
    pub fn sidecar(requests: (&str, &str), limits: (&str, &str)) -> Container {
        Container {
            restart_policy: Some("Always".to_string()),
            ..container(requests, limits)
        }
    }

    /// A pod spec with these containers.
    pub fn pod(containers: Vec<Container>) -> PodSpec {
        PodSpec {
            containers,
            ..Default::default()
        }
    }

    /// A pod spec with these containers and init containers.
    pub fn pod_with_init(containers: Vec<Container>, init: Vec<Container>) -> PodSpec {
        PodSpec {
            init_containers: Some(init),
            ..pod(containers)
        }
    }

    /// A pod spec with these containers and pod-level resources.
    pub fn pod_with_resources(containers: Vec<Container>, r: ResourceRequirements) -> PodSpec {
        PodSpec {
            resources: Some(r),
            ..pod(containers)
        }
    }

    const MI: u64 = 1024 * 1024;

    fn limits(shares: u64, quota_us: Option<u64>, memory: Option<u64>) -> CgroupLimits {
        CgroupLimits {
            cpu_shares: Some(shares),
            cpu_quota: quota_us.map(|quota_us| CpuQuota {
                quota_us,
                period_us: QUOTA_PERIOD_US,
            }),
            memory_limit_bytes: memory,
            pids_max: None,
            no_swap: false,
            oom_kills_group: false,
        }
    }

    /// Kubernetes' `TestMilliCPUToShares` and `TestMilliCPUToQuota` cases, plus the extremes
    /// the API admits.
    #[test]
    fn cpu_converts_to_shares_and_quota_like_the_kubelet() {
        let shares: &[(i64, u64)] = &[
            (0, 2),
            (1, 2),
            (2, 2),
            (5, 5),
            (100, 102),
            (200, 204),
            (500, 512),
            (1000, 1024),
            (1500, 1536),
            (256_000, 262_144),
            (300_000, 262_144),
            (-1, 2),
            (i64::MAX, MAX_SHARES),
            (i64::MIN, MIN_SHARES),
        ];
        for (milli, want) in shares {
            assert_eq!(milli_cpu_to_shares(*milli), *want, "shares for {milli}m");
        }
        let quotas: &[(i64, Option<u64>)] = &[
            (0, None),
            (5, Some(1_000)),
            (9, Some(1_000)),
            (10, Some(1_000)),
            (200, Some(20_000)),
            (500, Some(50_000)),
            (1000, Some(100_000)),
            (1500, Some(150_000)),
            (-5, None),
            (i64::MAX, Some(MAX_QUOTA_US)),
        ];
        for (milli, want) in quotas {
            let got = milli_cpu_to_quota(*milli, QUOTA_PERIOD_US).map(|q| q.quota_us);
            assert_eq!(got, *want, "quota for {milli}m");
        }
        assert_eq!(
            milli_cpu_to_quota(200, QUOTA_PERIOD_US).map(|q| q.period_us),
            Some(QUOTA_PERIOD_US)
        );
    }

    /// The cases of the OCI runtimes' conversion test, and a few points in between.
    #[test]
    fn shares_convert_to_weight_through_the_fixed_points() {
        let cases: &[(u64, u64)] = &[
            (0, 1),
            (1, 1),
            (2, 1),
            (3, 2),
            (102, 17),
            (512, 59),
            (1024, 100),
            (2048, 174),
            (262_143, 10_000),
            (262_144, 10_000),
            (262_145, 10_000),
            (u64::MAX, 10_000),
        ];
        for (shares, want) in cases {
            assert_eq!(
                cpu_shares_to_weight(*shares),
                *want,
                "weight for {shares} shares"
            );
        }
        let mut previous = 0;
        for shares in MIN_SHARES..=MAX_SHARES {
            let weight = cpu_shares_to_weight(shares);
            assert!(
                (MIN_WEIGHT..=MAX_WEIGHT).contains(&weight) && weight >= previous,
                "weight {weight} for {shares} shares is out of range or below {previous}"
            );
            previous = weight;
        }
    }

    /// Kubernetes' `TestResourceConfigForPod` cases, and the sums over init containers,
    /// sidecars, pod-level resources and overhead.
    #[test]
    fn pod_cgroup_limits_follow_the_kubelet() {
        let cases: Vec<(&str, PodSpec, QosClass, CgroupLimits)> = vec![
            (
                "besteffort",
                pod(vec![container(("", ""), ("", ""))]),
                QosClass::BestEffort,
                CgroupLimits {
                    cpu_shares: Some(2),
                    ..CgroupLimits::default()
                },
            ),
            (
                "burstable-no-limits",
                pod(vec![container(("100m", "100Mi"), ("", ""))]),
                QosClass::Burstable,
                limits(102, None, None),
            ),
            (
                "burstable-with-limits",
                pod(vec![container(("100m", "100Mi"), ("200m", "200Mi"))]),
                QosClass::Burstable,
                limits(102, Some(20_000), Some(200 * MI)),
            ),
            (
                "burstable-partial-limits",
                pod(vec![
                    container(("100m", "100Mi"), ("200m", "200Mi")),
                    container(("100m", "100Mi"), ("", "")),
                ]),
                QosClass::Burstable,
                limits(204, None, None),
            ),
            (
                "burstable-cpu-limits-only-everywhere",
                pod(vec![
                    container(("100m", "100Mi"), ("200m", "")),
                    container(("100m", "100Mi"), ("300m", "")),
                ]),
                QosClass::Burstable,
                limits(204, Some(50_000), None),
            ),
            (
                "guaranteed",
                pod(vec![container(("100m", "100Mi"), ("100m", "100Mi"))]),
                QosClass::Guaranteed,
                limits(102, Some(10_000), Some(100 * MI)),
            ),
            (
                "guaranteed-two-containers-sum",
                pod(vec![
                    container(("100m", "100Mi"), ("100m", "100Mi")),
                    container(("250m", "28Mi"), ("250m", "28Mi")),
                ]),
                QosClass::Guaranteed,
                limits(358, Some(35_000), Some(128 * MI)),
            ),
            (
                "init-container-larger-than-app-containers",
                pod_with_init(
                    vec![container(("100m", "100Mi"), ("100m", "100Mi"))],
                    vec![container(("1", "1Gi"), ("1", "1Gi"))],
                ),
                QosClass::Guaranteed,
                limits(1024, Some(100_000), Some(1024 * MI)),
            ),
            (
                "init-container-smaller-than-app-containers",
                pod_with_init(
                    vec![container(("500m", "500Mi"), ("500m", "500Mi"))],
                    vec![container(("100m", "100Mi"), ("100m", "100Mi"))],
                ),
                QosClass::Guaranteed,
                limits(512, Some(50_000), Some(500 * MI)),
            ),
            (
                "sidecar-adds-to-app-and-later-init-containers",
                pod_with_init(
                    vec![container(("500m", "500Mi"), ("500m", "500Mi"))],
                    vec![
                        sidecar(("200m", "200Mi"), ("200m", "200Mi")),
                        container(("600m", "600Mi"), ("600m", "600Mi")),
                    ],
                ),
                QosClass::Guaranteed,
                // app 500 + sidecar 200 = 700; init 600 + sidecar 200 = 800 wins.
                limits(819, Some(80_000), Some(800 * MI)),
            ),
            (
                "init-container-without-limits-undeclares-them",
                pod_with_init(
                    vec![container(("100m", "100Mi"), ("200m", "200Mi"))],
                    vec![container(("100m", "100Mi"), ("", ""))],
                ),
                QosClass::Burstable,
                limits(102, None, None),
            ),
            (
                "pod-level-resources-win",
                pod_with_resources(
                    vec![container(("", ""), ("", ""))],
                    resources(("500m", "64Mi"), ("1", "128Mi")),
                ),
                QosClass::Burstable,
                limits(512, Some(100_000), Some(128 * MI)),
            ),
            (
                "pod-level-guaranteed",
                pod_with_resources(
                    vec![container(("3m", "10Mi"), ("5m", "20Mi"))],
                    resources(("10m", "100Mi"), ("10m", "100Mi")),
                ),
                QosClass::Guaranteed,
                limits(10, Some(1_000), Some(100 * MI)),
            ),
            (
                "overhead-adds-to-requests-and-set-limits",
                {
                    let mut spec = pod(vec![container(("100m", "100Mi"), ("200m", ""))]);
                    spec.overhead = Some(list(("50m", "20Mi")));
                    spec
                },
                QosClass::Burstable,
                limits(153, Some(25_000), None),
            ),
            (
                "huge-quantities-saturate",
                pod(vec![
                    container(("8E", "8Ei"), ("8E", "8Ei")),
                    container(("8E", "8Ei"), ("8E", "8Ei")),
                ]),
                QosClass::Guaranteed,
                limits(MAX_SHARES, Some(MAX_QUOTA_US), Some(i64::MAX as u64)),
            ),
        ];
        for (name, spec, qos, want) in cases {
            let got = pod_resource_config(&spec);
            assert_eq!(got.qos, qos, "{name}: QoS class");
            assert_eq!(got.limits, want, "{name}: limits");
        }
    }

    #[test]
    fn container_limits_follow_the_kubelet() {
        let cases: Vec<(&str, Container, CgroupLimits)> = vec![
            (
                "nothing",
                container(("", ""), ("", "")),
                limits(2, None, None),
            ),
            (
                "request-only",
                container(("250m", "64Mi"), ("", "")),
                limits(256, None, None),
            ),
            (
                "limit-without-request-gives-shares",
                container(("", ""), ("500m", "32Mi")),
                limits(512, Some(50_000), Some(32 * MI)),
            ),
            (
                "zero-request-keeps-minimal-shares",
                container(("0", ""), ("500m", "")),
                limits(2, Some(50_000), None),
            ),
            (
                "fifth-of-a-cpu",
                container(("200m", "32Mi"), ("200m", "32Mi")),
                limits(204, Some(20_000), Some(32 * MI)),
            ),
            (
                "unparsable-counts-as-absent",
                container(("lots", "plenty"), ("", "")),
                limits(2, None, None),
            ),
        ];
        for (name, c, want) in cases {
            let want = CgroupLimits {
                no_swap: true,
                oom_kills_group: true,
                ..want
            };
            assert_eq!(container_limits(&c), want, "{name}");
        }
        let bare = Container::default();
        assert_eq!(
            container_limits(&bare),
            CgroupLimits {
                no_swap: true,
                oom_kills_group: true,
                ..limits(2, None, None)
            },
            "no resources"
        );
    }

    #[test]
    fn tiers_share_by_burstable_requests_only() {
        let burstable_a = pod(vec![container(("300m", ""), ("", ""))]);
        let burstable_b = pod_with_init(
            vec![container(("200m", ""), ("", ""))],
            vec![container(("1", ""), ("", ""))],
        );
        let guaranteed = pod(vec![container(("1", "1Gi"), ("1", "1Gi"))]);
        let best_effort = pod(vec![container(("", ""), ("", ""))]);
        let tiers = tier_limits([&burstable_a, &burstable_b, &guaranteed, &best_effort]);
        // 300m + max(200m, 1000m) = 1300m.
        assert_eq!(tiers.burstable.cpu_shares, Some(1331));
        assert_eq!(tiers.burstable.cpu_quota, None);
        assert_eq!(tiers.burstable.memory_limit_bytes, None);
        assert_eq!(tiers.besteffort.cpu_shares, Some(MIN_SHARES));
        let empty = tier_limits(std::iter::empty());
        assert_eq!(empty.burstable.cpu_shares, Some(MIN_SHARES));
    }

    #[test]
    fn kubepods_gets_the_allocatable_resources() {
        let got = node_allocatable_limits(NodeAllocatable {
            milli_cpu: 2000,
            memory_bytes: 4 << 30,
        });
        assert_eq!(got.cpu_shares, Some(2048));
        assert_eq!(got.memory_limit_bytes, Some(4 << 30));
        assert_eq!(got.cpu_quota, None);
        let nothing = node_allocatable_limits(NodeAllocatable {
            milli_cpu: -1,
            memory_bytes: -1,
        });
        assert_eq!(nothing.cpu_shares, Some(MIN_SHARES));
        assert_eq!(nothing.memory_limit_bytes, None);
    }
}
