//! The `kubernetes` Service's endpoints, kept by every API server as kube-apiserver's lease
//! endpoint reconciler keeps them: each server holds an identity Lease `apiserver-<id>` in
//! `kube-system` (labelled `apiserver.kubernetes.io/identity: kube-apiserver`, renewed every
//! 10 s, its advertised address in an annotation), and rewrites the `default/kubernetes`
//! Endpoints and EndpointSlices to list the servers whose Leases are live. A server that stops
//! cleanly removes its Lease and itself at once; one that dies drops out 15 s after its last
//! renewal.
//!
//! The decisions are in [`planner`]; this module reads and writes the objects.

pub mod planner;

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::{EndpointAddress, EndpointPort, EndpointSubset, Endpoints};
use k8s_openapi::api::discovery::v1::{
    Endpoint, EndpointConditions, EndpointPort as SlicePort, EndpointSlice,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use skiff_client::{Api, Client, ClientError, DeleteOptions, ListOptions};

use planner::{EndpointsPlan, ServerLease, IDENTITY_LEASE_SECONDS, RENEW_INTERVAL};

/// The namespace of the identity Leases.
pub const LEASE_NAMESPACE: &str = "kube-system";
/// The label every API server identity Lease carries, with [`IDENTITY_LABEL_VALUE`].
pub const IDENTITY_LABEL: &str = "apiserver.kubernetes.io/identity";
/// kube-apiserver's value of [`IDENTITY_LABEL`].
pub const IDENTITY_LABEL_VALUE: &str = "kube-apiserver";
/// The annotation naming the address a server advertises, which the Lease has no field for.
pub const ADVERTISE_ADDRESS_ANNOTATION: &str = "skiff.dev/advertise-address";
/// The label tying an EndpointSlice to its Service.
const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
const SERVICE: &str = "kubernetes";
const SERVICE_NAMESPACE: &str = "default";
const PORT_NAME: &str = "https";

/// One API server as its identity Lease names it.
#[derive(Clone, Debug)]
pub struct ApiServerIdentity {
    /// The Lease's name, `apiserver-<id>`.
    pub lease_name: String,
    /// `spec.holderIdentity`: the Lease's name, `_`, and a UUID fresh for each start.
    pub holder_identity: String,
    /// The host name, the `kubernetes.io/hostname` label.
    pub host: String,
    /// The address clients reach this server at.
    pub advertise_address: SocketAddr,
}

impl ApiServerIdentity {
    /// The identity of a server on `host` reached at `advertise_address`.
    pub fn new(host: &str, advertise_address: SocketAddr) -> ApiServerIdentity {
        let lease_name = planner::identity_lease_name(host, advertise_address);
        ApiServerIdentity {
            holder_identity: format!("{lease_name}_{}", uuid::Uuid::new_v4()),
            lease_name,
            host: host.to_string(),
            advertise_address,
        }
    }
}

/// MicroTime keeps microseconds: what is written compares with what is read back.
fn now_in_micros() -> Timestamp {
    let now = Timestamp::now();
    Timestamp::from_microsecond(now.as_microsecond()).unwrap_or(now)
}

fn server_lease(lease: &Lease) -> ServerLease {
    let spec = lease.spec.clone().unwrap_or_default();
    ServerLease {
        name: lease.metadata.name.clone().unwrap_or_default(),
        advertise_address: lease
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(ADVERTISE_ADDRESS_ANNOTATION))
            .and_then(|a| a.parse().ok()),
        renew_time: spec.renew_time.map(|t| t.0),
        lease_duration_seconds: spec.lease_duration_seconds,
    }
}

/// Renews (or creates) this server's identity Lease.
async fn renew(leases: &Api<Lease>, identity: &ApiServerIdentity) -> Result<(), ClientError> {
    let spec = LeaseSpec {
        holder_identity: Some(identity.holder_identity.clone()),
        lease_duration_seconds: Some(IDENTITY_LEASE_SECONDS),
        renew_time: Some(MicroTime(now_in_micros())),
        ..LeaseSpec::default()
    };
    let metadata = ObjectMeta {
        name: Some(identity.lease_name.clone()),
        namespace: Some(LEASE_NAMESPACE.to_string()),
        labels: Some(BTreeMap::from([
            (IDENTITY_LABEL.to_string(), IDENTITY_LABEL_VALUE.to_string()),
            ("kubernetes.io/hostname".to_string(), identity.host.clone()),
        ])),
        annotations: Some(BTreeMap::from([(
            ADVERTISE_ADDRESS_ANNOTATION.to_string(),
            identity.advertise_address.to_string(),
        )])),
        ..ObjectMeta::default()
    };
    match leases.get_opt(&identity.lease_name).await? {
        None => {
            let lease = Lease {
                metadata,
                spec: Some(spec),
            };
            match leases.create(&lease).await {
                Ok(_) => Ok(()),
                // Another start of this server made it meanwhile: renewed next time.
                Err(e) if e.code() == 409 => Ok(()),
                Err(e) => Err(e),
            }
        }
        Some(mut lease) => {
            let labels = lease.metadata.labels.get_or_insert_with(BTreeMap::new);
            labels.extend(metadata.labels.unwrap_or_default());
            let annotations = lease.metadata.annotations.get_or_insert_with(BTreeMap::new);
            annotations.extend(metadata.annotations.unwrap_or_default());
            let current = lease.spec.get_or_insert_with(LeaseSpec::default);
            current.holder_identity = spec.holder_identity;
            current.lease_duration_seconds = spec.lease_duration_seconds;
            current.renew_time = spec.renew_time;
            leases.update(&lease).await.map(|_| ())
        }
    }
}

/// The identity Leases of every API server.
async fn list_leases(leases: &Api<Lease>) -> Result<Vec<ServerLease>, ClientError> {
    let options = ListOptions {
        label_selector: Some(format!("{IDENTITY_LABEL}={IDENTITY_LABEL_VALUE}")),
        ..ListOptions::default()
    };
    let (items, _) = leases.list(&options).await?;
    Ok(items.iter().map(server_lease).collect())
}

/// The Endpoints' subsets for `plan`: one per port.
fn subsets(plan: &EndpointsPlan) -> Option<Vec<EndpointSubset>> {
    let subsets: Vec<EndpointSubset> = plan
        .groups
        .iter()
        .map(|group| EndpointSubset {
            addresses: Some(
                group
                    .ips
                    .iter()
                    .map(|ip| EndpointAddress {
                        ip: ip.to_string(),
                        ..EndpointAddress::default()
                    })
                    .collect(),
            ),
            ports: Some(vec![EndpointPort {
                name: Some(PORT_NAME.to_string()),
                port: i32::from(group.port),
                protocol: Some("TCP".to_string()),
                ..EndpointPort::default()
            }]),
            ..EndpointSubset::default()
        })
        .collect();
    (!subsets.is_empty()).then_some(subsets)
}

/// The EndpointSlices for `plan`, by name.
fn slices(plan: &EndpointsPlan) -> BTreeMap<String, EndpointSlice> {
    plan.groups
        .iter()
        .enumerate()
        .map(|(index, group)| {
            let name = planner::slice_name(index, group);
            let v6 = group.ips.first().is_some_and(|ip| ip.is_ipv6());
            let slice = EndpointSlice {
                metadata: ObjectMeta {
                    name: Some(name.clone()),
                    namespace: Some(SERVICE_NAMESPACE.to_string()),
                    labels: Some(BTreeMap::from([(
                        SERVICE_NAME_LABEL.to_string(),
                        SERVICE.to_string(),
                    )])),
                    ..ObjectMeta::default()
                },
                address_type: if v6 { "IPv6" } else { "IPv4" }.to_string(),
                endpoints: Some(
                    group
                        .ips
                        .iter()
                        .filter(|ip| ip.is_ipv6() == v6)
                        .map(|ip| Endpoint {
                            addresses: vec![ip.to_string()],
                            conditions: Some(EndpointConditions {
                                ready: Some(true),
                                ..EndpointConditions::default()
                            }),
                            ..Endpoint::default()
                        })
                        .collect(),
                ),
                ports: Some(vec![SlicePort {
                    name: Some(PORT_NAME.to_string()),
                    port: Some(i32::from(group.port)),
                    protocol: Some("TCP".to_string()),
                    ..SlicePort::default()
                }]),
            };
            (name, slice)
        })
        .collect()
}

/// Writes the Endpoints, unless they already say the same.
async fn write_endpoints(
    client: &Arc<dyn Client>,
    plan: &EndpointsPlan,
) -> Result<(), ClientError> {
    let api = Api::<Endpoints>::new(client.clone(), Some(SERVICE_NAMESPACE))?;
    let wanted = subsets(plan);
    match api.get_opt(SERVICE).await? {
        None => {
            let endpoints = Endpoints {
                metadata: ObjectMeta {
                    name: Some(SERVICE.to_string()),
                    namespace: Some(SERVICE_NAMESPACE.to_string()),
                    labels: Some(BTreeMap::from([(
                        "endpointslice.kubernetes.io/skip-mirror".to_string(),
                        "true".to_string(),
                    )])),
                    ..ObjectMeta::default()
                },
                subsets: wanted,
            };
            api.create(&endpoints).await.map(|_| ())
        }
        Some(mut current) => {
            if current.subsets == wanted {
                return Ok(());
            }
            current.subsets = wanted;
            api.update(&current).await.map(|_| ())
        }
    }
}

/// Writes the EndpointSlices and removes those of ports no live server listens on (the
/// `kubernetes` slice itself stays, empty, when no server is live).
async fn write_slices(client: &Arc<dyn Client>, plan: &EndpointsPlan) -> Result<(), ClientError> {
    let api = Api::<EndpointSlice>::new(client.clone(), Some(SERVICE_NAMESPACE))?;
    let wanted = slices(plan);
    let options = ListOptions {
        label_selector: Some(format!("{SERVICE_NAME_LABEL}={SERVICE}")),
        ..ListOptions::default()
    };
    let (existing, _) = api.list(&options).await?;
    let mut existing: BTreeMap<String, EndpointSlice> = existing
        .into_iter()
        .filter_map(|s| Some((s.metadata.name.clone()?, s)))
        .collect();
    for (name, slice) in &wanted {
        match existing.remove(name) {
            None => match api.create(slice).await {
                Ok(_) => {}
                Err(e) if e.code() == 409 => {}
                Err(e) => return Err(e),
            },
            Some(mut current) => {
                if current.address_type == slice.address_type
                    && current.endpoints == slice.endpoints
                    && current.ports == slice.ports
                {
                    continue;
                }
                current.address_type = slice.address_type.clone();
                current.endpoints = slice.endpoints.clone();
                current.ports = slice.ports.clone();
                api.update(&current).await?;
            }
        }
    }
    for (name, mut stale) in existing {
        if name == SERVICE {
            if stale.endpoints.as_ref().is_some_and(|e| !e.is_empty()) {
                stale.endpoints = Some(Vec::new());
                api.update(&stale).await?;
            }
            continue;
        }
        match api.delete(&name, &DeleteOptions::default()).await {
            Ok(_) => {}
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Rewrites the endpoints from the Leases as they are now, and deletes expired Leases.
async fn reconcile_endpoints(client: &Arc<dyn Client>) -> Result<(), ClientError> {
    let leases = Api::<Lease>::new(client.clone(), Some(LEASE_NAMESPACE))?;
    let plan = planner::plan(&list_leases(&leases).await?, now_in_micros());
    for name in &plan.expired_leases {
        match leases.delete(name, &DeleteOptions::default()).await {
            Ok(_) => tracing::info!(lease = %name, "deleted an expired API server identity lease"),
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e),
        }
    }
    write_endpoints(client, &plan).await?;
    write_slices(client, &plan).await
}

/// One round: renews this server's identity Lease, then rewrites the endpoints. Called once
/// before the server serves, so its first clients find it listed.
pub async fn reconcile(
    client: &Arc<dyn Client>,
    identity: &ApiServerIdentity,
) -> Result<(), ClientError> {
    let leases = Api::<Lease>::new(client.clone(), Some(LEASE_NAMESPACE))?;
    renew(&leases, identity).await?;
    reconcile_endpoints(client).await
}

/// Renews and reconciles every [`RENEW_INTERVAL`] until `shutdown`; then removes this
/// server's Lease and rewrites the endpoints without it, as kube-apiserver does on a clean stop.
pub async fn run(
    client: Arc<dyn Client>,
    identity: ApiServerIdentity,
    shutdown: impl Future<Output = ()> + Send,
) {
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            _ = tokio::time::sleep(RENEW_INTERVAL) => {}
        }
        if let Err(error) = reconcile(&client, &identity).await {
            tracing::warn!(%error, lease = %identity.lease_name, "cannot renew the API server identity lease or its endpoints");
        }
    }
    let removed = async {
        let leases = Api::<Lease>::new(client.clone(), Some(LEASE_NAMESPACE))?;
        match leases
            .delete(&identity.lease_name, &DeleteOptions::default())
            .await
        {
            Ok(_) => {}
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e),
        }
        reconcile_endpoints(&client).await
    };
    match tokio::time::timeout(RENEW_INTERVAL, removed).await {
        Ok(Ok(())) => {
            tracing::info!(lease = %identity.lease_name, "removed this API server from the kubernetes endpoints")
        }
        Ok(Err(error)) => {
            tracing::warn!(%error, "cannot remove this API server from the kubernetes endpoints")
        }
        Err(_) => {
            tracing::warn!("removing this API server from the kubernetes endpoints timed out")
        }
    }
}
