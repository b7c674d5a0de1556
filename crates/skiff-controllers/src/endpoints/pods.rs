//! What both endpoint controllers ask of a Service and its pods: whether the Service is theirs
//! to manage, which pods it selects, which of them belong in its endpoints, which address and
//! which port number each contributes (upstream `endpointsliceutil` and `podutil.FindPort`).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, ObjectReference, Pod, Service, ServicePort};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

pub use crate::replicaset::pods::is_pod_ready;

/// `spec.clusterIP` of a headless Service.
pub const CLUSTER_IP_NONE: &str = "None";

/// The selector of a Service the endpoint controllers manage. `None` for a Service they must
/// leave alone: one without a selector (its endpoints are written by hand, like
/// `default/kubernetes`) and an ExternalName Service (it has no endpoints at all). An empty
/// selector counts as none, as it does once Kubernetes has stored it.
pub fn managed_selector(service: &Service) -> Option<&BTreeMap<String, String>> {
    let spec = service.spec.as_ref()?;
    if spec.type_.as_deref() == Some("ExternalName") {
        return None;
    }
    spec.selector.as_ref().filter(|s| !s.is_empty())
}

/// Whether every `key=value` of a Service selector is among `labels`.
pub fn selector_matches(
    selector: &BTreeMap<String, String>,
    labels: Option<&BTreeMap<String, String>>,
) -> bool {
    selector
        .iter()
        .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
}

/// The pods of `pods` a Service selects; none when it has no selector.
pub fn selected_pods<'a>(service: &Service, pods: &'a [Pod]) -> Vec<&'a Pod> {
    let Some(selector) = managed_selector(service) else {
        return Vec::new();
    };
    let namespace = service.metadata.namespace.as_deref().unwrap_or("");
    pods.iter()
        .filter(|p| p.metadata.namespace.as_deref().unwrap_or("") == namespace)
        .filter(|p| selector_matches(selector, p.metadata.labels.as_ref()))
        .collect()
}

/// Whether the Service has a cluster IP (`helper.IsServiceIPSet`); one without is headless,
/// which the controllers mark with [`HEADLESS_SERVICE_LABEL`](super::HEADLESS_SERVICE_LABEL).
pub fn is_service_ip_set(service: &Service) -> bool {
    let ip = service
        .spec
        .as_ref()
        .and_then(|s| s.cluster_ip.as_deref())
        .unwrap_or("");
    !ip.is_empty() && ip != CLUSTER_IP_NONE
}

/// Whether the Service is headless (`clusterIP: None`).
pub fn is_headless(service: &Service) -> bool {
    service.spec.as_ref().and_then(|s| s.cluster_ip.as_deref()) == Some(CLUSTER_IP_NONE)
}

/// Whether the pod finished for good (phase Succeeded or Failed): it never serves again.
pub fn is_pod_terminal(pod: &Pod) -> bool {
    matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    )
}

/// Whether deletion of the pod has started (`metadata.deletionTimestamp` is set).
pub fn is_pod_terminating(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_some()
}

/// `ShouldPodBeInEndpoints`: a pod that has an IP and has not finished, and, unless
/// `include_terminating`, is not being deleted.
pub fn should_pod_be_in_endpoints(pod: &Pod, include_terminating: bool) -> bool {
    if is_pod_terminal(pod) {
        return false;
    }
    if pod_ips(pod).is_empty() {
        return false;
    }
    include_terminating || !is_pod_terminating(pod)
}

/// The pod's IPs: `status.podIPs`, or `status.podIP` when only that is set.
pub fn pod_ips(pod: &Pod) -> Vec<&str> {
    let Some(status) = pod.status.as_ref() else {
        return Vec::new();
    };
    let listed: Vec<&str> = status
        .pod_ips
        .iter()
        .flatten()
        .map(|ip| ip.ip.as_str())
        .filter(|ip| !ip.is_empty())
        .collect();
    if !listed.is_empty() {
        return listed;
    }
    status
        .pod_ip
        .as_deref()
        .filter(|ip| !ip.is_empty())
        .into_iter()
        .collect()
}

/// Whether an address is IPv6 (written with colons).
pub fn is_ipv6(ip: &str) -> bool {
    ip.contains(':')
}

/// The IP families a Service serves (`spec.ipFamilies`), IPv4 when unset.
pub fn service_ip_families(service: &Service) -> Vec<String> {
    let families: Vec<String> = service
        .spec
        .as_ref()
        .and_then(|s| s.ip_families.clone())
        .unwrap_or_default();
    if families.is_empty() {
        vec!["IPv4".to_string()]
    } else {
        families
    }
}

/// The pod's IPs of one family (`IPv4` or `IPv6`).
pub fn pod_ips_of_family<'a>(pod: &'a Pod, family: &str) -> Vec<&'a str> {
    let want_v6 = family == "IPv6";
    pod_ips(pod)
        .into_iter()
        .filter(|ip| is_ipv6(ip) == want_v6)
        .collect()
}

/// `ShouldSetHostname`: a pod names itself in a Service's DNS records when it sets
/// `spec.hostname` and its `spec.subdomain` is that Service, in the same namespace.
pub fn should_set_hostname(pod: &Pod, service: &Service) -> bool {
    let Some(spec) = pod.spec.as_ref() else {
        return false;
    };
    !spec.hostname.as_deref().unwrap_or("").is_empty()
        && spec.subdomain.as_deref() == service.metadata.name.as_deref()
        && pod.metadata.namespace == service.metadata.namespace
}

/// The protocol of a port, TCP when unset (the API server defaults it so).
pub fn protocol_or_tcp(protocol: Option<&str>) -> &str {
    match protocol {
        Some(p) if !p.is_empty() => p,
        _ => "TCP",
    }
}

/// `podutil.FindPort`: the pod's port number a Service port targets. A number is taken as is;
/// a name is looked up among the ports of the pod's containers (then its sidecar init
/// containers) with the same protocol, and `None` when the pod has no such port. An unset
/// `targetPort` means the Service port itself.
pub fn find_port(pod: &Pod, service_port: &ServicePort) -> Option<i32> {
    match &service_port.target_port {
        None => Some(service_port.port),
        Some(IntOrString::Int(n)) => Some(*n),
        Some(IntOrString::String(name)) => {
            let protocol = protocol_or_tcp(service_port.protocol.as_deref());
            let spec = pod.spec.as_ref()?;
            let sidecars = spec
                .init_containers
                .iter()
                .flatten()
                .filter(|c| c.restart_policy.as_deref() == Some("Always"));
            let containers: Vec<&Container> = spec.containers.iter().chain(sidecars).collect();
            containers
                .into_iter()
                .flat_map(|c| c.ports.iter().flatten())
                .find(|p| {
                    p.name.as_deref() == Some(name.as_str())
                        && protocol_or_tcp(p.protocol.as_deref()) == protocol
                })
                .map(|p| p.container_port)
        }
    }
}

/// The reference an endpoint keeps to the pod behind it.
pub fn pod_reference(pod: &Pod) -> ObjectReference {
    ObjectReference {
        kind: Some("Pod".to_string()),
        namespace: pod.metadata.namespace.clone(),
        name: pod.metadata.name.clone(),
        uid: pod.metadata.uid.clone(),
        ..Default::default()
    }
}

/// The node the pod runs on, if it is bound.
pub fn pod_node_name(pod: &Pod) -> Option<&str> {
    pod.spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .filter(|n| !n.is_empty())
}
