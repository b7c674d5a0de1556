//! The generation a node's status write describes. Since Kubernetes 1.35 kubelet reports the
//! pod generation it acted on in `status.observedGeneration` and in each condition it owns.

use k8s_openapi::api::core::v1::PodStatus;

/// The pod conditions a node writes (the scheduler's `PodScheduled` keeps what it observed).
const NODE_CONDITIONS: [&str; 4] = [
    "PodReadyToStartContainers",
    "Initialized",
    "Ready",
    "ContainersReady",
];

/// `status` stamped with `generation`: the status itself and every condition the node owns.
pub(crate) fn observe_generation(mut status: PodStatus, generation: Option<i64>) -> PodStatus {
    status.observed_generation = generation;
    for condition in status.conditions.iter_mut().flatten() {
        if NODE_CONDITIONS.contains(&condition.type_.as_str()) {
            condition.observed_generation = generation;
        }
    }
    status
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::PodCondition;

    fn condition(type_: &str) -> PodCondition {
        PodCondition {
            type_: type_.to_string(),
            status: "True".to_string(),
            ..PodCondition::default()
        }
    }

    #[test]
    fn the_status_and_the_nodes_conditions_carry_the_generation() {
        let status = PodStatus {
            conditions: Some(vec![
                condition("Ready"),
                condition("PodScheduled"),
                condition("example.com/gate"),
            ]),
            ..PodStatus::default()
        };
        let observed = observe_generation(status, Some(3));
        assert_eq!(observed.observed_generation, Some(3));
        let generations: Vec<Option<i64>> = observed
            .conditions
            .unwrap_or_default()
            .iter()
            .map(|c| c.observed_generation)
            .collect();
        assert_eq!(generations, [Some(3), None, None]);
    }
}
