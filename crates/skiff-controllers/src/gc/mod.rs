//! The garbage collector's planner: ownerReference-based cascading deletion.
//!
//! [`plan`] looks at every object of the cluster at once (as JSON, whatever the kind) and
//! decides what the upstream garbage collector (`pkg/controller/garbagecollector`) would do:
//!
//! * an object whose owners are all gone (no object with the referenced UID in a compatible
//!   namespace) is garbage and is deleted, with the propagation its own finalizers ask for
//!   (Background unless it already carries `orphan` or `foregroundDeletion`);
//! * an object with at least one live owner keeps living, but references to gone owners and to
//!   owners being deleted in the foreground are stripped from it;
//! * an object whose only owners are being deleted in the foreground is deleted too, in the
//!   foreground when it has dependents of its own (so the wait cascades down);
//! * an owner being deleted with the `orphan` finalizer first has its reference stripped from
//!   every dependent, then loses the finalizer;
//! * an owner being deleted with the `foregroundDeletion` finalizer loses that finalizer once no
//!   dependent with `blockOwnerDeletion: true` remains.
//!
//! The reconciler applies [`GcPlan::actions`] in order and stops at the first failure (the next
//! pass recomputes everything). Its object set must be complete: a referenced owner missing
//! from it is taken as deleted, so kinds the reconciler does not list must not own anything
//! the planner sees. Upstream confirms a missing owner with a live read before deleting; a
//! reconciler working from caches should do the same for [`GcAction::Delete`] when it can.

pub mod controller;
use std::borrow::Borrow;
use std::collections::{BTreeMap, BTreeSet, HashMap};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use serde::Deserialize;
use serde_json::{json, Value};

/// Finalizer the API server adds when an object is deleted with `propagationPolicy: Orphan`.
pub const FINALIZER_ORPHAN: &str = "orphan";
/// Finalizer the API server adds when an object is deleted with `propagationPolicy: Foreground`.
pub const FINALIZER_FOREGROUND_DELETION: &str = "foregroundDeletion";

/// How a deletion treats the deleted object's dependents (`metav1.DeletionPropagation`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Propagation {
    /// The object goes at once; its dependents are collected afterwards.
    Background,
    /// The object stays (with `foregroundDeletion`) until its blocking dependents are gone.
    Foreground,
    /// The object stays (with `orphan`) until its dependents no longer reference it.
    Orphan,
}

impl Propagation {
    /// The wire value of `DeleteOptions.propagationPolicy`.
    pub fn as_str(self) -> &'static str {
        match self {
            Propagation::Background => "Background",
            Propagation::Foreground => "Foreground",
            Propagation::Orphan => "Orphan",
        }
    }
}

/// Where an object stands in its deletion, as the garbage collector reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeletionState {
    /// No deletionTimestamp.
    Live,
    /// deletionTimestamp set; the propagation is told by its finalizers (`orphan` wins over
    /// `foregroundDeletion`; neither means Background).
    Deleting(Propagation),
}

/// Identifies the object an action applies to, with what a request needs for preconditions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectRef {
    /// `apiVersion` of the object.
    pub api_version: String,
    /// `kind` of the object.
    pub kind: String,
    /// Namespace, `None` for cluster-scoped objects.
    pub namespace: Option<String>,
    /// Name.
    pub name: String,
    /// UID: a delete precondition, and a patch guard against a re-created namesake.
    pub uid: String,
    /// resourceVersion as observed, for optimistic concurrency on patches.
    pub resource_version: Option<String>,
}

/// One write the garbage collector makes.
#[derive(Debug, Clone, PartialEq)]
pub enum GcAction {
    /// Replace the object's ownerReferences (stale references stripped, or blocking ones made
    /// non-blocking to break a foreground-deletion cycle).
    PatchOwnerReferences {
        /// The dependent.
        target: ObjectRef,
        /// Its complete ownerReferences afterwards.
        owner_references: Vec<OwnerReference>,
    },
    /// Delete the object with this propagation policy (and a UID precondition).
    Delete {
        /// The garbage object.
        target: ObjectRef,
        /// The `propagationPolicy` to send.
        propagation: Propagation,
    },
    /// Remove one of the garbage collector's finalizers, letting the deletion finish.
    RemoveFinalizer {
        /// The owner being deleted.
        target: ObjectRef,
        /// The finalizer removed (`orphan` or `foregroundDeletion`).
        finalizer: String,
        /// The object's finalizers afterwards.
        finalizers: Vec<String>,
    },
}

impl GcAction {
    /// The object the action writes to.
    pub fn target(&self) -> &ObjectRef {
        match self {
            GcAction::PatchOwnerReferences { target, .. }
            | GcAction::Delete { target, .. }
            | GcAction::RemoveFinalizer { target, .. } => target,
        }
    }

    /// The JSON merge patch carrying the change (works for every kind, custom resources
    /// included), guarded by UID and resourceVersion. `None` for a delete.
    pub fn merge_patch(&self) -> Option<Value> {
        let (target, field, value) = match self {
            GcAction::PatchOwnerReferences {
                target,
                owner_references,
            } => (
                target,
                "ownerReferences",
                if owner_references.is_empty() {
                    Value::Null
                } else {
                    serde_json::to_value(owner_references).unwrap_or(Value::Null)
                },
            ),
            GcAction::RemoveFinalizer {
                target, finalizers, ..
            } => (
                target,
                "finalizers",
                if finalizers.is_empty() {
                    Value::Null
                } else {
                    json!(finalizers)
                },
            ),
            GcAction::Delete { .. } => return None,
        };
        let mut metadata = serde_json::Map::new();
        metadata.insert(field.to_string(), value);
        metadata.insert("uid".to_string(), json!(target.uid));
        if let Some(rv) = &target.resource_version {
            metadata.insert("resourceVersion".to_string(), json!(rv));
        }
        Some(json!({ "metadata": metadata }))
    }
}

/// What one pass of the garbage collector decided.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GcPlan {
    /// Writes in order: ownerReference patches, then deletes, then finalizer removals (so an
    /// `orphan` finalizer goes only after every dependent was released).
    pub actions: Vec<GcAction>,
}

/// One object as the planner sees it.
struct Node {
    target: ObjectRef,
    owners: Vec<OwnerReference>,
    finalizers: Vec<String>,
    deleting: bool,
}

impl Node {
    fn parse(object: &Value) -> Option<Node> {
        let metadata = ObjectMeta::deserialize(object.get("metadata")?).ok()?;
        let uid = metadata.uid.filter(|u| !u.is_empty())?;
        let name = metadata.name.filter(|n| !n.is_empty())?;
        let text = |key: &str| {
            object
                .get(key)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        Some(Node {
            target: ObjectRef {
                api_version: text("apiVersion"),
                kind: text("kind"),
                namespace: metadata.namespace.filter(|n| !n.is_empty()),
                name,
                uid,
                resource_version: metadata.resource_version,
            },
            owners: metadata.owner_references.unwrap_or_default(),
            finalizers: metadata.finalizers.unwrap_or_default(),
            deleting: metadata.deletion_timestamp.is_some(),
        })
    }

    fn has_finalizer(&self, finalizer: &str) -> bool {
        self.finalizers.iter().any(|f| f == finalizer)
    }

    /// Being deleted in the foreground: waits for its blocking dependents.
    fn deleting_dependents(&self) -> bool {
        self.deleting && self.has_finalizer(FINALIZER_FOREGROUND_DELETION)
    }

    fn orphaning(&self) -> bool {
        self.deleting && self.has_finalizer(FINALIZER_ORPHAN)
    }
}

/// The deletion state of one object, read from its deletionTimestamp and finalizers.
pub fn deletion_state(object: &Value) -> DeletionState {
    let metadata = object.get("metadata");
    let deleting = metadata
        .and_then(|m| m.get("deletionTimestamp"))
        .is_some_and(|t| !t.is_null());
    if !deleting {
        return DeletionState::Live;
    }
    let has = |finalizer: &str| {
        metadata
            .and_then(|m| m.get("finalizers"))
            .and_then(Value::as_array)
            .is_some_and(|fs| fs.iter().any(|f| f.as_str() == Some(finalizer)))
    };
    if has(FINALIZER_ORPHAN) {
        DeletionState::Deleting(Propagation::Orphan)
    } else if has(FINALIZER_FOREGROUND_DELETION) {
        DeletionState::Deleting(Propagation::Foreground)
    } else {
        DeletionState::Deleting(Propagation::Background)
    }
}

/// The object graph: nodes, UID index, and dependents per owner UID.
struct Graph {
    nodes: Vec<Node>,
    by_uid: HashMap<String, usize>,
    dependents: HashMap<String, Vec<usize>>,
}

/// How a dependent's references classify (`classifyReferences`).
#[derive(Default)]
struct Classified {
    solid: usize,
    dangling: BTreeSet<String>,
    waiting: BTreeSet<String>,
}

impl Graph {
    fn new<V: Borrow<Value>>(objects: &[V]) -> Graph {
        let nodes: Vec<Node> = objects
            .iter()
            .filter_map(|o| Node::parse(o.borrow()))
            .collect();
        let mut by_uid = HashMap::new();
        let mut dependents: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, node) in nodes.iter().enumerate() {
            by_uid.insert(node.target.uid.clone(), i);
            let owner_uids: BTreeSet<&str> = node.owners.iter().map(|o| o.uid.as_str()).collect();
            for uid in owner_uids {
                dependents.entry(uid.to_string()).or_default().push(i);
            }
        }
        Graph {
            nodes,
            by_uid,
            dependents,
        }
    }

    fn dependents_of(&self, uid: &str) -> &[usize] {
        self.dependents.get(uid).map(Vec::as_slice).unwrap_or(&[])
    }

    /// The owner a reference from `dependent` points to, if it exists: same UID, and either
    /// cluster-scoped or in the dependent's namespace (a namespaced dependent cannot be owned
    /// across namespaces, and a cluster-scoped one not by a namespaced owner).
    fn owner(&self, dependent: &Node, reference: &OwnerReference) -> Option<&Node> {
        let owner = self.nodes.get(*self.by_uid.get(&reference.uid)?)?;
        match &owner.target.namespace {
            None => Some(owner),
            Some(ns) if Some(ns) == dependent.target.namespace.as_ref() => Some(owner),
            Some(_) => None,
        }
    }

    fn classify(&self, node: &Node) -> Classified {
        let mut classified = Classified::default();
        for reference in &node.owners {
            match self.owner(node, reference) {
                None => {
                    classified.dangling.insert(reference.uid.clone());
                }
                Some(owner) if owner.deleting_dependents() => {
                    classified.waiting.insert(reference.uid.clone());
                }
                Some(_) => classified.solid += 1,
            }
        }
        classified
    }

    /// Dependents holding `blockOwnerDeletion: true` on `owner`.
    fn has_blocking_dependents(&self, owner: &Node) -> bool {
        self.dependents_of(&owner.target.uid).iter().any(|&i| {
            self.nodes[i]
                .owners
                .iter()
                .any(|o| o.uid == owner.target.uid && o.block_owner_deletion == Some(true))
        })
    }
}

/// Accumulates the plan, merging every ownerReference change of one object into one patch.
#[derive(Default)]
struct Planner {
    strip: BTreeMap<usize, BTreeSet<String>>,
    unblock: BTreeSet<usize>,
    deletes: Vec<(usize, Propagation)>,
    finalizers: Vec<(usize, &'static str)>,
}

impl Planner {
    /// `attemptToOrphan`: release every dependent of an owner deleted with `orphan`, then drop
    /// the finalizer.
    fn orphan(&mut self, graph: &Graph, index: usize) {
        let owner = &graph.nodes[index];
        if !owner.orphaning() {
            return;
        }
        for &dependent in graph.dependents_of(&owner.target.uid) {
            self.strip
                .entry(dependent)
                .or_default()
                .insert(owner.target.uid.clone());
        }
        self.finalizers.push((index, FINALIZER_ORPHAN));
    }

    /// `attemptToDeleteItem`: decide whether one object is garbage.
    fn attempt_to_delete(&mut self, graph: &Graph, index: usize) {
        let node = &graph.nodes[index];
        if node.deleting && !node.deleting_dependents() {
            return;
        }
        if node.deleting_dependents() {
            if !graph.has_blocking_dependents(node) {
                self.finalizers.push((index, FINALIZER_FOREGROUND_DELETION));
            }
            return;
        }
        if node.owners.is_empty() {
            return;
        }
        let classified = graph.classify(node);
        if classified.solid > 0 {
            if !classified.dangling.is_empty() || !classified.waiting.is_empty() {
                let strip = self.strip.entry(index).or_default();
                strip.extend(classified.dangling);
                strip.extend(classified.waiting);
            }
            return;
        }
        let own_dependents = graph.dependents_of(&node.target.uid);
        if !classified.waiting.is_empty() && !own_dependents.is_empty() {
            if own_dependents
                .iter()
                .any(|&d| graph.nodes[d].deleting_dependents())
            {
                // The owner waits for this object, which would wait for a dependent that waits
                // in turn: make this object's references non-blocking so the chain can finish.
                self.unblock.insert(index);
            }
            self.deletes.push((index, Propagation::Foreground));
            return;
        }
        let propagation = if node.has_finalizer(FINALIZER_ORPHAN) {
            Propagation::Orphan
        } else if node.has_finalizer(FINALIZER_FOREGROUND_DELETION) {
            Propagation::Foreground
        } else {
            Propagation::Background
        };
        self.deletes.push((index, propagation));
    }

    fn finish(self, graph: &Graph) -> GcPlan {
        let mut actions = Vec::new();
        let patched: BTreeSet<usize> = self
            .strip
            .keys()
            .copied()
            .chain(self.unblock.iter().copied())
            .collect();
        for index in patched {
            let node = &graph.nodes[index];
            let strip = self.strip.get(&index);
            let unblock = self.unblock.contains(&index);
            let owner_references: Vec<OwnerReference> = node
                .owners
                .iter()
                .filter(|o| !strip.is_some_and(|s| s.contains(&o.uid)))
                .map(|o| {
                    let mut o = o.clone();
                    if unblock && o.block_owner_deletion == Some(true) {
                        o.block_owner_deletion = Some(false);
                    }
                    o
                })
                .collect();
            if owner_references != node.owners {
                actions.push(GcAction::PatchOwnerReferences {
                    target: node.target.clone(),
                    owner_references,
                });
            }
        }
        for (index, propagation) in self.deletes {
            actions.push(GcAction::Delete {
                target: graph.nodes[index].target.clone(),
                propagation,
            });
        }
        for (index, finalizer) in self.finalizers {
            let node = &graph.nodes[index];
            actions.push(GcAction::RemoveFinalizer {
                target: node.target.clone(),
                finalizer: finalizer.to_string(),
                finalizers: node
                    .finalizers
                    .iter()
                    .filter(|f| f.as_str() != finalizer)
                    .cloned()
                    .collect(),
            });
        }
        GcPlan { actions }
    }
}

/// Plans a full pass over every object of the cluster (`objects`: each with `apiVersion`,
/// `kind` and `metadata`; objects without a UID or name, or with unreadable metadata, are
/// ignored and never acted on). They may be owned values or shared handles such as
/// `Arc<Value>`, so a reconciler can plan over its caches without copying them.
pub fn plan<V: Borrow<Value>>(objects: &[V]) -> GcPlan {
    let graph = Graph::new(objects);
    let mut planner = Planner::default();
    for index in 0..graph.nodes.len() {
        planner.orphan(&graph, index);
        planner.attempt_to_delete(&graph, index);
    }
    planner.finish(&graph)
}

/// Plans the work triggered by a change to one object (created, updated, being deleted or
/// gone): the object itself, when it still exists, and each object that references its UID.
pub fn plan_for_owner<V: Borrow<Value>>(owner_uid: &str, objects: &[V]) -> GcPlan {
    let graph = Graph::new(objects);
    let mut planner = Planner::default();
    if let Some(&index) = graph.by_uid.get(owner_uid) {
        planner.orphan(&graph, index);
        planner.attempt_to_delete(&graph, index);
    }
    for &dependent in graph.dependents_of(owner_uid) {
        if graph.nodes[dependent].target.uid != owner_uid {
            planner.attempt_to_delete(&graph, dependent);
        }
    }
    planner.finish(&graph)
}
