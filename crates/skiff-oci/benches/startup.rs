//! Container start-up with each runtime: the time from `create` to a running busybox
//! container (create + start), and what stays resident beside running containers.
//!
//! `cargo bench -p skiff-oci --bench startup`, as root with `crun` and `runc` installed;
//! `SKIFF_OCI_BENCH_RUNS` sets the runs per runtime (40 by default).

#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use skiff_oci::{ContainerStatus, OciRuntime, ProcessStdio};
use support::{unique_id, wait_for, Fixture};

/// Containers kept running at once while measuring what stays resident.
const RESIDENT_CONTAINERS: usize = 5;

fn percentile(sorted: &[Duration], fraction: f64) -> Duration {
    let rank = ((sorted.len() as f64) * fraction).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn ms(duration: Duration) -> String {
    format!("{:.1}", duration.as_secs_f64() * 1000.0)
}

/// Processes whose parent is `parent`, with their resident set in KiB.
fn children_of(parent: u32) -> Vec<(i32, String, u64)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(status) = std::fs::read_to_string(entry.path().join("status")) else {
            continue;
        };
        let field = |name: &str| {
            status
                .lines()
                .find_map(|line| line.strip_prefix(name))
                .map(|rest| rest.trim().to_string())
        };
        if field("PPid:").and_then(|p| p.parse::<u32>().ok()) != Some(parent) {
            continue;
        }
        let name = field("Name:").unwrap_or_default();
        let rss_kib = field("VmRSS:")
            .and_then(|v| v.split_whitespace().next().map(str::to_string))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        found.push((pid, name, rss_kib));
    }
    found
}

fn measure(kind: &str, runs: usize) {
    let mut fixture = Fixture::new(kind);
    let mut timings = Vec::with_capacity(runs);
    for _ in 0..runs {
        let id = unique_id("bench");
        let config = fixture.config(&id, &["/bin/sleep", "1000"]);
        let began = Instant::now();
        fixture.create(&id, &config, ProcessStdio::null()).unwrap();
        fixture.runtime.start(&id).unwrap();
        timings.push(began.elapsed());
        wait_for(
            &fixture.runtime,
            &id,
            "running",
            Duration::from_secs(10),
            |s| s.status == ContainerStatus::Running,
        );
        fixture.runtime.delete(&id, true).unwrap();
    }
    timings.sort();
    let mean = timings.iter().sum::<Duration>() / runs as u32;
    println!(
        "{kind:>9}: create+start over {runs} runs: p50 {} ms, p99 {} ms, mean {} ms, max {} ms",
        ms(percentile(&timings, 0.5)),
        ms(percentile(&timings, 0.99)),
        ms(mean),
        ms(*timings.last().unwrap()),
    );

    let mut pids = HashSet::new();
    for _ in 0..RESIDENT_CONTAINERS {
        let id = unique_id("resident");
        let config = fixture.config(&id, &["/bin/sleep", "1000"]);
        fixture.create(&id, &config, ProcessStdio::null()).unwrap();
        fixture.runtime.start(&id).unwrap();
        let state = wait_for(
            &fixture.runtime,
            &id,
            "running",
            Duration::from_secs(10),
            |s| s.status == ContainerStatus::Running,
        );
        pids.insert(state.pid.unwrap());
    }
    let children = children_of(std::process::id());
    let (containers, others): (Vec<_>, Vec<_>) =
        children.iter().partition(|(pid, _, _)| pids.contains(pid));
    let container_rss: u64 = containers.iter().map(|(_, _, rss)| rss).sum();
    let shim_rss: u64 = others.iter().map(|(_, _, rss)| rss).sum();
    println!(
        "{kind:>9}: {RESIDENT_CONTAINERS} running containers: {} container processes \
         ({} KiB RSS in all), {} other processes left beside them ({} KiB RSS{})",
        containers.len(),
        container_rss,
        others.len(),
        shim_rss,
        if others.is_empty() {
            String::new()
        } else {
            format!(": {others:?}")
        },
    );
    assert_eq!(
        containers.len(),
        RESIDENT_CONTAINERS,
        "the containers' processes are not this process's children"
    );
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else is accepted.
    let runs = std::env::var("SKIFF_OCI_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|runs| *runs > 0)
        .unwrap_or(40);
    for kind in ["embedded", "crun", "runc"] {
        measure(kind, runs);
    }
}
