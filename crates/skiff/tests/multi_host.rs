//! A cluster over several machines, each a test host (a network namespace on a bridge the
//! test owns, addresses from 198.18.0.0/15): a server in one, agents in others.

mod support;

use support::images::{demo, shell};
use support::oci::assert_root;
use support::test_hosts::{HostAgent, TestHosts};
use support::{wait_for, Skiff, DEADLINE};

/// Whether `kubectl get node NAME -o json` says the node is Ready.
fn node_ready(skiff: &Skiff, name: &str) -> bool {
    let out = skiff.kubectl().run(&["get", "node", name, "-o", "json"]);
    if !out.success() {
        return false;
    }
    let node: serde_json::Value = serde_json::from_str(&out.stdout).unwrap_or_default();
    node["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["type"] == "Ready" && c["status"] == "True")
}

#[test]
fn an_agent_in_its_own_test_host_joins_a_server_in_another_and_leaves_nothing_behind() {
    assert_root();
    let hosts = TestHosts::new("m", 2);
    let names = hosts.names();
    {
        let server = Skiff::start_in_host(&hosts, 0, &["--no-node"], &[]);
        assert!(
            server.server_url().contains(&hosts.host(0).address),
            "the server listens on its host's address, not {}",
            server.server_url()
        );
        let agent = HostAgent::start(&hosts, 1, &server, "host-a", &[demo("v1"), shell()], &[]);
        hosts.wait_for_guard_routes(1);
        wait_for("node host-a to be Ready", DEADLINE, || {
            node_ready(&server, "host-a").then_some(())
        });
        let wide = server
            .kubectl()
            .ok(&["get", "node", "host-a", "-o", "wide"]);
        assert!(
            wide.contains(&agent.host.address),
            "the node's INTERNAL-IP is its host's address:\n{wide}"
        );
        drop(agent);
    }
    drop(hosts);
    let left = TestHosts::leftovers_of(&names);
    assert!(left.is_empty(), "the test hosts left behind: {left:?}");
}
