//! Shared fixtures for the runtime tests and the benchmark: a busybox root filesystem,
//! runtimes under a temporary root, and guards that delete every container they saw.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use skiff_oci::bundle::{BindMount, ContainerConfig};
use skiff_oci::{
    generate_spec, write_bundle, CliRuntime, ContainerId, ContainerState, OciError, OciRuntime,
    ProcessStdio,
};

/// The statically linked busybox that Debian's `busybox-static` installs.
pub const BUSYBOX: &str = "/bin/busybox";

/// The applets the test root filesystem links to busybox.
const APPLETS: [&str; 12] = [
    "sh", "echo", "cat", "ls", "sleep", "hostname", "ps", "test", "true", "touch", "id", "mount",
];

/// Fails the test unless it runs as root: containers need it, and CI runs as root.
pub fn require_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "these tests create containers and must run as root (CI runs them as root)"
    );
}

/// Fails the test with an install hint unless `program` is on `PATH`.
pub fn require_program(program: &str, package: &str) {
    let found = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
        .unwrap_or(false);
    assert!(
        found,
        "{program} is not installed: install the Debian package {package}"
    );
}

/// Builds a minimal root filesystem in `dir`: busybox, its applets, and the empty
/// directories a container's mounts need.
pub fn busybox_rootfs(dir: &Path) -> PathBuf {
    assert!(
        Path::new(BUSYBOX).is_file(),
        "{BUSYBOX} is missing: install the Debian package busybox-static"
    );
    let rootfs = dir.join("rootfs");
    for sub in ["bin", "proc", "sys", "dev", "etc", "tmp", "data"] {
        std::fs::create_dir_all(rootfs.join(sub)).unwrap();
    }
    std::fs::copy(BUSYBOX, rootfs.join("bin/busybox")).unwrap();
    for applet in APPLETS {
        std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(applet)).unwrap();
    }
    rootfs
}

static SERIAL: AtomicU32 = AtomicU32::new(0);

/// A container id (and cgroup name) unique to this test run.
pub fn unique_id(prefix: &str) -> ContainerId {
    let serial = SERIAL.fetch_add(1, Ordering::Relaxed);
    ContainerId::new(format!("{prefix}-{}-{serial}", std::process::id())).unwrap()
}

/// The runtime under test, by name.
pub fn runtime(kind: &str, root: &Path) -> CliRuntime {
    match kind {
        "crun" => {
            require_program("crun", "crun");
            CliRuntime::crun(root).unwrap()
        }
        "runc" => {
            require_program("runc", "runc");
            CliRuntime::runc(root).unwrap()
        }
        "embedded" => {
            skiff_oci::embedded_runtime(env!("CARGO_BIN_EXE_skiff-oci-shim"), Vec::new(), root)
                .unwrap()
        }
        other => panic!("unknown runtime {other}"),
    }
}

/// The directories a cgroups path names in every mounted hierarchy (v1: one per controller;
/// v2: one).
pub fn cgroup_dirs(cgroups_path: &str) -> Vec<PathBuf> {
    let base = Path::new("/sys/fs/cgroup");
    let relative = cgroups_path.trim_start_matches('/');
    if base.join("cgroup.controllers").exists() {
        return vec![base.join(relative)];
    }
    std::fs::read_dir(base)
        .unwrap()
        .filter_map(|entry| entry.ok())
        .map(|entry| entry.path())
        .filter(|path| path.is_dir() && !path.is_symlink())
        .map(|hierarchy| hierarchy.join(relative))
        .collect()
}

/// Whether any line of this process's mount table names `path`.
pub fn host_mounts_mention(path: &Path) -> bool {
    let table = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let needle = path.to_string_lossy().to_string();
    table.lines().any(|line| line.contains(&needle))
}

/// A test's runtime, its temporary directories, and every container it created, deleted
/// (forcibly) when the fixture drops, whatever the test's outcome.
pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub rootfs: PathBuf,
    pub runtime: CliRuntime,
    created: Vec<(ContainerId, String)>,
}

impl Fixture {
    /// A fresh fixture for runtime `kind`.
    pub fn new(kind: &str) -> Self {
        require_root();
        let dir = tempfile::tempdir().unwrap();
        let rootfs = busybox_rootfs(dir.path());
        let runtime = runtime(kind, &dir.path().join("runtime"));
        Fixture {
            dir,
            rootfs,
            runtime,
            created: Vec::new(),
        }
    }

    /// A container config running `args` in the busybox rootfs, with its own cgroup.
    pub fn config(&self, id: &ContainerId, args: &[&str]) -> ContainerConfig {
        let mut config =
            ContainerConfig::new(&self.rootfs, args.iter().map(|a| a.to_string()).collect());
        config.hostname = Some(format!("host-{}", id.as_str()));
        config.cgroups_path = Some(format!("/skiff-oci-test/{}", id.as_str()));
        config
    }

    /// Writes the bundle for `config` and creates the container, recording it for clean-up.
    pub fn create(
        &mut self,
        id: &ContainerId,
        config: &ContainerConfig,
        stdio: ProcessStdio,
    ) -> Result<PathBuf, OciError> {
        let bundle = self.dir.path().join("bundles").join(id.as_str());
        write_bundle(&bundle, &generate_spec(config).unwrap()).unwrap();
        self.created
            .push((id.clone(), config.cgroups_path.clone().unwrap_or_default()));
        self.runtime.create(id, &bundle, stdio)?;
        Ok(bundle)
    }

    /// A file under the fixture's directory (outside the rootfs) to capture a stream.
    pub fn output_file(&self, name: &str) -> (PathBuf, std::fs::File) {
        let path = self.dir.path().join(name);
        let file = std::fs::File::create(&path).unwrap();
        (path, file)
    }

    /// A read-only bind mount of a fresh host directory at `/data`, holding `hello`.
    pub fn data_volume(&self) -> BindMount {
        let source = self.dir.path().join("volume");
        std::fs::create_dir_all(&source).unwrap();
        std::fs::write(source.join("hello"), "from the host volume\n").unwrap();
        BindMount {
            destination: "/data".into(),
            source,
            readonly: true,
        }
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        for (id, cgroups_path) in &self.created {
            let _ = self.runtime.delete(id, true);
            if !cgroups_path.is_empty() {
                for dir in cgroup_dirs(cgroups_path) {
                    let _ = std::fs::remove_dir(dir);
                }
            }
        }
        for dir in cgroup_dirs("/skiff-oci-test") {
            // Shared by concurrent tests: removed only once empty, so a failure is expected.
            let _ = std::fs::remove_dir(dir);
        }
    }
}

/// Polls the container's state until `done` holds, failing after `limit`.
pub fn wait_for(
    runtime: &dyn OciRuntime,
    id: &ContainerId,
    what: &str,
    limit: Duration,
    done: impl Fn(&ContainerState) -> bool,
) -> ContainerState {
    let deadline = Instant::now() + limit;
    loop {
        let state = runtime.state(id).unwrap();
        if done(&state) {
            return state;
        }
        assert!(
            Instant::now() < deadline,
            "container {id} not {what} within {limit:?}: last state {state:?}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The processes whose command line names `id`: a runtime or shim still working on it.
pub fn processes_naming(id: &ContainerId) -> Vec<(i32, String)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let words: Vec<String> = cmdline
            .split(|b| *b == 0)
            .map(|w| String::from_utf8_lossy(w).to_string())
            .collect();
        if words.iter().any(|w| w == id.as_str()) {
            found.push((pid, words.join(" ")));
        }
    }
    found
}
