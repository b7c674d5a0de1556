//! The strategic-merge schema of the served built-in kinds.
//!
//! Kubernetes reads `patchStrategy` and `patchMergeKey` from the Go struct tags of k8s.io/api at
//! each step of the walk. We keep only the facts that change the outcome: which lists merge (and
//! by which key), and which nested types lead to such lists. A field the table does not name is
//! patched by default rules: objects merge recursively, lists are replaced whole.

use crate::resources::ResourceInfo;

/// How the value of one field is combined with the patch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Strategy {
    /// Objects merge key by key; lists are replaced whole (atomic).
    Default,
    /// A list of objects merged item by item, matching items on this key.
    MergeByKey(&'static str),
    /// A list of primitives merged as a set (`finalizers`).
    MergeSet,
    /// An object replaced whole instead of merged (`patchStrategy:"replace"`).
    Replace,
}

/// One struct field with patch-relevant structure, as the Go struct tags describe it.
#[derive(Clone, Copy, Debug)]
pub struct FieldRule {
    /// The Go type holding the field, e.g. `PodSpec`.
    pub owner: &'static str,
    /// The JSON name of the field.
    pub field: &'static str,
    /// The type of the value, or of each item for a list; `None` when nothing below matters.
    pub child: Option<&'static str>,
    /// How the value is patched.
    pub strategy: Strategy,
}

/// A position in the walk: the rule table and the type of the object being merged there.
#[derive(Clone, Copy, Debug)]
pub struct Schema {
    rules: &'static [FieldRule],
    type_name: Option<&'static str>,
}

impl Schema {
    /// A schema rooted at `type_name` within `rules`.
    pub const fn new(rules: &'static [FieldRule], type_name: &'static str) -> Schema {
        Schema {
            rules,
            type_name: Some(type_name),
        }
    }

    /// A schema that knows no fields: maps merge, lists are replaced (custom resources).
    pub const fn untyped() -> Schema {
        Schema {
            rules: &[],
            type_name: None,
        }
    }

    /// The schema of a field's value (or list items) and the strategy that applies to it.
    pub fn field(&self, name: &str) -> (Schema, Strategy) {
        let rule = self.type_name.and_then(|owner| {
            self.rules
                .iter()
                .find(|r| r.owner == owner && r.field == name)
        });
        match rule {
            Some(rule) => (
                Schema {
                    rules: self.rules,
                    type_name: rule.child,
                },
                rule.strategy,
            ),
            None => (
                Schema {
                    rules: self.rules,
                    type_name: None,
                },
                Strategy::Default,
            ),
        }
    }

    /// The Go type at this position, when the table knows it.
    pub fn named_type(&self) -> Option<&'static str> {
        self.type_name
    }

    /// The type name, for messages.
    pub fn type_name(&self) -> &'static str {
        self.type_name.unwrap_or("struct")
    }
}

const fn nest(owner: &'static str, field: &'static str, child: &'static str) -> FieldRule {
    FieldRule {
        owner,
        field,
        child: Some(child),
        strategy: Strategy::Default,
    }
}

const fn merge_by(
    owner: &'static str,
    field: &'static str,
    child: Option<&'static str>,
    key: &'static str,
) -> FieldRule {
    FieldRule {
        owner,
        field,
        child,
        strategy: Strategy::MergeByKey(key),
    }
}

const fn merge_set(owner: &'static str, field: &'static str) -> FieldRule {
    FieldRule {
        owner,
        field,
        child: None,
        strategy: Strategy::MergeSet,
    }
}

const OBJECT_META: &str = "ObjectMeta";
const POD_SPEC: &str = "PodSpec";
const CONTAINER: &str = "Container";
const POD_TEMPLATE: &str = "PodTemplateSpec";

/// Field rules transcribed from the struct tags of k8s.io/api core/v1, apps/v1, autoscaling/v2
/// and meta/v1, limited to the kinds Skiff serves. Lists not named here (tolerations, taints,
/// envFrom, args, containerStatuses, endpoint subsets, ...) carry no strategy upstream and are
/// atomic.
static BUILTIN_RULES: &[FieldRule] = &[
    // Object roots: every kind has ObjectMeta.
    nest("Pod", "metadata", OBJECT_META),
    nest("Pod", "spec", POD_SPEC),
    nest("Pod", "status", "PodStatus"),
    nest("Deployment", "metadata", OBJECT_META),
    nest("Deployment", "spec", "DeploymentSpec"),
    nest("Deployment", "status", "DeploymentStatus"),
    nest("ReplicaSet", "metadata", OBJECT_META),
    nest("ReplicaSet", "spec", "ReplicaSetSpec"),
    nest("ReplicaSet", "status", "ReplicaSetStatus"),
    nest("DaemonSet", "metadata", OBJECT_META),
    nest("DaemonSet", "spec", "DaemonSetSpec"),
    nest("DaemonSet", "status", "DaemonSetStatus"),
    nest("StatefulSet", "metadata", OBJECT_META),
    nest("StatefulSet", "spec", "StatefulSetSpec"),
    nest("StatefulSet", "status", "StatefulSetStatus"),
    nest("Node", "metadata", OBJECT_META),
    nest("Node", "spec", "NodeSpec"),
    nest("Node", "status", "NodeStatus"),
    nest("Service", "metadata", OBJECT_META),
    nest("Service", "spec", "ServiceSpec"),
    nest("Service", "status", "ServiceStatus"),
    nest("Namespace", "metadata", OBJECT_META),
    nest("Namespace", "status", "NamespaceStatus"),
    nest("ServiceAccount", "metadata", OBJECT_META),
    merge_by("ServiceAccount", "secrets", None, "name"),
    nest("HorizontalPodAutoscaler", "metadata", OBJECT_META),
    nest(
        "HorizontalPodAutoscaler",
        "spec",
        "HorizontalPodAutoscalerSpec",
    ),
    nest(
        "HorizontalPodAutoscaler",
        "status",
        "HorizontalPodAutoscalerStatus",
    ),
    nest("Endpoints", "metadata", OBJECT_META),
    nest("Event", "metadata", OBJECT_META),
    nest("ConfigMap", "metadata", OBJECT_META),
    nest("Secret", "metadata", OBJECT_META),
    nest("ControllerRevision", "metadata", OBJECT_META),
    nest("Lease", "metadata", OBJECT_META),
    // discovery/v1 EndpointSlice: `endpoints` and `ports` are atomic lists.
    nest("EndpointSlice", "metadata", OBJECT_META),
    // admissionregistration/v1: webhooks merge by name.
    nest("ValidatingWebhookConfiguration", "metadata", OBJECT_META),
    merge_by("ValidatingWebhookConfiguration", "webhooks", None, "name"),
    nest("MutatingWebhookConfiguration", "metadata", OBJECT_META),
    merge_by("MutatingWebhookConfiguration", "webhooks", None, "name"),
    // meta/v1 ObjectMeta.
    merge_by(OBJECT_META, "ownerReferences", None, "uid"),
    merge_set(OBJECT_META, "finalizers"),
    // Templates.
    nest(POD_TEMPLATE, "metadata", OBJECT_META),
    nest(POD_TEMPLATE, "spec", POD_SPEC),
    nest("DeploymentSpec", "template", POD_TEMPLATE),
    nest("ReplicaSetSpec", "template", POD_TEMPLATE),
    nest("DaemonSetSpec", "template", POD_TEMPLATE),
    nest("StatefulSetSpec", "template", POD_TEMPLATE),
    // OpenKruise CloneSet: never used for strategic merge (custom resources refuse it), but
    // server-side apply merges its pod template as the built-in workloads' one.
    nest("CloneSet", "metadata", OBJECT_META),
    nest("CloneSet", "spec", "CloneSetSpec"),
    nest("CloneSetSpec", "template", POD_TEMPLATE),
    // core/v1 PodSpec.
    merge_by(POD_SPEC, "volumes", None, "name"),
    merge_by(POD_SPEC, "initContainers", Some(CONTAINER), "name"),
    merge_by(POD_SPEC, "containers", Some(CONTAINER), "name"),
    merge_by(POD_SPEC, "ephemeralContainers", Some(CONTAINER), "name"),
    merge_by(POD_SPEC, "imagePullSecrets", None, "name"),
    merge_by(POD_SPEC, "hostAliases", None, "ip"),
    merge_by(POD_SPEC, "topologySpreadConstraints", None, "topologyKey"),
    merge_by(POD_SPEC, "schedulingGates", None, "name"),
    merge_by(POD_SPEC, "resourceClaims", None, "name"),
    // core/v1 Container (EphemeralContainerCommon carries the same tags).
    merge_by(CONTAINER, "ports", None, "containerPort"),
    merge_by(CONTAINER, "env", None, "name"),
    merge_by(CONTAINER, "volumeMounts", None, "mountPath"),
    merge_by(CONTAINER, "volumeDevices", None, "devicePath"),
    // Statuses.
    merge_by("PodStatus", "conditions", None, "type"),
    merge_by("PodStatus", "hostIPs", None, "ip"),
    merge_by("PodStatus", "podIPs", None, "ip"),
    merge_by("PodStatus", "resourceClaimStatuses", None, "name"),
    merge_by("DeploymentStatus", "conditions", None, "type"),
    merge_by("ReplicaSetStatus", "conditions", None, "type"),
    merge_by("DaemonSetStatus", "conditions", None, "type"),
    merge_by("StatefulSetStatus", "conditions", None, "type"),
    merge_by("NodeStatus", "conditions", None, "type"),
    merge_by("NodeStatus", "addresses", None, "type"),
    merge_set("NodeSpec", "podCIDRs"),
    merge_by("ServiceSpec", "ports", None, "port"),
    merge_by("ServiceStatus", "conditions", None, "type"),
    merge_by("NamespaceStatus", "conditions", None, "type"),
    merge_by("HorizontalPodAutoscalerStatus", "conditions", None, "type"),
];

/// The strategic-merge schema of a served resource, or `None` when it has none: custom
/// resources (CloneSet) have no Go types, so Kubernetes refuses strategic merge patch for them.
pub fn schema_for(resource: &ResourceInfo) -> Option<Schema> {
    let kind = crate::kinds::kind_of(resource)?;
    if kind.strategy.is_custom_resource() {
        return None;
    }
    let root = resource.kind;
    Some(Schema::new(BUILTIN_RULES, root))
}

/// The schema server-side apply merges a resource with: the strategic-merge one, and for the
/// CloneSet the same pod template structure the built-in workloads have.
pub fn apply_schema_for(resource: &ResourceInfo) -> Schema {
    match schema_for(resource) {
        Some(schema) => schema,
        None if resource.kind == "CloneSet" => Schema::new(BUILTIN_RULES, "CloneSet"),
        None => Schema::untyped(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::{all, find};

    #[test]
    fn every_builtin_kind_has_a_schema_and_custom_resources_do_not() {
        for resource in all() {
            let has_schema = schema_for(resource).is_some();
            let is_custom = resource.group.ends_with("kruise.io");
            assert_eq!(has_schema, !is_custom, "{}", resource.kind);
        }
    }

    #[test]
    fn walk_reaches_container_env_from_a_deployment() {
        let deployment = find("apps", "v1", "deployments").and_then(schema_for);
        let Some(root) = deployment else {
            panic!("deployments must have a schema");
        };
        let (spec, _) = root.field("spec");
        let (template, _) = spec.field("template");
        let (pod_spec, _) = template.field("spec");
        let (container, strategy) = pod_spec.field("containers");
        assert_eq!(strategy, Strategy::MergeByKey("name"));
        assert_eq!(container.field("env").1, Strategy::MergeByKey("name"));
        assert_eq!(
            container.field("ports").1,
            Strategy::MergeByKey("containerPort")
        );
        assert_eq!(pod_spec.field("tolerations").1, Strategy::Default);
        assert_eq!(container.field("args").1, Strategy::Default);
    }

    #[test]
    fn webhook_configurations_merge_their_webhooks_by_name() {
        for plural in [
            "validatingwebhookconfigurations",
            "mutatingwebhookconfigurations",
        ] {
            let resource = find("admissionregistration.k8s.io", "v1", plural).expect(plural);
            let schema = schema_for(resource).expect("a built-in kind has a schema");
            assert_eq!(schema.field("webhooks").1, Strategy::MergeByKey("name"));
        }
    }
}
