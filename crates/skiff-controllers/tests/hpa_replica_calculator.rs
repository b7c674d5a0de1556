//! The replica calculation against Kubernetes' own cases (`replica_calculator_test.go`,
//! `TestReplicaCalc*` for resource metrics, and `TestGroupPods`, `TestCalculatePodRequests`).

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::core::v1::{
    Container, Pod, PodCondition, PodSpec, PodStatus, ResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use skiff_controllers::hpa::replica_calculator::{
    calculate_pod_requests, group_pods, CalcError, PodMetric, PodMetricsInfo, ReplicaCalculator,
};

/// Upstream's testing values: tolerance 0.1, CPU initialization 2 min, readiness delay 10 s.
fn calculator() -> ReplicaCalculator {
    ReplicaCalculator {
        tolerance: 0.1,
        cpu_initialization_period: Duration::from_secs(120),
        delay_of_initial_readiness_status: Duration::from_secs(10),
    }
}

fn now() -> Timestamp {
    "2024-05-01T12:00:00Z".parse().expect("a valid timestamp")
}

/// Go's zero time stands for "long ago": transition times and sample times in upstream's
/// fixtures are left at it.
fn zero() -> Timestamp {
    Timestamp::UNIX_EPOCH
}

/// A pod started just now: its CPU samples may still show start-up.
fn hot() -> Timestamp {
    now()
}

/// A pod started well before the CPU initialization period.
fn cool() -> Timestamp {
    now() - SignedDuration::from_mins(5)
}

#[derive(Clone, Copy, PartialEq)]
enum Phase {
    Running,
    Pending,
    Failed,
}

#[derive(Clone)]
struct Case {
    name: &'static str,
    current: i32,
    expected: Result<(i32, i32, i64), &'static str>,
    requests: Vec<&'static str>,
    levels: Vec<Vec<i64>>,
    pod_names: Vec<&'static str>,
    target: i32,
    container: Option<&'static str>,
    readiness: Vec<bool>,
    start: Vec<Timestamp>,
    phase: Vec<Phase>,
    deleted: Vec<bool>,
}

fn case(name: &'static str, current: i32, target: i32) -> Case {
    Case {
        name,
        current,
        expected: Err("unset"),
        requests: vec![],
        levels: vec![],
        pod_names: vec![],
        target,
        container: None,
        readiness: vec![],
        start: vec![],
        phase: vec![],
        deleted: vec![],
    }
}

/// Both containers of each pod report the same level, as upstream's `makePodMetricLevels`.
fn levels(per_pod: &[i64]) -> Vec<Vec<i64>> {
    per_pod.iter().map(|l| vec![*l, *l]).collect()
}

fn ones(n: usize) -> Vec<&'static str> {
    vec!["1.0"; n]
}

impl Case {
    fn pods(&self) -> Vec<Pod> {
        let count = (self.current as usize).max(self.phase.len());
        (0..count)
            .map(|i| {
                let requests = self.requests.get(i).map(|r| ResourceRequirements {
                    requests: Some(BTreeMap::from([(
                        "cpu".to_string(),
                        Quantity(r.to_string()),
                    )])),
                    ..Default::default()
                });
                let container = |name: &str| Container {
                    name: name.to_string(),
                    resources: requests.clone(),
                    ..Default::default()
                };
                let mut pod = Pod {
                    spec: Some(PodSpec {
                        containers: vec![container("container1"), container("container2")],
                        ..Default::default()
                    }),
                    status: Some(PodStatus {
                        phase: Some(
                            match self.phase.get(i).copied().unwrap_or(Phase::Running) {
                                Phase::Running => "Running",
                                Phase::Pending => "Pending",
                                Phase::Failed => "Failed",
                            }
                            .to_string(),
                        ),
                        start_time: Some(Time(self.start.get(i).copied().unwrap_or(zero()))),
                        conditions: Some(vec![PodCondition {
                            type_: "Ready".to_string(),
                            status: if self.readiness.get(i).copied().unwrap_or(true) {
                                "True".to_string()
                            } else {
                                "False".to_string()
                            },
                            last_transition_time: Some(Time(zero())),
                            ..Default::default()
                        }]),
                        ..Default::default()
                    }),
                    ..Default::default()
                };
                pod.metadata.name = Some(format!("test-pod-{i}"));
                pod.metadata.namespace = Some("test-namespace".to_string());
                if self.deleted.get(i).copied().unwrap_or(false) {
                    pod.metadata.deletion_timestamp = Some(Time(now()));
                }
                pod
            })
            .collect()
    }

    /// What the resource metrics client makes of the reported levels: per pod the sum over
    /// its containers, or the chosen container's figure (pods without it have no sample).
    fn metrics(&self) -> PodMetricsInfo {
        let mut out = PodMetricsInfo::new();
        for (i, containers) in self.levels.iter().enumerate() {
            let name = self
                .pod_names
                .get(i)
                .map(|n| n.to_string())
                .unwrap_or_else(|| format!("test-pod-{i}"));
            let value = match self.container {
                Some(wanted) => {
                    let index: usize = match wanted {
                        "container1" => 0,
                        _ => 1,
                    };
                    match containers.get(index) {
                        Some(v) => *v,
                        None => continue,
                    }
                }
                None => containers.iter().sum(),
            };
            out.insert(
                name,
                PodMetric {
                    value,
                    timestamp: zero(),
                    window: Duration::from_secs(60),
                },
            );
        }
        out
    }

    fn run(&self) {
        let result = calculator().resource_replicas(
            self.current,
            self.target,
            "cpu",
            self.container,
            &self.pods(),
            self.metrics(),
            zero(),
            now(),
        );
        match (&self.expected, result) {
            (Ok((replicas, utilization, raw)), Ok(got)) => {
                assert_eq!(got.replicas, *replicas, "{}: replicas", self.name);
                assert_eq!(got.utilization, *utilization, "{}: utilization", self.name);
                assert_eq!(got.raw_average, *raw, "{}: raw value", self.name);
                assert_eq!(got.timestamp, zero(), "{}: timestamp", self.name);
            }
            (Err(message), Err(e)) => assert!(
                e.to_string().contains(message),
                "{}: error {e} should contain {message}",
                self.name
            ),
            (expected, got) => panic!("{}: expected {expected:?}, got {got:?}", self.name),
        }
    }
}

#[test]
fn replica_calculation_follows_the_upstream_cases() {
    use Phase::*;
    let mut cases = Vec::new();

    let mut c = case("DisjointResourcesMetrics", 1, 100);
    c.expected = Err("no metrics returned matched known pods");
    c.requests = ones(1);
    c.levels = levels(&[100]);
    c.pod_names = vec!["an-older-pod-name"];
    cases.push(c);

    let mut c = case("ScaleUp", 3, 30);
    c.expected = Ok((5, 50, 2 * 500));
    c.requests = ones(3);
    c.levels = levels(&[300, 500, 700]);
    cases.push(c);

    let mut c = case("ContainerScaleUp", 3, 30);
    c.expected = Ok((5, 50, 500));
    c.requests = ones(3);
    c.levels = vec![vec![1000, 300], vec![1000, 500], vec![1000, 700]];
    c.container = Some("container2");
    cases.push(c);

    let mut c = case("ScaleUpUnreadyLessScale", 3, 30);
    c.expected = Ok((4, 60, 2 * 600));
    c.readiness = vec![false, true, true];
    c.requests = ones(3);
    c.levels = levels(&[300, 500, 700]);
    cases.push(c);

    let mut c = case("ScaleUpContainerHotCpuLessScale", 3, 30);
    c.expected = Ok((4, 60, 600));
    c.start = vec![hot(), cool(), cool()];
    c.requests = ones(3);
    c.levels = vec![vec![0, 300], vec![0, 500], vec![0, 700]];
    c.container = Some("container2");
    cases.push(c);

    let mut c = case("ScaleUpHotCpuLessScale", 3, 30);
    c.expected = Ok((4, 60, 2 * 600));
    c.start = vec![hot(), cool(), cool()];
    c.requests = ones(3);
    c.levels = levels(&[300, 500, 700]);
    cases.push(c);

    let mut c = case("ScaleUpUnreadyNoScale", 3, 30);
    c.expected = Ok((3, 40, 2 * 400));
    c.readiness = vec![true, false, false];
    c.requests = ones(3);
    c.levels = levels(&[400, 500, 700]);
    cases.push(c);

    let mut c = case("ScaleHotCpuNoScale", 3, 30);
    c.expected = Ok((3, 40, 2 * 400));
    c.readiness = vec![true, false, false];
    c.start = vec![cool(), hot(), hot()];
    c.requests = ones(3);
    c.levels = levels(&[400, 500, 700]);
    cases.push(c);

    let mut c = case("ScaleUpIgnoresFailedPods", 2, 30);
    c.expected = Ok((4, 60, 2 * 600));
    c.readiness = vec![true, true, false, false];
    c.phase = vec![Running, Running, Failed, Failed];
    c.requests = ones(4);
    c.levels = levels(&[500, 700]);
    cases.push(c);

    let mut c = case("MissingContainerMetricScaleUpIgnoresFailedPods", 2, 30);
    c.expected = Ok((4, 60, 600));
    c.readiness = vec![true, true, false, false];
    c.phase = vec![Running, Running, Failed, Failed];
    c.requests = ones(4);
    c.levels = vec![vec![1000, 500], vec![9000, 700], vec![1000], vec![9000]];
    c.container = Some("container2");
    cases.push(c);

    let mut c = case("ScaleUpContainerIgnoresFailedPods", 2, 30);
    c.expected = Ok((4, 60, 600));
    c.readiness = vec![true, true, false, false];
    c.phase = vec![Running, Running, Failed, Failed];
    c.requests = ones(4);
    c.levels = vec![vec![1000, 500], vec![9000, 700]];
    c.container = Some("container2");
    cases.push(c);

    let mut c = case("ScaleUpIgnoresDeletionPods", 2, 30);
    c.expected = Ok((4, 60, 2 * 600));
    c.readiness = vec![true, true, false, false];
    c.phase = vec![Running; 4];
    c.deleted = vec![false, false, true, true];
    c.requests = ones(4);
    c.levels = levels(&[500, 700]);
    cases.push(c);

    let mut c = case("ScaleUpContainerIgnoresDeletionPods", 2, 30);
    c.expected = Ok((4, 60, 600));
    c.readiness = vec![true, true, false, false];
    c.phase = vec![Running; 4];
    c.deleted = vec![false, false, true, true];
    c.requests = ones(4);
    c.levels = levels(&[500, 700]);
    c.container = Some("container1");
    cases.push(c);

    let mut c = case("ScaleDown", 5, 50);
    c.expected = Ok((3, 28, 2 * 280));
    c.requests = ones(5);
    c.levels = levels(&[100, 300, 500, 250, 250]);
    cases.push(c);

    let container_down = vec![
        vec![1000, 100],
        vec![1000, 300],
        vec![1000, 500],
        vec![1000, 250],
        vec![1000, 250],
    ];
    let mut c = case("ContainerScaleDown", 5, 50);
    c.expected = Ok((3, 28, 280));
    c.requests = ones(5);
    c.levels = container_down.clone();
    c.container = Some("container2");
    cases.push(c);

    let mut c = case("ScaleDownExcludeUnreadyPods", 5, 50);
    c.expected = Ok((2, 30, 2 * 300));
    c.readiness = vec![true, true, true, false, false];
    c.requests = ones(5);
    c.levels = levels(&[100, 300, 500, 250, 250]);
    cases.push(c);

    let mut c = case("ScaleDownContainerExcludeUnreadyPods", 5, 50);
    c.expected = Ok((2, 30, 300));
    c.readiness = vec![true, true, true, false, false];
    c.requests = ones(5);
    c.levels = container_down.clone();
    c.container = Some("container2");
    cases.push(c);

    let mut c = case("ScaleDownExcludeUnscheduledPods", 5, 50);
    c.expected = Ok((1, 10, 2 * 100));
    c.readiness = vec![true, false, false, false, false];
    c.phase = vec![Running, Pending, Pending, Pending, Pending];
    c.requests = ones(5);
    c.levels = levels(&[100]);
    cases.push(c);

    let mut c = case("ScaleDownContainerExcludeUnscheduledPods", 5, 50);
    c.expected = Ok((1, 10, 100));
    c.readiness = vec![true, false, false, false, false];
    c.phase = vec![Running, Pending, Pending, Pending, Pending];
    c.requests = ones(5);
    c.levels = container_down.clone();
    c.container = Some("container2");
    cases.push(c);

    let mut c = case("ScaleDownIgnoreHotCpuPods", 5, 50);
    c.expected = Ok((2, 30, 2 * 300));
    c.start = vec![cool(), cool(), cool(), hot(), hot()];
    c.requests = ones(5);
    c.levels = levels(&[100, 300, 500, 250, 250]);
    cases.push(c);

    let mut c = case("ScaleDownContainerIgnoreHotCpuPods", 5, 50);
    c.expected = Ok((2, 30, 300));
    c.start = vec![cool(), cool(), cool(), hot(), hot()];
    c.requests = ones(5);
    c.levels = vec![
        vec![1000, 100],
        vec![1000, 300],
        vec![1000, 500],
        vec![1000, 1000],
        vec![1000, 1000],
    ];
    c.container = Some("container2");
    cases.push(c);

    let mut c = case("ScaleDownIgnoresFailedPods", 5, 50);
    c.expected = Ok((3, 28, 2 * 280));
    c.readiness = vec![true, true, true, true, true, false, false];
    c.phase = vec![Running, Running, Running, Running, Running, Failed, Failed];
    c.requests = ones(7);
    c.levels = levels(&[100, 300, 500, 250, 250]);
    cases.push(c);

    let mut c = case("ScaleDownContainerIgnoresFailedPods", 5, 50);
    c.expected = Ok((3, 28, 280));
    c.readiness = vec![true, true, true, true, true, false, false];
    c.phase = vec![Running, Running, Running, Running, Running, Failed, Failed];
    c.requests = ones(7);
    c.levels = container_down.clone();
    c.container = Some("container2");
    cases.push(c);

    let mut c = case("ScaleDownIgnoresDeletionPods", 5, 50);
    c.expected = Ok((3, 28, 2 * 280));
    c.readiness = vec![true, true, true, true, true, false, false];
    c.phase = vec![Running; 7];
    c.deleted = vec![false, false, false, false, false, true, true];
    c.requests = ones(7);
    c.levels = levels(&[100, 300, 500, 250, 250]);
    cases.push(c);

    let mut c = case("ScaleDownIgnoresDeletionPods_StillRunning", 5, 50);
    c.expected = Ok((3, 28, 280));
    c.readiness = vec![true, true, true, true, true, false, false];
    c.phase = vec![Running; 7];
    c.deleted = vec![false, false, false, false, false, true, true];
    c.requests = ones(7);
    c.levels = container_down.clone();
    c.container = Some("container2");
    cases.push(c);

    let mut c = case("Tolerance", 3, 100);
    c.expected = Ok((3, 102, 2 * 1020));
    c.requests = vec!["0.9", "1.0", "1.1"];
    c.levels = levels(&[1010, 1030, 1020]);
    cases.push(c);

    let mut c = case("SuperfluousMetrics", 4, 100);
    c.expected = Ok((24, 587, 2 * 5875));
    c.requests = ones(4);
    c.levels = levels(&[4000, 9500, 3000, 7000, 3200, 2000]);
    cases.push(c);

    let mut c = case("MissingMetrics", 4, 100);
    c.expected = Ok((3, 24, 495));
    c.requests = ones(4);
    c.levels = levels(&[400, 95]);
    cases.push(c);

    let mut c = case("EmptyMetrics", 4, 100);
    c.expected = Err(
        "unable to get metrics for resource cpu: no metrics returned from resource metrics API",
    );
    c.requests = ones(3);
    cases.push(c);

    let mut c = case("EmptyCPURequest", 1, 100);
    c.expected = Err("missing request for");
    c.levels = levels(&[200]);
    cases.push(c);

    let mut c = case("MissingMetricsNoChangeEq", 2, 100);
    c.expected = Ok((2, 100, 2 * 1000));
    c.requests = ones(2);
    c.levels = levels(&[1000]);
    cases.push(c);

    let mut c = case("MissingMetricsNoChangeGt", 2, 100);
    c.expected = Ok((2, 190, 2 * 1900));
    c.requests = ones(2);
    c.levels = levels(&[1900]);
    cases.push(c);

    let mut c = case("MissingMetricsNoChangeLt", 2, 100);
    c.expected = Ok((2, 60, 2 * 600));
    c.requests = ones(2);
    c.levels = levels(&[600]);
    cases.push(c);

    let mut c = case("MissingMetricsUnreadyChange", 3, 50);
    c.expected = Ok((3, 45, 2 * 450));
    c.readiness = vec![false, true, true];
    c.requests = ones(3);
    c.levels = levels(&[100, 450]);
    cases.push(c);

    let mut c = case("MissingMetricsHotCpuNoChange", 3, 50);
    c.expected = Ok((3, 45, 2 * 450));
    c.start = vec![hot(), cool(), cool()];
    c.requests = ones(3);
    c.levels = levels(&[100, 450]);
    cases.push(c);

    let mut c = case("MissingMetricsUnreadyScaleUp", 3, 50);
    c.expected = Ok((4, 200, 2 * 2000));
    c.readiness = vec![false, true, true];
    c.requests = ones(3);
    c.levels = levels(&[100, 2000]);
    cases.push(c);

    let mut c = case("MissingMetricsHotCpuScaleUp", 3, 50);
    c.expected = Ok((4, 200, 2 * 2000));
    c.readiness = vec![false, true, true];
    c.start = vec![hot(), cool(), cool()];
    c.requests = ones(3);
    c.levels = levels(&[100, 2000]);
    cases.push(c);

    let mut c = case("MissingMetricsUnreadyScaleDown", 4, 50);
    c.expected = Ok((3, 10, 2 * 100));
    c.readiness = vec![false, true, true, true];
    c.requests = ones(4);
    c.levels = levels(&[100, 100, 100]);
    cases.push(c);

    let mut c = case("MissingMetricsScaleDownTargetOver100", 4, 300);
    c.expected = Ok((2, 6, 2 * 100));
    c.readiness = vec![false, true, true, true];
    c.requests = vec!["1.0", "1.0", "2.0", "2.0"];
    c.levels = levels(&[200, 100, 100]);
    cases.push(c);

    let mut c = case("DuringRollingUpdateWithMaxSurge", 2, 50);
    c.expected = Ok((2, 10, 2 * 100));
    c.phase = vec![Running; 3];
    c.requests = ones(3);
    c.levels = levels(&[100, 100]);
    cases.push(c);

    for c in &cases {
        c.run();
    }
}

/// `TestReplicaCalcComputedToleranceAlgImplementation`: a target just outside the tolerance
/// scales down by the computed amount; one just inside it does not.
#[test]
fn replica_calculation_honours_the_tolerance_edge() {
    let start_pods: i32 = 10;
    let total_used: i64 = i64::from(start_pods) * 150;
    let total_requested: i64 = 2 * total_used;
    let requested_to_used = (total_requested / total_used) as f64;
    let per_pod_requested = total_requested / i64::from(start_pods);

    let target = (1.0 / (requested_to_used * (1.0 - 0.1))).abs() + 0.01;
    let final_target = (target * 100.0) as i32;
    let used_ratio = total_used as f64 / (total_requested as f64 * target);
    let final_pods = (used_ratio * f64::from(start_pods)).ceil() as i32;

    let offsets = [100, -100, 10, -10, 2, -2, 1, -1, 0, 0];
    let requests: Vec<&'static str> = offsets
        .iter()
        .map(|o| &*Box::leak(format!("{}m", per_pod_requested + o).into_boxed_str()))
        .collect();
    let mut c = case(
        "ComputedToleranceAlgImplementation",
        start_pods,
        final_target,
    );
    c.requests = requests;
    c.levels = levels(&[total_used / 10; 10]);
    let utilization = (total_used * 100 / total_requested) as i32;
    c.expected = Ok((final_pods, utilization, 2 * total_used / 10));
    c.run();

    let target = (1.0 / (requested_to_used * (1.0 - 0.1))).abs() + 0.004;
    c.target = (target * 100.0) as i32;
    c.expected = Ok((start_pods, utilization, 2 * total_used / 10));
    c.run();
}

fn group_pod(name: &str, phase: &str, start: Option<Timestamp>) -> Pod {
    let mut pod = Pod {
        status: Some(PodStatus {
            phase: Some(phase.to_string()),
            start_time: start.map(Time),
            ..Default::default()
        }),
        ..Default::default()
    };
    pod.metadata.name = Some(name.to_string());
    pod
}

fn with_ready(mut pod: Pod, ready: bool, transition: Timestamp) -> Pod {
    if let Some(status) = pod.status.as_mut() {
        status.conditions = Some(vec![PodCondition {
            type_: "Ready".to_string(),
            status: if ready { "True" } else { "False" }.to_string(),
            last_transition_time: Some(Time(transition)),
            ..Default::default()
        }]);
    }
    pod
}

fn sample(value: i64, timestamp: Timestamp, window_secs: u64) -> PodMetric {
    PodMetric {
        value,
        timestamp,
        window: Duration::from_secs(window_secs),
    }
}

/// `TestGroupPods`.
#[test]
fn pods_are_grouped_as_upstream_groups_them() {
    let n = now();
    let ago = |secs: i64| n - SignedDuration::from_secs(secs);
    type Expect = (
        usize,
        &'static [&'static str],
        &'static [&'static str],
        &'static [&'static str],
    );
    type Case = (
        &'static str,
        Vec<Pod>,
        Vec<(&'static str, PodMetric)>,
        &'static str,
        Expect,
    );
    let cases: Vec<Case> = vec![
        ("void", vec![], vec![], "cpu", (0, &[], &[], &[])),
        (
            "count in a ready pod - memory",
            vec![group_pod("bentham", "Succeeded", None)],
            vec![("bentham", sample(1, n, 60))],
            "memory",
            (1, &[], &[], &[]),
        ),
        (
            "unready a pod without ready condition - CPU",
            vec![group_pod("lucretius", "Succeeded", Some(n))],
            vec![("lucretius", sample(1, zero(), 0))],
            "cpu",
            (0, &["lucretius"], &[], &[]),
        ),
        (
            "count in a ready pod with fresh metrics during initialization period - CPU",
            vec![with_ready(
                group_pod("bentham", "Succeeded", Some(ago(60))),
                true,
                ago(30),
            )],
            vec![("bentham", sample(1, n, 30))],
            "cpu",
            (1, &[], &[], &[]),
        ),
        (
            "unready a ready pod without fresh metrics during initialization period - CPU",
            vec![with_ready(
                group_pod("bentham", "Succeeded", Some(ago(60))),
                true,
                ago(30),
            )],
            vec![("bentham", sample(1, n, 60))],
            "cpu",
            (0, &["bentham"], &[], &[]),
        ),
        (
            "unready an unready pod during initialization period - CPU",
            vec![with_ready(
                group_pod("lucretius", "Succeeded", Some(ago(600))),
                false,
                ago(594),
            )],
            vec![("lucretius", sample(1, zero(), 0))],
            "cpu",
            (0, &["lucretius"], &[], &[]),
        ),
        (
            "count in a ready pod without fresh metrics after initialization period - CPU",
            vec![with_ready(
                group_pod("bentham", "Succeeded", Some(ago(180))),
                true,
                ago(180),
            )],
            vec![("bentham", sample(1, ago(120), 60))],
            "cpu",
            (1, &[], &[], &[]),
        ),
        (
            "count in an unready pod that was ready after initialization period - CPU",
            vec![with_ready(
                group_pod("lucretius", "Succeeded", Some(ago(600))),
                false,
                ago(540),
            )],
            vec![("lucretius", sample(1, zero(), 0))],
            "cpu",
            (1, &[], &[], &[]),
        ),
        (
            "unready pod that has never been ready after initialization period - CPU",
            vec![with_ready(
                group_pod("lucretius", "Succeeded", Some(ago(600))),
                false,
                ago(590),
            )],
            vec![("lucretius", sample(1, zero(), 0))],
            "cpu",
            (1, &[], &[], &[]),
        ),
        (
            "a missing pod",
            vec![group_pod("epicurus", "Succeeded", Some(ago(180)))],
            vec![],
            "cpu",
            (0, &[], &["epicurus"], &[]),
        ),
        (
            "several pods",
            vec![
                group_pod("lucretius", "Succeeded", Some(n)),
                with_ready(
                    group_pod("niccolo", "Succeeded", Some(ago(180))),
                    true,
                    ago(180),
                ),
                group_pod("epicurus", "Succeeded", Some(ago(180))),
            ],
            vec![
                ("lucretius", sample(1, zero(), 0)),
                ("niccolo", sample(1, zero(), 0)),
            ],
            "cpu",
            (1, &["lucretius"], &["epicurus"], &[]),
        ),
        (
            "pending pods are unreadied",
            vec![group_pod("unscheduled", "Pending", None)],
            vec![],
            "cpu",
            (0, &["unscheduled"], &[], &[]),
        ),
        (
            "ignore pods with deletion timestamps",
            vec![{
                let mut p = group_pod("deleted", "Pending", None);
                p.metadata.deletion_timestamp = Some(Time(Timestamp::UNIX_EPOCH));
                p
            }],
            vec![("deleted", sample(1, zero(), 0))],
            "cpu",
            (0, &[], &[], &["deleted"]),
        ),
        (
            "ignore pods in a failed state",
            vec![group_pod("failed", "Failed", None)],
            vec![("failed", sample(1, zero(), 0))],
            "cpu",
            (0, &[], &[], &["failed"]),
        ),
    ];
    for (name, pods, metrics, resource, (ready, unready, missing, ignored)) in cases {
        let metrics: PodMetricsInfo = metrics
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        let groups = group_pods(
            &pods,
            &metrics,
            resource,
            Duration::from_secs(120),
            Duration::from_secs(10),
            n,
        );
        let set = |names: &[&str]| names.iter().map(|s| s.to_string()).collect();
        assert_eq!(groups.ready_count, ready, "{name}: ready");
        assert_eq!(groups.unready, set(unready), "{name}: unready");
        assert_eq!(groups.missing, set(missing), "{name}: missing");
        assert_eq!(groups.ignored, set(ignored), "{name}: ignored");
    }
}

/// `TestCalculatePodRequests`.
#[test]
fn requests_sum_containers_and_sidecars() {
    let container = |name: &str, milli: Option<i64>, always: bool| Container {
        name: name.to_string(),
        restart_policy: always.then(|| "Always".to_string()),
        resources: milli.map(|m| ResourceRequirements {
            requests: Some(BTreeMap::from([(
                "cpu".to_string(),
                Quantity(format!("{m}m")),
            )])),
            ..Default::default()
        }),
        ..Default::default()
    };
    let pod = |containers: Vec<Container>, init: Vec<Container>| {
        let mut p = Pod {
            spec: Some(PodSpec {
                containers,
                init_containers: Some(init),
                ..Default::default()
            }),
            ..Default::default()
        };
        p.metadata.name = Some("test-pod".to_string());
        p
    };
    let regular = pod(
        vec![
            container("container1", Some(100), false),
            container("container2", Some(50), false),
        ],
        vec![],
    );
    type Expected = Result<Vec<(&'static str, i64)>, CalcError>;
    let cases: Vec<(&str, Vec<Pod>, Option<&str>, Expected)> = vec![
        ("void", vec![], None, Ok(vec![])),
        (
            "pod with regular containers",
            vec![regular.clone()],
            None,
            Ok(vec![("test-pod", 150)]),
        ),
        (
            "calculate requests with special container",
            vec![regular],
            Some("container1"),
            Ok(vec![("test-pod", 100)]),
        ),
        (
            "container missing requests",
            vec![pod(vec![container("container1", None, false)], vec![])],
            None,
            Err(CalcError::MissingRequest {
                resource: "cpu".to_string(),
                container: "container1".to_string(),
                pod: "test-pod".to_string(),
            }),
        ),
        (
            "pod with restartable init containers",
            vec![pod(
                vec![container("container1", Some(100), false)],
                vec![
                    container("init-container1", Some(20), false),
                    container("restartable-container1", Some(50), true),
                ],
            )],
            None,
            Ok(vec![("test-pod", 150)]),
        ),
    ];
    for (name, pods, only, expected) in cases {
        let got = calculate_pod_requests(&pods, only, "cpu");
        let expected = expected.map(|v| {
            v.into_iter()
                .map(|(k, m)| (k.to_string(), m))
                .collect::<BTreeMap<_, _>>()
        });
        assert_eq!(got, expected, "{name}");
    }
    assert_eq!(
        CalcError::MissingRequest {
            resource: "cpu".into(),
            container: "c".into(),
            pod: "p".into()
        }
        .to_string(),
        "missing request for cpu in container c of Pod p"
    );
}
