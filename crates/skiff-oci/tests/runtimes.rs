//! The same container behaviours checked against each runtime: crun, runc and the embedded
//! libcontainer shim. Run as root.

mod support;

use std::io::Read;
use std::process::Stdio;
use std::time::Duration;

use nix::sys::signal::Signal;
use skiff_oci::{ContainerStatus, ExecProcess, OciError, OciRuntime, ProcessStdio};
use support::{cgroup_dirs, host_mounts_mention, processes_naming, unique_id, wait_for, Fixture};

const LIMIT: Duration = Duration::from_secs(20);

/// PID 1 is the container's command, the hostname is the configured one, the root is the
/// rootfs alone (a host file is invisible), a read-only volume is mounted, and exit code 0
/// is reported.
fn isolation(kind: &str) {
    let mut fixture = Fixture::new(kind);
    let id = unique_id("iso");
    let marker = fixture.dir.path().join("host-only-marker");
    std::fs::write(&marker, "host").unwrap();
    let script = format!(
        "echo pid=$$; echo hostname=$(hostname); \
         if test -e {marker}; then echo marker=visible; else echo marker=invisible; fi; \
         echo root=$(ls /); cat /data/hello; \
         if touch /data/new 2>/dev/null; then echo volume=writable; else echo volume=readonly; fi; \
         echo etc-hostname=$(cat /etc/hostname)",
        marker = marker.display()
    );
    let mut config = fixture.config(&id, &["/bin/sh", "-c", &script]);
    config.mounts.push(fixture.data_volume());
    let etc_hostname = fixture.dir.path().join("etc-hostname");
    std::fs::write(&etc_hostname, "pod-name\n").unwrap();
    config.mounts.push(skiff_oci::bundle::BindMount {
        destination: "/etc/hostname".into(),
        source: etc_hostname,
        readonly: true,
    });
    let (out_path, out) = fixture.output_file("isolation.out");
    let (err_path, err) = fixture.output_file("isolation.err");
    fixture
        .create(
            &id,
            &config,
            ProcessStdio {
                stdin: Stdio::null(),
                stdout: out.into(),
                stderr: err.into(),
            },
        )
        .unwrap();
    let created = fixture.runtime.state(&id).unwrap();
    assert_eq!(created.status, ContainerStatus::Created, "{created:?}");
    fixture.runtime.start(&id).unwrap();
    let stopped = wait_for(&fixture.runtime, &id, "stopped", LIMIT, |s| {
        s.status == ContainerStatus::Stopped
    });
    let output = std::fs::read_to_string(&out_path).unwrap();
    let errors = std::fs::read_to_string(&err_path).unwrap();
    assert_eq!(
        stopped.exit_code,
        Some(0),
        "stdout: {output}\nstderr: {errors}"
    );
    let lines: Vec<&str> = output.lines().collect();
    assert_eq!(
        lines,
        vec![
            "pid=1",
            &format!("hostname=host-{}", id.as_str()),
            "marker=invisible",
            "root=bin data dev etc proc sys tmp",
            "from the host volume",
            "volume=readonly",
            "etc-hostname=pod-name",
        ],
        "stderr: {errors}"
    );
    assert!(marker.exists(), "the marker must exist on the host");
}

/// An exit code other than 0 is reported as is.
fn exit_code(kind: &str) {
    let mut fixture = Fixture::new(kind);
    let id = unique_id("exit");
    let config = fixture.config(&id, &["/bin/sh", "-c", "exit 7"]);
    fixture.create(&id, &config, ProcessStdio::null()).unwrap();
    fixture.runtime.start(&id).unwrap();
    let state = wait_for(&fixture.runtime, &id, "stopped", LIMIT, |s| {
        s.status == ContainerStatus::Stopped
    });
    assert_eq!(state.exit_code, Some(7));
    assert_eq!(state.pid, None);
}

/// SIGTERM reaches a PID 1 that traps it (its exit code is reported), and SIGKILL ends one
/// that cannot trap it, reported as 137.
fn kill(kind: &str) {
    let mut fixture = Fixture::new(kind);
    let trapping = unique_id("term");
    let config = fixture.config(
        &trapping,
        &[
            "/bin/sh",
            "-c",
            "trap 'exit 3' TERM; echo ready; while :; do sleep 1; done",
        ],
    );
    let (out_path, out) = fixture.output_file("term.out");
    fixture
        .create(
            &trapping,
            &config,
            ProcessStdio {
                stdin: Stdio::null(),
                stdout: out.into(),
                stderr: Stdio::null(),
            },
        )
        .unwrap();
    fixture.runtime.start(&trapping).unwrap();
    let running = wait_for(&fixture.runtime, &trapping, "running", LIMIT, |s| {
        s.status == ContainerStatus::Running
    });
    assert!(running.pid.is_some_and(|pid| pid > 1), "{running:?}");
    // Signal only once the trap is installed, which the script announces after doing so.
    let deadline = std::time::Instant::now() + LIMIT;
    while !std::fs::read_to_string(&out_path)
        .unwrap()
        .contains("ready")
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the script never got ready"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    fixture
        .runtime
        .kill(&trapping, Signal::SIGTERM, false)
        .unwrap();
    let state = wait_for(&fixture.runtime, &trapping, "stopped", LIMIT, |s| {
        s.status == ContainerStatus::Stopped
    });
    assert_eq!(state.exit_code, Some(3));

    let sleeper = unique_id("kill");
    let config = fixture.config(&sleeper, &["/bin/sleep", "1000"]);
    fixture
        .create(&sleeper, &config, ProcessStdio::null())
        .unwrap();
    fixture.runtime.start(&sleeper).unwrap();
    wait_for(&fixture.runtime, &sleeper, "running", LIMIT, |s| {
        s.status == ContainerStatus::Running
    });
    fixture
        .runtime
        .kill(&sleeper, Signal::SIGKILL, false)
        .unwrap();
    let state = wait_for(&fixture.runtime, &sleeper, "stopped", LIMIT, |s| {
        s.status == ContainerStatus::Stopped
    });
    assert_eq!(state.exit_code, Some(137));
}

/// A process exec'd into a running container sees its hostname and filesystem, is not its
/// PID 1, gets the extra environment, and its exit code comes back.
fn exec(kind: &str) {
    let mut fixture = Fixture::new(kind);
    let id = unique_id("exec");
    let config = fixture.config(&id, &["/bin/sleep", "1000"]);
    fixture.create(&id, &config, ProcessStdio::null()).unwrap();
    fixture.runtime.start(&id).unwrap();
    wait_for(&fixture.runtime, &id, "running", LIMIT, |s| {
        s.status == ContainerStatus::Running
    });
    let process = ExecProcess {
        args: vec![
            "/bin/sh".into(),
            "-c".into(),
            "echo pid=$$ host=$(hostname) greeting=$GREETING root=$(ls /); exit 5".into(),
        ],
        env: vec!["GREETING=hello".into()],
        cwd: Some("/tmp".into()),
        terminal: false,
    };
    let mut child = fixture
        .runtime
        .exec(
            &id,
            &process,
            ProcessStdio {
                stdin: Stdio::null(),
                stdout: Stdio::piped(),
                stderr: Stdio::piped(),
            },
        )
        .unwrap();
    let mut output = String::new();
    child
        .child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut output)
        .unwrap();
    let mut errors = String::new();
    child
        .child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut errors)
        .unwrap();
    let code = child.wait().unwrap();
    assert_eq!(code, 5, "stdout: {output}\nstderr: {errors}");
    let line = output.trim();
    assert!(
        !line.starts_with("pid=1 "),
        "exec'd process is PID 1: {line}"
    );
    assert!(
        line.ends_with(&format!(
            "host=host-{} greeting=hello root=bin data dev etc proc sys tmp",
            id.as_str()
        )),
        "unexpected exec output {line:?}, stderr: {errors}"
    );
    // The container itself is untouched.
    let state = fixture.runtime.state(&id).unwrap();
    assert_eq!(state.status, ContainerStatus::Running);
}

/// No runtime process stays beside a running container; deleting it leaves nothing: no
/// runtime state, no record of ours, no cgroup (which held the CPU and memory limits asked
/// for), no mount, no process; the id is then unknown.
fn delete_leaves_nothing(kind: &str) {
    let mut fixture = Fixture::new(kind);
    let id = unique_id("del");
    let mut config = fixture.config(&id, &["/bin/sleep", "1000"]);
    config.resources.memory_limit = Some(64 * 1024 * 1024);
    config.resources.cpu_shares = Some(512);
    config.resources.cpu_quota = Some(50_000);
    config.mounts.push(fixture.data_volume());
    let cgroups_path = config.cgroups_path.clone().unwrap();
    fixture.create(&id, &config, ProcessStdio::null()).unwrap();
    fixture.runtime.start(&id).unwrap();
    let running = wait_for(&fixture.runtime, &id, "running", LIMIT, |s| {
        s.status == ContainerStatus::Running
    });
    let pid = running.pid.unwrap();
    let helpers = processes_naming(&id);
    assert!(
        helpers.is_empty(),
        "runtime processes stay beside the running container: {helpers:?}"
    );
    let cgroups = cgroup_dirs(&cgroups_path);
    assert!(
        cgroups.iter().any(|dir| dir.exists()),
        "the container's cgroup {cgroups_path} was not created"
    );
    let memory_limit = cgroups
        .iter()
        .map(|dir| dir.join("memory.limit_in_bytes"))
        .chain(cgroups.iter().map(|dir| dir.join("memory.max")))
        .find(|file| file.exists())
        .expect("no memory limit file in the container's cgroup");
    assert_eq!(
        std::fs::read_to_string(&memory_limit).unwrap().trim(),
        (64 * 1024 * 1024).to_string()
    );
    let read_first = |names: &[&str]| {
        cgroups
            .iter()
            .flat_map(|dir| names.iter().map(move |name| dir.join(name)))
            .find(|file| file.exists())
            .map(|file| std::fs::read_to_string(file).unwrap().trim().to_string())
    };
    match read_first(&["cpu.cfs_quota_us"]) {
        Some(quota) => {
            assert_eq!(quota, "50000");
            assert_eq!(read_first(&["cpu.cfs_period_us"]).unwrap(), "100000");
            assert_eq!(read_first(&["cpu.shares"]).unwrap(), "512");
        }
        None => assert_eq!(
            read_first(&["cpu.max"]).expect("no CPU limit file in the container's cgroup"),
            "50000 100000"
        ),
    }
    let state_dir = fixture.runtime.state_root().join(id.as_str());
    assert!(
        state_dir.exists(),
        "no runtime state at {}",
        state_dir.display()
    );

    // A running container is refused without force.
    assert!(fixture.runtime.delete(&id, false).is_err());
    fixture.runtime.kill(&id, Signal::SIGKILL, false).unwrap();
    wait_for(&fixture.runtime, &id, "stopped", LIMIT, |s| {
        s.status == ContainerStatus::Stopped
    });
    fixture.runtime.delete(&id, false).unwrap();

    assert!(
        !state_dir.exists(),
        "runtime state left at {}",
        state_dir.display()
    );
    let leftover: Vec<_> = cgroups.iter().filter(|dir| dir.exists()).collect();
    assert!(leftover.is_empty(), "cgroups left: {leftover:?}");
    assert!(
        !host_mounts_mention(&fixture.rootfs),
        "a mount of the rootfs is left on the host"
    );
    assert_eq!(
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None),
        Err(nix::errno::Errno::ESRCH),
        "the container's process {pid} still exists"
    );
    assert!(matches!(
        fixture.runtime.state(&id),
        Err(OciError::NotFound(_))
    ));
    let records = std::fs::read_dir(fixture.dir.path().join("runtime/containers"))
        .unwrap()
        .count();
    assert_eq!(records, 0, "records of ours left behind");
}

/// A forced delete kills a running container and removes it.
fn force_delete(kind: &str) {
    let mut fixture = Fixture::new(kind);
    let id = unique_id("force");
    let config = fixture.config(&id, &["/bin/sleep", "1000"]);
    fixture.create(&id, &config, ProcessStdio::null()).unwrap();
    fixture.runtime.start(&id).unwrap();
    let pid = wait_for(&fixture.runtime, &id, "running", LIMIT, |s| {
        s.status == ContainerStatus::Running
    })
    .pid
    .unwrap();
    fixture.runtime.delete(&id, true).unwrap();
    assert!(!fixture.runtime.state_root().join(id.as_str()).exists());
    assert_eq!(
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None),
        Err(nix::errno::Errno::ESRCH),
        "the killed process {pid} is still there (or left a zombie)"
    );
}

/// A command missing from the image fails at create or start with the runtime's message,
/// and an unknown id is NotFound.
fn errors(kind: &str) {
    let mut fixture = Fixture::new(kind);
    let id = unique_id("missing");
    let config = fixture.config(&id, &["/bin/no-such-command"]);
    let outcome = fixture
        .create(&id, &config, ProcessStdio::null())
        .and_then(|_| fixture.runtime.start(&id));
    match outcome {
        Err(OciError::Runtime { message, .. }) => {
            assert!(!message.is_empty(), "the runtime's message is empty")
        }
        Ok(()) => {
            // Some runtimes exec only after start returns: the failure shows as exit 127.
            let state = wait_for(&fixture.runtime, &id, "stopped", LIMIT, |s| {
                s.status == ContainerStatus::Stopped
            });
            assert_ne!(state.exit_code, Some(0), "{state:?}");
        }
        Err(other) => panic!("unexpected error {other:?}"),
    }
    let unknown = unique_id("unknown");
    assert!(matches!(
        fixture.runtime.state(&unknown),
        Err(OciError::NotFound(_))
    ));
    assert!(matches!(
        fixture.runtime.kill(&unknown, Signal::SIGTERM, false),
        Err(OciError::NotFound(_))
    ));
}

/// One field of `/proc/self/status` as a container printed it.
fn status_field(output: &str, name: &str) -> String {
    output
        .lines()
        .find_map(|line| line.strip_prefix(name))
        .unwrap_or_else(|| panic!("no {name} in {output}"))
        .trim()
        .to_string()
}

/// Runs `config` to completion and returns its standard output.
fn run_to_end(
    fixture: &mut Fixture,
    id: &skiff_oci::ContainerId,
    config: &skiff_oci::ContainerConfig,
) -> String {
    let (out_path, out) = fixture.output_file(&format!("{id}.out"));
    let (err_path, err) = fixture.output_file(&format!("{id}.err"));
    fixture
        .create(
            id,
            config,
            ProcessStdio {
                stdin: Stdio::null(),
                stdout: out.into(),
                stderr: err.into(),
            },
        )
        .unwrap();
    fixture.runtime.start(id).unwrap();
    let state = wait_for(&fixture.runtime, id, "stopped", LIMIT, |s| {
        s.status == ContainerStatus::Stopped
    });
    let output = std::fs::read_to_string(out_path).unwrap();
    let errors = std::fs::read_to_string(err_path).unwrap();
    assert_eq!(
        state.exit_code,
        Some(0),
        "stdout: {output}\nstderr: {errors}"
    );
    output
}

/// The security settings of the bundle take effect: Docker's default capabilities for root,
/// only the added one after dropping all, no effective capabilities for another user, the
/// user and groups asked for, no_new_privs, and a read-only root.
fn security(kind: &str) {
    let mut fixture = Fixture::new(kind);
    let script = "cat /proc/self/status; echo uid=$(id -u) gid=$(id -g) groups=$(id -G); \
                  if touch /written 2>/dev/null; then echo root=writable; else echo root=readonly; fi";

    let id = unique_id("caps-default");
    let config = fixture.config(&id, &["/bin/sh", "-c", script]);
    let output = run_to_end(&mut fixture, &id, &config);
    assert_eq!(status_field(&output, "CapBnd:"), "00000000a80425fb");
    assert_eq!(status_field(&output, "CapEff:"), "00000000a80425fb");
    assert_eq!(status_field(&output, "CapInh:"), "0000000000000000");
    assert_eq!(status_field(&output, "CapAmb:"), "0000000000000000");
    assert_eq!(status_field(&output, "NoNewPrivs:"), "0");
    assert!(output.contains("uid=0 gid=0"), "{output}");
    assert!(output.contains("root=writable"), "{output}");

    let id = unique_id("caps-restricted");
    let mut config = fixture.config(&id, &["/bin/sh", "-c", script]);
    config.capabilities.drop = vec!["ALL".into()];
    config.capabilities.add = vec!["NET_BIND_SERVICE".into()];
    config.process.user = skiff_oci::bundle::UserConfig {
        uid: 1000,
        gid: 2000,
        additional_gids: vec![3000],
    };
    config.no_new_privileges = true;
    config.readonly_rootfs = true;
    let output = run_to_end(&mut fixture, &id, &config);
    assert_eq!(status_field(&output, "CapBnd:"), "0000000000000400");
    assert_eq!(status_field(&output, "CapEff:"), "0000000000000000");
    assert_eq!(status_field(&output, "NoNewPrivs:"), "1");
    assert!(
        output.contains("uid=1000 gid=2000 groups=2000 3000"),
        "{output}"
    );
    assert!(output.contains("root=readonly"), "{output}");
}

macro_rules! runtime_tests {
    ($module:ident, $kind:literal) => {
        mod $module {
            #[test]
            fn isolation() {
                super::isolation($kind)
            }
            #[test]
            fn exit_code() {
                super::exit_code($kind)
            }
            #[test]
            fn kill() {
                super::kill($kind)
            }
            #[test]
            fn exec() {
                super::exec($kind)
            }
            #[test]
            fn delete_leaves_nothing() {
                super::delete_leaves_nothing($kind)
            }
            #[test]
            fn force_delete() {
                super::force_delete($kind)
            }
            #[test]
            fn security() {
                super::security($kind)
            }
            #[test]
            fn errors() {
                super::errors($kind)
            }
        }
    };
}

runtime_tests!(crun, "crun");
runtime_tests!(runc, "runc");
runtime_tests!(embedded, "embedded");
