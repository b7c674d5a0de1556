//! Hostile input against a running `skiff up`: oversized bodies and headers, and the inputs
//! that used to panic the server, each answered with a Kubernetes `Status` while the server
//! keeps serving.
//!
//! Run with `cargo test -p skiff --test hostile_input`. Needs `kubectl` on the PATH.

mod support;

use support::json::json_of;
use support::{Kubectl, Skiff};

fn token(skiff: &Skiff) -> String {
    std::fs::read_to_string(skiff.data_dir().join("token"))
        .unwrap_or_else(|e| panic!("cannot read the admin token: {e}"))
        .trim()
        .to_string()
}

fn assert_still_serving(kubectl: &Kubectl) {
    let namespaces = kubectl.ok(&["get", "ns", "-o", "name"]);
    assert!(
        namespaces.contains("namespace/default"),
        "the server stopped serving: {namespaces}"
    );
}

#[test]
fn oversized_bodies_and_headers_get_statuses() {
    let skiff = Skiff::start();
    let kubectl = skiff.kubectl();
    let token = token(&skiff);

    let body = vec![b' '; 100 * 1024 * 1024];
    let response = skiff.request_with(
        "POST",
        "/api/v1/namespaces/default/configmaps",
        Some(&token),
        &["Content-Type: application/json".to_string()],
        &body,
    );
    assert_eq!(response.status, 413, "{}", response.body);
    assert_eq!(
        json_of(&response.body),
        serde_json::json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": "Request entity too large: limit is 3145728",
            "reason": "RequestEntityTooLarge", "code": 413
        })
    );
    assert_still_serving(&kubectl);

    let filler = format!("X-Filler: {}", "a".repeat(1024 * 1024));
    let response = skiff.request_with("GET", "/api/v1/namespaces", Some(&token), &[filler], b"");
    assert_eq!(response.status, 431, "{}", response.body);
    assert_still_serving(&kubectl);
}

#[test]
fn inputs_that_used_to_panic_get_statuses() {
    let skiff = Skiff::start();
    let kubectl = skiff.kubectl();

    // A generateName whose 58th byte falls inside a character.
    let prefix = format!("{}é-", "a".repeat(57));
    let manifest = skiff.write_file(
        "generated.yaml",
        &format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  generateName: {prefix}\nspec:\n  containers:\n  - name: c\n    image: nginx\n"
        ),
    );
    let stderr = kubectl.fails(&["create", "-f", &manifest]);
    assert!(
        stderr.contains("is invalid") && stderr.contains("metadata.generateName: Invalid value"),
        "{stderr}"
    );
    assert_still_serving(&kubectl);

    // A pod bound to a node waits for it; a huge grace period is kept as given.
    let pod = skiff.write_file(
        "bound.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: bound\nspec:\n  nodeName: absent-node\n  containers:\n  - name: c\n    image: nginx\n",
    );
    kubectl.ok(&["create", "-f", &pod]);
    kubectl.ok(&[
        "delete",
        "pod",
        "bound",
        "--grace-period=999999999999",
        "--wait=false",
    ]);
    let marked = json_of(&kubectl.ok(&["get", "pod", "bound", "-o", "json"]));
    assert_eq!(
        marked["metadata"]["deletionGracePeriodSeconds"],
        999_999_999_999i64
    );
    let deadline = marked["metadata"]["deletionTimestamp"]
        .as_str()
        .unwrap_or_default();
    assert!(deadline.starts_with("9999-"), "{deadline}");
    kubectl.ok(&["delete", "pod", "bound", "--grace-period=0", "--force"]);
    assert_still_serving(&kubectl);
}
