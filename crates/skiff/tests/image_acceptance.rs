//! Real-image acceptance beyond the plain rollout: a pod pinned by digest, a multi-platform
//! index resolved to this node's platform, and a Deployment rolled to a tag its registry does
//! not have, which stalls while the old pods keep serving. Images are the test kit's, pushed to
//! a real registry (Debian's `docker-registry`) on a loopback port; driven by the real
//! `kubectl`.
//!
//! Run as root (containers get their image as their root), with `kubectl` and
//! `docker-registry` on the PATH.

mod support;

use std::time::Duration;

use serde_json::{json, Value};
use skiff_images::build::{ImageBuilder, ImageConfig, LayerBuilder, LayerCompression};
use skiff_images::pull::Platform;
use skiff_testkit::registry::Registry;
use support::http::ok_body;
use support::images::httpd;
use support::json::{items, str_at};
use support::process::{tagged_processes, unique_run_marker};
use support::slow_proxy::SlowProxy;
use support::{wait_for, Kubectl, Skiff};

/// How long a pod or a rollout may take to reach the state a test waits for.
const WAIT: Duration = Duration::from_secs(90);

/// The environment variable tagging every container of this file, so that no process is left.
const MARKER_VAR: &str = "SKIFF_IMAGE_ACCEPTANCE_MARKER";

fn require_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test needs root: containers get their image as their root"
    );
}

/// A server whose registries file reaches `registry` (plain HTTP) and nothing else.
fn server_for(registry: &Registry) -> (Skiff, tempfile::TempDir) {
    let files = tempfile::tempdir().unwrap();
    let config = files.path().join("registries.yaml");
    let mut file: Value = serde_json::from_str(&registry.registries_file(false)).unwrap();
    file["mirrors"]["*"] = json!({"endpoint": [format!("http://{}", support::UNSERVED_REGISTRY)]});
    file["disable_default_endpoint"] = json!(true);
    std::fs::write(&config, file.to_string()).unwrap();
    let skiff = Skiff::start_with(&["--registry-config", config.to_str().unwrap()]);
    (skiff, files)
}

/// A pod of `image` (the httpd test image or one like it) serving on port 80.
fn httpd_pod(name: &str, image: &str, marker: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "terminationGracePeriodSeconds": 1,
            "containers": [{
                "name": "httpd",
                "image": image,
                "env": [{"name": MARKER_VAR, "value": marker}],
            }],
        },
    })
}

fn apply(skiff: &Skiff, kubectl: &Kubectl, name: &str, object: &Value) {
    let file = skiff.write_file(&format!("{name}.json"), &object.to_string());
    kubectl.ok(&["apply", "-f", &file]);
}

/// The pod once its container runs and it has an IP.
fn running_pod(kubectl: &Kubectl, name: &str) -> Value {
    wait_for(&format!("{name} running"), WAIT, || {
        let pod = kubectl.json(&["get", "pod", name]);
        let running = pod
            .pointer("/status/containerStatuses/0/state/running")
            .is_some()
            && !str_at(&pod, "/status/podIP").is_empty();
        running.then_some(pod)
    })
}

/// Stops the server and checks that no process of this file's containers is left.
fn stop_and_check_nothing_left(mut skiff: Skiff, marker: &str) {
    let status = skiff.stop();
    assert!(status.success(), "skiff exited with {status}");
    let left: Vec<_> = tagged_processes(MARKER_VAR, |value| value == marker)
        .into_iter()
        .filter(|process| process.is_live())
        .collect();
    assert!(left.is_empty(), "processes left behind: {left:?}");
}

#[test]
fn a_pod_pinned_by_digest_runs_that_manifest() {
    require_root();
    let registry = Registry::start();
    let digest = registry.push(&httpd("pinned"), "test/httpd", "pinned");
    // The tag moves on; the digest still names the first image.
    registry.push(&httpd("moved"), "test/httpd", "pinned");
    let (skiff, _files) = server_for(&registry);
    let kubectl = skiff.kubectl();
    let marker = unique_run_marker();

    let image = format!("{}/test/httpd@{digest}", registry.address);
    apply(
        &skiff,
        &kubectl,
        "pinned",
        &httpd_pod("pinned", &image, &marker),
    );
    let pod = running_pod(&kubectl, "pinned");
    assert_eq!(
        str_at(&pod, "/status/containerStatuses/0/imageID"),
        image,
        "the image ID is the pinned digest"
    );
    let ip = str_at(&pod, "/status/podIP");
    let page = wait_for("the pinned pod's page", WAIT, || ok_body(&ip));
    assert_eq!(
        page, "version=pinned\n",
        "the digest's image, not the tag's"
    );
    stop_and_check_nothing_left(skiff, &marker);
}

#[test]
fn a_multi_platform_index_runs_the_nodes_platform() {
    require_root();
    let registry = Registry::start();
    let native = httpd("native").build();
    let current = Platform::current();
    let other_architecture = if current.architecture == "arm64" {
        "amd64"
    } else {
        "arm64"
    };
    // The other platform's image has no program at all: the node picking it could not serve.
    let mut foreign_files = LayerBuilder::new();
    foreign_files
        .file("www/index.html", "version=foreign\n", 0o644)
        .unwrap();
    let foreign = ImageBuilder::new()
        .layer(foreign_files.build(LayerCompression::Gzip).unwrap())
        .config(ImageConfig {
            entrypoint: vec!["/bin/none".into()],
            ..ImageConfig::default()
        })
        .platform(Platform {
            architecture: other_architecture.to_string(),
            ..current.clone()
        })
        .build();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let index = runtime.block_on(registry.push_index(&[&foreign, &native], "test/multi", "1"));
    let (skiff, _files) = server_for(&registry);
    let kubectl = skiff.kubectl();
    let marker = unique_run_marker();

    let image = registry.image_name("test/multi", "1");
    apply(
        &skiff,
        &kubectl,
        "multi",
        &httpd_pod("multi", &image, &marker),
    );
    let pod = running_pod(&kubectl, "multi");
    assert_eq!(
        str_at(&pod, "/status/containerStatuses/0/imageID"),
        format!("{}/test/multi@{index}", registry.address),
        "kubelet reports the index's digest"
    );
    let ip = str_at(&pod, "/status/podIP");
    let page = wait_for("the multi-platform pod's page", WAIT, || ok_body(&ip));
    assert_eq!(page, "version=native\n", "the {current:?} image runs");
    stop_and_check_nothing_left(skiff, &marker);
}

fn deployment(image: &str, marker: &str) -> String {
    format!(
        "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 2
  progressDeadlineSeconds: 10
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

#[test]
fn a_rollout_to_a_missing_tag_stalls_in_image_pull_back_off_while_old_pods_serve() {
    require_root();
    let registry = Registry::start();
    registry.push(&httpd("2.2"), "test/httpd", "2.2");
    let (skiff, _files) = server_for(&registry);
    let kubectl = skiff.kubectl();
    let marker = unique_run_marker();

    let old_image = registry.image_name("test/httpd", "2.2");
    let manifest = skiff.write_file("web.yaml", &deployment(&old_image, &marker));
    kubectl.ok(&["apply", "-f", &manifest]);
    let rolled = kubectl.ok(&["rollout", "status", "deployment/web", "--timeout=90s"]);
    assert!(rolled.contains("successfully rolled out"), "{rolled}");
    let old_pods = items(&kubectl.json(&["get", "pods", "-l", "app=web"]));
    assert_eq!(old_pods.len(), 2);
    let old_ips: Vec<String> = old_pods
        .iter()
        .map(|p| str_at(p, "/status/podIP"))
        .collect();

    let missing = registry.image_name("test/httpd", "missing");
    kubectl.ok(&[
        "set",
        "image",
        "deployment/web",
        &format!("httpd={missing}"),
    ]);
    let new_pod_waiting = |reason: &str| {
        wait_for(&format!("a pod of {missing} in {reason}"), WAIT, || {
            items(&kubectl.json(&["get", "pods", "-l", "app=web"]))
                .into_iter()
                .filter(|p| str_at(p, "/spec/containers/0/image") == missing)
                .find(|p| str_at(p, "/status/containerStatuses/0/state/waiting/reason") == reason)
                .map(|p| str_at(&p, "/status/containerStatuses/0/state/waiting/message"))
        })
    };
    let error = new_pod_waiting("ErrImagePull");
    assert!(
        error.to_lowercase().contains("manifest unknown"),
        "the registry's own message: {error}"
    );
    let back_off = new_pod_waiting("ImagePullBackOff");
    assert!(
        back_off.starts_with(&format!(
            "Back-off pulling image \"{missing}\": ErrImagePull: "
        )),
        "{back_off}"
    );

    // The rollout stalls: kubectl gives up waiting, and the Deployment reports its deadline.
    let stalled = kubectl.run(&["rollout", "status", "deployment/web", "--timeout=3s"]);
    assert!(!stalled.success(), "the rollout must not complete");
    assert!(
        stalled
            .stderr
            .contains("timed out waiting for the condition"),
        "{}",
        stalled.stderr
    );
    let condition = wait_for("the Deployment's progress deadline", WAIT, || {
        let deployment = kubectl.json(&["get", "deployment", "web"]);
        let conditions = deployment
            .pointer("/status/conditions")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        conditions
            .into_iter()
            .find(|c| c["type"] == "Progressing" && c["reason"] == "ProgressDeadlineExceeded")
    });
    assert_eq!(condition["status"], "False", "{condition}");
    assert_eq!(
        condition["message"].as_str().unwrap_or_default(),
        format!(
            "ReplicaSet \"{}\" has timed out progressing.",
            items(&kubectl.json(&["get", "rs", "-l", "app=web"]))
                .into_iter()
                .find(|rs| str_at(rs, "/spec/template/spec/containers/0/image") == missing)
                .map(|rs| str_at(&rs, "/metadata/name"))
                .expect("the new ReplicaSet")
        )
    );

    // The old pods are all still there and serving their version.
    let still: Vec<Value> = items(&kubectl.json(&["get", "pods", "-l", "app=web"]))
        .into_iter()
        .filter(|p| str_at(p, "/spec/containers/0/image") == old_image)
        .collect();
    assert_eq!(still.len(), 2, "no old pod was taken down");
    for ip in &old_ips {
        assert_eq!(
            ok_body(ip).as_deref(),
            Some("version=2.2\n"),
            "the old pod at {ip} keeps serving"
        );
    }
    stop_and_check_nothing_left(skiff, &marker);
}

/// The bytes of partly downloaded blobs in a data directory's content store.
fn ingest_bytes(data_dir: &std::path::Path) -> u64 {
    std::fs::read_dir(data_dir.join("content/ingest"))
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| e.metadata().ok())
                .filter(|m| m.is_file())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

#[test]
fn a_server_killed_during_a_pods_pull_pulls_cleanly_after_restart() {
    require_root();
    let registry = Registry::start();
    let image = httpd("interrupted");
    let built = image.build();
    registry.push(&image, "test/httpd", "interrupted");
    // The registry is reached only through a relay that slows its answers to a trickle.
    let proxy = SlowProxy::start(&registry.address);
    let files = tempfile::tempdir().unwrap();
    let config = files.path().join("registries.yaml");
    let file = json!({
        "mirrors": {
            &proxy.address: {"endpoint": [format!("http://{}", proxy.address)]},
            "*": {"endpoint": [format!("http://{}", support::UNSERVED_REGISTRY)]},
        },
        "disable_default_endpoint": true,
    });
    std::fs::write(&config, file.to_string()).unwrap();
    let mut skiff = Skiff::start_with(&["--registry-config", config.to_str().unwrap()]);
    let kubectl = skiff.kubectl();
    let marker = unique_run_marker();

    let name = format!("{}/test/httpd:interrupted", proxy.address);
    apply(&skiff, &kubectl, "slow", &httpd_pod("slow", &name, &marker));
    let data_dir = skiff.data_dir();
    wait_for("the layer download to be under way", WAIT, || {
        (ingest_bytes(&data_dir) >= 64 * 1024).then_some(())
    });
    skiff.kill();

    let largest = built
        .layers
        .iter()
        .max_by_key(|layer| layer.blob.len())
        .expect("the image has layers");
    let blob = data_dir
        .join("content/blobs/sha256")
        .join(largest.digest.hex());
    assert!(
        !blob.exists(),
        "a half-downloaded blob is not stored under its digest"
    );
    let (ok, listing, stderr) = support::cli::skiff(&data_dir, &["image", "ls"]);
    assert!(ok, "{stderr}");
    assert!(
        !listing.contains("test/httpd"),
        "no image is recorded before its pull completes:\n{listing}"
    );

    proxy.set_throttled(false);
    skiff.restart();
    let kubectl = skiff.kubectl();
    let pod = running_pod(&kubectl, "slow");
    let ip = str_at(&pod, "/status/podIP");
    let page = wait_for("the pulled pod's page", WAIT, || ok_body(&ip));
    assert_eq!(page, "version=interrupted\n");
    assert_eq!(
        str_at(&pod, "/status/containerStatuses/0/imageID"),
        format!("{}/test/httpd@{}", proxy.address, built.manifest_digest)
    );
    let stored = std::fs::read(&blob).expect("the completed blob is stored");
    assert_eq!(
        skiff_images::Digest::sha256_of(&stored),
        largest.digest,
        "the stored blob is the whole layer"
    );
    let (ok, listing, stderr) = support::cli::skiff(&data_dir, &["image", "ls"]);
    assert!(ok, "{stderr}");
    assert!(
        listing.contains(&format!("{}/test/httpd", proxy.address))
            && listing.contains("interrupted"),
        "{listing}"
    );
    assert_eq!(
        ingest_bytes(&data_dir),
        0,
        "the killed pull's partial file was swept"
    );
    stop_and_check_nothing_left(skiff, &marker);
}
