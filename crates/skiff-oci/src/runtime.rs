//! The runtime boundary: what the node agent asks of an OCI runtime, whichever one it is.

use std::fmt;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::process::{Child, ExitStatus, Stdio};

use nix::sys::signal::Signal;

/// A container's name as runtimes know it: 1 to 128 characters of ASCII letters, digits,
/// `_`, `-` and `.`, not starting with `.` or `-`, so it is always one safe path component.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ContainerId(String);

impl ContainerId {
    /// Checks `id` against the rule above.
    pub fn new(id: impl Into<String>) -> Result<Self, OciError> {
        let id = id.into();
        let first_ok = id
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
        let rest_ok = id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
        if !first_ok || !rest_ok || id.len() > 128 {
            return Err(OciError::InvalidId(id));
        }
        Ok(ContainerId(id))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ContainerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A container's lifecycle state, as the OCI runtime spec names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ContainerStatus {
    /// Being created.
    Creating,
    /// Created, its process waiting for `start`.
    Created,
    /// Its process is running.
    Running,
    /// Frozen.
    Paused,
    /// Its process has exited.
    Stopped,
}

impl ContainerStatus {
    /// Reads a status as runtimes print it in `state`.
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "creating" => ContainerStatus::Creating,
            "created" => ContainerStatus::Created,
            "running" => ContainerStatus::Running,
            "paused" => ContainerStatus::Paused,
            "stopped" => ContainerStatus::Stopped,
            _ => return None,
        })
    }
}

/// What the runtime knows of one container.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerState {
    /// The container.
    pub id: ContainerId,
    /// Its lifecycle state.
    pub status: ContainerStatus,
    /// Its PID 1 on the host, while it has one.
    pub pid: Option<i32>,
    /// Its bundle directory.
    pub bundle: PathBuf,
    /// How its process ended, once stopped and reaped by this process: the exit code, or
    /// 128 + the signal that killed it (137 for SIGKILL), as Kubernetes reports it. `None`
    /// while it runs, or when another process reaped it (this one was not its subreaper).
    pub exit_code: Option<i32>,
}

/// The standard streams of a container's or an exec'd process, given by the caller: files,
/// pipe ends, or null. A container outlives the `create` call, so its streams must be ones
/// the caller keeps the other end of (a file, `std::io::pipe()`), not `Stdio::piped()`.
#[derive(Debug)]
pub struct ProcessStdio {
    /// Standard input.
    pub stdin: Stdio,
    /// Standard output.
    pub stdout: Stdio,
    /// Standard error.
    pub stderr: Stdio,
}

impl ProcessStdio {
    /// All three streams connected to `/dev/null`.
    pub fn null() -> Self {
        ProcessStdio {
            stdin: Stdio::null(),
            stdout: Stdio::null(),
            stderr: Stdio::null(),
        }
    }
}

/// A process to run inside a running container (exec probes, `kubectl exec`). It inherits
/// the container's user, capabilities and namespaces.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExecProcess {
    /// The command and its arguments.
    pub args: Vec<String>,
    /// Extra `NAME=value` entries on top of the container's environment.
    pub env: Vec<String>,
    /// The working directory; `None` keeps the container's.
    pub cwd: Option<String>,
    /// The caller's stdin is a terminal to become the process's controlling one (for
    /// `kubectl exec -it`): the runtime process starts a session of its own on it, which the
    /// exec'd process inherits unless the runtime starts another.
    pub terminal: bool,
}

/// A process started by [`OciRuntime::exec`]: the runtime's own foreground process, which
/// lives as long as the exec'd process does and ends with its exit code.
#[derive(Debug)]
pub struct ExecChild {
    /// The runtime process; its piped streams (if asked for) are the exec'd process's.
    pub child: Child,
}

impl ExecChild {
    /// Waits for the exec'd process to end and returns its exit code (128 + signal when a
    /// signal ended it).
    pub fn wait(&mut self) -> Result<i32, OciError> {
        let status = self.child.wait().map_err(|source| OciError::Spawn {
            program: "exec".into(),
            source,
        })?;
        Ok(exit_code_of(status))
    }
}

/// The exit code Kubernetes reports for a process status: the code, or 128 + the signal.
pub fn exit_code_of(status: ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => code,
        (None, Some(signal)) => 128 + signal,
        (None, None) => 128,
    }
}

/// What a container reads, beside the output pipes it writes: what `stdin` and `tty` in a
/// pod's container ask for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct InputRequest {
    /// A pipe as its stdin, whose write end the owner keeps (else `/dev/null`).
    pub stdin: bool,
    /// A terminal for all three streams, whose master end the owner keeps; the bundle's
    /// `process.terminal` must then be set.
    pub terminal: bool,
}

/// The owner's ends of a container's input.
#[derive(Debug, Default)]
pub struct HeldInput {
    /// The write end of its stdin pipe.
    pub stdin: Option<OwnedFd>,
    /// The master end of its terminal.
    pub terminal: Option<OwnedFd>,
}

/// What a restarted owner takes back of a running container's streams.
#[derive(Debug)]
pub struct RecoveredStreams {
    /// The read ends of its stdout and stderr pipes.
    pub output: [OwnedFd; 2],
    /// Its input's ends, when it has any still open.
    pub input: HeldInput,
}

/// A stdin pipe when `wanted`: the container's end as its stdin and the owner's write end;
/// else `/dev/null` and nothing.
pub(crate) fn stdin_pipe(wanted: bool) -> std::io::Result<(Stdio, HeldInput)> {
    if !wanted {
        return Ok((Stdio::null(), HeldInput::default()));
    }
    let (read, write) = std::io::pipe()?;
    Ok((
        Stdio::from(OwnedFd::from(read)),
        HeldInput {
            stdin: Some(OwnedFd::from(write)),
            terminal: None,
        },
    ))
}

/// Why a runtime operation failed.
#[derive(Debug, thiserror::Error)]
pub enum OciError {
    /// The id is not a valid container id.
    #[error("invalid container id {0:?}")]
    InvalidId(String),
    /// No such container in this runtime's state directory.
    #[error("container {0} does not exist")]
    NotFound(ContainerId),
    /// The runtime program could not be run.
    #[error("running {program}: {source}")]
    Spawn {
        /// The program.
        program: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The runtime ran and refused or failed.
    #[error("{runtime} {operation} {id}: {message}")]
    Runtime {
        /// Which runtime (`crun`, `runc`, `embedded`).
        runtime: String,
        /// The operation (`create`, `start`, ...).
        operation: &'static str,
        /// The container.
        id: ContainerId,
        /// What the runtime said.
        message: String,
    },
    /// The runtime answered something this crate cannot read.
    #[error("unexpected answer from {runtime}: {message}")]
    Protocol {
        /// Which runtime.
        runtime: String,
        /// What was wrong.
        message: String,
    },
    /// Reading or writing this crate's own state failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The request needs something this runtime does not offer.
    #[error("unsupported: {0}")]
    Unsupported(String),
}

/// An OCI runtime: turns bundles into running containers and manages them by id. Calls block
/// (each runs a short-lived runtime process); async callers run them on a blocking thread.
pub trait OciRuntime: Send + Sync {
    /// A short name for messages (`crun`, `runc`, `embedded`).
    fn name(&self) -> &str;

    /// Creates the container `id` from the bundle directory (namespaces, mounts, cgroup, its
    /// process waiting to be started) with the given streams.
    fn create(
        &self,
        id: &ContainerId,
        bundle: &std::path::Path,
        stdio: ProcessStdio,
    ) -> Result<(), OciError>;

    /// Starts the created container's process.
    fn start(&self, id: &ContainerId) -> Result<(), OciError>;

    /// The container's state, reaping its process if it has ended.
    fn state(&self, id: &ContainerId) -> Result<ContainerState, OciError>;

    /// Sends `signal` to the container's PID 1, or to every process in it when `all`.
    fn kill(&self, id: &ContainerId, signal: Signal, all: bool) -> Result<(), OciError>;

    /// Deletes the stopped container (or, with `force`, kills and deletes a running one):
    /// its state directory, cgroup and mounts go.
    fn delete(&self, id: &ContainerId, force: bool) -> Result<(), OciError>;

    /// Runs `process` inside the running container with the given streams; the returned
    /// child ends when the process does.
    fn exec(
        &self,
        id: &ContainerId,
        process: &ExecProcess,
        stdio: ProcessStdio,
    ) -> Result<ExecChild, OciError>;

    /// Creates the container with its stdout and stderr on `writers`, the write ends of two
    /// pipes whose read ends are `readers`, and with the input `input` asks for: a stdin pipe,
    /// or a terminal (the runtime's console socket) that then carries all three streams. A
    /// runtime whose containers outlive their owner keeps copies of the read ends and of the
    /// input's ends, so the container's writes never fail while the owner is down and
    /// [`OciRuntime::recover_output`] hands them back. Returns the input's ends for the owner:
    /// the stdin pipe's write end, the terminal's controlling (master) end. By default only
    /// `create`, with a stdin pipe of the caller's and no terminal.
    fn create_with_output(
        &self,
        id: &ContainerId,
        bundle: &std::path::Path,
        writers: [OwnedFd; 2],
        readers: &[OwnedFd; 2],
        input: InputRequest,
    ) -> Result<HeldInput, OciError> {
        let _ = readers;
        if input.terminal {
            return Err(OciError::Unsupported(format!(
                "a terminal for containers of {}",
                self.name()
            )));
        }
        let [stdout, stderr] = writers;
        let (stdin, held) = stdin_pipe(input.stdin).map_err(|source| OciError::Io {
            path: PathBuf::from("pipe"),
            source,
        })?;
        let stdio = ProcessStdio {
            stdin,
            stdout: Stdio::from(stdout),
            stderr: Stdio::from(stderr),
        };
        self.create(id, bundle, stdio)?;
        Ok(held)
    }

    /// Closes the container's stdin for good (`stdinOnce` after the first attach session):
    /// the runtime lets go of the copy of its write end it keeps, if any.
    fn close_stdin(&self, id: &ContainerId) -> Result<(), OciError> {
        let _ = id;
        Ok(())
    }

    /// Every container this runtime has a record of, running or not; by default none known.
    fn list(&self) -> Vec<ContainerId> {
        Vec::new()
    }

    /// The PID of the process that keeps this runtime's containers running across restarts
    /// of their owner (the node's monitor), when there is one: its descendants are
    /// containers to adopt, not leftovers to kill.
    fn keeper_pid(&self) -> Option<i32> {
        None
    }

    /// The read ends of a running container's stdout and stderr pipes, and its input's ends
    /// (see [`OciRuntime::create_with_output`]), for an owner that restarted; `None` when the
    /// runtime kept none (the container cannot be adopted).
    fn recover_output(&self, id: &ContainerId) -> Result<Option<RecoveredStreams>, OciError> {
        let _ = id;
        Ok(None)
    }

    /// The PID 1 of a container just created (before `start`). By default asked of the
    /// runtime's `state`; a runtime that knows it without running anything says so faster.
    fn created_pid(&self, id: &ContainerId) -> Result<Option<i32>, OciError> {
        Ok(self.state(id)?.pid)
    }

    /// Waits, blocking, for the container's PID 1 `pid` to end and returns its exit code
    /// (128 + signal), or -1 when it cannot be known. By default `pid` is this process's
    /// child (its subreaper) and is reaped by PID, never with a wildcard wait.
    fn wait_exit(&self, id: &ContainerId, pid: i32) -> i32 {
        let _ = id;
        wait_for_child(pid)
    }
}

/// Waits for the child `pid` to end and returns Kubernetes' exit code, -1 when it cannot.
pub fn wait_for_child(pid: i32) -> i32 {
    use nix::sys::wait::{waitpid, WaitStatus};
    loop {
        match waitpid(nix::unistd::Pid::from_raw(pid), None) {
            Ok(WaitStatus::Exited(_, code)) => return code,
            Ok(WaitStatus::Signaled(_, signal, _)) => return 128 + signal as i32,
            Ok(_) | Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => return -1,
        }
    }
}
