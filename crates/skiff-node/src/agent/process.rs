//! Container processes: each run is a process group of its own, its output goes to its log
//! file, and it counts as exited only once every process of the group is gone (as a
//! container's processes die with its init process).

use std::io;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use tokio::io::AsyncReadExt;
use tokio::sync::watch;
use tokio::time::Instant;

use super::logfiles::LogWriter;

/// How often a process group is checked while waiting for it to empty.
const GROUP_POLL: Duration = Duration::from_millis(20);
/// How long to wait for a killed group to empty before giving up on it.
const GROUP_GONE_LIMIT: Duration = Duration::from_secs(10);

/// What to run for one container run.
#[derive(Clone, Debug)]
pub struct SpawnRequest {
    /// The full argv.
    pub argv: Vec<String>,
    /// The whole environment (nothing is inherited from the agent).
    pub env: Vec<(String, String)>,
    /// The working directory.
    pub cwd: PathBuf,
    /// The log file of this run.
    pub log_path: PathBuf,
    /// The name the program sees as its `argv[0]`, when not the path run (a program found
    /// inside an image run without a root of its own: `busybox` dispatches on it).
    pub arg0: Option<String>,
    /// Where rotation starts.
    pub log_cap: u64,
    /// `cgroup.procs` files the process joins before it runs anything (its container's
    /// cgroup); none leaves it in the agent's.
    pub cgroup_procs: Vec<PathBuf>,
    /// The container's `stdin`, `stdinOnce` and `tty`: what `kubectl attach` connects to.
    pub attach: super::streams::AttachConfig,
}

/// Joins the cgroups whose `cgroup.procs` files are given by writing `0` (the writer itself)
/// to each. Runs in the child between fork and exec, so it only makes system calls on paths
/// prepared beforehand.
#[allow(unsafe_code)]
fn join_cgroups(procs: &[std::ffi::CString]) -> io::Result<()> {
    for path in procs {
        // SAFETY: `path` is a valid NUL-terminated string that outlives the calls; open,
        // write and close are async-signal-safe.
        unsafe {
            let fd = nix::libc::open(path.as_ptr(), nix::libc::O_WRONLY | nix::libc::O_CLOEXEC);
            if fd < 0 {
                return Err(io::Error::last_os_error());
            }
            let written = nix::libc::write(fd, b"0".as_ptr().cast(), 1);
            let error = io::Error::last_os_error();
            nix::libc::close(fd);
            if written != 1 {
                return Err(error);
            }
        }
    }
    Ok(())
}

/// A running container process group.
#[derive(Clone, Debug)]
pub struct ContainerProcess {
    /// The process group (the leader's PID).
    pub pgid: i32,
    /// `Some(exit code)` once every process of the group is gone.
    pub done: watch::Receiver<Option<i32>>,
    /// The run's own stdio, for `kubectl attach`.
    pub attach: Arc<super::streams::Attachable>,
    /// The runtime's container, when the run is one (`pgid` is then its PID 1).
    pub oci: Option<Arc<super::oci::OciContainer>>,
}

impl ContainerProcess {
    /// Sends `signal` to the run: to the container's PID 1 through its runtime, else to the
    /// whole process group.
    pub fn signal(&self, signal: Signal) {
        match &self.oci {
            Some(container) => container.signal(signal),
            None => signal_group(self.pgid, signal),
        }
    }

    /// Waits until the group is gone and returns the leader's exit code.
    pub async fn wait(&self) -> i32 {
        let mut done = self.done.clone();
        let result = done.wait_for(Option::is_some).await;
        match result {
            Ok(code) => code.unwrap_or(-1),
            // The supervisor ended without a verdict; only possible if its task was dropped.
            Err(_) => -1,
        }
    }
}

/// Sends `signal` to every process of group `pgid`; a group already gone is not an error.
pub fn signal_group(pgid: i32, signal: Signal) {
    if pgid <= 1 {
        return;
    }
    if let Err(e) = killpg(Pid::from_raw(pgid), signal) {
        if e != nix::errno::Errno::ESRCH {
            tracing::warn!(pgid, %signal, error = %e, "signalling a container process group failed");
        }
    }
}

/// The live (not zombie) processes of group `pgid`, from `/proc`.
pub fn group_members(pgid: i32) -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|stat| parse_stat(&stat))
                .is_some_and(|(state, group)| group == pgid && state != 'Z' && state != 'X')
        })
        .collect()
}

/// The state and process group in a `/proc/<pid>/stat` line.
fn parse_stat(stat: &str) -> Option<(char, i32)> {
    let mut fields = stat_fields(stat)?;
    let state = fields.next()?.chars().next()?;
    let _ppid = fields.next()?;
    let pgrp = fields.next()?.parse().ok()?;
    Some((state, pgrp))
}

/// The process groups of every descendant of `ancestor` (not its own), read from `/proc`.
pub fn descendant_groups(ancestor: i32) -> std::collections::HashSet<i32> {
    let mut parents = Vec::new();
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for pid in entries
            .filter_map(Result::ok)
            .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        {
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                continue;
            };
            let Some(mut fields) = stat_fields(&stat) else {
                continue;
            };
            let _state = fields.next();
            let ppid = fields.next().and_then(|f| f.parse::<i32>().ok());
            let pgid = fields.next().and_then(|f| f.parse::<i32>().ok());
            if let (Some(ppid), Some(pgid)) = (ppid, pgid) {
                parents.push((pid, ppid, pgid));
            }
        }
    }
    let mut inside: std::collections::HashSet<i32> = [ancestor].into_iter().collect();
    let mut groups = std::collections::HashSet::new();
    // A child can be listed before its parent: repeat until nothing new is found.
    loop {
        let before = inside.len();
        for (pid, ppid, pgid) in &parents {
            if inside.contains(ppid) && inside.insert(*pid) {
                groups.insert(*pgid);
            }
        }
        if inside.len() == before {
            return groups;
        }
    }
}

/// The fields of a `/proc/<pid>/stat` line after the command name, starting with the state
/// (field 3). The name is in parentheses and may contain anything, so fields follow the last ')'.
fn stat_fields(stat: &str) -> Option<std::str::SplitWhitespace<'_>> {
    Some(stat[stat.rfind(')')? + 1..].split_whitespace())
}

/// When a `/proc/<pid>/stat` line's process started, in clock ticks since boot (field 22).
fn parse_start_time(stat: &str) -> Option<u64> {
    // Field 22 is the 20th after the state (field 3).
    stat_fields(stat)?.nth(19)?.parse().ok()
}

/// When process `pid` started, in clock ticks since boot, if it is alive: with the boot, what
/// tells a process apart from a later one that was given the same PID.
pub fn start_time(pid: i32) -> Option<u64> {
    parse_start_time(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// This boot's identity, so start times recorded before a reboot are never taken for current
/// ones.
fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|id| id.trim().to_string())
        .unwrap_or_default()
}

/// One line of a pod's `pgids` record: a process group, and when its leader started in which
/// boot (absent in records written before start times were kept).
#[derive(Clone, Debug, PartialEq, Eq)]
struct RecordedGroup {
    pgid: i32,
    leader_start: Option<(u64, String)>,
}

impl RecordedGroup {
    fn parse(line: &str) -> Option<RecordedGroup> {
        let mut fields = line.split_whitespace();
        let pgid = fields.next()?.parse().ok()?;
        let start = fields.next().and_then(|t| t.parse().ok());
        let boot = fields.next().map(str::to_string);
        Some(RecordedGroup {
            pgid,
            leader_start: start.zip(boot),
        })
    }

    /// Whether the group's leader still runs: the same PID, started at the recorded time in
    /// this boot. A PID reused by an unrelated process has another start time.
    fn leader_still_runs(&self, boot: &str) -> bool {
        self.leader_start
            .as_ref()
            .is_some_and(|(ticks, recorded_boot)| {
                recorded_boot == boot && start_time(self.pgid) == Some(*ticks)
            })
    }
}

/// Whether any process of group `pgid` is alive.
pub fn group_alive(pgid: i32) -> bool {
    !group_members(pgid).is_empty()
}

/// Waits until group `pgid` is empty, at most `limit`; true if it emptied.
pub async fn wait_group_gone(pgid: i32, limit: Duration) -> bool {
    let until = Instant::now() + limit;
    loop {
        if !group_alive(pgid) {
            return true;
        }
        if Instant::now() >= until {
            return false;
        }
        tokio::time::sleep(GROUP_POLL).await;
    }
}

/// Whether process `pid` carries `SKIFF_POD_UID=<uid>` in its environment: a check before
/// killing leftovers from an earlier run, so a recycled PID is never hit.
pub fn process_belongs_to(pid: i32, uid: &str) -> bool {
    let Ok(environ) = std::fs::read(format!("/proc/{pid}/environ")) else {
        return false;
    };
    let wanted = format!("SKIFF_POD_UID={uid}");
    environ
        .split(|b| *b == 0)
        .any(|entry| entry == wanted.as_bytes())
}

/// Kills what is left of the process groups recorded in `pgids_file` for pod `uid`, and waits
/// for them to go. Returns how many groups had processes.
///
/// A recorded group is the pod's only if its leader runs with the start time recorded for it,
/// or one of its processes carries the pod's `SKIFF_POD_UID`: a PID (and so a group ID) reused
/// by an unrelated process since the record was written is never signalled.
pub async fn kill_leftovers(pgids_file: &Path, uid: &str) -> usize {
    kill_leftovers_sparing(pgids_file, uid, &std::collections::HashSet::new()).await
}

/// [`kill_leftovers`], leaving alone the process groups in `spared` (containers the node's
/// monitor kept running, to be adopted).
pub async fn kill_leftovers_sparing(
    pgids_file: &Path,
    uid: &str,
    spared: &std::collections::HashSet<i32>,
) -> usize {
    let Ok(text) = std::fs::read_to_string(pgids_file) else {
        return 0;
    };
    let boot = boot_id();
    let mut killed = 0;
    for group in text.lines().filter_map(RecordedGroup::parse) {
        if spared.contains(&group.pgid) {
            continue;
        }
        let members = group_members(group.pgid);
        if members.is_empty() {
            continue;
        }
        let ours = group.leader_still_runs(&boot)
            || members.iter().any(|pid| process_belongs_to(*pid, uid));
        if !ours {
            continue;
        }
        killed += 1;
        kill_group_and_wait(group.pgid).await;
    }
    killed
}

/// Kills every process group holding a process that carries the `SKIFF_POD_UID` of one of
/// `uids`, found by reading `/proc`: the processes an earlier run started but had no time to
/// record before it died. Returns how many groups had to be killed.
///
/// Only call it while none of these pods' containers should run (at start, before any worker):
/// the pods' UIDs are unique, so nothing else carries them.
#[cfg(test)]
pub async fn kill_unrecorded(uids: &std::collections::HashSet<String>) -> usize {
    kill_unrecorded_sparing(uids, &std::collections::HashSet::new()).await
}

/// [`kill_unrecorded`], leaving alone the process groups in `spared`.
pub async fn kill_unrecorded_sparing(
    uids: &std::collections::HashSet<String>,
    spared: &std::collections::HashSet<i32>,
) -> usize {
    if uids.is_empty() {
        return 0;
    }
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0;
    };
    let own_group = nix::unistd::getpgrp().as_raw();
    let mut groups = std::collections::BTreeSet::new();
    for pid in entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
    {
        let Some(pod_uid) = pod_uid_of(pid) else {
            continue;
        };
        if !uids.contains(&pod_uid) {
            continue;
        }
        let group = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|stat| parse_stat(&stat));
        if let Some((state, pgid)) = group {
            if state != 'Z'
                && state != 'X'
                && pgid > 1
                && pgid != own_group
                && !spared.contains(&pgid)
            {
                groups.insert(pgid);
            }
        }
    }
    for pgid in &groups {
        kill_group_and_wait(*pgid).await;
    }
    groups.len()
}

/// The `SKIFF_POD_UID` in process `pid`'s environment, if it has one.
fn pod_uid_of(pid: i32) -> Option<String> {
    let environ = std::fs::read(format!("/proc/{pid}/environ")).ok()?;
    environ.split(|b| *b == 0).find_map(|entry| {
        let value = entry.strip_prefix(b"SKIFF_POD_UID=")?;
        String::from_utf8(value.to_vec()).ok()
    })
}

async fn kill_group_and_wait(pgid: i32) {
    signal_group(pgid, Signal::SIGKILL);
    if !wait_group_gone(pgid, GROUP_GONE_LIMIT).await {
        tracing::warn!(pgid, "leftover processes survived SIGKILL");
    }
}

/// Appends `pgid` to the pod's record of process groups, with when its leader started and in
/// which boot, so that [`kill_leftovers`] can tell it from a later process given the same PID.
pub fn record_pgid(pgids_file: &Path, pgid: i32) -> io::Result<()> {
    use std::io::Write;
    let mut line = pgid.to_string();
    if let Some(ticks) = start_time(pgid) {
        line.push_str(&format!(" {ticks} {}", boot_id()));
    }
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(pgids_file)?;
    // No sync: the record must outlive this process, which the page cache ensures; a machine
    // crash takes the processes with it.
    writeln!(file, "{line}")
}

/// Starts a container run in its own process group, its output copied to its log file.
#[allow(unsafe_code)] // Only to join the container's cgroups between fork and exec.
pub fn spawn(request: SpawnRequest) -> io::Result<ContainerProcess> {
    let program = request
        .argv
        .first()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no command specified"))?;
    let writer = Arc::new(Mutex::new(LogWriter::open(
        &request.log_path,
        request.log_cap,
    )?));
    let mut command = tokio::process::Command::new(program);
    if let Some(arg0) = &request.arg0 {
        command.arg0(arg0);
    }
    command
        .args(&request.argv[1..])
        .env_clear()
        .envs(request.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .current_dir(&request.cwd)
        .process_group(0)
        .kill_on_drop(false);
    if !request.cgroup_procs.is_empty() {
        use std::os::unix::ffi::OsStrExt;
        let procs = request
            .cgroup_procs
            .iter()
            .map(|path| std::ffi::CString::new(path.as_os_str().as_bytes()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        // SAFETY: the hook only calls `join_cgroups`, which makes async-signal-safe system
        // calls and allocates nothing.
        unsafe {
            command.pre_exec(move || join_cgroups(&procs));
        }
    }
    let terminal = super::streams::container_stdio(&mut command, &request.attach)?;
    let spawned = command.spawn();
    // The terminal's other end belongs to the container alone.
    drop(command);
    let mut child = spawned?;
    let pgid = child
        .id()
        .and_then(|id| i32::try_from(id).ok())
        .ok_or_else(|| io::Error::other("the process exited before it could be tracked"))?;
    let output = super::streams::output_channel();
    let mut copiers = Vec::new();
    if let Some(out) = child.stdout.take() {
        copiers.push(tokio::spawn(copy_log(
            out,
            "stdout",
            writer.clone(),
            output.clone(),
        )));
    }
    if let Some(err) = child.stderr.take() {
        copiers.push(tokio::spawn(copy_log(
            err,
            "stderr",
            writer.clone(),
            output.clone(),
        )));
    }
    if let Some(reader) = terminal.as_ref().and_then(super::streams::terminal_reader) {
        copiers.push(tokio::spawn(copy_log(
            reader,
            "stdout",
            writer.clone(),
            output.clone(),
        )));
    }
    let (tx, rx) = watch::channel(None);
    let attach = Arc::new(super::streams::Attachable::new(
        &request.attach,
        output,
        child
            .stdin
            .take()
            .map(|pipe| Box::new(pipe) as super::streams::Input),
        terminal,
        rx.clone(),
    ));
    tokio::spawn(async move {
        let code = match child.wait().await {
            Ok(status) => exit_code(status),
            Err(e) => {
                tracing::warn!(pgid, error = %e, "waiting for a container process failed");
                -1
            }
        };
        // The rest of the group goes with its leader.
        signal_group(pgid, Signal::SIGKILL);
        if !wait_group_gone(pgid, GROUP_GONE_LIMIT).await {
            tracing::warn!(pgid, "container processes survived SIGKILL");
        }
        for copier in copiers {
            // Pipes close once every writer is gone; a grandchild that escaped the group
            // could hold them, so do not wait forever.
            let _ = tokio::time::timeout(Duration::from_secs(2), copier).await;
        }
        if let Ok(mut w) = writer.lock() {
            w.flush();
        }
        let _ = tx.send(Some(code));
    });
    Ok(ContainerProcess {
        pgid,
        done: rx,
        attach,
        oci: None,
    })
}

/// The exit code kubelet reports: the code, or 128 + the signal.
fn exit_code(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(-1)
}

pub(crate) async fn copy_log(
    mut pipe: impl tokio::io::AsyncRead + Unpin,
    stream: &'static str,
    writer: Arc<Mutex<LogWriter>>,
    attached: super::streams::OutputSender,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match pipe.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if let Ok(mut w) = writer.lock() {
                    w.write(stream, &buf[..n], jiff::Timestamp::now());
                }
                attached.send(stream, bytes::Bytes::copy_from_slice(&buf[..n]));
            }
        }
    }
}

/// Runs a command to completion with a timeout, output combined, in its own process group
/// that is killed whole on timeout.
pub async fn run_to_completion(
    argv: &[String],
    env: &[(String, String)],
    cwd: &Path,
    timeout: Duration,
) -> io::Result<super::runtime::ExecOutput> {
    let program = argv
        .first()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no command specified"))?;
    let mut command = tokio::process::Command::new(program);
    command
        .args(&argv[1..])
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let child = command.spawn()?;
    let pgid = child.id().and_then(|id| i32::try_from(id).ok());
    match tokio::time::timeout(timeout, child.wait_with_output()).await {
        Ok(output) => {
            let output = output?;
            let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
            text.push_str(&String::from_utf8_lossy(&output.stderr));
            if let Some(pgid) = pgid {
                signal_group(pgid, Signal::SIGKILL);
            }
            Ok(super::runtime::ExecOutput {
                exit_code: exit_code(output.status),
                output: text,
            })
        }
        Err(_) => {
            if let Some(pgid) = pgid {
                signal_group(pgid, Signal::SIGKILL);
            }
            Err(io::Error::new(io::ErrorKind::TimedOut, "command timed out"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_lines_parse_even_with_odd_command_names() {
        let cases = [
            ("123 (sh) S 1 123 123 0 -1", Some(('S', 123))),
            ("9 (a) b (c)) Z 1 77 77", Some(('Z', 77))),
            ("garbage", None),
        ];
        for (line, expected) in cases {
            assert_eq!(parse_stat(line), expected, "{line}");
        }
    }

    #[test]
    fn start_times_parse_from_field_22() {
        let line =
            "42 (odd) name) S 1 42 42 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 5000 100";
        assert_eq!(parse_start_time(line), Some(987_654));
        assert_eq!(parse_start_time("42 (short) S 1 42"), None);
        let own = i32::try_from(std::process::id()).unwrap();
        assert!(start_time(own).is_some_and(|t| t > 0));
    }

    #[test]
    fn recorded_groups_parse_with_and_without_start_times() {
        assert_eq!(
            RecordedGroup::parse("123 4567 boot-a"),
            Some(RecordedGroup {
                pgid: 123,
                leader_start: Some((4567, "boot-a".to_string())),
            })
        );
        assert_eq!(
            RecordedGroup::parse("123"),
            Some(RecordedGroup {
                pgid: 123,
                leader_start: None,
            })
        );
        assert_eq!(RecordedGroup::parse("not a pid"), None);
    }

    /// A `sleep` in a process group of its own, with `env` as its whole environment, as an
    /// earlier run's container (or an unrelated program) would be.
    fn sleeper(env: &[(&str, &str)]) -> (std::process::Child, i32) {
        use std::os::unix::process::CommandExt;
        let child = std::process::Command::new("sleep")
            .arg("60")
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .envs(env.iter().copied())
            .process_group(0)
            .spawn()
            .unwrap();
        let pgid = i32::try_from(child.id()).unwrap();
        (child, pgid)
    }

    /// Kills and reaps a test process whatever the test concluded.
    fn reap(mut child: std::process::Child) {
        let _ = child.kill();
        let _ = child.wait();
    }

    #[tokio::test]
    async fn a_recorded_group_is_killed_when_its_leader_start_time_matches() {
        let dir = tempfile::tempdir().unwrap();
        let record = dir.path().join("pgids");
        // No pod UID in its environment: only the start time can tell it is ours.
        let (child, pgid) = sleeper(&[]);
        record_pgid(&record, pgid).unwrap();
        let killed = kill_leftovers(&record, "pod-a").await;
        let alive = group_alive(pgid);
        reap(child);
        assert_eq!(killed, 1);
        assert!(!alive, "the recorded group survived");
    }

    #[tokio::test]
    async fn a_reused_pid_is_never_killed() {
        let dir = tempfile::tempdir().unwrap();
        let record = dir.path().join("pgids");
        // An unrelated process now holds a PID the record names, with another start time.
        let (child, pgid) = sleeper(&[("SKIFF_POD_UID", "someone-else")]);
        let ticks = start_time(pgid).unwrap();
        std::fs::write(
            &record,
            format!("{pgid} {} {}\n{pgid}\n", ticks.saturating_sub(1), boot_id()),
        )
        .unwrap();
        let killed = kill_leftovers(&record, "pod-a").await;
        // The same start time in another boot is not this process either.
        std::fs::write(&record, format!("{pgid} {ticks} another-boot\n")).unwrap();
        let killed_other_boot = kill_leftovers(&record, "pod-a").await;
        let alive = group_alive(pgid);
        reap(child);
        assert_eq!((killed, killed_other_boot), (0, 0));
        assert!(alive, "an unrelated process was killed");
    }

    #[tokio::test]
    async fn unrecorded_processes_of_known_pods_are_killed_and_others_spared() {
        let (ours, our_group) = sleeper(&[("SKIFF_POD_UID", "pod-known")]);
        let (theirs, their_group) = sleeper(&[("SKIFF_POD_UID", "pod-unknown")]);
        let known = std::collections::HashSet::from(["pod-known".to_string()]);
        let killed = kill_unrecorded(&known).await;
        let (ours_alive, theirs_alive) = (group_alive(our_group), group_alive(their_group));
        reap(ours);
        reap(theirs);
        assert_eq!(killed, 1);
        assert!(!ours_alive, "the known pod's process survived");
        assert!(theirs_alive, "another pod's process was killed");
    }

    #[tokio::test]
    async fn a_group_counts_as_exited_only_when_every_member_is_gone() {
        let dir = tempfile::tempdir().unwrap();
        let process = spawn(SpawnRequest {
            cgroup_procs: Vec::new(),
            argv: vec![
                "/bin/sh".into(),
                "-c".into(),
                "sleep 30 & echo started; exit 3".into(),
            ],
            env: vec![("PATH".into(), "/usr/bin:/bin".into())],
            cwd: dir.path().to_path_buf(),
            log_path: dir.path().join("0.log"),
            arg0: None,
            log_cap: 1 << 20,
            attach: Default::default(),
        })
        .unwrap();
        let code = tokio::time::timeout(Duration::from_secs(10), process.wait())
            .await
            .unwrap();
        assert_eq!(code, 3);
        assert!(
            !group_alive(process.pgid),
            "the background sleep went with the leader"
        );
        let log = std::fs::read_to_string(dir.path().join("0.log")).unwrap();
        assert!(log.contains(" stdout F started"), "{log}");
    }

    #[tokio::test]
    async fn the_child_joins_its_cgroups_before_it_runs_and_fails_if_it_cannot() {
        let dir = tempfile::tempdir().unwrap();
        // Plain files stand in for `cgroup.procs`: the child writes `0` (itself) to each.
        let procs = [dir.path().join("a.procs"), dir.path().join("b.procs")];
        for file in &procs {
            std::fs::write(file, "").unwrap();
        }
        let request = |cgroup_procs: Vec<PathBuf>| SpawnRequest {
            cgroup_procs,
            argv: vec!["/bin/true".into()],
            env: vec![],
            cwd: dir.path().to_path_buf(),
            log_path: dir.path().join("0.log"),
            arg0: None,
            log_cap: 1 << 20,
            attach: Default::default(),
        };
        let process = spawn(request(procs.to_vec())).unwrap();
        let code = tokio::time::timeout(Duration::from_secs(10), process.wait())
            .await
            .unwrap();
        assert_eq!(code, 0);
        for file in &procs {
            assert_eq!(
                std::fs::read_to_string(file).unwrap(),
                "0",
                "{}",
                file.display()
            );
        }
        let missing = spawn(request(vec![dir.path().join("gone/cgroup.procs")]));
        let error = missing.expect_err("a cgroup that cannot be joined stops the start");
        assert_eq!(error.kind(), io::ErrorKind::NotFound, "{error}");
    }
}
