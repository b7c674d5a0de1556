//! What a real node says about itself in its Node, as kubelet does: its addresses, its
//! system information and its role labels. The facts are read from the machine behind
//! [`HostFactSource`]; turning them into the Node's fields is pure.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};

use k8s_openapi::api::core::v1::{NodeAddress, NodeSystemInfo};

/// The label k3s puts on its servers' nodes, shown by `kubectl get nodes` as a role.
pub const CONTROL_PLANE_ROLE_LABEL: &str = "node-role.kubernetes.io/control-plane";
/// The older role label k3s still puts on its servers' nodes beside the control-plane one.
pub const MASTER_ROLE_LABEL: &str = "node-role.kubernetes.io/master";

/// The facts about this machine a node reports; each is `None` when it could not be read.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HostFacts {
    /// The IPv4 address of the interface the default route leaves through.
    pub default_route_address: Option<Ipv4Addr>,
    /// The text of `/etc/os-release`.
    pub os_release: Option<String>,
    /// The kernel release, as `uname -r` prints it.
    pub kernel_release: Option<String>,
    /// `/etc/machine-id`.
    pub machine_id: Option<String>,
    /// The firmware's system UUID (`/sys/class/dmi/id/product_uuid`, readable by root only).
    pub system_uuid: Option<String>,
    /// This boot's ID (`/proc/sys/kernel/random/boot_id`).
    pub boot_id: Option<String>,
}

/// Where a node's facts come from: the machine itself, or a table in tests.
pub trait HostFactSource: Send + Sync {
    /// Reads the facts now.
    fn gather(&self) -> HostFacts;
}

/// Facts fixed in advance (a table in tests) are their own source.
impl HostFactSource for HostFacts {
    fn gather(&self) -> HostFacts {
        self.clone()
    }
}

/// The facts of the machine this process runs on, read from `/proc`, `/etc` and `/sys`.
#[derive(Clone, Copy, Debug, Default)]
pub struct ThisHost;

fn read_trimmed(path: &str) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|text| text.trim().to_string())
        .filter(|text| !text.is_empty())
}

impl HostFactSource for ThisHost {
    fn gather(&self) -> HostFacts {
        let default_route_address = std::fs::read_to_string("/proc/net/route")
            .ok()
            .and_then(|routes| default_route_interface(&routes))
            .and_then(|interface| interface_ipv4(&interface));
        HostFacts {
            default_route_address,
            os_release: std::fs::read_to_string("/etc/os-release")
                .or_else(|_| std::fs::read_to_string("/usr/lib/os-release"))
                .ok(),
            kernel_release: read_trimmed("/proc/sys/kernel/osrelease"),
            machine_id: read_trimmed("/etc/machine-id"),
            system_uuid: read_trimmed("/sys/class/dmi/id/product_uuid"),
            boot_id: read_trimmed("/proc/sys/kernel/random/boot_id"),
        }
    }
}

/// The first IPv4 address of interface `name`.
fn interface_ipv4(name: &str) -> Option<Ipv4Addr> {
    nix::ifaddrs::getifaddrs().ok()?.find_map(|entry| {
        if entry.interface_name != name {
            return None;
        }
        let address = entry.address?;
        address.as_sockaddr_in().map(|sin| sin.ip())
    })
}

/// The interface of the default route in `/proc/net/route`'s table (destination and mask
/// `0.0.0.0`, up), the one with the lowest metric when there are several.
pub fn default_route_interface(routes: &str) -> Option<String> {
    const ROUTE_UP: u32 = 0x1;
    routes
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let [interface, destination, _gateway, flags, _refs, _use, metric, mask, ..] =
                fields.as_slice()
            else {
                return None;
            };
            let flags = u32::from_str_radix(flags, 16).ok()?;
            let metric: u32 = metric.parse().ok()?;
            (*destination == "00000000" && *mask == "00000000" && flags & ROUTE_UP != 0)
                .then(|| (metric, interface.to_string()))
        })
        .min_by_key(|(metric, _)| *metric)
        .map(|(_, interface)| interface)
}

/// The node's `InternalIP`s, as kubelet picks them: each `--node-ip` in order (once), else the
/// address of the default route's interface, else loopback.
pub fn internal_ips(node_ips: &[IpAddr], facts: &HostFacts) -> Vec<IpAddr> {
    if !node_ips.is_empty() {
        let mut ips: Vec<IpAddr> = Vec::with_capacity(node_ips.len());
        for ip in node_ips {
            if !ips.contains(ip) {
                ips.push(*ip);
            }
        }
        return ips;
    }
    vec![IpAddr::V4(
        facts.default_route_address.unwrap_or(Ipv4Addr::LOCALHOST),
    )]
}

/// `status.addresses`: the `InternalIP`s, then the `Hostname`.
pub fn node_addresses(internal_ips: &[IpAddr], hostname: &str) -> Vec<NodeAddress> {
    internal_ips
        .iter()
        .map(|ip| NodeAddress {
            type_: "InternalIP".to_string(),
            address: ip.to_string(),
        })
        .chain(std::iter::once(NodeAddress {
            type_: "Hostname".to_string(),
            address: hostname.to_string(),
        }))
        .collect()
}

/// `PRETTY_NAME` of an `os-release` text, unquoted; kubelet reports `Linux` without one.
pub fn os_image(os_release: Option<&str>) -> String {
    os_release
        .and_then(|text| {
            text.lines().find_map(|line| {
                let value = line.trim().strip_prefix("PRETTY_NAME=")?;
                let unquoted = value
                    .strip_prefix('"')
                    .and_then(|v| v.strip_suffix('"'))
                    .or_else(|| value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
                    .unwrap_or(value);
                Some(unquoted.to_string())
            })
        })
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "Linux".to_string())
}

/// What the node's software is, beside the machine's facts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeSoftwareFacts {
    /// `containerRuntimeVersion`, `<runtime>://<version>`.
    pub container_runtime_version: String,
    /// `kubeletVersion`.
    pub kubelet_version: String,
    /// `architecture`, in Go's spelling.
    pub architecture: String,
}

/// `status.nodeInfo` as kubelet fills it. `kubeProxyVersion` stays empty: kubelet no longer
/// reports it.
pub fn node_system_info(facts: &HostFacts, software: &NodeSoftwareFacts) -> NodeSystemInfo {
    NodeSystemInfo {
        architecture: software.architecture.clone(),
        boot_id: facts.boot_id.clone().unwrap_or_default(),
        container_runtime_version: software.container_runtime_version.clone(),
        kernel_version: facts.kernel_release.clone().unwrap_or_default(),
        kube_proxy_version: String::new(),
        kubelet_version: software.kubelet_version.clone(),
        machine_id: facts.machine_id.clone().unwrap_or_default(),
        operating_system: "linux".to_string(),
        os_image: os_image(facts.os_release.as_deref()),
        system_uuid: facts.system_uuid.clone().unwrap_or_default(),
        ..NodeSystemInfo::default()
    }
}

/// The role labels of a node, as k3s sets them: a server's node is `control-plane` and
/// `master`; an agent's has none.
pub fn role_labels(control_plane: bool) -> BTreeMap<String, String> {
    if !control_plane {
        return BTreeMap::new();
    }
    [CONTROL_PLANE_ROLE_LABEL, MASTER_ROLE_LABEL]
        .into_iter()
        .map(|key| (key.to_string(), "true".to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROUTES: &str =
        "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
eth0\t0000A8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n\
wlan0\t00000000\t0101A8C0\t0003\t0\t0\t600\t00000000\t0\t0\t0\n\
eth0\t00000000\t0100A8C0\t0003\t0\t0\t100\t00000000\t0\t0\t0\n\
tun0\t00000000\t00000000\t0000\t0\t0\t0\t00000000\t0\t0\t0\n";

    #[test]
    fn the_default_route_is_the_up_one_with_the_lowest_metric() {
        let cases: [(&str, Option<&str>); 4] = [
            (ROUTES, Some("eth0")),
            (
                "Iface\tDestination\tGateway\tFlags\tRefCnt\tUse\tMetric\tMask\n\
                 eth0\t0000A8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\n",
                None,
            ),
            ("Iface\tDestination\n", None),
            ("", None),
        ];
        for (routes, expected) in cases {
            assert_eq!(
                default_route_interface(routes).as_deref(),
                expected,
                "{routes}"
            );
        }
    }

    #[test]
    fn internal_ips_come_from_the_flag_then_the_default_route_then_loopback() {
        let routed = HostFacts {
            default_route_address: Some(Ipv4Addr::new(198, 18, 250, 7)),
            ..HostFacts::default()
        };
        let a: IpAddr = "127.0.0.2".parse().unwrap();
        let b: IpAddr = "198.18.0.5".parse().unwrap();
        let cases: [(&[IpAddr], &HostFacts, &[&str]); 4] = [
            (&[a, b, a], &routed, &["127.0.0.2", "198.18.0.5"]),
            (&[b, a], &HostFacts::default(), &["198.18.0.5", "127.0.0.2"]),
            (&[], &routed, &["198.18.250.7"]),
            (&[], &HostFacts::default(), &["127.0.0.1"]),
        ];
        for (flags, facts, expected) in cases {
            let got: Vec<String> = internal_ips(flags, facts)
                .iter()
                .map(ToString::to_string)
                .collect();
            assert_eq!(got, expected, "{flags:?} {facts:?}");
        }
    }

    #[test]
    fn addresses_list_each_internal_ip_then_the_hostname() {
        let ips: Vec<IpAddr> = vec!["127.0.0.2".parse().unwrap(), "::1".parse().unwrap()];
        let addresses: Vec<(String, String)> = node_addresses(&ips, "worker-3")
            .into_iter()
            .map(|a| (a.type_, a.address))
            .collect();
        assert_eq!(
            addresses,
            [
                ("InternalIP".to_string(), "127.0.0.2".to_string()),
                ("InternalIP".to_string(), "::1".to_string()),
                ("Hostname".to_string(), "worker-3".to_string()),
            ]
        );
    }

    #[test]
    fn os_image_is_the_pretty_name_unquoted_or_linux() {
        let cases = [
            (
                Some("NAME=\"Debian GNU/Linux\"\nPRETTY_NAME=\"Debian GNU/Linux 13 (trixie)\"\n"),
                "Debian GNU/Linux 13 (trixie)",
            ),
            (
                Some("PRETTY_NAME='Alpine Linux v3.22'\n"),
                "Alpine Linux v3.22",
            ),
            (Some("PRETTY_NAME=Arch\n"), "Arch"),
            (Some("NAME=Nothing\n"), "Linux"),
            (Some("PRETTY_NAME=\"\"\n"), "Linux"),
            (None, "Linux"),
        ];
        for (text, expected) in cases {
            assert_eq!(os_image(text), expected, "{text:?}");
        }
    }

    #[test]
    fn system_info_reports_the_facts_and_the_software() {
        let facts = HostFacts {
            default_route_address: None,
            os_release: Some("PRETTY_NAME=\"Ubuntu 24.04.3 LTS\"\n".into()),
            kernel_release: Some("6.8.0-88-generic".into()),
            machine_id: Some("0123456789abcdef0123456789abcdef".into()),
            system_uuid: Some("4c4c4544-0042-3510-8051-b2c04f564d33".into()),
            boot_id: Some("7d1f0a5e-1c7b-4f7e-9a57-0c8e2f9f4b11".into()),
        };
        let software = NodeSoftwareFacts {
            container_runtime_version: "skiff-oci://0.1.0".into(),
            kubelet_version: "v1.36.0".into(),
            architecture: "arm64".into(),
        };
        let info = node_system_info(&facts, &software);
        assert_eq!(info.os_image, "Ubuntu 24.04.3 LTS");
        assert_eq!(info.kernel_version, "6.8.0-88-generic");
        assert_eq!(info.operating_system, "linux");
        assert_eq!(info.architecture, "arm64");
        assert_eq!(info.container_runtime_version, "skiff-oci://0.1.0");
        assert_eq!(info.kubelet_version, "v1.36.0");
        assert_eq!(info.kube_proxy_version, "");
        assert_eq!(info.machine_id, "0123456789abcdef0123456789abcdef");
        assert_eq!(info.system_uuid, "4c4c4544-0042-3510-8051-b2c04f564d33");
        assert_eq!(info.boot_id, "7d1f0a5e-1c7b-4f7e-9a57-0c8e2f9f4b11");

        let unreadable = node_system_info(&HostFacts::default(), &software);
        assert_eq!(unreadable.os_image, "Linux");
        assert_eq!(unreadable.kernel_version, "");
        assert_eq!(unreadable.system_uuid, "");
    }

    #[test]
    fn servers_nodes_are_control_plane_and_master_and_agents_have_no_role() {
        let server = role_labels(true);
        assert_eq!(server.len(), 2);
        assert_eq!(server[CONTROL_PLANE_ROLE_LABEL], "true");
        assert_eq!(server[MASTER_ROLE_LABEL], "true");
        assert!(role_labels(false).is_empty());
    }
}
