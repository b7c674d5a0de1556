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
    /// Where rotation starts.
    pub log_cap: u64,
}

/// A running container process group.
#[derive(Clone, Debug)]
pub struct ContainerProcess {
    /// The process group (the leader's PID).
    pub pgid: i32,
    /// `Some(exit code)` once every process of the group is gone.
    pub done: watch::Receiver<Option<i32>>,
}

impl ContainerProcess {
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
    // The command name is in parentheses and may contain anything; fields follow the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let _ppid = fields.next()?;
    let pgrp = fields.next()?.parse().ok()?;
    Some((state, pgrp))
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
pub async fn kill_leftovers(pgids_file: &Path, uid: &str) -> usize {
    let Ok(text) = std::fs::read_to_string(pgids_file) else {
        return 0;
    };
    let mut killed = 0;
    for pgid in text.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
        let members = group_members(pgid);
        if members.is_empty() || !members.iter().any(|pid| process_belongs_to(*pid, uid)) {
            continue;
        }
        killed += 1;
        signal_group(pgid, Signal::SIGKILL);
        if !wait_group_gone(pgid, GROUP_GONE_LIMIT).await {
            tracing::warn!(pgid, pod_uid = uid, "leftover processes survived SIGKILL");
        }
    }
    killed
}

/// Appends `pgid` to the pod's record of process groups.
pub fn record_pgid(pgids_file: &Path, pgid: i32) -> io::Result<()> {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(pgids_file)?;
    writeln!(file, "{pgid}")
}

/// Starts a container run in its own process group, its output copied to its log file.
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
    command
        .args(&request.argv[1..])
        .env_clear()
        .envs(request.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .current_dir(&request.cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(false);
    let mut child = command.spawn()?;
    let pgid = child
        .id()
        .and_then(|id| i32::try_from(id).ok())
        .ok_or_else(|| io::Error::other("the process exited before it could be tracked"))?;
    let mut copiers = Vec::new();
    if let Some(out) = child.stdout.take() {
        copiers.push(tokio::spawn(copy_log(out, "stdout", writer.clone())));
    }
    if let Some(err) = child.stderr.take() {
        copiers.push(tokio::spawn(copy_log(err, "stderr", writer.clone())));
    }
    let (tx, rx) = watch::channel(None);
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
    Ok(ContainerProcess { pgid, done: rx })
}

/// The exit code kubelet reports: the code, or 128 + the signal.
fn exit_code(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(-1)
}

async fn copy_log(
    mut pipe: impl tokio::io::AsyncRead + Unpin,
    stream: &'static str,
    writer: Arc<Mutex<LogWriter>>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match pipe.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if let Ok(mut w) = writer.lock() {
                    w.write(stream, &buf[..n], jiff::Timestamp::now());
                }
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

    #[tokio::test]
    async fn a_group_counts_as_exited_only_when_every_member_is_gone() {
        let dir = tempfile::tempdir().unwrap();
        let process = spawn(SpawnRequest {
            argv: vec![
                "/bin/sh".into(),
                "-c".into(),
                "sleep 30 & echo started; exit 3".into(),
            ],
            env: vec![("PATH".into(), "/usr/bin:/bin".into())],
            cwd: dir.path().to_path_buf(),
            log_path: dir.path().join("0.log"),
            log_cap: 1 << 20,
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
}
