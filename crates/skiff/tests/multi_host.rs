//! A cluster over several machines, each a test host (a network namespace on a bridge the
//! test owns, addresses from 198.18.0.0/15): a server in one, agents in others.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::Duration;

use support::http::{demo_line, READ_TIMEOUT};
use support::images::{demo, shell, DEMO, SHELL};
use support::json::{items, str_at};
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

/// The workload of the two-agent acceptance: six demo replicas behind a NodePort Service, a
/// shell client pinned to each agent's node, and on `host-b` a pod that answers with the
/// address a connection came from.
fn two_agent_manifests() -> String {
    let client = |node: &str| {
        format!(
            "apiVersion: v1
kind: Pod
metadata:
  name: client-{node}
spec:
  nodeName: {node}
  terminationGracePeriodSeconds: 1
  containers:
  - name: shell
    image: {SHELL}
    command: [\"sleep\", \"3600\"]
---
"
        )
    };
    format!(
        "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 6
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: demo
        image: {DEMO}:v1
        ports:
        - containerPort: 80
---
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  type: NodePort
  selector:
    app: web
  ports:
  - port: 80
    targetPort: 80
---
apiVersion: v1
kind: Pod
metadata:
  name: echo-host-b
spec:
  nodeName: host-b
  terminationGracePeriodSeconds: 1
  containers:
  - name: httpd
    image: {SHELL}
    command: [sh, -c, \"mkdir -p /www/cgi-bin && printf '#!/bin/sh\\\\necho Content-Type: text/plain\\\\necho\\\\necho $REMOTE_ADDR\\\\n' > /www/cgi-bin/peer && chmod +x /www/cgi-bin/peer && exec httpd -f -p 8080 -h /www\"]
---
{a}{b}",
        a = client("host-a"),
        b = client("host-b"),
    )
}

/// The running, ready pods with an IP: name → (node, IP).
fn ready_pods(server: &Skiff, selector: &[&str]) -> BTreeMap<String, (String, String)> {
    let mut args = vec!["get", "pods"];
    args.extend_from_slice(selector);
    items(&server.kubectl().json(&args))
        .into_iter()
        .filter(|pod| pod.pointer("/metadata/deletionTimestamp").is_none())
        .filter(|pod| {
            pod["status"]["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
        })
        .filter(|pod| !str_at(pod, "/status/podIP").is_empty())
        .map(|pod| {
            (
                str_at(&pod, "/metadata/name"),
                (
                    str_at(&pod, "/spec/nodeName"),
                    str_at(&pod, "/status/podIP"),
                ),
            )
        })
        .collect()
}

/// Fetches `url` from pod `from` with busybox's `wget` until `accept` takes the answer,
/// failing with the last try once the deadline passes. Each try is bounded by `timeout`
/// (busybox's `wget -T` crashes in the test image).
fn fetch_in_pod<T>(
    server: &Skiff,
    from: &str,
    url: &str,
    what: &str,
    mut accept: impl FnMut(&str) -> Option<T>,
) -> T {
    let mut last = String::new();
    let found = support::poll(DEADLINE, || {
        let outcome = server.kubectl().run(&[
            "exec", from, "--", "timeout", "10", "wget", "-q", "-O", "-", url,
        ]);
        last = format!(
            "ok={} stdout={:?} stderr={:?}",
            outcome.success(),
            outcome.stdout,
            outcome.stderr
        );
        if outcome.success() {
            accept(outcome.stdout.trim())
        } else {
            None
        }
    });
    found.unwrap_or_else(|| panic!("{what}: {from} fetching {url}; last try: {last}"))
}

/// The `podCIDR` of each node.
fn pod_cidrs(server: &Skiff) -> BTreeMap<String, String> {
    items(&server.kubectl().json(&["get", "nodes"]))
        .iter()
        .map(|node| {
            (
                str_at(node, "/metadata/name"),
                str_at(node, "/spec/podCIDR"),
            )
        })
        .collect()
}

/// Host `index`'s routes with a gateway (`DESTINATION via GATEWAY`), in `ip route` words.
fn gateway_routes(hosts: &TestHosts, index: usize) -> Vec<String> {
    hosts
        .run_in(index, "ip", &["-4", "route", "show"])
        .lines()
        .filter(|line| line.contains(" via "))
        .map(|line| {
            let words: Vec<&str> = line.split_whitespace().collect();
            format!("{} via {}", words[0], words[2])
        })
        .collect()
}

/// `GET /` on `address` from the test's namespace, if it answers 200.
fn node_port_answer(address: SocketAddr) -> Option<String> {
    match support::http::http_get_at(address, "/", Duration::from_secs(2), READ_TIMEOUT) {
        Ok((200, body)) => Some(body),
        _ => None,
    }
}

/// Forwards a local port to port 80 of `pod` and returns what `GET /` answers through it.
fn through_port_forward(server: &Skiff, pod: &str) -> String {
    let mut forward = server
        .kubectl()
        .spawn_lines(&["port-forward", &format!("pod/{pod}"), ":80"]);
    let line = forward.wait_for_line("port-forward to listen", |line| {
        line.starts_with("Forwarding from 127.0.0.1:")
    });
    let port: u16 = line
        .trim_start_matches("Forwarding from 127.0.0.1:")
        .split_whitespace()
        .next()
        .and_then(|port| port.parse().ok())
        .unwrap_or_else(|| panic!("no local port in {line:?}"));
    let address = SocketAddr::from(([127, 0, 0, 1], port));
    let answer = wait_for(
        &format!("an answer from {pod} through port-forward"),
        DEADLINE,
        || match support::http::http_get_at(address, "/", Duration::from_secs(2), READ_TIMEOUT) {
            Ok((200, body)) => Some(body),
            _ => None,
        },
    );
    drop(forward);
    answer
}

#[test]
fn two_agents_spread_a_deployment_and_their_pods_services_and_node_ports_reach_across_hosts() {
    assert_root();
    let hosts = TestHosts::new("g", 3);
    let names = hosts.names();
    {
        // A control plane for `oci` nodes: Service cluster IPs come from `--service-cidr`
        // (not the process runtime's loopback range); no proxy, since this host routes no pods.
        let server = Skiff::start_in_host(
            &hosts,
            0,
            &["--no-node", "--container-runtime", "oci", "--no-proxy"],
            &[],
        );
        let images = [demo("v1"), shell()];
        let agent_a = HostAgent::start(&hosts, 1, &server, "host-a", &images, &[]);
        let mut agent_b = Some(HostAgent::start(&hosts, 2, &server, "host-b", &images, &[]));
        hosts.wait_for_guard_routes(1);
        hosts.wait_for_guard_routes(2);
        for node in ["host-a", "host-b"] {
            wait_for(&format!("node {node} to be Ready"), DEADLINE, || {
                node_ready(&server, node).then_some(())
            });
        }

        // Each node asked for its client certificate with the bootstrap token, and `kubectl
        // get csr` shows both requests approved and issued.
        let token = server.join_token();
        let token_id = token
            .split_once("::")
            .and_then(|(_, bootstrap)| bootstrap.split('.').next())
            .expect("the join token is K10<hash>::<id>.<secret>")
            .to_string();
        let csr_rows = server.kubectl().ok(&["get", "csr"]);
        let client_rows: Vec<Vec<&str>> = csr_rows
            .lines()
            .skip(1)
            .map(|line| line.split_whitespace().collect::<Vec<_>>())
            .filter(|cells| cells.get(2) == Some(&"kubernetes.io/kube-apiserver-client-kubelet"))
            .collect();
        assert_eq!(
            client_rows.len(),
            2,
            "one client certificate request per node:\n{csr_rows}"
        );
        for cells in &client_rows {
            assert_eq!(
                cells.get(3),
                Some(&format!("system:bootstrap:{token_id}").as_str()),
                "{csr_rows}"
            );
            assert_eq!(cells.last(), Some(&"Approved,Issued"), "{csr_rows}");
        }

        // host-gw: each agent's host routes the other's podCIDR via the other's address.
        let cidrs = pod_cidrs(&server);
        let (cidr_a, cidr_b) = (cidrs["host-a"].clone(), cidrs["host-b"].clone());
        assert!(
            !cidr_a.is_empty() && !cidr_b.is_empty() && cidr_a != cidr_b,
            "each node has a podCIDR of its own: {cidrs:?}"
        );
        let address_a = hosts.host(1).address.clone();
        let address_b = hosts.host(2).address.clone();
        wait_for(
            "the routes between the agents' pod ranges",
            DEADLINE,
            || {
                (gateway_routes(&hosts, 1) == vec![format!("{cidr_b} via {address_b}")]
                    && gateway_routes(&hosts, 2) == vec![format!("{cidr_a} via {address_a}")])
                .then_some(())
            },
        );

        let file = server.write_file("two-agents.yaml", &two_agent_manifests());
        server.kubectl().ok(&["apply", "-f", &file]);

        // The scheduler's default spreading (and least-allocated scoring) splits the six
        // replicas evenly over two equal nodes, as kube-scheduler does.
        let web = wait_for("six ready web pods", DEADLINE, || {
            let pods = ready_pods(&server, &["-l", "app=web"]);
            (pods.len() == 6).then_some(pods)
        });
        let on = |node: &str| -> Vec<(String, String)> {
            web.iter()
                .filter(|(_, (n, _))| n == node)
                .map(|(name, (_, ip))| (name.clone(), ip.clone()))
                .collect()
        };
        let (web_a, web_b) = (on("host-a"), on("host-b"));
        assert_eq!(
            (web_a.len(), web_b.len()),
            (3, 3),
            "the replicas spread 3 and 3 over the agents' nodes: {web:?}"
        );
        let others = wait_for("the clients and the echo pod", DEADLINE, || {
            let pods = ready_pods(&server, &[]);
            ["client-host-a", "client-host-b", "echo-host-b"]
                .iter()
                .all(|name| pods.contains_key(*name))
                .then_some(pods)
        });
        let client_a_ip = others["client-host-a"].1.clone();
        let echo_ip = others["echo-host-b"].1.clone();

        // A pod on host-a reaches a pod on host-b by IP, and is seen there by its own address
        // (pod traffic between nodes is not masqueraded).
        let (pod_b, ip_b) = &web_b[0];
        let answer = fetch_in_pod(
            &server,
            "client-host-a",
            &format!("http://{ip_b}/"),
            "a pod on host-b by IP",
            |body| Some(body.to_string()),
        );
        assert_eq!(answer, format!("version=v1 pod={pod_b}"));
        let seen = fetch_in_pod(
            &server,
            "client-host-a",
            &format!("http://{echo_ip}:8080/cgi-bin/peer"),
            "the echo pod on host-b",
            |body| {
                let address = body
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .trim_start_matches("::ffff:");
                address
                    .parse::<std::net::Ipv4Addr>()
                    .ok()
                    .map(|ip| ip.to_string())
            },
        );
        assert_eq!(
            seen, client_a_ip,
            "the pod on host-b sees the pod on host-a's own address"
        );

        // The Service by name, through each node's cluster DNS: from each agent's client, an
        // answer comes from a pod on the other agent's node.
        for (client, far) in [("client-host-a", &web_b), ("client-host-b", &web_a)] {
            let far_names: BTreeSet<String> = far.iter().map(|(name, _)| name.clone()).collect();
            fetch_in_pod(
                &server,
                client,
                "http://web/",
                "the web Service by name answered from the other node",
                |body| {
                    let pod = body.strip_prefix("version=v1 pod=")?;
                    far_names.contains(pod).then_some(())
                },
            );
        }

        // The NodePort answers on every node's address, from pods on both nodes.
        let node_port: u16 = server
            .kubectl()
            .ok(&[
                "get",
                "service",
                "web",
                "-o",
                "jsonpath={.spec.ports[0].nodePort}",
            ])
            .trim()
            .parse()
            .expect("the web Service has a nodePort");
        for (index, far) in [(1, &web_b), (2, &web_a)] {
            let address = SocketAddr::new(
                hosts.host(index).address.parse().expect("a host address"),
                node_port,
            );
            let far_names: BTreeSet<String> = far.iter().map(|(name, _)| name.clone()).collect();
            wait_for(
                &format!("the NodePort on {address} answered by a pod on the other node"),
                DEADLINE,
                || {
                    let body = node_port_answer(address)?;
                    let pod = body.trim().strip_prefix("version=v1 pod=")?.to_string();
                    far_names.contains(&pod).then_some(())
                },
            );
        }

        // Logs, exec and port-forward reach pods on both agents.
        for (node, pods, client) in [
            ("host-a", &web_a, "client-host-a"),
            ("host-b", &web_b, "client-host-b"),
        ] {
            let (pod, _) = &pods[0];
            let logs = server.kubectl().ok(&["logs", pod]);
            assert!(
                logs.contains("listening on") && logs.contains(&format!("pod={pod}")),
                "kubectl logs {pod} (on {node}): {logs}"
            );
            let exec =
                server
                    .kubectl()
                    .run(&["exec", client, "--", "sh", "-c", "hostname; exit 3"]);
            assert_eq!(
                (exec.status.code(), exec.stdout.as_str()),
                (Some(3), format!("{client}\n").as_str()),
                "kubectl exec {client} (on {node}); stderr: {}",
                exec.stderr
            );
            assert_eq!(
                through_port_forward(&server, pod),
                demo_line("v1", pod),
                "kubectl port-forward {pod} (on {node})"
            );
        }

        // host-b leaves: its agent stops and its Node is deleted; host-a's route goes.
        drop(agent_b.take());
        server.kubectl().ok(&["delete", "node", "host-b"]);
        wait_for("host-a's route to host-b's pods to go", DEADLINE, || {
            gateway_routes(&hosts, 1).is_empty().then_some(())
        });
        drop(agent_a);
        assert!(
            gateway_routes(&hosts, 1).is_empty() && gateway_routes(&hosts, 2).is_empty(),
            "the agents removed their routes when they stopped"
        );
    }
    drop(hosts);
    let left = TestHosts::leftovers_of(&names);
    assert!(left.is_empty(), "the test hosts left behind: {left:?}");
}

#[test]
fn a_node_with_no_shared_link_to_a_peer_routes_nothing_there_and_says_why_once() {
    assert_root();
    let hosts = TestHosts::new("g", 3);
    let names = hosts.names();
    {
        let server = Skiff::start_in_host(
            &hosts,
            0,
            &["--no-node", "--container-runtime", "oci", "--no-proxy"],
            &[],
        );
        // Host 1 keeps only a /30 of the link: the server (.10) is on it, host 2 (.12) not.
        let address_a = hosts.host(1).address.clone();
        let narrowed = |prefix: &str| format!("{address_a}/{prefix}");
        hosts.run_in(1, "ip", &["addr", "del", &narrowed("24"), "dev", "eth0"]);
        hosts.run_in(1, "ip", &["addr", "add", &narrowed("30"), "dev", "eth0"]);
        let agent_a = HostAgent::start(&hosts, 1, &server, "host-a", &[], &[]);
        let agent_b = HostAgent::start(&hosts, 2, &server, "host-b", &[], &[]);
        hosts.wait_for_guard_routes(1);
        hosts.wait_for_guard_routes(2);
        let address_b = hosts.host(2).address.clone();
        let reason = format!(
            "no route to the node's pods: none of its InternalIPs ({address_b}) is on a link this node shares; host-gw routing needs one (VXLAN is not supported)"
        );
        wait_for(
            "host-a to say why it cannot route to host-b",
            DEADLINE,
            || agent_a.log().contains(&reason).then_some(()),
        );
        // host-b shares host-a's subnet, so it routes there; host-a routes nowhere.
        let cidr_a = wait_for("host-a's podCIDR", DEADLINE, || {
            pod_cidrs(&server)
                .get("host-a")
                .filter(|cidr| !cidr.is_empty())
                .cloned()
        });
        wait_for("host-b's route to host-a's pods", DEADLINE, || {
            (gateway_routes(&hosts, 2) == vec![format!("{cidr_a} via {address_a}")]).then_some(())
        });
        // Both nodes heartbeat meanwhile: each change re-plans, and the reason is not repeated.
        for node in ["host-a", "host-b"] {
            wait_for(&format!("node {node} to be Ready"), DEADLINE, || {
                node_ready(&server, node).then_some(())
            });
        }
        assert!(
            gateway_routes(&hosts, 1).is_empty(),
            "host-a installed no route to host-b's pods: {:?}",
            gateway_routes(&hosts, 1)
        );
        assert_eq!(
            agent_a.log().matches(&reason).count(),
            1,
            "the reason is logged once:\n{}",
            agent_a.log()
        );
        drop(agent_b);
        drop(agent_a);
    }
    drop(hosts);
    let left = TestHosts::leftovers_of(&names);
    assert!(left.is_empty(), "the test hosts left behind: {left:?}");
}
