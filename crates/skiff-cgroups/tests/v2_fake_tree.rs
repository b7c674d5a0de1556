//! The v2 driver against a fake unified hierarchy in a temporary directory: the files it
//! writes and the kernel files it reads, with the contents a v2 kernel gives them.
//!
//! A machine with only cgroup v1 controllers cannot enable them in a v2 hierarchy, so this is
//! where v2 is tested. A fake tree differs from cgroupfs in one way the tests make explicit:
//! the kernel creates a cgroup's interface files with its directory and drops them with it,
//! so [`kernel_drops_interface_files`] stands in for that before removals.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, PodSpec, ResourceRequirements};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use skiff_cgroups::v2::V2Driver;
use skiff_cgroups::{
    CgroupDriver, CgroupError, CgroupLayout, CgroupLimits, CgroupPath, CgroupUsage, CgroupVersion,
    PodCgroups, QosClass,
};

const ALL_CONTROLLERS: &str = "cpuset cpu io memory hugetlb pids rdma misc\n";

fn fake_root(controllers: &str) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().expect("temporary directory");
    std::fs::write(tmp.path().join("cgroup.controllers"), controllers).unwrap();
    std::fs::write(tmp.path().join("cgroup.subtree_control"), "").unwrap();
    tmp
}

fn manager(mount: &Path) -> (Arc<V2Driver>, PodCgroups) {
    let driver = Arc::new(V2Driver::new(mount));
    let cgroups = PodCgroups::new(driver.clone(), CgroupLayout::new("skiff").unwrap())
        .with_kill_wait(Duration::from_millis(50));
    (driver, cgroups)
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
        .trim()
        .to_string()
}

fn dir(mount: &Path, cgroup: &CgroupPath) -> PathBuf {
    mount.join(cgroup.as_str())
}

fn pod(requests: (&str, &str), limits: (&str, &str)) -> PodSpec {
    let list = |(cpu, memory): (&str, &str)| {
        let mut list = std::collections::BTreeMap::new();
        if !cpu.is_empty() {
            list.insert("cpu".to_string(), Quantity(cpu.to_string()));
        }
        if !memory.is_empty() {
            list.insert("memory".to_string(), Quantity(memory.to_string()));
        }
        Some(list)
    };
    PodSpec {
        containers: vec![Container {
            name: "main".to_string(),
            resources: Some(ResourceRequirements {
                requests: list(requests),
                limits: list(limits),
                ..Default::default()
            }),
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// What the kernel does on `rmdir`: a cgroup's interface files go with its directory.
fn kernel_drops_interface_files(top: &Path) {
    let mut pending = vec![top.to_path_buf()];
    while let Some(d) = pending.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let entry = entry.unwrap();
            if entry.file_type().unwrap().is_dir() {
                pending.push(entry.path());
            } else {
                std::fs::remove_file(entry.path()).unwrap();
            }
        }
    }
}

#[test]
fn pod_and_container_cgroups_get_the_v2_files() {
    let tmp = fake_root(ALL_CONTROLLERS);
    let mount = tmp.path();
    let (driver, cgroups) = manager(mount);
    assert_eq!(driver.version(), CgroupVersion::V2);
    let spec = pod(("100m", "16Mi"), ("200m", "32Mi"));
    let pod_cg = cgroups.create_pod("0a1b", &spec).unwrap();
    assert_eq!(pod_cg.qos, QosClass::Burstable);
    // The kernel gives the container `memory.swap.max` when it accounts swap.
    let ctr_dir = dir(mount, &pod_cg.path).join("main");
    std::fs::create_dir(&ctr_dir).unwrap();
    std::fs::write(ctr_dir.join("memory.swap.max"), "max\n").unwrap();
    let ctr = cgroups
        .create_container(&pod_cg, "main", &spec.containers[0])
        .unwrap();
    assert_eq!(
        read(&ctr_dir.join("memory.swap.max")),
        "0",
        "containers may not swap"
    );
    assert!(
        !dir(mount, &pod_cg.path).join("memory.swap.max").exists(),
        "no swap file is made where the kernel has none"
    );
    assert_eq!(
        read(&ctr_dir.join("memory.oom.group")),
        "1",
        "an OOM kill takes the whole container"
    );
    assert!(
        !dir(mount, &pod_cg.path).join("memory.oom.group").exists(),
        "pods keep the kernel's choice of victim"
    );
    // Controllers are handed down through every ancestor, but not into the leaf.
    for ancestor in ["", "skiff", "skiff/kubepods", "skiff/kubepods/burstable"] {
        assert_eq!(
            read(&mount.join(ancestor).join("cgroup.subtree_control")),
            "+cpu +memory +pids",
            "{ancestor:?}"
        );
    }
    assert_eq!(
        read(&dir(mount, &pod_cg.path).join("cgroup.subtree_control")),
        "+cpu +memory +pids"
    );
    assert!(!dir(mount, &ctr).join("cgroup.subtree_control").exists());
    for cgroup in [&pod_cg.path, &ctr] {
        let d = dir(mount, cgroup);
        // 102 shares weigh 17 with the runtimes' conversion.
        assert_eq!(read(&d.join("cpu.weight")), "17", "{cgroup}");
        assert_eq!(read(&d.join("cpu.max")), "20000 100000", "{cgroup}");
        assert_eq!(read(&d.join("memory.max")), "33554432", "{cgroup}");
        assert_eq!(read(&d.join("pids.max")), "max", "{cgroup}");
    }

    let best_effort = cgroups.create_pod("be", &pod(("", ""), ("", ""))).unwrap();
    assert_eq!(best_effort.path.as_str(), "skiff/kubepods/besteffort/podbe");
    let d = dir(mount, &best_effort.path);
    assert_eq!(read(&d.join("cpu.weight")), "1");
    assert_eq!(read(&d.join("cpu.max")), "max 100000");
    assert_eq!(read(&d.join("memory.max")), "max");

    let guaranteed = cgroups
        .create_pod("g", &pod(("1", "1Gi"), ("1", "1Gi")))
        .unwrap();
    assert_eq!(guaranteed.path.as_str(), "skiff/kubepods/podg");
    let d = dir(mount, &guaranteed.path);
    assert_eq!(
        read(&d.join("cpu.weight")),
        "100",
        "one CPU weighs the default"
    );
    assert_eq!(read(&d.join("cpu.max")), "100000 100000");
    assert_eq!(read(&d.join("memory.max")), (1u64 << 30).to_string());
}

#[test]
fn limits_on_missing_controllers_are_refused() {
    let tmp = fake_root("cpu pids\n");
    let driver = V2Driver::new(tmp.path());
    let cgroup = CgroupPath::parse("skiff/x").unwrap();
    let limited = CgroupLimits {
        memory_limit_bytes: Some(1 << 20),
        ..CgroupLimits::default()
    };
    let err = driver.create(&cgroup, &limited).unwrap_err();
    assert!(
        err.to_string().contains("memory controller"),
        "unexpected error: {err}"
    );
    assert!(
        !tmp.path().join("skiff").exists(),
        "nothing is created for a refused limit"
    );
    // Without a memory limit the cgroup is made with what the root offers.
    driver.create(&cgroup, &CgroupLimits::default()).unwrap();
    let d = tmp.path().join("skiff/x");
    assert!(!d.join("memory.max").exists());
    assert_eq!(read(&d.join("cpu.max")), "max 100000");
    assert_eq!(
        read(&tmp.path().join("skiff/cgroup.subtree_control")),
        "+cpu +pids"
    );
    // Controllers already handed down are not written again (a cgroup holding processes,
    // like a delegated root, refuses even that write).
    std::fs::write(tmp.path().join("cgroup.subtree_control"), "cpu pids io\n").unwrap();
    driver
        .create(
            &CgroupPath::parse("skiff/y").unwrap(),
            &CgroupLimits::default(),
        )
        .unwrap();
    assert_eq!(
        read(&tmp.path().join("cgroup.subtree_control")),
        "cpu pids io"
    );
    // No root file at all: not a cgroup v2 mount.
    let empty = tempfile::tempdir().unwrap();
    let err = V2Driver::new(empty.path())
        .create(&cgroup, &CgroupLimits::default())
        .unwrap_err();
    assert!(err.is_not_found(), "{err}");
}

#[test]
fn usage_and_oom_kills_are_read_as_cadvisor_reads_them() {
    let tmp = fake_root(ALL_CONTROLLERS);
    let driver = V2Driver::new(tmp.path());
    let cgroup = CgroupPath::parse("skiff/kubepods/poda").unwrap();
    driver.create(&cgroup, &CgroupLimits::default()).unwrap();
    let d = tmp.path().join(cgroup.as_str());
    std::fs::write(
        d.join("cpu.stat"),
        "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\nnr_periods 40\nnr_throttled 12\nthrottled_usec 250000\nnr_bursts 0\nburst_usec 0\n",
    )
    .unwrap();
    std::fs::write(d.join("memory.current"), "50000000\n").unwrap();
    std::fs::write(
        d.join("memory.stat"),
        "anon 30000000\nfile 20000000\nactive_file 5000000\ninactive_file 15000000\n",
    )
    .unwrap();
    std::fs::write(
        d.join("memory.events"),
        "low 0\nhigh 0\nmax 7\noom 2\noom_kill 2\noom_group_kill 0\n",
    )
    .unwrap();
    assert_eq!(
        driver.usage(&cgroup).unwrap(),
        CgroupUsage {
            cpu_usage_ns: 1_500_000,
            cpu_periods: 40,
            cpu_throttled_periods: 12,
            cpu_throttled_ns: 250_000_000,
            memory_usage_bytes: 50_000_000,
            memory_working_set_bytes: 35_000_000,
        }
    );
    assert_eq!(driver.oom_kills(&cgroup).unwrap(), 2);
    // More inactive file pages than usage (they are counted at different moments): zero.
    std::fs::write(d.join("memory.stat"), "inactive_file 60000000\n").unwrap();
    assert_eq!(driver.usage(&cgroup).unwrap().memory_working_set_bytes, 0);
    // Without the cpu controller, cpu.stat has only the usage lines.
    std::fs::write(
        d.join("cpu.stat"),
        "usage_usec 7\nuser_usec 7\nsystem_usec 0\n",
    )
    .unwrap();
    let usage = driver.usage(&cgroup).unwrap();
    assert_eq!((usage.cpu_usage_ns, usage.cpu_periods), (7_000, 0));
    // A garbled file is an error, not a zero.
    std::fs::write(d.join("memory.current"), "lots\n").unwrap();
    assert!(matches!(
        driver.usage(&cgroup),
        Err(CgroupError::Parse { .. })
    ));
    let gone = CgroupPath::parse("skiff/kubepods/podgone").unwrap();
    assert!(driver.usage(&gone).unwrap_err().is_not_found());
    assert!(driver.oom_kills(&gone).unwrap_err().is_not_found());
}

#[test]
fn processes_are_moved_listed_and_killed_through_the_v2_files() {
    let tmp = fake_root(ALL_CONTROLLERS);
    let driver = V2Driver::new(tmp.path());
    let pod = CgroupPath::parse("skiff/kubepods/podk").unwrap();
    let ctr = pod.join("c").unwrap();
    driver.create(&ctr, &CgroupLimits::default()).unwrap();
    driver.add_process(&ctr, 4321).unwrap();
    let ctr_dir = tmp.path().join(ctr.as_str());
    assert_eq!(read(&ctr_dir.join("cgroup.procs")), "4321");
    std::fs::write(tmp.path().join(pod.as_str()).join("cgroup.procs"), "").unwrap();
    std::fs::write(ctr_dir.join("cgroup.procs"), "4321\n17\n4321\n").unwrap();
    assert_eq!(driver.pids(&pod).unwrap(), vec![17, 4321]);
    assert!(driver.pids(&pod.join("none").unwrap()).unwrap().is_empty());

    // An empty cgroup with `cgroup.kill`: one write of "1" kills the subtree.
    std::fs::write(ctr_dir.join("cgroup.procs"), "").unwrap();
    std::fs::write(tmp.path().join(pod.as_str()).join("cgroup.kill"), "").unwrap();
    driver.kill_all(&pod, Duration::from_millis(50)).unwrap();
    assert_eq!(
        read(&tmp.path().join(pod.as_str()).join("cgroup.kill")),
        "1"
    );

    // A process that never leaves (this test's own, which is never signalled) runs out the
    // wait and is reported.
    let own = std::process::id();
    std::fs::write(ctr_dir.join("cgroup.procs"), format!("{own}\n")).unwrap();
    match driver.kill_all(&pod, Duration::from_millis(50)) {
        Err(CgroupError::KillTimeout { pids, .. }) => assert_eq!(pids, vec![own]),
        other => panic!("expected a kill timeout, got {other:?}"),
    }
    // Nothing to kill in a cgroup that does not exist.
    driver
        .kill_all(&pod.join("none").unwrap(), Duration::ZERO)
        .unwrap();
}

#[test]
fn removal_goes_deepest_first_and_tolerates_what_is_gone() {
    let tmp = fake_root(ALL_CONTROLLERS);
    let (driver, cgroups) = manager(tmp.path());
    let spec = pod(("", ""), ("", ""));
    let pod_cg = cgroups.create_pod("r", &spec).unwrap();
    let ctr = cgroups
        .create_container(&pod_cg, "c", &spec.containers[0])
        .unwrap();
    for cgroup in [&pod_cg.path, &ctr] {
        std::fs::write(dir(tmp.path(), cgroup).join("cgroup.procs"), "").unwrap();
    }
    // Only `rmdir` is used: files in the way (which cgroupfs never has) stop the removal
    // instead of being deleted.
    let err = cgroups.remove_pod(&pod_cg.path).unwrap_err();
    assert!(matches!(err, CgroupError::Io { op: "remove", .. }), "{err}");
    assert!(dir(tmp.path(), &ctr).join("cpu.weight").exists());

    let found = cgroups.existing_pods().unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(
        (found[0].qos, found[0].uid.as_str()),
        (QosClass::BestEffort, "r")
    );
    kernel_drops_interface_files(&dir(tmp.path(), &pod_cg.path));
    cgroups.remove_pod(&pod_cg.path).unwrap();
    assert!(cgroups.existing_pods().unwrap().is_empty());
    assert!(!dir(tmp.path(), &pod_cg.path).exists());
    assert!(!driver.exists(&ctr));
    assert!(
        dir(
            tmp.path(),
            &CgroupPath::parse("skiff/kubepods/besteffort").unwrap()
        )
        .is_dir(),
        "the tier stays"
    );
    cgroups
        .remove_pod(&pod_cg.path)
        .expect("already removed is fine");
    cgroups
        .remove_container(&ctr)
        .expect("already removed is fine");
}

#[test]
fn a_process_joins_through_the_one_procs_file_of_its_cgroup() {
    let driver = V2Driver::new("/sys/fs/cgroup");
    let cgroup = CgroupPath::parse("skiff/kubepods/podu/web").unwrap();
    assert_eq!(
        driver.procs_files(&cgroup),
        vec![PathBuf::from(
            "/sys/fs/cgroup/skiff/kubepods/podu/web/cgroup.procs"
        )]
    );
}
