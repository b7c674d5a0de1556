use std::os::unix::process::CommandExt;
use std::process::{Child, Command};

use super::*;

/// A child process group that is killed when the test ends, however it ends.
struct Group(Child);

impl Group {
    fn spawn(script: &str) -> Group {
        let child = Command::new("/bin/sh")
            .args(["-c", script])
            .process_group(0)
            .spawn()
            .expect("spawn /bin/sh");
        Group(child)
    }

    fn pgid(&self) -> i32 {
        self.0.id() as i32
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        let _ = nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(self.pgid()),
            nix::sys::signal::Signal::SIGKILL,
        );
        let _ = self.0.wait();
    }
}

fn container(uid: &str, pod: &str, name: &str, pgid: i32) -> RunningContainer {
    RunningContainer {
        pod_uid: uid.to_string(),
        namespace: "default".to_string(),
        pod: pod.to_string(),
        container: name.to_string(),
        pgid,
        cgroup: None,
    }
}

fn source(processes: &ContainerProcesses) -> RealNodeMetrics {
    RealNodeMetrics::new("node-a", processes.clone(), PathBuf::from("/proc"))
}

#[tokio::test]
async fn pods_appear_after_two_samples_with_their_measured_cpu() {
    let busy = Group::spawn("while :; do :; done");
    let idle = Group::spawn("sleep 30");
    let processes = ContainerProcesses::default();
    processes.started(container("u1", "busy", "main", busy.pgid()));
    processes.started(container("u2", "idle", "main", idle.pgid()));
    let metrics = source(&processes);

    metrics.sample_now();
    assert!(metrics.pods().await.is_empty(), "one sample is no window");
    assert!(metrics.nodes().await.is_empty());

    std::thread::sleep(Duration::from_millis(700));
    metrics.sample_now();
    let pods = metrics.pods().await;
    assert_eq!(pods.len(), 2, "{pods:?}");
    let busy_pod = pods.iter().find(|p| p.name == "busy").unwrap();
    let idle_pod = pods.iter().find(|p| p.name == "idle").unwrap();
    assert_eq!(busy_pod.namespace, "default");
    assert_eq!(busy_pod.containers.len(), 1);
    assert_eq!(busy_pod.containers[0].name, "main");
    // A busy loop gets at least a tenth of a CPU even on a crowded machine.
    assert!(
        busy_pod.containers[0].cpu_nanocores >= 100_000_000,
        "{busy_pod:?}"
    );
    assert!(
        idle_pod.containers[0].cpu_nanocores <= 20_000_000,
        "{idle_pod:?}"
    );
    assert!(busy_pod.containers[0].memory_bytes > 0);
    assert!(busy_pod.window >= Duration::from_millis(650));
    assert!(busy_pod.window < Duration::from_secs(5));

    let nodes = metrics.nodes().await;
    assert_eq!(nodes.len(), 1);
    assert_eq!(nodes[0].name, "node-a");
    assert!(nodes[0].cpu_nanocores >= 100_000_000, "{nodes:?}");
    assert!(nodes[0].memory_bytes > 0);
}

#[tokio::test]
async fn a_pod_waits_for_every_container_and_forgets_exited_ones() {
    let first = Group::spawn("sleep 30");
    let second = Group::spawn("sleep 30");
    let processes = ContainerProcesses::default();
    processes.started(container("u1", "web", "a", first.pgid()));
    let metrics = source(&processes);
    metrics.sample_now();
    processes.started(container("u1", "web", "b", second.pgid()));
    metrics.sample_now();
    assert!(
        metrics.pods().await.is_empty(),
        "container b has one sample only"
    );
    metrics.sample_now();
    let pods = metrics.pods().await;
    assert_eq!(pods.len(), 1);
    let names: Vec<&str> = pods[0].containers.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["a", "b"]);

    processes.exited("u1", "b", second.pgid());
    metrics.sample_now();
    let pods = metrics.pods().await;
    let names: Vec<&str> = pods[0].containers.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["a"]);
}

#[tokio::test]
async fn a_restarted_container_starts_a_new_window() {
    let first = Group::spawn("sleep 30");
    let restarted = Group::spawn("sleep 30");
    let processes = ContainerProcesses::default();
    processes.started(container("u1", "web", "main", first.pgid()));
    let metrics = source(&processes);
    metrics.sample_now();
    metrics.sample_now();
    assert_eq!(metrics.pods().await.len(), 1);
    processes.started(container("u1", "web", "main", restarted.pgid()));
    // The old run's exit must not forget the new run.
    processes.exited("u1", "main", first.pgid());
    assert_eq!(processes.snapshot().len(), 1);
    metrics.sample_now();
    assert!(
        metrics.pods().await.is_empty(),
        "the new run has one sample"
    );
    metrics.sample_now();
    assert_eq!(metrics.pods().await.len(), 1);
}

#[tokio::test]
async fn the_sampler_stops_when_the_source_is_dropped() {
    let processes = ContainerProcesses::default();
    let metrics = RealNodeMetrics::start("node-a", processes, Duration::from_millis(100));
    let weak = Arc::downgrade(&metrics);
    tokio::time::timeout(Duration::from_secs(10), async {
        while metrics.nodes().await.is_empty() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the node gets a window after two samples");
    drop(metrics);
    // The sampler holds no strong reference between samples.
    tokio::time::timeout(Duration::from_secs(5), async {
        while weak.upgrade().is_some() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the source is freed");
}

#[tokio::test]
async fn containers_with_a_cgroup_are_measured_from_it() {
    use skiff_cgroups::fake::RecordingDriver;
    use skiff_cgroups::{
        CgroupDriver, CgroupLayout, CgroupPath, CgroupUsage, CgroupVersion, PodCgroups,
    };

    let driver = Arc::new(RecordingDriver::new(CgroupVersion::V2));
    let cgroups = Arc::new(PodCgroups::new(
        driver.clone(),
        CgroupLayout::new("skiff").unwrap(),
    ));
    let path = CgroupPath::parse("skiff/kubepods/besteffort/podu1/main").unwrap();
    driver.create(&path, &Default::default()).unwrap();
    // The process group is a sleeper: a busy CPU figure can only come from the cgroup.
    let idle = Group::spawn("sleep 30");
    let processes = ContainerProcesses::default();
    processes.measure_cgroups_with(cgroups);
    processes.started(RunningContainer {
        cgroup: Some(path.clone()),
        ..container("u1", "web", "main", idle.pgid())
    });
    let metrics = source(&processes);
    let usage = |cpu_usage_ns| CgroupUsage {
        cpu_usage_ns,
        memory_usage_bytes: 50 << 20,
        memory_working_set_bytes: 40 << 20,
        ..CgroupUsage::default()
    };
    driver.set_usage(&path, usage(1_000_000_000));
    metrics.sample_now();
    std::thread::sleep(Duration::from_millis(500));
    // Half a second later the cgroup used a quarter of a second more.
    driver.set_usage(&path, usage(1_250_000_000));
    metrics.sample_now();
    let pods = metrics.pods().await;
    assert_eq!(pods.len(), 1, "{pods:?}");
    let main = &pods[0].containers[0];
    assert_eq!(
        main.memory_bytes,
        40 << 20,
        "the working set, not the usage"
    );
    let window_ns = pods[0].window.as_nanos() as f64;
    let expected = 250_000_000.0 / window_ns * 1e9;
    assert!(
        (main.cpu_nanocores as f64 - expected).abs() < expected * 0.05,
        "{} nanocores, expected about {expected}",
        main.cpu_nanocores
    );
}
