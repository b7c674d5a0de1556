//! A crate that is only a client of the API (the node agent, the service proxy, the scheduler,
//! the controller runtime and the client itself) must not link the API server, the store or
//! SQLite: it reaches the cluster through `skiff-client`, in process or over HTTPS. This test
//! reads each crate's normal dependency tree with `cargo tree` and fails if one comes back.
//! The node agent and the proxy, the crates a joining machine runs, must not reach them even
//! through their dev-dependencies, as plain `cargo tree` (which lists those) shows them: their
//! tests that need a server live in this crate.
//!
//! Run with `cargo test -p skiff --test client_dependencies`. Needs `cargo`.

use std::path::Path;
use std::process::Command;

/// The crates that are only clients of the API.
const CLIENT_CRATES: &[&str] = &[
    "skiff-client",
    "skiff-node",
    "skiff-proxy",
    "skiff-scheduler",
    "skiff-runtime",
];

/// What none of them may link.
const SERVER_SIDE: &[&str] = &["skiff-apiserver", "skiff-store", "rusqlite"];

/// The crates a joining machine runs, whose whole tree (dev-dependencies included) stays clean.
const NODE_CRATES: &[&str] = &["skiff-node", "skiff-proxy"];

/// The package names in `package`'s normal dependency tree (itself included).
fn normal_dependencies(package: &str) -> Vec<String> {
    dependencies(package, "normal")
}

/// The package names in `package`'s tree over the dependency `edges` (`cargo tree -e`).
fn dependencies(package: &str, edges: &str) -> Vec<String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../Cargo.toml");
    let output = Command::new(&cargo)
        .args(["tree", "--offline", "-e", edges, "--prefix", "none", "-p"])
        .arg(package)
        .arg("--manifest-path")
        .arg(&manifest)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cargo} tree: {e}"));
    assert!(
        output.status.success(),
        "cargo tree -p {package} failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let names: Vec<String> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .map(str::to_string)
        .collect();
    assert!(
        names.iter().any(|n| n == package),
        "cargo tree printed no tree for {package}"
    );
    names
}

#[test]
fn client_crates_link_neither_the_api_server_nor_the_store() {
    for package in CLIENT_CRATES {
        let names = normal_dependencies(package);
        let found: Vec<&str> = SERVER_SIDE
            .iter()
            .copied()
            .filter(|forbidden| names.iter().any(|n| n == forbidden))
            .collect();
        assert!(
            found.is_empty(),
            "{package} links {found:?}; it must reach the cluster through skiff-client only"
        );
    }
}

#[test]
fn the_check_sees_the_server_side_where_it_is() {
    // The API server itself links the store and SQLite: the check above would see them.
    let names = normal_dependencies("skiff-apiserver");
    for expected in ["skiff-store", "rusqlite"] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} missing from the API server's tree"
        );
    }
}

#[test]
fn node_and_proxy_reach_neither_the_api_server_nor_the_store_even_in_their_tests() {
    for package in NODE_CRATES {
        // What plain `cargo tree -p PACKAGE` lists: normal, build and dev dependencies.
        let names = dependencies(package, "normal,build,dev");
        let found: Vec<&str> = SERVER_SIDE
            .iter()
            .copied()
            .filter(|forbidden| names.iter().any(|n| n == forbidden))
            .collect();
        assert!(
            found.is_empty(),
            "cargo tree -p {package} shows {found:?}; tests needing a server belong in the skiff crate"
        );
    }
}

#[test]
fn the_whole_tree_check_sees_dev_dependencies() {
    // The skiff crate's tests use the test kit only as a dev-dependency: the whole tree must
    // list it, the normal tree must not, or the check above would see nothing.
    assert!(dependencies("skiff", "normal,build,dev")
        .iter()
        .any(|n| n == "skiff-testkit"));
    assert!(!normal_dependencies("skiff")
        .iter()
        .any(|n| n == "skiff-testkit"));
}
