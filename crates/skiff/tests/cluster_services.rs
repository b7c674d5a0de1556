//! Services from inside the cluster under `skiff up --container-runtime oci`: a pod reaches a
//! Service by cluster IP and by name through the cluster DNS, a headless Service answers each
//! ready pod, and the `kubernetes` Service reaches the API server; all driven by the real
//! `kubectl`, the pod's side through `kubectl exec` into busybox.
//!
//! Run with `cargo test -p skiff --test cluster_services` as root (network namespaces, veths,
//! routes, a dummy interface and `nft` need it), with `kubectl`, `ip`, `nft`, `nsenter` and
//! `curl` on the PATH.
//!
//! Every range comes from 198.18.0.0/15, one share per test process, and the `unreachable`
//! guard routes are checked before any packet is sent. After the server stops, the test checks
//! that the bridge, the cluster IP interface and the routes are gone.

mod support;

use std::collections::BTreeSet;
use std::process::Command;
use std::time::Duration;

use skiff_testkit::images::TestImage;
use support::host::host;
use support::json::{items, json_of, str_at};
use support::manifests::{client_pod, web_stateful_set};
use support::oci::{assert_root, leftovers, TestNetwork};
use support::{wait_for_every, Skiff};

/// How long pods may take to run and answer.
const SETTLE: Duration = Duration::from_secs(90);
/// How long a name or address may take to answer from a pod once its Service exists.
const REACH: Duration = Duration::from_secs(30);
/// How often conditions are polled.
const POLL: Duration = Duration::from_millis(250);

/// Starts a server on the `oci` runtime in `network`, NodePorts also on the pods' gateway,
/// with `images` imported, and waits for the guard routes before anything else.
fn start(network: &TestNetwork, images: &[TestImage]) -> Skiff {
    assert_root();
    network.start_skiff(&network.flags_with_gateway_node_ip(), &[], images, SETTLE)
}

/// The IPv4 addresses on interface `name`, or `None` when it does not exist.
fn interface_addresses(name: &str) -> Option<BTreeSet<String>> {
    let output = Command::new("ip")
        .args(["-4", "-o", "addr", "show", "dev", name])
        .output()
        .expect("ip runs");
    if !output.status.success() {
        return None;
    }
    Some(
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .filter_map(|line| {
                let mut words = line.split_whitespace();
                words.find(|w| *w == "inet")?;
                words.next().map(str::to_string)
            })
            .collect(),
    )
}

fn manifests() -> String {
    let httpd = format!("{}:v1", support::images::HTTPD);
    format!(
        "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 2
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      terminationGracePeriodSeconds: 2
      containers:
      - name: httpd
        image: {httpd}
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
  - name: http
    port: 80
    targetPort: 80
---
apiVersion: v1
kind: Service
metadata:
  name: web-headless
spec:
  clusterIP: None
  selector:
    app: web
  ports:
  - port: 80
---
{client}",
        client = client_pod()
    )
}

/// The name and IP of each ready pod labelled `selector` that is not being deleted, once
/// there are `count`.
fn ready_pods(skiff: &Skiff, selector: &str, count: usize) -> Vec<(String, String)> {
    let kubectl = skiff.kubectl();
    let what = format!("{count} ready pods {selector} with IPs");
    wait_for_every(&what, SETTLE, POLL, || {
        let list = json_of(&kubectl.ok(&["get", "pods", "-l", selector, "-o", "json"]));
        let ready: Vec<(String, String)> = items(&list)
            .iter()
            .filter(|pod| pod.pointer("/metadata/deletionTimestamp").is_none())
            .filter(|pod| {
                pod.pointer("/status/conditions")
                    .and_then(|c| c.as_array())
                    .is_some_and(|c| {
                        c.iter().any(|c| {
                            str_at(c, "/type") == "Ready" && str_at(c, "/status") == "True"
                        })
                    })
            })
            .map(|pod| (str_at(pod, "/metadata/name"), str_at(pod, "/status/podIP")))
            .filter(|(_, ip)| !ip.is_empty())
            .collect();
        (ready.len() == count).then_some(ready)
    })
}

/// The IPs of the two ready `web` pods, once both are.
fn ready_web_pod_ips(skiff: &Skiff) -> BTreeSet<String> {
    ready_pods(skiff, "app=web", 2)
        .into_iter()
        .map(|(_, ip)| ip)
        .collect()
}

/// Stops the server with SIGTERM, which must succeed and take the cluster IP interface away.
fn stop_and_check_the_cluster_ip_interface_is_gone(skiff: &mut Skiff, network: &TestNetwork) {
    let status = skiff.stop();
    assert!(
        status.success(),
        "skiff exited with {status}:\n{}",
        skiff.log()
    );
    assert!(
        interface_addresses(&network.service_interface()).is_none(),
        "the cluster IP interface is left after SIGTERM"
    );
}

/// Waits until the client pod runs.
fn wait_for_client_pod(skiff: &Skiff) {
    let kubectl = skiff.kubectl();
    wait_for_every("the client pod to run", SETTLE, POLL, || {
        let pod = json_of(&kubectl.ok(&["get", "pod", "client", "-o", "json"]));
        (str_at(&pod, "/status/phase") == "Running").then_some(())
    });
}

/// Runs `command` in the client pod; (exit success, stdout, stderr).
fn in_client(skiff: &Skiff, command: &[&str]) -> (bool, String, String) {
    let mut args = vec!["exec", "client", "--"];
    args.extend_from_slice(command);
    let outcome = skiff.kubectl().run(&args);
    (outcome.success(), outcome.stdout, outcome.stderr)
}

/// Fetches `url` from pod `from` with busybox's `wget` until `accept` takes the body it got,
/// failing with what it saw last once [`REACH`] passes. Each try is bounded by busybox's
/// `timeout`: the static busybox 1.35 of the test images crashes on `wget -T`.
fn fetch_from<T>(skiff: &Skiff, from: &str, url: &str, accept: impl Fn(&str) -> Option<T>) -> T {
    let kubectl = skiff.kubectl();
    let mut last = String::new();
    let accepted = support::poll(REACH, || {
        let outcome = kubectl.run(&[
            "exec", from, "--", "timeout", "10", "wget", "-q", "-O", "-", url,
        ]);
        let ok = outcome.success();
        last = format!(
            "ok={ok} stdout={:?} stderr={:?}",
            outcome.stdout, outcome.stderr
        );
        if !ok {
            return None;
        }
        accept(outcome.stdout.trim())
    });
    accepted.unwrap_or_else(|| {
        panic!(
            "pod {from} got no awaited answer from {url}; last try: {last}\n{}",
            skiff.log()
        )
    })
}

/// Fetches `url` from the client pod until it answers with `version=v1`.
fn fetch_from_client(skiff: &Skiff, url: &str) {
    fetch_from(skiff, "client", url, |body| {
        (body == "version=v1").then_some(())
    })
}

#[test]
fn pods_reach_services_by_cluster_ip_and_by_name_through_the_cluster_dns() {
    let network = TestNetwork::next("c");
    let mut skiff = start(
        &network,
        &[support::images::shell(), support::images::httpd("v1")],
    );
    let kubectl = skiff.kubectl();

    // The API server's Service at .1 and the DNS Service at .10, as k3s places them.
    let api_ip = network.service_ip(1).to_string();
    let dns_ip = network.service_ip(10).to_string();
    let kubernetes = json_of(&kubectl.ok(&["get", "service", "kubernetes", "-o", "json"]));
    assert_eq!(str_at(&kubernetes, "/spec/clusterIP"), api_ip);
    let dns = json_of(&kubectl.ok(&[
        "get",
        "service",
        "kube-dns",
        "-n",
        "kube-system",
        "-o",
        "json",
    ]));
    assert_eq!(str_at(&dns, "/spec/clusterIP"), dns_ip);
    assert_eq!(str_at(&dns, "/metadata/labels/k8s-app"), "kube-dns");
    let ports: Vec<String> = dns["spec"]["ports"]
        .as_array()
        .expect("ports")
        .iter()
        .map(|p| {
            format!(
                "{} {}/{}",
                str_at(p, "/name"),
                p["port"],
                str_at(p, "/protocol")
            )
        })
        .collect();
    assert_eq!(ports, ["dns 53/UDP", "dns-tcp 53/TCP", "metrics 9153/TCP"]);

    skiff.write_file("app.yaml", &manifests());
    kubectl.ok(&["apply", "-f", "app.yaml"]);
    let pod_ips = ready_web_pod_ips(&skiff);
    wait_for_client_pod(&skiff);
    let web = json_of(&kubectl.ok(&["get", "service", "web", "-o", "json"]));
    let web_ip = str_at(&web, "/spec/clusterIP");
    let service_range: ipnet::Ipv4Net = network.service_cidr.parse().unwrap();
    assert!(
        service_range.contains(&web_ip.parse::<std::net::Ipv4Addr>().unwrap()),
        "web's cluster IP {web_ip} is not from {service_range}"
    );

    // Cluster IPs are local addresses of the host, on the interface named after the bridge.
    let on_interface = wait_for_every("web's cluster IP on the host", REACH, POLL, || {
        interface_addresses(&network.service_interface())
            .filter(|a| a.contains(&format!("{web_ip}/32")))
    });
    for ip in [&api_ip, &dns_ip] {
        assert!(
            on_interface.contains(&format!("{ip}/32")),
            "{ip} missing from {on_interface:?}"
        );
    }

    // The pod's resolver is the cluster DNS, searching its namespace first.
    let (ok, resolv, stderr) = in_client(&skiff, &["cat", "/etc/resolv.conf"]);
    assert!(ok, "cannot read the pod's resolv.conf: {stderr}");
    let lines: Vec<&str> = resolv.lines().collect();
    let nameservers: Vec<&str> = lines
        .iter()
        .filter(|l| l.starts_with("nameserver "))
        .copied()
        .collect();
    assert_eq!(
        nameservers,
        [format!("nameserver {dns_ip}")],
        "resolv.conf:\n{resolv}"
    );
    let search = lines
        .iter()
        .find(|l| l.starts_with("search "))
        .unwrap_or_else(|| panic!("no search line:\n{resolv}"));
    assert!(
        search.starts_with("search default.svc.cluster.local svc.cluster.local cluster.local"),
        "resolv.conf:\n{resolv}"
    );
    assert!(lines.contains(&"options ndots:5"), "resolv.conf:\n{resolv}");

    // The Service by its cluster IP, then by short, namespaced and full name.
    fetch_from_client(&skiff, &format!("http://{web_ip}/"));
    // The full name is written absolute: with ndots:5 the resolver would otherwise try it
    // under the host's own search domains too, which the cluster DNS forwards upstream.
    for name in ["web", "web.default", "web.default.svc.cluster.local."] {
        fetch_from_client(&skiff, &format!("http://{name}/"));
    }

    // The NodePort on a `--node-ip` address, from the pod.
    let node_port = web["spec"]["ports"][0]["nodePort"]
        .as_u64()
        .unwrap_or_else(|| panic!("web has no node port: {web}"));
    fetch_from_client(
        &skiff,
        &format!("http://{}:{node_port}/", network.gateway()),
    );

    // A named port has an SRV record pointing at the Service.
    let srv_name = "_http._tcp.web.default.svc.cluster.local";
    let (ok, stdout, stderr) = in_client(&skiff, &["nslookup", "-type=SRV", srv_name, &dns_ip]);
    assert!(
        ok && stdout.contains("80 web.default.svc.cluster.local"),
        "SRV {srv_name}:\n{stdout}\n{stderr}"
    );

    // A missing name is NXDOMAIN.
    let (ok, stdout, stderr) = in_client(
        &skiff,
        &[
            "nslookup",
            "nothing-here.default.svc.cluster.local",
            &dns_ip,
        ],
    );
    assert!(!ok, "a missing name resolved:\n{stdout}");
    assert!(
        format!("{stdout}{stderr}").contains("NXDOMAIN"),
        "a missing name should be NXDOMAIN:\n{stdout}\n{stderr}"
    );

    // The headless Service answers every ready pod.
    let mut last = String::new();
    let listed = support::poll(REACH, || {
        let (ok, stdout, _) = in_client(
            &skiff,
            &[
                "nslookup",
                "web-headless.default.svc.cluster.local",
                &dns_ip,
            ],
        );
        last = stdout.clone();
        (ok && pod_ips
            .iter()
            .all(|ip| stdout.contains(&format!("Address: {ip}"))))
        .then_some(())
    });
    assert!(
        listed.is_some(),
        "the headless Service should list {pod_ips:?}:\n{last}"
    );

    // Its name resolves to the first address (busybox's nslookup applies no search path, and
    // tests only ask cluster names, which are never forwarded).
    let (ok, stdout, stderr) = in_client(
        &skiff,
        &["nslookup", "kubernetes.default.svc.cluster.local", &dns_ip],
    );
    assert!(
        ok && stdout.contains(&format!("Address: {api_ip}")),
        "kubernetes.default.svc.cluster.local should resolve to {api_ip}:\n{stdout}\n{stderr}"
    );

    // The `kubernetes` Service reaches the API server. From the pod, busybox's wget meets a TLS
    // server there (its TLS 1.2 offers nothing the API server accepts, which says so with an
    // alert: an answer only a TLS server gives).
    let url = format!("https://{api_ip}/version");
    let mut last = String::new();
    let answered = support::poll(REACH, || {
        let (ok, stdout, stderr) = in_client(
            &skiff,
            &[
                "timeout",
                "10",
                "wget",
                "-q",
                "--no-check-certificate",
                "-O",
                "-",
                &url,
            ],
        );
        last = format!("ok={ok} stdout={stdout:?} stderr={stderr:?}");
        ((ok && stdout.contains("\"gitVersion\"")) || stderr.contains("TLS error from peer"))
            .then_some(())
    });
    assert!(
        answered.is_some(),
        "no TLS server answered at {api_ip}:443 from the pod; last try: {last}"
    );
    // From the pod's network namespace, a full HTTPS GET verified with the cluster CA, by the
    // Service's DNS name as the serving certificate holds it.
    let client = json_of(&kubectl.ok(&["get", "pod", "client", "-o", "json"]));
    let pin = format!(
        "--net=/run/skiff/netns/{}",
        str_at(&client, "/metadata/uid")
    );
    let ca = skiff.data_dir().join("ca.crt");
    let ca = ca.to_string_lossy();
    let resolve = format!("kubernetes.default.svc:443:{api_ip}");
    let version = host(
        "nsenter",
        &[
            &pin,
            "--",
            "curl",
            "-sS",
            "--max-time",
            "10",
            "--cacert",
            &ca,
            "--resolve",
            &resolve,
            "https://kubernetes.default.svc/version",
        ],
    );
    assert!(
        version.contains("\"gitVersion\""),
        "the API server's /version through the kubernetes Service: {version}"
    );

    // A Service that goes takes its cluster IP off the host.
    kubectl.ok(&["delete", "service", "web"]);
    wait_for_every("web's cluster IP to leave the host", REACH, POLL, || {
        interface_addresses(&network.service_interface())
            .filter(|a| !a.contains(&format!("{web_ip}/32")))
    });

    let status = skiff.stop();
    assert!(
        status.success(),
        "skiff exited with {status}:\n{}",
        skiff.log()
    );
    let mut left = leftovers(&network, &[]);
    if interface_addresses(&network.service_interface()).is_some() {
        left.push(format!("interface {}", network.service_interface()));
    }
    for ip in [&api_ip, &dns_ip, &web_ip] {
        if host("ip", &["-4", "-o", "addr", "show"]).contains(&format!(" {ip}/")) {
            left.push(format!("address {ip}"));
        }
    }
    assert!(left.is_empty(), "left behind after SIGTERM: {left:?}");
}

/// How many requests the client pod sends at least while the Deployment behind the Service
/// rolls out, restarts, scales down and is undone.
const LOAD_REQUESTS: u32 = 10_000;

#[test]
fn a_pod_calling_a_service_by_name_loses_no_request_while_its_deployment_changes() {
    let network = TestNetwork::next("c");
    let mut skiff = start(
        &network,
        &[
            support::images::shell(),
            support::images::httpd("v1"),
            support::images::httpd("v2"),
        ],
    );
    let kubectl = skiff.kubectl();
    skiff.write_file("app.yaml", &manifests());
    kubectl.ok(&["apply", "-f", "app.yaml"]);
    ready_web_pod_ips(&skiff);
    wait_for_client_pod(&skiff);
    fetch_from_client(&skiff, "http://web/");

    // Requests one after another by name until told to stop and at least LOAD_REQUESTS were
    // sent, each bounded by busybox's `timeout` (a request that hangs fails); every failure is
    // printed, then the totals.
    let script = format!(
        "i=0; f=0; v2=0; \
         while [ ! -e /tmp/stop ] || [ $i -lt {LOAD_REQUESTS} ]; do \
           if r=$(timeout 10 wget -q -O - http://web/); then \
             case $r in *v2*) v2=$((v2+1));; esac; \
           else f=$((f+1)); echo \"failed request $i\"; fi; \
           i=$((i+1)); \
           [ $((i % 500)) -eq 0 ] && echo \"progress $i\"; \
         done; \
         echo \"done requests=$i failed=$f v2=$v2\""
    );
    let mut load = kubectl.spawn_lines(&["exec", "client", "--", "sh", "-c", &script]);
    load.wait_for_line("the first requests", |l| l.starts_with("progress"));

    let v2 = format!("httpd={}:v2", support::images::HTTPD);
    let rollout_status = ["rollout", "status", "deployment/web", "--timeout=120s"];
    kubectl.ok(&["set", "image", "deployment/web", &v2]);
    kubectl.ok(&rollout_status);
    kubectl.ok(&["rollout", "restart", "deployment/web"]);
    kubectl.ok(&rollout_status);
    kubectl.ok(&["scale", "deployment/web", "--replicas=1"]);
    kubectl.ok(&rollout_status);
    kubectl.ok(&["rollout", "undo", "deployment/web"]);
    kubectl.ok(&rollout_status);
    kubectl.ok(&["exec", "client", "--", "touch", "/tmp/stop"]);

    let started = std::time::Instant::now();
    let done = loop {
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "the client's requests did not finish; printed: {:?}",
            load.seen()
        );
        match load.next_line(Duration::from_secs(30)) {
            Some(line) if line.starts_with("done") => break line,
            Some(_) => {}
            None => panic!(
                "the client stopped printing before its totals; printed: {:?}",
                load.seen()
            ),
        }
    };
    println!("client totals: {done}");
    let field = |name: &str| -> u32 {
        done.split_whitespace()
            .find_map(|w| w.strip_prefix(&format!("{name}=")))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in {done:?}"))
    };
    let failures: Vec<&String> = load
        .seen()
        .iter()
        .filter(|l| l.starts_with("failed"))
        .collect();
    assert_eq!(field("failed"), 0, "{done}; {failures:?}");
    assert!(field("requests") >= LOAD_REQUESTS, "{done}");
    assert!(
        field("v2") > 0,
        "no request reached the new version during the rollout: {done}"
    );
    drop(load);

    stop_and_check_the_cluster_ip_interface_is_gone(&mut skiff, &network);
}

/// How long a `ClientIP` affinity lasts in the affinity test: short, so the test can outwait it.
const AFFINITY_TIMEOUT_SECONDS: u64 = 5;
/// How many requests one batch from the client pod sends.
const AFFINITY_REQUESTS: usize = 50;
/// How many times the affinity test outwaits the timeout before the choice must have moved.
const AFFINITY_EXPIRIES: usize = 6;

/// Three busybox `httpd` pods answering their own host name (the pod's name), a Service with
/// `ClientIP` affinity and a short timeout, one without, and the client pod.
fn affinity_manifests() -> String {
    format!(
        "apiVersion: apps/v1
kind: Deployment
metadata:
  name: echo
spec:
  replicas: 3
  selector:
    matchLabels:
      app: echo
  template:
    metadata:
      labels:
        app: echo
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: httpd
        image: {shell}
        command: [sh, -c, \"mkdir -p /www && hostname > /www/index.html && exec httpd -f -p 8080 -h /www\"]
        ports:
        - containerPort: 8080
---
apiVersion: v1
kind: Service
metadata:
  name: sticky
spec:
  selector:
    app: echo
  sessionAffinity: ClientIP
  sessionAffinityConfig:
    clientIP:
      timeoutSeconds: {AFFINITY_TIMEOUT_SECONDS}
  ports:
  - port: 80
    targetPort: 8080
---
apiVersion: v1
kind: Service
metadata:
  name: spread
spec:
  selector:
    app: echo
  ports:
  - port: 80
    targetPort: 8080
---
{client}",
        shell = support::images::SHELL,
        client = client_pod()
    )
}

/// The names of the three ready `echo` pods, once all are.
fn ready_echo_pod_names(skiff: &Skiff) -> BTreeSet<String> {
    ready_pods(skiff, "app=echo", 3)
        .into_iter()
        .map(|(name, _)| name)
        .collect()
}

/// The answers to [`AFFINITY_REQUESTS`] requests the client pod sends one after another to
/// `url`, each on a new connection; a failed request answers `FAILED`.
fn answers_from_client(skiff: &Skiff, url: &str) -> Vec<String> {
    let script = format!(
        "i=0; while [ $i -lt {AFFINITY_REQUESTS} ]; do \
           timeout 5 wget -q -O - {url} || echo FAILED; \
           i=$((i+1)); \
         done"
    );
    let (ok, stdout, stderr) = in_client(skiff, &["sh", "-c", &script]);
    assert!(ok, "the client's requests to {url} did not run: {stderr}");
    stdout.lines().map(|l| l.trim().to_string()).collect()
}

/// The one backend every answer in `answers` names, failing when they name several or some
/// request failed.
fn single_backend(answers: &[String], pods: &BTreeSet<String>, what: &str) -> String {
    assert_eq!(answers.len(), AFFINITY_REQUESTS, "{what}: {answers:?}");
    let seen: BTreeSet<&String> = answers.iter().collect();
    assert!(
        seen.iter().all(|a| pods.contains(*a)),
        "{what}: answers other than the pods {pods:?}: {seen:?}"
    );
    assert_eq!(
        seen.len(),
        1,
        "{what}: with ClientIP affinity every request should reach one backend, saw {answers:?}"
    );
    answers[0].clone()
}

#[test]
fn client_ip_affinity_keeps_a_pod_on_one_backend_until_its_timeout() {
    let network = TestNetwork::next("c");
    let mut skiff = start(&network, &[support::images::shell()]);
    let kubectl = skiff.kubectl();

    skiff.write_file("affinity.yaml", &affinity_manifests());
    kubectl.ok(&["apply", "-f", "affinity.yaml"]);
    let pods = ready_echo_pod_names(&skiff);
    wait_for_client_pod(&skiff);
    let sticky = json_of(&kubectl.ok(&["get", "service", "sticky", "-o", "json"]));
    assert_eq!(
        sticky["spec"]["sessionAffinityConfig"]["clientIP"]["timeoutSeconds"],
        AFFINITY_TIMEOUT_SECONDS,
        "{sticky}"
    );

    // Without affinity, a batch reaches every backend once all of them serve.
    let mut last = Vec::new();
    let spread = support::poll(REACH, || {
        last = answers_from_client(&skiff, "http://spread/");
        let seen: BTreeSet<String> = last.iter().cloned().collect();
        (seen == pods).then_some(seen)
    });
    assert!(
        spread.is_some(),
        "requests without affinity should spread over every pod {pods:?}; last batch: {last:?}"
    );

    // With affinity, every request of a batch reaches the backend the first one did.
    let first = single_backend(
        &answers_from_client(&skiff, "http://sticky/"),
        &pods,
        "the first batch to sticky",
    );
    let again = single_backend(
        &answers_from_client(&skiff, "http://sticky/"),
        &pods,
        "a second batch to sticky",
    );
    assert_eq!(
        again, first,
        "a batch within the affinity timeout moved to another backend"
    );

    // Once the client stays away longer than the timeout, the choice is made anew, at random
    // among the three, and held for the whole batch: within a few idle periods it lands on
    // another backend (the chance that six fresh choices all repeat the first is 1 in 729).
    let mut afterwards = Vec::new();
    for _ in 0..AFFINITY_EXPIRIES {
        std::thread::sleep(Duration::from_secs(AFFINITY_TIMEOUT_SECONDS + 1));
        let after = single_backend(
            &answers_from_client(&skiff, "http://sticky/"),
            &pods,
            "a batch after the affinity timeout",
        );
        afterwards.push(after.clone());
        if after != first {
            break;
        }
    }
    assert!(
        afterwards.iter().any(|after| *after != first),
        "after {AFFINITY_TIMEOUT_SECONDS} s idle the affinity should have expired and another \
         backend been chosen at least once; first {first}, then {afterwards:?}"
    );

    stop_and_check_the_cluster_ip_interface_is_gone(&mut skiff, &network);
}

/// A selectorless NodePort Service `name` with both traffic policies `policy`, and its
/// EndpointSlice: `local` (address, pod name) on node `node`, `remote` on a node that does not
/// exist here, both ready, port 8080.
fn policy_manifests(
    name: &str,
    policy: &str,
    node: &str,
    local: (&str, &str),
    remote: (&str, &str),
) -> String {
    let endpoint = |(ip, pod): (&str, &str), on: &str| {
        format!(
            "- addresses: [\"{ip}\"]
  nodeName: {on}
  conditions:
    ready: true
  targetRef:
    kind: Pod
    namespace: default
    name: {pod}
"
        )
    };
    format!(
        "apiVersion: v1
kind: Service
metadata:
  name: {name}
spec:
  type: NodePort
  externalTrafficPolicy: {policy}
  internalTrafficPolicy: {policy}
  ports:
  - port: 80
    targetPort: 8080
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: {name}-manual
  labels:
    kubernetes.io/service-name: {name}
addressType: IPv4
ports:
- name: \"\"
  port: 8080
  protocol: TCP
endpoints:
{}{}",
        endpoint(local, node),
        endpoint(remote, "another-node")
    )
}

/// The distinct answers of `answers`, failing when a request failed or something other than
/// one of `pods` answered.
fn backends_seen(answers: &[String], pods: &BTreeSet<String>, what: &str) -> BTreeSet<String> {
    assert_eq!(answers.len(), AFFINITY_REQUESTS, "{what}: {answers:?}");
    let seen: BTreeSet<String> = answers.iter().cloned().collect();
    assert!(
        seen.iter().all(|a| pods.contains(a)),
        "{what}: answers other than the pods {pods:?}: {answers:?}"
    );
    seen
}

#[test]
fn local_traffic_policies_keep_connections_on_the_node_local_endpoints() {
    let network = TestNetwork::next("c");
    let mut skiff = start(&network, &[support::images::shell()]);
    let kubectl = skiff.kubectl();

    skiff.write_file("affinity.yaml", &affinity_manifests());
    kubectl.ok(&["apply", "-f", "affinity.yaml"]);
    let pods = ready_echo_pod_names(&skiff);
    wait_for_client_pod(&skiff);
    // Every echo pod serves before the policies are looked at.
    let mut last = Vec::new();
    let served = support::poll(REACH, || {
        last = answers_from_client(&skiff, "http://spread/");
        (last.iter().cloned().collect::<BTreeSet<String>>() == pods).then_some(())
    });
    assert!(
        served.is_some(),
        "every echo pod {pods:?} should answer; last batch: {last:?}"
    );

    let nodes = json_of(&kubectl.ok(&["get", "nodes", "-o", "json"]));
    let node_names: Vec<String> = items(&nodes)
        .iter()
        .map(|n| str_at(n, "/metadata/name"))
        .collect();
    assert_eq!(
        node_names.len(),
        1,
        "one real node expected: {node_names:?}"
    );
    let node = &node_names[0];
    let ip_of = |pod: &str| {
        let pod = json_of(&kubectl.ok(&["get", "pod", pod, "-o", "json"]));
        str_at(&pod, "/status/podIP")
    };
    let mut names = pods.iter();
    let local = names.next().expect("a first echo pod").clone();
    let remote = names.next().expect("a second echo pod").clone();
    let (local_ip, remote_ip) = (ip_of(&local), ip_of(&remote));
    // The pod said to be on another node is a real pod here, so a wrong route would answer.
    let manifests = [
        policy_manifests(
            "local-policy",
            "Local",
            node,
            (&local_ip, &local),
            (&remote_ip, &remote),
        ),
        policy_manifests(
            "cluster-policy",
            "Cluster",
            node,
            (&local_ip, &local),
            (&remote_ip, &remote),
        ),
    ]
    .join("---\n");
    skiff.write_file("policies.yaml", &manifests);
    kubectl.ok(&["apply", "-f", "policies.yaml"]);

    let node_port = |service: &str| {
        let svc = json_of(&kubectl.ok(&["get", "service", service, "-o", "json"]));
        svc["spec"]["ports"][0]["nodePort"]
            .as_u64()
            .unwrap_or_else(|| panic!("{service} has no node port: {svc}"))
    };
    let gateway = network.gateway();
    let both: BTreeSet<String> = [local.clone(), remote.clone()].into();
    let only_local: BTreeSet<String> = [local.clone()].into();
    for (service, expected) in [("cluster-policy", &both), ("local-policy", &only_local)] {
        let port = node_port(service);
        for url in [
            format!("http://{service}/"),
            format!("http://{gateway}:{port}/"),
        ] {
            // The first batch may come before the proxy has the new Service; then every
            // batch must give what the policy promises.
            let mut last = Vec::new();
            let reached = support::poll(REACH, || {
                last = answers_from_client(&skiff, &url);
                last.iter().all(|a| a != "FAILED").then_some(())
            });
            assert!(reached.is_some(), "{url} did not answer: {last:?}");
            let seen = backends_seen(&last, &pods, &url);
            assert_eq!(
                &seen, expected,
                "{service} ({url}) reached {seen:?}; its policy allows {expected:?}"
            );
        }
    }

    stop_and_check_the_cluster_ip_interface_is_gone(&mut skiff, &network);
}

#[test]
fn stateful_pods_resolve_each_other_by_stable_names_and_keep_their_claims_under_oci() {
    let network = TestNetwork::next("c");
    let mut skiff = start(&network, &[support::images::shell()]);
    let kubectl = skiff.kubectl();
    let dns_ip = network.service_ip(10).to_string();

    // Each pod writes its hostname into its claim of the default `local-path` class.
    let manifest = web_stateful_set(3, "hostname > /data/name; exec sleep 3600", None);
    skiff.write_file("web.yaml", &manifest);
    kubectl.ok(&["apply", "-f", "web.yaml"]);
    let ips = ready_pods(&skiff, "app=web", 3);

    // Each pod wrote its hostname into its own claim, mounted by the node under oci.
    for (name, _) in &ips {
        let written = kubectl.ok(&["exec", name, "--", "cat", "/data/name"]);
        assert_eq!(written.trim(), name, "{name}'s volume");
    }
    let claims = kubectl.ok(&["get", "pvc", "-o", "jsonpath={.items[*].metadata.name}"]);
    assert_eq!(claims, "data-web-0 data-web-1 data-web-2");

    // From inside web-1, web-0's and web-2's stable names answer their addresses through the
    // cluster DNS.
    for (name, ip) in ips.iter().filter(|(name, _)| name != "web-1") {
        let stable = format!("{name}.web.default.svc.cluster.local");
        let mut last = String::new();
        let resolved = support::poll(REACH, || {
            let out = kubectl.run(&["exec", "web-1", "--", "nslookup", &stable, &dns_ip]);
            last = format!("{}{}", out.stdout, out.stderr);
            (out.success() && out.stdout.contains(ip.as_str())).then_some(())
        });
        assert!(
            resolved.is_some(),
            "{stable} should answer {ip} from web-1: {last}"
        );
    }

    stop_and_check_the_cluster_ip_interface_is_gone(&mut skiff, &network);
    let left = leftovers(&network, &[]);
    assert!(left.is_empty(), "left behind after SIGTERM: {left:?}");
}

/// The service proxy's nftables table for `network`'s bridge.
fn proxy_table(network: &TestNetwork) -> String {
    format!("skiff_svc_{}", network.bridge)
}

/// The rules of table `name`, or `None` when it does not exist.
fn nft_table(name: &str) -> Option<String> {
    let output = Command::new("nft")
        .args(["list", "table", "ip", name])
        .output()
        .expect("nft runs");
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).into_owned())
}

/// One busybox `httpd` pod answering, at `/cgi-bin/peer`, the address its connection came
/// from; NodePort Services in front of it with `Local` and `Cluster` policies; the client pod.
fn peer_manifests() -> String {
    let service = |name: &str, policy: &str| {
        format!(
            "apiVersion: v1
kind: Service
metadata:
  name: {name}
spec:
  type: NodePort
  externalTrafficPolicy: {policy}
  internalTrafficPolicy: {policy}
  selector:
    app: peer
  ports:
  - port: 80
    targetPort: 8080
---
"
        )
    };
    format!(
        "apiVersion: apps/v1
kind: Deployment
metadata:
  name: peer
spec:
  replicas: 1
  selector:
    matchLabels:
      app: peer
  template:
    metadata:
      labels:
        app: peer
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: httpd
        image: {shell}
        command: [sh, -c, \"mkdir -p /www/cgi-bin && printf '#!/bin/sh\\\\necho Content-Type: text/plain\\\\necho\\\\necho $REMOTE_ADDR\\\\n' > /www/cgi-bin/peer && chmod +x /www/cgi-bin/peer && exec httpd -f -p 8080 -h /www\"]
        ports:
        - containerPort: 8080
---
{local}{cluster}{client}",
        shell = support::images::SHELL,
        client = client_pod(),
        local = service("peer-local", "Local"),
        cluster = service("peer-cluster", "Cluster"),
    )
}

/// What the peer pod says the client's connection to `url` came from, once it answers.
fn peer_seen_from_client(skiff: &Skiff, url: &str) -> String {
    peer_seen_from(skiff, "client", url)
}

/// What the peer pod says a connection from pod `from` to `url` came from, once it answers.
fn peer_seen_from(skiff: &Skiff, from: &str, url: &str) -> String {
    fetch_from(skiff, from, url, |body| {
        // httpd listens on an IPv6 socket: an IPv4 peer comes as `[::ffff:a.b.c.d]`.
        let answer = body
            .trim_start_matches('[')
            .trim_end_matches(']')
            .trim_start_matches("::ffff:");
        answer
            .parse::<std::net::Ipv4Addr>()
            .is_ok()
            .then(|| answer.to_string())
    })
}

#[test]
fn the_kernel_forwards_services_keeping_the_client_address_and_its_table_goes_at_stop() {
    assert_root();
    let network = TestNetwork::next("c");
    let table = proxy_table(&network);
    // A table a crashed run left behind, with a chain the proxy never writes: the start
    // replaces it.
    host("nft", &["add", "table", "ip", &table]);
    host("nft", &["add", "chain", "ip", &table, "left_by_a_crash"]);

    let mut skiff = start(&network, &[support::images::shell()]);
    let kubectl = skiff.kubectl();
    skiff.write_file("peer.yaml", &peer_manifests());
    kubectl.ok(&["apply", "-f", "peer.yaml"]);
    let (client_ip, (peer_name, peer_ip)) =
        wait_for_every("the client and peer pods to run", SETTLE, POLL, || {
            let list = json_of(&kubectl.ok(&["get", "pods", "-o", "json"]));
            let name_and_ip_of = |wanted: &dyn Fn(&serde_json::Value) -> bool| {
                items(&list)
                    .iter()
                    .filter(|pod| wanted(pod) && str_at(pod, "/status/phase") == "Running")
                    .map(|pod| (str_at(pod, "/metadata/name"), str_at(pod, "/status/podIP")))
                    .find(|(_, ip)| !ip.is_empty())
            };
            let (_, client) = name_and_ip_of(&|pod| str_at(pod, "/metadata/name") == "client")?;
            let peer = name_and_ip_of(&|pod| str_at(pod, "/metadata/labels/app") == "peer")?;
            Some((client, peer))
        });
    let node_port = |service: &str| {
        let svc = json_of(&kubectl.ok(&["get", "service", service, "-o", "json"]));
        svc["spec"]["ports"][0]["nodePort"]
            .as_u64()
            .unwrap_or_else(|| panic!("{service} has no node port: {svc}"))
    };
    let gateway = network.gateway().to_string();

    // A cluster IP and a Local node port: the backend sees the client pod's own address.
    for url in [
        "http://peer-local/cgi-bin/peer".to_string(),
        "http://peer-cluster/cgi-bin/peer".to_string(),
        format!("http://{gateway}:{}/cgi-bin/peer", node_port("peer-local")),
    ] {
        assert_eq!(
            peer_seen_from_client(&skiff, &url),
            client_ip,
            "{url} should reach the peer from the client's own address"
        );
    }
    // A Cluster node port masquerades: the answer must come back through the node.
    let url = format!(
        "http://{gateway}:{}/cgi-bin/peer",
        node_port("peer-cluster")
    );
    assert_eq!(
        peer_seen_from_client(&skiff, &url),
        gateway,
        "{url} should reach the peer from the node's bridge address"
    );

    // A pod reaching itself through its Service (hairpin) is masqueraded, or its answer would
    // skip the translation: it arrives from the node's bridge address.
    assert_eq!(
        peer_seen_from(&skiff, &peer_name, "http://peer-cluster/cgi-bin/peer"),
        gateway,
        "the peer reaching itself through its Service"
    );

    // The kernel holds the rules, in the proxy's own table, and what the crash left is gone.
    let rules = nft_table(&table).unwrap_or_else(|| panic!("no table {table} while serving"));
    assert!(
        rules.contains(&format!("dnat to {peer_ip}:8080")),
        "{table} has no translation to the peer {peer_ip}:\n{rules}"
    );
    assert!(
        !rules.contains("left_by_a_crash"),
        "the leftover table survived the start:\n{rules}"
    );

    stop_and_check_the_cluster_ip_interface_is_gone(&mut skiff, &network);
    assert!(
        nft_table(&table).is_none(),
        "the proxy's table {table} is left after SIGTERM"
    );
}
