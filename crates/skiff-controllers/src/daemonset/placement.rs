//! Where a DaemonSet's pods belong: the daemon controller's `NodeShouldRunDaemonPod` (node
//! name, node selector and required affinity, taints against the template's tolerations plus
//! the ones the controller adds), the node a pod targets, and the pod the controller creates
//! for one node.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{
    Affinity, Node, NodeAffinity, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm, Pod,
    PodSpec, PodTemplateSpec, Toleration,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use skiff_scheduler::matching::{node_matches_pod_affinity, tolerated};

use crate::replicaset::pod_name_prefix;

/// Label naming the ControllerRevision a daemon pod was created from.
pub const CONTROLLER_REVISION_HASH_LABEL: &str = "controller-revision-hash";
/// Label carrying the DaemonSet's template generation on its pods.
pub const POD_TEMPLATE_GENERATION_LABEL: &str = "pod-template-generation";
use skiff_api::kinds::daemon_set::TEMPLATE_GENERATION_ANNOTATION;

/// The tolerations every daemon pod gets (`AddOrUpdateDaemonPodTolerations`), so node
/// conditions never evict or keep out a node's daemons: `(key, effect)`, operator `Exists`.
const DAEMON_TOLERATIONS: [(&str, &str); 6] = [
    ("node.kubernetes.io/not-ready", "NoExecute"),
    ("node.kubernetes.io/unreachable", "NoExecute"),
    ("node.kubernetes.io/disk-pressure", "NoSchedule"),
    ("node.kubernetes.io/memory-pressure", "NoSchedule"),
    ("node.kubernetes.io/pid-pressure", "NoSchedule"),
    ("node.kubernetes.io/unschedulable", "NoSchedule"),
];
/// Added too for pods on the host network, which need no pod network to run.
const HOST_NETWORK_TOLERATION: (&str, &str) =
    ("node.kubernetes.io/network-unavailable", "NoSchedule");

/// Whether a node should run the daemon pod, and whether a pod already there may stay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeFit {
    /// A pod should be created on the node if none is there.
    pub should_run: bool,
    /// A pod already on the node may keep running (it tolerates every `NoExecute` taint).
    pub should_continue_running: bool,
}

/// The template generation the DaemonSet's pods are labelled with: the `apps/v1` annotation
/// when present, else the object's generation.
pub fn template_generation(ds: &DaemonSet) -> i64 {
    ds.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(TEMPLATE_GENERATION_ANNOTATION))
        .and_then(|g| g.parse().ok())
        .or(ds.metadata.generation)
        .unwrap_or(1)
}

fn template(ds: &DaemonSet) -> PodTemplateSpec {
    ds.spec
        .as_ref()
        .map(|s| s.template.clone())
        .unwrap_or_default()
}

/// Adds `toleration` unless an equal one (same key, operator, value and effect) is there; a
/// matching one with other settings (such as `tolerationSeconds`) is replaced
/// (`AddOrUpdateTolerationInPodSpec`).
fn add_or_update_toleration(tolerations: &mut Vec<Toleration>, toleration: Toleration) {
    let same_rule = |t: &Toleration| {
        t.key == toleration.key
            && t.effect == toleration.effect
            && t.operator.as_deref().unwrap_or("Equal")
                == toleration.operator.as_deref().unwrap_or("Equal")
            && t.value.as_deref().unwrap_or("") == toleration.value.as_deref().unwrap_or("")
    };
    match tolerations.iter_mut().find(|t| same_rule(t)) {
        Some(existing) => *existing = toleration,
        None => tolerations.push(toleration),
    }
}

/// The template's pod spec with the daemon tolerations added.
pub fn with_daemon_tolerations(spec: &mut PodSpec) {
    let mut tolerations = spec.tolerations.take().unwrap_or_default();
    let host_network = spec.host_network == Some(true);
    let extra = host_network.then_some(HOST_NETWORK_TOLERATION);
    for (key, effect) in DAEMON_TOLERATIONS.into_iter().chain(extra) {
        add_or_update_toleration(
            &mut tolerations,
            Toleration {
                key: Some(key.to_string()),
                operator: Some("Exists".to_string()),
                effect: Some(effect.to_string()),
                ..Toleration::default()
            },
        );
    }
    spec.tolerations = Some(tolerations);
}

/// `ReplaceDaemonSetPodNodeNameNodeAffinity`: the required node affinity becomes the one
/// term `matchFields metadata.name In [node]`, so the scheduler binds the pod to that node;
/// preferred terms are kept.
pub fn pin_to_node(affinity: Option<Affinity>, node: &str) -> Affinity {
    let selector = NodeSelector {
        node_selector_terms: vec![NodeSelectorTerm {
            match_fields: Some(vec![NodeSelectorRequirement {
                key: "metadata.name".to_string(),
                operator: "In".to_string(),
                values: Some(vec![node.to_string()]),
            }]),
            match_expressions: None,
        }],
    };
    let mut affinity = affinity.unwrap_or_default();
    let mut node_affinity = affinity.node_affinity.take().unwrap_or_default();
    node_affinity.required_during_scheduling_ignored_during_execution = Some(selector);
    affinity.node_affinity = Some(NodeAffinity { ..node_affinity });
    affinity
}

/// The node a daemon pod is on or targets: its `nodeName`, else the single name its required
/// affinity's `matchFields metadata.name In` term names (`GetTargetNodeName`).
pub fn target_node(pod: &Pod) -> Option<String> {
    let spec = pod.spec.as_ref()?;
    if let Some(name) = spec.node_name.as_deref().filter(|n| !n.is_empty()) {
        return Some(name.to_string());
    }
    let terms = &spec
        .affinity
        .as_ref()?
        .node_affinity
        .as_ref()?
        .required_during_scheduling_ignored_during_execution
        .as_ref()?
        .node_selector_terms;
    terms.iter().find_map(|term| {
        term.match_fields.iter().flatten().find_map(|req| {
            let values = req.values.as_deref().unwrap_or(&[]);
            (req.key == "metadata.name" && req.operator == "In" && values.len() == 1)
                .then(|| values[0].clone())
        })
    })
}

/// The owner reference a daemon pod and revision carry.
pub fn controller_ref(ds: &DaemonSet) -> OwnerReference {
    OwnerReference {
        api_version: "apps/v1".to_string(),
        kind: "DaemonSet".to_string(),
        name: ds.metadata.name.clone().unwrap_or_default(),
        uid: ds.metadata.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// The pod the controller creates on `node` (`CreatePodTemplate` then `NewPod`): the template
/// with the revision hash and template generation labels, the daemon tolerations, pinned to
/// `node` by affinity, named `<daemonset>-<random>` and controlled by the DaemonSet.
pub fn daemon_pod(ds: &DaemonSet, node: &str, hash: &str) -> Pod {
    let template = template(ds);
    let meta = template.metadata.unwrap_or_default();
    let mut labels: BTreeMap<String, String> = meta.labels.unwrap_or_default();
    labels.insert(
        POD_TEMPLATE_GENERATION_LABEL.to_string(),
        template_generation(ds).to_string(),
    );
    if !hash.is_empty() {
        labels.insert(CONTROLLER_REVISION_HASH_LABEL.to_string(), hash.to_string());
    }
    let mut spec = template.spec.unwrap_or_default();
    with_daemon_tolerations(&mut spec);
    spec.affinity = Some(pin_to_node(spec.affinity.take(), node));
    Pod {
        metadata: ObjectMeta {
            generate_name: Some(pod_name_prefix(ds.metadata.name.as_deref().unwrap_or(""))),
            namespace: ds.metadata.namespace.clone(),
            labels: Some(labels),
            annotations: meta.annotations.filter(|a| !a.is_empty()),
            finalizers: meta.finalizers.filter(|f| !f.is_empty()),
            owner_references: Some(vec![controller_ref(ds)]),
            ..ObjectMeta::default()
        },
        spec: Some(spec),
        status: None,
    }
}

/// `NodeShouldRunDaemonPod`: the template's `nodeName`, then node selector and required
/// affinity, then taints. A node whose untolerated taints are all `NoSchedule` keeps the pods
/// it runs; an untolerated `NoExecute` taint evicts them.
pub fn node_fit(ds: &DaemonSet, node: &Node) -> NodeFit {
    const NEITHER: NodeFit = NodeFit {
        should_run: false,
        should_continue_running: false,
    };
    let node_name = node.metadata.name.as_deref().unwrap_or("");
    // The template as it would run there (`NewPod`): the user's own affinity, which the
    // created pod's pin to the node replaces, is what decides.
    let template = template(ds);
    let mut pod_spec = template.spec.unwrap_or_default();
    with_daemon_tolerations(&mut pod_spec);
    let wanted_node = pod_spec.node_name.clone().unwrap_or_default();
    let pod = Pod {
        metadata: template.metadata.unwrap_or_default(),
        spec: Some(pod_spec),
        status: None,
    };
    let spec = pod.spec.as_ref();
    if !wanted_node.is_empty() && wanted_node != node_name {
        return NEITHER;
    }
    if !node_matches_pod_affinity(&pod, node) {
        return NEITHER;
    }
    let tolerations = spec.and_then(|s| s.tolerations.as_deref()).unwrap_or(&[]);
    // The node's own taints, as the daemon controller reads them: a node that is not Ready
    // without a taint saying so still gets its pod, which the scheduler then holds back.
    let taints = node
        .spec
        .as_ref()
        .and_then(|s| s.taints.as_deref())
        .unwrap_or(&[]);
    let untolerated = |effects: &[&str]| {
        taints
            .iter()
            .any(|t| effects.contains(&t.effect.as_str()) && !tolerated(tolerations, t))
    };
    if untolerated(&["NoSchedule", "NoExecute"]) {
        return NodeFit {
            should_run: false,
            should_continue_running: !untolerated(&["NoExecute"]),
        };
    }
    NodeFit {
        should_run: true,
        should_continue_running: true,
    }
}
