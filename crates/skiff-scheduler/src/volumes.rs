//! The VolumeBinding plugin's part of scheduling, pure: from what the shell read of a pod's
//! claims, whether the pod may be placed at all (its PreFilter: every claim exists, and none
//! of an `Immediate` class is still unbound), which nodes its bound volumes allow (its Filter,
//! on the volumes' required node affinity), and which claims of a `WaitForFirstConsumer` class
//! get the chosen node in `volume.kubernetes.io/selected-node` (its PreBind, so the binder can
//! provision or bind for that node).

use k8s_openapi::api::core::v1::{Node, NodeSelector};
use serde_json::Value;

use crate::matching;

/// The PreFilter's reason for a pod with a claim of an `Immediate` class not bound yet.
pub const REASON_UNBOUND_IMMEDIATE: &str = "pod has unbound immediate PersistentVolumeClaims";
/// The Filter's reason for a node a bound volume's node affinity excludes.
pub const REASON_VOLUME_NODE_CONFLICT: &str = "node(s) had volume node affinity conflict";
/// The annotation naming the node chosen for a delayed-binding claim.
pub const ANN_SELECTED_NODE: &str = "volume.kubernetes.io/selected-node";

/// What the shell read for one claim a pod names.
#[derive(Clone, Debug, Default)]
pub struct ClaimFacts {
    /// The claim's name.
    pub name: String,
    /// The claim, `None` when it does not exist.
    pub claim: Option<Value>,
    /// The volume the claim names in `spec.volumeName`, when it exists.
    pub volume: Option<Value>,
    /// The claim's StorageClass, when it names one that exists.
    pub class: Option<Value>,
}

/// The pod's volume constraints.
#[derive(Clone, Debug, Default)]
pub struct PodVolumes {
    /// Why no node can take the pod now (the PreFilter's message), if so.
    pub rejection: Option<String>,
    /// The required node affinity of each volume bound to the pod's claims.
    pub node_affinities: Vec<NodeSelector>,
    /// The claims waiting for their first consumer, to annotate with the chosen node.
    pub delayed_claims: Vec<String>,
}

fn text<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

/// The constraints of a pod from its claims' facts, as the VolumeBinding plugin's PreFilter
/// works them out.
pub fn pod_volumes(facts: &[ClaimFacts]) -> PodVolumes {
    let mut out = PodVolumes::default();
    let mut unbound_immediate = false;
    for fact in facts {
        let Some(claim) = &fact.claim else {
            out.rejection = Some(format!("persistentvolumeclaim \"{}\" not found", fact.name));
            return out;
        };
        if claim
            .pointer("/metadata/deletionTimestamp")
            .is_some_and(|t| !t.is_null())
        {
            out.rejection = Some(format!(
                "persistentvolumeclaim \"{}\" is being deleted",
                fact.name
            ));
            return out;
        }
        if !text(claim, "/spec/volumeName").is_empty() {
            if let Some(selector) = fact
                .volume
                .as_ref()
                .and_then(|v| v.pointer("/spec/nodeAffinity/required"))
                .and_then(|r| serde_json::from_value::<NodeSelector>(r.clone()).ok())
            {
                out.node_affinities.push(selector);
            }
            continue;
        }
        let delayed = fact
            .class
            .as_ref()
            .is_some_and(|c| text(c, "/volumeBindingMode") == "WaitForFirstConsumer");
        if delayed {
            out.delayed_claims.push(fact.name.clone());
        } else {
            unbound_immediate = true;
        }
    }
    if unbound_immediate {
        out.rejection = Some(REASON_UNBOUND_IMMEDIATE.to_string());
    }
    out
}

/// Whether every bound volume of the pod may be used from `node`.
pub fn node_fits_volumes(volumes: &PodVolumes, node: &Node) -> bool {
    volumes.node_affinities.iter().all(|selector| {
        selector
            .node_selector_terms
            .iter()
            .any(|term| matching::term_matches(term, node))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fact(
        name: &str,
        claim: Option<Value>,
        volume: Option<Value>,
        mode: Option<&str>,
    ) -> ClaimFacts {
        ClaimFacts {
            name: name.to_string(),
            claim,
            volume,
            class: mode.map(|m| json!({"metadata": {"name": "c"}, "volumeBindingMode": m})),
        }
    }

    /// (what, facts, rejection, affinities, delayed claims)
    type Case = (
        &'static str,
        Vec<ClaimFacts>,
        Option<&'static str>,
        usize,
        Vec<&'static str>,
    );

    #[test]
    fn prefilter_cases() {
        let unbound = json!({"metadata": {"name": "data"}, "spec": {}});
        let bound = json!({"metadata": {"name": "data"}, "spec": {"volumeName": "pv1"}});
        let pinned = json!({"metadata": {"name": "pv1"}, "spec": {"nodeAffinity": {"required": {
            "nodeSelectorTerms": [{"matchExpressions": [{"key": "kubernetes.io/hostname",
                "operator": "In", "values": ["n1"]}]}]}}}});
        // (what, facts, rejection, affinities, delayed claims)
        let cases: Vec<Case> = vec![
            ("no claims", vec![], None, 0, vec![]),
            (
                "missing claim",
                vec![fact("data", None, None, None)],
                Some("persistentvolumeclaim \"data\" not found"),
                0,
                vec![],
            ),
            (
                "unbound immediate",
                vec![fact("data", Some(unbound.clone()), None, Some("Immediate"))],
                Some(REASON_UNBOUND_IMMEDIATE),
                0,
                vec![],
            ),
            (
                "unbound without a class",
                vec![fact("data", Some(unbound.clone()), None, None)],
                Some(REASON_UNBOUND_IMMEDIATE),
                0,
                vec![],
            ),
            (
                "unbound delayed",
                vec![fact(
                    "data",
                    Some(unbound.clone()),
                    None,
                    Some("WaitForFirstConsumer"),
                )],
                None,
                0,
                vec!["data"],
            ),
            (
                "bound and pinned",
                vec![fact(
                    "data",
                    Some(bound.clone()),
                    Some(pinned),
                    Some("Immediate"),
                )],
                None,
                1,
                vec![],
            ),
        ];
        assert_eq!(cases.len(), 6);
        for (what, facts, rejection, affinities, delayed) in cases {
            let got = pod_volumes(&facts);
            assert_eq!(got.rejection.as_deref(), rejection, "{what}");
            assert_eq!(got.node_affinities.len(), affinities, "{what}");
            assert_eq!(got.delayed_claims, delayed, "{what}");
        }
    }

    #[test]
    fn a_pinned_volume_admits_only_its_node() {
        let facts = vec![fact(
            "data",
            Some(json!({"metadata": {"name": "data"}, "spec": {"volumeName": "pv1"}})),
            Some(
                json!({"spec": {"nodeAffinity": {"required": {"nodeSelectorTerms": [
                {"matchExpressions": [{"key": "kubernetes.io/hostname", "operator": "In",
                                       "values": ["n1"]}]}]}}}}),
            ),
            Some("WaitForFirstConsumer"),
        )];
        let volumes = pod_volumes(&facts);
        let node = |name: &str| -> Node {
            serde_json::from_value(json!({"metadata": {"name": name,
                "labels": {"kubernetes.io/hostname": name}}}))
            .unwrap()
        };
        assert!(node_fits_volumes(&volumes, &node("n1")));
        assert!(!node_fits_volumes(&volumes, &node("n2")));
    }
}
