//! The planner against cases of upstream's `TestControllerV2SyncCronJob` and
//! `TestControllerV2CleanupFinishedJobs` (`pkg/controller/cronjob/cronjob_controllerv2_test.go`),
//! with the time passed in.

use super::*;

fn at(s: &str) -> Timestamp {
    s.parse().expect("valid time")
}

const JUST_BEFORE_THE_HOUR: &str = "2024-01-01T09:59:00Z";
const JUST_AFTER_THE_HOUR: &str = "2024-01-01T10:01:00Z";
const TOP_OF_THE_HOUR: &str = "2024-01-01T10:00:00Z";
const WEEK_AFTER_THE_HOUR: &str = "2024-01-08T10:00:00Z";

/// A CronJob on the hour; `ran_previously` sets the last schedule at the previous hour.
fn cron_job(policy: &str, suspend: bool, deadline: Option<i64>, ran_previously: bool) -> Value {
    let mut cj = json!({
        "apiVersion": "batch/v1", "kind": "CronJob",
        "metadata": {"name": "mycronjob", "namespace": "snazzycats", "uid": "cj-uid",
                     "creationTimestamp": "2024-01-01T09:30:00Z"},
        "spec": {
            "schedule": "0 * * * *",
            "concurrencyPolicy": policy,
            "suspend": suspend,
            "jobTemplate": {
                "metadata": {"labels": {"a": "b"}, "annotations": {"x": "y"}},
                "spec": {"template": {"spec": {"restartPolicy": "OnFailure",
                    "containers": [{"name": "c", "image": "busybox"}]}}},
            },
        },
        "status": {},
    });
    if let Some(d) = deadline {
        cj["spec"]["startingDeadlineSeconds"] = json!(d);
    }
    if ran_previously {
        cj["metadata"]["creationTimestamp"] = json!("2024-01-01T08:30:00Z");
        cj["status"]["lastScheduleTime"] = json!("2024-01-01T09:00:00Z");
    }
    cj
}

/// A running child Job listed as active.
fn still_active(mut cj: Value) -> (Value, Vec<Value>) {
    cj["status"]["active"] = json!([{"apiVersion": "batch/v1", "kind": "Job",
        "name": "mycronjob-old", "namespace": "snazzycats", "uid": "old-uid"}]);
    let job = json!({"metadata": {"name": "mycronjob-old", "namespace": "snazzycats",
        "uid": "old-uid"}, "status": {"active": 1}});
    (cj, vec![job])
}

struct Case {
    name: &'static str,
    cron_job: Value,
    jobs: Vec<Value>,
    now: &'static str,
    create: bool,
    replace: usize,
    active: usize,
    /// Warning events expected (their reasons).
    warnings: Vec<&'static str>,
    requeue_after: Option<Duration>,
}

fn case(name: &'static str, cron_job: Value, now: &'static str) -> Case {
    Case {
        name,
        cron_job,
        jobs: Vec::new(),
        now,
        create: false,
        replace: 0,
        active: 0,
        warnings: Vec::new(),
        requeue_after: None,
    }
}

fn with_active(name: &'static str, cj: Value, now: &'static str) -> Case {
    let (cj, jobs) = still_active(cj);
    Case {
        jobs,
        active: 1,
        ..case(name, cj, now)
    }
}

/// The wait from `now` to the next hour plus the controller's 100 ms.
fn until_next_hour(now: &str) -> Option<Duration> {
    let now = at(now);
    let next = Timestamp::from_second((now.as_second() / 3600 + 1) * 3600).expect("valid");
    Some(
        Duration::from_secs(u64::try_from(next.duration_since(now).as_secs()).expect("positive"))
            + Duration::from_millis(100),
    )
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            requeue_after: until_next_hour(JUST_BEFORE_THE_HOUR),
            ..case(
                "never ran, not time, A",
                cron_job("Allow", false, None, false),
                JUST_BEFORE_THE_HOUR,
            )
        },
        Case {
            requeue_after: until_next_hour(JUST_BEFORE_THE_HOUR),
            ..case(
                "never ran, not time, F",
                cron_job("Forbid", false, None, false),
                JUST_BEFORE_THE_HOUR,
            )
        },
        Case {
            create: true,
            active: 1,
            requeue_after: until_next_hour(JUST_AFTER_THE_HOUR),
            ..case(
                "never ran, is time, A",
                cron_job("Allow", false, None, false),
                JUST_AFTER_THE_HOUR,
            )
        },
        Case {
            create: true,
            active: 1,
            requeue_after: until_next_hour(JUST_AFTER_THE_HOUR),
            ..case(
                "never ran, is time, R",
                cron_job("Replace", false, None, false),
                JUST_AFTER_THE_HOUR,
            )
        },
        case(
            "never ran, is time, suspended",
            cron_job("Allow", true, None, false),
            JUST_AFTER_THE_HOUR,
        ),
        Case {
            requeue_after: until_next_hour(JUST_AFTER_THE_HOUR),
            ..case(
                "never ran, is time, past deadline",
                cron_job("Allow", false, Some(10), false),
                JUST_AFTER_THE_HOUR,
            )
        },
        Case {
            create: true,
            active: 1,
            requeue_after: until_next_hour(JUST_AFTER_THE_HOUR),
            ..case(
                "never ran, is time, not past deadline",
                cron_job("Allow", false, Some(100), false),
                JUST_AFTER_THE_HOUR,
            )
        },
        Case {
            requeue_after: until_next_hour(JUST_BEFORE_THE_HOUR),
            ..case(
                "prev ran but done, not time, A",
                cron_job("Allow", false, None, true),
                JUST_BEFORE_THE_HOUR,
            )
        },
        Case {
            create: true,
            active: 1,
            requeue_after: until_next_hour(JUST_AFTER_THE_HOUR),
            ..case(
                "prev ran but done, is time, A",
                cron_job("Allow", false, None, true),
                JUST_AFTER_THE_HOUR,
            )
        },
        Case {
            requeue_after: until_next_hour(JUST_BEFORE_THE_HOUR),
            ..with_active(
                "still active, not time, A",
                cron_job("Allow", false, None, true),
                JUST_BEFORE_THE_HOUR,
            )
        },
        Case {
            create: true,
            active: 2,
            requeue_after: until_next_hour(JUST_AFTER_THE_HOUR),
            ..with_active(
                "still active, is time, A",
                cron_job("Allow", false, None, true),
                JUST_AFTER_THE_HOUR,
            )
        },
        Case {
            requeue_after: until_next_hour(JUST_AFTER_THE_HOUR),
            ..with_active(
                "still active, is time, F",
                cron_job("Forbid", false, None, true),
                JUST_AFTER_THE_HOUR,
            )
        },
        Case {
            create: true,
            replace: 1,
            active: 1,
            requeue_after: until_next_hour(JUST_AFTER_THE_HOUR),
            ..with_active(
                "still active, is time, R",
                cron_job("Replace", false, None, true),
                JUST_AFTER_THE_HOUR,
            )
        },
        Case {
            create: true,
            active: 1,
            warnings: vec!["TooManyMissedTimes"],
            requeue_after: until_next_hour(WEEK_AFTER_THE_HOUR),
            ..case(
                "prev ran but done, long overdue, no deadline, A",
                cron_job("Allow", false, None, true),
                WEEK_AFTER_THE_HOUR,
            )
        },
        Case {
            create: true,
            active: 1,
            requeue_after: until_next_hour(WEEK_AFTER_THE_HOUR),
            ..case(
                "prev ran but done, long overdue, not past deadline, A",
                cron_job("Allow", false, Some(100), true),
                WEEK_AFTER_THE_HOUR,
            )
        },
        Case {
            create: true,
            active: 1,
            requeue_after: until_next_hour(TOP_OF_THE_HOUR),
            ..case(
                "prev ran but done, is time exactly, A",
                cron_job("Allow", false, None, true),
                TOP_OF_THE_HOUR,
            )
        },
    ]
}

#[test]
fn controller_v2_sync_cron_job_table() {
    let cases = cases();
    assert_eq!(cases.len(), 16, "a case was lost");
    for case in cases {
        let name = case.name;
        let plan = plan(&case.cron_job, &case.jobs, at(case.now));
        assert_eq!(plan.create.is_some(), case.create, "{name}: create");
        assert_eq!(plan.replace.len(), case.replace, "{name}: replace");
        let listed = plan
            .status
            .as_ref()
            .or(case.cron_job.get("status"))
            .and_then(|s| s.get("active"))
            .and_then(Value::as_array)
            .map_or(0, Vec::len);
        let created = usize::from(plan.create.is_some());
        assert_eq!(
            listed + created,
            case.active,
            "{name}: active after the sync"
        );
        let warnings: Vec<&str> = plan
            .events
            .iter()
            .filter(|e| e.type_ == EventType::Warning)
            .map(|e| e.reason.as_str())
            .collect();
        assert_eq!(warnings, case.warnings, "{name}: warnings");
        assert_eq!(plan.requeue_after, case.requeue_after, "{name}: requeue");
        if let Some(job) = &plan.create {
            let status = plan
                .status
                .as_ref()
                .expect("a created job comes with status");
            let scheduled = at(text(status, "/lastScheduleTime"));
            assert!(scheduled <= at(case.now), "{name}");
            assert_eq!(
                job["metadata"]["name"],
                format!("mycronjob-{}", scheduled.as_second() / 60),
                "{name}"
            );
        }
    }
}

#[test]
fn a_scheduled_job_has_kubernetes_name_annotation_labels_and_owner() {
    let cj = cron_job("Allow", false, None, false);
    let plan = plan(&cj, &[], at(JUST_AFTER_THE_HOUR));
    let job = plan.create.expect("a job");
    // 2024-01-01T10:00:00Z is 28401720 minutes after the epoch.
    assert_eq!(job["metadata"]["name"], "mycronjob-28401720");
    assert_eq!(
        job["metadata"]["annotations"][SCHEDULED_TIMESTAMP_ANNOTATION],
        "2024-01-01T10:00:00Z"
    );
    assert_eq!(job["metadata"]["annotations"]["x"], "y");
    assert_eq!(job["metadata"]["labels"]["a"], "b");
    assert_eq!(job["metadata"]["ownerReferences"][0]["kind"], "CronJob");
    assert_eq!(job["metadata"]["ownerReferences"][0]["controller"], true);
    assert_eq!(
        job["spec"]["template"]["spec"]["restartPolicy"],
        "OnFailure"
    );
    assert_eq!(
        plan.status.expect("status")["lastScheduleTime"],
        TOP_OF_THE_HOUR
    );

    let mut tokyo = cron_job("Allow", false, None, false);
    tokyo["spec"]["timeZone"] = json!("Asia/Tokyo");
    tokyo["spec"]["schedule"] = json!("0 19 * * *");
    let plan = super::plan(&tokyo, &[], at(JUST_AFTER_THE_HOUR));
    assert_eq!(
        plan.create.expect("a job")["metadata"]["annotations"][SCHEDULED_TIMESTAMP_ANNOTATION],
        "2024-01-01T19:00:00+09:00"
    );
}

fn finished(name: &str, condition: &str, start: &str) -> Value {
    json!({"metadata": {"name": name, "uid": format!("{name}-uid")},
           "status": {"startTime": start, "completionTime": start,
                      "conditions": [{"type": condition, "status": "True"}]}})
}

#[test]
fn finished_jobs_leave_active_and_history_keeps_its_limits() {
    let mut cj = cron_job("Allow", false, None, true);
    cj["spec"]["successfulJobsHistoryLimit"] = json!(2);
    cj["spec"]["failedJobsHistoryLimit"] = json!(1);
    cj["status"]["active"] = json!([{"name": "s4", "uid": "s4-uid"}]);
    let jobs = vec![
        finished("s1", "Complete", "2024-01-01T01:00:00Z"),
        finished("s2", "Complete", "2024-01-01T02:00:00Z"),
        finished("s3", "Complete", "2024-01-01T03:00:00Z"),
        finished("s4", "Complete", "2024-01-01T04:00:00Z"),
        finished("f1", "Failed", "2024-01-01T01:30:00Z"),
        finished("f2", "Failed", "2024-01-01T02:30:00Z"),
    ];
    let plan = plan(&cj, &jobs, at(JUST_BEFORE_THE_HOUR));
    let deleted: Vec<&str> = plan.clean_up.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(deleted, ["s1", "s2", "f1"]);
    let status = plan.status.expect("status changes");
    assert!(status.get("active").is_none(), "{status}");
    assert_eq!(status["lastSuccessfulTime"], "2024-01-01T04:00:00Z");
    assert!(plan.events.iter().any(|e| e.reason == "SawCompletedJob"
        && e.message == "Saw completed job: s4, condition: Complete"));
}

#[test]
fn missing_and_unexpected_jobs_are_reported() {
    let mut cj = cron_job("Allow", false, None, true);
    cj["status"]["active"] = json!([{"name": "gone", "uid": "gone-uid"}]);
    let stray = json!({"metadata": {"name": "stray", "uid": "stray-uid"}, "status": {}});
    let plan = plan(&cj, &[stray], at(JUST_BEFORE_THE_HOUR));
    assert!(plan
        .events
        .iter()
        .any(|e| e.reason == "MissingJob" && e.message == "Active job went missing: gone"));
    assert!(plan.events.iter().any(|e| e.type_ == EventType::Warning
        && e.reason == "UnexpectedJob"
        && e.message == "Saw a job that the controller did not create or forgot: stray"));
    assert!(plan.status.expect("status").get("active").is_none());
}

#[test]
fn a_start_later_than_its_deadline_is_not_made() {
    // Every minute, 30 s to start: 10:00 still starts at 10:00:20, not at 10:00:45.
    let mut cj = cron_job("Allow", false, Some(30), true);
    cj["spec"]["schedule"] = json!("* * * * *");
    cj["status"]["lastScheduleTime"] = json!("2024-01-01T09:59:00Z");
    let in_time = plan(&cj, &[], at("2024-01-01T10:00:20Z"));
    assert_eq!(
        in_time.create.expect("10:00 starts")["metadata"]["name"],
        "mycronjob-28401720"
    );
    let late = plan(&cj, &[], at("2024-01-01T10:00:45Z"));
    assert!(late.create.is_none(), "10:00 is more than 30 s ago");
    assert_eq!(late.requeue_after, Some(Duration::from_millis(15_100)));
}

#[test]
fn most_recent_schedule_time_counts_missed_starts_as_upstream() {
    let schedule = Schedule::parse("0 * * * *", None).expect("valid");
    let cj = cron_job("Allow", false, None, true);
    // (now, most recent scheduled time, missed starts)
    let cases = [
        (JUST_BEFORE_THE_HOUR, None, 0),
        (TOP_OF_THE_HOUR, Some(TOP_OF_THE_HOUR), 1),
        (JUST_AFTER_THE_HOUR, Some(TOP_OF_THE_HOUR), 1),
        ("2024-01-01T12:30:00Z", Some("2024-01-01T12:00:00Z"), 3),
        (WEEK_AFTER_THE_HOUR, Some(WEEK_AFTER_THE_HOUR), 169),
    ];
    for (now, want, missed) in cases {
        let (got, count) = most_recent_schedule_time(&cj, &schedule, at(now)).expect("computes");
        assert_eq!(got, want.map(at), "{now}");
        assert_eq!(count, missed, "{now}");
    }
    let plan = plan(&cj, &[], at(WEEK_AFTER_THE_HOUR));
    assert!(plan.events.iter().any(|e| e.type_ == EventType::Warning
        && e.reason == "TooManyMissedTimes"
        && e.message
            == "too many missed start times: 169. Set or decrease .spec.startingDeadlineSeconds or check clock skew"));
    // Never firing (February 30th) schedules nothing.
    let never = Schedule::parse("0 0 30 2 *", None).expect("parses as the library does");
    assert_eq!(
        most_recent_schedule_time(&cj, &never, at(WEEK_AFTER_THE_HOUR)).expect("computes"),
        (None, 0)
    );
}
