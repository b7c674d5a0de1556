//! The garbage-collection planner: which objects are garbage, how they are deleted, and when
//! the `orphan` / `foregroundDeletion` finalizers come off, as in
//! `pkg/controller/garbagecollector` (`attemptToDeleteItem`, `classifyReferences`,
//! `processDeletingDependentsItem`, `orphanDependents`).

use serde_json::{json, Value};
use skiff_controllers::gc::{
    deletion_state, plan, plan_for_owner, DeletionState, GcAction, GcPlan, ObjectRef, Propagation,
};

/// An object: kind, name, uid, namespace ("" = cluster-scoped), owners as (uid, blocking),
/// finalizers, and whether it carries a deletionTimestamp.
fn obj(
    kind: &str,
    name: &str,
    namespace: &str,
    owners: &[(&str, bool)],
    finalizers: &[&str],
    deleting: bool,
) -> Value {
    let mut metadata = json!({"name": name, "uid": name, "resourceVersion": "7"});
    if !namespace.is_empty() {
        metadata["namespace"] = json!(namespace);
    }
    if !owners.is_empty() {
        metadata["ownerReferences"] = owners
            .iter()
            .map(|(uid, block)| {
                let mut r = json!({"apiVersion": "v1", "kind": "Owner", "name": uid, "uid": uid});
                if *block {
                    r["blockOwnerDeletion"] = json!(true);
                }
                r
            })
            .collect();
    }
    if !finalizers.is_empty() {
        metadata["finalizers"] = json!(finalizers);
    }
    if deleting {
        metadata["deletionTimestamp"] = json!("2025-03-01T12:00:00Z");
    }
    json!({"apiVersion": "v1", "kind": kind, "metadata": metadata})
}

fn live(name: &str, owners: &[(&str, bool)]) -> Value {
    obj("Thing", name, "ns", owners, &[], false)
}

/// One line per action, e.g. `delete rs Background`, `patch rs [b*]` (`*` = blocking),
/// `unfinalize d orphan -> []`.
fn describe(plan: &GcPlan) -> Vec<String> {
    plan.actions
        .iter()
        .map(|action| match action {
            GcAction::Delete {
                target,
                propagation,
            } => format!("delete {} {}", target.name, propagation.as_str()),
            GcAction::PatchOwnerReferences {
                target,
                owner_references,
            } => {
                let refs: Vec<String> = owner_references
                    .iter()
                    .map(|r| {
                        let star = if r.block_owner_deletion == Some(true) {
                            "*"
                        } else {
                            ""
                        };
                        format!("{}{star}", r.uid)
                    })
                    .collect();
                format!("patch {} [{}]", target.name, refs.join(","))
            }
            GcAction::RemoveFinalizer {
                target,
                finalizer,
                finalizers,
            } => format!(
                "unfinalize {} {finalizer} -> [{}]",
                target.name,
                finalizers.join(",")
            ),
        })
        .collect()
}

#[test]
fn garbage_collection_table() {
    let cases: Vec<(&str, Vec<Value>, Vec<&str>)> = vec![
        (
            "owner exists: dependent left alone",
            vec![live("d", &[]), live("rs", &[("d", true)])],
            vec![],
        ),
        (
            "object without owners is never garbage",
            vec![live("lonely", &[])],
            vec![],
        ),
        (
            "owner gone: dependent deleted in background",
            vec![live("rs", &[("d", true)]), live("pod", &[("rs", true)])],
            vec!["delete rs Background"],
        ),
        (
            "one owner gone, one alive: only the dangling reference is stripped",
            vec![live("a", &[]), live("x", &[("gone", false), ("a", true)])],
            vec!["patch x [a*]"],
        ),
        (
            "owner being deleted in background still exists: dependent left alone",
            vec![
                obj("Thing", "d", "ns", &[], &[], true),
                live("rs", &[("d", true)]),
            ],
            vec![],
        ),
        (
            "orphan: references stripped from every dependent, then the finalizer removed",
            vec![
                obj("Thing", "d", "ns", &[], &["orphan", "custom"], true),
                live("rs1", &[("d", true)]),
                live("rs2", &[("d", true), ("other", false)]),
                live("other", &[]),
            ],
            vec![
                "patch rs1 []",
                "patch rs2 [other]",
                "unfinalize d orphan -> [custom]",
            ],
        ),
        (
            "orphan with no dependents: finalizer removed at once",
            vec![obj("Thing", "d", "ns", &[], &["orphan"], true)],
            vec!["unfinalize d orphan -> []"],
        ),
        (
            "foreground: blocking dependent deleted, owner keeps its finalizer",
            vec![
                obj("Thing", "d", "ns", &[], &["foregroundDeletion"], true),
                live("rs", &[("d", true)]),
            ],
            vec!["delete rs Background"],
        ),
        (
            "foreground: blocking dependent already terminating, nothing to do yet",
            vec![
                obj("Thing", "d", "ns", &[], &["foregroundDeletion"], true),
                obj("Thing", "rs", "ns", &[("d", true)], &[], true),
            ],
            vec![],
        ),
        (
            "foreground: only non-blocking dependents left, finalizer removed and they are deleted",
            vec![
                obj("Thing", "d", "ns", &[], &["foregroundDeletion"], true),
                live("rs", &[("d", false)]),
            ],
            vec![
                "delete rs Background",
                "unfinalize d foregroundDeletion -> []",
            ],
        ),
        (
            "foreground: no dependents at all, finalizer removed",
            vec![obj("Thing", "d", "ns", &[], &["foregroundDeletion"], true)],
            vec!["unfinalize d foregroundDeletion -> []"],
        ),
        (
            "foreground cascades: a dependent with dependents of its own is deleted in foreground",
            vec![
                obj("Thing", "d", "ns", &[], &["foregroundDeletion"], true),
                live("rs", &[("d", true)]),
                live("pod", &[("rs", true)]),
            ],
            vec!["delete rs Foreground"],
        ),
        (
            "foreground cycle: references made non-blocking before the foreground delete",
            vec![
                obj("Thing", "d", "ns", &[], &["foregroundDeletion"], true),
                live("rs", &[("d", true)]),
                obj(
                    "Thing",
                    "pod",
                    "ns",
                    &[("rs", true)],
                    &["foregroundDeletion"],
                    true,
                ),
            ],
            vec![
                "patch rs [d]",
                "delete rs Foreground",
                "unfinalize pod foregroundDeletion -> []",
            ],
        ),
        (
            "a live owner plus a foreground-deleting one: the waiting reference is stripped",
            vec![
                obj("Thing", "d", "ns", &[], &["foregroundDeletion"], true),
                live("keep", &[]),
                live("x", &[("d", true), ("keep", false)]),
            ],
            vec!["patch x [keep]"],
        ),
        (
            "garbage already being deleted is left to finish",
            vec![obj("Thing", "rs", "ns", &[("gone", true)], &[], true)],
            vec![],
        ),
        (
            "garbage carrying an orphan finalizer is deleted with Orphan",
            vec![obj(
                "Thing",
                "rs",
                "ns",
                &[("gone", true)],
                &["orphan"],
                false,
            )],
            vec!["delete rs Orphan"],
        ),
        (
            "garbage carrying a foreground finalizer is deleted with Foreground",
            vec![obj(
                "Thing",
                "rs",
                "ns",
                &[("gone", true)],
                &["foregroundDeletion"],
                false,
            )],
            vec!["delete rs Foreground"],
        ),
        (
            "a namespaced owner in another namespace does not count",
            vec![
                obj("Thing", "d", "elsewhere", &[], &[], false),
                live("rs", &[("d", true)]),
            ],
            vec!["delete rs Background"],
        ),
        (
            "a cluster-scoped owner counts for a namespaced dependent",
            vec![
                obj("Node", "node1", "", &[], &[], false),
                live("lease", &[("node1", false)]),
            ],
            vec![],
        ),
        (
            "a cluster-scoped dependent cannot be owned by a namespaced object",
            vec![
                live("d", &[]),
                obj("Thing", "pv", "", &[("d", false)], &[], false),
            ],
            vec!["delete pv Background"],
        ),
        (
            "objects without a UID are ignored",
            vec![json!({"apiVersion": "v1", "kind": "Thing",
                        "metadata": {"name": "x", "ownerReferences": [
                            {"apiVersion": "v1", "kind": "Owner", "name": "gone", "uid": "gone"}]}})],
            vec![],
        ),
        (
            "objects with unreadable metadata are ignored",
            vec![json!({"apiVersion": "v1", "kind": "Thing",
                        "metadata": {"name": "x", "uid": "x", "ownerReferences": "not a list"}})],
            vec![],
        ),
    ];
    for (name, objects, want) in cases {
        assert_eq!(describe(&plan(&objects)), want, "{name}");
    }
}

#[test]
fn plan_for_owner_looks_only_at_the_owner_and_its_dependents() {
    let objects = vec![
        live("rs", &[("gone-deployment", true)]),
        live("unrelated", &[("other-gone", true)]),
        obj("Thing", "d2", "ns", &[], &["orphan"], true),
        live("rs2", &[("d2", true)]),
    ];
    assert_eq!(
        describe(&plan_for_owner("gone-deployment", &objects)),
        ["delete rs Background"]
    );
    assert_eq!(
        describe(&plan_for_owner("d2", &objects)),
        ["patch rs2 []", "unfinalize d2 orphan -> []"]
    );
    assert!(plan_for_owner("nobody", &objects).actions.is_empty());
}

#[test]
fn actions_carry_merge_patches_guarded_by_uid_and_resource_version() {
    let objects = vec![
        obj("Thing", "d", "ns", &[], &["orphan", "custom"], true),
        live("rs", &[("d", true)]),
        live("x", &[("gone", false), ("rs", true)]),
        live("garbage", &[("gone", true)]),
    ];
    let plan = plan(&objects);
    let patches: Vec<(String, Option<Value>)> = plan
        .actions
        .iter()
        .map(|a| (a.target().name.clone(), a.merge_patch()))
        .collect();
    let ownership = json!([{"apiVersion": "v1", "blockOwnerDeletion": true, "kind": "Owner",
                            "name": "rs", "uid": "rs"}]);
    assert_eq!(
        patches,
        vec![
            (
                "rs".to_string(),
                Some(
                    json!({"metadata": {"ownerReferences": null, "uid": "rs", "resourceVersion": "7"}})
                )
            ),
            (
                "x".to_string(),
                Some(
                    json!({"metadata": {"ownerReferences": ownership, "uid": "x", "resourceVersion": "7"}})
                )
            ),
            ("garbage".to_string(), None),
            (
                "d".to_string(),
                Some(
                    json!({"metadata": {"finalizers": ["custom"], "uid": "d", "resourceVersion": "7"}})
                )
            ),
        ]
    );
    assert_eq!(
        plan.actions[2].target(),
        &ObjectRef {
            api_version: "v1".into(),
            kind: "Thing".into(),
            namespace: Some("ns".into()),
            name: "garbage".into(),
            uid: "garbage".into(),
            resource_version: Some("7".into()),
        }
    );
}

#[test]
fn deletion_state_reads_timestamp_and_finalizers() {
    let cases = [
        (
            obj("T", "a", "ns", &[], &["orphan"], false),
            DeletionState::Live,
        ),
        (
            obj("T", "a", "ns", &[], &[], true),
            DeletionState::Deleting(Propagation::Background),
        ),
        (
            obj("T", "a", "ns", &[], &["foregroundDeletion"], true),
            DeletionState::Deleting(Propagation::Foreground),
        ),
        (
            obj("T", "a", "ns", &[], &["custom", "orphan"], true),
            DeletionState::Deleting(Propagation::Orphan),
        ),
    ];
    for (object, want) in cases {
        assert_eq!(deletion_state(&object), want, "{object}");
    }
}
