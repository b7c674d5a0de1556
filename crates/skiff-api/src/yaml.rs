//! YAML in and out, in one place: request bodies, apply patches, manifests and kubeconfigs all
//! go through these functions, so the library behind them (`serde-saphyr`, a maintained
//! pure-Rust parser with resource budgets, the one kube-rs moved to) and its limits are chosen
//! once.
//!
//! Every text is first measured by [`crate::nesting`]: past Kubernetes' depth limit it is
//! refused with Kubernetes' message before any parsing. Below that, the parser's own budget
//! stops at [`MAX_YAML_DEPTH`], deep enough for any Kubernetes object and shallow enough for
//! the parser's recursion and for storage to read the result back.

use std::fmt;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::nesting::{yaml_excess_line, KUBERNETES_MAX_DEPTH, MAX_YAML_DEPTH};

/// Why a YAML text could not be read or written. Its text follows Kubernetes' YAML decoder
/// where Kubernetes has one (`line N: exceeded max depth of 10000`), so callers can prefix it
/// as Kubernetes does (`error converting YAML to JSON: yaml: ...`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct YamlError {
    message: String,
}

impl fmt::Display for YamlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for YamlError {}

impl YamlError {
    fn parse(error: serde_saphyr::Error) -> Self {
        // The library may render a multi-line report; a Status message is one line.
        let message = error
            .to_string()
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty())
            .collect::<Vec<_>>()
            .join(" ");
        YamlError { message }
    }

    /// Kubernetes' decoder names the line only past the first one.
    fn too_deep(line_index: usize) -> Self {
        let place = if line_index == 0 {
            String::new()
        } else {
            format!("line {}: ", line_index + 1)
        };
        YamlError {
            message: format!("{place}exceeded max depth of {KUBERNETES_MAX_DEPTH}"),
        }
    }
}

/// The parser settings every read uses: one-line errors, nesting bounded as [`MAX_YAML_DEPTH`]
/// says, and room for every node a body within the request size limit can hold.
fn options() -> serde_saphyr::Options {
    serde_saphyr::options! {
        budget: serde_saphyr::budget! {
            max_depth: MAX_YAML_DEPTH,
            max_nodes: 8 * 1024 * 1024,
            max_events: 16 * 1024 * 1024,
        },
        with_snippet: false,
    }
}

/// Refuses a text nested past Kubernetes' limit, before any parsing.
fn check_depth(text: &[u8]) -> Result<(), YamlError> {
    match yaml_excess_line(text, KUBERNETES_MAX_DEPTH) {
        Some(line) => Err(YamlError::too_deep(line)),
        None => Ok(()),
    }
}

/// Reads one YAML document (JSON is YAML too).
pub fn from_slice<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, YamlError> {
    check_depth(bytes)?;
    serde_saphyr::from_slice_with_options(bytes, options()).map_err(YamlError::parse)
}

/// Reads one YAML document from text.
pub fn from_str<T: DeserializeOwned>(text: &str) -> Result<T, YamlError> {
    from_slice(text.as_bytes())
}

/// Reads every document of a `---`-separated stream, as `kubectl apply -f` does.
pub fn documents<T: DeserializeOwned>(text: &str) -> Result<Vec<T>, YamlError> {
    check_depth(text.as_bytes())?;
    serde_saphyr::from_multiple_with_options(text, options()).map_err(YamlError::parse)
}

/// Writes a value as a YAML document.
pub fn to_string<T: Serialize>(value: &T) -> Result<String, YamlError> {
    serde_saphyr::to_string(value).map_err(|e| YamlError {
        message: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::*;

    #[test]
    fn reads_kubernetes_manifests_into_json() {
        let value: Value = from_str(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n  labels: {a: \"1\"}\ndata:\n  n: \"08\"\n  list: |\n    a\n    b\n",
        )
        .unwrap();
        assert_eq!(
            value,
            json!({
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "x", "labels": {"a": "1"}},
                "data": {"n": "08", "list": "a\nb\n"}
            })
        );
        let numbers: Value = from_str("a: 1\nb: 1.5\nc: true\nd: null\ne: [1, x]\n").unwrap();
        assert_eq!(
            numbers,
            json!({"a": 1, "b": 1.5, "c": true, "d": null, "e": [1, "x"]})
        );
    }

    #[test]
    fn reads_every_document_of_a_stream() {
        let docs: Vec<Value> = documents("a: 1\n---\nb: 2\n").unwrap();
        assert_eq!(docs, vec![json!({"a": 1}), json!({"b": 2})]);
    }

    #[test]
    fn writes_yaml_that_reads_back() {
        let value = json!({"clusters": [{"name": "skiff", "cluster": {"server": "https://127.0.0.1:6443"}}]});
        let text = to_string(&value).unwrap();
        assert_eq!(from_str::<Value>(&text).unwrap(), value);
    }

    #[test]
    fn nesting_past_kubernetes_limit_is_refused_with_its_message() {
        let depth = KUBERNETES_MAX_DEPTH + 1;
        let flow = format!("a: {}1{}", "[".repeat(depth), "]".repeat(depth));
        let err = from_str::<Value>(&flow).unwrap_err();
        assert_eq!(err.to_string(), "exceeded max depth of 10000");
        let block = format!("a:\n{}", "- ".repeat(depth));
        let err = from_str::<Value>(&block).unwrap_err();
        assert_eq!(err.to_string(), "line 2: exceeded max depth of 10000");
    }

    #[test]
    fn nesting_past_the_yaml_budget_is_refused_without_exhausting_the_stack() {
        let flow = |depth: usize| format!("{}1{}", "[".repeat(depth), "]".repeat(depth));
        let block = |depth: usize| -> String {
            (0..depth)
                .map(|level| format!("{}k:\n", " ".repeat(level)))
                .chain([format!("{}v: 1\n", " ".repeat(depth))])
                .collect()
        };
        // `block(n)` is n + 1 nested mappings.
        for text in [flow(MAX_YAML_DEPTH), block(MAX_YAML_DEPTH - 1)] {
            let deepest: Value = from_str(&text).unwrap();
            // What YAML accepts, storage reads back.
            let json = serde_json::to_string(&deepest).unwrap();
            assert!(serde_json::from_str::<Value>(&json).is_ok());
        }
        // Deeper, up to Kubernetes' own limit, the parser's budget answers (on this test's
        // 2 MiB stack, which its recursion would otherwise overflow near 90 levels).
        for text in [
            flow(MAX_YAML_DEPTH + 1),
            block(MAX_YAML_DEPTH),
            flow(KUBERNETES_MAX_DEPTH),
            block(2000),
        ] {
            let err = from_str::<Value>(&text).unwrap_err().to_string();
            assert!(!err.contains('\n'), "{err}");
            assert!(
                err.contains("Depth") || err.contains("recursion limit"),
                "{err}"
            );
        }
    }

    #[test]
    fn syntax_errors_are_one_line() {
        let err = from_str::<Value>("a: [oops\n").unwrap_err();
        assert!(!err.to_string().is_empty());
        assert!(!err.to_string().contains('\n'), "{err}");
    }
}
