//! The netlink pod network on a real kernel, as root.
//!
//! Each test first moves its own thread into a fresh network namespace that stands in for the
//! host, so the machine's routes, interfaces, nftables and forwarding switch are never touched
//! and parallel tests never meet. Addresses come from 198.18.0.0/15 only (reserved for
//! benchmarking); traffic stays between namespaces the test made. Pod namespaces are pinned by
//! bind mounts, which live in the machine's mount namespace: a guard unmounts them even when a
//! test fails. The `ip` and `nft` commands observe the result independently of the code under
//! test.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, TcpStream};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{unshare, CloneFlags};
use skiff_net::{
    next_free_pod_cidr, run_in_netns, ClusterRanges, HostConfig, NetlinkPodNetwork, PodNetwork,
    PodNetworkManager, PodRange,
};

const WAIT: Duration = Duration::from_secs(10);

/// Runs `body` on a thread inside a network namespace of its own, failing clearly without root.
fn on_private_host<T: Send + 'static>(body: impl FnOnce() -> T + Send + 'static) -> T {
    assert!(
        nix::unistd::geteuid().is_root(),
        "the pod network tests create namespaces, bridges and routes: run them as root (CI does)"
    );
    let thread = std::thread::spawn(move || {
        unshare(CloneFlags::CLONE_NEWNET).expect("unshare a private host network namespace");
        body()
    });
    match thread.join() {
        Ok(value) => value,
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
        .block_on(future)
}

/// Unmounts and removes every namespace pin under a directory when dropped, pass or fail.
struct PinGuard {
    dirs: Vec<PathBuf>,
}

impl Drop for PinGuard {
    fn drop(&mut self) {
        for dir in &self.dirs {
            let Ok(entries) = std::fs::read_dir(dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let path = entry.path();
                while umount2(&path, MntFlags::MNT_DETACH).is_ok() {}
                let _ = std::fs::remove_file(&path);
            }
        }
    }
}

struct Scene {
    _temp: tempfile::TempDir,
    _pins: PinGuard,
    root: PathBuf,
    config: HostConfig,
}

impl Scene {
    fn new(bridge: &str, pod_cidr: &str, service_cidr: &str) -> Scene {
        let temp = tempfile::tempdir().expect("a temporary directory");
        let root = temp.path().to_path_buf();
        let netns_dir = root.join("netns");
        let extra_dir = root.join("extra");
        std::fs::create_dir_all(&extra_dir).unwrap();
        let ranges = ClusterRanges::parse("198.18.0.0/16", service_cidr, 24).unwrap();
        let pod_range = PodRange::new(pod_cidr.parse().unwrap()).unwrap();
        let config = HostConfig::new(bridge, ranges, pod_range, &netns_dir).unwrap();
        Scene {
            _pins: PinGuard {
                dirs: vec![netns_dir, extra_dir],
            },
            _temp: temp,
            root,
            config,
        }
    }

    fn state_file(&self) -> PathBuf {
        self.root.join("pod-addresses.json")
    }

    async fn start(&self) -> PodNetworkManager<NetlinkPodNetwork> {
        let network = NetlinkPodNetwork::new(self.config.clone()).expect("a netlink connection");
        PodNetworkManager::start(network, self.state_file())
            .await
            .unwrap_or_else(|err| panic!("the host network should come up: {err}"))
    }
}

/// Runs a command in the calling thread's network namespace; its standard output.
fn run(program: &str, args: &[&str]) -> String {
    let output = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|err| panic!("{program} {args:?}: {err} (is it installed?)"));
    assert!(
        output.status.success(),
        "{program} {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// Runs a command inside the namespace pinned at `netns`.
fn run_in(netns: &Path, program: &'static str, args: &[&str]) -> String {
    let args: Vec<String> = args.iter().map(|arg| arg.to_string()).collect();
    run_in_netns(netns, move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run(program, &args)
    })
    .expect("enter the namespace")
}

/// The flags between `<` and `>` of an `ip -o link show` line.
fn link_flags(line: &str) -> Vec<String> {
    let start = line.find('<').expect("flags") + 1;
    let end = line.find('>').expect("flags");
    line[start..end].split(',').map(str::to_string).collect()
}

fn link_line(listing: &str, name: &str) -> String {
    listing
        .lines()
        .find(|line| {
            line.split(':')
                .nth(1)
                .map(|field| field.trim().split('@').next() == Some(name))
                .unwrap_or(false)
        })
        .unwrap_or_else(|| panic!("no link {name} in:\n{listing}"))
        .to_string()
}

fn is_nsfs(path: &Path) -> bool {
    nix::sys::statfs::statfs(path)
        .map(|fs| fs.filesystem_type() == nix::sys::statfs::NSFS_MAGIC)
        .unwrap_or(false)
}

/// Listens on `ip:port` inside `netns` (the socket stays in that namespace).
fn listen_in(netns: &Path, ip: Ipv4Addr, port: u16) -> TcpListener {
    run_in_netns(netns, move || TcpListener::bind((ip, port)))
        .expect("enter the namespace")
        .unwrap_or_else(|err| panic!("listen on {ip}:{port}: {err}"))
}

/// Answers `expected` connections with `reply`, giving up at the deadline; the peers seen.
fn serve(
    listener: TcpListener,
    reply: &'static str,
    expected: usize,
) -> std::thread::JoinHandle<Vec<SocketAddr>> {
    listener.set_nonblocking(true).unwrap();
    std::thread::spawn(move || {
        let deadline = Instant::now() + WAIT;
        let mut peers = Vec::new();
        while peers.len() < expected && Instant::now() < deadline {
            match listener.accept() {
                Ok((mut stream, peer)) => {
                    stream.set_nonblocking(false).unwrap();
                    stream.write_all(reply.as_bytes()).unwrap();
                    peers.push(peer);
                }
                Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(err) => panic!("accept: {err}"),
            }
        }
        peers
    })
}

/// Connects to `ip:port` from the calling thread's namespace and reads the reply.
fn ask(ip: Ipv4Addr, port: u16) -> String {
    let address = SocketAddr::V4(SocketAddrV4::new(ip, port));
    let mut stream = TcpStream::connect_timeout(&address, WAIT)
        .unwrap_or_else(|err| panic!("connect to {address}: {err}"));
    stream.set_read_timeout(Some(WAIT)).unwrap();
    let mut reply = String::new();
    stream.read_to_string(&mut reply).unwrap();
    reply
}

fn ask_from(netns: &Path, ip: Ipv4Addr, port: u16) -> String {
    run_in_netns(netns, move || ask(ip, port)).expect("enter the namespace")
}

fn ip(text: &str) -> Ipv4Addr {
    text.parse().unwrap()
}

/// Asserts the private host holds nothing of the pod network any more.
fn assert_nothing_left(scene: &Scene) {
    let links = run("ip", &["-o", "link", "show"]);
    let names: Vec<&str> = links
        .lines()
        .filter_map(|line| line.split(':').nth(1))
        .map(|name| name.trim().split('@').next().unwrap_or(""))
        .collect();
    assert!(
        names
            .iter()
            .all(|name| *name == "lo" || name.starts_with("sknet-up")),
        "links left behind: {names:?}"
    );
    assert_eq!(
        run("ip", &["route", "show", "type", "unreachable"]).trim(),
        "",
        "guard routes left behind"
    );
    let routes = run("ip", &["-4", "route", "show", "table", "all"]);
    assert!(
        !routes.contains("198.18."),
        "pod routes left behind:\n{routes}"
    );
    let tables = run("nft", &["list", "tables"]);
    assert!(
        !tables.contains(&scene.config.nat_table()),
        "NAT table left behind:\n{tables}"
    );
    let pins: Vec<_> = std::fs::read_dir(scene.config.netns_dir())
        .map(|entries| entries.flatten().map(|entry| entry.path()).collect())
        .unwrap_or_default();
    assert!(pins.is_empty(), "namespace pins left behind: {pins:?}");
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let dir = scene.config.netns_dir().to_string_lossy().to_string();
    assert!(
        !mounts.contains(&dir),
        "namespace mounts left behind under {dir}"
    );
}

#[test]
fn pods_get_addresses_and_reach_each_other_and_the_host_over_the_bridge() {
    on_private_host(|| {
        // The node's range is the next free /24 once two other nodes hold theirs.
        let ranges = ClusterRanges::parse("198.18.0.0/16", "198.19.0.0/17", 24).unwrap();
        let taken = [
            "198.18.0.0/24".parse().unwrap(),
            "198.18.1.0/24".parse().unwrap(),
        ];
        let pod_cidr = next_free_pod_cidr(&ranges, &taken).unwrap();
        assert_eq!(pod_cidr.to_string(), "198.18.2.0/24");
        let mut scene = Scene::new("sknet-pods", &pod_cidr.to_string(), "198.19.0.0/17");
        scene.config.mtu = Some(1400);
        assert_eq!(
            run("ip", &["route", "show", "type", "unreachable"]).trim(),
            ""
        );

        block_on(async {
            let manager = scene.start().await;

            // The guards are in place before any packet is sent.
            let guards = run("ip", &["route", "show", "type", "unreachable"]);
            assert!(guards.contains("unreachable 198.18.0.0/16"), "{guards}");
            assert!(guards.contains("unreachable 198.19.0.0/17"), "{guards}");
            // An address of the cluster or Service range that nothing claims is refused at
            // once by the guard, not sent anywhere.
            for target in ["198.18.77.7:80", "198.19.0.10:443"] {
                let err = TcpStream::connect_timeout(&target.parse().unwrap(), WAIT).unwrap_err();
                assert_eq!(
                    err.raw_os_error(),
                    Some(libc_ehostunreach()),
                    "{target}: {err}"
                );
            }
            let bridge = link_line(&run("ip", &["-o", "link", "show"]), "sknet-pods");
            assert!(link_flags(&bridge).contains(&"UP".to_string()), "{bridge}");
            assert!(bridge.contains(" mtu 1400 "), "{bridge}");
            let bridge_address = run("ip", &["-o", "-4", "addr", "show", "dev", "sknet-pods"]);
            assert!(
                bridge_address.contains("inet 198.18.2.1/24"),
                "{bridge_address}"
            );
            let own_range = run("ip", &["-4", "route", "show", "198.18.2.0/24"]);
            assert!(
                own_range.contains("dev sknet-pods") && own_range.contains("src 198.18.2.1"),
                "{own_range}"
            );
            assert_eq!(
                std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward")
                    .unwrap()
                    .trim(),
                "1"
            );
            let nat = run("nft", &["list", "table", "ip", "skiff_sknet_pods"]);
            assert!(
                nat.contains("ip saddr 198.18.2.0/24") && nat.contains("masquerade"),
                "{nat}"
            );

            let a = manager.attach("pod-a").await.unwrap();
            let b = manager.attach("pod-b").await.unwrap();
            assert_eq!((a.ip, b.ip), (ip("198.18.2.2"), ip("198.18.2.3")));
            // The gateway's MAC address is the configured one, whatever its ports' addresses:
            // pods never have to learn it again.
            let mac = scene
                .config
                .bridge_mac()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<Vec<_>>()
                .join(":");
            let bridge = link_line(&run("ip", &["-o", "link", "show"]), "sknet-pods");
            assert!(bridge.contains(&format!("link/ether {mac} ")), "{bridge}");
            // The bridge hands its frames to the IPv4 hooks and sends a frame back out of the
            // port it came from: what a Service's translation between its pods needs.
            let bridge_details = run("ip", &["-d", "link", "show", "sknet-pods"]);
            assert!(
                bridge_details.contains("nf_call_iptables 1"),
                "{bridge_details}"
            );
            let ports = run("ip", &["-d", "-o", "link", "show", "master", "sknet-pods"]);
            assert_eq!(ports.lines().count(), 2, "{ports}");
            for port in ports.lines() {
                assert!(port.contains("hairpin on"), "{port}");
            }
            for (pod, attachment) in [("pod-a", &a), ("pod-b", &b)] {
                assert_eq!(attachment.netns_path, scene.config.netns_dir().join(pod));
                assert!(is_nsfs(&attachment.netns_path), "{pod} is not pinned");
                let links = run_in(&attachment.netns_path, "ip", &["-o", "link", "show"]);
                for name in ["lo", "eth0"] {
                    let line = link_line(&links, name);
                    assert!(
                        link_flags(&line).contains(&"UP".to_string()),
                        "{pod}: {line}"
                    );
                }
                let eth0 = link_line(&links, "eth0");
                assert!(eth0.contains(" mtu 1400 "), "{pod}: {eth0}");
                let addresses = run_in(
                    &attachment.netns_path,
                    "ip",
                    &["-o", "-4", "addr", "show", "dev", "eth0"],
                );
                assert!(
                    addresses.contains(&format!("inet {}/24", attachment.ip)),
                    "{pod}: {addresses}"
                );
                let default = run_in(
                    &attachment.netns_path,
                    "ip",
                    &["-4", "route", "show", "default"],
                );
                assert!(
                    default.starts_with("default via 198.18.2.1 dev eth0 "),
                    "{pod}: {default}"
                );
                let ports = run("ip", &["-o", "link", "show", "master", "sknet-pods"]);
                link_line(&ports, &attachment.host_interface);
            }

            // Both pods listen on port 80 of every address: no conflict.
            let server_a = serve(
                listen_in(&a.netns_path, Ipv4Addr::UNSPECIFIED, 80),
                "pod-a",
                2,
            );
            let server_b = serve(
                listen_in(&b.netns_path, Ipv4Addr::UNSPECIFIED, 80),
                "pod-b",
                1,
            );
            assert_eq!(ask_from(&b.netns_path, a.ip, 80), "pod-a");
            assert_eq!(ask(a.ip, 80), "pod-a", "host to pod over the bridge");
            assert_eq!(ask_from(&a.netns_path, b.ip, 80), "pod-b");
            let peers_a: Vec<_> = server_a
                .join()
                .unwrap()
                .iter()
                .map(SocketAddr::ip)
                .collect();
            let peers_b: Vec<_> = server_b
                .join()
                .unwrap()
                .iter()
                .map(SocketAddr::ip)
                .collect();
            // Traffic inside the node keeps its source: no masquerading between pods.
            assert_eq!(peers_a, vec![b.ip, a.gateway]);
            assert_eq!(peers_b, vec![a.ip]);

            manager.detach("pod-a").await.unwrap();
            manager.detach("pod-b").await.unwrap();
            manager.shutdown().await.unwrap();
        });
        assert_nothing_left(&scene);
    });
}

#[test]
fn setup_is_idempotent_survives_a_restart_and_repairs_a_broken_pod() {
    on_private_host(|| {
        let scene = Scene::new("sknet-idem", "198.18.3.0/24", "198.19.0.0/16");
        block_on(async {
            let manager = scene.start().await;
            let first = manager.attach("pod-a").await.unwrap();
            let namespace = std::fs::metadata(&first.netns_path).unwrap().ino();
            let again = manager.attach("pod-a").await.unwrap();
            assert_eq!(again, first);
            assert_eq!(
                std::fs::metadata(&first.netns_path).unwrap().ino(),
                namespace
            );
            let veths = run("ip", &["-o", "link", "show", "type", "veth"]);
            assert_eq!(veths.lines().count(), 1, "{veths}");
            manager.network().ensure_host().await.unwrap();
            let guards = run("ip", &["route", "show", "type", "unreachable"]);
            assert_eq!(guards.lines().count(), 2, "{guards}");

            // A restart finds the pod's address and namespace as they were.
            drop(manager);
            let manager = scene.start().await;
            let after_restart = manager.attach("pod-a").await.unwrap();
            assert_eq!(after_restart, first);
            assert_eq!(
                std::fs::metadata(&first.netns_path).unwrap().ino(),
                namespace
            );

            // A pod whose veth vanished is rebuilt with the same address.
            run("ip", &["link", "del", &first.host_interface]);
            let repaired = manager.attach("pod-a").await.unwrap();
            assert_eq!(repaired.ip, first.ip);
            let addresses = run_in(
                &repaired.netns_path,
                "ip",
                &["-o", "-4", "addr", "show", "dev", "eth0"],
            );
            assert!(addresses.contains("inet 198.18.3.2/24"), "{addresses}");
            let ports = run("ip", &["-o", "link", "show", "master", "sknet-idem"]);
            link_line(&ports, &repaired.host_interface);

            manager.detach("pod-a").await.unwrap();
            manager.detach("pod-a").await.unwrap();
            manager
                .network()
                .teardown_pod("never-set-up")
                .await
                .unwrap();
            manager.shutdown().await.unwrap();
            manager.shutdown().await.unwrap();
            assert!(manager.attached_pods().await.is_empty());
        });
        assert_nothing_left(&scene);
    });
}

#[test]
fn pod_traffic_leaving_the_node_is_masqueraded() {
    on_private_host(|| {
        let scene = Scene::new("sknet-nat", "198.18.5.0/24", "198.19.0.0/17");
        // A machine outside the node, on an uplink outside both ranges.
        let outside = scene.root.join("extra/outside");
        pin_new_namespace(&outside);
        run(
            "ip",
            &[
                "link",
                "add",
                "sknet-up0",
                "type",
                "veth",
                "peer",
                "name",
                "sknet-up1",
            ],
        );
        run(
            "ip",
            &[
                "link",
                "set",
                "sknet-up1",
                "netns",
                outside.to_str().unwrap(),
            ],
        );
        run(
            "ip",
            &["addr", "add", "198.19.200.1/30", "dev", "sknet-up0"],
        );
        run("ip", &["link", "set", "sknet-up0", "up"]);
        run_in(
            &outside,
            "ip",
            &["addr", "add", "198.19.200.2/30", "dev", "sknet-up1"],
        );
        run_in(&outside, "ip", &["link", "set", "sknet-up1", "up"]);

        block_on(async {
            let manager = scene.start().await;
            let pod = manager.attach("pod-a").await.unwrap();
            let server = serve(listen_in(&outside, ip("198.19.200.2"), 8080), "outside", 1);
            assert_eq!(
                ask_from(&pod.netns_path, ip("198.19.200.2"), 8080),
                "outside"
            );
            let peers: Vec<_> = server.join().unwrap().iter().map(SocketAddr::ip).collect();
            assert_eq!(
                peers,
                vec![ip("198.19.200.1")],
                "the pod's address {} must be masqueraded as the node's",
                pod.ip
            );
            manager.detach("pod-a").await.unwrap();
            manager.shutdown().await.unwrap();
        });
        run("ip", &["link", "del", "sknet-up0"]);
        assert_nothing_left(&scene);
    });
}

#[test]
fn guard_routes_come_first_and_a_foreign_interface_is_left_alone() {
    on_private_host(|| {
        let scene = Scene::new("sknet-fake", "198.18.6.0/24", "198.19.0.0/16");
        // Something else already owns the bridge's name.
        run(
            "ip",
            &[
                "link",
                "add",
                "sknet-fake",
                "type",
                "veth",
                "peer",
                "name",
                "sknet-fake1",
            ],
        );
        block_on(async {
            let network = NetlinkPodNetwork::new(scene.config.clone()).unwrap();
            let err = network.ensure_host().await.unwrap_err();
            assert_eq!(
                err.to_string(),
                "interface sknet-fake exists and is not a bridge"
            );
            // The guards went in before the bridge was even looked at.
            let guards = run("ip", &["route", "show", "type", "unreachable"]);
            assert!(guards.contains("unreachable 198.18.0.0/16"), "{guards}");
            assert!(guards.contains("unreachable 198.19.0.0/16"), "{guards}");
            let addresses = run("ip", &["-o", "-4", "addr", "show", "dev", "sknet-fake"]);
            assert_eq!(addresses.trim(), "", "the foreign interface got an address");
            network.teardown_host().await.unwrap();
        });
        // Teardown removed what was ours and left the foreign interface.
        link_line(&run("ip", &["-o", "link", "show"]), "sknet-fake");
        run("ip", &["link", "del", "sknet-fake"]);
        assert_nothing_left(&scene);
    });
}

/// Creates a namespace pinned at `path` the way the crate does, for a stand-in machine.
fn pin_new_namespace(path: &Path) {
    let path = path.to_path_buf();
    std::thread::spawn(move || {
        unshare(CloneFlags::CLONE_NEWNET).unwrap();
        std::fs::File::create(&path).unwrap();
        mount(
            Some("/proc/thread-self/ns/net"),
            &path,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .unwrap();
    })
    .join()
    .unwrap();
}

fn libc_ehostunreach() -> i32 {
    nix::errno::Errno::EHOSTUNREACH as i32
}

#[test]
fn cluster_ips_on_the_service_interface_are_local_while_they_are_held() {
    on_private_host(|| {
        block_on(async {
            run("ip", &["link", "set", "lo", "up"]);
            let name = skiff_net::service_interface_name("sktestbr0");
            let first = skiff_net::ServiceInterface::create(&name)
                .await
                .expect("interface created");
            let stale = ip("198.19.200.9");
            first.add(stale).await.expect("address added");
            // A new start replaces what a previous run left, addresses and all.
            let interface = skiff_net::ServiceInterface::create(&name)
                .await
                .expect("interface created again");
            let cluster_ip = ip("198.19.200.1");
            interface.add(cluster_ip).await.expect("address added");
            interface
                .add(cluster_ip)
                .await
                .expect("adding again is no error");
            let addresses = run("ip", &["-4", "-o", "addr", "show", "dev", &name]);
            assert!(addresses.contains("198.19.200.1/32"), "{addresses}");
            assert!(!addresses.contains("198.19.200.9"), "{addresses}");
            let listener = TcpListener::bind(SocketAddrV4::new(cluster_ip, 0))
                .expect("a cluster IP on the interface can be listened on");
            let port = listener.local_addr().expect("address").port();
            TcpStream::connect_timeout(&SocketAddr::from((cluster_ip, port)), WAIT)
                .expect("and connected to");
            drop(listener);

            interface.remove(cluster_ip).await.expect("address removed");
            interface
                .remove(cluster_ip)
                .await
                .expect("removing again is no error");
            let error = TcpListener::bind(SocketAddrV4::new(cluster_ip, 0))
                .expect_err("a removed cluster IP is no longer local");
            assert_eq!(error.raw_os_error(), Some(libc_eaddrnotavail()), "{error}");

            interface.delete().await.expect("interface deleted");
            let links = run("ip", &["-o", "link", "show"]);
            assert!(!links.contains(&format!(": {name}:")), "{links}");
        })
    });
}

fn libc_eaddrnotavail() -> i32 {
    nix::errno::Errno::EADDRNOTAVAIL as i32
}

/// The namespaces pinned in the spare directory, by inode (the namespace's identity).
fn spare_namespaces(config: &HostConfig) -> Vec<u64> {
    std::fs::read_dir(config.spare_netns_dir())
        .map(|entries| {
            entries
                .flatten()
                .filter(|entry| is_nsfs(&entry.path()))
                .filter_map(|entry| std::fs::metadata(entry.path()).ok())
                .map(|meta| meta.ino())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn namespaces_made_ahead_are_handed_to_pods_refilled_and_removed_at_shutdown() {
    on_private_host(|| {
        let mut scene = Scene::new("sknet-spare", "198.18.5.0/24", "198.19.0.0/16");
        scene.config.spare_namespaces = 2;
        block_on(async {
            let manager = scene.start().await;
            let deadline = Instant::now() + WAIT;
            let ready = loop {
                let ready = spare_namespaces(&scene.config);
                if ready.len() == 2 {
                    break ready;
                }
                assert!(
                    Instant::now() < deadline,
                    "the pool never held 2 spare namespaces: {ready:?}"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            };

            // The pod gets one of the spares, and works as a freshly made one does.
            let pod = manager.attach("pod-a").await.unwrap();
            let namespace = std::fs::metadata(&pod.netns_path).unwrap().ino();
            assert!(
                ready.contains(&namespace),
                "pod-a's namespace {namespace} is not one of the spares {ready:?}"
            );
            let addresses = run_in(
                &pod.netns_path,
                "ip",
                &["-o", "-4", "addr", "show", "dev", "eth0"],
            );
            assert!(addresses.contains("inet 198.18.5.2/24"), "{addresses}");
            let loopback = run_in(&pod.netns_path, "ip", &["-o", "link", "show", "lo"]);
            assert!(loopback.contains("UP"), "{loopback}");

            // The pool is topped up again in the background, without the pod's namespace.
            let deadline = Instant::now() + WAIT;
            loop {
                let now = spare_namespaces(&scene.config);
                if now.len() == 2 && !now.contains(&namespace) {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "the pool was not refilled to 2 others: {now:?}"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }

            // A crash leaves spares behind; the next start sweeps them and makes its own.
            let before_crash = spare_namespaces(&scene.config);
            drop(manager);
            let manager = scene.start().await;
            let deadline = Instant::now() + WAIT;
            loop {
                let now = spare_namespaces(&scene.config);
                if now.len() == 2 && now.iter().all(|ino| !before_crash.contains(ino)) {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "the restart kept the crashed run's spares {before_crash:?}: {now:?}"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }

            manager.detach("pod-a").await.unwrap();
            manager.shutdown().await.unwrap();
            assert!(
                !scene.config.spare_netns_dir().exists(),
                "the spare directory outlived the shutdown"
            );
        });
        assert_nothing_left(&scene);
    });
}
