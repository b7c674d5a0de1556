//! Reading what `kubectl -o json` prints, with the lenient lookups tests want: a missing field
//! reads as empty so the assertion that follows says what was wrong.

use serde_json::Value;

use super::Kubectl;

/// Parses kubectl's JSON output, failing the test with the text when it is not JSON.
pub fn json_of(text: &str) -> Value {
    serde_json::from_str(text)
        .unwrap_or_else(|e| panic!("kubectl printed invalid JSON ({e}):\n{text}"))
}

/// The string at a JSON pointer, or `""` when it is missing or not a string.
pub fn str_at(value: &Value, pointer: &str) -> String {
    value
        .pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

/// The items of a list object (none when it has no `items`).
pub fn items(list: &Value) -> Vec<Value> {
    list["items"].as_array().cloned().unwrap_or_default()
}

impl Kubectl {
    /// Runs `kubectl ARGS -o json`, fails the test unless it succeeds, and parses what it
    /// printed.
    pub fn json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.extend(["-o", "json"]);
        json_of(&self.ok(&all))
    }
}
