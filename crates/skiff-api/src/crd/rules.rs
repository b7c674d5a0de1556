//! CEL validation rules of custom resource schemas (`x-kubernetes-validations`): each rule is
//! evaluated with `self` bound to the value of the field that declares it and, for transition
//! rules, `oldSelf` bound to the stored value (a rule naming `oldSelf` runs only on updates where
//! the field had a value), as apiextensions-apiserver evaluates them.
//!
//! A rule that is false is an `Invalid value` whose value is the field's schema type and whose
//! detail is the rule's `message` (or `failed rule: <rule>`); a rule that does not compile or
//! fails to evaluate is reported with the evaluator's words.

use serde_json::Value;

use crate::errors::FieldError;

fn child_path(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// The schema type Kubernetes shows as the value of a failed rule's error.
fn shown_type(schema: &Value, value: &Value) -> String {
    match schema.get("type").and_then(Value::as_str) {
        Some(t) if !t.is_empty() => t.to_string(),
        _ => match value {
            Value::Object(_) => "object",
            Value::Array(_) => "array",
            Value::String(_) => "string",
            Value::Number(n) if n.is_f64() => "number",
            Value::Number(_) => "integer",
            Value::Bool(_) => "boolean",
            Value::Null => "null",
        }
        .to_string(),
    }
}

/// Whether the rule refers to `oldSelf`, making it a transition rule.
fn is_transition_rule(rule: &str) -> bool {
    rule.match_indices("oldSelf").any(|(i, _)| {
        let before = rule[..i].chars().next_back();
        let after = rule[i + "oldSelf".len()..].chars().next();
        let ident = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '_');
        !ident(before) && !ident(after)
    })
}

/// The longest rule accepted, in bytes.
pub const MAX_RULE_BYTES: usize = 2048;

/// The deepest nesting of brackets, and the longest run of prefix operators, a rule may have.
pub const MAX_RULE_NESTING: usize = 24;

/// The stack the rules of one object are evaluated on: the CEL parser and evaluator recurse
/// once per nesting level, so rules are bounded ([`check_bounds`]) and run on a thread of their
/// own with room for the deepest bounded rule.
const RULE_STACK_BYTES: usize = 64 * 1024 * 1024;

/// Refuses a rule too long or too deeply nested to compile and run within the evaluation
/// stack (Kubernetes bounds rules by an estimated cost instead).
pub fn check_bounds(rule: &str) -> Result<(), String> {
    if rule.len() > MAX_RULE_BYTES {
        return Err(format!(
            "rule is {} bytes long, more than the {MAX_RULE_BYTES} allowed",
            rule.len()
        ));
    }
    let mut depth = 0usize;
    let mut prefix_run = 0usize;
    for c in rule.chars() {
        match c {
            '(' | '[' | '{' => depth = depth.saturating_add(1),
            ')' | ']' | '}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        match c {
            '!' | '-' => prefix_run = prefix_run.saturating_add(1),
            c if c.is_whitespace() => {}
            _ => prefix_run = 0,
        }
        if depth > MAX_RULE_NESTING || prefix_run > MAX_RULE_NESTING {
            return Err(format!(
                "rule nests more than {MAX_RULE_NESTING} levels deep"
            ));
        }
    }
    Ok(())
}

/// Evaluates one rule; `Ok(true)` when it holds.
fn evaluate(rule: &str, value: &Value, old: Option<&Value>) -> Result<bool, String> {
    match run(rule, value, old)? {
        cel::Value::Bool(result) => Ok(result),
        other => Err(format!(
            "rule did not evaluate to a boolean: {:?}",
            other.type_of()
        )),
    }
}

/// The message a failed rule's `messageExpression` gives, when it evaluates to a non-empty
/// string (Kubernetes falls back to `message` otherwise).
fn expressed_message(expression: &str, value: &Value, old: Option<&Value>) -> Option<String> {
    match run(expression, value, old) {
        Ok(cel::Value::String(text)) if !text.trim().is_empty() => Some(text.to_string()),
        _ => None,
    }
}

/// Compiles and runs an expression with `self` (and `oldSelf`) bound.
fn run(rule: &str, value: &Value, old: Option<&Value>) -> Result<cel::Value, String> {
    check_bounds(rule)?;
    let program = cel::Program::compile(rule).map_err(|e| format!("compilation failed: {e}"))?;
    let mut context = cel::Context::default();
    context
        .add_variable("self", value)
        .map_err(|e| e.to_string())?;
    if let Some(old) = old {
        context
            .add_variable("oldSelf", old)
            .map_err(|e| e.to_string())?;
    }
    program.execute(&context).map_err(|e| e.to_string())
}

/// Whether a schema declares any rule, anywhere.
pub fn has_rules(schema: &Value) -> bool {
    match schema {
        Value::Object(map) => {
            map.contains_key("x-kubernetes-validations") || map.values().any(has_rules)
        }
        Value::Array(items) => items.iter().any(has_rules),
        _ => false,
    }
}

/// Runs `work` on a thread of its own whose stack has room for the deepest expression
/// [`check_bounds`] allows; `None` when the thread could not start or panicked. Admission CEL
/// (`crate::admission_cel`) evaluates on it too.
pub fn run_on_rule_stack<T: Send>(work: impl FnOnce() -> T + Send) -> Option<T> {
    std::thread::scope(|scope| {
        std::thread::Builder::new()
            .name("cel-rules".into())
            .stack_size(RULE_STACK_BYTES)
            .spawn_scoped(scope, work)
            .ok()
            .and_then(|handle| handle.join().ok())
    })
}

/// Checks every rule of `schema` on `value` and below, pushing what fails, on a thread with a
/// stack sized for the deepest rule allowed. `old` is the stored object, on updates.
pub fn validate_object(
    schema: &Value,
    value: &Value,
    old: Option<&Value>,
    errs: &mut Vec<FieldError>,
) {
    let outcome = run_on_rule_stack(|| {
        let mut found = Vec::new();
        validate(schema, value, old, "", &mut found);
        found
    });
    match outcome {
        Some(found) => errs.extend(found),
        None => errs.push(FieldError::invalid(
            "",
            &Value::String("object".into()),
            "the validation rules could not be evaluated",
        )),
    }
}

/// Checks every rule of `schema` on `value` and below, pushing what fails. `old` is the stored
/// value at the same place, on updates.
pub fn validate(
    schema: &Value,
    value: &Value,
    old: Option<&Value>,
    path: &str,
    errs: &mut Vec<FieldError>,
) {
    if value.is_null() {
        return;
    }
    if let Some(Value::Array(rules)) = schema.get("x-kubernetes-validations") {
        for rule in rules {
            let Some(text) = rule.get("rule").and_then(Value::as_str) else {
                continue;
            };
            let transition = is_transition_rule(text);
            if transition && old.is_none() {
                continue;
            }
            let shown = Value::String(shown_type(schema, value));
            match evaluate(text, value, old.filter(|_| transition)) {
                Ok(true) => {}
                Ok(false) => {
                    let expressed = rule
                        .get("messageExpression")
                        .and_then(Value::as_str)
                        .and_then(|e| expressed_message(e, value, old.filter(|_| transition)));
                    let detail = match (expressed, rule.get("message").and_then(Value::as_str)) {
                        (Some(m), _) => m,
                        (None, Some(m)) if !m.is_empty() => m.to_string(),
                        _ => format!("failed rule: {text}"),
                    };
                    let field = match rule.get("fieldPath").and_then(Value::as_str) {
                        Some(extra) if !extra.is_empty() => format!("{path}{extra}"),
                        _ => path.to_string(),
                    };
                    errs.push(FieldError::invalid(field, &shown, detail));
                }
                Err(error) => errs.push(FieldError::invalid(path, &shown, error)),
            }
        }
    }
    match value {
        Value::Object(map) => {
            let properties = schema.get("properties").and_then(Value::as_object);
            let additional = schema.get("additionalProperties").filter(|a| a.is_object());
            for (key, field) in map {
                if path.is_empty() && matches!(key.as_str(), "metadata" | "apiVersion" | "kind") {
                    continue;
                }
                let Some(field_schema) = properties.and_then(|p| p.get(key)).or(additional) else {
                    continue;
                };
                let old_field = old.and_then(|o| o.get(key));
                validate(field_schema, field, old_field, &child_path(path, key), errs);
            }
        }
        Value::Array(items) => {
            let Some(item_schema) = schema.get("items") else {
                return;
            };
            // Items are matched with their stored selves only in map lists, by their keys.
            let keys: Vec<&str> = schema
                .get("x-kubernetes-list-map-keys")
                .and_then(Value::as_array)
                .map(|k| k.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let map_list =
                schema.get("x-kubernetes-list-type").and_then(Value::as_str) == Some("map");
            for (i, item) in items.iter().enumerate() {
                let old_item = if map_list && !keys.is_empty() {
                    old.and_then(Value::as_array).and_then(|olds| {
                        olds.iter()
                            .find(|o| keys.iter().all(|k| o.get(*k) == item.get(*k)))
                    })
                } else {
                    None
                };
                validate(item_schema, item, old_item, &format!("{path}[{i}]"), errs);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Value {
        json!({"type": "object", "properties": {"spec": {
        "type": "object",
        "x-kubernetes-validations": [
            {"rule": "self.replicas <= self.maxReplicas", "message": "replicas must not exceed maxReplicas"},
            {"rule": "self.replicas >= oldSelf.replicas", "message": "replicas may not decrease"},
            {"rule": "!has(self.tag) || self.tag.startsWith('v')"},
            {"rule": "self.replicas != 7", "message": "not this",
             "messageExpression": "'replicas may not be ' + string(self.replicas)"}
        ],
        "properties": {
            "replicas": {"type": "integer"},
            "maxReplicas": {"type": "integer"},
            "tag": {"type": "string"},
            "name": {"type": "string", "x-kubernetes-validations": [
                {"rule": "self == oldSelf", "message": "name is immutable"}]}
        }}}})
    }

    fn messages(new: Value, old: Option<Value>) -> Vec<String> {
        let mut errs = Vec::new();
        validate(&schema(), &new, old.as_ref(), "", &mut errs);
        errs.iter().map(FieldError::full).collect()
    }

    #[test]
    fn rules_table_with_self_and_old_self() {
        let rows: Vec<(Value, Option<Value>, Vec<&str>)> = vec![
            (json!({"spec": {"replicas": 2, "maxReplicas": 3}}), None, vec![]),
            (
                json!({"spec": {"replicas": 4, "maxReplicas": 3}}),
                None,
                vec!["spec: Invalid value: \"object\": replicas must not exceed maxReplicas"],
            ),
            (
                json!({"spec": {"replicas": 1, "maxReplicas": 3}}),
                Some(json!({"spec": {"replicas": 2, "maxReplicas": 3}})),
                vec!["spec: Invalid value: \"object\": replicas may not decrease"],
            ),
            (
                json!({"spec": {"replicas": 1, "maxReplicas": 3, "tag": "x1"}}),
                None,
                vec!["spec: Invalid value: \"object\": failed rule: !has(self.tag) || self.tag.startsWith('v')"],
            ),
            (
                json!({"spec": {"replicas": 1, "maxReplicas": 3, "name": "b"}}),
                Some(json!({"spec": {"replicas": 1, "maxReplicas": 3, "name": "a"}})),
                vec!["spec.name: Invalid value: \"string\": name is immutable"],
            ),
            (
                json!({"spec": {"replicas": 1, "maxReplicas": 3, "name": "b"}}),
                Some(json!({"spec": {"replicas": 1, "maxReplicas": 3}})),
                vec![],
            ),
            (
                json!({"spec": {"replicas": 7, "maxReplicas": 9}}),
                None,
                vec!["spec: Invalid value: \"object\": replicas may not be 7"],
            ),
        ];
        assert_eq!(rows.len(), 7);
        for (new, old, expected) in rows {
            assert_eq!(messages(new.clone(), old), expected, "{new}");
        }
    }

    #[test]
    fn the_deepest_and_longest_rules_allowed_run_and_deeper_ones_are_refused() {
        let nested = format!(
            "{}self.replicas{} >= 0",
            "(".repeat(MAX_RULE_NESTING),
            ")".repeat(MAX_RULE_NESTING)
        );
        let negated = format!("{}true", "!".repeat(MAX_RULE_NESTING));
        let long_sum = format!("{}0 >= 0", "1 + ".repeat(MAX_RULE_BYTES / 4 - 2));
        let schema = |rule: &str| {
            json!({"type": "object", "properties": {"spec": {"type": "object",
                "x-kubernetes-validations": [{"rule": rule}],
                "properties": {"replicas": {"type": "integer"}}}}})
        };
        for rule in [&nested, &negated, &long_sum] {
            assert!(check_bounds(rule).is_ok(), "{rule}");
            let mut errs = Vec::new();
            validate_object(
                &schema(rule),
                &json!({"spec": {"replicas": 1}}),
                None,
                &mut errs,
            );
            assert!(errs.is_empty(), "{rule}: {errs:?}");
        }
        let too_deep = format!(
            "{}1{} == 1",
            "(".repeat(MAX_RULE_NESTING + 1),
            ")".repeat(MAX_RULE_NESTING + 1)
        );
        let too_negated = format!("{}true", "!".repeat(MAX_RULE_NESTING + 1));
        let too_long = format!("{}0 >= 0", "1 + ".repeat(MAX_RULE_BYTES / 4));
        for rule in [&too_deep, &too_negated, &too_long] {
            assert!(check_bounds(rule).is_err(), "{rule}");
            let mut errs = Vec::new();
            validate_object(
                &schema(rule),
                &json!({"spec": {"replicas": 1}}),
                None,
                &mut errs,
            );
            assert_eq!(errs.len(), 1, "{rule}");
        }
    }

    #[test]
    fn transition_rules_are_told_from_names_containing_old_self() {
        assert!(is_transition_rule("self == oldSelf"));
        assert!(!is_transition_rule("self.oldSelfish == 1"));
    }
}
