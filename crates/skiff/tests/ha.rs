//! Two `skiff up` servers on one real etcd (Debian's `etcd-server`), driven by the real
//! `kubectl`: both serve the API, the controller manager and the scheduler run on the server
//! holding the `kube-system` Leases, and when that server stops (SIGTERM) or dies (SIGKILL) the
//! other takes the Leases over and carries out what is asked afterwards, never running more
//! pods than the Deployment wants. The servers share their CA and admin token through etcd.
//!
//! Run with `cargo test -p skiff --test ha`. Needs `kubectl` and `etcd` on the PATH.

mod support;

use std::time::{Duration, Instant};

use skiff_store::test_etcd::TestEtcd;
use support::json::{items, str_at};
use support::{assert_table, wait_for, wait_for_every, Kubectl, Skiff, DEADLINE, ELECTION_FLAGS};

const DEPLOYMENT: &str = "apiVersion: apps/v1
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
      - name: web
        image: nginx:1.27
";

/// The lease duration [`ELECTION_FLAGS`] gives, in seconds.
const LEASE_SECONDS: u64 = 4;
const LEASES: [&str; 2] = ["kube-controller-manager", "kube-scheduler"];

/// A server on `etcd`; `simulated_node` gives it the cluster's one (simulated) node.
fn server_on(etcd: &TestEtcd, simulated_node: bool) -> Skiff {
    server_with_timing(etcd, simulated_node, &ELECTION_FLAGS)
}

/// A server on `etcd` with the given `--leader-elect-*` flags.
fn server_with_timing(etcd: &TestEtcd, simulated_node: bool, timing: &[&str]) -> Skiff {
    let endpoint = etcd.endpoint();
    let mut args = vec![
        "--no-node",
        "--no-proxy",
        "--datastore-endpoint",
        &endpoint,
        "--simulated-nodes",
        if simulated_node { "1" } else { "0" },
    ];
    args.extend(timing);
    Skiff::start_with(&args)
}

fn holder(kubectl: &Kubectl, lease: &str) -> String {
    kubectl.ok(&[
        "get",
        "lease",
        "-n",
        "kube-system",
        lease,
        "-o",
        "jsonpath={.spec.holderIdentity}",
    ])
}

/// How many times `server` logged `message` for `lease`.
fn log_count(server: &Skiff, message: &str, lease: &str) -> usize {
    without_colours(&server.log())
        .lines()
        .filter(|line| line.contains(message) && line.contains(&format!("lease={lease}")))
        .count()
}

/// The identity `server` announced when it became leader of `lease`, if it did.
fn leader_identity_in_log(server: &Skiff, lease: &str) -> Option<String> {
    let log = without_colours(&server.log());
    log.lines()
        .filter(|line| line.contains("became leader") && line.contains(&format!("lease={lease}")))
        .filter_map(|line| {
            let after = line.split("identity=").nth(1)?;
            Some(after.split_whitespace().next()?.to_string())
        })
        .next_back()
}

/// The log without terminal colour sequences (`ESC [ ... m`).
fn without_colours(log: &str) -> String {
    let mut plain = String::with_capacity(log.len());
    let mut chars = log.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for end in chars.by_ref() {
                if end.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            plain.push(c);
        }
    }
    plain
}

/// Asserts that no more `app=web` pods than `wanted` exist (not counting those being deleted),
/// and returns how many run.
fn live_pods_within(kubectl: &Kubectl, wanted: usize) -> (usize, usize) {
    let pods = kubectl.json(&["get", "pods", "-l", "app=web", "-o", "json"]);
    let live: Vec<_> = items(&pods)
        .into_iter()
        .filter(|p| p.pointer("/metadata/deletionTimestamp").is_none())
        .collect();
    assert!(
        live.len() <= wanted,
        "{} pods exist for {wanted} replicas: {:?}",
        live.len(),
        live.iter()
            .map(|p| str_at(p, "/metadata/name"))
            .collect::<Vec<_>>()
    );
    let running = live
        .iter()
        .filter(|p| str_at(p, "/status/phase") == "Running")
        .count();
    (live.len(), running)
}

/// Waits until `wanted` pods run, checking on every poll that there are never more.
fn wait_for_running_pods(kubectl: &Kubectl, wanted: usize) {
    wait_for_every(
        &format!("{wanted} running web pods"),
        DEADLINE,
        Duration::from_millis(300),
        || {
            let (live, running) = live_pods_within(kubectl, wanted);
            (live == wanted && running == wanted).then_some(())
        },
    );
}

enum LeaderEnd {
    Terminated,
    Killed,
}

fn leader_fails_over(end: LeaderEnd) {
    let etcd = TestEtcd::start();
    // A starts first and wins both elections; B runs the node, so pods keep running when A goes.
    let mut a = server_on(&etcd, false);
    let a_kubectl = a.kubectl();
    let first_holders: Vec<String> = LEASES
        .iter()
        .map(|lease| {
            wait_for(&format!("A to hold {lease}"), DEADLINE, || {
                leader_identity_in_log(&a, lease)
            })
        })
        .collect();
    let b = server_on(&etcd, true);
    let b_kubectl = b.kubectl();

    // The servers share the CA and the admin token: A's kubeconfig pointed at B works.
    let server_url = |kubectl: &Kubectl| {
        kubectl.ok(&[
            "config",
            "view",
            "--minify",
            "-o",
            "jsonpath={.clusters[0].cluster.server}",
        ])
    };
    let (a_url, b_url) = (server_url(&a_kubectl), server_url(&b_kubectl));
    assert_ne!(a_url, b_url, "each server listens on its own port");
    let a_config = std::fs::read_to_string(a.kubeconfig()).expect("A's kubeconfig");
    let crossed = b.write_file("a-to-b.kubeconfig", &a_config.replace(&a_url, &b_url));
    let crossed = b_kubectl.with_kubeconfig(&b.file_path(&crossed));
    assert_eq!(
        crossed.ok(&["get", "namespace", "default", "-o", "name"]),
        "namespace/default\n",
        "B trusts A's admin token and serves with the shared CA"
    );

    // Both servers answer, and both see the same single holder of each Lease: A.
    for (lease, identity) in LEASES.iter().zip(&first_holders) {
        assert_eq!(&holder(&a_kubectl, lease), identity);
        assert_eq!(&holder(&b_kubectl, lease), identity);
        assert!(
            identity.contains('_') && identity.split('_').nth(1).map(str::len) == Some(36),
            "holderIdentity is <hostname>_<uuid>: {identity}"
        );
    }
    assert_table(
        &b_kubectl.ok(&["get", "lease", "-n", "kube-system", LEASES[0], LEASES[1]]),
        &[
            &["NAME", "HOLDER", "AGE"],
            &["kube-controller-manager", &first_holders[0], "<age>"],
            &["kube-scheduler", &first_holders[1], "<age>"],
        ],
    );
    let lease = b_kubectl.json(&["get", "lease", "-n", "kube-system", LEASES[0], "-o", "json"]);
    assert_eq!(lease["spec"]["leaseDurationSeconds"], LEASE_SECONDS);
    assert_eq!(lease["spec"]["leaseTransitions"], 0);
    for field in ["acquireTime", "renewTime"] {
        let time = str_at(&lease, &format!("/spec/{field}"));
        assert!(
            time.ends_with('Z') && time.split('.').nth(1).map(str::len) == Some(7),
            "{field} is a MicroTime: {time}"
        );
    }
    wait_for("the LeaderElection event on the Lease", DEADLINE, || {
        let events = b_kubectl.json(&[
            "get",
            "events",
            "-n",
            "kube-system",
            "--field-selector",
            "reason=LeaderElection,involvedObject.name=kube-controller-manager",
            "-o",
            "json",
        ]);
        items(&events).into_iter().find(|e| {
            str_at(e, "/message") == format!("{} became leader", first_holders[0])
                && str_at(e, "/involvedObject/kind") == "Lease"
                && str_at(e, "/type") == "Normal"
        })
    });
    assert_eq!(
        leader_identity_in_log(&b, LEASES[0]),
        None,
        "B leads nothing while A does"
    );

    // A Deployment created through B is rolled out by A's controllers and scheduler.
    let manifest = b.write_file("web.yaml", DEPLOYMENT);
    assert_eq!(
        b_kubectl.ok(&["apply", "-f", &manifest]),
        "deployment.apps/web created\n"
    );
    wait_for_running_pods(&b_kubectl, 3);

    let ended = Instant::now();
    match end {
        LeaderEnd::Terminated => {
            let status = a.stop();
            assert!(status.success(), "A exited with {status}");
        }
        LeaderEnd::Killed => a.kill(),
    }
    let b_identities: Vec<String> = LEASES
        .iter()
        .map(|lease| {
            wait_for(&format!("B to take {lease}"), DEADLINE, || {
                live_pods_within(&b_kubectl, 3);
                leader_identity_in_log(&b, lease)
            })
        })
        .collect();
    let took = ended.elapsed();
    // Others wait a lease duration after the last renewal they saw, then try within a
    // jittered retry period (at most 2.2 s here).
    assert!(
        took < Duration::from_secs(LEASE_SECONDS + 4),
        "B took {took:?} to take over"
    );
    eprintln!("failover took {took:?}");
    for (lease, identity) in LEASES.iter().zip(&b_identities) {
        assert_eq!(&holder(&b_kubectl, lease), identity);
        assert_ne!(identity, &first_holders[0]);
    }
    let lease = b_kubectl.json(&["get", "lease", "-n", "kube-system", LEASES[0], "-o", "json"]);
    assert_eq!(lease["spec"]["leaseTransitions"], 1, "{lease}");

    // B's controllers carry out a scale-up, with no pod too many at any poll.
    b_kubectl.ok(&["scale", "deploy/web", "--replicas=5"]);
    wait_for_running_pods(&b_kubectl, 5);
    wait_for(
        "the Deployment to report 5 available replicas",
        DEADLINE,
        || {
            let available = b_kubectl.ok(&[
                "get",
                "deploy/web",
                "-o",
                "jsonpath={.status.availableReplicas}",
            ]);
            (available == "5").then_some(())
        },
    );
    live_pods_within(&b_kubectl, 5);
}

#[test]
fn a_terminated_leader_hands_over_to_the_other_server() {
    leader_fails_over(LeaderEnd::Terminated);
}

#[test]
fn a_killed_leader_is_replaced_once_its_lease_runs_out() {
    leader_fails_over(LeaderEnd::Killed);
}

#[test]
fn a_leader_that_cannot_renew_stops_leading_before_its_lease_runs_out() {
    let etcd = TestEtcd::start();
    // A lease well beyond the renew deadline, so the bound below holds on a loaded machine.
    let a = server_with_timing(
        &etcd,
        false,
        &[
            "--leader-elect-lease-duration",
            "8s",
            "--leader-elect-renew-deadline",
            "3s",
            "--leader-elect-retry-period",
            "1s",
        ],
    );
    for lease in LEASES {
        wait_for(&format!("the server to hold {lease}"), DEADLINE, || {
            leader_identity_in_log(&a, lease)
        });
    }
    etcd.pause();
    let paused = Instant::now();
    for lease in LEASES {
        wait_for(
            &format!("the server to stop leading {lease}"),
            DEADLINE,
            || (log_count(&a, "stopped leading", lease) == 1).then_some(()),
        );
    }
    let took = paused.elapsed();
    eprintln!("stopped leading {took:?} after etcd stopped answering");
    // The last renewal was at most a retry period before the pause; the others would wait a
    // lease duration (8 s) after it, and the leader stops at its renew deadline (3 s).
    assert!(
        took < Duration::from_secs(8),
        "the leader stopped {took:?} after its last chance to renew: too late"
    );
    etcd.resume();
    for lease in LEASES {
        wait_for(
            &format!("the server to lead {lease} again"),
            DEADLINE,
            || (log_count(&a, "became leader", lease) == 2).then_some(()),
        );
    }
}
