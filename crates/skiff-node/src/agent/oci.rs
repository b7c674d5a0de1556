//! Containers through an OCI runtime (`--container-runtime oci`): the second implementation
//! behind the agent's process seam. A run becomes a bundle (the image's layers mounted as an
//! overlay at its `rootfs`, a `config.json` from the pod spec and the image config) that the
//! runtime creates and starts; the container's PID 1 is then this process's child (the
//! runtime makes it a child subreaper, or the node monitor's), its end watched through a
//! pidfd on the async runtime (no thread per container), and its output
//! goes through pipes into the run's log file, as a process run's does. A container with
//! `stdin` reads a pipe whose write end attach sessions use; one with `tty` runs on a terminal
//! the runtime opens (its master end comes back through the console socket), whose output is
//! the container's log, as the kubelet logs a terminal.
//!
//! Never `waitpid(-1)`: tokio reaps its own children by PID, and a wildcard wait would steal
//! their exit statuses. Orphans that are neither tokio's nor a container (a runtime's helper
//! that outlived it) are collected by [`sweep_zombies`], which reaps only children that were
//! already zombies at its previous pass and are not containers.

use std::collections::HashSet;
use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Container, Pod};
use nix::sys::signal::Signal;
use nix::sys::wait::waitpid;
use nix::unistd::Pid;
use skiff_oci::bundle::{BindMount, CapabilityChanges, NamespaceMode, Namespaces, UserConfig};
use skiff_oci::{
    ContainerConfig, ContainerId, ExecProcess, HeldInput, InputRequest, OciRuntime, ProcessStdio,
};
use tokio::sync::watch;

use super::logfiles::LogWriter;
use super::process::{copy_log, ContainerProcess};
use super::rootfs::{resolve_in_root, RunAs, RunDirs};
use super::runtime::{ExecFn, ExecOutput, ImageRoot};
use super::sandbox::Mount;
use super::streams::AttachConfig;

/// How long a container's output pipes may stay open after its PID 1 ended (a process that
/// escaped the container holding them) before the run counts as over anyway.
const PIPE_DRAIN_LIMIT: Duration = Duration::from_secs(2);

/// One container run under the runtime: what signals, exec and the end of the run need.
pub struct OciContainer {
    /// The runtime that created it.
    pub runtime: Arc<dyn OciRuntime>,
    /// Its id in the runtime (`<pod uid>-<container name>`, the same for every run).
    pub id: ContainerId,
    /// Its root's mount point, unmounted when the run ends.
    pub rootfs: PathBuf,
    /// Its cgroup as the runtime took it, and where the agent's own driver keeps it.
    pub cgroup: Option<(String, Vec<PathBuf>)>,
    /// Held by each runtime call on the container: a runtime rewrites its state file in
    /// place, so a `kill` racing a `delete` could make the delete read half a file.
    operations: Mutex<()>,
}

impl std::fmt::Debug for OciContainer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} container {}", self.runtime.name(), self.id)
    }
}

impl OciContainer {
    /// Sends `signal` to the container's PID 1 through the runtime, off the async threads; a
    /// container already gone is not an error.
    pub fn signal(self: &Arc<Self>, signal: Signal) {
        let container = self.clone();
        tokio::task::spawn_blocking(move || {
            let _one_at_a_time = container.operations.lock();
            if let Err(e) = container.runtime.kill(&container.id, signal, false) {
                tracing::debug!(container = %container.id, %signal, error = %e, "signalling a container failed");
            }
        });
    }

    /// Deletes the ended container from the runtime (its state, and the mounts it made) and
    /// unmounts its root. Blocking.
    pub fn release(&self) {
        let _one_at_a_time = self.operations.lock();
        remove_previous(self.runtime.as_ref(), &self.id, &self.rootfs);
        if let Some((path, managed)) = &self.cgroup {
            remove_runtime_cgroups(path, managed);
        }
    }
}

/// The PIDs of running containers' PID 1s, which [`sweep_zombies`] leaves to their waiters.
fn container_pids() -> &'static Mutex<HashSet<i32>> {
    static PIDS: OnceLock<Mutex<HashSet<i32>>> = OnceLock::new();
    PIDS.get_or_init(Mutex::default)
}

/// The runtime's id for a pod's container: `<pod uid>-<container name>`, the same for every
/// run, so a new run replaces whatever the previous one left.
pub fn container_id(pod_uid: &str, container: &str) -> Result<ContainerId, String> {
    ContainerId::new(format!("{pod_uid}-{container}")).map_err(|e| e.to_string())
}

/// Removes what an earlier run of `id` left: the runtime's container (killed if it still
/// runs) and the root mounted at `rootfs`.
fn remove_previous(runtime: &dyn OciRuntime, id: &ContainerId, rootfs: &Path) {
    for attempt in 1..=DELETE_ATTEMPTS {
        match runtime.delete(id, true) {
            Ok(()) | Err(skiff_oci::OciError::NotFound(_)) => break,
            Err(e) if attempt == DELETE_ATTEMPTS => {
                tracing::warn!(container = %id, error = %e, "deleting a container failed")
            }
            Err(_) => std::thread::sleep(DELETE_RETRY),
        }
    }
    unmount_root(rootfs);
}

/// The pod UID and container name a runtime id (`<pod uid>-<container name>`) stands for;
/// pod UIDs are 36-character UUIDs.
pub fn pod_and_container(id: &ContainerId) -> Option<(&str, &str)> {
    let text = id.as_str();
    let uid = text.get(..36)?;
    let name = text.get(36..)?.strip_prefix('-')?;
    (!name.is_empty()).then_some((uid, name))
}

/// Removes a container no worker owns (its pod is gone, or the agent stops before its worker
/// adopted it): killed and deleted from the runtime, its root unmounted, the cgroups the
/// runtime made outside `managed` hierarchies (mount points) removed. Blocking.
pub fn remove_unowned(
    runtime: &dyn OciRuntime,
    id: &ContainerId,
    pods_dir: &Path,
    managed: &[PathBuf],
) {
    let Some((uid, name)) = pod_and_container(id) else {
        return;
    };
    let container_dir = pods_dir.join(uid).join("containers").join(name);
    let cgroups_path = std::fs::read_to_string(container_dir.join("bundle").join("config.json"))
        .ok()
        .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
        .and_then(|config| {
            config
                .pointer("/linux/cgroupsPath")
                .and_then(|p| p.as_str())
                .map(str::to_string)
        });
    remove_previous(runtime, id, &RunDirs::under(&container_dir).root);
    if let Some(path) = cgroups_path {
        remove_runtime_cgroups(&path, managed);
    }
}

/// How often a failed `delete` is tried in all, and the pause between tries.
const DELETE_ATTEMPTS: u32 = 3;
const DELETE_RETRY: Duration = Duration::from_millis(100);

/// Removes the cgroups a runtime made for `path` in the hierarchies the agent does not manage
/// (a v1 machine's `cpuset`, `devices`, `blkio`...), and their parents once empty: the
/// kernel refuses to remove a cgroup with children or processes, so a sibling's are kept.
fn remove_runtime_cgroups(path: &str, managed: &[PathBuf]) {
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let relative = path.trim_start_matches('/');
    for mount in skiff_cgroups::detect::parse_mountinfo(&mounts) {
        if managed
            .iter()
            .any(|dir| dir.starts_with(&mount.mount_point))
        {
            continue;
        }
        let mut dir = mount.mount_point.join(relative);
        while dir != mount.mount_point && dir.starts_with(&mount.mount_point) {
            if std::fs::remove_dir(&dir).is_err() && dir.exists() {
                break;
            }
            if !dir.pop() {
                break;
            }
        }
    }
}

fn unmount_root(rootfs: &Path) {
    // Detached, so a process still holding a file there cannot keep the mount busy.
    match nix::mount::umount2(rootfs, nix::mount::MntFlags::MNT_DETACH) {
        Ok(()) | Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => {}
        Err(e) => {
            tracing::warn!(root = %rootfs.display(), error = %e, "unmounting a container's root failed")
        }
    }
}

/// Everything one run needs beyond the pod spec.
pub struct OciRun<'a> {
    /// The runtime.
    pub runtime: Arc<dyn OciRuntime>,
    /// The pod.
    pub pod: &'a Pod,
    /// The container.
    pub container: &'a Container,
    /// The container's directory under the pod's (root, upper, work, etc, bundle).
    pub container_dir: &'a Path,
    /// The image's files.
    pub image: &'a ImageRoot,
    /// The resolved command.
    pub command: Vec<String>,
    /// The whole environment.
    pub env: Vec<(String, String)>,
    /// The working directory inside the container.
    pub working_dir: &'a str,
    /// Who PID 1 runs as.
    pub run_as: RunAs,
    /// Volumes to bind.
    pub mounts: &'a [Mount],
    /// The pod's hostname.
    pub hostname: &'a str,
    /// The pod's pinned network namespace; none keeps the host's network (and UTS).
    pub netns: Option<&'a Path>,
    /// A PID namespace to join instead of a new one: an ephemeral container's target's.
    pub pid_namespace: Option<&'a Path>,
    /// The container's cgroup, as runtimes take it (`/skiff/kubepods/.../<container>`).
    pub cgroups_path: Option<String>,
    /// The container's cgroup directories in the hierarchies the agent manages.
    pub managed_cgroup_dirs: Vec<PathBuf>,
    /// The run's log file.
    pub log_path: &'a Path,
    /// Where the log is rotated.
    pub log_cap: u64,
}

/// The container's `config.json` description: pure, from the run's inputs.
pub fn container_config(run: &OciRun<'_>, rootfs: &Path, etc_dir: &Path) -> ContainerConfig {
    let context = run.container.security_context.as_ref();
    let pod_context = run
        .pod
        .spec
        .as_ref()
        .and_then(|s| s.security_context.as_ref());
    let mut config = ContainerConfig::new(rootfs, run.command.clone());
    config.process.env = run.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
    config.process.cwd = run.working_dir.to_string();
    config.process.terminal = AttachConfig::of(run.container).tty;
    let mut additional_gids: Vec<u32> = pod_context
        .and_then(|c| c.supplemental_groups.clone())
        .unwrap_or_default()
        .into_iter()
        .chain(pod_context.and_then(|c| c.fs_group))
        .filter_map(|gid| u32::try_from(gid).ok())
        .collect();
    additional_gids.sort_unstable();
    additional_gids.dedup();
    config.process.user = UserConfig {
        uid: run.run_as.uid,
        gid: run.run_as.gid,
        additional_gids,
    };
    config.hostname = Some(run.hostname.to_string());
    config.mounts = run
        .mounts
        .iter()
        .map(|m| BindMount {
            destination: m.target.clone(),
            source: m.source.clone(),
            readonly: m.read_only,
        })
        .chain(["hosts", "hostname", "resolv.conf"].map(|file| BindMount {
            destination: format!("/etc/{file}"),
            source: etc_dir.join(file),
            readonly: false,
        }))
        .collect();
    let (network, uts) = match run.netns {
        Some(netns) => (
            NamespaceMode::Join(netns.to_path_buf()),
            NamespaceMode::Private,
        ),
        None => (NamespaceMode::Host, NamespaceMode::Host),
    };
    config.namespaces = Namespaces {
        pid: match run.pid_namespace {
            Some(target) => NamespaceMode::Join(target.to_path_buf()),
            None => NamespaceMode::Private,
        },
        ipc: NamespaceMode::Private,
        uts,
        network,
    };
    config.cgroups_path = run.cgroups_path.clone();
    if let Some(capabilities) = context.and_then(|c| c.capabilities.as_ref()) {
        config.capabilities = CapabilityChanges {
            add: capabilities.add.clone().unwrap_or_default(),
            drop: capabilities.drop.clone().unwrap_or_default(),
        };
    }
    config.privileged = context.and_then(|c| c.privileged).unwrap_or(false);
    config.no_new_privileges = context.and_then(|c| c.allow_privilege_escalation) == Some(false);
    config.readonly_rootfs = context
        .and_then(|c| c.read_only_root_filesystem)
        .unwrap_or(false);
    config
}

/// The overlay mount options stacking the image under the run's upper directory.
pub fn overlay_options(image: &ImageRoot, dirs: &RunDirs) -> String {
    let lower = match image {
        ImageRoot::Overlay(layers) => layers
            .iter()
            .map(|d| d.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(":"),
        ImageRoot::Merged(dir) => dir.to_string_lossy().into_owned(),
    };
    format!(
        "lowerdir={lower},upperdir={},workdir={}",
        dirs.upper.to_string_lossy(),
        dirs.work.to_string_lossy()
    )
}

/// Creates and starts the container of one run (blocking: call it on a blocking thread) and
/// returns its handle, whose `done` is set once its PID 1 has been reaped. The run's `/etc`
/// files must already be written into the run's `etc` directory.
pub fn launch(run: OciRun<'_>, id: ContainerId) -> Result<ContainerProcess, String> {
    // The runtime's create moves the container's first process into its cgroups; the kernel
    // makes the first such move after a quiet spell wait a grace period, which can pass while
    // the root, the bundle and the runtime's own start are under way.
    skiff_cgroups::migration_lock::start_migration_lock_switch();
    let dirs = RunDirs::under(run.container_dir);
    let began = Instant::now();
    remove_previous(run.runtime.as_ref(), &id, &dirs.root);
    let began = start_step("remove_previous", began);
    dirs.prepare()
        .map_err(|e| format!("preparing the container's root: {e}"))?;
    let options = overlay_options(run.image, &dirs);
    nix::mount::mount(
        Some("overlay"),
        &dirs.root,
        Some("overlay"),
        nix::mount::MsFlags::empty(),
        Some(options.as_str()),
    )
    .map_err(|e| format!("mounting the container's root: {e}"))?;
    start_step("rootfs", began);
    let started = start_in_root(&run, &id, &dirs);
    if started.is_err() {
        remove_previous(run.runtime.as_ref(), &id, &dirs.root);
    }
    started
}

/// Reports how long one step of starting a container took, from `began` (returned: now, the
/// next step's beginning), for the pods benchmark's breakdown of a start; it shows with
/// `SKIFF_LOG=skiff_node::start_timing=debug`.
pub fn start_step(step: &'static str, began: Instant) -> Instant {
    let now = Instant::now();
    let micros =
        u64::try_from(now.saturating_duration_since(began).as_micros()).unwrap_or(u64::MAX);
    tracing::debug!(target: "skiff_node::start_timing", step, micros, "start step");
    now
}

/// Makes the directory `path` of the container's root under `root` (the missing working
/// directory a runtime creates): each missing component is made in its parent as resolved
/// inside the root, so no link in the image leads outside it. The directory on the host, or
/// `None` when it cannot be made.
fn make_dir_in_root(root: &Path, path: &str) -> Option<PathBuf> {
    let mut inside = String::new();
    let mut dir = root.to_path_buf();
    for part in path.split('/').filter(|p| !p.is_empty() && *p != ".") {
        inside.push('/');
        inside.push_str(part);
        dir = match resolve_in_root(root, &inside) {
            Some(found) => found,
            None if part != ".." => {
                let made = dir.join(part);
                std::fs::create_dir(&made).ok()?;
                made
            }
            None => return None,
        };
    }
    dir.is_dir().then_some(dir)
}

fn start_in_root(
    run: &OciRun<'_>,
    id: &ContainerId,
    dirs: &RunDirs,
) -> Result<ContainerProcess, String> {
    // The working directory is made inside the root as a runtime would, resolved there so
    // that no link in the image leads outside it.
    let began = Instant::now();
    let _ = make_dir_in_root(&dirs.root, run.working_dir);
    let config = container_config(run, &dirs.root, &dirs.etc);
    let spec = skiff_oci::generate_spec(&config).map_err(|e| e.to_string())?;
    let bundle = run.container_dir.join("bundle");
    std::fs::create_dir_all(&bundle).map_err(|e| format!("creating the bundle: {e}"))?;
    skiff_oci::write_bundle(&bundle, &spec).map_err(|e| e.to_string())?;
    let writer =
        LogWriter::open(run.log_path, run.log_cap).map_err(|e| format!("opening the log: {e}"))?;
    let began = start_step("bundle", began);
    let (out_read, out_write) = pipe()?;
    let (err_read, err_write) = pipe()?;
    let readers = [out_read, err_read];
    let attach = AttachConfig::of(run.container);
    // Our write ends close when `create` returns: only the container holds them then.
    let input = run
        .runtime
        .create_with_output(
            id,
            &bundle,
            [out_write, err_write],
            &readers,
            input_request(&attach),
        )
        .map_err(|e| format!("failed to create containerd task: {e}"))?;
    let began = start_step("create", began);
    let pid = run
        .runtime
        .created_pid(id)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| "the runtime reported no process for the container".to_string())?;
    container_pids()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(pid);
    let began = start_step("pid", began);
    if let Err(e) = run.runtime.start(id) {
        container_pids()
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&pid);
        return Err(format!("failed to start containerd task: {e}"));
    }
    start_step("start", began);
    let container = OciContainer {
        runtime: run.runtime.clone(),
        id: id.clone(),
        rootfs: dirs.root.clone(),
        cgroup: run
            .cgroups_path
            .clone()
            .map(|path| (path, run.managed_cgroup_dirs.clone())),
        operations: Mutex::new(()),
    };
    Ok(follow(container, pid, readers, writer, &attach, input))
}

/// What the runtime is asked to give a container to read: a stdin pipe for `stdin`, a
/// terminal for `tty` (which carries stdin too).
fn input_request(attach: &AttachConfig) -> InputRequest {
    InputRequest {
        stdin: attach.stdin && !attach.tty,
        terminal: attach.tty,
    }
}

/// The handle of a running container: its output copied from `readers` (and from its
/// terminal, if it has one) into the log, its input's ends given to attach sessions, its PID 1
/// waited for through the runtime, `done` set once it has ended.
fn follow(
    container: OciContainer,
    pid: i32,
    readers: [OwnedFd; 2],
    writer: LogWriter,
    attach: &AttachConfig,
    input: HeldInput,
) -> ContainerProcess {
    let writer = Arc::new(Mutex::new(writer));
    let output = super::streams::output_channel();
    let mut copiers = readers
        .into_iter()
        .zip(["stdout", "stderr"])
        .filter_map(|(fd, stream)| {
            let pipe = tokio::net::unix::pipe::Receiver::from_owned_fd(fd).ok()?;
            Some(tokio::spawn(copy_log(
                pipe,
                stream,
                writer.clone(),
                output.clone(),
            )))
        })
        .collect::<Vec<_>>();
    let HeldInput { stdin, terminal } = input;
    if let Some(reader) = terminal.as_ref().and_then(super::streams::terminal_reader) {
        copiers.push(tokio::spawn(copy_log(
            reader,
            "stdout",
            writer.clone(),
            output.clone(),
        )));
    }
    let stdin = stdin.and_then(|fd| {
        tokio::net::unix::pipe::Sender::from_owned_fd(fd)
            .map(|pipe| Box::new(pipe) as super::streams::Input)
            .map_err(|e| tracing::warn!(container = %container.id, error = %e, "the container's stdin cannot be written"))
            .ok()
    });
    let (tx, rx) = watch::channel(None);
    let closing = (container.runtime.clone(), container.id.clone());
    let attach = Arc::new(
        super::streams::Attachable::new(attach, output, stdin, terminal, rx.clone())
            .with_stdin_closer(Box::new(move || {
                let (runtime, id) = closing.clone();
                // The runtime's copy goes too, so the container reads end-of-file.
                tokio::task::spawn_blocking(move || {
                    if let Err(e) = runtime.close_stdin(&id) {
                        tracing::debug!(container = %id, error = %e, "closing a container's stdin failed");
                    }
                });
            })),
    );
    let container = Arc::new(container);
    let waited = container.clone();
    tokio::spawn(async move {
        // Waited for here, without a thread: the runtime's wait below then only collects
        // the exit code of a process already gone.
        process_ended(pid).await;
        let code = tokio::task::spawn_blocking(move || waited.runtime.wait_exit(&waited.id, pid))
            .await
            .unwrap_or(-1);
        container_pids()
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&pid);
        for copier in copiers {
            let _ = tokio::time::timeout(PIPE_DRAIN_LIMIT, copier).await;
        }
        if let Ok(mut w) = writer.lock() {
            w.flush();
        }
        let _ = tx.send(Some(code));
    });
    ContainerProcess {
        pgid: pid,
        done: rx,
        attach,
        oci: Some(container),
    }
}

/// Returns once the process `pid` has ended (at once when it is gone or cannot be watched,
/// leaving the wait to the runtime), through a pidfd on the agent's runtime rather than a
/// blocked thread per container.
#[allow(unsafe_code)] // Only to register the pidfd with the runtime's poller.
async fn process_ended(pid: i32) {
    let Some(fd) = skiff_oci::monitor::process_fd(pid) else {
        return;
    };
    // SAFETY: the pidfd is owned by the `AsyncFd`, which neither closes nor replaces it
    // while it is registered.
    let watched = unsafe {
        tokio::io::unix::AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE)
    };
    let Ok(watched) = watched else {
        return;
    };
    let _ = watched.readable().await;
}

/// What a container left by an earlier run of the agent is, as the runtime reports it.
pub enum Leftover {
    /// It still runs: its handle, with its output flowing again into `log_path`.
    Running(ContainerProcess),
    /// It ended while the agent was down, with this exit code: its handle, already done.
    Ended(ContainerProcess),
}

/// Takes over the container `id` an earlier run of the agent created, when the runtime
/// still runs it and kept its output pipes, or recorded how it ended (blocking: call it on a
/// blocking thread); `None` when it cannot be adopted (it is then replaced by a new run).
pub fn adopt(
    runtime: Arc<dyn OciRuntime>,
    id: ContainerId,
    container_dir: &Path,
    cgroup: Option<(String, Vec<PathBuf>)>,
    attach: &AttachConfig,
    log_path: &Path,
    log_cap: u64,
) -> Option<Leftover> {
    let state = runtime.state(&id).ok()?;
    let container = OciContainer {
        runtime: runtime.clone(),
        id: id.clone(),
        rootfs: RunDirs::under(container_dir).root,
        cgroup,
        operations: Mutex::new(()),
    };
    if let Some(code) = state.exit_code {
        let (_tx, done) = watch::channel(Some(code));
        let attach = Arc::new(super::streams::Attachable::new(
            &super::streams::AttachConfig::default(),
            super::streams::output_channel(),
            None,
            None,
            done.clone(),
        ));
        return Some(Leftover::Ended(ContainerProcess {
            pgid: 0,
            done,
            attach,
            oci: Some(Arc::new(container)),
        }));
    }
    let pid = match (state.status, state.pid) {
        (skiff_oci::ContainerStatus::Running, Some(pid)) => pid,
        _ => return None,
    };
    let recovered = runtime.recover_output(&id).ok().flatten()?;
    let writer = LogWriter::open(log_path, log_cap).ok()?;
    Some(Leftover::Running(follow(
        container,
        pid,
        recovered.output,
        writer,
        attach,
        recovered.input,
    )))
}

/// What exec into an adopted container needs of its process.
pub struct BundleProcess {
    /// The environment.
    pub env: Vec<(String, String)>,
    /// The working directory inside the container.
    pub working_dir: String,
    /// Who it runs as.
    pub run_as: RunAs,
}

/// The environment, working directory and user of a container's process, from its bundle's
/// `config.json`, for exec into an adopted container.
pub fn bundle_process(container_dir: &Path) -> Option<BundleProcess> {
    let text = std::fs::read_to_string(container_dir.join("bundle").join("config.json")).ok()?;
    let config: serde_json::Value = serde_json::from_str(&text).ok()?;
    let env = config
        .pointer("/process/env")?
        .as_array()?
        .iter()
        .filter_map(|e| e.as_str()?.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let cwd = config
        .pointer("/process/cwd")
        .and_then(|c| c.as_str())
        .unwrap_or("/")
        .to_string();
    let id = |field: &str| {
        config
            .pointer(&format!("/process/user/{field}"))
            .and_then(|v| v.as_u64())
            .and_then(|v| u32::try_from(v).ok())
            .unwrap_or(0)
    };
    Some(BundleProcess {
        env,
        working_dir: cwd,
        run_as: RunAs {
            uid: id("uid"),
            gid: id("gid"),
        },
    })
}

fn pipe() -> Result<(OwnedFd, OwnedFd), String> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|e| format!("creating the container's output pipe: {e}"))
}

/// Runs commands inside a running container through the runtime's `exec`, with its
/// environment and working directory, output combined, bounded by the timeout.
pub fn exec_fn(container: Arc<OciContainer>, env: Vec<(String, String)>, cwd: String) -> ExecFn {
    Arc::new(move |command: Vec<String>, timeout: Duration| {
        let container = container.clone();
        let process = ExecProcess {
            args: command,
            env: env.iter().map(|(k, v)| format!("{k}={v}")).collect(),
            cwd: Some(cwd.clone()),
            terminal: false,
        };
        Box::pin(async move { run_exec(container, process, timeout).await })
    })
}

async fn run_exec(
    container: Arc<OciContainer>,
    process: ExecProcess,
    timeout: Duration,
) -> io::Result<ExecOutput> {
    let (read, write) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(io::Error::from)?;
    let write_again = write.try_clone()?;
    let stdio = ProcessStdio {
        stdin: Stdio::null(),
        stdout: Stdio::from(write),
        stderr: Stdio::from(write_again),
    };
    let runtime = container.runtime.clone();
    let id = container.id.clone();
    let mut child = tokio::task::spawn_blocking(move || runtime.exec(&id, &process, stdio))
        .await
        .map_err(io::Error::other)?
        .map_err(io::Error::other)?;
    let runtime_pid = child.child.id();
    let mut pipe = tokio::net::unix::pipe::Receiver::from_owned_fd(read)?;
    let waited = tokio::task::spawn_blocking(move || child.wait());
    let work = async {
        let mut output = Vec::new();
        tokio::io::AsyncReadExt::read_to_end(&mut pipe, &mut output).await?;
        let code = waited
            .await
            .map_err(io::Error::other)?
            .map_err(io::Error::other)?;
        Ok(ExecOutput {
            exit_code: code,
            output: String::from_utf8_lossy(&output).into_owned(),
        })
    };
    match tokio::time::timeout(timeout, work).await {
        Ok(result) => result,
        Err(_) => {
            if let Ok(pid) = i32::try_from(runtime_pid) {
                let _ = nix::sys::signal::kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
            Err(io::Error::new(io::ErrorKind::TimedOut, "command timed out"))
        }
    }
}

/// Zombie children seen at one pass of [`sweep_zombies`], reaped if still there at the next.
#[derive(Debug, Default)]
pub struct ZombieSweep {
    seen: HashSet<i32>,
}

impl ZombieSweep {
    /// Which of `zombies` (zombie children of this process) to reap now: those already seen
    /// at the previous pass (tokio or a runtime call would have collected its own by then)
    /// and not a container's PID 1. Pure.
    pub fn pick(&mut self, zombies: &[i32], containers: &HashSet<i32>) -> Vec<i32> {
        let now: HashSet<i32> = zombies
            .iter()
            .copied()
            .filter(|pid| !containers.contains(pid))
            .collect();
        let reap = now.intersection(&self.seen).copied().collect();
        self.seen = now;
        reap
    }
}

/// Zombie children of this process, from `/proc/<pid>/stat` (state `Z`, parent us).
fn zombie_children() -> Vec<i32> {
    let me = std::process::id() as i32;
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|stat| {
                    let after = stat.get(stat.rfind(')')? + 1..)?;
                    let mut fields = after.split_whitespace();
                    let state = fields.next()?;
                    let ppid: i32 = fields.next()?.parse().ok()?;
                    Some(state == "Z" && ppid == me)
                })
                .unwrap_or(false)
        })
        .collect()
}

/// One pass of the orphan sweep: reaps zombie children that are no one's to collect.
pub fn sweep_zombies(sweep: &mut ZombieSweep) -> usize {
    let containers = container_pids()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let reap = sweep.pick(&zombie_children(), &containers);
    for pid in &reap {
        let _ = waitpid(
            Pid::from_raw(*pid),
            Some(nix::sys::wait::WaitPidFlag::WNOHANG),
        );
    }
    reap.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_working_directory_is_made_inside_the_root_even_through_links() {
        let base = tempfile::tempdir().unwrap();
        let root = base.path().join("root");
        std::fs::create_dir_all(root.join("srv")).unwrap();
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::os::unix::fs::symlink("/etc", root.join("abs")).unwrap();
        std::os::unix::fs::symlink("../../..", root.join("up")).unwrap();
        std::os::unix::fs::symlink("/nowhere", root.join("dangling")).unwrap();

        assert_eq!(
            make_dir_in_root(&root, "/srv/app/data"),
            Some(root.join("srv/app/data"))
        );
        assert!(root.join("srv/app/data").is_dir());
        // Links resolve inside the root, never to the host's directories.
        assert_eq!(
            make_dir_in_root(&root, "/abs/made"),
            Some(root.join("etc/made"))
        );
        assert_eq!(make_dir_in_root(&root, "/up/x/y"), Some(root.join("x/y")));
        assert!(!base.path().join("x").exists());
        // A dangling link is not replaced by a directory.
        assert_eq!(make_dir_in_root(&root, "/dangling/z"), None);
        assert!(!Path::new("/nowhere").exists());
        // What exists is found as it is.
        assert_eq!(make_dir_in_root(&root, "/"), Some(root.clone()));
        assert_eq!(make_dir_in_root(&root, "srv"), Some(root.join("srv")));
    }

    #[test]
    fn a_runtime_id_names_its_pod_and_container() {
        let id = ContainerId::new("0f9c1d2e-3a4b-4c5d-8e6f-7a8b9c0d1e2f-web-server").unwrap();
        assert_eq!(
            pod_and_container(&id),
            Some(("0f9c1d2e-3a4b-4c5d-8e6f-7a8b9c0d1e2f", "web-server"))
        );
        let short = ContainerId::new("not-a-pod").unwrap();
        assert_eq!(pod_and_container(&short), None);
        let nameless = ContainerId::new("0f9c1d2e-3a4b-4c5d-8e6f-7a8b9c0d1e2f-").unwrap();
        assert_eq!(pod_and_container(&nameless), None);
    }

    #[test]
    fn only_zombies_seen_twice_and_not_containers_are_reaped() {
        let mut sweep = ZombieSweep::default();
        let containers: HashSet<i32> = [7].into_iter().collect();
        assert!(sweep.pick(&[5, 6, 7], &containers).is_empty());
        let mut second = sweep.pick(&[5, 7, 8], &containers);
        second.sort_unstable();
        assert_eq!(second, vec![5]);
        assert_eq!(sweep.pick(&[8], &containers), vec![8]);
    }

    #[test]
    fn the_config_carries_the_pods_sandbox_and_security_context() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web", "uid": "u1"},
            "spec": {
                "securityContext": {"fsGroup": 2000, "supplementalGroups": [3000, 2000]},
                "containers": [{"name": "main"}]
            }
        }))
        .unwrap();
        let container: Container = serde_json::from_value(serde_json::json!({
            "name": "main",
            "securityContext": {
                "allowPrivilegeEscalation": false,
                "readOnlyRootFilesystem": true,
                "capabilities": {"add": ["NET_ADMIN"], "drop": ["ALL"]}
            }
        }))
        .unwrap();
        let state = tempfile::tempdir().unwrap();
        let runtime: Arc<dyn OciRuntime> = Arc::new(
            skiff_oci::CliRuntime::new("test", "/nonexistent", Vec::new(), state.path()).unwrap(),
        );
        let mounts = [Mount {
            source: "/pods/u1/volumes/data".into(),
            target: "/data".into(),
            read_only: true,
        }];
        let run = OciRun {
            runtime,
            pod: &pod,
            container: &container,
            container_dir: Path::new("/pods/u1/containers/main"),
            image: &ImageRoot::Merged("/images/x".into()),
            command: vec!["httpd".into(), "-f".into()],
            env: vec![("PATH".into(), "/bin".into())],
            working_dir: "/www",
            run_as: RunAs {
                uid: 1000,
                gid: 1000,
            },
            mounts: &mounts,
            hostname: "web",
            netns: Some(Path::new("/run/skiff/netns/u1")),
            pid_namespace: None,
            cgroups_path: Some("/skiff/kubepods/podu1/main".into()),
            managed_cgroup_dirs: Vec::new(),
            log_path: Path::new("/pods/u1/logs/main/0.log"),
            log_cap: 1024,
        };
        let config = container_config(&run, Path::new("/root"), Path::new("/etc-files"));
        assert_eq!(config.process.args, ["httpd", "-f"]);
        assert_eq!(config.process.env, ["PATH=/bin"]);
        assert_eq!(config.process.cwd, "/www");
        assert_eq!(config.process.user.uid, 1000);
        assert_eq!(config.process.user.additional_gids, [2000, 3000]);
        assert_eq!(config.hostname.as_deref(), Some("web"));
        assert_eq!(
            config.namespaces.network,
            NamespaceMode::Join("/run/skiff/netns/u1".into())
        );
        assert_eq!(config.namespaces.pid, NamespaceMode::Private);
        assert_eq!(config.namespaces.uts, NamespaceMode::Private);
        assert_eq!(
            config.cgroups_path.as_deref(),
            Some("/skiff/kubepods/podu1/main")
        );
        assert!(config.no_new_privileges && config.readonly_rootfs && !config.privileged);
        assert_eq!(config.capabilities.add, ["NET_ADMIN"]);
        assert_eq!(config.capabilities.drop, ["ALL"]);
        let destinations: Vec<&str> = config
            .mounts
            .iter()
            .map(|m| m.destination.as_str())
            .collect();
        assert_eq!(
            destinations,
            ["/data", "/etc/hosts", "/etc/hostname", "/etc/resolv.conf"]
        );
        assert!(config.mounts[0].readonly);
        assert_eq!(config.mounts[1].source, Path::new("/etc-files/hosts"));
        // The whole config becomes a valid spec.
        skiff_oci::generate_spec(&config).unwrap();

        // An ephemeral container with a target joins the target's PID namespace.
        let debugger = OciRun {
            pid_namespace: Some(Path::new("/proc/4242/ns/pid")),
            ..run
        };
        let config = container_config(&debugger, Path::new("/root"), Path::new("/etc-files"));
        assert_eq!(
            config.namespaces.pid,
            NamespaceMode::Join("/proc/4242/ns/pid".into())
        );
        let spec = skiff_oci::generate_spec(&config).unwrap();
        let namespaces = serde_json::to_value(&spec).unwrap()["linux"]["namespaces"].clone();
        assert!(
            namespaces
                .as_array()
                .unwrap()
                .iter()
                .any(|ns| ns["type"] == "pid" && ns["path"] == "/proc/4242/ns/pid"),
            "the runtime spec does not join the target's PID namespace: {namespaces}"
        );
    }

    #[test]
    fn overlay_stacks_the_layers_under_the_runs_upper_directory() {
        let dirs = RunDirs::under(Path::new("/pods/u/containers/c"));
        let image = ImageRoot::Overlay(vec!["/s/top".into(), "/s/base".into()]);
        assert_eq!(
            overlay_options(&image, &dirs),
            "lowerdir=/s/top:/s/base,upperdir=/pods/u/containers/c/upper,workdir=/pods/u/containers/c/work"
        );
    }

    /// What the recording runtime answers to `delete`, one answer a call.
    #[derive(Clone, Copy, Debug)]
    enum DeleteAnswer {
        Deleted,
        Missing,
        Busy,
    }

    /// An OCI runtime that records each call the agent makes on it (`"delete --force ID"`,
    /// `"kill SIGTERM ID"`, ...) and answers from a script: the agent's side of removal,
    /// adoption and signalling is then checked without a runtime, a container or root.
    struct RecordingRuntime {
        calls: Mutex<Vec<String>>,
        deletes: Mutex<std::collections::VecDeque<DeleteAnswer>>,
        state: Option<skiff_oci::ContainerState>,
        /// The one operation (`create` or `start`) the runtime refuses, if any.
        refuses: Option<&'static str>,
    }

    impl RecordingRuntime {
        fn new(
            deletes: &[DeleteAnswer],
            state: Option<skiff_oci::ContainerState>,
        ) -> RecordingRuntime {
            RecordingRuntime {
                calls: Mutex::new(Vec::new()),
                deletes: Mutex::new(deletes.iter().copied().collect()),
                state,
                refuses: None,
            }
        }

        fn refusing(mut self, operation: &'static str) -> RecordingRuntime {
            self.refuses = Some(operation);
            self
        }

        fn answer(
            &self,
            operation: &'static str,
            id: &ContainerId,
        ) -> Result<(), skiff_oci::OciError> {
            self.record(format!("{operation} {id}"));
            match self.refuses {
                Some(refused) if refused == operation => Err(self.refused(operation, id)),
                _ => Ok(()),
            }
        }

        fn record(&self, call: String) {
            self.calls.lock().unwrap().push(call);
        }

        fn calls(&self) -> Vec<String> {
            self.calls.lock().unwrap().clone()
        }

        fn refused(&self, operation: &'static str, id: &ContainerId) -> skiff_oci::OciError {
            skiff_oci::OciError::Runtime {
                runtime: "recording".into(),
                operation,
                id: id.clone(),
                message: "container is busy".into(),
            }
        }
    }

    impl OciRuntime for RecordingRuntime {
        fn name(&self) -> &str {
            "recording"
        }

        fn create(
            &self,
            id: &ContainerId,
            _bundle: &Path,
            _stdio: ProcessStdio,
        ) -> Result<(), skiff_oci::OciError> {
            self.answer("create", id)
        }

        fn start(&self, id: &ContainerId) -> Result<(), skiff_oci::OciError> {
            self.answer("start", id)
        }

        fn state(
            &self,
            id: &ContainerId,
        ) -> Result<skiff_oci::ContainerState, skiff_oci::OciError> {
            self.record(format!("state {id}"));
            self.state
                .clone()
                .ok_or_else(|| skiff_oci::OciError::NotFound(id.clone()))
        }

        fn kill(
            &self,
            id: &ContainerId,
            signal: Signal,
            all: bool,
        ) -> Result<(), skiff_oci::OciError> {
            let all = if all { " --all" } else { "" };
            self.record(format!("kill{all} {signal} {id}"));
            Ok(())
        }

        fn delete(&self, id: &ContainerId, force: bool) -> Result<(), skiff_oci::OciError> {
            let force = if force { " --force" } else { "" };
            self.record(format!("delete{force} {id}"));
            match self.deletes.lock().unwrap().pop_front() {
                None | Some(DeleteAnswer::Deleted) => Ok(()),
                Some(DeleteAnswer::Missing) => Err(skiff_oci::OciError::NotFound(id.clone())),
                Some(DeleteAnswer::Busy) => Err(self.refused("delete", id)),
            }
        }

        fn exec(
            &self,
            id: &ContainerId,
            _process: &ExecProcess,
            _stdio: ProcessStdio,
        ) -> Result<skiff_oci::ExecChild, skiff_oci::OciError> {
            self.record(format!("exec {id}"));
            Err(skiff_oci::OciError::Unsupported(
                "exec in the recording runtime".into(),
            ))
        }

        fn recover_output(
            &self,
            id: &ContainerId,
        ) -> Result<Option<skiff_oci::RecoveredStreams>, skiff_oci::OciError> {
            self.record(format!("recover-output {id}"));
            Ok(None)
        }
    }

    const POD_CONTAINER: &str = "0f9c1d2e-3a4b-4c5d-8e6f-7a8b9c0d1e2f-web";

    fn pod_container_id() -> ContainerId {
        ContainerId::new(POD_CONTAINER).unwrap()
    }

    #[test]
    fn removing_a_previous_run_deletes_it_retrying_only_while_the_runtime_refuses() {
        use DeleteAnswer::*;
        let delete = format!("delete --force {POD_CONTAINER}");
        let cases: [(&str, &[DeleteAnswer], usize); 4] = [
            ("deleted at once", &[Deleted], 1),
            ("already gone", &[Missing], 1),
            ("refused once, then deleted", &[Busy, Deleted], 2),
            (
                "refused every time: given up after three tries",
                &[Busy, Busy, Busy, Deleted],
                3,
            ),
        ];
        let base = tempfile::tempdir().unwrap();
        for (case, answers, tries) in cases {
            let runtime = RecordingRuntime::new(answers, None);
            remove_previous(&runtime, &pod_container_id(), &base.path().join("rootfs"));
            assert_eq!(runtime.calls(), vec![delete.clone(); tries], "{case}");
        }
    }

    #[test]
    fn unowned_containers_of_pods_are_deleted_and_other_ids_left_alone() {
        let pods = tempfile::tempdir().unwrap();
        let cases = [
            (
                POD_CONTAINER,
                vec![format!("delete --force {POD_CONTAINER}")],
            ),
            ("not-a-pod", vec![]),
        ];
        for (id, expected) in cases {
            let runtime = RecordingRuntime::new(&[], None);
            remove_unowned(&runtime, &ContainerId::new(id).unwrap(), pods.path(), &[]);
            assert_eq!(runtime.calls(), expected, "{id}");
        }
    }

    fn recorded_container(runtime: Arc<RecordingRuntime>, rootfs: &Path) -> OciContainer {
        OciContainer {
            runtime,
            id: pod_container_id(),
            rootfs: rootfs.to_path_buf(),
            cgroup: None,
            operations: Mutex::new(()),
        }
    }

    #[test]
    fn releasing_an_ended_container_deletes_it_from_the_runtime() {
        let base = tempfile::tempdir().unwrap();
        let runtime = Arc::new(RecordingRuntime::new(&[], None));
        recorded_container(runtime.clone(), &base.path().join("rootfs")).release();
        assert_eq!(
            runtime.calls(),
            vec![format!("delete --force {POD_CONTAINER}")]
        );
    }

    #[tokio::test]
    async fn a_signal_goes_to_pid_one_through_the_runtime() {
        let base = tempfile::tempdir().unwrap();
        let runtime = Arc::new(RecordingRuntime::new(&[], None));
        let container = Arc::new(recorded_container(
            runtime.clone(),
            &base.path().join("rootfs"),
        ));
        container.signal(Signal::SIGTERM);
        let wanted = vec![format!("kill SIGTERM {POD_CONTAINER}")];
        let sent = tokio::time::timeout(Duration::from_secs(10), async {
            while runtime.calls() != wanted {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await;
        assert!(sent.is_ok(), "the runtime got {:?}", runtime.calls());
    }

    #[tokio::test]
    async fn the_wait_for_a_container_ends_when_its_process_does() {
        let mut child = std::process::Command::new("sleep")
            .arg("60")
            .spawn()
            .unwrap();
        let pid = i32::try_from(child.id()).unwrap();
        let mut waiter = tokio::spawn(process_ended(pid));
        let early = tokio::time::timeout(Duration::from_millis(200), &mut waiter).await;
        assert!(early.is_err(), "the wait ended while the process ran");
        child.kill().unwrap();
        let ended = tokio::time::timeout(Duration::from_secs(10), waiter).await;
        let _ = child.wait();
        assert!(ended.is_ok(), "the wait did not end with the process");
    }

    #[test]
    fn adoption_takes_what_the_runtime_reports() {
        use skiff_oci::{ContainerState, ContainerStatus};
        let state = |status, pid, exit_code| ContainerState {
            id: pod_container_id(),
            status,
            pid,
            bundle: PathBuf::from("/bundle"),
            exit_code,
        };
        let state_call = format!("state {POD_CONTAINER}");
        let recover_call = format!("recover-output {POD_CONTAINER}");
        // (case, the runtime's state, what adoption gives: the exit code of an ended run, or
        // `None` for a container replaced by a new run; the calls it made)
        let cases = [
            (
                "ended while the agent was down",
                Some(state(ContainerStatus::Stopped, None, Some(137))),
                Some(137),
                vec![state_call.clone()],
            ),
            (
                "running, but its pipes were not kept",
                Some(state(ContainerStatus::Running, Some(4242), None)),
                None,
                vec![state_call.clone(), recover_call.clone()],
            ),
            (
                "created, never started",
                Some(state(ContainerStatus::Created, Some(4242), None)),
                None,
                vec![state_call.clone()],
            ),
            (
                "unknown to the runtime",
                None,
                None,
                vec![state_call.clone()],
            ),
        ];
        let base = tempfile::tempdir().unwrap();
        for (case, reported, ended_with, calls) in cases {
            let runtime = Arc::new(RecordingRuntime::new(&[], reported));
            let adopted = adopt(
                runtime.clone(),
                pod_container_id(),
                base.path(),
                None,
                &AttachConfig::default(),
                &base.path().join("log"),
                1 << 20,
            );
            let got = match adopted {
                Some(Leftover::Ended(process)) => *process.done.borrow(),
                Some(Leftover::Running(_)) => panic!("{case}: adopted as running"),
                None => None,
            };
            assert_eq!(got, ended_with, "{case}");
            assert_eq!(runtime.calls(), calls, "{case}");
        }
    }

    #[tokio::test]
    async fn a_run_is_created_then_started_and_stops_at_the_first_refusal() {
        use skiff_oci::{ContainerState, ContainerStatus};
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web", "uid": "0f9c1d2e-3a4b-4c5d-8e6f-7a8b9c0d1e2f"},
            "spec": {"containers": [{"name": "web"}]}
        }))
        .unwrap();
        let container: Container =
            serde_json::from_value(serde_json::json!({"name": "web"})).unwrap();
        let created = |pid| ContainerState {
            id: pod_container_id(),
            status: ContainerStatus::Created,
            pid,
            bundle: PathBuf::from("/bundle"),
            exit_code: None,
        };
        let create = format!("create {POD_CONTAINER}");
        let state = format!("state {POD_CONTAINER}");
        let start = format!("start {POD_CONTAINER}");
        // (case, the operation refused, the runtime's state after create, the outcome: PID 1
        // or the start's error, the calls made)
        type StartCase = (
            &'static str,
            Option<&'static str>,
            Option<i32>,
            Result<i32, &'static str>,
            Vec<String>,
        );
        let cases: [StartCase; 4] = [
            (
                "started",
                None,
                Some(4242),
                Ok(4242),
                vec![create.clone(), state.clone(), start.clone()],
            ),
            (
                "create refused",
                Some("create"),
                Some(4242),
                Err("failed to create containerd task"),
                vec![create.clone()],
            ),
            (
                "no process after create",
                None,
                None,
                Err("the runtime reported no process for the container"),
                vec![create.clone(), state.clone()],
            ),
            (
                "start refused",
                Some("start"),
                Some(4242),
                Err("failed to start containerd task"),
                vec![create.clone(), state.clone(), start.clone()],
            ),
        ];
        for (case, refused, pid, outcome, calls) in cases {
            let base = tempfile::tempdir().unwrap();
            let container_dir = base.path().join("containers").join("web");
            let mut runtime = RecordingRuntime::new(&[], Some(created(pid)));
            if let Some(operation) = refused {
                runtime = runtime.refusing(operation);
            }
            let runtime = Arc::new(runtime);
            let run = OciRun {
                runtime: runtime.clone(),
                pod: &pod,
                container: &container,
                container_dir: &container_dir,
                image: &ImageRoot::Merged(base.path().join("image")),
                command: vec!["httpd".into()],
                env: Vec::new(),
                working_dir: "/",
                run_as: RunAs { uid: 0, gid: 0 },
                mounts: &[],
                hostname: "web",
                netns: None,
                pid_namespace: None,
                cgroups_path: None,
                managed_cgroup_dirs: Vec::new(),
                log_path: &base.path().join("0.log"),
                log_cap: 1 << 20,
            };
            let dirs = RunDirs::under(&container_dir);
            dirs.prepare().unwrap();
            let got = start_in_root(&run, &pod_container_id(), &dirs).map(|process| process.pgid);
            match (&got, outcome) {
                (Ok(pgid), Ok(wanted)) => assert_eq!(*pgid, wanted, "{case}"),
                (Err(message), Err(wanted)) => {
                    assert!(message.starts_with(wanted), "{case}: {message}")
                }
                _ => panic!(
                    "{case}: {:?}",
                    got.as_ref().map(|_| ()).map_err(String::as_str)
                ),
            }
            assert_eq!(runtime.calls(), calls, "{case}");
            assert!(
                container_dir.join("bundle").join("config.json").is_file(),
                "{case}: no bundle was written"
            );
        }
    }
}
