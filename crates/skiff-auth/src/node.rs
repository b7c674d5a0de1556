//! The Node authorizer (kube-apiserver's `--authorization-mode=Node`): a kubelet, user
//! `system:node:<name>` in `system:nodes`, may read only the Secrets, ConfigMaps, claims,
//! volumes and ServiceAccounts of the pods bound to its node, and change only its own Node and
//! Lease. Which objects a node reaches is a graph of pods and what they reference, kept here
//! as plain data fed by the server's informer; deciding is pure.

use std::collections::HashMap;

use serde_json::Value;

use crate::attributes::{Attributes, Target};
use crate::rule::PolicyRule;
use crate::user::UserInfo;

/// The user name prefix of node credentials.
pub const NODE_USER_PREFIX: &str = "system:node:";
/// The group of node credentials.
pub const NODES_GROUP: &str = "system:nodes";
/// The namespace of node heartbeat Leases.
pub const NODE_LEASE_NAMESPACE: &str = "kube-node-lease";

/// `NodeIdentifier`: `Some(name)` when `user` is a node (`Some("")` for a node credential
/// without a name), `None` for anyone else.
pub fn node_identity(user: &UserInfo) -> Option<&str> {
    let name = user.name.strip_prefix(NODE_USER_PREFIX)?;
    user.in_group(NODES_GROUP).then_some(name)
}

/// The kinds of object a node reaches through the pods bound to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reachable {
    /// A Secret in the pod's namespace.
    Secret,
    /// A ConfigMap in the pod's namespace.
    ConfigMap,
    /// A PersistentVolumeClaim in the pod's namespace.
    Claim,
    /// The pod's ServiceAccount.
    ServiceAccount,
}

/// A pod as the graph keeps it: its node and what it references in its namespace.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PodEdges {
    /// `spec.nodeName`.
    pub node: String,
    /// The pod's namespace.
    pub namespace: String,
    /// Each referenced object, by kind and name, without repeats.
    pub references: Vec<(Reachable, String)>,
}

fn str_at<'a>(value: &'a Value, pointer: &str) -> Option<&'a str> {
    value
        .pointer(pointer)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

/// What a pod bound to a node references (upstream's `VisitPodSecretNames`,
/// `VisitPodConfigmapNames`, claims and ServiceAccount); `None` for a pod not bound yet.
pub fn pod_edges(pod: &Value) -> Option<PodEdges> {
    let node = str_at(pod, "/spec/nodeName")?.to_string();
    let namespace = str_at(pod, "/metadata/namespace")
        .unwrap_or("default")
        .to_string();
    let pod_name = str_at(pod, "/metadata/name").unwrap_or_default();
    let mut references: Vec<(Reachable, String)> = Vec::new();
    let mut add = |kind: Reachable, name: Option<&str>| {
        if let Some(name) = name.filter(|n| !n.is_empty()) {
            if !references.iter().any(|(k, n)| *k == kind && n == name) {
                references.push((kind, name.to_string()));
            }
        }
    };
    let spec = pod.get("spec").cloned().unwrap_or(Value::Null);
    add(
        Reachable::ServiceAccount,
        Some(str_at(&spec, "/serviceAccountName").unwrap_or("default")),
    );
    for secret in spec
        .get("imagePullSecrets")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        add(Reachable::Secret, str_at(secret, "/name"));
    }
    for list in ["initContainers", "containers", "ephemeralContainers"] {
        for container in spec
            .get(list)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            for source in container
                .get("envFrom")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                add(Reachable::Secret, str_at(source, "/secretRef/name"));
                add(Reachable::ConfigMap, str_at(source, "/configMapRef/name"));
            }
            for variable in container
                .get("env")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                add(
                    Reachable::Secret,
                    str_at(variable, "/valueFrom/secretKeyRef/name"),
                );
                add(
                    Reachable::ConfigMap,
                    str_at(variable, "/valueFrom/configMapKeyRef/name"),
                );
            }
        }
    }
    for volume in spec
        .get("volumes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        add(Reachable::Secret, str_at(volume, "/secret/secretName"));
        add(Reachable::ConfigMap, str_at(volume, "/configMap/name"));
        add(
            Reachable::Claim,
            str_at(volume, "/persistentVolumeClaim/claimName"),
        );
        if volume.get("ephemeral").is_some() {
            // The generic ephemeral volume's claim is named after the pod and the volume.
            if let Some(volume_name) = str_at(volume, "/name") {
                add(Reachable::Claim, Some(&format!("{pod_name}-{volume_name}")));
            }
        }
        add(Reachable::Secret, str_at(volume, "/azureFile/secretName"));
        if let Some(sources) = volume.as_object() {
            for source in sources.values() {
                add(Reachable::Secret, str_at(source, "/secretRef/name"));
                add(
                    Reachable::Secret,
                    str_at(source, "/nodePublishSecretRef/name"),
                );
            }
        }
        for projected in volume
            .pointer("/projected/sources")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            add(Reachable::Secret, str_at(projected, "/secret/name"));
            add(Reachable::ConfigMap, str_at(projected, "/configMap/name"));
        }
    }
    Some(PodEdges {
        node,
        namespace,
        references,
    })
}

type ObjectKey = (Reachable, String, String);

/// The graph of what each node reaches: pods bound to nodes, what they reference, and which
/// volume each claim is bound to. Fed one object at a time; answers in memory.
#[derive(Clone, Debug, Default)]
pub struct NodeGraph {
    pods: HashMap<(String, String), PodEdges>,
    claim_volumes: HashMap<(String, String), String>,
    reached: HashMap<String, HashMap<ObjectKey, usize>>,
}

impl NodeGraph {
    /// An empty graph: no node reaches anything.
    pub fn new() -> NodeGraph {
        NodeGraph::default()
    }

    /// Adds or replaces a pod (one not bound to a node only removes what it had).
    pub fn set_pod(&mut self, pod: &Value) {
        let namespace = str_at(pod, "/metadata/namespace").unwrap_or("default");
        let name = str_at(pod, "/metadata/name").unwrap_or_default();
        self.remove_pod(namespace, name);
        let Some(edges) = pod_edges(pod) else { return };
        let counts = self.reached.entry(edges.node.clone()).or_default();
        for (kind, object) in &edges.references {
            *counts
                .entry((*kind, edges.namespace.clone(), object.clone()))
                .or_default() += 1;
        }
        self.pods
            .insert((namespace.to_string(), name.to_string()), edges);
    }

    /// Forgets a pod and the edges it gave its node.
    pub fn remove_pod(&mut self, namespace: &str, name: &str) {
        let Some(old) = self.pods.remove(&(namespace.to_string(), name.to_string())) else {
            return;
        };
        let Some(counts) = self.reached.get_mut(&old.node) else {
            return;
        };
        for (kind, object) in old.references {
            let key = (kind, old.namespace.clone(), object);
            if let Some(count) = counts.get_mut(&key) {
                *count = count.saturating_sub(1);
                if *count == 0 {
                    counts.remove(&key);
                }
            }
        }
        if counts.is_empty() {
            self.reached.remove(&old.node);
        }
    }

    /// Adds or replaces a PersistentVolumeClaim's binding to its volume (`spec.volumeName`).
    pub fn set_claim(&mut self, claim: &Value) {
        let namespace = str_at(claim, "/metadata/namespace").unwrap_or("default");
        let name = str_at(claim, "/metadata/name").unwrap_or_default();
        let key = (namespace.to_string(), name.to_string());
        match str_at(claim, "/spec/volumeName") {
            Some(volume) => {
                self.claim_volumes.insert(key, volume.to_string());
            }
            None => {
                self.claim_volumes.remove(&key);
            }
        }
    }

    /// Forgets a claim.
    pub fn remove_claim(&mut self, namespace: &str, name: &str) {
        self.claim_volumes
            .remove(&(namespace.to_string(), name.to_string()));
    }

    /// Forgets every pod, before a fresh list of them is fed.
    pub fn clear_pods(&mut self) {
        self.pods.clear();
        self.reached.clear();
    }

    /// Forgets every claim, before a fresh list of them is fed.
    pub fn clear_claims(&mut self) {
        self.claim_volumes.clear();
    }

    /// Whether a pod bound to `node` references the object.
    pub fn reaches(&self, node: &str, kind: Reachable, namespace: &str, name: &str) -> bool {
        self.reached.get(node).is_some_and(|counts| {
            counts.contains_key(&(kind, namespace.to_string(), name.to_string()))
        })
    }

    /// Whether a claim a pod bound to `node` uses is bound to the PersistentVolume `volume`.
    pub fn reaches_volume(&self, node: &str, volume: &str) -> bool {
        self.reached.get(node).is_some_and(|counts| {
            counts.keys().any(|(kind, namespace, claim)| {
                *kind == Reachable::Claim
                    && self
                        .claim_volumes
                        .get(&(namespace.clone(), claim.clone()))
                        .is_some_and(|v| v == volume)
            })
        })
    }
}

/// The Node authorizer's answer: allow, or no opinion with the reason a 403 will carry when no
/// later authorizer allows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NodeDecision {
    /// The request is allowed.
    Allow,
    /// This authorizer does not allow it; the next (RBAC) decides.
    NoOpinion(String),
}

fn no_opinion(reason: impl Into<String>) -> NodeDecision {
    NodeDecision::NoOpinion(reason.into())
}

/// What the graph is asked about, for requests on objects only pods lead to.
enum Start {
    Object(Reachable),
    Volume,
}

fn through_graph(
    graph: &NodeGraph,
    node: &str,
    start: Start,
    namespace: &str,
    name: &str,
) -> NodeDecision {
    if name.is_empty() {
        return no_opinion("No Object name found");
    }
    let found = match start {
        Start::Object(kind) => graph.reaches(node, kind, namespace, name),
        Start::Volume => graph.reaches_volume(node, name),
    };
    if found {
        NodeDecision::Allow
    } else {
        no_opinion(format!(
            "no relationship found between node '{node}' and this object"
        ))
    }
}

/// Decides a request of node `node` (already known to be one) with the kubelet's rules
/// `node_rules` (the `system:node` ClusterRole's) for what the graph does not cover.
pub fn authorize_node(
    graph: &NodeGraph,
    node_rules: &[PolicyRule],
    node: &str,
    attrs: &Attributes,
) -> NodeDecision {
    if node.is_empty() {
        return no_opinion(format!("unknown node for user {:?}", attrs.user.name));
    }
    let by_rules = || {
        if node_rules.iter().any(|rule| rule.allows(attrs)) {
            NodeDecision::Allow
        } else {
            no_opinion("")
        }
    };
    let Target::Resource(target) = &attrs.target else {
        return by_rules();
    };
    let verb = attrs.verb.as_str();
    let sub = target.subresource.as_str();
    let (ns, name) = (target.namespace.as_str(), target.name.as_str());
    match (target.api_group.as_str(), target.resource.as_str()) {
        ("", "secrets") | ("", "configmaps") => {
            if !matches!(verb, "get" | "list" | "watch") {
                return no_opinion("can only read resources of this type");
            }
            if !sub.is_empty() {
                return no_opinion("cannot read subresource");
            }
            if ns.is_empty() {
                return no_opinion("can only read namespaced object of this type");
            }
            let kind = if target.resource == "secrets" {
                Reachable::Secret
            } else {
                Reachable::ConfigMap
            };
            through_graph(graph, node, Start::Object(kind), ns, name)
        }
        ("", "persistentvolumeclaims") if sub == "status" => {
            if !matches!(verb, "update" | "patch") {
                return no_opinion("can only get/update/patch this type");
            }
            through_graph(graph, node, Start::Object(Reachable::Claim), ns, name)
        }
        ("", "persistentvolumeclaims") | ("", "persistentvolumes") => {
            if verb != "get" {
                return no_opinion("can only get individual resources of this type");
            }
            if !sub.is_empty() {
                return no_opinion("cannot get subresource");
            }
            if target.resource == "persistentvolumes" {
                through_graph(graph, node, Start::Volume, ns, name)
            } else {
                through_graph(graph, node, Start::Object(Reachable::Claim), ns, name)
            }
        }
        ("", "serviceaccounts") => {
            let account = Start::Object(Reachable::ServiceAccount);
            match sub {
                "token" if verb == "create" && !name.is_empty() => {
                    through_graph(graph, node, account, ns, name)
                }
                "token" => no_opinion("can only create tokens for individual service accounts"),
                "" if verb == "get" => through_graph(graph, node, account, ns, name),
                "" => no_opinion("can only get individual service accounts"),
                _ => no_opinion("can only create token subresource of serviceaccount"),
            }
        }
        ("coordination.k8s.io", "leases") => {
            if !matches!(verb, "get" | "create" | "update" | "patch" | "delete") {
                return no_opinion("can only get, create, update, patch, or delete a node lease");
            }
            if ns != NODE_LEASE_NAMESPACE {
                return no_opinion(format!(
                    "can only access leases in the {NODE_LEASE_NAMESPACE:?} system namespace"
                ));
            }
            if verb != "create" && name != node {
                return no_opinion(
                    "can only access node lease with the same name as the requesting node",
                );
            }
            if !sub.is_empty() {
                return no_opinion("cannot access subresource");
            }
            NodeDecision::Allow
        }
        ("", "nodes") => match verb {
            // NodeRestriction admission limits these to the node's own object.
            "create" | "update" | "patch" => NodeDecision::Allow,
            "get" | "list" | "watch" => match name {
                _ if name == node => NodeDecision::Allow,
                "" => no_opinion(format!(
                    "node '{node}' cannot read all nodes, only its own Node object"
                )),
                other => no_opinion(format!(
                    "node '{node}' cannot read '{other}', only its own Node object"
                )),
            },
            _ => by_rules(),
        },
        _ => by_rules(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attributes::ResourceTarget;
    use serde_json::json;

    fn pod(name: &str, node: &str, spec_extra: Value) -> Value {
        let mut spec = json!({"nodeName": node, "containers": [{"name": "c", "image": "i"}]});
        if let (Some(spec), Some(extra)) = (spec.as_object_mut(), spec_extra.as_object()) {
            for (k, v) in extra {
                spec.insert(k.clone(), v.clone());
            }
        }
        json!({"metadata": {"name": name, "namespace": "ns"}, "spec": spec})
    }

    fn rich_pod() -> Value {
        pod(
            "web",
            "a",
            json!({
                "serviceAccountName": "runner",
                "imagePullSecrets": [{"name": "pull"}],
                "containers": [{"name": "c", "image": "i",
                    "env": [{"name": "X", "valueFrom": {"secretKeyRef": {"name": "env-secret", "key": "k"}}},
                            {"name": "Y", "valueFrom": {"configMapKeyRef": {"name": "env-cm", "key": "k"}}}],
                    "envFrom": [{"secretRef": {"name": "from-secret"}}, {"configMapRef": {"name": "from-cm"}}]}],
                "volumes": [
                    {"name": "s", "secret": {"secretName": "vol-secret"}},
                    {"name": "m", "configMap": {"name": "vol-cm"}},
                    {"name": "p", "projected": {"sources": [{"secret": {"name": "proj-secret"}}, {"configMap": {"name": "proj-cm"}}]}},
                    {"name": "d", "persistentVolumeClaim": {"claimName": "data"}},
                    {"name": "scratch", "ephemeral": {"volumeClaimTemplate": {"spec": {}}}},
                    {"name": "c", "csi": {"driver": "x", "nodePublishSecretRef": {"name": "csi-secret"}}}
                ]
            }),
        )
    }

    #[test]
    fn a_pod_leads_its_node_to_everything_it_references() {
        let mut graph = NodeGraph::new();
        graph.set_pod(&rich_pod());
        let cases = [
            (Reachable::Secret, "pull", true),
            (Reachable::Secret, "env-secret", true),
            (Reachable::Secret, "from-secret", true),
            (Reachable::Secret, "vol-secret", true),
            (Reachable::Secret, "proj-secret", true),
            (Reachable::Secret, "csi-secret", true),
            (Reachable::Secret, "unrelated", false),
            (Reachable::ConfigMap, "env-cm", true),
            (Reachable::ConfigMap, "from-cm", true),
            (Reachable::ConfigMap, "vol-cm", true),
            (Reachable::ConfigMap, "proj-cm", true),
            (Reachable::ConfigMap, "vol-secret", false),
            (Reachable::Claim, "data", true),
            (Reachable::Claim, "web-scratch", true),
            (Reachable::ServiceAccount, "runner", true),
            (Reachable::ServiceAccount, "default", false),
        ];
        for (kind, name, expected) in cases {
            assert_eq!(
                graph.reaches("a", kind, "ns", name),
                expected,
                "{kind:?} {name}"
            );
            assert!(
                !graph.reaches("b", kind, "ns", name),
                "node b, {kind:?} {name}"
            );
            assert!(!graph.reaches("a", kind, "other", name), "other ns, {name}");
        }
    }

    #[test]
    fn edges_follow_the_pod_through_updates_and_deletion() {
        let mut graph = NodeGraph::new();
        let shared = json!({"volumes": [{"name": "s", "secret": {"secretName": "shared"}}]});
        graph.set_pod(&pod("one", "a", shared.clone()));
        graph.set_pod(&pod("two", "a", shared.clone()));
        assert!(graph.reaches("a", Reachable::Secret, "ns", "shared"));
        assert!(graph.reaches("a", Reachable::ServiceAccount, "ns", "default"));
        graph.remove_pod("ns", "one");
        assert!(
            graph.reaches("a", Reachable::Secret, "ns", "shared"),
            "still used by two"
        );
        // Rebinding a pod moves its edges.
        graph.set_pod(&pod("two", "b", shared));
        assert!(!graph.reaches("a", Reachable::Secret, "ns", "shared"));
        assert!(graph.reaches("b", Reachable::Secret, "ns", "shared"));
        graph.remove_pod("ns", "two");
        assert!(!graph.reaches("b", Reachable::Secret, "ns", "shared"));
        // A pod not yet scheduled leads nowhere.
        graph.set_pod(&pod("three", "", json!({})));
        assert!(graph.reached.is_empty());
    }

    #[test]
    fn a_volume_is_reached_through_a_bound_claim() {
        let mut graph = NodeGraph::new();
        graph.set_pod(&rich_pod());
        assert!(!graph.reaches_volume("a", "pv-1"));
        graph.set_claim(&json!({"metadata": {"name": "data", "namespace": "ns"},
                                "spec": {"volumeName": "pv-1"}}));
        assert!(graph.reaches_volume("a", "pv-1"));
        assert!(!graph.reaches_volume("b", "pv-1"));
        assert!(!graph.reaches_volume("a", "pv-2"));
        graph.remove_claim("ns", "data");
        assert!(!graph.reaches_volume("a", "pv-1"));
    }

    #[test]
    fn node_identity_needs_the_prefix_and_the_group() {
        let node = UserInfo::new("system:node:a", &[NODES_GROUP]);
        assert_eq!(node_identity(&node), Some("a"));
        assert_eq!(
            node_identity(&UserInfo::new("system:node:", &[NODES_GROUP])),
            Some("")
        );
        assert_eq!(node_identity(&UserInfo::new("system:node:a", &["x"])), None);
        assert_eq!(node_identity(&UserInfo::new("jane", &[NODES_GROUP])), None);
    }

    fn ask(verb: &str, group: &str, resource: &str, sub: &str, ns: &str, name: &str) -> Attributes {
        Attributes::resource(
            UserInfo::new("system:node:a", &[NODES_GROUP]),
            verb,
            ResourceTarget {
                namespace: ns.into(),
                api_group: group.into(),
                api_version: "v1".into(),
                resource: resource.into(),
                subresource: sub.into(),
                name: name.into(),
            },
        )
    }

    #[test]
    fn decisions_follow_kubernetes_node_authorizer() {
        let mut graph = NodeGraph::new();
        graph.set_pod(&rich_pod());
        graph.set_pod(&pod(
            "elsewhere",
            "b",
            json!({"volumes": [{"name": "s", "secret": {"secretName": "b-secret"}}]}),
        ));
        graph.set_claim(&json!({"metadata": {"name": "data", "namespace": "ns"},
                                "spec": {"volumeName": "pv-1"}}));
        let rules = vec![
            PolicyRule::resources(&["get", "list", "watch"], &[""], &["services"]),
            PolicyRule::resources(&["create", "patch", "update"], &[""], &["events"]),
        ];
        let none = "no relationship found between node 'a' and this object";
        let allow = NodeDecision::Allow;
        let no = |r: &str| NodeDecision::NoOpinion(r.to_string());
        let cases = [
            (
                ask("get", "", "secrets", "", "ns", "vol-secret"),
                allow.clone(),
            ),
            (
                ask("watch", "", "secrets", "", "ns", "vol-secret"),
                allow.clone(),
            ),
            (ask("get", "", "secrets", "", "ns", "b-secret"), no(none)),
            (
                ask("get", "", "secrets", "", "other", "vol-secret"),
                no(none),
            ),
            (
                ask("list", "", "secrets", "", "ns", ""),
                no("No Object name found"),
            ),
            (
                ask("update", "", "secrets", "", "ns", "vol-secret"),
                no("can only read resources of this type"),
            ),
            (
                ask("get", "", "configmaps", "", "ns", "proj-cm"),
                allow.clone(),
            ),
            (ask("get", "", "configmaps", "", "ns", "nope"), no(none)),
            (
                ask("get", "", "persistentvolumeclaims", "", "ns", "data"),
                allow.clone(),
            ),
            (
                ask("list", "", "persistentvolumeclaims", "", "ns", "data"),
                no("can only get individual resources of this type"),
            ),
            (
                ask(
                    "patch",
                    "",
                    "persistentvolumeclaims",
                    "status",
                    "ns",
                    "data",
                ),
                allow.clone(),
            ),
            (
                ask("get", "", "persistentvolumes", "", "", "pv-1"),
                allow.clone(),
            ),
            (
                ask("get", "", "persistentvolumes", "", "", "pv-2"),
                no(none),
            ),
            (
                ask("create", "", "serviceaccounts", "token", "ns", "runner"),
                allow.clone(),
            ),
            (
                ask("create", "", "serviceaccounts", "token", "ns", "default"),
                no(none),
            ),
            (
                ask("get", "", "serviceaccounts", "", "ns", "runner"),
                allow.clone(),
            ),
            (
                ask(
                    "get",
                    "coordination.k8s.io",
                    "leases",
                    "",
                    "kube-node-lease",
                    "a",
                ),
                allow.clone(),
            ),
            (
                ask(
                    "update",
                    "coordination.k8s.io",
                    "leases",
                    "",
                    "kube-node-lease",
                    "b",
                ),
                no("can only access node lease with the same name as the requesting node"),
            ),
            (
                ask("get", "coordination.k8s.io", "leases", "", "default", "a"),
                no("can only access leases in the \"kube-node-lease\" system namespace"),
            ),
            (
                ask(
                    "create",
                    "coordination.k8s.io",
                    "leases",
                    "",
                    "kube-node-lease",
                    "",
                ),
                allow.clone(),
            ),
            (ask("get", "", "nodes", "", "", "a"), allow.clone()),
            (
                ask("get", "", "nodes", "", "", "b"),
                no("node 'a' cannot read 'b', only its own Node object"),
            ),
            (
                ask("list", "", "nodes", "", "", ""),
                no("node 'a' cannot read all nodes, only its own Node object"),
            ),
            (ask("patch", "", "nodes", "status", "", "a"), allow.clone()),
            (ask("delete", "", "nodes", "", "", "a"), no("")),
            (ask("list", "", "services", "", "", ""), allow.clone()),
            (ask("create", "", "events", "", "ns", ""), allow.clone()),
            (ask("delete", "", "services", "", "ns", "x"), no("")),
        ];
        for (attrs, expected) in cases {
            assert_eq!(
                authorize_node(&graph, &rules, "a", &attrs),
                expected,
                "{attrs:?}"
            );
        }
        let unnamed = ask("get", "", "secrets", "", "ns", "vol-secret");
        assert_eq!(
            authorize_node(&graph, &rules, "", &unnamed),
            no("unknown node for user \"system:node:a\"")
        );
    }
}
