//! [`CliRuntime`]: an OCI runtime driven through runc's command line, which `crun`, `runc`
//! and Skiff's own embedded shim ([`crate::shim`]) all speak.
//!
//! Nothing of ours stays running beside a container: the runtime process exits once the
//! container is created. The container's PID 1 is then re-parented to the nearest
//! subreaper, which [`CliRuntime::new`] makes this process, so it alone can collect the exit
//! code; [`OciRuntime::state`] collects it and records it beside the runtime's state.
//!
//! Two consequences for the process that owns the runtime: every orphan among its
//! descendants now comes back to it, so it must collect the ones it does not know (or they
//! stay zombies); and a container that ends while that process is down (a restart of Skiff)
//! is collected by the system's init instead, so its exit code is lost and `state` reports
//! it `Stopped` without one. [`CliRuntime::with_monitor`] avoids both: one node-wide
//! [`crate::monitor`] runs `create`, is the containers' subreaper and records their exit
//! codes (where containerd keeps a shim of about 10 MB per container).
//!
//! Layout under the root directory given to [`CliRuntime::new`]:
//! - `state/`: the runtime's own `--root` (one directory per container);
//! - `containers/<id>/pid`: the container's PID 1 as the runtime wrote it at `create`;
//! - `containers/<id>/exit-code`: its exit code once reaped;
//! - `logs/`: the runtime's log of one call, read for its error message, then removed.

use std::ffi::OsString;
use std::fs;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::Signal;
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use crate::monitor::MonitorClient;
use crate::runtime::{
    ContainerId, ContainerState, ContainerStatus, ExecChild, ExecProcess, HeldInput, InputRequest,
    OciError, OciRuntime, ProcessStdio, RecoveredStreams,
};

/// An OCI runtime run as a program per operation: `crun`, `runc`, or the embedded shim.
#[derive(Debug)]
pub struct CliRuntime {
    name: String,
    program: PathBuf,
    leading_args: Vec<OsString>,
    root: PathBuf,
    log_counter: AtomicU64,
    hide_unified_cgroup: bool,
    /// The node's monitor, which runs `create` so containers outlive this process.
    monitor: Option<MonitorClient>,
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> OciError {
    let path = path.to_path_buf();
    move |source| OciError::Io { path, source }
}

impl CliRuntime {
    /// A runtime running `program` (after `leading_args`, such as a hidden subcommand) with
    /// its state under `root`. Makes this process a child subreaper, so that containers'
    /// processes, orphaned when the runtime exits, are re-parented here and their exit codes
    /// can be collected.
    pub fn new(
        name: impl Into<String>,
        program: impl Into<PathBuf>,
        leading_args: Vec<OsString>,
        root: impl Into<PathBuf>,
    ) -> Result<Self, OciError> {
        let root = root.into();
        for dir in ["state", "containers", "logs"] {
            let path = root.join(dir);
            fs::create_dir_all(&path).map_err(io_error(&path))?;
        }
        nix::sys::prctl::set_child_subreaper(true).map_err(|errno| OciError::Io {
            path: PathBuf::from("prctl(PR_SET_CHILD_SUBREAPER)"),
            source: errno.into(),
        })?;
        // The runtimes resolve their root to an absolute path; give them one to begin with.
        let root = fs::canonicalize(&root).map_err(io_error(&root))?;
        Ok(CliRuntime {
            name: name.into(),
            program: program.into(),
            leading_args,
            root,
            log_counter: AtomicU64::new(0),
            hide_unified_cgroup: false,
            monitor: None,
        })
    }

    /// `crun` found on `PATH`, with its state under `root`.
    ///
    /// crun refuses a hybrid cgroup layout (v1 controllers, plus a v2 hierarchy at
    /// `/sys/fs/cgroup/unified`) once that v2 hierarchy has any controller: "cgroups in hybrid
    /// mode not supported". On such a machine every crun call runs in a mount namespace of
    /// its own where the v2 mount is detached, so crun sees, and manages, the v1 hierarchies
    /// alone, as runc does there.
    pub fn crun(root: impl Into<PathBuf>) -> Result<Self, OciError> {
        let mut runtime = CliRuntime::new("crun", "crun", Vec::new(), root)?;
        runtime.hide_unified_cgroup = hybrid_with_v2_controllers();
        Ok(runtime)
    }

    /// The runtime program at `program` (crun or runc, by path), with its state under
    /// `root`; crun gets the hybrid-cgroup workaround of [`CliRuntime::crun`].
    pub fn at_path(
        program: impl Into<PathBuf>,
        root: impl Into<PathBuf>,
    ) -> Result<Self, OciError> {
        let program = program.into();
        let name = program
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| program.display().to_string());
        let is_crun = name.starts_with("crun");
        let mut runtime = CliRuntime::new(name, program, Vec::new(), root)?;
        runtime.hide_unified_cgroup = is_crun && hybrid_with_v2_controllers();
        Ok(runtime)
    }

    /// `runc` found on `PATH`, with its state under `root`.
    pub fn runc(root: impl Into<PathBuf>) -> Result<Self, OciError> {
        CliRuntime::new("runc", "runc", Vec::new(), root)
    }

    /// Has the node's [`crate::monitor`] (started as `program` with `leading_args`, its
    /// hidden subcommand, when none runs) create the containers, so that they keep running
    /// and their exit codes are recorded while this process is down or restarting.
    pub fn with_monitor(
        mut self,
        program: impl Into<PathBuf>,
        leading_args: Vec<OsString>,
    ) -> Self {
        self.monitor = Some(MonitorClient::new(
            self.root.clone(),
            program.into(),
            leading_args,
        ));
        self
    }

    /// Connects to the running monitor, or starts one, so it stays up while this process
    /// runs; nothing to do without a monitor.
    pub fn connect_monitor(&self) -> Result<(), OciError> {
        match &self.monitor {
            Some(monitor) => monitor.connect(),
            None => Ok(()),
        }
    }

    /// The directory passed to the runtime as `--root`.
    pub fn state_root(&self) -> PathBuf {
        self.root.join("state")
    }

    fn container_dir(&self, id: &ContainerId) -> PathBuf {
        self.root.join("containers").join(id.as_str())
    }

    fn exists(&self, id: &ContainerId) -> bool {
        self.state_root().join(id.as_str()).exists() || self.container_dir(id).exists()
    }

    /// A command for `operation` with the global options set, logging to a fresh file.
    fn command(&self, id: &ContainerId, operation: &str) -> (Command, PathBuf) {
        let serial = self.log_counter.fetch_add(1, Ordering::Relaxed);
        let log = self.root.join("logs").join(format!(
            "{}.{operation}.{}.{serial}.json",
            id.as_str(),
            std::process::id()
        ));
        let mut command = self.base_command();
        command
            .arg("--log")
            .arg(&log)
            .arg("--log-format")
            .arg("json")
            .arg(operation);
        (command, log)
    }

    /// A command for `operation` logging to its standard error (for `exec`, whose runtime
    /// process lives as long as the exec'd one: its errors reach the caller's stream).
    fn command_without_log(&self, operation: &str) -> Command {
        let mut command = self.base_command();
        command.arg(operation);
        command
    }

    /// The program with its leading arguments and `--root`.
    fn base_command(&self) -> Command {
        let mut command = Command::new(&self.program);
        command
            .args(&self.leading_args)
            .arg("--root")
            .arg(self.state_root());
        if self.hide_unified_cgroup {
            hidden_cgroup2::apply(&mut command);
        }
        command
    }

    /// Runs a command that does not outlive the call, returning its standard output.
    fn run(
        &self,
        id: &ContainerId,
        operation: &'static str,
        mut command: Command,
        log: &Path,
    ) -> Result<Vec<u8>, OciError> {
        command.stdin(Stdio::null());
        let output = command.output().map_err(|source| OciError::Spawn {
            program: self.program.display().to_string(),
            source,
        });
        let message = read_log(log);
        let _ = fs::remove_file(log);
        let output = output?;
        if output.status.success() {
            return Ok(output.stdout);
        }
        let stderr = String::from_utf8_lossy(&output.stderr);
        Err(self.failure(id, operation, message, &stderr))
    }

    fn failure(
        &self,
        id: &ContainerId,
        operation: &'static str,
        log_message: String,
        stderr: &str,
    ) -> OciError {
        if !self.exists(id) && operation != "create" {
            return OciError::NotFound(id.clone());
        }
        let message = if log_message.is_empty() {
            stderr.trim().to_string()
        } else {
            log_message
        };
        OciError::Runtime {
            runtime: self.name.clone(),
            operation,
            id: id.clone(),
            message,
        }
    }

    /// Collects the exit code of the container's PID 1 if it has ended and this process is
    /// its parent, recording it; returns the recorded code.
    fn reap(&self, id: &ContainerId) -> Result<Option<i32>, OciError> {
        let dir = self.container_dir(id);
        let exit_path = dir.join("exit-code");
        if let Ok(text) = fs::read_to_string(&exit_path) {
            if let Ok(code) = text.trim().parse() {
                return Ok(Some(code));
            }
        }
        let Some(pid) = read_pid(&dir.join("pid")) else {
            return Ok(None);
        };
        let code = match waitpid(Pid::from_raw(pid), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(_, code)) => code,
            Ok(WaitStatus::Signaled(_, signal, _)) => 128 + signal as i32,
            // Still running, or not our child (reaped elsewhere, or we are not its subreaper).
            Ok(_) | Err(Errno::ECHILD) => return Ok(None),
            Err(errno) => {
                return Err(OciError::Io {
                    path: PathBuf::from(format!("waitpid({pid})")),
                    source: errno.into(),
                })
            }
        };
        fs::write(&exit_path, code.to_string()).map_err(io_error(&exit_path))?;
        Ok(Some(code))
    }

    /// Whether the container's recorded PID 1 is an unreaped child of this process.
    fn is_our_child(&self, id: &ContainerId) -> bool {
        let Some(pid) = read_pid(&self.container_dir(id).join("pid")) else {
            return false;
        };
        let flags = WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT | WaitPidFlag::WEXITED;
        nix::sys::wait::waitid(nix::sys::wait::Id::Pid(Pid::from_raw(pid)), flags).is_ok()
    }
}

/// Whether this machine mounts cgroups in hybrid mode with a controller on the v2 side.
fn hybrid_with_v2_controllers() -> bool {
    fs::read_to_string(Path::new(hidden_cgroup2::UNIFIED).join("cgroup.controllers"))
        .is_ok_and(|controllers| !controllers.trim().is_empty())
}

/// Makes `command` run without the v2 mount of a hybrid cgroup layout.
pub(crate) fn hide_unified_cgroup(command: &mut Command) {
    hidden_cgroup2::apply(command);
}

/// Running a runtime without the v2 mount of a hybrid cgroup layout.
mod hidden_cgroup2 {
    // unshare(2), mount(2) and umount2(2) in the forked child before it executes the
    // runtime: plain system calls, safe between fork and exec.
    #![allow(unsafe_code)]

    use std::os::unix::process::CommandExt;
    use std::process::Command;

    use nix::mount::{mount, umount2, MntFlags, MsFlags};
    use nix::sched::{unshare, CloneFlags};

    /// Where hybrid layouts mount the v2 hierarchy.
    pub const UNIFIED: &str = "/sys/fs/cgroup/unified";

    /// Makes `command` run in a new mount namespace, private to it, without [`UNIFIED`].
    pub fn apply(command: &mut Command) {
        // SAFETY: the closure only makes system calls (no allocation, no locks), as the
        // child of a fork must.
        unsafe {
            command.pre_exec(|| {
                unshare(CloneFlags::CLONE_NEWNS)?;
                mount(
                    None::<&str>,
                    "/",
                    None::<&str>,
                    MsFlags::MS_REC | MsFlags::MS_PRIVATE,
                    None::<&str>,
                )?;
                umount2(UNIFIED, MntFlags::MNT_DETACH)?;
                Ok(())
            });
        }
    }
}

/// Running a runtime as the leader of a new session whose controlling terminal is its stdin.
mod controlling_terminal {
    // setsid(2) and ioctl(2) in the forked child before it executes the runtime: plain system
    // calls, safe between fork and exec.
    #![allow(unsafe_code)]

    use std::os::unix::process::CommandExt;
    use std::process::Command;

    /// Makes `command` start a new session and take its stdin (a terminal) as the session's
    /// controlling terminal, as a login does.
    pub fn apply(command: &mut Command) {
        // SAFETY: the closure only makes system calls (no allocation, no locks), as the
        // child of a fork must.
        unsafe {
            command.pre_exec(|| {
                nix::unistd::setsid()?;
                if libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
}

/// How long a forced delete waits for the killed process to be collected.
const REAP_AFTER_KILL: Duration = Duration::from_secs(5);

fn read_pid(path: &Path) -> Option<i32> {
    fs::read_to_string(path)
        .ok()?
        .trim()
        .parse()
        .ok()
        .filter(|pid| *pid > 0)
}

/// The error messages of a runtime's JSON log (`{"level":"error","msg":...}` lines); the raw
/// text when it is not JSON.
fn read_log(path: &Path) -> String {
    let Ok(text) = fs::read_to_string(path) else {
        return String::new();
    };
    let mut messages = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        match serde_json::from_str::<serde_json::Value>(line) {
            Ok(entry) => {
                let level = entry["level"].as_str().unwrap_or("error");
                if matches!(level, "error" | "fatal" | "panic") {
                    if let Some(msg) = entry["msg"].as_str() {
                        messages.push(msg.trim().to_string());
                    }
                }
            }
            Err(_) => messages.push(line.trim().to_string()),
        }
    }
    messages.join("; ")
}

/// The fields of a runtime's `state` output this crate reads.
#[derive(serde::Deserialize)]
struct StateOutput {
    status: String,
    #[serde(default)]
    pid: Option<i32>,
    #[serde(default)]
    bundle: PathBuf,
}

impl OciRuntime for CliRuntime {
    fn name(&self) -> &str {
        &self.name
    }

    fn create(&self, id: &ContainerId, bundle: &Path, stdio: ProcessStdio) -> Result<(), OciError> {
        let dir = self.container_dir(id);
        if dir.exists() {
            return Err(OciError::Runtime {
                runtime: self.name.clone(),
                operation: "create",
                id: id.clone(),
                message: "a container with this id already exists".into(),
            });
        }
        fs::create_dir_all(&dir).map_err(io_error(&dir))?;
        let pid_file = dir.join("pid");
        let (mut command, log) = self.command(id, "create");
        command
            .arg("--bundle")
            .arg(bundle)
            .arg("--pid-file")
            .arg(&pid_file)
            .arg(id.as_str())
            .stdin(stdio.stdin)
            .stdout(stdio.stdout)
            .stderr(stdio.stderr);
        let status = command.status().map_err(|source| OciError::Spawn {
            program: self.program.display().to_string(),
            source,
        });
        let message = read_log(&log);
        let _ = fs::remove_file(&log);
        match status {
            Ok(status) if status.success() => Ok(()),
            Ok(status) => {
                let _ = fs::remove_dir_all(&dir);
                Err(OciError::Runtime {
                    runtime: self.name.clone(),
                    operation: "create",
                    id: id.clone(),
                    message: if message.is_empty() {
                        format!("exited with {status}")
                    } else {
                        message
                    },
                })
            }
            Err(error) => {
                let _ = fs::remove_dir_all(&dir);
                Err(error)
            }
        }
    }

    fn start(&self, id: &ContainerId) -> Result<(), OciError> {
        let (mut command, log) = self.command(id, "start");
        command.arg(id.as_str());
        self.run(id, "start", command, &log).map(drop)
    }

    fn state(&self, id: &ContainerId) -> Result<ContainerState, OciError> {
        if !self.exists(id) {
            return Err(OciError::NotFound(id.clone()));
        }
        // Reap first: an unreaped zombie still looks alive to some runtimes.
        let exit_code = self.reap(id)?;
        let (mut command, log) = self.command(id, "state");
        command.arg(id.as_str());
        let stdout = self.run(id, "state", command, &log)?;
        let parsed: StateOutput =
            serde_json::from_slice(&stdout).map_err(|e| OciError::Protocol {
                runtime: self.name.clone(),
                message: format!("state output: {e}"),
            })?;
        let mut status =
            ContainerStatus::parse(&parsed.status).ok_or_else(|| OciError::Protocol {
                runtime: self.name.clone(),
                message: format!("unknown status {:?}", parsed.status),
            })?;
        let exit_code = match (exit_code, status) {
            // It may have ended between the reap above and the runtime's look.
            (None, ContainerStatus::Stopped) => self.reap(id)?,
            (code, _) => code,
        };
        if exit_code.is_some() {
            status = ContainerStatus::Stopped;
        }
        let pid = match status {
            ContainerStatus::Stopped => None,
            _ => parsed.pid.filter(|pid| *pid > 0),
        };
        Ok(ContainerState {
            id: id.clone(),
            status,
            pid,
            bundle: parsed.bundle,
            exit_code,
        })
    }

    fn kill(&self, id: &ContainerId, signal: Signal, all: bool) -> Result<(), OciError> {
        let (mut command, log) = self.command(id, "kill");
        if all {
            command.arg("--all");
        }
        command.arg(id.as_str()).arg((signal as i32).to_string());
        self.run(id, "kill", command, &log).map(drop)
    }

    fn delete(&self, id: &ContainerId, force: bool) -> Result<(), OciError> {
        if !self.exists(id) {
            return Err(OciError::NotFound(id.clone()));
        }
        // Collect the exit code before the runtime forgets the container, so that its
        // process does not linger as a zombie.
        let _ = self.reap(id);
        if let Some(monitor) = &self.monitor {
            // A later run of the same id must not get this one's exit code.
            let _ = monitor.forget(id);
        }
        if self.state_root().join(id.as_str()).exists() {
            let (mut command, log) = self.command(id, "delete");
            if force {
                command.arg("--force");
            }
            command.arg(id.as_str());
            self.run(id, "delete", command, &log)?;
        }
        if force {
            // A forced delete killed the process: collect it so that no zombie is left.
            let deadline = Instant::now() + REAP_AFTER_KILL;
            while self.reap(id)?.is_none() && self.is_our_child(id) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        let dir = self.container_dir(id);
        fs::remove_dir_all(&dir).map_err(io_error(&dir))
    }

    fn exec(
        &self,
        id: &ContainerId,
        process: &ExecProcess,
        stdio: ProcessStdio,
    ) -> Result<ExecChild, OciError> {
        if process.args.is_empty() {
            return Err(OciError::Unsupported("exec with no command".into()));
        }
        if !self.exists(id) {
            return Err(OciError::NotFound(id.clone()));
        }
        let mut command = self.command_without_log("exec");
        for entry in &process.env {
            command.arg("--env").arg(entry);
        }
        if let Some(cwd) = &process.cwd {
            command.arg("--cwd").arg(cwd);
        }
        if process.terminal {
            controlling_terminal::apply(&mut command);
        }
        command
            .arg(id.as_str())
            .args(&process.args)
            .stdin(stdio.stdin)
            .stdout(stdio.stdout)
            .stderr(stdio.stderr);
        let child = command.spawn().map_err(|source| OciError::Spawn {
            program: self.program.display().to_string(),
            source,
        })?;
        Ok(ExecChild { child })
    }

    fn create_with_output(
        &self,
        id: &ContainerId,
        bundle: &Path,
        writers: [OwnedFd; 2],
        readers: &[OwnedFd; 2],
        input: InputRequest,
    ) -> Result<HeldInput, OciError> {
        let Some(monitor) = &self.monitor else {
            if input.terminal {
                return Err(OciError::Unsupported(
                    "a terminal for a container needs the node monitor".into(),
                ));
            }
            let [stdout, stderr] = writers;
            let (stdin, held) =
                crate::runtime::stdin_pipe(input.stdin).map_err(io_error(Path::new("pipe")))?;
            let stdio = ProcessStdio {
                stdin,
                stdout: Stdio::from(stdout),
                stderr: Stdio::from(stderr),
            };
            return self.create(id, bundle, stdio).map(|()| held);
        };
        let dir = self.container_dir(id);
        if dir.exists() {
            return Err(OciError::Runtime {
                runtime: self.name.clone(),
                operation: "create",
                id: id.clone(),
                message: "a container with this id already exists".into(),
            });
        }
        fs::create_dir_all(&dir).map_err(io_error(&dir))?;
        let (mut command, log) = self.command(id, "create");
        command
            .arg("--bundle")
            .arg(bundle)
            .arg("--pid-file")
            .arg(dir.join("pid"));
        let console_socket = input.terminal.then(crate::console::fresh_path);
        if let Some(path) = &console_socket {
            command.arg("--console-socket").arg(path);
        }
        command.arg(id.as_str());
        let argv: Vec<OsString> = std::iter::once(command.get_program().to_owned())
            .chain(command.get_args().map(ToOwned::to_owned))
            .collect();
        let [stdout, stderr] = writers;
        let clone = |fd: &OwnedFd| fd.try_clone().map_err(io_error(&dir));
        let fds = [stdout, stderr, clone(&readers[0])?, clone(&readers[1])?];
        let code = monitor.create(
            id,
            argv,
            self.hide_unified_cgroup,
            fds,
            input,
            console_socket,
        );
        let message = read_log(&log);
        let _ = fs::remove_file(&log);
        match code {
            Ok((0, held)) => Ok(held),
            Ok((code, _)) => {
                let _ = fs::remove_dir_all(&dir);
                Err(OciError::Runtime {
                    runtime: self.name.clone(),
                    operation: "create",
                    id: id.clone(),
                    message: if message.is_empty() {
                        format!("exited with code {code}")
                    } else {
                        message
                    },
                })
            }
            Err(error) => {
                let _ = fs::remove_dir_all(&dir);
                Err(error)
            }
        }
    }

    fn list(&self) -> Vec<ContainerId> {
        let Ok(entries) = fs::read_dir(self.root.join("containers")) else {
            return Vec::new();
        };
        let mut ids: Vec<ContainerId> = entries
            .filter_map(Result::ok)
            .filter_map(|e| ContainerId::new(e.file_name().to_str()?).ok())
            .collect();
        ids.sort_by(|a, b| a.as_str().cmp(b.as_str()));
        ids
    }

    fn keeper_pid(&self) -> Option<i32> {
        self.monitor.as_ref()?.pid()
    }

    fn recover_output(&self, id: &ContainerId) -> Result<Option<RecoveredStreams>, OciError> {
        match &self.monitor {
            Some(monitor) => monitor.output(id),
            None => Ok(None),
        }
    }

    fn close_stdin(&self, id: &ContainerId) -> Result<(), OciError> {
        match &self.monitor {
            Some(monitor) => monitor.close_stdin(id),
            None => Ok(()),
        }
    }

    /// The PID the runtime's `create` wrote to the container's `--pid-file`, without running
    /// the runtime again (each run of the embedded one is a start of the whole binary);
    /// `state` when the file is not there.
    fn created_pid(&self, id: &ContainerId) -> Result<Option<i32>, OciError> {
        match read_pid(&self.container_dir(id).join("pid")) {
            Some(pid) => Ok(Some(pid)),
            None => Ok(self.state(id)?.pid),
        }
    }

    fn wait_exit(&self, id: &ContainerId, pid: i32) -> i32 {
        if self.monitor.is_none() {
            return crate::runtime::wait_for_child(pid);
        }
        // The monitor is the parent: wait for the process to go, then for the code it
        // records (it reaps at once; a monitor that died leaves none).
        crate::monitor::wait_until_gone(pid);
        let exit_path = self.container_dir(id).join("exit-code");
        let deadline = Instant::now() + RECORDED_EXIT_LIMIT;
        loop {
            let recorded = fs::read_to_string(&exit_path)
                .ok()
                .and_then(|t| t.trim().parse::<i32>().ok());
            if let Some(code) = recorded {
                return code;
            }
            if Instant::now() >= deadline {
                return -1;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

/// How long an ended container's recorded exit code may take to appear.
const RECORDED_EXIT_LIMIT: Duration = Duration::from_secs(5);
