//! The `/etc/resolv.conf` a pod gets, as the kubelet forms it.
//!
//! Pure: the host's resolv.conf comes in as text (or as "none configured", kubelet's
//! `--resolv-conf=""`), the pod's `dnsPolicy`, `hostNetwork` and `dnsConfig` as API types, and
//! out come the nameservers, search domains and options, with the Warning events the kubelet
//! records when it trims them or has no cluster DNS to give.
//!
//! - `ClusterFirst` (and `ClusterFirstWithHostNet`): the cluster DNS only, the search list
//!   `<ns>.svc.<domain> svc.<domain> <domain>` followed by the host's, `options ndots:5`. A
//!   `hostNetwork` pod with `ClusterFirst` gets `Default` instead.
//! - `Default`: the host's resolv.conf as read.
//! - `None`: only what `dnsConfig` says.
//! - `dnsConfig` is appended to any of them: nameservers and searches without duplicates,
//!   options replacing same-named ones.
//! - Limits: 3 nameservers; 32 search domains, none over 253 characters, 2048 characters in all.

use std::net::IpAddr;

use k8s_openapi::api::core::v1::{Pod, PodDNSConfig};

/// The most nameservers a resolver reads (glibc's `MAXNS`), as the kubelet caps them.
pub const MAX_NAMESERVERS: usize = 3;
/// The most search domains the kubelet writes.
pub const MAX_SEARCH_DOMAINS: usize = 32;
/// The longest search line the kubelet writes, in characters.
pub const MAX_SEARCH_LINE_CHARS: usize = 2048;
/// The longest single search domain kept (a DNS subdomain's limit): some resolvers abort on
/// longer ones.
pub const MAX_SEARCH_DOMAIN_CHARS: usize = 253;
/// The options a cluster-first pod gets.
pub const CLUSTER_FIRST_OPTIONS: &[&str] = &["ndots:5"];
/// The reason of the event recorded when nameservers or search domains are trimmed.
pub const REASON_DNS_CONFIG_FORMING: &str = "DNSConfigForming";
/// The reason of the events recorded when a cluster-first pod falls back to the host's DNS.
pub const REASON_MISSING_CLUSTER_DNS: &str = "MissingClusterDNS";

/// A resolver configuration: what a resolv.conf holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResolverConfig {
    /// `nameserver` lines, in order.
    pub nameservers: Vec<String>,
    /// The `search` line's domains.
    pub searches: Vec<String>,
    /// The `options` line's entries (`ndots:5`, `edns0`, ...).
    pub options: Vec<String>,
}

impl ResolverConfig {
    /// The file's text, in the order container runtimes write it: search, nameservers, options.
    pub fn render(&self) -> String {
        let mut text = String::new();
        if !self.searches.is_empty() {
            text.push_str("search ");
            text.push_str(&self.searches.join(" "));
            text.push('\n');
        }
        for nameserver in &self.nameservers {
            text.push_str("nameserver ");
            text.push_str(nameserver);
            text.push('\n');
        }
        if !self.options.is_empty() {
            text.push_str("options ");
            text.push_str(&self.options.join(" "));
            text.push('\n');
        }
        text
    }
}

/// A resolv.conf read as the kubelet reads the host's: `nameserver` lines accumulate, the last
/// `search` line wins (trailing dots dropped, `.` skipped), `options` merge by name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ParsedResolvConf {
    /// What was understood.
    pub config: ResolverConfig,
    /// Lines that could not be understood (a `nameserver` without an address).
    pub errors: Vec<String>,
}

/// Parses resolv.conf text the way the kubelet parses the host's.
pub fn parse_resolv_conf(text: &str) -> ParsedResolvConf {
    let mut parsed = ParsedResolvConf::default();
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') || trimmed.starts_with(';') {
            continue;
        }
        let fields: Vec<&str> = trimmed.split_whitespace().collect();
        match fields.as_slice() {
            ["nameserver", address, ..] => parsed.config.nameservers.push(address.to_string()),
            ["nameserver"] => parsed.errors.push("nameserver list is empty".to_string()),
            ["search", domains @ ..] => {
                parsed.config.searches = domains
                    .iter()
                    .filter(|d| **d != ".")
                    .map(|d| d.trim_end_matches('.').to_string())
                    .collect();
            }
            ["options", options @ ..] => {
                for option in options {
                    set_option(&mut parsed.config.options, option);
                }
            }
            _ => {}
        }
    }
    parsed
}

/// Replaces the option of the same name (the part before `:`) or appends it.
fn set_option(options: &mut Vec<String>, option: &str) {
    let name = option_name(option);
    match options.iter_mut().find(|o| option_name(o) == name) {
        Some(existing) => *existing = option.to_string(),
        None => options.push(option.to_string()),
    }
}

fn option_name(option: &str) -> &str {
    option.split(':').next().unwrap_or(option)
}

/// What the node knows about DNS: the kubelet's `--cluster-dns`, `--cluster-domain` and
/// `--resolv-conf`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeDnsSettings {
    /// The cluster DNS Service's addresses; empty when none is configured.
    pub cluster_dns: Vec<IpAddr>,
    /// The cluster domain, `cluster.local` by default; empty for none.
    pub cluster_domain: String,
    /// The host's resolv.conf as parsed; `None` when the kubelet is told not to use one.
    pub host: Option<ResolverConfig>,
    /// The node's addresses, for the loopback nameservers used when there is no host file.
    pub node_ips: Vec<IpAddr>,
}

/// Which object a DNS event is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventSubject {
    /// The pod being configured.
    Pod,
    /// The node the kubelet runs.
    Node,
}

/// A Warning event the kubelet records while forming a pod's DNS configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsEvent {
    /// The object the event is recorded on.
    pub subject: EventSubject,
    /// The event's reason.
    pub reason: &'static str,
    /// The event's message.
    pub message: String,
}

/// A pod's DNS configuration and the events forming it raised.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodDns {
    /// What goes into the pod's resolv.conf.
    pub config: ResolverConfig,
    /// Warning events to record.
    pub events: Vec<DnsEvent>,
}

/// How the kubelet treats a pod's `dnsPolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PolicyKind {
    Cluster,
    Host,
    None,
}

fn policy_kind(dns_policy: Option<&str>, host_network: bool) -> PolicyKind {
    match dns_policy.unwrap_or("ClusterFirst") {
        "None" => PolicyKind::None,
        "ClusterFirstWithHostNet" => PolicyKind::Cluster,
        "ClusterFirst" if !host_network => PolicyKind::Cluster,
        "ClusterFirst" | "Default" => PolicyKind::Host,
        // The API server rejects other values; the kubelet falls back to cluster-first.
        _ => PolicyKind::Cluster,
    }
}

/// Forms a pod's resolv.conf as the kubelet does for its `dnsPolicy` and `dnsConfig`.
pub fn pod_dns(node: &NodeDnsSettings, pod: &Pod) -> PodDns {
    let spec = pod.spec.clone().unwrap_or_default();
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
    let mut events = Vec::new();
    let host = node.host.clone().unwrap_or_default();
    let mut kind = policy_kind(
        spec.dns_policy.as_deref(),
        spec.host_network.unwrap_or(false),
    );
    let mut config = match kind {
        PolicyKind::None => ResolverConfig::default(),
        _ => host.clone(),
    };
    if kind == PolicyKind::Cluster {
        if node.cluster_dns.is_empty() {
            let node_message = "kubelet does not have ClusterDNS IP configured and cannot create Pod using \"ClusterFirst\" policy. Falling back to \"Default\" policy.";
            events.push(DnsEvent {
                subject: EventSubject::Node,
                reason: REASON_MISSING_CLUSTER_DNS,
                message: node_message.to_string(),
            });
            events.push(DnsEvent {
                subject: EventSubject::Pod,
                reason: REASON_MISSING_CLUSTER_DNS,
                message: format!("pod: \"{}\". {node_message}", pod_label(pod)),
            });
            kind = PolicyKind::Host;
        } else {
            config.nameservers = node.cluster_dns.iter().map(ToString::to_string).collect();
            config.searches = cluster_searches(&node.cluster_domain, namespace, &host.searches);
            config.options = CLUSTER_FIRST_OPTIONS
                .iter()
                .map(|o| o.to_string())
                .collect();
        }
    }
    if kind == PolicyKind::Host && node.host.is_none() {
        // No host file: resolve on the local machine, as the resolver library does without
        // nameservers, and search nothing.
        config.nameservers = node
            .node_ips
            .iter()
            .map(|ip| if ip.is_ipv6() { "::1" } else { "127.0.0.1" }.to_string())
            .collect();
        if config.nameservers.is_empty() {
            config.nameservers.push("127.0.0.1".to_string());
        }
        config.searches = vec![".".to_string()];
    }
    if let Some(pod_config) = &spec.dns_config {
        append_pod_dns_config(&mut config, pod_config);
    }
    fit_limits(&mut config, &mut events);
    PodDns { config, events }
}

/// `name_namespace(uid)`, as the kubelet names pods in messages.
fn pod_label(pod: &Pod) -> String {
    format!(
        "{}_{}({})",
        pod.metadata.name.as_deref().unwrap_or_default(),
        pod.metadata.namespace.as_deref().unwrap_or_default(),
        pod.metadata.uid.as_deref().unwrap_or_default()
    )
}

fn cluster_searches(domain: &str, namespace: &str, host_searches: &[String]) -> Vec<String> {
    if domain.is_empty() {
        return host_searches.to_vec();
    }
    let mut searches = vec![
        format!("{namespace}.svc.{domain}"),
        format!("svc.{domain}"),
        domain.to_string(),
    ];
    searches.extend(host_searches.iter().cloned());
    without_duplicates(searches)
}

fn without_duplicates(items: Vec<String>) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    items
        .into_iter()
        .filter(|item| seen.insert(item.clone()))
        .collect()
}

fn append_pod_dns_config(config: &mut ResolverConfig, pod_config: &PodDNSConfig) {
    let mut nameservers = std::mem::take(&mut config.nameservers);
    nameservers.extend(pod_config.nameservers.iter().flatten().cloned());
    config.nameservers = without_duplicates(nameservers);
    let mut searches = std::mem::take(&mut config.searches);
    searches.extend(pod_config.searches.iter().flatten().cloned());
    config.searches = without_duplicates(searches);
    for option in pod_config.options.iter().flatten() {
        let name = option.name.clone().unwrap_or_default();
        let text = match option.value.as_deref() {
            Some(value) if !value.is_empty() => format!("{name}:{value}"),
            _ => name,
        };
        set_option(&mut config.options, &text);
    }
}

fn fit_limits(config: &mut ResolverConfig, events: &mut Vec<DnsEvent>) {
    if config.nameservers.len() > MAX_NAMESERVERS {
        config.nameservers.truncate(MAX_NAMESERVERS);
        events.push(DnsEvent {
            subject: EventSubject::Pod,
            reason: REASON_DNS_CONFIG_FORMING,
            message: format!(
                "Nameserver limits were exceeded, some nameservers have been omitted, the applied nameserver line is: {}",
                config.nameservers.join(" ")
            ),
        });
    }
    let mut exceeded = false;
    if config.searches.len() > MAX_SEARCH_DOMAINS {
        config.searches.truncate(MAX_SEARCH_DOMAINS);
        exceeded = true;
    }
    let before = config.searches.len();
    config
        .searches
        .retain(|domain| domain.len() <= MAX_SEARCH_DOMAIN_CHARS);
    exceeded |= config.searches.len() != before;
    let line_length = |searches: &[String]| {
        searches.iter().map(String::len).sum::<usize>() + searches.len().saturating_sub(1)
    };
    while line_length(&config.searches) > MAX_SEARCH_LINE_CHARS {
        config.searches.pop();
        exceeded = true;
    }
    if exceeded {
        events.push(DnsEvent {
            subject: EventSubject::Pod,
            reason: REASON_DNS_CONFIG_FORMING,
            message: format!(
                "Search Line limits were exceeded, some search paths have been omitted, the applied search line is: {}",
                config.searches.join(" ")
            ),
        });
    }
}

#[cfg(test)]
#[path = "resolv_tests.rs"]
mod tests;
