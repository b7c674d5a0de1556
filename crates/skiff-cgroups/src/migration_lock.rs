//! Starting the kernel's switch of its cgroup migration lock before a runtime needs it.
//!
//! Moving a process into a cgroup (writing `cgroup.procs`, as every OCI runtime does with a
//! container's first process) takes the kernel's global cgroup threadgroup lock for writing.
//! After a quiet spell that lock favours its readers (every fork and exit), and the first
//! writer waits a whole RCU grace period while it switches over: 8-20 ms on the machines
//! measured, the largest single wait in a container's create. Writers that come during the
//! switch wait only for what is left of it, and for a grace period after the last writer none
//! waits at all. [`start_migration_lock_switch`] makes such a write (this process into the
//! cgroup it is already in, which moves nothing) on a thread of its own, so that the grace
//! period passes while the runtime is being executed and sets up the container's namespaces.
//!
//! The kernel's `favordynmods` cgroup mount option keeps the lock switched for good; Skiff
//! does not change the host's mounts.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::detect::{parse_mountinfo, CgroupMount};

/// The `cgroup.procs` file of the cgroup this process is in, given the machine's cgroup
/// mounts and the text of `/proc/self/cgroup`: in the unified hierarchy if one is mounted
/// (on a hybrid machine too, since the lock is one for all hierarchies), else in the first
/// v1 hierarchy whose controllers match a line. `None` when no line names a mounted
/// hierarchy.
pub fn own_procs_file(mounts: &[CgroupMount], self_cgroup: &str) -> Option<PathBuf> {
    let lines: Vec<(&str, &str)> = self_cgroup
        .lines()
        .filter_map(|line| {
            let (_, rest) = line.split_once(':')?;
            rest.split_once(':')
        })
        .collect();
    let under = |mount: &Path, path: &str| {
        mount
            .join(path.trim_start_matches('/'))
            .join("cgroup.procs")
    };
    if let Some(mount) = mounts.iter().find(|m| m.unified) {
        if let Some((_, path)) = lines.iter().find(|(controllers, _)| controllers.is_empty()) {
            return Some(under(&mount.mount_point, path));
        }
    }
    lines.iter().find_map(|(controllers, path)| {
        if controllers.is_empty() {
            return None;
        }
        let mut wanted: Vec<&str> = controllers.split(',').collect();
        wanted.sort_unstable();
        mounts
            .iter()
            .find(|m| {
                let mut have: Vec<&str> = m.controllers.iter().map(String::as_str).collect();
                have.sort_unstable();
                !m.unified && have == wanted
            })
            .map(|m| under(&m.mount_point, path))
    })
}

/// The machine's cgroup mounts, read once.
fn mounts() -> &'static [CgroupMount] {
    static MOUNTS: OnceLock<Vec<CgroupMount>> = OnceLock::new();
    MOUNTS.get_or_init(|| {
        std::fs::read_to_string("/proc/self/mountinfo")
            .map(|text| parse_mountinfo(&text))
            .unwrap_or_default()
    })
}

/// This process's own `cgroup.procs` file now (read each time: a service manager may move
/// the process, and the write must never move it back).
fn own_procs() -> Option<PathBuf> {
    let cgroup = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    own_procs_file(mounts(), &cgroup).filter(|file| file.exists())
}

/// Starts the lock's switch on a thread of its own and returns at once; call it when a
/// container's create is near. Does nothing where this process's cgroup cannot be found. The
/// write fails harmlessly where the kernel refuses the (empty) move: the switch happens
/// before the kernel looks at the move.
pub fn start_migration_lock_switch() {
    if mounts().is_empty() {
        return;
    }
    let _ = std::thread::Builder::new()
        .name("cgroup-lock".to_string())
        .spawn(|| {
            let _ = switch_now();
        });
}

/// The write itself, blocking until the switch is done; `Ok(false)` when this process's
/// cgroup was not found.
fn switch_now() -> std::io::Result<bool> {
    match own_procs() {
        Some(file) => std::fs::write(file, std::process::id().to_string()).map(|()| true),
        None => Ok(false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v1(mount: &str, controllers: &[&str]) -> CgroupMount {
        CgroupMount {
            mount_point: PathBuf::from(mount),
            unified: false,
            controllers: controllers.iter().map(|c| c.to_string()).collect(),
        }
    }

    fn v2(mount: &str) -> CgroupMount {
        CgroupMount {
            mount_point: PathBuf::from(mount),
            unified: true,
            controllers: Vec::new(),
        }
    }

    #[test]
    fn the_own_procs_file_is_found_in_each_layout() {
        let hybrid = [
            v1("/sys/fs/cgroup/cpu,cpuacct", &["cpu", "cpuacct"]),
            v1("/sys/fs/cgroup/memory", &["memory"]),
            v2("/sys/fs/cgroup/unified"),
        ];
        let cases: [(&str, &[CgroupMount], &str, Option<&str>); 5] = [
            (
                "pure v2",
                &[v2("/sys/fs/cgroup")],
                "0::/system.slice/skiff.service\n",
                Some("/sys/fs/cgroup/system.slice/skiff.service/cgroup.procs"),
            ),
            (
                "hybrid: the unified hierarchy",
                &hybrid,
                "5:memory:/skiff\n4:cpuacct,cpu:/skiff\n0::/skiff\n",
                Some("/sys/fs/cgroup/unified/skiff/cgroup.procs"),
            ),
            (
                "v1 only: controllers matched in any order",
                &hybrid[..2],
                "4:cpuacct,cpu:/\n5:memory:/m\n",
                Some("/sys/fs/cgroup/cpu,cpuacct/cgroup.procs"),
            ),
            (
                "v1 only, a line for an unmounted hierarchy skipped",
                &hybrid[1..2],
                "4:cpu,cpuacct:/\n5:memory:/m\n",
                Some("/sys/fs/cgroup/memory/m/cgroup.procs"),
            ),
            ("nothing mounted", &[], "0::/\n", None),
        ];
        for (name, mounts, text, want) in cases {
            assert_eq!(
                own_procs_file(mounts, text),
                want.map(PathBuf::from),
                "{name}"
            );
        }
    }

    #[test]
    fn this_machine_s_own_procs_file_exists() {
        let file = own_procs().expect(
            "no cgroup.procs file found for this process: are cgroups mounted at /sys/fs/cgroup?",
        );
        let listed = std::fs::read_to_string(&file).expect("read own cgroup.procs");
        assert!(
            listed
                .lines()
                .any(|pid| pid == std::process::id().to_string()),
            "{} does not list this process",
            file.display()
        );
    }

    #[test]
    fn the_switch_leaves_this_process_in_its_cgroups() {
        let before = std::fs::read_to_string("/proc/self/cgroup").expect("read own cgroups");
        // As root the write succeeds; elsewhere it may be refused, which must change nothing
        // either.
        let _ = switch_now();
        let after = std::fs::read_to_string("/proc/self/cgroup").expect("read own cgroups");
        assert_eq!(before, after);
    }
}
