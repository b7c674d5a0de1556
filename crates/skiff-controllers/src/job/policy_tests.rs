//! The planner against cases of upstream's `TestSyncJobWithJobPodFailurePolicy`,
//! `TestSyncJobWithJobSuccessPolicy` and `TestSyncJobWithJobBackoffLimitPerIndex`
//! (`pkg/controller/job/job_controller_test.go`), restated for this planner's inputs.

use serde_json::{json, Value};

use super::policy::{
    match_pod_failure_policy, FailureAction, INDEX_FAILURE_COUNT_ANNOTATION,
    INDEX_IGNORED_FAILURE_COUNT_ANNOTATION,
};
use super::*;

const NOW: &str = "2024-01-01T00:10:00Z";

fn at(s: &str) -> Timestamp {
    s.parse().expect("valid time")
}

fn job(parallelism: i64, completions: i64) -> Value {
    json!({
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": "foobar", "namespace": "default", "uid": "job-uid"},
        "spec": {
            "parallelism": parallelism, "completions": completions, "backoffLimit": 6,
            "completionMode": "NonIndexed", "suspend": false,
            "podReplacementPolicy": "Failed",
            "template": {"spec": {"restartPolicy": "Never",
                "containers": [{"name": "main-container", "image": "busybox"}]}},
        },
        "status": {"startTime": "2024-01-01T00:00:00Z"},
    })
}

fn indexed(mut job: Value) -> Value {
    job["spec"]["completionMode"] = json!("Indexed");
    job
}

fn with_policy(mut job: Value, rules: Value) -> Value {
    job["spec"]["podFailurePolicy"] = json!({ "rules": rules });
    job
}

fn with_success_policy(mut job: Value, rules: Value) -> Value {
    job["spec"]["successPolicy"] = json!({ "rules": rules });
    job
}

fn per_index(mut job: Value, limit: i64, max_failed: Option<i64>) -> Value {
    job["spec"]["backoffLimitPerIndex"] = json!(limit);
    job["spec"]["backoffLimit"] = json!(i64::from(i32::MAX));
    if let Some(max) = max_failed {
        job["spec"]["maxFailedIndexes"] = json!(max);
    }
    job
}

/// The usual rules of upstream's cases: exit codes 5, 6, 7 of `main-container` fail the Job
/// (rule 1), a `DisruptionTarget` condition is ignored (rule 0), exit code 42 counts (rule 2).
fn usual_rules() -> Value {
    json!([
        {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]},
        {"action": "FailJob", "onExitCodes": {"containerName": "main-container",
                                              "operator": "In", "values": [5, 6, 7]}},
        {"action": "Count", "onExitCodes": {"operator": "In", "values": [42]}},
    ])
}

fn pod(n: usize, phase: &str, index: Option<i64>) -> Value {
    let mut pod = json!({
        "metadata": {"name": format!("mypod-{n}"), "namespace": "default",
                     "uid": format!("pod-{n}"), "creationTimestamp": "2024-01-01T00:00:00Z",
                     "finalizers": [TRACKING_FINALIZER], "annotations": {}},
        "status": {"phase": phase},
    });
    if let Some(i) = index {
        pod["metadata"]["annotations"][COMPLETION_INDEX_ANNOTATION] = json!(i.to_string());
    }
    if phase == "Succeeded" {
        pod["status"]["containerStatuses"] = json!([{"name": "main-container",
            "state": {"terminated": {"exitCode": 0, "finishedAt": "2024-01-01T00:01:00Z"}}}]);
    }
    pod
}

/// A failed pod whose `container` exited with `code`.
fn failed(n: usize, container: &str, code: i64, index: Option<i64>) -> Value {
    let mut p = pod(n, "Failed", index);
    p["status"]["containerStatuses"] = json!([{"name": container,
        "state": {"terminated": {"exitCode": code, "finishedAt": "2024-01-01T00:01:00Z"}}}]);
    p
}

fn with_condition(mut pod: Value, type_: &str) -> Value {
    pod["status"]["conditions"] = json!([{"type": type_, "status": "True"}]);
    pod
}

fn annotated(mut pod: Value, failures: i64) -> Value {
    pod["metadata"]["annotations"][INDEX_FAILURE_COUNT_ANNOTATION] = json!(failures.to_string());
    pod
}

fn condition_of<'a>(plan: &'a JobPlan, type_: &str) -> Option<&'a Value> {
    plan.status
        .as_ref()?
        .get("conditions")?
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_ && c["status"] == "True")
}

fn status_int(plan: &JobPlan, key: &str) -> i64 {
    plan.status
        .as_ref()
        .and_then(|s| s.get(key))
        .and_then(Value::as_i64)
        .unwrap_or(0)
}

/// One row: a Job and its pods, what one sync must decide.
struct Case {
    name: &'static str,
    job: Value,
    pods: Vec<Value>,
    creations: usize,
    deletions: usize,
    failed: i64,
    succeeded: i64,
    /// A `True` condition the sync must leave, with its reason and message.
    condition: Option<(&'static str, &'static str, &'static str)>,
    /// `status.failedIndexes`, for Jobs with a limit per index.
    failed_indexes: Option<&'static str>,
    /// The index-failure-count and ignored-failure-count annotations of the created pods.
    created_counts: Vec<(Option<&'static str>, Option<&'static str>)>,
}

impl Default for Case {
    fn default() -> Case {
        Case {
            name: "",
            job: job(1, 1),
            pods: Vec::new(),
            creations: 0,
            deletions: 0,
            failed: 0,
            succeeded: 0,
            condition: None,
            failed_indexes: None,
            created_counts: Vec::new(),
        }
    }
}

/// A row in which the sync fails the Job through a `FailJob` rule of its pod failure policy:
/// one failure counted, no pod created or deleted, and a `type_` condition with reason
/// `PodFailurePolicy` and `message`.
fn failed_by_policy(
    name: &'static str,
    job: Value,
    pods: Vec<Value>,
    type_: &'static str,
    message: &'static str,
) -> Case {
    Case {
        name,
        job,
        pods,
        failed: 1,
        condition: Some((type_, "PodFailurePolicy", message)),
        ..Case::default()
    }
}

/// A row of a Job with a backoff limit per index in which the sync creates one pod in place
/// of a failed one: one failure counted, `failed_indexes` in the status, and the new pod's
/// index-failure-count and ignored-failure-count annotations `created`.
fn replaced_in_index(
    name: &'static str,
    job: Value,
    pods: Vec<Value>,
    failed_indexes: &'static str,
    created: (Option<&'static str>, Option<&'static str>),
) -> Case {
    Case {
        name,
        job,
        pods,
        creations: 1,
        failed: 1,
        failed_indexes: Some(failed_indexes),
        created_counts: vec![created],
        ..Case::default()
    }
}

fn run(cases: Vec<Case>) {
    for case in cases {
        let name = case.name;
        let plan = plan(&case.job, &case.pods, at(NOW), true);
        assert_eq!(plan.create.len(), case.creations, "{name}: creations");
        assert_eq!(plan.delete.len(), case.deletions, "{name}: deletions");
        assert_eq!(status_int(&plan, "failed"), case.failed, "{name}: failed");
        assert_eq!(
            status_int(&plan, "succeeded"),
            case.succeeded,
            "{name}: succeeded"
        );
        match case.condition {
            Some((type_, reason, message)) => {
                let cond = condition_of(&plan, type_)
                    .unwrap_or_else(|| panic!("{name}: no {type_} in {:?}", plan.status));
                assert_eq!(cond["reason"], reason, "{name}: reason");
                assert_eq!(cond["message"], message, "{name}: message");
            }
            None => {
                for type_ in ["FailureTarget", "SuccessCriteriaMet", "Failed", "Complete"] {
                    assert!(
                        condition_of(&plan, type_).is_none(),
                        "{name}: unexpected {type_} in {:?}",
                        plan.status
                    );
                }
            }
        }
        let failed_indexes = plan
            .status
            .as_ref()
            .and_then(|s| s.get("failedIndexes"))
            .and_then(Value::as_str);
        assert_eq!(failed_indexes, case.failed_indexes, "{name}: failedIndexes");
        if !case.created_counts.is_empty() {
            let counts: Vec<_> = plan
                .create
                .iter()
                .map(|p| {
                    let a = &p["metadata"]["annotations"];
                    (
                        a.get(INDEX_FAILURE_COUNT_ANNOTATION)
                            .and_then(Value::as_str),
                        a.get(INDEX_IGNORED_FAILURE_COUNT_ANNOTATION)
                            .and_then(Value::as_str),
                    )
                })
                .collect();
            assert_eq!(counts, case.created_counts, "{name}: created counts");
        }
    }
}

fn pod_failure_policy_cases() -> Vec<Case> {
    let policy_job = |p, c| with_policy(job(p, c), usual_rules());
    vec![
        Case {
            name: "default handling for pod failure if the container matching the exit codes \
                   does not match the containerName restriction",
            job: policy_job(1, 1),
            pods: vec![failed(0, "monitoring-container", 5, None)],
            creations: 1,
            failed: 1,
            ..Case::default()
        },
        Case {
            name: "running pod should not result in job fail based on OnExitCodes",
            job: policy_job(1, 1),
            pods: vec![pod(0, "Running", None)],
            ..Case::default()
        },
        failed_by_policy(
            "fail job based on OnExitCodes",
            policy_job(1, 1),
            vec![failed(0, "main-container", 5, None)],
            "Failed",
            "Container main-container for pod default/mypod-0 failed with exit code 5 \
                 matching FailJob rule at index 1",
        ),
        Case {
            deletions: 1,
            ..failed_by_policy(
                "fail job with multiple pods: the running one is deleted first",
                policy_job(2, 2),
                vec![
                    pod(0, "Running", None),
                    failed(1, "main-container", 5, None),
                ],
                "FailureTarget",
                "Container main-container for pod default/mypod-1 failed with exit code 5 \
                 matching FailJob rule at index 1",
            )
        },
        failed_by_policy(
            "fail indexed job based on OnExitCodes",
            indexed(policy_job(1, 1)),
            vec![failed(0, "main-container", 7, Some(0))],
            "Failed",
            "Container main-container for pod default/mypod-0 failed with exit code 7 \
                 matching FailJob rule at index 1",
        ),
        failed_by_policy(
            "fail job based on OnExitCodes for InitContainer",
            policy_job(1, 1),
            vec![{
                let mut p = pod(0, "Failed", None);
                p["status"]["initContainerStatuses"] = json!([{"name": "main-container",
                    "state": {"terminated": {"exitCode": 5}}}]);
                p["status"]["containerStatuses"] = json!([{"name": "main-container",
                    "state": {"waiting": {"reason": "PodInitializing"}}}]);
                p
            }],
            "Failed",
            "Container main-container for pod default/mypod-0 failed with exit code 5 \
                 matching FailJob rule at index 1",
        ),
        Case {
            name: "ignore pod failure based on DisruptionTarget condition",
            job: policy_job(1, 1),
            pods: vec![with_condition(
                failed(0, "main-container", 137, None),
                "DisruptionTarget",
            )],
            creations: 1,
            ..Case::default()
        },
        Case {
            name: "the first matching rule wins: Ignore before FailJob",
            job: policy_job(1, 1),
            pods: vec![with_condition(
                failed(0, "main-container", 5, None),
                "DisruptionTarget",
            )],
            creations: 1,
            ..Case::default()
        },
        Case {
            name: "count pod failure based on OnExitCodes",
            job: policy_job(1, 1),
            pods: vec![failed(0, "main-container", 42, None)],
            creations: 1,
            failed: 1,
            ..Case::default()
        },
        Case {
            name: "backoff limit reached by failures a Count rule counts",
            job: {
                let mut j = policy_job(1, 1);
                j["spec"]["backoffLimit"] = json!(0);
                j
            },
            pods: vec![failed(0, "main-container", 42, None)],
            failed: 1,
            condition: Some((
                "Failed",
                "BackoffLimitExceeded",
                "Job has reached the specified backoff limit",
            )),
            ..Case::default()
        },
        Case {
            name: "ignored failures do not reach the backoff limit",
            job: {
                let mut j = policy_job(1, 1);
                j["spec"]["backoffLimit"] = json!(0);
                j
            },
            pods: vec![with_condition(
                failed(0, "main-container", 1, None),
                "DisruptionTarget",
            )],
            creations: 1,
            ..Case::default()
        },
        failed_by_policy(
            "fail job based on OnPodConditions",
            with_policy(
                job(1, 1),
                json!([{"action": "FailJob",
                        "onPodConditions": [{"type": "ResourceExhausted", "status": "True"}]}]),
            ),
            vec![with_condition(
                failed(0, "main-container", 1, None),
                "ResourceExhausted",
            )],
            "Failed",
            "Pod default/mypod-0 has condition ResourceExhausted matching FailJob rule at \
                 index 0",
        ),
        failed_by_policy(
            "fail job based on NotIn exit codes",
            with_policy(
                job(1, 1),
                json!([{"action": "FailJob",
                        "onExitCodes": {"operator": "NotIn", "values": [1, 2]}}]),
            ),
            vec![failed(0, "main-container", 3, None)],
            "Failed",
            "Container main-container for pod default/mypod-0 failed with exit code 3 \
                 matching FailJob rule at index 0",
        ),
        Case {
            name: "an exit code NotIn excludes counts by default",
            job: with_policy(
                job(1, 1),
                json!([{"action": "FailJob",
                        "onExitCodes": {"operator": "NotIn", "values": [1, 2]}}]),
            ),
            pods: vec![failed(0, "main-container", 2, None)],
            creations: 1,
            failed: 1,
            ..Case::default()
        },
        failed_by_policy(
            "a job already marked as failure target fails once no pod is left",
            {
                let mut j = policy_job(1, 1);
                j["status"]["conditions"] = json!([{"type": "FailureTarget", "status": "True",
                    "reason": "PodFailurePolicy",
                    "message": "Container main-container for pod default/mypod-0 failed with \
                                exit code 5 matching FailJob rule at index 1"}]);
                j["status"]["failed"] = json!(1);
                j
            },
            vec![],
            "Failed",
            "Container main-container for pod default/mypod-0 failed with exit code 5 \
                 matching FailJob rule at index 1",
        ),
    ]
}

#[test]
fn pod_failure_policy_table() {
    let cases = pod_failure_policy_cases();
    assert_eq!(cases.len(), 15, "a case was lost");
    run(cases);
}

fn success_policy_cases() -> Vec<Case> {
    let base = |rules| with_success_policy(indexed(job(3, 3)), rules);
    vec![
        Case {
            name: "job with successPolicy; job has SuccessCriteriaMet condition if job meets \
                   to successPolicy and some indexes fail",
            job: base(json!([{"succeededIndexes": "0,1", "succeededCount": 1}])),
            pods: vec![
                pod(0, "Succeeded", Some(0)),
                failed(1, "main-container", 1, Some(1)),
                pod(2, "Running", Some(2)),
            ],
            deletions: 1,
            failed: 1,
            succeeded: 1,
            condition: Some((
                "SuccessCriteriaMet",
                "SuccessPolicy",
                "Matched rules at index 0",
            )),
            ..Case::default()
        },
        Case {
            name: "succeededIndexes alone needs every listed index",
            job: base(json!([{"succeededIndexes": "0-1"}])),
            pods: vec![
                pod(0, "Succeeded", Some(0)),
                pod(1, "Running", Some(1)),
                pod(2, "Running", Some(2)),
            ],
            succeeded: 1,
            ..Case::default()
        },
        Case {
            name: "succeededCount alone counts any succeeded index",
            job: base(json!([{"succeededCount": 2}])),
            pods: vec![
                pod(0, "Running", Some(0)),
                pod(1, "Succeeded", Some(1)),
                pod(2, "Succeeded", Some(2)),
            ],
            deletions: 1,
            succeeded: 2,
            condition: Some((
                "SuccessCriteriaMet",
                "SuccessPolicy",
                "Matched rules at index 0",
            )),
            ..Case::default()
        },
        Case {
            name: "the message names the rule that matched",
            job: base(json!([{"succeededIndexes": "0"}, {"succeededIndexes": "2"}])),
            pods: vec![
                pod(0, "Running", Some(0)),
                pod(1, "Running", Some(1)),
                pod(2, "Succeeded", Some(2)),
            ],
            deletions: 2,
            succeeded: 1,
            condition: Some((
                "SuccessCriteriaMet",
                "SuccessPolicy",
                "Matched rules at index 1",
            )),
            ..Case::default()
        },
        Case {
            name: "job with successPolicy and a SuccessCriteriaMet condition completes once \
                   its pods are gone; their deletion is no failure",
            job: {
                let mut j = base(json!([{"succeededIndexes": "0"}]));
                j["status"]["conditions"] = json!([{"type": "SuccessCriteriaMet",
                    "status": "True", "reason": "SuccessPolicy",
                    "message": "Matched rules at index 0"}]);
                j["status"]["succeeded"] = json!(1);
                j["status"]["completedIndexes"] = json!("0");
                j
            },
            pods: vec![{
                let mut p = pod(1, "Running", Some(1));
                p["metadata"]["deletionTimestamp"] = json!("2024-01-01T00:09:00Z");
                p
            }],
            succeeded: 1,
            condition: Some((
                "SuccessCriteriaMet",
                "SuccessPolicy",
                "Matched rules at index 0",
            )),
            ..Case::default()
        },
        Case {
            name: "job with successPolicy completes when no pod is left",
            job: {
                let mut j = base(json!([{"succeededIndexes": "0"}]));
                j["status"]["conditions"] = json!([{"type": "SuccessCriteriaMet",
                    "status": "True", "reason": "SuccessPolicy",
                    "message": "Matched rules at index 0"}]);
                j["status"]["succeeded"] = json!(1);
                j["status"]["completedIndexes"] = json!("0");
                j
            },
            pods: vec![],
            succeeded: 1,
            condition: Some(("Complete", "SuccessPolicy", "Matched rules at index 0")),
            ..Case::default()
        },
        Case {
            name: "without a matching rule, all completions are still needed",
            job: base(json!([{"succeededIndexes": "2", "succeededCount": 1}])),
            pods: vec![
                pod(0, "Succeeded", Some(0)),
                pod(1, "Succeeded", Some(1)),
                pod(2, "Running", Some(2)),
            ],
            succeeded: 2,
            ..Case::default()
        },
    ]
}

#[test]
fn success_policy_table() {
    let cases = success_policy_cases();
    assert_eq!(cases.len(), 7, "a case was lost");
    run(cases);
}

fn backoff_limit_per_index_cases() -> Vec<Case> {
    vec![
        replaced_in_index(
            "failed pod of an index with retries left is replaced, its count carried",
            per_index(indexed(job(2, 2)), 1, None),
            vec![
                pod(0, "Running", Some(0)),
                failed(1, "main-container", 1, Some(1)),
            ],
            "",
            (Some("1"), None),
        ),
        replaced_in_index(
            "an index past its limit fails and is not replaced",
            per_index(indexed(job(2, 3)), 1, None),
            vec![
                pod(0, "Running", Some(0)),
                annotated(failed(1, "main-container", 1, Some(1)), 1),
            ],
            "1",
            (Some("0"), None),
        ),
        Case {
            name: "all indexes done with one failed: FailedIndexes",
            job: per_index(indexed(job(2, 2)), 0, None),
            pods: vec![
                pod(0, "Succeeded", Some(0)),
                failed(1, "main-container", 1, Some(1)),
            ],
            failed: 1,
            succeeded: 1,
            failed_indexes: Some("1"),
            condition: Some(("Failed", "FailedIndexes", "Job has failed indexes")),
            ..Case::default()
        },
        Case {
            name: "more failed indexes than maxFailedIndexes: the rest is deleted",
            job: per_index(indexed(job(3, 3)), 0, Some(0)),
            pods: vec![
                pod(0, "Running", Some(0)),
                failed(1, "main-container", 1, Some(1)),
                pod(2, "Running", Some(2)),
            ],
            deletions: 2,
            failed: 1,
            failed_indexes: Some("1"),
            condition: Some((
                "FailureTarget",
                "MaxFailedIndexesExceeded",
                "Job has exceeded the specified maximal number of failed indexes",
            )),
            ..Case::default()
        },
        replaced_in_index(
            "a FailIndex rule fails the index whatever retries are left",
            with_policy(
                per_index(indexed(job(2, 3)), 3, None),
                json!([{"action": "FailIndex",
                        "onExitCodes": {"operator": "In", "values": [3]}}]),
            ),
            vec![
                pod(0, "Running", Some(0)),
                failed(1, "main-container", 3, Some(1)),
            ],
            "1",
            (Some("0"), None),
        ),
        Case {
            name: "an ignored failure is carried in its own annotation",
            job: with_policy(
                per_index(indexed(job(1, 1)), 0, None),
                json!([{"action": "Ignore",
                        "onExitCodes": {"operator": "In", "values": [9]}}]),
            ),
            pods: vec![failed(0, "main-container", 9, Some(0))],
            creations: 1,
            failed_indexes: Some(""),
            created_counts: vec![(Some("0"), Some("1"))],
            ..Case::default()
        },
        replaced_in_index(
            "an index still backing off waits; the others start",
            per_index(indexed(job(2, 2)), 2, None),
            vec![{
                let mut p = failed(0, "main-container", 1, Some(0));
                p["status"]["containerStatuses"][0]["state"]["terminated"]["finishedAt"] =
                    json!("2024-01-01T00:09:55Z");
                p
            }],
            "",
            (Some("0"), None),
        ),
    ]
}

#[test]
fn backoff_limit_per_index_table() {
    let cases = backoff_limit_per_index_cases();
    assert_eq!(cases.len(), 7, "a case was lost");
    run(cases);
}

#[test]
fn an_unknown_action_or_a_running_container_matches_no_rule() {
    let rules = json!({"rules": [
        {"action": "Restart", "onExitCodes": {"operator": "In", "values": [1]}},
        {"action": "Count", "onExitCodes": {"operator": "In", "values": [2]}},
    ]});
    let p = failed(0, "main-container", 1, None);
    assert_eq!(match_pod_failure_policy(&rules, &p), None);
    let p = failed(0, "main-container", 2, None);
    assert_eq!(
        match_pod_failure_policy(&rules, &p),
        Some(FailureAction::Count)
    );
    let mut running = pod(0, "Failed", None);
    running["status"]["containerStatuses"] =
        json!([{"name": "main-container", "state": {"running": {}}}]);
    assert_eq!(match_pod_failure_policy(&rules, &running), None);
}

#[test]
fn a_failed_job_records_the_policy_reason_in_its_warning_event() {
    let mut j = with_policy(job(1, 1), usual_rules());
    j["status"]["conditions"] = json!([{"type": "FailureTarget", "status": "True",
        "reason": "PodFailurePolicy", "message": "Container main-container for pod \
         default/mypod-0 failed with exit code 5 matching FailJob rule at index 1"}]);
    let plan = plan(&j, &[], at(NOW), true);
    let event = plan.events.first().expect("an event");
    assert_eq!(event.reason, "PodFailurePolicy");
    assert_eq!(event.type_, EventType::Warning);
    assert!(event
        .message
        .starts_with("Container main-container for pod default/mypod-0"));
}
