//! File work shared by both drivers: reading and writing cgroup files, walking a cgroup's
//! subtree, killing what it holds and removing it deepest first.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::driver::CgroupError;
use crate::layout::CgroupPath;

/// How often a wait looks again.
const POLL: Duration = Duration::from_millis(5);
/// How long a removal retries a cgroup the kernel still calls busy right after its last
/// process exited.
const REMOVE_RETRY: Duration = Duration::from_secs(2);

/// The directory of `cgroup` under a mount point.
pub fn dir(mount: &Path, cgroup: &CgroupPath) -> PathBuf {
    if cgroup.as_str().is_empty() {
        mount.to_path_buf()
    } else {
        mount.join(cgroup.as_str())
    }
}

fn io(op: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> CgroupError {
    let path = path.to_path_buf();
    move |source| CgroupError::Io { op, path, source }
}

/// A cgroup file's content.
pub fn read(path: &Path) -> Result<String, CgroupError> {
    std::fs::read_to_string(path).map_err(io("read", path))
}

/// Writes one value to a cgroup file (one `write`, as the kernel wants).
pub fn write(path: &Path, value: &str) -> Result<(), CgroupError> {
    std::fs::write(path, value).map_err(io("write", path))
}

/// A file holding one unsigned number (`cpuacct.usage`, `memory.current`).
pub fn read_u64(path: &Path) -> Result<u64, CgroupError> {
    let text = read(path)?;
    parse_u64(path, text.trim())
}

fn parse_u64(path: &Path, text: &str) -> Result<u64, CgroupError> {
    text.parse().map_err(|_| CgroupError::Parse {
        path: path.to_path_buf(),
        content: text.lines().next().unwrap_or_default().to_string(),
    })
}

/// One key of a flat keyed file (`key value` lines: `cpu.stat`, `memory.stat`,
/// `memory.events`, `memory.oom_control`); `None` when the key is absent.
pub fn keyed_u64(path: &Path, text: &str, key: &str) -> Result<Option<u64>, CgroupError> {
    for line in text.lines() {
        let mut fields = line.split_whitespace();
        if fields.next() == Some(key) {
            let value = fields.next().unwrap_or_default();
            return parse_u64(path, value).map(Some);
        }
    }
    Ok(None)
}

/// Creates the cgroup's directory and its missing ancestors under `mount`, calling
/// `on_new_parent` with each directory that is about to receive a new child (from the mount
/// point down), so v2 can enable controllers for it first.
pub fn create_dirs(
    mount: &Path,
    cgroup: &CgroupPath,
    mut on_new_parent: impl FnMut(&Path) -> Result<(), CgroupError>,
) -> Result<(), CgroupError> {
    let mut current = mount.to_path_buf();
    for component in cgroup.components() {
        let next = current.join(component);
        if !next.is_dir() {
            on_new_parent(&current)?;
            match std::fs::create_dir(&next) {
                Ok(()) => {}
                // Another caller made it meanwhile: as good as made.
                Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
                Err(e) => return Err(io("create", &next)(e)),
            }
        }
        current = next;
    }
    Ok(())
}

/// The directories of a cgroup's subtree, parents before children; none if it does not exist.
pub fn subtree(top: &Path) -> Result<Vec<PathBuf>, CgroupError> {
    let mut out = Vec::new();
    if !top.is_dir() {
        return Ok(out);
    }
    let mut pending = vec![top.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            // Removed while walking: nothing below it any more.
            Err(e) if e.kind() == ErrorKind::NotFound => continue,
            Err(e) => return Err(io("list", &dir)(e)),
        };
        for entry in entries {
            let entry = entry.map_err(io("list", &dir))?;
            let is_dir = entry
                .file_type()
                .map_err(io("list", &entry.path()))?
                .is_dir();
            if is_dir {
                pending.push(entry.path());
            }
        }
        out.push(dir);
    }
    // `pending` is a stack, so sort to put every parent before its children.
    out.sort_by_key(|p| p.components().count());
    Ok(out)
}

/// The names of a cgroup directory's subdirectories, sorted; none if it does not exist.
pub fn child_names(dir: &Path) -> Result<Vec<String>, CgroupError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io("list", dir)(e)),
    };
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(io("list", dir))?;
        if entry
            .file_type()
            .map_err(io("list", &entry.path()))?
            .is_dir()
        {
            names.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    names.sort();
    Ok(names)
}

/// The processes listed in `cgroup.procs` across a subtree, sorted and without duplicates.
pub fn procs_in_subtree(top: &Path) -> Result<Vec<u32>, CgroupError> {
    let mut pids = Vec::new();
    for dir in subtree(top)? {
        let file = dir.join("cgroup.procs");
        let text = match std::fs::read_to_string(&file) {
            Ok(text) => text,
            Err(e) if e.kind() == ErrorKind::NotFound => continue,
            Err(e) => return Err(io("read", &file)(e)),
        };
        for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
            let pid = u32::try_from(parse_u64(&file, line)?).map_err(|_| CgroupError::Parse {
                path: file.clone(),
                content: line.to_string(),
            })?;
            pids.push(pid);
        }
    }
    pids.sort_unstable();
    pids.dedup();
    Ok(pids)
}

/// Sends `SIGKILL` to each process, skipping those already gone, PID 0 (a process of another
/// PID namespace, which `kill` would read as our own process group) and this process.
pub fn kill_each(pids: &[u32]) {
    let own = std::process::id();
    for &pid in pids {
        if pid == 0 || pid == own {
            continue;
        }
        if let Ok(raw) = i32::try_from(pid) {
            // ESRCH: it exited meanwhile, which is what we want anyway.
            let _ = kill(Pid::from_raw(raw), Signal::SIGKILL);
        }
    }
}

/// Polls `list` until it returns no process or `wait` has passed, returning the survivors.
pub fn wait_until_empty(
    wait: Duration,
    mut list: impl FnMut() -> Result<Vec<u32>, CgroupError>,
    mut between: impl FnMut(&[u32]),
) -> Result<Vec<u32>, CgroupError> {
    let deadline = Instant::now() + wait;
    loop {
        let pids = list()?;
        if pids.is_empty() || Instant::now() >= deadline {
            return Ok(pids);
        }
        between(&pids);
        std::thread::sleep(POLL);
    }
}

/// Removes a cgroup directory and every one below it, deepest first, with `rmdir` only (a
/// cgroup's files go with its directory). Missing directories are fine; a directory the
/// kernel calls busy is retried briefly, since a cgroup stays busy for a moment after its last
/// process exits.
pub fn remove_subtree(top: &Path, cgroup: &CgroupPath) -> Result<(), CgroupError> {
    let mut dirs = subtree(top)?;
    dirs.reverse();
    for dir in dirs {
        let deadline = Instant::now() + REMOVE_RETRY;
        loop {
            match std::fs::remove_dir(&dir) {
                Ok(()) => break,
                Err(e) if e.kind() == ErrorKind::NotFound => break,
                Err(e) if e.kind() == ErrorKind::ResourceBusy => {
                    if Instant::now() >= deadline {
                        return Err(CgroupError::Busy {
                            path: cgroup.clone(),
                        });
                    }
                    std::thread::sleep(POLL);
                }
                Err(e) => return Err(io("remove", &dir)(e)),
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyed_files_are_read_by_key() {
        let path = Path::new("cpu.stat");
        let text = "nr_periods 12\nnr_throttled 3\nthrottled_time 4500\n";
        assert_eq!(keyed_u64(path, text, "nr_throttled").unwrap(), Some(3));
        assert_eq!(keyed_u64(path, text, "throttled_time").unwrap(), Some(4500));
        assert_eq!(keyed_u64(path, text, "nr_bursts").unwrap(), None);
        assert!(keyed_u64(path, "nr_periods x\n", "nr_periods").is_err());
        // A key is a whole word: `oom_kill_disable` is not `oom_kill`.
        let oom = "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n";
        assert_eq!(keyed_u64(path, oom, "oom_kill").unwrap(), Some(2));
    }

    #[test]
    fn subtrees_list_parents_first_and_remove_children_first() {
        let tmp = tempfile::tempdir().unwrap();
        let cgroup = CgroupPath::parse("a/b/c").unwrap();
        create_dirs(tmp.path(), &cgroup, |_| Ok(())).unwrap();
        std::fs::create_dir(tmp.path().join("a/b2")).unwrap();
        let top = tmp.path().join("a");
        let dirs = subtree(&top).unwrap();
        assert_eq!(dirs.first(), Some(&top));
        assert_eq!(dirs.len(), 4);
        let pos = |p: &str| dirs.iter().position(|d| d == &tmp.path().join(p)).unwrap();
        assert!(pos("a/b") < pos("a/b/c"));
        remove_subtree(&top, &CgroupPath::parse("a").unwrap()).unwrap();
        assert!(!top.exists());
        // Gone already: still fine.
        remove_subtree(&top, &CgroupPath::parse("a").unwrap()).unwrap();
        assert!(subtree(&top).unwrap().is_empty());
        assert!(procs_in_subtree(&top).unwrap().is_empty());
    }
}
