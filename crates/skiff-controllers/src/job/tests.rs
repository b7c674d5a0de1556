//! The planner against cases of upstream's `TestControllerSyncJob`,
//! `TestSyncJobPastDeadline` and back-off tests (`pkg/controller/job/job_controller_test.go`),
//! restated for this planner's inputs: pods as the informer holds them, the Job's status, and
//! the time.

use super::*;

fn at(s: &str) -> Timestamp {
    s.parse().expect("valid time")
}

const NOW: &str = "2024-01-01T00:10:00Z";

/// A Job as the API server stores it (defaults applied), `completions` `None` for a work queue.
fn job(parallelism: i64, completions: Option<i64>, backoff_limit: i64) -> Value {
    let mut spec = json!({
        "parallelism": parallelism,
        "backoffLimit": backoff_limit,
        "completionMode": "NonIndexed",
        "suspend": false,
        "selector": {"matchLabels": {"batch.kubernetes.io/controller-uid": "job-uid"}},
        "template": {
            "metadata": {"labels": {"batch.kubernetes.io/controller-uid": "job-uid",
                                    "batch.kubernetes.io/job-name": "foobar"}},
            "spec": {"restartPolicy": "Never",
                     "containers": [{"name": "c", "image": "busybox"}]},
        },
    });
    if let Some(c) = completions {
        spec["completions"] = json!(c);
    }
    json!({
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": "foobar", "namespace": "default", "uid": "job-uid",
                     "creationTimestamp": "2024-01-01T00:00:00Z"},
        "spec": spec,
        "status": {"startTime": "2024-01-01T00:00:00Z"},
    })
}

fn indexed(mut job: Value) -> Value {
    job["spec"]["completionMode"] = json!("Indexed");
    job
}

/// A pod of the Job in `phase`, with the tracking finalizer and, for Indexed Jobs, an index.
fn pod(n: usize, phase: &str, index: Option<i64>) -> Value {
    let mut pod = json!({
        "metadata": {
            "name": format!("foobar-{n}"), "namespace": "default", "uid": format!("pod-{n}"),
            "creationTimestamp": format!("2024-01-01T00:0{}:00Z", n % 10),
            "finalizers": [TRACKING_FINALIZER],
            "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": "foobar",
                                 "uid": "job-uid", "controller": true}],
        },
        "status": {"phase": phase},
    });
    if let Some(i) = index {
        pod["metadata"]["annotations"] = json!({COMPLETION_INDEX_ANNOTATION: i.to_string()});
    }
    if matches!(phase, "Succeeded" | "Failed") {
        pod["status"]["containerStatuses"] = json!([{"name": "c", "state": {"terminated": {
            "exitCode": if phase == "Succeeded" { 0 } else { 1 },
            "finishedAt": "2024-01-01T00:01:00Z"}}}]);
    }
    pod
}

fn ready(mut pod: Value) -> Value {
    pod["status"]["conditions"] = json!([{"type": "Ready", "status": "True"}]);
    pod
}

/// `count` pods in `phase`, numbered from `first`.
fn pods(first: usize, count: usize, phase: &str) -> Vec<Value> {
    (first..first + count)
        .map(|n| pod(n, phase, None))
        .collect()
}

fn status_int(plan: &JobPlan, key: &str) -> i64 {
    plan.status
        .as_ref()
        .and_then(|s| s.get(key))
        .and_then(Value::as_i64)
        .unwrap_or(0)
}

fn condition_of<'a>(plan: &'a JobPlan, type_: &str) -> Option<&'a Value> {
    plan.status
        .as_ref()?
        .get("conditions")?
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)
}

fn created_indexes(plan: &JobPlan) -> Vec<i64> {
    plan.create.iter().filter_map(completion_index).collect()
}

/// One row of the table: what goes in and what one sync must decide.
struct Case {
    name: &'static str,
    job: Value,
    pods: Vec<Value>,
    may_manage: bool,
    creations: usize,
    deletions: usize,
    active: i64,
    ready: i64,
    succeeded: i64,
    failed: i64,
    finalizers_removed: usize,
    /// A condition that must be `True` after the sync, with its reason.
    condition: Option<(&'static str, &'static str)>,
    created_indexes: Vec<i64>,
    completed_indexes: &'static str,
}

impl Default for Case {
    fn default() -> Case {
        Case {
            name: "",
            job: job(1, Some(1), 6),
            pods: Vec::new(),
            may_manage: true,
            creations: 0,
            deletions: 0,
            active: 0,
            ready: 0,
            succeeded: 0,
            failed: 0,
            finalizers_removed: 0,
            condition: None,
            created_indexes: Vec::new(),
            completed_indexes: "",
        }
    }
}

fn cases() -> Vec<Case> {
    let indexed_pods = |spec: &[(i64, &str)]| -> Vec<Value> {
        spec.iter()
            .enumerate()
            .map(|(n, (i, phase))| pod(n, phase, Some(*i)))
            .collect()
    };
    vec![
        Case {
            name: "job start",
            job: job(2, Some(5), 6),
            creations: 2,
            active: 2,
            ..Case::default()
        },
        Case {
            name: "WQ job start",
            job: job(2, None, 6),
            creations: 2,
            active: 2,
            ..Case::default()
        },
        Case {
            name: "pending pods",
            job: job(2, Some(5), 6),
            pods: pods(0, 2, "Pending"),
            active: 2,
            ..Case::default()
        },
        Case {
            name: "correct # of pods",
            job: job(3, Some(5), 6),
            pods: vec![
                ready(pod(0, "Running", None)),
                ready(pod(1, "Running", None)),
                pod(2, "Running", None),
            ],
            active: 3,
            ready: 2,
            ..Case::default()
        },
        Case {
            name: "WQ job: correct # of pods",
            job: job(2, None, 6),
            pods: pods(0, 2, "Running"),
            active: 2,
            ..Case::default()
        },
        Case {
            name: "too few active pods",
            job: job(2, Some(5), 6),
            pods: [pods(0, 1, "Running"), pods(1, 1, "Succeeded")].concat(),
            creations: 1,
            active: 2,
            succeeded: 1,
            finalizers_removed: 1,
            ..Case::default()
        },
        Case {
            name: "too few active pods with a dynamic job",
            job: job(1, None, 6),
            creations: 1,
            active: 1,
            ..Case::default()
        },
        Case {
            name: "too many active pods",
            job: job(2, Some(5), 6),
            pods: pods(0, 3, "Running"),
            deletions: 1,
            active: 2,
            ..Case::default()
        },
        Case {
            name: "more active pods than parallelism",
            job: job(2, Some(5), 6),
            pods: pods(0, 10, "Running"),
            deletions: 8,
            active: 2,
            ..Case::default()
        },
        Case {
            name: "more active pods than remaining completions",
            job: job(3, Some(4), 6),
            pods: [pods(0, 3, "Running"), pods(3, 2, "Succeeded")].concat(),
            deletions: 1,
            active: 2,
            succeeded: 2,
            finalizers_removed: 2,
            ..Case::default()
        },
        Case {
            name: "status change",
            job: job(2, Some(5), 6),
            pods: [pods(0, 2, "Running"), pods(2, 2, "Succeeded")].concat(),
            active: 2,
            succeeded: 2,
            finalizers_removed: 2,
            ..Case::default()
        },
        Case {
            name: "job finish",
            job: job(2, Some(5), 6),
            pods: pods(0, 5, "Succeeded"),
            succeeded: 5,
            finalizers_removed: 5,
            condition: Some(("Complete", "CompletionsReached")),
            ..Case::default()
        },
        Case {
            name: "WQ job finishing",
            job: job(2, None, 6),
            pods: [pods(0, 1, "Running"), pods(1, 1, "Succeeded")].concat(),
            active: 1,
            succeeded: 1,
            finalizers_removed: 1,
            ..Case::default()
        },
        Case {
            name: "WQ job all finished",
            job: job(2, None, 6),
            pods: pods(0, 2, "Succeeded"),
            succeeded: 2,
            finalizers_removed: 2,
            condition: Some(("Complete", "CompletionsReached")),
            ..Case::default()
        },
        Case {
            name: "WQ job all finished despite one failure",
            job: job(2, None, 6),
            pods: [pods(0, 1, "Succeeded"), pods(1, 1, "Failed")].concat(),
            succeeded: 1,
            failed: 1,
            finalizers_removed: 2,
            condition: Some(("Complete", "CompletionsReached")),
            ..Case::default()
        },
        Case {
            name: "too many job failures",
            job: job(2, Some(5), 0),
            pods: pods(0, 1, "Failed"),
            failed: 1,
            finalizers_removed: 1,
            condition: Some(("Failed", "BackoffLimitExceeded")),
            ..Case::default()
        },
        Case {
            name: "job failures, unsatisfied expectations",
            job: job(2, Some(5), 6),
            pods: pods(0, 1, "Failed"),
            may_manage: false,
            failed: 1,
            finalizers_removed: 1,
            ..Case::default()
        },
        Case {
            name: "indexed job start",
            job: indexed(job(2, Some(5), 6)),
            creations: 2,
            active: 2,
            created_indexes: vec![0, 1],
            ..Case::default()
        },
        Case {
            name: "indexed job completed",
            job: indexed(job(2, Some(3), 6)),
            pods: indexed_pods(&[
                (0, "Succeeded"),
                (1, "Failed"),
                (1, "Succeeded"),
                (2, "Succeeded"),
            ]),
            succeeded: 3,
            failed: 1,
            finalizers_removed: 4,
            condition: Some(("Complete", "CompletionsReached")),
            completed_indexes: "0-2",
            ..Case::default()
        },
        Case {
            name: "indexed job repeated completed index",
            job: indexed(job(2, Some(3), 6)),
            pods: indexed_pods(&[(0, "Succeeded"), (1, "Succeeded"), (1, "Succeeded")]),
            creations: 1,
            active: 1,
            succeeded: 2,
            finalizers_removed: 3,
            created_indexes: vec![2],
            completed_indexes: "0,1",
            ..Case::default()
        },
        Case {
            name: "indexed job some running and completed pods",
            job: indexed(job(8, Some(20), 6)),
            pods: indexed_pods(&[
                (0, "Running"),
                (2, "Succeeded"),
                (3, "Running"),
                (4, "Succeeded"),
                (5, "Succeeded"),
                (7, "Running"),
                (8, "Succeeded"),
                (9, "Running"),
            ]),
            creations: 4,
            active: 8,
            succeeded: 4,
            finalizers_removed: 4,
            created_indexes: vec![1, 6, 10, 11],
            completed_indexes: "2,4,5,8",
            ..Case::default()
        },
        Case {
            name: "indexed job some failed pods",
            job: indexed(job(2, Some(4), 6)),
            pods: indexed_pods(&[(0, "Failed"), (1, "Succeeded"), (2, "Failed")]),
            creations: 2,
            active: 2,
            created_indexes: vec![0, 2],
            succeeded: 1,
            failed: 2,
            finalizers_removed: 3,
            completed_indexes: "1",
            ..Case::default()
        },
        Case {
            name: "indexed job with duplicated running index",
            job: indexed(job(3, Some(4), 6)),
            pods: indexed_pods(&[(0, "Running"), (0, "Running"), (1, "Running")]),
            creations: 1,
            deletions: 1,
            active: 3,
            created_indexes: vec![2],
            ..Case::default()
        },
        Case {
            name: "suspending a job with satisfied expectations",
            job: {
                let mut j = job(2, Some(4), 6);
                j["spec"]["suspend"] = json!(true);
                j
            },
            pods: pods(0, 2, "Running"),
            deletions: 2,
            condition: Some(("Suspended", "JobSuspended")),
            ..Case::default()
        },
        Case {
            name: "suspending a job with unsatisfied expectations",
            job: {
                let mut j = job(2, Some(4), 6);
                j["spec"]["suspend"] = json!(true);
                j
            },
            pods: pods(0, 2, "Running"),
            may_manage: false,
            active: 2,
            condition: Some(("Suspended", "JobSuspended")),
            ..Case::default()
        },
    ]
}

#[test]
fn controller_sync_job_table() {
    let cases = cases();
    assert_eq!(cases.len(), 25, "a case was lost");
    for case in cases {
        let plan = plan(&case.job, &case.pods, at(NOW), case.may_manage);
        let name = case.name;
        assert_eq!(plan.create.len(), case.creations, "{name}: creations");
        assert_eq!(plan.delete.len(), case.deletions, "{name}: deletions");
        assert_eq!(status_int(&plan, "active"), case.active, "{name}: active");
        assert_eq!(status_int(&plan, "ready"), case.ready, "{name}: ready");
        assert_eq!(
            status_int(&plan, "succeeded"),
            case.succeeded,
            "{name}: succeeded"
        );
        assert_eq!(status_int(&plan, "failed"), case.failed, "{name}: failed");
        assert_eq!(
            plan.remove_finalizers.len(),
            case.finalizers_removed,
            "{name}: finalizers removed"
        );
        if let Some((type_, reason)) = case.condition {
            let cond = condition_of(&plan, type_)
                .unwrap_or_else(|| panic!("{name}: no {type_} condition in {:?}", plan.status));
            assert_eq!(cond["status"], "True", "{name}");
            assert_eq!(cond["reason"], reason, "{name}");
        } else {
            for type_ in ["Complete", "Failed", "Suspended"] {
                assert!(
                    condition_of(&plan, type_).is_none(),
                    "{name}: unexpected {type_}"
                );
            }
        }
        let mut indexes = created_indexes(&plan);
        indexes.sort();
        assert_eq!(indexes, case.created_indexes, "{name}: created indexes");
        let completed = plan
            .status
            .as_ref()
            .and_then(|s| s.get("completedIndexes"))
            .and_then(Value::as_str)
            .unwrap_or("");
        assert_eq!(
            completed, case.completed_indexes,
            "{name}: completed indexes"
        );
    }
}

#[test]
fn newly_finished_pods_are_recorded_as_uncounted_before_their_finalizers_go() {
    let j = job(2, Some(5), 6);
    let pods = [pods(0, 1, "Succeeded"), pods(1, 1, "Failed")].concat();
    let plan = plan(&j, &pods, at(NOW), true);
    let uncounted = plan.uncounted_status.expect("an interim status");
    assert_eq!(
        uncounted["uncountedTerminatedPods"]["succeeded"],
        json!(["pod-0"])
    );
    assert_eq!(
        uncounted["uncountedTerminatedPods"]["failed"],
        json!(["pod-1"])
    );
    let status = plan.status.expect("a final status");
    assert_eq!(status["uncountedTerminatedPods"], json!({}));
    assert_eq!(
        (status["succeeded"].as_i64(), status["failed"].as_i64()),
        (Some(1), Some(1))
    );

    // After a crash between the two writes: the pods lost their finalizers, their uids are
    // still uncounted, and they are counted once.
    let mut j = job(2, Some(5), 6);
    j["status"]["uncountedTerminatedPods"] = json!({"succeeded": ["pod-0"], "failed": ["pod-1"]});
    let mut released = pods.clone();
    for p in &mut released {
        p["metadata"]["finalizers"] = json!([]);
    }
    let again = super::plan(&j, &released, at(NOW), true);
    assert!(again.remove_finalizers.is_empty());
    let status = again.status.expect("a final status");
    assert_eq!(
        (status["succeeded"].as_i64(), status["failed"].as_i64()),
        (Some(1), Some(1))
    );
    assert_eq!(status["uncountedTerminatedPods"], json!({}));

    // Counted pods (no finalizer, not uncounted) are not counted again.
    let mut counted = job(2, Some(5), 6);
    counted["status"]["succeeded"] = json!(1);
    counted["status"]["failed"] = json!(1);
    let third = super::plan(&counted, &released, at(NOW), true);
    let status = third.status.expect("status");
    assert_eq!(
        (status["succeeded"].as_i64(), status["failed"].as_i64()),
        (Some(1), Some(1))
    );
}

#[test]
fn created_pods_carry_the_finalizer_owner_and_index() {
    let j = indexed(job(1, Some(3), 6));
    let plan = plan(&j, &[], at(NOW), true);
    assert_eq!(plan.create.len(), 1);
    let p = &plan.create[0];
    assert_eq!(p["metadata"]["generateName"], "foobar-0-");
    assert_eq!(p["metadata"]["finalizers"], json!([TRACKING_FINALIZER]));
    assert_eq!(p["metadata"]["ownerReferences"][0]["kind"], "Job");
    assert_eq!(p["metadata"]["ownerReferences"][0]["controller"], true);
    assert_eq!(
        p["metadata"]["ownerReferences"][0]["blockOwnerDeletion"],
        true
    );
    assert_eq!(
        p["metadata"]["annotations"][COMPLETION_INDEX_ANNOTATION],
        "0"
    );
    assert_eq!(p["metadata"]["labels"][COMPLETION_INDEX_ANNOTATION], "0");
    assert_eq!(
        p["metadata"]["labels"]["batch.kubernetes.io/job-name"],
        "foobar"
    );
    assert_eq!(p["spec"]["hostname"], "foobar-0");
    assert_eq!(
        p["spec"]["containers"][0]["env"][0]["name"],
        COMPLETION_INDEX_ENV
    );
    let plain = super::plan(&job(1, Some(1), 6), &[], at(NOW), true);
    assert_eq!(plain.create[0]["metadata"]["generateName"], "foobar-");
    assert!(plain.create[0]["spec"].get("hostname").is_none());
}

#[test]
fn failures_back_off_ten_seconds_doubling_to_six_minutes() {
    assert_eq!(failure_backoff(0), Duration::ZERO);
    assert_eq!(failure_backoff(1), Duration::from_secs(10));
    assert_eq!(failure_backoff(2), Duration::from_secs(20));
    assert_eq!(failure_backoff(3), Duration::from_secs(40));
    assert_eq!(failure_backoff(6), Duration::from_secs(320));
    assert_eq!(failure_backoff(7), Duration::from_secs(360));
    assert_eq!(failure_backoff(200), Duration::from_secs(360));

    // "too few active pods and active back-off": a pod failed 4 s ago; the replacement waits.
    let j = job(1, Some(1), 6);
    let failed = pods(0, 1, "Failed");
    let plan = plan(&j, &failed, at("2024-01-01T00:01:04Z"), true);
    assert!(plan.create.is_empty());
    assert_eq!(plan.requeue_after, Some(Duration::from_secs(6)));
    // Once the 10 s passed, it is created.
    let plan = super::plan(&j, &failed, at("2024-01-01T00:01:10Z"), true);
    assert_eq!(plan.create.len(), 1);
    // "failed + succeed pods: reset backoff delay": a success after the failure resets it.
    let mut mixed = pods(0, 1, "Failed");
    let mut later = pod(1, "Succeeded", None);
    later["status"]["containerStatuses"][0]["state"]["terminated"]["finishedAt"] =
        json!("2024-01-01T00:01:02Z");
    mixed.push(later);
    let plan = super::plan(
        &job(2, Some(5), 6),
        &mixed,
        at("2024-01-01T00:01:03Z"),
        true,
    );
    assert_eq!(plan.create.len(), 2);
}

#[test]
fn past_the_active_deadline_the_job_fails_after_its_pods_are_gone() {
    let mut j = job(1, Some(1), 6);
    j["spec"]["activeDeadlineSeconds"] = json!(10);
    j["status"]["startTime"] = json!("2024-01-01T00:09:45Z");
    let running = pods(0, 1, "Running");
    let first = plan(&j, &running, at(NOW), true);
    assert_eq!(first.delete.len(), 1, "the active pod is deleted");
    let target = condition_of(&first, "FailureTarget").expect("FailureTarget");
    assert_eq!(target["reason"], "DeadlineExceeded");
    assert_eq!(
        target["message"],
        "Job was active longer than specified deadline"
    );
    assert!(
        condition_of(&first, "Failed").is_none(),
        "pods still terminate"
    );

    // The pod is gone (counted as failed); the Job fails with the same reason.
    let mut after = j.clone();
    after["status"] = first.status.clone().expect("status");
    after["status"]["failed"] = json!(1);
    let second = plan(&after, &[], at(NOW), true);
    let failed = condition_of(&second, "Failed").expect("Failed");
    assert_eq!(failed["reason"], "DeadlineExceeded");
    assert!(second.events.iter().any(|e| e.type_ == EventType::Warning
        && e.reason == "DeadlineExceeded"
        && e.message == "Job was active longer than specified deadline"));

    // Before the deadline, the planner asks to be woken when it passes.
    let mut early = j.clone();
    early["status"]["startTime"] = json!("2024-01-01T00:09:57Z");
    let waiting = plan(&early, &running, at(NOW), true);
    assert_eq!(waiting.requeue_after, Some(Duration::from_secs(7)));
}

#[test]
fn completion_and_backoff_limit_record_kubernetes_events() {
    let done = plan(&job(1, Some(1), 6), &pods(0, 1, "Succeeded"), at(NOW), true);
    assert!(done
        .events
        .iter()
        .any(|e| e.reason == "Completed" && e.message == "Job completed"));
    let status = done.status.expect("status");
    assert_eq!(status["completionTime"], NOW);
    let success = condition_of(
        &JobPlan {
            status: Some(status.clone()),
            ..Default::default()
        },
        "SuccessCriteriaMet",
    )
    .cloned()
    .expect("SuccessCriteriaMet first");
    assert_eq!(
        success["message"],
        "Reached expected number of succeeded pods"
    );

    let failed = plan(&job(1, Some(1), 1), &pods(0, 2, "Failed"), at(NOW), true);
    assert!(failed.events.iter().any(|e| e.type_ == EventType::Warning
        && e.reason == "BackoffLimitExceeded"
        && e.message == "Job has reached the specified backoff limit"));
    // A finished Job changes nothing but lets go of its pods.
    let mut finished = job(1, Some(1), 6);
    finished["status"] = failed.status.expect("status");
    let after = plan(&finished, &pods(0, 1, "Failed"), at(NOW), true);
    assert!(after.status.is_none() && after.create.is_empty());
    assert_eq!(after.remove_finalizers.len(), 1);
}

#[test]
fn resuming_a_suspended_job_restarts_its_clock_and_creates_pods() {
    let mut j = job(2, Some(4), 6);
    j["status"]["conditions"] = json!([{"type": "Suspended", "status": "True",
        "reason": "JobSuspended", "message": "Job suspended",
        "lastProbeTime": "2024-01-01T00:00:00Z", "lastTransitionTime": "2024-01-01T00:00:00Z"}]);
    let plan = plan(&j, &[], at(NOW), true);
    assert_eq!(plan.create.len(), 2);
    let status = plan.status.expect("status");
    assert_eq!(status["startTime"], NOW);
    let cond = &status["conditions"][0];
    assert_eq!(
        (cond["status"].as_str(), cond["reason"].as_str()),
        (Some("False"), Some("JobResumed"))
    );
    assert!(plan
        .events
        .iter()
        .any(|e| e.reason == "Resumed" && e.message == "Job resumed"));
}

#[test]
fn completed_indexes_are_written_as_kubernetes_ranges() {
    let set = |v: &[i64]| v.iter().copied().collect::<BTreeSet<i64>>();
    assert_eq!(format_indexes(&set(&[0, 1, 2, 4])), "0-2,4");
    assert_eq!(format_indexes(&set(&[0, 1, 3, 4, 5, 7])), "0,1,3-5,7");
    assert_eq!(format_indexes(&set(&[])), "");
    assert_eq!(parse_indexes("0-2,4", 10), set(&[0, 1, 2, 4]));
    assert_eq!(parse_indexes("0-2,4,9", 5), set(&[0, 1, 2, 4]));
    assert_eq!(parse_indexes("x,3", 5), set(&[3]));
}

#[test]
fn pod_replacement_policy_decides_when_a_deleted_pod_is_replaced() {
    let mut deleted = pod(0, "Running", None);
    deleted["metadata"]["deletionTimestamp"] = json!("2024-01-01T00:09:00Z");
    // TerminatingOrFailed: the deleted pod counts as failed and is replaced at once.
    let j = job(1, Some(1), 6);
    let now_replaced = plan(&j, std::slice::from_ref(&deleted), at(NOW), true);
    assert_eq!(status_int(&now_replaced, "failed"), 1);
    assert_eq!(status_int(&now_replaced, "terminating"), 1);
    // The failure started a 10 s back-off, long passed at NOW; the replacement is made.
    assert_eq!(now_replaced.create.len(), 1);
    // Failed: it is replaced only once it failed.
    let mut waits = job(1, Some(1), 6);
    waits["spec"]["podReplacementPolicy"] = json!("Failed");
    let waiting = plan(&waits, std::slice::from_ref(&deleted), at(NOW), true);
    assert_eq!(status_int(&waiting, "failed"), 0);
    assert!(
        waiting.create.is_empty(),
        "no replacement while it terminates"
    );
    let mut gone = deleted.clone();
    gone["status"]["phase"] = json!("Failed");
    let replaced = plan(&waits, &[gone], at(NOW), true);
    assert_eq!(status_int(&replaced, "failed"), 1);
    assert_eq!(replaced.create.len(), 1);
}

#[test]
fn creations_start_slowly_in_doubling_batches() {
    assert_eq!(slow_start_batches(0), Vec::<usize>::new());
    assert_eq!(slow_start_batches(1), [1]);
    assert_eq!(slow_start_batches(5), [1, 2, 2]);
    assert_eq!(slow_start_batches(10), [1, 2, 4, 3]);
    assert_eq!(slow_start_batches(500).iter().sum::<usize>(), 500);
}

/// Issue 19: the Job cache may lag behind the status the controller wrote. A pod already
/// counted and let go (Succeeded, no finalizer) then shows in neither `succeeded` nor
/// `uncountedTerminatedPods`; replacing it would start a surplus pod that is deleted later
/// and, under `TerminatingOrFailed`, counted as a failure.
#[test]
fn a_job_cache_behind_the_counted_successes_creates_no_surplus_pod() {
    let stale = job(3, Some(3), 6);
    let mut done = pod(0, "Succeeded", None);
    done["metadata"]["finalizers"] = json!([]);
    let pods = [vec![done], pods(1, 2, "Running")].concat();
    let plan = plan(&stale, &pods, at(NOW), true);
    assert!(
        plan.create.is_empty(),
        "created {} pods for a Job whose three completions are all succeeded or running",
        plan.create.len()
    );
    assert!(plan.delete.is_empty(), "deleted {:?}", plan.delete);

    // Indexed: the finished index is not started again, even before the cache shows it in
    // `completedIndexes`.
    let stale = indexed(job(3, Some(3), 6));
    let mut done = pod(0, "Succeeded", Some(0));
    done["metadata"]["finalizers"] = json!([]);
    let pods = vec![done, pod(1, "Running", Some(1)), pod(2, "Running", Some(2))];
    let plan = super::plan(&stale, &pods, at(NOW), true);
    assert_eq!(created_indexes(&plan), Vec::<i64>::new());
    assert!(plan.delete.is_empty(), "deleted {:?}", plan.delete);
}
