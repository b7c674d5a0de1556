//! In-place updates of one pod, as OpenKruise's `inplaceupdate` package performs them: the
//! annotations that record an update in progress, the pod edits that start it, finish its grace
//! period and complete it, and the check that the node has run the new images.
//!
//! Every function here takes the freshest copy of the pod and returns the edited copy; the
//! controller writes it back with the pod's resourceVersion as precondition, so an edit made on
//! a stale copy fails and is redone on the next sync.

use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Pod, PodCondition};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use skiff_api::cloneset::{
    IN_PLACE_UPDATE_READY_CONDITION, LIFECYCLE_STATE_LABEL, LIFECYCLE_TIMESTAMP_ANNOTATION,
};

use super::pods::{has_in_place_readiness_gate, is_at_revision};
use super::revision::InPlaceChange;
use super::CONTROLLER_REVISION_HASH_LABEL;

/// Annotation recording the in-place update in progress ([`InPlaceUpdateState`]).
pub const IN_PLACE_UPDATE_STATE_ANNOTATION: &str = "apps.kruise.io/inplace-update-state";
/// Annotation holding the change to apply once the grace period ends ([`GraceSpec`]).
pub const IN_PLACE_UPDATE_GRACE_ANNOTATION: &str = "apps.kruise.io/inplace-update-grace";
/// Reason on `InPlaceUpdateReady=False` while an update runs.
pub const START_IN_PLACE_UPDATE_REASON: &str = "StartInPlaceUpdate";

/// The image a container ran before its in-place update; a different imageID afterwards means
/// the node restarted it on the new image.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ContainerImageRecord {
    /// The container status' imageID before the update.
    #[serde(rename = "imageID", default, skip_serializing_if = "String::is_empty")]
    pub image_id: String,
}

/// One batch of containers patched by an in-place update.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContainerBatch {
    /// When the batch was patched.
    pub timestamp: Time,
    /// The containers patched.
    pub containers: Vec<String>,
}

/// The `apps.kruise.io/inplace-update-state` annotation, as OpenKruise writes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InPlaceUpdateState {
    /// The revision the pod is moving to.
    pub revision: String,
    /// When the update started.
    pub update_timestamp: Time,
    /// Per container, the image it ran before; `null` until the images are patched.
    #[serde(default)]
    pub last_container_statuses: Option<BTreeMap<String, ContainerImageRecord>>,
    /// Whether images change.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub update_images: bool,
    /// The batches of containers patched so far.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub container_batches_record: Vec<ContainerBatch>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// The `apps.kruise.io/inplace-update-grace` annotation: the change held back until the grace
/// period has passed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GraceSpec {
    /// The revision the change belongs to.
    pub revision: String,
    /// New image per container.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub container_images: BTreeMap<String, String>,
    /// The metadata merge patch, base64 as Go writes byte slices.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta_data_patch: Option<String>,
    /// Whether env values from metadata change (never, without a node daemon).
    #[serde(default, skip_serializing_if = "is_false")]
    pub update_env_from_metadata: bool,
    /// The grace period.
    #[serde(default)]
    pub grace_seconds: i32,
}

fn annotation<'a>(pod: &'a Pod, key: &str) -> Option<&'a str> {
    pod.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(key))
        .map(String::as_str)
}

/// The pod's in-place update state, if it has a readable one.
pub fn update_state(pod: &Pod) -> Option<InPlaceUpdateState> {
    serde_json::from_str(annotation(pod, IN_PLACE_UPDATE_STATE_ANNOTATION)?).ok()
}

/// The change the pod waits to apply, if it is in a grace period.
pub fn grace_spec(pod: &Pod) -> Option<GraceSpec> {
    serde_json::from_str(annotation(pod, IN_PLACE_UPDATE_GRACE_ANNOTATION)?).ok()
}

/// Whether the pod is in an in-place grace period.
pub fn in_grace(pod: &Pod) -> bool {
    annotation(pod, IN_PLACE_UPDATE_GRACE_ANNOTATION).is_some_and(|s| !s.is_empty())
}

fn rfc3339_seconds(now: Timestamp) -> String {
    // Go's time.RFC3339 layout in UTC: whole seconds and a `Z`.
    Timestamp::from_second(now.as_second())
        .unwrap_or(now)
        .to_string()
}

fn set_label(pod: &mut Pod, key: &str, value: &str) {
    pod.metadata
        .labels
        .get_or_insert_with(BTreeMap::new)
        .insert(key.to_string(), value.to_string());
}

fn set_annotation(pod: &mut Pod, key: &str, value: String) {
    pod.metadata
        .annotations
        .get_or_insert_with(BTreeMap::new)
        .insert(key.to_string(), value);
}

fn remove_annotation(pod: &mut Pod, key: &str) {
    if let Some(a) = pod.metadata.annotations.as_mut() {
        a.remove(key);
    }
}

/// Sets the pod's lifecycle state and its change time (`SetPodLifecycle`).
pub fn set_lifecycle(pod: &mut Pod, state: &str, now: Timestamp) {
    set_label(pod, LIFECYCLE_STATE_LABEL, state);
    set_annotation(pod, LIFECYCLE_TIMESTAMP_ANNOTATION, rfc3339_seconds(now));
}

/// The merge patch that sets a lifecycle state (what `UpdatePodLifecycle` sends).
pub fn lifecycle_patch(state: &str, now: Timestamp) -> Value {
    serde_json::json!({"metadata": {
        "labels": {LIFECYCLE_STATE_LABEL: state},
        "annotations": {LIFECYCLE_TIMESTAMP_ANNOTATION: rfc3339_seconds(now)},
    }})
}

fn apply_merge_patch(target: &mut Value, patch: &Value) {
    match (target.as_object_mut(), patch.as_object()) {
        (Some(t), Some(p)) => {
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else if v.is_object() {
                    let entry = t
                        .entry(k.clone())
                        .or_insert_with(|| Value::Object(Default::default()));
                    if !entry.is_object() {
                        *entry = Value::Object(Default::default());
                    }
                    apply_merge_patch(entry, v);
                } else {
                    t.insert(k.clone(), v.clone());
                }
            }
        }
        _ => *target = patch.clone(),
    }
}

/// Applies the change to the pod now (`defaultPatchUpdateSpecToPod`): metadata, then images,
/// recording the imageIDs the changed containers ran so completion can be detected.
fn apply_change(
    pod: &Pod,
    change: &GraceSpec,
    state: &mut InPlaceUpdateState,
    now: Timestamp,
) -> Pod {
    let mut pod = pod.clone();
    if let Some(patch) = change
        .meta_data_patch
        .as_ref()
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
        .and_then(|bytes| serde_json::from_slice::<Value>(&bytes).ok())
    {
        if let Ok(mut value) = serde_json::to_value(&pod) {
            apply_merge_patch(&mut value, &patch);
            if let Ok(patched) = serde_json::from_value(value) {
                pod = patched;
            }
        }
    }
    let mut changed = Vec::new();
    if let Some(spec) = pod.spec.as_mut() {
        for container in &mut spec.containers {
            if let Some(image) = change.container_images.get(&container.name) {
                container.image = Some(image.clone());
                changed.push(container.name.clone());
            }
        }
    }
    let statuses = pod
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.clone())
        .unwrap_or_default();
    for status in statuses.iter().filter(|s| changed.contains(&s.name)) {
        state
            .last_container_statuses
            .get_or_insert_with(BTreeMap::new)
            .insert(
                status.name.clone(),
                ContainerImageRecord {
                    image_id: status.image_id.clone(),
                },
            );
    }
    changed.sort();
    state.container_batches_record.push(ContainerBatch {
        timestamp: Time(Timestamp::from_second(now.as_second()).unwrap_or(now)),
        containers: changed,
    });
    if let Ok(json) = serde_json::to_string(state) {
        set_annotation(&mut pod, IN_PLACE_UPDATE_STATE_ANNOTATION, json);
    }
    pod
}

/// The pod edit that starts an in-place update (`updatePodInPlace`): the revision label moves
/// to the target (the pod counts as updated from now on), the lifecycle becomes `Updating`, the
/// state annotation is written, and the images change now or, with a grace period, are parked
/// in the grace annotation.
pub fn start_update(pod: &Pod, change: &InPlaceChange, grace_seconds: i32, now: Timestamp) -> Pod {
    let mut pod = pod.clone();
    set_label(&mut pod, CONTROLLER_REVISION_HASH_LABEL, &change.revision);
    set_label(
        &mut pod,
        "pod-template-hash",
        super::pods::short_hash(&change.revision),
    );
    set_lifecycle(&mut pod, super::pods::lifecycle_state::UPDATING, now);
    let mut state = InPlaceUpdateState {
        revision: change.revision.clone(),
        update_timestamp: Time(now),
        last_container_statuses: None,
        update_images: !change.container_images.is_empty(),
        container_batches_record: Vec::new(),
    };
    let spec = GraceSpec {
        revision: change.revision.clone(),
        container_images: change.container_images.clone(),
        meta_data_patch: change
            .metadata_patch
            .as_ref()
            .map(|p| base64::engine::general_purpose::STANDARD.encode(p.to_string().as_bytes())),
        update_env_from_metadata: false,
        grace_seconds,
    };
    if let Ok(json) = serde_json::to_string(&state) {
        set_annotation(&mut pod, IN_PLACE_UPDATE_STATE_ANNOTATION, json);
    }
    if grace_seconds <= 0 {
        let mut patched = apply_change(&pod, &spec, &mut state, now);
        remove_annotation(&mut patched, IN_PLACE_UPDATE_GRACE_ANNOTATION);
        patched
    } else {
        if let Ok(json) = serde_json::to_string(&spec) {
            set_annotation(&mut pod, IN_PLACE_UPDATE_GRACE_ANNOTATION, json);
        }
        pod
    }
}

/// What to do with a pod in its grace period.
#[derive(Debug, Clone, PartialEq)]
pub enum GraceStep {
    /// Not in a grace period.
    None,
    /// Still waiting; look again after this long (whole seconds, rounded up).
    Wait(Duration),
    /// Write this pod: the images applied (or, if the pod's revision changed meanwhile, the
    /// stale grace annotation dropped).
    Write(Box<Pod>),
}

/// Finishes the grace period once it has passed (`finishGracePeriod`).
pub fn finish_grace(pod: &Pod, now: Timestamp) -> GraceStep {
    if !in_grace(pod) {
        return GraceStep::None;
    }
    let (Some(spec), Some(mut state)) = (grace_spec(pod), update_state(pod)) else {
        // Unreadable annotations are dropped so the pod can be updated afresh.
        let mut cleaned = pod.clone();
        remove_annotation(&mut cleaned, IN_PLACE_UPDATE_GRACE_ANNOTATION);
        return GraceStep::Write(Box::new(cleaned));
    };
    if !is_at_revision(pod, &spec.revision) {
        let mut cleaned = pod.clone();
        remove_annotation(&mut cleaned, IN_PLACE_UPDATE_GRACE_ANNOTATION);
        return GraceStep::Write(Box::new(cleaned));
    }
    let grace = i128::from(spec.grace_seconds) * 1_000_000_000;
    let elapsed = now.as_nanosecond() - state.update_timestamp.0.as_nanosecond();
    if elapsed < grace {
        let left = grace - elapsed;
        let seconds = (left + 999_999_999) / 1_000_000_000;
        return GraceStep::Wait(Duration::from_secs(u64::try_from(seconds).unwrap_or(1)));
    }
    let mut patched = apply_change(pod, &spec, &mut state, now);
    remove_annotation(&mut patched, IN_PLACE_UPDATE_GRACE_ANNOTATION);
    GraceStep::Write(Box::new(patched))
}

/// Whether the node runs the images an in-place update asked for
/// (`DefaultCheckInPlaceUpdateCompleted`): not in grace, and every changed container reports a
/// new imageID, or the same imageID with the spec's image. A pod with no update state has
/// nothing pending.
pub fn update_completed(pod: &Pod) -> Result<(), String> {
    if in_grace(pod) {
        return Err("still in grace period of in-place update".into());
    }
    if annotation(pod, IN_PLACE_UPDATE_STATE_ANNOTATION).is_none() {
        return Ok(());
    }
    let state = update_state(pod).ok_or("unreadable in-place update state")?;
    let mut pending = state.last_container_statuses.unwrap_or_default();
    let images: BTreeMap<&str, String> = pod
        .spec
        .as_ref()
        .map(|s| {
            s.containers
                .iter()
                .map(|c| {
                    let image = c.image.clone().unwrap_or_default();
                    let image = if image.contains(':') {
                        image
                    } else {
                        format!("{image}:latest")
                    };
                    (c.name.as_str(), image)
                })
                .collect()
        })
        .unwrap_or_default();
    for status in pod
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .into_iter()
        .flatten()
    {
        if let Some(old) = pending.remove(&status.name) {
            if old.image_id == status.image_id
                && images.get(status.name.as_str()) != Some(&status.image)
            {
                return Err(format!("container {} imageID not changed", status.name));
            }
        }
    }
    if !pending.is_empty() {
        let names: Vec<&String> = pending.keys().collect();
        return Err(format!("not found statuses of containers {names:?}"));
    }
    Ok(())
}

/// The pod with its `InPlaceUpdateReady` condition set; turning it False also turns `Ready`
/// False at once, so endpoints drop the pod before its containers change (the node turns
/// `Ready` back True itself). `None` when the pod has no readiness gate or the condition is
/// already as asked.
pub fn with_in_place_condition(pod: &Pod, ready: bool, now: Timestamp) -> Option<Pod> {
    if !has_in_place_readiness_gate(pod) {
        return None;
    }
    let (status, reason) = if ready {
        ("True", None)
    } else {
        ("False", Some(START_IN_PLACE_UPDATE_REASON.to_string()))
    };
    let current = super::pods::in_place_update_condition(pod);
    if ready
        && current.is_some_and(|c| c.status == status && c.reason.is_none() && c.message.is_none())
    {
        return None;
    }
    let mut pod = pod.clone();
    let pod_status = pod.status.get_or_insert_with(Default::default);
    let conditions = pod_status.conditions.get_or_insert_with(Vec::new);
    let condition = PodCondition {
        type_: IN_PLACE_UPDATE_READY_CONDITION.to_string(),
        status: status.to_string(),
        reason,
        last_transition_time: Some(Time(now)),
        ..PodCondition::default()
    };
    match conditions
        .iter_mut()
        .find(|c| c.type_ == IN_PLACE_UPDATE_READY_CONDITION)
    {
        Some(existing) => {
            if existing.status == condition.status {
                // Keep the transition time of an unchanged status.
                let since = existing.last_transition_time.clone();
                *existing = PodCondition {
                    last_transition_time: since,
                    ..condition
                };
            } else {
                *existing = condition;
            }
        }
        None => conditions.push(condition),
    }
    if !ready {
        if let Some(ready_condition) = conditions.iter_mut().find(|c| c.type_ == "Ready") {
            if ready_condition.status != "False" {
                ready_condition.status = "False".into();
                ready_condition.reason = Some("ReadinessGatesNotReady".into());
                ready_condition.message = Some(format!(
                    "the status of pod readiness gate \"{IN_PLACE_UPDATE_READY_CONDITION}\" is not \"True\", but False"
                ));
                ready_condition.last_transition_time = Some(Time(now));
            }
        }
    }
    Some(pod)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn running_pod(image: &str, image_id: &str) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "web-abcde", "labels": {"controller-revision-hash": "web-old"}},
            "spec": {
                "containers": [{"name": "web", "image": image}],
                "readinessGates": [{"conditionType": "InPlaceUpdateReady"}],
            },
            "status": {
                "phase": "Running",
                "conditions": [
                    {"type": "InPlaceUpdateReady", "status": "True"},
                    {"type": "Ready", "status": "True"},
                ],
                "containerStatuses": [{
                    "name": "web", "image": image, "imageID": image_id,
                    "ready": true, "restartCount": 0,
                }],
            },
        }))
        .expect("pod")
    }

    fn change() -> InPlaceChange {
        InPlaceChange {
            revision: "web-new".into(),
            container_images: BTreeMap::from([("web".into(), "nginx:2".into())]),
            metadata_patch: None,
        }
    }

    fn image(pod: &Pod) -> Option<&str> {
        pod.spec
            .as_ref()
            .and_then(|s| s.containers[0].image.as_deref())
    }

    #[test]
    fn grace_period_parks_the_images_then_applies_them() {
        let t0 = Timestamp::from_second(1_000).expect("time");
        let pod = running_pod("nginx:1", "id-1");
        let started = start_update(&pod, &change(), 10, t0);
        assert!(is_at_revision(&started, "web-new"));
        assert_eq!(image(&started), Some("nginx:1"));
        assert!(in_grace(&started));
        assert!(update_completed(&started).is_err());
        let later = Timestamp::from_second(1_004).expect("time");
        assert_eq!(
            finish_grace(&started, later),
            GraceStep::Wait(Duration::from_secs(6))
        );
        let done = Timestamp::from_second(1_010).expect("time");
        let GraceStep::Write(applied) = finish_grace(&started, done) else {
            panic!("grace should end");
        };
        assert_eq!(image(&applied), Some("nginx:2"));
        assert!(!in_grace(&applied));
        let state = update_state(&applied).expect("state");
        assert_eq!(
            state
                .last_container_statuses
                .and_then(|m| m.get("web").cloned()),
            Some(ContainerImageRecord {
                image_id: "id-1".into()
            })
        );
        // The node still reports the old image: not complete.
        assert!(update_completed(&applied).is_err());
        let mut restarted = (*applied).clone();
        if let Some(s) = restarted
            .status
            .as_mut()
            .and_then(|s| s.container_statuses.as_mut())
        {
            s[0].image = "nginx:2".into();
            s[0].image_id = "id-2".into();
        }
        assert_eq!(update_completed(&restarted), Ok(()));
    }

    #[test]
    fn without_grace_the_images_change_at_once() {
        let pod = running_pod("nginx:1", "id-1");
        let started = start_update(&pod, &change(), 0, Timestamp::now());
        assert_eq!(image(&started), Some("nginx:2"));
        assert!(!in_grace(&started));
        let state: Value = serde_json::from_str(
            annotation(&started, IN_PLACE_UPDATE_STATE_ANNOTATION).expect("annotation"),
        )
        .expect("json");
        assert_eq!(state["revision"], "web-new");
        assert_eq!(state["updateImages"], true);
        assert_eq!(state["lastContainerStatuses"]["web"]["imageID"], "id-1");
    }

    #[test]
    fn a_revision_change_during_grace_drops_the_parked_change() {
        let pod = running_pod("nginx:1", "id-1");
        let mut started = start_update(&pod, &change(), 10, Timestamp::now());
        set_label(&mut started, CONTROLLER_REVISION_HASH_LABEL, "web-other");
        let GraceStep::Write(cleaned) = finish_grace(&started, Timestamp::now()) else {
            panic!("stale grace should be dropped");
        };
        assert!(!in_grace(&cleaned));
        assert_eq!(image(&cleaned), Some("nginx:1"));
    }

    #[test]
    fn not_ready_condition_also_drops_ready() {
        let pod = running_pod("nginx:1", "id-1");
        let now = Timestamp::now();
        let marked = with_in_place_condition(&pod, false, now).expect("changed");
        let conditions = marked
            .status
            .and_then(|s| s.conditions)
            .expect("conditions");
        let find = |t: &str| {
            conditions
                .iter()
                .find(|c| c.type_ == t)
                .map(|c| c.status.clone())
        };
        assert_eq!(find("InPlaceUpdateReady").as_deref(), Some("False"));
        assert_eq!(find("Ready").as_deref(), Some("False"));
        assert!(with_in_place_condition(&pod, true, now).is_none());
    }
}
