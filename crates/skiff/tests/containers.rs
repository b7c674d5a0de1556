//! Pods on the `oci` container runtime: `skiff up --container-runtime oci` with its real node,
//! driven by the real `kubectl`.
//!
//! Run with `cargo test -p skiff --test containers` as root (network namespaces, veths, routes
//! and `nft` need it; CI runs as root), with `kubectl`, `nsenter`, `ip` and `nft` on the PATH.
//!
//! Every range comes from 198.18.0.0/15 (reserved for benchmarking), one share per test process
//! so parallel runs never overlap, and the `unreachable` guard routes are checked before any
//! packet is sent. After the server stops, the test checks that nothing it built is left: no
//! bridge, veth, route, nftables table, namespace pin or mount.

mod support;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use support::host::{host, unreachable_routes};
use support::http::ok_body;
use support::json::{items, json_of, str_at};
use support::oci::{
    assert_root, cgroup_hierarchies, container_cgroups, leftovers, with_test_images, TestNetwork,
    NETNS_DIR,
};
use support::{wait_for_every, Skiff};

/// How long pods may take to run and answer.
const SETTLE: Duration = Duration::from_secs(90);
/// How often kubectl-based conditions are polled.
const POLL: Duration = Duration::from_millis(250);
/// The images every test server here starts with.
fn test_images() -> Vec<skiff_testkit::images::TestImage> {
    vec![support::images::shell(), support::images::demo("v1")]
}

/// Three replicas of the demo server.
fn web_deployment() -> String {
    with_test_images(
        "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 3
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      containers:
      - name: httpd
        image: DEMO_IMAGE
        ports:
        - containerPort: 80
",
    )
}

/// The running pods of the `web` Deployment: (name, uid, IP), once all three run with an IP.
fn running_web_pods(skiff: &Skiff) -> Vec<(String, String, String)> {
    let kubectl = skiff.kubectl();
    wait_for_every("three running web pods with IPs", SETTLE, POLL, || {
        let list = json_of(&kubectl.ok(&["get", "pods", "-l", "app=web", "-o", "json"]));
        let pods: Vec<(String, String, String)> = items(&list)
            .iter()
            .filter(|pod| str_at(pod, "/status/phase") == "Running")
            .filter(|pod| pod.pointer("/metadata/deletionTimestamp").is_none())
            .map(|pod| {
                (
                    str_at(pod, "/metadata/name"),
                    str_at(pod, "/metadata/uid"),
                    str_at(pod, "/status/podIP"),
                )
            })
            .filter(|(_, _, ip)| !ip.is_empty())
            .collect();
        (pods.len() == 3).then_some(pods)
    })
}

#[test]
fn pods_get_their_own_network_namespace_and_address_from_the_node_pod_cidr() {
    assert_root();
    let network = TestNetwork::next("t");
    let flags = network.flags();
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let mut skiff = Skiff::start_with_images(&flags, &test_images());
    let kubectl = skiff.kubectl();

    // The guard routes are in place before any packet goes to a pod or Service address.
    let routes = wait_for_every("the unreachable guard routes", SETTLE, POLL, || {
        let routes = unreachable_routes();
        (routes.contains(&network.cluster_cidr) && routes.contains(&network.service_cidr))
            .then_some(routes)
    });
    assert!(routes.contains(&network.cluster_cidr), "{routes:?}");

    // The node got the first share of the cluster range as its podCIDR.
    let node = wait_for_every("the node to register", SETTLE, POLL, || {
        let nodes = json_of(&kubectl.ok(&["get", "nodes", "-o", "json"]));
        items(&nodes).into_iter().next()
    });
    assert_eq!(str_at(&node, "/spec/podCIDR"), network.node_pod_cidr);
    assert_eq!(
        node.pointer("/spec/podCIDRs"),
        Some(&serde_json::json!([network.node_pod_cidr])),
        "{node}"
    );

    skiff.write_file("web.yaml", &web_deployment());
    kubectl.ok(&["apply", "-f", "web.yaml"]);
    let pods = running_web_pods(&skiff);
    let pod_cidr: ipnet::Ipv4Net = network.node_pod_cidr.parse().unwrap();
    let gateway = pod_cidr.hosts().next().unwrap();
    let ips: BTreeSet<&str> = pods.iter().map(|(_, _, ip)| ip.as_str()).collect();
    assert_eq!(ips.len(), 3, "pods share addresses: {pods:?}");
    for (name, uid, ip) in &pods {
        let address: std::net::Ipv4Addr = ip.parse().unwrap();
        assert!(
            pod_cidr.contains(&address) && address != gateway,
            "pod {name} has {ip}, not a pod address of {pod_cidr}"
        );
        // Each pod answers on port 80 of its own address.
        wait_for_every(
            &format!("pod {name} to answer at {ip}"),
            SETTLE,
            POLL,
            || ok_body(ip),
        );
        // Its own namespace holds exactly its address and one listener on port 80.
        let pin = format!("{NETNS_DIR}/{uid}");
        let net = format!("--net={pin}");
        let addresses = host("nsenter", &[&net, "--", "ip", "-4", "-o", "addr", "show"]);
        assert!(
            addresses.contains(&format!("{ip}/24")),
            "pod {name}'s namespace lacks {ip}/24:\n{addresses}"
        );
        for (other, _, other_ip) in pods.iter().filter(|(n, _, _)| n != name) {
            assert!(
                !addresses.contains(&format!("{other_ip}/")),
                "pod {name}'s namespace holds {other}'s address {other_ip}:\n{addresses}"
            );
        }
        let listeners = host("nsenter", &[&net, "--", "ss", "-Hltn"]);
        let on_port_80: Vec<&str> = listeners.lines().filter(|l| l.contains(":80 ")).collect();
        assert_eq!(
            on_port_80.len(),
            1,
            "pod {name}'s namespace should hold only its own listener on port 80:\n{listeners}"
        );
    }

    // A pod on the host's network gets no namespace, and the node's address.
    skiff.write_file(
        "on-host.yaml",
        &with_test_images(
            "apiVersion: v1
kind: Pod
metadata:
  name: on-host
spec:
  hostNetwork: true
  terminationGracePeriodSeconds: 2
  containers:
  - name: main
    image: SHELL_IMAGE
    command: [\"sleep\", \"3600\"]
",
        ),
    );
    kubectl.ok(&["apply", "-f", "on-host.yaml"]);
    let on_host = wait_for_every("the host-network pod to run", SETTLE, POLL, || {
        let pod = json_of(&kubectl.ok(&["get", "pod", "on-host", "-o", "json"]));
        (str_at(&pod, "/status/phase") == "Running").then_some(pod)
    });
    let internal_ip = node
        .pointer("/status/addresses")
        .and_then(|a| a.as_array())
        .and_then(|a| a.iter().find(|a| str_at(a, "/type") == "InternalIP"))
        .map(|a| str_at(a, "/address"))
        .expect("the node has an InternalIP");
    assert_eq!(str_at(&on_host, "/status/podIP"), internal_ip);
    let on_host_uid = str_at(&on_host, "/metadata/uid");
    assert!(
        !Path::new(NETNS_DIR).join(&on_host_uid).exists(),
        "a host-network pod got a namespace of its own"
    );

    // A deleted pod's namespace goes with it.
    let (gone_name, gone_uid, _) = pods[0].clone();
    kubectl.ok(&["delete", "pod", &gone_name, "--wait=true"]);
    wait_for_every(
        "the deleted pod's namespace pin to go",
        SETTLE,
        POLL,
        || (!Path::new(NETNS_DIR).join(&gone_uid).exists()).then_some(()),
    );
    let replacement = running_web_pods(&skiff);
    let mut uids: Vec<String> = pods.iter().map(|(_, uid, _)| uid.clone()).collect();
    uids.extend(replacement.iter().map(|(_, uid, _)| uid.clone()));

    // SIGTERM tears the whole pod network down.
    let status = skiff.stop();
    assert!(
        status.success(),
        "skiff exited with {status}:\n{}",
        skiff.log()
    );
    let left = leftovers(&network, &uids);
    assert!(left.is_empty(), "left behind after SIGTERM: {left:?}");
}

#[test]
fn the_oci_runtime_refuses_a_range_it_cannot_route() {
    // Checked before anything starts, so no root is needed to see it.
    let output = Command::new(env!("CARGO_BIN_EXE_skiff"))
        .args([
            "up",
            "--container-runtime",
            "oci",
            "--cluster-cidr",
            "198.18.0.0/33",
        ])
        .env(
            "SKIFF_DATA_DIR",
            std::env::temp_dir().join("skiff-never-created"),
        )
        .output()
        .expect("skiff runs");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("invalid CIDR address: 198.18.0.0/33"),
        "{stderr}"
    );
}

#[test]
fn a_container_over_its_memory_limit_ends_oom_killed_in_its_own_cgroup() {
    assert_root();
    let network = TestNetwork::next("t");
    let mut skiff = network.start_skiff(&network.flags(), &[], &test_images(), SETTLE);
    let kubectl = skiff.kubectl();
    // One container allocates 64 MiB under a 32 MiB limit; its sibling only sleeps, so the
    // pod lives on after the kill and its cgroups can be inspected.
    skiff.write_file(
        "hog.yaml",
        &with_test_images(
            "apiVersion: v1
kind: Pod
metadata:
  name: hog
spec:
  restartPolicy: Never
  terminationGracePeriodSeconds: 2
  containers:
  - name: hog
    image: SHELL_IMAGE
    command: [\"sh\", \"-c\", \"x=$(head -c 67108864 /dev/zero | tr '\\\\0' a); echo survived ${#x}\"]
    resources:
      limits:
        memory: 32Mi
  - name: idle
    image: SHELL_IMAGE
    command: [\"sleep\", \"3600\"]
    resources:
      limits:
        memory: 48Mi
        cpu: 250m
",
        ),
    );
    kubectl.ok(&["apply", "-f", "hog.yaml"]);
    let uid = kubectl.ok(&["get", "pod", "hog", "-o", "jsonpath={.metadata.uid}"]);
    let terminated = wait_for_every("the hog container to terminate", SETTLE, POLL, || {
        let pod = json_of(&kubectl.ok(&["get", "pod", "hog", "-o", "json"]));
        let statuses = pod
            .pointer("/status/containerStatuses")
            .and_then(|s| s.as_array())
            .cloned()
            .unwrap_or_default();
        statuses
            .into_iter()
            .find(|s| str_at(s, "/name") == "hog")
            .and_then(|s| s.pointer("/state/terminated").cloned())
    });
    assert_eq!(str_at(&terminated, "/reason"), "OOMKilled", "{terminated}");
    assert_eq!(
        terminated.pointer("/exitCode"),
        Some(&serde_json::json!(137))
    );
    let described = kubectl.ok(&["describe", "pod", "hog"]);
    let hog_section = described
        .split("  idle:")
        .next()
        .expect("describe prints the containers");
    assert!(
        hog_section.contains("Reason:       OOMKilled")
            && hog_section.contains("Exit Code:    137"),
        "kubectl describe should say the container was OOMKilled:\n{described}"
    );
    // The sibling runs in a cgroup of its own holding its limit.
    let idle = container_cgroups(&network, &uid, "idle");
    assert!(
        !idle.is_empty(),
        "no cgroup for container idle of pod {uid}"
    );
    let memory_limit = idle
        .iter()
        .find_map(|dir| {
            std::fs::read_to_string(dir.join("memory.limit_in_bytes"))
                .or_else(|_| std::fs::read_to_string(dir.join("memory.max")))
                .ok()
        })
        .expect("the container's cgroup has a memory limit file");
    assert_eq!(memory_limit.trim(), (48 * 1024 * 1024).to_string());
    let procs: Vec<String> = idle
        .iter()
        .filter_map(|dir| std::fs::read_to_string(dir.join("cgroup.procs")).ok())
        .flat_map(|text| text.lines().map(str::to_string).collect::<Vec<_>>())
        .collect();
    let sleeping = procs.iter().any(|pid| {
        std::fs::read_to_string(format!("/proc/{pid}/cmdline"))
            .is_ok_and(|cmdline| cmdline.starts_with("sleep\0"))
    });
    assert!(
        sleeping,
        "the idle container's sleep is not in its cgroup: {procs:?}"
    );

    let status = skiff.stop();
    assert!(
        status.success(),
        "skiff exited with {status}:\n{}",
        skiff.log()
    );
    let left = leftovers(&network, &[uid]);
    assert!(left.is_empty(), "left behind after SIGTERM: {left:?}");
}

/// A `key value` figure of a cgroup's `cpu.stat`, read from whichever hierarchy holds it.
fn cpu_stat(dirs: &[std::path::PathBuf], key: &str) -> Option<u64> {
    dirs.iter().find_map(|dir| {
        let text = std::fs::read_to_string(dir.join("cpu.stat")).ok()?;
        text.lines().find_map(|line| {
            let (name, value) = line.split_once(' ')?;
            (name == key).then(|| value.trim().parse().ok())?
        })
    })
}

#[test]
fn a_cpu_limited_container_is_throttled_and_measured_from_its_cgroup() {
    assert_root();
    let network = TestNetwork::next("t");
    let mut skiff = network.start_skiff(
        &network.flags(),
        &["--metric-resolution", "1"],
        &test_images(),
        SETTLE,
    );
    let kubectl = skiff.kubectl();
    skiff.write_file(
        "spin.yaml",
        &with_test_images(
            "apiVersion: v1
kind: Pod
metadata:
  name: spin
spec:
  terminationGracePeriodSeconds: 2
  containers:
  - name: spin
    image: SHELL_IMAGE
    command: [\"sh\", \"-c\", \"while :; do :; done\"]
    resources:
      limits:
        cpu: 200m
",
        ),
    );
    kubectl.ok(&["apply", "-f", "spin.yaml"]);
    let uid = kubectl.ok(&["get", "pod", "spin", "-o", "jsonpath={.metadata.uid}"]);
    let dirs = wait_for_every("the spin container's cgroup", SETTLE, POLL, || {
        let dirs = container_cgroups(&network, &uid, "spin");
        (!dirs.is_empty()).then_some(dirs)
    });
    // The pod is Burstable: its tier's CPU shares grew to its request (200m is 204 shares;
    // with no Burstable pod the tier has the minimal 2). cgroup v2 has weights instead.
    let tier_shares = cgroup_hierarchies()
        .into_iter()
        .map(|h| {
            h.join(&network.cgroup_root)
                .join("kubepods/burstable/cpu.shares")
        })
        .find(|file| file.exists());
    if let Some(file) = tier_shares {
        let shares = std::fs::read_to_string(&file).unwrap_or_default();
        assert_eq!(shares.trim(), "204", "{}", file.display());
    } else {
        let weight = cgroup_hierarchies()
            .into_iter()
            .map(|h| {
                h.join(&network.cgroup_root)
                    .join("kubepods/burstable/cpu.weight")
            })
            .find(|file| file.exists())
            .expect("the Burstable tier has cpu.shares (v1) or cpu.weight (v2)");
        let weight = std::fs::read_to_string(&weight).unwrap_or_default();
        assert_ne!(
            weight.trim(),
            "1",
            "the Burstable tier kept the minimal weight"
        );
    }
    // The quota holds the loop to a fifth of a CPU: the kernel counts throttled periods.
    let throttled = wait_for_every("throttled periods in cpu.stat", SETTLE, POLL, || {
        cpu_stat(&dirs, "nr_throttled").filter(|n| *n >= 5)
    });
    assert!(throttled >= 5);
    // `kubectl top` reads the cgroup: the loop uses about its limit, never much more.
    let millicores = wait_for_every("kubectl top to measure the pod", SETTLE, POLL, || {
        let out = kubectl.run(&["top", "pod", "spin", "--no-headers"]);
        if !out.success() {
            return None;
        }
        let cpu = out
            .stdout
            .split_whitespace()
            .nth(1)?
            .strip_suffix('m')?
            .to_string();
        cpu.parse::<u64>().ok().filter(|m| *m > 0)
    });
    assert!(
        (100..=260).contains(&millicores),
        "a loop limited to 200m measured {millicores}m"
    );

    let status = skiff.stop();
    assert!(
        status.success(),
        "skiff exited with {status}:\n{}",
        skiff.log()
    );
    let left = leftovers(&network, &[uid]);
    assert!(left.is_empty(), "left behind after SIGTERM: {left:?}");
}

#[test]
fn after_a_crash_pods_come_back_with_the_same_addresses_and_nothing_leaks() {
    assert_root();
    let network = TestNetwork::next("t");
    let mut skiff = network.start_skiff(&network.flags(), &[], &test_images(), SETTLE);
    let kubectl = skiff.kubectl();
    skiff.write_file("web.yaml", &web_deployment());
    kubectl.ok(&["apply", "-f", "web.yaml"]);
    let before: BTreeSet<(String, String, String)> = running_web_pods(&skiff).into_iter().collect();

    skiff.kill();
    skiff.restart();
    let kubectl = skiff.kubectl();
    // The same pods run on (their containers are adopted: no restart is counted) at the
    // addresses they had, and answer there.
    let after = wait_for_every(
        "the pods to run again after the crash",
        SETTLE,
        POLL,
        || {
            let list = json_of(&kubectl.ok(&["get", "pods", "-l", "app=web", "-o", "json"]));
            let pods: BTreeSet<(String, String, String)> = items(&list)
                .iter()
                .filter(|pod| {
                    pod.pointer("/status/containerStatuses/0/state/running")
                        .is_some()
                        && pod
                            .pointer("/status/containerStatuses/0/restartCount")
                            .and_then(|c| c.as_i64())
                            == Some(0)
                })
                .map(|pod| {
                    (
                        str_at(pod, "/metadata/name"),
                        str_at(pod, "/metadata/uid"),
                        str_at(pod, "/status/podIP"),
                    )
                })
                .collect();
            (pods.len() == 3).then_some(pods)
        },
    );
    assert_eq!(
        after, before,
        "pods or their addresses changed across the crash"
    );
    for (name, _, ip) in &after {
        wait_for_every(
            &format!("pod {name} to answer at {ip}"),
            SETTLE,
            POLL,
            || ok_body(ip),
        );
    }
    // One veth per pod on the bridge: the crash left no second one.
    let on_bridge = host("ip", &["-o", "link", "show", "master", &network.bridge]);
    assert_eq!(on_bridge.lines().count(), 3, "{on_bridge}");

    let status = skiff.stop();
    assert!(
        status.success(),
        "skiff exited with {status}:\n{}",
        skiff.log()
    );
    let uids: Vec<String> = after.iter().map(|(_, uid, _)| uid.clone()).collect();
    let left = leftovers(&network, &uids);
    assert!(left.is_empty(), "left behind after SIGTERM: {left:?}");
}

/// The status of container `name` in pod JSON `pod`.
fn container_status(pod: &serde_json::Value, name: &str) -> Option<serde_json::Value> {
    pod.pointer("/status/containerStatuses")?
        .as_array()?
        .iter()
        .find(|s| str_at(s, "/name") == name)
        .cloned()
}

/// A pod of the shell image that records what it sees into the host directory `shared`: its
/// processes, hostname and whether the server's token is visible; an exec probe records
/// where it ran, and a TERM trap records that it ran.
fn observer_pod(shared: &Path, token: &Path) -> String {
    let token = token.display();
    format!(
        "apiVersion: v1
kind: Pod
metadata:
  name: observer
spec:
  terminationGracePeriodSeconds: 30
  containers:
  - name: main
    image: {shell}
    command:
    - sh
    - -c
    - |
      trap 'echo got-term > /shared/term; exit 0' TERM
      ps -o pid,args > /shared/ps
      hostname > /shared/hostname
      if [ -e {token} ]; then echo visible; else echo invisible; fi > /shared/token
      while true; do sleep 1 & wait $!; done
    volumeMounts:
    - name: shared
      mountPath: /shared
    livenessProbe:
      exec:
        command: [sh, -c, \"hostname > /shared/probe-hostname; tr '\\\\0' ' ' < /proc/1/cmdline > /shared/probe-pid1\"]
      periodSeconds: 1
  volumes:
  - name: shared
    hostPath:
      path: {shared}
",
        shell = support::images::SHELL,
        shared = shared.display(),
    )
}

/// A pod whose container exits 3 and is restarted on failure.
fn exit_three_pod() -> String {
    format!(
        "apiVersion: v1
kind: Pod
metadata:
  name: exit-three
spec:
  restartPolicy: OnFailure
  containers:
  - name: main
    image: {shell}
    command: [sh, -c, \"exit 3\"]
",
        shell = support::images::SHELL,
    )
}

/// The zombie children of process `parent`, from `/proc/<pid>/stat`.
fn zombie_children_of(parent: u32) -> Vec<String> {
    std::fs::read_dir("/proc")
        .expect("/proc")
        .flatten()
        .filter_map(|entry| std::fs::read_to_string(entry.path().join("stat")).ok())
        .filter(|stat| {
            let Some(after) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
                return false;
            };
            let mut fields = after.split_whitespace();
            fields.next() == Some("Z") && fields.next() == Some(parent.to_string().as_str())
        })
        .collect()
}

/// A file the observer pod wrote, once it is there and not empty.
fn shared_file(dir: &Path, name: &str) -> String {
    wait_for_every(&format!("the pod to write {name}"), SETTLE, POLL, || {
        std::fs::read_to_string(dir.join(name))
            .ok()
            .filter(|text| !text.trim().is_empty())
    })
}

/// Containers run through the OCI runtime given by `runtime_flags` (none: the embedded one):
/// each in its own PID and UTS namespaces and its image's root, exit codes reported and
/// restarts done by policy, exec probes run inside, SIGTERM reaches the container's trap, and
/// after SIGTERM to skiff nothing of them is left.
fn containers_run_through_the_oci_runtime(runtime_flags: &[&str]) {
    assert_root();
    let network = TestNetwork::next("t");
    let mut skiff = network.start_skiff(
        &network.flags(),
        runtime_flags,
        &[support::images::shell()],
        SETTLE,
    );
    let kubectl = skiff.kubectl();
    let shared = skiff.file_path("shared");
    std::fs::create_dir_all(&shared).expect("the shared directory");
    let token = skiff.data_dir().join("token");
    assert!(
        token.exists(),
        "the server has no token at {}",
        token.display()
    );
    skiff.write_file("observer.yaml", &observer_pod(&shared, &token));
    skiff.write_file("exit-three.yaml", &exit_three_pod());
    kubectl.ok(&["apply", "-f", "observer.yaml"]);
    kubectl.ok(&["apply", "-f", "exit-three.yaml"]);
    let observer_uid = kubectl.ok(&["get", "pod", "observer", "-o", "jsonpath={.metadata.uid}"]);
    let exit_uid = kubectl.ok(&["get", "pod", "exit-three", "-o", "jsonpath={.metadata.uid}"]);

    // PID 1 is the container's command, and its own processes are all it sees.
    let ps = shared_file(&shared, "ps");
    let state = skiff.data_dir().join("oci").join("state");
    assert!(
        state.join(format!("{observer_uid}-main")).is_dir(),
        "the runtime does not know the observer's container in {}",
        state.display()
    );
    let pid_one = ps
        .lines()
        .find(|line| line.split_whitespace().next() == Some("1"))
        .unwrap_or_else(|| panic!("no PID 1 in the container's ps:\n{ps}"));
    assert!(pid_one.contains("sh -c"), "PID 1 is not the command:\n{ps}");
    assert!(
        ps.lines().count() <= 4,
        "the container sees more than its own processes:\n{ps}"
    );
    assert_eq!(shared_file(&shared, "hostname").trim(), "observer");
    assert_eq!(
        shared_file(&shared, "token").trim(),
        "invisible",
        "the server's token is visible inside the container"
    );
    // The exec probe ran inside the container: its hostname, its PID 1.
    assert_eq!(shared_file(&shared, "probe-hostname").trim(), "observer");
    let probe_pid1 = shared_file(&shared, "probe-pid1");
    assert!(
        probe_pid1.starts_with("sh -c"),
        "the probe saw another PID 1: {probe_pid1}"
    );
    let pod = json_of(&kubectl.ok(&["get", "pod", "observer", "-o", "json"]));
    let status = container_status(&pod, "main").expect("the observer has a status");
    assert_eq!(
        status.pointer("/restartCount"),
        Some(&serde_json::json!(0)),
        "the passing liveness probe restarted the container: {status}"
    );

    // A container exiting 3 is Terminated with exit code 3 and restarted on failure.
    let restarted = wait_for_every("exit-three to be restarted", SETTLE, POLL, || {
        let pod = json_of(&kubectl.ok(&["get", "pod", "exit-three", "-o", "json"]));
        container_status(&pod, "main").filter(|s| {
            s.pointer("/restartCount")
                .and_then(|c| c.as_i64())
                .is_some_and(|c| c >= 1)
        })
    });
    let last = restarted
        .pointer("/lastState/terminated")
        .unwrap_or_else(|| panic!("no lastState.terminated: {restarted}"));
    assert_eq!(
        last.pointer("/exitCode"),
        Some(&serde_json::json!(3)),
        "{last}"
    );
    assert_eq!(str_at(last, "/reason"), "Error", "{last}");

    // Containers' PID 1s and runtime helpers come back to skiff: none stays a zombie.
    let skiff_pid = skiff.pid();
    wait_for_every("skiff to have no zombie children", SETTLE, POLL, || {
        let zombies = zombie_children_of(skiff_pid);
        zombies.is_empty().then_some(())
    });

    // Deleting the observer sends SIGTERM to its PID 1, whose trap runs.
    kubectl.ok(&["delete", "pod", "observer", "--wait=true"]);
    assert_eq!(shared_file(&shared, "term").trim(), "got-term");

    let status = skiff.stop();
    assert!(
        status.success(),
        "skiff exited with {status}:\n{}",
        skiff.log()
    );
    let mut left = leftovers(&network, &[observer_uid.clone(), exit_uid.clone()]);
    let containers = std::fs::read_dir(&state)
        .map(|entries| entries.count())
        .unwrap_or(0);
    if containers > 0 {
        left.push(format!("{containers} containers in the runtime's state"));
    }
    for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let environ = std::fs::read(entry.path().join("environ")).unwrap_or_default();
        let environ = String::from_utf8_lossy(&environ);
        for uid in [&observer_uid, &exit_uid] {
            if environ.contains(uid.as_str()) {
                left.push(format!("process {:?} of pod {uid}", entry.file_name()));
            }
        }
    }
    assert!(left.is_empty(), "left behind after SIGTERM: {left:?}");
}

#[test]
fn containers_run_through_the_embedded_oci_runtime() {
    containers_run_through_the_oci_runtime(&[]);
}

#[test]
fn containers_run_through_crun() {
    let crun = ["/usr/bin/crun", "/usr/local/bin/crun", "/usr/sbin/crun"]
        .into_iter()
        .find(|path| Path::new(path).is_file())
        .expect("crun is not installed (Debian package crun)");
    containers_run_through_the_oci_runtime(&["--oci-runtime", crun]);
}

/// One adoptable pod's facts before the crash.
#[derive(Debug)]
struct Ticker {
    name: String,
    uid: String,
    ip: String,
    started_at: String,
    pid: i32,
}

/// A pod of the shell image whose PID 1 prints a numbered line every 200 ms, so the test can
/// tell that its output still reaches the log.
fn ticker_pod(name: &str) -> String {
    format!(
        "apiVersion: v1
kind: Pod
metadata:
  name: {name}
  labels:
    app: ticker
spec:
  # A shell as a PID namespace's init ignores SIGTERM: it ends at the grace period's SIGKILL.
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: {shell}
    command: [sh, -c, 'i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.2; done']
---
",
        shell = support::images::SHELL
    )
}

/// The container's PID 1 on the host, as the runtime recorded it at `create`.
fn container_pid(skiff: &Skiff, uid: &str) -> Option<i32> {
    std::fs::read_to_string(
        skiff
            .data_dir()
            .join("oci")
            .join("containers")
            .join(format!("{uid}-main"))
            .join("pid"),
    )
    .ok()?
    .trim()
    .parse()
    .ok()
}

/// Whether `pid` is a live (not zombie) process carrying the pod UID `uid` in its
/// environment: the pod's container, not a PID reused by something else.
fn runs_for_pod(pid: i32, uid: &str) -> bool {
    let alive = std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rfind(')')
            .and_then(|end| stat[end + 1..].split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X")
    });
    alive
        && std::fs::read(format!("/proc/{pid}/environ"))
            .is_ok_and(|environ| String::from_utf8_lossy(&environ).contains(uid))
}

/// The PIDs of node monitors serving the runtime root `root`.
fn monitors_of(root: &Path) -> Vec<i32> {
    let wanted = root.display().to_string();
    std::fs::read_dir("/proc")
        .expect("/proc")
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|cmdline| {
                let words: Vec<String> = cmdline
                    .split(|b| *b == 0)
                    .map(|w| String::from_utf8_lossy(w).into_owned())
                    .collect();
                words.iter().any(|w| w == "node-monitor") && words.contains(&wanted)
            })
        })
        .collect()
}

/// The highest tick number in a ticker pod's log.
fn last_tick(kubectl: &support::Kubectl, pod: &str) -> Option<u64> {
    kubectl
        .ok(&["logs", pod])
        .lines()
        .filter_map(|line| line.strip_prefix("tick ")?.trim().parse().ok())
        .max()
}

#[test]
fn after_a_crash_running_containers_are_adopted_and_one_killed_meanwhile_restarts() {
    assert_root();
    const PODS: usize = 10;
    let network = TestNetwork::next("t");
    let mut skiff = network.start_skiff(&network.flags(), &[], &[support::images::shell()], SETTLE);
    let kubectl = skiff.kubectl();
    let manifest: String = (0..PODS)
        .map(|i| ticker_pod(&format!("ticker-{i}")))
        .collect();
    skiff.write_file("tickers.yaml", &manifest);
    kubectl.ok(&["apply", "-f", "tickers.yaml"]);
    let tickers: Vec<Ticker> = wait_for_every("ten running ticker pods", SETTLE, POLL, || {
        let list = json_of(&kubectl.ok(&["get", "pods", "-l", "app=ticker", "-o", "json"]));
        let pods: Vec<Ticker> = items(&list)
            .iter()
            .filter_map(|pod| {
                let uid = str_at(pod, "/metadata/uid");
                let status = container_status(pod, "main")?;
                let started_at = status
                    .pointer("/state/running/startedAt")?
                    .as_str()?
                    .to_string();
                let ip = str_at(pod, "/status/podIP");
                let pid = container_pid(&skiff, &uid)?;
                (!ip.is_empty() && runs_for_pod(pid, &uid)).then(|| Ticker {
                    name: str_at(pod, "/metadata/name"),
                    uid,
                    ip,
                    started_at,
                    pid,
                })
            })
            .collect();
        (pods.len() == PODS).then_some(pods)
    });
    let root = skiff.data_dir().join("oci");
    let monitors = monitors_of(&root);
    assert_eq!(monitors.len(), 1, "one node monitor: {monitors:?}");
    let smaps =
        std::fs::read_to_string(format!("/proc/{}/smaps_rollup", monitors[0])).unwrap_or_default();
    let figure = |key: &str| {
        smaps
            .lines()
            .find(|l| l.starts_with(key))
            .map(|l| l.trim().to_string())
            .unwrap_or_default()
    };
    eprintln!(
        "node monitor with {PODS} pods: {}, {}",
        figure("Rss:"),
        figure("Pss:")
    );
    let ticks_before: Vec<u64> = tickers
        .iter()
        .map(|t| last_tick(&kubectl, &t.name).unwrap_or(0))
        .collect();

    skiff.kill();
    // While Skiff is down, the first pod's PID 1 is killed; the monitor collects it.
    let victim = &tickers[0];
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(victim.pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("killing the first ticker's PID 1");
    wait_for_every("the killed PID 1 to be collected", SETTLE, POLL, || {
        (!Path::new(&format!("/proc/{}", victim.pid)).exists()).then_some(())
    });
    // Its exit code is on disk while Skiff is still down.
    let exit_file = root
        .join("containers")
        .join(format!("{}-main", victim.uid))
        .join("exit-code");
    wait_for_every("the monitor to record the exit code", SETTLE, POLL, || {
        (std::fs::read_to_string(&exit_file).ok()?.trim() == "137").then_some(())
    });
    for ticker in &tickers[1..] {
        assert!(
            runs_for_pod(ticker.pid, &ticker.uid),
            "{} stopped running when Skiff was killed",
            ticker.name
        );
    }
    skiff.restart();
    let kubectl = skiff.kubectl();
    let ready_at = std::time::Instant::now();

    // The others were adopted: the same processes, Ready within 5 s of the server being
    // ready, restart counts, start times and addresses unchanged.
    wait_for_every(
        "the other tickers to be adopted, running and Ready",
        Duration::from_secs(5).saturating_sub(ready_at.elapsed()),
        Duration::from_millis(100),
        || {
            let list = json_of(&kubectl.ok(&["get", "pods", "-l", "app=ticker", "-o", "json"]));
            tickers[1..]
                .iter()
                .all(|ticker| {
                    items(&list).iter().any(|pod| {
                        let ready = pod
                            .pointer("/status/conditions")
                            .and_then(|c| c.as_array())
                            .is_some_and(|conditions| {
                                conditions.iter().any(|c| {
                                    str_at(c, "/type") == "Ready" && str_at(c, "/status") == "True"
                                })
                            });
                        let status = container_status(pod, "main");
                        str_at(pod, "/metadata/uid") == ticker.uid
                            && ready
                            && str_at(pod, "/status/podIP") == ticker.ip
                            && status.as_ref().is_some_and(|s| {
                                s.pointer("/restartCount").and_then(|c| c.as_i64()) == Some(0)
                                    && s.pointer("/state/running/startedAt")
                                        .and_then(|t| t.as_str())
                                        == Some(ticker.started_at.as_str())
                            })
                    })
                })
                .then_some(())
        },
    );
    // The killed one is reported with its exit code and started again, counted.
    let restarted = wait_for_every("the killed ticker to run again", SETTLE, POLL, || {
        let pod = json_of(&kubectl.ok(&["get", "pod", &victim.name, "-o", "json"]));
        let status = container_status(&pod, "main")?;
        (status.pointer("/state/running").is_some()
            && status.pointer("/restartCount").and_then(|c| c.as_i64()) == Some(1))
        .then_some(status)
    });
    assert_eq!(
        restarted.pointer("/lastState/terminated/exitCode"),
        Some(&serde_json::json!(137)),
        "{restarted}"
    );
    assert_eq!(
        restarted.pointer("/lastState/terminated/reason"),
        Some(&serde_json::json!("Error")),
        "{restarted}"
    );
    assert_eq!(
        restarted
            .pointer("/lastState/terminated/startedAt")
            .and_then(|s| s.as_str()),
        Some(victim.started_at.as_str()),
        "{restarted}"
    );
    let new_pid = container_pid(&skiff, &victim.uid).expect("the new run's PID 1");
    assert_ne!(
        new_pid, victim.pid,
        "the killed container runs again as a new process"
    );

    for ticker in &tickers[1..] {
        assert!(
            runs_for_pod(ticker.pid, &ticker.uid),
            "{} is no longer the same process",
            ticker.name
        );
        assert_eq!(container_pid(&skiff, &ticker.uid), Some(ticker.pid));
    }
    // Their output flows into their logs again, from the same processes.
    for (ticker, before) in tickers[1..].iter().zip(&ticks_before[1..]) {
        wait_for_every(
            &format!("{} to log past tick {before} after adoption", ticker.name),
            SETTLE,
            POLL,
            || last_tick(&kubectl, &ticker.name).filter(|tick| tick > before),
        );
    }
    // Still adopted once the agent has been at work (it restarted the killed one): no
    // restart counted, the same processes.
    let list = json_of(&kubectl.ok(&["get", "pods", "-l", "app=ticker", "-o", "json"]));
    for ticker in &tickers[1..] {
        let pod = items(&list)
            .iter()
            .find(|pod| str_at(pod, "/metadata/uid") == ticker.uid)
            .cloned()
            .unwrap_or_else(|| panic!("{} is gone", ticker.name));
        let status = container_status(&pod, "main").expect("a container status");
        assert_eq!(
            status.pointer("/restartCount").and_then(|c| c.as_i64()),
            Some(0),
            "{}: {status}",
            ticker.name
        );
        assert!(runs_for_pod(ticker.pid, &ticker.uid), "{}", ticker.name);
    }
    // One veth per pod on the bridge: none was made twice.
    let on_bridge = host("ip", &["-o", "link", "show", "master", &network.bridge]);
    assert_eq!(on_bridge.lines().count(), PODS, "{on_bridge}");

    // A second crash: adopted containers, and the one started since, are adopted again.
    skiff.kill();
    skiff.restart();
    let kubectl = skiff.kubectl();
    let expected: Vec<(String, i32, i64)> = tickers
        .iter()
        .map(|t| {
            if t.uid == victim.uid {
                (t.uid.clone(), new_pid, 1)
            } else {
                (t.uid.clone(), t.pid, 0)
            }
        })
        .collect();
    wait_for_every("every ticker to be adopted again", SETTLE, POLL, || {
        let list = json_of(&kubectl.ok(&["get", "pods", "-l", "app=ticker", "-o", "json"]));
        expected
            .iter()
            .all(|(uid, pid, restarts)| {
                items(&list).iter().any(|pod| {
                    str_at(pod, "/metadata/uid") == *uid
                        && container_status(pod, "main").is_some_and(|s| {
                            s.pointer("/restartCount").and_then(|c| c.as_i64()) == Some(*restarts)
                                && s.pointer("/state/running").is_some()
                        })
                }) && runs_for_pod(*pid, uid)
            })
            .then_some(())
    });
    // The agent owns them again: deleting one stops its adopted process gracefully.
    let deleted = &tickers[PODS - 1];
    kubectl.ok(&["delete", "pod", &deleted.name, "--wait=false"]);
    wait_for_every(
        &format!("{} to be deleted with its process", deleted.name),
        SETTLE,
        POLL,
        || {
            let gone = !kubectl
                .ok(&["get", "pods", "-o", "name"])
                .contains(&format!("pod/{}", deleted.name));
            (gone && !runs_for_pod(deleted.pid, &deleted.uid)).then_some(())
        },
    );
    // A third crash, and SIGTERM at once: whether or not the workers adopted them yet,
    // nothing is left.
    skiff.kill();
    skiff.restart();

    let status = skiff.stop();
    assert!(
        status.success(),
        "skiff exited with {status}:\n{}",
        skiff.log()
    );
    let uids: Vec<String> = tickers.iter().map(|t| t.uid.clone()).collect();
    let mut left = leftovers(&network, &uids);
    for ticker in &tickers {
        let state = root.join("state").join(format!("{}-main", ticker.uid));
        if state.exists() {
            left.push(format!("runtime state {}", state.display()));
        }
        if runs_for_pod(ticker.pid, &ticker.uid) {
            left.push(format!("process {} of {}", ticker.pid, ticker.name));
        }
    }
    if runs_for_pod(new_pid, &victim.uid) {
        left.push(format!("process {new_pid} of {}", victim.name));
    }
    assert!(left.is_empty(), "left behind after SIGTERM: {left:?}");
    wait_for_every("the node monitor to exit", SETTLE, POLL, || {
        monitors_of(&root).is_empty().then_some(())
    });
}

/// A pod of the shell image that stays up for exec, with an environment and a working
/// directory the image lacks (made at start, as runtimes make it), and busybox's `httpd` on
/// port 8080 for port-forward.
fn toolbox_pod() -> String {
    format!(
        "apiVersion: v1
kind: Pod
metadata:
  name: toolbox
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: {shell}
    workingDir: /srv/app
    env:
    - name: GREETING
      value: hello from the container
    command: [sh, -c, \"mkdir -p /www && echo served-from-the-pod > /www/index.html && exec httpd -f -p 8080 -h /www\"]
",
        shell = support::images::SHELL,
    )
}

/// What a kubectl run fed on stdin printed, and how it ended.
struct Fed {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// Runs the PATH kubectl against `skiff` with `args` and `input` on stdin, killed (failing
/// the test) after [`SETTLE`].
fn kubectl_fed(skiff: &Skiff, args: &[&str], input: &[u8]) -> Fed {
    use std::io::{Read, Write};
    use std::process::Stdio;
    let mut child = Command::new(support::path_kubectl())
        .arg("--kubeconfig")
        .arg(skiff.kubeconfig())
        .args(args)
        .env_remove("KUBECONFIG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running kubectl");
    let mut stdin = child.stdin.take().expect("stdin is piped");
    let input = input.to_vec();
    let feeder = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let read_all = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = pipe.read_to_end(&mut bytes);
            String::from_utf8_lossy(&bytes).into_owned()
        })
    };
    let stdout = read_all(Box::new(child.stdout.take().expect("stdout is piped")));
    let stderr = read_all(Box::new(child.stderr.take().expect("stderr is piped")));
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("waiting for kubectl") {
            break status;
        }
        if started.elapsed() > SETTLE {
            let _ = child.kill();
            let _ = child.wait();
            panic!("kubectl {args:?} did not finish within {SETTLE:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let _ = feeder.join();
    Fed {
        code: status.code(),
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    }
}

/// Runs `kubectl exec -it` under `script` (a pseudo-terminal of 91x27 that becomes 100x40
/// once the test creates a go file) and checks that the command saw both sizes.
fn exec_on_a_terminal_follows_a_resize(skiff: &Skiff, pod: &str) {
    use std::io::Read;
    use std::process::Stdio;
    let go = skiff.file_path("resize-go");
    let inner = format!(
        "stty cols 91 rows 27; \
         (while [ ! -e {go} ]; do sleep 0.05; done; stty cols 100 rows 40 < /dev/tty) & \
         {kubectl} --kubeconfig {config} exec -it {pod} -- sh -c \
         'stty size; i=0; while [ \"$(stty size)\" != \"40 100\" ] && [ $i -lt 600 ]; do sleep 0.05; i=$((i+1)); done; echo now $(stty size); [ -t 0 ] && [ -t 1 ] && echo on a terminal'",
        go = go.display(),
        kubectl = support::path_kubectl().display(),
        config = skiff.kubeconfig().display(),
    );
    let mut child = Command::new("script")
        .args(["-qec", &inner, "/dev/null"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("`script` (bsdutils) must be installed");
    let (tx, rx) = std::sync::mpsc::channel::<Vec<u8>>();
    let mut stdout = child.stdout.take().expect("stdout is piped");
    std::thread::spawn(move || {
        let mut buffer = [0u8; 4096];
        while let Ok(n) = stdout.read(&mut buffer) {
            if n == 0 || tx.send(buffer[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let mut seen = String::new();
    let mut wait_text = |text: &str, seen: &mut String| {
        let deadline = std::time::Instant::now() + SETTLE;
        while !seen.contains(text) {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match rx.recv_timeout(left) {
                Ok(chunk) => seen.push_str(&String::from_utf8_lossy(&chunk)),
                Err(_) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("{text:?} never appeared in the terminal: {seen:?}");
                }
            }
        }
    };
    wait_text("27 91", &mut seen);
    assert!(
        seen.trim_start().starts_with("27 91"),
        "the command starts with the client's size: {seen:?}"
    );
    std::fs::write(&go, b"").expect("creating the go file");
    wait_text("now 40 100\r\non a terminal", &mut seen);
    let status = child.wait().expect("waiting for script");
    assert!(status.success(), "exec -it failed: {seen:?}");
}

/// `kubectl exec`, `cp` and `port-forward` into a container of the OCI runtime given by
/// `runtime_flags`: the command runs through the runtime's exec (the container's cgroup,
/// capabilities, environment and working directory, as its PID 1 has them), on pipes with
/// the exit code reported, or on a terminal that follows a resize; `cp` goes both ways
/// byte-identical; port-forward reaches the pod's own network namespace.
fn streams_reach_containers_of_the_oci_runtime(runtime_flags: &[&str]) {
    assert_root();
    let network = TestNetwork::next("t");
    let mut flags = network.flags();
    flags.extend(runtime_flags.iter().map(|f| f.to_string()));
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let mut skiff = Skiff::start_with_images(&flags, &[support::images::shell()]);
    let kubectl = skiff.kubectl();
    skiff.write_file("toolbox.yaml", &toolbox_pod());
    kubectl.ok(&["apply", "-f", "toolbox.yaml"]);
    let uid = kubectl.ok(&["get", "pod", "toolbox", "-o", "jsonpath={.metadata.uid}"]);
    wait_for_every("the toolbox pod to run", SETTLE, POLL, || {
        let phase = kubectl.ok(&["get", "pod", "toolbox", "-o", "jsonpath={.status.phase}"]);
        (phase == "Running").then_some(())
    });

    // Both streams and the exit code.
    let out = kubectl_fed(
        &skiff,
        &[
            "exec",
            "toolbox",
            "--",
            "sh",
            "-c",
            "echo out; echo err >&2; exit 3",
        ],
        b"",
    );
    assert_eq!(
        out.code,
        Some(3),
        "exit code; stderr: {}\npod: {}\nlogs: {}",
        out.stderr,
        kubectl.ok(&["get", "pod", "toolbox", "-o", "yaml"]),
        kubectl.run(&["logs", "toolbox"]).stdout
    );
    assert_eq!(out.stdout, "out\n");
    assert!(
        out.stderr.starts_with("err\n")
            && out.stderr.contains("command terminated with exit code 3"),
        "stderr: {:?}",
        out.stderr
    );

    // Stdin to its end.
    let echoed = kubectl_fed(
        &skiff,
        &["exec", "-i", "toolbox", "--", "cat"],
        b"first line\nsecond line\n",
    );
    assert_eq!(echoed.code, Some(0), "cat: {}", echoed.stderr);
    assert_eq!(echoed.stdout, "first line\nsecond line\n");

    // The command is where PID 1 is: its cgroup, capabilities, environment and directory.
    let place = "cat /proc/self/cgroup; grep -E '^Cap(Eff|Bnd)' /proc/self/status; \
                 echo \"$GREETING\"";
    let of_pid1 = "cat /proc/1/cgroup; grep -E '^Cap(Eff|Bnd)' /proc/1/status; \
                   tr '\\0' '\\n' < /proc/1/environ | sed -n 's/^GREETING=//p'";
    let exec_sees = kubectl.ok(&["exec", "toolbox", "--", "sh", "-c", place]);
    let pid1_has = kubectl.ok(&["exec", "toolbox", "--", "sh", "-c", of_pid1]);
    assert_eq!(
        exec_sees, pid1_has,
        "an exec'd command is not where the container's PID 1 is"
    );
    assert!(
        exec_sees.ends_with("hello from the container\n"),
        "{exec_sees}"
    );
    assert_eq!(kubectl.ok(&["exec", "toolbox", "--", "pwd"]), "/srv/app\n");
    assert!(
        !container_cgroups(&network, &uid, "main").is_empty(),
        "the container has no cgroup of its own"
    );

    exec_on_a_terminal_follows_a_resize(&skiff, "toolbox");

    // cp both ways, byte-identical.
    let source = skiff.file_path("tree");
    std::fs::create_dir_all(source.join("nested")).expect("the tree");
    std::fs::write(source.join("hello.txt"), b"hello\n").expect("a file");
    let blob: Vec<u8> = (0..300_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(source.join("nested/blob.bin"), &blob).expect("a file");
    let source_text = source.to_string_lossy().into_owned();
    let into = kubectl_fed(&skiff, &["cp", &source_text, "toolbox:/tmp/copied"], b"");
    assert_eq!(into.code, Some(0), "cp into the pod: {}", into.stderr);
    let back = skiff.file_path("back");
    let back_text = back.to_string_lossy().into_owned();
    let out = kubectl_fed(&skiff, &["cp", "toolbox:/tmp/copied", &back_text], b"");
    assert_eq!(out.code, Some(0), "cp out of the pod: {}", out.stderr);
    for file in ["hello.txt", "nested/blob.bin"] {
        let original = std::fs::read(source.join(file)).expect("the original");
        let copied = std::fs::read(back.join(file))
            .unwrap_or_else(|e| panic!("{file} did not come back: {e}"));
        assert!(original == copied, "{file} changed on the way");
    }

    // Port-forward reaches the server in the pod's own network namespace.
    let mut forward = kubectl.spawn_lines(&["port-forward", "pod/toolbox", ":8080"]);
    let line = forward.wait_for_line("the forwarding port", |line| {
        line.starts_with("Forwarding from 127.0.0.1:")
    });
    let port: u16 = line
        .trim_start_matches("Forwarding from 127.0.0.1:")
        .split_whitespace()
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no port in {line:?}"));
    let address: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
    let answer = support::http::http_get_at(
        address,
        "/index.html",
        Duration::from_secs(5),
        Duration::from_secs(10),
    );
    match answer {
        Ok((200, body)) => assert_eq!(body.trim(), "served-from-the-pod"),
        other => panic!("port-forward to the pod: {other:?}"),
    }
    drop(forward);

    let status = skiff.stop();
    assert!(
        status.success(),
        "skiff exited with {status}:\n{}",
        skiff.log()
    );
}

#[test]
fn exec_cp_and_port_forward_reach_containers_of_the_embedded_oci_runtime() {
    streams_reach_containers_of_the_oci_runtime(&[]);
}

#[test]
fn exec_cp_and_port_forward_reach_containers_of_crun() {
    let crun = ["/usr/bin/crun", "/usr/local/bin/crun", "/usr/sbin/crun"]
        .into_iter()
        .find(|path| Path::new(path).is_file())
        .expect("crun is not installed (Debian package crun)");
    streams_reach_containers_of_the_oci_runtime(&["--oci-runtime", crun]);
}

/// Pods whose containers read their input: `echo` (`cat`, with `stdinOnce`), `keeper` (a line
/// reader that keeps its stdin across sessions) and `term` (a shell on a terminal).
fn input_pods() -> String {
    format!(
        "apiVersion: v1
kind: Pod
metadata:
  name: echo
spec:
  restartPolicy: Never
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: {shell}
    command: [cat]
    stdin: true
    stdinOnce: true
---
apiVersion: v1
kind: Pod
metadata:
  name: keeper
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: {shell}
    command: [sh, -c, 'while read line; do echo \"got $line\"; done']
    stdin: true
---
apiVersion: v1
kind: Pod
metadata:
  name: term
spec:
  restartPolicy: Never
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: {shell}
    command: [sh]
    stdin: true
    tty: true
",
        shell = support::images::SHELL
    )
}

/// Runs `kubectl attach -i POD` with `line` on its stdin, kept open, until the attached
/// output shows `wanted` (failing after [`SETTLE`]); then ends the session. The output seen.
fn attach_until(skiff: &Skiff, pod: &str, line: &str, wanted: &str) -> String {
    use std::io::{Read, Write};
    use std::process::Stdio;
    let mut child = Command::new(support::path_kubectl())
        .arg("--kubeconfig")
        .arg(skiff.kubeconfig())
        .args(["attach", "-i", pod])
        .env_remove("KUBECONFIG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running kubectl attach");
    let mut stdin = child.stdin.take().expect("stdin is piped");
    stdin
        .write_all(line.as_bytes())
        .expect("writing to kubectl");
    let (tx, rx) = std::sync::mpsc::channel::<Vec<u8>>();
    let mut stdout = child.stdout.take().expect("stdout is piped");
    std::thread::spawn(move || {
        let mut buffer = [0u8; 4096];
        while let Ok(n) = stdout.read(&mut buffer) {
            if n == 0 || tx.send(buffer[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let deadline = std::time::Instant::now() + SETTLE;
    let mut seen = String::new();
    while !seen.contains(wanted) {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok(chunk) => seen.push_str(&String::from_utf8_lossy(&chunk)),
            Err(_) => {
                let _ = child.kill();
                let output = child.wait_with_output().expect("kubectl's end");
                panic!(
                    "attach to {pod}: {wanted:?} never came: {seen:?}; kubectl said {}",
                    String::from_utf8_lossy(&output.stderr)
                );
            }
        }
    }
    drop(stdin);
    let _ = child.kill();
    let _ = child.wait();
    seen
}

/// Runs `inner` under `script` (a pseudo-terminal of 91x27), feeding `input`; whether it
/// succeeded and the terminal's text. Killed, failing the test, after [`SETTLE`].
fn on_a_terminal(inner: &str, input: &[u8]) -> (bool, String) {
    use std::io::{Read, Write};
    use std::process::Stdio;
    let mut child = Command::new("script")
        .args([
            "-qec",
            &format!("stty cols 91 rows 27; {inner}"),
            "/dev/null",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("`script` (bsdutils) must be installed");
    let mut stdin = child.stdin.take().expect("stdin is piped");
    stdin.write_all(input).expect("feeding the terminal");
    let mut stdout = child.stdout.take().expect("stdout is piped");
    let output = std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = stdout.read_to_end(&mut bytes);
        String::from_utf8_lossy(&bytes).into_owned()
    });
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("waiting for script") {
            break status;
        }
        if started.elapsed() > SETTLE {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{inner:?} did not finish within {SETTLE:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    drop(stdin);
    (status.success(), output.join().unwrap_or_default())
}

/// Runs `inner` under `script` (a pseudo-terminal of 91x27), feeding `input`, until its
/// text shows a line `wanted` (failing after [`SETTLE`]); then ends it, leaving what it runs
/// in the container running. The text seen.
fn on_a_terminal_until(inner: &str, input: &[u8], wanted: &str) -> String {
    use std::io::{Read, Write};
    use std::process::Stdio;
    let mut child = Command::new("script")
        .args([
            "-qec",
            &format!("stty cols 91 rows 27; {inner}"),
            "/dev/null",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("`script` (bsdutils) must be installed");
    let mut stdin = child.stdin.take().expect("stdin is piped");
    stdin.write_all(input).expect("feeding the terminal");
    let (tx, rx) = std::sync::mpsc::channel::<Vec<u8>>();
    let mut stdout = child.stdout.take().expect("stdout is piped");
    std::thread::spawn(move || {
        let mut buffer = [0u8; 4096];
        while let Ok(n) = stdout.read(&mut buffer) {
            if n == 0 || tx.send(buffer[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let deadline = std::time::Instant::now() + SETTLE;
    let mut seen = String::new();
    while !seen.lines().any(|line| line.trim() == wanted) {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok(chunk) => seen.push_str(&String::from_utf8_lossy(&chunk)),
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{inner:?}: {wanted:?} never came: {seen:?}");
            }
        }
    }
    // The terminal's line after `wanted` may still be on its way.
    while let Ok(chunk) = rx.recv_timeout(Duration::from_millis(500)) {
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    drop(stdin);
    let _ = child.kill();
    let _ = child.wait();
    seen
}

/// The `/dev/pts/N` a terminal session's text shows, if any.
fn pts_in(text: &str) -> Option<String> {
    let start = text.find("/dev/pts/")?;
    let digits: String = text[start + "/dev/pts/".len()..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    (!digits.is_empty()).then(|| format!("/dev/pts/{digits}"))
}

/// Under the OCI runtime, containers with `stdin` and `tty` get them: `kubectl attach -i`
/// writes to a container's stdin (and `stdinOnce` ends it with the first session); `kubectl
/// run -i --rm` runs a script piped to a shell and passes its exit code on; a terminal
/// session shows the shell's prompt, `tty` answers a `/dev/pts/N`, the client's size reaches
/// the terminal, and the terminal's output is the container's log. After a crash of the
/// agent, the adopted containers' stdin and terminal are attached to again.
fn stdin_and_terminals_reach_containers_and_survive_a_crash(runtime_flags: &[&str]) {
    assert_root();
    let network = TestNetwork::next("t");
    let mut skiff = network.start_skiff(
        &network.flags(),
        runtime_flags,
        &[support::images::shell()],
        SETTLE,
    );
    let kubectl = skiff.kubectl();
    skiff.write_file("input.yaml", &input_pods());
    kubectl.ok(&["apply", "-f", "input.yaml"]);
    let mut uids = Vec::new();
    for pod in ["echo", "keeper", "term"] {
        wait_for_every(&format!("{pod} to run"), SETTLE, POLL, || {
            let phase = kubectl.ok(&["get", "pod", pod, "-o", "jsonpath={.status.phase}"]);
            (phase == "Running").then_some(())
        });
        uids.push(kubectl.ok(&["get", "pod", pod, "-o", "jsonpath={.metadata.uid}"]));
    }

    // attach -i: the line reaches cat, whose echo is in its log; stdinOnce then ends it.
    let echoed = kubectl_fed(&skiff, &["attach", "-i", "echo"], b"through attach\n");
    assert_eq!(echoed.code, Some(0), "attach -i: {}", echoed.stderr);
    assert!(
        echoed.stdout.contains("through attach\n"),
        "the attached output: {:?}",
        echoed.stdout
    );
    wait_for_every("cat to end with its stdin", SETTLE, POLL, || {
        let phase = kubectl.ok(&["get", "pod", "echo", "-o", "jsonpath={.status.phase}"]);
        (phase == "Succeeded").then_some(())
    });
    assert_eq!(kubectl.ok(&["logs", "echo"]), "through attach\n");

    // Without stdinOnce, stdin stays open from one session to the next.
    attach_until(&skiff, "keeper", "first\n", "got first");
    attach_until(&skiff, "keeper", "second\n", "got second");

    // run -i --rm: a script piped to the shell; its output and its exit code come back.
    let ran = kubectl_fed(
        &skiff,
        &[
            "run",
            "-i",
            "--rm",
            "piped",
            "--restart=Never",
            &format!("--image={}", support::images::SHELL),
            "--",
            "sh",
        ],
        b"echo from the piped script; exit 7\n",
    );
    assert!(
        ran.stdout.contains("from the piped script"),
        "run -i: stdout {:?}, stderr {:?}",
        ran.stdout,
        ran.stderr
    );
    assert_eq!(ran.code, Some(7), "run -i: {}", ran.stderr);
    wait_for_every("the piped pod to be deleted", SETTLE, POLL, || {
        kubectl
            .run(&["get", "pod", "piped"])
            .stderr
            .contains("not found")
            .then_some(())
    });

    // run -it --rm: a shell on a terminal prompts, answers `tty` and has the client's size.
    let (ok, text) = on_a_terminal(
        &format!(
            "{} --kubeconfig {} run -it --rm shell --restart=Never --image={} -- sh",
            support::path_kubectl().display(),
            skiff.kubeconfig().display(),
            support::images::SHELL,
        ),
        b"tty; stty size\nexit\n",
    );
    assert!(ok, "run -it: {text:?}");
    assert!(text.contains("# "), "no prompt: {text:?}");
    assert!(pts_in(&text).is_some(), "tty: {text:?}");
    assert!(text.contains("27 91"), "the terminal's size: {text:?}");

    // The terminal pod before the crash: its prompt and its answer are its log.
    let attach_term = format!(
        "{} --kubeconfig {} attach -it term",
        support::path_kubectl().display(),
        skiff.kubeconfig().display(),
    );
    let text = on_a_terminal_until(
        &attach_term,
        b"tty; echo before-the-crash\n",
        "before-the-crash",
    );
    let pts = pts_in(&text).unwrap_or_else(|| panic!("tty: {text:?}"));
    wait_for_every("the terminal's output in the log", SETTLE, POLL, || {
        let log = kubectl.ok(&["logs", "term"]);
        (log.contains("before-the-crash") && log.contains(&pts)).then_some(())
    });

    // A crash of the agent: the containers run on with their stdin and terminal held by the
    // node monitor, and the restarted agent attaches to them again.
    let keeper_pid = container_pid(&skiff, &uids[1]).expect("keeper's PID 1");
    let term_pid = container_pid(&skiff, &uids[2]).expect("term's PID 1");
    skiff.kill();
    assert!(runs_for_pod(keeper_pid, &uids[1]), "keeper went with Skiff");
    assert!(runs_for_pod(term_pid, &uids[2]), "term went with Skiff");
    skiff.restart();
    let kubectl = skiff.kubectl();
    for pod in ["keeper", "term"] {
        wait_for_every(&format!("{pod} to be adopted"), SETTLE, POLL, || {
            let pod = json_of(&kubectl.ok(&["get", "pod", pod, "-o", "json"]));
            container_status(&pod, "main")
                .filter(|s| {
                    s.pointer("/state/running").is_some()
                        && s.pointer("/restartCount").and_then(|c| c.as_i64()) == Some(0)
                })
                .map(drop)
        });
    }
    attach_until(&skiff, "keeper", "third\n", "got third");
    assert!(
        kubectl.ok(&["logs", "keeper"]).contains("got third"),
        "the adopted container's log"
    );
    assert_eq!(
        container_pid(&skiff, &uids[1]),
        Some(keeper_pid),
        "keeper was not adopted"
    );
    let (ok, text) = on_a_terminal(
        &attach_term,
        b"echo after-the-crash; tty; stty size\nexit\n",
    );
    assert!(ok, "attach -it after the crash: {text:?}");
    assert!(
        text.lines().any(|line| line.trim() == "after-the-crash"),
        "{text:?}"
    );
    assert_eq!(pts_in(&text).as_deref(), Some(pts.as_str()), "{text:?}");
    assert!(text.contains("27 91"), "the terminal's size: {text:?}");
    wait_for_every("the terminal's shell to end", SETTLE, POLL, || {
        let phase = kubectl.ok(&["get", "pod", "term", "-o", "jsonpath={.status.phase}"]);
        (phase == "Succeeded").then_some(())
    });
    assert!(
        kubectl.ok(&["logs", "term"]).contains("after-the-crash"),
        "the adopted terminal's log"
    );

    let status = skiff.stop();
    assert!(
        status.success(),
        "skiff exited with {status}:\n{}",
        skiff.log()
    );
    let left = leftovers(&network, &uids);
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[test]
fn stdin_and_terminals_reach_containers_of_the_embedded_oci_runtime_and_survive_a_crash() {
    stdin_and_terminals_reach_containers_and_survive_a_crash(&[]);
}

#[test]
fn stdin_and_terminals_reach_containers_of_crun_and_survive_a_crash() {
    let crun = ["/usr/bin/crun", "/usr/local/bin/crun", "/usr/sbin/crun"]
        .into_iter()
        .find(|path| Path::new(path).is_file())
        .expect("crun is not installed (Debian package crun)");
    stdin_and_terminals_reach_containers_and_survive_a_crash(&["--oci-runtime", crun]);
}

/// The node's `containerRuntimeVersion` and the fallback annotation, once the node reports.
fn node_runtime(skiff: &Skiff) -> (String, String) {
    let kubectl = skiff.kubectl();
    wait_for_every("the node to report its runtime", SETTLE, POLL, || {
        let out = kubectl.run(&[
            "get",
            "nodes",
            "-o",
            "jsonpath={.items[0].status.nodeInfo.containerRuntimeVersion}|{.items[0].metadata.annotations.skiff\\.dev/container-runtime-fallback}",
        ]);
        let (version, fallback) = out.stdout.split_once('|')?;
        (out.success() && !version.is_empty()).then(|| (version.to_string(), fallback.to_string()))
    })
}

#[test]
fn as_root_without_a_runtime_flag_pods_run_as_oci_containers() {
    assert_root();
    let network = TestNetwork::next("d");
    // The network's flags without `--container-runtime oci`.
    let flags: Vec<String> = network.flags().into_iter().skip(2).collect();
    assert!(!flags.iter().any(|f| f.contains("runtime")), "{flags:?}");
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let mut skiff = Skiff::start_choosing_runtime(&flags, None);

    // Only the oci runtime builds the pod network, guard routes first.
    network.wait_for_guard_routes(SETTLE);
    let (version, fallback) = node_runtime(&skiff);
    assert!(version.starts_with("skiff-oci://"), "{version}");
    assert_eq!(fallback, "", "a node on oci says nothing of a fallback");
    assert!(
        !skiff.log().contains("not oci"),
        "the server said it fell back:\n{}",
        skiff.log()
    );

    let status = skiff.stop();
    assert!(
        status.success(),
        "skiff exited with {status}:\n{}",
        skiff.log()
    );
    let left = leftovers(&network, &[]);
    assert!(left.is_empty(), "left behind after SIGTERM: {left:?}");
}

#[test]
fn without_root_pods_run_as_processes_and_the_node_says_why() {
    // Root is needed only to start the server as another user (nobody).
    assert_root();
    let mut skiff = Skiff::start_choosing_runtime(&[], Some(65534));
    let (version, fallback) = node_runtime(&skiff);
    assert!(version.starts_with("skiff://"), "{version}");
    assert!(
        fallback.starts_with("skiff does not run as root: pods run as plain processes"),
        "{fallback:?}"
    );
    let described = skiff.kubectl().ok(&["describe", "node"]);
    assert!(
        described.contains("skiff.dev/container-runtime-fallback: skiff does not run as root"),
        "{described}"
    );
    assert!(
        skiff
            .log()
            .contains("container runtime process, not oci: skiff does not run as root"),
        "the server did not say why at start:\n{}",
        skiff.log()
    );
    let status = skiff.stop();
    assert!(
        status.success(),
        "skiff exited with {status}:\n{}",
        skiff.log()
    );
}
