//! Field paths and sets of them, with the `FieldsV1` encoding Kubernetes stores in
//! `metadata.managedFields[].fieldsV1`.
//!
//! A set is a tree: each node may itself be a member (the path to it is in the set) and has
//! children. In `FieldsV1`, a member without children is `{}`, a member with children carries a
//! `".": {}` entry beside them, and a node that is only a parent lists its children.

use std::collections::BTreeMap;
use std::fmt;

use serde_json::{Map, Value};

/// One step of a path into an object. The variant order is the order Kubernetes sorts them in
/// (field names, then keys, then values, then indices).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PathElement {
    /// A field of a map (`f:name`).
    Field(String),
    /// An item of a list-map, by its key fields, kept as the JSON object with sorted keys
    /// (`k:{"name":"web"}`).
    Key(String),
    /// An item of a set, by its value in JSON (`v:"example.com/x"`).
    Value(String),
    /// An item of a list by position (`i:0`); only for lists without keys.
    Index(usize),
}

impl PathElement {
    /// The element naming `name` in a map.
    pub fn field(name: &str) -> PathElement {
        PathElement::Field(name.to_string())
    }

    /// The element naming a list-map item by its key fields, in any order.
    pub fn key(fields: &[(&str, &Value)]) -> PathElement {
        let mut sorted: Vec<&(&str, &Value)> = fields.iter().collect();
        sorted.sort_by(|a, b| a.0.cmp(b.0));
        let mut text = String::from("{");
        for (index, (name, value)) in sorted.into_iter().enumerate() {
            if index > 0 {
                text.push(',');
            }
            text.push_str(&Value::String((*name).to_string()).to_string());
            text.push(':');
            text.push_str(&value.to_string());
        }
        text.push('}');
        PathElement::Key(text)
    }

    /// The element naming a set item by value.
    pub fn value(value: &Value) -> PathElement {
        PathElement::Value(value.to_string())
    }

    fn encode(&self) -> String {
        match self {
            PathElement::Field(name) => format!("f:{name}"),
            PathElement::Key(key) => format!("k:{key}"),
            PathElement::Value(value) => format!("v:{value}"),
            PathElement::Index(index) => format!("i:{index}"),
        }
    }

    fn decode(text: &str) -> Result<PathElement, String> {
        let (prefix, rest) = text
            .split_once(':')
            .ok_or_else(|| format!("invalid path element {text:?}"))?;
        match prefix {
            "f" => Ok(PathElement::Field(rest.to_string())),
            "k" => match serde_json::from_str::<Value>(rest) {
                Ok(Value::Object(map)) => {
                    let fields: Vec<(&str, &Value)> =
                        map.iter().map(|(k, v)| (k.as_str(), v)).collect();
                    Ok(PathElement::key(&fields))
                }
                _ => Err(format!("invalid key in path element {text:?}")),
            },
            "v" => serde_json::from_str::<Value>(rest)
                .map(|v| PathElement::value(&v))
                .map_err(|_| format!("invalid value in path element {text:?}")),
            "i" => rest
                .parse::<usize>()
                .map(PathElement::Index)
                .map_err(|_| format!("invalid index in path element {text:?}")),
            _ => Err(format!("unknown path element prefix in {text:?}")),
        }
    }
}

/// Formats a value as Kubernetes prints it inside a path: strings quoted, others as JSON.
fn write_path_value(f: &mut fmt::Formatter<'_>, value: &Value) -> fmt::Result {
    match value {
        Value::Object(map) => {
            f.write_str("{")?;
            for (index, (k, v)) in map.iter().enumerate() {
                if index > 0 {
                    f.write_str(",")?;
                }
                write!(f, "{k}=")?;
                write_path_value(f, v)?;
            }
            f.write_str("}")
        }
        other => write!(f, "{other}"),
    }
}

impl fmt::Display for PathElement {
    /// The form conflict messages use: `.name`, `[name="web"]`, `[=value]`, `[0]`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PathElement::Field(name) => write!(f, ".{name}"),
            PathElement::Key(key) => {
                let parsed: Map<String, Value> = serde_json::from_str(key).unwrap_or_default();
                f.write_str("[")?;
                for (index, (k, v)) in parsed.iter().enumerate() {
                    if index > 0 {
                        f.write_str(",")?;
                    }
                    write!(f, "{k}=")?;
                    write_path_value(f, v)?;
                }
                f.write_str("]")
            }
            PathElement::Value(value) => {
                let parsed: Value = serde_json::from_str(value).unwrap_or(Value::Null);
                f.write_str("[=")?;
                write_path_value(f, &parsed)?;
                f.write_str("]")
            }
            PathElement::Index(index) => write!(f, "[{index}]"),
        }
    }
}

/// A path from the object root.
pub type Path = Vec<PathElement>;

/// Formats a path as conflict messages show it, e.g. `.spec.replicas`.
pub fn path_string(path: &[PathElement]) -> String {
    path.iter().map(ToString::to_string).collect()
}

/// A set of field paths, as a tree.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldSet {
    member: bool,
    children: BTreeMap<PathElement, FieldSet>,
}

impl FieldSet {
    /// The empty set.
    pub fn new() -> FieldSet {
        FieldSet::default()
    }

    /// Whether no path is in the set.
    pub fn is_empty(&self) -> bool {
        !self.member && self.children.values().all(FieldSet::is_empty)
    }

    /// Adds `path`.
    pub fn insert(&mut self, path: &[PathElement]) {
        match path.split_first() {
            None => self.member = true,
            Some((first, rest)) => self.children.entry(first.clone()).or_default().insert(rest),
        }
    }

    /// Whether `path` itself is in the set.
    pub fn contains(&self, path: &[PathElement]) -> bool {
        self.node(path).is_some_and(|n| n.member)
    }

    /// Whether `path` or any path below it is in the set.
    pub fn contains_at_or_below(&self, path: &[PathElement]) -> bool {
        self.node(path).is_some_and(|n| !n.is_empty())
    }

    fn node(&self, path: &[PathElement]) -> Option<&FieldSet> {
        match path.split_first() {
            None => Some(self),
            Some((first, rest)) => self.children.get(first)?.node(rest),
        }
    }

    /// Removes `path` and everything below it.
    pub fn remove_subtree(&mut self, path: &[PathElement]) {
        match path.split_first() {
            None => *self = FieldSet::default(),
            Some((first, rest)) => {
                if let Some(child) = self.children.get_mut(first) {
                    child.remove_subtree(rest);
                    if child.is_empty() {
                        self.children.remove(first);
                    }
                }
            }
        }
    }

    /// Removes `path` itself, keeping paths below it.
    pub fn remove(&mut self, path: &[PathElement]) {
        match path.split_first() {
            None => self.member = false,
            Some((first, rest)) => {
                if let Some(child) = self.children.get_mut(first) {
                    child.remove(rest);
                    if child.is_empty() {
                        self.children.remove(first);
                    }
                }
            }
        }
    }

    /// Every path in the set, parents before children, in Kubernetes' sort order.
    pub fn paths(&self) -> Vec<Path> {
        let mut out = Vec::new();
        let mut prefix = Vec::new();
        self.collect(&mut prefix, &mut out);
        out
    }

    fn collect(&self, prefix: &mut Path, out: &mut Vec<Path>) {
        if self.member {
            out.push(prefix.clone());
        }
        for (element, child) in &self.children {
            prefix.push(element.clone());
            child.collect(prefix, out);
            prefix.pop();
        }
    }

    /// Adds every path of `other`.
    pub fn union_with(&mut self, other: &FieldSet) {
        self.member |= other.member;
        for (element, child) in &other.children {
            self.children
                .entry(element.clone())
                .or_default()
                .union_with(child);
        }
    }

    /// The paths of `self` that are not in `other`.
    pub fn difference(&self, other: &FieldSet) -> FieldSet {
        let mut out = self.clone();
        for path in other.paths() {
            out.remove(&path);
        }
        out
    }

    /// The paths in both sets.
    pub fn intersection(&self, other: &FieldSet) -> FieldSet {
        let mut out = FieldSet::new();
        for path in self.paths() {
            if other.contains(&path) {
                out.insert(&path);
            }
        }
        out
    }

    /// The set in `FieldsV1` form.
    pub fn to_fields_v1(&self) -> Value {
        let mut map = Map::new();
        if self.member && !self.children.is_empty() {
            map.insert(".".to_string(), Value::Object(Map::new()));
        }
        for (element, child) in &self.children {
            if child.is_empty() {
                continue;
            }
            map.insert(element.encode(), child.to_fields_v1());
        }
        Value::Object(map)
    }

    /// Reads a `FieldsV1` value; the message says what is malformed.
    pub fn from_fields_v1(value: &Value) -> Result<FieldSet, String> {
        let mut set = FieldSet::new();
        let Value::Object(map) = value else {
            return Err("fieldsV1 must be an object".to_string());
        };
        for (name, child) in map {
            if name == "." {
                set.member = true;
                continue;
            }
            let element = PathElement::decode(name)?;
            let mut node = FieldSet::from_fields_v1(child)?;
            if node.children.is_empty() {
                node.member = true;
            }
            set.children.insert(element, node);
        }
        Ok(set)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn fields_v1_round_trips_members_parents_keys_and_values() {
        let encoded = json!({
            "f:metadata": {"f:labels": {".": {}, "f:app": {}}},
            "f:spec": {"f:containers": {"k:{\"name\":\"web\"}": {".": {}, "f:image": {}}},
                       "f:finalizers": {"v:\"a\"": {}}, "f:args": {"i:0": {}}}
        });
        let set = FieldSet::from_fields_v1(&encoded).expect("valid fieldsV1");
        assert_eq!(set.to_fields_v1(), encoded);
        assert!(set.contains(&[PathElement::field("metadata"), PathElement::field("labels")]));
        assert!(!set.contains(&[PathElement::field("spec")]));
        assert_eq!(set.paths().len(), 6);
    }

    #[test]
    fn keys_sort_their_fields_and_print_as_kubernetes_does() {
        let port = json!(80);
        let protocol = json!("TCP");
        let key = PathElement::key(&[("protocol", &protocol), ("containerPort", &port)]);
        assert_eq!(
            key.encode(),
            "k:{\"containerPort\":80,\"protocol\":\"TCP\"}"
        );
        let path = vec![
            PathElement::field("spec"),
            PathElement::field("ports"),
            key,
            PathElement::field("name"),
        ];
        assert_eq!(
            path_string(&path),
            ".spec.ports[containerPort=80,protocol=\"TCP\"].name"
        );
        assert_eq!(PathElement::value(&json!("x")).to_string(), "[=\"x\"]");
    }

    #[test]
    fn malformed_fields_v1_is_an_error_not_a_panic() {
        for bad in [
            json!([]),
            json!({"x": {}}),
            json!({"k:[1]": {}}),
            json!({"i:-1": {}}),
            json!({"f:a": 3}),
        ] {
            assert!(FieldSet::from_fields_v1(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn difference_and_subtree_removal_keep_other_paths() {
        let mut set = FieldSet::new();
        let a = [PathElement::field("a")];
        let ab = [PathElement::field("a"), PathElement::field("b")];
        let c = [PathElement::field("c")];
        set.insert(&a);
        set.insert(&ab);
        set.insert(&c);
        let mut only_a = FieldSet::new();
        only_a.insert(&a);
        let rest = set.difference(&only_a);
        assert!(!rest.contains(&a) && rest.contains(&ab) && rest.contains(&c));
        set.remove_subtree(&a);
        assert_eq!(set.paths(), vec![c.to_vec()]);
    }
}
