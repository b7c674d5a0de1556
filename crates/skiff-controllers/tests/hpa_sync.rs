//! Whole syncs of the autoscaler planner: the steps, conditions, status and events a scripted
//! load produces, worded as Kubernetes words them.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::Pod;
use serde_json::json;
use skiff_client::metrics::{ContainerUsage, PodUsage};
use skiff_controllers::deployment::EventType;
use skiff_controllers::hpa::{plan_sync, History, HpaConfig, ScaleView, SyncPlan};

fn start() -> Timestamp {
    "2024-05-01T12:00:00Z".parse().expect("a valid timestamp")
}

fn pod(name: &str, started: Timestamp) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "default", "labels": {"app": "web"}},
        "spec": {"containers": [{"name": "web", "image": "demo",
            "resources": {"requests": {"cpu": "100m"}}}]},
        "status": {"phase": "Running", "startTime": started.to_string(),
            "conditions": [{"type": "Ready", "status": "True",
                "lastTransitionTime": started.to_string()}]}
    }))
    .expect("a valid pod")
}

fn hpa(behavior: serde_json::Value) -> HorizontalPodAutoscaler {
    let mut spec = json!({
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
        "minReplicas": 1,
        "maxReplicas": 10,
        "metrics": [{"type": "Resource", "resource": {"name": "cpu",
            "target": {"type": "Utilization", "averageUtilization": 50}}}]
    });
    if !behavior.is_null() {
        spec["behavior"] = behavior;
    }
    serde_json::from_value(json!({
        "metadata": {"name": "web", "namespace": "default"},
        "spec": spec
    }))
    .expect("a valid autoscaler")
}

/// A Deployment's pods, the load spread evenly over them, and the autoscaler's memory.
struct World {
    hpa: HorizontalPodAutoscaler,
    pods: Vec<Pod>,
    total_millicores: u64,
    history: History,
    config: HpaConfig,
    next_pod: usize,
}

impl World {
    fn new(hpa: HorizontalPodAutoscaler, replicas: usize) -> World {
        let mut world = World {
            hpa,
            pods: vec![],
            total_millicores: 0,
            history: History::default(),
            config: HpaConfig::default(),
            next_pod: 0,
        };
        world.resize(replicas, start() - SignedDuration::from_mins(10));
        world
    }

    fn resize(&mut self, replicas: usize, now: Timestamp) {
        while self.pods.len() < replicas {
            // New pods come up ready at once, long enough ago to be trusted.
            self.pods.push(pod(
                &format!("web-{}", self.next_pod),
                now - SignedDuration::from_mins(10),
            ));
            self.next_pod += 1;
        }
        self.pods.truncate(replicas);
    }

    fn usage(&self, now: Timestamp) -> Vec<PodUsage> {
        let each = self.total_millicores / self.pods.len().max(1) as u64;
        self.pods
            .iter()
            .map(|p| PodUsage {
                namespace: "default".into(),
                name: p.metadata.name.clone().unwrap_or_default(),
                timestamp: SystemTime::from(now),
                window: Duration::from_secs(30),
                containers: vec![ContainerUsage {
                    name: "web".into(),
                    cpu_nanocores: each * 1_000_000,
                    memory_bytes: 10 << 20,
                }],
            })
            .collect()
    }

    /// One sync at `now`; applies the resize and keeps the status, as the shell does.
    fn sync(&mut self, now: Timestamp) -> SyncPlan {
        let scale = web_scale(self.pods.len() as i32);
        let plan = plan_sync(
            &self.hpa,
            Ok(&scale),
            &self.pods,
            &self.usage(now),
            &mut self.history,
            &self.config,
            now,
        );
        if let Some(rescale) = &plan.rescale {
            self.history.store_scale_event(
                self.hpa.spec.behavior.as_ref(),
                rescale.previous,
                rescale.replicas,
                now,
            );
            self.resize(rescale.replicas as usize, now);
        }
        self.hpa.status = Some(plan.status.clone());
        plan
    }
}

fn condition(plan: &SyncPlan, type_: &str) -> (String, String, String) {
    let c = plan
        .status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == type_)
        .unwrap_or_else(|| panic!("condition {type_} is set"));
    (
        c.status.clone(),
        c.reason.clone().unwrap_or_default(),
        c.message.clone().unwrap_or_default(),
    )
}

fn at(secs: i64) -> Timestamp {
    start() + SignedDuration::from_secs(secs)
}

/// 400m of load on 2 pods of 100m at a 50% target asks for 8 pods: the default scale-up
/// policy (the larger of 4 pods or 100% per 15 s) allows 6 first, 8 once 15 s have passed.
/// When the load drops to 144m, 3 pods suffice, but only after the scale-down stabilization
/// window (here 60 s) no longer holds a higher recommendation; the default scale-down policy
/// (100% per 15 s) then allows the whole step at once.
#[test]
fn scripted_load_scales_two_to_eight_to_three_in_kubernetes_steps() {
    let mut world = World::new(
        hpa(json!({"scaleDown": {"stabilizationWindowSeconds": 60}})),
        2,
    );
    world.total_millicores = 400;

    let plan = world.sync(at(0));
    assert_eq!(plan.rescale.as_ref().map(|r| r.replicas), Some(6));
    assert_eq!(
        plan.events
            .iter()
            .map(|e| (e.type_, e.reason.as_str(), e.message.as_str()))
            .collect::<Vec<_>>(),
        vec![(
            EventType::Normal,
            "SuccessfulRescale",
            "New size: 6; reason: cpu resource utilization (percentage of request) above target"
        )]
    );
    assert_eq!(
        condition(&plan, "AbleToScale"),
        (
            "True".into(),
            "SucceededRescale".into(),
            "the HPA controller was able to update the target scale to 6".into()
        )
    );
    assert_eq!(
        condition(&plan, "ScalingActive"),
        ("True".into(), "ValidMetricFound".into(),
         "the HPA was able to successfully calculate a replica count from cpu resource utilization (percentage of request)".into())
    );
    assert_eq!(
        condition(&plan, "ScalingLimited"),
        (
            "True".into(),
            "ScaleUpLimit".into(),
            "the desired replica count is increasing faster than the maximum scale rate".into()
        )
    );
    assert_eq!(plan.status.current_replicas, Some(2));
    assert_eq!(plan.status.desired_replicas, 6);
    assert_eq!(
        plan.status.last_scale_time.as_ref().map(|t| t.0),
        Some(at(0))
    );
    let metrics = serde_json::to_value(&plan.status.current_metrics).expect("serializable");
    assert_eq!(
        metrics,
        json!([{"type": "Resource", "resource": {"name": "cpu",
            "current": {"averageUtilization": 200, "averageValue": "200m"}}}])
    );

    // 66m on each of 6 pods: 66% asks for 8, but the 4 pods added 5 s ago use up the period.
    let plan = world.sync(at(5));
    assert_eq!(plan.rescale, None);
    assert_eq!(plan.status.desired_replicas, 6);
    assert_eq!(condition(&plan, "ScalingLimited").1, "ScaleUpLimit");
    assert_eq!(condition(&plan, "AbleToScale").1, "ReadyForNewScale");

    let plan = world.sync(at(16));
    assert_eq!(plan.rescale.as_ref().map(|r| r.replicas), Some(8));
    assert_eq!(condition(&plan, "ScalingLimited").1, "DesiredWithinRange");
    assert_eq!(condition(&plan, "ScalingLimited").0, "False");

    // 50m each: on target.
    let plan = world.sync(at(20));
    assert_eq!(plan.rescale, None);
    assert_eq!(plan.status.current_replicas, Some(8));
    assert_eq!(plan.status.desired_replicas, 8);

    // The load falls to 144m: 18% asks for 3, held at 8 while the window remembers 8.
    world.total_millicores = 144;
    for t in [30, 60, 75] {
        let plan = world.sync(at(t));
        assert_eq!(plan.rescale, None, "t={t}");
        assert_eq!(
            condition(&plan, "AbleToScale"),
            ("True".into(), "ScaleDownStabilized".into(),
             "recent recommendations were higher than current one, applying the highest recent recommendation".into()),
            "t={t}"
        );
    }
    let plan = world.sync(at(81));
    assert_eq!(plan.rescale.as_ref().map(|r| r.replicas), Some(3));
    assert_eq!(
        plan.events[0].message,
        "New size: 3; reason: All metrics below target"
    );

    // 48m each on 3 pods: within the tolerance of the target.
    let plan = world.sync(at(90));
    assert_eq!(plan.rescale, None);
    assert_eq!(plan.status.desired_replicas, 3);
}

#[test]
fn without_behavior_the_legacy_rules_apply() {
    let mut world = World::new(hpa(serde_json::Value::Null), 2);
    world.total_millicores = 400;
    // max(2 x 2, 4) = 4.
    let plan = world.sync(at(0));
    assert_eq!(plan.rescale.as_ref().map(|r| r.replicas), Some(4));
    assert_eq!(condition(&plan, "ScalingLimited").1, "ScaleUpLimit");
    // 100m on each of 4 pods still asks for 8, and the legacy limit now allows it.
    let plan = world.sync(at(15));
    assert_eq!(plan.rescale.as_ref().map(|r| r.replicas), Some(8));
    // Scale-down waits for the controller's 5-minute window.
    world.total_millicores = 40;
    let plan = world.sync(at(60));
    assert_eq!(plan.rescale, None);
    assert_eq!(condition(&plan, "AbleToScale").1, "ScaleDownStabilized");
    let plan = world.sync(at(400));
    assert_eq!(plan.rescale.as_ref().map(|r| r.replicas), Some(1));
}

/// The scale of the `web` Deployment at `replicas`.
fn web_scale(replicas: i32) -> ScaleView {
    ScaleView {
        spec_replicas: replicas,
        status_replicas: replicas,
        selector: "app=web".into(),
    }
}

/// One sync at the start with no pods, no usage and no history: what the autoscaler reports
/// when it has nothing to measure.
fn plan_without_pods(hpa: &HorizontalPodAutoscaler, scale: Result<&ScaleView, String>) -> SyncPlan {
    plan_sync(
        hpa,
        scale,
        &[],
        &[],
        &mut History::default(),
        &HpaConfig::default(),
        at(0),
    )
}

#[test]
fn missing_metrics_and_disabled_scaling_are_reported() {
    let mut world = World::new(hpa(serde_json::Value::Null), 2);
    world.pods.clear();
    let hpa = world.hpa.clone();
    let scale = web_scale(2);
    let plan = plan_without_pods(&hpa, Ok(&scale));
    assert_eq!(plan.rescale, None);
    let reasons: Vec<(&str, &str)> = plan
        .events
        .iter()
        .map(|e| (e.reason.as_str(), e.message.as_str()))
        .collect();
    assert_eq!(reasons, vec![
        ("FailedGetResourceMetric", "failed to get cpu utilization: unable to get metrics for resource cpu: no metrics returned from resource metrics API"),
        ("FailedComputeMetricsReplicas", "invalid metrics (1 invalid out of 1), first error is: failed to get cpu resource metric value: failed to get cpu utilization: unable to get metrics for resource cpu: no metrics returned from resource metrics API"),
    ]);
    assert_eq!(
        condition(&plan, "ScalingActive"),
        ("False".into(), "FailedGetResourceMetric".into(),
         "the HPA was unable to compute the replica count: failed to get cpu utilization: unable to get metrics for resource cpu: no metrics returned from resource metrics API".into())
    );
    // The metric status slot is kept, so kubectl shows <unknown>.
    assert_eq!(plan.status.current_metrics.as_ref().map(Vec::len), Some(1));

    let zero = web_scale(0);
    let plan = plan_without_pods(&hpa, Ok(&zero));
    assert_eq!(
        condition(&plan, "ScalingActive"),
        (
            "False".into(),
            "ScalingDisabled".into(),
            "scaling is disabled since the replica count of the target is zero".into()
        )
    );
    assert_eq!(plan.rescale, None);

    let plan = plan_without_pods(&hpa, Err("deployments.apps \"web\" not found".into()));
    assert_eq!(
        condition(&plan, "AbleToScale"),
        ("False".into(), "FailedGetScale".into(), "the HPA controller was unable to get the target's current scale: deployments.apps \"web\" not found".into())
    );
    assert_eq!(plan.events[0].reason, "FailedGetScale");

    // Above maxReplicas: straight back to the maximum, whatever the metrics say.
    let many = web_scale(12);
    let mut plan = plan_without_pods(&hpa, Ok(&many));
    assert_eq!(
        plan.rescale
            .as_ref()
            .map(|r| (r.replicas, r.reason.as_str())),
        Some((10, "Current number of replicas above Spec.MaxReplicas"))
    );
    plan.rescale_failed("conflict", at(0));
    assert_eq!(plan.events.last().map(|e| e.message.as_str()), Some("New size: 10; reason: Current number of replicas above Spec.MaxReplicas; error: conflict"));
    assert_eq!(condition(&plan, "AbleToScale").1, "FailedUpdateScale");
    assert!(plan.status.last_scale_time.is_none());
    let _ = BTreeMap::<String, String>::new();
}
