//! Forwarding in the kernel, as kube-proxy's nftables mode does: cluster IP and node port
//! frontends become DNAT rules in an nftables table of the proxy's own, so a connection to a
//! Service is one connection from the client to the endpoint, with no copy through user space.
//!
//! [`RulePlan::of`] is the pure part: from the routes the proxy would otherwise listen on, one
//! chain per frontend (the choice of an endpoint: `ClientIP` affinity first, then `numgen
//! random` over the ready endpoints) and one per frontend endpoint (the DNAT, the affinity
//! set's refresh, masquerading a pod that reaches itself). [`RulePlan::script`] renders the
//! whole table as one `nft -f` transaction that replaces the previous one atomically while
//! keeping the affinity sets that still exist. Masquerading is only where it is needed: a pod
//! that lands on itself (hairpin), clients outside the pod ranges reaching a cluster IP, and
//! node ports with `externalTrafficPolicy: Cluster`; `Local` keeps the client's address.
//!
//! Side effects sit behind [`RuleWriter`] ([`NftCommand`] runs `nft`, [`RecordingRuleWriter`]
//! records for tests) and [`ConnectionTracker`] ([`ProcConntrack`] reads the kernel's
//! connection tracking table, so a pod is signalled only once the connections forwarded to it
//! ended).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::io::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use crate::table::{FrontendKind, Route};

/// The packet mark bit that asks the table's postrouting chain to masquerade a new connection.
pub const MASQUERADE_MARK: u32 = 0x0040_0000;

/// How the proxy hands cluster IPs and node ports to the kernel.
#[derive(Clone)]
pub struct KernelForwarding {
    /// The nftables table the proxy owns (`ip` family): created at start, replaced at every
    /// change, removed at stop.
    pub table: String,
    /// The pod ranges: their connections to cluster IPs keep their source address; others are
    /// masqueraded so the answer comes back through this host.
    pub pod_ranges: Vec<(Ipv4Addr, u8)>,
    /// What applies the scripts.
    pub writer: Arc<dyn RuleWriter>,
    /// What tells when connections already forwarded to a stopping pod have ended; none skips
    /// that wait.
    pub tracker: Option<Arc<dyn ConnectionTracker>>,
    /// The longest a stopping pod's signal waits for its forwarded connections to end (within
    /// its grace period): a client that keeps a connection open must not hold it for ever.
    pub connection_drain_limit: Duration,
}

impl std::fmt::Debug for KernelForwarding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KernelForwarding")
            .field("table", &self.table)
            .field("pod_ranges", &self.pod_ranges)
            .field("tracker", &self.tracker.is_some())
            .field("connection_drain_limit", &self.connection_drain_limit)
            .finish()
    }
}

impl KernelForwarding {
    /// Forwarding through `nft` into `table`, waiting up to ten seconds on connections read
    /// from `/proc/net/nf_conntrack`.
    pub fn nft(table: impl Into<String>, pod_ranges: Vec<(Ipv4Addr, u8)>) -> KernelForwarding {
        KernelForwarding {
            table: table.into(),
            pod_ranges,
            writer: Arc::new(NftCommand::default()),
            tracker: Some(Arc::new(ProcConntrack::default())),
            connection_drain_limit: Duration::from_secs(10),
        }
    }
}

/// Whether the kernel can forward `frontend`'s connections along `route`: IPv4 only, and
/// neither the frontend nor an endpoint on loopback (the kernel does not route loopback
/// addresses between interfaces; such routes, the `kubernetes` Service's endpoint on
/// `--listen 127.0.0.1` or node ports on loopback, stay with the user-space proxy).
pub fn forwardable(frontend: &SocketAddr, route: &Route) -> bool {
    let plain_v4 =
        |ip: IpAddr| matches!(ip, IpAddr::V4(v4) if !v4.is_loopback() && !v4.is_unspecified());
    plain_v4(frontend.ip()) && route.backends.iter().all(|b| plain_v4(b.ip()))
}

/// The nftables table for a set of routes: named chains and affinity sets, without the table's
/// name, which the writer owns.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RulePlan {
    /// Chains in the order they are declared (a chain before the chains that jump to it), each
    /// with its rules; the base chains hooked into the kernel come last.
    pub chains: Vec<(String, Vec<String>)>,
    /// The affinity sets (client address → a recent choice of one endpoint), by name.
    pub sets: BTreeSet<String>,
}

impl RulePlan {
    /// Plans the rules for `routes` (every one of them [`forwardable`]); `pod_ranges` are the
    /// sources that reach cluster IPs without masquerading.
    pub fn of(routes: &BTreeMap<SocketAddr, Route>, pod_ranges: &[(Ipv4Addr, u8)]) -> RulePlan {
        let mut endpoint_chains = Vec::new();
        let mut frontend_chains = Vec::new();
        let mut sets = BTreeSet::new();
        let mut dispatch = Vec::new();
        let mark = format!("meta mark set meta mark | {MASQUERADE_MARK:#010x}");
        for (frontend, route) in routes {
            let (IpAddr::V4(frontend_ip), port) = (frontend.ip(), frontend.port()) else {
                continue;
            };
            let frontend_name = format!("{}_{port}", dotless(frontend_ip));
            let chain = format!("fe_{frontend_name}");
            let mut rules = Vec::new();
            match route.kind {
                FrontendKind::ClusterIp if !pod_ranges.is_empty() => {
                    let ranges: Vec<String> = pod_ranges
                        .iter()
                        .map(|(ip, len)| format!("{ip}/{len}"))
                        .collect();
                    rules.push(format!("ip saddr != {{ {} }} {mark}", ranges.join(", ")));
                }
                FrontendKind::ClusterIp => rules.push(mark.clone()),
                FrontendKind::NodePort { local: false } => rules.push(mark.clone()),
                // The client's address is kept: the endpoint is on this node and answers
                // through it.
                FrontendKind::NodePort { local: true } => {}
            }
            let mut endpoint_names = Vec::new();
            for backend in &route.backends {
                let SocketAddr::V4(backend) = backend else {
                    continue;
                };
                let name = format!(
                    "{frontend_name}_{}_{}",
                    dotless(*backend.ip()),
                    backend.port()
                );
                endpoint_chains.push((
                    format!("ep_{name}"),
                    endpoint_rules(*backend, route, &name, &mark),
                ));
                if route.affinity.is_some() {
                    sets.insert(format!("aff_{name}"));
                    rules.push(format!("ip saddr @aff_{name} goto ep_{name}"));
                }
                endpoint_names.push(name);
            }
            match endpoint_names.as_slice() {
                // No endpoint: a Local frontend drops as kube-proxy does; any other lets the
                // host refuse the connection, since nothing listens on its address.
                [] if matches!(route.kind, FrontendKind::NodePort { local: true }) => {
                    rules.push("drop".to_string());
                }
                [] => {}
                [one] => rules.push(format!("goto ep_{one}")),
                many => {
                    let arms: Vec<String> = many
                        .iter()
                        .enumerate()
                        .map(|(i, name)| format!("{i} : goto ep_{name}"))
                        .collect();
                    rules.push(format!(
                        "numgen random mod {} vmap {{ {} }}",
                        many.len(),
                        arms.join(", ")
                    ));
                }
            }
            frontend_chains.push((chain.clone(), rules));
            dispatch.push(format!("{frontend_ip} . {port} : goto {chain}"));
        }
        let mut chains = endpoint_chains;
        chains.extend(frontend_chains);
        let services = if dispatch.is_empty() {
            Vec::new()
        } else {
            vec![format!(
                "ip daddr . tcp dport vmap {{ {} }}",
                dispatch.join(", ")
            )]
        };
        chains.push(("services".to_string(), services));
        chains.push((
            "prerouting".to_string(),
            vec![
                "type nat hook prerouting priority dstnat; policy accept;".to_string(),
                "jump services".to_string(),
            ],
        ));
        chains.push((
            "output".to_string(),
            vec![
                // `dstnat` names the prerouting priority only; -100 is its value.
                "type nat hook output priority -100; policy accept;".to_string(),
                "jump services".to_string(),
            ],
        ));
        chains.push((
            "postrouting".to_string(),
            vec![
                "type nat hook postrouting priority srcnat; policy accept;".to_string(),
                format!(
                    "meta mark & {MASQUERADE_MARK:#010x} == {MASQUERADE_MARK:#010x} masquerade"
                ),
            ],
        ));
        RulePlan { chains, sets }
    }

    /// The `nft -f` script that makes table `table` hold this plan, in one transaction. With
    /// the `previous` plan applied, the table is flushed of its rules, chains and sets no longer
    /// planned are deleted, and the affinity sets that remain keep their entries; without it,
    /// the table is created afresh (whatever a crashed run left is removed).
    pub fn script(&self, table: &str, previous: Option<&RulePlan>) -> String {
        let mut script = format!("add table ip {table}\n");
        match previous {
            Some(previous) => {
                let _ = writeln!(script, "flush table ip {table}");
                let wanted: BTreeSet<&str> = self.chains.iter().map(|(n, _)| n.as_str()).collect();
                for (name, _) in &previous.chains {
                    if !wanted.contains(name.as_str()) {
                        let _ = writeln!(script, "delete chain ip {table} {name}");
                    }
                }
                for name in previous.sets.difference(&self.sets) {
                    let _ = writeln!(script, "delete set ip {table} {name}");
                }
            }
            None => {
                let _ = writeln!(script, "delete table ip {table}");
            }
        }
        let _ = writeln!(script, "table ip {table} {{");
        for set in &self.sets {
            let _ = writeln!(
                script,
                "\tset {set} {{\n\t\ttype ipv4_addr\n\t\tflags dynamic,timeout\n\t}}"
            );
        }
        for (name, rules) in &self.chains {
            let _ = writeln!(script, "\tchain {name} {{");
            for rule in rules {
                let _ = writeln!(script, "\t\t{rule}");
            }
            let _ = writeln!(script, "\t}}");
        }
        script.push_str("}\n");
        script
    }
}

/// The `nft -f` script that removes table `table`, whether or not it exists.
pub fn removal_script(table: &str) -> String {
    format!("add table ip {table}\ndelete table ip {table}\n")
}

/// The rules of one endpoint of one frontend: masquerade a pod reaching itself (its answer
/// would otherwise skip the host and the reverse translation), refresh the client's affinity,
/// then the translation.
fn endpoint_rules(backend: SocketAddrV4, route: &Route, name: &str, mark: &str) -> Vec<String> {
    let mut rules = vec![format!("ip saddr {} {mark}", backend.ip())];
    if let Some(timeout) = route.affinity {
        rules.push(format!(
            "update @aff_{name} {{ ip saddr timeout {}s }}",
            timeout.as_secs().max(1)
        ));
    }
    rules.push(format!(
        "meta l4proto tcp dnat to {}:{}",
        backend.ip(),
        backend.port()
    ));
    rules
}

/// `198.19.0.5` as `198_19_0_5`, for names nftables accepts unquoted.
fn dotless(ip: Ipv4Addr) -> String {
    ip.octets().map(|o| o.to_string()).join("_")
}

/// Writes nftables scripts: the one place the kernel forwarding changes the host.
pub trait RuleWriter: Send + Sync {
    /// Applies `script` in one transaction; nothing of it applies when it fails.
    fn apply(&self, script: &str) -> Result<(), String>;
}

/// Runs `nft -f -` with the script on its input.
#[derive(Clone, Debug)]
pub struct NftCommand {
    /// The `nft` program.
    pub program: PathBuf,
}

impl Default for NftCommand {
    fn default() -> Self {
        NftCommand {
            program: PathBuf::from("nft"),
        }
    }
}

impl RuleWriter for NftCommand {
    fn apply(&self, script: &str) -> Result<(), String> {
        let mut child = Command::new(&self.program)
            .args(["-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", self.program.display()))?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin
                .write_all(script.as_bytes())
                .map_err(|e| format!("cannot write the nft script: {e}"))?;
        }
        let output = child
            .wait_with_output()
            .map_err(|e| format!("cannot wait for nft: {e}"))?;
        if output.status.success() {
            Ok(())
        } else {
            Err(format!(
                "nft failed ({}): {}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            ))
        }
    }
}

/// A [`RuleWriter`] that records every script, for tests; it fails while told to.
#[derive(Clone, Default)]
pub struct RecordingRuleWriter {
    scripts: Arc<Mutex<Vec<String>>>,
    failing: Arc<Mutex<bool>>,
}

impl RecordingRuleWriter {
    /// The scripts applied so far, in order.
    pub fn scripts(&self) -> Vec<String> {
        self.scripts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Makes the next applications fail (`true`) or succeed again.
    pub fn fail(&self, failing: bool) {
        *self.failing.lock().unwrap_or_else(PoisonError::into_inner) = failing;
    }
}

impl RuleWriter for RecordingRuleWriter {
    fn apply(&self, script: &str) -> Result<(), String> {
        if *self.failing.lock().unwrap_or_else(PoisonError::into_inner) {
            return Err("told to fail".to_string());
        }
        self.scripts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(script.to_string());
        Ok(())
    }
}

/// Counts connections the kernel forwarded to an endpoint that may still carry a request.
pub trait ConnectionTracker: Send + Sync {
    /// How many translated connections to `ip` are being opened or are open.
    fn open_forwarded_to(&self, ip: IpAddr) -> Result<usize, String>;
}

/// Reads `/proc/net/nf_conntrack`, the kernel's connection tracking table.
#[derive(Clone, Debug)]
pub struct ProcConntrack {
    /// The table's file.
    pub path: PathBuf,
}

impl Default for ProcConntrack {
    fn default() -> Self {
        ProcConntrack {
            path: PathBuf::from("/proc/net/nf_conntrack"),
        }
    }
}

impl ConnectionTracker for ProcConntrack {
    fn open_forwarded_to(&self, ip: IpAddr) -> Result<usize, String> {
        let text = std::fs::read_to_string(&self.path)
            .map_err(|e| format!("cannot read {}: {e}", self.path.display()))?;
        Ok(count_open_forwarded(&text, ip))
    }
}

/// In the text of `/proc/net/nf_conntrack`, the TCP connections translated to `ip` (the
/// answer comes from `ip`, the client asked another address) that are being opened or are
/// established: those a server stopping now could still owe an answer.
pub fn count_open_forwarded(table: &str, ip: IpAddr) -> usize {
    const OPEN: [&str; 4] = ["SYN_SENT", "SYN_SENT2", "SYN_RECV", "ESTABLISHED"];
    let ip = ip.to_string();
    table
        .lines()
        .filter(|line| {
            let words: Vec<&str> = line.split_whitespace().collect();
            if words.get(2) != Some(&"tcp") || !words.get(5).is_some_and(|s| OPEN.contains(s)) {
                return false;
            }
            let sources: Vec<&str> = words
                .iter()
                .filter_map(|w| w.strip_prefix("src="))
                .collect();
            let destinations: Vec<&str> = words
                .iter()
                .filter_map(|w| w.strip_prefix("dst="))
                .collect();
            sources.get(1) == Some(&ip.as_str()) && destinations.first().is_some_and(|d| *d != ip)
        })
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(text: &str) -> SocketAddr {
        text.parse().expect("test address")
    }

    fn route(kind: FrontendKind, backends: &[&str], affinity: Option<u64>) -> Route {
        Route {
            service: "default/web".into(),
            port_name: "http".into(),
            backends: backends.iter().map(|b| addr(b)).collect(),
            affinity: affinity.map(Duration::from_secs),
            kind,
        }
    }

    const PODS: [(Ipv4Addr, u8); 1] = [(Ipv4Addr::new(198, 18, 0, 0), 16)];

    fn chain<'a>(plan: &'a RulePlan, name: &str) -> &'a [String] {
        plan.chains
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, rules)| rules.as_slice())
            .unwrap_or_else(|| panic!("no chain {name} in {plan:?}"))
    }

    #[test]
    fn which_routes_the_kernel_forwards() {
        let cases = [
            ("198.19.0.5:80", vec!["198.18.0.7:8080"], true),
            ("198.19.0.5:80", vec![], true),
            ("127.0.0.1:30080", vec!["198.18.0.7:8080"], false),
            ("198.19.0.1:443", vec!["127.0.0.1:6443"], false),
            ("[fd00::1]:80", vec!["198.18.0.7:8080"], false),
        ];
        for (frontend, backends, expected) in cases {
            let r = route(FrontendKind::ClusterIp, &backends, None);
            assert_eq!(
                forwardable(&addr(frontend), &r),
                expected,
                "{frontend} → {backends:?}"
            );
        }
    }

    #[test]
    fn a_cluster_ip_balances_at_random_and_masquerades_only_outsiders_and_hairpins() {
        let routes = BTreeMap::from([(
            addr("198.19.0.5:80"),
            route(
                FrontendKind::ClusterIp,
                &["198.18.0.7:8080", "198.18.0.8:8080"],
                None,
            ),
        )]);
        let plan = RulePlan::of(&routes, &PODS);
        assert_eq!(
            chain(&plan, "fe_198_19_0_5_80"),
            [
                "ip saddr != { 198.18.0.0/16 } meta mark set meta mark | 0x00400000",
                "numgen random mod 2 vmap { 0 : goto ep_198_19_0_5_80_198_18_0_7_8080, \
                 1 : goto ep_198_19_0_5_80_198_18_0_8_8080 }",
            ]
        );
        assert_eq!(
            chain(&plan, "ep_198_19_0_5_80_198_18_0_7_8080"),
            [
                "ip saddr 198.18.0.7 meta mark set meta mark | 0x00400000",
                "meta l4proto tcp dnat to 198.18.0.7:8080",
            ]
        );
        assert_eq!(
            chain(&plan, "services"),
            ["ip daddr . tcp dport vmap { 198.19.0.5 . 80 : goto fe_198_19_0_5_80 }"]
        );
        assert_eq!(
            chain(&plan, "postrouting")[1],
            "meta mark & 0x00400000 == 0x00400000 masquerade"
        );
        assert!(plan.sets.is_empty());
        // The base chains come last, after every chain they reach.
        let names: Vec<&str> = plan.chains.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names[names.len() - 4..],
            ["services", "prerouting", "output", "postrouting"]
        );
    }

    #[test]
    fn node_ports_masquerade_unless_their_policy_is_local() {
        let cases = [
            (FrontendKind::NodePort { local: false }, true, None),
            (FrontendKind::NodePort { local: true }, false, None),
            (FrontendKind::NodePort { local: true }, false, Some("drop")),
        ];
        for (kind, masquerades, without_endpoints) in cases {
            let backends: &[&str] = if without_endpoints.is_some() {
                &[]
            } else {
                &["198.18.0.7:8080"]
            };
            let routes = BTreeMap::from([(addr("198.18.0.1:30080"), route(kind, backends, None))]);
            let rules = RulePlan::of(&routes, &PODS).chains;
            let frontend = &rules
                .iter()
                .find(|(n, _)| n == "fe_198_18_0_1_30080")
                .expect("frontend chain")
                .1;
            let marks = frontend.iter().any(|r| r.contains("meta mark set"));
            assert_eq!(marks, masquerades, "{kind:?}");
            match without_endpoints {
                Some(last) => assert_eq!(frontend.last().map(String::as_str), Some(last)),
                None => assert_eq!(
                    frontend.last().map(String::as_str),
                    Some("goto ep_198_18_0_1_30080_198_18_0_7_8080"),
                    "{kind:?}"
                ),
            }
        }
    }

    #[test]
    fn client_ip_affinity_goes_through_a_set_per_endpoint() {
        let routes = BTreeMap::from([(
            addr("198.19.0.6:80"),
            route(
                FrontendKind::ClusterIp,
                &["198.18.0.7:8080", "198.18.0.8:8080"],
                Some(30),
            ),
        )]);
        let plan = RulePlan::of(&routes, &PODS);
        assert_eq!(
            plan.sets,
            BTreeSet::from([
                "aff_198_19_0_6_80_198_18_0_7_8080".to_string(),
                "aff_198_19_0_6_80_198_18_0_8_8080".to_string(),
            ])
        );
        let frontend = chain(&plan, "fe_198_19_0_6_80");
        assert_eq!(
            frontend[1],
            "ip saddr @aff_198_19_0_6_80_198_18_0_7_8080 goto ep_198_19_0_6_80_198_18_0_7_8080"
        );
        assert!(frontend[3].starts_with("numgen random mod 2"));
        assert_eq!(
            chain(&plan, "ep_198_19_0_6_80_198_18_0_8_8080")[1],
            "update @aff_198_19_0_6_80_198_18_0_8_8080 { ip saddr timeout 30s }"
        );
    }

    #[test]
    fn scripts_create_afresh_then_replace_keeping_remaining_sets() {
        let first = RulePlan::of(
            &BTreeMap::from([(
                addr("198.19.0.6:80"),
                route(
                    FrontendKind::ClusterIp,
                    &["198.18.0.7:8080", "198.18.0.8:8080"],
                    Some(30),
                ),
            )]),
            &PODS,
        );
        let script = first.script("skiff_svc_t", None);
        assert!(script.starts_with(
            "add table ip skiff_svc_t\ndelete table ip skiff_svc_t\ntable ip skiff_svc_t {\n"
        ));
        assert!(script.contains("\tset aff_198_19_0_6_80_198_18_0_7_8080 {\n"));

        let second = RulePlan::of(
            &BTreeMap::from([(
                addr("198.19.0.6:80"),
                route(FrontendKind::ClusterIp, &["198.18.0.8:8080"], Some(30)),
            )]),
            &PODS,
        );
        let script = second.script("skiff_svc_t", Some(&first));
        assert!(script.starts_with("add table ip skiff_svc_t\nflush table ip skiff_svc_t\n"));
        assert!(script.contains("delete chain ip skiff_svc_t ep_198_19_0_6_80_198_18_0_7_8080\n"));
        assert!(script.contains("delete set ip skiff_svc_t aff_198_19_0_6_80_198_18_0_7_8080\n"));
        assert!(!script.contains("delete set ip skiff_svc_t aff_198_19_0_6_80_198_18_0_8_8080"));
        assert!(!script.contains("delete table"));
        assert_eq!(
            removal_script("skiff_svc_t"),
            "add table ip skiff_svc_t\ndelete table ip skiff_svc_t\n"
        );
    }

    #[test]
    fn nft_accepts_the_scripts() {
        // `nft -c` checks a script against the kernel without applying it.
        let routes = BTreeMap::from([
            (
                addr("198.19.0.6:80"),
                route(
                    FrontendKind::ClusterIp,
                    &["198.18.0.7:8080", "198.18.0.8:8080"],
                    Some(30),
                ),
            ),
            (
                addr("198.18.0.1:30080"),
                route(FrontendKind::NodePort { local: true }, &[], None),
            ),
            (
                addr("198.18.0.1:30081"),
                route(
                    FrontendKind::NodePort { local: false },
                    &["198.18.0.7:8080"],
                    None,
                ),
            ),
        ]);
        let plan = RulePlan::of(&routes, &PODS);
        for script in [
            plan.script("skiff_svc_check", None),
            removal_script("skiff_svc_check"),
        ] {
            let mut child = Command::new("nft")
                .args(["-c", "-f", "-"])
                .stdin(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("nft runs (Debian package nftables)");
            child
                .stdin
                .take()
                .expect("stdin")
                .write_all(script.as_bytes())
                .expect("write the script");
            let output = child.wait_with_output().expect("nft ends");
            assert!(
                output.status.success(),
                "nft refused:\n{script}\n{}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
    }

    #[test]
    fn open_forwarded_connections_are_read_from_the_conntrack_table() {
        let table = "\
ipv4     2 tcp      6 431999 ESTABLISHED src=198.18.0.9 dst=198.19.0.5 sport=40562 dport=80 src=198.18.0.7 dst=198.18.0.9 sport=8080 dport=40562 [ASSURED] mark=0 zone=0 use=2
ipv4     2 tcp      6 119 SYN_SENT src=198.18.0.9 dst=198.19.0.5 sport=40563 dport=80 [UNREPLIED] src=198.18.0.7 dst=198.18.0.9 sport=8080 dport=40563 mark=0 zone=0 use=2
ipv4     2 tcp      6 118 TIME_WAIT src=198.18.0.9 dst=198.19.0.5 sport=40564 dport=80 src=198.18.0.7 dst=198.18.0.9 sport=8080 dport=40564 [ASSURED] mark=0 zone=0 use=2
ipv4     2 tcp      6 431999 ESTABLISHED src=198.18.0.1 dst=198.18.0.7 sport=40565 dport=8080 src=198.18.0.7 dst=198.18.0.1 sport=8080 dport=40565 [ASSURED] mark=0 zone=0 use=2
ipv4     2 tcp      6 431999 ESTABLISHED src=198.18.0.9 dst=198.19.0.5 sport=40566 dport=80 src=198.18.0.8 dst=198.18.0.9 sport=8080 dport=40566 [ASSURED] mark=0 zone=0 use=2
ipv4     2 udp      17 29 src=198.18.0.9 dst=198.19.0.10 sport=5353 dport=53 src=198.18.0.7 dst=198.18.0.9 sport=53 dport=5353 mark=0 zone=0 use=2
";
        let ip: IpAddr = "198.18.0.7".parse().expect("ip");
        // The established and the opening translated connections; not the one closing, not
        // the probe the host sent straight to the pod, not another pod's, not UDP.
        assert_eq!(count_open_forwarded(table, ip), 2);
        assert_eq!(count_open_forwarded("", ip), 0);
        assert_eq!(count_open_forwarded("garbage\n\n tcp", ip), 0);
    }
}
