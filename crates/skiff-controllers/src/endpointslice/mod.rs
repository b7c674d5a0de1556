//! The EndpointSlice controller's planner (upstream `pkg/controller/endpointslice` and the
//! reconciler in `staging/src/k8s.io/endpointslice`).
//!
//! [`plan`] takes one Service, the pods of its namespace, the nodes' zones and the slices this
//! controller already manages for the Service, and returns the slices to create, update and
//! delete. Every selected pod with an IP becomes one endpoint, grouped into slices by the set of
//! ports it serves, at most [`MAX_ENDPOINTS_PER_SLICE`] per slice. Unlike Endpoints, a pod
//! being deleted stays listed with `ready: false`, `serving` telling whether it still passes
//! its readiness probe and `terminating: true`: a proxy can keep using it as a last resort and
//! knows to stop sending it new traffic otherwise.
//!
//! Existing slices are reused: an endpoint that did not change stays where it is, a slice with
//! changes is rewritten in place, leftover endpoints fill slices that change anyway first, and
//! a slice about to be deleted is recycled instead of creating a new one. A Service selecting
//! nothing keeps one empty "placeholder" slice, as upstream.
//!
//! Differences from upstream, deliberate: endpoints are placed in a stable order (by address
//! and pod) instead of Go's random set order; ports are sorted by name, number and protocol;
//! slice labels are rewritten whenever they differ from the Service's (upstream misses labels
//! added to the Service); topology hints are not computed.

pub mod controller;

use std::collections::{BTreeMap, BTreeSet};

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

use crate::endpoints::pods::{
    find_port, is_headless, is_pod_ready, is_pod_terminating, is_service_ip_set, managed_selector,
    pod_ips_of_family, pod_node_name, pod_reference, selected_pods, service_ip_families,
    should_pod_be_in_endpoints, should_set_hostname,
};
use crate::endpoints::{HEADLESS_SERVICE_LABEL, LAST_CHANGE_TRIGGER_TIME_ANNOTATION};

/// Label naming the Service a slice belongs to (`discovery.LabelServiceName`).
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
/// Label naming the controller managing a slice (`discovery.LabelManagedBy`).
pub const MANAGED_BY_LABEL: &str = "endpointslice.kubernetes.io/managed-by";
/// This controller's name in [`MANAGED_BY_LABEL`]: the upstream one, so tools that look for
/// controller-managed slices find these.
pub const CONTROLLER_NAME: &str = "endpointslice-controller.k8s.io";
/// Most endpoints in one slice (kube-controller-manager's `--max-endpoints-per-slice`).
pub const MAX_ENDPOINTS_PER_SLICE: usize = 100;
/// Node label whose value becomes an endpoint's `zone`.
pub const ZONE_LABEL: &str = "topology.kubernetes.io/zone";

/// Everything one sync of one Service plans from.
#[derive(Debug, Clone, Copy)]
pub struct SliceInputs<'a> {
    /// The Service.
    pub service: &'a Service,
    /// Pods of its namespace (a superset is fine; the selector is applied here).
    pub pods: &'a [Pod],
    /// The slices labelled as this controller's for this Service.
    pub existing: &'a [EndpointSlice],
    /// Known nodes by name, with their zone label if they have one. A pod on a node missing
    /// here is left out (and reported) unless the Service publishes not-ready addresses.
    pub nodes: &'a BTreeMap<String, Option<String>>,
    /// The last-change-trigger-time to annotate written slices with.
    pub trigger_time: Option<Timestamp>,
    /// Most endpoints per slice.
    pub max_endpoints_per_slice: usize,
}

/// The writes one sync makes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SlicePlan {
    /// Slices to create (they carry `generateName`).
    pub create: Vec<EndpointSlice>,
    /// Slices to replace, each carrying the stored resourceVersion.
    pub update: Vec<EndpointSlice>,
    /// Slices to delete.
    pub delete: Vec<EndpointSlice>,
    /// Pods left out because their node is unknown; the sync should be retried.
    pub skipped_pods: Vec<String>,
}

impl SlicePlan {
    /// Whether the plan writes nothing.
    pub fn is_empty(&self) -> bool {
        self.create.is_empty() && self.update.is_empty() && self.delete.is_empty()
    }
}

/// Identity of an endpoint (upstream `endpointHash`): its addresses, hostname and the pod it
/// stands for. Two endpoints with the same identity are the same entry, possibly changed.
type EndpointKey = (Vec<String>, String, String, String);

fn endpoint_key(endpoint: &Endpoint) -> EndpointKey {
    let mut addresses = endpoint.addresses.clone();
    addresses.sort();
    let target = endpoint.target_ref.as_ref();
    (
        addresses,
        endpoint.hostname.clone().unwrap_or_default(),
        target.and_then(|r| r.namespace.clone()).unwrap_or_default(),
        target.and_then(|r| r.name.clone()).unwrap_or_default(),
    )
}

/// A port as an ordered, comparable key (name, port, protocol, appProtocol).
type PortKey = (String, i32, String, String);

fn port_key(port: &EndpointPort) -> PortKey {
    (
        port.name.clone().unwrap_or_default(),
        port.port.unwrap_or(0),
        port.protocol.clone().unwrap_or_default(),
        port.app_protocol.clone().unwrap_or_default(),
    )
}

fn sorted_ports(mut ports: Vec<EndpointPort>) -> Vec<EndpointPort> {
    ports.sort_by_key(port_key);
    ports
}

fn port_map_key(ports: &[EndpointPort]) -> Vec<PortKey> {
    let mut keys: Vec<PortKey> = ports.iter().map(port_key).collect();
    keys.sort();
    keys
}

/// `getEndpointPorts`: the Service's ports as this pod serves them; a port whose named target
/// the pod lacks is left out (the pod stays, with fewer ports). Sorted.
pub fn endpoint_ports(service: &Service, pod: &Pod) -> Vec<EndpointPort> {
    let service_ports = service
        .spec
        .as_ref()
        .and_then(|s| s.ports.as_ref())
        .map(Vec::as_slice)
        .unwrap_or_default();
    if service_ports.is_empty() && is_headless(service) {
        return Vec::new();
    }
    let ports = service_ports
        .iter()
        .filter_map(|sp| {
            let number = find_port(pod, sp)?;
            Some(EndpointPort {
                name: Some(sp.name.clone().unwrap_or_default()),
                port: Some(number),
                protocol: Some(sp.protocol.clone().unwrap_or_else(|| "TCP".to_string())),
                app_protocol: sp.app_protocol.clone(),
            })
        })
        .collect();
    sorted_ports(ports)
}

fn publishes_not_ready(service: &Service) -> bool {
    service
        .spec
        .as_ref()
        .and_then(|s| s.publish_not_ready_addresses)
        .unwrap_or(false)
}

/// `podToEndpoint`: the pod as an endpoint of one address family. `serving` is the pod's
/// readiness, `terminating` whether its deletion started, and `ready` is serving and not
/// terminating (or always true when the Service publishes not-ready addresses).
pub fn pod_to_endpoint(pod: &Pod, zone: Option<&str>, service: &Service, family: &str) -> Endpoint {
    let serving = is_pod_ready(pod);
    let terminating = is_pod_terminating(pod);
    let ready = publishes_not_ready(service) || (serving && !terminating);
    Endpoint {
        addresses: pod_ips_of_family(pod, family)
            .into_iter()
            .map(str::to_string)
            .collect(),
        conditions: Some(EndpointConditions {
            ready: Some(ready),
            serving: Some(serving),
            terminating: Some(terminating),
        }),
        hostname: if should_set_hostname(pod, service) {
            pod.spec.as_ref().and_then(|s| s.hostname.clone())
        } else {
            None
        },
        node_name: pod_node_name(pod).map(str::to_string),
        target_ref: Some(pod_reference(pod)),
        zone: zone.filter(|z| !z.is_empty()).map(str::to_string),
        ..Default::default()
    }
}

/// The labels a slice of `service` carries (`setEndpointSliceLabels`): the Service's own,
/// without the reserved keys, plus the service name, the managing controller, and the
/// headless mark for a Service without a cluster IP.
pub fn slice_labels(service: &Service) -> BTreeMap<String, String> {
    let reserved = [SERVICE_NAME_LABEL, MANAGED_BY_LABEL, HEADLESS_SERVICE_LABEL];
    let mut labels: BTreeMap<String, String> = service
        .metadata
        .labels
        .iter()
        .flatten()
        .filter(|(k, _)| !reserved.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if !is_service_ip_set(service) {
        labels.insert(HEADLESS_SERVICE_LABEL.to_string(), String::new());
    }
    labels.insert(
        SERVICE_NAME_LABEL.to_string(),
        service.metadata.name.clone().unwrap_or_default(),
    );
    labels.insert(MANAGED_BY_LABEL.to_string(), CONTROLLER_NAME.to_string());
    labels
}

/// Whether a slice's controlling owner is this very Service (same UID), not an earlier one of
/// the same name.
pub fn owned_by(slice: &EndpointSlice, service: &Service) -> bool {
    let uid = service.metadata.uid.as_deref();
    slice.metadata.owner_references.iter().flatten().any(|r| {
        r.controller == Some(true)
            && r.kind == "Service"
            && r.api_version == "v1"
            && Some(r.uid.as_str()) == uid
    })
}

fn new_slice(service: &Service, family: &str, ports: Vec<EndpointPort>) -> EndpointSlice {
    let name = service.metadata.name.clone().unwrap_or_default();
    EndpointSlice {
        metadata: ObjectMeta {
            generate_name: Some(format!("{name}-")),
            namespace: service.metadata.namespace.clone(),
            labels: Some(slice_labels(service)),
            owner_references: Some(vec![OwnerReference {
                api_version: "v1".to_string(),
                kind: "Service".to_string(),
                name,
                uid: service.metadata.uid.clone().unwrap_or_default(),
                controller: Some(true),
                block_owner_deletion: Some(true),
            }]),
            ..Default::default()
        },
        address_type: family.to_string(),
        endpoints: None,
        ports: (!ports.is_empty()).then_some(ports),
    }
}

/// How many endpoints a slice lists (none when the list is absent).
fn endpoint_count(slice: &EndpointSlice) -> usize {
    slice.endpoints.as_ref().map_or(0, Vec::len)
}

fn is_placeholder_of(slice: &EndpointSlice, service: &Service, family: &str) -> bool {
    endpoint_count(slice) == 0
        && slice.ports.as_ref().is_none_or(Vec::is_empty)
        && slice.address_type == family
        && slice.metadata.labels.as_ref() == Some(&slice_labels(service))
        && owned_by(slice, service)
}

fn set_trigger_time(slice: &mut EndpointSlice, trigger_time: Option<Timestamp>) {
    let mut annotations = slice.metadata.annotations.take().unwrap_or_default();
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
    slice.metadata.annotations = (!annotations.is_empty()).then_some(annotations);
}

/// What one sync of a Service writes to its EndpointSlices.
pub fn plan(inputs: &SliceInputs<'_>) -> SlicePlan {
    let service = inputs.service;
    let live: Vec<&EndpointSlice> = inputs
        .existing
        .iter()
        .filter(|s| s.metadata.deletion_timestamp.is_none())
        .collect();
    let mut result = SlicePlan::default();
    if managed_selector(service).is_none() {
        // The selector was removed (or the Service became ExternalName): the slices this
        // controller made no longer describe anything.
        result.delete = live.into_iter().cloned().collect();
        return result;
    }

    let families = service_ip_families(service);
    let mut by_family: BTreeMap<String, Vec<&EndpointSlice>> = BTreeMap::new();
    for slice in live {
        if families.contains(&slice.address_type) {
            by_family
                .entry(slice.address_type.clone())
                .or_default()
                .push(slice);
        } else {
            result.delete.push(slice.clone());
        }
    }
    let mut skipped = BTreeSet::new();
    for family in &families {
        let existing = by_family.remove(family).unwrap_or_default();
        let family_plan = plan_family(inputs, family, &existing, &mut skipped);
        result.create.extend(family_plan.create);
        result.update.extend(family_plan.update);
        result.delete.extend(family_plan.delete);
    }
    result.skipped_pods = skipped.into_iter().collect();
    finalize(service, inputs.trigger_time, result)
}

/// The ports of one port set and the endpoints serving exactly those.
type PortEndpoints = (Vec<EndpointPort>, BTreeMap<EndpointKey, Endpoint>);

/// `reconcileByAddressType`: the slices of one address family.
fn plan_family(
    inputs: &SliceInputs<'_>,
    family: &str,
    existing: &[&EndpointSlice],
    skipped: &mut BTreeSet<String>,
) -> SlicePlan {
    let service = inputs.service;
    let mut plan = SlicePlan::default();

    let mut existing_by_ports: BTreeMap<Vec<PortKey>, Vec<EndpointSlice>> = BTreeMap::new();
    for slice in existing {
        if owned_by(slice, service) {
            let key = port_map_key(slice.ports.as_deref().unwrap_or_default());
            existing_by_ports
                .entry(key)
                .or_default()
                .push((*slice).clone());
        } else {
            plan.delete.push((*slice).clone());
        }
    }

    let mut desired_by_ports: BTreeMap<Vec<PortKey>, PortEndpoints> = BTreeMap::new();
    for pod in selected_pods(service, inputs.pods) {
        if !should_pod_be_in_endpoints(pod, true) {
            continue;
        }
        let zone = match pod_node_name(pod).map(|n| inputs.nodes.get(n)) {
            Some(Some(zone)) => zone.as_deref(),
            _ => {
                if !publishes_not_ready(service) {
                    skipped.insert(pod.metadata.name.clone().unwrap_or_default());
                    continue;
                }
                None
            }
        };
        let ports = endpoint_ports(service, pod);
        let endpoint = pod_to_endpoint(pod, zone, service, family);
        if endpoint.addresses.is_empty() {
            continue;
        }
        let entry = desired_by_ports
            .entry(port_map_key(&ports))
            .or_insert_with(|| (ports, BTreeMap::new()));
        entry.1.insert(endpoint_key(&endpoint), endpoint);
    }

    for (key, (ports, desired)) in desired_by_ports.iter_mut() {
        let slices = existing_by_ports.get(key).cloned().unwrap_or_default();
        let (create, update, delete) = plan_port_mapping(
            service,
            family,
            ports,
            &slices,
            std::mem::take(desired),
            inputs.max_endpoints_per_slice.max(1),
        );
        plan.create.extend(create);
        plan.update.extend(update);
        plan.delete.extend(delete);
    }
    for (key, slices) in existing_by_ports {
        if !desired_by_ports.contains_key(&key) {
            plan.delete.extend(slices);
        }
    }

    // A Service with no endpoints of this family keeps one empty placeholder slice.
    if existing.len() == plan.delete.len() && plan.create.is_empty() {
        if plan.delete.len() == 1 && is_placeholder_of(&plan.delete[0], service, family) {
            plan.delete.clear();
        } else {
            plan.create.push(new_slice(service, family, Vec::new()));
        }
    }
    plan
}

/// `reconcileByPortMapping`: fits the desired endpoints of one port set into the existing
/// slices of that port set, changing as few slices as possible.
fn plan_port_mapping(
    service: &Service,
    family: &str,
    ports: &[EndpointPort],
    existing: &[EndpointSlice],
    mut desired: BTreeMap<EndpointKey, Endpoint>,
    max_per_slice: usize,
) -> (Vec<EndpointSlice>, Vec<EndpointSlice>, Vec<EndpointSlice>) {
    let labels = slice_labels(service);
    let mut by_name: BTreeMap<String, EndpointSlice> = BTreeMap::new();
    let mut unchanged: BTreeSet<String> = BTreeSet::new();
    let mut to_update: BTreeSet<String> = BTreeSet::new();
    let mut to_delete: BTreeSet<String> = BTreeSet::new();

    // 1. Keep wanted endpoints where they are, drop unwanted ones, refresh changed ones.
    for slice in existing {
        let name = slice.metadata.name.clone().unwrap_or_default();
        let mut kept = Vec::new();
        let mut changed = false;
        for endpoint in slice.endpoints.iter().flatten() {
            if let Some(want) = desired.remove(&endpoint_key(endpoint)) {
                if !same_endpoint(&want, endpoint) {
                    changed = true;
                }
                kept.push(want);
            }
        }
        let labels_changed = slice.metadata.labels.as_ref() != Some(&labels);
        if changed || kept.len() != endpoint_count(slice) {
            if kept.is_empty() {
                to_delete.insert(name.clone());
                by_name.insert(name, slice.clone());
            } else {
                let mut updated = slice.clone();
                updated.endpoints = Some(kept);
                updated.metadata.labels = Some(labels.clone());
                to_update.insert(name.clone());
                by_name.insert(name, updated);
            }
        } else if labels_changed {
            let mut updated = slice.clone();
            updated.metadata.labels = Some(labels.clone());
            to_update.insert(name.clone());
            by_name.insert(name, updated);
        } else {
            unchanged.insert(name.clone());
            by_name.insert(name, slice.clone());
        }
    }

    // 2. Fill the slices being rewritten anyway, fullest first.
    if !desired.is_empty() && !to_update.is_empty() {
        let mut order: Vec<String> = to_update.iter().cloned().collect();
        order.sort_by_key(|n| std::cmp::Reverse(by_name.get(n).map_or(0, endpoint_count)));
        for name in order {
            let Some(slice) = by_name.get_mut(&name) else {
                continue;
            };
            while endpoint_count(slice) < max_per_slice {
                let Some((_, endpoint)) = desired.pop_first() else {
                    break;
                };
                slice.endpoints.get_or_insert_with(Vec::new).push(endpoint);
            }
        }
    }

    // 3. Put what is left into the unchanged slice it fits best, else into new slices.
    let mut create = Vec::new();
    while !desired.is_empty() {
        let mut target: Option<String> = None;
        if desired.len() < max_per_slice && !unchanged.is_empty() {
            let mut closest = max_per_slice;
            for name in &unchanged {
                let len = by_name.get(name).map_or(0, endpoint_count);
                let room = max_per_slice as i64 - (desired.len() + len) as i64;
                if room >= 0 && (room as usize) < closest {
                    closest = room as usize;
                    target = Some(name.clone());
                    if closest == 0 {
                        break;
                    }
                }
            }
        }
        match target.and_then(|name| by_name.get_mut(&name).map(|s| (name, s))) {
            Some((name, slice)) => {
                while endpoint_count(slice) < max_per_slice {
                    let Some((_, endpoint)) = desired.pop_first() else {
                        break;
                    };
                    slice.endpoints.get_or_insert_with(Vec::new).push(endpoint);
                }
                unchanged.remove(&name);
                to_update.insert(name);
            }
            None => {
                let mut slice = new_slice(service, family, ports.to_vec());
                while endpoint_count(&slice) < max_per_slice {
                    let Some((_, endpoint)) = desired.pop_first() else {
                        break;
                    };
                    slice.endpoints.get_or_insert_with(Vec::new).push(endpoint);
                }
                create.push(slice);
            }
        }
    }

    let pick = |names: &BTreeSet<String>| -> Vec<EndpointSlice> {
        names
            .iter()
            .filter_map(|n| by_name.get(n).cloned())
            .collect()
    };
    (create, pick(&to_update), pick(&to_delete))
}

/// `EndpointsEqualBeyondHash`: the same endpoint with the same conditions, placement and
/// reference (ignoring the pod's resourceVersion).
fn same_endpoint(a: &Endpoint, b: &Endpoint) -> bool {
    let reference = |e: &Endpoint| {
        e.target_ref.clone().map(|mut r| {
            r.resource_version = None;
            r
        })
    };
    let conditions = |e: &Endpoint| e.conditions.clone().unwrap_or_default();
    conditions(a) == conditions(b)
        && a.zone == b.zone
        && a.node_name == b.node_name
        && a.hints == b.hints
        && reference(a) == reference(b)
}

/// `finalize`: recycles slices due for deletion as the slices due for creation (same address
/// family, owned by this Service), creates nothing for a Service being deleted, and stamps
/// the trigger time on every written slice.
fn finalize(service: &Service, trigger_time: Option<Timestamp>, mut plan: SlicePlan) -> SlicePlan {
    let mut index = 0;
    while index < plan.delete.len() && !plan.create.is_empty() {
        let recyclable = {
            let old = &plan.delete[index];
            let new = &plan.create[plan.create.len() - 1];
            old.address_type == new.address_type && owned_by(old, service)
        };
        if recyclable {
            let old = plan.delete.remove(index);
            if let Some(mut slice) = plan.create.pop() {
                slice.metadata.name = old.metadata.name.clone();
                slice.metadata.generate_name = None;
                slice.metadata.resource_version = old.metadata.resource_version.clone();
                slice.metadata.uid = old.metadata.uid.clone();
                slice.metadata.creation_timestamp = old.metadata.creation_timestamp.clone();
                slice.metadata.annotations = old.metadata.annotations.clone();
                plan.update.push(slice);
            }
        } else {
            index += 1;
        }
    }
    if service.metadata.deletion_timestamp.is_some() {
        plan.create.clear();
    }
    for slice in plan.create.iter_mut().chain(plan.update.iter_mut()) {
        set_trigger_time(slice, trigger_time);
    }
    plan
}
