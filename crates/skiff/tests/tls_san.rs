//! `skiff up --tls-san`: further names and addresses in the API server's serving
//! certificate, as k3s's flag adds them, checked with the real `kubectl` verifying the
//! certificate against a name it was told to expect (`--tls-server-name`). The certificate
//! is issued at every start, so a changed list holds from the next one.
//!
//! Run with `cargo test -p skiff --test tls_san`. Needs `kubectl` on the PATH.

mod support;

use support::{Kubectl, Skiff};

/// `kubectl get namespaces`, verifying the server's certificate for `name`.
fn get_namespaces_as(kubectl: &Kubectl, name: &str) -> support::Outcome {
    kubectl.run(&["--tls-server-name", name, "get", "namespaces", "-o", "name"])
}

/// Asserts that verifying the certificate for `name` fails as Go's verifier says it.
fn assert_not_valid_for(kubectl: &Kubectl, name: &str) {
    let refused = get_namespaces_as(kubectl, name);
    assert!(
        !refused.success(),
        "the certificate should not be valid for {name}: {}",
        refused.stdout
    );
    assert!(
        refused.stderr.contains("x509: certificate is valid for")
            && refused.stderr.contains(&format!("not {name}")),
        "{name}: {}",
        refused.stderr
    );
}

/// Asserts that verifying the certificate for `name` succeeds.
fn assert_valid_for(kubectl: &Kubectl, name: &str) {
    let answered = get_namespaces_as(kubectl, name);
    assert!(
        answered.success() && answered.stdout.contains("namespace/default"),
        "the certificate should be valid for {name}: {}",
        answered.stderr
    );
}

#[test]
fn tls_san_names_and_addresses_are_in_the_serving_certificate_and_follow_restarts() {
    let mut skiff = Skiff::start_with(&[
        "--tls-san",
        "skiff.example",
        "--tls-san",
        "198.18.7.7,*.nodes.example",
    ]);
    let kubectl = skiff.kubectl();
    for name in ["skiff.example", "198.18.7.7", "a.nodes.example"] {
        assert_valid_for(&kubectl, name);
    }
    // Names it always holds stay; names never given are refused.
    assert_valid_for(&kubectl, "kubernetes.default.svc");
    for name in ["other.example", "198.18.7.8", "a.b.nodes.example"] {
        assert_not_valid_for(&kubectl, name);
    }

    // Restarted with another list, the server presents a certificate for that list only.
    skiff.restart_with(&["--tls-san", "other.example"]);
    assert_valid_for(&kubectl, "other.example");
    for name in ["skiff.example", "198.18.7.7"] {
        assert_not_valid_for(&kubectl, name);
    }
}

#[test]
fn a_tls_san_that_is_neither_a_name_nor_an_address_stops_the_start() {
    let data = tempfile::tempdir().expect("a temporary directory");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_skiff"))
        .args(["up", "--no-node", "--listen", "127.0.0.1:0"])
        .arg("--data-dir")
        .arg(data.path())
        .args(["--tls-san", "not a name"])
        .env_remove("SKIFF_DATA_DIR")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start skiff up");
    let exited = support::poll(support::DEADLINE, || child.try_wait().ok().flatten());
    let Some(status) = exited else {
        let _ = child.kill();
        let _ = child.wait();
        panic!("skiff up kept running with an invalid --tls-san");
    };
    assert!(!status.success(), "skiff up should refuse the flag");
    let output = child.wait_with_output().expect("skiff up's output");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("--tls-san \"not a name\" is neither an IP address nor a DNS name"),
        "{stderr}"
    );
}
