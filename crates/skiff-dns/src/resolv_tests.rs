//! Table tests of pod DNS forming, after the kubelet's own cases.

use super::*;
use serde_json::json;

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// (text, nameservers, searches, options, has errors)
type ParseCase = (
    &'static str,
    &'static [&'static str],
    &'static [&'static str],
    &'static [&'static str],
    bool,
);

/// (description, searches given, searches kept, events)
type SearchCase = (&'static str, Vec<String>, Vec<String>, Vec<DnsEvent>);

#[test]
fn parses_resolv_conf_as_the_kubelet_does() {
    // (text, nameservers, searches, options, has errors)
    let cases: &[ParseCase] = &[
        ("", &[], &[], &[], false),
        (" ", &[], &[], &[], false),
        ("\n", &[], &[], &[], false),
        ("\t\n\t", &[], &[], &[], false),
        ("#comment\n", &[], &[], &[], false),
        (" #comment\n", &[], &[], &[], false),
        ("#comment\n#comment", &[], &[], &[], false),
        ("#comment\nnameserver", &[], &[], &[], true),
        ("#comment\nnameserver\nsearch", &[], &[], &[], true),
        ("#comment\nnameserver 1.2.3.4\nsearch", &["1.2.3.4"], &[], &[], false),
        ("nameserver 1.2.3.4", &["1.2.3.4"], &[], &[], false),
        (" nameserver 1.2.3.4", &["1.2.3.4"], &[], &[], false),
        ("\tnameserver 1.2.3.4", &["1.2.3.4"], &[], &[], false),
        ("nameserver\t1.2.3.4", &["1.2.3.4"], &[], &[], false),
        ("nameserver \t 1.2.3.4", &["1.2.3.4"], &[], &[], false),
        ("nameserver 1.2.3.4\nnameserver 5.6.7.8", &["1.2.3.4", "5.6.7.8"], &[], &[], false),
        ("nameserver 1.2.3.4 #comment", &["1.2.3.4"], &[], &[], false),
        ("search ", &[], &[], &[], false),
        ("search foo", &[], &["foo"], &[], false),
        ("search foo bar", &[], &["foo", "bar"], &[], false),
        ("search foo. bar", &[], &["foo", "bar"], &[], false),
        ("search foo . bar", &[], &["foo", "bar"], &[], false),
        ("search foo bar bat\n", &[], &["foo", "bar", "bat"], &[], false),
        ("search foo\nsearch bar", &[], &["bar"], &[], false),
        ("nameserver 1.2.3.4\nsearch foo bar", &["1.2.3.4"], &["foo", "bar"], &[], false),
        (
            "nameserver 1.2.3.4\nsearch foo\nnameserver 5.6.7.8\nsearch bar",
            &["1.2.3.4", "5.6.7.8"],
            &["bar"],
            &[],
            false,
        ),
        ("#comment\nnameserver 1.2.3.4\n#comment\nsearch foo\ncomment", &["1.2.3.4"], &["foo"], &[], false),
        ("options ", &[], &[], &[], false),
        ("options ndots:5 attempts:2", &[], &[], &["ndots:5", "attempts:2"], false),
        ("options ndots:1\noptions ndots:5 attempts:3", &[], &[], &["ndots:5", "attempts:3"], false),
        (
            "nameserver 1.2.3.4\nsearch foo\nnameserver 5.6.7.8\nsearch bar\noptions ndots:5 attempts:4",
            &["1.2.3.4", "5.6.7.8"],
            &["bar"],
            &["ndots:5", "attempts:4"],
            false,
        ),
    ];
    for (text, nameservers, searches, options, has_errors) in cases {
        let parsed = parse_resolv_conf(text);
        assert_eq!(
            !parsed.errors.is_empty(),
            *has_errors,
            "{text:?}: errors {:?}",
            parsed.errors
        );
        if !has_errors {
            assert_eq!(
                parsed.config.nameservers,
                strings(nameservers),
                "{text:?}: nameservers"
            );
            assert_eq!(
                parsed.config.searches,
                strings(searches),
                "{text:?}: searches"
            );
            assert_eq!(parsed.config.options, strings(options), "{text:?}: options");
        }
    }
}

fn search_event(line: &str) -> DnsEvent {
    DnsEvent {
        subject: EventSubject::Pod,
        reason: REASON_DNS_CONFIG_FORMING,
        message: format!(
            "Search Line limits were exceeded, some search paths have been omitted, the applied search line is: {line}"
        ),
    }
}

#[test]
fn search_lists_fit_the_limits_with_the_kubelet_event() {
    // 2048 = 128 + 15 * 127 + 15 separators
    let mut list_2048: Vec<String> = vec!["A".repeat(128)];
    list_2048.extend((0..15).map(|_| "A".repeat(127)));
    let numbered: Vec<String> = ["testNS.svc.TEST", "svc.TEST", "TEST"]
        .iter()
        .map(|s| s.to_string())
        .chain((4..=32).map(|n| n.to_string()))
        .collect();
    let mut numbered_33 = numbered.clone();
    numbered_33.push("33".to_string());
    let base = strings(&["testNS.svc.TEST", "svc.TEST", "TEST", "AAA", "BBB"]);
    let with_long = strings(&[
        "testNS.svc.TEST",
        "svc.TEST",
        "TEST",
        "AAA",
        &"B".repeat(256),
        "BBB",
    ]);
    let mut list_2050 = list_2048.clone();
    list_2050.push("B".to_string());
    let cases: Vec<SearchCase> = vec![
        (
            "3 search paths",
            base[..3].to_vec(),
            base[..3].to_vec(),
            vec![],
        ),
        ("5 search paths", base.clone(), base.clone(), vec![]),
        (
            "a search path over 253 characters",
            with_long,
            base.clone(),
            vec![search_event("testNS.svc.TEST svc.TEST TEST AAA BBB")],
        ),
        (
            "2048 characters",
            list_2048.clone(),
            list_2048.clone(),
            vec![],
        ),
        (
            "2050 characters",
            list_2050,
            list_2048.clone(),
            vec![search_event(&list_2048.join(" "))],
        ),
        (
            "32 search paths",
            numbered.clone(),
            numbered.clone(),
            vec![],
        ),
        (
            "33 search paths",
            numbered_33,
            numbered.clone(),
            vec![search_event(&numbered.join(" "))],
        ),
    ];
    for (description, searches, expected, expected_events) in cases {
        let mut config = ResolverConfig {
            searches,
            ..ResolverConfig::default()
        };
        let mut events = Vec::new();
        fit_limits(&mut config, &mut events);
        assert_eq!(config.searches, expected, "{description}");
        assert_eq!(events, expected_events, "{description}");
    }
}

#[test]
fn nameservers_are_capped_at_three_with_the_kubelet_event() {
    let cases: &[(&[&str], &[&str], bool)] = &[
        (&["127.0.0.1"], &["127.0.0.1"], false),
        (
            &["127.0.0.1", "198.18.255.10", "8.8.8.8"],
            &["127.0.0.1", "198.18.255.10", "8.8.8.8"],
            false,
        ),
        (
            &["127.0.0.1", "198.18.255.10", "8.8.8.8", "1.2.3.4"],
            &["127.0.0.1", "198.18.255.10", "8.8.8.8"],
            true,
        ),
    ];
    for (given, expected, event) in cases {
        let mut config = ResolverConfig {
            nameservers: strings(given),
            ..ResolverConfig::default()
        };
        let mut events = Vec::new();
        fit_limits(&mut config, &mut events);
        assert_eq!(config.nameservers, strings(expected));
        if *event {
            assert_eq!(
                events,
                [DnsEvent {
                    subject: EventSubject::Pod,
                    reason: REASON_DNS_CONFIG_FORMING,
                    message: "Nameserver limits were exceeded, some nameservers have been omitted, the applied nameserver line is: 127.0.0.1 198.18.255.10 8.8.8.8".to_string(),
                }]
            );
        } else {
            assert!(events.is_empty(), "{given:?}: {events:?}");
        }
    }
}

#[test]
fn pod_options_merge_over_existing_ones() {
    let cases: Vec<(serde_json::Value, &[&str])> = vec![
        (json!([]), &["ndots:5", "debug"]),
        (
            json!([{"name": "single-request"}, {"name": "attempts", "value": "3"}]),
            &["ndots:5", "debug", "single-request", "attempts:3"],
        ),
        (
            json!([{"name": "ndots", "value": "3"}, {"name": "debug"}, {"name": "single-request"},
                {"name": "attempts", "value": "3"}]),
            &["ndots:3", "debug", "single-request", "attempts:3"],
        ),
    ];
    for (options, expected) in cases {
        let mut config = ResolverConfig {
            options: strings(&["ndots:5", "debug"]),
            ..ResolverConfig::default()
        };
        let pod_config: PodDNSConfig = serde_json::from_value(json!({"options": options})).unwrap();
        append_pod_dns_config(&mut config, &pod_config);
        assert_eq!(config.options, strings(expected));
    }
}

#[test]
fn policies_pick_cluster_host_or_none() {
    let cases = [
        (Some("ClusterFirst"), false, PolicyKind::Cluster),
        (None, false, PolicyKind::Cluster),
        (Some("ClusterFirstWithHostNet"), true, PolicyKind::Cluster),
        (Some("ClusterFirstWithHostNet"), false, PolicyKind::Cluster),
        (Some("Default"), false, PolicyKind::Host),
        (Some("Default"), true, PolicyKind::Host),
        (Some("ClusterFirst"), true, PolicyKind::Host),
        (Some("None"), false, PolicyKind::None),
        (Some("invalidPolicy"), false, PolicyKind::Cluster),
    ];
    for (policy, host_network, expected) in cases {
        assert_eq!(
            policy_kind(policy, host_network),
            expected,
            "{policy:?} hostNetwork={host_network}"
        );
    }
}

fn node(cluster_dns: &[&str], host: Option<&str>) -> NodeDnsSettings {
    NodeDnsSettings {
        cluster_dns: cluster_dns.iter().map(|ip| ip.parse().unwrap()).collect(),
        cluster_domain: "cluster.local".to_string(),
        host: host.map(|text| parse_resolv_conf(text).config),
        node_ips: vec!["198.19.255.10".parse().unwrap()],
    }
}

fn pod(spec: serde_json::Value) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": "web-1", "namespace": "shop", "uid": "u-1"},
        "spec": spec,
    }))
    .unwrap()
}

const HOST: &str = "nameserver 198.19.255.1\nnameserver 198.19.255.2\nsearch corp.example lab.example\noptions edns0 timeout:2\n";

#[test]
fn pods_get_the_resolv_conf_their_policy_asks_for() {
    let cases: Vec<(&str, NodeDnsSettings, serde_json::Value, &str)> = vec![
        (
            "ClusterFirst: cluster DNS, cluster searches then the host's, ndots:5",
            node(&["198.19.0.10"], Some(HOST)),
            json!({"dnsPolicy": "ClusterFirst"}),
            "search shop.svc.cluster.local svc.cluster.local cluster.local corp.example lab.example\nnameserver 198.19.0.10\noptions ndots:5\n",
        ),
        (
            "ClusterFirst on the host network falls back to the host's file",
            node(&["198.19.0.10"], Some(HOST)),
            json!({"dnsPolicy": "ClusterFirst", "hostNetwork": true}),
            "search corp.example lab.example\nnameserver 198.19.255.1\nnameserver 198.19.255.2\noptions edns0 timeout:2\n",
        ),
        (
            "ClusterFirstWithHostNet keeps cluster DNS on the host network",
            node(&["198.19.0.10"], Some(HOST)),
            json!({"dnsPolicy": "ClusterFirstWithHostNet", "hostNetwork": true}),
            "search shop.svc.cluster.local svc.cluster.local cluster.local corp.example lab.example\nnameserver 198.19.0.10\noptions ndots:5\n",
        ),
        (
            "Default: the host's file",
            node(&["198.19.0.10"], Some(HOST)),
            json!({"dnsPolicy": "Default"}),
            "search corp.example lab.example\nnameserver 198.19.255.1\nnameserver 198.19.255.2\noptions edns0 timeout:2\n",
        ),
        (
            "Default without a host file: loopback and an empty search",
            node(&["198.19.0.10"], None),
            json!({"dnsPolicy": "Default"}),
            "search .\nnameserver 127.0.0.1\n",
        ),
        (
            "None: only dnsConfig",
            node(&["198.19.0.10"], Some(HOST)),
            json!({"dnsPolicy": "None", "dnsConfig": {
                "nameservers": ["203.0.113.1", "203.0.113.1"],
                "searches": ["a.example", "b.example"],
                "options": [{"name": "ndots", "value": "2"}, {"name": "edns0"}]}}),
            "search a.example b.example\nnameserver 203.0.113.1\noptions ndots:2 edns0\n",
        ),
        (
            "ClusterFirst with dnsConfig appended",
            node(&["198.19.0.10"], Some("search cluster.local")),
            json!({"dnsConfig": {
                "nameservers": ["203.0.113.1"],
                "searches": ["extra.example", "svc.cluster.local"],
                "options": [{"name": "ndots", "value": "1"}, {"name": "single-request"}]}}),
            "search shop.svc.cluster.local svc.cluster.local cluster.local extra.example\nnameserver 198.19.0.10\nnameserver 203.0.113.1\noptions ndots:1 single-request\n",
        ),
    ];
    for (description, node, spec, expected) in cases {
        let formed = pod_dns(&node, &pod(spec));
        assert_eq!(formed.config.render(), expected, "{description}");
        assert!(
            formed.events.is_empty(),
            "{description}: {:?}",
            formed.events
        );
    }
}

#[test]
fn cluster_first_without_cluster_dns_falls_back_with_events() {
    let formed = pod_dns(&node(&[], Some(HOST)), &pod(json!({})));
    assert_eq!(
        formed.config.nameservers,
        strings(&["198.19.255.1", "198.19.255.2"])
    );
    assert_eq!(
        formed.config.searches,
        strings(&["corp.example", "lab.example"])
    );
    let message = "kubelet does not have ClusterDNS IP configured and cannot create Pod using \"ClusterFirst\" policy. Falling back to \"Default\" policy.";
    assert_eq!(
        formed.events,
        [
            DnsEvent {
                subject: EventSubject::Node,
                reason: REASON_MISSING_CLUSTER_DNS,
                message: message.to_string(),
            },
            DnsEvent {
                subject: EventSubject::Pod,
                reason: REASON_MISSING_CLUSTER_DNS,
                message: format!("pod: \"web-1_shop(u-1)\". {message}"),
            },
        ]
    );
}

#[test]
fn too_many_nameservers_from_dns_config_are_trimmed_with_an_event() {
    let formed = pod_dns(
        &node(&["198.19.0.10"], Some(HOST)),
        &pod(json!({"dnsConfig": {"nameservers": ["1.1.1.1", "2.2.2.2", "3.3.3.3"]}})),
    );
    assert_eq!(
        formed.config.nameservers,
        strings(&["198.19.0.10", "1.1.1.1", "2.2.2.2"])
    );
    assert_eq!(formed.events.len(), 1);
    assert_eq!(formed.events[0].reason, REASON_DNS_CONFIG_FORMING);
}
