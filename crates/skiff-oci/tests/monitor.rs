//! The node monitor keeps a container across a restart of its owner: the same PID 1 runs on,
//! its output waits for the next owner, and its exit code is recorded though the owner is
//! not its parent. Run as root.

mod support;

use std::io::Read;
use std::os::fd::OwnedFd;
use std::path::Path;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use skiff_oci::{
    generate_spec, write_bundle, CliRuntime, ContainerStatus, InputRequest, OciRuntime,
};
use support::{busybox_rootfs, require_root, unique_id, wait_for};

const LIMIT: Duration = Duration::from_secs(20);

/// The embedded runtime under `root`, creating containers through the monitor.
fn owner(root: &Path) -> CliRuntime {
    let shim = env!("CARGO_BIN_EXE_skiff-oci-shim");
    skiff_oci::embedded_runtime(shim, Vec::new(), root)
        .unwrap()
        .with_monitor(shim, vec!["node-monitor".into()])
}

/// The parent PID of `pid`, from `/proc/<pid>/stat`.
fn parent_of(pid: i32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat[stat.rfind(')')? + 1..]
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Reads from `fd` until `wanted` has been seen, failing after [`LIMIT`].
fn read_until(fd: OwnedFd, wanted: &str) -> String {
    let mut file = std::fs::File::from(fd);
    let deadline = Instant::now() + LIMIT;
    let mut seen = String::new();
    let mut buffer = [0u8; 4096];
    while !seen.contains(wanted) {
        assert!(Instant::now() < deadline, "no {wanted:?} in {seen:?}");
        let n = file.read(&mut buffer).unwrap();
        assert!(n > 0, "the output closed before {wanted:?}: {seen:?}");
        seen.push_str(&String::from_utf8_lossy(&buffer[..n]));
    }
    seen
}

#[test]
fn a_container_outlives_its_owner_and_its_exit_code_is_recorded() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let rootfs = busybox_rootfs(dir.path());
    let root = dir.path().join("runtime");
    let id = unique_id("monitored");
    let mut config = skiff_oci::ContainerConfig::new(
        &rootfs,
        ["sh", "-c", "while true; do echo tick; sleep 0.1; done"]
            .map(String::from)
            .to_vec(),
    );
    config.cgroups_path = Some(format!("/skiff-oci-test/{id}"));
    let bundle = dir.path().join("bundle");
    write_bundle(&bundle, &generate_spec(&config).unwrap()).unwrap();

    let first = owner(&root);
    let (out_read, out_write) = std::io::pipe().unwrap();
    let (err_read, err_write) = std::io::pipe().unwrap();
    let readers = [OwnedFd::from(out_read), OwnedFd::from(err_read)];
    first
        .create_with_output(
            &id,
            &bundle,
            [OwnedFd::from(out_write), OwnedFd::from(err_write)],
            &readers,
            InputRequest::default(),
        )
        .unwrap();
    first.start(&id).unwrap();
    let pid = wait_for(&first, &id, "running", LIMIT, |s| {
        s.status == ContainerStatus::Running
    })
    .pid
    .unwrap();
    let monitor = first.keeper_pid().expect("the monitor's PID");
    assert_eq!(
        parent_of(pid),
        Some(monitor),
        "PID 1 is the monitor's child"
    );
    // The owner goes, with its ends of the pipes: the container runs on and keeps writing.
    drop(readers);
    drop(first);

    let second = owner(&root);
    assert_eq!(
        second.keeper_pid(),
        Some(monitor),
        "the same monitor serves"
    );
    let state = second.state(&id).unwrap();
    assert_eq!(
        (state.status, state.pid),
        (ContainerStatus::Running, Some(pid))
    );
    let [stdout, _stderr] = second
        .recover_output(&id)
        .unwrap()
        .expect("the monitor kept the output pipes")
        .output;
    read_until(stdout, "tick");

    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), Signal::SIGKILL).unwrap();
    assert_eq!(second.wait_exit(&id, pid), 137);
    assert_eq!(second.state(&id).unwrap().exit_code, Some(137));
    second.delete(&id, false).unwrap();
    assert!(
        !root.join("containers").join(id.as_str()).exists(),
        "delete leaves no record"
    );
    drop(second);
    // With no container and no owner left, the monitor exits.
    let deadline = Instant::now() + LIMIT;
    while Path::new(&format!("/proc/{monitor}")).exists() {
        assert!(
            Instant::now() < deadline,
            "the monitor outlived its last container"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A container of the busybox root running `args`, created through the monitor with `input`:
/// its id, the owner, the read end of its stdout, and the owner's ends of its input.
fn create_with_input(
    dir: &Path,
    args: &[&str],
    input: InputRequest,
) -> (
    skiff_oci::ContainerId,
    CliRuntime,
    OwnedFd,
    skiff_oci::HeldInput,
) {
    let rootfs = busybox_rootfs(dir);
    let id = unique_id("input");
    let mut config =
        skiff_oci::ContainerConfig::new(&rootfs, args.iter().map(|a| a.to_string()).collect());
    config.process.terminal = input.terminal;
    config.cgroups_path = Some(format!("/skiff-oci-test/{id}"));
    let bundle = dir.join("bundle");
    write_bundle(&bundle, &generate_spec(&config).unwrap()).unwrap();
    let runtime = owner(&dir.join("runtime"));
    let (out_read, out_write) = std::io::pipe().unwrap();
    let (err_read, err_write) = std::io::pipe().unwrap();
    let readers = [OwnedFd::from(out_read), OwnedFd::from(err_read)];
    let held = runtime
        .create_with_output(
            &id,
            &bundle,
            [OwnedFd::from(out_write), OwnedFd::from(err_write)],
            &readers,
            input,
        )
        .unwrap();
    runtime.start(&id).unwrap();
    let [stdout, _] = readers;
    (id, runtime, stdout, held)
}

/// Removes the container and waits for the monitor it leaves idle to exit.
fn remove(runtime: CliRuntime, id: &skiff_oci::ContainerId) {
    let monitor = runtime.keeper_pid();
    runtime.delete(id, true).unwrap();
    drop(runtime);
    if let Some(monitor) = monitor {
        let deadline = Instant::now() + LIMIT;
        while Path::new(&format!("/proc/{monitor}")).exists() {
            assert!(Instant::now() < deadline, "the monitor did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

#[test]
fn stdin_through_the_monitor_survives_its_owner_and_closes_once() {
    use std::io::Write;
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let (id, first, stdout, held) = create_with_input(
        dir.path(),
        &[
            "sh",
            "-c",
            "while read line; do echo \"got $line\"; done; echo stdin closed",
        ],
        InputRequest {
            stdin: true,
            terminal: false,
        },
    );
    assert!(held.terminal.is_none());
    let mut stdin = std::fs::File::from(held.stdin.expect("the stdin pipe's write end"));
    stdin.write_all(b"one\n").unwrap();
    read_until(stdout.try_clone().unwrap(), "got one");
    // The owner goes with its end; the monitor's keeps the container's stdin open.
    drop(stdin);
    drop(stdout);
    drop(first);

    let second = owner(&dir.path().join("runtime"));
    let recovered = second
        .recover_output(&id)
        .unwrap()
        .expect("the monitor kept the streams");
    let [stdout, _] = recovered.output;
    let mut stdin = std::fs::File::from(recovered.input.stdin.expect("stdin is kept"));
    stdin.write_all(b"two\n").unwrap();
    let seen = read_until(stdout.try_clone().unwrap(), "got two");
    assert!(
        !seen.contains("stdin closed"),
        "stdin closed while the monitor kept it: {seen:?}"
    );
    // Closed for good: the monitor lets go, then the owner does; the container reads EOF.
    second.close_stdin(&id).unwrap();
    drop(stdin);
    read_until(stdout, "stdin closed");
    assert!(
        second
            .recover_output(&id)
            .ok()
            .flatten()
            .is_none_or(|r| r.input.stdin.is_none()),
        "a closed stdin is not handed out again"
    );
    remove(second, &id);
}

#[test]
fn a_terminal_from_the_console_socket_is_kept_by_the_monitor() {
    use std::io::Write;
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let (id, first, _stdout, held) = create_with_input(
        dir.path(),
        &[
            "sh",
            "-c",
            "while read line; do echo \"answer $line $(tty)\"; done",
        ],
        InputRequest {
            stdin: true,
            terminal: true,
        },
    );
    assert!(held.stdin.is_none(), "a terminal carries stdin");
    let master = held.terminal.expect("the terminal's master end");
    let mut terminal = std::fs::File::from(master.try_clone().unwrap());
    terminal.write_all(b"first\n").unwrap();
    let seen = read_until(master, "answer first /dev/");
    assert!(
        seen.contains("answer first /dev/pts/") || seen.contains("answer first /dev/console"),
        "{seen:?}"
    );
    drop(terminal);
    drop(first);

    let second = owner(&dir.path().join("runtime"));
    let recovered = second
        .recover_output(&id)
        .unwrap()
        .expect("the monitor kept the streams");
    let master = recovered.input.terminal.expect("the terminal is kept");
    let mut terminal = std::fs::File::from(master.try_clone().unwrap());
    terminal.write_all(b"second\n").unwrap();
    read_until(master, "answer second /dev/");
    remove(second, &id);
}

/// Runs `script` (with `sh -c`) as a runtime `create` in the monitor of `root`, on a thread;
/// its exit code comes on the returned channel.
fn create_in_monitor(
    root: &Path,
    name: &str,
    script: &str,
) -> std::sync::mpsc::Receiver<Result<i32, String>> {
    let shim = env!("CARGO_BIN_EXE_skiff-oci-shim");
    let client = skiff_oci::monitor::MonitorClient::new(
        root.to_path_buf(),
        shim.into(),
        vec!["node-monitor".into()],
    );
    let id = unique_id(name);
    let argv = ["sh", "-c", script].map(std::ffi::OsString::from).to_vec();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let fd = |_| OwnedFd::from(std::fs::File::open("/dev/null").unwrap());
        let fds = [0, 1, 2, 3].map(fd);
        let answer = client
            .create(&id, argv, false, fds, InputRequest::default(), None)
            .map(|(code, _)| code)
            .map_err(|e| e.to_string());
        let _ = tx.send(answer);
    });
    rx
}

#[test]
fn creates_of_different_containers_run_at_once_and_each_gets_its_own_answer() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("runtime");
    std::fs::create_dir_all(&root).unwrap();
    let gate = dir.path().join("gate");
    nix::unistd::mkfifo(&gate, nix::sys::stat::Mode::S_IRWXU).unwrap();
    let running = dir.path().join("running");
    // The first `create` says it runs, then blocks until the gate is written.
    let slow = create_in_monitor(
        &root,
        "slow",
        &format!(
            "touch {}; cat {} >/dev/null; exit 3",
            running.display(),
            gate.display()
        ),
    );
    let deadline = Instant::now() + LIMIT;
    while !running.exists() {
        assert!(Instant::now() < deadline, "the first create never ran");
        std::thread::sleep(Duration::from_millis(5));
    }
    let fast = create_in_monitor(&root, "fast", "exit 5");
    let fast_answer = fast.recv_timeout(LIMIT);
    let slow_before = slow.try_recv();
    // Open the gate whatever happened, so that nothing is left blocked.
    std::fs::write(&gate, "go").unwrap();
    assert_eq!(
        fast_answer,
        Ok(Ok(5)),
        "a create was not answered while another one ran"
    );
    assert!(
        slow_before.is_err(),
        "the blocked create was answered before its gate opened: {slow_before:?}"
    );
    assert_eq!(slow.recv_timeout(LIMIT), Ok(Ok(3)));
}
