//! The agent's pure helpers.

use std::sync::Arc;

use serde_json::{json, Value};

#[test]
fn pods_waiting_for_an_address_are_retried_while_still_bound_here() {
    let waiting: std::collections::BTreeSet<String> =
        ["waits", "deleted"].into_iter().map(String::from).collect();
    let listed: Vec<Arc<Value>> = ["waits", "running"]
        .into_iter()
        .map(|uid| Arc::new(json!({"metadata": {"uid": uid, "name": uid}})))
        .collect();
    let retried: Vec<String> = super::pods_waiting_for_address(&waiting, &listed)
        .iter()
        .map(|pod| {
            pod["metadata"]["uid"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    // The pod deleted while it waited is not retried; one that never waited is not touched.
    assert_eq!(retried, vec!["waits".to_string()]);
}
