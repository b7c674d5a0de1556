//! The PersistentVolume binder's planner, after kube-controller-manager's
//! `pkg/controller/volume/persistentvolume`: one pure decision per claim ([`plan_claim`]) and
//! per volume ([`plan_volume`]), from the observed objects and the cluster's classes, with no
//! I/O. The shell in [`controller`] applies the writes in order and records the events.
//!
//! Claims move Pending → Bound (or Lost when their volume goes); volumes move Pending →
//! Available → Bound → Released (→ deleted with reclaim `Delete`, or kept with `Retain`).
//! A claim of a class bound `WaitForFirstConsumer` waits, with upstream's event, until the
//! scheduler names a node in `volume.kubernetes.io/selected-node`; a claim of a class whose
//! provisioner is Skiff's own local-path provisioner then gets a volume made for it: a
//! directory under the node's `DATA/storage/`, with node affinity to that node. Claims of
//! other provisioners are annotated for them and wait, as upstream's. The protection
//! finalizers are released here too: a claim's once no running pod names it, a volume's once
//! it is not bound.
//!
//! Where upstream leaves binding a `WaitForFirstConsumer` claim to an existing volume to the
//! scheduler, this binder does it once the node is selected, with the volume's node affinity
//! checked against that node's name.

pub mod controller;

use std::cmp::Ordering;

use serde_json::{json, Map, Value};
use skiff_api::kinds::persistent_volume::PV_PROTECTION_FINALIZER;
use skiff_api::kinds::persistent_volume_claim::PVC_PROTECTION_FINALIZER;
use skiff_api::kinds::storage_class::is_default_class;
use skiff_api::quantity::Quantity;

/// Set on a claim once the binder has bound it.
pub const ANN_BIND_COMPLETED: &str = "pv.kubernetes.io/bind-completed";
/// Set on a claim or volume whose side of the binding the binder made (not the user).
pub const ANN_BOUND_BY_CONTROLLER: &str = "pv.kubernetes.io/bound-by-controller";
/// The provisioner a claim waits for.
pub const ANN_STORAGE_PROVISIONER: &str = "volume.kubernetes.io/storage-provisioner";
/// The beta spelling of [`ANN_STORAGE_PROVISIONER`], which upstream still writes.
pub const ANN_BETA_STORAGE_PROVISIONER: &str = "volume.beta.kubernetes.io/storage-provisioner";
/// The node the scheduler chose for a claim's first consumer.
pub const ANN_SELECTED_NODE: &str = "volume.kubernetes.io/selected-node";
/// The provisioner that made a volume.
pub const ANN_PROVISIONED_BY: &str = "pv.kubernetes.io/provisioned-by";
/// The name Skiff's local-path provisioner answers to: k3s' name for the same idea, so that
/// manifests written for k3s (`storageClassName: local-path`, this provisioner) work as they are.
pub const LOCAL_PATH_PROVISIONER: &str = "rancher.io/local-path";
/// The default StorageClass Skiff creates at start.
pub const LOCAL_PATH_CLASS: &str = "local-path";
/// The node label local volumes are pinned by.
pub const HOSTNAME_LABEL: &str = "kubernetes.io/hostname";

/// Whether an event reports normal operation or a problem.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// `Normal`.
    Normal,
    /// `Warning`.
    Warning,
}

/// An event the binder records on the object it planned for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlannedEvent {
    /// Normal or Warning.
    pub kind: EventKind,
    /// Upstream's reason.
    pub reason: &'static str,
    /// Upstream's message.
    pub message: String,
}

fn normal(reason: &'static str, message: impl Into<String>) -> PlannedEvent {
    PlannedEvent {
        kind: EventKind::Normal,
        reason,
        message: message.into(),
    }
}

fn warning(reason: &'static str, message: impl Into<String>) -> PlannedEvent {
    PlannedEvent {
        kind: EventKind::Warning,
        reason,
        message: message.into(),
    }
}

/// One write, applied in order; object writes carry the whole object as it should be stored,
/// status writes only the status (the shell applies it to the latest copy it holds).
#[derive(Clone, Debug, PartialEq)]
pub enum Write {
    /// Update the claim's metadata and spec.
    UpdateClaim(Value),
    /// Write the claim's status.
    ClaimStatus(Value),
    /// Update a volume's metadata and spec.
    UpdateVolume(Value),
    /// Write the status of the volume named.
    VolumeStatus {
        /// The volume.
        name: String,
        /// Its new status.
        status: Value,
    },
    /// Create a provisioned volume, after making its directory.
    CreateVolume {
        /// The volume.
        volume: Value,
        /// The directory to make first.
        directory: String,
    },
    /// Delete a volume, after removing its directory when it is one of the local-path
    /// provisioner's.
    DeleteVolume {
        /// The volume.
        name: String,
        /// The directory to remove first.
        directory: Option<String>,
    },
}

/// What one sync does.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Plan {
    /// The writes, in order.
    pub writes: Vec<Write>,
    /// The events to record on the synced object.
    pub events: Vec<PlannedEvent>,
}

/// What the planner knows of the cluster besides the synced object.
pub struct Cluster<'a> {
    /// Every PersistentVolume.
    pub volumes: &'a [&'a Value],
    /// Every StorageClass.
    pub classes: &'a [&'a Value],
    /// Where the local-path provisioner keeps volume directories (`DATA/storage`).
    pub storage_root: &'a str,
}

fn text<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

fn annotation<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.pointer("/metadata/annotations")
        .and_then(|a| a.get(key))
        .and_then(Value::as_str)
}

fn set_annotation(v: &mut Value, key: &str, value: &str) {
    let metadata = ensure_object(v, "metadata");
    let annotations = metadata.entry("annotations").or_insert_with(|| json!({}));
    if !annotations.is_object() {
        *annotations = json!({});
    }
    if let Some(map) = annotations.as_object_mut() {
        map.insert(key.to_string(), Value::from(value));
    }
}

fn ensure_object<'a>(v: &'a mut Value, key: &str) -> &'a mut Map<String, Value> {
    if !v.is_object() {
        *v = json!({});
    }
    let map = v.as_object_mut().expect("made an object above");
    let entry = map.entry(key).or_insert_with(|| json!({}));
    if !entry.is_object() {
        *entry = json!({});
    }
    entry.as_object_mut().expect("made an object above")
}

fn deleting(v: &Value) -> bool {
    v.pointer("/metadata/deletionTimestamp")
        .is_some_and(|t| !t.is_null())
}

fn has_finalizer(v: &Value, finalizer: &str) -> bool {
    v.pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .is_some_and(|l| l.iter().any(|f| f.as_str() == Some(finalizer)))
}

fn without_finalizer(v: &Value, finalizer: &str) -> Value {
    let mut out = v.clone();
    if let Some(list) = out
        .pointer_mut("/metadata/finalizers")
        .and_then(Value::as_array_mut)
    {
        list.retain(|f| f.as_str() != Some(finalizer));
    }
    out
}

/// The claim's class: `spec.storageClassName`, or `""` for none.
pub fn claim_class(claim: &Value) -> &str {
    text(claim, "/spec/storageClassName")
}

/// The class named `name`.
fn find_class<'a>(classes: &[&'a Value], name: &str) -> Option<&'a Value> {
    classes
        .iter()
        .copied()
        .find(|c| text(c, "/metadata/name") == name)
}

/// The default class claims without one get: the newest of those marked default (upstream's
/// rule when several are), by creation time and then name.
pub fn default_class<'a>(classes: &[&'a Value]) -> Option<&'a Value> {
    classes
        .iter()
        .copied()
        .filter(|c| is_default_class(c) && !deleting(c))
        .max_by(|a, b| {
            text(a, "/metadata/creationTimestamp")
                .cmp(text(b, "/metadata/creationTimestamp"))
                .then_with(|| text(b, "/metadata/name").cmp(text(a, "/metadata/name")))
        })
}

/// Whether the claim's class binds when its first consumer is scheduled.
pub fn delays_binding(claim: &Value, classes: &[&Value]) -> bool {
    find_class(classes, claim_class(claim))
        .is_some_and(|c| text(c, "/volumeBindingMode") == "WaitForFirstConsumer")
}

fn storage(v: &Value, pointer: &str) -> Option<i64> {
    Quantity::parse(text(v, pointer)).ok().map(|q| q.value())
}

/// Whether `volume` names `claim` in its `claimRef` (by namespace and name, and by uid when the
/// reference has one): upstream's `IsVolumeBoundToClaim`.
pub fn volume_bound_to_claim(volume: &Value, claim: &Value) -> bool {
    let Some(reference) = volume.pointer("/spec/claimRef").filter(|r| !r.is_null()) else {
        return false;
    };
    if text(reference, "/name") != text(claim, "/metadata/name")
        || text(reference, "/namespace") != text(claim, "/metadata/namespace")
    {
        return false;
    }
    let uid = text(reference, "/uid");
    uid.is_empty() || uid == text(claim, "/metadata/uid")
}

/// Whether a volume's required node affinity admits the node named `node`: terms are ORed,
/// expressions ANDed, and only the hostname label and `metadata.name` are known of a node by
/// name; expressions on other labels are taken as met.
pub fn volume_fits_node(volume: &Value, node: &str) -> bool {
    let Some(terms) = volume
        .pointer("/spec/nodeAffinity/required/nodeSelectorTerms")
        .and_then(Value::as_array)
    else {
        return true;
    };
    terms.iter().any(|term| {
        let expressions = term
            .get("matchExpressions")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default();
        let fields = term
            .get("matchFields")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default();
        let check = |key_ok: bool, req: &Value| {
            if !key_ok {
                return true;
            }
            let values: Vec<&str> = req
                .get("values")
                .and_then(Value::as_array)
                .map(|v| v.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            match text(req, "/operator") {
                "In" => values.contains(&node),
                "NotIn" => !values.contains(&node),
                "DoesNotExist" => false,
                _ => true,
            }
        };
        expressions
            .iter()
            .all(|e| check(text(e, "/key") == HOSTNAME_LABEL, e))
            && fields
                .iter()
                .all(|f| check(text(f, "/key") == "metadata.name", f))
    })
}

fn access_modes(v: &Value, pointer: &str) -> Vec<String> {
    v.pointer(pointer)
        .and_then(Value::as_array)
        .map(|l| {
            l.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

fn volume_mode(v: &Value) -> &str {
    match text(v, "/spec/volumeMode") {
        "" => "Filesystem",
        m => m,
    }
}

fn selector_matches(claim: &Value, volume: &Value) -> bool {
    let Some(selector) = claim.pointer("/spec/selector").filter(|s| !s.is_null()) else {
        return true;
    };
    match skiff_api::selector::LabelSelector::from_label_selector(selector) {
        Ok(s) => s.matches_object(volume),
        Err(_) => false,
    }
}

/// upstream's `findMatchingVolume`: the smallest volume that can hold the claim. A volume
/// pre-bound to the claim wins outright; otherwise only Available volumes of the claim's
/// class, selector, modes and size count, and with delayed binding only those reachable from
/// `node` (none while no node is chosen).
pub fn find_matching_volume<'a>(
    claim: &Value,
    volumes: &[&'a Value],
    delay_binding: bool,
    node: Option<&str>,
) -> Option<&'a Value> {
    let requested = storage(claim, "/spec/resources/requests/storage").unwrap_or(0);
    let wanted_modes = access_modes(claim, "/spec/accessModes");
    let mut best: Option<(&Value, i64)> = None;
    for volume in volumes.iter().copied() {
        if deleting(volume) {
            continue;
        }
        let has_ref = volume
            .pointer("/spec/claimRef")
            .is_some_and(|r| !r.is_null());
        let bound_here = volume_bound_to_claim(volume, claim);
        if has_ref && !bound_here {
            continue;
        }
        if volume_mode(volume) != volume_mode(claim) {
            continue;
        }
        let capacity = storage(volume, "/spec/capacity/storage").unwrap_or(0);
        if capacity < requested {
            continue;
        }
        let modes = access_modes(volume, "/spec/accessModes");
        if !wanted_modes.iter().all(|m| modes.contains(m)) {
            continue;
        }
        if let Some(node) = node {
            if !volume_fits_node(volume, node) {
                continue;
            }
        }
        if bound_here {
            return Some(volume);
        }
        if delay_binding && node.is_none() {
            continue;
        }
        if text(volume, "/status/phase") != "Available" {
            continue;
        }
        if text(volume, "/spec/storageClassName") != claim_class(claim) {
            continue;
        }
        if !selector_matches(claim, volume) {
            continue;
        }
        let smaller = best.is_none_or(|(_, c)| capacity.cmp(&c) == Ordering::Less);
        if smaller {
            best = Some((volume, capacity));
        }
    }
    best.map(|(v, _)| v)
}

fn claim_key(claim: &Value) -> String {
    format!(
        "{}/{}",
        text(claim, "/metadata/namespace"),
        text(claim, "/metadata/name")
    )
}

fn with_phase(obj: &Value, phase: &str) -> Value {
    let mut status = obj.get("status").cloned().unwrap_or_else(|| json!({}));
    if !status.is_object() {
        status = json!({});
    }
    status["phase"] = json!(phase);
    status
}

/// The writes binding `volume` and `claim` to each other, skipping what is already so
/// (upstream's `bind`: the volume first, then the claim, then both statuses).
fn bind(claim: &Value, volume: &Value, plan: &mut Plan) {
    let volume_name = text(volume, "/metadata/name").to_string();
    if !volume_bound_to_claim(volume, claim) || text(volume, "/spec/claimRef/uid").is_empty() {
        let mut updated = volume.clone();
        let by_controller = volume.pointer("/spec/claimRef").is_none_or(Value::is_null);
        ensure_object(&mut updated, "spec").insert(
            "claimRef".to_string(),
            json!({"kind": "PersistentVolumeClaim", "apiVersion": "v1",
                   "namespace": text(claim, "/metadata/namespace"),
                   "name": text(claim, "/metadata/name"),
                   "uid": text(claim, "/metadata/uid"),
                   "resourceVersion": text(claim, "/metadata/resourceVersion")}),
        );
        if by_controller {
            set_annotation(&mut updated, ANN_BOUND_BY_CONTROLLER, "yes");
        }
        plan.writes.push(Write::UpdateVolume(updated));
    }
    if text(volume, "/status/phase") != "Bound" {
        plan.writes.push(Write::VolumeStatus {
            name: volume_name.clone(),
            status: with_phase(volume, "Bound"),
        });
    }
    let mut updated = claim.clone();
    let mut changed = false;
    if text(claim, "/spec/volumeName") != volume_name {
        ensure_object(&mut updated, "spec").insert("volumeName".to_string(), json!(volume_name));
        set_annotation(&mut updated, ANN_BOUND_BY_CONTROLLER, "yes");
        changed = true;
    }
    if annotation(claim, ANN_BIND_COMPLETED).is_none() {
        set_annotation(&mut updated, ANN_BIND_COMPLETED, "yes");
        changed = true;
    }
    if changed {
        plan.writes.push(Write::UpdateClaim(updated));
    }
    let mut status = with_phase(claim, "Bound");
    status["accessModes"] = volume
        .pointer("/spec/accessModes")
        .cloned()
        .unwrap_or(json!([]));
    status["capacity"] = volume
        .pointer("/spec/capacity")
        .cloned()
        .unwrap_or(json!({}));
    if claim.get("status") != Some(&status) {
        plan.writes.push(Write::ClaimStatus(status));
    }
}

/// The directory the local-path provisioner gives a claim: `ROOT/pvc-UID_NAMESPACE_NAME`, as
/// k3s names it.
pub fn local_path_directory(storage_root: &str, claim: &Value) -> String {
    format!(
        "{}/pvc-{}_{}_{}",
        storage_root.trim_end_matches('/'),
        text(claim, "/metadata/uid"),
        text(claim, "/metadata/namespace"),
        text(claim, "/metadata/name")
    )
}

/// The volume the local-path provisioner makes for `claim` of `class` on `node`: named
/// `pvc-<claim uid>` as upstream names provisioned volumes, pre-bound to the claim, a
/// `hostPath` directory pinned to the node.
pub fn local_path_volume(claim: &Value, class: &Value, node: &str, directory: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {
            "name": format!("pvc-{}", text(claim, "/metadata/uid")),
            "annotations": {ANN_PROVISIONED_BY: LOCAL_PATH_PROVISIONER,
                            "local.path.provisioner/selected-node": node},
        },
        "spec": {
            "capacity": {"storage": text(claim, "/spec/resources/requests/storage")},
            "accessModes": claim.pointer("/spec/accessModes").cloned().unwrap_or(json!([])),
            "persistentVolumeReclaimPolicy": match text(class, "/reclaimPolicy") {
                "" => "Delete",
                p => p,
            },
            "storageClassName": text(class, "/metadata/name"),
            "volumeMode": volume_mode(claim),
            "claimRef": {"kind": "PersistentVolumeClaim", "apiVersion": "v1",
                         "namespace": text(claim, "/metadata/namespace"),
                         "name": text(claim, "/metadata/name"),
                         "uid": text(claim, "/metadata/uid"),
                         "resourceVersion": text(claim, "/metadata/resourceVersion")},
            "hostPath": {"path": directory, "type": "DirectoryOrCreate"},
            "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                {"key": HOSTNAME_LABEL, "operator": "In", "values": [node]}]}]}},
        },
    })
}

/// One sync of a claim: upstream's `syncClaim` with the protection controller's finalizer
/// release and the built-in provisioner. `in_use` says whether a pod that has not finished
/// names the claim.
pub fn plan_claim(claim: &Value, cluster: &Cluster<'_>, in_use: bool) -> Plan {
    let mut plan = Plan::default();
    if deleting(claim) {
        if has_finalizer(claim, PVC_PROTECTION_FINALIZER) && !in_use {
            plan.writes.push(Write::UpdateClaim(without_finalizer(
                claim,
                PVC_PROTECTION_FINALIZER,
            )));
        }
        return plan;
    }
    if annotation(claim, ANN_BIND_COMPLETED).is_none() {
        plan_unbound_claim(claim, cluster, &mut plan);
    } else {
        plan_bound_claim(claim, cluster, &mut plan);
    }
    plan
}

fn set_claim_pending(claim: &Value, plan: &mut Plan) {
    if text(claim, "/status/phase") != "Pending" {
        plan.writes
            .push(Write::ClaimStatus(with_phase(claim, "Pending")));
    }
}

fn plan_unbound_claim(claim: &Value, cluster: &Cluster<'_>, plan: &mut Plan) {
    let volume_name = text(claim, "/spec/volumeName");
    if !volume_name.is_empty() {
        // Pre-bound by the user to a named volume.
        let Some(volume) = cluster
            .volumes
            .iter()
            .copied()
            .find(|v| text(v, "/metadata/name") == volume_name)
        else {
            set_claim_pending(claim, plan);
            return;
        };
        let free = volume.pointer("/spec/claimRef").is_none_or(Value::is_null);
        if free || volume_bound_to_claim(volume, claim) {
            bind(claim, volume, plan);
        } else {
            set_claim_pending(claim, plan);
            plan.events.push(warning(
                "FailedBinding",
                format!("volume \"{volume_name}\" already bound to a different claim."),
            ));
        }
        return;
    }
    if claim
        .pointer("/spec/storageClassName")
        .is_none_or(Value::is_null)
    {
        // Retroactive default class assignment: a claim made without a class gets the
        // default one once there is one.
        if let Some(default) = default_class(cluster.classes) {
            let mut updated = claim.clone();
            ensure_object(&mut updated, "spec").insert(
                "storageClassName".to_string(),
                json!(text(default, "/metadata/name")),
            );
            plan.writes.push(Write::UpdateClaim(updated));
            return;
        }
    }
    let delay = delays_binding(claim, cluster.classes);
    let node = annotation(claim, ANN_SELECTED_NODE).filter(|n| !n.is_empty());
    if let Some(volume) = find_matching_volume(claim, cluster.volumes, delay, node) {
        bind(claim, volume, plan);
        return;
    }
    set_claim_pending(claim, plan);
    if delay && node.is_none() {
        plan.events.push(normal(
            "WaitForFirstConsumer",
            "waiting for first consumer to be created before binding",
        ));
        return;
    }
    let class_name = claim_class(claim);
    if class_name.is_empty() {
        plan.events.push(normal(
            "FailedBinding",
            "no persistent volumes available for this claim and no storage class is set",
        ));
        return;
    }
    let Some(class) = find_class(cluster.classes, class_name) else {
        plan.events.push(warning(
            "ProvisioningFailed",
            format!("storageclass.storage.k8s.io \"{class_name}\" not found"),
        ));
        return;
    };
    let provisioner = text(class, "/provisioner");
    if provisioner.starts_with("kubernetes.io/") {
        // Upstream's in-tree provisioners are gone (moved to CSI drivers) and the
        // `kubernetes.io/` prefix is not an external provisioner's: no plugin makes volumes.
        plan.events.push(warning(
            "ProvisioningFailed",
            format!("no volume plugin matched name: {provisioner}"),
        ));
        return;
    }
    if annotation(claim, ANN_STORAGE_PROVISIONER) != Some(provisioner) {
        let mut updated = claim.clone();
        set_annotation(&mut updated, ANN_STORAGE_PROVISIONER, provisioner);
        set_annotation(&mut updated, ANN_BETA_STORAGE_PROVISIONER, provisioner);
        plan.writes.push(Write::UpdateClaim(updated));
        plan.events.push(normal(
            "ExternalProvisioning",
            format!("Waiting for a volume to be created either by the external provisioner '{provisioner}' or manually by the system administrator. If volume creation is delayed, please verify that the provisioner is running and correctly registered."),
        ));
        return;
    }
    if provisioner != LOCAL_PATH_PROVISIONER {
        return;
    }
    let Some(node) = node else {
        plan.events.push(warning(
            "ProvisioningFailed",
            "configuration error, no node was specified",
        ));
        return;
    };
    let directory = local_path_directory(cluster.storage_root, claim);
    let volume = local_path_volume(claim, class, node, &directory);
    plan.events.push(normal(
        "Provisioning",
        format!(
            "External provisioner is provisioning volume for claim \"{}\"",
            claim_key(claim)
        ),
    ));
    plan.events.push(normal(
        "ProvisioningSucceeded",
        format!(
            "Successfully provisioned volume {}",
            text(&volume, "/metadata/name")
        ),
    ));
    plan.writes.push(Write::CreateVolume { volume, directory });
}

fn plan_bound_claim(claim: &Value, cluster: &Cluster<'_>, plan: &mut Plan) {
    let volume_name = text(claim, "/spec/volumeName");
    let lost = |plan: &mut Plan, message: &str| {
        if text(claim, "/status/phase") != "Lost" {
            plan.writes
                .push(Write::ClaimStatus(with_phase(claim, "Lost")));
            plan.events.push(warning("ClaimLost", message));
        }
    };
    if volume_name.is_empty() {
        lost(
            plan,
            "Bound claim has lost reference to PersistentVolume. Data on the volume is lost!",
        );
        return;
    }
    let Some(volume) = cluster
        .volumes
        .iter()
        .copied()
        .find(|v| text(v, "/metadata/name") == volume_name)
    else {
        lost(
            plan,
            "Bound claim has lost its PersistentVolume. Data on the volume is lost!",
        );
        return;
    };
    let free = volume.pointer("/spec/claimRef").is_none_or(Value::is_null);
    if free || volume_bound_to_claim(volume, claim) {
        bind(claim, volume, plan);
    } else {
        lost(
            plan,
            "Two claims are bound to the same volume, this one is bound incorrectly",
        );
    }
}

/// One sync of a volume: upstream's `syncVolume` with the protection controller's finalizer
/// release. `claim` is the claim the volume's `claimRef` names, if it exists.
pub fn plan_volume(volume: &Value, claim: Option<&Value>) -> Plan {
    let mut plan = Plan::default();
    let name = text(volume, "/metadata/name").to_string();
    let phase = text(volume, "/status/phase");
    if deleting(volume) {
        if has_finalizer(volume, PV_PROTECTION_FINALIZER) && phase != "Bound" {
            plan.writes.push(Write::UpdateVolume(without_finalizer(
                volume,
                PV_PROTECTION_FINALIZER,
            )));
        }
        return plan;
    }
    let set_phase = |plan: &mut Plan, to: &str| {
        if phase != to {
            plan.writes.push(Write::VolumeStatus {
                name: name.clone(),
                status: with_phase(volume, to),
            });
        }
    };
    let Some(reference) = volume.pointer("/spec/claimRef").filter(|r| !r.is_null()) else {
        set_phase(&mut plan, "Available");
        return plan;
    };
    if text(reference, "/uid").is_empty() {
        // Pre-bound by the user; the claim's sync finishes the binding.
        set_phase(&mut plan, "Available");
        return plan;
    }
    let claim = claim.filter(|c| text(c, "/metadata/uid") == text(reference, "/uid"));
    let Some(claim) = claim else {
        // The claim is gone: release, then reclaim.
        if phase != "Released" && phase != "Failed" {
            set_phase(&mut plan, "Released");
        }
        match text(volume, "/spec/persistentVolumeReclaimPolicy") {
            "Delete" => {
                let ours = annotation(volume, ANN_PROVISIONED_BY) == Some(LOCAL_PATH_PROVISIONER);
                if ours {
                    plan.writes.push(Write::DeleteVolume {
                        name,
                        directory: Some(text(volume, "/spec/hostPath/path").to_string())
                            .filter(|d| !d.is_empty()),
                    });
                } else if phase != "Failed" {
                    // Only the provisioner that made a volume can delete its storage.
                    plan.writes.push(Write::VolumeStatus {
                        name: name.clone(),
                        status: json!({"phase": "Failed",
                            "message": "error getting deleter volume plugin for volume: no deletable volume plugin matched"}),
                    });
                    plan.events.push(warning(
                        "VolumeFailedDelete",
                        "error getting deleter volume plugin for volume: no deletable volume plugin matched",
                    ));
                }
            }
            "Recycle" if phase != "Failed" => {
                plan.writes.push(Write::VolumeStatus {
                    name: name.clone(),
                    status: json!({"phase": "Failed",
                        "message": "No recycler plugin found for the volume!"}),
                });
                plan.events.push(warning(
                    "VolumeFailedRecycle",
                    "No recycler plugin found for the volume!",
                ));
            }
            _ => {}
        }
        return plan;
    };
    let claim_volume = text(claim, "/spec/volumeName");
    if claim_volume.is_empty() {
        // The claim's sync completes the binding.
        return plan;
    }
    if claim_volume == name {
        set_phase(&mut plan, "Bound");
        return plan;
    }
    // The claim went to another volume: give this one back.
    if annotation(volume, ANN_BOUND_BY_CONTROLLER).is_some() {
        let mut updated = volume.clone();
        if let Some(spec) = updated.get_mut("spec").and_then(Value::as_object_mut) {
            spec.remove("claimRef");
        }
        if let Some(annotations) = updated
            .pointer_mut("/metadata/annotations")
            .and_then(Value::as_object_mut)
        {
            annotations.remove(ANN_BOUND_BY_CONTROLLER);
        }
        plan.writes.push(Write::UpdateVolume(updated));
        plan.writes.push(Write::VolumeStatus {
            name,
            status: with_phase(volume, "Available"),
        });
    } else {
        set_phase(&mut plan, "Released");
    }
    plan
}

/// The claims a pod names in its volumes.
pub fn pod_claims(pod: &Value) -> Vec<&str> {
    pod.pointer("/spec/volumes")
        .and_then(Value::as_array)
        .map(|vols| {
            vols.iter()
                .filter_map(|v| v.pointer("/persistentVolumeClaim/claimName"))
                .filter_map(Value::as_str)
                .collect()
        })
        .unwrap_or_default()
}

/// Whether a pod still holds its claims: it has not finished (upstream's protection
/// controller keeps a claim for any pod not yet terminal).
pub fn pod_holds_claims(pod: &Value) -> bool {
    !matches!(text(pod, "/status/phase"), "Succeeded" | "Failed")
}

#[cfg(test)]
mod tests;
