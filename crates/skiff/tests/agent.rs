//! `skiff agent` joins a `skiff up` server as a node, end to end with the real `kubectl`: the
//! join token pins the cluster CA and authenticates the node's certificate request, which the
//! server approves and signs; the node registers, becomes Ready and runs the pods scheduled to
//! it; a restarted agent reuses its certificate; wrong tokens are refused.
//!
//! Everything runs on loopback: the server and each agent with their own temporary data
//! directories, the process runtime, free ports. Run with `cargo test -p skiff --test agent`.
//! Needs `kubectl` on the PATH.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::http::{demo_line, http_get, READ_TIMEOUT};
use support::images::{demo, place_archive, shell, DEMO, SHELL};
use support::json::{items, str_at};
use support::{assert_table, wait_for, Kubectl, Skiff, DEADLINE, UNSERVED_REGISTRY};

const KUBELET_SIGNER: &str = "kubernetes.io/kube-apiserver-client-kubelet";
const KUBELET_SERVING_SIGNER: &str = "kubernetes.io/kubelet-serving";
/// The demo image the agents are given.
const DEMO_TAG: &str = "1";

/// A `skiff agent` process with its own data directory, stopped when dropped.
struct Agent {
    root: tempfile::TempDir,
    node_name: String,
    server: String,
    token: String,
    process: Option<Child>,
    /// How many times it was started, to tell one run's log from the next.
    runs: u32,
    /// The port of its kubelet endpoint, on loopback.
    kubelet_port: u16,
    /// Its `--node-ip`, a loopback address.
    node_ip: String,
}

impl Agent {
    /// Starts an agent named `node_name` joining `skiff` with its join token, with the demo
    /// image in its images directory.
    fn start(skiff: &Skiff, node_name: &str) -> Agent {
        Agent::start_at(skiff, node_name, "127.0.0.1")
    }

    /// Like [`Agent::start`], the node's address (`--node-ip`) being `node_ip`.
    fn start_at(skiff: &Skiff, node_name: &str, node_ip: &str) -> Agent {
        let root = tempfile::Builder::new()
            .prefix("skiff-agent-e2e-")
            .tempdir()
            .unwrap_or_else(|e| panic!("cannot create a temporary directory: {e}"));
        place_archive(&demo(DEMO_TAG), &root.path().join("data").join("images"));
        place_archive(&shell(), &root.path().join("data").join("images"));
        let mut agent = Agent {
            root,
            node_name: node_name.to_string(),
            server: server_url(skiff),
            token: join_token(skiff),
            process: None,
            runs: 0,
            kubelet_port: free_port(),
            node_ip: node_ip.to_string(),
        };
        agent.launch();
        agent
    }

    fn data_dir(&self) -> PathBuf {
        self.root.path().join("data")
    }

    fn log_path(&self) -> PathBuf {
        self.root.path().join("agent.log")
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    fn launch(&mut self) {
        self.runs += 1;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .unwrap_or_else(|e| panic!("cannot open the agent log: {e}"));
        let log_err = log
            .try_clone()
            .unwrap_or_else(|e| panic!("cannot share the agent log: {e}"));
        let registries = self.root.path().join("loopback-registries.yaml");
        std::fs::write(
            &registries,
            format!(
                "mirrors:\n  \"*\":\n    endpoint: [\"http://{UNSERVED_REGISTRY}\"]\ndisable_default_endpoint: true\n"
            ),
        )
        .unwrap_or_else(|e| panic!("cannot write the registries file: {e}"));
        let child = agent_command(&self.server, &self.token, &self.data_dir())
            .args(["--node-name", &self.node_name])
            .args(["--kubelet-port", &self.kubelet_port.to_string()])
            .args(["--node-ip", &self.node_ip])
            // Usage sampled every second, so `kubectl top` sees a pod within seconds.
            .args(["--metric-resolution", "1"])
            .arg("--registry-config")
            .arg(&registries)
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start skiff agent: {e}"));
        self.process = Some(child);
    }

    /// Waits until this run of the agent says it joined.
    fn wait_joined(&mut self) {
        let runs = self.runs as usize;
        wait_for("the agent to join", DEADLINE, || {
            if let Some(status) = self
                .process
                .as_mut()
                .and_then(|p| p.try_wait().ok().flatten())
            {
                panic!("skiff agent exited with {status}; log:\n{}", self.log());
            }
            (self.log().matches("skiff agent joined the cluster").count() >= runs).then_some(())
        });
    }

    /// Stops the agent with SIGTERM and returns how it exited.
    fn stop(&mut self) -> ExitStatus {
        let mut child = self.process.take().expect("the agent is not running");
        terminate(&mut child)
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Some(mut child) = self.process.take() {
            terminate(&mut child);
        }
        if std::thread::panicking() {
            eprintln!(
                "--- agent {} log ---\n{}--- end of agent log ---",
                self.node_name,
                self.log()
            );
        }
    }
}

/// `skiff agent` joining `server` with `token`, its state in `data_dir`.
fn agent_command(server: &str, token: &str, data_dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_skiff"));
    command
        .args(["agent", "--server", server, "--token", token])
        .arg("--data-dir")
        .arg(data_dir)
        .args(["--certificate-timeout", "60s"])
        // Pods as processes, as the servers of these tests run them (`skiff agent` would
        // default to `oci` as root).
        .args(["--container-runtime", "process"])
        .env_remove("SKIFF_DATA_DIR")
        .env_remove("SKIFF_AGENT_DATA_DIR")
        .env_remove("SKIFF_URL")
        .env_remove("SKIFF_TOKEN")
        .env("SKIFF_LOG", "info")
        .stdin(Stdio::null());
    command
}

/// Sends SIGTERM and waits for the process to exit; kills it if it lingers past the deadline.
fn terminate(child: &mut Child) -> ExitStatus {
    if let Ok(Some(status)) = child.try_wait() {
        return status;
    }
    if let Ok(pid) = i32::try_from(child.id()) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGTERM,
        );
    }
    let started = Instant::now();
    while started.elapsed() < DEADLINE {
        if let Ok(Some(status)) = child.try_wait() {
            return status;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    child.wait().expect("reap the agent")
}

/// The server's URL, from the kubeconfig it wrote.
fn server_url(skiff: &Skiff) -> String {
    let kubeconfig = std::fs::read_to_string(skiff.kubeconfig()).expect("the kubeconfig");
    kubeconfig
        .lines()
        .find_map(|line| line.trim().strip_prefix("server:"))
        .map(|url| url.trim().to_string())
        .expect("the kubeconfig names the server")
}

/// The server's join token, `K10<ca-hash>::<id>.<secret>`.
fn join_token(skiff: &Skiff) -> String {
    std::fs::read_to_string(skiff.data_dir().join("node-token"))
        .expect("skiff up writes DATA/node-token")
        .trim()
        .to_string()
}

/// The bootstrap token's id, the `<id>` of `K10<hash>::<id>.<secret>`.
fn token_id(token: &str) -> String {
    let (_, bootstrap) = token.split_once("::").expect("K10<hash>::<token>");
    bootstrap
        .split('.')
        .next()
        .expect("<id>.<secret>")
        .to_string()
}

/// The requests for node client certificates in a CertificateSigningRequest list (beside
/// them, each agent start asks for its kubelet endpoint's serving certificate).
fn client_requests(list: &Value) -> Vec<Value> {
    items(list)
        .into_iter()
        .filter(|csr| str_at(csr, "/spec/signerName") == KUBELET_SIGNER)
        .collect()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap_or_else(|e| panic!("cannot pick a free port: {e}"))
        .local_addr()
        .unwrap_or_else(|e| panic!("cannot read a bound address: {e}"))
        .port()
}

/// Runs `skiff agent` expecting it to fail; returns what it printed on stderr.
fn agent_refused(server: &str, token: &str, data_dir: &Path) -> String {
    let mut child = agent_command(server, token, data_dir)
        .args(["--node-name", "refused"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start skiff agent");
    let status = wait_for("the refused agent to exit", DEADLINE, || {
        child.try_wait().ok().flatten()
    });
    let mut stderr = String::new();
    use std::io::Read;
    child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut stderr)
        .expect("read stderr");
    assert!(
        !status.success(),
        "skiff agent with token {token:?} should fail; stderr:\n{stderr}"
    );
    stderr
}

/// Waits until node `name` is listed Ready by `kubectl get nodes`.
fn wait_node_ready(kubectl: &Kubectl, name: &str) {
    wait_for(&format!("node {name} to be Ready"), DEADLINE, || {
        let listing = kubectl.ok(&["get", "nodes"]);
        listing
            .lines()
            .any(|line| {
                let cells = support::cells(line);
                cells.first() == Some(&name) && cells.get(1) == Some(&"Ready")
            })
            .then_some(())
    });
}

/// Whether `pod` is Running with its Ready condition True.
fn running_and_ready(pod: &Value) -> bool {
    str_at(pod, "/status/phase") == "Running"
        && pod["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
}

/// Creates a pod running the demo image, placed by `placement` (a pod spec fragment).
fn create_pod(skiff: &Skiff, kubectl: &Kubectl, name: &str, placement: &str) {
    let manifest = format!(
        "apiVersion: v1
kind: Pod
metadata:
  name: {name}
spec:
  {placement}
  containers:
  - name: web
    image: {DEMO}:{DEMO_TAG}
    readinessProbe:
      httpGet: {{path: /, port: 80}}
      periodSeconds: 1
"
    );
    let file = skiff.write_file(&format!("{name}.yaml"), &manifest);
    kubectl.ok(&["create", "-f", &file]);
}

/// Waits until pod `name` runs and is ready, and returns it.
fn wait_pod_ready(kubectl: &Kubectl, name: &str) -> Value {
    wait_for(&format!("pod {name} to run and be ready"), DEADLINE, || {
        let pod = kubectl.json(&["get", "pod", name]);
        running_and_ready(&pod).then_some(pod)
    })
}

/// `kubectl` with a kubeconfig built from `agent`'s own client certificate and key.
fn node_kubectl(skiff: &Skiff, admin: &Kubectl, agent: &Agent) -> Kubectl {
    let data = agent.data_dir();
    let kubeconfig = format!(
        "apiVersion: v1
kind: Config
clusters:
- name: c
  cluster: {{server: {server}, certificate-authority: {ca}}}
users:
- name: node
  user: {{client-certificate: {cert}, client-key: {key}}}
contexts:
- name: node
  context: {{cluster: c, user: node}}
current-context: node
",
        server = agent.server,
        ca = data.join("ca.crt").display(),
        cert = data.join("client-kubelet.crt").display(),
        key = data.join("client-kubelet.key").display(),
    );
    let kubeconfig_file = skiff.file_path(&format!("{}-kubeconfig", agent.node_name));
    std::fs::write(&kubeconfig_file, kubeconfig).expect("write kubeconfig");
    admin.with_kubeconfig(&kubeconfig_file)
}

/// Sends, with `agent`'s own certificate, a request for a new certificate of its node, as the
/// agent's renewal does, and checks it is approved and signed.
fn renew_with_node_certificate(skiff: &Skiff, admin: &Kubectl, agent: &Agent) {
    let as_node = node_kubectl(skiff, admin, agent);
    let key = rcgen::KeyPair::generate().expect("a key pair");
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("parameters");
    params.distinguished_name.push(
        rcgen::DnType::CommonName,
        format!("system:node:{}", agent.node_name),
    );
    params
        .distinguished_name
        .push(rcgen::DnType::OrganizationName, "system:nodes");
    let request = params
        .serialize_request(&key)
        .expect("a certificate request")
        .pem()
        .expect("PEM");
    use base64::Engine;
    let file = skiff.write_file(
        "renewal.yaml",
        &format!(
            "apiVersion: certificates.k8s.io/v1
kind: CertificateSigningRequest
metadata:
  name: renewal
spec:
  request: {}
  signerName: {KUBELET_SIGNER}
  usages: [digital signature, client auth]
",
            base64::engine::general_purpose::STANDARD.encode(request)
        ),
    );
    as_node.ok(&["create", "-f", &file]);
    let issued = wait_for("the renewal request to be issued", DEADLINE, || {
        let csr = admin.json(&["get", "csr", "renewal"]);
        (!str_at(&csr, "/status/certificate").is_empty()).then_some(csr)
    });
    assert_eq!(
        str_at(&issued, "/spec/username"),
        format!("system:node:{}", agent.node_name)
    );
    assert_eq!(str_at(&issued, "/status/conditions/0/type"), "Approved");
    assert_eq!(
        str_at(&issued, "/status/conditions/0/reason"),
        "AutoApproved"
    );
}

#[test]
fn an_agent_joins_with_the_join_token_runs_its_pods_and_keeps_its_certificate() {
    let skiff = Skiff::start_with(&["--node-name", "server-node"]);
    let kubectl = skiff.kubectl();
    let mut agent = Agent::start(&skiff, "worker-1");
    agent.wait_joined();
    wait_node_ready(&kubectl, "worker-1");

    // The node asked for its certificate with the bootstrap token, and the server approved
    // and signed it.
    let requestor = format!("system:bootstrap:{}", token_id(&join_token(&skiff)));
    let csrs = kubectl.json(&["get", "csr"]);
    let requests = client_requests(&csrs);
    assert_eq!(requests.len(), 1, "one client certificate request: {csrs}");
    let request_name = str_at(&requests[0], "/metadata/name");
    assert!(request_name.starts_with("csr-"), "{request_name}");
    assert_table(
        &kubectl.ok(&["get", "csr", &request_name]),
        &[
            &[
                "NAME",
                "AGE",
                "SIGNERNAME",
                "REQUESTOR",
                "REQUESTEDDURATION",
                "CONDITION",
            ],
            &[
                &request_name,
                "<age>",
                KUBELET_SIGNER,
                &requestor,
                "<none>",
                "Approved,Issued",
            ],
        ],
    );
    // The key and certificate are kept, readable by their owner only.
    use std::os::unix::fs::PermissionsExt;
    for file in ["client-kubelet.key", "client-kubelet.crt"] {
        let path = agent.data_dir().join(file);
        let mode = std::fs::metadata(&path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{file} is private");
    }
    let cert_before =
        std::fs::read(agent.data_dir().join("client-kubelet.crt")).expect("the certificate");

    // The node registered itself with its identity: it wrote its own Node.
    let node = kubectl.json(&["get", "node", "worker-1"]);
    assert_eq!(
        str_at(&node, "/metadata/labels/kubernetes.io~1hostname"),
        "worker-1"
    );

    // Pods bound to the agent's node by name and by selector run there.
    create_pod(&skiff, &kubectl, "by-name", "nodeName: worker-1");
    create_pod(
        &skiff,
        &kubectl,
        "by-selector",
        "nodeSelector: {kubernetes.io/hostname: worker-1}",
    );
    for name in ["by-name", "by-selector"] {
        let pod = wait_pod_ready(&kubectl, name);
        assert_eq!(str_at(&pod, "/spec/nodeName"), "worker-1", "{pod}");
        // The agent's process answers on the pod's address.
        let ip = str_at(&pod, "/status/podIP");
        assert_eq!(
            http_get(&ip, "/", READ_TIMEOUT),
            Ok((200, demo_line(DEMO_TAG, name))),
            "pod {name} at {ip}"
        );
    }

    // The node's identity holds every right its agent and proxy use.
    let log = agent.log();
    assert!(
        !log.contains("forbidden"),
        "the node's certificate was refused something; log:\n{log}"
    );

    // The node's certificate is the credential of its renewal: a request it makes for its
    // own name is approved (`selfnodeclient`) and signed.
    renew_with_node_certificate(&skiff, &kubectl, &agent);

    // Stopped and started again, the agent reuses its client and serving certificates: no
    // new request of either kind.
    let requests_before_restart = items(&kubectl.json(&["get", "csr"])).len();
    let serving_before = std::fs::read(agent.data_dir().join("serving-kubelet.crt"))
        .expect("the serving certificate");
    let status = agent.stop();
    assert!(status.success(), "the agent exited with {status}");
    agent.launch();
    agent.wait_joined();
    assert!(
        agent
            .log()
            .contains("reusing the node's client certificate"),
        "the restarted agent should reuse its certificate; log:\n{}",
        agent.log()
    );
    wait_node_ready(&kubectl, "worker-1");
    create_pod(&skiff, &kubectl, "after-restart", "nodeName: worker-1");
    wait_pod_ready(&kubectl, "after-restart");
    assert_eq!(
        client_requests(&kubectl.json(&["get", "csr"])).len(),
        2,
        "the restarted agent made no new client certificate request (beside the renewal above)"
    );
    assert_eq!(
        std::fs::read(agent.data_dir().join("client-kubelet.crt")).expect("the certificate"),
        cert_before,
        "the certificate file is unchanged"
    );
    assert!(
        agent
            .log()
            .contains("reusing the kubelet endpoint's serving certificate"),
        "the restarted agent should reuse its serving certificate; log:\n{}",
        agent.log()
    );
    assert_eq!(
        items(&kubectl.json(&["get", "csr"])).len(),
        requests_before_restart,
        "the restarted agent made no certificate request at all"
    );
    assert_eq!(
        std::fs::read(agent.data_dir().join("serving-kubelet.crt"))
            .expect("the serving certificate"),
        serving_before,
        "the serving certificate file is unchanged"
    );
    // The kept serving certificate still serves: the server reaches the pod's logs through it.
    let logs = wait_for("the restarted node's pod logs", DEADLINE, || {
        let out = kubectl.run(&["logs", "after-restart"]);
        out.success().then_some(out)
    });
    assert!(logs.success(), "{}", logs.stderr);
}

#[test]
fn a_wrong_join_token_or_ca_hash_is_refused_with_a_clear_message() {
    let skiff = Skiff::start();
    let kubectl = skiff.kubectl();
    let server = server_url(&skiff);
    let token = join_token(&skiff);
    let (hash, bootstrap) = token.split_once("::").expect("K10<hash>::<token>");
    let id = token_id(&token);
    let scratch = tempfile::tempdir().expect("a temporary directory");

    let wrong_secret = format!("{hash}::{id}.0000000000000000");
    let refused = agent_refused(&server, &wrong_secret, &scratch.path().join("a"));
    assert!(
        refused.contains("the server refused the join token"),
        "{refused}"
    );

    let wrong_hash = format!("K10{}::{bootstrap}", "0".repeat(64));
    let refused = agent_refused(&server, &wrong_hash, &scratch.path().join("b"));
    assert!(
        refused.contains("does not match the join token")
            && refused.contains("refusing to trust this server"),
        "{refused}"
    );
    assert!(
        !scratch.path().join("b").join("ca.crt").exists(),
        "a CA that does not match the pin is not kept"
    );

    let bare = agent_refused(&server, bootstrap, &scratch.path().join("c"));
    assert!(bare.contains("carries no CA hash"), "{bare}");

    let garbage = agent_refused(&server, "not-a-token", &scratch.path().join("d"));
    assert!(garbage.contains("the join token is not"), "{garbage}");

    assert_eq!(
        items(&kubectl.json(&["get", "csr"])).len(),
        0,
        "no refused agent made a certificate request"
    );
}

#[test]
fn a_server_without_its_node_runs_a_deployment_on_the_agent() {
    let skiff = Skiff::start_with(&["--no-node"]);
    let kubectl = skiff.kubectl();
    let mut agent = Agent::start(&skiff, "worker-2");
    agent.wait_joined();
    wait_node_ready(&kubectl, "worker-2");
    let nodes = kubectl.json(&["get", "nodes"]);
    let names: Vec<String> = items(&nodes)
        .iter()
        .map(|n| str_at(n, "/metadata/name"))
        .collect();
    assert_eq!(names, ["worker-2"], "the server runs no node of its own");

    let manifest = format!(
        "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 3
  selector:
    matchLabels: {{app: web}}
  template:
    metadata:
      labels: {{app: web}}
    spec:
      containers:
      - name: web
        image: {DEMO}:{DEMO_TAG}
        readinessProbe:
          httpGet: {{path: /, port: 80}}
          periodSeconds: 1
"
    );
    let file = skiff.write_file("web.yaml", &manifest);
    kubectl.ok(&["create", "-f", &file]);
    let pods = wait_for("three ready pods of the Deployment", DEADLINE, || {
        let pods = items(&kubectl.json(&["get", "pods", "-l", "app=web"]));
        (pods.len() == 3 && pods.iter().all(running_and_ready)).then_some(pods)
    });
    for pod in &pods {
        assert_eq!(str_at(pod, "/spec/nodeName"), "worker-2", "{pod}");
    }
    let status = agent.stop();
    assert!(status.success(), "the agent exited with {status}");
}

/// Runs `binary` (a kubectl) against `skiff` with `input` on stdin; its exit code, stdout and
/// stderr.
fn kubectl_fed(
    skiff: &Skiff,
    binary: &Path,
    args: &[&str],
    input: &str,
) -> (Option<i32>, String, String) {
    use std::io::Write;
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
    stdin
        .write_all(input.as_bytes())
        .unwrap_or_else(|e| panic!("cannot feed kubectl: {e}"));
    drop(stdin);
    let started = Instant::now();
    loop {
        if child.try_wait().ok().flatten().is_some() {
            break;
        }
        if started.elapsed() > DEADLINE {
            let _ = child.kill();
            panic!(
                "{} {args:?} did not finish within {DEADLINE:?}",
                binary.display()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let output = child
        .wait_with_output()
        .unwrap_or_else(|e| panic!("cannot read kubectl's output: {e}"));
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// The HTTP status `curl` gets from the agent's kubelet endpoint for `path`, trusting the
/// cluster CA and presenting `certificate` (a certificate and key file pair) if given.
fn kubelet_status(
    skiff: &Skiff,
    agent: &Agent,
    path: &str,
    certificate: Option<(&Path, &Path)>,
) -> String {
    let mut curl = Command::new("curl");
    curl.args([
        "--silent",
        "--output",
        "/dev/null",
        "--write-out",
        "%{http_code}",
    ])
    .arg("--cacert")
    .arg(skiff.data_dir().join("ca.crt"))
    .arg(format!("https://127.0.0.1:{}{path}", agent.kubelet_port));
    if let Some((cert, key)) = certificate {
        curl.arg("--cert").arg(cert).arg("--key").arg(key);
    }
    let output = curl
        .output()
        .unwrap_or_else(|e| panic!("cannot run curl: {e}"));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn pods_on_an_agent_are_reached_through_its_kubelet_endpoint() {
    let skiff = Skiff::start_with(&["--node-name", "server-node"]);
    let kubectl = skiff.kubectl();
    let mut agent = Agent::start(&skiff, "worker-3");
    agent.wait_joined();
    wait_node_ready(&kubectl, "worker-3");

    // The node reports where its kubelet endpoint listens, and its serving certificate came
    // from the cluster through an approved request of its own.
    let node = kubectl.json(&["get", "node", "worker-3"]);
    assert_eq!(
        node.pointer("/status/daemonEndpoints/kubeletEndpoint/Port")
            .and_then(Value::as_u64),
        Some(u64::from(agent.kubelet_port)),
        "{node}"
    );
    let serving: Vec<Value> = items(&kubectl.json(&["get", "csr"]))
        .into_iter()
        .filter(|csr| str_at(csr, "/spec/signerName") == KUBELET_SERVING_SIGNER)
        .collect();
    assert_eq!(
        serving.len(),
        1,
        "one serving certificate request: {serving:?}"
    );
    let serving_name = str_at(&serving[0], "/metadata/name");
    assert_table(
        &kubectl.ok(&["get", "csr", &serving_name]),
        &[
            &[
                "NAME",
                "AGE",
                "SIGNERNAME",
                "REQUESTOR",
                "REQUESTEDDURATION",
                "CONDITION",
            ],
            &[
                &serving_name,
                "<age>",
                KUBELET_SERVING_SIGNER,
                "system:node:worker-3",
                "<none>",
                "Approved,Issued",
            ],
        ],
    );

    let ticker = format!(
        "apiVersion: v1
kind: Pod
metadata:
  name: ticker
spec:
  nodeName: worker-3
  containers:
  - name: sh
    image: {SHELL}
    command: [\"sh\", \"-c\", \"echo started; i=0; while true; do i=$((i+1)); echo tick $i; sleep 1; done\"]
"
    );
    let file = skiff.write_file("ticker.yaml", &ticker);
    kubectl.ok(&["create", "-f", &file]);
    create_pod(&skiff, &kubectl, "web", "nodeName: worker-3");
    wait_for("pod ticker to run", DEADLINE, || {
        (str_at(&kubectl.json(&["get", "pod", "ticker"]), "/status/phase") == "Running")
            .then_some(())
    });
    wait_pod_ready(&kubectl, "web");

    // Logs, whole and followed until a new line appears.
    let logs = wait_for("the ticker's first line", DEADLINE, || {
        let out = kubectl.run(&["logs", "ticker"]);
        (out.success() && out.stdout.starts_with("started\n")).then_some(out.stdout)
    });
    assert!(logs.starts_with("started\n"), "{logs}");
    let mut followed = kubectl.spawn_lines(&["logs", "-f", "ticker", "--tail", "1"]);
    let first = followed.wait_for_line("a followed line", |line| line.starts_with("tick "));
    let later = followed.wait_for_line("a line written after the follow began", |line| {
        line.starts_with("tick ") && line != first
    });
    assert_ne!(first, later);
    drop(followed);

    // Attach joins the running command's own output.
    let mut attached = kubectl.spawn_lines(&["attach", "ticker"]);
    attached.wait_for_line("a line through attach", |line| line.starts_with("tick "));
    drop(attached);

    let versioned = support::versioned_kubectls();
    for name in ["kubectl.1.27", "kubectl.1.33"] {
        let binary = versioned
            .iter()
            .find(|path| path.file_name().is_some_and(|n| n == name))
            .unwrap_or_else(|| panic!("{name} must be installed beside kubectl"));
        // The command's output and exit code come back through the node's endpoint.
        let (code, stdout, stderr) = kubectl_fed(
            &skiff,
            binary,
            &["exec", "ticker", "--", "sh", "-c", "echo out; exit 3"],
            "",
        );
        assert_eq!(code, Some(3), "{name}: exit code; stderr: {stderr}");
        assert_eq!(stdout, "out\n", "{name}: stdout");
        // Input reaches the command.
        let (code, stdout, stderr) = kubectl_fed(
            &skiff,
            binary,
            &["exec", "-i", "ticker", "--", "cat"],
            "through the kubelet endpoint\n",
        );
        assert_eq!(code, Some(0), "{name}: cat; stderr: {stderr}");
        assert_eq!(
            stdout, "through the kubelet endpoint\n",
            "{name}: cat's output"
        );

        // Port-forward carries an HTTP request to the pod.
        let local = free_port();
        let mut forward = skiff.kubectl_at(binary).spawn_lines(&[
            "port-forward",
            "pod/web",
            &format!("{local}:80"),
        ]);
        forward.wait_for_line("port-forward to listen", |line| {
            line.starts_with("Forwarding from")
        });
        let answer = wait_for("an answer through port-forward", DEADLINE, || {
            let address = std::net::SocketAddr::from(([127, 0, 0, 1], local));
            support::http::http_get_at(address, "/", READ_TIMEOUT, READ_TIMEOUT).ok()
        });
        assert_eq!(
            answer,
            (200, demo_line(DEMO_TAG, "web")),
            "{name}: port-forward"
        );
        drop(forward);
    }

    // The endpoint itself: no client certificate is 401, a user that is not the API
    // server's kubelet client (the node's own certificate) 403.
    let path = "/containerLogs/default/ticker/sh";
    assert_eq!(kubelet_status(&skiff, &agent, path, None), "401");
    let data = agent.data_dir();
    let (cert, key) = (
        data.join("client-kubelet.crt"),
        data.join("client-kubelet.key"),
    );
    assert_eq!(
        kubelet_status(&skiff, &agent, path, Some((&cert, &key))),
        "403"
    );

    // A node whose endpoint does not answer: kube-apiserver's dial error.
    let status = agent.stop();
    assert!(status.success(), "the agent exited with {status}");
    let refused = kubectl.fails(&["logs", "ticker"]);
    let expected = format!(
        "Error from server: Get \"https://127.0.0.1:{port}/containerLogs/default/ticker/sh\": dial tcp 127.0.0.1:{port}: connect: connection refused",
        port = agent.kubelet_port
    );
    assert_eq!(refused.trim(), expected);
    let refused = kubectl.fails(&["exec", "ticker", "--", "true"]);
    let expected = format!(
        "error dialing backend: dial tcp 127.0.0.1:{port}: connect: connection refused",
        port = agent.kubelet_port
    );
    assert!(refused.contains(&expected), "{refused}");
}

#[test]
fn a_node_reads_only_what_its_pods_use_and_changes_only_its_own_node() {
    let skiff = Skiff::start_with(&["--node-name", "server-node"]);
    let kubectl = skiff.kubectl();
    let mut agent = Agent::start(&skiff, "worker-1");
    agent.wait_joined();
    wait_node_ready(&kubectl, "worker-1");
    kubectl.ok(&["create", "secret", "generic", "mine", "--from-literal=k=v"]);
    kubectl.ok(&["create", "configmap", "mine-settings", "--from-literal=k=v"]);
    kubectl.ok(&[
        "create",
        "secret",
        "generic",
        "theirs",
        "--from-literal=k=v",
    ]);

    // The agent's pod mounts a Secret, a ConfigMap and its projected ServiceAccount token,
    // all read with the node's certificate, and runs Ready.
    create_pod(
        &skiff,
        &kubectl,
        "uses-mine",
        "nodeName: worker-1
  volumes:
  - {name: secret, secret: {secretName: mine}}
  - {name: settings, configMap: {name: mine-settings}}",
    );
    let pod = wait_pod_ready(&kubectl, "uses-mine");
    let volumes: Vec<&str> = pod["spec"]["volumes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v["name"].as_str())
        .collect();
    assert!(
        volumes.iter().any(|v| v.starts_with("kube-api-access-")),
        "the pod has its projected token volume: {volumes:?}"
    );
    // A pod of the other node uses the other Secret.
    create_pod(
        &skiff,
        &kubectl,
        "uses-theirs",
        "nodeName: server-node
  volumes:
  - {name: secret, secret: {secretName: theirs}}",
    );
    let log = agent.log();
    assert!(
        !log.contains("forbidden"),
        "the node's certificate was refused something its pods need; log:\n{log}"
    );

    let as_node = node_kubectl(&skiff, &kubectl, &agent);
    // Its own pod's Secret is readable; the other node's pod's is not.
    assert!(as_node
        .ok(&["get", "secret", "mine", "-o", "name"])
        .contains("secret/mine"));
    let refused = as_node.fails(&["get", "secret", "theirs"]);
    assert_eq!(
        refused.trim(),
        "Error from server (Forbidden): secrets \"theirs\" is forbidden: User \"system:node:worker-1\" \
         cannot get resource \"secrets\" in API group \"\" in the namespace \"default\": no \
         relationship found between node 'worker-1' and this object"
    );
    // Another Node cannot be changed; its own labels only outside the reserved prefixes.
    let patched = as_node.fails(&[
        "patch",
        "node",
        "server-node",
        "-p",
        r#"{"metadata":{"labels":{"owner":"worker-1"}}}"#,
    ]);
    assert_eq!(
        patched.trim(),
        "Error from server (Forbidden): nodes \"server-node\" is forbidden: node \"worker-1\" is \
         not allowed to modify node \"server-node\""
    );
    let labelled = as_node.fails(&[
        "label",
        "node",
        "worker-1",
        "node-restriction.kubernetes.io/dedicated=db",
    ]);
    assert_eq!(
        labelled.trim(),
        "Error from server (Forbidden): nodes \"worker-1\" is forbidden: is not allowed to modify \
         labels: node-restriction.kubernetes.io/dedicated"
    );
    as_node.ok(&["label", "node", "worker-1", "example.com/rack=r1"]);
    // Nor may the node ask a token bound to the other node's pod.
    let theirs_uid = str_at(
        &kubectl.json(&["get", "pod", "uses-theirs"]),
        "/metadata/uid",
    );
    let token = as_node.fails(&[
        "create",
        "token",
        "default",
        "--bound-object-kind=Pod",
        "--bound-object-name=uses-theirs",
        &format!("--bound-object-uid={theirs_uid}"),
    ]);
    assert!(
        token.contains(
            "serviceaccounts \"default\" is forbidden: node requested token bound to a pod \
             scheduled on a different node"
        ),
        "{token}"
    );
    // The other node's pod's status is not this node's to write (a PUT: the node may not
    // read `pods/status`, so `kubectl patch` cannot fetch it first).
    let theirs = kubectl.ok(&["get", "pod", "uses-theirs", "-o", "json"]);
    let theirs_file = skiff.write_file("uses-theirs.json", &theirs);
    let status = as_node.fails(&["replace", "--subresource=status", "-f", &theirs_file]);
    assert!(
        status.contains(
            "node \"worker-1\" can only update pod status for pods with spec.nodeName set to itself"
        ),
        "{status}"
    );
}

/// The cells of a table `kubectl get` printed, cut at the header's column starts (a cell may
/// hold spaces, as OS-IMAGE does), by column name.
fn table_rows(output: &str) -> Vec<std::collections::BTreeMap<String, String>> {
    let mut lines = output.lines().filter(|l| !l.trim().is_empty());
    let header = lines
        .next()
        .unwrap_or_else(|| panic!("no header in {output:?}"));
    let mut starts: Vec<(usize, &str)> = Vec::new();
    let mut offset = 0;
    for name in header.split_whitespace() {
        let at = offset + header[offset..].find(name).expect("a header cell");
        starts.push((at, name));
        offset = at + name.len();
    }
    lines
        .map(|line| {
            starts
                .iter()
                .enumerate()
                .map(|(i, (start, name))| {
                    let end = starts.get(i + 1).map_or(line.len(), |next| next.0);
                    let cell = line.get(*start..end.min(line.len())).unwrap_or("");
                    (name.to_string(), cell.trim().to_string())
                })
                .collect()
        })
        .collect()
}

/// This machine's `PRETTY_NAME`, as a node on it reports its OS image.
fn host_os_image() -> String {
    let text = std::fs::read_to_string("/etc/os-release")
        .or_else(|_| std::fs::read_to_string("/usr/lib/os-release"))
        .unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix("PRETTY_NAME="))
        .map(|v| v.trim_matches(|c| c == '"' || c == '\'').to_string())
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "Linux".to_string())
}

#[test]
fn nodes_describe_their_addresses_system_and_roles_in_get_nodes_wide() {
    let skiff = Skiff::start_with(&["--node-name", "server-node", "--node-ip", "127.0.0.1"]);
    let kubectl = skiff.kubectl();
    let mut agent = Agent::start_at(&skiff, "worker-7", "127.0.0.2");
    agent.wait_joined();
    wait_node_ready(&kubectl, "worker-7");
    wait_node_ready(&kubectl, "server-node");

    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .expect("the kernel release is readable")
        .trim()
        .to_string();
    let os_image = host_os_image();
    let runtime = format!("skiff://{}", env!("CARGO_PKG_VERSION"));
    let output = kubectl.ok(&["get", "nodes", "-o", "wide"]);
    let rows = table_rows(&output);
    let header: Vec<&str> = output
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    assert_eq!(
        header,
        [
            "NAME",
            "STATUS",
            "ROLES",
            "AGE",
            "VERSION",
            "INTERNAL-IP",
            "EXTERNAL-IP",
            "OS-IMAGE",
            "KERNEL-VERSION",
            "CONTAINER-RUNTIME"
        ],
        "{output}"
    );
    assert_eq!(rows.len(), 2, "two nodes:\n{output}");
    for (name, roles, internal_ip) in [
        ("server-node", "control-plane,master", "127.0.0.1"),
        ("worker-7", "<none>", "127.0.0.2"),
    ] {
        let row = rows
            .iter()
            .find(|row| row["NAME"] == name)
            .unwrap_or_else(|| panic!("no row for {name}:\n{output}"));
        let expected = [
            ("STATUS", "Ready"),
            ("ROLES", roles),
            ("VERSION", "v1.36.0"),
            ("INTERNAL-IP", internal_ip),
            ("EXTERNAL-IP", "<none>"),
            ("OS-IMAGE", os_image.as_str()),
            ("KERNEL-VERSION", kernel.as_str()),
            ("CONTAINER-RUNTIME", runtime.as_str()),
        ];
        for (column, want) in expected {
            assert_eq!(row[column], want, "{name} {column}:\n{output}");
        }
    }

    // The node's addresses and system information, as kubelet reports them.
    let node = kubectl.json(&["get", "node", "worker-7"]);
    assert_eq!(
        node.pointer("/status/addresses"),
        Some(&serde_json::json!([
            {"type": "InternalIP", "address": "127.0.0.2"},
            {"type": "Hostname", "address": "worker-7"}
        ])),
        "{node}"
    );
    assert_eq!(str_at(&node, "/status/nodeInfo/operatingSystem"), "linux");
    let boot_id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .expect("the boot ID is readable");
    assert_eq!(str_at(&node, "/status/nodeInfo/bootID"), boot_id.trim());
    let server = kubectl.json(&["get", "node", "server-node"]);
    assert_eq!(
        str_at(
            &server,
            "/metadata/labels/node-role.kubernetes.io~1control-plane"
        ),
        "true",
        "{server}"
    );

    // The API server reaches the agent's kubelet endpoint at its InternalIP.
    let greeter = format!(
        "apiVersion: v1
kind: Pod
metadata:
  name: greeter
spec:
  nodeName: worker-7
  containers:
  - name: sh
    image: {SHELL}
    command: [\"sh\", \"-c\", \"echo hello from worker-7; sleep 3600\"]
"
    );
    let file = skiff.write_file("greeter.yaml", &greeter);
    kubectl.ok(&["create", "-f", &file]);
    let logs = wait_for(
        "the pod's logs through the kubelet endpoint",
        DEADLINE,
        || {
            let out = kubectl.run(&["logs", "greeter"]);
            (out.success() && out.stdout.contains("hello from worker-7")).then_some(out.stdout)
        },
    );
    assert_eq!(logs, "hello from worker-7\n");
    let pod = kubectl.json(&["get", "pod", "greeter"]);
    assert_eq!(str_at(&pod, "/status/hostIP"), "127.0.0.2", "{pod}");
    agent.stop();
}

/// Millicores in a `kubectl top` CPU cell (`250m`, `1`).
fn millicores(cell: &str) -> u64 {
    match cell.strip_suffix('m') {
        Some(m) => m
            .parse()
            .unwrap_or_else(|_| panic!("bad CPU cell {cell:?}")),
        None => cell
            .parse::<u64>()
            .unwrap_or_else(|_| panic!("bad CPU cell {cell:?}"))
            .saturating_mul(1000),
    }
}

/// What `kubectl top ARGS --no-headers` prints once it succeeds with a row for which
/// `wanted` holds (polled until the deadline); fails the test with the last output otherwise.
fn top_until(
    kubectl: &Kubectl,
    args: &[&str],
    what: &str,
    wanted: impl Fn(&[&str]) -> bool,
) -> String {
    let mut all = vec!["top"];
    all.extend_from_slice(args);
    all.push("--no-headers");
    let mut last = String::new();
    let found = support::poll(DEADLINE, || {
        let out = kubectl.run(&all);
        last = format!("{}{}", out.stdout, out.stderr);
        let hit = out.success() && out.stdout.lines().any(|line| wanted(&support::cells(line)));
        if hit {
            Some(out.stdout)
        } else {
            std::thread::sleep(Duration::from_millis(250));
            None
        }
    });
    found.unwrap_or_else(|| panic!("timed out waiting for {what}; `kubectl {all:?}` said:\n{last}"))
}

#[test]
fn kubectl_top_shows_pods_and_nodes_on_agents_from_their_kubelet_endpoint() {
    let skiff = Skiff::start_with(&["--node-name", "server-node", "--metric-resolution", "1"]);
    let kubectl = skiff.kubectl();
    let mut agent = Agent::start(&skiff, "worker-top");
    agent.wait_joined();
    wait_node_ready(&kubectl, "worker-top");
    create_pod(&skiff, &kubectl, "burner", "nodeName: worker-top");
    let pod = wait_pod_ready(&kubectl, "burner");
    let ip = str_at(&pod, "/status/podIP");

    // Burn one CPU for 20 s in the pod and watch `kubectl top` see it: the figures come from
    // the agent, which alone measures the pod's processes.
    let burner = std::thread::spawn(move || {
        // The burn counts CPU time: on a shared machine it takes longer than 20 s of wall
        // time, so the answer is awaited generously.
        http_get(&ip, "/burn?ms=20000", Duration::from_secs(180)).map(|(status, _)| status)
    });
    let busy = top_until(
        &kubectl,
        &["pod", "burner"],
        "the burning pod's CPU",
        |row| {
            // Another tenant may share the machine: a quarter of a CPU proves the burn is measured.
            row.first() == Some(&"burner") && row.get(1).is_some_and(|c| millicores(c) >= 250)
        },
    );
    let row = busy.lines().next().map(support::cells).unwrap_or_default();
    assert!(
        row.get(2)
            .is_some_and(|m| m.ends_with("Mi") || m.ends_with("Ki")),
        "{busy}"
    );
    let containers = kubectl.ok(&["top", "pod", "burner", "--containers", "--no-headers"]);
    let row = containers
        .lines()
        .next()
        .map(support::cells)
        .unwrap_or_default();
    assert_eq!(row.get(..2), Some(&["burner", "web"][..]), "{containers}");
    let pod_metrics: Value = serde_json::from_str(&kubectl.ok(&[
        "get",
        "--raw",
        "/apis/metrics.k8s.io/v1beta1/namespaces/default/pods/burner",
    ]))
    .expect("PodMetrics JSON");
    assert_eq!(str_at(&pod_metrics, "/kind"), "PodMetrics", "{pod_metrics}");

    // The agent's node is listed beside the server's own, with its own non-zero usage.
    let nodes = top_until(&kubectl, &["node"], "the agent's node figures", |row| {
        row.first() == Some(&"worker-top") && row.get(1).is_some_and(|c| millicores(c) > 0)
    });
    assert!(
        nodes.lines().any(|line| line.starts_with("server-node ")),
        "the server's own node is still measured in process:\n{nodes}"
    );
    let answer = burner.join().expect("the burn thread");
    assert_eq!(answer, Ok(200), "the burn request failed");
}

#[test]
fn the_autoscaler_scales_a_deployment_running_on_an_agent_from_its_cpu() {
    // No node on the server: every figure the autoscaler reads comes from the agent.
    let skiff = Skiff::start_with(&[
        "--no-node",
        "--horizontal-pod-autoscaler-sync-period",
        "1s",
        "--metric-resolution",
        "1",
    ]);
    let kubectl = skiff.kubectl();
    let mut agent = Agent::start(&skiff, "worker-hpa");
    agent.wait_joined();
    wait_node_ready(&kubectl, "worker-hpa");
    let manifests = skiff.write_file(
        "burner.yaml",
        &format!(
            "apiVersion: apps/v1
kind: Deployment
metadata:
  name: burner
spec:
  replicas: 1
  selector:
    matchLabels: {{app: burner}}
  template:
    metadata:
      labels: {{app: burner}}
    spec:
      containers:
      - name: web
        image: {DEMO}:{DEMO_TAG}
        resources:
          requests: {{cpu: 100m}}
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: burner
spec:
  scaleTargetRef: {{apiVersion: apps/v1, kind: Deployment, name: burner}}
  minReplicas: 1
  maxReplicas: 3
  metrics:
  - type: Resource
    resource:
      name: cpu
      target: {{type: Utilization, averageUtilization: 50}}
"
        ),
    );
    kubectl.ok(&["apply", "-f", &manifests]);
    let pod_ips = || -> Vec<String> {
        items(&kubectl.json(&["get", "pods", "-l", "app=burner"]))
            .iter()
            .filter(|p| p["status"]["phase"] == "Running")
            .filter_map(|p| p.pointer("/status/podIP")?.as_str().map(str::to_string))
            .collect()
    };
    let first = wait_for("the first pod to run", DEADLINE, || {
        let ips = pod_ips();
        (!ips.is_empty()).then_some(ips)
    });

    // Load the first pod until the Deployment grows: each request burns 400 ms of CPU, four
    // times its request of 100m.
    let running = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let load = {
        let running = running.clone();
        let ip = first[0].clone();
        std::thread::spawn(move || {
            while running.load(std::sync::atomic::Ordering::Relaxed) {
                // Only the CPU it burns matters: a failed request is simply not load.
                let _ = http_get(&ip, "/burn?ms=400", READ_TIMEOUT);
            }
        })
    };
    let grown = support::poll(Duration::from_secs(120), || {
        let deployment = kubectl.json(&["get", "deployment", "burner"]);
        deployment
            .pointer("/spec/replicas")
            .and_then(Value::as_i64)
            .filter(|r| *r > 1)
    });
    running.store(false, std::sync::atomic::Ordering::Relaxed);
    let _ = load.join();
    let grown = grown.unwrap_or_else(|| {
        panic!(
            "the load on the agent's pod did not scale the Deployment up:\n{}",
            kubectl.ok(&["describe", "hpa", "burner"])
        )
    });
    assert!(grown <= 3, "scaled beyond maxReplicas: {grown}");
    let hpa = kubectl.json(&["get", "hpa", "burner"]);
    let utilization = hpa
        .pointer("/status/currentMetrics/0/resource/current/averageUtilization")
        .and_then(Value::as_i64);
    assert!(
        utilization.is_some_and(|u| u > 0),
        "the autoscaler read the agent's usage: {hpa}"
    );
}
