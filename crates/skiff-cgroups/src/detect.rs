//! Which cgroup version this machine runs, read from the mount table at start.
//!
//! The rule: if v1 hierarchies for `cpu`, `cpuacct` and `memory` are mounted, the machine
//! runs v1 (a hybrid machine's `unified` v2 mount has no controllers to offer); otherwise a
//! mounted unified hierarchy (preferring `/sys/fs/cgroup`) means v2. Parsing and choosing are
//! pure, so every layout is tested from mount-table text.

use std::path::PathBuf;
use std::sync::Arc;

use crate::driver::{CgroupDriver, CgroupError};
use crate::v1::{V1Driver, V1Mounts};
use crate::v2::V2Driver;

/// One cgroup mount from `/proc/self/mountinfo`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CgroupMount {
    /// Where it is mounted.
    pub mount_point: PathBuf,
    /// Whether it is the unified (v2) hierarchy.
    pub unified: bool,
    /// For v1, the controllers it carries (`cpu`, `cpuacct`, `name=systemd`...).
    pub controllers: Vec<String>,
}

/// The hierarchy a machine's pods get their cgroups in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Hierarchy {
    /// Per-controller v1 hierarchies.
    V1(V1Mounts),
    /// The unified hierarchy at this mount point.
    V2(PathBuf),
}

/// The cgroup mounts of a `/proc/<pid>/mountinfo` text. Lines of other file systems and
/// malformed lines are skipped.
pub fn parse_mountinfo(text: &str) -> Vec<CgroupMount> {
    let mut out = Vec::new();
    for line in text.lines() {
        // `id parent major:minor root mount-point options [optional fields] - fstype source super-options`
        let Some((before, after)) = line.split_once(" - ") else {
            continue;
        };
        let mut tail = after.split_whitespace();
        let (Some(fstype), Some(_source)) = (tail.next(), tail.next()) else {
            continue;
        };
        let super_options = tail.next().unwrap_or_default();
        let Some(mount_point) = before.split_whitespace().nth(4) else {
            continue;
        };
        let mount_point = PathBuf::from(unescape(mount_point));
        match fstype {
            "cgroup2" => out.push(CgroupMount {
                mount_point,
                unified: true,
                controllers: Vec::new(),
            }),
            "cgroup" => out.push(CgroupMount {
                mount_point,
                unified: false,
                controllers: super_options
                    .split(',')
                    .filter(|o| !matches!(*o, "rw" | "ro" | ""))
                    .map(str::to_string)
                    .collect(),
            }),
            _ => {}
        }
    }
    out
}

/// Mount points escape space, tab, newline and backslash as three octal digits.
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|d| bytes[i] == b'\\' && d.iter().all(|b| (b'0'..=b'7').contains(b)));
        match octal {
            Some(d) => {
                let value = d.iter().fold(0u32, |acc, b| acc * 8 + u32::from(b - b'0'));
                out.push(u8::try_from(value).unwrap_or(b'?'));
                i += 4;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Chooses the hierarchy from the mounts, as described in the module documentation.
pub fn choose_hierarchy(mounts: &[CgroupMount]) -> Result<Hierarchy, CgroupError> {
    let v1 = |controller: &str| {
        mounts
            .iter()
            .find(|m| !m.unified && m.controllers.iter().any(|c| c == controller))
            .map(|m| m.mount_point.clone())
    };
    if let (Some(cpu), Some(cpuacct), Some(memory)) = (v1("cpu"), v1("cpuacct"), v1("memory")) {
        return Ok(Hierarchy::V1(V1Mounts {
            cpu,
            cpuacct,
            memory,
            pids: v1("pids"),
            freezer: v1("freezer"),
        }));
    }
    let unified: Vec<&CgroupMount> = mounts.iter().filter(|m| m.unified).collect();
    let preferred = unified
        .iter()
        .find(|m| m.mount_point == std::path::Path::new("/sys/fs/cgroup"))
        .or_else(|| unified.first());
    match preferred {
        Some(m) => Ok(Hierarchy::V2(m.mount_point.clone())),
        None => Err(CgroupError::Unavailable(
            "neither cgroup v1 cpu, cpuacct and memory hierarchies nor a cgroup v2 hierarchy is mounted"
                .to_string(),
        )),
    }
}

/// The driver for this machine, from `/proc/self/mountinfo`.
pub fn detect() -> Result<Arc<dyn CgroupDriver>, CgroupError> {
    let path = PathBuf::from("/proc/self/mountinfo");
    let text = std::fs::read_to_string(&path).map_err(|source| CgroupError::Io {
        op: "read",
        path,
        source,
    })?;
    Ok(driver_for(choose_hierarchy(&parse_mountinfo(&text))?))
}

/// The driver for a chosen hierarchy.
pub fn driver_for(hierarchy: Hierarchy) -> Arc<dyn CgroupDriver> {
    match hierarchy {
        Hierarchy::V1(mounts) => Arc::new(V1Driver::new(mounts)),
        Hierarchy::V2(mount) => Arc::new(V2Driver::new(mount)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::driver::CgroupVersion;

    /// This machine's kind of table: v1 controllers each on their own, an empty unified
    /// hierarchy beside them.
    const HYBRID: &str = "\
25 30 0:23 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
33 25 0:28 / /sys/fs/cgroup rw,relatime shared:9 - tmpfs tmpfs rw,mode=755
34 33 0:29 / /sys/fs/cgroup/cpu rw,relatime shared:10 - cgroup cgroup rw,cpu
35 33 0:30 / /sys/fs/cgroup/cpuacct rw,relatime shared:11 - cgroup cgroup rw,cpuacct
36 33 0:31 / /sys/fs/cgroup/memory rw,relatime shared:12 - cgroup cgroup rw,memory
37 33 0:32 / /sys/fs/cgroup/pids rw,relatime shared:13 - cgroup cgroup rw,pids
38 33 0:33 / /sys/fs/cgroup/freezer rw,relatime shared:14 - cgroup cgroup rw,freezer
39 33 0:34 / /sys/fs/cgroup/systemd rw,relatime shared:15 - cgroup cgroup rw,name=systemd
40 33 0:35 / /sys/fs/cgroup/unified rw,relatime shared:16 - cgroup2 cgroup2 rw
";

    /// A systemd distribution of the last decade: `cpu,cpuacct` mounted together.
    const COMOUNTED: &str = "\
31 25 0:26 / /sys/fs/cgroup/systemd rw,nosuid,nodev,noexec,relatime shared:9 - cgroup cgroup rw,xattr,name=systemd
35 25 0:30 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid,nodev,noexec,relatime shared:15 - cgroup cgroup rw,cpu,cpuacct
36 25 0:31 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:16 - cgroup cgroup rw,memory
";

    /// A current distribution: only the unified hierarchy.
    const UNIFIED: &str = "\
24 30 0:22 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
27 24 0:25 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
";

    #[test]
    fn a_hybrid_machine_uses_v1() {
        let mounts = parse_mountinfo(HYBRID);
        assert_eq!(mounts.len(), 7);
        let Hierarchy::V1(v1) = choose_hierarchy(&mounts).unwrap() else {
            panic!("a hybrid machine must use v1");
        };
        assert_eq!(v1.cpu, PathBuf::from("/sys/fs/cgroup/cpu"));
        assert_eq!(v1.cpuacct, PathBuf::from("/sys/fs/cgroup/cpuacct"));
        assert_eq!(v1.memory, PathBuf::from("/sys/fs/cgroup/memory"));
        assert_eq!(v1.pids, Some(PathBuf::from("/sys/fs/cgroup/pids")));
        assert_eq!(v1.freezer, Some(PathBuf::from("/sys/fs/cgroup/freezer")));
        assert_eq!(driver_for(Hierarchy::V1(v1)).version(), CgroupVersion::V1);
    }

    #[test]
    fn comounted_controllers_share_a_path() {
        let Hierarchy::V1(v1) = choose_hierarchy(&parse_mountinfo(COMOUNTED)).unwrap() else {
            panic!("v1 expected");
        };
        assert_eq!(v1.cpu, PathBuf::from("/sys/fs/cgroup/cpu,cpuacct"));
        assert_eq!(v1.cpu, v1.cpuacct);
        assert_eq!(v1.pids, None);
        assert_eq!(v1.freezer, None);
    }

    #[test]
    fn a_unified_machine_uses_v2() {
        let hierarchy = choose_hierarchy(&parse_mountinfo(UNIFIED)).unwrap();
        assert_eq!(hierarchy, Hierarchy::V2(PathBuf::from("/sys/fs/cgroup")));
        assert_eq!(driver_for(hierarchy).version(), CgroupVersion::V2);
    }

    #[test]
    fn odd_tables_are_handled() {
        // Nothing mounted.
        let err = choose_hierarchy(&parse_mountinfo("garbage\n\n1 2 3\n")).unwrap_err();
        assert!(
            err.to_string().contains("no usable cgroup hierarchy"),
            "{err}"
        );
        // Escaped mount points, and a v1 table missing memory, fall back to a unified mount.
        let text = "\
40 33 0:35 / /mnt/cgroup\\040two rw,relatime - cgroup2 cgroup2 rw
34 33 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu,cpuacct
";
        assert_eq!(
            choose_hierarchy(&parse_mountinfo(text)).unwrap(),
            Hierarchy::V2(PathBuf::from("/mnt/cgroup two"))
        );
    }
}
