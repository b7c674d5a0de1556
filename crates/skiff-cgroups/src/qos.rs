//! A pod's quality-of-service class, computed as Kubernetes' `ComputePodQOS` does.
//!
//! The class decides where the kubelet places the pod's cgroup (see [`crate::layout`]) and
//! which limits the pod cgroup gets (see [`crate::resources`]). Only `cpu` and `memory` count;
//! quantities are compared at the precision the kernel is given (millicores and bytes).

use k8s_openapi::api::core::v1::PodSpec;

use crate::resources::{pod_level_resources_set, CpuMemory};

/// The three QoS classes of `status.qosClass`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum QosClass {
    /// Every container limits CPU and memory, and requests equal limits.
    Guaranteed,
    /// Something is requested or limited, but not enough for `Guaranteed`.
    Burstable,
    /// No container requests or limits CPU or memory.
    BestEffort,
}

impl QosClass {
    /// The class as `status.qosClass` spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            QosClass::Guaranteed => "Guaranteed",
            QosClass::Burstable => "Burstable",
            QosClass::BestEffort => "BestEffort",
        }
    }
}

impl std::fmt::Display for QosClass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The QoS class of a pod: from its pod-level `resources` when they name CPU or memory,
/// otherwise from its containers and init containers together.
pub fn pod_qos(spec: &PodSpec) -> QosClass {
    let mut requests = CpuMemory::default();
    let mut limits = CpuMemory::default();
    let mut every_container_limits_both = true;
    if pod_level_resources_set(spec) {
        let resources = spec.resources.as_ref();
        requests = CpuMemory::positive(resources.and_then(|r| r.requests.as_ref()));
        limits = CpuMemory::positive(resources.and_then(|r| r.limits.as_ref()));
        if limits.cpu_milli.is_none() || limits.memory.is_none() {
            every_container_limits_both = false;
        }
    } else {
        let all = spec
            .containers
            .iter()
            .chain(spec.init_containers.iter().flatten());
        for container in all {
            let resources = container.resources.as_ref();
            let own_requests = CpuMemory::positive(resources.and_then(|r| r.requests.as_ref()));
            let own_limits = CpuMemory::positive(resources.and_then(|r| r.limits.as_ref()));
            requests = requests.plus(&own_requests);
            limits = limits.plus(&own_limits);
            if own_limits.cpu_milli.is_none() || own_limits.memory.is_none() {
                every_container_limits_both = false;
            }
        }
    }
    if requests.is_empty() && limits.is_empty() {
        return QosClass::BestEffort;
    }
    // Every resource requested must be limited at the same amount, and nothing limited may be
    // left unrequested.
    let matches = |request: Option<i64>, limit: Option<i64>| match (request, limit) {
        (Some(r), Some(l)) => r == l,
        (Some(_), None) => false,
        (None, _) => true,
    };
    let requests_equal_limits = matches(requests.cpu_milli, limits.cpu_milli)
        && matches(requests.memory, limits.memory)
        && requests.count() == limits.count();
    if every_container_limits_both && requests_equal_limits {
        QosClass::Guaranteed
    } else {
        QosClass::Burstable
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::tests::{container, pod, pod_with_init, pod_with_resources, resources};

    /// Kubernetes' `TestComputePodQOS` cases, pod-level resources enabled as in 1.36.
    #[test]
    fn qos_classes_follow_kubernetes() {
        let cases: Vec<(&str, PodSpec, QosClass)> = vec![
            (
                "guaranteed",
                pod(vec![container(("100m", "100Mi"), ("100m", "100Mi"))]),
                QosClass::Guaranteed,
            ),
            (
                "guaranteed-guaranteed",
                pod(vec![
                    container(("100m", "100Mi"), ("100m", "100Mi")),
                    container(("100m", "100Mi"), ("100m", "100Mi")),
                ]),
                QosClass::Guaranteed,
            ),
            (
                "best-effort-best-effort",
                pod(vec![
                    container(("", ""), ("", "")),
                    container(("", ""), ("", "")),
                ]),
                QosClass::BestEffort,
            ),
            (
                "best-effort",
                pod(vec![container(("", ""), ("", ""))]),
                QosClass::BestEffort,
            ),
            (
                "best-effort-burstable",
                pod(vec![
                    container(("", ""), ("", "")),
                    container(("1", ""), ("2", "")),
                ]),
                QosClass::Burstable,
            ),
            (
                "best-effort-guaranteed",
                pod(vec![
                    container(("", ""), ("", "")),
                    container(("10m", "100Mi"), ("10m", "100Mi")),
                ]),
                QosClass::Burstable,
            ),
            (
                "burstable-cpu-guaranteed-memory",
                pod(vec![container(("", "100Mi"), ("", "100Mi"))]),
                QosClass::Burstable,
            ),
            (
                "burstable-no-limits",
                pod(vec![container(("100m", "100Mi"), ("", ""))]),
                QosClass::Burstable,
            ),
            (
                "burstable-guaranteed",
                pod(vec![
                    container(("1", "100Mi"), ("2", "100Mi")),
                    container(("100m", "100Mi"), ("100m", "100Mi")),
                ]),
                QosClass::Burstable,
            ),
            (
                "burstable-unbounded-but-requests-match-limits",
                pod(vec![
                    container(("100m", "100Mi"), ("200m", "200Mi")),
                    container(("100m", "100Mi"), ("", "")),
                ]),
                QosClass::Burstable,
            ),
            (
                "burstable-1",
                pod(vec![container(("10m", "100Mi"), ("100m", "200Mi"))]),
                QosClass::Burstable,
            ),
            (
                "burstable-2",
                pod(vec![container(("0", "0"), ("100m", "200Mi"))]),
                QosClass::Burstable,
            ),
            (
                "best-effort-hugepages",
                pod(vec![{
                    let mut c = container(("0", "0"), ("0", "0"));
                    let r = c.resources.as_mut().unwrap();
                    for list in [r.requests.as_mut(), r.limits.as_mut()]
                        .into_iter()
                        .flatten()
                    {
                        list.insert(
                            "hugepages-2Mi".into(),
                            k8s_openapi::apimachinery::pkg::api::resource::Quantity("1Gi".into()),
                        );
                    }
                    c
                }]),
                QosClass::BestEffort,
            ),
            (
                "init-container",
                pod_with_init(
                    vec![container(("", ""), ("", ""))],
                    vec![container(("10m", "100Mi"), ("100m", "200Mi"))],
                ),
                QosClass::Burstable,
            ),
            (
                "guaranteed-init-and-app",
                pod_with_init(
                    vec![container(("100m", "100Mi"), ("100m", "100Mi"))],
                    vec![container(("50m", "10Mi"), ("50m", "10Mi"))],
                ),
                QosClass::Guaranteed,
            ),
            (
                "guaranteed-with-pod-level-resources",
                pod_with_resources(
                    vec![container(("", ""), ("", ""))],
                    resources(("10m", "100Mi"), ("10m", "100Mi")),
                ),
                QosClass::Guaranteed,
            ),
            (
                "guaranteed-with-pod-and-container-level-resources",
                pod_with_resources(
                    vec![container(("3m", "10Mi"), ("5m", "20Mi"))],
                    resources(("10m", "100Mi"), ("10m", "100Mi")),
                ),
                QosClass::Guaranteed,
            ),
            (
                "burstable-with-pod-level-resources",
                pod_with_resources(
                    vec![container(("", ""), ("", ""))],
                    resources(("10m", "10Mi"), ("20m", "50Mi")),
                ),
                QosClass::Burstable,
            ),
            (
                "burstable-with-pod-and-container-level-resources",
                pod_with_resources(
                    vec![container(("5m", "10Mi"), ("5m", "10Mi"))],
                    resources(("10m", "10Mi"), ("20m", "50Mi")),
                ),
                QosClass::Burstable,
            ),
            (
                "burstable-with-pod-and-container-level-requests",
                pod_with_resources(
                    vec![container(("5m", "10Mi"), ("", ""))],
                    resources(("10m", "10Mi"), ("", "")),
                ),
                QosClass::Burstable,
            ),
            (
                "burstable-with-pod-and-container-level-resources-2",
                pod_with_resources(
                    vec![
                        container(("5m", "10Mi"), ("", "")),
                        container(("5m", "10Mi"), ("5m", "10Mi")),
                    ],
                    resources(("10m", "10Mi"), ("5m", "")),
                ),
                QosClass::Burstable,
            ),
            (
                "pod-level-hugepages-only-falls-back-to-containers",
                {
                    let mut spec = pod(vec![container(("100m", "100Mi"), ("100m", "100Mi"))]);
                    spec.resources = Some(k8s_openapi::api::core::v1::ResourceRequirements {
                        limits: Some(
                            [(
                                "hugepages-2Mi".to_string(),
                                k8s_openapi::apimachinery::pkg::api::resource::Quantity(
                                    "2Mi".into(),
                                ),
                            )]
                            .into(),
                        ),
                        ..Default::default()
                    });
                    spec
                },
                QosClass::Guaranteed,
            ),
            ("no-containers", pod(vec![]), QosClass::BestEffort),
        ];
        for (name, spec, want) in cases {
            assert_eq!(pod_qos(&spec), want, "{name}");
        }
    }

    #[test]
    fn class_names_match_status_qos_class() {
        assert_eq!(QosClass::Guaranteed.to_string(), "Guaranteed");
        assert_eq!(QosClass::Burstable.as_str(), "Burstable");
        assert_eq!(QosClass::BestEffort.as_str(), "BestEffort");
    }
}
