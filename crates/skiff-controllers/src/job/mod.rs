//! The Job controller's planner (`pkg/controller/job`): from a Job, the pods it owns and the
//! time, what one sync writes.
//!
//! Pods are created up to `parallelism`, bounded by the completions still missing (in Indexed
//! mode, one pod per missing index, lowest first), each carrying the
//! `batch.kubernetes.io/job-tracking` finalizer. A pod that finished is counted in two steps,
//! as upstream does, so a crash never counts a pod twice or loses it: its uid is first written
//! to `status.uncountedTerminatedPods`, then its finalizer is removed, then the counts move
//! into `succeeded`/`failed`. Failures past `backoffLimit` or a passed `activeDeadlineSeconds`
//! set `FailureTarget`, enough successes `SuccessCriteriaMet`; active pods are then deleted, and
//! once none is left running or terminating the Job gets `Failed` or `Complete`. A failed pod
//! delays the next creation by 10 s, doubling with each further failure since the last
//! success, at most 6 minutes. Suspending deletes the active pods; resuming restarts the clock.

pub mod controller;
pub mod policy;
pub mod ttl;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use jiff::Timestamp;
use serde_json::{json, Map, Value};

pub use crate::deployment::{Event, EventType};
use policy::{index_failure_counts, match_pod_failure_policy, match_success_policy, FailureAction};

/// The finalizer that keeps a Job's pod until the controller has counted it.
pub const TRACKING_FINALIZER: &str = "batch.kubernetes.io/job-tracking";
/// The annotation and label holding an Indexed Job pod's completion index.
pub const COMPLETION_INDEX_ANNOTATION: &str = "batch.kubernetes.io/job-completion-index";
/// The environment variable an Indexed Job's containers read their index from.
pub const COMPLETION_INDEX_ENV: &str = "JOB_COMPLETION_INDEX";
/// The first delay after a pod failure (`DefaultJobPodFailureBackOff`).
pub const POD_FAILURE_BACKOFF: Duration = Duration::from_secs(10);
/// The longest delay after pod failures (`MaxJobPodFailureBackOff`).
pub const MAX_POD_FAILURE_BACKOFF: Duration = Duration::from_secs(360);
/// The most pods one sync creates or deletes (`MaxPodCreateDeletePerSync`).
pub const MAX_POD_CHANGES_PER_SYNC: usize = 500;

/// The sizes of the creation batches for `count` pods: 1, 2, 4, ... as upstream's slow start,
/// so a failing create stops after a few attempts instead of hundreds.
pub fn slow_start_batches(count: usize) -> Vec<usize> {
    let mut batches = Vec::new();
    let mut left = count;
    let mut size = 1usize;
    while left > 0 {
        let batch = size.min(left);
        batches.push(batch);
        left -= batch;
        size = size.saturating_mul(2);
    }
    batches
}

/// A pod the plan deletes or releases, named and pinned to its uid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodRef {
    /// The pod's name.
    pub name: String,
    /// The pod's uid, sent as a precondition.
    pub uid: String,
}

/// What one sync of a Job writes, in order: `uncounted_status` (when set) before any
/// finalizer is removed, then creations and deletions, then `status`.
#[derive(Debug, Clone, Default)]
pub struct JobPlan {
    /// The status recording newly finished pods in `uncountedTerminatedPods`, written before
    /// their finalizers are removed.
    pub uncounted_status: Option<Value>,
    /// Pods whose tracking finalizer is removed.
    pub remove_finalizers: Vec<PodRef>,
    /// Pod bodies to create (with `generateName`).
    pub create: Vec<Value>,
    /// Active pods to delete.
    pub delete: Vec<PodRef>,
    /// The status to write once the above succeeded; `None` when unchanged.
    pub status: Option<Value>,
    /// Events to record on the Job (pod creations and deletions are recorded by the shell as
    /// they happen).
    pub events: Vec<Event>,
    /// When to look at the Job again (back-off or deadline), if nothing else wakes it.
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

/// The event recorded for a created pod.
pub fn successful_create_event(pod: &str) -> Event {
    event(
        EventType::Normal,
        "SuccessfulCreate",
        format!("Created pod: {pod}"),
    )
}

/// The event recorded for a deleted pod.
pub fn successful_delete_event(pod: &str) -> Event {
    event(
        EventType::Normal,
        "SuccessfulDelete",
        format!("Deleted pod: {pod}"),
    )
}

/// The event recorded when creating a pod failed.
pub fn failed_create_event(error: &str) -> Event {
    event(
        EventType::Warning,
        "FailedCreate",
        format!("Error creating: {error}"),
    )
}

fn text<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

fn int(v: &Value, pointer: &str) -> Option<i64> {
    v.pointer(pointer).and_then(Value::as_i64)
}

fn time_at(v: &Value, pointer: &str) -> Option<Timestamp> {
    text(v, pointer).parse().ok()
}

fn format_time(t: Timestamp) -> String {
    // Kubernetes' times have whole seconds.
    Timestamp::from_second(t.as_second())
        .map(|t| t.to_string())
        .unwrap_or_else(|_| t.to_string())
}

fn has_finalizer(pod: &Value) -> bool {
    pod.pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .is_some_and(|f| f.iter().any(|f| f.as_str() == Some(TRACKING_FINALIZER)))
}

fn is_deleting(obj: &Value) -> bool {
    obj.pointer("/metadata/deletionTimestamp")
        .is_some_and(|v| !v.is_null())
}

fn phase(pod: &Value) -> &str {
    text(pod, "/status/phase")
}

fn pod_ref(pod: &Value) -> PodRef {
    PodRef {
        name: text(pod, "/metadata/name").to_string(),
        uid: text(pod, "/metadata/uid").to_string(),
    }
}

fn is_ready(pod: &Value) -> bool {
    pod.pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|cs| {
            cs.iter()
                .any(|c| text(c, "/type") == "Ready" && text(c, "/status") == "True")
        })
}

/// The index an Indexed Job pod carries, if valid.
pub fn completion_index(pod: &Value) -> Option<i64> {
    let annotations = pod.pointer("/metadata/annotations")?;
    let raw = annotations.get(COMPLETION_INDEX_ANNOTATION)?.as_str()?;
    // Only canonical decimal numbers count, as upstream's `getCompletionIndex`.
    let index: i64 = raw.parse().ok()?;
    (index >= 0 && index.to_string() == raw).then_some(index)
}

/// When a pod finished: its containers' latest `finishedAt`, else its deletion time, else its
/// creation time (`getFinishedTime`).
fn finished_at(pod: &Value) -> Option<Timestamp> {
    let statuses = pod
        .pointer("/status/containerStatuses")
        .and_then(Value::as_array);
    let latest = statuses
        .into_iter()
        .flatten()
        .filter_map(|c| time_at(c, "/state/terminated/finishedAt"))
        .max();
    latest
        .or_else(|| time_at(pod, "/metadata/deletionTimestamp"))
        .or_else(|| time_at(pod, "/metadata/creationTimestamp"))
}

/// Whether the Job has a condition of `type_` with status `True`.
pub fn has_true_condition(job: &Value, type_: &str) -> bool {
    condition(job, type_).is_some_and(|c| text(c, "/status") == "True")
}

fn condition<'a>(job: &'a Value, type_: &str) -> Option<&'a Value> {
    job.pointer("/status/conditions")
        .and_then(Value::as_array)?
        .iter()
        .find(|c| text(c, "/type") == type_)
}

/// Whether the Job finished (`Complete` or `Failed`).
pub fn is_finished(job: &Value) -> bool {
    has_true_condition(job, "Complete") || has_true_condition(job, "Failed")
}

fn new_condition(type_: &str, status: &str, reason: &str, message: &str, now: &str) -> Value {
    json!({
        "type": type_,
        "status": status,
        "lastProbeTime": now,
        "lastTransitionTime": now,
        "reason": reason,
        "message": message,
    })
}

/// Sets a condition, keeping `lastTransitionTime` when its status does not change; returns
/// whether anything changed.
fn set_condition(conditions: &mut Vec<Value>, cond: Value) -> bool {
    let type_ = text(&cond, "/type").to_string();
    match conditions.iter_mut().find(|c| text(c, "/type") == type_) {
        Some(existing) => {
            if text(existing, "/status") == text(&cond, "/status")
                && text(existing, "/reason") == text(&cond, "/reason")
            {
                return false;
            }
            *existing = cond;
            true
        }
        None => {
            conditions.push(cond);
            true
        }
    }
}

/// Parses `completedIndexes` ("0-2,4") into a set, ignoring malformed parts and indexes at or
/// past `completions`.
pub fn parse_indexes(text: &str, completions: i64) -> BTreeSet<i64> {
    let mut out = BTreeSet::new();
    for part in text.split(',').filter(|p| !p.is_empty()) {
        let (first, last) = match part.split_once('-') {
            Some((a, b)) => (a.parse::<i64>(), b.parse::<i64>()),
            None => (part.parse::<i64>(), part.parse::<i64>()),
        };
        if let (Ok(first), Ok(last)) = (first, last) {
            let last = last.min(completions.saturating_sub(1));
            let mut i = first.max(0);
            while i <= last {
                out.insert(i);
                i += 1;
            }
        }
    }
    out
}

/// Formats indexes as Kubernetes does: increasing, runs of three or more as `first-last`.
pub fn format_indexes(indexes: &BTreeSet<i64>) -> String {
    let mut parts = Vec::new();
    let mut iter = indexes.iter().copied().peekable();
    while let Some(first) = iter.next() {
        let mut last = first;
        while iter.peek() == Some(&(last + 1)) {
            last += 1;
            iter.next();
        }
        match last - first {
            0 => parts.push(first.to_string()),
            1 => {
                parts.push(first.to_string());
                parts.push(last.to_string());
            }
            _ => parts.push(format!("{first}-{last}")),
        }
    }
    parts.join(",")
}

/// The delay before the next pod may be created after `failures` failures since the last
/// success: 10 s doubling, at most 6 minutes.
pub fn failure_backoff(failures: u32) -> Duration {
    if failures == 0 {
        return Duration::ZERO;
    }
    let factor = 1u64
        .checked_shl(failures.saturating_sub(1))
        .unwrap_or(u64::MAX);
    let secs = POD_FAILURE_BACKOFF.as_secs().saturating_mul(factor);
    Duration::from_secs(secs).min(MAX_POD_FAILURE_BACKOFF)
}

/// How long creations must still wait after the pods' failures: failures after the last
/// success, the delay from the latest of them.
fn remaining_backoff(pods: &[&Value], failed: impl Fn(&Value) -> bool, now: Timestamp) -> Duration {
    let mut finished: Vec<(Timestamp, bool)> = pods
        .iter()
        .filter_map(|p| {
            let succeeded = phase(p) == "Succeeded";
            let failed = !succeeded && failed(p);
            (succeeded || failed).then(|| finished_at(p).map(|t| (t, failed)))?
        })
        .collect();
    finished.sort();
    let failures_after_success = finished
        .iter()
        .rev()
        .take_while(|(_, failed)| *failed)
        .count();
    let Some((last_failure, _)) = finished.last().filter(|(_, f)| *f) else {
        return Duration::ZERO;
    };
    let delay = failure_backoff(u32::try_from(failures_after_success).unwrap_or(u32::MAX));
    let elapsed = now.duration_since(*last_failure);
    let elapsed = Duration::try_from(elapsed).unwrap_or(Duration::ZERO);
    delay.saturating_sub(elapsed)
}

/// The pod a Job creates: template metadata and spec, `generateName`, the tracking finalizer,
/// a controller reference, and for `index` the Indexed mode's annotation, label, hostname and
/// environment variable.
pub fn pod_for(job: &Value, index: Option<i64>) -> Value {
    let name = text(job, "/metadata/name");
    let template = job.pointer("/spec/template").cloned().unwrap_or(json!({}));
    let mut meta = template
        .get("metadata")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    meta.remove("name");
    meta.remove("creationTimestamp");
    let prefix = match index {
        Some(i) => format!("{name}-{i}-"),
        None => format!("{name}-"),
    };
    meta.insert("generateName".into(), json!(prefix));
    meta.insert("namespace".into(), json!(text(job, "/metadata/namespace")));
    let mut finalizers: Vec<Value> = meta
        .get("finalizers")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    finalizers.push(json!(TRACKING_FINALIZER));
    meta.insert("finalizers".into(), Value::Array(finalizers));
    meta.insert(
        "ownerReferences".into(),
        json!([{
            "apiVersion": "batch/v1",
            "kind": "Job",
            "name": name,
            "uid": text(job, "/metadata/uid"),
            "controller": true,
            "blockOwnerDeletion": true,
        }]),
    );
    let mut spec = template.get("spec").cloned().unwrap_or(json!({}));
    if let Some(i) = index {
        for key in ["annotations", "labels"] {
            let map = meta.entry(key).or_insert_with(|| json!({}));
            if let Some(map) = map.as_object_mut() {
                map.insert(COMPLETION_INDEX_ANNOTATION.into(), json!(i.to_string()));
            }
        }
        if let Some(spec) = spec.as_object_mut() {
            if spec.get("hostname").is_none_or(Value::is_null) {
                spec.insert("hostname".into(), json!(format!("{name}-{i}")));
            }
            for key in ["containers", "initContainers"] {
                for container in spec
                    .get_mut(key)
                    .and_then(Value::as_array_mut)
                    .into_iter()
                    .flatten()
                {
                    add_index_env(container);
                }
            }
        }
    }
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": Value::Object(meta), "spec": spec})
}

fn add_index_env(container: &mut Value) {
    let Some(container) = container.as_object_mut() else {
        return;
    };
    let env = container.entry("env").or_insert_with(|| json!([]));
    let Some(env) = env.as_array_mut() else {
        return;
    };
    if env.iter().any(|e| text(e, "/name") == COMPLETION_INDEX_ENV) {
        return;
    }
    env.push(json!({
        "name": COMPLETION_INDEX_ENV,
        "valueFrom": {"fieldRef": {
            "apiVersion": "v1",
            "fieldPath": format!("metadata.annotations['{COMPLETION_INDEX_ANNOTATION}']"),
        }},
    }));
}

/// The uids listed under `status.uncountedTerminatedPods.<key>`.
fn uncounted(job: &Value, key: &str) -> BTreeSet<String> {
    job.pointer(&format!("/status/uncountedTerminatedPods/{key}"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect()
}

/// Plans one sync of `job` over the pods it controls (`pods`, already filtered by controller
/// reference) at `now`. `may_manage` is false while earlier creations or deletions are not yet
/// observed: the plan then counts and updates status but creates and deletes nothing.
pub fn plan(job: &Value, pods: &[Value], now: Timestamp, may_manage: bool) -> JobPlan {
    let mut out = JobPlan::default();
    let now_text = format_time(now);
    let old_status = job.get("status").cloned().unwrap_or(json!({}));
    let spec = job.get("spec").cloned().unwrap_or(json!({}));
    let suspended = spec.get("suspend").and_then(Value::as_bool) == Some(true);
    let indexed = text(&spec, "/completionMode") == "Indexed";
    let completions = int(&spec, "/completions");
    let parallelism = int(&spec, "/parallelism").unwrap_or(1).max(0);
    let backoff_limit = int(&spec, "/backoffLimit").unwrap_or(6);
    let on_failure = text(&spec, "/template/spec/restartPolicy") == "OnFailure";
    let failure_policy = spec.get("podFailurePolicy").filter(|p| !p.is_null());
    let success_policy = spec.get("successPolicy").filter(|p| !p.is_null());
    let limit_per_index = int(&spec, "/backoffLimitPerIndex").filter(|_| indexed);
    let max_failed_indexes = int(&spec, "/maxFailedIndexes");
    let success_met = has_true_condition(job, "SuccessCriteriaMet");
    // What the pod failure policy says of a pod in the Failed phase.
    let verdict = |p: &Value| -> Option<FailureAction> {
        let policy = failure_policy?;
        (phase(p) == "Failed").then(|| match_pod_failure_policy(policy, p))?
    };
    let ignored = |p: &Value| verdict(p) == Some(FailureAction::Ignore);

    let pods: Vec<&Value> = pods.iter().collect();
    // `podReplacementPolicy: Failed` waits for a deleted pod to fail before replacing it;
    // `TerminatingOrFailed` counts it as failed as soon as it is deleted.
    let replace_only_failed = text(&spec, "/podReplacementPolicy") == "Failed";
    let failed_pod = |p: &Value| {
        // Pods stopped by a suspension or by the Job's success are no failures.
        if (suspended || success_met) && is_deleting(p) {
            return false;
        }
        phase(p) == "Failed"
            || (!replace_only_failed
                && is_deleting(p)
                && phase(p) != "Succeeded"
                && has_finalizer(p))
    };

    if is_finished(job) {
        // A finished Job only lets go of the pods it still holds.
        out.remove_finalizers = pods
            .iter()
            .filter(|p| has_finalizer(p))
            .map(|p| pod_ref(p))
            .collect();
        return out;
    }

    // Step 1: count finished pods still holding the finalizer.
    let mut uncounted_succeeded = uncounted(job, "succeeded");
    let mut uncounted_failed = uncounted(job, "failed");
    let mut completed: BTreeSet<i64> = match completions {
        Some(c) if indexed => parse_indexes(text(&old_status, "/completedIndexes"), c),
        _ => BTreeSet::new(),
    };
    let mut failed_indexes: BTreeSet<i64> = match completions {
        Some(c) if limit_per_index.is_some() => {
            parse_indexes(text(&old_status, "/failedIndexes"), c)
        }
        _ => BTreeSet::new(),
    };
    for pod in &pods {
        if !has_finalizer(pod) {
            continue;
        }
        let uid = text(pod, "/metadata/uid").to_string();
        if phase(pod) == "Succeeded" {
            if !uncounted_failed.contains(&uid) {
                uncounted_succeeded.insert(uid);
            }
            out.remove_finalizers.push(pod_ref(pod));
        } else if failed_pod(pod) {
            let action = verdict(pod);
            let counts = action.as_ref().is_none_or(FailureAction::counts);
            if counts && !uncounted_succeeded.contains(&uid) {
                uncounted_failed.insert(uid);
            }
            if let (Some(limit), Some(i)) = (
                limit_per_index,
                completion_index(pod).filter(|i| Some(*i) < completions),
            ) {
                let index_failed = action == Some(FailureAction::FailIndex)
                    || (counts && index_failure_counts(pod).0 >= limit);
                if index_failed && !completed.contains(&i) {
                    failed_indexes.insert(i);
                }
            }
            out.remove_finalizers.push(pod_ref(pod));
        } else if (suspended || success_met) && is_deleting(pod) {
            // Pods stopped by a suspension or by the Job's success are let go without
            // counting as failures.
            out.remove_finalizers.push(pod_ref(pod));
        }
    }
    if indexed {
        for pod in &pods {
            let uid = text(pod, "/metadata/uid");
            if phase(pod) == "Succeeded" && uncounted_succeeded.contains(uid) {
                if let Some(i) = completion_index(pod).filter(|i| Some(*i) < completions) {
                    completed.insert(i);
                }
            }
        }
    }
    if !out.remove_finalizers.is_empty() {
        let mut status = old_status.clone();
        status["uncountedTerminatedPods"] = json!({
            "succeeded": uncounted_succeeded.iter().collect::<Vec<_>>(),
            "failed": uncounted_failed.iter().collect::<Vec<_>>(),
        });
        if status != old_status {
            out.uncounted_status = Some(status);
        }
    }
    let old_succeeded = int(&old_status, "/succeeded").unwrap_or(0);
    let old_failed = int(&old_status, "/failed").unwrap_or(0);
    let succeeded = if indexed {
        i64::try_from(completed.len()).unwrap_or(i64::MAX)
    } else {
        old_succeeded.saturating_add(i64::try_from(uncounted_succeeded.len()).unwrap_or(0))
    };
    let failed = old_failed.saturating_add(i64::try_from(uncounted_failed.len()).unwrap_or(0));

    let active_pods: Vec<&Value> = pods
        .iter()
        .copied()
        .filter(|p| !is_deleting(p) && !matches!(phase(p), "Succeeded" | "Failed"))
        .collect();
    let terminating = pods
        .iter()
        .filter(|p| is_deleting(p) && !matches!(phase(p), "Succeeded" | "Failed"))
        .count();

    // Step 2: conditions.
    let mut conditions: Vec<Value> = old_status
        .get("conditions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut start_time = time_at(&old_status, "/startTime");
    let mut interim = if has_true_condition(job, "FailureTarget") {
        condition(job, "FailureTarget").map(|c| {
            (
                "Failed",
                text(c, "/reason").to_string(),
                text(c, "/message").to_string(),
            )
        })
    } else if has_true_condition(job, "SuccessCriteriaMet") {
        condition(job, "SuccessCriteriaMet").map(|c| {
            (
                "Complete",
                text(c, "/reason").to_string(),
                text(c, "/message").to_string(),
            )
        })
    } else {
        None
    };
    if interim.is_none() {
        // A failed pod matching a `FailJob` rule fails the Job before any limit is looked at.
        let fail_job_message = pods.iter().find_map(|p| match verdict(p) {
            Some(FailureAction::FailJob(message)) => Some(message),
            _ => None,
        });
        let failed_index_count = i64::try_from(failed_indexes.len()).unwrap_or(i64::MAX);
        let restarts: i64 = if on_failure {
            active_pods
                .iter()
                .flat_map(|p| {
                    p.pointer("/status/containerStatuses")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                        .filter_map(|c| int(c, "/restartCount"))
                })
                .sum()
        } else {
            0
        };
        let deadline_passed = match (int(&spec, "/activeDeadlineSeconds"), start_time) {
            (Some(seconds), Some(start)) if !suspended => {
                let elapsed = now.duration_since(start).as_secs();
                elapsed >= seconds
            }
            _ => false,
        };
        let complete = match completions {
            Some(c) => succeeded >= c,
            None => succeeded > 0 && active_pods.is_empty(),
        };
        if let Some(message) = fail_job_message {
            interim = Some(("Failed", "PodFailurePolicy".to_string(), message));
        } else if failed.saturating_add(restarts) > backoff_limit {
            interim = Some((
                "Failed",
                "BackoffLimitExceeded".to_string(),
                "Job has reached the specified backoff limit".to_string(),
            ));
        } else if deadline_passed {
            interim = Some((
                "Failed",
                "DeadlineExceeded".to_string(),
                "Job was active longer than specified deadline".to_string(),
            ));
        } else if limit_per_index.is_some()
            && max_failed_indexes.is_some_and(|max| failed_index_count > max)
        {
            interim = Some((
                "Failed",
                "MaxFailedIndexesExceeded".to_string(),
                "Job has exceeded the specified maximal number of failed indexes".to_string(),
            ));
        } else if limit_per_index.is_some()
            && failed_index_count > 0
            && failed_index_count.saturating_add(succeeded) >= completions.unwrap_or(0)
        {
            interim = Some((
                "Failed",
                "FailedIndexes".to_string(),
                "Job has failed indexes".to_string(),
            ));
        } else if let Some(message) = success_policy
            .filter(|_| indexed)
            .and_then(|p| match_success_policy(p, completions.unwrap_or(0), &completed))
        {
            interim = Some(("Complete", "SuccessPolicy".to_string(), message));
        } else if complete {
            interim = Some((
                "Complete",
                "CompletionsReached".to_string(),
                "Reached expected number of succeeded pods".to_string(),
            ));
        }
        if let Some((kind, reason, message)) = &interim {
            let type_ = if *kind == "Failed" {
                "FailureTarget"
            } else {
                "SuccessCriteriaMet"
            };
            set_condition(
                &mut conditions,
                new_condition(type_, "True", reason, message, &now_text),
            );
        }
    }

    let mut active = active_pods.len();
    let mut completion_time = time_at(&old_status, "/completionTime");
    if let Some((kind, reason, message)) = &interim {
        // Finishing: every active pod goes, and every pod is let go once it is counted.
        if may_manage {
            for pod in &active_pods {
                out.delete.push(pod_ref(pod));
            }
        }
        let remaining = active_pods.len() + terminating;
        for pod in &pods {
            if has_finalizer(pod)
                && !out
                    .remove_finalizers
                    .iter()
                    .any(|r| r.uid == text(pod, "/metadata/uid"))
                && is_deleting(pod)
            {
                out.remove_finalizers.push(pod_ref(pod));
            }
        }
        active = active_pods.len().saturating_sub(out.delete.len());
        if remaining == 0 {
            set_condition(
                &mut conditions,
                new_condition(kind, "True", reason, message, &now_text),
            );
            if *kind == "Complete" {
                completion_time = Some(now);
                out.events
                    .push(event(EventType::Normal, "Completed", "Job completed"));
            } else {
                out.events
                    .push(event(EventType::Warning, reason, message.clone()));
            }
        }
    } else if suspended {
        if may_manage {
            for pod in &active_pods {
                out.delete.push(pod_ref(pod));
            }
        }
        active = active_pods.len().saturating_sub(out.delete.len());
        if set_condition(
            &mut conditions,
            new_condition(
                "Suspended",
                "True",
                "JobSuspended",
                "Job suspended",
                &now_text,
            ),
        ) {
            out.events
                .push(event(EventType::Normal, "Suspended", "Job suspended"));
        }
    } else {
        if has_true_condition(job, "Suspended") {
            set_condition(
                &mut conditions,
                new_condition("Suspended", "False", "JobResumed", "Job resumed", &now_text),
            );
            out.events
                .push(event(EventType::Normal, "Resumed", "Job resumed"));
            start_time = Some(now);
        }
        if start_time.is_none() {
            start_time = Some(now);
        }
        if may_manage {
            let counted_failure = |p: &Value| failed_pod(p) && !ignored(p);
            let histories = match limit_per_index {
                Some(_) => index_histories(&pods, &failed_pod, &counted_failure, now),
                None => BTreeMap::new(),
            };
            // With a limit per index, each index backs off on its own failures.
            let backoff = match limit_per_index {
                Some(_) => Duration::ZERO,
                None => remaining_backoff(&pods, counted_failure, now),
            };
            let still_terminating: Vec<&Value> = if replace_only_failed {
                pods.iter()
                    .copied()
                    .filter(|p| is_deleting(p) && !matches!(phase(p), "Succeeded" | "Failed"))
                    .collect()
            } else {
                Vec::new()
            };
            // The Job in the cache may be older than the status this controller last wrote
            // (the pod and Job watches move apart under load): a pod already counted and let
            // go then shows in neither `succeeded` nor `uncountedTerminatedPods`. Creating or
            // deleting from that lower count would start a surplus pod, deleted later and
            // counted as failed, so the successes the pods themselves show are a floor.
            let visible_successes: Vec<&Value> = pods
                .iter()
                .copied()
                .filter(|p| {
                    phase(p) == "Succeeded" && !uncounted_failed.contains(text(p, "/metadata/uid"))
                })
                .collect();
            let mut completed_floor = completed.clone();
            let succeeded_floor = if indexed {
                // Indexes, not pods: two pods may have finished the same index.
                completed_floor.extend(
                    visible_successes
                        .iter()
                        .filter_map(|p| completion_index(p))
                        .filter(|i| Some(*i) < completions),
                );
                i64::try_from(completed_floor.len()).unwrap_or(i64::MAX)
            } else {
                i64::try_from(visible_successes.len()).unwrap_or(i64::MAX)
            };
            manage(
                job,
                &active_pods,
                &still_terminating,
                completions,
                parallelism,
                succeeded.max(succeeded_floor),
                indexed,
                &completed_floor,
                backoff,
                limit_per_index.map(|_| (&failed_indexes, &histories)),
                &mut out,
            );
            active = active
                .saturating_add(out.create.len())
                .saturating_sub(out.delete.len());
        }
        if let (Some(seconds), Some(start)) = (int(&spec, "/activeDeadlineSeconds"), start_time) {
            let elapsed = now.duration_since(start).as_secs();
            let left = u64::try_from(seconds.saturating_sub(elapsed)).unwrap_or(0);
            let left = Duration::from_secs(left.max(1));
            out.requeue_after = Some(out.requeue_after.map_or(left, |r| r.min(left)));
        }
    }

    // Step 3: the status after this sync.
    let ready = active_pods
        .iter()
        .filter(|p| is_ready(p) && !out.delete.iter().any(|d| d.uid == text(p, "/metadata/uid")))
        .count();
    let mut status = Map::new();
    if active > 0 {
        status.insert("active".into(), json!(active));
    }
    if succeeded > 0 {
        status.insert("succeeded".into(), json!(succeeded));
    }
    if failed > 0 {
        status.insert("failed".into(), json!(failed));
    }
    status.insert("ready".into(), json!(ready));
    status.insert(
        "terminating".into(),
        json!(terminating.saturating_add(out.delete.len())),
    );
    if let Some(start) = start_time {
        status.insert("startTime".into(), json!(format_time(start)));
    }
    if let Some(done) = completion_time {
        status.insert("completionTime".into(), json!(format_time(done)));
    }
    if indexed && !completed.is_empty() {
        status.insert("completedIndexes".into(), json!(format_indexes(&completed)));
    }
    if limit_per_index.is_some() {
        status.insert(
            "failedIndexes".into(),
            json!(format_indexes(&failed_indexes)),
        );
    }
    status.insert("uncountedTerminatedPods".into(), json!({}));
    if !conditions.is_empty() {
        status.insert("conditions".into(), Value::Array(conditions));
    }
    let status = Value::Object(status);
    if status != old_status {
        out.status = Some(status);
    }
    out
}

/// What the failed pods of one index say about its next pod, for Jobs with
/// `backoffLimitPerIndex`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct IndexHistory {
    /// Failures that counted, which the next pod's annotation carries.
    failures: i64,
    /// Failures the pod failure policy ignored.
    ignored: i64,
    /// How long the index's failure back-off still runs.
    backoff: Duration,
}

/// Per index, the history the latest failed pod leaves (`getNewIndexFailureCounts`): its
/// annotations plus its own failure, and the back-off that failure starts.
fn index_histories(
    pods: &[&Value],
    failed: &dyn Fn(&Value) -> bool,
    counted: &dyn Fn(&Value) -> bool,
    now: Timestamp,
) -> BTreeMap<i64, IndexHistory> {
    let mut out: BTreeMap<i64, (IndexHistory, Option<Timestamp>)> = BTreeMap::new();
    for pod in pods.iter().filter(|p| failed(p)) {
        let Some(index) = completion_index(pod) else {
            continue;
        };
        let (mut failures, mut ignored) = index_failure_counts(pod);
        let finished = finished_at(pod);
        let mut backoff = Duration::ZERO;
        if counted(pod) {
            failures = failures.saturating_add(1);
            let delay = failure_backoff(u32::try_from(failures).unwrap_or(u32::MAX));
            let elapsed = finished
                .map(|f| now.duration_since(f))
                .and_then(|d| Duration::try_from(d).ok())
                .unwrap_or(Duration::ZERO);
            backoff = delay.saturating_sub(elapsed);
        } else {
            ignored = ignored.saturating_add(1);
        }
        let candidate = IndexHistory {
            failures,
            ignored,
            backoff,
        };
        let newer = out.get(&index).is_none_or(|(old, old_finished)| {
            (
                candidate.failures.saturating_add(candidate.ignored),
                finished,
            ) >= (old.failures.saturating_add(old.ignored), *old_finished)
        });
        if newer {
            out.insert(index, (candidate, finished));
        }
    }
    out.into_iter().map(|(i, (h, _))| (i, h)).collect()
}

/// `manageJob`: creates the missing pods (unless a failure back-off is running) or deletes the
/// excess ones. With a limit per index, `per_index` holds the failed indexes (never
/// recreated, their pods deleted) and each index's history (carried by its next pod).
#[allow(clippy::too_many_arguments)]
fn manage(
    job: &Value,
    active_pods: &[&Value],
    not_yet_replaceable: &[&Value],
    completions: Option<i64>,
    parallelism: i64,
    succeeded: i64,
    indexed: bool,
    completed: &BTreeSet<i64>,
    backoff: Duration,
    per_index: Option<(&BTreeSet<i64>, &BTreeMap<i64, IndexHistory>)>,
    out: &mut JobPlan,
) {
    let failed_indexes = per_index.map(|(f, _)| f);
    let index_failed = |i: i64| failed_indexes.is_some_and(|f| f.contains(&i));
    let active = i64::try_from(active_pods.len()).unwrap_or(i64::MAX);
    let wanted = match completions {
        Some(c) => parallelism.min(c.saturating_sub(succeeded).max(0)),
        // A work queue: once a pod succeeded, no new ones start.
        None if succeeded > 0 => active.min(parallelism),
        None => parallelism,
    };
    if indexed {
        // Active pods holding an index already done, or an index another pod holds, go.
        let mut held: BTreeMap<i64, usize> = BTreeMap::new();
        let mut surplus = Vec::new();
        for pod in active_pods {
            match completion_index(pod).filter(|i| Some(*i) < completions) {
                Some(i)
                    if !completed.contains(&i) && !held.contains_key(&i) && !index_failed(i) =>
                {
                    held.insert(i, 1);
                }
                _ => surplus.push(pod_ref(pod)),
            }
        }
        let held_count = i64::try_from(held.len()).unwrap_or(i64::MAX);
        let excess = held_count.saturating_sub(wanted).max(0);
        // Highest indexes go first when there are too many.
        let extra: Vec<PodRef> = active_pods
            .iter()
            .filter(|p| completion_index(p).is_some_and(|i| held.contains_key(&i)))
            .filter(|p| !surplus.iter().any(|s| s.uid == text(p, "/metadata/uid")))
            .map(|p| (completion_index(p).unwrap_or(0), pod_ref(p)))
            .collect::<BTreeMap<_, _>>()
            .into_values()
            .rev()
            .take(usize::try_from(excess).unwrap_or(0))
            .collect();
        out.delete.extend(surplus);
        out.delete.extend(extra);
        for pod in not_yet_replaceable {
            if let Some(i) = completion_index(pod) {
                held.entry(i).or_insert(0);
            }
        }
        let waiting = i64::try_from(not_yet_replaceable.len()).unwrap_or(i64::MAX);
        let room = wanted
            .saturating_sub(held_count)
            .saturating_sub(waiting)
            .max(0);
        if room > 0 && backoff.is_zero() {
            let total = completions.unwrap_or(0);
            let history = |i: i64| {
                per_index
                    .and_then(|(_, h)| h.get(&i).copied())
                    .unwrap_or_default()
            };
            let mut waiting_backoff: Option<Duration> = None;
            let missing: Vec<i64> = (0..total)
                .filter(|i| !completed.contains(i) && !held.contains_key(i) && !index_failed(*i))
                .filter(|i| {
                    let left = history(*i).backoff;
                    if !left.is_zero() {
                        waiting_backoff = Some(waiting_backoff.map_or(left, |w| w.min(left)));
                    }
                    left.is_zero()
                })
                .take(
                    usize::try_from(room)
                        .unwrap_or(0)
                        .min(MAX_POD_CHANGES_PER_SYNC),
                )
                .collect();
            for i in missing {
                let mut pod = pod_for(job, Some(i));
                if per_index.is_some() {
                    let h = history(i);
                    if let Some(a) = pod
                        .pointer_mut("/metadata/annotations")
                        .and_then(Value::as_object_mut)
                    {
                        a.insert(
                            policy::INDEX_FAILURE_COUNT_ANNOTATION.into(),
                            json!(h.failures.to_string()),
                        );
                        if h.ignored > 0 {
                            a.insert(
                                policy::INDEX_IGNORED_FAILURE_COUNT_ANNOTATION.into(),
                                json!(h.ignored.to_string()),
                            );
                        }
                    }
                }
                out.create.push(pod);
            }
            if let Some(left) = waiting_backoff {
                out.requeue_after = Some(out.requeue_after.map_or(left, |r| r.min(left)));
            }
        } else if room > 0 {
            out.requeue_after = Some(backoff);
        }
        return;
    }
    let waiting = i64::try_from(not_yet_replaceable.len()).unwrap_or(i64::MAX);
    let diff = wanted.saturating_sub(active);
    if diff < 0 {
        // Not-ready pods first, then the newest.
        let mut ranked: Vec<&&Value> = active_pods.iter().collect();
        ranked.sort_by_key(|p| {
            (
                is_ready(p),
                std::cmp::Reverse(text(p, "/metadata/creationTimestamp").to_string()),
            )
        });
        let count = usize::try_from(diff.unsigned_abs()).unwrap_or(usize::MAX);
        out.delete.extend(
            ranked
                .into_iter()
                .take(count.min(MAX_POD_CHANGES_PER_SYNC))
                .map(|p| pod_ref(p)),
        );
    } else if diff.saturating_sub(waiting) > 0 {
        let diff = diff.saturating_sub(waiting);
        if backoff.is_zero() {
            let count = usize::try_from(diff)
                .unwrap_or(usize::MAX)
                .min(MAX_POD_CHANGES_PER_SYNC);
            for _ in 0..count {
                out.create.push(pod_for(job, None));
            }
        } else {
            out.requeue_after = Some(backoff);
        }
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod policy_tests;
