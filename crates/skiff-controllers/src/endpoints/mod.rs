//! The Endpoints controller's planner (upstream `pkg/controller/endpoint`).
//!
//! [`plan`] takes one Service, the pods of its namespace and the Endpoints object of the same
//! name (if any) and returns the write one `syncService` would make: the Endpoints object with
//! one address per selected pod that has an IP, in `addresses` when the pod is Ready (or the
//! Service publishes not-ready addresses) and in `notReadyAddresses` otherwise, grouped into
//! subsets by the ports they serve ([`repack_subsets`]). Pods being deleted are left out unless
//! the Service publishes not-ready addresses; EndpointSlices keep them, flagged terminating
//! (see [`crate::endpointslice`]).
//!
//! Differences from upstream, deliberate: subsets and the ports inside a subset are sorted by
//! their content rather than by an MD5 of Go's printed form, so the order is stable but not
//! byte-identical to Kubernetes'.

pub mod controller;
pub mod pods;
pub mod trigger;
pub mod written;

use std::collections::{BTreeMap, BTreeSet};

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{
    EndpointAddress, EndpointPort, EndpointSubset, Endpoints, Pod, Service,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use pods::{
    find_port, is_headless, is_pod_ready, is_service_ip_set, managed_selector, pod_ips,
    pod_ips_of_family, pod_node_name, pod_reference, selected_pods, should_pod_be_in_endpoints,
    should_set_hostname,
};

/// Label marking Endpoints and EndpointSlices of a headless Service (`v1.IsHeadlessService`).
pub const HEADLESS_SERVICE_LABEL: &str = "service.kubernetes.io/headless";
/// Label naming the controller that writes an Endpoints object (`LabelManagedBy`), so that
/// others (and the mirroring controller) leave it alone.
pub const MANAGED_BY_LABEL: &str = "endpoints.kubernetes.io/managed-by";
/// This controller's value of [`MANAGED_BY_LABEL`].
pub const MANAGED_BY_CONTROLLER: &str = "endpoint-controller";
/// Annotation with the time of the earliest change the write carries
/// (`v1.EndpointsLastChangeTriggerTime`).
pub const LAST_CHANGE_TRIGGER_TIME_ANNOTATION: &str =
    "endpoints.kubernetes.io/last-change-trigger-time";
/// Annotation set to `truncated` when an Endpoints object would hold more than
/// [`MAX_CAPACITY`] addresses (`v1.EndpointsOverCapacity`).
pub const OVER_CAPACITY_ANNOTATION: &str = "endpoints.kubernetes.io/over-capacity";
/// Most addresses one Endpoints object holds; larger Services are only complete in
/// EndpointSlices.
pub const MAX_CAPACITY: usize = 1000;

/// The write one sync makes.
#[derive(Debug, Clone, PartialEq)]
pub enum EndpointsWrite {
    /// No Endpoints object exists yet: create this one.
    Create(Endpoints),
    /// The stored object is out of date: replace it with this one (it carries the stored
    /// resourceVersion, so a concurrent change makes it conflict).
    Update(Endpoints),
}

/// The address of a pod as the Service's endpoints list it (`podToEndpointAddressForService`):
/// the pod IP of the Service's first IP family, with the node and a reference to the pod.
/// `None` when the pod has no IP of that family.
pub fn endpoint_address(service: &Service, pod: &Pod) -> Option<EndpointAddress> {
    let family = match service
        .spec
        .as_ref()
        .and_then(|s| s.ip_families.as_ref())
        .and_then(|f| f.first())
    {
        Some(family) => family.clone(),
        None => {
            // No families recorded: a headful Service's cluster IP says, else the pod's IP.
            let cluster_ip = service
                .spec
                .as_ref()
                .and_then(|s| s.cluster_ip.as_deref())
                .filter(|_| is_service_ip_set(service));
            let probe = cluster_ip.or_else(|| pod_ips(pod).first().copied());
            match probe {
                Some(ip) if pods::is_ipv6(ip) => "IPv6".to_string(),
                _ => "IPv4".to_string(),
            }
        }
    };
    let ip = pod_ips_of_family(pod, &family).first()?.to_string();
    let hostname = if should_set_hostname(pod, service) {
        pod.spec.as_ref().and_then(|s| s.hostname.clone())
    } else {
        None
    };
    Some(EndpointAddress {
        ip,
        hostname,
        node_name: pod_node_name(pod).map(str::to_string),
        target_ref: Some(pod_reference(pod)),
    })
}

/// The subsets the Service's endpoints should hold, repacked and sorted. Empty for a Service
/// the controller does not manage.
pub fn desired_subsets(service: &Service, pods: &[Pod]) -> Vec<EndpointSubset> {
    let publish_not_ready = publishes_not_ready(service);
    let service_ports = service
        .spec
        .as_ref()
        .and_then(|s| s.ports.clone())
        .unwrap_or_default();
    let mut subsets = Vec::new();
    for pod in selected_pods(service, pods) {
        if !should_pod_be_in_endpoints(pod, publish_not_ready) {
            continue;
        }
        let Some(address) = endpoint_address(service, pod) else {
            continue;
        };
        let ready = publish_not_ready || is_pod_ready(pod);
        let subset_of = |ports: Option<Vec<EndpointPort>>| EndpointSubset {
            addresses: ready.then(|| vec![address.clone()]),
            not_ready_addresses: (!ready).then(|| vec![address.clone()]),
            ports,
        };
        if service_ports.is_empty() {
            // Only a headless Service may have no ports; its endpoints then have none either.
            if is_headless(service) {
                subsets.push(subset_of(None));
            }
            continue;
        }
        for service_port in &service_ports {
            let Some(number) = find_port(pod, service_port) else {
                continue;
            };
            subsets.push(subset_of(Some(vec![EndpointPort {
                name: service_port.name.clone(),
                port: number,
                protocol: service_port.protocol.clone(),
                app_protocol: service_port.app_protocol.clone(),
            }])));
        }
    }
    repack_subsets(subsets)
}

fn publishes_not_ready(service: &Service) -> bool {
    service
        .spec
        .as_ref()
        .and_then(|s| s.publish_not_ready_addresses)
        .unwrap_or(false)
}

/// Identity of an address across subsets: its IP and the UID of what it points at.
type AddressKey = (String, String);

fn address_key(address: &EndpointAddress) -> AddressKey {
    (
        address.ip.clone(),
        address
            .target_ref
            .as_ref()
            .and_then(|r| r.uid.clone())
            .unwrap_or_default(),
    )
}

/// A port as an ordered, comparable key (name, port, protocol, appProtocol).
type PortKey = (String, i32, String, String);

fn port_key(port: &EndpointPort) -> PortKey {
    (
        port.name.clone().unwrap_or_default(),
        port.port,
        port.protocol.clone().unwrap_or_default(),
        port.app_protocol.clone().unwrap_or_default(),
    )
}

/// A port (absent for an address-only subset) and the readiness of each address serving it.
type PortAddresses = (Option<EndpointPort>, BTreeMap<AddressKey, bool>);

/// `RepackSubsets`: regroups subsets so that each holds exactly the addresses serving the same
/// set of ports, with an address not ready on a port if any input said so, then sorts
/// addresses by IP and UID, ports, and subsets, so equal content always prints the same.
pub fn repack_subsets(subsets: Vec<EndpointSubset>) -> Vec<EndpointSubset> {
    // The port of an address-only subset (headless, no ports) is kept apart as `None`.
    let mut all_addresses: BTreeMap<AddressKey, EndpointAddress> = BTreeMap::new();
    let mut ports: BTreeMap<Option<PortKey>, PortAddresses> = BTreeMap::new();
    for subset in subsets {
        let subset_ports: Vec<Option<EndpointPort>> = match subset.ports {
            Some(p) if !p.is_empty() => p.into_iter().map(Some).collect(),
            _ => vec![None],
        };
        let addresses = subset
            .addresses
            .into_iter()
            .flatten()
            .map(|a| (a, true))
            .chain(
                subset
                    .not_ready_addresses
                    .into_iter()
                    .flatten()
                    .map(|a| (a, false)),
            )
            .collect::<Vec<_>>();
        if addresses.is_empty() {
            continue;
        }
        for port in subset_ports {
            let entry = ports
                .entry(port.as_ref().map(port_key))
                .or_insert_with(|| (port.clone(), BTreeMap::new()));
            for (address, ready) in &addresses {
                let key = address_key(address);
                all_addresses
                    .entry(key.clone())
                    .or_insert_with(|| address.clone());
                // Not ready wins over ready.
                let was = entry.1.entry(key).or_insert(*ready);
                *was = *was && *ready;
            }
        }
    }

    // Group the ports by the exact (address, readiness) set serving them.
    let mut groups: BTreeMap<Vec<(AddressKey, bool)>, BTreeSet<Option<PortKey>>> = BTreeMap::new();
    let mut port_objects: BTreeMap<Option<PortKey>, Option<EndpointPort>> = BTreeMap::new();
    for (key, (port, addresses)) in ports {
        let set: Vec<(AddressKey, bool)> = addresses.into_iter().collect();
        groups.entry(set).or_default().insert(key.clone());
        port_objects.insert(key, port);
    }

    let mut repacked: Vec<EndpointSubset> = groups
        .into_iter()
        .map(|(addresses, port_keys)| {
            let pick = |ready: bool| -> Option<Vec<EndpointAddress>> {
                let picked: Vec<EndpointAddress> = addresses
                    .iter()
                    .filter(|(_, r)| *r == ready)
                    .filter_map(|(k, _)| all_addresses.get(k).cloned())
                    .collect();
                (!picked.is_empty()).then_some(picked)
            };
            let ports: Vec<EndpointPort> = port_keys
                .iter()
                .filter_map(|k| port_objects.get(k).cloned().flatten())
                .collect();
            EndpointSubset {
                addresses: pick(true),
                not_ready_addresses: pick(false),
                ports: (!ports.is_empty()).then_some(ports),
            }
        })
        .collect();
    repacked.sort_by_key(subset_sort_key);
    repacked
}

fn subset_sort_key(subset: &EndpointSubset) -> (Vec<PortKey>, Vec<AddressKey>, Vec<AddressKey>) {
    (
        subset.ports.iter().flatten().map(port_key).collect(),
        subset.addresses.iter().flatten().map(address_key).collect(),
        subset
            .not_ready_addresses
            .iter()
            .flatten()
            .map(address_key)
            .collect(),
    )
}

/// Subsets as compared for "did anything change": empty lists as absent, and references
/// without the pod's resourceVersion (a pod update that changes nothing else is no change).
fn normalized(subsets: Option<&Vec<EndpointSubset>>) -> Vec<EndpointSubset> {
    let clean = |addresses: &Option<Vec<EndpointAddress>>| -> Option<Vec<EndpointAddress>> {
        let list: Vec<EndpointAddress> = addresses
            .iter()
            .flatten()
            .cloned()
            .map(|mut a| {
                if let Some(r) = a.target_ref.as_mut() {
                    r.resource_version = None;
                }
                a
            })
            .collect();
        (!list.is_empty()).then_some(list)
    };
    subsets
        .into_iter()
        .flatten()
        .map(|s| EndpointSubset {
            addresses: clean(&s.addresses),
            not_ready_addresses: clean(&s.not_ready_addresses),
            ports: s.ports.clone().filter(|p| !p.is_empty()),
        })
        .collect()
}

/// `truncateEndpoints`: keeps at most [`MAX_CAPACITY`] addresses, ready ones first, each
/// subset keeping its share (rounded up) of what is kept. Returns whether it cut anything.
pub fn truncate_subsets(subsets: &mut [EndpointSubset]) -> bool {
    let count = |s: &EndpointSubset, ready: bool| {
        if ready {
            s.addresses.as_ref().map_or(0, Vec::len)
        } else {
            s.not_ready_addresses.as_ref().map_or(0, Vec::len)
        }
    };
    let total_ready: usize = subsets.iter().map(|s| count(s, true)).sum();
    let total_not_ready: usize = subsets.iter().map(|s| count(s, false)).sum();
    if total_ready + total_not_ready <= MAX_CAPACITY {
        return false;
    }
    let truncate_ready = total_ready > MAX_CAPACITY;
    let (room, total) = if truncate_ready {
        (MAX_CAPACITY, total_ready)
    } else {
        (MAX_CAPACITY - total_ready, total_not_ready)
    };
    let mut left = room;
    for subset in subsets.iter_mut() {
        let in_subset = count(subset, truncate_ready);
        let share = (in_subset * room).div_ceil(total.max(1)).min(left);
        if truncate_ready {
            if let Some(a) = subset.addresses.as_mut() {
                a.truncate(share);
            }
            subset.not_ready_addresses = None;
            left -= subset.addresses.as_ref().map_or(0, Vec::len);
        } else {
            if let Some(a) = subset.not_ready_addresses.as_mut() {
                a.truncate(share);
            }
            left -= subset.not_ready_addresses.as_ref().map_or(0, Vec::len);
        }
    }
    true
}

fn labels_without_headless(
    labels: Option<&BTreeMap<String, String>>,
) -> Option<BTreeMap<String, String>> {
    let mut labels = labels.cloned()?;
    labels.remove(HEADLESS_SERVICE_LABEL);
    labels.remove(MANAGED_BY_LABEL);
    Some(labels)
}

fn same_labels(a: Option<&BTreeMap<String, String>>, b: Option<&BTreeMap<String, String>>) -> bool {
    a.filter(|m| !m.is_empty()) == b.filter(|m| !m.is_empty())
}

/// What one sync of `service` writes to its Endpoints, given `pods` (the namespace's pods, or
/// any superset) and `current`, the stored Endpoints of the same name. `None` when nothing is
/// to be written: the Service is not managed (no selector, or ExternalName) or its Endpoints
/// already hold the desired subsets and labels. `trigger_time` (from
/// [`trigger::TriggerTimeTracker`]) becomes the last-change-trigger-time annotation.
pub fn plan(
    service: &Service,
    pods: &[Pod],
    current: Option<&Endpoints>,
    trigger_time: Option<Timestamp>,
) -> Option<EndpointsWrite> {
    managed_selector(service)?;
    let mut subsets = desired_subsets(service, pods);

    let current_labels = current.and_then(|c| labels_without_headless(c.metadata.labels.as_ref()));
    if let Some(existing) = current {
        let over_capacity_marked = existing
            .metadata
            .annotations
            .as_ref()
            .is_some_and(|a| a.contains_key(OVER_CAPACITY_ANNOTATION));
        let existing_count: usize = existing
            .subsets
            .iter()
            .flatten()
            .map(|s| {
                s.addresses.as_ref().map_or(0, Vec::len)
                    + s.not_ready_addresses.as_ref().map_or(0, Vec::len)
            })
            .sum();
        let capacity_annotation_right = existing_count <= MAX_CAPACITY && !over_capacity_marked;
        let managed_by_us = existing
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(MANAGED_BY_LABEL))
            .is_some_and(|v| v == MANAGED_BY_CONTROLLER);
        if normalized(existing.subsets.as_ref()) == normalized(Some(&subsets))
            && same_labels(current_labels.as_ref(), service.metadata.labels.as_ref())
            && managed_by_us
            && capacity_annotation_right
        {
            return None;
        }
    }

    let mut endpoints = current.cloned().unwrap_or_else(|| Endpoints {
        metadata: ObjectMeta {
            name: service.metadata.name.clone(),
            namespace: service.metadata.namespace.clone(),
            ..Default::default()
        },
        subsets: None,
    });
    let mut annotations = endpoints.metadata.annotations.take().unwrap_or_default();
    match trigger_time {
        Some(time) => {
            annotations.insert(
                LAST_CHANGE_TRIGGER_TIME_ANNOTATION.to_string(),
                time.to_string(),
            );
        }
        None => {
            annotations.remove(LAST_CHANGE_TRIGGER_TIME_ANNOTATION);
        }
    }
    if truncate_subsets(&mut subsets) {
        annotations.insert(
            OVER_CAPACITY_ANNOTATION.to_string(),
            "truncated".to_string(),
        );
    } else {
        annotations.remove(OVER_CAPACITY_ANNOTATION);
    }
    endpoints.metadata.annotations = (!annotations.is_empty()).then_some(annotations);

    let mut labels = service.metadata.labels.clone().unwrap_or_default();
    if is_service_ip_set(service) {
        labels.remove(HEADLESS_SERVICE_LABEL);
    } else {
        labels.insert(HEADLESS_SERVICE_LABEL.to_string(), String::new());
    }
    labels.insert(
        MANAGED_BY_LABEL.to_string(),
        MANAGED_BY_CONTROLLER.to_string(),
    );
    endpoints.metadata.labels = Some(labels);
    endpoints.subsets = (!subsets.is_empty()).then_some(subsets);

    Some(if current.is_some() {
        EndpointsWrite::Update(endpoints)
    } else {
        EndpointsWrite::Create(endpoints)
    })
}
