//! Real request bodies captured from kubectl 1.32 (protobuf) must decode to exactly the
//! JSON kubectl 1.31 sends for the same command.

use std::path::PathBuf;

use skiff_apiserver::protobuf::decode;

fn fixture(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/protobuf")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|error| panic!("reading {}: {error}", path.display()))
}

/// Command names of the captured pairs `<name>.kubectl-1.32.pb` / `<name>.kubectl-1.31.json`.
const CAPTURED_COMMANDS: &[&str] = &[
    "create-deployment",
    "create-namespace",
    "create-configmap",
    "create-secret",
    "create-service-clusterip",
    "autoscale-deployment",
    "create-job",
];

#[test]
fn kubectl_protobuf_bodies_decode_to_the_json_kubectl_sends() {
    for command in CAPTURED_COMMANDS {
        let body = fixture(&format!("{command}.kubectl-1.32.pb"));
        let expected: serde_json::Value =
            serde_json::from_slice(&fixture(&format!("{command}.kubectl-1.31.json")))
                .expect("fixture JSON parses");
        let decoded = decode(&body).unwrap_or_else(|error| panic!("{command}: {error}"));
        assert_eq!(decoded, expected, "{command}");
    }
}

#[test]
fn decoded_keys_come_in_go_field_order() {
    for command in CAPTURED_COMMANDS {
        let body = fixture(&format!("{command}.kubectl-1.32.pb"));
        let expected = String::from_utf8(fixture(&format!("{command}.kubectl-1.31.json")))
            .expect("fixture is UTF-8");
        let decoded = decode(&body).unwrap_or_else(|error| panic!("{command}: {error}"));
        assert_eq!(
            serde_json::to_string(&decoded).expect("serialises"),
            expected.trim_end(),
            "{command}"
        );
    }
}
