//! The ClusterRoles and ClusterRoleBindings kube-apiserver's `rbac/bootstrap-roles` post-start
//! hook keeps in every cluster (`cluster-admin`, `admin`, `edit`, `view` and the
//! `system:aggregate-to-*` roles they gather, `system:basic-user`, `system:discovery`,
//! `system:public-info-viewer`), and their reconciliation at start: a missing object is created,
//! and one still marked `rbac.authorization.kubernetes.io/autoupdate: "true"` gets back any rule,
//! label, annotation or subject it lost. Aggregated roles' rules are left to the aggregation
//! controller.

use serde_json::{json, Map, Value};
use skiff_api::kinds::{cluster_role, cluster_role_binding};
use skiff_api::rbac::GROUP;
use skiff_auth::rule::{covers, PolicyRule};

use crate::registry::{Registry, WriteOptions};
use crate::status::ApiError;

/// The annotation saying reconciliation may change the object.
pub const AUTOUPDATE_ANNOTATION: &str = "rbac.authorization.kubernetes.io/autoupdate";
/// The label every bootstrap object carries.
pub const BOOTSTRAPPING_LABEL: &str = "kubernetes.io/bootstrapping";

const AGGREGATE_TO_ADMIN: &str = "rbac.authorization.k8s.io/aggregate-to-admin";
const AGGREGATE_TO_EDIT: &str = "rbac.authorization.k8s.io/aggregate-to-edit";
const AGGREGATE_TO_VIEW: &str = "rbac.authorization.k8s.io/aggregate-to-view";

const READ: &[&str] = &["get", "list", "watch"];
const WRITE: &[&str] = &["create", "delete", "deletecollection", "patch", "update"];
const READ_WRITE: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

fn rule(groups: &[&str], resources: &[&str], verbs: &[&str]) -> Value {
    PolicyRule::resources(verbs, groups, resources).to_json()
}

fn urls(urls: &[&str], verbs: &[&str]) -> Value {
    PolicyRule::urls(verbs, urls).to_json()
}

fn metadata(name: &str, extra_labels: &[&str]) -> Value {
    let mut labels = Map::new();
    labels.insert(BOOTSTRAPPING_LABEL.into(), "rbac-defaults".into());
    for label in extra_labels {
        labels.insert(label.to_string(), "true".into());
    }
    json!({"name": name, "annotations": {AUTOUPDATE_ANNOTATION: "true"}, "labels": labels})
}

fn role(name: &str, labels: &[&str], rules: Vec<Value>) -> Value {
    json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
           "metadata": metadata(name, labels), "rules": rules})
}

fn aggregated(name: &str, labels: &[&str], selector_label: &str) -> Value {
    json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
           "metadata": metadata(name, labels),
           "aggregationRule": {"clusterRoleSelectors": [{"matchLabels": {selector_label: "true"}}]}})
}

/// The bootstrap ClusterRoles Skiff keeps, with Kubernetes' names, labels and rules.
pub fn cluster_roles() -> Vec<Value> {
    vec![
        aggregated("admin", &[], AGGREGATE_TO_ADMIN),
        role(
            "cluster-admin",
            &[],
            vec![rule(&["*"], &["*"], &["*"]), urls(&["*"], &["*"])],
        ),
        aggregated("edit", &[AGGREGATE_TO_ADMIN], AGGREGATE_TO_EDIT),
        role(
            "system:aggregate-to-admin",
            &[AGGREGATE_TO_ADMIN],
            vec![
                rule(
                    &["authorization.k8s.io"],
                    &["localsubjectaccessreviews"],
                    &["create"],
                ),
                rule(&[GROUP], &["rolebindings", "roles"], READ_WRITE),
            ],
        ),
        role(
            "system:aggregate-to-edit",
            &[AGGREGATE_TO_EDIT],
            vec![
                rule(
                    &[""],
                    &[
                        "pods/attach",
                        "pods/exec",
                        "pods/portforward",
                        "pods/proxy",
                        "secrets",
                        "services/proxy",
                    ],
                    READ,
                ),
                rule(&[""], &["serviceaccounts"], &["impersonate"]),
                rule(
                    &[""],
                    &[
                        "pods",
                        "pods/attach",
                        "pods/exec",
                        "pods/portforward",
                        "pods/proxy",
                    ],
                    WRITE,
                ),
                rule(&[""], &["pods/eviction"], &["create"]),
                rule(
                    &[""],
                    &[
                        "configmaps",
                        "events",
                        "persistentvolumeclaims",
                        "replicationcontrollers",
                        "replicationcontrollers/scale",
                        "secrets",
                        "serviceaccounts",
                        "services",
                        "services/proxy",
                    ],
                    WRITE,
                ),
                rule(&[""], &["serviceaccounts/token"], &["create"]),
                rule(
                    &["apps"],
                    &[
                        "daemonsets",
                        "deployments",
                        "deployments/rollback",
                        "deployments/scale",
                        "replicasets",
                        "replicasets/scale",
                        "statefulsets",
                        "statefulsets/scale",
                    ],
                    WRITE,
                ),
                rule(&["autoscaling"], &["horizontalpodautoscalers"], WRITE),
                rule(&["batch"], &["cronjobs", "jobs"], WRITE),
                rule(
                    &["extensions"],
                    &[
                        "daemonsets",
                        "deployments",
                        "deployments/rollback",
                        "deployments/scale",
                        "ingresses",
                        "networkpolicies",
                        "replicasets",
                        "replicasets/scale",
                        "replicationcontrollers/scale",
                    ],
                    WRITE,
                ),
                rule(&["policy"], &["poddisruptionbudgets"], WRITE),
                rule(
                    &["networking.k8s.io"],
                    &["ingresses", "networkpolicies"],
                    WRITE,
                ),
                rule(&["coordination.k8s.io"], &["leases"], READ_WRITE),
            ],
        ),
        role(
            "system:aggregate-to-view",
            &[AGGREGATE_TO_VIEW],
            vec![
                rule(
                    &[""],
                    &[
                        "configmaps",
                        "endpoints",
                        "persistentvolumeclaims",
                        "persistentvolumeclaims/status",
                        "pods",
                        "replicationcontrollers",
                        "replicationcontrollers/scale",
                        "serviceaccounts",
                        "services",
                        "services/status",
                    ],
                    READ,
                ),
                rule(
                    &[""],
                    &[
                        "bindings",
                        "events",
                        "limitranges",
                        "namespaces/status",
                        "pods/log",
                        "pods/status",
                        "replicationcontrollers/status",
                        "resourcequotas",
                        "resourcequotas/status",
                    ],
                    READ,
                ),
                rule(&[""], &["namespaces"], READ),
                rule(&["discovery.k8s.io"], &["endpointslices"], READ),
                rule(
                    &["apps"],
                    &[
                        "controllerrevisions",
                        "daemonsets",
                        "daemonsets/status",
                        "deployments",
                        "deployments/scale",
                        "deployments/status",
                        "replicasets",
                        "replicasets/scale",
                        "replicasets/status",
                        "statefulsets",
                        "statefulsets/scale",
                        "statefulsets/status",
                    ],
                    READ,
                ),
                rule(
                    &["autoscaling"],
                    &[
                        "horizontalpodautoscalers",
                        "horizontalpodautoscalers/status",
                    ],
                    READ,
                ),
                rule(
                    &["batch"],
                    &["cronjobs", "cronjobs/status", "jobs", "jobs/status"],
                    READ,
                ),
                rule(
                    &["extensions"],
                    &[
                        "daemonsets",
                        "daemonsets/status",
                        "deployments",
                        "deployments/scale",
                        "deployments/status",
                        "ingresses",
                        "ingresses/status",
                        "networkpolicies",
                        "replicasets",
                        "replicasets/scale",
                        "replicasets/status",
                        "replicationcontrollers/scale",
                    ],
                    READ,
                ),
                rule(
                    &["policy"],
                    &["poddisruptionbudgets", "poddisruptionbudgets/status"],
                    READ,
                ),
                rule(
                    &["networking.k8s.io"],
                    &["ingresses", "ingresses/status", "networkpolicies"],
                    READ,
                ),
            ],
        ),
        role(
            "system:basic-user",
            &[],
            vec![
                rule(
                    &["authorization.k8s.io"],
                    &["selfsubjectaccessreviews", "selfsubjectrulesreviews"],
                    &["create"],
                ),
                rule(
                    &["authentication.k8s.io"],
                    &["selfsubjectreviews"],
                    &["create"],
                ),
            ],
        ),
        role(
            "system:discovery",
            &[],
            vec![urls(
                &[
                    "/api",
                    "/api/*",
                    "/apis",
                    "/apis/*",
                    "/healthz",
                    "/livez",
                    "/openapi",
                    "/openapi/*",
                    "/readyz",
                    "/version",
                    "/version/",
                ],
                &["get"],
            )],
        ),
        role(
            "system:public-info-viewer",
            &[],
            vec![urls(
                &["/healthz", "/livez", "/readyz", "/version", "/version/"],
                &["get"],
            )],
        ),
        aggregated("view", &[AGGREGATE_TO_EDIT], AGGREGATE_TO_VIEW),
        role(
            NODE_BOOTSTRAPPER_ROLE,
            &[],
            vec![rule(
                &["certificates.k8s.io"],
                &["certificatesigningrequests"],
                &["create", "get", "list", "watch"],
            )],
        ),
        role(
            NODE_CLIENT_ROLE,
            &[],
            vec![rule(
                &["certificates.k8s.io"],
                &["certificatesigningrequests/nodeclient"],
                &["create"],
            )],
        ),
        role(
            SELF_NODE_CLIENT_ROLE,
            &[],
            vec![rule(
                &["certificates.k8s.io"],
                &["certificatesigningrequests/selfnodeclient"],
                &["create"],
            )],
        ),
        role(NODE_ROLE, &[], node_rules()),
        role(NODE_PROXIER_ROLE, &[], node_proxier_rules()),
        role(
            NODE_DNS_ROLE,
            &[],
            vec![
                rule(
                    &[""],
                    &["services", "endpoints", "namespaces"],
                    &["list", "watch"],
                ),
                rule(
                    &["discovery.k8s.io"],
                    &["endpointslices"],
                    &["list", "watch"],
                ),
            ],
        ),
    ]
}

/// What a kubelet does with the API: register and update its Node, renew its Lease, follow
/// the pods bound to it and write their status, read what their volumes and environment name,
/// ask for ServiceAccount tokens, report events and renew its own client certificate.
/// The `system:node` role's rules as the Node authorizer applies them to every kubelet for
/// what its graph does not decide (Kubernetes binds the role to nobody by default).
pub fn node_policy_rules() -> Vec<skiff_auth::rule::PolicyRule> {
    node_rules()
        .iter()
        .map(skiff_auth::rule::PolicyRule::from_json)
        .collect()
}

fn node_rules() -> Vec<Value> {
    vec![
        rule(
            &[""],
            &["nodes"],
            &[
                "create", "delete", "get", "list", "patch", "update", "watch",
            ],
        ),
        rule(&[""], &["nodes/status"], &["patch", "update"]),
        rule(
            &[""],
            &["pods"],
            &["create", "delete", "get", "list", "watch"],
        ),
        rule(&[""], &["pods/status"], &["patch", "update"]),
        rule(&[""], &["pods/eviction"], &["create"]),
        rule(&[""], &["services", "endpoints"], READ),
        rule(&[""], &["configmaps", "secrets"], READ),
        rule(
            &[""],
            &[
                "persistentvolumeclaims",
                "persistentvolumes",
                "serviceaccounts",
            ],
            &["get"],
        ),
        rule(
            &[""],
            &["persistentvolumeclaims/status"],
            &["get", "patch", "update"],
        ),
        rule(&[""], &["serviceaccounts/token"], &["create"]),
        rule(
            &["", "events.k8s.io"],
            &["events"],
            &["create", "patch", "update"],
        ),
        rule(
            &["coordination.k8s.io"],
            &["leases"],
            &["create", "delete", "get", "patch", "update"],
        ),
        rule(
            &["certificates.k8s.io"],
            &["certificatesigningrequests"],
            &["create", "get", "list", "watch"],
        ),
        rule(&["authentication.k8s.io"], &["tokenreviews"], &["create"]),
        rule(
            &["authorization.k8s.io"],
            &["localsubjectaccessreviews", "subjectaccessreviews"],
            &["create"],
        ),
        rule(&["node.k8s.io"], &["runtimeclasses"], READ),
        rule(&["storage.k8s.io"], &["csidrivers"], READ),
    ]
}

/// What a service proxy reads to route Services, and the events it reports.
fn node_proxier_rules() -> Vec<Value> {
    vec![
        rule(&[""], &["services", "endpoints"], &["list", "watch"]),
        rule(&[""], &["nodes"], READ),
        rule(
            &["discovery.k8s.io"],
            &["endpointslices"],
            &["list", "watch"],
        ),
        rule(
            &["", "events.k8s.io"],
            &["events"],
            &["create", "patch", "update"],
        ),
    ]
}

fn binding(role: &str, groups: &[&str]) -> Value {
    let subjects: Vec<Value> = groups
        .iter()
        .map(|g| json!({"apiGroup": GROUP, "kind": "Group", "name": g}))
        .collect();
    json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
           "metadata": metadata(role, &[]),
           "roleRef": {"apiGroup": GROUP, "kind": "ClusterRole", "name": role},
           "subjects": subjects})
}

/// The role letting bootstrap tokens ask for certificates.
pub const NODE_BOOTSTRAPPER_ROLE: &str = "system:node-bootstrapper";
/// The role whose holders' node client certificate requests are approved.
pub const NODE_CLIENT_ROLE: &str =
    "system:certificates.k8s.io:certificatesigningrequests:nodeclient";
/// The role whose holders' renewals of their own node certificate are approved.
pub const SELF_NODE_CLIENT_ROLE: &str =
    "system:certificates.k8s.io:certificatesigningrequests:selfnodeclient";

/// The role of every node's kubelet (Kubernetes' `system:node`).
pub const NODE_ROLE: &str = "system:node";
/// The role of the service proxy (Kubernetes' `system:node-proxier`).
pub const NODE_PROXIER_ROLE: &str = "system:node-proxier";
/// What the cluster DNS a node runs reads (CoreDNS's `system:coredns`, without its Pod
/// reads): Services, their endpoints and namespaces.
pub const NODE_DNS_ROLE: &str = "skiff:node-dns";
/// The group of every node's client certificate.
pub const NODES_GROUP: &str = "system:nodes";

/// A ClusterRoleBinding `name` of `role` to `groups`, as kubeadm binds the node bootstrap
/// roles for its join tokens.
fn named_binding(name: &str, role: &str, groups: &[&str]) -> Value {
    let mut bound = binding(role, groups);
    bound["metadata"]["name"] = json!(name);
    bound
}

/// The bootstrap ClusterRoleBindings: each named after its role.
pub fn cluster_role_bindings() -> Vec<Value> {
    vec![
        binding("cluster-admin", &["system:masters"]),
        binding("system:basic-user", &["system:authenticated"]),
        binding("system:discovery", &["system:authenticated"]),
        binding(
            "system:public-info-viewer",
            &["system:authenticated", "system:unauthenticated"],
        ),
        named_binding(
            "skiff:kubelet-bootstrap",
            NODE_BOOTSTRAPPER_ROLE,
            &[crate::bootstrap_tokens::NODE_TOKEN_GROUP],
        ),
        named_binding(
            "skiff:node-autoapprove-bootstrap",
            NODE_CLIENT_ROLE,
            &[crate::bootstrap_tokens::NODE_TOKEN_GROUP],
        ),
        named_binding(
            "skiff:node-autoapprove-certificate-rotation",
            SELF_NODE_CLIENT_ROLE,
            &[NODES_GROUP],
        ),
        // The kubelet's own requests are the Node authorizer's; the proxy and cluster DNS
        // inside `skiff agent` speak with the node's certificate and hold their roles here.
        named_binding("skiff:node-proxier", NODE_PROXIER_ROLE, &[NODES_GROUP]),
        binding(NODE_DNS_ROLE, &[NODES_GROUP]),
    ]
}

fn autoupdate(existing: &Value) -> bool {
    existing
        .pointer(&format!(
            "/metadata/annotations/{}",
            AUTOUPDATE_ANNOTATION.replace('/', "~1")
        ))
        .and_then(Value::as_str)
        != Some("false")
}

/// Adds to `existing` the labels and annotations of `wanted` it lacks; whether it changed.
fn merge_metadata(existing: &mut Value, wanted: &Value) -> bool {
    let mut changed = false;
    for key in ["labels", "annotations"] {
        let Some(want) = wanted["metadata"][key].as_object() else {
            continue;
        };
        if !existing["metadata"][key].is_object() {
            existing["metadata"][key] = json!({});
        }
        for (k, v) in want {
            if existing["metadata"][key].get(k).is_none() {
                existing["metadata"][key][k] = v.clone();
                changed = true;
            }
        }
    }
    changed
}

/// What reconciliation does to an existing ClusterRole: `Some(updated)` when it lost rules or
/// metadata of its bootstrap form.
pub fn reconcile_role(existing: &Value, wanted: &Value) -> Option<Value> {
    if !autoupdate(existing) {
        return None;
    }
    let mut updated = existing.clone();
    let mut changed = merge_metadata(&mut updated, wanted);
    if wanted.get("aggregationRule").is_some() {
        if updated.get("aggregationRule").is_none_or(Value::is_null) {
            updated["aggregationRule"] = wanted["aggregationRule"].clone();
            changed = true;
        }
    } else {
        let have = PolicyRule::list_from_json(existing);
        let want = PolicyRule::list_from_json(wanted);
        let (covered, _) = covers(&have, &want);
        if !covered {
            let rules = updated["rules"].as_array().cloned().unwrap_or_default();
            let mut rules = rules;
            for (rule, json) in want
                .iter()
                .zip(wanted["rules"].as_array().into_iter().flatten())
            {
                if !covers(&have, std::slice::from_ref(rule)).0 {
                    rules.push(json.clone());
                }
            }
            updated["rules"] = Value::Array(rules);
            changed = true;
        }
    }
    changed.then_some(updated)
}

/// What reconciliation does to an existing ClusterRoleBinding: `Some(updated)` when it lost
/// subjects or metadata of its bootstrap form. A binding to another role is left alone, as
/// kube-apiserver cannot change a role reference either.
pub fn reconcile_binding(existing: &Value, wanted: &Value) -> Option<Value> {
    if !autoupdate(existing) || existing["roleRef"] != wanted["roleRef"] {
        return None;
    }
    let mut updated = existing.clone();
    let mut changed = merge_metadata(&mut updated, wanted);
    let mut subjects = updated["subjects"].as_array().cloned().unwrap_or_default();
    for subject in wanted["subjects"].as_array().into_iter().flatten() {
        if !subjects.contains(subject) {
            subjects.push(subject.clone());
            changed = true;
        }
    }
    updated["subjects"] = Value::Array(subjects);
    changed.then_some(updated)
}

/// Every bootstrap ClusterRole: the roles above and the built-in controllers' roles.
pub fn all_cluster_roles() -> Vec<Value> {
    let mut roles = cluster_roles();
    roles.extend(crate::rbac_controller_roles::controller_roles());
    roles
}

/// Every bootstrap ClusterRoleBinding: the bindings above and the controllers' bindings.
pub fn all_cluster_role_bindings() -> Vec<Value> {
    let mut bindings = cluster_role_bindings();
    bindings.extend(crate::rbac_controller_roles::controller_role_bindings());
    bindings
}

/// Creates or repairs every bootstrap ClusterRole and ClusterRoleBinding.
pub async fn reconcile(registry: &Registry) -> Result<(), ApiError> {
    let kinds = [
        (&cluster_role::V1, all_cluster_roles(), true),
        (
            &cluster_role_binding::V1,
            all_cluster_role_bindings(),
            false,
        ),
    ];
    for (resource, wanted_objects, is_role) in kinds {
        for wanted in wanted_objects {
            let name = wanted["metadata"]["name"].as_str().unwrap_or_default();
            match registry.get(resource, None, name).await {
                Ok(existing) => {
                    let update = if is_role {
                        reconcile_role(&existing, &wanted)
                    } else {
                        reconcile_binding(&existing, &wanted)
                    };
                    if let Some(updated) = update {
                        registry
                            .update(resource, None, name, updated, None, WriteOptions::default())
                            .await?;
                    }
                }
                Err(e) if e.code == 404 => {
                    registry
                        .create(resource, None, wanted, WriteOptions::default())
                        .await?;
                }
                Err(e) => return Err(e),
            }
        }
    }
    retire_node_role_binding(registry).await
}

/// The binding earlier versions made of `system:node` to every node, before the Node
/// authorizer decided kubelets' requests.
const RETIRED_NODES_BINDING: &str = "skiff:nodes";

/// Deletes [`RETIRED_NODES_BINDING`] from clusters that still have it, unless an administrator
/// took it over (`autoupdate` set to `false`): it would give every node every other node's
/// Secrets.
async fn retire_node_role_binding(registry: &Registry) -> Result<(), ApiError> {
    let existing = match registry
        .get(&cluster_role_binding::V1, None, RETIRED_NODES_BINDING)
        .await
    {
        Ok(existing) => existing,
        Err(e) if e.code == 404 => return Ok(()),
        Err(e) => return Err(e),
    };
    if !autoupdate(&existing) || existing.pointer("/roleRef/name") != Some(&json!(NODE_ROLE)) {
        return Ok(());
    }
    match registry
        .delete(
            &cluster_role_binding::V1,
            None,
            RETIRED_NODES_BINDING,
            &crate::registry::DeleteOptions::default(),
        )
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if e.code == 404 => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn by_name(objects: &[Value], name: &str) -> Value {
        objects
            .iter()
            .find(|o| o["metadata"]["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("{name} is bootstrapped"))
    }

    #[tokio::test]
    async fn the_old_binding_of_the_node_role_to_every_node_is_removed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = skiff_store::SqliteStore::open(&dir.path().join("state.db")).expect("store");
        let registry = Registry::new(std::sync::Arc::new(store));
        let old = named_binding(RETIRED_NODES_BINDING, NODE_ROLE, &[NODES_GROUP]);
        registry
            .create(
                &cluster_role_binding::V1,
                None,
                old,
                WriteOptions::default(),
            )
            .await
            .expect("old binding");
        reconcile(&registry).await.expect("reconcile");
        let gone = registry
            .get(&cluster_role_binding::V1, None, RETIRED_NODES_BINDING)
            .await
            .expect_err("the old binding is deleted");
        assert_eq!(gone.code, 404);
        assert!(
            all_cluster_role_bindings()
                .iter()
                .all(|b| b["roleRef"]["name"] != NODE_ROLE),
            "Kubernetes binds nothing to system:node"
        );
    }

    #[test]
    fn every_bootstrap_role_passes_validation() {
        for role in all_cluster_roles() {
            let errs = skiff_api::validation::validate_create(&cluster_role::V1, &role);
            assert!(errs.is_empty(), "{}: {errs:?}", role["metadata"]["name"]);
        }
        for binding in all_cluster_role_bindings() {
            let errs = skiff_api::validation::validate_create(&cluster_role_binding::V1, &binding);
            assert!(errs.is_empty(), "{}: {errs:?}", binding["metadata"]["name"]);
        }
    }

    #[test]
    fn roles_carry_kubernetes_labels_and_aggregation() {
        let roles = cluster_roles();
        let edit = by_name(&roles, "edit");
        assert_eq!(edit["metadata"]["labels"][AGGREGATE_TO_ADMIN], "true");
        assert_eq!(
            edit["aggregationRule"]["clusterRoleSelectors"][0]["matchLabels"][AGGREGATE_TO_EDIT],
            "true"
        );
        assert_eq!(
            by_name(&roles, "system:public-info-viewer")["rules"],
            json!([{"verbs": ["get"], "nonResourceURLs": ["/healthz", "/livez", "/readyz", "/version", "/version/"]}])
        );
        let plan = skiff_auth::aggregation::plan(&roles);
        let edit_rules = &plan
            .updates
            .iter()
            .find(|u| u.name == "edit")
            .expect("edit aggregates")
            .rules;
        assert_eq!(
            edit_rules.len(),
            PolicyRule::list_from_json(&by_name(&roles, "system:aggregate-to-edit")).len()
        );
    }

    #[test]
    fn reconciling_puts_back_lost_rules_and_subjects_unless_autoupdate_is_off() {
        let wanted = by_name(&cluster_roles(), "system:basic-user");
        let mut shrunk = wanted.clone();
        shrunk["rules"] = json!([wanted["rules"][0]]);
        let repaired = reconcile_role(&shrunk, &wanted).expect("a lost rule is put back");
        assert_eq!(repaired["rules"], wanted["rules"]);
        assert_eq!(reconcile_role(&wanted, &wanted), None);
        shrunk["metadata"]["annotations"][AUTOUPDATE_ANNOTATION] = json!("false");
        assert_eq!(reconcile_role(&shrunk, &wanted), None);

        let wanted = by_name(&cluster_role_bindings(), "system:public-info-viewer");
        let mut lost = wanted.clone();
        lost["subjects"] = json!([]);
        let repaired = reconcile_binding(&lost, &wanted).expect("subjects are put back");
        assert_eq!(repaired["subjects"], wanted["subjects"]);
    }
}
