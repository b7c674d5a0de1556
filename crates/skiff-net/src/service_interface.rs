//! The host interface holding Service cluster IPs, as kube-proxy's IPVS mode binds them on
//! `kube-ipvs0`: a dummy interface whose addresses are local, so a proxy in the host's network
//! namespace accepts on `clusterIP:port` and pods reach it through their default route.
//!
//! Kernels built without the `dummy` link type (some virtual machines' minimal kernels) get a
//! bridge with no ports instead, which holds local addresses just as well.
//!
//! Each address is a `/32` of its own, so nothing is routed by it; being local, it is looked up
//! in the `local` table before the `main` table's `unreachable` guard for the Service range.

use std::net::{IpAddr, Ipv4Addr};

use nix::errno::Errno;
use rtnetlink::{AddressMessageBuilder, Handle, LinkBridge, LinkDummy};

use crate::config::MAX_INTERFACE_NAME_LEN;
use crate::linux::{
    delete_link, errno_of, ignore, link_by_name, netlink, set_up, spawn_connection,
};
use crate::network::NetError;

/// The name of the cluster IP interface that goes with a pod bridge: `<bridge>-svc` when that
/// fits an interface name, else `svc` and a hash of the bridge's name, so two Skiffs with
/// different bridges never share one.
pub fn service_interface_name(bridge: &str) -> String {
    let plain = format!("{bridge}-svc");
    if plain.len() <= MAX_INTERFACE_NAME_LEN {
        return plain;
    }
    // FNV-1a: stable across builds and platforms, unlike the standard library's hasher.
    let hash = bridge
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
            (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
        });
    format!("svc{:012x}", hash & 0xffff_ffff_ffff)
}

/// A dummy interface (or a bridge with no ports) in the calling thread's network namespace
/// holding cluster IPs.
pub struct ServiceInterface {
    name: String,
    index: u32,
    handle: Handle,
}

impl ServiceInterface {
    /// Creates the interface `name` afresh (one a previous run left is deleted first, with its
    /// addresses) and sets it up.
    pub async fn create(name: &str) -> Result<ServiceInterface, NetError> {
        let handle = spawn_connection()?;
        delete_link(&handle, name).await?;
        let dummy = handle
            .link()
            .add(LinkDummy::new(name).build())
            .execute()
            .await;
        match dummy {
            Ok(()) => {}
            Err(error) if errno_of(&error) == Some(Errno::EOPNOTSUPP) => {
                tracing::info!(
                    interface = name,
                    "the kernel has no dummy interfaces; cluster IPs go on a bridge with no ports"
                );
                handle
                    .link()
                    .add(LinkBridge::new(name).build())
                    .execute()
                    .await
                    .map_err(|source| netlink(format!("create bridge {name}"), source))?;
            }
            Err(source) => {
                return Err(netlink(format!("create dummy interface {name}"), source));
            }
        }
        let Some(link) = link_by_name(&handle, name).await? else {
            return Err(NetError::Unexpected(format!(
                "interface {name} vanished after it was created"
            )));
        };
        let index = link.header.index;
        set_up(&handle, index, name).await?;
        Ok(ServiceInterface {
            name: name.to_string(),
            index,
            handle,
        })
    }

    /// The interface's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Makes `ip` a local address (`/32`); already present is not an error.
    pub async fn add(&self, ip: Ipv4Addr) -> Result<(), NetError> {
        self.handle
            .address()
            .add(self.index, IpAddr::V4(ip), 32)
            .execute()
            .await
            .or_else(ignore(Errno::EEXIST))
            .map_err(|source| netlink(format!("add {ip}/32 to {}", self.name), source))
    }

    /// Removes `ip`; already absent is not an error.
    pub async fn remove(&self, ip: Ipv4Addr) -> Result<(), NetError> {
        let message = AddressMessageBuilder::<Ipv4Addr>::new()
            .index(self.index)
            .address(ip, 32)
            .build();
        match self.handle.address().del(message).execute().await {
            Ok(()) => Ok(()),
            Err(error) if errno_of(&error) == Some(Errno::EADDRNOTAVAIL) => Ok(()),
            Err(error) if errno_of(&error) == Some(Errno::ENODEV) => Ok(()),
            Err(source) => Err(netlink(
                format!("remove {ip}/32 from {}", self.name),
                source,
            )),
        }
    }

    /// Deletes the interface and with it every address it holds.
    pub async fn delete(&self) -> Result<(), NetError> {
        delete_link(&self.handle, &self.name).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_bridge_and_always_fit() {
        assert_eq!(service_interface_name("skiff0"), "skiff0-svc");
        assert_eq!(service_interface_name("sktest12345"), "sktest12345-svc");
        let long = service_interface_name("sktest123456789");
        assert!(long.len() <= MAX_INTERFACE_NAME_LEN, "{long}");
        assert!(long.starts_with("svc"));
        assert_ne!(long, service_interface_name("sktest123456788"));
        assert_eq!(long, service_interface_name("sktest123456789"));
    }
}
