//! OpenKruise's `apps.kruise.io/v1alpha1` CloneSet, as Rust types.
//!
//! The shapes follow OpenKruise's v1alpha1 API field for field, so manifests written for a real
//! Kruise installation decode unchanged. The wire conventions are those of `k8s-openapi`: the
//! top-level kinds carry no `apiVersion`/`kind` fields but write the constant values on output and
//! reject wrong ones on input, and optional fields are `Option`s that are left out when unset.
//! That lets controllers and typed clients treat a CloneSet exactly like a built-in workload.

use std::borrow::Cow;
use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{PersistentVolumeClaim, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ListMeta, ObjectMeta, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The API group CloneSets are served in.
pub const GROUP: &str = "apps.kruise.io";
/// The API version CloneSets are served in.
pub const VERSION: &str = "v1alpha1";
/// `group/version` as written in manifests.
pub const API_VERSION: &str = "apps.kruise.io/v1alpha1";

/// Label carrying the instance id a pod shares with the PVCs created for it.
pub const INSTANCE_ID_LABEL: &str = "apps.kruise.io/cloneset-instance-id";
/// Label that marks a pod for deletion ahead of others (set by users or by a ReCreate update).
pub const SPECIFIED_DELETE_LABEL: &str = "apps.kruise.io/specified-delete";
/// Label recording a pod's lifecycle state (`PreparingNormal`, `Normal`, `PreparingUpdate`, ...).
pub const LIFECYCLE_STATE_LABEL: &str = "lifecycle.apps.kruise.io/state";
/// Annotation recording when the lifecycle state last changed.
pub const LIFECYCLE_TIMESTAMP_ANNOTATION: &str = "lifecycle.apps.kruise.io/timestamp";
/// The readiness gate injected into every CloneSet pod so in-place updates can hold readiness.
pub const IN_PLACE_UPDATE_READY_CONDITION: &str = "InPlaceUpdateReady";
/// The `updateStrategy.maxUnavailable` Kruise assumes when none is given.
pub const DEFAULT_MAX_UNAVAILABLE: &str = "20%";

/// Values of `spec.updateStrategy.type`. Kept as strings on the wire (as Kruise does) so an
/// unknown value reaches validation and is reported there, instead of failing decoding.
pub mod update_strategy_type {
    /// Delete old pods and create new ones; the default.
    pub const RECREATE: &str = "ReCreate";
    /// Update in place when only in-place-able fields changed, otherwise recreate.
    pub const IN_PLACE_IF_POSSIBLE: &str = "InPlaceIfPossible";
    /// Only ever update in place; other template changes are rejected.
    pub const IN_PLACE_ONLY: &str = "InPlaceOnly";
}

/// Condition types the CloneSet controller reports in `status.conditions`.
pub mod condition_type {
    /// Creating or deleting pods or PVCs failed.
    pub const FAILED_SCALE: &str = "FailedScale";
    /// Updating pods failed.
    pub const FAILED_UPDATE: &str = "FailedUpdate";
    /// Rollout progress, reported only when `progressDeadlineSeconds` is set.
    pub const PROGRESSING: &str = "Progressing";
}

/// A set of interchangeable pods, like a ReplicaSet, that can also update its pods in place
/// and roll out by partition.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CloneSet {
    /// Standard object metadata.
    pub metadata: ObjectMeta,
    /// The desired state.
    pub spec: Option<CloneSetSpec>,
    /// The state last observed by the controller.
    pub status: Option<CloneSetStatus>,
}

/// The desired state of a CloneSet.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "io.kruise.apps.v1alpha1.CloneSetSpec")]
#[schemars(extend("required" = ["selector", "template"]))]
pub struct CloneSetSpec {
    /// How many pods should exist. Defaults to 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i32>,

    /// Selects the pods this CloneSet owns. It must match the labels of the pod template and
    /// cannot be changed after creation.
    #[serde(default)]
    pub selector: LabelSelector,

    /// The pod every replica is created from.
    #[serde(default)]
    pub template: PodTemplateSpec,

    /// Claims created for each pod and mounted into it. A pod's claims are deleted with the pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_claim_templates: Option<Vec<PersistentVolumeClaim>>,

    /// How pods are created and deleted when scaling.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale_strategy: Option<CloneSetScaleStrategy>,

    /// How pods are moved to a new revision when the template changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_strategy: Option<CloneSetUpdateStrategy>,

    /// How many old revisions are kept for rollback. Defaults to 10.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision_history_limit: Option<i32>,

    /// How long a new pod must stay ready, with no container crashing, before it counts as
    /// available. Defaults to 0: available as soon as ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_ready_seconds: Option<i32>,

    /// Hooks that hold pods before they become normal, before deletion and around in-place
    /// updates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lifecycle: Option<Lifecycle>,

    /// Seconds a rollout may go without progress before the Progressing condition reports it
    /// as stalled. Unset means progress is not tracked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress_deadline_seconds: Option<i32>,
}

/// How a CloneSet creates and deletes pods when scaling.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "io.kruise.apps.v1alpha1.CloneSetScaleStrategy")]
pub struct CloneSetScaleStrategy {
    /// Names of pods to delete first. Names of pods that no longer exist are removed from the
    /// list by the controller.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pods_to_delete: Option<Vec<String>>,

    /// The most pods that may be unavailable while scaling up; limits how fast replicas grow.
    /// A number or a percentage of replicas. Applies to scaling up only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_unavailable: Option<IntOrString>,

    /// Whether to stop reusing the PVCs left behind by a deleted pod when creating its
    /// replacement.
    #[serde(
        default,
        rename = "disablePVCReuse",
        skip_serializing_if = "Option::is_none"
    )]
    pub disable_pvc_reuse: Option<bool>,
}

/// How a CloneSet moves its pods to a new revision.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "io.kruise.apps.v1alpha1.CloneSetUpdateStrategy")]
pub struct CloneSetUpdateStrategy {
    /// The update method: ReCreate (the default), InPlaceIfPossible or InPlaceOnly.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub type_: Option<String>,

    /// How many pods (or what percentage of replicas) to keep at old revisions; the rest are
    /// updated. Percentages round up. Defaults to 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition: Option<IntOrString>,

    /// The most pods that may be unavailable during an update or a specified deletion. A number
    /// or a percentage of replicas, rounded up, or down when maxSurge is above zero. Defaults to
    /// 20%.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_unavailable: Option<IntOrString>,

    /// How many pods may exist above the desired replicas during an update or a specified
    /// deletion. A number or a percentage of replicas, rounded up. Defaults to 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_surge: Option<IntOrString>,

    /// Stops starting new pod updates. Scaling carries on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused: Option<bool>,

    /// Rules ordering which pods are updated first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority_strategy: Option<UpdatePriorityStrategy>,

    /// Label key/value pairs whose pods are spread evenly through the update order, so that
    /// pods sharing a pair are not updated together.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scatter_strategy: Option<Vec<UpdateScatterTerm>>,

    /// Settings for updating pods in place.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_place_update_strategy: Option<InPlaceUpdateStrategy>,
}

/// One label key/value pair of a scatter strategy.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "io.kruise.apps.v1alpha1.UpdateScatterTerm")]
#[schemars(extend("required" = ["key", "value"]))]
pub struct UpdateScatterTerm {
    /// The label key.
    #[serde(default)]
    pub key: String,
    /// The label value.
    #[serde(default)]
    pub value: String,
}

/// Orders pods for update. Only one of the two term lists may be set.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "io.kruise.apps.pub.UpdatePriorityStrategy")]
pub struct UpdatePriorityStrategy {
    /// Label keys whose values order the pods: pods having the first key come first, sorted by
    /// the number at the end of the value, highest first; then pods having the second key, and
    /// so on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_priority: Option<Vec<UpdatePriorityOrderTerm>>,
    /// Weighted selectors: each pod's priority is the sum of the weights of the selectors it
    /// matches, highest first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight_priority: Option<Vec<UpdatePriorityWeightTerm>>,
}

/// One label key of an order priority.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "io.kruise.apps.pub.UpdatePriorityOrderTerm")]
#[schemars(extend("required" = ["orderedKey"]))]
pub struct UpdatePriorityOrderTerm {
    /// The label key whose value, read as the number it ends with (10 in `sts-10`), orders pods.
    #[serde(default)]
    pub ordered_key: String,
}

/// One weighted selector of a weight priority.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "io.kruise.apps.pub.UpdatePriorityWeightTerm")]
#[schemars(extend("required" = ["weight", "matchSelector"]))]
pub struct UpdatePriorityWeightTerm {
    /// Weight added to matching pods, from 0 to 100.
    #[serde(default)]
    pub weight: i32,
    /// Selects the pods, by label, that get the weight.
    #[serde(default)]
    pub match_selector: LabelSelector,
}

/// Settings for updating pods in place.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "io.kruise.apps.pub.InPlaceUpdateStrategy")]
pub struct InPlaceUpdateStrategy {
    /// Seconds between marking a pod not ready and changing its images, so traffic can drain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grace_period_seconds: Option<i32>,
}

/// Hooks that let other controllers hold pods at points of their life.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "io.kruise.apps.pub.Lifecycle")]
pub struct Lifecycle {
    /// Holds a pod in PreparingDelete instead of deleting it while the hook matches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pre_delete: Option<LifecycleHook>,
    /// Holds a pod before and after an in-place update while the hook matches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_place_update: Option<LifecycleHook>,
    /// Keeps a new pod in PreparingNormal, and so unavailable, until all the hook's labels and
    /// finalizers are on it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pre_normal: Option<LifecycleHook>,
}

/// The labels and finalizers through which a lifecycle hook is held and released.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "io.kruise.apps.pub.LifecycleHook")]
pub struct LifecycleHook {
    /// Labels whose presence, with these values, holds the pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels_handler: Option<BTreeMap<String, String>>,
    /// Finalizers whose presence holds the pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finalizers_handler: Option<Vec<String>>,
    /// Whether to mark the pod not ready while it is held before deletion or update, and ready
    /// again once updated. Defaults to false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mark_pod_not_ready: Option<bool>,
}

/// The state of a CloneSet as last observed by its controller.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "io.kruise.apps.v1alpha1.CloneSetStatus")]
#[schemars(extend("required" = ["replicas", "readyReplicas", "availableReplicas", "updatedReplicas", "updatedReadyReplicas"]))]
pub struct CloneSetStatus {
    /// The generation of the CloneSet this status was computed from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// How many active pods the CloneSet owns.
    #[serde(default)]
    pub replicas: i32,

    /// How many owned pods are ready.
    #[serde(default)]
    pub ready_replicas: i32,

    /// How many owned pods have been ready for at least minReadySeconds.
    #[serde(default)]
    pub available_replicas: i32,

    /// How many owned pods are at the update revision.
    #[serde(default)]
    pub updated_replicas: i32,

    /// How many owned pods are at the update revision and ready.
    #[serde(default)]
    pub updated_ready_replicas: i32,

    /// How many owned pods are at the update revision and available.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_available_replicas: Option<i32>,

    /// How many pods should be at the update revision: replicas minus the resolved partition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_updated_replicas: Option<i32>,

    /// The revision that pods are being updated to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_revision: Option<String>,

    /// The revision all pods were at when the last rollout completed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_revision: Option<String>,

    /// Counts hash collisions when naming revisions, so that a new name can be found.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collision_count: Option<i32>,

    /// The selector as a string, for the scale subresource and autoscalers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label_selector: Option<String>,

    /// The latest observations of the CloneSet's state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conditions: Option<Vec<CloneSetCondition>>,
}

/// One observation of a CloneSet's state.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "io.kruise.apps.v1alpha1.CloneSetCondition")]
#[schemars(extend("required" = ["type", "status"]))]
pub struct CloneSetCondition {
    /// The kind of observation, e.g. FailedScale.
    #[serde(default, rename = "type")]
    pub type_: String,
    /// True, False or Unknown.
    #[serde(default)]
    pub status: String,
    /// When the condition was last written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_update_time: Option<Time>,
    /// When the status last changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<Time>,
    /// A machine-readable reason for the last change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// A human-readable explanation of the last change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// A page of CloneSets, as returned by list requests.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CloneSetList {
    /// Standard list metadata (resourceVersion, continue token).
    pub metadata: ListMeta,
    /// The CloneSets.
    pub items: Vec<CloneSet>,
}

impl k8s_openapi::Resource for CloneSet {
    const API_VERSION: &'static str = API_VERSION;
    const GROUP: &'static str = GROUP;
    const KIND: &'static str = "CloneSet";
    const VERSION: &'static str = VERSION;
    const URL_PATH_SEGMENT: &'static str = "clonesets";
    type Scope = k8s_openapi::NamespaceResourceScope;
}

impl k8s_openapi::ListableResource for CloneSet {
    const LIST_KIND: &'static str = "CloneSetList";
}

impl k8s_openapi::Metadata for CloneSet {
    type Ty = ObjectMeta;

    fn metadata(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn metadata_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

impl k8s_openapi::Resource for CloneSetList {
    const API_VERSION: &'static str = API_VERSION;
    const GROUP: &'static str = GROUP;
    const KIND: &'static str = "CloneSetList";
    const VERSION: &'static str = VERSION;
    const URL_PATH_SEGMENT: &'static str = "";
    type Scope = k8s_openapi::SubResourceScope;
}

impl k8s_openapi::Metadata for CloneSetList {
    type Ty = ListMeta;

    fn metadata(&self) -> &ListMeta {
        &self.metadata
    }

    fn metadata_mut(&mut self) -> &mut ListMeta {
        &mut self.metadata
    }
}

/// Rejects an `apiVersion` or `kind` that names another type, as `k8s-openapi` types do.
fn check_type_meta<E: serde::de::Error>(
    api_version: Option<&str>,
    kind: Option<&str>,
    expected_kind: &'static str,
) -> Result<(), E> {
    if let Some(found) = api_version.filter(|v| *v != API_VERSION) {
        return Err(E::invalid_value(
            serde::de::Unexpected::Str(found),
            &API_VERSION,
        ));
    }
    if let Some(found) = kind.filter(|k| *k != expected_kind) {
        return Err(E::invalid_value(
            serde::de::Unexpected::Str(found),
            &expected_kind,
        ));
    }
    Ok(())
}

/// The wire form of a CloneSet, with its type meta spelled out.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CloneSetWire<M, S, T> {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    api_version: Option<Cow<'static, str>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    kind: Option<Cow<'static, str>>,
    #[serde(default)]
    metadata: M,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    spec: Option<S>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    status: Option<T>,
}

impl Serialize for CloneSet {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        CloneSetWire {
            api_version: Some(Cow::Borrowed(API_VERSION)),
            kind: Some(Cow::Borrowed("CloneSet")),
            metadata: &self.metadata,
            spec: self.spec.as_ref(),
            status: self.status.as_ref(),
        }
        .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for CloneSet {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let wire =
            CloneSetWire::<ObjectMeta, CloneSetSpec, CloneSetStatus>::deserialize(deserializer)?;
        check_type_meta(
            wire.api_version.as_deref(),
            wire.kind.as_deref(),
            "CloneSet",
        )?;
        Ok(CloneSet {
            metadata: wire.metadata,
            spec: wire.spec,
            status: wire.status,
        })
    }
}

/// The wire form of a CloneSetList, with its type meta spelled out.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CloneSetListWire<M, I> {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    api_version: Option<Cow<'static, str>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    kind: Option<Cow<'static, str>>,
    #[serde(default)]
    metadata: M,
    #[serde(default)]
    items: I,
}

impl Serialize for CloneSetList {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        CloneSetListWire {
            api_version: Some(Cow::Borrowed(API_VERSION)),
            kind: Some(Cow::Borrowed("CloneSetList")),
            metadata: &self.metadata,
            items: &self.items,
        }
        .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for CloneSetList {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let wire = CloneSetListWire::<ListMeta, Vec<CloneSet>>::deserialize(deserializer)?;
        check_type_meta(
            wire.api_version.as_deref(),
            wire.kind.as_deref(),
            "CloneSetList",
        )?;
        Ok(CloneSetList {
            metadata: wire.metadata,
            items: wire.items,
        })
    }
}

/// Schema of the `apiVersion` property every Kubernetes object has.
fn api_version_property() -> Schema {
    json_schema!({
        "description": "APIVersion defines the versioned schema of this representation of an object. Servers should convert recognized schemas to the latest internal value, and may reject unrecognized values. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#resources",
        "type": "string",
    })
}

/// Schema of the `kind` property every Kubernetes object has.
fn kind_property() -> Schema {
    json_schema!({
        "description": "Kind is a string value representing the REST resource this object represents. Servers may infer this from the endpoint the client submits requests to. Cannot be updated. In CamelCase. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds",
        "type": "string",
    })
}

/// A reference to `T`'s schema with a field description next to it.
fn described<T: JsonSchema>(generator: &mut SchemaGenerator, description: &str) -> Schema {
    let mut schema = generator.subschema_for::<T>();
    schema.insert("description".into(), description.into());
    schema
}

impl JsonSchema for CloneSet {
    fn schema_name() -> Cow<'static, str> {
        "io.kruise.apps.v1alpha1.CloneSet".into()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "CloneSet manages a set of interchangeable pods, like a ReplicaSet, and can also update them in place and roll out by partition.",
            "type": "object",
            "properties": {
                "apiVersion": api_version_property(),
                "kind": kind_property(),
                "metadata": described::<ObjectMeta>(generator, "Standard object's metadata. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata"),
                "spec": described::<CloneSetSpec>(generator, "The desired state of the CloneSet."),
                "status": described::<CloneSetStatus>(generator, "The state of the CloneSet as last observed by its controller."),
            },
        })
    }
}

impl JsonSchema for CloneSetList {
    fn schema_name() -> Cow<'static, str> {
        "io.kruise.apps.v1alpha1.CloneSetList".into()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "CloneSetList is a list of CloneSets.",
            "type": "object",
            "properties": {
                "apiVersion": api_version_property(),
                "kind": kind_property(),
                "metadata": described::<ListMeta>(generator, "Standard list metadata. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata"),
                "items": described::<Vec<CloneSet>>(generator, "The CloneSets."),
            },
            "required": ["items"],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A manifest in the style of OpenKruise's CloneSet user manual, touching every part of the
    /// spec.
    const MANIFEST: &str = r#"
apiVersion: apps.kruise.io/v1alpha1
kind: CloneSet
metadata:
  labels:
    app: sample
  name: sample
spec:
  replicas: 5
  selector:
    matchLabels:
      app: sample
  template:
    metadata:
      labels:
        app: sample
    spec:
      containers:
      - name: nginx
        image: nginx:alpine
        volumeMounts:
        - name: data-vol
          mountPath: /usr/share/nginx/html
  volumeClaimTemplates:
    - metadata:
        name: data-vol
      spec:
        accessModes: [ "ReadWriteOnce" ]
        resources:
          requests:
            storage: 20Gi
  scaleStrategy:
    podsToDelete:
    - sample-9m4hp
    maxUnavailable: 1
    disablePVCReuse: true
  updateStrategy:
    type: InPlaceIfPossible
    partition: 30%
    maxUnavailable: 20%
    maxSurge: 3
    paused: false
    inPlaceUpdateStrategy:
      gracePeriodSeconds: 10
    priorityStrategy:
      weightPriority:
      - weight: 50
        matchSelector:
          matchLabels:
            test-key: foo
    scatterStrategy:
    - key: foo
      value: bar
  revisionHistoryLimit: 10
  minReadySeconds: 5
  lifecycle:
    preDelete:
      finalizersHandler:
      - example.com/unready-blocker
      markPodNotReady: true
    inPlaceUpdate:
      labelsHandler:
        example.com/unready-blocker: "true"
status:
  observedGeneration: 2
  replicas: 5
  readyReplicas: 4
  availableReplicas: 4
  updatedReplicas: 3
  updatedReadyReplicas: 2
  expectedUpdatedReplicas: 3
  updateRevision: sample-d4d4fb5bd
  currentRevision: sample-56dfb978d4
  collisionCount: 0
  labelSelector: app=sample
"#;

    #[test]
    fn kruise_manifest_decodes_into_the_fields_it_names() {
        let cs: CloneSet = crate::yaml::from_str(MANIFEST).expect("manifest decodes");
        assert_eq!(cs.metadata.name.as_deref(), Some("sample"));
        let spec = cs.spec.as_ref().expect("spec");
        assert_eq!(spec.replicas, Some(5));
        assert_eq!(
            spec.selector
                .match_labels
                .as_ref()
                .and_then(|l| l.get("app")),
            Some(&"sample".to_string())
        );
        let claims = spec.volume_claim_templates.as_ref().expect("claims");
        assert_eq!(claims[0].metadata.name.as_deref(), Some("data-vol"));
        let scale = spec.scale_strategy.as_ref().expect("scale strategy");
        assert_eq!(scale.pods_to_delete, Some(vec!["sample-9m4hp".to_string()]));
        assert_eq!(scale.max_unavailable, Some(IntOrString::Int(1)));
        assert_eq!(scale.disable_pvc_reuse, Some(true));
        let update = spec.update_strategy.as_ref().expect("update strategy");
        assert_eq!(
            update.type_.as_deref(),
            Some(update_strategy_type::IN_PLACE_IF_POSSIBLE)
        );
        assert_eq!(update.partition, Some(IntOrString::String("30%".into())));
        assert_eq!(update.max_surge, Some(IntOrString::Int(3)));
        assert_eq!(update.paused, Some(false));
        assert_eq!(
            update
                .in_place_update_strategy
                .as_ref()
                .and_then(|s| s.grace_period_seconds),
            Some(10)
        );
        let weights = update
            .priority_strategy
            .as_ref()
            .and_then(|p| p.weight_priority.as_ref())
            .expect("weights");
        assert_eq!(weights[0].weight, 50);
        assert_eq!(
            update.scatter_strategy,
            Some(vec![UpdateScatterTerm {
                key: "foo".into(),
                value: "bar".into()
            }])
        );
        let lifecycle = spec.lifecycle.as_ref().expect("lifecycle");
        let pre_delete = lifecycle.pre_delete.as_ref().expect("preDelete");
        assert_eq!(pre_delete.mark_pod_not_ready, Some(true));
        assert!(lifecycle.in_place_update.is_some());
        assert!(lifecycle.pre_normal.is_none());
        let status = cs.status.as_ref().expect("status");
        assert_eq!(
            (
                status.replicas,
                status.ready_replicas,
                status.updated_ready_replicas
            ),
            (5, 4, 2)
        );
        assert_eq!(status.expected_updated_replicas, Some(3));
        assert_eq!(status.label_selector.as_deref(), Some("app=sample"));
    }

    #[test]
    fn manifest_round_trips_without_losing_or_inventing_fields() {
        let mut original: serde_json::Value = crate::yaml::from_str(MANIFEST).expect("yaml");
        let typed: CloneSet = serde_json::from_value(original.clone()).expect("typed");
        let written = serde_json::to_value(&typed).expect("serialize");
        // k8s-openapi writes the type meta of embedded claims, as it does for StatefulSets.
        original["spec"]["volumeClaimTemplates"][0]["apiVersion"] = "v1".into();
        original["spec"]["volumeClaimTemplates"][0]["kind"] = "PersistentVolumeClaim".into();
        assert_eq!(written, original);
        let again: CloneSet = serde_json::from_value(written).expect("decode again");
        assert_eq!(again, typed);
    }

    #[test]
    fn unset_fields_are_left_out_but_status_counters_are_always_written() {
        let cs = CloneSet {
            metadata: ObjectMeta {
                name: Some("x".into()),
                ..ObjectMeta::default()
            },
            spec: Some(CloneSetSpec::default()),
            status: Some(CloneSetStatus::default()),
        };
        let written = serde_json::to_value(&cs).expect("serialize");
        assert_eq!(
            written,
            serde_json::json!({
                "apiVersion": "apps.kruise.io/v1alpha1",
                "kind": "CloneSet",
                "metadata": {"name": "x"},
                "spec": {"selector": {}, "template": {}},
                "status": {
                    "replicas": 0, "readyReplicas": 0, "availableReplicas": 0,
                    "updatedReplicas": 0, "updatedReadyReplicas": 0
                },
            })
        );
    }

    #[test]
    fn wrong_type_meta_is_rejected_and_missing_type_meta_is_accepted() {
        let cases = [
            (r#"{"apiVersion":"apps/v1","kind":"CloneSet"}"#, false),
            (
                r#"{"apiVersion":"apps.kruise.io/v1alpha1","kind":"Deployment"}"#,
                false,
            ),
            (
                r#"{"apiVersion":"apps.kruise.io/v1alpha1","kind":"CloneSet"}"#,
                true,
            ),
            (r#"{"metadata":{"name":"a"}}"#, true),
        ];
        for (input, ok) in cases {
            assert_eq!(
                serde_json::from_str::<CloneSet>(input).is_ok(),
                ok,
                "{input}"
            );
        }
    }

    #[test]
    fn list_round_trips_with_its_own_kind() {
        let list = CloneSetList {
            metadata: ListMeta {
                resource_version: Some("7".into()),
                ..ListMeta::default()
            },
            items: vec![CloneSet::default()],
        };
        let written = serde_json::to_value(&list).expect("serialize");
        assert_eq!(written["kind"], "CloneSetList");
        assert_eq!(written["items"][0]["kind"], "CloneSet");
        let back: CloneSetList = serde_json::from_value(written).expect("decode");
        assert_eq!(back, list);
        assert!(serde_json::from_str::<CloneSetList>(r#"{"kind":"CloneSet"}"#).is_err());
    }

    #[test]
    fn resource_traits_describe_the_served_resource() {
        use k8s_openapi::{ListableResource, Resource};
        let info = crate::resources::find_by_kind(CloneSet::API_VERSION, CloneSet::KIND)
            .expect("registered");
        assert_eq!(info.plural, CloneSet::URL_PATH_SEGMENT);
        assert_eq!(info.list_kind(), CloneSet::LIST_KIND);
        assert_eq!(
            (CloneSet::GROUP, CloneSet::VERSION),
            (info.group, info.version)
        );
    }

    #[test]
    fn schema_names_follow_the_crd_definition_names() {
        let mut generator = schemars::SchemaGenerator::default();
        let schema = generator.subschema_for::<CloneSet>();
        assert_eq!(
            schema.get("$ref").and_then(|r| r.as_str()),
            Some("#/$defs/io.kruise.apps.v1alpha1.CloneSet")
        );
        let definitions = generator.definitions();
        let names: Vec<&String> = definitions.keys().collect();
        for name in [
            "io.kruise.apps.v1alpha1.CloneSetSpec",
            "io.kruise.apps.v1alpha1.CloneSetUpdateStrategy",
            "io.kruise.apps.pub.Lifecycle",
            "io.k8s.api.core.v1.PodTemplateSpec",
        ] {
            assert!(definitions.contains_key(name), "{name} not in {names:?}");
        }
        let list = generator.subschema_for::<CloneSetList>();
        assert_eq!(
            list.get("$ref").and_then(|r| r.as_str()),
            Some("#/$defs/io.kruise.apps.v1alpha1.CloneSetList")
        );
        let definitions = generator.definitions();
        assert_eq!(
            definitions["io.kruise.apps.v1alpha1.CloneSetList"]["properties"]["items"]["items"]
                ["$ref"],
            "#/$defs/io.kruise.apps.v1alpha1.CloneSet"
        );
        let spec = &definitions["io.kruise.apps.v1alpha1.CloneSetSpec"];
        assert_eq!(
            spec["required"],
            serde_json::json!(["selector", "template"])
        );
        assert!(spec["properties"]["replicas"]["description"]
            .as_str()
            .is_some_and(|d| d.contains("Defaults to 1")));
    }
}
