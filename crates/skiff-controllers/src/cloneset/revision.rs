//! A CloneSet's revision history: ControllerRevisions holding past pod templates, their names,
//! which one is current, which ones to prune, and what changed between two of them.
//!
//! A revision stores the template as the patch OpenKruise writes (`{"spec":{"template":{...,
//! "$patch":"replace"}}}`) and is named `<cloneset>-<hash>`. The hash is an FNV-1a digest of
//! that data and the collision count, rendered in the vowel-free alphabet, so names are
//! deterministic; the digest input is Skiff's canonical JSON, so values differ from a real
//! cluster's while format and collision handling are the same.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::apps::v1::ControllerRevision;
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::runtime::RawExtension;
use serde_json::{json, Map, Value};
use skiff_api::cloneset::CloneSet;

use crate::deployment::safe_encode_string;

const FNV_OFFSET_BASIS: u32 = 2_166_136_261;
const FNV_PRIME: u32 = 16_777_619;
/// Longest prefix of a revision name, leaving room for `-` and the hash.
const MAX_PREFIX: usize = 223;

fn fnv1a32(hash: u32, bytes: &[u8]) -> u32 {
    bytes
        .iter()
        .fold(hash, |h, b| (h ^ u32::from(*b)).wrapping_mul(FNV_PRIME))
}

/// The data a revision stores for `template`.
pub fn revision_data(template: &PodTemplateSpec) -> Value {
    let mut template = serde_json::to_value(template).unwrap_or_else(|_| json!({}));
    if let Some(map) = template.as_object_mut() {
        map.insert("$patch".into(), "replace".into());
    }
    json!({"spec": {"template": template}})
}

/// The hash part of a revision name (`HashControllerRevision`): FNV-1a over the data, then
/// over the decimal collision count when there is one.
pub fn hash_revision(data: &Value, collision_count: Option<i32>) -> String {
    let bytes = serde_json::to_vec(data).unwrap_or_default();
    let mut hash = fnv1a32(FNV_OFFSET_BASIS, &bytes);
    if let Some(count) = collision_count {
        hash = fnv1a32(hash, count.to_string().as_bytes());
    }
    safe_encode_string(&hash.to_string())
}

/// `<cloneset>-<hash>`, the CloneSet name cut to fit.
pub fn revision_name(cloneset: &str, hash: &str) -> String {
    let mut end = cloneset.len().min(MAX_PREFIX);
    while !cloneset.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}-{hash}", &cloneset[..end])
}

/// The owner reference every object a CloneSet creates carries.
pub fn owner_reference(cs: &CloneSet) -> OwnerReference {
    OwnerReference {
        api_version: skiff_api::cloneset::API_VERSION.to_string(),
        kind: "CloneSet".to_string(),
        name: cs.metadata.name.clone().unwrap_or_default(),
        uid: cs.metadata.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// The revision the CloneSet's template would be stored as, numbered `number`.
pub fn new_revision(cs: &CloneSet, number: i64, collision_count: i32) -> ControllerRevision {
    let template = cs
        .spec
        .as_ref()
        .map(|s| s.template.clone())
        .unwrap_or_default();
    let data = revision_data(&template);
    let name = revision_name(
        cs.metadata.name.as_deref().unwrap_or(""),
        &hash_revision(&data, Some(collision_count)),
    );
    ControllerRevision {
        metadata: ObjectMeta {
            name: Some(name),
            namespace: cs.metadata.namespace.clone(),
            labels: template.metadata.as_ref().and_then(|m| m.labels.clone()),
            owner_references: Some(vec![owner_reference(cs)]),
            ..ObjectMeta::default()
        },
        data: Some(RawExtension(data)),
        revision: number,
    }
}

/// The pod template a revision holds, without the patch directive.
pub fn template_of(revision: &ControllerRevision) -> Option<PodTemplateSpec> {
    let mut template = revision.data.as_ref()?.0.pointer("/spec/template")?.clone();
    if let Some(map) = template.as_object_mut() {
        map.remove("$patch");
    }
    serde_json::from_value(template).ok()
}

/// Whether two revisions hold the same template.
pub fn same_template(a: &ControllerRevision, b: &ControllerRevision) -> bool {
    match (template_of(a), template_of(b)) {
        (Some(a), Some(b)) => a == b,
        _ => false,
    }
}

/// The number the next revision gets: one above the highest.
pub fn next_revision_number(revisions: &[ControllerRevision]) -> i64 {
    revisions.iter().map(|r| r.revision).max().unwrap_or(0) + 1
}

/// Sorts revisions oldest first (by number, then creation time, then name).
pub fn sort_revisions(revisions: &mut [ControllerRevision]) {
    revisions.sort_by(|a, b| {
        a.revision
            .cmp(&b.revision)
            .then_with(|| {
                let ta = a.metadata.creation_timestamp.as_ref().map(|t| t.0);
                let tb = b.metadata.creation_timestamp.as_ref().map(|t| t.0);
                ta.cmp(&tb)
            })
            .then_with(|| a.metadata.name.cmp(&b.metadata.name))
    });
}

/// How the update revision is obtained this sync.
#[derive(Debug, Clone, PartialEq)]
pub enum UpdateRevisionChoice {
    /// The newest stored revision already holds the template.
    Latest(ControllerRevision),
    /// An older revision holds it (a rollback): renumber it to the next number.
    Renumber(ControllerRevision, i64),
    /// No revision holds it: create this one.
    Create(ControllerRevision),
}

/// Picks the update revision among `revisions` (sorted oldest first) for the CloneSet's current
/// template, as `getActiveRevisions` does.
pub fn choose_update_revision(
    cs: &CloneSet,
    revisions: &[ControllerRevision],
    collision_count: i32,
) -> UpdateRevisionChoice {
    let next = next_revision_number(revisions);
    let candidate = new_revision(cs, next, collision_count);
    let equal = revisions.iter().rfind(|r| same_template(r, &candidate));
    match (equal, revisions.last()) {
        (Some(found), Some(latest)) if found.metadata.name == latest.metadata.name => {
            UpdateRevisionChoice::Latest(found.clone())
        }
        (Some(found), _) => UpdateRevisionChoice::Renumber(found.clone(), next),
        (None, _) => UpdateRevisionChoice::Create(candidate),
    }
}

/// Revisions to delete: those not current, not update and not the label of any live pod,
/// beyond the newest `limit` of them, oldest first (`truncateHistory`).
pub fn revisions_to_prune<'a>(
    revisions: &'a [ControllerRevision],
    live_pod_revisions: &BTreeSet<String>,
    current: &str,
    update: &str,
    limit: i32,
) -> Vec<&'a ControllerRevision> {
    let non_live: Vec<&ControllerRevision> = revisions
        .iter()
        .filter(|r| {
            let name = r.metadata.name.as_deref().unwrap_or("");
            name != current && name != update && !live_pod_revisions.contains(name)
        })
        .collect();
    let excess = non_live.len().saturating_sub(limit.max(0) as usize);
    non_live.into_iter().take(excess).collect()
}

/// What an in-place update changes on a pod: container images by container name, and labels
/// and annotations from the template (a JSON merge patch of `metadata`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct InPlaceChange {
    /// The revision the pod moves to.
    pub revision: String,
    /// New image per container name.
    pub container_images: BTreeMap<String, String>,
    /// Merge patch of `metadata.labels` / `metadata.annotations`, if the template's changed.
    pub metadata_patch: Option<Value>,
}

fn object(value: &Value) -> Map<String, Value> {
    value.as_object().cloned().unwrap_or_default()
}

/// Whether going from `old` to `new` can be done in place, and what it changes
/// (`defaultCalculateInPlaceUpdateSpec` with the default feature gates): only replacing the
/// images of existing containers, plus any label or annotation change. Anything else (a new
/// container, an env change, a command change, ...) needs the pod recreated.
pub fn in_place_change(
    old: &PodTemplateSpec,
    new: &PodTemplateSpec,
    revision: &str,
) -> Option<InPlaceChange> {
    let old_value = serde_json::to_value(old).ok()?;
    let new_value = serde_json::to_value(new).ok()?;
    let old_spec = object(&old_value["spec"]);
    let new_spec = object(&new_value["spec"]);
    let keys: BTreeSet<&String> = old_spec.keys().chain(new_spec.keys()).collect();
    let mut change = InPlaceChange {
        revision: revision.to_string(),
        ..InPlaceChange::default()
    };
    for key in keys {
        if key == "containers" {
            continue;
        }
        if old_spec.get(key) != new_spec.get(key) {
            return None;
        }
    }
    let empty = Vec::new();
    let old_containers = old_spec
        .get("containers")
        .and_then(Value::as_array)
        .unwrap_or(&empty);
    let new_containers = new_spec
        .get("containers")
        .and_then(Value::as_array)
        .unwrap_or(&empty);
    if old_containers.len() != new_containers.len() {
        return None;
    }
    for (old_c, new_c) in old_containers.iter().zip(new_containers) {
        let (mut o, mut n) = (object(old_c), object(new_c));
        let (old_image, new_image) = (o.remove("image"), n.remove("image"));
        if o != n {
            return None;
        }
        match (old_image, new_image) {
            (Some(a), Some(b)) if a == b => {}
            (Some(_), Some(Value::String(image))) => {
                let name = o.get("name").and_then(Value::as_str).unwrap_or("");
                change.container_images.insert(name.to_string(), image);
            }
            (None, None) => {}
            _ => return None,
        }
    }
    let mut metadata_patch = Map::new();
    for field in ["labels", "annotations"] {
        let old_map = object(&old_value["metadata"][field]);
        let new_map = object(&new_value["metadata"][field]);
        let mut patch = Map::new();
        for (k, v) in &new_map {
            if old_map.get(k) != Some(v) {
                patch.insert(k.clone(), v.clone());
            }
        }
        for k in old_map.keys() {
            if !new_map.contains_key(k) {
                patch.insert(k.clone(), Value::Null);
            }
        }
        if !patch.is_empty() {
            metadata_patch.insert(field.to_string(), Value::Object(patch));
        }
    }
    if !metadata_patch.is_empty() {
        change.metadata_patch = Some(json!({ "metadata": metadata_patch }));
    }
    Some(change)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn template(image: &str, env: Option<&str>, label: &str) -> PodTemplateSpec {
        let mut container = json!({"name": "web", "image": image});
        if let Some(env) = env {
            container["env"] = json!([{"name": "X", "value": env}]);
        }
        serde_json::from_value(json!({
            "metadata": {"labels": {"app": "web", "tier": label}},
            "spec": {"containers": [container]},
        }))
        .expect("template")
    }

    fn cloneset(t: PodTemplateSpec) -> CloneSet {
        CloneSet {
            metadata: ObjectMeta {
                name: Some("web".into()),
                namespace: Some("default".into()),
                uid: Some("u1".into()),
                ..ObjectMeta::default()
            },
            spec: Some(skiff_api::cloneset::CloneSetSpec {
                template: t,
                ..Default::default()
            }),
            status: None,
        }
    }

    #[test]
    fn image_only_changes_are_in_place_with_label_patch() {
        let old = template("nginx:1", None, "a");
        let new = template("nginx:2", None, "b");
        let change = in_place_change(&old, &new, "web-x").expect("in place");
        assert_eq!(
            change.container_images,
            BTreeMap::from([("web".to_string(), "nginx:2".to_string())])
        );
        assert_eq!(
            change.metadata_patch,
            Some(json!({"metadata": {"labels": {"tier": "b"}}}))
        );
    }

    #[test]
    fn other_changes_need_recreate() {
        let old = template("nginx:1", None, "a");
        assert!(in_place_change(&old, &template("nginx:2", Some("1"), "a"), "r").is_none());
        let mut two = template("nginx:1", None, "a");
        if let Some(spec) = two.spec.as_mut() {
            let extra = spec.containers[0].clone();
            spec.containers.push(extra);
        }
        assert!(in_place_change(&old, &two, "r").is_none());
    }

    #[test]
    fn names_are_deterministic_and_collisions_change_them() {
        let cs = cloneset(template("nginx:1", None, "a"));
        let a = new_revision(&cs, 1, 0);
        let b = new_revision(&cs, 7, 0);
        let c = new_revision(&cs, 1, 1);
        assert_eq!(a.metadata.name, b.metadata.name);
        assert_ne!(a.metadata.name, c.metadata.name);
        assert!(a
            .metadata
            .name
            .as_deref()
            .is_some_and(|n| n.starts_with("web-")));
        assert_eq!(template_of(&a), cs.spec.map(|s| s.template));
    }

    #[test]
    fn update_revision_is_reused_renumbered_or_created() {
        let v1 = cloneset(template("nginx:1", None, "a"));
        let v2 = cloneset(template("nginx:2", None, "a"));
        let r1 = new_revision(&v1, 1, 0);
        let r2 = new_revision(&v2, 2, 0);
        let history = vec![r1.clone(), r2.clone()];
        assert_eq!(
            choose_update_revision(&v2, &history, 0),
            UpdateRevisionChoice::Latest(r2.clone())
        );
        assert_eq!(
            choose_update_revision(&v1, &history, 0),
            UpdateRevisionChoice::Renumber(r1.clone(), 3)
        );
        let v3 = cloneset(template("nginx:3", None, "a"));
        assert!(matches!(
            choose_update_revision(&v3, &history, 0),
            UpdateRevisionChoice::Create(r) if r.revision == 3
        ));
    }

    #[test]
    fn pruning_keeps_live_current_update_and_the_newest() {
        let revs: Vec<ControllerRevision> = (1..=5)
            .map(|i| {
                let mut r = new_revision(&cloneset(template(&format!("i:{i}"), None, "a")), i, 0);
                r.metadata.name = Some(format!("r{i}"));
                r
            })
            .collect();
        let live = BTreeSet::from(["r2".to_string()]);
        let pruned: Vec<&str> = revisions_to_prune(&revs, &live, "r4", "r5", 1)
            .into_iter()
            .filter_map(|r| r.metadata.name.as_deref())
            .collect();
        assert_eq!(pruned, ["r1"]);
    }
}
