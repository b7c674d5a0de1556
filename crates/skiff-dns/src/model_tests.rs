//! Table tests of the cluster zone's answers.

use super::*;
use serde_json::json;

fn service(value: serde_json::Value) -> Service {
    serde_json::from_value(value).expect("a valid Service")
}

fn slice(value: serde_json::Value) -> EndpointSlice {
    serde_json::from_value(value).expect("a valid EndpointSlice")
}

fn name(text: &str) -> Name {
    Name::from_ascii(text).expect("a valid name")
}

/// A zone with the Services and slices the table tests query:
/// - `web` (ClusterIP 198.19.0.20, ports http/TCP 80 and dns/UDP 53) with two ready pods;
/// - `db` (headless, port pg/TCP 5432) with pods `db-0` (ready, hostname) and one not ready;
/// - `loose` (headless, publishNotReadyAddresses) with one not-ready pod;
/// - `ext` (ExternalName example.com) and `alias` (ExternalName to web's cluster name);
/// - `empty` (headless without endpoints); `dual` (IPv4 and IPv6 cluster IPs).
fn zone() -> ClusterZone {
    let services = [
        service(json!({"metadata": {"name": "web", "namespace": "default"},
            "spec": {"clusterIP": "198.19.0.20", "clusterIPs": ["198.19.0.20"], "ports": [
                {"name": "http", "port": 80, "protocol": "TCP"},
                {"name": "dns", "port": 53, "protocol": "UDP"}]}})),
        service(json!({"metadata": {"name": "db", "namespace": "data"},
            "spec": {"clusterIP": "None", "ports": [{"name": "pg", "port": 5432}]}})),
        service(json!({"metadata": {"name": "loose", "namespace": "data"},
            "spec": {"clusterIP": "None", "publishNotReadyAddresses": true}})),
        service(json!({"metadata": {"name": "ext", "namespace": "default"},
            "spec": {"type": "ExternalName", "externalName": "example.com"}})),
        service(
            json!({"metadata": {"name": "alias", "namespace": "default"},
            "spec": {"type": "ExternalName", "externalName": "web.default.svc.cluster.local"}}),
        ),
        service(
            json!({"metadata": {"name": "empty", "namespace": "default"},
            "spec": {"clusterIP": "None"}}),
        ),
        service(json!({"metadata": {"name": "dual", "namespace": "default"},
            "spec": {"clusterIP": "198.19.0.30", "clusterIPs": ["198.19.0.30", "fd00:43::30"],
                "ports": [{"port": 443}]}})),
    ];
    let slices = [
        slice(
            json!({"metadata": {"name": "web-abc", "namespace": "default",
                "labels": {"kubernetes.io/service-name": "web"}},
            "addressType": "IPv4",
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
            "endpoints": [
                {"addresses": ["198.18.0.5"], "conditions": {"ready": true}},
                {"addresses": ["198.18.0.6"], "conditions": {"ready": true}}]}),
        ),
        slice(json!({"metadata": {"name": "db-xyz", "namespace": "data",
                "labels": {"kubernetes.io/service-name": "db"}},
            "addressType": "IPv4",
            "ports": [{"name": "pg", "port": 5432, "protocol": "TCP"}],
            "endpoints": [
                {"addresses": ["198.18.0.7"], "hostname": "db-0", "conditions": {"ready": true}},
                {"addresses": ["198.18.0.8"], "hostname": "db-1", "conditions": {"ready": false}}]})),
        slice(json!({"metadata": {"name": "loose-1", "namespace": "data",
                "labels": {"kubernetes.io/service-name": "loose"}},
            "addressType": "IPv4",
            "endpoints": [{"addresses": ["198.18.0.9"], "conditions": {"ready": false}}]})),
    ];
    let mut zone = ClusterZone::from_snapshot("cluster.local", &services, &slices).unwrap();
    zone.apply_namespace("quiet");
    zone.set_serial(1_700_000_000);
    zone
}

fn texts(records: &[Record]) -> Vec<String> {
    let mut texts: Vec<String> = records.iter().map(ToString::to_string).collect();
    texts.sort();
    texts
}

const SOA_TEXT: &str = "cluster.local. 5 IN SOA ns.dns.cluster.local. hostmaster.cluster.local. 1700000000 7200 1800 86400 5";

#[test]
fn answers_table() {
    struct Case {
        question: &'static str,
        record_type: RecordType,
        code: ResponseCode,
        answers: &'static [&'static str],
        additionals: &'static [&'static str],
    }
    let cases = [
        Case {
            question: "web.default.svc.cluster.local.",
            record_type: RecordType::A,
            code: ResponseCode::NoError,
            answers: &["web.default.svc.cluster.local. 5 IN A 198.19.0.20"],
            additionals: &[],
        },
        Case {
            question: "WEB.Default.SVC.cluster.local.",
            record_type: RecordType::A,
            code: ResponseCode::NoError,
            answers: &["web.default.svc.cluster.local. 5 IN A 198.19.0.20"],
            additionals: &[],
        },
        Case {
            question: "dual.default.svc.cluster.local.",
            record_type: RecordType::AAAA,
            code: ResponseCode::NoError,
            answers: &["dual.default.svc.cluster.local. 5 IN AAAA fd00:43::30"],
            additionals: &[],
        },
        Case {
            question: "db.data.svc.cluster.local.",
            record_type: RecordType::A,
            code: ResponseCode::NoError,
            answers: &["db.data.svc.cluster.local. 5 IN A 198.18.0.7"],
            additionals: &[],
        },
        Case {
            question: "loose.data.svc.cluster.local.",
            record_type: RecordType::A,
            code: ResponseCode::NoError,
            answers: &["loose.data.svc.cluster.local. 5 IN A 198.18.0.9"],
            additionals: &[],
        },
        Case {
            question: "db-0.db.data.svc.cluster.local.",
            record_type: RecordType::A,
            code: ResponseCode::NoError,
            answers: &["db-0.db.data.svc.cluster.local. 5 IN A 198.18.0.7"],
            additionals: &[],
        },
        Case {
            question: "db-1.db.data.svc.cluster.local.",
            record_type: RecordType::A,
            code: ResponseCode::NXDomain,
            answers: &[],
            additionals: &[],
        },
        Case {
            question: "198-18-0-5.web.default.svc.cluster.local.",
            record_type: RecordType::A,
            code: ResponseCode::NoError,
            answers: &["198-18-0-5.web.default.svc.cluster.local. 5 IN A 198.18.0.5"],
            additionals: &[],
        },
        Case {
            question: "_http._tcp.web.default.svc.cluster.local.",
            record_type: RecordType::SRV,
            code: ResponseCode::NoError,
            answers: &["_http._tcp.web.default.svc.cluster.local. 5 IN SRV 0 100 80 web.default.svc.cluster.local."],
            additionals: &["web.default.svc.cluster.local. 5 IN A 198.19.0.20"],
        },
        Case {
            question: "_dns._udp.web.default.svc.cluster.local.",
            record_type: RecordType::SRV,
            code: ResponseCode::NoError,
            answers: &["_dns._udp.web.default.svc.cluster.local. 5 IN SRV 0 100 53 web.default.svc.cluster.local."],
            additionals: &["web.default.svc.cluster.local. 5 IN A 198.19.0.20"],
        },
        Case {
            question: "_dns._tcp.web.default.svc.cluster.local.",
            record_type: RecordType::SRV,
            code: ResponseCode::NXDomain,
            answers: &[],
            additionals: &[],
        },
        Case {
            question: "_pg._tcp.db.data.svc.cluster.local.",
            record_type: RecordType::SRV,
            code: ResponseCode::NoError,
            answers: &["_pg._tcp.db.data.svc.cluster.local. 5 IN SRV 0 100 5432 db-0.db.data.svc.cluster.local."],
            additionals: &["db-0.db.data.svc.cluster.local. 5 IN A 198.18.0.7"],
        },
        Case {
            question: "web.default.svc.cluster.local.",
            record_type: RecordType::SRV,
            code: ResponseCode::NoError,
            answers: &[
                "web.default.svc.cluster.local. 5 IN SRV 0 50 53 web.default.svc.cluster.local.",
                "web.default.svc.cluster.local. 5 IN SRV 0 50 80 web.default.svc.cluster.local.",
            ],
            additionals: &["web.default.svc.cluster.local. 5 IN A 198.19.0.20"],
        },
        Case {
            question: "ext.default.svc.cluster.local.",
            record_type: RecordType::A,
            code: ResponseCode::NoError,
            answers: &["ext.default.svc.cluster.local. 5 IN CNAME example.com."],
            additionals: &[],
        },
        Case {
            question: "alias.default.svc.cluster.local.",
            record_type: RecordType::A,
            code: ResponseCode::NoError,
            answers: &[
                "alias.default.svc.cluster.local. 5 IN CNAME web.default.svc.cluster.local.",
                "web.default.svc.cluster.local. 5 IN A 198.19.0.20",
            ],
            additionals: &[],
        },
        Case {
            question: "198-18-0-99.default.pod.cluster.local.",
            record_type: RecordType::A,
            code: ResponseCode::NoError,
            answers: &["198-18-0-99.default.pod.cluster.local. 5 IN A 198.18.0.99"],
            additionals: &[],
        },
        Case {
            question: "fd00--5.default.pod.cluster.local.",
            record_type: RecordType::AAAA,
            code: ResponseCode::NoError,
            answers: &["fd00--5.default.pod.cluster.local. 5 IN AAAA fd00::5"],
            additionals: &[],
        },
        Case {
            question: "198-18-0-3.quiet.pod.cluster.local.",
            record_type: RecordType::A,
            code: ResponseCode::NoError,
            answers: &["198-18-0-3.quiet.pod.cluster.local. 5 IN A 198.18.0.3"],
            additionals: &[],
        },
        Case {
            question: "198-18-0-3.nowhere.pod.cluster.local.",
            record_type: RecordType::A,
            code: ResponseCode::NXDomain,
            answers: &[],
            additionals: &[],
        },
        Case {
            question: "quiet.svc.cluster.local.",
            record_type: RecordType::A,
            code: ResponseCode::NoError,
            answers: &[],
            additionals: &[],
        },
        Case {
            question: "198-18-0.default.pod.cluster.local.",
            record_type: RecordType::A,
            code: ResponseCode::NXDomain,
            answers: &[],
            additionals: &[],
        },
        Case {
            question: "nope.default.svc.cluster.local.",
            record_type: RecordType::A,
            code: ResponseCode::NXDomain,
            answers: &[],
            additionals: &[],
        },
        Case {
            question: "empty.default.svc.cluster.local.",
            record_type: RecordType::A,
            code: ResponseCode::NXDomain,
            answers: &[],
            additionals: &[],
        },
        Case {
            question: "web.default.svc.cluster.local.default.svc.cluster.local.",
            record_type: RecordType::A,
            code: ResponseCode::NXDomain,
            answers: &[],
            additionals: &[],
        },
        Case {
            question: "web.nowhere.svc.cluster.local.",
            record_type: RecordType::A,
            code: ResponseCode::NXDomain,
            answers: &[],
            additionals: &[],
        },
        Case {
            question: "cluster.local.",
            record_type: RecordType::SOA,
            code: ResponseCode::NoError,
            answers: &[SOA_TEXT],
            additionals: &[],
        },
        Case {
            question: "cluster.local.",
            record_type: RecordType::NS,
            code: ResponseCode::NoError,
            answers: &["cluster.local. 5 IN NS ns.dns.cluster.local."],
            additionals: &[],
        },
        Case {
            question: "dns-version.cluster.local.",
            record_type: RecordType::TXT,
            code: ResponseCode::NoError,
            answers: &["dns-version.cluster.local. 5 IN TXT 1.1.0"],
            additionals: &[],
        },
    ];
    let zone = zone();
    for case in cases {
        let answer = zone.answer(&name(case.question), case.record_type);
        let label = format!("{} {}", case.question, case.record_type);
        assert_eq!(answer.response_code, case.code, "{label}: response code");
        assert_eq!(texts(&answer.answers), case.answers, "{label}: answers");
        assert_eq!(
            texts(&answer.additionals),
            case.additionals,
            "{label}: additionals"
        );
        if case.code == ResponseCode::NXDomain {
            assert_eq!(
                texts(&answer.authorities),
                [SOA_TEXT],
                "{label}: SOA on NXDOMAIN"
            );
        }
    }
}

#[test]
fn existing_names_without_the_asked_type_are_nodata_with_the_soa() {
    let zone = zone();
    for (question, record_type) in [
        ("web.default.svc.cluster.local.", RecordType::AAAA),
        ("web.default.svc.cluster.local.", RecordType::TXT),
        ("198-18-0-99.default.pod.cluster.local.", RecordType::AAAA),
        ("default.svc.cluster.local.", RecordType::A),
        ("svc.cluster.local.", RecordType::A),
        ("cluster.local.", RecordType::A),
    ] {
        let answer = zone.answer(&name(question), record_type);
        assert_eq!(
            answer.response_code,
            ResponseCode::NoError,
            "{question} {record_type}"
        );
        assert!(
            answer.answers.is_empty(),
            "{question} {record_type}: no answers"
        );
        assert_eq!(
            texts(&answer.authorities),
            [SOA_TEXT],
            "{question} {record_type}"
        );
    }
}

#[test]
fn names_outside_the_zone_and_dangling_aliases_are_nxdomain() {
    let mut zone = zone();
    let outside = zone.answer(&name("example.com."), RecordType::A);
    assert_eq!(outside.response_code, ResponseCode::NXDomain);
    let root = zone.answer(&Name::root(), RecordType::A);
    assert_eq!(root.response_code, ResponseCode::NXDomain);

    zone.apply_service(&service(
        json!({"metadata": {"name": "dangling", "namespace": "default"},
        "spec": {"type": "ExternalName", "externalName": "gone.default.svc.cluster.local"}}),
    ));
    let dangling = zone.answer(&name("dangling.default.svc.cluster.local."), RecordType::A);
    assert_eq!(
        dangling.response_code,
        ResponseCode::NXDomain,
        "the chain ends nowhere"
    );
    assert_eq!(
        texts(&dangling.answers),
        ["dangling.default.svc.cluster.local. 5 IN CNAME gone.default.svc.cluster.local."]
    );
    assert_eq!(texts(&dangling.authorities), [SOA_TEXT]);

    zone.apply_service(&service(
        json!({"metadata": {"name": "loop", "namespace": "default"},
        "spec": {"type": "ExternalName", "externalName": "loop.default.svc.cluster.local"}}),
    ));
    let looped = zone.answer(&name("loop.default.svc.cluster.local."), RecordType::A);
    assert_eq!(
        looped.answers.len(),
        MAX_CNAME_CHAIN,
        "a CNAME loop stops after {MAX_CNAME_CHAIN} hops"
    );
}

#[test]
fn an_external_name_leaves_its_target_to_the_server() {
    let answer = zone().answer(&name("ext.default.svc.cluster.local."), RecordType::A);
    assert_eq!(answer.external_target, Some(name("example.com.")));
    let cname_only = zone().answer(&name("ext.default.svc.cluster.local."), RecordType::CNAME);
    assert_eq!(
        cname_only.external_target, None,
        "a CNAME question needs nothing more"
    );
}

#[test]
fn headless_services_answer_every_ready_endpoint_and_share_srv_weight() {
    let mut zone = zone();
    zone.apply_endpoint_slice(&slice(
        json!({"metadata": {"name": "db-xyz", "namespace": "data",
            "labels": {"kubernetes.io/service-name": "db"}},
        "addressType": "IPv4",
        "ports": [{"name": "pg", "port": 5432, "protocol": "TCP"}],
        "endpoints": [
            {"addresses": ["198.18.0.7"], "hostname": "db-0", "conditions": {"ready": true}},
            {"addresses": ["198.18.0.8"], "hostname": "db-1"},
            {"addresses": ["198.18.0.10"], "hostname": "db-2", "conditions": {"ready": true}}]}),
    ));
    let a = zone.answer(&name("db.data.svc.cluster.local."), RecordType::A);
    assert_eq!(
        texts(&a.answers),
        [
            "db.data.svc.cluster.local. 5 IN A 198.18.0.10",
            "db.data.svc.cluster.local. 5 IN A 198.18.0.7",
            "db.data.svc.cluster.local. 5 IN A 198.18.0.8",
        ]
    );
    let srv = zone.answer(
        &name("_pg._tcp.db.data.svc.cluster.local."),
        RecordType::SRV,
    );
    assert_eq!(
        texts(&srv.answers),
        [
            "_pg._tcp.db.data.svc.cluster.local. 5 IN SRV 0 33 5432 db-0.db.data.svc.cluster.local.",
            "_pg._tcp.db.data.svc.cluster.local. 5 IN SRV 0 33 5432 db-1.db.data.svc.cluster.local.",
            "_pg._tcp.db.data.svc.cluster.local. 5 IN SRV 0 33 5432 db-2.db.data.svc.cluster.local.",
        ]
    );
    assert_eq!(srv.additionals.len(), 3, "one address per target");
}

#[test]
fn reverse_lookups_name_services_then_endpoints_and_leave_others_upstream() {
    let zone = zone();
    let found = |question: &str| match zone.answer_reverse(&name(question)) {
        ReverseAnswer::Found(answer) => texts(&answer.answers),
        ReverseAnswer::NotInCluster => panic!("{question} should be a cluster address"),
    };
    assert_eq!(
        found("20.0.19.198.in-addr.arpa."),
        ["20.0.19.198.in-addr.arpa. 5 IN PTR web.default.svc.cluster.local."]
    );
    assert_eq!(
        found("7.0.18.198.in-addr.arpa."),
        ["7.0.18.198.in-addr.arpa. 5 IN PTR db-0.db.data.svc.cluster.local."]
    );
    assert_eq!(
        found("5.0.18.198.in-addr.arpa."),
        ["5.0.18.198.in-addr.arpa. 5 IN PTR 198-18-0-5.web.default.svc.cluster.local."]
    );
    let v6: Name = IpAddr::V6("fd00:43::30".parse().unwrap()).into();
    assert_eq!(
        found(&v6.to_string()),
        [format!("{v6} 5 IN PTR dual.default.svc.cluster.local.")]
    );
    for outside in [
        "8.0.18.198.in-addr.arpa.", // not ready
        "1.1.168.192.in-addr.arpa.",
        "0.18.198.in-addr.arpa.",
    ] {
        assert_eq!(
            zone.answer_reverse(&name(outside)),
            ReverseAnswer::NotInCluster,
            "{outside}"
        );
    }
}

#[test]
fn updates_apply_one_object_at_a_time() {
    let mut zone = zone();
    let web = name("web.default.svc.cluster.local.");
    // The Service moves to another cluster IP: the old PTR goes, the new one comes.
    zone.apply_service(&service(
        json!({"metadata": {"name": "web", "namespace": "default"},
        "spec": {"clusterIP": "198.19.0.21", "ports": [{"name": "http", "port": 80}]}}),
    ));
    assert_eq!(
        texts(&zone.answer(&web, RecordType::A).answers),
        ["web.default.svc.cluster.local. 5 IN A 198.19.0.21"]
    );
    assert_eq!(
        zone.answer_reverse(&name("20.0.19.198.in-addr.arpa.")),
        ReverseAnswer::NotInCluster
    );
    assert!(matches!(
        zone.answer_reverse(&name("21.0.19.198.in-addr.arpa.")),
        ReverseAnswer::Found(_)
    ));

    // A second slice for the headless Service adds its endpoints; deleting it removes them.
    let db = name("db.data.svc.cluster.local.");
    zone.apply_endpoint_slice(&slice(
        json!({"metadata": {"name": "db-second", "namespace": "data",
            "labels": {"kubernetes.io/service-name": "db"}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": ["198.18.1.3"]}]}),
    ));
    assert_eq!(zone.answer(&db, RecordType::A).answers.len(), 2);
    zone.delete_endpoint_slice("data", "db-second");
    assert_eq!(
        texts(&zone.answer(&db, RecordType::A).answers),
        ["db.data.svc.cluster.local. 5 IN A 198.18.0.7"]
    );
    assert_eq!(
        zone.answer_reverse(&name("3.1.18.198.in-addr.arpa.")),
        ReverseAnswer::NotInCluster
    );

    // Deleting the Service makes its name and its namespace (now empty of Services) vanish.
    zone.delete_service("default", "web");
    for gone in [
        "web.default.svc.cluster.local.",
        "_http._tcp.web.default.svc.cluster.local.",
    ] {
        assert_eq!(
            zone.answer(&name(gone), RecordType::A).response_code,
            ResponseCode::NXDomain,
            "{gone}"
        );
    }
    for service_name in ["ext", "alias", "empty", "dual"] {
        zone.delete_service("default", service_name);
    }
    assert_eq!(
        zone.answer(&name("default.svc.cluster.local."), RecordType::A)
            .response_code,
        ResponseCode::NXDomain
    );
    assert_eq!(zone.size().services, 2);

    // A Namespace object keeps the namespace's names existing without Services.
    zone.apply_namespace("default");
    let namespace = zone.answer(&name("default.svc.cluster.local."), RecordType::A);
    assert_eq!(namespace.response_code, ResponseCode::NoError);
    assert!(namespace.answers.is_empty());
    zone.delete_namespace("quiet");
    assert_eq!(
        zone.answer(&name("198-18-0-3.quiet.pod.cluster.local."), RecordType::A)
            .response_code,
        ResponseCode::NXDomain
    );
}

#[test]
fn objects_without_identity_are_refused_and_domains_are_checked() {
    let mut zone = zone();
    assert!(!zone.apply_service(&service(json!({"metadata": {"name": "x"}}))));
    assert!(!zone.apply_endpoint_slice(&slice(
        json!({"metadata": {"name": "s", "namespace": "default"},
        "addressType": "IPv4", "endpoints": []})
    )));
    assert!(ClusterZone::new("").is_err());
    assert!(ClusterZone::new("bad..domain").is_err());
    let custom = ClusterZone::new("Example.Internal.").unwrap();
    assert_eq!(custom.domain().to_string(), "example.internal.");
    assert!(custom.is_in_zone(&name("a.b.svc.example.internal.")));
    assert!(!custom.is_in_zone(&name("example.com.")));
}

#[test]
fn hostile_numbers_do_not_panic() {
    let mut zone = ClusterZone::new("cluster.local").unwrap();
    zone.apply_service(&service(json!({"metadata": {"name": "big", "namespace": "default"},
        "spec": {"clusterIP": "198.19.0.9", "ports": [{"name": "p", "port": 70000}, {"name": "n", "port": -1}]}})));
    zone.apply_endpoint_slice(&slice(
        json!({"metadata": {"name": "big-1", "namespace": "default",
            "labels": {"kubernetes.io/service-name": "big"}},
        "addressType": "IPv4",
        "ports": [{"name": "p", "port": 2147483647}],
        "endpoints": [{"addresses": ["not-an-ip", "198.18.0.1"]}]}),
    ));
    let srv = zone.answer(
        &name("_p._tcp.big.default.svc.cluster.local."),
        RecordType::SRV,
    );
    assert_eq!(
        srv.response_code,
        ResponseCode::NXDomain,
        "ports outside u16 are ignored"
    );
    let a = zone.answer(
        &name("198-18-0-1.big.default.svc.cluster.local."),
        RecordType::A,
    );
    assert_eq!(
        texts(&a.answers),
        ["198-18-0-1.big.default.svc.cluster.local. 5 IN A 198.18.0.1"]
    );
    zone.set_ttl(u32::MAX);
    assert_eq!(zone.ttl(), 3600);
}

#[test]
fn stateful_set_pods_keep_their_names_across_replacement() {
    // The governing headless Service `web` of a StatefulSet in `shop`, its slice naming each
    // pod by its hostname; a replaced pod keeps its name with a new address.
    let mut zone = ClusterZone::new("cluster.local").unwrap();
    zone.apply_service(&service(
        json!({"metadata": {"name": "web", "namespace": "shop"},
        "spec": {"clusterIP": "None", "ports": [{"name": "http", "port": 80}]}}),
    ));
    let slice_with = |web_1: Option<&str>| {
        let mut endpoints = vec![
            json!({"addresses": ["198.18.1.10"], "hostname": "web-0", "conditions": {"ready": true}}),
            json!({"addresses": ["198.18.1.12"], "hostname": "web-2", "conditions": {"ready": true}}),
        ];
        if let Some(ip) = web_1 {
            endpoints.push(
                json!({"addresses": [ip], "hostname": "web-1", "conditions": {"ready": true}}),
            );
        }
        slice(json!({"metadata": {"name": "web-sts", "namespace": "shop",
                "labels": {"kubernetes.io/service-name": "web"}},
            "addressType": "IPv4", "ports": [{"name": "http", "port": 80, "protocol": "TCP"}],
            "endpoints": endpoints}))
    };
    let ask = |zone: &ClusterZone, question: &str| {
        let answer = zone.answer(&name(question), RecordType::A);
        (answer.response_code, texts(&answer.answers))
    };
    // (web-1's address or none, question, code, answers)
    let cases: Vec<(Option<&str>, &str, ResponseCode, Vec<&str>)> = vec![
        (
            Some("198.18.1.11"),
            "web-1.web.shop.svc.cluster.local.",
            ResponseCode::NoError,
            vec!["web-1.web.shop.svc.cluster.local. 5 IN A 198.18.1.11"],
        ),
        (
            Some("198.18.1.11"),
            "web-0.web.shop.svc.cluster.local.",
            ResponseCode::NoError,
            vec!["web-0.web.shop.svc.cluster.local. 5 IN A 198.18.1.10"],
        ),
        (
            None,
            "web-1.web.shop.svc.cluster.local.",
            ResponseCode::NXDomain,
            vec![],
        ),
        (
            Some("198.18.1.21"),
            "web-1.web.shop.svc.cluster.local.",
            ResponseCode::NoError,
            vec!["web-1.web.shop.svc.cluster.local. 5 IN A 198.18.1.21"],
        ),
        (
            Some("198.18.1.21"),
            "web-3.web.shop.svc.cluster.local.",
            ResponseCode::NXDomain,
            vec![],
        ),
    ];
    assert_eq!(cases.len(), 5);
    for (i, (web_1, question, code, answers)) in cases.into_iter().enumerate() {
        zone.apply_endpoint_slice(&slice_with(web_1));
        let (got_code, got) = ask(&zone, question);
        assert_eq!(got_code, code, "case {i}: {question}");
        assert_eq!(got, answers, "case {i}: {question}");
    }
}
