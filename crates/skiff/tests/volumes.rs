//! PersistentVolumes end to end: `skiff up` with its real node, driven by the real `kubectl`.
//!
//! A claim of the built-in `local-path` class waits for its first pod, is provisioned as a
//! directory under `DATA/storage/` on the node the pod was scheduled to, and keeps what one
//! pod wrote for the next; deleting the claim deletes its volume and the directory. A claim of
//! an `Immediate` class with no volume keeps its pod Pending with kube-scheduler's message, and
//! a claim in use is kept (Terminating) until its pod is gone.
//!
//! Run with `cargo test -p skiff --test volumes` (Linux, as root so containers get their own
//! mounts; `kubectl` on the PATH).

mod support;

use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;
use support::images::{shell, SHELL};
use support::json::{items, str_at};
use support::{assert_table, wait_for_every, Kubectl, Skiff};

/// The deadline for what takes a few seconds when all is well.
const SHORT: Duration = Duration::from_secs(90);
/// How often conditions are polled.
const POLL: Duration = Duration::from_millis(250);

fn json(kubectl: &Kubectl, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.extend(["-o", "json"]);
    serde_json::from_str(&kubectl.ok(&all)).expect("kubectl prints JSON")
}

/// The events about the object `name`, as (reason, message).
fn events_about(kubectl: &Kubectl, name: &str) -> Vec<(String, String)> {
    let selector = format!("involvedObject.name={name}");
    items(&json(
        kubectl,
        &["get", "events", "--field-selector", &selector],
    ))
    .iter()
    .map(|e| (str_at(e, "/reason"), str_at(e, "/message")))
    .collect()
}

fn wait_for_event(kubectl: &Kubectl, name: &str, reason: &str) -> String {
    wait_for_every(
        &format!("a {reason} event about {name}"),
        SHORT,
        POLL,
        || {
            events_about(kubectl, name)
                .into_iter()
                .find(|(r, _)| r == reason)
                .map(|(_, m)| m)
        },
    )
}

fn wait_for_phase(kubectl: &Kubectl, kind: &str, name: &str, phase: &str) {
    wait_for_every(&format!("{kind} {name} to be {phase}"), SHORT, POLL, || {
        let out = kubectl.run(&["get", kind, name, "-o", "jsonpath={.status.phase}"]);
        (out.success() && out.stdout == phase).then_some(())
    });
}

fn wait_gone(kubectl: &Kubectl, kind: &str, name: &str) {
    wait_for_every(&format!("{kind} {name} to be gone"), SHORT, POLL, || {
        let out = kubectl.run(&["get", kind, name]);
        (!out.success() && out.stderr.contains("NotFound")).then_some(())
    });
}

fn apply(skiff: &Skiff, kubectl: &Kubectl, file: &str, manifest: &str) {
    let path = skiff.write_file(file, manifest);
    kubectl.ok(&["apply", "-f", &path]);
}

fn pod_on_claim(name: &str, claim: &str, script: &str) -> String {
    format!(
        "apiVersion: v1
kind: Pod
metadata:
  name: {name}
spec:
  restartPolicy: Never
  containers:
  - name: main
    image: {SHELL}
    command: [\"/bin/sh\", \"-c\", \"{script}\"]
    volumeMounts:
    - name: data
      mountPath: /data
  volumes:
  - name: data
    persistentVolumeClaim:
      claimName: {claim}
"
    )
}

fn start() -> (Skiff, Kubectl, Vec<String>) {
    assert!(
        nix::unistd::geteuid().is_root(),
        "the volume tests need root: containers get their own mounts only as root"
    );
    let skiff = Skiff::start_with_images(&[], &[shell()]);
    let kubectl = skiff.kubectl();
    let nodes = wait_for_every("the real node to register", SHORT, POLL, || {
        let names = kubectl.ok(&["get", "nodes", "-o", "jsonpath={.items[*].metadata.name}"]);
        let names: Vec<String> = names.split_whitespace().map(String::from).collect();
        (!names.is_empty()).then_some(names)
    });
    (skiff, kubectl, nodes)
}

#[test]
fn local_path_claims_bind_on_first_use_keep_data_and_are_deleted_with_their_directory() {
    let (mut skiff, kubectl, _nodes) = start();
    wait_for_every("the local-path class", SHORT, POLL, || {
        kubectl
            .run(&["get", "sc", "local-path"])
            .success()
            .then_some(())
    });
    assert_table(
        &kubectl.ok(&["get", "sc"]),
        &[
            &[
                "NAME",
                "PROVISIONER",
                "RECLAIMPOLICY",
                "VOLUMEBINDINGMODE",
                "ALLOWVOLUMEEXPANSION",
                "AGE",
            ],
            &[
                "local-path",
                "(default)",
                "rancher.io/local-path",
                "Delete",
                "WaitForFirstConsumer",
                "false",
                "<age>",
            ],
        ],
    );

    apply(
        &skiff,
        &kubectl,
        "claim.yaml",
        "apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: data
spec:
  accessModes: [ReadWriteOnce]
  resources:
    requests:
      storage: 1Gi
",
    );
    let message = wait_for_event(&kubectl, "data", "WaitForFirstConsumer");
    assert_eq!(
        message,
        "waiting for first consumer to be created before binding"
    );
    let claim = json(&kubectl, &["get", "pvc", "data"]);
    assert_eq!(str_at(&claim, "/status/phase"), "Pending");
    assert_eq!(str_at(&claim, "/spec/storageClassName"), "local-path");
    assert_eq!(
        claim["metadata"]["finalizers"],
        serde_json::json!(["kubernetes.io/pvc-protection"])
    );

    apply(
        &skiff,
        &kubectl,
        "writer.yaml",
        &pod_on_claim("writer", "data", "echo kept > /data/hello"),
    );
    wait_for_phase(&kubectl, "pod", "writer", "Succeeded");
    wait_for_phase(&kubectl, "pvc", "data", "Bound");
    let claim = json(&kubectl, &["get", "pvc", "data"]);
    let uid = str_at(&claim, "/metadata/uid");
    let volume_name = str_at(&claim, "/spec/volumeName");
    assert_eq!(volume_name, format!("pvc-{uid}"));
    let node = str_at(&json(&kubectl, &["get", "pod", "writer"]), "/spec/nodeName");
    assert_eq!(
        str_at(
            &claim,
            "/metadata/annotations/volume.kubernetes.io~1selected-node"
        ),
        node
    );
    let volume = json(&kubectl, &["get", "pv", &volume_name]);
    let directory = PathBuf::from(str_at(&volume, "/spec/hostPath/path"));
    assert_eq!(
        directory,
        skiff
            .data_dir()
            .join("storage")
            .join(format!("pvc-{uid}_default_data")),
        "the volume is a directory under DATA/storage"
    );
    assert_eq!(
        volume["spec"]["nodeAffinity"]["required"]["nodeSelectorTerms"][0]["matchExpressions"][0]
            ["values"],
        serde_json::json!([node])
    );
    assert_eq!(
        std::fs::read_to_string(directory.join("hello")).expect("the pod's file is on disk"),
        "kept\n"
    );
    let events = events_about(&kubectl, "data");
    assert!(
        events.iter().any(|(r, m)| r == "ProvisioningSucceeded"
            && m == &format!("Successfully provisioned volume {volume_name}")),
        "{events:?}"
    );

    assert_table(
        &kubectl.ok(&["get", "pv,pvc"]),
        &[
            &[
                "NAME",
                "CAPACITY",
                "ACCESS",
                "MODES",
                "RECLAIM",
                "POLICY",
                "STATUS",
                "CLAIM",
                "STORAGECLASS",
                "VOLUMEATTRIBUTESCLASS",
                "REASON",
                "AGE",
            ],
            &[
                &format!("persistentvolume/{volume_name}"),
                "1Gi",
                "RWO",
                "Delete",
                "Bound",
                "default/data",
                "local-path",
                "<unset>",
                "<age>",
            ],
            &[
                "NAME",
                "STATUS",
                "VOLUME",
                "CAPACITY",
                "ACCESS",
                "MODES",
                "STORAGECLASS",
                "VOLUMEATTRIBUTESCLASS",
                "AGE",
            ],
            &[
                "persistentvolumeclaim/data",
                "Bound",
                &volume_name,
                "1Gi",
                "RWO",
                "local-path",
                "<unset>",
                "<age>",
            ],
        ],
    );

    kubectl.ok(&["delete", "pod", "writer", "--wait=true"]);
    apply(
        &skiff,
        &kubectl,
        "reader.yaml",
        &pod_on_claim("reader", "data", "cat /data/hello"),
    );
    wait_for_phase(&kubectl, "pod", "reader", "Succeeded");
    assert_eq!(kubectl.ok(&["logs", "reader"]), "kept\n");

    kubectl.ok(&["delete", "pod", "reader", "--wait=true"]);
    kubectl.ok(&["delete", "pvc", "data", "--wait=true"]);
    wait_gone(&kubectl, "pv", &volume_name);
    assert!(
        !directory.exists(),
        "the directory {} outlived its volume",
        directory.display()
    );
    skiff.stop();
}

#[test]
fn an_unbound_immediate_claim_keeps_its_pod_pending_and_a_used_claim_is_kept() {
    let (mut skiff, kubectl, nodes) = start();
    apply(
        &skiff,
        &kubectl,
        "manual.yaml",
        "apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: manual
provisioner: kubernetes.io/no-provisioner
volumeBindingMode: Immediate
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: waits
spec:
  storageClassName: manual
  accessModes: [ReadWriteOnce]
  resources:
    requests:
      storage: 1Gi
",
    );
    apply(
        &skiff,
        &kubectl,
        "stuck.yaml",
        &pod_on_claim("stuck", "waits", "sleep 600"),
    );
    let message = wait_for_event(&kubectl, "stuck", "FailedScheduling");
    let n = nodes.len();
    assert_eq!(
        message,
        format!(
            "0/{n} nodes are available: pod has unbound immediate PersistentVolumeClaims. \
             no new claims to deallocate, preemption: 0/{n} nodes are available: \
             {n} Preemption is not helpful for scheduling."
        )
    );
    let pod = json(&kubectl, &["get", "pod", "stuck"]);
    assert_eq!(str_at(&pod, "/status/phase"), "Pending");
    assert_eq!(str_at(&pod, "/spec/nodeName"), "");
    assert_eq!(
        wait_for_event(&kubectl, "waits", "ProvisioningFailed"),
        "no volume plugin matched name: kubernetes.io/no-provisioner"
    );

    // A volume made by hand binds the claim, and the pod then runs.
    apply(
        &skiff,
        &kubectl,
        "volume.yaml",
        &format!(
            "apiVersion: v1
kind: PersistentVolume
metadata:
  name: by-hand
spec:
  storageClassName: manual
  capacity:
    storage: 2Gi
  accessModes: [ReadWriteOnce]
  hostPath:
    path: {}
    type: DirectoryOrCreate
",
            skiff.file_path("by-hand").display()
        ),
    );
    wait_for_phase(&kubectl, "pvc", "waits", "Bound");
    wait_for_phase(&kubectl, "pod", "stuck", "Running");

    // The claim is in use: deleting it leaves it Terminating until the pod is gone.
    kubectl.ok(&["delete", "pvc", "waits", "--wait=false"]);
    let listed = kubectl.ok(&["get", "pvc", "waits", "--no-headers"]);
    assert_eq!(
        support::cells(&listed)[1],
        "Terminating",
        "a claim in use is kept: {listed}"
    );
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        kubectl.run(&["get", "pvc", "waits"]).success(),
        "the claim went while its pod runs"
    );
    kubectl.ok(&["delete", "pod", "stuck", "--wait=true", "--grace-period=1"]);
    wait_gone(&kubectl, "pvc", "waits");
    // Retain: the volume is Released and kept.
    wait_for_phase(&kubectl, "pv", "by-hand", "Released");
    skiff.stop();
}

/// The claims of the CloneSet `web`, by name, with their phases.
fn clone_set_claims(kubectl: &Kubectl) -> Vec<(String, String)> {
    let mut claims: Vec<(String, String)> = items(&json(kubectl, &["get", "pvc"]))
        .iter()
        .filter(|c| c.pointer("/metadata/deletionTimestamp").is_none())
        .map(|c| (str_at(c, "/metadata/name"), str_at(c, "/status/phase")))
        .collect();
    claims.sort();
    claims
}

/// The running pods of the CloneSet `web`, by name.
fn clone_set_pods(kubectl: &Kubectl) -> Vec<String> {
    let mut pods: Vec<String> = items(&json(kubectl, &["get", "pods", "-l", "app=web"]))
        .iter()
        .filter(|p| p.pointer("/metadata/deletionTimestamp").is_none())
        .filter(|p| str_at(p, "/status/phase") == "Running")
        .map(|p| str_at(p, "/metadata/name"))
        .collect();
    pods.sort();
    pods
}

#[test]
fn clone_set_claim_templates_give_each_pod_its_claim_and_scale_in_takes_it_away() {
    let (mut skiff, kubectl, _nodes) = start();
    let clone_set = |replicas: u32| {
        format!(
            "apiVersion: apps.kruise.io/v1alpha1
kind: CloneSet
metadata:
  name: web
spec:
  replicas: {replicas}
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      containers:
      - name: main
        image: {SHELL}
        command: [\"/bin/sh\", \"-c\", \"hostname >> /data/names; sleep 600\"]
        volumeMounts:
        - name: data
          mountPath: /data
  volumeClaimTemplates:
  - metadata:
      name: data
    spec:
      accessModes: [ReadWriteOnce]
      resources:
        requests:
          storage: 1Gi
"
        )
    };
    apply(&skiff, &kubectl, "web.yaml", &clone_set(2));
    let pods = wait_for_every("two running CloneSet pods", SHORT, POLL, || {
        let pods = clone_set_pods(&kubectl);
        (pods.len() == 2).then_some(pods)
    });
    let expected: Vec<(String, String)> = pods
        .iter()
        .map(|p| (format!("data-{p}"), "Bound".to_string()))
        .collect();
    wait_for_every("a bound claim per pod", SHORT, POLL, || {
        (clone_set_claims(&kubectl) == expected).then_some(())
    });
    for pod in &pods {
        let claim = json(&kubectl, &["get", "pvc", &format!("data-{pod}")]);
        let volume = json(
            &kubectl,
            &["get", "pv", &str_at(&claim, "/spec/volumeName")],
        );
        let names = PathBuf::from(str_at(&volume, "/spec/hostPath/path")).join("names");
        let written = wait_for_every("the pod to write into its claim", SHORT, POLL, || {
            std::fs::read_to_string(&names).ok()
        });
        assert_eq!(
            written,
            format!("{pod}\n"),
            "each pod has a volume of its own"
        );
    }

    // A pod deleted by hand comes back under its instance id, on the same claim.
    kubectl.ok(&["delete", "pod", &pods[0], "--wait=true", "--grace-period=1"]);
    wait_for_every("the deleted pod to come back", SHORT, POLL, || {
        (clone_set_pods(&kubectl) == pods).then_some(())
    });
    let claim = json(&kubectl, &["get", "pvc", &format!("data-{}", pods[0])]);
    let volume = json(
        &kubectl,
        &["get", "pv", &str_at(&claim, "/spec/volumeName")],
    );
    let names = PathBuf::from(str_at(&volume, "/spec/hostPath/path")).join("names");
    wait_for_every(
        "the replacement to write into the same claim",
        SHORT,
        POLL,
        || {
            let text = std::fs::read_to_string(&names).ok()?;
            (text == format!("{0}\n{0}\n", pods[0])).then_some(())
        },
    );

    // Scaling in deletes the pod the controller removes and its claim.
    apply(&skiff, &kubectl, "web.yaml", &clone_set(1));
    let kept = wait_for_every("one pod left", SHORT, POLL, || {
        let pods = clone_set_pods(&kubectl);
        (pods.len() == 1).then_some(pods)
    });
    let expected = vec![(format!("data-{}", kept[0]), "Bound".to_string())];
    wait_for_every("only the kept pod's claim", SHORT, POLL, || {
        (clone_set_claims(&kubectl) == expected).then_some(())
    });

    // The claims are the CloneSet's: deleting it deletes them, and their volumes go with them.
    kubectl.ok(&["delete", "cloneset", "web", "--wait=true"]);
    wait_for_every(
        "the claims and volumes to go with the CloneSet",
        SHORT,
        POLL,
        || {
            let claims = items(&json(&kubectl, &["get", "pvc"])).len();
            let volumes = items(&json(&kubectl, &["get", "pv"])).len();
            (claims == 0 && volumes == 0).then_some(())
        },
    );
    skiff.stop();
}
