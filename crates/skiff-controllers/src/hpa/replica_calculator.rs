//! How many replicas one resource metric asks for (`replica_calculator.go`).
//!
//! Pure: the caller hands in the pods the target's selector matches and the usage figures the
//! metrics source reported for them; nothing here reads the clock except through `now`.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::core::v1::{Container, Pod};
use skiff_client::metrics::PodUsage;

/// The resource the autoscaler reads for CPU; its samples get the readiness rules.
pub const CPU: &str = "cpu";
/// The resource the autoscaler reads for memory.
pub const MEMORY: &str = "memory";

/// One pod's usage of one resource, in milli-units (millicores, or bytes × 1000), as the
/// upstream metrics client reduces a `PodMetrics` object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PodMetric {
    /// Usage summed over the pod's (or the chosen container's) containers, in milli-units.
    pub value: i64,
    /// When the sample's window ended.
    pub timestamp: Timestamp,
    /// How long the window was; a sample taken too soon after readiness changed is distrusted.
    pub window: Duration,
}

/// Samples by pod name.
pub type PodMetricsInfo = BTreeMap<String, PodMetric>;

/// Why a replica count could not be computed; the messages are Kubernetes' own.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CalcError {
    /// The metrics source had nothing for the selected pods.
    #[error("unable to get metrics for resource {resource}: no metrics returned from resource metrics API")]
    NoMetrics {
        /// The resource asked for.
        resource: String,
    },
    /// The target's selector matches no pod.
    #[error("no pods returned by selector while calculating replica count")]
    NoPods,
    /// Utilization is relative to requests, so every counted container needs one.
    #[error("missing request for {resource} in container {container} of Pod {pod}")]
    MissingRequest {
        /// The resource without a request.
        resource: String,
        /// The container lacking it.
        container: String,
        /// The pod holding the container.
        pod: String,
    },
    /// Every sample belonged to a pod that does not count yet (unready, ignored).
    #[error("did not receive metrics for any ready pods")]
    NoReadyMetrics,
    /// No sample belongs to a pod with requests.
    #[error("no metrics returned matched known pods")]
    NoMatchingMetrics,
}

/// The outcome of a utilization target: the replica proposal and the figures the status shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UtilizationProposal {
    /// Replicas the metric asks for.
    pub replicas: i32,
    /// Usage as a whole percentage of requests over the pods that count.
    pub utilization: i32,
    /// Mean usage per counted pod, in milli-units.
    pub raw_average: i64,
    /// When the samples were taken.
    pub timestamp: Timestamp,
}

/// The outcome of an average-value target.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ValueProposal {
    /// Replicas the metric asks for.
    pub replicas: i32,
    /// Mean usage per counted pod, in milli-units.
    pub usage: i64,
    /// When the samples were taken.
    pub timestamp: Timestamp,
}

/// The controller's tunables that shape one calculation (kube-controller-manager flags).
#[derive(Clone, Copy, Debug)]
pub struct ReplicaCalculator {
    /// Relative distance from the target within which nothing changes (0.1).
    pub tolerance: f64,
    /// After a pod starts, how long CPU samples are trusted only from a ready pod (5 min).
    pub cpu_initialization_period: Duration,
    /// After a pod starts, how long an unready pod counts as never having been ready (30 s).
    pub delay_of_initial_readiness_status: Duration,
}

impl Default for ReplicaCalculator {
    fn default() -> Self {
        ReplicaCalculator {
            tolerance: 0.1,
            cpu_initialization_period: Duration::from_secs(300),
            delay_of_initial_readiness_status: Duration::from_secs(30),
        }
    }
}

/// How the pods of one calculation fall apart.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PodGroups {
    /// Pods whose samples count as they are.
    pub ready_count: usize,
    /// Pods not ready yet (pending, or CPU samples not trustworthy yet).
    pub unready: BTreeSet<String>,
    /// Running pods without a sample.
    pub missing: BTreeSet<String>,
    /// Deleted or failed pods, left out entirely.
    pub ignored: BTreeSet<String>,
}

fn phase(pod: &Pod) -> &str {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("")
}

fn add(t: Timestamp, d: Duration) -> Timestamp {
    SignedDuration::try_from(d)
        .ok()
        .and_then(|d| t.checked_add(d).ok())
        .unwrap_or(Timestamp::MAX)
}

/// Sorts pods the way `groupPods` does: ignored (deleted, failed), unready (pending; for CPU
/// also pods whose samples may reflect start-up), missing (no sample) and ready.
pub fn group_pods(
    pods: &[Pod],
    metrics: &PodMetricsInfo,
    resource: &str,
    cpu_initialization_period: Duration,
    delay_of_initial_readiness_status: Duration,
    now: Timestamp,
) -> PodGroups {
    let mut groups = PodGroups::default();
    for pod in pods {
        let name = pod.metadata.name.clone().unwrap_or_default();
        if pod.metadata.deletion_timestamp.is_some() || phase(pod) == "Failed" {
            groups.ignored.insert(name);
            continue;
        }
        if phase(pod) == "Pending" {
            groups.unready.insert(name);
            continue;
        }
        let Some(metric) = metrics.get(&name) else {
            groups.missing.insert(name);
            continue;
        };
        if resource == CPU {
            let status = pod.status.as_ref();
            let ready = status
                .and_then(|s| s.conditions.as_ref())
                .and_then(|c| c.iter().find(|c| c.type_ == "Ready"));
            let start = status.and_then(|s| s.start_time.as_ref()).map(|t| t.0);
            let unready = match (ready, start) {
                (Some(condition), Some(start)) => {
                    // An absent transition time reads as Go's zero time: long ago.
                    let transition = condition
                        .last_transition_time
                        .as_ref()
                        .map(|t| t.0)
                        .unwrap_or(Timestamp::MIN);
                    let is_false = condition.status == "False";
                    if add(start, cpu_initialization_period) > now {
                        // Still starting: trust only a ready pod whose whole window followed
                        // its last readiness change.
                        is_false || metric.timestamp < add(transition, metric.window)
                    } else {
                        // Started long ago: distrust only a pod that never became ready.
                        is_false && add(start, delay_of_initial_readiness_status) > transition
                    }
                }
                _ => true,
            };
            if unready {
                groups.unready.insert(name);
                continue;
            }
        }
        groups.ready_count += 1;
    }
    groups
}

fn counted_containers(pod: &Pod) -> impl Iterator<Item = &Container> {
    let spec = pod.spec.as_ref();
    let sidecars = spec
        .and_then(|s| s.init_containers.as_ref())
        .into_iter()
        .flatten()
        .filter(|c| c.restart_policy.as_deref() == Some("Always"));
    spec.map(|s| s.containers.iter())
        .into_iter()
        .flatten()
        .chain(sidecars)
}

/// Sums each pod's requests of `resource` in milli-units, over every container (sidecars
/// included) or only `container`; a counted container without a request is an error.
pub fn calculate_pod_requests(
    pods: &[Pod],
    container: Option<&str>,
    resource: &str,
) -> Result<BTreeMap<String, i64>, CalcError> {
    let mut requests = BTreeMap::new();
    for pod in pods {
        let pod_name = pod.metadata.name.clone().unwrap_or_default();
        let mut sum: i64 = 0;
        for c in counted_containers(pod) {
            if container.is_some_and(|wanted| wanted != c.name) {
                continue;
            }
            let request = c
                .resources
                .as_ref()
                .and_then(|r| r.requests.as_ref())
                .and_then(|r| r.get(resource))
                .and_then(|q| skiff_api::quantity::parse_milli(&q.0));
            match request {
                Some(milli) => sum = sum.saturating_add(milli),
                None => {
                    return Err(CalcError::MissingRequest {
                        resource: resource.to_string(),
                        container: c.name.clone(),
                        pod: pod_name,
                    })
                }
            }
        }
        requests.insert(pod_name, sum);
    }
    Ok(requests)
}

/// `GetResourceUtilizationRatio`: (ratio to target, utilization %, mean raw usage), over the
/// samples of pods with known requests.
pub fn resource_utilization_ratio(
    metrics: &PodMetricsInfo,
    requests: &BTreeMap<String, i64>,
    target_utilization: i32,
) -> Result<(f64, i32, i64), CalcError> {
    let mut metrics_total: i64 = 0;
    let mut requests_total: i64 = 0;
    let mut entries: i64 = 0;
    for (pod, metric) in metrics {
        // Samples of unknown pods are extraneous; missing requests are caught elsewhere.
        let Some(request) = requests.get(pod) else {
            continue;
        };
        metrics_total = metrics_total.saturating_add(metric.value);
        requests_total = requests_total.saturating_add(*request);
        entries += 1;
    }
    if requests_total == 0 {
        return Err(CalcError::NoMatchingMetrics);
    }
    let utilization = (metrics_total.saturating_mul(100) / requests_total) as i32;
    Ok((
        f64::from(utilization) / f64::from(target_utilization),
        utilization,
        metrics_total / entries.max(1),
    ))
}

/// `GetMetricUsageRatio`: (ratio to target, mean usage) over every sample.
pub fn metric_usage_ratio(metrics: &PodMetricsInfo, target_usage: i64) -> (f64, i64) {
    let total: i64 = metrics.values().map(|m| m.value).sum();
    let usage = total / (metrics.len().max(1) as i64);
    (usage as f64 / target_usage as f64, usage)
}

fn ceil_replicas(x: f64) -> i32 {
    let c = x.ceil();
    if c >= f64::from(i32::MAX) {
        i32::MAX
    } else {
        c as i32
    }
}

impl ReplicaCalculator {
    /// `GetResourceReplicas`: replicas for a target utilization (percent of requests).
    #[allow(clippy::too_many_arguments)]
    pub fn resource_replicas(
        &self,
        current_replicas: i32,
        target_utilization: i32,
        resource: &str,
        container: Option<&str>,
        pods: &[Pod],
        mut metrics: PodMetricsInfo,
        timestamp: Timestamp,
        now: Timestamp,
    ) -> Result<UtilizationProposal, CalcError> {
        let groups = self.ready_groups(pods, &mut metrics, resource, now)?;
        let requests = calculate_pod_requests(pods, container, resource)?;
        if metrics.is_empty() {
            return Err(CalcError::NoReadyMetrics);
        }
        let (usage_ratio, utilization, raw_average) =
            resource_utilization_ratio(&metrics, &requests, target_utilization)?;
        // Scaling down, a pod without a sample is assumed at its request (or at the target
        // when that is above 100%), so it never speeds the scale-down.
        let fallback = i64::from(target_utilization.max(100));
        let replicas = self.replicas_for_ratio(
            current_replicas,
            usage_ratio,
            &groups,
            metrics,
            |name| requests.get(name).copied().unwrap_or(0) * fallback / 100,
            |metrics| {
                resource_utilization_ratio(metrics, &requests, target_utilization)
                    .map(|(ratio, _, _)| ratio)
            },
        )?;
        Ok(UtilizationProposal {
            replicas,
            utilization,
            raw_average,
            timestamp,
        })
    }

    /// `GetRawResourceReplicas`: replicas for a target average usage per pod (milli-units).
    #[allow(clippy::too_many_arguments)]
    pub fn raw_resource_replicas(
        &self,
        current_replicas: i32,
        target_usage: i64,
        resource: &str,
        pods: &[Pod],
        mut metrics: PodMetricsInfo,
        timestamp: Timestamp,
        now: Timestamp,
    ) -> Result<ValueProposal, CalcError> {
        let groups = self.ready_groups(pods, &mut metrics, resource, now)?;
        if metrics.is_empty() {
            return Err(CalcError::NoReadyMetrics);
        }
        let (usage_ratio, usage) = metric_usage_ratio(&metrics, target_usage);
        let replicas = self.replicas_for_ratio(
            current_replicas,
            usage_ratio,
            &groups,
            metrics,
            |_| target_usage,
            |metrics| Ok(metric_usage_ratio(metrics, target_usage).0),
        )?;
        Ok(ValueProposal {
            replicas,
            usage,
            timestamp,
        })
    }

    /// The start both calculations share: fails without samples or pods, groups the pods,
    /// and drops the samples of ignored and unready pods from `metrics`.
    fn ready_groups(
        &self,
        pods: &[Pod],
        metrics: &mut PodMetricsInfo,
        resource: &str,
        now: Timestamp,
    ) -> Result<PodGroups, CalcError> {
        if metrics.is_empty() {
            return Err(CalcError::NoMetrics {
                resource: resource.to_string(),
            });
        }
        if pods.is_empty() {
            return Err(CalcError::NoPods);
        }
        let groups = group_pods(
            pods,
            metrics,
            resource,
            self.cpu_initialization_period,
            self.delay_of_initial_readiness_status,
            now,
        );
        for name in groups.ignored.iter().chain(groups.unready.iter()) {
            metrics.remove(name);
        }
        Ok(groups)
    }

    /// The decision both calculations share, from `usage_ratio` over the ready samples:
    /// scale by it at once when every ready pod has a sample and no unready pod would be
    /// scaled up past; otherwise fill in the missing pods (at `scale_down_fill` of a pod when
    /// scaling down, idle when scaling up) and, scaling up, the unready ones (idle), measure
    /// again with `ratio_of`, and keep `current_replicas` when the new ratio is within
    /// tolerance or turns the decision around.
    fn replicas_for_ratio(
        &self,
        current_replicas: i32,
        usage_ratio: f64,
        groups: &PodGroups,
        mut metrics: PodMetricsInfo,
        scale_down_fill: impl Fn(&str) -> i64,
        ratio_of: impl Fn(&PodMetricsInfo) -> Result<f64, CalcError>,
    ) -> Result<i32, CalcError> {
        let scale_up_with_unready = !groups.unready.is_empty() && usage_ratio > 1.0;
        if !scale_up_with_unready && groups.missing.is_empty() {
            if (1.0 - usage_ratio).abs() <= self.tolerance {
                return Ok(current_replicas);
            }
            return Ok(ceil_replicas(usage_ratio * groups.ready_count as f64));
        }

        if !groups.missing.is_empty() {
            if usage_ratio < 1.0 {
                for name in &groups.missing {
                    metrics.insert(name.clone(), zero_sample(scale_down_fill(name)));
                }
            } else if usage_ratio > 1.0 {
                // Scaling up: a pod without a sample is assumed idle.
                for name in &groups.missing {
                    metrics.insert(name.clone(), zero_sample(0));
                }
            }
        }
        if scale_up_with_unready {
            for name in &groups.unready {
                metrics.insert(name.clone(), zero_sample(0));
            }
        }

        let new_ratio = ratio_of(&metrics)?;
        if (1.0 - new_ratio).abs() <= self.tolerance
            || (usage_ratio < 1.0 && new_ratio > 1.0)
            || (usage_ratio > 1.0 && new_ratio < 1.0)
        {
            return Ok(current_replicas);
        }
        let new_replicas = ceil_replicas(new_ratio * metrics.len() as f64);
        if (new_ratio < 1.0 && new_replicas > current_replicas)
            || (new_ratio > 1.0 && new_replicas < current_replicas)
        {
            return Ok(current_replicas);
        }
        Ok(new_replicas)
    }
}

fn zero_sample(value: i64) -> PodMetric {
    PodMetric {
        value,
        timestamp: Timestamp::UNIX_EPOCH,
        window: Duration::ZERO,
    }
}

/// Reduces the metrics source's pod usage to samples of `resource` for the pods named in
/// `pods` (the pods the target's selector matches), as the resource metrics client does: a pod
/// whose containers lack the figure (or lack `container`) has no sample. Returns the samples
/// and the timestamp of the first one.
pub fn pod_metrics_from_usage(
    usage: &[PodUsage],
    namespace: &str,
    pods: &[Pod],
    resource: &str,
    container: Option<&str>,
) -> (PodMetricsInfo, Timestamp) {
    let selected: BTreeSet<&str> = pods
        .iter()
        .filter_map(|p| p.metadata.name.as_deref())
        .collect();
    let mut items: Vec<&PodUsage> = usage
        .iter()
        .filter(|u| u.namespace == namespace && selected.contains(u.name.as_str()))
        .collect();
    items.sort_by(|a, b| a.name.cmp(&b.name));
    let timestamp = items
        .first()
        .and_then(|u| Timestamp::try_from(u.timestamp).ok())
        .unwrap_or(Timestamp::UNIX_EPOCH);
    let value_of = |c: &skiff_client::metrics::ContainerUsage| -> i64 {
        match resource {
            CPU => i64::try_from(c.cpu_nanocores.div_ceil(1_000_000)).unwrap_or(i64::MAX),
            _ => i64::try_from(c.memory_bytes)
                .unwrap_or(i64::MAX)
                .saturating_mul(1000),
        }
    };
    let mut out = PodMetricsInfo::new();
    for item in items {
        if resource != CPU && resource != MEMORY {
            continue;
        }
        let value = match container {
            Some(wanted) => match item.containers.iter().find(|c| c.name == wanted) {
                Some(c) => value_of(c),
                None => continue,
            },
            None => {
                if item.containers.is_empty() {
                    continue;
                }
                item.containers.iter().map(value_of).sum()
            }
        };
        out.insert(
            item.name.clone(),
            PodMetric {
                value,
                timestamp: Timestamp::try_from(item.timestamp).unwrap_or(Timestamp::UNIX_EPOCH),
                window: item.window,
            },
        );
    }
    (out, timestamp)
}
