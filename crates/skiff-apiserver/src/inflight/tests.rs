use serde_json::json;

use super::*;

fn user(name: &str, groups: &[&str]) -> UserInfo {
    UserInfo::new(name, groups)
}

fn info(method: &str, path: &str, query: Option<&str>) -> RequestInfo {
    request_info(method, path, query).expect("a request")
}

/// The service account `load:noisy` matched to a level of its own with few shares.
fn noisy_configuration(limit_response: serde_json::Value) -> (Vec<Value>, Vec<Value>) {
    let schema = json!({"metadata": {"name": "noisy", "uid": "fs-noisy"},
        "spec": {"priorityLevelConfiguration": {"name": "noisy"}, "matchingPrecedence": 500,
            "distinguisherMethod": {"type": "ByUser"},
            "rules": [{"subjects": [{"kind": "ServiceAccount",
                "serviceAccount": {"namespace": "load", "name": "noisy"}}],
                "resourceRules": [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"],
                    "namespaces": ["*"], "clusterScope": true}]}]}});
    let level = json!({"metadata": {"name": "noisy", "uid": "pl-noisy"},
        "spec": {"type": "Limited", "limited": {"nominalConcurrencyShares": 5,
            "limitResponse": limit_response}}});
    let catch_all = json!({"metadata": {"name": "catch-all", "uid": "pl-catch-all"},
        "spec": {"type": "Limited", "limited": {"nominalConcurrencyShares": 5,
            "limitResponse": {"type": "Reject"}}}});
    (vec![schema], vec![level, catch_all])
}

fn noisy_request(flow: &FlowControl) -> Classification {
    let noisy = user(
        "system:serviceaccount:load:noisy",
        &["system:serviceaccounts"],
    );
    flow.classify(&digest(
        &noisy,
        &info("GET", "/api/v1/namespaces/load/configmaps", None),
    ))
}

#[tokio::test]
async fn a_rejecting_level_refuses_beyond_its_share_and_seats_come_back() {
    // 10 seats shared 5:5 between the noisy level and catch-all (exempt has none).
    let flow = Arc::new(FlowControl::new(6, 4).expect("a positive limit"));
    let (schemas, levels) = noisy_configuration(json!({"type": "Reject"}));
    flow.reconfigure(&schemas, &levels);
    assert_eq!(flow.concurrency_limit("noisy"), Some(5));
    let request = noisy_request(&flow);
    assert_eq!(
        (request.schema_uid.as_str(), request.level_uid.as_str()),
        ("fs-noisy", "pl-noisy")
    );
    let mut held = Vec::new();
    for _ in 0..5 {
        held.push(flow.admit(&request, |_| 1).await.expect("within the share"));
    }
    assert_eq!(
        flow.admit(&request, |_| 1).await.err(),
        Some(RejectReason::ConcurrencyLimit)
    );
    held.pop();
    assert!(
        flow.admit(&request, |_| 1).await.is_ok(),
        "a freed seat is taken again"
    );
}

#[tokio::test]
async fn administrators_are_exempt_and_never_held() {
    let flow = Arc::new(FlowControl::new(1, 0).expect("a positive limit"));
    let admin = user("system:admin", &["system:masters", "system:authenticated"]);
    let request = flow.classify(&digest(&admin, &info("GET", "/api/v1/pods", None)));
    assert_eq!(request.level, "exempt");
    for _ in 0..100 {
        assert!(matches!(
            flow.admit(&request, |_| 1).await,
            Ok(Admission::Exempt)
        ));
    }
}

#[tokio::test]
async fn a_queued_request_runs_when_a_seat_frees_or_is_refused_after_its_wait() {
    let flow = Arc::new(
        FlowControl::new(1, 1)
            .expect("a positive limit")
            .with_queue_wait(Duration::from_millis(300)),
    );
    let (schemas, levels) = noisy_configuration(json!({"type": "Queue",
        "queuing": {"queues": 1, "handSize": 1, "queueLengthLimit": 1}}));
    flow.reconfigure(&schemas, &levels);
    assert_eq!(flow.concurrency_limit("noisy"), Some(1));
    let request = noisy_request(&flow);
    let first = flow.admit(&request, |_| 1).await.expect("runs at once");
    let waiter = {
        let flow = flow.clone();
        let request = request.clone();
        tokio::spawn(async move { flow.admit(&request, |_| 1).await.is_ok() })
    };
    // The queue holds one: wait until the spawned request is in it, then a third is refused.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let waiting = flow.lock().levels["noisy"].set.waiting();
        if waiting == 1 {
            break;
        }
        assert!(Instant::now() < deadline, "the second request never queued");
        tokio::task::yield_now().await;
    }
    assert_eq!(
        flow.admit(&request, |_| 1).await.err(),
        Some(RejectReason::QueueFull)
    );
    drop(first);
    assert!(
        waiter.await.expect("the waiter"),
        "dispatched once the seat freed"
    );
    assert_eq!(
        flow.lock().levels["noisy"].set.seats_in_use(),
        0,
        "and its seat given back"
    );

    let held = flow.admit(&request, |_| 1).await.expect("runs at once");
    let started = Instant::now();
    assert_eq!(
        flow.admit(&request, |_| 1).await.err(),
        Some(RejectReason::TimedOut)
    );
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(
        flow.lock().levels["noisy"].set.waiting(),
        0,
        "it left its queue"
    );
    drop(held);
}

#[tokio::test]
async fn a_waiting_request_whose_client_leaves_frees_its_place() {
    let flow = Arc::new(FlowControl::new(1, 1).expect("a positive limit"));
    let (schemas, levels) = noisy_configuration(json!({"type": "Queue",
        "queuing": {"queues": 1, "handSize": 1, "queueLengthLimit": 5}}));
    flow.reconfigure(&schemas, &levels);
    let request = noisy_request(&flow);
    let held = flow.admit(&request, |_| 1).await.expect("runs at once");
    let waiting = {
        let flow = flow.clone();
        let request = request.clone();
        tokio::spawn(async move { flow.admit(&request, |_| 1).await.is_ok() })
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    while flow.lock().levels["noisy"].set.waiting() == 0 {
        assert!(Instant::now() < deadline, "the second request never queued");
        tokio::task::yield_now().await;
    }
    waiting.abort();
    let _ = waiting.await;
    assert_eq!(flow.lock().levels["noisy"].set.waiting(), 0);
    drop(held);
    assert_eq!(flow.lock().levels["noisy"].set.seats_in_use(), 0);
}

#[test]
fn a_zero_server_limit_is_refused_as_kube_apiserver_refuses_it() {
    assert!(FlowControl::new(0, 0).is_err());
    assert!(
        FlowControl::new(usize::MAX, 1).is_err(),
        "an overflowing sum"
    );
    assert_eq!(
        FlowControl::new(400, 200).map(|f| f.server_limit()),
        Ok(600)
    );
}

#[test]
fn long_running_requests_are_told_apart() {
    for sub in ["exec", "attach", "log", "portforward"] {
        let path = format!("/api/v1/namespaces/default/pods/web/{sub}");
        assert!(is_long_running(&info("POST", &path, None)), "{sub}");
    }
    let list = info("GET", "/api/v1/namespaces/default/pods", None);
    assert!(!is_long_running(&list));
    let watch = info("GET", "/api/v1/namespaces/default/pods", Some("watch=true"));
    assert!(!is_long_running(&watch), "watches are classified");
}

#[test]
fn the_refusal_reads_like_kube_apiserver() {
    let resp = too_many_requests(1);
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(resp.headers()[header::RETRY_AFTER], "1");
    assert_eq!(
        resp.headers()[header::CONTENT_TYPE],
        "text/plain; charset=utf-8"
    );
}

#[test]
fn lists_take_seats_by_their_limit() {
    let list = info("GET", "/api/v1/configmaps", Some("limit=500"));
    assert_eq!(seats_of(&list, Some("limit=500"))(10), 5);
    assert_eq!(seats_of(&list, None)(10), 1);
    let get = info("GET", "/api/v1/namespaces/a/configmaps/x", None);
    assert_eq!(seats_of(&get, Some("limit=500"))(10), 1);
}
