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
            EvictionPlan::Delete => {
                registry
                    .delete(&pod::V1, Some(namespace), name, options)
                    .await
            }
            EvictionPlan::DeleteIgnoringBudgets { resource_version } => {
                let o = match &resource_version {
                    Some(rv) => with_precondition(rv),
                    None => options.clone(),
                };
                registry.delete(&pod::V1, Some(namespace), name, &o).await
            }
            EvictionPlan::DeleteUnready {
                budget,
                resource_version,
            } => {
                let o = with_precondition(&resource_version);
                return match registry.delete(&pod::V1, Some(namespace), name, &o).await {
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
                registry
                    .delete(&pod::V1, Some(namespace), name, options)
                    .await
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
