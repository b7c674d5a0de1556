//! The node monitor keeps a container across a restart of its owner: the same PID 1 runs on,
//! its output waits for the next owner, and its exit code is recorded though the owner is
//! not its parent. Run as root.

mod support;

use std::io::Read;
use std::os::fd::OwnedFd;
use std::path::Path;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use skiff_oci::{generate_spec, write_bundle, CliRuntime, ContainerStatus, OciRuntime};
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
        .expect("the monitor kept the output pipes");
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
