//! [`PodNetwork`] on Linux: netlink for links, addresses and routes; bind-mounted namespace
//! files for pods; `nft` for masquerading.
//!
//! Nothing here forks or moves a long-lived thread between namespaces: a pod's namespace is
//! created by a thread that unshares its own network namespace, bind-mounts it and ends, and
//! work inside a pod's namespace runs on a fresh thread that enters it and ends.

use std::fs::File;
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;

use async_trait::async_trait;
use futures::TryStreamExt;
use ipnet::Ipv4Net;
use nix::errno::Errno;
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{setns, unshare, CloneFlags};
use rtnetlink::packet_route::address::AddressAttribute;
use rtnetlink::packet_route::link::{
    InfoBridge, InfoData, InfoKind, InfoVeth, LinkAttribute, LinkFlags, LinkInfo, LinkMessage,
};
use rtnetlink::packet_route::route::RouteType;
use rtnetlink::{Handle, LinkBridge, LinkBridgePort, LinkUnspec, LinkVeth, RouteMessageBuilder};
use tokio::io::AsyncWriteExt;

use crate::config::{HostConfig, POD_INTERFACE};
use crate::network::{NetError, PodAttachment, PodNetwork};
use crate::plan::{host_routes, nat_install_script, nat_remove_script, HostRoute};
use crate::spare::SparePool;

/// The kernel's switch for routing between interfaces, per network namespace.
const IP_FORWARD: &str = "/proc/sys/net/ipv4/ip_forward";

/// The real pod network of one node, in the network namespace of the thread that created it.
pub struct NetlinkPodNetwork {
    config: HostConfig,
    handle: Handle,
    spares: Arc<SparePool>,
}

impl NetlinkPodNetwork {
    /// Opens a netlink connection in the calling thread's network namespace and runs it on the
    /// current tokio runtime.
    pub fn new(config: HostConfig) -> Result<Self, NetError> {
        let handle = spawn_connection()?;
        let spares = SparePool::new(config.spare_netns_dir(), config.spare_namespaces);
        Ok(NetlinkPodNetwork {
            config,
            handle,
            spares,
        })
    }

    async fn ensure_routes(&self) -> Result<(), NetError> {
        for route in host_routes(&self.config) {
            if let HostRoute::Unreachable { destination } = route {
                self.handle
                    .route()
                    .add(unreachable_route(destination))
                    .replace()
                    .execute()
                    .await
                    .map_err(|source| {
                        netlink(format!("add route unreachable {destination}"), source)
                    })?;
            }
        }
        Ok(())
    }

    async fn ensure_bridge(&self) -> Result<u32, NetError> {
        let bridge = &self.config.bridge;
        let index = match link_by_name(&self.handle, bridge).await? {
            Some(link) if is_bridge(&link) => link.header.index,
            Some(_) => {
                return Err(NetError::Unexpected(format!(
                    "interface {bridge} exists and is not a bridge"
                )))
            }
            None => {
                // Bridged frames go through the host's IPv4 hooks (with `br_netfilter`): a pod
                // answering a client on the same bridge through a Service's translation must
                // meet the connection tracking that undoes it.
                let mut message = LinkBridge::new(bridge)
                    .address(self.config.bridge_mac().to_vec())
                    .append_info_data(InfoBridge::NfCallIpTables(true));
                if let Some(mtu) = self.config.mtu {
                    message = message.mtu(mtu);
                }
                self.handle
                    .link()
                    .add(message.build())
                    .execute()
                    .await
                    .or_else(ignore(Errno::EEXIST))
                    .map_err(|source| netlink(format!("create bridge {bridge}"), source))?;
                required_link(&self.handle, bridge).await?.header.index
            }
        };
        let gateway = self.config.gateway();
        let prefix = self.config.pod_range.pod_cidr.prefix_len();
        self.handle
            .address()
            .add(index, IpAddr::V4(gateway), prefix)
            .replace()
            .execute()
            .await
            .map_err(|source| netlink(format!("add {gateway}/{prefix} to {bridge}"), source))?;
        // Set again on a bridge a previous run made: the address must never follow its ports.
        let mut message = LinkUnspec::new_with_index(index)
            .address(self.config.bridge_mac().to_vec())
            .up();
        if let Some(mtu) = self.config.mtu {
            message = message.mtu(mtu);
        }
        self.handle
            .link()
            .set(message.build())
            .execute()
            .await
            .map_err(|source| netlink(format!("set {bridge} up"), source))?;
        Ok(index)
    }

    async fn run_nft(&self, script: String) -> Result<(), NetError> {
        let mut child = tokio::process::Command::new(&self.config.nft_program)
            .arg("-f")
            .arg("-")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|err| {
                NetError::io(format!("run {}", self.config.nft_program.display()), err)
            })?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin
                .write_all(script.as_bytes())
                .await
                .map_err(|err| NetError::io("write the nft script", err))?;
        }
        let output = child
            .wait_with_output()
            .await
            .map_err(|err| NetError::io("wait for nft", err))?;
        if output.status.success() {
            Ok(())
        } else {
            Err(NetError::Nft {
                status: output.status.to_string(),
                stderr: String::from_utf8_lossy(&output.stderr).trim().to_string(),
            })
        }
    }

    fn attachment(&self, pod_uid: &str, netns_path: PathBuf, ip: Ipv4Addr) -> PodAttachment {
        PodAttachment {
            netns_path,
            ip,
            prefix_len: self.config.pod_range.pod_cidr.prefix_len(),
            gateway: self.config.gateway(),
            host_interface: self.config.host_interface(pod_uid),
        }
    }

    /// Whether the pod's namespace, veth and address are all in place as asked.
    async fn pod_is_complete(
        &self,
        pod_uid: &str,
        netns_path: &Path,
        ip: Ipv4Addr,
    ) -> Result<bool, NetError> {
        if !is_pinned_netns(netns_path) {
            return Ok(false);
        }
        let Some(bridge) = link_by_name(&self.handle, &self.config.bridge).await? else {
            return Ok(false);
        };
        let Some(host_end) =
            link_by_name(&self.handle, &self.config.host_interface(pod_uid)).await?
        else {
            return Ok(false);
        };
        let attached = controller(&host_end) == Some(bridge.header.index)
            && host_end.header.flags.contains(LinkFlags::Up);
        if !attached {
            return Ok(false);
        }
        // A pod attached by an earlier version may lack it.
        set_hairpin(&self.handle, host_end.header.index).await?;
        let prefix = self.config.pod_range.pod_cidr.prefix_len();
        let gateway = self.config.gateway();
        in_netns(netns_path, move |handle| async move {
            pod_side_is_complete(&handle, ip, prefix, gateway).await
        })
        .await?
    }

    async fn create_pod(
        &self,
        pod_uid: &str,
        netns_path: &Path,
        ip: Ipv4Addr,
    ) -> Result<(), NetError> {
        let dir = self.config.netns_dir();
        std::fs::create_dir_all(dir)
            .map_err(|err| NetError::io(format!("create {}", dir.display()), err))?;
        // A namespace made ahead is taken when there is one: making one here waits for the
        // kernel's network locks.
        if !self.spares.take_into(netns_path).await? {
            create_pinned_netns(netns_path.to_path_buf()).await?;
        }
        let netns = File::open(netns_path)
            .map_err(|err| NetError::io(format!("open {}", netns_path.display()), err))?;
        let host_name = self.config.host_interface(pod_uid);
        // The pod's end is created straight in the pod's namespace, already named eth0.
        let mut peer = LinkUnspec::new_with_name(POD_INTERFACE).setns_by_fd(netns.as_raw_fd());
        let mut veth = LinkVeth::new(&host_name, POD_INTERFACE);
        if let Some(mtu) = self.config.mtu {
            peer = peer.mtu(mtu);
            veth = veth.mtu(mtu);
        }
        let veth = veth
            .set_info_data(InfoData::Veth(InfoVeth::Peer(peer.build())))
            .build();
        self.handle
            .link()
            .add(veth)
            .execute()
            .await
            .map_err(|source| netlink(format!("create veth {host_name}"), source))?;
        drop(netns);
        let bridge = required_link(&self.handle, &self.config.bridge).await?;
        let host_end = required_link(&self.handle, &host_name).await?;
        self.handle
            .link()
            .set(
                LinkUnspec::new_with_index(host_end.header.index)
                    .controller(bridge.header.index)
                    .up()
                    .build(),
            )
            .execute()
            .await
            .map_err(|source| {
                netlink(
                    format!("attach {host_name} to {}", self.config.bridge),
                    source,
                )
            })?;
        set_hairpin(&self.handle, host_end.header.index).await?;
        let prefix = self.config.pod_range.pod_cidr.prefix_len();
        let gateway = self.config.gateway();
        in_netns(netns_path, move |handle| async move {
            configure_pod_side(&handle, ip, prefix, gateway).await
        })
        .await?
    }
}

/// Lets the bridge send a frame back out of the port it came in on: a pod that reaches itself
/// through a Service's translation (bridged again after the DNAT, with `br_netfilter`) gets
/// its own packets, as the CNI bridge plugin's `hairpinMode` does.
async fn set_hairpin(handle: &Handle, port_index: u32) -> Result<(), NetError> {
    use rtnetlink::packet_core::{NLM_F_ACK, NLM_F_REQUEST};
    // Port options change through a new-link request on the existing port, without the create
    // flags the kernel refuses for a link that exists (as `ip link set ... type bridge_slave`
    // sends); a set-link request ignores them.
    handle
        .link()
        .add(LinkBridgePort::new(port_index).hairpin(true).build())
        .set_flags(NLM_F_REQUEST | NLM_F_ACK)
        .execute()
        .await
        .map_err(|source| netlink(format!("set hairpin mode on port {port_index}"), source))
}

#[async_trait]
impl PodNetwork for NetlinkPodNetwork {
    fn config(&self) -> &HostConfig {
        &self.config
    }

    async fn ensure_host(&self) -> Result<(), NetError> {
        // Guards first: from here on no pod or Service address can leave by the default route.
        self.ensure_routes().await?;
        self.ensure_bridge().await?;
        enable_forwarding()?;
        self.run_nft(nat_install_script(&self.config)).await?;
        // Pods may come now: namespaces start being made ahead of them.
        self.spares.open().await
    }

    async fn setup_pod(&self, pod_uid: &str, ip: Ipv4Addr) -> Result<PodAttachment, NetError> {
        let netns_path = self.config.netns_path(pod_uid)?;
        if !self.config.pod_range.is_pod_address(ip) {
            return Err(NetError::Unexpected(format!(
                "{ip} is not a pod address of {}",
                self.config.pod_range.pod_cidr
            )));
        }
        if self.pod_is_complete(pod_uid, &netns_path, ip).await? {
            return Ok(self.attachment(pod_uid, netns_path, ip));
        }
        // Whatever a failed or interrupted attempt left goes first.
        self.teardown_pod(pod_uid).await?;
        if let Err(err) = self.create_pod(pod_uid, &netns_path, ip).await {
            if let Err(cleanup) = self.teardown_pod(pod_uid).await {
                tracing::warn!(pod_uid, %cleanup, "could not clean up a failed pod network setup");
            }
            return Err(err);
        }
        Ok(self.attachment(pod_uid, netns_path, ip))
    }

    async fn teardown_pod(&self, pod_uid: &str) -> Result<(), NetError> {
        let netns_path = self.config.netns_path(pod_uid)?;
        // Deleting the host end deletes its peer, eth0, with it.
        delete_link(&self.handle, &self.config.host_interface(pod_uid)).await?;
        remove_pinned_netns(&netns_path)
    }

    async fn teardown_host(&self) -> Result<(), NetError> {
        self.spares.close().await?;
        // Only a bridge is ours to delete: an interface of that name of another kind is not.
        if let Some(link) = link_by_name(&self.handle, &self.config.bridge).await? {
            if is_bridge(&link) {
                delete_link(&self.handle, &self.config.bridge).await?;
            }
        }
        for route in host_routes(&self.config) {
            if let HostRoute::Unreachable { destination } = route {
                self.handle
                    .route()
                    .del(unreachable_route(destination))
                    .execute()
                    .await
                    .or_else(ignore(Errno::ESRCH))
                    .or_else(ignore(Errno::ENOENT))
                    .map_err(|source| {
                        netlink(format!("delete route unreachable {destination}"), source)
                    })?;
            }
        }
        self.run_nft(nat_remove_script(&self.config)).await
    }
}

impl Drop for NetlinkPodNetwork {
    fn drop(&mut self) {
        // Dropped without a teardown (the agent ended early): spares stop being made; those
        // made are swept at the next start.
        self.spares.abandon();
    }
}

pub(crate) fn spawn_connection() -> Result<Handle, NetError> {
    let runtime = tokio::runtime::Handle::try_current().map_err(|_| {
        NetError::Unexpected("the pod network needs a tokio runtime to run on".to_string())
    })?;
    let (connection, handle, _) =
        rtnetlink::new_connection().map_err(|err| NetError::io("open a netlink socket", err))?;
    runtime.spawn(connection);
    Ok(handle)
}

fn is_bridge(link: &LinkMessage) -> bool {
    link.attributes.iter().any(|attribute| match attribute {
        LinkAttribute::LinkInfo(infos) => infos
            .iter()
            .any(|info| matches!(info, LinkInfo::Kind(InfoKind::Bridge))),
        _ => false,
    })
}

fn unreachable_route(destination: Ipv4Net) -> rtnetlink::packet_route::route::RouteMessage {
    RouteMessageBuilder::<Ipv4Addr>::new()
        .destination_prefix(destination.network(), destination.prefix_len())
        .kind(RouteType::Unreachable)
        .build()
}

pub(crate) fn netlink(step: String, source: rtnetlink::Error) -> NetError {
    NetError::Netlink { step, source }
}

pub(crate) fn errno_of(err: &rtnetlink::Error) -> Option<Errno> {
    match err {
        rtnetlink::Error::NetlinkError(message) => {
            message.code.map(|code| Errno::from_raw(-code.get()))
        }
        _ => None,
    }
}

/// Turns the kernel's answer `errno` into success: the state asked for is already there.
pub(crate) fn ignore(errno: Errno) -> impl Fn(rtnetlink::Error) -> Result<(), rtnetlink::Error> {
    move |err| {
        if errno_of(&err) == Some(errno) {
            Ok(())
        } else {
            Err(err)
        }
    }
}

pub(crate) async fn link_by_name(
    handle: &Handle,
    name: &str,
) -> Result<Option<LinkMessage>, NetError> {
    let mut links = handle.link().get().match_name(name.to_string()).execute();
    match links.try_next().await {
        Ok(link) => Ok(link),
        Err(err) if errno_of(&err) == Some(Errno::ENODEV) => Ok(None),
        Err(source) => Err(netlink(format!("look up {name}"), source)),
    }
}

async fn required_link(handle: &Handle, name: &str) -> Result<LinkMessage, NetError> {
    link_by_name(handle, name)
        .await?
        .ok_or_else(|| NetError::Unexpected(format!("interface {name} does not exist")))
}

pub(crate) async fn set_up(handle: &Handle, index: u32, name: &str) -> Result<(), NetError> {
    handle
        .link()
        .set(LinkUnspec::new_with_index(index).up().build())
        .execute()
        .await
        .map_err(|source| netlink(format!("set {name} up"), source))
}

pub(crate) async fn delete_link(handle: &Handle, name: &str) -> Result<(), NetError> {
    let Some(link) = link_by_name(handle, name).await? else {
        return Ok(());
    };
    handle
        .link()
        .del(link.header.index)
        .execute()
        .await
        .or_else(ignore(Errno::ENODEV))
        .map_err(|source| netlink(format!("delete {name}"), source))
}

fn controller(link: &LinkMessage) -> Option<u32> {
    link.attributes
        .iter()
        .find_map(|attribute| match attribute {
            LinkAttribute::Controller(index) => Some(*index),
            _ => None,
        })
}

fn enable_forwarding() -> Result<(), NetError> {
    let current = std::fs::read_to_string(IP_FORWARD)
        .map_err(|err| NetError::io(format!("read {IP_FORWARD}"), err))?;
    if current.trim() != "1" {
        std::fs::write(IP_FORWARD, "1")
            .map_err(|err| NetError::io(format!("write {IP_FORWARD}"), err))?;
    }
    Ok(())
}

/// Whether `path` is a bind-mounted network namespace (an nsfs file), not a plain file left by
/// an interrupted setup.
fn is_pinned_netns(path: &Path) -> bool {
    nix::sys::statfs::statfs(path)
        .map(|fs| fs.filesystem_type() == nix::sys::statfs::NSFS_MAGIC)
        .unwrap_or(false)
}

/// Creates a network namespace pinned at `path`, on a thread of its own that unshares and ends.
async fn create_pinned_netns(path: PathBuf) -> Result<(), NetError> {
    let (done, answer) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("skiff-netns-new".into())
        .spawn(move || {
            let _ = done.send(pin_new_netns(&path));
        })
        .map_err(|err| NetError::io("start a namespace thread", err))?;
    answer
        .await
        .map_err(|_| NetError::Unexpected("the namespace thread ended without answering".into()))?
}

pub(crate) fn pin_new_netns(path: &Path) -> Result<(), NetError> {
    unshare(CloneFlags::CLONE_NEWNET)
        .map_err(|errno| NetError::io("unshare the network namespace", errno.into()))?;
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(|err| NetError::io(format!("create {}", path.display()), err))?;
    let own = format!("/proc/self/task/{}/ns/net", nix::unistd::gettid());
    mount(
        Some(own.as_str()),
        path,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .map_err(|errno| {
        NetError::io(
            format!("bind-mount {own} on {}", path.display()),
            errno.into(),
        )
    })
}

pub(crate) fn remove_pinned_netns(path: &Path) -> Result<(), NetError> {
    // A pin may be stacked if an old setup was interrupted: unmount until none is left.
    while is_pinned_netns(path) {
        match umount2(path, MntFlags::MNT_DETACH) {
            Ok(()) => {}
            Err(Errno::EINVAL) | Err(Errno::ENOENT) => break,
            Err(errno) => {
                return Err(NetError::io(
                    format!("unmount {}", path.display()),
                    errno.into(),
                ))
            }
        }
    }
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(err) => Err(NetError::io(format!("remove {}", path.display()), err)),
    }
}

/// Runs `work` on a fresh thread inside the network namespace pinned at `netns_path`; the thread
/// ends with it, so no other work ever runs in that namespace by accident. For tests and tools
/// that need to listen or connect from inside a pod.
pub fn run_in_netns<T: Send + 'static>(
    netns_path: &Path,
    work: impl FnOnce() -> T + Send + 'static,
) -> std::io::Result<T> {
    let netns = File::open(netns_path)?;
    std::thread::Builder::new()
        .name("skiff-netns".into())
        .spawn(move || -> std::io::Result<T> {
            setns(&netns, CloneFlags::CLONE_NEWNET)?;
            drop(netns);
            Ok(work())
        })?
        .join()
        .map_err(|_| std::io::Error::other("the work inside the namespace panicked"))?
}

/// Runs async netlink work inside the pod's namespace, with a connection opened there, on a
/// thread of its own; the caller's runtime only awaits the answer.
async fn in_netns<T, F, Fut>(netns_path: &Path, work: F) -> Result<T, NetError>
where
    T: Send + 'static,
    F: FnOnce(Handle) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = T>,
{
    let netns = File::open(netns_path)
        .map_err(|err| NetError::io(format!("open {}", netns_path.display()), err))?;
    let (done, answer) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("skiff-netns".into())
        .spawn(move || {
            let run = || -> Result<T, NetError> {
                setns(&netns, CloneFlags::CLONE_NEWNET)
                    .map_err(|errno| NetError::io("enter the pod's namespace", errno.into()))?;
                drop(netns);
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_io()
                    .build()
                    .map_err(|err| NetError::io("start a runtime in the pod's namespace", err))?;
                runtime.block_on(async {
                    let handle = spawn_connection()?;
                    Ok(work(handle).await)
                })
            };
            let _ = done.send(run());
        })
        .map_err(|err| NetError::io("start a namespace thread", err))?;
    answer
        .await
        .map_err(|_| NetError::Unexpected("the namespace thread ended without answering".into()))?
}

async fn configure_pod_side(
    handle: &Handle,
    ip: Ipv4Addr,
    prefix: u8,
    gateway: Ipv4Addr,
) -> Result<(), NetError> {
    let lo = required_link(handle, "lo").await?;
    set_up(handle, lo.header.index, "lo").await?;
    let eth0 = required_link(handle, POD_INTERFACE).await?;
    let index = eth0.header.index;
    handle
        .address()
        .add(index, IpAddr::V4(ip), prefix)
        .replace()
        .execute()
        .await
        .map_err(|source| netlink(format!("add {ip}/{prefix} to {POD_INTERFACE}"), source))?;
    set_up(handle, index, POD_INTERFACE).await?;
    let default_route = RouteMessageBuilder::<Ipv4Addr>::new()
        .destination_prefix(Ipv4Addr::UNSPECIFIED, 0)
        .gateway(gateway)
        .output_interface(index)
        .build();
    handle
        .route()
        .add(default_route)
        .replace()
        .execute()
        .await
        .map_err(|source| netlink(format!("add the default route via {gateway}"), source))
}

async fn pod_side_is_complete(
    handle: &Handle,
    ip: Ipv4Addr,
    prefix: u8,
    gateway: Ipv4Addr,
) -> Result<bool, NetError> {
    let Some(eth0) = link_by_name(handle, POD_INTERFACE).await? else {
        return Ok(false);
    };
    if !eth0.header.flags.contains(LinkFlags::Up) {
        return Ok(false);
    }
    let mut addresses = handle
        .address()
        .get()
        .set_link_index_filter(eth0.header.index)
        .execute();
    let mut has_address = false;
    while let Some(message) = addresses
        .try_next()
        .await
        .map_err(|source| netlink("list the pod's addresses".into(), source))?
    {
        has_address |= message.header.prefix_len == prefix
            && message
                .attributes
                .iter()
                .any(|attribute| matches!(attribute, AddressAttribute::Address(IpAddr::V4(a)) if *a == ip));
    }
    if !has_address {
        return Ok(false);
    }
    let mut routes = handle
        .route()
        .get(RouteMessageBuilder::<Ipv4Addr>::new().build())
        .execute();
    while let Some(route) = routes
        .try_next()
        .await
        .map_err(|source| netlink("list the pod's routes".into(), source))?
    {
        use rtnetlink::packet_route::route::{RouteAddress, RouteAttribute};
        let default = route.header.destination_prefix_length == 0
            && route.attributes.iter().any(|attribute| {
                matches!(attribute, RouteAttribute::Gateway(RouteAddress::Inet(g)) if *g == gateway)
            });
        if default {
            return Ok(true);
        }
    }
    Ok(false)
}
