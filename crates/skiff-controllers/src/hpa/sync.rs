//! One reconcile of one autoscaler (`reconcileAutoscaler`), as a pure function: given the
//! autoscaler, its target's scale, the pods and their usage, decide the new size, the status
//! and the events, exactly as upstream words them.

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::autoscaling::v2::{
    ContainerResourceMetricStatus, HorizontalPodAutoscaler, HorizontalPodAutoscalerCondition,
    HorizontalPodAutoscalerStatus, MetricSpec, MetricStatus, MetricTarget, MetricValueStatus,
    ResourceMetricStatus,
};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serde_json::{Map, Value};
use skiff_api::selector::LabelSelector;
use skiff_client::metrics::PodUsage;

use super::normalize::{
    convert_desired_replicas_with_rules, scale_down_rules, scale_up_rules, History,
    NormalizationArgs, Normalized,
};
use super::replica_calculator::{pod_metrics_from_usage, ReplicaCalculator};
use crate::deployment::{Event, EventType};

/// The controller's settings (kube-controller-manager's `--horizontal-pod-autoscaler-*`).
#[derive(Clone, Copy, Debug)]
pub struct HpaConfig {
    /// How often every autoscaler is reconciled (15 s).
    pub sync_period: Duration,
    /// The scale-down stabilization window when `behavior` does not set one (5 min).
    pub downscale_stabilization: Duration,
    /// Tolerance and readiness rules of the replica calculation.
    pub calculator: ReplicaCalculator,
}

impl Default for HpaConfig {
    fn default() -> Self {
        HpaConfig {
            sync_period: Duration::from_secs(15),
            downscale_stabilization: Duration::from_secs(300),
            calculator: ReplicaCalculator::default(),
        }
    }
}

/// What the target's scale subresource says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScaleView {
    /// `spec.replicas`: the size the autoscaler works from and writes.
    pub spec_replicas: i32,
    /// `status.replicas`.
    pub status_replicas: i32,
    /// `status.selector`: which pods are the target's.
    pub selector: String,
}

impl ScaleView {
    /// Reads an `autoscaling/v1` Scale object.
    pub fn from_scale(scale: &Value) -> ScaleView {
        let int = |p: &str| {
            scale
                .pointer(p)
                .and_then(Value::as_i64)
                .and_then(|v| i32::try_from(v).ok())
                .unwrap_or(0)
        };
        ScaleView {
            spec_replicas: int("/spec/replicas"),
            status_replicas: int("/status/replicas"),
            selector: scale
                .pointer("/status/selector")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
        }
    }
}

/// A resize the sync decided on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rescale {
    /// The new `spec.replicas`.
    pub replicas: i32,
    /// The size it replaces.
    pub previous: i32,
    /// Why, as the `SuccessfulRescale` event says it.
    pub reason: String,
}

/// Everything one sync decided.
#[derive(Clone, Debug, PartialEq)]
pub struct SyncPlan {
    /// The status to write when it differs from the stored one.
    pub status: HorizontalPodAutoscalerStatus,
    /// The resize to apply through the scale subresource, if any.
    pub rescale: Option<Rescale>,
    /// Events to record, in order.
    pub events: Vec<Event>,
    /// Why the sync failed, if it did (the controller logs it and tries again next period).
    pub error: Option<String>,
    /// The status to write instead when the resize fails.
    status_if_rescale_fails: Option<HorizontalPodAutoscalerStatus>,
    /// `Kind/namespace/name` of the target, for error messages.
    reference: String,
}

impl SyncPlan {
    /// Rewrites the plan for a resize the API refused: a `FailedRescale` warning, `AbleToScale`
    /// false with `FailedUpdateScale`, and the desired count left as it was.
    pub fn rescale_failed(&mut self, error: &str, now: Timestamp) {
        let Some(rescale) = self.rescale.take() else {
            return;
        };
        self.events
            .retain(|e| e.reason != "SuccessfulRescale" || e.type_ != EventType::Normal);
        self.events.push(warning(
            "FailedRescale",
            format!(
                "New size: {}; reason: {}; error: {error}",
                rescale.replicas, rescale.reason
            ),
        ));
        if let Some(mut status) = self.status_if_rescale_fails.take() {
            set_condition(
                &mut status.conditions,
                "AbleToScale",
                "False",
                "FailedUpdateScale",
                format!("the HPA controller was unable to update the target scale: {error}"),
                now,
            );
            self.status = status;
        }
        self.error = Some(format!("failed to rescale {}: {error}", self.reference));
    }

    /// Whether the status differs from what is stored.
    pub fn status_changed(&self, stored: Option<&HorizontalPodAutoscalerStatus>) -> bool {
        let stored = stored.cloned().unwrap_or_default();
        serde_json::to_value(&stored).ok() != serde_json::to_value(&self.status).ok()
    }
}

fn warning(reason: &str, message: String) -> Event {
    Event {
        type_: EventType::Warning,
        reason: reason.to_string(),
        message,
        replica_set: None,
    }
}

fn normal(reason: &str, message: String) -> Event {
    Event {
        type_: EventType::Normal,
        reason: reason.to_string(),
        message,
        replica_set: None,
    }
}

/// `setConditionInList`: sets one condition, moving its transition time only when its status
/// changes.
pub fn set_condition(
    conditions: &mut Option<Vec<HorizontalPodAutoscalerCondition>>,
    type_: &str,
    status: &str,
    reason: &str,
    message: String,
    now: Timestamp,
) {
    let list = conditions.get_or_insert_with(Vec::new);
    let index = match list.iter().position(|c| c.type_ == type_) {
        Some(i) => i,
        None => {
            list.push(HorizontalPodAutoscalerCondition {
                type_: type_.to_string(),
                ..Default::default()
            });
            list.len() - 1
        }
    };
    let condition = &mut list[index];
    if condition.status != status {
        condition.last_transition_time = Some(Time(now));
    }
    condition.status = status.to_string();
    condition.reason = Some(reason.to_string());
    condition.message = Some(message);
}

/// A milli-value as the canonical decimal quantity Kubernetes prints (`250m`, `1`, `100M`).
pub fn milli_quantity(milli: i64) -> Quantity {
    if milli % 1000 != 0 {
        return Quantity(format!("{milli}m"));
    }
    let mut value = milli / 1000;
    let mut suffix = 0;
    const SUFFIXES: [&str; 7] = ["", "k", "M", "G", "T", "P", "E"];
    while value != 0 && value % 1000 == 0 && suffix + 1 < SUFFIXES.len() {
        value /= 1000;
        suffix += 1;
    }
    Quantity(format!("{value}{}", SUFFIXES[suffix]))
}

/// One metric that could not be evaluated: the condition reason and the error chain.
struct MetricFailure {
    reason: &'static str,
    /// The error as the condition and its event carry it.
    inner: String,
    /// The error as the metric loop reports it.
    outer: String,
}

struct MetricProposal {
    replicas: i32,
    name: String,
    status: MetricStatus,
}

/// What a metric computation needs besides the spec.
struct MetricContext<'a> {
    namespace: &'a str,
    spec_replicas: i32,
    pods: &'a [Pod],
    usage: &'a [PodUsage],
    calculator: &'a ReplicaCalculator,
    now: Timestamp,
}

fn resource_metric(
    ctx: &MetricContext<'_>,
    resource: &str,
    container: Option<&str>,
    target: &MetricTarget,
) -> Result<(i32, String, MetricValueStatus), String> {
    let (samples, timestamp) =
        pod_metrics_from_usage(ctx.usage, ctx.namespace, ctx.pods, resource, container);
    if let Some(average) = &target.average_value {
        let target_milli = skiff_api::quantity::parse_milli(&average.0).unwrap_or(0);
        let proposal = ctx
            .calculator
            .raw_resource_replicas(
                ctx.spec_replicas,
                target_milli,
                resource,
                ctx.pods,
                samples,
                timestamp,
                ctx.now,
            )
            .map_err(|e| format!("failed to get {resource} usage: {e}"))?;
        return Ok((
            proposal.replicas,
            format!("{resource} resource"),
            MetricValueStatus {
                average_value: Some(milli_quantity(proposal.usage)),
                ..Default::default()
            },
        ));
    }
    let Some(target_utilization) = target.average_utilization else {
        return Err("invalid resource metric source: neither an average utilization target nor an average value (usage) target was set".to_string());
    };
    let proposal = ctx
        .calculator
        .resource_replicas(
            ctx.spec_replicas,
            target_utilization,
            resource,
            container,
            ctx.pods,
            samples,
            timestamp,
            ctx.now,
        )
        .map_err(|e| format!("failed to get {resource} utilization: {e}"))?;
    let name = if container.is_some() {
        format!("{resource} container resource utilization (percentage of request)")
    } else {
        format!("{resource} resource utilization (percentage of request)")
    };
    Ok((
        proposal.replicas,
        name,
        MetricValueStatus {
            average_utilization: Some(proposal.utilization),
            average_value: Some(milli_quantity(proposal.raw_average)),
            ..Default::default()
        },
    ))
}

fn compute_metric(
    ctx: &MetricContext<'_>,
    spec: &MetricSpec,
) -> Result<MetricProposal, MetricFailure> {
    match spec.type_.as_str() {
        "Resource" => {
            let Some(source) = &spec.resource else {
                return Err(spec_failure(spec, "FailedGetResourceMetric"));
            };
            match resource_metric(ctx, &source.name, None, &source.target) {
                Ok((replicas, name, current)) => Ok(MetricProposal {
                    replicas,
                    name,
                    status: MetricStatus {
                        type_: "Resource".to_string(),
                        resource: Some(ResourceMetricStatus {
                            name: source.name.clone(),
                            current,
                        }),
                        ..Default::default()
                    },
                }),
                Err(inner) => Err(MetricFailure {
                    reason: "FailedGetResourceMetric",
                    outer: format!(
                        "failed to get {} resource metric value: {inner}",
                        source.name
                    ),
                    inner,
                }),
            }
        }
        "ContainerResource" => {
            let Some(source) = &spec.container_resource else {
                return Err(spec_failure(spec, "FailedGetContainerResourceMetric"));
            };
            match resource_metric(ctx, &source.name, Some(&source.container), &source.target) {
                Ok((replicas, name, current)) => Ok(MetricProposal {
                    replicas,
                    name,
                    status: MetricStatus {
                        type_: "ContainerResource".to_string(),
                        container_resource: Some(ContainerResourceMetricStatus {
                            name: source.name.clone(),
                            container: source.container.clone(),
                            current,
                        }),
                        ..Default::default()
                    },
                }),
                Err(inner) => Err(MetricFailure {
                    reason: "FailedGetContainerResourceMetric",
                    outer: format!(
                        "failed to get {} container metric value: {inner}",
                        source.container
                    ),
                    inner,
                }),
            }
        }
        "Pods" => Err(no_custom_metrics(
            "FailedGetPodsMetric",
            "pods",
            spec.pods.as_ref().map(|p| p.metric.name.as_str()),
        )),
        "Object" => Err(no_custom_metrics(
            "FailedGetObjectMetric",
            "object",
            spec.object.as_ref().map(|p| p.metric.name.as_str()),
        )),
        "External" => {
            let name = spec
                .external
                .as_ref()
                .map(|p| p.metric.name.as_str())
                .unwrap_or("");
            let inner = format!(
                "unable to get external metric {}/{name}: no external metrics API (external.metrics.k8s.io) is served",
                ctx.namespace
            );
            Err(MetricFailure {
                reason: "FailedGetExternalMetric",
                outer: format!("failed to get {name} external metric value: {inner}"),
                inner,
            })
        }
        other => {
            let inner = format!("unknown metric source type {other:?}");
            Err(MetricFailure {
                reason: "InvalidMetricSourceType",
                outer: inner.clone(),
                inner,
            })
        }
    }
}

/// A custom metric (`kind` "pods" or "object") cannot be read: no custom metrics API is served.
fn no_custom_metrics(reason: &'static str, kind: &str, metric: Option<&str>) -> MetricFailure {
    let name = metric.unwrap_or("");
    let inner = format!(
        "unable to get metric {name}: no custom metrics API (custom.metrics.k8s.io) is served"
    );
    MetricFailure {
        reason,
        outer: format!("failed to get {kind} metric value: {inner}"),
        inner,
    }
}

fn spec_failure(spec: &MetricSpec, reason: &'static str) -> MetricFailure {
    let inner = format!("invalid {} metric source: source is not set", spec.type_);
    MetricFailure {
        reason,
        outer: inner.clone(),
        inner,
    }
}

fn default_metrics() -> Vec<MetricSpec> {
    serde_json::from_value(serde_json::json!([{
        "type": "Resource",
        "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}
    }]))
    .unwrap_or_default()
}

fn labels_of(pod: &Pod) -> Map<String, Value> {
    pod.metadata
        .labels
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect()
}

/// Plans one sync. `scale` is the target's scale or the error reading it; `namespace_pods`
/// are the pods of the autoscaler's namespace; `usage` is what the metrics source reports.
/// `history` is updated with this sync's proposal; call [`History::store_scale_event`] once
/// a planned resize succeeded.
pub fn plan_sync(
    hpa: &HorizontalPodAutoscaler,
    scale: Result<&ScaleView, String>,
    namespace_pods: &[Pod],
    usage: &[PodUsage],
    history: &mut History,
    config: &HpaConfig,
    now: Timestamp,
) -> SyncPlan {
    let mut status = hpa.status.clone().unwrap_or_default();
    let mut events = Vec::new();
    let spec = hpa.spec.clone();
    let namespace = hpa.metadata.namespace.as_deref().unwrap_or("");
    let reference = format!(
        "{}/{}/{}",
        spec.scale_target_ref.kind, namespace, spec.scale_target_ref.name
    );

    let scale = match scale {
        Ok(scale) => scale,
        Err(error) => {
            events.push(warning("FailedGetScale", error.clone()));
            set_condition(
                &mut status.conditions,
                "AbleToScale",
                "False",
                "FailedGetScale",
                format!("the HPA controller was unable to get the target's current scale: {error}"),
                now,
            );
            return SyncPlan {
                status,
                rescale: None,
                events,
                error: Some(format!(
                    "failed to query scale subresource for {reference}: {error}"
                )),
                status_if_rescale_fails: None,
                reference,
            };
        }
    };
    set_condition(
        &mut status.conditions,
        "AbleToScale",
        "True",
        "SucceededGetScale",
        "the HPA controller was able to get the target's current scale".to_string(),
        now,
    );
    let current_replicas = scale.spec_replicas;
    history.record_initial_recommendation(current_replicas, now);
    let min_replicas = spec.min_replicas.unwrap_or(1);
    let max_replicas = spec.max_replicas;

    let mut desired_replicas = 0;
    let mut rescale_reason = String::new();
    let mut metric_statuses: Option<Vec<MetricStatus>> = None;
    let mut error = None;
    let rescale;
    if current_replicas == 0 && min_replicas != 0 {
        rescale = false;
        set_condition(
            &mut status.conditions,
            "ScalingActive",
            "False",
            "ScalingDisabled",
            "scaling is disabled since the replica count of the target is zero".to_string(),
            now,
        );
    } else if current_replicas > max_replicas {
        rescale_reason = "Current number of replicas above Spec.MaxReplicas".to_string();
        desired_replicas = max_replicas;
        rescale = true;
    } else if current_replicas < min_replicas {
        rescale_reason = "Current number of replicas below Spec.MinReplicas".to_string();
        desired_replicas = min_replicas;
        rescale = true;
    } else {
        let computed = compute_replicas_for_metrics(
            hpa,
            &spec
                .metrics
                .clone()
                .filter(|m| !m.is_empty())
                .unwrap_or_else(default_metrics),
            scale,
            namespace_pods,
            usage,
            config,
            &mut status,
            &mut events,
            now,
        );
        metric_statuses = computed.statuses;
        let Some((metric_replicas, metric_name)) = computed.proposal else {
            let message = computed.error.unwrap_or_default();
            status.current_replicas = Some(current_replicas);
            status.current_metrics = metric_statuses;
            events.push(warning("FailedComputeMetricsReplicas", message.clone()));
            return SyncPlan {
                status,
                rescale: None,
                events,
                error: Some(format!(
                    "failed to compute desired number of replicas based on listed metrics for {reference}: {message}"
                )),
                status_if_rescale_fails: None,
                reference,
            };
        };
        error = computed.error;
        let mut rescale_metric = String::new();
        if metric_replicas > desired_replicas {
            desired_replicas = metric_replicas;
            rescale_metric = metric_name;
        }
        if desired_replicas > current_replicas {
            rescale_reason = format!("{rescale_metric} above target");
        }
        if desired_replicas < current_replicas {
            rescale_reason = "All metrics below target".to_string();
        }
        desired_replicas = match &spec.behavior {
            None => normalize_legacy(
                &mut status,
                history,
                config,
                current_replicas,
                desired_replicas,
                min_replicas,
                max_replicas,
                now,
            ),
            Some(behavior) => {
                let up = scale_up_rules(behavior.scale_up.as_ref());
                let down = scale_down_rules(
                    behavior.scale_down.as_ref(),
                    i32::try_from(config.downscale_stabilization.as_secs()).unwrap_or(i32::MAX),
                );
                let stabilized = history.stabilize_recommendation_with_behaviors(
                    current_replicas,
                    desired_replicas,
                    &up,
                    &down,
                    now,
                );
                if stabilized.replicas != desired_replicas {
                    set_condition(
                        &mut status.conditions,
                        "AbleToScale",
                        "True",
                        stabilized.reason,
                        stabilized.message.to_string(),
                        now,
                    );
                } else {
                    set_condition(
                        &mut status.conditions,
                        "AbleToScale",
                        "True",
                        "ReadyForNewScale",
                        "recommended size matches current size".to_string(),
                        now,
                    );
                }
                let limited = history.convert_desired_replicas_with_behavior_rate(
                    &NormalizationArgs {
                        scale_up: &up,
                        scale_down: &down,
                        min_replicas,
                        max_replicas,
                        current_replicas,
                        desired_replicas: stabilized.replicas,
                    },
                    now,
                );
                set_scaling_limited(&mut status, &limited, stabilized.replicas, now)
            }
        };
        rescale = desired_replicas != current_replicas;
    }

    let mut plan_rescale = None;
    let mut status_if_rescale_fails = None;
    if rescale {
        let mut failed = status.clone();
        failed.current_replicas = Some(current_replicas);
        failed.current_metrics = metric_statuses.clone();
        status_if_rescale_fails = Some(failed);
        set_condition(
            &mut status.conditions,
            "AbleToScale",
            "True",
            "SucceededRescale",
            format!("the HPA controller was able to update the target scale to {desired_replicas}"),
            now,
        );
        events.push(normal(
            "SuccessfulRescale",
            format!("New size: {desired_replicas}; reason: {rescale_reason}"),
        ));
        plan_rescale = Some(Rescale {
            replicas: desired_replicas,
            previous: current_replicas,
            reason: rescale_reason,
        });
        status.last_scale_time = Some(Time(now));
    } else {
        desired_replicas = current_replicas;
    }
    status.current_replicas = Some(current_replicas);
    status.desired_replicas = desired_replicas;
    status.current_metrics = metric_statuses;
    SyncPlan {
        status,
        rescale: plan_rescale,
        events,
        error,
        status_if_rescale_fails,
        reference,
    }
}

#[allow(clippy::too_many_arguments)]
fn normalize_legacy(
    status: &mut HorizontalPodAutoscalerStatus,
    history: &mut History,
    config: &HpaConfig,
    current_replicas: i32,
    proposal: i32,
    min_replicas: i32,
    max_replicas: i32,
    now: Timestamp,
) -> i32 {
    let stabilized =
        history.stabilize_recommendation(proposal, config.downscale_stabilization, now);
    if stabilized != proposal {
        set_condition(
            &mut status.conditions,
            "AbleToScale",
            "True",
            "ScaleDownStabilized",
            "recent recommendations were higher than current one, applying the highest recent recommendation".to_string(),
            now,
        );
    } else {
        set_condition(
            &mut status.conditions,
            "AbleToScale",
            "True",
            "ReadyForNewScale",
            "recommended size matches current size".to_string(),
            now,
        );
    }
    let limited = convert_desired_replicas_with_rules(
        current_replicas,
        stabilized,
        min_replicas,
        max_replicas,
    );
    set_scaling_limited(status, &limited, stabilized, now)
}

/// Sets `ScalingLimited` from the limits applied to the `stabilized` recommendation (true when
/// they changed it) and returns the replicas to scale to.
fn set_scaling_limited(
    status: &mut HorizontalPodAutoscalerStatus,
    limited: &Normalized,
    stabilized: i32,
    now: Timestamp,
) -> i32 {
    let limited_status = if limited.replicas == stabilized {
        "False"
    } else {
        "True"
    };
    set_condition(
        &mut status.conditions,
        "ScalingLimited",
        limited_status,
        limited.reason,
        limited.message.to_string(),
        now,
    );
    limited.replicas
}

struct ComputedMetrics {
    /// The largest proposal and its metric, `None` when scaling must not happen.
    proposal: Option<(i32, String)>,
    statuses: Option<Vec<MetricStatus>>,
    error: Option<String>,
}

/// `computeReplicasForMetrics`: the largest proposal over all metrics; invalid metrics block
/// scaling entirely when all fail or when the valid ones would scale down.
#[allow(clippy::too_many_arguments)]
fn compute_replicas_for_metrics(
    hpa: &HorizontalPodAutoscaler,
    metric_specs: &[MetricSpec],
    scale: &ScaleView,
    namespace_pods: &[Pod],
    usage: &[PodUsage],
    config: &HpaConfig,
    status: &mut HorizontalPodAutoscalerStatus,
    events: &mut Vec<Event>,
    now: Timestamp,
) -> ComputedMetrics {
    let failed = |status: &mut HorizontalPodAutoscalerStatus,
                  events: &mut Vec<Event>,
                  event_reason: &str,
                  message: String,
                  condition_message: String| {
        events.push(warning(event_reason, message.clone()));
        set_condition(
            &mut status.conditions,
            "ScalingActive",
            "False",
            "InvalidSelector",
            condition_message,
            now,
        );
        ComputedMetrics {
            proposal: None,
            statuses: None,
            error: Some(message),
        }
    };
    if scale.selector.is_empty() {
        return failed(
            status,
            events,
            "SelectorRequired",
            "selector is required".to_string(),
            "the HPA target's scale is missing a selector".to_string(),
        );
    }
    let selector = match LabelSelector::parse(&scale.selector) {
        Ok(s) => s,
        Err(e) => {
            let message = format!(
                "couldn't convert selector into a corresponding internal selector object: {e}"
            );
            return failed(status, events, "InvalidSelector", message.clone(), message);
        }
    };
    let pods: Vec<Pod> = namespace_pods
        .iter()
        .filter(|p| selector.matches(&labels_of(p)))
        .cloned()
        .collect();
    let ctx = MetricContext {
        namespace: hpa.metadata.namespace.as_deref().unwrap_or(""),
        spec_replicas: scale.spec_replicas,
        pods: &pods,
        usage,
        calculator: &config.calculator,
        now,
    };

    let mut statuses = Vec::with_capacity(metric_specs.len());
    let mut replicas = 0;
    let mut metric = String::new();
    let mut invalid = 0;
    let mut first_failure: Option<MetricFailure> = None;
    for spec in metric_specs {
        match compute_metric(&ctx, spec) {
            Ok(proposal) => {
                if replicas == 0 || proposal.replicas > replicas {
                    replicas = proposal.replicas;
                    metric = proposal.name;
                }
                statuses.push(proposal.status);
            }
            Err(failure) => {
                events.push(warning(failure.reason, failure.inner.clone()));
                statuses.push(MetricStatus::default());
                invalid += 1;
                if first_failure.is_none() {
                    first_failure = Some(failure);
                }
            }
        }
    }
    let error = first_failure.as_ref().map(|f| {
        format!(
            "invalid metrics ({invalid} invalid out of {}), first error is: {}",
            metric_specs.len(),
            f.outer
        )
    });
    if let Some(failure) = &first_failure {
        if invalid >= metric_specs.len() || replicas < scale.spec_replicas {
            set_condition(
                &mut status.conditions,
                "ScalingActive",
                "False",
                failure.reason,
                format!(
                    "the HPA was unable to compute the replica count: {}",
                    failure.inner
                ),
                now,
            );
            return ComputedMetrics {
                proposal: None,
                statuses: Some(statuses),
                error,
            };
        }
    }
    set_condition(
        &mut status.conditions,
        "ScalingActive",
        "True",
        "ValidMetricFound",
        format!("the HPA was able to successfully calculate a replica count from {metric}"),
        now,
    );
    ComputedMetrics {
        proposal: Some((replicas, metric)),
        statuses: Some(statuses),
        error,
    }
}
