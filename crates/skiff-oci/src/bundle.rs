//! Runtime bundles: the OCI `config.json` for one container, computed from a plain description
//! of it, shaped as containerd's CRI plugin shapes the specs it hands to runc.
//!
//! [`generate_spec`] is pure: everything it needs is in [`ContainerConfig`]; [`write_bundle`]
//! is the one function here that touches the disk.

use std::collections::HashSet;
use std::path::{Component, Path, PathBuf};
use std::str::FromStr;

use oci_spec::runtime::{
    Capabilities, Capability, LinuxBuilder, LinuxCapabilitiesBuilder, LinuxCpuBuilder,
    LinuxDeviceCgroupBuilder, LinuxDeviceType, LinuxMemoryBuilder, LinuxNamespaceBuilder,
    LinuxNamespaceType, LinuxResourcesBuilder, Mount, MountBuilder, PosixRlimitBuilder,
    PosixRlimitType, ProcessBuilder, RootBuilder, Spec, UserBuilder,
};

/// The OCI runtime specification version the generated bundles declare.
pub const OCI_VERSION: &str = "1.0.2";

/// The `PATH` a container gets when neither the image nor the pod sets one, as containerd.
pub const DEFAULT_PATH_ENV: &str =
    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Docker's default capability set, which containerd's CRI plugin gives Kubernetes containers
/// unless their security context adds or drops some.
pub const DEFAULT_CAPABILITIES: [Capability; 14] = [
    Capability::Chown,
    Capability::DacOverride,
    Capability::Fsetid,
    Capability::Fowner,
    Capability::Mknod,
    Capability::NetRaw,
    Capability::Setgid,
    Capability::Setuid,
    Capability::Setfcap,
    Capability::Setpcap,
    Capability::NetBindService,
    Capability::SysChroot,
    Capability::Kill,
    Capability::AuditWrite,
];

/// Every capability the kernel knows (through `CAP_CHECKPOINT_RESTORE`): what `privileged`
/// and `add: ["ALL"]` grant.
pub const ALL_CAPABILITIES: [Capability; 41] = [
    Capability::Chown,
    Capability::DacOverride,
    Capability::DacReadSearch,
    Capability::Fowner,
    Capability::Fsetid,
    Capability::Kill,
    Capability::Setgid,
    Capability::Setuid,
    Capability::Setpcap,
    Capability::LinuxImmutable,
    Capability::NetBindService,
    Capability::NetBroadcast,
    Capability::NetAdmin,
    Capability::NetRaw,
    Capability::IpcLock,
    Capability::IpcOwner,
    Capability::SysModule,
    Capability::SysRawio,
    Capability::SysChroot,
    Capability::SysPtrace,
    Capability::SysPacct,
    Capability::SysAdmin,
    Capability::SysBoot,
    Capability::SysNice,
    Capability::SysResource,
    Capability::SysTime,
    Capability::SysTtyConfig,
    Capability::Mknod,
    Capability::Lease,
    Capability::AuditWrite,
    Capability::AuditControl,
    Capability::Setfcap,
    Capability::MacOverride,
    Capability::MacAdmin,
    Capability::Syslog,
    Capability::WakeAlarm,
    Capability::BlockSuspend,
    Capability::AuditRead,
    Capability::Perfmon,
    Capability::Bpf,
    Capability::CheckpointRestore,
];

/// The paths containerd masks in every unprivileged container (kernel state a container
/// has no business reading).
pub const DEFAULT_MASKED_PATHS: [&str; 11] = [
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
    "/proc/scsi",
];

/// The paths containerd makes read-only in every unprivileged container.
pub const DEFAULT_READONLY_PATHS: [&str; 5] = [
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// The CFS period the kernel and Kubernetes use when a quota is given without one (100 ms).
pub const DEFAULT_CPU_PERIOD_US: u64 = 100_000;

/// Everything that decides one container's `config.json`: what the node agent derives from
/// the pod spec, the image config and the pod's sandbox.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerConfig {
    /// The process to run as the container's PID 1.
    pub process: ProcessConfig,
    /// The container's root filesystem on the host (an overlay mount or a plain directory);
    /// absolute, since the bundle may live elsewhere.
    pub rootfs: PathBuf,
    /// Mount the root filesystem read-only (`readOnlyRootFilesystem`).
    pub readonly_rootfs: bool,
    /// The hostname set in the container's own UTS namespace (the pod name); ignored when the
    /// UTS namespace is joined or shared with the host, where it cannot be set.
    pub hostname: Option<String>,
    /// Bind mounts, in any order: volumes, `/etc/hosts`, `/etc/hostname`,
    /// `/etc/resolv.conf`, a pod-shared `/dev/shm`. One whose destination is a default
    /// mount's (say `/dev/shm`) replaces it.
    pub mounts: Vec<BindMount>,
    /// Which namespaces the container gets.
    pub namespaces: Namespaces,
    /// The cgroup the runtime creates or joins, relative to the cgroup mounts
    /// (`/skiff/pod<uid>/<container>`); `None` leaves the choice to the runtime.
    pub cgroups_path: Option<String>,
    /// Resource limits written to the container's cgroup.
    pub resources: Resources,
    /// Capabilities relative to the default set, as a Kubernetes security context says them.
    pub capabilities: CapabilityChanges,
    /// A privileged container: every capability, every device allowed, `/sys` and the cgroup
    /// tree writable, no masked or read-only paths.
    pub privileged: bool,
    /// Set `no_new_privs` (Kubernetes' `allowPrivilegeEscalation: false`).
    pub no_new_privileges: bool,
    /// Paths to mask; `None` means containerd's defaults ([`DEFAULT_MASKED_PATHS`]),
    /// `Some(vec![])` none (`procMount: Unmasked`).
    pub masked_paths: Option<Vec<String>>,
    /// Paths to make read-only; `None` means [`DEFAULT_READONLY_PATHS`].
    pub readonly_paths: Option<Vec<String>>,
    /// Resource limits of the process (`RLIMIT_NOFILE` and so on); none inherits the runtime's.
    pub rlimits: Vec<Rlimit>,
    /// The process's OOM score adjustment (set by the node agent from the pod's QoS class).
    pub oom_score_adj: Option<i32>,
}

/// The container's process.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProcessConfig {
    /// The command and its arguments, already resolved from the image's entrypoint and cmd
    /// and the pod's command and args.
    pub args: Vec<String>,
    /// `NAME=value` entries; a `PATH` is added when none is given.
    pub env: Vec<String>,
    /// The working directory, absolute inside the container; empty means `/`.
    pub cwd: String,
    /// Who the process runs as.
    pub user: UserConfig,
    /// Allocate a terminal (`tty: true`); the runtime then needs a console socket.
    pub terminal: bool,
}

/// The numeric identity the process runs as.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UserConfig {
    /// The user ID.
    pub uid: u32,
    /// The primary group ID.
    pub gid: u32,
    /// Supplementary groups (the image user's groups, `supplementalGroups`, `fsGroup`).
    pub additional_gids: Vec<u32>,
}

/// A host path bind-mounted into the container.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BindMount {
    /// Where it appears, absolute inside the container.
    pub destination: String,
    /// The host path.
    pub source: PathBuf,
    /// Mount it read-only.
    pub readonly: bool,
}

/// How one namespace is obtained.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum NamespaceMode {
    /// A new namespace of the container's own.
    #[default]
    Private,
    /// Join an existing one, pinned at this path (`/proc/<pid>/ns/net`, a bind-mounted
    /// namespace file): how containers of one pod share its network namespace.
    Join(PathBuf),
    /// Stay in the runtime's (the host's) namespace (`hostNetwork`, `hostPID`, `hostIPC`).
    Host,
}

/// The container's namespaces. Mount namespaces are always private.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Namespaces {
    /// The PID namespace.
    pub pid: NamespaceMode,
    /// The IPC namespace.
    pub ipc: NamespaceMode,
    /// The UTS namespace (hostname).
    pub uts: NamespaceMode,
    /// The network namespace; a pod's containers join the pod's pinned one.
    pub network: NamespaceMode,
}

/// Cgroup limits, in the units the OCI spec uses.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Resources {
    /// Relative CPU weight (cgroup v1 `cpu.shares`, 2 to 262144), from `requests.cpu`.
    pub cpu_shares: Option<u64>,
    /// CPU time allowed per period, in microseconds, from `limits.cpu`.
    pub cpu_quota: Option<i64>,
    /// The CFS period in microseconds; defaults to [`DEFAULT_CPU_PERIOD_US`] with a quota.
    pub cpu_period: Option<u64>,
    /// The memory limit in bytes, from `limits.memory`.
    pub memory_limit: Option<i64>,
}

/// Capability changes in a Kubernetes security context's terms: names with or without the
/// `CAP_` prefix, in any case, and `ALL`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CapabilityChanges {
    /// Capabilities to add to the default set.
    pub add: Vec<String>,
    /// Capabilities to drop from it.
    pub drop: Vec<String>,
}

/// One process resource limit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rlimit {
    /// The limit's name, `RLIMIT_NOFILE` style.
    pub kind: String,
    /// The soft limit.
    pub soft: u64,
    /// The hard limit.
    pub hard: u64,
}

/// Why a container description cannot become a bundle.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    /// A field holds a value the runtime would refuse or misread.
    #[error("invalid container config: {0}")]
    Invalid(String),
    /// The OCI types refused a value.
    #[error("building the OCI spec: {0}")]
    Spec(#[from] oci_spec::OciSpecError),
    /// Writing the bundle failed.
    #[error("writing the bundle at {path}: {source}")]
    Io {
        /// The file or directory being written.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
}

impl ContainerConfig {
    /// A container running `args` from `rootfs` with every other setting at Kubernetes'
    /// defaults: root user, private namespaces, default capabilities, no limits.
    pub fn new(rootfs: impl Into<PathBuf>, args: Vec<String>) -> Self {
        ContainerConfig {
            process: ProcessConfig {
                args,
                ..ProcessConfig::default()
            },
            rootfs: rootfs.into(),
            readonly_rootfs: false,
            hostname: None,
            mounts: Vec::new(),
            namespaces: Namespaces::default(),
            cgroups_path: None,
            resources: Resources::default(),
            capabilities: CapabilityChanges::default(),
            privileged: false,
            no_new_privileges: false,
            masked_paths: None,
            readonly_paths: None,
            rlimits: Vec::new(),
            oom_score_adj: None,
        }
    }
}

/// Parses one capability name as Kubernetes writes it (`NET_ADMIN`, `CAP_NET_ADMIN`,
/// `net_admin`).
pub fn parse_capability(name: &str) -> Result<Capability, BundleError> {
    let upper = name.trim().to_ascii_uppercase();
    let bare = upper.strip_prefix("CAP_").unwrap_or(&upper);
    Capability::from_str(bare)
        .map_err(|_| BundleError::Invalid(format!("unknown capability {name:?}")))
}

/// The capability set a container ends with: the default set, or all of them when
/// privileged; then `add: ALL` grants all and `drop: ALL` removes all, and the named adds and
/// drops apply in that order (so `drop: [ALL], add: [X]` leaves only X, and a name both added
/// and dropped is dropped), as containerd applies a security context.
pub fn effective_capabilities(
    changes: &CapabilityChanges,
    privileged: bool,
) -> Result<Capabilities, BundleError> {
    if privileged {
        return Ok(ALL_CAPABILITIES.into_iter().collect());
    }
    let is_all = |name: &String| name.trim().eq_ignore_ascii_case("ALL");
    let mut caps: Capabilities = DEFAULT_CAPABILITIES.into_iter().collect();
    if changes.add.iter().any(is_all) {
        caps = ALL_CAPABILITIES.into_iter().collect();
    }
    if changes.drop.iter().any(is_all) {
        caps.clear();
    }
    for name in changes.add.iter().filter(|name| !is_all(name)) {
        caps.insert(parse_capability(name)?);
    }
    for name in changes.drop.iter().filter(|name| !is_all(name)) {
        caps.remove(&parse_capability(name)?);
    }
    Ok(caps)
}

fn invalid(message: impl Into<String>) -> BundleError {
    BundleError::Invalid(message.into())
}

/// An absolute, normalised path inside the container with no `..`: the runtime resolves
/// mount destinations inside the rootfs, and a `..` is how a bad one would escape.
fn check_container_path(what: &str, path: &str) -> Result<(), BundleError> {
    let parsed = Path::new(path);
    if !parsed.is_absolute() {
        return Err(invalid(format!("{what} {path:?} is not an absolute path")));
    }
    if parsed.components().any(|c| c == Component::ParentDir) {
        return Err(invalid(format!("{what} {path:?} contains \"..\"")));
    }
    Ok(())
}

fn mount(
    destination: &str,
    typ: &str,
    source: &str,
    options: &[&str],
) -> Result<Mount, BundleError> {
    Ok(MountBuilder::default()
        .destination(destination)
        .typ(typ)
        .source(source)
        .options(options.iter().map(|o| o.to_string()).collect::<Vec<_>>())
        .build()?)
}

/// The filesystems every container gets, as containerd's default spec plus the cgroup
/// mount its CRI plugin adds (containerd's `/run` tmpfs is left out, as CRI does).
fn default_mounts(privileged: bool) -> Result<Vec<Mount>, BundleError> {
    let sys_mode = if privileged { "rw" } else { "ro" };
    Ok(vec![
        mount("/proc", "proc", "proc", &["nosuid", "noexec", "nodev"])?,
        mount(
            "/dev",
            "tmpfs",
            "tmpfs",
            &["nosuid", "strictatime", "mode=755", "size=65536k"],
        )?,
        mount(
            "/dev/pts",
            "devpts",
            "devpts",
            &[
                "nosuid",
                "noexec",
                "newinstance",
                "ptmxmode=0666",
                "mode=0620",
                "gid=5",
            ],
        )?,
        mount(
            "/dev/shm",
            "tmpfs",
            "shm",
            &["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
        )?,
        mount(
            "/dev/mqueue",
            "mqueue",
            "mqueue",
            &["nosuid", "noexec", "nodev"],
        )?,
        mount(
            "/sys",
            "sysfs",
            "sysfs",
            &["nosuid", "noexec", "nodev", sys_mode],
        )?,
        mount(
            "/sys/fs/cgroup",
            "cgroup",
            "cgroup",
            &["nosuid", "noexec", "nodev", "relatime", sys_mode],
        )?,
    ])
}

fn depth(destination: &Path) -> usize {
    destination
        .components()
        .filter(|c| matches!(c, Component::Normal(_)))
        .count()
}

/// Default mounts first, then the bind mounts shallowest first so a parent is mounted before
/// what goes inside it; a bind mount on a default mount's destination replaces it, and one
/// on `/dev` replaces every default under `/dev`.
fn all_mounts(config: &ContainerConfig) -> Result<Vec<Mount>, BundleError> {
    let mut seen = HashSet::new();
    let mut binds = Vec::with_capacity(config.mounts.len());
    for bind in &config.mounts {
        check_container_path("mount destination", &bind.destination)?;
        if !bind.source.is_absolute() {
            return Err(invalid(format!(
                "mount source {} is not an absolute path",
                bind.source.display()
            )));
        }
        if !seen.insert(bind.destination.trim_end_matches('/').to_string()) {
            return Err(invalid(format!("two mounts at {:?}", bind.destination)));
        }
        let access = if bind.readonly { "ro" } else { "rw" };
        binds.push(
            MountBuilder::default()
                .destination(&bind.destination)
                .typ("bind")
                .source(&bind.source)
                .options(vec![
                    "rbind".to_string(),
                    "rprivate".to_string(),
                    access.to_string(),
                ])
                .build()?,
        );
    }
    binds.sort_by_key(|m| depth(m.destination()));
    let dev_replaced = seen.contains("/dev");
    let mut mounts: Vec<Mount> = default_mounts(config.privileged)?
        .into_iter()
        .filter(|m| {
            let dest = m.destination().to_string_lossy().to_string();
            let replaced = seen.contains(&dest) || (dev_replaced && dest.starts_with("/dev/"));
            !replaced
        })
        .collect();
    mounts.extend(binds);
    Ok(mounts)
}

fn namespace(
    typ: LinuxNamespaceType,
    mode: &NamespaceMode,
) -> Result<Option<oci_spec::runtime::LinuxNamespace>, BundleError> {
    Ok(match mode {
        NamespaceMode::Host => None,
        NamespaceMode::Private => Some(LinuxNamespaceBuilder::default().typ(typ).build()?),
        NamespaceMode::Join(path) => {
            if !path.is_absolute() {
                return Err(invalid(format!(
                    "namespace path {} is not absolute",
                    path.display()
                )));
            }
            Some(
                LinuxNamespaceBuilder::default()
                    .typ(typ)
                    .path(path)
                    .build()?,
            )
        }
    })
}

/// Device cgroup rules: everything denied, then the devices every container gets (the
/// null, zero, full, random, urandom, tty, console, ptmx and pts devices, and tun) allowed,
/// as containerd's default unix devices; a privileged container may use every device.
fn device_rules(
    privileged: bool,
) -> Result<Vec<oci_spec::runtime::LinuxDeviceCgroup>, BundleError> {
    if privileged {
        return Ok(vec![LinuxDeviceCgroupBuilder::default()
            .allow(true)
            .access("rwm")
            .build()?]);
    }
    let mut rules = vec![LinuxDeviceCgroupBuilder::default()
        .allow(false)
        .access("rwm")
        .build()?];
    // mknod of any character or block device (the node is useless without access).
    for typ in [LinuxDeviceType::C, LinuxDeviceType::B] {
        rules.push(
            LinuxDeviceCgroupBuilder::default()
                .allow(true)
                .typ(typ)
                .access("m")
                .build()?,
        );
    }
    let allowed: [(i64, Option<i64>); 10] = [
        (1, Some(3)),    // null
        (1, Some(8)),    // random
        (1, Some(7)),    // full
        (5, Some(0)),    // tty
        (1, Some(5)),    // zero
        (1, Some(9)),    // urandom
        (5, Some(1)),    // console
        (136, None),     // pts/*
        (5, Some(2)),    // ptmx
        (10, Some(200)), // net/tun
    ];
    for (major, minor) in allowed {
        let mut rule = LinuxDeviceCgroupBuilder::default()
            .allow(true)
            .typ(LinuxDeviceType::C)
            .major(major)
            .access("rwm");
        if let Some(minor) = minor {
            rule = rule.minor(minor);
        }
        rules.push(rule.build()?);
    }
    Ok(rules)
}

fn resources(config: &ContainerConfig) -> Result<oci_spec::runtime::LinuxResources, BundleError> {
    let limits = &config.resources;
    let mut builder = LinuxResourcesBuilder::default().devices(device_rules(config.privileged)?);
    if limits.cpu_shares.is_some() || limits.cpu_quota.is_some() || limits.cpu_period.is_some() {
        let mut cpu = LinuxCpuBuilder::default();
        if let Some(shares) = limits.cpu_shares {
            if !(2..=262_144).contains(&shares) {
                return Err(invalid(format!("cpu shares {shares} outside 2..=262144")));
            }
            cpu = cpu.shares(shares);
        }
        if let Some(quota) = limits.cpu_quota {
            // The kernel's floor is 1 ms per period; -1 means unlimited.
            if quota != -1 && quota < 1_000 {
                return Err(invalid(format!(
                    "cpu quota {quota}us is below the kernel's 1000us minimum"
                )));
            }
            cpu = cpu
                .quota(quota)
                .period(limits.cpu_period.unwrap_or(DEFAULT_CPU_PERIOD_US));
        } else if let Some(period) = limits.cpu_period {
            cpu = cpu.period(period);
        }
        if let Some(period) = limits.cpu_period {
            if !(1_000..=1_000_000).contains(&period) {
                return Err(invalid(format!(
                    "cpu period {period}us outside 1000..=1000000"
                )));
            }
        }
        builder = builder.cpu(cpu.build()?);
    }
    if let Some(limit) = limits.memory_limit {
        if limit <= 0 {
            return Err(invalid(format!("memory limit {limit} is not positive")));
        }
        builder = builder.memory(LinuxMemoryBuilder::default().limit(limit).build()?);
    }
    Ok(builder.build()?)
}

/// The OCI runtime spec for one container. Pure: it reads nothing but `config`.
pub fn generate_spec(config: &ContainerConfig) -> Result<Spec, BundleError> {
    let process_config = &config.process;
    if process_config.args.is_empty() {
        return Err(invalid("no command to run (process args are empty)"));
    }
    if !config.rootfs.is_absolute() {
        return Err(invalid(format!(
            "rootfs {} is not an absolute path",
            config.rootfs.display()
        )));
    }
    let cwd = if process_config.cwd.is_empty() {
        "/"
    } else {
        process_config.cwd.as_str()
    };
    check_container_path("working directory", cwd)?;

    let mut env = process_config.env.clone();
    if !env.iter().any(|entry| entry.starts_with("PATH=")) {
        env.insert(0, DEFAULT_PATH_ENV.to_string());
    }
    if let Some(bad) = env.iter().find(|entry| !entry.contains('=')) {
        return Err(invalid(format!("environment entry {bad:?} has no '='")));
    }

    let caps = effective_capabilities(&config.capabilities, config.privileged)?;
    let mut capabilities = LinuxCapabilitiesBuilder::default()
        .bounding(caps.clone())
        .effective(caps.clone())
        .permitted(caps)
        .build()?;
    // The builder would fill these from the library's defaults; containerd leaves both
    // empty (an inheritable or ambient set would survive exec into a non-root user).
    capabilities.set_inheritable(None);
    capabilities.set_ambient(None);

    let mut user = UserBuilder::default()
        .uid(process_config.user.uid)
        .gid(process_config.user.gid);
    if !process_config.user.additional_gids.is_empty() {
        user = user.additional_gids(process_config.user.additional_gids.clone());
    }

    let mut rlimits = Vec::with_capacity(config.rlimits.len());
    for rlimit in &config.rlimits {
        let typ = PosixRlimitType::from_str(&rlimit.kind)
            .map_err(|_| invalid(format!("unknown rlimit {:?}", rlimit.kind)))?;
        if rlimit.soft > rlimit.hard {
            return Err(invalid(format!(
                "{} soft limit {} exceeds hard limit {}",
                rlimit.kind, rlimit.soft, rlimit.hard
            )));
        }
        rlimits.push(
            PosixRlimitBuilder::default()
                .typ(typ)
                .soft(rlimit.soft)
                .hard(rlimit.hard)
                .build()?,
        );
    }

    let mut process = ProcessBuilder::default()
        .terminal(process_config.terminal)
        .user(user.build()?)
        .args(process_config.args.clone())
        .env(env)
        .cwd(cwd)
        .capabilities(capabilities)
        .no_new_privileges(config.no_new_privileges)
        .build()?;
    // The builder falls back to the library's own defaults for fields left unset; state
    // exactly what containerd would.
    process.set_rlimits((!rlimits.is_empty()).then_some(rlimits));
    process.set_oom_score_adj(config.oom_score_adj);
    process.set_apparmor_profile(None);
    process.set_selinux_label(None);
    process.set_console_size(None);

    let mut namespaces = Vec::with_capacity(5);
    for (typ, mode) in [
        (LinuxNamespaceType::Pid, &config.namespaces.pid),
        (LinuxNamespaceType::Ipc, &config.namespaces.ipc),
        (LinuxNamespaceType::Uts, &config.namespaces.uts),
        (LinuxNamespaceType::Mount, &NamespaceMode::Private),
        (LinuxNamespaceType::Network, &config.namespaces.network),
    ] {
        namespaces.extend(namespace(typ, mode)?);
    }

    let (masked, readonly) = if config.privileged {
        (Vec::new(), Vec::new())
    } else {
        let defaults = |list: &[&str]| list.iter().map(|p| p.to_string()).collect::<Vec<_>>();
        (
            config
                .masked_paths
                .clone()
                .unwrap_or_else(|| defaults(&DEFAULT_MASKED_PATHS)),
            config
                .readonly_paths
                .clone()
                .unwrap_or_else(|| defaults(&DEFAULT_READONLY_PATHS)),
        )
    };
    for path in masked.iter().chain(readonly.iter()) {
        check_container_path("masked or read-only path", path)?;
    }

    let mut linux = LinuxBuilder::default()
        .namespaces(namespaces)
        .resources(resources(config)?)
        .masked_paths(masked)
        .readonly_paths(readonly)
        .build()?;
    linux.set_cgroups_path(config.cgroups_path.as_ref().map(PathBuf::from));
    linux.set_uid_mappings(None);
    linux.set_gid_mappings(None);
    linux.set_sysctl(None);
    linux.set_devices(None);
    linux.set_rootfs_propagation(None);
    linux.set_mount_label(None);

    let hostname = match (&config.namespaces.uts, &config.hostname) {
        (NamespaceMode::Private, Some(name)) => {
            if name.is_empty() || name.len() > 64 {
                return Err(invalid(format!(
                    "hostname {name:?} must be 1 to 64 characters"
                )));
            }
            Some(name.clone())
        }
        _ => None,
    };

    let mut spec = Spec::default();
    spec.set_version(OCI_VERSION.to_string());
    spec.set_root(Some(
        RootBuilder::default()
            .path(&config.rootfs)
            .readonly(config.readonly_rootfs)
            .build()?,
    ));
    spec.set_mounts(Some(all_mounts(config)?));
    spec.set_process(Some(process));
    spec.set_hostname(hostname);
    spec.set_annotations(None);
    spec.set_linux(Some(linux));
    Ok(spec)
}

/// Writes `spec` as `dir/config.json` (creating `dir`), making `dir` a runtime bundle. The
/// spec names its rootfs by absolute path, so nothing else goes in the directory.
pub fn write_bundle(dir: &Path, spec: &Spec) -> Result<PathBuf, BundleError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| BundleError::Io { path, source }
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let json = serde_json::to_vec_pretty(spec)
        .map_err(|e| BundleError::Invalid(format!("serializing the spec: {e}")))?;
    let path = dir.join("config.json");
    let partial = dir.join("config.json.partial");
    std::fs::write(&partial, json).map_err(io(&partial))?;
    std::fs::rename(&partial, &path).map_err(io(&path))?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn base() -> ContainerConfig {
        ContainerConfig::new("/rootfs", vec!["/bin/app".into(), "--flag".into()])
    }

    fn spec_json(config: &ContainerConfig) -> Value {
        serde_json::to_value(generate_spec(config).unwrap()).unwrap()
    }

    fn sorted(value: &Value) -> Vec<String> {
        let mut list: Vec<String> = value
            .as_array()
            .unwrap_or_else(|| panic!("not an array: {value}"))
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect();
        list.sort();
        list
    }

    fn names(caps: &[Capability]) -> Vec<String> {
        let mut list: Vec<String> = caps
            .iter()
            .map(|c| {
                serde_json::to_value(c)
                    .unwrap()
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect();
        list.sort();
        list
    }

    fn destinations(spec: &Value) -> Vec<String> {
        spec["mounts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["destination"].as_str().unwrap().to_string())
            .collect()
    }

    #[test]
    fn defaults_have_containerds_shape() {
        let spec = spec_json(&base());
        assert_eq!(spec["ociVersion"], OCI_VERSION);
        assert_eq!(spec["root"], json!({"path": "/rootfs", "readonly": false}));
        assert!(spec.get("hostname").is_none());
        assert!(spec.get("annotations").is_none());
        let process = &spec["process"];
        assert_eq!(process["args"], json!(["/bin/app", "--flag"]));
        assert_eq!(process["env"], json!([DEFAULT_PATH_ENV]));
        assert_eq!(process["cwd"], "/");
        assert_eq!(process["user"], json!({"uid": 0, "gid": 0}));
        assert_eq!(process["terminal"], false);
        assert_eq!(process["noNewPrivileges"], false);
        assert!(process.get("rlimits").is_none());
        assert!(process.get("apparmorProfile").is_none());
        let default_caps = names(&DEFAULT_CAPABILITIES);
        assert_eq!(default_caps.len(), 14);
        for set in ["bounding", "effective", "permitted"] {
            assert_eq!(sorted(&process["capabilities"][set]), default_caps, "{set}");
        }
        for set in ["inheritable", "ambient"] {
            assert!(process["capabilities"].get(set).is_none(), "{set}");
        }

        assert_eq!(
            destinations(&spec),
            [
                "/proc",
                "/dev",
                "/dev/pts",
                "/dev/shm",
                "/dev/mqueue",
                "/sys",
                "/sys/fs/cgroup"
            ]
        );
        let mounts = spec["mounts"].as_array().unwrap();
        assert_eq!(
            mounts[0],
            json!({"destination": "/proc", "type": "proc", "source": "proc",
                   "options": ["nosuid", "noexec", "nodev"]})
        );
        assert_eq!(mounts[1]["type"], "tmpfs");
        assert_eq!(
            mounts[1]["options"],
            json!(["nosuid", "strictatime", "mode=755", "size=65536k"])
        );
        assert_eq!(mounts[3]["source"], "shm");
        assert_eq!(
            mounts[5]["options"],
            json!(["nosuid", "noexec", "nodev", "ro"])
        );
        assert_eq!(mounts[6]["type"], "cgroup");
        assert_eq!(
            mounts[6]["options"],
            json!(["nosuid", "noexec", "nodev", "relatime", "ro"])
        );

        let linux = &spec["linux"];
        assert_eq!(
            linux["namespaces"],
            json!([{"type": "pid"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"},
                   {"type": "network"}])
        );
        assert_eq!(linux["maskedPaths"], json!(DEFAULT_MASKED_PATHS));
        assert_eq!(linux["readonlyPaths"], json!(DEFAULT_READONLY_PATHS));
        assert!(linux.get("cgroupsPath").is_none());
        assert!(linux.get("seccomp").is_none());
        let devices = linux["resources"]["devices"].as_array().unwrap();
        assert_eq!(devices[0], json!({"allow": false, "access": "rwm"}));
        assert!(
            devices.contains(&json!({"allow": true, "type": "c", "major": 1, "minor": 3,
                                          "access": "rwm"}))
        );
        assert!(linux["resources"].get("cpu").is_none());
        assert!(linux["resources"].get("memory").is_none());
    }

    #[test]
    fn process_user_env_and_limits() {
        let mut config = base();
        config.process.env = vec!["PATH=/custom".into(), "A=1".into()];
        config.process.cwd = "/work".into();
        config.process.user = UserConfig {
            uid: 1000,
            gid: 2000,
            additional_gids: vec![3000, 4000],
        };
        config.readonly_rootfs = true;
        config.no_new_privileges = true;
        config.oom_score_adj = Some(-997);
        config.rlimits = vec![Rlimit {
            kind: "RLIMIT_NOFILE".into(),
            soft: 1024,
            hard: 4096,
        }];
        config.cgroups_path = Some("/skiff/pod1/app".into());
        config.resources = Resources {
            cpu_shares: Some(512),
            cpu_quota: Some(50_000),
            cpu_period: None,
            memory_limit: Some(32 * 1024 * 1024),
        };
        let spec = spec_json(&config);
        let process = &spec["process"];
        assert_eq!(process["env"], json!(["PATH=/custom", "A=1"]));
        assert_eq!(process["cwd"], "/work");
        assert_eq!(
            process["user"],
            json!({"uid": 1000, "gid": 2000, "additionalGids": [3000, 4000]})
        );
        assert_eq!(process["noNewPrivileges"], true);
        assert_eq!(process["oomScoreAdj"], -997);
        assert_eq!(
            process["rlimits"],
            json!([{"type": "RLIMIT_NOFILE", "soft": 1024, "hard": 4096}])
        );
        assert_eq!(spec["root"]["readonly"], true);
        assert_eq!(spec["linux"]["cgroupsPath"], "/skiff/pod1/app");
        assert_eq!(
            spec["linux"]["resources"]["cpu"],
            json!({"shares": 512, "quota": 50000, "period": 100000})
        );
        assert_eq!(
            spec["linux"]["resources"]["memory"],
            json!({"limit": 33554432})
        );
    }

    #[test]
    fn namespaces_join_share_or_stay_on_the_host() {
        let mut config = base();
        config.hostname = Some("web-0".into());
        assert_eq!(spec_json(&config)["hostname"], "web-0");

        config.namespaces.network = NamespaceMode::Join("/run/skiff/netns/pod1".into());
        config.namespaces.uts = NamespaceMode::Join("/proc/42/ns/uts".into());
        config.namespaces.pid = NamespaceMode::Host;
        let spec = spec_json(&config);
        assert_eq!(
            spec["linux"]["namespaces"],
            json!([{"type": "ipc"}, {"type": "uts", "path": "/proc/42/ns/uts"},
                   {"type": "mount"}, {"type": "network", "path": "/run/skiff/netns/pod1"}])
        );
        // A joined UTS namespace's hostname belongs to whoever created it.
        assert!(spec.get("hostname").is_none());

        config.namespaces.network = NamespaceMode::Join("relative/netns".into());
        assert!(matches!(
            generate_spec(&config),
            Err(BundleError::Invalid(message)) if message.contains("not absolute")
        ));
    }

    #[test]
    fn bind_mounts_follow_defaults_parents_first_and_replace_a_default() {
        let mut config = base();
        let bind = |destination: &str, source: &str, readonly| BindMount {
            destination: destination.into(),
            source: source.into(),
            readonly,
        };
        config.mounts = vec![
            bind("/data/cache/deep", "/host/deep", false),
            bind("/etc/hosts", "/pod/hosts", false),
            bind("/data", "/host/data", true),
            bind("/dev/shm", "/pod/shm", false),
        ];
        let spec = spec_json(&config);
        assert_eq!(
            destinations(&spec),
            [
                "/proc",
                "/dev",
                "/dev/pts",
                "/dev/mqueue",
                "/sys",
                "/sys/fs/cgroup",
                "/data",
                "/etc/hosts",
                "/dev/shm",
                "/data/cache/deep"
            ]
        );
        let mounts = spec["mounts"].as_array().unwrap();
        assert_eq!(
            mounts[6],
            json!({"destination": "/data", "type": "bind", "source": "/host/data",
                   "options": ["rbind", "rprivate", "ro"]})
        );
        assert_eq!(mounts[7]["options"], json!(["rbind", "rprivate", "rw"]));

        for (mounts, expected) in [
            (vec![bind("data", "/host", false)], "not an absolute path"),
            (
                vec![bind("/data/../etc", "/host", false)],
                "contains \"..\"",
            ),
            (vec![bind("/data", "host", false)], "not an absolute path"),
            (
                vec![bind("/data", "/a", false), bind("/data/", "/b", true)],
                "two mounts",
            ),
        ] {
            config.mounts = mounts;
            match generate_spec(&config) {
                Err(BundleError::Invalid(message)) => {
                    assert!(message.contains(expected), "{message}")
                }
                other => panic!("expected {expected:?}, got {other:?}"),
            }
        }
    }

    #[test]
    fn capabilities_follow_kubernetes_add_and_drop() {
        let changes = |add: &[&str], drop: &[&str]| CapabilityChanges {
            add: add.iter().map(|s| s.to_string()).collect(),
            drop: drop.iter().map(|s| s.to_string()).collect(),
        };
        let caps =
            effective_capabilities(&changes(&["NET_ADMIN", "cap_sys_time"], &["KILL"]), false)
                .unwrap();
        assert!(caps.contains(&Capability::NetAdmin));
        assert!(caps.contains(&Capability::SysTime));
        assert!(!caps.contains(&Capability::Kill));
        assert_eq!(caps.len(), 15);

        let only =
            effective_capabilities(&changes(&["NET_BIND_SERVICE"], &["ALL"]), false).unwrap();
        assert_eq!(only, [Capability::NetBindService].into_iter().collect());

        let all_but = effective_capabilities(&changes(&["ALL"], &["SYS_ADMIN"]), false).unwrap();
        assert_eq!(all_but.len(), ALL_CAPABILITIES.len() - 1);
        assert!(!all_but.contains(&Capability::SysAdmin));

        // A name both added and dropped is dropped.
        let both = effective_capabilities(&changes(&["SYS_ADMIN"], &["SYS_ADMIN"]), false).unwrap();
        assert!(!both.contains(&Capability::SysAdmin));

        assert!(matches!(
            effective_capabilities(&changes(&["NOT_A_CAP"], &[]), false),
            Err(BundleError::Invalid(message)) if message.contains("NOT_A_CAP")
        ));
    }

    #[test]
    fn privileged_gets_everything() {
        let mut config = base();
        config.privileged = true;
        config.capabilities.drop = vec!["ALL".into()];
        let spec = spec_json(&config);
        assert_eq!(
            sorted(&spec["process"]["capabilities"]["bounding"]),
            names(&ALL_CAPABILITIES)
        );
        assert_eq!(spec["linux"]["maskedPaths"], json!([]));
        assert_eq!(spec["linux"]["readonlyPaths"], json!([]));
        assert_eq!(
            spec["linux"]["resources"]["devices"],
            json!([{"allow": true, "access": "rwm"}])
        );
        let mounts = spec["mounts"].as_array().unwrap();
        assert_eq!(
            mounts[5]["options"],
            json!(["nosuid", "noexec", "nodev", "rw"])
        );
        assert_eq!(
            mounts[6]["options"],
            json!(["nosuid", "noexec", "nodev", "relatime", "rw"])
        );
    }

    #[test]
    fn masked_and_readonly_paths_can_be_replaced() {
        let mut config = base();
        config.masked_paths = Some(vec![]);
        config.readonly_paths = Some(vec!["/proc/sys".into()]);
        let spec = spec_json(&config);
        assert_eq!(spec["linux"]["maskedPaths"], json!([]));
        assert_eq!(spec["linux"]["readonlyPaths"], json!(["/proc/sys"]));
        config.masked_paths = Some(vec!["proc/kcore".into()]);
        assert!(generate_spec(&config).is_err());
    }

    #[test]
    fn bad_input_is_refused_with_a_message() {
        type Change = Box<dyn Fn(&mut ContainerConfig)>;
        let cases: Vec<(Change, &str)> = vec![
            (Box::new(|c| c.process.args.clear()), "no command"),
            (Box::new(|c| c.rootfs = "rootfs".into()), "rootfs"),
            (
                Box::new(|c| c.process.cwd = "work".into()),
                "working directory",
            ),
            (
                Box::new(|c| c.process.env = vec!["NOEQUALS".into()]),
                "has no '='",
            ),
            (Box::new(|c| c.resources.cpu_shares = Some(1)), "cpu shares"),
            (
                Box::new(|c| c.resources.cpu_shares = Some(u64::MAX)),
                "cpu shares",
            ),
            (Box::new(|c| c.resources.cpu_quota = Some(10)), "cpu quota"),
            (Box::new(|c| c.resources.cpu_period = Some(0)), "cpu period"),
            (
                Box::new(|c| c.resources.memory_limit = Some(0)),
                "memory limit",
            ),
            (
                Box::new(|c| c.resources.memory_limit = Some(i64::MIN)),
                "memory limit",
            ),
            (
                Box::new(|c| {
                    c.rlimits = vec![Rlimit {
                        kind: "RLIMIT_BOGUS".into(),
                        soft: 1,
                        hard: 1,
                    }]
                }),
                "unknown rlimit",
            ),
            (
                Box::new(|c| {
                    c.rlimits = vec![Rlimit {
                        kind: "RLIMIT_NOFILE".into(),
                        soft: 2,
                        hard: 1,
                    }]
                }),
                "exceeds hard limit",
            ),
            (Box::new(|c| c.hostname = Some("x".repeat(65))), "hostname"),
        ];
        for (change, expected) in cases {
            let mut config = base();
            change(&mut config);
            match generate_spec(&config) {
                Err(BundleError::Invalid(message)) => {
                    assert!(message.contains(expected), "{expected}: {message}")
                }
                other => panic!("{expected}: expected a refusal, got {other:?}"),
            }
        }
    }

    #[test]
    fn written_bundle_reads_back_as_the_same_spec() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = base();
        config.hostname = Some("pod".into());
        config.resources.memory_limit = Some(1 << 30);
        let spec = generate_spec(&config).unwrap();
        let path = write_bundle(&dir.path().join("bundle"), &spec).unwrap();
        assert_eq!(path, dir.path().join("bundle/config.json"));
        let loaded = Spec::load(&path).unwrap();
        assert_eq!(loaded, spec);
        assert!(!dir.path().join("bundle/config.json.partial").exists());
    }
}
