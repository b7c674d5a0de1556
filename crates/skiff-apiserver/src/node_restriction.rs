//! The NodeRestriction admission plugin: what the Node authorizer lets a kubelet write, this
//! narrows to its own objects. A node may create or change only its own Node (without labels
//! reserved to the cluster), only its own Lease, only mirror pods bound to itself, only the
//! status of pods bound to it, and delete or evict only its own pods. The decision is pure;
//! the registry calls it with the requesting user before validating webhooks.

use std::collections::BTreeSet;

use serde_json::Value;
use skiff_auth::node::{node_identity, Reachable, NODE_LEASE_NAMESPACE};
use skiff_auth::user::UserInfo;

use crate::webhooks::AdmissionAttempt;

/// The annotation marking a mirror pod, the API copy of a node's static pod.
const MIRROR_POD_ANNOTATION: &str = "kubernetes.io/config.mirror";

/// Labels in Kubernetes' namespaces a kubelet may set on its Node (`kubeletapis.IsKubeletLabel`).
const KUBELET_LABELS: &[&str] = &[
    "kubernetes.io/hostname",
    "kubernetes.io/arch",
    "kubernetes.io/os",
    "beta.kubernetes.io/arch",
    "beta.kubernetes.io/os",
    "beta.kubernetes.io/instance-type",
    "node.kubernetes.io/instance-type",
    "failure-domain.beta.kubernetes.io/region",
    "failure-domain.beta.kubernetes.io/zone",
    "topology.kubernetes.io/region",
    "topology.kubernetes.io/zone",
];

/// Label namespaces wholly open to kubelets.
const KUBELET_LABEL_NAMESPACES: &[&str] = &["kubelet.kubernetes.io", "node.kubernetes.io"];

/// The label namespace only the cluster's administrators may set, to steer workloads.
const NODE_RESTRICTION_NAMESPACE: &str = "node-restriction.kubernetes.io";

fn in_namespace(domain: &str, namespace: &str) -> bool {
    domain == namespace || domain.ends_with(&format!(".{namespace}"))
}

/// Whether a kubelet may not set or change the Node label `key`.
pub fn label_forbidden_to_nodes(key: &str) -> bool {
    let Some((domain, _)) = key.split_once('/') else {
        return false;
    };
    if in_namespace(domain, NODE_RESTRICTION_NAMESPACE) {
        return true;
    }
    let kubernetes = in_namespace(domain, "kubernetes.io") || in_namespace(domain, "k8s.io");
    let kubelet = KUBELET_LABELS.contains(&key)
        || KUBELET_LABEL_NAMESPACES
            .iter()
            .any(|ns| in_namespace(domain, ns));
    kubernetes && !kubelet
}

fn labels(object: Option<&Value>) -> serde_json::Map<String, Value> {
    object
        .and_then(|o| o.pointer("/metadata/labels"))
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default()
}

fn node_name_of(pod: Option<&Value>) -> &str {
    pod.and_then(|p| p.pointer("/spec/nodeName"))
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// Decides `attempt` made by `user`: `Err` with the reason of the 403 when a node oversteps.
/// Anyone but a node is not this plugin's concern.
pub fn admit(user: &UserInfo, attempt: &AdmissionAttempt<'_>) -> Result<(), String> {
    let Some(node) = node_identity(user) else {
        return Ok(());
    };
    if node.is_empty() {
        return Err(format!(
            "could not determine node from user {:?}",
            user.name
        ));
    }
    let operation = attempt.operation;
    match (attempt.resource.group, attempt.resource.plural) {
        ("", "nodes") => admit_node(node, attempt),
        ("", "pods") => match (attempt.subresource, operation) {
            ("", "CREATE") => {
                let pod = attempt.object.as_ref();
                let mirror = pod
                    .and_then(|p| p.pointer("/metadata/annotations"))
                    .and_then(Value::as_object)
                    .is_some_and(|a| a.contains_key(MIRROR_POD_ANNOTATION));
                if !mirror {
                    return Err(format!("pod does not have {MIRROR_POD_ANNOTATION:?} annotation, node {node:?} can only create mirror pods"));
                }
                if node_name_of(pod) != node {
                    return Err(format!(
                        "node {node:?} can only create pods with spec.nodeName set to itself"
                    ));
                }
                admit_mirror_pod(node, pod.unwrap_or(&Value::Null))
            }
            ("", "DELETE") => {
                if node_name_of(attempt.old_object.as_ref()) != node {
                    return Err(format!(
                        "node {node:?} can only delete pods with spec.nodeName set to itself"
                    ));
                }
                Ok(())
            }
            ("", _) => Err(format!(
                "unexpected operation {operation:?}, node {node:?} can only create and delete mirror pods"
            )),
            ("status", "UPDATE") => {
                if node_name_of(attempt.old_object.as_ref()) != node {
                    return Err(format!(
                        "node {node:?} can only update pod status for pods with spec.nodeName set to itself"
                    ));
                }
                if labels(attempt.object.as_ref()) != labels(attempt.old_object.as_ref()) {
                    return Err(format!(
                        "node {node:?} cannot update labels through pod status"
                    ));
                }
                Ok(())
            }
            ("status", _) => Err(format!("unexpected operation {operation:?}")),
            (other, _) => Err(format!("unexpected subresource {other:?}")),
        },
        ("coordination.k8s.io", "leases") => {
            if attempt.namespace != NODE_LEASE_NAMESPACE {
                return Err(format!(
                    "can only access leases in the {NODE_LEASE_NAMESPACE:?} system namespace"
                ));
            }
            if operation == "CREATE" && attempt.name != node {
                return Err(
                    "can only access node lease with the same name as the requesting node".into(),
                );
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// What a node's mirror pod may be: controlled by its Node alone and referencing no other
/// object, so that creating one reaches nothing the node could not read already.
fn admit_mirror_pod(node: &str, pod: &Value) -> Result<(), String> {
    let owners = pod
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let owner = match owners.as_slice() {
        [] => {
            return Err(format!(
                "node {node:?} can only create pods with an owner reference set to itself"
            ))
        }
        [one] => one,
        _ => {
            return Err(format!(
                "node {node:?} can only create pods with a single owner reference set to itself"
            ))
        }
    };
    if owner["apiVersion"] != "v1" || owner["kind"] != "Node" || owner["name"] != node {
        return Err(format!(
            "node {node:?} can only create pods with an owner reference set to itself"
        ));
    }
    if owner["controller"] != Value::Bool(true) {
        return Err(format!(
            "node {node:?} can only create pods with a controller owner reference set to itself"
        ));
    }
    if owner["blockOwnerDeletion"] == Value::Bool(true) {
        return Err(format!(
            "node {node:?} must not set blockOwnerDeletion on an owner reference"
        ));
    }
    if pod
        .pointer("/spec/serviceAccountName")
        .and_then(Value::as_str)
        .is_some_and(|a| !a.is_empty())
    {
        return Err(format!(
            "node {node:?} can not create pods that reference a service account"
        ));
    }
    let references = skiff_auth::node::pod_edges(pod)
        .map(|e| e.references)
        .unwrap_or_default();
    for (kind, what) in [
        (Reachable::Secret, "secrets"),
        (Reachable::ConfigMap, "configmaps"),
        (Reachable::Claim, "persistentvolumeclaims"),
    ] {
        if references.iter().any(|(k, _)| *k == kind) {
            return Err(format!(
                "node {node:?} can not create pods that reference {what}"
            ));
        }
    }
    Ok(())
}

fn admit_node(node: &str, attempt: &AdmissionAttempt<'_>) -> Result<(), String> {
    if attempt.name != node {
        return Err(format!(
            "node {node:?} is not allowed to modify node {:?}",
            attempt.name
        ));
    }
    match attempt.operation {
        "CREATE" => {
            let forbidden: BTreeSet<String> = labels(attempt.object.as_ref())
                .keys()
                .filter(|k| label_forbidden_to_nodes(k))
                .cloned()
                .collect();
            if !forbidden.is_empty() {
                return Err(format!(
                    "node {node:?} is not allowed to set the following labels: {}",
                    forbidden.into_iter().collect::<Vec<_>>().join(", ")
                ));
            }
            Ok(())
        }
        "UPDATE" => {
            let taints = |o: Option<&Value>| o.and_then(|o| o.pointer("/spec/taints")).cloned();
            if attempt.subresource.is_empty()
                && taints(attempt.object.as_ref()) != taints(attempt.old_object.as_ref())
            {
                return Err(format!("node {node:?} is not allowed to modify taints"));
            }
            let new = labels(attempt.object.as_ref());
            let old = labels(attempt.old_object.as_ref());
            let forbidden: BTreeSet<&String> = new
                .keys()
                .chain(old.keys())
                .filter(|k| new.get(*k) != old.get(*k))
                .filter(|k| label_forbidden_to_nodes(k))
                .collect();
            if !forbidden.is_empty() {
                // Kubernetes words this one without naming the node.
                return Err(format!(
                    "is not allowed to modify labels: {}",
                    forbidden
                        .into_iter()
                        .map(String::as_str)
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// The TokenRequest part of the plugin: a node's request must be bound to a pod (by name and
/// uid) scheduled to that node. `bound_pod` is the pod the reference names, if it exists.
pub fn admit_token_request(
    user: &UserInfo,
    request: &Value,
    bound_pod: Option<&Value>,
) -> Result<(), String> {
    let Some(node) = node_identity(user) else {
        return Ok(());
    };
    let reference = request.pointer("/spec/boundObjectRef");
    let field = |key: &str| {
        reference
            .and_then(|r| r.get(key))
            .and_then(Value::as_str)
            .unwrap_or_default()
    };
    if field("apiVersion") != "v1" || field("kind") != "Pod" || field("name").is_empty() {
        return Err("node requested token not bound to a pod".into());
    }
    if field("uid").is_empty() {
        return Err("node requested token with a pod binding without a uid".into());
    }
    let Some(pod) = bound_pod else {
        return Err(format!("pods {:?} not found", field("name")));
    };
    let uid = pod
        .pointer("/metadata/uid")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if field("uid") != uid {
        return Err(format!("the UID in the bound object reference ({}) does not match the UID in record. The object might have been deleted and then recreated", field("uid")));
    }
    if node_name_of(Some(pod)) != node {
        return Err("node requested token bound to a pod scheduled on a different node".into());
    }
    Ok(())
}

/// [`admit_token_request`] for a node's request to ServiceAccount `account` in `namespace`,
/// reading the bound pod; a refusal is Kubernetes' 403 on the ServiceAccount.
pub async fn admit_token_request_of(
    registry: &crate::registry::Registry,
    user: &UserInfo,
    namespace: &str,
    account: &str,
    request: &Value,
) -> Result<(), crate::status::ApiError> {
    let pod_name = request
        .pointer("/spec/boundObjectRef/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    // A missing pod is the store's 404, as Kubernetes answers it.
    let pod = if pod_name.is_empty() {
        None
    } else {
        Some(
            registry
                .get(&skiff_api::kinds::pod::V1, Some(namespace), pod_name)
                .await?,
        )
    };
    admit_token_request(user, request, pod.as_ref()).map_err(|reason| {
        crate::policy_admission::forbidden(&skiff_api::kinds::service_account::V1, account, &reason)
    })
}

/// The eviction part of the plugin: a node may evict only pods bound to it.
pub fn admit_eviction(user: &UserInfo, pod: &Value) -> Result<(), String> {
    match node_identity(user) {
        // Kubernetes names the node unquoted here.
        Some(node) if node_name_of(Some(pod)) != node => Err(format!(
            "node {node} can only evict pods with spec.nodeName set to itself"
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use skiff_api::kinds;

    fn node_a() -> UserInfo {
        UserInfo::new("system:node:a", &["system:nodes", "system:authenticated"])
    }

    struct Case {
        resource: &'static skiff_api::resources::ResourceInfo,
        subresource: &'static str,
        operation: &'static str,
        namespace: &'static str,
        name: &'static str,
        object: Option<Value>,
        old: Option<Value>,
        expected: Result<(), &'static str>,
    }

    fn node_object(name: &str, labels: Value) -> Value {
        json!({"metadata": {"name": name, "labels": labels}, "spec": {}})
    }

    fn pod_on(node: &str, annotations: Value) -> Value {
        json!({"metadata": {"name": "p", "namespace": "ns", "annotations": annotations,
                            "ownerReferences": [{"apiVersion": "v1", "kind": "Node", "name": node,
                                                 "uid": "u", "controller": true}]},
               "spec": {"nodeName": node}})
    }

    /// `pod` with the field at `pointer` (its parent existing) set to `value`.
    fn with(mut pod: Value, pointer: &str, value: Value) -> Value {
        let (parent, key) = pointer.rsplit_once('/').expect("a pointer");
        match pod.pointer_mut(parent) {
            Some(Value::Object(map)) => {
                map.insert(key.to_string(), value);
            }
            Some(Value::Array(items)) => {
                items[key.parse::<usize>().expect("an index")] = value;
            }
            _ => panic!("{parent} is in the pod"),
        }
        pod
    }

    #[test]
    fn nodes_write_only_their_own_objects() {
        let plain = json!({"kubernetes.io/hostname": "a", "team": "x"});
        let mirror = json!({MIRROR_POD_ANNOTATION: "hash"});
        let cases = vec![
            Case { resource: &kinds::node::V1, subresource: "", operation: "CREATE", namespace: "", name: "a",
                   object: Some(node_object("a", plain.clone())), old: None, expected: Ok(()) },
            Case { resource: &kinds::node::V1, subresource: "", operation: "CREATE", namespace: "", name: "b",
                   object: Some(node_object("b", plain.clone())), old: None,
                   expected: Err("node \"a\" is not allowed to modify node \"b\"") },
            Case { resource: &kinds::node::V1, subresource: "status", operation: "UPDATE", namespace: "", name: "b",
                   object: Some(node_object("b", plain.clone())), old: Some(node_object("b", plain.clone())),
                   expected: Err("node \"a\" is not allowed to modify node \"b\"") },
            Case { resource: &kinds::node::V1, subresource: "", operation: "CREATE", namespace: "", name: "a",
                   object: Some(node_object("a", json!({"node-restriction.kubernetes.io/pci": "1",
                       "node-role.kubernetes.io/control-plane": "", "node.kubernetes.io/instance-type": "big",
                       "example.com/x": "1"}))), old: None,
                   expected: Err("node \"a\" is not allowed to set the following labels: node-restriction.kubernetes.io/pci, node-role.kubernetes.io/control-plane") },
            Case { resource: &kinds::node::V1, subresource: "", operation: "UPDATE", namespace: "", name: "a",
                   object: Some(node_object("a", json!({"kubernetes.io/hostname": "a", "team": "y",
                       "foo.node-restriction.kubernetes.io/z": "1"}))),
                   old: Some(node_object("a", plain.clone())),
                   expected: Err("is not allowed to modify labels: foo.node-restriction.kubernetes.io/z") },
            Case { resource: &kinds::node::V1, subresource: "", operation: "UPDATE", namespace: "", name: "a",
                   object: Some(node_object("a", json!({"kubernetes.io/hostname": "a"}))),
                   old: Some(node_object("a", json!({"kubernetes.io/hostname": "a", "k8s.io/kept": "1"}))),
                   expected: Err("is not allowed to modify labels: k8s.io/kept") },
            Case { resource: &kinds::node::V1, subresource: "", operation: "UPDATE", namespace: "", name: "a",
                   object: Some(json!({"metadata": {"name": "a"}, "spec": {"taints": []}})),
                   old: Some(json!({"metadata": {"name": "a"}, "spec": {"taints": [{"key": "k", "effect": "NoSchedule"}]}})),
                   expected: Err("node \"a\" is not allowed to modify taints") },
            Case { resource: &kinds::node::V1, subresource: "", operation: "DELETE", namespace: "", name: "b",
                   object: None, old: Some(node_object("b", plain.clone())),
                   expected: Err("node \"a\" is not allowed to modify node \"b\"") },
            Case { resource: &kinds::pod::V1, subresource: "", operation: "CREATE", namespace: "ns", name: "p",
                   object: Some(pod_on("a", json!({}))), old: None,
                   expected: Err("pod does not have \"kubernetes.io/config.mirror\" annotation, node \"a\" can only create mirror pods") },
            Case { resource: &kinds::pod::V1, subresource: "", operation: "CREATE", namespace: "ns", name: "p",
                   object: Some(pod_on("b", mirror.clone())), old: None,
                   expected: Err("node \"a\" can only create pods with spec.nodeName set to itself") },
            Case { resource: &kinds::pod::V1, subresource: "", operation: "CREATE", namespace: "ns", name: "p",
                   object: Some(pod_on("a", mirror.clone())), old: None, expected: Ok(()) },
            Case { resource: &kinds::pod::V1, subresource: "", operation: "CREATE", namespace: "ns", name: "p",
                   object: Some(with(pod_on("a", mirror.clone()), "/metadata/ownerReferences", json!([]))), old: None,
                   expected: Err("node \"a\" can only create pods with an owner reference set to itself") },
            Case { resource: &kinds::pod::V1, subresource: "", operation: "CREATE", namespace: "ns", name: "p",
                   object: Some(with(pod_on("a", mirror.clone()), "/metadata/ownerReferences/0/controller", json!(false))), old: None,
                   expected: Err("node \"a\" can only create pods with a controller owner reference set to itself") },
            Case { resource: &kinds::pod::V1, subresource: "", operation: "CREATE", namespace: "ns", name: "p",
                   object: Some(with(pod_on("a", mirror.clone()), "/spec", json!({"nodeName": "a",
                       "volumes": [{"name": "s", "secret": {"secretName": "x"}}]}))), old: None,
                   expected: Err("node \"a\" can not create pods that reference secrets") },
            Case { resource: &kinds::pod::V1, subresource: "", operation: "CREATE", namespace: "ns", name: "p",
                   object: Some(with(pod_on("a", mirror.clone()), "/spec", json!({"nodeName": "a",
                       "serviceAccountName": "builder"}))), old: None,
                   expected: Err("node \"a\" can not create pods that reference a service account") },
            Case { resource: &kinds::pod::V1, subresource: "status", operation: "UPDATE", namespace: "ns", name: "p",
                   object: Some(with(pod_on("a", json!({})), "/metadata/labels", json!({"x": "y"}))),
                   old: Some(pod_on("a", json!({}))),
                   expected: Err("node \"a\" cannot update labels through pod status") },
            Case { resource: &kinds::pod::V1, subresource: "", operation: "UPDATE", namespace: "ns", name: "p",
                   object: Some(pod_on("a", json!({}))), old: Some(pod_on("a", json!({}))),
                   expected: Err("unexpected operation \"UPDATE\", node \"a\" can only create and delete mirror pods") },
            Case { resource: &kinds::pod::V1, subresource: "status", operation: "UPDATE", namespace: "ns", name: "p",
                   object: Some(pod_on("a", json!({}))), old: Some(pod_on("a", json!({}))), expected: Ok(()) },
            Case { resource: &kinds::pod::V1, subresource: "status", operation: "UPDATE", namespace: "ns", name: "p",
                   object: Some(pod_on("b", json!({}))), old: Some(pod_on("b", json!({}))),
                   expected: Err("node \"a\" can only update pod status for pods with spec.nodeName set to itself") },
            Case { resource: &kinds::pod::V1, subresource: "", operation: "DELETE", namespace: "ns", name: "p",
                   object: None, old: Some(pod_on("a", json!({}))), expected: Ok(()) },
            Case { resource: &kinds::pod::V1, subresource: "", operation: "DELETE", namespace: "ns", name: "p",
                   object: None, old: Some(pod_on("b", json!({}))),
                   expected: Err("node \"a\" can only delete pods with spec.nodeName set to itself") },
            Case { resource: &kinds::lease::V1, subresource: "", operation: "CREATE", namespace: "kube-node-lease", name: "a",
                   object: Some(json!({})), old: None, expected: Ok(()) },
            Case { resource: &kinds::lease::V1, subresource: "", operation: "CREATE", namespace: "kube-node-lease", name: "b",
                   object: Some(json!({})), old: None,
                   expected: Err("can only access node lease with the same name as the requesting node") },
            Case { resource: &kinds::config_map::V1, subresource: "", operation: "CREATE", namespace: "ns", name: "x",
                   object: Some(json!({})), old: None, expected: Ok(()) },
        ];
        for case in cases {
            let attempt = AdmissionAttempt {
                resource: case.resource,
                subresource: case.subresource,
                operation: case.operation,
                namespace: case.namespace,
                name: case.name,
                object: case.object,
                old_object: case.old,
                dry_run: false,
            };
            let got = admit(&node_a(), &attempt);
            assert_eq!(
                got,
                case.expected.map_err(String::from),
                "{} {}/{} {}",
                case.operation,
                case.resource.plural,
                case.subresource,
                case.name
            );
            // Nobody but a node is restricted.
            assert_eq!(
                admit(&UserInfo::new("jane", &["system:authenticated"]), &attempt),
                Ok(())
            );
        }
    }

    #[test]
    fn a_node_asks_tokens_only_for_its_own_pods() {
        let request = |reference: Value| json!({"spec": {"boundObjectRef": reference}});
        let mut mine = pod_on("a", json!({}));
        mine["metadata"]["uid"] = json!("u1");
        let mut theirs = pod_on("b", json!({}));
        theirs["metadata"]["uid"] = json!("u2");
        let bound = |uid: &str| {
            request(json!({"apiVersion": "v1", "kind": "Pod", "name": "p", "uid": uid}))
        };
        let cases = [
            (bound("u1"), Some(&mine), Ok(())),
            (request(json!(null)), Some(&mine), Err("node requested token not bound to a pod")),
            (request(json!({"apiVersion": "v1", "kind": "Secret", "name": "p", "uid": "u1"})), Some(&mine),
             Err("node requested token not bound to a pod")),
            (bound(""), Some(&mine), Err("node requested token with a pod binding without a uid")),
            (bound("u9"), Some(&mine), Err("the UID in the bound object reference (u9) does not match the UID in record. The object might have been deleted and then recreated")),
            (bound("u2"), Some(&theirs), Err("node requested token bound to a pod scheduled on a different node")),
        ];
        for (asked, pod, expected) in cases {
            assert_eq!(
                admit_token_request(&node_a(), &asked, pod),
                expected.map_err(String::from),
                "{asked}"
            );
        }
        assert_eq!(
            admit_token_request(&UserInfo::new("jane", &[]), &request(json!(null)), None),
            Ok(())
        );
    }

    #[test]
    fn a_node_evicts_only_its_own_pods() {
        assert_eq!(admit_eviction(&node_a(), &pod_on("a", json!({}))), Ok(()));
        assert_eq!(
            admit_eviction(&node_a(), &pod_on("b", json!({}))),
            Err("node a can only evict pods with spec.nodeName set to itself".to_string())
        );
        assert_eq!(
            admit_eviction(&UserInfo::new("jane", &[]), &pod_on("b", json!({}))),
            Ok(())
        );
    }
}
