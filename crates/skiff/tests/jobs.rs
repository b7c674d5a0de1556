//! Jobs end to end with the real `kubectl`: on simulated nodes, whose
//! `sim.skiff.dev/complete-after` and `fail-after` annotations make pods succeed or fail on a
//! timeline, and on the real node running the test kit's shell image.
//!
//! Run with `cargo test -p skiff --test jobs` (Linux; `kubectl` on the PATH).

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::Value;
use support::images::SHELL;
use support::json::{items, str_at};
use support::{assert_table, wait_for, Kubectl, Skiff};

/// How long a Job of a few short pods may take on a shared machine.
const JOB_DEADLINE: Duration = Duration::from_secs(90);

/// A Job manifest for simulated nodes: each pod succeeds (or fails) one second after it starts.
fn simulated_job(name: &str, spec_extra: &str, outcome: &str) -> String {
    format!(
        "apiVersion: batch/v1
kind: Job
metadata:
  name: {name}
spec:
{spec_extra}  template:
    metadata:
      annotations:
        sim.skiff.dev/{outcome}: 1s
    spec:
      restartPolicy: Never
      containers:
      - name: work
        image: busybox
"
    )
}

fn simulated_server() -> (Skiff, Kubectl) {
    let skiff = Skiff::start_with(&["--no-node", "--simulated-nodes", "2"]);
    let kubectl = skiff.kubectl();
    (skiff, kubectl)
}

fn apply(skiff: &Skiff, kubectl: &Kubectl, name: &str, manifest: &str) {
    let path = skiff.write_file(&format!("{name}.yaml"), manifest);
    kubectl.ok(&["apply", "-f", &path]);
}

fn job(kubectl: &Kubectl, name: &str) -> Value {
    kubectl.json(&["get", "job", name])
}

fn job_pods(kubectl: &Kubectl, name: &str) -> Vec<Value> {
    items(&kubectl.json(&[
        "get",
        "pods",
        "-l",
        &format!("batch.kubernetes.io/job-name={name}"),
    ]))
}

fn condition<'a>(job: &'a Value, type_: &str) -> Option<&'a Value> {
    job.pointer("/status/conditions")?
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_ && c["status"] == "True")
}

fn events_for(kubectl: &Kubectl, name: &str) -> Vec<(String, String, String)> {
    items(&kubectl.json(&[
        "get",
        "events",
        "--field-selector",
        &format!("involvedObject.kind=Job,involvedObject.name={name}"),
    ]))
    .iter()
    .map(|e| {
        (
            str_at(e, "/type"),
            str_at(e, "/reason"),
            str_at(e, "/message"),
        )
    })
    .collect()
}

#[test]
fn five_completions_two_at_a_time_complete_with_exactly_five_successful_pods() {
    let (skiff, kubectl) = simulated_server();
    apply(
        &skiff,
        &kubectl,
        "batch",
        &simulated_job(
            "batch",
            "  completions: 5\n  parallelism: 2\n",
            "complete-after",
        ),
    );
    let mut most_active = 0;
    wait_for("job batch to complete", JOB_DEADLINE, || {
        let pods = job_pods(&kubectl, "batch");
        let running = pods
            .iter()
            .filter(|p| !matches!(str_at(p, "/status/phase").as_str(), "Succeeded" | "Failed"))
            .count();
        most_active = most_active.max(running);
        condition(&job(&kubectl, "batch"), "Complete").map(|_| ())
    });
    assert!(
        most_active <= 2,
        "{most_active} pods ran at once with parallelism 2"
    );
    kubectl.ok(&[
        "wait",
        "--for=condition=complete",
        "job/batch",
        "--timeout=10s",
    ]);
    let done = job(&kubectl, "batch");
    assert_eq!(done["status"]["succeeded"], 5, "{done:#}");
    assert!(done["status"].get("failed").is_none(), "{done:#}");
    assert!(done["status"]["completionTime"].is_string(), "{done:#}");
    assert!(condition(&done, "SuccessCriteriaMet").is_some(), "{done:#}");
    let complete = condition(&done, "Complete").expect("Complete condition");
    assert_eq!(complete["reason"], "CompletionsReached");
    assert_eq!(
        complete["message"],
        "Reached expected number of succeeded pods"
    );
    let pods = job_pods(&kubectl, "batch");
    assert_eq!(pods.len(), 5, "exactly five pods ran");
    for pod in &pods {
        assert_eq!(str_at(pod, "/status/phase"), "Succeeded");
        let finalizers = pod.pointer("/metadata/finalizers");
        assert!(
            finalizers.is_none_or(|f| f.as_array().is_some_and(Vec::is_empty)),
            "the tracking finalizer is removed once counted: {pod:#}"
        );
        assert_eq!(str_at(pod, "/metadata/ownerReferences/0/kind"), "Job");
    }
    let listing = kubectl.ok(&["get", "jobs"]);
    let rows: Vec<&str> = listing.lines().collect();
    assert_eq!(
        support::cells(rows[0]),
        ["NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE"]
    );
    let row = support::cells(rows[1]);
    assert_eq!(row[..3], ["batch", "Complete", "5/5"], "{listing}");
    assert!(
        support::is_age(row[3]) && support::is_age(row[4]),
        "{listing}"
    );
    let described = kubectl.ok(&["describe", "job", "batch"]);
    assert!(
        described.contains("Pods Statuses:    0 Active (0 Ready) / 5 Succeeded / 0 Failed"),
        "{described}"
    );
    assert!(
        described.lines().any(|l| support::cells(l)[..]
            == [
                "Normal",
                "Completed",
                support::cells(l).get(2).copied().unwrap_or(""),
                "job-controller",
                "Job",
                "completed"
            ]),
        "{described}"
    );
    let all = kubectl.ok(&["get", "all"]);
    assert!(all.contains("job.batch/batch"), "{all}");
    let events = events_for(&kubectl, "batch");
    let created = events
        .iter()
        .filter(|(_, reason, message)| {
            reason == "SuccessfulCreate" && message.starts_with("Created pod: batch-")
        })
        .count();
    assert!(created >= 1, "SuccessfulCreate events: {events:?}");
    assert!(
        events.contains(&("Normal".into(), "Completed".into(), "Job completed".into())),
        "{events:?}"
    );
}

#[test]
fn a_failing_job_stops_at_its_backoff_limit() {
    let (skiff, kubectl) = simulated_server();
    apply(
        &skiff,
        &kubectl,
        "flaky",
        &simulated_job("flaky", "  backoffLimit: 1\n", "fail-after"),
    );
    wait_for("job flaky to fail", JOB_DEADLINE, || {
        condition(&job(&kubectl, "flaky"), "Failed").map(|_| ())
    });
    kubectl.ok(&[
        "wait",
        "--for=condition=failed",
        "job/flaky",
        "--timeout=10s",
    ]);
    let failed = job(&kubectl, "flaky");
    assert_eq!(failed["status"]["failed"], 2, "{failed:#}");
    let cond = condition(&failed, "Failed").expect("Failed condition");
    assert_eq!(cond["reason"], "BackoffLimitExceeded");
    assert_eq!(
        cond["message"],
        "Job has reached the specified backoff limit"
    );
    assert!(condition(&failed, "FailureTarget").is_some(), "{failed:#}");
    let pods = job_pods(&kubectl, "flaky");
    assert_eq!(pods.len(), 2, "one pod and one retry");
    let mut finished: Vec<String> = pods
        .iter()
        .map(|p| str_at(p, "/status/containerStatuses/0/state/terminated/finishedAt"))
        .collect();
    let started: Vec<String> = pods
        .iter()
        .map(|p| str_at(p, "/metadata/creationTimestamp"))
        .collect();
    finished.sort();
    let first_failure: jiff::Timestamp = finished[0].parse().expect("a finish time");
    let retry_created = started
        .iter()
        .filter_map(|s| s.parse::<jiff::Timestamp>().ok())
        .max()
        .expect("creation times");
    assert!(
        retry_created.duration_since(first_failure).as_secs() >= 9,
        "the retry waits the 10 s back-off: failed at {first_failure}, retried at {retry_created}"
    );
    let events = events_for(&kubectl, "flaky");
    assert!(
        events.contains(&(
            "Warning".into(),
            "BackoffLimitExceeded".into(),
            "Job has reached the specified backoff limit".into()
        )),
        "{events:?}"
    );
    let listing = kubectl.ok(&["get", "job", "flaky", "--no-headers"]);
    let row = support::cells(&listing);
    assert_eq!(row[..3], ["flaky", "Failed", "0/1"], "{listing}");
}

#[test]
fn suspended_indexed_job_waits_then_runs_each_index_and_its_ttl_deletes_it() {
    let (skiff, kubectl) = simulated_server();
    apply(
        &skiff,
        &kubectl,
        "indexed",
        &simulated_job(
            "indexed",
            "  completions: 3\n  parallelism: 3\n  completionMode: Indexed\n  suspend: true\n  ttlSecondsAfterFinished: 2\n",
            "complete-after",
        ),
    );
    wait_for("job indexed to be suspended", JOB_DEADLINE, || {
        condition(&job(&kubectl, "indexed"), "Suspended").map(|_| ())
    });
    let listing = kubectl.ok(&["get", "job", "indexed", "--no-headers"]);
    assert_eq!(
        support::cells(&listing)[..3],
        ["indexed", "Suspended", "0/3"],
        "{listing}"
    );
    assert!(
        job_pods(&kubectl, "indexed").is_empty(),
        "a suspended job starts no pod"
    );

    kubectl.ok(&[
        "patch",
        "job",
        "indexed",
        "--type",
        "merge",
        "-p",
        r#"{"spec":{"suspend":false}}"#,
    ]);
    let mut seen_indexes = BTreeSet::new();
    let done = wait_for("job indexed to complete", JOB_DEADLINE, || {
        for pod in job_pods(&kubectl, "indexed") {
            let index = str_at(
                &pod,
                "/metadata/annotations/batch.kubernetes.io~1job-completion-index",
            );
            assert_eq!(
                str_at(
                    &pod,
                    "/metadata/labels/batch.kubernetes.io~1job-completion-index"
                ),
                index
            );
            assert_eq!(str_at(&pod, "/spec/hostname"), format!("indexed-{index}"));
            assert!(str_at(&pod, "/metadata/name").starts_with(&format!("indexed-{index}-")));
            let env = &pod["spec"]["containers"][0]["env"][0];
            assert_eq!(env["name"], "JOB_COMPLETION_INDEX", "{pod:#}");
            assert_eq!(
                env["valueFrom"]["fieldRef"]["fieldPath"],
                "metadata.annotations['batch.kubernetes.io/job-completion-index']"
            );
            seen_indexes.insert(index);
        }
        let j = job(&kubectl, "indexed");
        condition(&j, "Complete").is_some().then_some(j)
    });
    assert_eq!(done["status"]["completedIndexes"], "0-2", "{done:#}");
    assert_eq!(done["status"]["succeeded"], 3, "{done:#}");
    let resumed = done["status"]["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == "Suspended"))
        .cloned()
        .expect("the Suspended condition stays, False");
    assert_eq!(resumed["status"], "False");
    assert_eq!(resumed["reason"], "JobResumed");
    assert_eq!(
        seen_indexes,
        ["0", "1", "2"].iter().map(|s| s.to_string()).collect()
    );

    // ttlSecondsAfterFinished: the Job goes, and its pods with it.
    wait_for(
        "the finished job and its pods to be deleted",
        JOB_DEADLINE,
        || {
            let gone = kubectl.run(&["get", "job", "indexed"]);
            (!gone.success() && job_pods(&kubectl, "indexed").is_empty()).then_some(())
        },
    );
}

#[test]
fn invalid_jobs_are_refused_with_kubernetes_messages() {
    let skiff = Skiff::start();
    let kubectl = skiff.kubectl();
    let manifest = "apiVersion: batch/v1
kind: Job
metadata:
  name: bad
spec:
  template:
    spec:
      containers:
      - name: work
        image: busybox
";
    let path = skiff.write_file("bad.yaml", manifest);
    let err = kubectl.fails(&["create", "-f", &path]);
    assert!(
        err.contains(r#"The Job "bad" is invalid: spec.template.spec.restartPolicy: Unsupported value: "Always": supported values: "OnFailure", "Never""#),
        "{err}"
    );
    kubectl.ok(&["create", "job", "ok", "--image=busybox", "--", "true"]);
    let created = kubectl.json(&["get", "job", "ok"]);
    let uid = str_at(&created, "/metadata/uid");
    assert_eq!(
        created["spec"]["selector"]["matchLabels"]["batch.kubernetes.io/controller-uid"],
        uid.as_str()
    );
    for (key, value) in [
        ("batch.kubernetes.io/controller-uid", uid.as_str()),
        ("batch.kubernetes.io/job-name", "ok"),
        ("controller-uid", uid.as_str()),
        ("job-name", "ok"),
    ] {
        assert_eq!(
            created["spec"]["template"]["metadata"]["labels"][key],
            value
        );
        assert_eq!(created["metadata"]["labels"][key], value);
    }
    assert_eq!(created["spec"]["backoffLimit"], 6);
    assert_eq!(created["spec"]["completionMode"], "NonIndexed");
    assert_eq!(
        created["spec"]["podReplacementPolicy"],
        "TerminatingOrFailed"
    );
    let err = kubectl.fails(&[
        "patch",
        "job",
        "ok",
        "--type",
        "json",
        "-p",
        r#"[{"op":"replace","path":"/spec/template/spec/containers/0/image","value":"other"}]"#,
    ]);
    assert!(
        err.contains("spec.template: Invalid value:") && err.contains("field is immutable"),
        "{err}"
    );
}

#[test]
fn kubectl_create_job_runs_a_shell_command_on_the_real_node() {
    let skiff = Skiff::start_with_images(&[], &[support::images::shell()]);
    let kubectl = skiff.kubectl();
    kubectl.ok(&[
        "create",
        "job",
        "hello",
        &format!("--image={SHELL}"),
        "--",
        "sh",
        "-c",
        "echo hello from a job",
    ]);
    kubectl.ok(&[
        "wait",
        "--for=condition=complete",
        "job/hello",
        "--timeout=90s",
    ]);
    let listing = kubectl.ok(&["get", "jobs"]);
    let rows: Vec<&str> = listing.lines().collect();
    assert_eq!(rows.len(), 2, "{listing}");
    let row = support::cells(rows[1]);
    assert_eq!(row[..3], ["hello", "Complete", "1/1"], "{listing}");
    let logs = kubectl.ok(&["logs", "job/hello"]);
    assert_eq!(logs.trim(), "hello from a job");
    let wide = kubectl.ok(&["get", "job", "hello", "-o", "wide", "--no-headers"]);
    let uid = str_at(&job(&kubectl, "hello"), "/metadata/uid");
    assert_table(
        &wide,
        &[&[
            "hello",
            "Complete",
            "1/1",
            "<age>",
            "<age>",
            "hello",
            SHELL,
            &format!("batch.kubernetes.io/controller-uid={uid}"),
        ]],
    );
}

/// A CronJob for simulated nodes whose Jobs' pods succeed one second after they start.
fn simulated_cron_job(name: &str, schedule: &str) -> String {
    format!(
        "apiVersion: batch/v1
kind: CronJob
metadata:
  name: {name}
spec:
  schedule: \"{schedule}\"
  jobTemplate:
    spec:
      template:
        metadata:
          annotations:
            sim.skiff.dev/complete-after: 1s
        spec:
          restartPolicy: OnFailure
          containers:
          - name: work
            image: busybox
"
    )
}

fn cron_job_events(kubectl: &Kubectl, name: &str) -> Vec<(String, String, String)> {
    items(&kubectl.json(&[
        "get",
        "events",
        "--field-selector",
        &format!("involvedObject.kind=CronJob,involvedObject.name={name}"),
    ]))
    .iter()
    .map(|e| {
        (
            str_at(e, "/type"),
            str_at(e, "/reason"),
            str_at(e, "/message"),
        )
    })
    .collect()
}

#[test]
fn kubectl_create_cronjob_and_a_job_from_it() {
    let (skiff, kubectl) = simulated_server();
    kubectl.ok(&[
        "create",
        "cronjob",
        "nightly",
        "--image=busybox",
        "--schedule=0 3 * * *",
        "--",
        "true",
    ]);
    let listing = kubectl.ok(&["get", "cronjobs"]);
    let rows: Vec<&str> = listing.lines().collect();
    assert_eq!(
        support::cells(rows[0]),
        ["NAME", "SCHEDULE", "TIMEZONE", "SUSPEND", "ACTIVE", "LAST", "SCHEDULE", "AGE"],
        "{listing}"
    );
    let row = support::cells(rows[1]);
    assert_eq!(
        row[..row.len() - 1],
        ["nightly", "0", "3", "*", "*", "*", "<none>", "False", "0", "<none>"],
        "{listing}"
    );
    let all = kubectl.ok(&["get", "all"]);
    assert!(all.contains("cronjob.batch/nightly"), "{all}");
    let created = kubectl.json(&["get", "cronjob", "nightly"]);
    assert_eq!(created["spec"]["concurrencyPolicy"], "Allow");
    assert_eq!(created["spec"]["successfulJobsHistoryLimit"], 3);
    assert_eq!(created["spec"]["failedJobsHistoryLimit"], 1);
    assert_eq!(created["spec"]["suspend"], false);

    let err = kubectl.fails(&[
        "create",
        "cronjob",
        "bad",
        "--image=busybox",
        "--schedule=61 * * * *",
    ]);
    assert!(
        err.contains(r#"spec.schedule: Invalid value: "61 * * * *": end of range (61) above maximum (59): 61"#),
        "{err}"
    );

    apply(
        &skiff,
        &kubectl,
        "report",
        &simulated_cron_job("report", "0 3 * * *"),
    );
    kubectl.ok(&["create", "job", "report-manual", "--from=cronjob/report"]);
    let done = wait_for(
        "the job made from the cronjob to complete",
        JOB_DEADLINE,
        || {
            let j = job(&kubectl, "report-manual");
            condition(&j, "Complete").is_some().then_some(j)
        },
    );
    assert_eq!(
        done["metadata"]["annotations"]["cronjob.kubernetes.io/instantiate"],
        "manual"
    );
    assert_eq!(done["metadata"]["ownerReferences"][0]["kind"], "CronJob");
    assert_eq!(done["status"]["succeeded"], 1);
}

#[test]
fn a_cronjob_every_minute_starts_a_job_named_for_its_scheduled_minute() {
    let (skiff, kubectl) = simulated_server();
    apply(
        &skiff,
        &kubectl,
        "minutely",
        &simulated_cron_job("minutely", "*/1 * * * *"),
    );
    // The first run comes at the next whole minute: at most 60 s away.
    let first = wait_for(
        "the cronjob to start a job",
        Duration::from_secs(80),
        || {
            items(&kubectl.json(&["get", "jobs"]))
                .into_iter()
                .find(|j| str_at(j, "/metadata/ownerReferences/0/name") == "minutely")
        },
    );
    let name = str_at(&first, "/metadata/name");
    let scheduled = str_at(
        &first,
        "/metadata/annotations/batch.kubernetes.io~1cronjob-scheduled-timestamp",
    );
    let at: jiff::Timestamp = scheduled.parse().expect("an RFC 3339 scheduled time");
    assert_eq!(
        at.as_second() % 60,
        0,
        "scheduled on a whole minute: {scheduled}"
    );
    assert_eq!(name, format!("minutely-{}", at.as_second() / 60));
    let cj = wait_for(
        "the cronjob to record its successful run",
        JOB_DEADLINE,
        || {
            let cj = kubectl.json(&["get", "cronjob", "minutely"]);
            cj["status"]["lastSuccessfulTime"].is_string().then_some(cj)
        },
    );
    assert_eq!(
        cj["status"]["lastScheduleTime"],
        scheduled.as_str(),
        "{cj:#}"
    );
    let events = cron_job_events(&kubectl, "minutely");
    assert!(
        events.contains(&(
            "Normal".into(),
            "SuccessfulCreate".into(),
            format!("Created job {name}")
        )),
        "{events:?}"
    );
    wait_for("the cronjob to see its job complete", JOB_DEADLINE, || {
        cron_job_events(&kubectl, "minutely")
            .contains(&(
                "Normal".into(),
                "SawCompletedJob".into(),
                format!("Saw completed job: {name}, condition: Complete"),
            ))
            .then_some(())
    });
}

#[test]
fn deleting_a_job_without_a_policy_orphans_its_pods_with_kubernetes_warning() {
    let (skiff, kubectl) = simulated_server();
    apply(
        &skiff,
        &kubectl,
        "keep",
        &simulated_job(
            "keep",
            "  parallelism: 2\n  completions: 2\n",
            "complete-after",
        ),
    );
    wait_for("job keep to complete", JOB_DEADLINE, || {
        condition(&job(&kubectl, "keep"), "Complete").map(|_| ())
    });
    let out = kubectl.run(&[
        "delete",
        "--raw",
        "/apis/batch/v1/namespaces/default/jobs/keep",
    ]);
    assert!(out.success(), "{}", out.stderr);
    assert!(
        out.stderr.contains("child pods are preserved by default when jobs are deleted; set propagationPolicy=Background to remove them or set propagationPolicy=Orphan to suppress this warning"),
        "{}",
        out.stderr
    );
    let pods = wait_for(
        "the job to go and its pods to be orphaned",
        JOB_DEADLINE,
        || {
            let gone = !kubectl.run(&["get", "job", "keep"]).success();
            let pods = job_pods(&kubectl, "keep");
            let orphaned = pods.iter().all(|p| {
                p.pointer("/metadata/ownerReferences")
                    .is_none_or(|r| r.as_array().is_some_and(Vec::is_empty))
            });
            (gone && orphaned).then_some(pods)
        },
    );
    assert_eq!(pods.len(), 2, "the pods stay");
    // kubectl itself asks for background deletion: the pods go with the Job.
    apply(
        &skiff,
        &kubectl,
        "drop",
        &simulated_job("drop", "", "complete-after"),
    );
    wait_for("job drop to complete", JOB_DEADLINE, || {
        condition(&job(&kubectl, "drop"), "Complete").map(|_| ())
    });
    let out = kubectl.run(&["delete", "job", "drop"]);
    assert!(
        out.success() && !out.stderr.contains("preserved"),
        "{}",
        out.stderr
    );
    wait_for("the pods of job drop to go", JOB_DEADLINE, || {
        job_pods(&kubectl, "drop").is_empty().then_some(())
    });
}

/// A Job on the real node whose single container runs `script` in the test kit's shell image.
fn shell_job(name: &str, spec_extra: &str, script: &str) -> String {
    format!(
        "apiVersion: batch/v1
kind: Job
metadata:
  name: {name}
spec:
{spec_extra}  template:
    spec:
      restartPolicy: Never
      terminationGracePeriodSeconds: 1
      containers:
      - name: work
        image: {SHELL}
        command: [\"sh\", \"-c\", {script:?}]
"
    )
}

fn true_condition(kubectl: &Kubectl, name: &str, type_: &str) -> Option<Value> {
    condition(&job(kubectl, name), type_).cloned()
}

#[test]
fn failure_and_success_policies_decide_how_jobs_end_on_the_real_node() {
    let skiff = Skiff::start_with_images(&[], &[support::images::shell()]);
    let kubectl = skiff.kubectl();
    // Exit code 5 matches the FailJob rule: the Job fails at once, with its backoff limit unused.
    apply(
        &skiff,
        &kubectl,
        "exit-five",
        &shell_job(
            "exit-five",
            "  backoffLimit: 6
  podFailurePolicy:
    rules:
    - action: Ignore
      onExitCodes:
        operator: In
        values: [3]
    - action: FailJob
      onExitCodes:
        containerName: work
        operator: In
        values: [5]
",
            "exit 5",
        ),
    );
    // Index 0 succeeds at once and the success policy needs only it; the others would sleep.
    apply(
        &skiff,
        &kubectl,
        "leader",
        &shell_job(
            "leader",
            "  completionMode: Indexed
  completions: 3
  parallelism: 3
  successPolicy:
    rules:
    - succeededIndexes: \"0\"
",
            "if [ \"$JOB_COMPLETION_INDEX\" = 0 ]; then exit 0; fi; sleep 300",
        ),
    );
    // Index 1 fails with no retry allowed; index 0 succeeds: the Job fails for its index.
    apply(
        &skiff,
        &kubectl,
        "per-index",
        &shell_job(
            "per-index",
            "  completionMode: Indexed
  completions: 2
  parallelism: 2
  backoffLimitPerIndex: 0
",
            "exit $JOB_COMPLETION_INDEX",
        ),
    );

    let failed = wait_for("job exit-five to fail", JOB_DEADLINE, || {
        true_condition(&kubectl, "exit-five", "Failed")
    });
    assert_eq!(failed["reason"], "PodFailurePolicy", "{failed}");
    let pods = job_pods(&kubectl, "exit-five");
    assert_eq!(pods.len(), 1, "one pod, no retry: {pods:?}");
    let pod_name = str_at(&pods[0], "/metadata/name");
    let namespace = str_at(&pods[0], "/metadata/namespace");
    let message = format!(
        "Container work for pod {namespace}/{pod_name} failed with exit code 5 matching FailJob \
         rule at index 1"
    );
    assert_eq!(failed["message"], message.as_str(), "{failed}");
    let target = true_condition(&kubectl, "exit-five", "FailureTarget")
        .expect("FailureTarget stays beside Failed");
    assert_eq!(target["reason"], "PodFailurePolicy");
    let exit_five = job(&kubectl, "exit-five");
    assert_eq!(exit_five["status"]["failed"], 1, "{exit_five}");
    assert!(
        events_for(&kubectl, "exit-five").contains(&(
            "Warning".to_string(),
            "PodFailurePolicy".to_string(),
            message.clone()
        )),
        "{:?}",
        events_for(&kubectl, "exit-five")
    );

    let complete = wait_for("job leader to complete", JOB_DEADLINE, || {
        true_condition(&kubectl, "leader", "Complete")
    });
    assert_eq!(complete["reason"], "SuccessPolicy", "{complete}");
    assert_eq!(
        complete["message"], "Matched rules at index 0",
        "{complete}"
    );
    let met = true_condition(&kubectl, "leader", "SuccessCriteriaMet")
        .expect("SuccessCriteriaMet comes before Complete");
    assert_eq!(met["reason"], "SuccessPolicy");
    let leader = job(&kubectl, "leader");
    assert_eq!(leader["status"]["succeeded"], 1, "{leader}");
    assert_eq!(leader["status"]["completedIndexes"], "0", "{leader}");
    assert!(
        leader["status"].get("failed").is_none(),
        "the pods the success stopped are no failures: {leader}"
    );
    let listing = kubectl.ok(&["get", "job", "leader", "--no-headers"]);
    assert_eq!(
        support::cells(listing.lines().next().unwrap_or(""))[..3],
        ["leader", "Complete", "1/3"],
        "{listing}"
    );

    let failed = wait_for("job per-index to fail", JOB_DEADLINE, || {
        true_condition(&kubectl, "per-index", "Failed")
    });
    assert_eq!(failed["reason"], "FailedIndexes", "{failed}");
    assert_eq!(failed["message"], "Job has failed indexes", "{failed}");
    let per_index = job(&kubectl, "per-index");
    assert_eq!(per_index["status"]["failedIndexes"], "1", "{per_index}");
    assert_eq!(per_index["status"]["completedIndexes"], "0", "{per_index}");
    let pods = job_pods(&kubectl, "per-index");
    assert_eq!(pods.len(), 2, "the failed index was not retried: {pods:?}");
    for pod in &pods {
        assert_eq!(
            pod["metadata"]["annotations"]["batch.kubernetes.io/job-index-failure-count"], "0",
            "{pod}"
        );
    }
}

#[test]
fn invalid_failure_and_success_policies_are_refused_with_kubernetes_messages() {
    let skiff = Skiff::start_with(&["--no-node"]);
    let kubectl = skiff.kubectl();
    let cases = [
        (
            "  podFailurePolicy:
    rules:
    - action: FailIndex
      onExitCodes:
        operator: In
        values: [1]
",
            r#"spec.podFailurePolicy.rules[0].action: Invalid value: "FailIndex": requires the backoffLimitPerIndex to be set"#,
        ),
        (
            "  podFailurePolicy:
    rules:
    - action: Count
",
            "spec.podFailurePolicy.rules[0]: Invalid value: specifying one of OnExitCodes and OnPodConditions is required",
        ),
        (
            "  podFailurePolicy:
    rules:
    - action: Ignore
      onExitCodes:
        containerName: other
        operator: In
        values: [1]
",
            r#"spec.podFailurePolicy.rules[0].onExitCodes.containerName: Invalid value: "other": must be one of the container or initContainer names in the pod template"#,
        ),
        (
            "  backoffLimitPerIndex: 1\n",
            "spec.backoffLimitPerIndex: Invalid value: 1: requires indexed completion mode",
        ),
        (
            "  completionMode: Indexed\n  completions: 2\n  maxFailedIndexes: 1\n",
            "spec.backoffLimitPerIndex: Required value: when maxFailedIndexes is specified",
        ),
    ];
    for (n, (spec, message)) in cases.iter().enumerate() {
        let name = format!("bad-{n}");
        let path = skiff.write_file(
            &format!("{name}.yaml"),
            &simulated_job(&name, spec, "complete-after"),
        );
        let err = kubectl.fails(&["create", "-f", &path]);
        assert!(err.contains(message), "case {n}: {err}");
    }
}
