//! An agent joined to several servers of one cluster fails over between them: two `skiff up`
//! servers share one etcd (on loopback) and listen on the test bridge's address; an agent in a
//! test host names both with `--server`. When the server it joined through is killed, the
//! node keeps renewing its Lease and runs new pods through the other.
//!
//! Run as root with `cargo test -p skiff --test multi_host_servers`. Needs `etcd`.

mod support;

use std::time::Duration;

use jiff::Timestamp;
use serde_json::Value;
use skiff_store::test_etcd::TestEtcd;
use support::images::{demo, DEMO};
use support::json::str_at;
use support::oci::assert_root;
use support::test_hosts::{HostAgent, TestHosts};
use support::{wait_for, Kubectl, Skiff, DEADLINE, ELECTION_FLAGS};

fn server_on(hosts: &TestHosts, etcd: &TestEtcd) -> Skiff {
    let endpoint = etcd.endpoint();
    let mut args = vec!["--no-node", "--no-proxy", "--datastore-endpoint", &endpoint];
    args.extend(ELECTION_FLAGS);
    Skiff::start_on_link(hosts, &args)
}

fn pod_ready_on(kubectl: &Kubectl, name: &str, node: &str) -> bool {
    let out = kubectl.run(&["get", "pod", name, "-o", "json"]);
    out.success()
        && serde_json::from_str::<Value>(&out.stdout).is_ok_and(|pod| {
            str_at(&pod, "/spec/nodeName") == node
                && pod["status"]["conditions"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|c| c["type"] == "Ready" && c["status"] == "True")
        })
}

fn lease_renewed(kubectl: &Kubectl, node: &str) -> Timestamp {
    let lease = kubectl.json(&["get", "lease", "-n", "kube-node-lease", node]);
    str_at(&lease, "/spec/renewTime")
        .parse()
        .unwrap_or_else(|e| panic!("the Lease's renewTime is not a time: {e}: {lease}"))
}

fn create_pod(server: &Skiff, kubectl: &Kubectl, name: &str) {
    let manifest = format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n  terminationGracePeriodSeconds: 2\n  nodeName: host-a\n  containers:\n  - name: web\n    image: {DEMO}:v1\n"
    );
    let path = server.write_file(&format!("{name}.yaml"), &manifest);
    kubectl.ok(&["apply", "-f", &path]);
}

#[test]
fn an_agent_naming_two_servers_fails_over_when_the_one_it_joined_through_dies() {
    assert_root();
    let etcd = TestEtcd::start();
    let hosts = TestHosts::new("s", 1);
    let names = hosts.names();
    {
        let mut first = server_on(&hosts, &etcd);
        let second = server_on(&hosts, &etcd);
        let kubectl = second.kubectl();
        let agent = HostAgent::start(
            &hosts,
            0,
            &first,
            "host-a",
            &[demo("v1")],
            &["--server", &second.server_url()],
        );
        hosts.wait_for_guard_routes(0);
        let log = agent.log();
        let joined = log
            .lines()
            .find(|line| line.contains("skiff agent joined the cluster"))
            .unwrap_or_default();
        assert!(
            joined.contains(&first.server_url()),
            "the agent joined through the first server it was given:\n{}",
            agent.log()
        );
        create_pod(&second, &kubectl, "before");
        wait_for("pod before Ready on host-a", DEADLINE, || {
            pod_ready_on(&kubectl, "before", "host-a").then_some(())
        });

        first.kill();
        let killed_at = Timestamp::now();
        wait_for(
            "host-a's Lease renewed after the first server died",
            Duration::from_secs(40),
            || (lease_renewed(&kubectl, "host-a") > killed_at).then_some(()),
        );
        create_pod(&second, &kubectl, "after");
        wait_for(
            "pod after Ready on host-a, through the second server",
            Duration::from_secs(90),
            || pod_ready_on(&kubectl, "after", "host-a").then_some(()),
        );
        let node = kubectl.json(&["get", "node", "host-a"]);
        let ready = node["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|c| c["type"] == "Ready")
            .cloned()
            .unwrap_or(Value::Null);
        assert_eq!(ready["status"], "True", "host-a stays Ready: {ready}");

        kubectl.ok(&["delete", "pod", "before", "after", "--wait=true"]);
        drop(agent);
    }
    drop(hosts);
    let left = TestHosts::leftovers_of(&names);
    assert!(left.is_empty(), "the test hosts left behind: {left:?}");
}
