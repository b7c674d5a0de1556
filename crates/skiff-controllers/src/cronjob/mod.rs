//! The CronJob controller's planner (`pkg/controller/cronjob`, v2): from a CronJob, the Jobs
//! it owns and the time, what one sync writes.
//!
//! Finished Jobs leave `status.active` (`SawCompletedJob`), vanished ones too (`MissingJob`),
//! and the latest successful completion becomes `lastSuccessfulTime`. Then, unless suspended,
//! the most recent scheduled time not yet run is found (more than 100 missed ones are reported
//! with `TooManyMissedTimes`; one older than `startingDeadlineSeconds` is skipped with
//! `MissSchedule`), and a Job `<cronjob>-<scheduled minutes since the epoch>` is created for it
//! unless `Forbid` finds one still active (`JobAlreadyActive`) or `Replace` deletes those first.
//! Finished Jobs beyond `successfulJobsHistoryLimit` and `failedJobsHistoryLimit` are deleted,
//! oldest first.

pub mod controller;

use std::collections::BTreeSet;
use std::time::Duration;

use jiff::Timestamp;
use serde_json::{json, Value};
use skiff_api::kinds::cron_job::Schedule;

pub use crate::deployment::{Event, EventType};
use crate::job::has_true_condition;

/// The annotation a scheduled Job carries with its scheduled time (RFC 3339, in the
/// schedule's time zone).
pub const SCHEDULED_TIMESTAMP_ANNOTATION: &str = "batch.kubernetes.io/cronjob-scheduled-timestamp";
/// More missed start times than this are reported instead of listed.
pub const MAX_MISSED_SCHEDULES: i64 = 100;
/// Added to the wait for the next scheduled time, so the sync lands just after it.
const NEXT_SCHEDULE_SLACK: Duration = Duration::from_millis(100);

/// A Job the plan deletes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobRef {
    /// The Job's name.
    pub name: String,
    /// The Job's uid, sent as a precondition.
    pub uid: String,
}

/// What one sync of a CronJob writes: deletions (Replace, then history), the Job to create,
/// and the status (to which the shell adds the created Job's reference).
#[derive(Debug, Clone, Default)]
pub struct CronJobPlan {
    /// Active Jobs the Replace policy deletes before the new one starts.
    pub replace: Vec<JobRef>,
    /// The Job to create.
    pub create: Option<Value>,
    /// Finished Jobs past the history limits.
    pub clean_up: Vec<JobRef>,
    /// The status to write (before the created Job's reference is added); `None` when
    /// unchanged and nothing is created.
    pub status: Option<Value>,
    /// Events to record on the CronJob (creations and deletions are recorded by the shell).
    pub events: Vec<Event>,
    /// When the next scheduled time comes.
    pub requeue_after: Option<Duration>,
}

fn event(type_: EventType, reason: &str, message: impl Into<String>) -> Event {
    Event {
        type_,
        reason: reason.to_string(),
        message: message.into(),
        replica_set: None,
    }
}

/// The event recorded for a created Job.
pub fn successful_create_event(job: &str) -> Event {
    event(
        EventType::Normal,
        "SuccessfulCreate",
        format!("Created job {job}"),
    )
}

/// The event recorded for a deleted Job.
pub fn successful_delete_event(job: &str) -> Event {
    event(
        EventType::Normal,
        "SuccessfulDelete",
        format!("Deleted job {job}"),
    )
}

fn text<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

fn time_at(v: &Value, pointer: &str) -> Option<Timestamp> {
    text(v, pointer).parse().ok()
}

fn job_ref(job: &Value) -> JobRef {
    JobRef {
        name: text(job, "/metadata/name").to_string(),
        uid: text(job, "/metadata/uid").to_string(),
    }
}

/// The finished condition of a Job (`Complete` or `Failed`), if any.
fn finished_condition(job: &Value) -> Option<&'static str> {
    if has_true_condition(job, "Complete") {
        Some("Complete")
    } else if has_true_condition(job, "Failed") {
        Some("Failed")
    } else {
        None
    }
}

/// `<cronjob>-<minutes since the epoch>` of a scheduled time.
pub fn job_name(cron_job_name: &str, scheduled: Timestamp) -> String {
    format!("{cron_job_name}-{}", scheduled.as_second().div_euclid(60))
}

/// The most recent scheduled time at or before `now` not yet run, and how many were missed
/// (`mostRecentScheduleTime`); `Err` for a schedule whose times are less than a second apart.
pub fn most_recent_schedule_time(
    cron_job: &Value,
    schedule: &Schedule,
    now: Timestamp,
) -> Result<(Option<Timestamp>, i64), String> {
    let mut earliest = time_at(cron_job, "/status/lastScheduleTime")
        .or_else(|| time_at(cron_job, "/metadata/creationTimestamp"))
        .unwrap_or(now);
    if let Some(deadline) = cron_job
        .pointer("/spec/startingDeadlineSeconds")
        .and_then(Value::as_i64)
    {
        let floor = now
            .checked_sub(jiff::SignedDuration::from_secs(deadline))
            .unwrap_or(Timestamp::MIN);
        if floor > earliest {
            earliest = floor;
        }
    }
    let Some(t1) = schedule.next_after(earliest) else {
        return Ok((None, 0));
    };
    if now < t1 {
        return Ok((None, 0));
    }
    let Some(t2) = schedule.next_after(t1) else {
        return Ok((Some(t1), 1));
    };
    if now < t2 {
        return Ok((Some(t1), 1));
    }
    let between = t2.duration_since(t1).as_secs();
    if between < 1 {
        return Err("time difference between two schedules is less than 1 second".to_string());
    }
    let elapsed = now.duration_since(t1).as_secs();
    let missed = (elapsed / between).saturating_add(1);
    // Start a little before the estimate and walk forward to the exact latest time.
    let back = missed.saturating_sub(2).saturating_mul(between);
    let mut t = t1
        .checked_add(jiff::SignedDuration::from_secs(back))
        .unwrap_or(t1);
    // `t` is itself a scheduled time or earlier; walk from just before it.
    t = t
        .checked_sub(jiff::SignedDuration::from_secs(1))
        .unwrap_or(t);
    let mut latest = None;
    let mut steps = 0;
    while let Some(next) = schedule.next_after(t) {
        if next > now || steps > 10_000 {
            break;
        }
        latest = Some(next);
        t = next;
        steps += 1;
    }
    Ok((latest.or(Some(t1)), missed))
}

/// The Job a CronJob starts for `scheduled`: the template's labels, annotations and spec, the
/// scheduled-time annotation, the name and a controller reference.
pub fn job_for(cron_job: &Value, scheduled: Timestamp, schedule: &Schedule) -> Value {
    let name = text(cron_job, "/metadata/name");
    let template = cron_job
        .pointer("/spec/jobTemplate")
        .cloned()
        .unwrap_or(json!({}));
    let mut meta = json!({
        "name": job_name(name, scheduled),
        "namespace": text(cron_job, "/metadata/namespace"),
        "ownerReferences": [{
            "apiVersion": "batch/v1",
            "kind": "CronJob",
            "name": name,
            "uid": text(cron_job, "/metadata/uid"),
            "controller": true,
            "blockOwnerDeletion": true,
        }],
    });
    if let Some(labels) = template
        .pointer("/metadata/labels")
        .filter(|l| l.is_object())
    {
        meta["labels"] = labels.clone();
    }
    let mut annotations = template
        .pointer("/metadata/annotations")
        .cloned()
        .filter(Value::is_object)
        .unwrap_or(json!({}));
    let zoned = scheduled.to_zoned(schedule.zone().clone());
    annotations[SCHEDULED_TIMESTAMP_ANNOTATION] = json!(zoned
        .strftime("%Y-%m-%dT%H:%M:%S%:z")
        .to_string()
        .replace("+00:00", "Z"));
    meta["annotations"] = annotations;
    json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": meta,
        "spec": template.get("spec").cloned().unwrap_or(json!({})),
    })
}

/// Plans one sync of `cron_job` over the Jobs it controls (`jobs`, filtered by controller
/// reference) at `now`.
pub fn plan(cron_job: &Value, jobs: &[Value], now: Timestamp) -> CronJobPlan {
    let mut out = CronJobPlan::default();
    let old_status = cron_job.get("status").cloned().unwrap_or(json!({}));
    let mut status = old_status.clone();
    let mut active: Vec<Value> = old_status
        .get("active")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let in_active = |active: &[Value], uid: &str| active.iter().any(|r| text(r, "/uid") == uid);
    let mut last_success = time_at(&old_status, "/lastSuccessfulTime");
    let children: BTreeSet<&str> = jobs.iter().map(|j| text(j, "/metadata/uid")).collect();
    for job in jobs {
        let uid = text(job, "/metadata/uid");
        let name = text(job, "/metadata/name");
        let finished = finished_condition(job);
        let found = in_active(&active, uid);
        if !found && finished.is_none() {
            out.events.push(event(
                EventType::Warning,
                "UnexpectedJob",
                format!("Saw a job that the controller did not create or forgot: {name}"),
            ));
        } else if found {
            if let Some(condition) = finished {
                active.retain(|r| text(r, "/uid") != uid);
                out.events.push(event(
                    EventType::Normal,
                    "SawCompletedJob",
                    format!("Saw completed job: {name}, condition: {condition}"),
                ));
            }
        }
        if finished == Some("Complete") {
            if let Some(done) = time_at(job, "/status/completionTime") {
                if last_success.is_none_or(|l| done > l) {
                    last_success = Some(done);
                }
            }
        }
    }
    let before = active.len();
    active.retain(|r| {
        let kept = children.contains(text(r, "/uid"));
        if !kept {
            out.events.push(event(
                EventType::Normal,
                "MissingJob",
                format!("Active job went missing: {}", text(r, "/name")),
            ));
        }
        kept
    });
    let _ = before;

    let suspended = cron_job.pointer("/spec/suspend").and_then(Value::as_bool) == Some(true);
    let deleting = cron_job.pointer("/metadata/deletionTimestamp").is_some();
    if !suspended && !deleting {
        schedule_next(cron_job, jobs, now, &mut active, &mut status, &mut out);
    }

    if active.is_empty() {
        if let Some(map) = status.as_object_mut() {
            map.remove("active");
        }
    } else {
        status["active"] = Value::Array(active);
    }
    if let Some(done) = last_success {
        status["lastSuccessfulTime"] = json!(done.to_string());
    }
    if status != old_status || out.create.is_some() {
        out.status = Some(status);
    }
    clean_up_history(cron_job, jobs, &out.replace, &mut out.clean_up);
    out
}

fn schedule_next(
    cron_job: &Value,
    jobs: &[Value],
    now: Timestamp,
    active: &mut Vec<Value>,
    status: &mut Value,
    out: &mut CronJobPlan,
) {
    let spec_text = text(cron_job, "/spec/schedule");
    let zone = cron_job.pointer("/spec/timeZone").and_then(Value::as_str);
    if let Some(zone) = zone {
        if jiff::tz::TimeZone::get(zone).is_err() {
            out.events.push(event(
                EventType::Warning,
                "UnknownTimeZone",
                format!("invalid timeZone: {zone:?}: unknown time zone {zone}"),
            ));
            return;
        }
    }
    let schedule = match Schedule::parse(spec_text, zone) {
        Ok(s) => s,
        Err(e) => {
            out.events.push(event(
                EventType::Warning,
                "UnparseableSchedule",
                format!("unparseable schedule: {spec_text:?} : {e}"),
            ));
            return;
        }
    };
    let (scheduled, missed) = match most_recent_schedule_time(cron_job, &schedule, now) {
        Ok(found) => found,
        Err(e) => {
            out.events
                .push(event(EventType::Warning, "InvalidSchedule", e));
            return;
        }
    };
    if missed > MAX_MISSED_SCHEDULES {
        out.events.push(event(
            EventType::Warning,
            "TooManyMissedTimes",
            format!("too many missed start times: {missed}. Set or decrease .spec.startingDeadlineSeconds or check clock skew"),
        ));
    }
    // The next time after now, for the requeue.
    if let Some(next) = schedule.next_after(now) {
        let wait = Duration::try_from(next.duration_since(now)).unwrap_or(Duration::ZERO);
        out.requeue_after = Some(wait.saturating_add(NEXT_SCHEDULE_SLACK));
    }
    let Some(scheduled) = scheduled else {
        return;
    };
    if let Some(deadline) = cron_job
        .pointer("/spec/startingDeadlineSeconds")
        .and_then(Value::as_i64)
    {
        let latest_start = scheduled
            .checked_add(jiff::SignedDuration::from_secs(deadline))
            .unwrap_or(Timestamp::MAX);
        if latest_start < now {
            let zoned = scheduled.to_zoned(jiff::tz::TimeZone::UTC);
            out.events.push(event(
                EventType::Warning,
                "MissSchedule",
                format!(
                    "Missed scheduled time to start a job: {}",
                    zoned.strftime("%a, %d %b %Y %H:%M:%S %z")
                ),
            ));
            return;
        }
    }
    let name = job_name(text(cron_job, "/metadata/name"), scheduled);
    let already = active.iter().any(|r| text(r, "/name") == name)
        || time_at(status, "/lastScheduleTime") == Some(scheduled)
        || jobs.iter().any(|j| text(j, "/metadata/name") == name);
    if already {
        return;
    }
    match text(cron_job, "/spec/concurrencyPolicy") {
        "Forbid" if !active.is_empty() => {
            out.events.push(event(
                EventType::Normal,
                "JobAlreadyActive",
                "Not starting job because prior execution is running and concurrency policy is Forbid",
            ));
            return;
        }
        "Replace" => {
            for r in active.drain(..) {
                out.replace.push(JobRef {
                    name: text(&r, "/name").to_string(),
                    uid: text(&r, "/uid").to_string(),
                });
            }
        }
        _ => {}
    }
    out.create = Some(job_for(cron_job, scheduled, &schedule));
    status["lastScheduleTime"] = json!(scheduled.to_string());
}

/// `cleanupFinishedJobs`: finished Jobs past the limits go, oldest start first.
fn clean_up_history(cron_job: &Value, jobs: &[Value], replaced: &[JobRef], out: &mut Vec<JobRef>) {
    for (condition, limit_key) in [
        ("Complete", "successfulJobsHistoryLimit"),
        ("Failed", "failedJobsHistoryLimit"),
    ] {
        let Some(limit) = cron_job
            .pointer(&format!("/spec/{limit_key}"))
            .and_then(Value::as_i64)
        else {
            continue;
        };
        let mut finished: Vec<&Value> = jobs
            .iter()
            .filter(|j| finished_condition(j) == Some(condition))
            .filter(|j| j.pointer("/metadata/deletionTimestamp").is_none())
            .filter(|j| !replaced.iter().any(|r| r.uid == text(j, "/metadata/uid")))
            .collect();
        let limit = usize::try_from(limit.max(0)).unwrap_or(usize::MAX);
        if finished.len() <= limit {
            continue;
        }
        // Jobs without a start time sort last, ties by name.
        finished.sort_by(|a, b| {
            let (sa, sb) = (
                time_at(a, "/status/startTime"),
                time_at(b, "/status/startTime"),
            );
            let key = |s: Option<Timestamp>| (s.is_none(), s);
            key(sa)
                .cmp(&key(sb))
                .then_with(|| text(a, "/metadata/name").cmp(text(b, "/metadata/name")))
        });
        let excess = finished.len() - limit;
        out.extend(finished.into_iter().take(excess).map(job_ref));
    }
}

#[cfg(test)]
mod tests;
