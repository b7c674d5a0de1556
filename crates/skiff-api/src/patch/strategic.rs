//! Strategic merge patch, following k8s.io/apimachinery/pkg/util/strategicpatch as the API
//! server applies it (`StrategicMergeMapPatch`: parallel lists honoured, unmatched nulls
//! dropped).
//!
//! Where upstream would leave patch directives or `null`s inside a value it copies verbatim (new
//! list items, `$patch: replace` bodies), we strip them instead: the real server then fails or
//! drops them while decoding into Go structs, and we have no such decoding step.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde_json::{Map, Value};

use super::schema::{Schema, Strategy};
use super::PatchError;

const PATCH_DIRECTIVE: &str = "$patch";
const RETAIN_KEYS_DIRECTIVE: &str = "$retainKeys";
const SET_ELEMENT_ORDER_PREFIX: &str = "$setElementOrder";
const DELETE_FROM_PRIMITIVE_LIST_PREFIX: &str = "$deleteFromPrimitiveList";

const BAD_PRIMITIVE_LIST: &str = "invalid patch format of primitive list";
const BAD_RETAIN_KEYS: &str = "invalid patch format of retainKeys";
const BAD_SET_ELEMENT_ORDER: &str = "invalid patch format of setElementOrder list";

type Object = Map<String, Value>;

/// Merges `patch` into `original` at a position of type `schema`.
pub(crate) fn merge_map(
    mut original: Object,
    mut patch: Object,
    schema: Schema,
) -> Result<Object, PatchError> {
    if let Some(directive) = patch.get(PATCH_DIRECTIVE) {
        return match directive.as_str() {
            Some("replace") => {
                patch.shift_remove(PATCH_DIRECTIVE);
                Ok(strip_object(patch))
            }
            Some("delete") => Ok(Object::new()),
            _ => Err(unknown_patch_type(directive, &patch)),
        };
    }

    apply_retain_keys(&mut original, &mut patch)?;
    apply_element_orders(&mut original, &mut patch, schema)?;

    for (raw_key, patch_value) in patch {
        let (key, is_delete_list) = if raw_key.starts_with(DELETE_FROM_PRIMITIVE_LIST_PREFIX) {
            let key = directive_target(&raw_key, DELETE_FROM_PRIMITIVE_LIST_PREFIX)
                .ok_or_else(|| PatchError::MalformedPatch(BAD_PRIMITIVE_LIST.to_string()))?;
            (key.to_string(), true)
        } else {
            (raw_key, false)
        };

        if patch_value.is_null() {
            original.shift_remove(&key);
            continue;
        }

        let Some(current) = original.get_mut(&key) else {
            if !is_delete_list {
                if let Some(value) = strip_value(patch_value) {
                    original.insert(key, value);
                }
            }
            continue;
        };

        match (current, patch_value) {
            (Value::Object(current), Value::Object(patch_object)) => {
                let (child, strategy) = schema.field(&key);
                *current = if strategy == Strategy::Replace {
                    strip_object(patch_object)
                } else {
                    merge_map(std::mem::take(current), patch_object, child)?
                };
            }
            (Value::Array(current), Value::Array(patch_list)) => {
                let (child, strategy) = schema.field(&key);
                *current = merge_list_field(
                    std::mem::take(current),
                    patch_list,
                    child,
                    strategy,
                    is_delete_list,
                )?;
            }
            (current, patch_value) => {
                if is_delete_list {
                    continue;
                }
                match strip_value(patch_value) {
                    Some(value) => *current = value,
                    None => {
                        original.shift_remove(&key);
                    }
                }
            }
        }
    }
    Ok(original)
}

/// Merges a list field according to its strategy; delete lists always merge.
fn merge_list_field(
    original: Vec<Value>,
    patch: Vec<Value>,
    schema: Schema,
    strategy: Strategy,
    is_delete_list: bool,
) -> Result<Vec<Value>, PatchError> {
    match strategy {
        Strategy::MergeByKey(key) => merge_list(original, patch, schema, Some(key), is_delete_list),
        Strategy::MergeSet => merge_list(original, patch, schema, None, is_delete_list),
        _ if is_delete_list => merge_list(original, patch, schema, None, true),
        _ => Ok(strip_list(patch)),
    }
}

/// The type of the items of one or more lists, which must all agree.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ItemKind {
    Null,
    Bool,
    Integer,
    Float,
    String,
    Object,
}

fn item_kind(value: &Value) -> Result<ItemKind, PatchError> {
    Ok(match value {
        Value::Null => ItemKind::Null,
        Value::Bool(_) => ItemKind::Bool,
        Value::Number(n) if n.is_f64() => ItemKind::Float,
        Value::Number(_) => ItemKind::Integer,
        Value::String(_) => ItemKind::String,
        Value::Object(_) => ItemKind::Object,
        Value::Array(_) => {
            return Err(PatchError::Unprocessable(
                "lists of lists are not supported".to_string(),
            ))
        }
    })
}

/// The common item kind of `lists`, or `None` when they hold no items at all.
fn common_item_kind(lists: &[&[Value]]) -> Result<Option<ItemKind>, PatchError> {
    let mut found: Option<ItemKind> = None;
    for item in lists.iter().flat_map(|list| list.iter()) {
        let kind = item_kind(item)?;
        match found {
            None => found = Some(kind),
            Some(previous) if previous != kind => {
                let rendered: Vec<Value> = lists.iter().map(|l| Value::Array(l.to_vec())).collect();
                return Err(PatchError::MergeFailed(format!(
                    "list element types are not identical: {}",
                    go_format(&Value::Array(rendered))
                )));
            }
            Some(_) => {}
        }
    }
    Ok(found)
}

/// Merges two lists with merge semantics: primitives as a set, objects by `merge_key`, then
/// orders the result (patch order first, server-only items kept where they were).
fn merge_list(
    original: Vec<Value>,
    patch: Vec<Value>,
    schema: Schema,
    merge_key: Option<&str>,
    is_delete_list: bool,
) -> Result<Vec<Value>, PatchError> {
    if original.is_empty() && patch.is_empty() {
        return Ok(original);
    }
    let Some(kind) = common_item_kind(&[&original, &patch])? else {
        return Ok(original);
    };

    let (server_order, patch, merged, merge_key) = if kind != ItemKind::Object {
        if is_delete_list {
            let deleted: HashSet<String> = patch.iter().map(canonical).collect();
            return Ok(original
                .into_iter()
                .filter(|item| !deleted.contains(&canonical(item)))
                .collect());
        }
        let mut merged: Vec<Value> = Vec::with_capacity(original.len() + patch.len());
        let mut seen = HashSet::with_capacity(original.len() + patch.len());
        for item in original.iter().chain(patch.iter()) {
            if seen.insert(canonical(item)) {
                merged.push(item.clone());
            }
        }
        (original, patch, merged, None)
    } else {
        let key = merge_key.ok_or_else(|| {
            PatchError::MergeFailed(format!(
                "cannot merge lists without merge key for {}",
                schema.type_name()
            ))
        })?;
        let (original, patch) = apply_item_directives(original, patch, key)?;
        let merged = merge_items_by_key(original.clone(), &patch, key, schema)?;
        (original, patch, merged, Some(key))
    };

    let (patch_items, server_only) = partition_by_presence(merged, &patch, merge_key)?;
    normalize_element_order(
        patch_items,
        server_only,
        &patch,
        &server_order,
        merge_key,
        kind,
    )
}

/// Handles list items carrying `$patch`: `delete` removes every original item with that merge
/// key, `replace` makes the remaining patch items the whole list. Returns the new original and
/// the patch without directive items.
fn apply_item_directives(
    mut original: Vec<Value>,
    patch: Vec<Value>,
    merge_key: &str,
) -> Result<(Vec<Value>, Vec<Value>), PatchError> {
    let mut plain_items = Vec::with_capacity(patch.len());
    let mut replace = false;
    // Deleted merge keys are gathered and removed in one pass, so that many `delete` items
    // cost one scan of the original list, not one each.
    let mut deleted_keys: Option<HashSet<String>> = None;
    for item in patch {
        let directive = item.get(PATCH_DIRECTIVE);
        match directive.map(|d| d.as_str()) {
            None => plain_items.push(item),
            Some(Some("delete")) => {
                let key_value = merge_key_value(&item, merge_key)?;
                if deleted_keys.is_none() {
                    check_all_maps(&original)?;
                }
                deleted_keys
                    .get_or_insert_with(HashSet::new)
                    .insert(canonical(key_value));
            }
            Some(Some("replace")) => replace = true,
            Some(Some("merge")) => {
                return Err(PatchError::MergeFailed(
                    "merging lists cannot yet be specified in the patch".to_string(),
                ))
            }
            Some(_) => {
                let directive = directive.cloned().unwrap_or(Value::Null);
                let map = item.as_object().cloned().unwrap_or_default();
                return Err(unknown_patch_type(&directive, &map));
            }
        }
    }
    if let Some(deleted) = &deleted_keys {
        original.retain(|item| {
            item.get(merge_key)
                .is_none_or(|key| !deleted.contains(&canonical(key)))
        });
    }
    if replace {
        Ok((strip_list(plain_items), Vec::new()))
    } else {
        Ok((original, plain_items))
    }
}

/// Fails as upstream does when a list item that should be a map is not.
fn check_all_maps(items: &[Value]) -> Result<(), PatchError> {
    match items.iter().position(|item| !item.is_object()) {
        Some(index) => Err(PatchError::MergeFailed(format!(
            "value for key {index} is not a map"
        ))),
        None => Ok(()),
    }
}

/// Merges each patch item into the original item with the same merge key, or appends it.
fn merge_items_by_key(
    mut original: Vec<Value>,
    patch: &[Value],
    merge_key: &str,
    schema: Schema,
) -> Result<Vec<Value>, PatchError> {
    // The first original item for each merge key, and the first item that is not a map (a
    // search for a key reaching it fails, as upstream's linear search does).
    let first_non_map = original.iter().position(|item| !item.is_object());
    let scanned = first_non_map.unwrap_or(original.len());
    let mut by_key: HashMap<String, usize> = HashMap::with_capacity(original.len());
    for (index, item) in original[..scanned].iter().enumerate() {
        if let Some(key) = item.get(merge_key) {
            by_key.entry(canonical(key)).or_insert(index);
        }
    }
    for item in patch {
        let key_value = merge_key_value(item, merge_key)?;
        let key_text = canonical(key_value);
        let position = by_key.get(&key_text).copied();
        if let (Some(bad), None) = (first_non_map, position) {
            return Err(PatchError::MergeFailed(format!(
                "value for key {bad} is not a map"
            )));
        }
        let patch_object = item.as_object().cloned().unwrap_or_default();
        match position {
            Some(index) => {
                let current = match std::mem::take(&mut original[index]) {
                    Value::Object(map) => map,
                    _ => Object::new(),
                };
                original[index] = Value::Object(merge_map(current, patch_object, schema)?);
            }
            None => {
                if let Some(value) = strip_value(Value::Object(patch_object)) {
                    if first_non_map.is_none() {
                        if let Some(key) = value.get(merge_key) {
                            by_key.entry(canonical(key)).or_insert(original.len());
                        }
                    }
                    original.push(value);
                }
            }
        }
    }
    Ok(original)
}

/// The merge-key value of a list item, which must be an object carrying it.
fn merge_key_value<'v>(item: &'v Value, merge_key: &str) -> Result<&'v Value, PatchError> {
    match item {
        Value::Object(map) => map
            .get(merge_key)
            .ok_or_else(|| no_merge_key(map, merge_key)),
        other => Err(bad_arg_type("map[string]interface {}", other)),
    }
}

/// What identifies an item for ordering: its merge key for objects, itself for primitives.
fn identity<'v>(item: &'v Value, merge_key: Option<&str>) -> Option<&'v Value> {
    match merge_key {
        Some(key) => item.as_object().and_then(|map| map.get(key)),
        None => Some(item),
    }
}

/// A text equal for two JSON values exactly when `==` holds: object members sorted, floats
/// zero without a sign. Lets lists be indexed by hash instead of searched item by item.
fn canonical(value: &Value) -> String {
    fn write(value: &Value, out: &mut String) {
        match value {
            Value::Object(map) => {
                let mut members: Vec<(&String, &Value)> = map.iter().collect();
                members.sort_by(|a, b| a.0.cmp(b.0));
                out.push('{');
                for (i, (key, member)) in members.into_iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&Value::String(key.clone()).to_string());
                    out.push(':');
                    write(member, out);
                }
                out.push('}');
            }
            Value::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write(item, out);
                }
                out.push(']');
            }
            Value::Number(n) if n.as_f64() == Some(0.0) && n.is_f64() => out.push_str("0.0"),
            other => out.push_str(&other.to_string()),
        }
    }
    let mut out = String::new();
    write(value, &mut out);
    out
}

/// Where each identity (see [`identity`]) first occurs in a list: what searching the list for
/// an item's identity finds, in constant time.
struct IdentityIndex<'k> {
    first: HashMap<Option<String>, usize>,
    merge_key: Option<&'k str>,
}

impl<'k> IdentityIndex<'k> {
    fn new(list: &[Value], merge_key: Option<&'k str>) -> IdentityIndex<'k> {
        let mut first = HashMap::with_capacity(list.len());
        for (index, item) in list.iter().enumerate() {
            first
                .entry(identity(item, merge_key).map(canonical))
                .or_insert(index);
        }
        IdentityIndex { first, merge_key }
    }

    /// The position of the first item in the list with `item`'s identity.
    fn position(&self, item: &Value) -> Option<usize> {
        self.first
            .get(&identity(item, self.merge_key).map(canonical))
            .copied()
    }
}

/// Splits `items` into those present in `reference` (by identity) and the rest.
fn partition_by_presence(
    items: Vec<Value>,
    reference: &[Value],
    merge_key: Option<&str>,
) -> Result<(Vec<Value>, Vec<Value>), PatchError> {
    let mut present = Vec::new();
    let mut absent = Vec::new();
    let reference = IdentityIndex::new(reference, merge_key);
    for item in items {
        if let Some(key) = merge_key {
            merge_key_value(&item, key)?;
        }
        if reference.position(&item).is_some() {
            present.push(item);
        } else {
            absent.push(item);
        }
    }
    Ok((present, absent))
}

/// Orders patch items by `patch_order` and server-only items by `server_order`, then
/// interleaves them so server-only items keep their place relative to the live list.
fn normalize_element_order(
    patch_items: Vec<Value>,
    server_only: Vec<Value>,
    patch_order: &[Value],
    server_order: &[Value],
    merge_key: Option<&str>,
    kind: ItemKind,
) -> Result<Vec<Value>, PatchError> {
    let patch_items = sort_by_order(patch_items, patch_order, merge_key, kind)?;
    let server_only = sort_by_order(server_only, server_order, merge_key, kind)?;
    Ok(interleave(
        server_only,
        patch_items,
        server_order,
        merge_key,
    ))
}

/// Orders `items` by position in `order` as a stable insertion sort with upstream's comparison
/// would: an item not found in `order` compares as "less" than its neighbour. That
/// comparison is inconsistent, so the result is defined by the insertion process itself: an
/// item not in `order` goes to the front; any other goes right after the last placed item whose
/// position is not greater than its own, or to the front when there is none. Doing exactly
/// that with an ordered map and a linked list takes O(n log n) instead of the sort's O(n²)
/// swaps, so a long patch list cannot stall the server.
fn sort_by_order(
    mut items: Vec<Value>,
    order: &[Value],
    merge_key: Option<&str>,
    kind: ItemKind,
) -> Result<Vec<Value>, PatchError> {
    let mut to_delete = Vec::new();
    if kind == ItemKind::Object {
        if let Some(key) = merge_key {
            for item in items.iter().chain(order.iter()) {
                merge_key_value(item, key)?;
            }
        }
        let (kept, deleted): (Vec<Value>, Vec<Value>) = items
            .into_iter()
            .partition(|item| item.get(PATCH_DIRECTIVE).and_then(Value::as_str) != Some("delete"));
        items = kept;
        to_delete = deleted;
    }
    let order = IdentityIndex::new(order, merge_key);
    // A singly linked list over item indices, and the placed items with a position keyed by
    // (position, placement) so the last one at or before a position is one lookup away.
    let mut next: Vec<Option<usize>> = vec![None; items.len()];
    let mut head: Option<usize> = None;
    let mut placed: BTreeMap<(usize, usize), usize> = BTreeMap::new();
    for (index, item) in items.iter().enumerate() {
        let position = order.position(item);
        let predecessor = position.and_then(|p| {
            placed
                .range(..=(p, usize::MAX))
                .next_back()
                .map(|(_, &at)| at)
        });
        match predecessor {
            Some(before) => {
                next[index] = next[before];
                next[before] = Some(index);
            }
            None => {
                next[index] = head;
                head = Some(index);
            }
        }
        if let Some(p) = position {
            placed.insert((p, index), index);
        }
    }
    let mut slots: Vec<Option<Value>> = items.into_iter().map(Some).collect();
    let mut sorted = Vec::with_capacity(slots.len() + to_delete.len());
    let mut cursor = head;
    while let Some(index) = cursor {
        sorted.extend(slots[index].take());
        cursor = next[index];
    }
    sorted.extend(to_delete);
    Ok(sorted)
}

/// [`sort_by_order`] on objects merged by `merge_key`, for tests that compare it with the
/// insertion sort it replaces.
#[cfg(test)]
pub(crate) fn sort_by_order_for_tests(
    items: Vec<Value>,
    order: &[Value],
    merge_key: &str,
) -> Vec<Value> {
    sort_by_order(items, order, Some(merge_key), ItemKind::Object).expect("items with merge keys")
}

/// Inserts each server-only item before the first patch item that follows it in the live list.
fn interleave(
    server_only: Vec<Value>,
    patch_items: Vec<Value>,
    server_order: &[Value],
    merge_key: Option<&str>,
) -> Vec<Value> {
    let mut out = Vec::with_capacity(server_only.len() + patch_items.len());
    let server_order = IdentityIndex::new(server_order, merge_key);
    let mut left = server_only.into_iter().peekable();
    let mut right = patch_items.into_iter().peekable();
    loop {
        let take_left = match (left.peek(), right.peek()) {
            (None, None) => break,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some(l), Some(r)) => matches!(
                (server_order.position(l), server_order.position(r)),
                (Some(i), Some(j)) if i < j
            ),
        };
        let next = if take_left { left.next() } else { right.next() };
        out.extend(next);
    }
    out
}

/// Applies `$retainKeys`: original keys not listed are cleared; every non-null patch field must
/// be listed.
fn apply_retain_keys(original: &mut Object, patch: &mut Object) -> Result<(), PatchError> {
    let Some(retain) = patch.shift_remove(RETAIN_KEYS_DIRECTIVE) else {
        return Ok(());
    };
    let Value::Array(retain) = retain else {
        return Err(PatchError::MalformedPatch(BAD_RETAIN_KEYS.to_string()));
    };
    let retained: Vec<&str> = retain.iter().filter_map(Value::as_str).collect();
    let unlisted = patch.iter().any(|(key, value)| {
        !value.is_null()
            && !key.starts_with(DELETE_FROM_PRIMITIVE_LIST_PREFIX)
            && !key.starts_with(SET_ELEMENT_ORDER_PREFIX)
            && !retained.contains(&key.as_str())
    });
    if unlisted {
        return Err(PatchError::MalformedPatch(BAD_RETAIN_KEYS.to_string()));
    }
    original.retain(|key, _| retained.contains(&key.as_str()));
    Ok(())
}

/// Processes every `$setElementOrder/<field>` with its list: merges the list, then orders it
/// as the directive says, keeping server-only items near their live neighbours. The merged
/// list is removed from `patch` so the main loop does not merge it again.
fn apply_element_orders(
    original: &mut Object,
    patch: &mut Object,
    schema: Schema,
) -> Result<(), PatchError> {
    let directive_keys: Vec<String> = patch
        .keys()
        .filter(|key| key.starts_with(SET_ELEMENT_ORDER_PREFIX))
        .cloned()
        .collect();
    for directive_key in directive_keys {
        let order = patch.shift_remove(&directive_key).unwrap_or(Value::Null);
        let Value::Array(order) = order else {
            return Err(bad_arg_type("[]interface {}", &order));
        };
        let field = directive_target(&directive_key, SET_ELEMENT_ORDER_PREFIX)
            .ok_or_else(|| PatchError::MalformedPatch(BAD_SET_ELEMENT_ORDER.to_string()))?
            .to_string();
        let original_list = list_at(original, &field)?;
        let patch_list = list_at(patch, &field)?;
        let (child, strategy) = schema.field(&field);
        let merge_key = match strategy {
            Strategy::MergeByKey(key) => Some(key),
            _ => None,
        };
        if let Some(patch_list) = &patch_list {
            validate_against_order(patch_list, &order, merge_key)?;
        }

        let server_order = original_list.clone().unwrap_or_default();
        let merged = match (original_list, patch.shift_remove(&field)) {
            (Some(current), Some(Value::Array(patch_list))) => {
                merge_list_field(current, patch_list, child, strategy, false)?
            }
            (Some(current), _) => current,
            (None, Some(Value::Array(patch_list))) => strip_list(patch_list),
            (None, _) => continue,
        };

        let is_merge_list = matches!(strategy, Strategy::MergeByKey(_) | Strategy::MergeSet);
        let kind = common_item_kind(&[&server_order, patch_list.as_deref().unwrap_or(&[])])?;
        let ordered = match kind {
            Some(kind) if is_merge_list => {
                let (listed, unlisted) = partition_by_presence(merged, &order, merge_key)?;
                normalize_element_order(listed, unlisted, &order, &server_order, merge_key, kind)?
            }
            _ => merged,
        };
        original.insert(field, Value::Array(ordered));
    }
    Ok(())
}

/// The list stored at `field`, if any; anything but a list there is an error.
fn list_at(map: &Object, field: &str) -> Result<Option<Vec<Value>>, PatchError> {
    match map.get(field) {
        None => Ok(None),
        Some(Value::Array(list)) => Ok(Some(list.clone())),
        Some(other) => Err(bad_arg_type("[]interface {}", other)),
    }
}

/// Checks that the patch list's items appear in the same relative order as in the
/// `$setElementOrder` list (deletions aside), as upstream requires.
fn validate_against_order(
    patch_list: &[Value],
    order: &[Value],
    merge_key: Option<&str>,
) -> Result<(), PatchError> {
    if order.is_empty() || patch_list.is_empty() {
        return Ok(());
    }
    let mut items: Vec<&Value> = Vec::with_capacity(patch_list.len());
    for item in patch_list {
        if merge_key.is_some() {
            if !item.is_object() {
                return Err(bad_arg_type("map[string]interface {}", item));
            }
            if item.get(PATCH_DIRECTIVE).and_then(Value::as_str) == Some("delete") {
                continue;
            }
        }
        items.push(item);
    }
    let (mut patch_index, mut order_index) = (0, 0);
    while patch_index < items.len() && order_index < order.len() {
        let item = items[patch_index];
        if item.get(PATCH_DIRECTIVE).is_some() {
            patch_index += 1;
            continue;
        }
        let same = match merge_key {
            None => item == &order[order_index],
            Some(key) => merge_key_value(item, key)? == merge_key_value(&order[order_index], key)?,
        };
        if same {
            patch_index += 1;
        }
        order_index += 1;
    }
    if patch_index < items.len() {
        return Err(PatchError::MergeFailed(format!(
            "The order in patch list:\n{}\n doesn't match {SET_ELEMENT_ORDER_PREFIX} list:\n{}\n",
            go_format(&Value::Array(patch_list.to_vec())),
            go_format(&Value::Array(order.to_vec()))
        )));
    }
    Ok(())
}

/// The field a `<prefix>/<field>` directive key names.
fn directive_target<'k>(key: &'k str, prefix: &str) -> Option<&'k str> {
    match key.split_once('/') {
        Some((head, field)) if head == prefix => Some(field),
        _ => None,
    }
}

/// Removes what a patch value may carry but a stored object must not: maps holding `$patch`
/// (dropped whole, as upstream does), other directive keys, and `null` fields. `None` when the
/// value itself is dropped.
pub(crate) fn strip_value(value: Value) -> Option<Value> {
    match value {
        Value::Object(map) => {
            if map.contains_key(PATCH_DIRECTIVE) {
                None
            } else {
                Some(Value::Object(strip_object(map)))
            }
        }
        Value::Array(items) => Some(Value::Array(strip_list(items))),
        other => Some(other),
    }
}

fn strip_object(map: Object) -> Object {
    map.into_iter()
        .filter(|(key, value)| !value.is_null() && !is_directive_key(key))
        .filter_map(|(key, value)| strip_value(value).map(|v| (key, v)))
        .collect()
}

fn strip_list(items: Vec<Value>) -> Vec<Value> {
    items.into_iter().filter_map(strip_value).collect()
}

fn is_directive_key(key: &str) -> bool {
    key == PATCH_DIRECTIVE
        || key == RETAIN_KEYS_DIRECTIVE
        || key.starts_with(SET_ELEMENT_ORDER_PREFIX)
        || key.starts_with(DELETE_FROM_PRIMITIVE_LIST_PREFIX)
}

fn unknown_patch_type(directive: &Value, map: &Object) -> PatchError {
    PatchError::MergeFailed(format!(
        "unknown patch type: {} in map: {}",
        go_format(directive),
        go_format(&Value::Object(map.clone()))
    ))
}

fn no_merge_key(map: &Object, merge_key: &str) -> PatchError {
    PatchError::MergeFailed(format!(
        "map: {} does not contain declared merge key: {merge_key}",
        go_format(&Value::Object(map.clone()))
    ))
}

fn bad_arg_type(expected: &str, actual: &Value) -> PatchError {
    PatchError::MergeFailed(format!(
        "expected a {expected}, but received a {}",
        go_type_name(actual)
    ))
}

/// The Go type a decoded JSON value has, as `reflect.TypeOf` prints it.
pub(crate) fn go_type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "<nil>",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_f64() => "float64",
        Value::Number(_) => "int64",
        Value::String(_) => "string",
        Value::Array(_) => "[]interface {}",
        Value::Object(_) => "map[string]interface {}",
    }
}

/// Renders a decoded JSON value as Go's `%v` does, for messages that quote patch content.
pub(crate) fn go_format(value: &Value) -> String {
    match value {
        Value::Null => "<nil>".to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        Value::Array(items) => {
            let inner: Vec<String> = items.iter().map(go_format).collect();
            format!("[{}]", inner.join(" "))
        }
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            let inner: Vec<String> = entries
                .iter()
                .map(|(k, v)| format!("{k}:{}", go_format(v)))
                .collect();
            format!("map[{}]", inner.join(" "))
        }
    }
}
