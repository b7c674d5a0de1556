//! The rest of the core API end to end, with the real `kubectl`: ResourceQuota (admission with
//! Kubernetes' refusals, race-free under concurrent creates, usage kept by the controller and
//! shown by `kubectl describe quota`), LimitRange defaults and bounds, PriorityClass and the
//! Priority plugin, and the stored kinds (RuntimeClass, PodTemplate, ReplicationController,
//! Ingress, IngressClass, NetworkPolicy) as `kubectl get` and `kubectl api-resources` show them.
//!
//! Run with `cargo test -p skiff --test core_api`. Needs `kubectl` on the PATH. Every wait
//! polls a condition against a deadline.

mod support;

use std::thread;

use support::json::str_at;
use support::{assert_table, cells, wait_for, Kubectl, Skiff, DEADLINE};

/// Applies a manifest written to a scratch file.
fn apply(skiff: &Skiff, kubectl: &Kubectl, name: &str, manifest: &str) {
    let file = skiff.write_file(name, manifest);
    kubectl.ok(&["apply", "-f", &file]);
}

/// Waits until the quota's `status.used[resource]` reads `used`.
fn wait_for_used(kubectl: &Kubectl, namespace: &str, quota: &str, resource: &str, used: &str) {
    let pointer = format!("/status/used/{}", resource.replace('/', "~1"));
    wait_for(
        &format!("quota {namespace}/{quota} to show {resource} used {used}"),
        DEADLINE,
        || {
            let q = kubectl.json(&["get", "quota", quota, "-n", namespace]);
            (str_at(&q, &pointer) == used).then_some(())
        },
    );
}

fn quota_manifest(namespace: &str, name: &str, hard: &str) -> String {
    format!(
        "apiVersion: v1
kind: ResourceQuota
metadata:
  name: {name}
  namespace: {namespace}
spec:
  hard:
{hard}"
    )
}

/// The line of `kubectl describe` output whose cells start with `first`.
fn described_row(output: &str, first: &str) -> Vec<String> {
    output
        .lines()
        .map(cells)
        .find(|c| c.first() == Some(&first))
        .unwrap_or_else(|| panic!("no row starting with {first:?} in:\n{output}"))
        .into_iter()
        .map(str::to_string)
        .collect()
}

#[test]
fn a_quota_of_two_pods_refuses_the_third_and_deleting_one_frees_a_slot() {
    let skiff = Skiff::start();
    let kubectl = skiff.kubectl();
    kubectl.ok(&["create", "quota", "q", "--hard=pods=2"]);
    wait_for_used(&kubectl, "default", "q", "pods", "0");
    kubectl.ok(&["run", "a", "--image=registry.example/app:1"]);
    kubectl.ok(&["run", "b", "--image=registry.example/app:1"]);
    let refused = kubectl.fails(&["run", "c", "--image=registry.example/app:1"]);
    assert_eq!(
        refused.trim(),
        "Error from server (Forbidden): pods \"c\" is forbidden: exceeded quota: q, requested: pods=1, used: pods=2, limited: pods=2"
    );

    let described = kubectl.ok(&["describe", "quota", "q"]);
    assert_eq!(
        described_row(&described, "Resource"),
        ["Resource", "Used", "Hard"]
    );
    assert_eq!(described_row(&described, "pods"), ["pods", "2", "2"]);
    assert_table(
        &kubectl.ok(&["get", "quota"]),
        &[
            &["NAME", "AGE", "REQUEST", "LIMIT"],
            &["q", "<age>", "pods:", "2/2"],
        ],
    );

    kubectl.ok(&["delete", "pod", "a"]);
    wait_for_used(&kubectl, "default", "q", "pods", "1");
    kubectl.ok(&["run", "c", "--image=registry.example/app:1"]);
    wait_for_used(&kubectl, "default", "q", "pods", "2");
}

#[test]
fn a_service_changed_to_node_port_or_load_balancer_is_held_to_the_quota() {
    let skiff = Skiff::start();
    let kubectl = skiff.kubectl();
    kubectl.ok(&[
        "create",
        "quota",
        "q",
        "--hard=services=5,services.nodeports=1,services.loadbalancers=0",
    ]);
    wait_for_used(&kubectl, "default", "q", "services.nodeports", "0");
    kubectl.ok(&["create", "service", "clusterip", "web", "--tcp=80:8080"]);
    kubectl.ok(&["create", "service", "clusterip", "api", "--tcp=80:8080"]);
    let to_node_port = r#"{"spec":{"type":"NodePort"}}"#;
    kubectl.ok(&["patch", "service", "web", "-p", to_node_port]);
    wait_for_used(&kubectl, "default", "q", "services.nodeports", "1");
    let refused = kubectl.fails(&["patch", "service", "api", "-p", to_node_port]);
    assert_eq!(
        refused.trim(),
        "Error from server (Forbidden): services \"api\" is forbidden: exceeded quota: q, requested: services.nodeports=1, used: services.nodeports=1, limited: services.nodeports=1"
    );
    let still = kubectl.json(&["get", "service", "api"]);
    assert_eq!(str_at(&still, "/spec/type"), "ClusterIP");
    let refused = kubectl.fails(&[
        "patch",
        "service",
        "web",
        "-p",
        r#"{"spec":{"type":"LoadBalancer"}}"#,
    ]);
    assert_eq!(
        refused.trim(),
        "Error from server (Forbidden): services \"web\" is forbidden: exceeded quota: q, requested: services.loadbalancers=1, used: services.loadbalancers=0, limited: services.loadbalancers=0"
    );
    // An update adding nothing counted passes while the quota is full.
    kubectl.ok(&["label", "service", "web", "tier=front"]);
    // Freeing the node port lets the other Service take it.
    kubectl.ok(&["delete", "service", "web"]);
    wait_for_used(&kubectl, "default", "q", "services.nodeports", "0");
    kubectl.ok(&["patch", "service", "api", "-p", to_node_port]);
    wait_for_used(&kubectl, "default", "q", "services.nodeports", "1");
}

#[test]
fn a_compute_quota_requires_every_container_to_state_it() {
    let skiff = Skiff::start();
    let kubectl = skiff.kubectl();
    kubectl.ok(&["create", "namespace", "mem"]);
    apply(
        &skiff,
        &kubectl,
        "quota.yaml",
        &quota_manifest(
            "mem",
            "mem-quota",
            "    limits.memory: 1Gi\n    requests.cpu: \"1\"\n",
        ),
    );
    wait_for_used(&kubectl, "mem", "mem-quota", "limits.memory", "0");
    let refused = kubectl.fails(&["run", "d", "-n", "mem", "--image=registry.example/app:1"]);
    assert_eq!(
        refused.trim(),
        "Error from server (Forbidden): pods \"d\" is forbidden: failed quota: mem-quota: must specify limits.memory for: d; requests.cpu for: d"
    );
    let pod = "apiVersion: v1
kind: Pod
metadata:
  name: sized
  namespace: mem
spec:
  containers:
  - name: main
    image: registry.example/app:1
    resources:
      requests: {cpu: 250m, memory: 100Mi}
      limits: {memory: 512Mi}
";
    apply(&skiff, &kubectl, "sized.yaml", pod);
    wait_for_used(&kubectl, "mem", "mem-quota", "limits.memory", "512Mi");
    let q = kubectl.json(&["get", "quota", "mem-quota", "-n", "mem"]);
    assert_eq!(str_at(&q, "/status/used/requests.cpu"), "250m");
    let too_big = pod
        .replace("name: sized", "name: too-big")
        .replace("512Mi", "600Mi");
    let file = skiff.write_file("too-big.yaml", &too_big);
    let refused = kubectl.fails(&["apply", "-f", &file]);
    assert!(
        refused.contains("pods \"too-big\" is forbidden: exceeded quota: mem-quota, requested: limits.memory=600Mi, used: limits.memory=512Mi, limited: limits.memory=1Gi"),
        "{refused}"
    );
}

#[test]
fn concurrent_creates_never_pass_the_last_slots_together() {
    let skiff = Skiff::start();
    let kubectl = skiff.kubectl();
    apply(
        &skiff,
        &kubectl,
        "quota.yaml",
        &quota_manifest("default", "few", "    count/configmaps: \"4\"\n"),
    );
    // The namespace's `kube-root-ca.crt` takes one of the four.
    wait_for_used(&kubectl, "default", "few", "count/configmaps", "1");
    let attempts: Vec<_> = (0..8)
        .map(|i| {
            let kubectl = kubectl.clone();
            thread::spawn(move || {
                let name = format!("cm-{i}");
                kubectl
                    .run(&["create", "configmap", &name, "--from-literal=k=v"])
                    .success()
            })
        })
        .collect();
    let created = attempts
        .into_iter()
        .map(|t| t.join().expect("a creating thread"))
        .filter(|ok| *ok)
        .count();
    assert_eq!(created, 3, "exactly the quota's three free slots are taken");
    let listed = kubectl.json(&["get", "configmaps"]);
    let names: Vec<String> = listed["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| str_at(c, "/metadata/name"))
        .filter(|n| n.starts_with("cm-"))
        .collect();
    assert_eq!(names.len(), 3, "{names:?}");
    let q = kubectl.json(&["get", "quota", "few"]);
    assert_eq!(str_at(&q, "/status/used/count~1configmaps"), "4");
}

#[test]
fn a_limit_range_defaults_container_limits_and_enforces_its_max() {
    let skiff = Skiff::start();
    let kubectl = skiff.kubectl();
    apply(
        &skiff,
        &kubectl,
        "limits.yaml",
        "apiVersion: v1
kind: LimitRange
metadata:
  name: limits
spec:
  limits:
  - type: Container
    max: {cpu: \"1\"}
    default: {cpu: 500m, memory: 256Mi}
    defaultRequest: {cpu: 100m}
",
    );
    kubectl.ok(&["run", "defaulted", "--image=registry.example/app:1"]);
    let pod = kubectl.json(&["get", "pod", "defaulted"]);
    let resources = &pod["spec"]["containers"][0]["resources"];
    assert_eq!(
        resources,
        &serde_json::json!({"limits": {"cpu": "500m", "memory": "256Mi"},
                            "requests": {"cpu": "100m", "memory": "256Mi"}}),
        "{pod}"
    );
    assert_eq!(
        str_at(&pod, "/metadata/annotations/kubernetes.io~1limit-ranger"),
        "LimitRanger plugin set: cpu, memory request for container defaulted; cpu, memory limit for container defaulted"
    );
    let yaml = kubectl.ok(&["get", "pod", "defaulted", "-o", "yaml"]);
    assert!(
        yaml.contains("        cpu: 500m\n        memory: 256Mi"),
        "{yaml}"
    );

    let file = skiff.write_file(
        "greedy.yaml",
        "apiVersion: v1
kind: Pod
metadata:
  name: greedy
spec:
  containers:
  - name: main
    image: registry.example/app:1
    resources:
      limits: {cpu: \"2\"}
",
    );
    let refused = kubectl.fails(&["apply", "-f", &file]);
    assert!(
        refused.contains(
            "pods \"greedy\" is forbidden: maximum cpu usage per Container is 1, but limit is 2"
        ),
        "{refused}"
    );

    // kubectl prints the resources of an item in map order, which varies.
    let described = kubectl.ok(&["describe", "limitrange", "limits"]);
    let mut rows: Vec<Vec<&str>> = described
        .lines()
        .map(cells)
        .filter(|c| c.first() == Some(&"Container"))
        .collect();
    rows.sort();
    assert_eq!(
        rows,
        [
            ["Container", "cpu", "-", "1", "100m", "500m", "-"],
            ["Container", "memory", "-", "-", "256Mi", "256Mi", "-"],
        ],
        "{described}"
    );
}

#[test]
fn priority_classes_give_pods_their_priority() {
    let skiff = Skiff::start();
    let kubectl = skiff.kubectl();
    assert_table(
        &kubectl.ok(&["get", "priorityclasses"]),
        &[
            &["NAME", "VALUE", "GLOBAL-DEFAULT", "AGE", "PREEMPTIONPOLICY"],
            &[
                "system-cluster-critical",
                "2000000000",
                "false",
                "<age>",
                "PreemptLowerPriority",
            ],
            &[
                "system-node-critical",
                "2000001000",
                "false",
                "<age>",
                "PreemptLowerPriority",
            ],
        ],
    );
    apply(
        &skiff,
        &kubectl,
        "critical.yaml",
        "apiVersion: v1
kind: Pod
metadata:
  name: critical
spec:
  priorityClassName: system-cluster-critical
  containers:
  - name: main
    image: registry.example/app:1
",
    );
    let pod = kubectl.json(&["get", "pod", "critical"]);
    assert_eq!(pod["spec"]["priority"], 2_000_000_000, "{pod}");
    assert_eq!(
        str_at(&pod, "/spec/preemptionPolicy"),
        "PreemptLowerPriority"
    );

    let file = skiff.write_file(
        "unknown.yaml",
        "apiVersion: v1
kind: Pod
metadata:
  name: unknown
spec:
  priorityClassName: nope
  containers:
  - name: main
    image: registry.example/app:1
",
    );
    let refused = kubectl.fails(&["apply", "-f", &file]);
    assert!(
        refused
            .contains("pods \"unknown\" is forbidden: no PriorityClass with name nope was found"),
        "{refused}"
    );

    apply(
        &skiff,
        &kubectl,
        "default-class.yaml",
        "apiVersion: scheduling.k8s.io/v1
kind: PriorityClass
metadata:
  name: everyday
value: 1000
globalDefault: true
",
    );
    kubectl.ok(&["run", "plain", "--image=registry.example/app:1"]);
    let pod = kubectl.json(&["get", "pod", "plain"]);
    assert_eq!(pod["spec"]["priority"], 1000, "{pod}");
    assert_eq!(str_at(&pod, "/spec/priorityClassName"), "everyday");
    let refused = kubectl.fails(&[
        "create",
        "priorityclass",
        "another",
        "--value=5",
        "--global-default=true",
    ]);
    assert!(
        refused.contains(
            "PriorityClass everyday is already marked as default. Only one default can exist"
        ),
        "{refused}"
    );
}

#[test]
fn api_resources_lists_the_new_kinds() {
    let skiff = Skiff::start();
    let kubectl = skiff.kubectl();
    let listed = kubectl.ok(&["api-resources"]);
    let expected: &[&[&str]] = &[
        &["limitranges", "limits", "v1", "true", "LimitRange"],
        &["podtemplates", "v1", "true", "PodTemplate"],
        &[
            "replicationcontrollers",
            "rc",
            "v1",
            "true",
            "ReplicationController",
        ],
        &["resourcequotas", "quota", "v1", "true", "ResourceQuota"],
        &[
            "ingressclasses",
            "networking.k8s.io/v1",
            "false",
            "IngressClass",
        ],
        &[
            "ingresses",
            "ing",
            "networking.k8s.io/v1",
            "true",
            "Ingress",
        ],
        &[
            "networkpolicies",
            "netpol",
            "networking.k8s.io/v1",
            "true",
            "NetworkPolicy",
        ],
        &["runtimeclasses", "node.k8s.io/v1", "false", "RuntimeClass"],
        &[
            "priorityclasses",
            "pc",
            "scheduling.k8s.io/v1",
            "false",
            "PriorityClass",
        ],
    ];
    for row in expected {
        assert!(
            listed.lines().any(|l| cells(l) == *row),
            "no row {row:?} in:\n{listed}"
        );
    }
    let wide = kubectl.ok(&["api-resources", "-o", "wide"]);
    for name in [
        "limitranges",
        "podtemplates",
        "replicationcontrollers",
        "resourcequotas",
        "ingressclasses",
        "ingresses",
        "networkpolicies",
        "runtimeclasses",
        "priorityclasses",
    ] {
        let line = wide
            .lines()
            .find(|l| cells(l).first() == Some(&name))
            .unwrap_or_else(|| panic!("{name} missing from:\n{wide}"));
        assert!(
            line.contains(" create,delete,deletecollection,get,list,patch,update,watch"),
            "{line}"
        );
    }
    let rc_line = wide
        .lines()
        .find(|l| cells(l).first() == Some(&"replicationcontrollers"))
        .expect("listed above");
    assert!(rc_line.trim_end().ends_with("all"), "{rc_line}");
}

#[test]
fn stored_networking_and_node_kinds_print_and_validate() {
    let skiff = Skiff::start();
    let kubectl = skiff.kubectl();
    apply(
        &skiff,
        &kubectl,
        "kinds.yaml",
        "apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata:
  name: web
spec:
  controller: example.com/ingress
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: site
spec:
  ingressClassName: web
  rules:
  - host: shop.example
    http:
      paths:
      - path: /
        pathType: Prefix
        backend:
          service:
            name: shop
            port:
              number: 80
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: deny
spec:
  podSelector:
    matchLabels:
      app: db
---
apiVersion: v1
kind: ReplicationController
metadata:
  name: legacy
spec:
  replicas: 0
  template:
    metadata:
      labels:
        app: legacy
    spec:
      containers:
      - name: main
        image: registry.example/app:1
---
apiVersion: v1
kind: PodTemplate
metadata:
  name: tmpl
template:
  metadata:
    labels:
      app: t
  spec:
    containers:
    - name: main
      image: registry.example/app:1
---
apiVersion: node.k8s.io/v1
kind: RuntimeClass
metadata:
  name: sandboxed
handler: runsc
",
    );
    let printed = kubectl.ok(&[
        "get",
        "ingress,networkpolicy,rc,podtemplates,runtimeclasses,ingressclasses",
    ]);
    let rows: Vec<Vec<&str>> = printed.lines().map(cells).collect();
    let has = |want: &[&str]| {
        rows.iter().any(|r| {
            r.len() == want.len()
                && r.iter()
                    .zip(want)
                    .all(|(got, w)| *w == "<age>" && support::is_age(got) || got == w)
        })
    };
    for want in [
        &[
            "ingress.networking.k8s.io/site",
            "web",
            "shop.example",
            "80",
            "<age>",
        ][..],
        &["networkpolicy.networking.k8s.io/deny", "app=db", "<age>"],
        &["replicationcontroller/legacy", "0", "0", "0", "<age>"],
        &[
            "podtemplate/tmpl",
            "main",
            "registry.example/app:1",
            "app=t",
        ],
        &["runtimeclass.node.k8s.io/sandboxed", "runsc", "<age>"],
        &[
            "ingressclass.networking.k8s.io/web",
            "example.com/ingress",
            "<none>",
            "<age>",
        ],
    ] {
        assert!(has(want), "no row {want:?} in:\n{printed}");
    }
    kubectl.ok(&[
        "create",
        "ingress",
        "simple",
        "--class=web",
        "--rule=foo.example/bar=svc1:8080",
    ]);
    let simple = kubectl.json(&["get", "ingress", "simple"]);
    assert_eq!(
        simple["spec"],
        serde_json::json!({"ingressClassName": "web", "rules": [{"host": "foo.example",
            "http": {"paths": [{"path": "/bar", "pathType": "Exact",
                "backend": {"service": {"name": "svc1", "port": {"number": 8080}}}}]}}]}),
        "{simple}"
    );
    let rc = kubectl.json(&["get", "rc", "legacy"]);
    assert_eq!(rc["spec"]["selector"], serde_json::json!({"app": "legacy"}));
    let policy = kubectl.json(&["get", "netpol", "deny"]);
    assert_eq!(
        policy["spec"]["policyTypes"],
        serde_json::json!(["Ingress"])
    );

    let bad = skiff.write_file(
        "bad-ingress.yaml",
        "apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: bad
spec:
  rules:
  - http:
      paths:
      - path: /
        backend:
          service:
            name: shop
            port:
              number: 80
",
    );
    let refused = kubectl.fails(&["create", "-f", &bad]);
    assert!(
        refused.contains("The Ingress \"bad\" is invalid: spec.rules[0].http.paths[0].pathType: Required value: pathType must be specified"),
        "{refused}"
    );
}

#[test]
fn a_replication_controller_keeps_its_pods() {
    let skiff = Skiff::start();
    let kubectl = skiff.kubectl();
    apply(
        &skiff,
        &kubectl,
        "rc.yaml",
        "apiVersion: v1
kind: ReplicationController
metadata:
  name: legacy
spec:
  replicas: 2
  template:
    metadata:
      labels:
        app: legacy
    spec:
      containers:
      - name: main
        image: registry.example/app:1
",
    );
    let owners = wait_for(
        "two pods owned by the ReplicationController",
        DEADLINE,
        || {
            let pods = kubectl.json(&["get", "pods", "-l", "app=legacy"]);
            let owners: Vec<String> = pods["items"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|p| {
                    format!(
                        "{}/{}",
                        str_at(p, "/metadata/ownerReferences/0/apiVersion"),
                        str_at(p, "/metadata/ownerReferences/0/kind")
                    )
                })
                .collect();
            (owners.len() == 2).then_some(owners)
        },
    );
    assert_eq!(
        owners,
        ["v1/ReplicationController", "v1/ReplicationController"]
    );
    wait_for("kubectl get rc to count both pods", DEADLINE, || {
        let printed = kubectl.ok(&["get", "rc", "legacy"]);
        let rows: Vec<Vec<&str>> = printed.lines().map(cells).collect();
        (rows.len() == 2 && rows[1][..4] == ["legacy", "2", "2", "0"]).then_some(())
    });
    let pods = kubectl.json(&["get", "pods", "-l", "app=legacy"]);
    let victim = str_at(&pods, "/items/0/metadata/name");
    kubectl.ok(&["delete", "pod", &victim]);
    wait_for("a replacement pod", DEADLINE, || {
        let pods = kubectl.json(&["get", "pods", "-l", "app=legacy"]);
        let names: Vec<String> = pods["items"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| str_at(p, "/metadata/name"))
            .collect();
        (names.len() == 2 && !names.contains(&victim)).then_some(())
    });
    kubectl.ok(&["scale", "rc", "legacy", "--replicas=1"]);
    wait_for("the scaled-down controller's one pod", DEADLINE, || {
        let pods = kubectl.json(&["get", "pods", "-l", "app=legacy"]);
        let live = pods["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| p.pointer("/metadata/deletionTimestamp").is_none())
            .count();
        (live == 1).then_some(())
    });
    let raw = kubectl.ok(&[
        "get",
        "--raw",
        "/api/v1/namespaces/default/replicationcontrollers/legacy/scale",
    ]);
    let scale: serde_json::Value = serde_json::from_str(&raw).expect("a Scale");
    assert_eq!(str_at(&scale, "/status/selector"), "app=legacy", "{scale}");
    assert_eq!(scale["spec"]["replicas"], 1, "{scale}");
}
