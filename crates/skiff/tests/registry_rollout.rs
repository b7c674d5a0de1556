//! The real-images acceptance: a Deployment of the busybox `httpd` test image pulled from a
//! real registry (Debian's `docker-registry` on a loopback port), driven by the real `kubectl`.
//! It becomes ready, `kubectl describe` shows the pull, each pod reports the pushed digest as
//! its `imageID` and serves its tag's page, and setting the image to the next tag rolls every
//! pod over to a new pull of the new image.
//!
//! Run as root (containers get their image as their root), with `kubectl` and
//! `docker-registry` on the PATH.

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::Value;
use skiff_images::Digest;
use skiff_testkit::registry::Registry;
use support::http::ok_body;
use support::images::httpd;
use support::json::{items, str_at};
use support::process::{tagged_processes, unique_run_marker};
use support::{wait_for, Kubectl, Skiff};

/// How long a rollout or a pod may take to reach the state a test waits for.
const WAIT: Duration = Duration::from_secs(90);

/// The environment variable tagging every container of this file, so that no process is left.
const MARKER_VAR: &str = "SKIFF_REGISTRY_ROLLOUT_MARKER";

/// The repository the images are pushed to.
const REPOSITORY: &str = "test/httpd";

fn deployment(image: &str, marker: &str) -> String {
    format!(
        "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 2
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: httpd
        image: {image}
        ports:
        - containerPort: 80
        readinessProbe:
          httpGet:
            path: /
            port: 80
          periodSeconds: 1
        env:
        - name: {MARKER_VAR}
          value: \"{marker}\"
"
    )
}

/// The Deployment's pods once there are exactly `count`, all running `image`, Ready and not
/// being deleted.
fn settled_pods(kubectl: &Kubectl, image: &str, count: usize) -> Vec<Value> {
    wait_for(&format!("{count} ready pods of {image}"), WAIT, || {
        let pods = items(&kubectl.json(&["get", "pods", "-l", "app=web"]));
        let settled = pods.len() == count
            && pods.iter().all(|pod| {
                pod.pointer("/metadata/deletionTimestamp").is_none()
                    && str_at(pod, "/spec/containers/0/image") == image
                    && pod.pointer("/status/containerStatuses/0/ready") == Some(&Value::Bool(true))
            });
        settled.then_some(pods)
    })
}

/// Checks every pod reports `digest` as its image ID and serves `version=<tag>`.
fn assert_pods_run(pods: &[Value], registry: &Registry, digest: &Digest, tag: &str) {
    for pod in pods {
        let name = str_at(pod, "/metadata/name");
        assert_eq!(
            str_at(pod, "/status/containerStatuses/0/imageID"),
            format!("{}/{REPOSITORY}@{digest}", registry.address),
            "{name}'s image ID names the pushed manifest"
        );
        let ip = str_at(pod, "/status/podIP");
        let page = wait_for(&format!("{name} to serve its page"), WAIT, || ok_body(&ip));
        assert_eq!(page, format!("version={tag}\n"), "{name} at {ip}");
    }
}

/// Waits until `kubectl describe` of the pods shows `image` pulled: `Pulling`, then `Pulled`
/// with kubelet's timing and size wording.
fn assert_pull_described(kubectl: &Kubectl, image: &str) {
    let mut last = String::new();
    let described = support::poll(WAIT, || {
        last = kubectl.ok(&["describe", "pods", "-l", "app=web"]);
        let pulling = last.lines().any(|l| {
            l.trim_start().starts_with("Normal")
                && l.contains(" Pulling ")
                && l.ends_with(&format!("Pulling image \"{image}\""))
        });
        let pulled = last.lines().any(|l| {
            l.trim_start().starts_with("Normal")
                && l.contains(" Pulled ")
                && l.contains(&format!("Successfully pulled image \"{image}\" in "))
                && l.contains(" including waiting). Image size: ")
                && l.ends_with(" bytes.")
        });
        (pulling && pulled).then_some(())
    });
    assert!(
        described.is_some(),
        "kubectl describe never showed {image} pulled:\n{last}"
    );
}

#[test]
fn a_deployment_pulls_from_a_registry_and_rolls_to_the_next_tag() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test needs root: containers get their image as their root"
    );
    let registry = Registry::start();
    let first = registry.push(&httpd("2.2"), REPOSITORY, "2.2");
    let second = registry.push(&httpd("2.4"), REPOSITORY, "2.4");
    assert_ne!(first, second, "each tag is its own image");
    let files = tempfile::tempdir().unwrap();
    let config = files.path().join("registries.yaml");
    std::fs::write(&config, registry.registries_file(false)).unwrap();
    let mut skiff = Skiff::start_with(&["--registry-config", config.to_str().unwrap()]);
    let kubectl = skiff.kubectl();
    let marker = unique_run_marker();

    let old_image = registry.image_name(REPOSITORY, "2.2");
    let manifest = skiff.write_file("web.yaml", &deployment(&old_image, &marker));
    kubectl.ok(&["apply", "-f", &manifest]);
    let rolled = kubectl.ok(&["rollout", "status", "deployment/web", "--timeout=90s"]);
    assert!(rolled.contains("successfully rolled out"), "{rolled}");
    let old_pods = settled_pods(&kubectl, &old_image, 2);
    assert_pods_run(&old_pods, &registry, &first, "2.2");
    assert_pull_described(&kubectl, &old_image);

    let new_image = registry.image_name(REPOSITORY, "2.4");
    assert_eq!(
        kubectl.ok(&[
            "set",
            "image",
            "deployment/web",
            &format!("httpd={new_image}")
        ]),
        "deployment.apps/web image updated\n"
    );
    let rolled = kubectl.ok(&["rollout", "status", "deployment/web", "--timeout=90s"]);
    assert!(rolled.contains("successfully rolled out"), "{rolled}");
    let new_pods = settled_pods(&kubectl, &new_image, 2);
    let old_names: BTreeSet<String> = old_pods
        .iter()
        .map(|p| str_at(p, "/metadata/name"))
        .collect();
    assert!(
        new_pods
            .iter()
            .all(|p| !old_names.contains(&str_at(p, "/metadata/name"))),
        "every pod was replaced"
    );
    assert_pods_run(&new_pods, &registry, &second, "2.4");
    assert_pull_described(&kubectl, &new_image);

    let status = skiff.stop();
    assert!(status.success(), "skiff exited with {status}");
    let left: Vec<_> = tagged_processes(MARKER_VAR, |value| value == marker)
        .into_iter()
        .filter(|process| process.is_live())
        .collect();
    assert!(left.is_empty(), "processes left behind: {left:?}");
}
