//! The TTL-after-finished planner (`pkg/controller/ttlafterfinished`): a finished Job with
//! `ttlSecondsAfterFinished` is deleted (in the background, so the garbage collector takes its
//! pods) once that many seconds have passed since it finished.

use std::time::Duration;

use jiff::Timestamp;
use serde_json::Value;

use super::{condition, is_finished, time_at};

/// What the TTL controller does with one Job now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TtlDecision {
    /// Nothing: no TTL, not finished, or already being deleted.
    Keep,
    /// Look again after this long.
    WaitFor(Duration),
    /// Delete the Job now, with background propagation.
    Delete,
}

/// When the Job finished: `completionTime`, else the `Complete` or `Failed` condition's
/// transition time (`jobFinishTime`).
fn finish_time(job: &Value) -> Option<Timestamp> {
    time_at(job, "/status/completionTime").or_else(|| {
        ["Complete", "Failed"]
            .iter()
            .filter_map(|t| condition(job, t))
            .find(|c| c.get("status").and_then(Value::as_str) == Some("True"))
            .and_then(|c| time_at(c, "/lastTransitionTime"))
    })
}

/// Decides for `job` at `now`.
pub fn decide(job: &Value, now: Timestamp) -> TtlDecision {
    let Some(ttl) = job
        .pointer("/spec/ttlSecondsAfterFinished")
        .and_then(Value::as_i64)
    else {
        return TtlDecision::Keep;
    };
    if job.pointer("/metadata/deletionTimestamp").is_some() || !is_finished(job) {
        return TtlDecision::Keep;
    }
    let Some(finished) = finish_time(job) else {
        return TtlDecision::Keep;
    };
    let elapsed = now.duration_since(finished).as_secs();
    let left = ttl.saturating_sub(elapsed);
    if left <= 0 {
        TtlDecision::Delete
    } else {
        TtlDecision::WaitFor(Duration::from_secs(u64::try_from(left).unwrap_or(u64::MAX)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn at(s: &str) -> Timestamp {
        s.parse().expect("valid time")
    }

    #[test]
    fn a_finished_job_is_deleted_once_its_ttl_passed() {
        let done = json!({
            "metadata": {"name": "j"},
            "spec": {"ttlSecondsAfterFinished": 100},
            "status": {"completionTime": "2024-01-01T00:00:00Z",
                       "conditions": [{"type": "Complete", "status": "True"}]},
        });
        assert_eq!(
            decide(&done, at("2024-01-01T00:00:40Z")),
            TtlDecision::WaitFor(Duration::from_secs(60))
        );
        assert_eq!(
            decide(&done, at("2024-01-01T00:01:40Z")),
            TtlDecision::Delete
        );
        let mut failed = done.clone();
        failed["status"] = json!({"conditions": [{"type": "Failed", "status": "True",
            "lastTransitionTime": "2024-01-01T00:00:30Z"}]});
        assert_eq!(
            decide(&failed, at("2024-01-01T00:01:40Z")),
            TtlDecision::WaitFor(Duration::from_secs(30))
        );
        let mut zero = done.clone();
        zero["spec"]["ttlSecondsAfterFinished"] = json!(0);
        assert_eq!(
            decide(&zero, at("2024-01-01T00:00:00Z")),
            TtlDecision::Delete
        );
    }

    #[test]
    fn running_untimed_or_deleting_jobs_are_kept() {
        let running = json!({"spec": {"ttlSecondsAfterFinished": 0}, "status": {}});
        assert_eq!(
            decide(&running, at("2030-01-01T00:00:00Z")),
            TtlDecision::Keep
        );
        let untimed = json!({"spec": {}, "status": {"completionTime": "2024-01-01T00:00:00Z",
            "conditions": [{"type": "Complete", "status": "True"}]}});
        assert_eq!(
            decide(&untimed, at("2030-01-01T00:00:00Z")),
            TtlDecision::Keep
        );
        let mut deleting = untimed.clone();
        deleting["spec"]["ttlSecondsAfterFinished"] = json!(1);
        deleting["metadata"] = json!({"deletionTimestamp": "2024-01-01T00:00:01Z"});
        assert_eq!(
            decide(&deleting, at("2030-01-01T00:00:00Z")),
            TtlDecision::Keep
        );
    }
}
