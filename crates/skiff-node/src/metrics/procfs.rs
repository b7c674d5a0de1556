//! Reading CPU time and memory from `/proc`: per process group for containers, whole machine
//! for the node.
//!
//! The agent runs containers as plain process groups (no cgroups), so a container's usage is
//! the sum over the processes of its group. CPU time includes the times of children a group
//! member has already reaped (`cutime`/`cstime`), so the counter does not drop when a
//! short-lived helper process exits.

use std::collections::HashMap;
use std::path::Path;

/// One process's figures from `/proc/<pid>/stat` and `/proc/<pid>/statm`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProcessFigures {
    /// The process group.
    pub pgrp: i32,
    /// User + system time of the process and of its reaped children, in clock ticks.
    pub cpu_ticks: u64,
    /// Resident pages.
    pub resident_pages: u64,
}

/// A process group's totals.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GroupTotals {
    /// Cumulative CPU time in clock ticks.
    pub cpu_ticks: u64,
    /// Resident set size in bytes.
    pub rss_bytes: u64,
}

/// The scheduler's clock ticks per second (`sysconf(_SC_CLK_TCK)`, 100 on Linux).
pub fn clock_ticks_per_second() -> u64 {
    configuration_value(nix::unistd::SysconfVar::CLK_TCK).unwrap_or(100)
}

/// The size of a memory page in bytes.
pub fn page_size() -> u64 {
    configuration_value(nix::unistd::SysconfVar::PAGE_SIZE).unwrap_or(4096)
}

/// A positive `sysconf` value, or `None` when the system does not say.
fn configuration_value(variable: nix::unistd::SysconfVar) -> Option<u64> {
    let value = nix::unistd::sysconf(variable).ok()??;
    u64::try_from(value).ok().filter(|v| *v > 0)
}

/// The process group and the CPU ticks (`utime + stime + cutime + cstime`) in a
/// `/proc/<pid>/stat` line.
pub fn parse_stat(stat: &str) -> Option<(i32, u64)> {
    // The command name is in parentheses and may contain anything; fields follow the last ')'.
    let rest = stat.get(stat.rfind(')')? + 1..)?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // Field 3 of proc(5) (state) is at index 0 here; pgrp is field 5, utime..cstime 14..17.
    let pgrp = fields.get(2)?.parse().ok()?;
    let mut ticks: u64 = 0;
    for index in 11..=14 {
        // cutime and cstime are signed in the kernel's format; negative never happens in practice.
        let value: i64 = fields.get(index)?.parse().ok()?;
        ticks = ticks.saturating_add(u64::try_from(value).unwrap_or(0));
    }
    Some((pgrp, ticks))
}

/// The resident pages in a `/proc/<pid>/statm` line (its second field).
pub fn parse_statm(statm: &str) -> Option<u64> {
    statm.split_whitespace().nth(1)?.parse().ok()
}

/// Reads one process's figures; `None` when it is gone or unreadable.
pub fn read_process(proc_root: &Path, pid: i32) -> Option<ProcessFigures> {
    let dir = proc_root.join(pid.to_string());
    let stat = std::fs::read_to_string(dir.join("stat")).ok()?;
    let (pgrp, cpu_ticks) = parse_stat(&stat)?;
    // A zombie has no statm content worth reading; its CPU time still counts until reaped.
    let resident_pages = std::fs::read_to_string(dir.join("statm"))
        .ok()
        .and_then(|s| parse_statm(&s))
        .unwrap_or(0);
    Some(ProcessFigures {
        pgrp,
        cpu_ticks,
        resident_pages,
    })
}

/// Totals for each of `groups`, from one pass over `/proc`. A group with no process left is
/// absent from the answer.
pub fn group_totals(proc_root: &Path, groups: &[i32]) -> HashMap<i32, GroupTotals> {
    let mut totals: HashMap<i32, GroupTotals> = HashMap::new();
    if groups.is_empty() {
        return totals;
    }
    let Ok(entries) = std::fs::read_dir(proc_root) else {
        return totals;
    };
    let page = page_size();
    for pid in entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
    {
        let Some(figures) = read_process(proc_root, pid) else {
            continue;
        };
        if !groups.contains(&figures.pgrp) {
            continue;
        }
        let entry = totals.entry(figures.pgrp).or_default();
        entry.cpu_ticks = entry.cpu_ticks.saturating_add(figures.cpu_ticks);
        entry.rss_bytes = entry
            .rss_bytes
            .saturating_add(figures.resident_pages.saturating_mul(page));
    }
    totals
}

/// The machine's busy CPU ticks summed over all CPUs, from the `cpu` line of `/proc/stat`:
/// everything but `idle` and `iowait` (guest time is already inside `user` and `nice`).
pub fn parse_machine_cpu(stat: &str) -> Option<u64> {
    let line = stat
        .lines()
        .find(|l| l.split_whitespace().next() == Some("cpu"))?;
    let values: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|v| v.parse().ok())
        .collect::<Option<Vec<u64>>>()?;
    // user nice system idle iowait irq softirq steal [guest guest_nice]
    let busy = [0usize, 1, 2, 5, 6, 7]
        .iter()
        .map(|i| values.get(*i).copied().unwrap_or(0))
        .fold(0u64, u64::saturating_add);
    if values.len() < 4 {
        return None;
    }
    Some(busy)
}

/// The machine's working set, `MemTotal - MemAvailable` from `/proc/meminfo`, in bytes.
pub fn parse_machine_memory(meminfo: &str) -> Option<u64> {
    let field = |name: &str| -> Option<u64> {
        let line = meminfo.lines().find(|l| l.starts_with(name))?;
        let kib: u64 = line
            .strip_prefix(name)?
            .trim_start_matches(':')
            .split_whitespace()
            .next()?
            .parse()
            .ok()?;
        Some(kib.saturating_mul(1024))
    };
    let total = field("MemTotal:")?;
    let available = field("MemAvailable:")?;
    Some(total.saturating_sub(available))
}

/// The machine's busy CPU ticks and working set, `None` where `/proc` cannot be read.
pub fn machine_totals(proc_root: &Path) -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string(proc_root.join("stat")).ok()?;
    let meminfo = std::fs::read_to_string(proc_root.join("meminfo")).ok()?;
    Some((parse_machine_cpu(&stat)?, parse_machine_memory(&meminfo)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::{Child, Command};
    use std::time::{Duration, Instant};

    #[test]
    fn stat_lines_yield_group_and_all_four_cpu_times() {
        let cases = [
            (
                "42 (sh) S 1 40 40 0 -1 4194304 100 0 0 0 7 3 2 1 20 0 1 0 100 0 0",
                Some((40, 13)),
            ),
            // A command name with spaces and parentheses.
            (
                "9 (a) b (c)) R 1 77 77 0 -1 0 0 0 0 0 100 50 0 0 20 0 1 0 1 0 0",
                Some((77, 150)),
            ),
            ("garbage", None),
            ("1 (x) S 1 2", None),
        ];
        for (line, expected) in cases {
            assert_eq!(parse_stat(line), expected, "{line}");
        }
    }

    #[test]
    fn statm_gives_resident_pages() {
        assert_eq!(parse_statm("1000 250 30 1 0 100 0\n"), Some(250));
        assert_eq!(parse_statm(""), None);
    }

    #[test]
    fn machine_cpu_counts_busy_time_only() {
        let stat = "cpu  100 5 50 1000 20 3 2 1 0 0\ncpu0 50 2 25 500 10 1 1 0 0 0\nintr 1\n";
        assert_eq!(parse_machine_cpu(stat), Some(100 + 5 + 50 + 3 + 2 + 1));
        assert_eq!(parse_machine_cpu("intr 1\n"), None);
    }

    #[test]
    fn machine_memory_is_total_minus_available() {
        let meminfo =
            "MemTotal:       16000 kB\nMemFree:         1000 kB\nMemAvailable:    6000 kB\n";
        assert_eq!(parse_machine_memory(meminfo), Some(10000 * 1024));
        assert_eq!(parse_machine_memory("MemTotal: 5 kB\n"), None);
    }

    fn spawn_group(script: &str) -> Child {
        use std::os::unix::process::CommandExt;
        Command::new("/bin/sh")
            .args(["-c", script])
            .process_group(0)
            .spawn()
            .expect("spawn /bin/sh")
    }

    fn kill(mut child: Child) {
        let pgid = child.id() as i32;
        let _ = nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(pgid),
            nix::sys::signal::Signal::SIGKILL,
        );
        let _ = child.wait();
    }

    /// CPU ticks a group gains over `span` of wall time.
    fn ticks_over(pgid: i32, span: Duration) -> u64 {
        let proc_root = Path::new("/proc");
        let before = group_totals(proc_root, &[pgid])
            .get(&pgid)
            .map(|t| t.cpu_ticks)
            .unwrap_or(0);
        let until = Instant::now() + span;
        while Instant::now() < until {
            std::thread::sleep(Duration::from_millis(50));
        }
        let after = group_totals(proc_root, &[pgid])
            .get(&pgid)
            .map(|t| t.cpu_ticks)
            .unwrap_or(0);
        after.saturating_sub(before)
    }

    #[test]
    fn a_busy_group_gains_cpu_time_and_a_sleeping_one_does_not() {
        let busy = spawn_group("while :; do :; done");
        let sleeping = spawn_group("sleep 30");
        let busy_pgid = busy.id() as i32;
        let sleeping_pgid = sleeping.id() as i32;
        let span = Duration::from_millis(600);
        let busy_ticks = ticks_over(busy_pgid, span);
        let sleeping_ticks = ticks_over(sleeping_pgid, span);
        let totals = group_totals(Path::new("/proc"), &[busy_pgid, sleeping_pgid]);
        kill(busy);
        kill(sleeping);
        let hz = clock_ticks_per_second();
        // A busy loop on a shared machine gets at least a tenth of a CPU: over 0.6 s, that is
        // 0.06 s of CPU time.
        assert!(
            busy_ticks >= hz * 6 / 100,
            "busy group gained {busy_ticks} ticks"
        );
        assert!(
            sleeping_ticks <= 1,
            "sleeping group gained {sleeping_ticks} ticks"
        );
        assert!(totals[&busy_pgid].rss_bytes > 0);
        assert!(totals[&sleeping_pgid].rss_bytes > 0);
    }

    #[test]
    fn groups_without_processes_are_absent() {
        let totals = group_totals(Path::new("/proc"), &[i32::MAX - 7]);
        assert!(totals.is_empty());
    }

    #[test]
    fn this_machine_reports_busy_time_and_memory() {
        let (cpu, memory) = machine_totals(Path::new("/proc")).expect("readable /proc");
        assert!(cpu > 0);
        assert!(memory > 0);
    }
}
