//! A recording [`CgroupDriver`] for tests of the node agent and the runtime: it keeps
//! cgroups, their limits and their processes in memory, records every call in order, and
//! behaves as the kernel does where callers depend on it (ancestors are created with a
//! cgroup, a cgroup holding processes cannot be removed, a removed cgroup is gone).

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use crate::driver::{CgroupDriver, CgroupError, CgroupUsage, CgroupVersion};
use crate::layout::CgroupPath;
use crate::resources::CgroupLimits;

/// One call the fake received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DriverCall {
    /// [`CgroupDriver::create`].
    Create(CgroupPath, CgroupLimits),
    /// [`CgroupDriver::add_process`].
    AddProcess(CgroupPath, u32),
    /// [`CgroupDriver::kill_all`].
    KillAll(CgroupPath),
    /// [`CgroupDriver::remove`].
    Remove(CgroupPath),
}

#[derive(Clone, Debug, Default)]
struct FakeCgroup {
    limits: CgroupLimits,
    pids: Vec<u32>,
    usage: CgroupUsage,
    oom_kills: u64,
}

#[derive(Debug, Default)]
struct State {
    calls: Vec<DriverCall>,
    cgroups: BTreeMap<CgroupPath, FakeCgroup>,
}

/// The in-memory, recording driver.
#[derive(Debug)]
pub struct RecordingDriver {
    version: CgroupVersion,
    state: Mutex<State>,
}

impl RecordingDriver {
    /// An empty fake that reports `version`.
    pub fn new(version: CgroupVersion) -> RecordingDriver {
        RecordingDriver {
            version,
            state: Mutex::new(State::default()),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A test that panicked while holding the lock leaves data still worth reading.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Every call so far, in order.
    pub fn calls(&self) -> Vec<DriverCall> {
        self.state().calls.clone()
    }

    /// The cgroups that exist, sorted.
    pub fn cgroups(&self) -> Vec<CgroupPath> {
        self.state().cgroups.keys().cloned().collect()
    }

    /// The limits last written to a cgroup (ancestors created implicitly have none).
    pub fn limits(&self, cgroup: &CgroupPath) -> Option<CgroupLimits> {
        self.state().cgroups.get(cgroup).map(|c| c.limits)
    }

    /// Sets what [`CgroupDriver::usage`] reports for a cgroup (its own, not summed).
    pub fn set_usage(&self, cgroup: &CgroupPath, usage: CgroupUsage) {
        if let Some(c) = self.state().cgroups.get_mut(cgroup) {
            c.usage = usage;
        }
    }

    /// Records OOM kills in a cgroup, as the kernel would after killing its processes.
    pub fn record_oom_kill(&self, cgroup: &CgroupPath, pid: u32) {
        if let Some(c) = self.state().cgroups.get_mut(cgroup) {
            c.oom_kills += 1;
            c.pids.retain(|p| *p != pid);
        }
    }

    /// Makes a process exit on its own, leaving its cgroup.
    pub fn exit_process(&self, pid: u32) {
        for c in self.state().cgroups.values_mut() {
            c.pids.retain(|p| *p != pid);
        }
    }

    fn not_found(cgroup: &CgroupPath) -> CgroupError {
        CgroupError::Io {
            op: "open",
            path: cgroup.as_str().into(),
            source: std::io::ErrorKind::NotFound.into(),
        }
    }
}

fn subtree<'a>(
    state: &'a State,
    cgroup: &'a CgroupPath,
) -> impl Iterator<Item = (&'a CgroupPath, &'a FakeCgroup)> + 'a {
    state
        .cgroups
        .iter()
        .filter(move |(path, _)| path.is_within(cgroup))
}

impl CgroupDriver for RecordingDriver {
    fn version(&self) -> CgroupVersion {
        self.version
    }

    fn create(&self, cgroup: &CgroupPath, limits: &CgroupLimits) -> Result<(), CgroupError> {
        let mut state = self.state();
        state
            .calls
            .push(DriverCall::Create(cgroup.clone(), *limits));
        let mut ancestor = cgroup.parent();
        while let Some(path) = ancestor {
            ancestor = path.parent();
            if !path.as_str().is_empty() {
                state.cgroups.entry(path).or_default();
            }
        }
        state.cgroups.entry(cgroup.clone()).or_default().limits = *limits;
        Ok(())
    }

    fn exists(&self, cgroup: &CgroupPath) -> bool {
        self.state().cgroups.contains_key(cgroup)
    }

    fn add_process(&self, cgroup: &CgroupPath, pid: u32) -> Result<(), CgroupError> {
        let mut state = self.state();
        state
            .calls
            .push(DriverCall::AddProcess(cgroup.clone(), pid));
        if !state.cgroups.contains_key(cgroup) {
            return Err(Self::not_found(cgroup));
        }
        for c in state.cgroups.values_mut() {
            c.pids.retain(|p| *p != pid);
        }
        if let Some(c) = state.cgroups.get_mut(cgroup) {
            c.pids.push(pid);
        }
        Ok(())
    }

    fn procs_files(&self, cgroup: &CgroupPath) -> Vec<std::path::PathBuf> {
        // Nothing on disk: a child told to join these would fail, so the fake names none.
        let _ = cgroup;
        Vec::new()
    }

    fn children(&self, cgroup: &CgroupPath) -> Result<Vec<String>, CgroupError> {
        let state = self.state();
        let names = state
            .cgroups
            .keys()
            .filter(|path| path.parent().as_ref() == Some(cgroup))
            .filter_map(|path| path.components().last().map(str::to_string))
            .collect();
        Ok(names)
    }

    fn pids(&self, cgroup: &CgroupPath) -> Result<Vec<u32>, CgroupError> {
        let state = self.state();
        let mut pids: Vec<u32> = subtree(&state, cgroup)
            .flat_map(|(_, c)| c.pids.iter().copied())
            .collect();
        pids.sort_unstable();
        Ok(pids)
    }

    fn usage(&self, cgroup: &CgroupPath) -> Result<CgroupUsage, CgroupError> {
        let state = self.state();
        if !state.cgroups.contains_key(cgroup) {
            return Err(Self::not_found(cgroup));
        }
        let mut total = CgroupUsage::default();
        for (_, c) in subtree(&state, cgroup) {
            let u = c.usage;
            total.cpu_usage_ns = total.cpu_usage_ns.saturating_add(u.cpu_usage_ns);
            total.cpu_periods = total.cpu_periods.saturating_add(u.cpu_periods);
            total.cpu_throttled_periods = total
                .cpu_throttled_periods
                .saturating_add(u.cpu_throttled_periods);
            total.cpu_throttled_ns = total.cpu_throttled_ns.saturating_add(u.cpu_throttled_ns);
            total.memory_usage_bytes = total
                .memory_usage_bytes
                .saturating_add(u.memory_usage_bytes);
            total.memory_working_set_bytes = total
                .memory_working_set_bytes
                .saturating_add(u.memory_working_set_bytes);
        }
        Ok(total)
    }

    fn oom_kills(&self, cgroup: &CgroupPath) -> Result<u64, CgroupError> {
        let state = self.state();
        if !state.cgroups.contains_key(cgroup) {
            return Err(Self::not_found(cgroup));
        }
        Ok(subtree(&state, cgroup).map(|(_, c)| c.oom_kills).sum())
    }

    fn kill_all(&self, cgroup: &CgroupPath, _wait: Duration) -> Result<(), CgroupError> {
        let mut state = self.state();
        state.calls.push(DriverCall::KillAll(cgroup.clone()));
        for (path, c) in state.cgroups.iter_mut() {
            if path.is_within(cgroup) {
                c.pids.clear();
            }
        }
        Ok(())
    }

    fn remove(&self, cgroup: &CgroupPath) -> Result<(), CgroupError> {
        let mut state = self.state();
        state.calls.push(DriverCall::Remove(cgroup.clone()));
        if subtree(&state, cgroup).any(|(_, c)| !c.pids.is_empty()) {
            return Err(CgroupError::Busy {
                path: cgroup.clone(),
            });
        }
        state.cgroups.retain(|path, _| !path.is_within(cgroup));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fake_behaves_like_the_kernel_where_callers_rely_on_it() {
        let fake = RecordingDriver::new(CgroupVersion::V2);
        let pod = CgroupPath::parse("skiff/kubepods/podA").unwrap();
        let ctr = pod.join("c1").unwrap();
        let limits = CgroupLimits {
            memory_limit_bytes: Some(1 << 20),
            ..CgroupLimits::default()
        };
        fake.create(&ctr, &limits).unwrap();
        assert!(fake.exists(&pod) && fake.exists(&CgroupPath::parse("skiff").unwrap()));
        assert_eq!(fake.limits(&ctr), Some(limits));
        assert_eq!(fake.limits(&pod), Some(CgroupLimits::default()));
        assert!(fake.add_process(&pod.join("nope").unwrap(), 9).is_err());
        fake.add_process(&ctr, 7).unwrap();
        assert_eq!(fake.pids(&pod).unwrap(), vec![7]);
        assert!(matches!(fake.remove(&pod), Err(CgroupError::Busy { .. })));
        fake.record_oom_kill(&ctr, 7);
        assert_eq!(fake.oom_kills(&pod).unwrap(), 1);
        assert!(fake.pids(&pod).unwrap().is_empty());
        fake.remove(&pod).unwrap();
        assert!(!fake.exists(&ctr) && !fake.exists(&pod));
        assert!(fake.usage(&pod).unwrap_err().is_not_found());
        // Removing again is fine.
        fake.remove(&pod).unwrap();
        assert_eq!(fake.calls().len(), 6);
    }
}
