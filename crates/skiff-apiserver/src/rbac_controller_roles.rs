//! The `system:controller:<name>` ClusterRoles and their bindings to the `kube-system`
//! ServiceAccount `<name>`, which kube-apiserver bootstraps for kube-controller-manager's
//! controllers when it runs with `--use-service-account-credentials`: each controller may do
//! what these rules say and nothing else. Rules follow Kubernetes' controller policy for the
//! controllers Skiff runs or is adding; `cloneset-controller` is Skiff's own, for OpenKruise's
//! CloneSet, which kruise-manager would otherwise run with its own role.

use serde_json::{json, Value};
use skiff_api::rbac::GROUP;
use skiff_auth::rule::PolicyRule;

/// The prefix of every controller role, followed by the controller's ServiceAccount name.
pub const CONTROLLER_ROLE_PREFIX: &str = "system:controller:";
/// The namespace controller ServiceAccounts live in.
pub const CONTROLLER_NAMESPACE: &str = "kube-system";

const CORE: &str = "";
const APPS: &str = "apps";
const EXTENSIONS: &str = "extensions";
const BATCH: &str = "batch";
const POLICY: &str = "policy";
const AUTOSCALING: &str = "autoscaling";
const DISCOVERY: &str = "discovery.k8s.io";
const EVENTS: &str = "events.k8s.io";
const KRUISE: &str = "apps.kruise.io";

fn rule(verbs: &[&str], groups: &[&str], resources: &[&str]) -> Value {
    PolicyRule::resources(verbs, groups, resources).to_json()
}

/// What every controller may do with Events: record them and bump their counts.
fn events() -> Value {
    rule(&["create", "update", "patch"], &[CORE, EVENTS], &["events"])
}

/// Each controller's ServiceAccount name and its rules.
fn controller_rules() -> Vec<(&'static str, Vec<Value>)> {
    vec![
        (
            "clusterrole-aggregation-controller",
            vec![rule(
                &["escalate", "get", "list", "watch", "update", "patch"],
                &[GROUP],
                &["clusterroles"],
            )],
        ),
        (
            "cloneset-controller",
            vec![
                rule(
                    &["get", "list", "watch", "update", "patch"],
                    &[KRUISE],
                    &["clonesets"],
                ),
                rule(&["update", "patch"], &[KRUISE], &["clonesets/status"]),
                rule(
                    &[
                        "get", "list", "watch", "create", "update", "patch", "delete",
                    ],
                    &[CORE],
                    &["pods"],
                ),
                rule(&["update", "patch"], &[CORE], &["pods/status"]),
                rule(
                    &[
                        "get", "list", "watch", "create", "update", "patch", "delete",
                    ],
                    &[APPS],
                    &["controllerrevisions"],
                ),
                rule(
                    &["get", "list", "create", "delete"],
                    &[CORE],
                    &["persistentvolumeclaims"],
                ),
                events(),
            ],
        ),
        (
            "cronjob-controller",
            vec![
                rule(&["get", "list", "watch", "update"], &[BATCH], &["cronjobs"]),
                rule(
                    &[
                        "get", "list", "watch", "create", "update", "delete", "patch",
                    ],
                    &[BATCH],
                    &["jobs"],
                ),
                rule(&["update"], &[BATCH], &["cronjobs/status"]),
                rule(&["update"], &[BATCH], &["cronjobs/finalizers"]),
                rule(&["list", "watch", "delete"], &[CORE], &["pods"]),
                events(),
            ],
        ),
        (
            "daemon-set-controller",
            vec![
                rule(
                    &["get", "list", "watch"],
                    &[EXTENSIONS, APPS],
                    &["daemonsets"],
                ),
                rule(&["update"], &[EXTENSIONS, APPS], &["daemonsets/status"]),
                rule(&["update"], &[EXTENSIONS, APPS], &["daemonsets/finalizers"]),
                rule(&["list", "watch"], &[CORE], &["nodes"]),
                rule(
                    &["list", "watch", "create", "delete", "patch"],
                    &[CORE],
                    &["pods"],
                ),
                rule(&["create"], &[CORE], &["pods/binding"]),
                rule(
                    &[
                        "get", "list", "watch", "create", "delete", "update", "patch",
                    ],
                    &[APPS],
                    &["controllerrevisions"],
                ),
                events(),
            ],
        ),
        (
            "deployment-controller",
            vec![
                rule(
                    &["get", "list", "watch", "update"],
                    &[EXTENSIONS, APPS],
                    &["deployments"],
                ),
                rule(&["update"], &[EXTENSIONS, APPS], &["deployments/status"]),
                rule(
                    &["update"],
                    &[EXTENSIONS, APPS],
                    &["deployments/finalizers"],
                ),
                rule(
                    &[
                        "get", "list", "watch", "create", "update", "patch", "delete",
                    ],
                    &[APPS, EXTENSIONS],
                    &["replicasets"],
                ),
                rule(&["get", "list", "watch", "update"], &[CORE], &["pods"]),
                events(),
            ],
        ),
        (
            "disruption-controller",
            vec![
                rule(
                    &["get", "list", "watch"],
                    &[EXTENSIONS, APPS],
                    &["deployments"],
                ),
                rule(
                    &["get", "list", "watch"],
                    &[APPS, EXTENSIONS],
                    &["replicasets"],
                ),
                rule(
                    &["get", "list", "watch"],
                    &[CORE],
                    &["replicationcontrollers"],
                ),
                rule(
                    &["get", "list", "watch"],
                    &[POLICY],
                    &["poddisruptionbudgets"],
                ),
                rule(&["get", "list", "watch"], &[APPS], &["statefulsets"]),
                rule(&["update"], &[POLICY], &["poddisruptionbudgets/status"]),
                rule(&["patch", "update"], &[CORE], &["pods/status"]),
                rule(&["get"], &["*"], &["*/scale"]),
                events(),
            ],
        ),
        (
            "persistent-volume-binder",
            vec![
                rule(
                    &["create", "delete", "get", "list", "update", "watch"],
                    &[CORE],
                    &["persistentvolumes"],
                ),
                rule(&["update", "patch"], &[CORE], &["persistentvolumes/status"]),
                rule(
                    &["get", "list", "update", "watch"],
                    &[CORE],
                    &["persistentvolumeclaims"],
                ),
                rule(
                    &["update", "patch"],
                    &[CORE],
                    &["persistentvolumeclaims/status"],
                ),
                rule(&["get", "list", "watch"], &[CORE], &["pods", "nodes"]),
                rule(
                    &["get", "list", "watch"],
                    &["storage.k8s.io"],
                    &["storageclasses"],
                ),
                events(),
            ],
        ),
        (
            "replication-controller",
            vec![
                rule(
                    &["get", "list", "watch", "update"],
                    &[CORE],
                    &["replicationcontrollers"],
                ),
                rule(&["update"], &[CORE], &["replicationcontrollers/status"]),
                rule(&["update"], &[CORE], &["replicationcontrollers/finalizers"]),
                rule(
                    &["list", "watch", "patch", "create", "delete"],
                    &[CORE],
                    &["pods"],
                ),
                events(),
            ],
        ),
        (
            "certificate-controller",
            vec![
                rule(
                    &["get", "list", "watch", "delete"],
                    &["certificates.k8s.io"],
                    &["certificatesigningrequests"],
                ),
                rule(
                    &["update"],
                    &["certificates.k8s.io"],
                    &[
                        "certificatesigningrequests/approval",
                        "certificatesigningrequests/status",
                    ],
                ),
                rule(
                    &["create"],
                    &["authorization.k8s.io"],
                    &["subjectaccessreviews"],
                ),
                events(),
            ],
        ),
        (
            "resourcequota-controller",
            vec![
                rule(&["list", "watch"], &["*"], &["*"]),
                rule(&["update"], &[CORE], &["resourcequotas/status"]),
                events(),
            ],
        ),
        (
            "endpoint-controller",
            vec![
                rule(&["get", "list", "watch"], &[CORE], &["services", "pods"]),
                rule(
                    &["get", "list", "watch", "create", "update", "delete"],
                    &[CORE],
                    &["endpoints"],
                ),
                rule(&["create"], &[CORE], &["endpoints/restricted"]),
                events(),
            ],
        ),
        (
            "endpointslice-controller",
            vec![
                rule(
                    &["get", "list", "watch"],
                    &[CORE],
                    &["services", "pods", "nodes"],
                ),
                rule(&["update"], &[CORE], &["services/finalizers"]),
                rule(
                    &["get", "list", "watch", "create", "update", "delete"],
                    &[DISCOVERY],
                    &["endpointslices"],
                ),
                events(),
            ],
        ),
        (
            "generic-garbage-collector",
            vec![
                rule(
                    &["get", "list", "watch", "patch", "update", "delete"],
                    &["*"],
                    &["*"],
                ),
                events(),
            ],
        ),
        (
            "horizontal-pod-autoscaler",
            vec![
                rule(
                    &["get", "list", "watch"],
                    &[AUTOSCALING],
                    &["horizontalpodautoscalers"],
                ),
                rule(
                    &["update"],
                    &[AUTOSCALING],
                    &["horizontalpodautoscalers/status"],
                ),
                rule(&["get", "update"], &["*"], &["*/scale"]),
                rule(&["list", "watch"], &[CORE], &["pods"]),
                rule(&["list", "watch"], &["metrics.k8s.io"], &["pods"]),
                rule(
                    &["get", "list", "watch"],
                    &["custom.metrics.k8s.io"],
                    &["*"],
                ),
                rule(
                    &["get", "list", "watch"],
                    &["external.metrics.k8s.io"],
                    &["*"],
                ),
                events(),
            ],
        ),
        (
            "job-controller",
            vec![
                rule(
                    &["get", "list", "watch", "update", "patch"],
                    &[BATCH],
                    &["jobs"],
                ),
                rule(&["update"], &[BATCH], &["jobs/status"]),
                rule(&["update"], &[BATCH], &["jobs/finalizers"]),
                rule(
                    &["list", "watch", "create", "delete", "patch"],
                    &[CORE],
                    &["pods"],
                ),
                events(),
            ],
        ),
        (
            "namespace-controller",
            vec![
                rule(
                    &["get", "list", "watch", "delete"],
                    &[CORE],
                    &["namespaces"],
                ),
                rule(
                    &["update"],
                    &[CORE],
                    &["namespaces/finalize", "namespaces/status"],
                ),
                rule(
                    &["get", "list", "watch", "delete", "deletecollection"],
                    &["*"],
                    &["*"],
                ),
            ],
        ),
        (
            "node-controller",
            vec![
                rule(
                    &["get", "list", "watch", "update", "delete", "patch"],
                    &[CORE],
                    &["nodes"],
                ),
                rule(&["patch", "update"], &[CORE], &["nodes/status"]),
                rule(&["patch", "update"], &[CORE], &["pods/status"]),
                rule(&["list", "watch", "get", "delete"], &[CORE], &["pods"]),
                events(),
            ],
        ),
        (
            "replicaset-controller",
            vec![
                rule(
                    &["get", "list", "watch", "update"],
                    &[APPS, EXTENSIONS],
                    &["replicasets"],
                ),
                rule(&["update"], &[APPS, EXTENSIONS], &["replicasets/status"]),
                rule(
                    &["update"],
                    &[APPS, EXTENSIONS],
                    &["replicasets/finalizers"],
                ),
                rule(
                    &["list", "watch", "patch", "create", "delete"],
                    &[CORE],
                    &["pods"],
                ),
                events(),
            ],
        ),
        (
            "root-ca-cert-publisher",
            vec![
                rule(&["create", "update"], &[CORE], &["configmaps"]),
                events(),
            ],
        ),
        (
            "service-account-controller",
            vec![rule(&["create"], &[CORE], &["serviceaccounts"]), events()],
        ),
        (
            "statefulset-controller",
            vec![
                rule(&["list", "watch"], &[CORE], &["pods"]),
                rule(&["get", "list", "watch"], &[APPS], &["statefulsets"]),
                rule(&["update"], &[APPS], &["statefulsets/status"]),
                rule(&["update"], &[APPS], &["statefulsets/finalizers"]),
                rule(
                    &["get", "create", "delete", "update", "patch"],
                    &[CORE],
                    &["pods"],
                ),
                rule(
                    &[
                        "get", "create", "delete", "update", "patch", "list", "watch",
                    ],
                    &[APPS],
                    &["controllerrevisions"],
                ),
                rule(&["get", "create"], &[CORE], &["persistentvolumeclaims"]),
                rule(
                    &["update", "patch", "delete"],
                    &[CORE],
                    &["persistentvolumeclaims"],
                ),
                events(),
            ],
        ),
        (
            "ttl-after-finished-controller",
            vec![
                rule(&["get", "list", "watch", "delete"], &[BATCH], &["jobs"]),
                events(),
            ],
        ),
    ]
}

fn metadata(name: &str) -> Value {
    json!({"name": name,
           "annotations": {crate::rbac_bootstrap::AUTOUPDATE_ANNOTATION: "true"},
           "labels": {crate::rbac_bootstrap::BOOTSTRAPPING_LABEL: "rbac-defaults"}})
}

/// The names of the controller ServiceAccounts in `kube-system`, one per controller role.
pub fn controller_names() -> Vec<&'static str> {
    controller_rules()
        .into_iter()
        .map(|(name, _)| name)
        .collect()
}

/// The `system:controller:*` ClusterRoles.
pub fn controller_roles() -> Vec<Value> {
    controller_rules()
        .into_iter()
        .map(|(name, rules)| {
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                   "metadata": metadata(&format!("{CONTROLLER_ROLE_PREFIX}{name}")),
                   "rules": rules})
        })
        .collect()
}

/// The ClusterRoleBindings granting each controller role to its ServiceAccount.
pub fn controller_role_bindings() -> Vec<Value> {
    controller_names()
        .into_iter()
        .map(|name| {
            let role = format!("{CONTROLLER_ROLE_PREFIX}{name}");
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
                   "metadata": metadata(&role),
                   "roleRef": {"apiGroup": GROUP, "kind": "ClusterRole", "name": role},
                   "subjects": [{"kind": "ServiceAccount", "name": name,
                                 "namespace": CONTROLLER_NAMESPACE}]})
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use skiff_auth::attributes::{Attributes, ResourceTarget};
    use skiff_auth::rbac::RbacSnapshot;
    use skiff_auth::user::UserInfo;

    fn controller(name: &str) -> UserInfo {
        UserInfo::new(
            format!("system:serviceaccount:kube-system:{name}"),
            &[
                "system:serviceaccounts",
                "system:serviceaccounts:kube-system",
                "system:authenticated",
            ],
        )
    }

    fn may(snapshot: &RbacSnapshot, who: &str, verb: &str, group: &str, resource: &str) -> bool {
        let (resource, subresource) = resource.split_once('/').unwrap_or((resource, ""));
        let attrs = Attributes::resource(
            controller(who),
            verb,
            ResourceTarget {
                namespace: "default".into(),
                api_group: group.into(),
                api_version: "v1".into(),
                resource: resource.into(),
                subresource: subresource.into(),
                name: "x".into(),
            },
        );
        snapshot.authorize(&attrs).allowed
    }

    #[test]
    fn each_controller_holds_its_kubernetes_rights_and_no_more() {
        let mut snapshot = RbacSnapshot::new();
        for role in controller_roles() {
            snapshot.add_cluster_role(&role);
        }
        for binding in controller_role_bindings() {
            snapshot.add_cluster_role_binding(&binding);
        }
        let rs = "replicaset-controller";
        assert!(may(&snapshot, rs, "create", "", "pods"));
        assert!(may(&snapshot, rs, "update", "apps", "replicasets/status"));
        assert!(may(&snapshot, rs, "create", "events.k8s.io", "events"));
        assert!(!may(&snapshot, rs, "delete", "", "nodes"));
        assert!(!may(&snapshot, rs, "get", "", "pods"));
        assert!(!may(&snapshot, rs, "create", "apps", "deployments"));
        let hpa = "horizontal-pod-autoscaler";
        assert!(may(&snapshot, hpa, "update", "apps", "deployments/scale"));
        assert!(!may(&snapshot, hpa, "update", "apps", "deployments"));
        assert!(may(
            &snapshot,
            "generic-garbage-collector",
            "delete",
            "apps",
            "replicasets"
        ));
        assert!(!may(
            &snapshot,
            "generic-garbage-collector",
            "create",
            "",
            "pods"
        ));
        assert!(may(
            &snapshot,
            "ttl-after-finished-controller",
            "delete",
            "batch",
            "jobs"
        ));
        assert!(!may(
            &snapshot,
            "ttl-after-finished-controller",
            "delete",
            "",
            "pods"
        ));
        let sts = "statefulset-controller";
        assert!(may(&snapshot, sts, "create", "", "pods"));
        assert!(may(&snapshot, sts, "create", "", "persistentvolumeclaims"));
        assert!(may(&snapshot, sts, "create", "apps", "controllerrevisions"));
        assert!(may(&snapshot, sts, "update", "apps", "statefulsets/status"));
        assert!(!may(&snapshot, sts, "update", "apps", "statefulsets"));
        assert!(!may(&snapshot, sts, "create", "apps", "replicasets"));
        let binder = "persistent-volume-binder";
        assert!(may(&snapshot, binder, "create", "", "persistentvolumes"));
        assert!(may(&snapshot, binder, "delete", "", "persistentvolumes"));
        assert!(may(
            &snapshot,
            binder,
            "update",
            "",
            "persistentvolumeclaims/status"
        ));
        assert!(may(
            &snapshot,
            binder,
            "watch",
            "storage.k8s.io",
            "storageclasses"
        ));
        assert!(!may(
            &snapshot,
            binder,
            "delete",
            "",
            "persistentvolumeclaims"
        ));
        assert!(!may(&snapshot, binder, "delete", "", "pods"));
        assert!(may(
            &snapshot,
            "cloneset-controller",
            "create",
            "",
            "persistentvolumeclaims"
        ));
        let ds = "daemon-set-controller";
        assert!(may(&snapshot, ds, "create", "", "pods"));
        assert!(may(&snapshot, ds, "delete", "", "pods"));
        assert!(may(&snapshot, ds, "create", "", "pods/binding"));
        assert!(may(&snapshot, ds, "patch", "apps", "controllerrevisions"));
        assert!(may(&snapshot, ds, "update", "apps", "daemonsets/status"));
        assert!(may(
            &snapshot,
            ds,
            "update",
            "apps",
            "daemonsets/finalizers"
        ));
        assert!(!may(&snapshot, ds, "update", "apps", "daemonsets"));
        assert!(!may(&snapshot, ds, "update", "", "pods"));
        assert!(!may(&snapshot, ds, "create", "apps", "replicasets"));
        // One ServiceAccount's role is not another's.
        assert!(!may(&snapshot, "endpoint-controller", "create", "", "pods"));
    }

    #[test]
    fn roles_and_bindings_pair_up_with_kubernetes_names() {
        let roles = controller_roles();
        let bindings = controller_role_bindings();
        assert_eq!(roles.len(), bindings.len());
        for (role, binding) in roles.iter().zip(&bindings) {
            let name = role["metadata"]["name"].as_str().unwrap();
            assert!(name.starts_with("system:controller:"));
            assert_eq!(binding["metadata"]["name"], name);
            assert_eq!(binding["roleRef"]["name"], name);
            assert_eq!(
                binding["subjects"][0]["name"],
                &name["system:controller:".len()..]
            );
            assert_eq!(
                role["metadata"]["labels"]["kubernetes.io/bootstrapping"],
                "rbac-defaults"
            );
        }
    }
}
