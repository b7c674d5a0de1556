//! The ReplicationController manager, as upstream builds it: the ReplicaSet controller's
//! planner and shell run on each ReplicationController converted to a ReplicaSet (its
//! equality selector becomes `matchLabels`), and the plan's controller references name the
//! ReplicationController. Pure conversion here; the shell is the ReplicaSet's with
//! [`FLAVOR`].

use k8s_openapi::api::apps::v1::ReplicaSet;
use serde_json::{json, Value};

use crate::replicaset::controller::Flavor;
use crate::replicaset::ReplicaSetPlan;

/// The `kind` and `apiVersion` of the controller references a ReplicationController's pods
/// carry.
pub const OWNER_KIND: &str = "ReplicationController";
const OWNER_API_VERSION: &str = "v1";

/// The ReplicaSet shell's settings for ReplicationControllers.
pub static FLAVOR: Flavor = Flavor {
    resource: &skiff_api::kinds::replication_controller::V1,
    owner_kind: OWNER_KIND,
    as_replica_set,
    adapt_plan,
};

/// The ReplicationController as the ReplicaSet the planner reads; `None` when it does not
/// convert (a malformed object).
pub fn as_replica_set(rc: &Value) -> Option<ReplicaSet> {
    let mut converted = rc.clone();
    converted["apiVersion"] = json!("apps/v1");
    converted["kind"] = json!("ReplicaSet");
    if let Some(spec) = converted.get_mut("spec").and_then(Value::as_object_mut) {
        let labels = spec.remove("selector").unwrap_or(Value::Null);
        spec.insert("selector".into(), json!({"matchLabels": labels}));
    }
    serde_json::from_value(converted).ok()
}

/// Points the plan's new pods and adoptions at the ReplicationController.
pub fn adapt_plan(plan: &mut ReplicaSetPlan) {
    if let Some(creation) = plan.create.as_mut() {
        for reference in creation.pod.metadata.owner_references.iter_mut().flatten() {
            reference.kind = OWNER_KIND.to_string();
            reference.api_version = OWNER_API_VERSION.to_string();
        }
    }
    for adoption in &mut plan.adopt {
        for reference in adoption
            .patch
            .pointer_mut("/metadata/ownerReferences")
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
        {
            reference["kind"] = json!(OWNER_KIND);
            reference["apiVersion"] = json!(OWNER_API_VERSION);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replicaset::plan;

    fn rc(replicas: i64) -> Value {
        json!({
            "apiVersion": "v1",
            "kind": "ReplicationController",
            "metadata": {"name": "legacy", "namespace": "default", "uid": "rc-uid"},
            "spec": {
                "replicas": replicas,
                "selector": {"app": "legacy"},
                "template": {
                    "metadata": {"labels": {"app": "legacy"}},
                    "spec": {"containers": [{"name": "main", "image": "app:1"}]}
                }
            }
        })
    }

    #[test]
    fn a_converted_controller_plans_pods_it_owns_as_a_replication_controller() {
        let rs = as_replica_set(&rc(2)).expect("converts");
        let mut planned = plan(&rs, &[], "2024-01-01T00:00:00Z".parse().unwrap());
        adapt_plan(&mut planned);
        let creation = planned.create.expect("two pods to create");
        assert_eq!(creation.count, 2);
        let reference = &creation.pod.metadata.owner_references.unwrap()[0];
        assert_eq!(
            (
                reference.kind.as_str(),
                reference.api_version.as_str(),
                reference.uid.as_str()
            ),
            ("ReplicationController", "v1", "rc-uid")
        );
        assert_eq!(
            creation.pod.metadata.generate_name.as_deref(),
            Some("legacy-")
        );
    }

    #[test]
    fn orphans_matching_the_selector_are_adopted_by_the_replication_controller() {
        let rs = as_replica_set(&rc(1)).expect("converts");
        let orphan: k8s_openapi::api::core::v1::Pod = serde_json::from_value(json!({
            "metadata": {"name": "stray", "namespace": "default", "uid": "p1", "labels": {"app": "legacy"}},
            "spec": {"containers": [{"name": "main", "image": "app:1"}]},
            "status": {"phase": "Running"}
        }))
        .unwrap();
        let mut planned = plan(&rs, &[orphan], "2024-01-01T00:00:00Z".parse().unwrap());
        adapt_plan(&mut planned);
        assert_eq!(planned.adopt.len(), 1);
        let reference = &planned.adopt[0].patch["metadata"]["ownerReferences"][0];
        assert_eq!(reference["kind"], "ReplicationController");
        assert_eq!(reference["apiVersion"], "v1");
        assert!(planned.create.is_none());
    }
}
