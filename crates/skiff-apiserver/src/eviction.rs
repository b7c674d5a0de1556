//! The `pods/eviction` subresource: a pod deletion that honours PodDisruptionBudgets, as
//! kube-apiserver's `EvictionREST` serves it. `skiff_api::eviction` decides; this applies the
//! decision through the registry, retrying when a budget or the pod changed meanwhile.

use serde_json::{json, Value};
use skiff_api::eviction::{
    plan_eviction, still_processing, EvictionPlan, Refusal, VIOLATES_BUDGET,
};
use skiff_api::kinds::{pod, pod_disruption_budget};
use skiff_api::resources::Subresource;

use crate::registry::{DeleteOptions, ListOptions, Registry, WriteOptions};
use crate::status::ApiError;

/// How often a conflicting budget or pod write is tried again (upstream: 20 steps).
const RETRIES: usize = 20;

/// The answer of a successful eviction: 201 with a `Status` of `Success`.
pub fn success_status() -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201})
}

/// Checks the body of an eviction of pod `name`: an Eviction naming the same pod.
pub fn check_body(name: &str, eviction: &Value) -> Result<(), ApiError> {
    let kind = eviction
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or("Eviction");
    let api_version = eviction
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or("policy/v1");
    if kind != "Eviction" || !matches!(api_version, "policy/v1" | "policy/v1beta1") {
        return Err(ApiError::bad_request(format!(
            "not a Eviction object: {api_version}, Kind={kind}"
        )));
    }
    let body_name = eviction
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    if body_name != name {
        return Err(ApiError::bad_request(
            "name in URL does not match name in Eviction object",
        ));
    }
    Ok(())
}

fn refusal_error(refusal: Refusal) -> ApiError {
    match refusal {
        Refusal::TooManyRequests {
            cause,
            retry_after_seconds,
        } => {
            let mut details = json!({"causes": [{"reason": skiff_api::eviction::DISRUPTION_BUDGET_CAUSE, "message": cause}]});
            if retry_after_seconds > 0 {
                details["retryAfterSeconds"] = json!(retry_after_seconds);
            }
            ApiError {
                code: 429,
                reason: "TooManyRequests",
                message: VIOLATES_BUDGET.to_string(),
                details: Some(details),
            }
        }
        Refusal::MultipleBudgets => ApiError {
            code: 500,
            reason: "",
            message: skiff_api::eviction::MULTIPLE_BUDGETS.to_string(),
            details: None,
        },
        Refusal::Forbidden { budget, reason } => ApiError {
            details: Some(
                json!({"name": budget, "group": "policy", "kind": "poddisruptionbudget"}),
            ),
            ..ApiError::forbidden(format!(
                "poddisruptionbudget.policy \"{budget}\" is forbidden: {reason}"
            ))
        },
    }
}

/// The reason of the `DisruptionTarget` condition an eviction sets on its pod.
pub const DISRUPTION_REASON: &str = "EvictionByEvictionAPI";
/// Its message.
pub const DISRUPTION_MESSAGE: &str = "Eviction API: evicting";

/// Upstream `addConditionAndDeletePod`: outside a dry run, the pod gets the `DisruptionTarget`
/// condition saying why it goes (a caller's resourceVersion precondition checked first, and
/// moved to the resourceVersion that write makes), then it is deleted.
async fn mark_and_delete(
    registry: &Registry,
    namespace: &str,
    name: &str,
    options: &DeleteOptions,
) -> Result<(), ApiError> {
    let mut options = options.clone();
    let caller_precondition = options.precondition_resource_version.is_some();
    let mut attempts = 0;
    while !options.dry_run {
        attempts += 1;
        let mut current = registry.get(&pod::V1, Some(namespace), name).await?;
        let rv = current
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        if options
            .precondition_resource_version
            .as_deref()
            .is_some_and(|wanted| wanted != rv)
        {
            return Err(ApiError::conflict(&pod::V1, name));
        }
        let phase = current.pointer("/status/phase").and_then(Value::as_str);
        if matches!(phase, Some("Succeeded" | "Failed")) {
            break;
        }
        set_disruption_target(&mut current, jiff::Timestamp::now());
        match registry
            .update(
                &pod::V1,
                Some(namespace),
                name,
                current,
                Some(Subresource::Status),
                WriteOptions::default(),
            )
            .await
        {
            Ok(written) => {
                if caller_precondition {
                    options.precondition_resource_version = written
                        .object
                        .pointer("/metadata/resourceVersion")
                        .and_then(Value::as_str)
                        .map(str::to_string);
                }
                break;
            }
            // Changed meanwhile (a kubelet's status write): read it again.
            Err(e) if e.code == 409 && !caller_precondition && attempts < RETRIES => {}
            Err(e) => return Err(e),
        }
    }
    registry
        .delete(&pod::V1, Some(namespace), name, &options)
        .await
        .map(|_| ())
}

/// Sets the pod's `DisruptionTarget` condition to `True` for an eviction, its transition time
/// moved only when its status changes.
fn set_disruption_target(pod: &mut Value, now: jiff::Timestamp) {
    let stamp = json!(now.strftime("%Y-%m-%dT%H:%M:%SZ").to_string());
    if !pod.get("status").is_some_and(Value::is_object) {
        pod["status"] = json!({});
    }
    let status = &mut pod["status"];
    if !status.get("conditions").is_some_and(Value::is_array) {
        status["conditions"] = json!([]);
    }
    let conditions = status["conditions"].as_array_mut().expect("set above");
    let wanted = json!({"type": "DisruptionTarget", "status": "True", "lastProbeTime": null,
        "lastTransitionTime": stamp, "reason": DISRUPTION_REASON, "message": DISRUPTION_MESSAGE});
    match conditions
        .iter_mut()
        .find(|c| c["type"] == "DisruptionTarget")
    {
        Some(c) => {
            let kept = c["lastTransitionTime"].clone();
            let same_status = c["status"] == "True";
            *c = wanted;
            if same_status {
                c["lastTransitionTime"] = kept;
            }
        }
        None => conditions.push(wanted),
    }
}

/// Evicts pod `name` in `namespace` with `options` (the Eviction's `deleteOptions`, dry run
/// included). Returns once the pod's deletion has started, or the refusal.
pub async fn evict(
    registry: &Registry,
    namespace: &str,
    name: &str,
    options: &DeleteOptions,
) -> Result<(), ApiError> {
    let caller_precondition = options.precondition_resource_version.is_some();
    let mut last_conflict = None;
    for _ in 0..RETRIES {
        let pod_object = registry.get(&pod::V1, Some(namespace), name).await?;
        if let Ok(Err(reason)) = crate::webhooks::REQUEST_USER
            .try_with(|user| crate::node_restriction::admit_eviction(user, &pod_object))
        {
            return Err(crate::policy_admission::forbidden(&pod::V1, name, &reason));
        }
        let budgets = registry
            .list(
                &pod_disruption_budget::V1,
                Some(namespace),
                &ListOptions::default(),
            )
            .await?
            .items;
        let plan = plan_eviction(
            &pod_object,
            &budgets,
            jiff::Timestamp::now(),
            options.dry_run,
        );
        let with_precondition = |resource_version: &str| {
            let mut o = options.clone();
            if !caller_precondition {
                o.precondition_resource_version = Some(resource_version.to_string());
            }
            o
        };
        let result = match plan {
            EvictionPlan::Refuse(refusal) => return Err(refusal_error(refusal)),
            EvictionPlan::Delete => mark_and_delete(registry, namespace, name, options).await,
            EvictionPlan::DeleteIgnoringBudgets { resource_version } => {
                let o = match &resource_version {
                    Some(rv) => with_precondition(rv),
                    None => options.clone(),
                };
                mark_and_delete(registry, namespace, name, &o).await
            }
            EvictionPlan::DeleteUnready {
                budget,
                resource_version,
            } => {
                let o = with_precondition(&resource_version);
                return match mark_and_delete(registry, namespace, name, &o).await {
                    Ok(_) => Ok(()),
                    // The pod changed since it was judged unready: the client tries again.
                    Err(e) if e.code == 409 && !caller_precondition => {
                        Err(refusal_error(still_processing(&budget)))
                    }
                    Err(e) => Err(e),
                };
            }
            EvictionPlan::Decrement { budget } => {
                if !options.dry_run {
                    let budget_name = budget
                        .pointer("/metadata/name")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string();
                    match registry
                        .update(
                            &pod_disruption_budget::V1,
                            Some(namespace),
                            &budget_name,
                            budget,
                            Some(Subresource::Status),
                            WriteOptions::default(),
                        )
                        .await
                    {
                        Ok(_) => {}
                        Err(e) if e.code == 409 => {
                            last_conflict = Some(e);
                            continue;
                        }
                        Err(e) => return Err(e),
                    }
                }
                // The budget is spent: a conflict from here on must not spend it again.
                return mark_and_delete(registry, namespace, name, options).await;
            }
        };
        match result {
            Ok(_) => return Ok(()),
            Err(e) if e.code == 409 && !caller_precondition => last_conflict = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last_conflict.unwrap_or_else(|| ApiError::internal("eviction retries exhausted")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    async fn registry(dir: &tempfile::TempDir) -> Registry {
        let store =
            skiff_store::SqliteStore::open(&dir.path().join("state.db")).expect("open store");
        let registry = Registry::new(Arc::new(store));
        crate::system::ensure_builtin_namespaces(&registry)
            .await
            .expect("namespaces");
        registry
    }

    async fn running_pod(registry: &Registry, name: &str) {
        registry
            .create(
                &pod::V1,
                Some("default"),
                json!({"apiVersion": "v1", "kind": "Pod",
                       "metadata": {"name": name, "labels": {"app": "db"}},
                       "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "nginx"}]}}),
                WriteOptions::default(),
            )
            .await
            .expect("create pod");
        let mut pod_object = registry
            .get(&pod::V1, Some("default"), name)
            .await
            .expect("pod");
        pod_object["status"] = json!({"phase": "Running",
            "conditions": [{"type": "Ready", "status": "True"}]});
        registry
            .update(
                &pod::V1,
                Some("default"),
                name,
                pod_object,
                Some(Subresource::Status),
                WriteOptions::default(),
            )
            .await
            .expect("pod status");
    }

    #[tokio::test]
    async fn an_eviction_spends_the_budget_marks_the_pod_and_the_next_one_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let registry = registry(&dir).await;
        running_pod(&registry, "db-1").await;
        running_pod(&registry, "db-2").await;
        registry
            .create(
                &pod_disruption_budget::V1,
                Some("default"),
                json!({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
                       "metadata": {"name": "db"},
                       "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "db"}}}}),
                WriteOptions::default(),
            )
            .await
            .expect("create pdb");
        // Before the controller has seen the budget, evictions wait.
        let early = evict(&registry, "default", "db-1", &DeleteOptions::default())
            .await
            .expect_err("the budget is not processed yet");
        assert_eq!(early.code, 429);
        assert_eq!(
            early.to_status()["details"]["causes"][0]["message"],
            "The disruption budget db is still being processed by the server."
        );

        let mut budget = registry
            .get(&pod_disruption_budget::V1, Some("default"), "db")
            .await
            .expect("pdb");
        budget["status"] = json!({"observedGeneration": 1, "disruptionsAllowed": 1,
            "currentHealthy": 2, "desiredHealthy": 1, "expectedPods": 2});
        registry
            .update(
                &pod_disruption_budget::V1,
                Some("default"),
                "db",
                budget,
                Some(Subresource::Status),
                WriteOptions::default(),
            )
            .await
            .expect("pdb status");

        evict(&registry, "default", "db-1", &DeleteOptions::default())
            .await
            .expect("one disruption is allowed");
        let budget = registry
            .get(&pod_disruption_budget::V1, Some("default"), "db")
            .await
            .expect("pdb");
        assert_eq!(budget["status"]["disruptionsAllowed"], 0);
        assert!(budget["status"]["disruptedPods"]["db-1"].is_string());
        let evicted = registry
            .get(&pod::V1, Some("default"), "db-1")
            .await
            .expect("a bound pod goes gracefully");
        assert!(evicted["metadata"]["deletionTimestamp"].is_string());
        let target = evicted["status"]["conditions"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["type"] == "DisruptionTarget"))
            .cloned()
            .expect("the DisruptionTarget condition");
        assert_eq!(target["reason"], DISRUPTION_REASON);
        assert_eq!(target["message"], DISRUPTION_MESSAGE);

        let refused = evict(&registry, "default", "db-2", &DeleteOptions::default())
            .await
            .expect_err("the budget is spent");
        let status = refused.to_status();
        assert_eq!(status["code"], 429);
        assert_eq!(status["reason"], "TooManyRequests");
        assert_eq!(
            status["message"],
            "Cannot evict pod as it would violate the pod's disruption budget."
        );
        assert_eq!(
            status["details"]["causes"][0],
            json!({"reason": "DisruptionBudget",
                   "message": "The disruption budget db needs 1 healthy pods and has 2 currently"})
        );
        // The refused pod is untouched.
        let kept = registry
            .get(&pod::V1, Some("default"), "db-2")
            .await
            .expect("pod");
        assert!(kept["metadata"].get("deletionTimestamp").is_none());

        // A missing pod is the pods' 404.
        let missing = evict(&registry, "default", "nope", &DeleteOptions::default())
            .await
            .expect_err("no such pod");
        assert_eq!(missing.code, 404);
    }

    #[test]
    fn the_body_must_be_an_eviction_of_the_named_pod() {
        let ok = json!({"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": "p"}});
        assert!(check_body("p", &ok).is_ok());
        let other = check_body("q", &ok).expect_err("another pod");
        assert_eq!(other.code, 400);
        assert_eq!(
            other.message,
            "name in URL does not match name in Eviction object"
        );
        let wrong = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}});
        assert_eq!(
            check_body("p", &wrong).expect_err("not an eviction").code,
            400
        );
    }
}
