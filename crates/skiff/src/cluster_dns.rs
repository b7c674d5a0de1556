//! The cluster DNS and Service addresses of `skiff up --container-runtime oci`: what k3s ships
//! as CoreDNS and kube-proxy does with `kube-ipvs0`, in this process.
//!
//! - Cluster IPs are put on a dummy interface named after the pod bridge
//!   ([`skiff_net::service_interface_name`]), so the proxy in the host's namespace accepts on
//!   them and pods reach them through their default route; [`DummyClusterIps`] is the proxy's
//!   [`ClusterIpHost`].
//! - The `kube-system/kube-dns` Service sits at the Service range's tenth address, as k3s
//!   places it; skiff-dns answers on its port 53 (UDP and TCP) itself, its zone fed by
//!   informers on Services, EndpointSlices and Namespaces.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use serde_json::{json, Value};
use skiff_apiserver::registry::{Registry, WriteOptions};
use skiff_client::Client;
use skiff_dns::server::{DnsServerConfig, RunningDns, ZoneHandle};
use skiff_dns::ClusterZone;
use skiff_net::ServiceInterface;
use skiff_proxy::ClusterIpHost;
use skiff_runtime::informer::Notification;
use skiff_runtime::{Informer, InformerConfig};
use tokio::task::JoinHandle;

/// The DNS Service's place in the Service range (`.10`, as k3s and kubeadm put it).
pub const DNS_SERVICE_OFFSET: u32 = 10;
/// The DNS Service's name, in `kube-system`, as CoreDNS's manifests name it.
pub const DNS_SERVICE_NAME: &str = "kube-dns";
/// The port CoreDNS serves Prometheus metrics on, which its Service lists.
pub const DNS_METRICS_PORT: u16 = 9153;

/// Puts the proxy's cluster IPs on the dummy interface and takes them off again.
pub struct DummyClusterIps(pub Arc<ServiceInterface>);

#[async_trait::async_trait]
impl ClusterIpHost for DummyClusterIps {
    async fn add(&self, ip: IpAddr) -> Result<(), String> {
        match ip {
            IpAddr::V4(ip) => self.0.add(ip).await.map_err(|e| e.to_string()),
            IpAddr::V6(_) => Err("IPv6 cluster IPs are not supported".to_string()),
        }
    }

    async fn remove(&self, ip: IpAddr) -> Result<(), String> {
        match ip {
            IpAddr::V4(ip) => self.0.remove(ip).await.map_err(|e| e.to_string()),
            IpAddr::V6(_) => Ok(()),
        }
    }
}

/// The `kube-system/kube-dns` Service at `ip`, shaped as k3s's CoreDNS Service (labels, ports
/// `dns`, `dns-tcp` and `metrics`). It has no selector: the DNS server is this process, not a
/// pod, and answers on the cluster IP itself.
fn dns_service(ip: Ipv4Addr) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {
            "name": DNS_SERVICE_NAME, "namespace": "kube-system",
            "labels": {"k8s-app": "kube-dns", "kubernetes.io/cluster-service": "true",
                       "kubernetes.io/name": "CoreDNS"},
            "annotations": {"prometheus.io/port": DNS_METRICS_PORT.to_string(),
                            "prometheus.io/scrape": "true"},
        },
        "spec": {
            "type": "ClusterIP",
            "clusterIP": ip.to_string(),
            "clusterIPs": [ip.to_string()],
            "ports": [
                {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53},
                {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 53},
                {"name": "metrics", "port": DNS_METRICS_PORT, "protocol": "TCP",
                 "targetPort": DNS_METRICS_PORT},
            ],
        },
    })
}

/// Creates the DNS Service unless it exists (a restart keeps the stored one, whose cluster IP
/// is its own).
pub async fn ensure_dns_service(registry: &Registry, ip: Ipv4Addr) -> Result<(), String> {
    let services = &skiff_api::kinds::service::V1;
    match registry
        .get(services, Some("kube-system"), DNS_SERVICE_NAME)
        .await
    {
        Ok(existing) => {
            let held = existing.pointer("/spec/clusterIP").and_then(Value::as_str);
            if held != Some(ip.to_string().as_str()) {
                tracing::warn!(
                    held = held.unwrap_or_default(),
                    expected = %ip,
                    "the kube-dns Service does not hold the DNS address; pods are pointed at the DNS address"
                );
            }
            Ok(())
        }
        Err(e) if e.code == 404 => match registry
            .create(
                services,
                Some("kube-system"),
                dns_service(ip),
                WriteOptions::default(),
            )
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.code == 409 => Ok(()),
            Err(e) => Err(format!("cannot create the kube-dns Service: {}", e.message)),
        },
        Err(e) => Err(format!("cannot read the kube-dns Service: {}", e.message)),
    }
}

/// The running cluster DNS: the server and the informers feeding its zone.
pub struct ClusterDns {
    server: RunningDns,
    feeders: Vec<JoinHandle<()>>,
}

impl ClusterDns {
    /// Starts answering for `domain` on `address` (UDP and TCP), names outside the cluster
    /// forwarded to the host's resolvers, the zone following the cluster through `client`.
    pub async fn start(
        client: Arc<dyn Client>,
        address: SocketAddr,
        domain: &str,
    ) -> Result<ClusterDns, Box<dyn std::error::Error>> {
        let zone = ZoneHandle::new(ClusterZone::new(domain)?);
        let mut feeders = Vec::new();
        for (group, plural) in [
            ("", "services"),
            ("discovery.k8s.io", "endpointslices"),
            ("", "namespaces"),
        ] {
            let resource = skiff_api::resources::find(group, "v1", plural)
                .ok_or_else(|| format!("resource {plural} is not served"))?;
            let informer = Informer::start(client.clone(), InformerConfig::new(resource));
            feeders.push(tokio::spawn(feed(informer, zone.clone(), plural)));
        }
        let server = skiff_dns::server::start(&DnsServerConfig::new(address), zone).await?;
        tracing::info!(%address, domain, "cluster DNS answering");
        Ok(ClusterDns { server, feeders })
    }

    /// Stops answering and feeding.
    pub async fn stop(self) {
        for feeder in &self.feeders {
            feeder.abort();
        }
        if let Err(error) = self.server.shutdown().await {
            tracing::warn!(%error, "the cluster DNS did not stop cleanly");
        }
    }
}

/// Applies every change `informer` reports to the zone, for as long as it runs.
async fn feed(informer: Informer, zone: ZoneHandle, plural: &'static str) {
    let mut changes = informer.subscribe();
    while let Some(change) = changes.recv().await {
        let object = change.object();
        let namespace = object
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let name = object
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let deleted = matches!(change, Notification::Deleted(_));
        match (plural, deleted) {
            ("services", true) => zone.delete_service(namespace, name),
            ("services", false) => match serde_json::from_value(Value::clone(object)) {
                Ok(service) => {
                    zone.apply_service(&service);
                }
                Err(error) => tracing::warn!(namespace, name, %error, "DNS skips a Service"),
            },
            ("endpointslices", true) => zone.delete_endpoint_slice(namespace, name),
            ("endpointslices", false) => match serde_json::from_value(Value::clone(object)) {
                Ok(slice) => {
                    zone.apply_endpoint_slice(&slice);
                }
                Err(error) => {
                    tracing::warn!(namespace, name, %error, "DNS skips an EndpointSlice")
                }
            },
            (_, true) => zone.delete_namespace(name),
            (_, false) => zone.apply_namespace(name),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dns_service_is_shaped_as_coredns_s() {
        let service = dns_service(Ipv4Addr::new(198, 19, 4, 10));
        assert_eq!(service["metadata"]["labels"]["k8s-app"], "kube-dns");
        assert_eq!(service["spec"]["clusterIP"], "198.19.4.10");
        let ports: Vec<(String, u64, String)> = service["spec"]["ports"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                (
                    p["name"].as_str().unwrap().to_string(),
                    p["port"].as_u64().unwrap(),
                    p["protocol"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        assert_eq!(
            ports,
            [
                ("dns".to_string(), 53, "UDP".to_string()),
                ("dns-tcp".to_string(), 53, "TCP".to_string()),
                ("metrics".to_string(), 9153, "TCP".to_string()),
            ]
        );
    }
}
