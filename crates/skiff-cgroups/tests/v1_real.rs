//! The v1 driver on this machine's real cgroup v1 hierarchies: files written, a process
//! OOM-killed under a 32 MiB limit, a busy loop throttled to 0.2 CPU, usage that grows, a
//! pod killed and removed without a trace.
//!
//! These tests need root and cgroup v1 (as CI runs them); without either they fail saying
//! so. Each works under its own root (`skiff-test-<pid>-<name>`) and a guard removes it even
//! when the test fails.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Container, PodSpec, ResourceRequirements};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use skiff_cgroups::detect::{choose_hierarchy, detect, parse_mountinfo};
use skiff_cgroups::v1::{V1Driver, V1Mounts};
use skiff_cgroups::{
    CgroupDriver, CgroupLayout, CgroupPath, CgroupVersion, Hierarchy, PodCgroup, PodCgroups,
    QosClass,
};

/// The v1 mounts of this machine; fails the test with the reason if there are none.
fn v1_mounts() -> V1Mounts {
    assert!(
        nix::unistd::geteuid().is_root(),
        "the cgroup tests create cgroups and must run as root"
    );
    let table = std::fs::read_to_string("/proc/self/mountinfo").expect("read the mount table");
    match choose_hierarchy(&parse_mountinfo(&table)) {
        Ok(Hierarchy::V1(mounts)) => mounts,
        other => panic!("the cgroup v1 tests need cgroup v1 hierarchies, found {other:?}"),
    }
}

/// A test's own cgroup root, its child processes, and their cleanup on drop.
struct Scratch {
    mounts: V1Mounts,
    driver: Arc<V1Driver>,
    cgroups: PodCgroups,
    children: Vec<Child>,
}

impl Scratch {
    fn new(name: &str) -> Scratch {
        let mounts = v1_mounts();
        let driver = Arc::new(V1Driver::new(mounts.clone()));
        let root = format!("skiff-test-{}-{name}", std::process::id());
        let layout = CgroupLayout::new(&root).expect("test root is a valid name");
        let scratch = Scratch {
            mounts,
            driver: driver.clone(),
            cgroups: PodCgroups::new(driver, layout).with_kill_wait(Duration::from_secs(10)),
            children: Vec::new(),
        };
        // A root left by an earlier run with the same PID would make results stale.
        scratch.remove_root();
        scratch
    }

    fn root(&self) -> &CgroupPath {
        self.cgroups.layout().root()
    }

    /// Every hierarchy directory `cgroup` has (or would have).
    fn dirs(&self, cgroup: &CgroupPath) -> Vec<PathBuf> {
        let mut mounts = vec![&self.mounts.cpu, &self.mounts.cpuacct, &self.mounts.memory];
        mounts.extend(self.mounts.pids.iter());
        mounts.extend(self.mounts.freezer.iter());
        mounts.iter().map(|m| m.join(cgroup.as_str())).collect()
    }

    fn remove_root(&self) {
        let root = self.root().clone();
        if let Err(e) = self.driver.kill_all(&root, Duration::from_secs(5)) {
            eprintln!("killing what is left in {root}: {e}");
        }
        if let Err(e) = self.driver.remove(&root) {
            eprintln!("removing {root}: {e}");
        }
    }

    /// Removes the root and checks that no directory of it is left in any hierarchy.
    fn finish(mut self) {
        self.reap_children();
        self.remove_root();
        for dir in self.dirs(&self.root().clone()) {
            assert!(!dir.exists(), "{} was left behind", dir.display());
        }
    }

    fn reap_children(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.children.clear();
    }

    /// Starts `sh -c script` held at a `read` until [`go`] so it can be moved into a cgroup
    /// before it does anything; returns its index in `children`.
    fn spawn_held(&mut self, script: &str) -> usize {
        let child = Command::new("/bin/sh")
            .arg("-c")
            .arg(format!("read go; {script}"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn /bin/sh");
        self.children.push(child);
        self.children.len() - 1
    }

    fn pid(&self, index: usize) -> u32 {
        self.children[index].id()
    }

    fn go(&mut self, index: usize) {
        let stdin = self.children[index].stdin.as_mut().expect("piped stdin");
        writeln!(stdin, "go").expect("release the held process");
    }

    fn stdout(&mut self, index: usize) -> BufReader<ChildStdout> {
        BufReader::new(self.children[index].stdout.take().expect("piped stdout"))
    }

    /// Waits for a child process to exit, failing after `limit`.
    fn wait_exit(&mut self, index: usize, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.children[index]
                .try_wait()
                .expect("wait for the child process")
            {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "child process still running after {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        self.reap_children();
        self.remove_root();
    }
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
        .trim()
        .to_string()
}

fn python() -> &'static str {
    if Path::new("/usr/bin/python3").exists() {
        "/usr/bin/python3"
    } else {
        "python3"
    }
}

fn list(cpu: &str, memory: &str) -> Option<std::collections::BTreeMap<String, Quantity>> {
    let mut list = std::collections::BTreeMap::new();
    if !cpu.is_empty() {
        list.insert("cpu".to_string(), Quantity(cpu.to_string()));
    }
    if !memory.is_empty() {
        list.insert("memory".to_string(), Quantity(memory.to_string()));
    }
    Some(list)
}

/// A one-container pod with `(cpu, memory)` requests and limits.
fn pod(requests: (&str, &str), limits: (&str, &str)) -> PodSpec {
    PodSpec {
        containers: vec![Container {
            name: "main".to_string(),
            resources: Some(ResourceRequirements {
                requests: list(requests.0, requests.1),
                limits: list(limits.0, limits.1),
                ..Default::default()
            }),
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// Creates the pod's cgroup and its one container's.
fn create_pod(scratch: &Scratch, uid: &str, spec: &PodSpec) -> (PodCgroup, CgroupPath) {
    let pod = scratch
        .cgroups
        .create_pod(uid, spec)
        .expect("create pod cgroup");
    let ctr = scratch
        .cgroups
        .create_container(&pod, "main", &spec.containers[0])
        .expect("create container cgroup");
    (pod, ctr)
}

#[test]
fn this_machine_is_detected_as_v1() {
    v1_mounts();
    assert_eq!(detect().expect("detect").version(), CgroupVersion::V1);
}

#[test]
fn pod_and_container_cgroups_get_the_kubelets_files() {
    let scratch = Scratch::new("files");
    let burstable = pod(("100m", "16Mi"), ("200m", "32Mi"));
    let (pod_cg, ctr) = create_pod(&scratch, "0a1b-burstable", &burstable);
    assert_eq!(pod_cg.qos, QosClass::Burstable);
    let m = &scratch.mounts;
    for cgroup in [&pod_cg.path, &ctr] {
        let cpu = m.cpu.join(cgroup.as_str());
        assert_eq!(read(&cpu.join("cpu.shares")), "102", "{cgroup}");
        assert_eq!(read(&cpu.join("cpu.cfs_period_us")), "100000", "{cgroup}");
        assert_eq!(read(&cpu.join("cpu.cfs_quota_us")), "20000", "{cgroup}");
        let memory = m.memory.join(cgroup.as_str());
        assert_eq!(
            read(&memory.join("memory.limit_in_bytes")),
            "33554432",
            "{cgroup}"
        );
        assert!(
            m.cpuacct.join(cgroup.as_str()).is_dir(),
            "{cgroup} in cpuacct"
        );
        if let Some(pids) = &m.pids {
            assert_eq!(read(&pids.join(cgroup.as_str()).join("pids.max")), "max");
        }
    }
    // Containers may not swap: memory plus swap is capped at the memory limit where the
    // kernel accounts swap, and the file is absent where it does not.
    let root_memsw = m.memory.join("memory.memsw.limit_in_bytes");
    let ctr_memsw = m
        .memory
        .join(ctr.as_str())
        .join("memory.memsw.limit_in_bytes");
    let pod_memsw = m
        .memory
        .join(pod_cg.path.as_str())
        .join("memory.memsw.limit_in_bytes");
    if root_memsw.exists() {
        assert_eq!(read(&ctr_memsw), "33554432", "container memory+swap");
        assert_eq!(read(&pod_memsw), read(&root_memsw), "pods are not capped");
    } else {
        assert!(
            !ctr_memsw.exists(),
            "no swap accounting at the root but in a child"
        );
    }
    let root = scratch.root().as_str().to_string();
    assert_eq!(
        ctr.runtime_path(),
        format!("/{root}/kubepods/burstable/pod0a1b-burstable/main")
    );

    // A BestEffort pod: minimal shares, no quota, no memory limit, in its own tier.
    let best_effort = pod(("", ""), ("", ""));
    let (be, _) = create_pod(&scratch, "0a1b-besteffort", &best_effort);
    assert_eq!(
        be.path.as_str(),
        format!("{root}/kubepods/besteffort/pod0a1b-besteffort")
    );
    let cpu = m.cpu.join(be.path.as_str());
    assert_eq!(read(&cpu.join("cpu.shares")), "2");
    assert_eq!(read(&cpu.join("cpu.cfs_quota_us")), "-1");
    let unlimited = read(&m.memory.join("memory.limit_in_bytes"));
    let be_memory = read(
        &m.memory
            .join(be.path.as_str())
            .join("memory.limit_in_bytes"),
    );
    assert_eq!(be_memory, unlimited, "no memory limit reads as the root's");

    // Updating a pod's limits rewrites them; a Guaranteed pod sits right under kubepods.
    let guaranteed = pod(("500m", "64Mi"), ("500m", "64Mi"));
    let (g, _) = create_pod(&scratch, "0a1b-guaranteed", &guaranteed);
    assert_eq!(
        g.path.as_str(),
        format!("{root}/kubepods/pod0a1b-guaranteed")
    );
    assert_eq!(
        read(&m.cpu.join(g.path.as_str()).join("cpu.cfs_quota_us")),
        "50000"
    );

    // After a restart the agent finds every pod cgroup by listing the tiers.
    let found: Vec<(QosClass, String)> = scratch
        .cgroups
        .existing_pods()
        .expect("list pod cgroups")
        .into_iter()
        .map(|p| (p.qos, p.uid))
        .collect();
    assert_eq!(
        found,
        [
            (QosClass::Guaranteed, "0a1b-guaranteed".to_string()),
            (QosClass::Burstable, "0a1b-burstable".to_string()),
            (QosClass::BestEffort, "0a1b-besteffort".to_string()),
        ]
    );

    for p in [&pod_cg, &be, &g] {
        scratch.cgroups.remove_pod(&p.path).expect("remove pod");
        for dir in scratch.dirs(&p.path) {
            assert!(!dir.exists(), "{} left behind", dir.display());
        }
    }
    assert!(scratch.cgroups.existing_pods().unwrap().is_empty());
    // Removing again tolerates the cgroup being gone.
    scratch
        .cgroups
        .remove_pod(&pod_cg.path)
        .expect("second removal");
    scratch.finish();
}

#[test]
fn a_process_over_its_memory_limit_is_oom_killed_and_reported() {
    let mut scratch = Scratch::new("oom");
    let spec = pod(("100m", "32Mi"), ("500m", "32Mi"));
    let (pod_cg, ctr) = create_pod(&scratch, "oom", &spec);
    assert_eq!(
        read(
            &scratch
                .mounts
                .memory
                .join(ctr.as_str())
                .join("memory.limit_in_bytes")
        ),
        (32u64 << 20).to_string()
    );
    let script = format!(
        "exec {} -c 'import time; b = b\"x\" * (64 << 20); print(\"allocated\", flush=True); time.sleep(60)'",
        python()
    );
    let child = scratch.spawn_held(&script);
    scratch
        .driver
        .add_process(&ctr, scratch.pid(child))
        .expect("move the child process into the container cgroup");
    assert_eq!(
        scratch.driver.pids(&pod_cg.path).unwrap(),
        vec![scratch.pid(child)]
    );
    assert_eq!(scratch.cgroups.oom_kills(&ctr).unwrap(), 0);
    scratch.go(child);
    let status = scratch.wait_exit(child, Duration::from_secs(30));
    assert_eq!(
        status.signal(),
        Some(9),
        "a 64 MiB allocation under a 32 MiB limit must end in SIGKILL, got {status:?}"
    );
    assert_eq!(
        scratch.cgroups.oom_kills(&ctr).unwrap(),
        1,
        "container count"
    );
    assert_eq!(
        scratch.cgroups.oom_kills(&pod_cg.path).unwrap(),
        1,
        "pod count"
    );
    assert!(scratch.driver.pids(&pod_cg.path).unwrap().is_empty());
    scratch
        .cgroups
        .remove_pod(&pod_cg.path)
        .expect("remove pod");
    scratch.finish();
}

#[test]
fn a_fifth_of_a_cpu_throttles_a_busy_loop() {
    let mut scratch = Scratch::new("throttle");
    let spec = pod(("200m", ""), ("200m", ""));
    let (pod_cg, ctr) = create_pod(&scratch, "throttle", &spec);
    let child = scratch.spawn_held("while :; do :; done");
    scratch
        .driver
        .add_process(&ctr, scratch.pid(child))
        .expect("move child");
    scratch.go(child);
    let usage = |scratch: &Scratch| scratch.cgroups.usage(&ctr).expect("read usage");
    // Let throttling show first, however busy the machine is.
    let deadline = Instant::now() + Duration::from_secs(60);
    let first = loop {
        let u = usage(&scratch);
        if u.cpu_throttled_periods >= 3 {
            break u;
        }
        assert!(
            Instant::now() < deadline,
            "no throttling within 60 s under a 20 ms quota: {u:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let t0 = Instant::now();
    // Then measure over at least 20 more periods (2 s).
    let last = loop {
        let u = usage(&scratch);
        if u.cpu_periods >= first.cpu_periods + 20 && t0.elapsed() >= Duration::from_secs(2) {
            break u;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "periods stopped: {u:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let elapsed = t0.elapsed();
    let used = Duration::from_nanos(last.cpu_usage_ns - first.cpu_usage_ns);
    let share = used.as_secs_f64() / elapsed.as_secs_f64();
    eprintln!(
        "busy loop under 0.2 CPU: {share:.3} CPU over {elapsed:?}, throttled {} of {} periods",
        last.cpu_throttled_periods - first.cpu_throttled_periods,
        last.cpu_periods - first.cpu_periods
    );
    assert!(
        last.cpu_throttled_periods > first.cpu_throttled_periods,
        "throttled periods must grow: {first:?} then {last:?}"
    );
    assert!(last.cpu_throttled_ns > first.cpu_throttled_ns);
    assert!(used > Duration::ZERO, "the loop used no CPU");
    // 0.2 CPU, with room for one period's slack at either end of the window.
    assert!(
        share <= 0.25,
        "a 0.2 CPU limit let the loop use {share:.3} CPU"
    );
    // The pod cgroup counts its container's usage.
    let pod_usage = scratch.cgroups.usage(&pod_cg.path).unwrap();
    assert!(pod_usage.cpu_usage_ns >= last.cpu_usage_ns);
    scratch
        .cgroups
        .remove_pod(&pod_cg.path)
        .expect("remove pod");
    let status = scratch.wait_exit(child, Duration::from_secs(10));
    assert_eq!(status.signal(), Some(9), "removal kills the loop");
    scratch.finish();
}

#[test]
fn usage_readings_grow_with_the_work_done() {
    let mut scratch = Scratch::new("usage");
    let spec = pod(("100m", "64Mi"), ("", ""));
    let (pod_cg, ctr) = create_pod(&scratch, "usage", &spec);
    // Allocates and touches 8 MiB, then 16 MiB more on the next line, then spins for a while.
    let script = format!(
        "exec {} -c '\nimport sys\na = b\"a\" * (8 << 20)\nprint(\"one\", flush=True)\nsys.stdin.readline()\nb = b\"b\" * (16 << 20)\nprint(\"two\", flush=True)\nsys.stdin.readline()\n'",
        python()
    );
    let child = scratch.spawn_held(&script);
    scratch
        .driver
        .add_process(&ctr, scratch.pid(child))
        .expect("move child");
    let before = scratch.cgroups.usage(&ctr).unwrap();
    let mut out = scratch.stdout(child);
    let mut line = String::new();
    scratch.go(child);
    out.read_line(&mut line).expect("first allocation");
    assert_eq!(line.trim(), "one");
    let first = scratch.cgroups.usage(&ctr).unwrap();
    scratch.go(child);
    line.clear();
    out.read_line(&mut line).expect("second allocation");
    assert_eq!(line.trim(), "two");
    let second = scratch.cgroups.usage(&ctr).unwrap();
    eprintln!("usage before {before:?}\nafter 8 MiB {first:?}\nafter 24 MiB {second:?}");
    assert!(
        first.cpu_usage_ns > before.cpu_usage_ns,
        "CPU use must grow"
    );
    assert!(
        second.cpu_usage_ns > first.cpu_usage_ns,
        "CPU use must grow"
    );
    assert!(first.memory_usage_bytes >= before.memory_usage_bytes + (8 << 20));
    // The interpreter's file pages (a few MiB) may be reclaimed between the readings when the
    // machine is short of memory, so the second step is held to 12 of its 16 MiB.
    assert!(second.memory_usage_bytes >= first.memory_usage_bytes + (12 << 20));
    assert!(second.memory_working_set_bytes >= first.memory_working_set_bytes + (12 << 20));
    assert!(second.memory_working_set_bytes <= second.memory_usage_bytes);
    let pod_usage = scratch.cgroups.usage(&pod_cg.path).unwrap();
    assert!(pod_usage.memory_usage_bytes >= second.memory_usage_bytes - (1 << 20));
    scratch.go(child);
    let status = scratch.wait_exit(child, Duration::from_secs(10));
    assert!(status.success(), "child failed: {status:?}");
    scratch
        .cgroups
        .remove_pod(&pod_cg.path)
        .expect("remove pod");
    scratch.finish();
}

#[test]
fn removing_a_pod_kills_every_process_and_leaves_nothing() {
    let mut scratch = Scratch::new("kill");
    let spec = pod(("", ""), ("", ""));
    let pod_cg = scratch.cgroups.create_pod("kill", &spec).unwrap();
    let mut containers = Vec::new();
    for name in ["one", "two"] {
        containers.push(
            scratch
                .cgroups
                .create_container(&pod_cg, name, &spec.containers[0])
                .unwrap(),
        );
    }
    // Two sleepers and one that keeps forking, spread over both containers.
    let scripts = [
        "exec sleep 300",
        "exec sleep 300",
        "while :; do sleep 300 & sleep 0.01; done",
    ];
    let mut started = Vec::new();
    for (i, script) in scripts.iter().enumerate() {
        let child = scratch.spawn_held(script);
        let ctr = &containers[i % containers.len()];
        scratch.driver.add_process(ctr, scratch.pid(child)).unwrap();
        scratch.go(child);
        started.push(child);
    }
    // Wait for the forker to have children of its own in the cgroup.
    let deadline = Instant::now() + Duration::from_secs(20);
    while scratch.driver.pids(&pod_cg.path).unwrap().len() < 5 {
        assert!(Instant::now() < deadline, "the forker never forked");
        std::thread::sleep(Duration::from_millis(10));
    }
    scratch
        .cgroups
        .remove_pod(&pod_cg.path)
        .expect("kill and remove the pod");
    for child in started {
        let status = scratch.wait_exit(child, Duration::from_secs(10));
        assert_eq!(
            status.signal(),
            Some(9),
            "child {child} ended with {status:?}"
        );
    }
    for cgroup in containers.iter().chain([&pod_cg.path]) {
        assert!(!scratch.driver.exists(cgroup), "{cgroup} still exists");
        for dir in scratch.dirs(cgroup) {
            assert!(!dir.exists(), "{} left behind", dir.display());
        }
    }
    assert!(scratch.driver.pids(&pod_cg.path).unwrap().is_empty());
    scratch.finish();
}
