use serde_json::json;

use super::*;
use crate::flow_control::{suggested_flow_schemas, suggested_priority_levels};

/// The bootstrap configuration as a server stores it, each object given a uid.
fn bootstrap() -> FlowConfig {
    let with_uid = |mut o: Value| {
        let name = str_at(&o, "/metadata/name").to_string();
        o["metadata"]["uid"] = json!(format!("uid-{name}"));
        o
    };
    let schemas: Vec<Value> = mandatory_flow_schemas()
        .into_iter()
        .chain(suggested_flow_schemas())
        .map(with_uid)
        .collect();
    let levels: Vec<Value> = mandatory_priority_levels()
        .into_iter()
        .chain(suggested_priority_levels())
        .map(with_uid)
        .collect();
    FlowConfig::digest(&schemas, &levels)
}

fn resource(
    user: &str,
    groups: &[&str],
    verb: &str,
    group: &str,
    res: &str,
    ns: &str,
) -> RequestDigest {
    let (resource, subresource) = res.split_once('/').unwrap_or((res, ""));
    RequestDigest {
        user: user.into(),
        groups: groups.iter().map(|g| g.to_string()).collect(),
        verb: verb.into(),
        is_resource_request: true,
        api_group: group.into(),
        resource: resource.into(),
        subresource: subresource.into(),
        namespace: ns.into(),
        path: String::new(),
    }
}

fn non_resource(user: &str, groups: &[&str], verb: &str, path: &str) -> RequestDigest {
    RequestDigest {
        user: user.into(),
        groups: groups.iter().map(|g| g.to_string()).collect(),
        verb: verb.into(),
        path: path.into(),
        ..RequestDigest::default()
    }
}

const AUTH: &str = "system:authenticated";
const ANON: &str = "system:unauthenticated";

#[test]
fn the_bootstrap_configuration_classifies_as_kube_apiserver_does() {
    let config = bootstrap();
    let sa = |ns: &str, name: &str| format!("system:serviceaccount:{ns}:{name}");
    let cases: Vec<(&str, RequestDigest, &str, &str, &str)> = vec![
        (
            "an administrator is exempt",
            resource(
                "admin",
                &["system:masters", AUTH],
                "list",
                "",
                "pods",
                "default",
            ),
            "exempt",
            "exempt",
            "",
        ),
        (
            "health probes of anyone are exempt",
            non_resource("system:anonymous", &[ANON], "get", "/readyz"),
            "probes",
            "exempt",
            "",
        ),
        (
            "a health probe's sub-path is one too",
            non_resource("system:anonymous", &[ANON], "get", "/healthz/etcd"),
            "probes",
            "exempt",
            "",
        ),
        (
            "a node's own Node status is node-high",
            resource(
                "system:node:n1",
                &["system:nodes", AUTH],
                "patch",
                "",
                "nodes/status",
                "",
            ),
            "system-node-high",
            "node-high",
            "system:node:n1",
        ),
        (
            "a node's other requests are system",
            resource(
                "system:node:n1",
                &["system:nodes", AUTH],
                "get",
                "",
                "secrets",
                "default",
            ),
            "system-nodes",
            "system",
            "system:node:n1",
        ),
        (
            "kube-system controllers' leader election",
            resource(
                &sa("kube-system", "x"),
                &["system:serviceaccounts", AUTH],
                "update",
                "coordination.k8s.io",
                "leases",
                "kube-system",
            ),
            "system-leader-election",
            "leader-election",
            "system:serviceaccount:kube-system:x",
        ),
        (
            "kube-system controllers are workload-high, by namespace",
            resource(
                &sa("kube-system", "x"),
                &["system:serviceaccounts", AUTH],
                "list",
                "apps",
                "deployments",
                "demo",
            ),
            "kube-system-service-accounts",
            "workload-high",
            "demo",
        ),
        (
            "the scheduler",
            resource(
                "system:kube-scheduler",
                &[AUTH],
                "create",
                "",
                "pods/binding",
                "demo",
            ),
            "kube-scheduler",
            "workload-high",
            "demo",
        ),
        (
            "other service accounts are workload-low",
            resource(
                &sa("demo", "app"),
                &[
                    "system:serviceaccounts",
                    "system:serviceaccounts:demo",
                    AUTH,
                ],
                "list",
                "",
                "configmaps",
                "demo",
            ),
            "service-accounts",
            "workload-low",
            "system:serviceaccount:demo:app",
        ),
        (
            "an ordinary user is global-default",
            resource("jane", &[AUTH], "get", "", "pods", "demo"),
            "global-default",
            "global-default",
            "jane",
        ),
        (
            "an anonymous discovery request is global-default",
            non_resource("system:anonymous", &[ANON], "get", "/apis"),
            "global-default",
            "global-default",
            "system:anonymous",
        ),
        (
            "a request of no known group falls to catch-all",
            resource("odd", &[], "get", "", "pods", "demo"),
            "catch-all",
            "catch-all",
            "odd",
        ),
    ];
    for (what, request, schema, level, flow) in cases {
        let c = config.classify(&request);
        assert_eq!(
            (c.schema.as_str(), c.level.as_str(), c.flow.as_str()),
            (schema, level, flow),
            "{what}"
        );
        assert_eq!(c.schema_uid, format!("uid-{schema}"), "{what}");
        assert_eq!(c.level_uid, format!("uid-{level}"), "{what}");
    }
}

fn custom_schema(name: &str, level: &str, precedence: i64, rule: Value) -> Value {
    json!({"metadata": {"name": name, "uid": format!("uid-{name}")},
        "spec": {"priorityLevelConfiguration": {"name": level}, "matchingPrecedence": precedence,
            "distinguisherMethod": {"type": "ByUser"}, "rules": [rule]}})
}

fn rejecting(name: &str, shares: u64) -> Value {
    json!({"metadata": {"name": name, "uid": format!("uid-{name}")},
        "spec": {"type": "Limited", "limited": {"nominalConcurrencyShares": shares,
            "limitResponse": {"type": "Reject"}}}})
}

#[test]
fn rules_match_on_subjects_verbs_groups_resources_namespaces_and_scope() {
    let noisy_sa =
        json!({"kind": "ServiceAccount", "serviceAccount": {"namespace": "load", "name": "noisy"}});
    let rule = json!({"subjects": [noisy_sa],
        "resourceRules": [{"verbs": ["list", "get"], "apiGroups": [""],
            "resources": ["configmaps", "pods/log"], "namespaces": ["load"]}],
        "nonResourceRules": [{"verbs": ["get"], "nonResourceURLs": ["/metrics/*"]}]});
    let mut schemas = vec![custom_schema("noisy", "low", 500, rule)];
    // A dangling schema, earlier in order, never matches.
    schemas.push(custom_schema(
        "dangling",
        "nowhere",
        10,
        json!({"subjects": [{"kind": "Group", "group": {"name": "*"}}],
            "resourceRules": [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"],
                "namespaces": ["*"], "clusterScope": true}]}),
    ));
    let config = FlowConfig::digest(&schemas, &[rejecting("low", 1)]);
    let noisy = "system:serviceaccount:load:noisy";
    let groups = ["system:serviceaccounts", AUTH];
    let classified = |r: RequestDigest| config.classify(&r).schema;
    assert_eq!(
        classified(resource(noisy, &groups, "list", "", "configmaps", "load")),
        "noisy"
    );
    assert_eq!(
        classified(resource(noisy, &groups, "get", "", "pods/log", "load")),
        "noisy"
    );
    assert_eq!(
        classified(non_resource(noisy, &groups, "get", "/metrics/cadvisor")),
        "noisy"
    );
    for (what, request) in [
        (
            "another verb",
            resource(noisy, &groups, "delete", "", "configmaps", "load"),
        ),
        (
            "another group",
            resource(noisy, &groups, "list", "apps", "configmaps", "load"),
        ),
        (
            "another resource",
            resource(noisy, &groups, "list", "", "secrets", "load"),
        ),
        (
            "a subresource not named",
            resource(noisy, &groups, "get", "", "pods/status", "load"),
        ),
        (
            "another namespace",
            resource(noisy, &groups, "list", "", "configmaps", "other"),
        ),
        (
            "cluster scope not allowed",
            resource(noisy, &groups, "list", "", "configmaps", ""),
        ),
        (
            "another account",
            resource(
                "system:serviceaccount:load:quiet",
                &groups,
                "list",
                "",
                "configmaps",
                "load",
            ),
        ),
        (
            "an account of another namespace",
            resource(
                "system:serviceaccount:other:noisy",
                &groups,
                "list",
                "",
                "configmaps",
                "load",
            ),
        ),
        (
            "another path",
            non_resource(noisy, &groups, "get", "/metricsx"),
        ),
    ] {
        assert_eq!(classified(request), "catch-all", "{what}");
    }
}

#[test]
fn precedence_then_name_decides_between_matching_schemas() {
    let everyone = json!({"subjects": [{"kind": "User", "user": {"name": "*"}}],
        "resourceRules": [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"],
            "namespaces": ["*"], "clusterScope": true}]});
    let schemas = vec![
        custom_schema("b-second", "low", 100, everyone.clone()),
        custom_schema("a-first", "low", 100, everyone.clone()),
        custom_schema("earlier", "low", 50, everyone.clone()),
    ];
    let config = FlowConfig::digest(&schemas, &[rejecting("low", 1)]);
    let request = resource("jane", &[AUTH], "get", "", "pods", "");
    assert_eq!(config.classify(&request).schema, "earlier");
    let config = FlowConfig::digest(&schemas[..2], &[rejecting("low", 1)]);
    assert_eq!(config.classify(&request).schema, "a-first");
}

#[test]
fn the_default_server_concurrency_is_shared_as_kube_apiserver_shares_it() {
    let limits = bootstrap().concurrency_limits(600);
    let expected: BTreeMap<String, u64> = [
        ("catch-all", 13),
        ("global-default", 49),
        ("leader-election", 25),
        ("node-high", 98),
        ("system", 74),
        ("workload-high", 98),
        ("workload-low", 245),
    ]
    .into_iter()
    .map(|(n, l)| (n.to_string(), l))
    .collect();
    assert_eq!(limits, expected);
    assert_eq!(
        nominal_concurrency_limit(u64::MAX, u64::MAX, 1),
        u64::MAX,
        "no overflow"
    );
    assert_eq!(nominal_concurrency_limit(10, 0, 5), 0);
}

#[test]
fn max_seats_follow_upstreams_table() {
    for (limit, hand, expected) in [
        (5, 6, 1),
        (10, 6, 1),
        (15, 6, 2),
        (20, 6, 3),
        (35, 6, 5),
        (100, 6, 15),
        (200, 6, 30),
        (10, 1, 2),
        (100, 20, 5),
    ] {
        assert_eq!(
            max_seats(limit, Some(hand)),
            expected,
            "limit {limit}, hand {hand}"
        );
    }
    assert_eq!(max_seats(40, None), 6, "a rejecting level: 15 % only");
}

#[test]
fn lists_take_a_seat_per_hundred_objects_within_bounds() {
    assert_eq!(list_seats(None, None, 10), 1, "unknown count");
    assert_eq!(list_seats(Some(0), None, 10), 1);
    assert_eq!(list_seats(Some(100), None, 10), 1);
    assert_eq!(list_seats(Some(101), None, 10), 2);
    assert_eq!(
        list_seats(Some(450), Some(200), 10),
        2,
        "the limit bounds what is read"
    );
    assert_eq!(list_seats(Some(100_000), None, 30), MAXIMUM_LIST_SEATS);
    assert_eq!(
        list_seats(Some(100_000), None, 3),
        3,
        "the level's max seats"
    );
}

#[test]
fn a_flow_is_always_dealt_the_same_distinct_queues() {
    for hash in [
        0u64,
        1,
        7,
        u64::MAX,
        flow_hash("s", "alice"),
        flow_hash("s", "bob"),
    ] {
        let hand = deal(hash, 64, 6);
        assert_eq!(hand, deal(hash, 64, 6));
        assert_eq!(hand.len(), 6);
        let mut distinct = hand.clone();
        distinct.sort_unstable();
        distinct.dedup();
        assert_eq!(distinct.len(), 6, "{hand:?}");
        assert!(hand.iter().all(|&q| q < 64), "{hand:?}");
    }
    assert_ne!(flow_hash("s", "alice"), flow_hash("s", "bob"));
    assert_ne!(flow_hash("sa", "b"), flow_hash("s", "ab"));
    assert_eq!(deal(12345, 3, 10).len(), 3, "a hand is at most the deck");
}

#[test]
fn a_rejecting_level_serves_up_to_its_limit_and_refuses_beyond() {
    let now = Instant::now();
    let mut set = QueueSet::new(2, None);
    assert_eq!(set.arrive(1, 0, 1, now).0, Verdict::Execute { queue: None });
    assert_eq!(set.arrive(2, 0, 1, now).0, Verdict::Execute { queue: None });
    assert_eq!(
        set.arrive(3, 0, 1, now).0,
        Verdict::Reject(RejectReason::ConcurrencyLimit)
    );
    assert_eq!(set.seats_in_use(), 2);
    assert!(set.finish(None, 1).is_empty());
    assert_eq!(set.arrive(4, 0, 1, now).0, Verdict::Execute { queue: None });
    // A request wider than the level is cut to it, and runs alone.
    let mut wide = QueueSet::new(3, None);
    assert_eq!(
        wide.arrive(1, 0, 10, now).0,
        Verdict::Execute { queue: None }
    );
    assert_eq!(wide.seats_in_use(), 3);
    assert_eq!(
        wide.arrive(2, 0, 1, now).0,
        Verdict::Reject(RejectReason::ConcurrencyLimit)
    );
}

#[test]
fn a_queuing_level_queues_beyond_its_limit_then_dispatches_round_robin() {
    let now = Instant::now();
    let queuing = Queuing {
        queues: 4,
        hand_size: 1,
        queue_length_limit: 2,
    };
    let mut set = QueueSet::new(1, Some(queuing));
    let noisy = flow_hash("s", "noisy");
    let quiet = (0..)
        .map(|i| flow_hash("s", &format!("quiet-{i}")))
        .find(|h| deal(*h, 4, 1) != deal(noisy, 4, 1))
        .expect("a flow in another queue");
    let Verdict::Execute {
        queue: Some(first_queue),
    } = set.arrive(1, noisy, 1, now).0
    else {
        panic!("the first request runs at once");
    };
    assert_eq!(set.arrive(2, noisy, 1, now).0, Verdict::Wait);
    assert_eq!(set.arrive(3, noisy, 1, now).0, Verdict::Wait);
    assert_eq!(
        set.arrive(4, noisy, 1, now).0,
        Verdict::Reject(RejectReason::QueueFull),
        "its queue holds two"
    );
    assert_eq!(
        set.arrive(5, quiet, 1, now).0,
        Verdict::Wait,
        "another flow has its own queue"
    );
    assert_eq!(set.waiting(), 3);
    // Seats freed: queues take turns, so the quiet flow does not wait behind both noisy ones.
    let queue_of = |id: u64| {
        if id == 5 {
            deal(quiet, 4, 1)[0]
        } else {
            deal(noisy, 4, 1)[0]
        }
    };
    let mut served: Vec<u64> = Vec::new();
    let mut finished_queue = first_queue;
    while set.waiting() > 0 {
        let next = set.finish(Some(finished_queue), 1);
        assert_eq!(next.len(), 1, "one seat frees one request: {next:?}");
        assert_eq!(next[0].queue, queue_of(next[0].id));
        served.push(next[0].id);
        finished_queue = next[0].queue;
    }
    let quiet_turn = served
        .iter()
        .position(|&id| id == 5)
        .expect("the quiet request ran");
    assert!(
        quiet_turn <= 1,
        "served in turn, not after every noisy one: {served:?}"
    );
}

#[test]
fn waiting_requests_time_out_or_are_cancelled() {
    let start = Instant::now();
    let queuing = Queuing {
        queues: 1,
        hand_size: 1,
        queue_length_limit: 10,
    };
    let mut set = QueueSet::new(1, Some(queuing));
    assert!(matches!(
        set.arrive(1, 0, 1, start).0,
        Verdict::Execute { .. }
    ));
    assert_eq!(set.arrive(2, 0, 1, start).0, Verdict::Wait);
    let later = start + Duration::from_secs(5);
    assert_eq!(set.arrive(3, 0, 1, later).0, Verdict::Wait);
    assert_eq!(set.arrive(4, 0, 1, later).0, Verdict::Wait);
    let (expired, dispatched) = set.expire(start + Duration::from_secs(16), DEFAULT_QUEUE_WAIT);
    assert_eq!(expired, [2]);
    assert!(dispatched.is_empty(), "no seat was freed");
    assert_eq!(set.cancel(3), (true, Vec::new()));
    assert!(!set.cancel(3).0, "gone already");
    assert_eq!(set.finish(Some(0), 1), [Dispatched { id: 4, queue: 0 }]);
    assert_eq!(set.seats_in_use(), 1);
}

#[test]
fn a_wide_request_waits_at_its_queue_head_until_seats_free() {
    let now = Instant::now();
    let queuing = Queuing {
        queues: 1,
        hand_size: 1,
        queue_length_limit: 10,
    };
    let mut set = QueueSet::new(4, Some(queuing));
    assert!(matches!(
        set.arrive(1, 0, 3, now).0,
        Verdict::Execute { .. }
    ));
    assert_eq!(set.arrive(2, 0, 2, now).0, Verdict::Wait, "3 + 2 > 4");
    assert_eq!(
        set.arrive(3, 0, 1, now).0,
        Verdict::Wait,
        "nothing jumps the queue"
    );
    let dispatched = set.finish(Some(0), 3);
    assert_eq!(dispatched.iter().map(|d| d.id).collect::<Vec<_>>(), [2, 3]);
    assert_eq!(set.seats_in_use(), 3);
}

#[test]
fn reconfiguring_a_level_keeps_its_waiting_requests() {
    let now = Instant::now();
    let queuing = Queuing {
        queues: 2,
        hand_size: 1,
        queue_length_limit: 10,
    };
    let mut set = QueueSet::new(1, Some(queuing));
    assert!(matches!(
        set.arrive(1, 0, 1, now).0,
        Verdict::Execute { .. }
    ));
    assert_eq!(set.arrive(2, 0, 1, now).0, Verdict::Wait);
    assert_eq!(set.arrive(3, 1, 1, now).0, Verdict::Wait);
    let dispatched = set.reconfigure(
        2,
        Some(Queuing {
            queues: 3,
            ..queuing
        }),
    );
    assert_eq!(dispatched.len(), 1, "the new limit lets one more run");
    assert_eq!(set.waiting(), 1);
    assert_eq!(set.concurrency_limit(), 2);
}

#[test]
fn retry_after_grows_with_refusals_and_shrinks_without() {
    let mut tracker = RefusalTracker::default();
    for _ in 0..5 {
        tracker.record(10);
    }
    assert_eq!(
        tracker.retry_after(),
        1,
        "nothing is judged within the first second"
    );
    tracker.record(11);
    assert_eq!(
        tracker.retry_after(),
        2,
        "5 refusals in the last second: at least 3 × 1"
    );
    tracker.record(12);
    assert_eq!(
        tracker.retry_after(),
        2,
        "6 refusals in the last 2 seconds, but bumped less than 2 seconds ago"
    );
    for _ in 0..10 {
        tracker.record(13);
    }
    tracker.record(14);
    assert_eq!(
        tracker.retry_after(),
        4,
        "11 refusals over 2 seconds, bumped 3 seconds ago"
    );
    tracker.record(30);
    assert_eq!(
        tracker.retry_after(),
        3,
        "none in the last 4 seconds: one less"
    );
    let mut flood = RefusalTracker::default();
    for second in 0..200 {
        for _ in 0..100 {
            flood.record(second);
        }
    }
    assert_eq!(flood.retry_after(), MAX_RETRY_AFTER);
}
