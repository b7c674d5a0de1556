//! Cluster IPs and node ports for Services, as the API server allocates them on create.
//!
//! Cluster IPs come from a loopback range (127.96.0.0/12 by default), so that a service proxy
//! can listen on them without privileges, or from the range `skiff up --service-cidr` gives
//! when pods have network namespaces of their own; node ports from 30000-32767, as Kubernetes
//! does.

use std::collections::HashSet;
use std::net::Ipv4Addr;

use serde_json::{json, Value};
use skiff_api::errors::FieldError;
use tokio::sync::Mutex;

/// The first address of the default service range.
pub const SERVICE_RANGE_START: Ipv4Addr = Ipv4Addr::new(127, 96, 0, 0);
/// The prefix length of the default service range.
pub const SERVICE_RANGE_PREFIX: u32 = 12;
/// The node port range, inclusive.
pub const NODE_PORT_RANGE: (u16, u16) = (30000, 32767);

/// The IPv4 range cluster IPs come from: its network address and prefix length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServiceRange {
    base: Ipv4Addr,
    prefix: u32,
}

impl Default for ServiceRange {
    /// The loopback range 127.96.0.0/12.
    fn default() -> Self {
        ServiceRange {
            base: SERVICE_RANGE_START,
            prefix: SERVICE_RANGE_PREFIX,
        }
    }
}

impl ServiceRange {
    /// The range `network/prefix` (host bits of `network` are ignored), or `None` when it holds
    /// fewer than 8 addresses: the API server's, the DNS Service's and a few others need room.
    pub fn new(network: Ipv4Addr, prefix: u8) -> Option<ServiceRange> {
        if !(1..=29).contains(&prefix) {
            return None;
        }
        let prefix = u32::from(prefix);
        let mask = u32::MAX << (32 - prefix);
        Some(ServiceRange {
            base: Ipv4Addr::from(u32::from(network) & mask),
            prefix,
        })
    }

    /// The address `offset` places into the range (`.1` is offset 1), if the range holds it.
    pub fn nth(&self, offset: u32) -> Option<Ipv4Addr> {
        (offset < self.size()).then(|| Ipv4Addr::from(u32::from(self.base) + offset))
    }

    /// The first usable address, where the `kubernetes` Service lives.
    pub fn first(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.base) + 1)
    }

    fn size(&self) -> u32 {
        1 << (32 - self.prefix)
    }

    /// Whether `ip` is a usable address of the range (neither its network nor its broadcast
    /// address).
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        let v = u32::from(ip);
        let base = u32::from(self.base);
        v > base && v - base < self.size() - 1
    }
}

impl std::fmt::Display for ServiceRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.base, self.prefix)
    }
}

/// What is in use: loaded from the stored Services on first use, then kept current.
#[derive(Default)]
struct InUse {
    ips: HashSet<Ipv4Addr>,
    ports: HashSet<u16>,
    next_ip: u32,
    next_port: u16,
}

/// Hands out cluster IPs and node ports, never the same one twice while it is in use.
pub struct ServiceAllocator {
    state: Mutex<Option<InUse>>,
    /// Where cluster IPs come from.
    range: ServiceRange,
    /// Where the search for a free IP (an offset into the range) and a free port begins.
    first_ip: u32,
    first_port: u16,
}

impl Default for ServiceAllocator {
    /// IPs and node ports start at a random place in their ranges, as Kubernetes hands them out
    /// at random: users should not come to rely on one, and two Skiffs on one machine (whose
    /// proxies both listen on loopback) rarely pick the same cluster IP.
    fn default() -> Self {
        ServiceAllocator::for_range(ServiceRange::default())
    }
}

/// Whether a Service of this type gets node ports.
fn wants_node_ports(service: &Value) -> bool {
    matches!(
        service.pointer("/spec/type").and_then(Value::as_str),
        Some("NodePort") | Some("LoadBalancer")
    )
}

/// Whether a Service of this type gets a cluster IP.
fn wants_cluster_ip(service: &Value) -> bool {
    service.pointer("/spec/type").and_then(Value::as_str) != Some("ExternalName")
        && service.pointer("/spec/clusterIP").and_then(Value::as_str) != Some("None")
}

/// The addresses and ports a stored Service holds.
fn held(service: &Value) -> (Vec<Ipv4Addr>, Vec<u16>) {
    let ips = service
        .pointer("/spec/clusterIPs")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .chain(service.pointer("/spec/clusterIP"))
        .filter_map(|v| v.as_str()?.parse().ok())
        .collect();
    let ports = service
        .pointer("/spec/ports")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|p| p.get("nodePort")?.as_u64())
        .filter_map(|p| u16::try_from(p).ok())
        .collect();
    (ips, ports)
}

impl ServiceAllocator {
    /// Cluster IPs from `range`, starting at a random place in it (as node ports do in theirs).
    pub fn for_range(range: ServiceRange) -> Self {
        let random = uuid::Uuid::new_v4().as_u128();
        let port_span = u128::from(NODE_PORT_RANGE.1 - NODE_PORT_RANGE.0 + 1);
        let first_port = NODE_PORT_RANGE.0 + (random % port_span) as u16;
        let first_ip = ((random >> 64) % u128::from(range.size() - 2)) as u32 + 1;
        ServiceAllocator::starting_at_in(range, first_ip, first_port)
    }

    /// An allocator whose searches begin at offset `first_ip` of the default service range and
    /// at node port `first_port`, for reproducible allocations.
    pub fn starting_at(first_ip: u32, first_port: u16) -> ServiceAllocator {
        ServiceAllocator::starting_at_in(ServiceRange::default(), first_ip, first_port)
    }

    /// As [`ServiceAllocator::starting_at`], in `range`.
    pub fn starting_at_in(range: ServiceRange, first_ip: u32, first_port: u16) -> Self {
        ServiceAllocator {
            state: Mutex::new(None),
            range,
            first_ip: first_ip.clamp(1, range.size() - 2),
            first_port: first_port.clamp(NODE_PORT_RANGE.0, NODE_PORT_RANGE.1),
        }
    }

    /// The range cluster IPs come from.
    pub fn range(&self) -> ServiceRange {
        self.range
    }

    /// Makes sure the in-use sets reflect `existing` Services (called with the stored ones the
    /// first time the allocator is needed).
    async fn state<'a>(
        &'a self,
        existing: impl FnOnce() -> Vec<Value>,
    ) -> tokio::sync::MutexGuard<'a, Option<InUse>> {
        let mut guard = self.state.lock().await;
        if guard.is_none() {
            let mut in_use = InUse {
                next_ip: self.first_ip,
                next_port: self.first_port,
                ..Default::default()
            };
            for svc in existing() {
                let (ips, ports) = held(&svc);
                in_use.ips.extend(ips);
                in_use.ports.extend(ports);
            }
            *guard = Some(in_use);
        }
        guard
    }

    /// Whether the allocator still needs the stored Services.
    pub async fn needs_existing(&self) -> bool {
        self.state.lock().await.is_none()
    }

    /// Fills in the cluster IP and node ports of a Service, or explains which requested ones
    /// are not available. `previous` is the stored Service on update: what it already holds
    /// stays its own.
    pub async fn allocate(
        &self,
        service: &mut Value,
        previous: Option<&Value>,
        existing: impl FnOnce() -> Vec<Value>,
    ) -> Result<(), Vec<FieldError>> {
        let mut guard = self.state(existing).await;
        let in_use = guard.as_mut().expect("initialized above");
        let (own_ips, own_ports) = previous.map(held).unwrap_or_default();
        let mut taken_ips = Vec::new();
        let mut taken_ports = Vec::new();
        let result = allocate_into(
            self.range,
            in_use,
            service,
            (&own_ips, &own_ports),
            &mut taken_ips,
            &mut taken_ports,
        );
        if result.is_err() {
            for ip in taken_ips {
                in_use.ips.remove(&ip);
            }
            for port in taken_ports {
                in_use.ports.remove(&port);
            }
        }
        result
    }

    /// Returns what a deleted Service held.
    pub async fn release(&self, service: &Value) {
        self.release_difference(service, None).await;
    }

    /// Returns what `service` holds and `kept` (the version that stays) does not: the node ports
    /// an update dropped, or what a failed write had taken.
    pub async fn release_difference(&self, service: &Value, kept: Option<&Value>) {
        let mut guard = self.state.lock().await;
        if let Some(in_use) = guard.as_mut() {
            let (ips, ports) = held(service);
            let (keep_ips, keep_ports) = kept.map(held).unwrap_or_default();
            for ip in ips.into_iter().filter(|ip| !keep_ips.contains(ip)) {
                in_use.ips.remove(&ip);
            }
            for port in ports.into_iter().filter(|p| !keep_ports.contains(p)) {
                in_use.ports.remove(&port);
            }
        }
    }
}

fn allocate_into(
    range: ServiceRange,
    in_use: &mut InUse,
    service: &mut Value,
    (own_ips, own_ports): (&[Ipv4Addr], &[u16]),
    taken_ips: &mut Vec<Ipv4Addr>,
    taken_ports: &mut Vec<u16>,
) -> Result<(), Vec<FieldError>> {
    let mut errors = Vec::new();
    if wants_cluster_ip(service) {
        let requested = service
            .pointer("/spec/clusterIP")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string);
        match requested {
            Some(text) => match text.parse::<Ipv4Addr>() {
                Ok(ip) if own_ips.contains(&ip) => {}
                Ok(ip) if !range.contains(ip) => errors.push(FieldError::invalid(
                    "spec.clusterIPs",
                    &json!([text]),
                    format!("failed to allocate IP {ip}: provided IP is not in the valid range. The range of valid IPs is {range}"),
                )),
                Ok(ip) if in_use.ips.contains(&ip) => errors.push(FieldError::invalid(
                    "spec.clusterIPs",
                    &json!([text]),
                    format!("failed to allocate IP {ip}: provided IP is already allocated"),
                )),
                Ok(ip) => {
                    in_use.ips.insert(ip);
                    taken_ips.push(ip);
                    service["spec"]["clusterIPs"] = json!([ip.to_string()]);
                }
                Err(_) => errors.push(FieldError::invalid(
                    "spec.clusterIPs[0]",
                    &json!(text),
                    "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
                )),
            },
            None => {
                let size = range.size() - 2;
                let mut found = None;
                for i in 0..size {
                    let offset = (in_use.next_ip - 1 + i) % size + 1;
                    let ip = Ipv4Addr::from(u32::from(range.base) + offset);
                    if !in_use.ips.contains(&ip) {
                        in_use.next_ip = offset % size + 1;
                        found = Some(ip);
                        break;
                    }
                }
                match found {
                    Some(ip) => {
                        in_use.ips.insert(ip);
                        taken_ips.push(ip);
                        service["spec"]["clusterIP"] = json!(ip.to_string());
                        service["spec"]["clusterIPs"] = json!([ip.to_string()]);
                    }
                    None => errors.push(FieldError::invalid(
                        "spec.clusterIPs",
                        &json!([]),
                        format!("failed to allocate IP: range {range} is full"),
                    )),
                }
            }
        }
    }
    if wants_node_ports(service) {
        let count = service
            .pointer("/spec/ports")
            .and_then(Value::as_array)
            .map_or(0, Vec::len);
        for i in 0..count {
            let path = format!("spec.ports[{i}].nodePort");
            let requested = service["spec"]["ports"][i]
                .get("nodePort")
                .and_then(Value::as_u64);
            match requested {
                Some(port) => {
                    let Ok(port) = u16::try_from(port) else {
                        errors.push(FieldError::invalid(
                            path,
                            &json!(port),
                            "must be between 1 and 65535, inclusive",
                        ));
                        continue;
                    };
                    if own_ports.contains(&port) {
                        continue;
                    }
                    if !(NODE_PORT_RANGE.0..=NODE_PORT_RANGE.1).contains(&port) {
                        errors.push(FieldError::invalid(
                            path,
                            &json!(port),
                            format!("provided port is not in the valid range. The range of valid ports is {}-{}", NODE_PORT_RANGE.0, NODE_PORT_RANGE.1),
                        ));
                    } else if in_use.ports.contains(&port) {
                        errors.push(FieldError::invalid(
                            path,
                            &json!(port),
                            "provided port is already allocated",
                        ));
                    } else {
                        in_use.ports.insert(port);
                        taken_ports.push(port);
                    }
                }
                None => {
                    let span = NODE_PORT_RANGE.1 - NODE_PORT_RANGE.0 + 1;
                    let mut found = None;
                    for step in 0..span {
                        let port = NODE_PORT_RANGE.0
                            + (in_use.next_port - NODE_PORT_RANGE.0 + step) % span;
                        if !in_use.ports.contains(&port) {
                            found = Some(port);
                            in_use.next_port =
                                NODE_PORT_RANGE.0 + (port - NODE_PORT_RANGE.0 + 1) % span;
                            break;
                        }
                    }
                    match found {
                        Some(port) => {
                            in_use.ports.insert(port);
                            taken_ports.push(port);
                            service["spec"]["ports"][i]["nodePort"] = json!(port);
                        }
                        None => errors.push(FieldError::invalid(path, &json!(0), "range is full")),
                    }
                }
            }
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn svc(kind: &str) -> Value {
        json!({"metadata": {"name": "s"}, "spec": {"type": kind, "ports": [{"port": 80}, {"port": 443}]}})
    }

    #[tokio::test]
    async fn allocates_distinct_ips_and_ports_and_reuses_released_ones() {
        let a = ServiceAllocator::starting_at(1, 30000);
        let mut one = svc("NodePort");
        a.allocate(&mut one, None, Vec::new).await.unwrap();
        let mut two = svc("NodePort");
        a.allocate(&mut two, None, Vec::new).await.unwrap();
        assert_ne!(one["spec"]["clusterIP"], two["spec"]["clusterIP"]);
        assert_eq!(one["spec"]["clusterIP"], "127.96.0.1");
        let ports: HashSet<u64> = [&one, &two]
            .iter()
            .flat_map(|s| {
                s["spec"]["ports"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|p| p["nodePort"].as_u64().unwrap())
            })
            .collect();
        assert_eq!(ports.len(), 4);
        assert!(ports.iter().all(|p| (30000..=32767).contains(p)));
        let mut clusterip = svc("ClusterIP");
        a.allocate(&mut clusterip, None, Vec::new).await.unwrap();
        assert!(clusterip["spec"]["ports"][0].get("nodePort").is_none());
        a.release(&one).await;
        let mut taken = svc("ClusterIP");
        taken["spec"]["clusterIP"] = two["spec"]["clusterIP"].clone();
        let err = a.allocate(&mut taken, None, Vec::new).await.unwrap_err();
        assert!(
            err[0].full().contains("provided IP is already allocated"),
            "{}",
            err[0].full()
        );
    }

    #[tokio::test]
    async fn requested_ports_are_checked_and_failed_allocations_roll_back() {
        let a = ServiceAllocator::starting_at(1, 30000);
        let mut first = svc("NodePort");
        first["spec"]["ports"][0]["nodePort"] = json!(30080);
        a.allocate(&mut first, None, Vec::new).await.unwrap();
        let mut clash = svc("NodePort");
        clash["spec"]["ports"][1]["nodePort"] = json!(30080);
        let err = a.allocate(&mut clash, None, Vec::new).await.unwrap_err();
        assert_eq!(err[0].field, "spec.ports[1].nodePort");
        assert_eq!(
            err[0].full(),
            "spec.ports[1].nodePort: Invalid value: 30080: provided port is already allocated"
        );
        // The IP taken for the failed Service was given back.
        let mut next = svc("ClusterIP");
        a.allocate(&mut next, None, Vec::new).await.unwrap();
        assert_eq!(next["spec"]["clusterIP"], "127.96.0.3");
        let mut out_of_range = svc("NodePort");
        out_of_range["spec"]["ports"][0]["nodePort"] = json!(80);
        assert!(a.allocate(&mut out_of_range, None, Vec::new).await.is_err());
    }

    #[tokio::test]
    async fn headless_and_external_name_services_get_no_ip() {
        let a = ServiceAllocator::starting_at(1, 30000);
        let mut headless = json!({"spec": {"type": "ClusterIP", "clusterIP": "None", "ports": []}});
        a.allocate(&mut headless, None, Vec::new).await.unwrap();
        assert_eq!(headless["spec"]["clusterIP"], "None");
        let mut external = json!({"spec": {"type": "ExternalName", "externalName": "example.com"}});
        a.allocate(&mut external, None, Vec::new).await.unwrap();
        assert!(external["spec"].get("clusterIP").is_none());
    }

    #[tokio::test]
    async fn existing_services_are_respected() {
        let a = ServiceAllocator::starting_at(1, 30000);
        let existing = json!({"spec": {"type": "NodePort", "clusterIP": "127.96.0.1", "ports": [{"port": 80, "nodePort": 30000}]}});
        let mut s = svc("NodePort");
        a.allocate(&mut s, None, || vec![existing]).await.unwrap();
        assert_eq!(s["spec"]["clusterIP"], "127.96.0.2");
        assert_ne!(s["spec"]["ports"][0]["nodePort"], 30000);
    }
}

#[cfg(test)]
mod range_tests {
    use super::*;

    #[tokio::test]
    async fn a_given_range_bounds_allocations_and_names_itself_in_errors() {
        let range = ServiceRange::new(Ipv4Addr::new(198, 19, 4, 77), 24).expect("a /24");
        assert_eq!(range.to_string(), "198.19.4.0/24");
        assert_eq!(range.first(), Ipv4Addr::new(198, 19, 4, 1));
        assert_eq!(range.nth(10), Some(Ipv4Addr::new(198, 19, 4, 10)));
        assert_eq!(range.nth(256), None);
        assert!(!range.contains(Ipv4Addr::new(198, 19, 4, 0)));
        assert!(!range.contains(Ipv4Addr::new(198, 19, 4, 255)));
        assert!(ServiceRange::new(Ipv4Addr::new(198, 19, 4, 0), 30).is_none());
        let a = ServiceAllocator::for_range(range);
        for _ in 0..20 {
            let mut s = json!({"spec": {"type": "ClusterIP", "ports": [{"port": 80}]}});
            a.allocate(&mut s, None, Vec::new).await.expect("allocated");
            let ip: Ipv4Addr = s["spec"]["clusterIP"].as_str().unwrap().parse().unwrap();
            assert!(range.contains(ip), "{ip} outside {range}");
        }
        let mut outside = json!({"spec": {"type": "ClusterIP", "clusterIP": "127.96.0.5"}});
        let err = a.allocate(&mut outside, None, Vec::new).await.unwrap_err();
        assert_eq!(
            err[0].full(),
            "spec.clusterIPs: Invalid value: [\"127.96.0.5\"]: failed to allocate IP 127.96.0.5: provided IP is not in the valid range. The range of valid IPs is 198.19.4.0/24"
        );
    }

    #[tokio::test]
    async fn a_full_range_says_so() {
        let range = ServiceRange::new(Ipv4Addr::new(198, 19, 4, 0), 29).expect("a /29");
        let a = ServiceAllocator::for_range(range);
        for _ in 0..6 {
            let mut s = json!({"spec": {"type": "ClusterIP"}});
            a.allocate(&mut s, None, Vec::new).await.expect("allocated");
        }
        let mut s = json!({"spec": {"type": "ClusterIP"}});
        let err = a.allocate(&mut s, None, Vec::new).await.unwrap_err();
        assert!(
            err[0].full().contains("range 198.19.4.0/29 is full"),
            "{}",
            err[0].full()
        );
    }
}

#[cfg(test)]
mod update_tests {
    use super::*;

    #[tokio::test]
    async fn updates_keep_what_the_service_holds_and_add_what_it_newly_needs() {
        let a = ServiceAllocator::starting_at(1, 30000);
        let mut s = json!({"spec": {"type": "ClusterIP", "ports": [{"port": 80}]}});
        a.allocate(&mut s, None, Vec::new).await.unwrap();
        let stored = s.clone();
        let mut changed = s.clone();
        changed["spec"]["type"] = json!("NodePort");
        a.allocate(&mut changed, Some(&stored), Vec::new)
            .await
            .unwrap();
        assert_eq!(changed["spec"]["clusterIP"], stored["spec"]["clusterIP"]);
        let port = changed["spec"]["ports"][0]["nodePort"].clone();
        assert!(port.is_u64());
        let again = changed.clone();
        let mut same = changed.clone();
        a.allocate(&mut same, Some(&again), Vec::new).await.unwrap();
        assert_eq!(same["spec"]["ports"][0]["nodePort"], port);
    }
}
