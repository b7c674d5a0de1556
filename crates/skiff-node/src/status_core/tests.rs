//! Table tests after kubelet's own cases for `getPhase` and the condition generators.

use super::*;
use serde_json::json;

fn spec(value: serde_json::Value) -> PodSpec {
    serde_json::from_value(value).expect("a valid pod spec")
}

/// Two regular containers `a` and `b` under `policy`.
fn two_containers(policy: &str) -> PodSpec {
    spec(json!({
        "restartPolicy": policy,
        "containers": [{"name": "a", "image": "x"}, {"name": "b", "image": "x"}],
    }))
}

fn status_json(value: serde_json::Value) -> ContainerStatus {
    serde_json::from_value(value).expect("a valid container status")
}

fn running(name: &str) -> ContainerStatus {
    status_json(
        json!({"name": name, "image": "x", "imageID": "", "ready": false,
        "restartCount": 0, "started": true,
        "state": {"running": {"startedAt": "2026-01-01T00:00:00Z"}}}),
    )
}

fn running_unstarted(name: &str) -> ContainerStatus {
    ContainerStatus {
        started: Some(false),
        ..running(name)
    }
}

fn ready(name: &str) -> ContainerStatus {
    ContainerStatus {
        ready: true,
        ..running(name)
    }
}

fn exited(name: &str, code: i32) -> ContainerStatus {
    status_json(
        json!({"name": name, "image": "x", "imageID": "", "ready": false,
        "restartCount": 0, "started": false,
        "state": {"terminated": {"exitCode": code}}}),
    )
}

fn succeeded(name: &str) -> ContainerStatus {
    exited(name, 0)
}

fn failed(name: &str) -> ContainerStatus {
    exited(name, 1)
}

fn waiting(name: &str) -> ContainerStatus {
    status_json(
        json!({"name": name, "image": "x", "imageID": "", "ready": false,
        "restartCount": 0, "started": false,
        "state": {"waiting": {"reason": "ContainerCreating"}}}),
    )
}

fn waiting_after_exit(name: &str, code: i32) -> ContainerStatus {
    status_json(
        json!({"name": name, "image": "x", "imageID": "", "ready": false,
        "restartCount": 1, "started": false,
        "state": {"waiting": {"reason": "CrashLoopBackOff"}},
        "lastState": {"terminated": {"exitCode": code}}}),
    )
}

struct PhaseCase {
    name: &'static str,
    statuses: Vec<ContainerStatus>,
    terminal: bool,
    want: &'static str,
}

fn case(
    name: &'static str,
    statuses: Vec<ContainerStatus>,
    terminal: bool,
    want: &'static str,
) -> PhaseCase {
    PhaseCase {
        name,
        statuses,
        terminal,
        want,
    }
}

fn check_phases(spec: &PodSpec, cases: Vec<PhaseCase>) {
    for c in cases {
        assert_eq!(
            pod_phase(spec, &[], &c.statuses, c.terminal),
            c.want,
            "{}",
            c.name
        );
    }
}

#[test]
fn phase_with_restart_always() {
    check_phases(
        &two_containers("Always"),
        vec![
            case(
                "all running",
                vec![running("a"), running("b")],
                false,
                RUNNING,
            ),
            case(
                "all stopped with restart always",
                vec![succeeded("a"), failed("b")],
                false,
                RUNNING,
            ),
            case(
                "all succeeded with restart always and pod terminal",
                vec![succeeded("a"), succeeded("b")],
                true,
                SUCCEEDED,
            ),
            case(
                "all stopped with restart always and pod terminal",
                vec![succeeded("a"), failed("b")],
                true,
                FAILED,
            ),
            case(
                "mixed state #1 with restart always",
                vec![running("a"), succeeded("b")],
                false,
                RUNNING,
            ),
            case(
                "mixed state #2 with restart always",
                vec![running("a")],
                false,
                PENDING,
            ),
            case(
                "mixed state #3 with restart always",
                vec![running("a"), waiting("b")],
                false,
                PENDING,
            ),
            case(
                "backoff crashloop container with restart always",
                vec![running("a"), waiting_after_exit("b", 1)],
                false,
                RUNNING,
            ),
            case(
                "running containers of a terminal pod",
                vec![running("a"), running("b")],
                true,
                RUNNING,
            ),
            case("nothing reported", vec![], false, PENDING),
        ],
    );
}

#[test]
fn phase_with_restart_never() {
    check_phases(
        &two_containers("Never"),
        vec![
            case(
                "all running",
                vec![running("a"), running("b")],
                false,
                RUNNING,
            ),
            case(
                "all succeeded with restart never",
                vec![succeeded("a"), succeeded("b")],
                false,
                SUCCEEDED,
            ),
            case(
                "all failed with restart never",
                vec![failed("a"), failed("b")],
                false,
                FAILED,
            ),
            case(
                "mixed state #1 with restart never",
                vec![running("a"), succeeded("b")],
                false,
                RUNNING,
            ),
            case(
                "mixed state #2 with restart never",
                vec![running("a")],
                false,
                PENDING,
            ),
            case(
                "mixed state #3 with restart never",
                vec![running("a"), waiting("b")],
                false,
                PENDING,
            ),
        ],
    );
}

#[test]
fn phase_with_restart_on_failure() {
    check_phases(
        &two_containers("OnFailure"),
        vec![
            case(
                "all running",
                vec![running("a"), running("b")],
                false,
                RUNNING,
            ),
            case(
                "all succeeded with restart onfailure",
                vec![succeeded("a"), succeeded("b")],
                false,
                SUCCEEDED,
            ),
            case(
                "all failed with restart onfailure",
                vec![failed("a"), failed("b")],
                false,
                RUNNING,
            ),
            case(
                "mixed state #1 with restart onfailure",
                vec![running("a"), succeeded("b")],
                false,
                RUNNING,
            ),
            case(
                "mixed state #2 with restart onfailure",
                vec![running("a")],
                false,
                PENDING,
            ),
            case(
                "mixed state #3 with restart onfailure",
                vec![running("a"), waiting("b")],
                false,
                PENDING,
            ),
            case(
                "backoff crashloop container with restart onfailure",
                vec![running("a"), waiting_after_exit("b", 1)],
                false,
                RUNNING,
            ),
        ],
    );
}

/// (name, restart policy, init container statuses, container statuses, expected phase)
type PolicyCase = (
    &'static str,
    &'static str,
    Vec<ContainerStatus>,
    Vec<ContainerStatus>,
    &'static str,
);

/// (name, init container statuses, container statuses, phase, expected condition)
type InitializedCase = (
    &'static str,
    Vec<ContainerStatus>,
    Vec<ContainerStatus>,
    &'static str,
    ConditionValue,
);

fn with_init(policy: &str) -> PodSpec {
    spec(json!({
        "restartPolicy": policy,
        "initContainers": [{"name": "init", "image": "x"}],
        "containers": [{"name": "a", "image": "x"}, {"name": "b", "image": "x"}],
    }))
}

#[test]
fn phase_with_init_containers() {
    let cases: Vec<PolicyCase> = vec![
        (
            "init container running",
            "Always",
            vec![running("init")],
            vec![waiting("a"), waiting("b")],
            PENDING,
        ),
        (
            "init container terminated non-zero, restart always",
            "Always",
            vec![failed("init")],
            vec![waiting("a"), waiting("b")],
            PENDING,
        ),
        (
            "init container waiting, terminated non-zero, restart always",
            "Always",
            vec![waiting_after_exit("init", 1)],
            vec![waiting("a"), waiting("b")],
            PENDING,
        ),
        (
            "init container waiting, terminated zero",
            "Always",
            vec![waiting_after_exit("init", 0)],
            vec![waiting("a"), waiting("b")],
            PENDING,
        ),
        (
            "init container not reported",
            "Always",
            vec![],
            vec![waiting("a"), waiting("b")],
            PENDING,
        ),
        (
            "init container succeeded, containers running",
            "Always",
            vec![succeeded("init")],
            vec![running("a"), running("b")],
            RUNNING,
        ),
        (
            "init container terminated non-zero, restart never",
            "Never",
            vec![failed("init")],
            vec![waiting("a"), waiting("b")],
            FAILED,
        ),
        (
            "init container waiting after a failure, restart never",
            "Never",
            vec![waiting_after_exit("init", 1)],
            vec![waiting("a"), waiting("b")],
            FAILED,
        ),
        (
            "init container terminated non-zero, restart onfailure",
            "OnFailure",
            vec![failed("init")],
            vec![waiting("a"), waiting("b")],
            PENDING,
        ),
    ];
    for (name, policy, inits, regular, want) in cases {
        assert_eq!(
            pod_phase(&with_init(policy), &inits, &regular, false),
            want,
            "{name}"
        );
    }
}

fn with_sidecar(policy: &str) -> PodSpec {
    spec(json!({
        "restartPolicy": policy,
        "initContainers": [{"name": "sidecar", "image": "x", "restartPolicy": "Always"}],
        "containers": [{"name": "a", "image": "x"}, {"name": "b", "image": "x"}],
    }))
}

#[test]
fn phase_with_restartable_init_containers() {
    let cases: Vec<PolicyCase> = vec![
        (
            "sidecar waiting",
            "Always",
            vec![waiting("sidecar")],
            vec![waiting("a"), waiting("b")],
            PENDING,
        ),
        (
            "sidecar running but not started",
            "Always",
            vec![running_unstarted("sidecar")],
            vec![waiting("a"), waiting("b")],
            PENDING,
        ),
        (
            "sidecar started, containers not yet",
            "Always",
            vec![running("sidecar")],
            vec![waiting("a"), waiting("b")],
            PENDING,
        ),
        (
            "sidecar started, containers running",
            "Always",
            vec![running("sidecar")],
            vec![running("a"), running("b")],
            RUNNING,
        ),
        (
            "sidecar crash-looping after the pod initialized",
            "Always",
            vec![waiting_after_exit("sidecar", 1)],
            vec![running("a"), running("b")],
            RUNNING,
        ),
        (
            "sidecar not started again after the pod initialized",
            "Always",
            vec![running_unstarted("sidecar")],
            vec![running("a"), running("b")],
            RUNNING,
        ),
        (
            "sidecar not reported",
            "Always",
            vec![],
            vec![running("a"), running("b")],
            PENDING,
        ),
        (
            "containers succeeded while the sidecar runs, restart never",
            "Never",
            vec![running("sidecar")],
            vec![succeeded("a"), succeeded("b")],
            RUNNING,
        ),
        (
            "containers succeeded and the sidecar stopped, restart never",
            "Never",
            vec![exited("sidecar", 137)],
            vec![succeeded("a"), succeeded("b")],
            SUCCEEDED,
        ),
        (
            "a container failed and the sidecar stopped, restart onfailure",
            "OnFailure",
            vec![exited("sidecar", 137)],
            vec![succeeded("a"), failed("b")],
            RUNNING,
        ),
    ];
    for (name, policy, inits, regular, want) in cases {
        assert_eq!(
            pod_phase(&with_sidecar(policy), &inits, &regular, false),
            want,
            "{name}"
        );
    }
}

fn value(ok: bool, reason: Option<&'static str>, message: Option<&str>) -> ConditionValue {
    ConditionValue {
        ok,
        reason,
        message: message.map(str::to_string),
    }
}

#[test]
fn containers_ready_follows_kubelets_cases() {
    let spec = two_containers("Always");
    let cases: Vec<(&str, Vec<ContainerStatus>, &str, ConditionValue)> = vec![
        (
            "all ready",
            vec![ready("a"), ready("b")],
            RUNNING,
            value(true, None, None),
        ),
        (
            "one unready",
            vec![ready("a"), running("b")],
            RUNNING,
            value(
                false,
                Some("ContainersNotReady"),
                Some("containers with unready status: [b]"),
            ),
        ),
        (
            "both unready",
            vec![running("a"), waiting("b")],
            PENDING,
            value(
                false,
                Some("ContainersNotReady"),
                Some("containers with unready status: [a b]"),
            ),
        ),
        (
            "one unknown",
            vec![ready("a")],
            PENDING,
            value(
                false,
                Some("ContainersNotReady"),
                Some("containers with unknown status: [b]"),
            ),
        ),
        (
            "unknown and unready",
            vec![running("a")],
            PENDING,
            value(
                false,
                Some("ContainersNotReady"),
                Some("containers with unknown status: [b], containers with unready status: [a]"),
            ),
        ),
        (
            "succeeded pod",
            vec![succeeded("a"), succeeded("b")],
            SUCCEEDED,
            value(false, Some("PodCompleted"), None),
        ),
        (
            "failed pod",
            vec![succeeded("a"), failed("b")],
            FAILED,
            value(false, Some("PodFailed"), None),
        ),
    ];
    for (name, statuses, phase, want) in cases {
        assert_eq!(
            containers_ready_condition(&spec, &[], &statuses, phase),
            want,
            "{name}"
        );
    }
}

#[test]
fn containers_ready_counts_sidecars_but_not_init_containers() {
    let spec = spec(json!({
        "initContainers": [
            {"name": "init", "image": "x"},
            {"name": "sidecar", "image": "x", "restartPolicy": "Always"},
        ],
        "containers": [{"name": "a", "image": "x"}],
    }));
    let inits = [succeeded("init"), running("sidecar")];
    assert_eq!(
        containers_ready_condition(&spec, &inits, &[ready("a")], RUNNING),
        value(
            false,
            Some("ContainersNotReady"),
            Some("containers with unready status: [sidecar]")
        )
    );
    let inits = [succeeded("init"), ready("sidecar")];
    assert_eq!(
        containers_ready_condition(&spec, &inits, &[ready("a")], RUNNING),
        value(true, None, None)
    );
}

fn gate_condition(type_: &str, status: &str) -> PodCondition {
    PodCondition {
        type_: type_.to_string(),
        status: status.to_string(),
        ..PodCondition::default()
    }
}

#[test]
fn ready_follows_containers_ready_then_readiness_gates() {
    let spec = spec(json!({
        "containers": [{"name": "a", "image": "x"}],
        "readinessGates": [{"conditionType": "example.com/one"}, {"conditionType": "example.com/two"}],
    }));
    let unready = value(
        false,
        Some("ContainersNotReady"),
        Some("containers with unready status: [a]"),
    );
    assert_eq!(
        ready_condition(&spec, &[], &unready),
        unready,
        "Ready repeats an unready ContainersReady"
    );
    let all_ready = value(true, None, None);
    assert_eq!(
        ready_condition(
            &spec,
            &[gate_condition("example.com/one", "False")],
            &all_ready
        ),
        value(
            false,
            Some("ReadinessGatesNotReady"),
            Some(
                "the status of pod readiness gate \"example.com/one\" is not \"True\", but False, \
                 corresponding condition of pod readiness gate \"example.com/two\" does not exist."
            )
        )
    );
    let both = [
        gate_condition("example.com/one", "True"),
        gate_condition("example.com/two", "True"),
    ];
    assert_eq!(ready_condition(&spec, &both, &all_ready), all_ready);
}

#[test]
fn initialized_follows_kubelets_cases() {
    let spec = spec(json!({
        "initContainers": [
            {"name": "first", "image": "x"},
            {"name": "second", "image": "x"},
            {"name": "sidecar", "image": "x", "restartPolicy": "Always"},
        ],
        "containers": [{"name": "a", "image": "x"}],
    }));
    let incomplete = |names: &str| {
        value(
            false,
            Some("ContainersNotInitialized"),
            Some(&format!("containers with incomplete status: {names}")),
        )
    };
    let cases: Vec<InitializedCase> = vec![
        (
            "nothing ran",
            vec![waiting("first"), waiting("second"), waiting("sidecar")],
            vec![waiting("a")],
            PENDING,
            incomplete("[first second sidecar]"),
        ),
        (
            "first done, second running",
            vec![succeeded("first"), running("second"), waiting("sidecar")],
            vec![waiting("a")],
            PENDING,
            incomplete("[second sidecar]"),
        ),
        (
            "first failed",
            vec![failed("first"), waiting("second"), waiting("sidecar")],
            vec![waiting("a")],
            PENDING,
            incomplete("[first second sidecar]"),
        ),
        (
            "sidecar running but not started",
            vec![
                succeeded("first"),
                succeeded("second"),
                running_unstarted("sidecar"),
            ],
            vec![waiting("a")],
            PENDING,
            incomplete("[sidecar]"),
        ),
        (
            "all done, sidecar started",
            vec![succeeded("first"), succeeded("second"), running("sidecar")],
            vec![waiting("a")],
            PENDING,
            value(true, None, None),
        ),
        (
            "one unknown",
            vec![succeeded("first"), running("sidecar")],
            vec![waiting("a")],
            PENDING,
            value(
                false,
                Some("ContainersNotInitialized"),
                Some("containers with unknown status: [second]"),
            ),
        ),
        (
            "sidecar restarting after a container started",
            vec![
                succeeded("first"),
                succeeded("second"),
                waiting_after_exit("sidecar", 1),
            ],
            vec![running("a")],
            RUNNING,
            value(true, None, None),
        ),
        (
            "succeeded pod",
            vec![
                succeeded("first"),
                succeeded("second"),
                exited("sidecar", 137),
            ],
            vec![succeeded("a")],
            SUCCEEDED,
            value(true, Some("PodCompleted"), None),
        ),
    ];
    for (name, inits, regular, phase, want) in cases {
        assert_eq!(
            initialized_condition(&spec, &inits, &regular, phase),
            want,
            "{name}"
        );
    }
    let no_inits = two_containers("Always");
    assert_eq!(
        initialized_condition(&no_inits, &[], &[waiting("a"), waiting("b")], PENDING),
        value(true, None, None),
        "a pod without init containers is initialized at once"
    );
}

fn at(seconds: i64) -> Timestamp {
    Timestamp::from_second(1_800_000_000 + seconds).expect("a valid time")
}

fn find_condition<'c>(conditions: &'c [PodCondition], type_: &str) -> &'c PodCondition {
    conditions
        .iter()
        .find(|c| c.type_ == type_)
        .unwrap_or_else(|| panic!("no {type_} condition in {conditions:?}"))
}

#[test]
fn conditions_come_in_kubelets_order_and_keep_transition_times_while_unchanged() {
    let spec = spec(json!({
        "containers": [{"name": "a", "image": "x"}],
        "readinessGates": [{"conditionType": "example.com/gate"}],
    }));
    let mut previous = PodStatus {
        conditions: Some(vec![PodCondition {
            last_transition_time: Some(Time(at(0))),
            ..gate_condition("PodScheduled", "True")
        }]),
        ..PodStatus::default()
    };
    let statuses = [running("a")];
    let inputs = |previous: &PodStatus, statuses: &[ContainerStatus], now| {
        pod_conditions(&ConditionInputs {
            spec: &spec,
            previous,
            init_statuses: &[],
            statuses,
            phase: RUNNING,
            sandbox_ready: true,
            now,
        })
    };
    let first = inputs(&previous, &statuses, at(10));
    let types: Vec<&str> = first.iter().map(|c| c.type_.as_str()).collect();
    assert_eq!(
        types,
        [
            "PodReadyToStartContainers",
            "Initialized",
            "Ready",
            "ContainersReady",
            "PodScheduled"
        ]
    );
    assert_eq!(
        find_condition(&first, "PodScheduled").last_transition_time,
        Some(Time(at(0))),
        "the scheduler's condition is kept as it was"
    );
    assert_eq!(
        find_condition(&first, "Ready").last_transition_time,
        Some(Time(at(10)))
    );

    // The same statuses later: nothing moves.
    previous.conditions = Some(first.clone());
    let again = inputs(&previous, &statuses, at(20));
    assert_eq!(again, first, "unchanged conditions keep their times");

    // The container turns ready: ContainersReady moves, Ready waits for the gate.
    let mut with_gate = first.clone();
    with_gate.push(gate_condition("example.com/gate", "False"));
    previous.conditions = Some(with_gate);
    let later = inputs(&previous, &[ready("a")], at(30));
    let containers_ready = find_condition(&later, "ContainersReady");
    assert_eq!(containers_ready.status, "True");
    assert_eq!(containers_ready.last_transition_time, Some(Time(at(30))));
    let ready = find_condition(&later, "Ready");
    assert_eq!(ready.status, "False");
    assert_eq!(ready.reason.as_deref(), Some("ReadinessGatesNotReady"));
    assert_eq!(
        ready.last_transition_time,
        Some(Time(at(10))),
        "Ready stayed False, so its time stays"
    );
    assert_eq!(
        find_condition(&later, "example.com/gate").status,
        "False",
        "someone else's condition is passed through"
    );
}

fn observed(name: &str, state: ObservedState) -> ObservedContainer {
    ObservedContainer {
        name: name.to_string(),
        image: "x".to_string(),
        image_id: String::new(),
        container_id: None,
        state,
        last_exit: None,
        restart_count: 0,
        ready: true,
        started: true,
    }
}

fn completed() -> ObservedState {
    ObservedState::Terminated(Exit {
        exit_code: 0,
        reason: Some("Completed".to_string()),
        ..Exit::default()
    })
}

#[test]
fn container_statuses_report_ready_and_started_as_kubelet_does() {
    let running_state = ObservedState::Running { started_at: at(5) };
    let status = observed("a", running_state.clone()).status(ContainerKind::Regular);
    assert!(status.ready && status.started == Some(true));

    let done = observed("a", completed());
    let init = done.status(ContainerKind::Init);
    assert!(init.ready, "a completed init container is ready");
    assert_eq!(init.started, Some(false));
    assert!(!done.status(ContainerKind::Regular).ready);

    let waiting_state = ObservedState::Waiting {
        reason: "CrashLoopBackOff".to_string(),
        message: None,
    };
    let crashing = ObservedContainer {
        last_exit: Some(Exit {
            exit_code: 1,
            reason: Some("Error".to_string()),
            started_at: Some(at(1)),
            finished_at: Some(at(2)),
            ..Exit::default()
        }),
        restart_count: 3,
        ..observed("a", waiting_state)
    };
    let status = crashing.status(ContainerKind::Sidecar);
    assert!(!status.ready && status.started == Some(false));
    assert_eq!(status.restart_count, 3);
    let last = status
        .last_state
        .as_ref()
        .and_then(|s| s.terminated.as_ref())
        .expect("lastState.terminated");
    assert_eq!(last.exit_code, 1);
    assert_eq!(ObservedContainer::from_status(&status), {
        let mut back = crashing.clone();
        back.ready = false;
        back.started = false;
        back
    });
}

#[test]
fn filled_status_keeps_a_terminal_phase_and_ends_a_terminated_pod() {
    let spec = with_init("Always");
    let waiting_state = || ObservedState::Waiting {
        reason: "PodInitializing".to_string(),
        message: None,
    };
    let pod = ObservedPod {
        init_containers: vec![observed(
            "init",
            ObservedState::Running { started_at: at(1) },
        )],
        containers: vec![
            observed("a", waiting_state()),
            observed("b", waiting_state()),
        ],
        sandbox_ready: true,
        terminal: false,
    };
    let mut status = PodStatus::default();
    fill_pod_status(&mut status, &spec, &PodStatus::default(), &pod, at(2));
    assert_eq!(status.phase.as_deref(), Some(PENDING));
    let conditions = status.conditions.clone().unwrap_or_default();
    let initialized = find_condition(&conditions, "Initialized");
    assert_eq!(initialized.status, "False");
    assert_eq!(
        initialized.message.as_deref(),
        Some("containers with incomplete status: [init]")
    );
    assert_eq!(
        status.init_container_statuses.as_ref().map(Vec::len),
        Some(1)
    );

    // Deleted before its containers ran: kubelet fails it.
    let stopped = ObservedPod {
        terminal: true,
        sandbox_ready: false,
        ..pod.clone()
    };
    let mut ended = PodStatus::default();
    fill_pod_status(&mut ended, &spec, &status, &stopped, at(3));
    assert_eq!(ended.phase.as_deref(), Some(FAILED));
    let conditions = ended.conditions.clone().unwrap_or_default();
    assert_eq!(
        find_condition(&conditions, "ContainersReady")
            .reason
            .as_deref(),
        Some("PodFailed")
    );
    assert_eq!(
        find_condition(&conditions, "PodReadyToStartContainers").status,
        "False"
    );

    // A terminal phase is never left, whatever the containers say next.
    let mut after = PodStatus::default();
    fill_pod_status(&mut after, &spec, &ended, &pod, at(4));
    assert_eq!(after.phase.as_deref(), Some(FAILED));
}
