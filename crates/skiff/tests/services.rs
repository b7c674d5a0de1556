//! Services and their endpoints, driven by the real `kubectl` against
//! `skiff up --simulated-nodes 2`: `kubectl expose`, the `get svc,ep -o wide`,
//! `get endpointslices` and `describe svc` output, endpoints following scaling and readiness,
//! named target ports, and pods being deleted flagged terminating in their EndpointSlice.
//!
//! Run with `cargo test -p skiff --test services`. Needs `kubectl` on the PATH. Every wait
//! polls a condition against a deadline.

mod support;

use std::collections::BTreeSet;

use serde_json::Value;
use support::{assert_table, cells, is_age, wait_for, Kubectl, Skiff, DEADLINE};

/// A server with the controllers, the scheduler and two simulated nodes.
fn cluster() -> Skiff {
    Skiff::start_with(&["--simulated-nodes", "2", "--no-node"])
}

/// A Deployment `name` selecting `app: <name>`, whose container serves port 80 named `http`.
fn deployment(name: &str, replicas: u32, pod_annotations: &str) -> String {
    let annotations = if pod_annotations.is_empty() {
        String::new()
    } else {
        format!("      annotations:\n        {pod_annotations}\n")
    };
    format!(
        "apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
spec:
  replicas: {replicas}
  selector:
    matchLabels:
      app: {name}
  template:
    metadata:
      labels:
        app: {name}
{annotations}    spec:
      containers:
      - name: web
        image: demo
        ports:
        - name: http
          containerPort: 80
"
    )
}

/// The IPs of the running pods labelled `app=<app>` that are not being deleted.
fn running_pod_ips(kubectl: &Kubectl, app: &str) -> BTreeSet<String> {
    let pods = kubectl.json(&["get", "pods", "-l", &format!("app={app}")]);
    pods["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p.pointer("/metadata/deletionTimestamp").is_none())
        .filter(|p| p.pointer("/status/phase").and_then(Value::as_str) == Some("Running"))
        .filter_map(|p| p.pointer("/status/podIP").and_then(Value::as_str))
        .map(str::to_string)
        .collect()
}

/// `ip:port` of every ready address of the Endpoints `name`.
fn ready_endpoints(kubectl: &Kubectl, name: &str) -> BTreeSet<String> {
    let ep = kubectl.json(&["get", "endpoints", name]);
    let mut found = BTreeSet::new();
    for subset in ep["subsets"].as_array().into_iter().flatten() {
        for address in subset["addresses"].as_array().into_iter().flatten() {
            for port in subset["ports"].as_array().into_iter().flatten() {
                found.insert(format!(
                    "{}:{}",
                    address["ip"].as_str().unwrap_or(""),
                    port["port"]
                ));
            }
        }
    }
    found
}

/// The endpoints of every EndpointSlice of Service `name`.
fn slice_endpoints(kubectl: &Kubectl, name: &str) -> Vec<Value> {
    let slices = kubectl.json(&[
        "get",
        "endpointslices",
        "-l",
        &format!("kubernetes.io/service-name={name}"),
    ]);
    slices["items"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|s| s["endpoints"].as_array().cloned().unwrap_or_default())
        .collect()
}

/// Waits until the ready endpoints of Service `name` are exactly the running pods of
/// `app` (`count` of them) on `port`, and returns them.
fn wait_for_endpoints(
    kubectl: &Kubectl,
    name: &str,
    app: &str,
    count: usize,
    port: u16,
) -> BTreeSet<String> {
    wait_for(
        &format!("{count} endpoints of service {name}"),
        DEADLINE,
        || {
            let ips = running_pod_ips(kubectl, app);
            let want: BTreeSet<String> = ips.iter().map(|ip| format!("{ip}:{port}")).collect();
            let got = ready_endpoints(kubectl, name);
            let slices: BTreeSet<String> = slice_endpoints(kubectl, name)
                .iter()
                .filter(|e| e.pointer("/conditions/ready") == Some(&Value::Bool(true)))
                .filter_map(|e| e.pointer("/addresses/0").and_then(Value::as_str))
                .map(|ip| format!("{ip}:{port}"))
                .collect();
            (want.len() == count && got == want && slices == want).then_some(got)
        },
    )
}

#[test]
fn exposed_deployments_get_endpoints_that_follow_their_pods() {
    let skiff = cluster();
    let kubectl = skiff.kubectl();
    let manifest = skiff.write_file("web.yaml", &deployment("web", 3, ""));
    kubectl.ok(&["apply", "-f", &manifest]);
    kubectl.ok(&["rollout", "status", "deploy/web", "--timeout=60s"]);

    let out = kubectl.ok(&[
        "expose",
        "deployment",
        "web",
        "--type=NodePort",
        "--port=80",
        "--target-port=80",
    ]);
    assert_eq!(out.trim(), "service/web exposed");
    let endpoints = wait_for_endpoints(&kubectl, "web", "web", 3, 80);

    // `get svc,ep -o wide`: Kubernetes' columns, a NodePort shown as `80:3xxxx/TCP`.
    let svc = kubectl.json(&["get", "svc", "web"]);
    let cluster_ip = svc["spec"]["clusterIP"].as_str().unwrap_or("").to_string();
    let node_port = svc["spec"]["ports"][0]["nodePort"].as_i64().unwrap_or(0);
    assert!((30000..=32767).contains(&node_port), "nodePort {node_port}");
    let listed = kubectl.run(&["get", "svc,ep", "-o", "wide"]);
    assert!(listed.success(), "{}", listed.stderr);
    // Kubernetes 1.33 warns on every request for v1 Endpoints; kubectl prints it on stderr.
    assert!(
        listed.stderr.contains(
            "Warning: v1 Endpoints is deprecated in v1.33+; use discovery.k8s.io/v1 EndpointSlice"
        ),
        "{}",
        listed.stderr
    );
    let out = listed.stdout;
    let mut blocks = out.split("\n\n");
    let services = blocks.next().unwrap_or("");
    let ports = format!("80:{node_port}/TCP");
    assert_table(
        services,
        &[
            &[
                "NAME",
                "TYPE",
                "CLUSTER-IP",
                "EXTERNAL-IP",
                "PORT(S)",
                "AGE",
                "SELECTOR",
            ],
            &[
                "service/kubernetes",
                "ClusterIP",
                "127.96.0.1",
                "<none>",
                "443/TCP",
                "<age>",
                "<none>",
            ],
            &[
                "service/web",
                "NodePort",
                &cluster_ip,
                "<none>",
                &ports,
                "<age>",
                "app=web",
            ],
        ],
    );
    let endpoint_lines: Vec<&str> = blocks.next().unwrap_or("").lines().collect();
    assert_eq!(
        cells(endpoint_lines[0]),
        ["NAME", "ENDPOINTS", "AGE"],
        "{out}"
    );
    let web_row = endpoint_lines
        .iter()
        .map(|l| cells(l))
        .find(|c| c.first() == Some(&"endpoints/web"))
        .unwrap_or_else(|| panic!("no endpoints/web row in:\n{out}"));
    let printed: BTreeSet<String> = web_row[1].split(',').map(str::to_string).collect();
    assert_eq!(printed, endpoints, "{out}");
    assert!(is_age(web_row[2]), "{out}");

    // `get endpointslices`: one slice `web-xxxxx` with the port and the three addresses.
    let out = kubectl.ok(&[
        "get",
        "endpointslices",
        "-l",
        "kubernetes.io/service-name=web",
    ]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert_eq!(
        cells(lines[0]),
        ["NAME", "ADDRESSTYPE", "PORTS", "ENDPOINTS", "AGE"]
    );
    let row = cells(lines[1]);
    assert!(
        row[0].starts_with("web-") && row[0].len() == "web-".len() + 5,
        "{out}"
    );
    assert_eq!(&row[1..3], ["IPv4", "80"], "{out}");
    let slice_ips: BTreeSet<String> = row[3].split(',').map(|ip| format!("{ip}:80")).collect();
    assert_eq!(slice_ips, endpoints, "{out}");
    let slice = kubectl.json(&["get", "endpointslice", row[0]]);
    assert_eq!(
        slice["metadata"]["labels"]["endpointslice.kubernetes.io/managed-by"],
        "endpointslice-controller.k8s.io"
    );
    assert_eq!(slice["metadata"]["ownerReferences"][0]["kind"], "Service");
    assert_eq!(
        slice["metadata"]["ownerReferences"][0]["uid"],
        svc["metadata"]["uid"]
    );

    // `describe svc` shows the pod addresses.
    let out = kubectl.ok(&["describe", "svc", "web"]);
    let line = out
        .lines()
        .find(|l| l.starts_with("Endpoints:"))
        .unwrap_or_else(|| panic!("no Endpoints line in:\n{out}"));
    let described: BTreeSet<String> = line["Endpoints:".len()..]
        .trim()
        .split(',')
        .map(str::to_string)
        .collect();
    assert_eq!(described, endpoints, "{out}");
    assert!(
        out.lines()
            .any(|l| cells(l) == ["NodePort:", "<unset>", &format!("{node_port}/TCP")]),
        "{out}"
    );

    // Scaling up and down: the endpoints follow the pods.
    kubectl.ok(&["scale", "deployment", "web", "--replicas=5"]);
    wait_for_endpoints(&kubectl, "web", "web", 5, 80);
    kubectl.ok(&["scale", "deployment", "web", "--replicas=2"]);
    wait_for_endpoints(&kubectl, "web", "web", 2, 80);

    // A target port by container port name.
    let named = skiff.write_file(
        "named.yaml",
        "apiVersion: v1
kind: Service
metadata:
  name: named
spec:
  selector:
    app: web
  ports:
  - name: web
    port: 8080
    targetPort: http
",
    );
    kubectl.ok(&["apply", "-f", &named]);
    wait_for_endpoints(&kubectl, "named", "web", 2, 80);

    // Deleting the Service deletes its Endpoints and EndpointSlices.
    kubectl.ok(&["delete", "svc", "named"]);
    wait_for("the endpoints of a deleted service to go", DEADLINE, || {
        let ep = kubectl.run(&["get", "endpoints", "named"]);
        let slices = slice_endpoints(&kubectl, "named");
        (!ep.success() && slices.is_empty()).then_some(())
    });
}

#[test]
fn unready_and_terminating_pods_are_flagged() {
    let skiff = cluster();
    let kubectl = skiff.kubectl();

    // A pod that never becomes ready: a not-ready address, a not-ready endpoint.
    let manifest = skiff.write_file(
        "slow.yaml",
        &deployment("slow", 1, "sim.skiff.dev/never-ready: \"true\""),
    );
    kubectl.ok(&["apply", "-f", &manifest]);
    kubectl.ok(&["expose", "deployment", "slow", "--port=80"]);
    let ip = wait_for("the unready pod's address", DEADLINE, || {
        let ep = kubectl.json(&["get", "endpoints", "slow"]);
        let address = ep.pointer("/subsets/0/notReadyAddresses/0/ip")?.as_str()?;
        (ep.pointer("/subsets/0/addresses").is_none()).then(|| address.to_string())
    });
    let endpoints = slice_endpoints(&kubectl, "slow");
    assert_eq!(endpoints.len(), 1, "{endpoints:?}");
    assert_eq!(endpoints[0]["addresses"][0], ip.as_str());
    assert_eq!(
        endpoints[0]["conditions"],
        serde_json::json!({"ready": false, "serving": false, "terminating": false})
    );
    // Only not-ready addresses: the ENDPOINTS cell is blank, as Kubernetes prints it.
    let out = kubectl.ok(&["get", "endpoints", "slow"]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(cells(lines[0]), ["NAME", "ENDPOINTS", "AGE"], "{out}");
    let row = cells(lines[1]);
    assert!(
        row.len() == 2 && row[0] == "slow" && is_age(row[1]),
        "{out}"
    );

    // A pod held by a finalizer on a node without an agent stays terminating once deleted:
    // gone from Endpoints, kept in its slice as serving but not ready.
    let held = skiff.write_file(
        "held.yaml",
        "apiVersion: v1
kind: Node
metadata:
  name: quiet-node
  labels:
    topology.kubernetes.io/zone: zone-q
---
apiVersion: v1
kind: Pod
metadata:
  name: held-0
  labels:
    app: held
  finalizers:
  - skiff.test/hold
spec:
  nodeName: quiet-node
  containers:
  - name: web
    image: demo
",
    );
    kubectl.ok(&["create", "service", "clusterip", "held", "--tcp=80:80"]);
    kubectl.ok(&["apply", "-f", &held]);
    kubectl.ok(&[
        "patch",
        "pod",
        "held-0",
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"status":{"phase":"Running","podIP":"10.9.9.9","podIPs":[{"ip":"10.9.9.9"}],
            "conditions":[{"type":"Ready","status":"True"}]}}"#,
    ]);
    wait_for("the held pod's endpoint", DEADLINE, || {
        (ready_endpoints(&kubectl, "held") == BTreeSet::from(["10.9.9.9:80".to_string()]))
            .then_some(())
    });
    let endpoint = slice_endpoints(&kubectl, "held").pop().unwrap_or_default();
    assert_eq!(endpoint["zone"], "zone-q");
    assert_eq!(endpoint["nodeName"], "quiet-node");
    assert_eq!(endpoint["targetRef"]["name"], "held-0");

    kubectl.ok(&["delete", "pod", "held-0", "--wait=false"]);
    let endpoint = wait_for("the held pod flagged terminating", DEADLINE, || {
        let endpoint = slice_endpoints(&kubectl, "held").pop()?;
        (endpoint.pointer("/conditions/terminating") == Some(&Value::Bool(true)))
            .then_some(endpoint)
    });
    assert_eq!(
        endpoint["conditions"],
        serde_json::json!({"ready": false, "serving": true, "terminating": true})
    );
    assert_eq!(endpoint["addresses"][0], "10.9.9.9");
    assert!(ready_endpoints(&kubectl, "held").is_empty());
    let ep = kubectl.json(&["get", "endpoints", "held"]);
    assert!(ep.get("subsets").is_none(), "{ep}");

    // Released, the pod goes, and so does its endpoint.
    kubectl.ok(&[
        "patch",
        "pod",
        "held-0",
        "--type=merge",
        "-p",
        r#"{"metadata":{"finalizers":null}}"#,
    ]);
    kubectl.ok(&[
        "delete",
        "pod",
        "held-0",
        "--grace-period=0",
        "--force",
        "--ignore-not-found",
    ]);
    wait_for("the released pod's endpoint to go", DEADLINE, || {
        slice_endpoints(&kubectl, "held").is_empty().then_some(())
    });
}
