//! The cgroup v2 driver: one unified hierarchy, as on current distributions.
//!
//! Controllers are enabled top-down in each ancestor's `cgroup.subtree_control` (`cpu`,
//! `memory` and `pids`, those the root offers). Files: `cpu.weight` (shares converted by
//! [`cpu_shares_to_weight`]), `cpu.max` (`max 100000` for no quota), `memory.max`,
//! `memory.swap.max` (0 when swap is forbidden), `memory.oom.group`, `pids.max`; usage from
//! `cpu.stat` (`usage_usec`, throttling), `memory.current` and `memory.stat`
//! (`inactive_file`, as cAdvisor computes the working set); OOM kills from `memory.events`,
//! which already counts the whole subtree. Killing writes `cgroup.kill`
//! where the kernel has it (5.14 on), which kills the subtree at once, forks included.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::driver::{CgroupDriver, CgroupError, CgroupUsage, CgroupVersion};
use crate::fsutil;
use crate::layout::CgroupPath;
use crate::resources::{cpu_shares_to_weight, CgroupLimits, QUOTA_PERIOD_US};

/// The controllers pods need.
const WANTED: [&str; 3] = ["cpu", "memory", "pids"];

/// Cgroups in the unified hierarchy mounted at one path.
#[derive(Clone, Debug)]
pub struct V2Driver {
    mount: PathBuf,
}

impl V2Driver {
    /// A driver over the unified hierarchy mounted at `mount` (usually `/sys/fs/cgroup`).
    pub fn new(mount: impl Into<PathBuf>) -> V2Driver {
        V2Driver {
            mount: mount.into(),
        }
    }

    /// The mount point.
    pub fn mount(&self) -> &Path {
        &self.mount
    }

    fn dir(&self, cgroup: &CgroupPath) -> PathBuf {
        fsutil::dir(&self.mount, cgroup)
    }

    /// The wanted controllers the root offers.
    fn available(&self) -> Result<Vec<&'static str>, CgroupError> {
        let offered = fsutil::read(&self.mount.join("cgroup.controllers"))?;
        let offered: Vec<&str> = offered.split_whitespace().collect();
        Ok(WANTED.into_iter().filter(|c| offered.contains(c)).collect())
    }
}

impl V2Driver {
    /// Enables the controllers in a cgroup's `cgroup.subtree_control`, writing only when one
    /// is missing (a cgroup holding processes refuses the write, even of enabled ones).
    fn enable_controllers(&self, dir: &Path, controllers: &[&str]) -> Result<(), CgroupError> {
        let file = dir.join("cgroup.subtree_control");
        let enabled = match fsutil::read(&file) {
            Ok(text) => text,
            Err(e) if e.is_not_found() => String::new(),
            Err(e) => return Err(e),
        };
        let enabled: Vec<&str> = enabled
            .split_whitespace()
            .map(|c| c.trim_start_matches('+'))
            .collect();
        if controllers.iter().all(|c| enabled.contains(c)) {
            return Ok(());
        }
        let enable: Vec<String> = controllers.iter().map(|c| format!("+{c}")).collect();
        fsutil::write(&file, &enable.join(" "))
    }
}

fn missing(controller: &str) -> CgroupError {
    CgroupError::Unavailable(format!(
        "the {controller} controller is not enabled in the cgroup v2 root"
    ))
}

impl CgroupDriver for V2Driver {
    fn version(&self) -> CgroupVersion {
        CgroupVersion::V2
    }

    fn create(&self, cgroup: &CgroupPath, limits: &CgroupLimits) -> Result<(), CgroupError> {
        let available = self.available()?;
        let has = |controller| available.contains(&controller);
        // Refuse before creating anything a limit the hierarchy cannot enforce.
        let needed = [
            (
                "cpu",
                limits.cpu_shares.is_some() || limits.cpu_quota.is_some(),
            ),
            ("memory", limits.memory_limit_bytes.is_some()),
            ("pids", limits.pids_max.is_some()),
        ];
        if let Some((controller, _)) = needed.iter().find(|(c, needed)| *needed && !has(c)) {
            return Err(missing(controller));
        }
        fsutil::create_dirs(&self.mount, cgroup, |_| Ok(()))?;
        if !available.is_empty() {
            // Each ancestor, the hierarchy's root included, hands the controllers down to its
            // children, from the top down.
            let mut chain = Vec::new();
            let mut walk = cgroup.parent();
            while let Some(parent) = walk {
                walk = parent.parent();
                chain.push(parent);
            }
            chain.reverse();
            for parent in chain {
                self.enable_controllers(&self.dir(&parent), &available)?;
            }
        }
        let dir = self.dir(cgroup);
        if let Some(shares) = limits.cpu_shares {
            let weight = cpu_shares_to_weight(shares);
            fsutil::write(&dir.join("cpu.weight"), &weight.to_string())?;
        }
        match limits.cpu_quota {
            Some(quota) => fsutil::write(
                &dir.join("cpu.max"),
                &format!("{} {}", quota.quota_us, quota.period_us),
            )?,
            None if has("cpu") => {
                fsutil::write(&dir.join("cpu.max"), &format!("max {QUOTA_PERIOD_US}"))?
            }
            None => {}
        }
        match limits.memory_limit_bytes {
            Some(bytes) => fsutil::write(&dir.join("memory.max"), &bytes.to_string())?,
            None if has("memory") => fsutil::write(&dir.join("memory.max"), "max")?,
            None => {}
        }
        // Present only with the memory controller and swap accounting.
        let swap_max = dir.join("memory.swap.max");
        if swap_max.is_file() {
            fsutil::write(&swap_max, if limits.no_swap { "0" } else { "max" })?;
        }
        if limits.oom_kills_group && has("memory") {
            fsutil::write(&dir.join("memory.oom.group"), "1")?;
        }
        match limits.pids_max {
            Some(n) => fsutil::write(&dir.join("pids.max"), &n.to_string())?,
            None if has("pids") => fsutil::write(&dir.join("pids.max"), "max")?,
            None => {}
        }
        Ok(())
    }

    fn exists(&self, cgroup: &CgroupPath) -> bool {
        self.dir(cgroup).is_dir()
    }

    fn add_process(&self, cgroup: &CgroupPath, pid: u32) -> Result<(), CgroupError> {
        fsutil::write(&self.dir(cgroup).join("cgroup.procs"), &pid.to_string())
    }

    fn procs_files(&self, cgroup: &CgroupPath) -> Vec<std::path::PathBuf> {
        vec![self.dir(cgroup).join("cgroup.procs")]
    }

    fn children(&self, cgroup: &CgroupPath) -> Result<Vec<String>, CgroupError> {
        fsutil::child_names(&self.dir(cgroup))
    }

    fn pids(&self, cgroup: &CgroupPath) -> Result<Vec<u32>, CgroupError> {
        fsutil::procs_in_subtree(&self.dir(cgroup))
    }

    fn usage(&self, cgroup: &CgroupPath) -> Result<CgroupUsage, CgroupError> {
        let dir = self.dir(cgroup);
        let cpu_stat_path = dir.join("cpu.stat");
        let cpu_stat = fsutil::read(&cpu_stat_path)?;
        let cpu = |key| fsutil::keyed_u64(&cpu_stat_path, &cpu_stat, key);
        let usage_usec = cpu("usage_usec")?.ok_or_else(|| CgroupError::Parse {
            path: cpu_stat_path.clone(),
            content: "no usage_usec".to_string(),
        })?;
        let memory_usage_bytes = fsutil::read_u64(&dir.join("memory.current"))?;
        let stat_path = dir.join("memory.stat");
        let stat = fsutil::read(&stat_path)?;
        let inactive_file = fsutil::keyed_u64(&stat_path, &stat, "inactive_file")?.unwrap_or(0);
        Ok(CgroupUsage {
            cpu_usage_ns: usage_usec.saturating_mul(1000),
            cpu_periods: cpu("nr_periods")?.unwrap_or(0),
            cpu_throttled_periods: cpu("nr_throttled")?.unwrap_or(0),
            cpu_throttled_ns: cpu("throttled_usec")?.unwrap_or(0).saturating_mul(1000),
            memory_usage_bytes,
            memory_working_set_bytes: memory_usage_bytes.saturating_sub(inactive_file),
        })
    }

    fn oom_kills(&self, cgroup: &CgroupPath) -> Result<u64, CgroupError> {
        let path = self.dir(cgroup).join("memory.events");
        let text = fsutil::read(&path)?;
        Ok(fsutil::keyed_u64(&path, &text, "oom_kill")?.unwrap_or(0))
    }

    fn kill_all(&self, cgroup: &CgroupPath, wait: Duration) -> Result<(), CgroupError> {
        let top = self.dir(cgroup);
        if !top.is_dir() {
            return Ok(());
        }
        let started = Instant::now();
        let kill_file = top.join("cgroup.kill");
        if kill_file.is_file() {
            fsutil::write(&kill_file, "1")?;
        } else {
            fsutil::kill_each(&fsutil::procs_in_subtree(&top)?);
        }
        let survivors = fsutil::wait_until_empty(
            wait.saturating_sub(started.elapsed()),
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
        fsutil::remove_subtree(&self.dir(cgroup), cgroup)
    }
}
