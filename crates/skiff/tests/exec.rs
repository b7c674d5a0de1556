//! `kubectl exec`, `cp` and `port-forward` against `skiff up` with its real node, through the
//! installed kubectl 1.27 (SPDY only) and 1.33 (WebSocket first), with pods that are real
//! processes.
//!
//! Run with `cargo test -p skiff --test exec` (Linux, as root; `kubectl.1.27` and
//! `kubectl.1.33` beside the PATH `kubectl`; `script` from bsdutils for the terminal test).

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use support::{versioned_kubectls, wait_for, Kubectl, Skiff};

/// How long a pod may take to start or a session to answer when all is well.
const SHORT: Duration = Duration::from_secs(60);

/// The test kit's images every server here starts with, imported at start: the shell image
/// (`127.0.0.1:9/skiff-test/shell:1.36`, busybox with its applets, `tar` for `kubectl cp`) and
/// the httpd image (`127.0.0.1:9/skiff-test/httpd:2.2`) the manifests below name.
fn test_images() -> Vec<skiff_testkit::images::TestImage> {
    let images = vec![support::images::shell(), support::images::httpd("2.2")];
    assert_eq!(support::images::SHELL, "127.0.0.1:9/skiff-test/shell:1.36");
    assert_eq!(support::images::HTTPD, "127.0.0.1:9/skiff-test/httpd");
    images
}

/// A shell pod that stays up, with an environment variable exec must see.
const SHELL_POD: &str = "apiVersion: v1
kind: Pod
metadata:
  name: shell
  labels:
    app: shell
spec:
  containers:
  - name: sh
    image: 127.0.0.1:9/skiff-test/shell:1.36
    command: [\"sh\", \"-c\", \"sleep 3600\"]
    env:
    - name: GREETING
      value: hello from the container
";

/// The kubectl binaries the key cases run with: 1.27 (SPDY) and 1.33 (WebSocket), both
/// required.
fn key_kubectls() -> Vec<PathBuf> {
    let found = versioned_kubectls();
    let wanted: Vec<PathBuf> = ["kubectl.1.27", "kubectl.1.33"]
        .iter()
        .map(|name| {
            found
                .iter()
                .find(|path| path.file_name().is_some_and(|n| n == *name))
                .cloned()
                .unwrap_or_else(|| panic!("{name} must be installed beside kubectl"))
        })
        .collect();
    wanted
}

/// Starts a server with its real node and the shell pod, and waits until the pod runs.
fn server_with_shell() -> (Skiff, Kubectl) {
    let skiff = Skiff::start_with_images(&[], &test_images());
    let kubectl = skiff.kubectl();
    let manifest = skiff.write_file("shell.yaml", SHELL_POD);
    kubectl.ok(&["apply", "-f", &manifest]);
    wait_running(&kubectl, "shell");
    (skiff, kubectl)
}

fn wait_running(kubectl: &Kubectl, pod: &str) {
    wait_for(&format!("pod {pod} to run"), SHORT, || {
        let phase = kubectl.ok(&["get", "pod", pod, "-o", "jsonpath={.status.phase}"]);
        (phase == "Running").then_some(())
    });
}

/// The result of a kubectl run fed `input` on stdin.
struct Fed {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// Runs `binary` against `skiff` with `args`, feeding `input` on stdin, killed after
/// `deadline`.
fn run_fed(skiff: &Skiff, binary: &Path, args: &[&str], input: &[u8], deadline: Duration) -> Fed {
    let mut child = Command::new(binary)
        .arg("--kubeconfig")
        .arg(skiff.kubeconfig())
        .args(args)
        .env_remove("KUBECONFIG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", binary.display()));
    let mut stdin = child.stdin.take().expect("stdin is piped");
    let input = input.to_vec();
    let feeder = thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let stdout = reader(child.stdout.take().expect("stdout is piped"));
    let stderr = reader(child.stderr.take().expect("stderr is piped"));
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("waiting for kubectl") {
            break status;
        }
        if started.elapsed() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{} {args:?} did not finish within {deadline:?}",
                binary.display()
            );
        }
        thread::sleep(Duration::from_millis(20));
    };
    let _ = feeder.join();
    Fed {
        code: status.code(),
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    }
}

fn reader(mut pipe: impl Read + Send + 'static) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

fn label(binary: &Path) -> String {
    binary
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Every installed kubectl, 1.27 and 1.33 among them.
fn every_kubectl() -> Vec<PathBuf> {
    let required = key_kubectls();
    let every = versioned_kubectls();
    assert!(required.iter().all(|k| every.contains(k)));
    every
}

#[test]
fn exec_streams_stdout_stderr_stdin_and_the_exit_code() {
    let (skiff, _kubectl) = server_with_shell();
    let kubectls = every_kubectl();
    for binary in &kubectls {
        let binary = binary.as_path();
        let who = label(binary);
        let out = run_fed(
            &skiff,
            binary,
            &[
                "exec",
                "shell",
                "--",
                "sh",
                "-c",
                "echo out; echo err >&2; exit 3",
            ],
            b"",
            SHORT,
        );
        assert_eq!(
            out.code,
            Some(3),
            "{who}: exit code; stderr: {}",
            out.stderr
        );
        assert_eq!(out.stdout, "out\n", "{who}: stdout");
        assert!(
            out.stderr.starts_with("err\n"),
            "{who}: the command's stderr first: {:?}",
            out.stderr
        );
        assert!(
            out.stderr.contains("command terminated with exit code 3"),
            "{who}: kubectl reports the exit code: {:?}",
            out.stderr
        );

        let echoed = run_fed(
            &skiff,
            binary,
            &["exec", "-i", "shell", "--", "cat"],
            b"first line\nsecond line\n",
            SHORT,
        );
        assert_eq!(echoed.code, Some(0), "{who}: cat: {}", echoed.stderr);
        assert_eq!(
            echoed.stdout, "first line\nsecond line\n",
            "{who}: cat echoes stdin"
        );

        let env = run_fed(
            &skiff,
            binary,
            &["exec", "shell", "--", "sh", "-c", "echo \"$GREETING\""],
            b"",
            SHORT,
        );
        assert_eq!(
            (env.code, env.stdout.as_str()),
            (Some(0), "hello from the container\n"),
            "{who}: the command sees the container's environment; stderr: {}",
            env.stderr
        );
    }
    let log = without_colours(&skiff.log());
    let audited = log
        .lines()
        .filter(|line| line.contains("streaming request accepted"))
        .filter(|line| line.contains("subresource=\"exec\"") && line.contains("pod=shell"))
        .filter(|line| line.contains("user=\"system:admin\"") && line.contains("verb=\"create\""))
        .filter(|line| line.contains("\"echo out; echo err >&2; exit 3\""))
        .count();
    assert_eq!(
        audited,
        kubectls.len(),
        "one audit line per exec of that command:\n{log}"
    );
}

/// The log without its ANSI colour sequences.
fn without_colours(log: &str) -> String {
    let mut plain = String::with_capacity(log.len());
    let mut chars = log.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // CSI: ESC [ parameters final-letter
            for next in chars.by_ref() {
                if next.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            plain.push(c);
        }
    }
    plain
}

#[test]
fn exec_with_a_terminal_reports_its_size_and_follows_a_resize() {
    let (skiff, _kubectl) = server_with_shell();
    for binary in key_kubectls() {
        let who = label(&binary);
        let go = skiff.file_path(&format!("resize-{who}"));
        // `script` gives kubectl a terminal of 91x27; once the test creates the go file, the
        // outer terminal becomes 100x40 and kubectl must pass the resize on. The command waits
        // (bounded) until it sees the new size.
        let inner = format!(
            "stty cols 91 rows 27; \
             (while [ ! -e {go} ]; do sleep 0.05; done; stty cols 100 rows 40 < /dev/tty) & \
             {kubectl} --kubeconfig {config} exec -it shell -- sh -c \
             'stty size; i=0; while [ \"$(stty size)\" != \"40 100\" ] && [ $i -lt 600 ]; do sleep 0.05; i=$((i+1)); done; echo now $(stty size)'",
            go = go.display(),
            kubectl = binary.display(),
            config = skiff.kubeconfig().display(),
        );
        let mut child = Command::new("script")
            .args(["-qec", &inner, "/dev/null"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("`script` (bsdutils) must be installed");
        let (tx, rx) = mpsc::channel::<Vec<u8>>();
        let mut stdout = child.stdout.take().expect("stdout is piped");
        thread::spawn(move || {
            let mut buffer = [0u8; 4096];
            while let Ok(n) = stdout.read(&mut buffer) {
                if n == 0 || tx.send(buffer[..n].to_vec()).is_err() {
                    break;
                }
            }
        });
        let mut seen = String::new();
        let mut wait_text = |text: &str, seen: &mut String| {
            let deadline = Instant::now() + SHORT;
            while !seen.contains(text) {
                let left = deadline.saturating_duration_since(Instant::now());
                match rx.recv_timeout(left) {
                    Ok(chunk) => seen.push_str(&String::from_utf8_lossy(&chunk)),
                    Err(_) => {
                        let _ = child.kill();
                        panic!("{who}: {text:?} never appeared in the terminal: {seen:?}");
                    }
                }
            }
        };
        wait_text("27 91", &mut seen);
        assert!(
            seen.trim_start().starts_with("27 91"),
            "{who}: the command starts with the client's size: {seen:?}"
        );
        std::fs::write(&go, b"").expect("creating the go file");
        wait_text("now 40 100", &mut seen);
        let status = child.wait().expect("waiting for script");
        assert!(status.success(), "{who}: {seen:?}");
    }
}

#[test]
fn cp_copies_a_directory_into_the_pod_and_back_byte_for_byte() {
    let (skiff, _kubectl) = server_with_shell();
    let source = skiff.file_path("tree");
    std::fs::create_dir_all(source.join("nested/deeper")).unwrap();
    std::fs::write(source.join("hello.txt"), b"hello\n").unwrap();
    let binary: Vec<u8> = (0..300_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(source.join("nested/blob.bin"), &binary).unwrap();
    std::fs::write(source.join("nested/deeper/empty"), b"").unwrap();
    for (index, binary_path) in key_kubectls().iter().enumerate() {
        let who = label(binary_path);
        let in_pod = format!("shell:/tmp/copied-{index}");
        let back = skiff.file_path(&format!("back-{index}"));
        let into = run_fed(
            &skiff,
            binary_path,
            &["cp", &source.to_string_lossy(), &in_pod],
            b"",
            SHORT,
        );
        assert_eq!(
            into.code,
            Some(0),
            "{who}: cp into the pod: {}",
            into.stderr
        );
        let out = run_fed(
            &skiff,
            binary_path,
            &["cp", &in_pod, &back.to_string_lossy()],
            b"",
            SHORT,
        );
        assert_eq!(
            out.code,
            Some(0),
            "{who}: cp out of the pod: {}",
            out.stderr
        );
        for file in ["hello.txt", "nested/blob.bin", "nested/deeper/empty"] {
            let original = std::fs::read(source.join(file)).unwrap();
            let copied = std::fs::read(back.join(file))
                .unwrap_or_else(|e| panic!("{who}: {file} did not come back: {e}"));
            assert!(original == copied, "{who}: {file} changed on the way");
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One HTTP/1.0 GET through `127.0.0.1:port`: the status code and the body.
fn http_get(port: u16) -> Result<(u16, String), String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    stream
        .write_all(b"GET / HTTP/1.0\r\nHost: pod\r\n\r\n")
        .map_err(|e| e.to_string())?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&answer).into_owned();
    let code = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("not an HTTP answer: {text:?}"))?;
    let body = text.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
    Ok((code, body))
}

/// A running `kubectl port-forward`, stopped when dropped.
struct PortForward(std::process::Child);

impl Drop for PortForward {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn port_forward(skiff: &Skiff, binary: &Path, target: &str, local: u16) -> PortForward {
    let child = Command::new(binary)
        .arg("--kubeconfig")
        .arg(skiff.kubeconfig())
        .args(["port-forward", target, &format!("{local}:80")])
        .env_remove("KUBECONFIG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", binary.display()));
    let forward = PortForward(child);
    wait_for("kubectl port-forward to listen", SHORT, || {
        TcpStream::connect(("127.0.0.1", local)).ok().map(|_| ())
    });
    forward
}

const WEB_POD: &str = "apiVersion: v1
kind: Pod
metadata:
  name: web
  labels:
    app: web
spec:
  containers:
  - name: web
    image: 127.0.0.1:9/skiff-test/httpd:2.2
    ports:
    - containerPort: 80
";

#[test]
fn port_forward_carries_http_to_a_pod_and_through_a_service_100_times() {
    let skiff = Skiff::start_with_images(&[], &test_images());
    let kubectl = skiff.kubectl();
    let manifest = skiff.write_file("web.yaml", WEB_POD);
    kubectl.ok(&["apply", "-f", &manifest]);
    kubectl.ok(&["expose", "pod", "web", "--port=80", "--name=web-svc"]);
    wait_running(&kubectl, "web");
    let pod_ip = kubectl.ok(&["get", "pod", "web", "-o", "jsonpath={.status.podIP}"]);
    let direct = wait_for("the pod to answer HTTP", SHORT, || {
        support::http::http_get(&pod_ip, "/", Duration::from_secs(5)).ok()
    });
    assert_eq!(direct.0, 200, "the pod answers directly: {direct:?}");
    // A 50 MiB download from the pod's own address (the test listens there, the pod's
    // process serves HTTP on port 80 beside it), checked byte by byte.
    let download_port = serve_pattern(&pod_ip, DOWNLOAD_SIZE);
    for binary in key_kubectls() {
        let who = label(&binary);
        let local = free_port();
        let forward = Command::new(&binary)
            .arg("--kubeconfig")
            .arg(skiff.kubeconfig())
            .args([
                "port-forward",
                "pod/web",
                &format!("{local}:{download_port}"),
            ])
            .env_remove("KUBECONFIG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("kubectl port-forward");
        let mut forward = PortForward(forward);
        let mut first_line = String::new();
        let stdout = forward.0.stdout.take().expect("stdout is piped");
        let mut stdout = std::io::BufReader::new(stdout);
        std::io::BufRead::read_line(&mut stdout, &mut first_line)
            .expect("reading kubectl's output");
        // kubectl prints a line per connection; a closed pipe would kill it.
        thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
        assert!(
            first_line.starts_with("Forwarding from"),
            "{who}: {first_line:?}"
        );
        let received = read_pattern(local);
        assert_eq!(
            received,
            Ok(DOWNLOAD_SIZE),
            "{who}: the download through port-forward"
        );
        drop(forward);
    }
    for binary in key_kubectls() {
        let who = label(&binary);
        for target in ["pod/web", "svc/web-svc"] {
            let local = free_port();
            let _forward = port_forward(&skiff, &binary, target, local);
            for attempt in 0..100 {
                let (code, body) = http_get(local)
                    .unwrap_or_else(|e| panic!("{who} {target}: connection {attempt}: {e}"));
                assert_eq!(code, 200, "{who} {target}: connection {attempt}");
                assert_eq!(body, direct.1, "{who} {target}: the pod's own answer");
            }
        }
    }
}

/// The size of the port-forward download.
const DOWNLOAD_SIZE: u64 = 50 << 20;

/// The byte at `offset` of the download: a pattern in which a lost, repeated or reordered chunk
/// shows.
fn pattern_byte(offset: u64) -> u8 {
    (offset.wrapping_mul(2_654_435_761) >> 16) as u8
}

/// Listens on `ip` and sends `size` pattern bytes to every connection; the port.
fn serve_pattern(ip: &str, size: u64) -> u16 {
    let listener = std::net::TcpListener::bind((ip, 0))
        .unwrap_or_else(|e| panic!("cannot listen on the pod's address {ip}: {e}"));
    let port = listener.local_addr().expect("a bound address").port();
    thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            thread::spawn(move || {
                let mut stream = stream;
                let mut offset = 0u64;
                let mut chunk = vec![0u8; 64 * 1024];
                while offset < size {
                    let n = (size - offset).min(chunk.len() as u64) as usize;
                    for (i, byte) in chunk[..n].iter_mut().enumerate() {
                        *byte = pattern_byte(offset + i as u64);
                    }
                    if stream.write_all(&chunk[..n]).is_err() {
                        return;
                    }
                    offset += n as u64;
                }
            });
        }
    });
    port
}

/// Reads one connection to `127.0.0.1:port` to its end, checking every byte against the
/// pattern; the number of bytes, or where it first differed.
fn read_pattern(port: u16) -> Result<u64, String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .map_err(|e| e.to_string())?;
    let mut buffer = vec![0u8; 64 * 1024];
    let mut offset = 0u64;
    loop {
        let n = stream
            .read(&mut buffer)
            .map_err(|e| format!("at {offset}: {e}"))?;
        if n == 0 {
            return Ok(offset);
        }
        for byte in &buffer[..n] {
            if *byte != pattern_byte(offset) {
                return Err(format!("byte {offset} differs"));
            }
            offset += 1;
        }
    }
}

const FINISHED_POD: &str = "apiVersion: v1
kind: Pod
metadata:
  name: done
spec:
  restartPolicy: Never
  containers:
  - name: once
    image: 127.0.0.1:9/skiff-test/shell:1.36
    command: [\"sh\", \"-c\", \"true\"]
";

const WAITING_POD: &str = "apiVersion: v1
kind: Pod
metadata:
  name: waiting
spec:
  containers:
  - name: c
    image: 127.0.0.1:1/missing/image:1
";

#[test]
fn exec_errors_carry_kubernetes_messages() {
    let (skiff, kubectl) = server_with_shell();
    kubectl.ok(&["apply", "-f", &skiff.write_file("done.yaml", FINISHED_POD)]);
    kubectl.ok(&[
        "apply",
        "-f",
        &skiff.write_file("waiting.yaml", WAITING_POD),
    ]);
    wait_for("pod done to succeed", SHORT, || {
        let phase = kubectl.ok(&["get", "pod", "done", "-o", "jsonpath={.status.phase}"]);
        (phase == "Succeeded").then_some(())
    });
    for binary in key_kubectls() {
        let who = label(&binary);
        let kubectl = skiff.kubectl_at(&binary);
        let missing_pod = kubectl.fails(&["exec", "nope", "--", "true"]);
        assert!(
            missing_pod.contains("Error from server (NotFound): pods \"nope\" not found"),
            "{who}: {missing_pod}"
        );
        let missing_container = kubectl.fails(&["exec", "shell", "-c", "nope", "--", "true"]);
        assert!(
            missing_container.contains("container nope is not valid for pod shell"),
            "{who}: {missing_container}"
        );
        let finished = kubectl.fails(&["exec", "done", "--", "true"]);
        assert!(
            finished.contains(
                "cannot exec into a container in a completed pod; current phase is Succeeded"
            ),
            "{who}: {finished}"
        );
        let not_running = kubectl.fails(&["exec", "waiting", "--", "true"]);
        assert!(
            not_running.contains("unable to upgrade connection: container not found (\"c\")"),
            "{who}: {not_running}"
        );
    }
    // Without a command, kube-apiserver refuses before any upgrade.
    let no_command = kubectl.fails(&[
        "get",
        "--raw",
        "/api/v1/namespaces/default/pods/shell/exec?stdout=true",
    ]);
    assert!(
        no_command.contains("you must specify at least 1 command"),
        "{no_command}"
    );
}

#[test]
fn attach_sends_stdin_to_the_container_and_follows_its_output() {
    let skiff = Skiff::start_with_images(&[], &test_images());
    let kubectl = skiff.kubectl();
    for (index, binary) in key_kubectls().iter().enumerate() {
        let who = label(binary);
        let name = format!("echo-{index}");
        // `cat` echoes what it reads and ends at stdin's end, which `stdinOnce` makes the
        // first session's.
        let manifest = format!(
            "apiVersion: v1
kind: Pod
metadata:
  name: {name}
spec:
  restartPolicy: Never
  containers:
  - name: cat
    image: 127.0.0.1:9/skiff-test/shell:1.36
    command: [\"cat\"]
    stdin: true
    stdinOnce: true
"
        );
        kubectl.ok(&[
            "apply",
            "-f",
            &skiff.write_file(&format!("{name}.yaml"), &manifest),
        ]);
        wait_running(&kubectl, &name);
        let attached = run_fed(
            &skiff,
            binary,
            &["attach", "-i", &name],
            b"through attach\n",
            SHORT,
        );
        assert_eq!(attached.code, Some(0), "{who}: {}", attached.stderr);
        assert!(
            attached.stdout.contains("through attach\n"),
            "{who}: the container's echo: {:?}",
            attached.stdout
        );
        wait_for(&format!("{who}: cat to end with stdin"), SHORT, || {
            let phase = kubectl.ok(&["get", "pod", &name, "-o", "jsonpath={.status.phase}"]);
            (phase == "Succeeded").then_some(())
        });
    }
}

/// Runs `inner` under `script` (a pseudo-terminal), feeding `input`; the terminal's text.
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
    let output = reader(child.stdout.take().expect("stdout is piped"));
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

/// `--restart=Never`: with the default `Always`, a command that ends at once restarts at once,
/// and kubectl may attach between two runs and fall back to the logs of a run that has not
/// printed yet, on Kubernetes as here.
#[test]
fn run_interactive_with_rm_prints_the_output_and_leaves_no_pod() {
    let skiff = Skiff::start_with_images(&[], &test_images());
    let kubectl = skiff.kubectl();
    for (index, binary) in key_kubectls().iter().enumerate() {
        let who = label(binary);
        let config = skiff.kubeconfig();
        let name = format!("tmp-{index}");
        let (ok, text) = under_terminal(
            &format!(
                "{} --kubeconfig {} run -it --rm {name} --restart=Never --image=127.0.0.1:9/skiff-test/shell:1.36 -- sh -c 'echo hi'",
                binary.display(),
                config.display()
            ),
            b"",
        );
        assert!(ok, "{who}: {text:?}");
        assert!(text.lines().any(|l| l.trim() == "hi"), "{who}: {text:?}");
        assert!(
            text.contains(&format!("pod \"{name}\" deleted")),
            "{who}: {text:?}"
        );
        let gone = kubectl.run(&["get", "pod", &name]);
        assert!(
            gone.stderr.contains("not found"),
            "{who}: the pod is left: {}",
            gone.stdout
        );

        // The command waits for a line: it can only come through the attached terminal.
        let name = format!("reader-{index}");
        let (ok, text) = under_terminal(
            &format!(
                "{} --kubeconfig {} run -it --rm {name} --restart=Never --image=127.0.0.1:9/skiff-test/shell:1.36 -- sh -c 'read x; echo hi $x'",
                binary.display(),
                config.display()
            ),
            b"there\n",
        );
        assert!(ok, "{who}: {text:?}");
        assert!(
            text.lines().any(|l| l.trim() == "hi there"),
            "{who}: the line typed reached the container: {text:?}"
        );
        assert!(!text.contains("couldn't attach"), "{who}: {text:?}");
    }
}

/// Whether a process whose command line is exactly `argv` runs on this machine.
fn process_runs(argv: &[&str]) -> bool {
    let wanted: Vec<u8> = argv
        .iter()
        .flat_map(|a| [a.as_bytes(), b"\0"].concat())
        .collect();
    std::fs::read_dir("/proc")
        .map(|entries| {
            entries.flatten().any(|entry| {
                std::fs::read(entry.path().join("cmdline")).is_ok_and(|cmdline| cmdline == wanted)
            })
        })
        .unwrap_or(false)
}

#[test]
fn an_exec_session_ends_when_its_pod_is_deleted_and_leaves_no_process() {
    let (skiff, kubectl) = server_with_shell();
    let binary = &key_kubectls()[1];
    // A duration no other test uses, to find the process by its command line.
    let sleeper = ["sleep", "3517"];
    let mut exec = Command::new(binary)
        .arg("--kubeconfig")
        .arg(skiff.kubeconfig())
        .args(["exec", "shell", "--"])
        .args(sleeper)
        .env_remove("KUBECONFIG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kubectl exec");
    wait_for("the exec'd command to run", SHORT, || {
        process_runs(&sleeper).then_some(())
    });
    kubectl.ok(&["delete", "pod", "shell", "--grace-period=1"]);
    let ended = wait_for("kubectl exec to end with its pod", SHORT, || {
        exec.try_wait().expect("waiting for kubectl")
    });
    assert!(!ended.success(), "the command was killed, not finished");
    assert!(
        !process_runs(&sleeper),
        "the exec'd command outlived its container"
    );
}

/// A Role in `default` holding `get` on pods and `verbs` on `pods/exec`, bound to `user`.
fn exec_role(user: &str, verbs: &str) -> String {
    format!(
        "apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata:
  name: exec-{user}
  namespace: default
rules:
- apiGroups: [\"\"]
  resources: [pods]
  verbs: [get]
- apiGroups: [\"\"]
  resources: [pods/exec]
  verbs: [{verbs}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: exec-{user}
  namespace: default
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: Role
  name: exec-{user}
subjects:
- apiGroup: rbac.authorization.k8s.io
  kind: User
  name: {user}
"
    )
}

/// kubectl for a client certificate of `user` from `skiff kubeconfig --user`.
fn certificate_user(skiff: &Skiff, kubectl: &Kubectl, user: &str) -> Kubectl {
    let (ok, kubeconfig, stderr) =
        support::cli::skiff(&skiff.data_dir(), &["kubeconfig", "--user", user]);
    assert!(ok, "skiff kubeconfig --user {user} failed: {stderr}");
    let file = skiff.write_file(&format!("{user}.kubeconfig"), &kubeconfig);
    kubectl.with_kubeconfig(&skiff.file_path(&file))
}

#[test]
fn exec_is_create_on_pods_exec_over_websocket_and_spdy_and_the_audit_names_the_user() {
    let (skiff, kubectl) = server_with_shell();
    let manifest = skiff.write_file(
        "roles.yaml",
        &format!(
            "{}---\n{}",
            exec_role("getter", "get"),
            exec_role("creator", "create")
        ),
    );
    kubectl.ok(&["apply", "-f", &manifest]);
    for binary in key_kubectls() {
        let who = label(&binary);
        let admin = skiff.kubectl_at(&binary);
        let getter = certificate_user(&skiff, &admin, "getter");
        let creator = certificate_user(&skiff, &admin, "creator");
        // Only `get` on pods/exec: refused whichever protocol kubectl tries.
        let refused = getter.run(&["exec", "shell", "--", "echo", "in"]);
        assert!(
            !refused.success(),
            "{who}: getter may exec: {}",
            refused.stdout
        );
        assert!(
            refused.stderr.contains(
                "pods \"shell\" is forbidden: User \"getter\" cannot create resource \"pods/exec\" in API group \"\" in the namespace \"default\""
            ),
            "{who}: Kubernetes' 403 text: {}",
            refused.stderr
        );
        // `create` on pods/exec: allowed (over SPDY after a refused WebSocket `get`).
        let allowed = creator.run(&["exec", "shell", "--", "echo", "in"]);
        assert!(
            allowed.success() && allowed.stdout == "in\n",
            "{who}: creator cannot exec: {}",
            allowed.stderr
        );
    }
    let log = without_colours(&skiff.log());
    let audited = |user: &str| {
        log.lines()
            .filter(|line| line.contains("streaming request accepted"))
            .filter(|line| line.contains(&format!("user=\"{user}\"")))
            .count()
    };
    assert_eq!(
        audited("creator"),
        2,
        "one audit line per allowed exec:\n{log}"
    );
    assert_eq!(
        audited("getter"),
        0,
        "a refused exec is not accepted:\n{log}"
    );
}
