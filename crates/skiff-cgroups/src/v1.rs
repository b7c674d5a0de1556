//! The cgroup v1 driver: one directory per controller hierarchy (`cpu`, `cpuacct`, `memory`,
//! and `pids` and `freezer` where mounted), as the kubelet's cgroupfs driver keeps them.
//!
//! Files: `cpu.shares`, `cpu.cfs_period_us` and `cpu.cfs_quota_us` (`-1` for no quota),
//! `memory.limit_in_bytes` (`-1` for none), `memory.memsw.limit_in_bytes` (the memory limit
//! when swap is forbidden), `pids.max`; usage from `cpuacct.usage`,
//! `cpu.stat`, `memory.usage_in_bytes` and `memory.stat` (`total_inactive_file`, as cAdvisor
//! computes the working set); OOM kills from `memory.oom_control`, which v1 counts only in
//! the cgroup the victim was in, so a subtree's count is summed here. Killing freezes the
//! subtree first (when the freezer is mounted) so no process can fork past the kill.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::driver::{CgroupDriver, CgroupError, CgroupUsage, CgroupVersion};
use crate::fsutil;
use crate::layout::CgroupPath;
use crate::resources::CgroupLimits;

/// Where each v1 controller this driver uses is mounted. Controllers mounted together
/// (`cpu,cpuacct`) share one path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct V1Mounts {
    /// The `cpu` hierarchy.
    pub cpu: PathBuf,
    /// The `cpuacct` hierarchy.
    pub cpuacct: PathBuf,
    /// The `memory` hierarchy.
    pub memory: PathBuf,
    /// The `pids` hierarchy, if mounted.
    pub pids: Option<PathBuf>,
    /// The `freezer` hierarchy, if mounted.
    pub freezer: Option<PathBuf>,
}

/// Cgroups in the v1 hierarchies.
#[derive(Clone, Debug)]
pub struct V1Driver {
    mounts: V1Mounts,
    /// Every distinct hierarchy, in the order cgroups are created in them.
    hierarchies: Vec<PathBuf>,
}

impl V1Driver {
    /// A driver over these mounts.
    pub fn new(mounts: V1Mounts) -> V1Driver {
        let mut hierarchies: Vec<PathBuf> = Vec::new();
        let all = [
            Some(&mounts.cpu),
            Some(&mounts.cpuacct),
            Some(&mounts.memory),
            mounts.pids.as_ref(),
            mounts.freezer.as_ref(),
        ];
        for mount in all.into_iter().flatten() {
            if !hierarchies.contains(mount) {
                hierarchies.push(mount.clone());
            }
        }
        V1Driver {
            mounts,
            hierarchies,
        }
    }

    /// The mounts this driver uses.
    pub fn mounts(&self) -> &V1Mounts {
        &self.mounts
    }

    fn memory_dir(&self, cgroup: &CgroupPath) -> PathBuf {
        fsutil::dir(&self.mounts.memory, cgroup)
    }

    /// Freezes the subtree and waits (within `deadline`) until the kernel reports it frozen.
    /// Returns whether it froze.
    fn freeze(&self, dir: &Path, deadline: Instant) -> Result<bool, CgroupError> {
        let state = dir.join("freezer.state");
        fsutil::write(&state, "FROZEN")?;
        loop {
            if fsutil::read(&state)?.trim() == "FROZEN" {
                return Ok(true);
            }
            if Instant::now() >= deadline {
                return Ok(false);
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

impl CgroupDriver for V1Driver {
    fn version(&self) -> CgroupVersion {
        CgroupVersion::V1
    }

    fn create(&self, cgroup: &CgroupPath, limits: &CgroupLimits) -> Result<(), CgroupError> {
        for mount in &self.hierarchies {
            fsutil::create_dirs(mount, cgroup, |_| Ok(()))?;
        }
        let cpu = fsutil::dir(&self.mounts.cpu, cgroup);
        if let Some(shares) = limits.cpu_shares {
            fsutil::write(&cpu.join("cpu.shares"), &shares.to_string())?;
        }
        match limits.cpu_quota {
            Some(quota) => {
                // The period first: the kernel checks the quota against it.
                fsutil::write(&cpu.join("cpu.cfs_period_us"), &quota.period_us.to_string())?;
                fsutil::write(&cpu.join("cpu.cfs_quota_us"), &quota.quota_us.to_string())?;
            }
            None => fsutil::write(&cpu.join("cpu.cfs_quota_us"), "-1")?,
        }
        let memory_limit = match limits.memory_limit_bytes {
            Some(bytes) => bytes.to_string(),
            None => "-1".to_string(),
        };
        let memory = self.memory_dir(cgroup);
        // Memory plus swap may never be set below memory alone, so it is lifted out of the
        // way first and capped after; the file exists only where swap is accounted.
        let memsw = memory.join("memory.memsw.limit_in_bytes");
        let swap_accounted = memsw.is_file();
        if swap_accounted {
            fsutil::write(&memsw, "-1")?;
        }
        fsutil::write(&memory.join("memory.limit_in_bytes"), &memory_limit)?;
        if swap_accounted && limits.no_swap {
            fsutil::write(&memsw, &memory_limit)?;
        }
        if let Some(pids) = &self.mounts.pids {
            let max = match limits.pids_max {
                Some(n) => n.to_string(),
                None => "max".to_string(),
            };
            fsutil::write(&fsutil::dir(pids, cgroup).join("pids.max"), &max)?;
        }
        Ok(())
    }

    fn exists(&self, cgroup: &CgroupPath) -> bool {
        self.memory_dir(cgroup).is_dir()
    }

    fn add_process(&self, cgroup: &CgroupPath, pid: u32) -> Result<(), CgroupError> {
        for mount in &self.hierarchies {
            let procs = fsutil::dir(mount, cgroup).join("cgroup.procs");
            fsutil::write(&procs, &pid.to_string())?;
        }
        Ok(())
    }

    fn procs_files(&self, cgroup: &CgroupPath) -> Vec<PathBuf> {
        self.hierarchies
            .iter()
            .map(|mount| fsutil::dir(mount, cgroup).join("cgroup.procs"))
            .collect()
    }

    fn children(&self, cgroup: &CgroupPath) -> Result<Vec<String>, CgroupError> {
        fsutil::child_names(&self.memory_dir(cgroup))
    }

    fn pids(&self, cgroup: &CgroupPath) -> Result<Vec<u32>, CgroupError> {
        fsutil::procs_in_subtree(&self.memory_dir(cgroup))
    }

    fn usage(&self, cgroup: &CgroupPath) -> Result<CgroupUsage, CgroupError> {
        let cpuacct = fsutil::dir(&self.mounts.cpuacct, cgroup);
        let cpu_usage_ns = fsutil::read_u64(&cpuacct.join("cpuacct.usage"))?;
        let cpu_stat_path = fsutil::dir(&self.mounts.cpu, cgroup).join("cpu.stat");
        let cpu_stat = fsutil::read(&cpu_stat_path)?;
        let cpu = |key| fsutil::keyed_u64(&cpu_stat_path, &cpu_stat, key);
        let memory = self.memory_dir(cgroup);
        let memory_usage_bytes = fsutil::read_u64(&memory.join("memory.usage_in_bytes"))?;
        let stat_path = memory.join("memory.stat");
        let stat = fsutil::read(&stat_path)?;
        // cAdvisor takes the hierarchical count, falling back to the cgroup's own.
        let inactive_file = match fsutil::keyed_u64(&stat_path, &stat, "total_inactive_file")? {
            Some(n) => n,
            None => fsutil::keyed_u64(&stat_path, &stat, "inactive_file")?.unwrap_or(0),
        };
        Ok(CgroupUsage {
            cpu_usage_ns,
            cpu_periods: cpu("nr_periods")?.unwrap_or(0),
            cpu_throttled_periods: cpu("nr_throttled")?.unwrap_or(0),
            cpu_throttled_ns: cpu("throttled_time")?.unwrap_or(0),
            memory_usage_bytes,
            memory_working_set_bytes: memory_usage_bytes.saturating_sub(inactive_file),
        })
    }

    fn oom_kills(&self, cgroup: &CgroupPath) -> Result<u64, CgroupError> {
        let top = self.memory_dir(cgroup);
        if !top.is_dir() {
            return Err(CgroupError::Io {
                op: "read",
                path: top,
                source: std::io::ErrorKind::NotFound.into(),
            });
        }
        let mut total: u64 = 0;
        for dir in fsutil::subtree(&top)? {
            let path = dir.join("memory.oom_control");
            let text = match fsutil::read(&path) {
                Ok(text) => text,
                // A child removed while summing no longer counts.
                Err(e) if e.is_not_found() => continue,
                Err(e) => return Err(e),
            };
            let kills = fsutil::keyed_u64(&path, &text, "oom_kill")?.unwrap_or(0);
            total = total.saturating_add(kills);
        }
        Ok(total)
    }

    fn kill_all(&self, cgroup: &CgroupPath, wait: Duration) -> Result<(), CgroupError> {
        let top = self.memory_dir(cgroup);
        if !top.is_dir() {
            return Ok(());
        }
        let started = Instant::now();
        let frozen_dir = self
            .mounts
            .freezer
            .as_ref()
            .map(|freezer| fsutil::dir(freezer, cgroup))
            .filter(|dir| dir.join("freezer.state").is_file());
        if let Some(dir) = &frozen_dir {
            let froze = self.freeze(dir, started + wait);
            // Kill whatever the freeze caught, then thaw even if something failed, so the
            // signals are delivered and nothing stays frozen.
            let killed = froze.and_then(|_| {
                fsutil::kill_each(&fsutil::procs_in_subtree(&top)?);
                fsutil::kill_each(&fsutil::procs_in_subtree(dir)?);
                Ok(())
            });
            let thawed = fsutil::write(&dir.join("freezer.state"), "THAWED");
            killed?;
            thawed?;
        }
        let remaining = wait.saturating_sub(started.elapsed());
        let survivors = fsutil::wait_until_empty(
            remaining,
            || fsutil::procs_in_subtree(&top),
            fsutil::kill_each,
        )?;
        if survivors.is_empty() {
            Ok(())
        } else {
            Err(CgroupError::KillTimeout {
                path: cgroup.clone(),
                pids: survivors,
                waited: wait,
            })
        }
    }

    fn remove(&self, cgroup: &CgroupPath) -> Result<(), CgroupError> {
        for mount in &self.hierarchies {
            fsutil::remove_subtree(&fsutil::dir(mount, cgroup), cgroup)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod procs_tests {
    use super::*;

    #[test]
    fn a_process_joins_every_hierarchy_once() {
        let driver = V1Driver::new(V1Mounts {
            cpu: PathBuf::from("/cg/cpu,cpuacct"),
            cpuacct: PathBuf::from("/cg/cpu,cpuacct"),
            memory: PathBuf::from("/cg/memory"),
            pids: Some(PathBuf::from("/cg/pids")),
            freezer: None,
        });
        let cgroup = CgroupPath::parse("skiff/kubepods/podu/web").unwrap();
        let files: Vec<String> = driver
            .procs_files(&cgroup)
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        assert_eq!(
            files,
            [
                "/cg/cpu,cpuacct/skiff/kubepods/podu/web/cgroup.procs",
                "/cg/memory/skiff/kubepods/podu/web/cgroup.procs",
                "/cg/pids/skiff/kubepods/podu/web/cgroup.procs",
            ]
        );
    }
}
