//! The node's side of `kubectl exec`, `attach` and `port-forward`, as the kubelet serves them:
//! the API server hands over the upgraded connection ([`PodStreams`]), and the session runs
//! here. Exec starts the command where the container's exec probes run (its environment, its
//! namespaces and its image root, see the worker's exec places), on pipes or on a
//! pseudo-terminal; attach joins a container's own stdio, which the node keeps for containers
//! started with `stdin` or `tty` ([`Attachable`]); port-forward connects to the pod's address
//! from the node.

use std::collections::HashMap;
use std::net::IpAddr;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;
use skiff_client::streams::{
    PodStreamKind, PodStreamRequest, PodStreams, Refusal, UpgradedConnection,
};
use skiff_client::{Client, Scope};
use skiff_stream::portforward::{ForwardedConnection, PortForwardSession};
use skiff_stream::remotecommand::{
    CommandOutcome, RemoteCommandSession, TerminalSize, STREAM_CREATION_TIMEOUT,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Turns a command into the argv that runs it inside one container run (through `nsenter`
/// and `unshare` when containers are isolated, unchanged otherwise).
pub(crate) type EnterContainer = Arc<dyn Fn(Vec<String>) -> Vec<String> + Send + Sync>;

/// Where commands run for one container run: what exec probes use.
#[derive(Clone)]
pub(crate) struct ExecPlace {
    /// The run's process group, to tell runs apart.
    pub pgid: i32,
    /// The run's own stdio, for attach.
    pub attach: Arc<Attachable>,
    /// The container's environment.
    pub env: Vec<(String, String)>,
    /// The working directory of the entering process on the host.
    pub cwd: PathBuf,
    /// How a command enters the container.
    pub enter: EnterContainer,
    /// Whether a command joins the run's process group, so it goes when the run's processes
    /// go. A run through an OCI runtime leads a session of its own, which no process outside
    /// may join; a command entering its PID namespace ends with its PID 1 instead.
    pub join_group: bool,
    /// The runtime's container, when the run is one: commands run through its `exec` (its
    /// namespaces, cgroup, user and capabilities, as `crun exec` does), not through `enter`.
    pub oci: Option<OciExec>,
}

/// A container of the OCI runtime that `kubectl exec` runs commands in, with the
/// environment and working directory of its process.
#[derive(Clone)]
pub(crate) struct OciExec {
    /// The container.
    pub container: Arc<super::oci::OciContainer>,
    /// Its process's environment, as `NAME=value`.
    pub env: Vec<String>,
    /// Its process's working directory inside its root.
    pub cwd: String,
}

impl OciExec {
    /// The runtime's description of `command` run as the container's process runs.
    fn process(&self, command: Vec<String>, terminal: bool) -> skiff_oci::ExecProcess {
        skiff_oci::ExecProcess {
            args: command,
            env: self.env.clone(),
            cwd: Some(self.cwd.clone()),
            terminal,
        }
    }

    /// Starts `process` in the container with the given streams.
    async fn start(
        &self,
        process: skiff_oci::ExecProcess,
        stdio: skiff_oci::ProcessStdio,
    ) -> Result<std::process::Child, String> {
        let runtime = self.container.runtime.clone();
        let id = self.container.id.clone();
        tokio::task::spawn_blocking(move || runtime.exec(&id, &process, stdio))
            .await
            .map_err(|e| format!("starting the command: {e}"))?
            .map(|exec| exec.child)
            .map_err(|e| e.to_string())
    }
}

/// Waits, on a blocking thread, for the runtime's exec process, which ends with the
/// command (and with the container, whose PID namespace takes its processes down).
async fn wait_runtime_child(mut child: std::process::Child) -> std::io::Result<i32> {
    tokio::task::spawn_blocking(move || child.wait().map(exit_code))
        .await
        .map_err(std::io::Error::other)?
}

/// Which container runs are running now and where their commands run, shared by the pod
/// workers (who record them) and [`AgentStreams`] (who starts commands there).
#[derive(Clone, Default)]
pub(crate) struct ExecPlaces {
    running: Arc<Mutex<HashMap<(String, String), ExecPlace>>>,
}

impl ExecPlaces {
    /// Records a container run that just started, replacing its earlier run.
    pub fn started(&self, pod_uid: &str, container: &str, place: ExecPlace) {
        if let Ok(mut running) = self.running.lock() {
            running.insert((pod_uid.to_string(), container.to_string()), place);
        }
    }

    /// Forgets a container run whose process group is gone (a newer run stays).
    pub fn exited(&self, pod_uid: &str, container: &str, pgid: i32) {
        if let Ok(mut running) = self.running.lock() {
            let key = (pod_uid.to_string(), container.to_string());
            if running.get(&key).is_some_and(|place| place.pgid == pgid) {
                running.remove(&key);
            }
        }
    }

    fn find(&self, pod_uid: &str, container: &str) -> Option<ExecPlace> {
        let running = self.running.lock().ok()?;
        running
            .get(&(pod_uid.to_string(), container.to_string()))
            .cloned()
    }
}

/// A container's `stdin`, `stdinOnce` and `tty`, which decide what its own stdio is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AttachConfig {
    /// The container reads stdin from a pipe (or its terminal) the node keeps, for attach.
    pub stdin: bool,
    /// The first attach session to close stdin closes it for good.
    pub stdin_once: bool,
    /// The container runs on a terminal the node keeps.
    pub tty: bool,
}

impl AttachConfig {
    /// The settings of `container`'s spec.
    pub fn of(container: &k8s_openapi::api::core::v1::Container) -> AttachConfig {
        AttachConfig {
            stdin: container.stdin.unwrap_or(false),
            stdin_once: container.stdin_once.unwrap_or(false),
            tty: container.tty.unwrap_or(false),
        }
    }
}

/// One chunk of a container's output: the stream (`stdout`, `stderr`) and the bytes.
type OutputChunk = (&'static str, bytes::Bytes);

/// A container run's output as attach sessions receive it. What the run writes before its
/// first attach session is kept (up to [`EARLY_OUTPUT_LIMIT`]) and given to that session, so
/// `kubectl run -it -- sh -c 'echo hi'` shows what the command printed before kubectl attached,
/// as `docker run -it` does; later sessions see output from when they attach.
#[derive(Clone)]
pub struct OutputSender {
    channel: tokio::sync::broadcast::Sender<OutputChunk>,
    early: Arc<Mutex<Option<EarlyOutput>>>,
}

/// Output kept for the first attach session, and its size in bytes.
#[derive(Default)]
struct EarlyOutput {
    chunks: Vec<OutputChunk>,
    size: usize,
}

/// How many output chunks an attach session may fall behind before it skips some.
const ATTACH_BACKLOG: usize = 1024;

/// How much output written before the first attach session is kept for it.
const EARLY_OUTPUT_LIMIT: usize = 64 * 1024;

impl OutputSender {
    /// Passes a chunk of output on to every attach session (none is the usual case).
    pub fn send(&self, stream: &'static str, bytes: bytes::Bytes) {
        // Under the lock, so that a first session gets each chunk exactly once.
        let Ok(mut early) = self.early.lock() else {
            return;
        };
        if let Some(kept) = early.as_mut() {
            if let Some(grown) = kept.size.checked_add(bytes.len()) {
                if grown <= EARLY_OUTPUT_LIMIT {
                    kept.size = grown;
                    kept.chunks.push((stream, bytes.clone()));
                }
            }
        }
        let _ = self.channel.send((stream, bytes));
    }

    /// A new session's view: the early output if it is the first, then every later chunk.
    fn subscribe(
        &self,
    ) -> (
        Vec<OutputChunk>,
        tokio::sync::broadcast::Receiver<OutputChunk>,
    ) {
        match self.early.lock() {
            Ok(mut early) => {
                let backlog = early.take().map(|kept| kept.chunks).unwrap_or_default();
                (backlog, self.channel.subscribe())
            }
            Err(_) => (Vec::new(), self.channel.subscribe()),
        }
    }
}

/// A fresh output channel for one container run.
pub fn output_channel() -> OutputSender {
    OutputSender {
        channel: tokio::sync::broadcast::channel(ATTACH_BACKLOG).0,
        early: Arc::new(Mutex::new(Some(EarlyOutput::default()))),
    }
}

/// Sets a container's stdio from its spec: a new terminal (returned, its controlling end kept
/// by the node) for `tty`, else a stdin pipe for `stdin` (or nothing) and output pipes.
pub fn container_stdio(
    command: &mut tokio::process::Command,
    config: &AttachConfig,
) -> std::io::Result<Option<OwnedFd>> {
    if config.tty {
        let pty = nix::pty::openpty(None, None).map_err(std::io::Error::from)?;
        command
            .stdin(Stdio::from(pty.slave.try_clone()?))
            .stdout(Stdio::from(pty.slave.try_clone()?))
            .stderr(Stdio::from(pty.slave));
        return Ok(Some(pty.master));
    }
    let stdin = if config.stdin {
        Stdio::piped()
    } else {
        Stdio::null()
    };
    command
        .stdin(stdin)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    Ok(None)
}

/// A reader of the terminal's output (which ends with an error once no process holds the
/// terminal any more).
pub fn terminal_reader(master: &OwnedFd) -> Option<tokio::fs::File> {
    let reader = master.try_clone().ok()?;
    Some(tokio::fs::File::from_std(std::fs::File::from(reader)))
}

/// Where attach sessions write a container's input: its stdin pipe or its terminal.
pub type Input = Box<dyn AsyncWrite + Send + Unpin>;

/// What else closing a container's stdin for good takes (the runtime's own copy of the
/// pipe's write end, which a container under the node monitor has).
pub type StdinCloser = Box<dyn Fn() + Send + Sync>;

/// A container run's own stdio as attach sessions use it.
pub struct Attachable {
    config: AttachConfig,
    output: OutputSender,
    input: tokio::sync::Mutex<Option<Input>>,
    terminal: Option<OwnedFd>,
    done: tokio::sync::watch::Receiver<Option<i32>>,
    stdin_closer: Option<StdinCloser>,
}

impl std::fmt::Debug for Attachable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Attachable")
            .field("config", &self.config)
            .field("terminal", &self.terminal.is_some())
            .finish()
    }
}

impl Attachable {
    /// Joins a run's stdio: its output channel, its stdin pipe or its terminal, and the signal
    /// of its end.
    pub fn new(
        config: &AttachConfig,
        output: OutputSender,
        stdin: Option<Input>,
        terminal: Option<OwnedFd>,
        done: tokio::sync::watch::Receiver<Option<i32>>,
    ) -> Attachable {
        let input: Option<Input> = match (&terminal, stdin) {
            (Some(master), _) if config.stdin => master
                .try_clone()
                .ok()
                .map(|fd| Box::new(tokio::fs::File::from_std(std::fs::File::from(fd))) as Input),
            (None, Some(pipe)) if config.stdin => Some(pipe),
            _ => None,
        };
        Attachable {
            config: *config,
            output,
            input: tokio::sync::Mutex::new(input),
            terminal,
            done,
            stdin_closer: None,
        }
    }

    /// Also runs `closer` when the container's stdin is closed for good (`stdinOnce`).
    pub fn with_stdin_closer(mut self, closer: StdinCloser) -> Attachable {
        self.stdin_closer = Some(closer);
        self
    }
}

/// How long a terminal command waits for the client's first terminal size before it starts.
const FIRST_SIZE_WAIT: Duration = Duration::from_secs(1);

/// How long output still flows after the command exits, for a process it left behind that
/// holds its output open.
const OUTPUT_AFTER_EXIT: Duration = Duration::from_secs(10);

/// The node agent's streaming sessions (hand it to the API server).
pub struct AgentStreams {
    client: Arc<dyn Client>,
    places: ExecPlaces,
    setsid: Option<PathBuf>,
}

impl AgentStreams {
    pub(crate) fn new(client: Arc<dyn Client>, places: ExecPlaces) -> AgentStreams {
        AgentStreams {
            client,
            places,
            setsid: find_tool("setsid"),
        }
    }

    fn place_of(&self, request: &PodStreamRequest) -> Result<ExecPlace, Refusal> {
        let container = request.container.as_deref().unwrap_or_default();
        self.places
            .find(&request.uid, container)
            .ok_or_else(|| container_not_found(container))
    }

    async fn pod_ip(&self, request: &PodStreamRequest) -> Result<IpAddr, Refusal> {
        let pods = skiff_api::resources::find("", "v1", "pods")
            .ok_or_else(|| kubelet_error("pods are not served".into()))?;
        let scope = Scope {
            resource: pods,
            namespace: Some(&request.namespace),
        };
        let pod = self
            .client
            .get(scope, &request.pod)
            .await
            .map_err(|_| not_found("pod does not exist"))?;
        let uid = pod.pointer("/metadata/uid").and_then(Value::as_str);
        if uid != Some(request.uid.as_str()) {
            return Err(not_found("pod does not exist"));
        }
        pod.pointer("/status/podIP")
            .and_then(Value::as_str)
            .and_then(|ip| ip.parse().ok())
            .ok_or_else(|| {
                kubelet_error(format!(
                    "pod {} has no IP address to forward to yet",
                    request.pod
                ))
            })
    }

    async fn exec(&self, request: PodStreamRequest, connection: UpgradedConnection) {
        let place = self.place_of(&request);
        let Ok(mut session) = RemoteCommandSession::start(
            connection,
            &request.negotiated,
            request.remote_command,
            STREAM_CREATION_TIMEOUT,
        )
        .await
        else {
            return;
        };
        let outcome = match place {
            Ok(place) if session.options.tty => {
                run_on_terminal(
                    &place,
                    self.setsid.as_deref(),
                    request.command,
                    &mut session,
                )
                .await
            }
            Ok(place) => run_on_pipes(&place, request.command, &mut session).await,
            Err(refusal) => CommandOutcome::Failed(refusal.body),
        };
        session.finish(outcome).await;
    }

    async fn attach(&self, request: PodStreamRequest, connection: UpgradedConnection) {
        let place = self.place_of(&request);
        let Ok(mut session) = RemoteCommandSession::start(
            connection,
            &request.negotiated,
            request.remote_command,
            STREAM_CREATION_TIMEOUT,
        )
        .await
        else {
            return;
        };
        let outcome = match place {
            Ok(place) => attach_to(&place.attach, &mut session).await,
            Err(refusal) => CommandOutcome::Failed(refusal.body),
        };
        session.finish(outcome).await;
    }

    async fn port_forward(&self, request: PodStreamRequest, connection: UpgradedConnection) {
        let pod_ip = self.pod_ip(&request).await;
        let Ok(mut session) =
            PortForwardSession::start(connection, &request.negotiated, &request.ports).await
        else {
            return;
        };
        while let Some(forwarded) = session.next().await {
            let pod = request.pod.clone();
            let uid = request.uid.clone();
            match &pod_ip {
                Ok(ip) => {
                    tokio::spawn(forward(forwarded, *ip, pod, uid));
                }
                Err(error) => {
                    let port = forwarded.port;
                    forwarded
                        .errors
                        .forwarding_failed(port, &pod, &uid, &error.body)
                        .await;
                }
            }
        }
        session.close(Duration::from_secs(1)).await;
    }
}

#[async_trait]
impl PodStreams for AgentStreams {
    async fn check(&self, request: &PodStreamRequest) -> Result<(), Refusal> {
        match request.kind {
            // Whether the session has a terminal follows the client (as the kubelet's does, kubectl
            // asks for one only when the container has one); the output goes to the streams
            // it opened.
            PodStreamKind::Exec | PodStreamKind::Attach => self.place_of(request).map(|_| ()),
            PodStreamKind::PortForward => self.pod_ip(request).await.map(|_| ()),
        }
    }

    async fn serve(&self, request: PodStreamRequest, connection: UpgradedConnection) {
        match request.kind {
            PodStreamKind::Exec => self.exec(request, connection).await,
            PodStreamKind::PortForward => self.port_forward(request, connection).await,
            PodStreamKind::Attach => self.attach(request, connection).await,
        }
    }
}

/// A plain-text answer, as the kubelet writes its streaming errors.
fn plain(status: http::StatusCode, message: String) -> Refusal {
    Refusal {
        status,
        content_type: "text/plain; charset=utf-8",
        body: message,
        headers: Vec::new(),
    }
}

/// The kubelet's error for a streaming request its runtime cannot serve: a 500 whose text
/// kubectl prints after `unable to upgrade connection: `.
fn kubelet_error(message: String) -> Refusal {
    plain(http::StatusCode::INTERNAL_SERVER_ERROR, message)
}

/// The kubelet's answer for a pod it does not run.
fn not_found(message: &str) -> Refusal {
    plain(http::StatusCode::NOT_FOUND, message.to_string())
}

/// The kubelet's answer when the container has no running process to exec into.
fn container_not_found(container: &str) -> Refusal {
    kubelet_error(format!("container not found ({container:?})"))
}

fn find_tool(name: &str) -> Option<PathBuf> {
    ["/usr/bin", "/bin", "/usr/sbin", "/sbin"]
        .iter()
        .map(|dir| Path::new(dir).join(name))
        .find(|path| path.is_file())
}

fn command_for(place: &ExecPlace, argv: &[String]) -> Option<tokio::process::Command> {
    let (program, args) = argv.split_first()?;
    let mut command = tokio::process::Command::new(program);
    command
        .args(args)
        .env_clear()
        .envs(place.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .current_dir(&place.cwd)
        .kill_on_drop(true);
    Some(command)
}

fn exit_code(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(-1)
}

/// Waits for an exec'd command; should the container stop first, the command is killed, as
/// a container's exec processes end with it.
async fn wait_or_kill(
    child: &mut tokio::process::Child,
    container: &Attachable,
) -> std::io::Result<std::process::ExitStatus> {
    let mut done = container.done.clone();
    tokio::select! {
        status = child.wait() => status,
        () = ended(&mut done) => {
            let _ = child.start_kill();
            child.wait().await
        }
    }
}

/// Copies `from` into `to` until either ends, then closes `to`.
async fn pump(mut from: impl AsyncRead + Unpin, mut to: impl AsyncWrite + Unpin) {
    let _ = tokio::io::copy(&mut from, &mut to).await;
    let _ = to.shutdown().await;
}

/// Runs the command on pipes: stdin, stdout and stderr each as the client asked.
async fn run_on_pipes(
    place: &ExecPlace,
    command: Vec<String>,
    session: &mut RemoteCommandSession,
) -> CommandOutcome {
    if let Some(oci) = &place.oci {
        return run_in_container_on_pipes(oci, command, session).await;
    }
    let argv = (place.enter)(command);
    let Some(mut command) = command_for(place, &argv) else {
        return CommandOutcome::Failed("no command specified".into());
    };
    let piped = |wanted: bool| {
        if wanted {
            Stdio::piped()
        } else {
            Stdio::null()
        }
    };
    command
        .stdin(piped(session.stdin.is_some()))
        .stdout(piped(session.stdout.is_some()))
        .stderr(piped(session.stderr.is_some()));
    if place.join_group {
        // In the container's process group, so it goes when the container's processes go.
        command.process_group(place.pgid);
    }
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(error) => return CommandOutcome::Failed(format!("starting {argv:?}: {error}")),
    };
    let input = match (session.stdin.take(), child.stdin.take()) {
        (Some(from), Some(to)) => Some(tokio::spawn(pump(from, to))),
        _ => None,
    };
    let mut outputs = Vec::new();
    if let (Some(from), Some(to)) = (child.stdout.take(), session.stdout.take()) {
        outputs.push(tokio::spawn(pump(from, to)));
    }
    if let (Some(from), Some(to)) = (child.stderr.take(), session.stderr.take()) {
        outputs.push(tokio::spawn(pump(from, to)));
    }
    let status = wait_or_kill(&mut child, &place.attach).await;
    for output in outputs {
        let _ = tokio::time::timeout(OUTPUT_AFTER_EXIT, output).await;
    }
    if let Some(input) = input {
        input.abort();
    }
    match status {
        Ok(status) => CommandOutcome::Exited(exit_code(status)),
        Err(error) => CommandOutcome::Failed(format!("waiting for the command: {error}")),
    }
}

/// Runs the command through the runtime's exec on pipes, each stream as the client asked.
async fn run_in_container_on_pipes(
    oci: &OciExec,
    command: Vec<String>,
    session: &mut RemoteCommandSession,
) -> CommandOutcome {
    if command.is_empty() {
        return CommandOutcome::Failed("no command specified".into());
    }
    let piped = |wanted: bool| {
        if wanted {
            Stdio::piped()
        } else {
            Stdio::null()
        }
    };
    let stdio = skiff_oci::ProcessStdio {
        stdin: piped(session.stdin.is_some()),
        stdout: piped(session.stdout.is_some()),
        stderr: piped(session.stderr.is_some()),
    };
    let mut child = match oci.start(oci.process(command, false), stdio).await {
        Ok(child) => child,
        Err(error) => return CommandOutcome::Failed(error),
    };
    let input = match (
        session.stdin.take(),
        child
            .stdin
            .take()
            .and_then(|pipe| tokio::process::ChildStdin::from_std(pipe).ok()),
    ) {
        (Some(from), Some(to)) => Some(tokio::spawn(pump(from, to))),
        _ => None,
    };
    let mut outputs = Vec::new();
    let stdout = child
        .stdout
        .take()
        .and_then(|pipe| tokio::process::ChildStdout::from_std(pipe).ok());
    if let (Some(from), Some(to)) = (stdout, session.stdout.take()) {
        outputs.push(tokio::spawn(pump(from, to)));
    }
    let stderr = child
        .stderr
        .take()
        .and_then(|pipe| tokio::process::ChildStderr::from_std(pipe).ok());
    if let (Some(from), Some(to)) = (stderr, session.stderr.take()) {
        outputs.push(tokio::spawn(pump(from, to)));
    }
    let status = wait_runtime_child(child).await;
    for output in outputs {
        let _ = tokio::time::timeout(OUTPUT_AFTER_EXIT, output).await;
    }
    if let Some(input) = input {
        input.abort();
    }
    match status {
        Ok(code) => CommandOutcome::Exited(code),
        Err(error) => CommandOutcome::Failed(format!("waiting for the command: {error}")),
    }
}

/// Runs the command on a new pseudo-terminal, as its session leader with the terminal as its
/// controlling one (through `setsid --ctty` when installed); resizes set the terminal's size.
async fn run_on_terminal(
    place: &ExecPlace,
    setsid: Option<&Path>,
    command: Vec<String>,
    session: &mut RemoteCommandSession,
) -> CommandOutcome {
    let pty = match nix::pty::openpty(None, None) {
        Ok(pty) => pty,
        Err(error) => return CommandOutcome::Failed(format!("opening a terminal: {error}")),
    };
    // kubectl sends the terminal's size as soon as the streams are open: a command started
    // before it arrives would read a size of 0x0.
    if let Some(sizes) = session.resize.as_mut() {
        if let Ok(Some(size)) = tokio::time::timeout(FIRST_SIZE_WAIT, sizes.recv()).await {
            set_size(&pty.master, size);
        }
    }
    let waiting = match start_on_terminal(place, setsid, command, pty.slave).await {
        Ok(waiting) => waiting,
        Err(error) => return CommandOutcome::Failed(error),
    };
    let master = pty.master;
    let (reader, writer) = match (master.try_clone(), master.try_clone()) {
        (Ok(reader), Ok(writer)) => (
            tokio::fs::File::from_std(std::fs::File::from(reader)),
            tokio::fs::File::from_std(std::fs::File::from(writer)),
        ),
        _ => return CommandOutcome::Failed("sharing the terminal".into()),
    };
    let input = session
        .stdin
        .take()
        .map(|from| tokio::spawn(pump_into_terminal(from, writer)));
    let output = session
        .stdout
        .take()
        .map(|to| tokio::spawn(pump_from_terminal(reader, to)));
    let resizes = session.resize.take().map(|mut sizes| {
        tokio::spawn(async move {
            while let Some(size) = sizes.recv().await {
                set_size(&master, size);
            }
            master
        })
    });
    let status = waiting.await;
    if let Some(output) = output {
        let _ = tokio::time::timeout(OUTPUT_AFTER_EXIT, output).await;
    }
    for task in [
        input.map(|t| t.abort_handle()),
        resizes.map(|t| t.abort_handle()),
    ]
    .into_iter()
    .flatten()
    {
        task.abort();
    }
    match status {
        Ok(code) => CommandOutcome::Exited(code),
        Err(error) => CommandOutcome::Failed(format!("waiting for the command: {error}")),
    }
}

/// The end of a started command: its exit code.
type Waiting = std::pin::Pin<Box<dyn std::future::Future<Output = std::io::Result<i32>> + Send>>;

/// Starts the command with the terminal's `slave` end as its stdio, through the runtime's
/// exec for a runtime's container, else entering the container as probes do; once started,
/// only the command holds that end, so reading the terminal ends when it is gone.
async fn start_on_terminal(
    place: &ExecPlace,
    setsid: Option<&Path>,
    command: Vec<String>,
    slave: OwnedFd,
) -> Result<Waiting, String> {
    if command.is_empty() {
        return Err("no command specified".into());
    }
    let terminal = |fd: &OwnedFd| fd.try_clone().map(Stdio::from);
    let (stdin, stdout, stderr) = match (terminal(&slave), terminal(&slave), terminal(&slave)) {
        (Ok(a), Ok(b), Ok(c)) => (a, b, c),
        _ => return Err("sharing the terminal".into()),
    };
    drop(slave);
    if let Some(oci) = &place.oci {
        let stdio = skiff_oci::ProcessStdio {
            stdin,
            stdout,
            stderr,
        };
        let child = oci.start(oci.process(command, true), stdio).await?;
        return Ok(Box::pin(wait_runtime_child(child)));
    }
    let mut argv = Vec::new();
    if let Some(setsid) = setsid {
        argv.push(setsid.to_string_lossy().into_owned());
        argv.push("--ctty".to_string());
    }
    argv.extend((place.enter)(command));
    let Some(mut command) = command_for(place, &argv) else {
        return Err("no command specified".into());
    };
    command.stdin(stdin).stdout(stdout).stderr(stderr);
    let spawned = command.spawn();
    drop(command);
    let mut child = spawned.map_err(|error| format!("starting {argv:?}: {error}"))?;
    let attach = place.attach.clone();
    Ok(Box::pin(async move {
        wait_or_kill(&mut child, &attach).await.map(exit_code)
    }))
}

/// Connects a session to a running container's own stdio until the container or the client
/// ends it: its output as it is written from now on (with a terminal, one stream), the
/// client's input to its stdin (closed for good at the client's EOF with `stdinOnce`), and
/// resizes to its terminal.
async fn attach_to(
    attachable: &Arc<Attachable>,
    session: &mut RemoteCommandSession,
) -> CommandOutcome {
    let (backlog, mut output) = attachable.output.subscribe();
    let mut done = attachable.done.clone();
    let input = match (session.stdin.take(), attachable.config.stdin) {
        (Some(from), true) => Some(tokio::spawn(pass_input(attachable.clone(), from))),
        _ => None,
    };
    let resizes = match (session.resize.take(), attachable.terminal.as_ref()) {
        (Some(mut sizes), Some(_)) => {
            let attachable = attachable.clone();
            Some(tokio::spawn(async move {
                while let Some(size) = sizes.recv().await {
                    if let Some(master) = attachable.terminal.as_ref() {
                        set_size(master, size);
                    }
                }
            }))
        }
        _ => None,
    };
    let mut stdout = session.stdout.take();
    let mut stderr = session.stderr.take();
    for (stream, bytes) in backlog {
        let _ = deliver(&mut stdout, &mut stderr, stream, &bytes).await;
    }
    loop {
        tokio::select! {
            received = output.recv() => match received {
                Ok((stream, bytes)) => {
                    if deliver(&mut stdout, &mut stderr, stream, &bytes).await.is_err() {
                        break;
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
            },
            () = ended(&mut done) => {
                // The run's output was all sent before its end was announced.
                while let Ok((stream, bytes)) = output.try_recv() {
                    let _ = deliver(&mut stdout, &mut stderr, stream, &bytes).await;
                }
                break;
            }
        }
    }
    for task in [input, resizes].into_iter().flatten() {
        task.abort();
    }
    drop(stdout);
    drop(stderr);
    CommandOutcome::Exited(0)
}

/// Passes what an attach session's client types to the container's stdin until the client
/// closes it; with `stdinOnce` (and no terminal) the container's stdin is then closed for good.
async fn pass_input(attachable: Arc<Attachable>, mut from: impl AsyncRead + Unpin) {
    let mut buffer = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let mut input = attachable.input.lock().await;
        let Some(to) = input.as_mut() else { break };
        if to.write_all(&buffer[..n]).await.is_err() || to.flush().await.is_err() {
            break;
        }
    }
    if attachable.config.stdin_once && !attachable.config.tty {
        if let Some(mut to) = attachable.input.lock().await.take() {
            let _ = to.shutdown().await;
            if let Some(closer) = &attachable.stdin_closer {
                closer();
            }
        }
    }
}

/// Writes a chunk of the container's output to the session stream it belongs to: stderr when
/// the session has one, else stdout (a terminal has one stream).
async fn deliver(
    stdout: &mut Option<tokio::io::DuplexStream>,
    stderr: &mut Option<tokio::io::DuplexStream>,
    stream: &str,
    bytes: &[u8],
) -> std::io::Result<()> {
    let target = match stream {
        "stderr" if stderr.is_some() => stderr.as_mut(),
        _ => stdout.as_mut(),
    };
    match target {
        Some(to) => to.write_all(bytes).await,
        None => Ok(()),
    }
}

/// Waits until the run's process group is gone.
async fn ended(done: &mut tokio::sync::watch::Receiver<Option<i32>>) {
    // The guard is let go at once: it must not be held across an await.
    let _ = done.wait_for(Option::is_some).await.map(|_| ());
}

/// Sets the terminal's size (TIOCSWINSZ), which sends SIGWINCH to its foreground group.
fn set_size(master: &OwnedFd, size: TerminalSize) {
    let winsize = rustix::termios::Winsize {
        ws_row: size.height,
        ws_col: size.width,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    if let Err(error) = rustix::termios::tcsetwinsize(master.as_fd(), winsize) {
        tracing::debug!(%error, "setting a terminal's size failed");
    }
}

async fn pump_into_terminal(mut from: impl AsyncRead + Unpin, mut to: tokio::fs::File) {
    let mut buffer = vec![0u8; 16 * 1024];
    loop {
        match from.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if to.write_all(&buffer[..n]).await.is_err() || to.flush().await.is_err() {
                    break;
                }
            }
        }
    }
}

/// Copies the terminal's output; the terminal reports an error (EIO) once the command and
/// every process holding it are gone, which ends the copy.
async fn pump_from_terminal(mut from: tokio::fs::File, mut to: impl AsyncWrite + Unpin) {
    let mut buffer = vec![0u8; 16 * 1024];
    loop {
        match from.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if to.write_all(&buffer[..n]).await.is_err() {
                    break;
                }
            }
        }
    }
    let _ = to.shutdown().await;
}

/// Carries one forwarded connection to `ip:port`. When the pod closes its side, both streams
/// close (kubectl then closes its local connection), whether or not the client still sends.
async fn forward(forwarded: ForwardedConnection, ip: IpAddr, pod: String, uid: String) {
    let ForwardedConnection {
        port, data, errors, ..
    } = forwarded;
    let socket = match tokio::net::TcpStream::connect((ip, port)).await {
        Ok(socket) => socket,
        Err(error) => {
            let cause = format!("failed to connect to {ip}:{port}: {error}");
            errors.forwarding_failed(port, &pod, &uid, &cause).await;
            return;
        }
    };
    let _ = socket.set_nodelay(true);
    let (from_pod, to_pod) = socket.into_split();
    let (from_client, to_client) = tokio::io::split(data);
    let upstream = tokio::spawn(pump(from_client, to_pod));
    pump(from_pod, to_client).await;
    upstream.abort();
    drop(errors);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(chunks: &[OutputChunk]) -> String {
        chunks
            .iter()
            .map(|(stream, bytes)| format!("{stream}:{}", String::from_utf8_lossy(bytes)))
            .collect()
    }

    #[tokio::test]
    async fn the_first_attach_session_gets_earlier_output_and_later_ones_do_not() {
        let output = output_channel();
        output.send("stdout", bytes::Bytes::from_static(b"hi\n"));
        output.send("stderr", bytes::Bytes::from_static(b"oops\n"));
        let (backlog, mut first) = output.subscribe();
        assert_eq!(text(&backlog), "stdout:hi\nstderr:oops\n");
        output.send("stdout", bytes::Bytes::from_static(b"later\n"));
        assert_eq!(first.recv().await.unwrap().1, "later\n");
        let (second_backlog, mut second) = output.subscribe();
        assert!(second_backlog.is_empty(), "{}", text(&second_backlog));
        output.send("stdout", bytes::Bytes::from_static(b"both\n"));
        assert_eq!(first.recv().await.unwrap().1, "both\n");
        assert_eq!(second.recv().await.unwrap().1, "both\n");
    }

    #[test]
    fn early_output_is_bounded() {
        let output = output_channel();
        let big = bytes::Bytes::from(vec![b'x'; EARLY_OUTPUT_LIMIT - 1]);
        output.send("stdout", big);
        output.send("stdout", bytes::Bytes::from_static(b"too much"));
        output.send("stdout", bytes::Bytes::from_static(b"!"));
        let (backlog, _) = output.subscribe();
        let kept: usize = backlog.iter().map(|(_, bytes)| bytes.len()).sum();
        assert_eq!(kept, EARLY_OUTPUT_LIMIT);
        assert_eq!(backlog.last().map(|(_, b)| b.as_ref()), Some(&b"!"[..]));
    }

    /// An attachable container stdin on a pipe, with a closer that counts its calls; the
    /// pipe's read end (the container's side) and the count.
    fn piped_attachable(
        config: AttachConfig,
    ) -> (
        Arc<Attachable>,
        tokio::net::unix::pipe::Receiver,
        Arc<std::sync::atomic::AtomicUsize>,
    ) {
        let (sender, receiver) = tokio::net::unix::pipe::pipe().unwrap();
        let (_tx, done) = tokio::sync::watch::channel(None);
        let closed = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = closed.clone();
        let attachable = Attachable::new(
            &config,
            output_channel(),
            Some(Box::new(sender)),
            None,
            done,
        )
        .with_stdin_closer(Box::new(move || {
            counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }));
        (Arc::new(attachable), receiver, closed)
    }

    #[tokio::test]
    async fn stdin_once_closes_the_containers_stdin_and_the_runtimes_copy_after_one_session() {
        let config = AttachConfig {
            stdin: true,
            stdin_once: true,
            tty: false,
        };
        let (attachable, mut container_side, closed) = piped_attachable(config);
        let (mut client, session_stdin) = tokio::io::duplex(64);
        let session = tokio::spawn(pass_input(attachable.clone(), session_stdin));
        client.write_all(b"typed\n").await.unwrap();
        drop(client);
        tokio::time::timeout(Duration::from_secs(5), session)
            .await
            .expect("the session ends with the client's stdin")
            .unwrap();
        let mut read = Vec::new();
        tokio::time::timeout(
            Duration::from_secs(5),
            container_side.read_to_end(&mut read),
        )
        .await
        .expect("the container's stdin reaches its end")
        .unwrap();
        assert_eq!(read, b"typed\n");
        assert_eq!(closed.load(std::sync::atomic::Ordering::SeqCst), 1);
        // A later session has nothing to write to, and closes nothing again.
        let (client, session_stdin) = tokio::io::duplex(64);
        drop(client);
        pass_input(attachable, session_stdin).await;
        assert_eq!(closed.load(std::sync::atomic::Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn without_stdin_once_the_containers_stdin_stays_open_between_sessions() {
        let config = AttachConfig {
            stdin: true,
            stdin_once: false,
            tty: false,
        };
        let (attachable, mut container_side, closed) = piped_attachable(config);
        for line in [&b"first\n"[..], b"second\n"] {
            let (mut client, session_stdin) = tokio::io::duplex(64);
            client.write_all(line).await.unwrap();
            drop(client);
            pass_input(attachable.clone(), session_stdin).await;
            let mut read = vec![0u8; line.len()];
            tokio::time::timeout(Duration::from_secs(5), container_side.read_exact(&mut read))
                .await
                .expect("the line reaches the container")
                .unwrap();
            assert_eq!(read, line);
        }
        assert_eq!(closed.load(std::sync::atomic::Ordering::SeqCst), 0);
        // Still open: nothing more to read, and no end either.
        let mut more = [0u8; 1];
        assert!(
            tokio::time::timeout(Duration::from_millis(200), container_side.read(&mut more))
                .await
                .is_err(),
            "the container's stdin ended though stdinOnce is off"
        );
    }

    #[test]
    fn places_forget_only_the_run_that_exited() {
        let places = ExecPlaces::default();
        let (_tx, done) = tokio::sync::watch::channel(None);
        let place = |pgid| ExecPlace {
            pgid,
            attach: Arc::new(Attachable::new(
                &AttachConfig::default(),
                output_channel(),
                None,
                None,
                done.clone(),
            )),
            env: Vec::new(),
            cwd: PathBuf::from("/"),
            join_group: true,
            oci: None,
            enter: Arc::new(|command| command),
        };
        places.started("uid", "c", place(10));
        places.started("uid", "c", place(20));
        places.exited("uid", "c", 10);
        assert_eq!(places.find("uid", "c").map(|p| p.pgid), Some(20));
        places.exited("uid", "c", 20);
        assert!(places.find("uid", "c").is_none());
        assert_eq!(
            container_not_found("c").body,
            "container not found (\"c\")",
            "the kubelet's text"
        );
    }
}
