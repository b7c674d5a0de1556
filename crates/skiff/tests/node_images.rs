//! Pods run from real images: `skiff up` with its real node, images imported into its content
//! store or pulled from a loopback registry (`docker-registry`), driven by the real `kubectl`.
//!
//! The images are built here from the static busybox (Debian `busybox-static`) plus a layer of
//! files only the image has. Run as root (containers get their image as their root through
//! overlayfs and `unshare`), with `kubectl` and `docker-registry` on the PATH.

mod support;

use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};
use skiff_images::build::{
    ArchiveCompression, BuiltImage, ImageBuilder, ImageConfig, LayerBuilder, LayerCompression,
};
use skiff_testkit::images::BUSYBOX;
use skiff_testkit::registry::{Registry, PASSWORD, USER};
use support::cli::skiff as skiff_cli;
use support::json::str_at;
use support::process::{tagged_processes, unique_run_marker};
use support::{wait_for, Kubectl, Skiff};

/// How long a pod may take to reach the state a test waits for.
const WAIT: Duration = Duration::from_secs(60);

/// The environment variable tagging every container of this file, so that no process is left.
const MARKER_VAR: &str = "SKIFF_IMAGES_MARKER";

/// A path no host has, so reading it proves the container's root is the image.
const IMAGE_ONLY_FILE: &str = "/skiff-image-test/message.txt";

/// An image of busybox plus a file at [`IMAGE_ONLY_FILE`] holding `message`.
fn image(message: &str) -> BuiltImage {
    let mut busybox = LayerBuilder::new();
    busybox
        .host_file("bin/busybox", BUSYBOX)
        .expect("busybox must be installed (Debian package busybox-static)");
    let mut files = LayerBuilder::new();
    files
        .file(IMAGE_ONLY_FILE, message.as_bytes(), 0o644)
        .expect("the image's own file");
    ImageBuilder::new()
        .layer(
            busybox
                .build(LayerCompression::Gzip)
                .expect("busybox layer"),
        )
        .layer(files.build(LayerCompression::Gzip).expect("file layer"))
        .config(ImageConfig {
            entrypoint: vec!["/bin/busybox".into(), "sh".into()],
            ..ImageConfig::default()
        })
        .build()
}

/// A pod running `script` with busybox's shell, tagged with `marker`.
fn pod(name: &str, image: &str, policy: &str, script: &str, marker: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "terminationGracePeriodSeconds": 1,
            "containers": [{
                "name": "main",
                "image": image,
                "imagePullPolicy": policy,
                "command": ["/bin/busybox", "sh", "-c", script],
                "env": [{"name": MARKER_VAR, "value": marker}],
            }],
        },
    })
}

fn apply(skiff: &Skiff, kubectl: &Kubectl, file: &str, object: &Value) {
    let name = skiff.write_file(file, &object.to_string());
    kubectl.ok(&["apply", "-f", &name]);
}

fn pod_json(kubectl: &Kubectl, name: &str) -> Value {
    serde_json::from_str(&kubectl.ok(&["get", "pod", name, "-o", "json"])).expect("pod JSON")
}

/// The container's waiting reason and message, once it has the reason `reason`.
fn wait_for_waiting(kubectl: &Kubectl, name: &str, reason: &str) -> String {
    wait_for(&format!("{name} waiting in {reason}"), WAIT, || {
        let pod = pod_json(kubectl, name);
        (str_at(&pod, "/status/containerStatuses/0/state/waiting/reason") == reason)
            .then(|| str_at(&pod, "/status/containerStatuses/0/state/waiting/message"))
    })
}

/// The events of `kubectl describe pod NAME`, once `wanted` holds for them.
fn wait_for_described_events(kubectl: &Kubectl, name: &str, wanted: impl Fn(&str) -> bool) {
    let mut last = String::new();
    let found = support::poll(WAIT, || {
        last = kubectl.ok(&["describe", "pod", name]);
        let events = last.split_once("\nEvents:")?.1.to_string();
        wanted(&events).then_some(())
    });
    assert!(
        found.is_some(),
        "the events of {name} never showed what was expected:\n{last}"
    );
}

/// Stops the server and checks that no process of this file's containers is left.
fn stop_and_check_nothing_left(mut skiff: Skiff, marker: &str) {
    let status = skiff.stop();
    assert!(status.success(), "skiff exited with {status}");
    let left: Vec<_> = tagged_processes(MARKER_VAR, |v| v == marker)
        .into_iter()
        .filter(|p| p.is_live())
        .collect();
    assert!(left.is_empty(), "processes left behind: {left:?}");
}

/// A `docker save` archive imported with `skiff image import` runs with pull policy Never,
/// no registry anywhere.
#[test]
fn a_docker_save_archive_runs_with_pull_policy_never() {
    assert!(
        nix_is_root(),
        "this test runs containers with their image as root filesystem, which needs root"
    );
    let marker = unique_run_marker();
    let files = tempfile::tempdir().unwrap();
    let archive = files.path().join("saved.tar");
    image("hello from a docker save archive")
        .write_docker_archive(&archive, &["example.test/team/saved:2.0"])
        .expect("writing the archive");

    let skiff = Skiff::start_with(&[]);
    let (ok, _, stderr) = skiff_cli(
        &skiff.data_dir(),
        &["image", "import", archive.to_str().unwrap()],
    );
    assert!(ok, "import: {stderr}");
    let kubectl = skiff.kubectl();
    let script = format!("/bin/busybox cat {IMAGE_ONLY_FILE}; exec /bin/busybox sleep 3600");
    let saved = pod(
        "saved",
        "example.test/team/saved:2.0",
        "Never",
        &script,
        &marker,
    );
    apply(&skiff, &kubectl, "saved.json", &saved);
    wait_for("the saved image's file in the pod's log", WAIT, || {
        let out = kubectl.run(&["logs", "saved"]);
        out.stdout
            .contains("hello from a docker save archive")
            .then_some(())
    });
    let running = pod_json(&kubectl, "saved");
    assert!(
        running
            .pointer("/status/containerStatuses/0/state/running")
            .is_some(),
        "the container runs from the imported image: {running}"
    );
    stop_and_check_nothing_left(skiff, &marker);
}

#[test]
fn an_imported_image_runs_as_the_containers_root_with_pull_policy_never() {
    assert!(
        nix_is_root(),
        "this test runs containers with their image as root filesystem, which needs root"
    );
    assert!(
        !Path::new(IMAGE_ONLY_FILE).exists(),
        "{IMAGE_ONLY_FILE} must not exist on the host"
    );
    let marker = unique_run_marker();
    let files = tempfile::tempdir().unwrap();
    let built = image("hello from inside the image");
    let archive = files.path().join("tool.tar");
    built
        .write_oci_archive_compressed(
            &archive,
            "example.test/team/tool:1.0",
            ArchiveCompression::Gzip,
        )
        .expect("writing the archive");
    let manifest_digest = built.manifest_digest.to_string();

    let skiff = Skiff::start_with(&[]);
    let (ok, _, stderr) = skiff_cli(
        &skiff.data_dir(),
        &["image", "import", archive.to_str().unwrap()],
    );
    assert!(ok, "import: {stderr}");
    let kubectl = skiff.kubectl();

    let script = format!(
        "/bin/busybox cat {IMAGE_ONLY_FILE}; echo; /bin/busybox pwd; /bin/busybox cat /etc/hostname; exec /bin/busybox sleep 3600"
    );
    let mut tool = pod(
        "tool",
        "example.test/team/tool:1.0",
        "Never",
        &script,
        &marker,
    );
    // Exec probes run inside the same root: only there does the file exist.
    tool["spec"]["containers"][0]["readinessProbe"] = json!({
        "exec": {"command": ["/bin/busybox", "cat", IMAGE_ONLY_FILE]},
        "periodSeconds": 1,
    });
    apply(&skiff, &kubectl, "tool.json", &tool);
    let running = wait_for("tool running", WAIT, || {
        let pod = pod_json(&kubectl, "tool");
        let state = pod.pointer("/status/containerStatuses/0/state/running");
        state.is_some().then_some(pod)
    });
    assert_eq!(
        str_at(&running, "/status/containerStatuses/0/image"),
        "example.test/team/tool:1.0",
        "the image as the runtime names it"
    );
    assert_eq!(
        str_at(&running, "/status/containerStatuses/0/imageID"),
        format!("example.test/team/tool@{manifest_digest}")
    );
    let logs = wait_for("the container's output", WAIT, || {
        let logs = kubectl.ok(&["logs", "tool"]);
        (logs.lines().count() >= 3).then_some(logs)
    });
    assert_eq!(
        logs.lines().take(3).collect::<Vec<_>>(),
        vec!["hello from inside the image", "/", "tool"],
        "the file only the image has, the image's working directory and the pod's hostname"
    );
    wait_for("tool ready through its exec probe", WAIT, || {
        let pod = pod_json(&kubectl, "tool");
        (pod.pointer("/status/containerStatuses/0/ready") == Some(&Value::Bool(true))).then_some(())
    });

    wait_for_described_events(&kubectl, "tool", |events| {
        events.contains(
            "Container image \"example.test/team/tool:1.0\" already present on machine and can be accessed by the pod",
        ) && events.contains("Started")
    });
    let described = kubectl.ok(&["describe", "pod", "tool"]);
    assert!(
        !described.contains("Readiness probe failed"),
        "the probe never ran before the container's root was in place:\n{described}"
    );
    assert!(
        described.contains(&format!(
            "Image ID:      example.test/team/tool@{manifest_digest}"
        )),
        "{described}"
    );

    // The node lists the stored image by digest and by tag.
    let node = kubectl.ok(&["get", "nodes", "-o", "name"]);
    let node = node.trim().to_string();
    let names = wait_for("the node's images", WAIT, || {
        let node: Value = serde_json::from_str(&kubectl.ok(&["get", &node, "-o", "json"])).unwrap();
        let names: Vec<String> = node
            .pointer("/status/images")?
            .as_array()?
            .iter()
            .flat_map(|i| i["names"].as_array().cloned().unwrap_or_default())
            .filter_map(|n| n.as_str().map(str::to_string))
            .collect();
        (!names.is_empty()).then_some(names)
    });
    assert!(
        names.contains(&format!("example.test/team/tool@{manifest_digest}"))
            && names.contains(&"example.test/team/tool:1.0".to_string()),
        "{names:?}"
    );

    // The security context's user and group, and kubelet's check of runAsNonRoot.
    let mut as_user = pod(
        "as-user",
        "example.test/team/tool:1.0",
        "Never",
        "/bin/busybox id -u; /bin/busybox id -g; exec /bin/busybox sleep 3600",
        &marker,
    );
    as_user["spec"]["securityContext"] = json!({"runAsUser": 1000, "runAsGroup": 3000});
    apply(&skiff, &kubectl, "as-user.json", &as_user);
    let ids = wait_for("as-user's output", WAIT, || {
        let logs = kubectl.ok(&["logs", "as-user"]);
        (logs.lines().count() >= 2).then_some(logs)
    });
    assert_eq!(ids.lines().collect::<Vec<_>>(), vec!["1000", "3000"]);
    let mut non_root = pod(
        "non-root",
        "example.test/team/tool:1.0",
        "Never",
        "true",
        &marker,
    );
    non_root["spec"]["securityContext"] = json!({"runAsNonRoot": true});
    apply(&skiff, &kubectl, "non-root.json", &non_root);
    let refused = wait_for_waiting(&kubectl, "non-root", "CreateContainerConfigError");
    assert!(
        refused.starts_with(
            "container has runAsNonRoot and image will run as root (pod: \"non-root_default("
        ),
        "{refused}"
    );

    // An image the node lacks, with Never, is not pulled.
    apply(
        &skiff,
        &kubectl,
        "missing.json",
        &pod(
            "missing",
            "example.test/team/absent:2",
            "Never",
            "true",
            &marker,
        ),
    );
    let message = wait_for_waiting(&kubectl, "missing", "ErrImageNeverPull");
    assert_eq!(
        message,
        "Container image \"example.test/team/absent:2\" is not present with pull policy of Never"
    );
    wait_for_described_events(&kubectl, "missing", |events| {
        events.contains("ErrImageNeverPull")
            && events.contains("Error: ErrImageNeverPull")
            && !events.contains("Pulling")
    });
    // A reference that does not parse.
    apply(
        &skiff,
        &kubectl,
        "bad-name.json",
        &pod("bad-name", "Bad/Name:1", "IfNotPresent", "true", &marker),
    );
    let message = wait_for_waiting(&kubectl, "bad-name", "InvalidImageName");
    assert!(
        message.starts_with(
            "Failed to apply default image tag \"Bad/Name:1\": couldn't parse image name \"Bad/Name:1\": invalid reference format"
        ),
        "{message}"
    );
    wait_for_described_events(&kubectl, "bad-name", |events| {
        events.contains("InspectFailed") && events.contains("Error: InvalidImageName")
    });
    stop_and_check_nothing_left(skiff, &marker);
}

#[test]
fn images_are_pulled_from_a_registry_with_kubelets_events_and_back_off() {
    assert!(nix_is_root(), "this test needs root (see the module docs)");
    let marker = unique_run_marker();
    let registry = Registry::start();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let built = image("pulled from the registry");
    let digest = runtime.block_on(registry.push_built(&built, "test/app", "1"));
    let files = tempfile::tempdir().unwrap();
    let config = files.path().join("registries.yaml");
    std::fs::write(
        &config,
        format!(
            "mirrors:\n  \"{0}\":\n    endpoint:\n      - \"http://{0}\"\n",
            registry.address
        ),
    )
    .unwrap();
    let skiff = Skiff::start_with(&["--registry-config", config.to_str().unwrap()]);
    let kubectl = skiff.kubectl();

    let image = format!("{}/test/app:1", registry.address);
    let script = format!("/bin/busybox cat {IMAGE_ONLY_FILE}; exec /bin/busybox sleep 3600");
    apply(
        &skiff,
        &kubectl,
        "app.json",
        &pod("app", &image, "IfNotPresent", &script, &marker),
    );
    let running = wait_for("app running", WAIT, || {
        let pod = pod_json(&kubectl, "app");
        pod.pointer("/status/containerStatuses/0/state/running")
            .is_some()
            .then_some(pod)
    });
    assert_eq!(
        str_at(&running, "/status/containerStatuses/0/imageID"),
        format!("{}/test/app@{digest}", registry.address)
    );
    let pulled_prefix = format!("Successfully pulled image \"{image}\" in ");
    let size_suffix = format!("Image size: {} bytes.", built.size());
    wait_for_described_events(&kubectl, "app", |events| {
        events.contains(&format!("Pulling image \"{image}\""))
            && events.contains(&pulled_prefix)
            && events.contains(&size_suffix)
    });
    let logs = wait_for("the pulled container's output", WAIT, || {
        let logs = kubectl.ok(&["logs", "app"]);
        (!logs.is_empty()).then_some(logs)
    });
    assert_eq!(logs.trim_end(), "pulled from the registry");

    // A tag the registry does not have: the registry's error, then the back-off.
    let missing = format!("{}/test/app:nope", registry.address);
    apply(
        &skiff,
        &kubectl,
        "nope.json",
        &pod("nope", &missing, "IfNotPresent", "true", &marker),
    );
    let error = wait_for_waiting(&kubectl, "nope", "ErrImagePull");
    assert!(
        error.to_lowercase().contains("manifest unknown"),
        "the registry's own error: {error}"
    );
    let back_off = wait_for_waiting(&kubectl, "nope", "ImagePullBackOff");
    assert!(
        back_off.starts_with(&format!(
            "Back-off pulling image \"{missing}\": ErrImagePull: "
        )),
        "{back_off}"
    );
    wait_for_described_events(&kubectl, "nope", |events| {
        events.contains(&format!("Failed to pull image \"{missing}\": "))
            && events.contains("Error: ErrImagePull")
            && events.contains(&format!("Back-off pulling image \"{missing}\""))
            && events.contains("Error: ImagePullBackOff")
    });
    stop_and_check_nothing_left(skiff, &marker);
}

#[test]
fn a_pull_secret_opens_a_registry_that_refuses_anonymous_pulls() {
    assert!(nix_is_root(), "this test needs root (see the module docs)");
    let marker = unique_run_marker();
    let registry = Registry::start_with_basic_auth();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(registry.push_built(&image("private"), "team/private", "1"));
    let files = tempfile::tempdir().unwrap();
    let config = files.path().join("registries.yaml");
    std::fs::write(
        &config,
        format!(
            "mirrors:\n  \"{0}\":\n    endpoint:\n      - \"http://{0}\"\n",
            registry.address
        ),
    )
    .unwrap();
    let skiff = Skiff::start_with(&["--registry-config", config.to_str().unwrap()]);
    let kubectl = skiff.kubectl();
    let image = format!("{}/team/private:1", registry.address);
    let script = format!("/bin/busybox cat {IMAGE_ONLY_FILE}; exec /bin/busybox sleep 3600");

    apply(
        &skiff,
        &kubectl,
        "anonymous.json",
        &pod("anonymous", &image, "IfNotPresent", &script, &marker),
    );
    let refused = wait_for_waiting(&kubectl, "anonymous", "ErrImagePull");
    assert!(refused.to_lowercase().contains("unauthorized"), "{refused}");

    kubectl.ok(&[
        "create",
        "secret",
        "docker-registry",
        "private-registry",
        &format!("--docker-server={}", registry.address),
        &format!("--docker-username={USER}"),
        &format!("--docker-password={PASSWORD}"),
    ]);
    let mut with_secret = pod("with-secret", &image, "IfNotPresent", &script, &marker);
    with_secret["spec"]["imagePullSecrets"] = json!([{"name": "private-registry"}]);
    apply(&skiff, &kubectl, "with-secret.json", &with_secret);
    wait_for("with-secret running", WAIT, || {
        let pod = pod_json(&kubectl, "with-secret");
        pod.pointer("/status/containerStatuses/0/state/running")
            .map(|_| ())
    });

    // The ServiceAccount's pull secrets count too.
    kubectl.ok(&[
        "patch",
        "serviceaccount",
        "default",
        "-p",
        r#"{"imagePullSecrets": [{"name": "private-registry"}]}"#,
    ]);
    apply(
        &skiff,
        &kubectl,
        "via-account.json",
        &pod("via-account", &image, "Always", &script, &marker),
    );
    wait_for("via-account running", WAIT, || {
        let pod = pod_json(&kubectl, "via-account");
        pod.pointer("/status/containerStatuses/0/state/running")
            .map(|_| ())
    });
    let logs = kubectl.ok(&["logs", "via-account"]);
    assert_eq!(logs.trim_end(), "private");
    stop_and_check_nothing_left(skiff, &marker);
}

#[test]
fn no_test_server_pulls_beyond_loopback() {
    let marker = unique_run_marker();
    let skiff = Skiff::start_with(&[]);
    let kubectl = skiff.kubectl();
    apply(
        &skiff,
        &kubectl,
        "far.json",
        &pod("far", "nginx:1.18", "IfNotPresent", "true", &marker),
    );
    let error = wait_for_waiting(&kubectl, "far", "ErrImagePull");
    let endpoint = support::UNSERVED_REGISTRY;
    assert!(
        error.contains(endpoint),
        "the pull of nginx:1.18 must go to {endpoint} only, and fail there: {error}"
    );
    assert!(
        !error.contains("registry-1.docker.io"),
        "the pull must not reach Docker Hub: {error}"
    );
    assert!(
        !skiff.log().contains("registry-1.docker.io"),
        "the server tried Docker Hub:\n{}",
        skiff.log()
    );
    stop_and_check_nothing_left(skiff, &marker);
}

fn nix_is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|ids| ids.split_whitespace().nth(1).map(|e| e == "0"))
        })
        .unwrap_or(false)
}
