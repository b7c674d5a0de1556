//! The node's container monitor: one small process that outlives its owner, so that
//! containers keep running, and their exit codes are kept, while the owner restarts.
//!
//! The owner (the node agent, through [`CliRuntime::with_monitor`](crate::CliRuntime)) asks
//! the monitor to run the runtime's `create`; the monitor is a child subreaper, so each
//! container's PID 1, orphaned when `create` exits, becomes the monitor's child. The monitor
//! reaps it and writes its exit code, atomically, to `containers/<id>/exit-code` under the
//! runtime's root, where [`OciRuntime::state`](crate::OciRuntime::state) reads it. It also
//! holds a copy of the read ends of the container's output pipes, so that the container's
//! writes neither fail nor kill it while the owner is down, and a restarted owner takes them
//! back ([`MonitorClient::output`]) and goes on reading. For a container with `stdin`, it
//! makes the stdin pipe and keeps its write end; for one with a terminal, it receives the
//! terminal's master end from the runtime's console socket and keeps it: the container's
//! input stays open while the owner is down, and a restarted owner takes it back too.
//!
//! It is single-threaded with no async runtime (it forks the runtime's processes), started in
//! a session of its own, and exits once it has no container and no owner connected. Requests
//! are JSON datagrams on a `SOCK_SEQPACKET` unix socket, file descriptors alongside.

// sigprocmask(2) in the forked child before it executes the runtime, to undo the monitor's
// blocked SIGCHLD: a plain system call, safe between fork and exec.
#![allow(unsafe_code)]

use std::collections::HashMap;
use std::ffi::OsString;
use std::fs;
use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::socket::{
    accept4, bind, connect, listen, recvmsg, sendmsg, socket, AddressFamily, Backlog,
    ControlMessage, ControlMessageOwned, MsgFlags, SockFlag, SockType, UnixAddr,
};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};

use crate::console::ConsoleSocket;
use crate::runtime::{ContainerId, HeldInput, InputRequest, OciError, RecoveredStreams};

/// The largest request or reply, in bytes.
const MAX_MESSAGE: usize = 64 * 1024;
/// How long a monitor nobody ever connected to waits before it exits.
const UNCLAIMED_LIMIT: Duration = Duration::from_secs(30);
/// How long an owner waits for a monitor it started to listen.
const START_LIMIT: Duration = Duration::from_secs(5);
/// How long the monitor waits, after `create`, for the terminal on the console socket.
const CONSOLE_LIMIT: Duration = Duration::from_secs(5);

/// A request from the owner.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
enum Request {
    /// Run the runtime's `create` (`argv`), with the four descriptors sent alongside:
    /// the output pipes' write ends (stdout, stderr), then their read ends, which it keeps.
    /// With `input`, it also makes a stdin pipe, or receives a terminal on `console_socket`
    /// (which `argv` names to the runtime), keeps their ends and sends copies back.
    Create {
        id: String,
        argv: Vec<OsString>,
        hide_unified_cgroup: bool,
        #[serde(default)]
        input: InputRequest,
        #[serde(default)]
        console_socket: Option<PathBuf>,
    },
    /// Send back the kept read ends of the container's output pipes, and its input's ends,
    /// if it still runs.
    Output { id: String },
    /// Let go of the container's stdin pipe (`stdinOnce`): it reads end-of-file once the
    /// owner closes its end too.
    CloseStdin { id: String },
    /// Stop tracking the container (it is being deleted): its exit is no longer recorded.
    Forget { id: String },
}

/// The monitor's answer.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct Reply {
    /// `create`'s exit code; whether output descriptors came back.
    code: Option<i32>,
    /// What went wrong, if anything did.
    error: Option<String>,
    /// A stdin pipe's write end follows the other descriptors.
    #[serde(default)]
    stdin: bool,
    /// A terminal's master end follows the other descriptors (after stdin's).
    #[serde(default)]
    terminal: bool,
}

impl Reply {
    /// A reply with `code` and the ends of `input` that are held, to send in that order
    /// after any others.
    fn with_input(code: i32, input: &HeldInput) -> (Reply, Vec<OwnedFd>) {
        let stdin = input.stdin.as_ref().and_then(|fd| fd.try_clone().ok());
        let terminal = input.terminal.as_ref().and_then(|fd| fd.try_clone().ok());
        let reply = Reply {
            code: Some(code),
            error: None,
            stdin: stdin.is_some(),
            terminal: terminal.is_some(),
        };
        (reply, stdin.into_iter().chain(terminal).collect())
    }

    /// Takes the input's ends, as [`Reply::with_input`] sent them, off the end of `fds`.
    fn take_input(&self, fds: &mut Vec<OwnedFd>) -> HeldInput {
        let terminal = if self.terminal { fds.pop() } else { None };
        let stdin = if self.stdin { fds.pop() } else { None };
        HeldInput { stdin, terminal }
    }
}

/// Where a runtime's root keeps the monitor's socket and log.
pub fn socket_path(root: &Path) -> PathBuf {
    root.join("monitor.sock")
}

/// The monitor's entry point (`skiff node-monitor --root DIR`), run before any thread exists.
/// Returns the process's exit code.
pub fn monitor_main(mut args: impl Iterator<Item = OsString>) -> i32 {
    let root = match (args.next(), args.next()) {
        (Some(flag), Some(root)) if flag == "--root" => PathBuf::from(root),
        _ => {
            eprintln!("usage: node-monitor --root DIR");
            return 2;
        }
    };
    match serve(&root) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("node monitor: {e}");
            1
        }
    }
}

/// A container the monitor runs.
struct Tracked {
    id: String,
    /// The read ends of its stdout and stderr pipes.
    output: Option<[OwnedFd; 2]>,
    /// Its stdin pipe's write end and its terminal's master end, when it has them.
    input: HeldInput,
}

fn serve(root: &Path) -> Result<(), String> {
    let _ = nix::unistd::setsid();
    nix::sys::prctl::set_child_subreaper(true).map_err(|e| format!("subreaper: {e}"))?;
    let mut mask = SigSet::empty();
    mask.add(Signal::SIGCHLD);
    mask.thread_block()
        .map_err(|e| format!("blocking SIGCHLD: {e}"))?;
    let signals = SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
        .map_err(|e| format!("signalfd: {e}"))?;
    let path = socket_path(root);
    let listener = socket(
        AddressFamily::Unix,
        SockType::SeqPacket,
        SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
        None,
    )
    .map_err(|e| format!("socket: {e}"))?;
    let address = UnixAddr::new(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    // A socket file left by a monitor that died; a live one answers connects instead.
    let _ = fs::remove_file(&path);
    bind(listener.as_raw_fd(), &address).map_err(|e| format!("bind {}: {e}", path.display()))?;
    listen(&listener, Backlog::new(16).unwrap_or(Backlog::MAXCONN))
        .map_err(|e| format!("listen: {e}"))?;
    crate::pages::shed_clean_file_pages();
    let mut busy = false;
    let began = Instant::now();
    let mut clients: HashMap<u64, OwnedFd> = HashMap::new();
    let mut next_client = 0u64;
    let mut claimed = false;
    let mut tracked: HashMap<i32, Tracked> = HashMap::new();
    let mut pending: HashMap<i32, PendingCreate> = HashMap::new();
    loop {
        if tracked.is_empty()
            && pending.is_empty()
            && clients.is_empty()
            && (claimed || began.elapsed() > UNCLAIMED_LIMIT)
        {
            let _ = fs::remove_file(&path);
            return Ok(());
        }
        let order: Vec<u64> = clients.keys().copied().collect();
        let mut fds = vec![
            PollFd::new(signals.as_fd(), PollFlags::POLLIN),
            PollFd::new(listener.as_fd(), PollFlags::POLLIN),
        ];
        fds.extend(
            order
                .iter()
                .filter_map(|key| clients.get(key))
                .map(|c| PollFd::new(c.as_fd(), PollFlags::POLLIN)),
        );
        match poll(&mut fds, PollTimeout::from(1000u16)) {
            Ok(0) if busy => {
                // A second with nothing to do after some work: let go of the program's
                // pages that work touched, so an idle monitor holds little.
                busy = false;
                crate::pages::shed_clean_file_pages();
            }
            Ok(_) | Err(Errno::EINTR) => busy = true,
            Err(e) => return Err(format!("poll: {e}")),
        }
        let ready: Vec<bool> = fds
            .iter()
            .map(|f| f.revents().is_some_and(|r| !r.is_empty()))
            .collect();
        drop(fds);
        if ready[0] {
            while let Ok(Some(_)) = signals.read_signal() {}
            reap(root, &mut tracked, &mut pending, &clients);
        }
        if ready[1] {
            while let Ok(fd) = accept4(listener.as_raw_fd(), SockFlag::SOCK_CLOEXEC) {
                // SAFETY: accept4 returned a new descriptor that nothing else owns.
                clients.insert(next_client, unsafe { OwnedFd::from_raw_fd(fd) });
                next_client = next_client.wrapping_add(1);
                claimed = true;
            }
        }
        let mut closed = Vec::new();
        for (index, key) in order.iter().enumerate() {
            if !ready.get(index + 2).copied().unwrap_or(false) {
                continue;
            }
            let Some(client) = clients.get(key) else {
                continue;
            };
            match receive(client.as_raw_fd()) {
                Ok(Some((request, fds))) => match handle(request, fds, &mut tracked) {
                    Handled::Reply(reply, out) => {
                        if send(client.as_raw_fd(), &reply, &out).is_err() {
                            closed.push(*key);
                        }
                    }
                    Handled::Pending(pid, mut create) => {
                        create.client = *key;
                        pending.insert(pid, create);
                    }
                },
                Ok(None) | Err(_) => closed.push(*key),
            }
        }
        for key in closed {
            clients.remove(&key);
        }
    }
}

/// A runtime `create` the monitor started and has not seen end yet: the request is answered
/// when it does, so that creates of different containers overlap.
struct PendingCreate {
    /// The connection that asked, which gets the reply.
    client: u64,
    id: String,
    /// The read ends of the container's stdout and stderr pipes.
    output: [OwnedFd; 2],
    /// The stdin pipe's write end, when one was asked for.
    held: HeldInput,
    /// Where the runtime sends the terminal, when one was asked for.
    console: Option<ConsoleSocket>,
    /// The runtime program, for messages.
    program: String,
}

/// What a request comes to: an answer now, or a `create` running whose answer comes once
/// its process (this PID) ends.
enum Handled {
    Reply(Reply, Vec<OwnedFd>),
    Pending(i32, PendingCreate),
}

/// Answers a `create` whose runtime process ended with `code`: takes the terminal, starts
/// tracking the container, and sends the reply to the connection that asked, if it is
/// still there.
fn finish_create(
    root: &Path,
    create: PendingCreate,
    code: i32,
    tracked: &mut HashMap<i32, Tracked>,
    clients: &HashMap<u64, OwnedFd>,
) {
    let PendingCreate {
        client,
        id,
        output,
        mut held,
        console,
        program,
    } = create;
    let mut answer = || -> (Reply, Vec<OwnedFd>) {
        if let (0, Some(console)) = (code, &console) {
            match console.receive(CONSOLE_LIMIT) {
                Ok(master) => held.terminal = Some(master),
                Err(e) => {
                    return failure(format!(
                        "receiving the container's terminal from {program}: {e}"
                    ))
                }
            }
        }
        Reply::with_input(code, &held)
    };
    let (reply, out) = answer();
    if code == 0 && reply.error.is_none() {
        let pid = fs::read_to_string(root.join("containers").join(&id).join("pid"))
            .ok()
            .and_then(|t| t.trim().parse::<i32>().ok())
            .filter(|pid| *pid > 0);
        if let Some(pid) = pid {
            tracked.insert(
                pid,
                Tracked {
                    id,
                    output: Some(output),
                    input: held,
                },
            );
        }
    }
    if let Some(socket) = clients.get(&client) {
        let _ = send(socket.as_raw_fd(), &reply, &out);
    }
}

fn failure(error: String) -> (Reply, Vec<OwnedFd>) {
    (
        Reply {
            error: Some(error),
            ..Reply::default()
        },
        Vec::new(),
    )
}

/// Collects every ended child, recording the exit codes of containers and answering the
/// creates whose runtime process ended.
fn reap(
    root: &Path,
    tracked: &mut HashMap<i32, Tracked>,
    pending: &mut HashMap<i32, PendingCreate>,
    clients: &HashMap<u64, OwnedFd>,
) {
    loop {
        let (pid, code) = match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(pid, code)) => (pid, code),
            Ok(WaitStatus::Signaled(pid, signal, _)) => (pid, 128 + signal as i32),
            Ok(WaitStatus::StillAlive) | Err(_) => return,
            Ok(_) => continue,
        };
        if let Some(create) = pending.remove(&pid.as_raw()) {
            finish_create(root, create, code, tracked, clients);
        } else if let Some(container) = tracked.remove(&pid.as_raw()) {
            record_exit(root, &container.id, pid.as_raw(), code);
        }
    }
}

/// Writes `code` as the exit code of container `id`, if its recorded PID 1 is still `pid`
/// (a later run of the same id has a directory of its own).
fn record_exit(root: &Path, id: &str, pid: i32, code: i32) {
    let dir = root.join("containers").join(id);
    let recorded = fs::read_to_string(dir.join("pid"))
        .ok()
        .and_then(|t| t.trim().parse::<i32>().ok());
    if recorded != Some(pid) {
        return;
    }
    let partial = dir.join("exit-code.partial");
    if fs::write(&partial, code.to_string()).is_ok() {
        let _ = fs::rename(&partial, dir.join("exit-code"));
    }
}

/// Answers one request; a `create` is started and answered once its process ends.
fn handle(request: Request, fds: Vec<OwnedFd>, tracked: &mut HashMap<i32, Tracked>) -> Handled {
    let failed = |error: String| {
        let (reply, out) = failure(error);
        Handled::Reply(reply, out)
    };
    match request {
        Request::Create {
            id,
            argv,
            hide_unified_cgroup,
            input,
            console_socket,
        } => {
            let Ok([stdout, stderr, out_read, err_read]) = <[OwnedFd; 4]>::try_from(fds) else {
                return failed("create needs four descriptors".into());
            };
            let Some((program, rest)) = argv.split_first() else {
                return failed("create needs a command".into());
            };
            let console = match (input.terminal, &console_socket) {
                (false, _) => None,
                (true, None) => return failed("a terminal needs a console socket".into()),
                (true, Some(path)) => match ConsoleSocket::bind(path) {
                    Ok(console) => Some(console),
                    Err(e) => return failed(format!("console socket {}: {e}", path.display())),
                },
            };
            let (stdin, held) = match crate::runtime::stdin_pipe(input.stdin && !input.terminal) {
                Ok(pipe) => pipe,
                Err(e) => return failed(format!("creating the stdin pipe: {e}")),
            };
            let mut command = Command::new(program);
            command
                .args(rest)
                .stdin(stdin)
                .stdout(Stdio::from(stdout))
                .stderr(Stdio::from(stderr));
            // SAFETY: the closure only makes a system call, as the child of a fork must.
            unsafe {
                command.pre_exec(|| {
                    SigSet::all().thread_unblock()?;
                    Ok(())
                });
            }
            if hide_unified_cgroup {
                crate::cli::hide_unified_cgroup(&mut command);
            }
            // Not waited for here: the SIGCHLD of its end answers the request (`reap`).
            let spawned = command.spawn();
            // The write ends close here: only the runtime, then the container, holds them.
            drop(command);
            let pid = match spawned.map(|child| i32::try_from(child.id())) {
                Ok(Ok(pid)) => pid,
                Ok(Err(_)) => return failed("the runtime's PID does not fit".into()),
                Err(e) => return failed(format!("running {}: {e}", program.to_string_lossy())),
            };
            Handled::Pending(
                pid,
                PendingCreate {
                    client: 0,
                    id,
                    output: [out_read, err_read],
                    held,
                    console,
                    program: program.to_string_lossy().into_owned(),
                },
            )
        }
        Request::Output { id } => {
            let Some(container) = tracked.values().find(|t| t.id == id) else {
                return Handled::Reply(Reply::default(), Vec::new());
            };
            let output = container
                .output
                .as_ref()
                .and_then(|[out, err]| Some(vec![out.try_clone().ok()?, err.try_clone().ok()?]));
            match output {
                Some(mut fds) => {
                    let (reply, input) = Reply::with_input(0, &container.input);
                    fds.extend(input);
                    Handled::Reply(reply, fds)
                }
                None => Handled::Reply(Reply::default(), Vec::new()),
            }
        }
        Request::CloseStdin { id } => {
            for container in tracked.values_mut().filter(|t| t.id == id) {
                container.input.stdin = None;
            }
            Handled::Reply(Reply::default(), Vec::new())
        }
        Request::Forget { id } => {
            tracked.retain(|_, t| t.id != id);
            Handled::Reply(Reply::default(), Vec::new())
        }
    }
}

fn send(socket: RawFd, message: &impl serde::Serialize, fds: &[OwnedFd]) -> Result<(), String> {
    let bytes = serde_json::to_vec(message).map_err(|e| e.to_string())?;
    let raw: Vec<RawFd> = fds.iter().map(AsRawFd::as_raw_fd).collect();
    let control = [ControlMessage::ScmRights(&raw)];
    let control: &[ControlMessage<'_>] = if raw.is_empty() { &[] } else { &control };
    sendmsg::<()>(
        socket,
        &[IoSlice::new(&bytes)],
        control,
        MsgFlags::empty(),
        None,
    )
    .map_err(|e| format!("sending to the node monitor: {e}"))?;
    Ok(())
}

/// One message and the descriptors that came with it; `None` when the peer hung up.
fn receive<T: serde::de::DeserializeOwned>(
    socket: RawFd,
) -> Result<Option<(T, Vec<OwnedFd>)>, String> {
    let mut buffer = vec![0u8; MAX_MESSAGE];
    let mut control = nix::cmsg_space!([RawFd; 8]);
    let (length, fds) = {
        let mut iov = [IoSliceMut::new(&mut buffer)];
        let message = recvmsg::<()>(
            socket,
            &mut iov,
            Some(&mut control),
            MsgFlags::MSG_CMSG_CLOEXEC,
        )
        .map_err(|e| format!("reading from the node monitor: {e}"))?;
        let mut fds = Vec::new();
        for cmsg in message.cmsgs().map_err(|e| e.to_string())? {
            if let ControlMessageOwned::ScmRights(received) = cmsg {
                // SAFETY: the kernel installed these descriptors for this process alone.
                fds.extend(
                    received
                        .into_iter()
                        .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }),
                );
            }
        }
        (message.bytes, fds)
    };
    if length == 0 {
        return Ok(None);
    }
    let parsed = serde_json::from_slice(&buffer[..length])
        .map_err(|e| format!("a message from the node monitor: {e}"))?;
    Ok(Some((parsed, fds)))
}

/// The owner's side: connections to the node's monitor, started when none answers. Each
/// request takes an idle connection (or opens one) for its round trip, so requests of
/// different threads, such as creates of different pods, run at the same time.
#[derive(Debug)]
pub struct MonitorClient {
    root: PathBuf,
    program: PathBuf,
    leading_args: Vec<OsString>,
    /// Connections no request is using.
    idle: Mutex<Vec<OwnedFd>>,
    /// Held while a monitor is looked for or started, so that only one is.
    starting: Mutex<()>,
}

impl MonitorClient {
    /// A client of the monitor for the runtime root `root`, started as `program` with
    /// `leading_args` (the hidden subcommand) when it does not run.
    pub fn new(root: PathBuf, program: PathBuf, leading_args: Vec<OsString>) -> MonitorClient {
        MonitorClient {
            root,
            program,
            leading_args,
            idle: Mutex::new(Vec::new()),
            starting: Mutex::new(()),
        }
    }

    /// Connects to the running monitor, or starts one and connects to it; the connection
    /// stays open, which tells the monitor its owner is there.
    pub fn connect(&self) -> Result<(), OciError> {
        if self.idle_connections().is_empty() {
            let fd = self.open()?;
            self.idle_connections().push(fd);
        }
        Ok(())
    }

    fn idle_connections(&self) -> std::sync::MutexGuard<'_, Vec<OwnedFd>> {
        self.idle.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn open(&self) -> Result<OwnedFd, OciError> {
        if let Ok(fd) = self.try_connect() {
            return Ok(fd);
        }
        let _starting = self.starting.lock().unwrap_or_else(|e| e.into_inner());
        // Another request may have started it meanwhile.
        if let Ok(fd) = self.try_connect() {
            return Ok(fd);
        }
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.root.join("monitor.log"))
            .map_err(|source| OciError::Io {
                path: self.root.join("monitor.log"),
                source,
            })?;
        let mut child = Command::new(&self.program)
            .args(&self.leading_args)
            .arg("--root")
            .arg(&self.root)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|source| OciError::Spawn {
                program: self.program.display().to_string(),
                source,
            })?;
        // Collected when it ends, so that it never lingers as a zombie of this process.
        std::thread::spawn(move || child.wait());
        let deadline = Instant::now() + START_LIMIT;
        loop {
            match self.try_connect() {
                Ok(fd) => return Ok(fd),
                Err(e) if Instant::now() >= deadline => {
                    return Err(OciError::Protocol {
                        runtime: "node monitor".into(),
                        message: format!("it did not start listening: {e}"),
                    })
                }
                Err(_) => std::thread::sleep(Duration::from_millis(10)),
            }
        }
    }

    fn try_connect(&self) -> Result<OwnedFd, Errno> {
        let fd = socket(
            AddressFamily::Unix,
            SockType::SeqPacket,
            SockFlag::SOCK_CLOEXEC,
            None,
        )?;
        let address = UnixAddr::new(&socket_path(&self.root))?;
        connect(fd.as_raw_fd(), &address)?;
        Ok(fd)
    }

    /// Sends one request and reads its reply, reconnecting once (a monitor that exited idle
    /// is started again).
    fn call(&self, request: &Request, fds: &[OwnedFd]) -> Result<(Reply, Vec<OwnedFd>), OciError> {
        let mut last = String::new();
        for _ in 0..2 {
            let idle = self.idle_connections().pop();
            let connection = match idle {
                Some(fd) => fd,
                None => self.open()?,
            };
            let fd = connection.as_raw_fd();
            let answer = send(fd, request, fds).and_then(|()| receive::<Reply>(fd));
            match answer {
                Ok(Some(answer)) => {
                    self.idle_connections().push(connection);
                    return Ok(answer);
                }
                Ok(None) => last = "the node monitor hung up".into(),
                Err(e) => last = e,
            }
            // The monitor went away: none of the idle connections reach it either.
            self.idle_connections().clear();
        }
        Err(OciError::Protocol {
            runtime: "node monitor".into(),
            message: last,
        })
    }

    /// Runs the runtime's `create` command in the monitor with the output pipes' ends and
    /// the input asked for (a terminal comes on `console_socket`, which `argv` names);
    /// returns its exit code and the owner's ends of the input.
    pub fn create(
        &self,
        id: &ContainerId,
        argv: Vec<OsString>,
        hide_unified_cgroup: bool,
        fds: [OwnedFd; 4],
        input: InputRequest,
        console_socket: Option<PathBuf>,
    ) -> Result<(i32, HeldInput), OciError> {
        let request = Request::Create {
            id: id.as_str().to_string(),
            argv,
            hide_unified_cgroup,
            input,
            console_socket,
        };
        let (reply, mut fds) = self.call(&request, &fds)?;
        let held = reply.take_input(&mut fds);
        match (reply.code, reply.error) {
            (Some(code), _) => Ok((code, held)),
            (None, error) => Err(OciError::Protocol {
                runtime: "node monitor".into(),
                message: error.unwrap_or_default(),
            }),
        }
    }

    /// The read ends of a running container's stdout and stderr pipes, and its input's
    /// ends, when the monitor holds them.
    pub fn output(&self, id: &ContainerId) -> Result<Option<RecoveredStreams>, OciError> {
        let request = Request::Output {
            id: id.as_str().to_string(),
        };
        let (reply, mut fds) = self.call(&request, &[])?;
        let input = reply.take_input(&mut fds);
        Ok(<[OwnedFd; 2]>::try_from(fds)
            .ok()
            .map(|output| RecoveredStreams { output, input }))
    }

    /// Has the monitor let go of the container's stdin pipe.
    pub fn close_stdin(&self, id: &ContainerId) -> Result<(), OciError> {
        let request = Request::CloseStdin {
            id: id.as_str().to_string(),
        };
        self.call(&request, &[]).map(drop)
    }

    /// The monitor's PID, as its socket reports its peer; connects first if needed.
    pub fn pid(&self) -> Option<i32> {
        self.connect().ok()?;
        let idle = self.idle_connections();
        let credentials =
            nix::sys::socket::getsockopt(idle.last()?, nix::sys::socket::sockopt::PeerCredentials)
                .ok()?;
        Some(credentials.pid())
    }

    /// Tells the monitor to stop tracking the container.
    pub fn forget(&self, id: &ContainerId) -> Result<(), OciError> {
        let request = Request::Forget {
            id: id.as_str().to_string(),
        };
        self.call(&request, &[]).map(drop)
    }
}

/// A descriptor that becomes readable once the process `pid` (not necessarily a child) has
/// ended, so an owner can wait for many containers without a thread each; `None` when the
/// process is already gone.
pub fn process_fd(pid: i32) -> Option<OwnedFd> {
    // SAFETY: pidfd_open takes a PID and flags and returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    let fd = RawFd::try_from(fd).ok().filter(|fd| *fd >= 0)?;
    // SAFETY: pidfd_open returned a new descriptor that nothing else owns.
    Some(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Waits, blocking, until the process `pid` (not necessarily a child) has ended, through a
/// pidfd; returns at once when it is already gone.
pub fn wait_until_gone(pid: i32) {
    let Some(fd) = process_fd(pid) else {
        return;
    };
    loop {
        let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::NONE) {
            Err(Errno::EINTR) => continue,
            _ => return,
        }
    }
}
