//! `kubectl debug` with ephemeral containers against `skiff up` with its real node, through the
//! installed kubectl 1.27 and 1.33: the debugger is added through `pods/ephemeralcontainers`,
//! runs once with a terminal kubectl attaches to, sees the target container's processes, and
//! shows in `status.ephemeralContainerStatuses`; changing it afterwards is Kubernetes' 422.
//!
//! Run with `cargo test -p skiff --test debug` (Linux; `kubectl.1.27` and `kubectl.1.33` beside
//! the PATH `kubectl`; `script` from bsdutils for the terminal). With
//! `SKIFF_TEST_CONTAINER_RUNTIME=oci` both run under the OCI runtime (the debugger's terminal
//! is the node monitor's), and the test without a terminal also checks that the debugger
//! joined the target's PID namespace.

mod support;

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::json::json_of;
use support::{versioned_kubectls, wait_for, Kubectl, Skiff};

/// How long a pod may take to start or a session to answer when all is well.
const SHORT: Duration = Duration::from_secs(60);

/// The pod to debug: its container `app` runs a command the debugger must see. `sleep` as a
/// PID namespace's init ignores SIGTERM: a short grace period lets the server stop it, and
/// everything else, before the test's clean-up stops waiting.
const TARGET_POD: &str = "apiVersion: v1
kind: Pod
metadata:
  name: target
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: app
    image: 127.0.0.1:9/skiff-test/shell:1.36
    command: [\"sleep\", \"12345\"]
";

/// kubectl 1.27 and 1.33, both required.
fn key_kubectls() -> Vec<PathBuf> {
    let found = versioned_kubectls();
    ["kubectl.1.27", "kubectl.1.33"]
        .iter()
        .map(|name| {
            found
                .iter()
                .find(|path| path.file_name().is_some_and(|n| n == *name))
                .cloned()
                .unwrap_or_else(|| panic!("{name} must be installed beside kubectl"))
        })
        .collect()
}

/// Runs `inner` under `script` (a pseudo-terminal), feeding `input`; whether it succeeded and
/// the terminal's text.
fn under_terminal(inner: &str, input: &[u8]) -> (bool, String) {
    let mut child = Command::new("script")
        .args(["-qec", inner, "/dev/null"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("`script` (bsdutils) must be installed");
    let mut stdin = child.stdin.take().expect("stdin is piped");
    stdin.write_all(input).expect("feeding the terminal");
    let mut stdout = child.stdout.take().expect("stdout is piped");
    let output = thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = stdout.read_to_end(&mut bytes);
        String::from_utf8_lossy(&bytes).into_owned()
    });
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("waiting for script") {
            break status;
        }
        if started.elapsed() > SHORT {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{inner:?} did not finish within {SHORT:?}");
        }
        thread::sleep(Duration::from_millis(20));
    };
    drop(stdin);
    (status.success(), output.join().unwrap_or_default())
}

fn ephemeral_status(kubectl: &Kubectl, name: &str) -> Value {
    let pod = json_of(&kubectl.ok(&["get", "pod", "target", "-o", "json"]));
    pod["status"]["ephemeralContainerStatuses"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|s| s["name"] == name)
        .cloned()
        .unwrap_or(Value::Null)
}

#[test]
fn debug_with_a_target_sees_its_processes_and_the_debugger_cannot_change() {
    let skiff = Skiff::start_with_images(&[], &[support::images::shell()]);
    let kubectl = skiff.kubectl();
    kubectl.ok(&["apply", "-f", &skiff.write_file("target.yaml", TARGET_POD)]);
    wait_for("the target pod to run", SHORT, || {
        let phase = kubectl.ok(&["get", "pod", "target", "-o", "jsonpath={.status.phase}"]);
        (phase == "Running").then_some(())
    });

    for (index, binary) in key_kubectls().iter().enumerate() {
        let who = binary
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let debugger = format!("debugger-{index}");
        let (ok, text) = under_terminal(
            &format!(
                "{} --kubeconfig {} debug -it target --image={} --target=app -c {debugger} -- sh",
                binary.display(),
                skiff.kubeconfig().display(),
                support::images::SHELL,
            ),
            b"ps -o pid,args\nexit\n",
        );
        assert!(ok, "{who}: kubectl debug failed: {text:?}");
        assert!(
            text.contains("sleep 12345"),
            "{who}: the debugger does not see the target's process: {text:?}; its status: {}",
            ephemeral_status(&kubectl, &debugger)
        );

        // The run ended with the shell, is reported, and is not restarted.
        let status = wait_for(&format!("{who}: {debugger} to end"), SHORT, || {
            let status = ephemeral_status(&kubectl, &debugger);
            status["state"]["terminated"].is_object().then_some(status)
        });
        assert_eq!(status["image"], support::images::SHELL, "{who}: {status}");
        assert_eq!(status["restartCount"], 0, "{who}: {status}");
        assert_eq!(status["ready"], false, "{who}: {status}");
        assert!(
            status["imageID"].as_str().is_some_and(|id| !id.is_empty()),
            "{who}: no imageID: {status}"
        );
        assert_eq!(
            status["state"]["terminated"]["exitCode"], 0,
            "{who}: {status}"
        );
        let pod = json_of(&kubectl.ok(&["get", "pod", "target", "-o", "json"]));
        assert_eq!(pod["status"]["phase"], "Running", "{who}");
        let ready = pod["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|c| c["type"] == "Ready")
            .cloned()
            .unwrap_or(Value::Null);
        assert_eq!(
            ready["status"], "True",
            "{who}: the debugger made the pod unready"
        );
        let spec = &pod["spec"]["ephemeralContainers"][index];
        assert_eq!(spec["name"], debugger.as_str(), "{who}: {spec}");
        assert_eq!(spec["targetContainerName"], "app", "{who}: {spec}");
    }

    // Changing an existing ephemeral container through the subresource is Kubernetes' 422.
    let path = "/api/v1/namespaces/default/pods/target/ephemeralcontainers";
    let mut pod = json_of(&kubectl.ok(&["get", "--raw", path]));
    assert_eq!(
        pod["kind"], "Pod",
        "the subresource reads as the pod: {pod}"
    );
    pod["spec"]["ephemeralContainers"][0]["image"] = json!("127.0.0.1:9/skiff-test/other:1");
    let changed = skiff.write_file("changed.json", &pod.to_string());
    let refused = kubectl.run(&["replace", "--raw", path, "-f", &changed, "-v=6"]);
    assert!(
        !refused.success(),
        "a changed ephemeral container was accepted"
    );
    assert!(
        refused.stderr.contains(" 422 "),
        "not a 422: {}",
        refused.stderr
    );
    assert!(
        refused.stderr.contains(
            "spec.ephemeralContainers: Forbidden: existing ephemeral containers \\\"debugger-0\\\" may not be changed"
        ) || refused.stderr.contains(
            "spec.ephemeralContainers: Forbidden: existing ephemeral containers \"debugger-0\" may not be changed"
        ),
        "not Kubernetes' message: {}",
        refused.stderr
    );
    // The refusal carries the diff Kubernetes appends, as printed or inside the logged JSON.
    for line in [
        "\n  core.EphemeralContainer{\n  \tEphemeralContainerCommon: core.EphemeralContainerCommon{\n",
        "\n- \t\tImage:   \"127.0.0.1:9/skiff-test/",
        "\n+ \t\tImage:   \"127.0.0.1:9/skiff-test/other:1\",\n",
    ] {
        let escaped = serde_json::to_string(line).expect("a string serialises");
        let escaped = &escaped[1..escaped.len() - 1];
        assert!(
            refused.stderr.contains(line) || refused.stderr.contains(escaped),
            "no {line:?} of the change's diff in the refusal: {}",
            refused.stderr
        );
    }
}

/// Without a terminal: the debugger's `ps` lists the target's process, which under `oci` is PID 1 of the namespace it
/// joined.
#[test]
fn a_debugger_without_a_terminal_lists_the_target_process_in_its_log() {
    let skiff = Skiff::start_with_images(&[], &[support::images::shell()]);
    let kubectl = skiff.kubectl();
    kubectl.ok(&["apply", "-f", &skiff.write_file("target.yaml", TARGET_POD)]);
    wait_for("the target pod to run", SHORT, || {
        let phase = kubectl.ok(&["get", "pod", "target", "-o", "jsonpath={.status.phase}"]);
        (phase == "Running").then_some(())
    });
    let under_oci = std::env::var(support::TEST_CONTAINER_RUNTIME).is_ok();
    for (index, binary) in key_kubectls().iter().enumerate() {
        let who = binary
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let debugger = format!("ps-{index}");
        let versioned = skiff.kubectl_at(binary);
        versioned.ok(&[
            "debug",
            "target",
            &format!("--image={}", support::images::SHELL),
            "--target=app",
            "-c",
            &debugger,
            "--",
            "ps",
            "-o",
            "pid,args",
        ]);
        let status = wait_for(&format!("{who}: {debugger} to end"), SHORT, || {
            let status = ephemeral_status(&kubectl, &debugger);
            status["state"]["terminated"].is_object().then_some(status)
        });
        assert_eq!(
            status["state"]["terminated"]["exitCode"], 0,
            "{who}: {status}"
        );
        let log = kubectl.ok(&["logs", "target", "-c", &debugger]);
        let target_line = log
            .lines()
            .find(|line| line.trim_end().ends_with("sleep 12345"))
            .unwrap_or_else(|| panic!("{who}: ps does not list the target's process:\n{log}"));
        if under_oci {
            let pid = target_line.split_whitespace().next().unwrap_or_default();
            assert_eq!(
                pid, "1",
                "{who}: the target is not PID 1 of the debugger's PID namespace:\n{log}"
            );
        }
    }
}
