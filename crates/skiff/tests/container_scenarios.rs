//! The seed scenarios on the `oci` container runtime: `skiff up --container-runtime oci` with
//! its real node, driven by the real `kubectl`. A crash loop backs off, the liveness example's
//! exec probe runs inside the container, graceful termination runs preStop inside it before
//! SIGTERM and SIGKILL, a rollout behind a NodePort loses no request, a CloneSet updates its
//! containers in place in the same sandbox, and a CPU-burning container scales its Deployment
//! through the autoscaler from what its cgroup measured. (Isolation, OOM, throttling, crash
//! adoption and streams are in `containers.rs`.)
//!
//! Run with `cargo test -p skiff --test container_scenarios` as root (network namespaces,
//! veths, routes and `nft` need it; CI runs as root), with `kubectl`, `ip` and `nft` on the
//! PATH.
//!
//! Every range comes from 198.18.0.0/15 (reserved for benchmarking), one share per server that
//! nothing on the host uses yet, and the `unreachable` guard routes are checked before any
//! packet is sent. Each test stops its server and checks that nothing it built is left: no
//! bridge, veth, route, nftables table, cgroup, namespace pin, mount, container or process.

mod support;

use std::collections::BTreeSet;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::grace::{event_watch_args, read_times, Termination};
use support::http::{ok_body, parse_answer};
use support::json::{items, str_at};
use support::manifests::{in_place_web_clone_set, WEB_NODE_PORT_SERVICE};
use support::oci::{
    assert_root, container_cgroups, leftovers, processes_of_pods, with_test_images, TestNetwork,
    NETNS_DIR,
};
use support::traffic::{answering_node_port, assert_no_failures, Client};
use support::{cells, wait_for, wait_for_every, Kubectl, Skiff};

/// How long pods may take to run and answer.
const SETTLE: Duration = Duration::from_secs(90);
/// How often kubectl-based conditions are polled.
const POLL: Duration = Duration::from_millis(250);

/// A server on the `oci` runtime in a network of its own, with the pods it has seen so the
/// end can check that none of them left anything behind.
struct Cluster {
    skiff: Skiff,
    network: TestNetwork,
    pod_uids: BTreeSet<String>,
}

impl Cluster {
    /// Starts a server with `images` imported and `extra` flags, and waits for the guard
    /// routes before anything else.
    fn start(images: &[skiff_testkit::images::TestImage], extra: &[&str]) -> Cluster {
        assert_root();
        let network = TestNetwork::next("e");
        let skiff = network.start_skiff(&network.flags(), extra, images, SETTLE);
        Cluster {
            skiff,
            network,
            pod_uids: BTreeSet::new(),
        }
    }

    fn kubectl(&self) -> Kubectl {
        self.skiff.kubectl()
    }

    /// Writes `yaml` (test image names put in) to `file` and applies it.
    fn apply(&self, file: &str, yaml: &str) {
        self.skiff.write_file(file, &with_test_images(yaml));
        self.kubectl().ok(&["apply", "-f", file]);
    }

    /// The pods now, remembering their UIDs for the final check.
    fn pods(&mut self, selector: &str) -> Vec<Value> {
        let list = self.kubectl().json(&["get", "pods", "-l", selector]);
        let pods = items(&list);
        self.pod_uids
            .extend(pods.iter().map(|p| str_at(p, "/metadata/uid")));
        pods
    }

    /// One pod now, remembering its UID.
    fn pod(&mut self, name: &str) -> Value {
        let pod = self.kubectl().json(&["get", "pod", name]);
        self.pod_uids.insert(str_at(&pod, "/metadata/uid"));
        pod
    }

    /// Stops the server with SIGTERM and fails on anything left of its pods.
    fn stop_and_check_nothing_is_left(mut self) {
        if let Ok(list) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.kubectl().json(&["get", "pods", "-A"])
        })) {
            self.pod_uids
                .extend(items(&list).iter().map(|p| str_at(p, "/metadata/uid")));
        }
        let status = self.skiff.stop();
        assert!(
            status.success(),
            "skiff exited with {status}:\n{}",
            self.skiff.log()
        );
        let uids: Vec<String> = self.pod_uids.iter().cloned().collect();
        let mut left = leftovers(&self.network, &uids);
        left.extend(processes_of_pods(&uids));
        let state = self.skiff.data_dir().join("oci").join("state");
        let containers = std::fs::read_dir(&state)
            .map(|entries| entries.count())
            .unwrap_or(0);
        if containers > 0 {
            left.push(format!("{containers} containers in the runtime's state"));
        }
        assert!(left.is_empty(), "left behind after SIGTERM: {left:?}");
    }
}

/// The status of container `name` in pod JSON `pod`.
fn container_status(pod: &Value, name: &str) -> Option<Value> {
    pod.pointer("/status/containerStatuses")?
        .as_array()?
        .iter()
        .find(|s| str_at(s, "/name") == name)
        .cloned()
}

/// Seconds since the epoch of an RFC 3339 timestamp as the API writes them.
fn epoch_seconds(text: &str) -> i64 {
    text.parse::<jiff::Timestamp>()
        .unwrap_or_else(|e| panic!("{text:?} is not an RFC 3339 timestamp: {e}"))
        .as_second()
}

#[test]
fn a_crash_looping_container_backs_off_and_kubectl_get_pods_shows_it() {
    let mut cluster = Cluster::start(&[support::images::shell()], &[]);
    cluster.apply(
        "crash.yaml",
        "apiVersion: v1
kind: Pod
metadata:
  name: crash
spec:
  terminationGracePeriodSeconds: 2
  containers:
  - name: crash
    image: SHELL_IMAGE
    command: [sh, -c, \"sleep 3; exit 1\"]
",
    );
    let kubectl = cluster.kubectl();

    // `kubectl get pods` shows the back-off with the restarts so far.
    let row = wait_for_every("CrashLoopBackOff in kubectl get pods", SETTLE, POLL, || {
        let table = kubectl.ok(&["get", "pod", "crash", "--no-headers"]);
        let row: Vec<String> = cells(&table).into_iter().map(String::from).collect();
        (row.get(2).map(String::as_str) == Some("CrashLoopBackOff")).then_some(row)
    });
    let shown_restarts: i64 = row[3]
        .parse()
        .unwrap_or_else(|e| panic!("RESTARTS {:?}: {e}: {row:?}", row[3]));
    assert!(shown_restarts >= 1, "{row:?}");

    // The container's status says why, in kubelet's words, and what the last run ended with.
    let pod = cluster.pod("crash");
    let uid = str_at(&pod, "/metadata/uid");
    let waiting = wait_for_every("the waiting state", SETTLE, POLL, || {
        let pod = cluster.pod("crash");
        let status = container_status(&pod, "crash")?;
        (str_at(&status, "/state/waiting/reason") == "CrashLoopBackOff").then_some(status)
    });
    let message = str_at(&waiting, "/state/waiting/message");
    let back_off: i64 = message
        .strip_prefix("back-off ")
        .and_then(|rest| rest.split('s').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("kubelet's back-off message: {message:?}"));
    assert!(
        message.ends_with(&format!(
            "restarting failed container=crash pod=crash_default({uid})"
        )),
        "kubelet's back-off message: {message:?}"
    );
    assert!(back_off >= 10, "the back-off is at least 10 s: {message:?}");
    assert_eq!(
        waiting.pointer("/lastState/terminated/exitCode"),
        Some(&serde_json::json!(1)),
        "{waiting}"
    );
    assert_eq!(
        str_at(&waiting, "/lastState/terminated/reason"),
        "Error",
        "{waiting}"
    );

    // The next run starts only once the back-off has passed.
    let before = waiting["restartCount"].as_i64().unwrap_or_default();
    let restarted = wait_for_every("the restart after the back-off", SETTLE, POLL, || {
        let pod = cluster.pod("crash");
        container_status(&pod, "crash").filter(|s| {
            s["restartCount"].as_i64() > Some(before) && s.pointer("/state/running").is_some()
        })
    });
    let finished = epoch_seconds(&str_at(&restarted, "/lastState/terminated/finishedAt"));
    let started = epoch_seconds(&str_at(&restarted, "/state/running/startedAt"));
    // Timestamps are whole seconds.
    assert!(
        started - finished >= back_off - 1,
        "restarted {} s after the crash, the back-off was {back_off} s: {restarted}",
        started - finished
    );
    cluster.stop_and_check_nothing_is_left();
}

#[test]
fn the_liveness_example_probes_inside_the_container_and_restarts_it() {
    let mut cluster = Cluster::start(&[support::images::shell()], &[]);
    // A file only the container's root has: a name nothing on the host uses.
    let marker = format!(
        "/tmp/healthy-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default()
    );
    assert!(!Path::new(&marker).exists(), "the host has {marker}");
    cluster.apply(
        "liveness.yaml",
        &format!(
            "apiVersion: v1
kind: Pod
metadata:
  name: liveness-exec
spec:
  terminationGracePeriodSeconds: 2
  containers:
  - name: liveness
    image: SHELL_IMAGE
    args:
    - /bin/sh
    - -c
    - touch {marker}; sleep 6; rm -f {marker}; sleep 600
    livenessProbe:
      exec:
        command: [cat, {marker}]
      initialDelaySeconds: 1
      periodSeconds: 1
"
        ),
    );
    let restarted = wait_for_every("the liveness probe to restart it", SETTLE, POLL, || {
        let pod = cluster.pod("liveness-exec");
        container_status(&pod, "liveness").filter(|s| s["restartCount"].as_i64() >= Some(1))
    });
    assert!(
        !Path::new(&marker).exists(),
        "the host has {marker}: the file was not the container's own"
    );
    // The probe passed while the file was in the container's root (a probe on the host would
    // have failed from its first run, and the kill come after about 3 s), then failed three
    // times once it was gone.
    let first_run = &restarted["lastState"]["terminated"];
    let lived = epoch_seconds(first_run["finishedAt"].as_str().unwrap_or_default())
        - epoch_seconds(first_run["startedAt"].as_str().unwrap_or_default());
    assert!(lived >= 7, "the first run lived {lived} s: {restarted:#}");
    // PID 1 of its own PID namespace, `sh` ignores SIGTERM: SIGKILL at the grace period's end.
    assert_eq!(first_run["exitCode"], 137, "{restarted:#}");

    let kubectl = cluster.kubectl();
    let events = wait_for_every(
        "Unhealthy and Killing in kubectl describe",
        SETTLE,
        POLL,
        || {
            let described = kubectl.ok(&["describe", "pod", "liveness-exec"]);
            let events = described.split_once("\nEvents:")?.1.to_string();
            // busybox's `cat`, the image's, words it so; the host's would not.
            let unhealthy = events.lines().any(|l| {
                cells(l).get(1) == Some(&"Unhealthy")
                    && l.ends_with(&format!(
                    "Liveness probe failed: cat: can't open '{marker}': No such file or directory"
                ))
            });
            let killing = events.lines().any(|l| {
                cells(l).get(1) == Some(&"Killing")
                    && l.ends_with("Container liveness failed liveness probe, will be restarted")
            });
            (unhealthy && killing).then_some(events)
        },
    );
    assert!(
        events.contains("Started container liveness"),
        "the container started again: {events}"
    );
    cluster.stop_and_check_nothing_is_left();
}

#[test]
fn graceful_termination_runs_pre_stop_inside_the_container_then_sigterm_then_sigkill() {
    let mut cluster = Cluster::start(&[support::images::shell()], &[]);
    let data = cluster.skiff.file_path("times");
    std::fs::create_dir_all(&data).expect("the times directory");
    cluster.apply(
        "stubborn.yaml",
        &format!(
            "apiVersion: v1
kind: Pod
metadata:
  name: stubborn
spec:
  terminationGracePeriodSeconds: 3
  containers:
  - name: main
    image: SHELL_IMAGE
    command:
    - /bin/sh
    - -c
    - trap 'read t _ < /proc/uptime; echo $t >> /data/term' TERM; while true; do read t _ < /proc/uptime; echo $t >> /data/alive; sleep 0.2; done
    lifecycle:
      preStop:
        exec:
          command: [/bin/sh, -c, 'read t _ < /proc/uptime; echo $t $(hostname) > /data/prestop; sleep 1']
    volumeMounts:
    - name: data
      mountPath: /data
  volumes:
  - name: data
    hostPath:
      path: {data}
      type: Directory
",
            data = data.display()
        ),
    );
    let kubectl = cluster.kubectl();
    kubectl.ok(&[
        "wait",
        "--for=condition=Ready",
        "pod/stubborn",
        "--timeout=90s",
    ]);
    cluster.pod("stubborn");
    wait_for_every("the container to write", SETTLE, POLL, || {
        (!read_times(&data.join("alive")).is_empty()).then_some(())
    });

    let watch = kubectl.spawn_lines(&event_watch_args("stubborn"));
    let termination = Termination::after_delete(&data, watch, || {
        kubectl.ok(&["delete", "pod", "stubborn", "--wait=false"]);
    });
    let pre_stop = std::fs::read_to_string(data.join("prestop")).unwrap_or_default();
    // The hook ran inside the container: its UTS namespace, whose hostname is the pod's.
    assert_eq!(
        pre_stop.split_whitespace().nth(1),
        Some("stubborn"),
        "{}",
        termination.report()
    );
    termination.assert_pre_stop_then_sigterm_then_sigkill();
    cluster.stop_and_check_nothing_is_left();
}

#[test]
fn a_rollout_behind_a_node_port_loses_no_request() {
    let mut cluster = Cluster::start(
        &[support::images::demo("v1"), support::images::demo("v2")],
        &[],
    );
    cluster.apply(
        "web.yaml",
        &format!(
            "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 3
  strategy:
    type: RollingUpdate
    rollingUpdate:
      maxSurge: 1
      maxUnavailable: 0
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      containers:
      - name: web
        image: DEMO_IMAGE
        ports:
        - containerPort: 80
        readinessProbe:
          httpGet:
            path: /readyz
            port: 80
          periodSeconds: 1
---
{WEB_NODE_PORT_SERVICE}"
        ),
    );
    let kubectl = cluster.kubectl();
    let rollout_status = ["rollout", "status", "deployment/web", "--timeout=120s"];
    kubectl.ok(&rollout_status);
    let old_pods = cluster.pods("app=web");
    let address = answering_node_port(&kubectl, None, SETTLE);

    let client = Client::start(address);
    let answers = client.answers_since(Instant::now(), 3);
    assert!(answers.iter().all(|a| a.version == "v1"), "{answers:?}");
    kubectl.ok(&[
        "set",
        "image",
        "deployment/web",
        &format!("web={}:v2", support::images::DEMO),
    ]);
    kubectl.ok(&rollout_status);
    // The old pods left the endpoints when the rollout finished; the proxy's rules follow
    // within moments (as kube-proxy's do), after which every answer comes from v2.
    wait_for(
        "fifty answers in a row from v2 after the rollout",
        Duration::from_secs(20),
        || {
            let answers = client.answers_since(Instant::now(), 50);
            answers.iter().all(|a| a.version == "v2").then_some(())
        },
    );
    // The new pods are containers with addresses of the node's pod range.
    let pod_cidr: ipnet::Ipv4Net = cluster.network.node_pod_cidr.parse().expect("pod range");
    let new_pods = cluster.pods("app=web");
    let old_names: BTreeSet<String> = old_pods
        .iter()
        .map(|p| str_at(p, "/metadata/name"))
        .collect();
    for pod in new_pods
        .iter()
        .filter(|p| !old_names.contains(&str_at(p, "/metadata/name")))
        .filter(|p| p.pointer("/metadata/deletionTimestamp").is_none())
    {
        let ip: std::net::Ipv4Addr = str_at(pod, "/status/podIP")
            .parse()
            .unwrap_or_else(|e| panic!("pod IP: {e}: {pod}"));
        assert!(pod_cidr.contains(&ip), "{ip} is outside {pod_cidr}");
    }
    assert_no_failures("default", &client.finish());
    cluster.stop_and_check_nothing_is_left();
}

/// What identifies one CloneSet pod's sandbox and container: (uid, IP, the inode of its
/// network namespace, restart count, container ID, image ID).
type InPlaceView = (String, String, u64, i64, String, String);

/// Pod name to its [`InPlaceView`], for the CloneSet's pods.
fn clone_set_pods(cluster: &mut Cluster) -> std::collections::BTreeMap<String, InPlaceView> {
    cluster
        .pods("app=web")
        .iter()
        .map(|pod| {
            let uid = str_at(pod, "/metadata/uid");
            let pin = Path::new(NETNS_DIR).join(&uid);
            let namespace = std::fs::metadata(&pin)
                .unwrap_or_else(|e| panic!("pod {uid}'s namespace pin {}: {e}", pin.display()))
                .ino();
            let status = container_status(pod, "web").unwrap_or_default();
            (
                str_at(pod, "/metadata/name"),
                (
                    uid,
                    str_at(pod, "/status/podIP"),
                    namespace,
                    status["restartCount"].as_i64().unwrap_or_default(),
                    str_at(&status, "/containerID"),
                    str_at(&status, "/imageID"),
                ),
            )
        })
        .collect()
}

/// Waits until the CloneSet has seen its latest spec and its `replicas` pods are updated and
/// ready.
fn clone_set_updated(kubectl: &Kubectl, replicas: u32) {
    let wanted = format!("{replicas}/{replicas}/{replicas}");
    wait_for_every(
        "the CloneSet's pods to be updated and ready",
        SETTLE,
        POLL,
        || {
            let set = kubectl.json(&["get", "cloneset", "web"]);
            let counts = format!(
                "{}/{}/{}",
                set.pointer("/status/updatedReadyReplicas")?,
                set.pointer("/status/readyReplicas")?,
                set.pointer("/status/replicas")?
            );
            let current = set.pointer("/status/observedGeneration")?
                == set.pointer("/metadata/generation")?;
            (current && counts == wanted).then_some(())
        },
    );
}

#[test]
fn an_in_place_clone_set_update_recreates_the_container_in_the_same_sandbox() {
    let mut cluster = Cluster::start(
        &[support::images::demo("v1"), support::images::demo("v2")],
        &[],
    );
    cluster.apply("cloneset.yaml", &in_place_web_clone_set(2));
    let kubectl = cluster.kubectl();
    clone_set_updated(&kubectl, 2);
    let address = answering_node_port(&kubectl, None, SETTLE);
    let before = clone_set_pods(&mut cluster);
    assert_eq!(before.len(), 2, "{before:?}");

    let client = Client::start(address);
    let answers = client.answers_since(Instant::now(), 3);
    assert!(answers.iter().all(|a| a.version == "v1"), "{answers:?}");
    kubectl.ok(&[
        "patch",
        "cloneset/web",
        "--type=json",
        "-p",
        &format!(
            r#"[{{"op":"replace","path":"/spec/template/spec/containers/0/image","value":"{}:v2"}}]"#,
            support::images::DEMO
        ),
    ]);
    clone_set_updated(&kubectl, 2);
    let answers = client.answers_since(Instant::now(), 50);
    assert!(
        answers.iter().all(|a| a.version == "v2"),
        "after the in-place update every answer comes from v2: {answers:?}"
    );
    let after = clone_set_pods(&mut cluster);
    assert_eq!(
        before.keys().collect::<Vec<_>>(),
        after.keys().collect::<Vec<_>>(),
        "an in-place update keeps the pods"
    );
    let state = cluster.skiff.data_dir().join("oci").join("state");
    for (name, (uid, ip, namespace, restarts, container_id, image_id)) in &before {
        let (new_uid, new_ip, new_namespace, new_restarts, new_container_id, new_image_id) =
            &after[name];
        assert_eq!(
            (uid, ip, namespace),
            (new_uid, new_ip, new_namespace),
            "{name} keeps its UID, IP and network namespace"
        );
        assert_eq!(*new_restarts, restarts + 1, "{name} restarted once");
        assert_ne!(container_id, new_container_id, "{name} has a new container");
        assert!(
            !image_id.is_empty() && !new_image_id.is_empty() && image_id != new_image_id,
            "{name}'s imageID moves to the new image: {image_id:?} -> {new_image_id:?}"
        );
        assert!(
            state.join(format!("{uid}-web")).is_dir(),
            "the runtime does not know {name}'s container in {}",
            state.display()
        );
        // The pod itself answers from the new image at its unchanged address.
        let body = wait_for_every(&format!("{name} to answer at {ip}"), SETTLE, POLL, || {
            ok_body(ip)
        });
        let answer = parse_answer(&body).unwrap_or_else(|| panic!("{name} answered {body:?}"));
        assert_eq!(
            (answer.version.as_str(), answer.pod.as_str()),
            ("v2", name.as_str())
        );
    }
    assert_no_failures("default", &client.finish());
    cluster.stop_and_check_nothing_is_left();
}

/// The `cpuacct.usage` (v1, nanoseconds) or `cpu.stat` `usage_usec` (v2, microseconds, made
/// nanoseconds) of the first of `dirs` that has it.
fn cgroup_cpu_nanos(dirs: &[std::path::PathBuf]) -> Option<u64> {
    dirs.iter().find_map(|dir| {
        if let Ok(text) = std::fs::read_to_string(dir.join("cpuacct.usage")) {
            return text.trim().parse().ok();
        }
        let stat = std::fs::read_to_string(dir.join("cpu.stat")).ok()?;
        stat.lines()
            .find_map(|l| l.strip_prefix("usage_usec "))
            .and_then(|n| n.trim().parse::<u64>().ok())
            .and_then(|n| n.checked_mul(1000))
    })
}

#[test]
fn a_cpu_burning_container_scales_its_deployment_through_the_autoscaler_from_its_cgroup() {
    let mut cluster = Cluster::start(
        &[support::images::shell()],
        &[
            "--horizontal-pod-autoscaler-sync-period",
            "1s",
            "--metric-resolution",
            "1",
        ],
    );
    // PID 1 sleeps; the CPU is burnt by a process in a session and process group of its own,
    // which only the container's cgroup accounts for.
    cluster.apply(
        "burner.yaml",
        "apiVersion: apps/v1
kind: Deployment
metadata:
  name: burner
spec:
  replicas: 1
  selector:
    matchLabels:
      app: burner
  template:
    metadata:
      labels:
        app: burner
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: burner
        image: SHELL_IMAGE
        command: [sh, -c, \"setsid sh -c 'while :; do :; done' & exec sleep 3600\"]
        resources:
          requests:
            cpu: 100m
          limits:
            cpu: 200m
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: burner
spec:
  scaleTargetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: burner
  minReplicas: 1
  maxReplicas: 2
  metrics:
  - type: Resource
    resource:
      name: cpu
      target:
        type: Utilization
        averageUtilization: 50
",
    );
    let kubectl = cluster.kubectl();
    let first = wait_for_every("the burner to run", SETTLE, POLL, || {
        cluster
            .pods("app=burner")
            .into_iter()
            .find(|p| str_at(p, "/status/phase") == "Running")
    });
    let uid = str_at(&first, "/metadata/uid");

    // Its cgroup counts the burnt CPU.
    let cgroups = container_cgroups(&cluster.network, &uid, "burner");
    assert!(!cgroups.is_empty(), "the burner has no cgroup");
    let used_before = cgroup_cpu_nanos(&cgroups).expect("the cgroup's CPU usage");
    let measured_from = Instant::now();

    // `kubectl get hpa` shows the utilization above the target.
    let utilization = wait_for_every("TARGETS above 50%", SETTLE, POLL, || {
        let table = kubectl.ok(&["get", "hpa", "burner", "--no-headers"]);
        let row = cells(&table);
        let target = row.iter().position(|c| *c == "cpu:")?;
        let (current, wanted) = row.get(target + 1)?.split_once('/')?;
        let current: u64 = current.strip_suffix('%')?.parse().ok()?;
        (wanted == "50%" && current > 50).then_some(current)
    });
    let used = cgroup_cpu_nanos(&cgroups)
        .expect("the cgroup's CPU usage")
        .saturating_sub(used_before);
    let millicores = used / 1_000_000 * 1000 / measured_from.elapsed().as_millis().max(1) as u64;
    assert!(
        millicores >= 50,
        "the cgroup measured {millicores}m while the autoscaler saw {utilization}%"
    );

    // The Deployment scales up.
    wait_for_every("the Deployment to scale up", SETTLE, POLL, || {
        let deployment = kubectl.json(&["get", "deployment", "burner"]);
        (deployment.pointer("/spec/replicas")?.as_i64()? == 2).then_some(())
    });
    wait_for_every("a second burner to run", SETTLE, POLL, || {
        let running = cluster
            .pods("app=burner")
            .into_iter()
            .filter(|p| str_at(p, "/status/phase") == "Running")
            .count();
        (running == 2).then_some(())
    });
    let described = kubectl.ok(&["describe", "hpa", "burner"]);
    assert!(
        described.contains(
            "New size: 2; reason: cpu resource utilization (percentage of request) above target"
        ),
        "{described}"
    );
    // Stop the burning before the server stops.
    kubectl.ok(&["delete", "deployment", "burner", "--wait=true"]);
    cluster.stop_and_check_nothing_is_left();
}
