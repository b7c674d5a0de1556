//! The embedded runtime: youki's `libcontainer` behind runc's command line, run out of
//! process.
//!
//! Creating a container forks, and forking a multi-threaded async process is unsafe (only
//! the forking thread survives, holding whatever locks the others held), so the node agent
//! never calls `libcontainer` itself. The `skiff` binary exposes [`shim_main`] as a hidden
//! subcommand and [`embedded_runtime`] drives it through [`CliRuntime`], exactly as it drives
//! `crun`. Each call is one short-lived, single-threaded process: `create` returns once the
//! container's process waits to be started and exits, leaving nothing of its own running
//! beside the container.
//!
//! `libcontainer` is built without its `libseccomp` feature (it links the system's
//! libseccomp, absent from a fresh machine; Kubernetes runs containers unconfined by default
//! anyway) and without `systemd` (cgroups are managed through the cgroup filesystem).
//!
//! Known gap: runc and youki re-execute themselves from a sealed memory copy before joining a
//! container (CVE-2019-5736, where a container overwrites the runtime's binary through
//! `/proc/<pid>/exe`); the shim does not yet.

use std::collections::HashMap;
use std::ffi::OsString;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};

use libcontainer::container::builder::ContainerBuilder;
use libcontainer::container::{Container, ContainerStatus};
use libcontainer::signal::Signal;
use libcontainer::syscall::syscall::SyscallType;
use nix::sys::wait::{waitpid, WaitStatus};

use crate::cli::CliRuntime;
use crate::runtime::OciError;

/// The embedded runtime: the `program` binary run with `leading_args` (its hidden shim
/// subcommand) for every operation, with its state under `root`.
pub fn embedded_runtime(
    program: impl Into<PathBuf>,
    leading_args: Vec<OsString>,
    root: impl Into<PathBuf>,
) -> Result<CliRuntime, OciError> {
    CliRuntime::new("embedded", program, leading_args, root)
}

/// A parsed shim command line: runc's global options, then one operation.
#[derive(Debug, PartialEq, Eq)]
struct Invocation {
    root: PathBuf,
    log: Option<PathBuf>,
    operation: Operation,
}

#[derive(Debug, PartialEq, Eq)]
enum Operation {
    Create {
        bundle: PathBuf,
        pid_file: Option<PathBuf>,
        console_socket: Option<PathBuf>,
        id: String,
    },
    Start {
        id: String,
    },
    State {
        id: String,
    },
    Kill {
        id: String,
        signal: i32,
        all: bool,
    },
    Delete {
        id: String,
        force: bool,
    },
    Exec {
        id: String,
        env: Vec<String>,
        cwd: Option<PathBuf>,
        args: Vec<String>,
    },
}

fn text(arg: OsString) -> Result<String, String> {
    arg.into_string()
        .map_err(|arg| format!("argument {arg:?} is not UTF-8"))
}

/// Parses the subset of runc's command line that [`CliRuntime`] sends.
fn parse(args: Vec<OsString>) -> Result<Invocation, String> {
    let mut args = args
        .into_iter()
        .map(text)
        .collect::<Result<Vec<_>, _>>()?
        .into_iter();
    let mut root = None;
    let mut log = None;
    let operation = loop {
        let Some(arg) = args.next() else {
            return Err("no operation given".into());
        };
        let mut value = |name: &str| args.next().ok_or(format!("{name} needs a value"));
        match arg.as_str() {
            "--root" => root = Some(PathBuf::from(value("--root")?)),
            "--log" => log = Some(PathBuf::from(value("--log")?)),
            "--log-format" => {
                let format = value("--log-format")?;
                if format != "json" {
                    return Err(format!("unsupported log format {format:?}"));
                }
            }
            _ => break arg,
        }
    };
    let root = root.ok_or("--root is required")?;
    let mut rest: Vec<String> = args.collect();
    let take_flag = |rest: &mut Vec<String>, flag: &str| {
        let before = rest.len();
        rest.retain(|a| a != flag);
        rest.len() != before
    };
    let single_id = |rest: Vec<String>| -> Result<String, String> {
        match <[String; 1]>::try_from(rest) {
            Ok([id]) => Ok(id),
            Err(rest) => Err(format!("expected a container id, got {rest:?}")),
        }
    };
    let operation = match operation.as_str() {
        "create" => {
            let mut bundle = None;
            let mut pid_file = None;
            let mut console_socket = None;
            let mut id = None;
            let mut it = rest.into_iter();
            while let Some(arg) = it.next() {
                match arg.as_str() {
                    "--bundle" | "-b" => bundle = it.next(),
                    "--pid-file" => pid_file = it.next(),
                    "--console-socket" => console_socket = it.next(),
                    _ if id.is_none() && !arg.starts_with('-') => id = Some(arg),
                    _ => return Err(format!("create: unexpected argument {arg:?}")),
                }
            }
            Operation::Create {
                bundle: PathBuf::from(bundle.ok_or("create: --bundle is required")?),
                pid_file: pid_file.map(PathBuf::from),
                console_socket: console_socket.map(PathBuf::from),
                id: id.ok_or("create: a container id is required")?,
            }
        }
        "start" => Operation::Start {
            id: single_id(rest)?,
        },
        "state" => Operation::State {
            id: single_id(rest)?,
        },
        "kill" => {
            let all = take_flag(&mut rest, "--all");
            let [id, signal] = <[String; 2]>::try_from(rest)
                .map_err(|rest| format!("kill: expected an id and a signal, got {rest:?}"))?;
            let signal = signal
                .parse()
                .map_err(|_| format!("kill: signal {signal:?} is not a number"))?;
            Operation::Kill { id, signal, all }
        }
        "delete" => {
            let force = take_flag(&mut rest, "--force");
            Operation::Delete {
                id: single_id(rest)?,
                force,
            }
        }
        "exec" => {
            let mut env = Vec::new();
            let mut cwd = None;
            let mut it = rest.into_iter();
            let id = loop {
                let arg = it.next().ok_or("exec: a container id is required")?;
                match arg.as_str() {
                    "--env" => env.push(it.next().ok_or("exec: --env needs a value")?),
                    "--cwd" => {
                        cwd = Some(PathBuf::from(it.next().ok_or("exec: --cwd needs a value")?))
                    }
                    _ => break arg,
                }
            };
            let args: Vec<String> = it.collect();
            if args.is_empty() {
                return Err("exec: a command is required".into());
            }
            Operation::Exec { id, env, cwd, args }
        }
        other => return Err(format!("unknown operation {other:?}")),
    };
    Ok(Invocation {
        root,
        log,
        operation,
    })
}

fn load(root: &Path, id: &str) -> Result<Container, String> {
    let dir = root.join(id);
    if !dir.exists() {
        return Err(format!("container {id} does not exist"));
    }
    Container::load(dir).map_err(|e| format!("loading container {id}: {e}"))
}

fn status_name(status: ContainerStatus) -> &'static str {
    match status {
        ContainerStatus::Creating => "creating",
        ContainerStatus::Created => "created",
        ContainerStatus::Running => "running",
        ContainerStatus::Stopped => "stopped",
        ContainerStatus::Paused => "paused",
    }
}

/// Runs one operation; `Ok` holds the shim's exit code.
fn run(invocation: Invocation) -> Result<i32, String> {
    let root = invocation.root;
    match invocation.operation {
        Operation::Create {
            bundle,
            pid_file,
            console_socket,
            id,
        } => {
            std::fs::create_dir_all(&root).map_err(|e| format!("{}: {e}", root.display()))?;
            ContainerBuilder::new(id.clone(), SyscallType::default())
                .with_executor(libcontainer::workload::default::DefaultExecutor {})
                .with_pid_file(pid_file)
                .map(|b| b.with_console_socket(console_socket))
                .and_then(|b| b.with_root_path(&root))
                .and_then(|b| b.validate_id())
                .map_err(|e| format!("create {id}: {e}"))?
                .as_init(&bundle)
                .with_systemd(false)
                .with_detach(true)
                .build()
                .map_err(|e| format!("create {id}: {e}"))?;
            Ok(0)
        }
        Operation::Start { id } => {
            load(&root, &id)?
                .start()
                .map_err(|e| format!("start {id}: {e}"))?;
            Ok(0)
        }
        Operation::State { id } => {
            let container = load(&root, &id)?;
            let state = serde_json::json!({
                "ociVersion": crate::bundle::OCI_VERSION,
                "id": id,
                "status": status_name(container.status()),
                "pid": container.pid().map(|pid| pid.as_raw()).unwrap_or(0),
                "bundle": container.bundle(),
            });
            println!("{state}");
            Ok(0)
        }
        Operation::Kill { id, signal, all } => {
            let signal = Signal::try_from(signal).map_err(|e| format!("kill {id}: {e}"))?;
            load(&root, &id)?
                .kill(signal, all)
                .map_err(|e| format!("kill {id}: {e}"))?;
            Ok(0)
        }
        Operation::Delete { id, force } => {
            if force && !root.join(&id).exists() {
                return Ok(0);
            }
            load(&root, &id)?
                .delete(force)
                .map_err(|e| format!("delete {id}: {e}"))?;
            Ok(0)
        }
        Operation::Exec { id, env, cwd, args } => {
            // The exec'd process is orphaned by libcontainer's intermediate process; be its
            // subreaper so that it comes back here to be waited for.
            nix::sys::prctl::set_child_subreaper(true)
                .map_err(|e| format!("exec {id}: becoming a subreaper: {e}"))?;
            let env: HashMap<String, String> = env
                .into_iter()
                .filter_map(|entry| {
                    entry
                        .split_once('=')
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                })
                .collect();
            let pid = ContainerBuilder::new(id.clone(), SyscallType::default())
                .with_executor(libcontainer::workload::default::DefaultExecutor {})
                .with_root_path(&root)
                .and_then(|b| b.validate_id())
                .map_err(|e| format!("exec {id}: {e}"))?
                .as_tenant()
                .with_detach(false)
                .with_cwd(cwd)
                .with_env(env)
                .with_container_args(args)
                .build()
                .map_err(|e| format!("exec {id}: {e}"))?;
            match waitpid(nix::unistd::Pid::from_raw(pid.as_raw()), None) {
                Ok(WaitStatus::Exited(_, code)) => Ok(code),
                Ok(WaitStatus::Signaled(_, signal, _)) => Ok(128 + signal as i32),
                Ok(other) => Err(format!("exec {id}: unexpected wait status {other:?}")),
                Err(e) => Err(format!("exec {id}: waiting for the process: {e}")),
            }
        }
    }
}

/// Writes an error where [`CliRuntime`] reads it: a JSON line in the log file when one was
/// given (standard error may be the container's), else standard error.
fn report(log: Option<&Path>, message: &str) {
    let line = serde_json::json!({"level": "error", "msg": message}).to_string();
    let written = log.is_some_and(|path| {
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .and_then(|mut file| writeln!(file, "{line}"))
            .is_ok()
    });
    if !written {
        eprintln!("{message}");
    }
}

/// The shim's entry point: runs one runtime operation given runc-style arguments (after the
/// program name and any subcommand) and returns the process's exit code. The caller must be
/// a fresh, single-threaded process, as the `skiff` binary is when started for its hidden
/// shim subcommand.
pub fn shim_main(args: impl IntoIterator<Item = OsString>) -> i32 {
    let args: Vec<OsString> = args.into_iter().collect();
    let log = args
        .iter()
        .position(|a| a == "--log")
        .and_then(|i| args.get(i + 1))
        .map(PathBuf::from);
    match parse(args).and_then(run) {
        Ok(code) => code,
        Err(message) => {
            report(log.as_deref(), &message);
            1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<OsString> {
        list.iter().map(OsString::from).collect()
    }

    #[test]
    fn parses_the_command_lines_the_cli_runtime_sends() {
        let create = parse(args(&[
            "--root",
            "/r",
            "--log",
            "/l.json",
            "--log-format",
            "json",
            "create",
            "--bundle",
            "/b",
            "--pid-file",
            "/p",
            "c1",
        ]))
        .unwrap();
        assert_eq!(create.root, PathBuf::from("/r"));
        assert_eq!(create.log, Some(PathBuf::from("/l.json")));
        assert_eq!(
            create.operation,
            Operation::Create {
                bundle: "/b".into(),
                pid_file: Some("/p".into()),
                console_socket: None,
                id: "c1".into()
            }
        );
        let with_terminal = parse(args(&[
            "--root",
            "/r",
            "create",
            "--bundle",
            "/b",
            "--pid-file",
            "/p",
            "--console-socket",
            "/tmp/console/socket",
            "c2",
        ]))
        .unwrap();
        assert_eq!(
            with_terminal.operation,
            Operation::Create {
                bundle: "/b".into(),
                pid_file: Some("/p".into()),
                console_socket: Some("/tmp/console/socket".into()),
                id: "c2".into()
            }
        );
        let kill = parse(args(&["--root", "/r", "kill", "--all", "c1", "9"])).unwrap();
        assert_eq!(
            kill.operation,
            Operation::Kill {
                id: "c1".into(),
                signal: 9,
                all: true
            }
        );
        let exec = parse(args(&[
            "--root",
            "/r",
            "exec",
            "--env",
            "A=1",
            "--cwd",
            "/tmp",
            "c1",
            "sh",
            "-c",
            "echo --all",
        ]))
        .unwrap();
        assert_eq!(
            exec.operation,
            Operation::Exec {
                id: "c1".into(),
                env: vec!["A=1".into()],
                cwd: Some("/tmp".into()),
                args: vec!["sh".into(), "-c".into(), "echo --all".into()],
            }
        );
        let delete = parse(args(&["--root", "/r", "delete", "--force", "c1"])).unwrap();
        assert_eq!(
            delete.operation,
            Operation::Delete {
                id: "c1".into(),
                force: true
            }
        );
    }

    #[test]
    fn rejects_malformed_command_lines_with_a_message() {
        for (line, expected) in [
            (vec!["create", "--bundle", "/b", "c1"], "--root is required"),
            (vec!["--root", "/r"], "no operation given"),
            (vec!["--root", "/r", "kill", "c1", "TERM"], "not a number"),
            (vec!["--root", "/r", "exec", "c1"], "a command is required"),
            (vec!["--root", "/r", "state"], "expected a container id"),
            (vec!["--root", "/r", "pause", "c1"], "unknown operation"),
        ] {
            let error = parse(args(&line)).unwrap_err();
            assert!(error.contains(expected), "{line:?}: {error}");
        }
    }
}
