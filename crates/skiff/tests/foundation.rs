//! The Foundation acceptance tests: a real `skiff up` driven by the real `kubectl`.
//!
//! Run with `cargo test -p skiff --test foundation`. Needs `kubectl` on the PATH; the versioned
//! clients (`kubectl.1.27` ... `kubectl.1.33`) beside it are used when present.

mod support;

use std::collections::BTreeSet;

use serde_json::Value;
use support::json::json_of;
use support::{assert_table, cells, versioned_kubectls, wait_for, Kubectl, Skiff, DEADLINE};

/// An httpd Deployment as a user would write it.
fn web_manifest(image: &str) -> String {
    format!(
        "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels:
    app: web
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
      - name: httpd
        image: {image}
        ports:
        - containerPort: 80
"
    )
}

/// Waits until the Deployment controller has created every replica of `name` (no node runs
/// them, so they stay unavailable).
fn wait_updated(kubectl: &Kubectl, namespace: &str, name: &str, replicas: u32) {
    wait_for(
        &format!("deployment {name} to have {replicas} updated replicas"),
        DEADLINE,
        || {
            let out = kubectl.run(&[
                "get",
                "deploy",
                name,
                "-n",
                namespace,
                "-o",
                "jsonpath={.status.updatedReplicas}/{.status.replicas}",
            ]);
            (out.success() && out.stdout.trim() == format!("{replicas}/{replicas}")).then_some(())
        },
    );
}

fn yaml_of(text: &str) -> Value {
    skiff_api::yaml::from_str(text)
        .unwrap_or_else(|e| panic!("kubectl printed invalid YAML ({e}):\n{text}"))
}

/// Watch events as `kubectl get --raw` prints them: one JSON document per line.
fn watch_events(text: &str) -> Vec<Value> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(json_of)
        .collect()
}

/// `(type, name, resourceVersion)` of each watch event, for exact comparisons.
fn event_summary(events: &[Value]) -> Vec<(String, String, String)> {
    events
        .iter()
        .map(|e| {
            let field = |p: &str| {
                e.pointer(p)
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string()
            };
            (
                field("/type"),
                field("/object/metadata/name"),
                field("/object/metadata/resourceVersion"),
            )
        })
        .collect()
}

fn resource_version(kubectl: &Kubectl, what: &str) -> u64 {
    let rv = kubectl.ok(&["get", what, "-o", "jsonpath={.metadata.resourceVersion}"]);
    rv.trim()
        .parse()
        .unwrap_or_else(|_| panic!("{what} has a non-numeric resourceVersion {rv:?}"))
}

/// The response body kubectl logged at `-v=8` (`"Response Body" body="..."`), decoded.
fn logged_response_body(stderr: &str) -> Value {
    let marker = "\"Response Body\" body=\"";
    let line = stderr
        .lines()
        .find(|l| l.contains(marker))
        .unwrap_or_else(|| panic!("no response body logged in:\n{stderr}"));
    let quoted = &line[line.find(marker).map_or(0, |i| i + marker.len())..];
    // The body is logged as a Go quoted string: undo its escapes up to the closing quote.
    let mut body = String::new();
    let mut chars = quoted.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => break,
            '\\' => match chars.next() {
                Some('n') => body.push('\n'),
                Some('t') => body.push('\t'),
                Some(other) => body.push(other),
                None => break,
            },
            other => body.push(other),
        }
    }
    json_of(&body)
}

/// Asserts that the server still answers after a bad request.
fn assert_still_serving(kubectl: &Kubectl) {
    let namespaces = kubectl.ok(&["get", "ns", "-o", "name"]);
    assert!(
        namespaces.lines().any(|l| l == "namespace/default"),
        "the server stopped serving; get ns printed {namespaces:?}"
    );
}

#[test]
fn deployment_lifecycle_through_apply_watch_scale_and_delete() {
    let skiff = Skiff::start();
    let kubectl = skiff.kubectl();
    let manifest = skiff.write_file("web.yaml", &web_manifest("httpd:2.4"));

    assert_eq!(
        kubectl.ok(&["apply", "-f", &manifest]),
        "deployment.apps/web created\n"
    );
    wait_updated(&kubectl, "default", "web", 3);
    assert_table(
        &kubectl.ok(&["get", "deployments", "-o", "wide"]),
        &[
            &[
                "NAME",
                "READY",
                "UP-TO-DATE",
                "AVAILABLE",
                "AGE",
                "CONTAINERS",
                "IMAGES",
                "SELECTOR",
            ],
            &[
                "web",
                "0/3",
                "3",
                "0",
                "<age>",
                "httpd",
                "httpd:2.4",
                "app=web",
            ],
        ],
    );

    // The stored object carries every default the Kubernetes API server fills in.
    let live = yaml_of(&kubectl.ok(&["get", "deploy/web", "-o", "yaml"]));
    let expectations: &[(&str, Value)] = &[
        ("/apiVersion", "apps/v1".into()),
        ("/kind", "Deployment".into()),
        ("/metadata/namespace", "default".into()),
        ("/metadata/generation", 1.into()),
        ("/spec/replicas", 3.into()),
        ("/spec/revisionHistoryLimit", 10.into()),
        ("/spec/progressDeadlineSeconds", 600.into()),
        ("/spec/strategy/type", "RollingUpdate".into()),
        ("/spec/strategy/rollingUpdate/maxSurge", "25%".into()),
        ("/spec/strategy/rollingUpdate/maxUnavailable", "25%".into()),
        ("/spec/template/spec/restartPolicy", "Always".into()),
        ("/spec/template/spec/dnsPolicy", "ClusterFirst".into()),
        (
            "/spec/template/spec/schedulerName",
            "default-scheduler".into(),
        ),
        (
            "/spec/template/spec/terminationGracePeriodSeconds",
            30.into(),
        ),
        ("/spec/template/spec/securityContext", serde_json::json!({})),
        (
            "/spec/template/spec/containers/0/imagePullPolicy",
            "IfNotPresent".into(),
        ),
        (
            "/spec/template/spec/containers/0/terminationMessagePath",
            "/dev/termination-log".into(),
        ),
        (
            "/spec/template/spec/containers/0/terminationMessagePolicy",
            "File".into(),
        ),
        (
            "/spec/template/spec/containers/0/ports/0/protocol",
            "TCP".into(),
        ),
        (
            "/spec/template/spec/containers/0/resources",
            serde_json::json!({}),
        ),
    ];
    for (pointer, want) in expectations {
        assert_eq!(live.pointer(pointer), Some(want), "{pointer} in\n{live:#}");
    }
    for present in [
        "/metadata/uid",
        "/metadata/creationTimestamp",
        "/metadata/resourceVersion",
        "/metadata/annotations/kubectl.kubernetes.io~1last-applied-configuration",
    ] {
        assert!(
            live.pointer(present).is_some(),
            "{present} missing in\n{live:#}"
        );
    }

    // Applying the same file again changes nothing and sends no patch.
    assert_eq!(
        kubectl.ok(&["apply", "-f", &manifest]),
        "deployment.apps/web unchanged\n"
    );

    // A watch started now prints the change as it happens.
    let mut watch = kubectl.spawn_lines(&["get", "deploy", "-w", "-o", "wide"]);
    watch.wait_for_line("the watch header", |l| cells(l).first() == Some(&"NAME"));
    watch.wait_for_line("the initial row", |l| {
        cells(l).first() == Some(&"web") && l.contains("httpd:2.4 ")
    });

    skiff.write_file("web.yaml", &web_manifest("httpd:2.4.62"));
    assert_eq!(
        kubectl.ok(&["apply", "-f", &manifest]),
        "deployment.apps/web configured\n"
    );
    let updated = json_of(&kubectl.ok(&["get", "deploy", "web", "-o", "json"]));
    assert_eq!(updated["metadata"]["generation"], 2);
    assert_eq!(
        updated["spec"]["template"]["spec"]["containers"][0]["image"],
        "httpd:2.4.62"
    );
    assert_eq!(
        updated["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"], 80,
        "the strategic merge patch must keep the container's other fields"
    );
    let row = watch.wait_for_line("the row with the new image", |l| l.contains("httpd:2.4.62"));
    assert_eq!(cells(&row)[0], "web");

    assert_eq!(
        kubectl.ok(&["scale", "deployment/web", "--replicas=5"]),
        "deployment.apps/web scaled\n"
    );
    let scaled = json_of(&kubectl.ok(&["get", "deploy", "web", "-o", "json"]));
    assert_eq!(scaled["spec"]["replicas"], 5);
    assert_eq!(
        scaled["metadata"]["generation"], 3,
        "a scale changes the spec, so the generation moves"
    );
    let scale = json_of(&kubectl.ok(&[
        "get",
        "--raw",
        "/apis/apps/v1/namespaces/default/deployments/web/scale",
    ]));
    assert_eq!(scale["kind"], "Scale");
    assert_eq!(scale["apiVersion"], "autoscaling/v1");
    assert_eq!(scale["spec"]["replicas"], 5);
    assert_eq!(scale["status"]["selector"], "app=web");
    watch.wait_for_line("the scaled row", |l| {
        let c = cells(l);
        c.first() == Some(&"web") && c.get(1) == Some(&"0/5")
    });
    drop(watch);

    assert_eq!(
        kubectl.ok(&["delete", "-f", &manifest]),
        "deployment.apps \"web\" deleted\n"
    );
    assert_eq!(
        kubectl.fails(&["get", "deploy", "web"]),
        "Error from server (NotFound): deployments.apps \"web\" not found\n"
    );
    assert_eq!(
        kubectl.run(&["get", "deployments"]).stderr,
        "No resources found in default namespace.\n"
    );
}

/// The compact sequence every supported client runs against one server.
fn smoke(kubectl: &Kubectl, skiff: &Skiff, namespace: &str) {
    let ns = ["-n", namespace];
    let with_ns = |args: &[&str]| -> Vec<String> {
        args.iter()
            .chain(ns.iter())
            .map(|s| s.to_string())
            .collect()
    };
    let run_ok = |args: &[&str]| -> String {
        let owned = with_ns(args);
        let refs: Vec<&str> = owned.iter().map(String::as_str).collect();
        kubectl.ok(&refs)
    };

    assert_eq!(
        kubectl.ok(&["create", "namespace", namespace]),
        format!("namespace/{namespace} created\n")
    );
    // 1.32 and later send this body as protobuf.
    assert_eq!(
        run_ok(&["create", "deployment", "nginx", "--image=nginx:1.18"]),
        "deployment.apps/nginx created\n"
    );
    let manifest = skiff.write_file("smoke-web.yaml", &web_manifest("httpd:2.4"));
    assert_eq!(
        run_ok(&["apply", "-f", &manifest]),
        "deployment.apps/web created\n"
    );
    wait_updated(kubectl, namespace, "nginx", 1);
    wait_updated(kubectl, namespace, "web", 3);
    let nginx = json_of(&run_ok(&["get", "deploy", "nginx", "-o", "json"]));
    assert_eq!(nginx["spec"]["strategy"]["type"], "RollingUpdate");
    assert_eq!(
        nginx["spec"]["template"]["spec"]["containers"][0]["image"],
        "nginx:1.18"
    );
    assert_table(
        &run_ok(&["get", "deployments", "-o", "wide"]),
        &[
            &[
                "NAME",
                "READY",
                "UP-TO-DATE",
                "AVAILABLE",
                "AGE",
                "CONTAINERS",
                "IMAGES",
                "SELECTOR",
            ],
            &[
                "nginx",
                "0/1",
                "1",
                "0",
                "<age>",
                "nginx",
                "nginx:1.18",
                "app=nginx",
            ],
            &[
                "web",
                "0/3",
                "3",
                "0",
                "<age>",
                "httpd",
                "httpd:2.4",
                "app=web",
            ],
        ],
    );
    assert_eq!(
        run_ok(&["scale", "deploy/web", "--replicas=5"]),
        "deployment.apps/web scaled\n"
    );
    wait_updated(kubectl, namespace, "web", 5);
    // `get all` prints one table per kind: pods, deployments, replica sets.
    let all = run_ok(&["get", "all"]);
    let sections: Vec<&str> = all.split("\n\n").map(str::trim).collect();
    let section = |header: &[&str]| -> &str {
        sections
            .iter()
            .copied()
            .find(|s| cells(s.lines().next().unwrap_or("")) == header)
            .unwrap_or_else(|| panic!("no {header:?} table in:\n{all}"))
    };
    let pods = section(&["NAME", "READY", "STATUS", "RESTARTS", "AGE"]);
    assert_eq!(pods.lines().count(), 1 + 6, "{pods}");
    assert!(
        pods.lines()
            .skip(1)
            .all(|l| l.starts_with("pod/") && cells(l)[2] == "Pending"),
        "{pods}"
    );
    assert_table(
        section(&["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]),
        &[
            &["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"],
            &["deployment.apps/nginx", "0/1", "1", "0", "<age>"],
            &["deployment.apps/web", "0/5", "5", "0", "<age>"],
        ],
    );
    let replica_sets = section(&["NAME", "DESIRED", "CURRENT", "READY", "AGE"]);
    assert_eq!(replica_sets.lines().count(), 1 + 2, "{replica_sets}");
    assert!(
        replica_sets
            .lines()
            .any(|l| l.starts_with("replicaset.apps/web-") && cells(l)[1] == "5"),
        "{replica_sets}"
    );
    let namespaces = kubectl.ok(&["get", "ns"]);
    assert_eq!(
        cells(namespaces.lines().next().unwrap_or("")),
        ["NAME", "STATUS", "AGE"]
    );
    for expected in [
        "default",
        "kube-system",
        "kube-public",
        "kube-node-lease",
        namespace,
    ] {
        assert!(
            namespaces.lines().any(|l| {
                let c = cells(l);
                c.len() == 3 && c[0] == expected && c[1] == "Active" && support::is_age(c[2])
            }),
            "namespace {expected} is not listed as Active:\n{namespaces}"
        );
    }

    let resources = kubectl.ok(&["api-resources"]);
    let rows: BTreeSet<Vec<&str>> = resources.lines().map(cells).collect();
    for row in [
        vec!["NAME", "SHORTNAMES", "APIVERSION", "NAMESPACED", "KIND"],
        vec!["namespaces", "ns", "v1", "false", "Namespace"],
        vec!["configmaps", "cm", "v1", "true", "ConfigMap"],
        vec!["pods", "po", "v1", "true", "Pod"],
        vec!["deployments", "deploy", "apps/v1", "true", "Deployment"],
        vec!["replicasets", "rs", "apps/v1", "true", "ReplicaSet"],
    ] {
        assert!(
            rows.contains(&row),
            "api-resources lacks {row:?}:\n{resources}"
        );
    }

    let explained = kubectl.ok(&["explain", "deployment.spec.replicas"]);
    assert!(
        explained.contains("replicas") && explained.contains("<integer>"),
        "explain printed:\n{explained}"
    );
    assert!(
        explained.contains("Number of desired pods."),
        "explain printed:\n{explained}"
    );

    assert_eq!(
        run_ok(&["delete", "deployment", "nginx", "web"]),
        "deployment.apps \"nginx\" deleted\ndeployment.apps \"web\" deleted\n"
    );
    assert_eq!(
        kubectl.ok(&["delete", "namespace", namespace]),
        format!("namespace \"{namespace}\" deleted\n")
    );
}

#[test]
fn every_supported_kubectl_runs_the_smoke_sequence() {
    let skiff = Skiff::start();
    let mut clients = vec![skiff.kubectl()];
    let versioned = versioned_kubectls();
    if versioned.is_empty() {
        println!(
            "no kubectl.1.<minor> clients beside the kubectl on the PATH; covering the PATH kubectl only"
        );
    }
    clients.extend(versioned.iter().map(|b| skiff.kubectl_at(b)));
    for kubectl in &clients {
        println!("smoke sequence with {}", kubectl.label());
        let namespace = format!("smoke-{}", kubectl.label().replace('.', "-"));
        smoke(kubectl, &skiff, &namespace);
    }
}

#[test]
fn concurrent_updates_with_the_same_resource_version_conflict() {
    let skiff = Skiff::start();
    let kubectl = skiff.kubectl();
    let manifest = skiff.write_file("web.yaml", &web_manifest("httpd:2.4"));
    kubectl.ok(&["apply", "-f", &manifest]);
    // Let the Deployment controller finish its own writes first, so that only the two
    // replaces race.
    wait_updated(&kubectl, "default", "web", 3);
    let stale = kubectl.ok(&["get", "deploy", "web", "-o", "yaml"]);
    assert!(
        stale.contains("  replicas: 3\n"),
        "unexpected object:\n{stale}"
    );
    let first = skiff.write_file(
        "first.yaml",
        &stale.replacen("  replicas: 3\n", "  replicas: 4\n", 1),
    );
    let second = skiff.write_file(
        "second.yaml",
        &stale.replacen("  replicas: 3\n", "  replicas: 6\n", 1),
    );

    // Both PUTs carry the resourceVersion read above; they race.
    let (a, b) = std::thread::scope(|scope| {
        let a = scope.spawn(|| kubectl.run(&["replace", "-f", &first]));
        let b = scope.spawn(|| kubectl.run(&["replace", "-f", &second]));
        (a.join(), b.join())
    });
    let (a, b) = (
        a.unwrap_or_else(|_| panic!("first replace panicked")),
        b.unwrap_or_else(|_| panic!("second replace panicked")),
    );
    let (winner, loser, loser_file, replicas) = match (a.success(), b.success()) {
        (true, false) => (a, b, "second.yaml", 4),
        (false, true) => (b, a, "first.yaml", 6),
        _ => panic!("exactly one replace must win; got {a:?} and {b:?}"),
    };
    assert_eq!(winner.stdout, "deployment.apps/web replaced\n");
    assert_eq!(
        loser.stderr,
        format!(
            "Error from server (Conflict): error when replacing \"{loser_file}\": Operation cannot be fulfilled on deployments.apps \"web\": the object has been modified; please apply your changes to the latest version and try again\n"
        )
    );
    let live = kubectl.ok(&["get", "deploy", "web", "-o", "jsonpath={.spec.replicas}"]);
    assert_eq!(
        live,
        replicas.to_string(),
        "the winner's write is the one stored"
    );
}

#[test]
fn watch_resumes_exactly_after_a_resource_version() {
    let skiff = Skiff::start();
    let kubectl = skiff.kubectl();
    kubectl.ok(&["create", "configmap", "before"]);
    let from = resource_version(&kubectl, "configmap/before");
    kubectl.ok(&["create", "configmap", "a", "--from-literal=k=1"]);
    kubectl.ok(&["patch", "configmap", "a", "-p", r#"{"data":{"k":"2"}}"#]);
    kubectl.ok(&["create", "configmap", "b"]);
    kubectl.ok(&["delete", "configmap", "a"]);
    // Another namespace's writes are not part of this watch.
    kubectl.ok(&["create", "configmap", "elsewhere", "-n", "kube-public"]);

    let out = kubectl.ok(&[
        "get",
        "--raw",
        &format!(
            "/api/v1/namespaces/default/configmaps?watch=1&resourceVersion={from}&timeoutSeconds=1"
        ),
    ]);
    let events = watch_events(&out);
    let (a1, a2, b1, a3) = (from + 1, from + 2, from + 3, from + 4);
    let expected: Vec<(String, String, String)> = [
        ("ADDED", "a", a1),
        ("MODIFIED", "a", a2),
        ("ADDED", "b", b1),
        ("DELETED", "a", a3),
    ]
    .iter()
    .map(|(t, n, rv)| (t.to_string(), n.to_string(), rv.to_string()))
    .collect();
    assert_eq!(event_summary(&events), expected, "watch printed:\n{out}");
    assert_eq!(events[1]["object"]["data"]["k"], "2");
    assert_eq!(events[0]["object"]["kind"], "ConfigMap");

    // From the newest revision on, nothing has happened yet.
    let newest = resource_version(&kubectl, "configmap/b");
    let out = kubectl.ok(&[
        "get",
        "--raw",
        &format!(
            "/api/v1/namespaces/default/configmaps?watch=1&resourceVersion={}&timeoutSeconds=1",
            newest + 1
        ),
    ]);
    assert_eq!(
        out.trim(),
        "",
        "no events happened after the newest revision"
    );
}

#[test]
fn watch_from_a_compacted_revision_expires_with_410() {
    let skiff = Skiff::start_with(&["--compaction-interval", "1"]);
    let kubectl = skiff.kubectl();
    kubectl.ok(&["create", "configmap", "old"]);
    let old = resource_version(&kubectl, "configmap/old");
    kubectl.ok(&["create", "configmap", "newer"]);
    let newer = resource_version(&kubectl, "configmap/newer");
    assert!(newer > old);

    // Compaction runs every second and keeps one interval of history, so the revision of `old`
    // is soon forgotten.
    let event = wait_for("the old revision to be compacted", DEADLINE, || {
        let out = kubectl.ok(&[
            "get",
            "--raw",
            &format!(
                "/api/v1/namespaces/default/configmaps?watch=1&resourceVersion={old}&timeoutSeconds=1"
            ),
        ]);
        let events = watch_events(&out);
        events.into_iter().find(|e| e["type"] == "ERROR")
    });
    let status = &event["object"];
    assert_eq!(status["kind"], "Status");
    assert_eq!(status["apiVersion"], "v1");
    assert_eq!(status["status"], "Failure");
    assert_eq!(status["reason"], "Expired");
    assert_eq!(status["code"], 410);
    let message = status["message"].as_str().unwrap_or("");
    assert!(
        message.starts_with(&format!("too old resource version: {old} (")),
        "unexpected message {message:?}"
    );
    // Watching from the current state still works.
    let current = resource_version(&kubectl, "configmap/newer");
    let out = kubectl.ok(&[
        "get",
        "--raw",
        &format!("/api/v1/namespaces/default/configmaps?watch=1&resourceVersion={current}&timeoutSeconds=1"),
    ]);
    assert!(
        !out.contains("\"ERROR\""),
        "watch from the current revision failed:\n{out}"
    );
}

#[test]
fn state_survives_a_restart_on_the_same_data_directory() {
    let mut skiff = Skiff::start();
    let kubectl = skiff.kubectl();
    kubectl.ok(&["create", "namespace", "team-a"]);
    let manifest = skiff.write_file("web.yaml", &web_manifest("httpd:2.4"));
    kubectl.ok(&["apply", "-n", "team-a", "-f", &manifest]);
    kubectl.ok(&["scale", "-n", "team-a", "deploy/web", "--replicas=4"]);
    kubectl.ok(&[
        "create",
        "configmap",
        "settings",
        "--from-literal=mode=fast",
    ]);
    let before = json_of(&kubectl.ok(&["get", "deploy", "web", "-n", "team-a", "-o", "json"]));
    let settings_before = json_of(&kubectl.ok(&["get", "configmap", "settings", "-o", "json"]));

    let status = skiff.stop();
    assert!(status.success(), "skiff exited with {status} on SIGTERM");
    skiff.restart();
    let kubectl = skiff.kubectl();

    let after = json_of(&kubectl.ok(&["get", "deploy", "web", "-n", "team-a", "-o", "json"]));
    assert_eq!(after, before, "the deployment changed across the restart");
    let settings_after = json_of(&kubectl.ok(&["get", "configmap", "settings", "-o", "json"]));
    assert_eq!(settings_after, settings_before);
    let namespaces = kubectl.ok(&["get", "ns", "team-a", "-o", "jsonpath={.status.phase}"]);
    assert_eq!(namespaces, "Active");

    // Writes after the restart continue the revision sequence.
    kubectl.ok(&["create", "configmap", "later"]);
    let later = resource_version(&kubectl, "configmap/later");
    let settings_rv: u64 = settings_before["metadata"]["resourceVersion"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or(u64::MAX);
    assert!(later > settings_rv, "revision {later} reused after restart");

    // Even a hard kill loses nothing that was acknowledged.
    kubectl.ok(&["create", "configmap", "acknowledged"]);
    skiff.kill();
    skiff.restart();
    let kubectl = skiff.kubectl();
    kubectl.ok(&["get", "configmap", "acknowledged"]);
}

#[test]
fn bad_requests_get_kubernetes_errors_and_the_server_keeps_serving() {
    let skiff = Skiff::start();
    let kubectl = skiff.kubectl();

    // Malformed YAML is refused by kubectl before anything is sent.
    let bad_yaml = skiff.write_file(
        "bad.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: [oops\n",
    );
    let stderr = kubectl.fails(&["apply", "-f", &bad_yaml]);
    assert!(
        stderr.starts_with("error: error parsing ")
            && stderr.contains("error converting YAML to JSON: yaml: line 4:"),
        "unexpected error: {stderr}"
    );

    // Malformed JSON sent as is reaches the server, which answers 400 BadRequest.
    let bad_json = skiff.write_file(
        "bad.json",
        "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\n",
    );
    let stderr = kubectl.fails(&[
        "create",
        "--raw",
        "/api/v1/namespaces/default/configmaps",
        "-f",
        &bad_json,
    ]);
    // Kubernetes' words, down to the summary of the body.
    assert_eq!(
        stderr,
        "Error from server (BadRequest): the object provided is unrecognized (must be of type ConfigMap): couldn't get version/kind; json parse error: unexpected end of JSON input ({\"apiVersion\":\"v1\",\"kind\":\"Con ...)\n"
    );
    assert_still_serving(&kubectl);

    // An unknown kind: kubectl finds no resource for it.
    let widget = skiff.write_file(
        "widget.yaml",
        "apiVersion: v1\nkind: Widget\nmetadata:\n  name: w\n",
    );
    let stderr = kubectl.fails(&["apply", "--validate=false", "-f", &widget]);
    assert_eq!(
        stderr,
        "error: resource mapping not found for name: \"w\" namespace: \"\" from \"widget.yaml\": no matches for kind \"Widget\" in version \"v1\"\nensure CRDs are installed first\n"
    );
    // Sent to an endpoint of another kind, it is refused rather than stored as that kind.
    let widget_v1 = skiff.write_file(
        "widget-v1.json",
        r#"{"apiVersion":"v1","kind":"Widget","metadata":{"name":"w"}}"#,
    );
    assert_eq!(
        kubectl.fails(&[
            "create",
            "--raw",
            "/api/v1/namespaces/default/configmaps",
            "-f",
            &widget_v1,
        ]),
        "Error from server (BadRequest): Widget in version \"v1\" cannot be handled as a ConfigMap: no kind \"Widget\" is registered for version \"v1\" in scheme \"pkg/api/legacyscheme/scheme.go:30\"\n"
    );
    kubectl.fails(&["get", "configmap", "w"]);
    // And a path for a resource that is not served is 404 NotFound.
    let widget_json = skiff.write_file(
        "widget.json",
        r#"{"apiVersion":"example.com/v1","kind":"Widget","metadata":{"name":"w"}}"#,
    );
    let stderr = kubectl.fails(&[
        "create",
        "--raw",
        "/apis/example.com/v1/namespaces/default/widgets",
        "-f",
        &widget_json,
    ]);
    assert_eq!(
        stderr,
        "Error from server (NotFound): the server could not find the requested resource\n"
    );
    assert_still_serving(&kubectl);

    // An invalid Deployment: 422 Invalid with every field error.
    let invalid = skiff.write_file(
        "bad-deploy.yaml",
        "apiVersion: apps/v1
kind: Deployment
metadata:
  name: bad
spec:
  replicas: -1
  selector:
    matchLabels:
      app: a
  template:
    metadata:
      labels:
        app: b
    spec:
      containers:
      - name: c
        image: nginx
",
    );
    let expected_invalid = "The Deployment \"bad\" is invalid: \n\
        * spec.replicas: Invalid value: -1: must be greater than or equal to 0\n\
        * spec.template.metadata.labels: Invalid value: {\"app\":\"b\"}: `selector` does not match template `labels`\n";
    for verb in ["apply", "create"] {
        let stderr = kubectl.fails(&[verb, "-f", &invalid]);
        assert_eq!(stderr, expected_invalid, "kubectl {verb}");
    }
    // The Status itself, as the server sent it (kubectl logs response bodies at -v=8).
    let invalid_json = skiff.write_file(
        "bad-deploy.json",
        &serde_json::to_string(&yaml_of(
            &std::fs::read_to_string(skiff.file_path(&invalid)).unwrap_or_default(),
        ))
        .unwrap_or_default(),
    );
    let out = kubectl.run(&[
        "create",
        "--raw",
        "/apis/apps/v1/namespaces/default/deployments",
        "-f",
        &invalid_json,
        "-v=8",
    ]);
    assert!(!out.success());
    let status = logged_response_body(&out.stderr);
    assert_eq!(status["kind"], "Status");
    assert_eq!(status["status"], "Failure");
    assert_eq!(status["reason"], "Invalid");
    assert_eq!(status["code"], 422);
    assert_eq!(
        status["message"],
        "Deployment.apps \"bad\" is invalid: [spec.replicas: Invalid value: -1: must be greater than or equal to 0, spec.template.metadata.labels: Invalid value: {\"app\":\"b\"}: `selector` does not match template `labels`]"
    );
    assert_eq!(
        status["details"],
        serde_json::json!({
            "name": "bad", "group": "apps", "kind": "Deployment",
            "causes": [
                {"reason": "FieldValueInvalid", "message": "Invalid value: -1: must be greater than or equal to 0", "field": "spec.replicas"},
                {"reason": "FieldValueInvalid", "message": "Invalid value: {\"app\":\"b\"}: `selector` does not match template `labels`", "field": "spec.template.metadata.labels"}
            ]
        })
    );
    assert_eq!(
        kubectl.fails(&["get", "deploy", "bad"]),
        "Error from server (NotFound): deployments.apps \"bad\" not found\n"
    );
    assert_still_serving(&kubectl);

    // A wrong token: 401 Unauthorized.
    let kubeconfig = std::fs::read_to_string(skiff.kubeconfig()).unwrap_or_default();
    let token = std::fs::read_to_string(skiff.data_dir().join("token")).unwrap_or_default();
    let token = token.trim();
    assert!(
        !token.is_empty() && kubeconfig.contains(token),
        "the kubeconfig carries the token"
    );
    let wrong = skiff.write_file(
        "wrong-token.kubeconfig",
        &kubeconfig.replace(token, "not-the-token"),
    );
    let stderr = kubectl
        .with_kubeconfig(&skiff.file_path(&wrong))
        .fails(&["get", "ns"]);
    assert!(
        stderr.ends_with("error: You must be logged in to the server (Unauthorized)\n"),
        "with a wrong token: {stderr}"
    );
    // kubectl prompts for a password when its kubeconfig has no credentials, so the request
    // without any goes out directly: a wrong token is 401, no credential at all is
    // system:anonymous, whom RBAC refuses the list.
    let response = skiff.request("GET", "/api/v1/namespaces", Some("not-the-token"));
    assert_eq!(response.status, 401);
    assert_eq!(
        json_of(&response.body),
        serde_json::json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": "Unauthorized", "reason": "Unauthorized", "code": 401
        })
    );
    let response = skiff.request("GET", "/api/v1/namespaces", None);
    assert_eq!(response.status, 403, "{}", response.body);
    assert_eq!(
        json_of(&response.body),
        serde_json::json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": "namespaces is forbidden: User \"system:anonymous\" cannot list resource \"namespaces\" in API group \"\" at the cluster scope",
            "reason": "Forbidden", "details": {"kind": "namespaces"}, "code": 403
        })
    );
    assert_eq!(
        skiff
            .request("GET", "/api/v1/namespaces", Some(token))
            .status,
        200
    );
    assert_still_serving(&kubectl);
}

#[test]
fn without_anything_measured_the_metrics_api_is_not_advertised() {
    // `Skiff::start` runs no node of either kind, so nothing measures pods: kubectl must see no
    // `metrics.k8s.io`, as on a cluster without metrics-server.
    let skiff = Skiff::start();
    let kubectl = skiff.kubectl();
    let groups = kubectl.ok(&["api-versions"]);
    assert!(!groups.contains("metrics.k8s.io"), "{groups}");
    let top = kubectl.run(&["top", "pods"]);
    assert!(!top.success());
    assert!(
        top.stderr.contains("Metrics API not available"),
        "{}",
        top.stderr
    );
}
