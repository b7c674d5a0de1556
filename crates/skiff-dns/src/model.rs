//! The cluster zone as data: Services and EndpointSlices in, DNS answers out.
//!
//! Pure: no I/O and no clock. The server keeps one [`ClusterZone`] behind a lock, applies each
//! Service or EndpointSlice change to it as the change arrives (no rebuild), and asks
//! [`ClusterZone::answer`] for every query inside the cluster domain. Names and semantics follow
//! the Kubernetes DNS specification as CoreDNS's `kubernetes` plugin serves it with
//! `pods insecure`:
//!
//! - `<svc>.<ns>.svc.<domain>`: the cluster IPs, or for a headless Service every ready endpoint
//!   (every endpoint with `publishNotReadyAddresses`); an ExternalName Service is a CNAME.
//! - `<endpoint>.<svc>.<ns>.svc.<domain>`: one endpoint, by its `hostname` or else its address
//!   with dashes.
//! - `_<port>._<proto>.<svc>.<ns>.svc.<domain>`: SRV for a named port, targeting the Service
//!   name, or each endpoint's name for a headless Service, with their addresses as additionals.
//! - `1-2-3-4.<ns>.pod.<domain>`: the address spelled in the name, in an existing namespace
//!   (a Namespace object applied, or a namespace holding a Service).
//! - PTR for cluster IPs and endpoint addresses.
//! - NXDOMAIN or NODATA with the zone's SOA in the authority section.

use std::collections::{BTreeSet, HashMap};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::rdata::{A, AAAA, CNAME, NS, PTR, SOA, SRV, TXT};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;

/// CoreDNS's default record TTL in the `kubernetes` plugin, in seconds.
pub const DEFAULT_TTL: u32 = 5;
/// The SOA refresh interval CoreDNS writes for the cluster zone.
pub const SOA_REFRESH: i32 = 7200;
/// The SOA retry interval CoreDNS writes for the cluster zone.
pub const SOA_RETRY: i32 = 1800;
/// The SOA expiry CoreDNS writes for the cluster zone.
pub const SOA_EXPIRE: i32 = 86400;
/// The label EndpointSlices carry naming the Service they belong to.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
/// The version of the Kubernetes DNS specification served, answered as TXT on
/// `dns-version.<domain>` as the specification asks.
pub const SCHEMA_VERSION: &str = "1.1.0";
/// How many CNAMEs inside the zone are followed before giving up (as CoreDNS's limit).
const MAX_CNAME_CHAIN: usize = 8;

/// Why a cluster domain cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum ZoneError {
    /// The configured cluster domain is not a DNS name.
    #[error("invalid cluster domain {domain:?}: {reason}")]
    InvalidDomain {
        /// The domain as given.
        domain: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// A Service port as DNS needs it: the name and protocol select SRV records.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PortEntry {
    name: String,
    port: u16,
    /// Lowercase, as it appears in `_<proto>` labels.
    protocol: String,
}

/// What a Service name answers.
#[derive(Debug, Clone, PartialEq, Eq)]
enum ServiceKind {
    /// A virtual IP per family (`spec.clusterIPs`).
    ClusterIp(Vec<IpAddr>),
    /// `clusterIP: None`: the ready endpoints themselves.
    Headless,
    /// `type: ExternalName`: a CNAME to this name.
    ExternalName(Name),
}

#[derive(Debug, Clone)]
struct ServiceEntry {
    kind: ServiceKind,
    ports: Vec<PortEntry>,
    publish_not_ready: bool,
}

#[derive(Debug, Clone)]
struct EndpointEntry {
    addresses: Vec<IpAddr>,
    hostname: Option<String>,
    ready: bool,
}

#[derive(Debug, Clone)]
struct SliceEntry {
    service: String,
    ports: Vec<PortEntry>,
    endpoints: Vec<EndpointEntry>,
}

/// (namespace, name)
type Key = (String, String);

/// The answer to one question: what goes in each section and the response code.
#[derive(Debug, Clone, PartialEq)]
pub struct ZoneAnswer {
    /// NOERROR (with or without answers) or NXDOMAIN.
    pub response_code: ResponseCode,
    /// The answer section.
    pub answers: Vec<Record>,
    /// The authority section: the zone's SOA on NXDOMAIN and NODATA.
    pub authorities: Vec<Record>,
    /// Addresses of SRV targets.
    pub additionals: Vec<Record>,
    /// A name outside the zone that the last CNAME in `answers` points to, for the server to
    /// resolve upstream and append.
    pub external_target: Option<Name>,
}

/// Whether a name in a reverse zone is one this zone knows, or belongs upstream.
#[derive(Debug, Clone, PartialEq)]
pub enum ReverseAnswer {
    /// The address is a cluster IP or an endpoint: the PTR answer.
    Found(ZoneAnswer),
    /// Not a cluster address: to be forwarded, as CoreDNS falls through.
    NotInCluster,
}

/// One address a name resolves to, with the name it is published under and a port for SRV.
#[derive(Debug, Clone)]
struct Target {
    host: Name,
    ip: IpAddr,
    port: Option<u16>,
}

/// What a name inside the zone is.
enum Resolved {
    /// Addresses (and for SRV, ports) under possibly several target names.
    Targets(Vec<Target>),
    /// An alias.
    Cname(Name),
    /// The name exists but holds no address (the zone apex, `svc`, a namespace, ...).
    Empty,
    /// The zone apex.
    Apex,
    /// `dns-version.<domain>`.
    Version,
    /// No such name.
    Missing,
}

/// The cluster zone: every Service and EndpointSlice, indexed for lookups by name and address.
#[derive(Debug, Clone)]
pub struct ClusterZone {
    domain: Name,
    ttl: u32,
    serial: u32,
    services: HashMap<Key, ServiceEntry>,
    slices: HashMap<Key, SliceEntry>,
    /// (namespace, service) → names of its slices.
    slices_by_service: HashMap<Key, BTreeSet<String>>,
    /// namespace → number of Services in it (a namespace with Services is an existing name).
    namespaces: HashMap<String, usize>,
    /// Namespaces known from Namespace objects.
    namespace_objects: BTreeSet<String>,
    /// cluster IP → Services holding it.
    service_ips: HashMap<IpAddr, BTreeSet<Key>>,
    /// endpoint address → slices listing it.
    endpoint_ips: HashMap<IpAddr, BTreeSet<Key>>,
}

impl ClusterZone {
    /// An empty zone for `domain` (for example `cluster.local`), with CoreDNS's 5 s TTL.
    pub fn new(domain: &str) -> Result<Self, ZoneError> {
        let invalid = |reason: String| ZoneError::InvalidDomain {
            domain: domain.to_string(),
            reason,
        };
        let trimmed = domain.trim_end_matches('.');
        if trimmed.is_empty() {
            return Err(invalid("empty".to_string()));
        }
        let mut name = Name::from_ascii(trimmed).map_err(|e| invalid(e.to_string()))?;
        name.set_fqdn(true);
        Ok(Self {
            domain: name.to_lowercase(),
            ttl: DEFAULT_TTL,
            serial: 0,
            services: HashMap::new(),
            slices: HashMap::new(),
            slices_by_service: HashMap::new(),
            namespaces: HashMap::new(),
            namespace_objects: BTreeSet::new(),
            service_ips: HashMap::new(),
            endpoint_ips: HashMap::new(),
        })
    }

    /// A zone holding a snapshot of Services and EndpointSlices.
    pub fn from_snapshot<'a>(
        domain: &str,
        services: impl IntoIterator<Item = &'a Service>,
        slices: impl IntoIterator<Item = &'a EndpointSlice>,
    ) -> Result<Self, ZoneError> {
        let mut zone = Self::new(domain)?;
        for service in services {
            zone.apply_service(service);
        }
        for slice in slices {
            zone.apply_endpoint_slice(slice);
        }
        Ok(zone)
    }

    /// The cluster domain, fully qualified and lowercase.
    pub fn domain(&self) -> &Name {
        &self.domain
    }

    /// The TTL of every record served.
    pub fn ttl(&self) -> u32 {
        self.ttl
    }

    /// Sets the TTL of every record served (CoreDNS's `ttl` option, 0 to 3600 s).
    pub fn set_ttl(&mut self, ttl: u32) {
        self.ttl = ttl.min(3600);
    }

    /// Sets the SOA serial: CoreDNS uses the time of the last change, which the caller knows.
    pub fn set_serial(&mut self, serial: u32) {
        self.serial = serial;
    }

    /// Whether `name` is inside the cluster domain.
    pub fn is_in_zone(&self, name: &Name) -> bool {
        self.domain.zone_of(name)
    }

    /// Adds or replaces a Service. Returns false when the object cannot be indexed (no
    /// namespace or name).
    pub fn apply_service(&mut self, service: &Service) -> bool {
        let (Some(namespace), Some(name)) = (
            service.metadata.namespace.as_deref(),
            service.metadata.name.as_deref(),
        ) else {
            return false;
        };
        let key = (namespace.to_string(), name.to_string());
        self.remove_service(&key);
        let entry = service_entry(service);
        if let ServiceKind::ClusterIp(ips) = &entry.kind {
            for ip in ips {
                self.service_ips.entry(*ip).or_default().insert(key.clone());
            }
        }
        *self.namespaces.entry(key.0.clone()).or_default() += 1;
        self.services.insert(key, entry);
        true
    }

    /// Removes a Service (its slices stay until they are deleted, as in the API).
    pub fn delete_service(&mut self, namespace: &str, name: &str) {
        self.remove_service(&(namespace.to_string(), name.to_string()));
    }

    fn remove_service(&mut self, key: &Key) {
        let Some(old) = self.services.remove(key) else {
            return;
        };
        if let ServiceKind::ClusterIp(ips) = &old.kind {
            for ip in ips {
                remove_from_index(&mut self.service_ips, ip, key);
            }
        }
        if let Some(count) = self.namespaces.get_mut(&key.0) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                self.namespaces.remove(&key.0);
            }
        }
    }

    /// Adds or replaces an EndpointSlice. Returns false when the object cannot be indexed (no
    /// namespace, name or service-name label).
    pub fn apply_endpoint_slice(&mut self, slice: &EndpointSlice) -> bool {
        let (Some(namespace), Some(name)) = (
            slice.metadata.namespace.as_deref(),
            slice.metadata.name.as_deref(),
        ) else {
            return false;
        };
        let key = (namespace.to_string(), name.to_string());
        self.remove_slice(&key);
        let Some(entry) = slice_entry(slice) else {
            return false;
        };
        for endpoint in &entry.endpoints {
            for ip in &endpoint.addresses {
                self.endpoint_ips
                    .entry(*ip)
                    .or_default()
                    .insert(key.clone());
            }
        }
        self.slices_by_service
            .entry((key.0.clone(), entry.service.clone()))
            .or_default()
            .insert(key.1.clone());
        self.slices.insert(key, entry);
        true
    }

    /// Records that a namespace exists. CoreDNS answers `<ns>.svc.<domain>` with NODATA and
    /// pod names under `<ns>.pod.<domain>` only for existing namespaces; a namespace holding a
    /// Service exists even if its Namespace object was never applied.
    pub fn apply_namespace(&mut self, name: &str) {
        self.namespace_objects.insert(name.to_string());
    }

    /// Forgets a Namespace object.
    pub fn delete_namespace(&mut self, name: &str) {
        self.namespace_objects.remove(name);
    }

    fn namespace_exists(&self, name: &str) -> bool {
        self.namespace_objects.contains(name) || self.namespaces.contains_key(name)
    }

    /// Removes an EndpointSlice.
    pub fn delete_endpoint_slice(&mut self, namespace: &str, name: &str) {
        self.remove_slice(&(namespace.to_string(), name.to_string()));
    }

    fn remove_slice(&mut self, key: &Key) {
        let Some(old) = self.slices.remove(key) else {
            return;
        };
        for endpoint in &old.endpoints {
            for ip in &endpoint.addresses {
                remove_from_index(&mut self.endpoint_ips, ip, key);
            }
        }
        let by_service = (key.0.clone(), old.service);
        if let Some(names) = self.slices_by_service.get_mut(&by_service) {
            names.remove(&key.1);
            if names.is_empty() {
                self.slices_by_service.remove(&by_service);
            }
        }
    }

    /// The zone's SOA record, as CoreDNS writes it: `ns.dns.<domain>`, `hostmaster.<domain>`,
    /// refresh 7200, retry 1800, expire 86400, minimum and TTL the record TTL.
    pub fn soa(&self) -> Record {
        let mname = self.child(&["ns", "dns"]);
        let rname = self.child(&["hostmaster"]);
        Record::from_rdata(
            self.domain.clone(),
            self.ttl.min(300),
            RData::SOA(SOA::new(
                mname,
                rname,
                self.serial,
                SOA_REFRESH,
                SOA_RETRY,
                SOA_EXPIRE,
                self.ttl,
            )),
        )
    }

    /// Answers a question for a name inside the zone (callers check [`Self::is_in_zone`]; a
    /// name outside it is NXDOMAIN here).
    pub fn answer(&self, name: &Name, query_type: RecordType) -> ZoneAnswer {
        let mut answer = ZoneAnswer {
            response_code: ResponseCode::NoError,
            answers: Vec::new(),
            authorities: Vec::new(),
            additionals: Vec::new(),
            external_target: None,
        };
        let mut owner = name.to_lowercase();
        owner.set_fqdn(true);
        for _ in 0..MAX_CNAME_CHAIN {
            match self.resolve(&owner) {
                Resolved::Missing => {
                    // Also after a CNAME: the code speaks of the last name in the chain.
                    answer.response_code = ResponseCode::NXDomain;
                    answer.authorities.push(self.soa());
                    return answer;
                }
                Resolved::Cname(target) => {
                    answer.answers.push(Record::from_rdata(
                        owner.clone(),
                        self.ttl,
                        RData::CNAME(CNAME(target.clone())),
                    ));
                    if query_type == RecordType::CNAME {
                        return answer;
                    }
                    if !self.is_in_zone(&target) {
                        answer.external_target = Some(target);
                        return answer;
                    }
                    owner = target.to_lowercase();
                }
                resolved => {
                    self.fill(&owner, resolved, query_type, &mut answer);
                    if answer.answers.is_empty() {
                        answer.authorities.push(self.soa());
                    }
                    return answer;
                }
            }
        }
        answer
    }

    /// Answers a PTR question for a name under `in-addr.arpa.` or `ip6.arpa.`.
    pub fn answer_reverse(&self, name: &Name) -> ReverseAnswer {
        let Some(ip) = arpa_address(name) else {
            return ReverseAnswer::NotInCluster;
        };
        let names = self.names_for_address(ip);
        if names.is_empty() {
            return ReverseAnswer::NotInCluster;
        }
        let answers = names
            .into_iter()
            .map(|target| Record::from_rdata(name.clone(), self.ttl, RData::PTR(PTR(target))))
            .collect();
        ReverseAnswer::Found(ZoneAnswer {
            response_code: ResponseCode::NoError,
            answers,
            authorities: Vec::new(),
            additionals: Vec::new(),
            external_target: None,
        })
    }

    /// The names an address is published under: a Service's name for a cluster IP, else each
    /// endpoint name for an endpoint address.
    fn names_for_address(&self, ip: IpAddr) -> Vec<Name> {
        if let Some(keys) = self.service_ips.get(&ip) {
            let names: Vec<Name> = keys
                .iter()
                .map(|(ns, svc)| self.child(&[svc, ns, "svc"]))
                .collect();
            if !names.is_empty() {
                return names;
            }
        }
        let mut names = BTreeSet::new();
        for key in self.endpoint_ips.get(&ip).into_iter().flatten() {
            let Some(slice) = self.slices.get(key) else {
                continue;
            };
            let publish_all = self
                .services
                .get(&(key.0.clone(), slice.service.clone()))
                .is_some_and(|s| s.publish_not_ready);
            for endpoint in &slice.endpoints {
                if endpoint.addresses.contains(&ip) && (endpoint.ready || publish_all) {
                    let label = endpoint_label(endpoint.hostname.as_deref(), ip);
                    names.insert(self.child(&[&label, &slice.service, &key.0, "svc"]));
                }
            }
        }
        names.into_iter().collect()
    }

    /// `labels` (innermost first) under the cluster domain.
    fn child(&self, labels: &[&str]) -> Name {
        let mut name =
            Name::from_labels(labels.iter().map(|l| l.as_bytes())).unwrap_or_else(|_| Name::root());
        name.set_fqdn(false);
        name.append_domain(&self.domain)
            .unwrap_or_else(|_| self.domain.clone())
    }

    /// What a lowercase name inside the zone is.
    fn resolve(&self, name: &Name) -> Resolved {
        if !self.is_in_zone(name) {
            return Resolved::Missing;
        }
        let Some(depth) =
            usize::from(name.num_labels()).checked_sub(usize::from(self.domain.num_labels()))
        else {
            return Resolved::Missing;
        };
        let labels: Vec<String> = name
            .iter()
            .take(depth)
            .map(|l| String::from_utf8_lossy(l).into_owned())
            .collect();
        let parts: Vec<&str> = labels.iter().map(String::as_str).collect();
        match parts.as_slice() {
            [] => Resolved::Apex,
            ["dns-version"] => Resolved::Version,
            ["svc"] | ["pod"] => Resolved::Empty,
            [namespace, "svc"] | [namespace, "pod"] => {
                if self.namespace_exists(namespace) {
                    Resolved::Empty
                } else {
                    Resolved::Missing
                }
            }
            [service, namespace, "svc"] => self.resolve_service(name, namespace, service),
            [endpoint, service, namespace, "svc"] => {
                self.resolve_endpoint(namespace, service, endpoint)
            }
            [port, protocol, service, namespace, "svc"] => {
                match (port.strip_prefix('_'), protocol.strip_prefix('_')) {
                    (Some(port), Some(protocol)) => {
                        self.resolve_port(namespace, service, port, protocol)
                    }
                    _ => Resolved::Missing,
                }
            }
            [address, namespace, "pod"] => match pod_address(address) {
                Some(ip) if self.namespace_exists(namespace) => Resolved::Targets(vec![Target {
                    host: name.clone(),
                    ip,
                    port: None,
                }]),
                _ => Resolved::Missing,
            },
            _ => Resolved::Missing,
        }
    }

    fn resolve_service(&self, name: &Name, namespace: &str, service: &str) -> Resolved {
        let key = (namespace.to_string(), service.to_string());
        let Some(entry) = self.services.get(&key) else {
            return Resolved::Missing;
        };
        match &entry.kind {
            ServiceKind::ExternalName(target) => Resolved::Cname(target.clone()),
            ServiceKind::ClusterIp(ips) => {
                let mut targets = Vec::new();
                for ip in ips {
                    if entry.ports.is_empty() {
                        targets.push(Target {
                            host: name.clone(),
                            ip: *ip,
                            port: None,
                        });
                    }
                    for port in &entry.ports {
                        targets.push(Target {
                            host: name.clone(),
                            ip: *ip,
                            port: Some(port.port),
                        });
                    }
                }
                Resolved::Targets(targets)
            }
            ServiceKind::Headless => {
                let targets = self.endpoint_targets(&key, entry, |_, _| true, |_| true);
                if targets.is_empty() {
                    Resolved::Missing
                } else {
                    Resolved::Targets(targets)
                }
            }
        }
    }

    fn resolve_endpoint(&self, namespace: &str, service: &str, endpoint: &str) -> Resolved {
        let key = (namespace.to_string(), service.to_string());
        let Some(entry) = self.services.get(&key) else {
            return Resolved::Missing;
        };
        let targets = self.endpoint_targets(&key, entry, |label, _| label == endpoint, |_| true);
        if targets.is_empty() {
            Resolved::Missing
        } else {
            Resolved::Targets(targets)
        }
    }

    fn resolve_port(&self, namespace: &str, service: &str, port: &str, protocol: &str) -> Resolved {
        let key = (namespace.to_string(), service.to_string());
        let Some(entry) = self.services.get(&key) else {
            return Resolved::Missing;
        };
        let matches = |p: &PortEntry| p.name == port && p.protocol == protocol;
        let targets = match &entry.kind {
            ServiceKind::ExternalName(target) => return Resolved::Cname(target.clone()),
            ServiceKind::ClusterIp(ips) => {
                let host = self.child(&[service, namespace, "svc"]);
                let mut targets = Vec::new();
                for p in entry.ports.iter().filter(|p| matches(p)) {
                    for ip in ips {
                        targets.push(Target {
                            host: host.clone(),
                            ip: *ip,
                            port: Some(p.port),
                        });
                    }
                }
                targets
            }
            ServiceKind::Headless => self.endpoint_targets(&key, entry, |_, _| true, matches),
        };
        if targets.is_empty() {
            Resolved::Missing
        } else {
            Resolved::Targets(targets)
        }
    }

    /// Every published endpoint of a Service passing `endpoint_filter` (on its label and
    /// address), once per slice port passing `port_filter` (once with no port if the slice
    /// has none).
    fn endpoint_targets(
        &self,
        key: &Key,
        entry: &ServiceEntry,
        endpoint_filter: impl Fn(&str, IpAddr) -> bool,
        port_filter: impl Fn(&PortEntry) -> bool,
    ) -> Vec<Target> {
        let mut targets = Vec::new();
        let Some(slice_names) = self.slices_by_service.get(key) else {
            return targets;
        };
        for slice_name in slice_names {
            let Some(slice) = self.slices.get(&(key.0.clone(), slice_name.clone())) else {
                continue;
            };
            let ports: Vec<Option<u16>> = if slice.ports.is_empty() {
                vec![None]
            } else {
                let matching: Vec<Option<u16>> = slice
                    .ports
                    .iter()
                    .filter(|p| port_filter(p))
                    .map(|p| Some(p.port))
                    .collect();
                if matching.is_empty() {
                    continue;
                }
                matching
            };
            for endpoint in &slice.endpoints {
                if !(endpoint.ready || entry.publish_not_ready) {
                    continue;
                }
                for ip in &endpoint.addresses {
                    let label = endpoint_label(endpoint.hostname.as_deref(), *ip);
                    if !endpoint_filter(&label, *ip) {
                        continue;
                    }
                    let host = self.child(&[&label, &key.1, &key.0, "svc"]);
                    for port in &ports {
                        targets.push(Target {
                            host: host.clone(),
                            ip: *ip,
                            port: *port,
                        });
                    }
                }
            }
        }
        targets
    }

    /// Writes the records of an existing name for `query_type` into `answer`.
    fn fill(
        &self,
        owner: &Name,
        resolved: Resolved,
        query_type: RecordType,
        answer: &mut ZoneAnswer,
    ) {
        match resolved {
            Resolved::Apex => match query_type {
                RecordType::SOA => answer.answers.push(self.soa()),
                RecordType::NS => answer.answers.push(Record::from_rdata(
                    self.domain.clone(),
                    self.ttl,
                    RData::NS(NS(self.child(&["ns", "dns"]))),
                )),
                _ => {}
            },
            Resolved::Version => {
                if query_type == RecordType::TXT {
                    answer.answers.push(Record::from_rdata(
                        owner.clone(),
                        self.ttl,
                        RData::TXT(TXT::new(vec![SCHEMA_VERSION.to_string()])),
                    ));
                }
            }
            Resolved::Targets(targets) => match query_type {
                RecordType::A | RecordType::AAAA => {
                    let mut seen = BTreeSet::new();
                    for target in &targets {
                        if seen.insert(target.ip) {
                            if let Some(record) = self.address_record(owner, target.ip, query_type)
                            {
                                answer.answers.push(record);
                            }
                        }
                    }
                }
                RecordType::SRV => self.fill_srv(owner, &targets, answer),
                _ => {}
            },
            Resolved::Empty | Resolved::Missing | Resolved::Cname(_) => {}
        }
    }

    fn fill_srv(&self, owner: &Name, targets: &[Target], answer: &mut ZoneAnswer) {
        let with_port: Vec<&Target> = targets.iter().filter(|t| t.port.is_some()).collect();
        let count = u16::try_from(with_port.len()).unwrap_or(u16::MAX).max(1);
        // CoreDNS shares a weight of 100 among the records of one priority, at least 1 each.
        let weight = (100 / count).max(1);
        let mut seen_srv = BTreeSet::new();
        let mut seen_address = BTreeSet::new();
        for target in with_port {
            let port = target.port.unwrap_or_default();
            if seen_srv.insert((target.host.clone(), port)) {
                answer.answers.push(Record::from_rdata(
                    owner.clone(),
                    self.ttl,
                    RData::SRV(SRV::new(0, weight, port, target.host.clone())),
                ));
            }
            if seen_address.insert((target.host.clone(), target.ip)) {
                let record_type = match target.ip {
                    IpAddr::V4(_) => RecordType::A,
                    IpAddr::V6(_) => RecordType::AAAA,
                };
                if let Some(record) = self.address_record(&target.host, target.ip, record_type) {
                    answer.additionals.push(record);
                }
            }
        }
    }

    fn address_record(&self, owner: &Name, ip: IpAddr, record_type: RecordType) -> Option<Record> {
        let data = match (ip, record_type) {
            (IpAddr::V4(v4), RecordType::A) => RData::A(A(v4)),
            (IpAddr::V6(v6), RecordType::AAAA) => RData::AAAA(AAAA(v6)),
            _ => return None,
        };
        Some(Record::from_rdata(owner.clone(), self.ttl, data))
    }
}

fn remove_from_index(index: &mut HashMap<IpAddr, BTreeSet<Key>>, ip: &IpAddr, key: &Key) {
    if let Some(keys) = index.get_mut(ip) {
        keys.remove(key);
        if keys.is_empty() {
            index.remove(ip);
        }
    }
}

fn service_entry(service: &Service) -> ServiceEntry {
    let spec = service.spec.clone().unwrap_or_default();
    let ports = spec
        .ports
        .iter()
        .flatten()
        .filter_map(|p| {
            Some(PortEntry {
                name: p.name.clone().unwrap_or_default(),
                port: u16::try_from(p.port).ok()?,
                protocol: p.protocol.as_deref().unwrap_or("TCP").to_ascii_lowercase(),
            })
        })
        .collect();
    let kind = if spec.type_.as_deref() == Some("ExternalName") {
        let target = spec
            .external_name
            .as_deref()
            .and_then(|n| Name::from_ascii(n.trim_end_matches('.')).ok())
            .map(|mut n| {
                n.set_fqdn(true);
                n
            });
        match target {
            Some(target) => ServiceKind::ExternalName(target),
            None => ServiceKind::ClusterIp(Vec::new()),
        }
    } else if spec.cluster_ip.as_deref() == Some("None") {
        ServiceKind::Headless
    } else {
        let mut ips: Vec<IpAddr> = spec
            .cluster_ips
            .iter()
            .flatten()
            .filter_map(|ip| ip.parse().ok())
            .collect();
        if ips.is_empty() {
            ips.extend(
                spec.cluster_ip
                    .as_deref()
                    .and_then(|ip| ip.parse::<IpAddr>().ok()),
            );
        }
        ServiceKind::ClusterIp(ips)
    };
    ServiceEntry {
        kind,
        ports,
        publish_not_ready: spec.publish_not_ready_addresses.unwrap_or(false),
    }
}

fn slice_entry(slice: &EndpointSlice) -> Option<SliceEntry> {
    let service = slice
        .metadata
        .labels
        .as_ref()?
        .get(SERVICE_NAME_LABEL)?
        .clone();
    let ports = slice
        .ports
        .iter()
        .flatten()
        .filter_map(|p| {
            Some(PortEntry {
                name: p.name.clone().unwrap_or_default(),
                port: u16::try_from(p.port?).ok()?,
                protocol: p.protocol.as_deref().unwrap_or("TCP").to_ascii_lowercase(),
            })
        })
        .collect();
    let endpoints = slice
        .endpoints
        .iter()
        .flatten()
        .map(|e| EndpointEntry {
            addresses: e.addresses.iter().filter_map(|a| a.parse().ok()).collect(),
            hostname: e.hostname.clone().filter(|h| !h.is_empty()),
            // The API treats an unknown readiness as ready.
            ready: e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true),
        })
        .collect();
    Some(SliceEntry {
        service,
        ports,
        endpoints,
    })
}

/// An endpoint's label under its Service: its hostname, or its address with dashes.
fn endpoint_label(hostname: Option<&str>, ip: IpAddr) -> String {
    match hostname {
        Some(hostname) => hostname.to_ascii_lowercase(),
        None => dashed(ip),
    }
}

/// `10.42.0.5` → `10-42-0-5`; `fd00::5` → `fd00--5`.
pub fn dashed(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string().replace('.', "-"),
        IpAddr::V6(v6) => v6.to_string().replace(':', "-"),
    }
}

/// The address a pod label spells: `10-42-0-5` or `fd00--5`.
fn pod_address(label: &str) -> Option<IpAddr> {
    if label.contains('.') || label.contains(':') {
        return None;
    }
    if let Ok(v4) = label.replace('-', ".").parse::<Ipv4Addr>() {
        return Some(IpAddr::V4(v4));
    }
    label
        .replace('-', ":")
        .parse::<Ipv6Addr>()
        .ok()
        .map(IpAddr::V6)
}

/// The single address a reverse name stands for, if it is a complete one.
fn arpa_address(name: &Name) -> Option<IpAddr> {
    let net = name.parse_arpa_name().ok()?;
    let full = match net.addr() {
        IpAddr::V4(_) => 32,
        IpAddr::V6(_) => 128,
    };
    (net.prefix_len() == full).then(|| net.addr())
}

/// Counts of what the zone holds, for logs and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ZoneSize {
    /// Services indexed.
    pub services: usize,
    /// EndpointSlices indexed.
    pub endpoint_slices: usize,
}

impl ClusterZone {
    /// How many objects the zone holds.
    pub fn size(&self) -> ZoneSize {
        ZoneSize {
            services: self.services.len(),
            endpoint_slices: self.slices.len(),
        }
    }
}

#[cfg(test)]
#[path = "model_tests.rs"]
mod tests;
