//! The side of cgroups that touches the kernel, behind one trait so callers can be tested
//! with the recording fake ([`crate::fake::RecordingDriver`]) and run on either cgroup version.
//!
//! Every operation takes a [`CgroupPath`] relative to the hierarchies' mount points. The
//! operations are synchronous file writes that take microseconds; async callers run them on
//! a blocking thread.

use std::path::PathBuf;
use std::time::Duration;

use crate::layout::CgroupPath;
use crate::resources::CgroupLimits;

/// Which cgroup interface a driver speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CgroupVersion {
    /// One hierarchy per controller (`/sys/fs/cgroup/<controller>`).
    V1,
    /// The unified hierarchy (`/sys/fs/cgroup`).
    V2,
}

/// What a cgroup has used, as the kubelet and cAdvisor report it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CgroupUsage {
    /// CPU time used since the cgroup was created, in nanoseconds.
    pub cpu_usage_ns: u64,
    /// CFS periods in which the cgroup had runnable work while under a quota.
    pub cpu_periods: u64,
    /// Of those periods, how many ended with the cgroup throttled.
    pub cpu_throttled_periods: u64,
    /// How long the cgroup was throttled in total, in nanoseconds.
    pub cpu_throttled_ns: u64,
    /// Memory charged to the cgroup, page cache included, in bytes.
    pub memory_usage_bytes: u64,
    /// The working set, which `kubectl top` and evictions use: usage minus inactive file
    /// pages (zero if those exceed the usage).
    pub memory_working_set_bytes: u64,
}

/// Why a cgroup operation failed.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    /// A name cannot be a cgroup.
    #[error(transparent)]
    Name(#[from] crate::layout::NameError),
    /// Reading, writing, creating or removing a cgroup file failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The system's answer.
        #[source]
        source: std::io::Error,
    },
    /// A cgroup file holds something this crate cannot read.
    #[error("{path}: unexpected content {content:?}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What it held (cut to a line).
        content: String,
    },
    /// A cgroup still holds processes, so it cannot be removed.
    #[error("cgroup {path} still has processes")]
    Busy {
        /// The cgroup.
        path: CgroupPath,
    },
    /// Processes survived `SIGKILL` for the whole wait.
    #[error("processes {pids:?} of cgroup {path} still run {waited:?} after SIGKILL")]
    KillTimeout {
        /// The cgroup.
        path: CgroupPath,
        /// The survivors.
        pids: Vec<u32>,
        /// How long they were waited for.
        waited: Duration,
    },
    /// No usable cgroup hierarchy is mounted.
    #[error("no usable cgroup hierarchy: {0}")]
    Unavailable(String),
}

impl CgroupError {
    /// Whether the error says the cgroup (or its file) does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, CgroupError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound)
    }
}

/// Creates, fills, measures and removes cgroups in one cgroup version's files.
pub trait CgroupDriver: Send + Sync {
    /// The interface this driver writes.
    fn version(&self) -> CgroupVersion;

    /// Creates the cgroup and any missing ancestor (ancestors get no limits of their own),
    /// then writes `limits` to it. On an existing cgroup this updates the limits.
    fn create(&self, cgroup: &CgroupPath, limits: &CgroupLimits) -> Result<(), CgroupError>;

    /// Whether the cgroup exists.
    fn exists(&self, cgroup: &CgroupPath) -> bool;

    /// Moves a process (all its threads) into the cgroup.
    fn add_process(&self, cgroup: &CgroupPath, pid: u32) -> Result<(), CgroupError>;

    /// The `cgroup.procs` files a process writes `0` to in order to join the cgroup (one per
    /// hierarchy), so a starting child can join before it runs anything, between fork and exec,
    /// where it may not allocate.
    fn procs_files(&self, cgroup: &CgroupPath) -> Vec<std::path::PathBuf>;

    /// The names of the cgroup's direct children, sorted; none for a cgroup that does not
    /// exist.
    fn children(&self, cgroup: &CgroupPath) -> Result<Vec<String>, CgroupError>;

    /// The processes in the cgroup and every cgroup below it, sorted; none for a cgroup that
    /// does not exist.
    fn pids(&self, cgroup: &CgroupPath) -> Result<Vec<u32>, CgroupError>;

    /// CPU and memory use of the cgroup, its descendants included.
    fn usage(&self, cgroup: &CgroupPath) -> Result<CgroupUsage, CgroupError>;

    /// How many processes the OOM killer killed in the cgroup and below it.
    fn oom_kills(&self, cgroup: &CgroupPath) -> Result<u64, CgroupError>;

    /// Sends `SIGKILL` to every process in the cgroup and below, and waits up to `wait` for
    /// them to be gone. A cgroup that does not exist has nothing to kill.
    fn kill_all(&self, cgroup: &CgroupPath, wait: Duration) -> Result<(), CgroupError>;

    /// Removes the cgroup and every cgroup below it, deepest first. A cgroup already gone is
    /// not an error; one that still holds processes is ([`CgroupError::Busy`]).
    fn remove(&self, cgroup: &CgroupPath) -> Result<(), CgroupError>;
}
