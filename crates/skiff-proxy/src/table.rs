//! The routing table: which addresses the proxy listens on and where each one forwards to,
//! computed from Services, EndpointSlices and what is known about pods being deleted.
//!
//! Pure: no sockets, no clock. The proxy rebuilds the whole table on every relevant change and
//! applies the difference, which keeps the rules in one place and easy to test as tables.
//!
//! The rules follow kube-proxy:
//! - a Service gets frontends on each of its cluster IPs and, for `NodePort` and
//!   `LoadBalancer` Services, on every node address at its node port; headless and
//!   `ExternalName` Services get none; only TCP ports are proxied;
//! - a Service port is served by the EndpointSlice ports of the same name, in the slices
//!   labelled `kubernetes.io/service-name` with the Service's name in its namespace;
//! - endpoints whose `ready` condition is true (or absent) are in rotation; only when there is
//!   none, endpoints that are both `serving` and `terminating` are used instead;
//! - when the proxy knows its node, `internalTrafficPolicy: Local` keeps a Service's cluster
//!   IP frontends to the endpoints on that node (their slice's `nodeName`), and
//!   `externalTrafficPolicy: Local` does the same for its node ports; with no local endpoint
//!   such a frontend has none, and its connections are dropped, as kube-proxy drops them.
//!
//! One addition closes the race between endpoint removal and SIGTERM: a pod the proxy has seen
//! get a `deletionTimestamp` (or disappear) counts as terminating at once, before the endpoints
//! controller has rewritten its slice (unless the Service publishes not-ready addresses, whose
//! terminating pods stay ready as their slices say).

use std::borrow::Borrow;
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use serde_json::Value;

/// The label tying an EndpointSlice to its Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// How long a `ClientIP` affinity lasts when the Service does not say (Kubernetes' default,
/// three hours).
pub const DEFAULT_AFFINITY_TIMEOUT: Duration = Duration::from_secs(10_800);

/// What the proxy knows about the pod behind an endpoint, beyond its slice.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PodState {
    /// Nothing that overrides the slice.
    Live,
    /// The pod has a deletion timestamp: it must leave rotation now.
    Terminating,
    /// The pod was deleted: nothing listens behind the endpoint any more.
    Gone,
}

/// Where one frontend forwards to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    /// The Service, as `namespace/name`.
    pub service: String,
    /// The Service port's name (empty for an unnamed port).
    pub port_name: String,
    /// The endpoints in rotation, sorted.
    pub backends: Vec<SocketAddr>,
    /// `Some(timeout)` when the Service asks for `ClientIP` session affinity.
    pub affinity: Option<Duration>,
    /// What kind of address the frontend is, which decides whether the kernel's forwarding
    /// keeps the client's address.
    pub kind: FrontendKind,
}

/// The two kinds of frontend a Service has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrontendKind {
    /// `clusterIP:port`.
    ClusterIp,
    /// `nodeAddress:nodePort`; `local` when `externalTrafficPolicy` is `Local`, which keeps the
    /// client's source address.
    NodePort {
        /// Whether the Service's `externalTrafficPolicy` is `Local`.
        local: bool,
    },
}

/// Every frontend address and its route.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RoutingTable {
    /// Frontends by the address they listen on.
    pub routes: BTreeMap<SocketAddr, Route>,
}

impl RoutingTable {
    /// Builds the table from the cached Services and EndpointSlices. `pod_state` answers for
    /// an endpoint's `targetRef` pod (namespace, name); `node_addresses` are where node ports
    /// listen.
    pub fn build(
        services: &[impl Borrow<Value>],
        slices: &[impl Borrow<Value>],
        pod_state: impl Fn(&str, &str) -> PodState,
        node_addresses: &[IpAddr],
    ) -> RoutingTable {
        RoutingTable::build_for_node(services, slices, pod_state, node_addresses, None)
    }

    /// As [`RoutingTable::build`], for the proxy of node `node_name`, whose frontends honour
    /// the `Local` traffic policies; `None` ignores them (every endpoint counts as local).
    pub fn build_for_node(
        services: &[impl Borrow<Value>],
        slices: &[impl Borrow<Value>],
        pod_state: impl Fn(&str, &str) -> PodState,
        node_addresses: &[IpAddr],
        node_name: Option<&str>,
    ) -> RoutingTable {
        let mut slices_by_service: BTreeMap<(&str, &str), Vec<&Value>> = BTreeMap::new();
        for slice in slices {
            let slice = slice.borrow();
            let namespace = str_at(slice, "/metadata/namespace").unwrap_or_default();
            let labels = slice.pointer("/metadata/labels");
            if let Some(service) = labels
                .and_then(|l| l.get(SERVICE_NAME_LABEL))
                .and_then(Value::as_str)
            {
                slices_by_service
                    .entry((namespace, service))
                    .or_default()
                    .push(slice);
            }
        }

        let mut routes = BTreeMap::new();
        for service in services {
            let service = service.borrow();
            let Some(name) = str_at(service, "/metadata/name") else {
                continue;
            };
            let namespace = str_at(service, "/metadata/namespace").unwrap_or_default();
            let frontends = ServiceFrontends::of(service, node_addresses);
            if frontends.is_empty() {
                continue;
            }
            let slices = slices_by_service
                .get(&(namespace, name))
                .map(Vec::as_slice)
                .unwrap_or_default();
            // Such a Service asks for every pod, ready or not, until it is gone.
            let publishes_not_ready = service
                .pointer("/spec/publishNotReadyAddresses")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            let pod_state = |ns: &str, pod: &str| match pod_state(ns, pod) {
                PodState::Terminating if publishes_not_ready => PodState::Live,
                state => state,
            };
            let local_only =
                |field: &str| node_name.filter(|_| str_at(service, field) == Some("Local"));
            let internal_node = local_only("/spec/internalTrafficPolicy");
            let external_node = local_only("/spec/externalTrafficPolicy");
            let external_local = str_at(service, "/spec/externalTrafficPolicy") == Some("Local");
            for port in frontends.ports {
                let backends_on = |node: Option<&str>| {
                    backends_for_port(slices, &port.name, namespace, &pod_state, node)
                };
                let internal = backends_on(internal_node);
                let external = if external_node == internal_node {
                    internal.clone()
                } else {
                    backends_on(external_node)
                };
                let addresses = port
                    .cluster_addresses
                    .iter()
                    .map(|a| (a, &internal, FrontendKind::ClusterIp))
                    .chain(port.node_addresses.iter().map(|a| {
                        (
                            a,
                            &external,
                            FrontendKind::NodePort {
                                local: external_local,
                            },
                        )
                    }));
                for (address, backends, kind) in addresses {
                    routes.entry(*address).or_insert_with(|| Route {
                        service: format!("{namespace}/{name}"),
                        port_name: port.name.clone(),
                        backends: backends.clone(),
                        affinity: frontends.affinity,
                        kind,
                    });
                }
            }
        }
        RoutingTable { routes }
    }

    /// Every endpoint IP some frontend routes new connections to.
    pub fn routed_ips(&self) -> HashSet<IpAddr> {
        self.routes
            .values()
            .flat_map(|r| r.backends.iter().map(SocketAddr::ip))
            .collect()
    }
}

/// The listening side of one Service.
struct ServiceFrontends {
    ports: Vec<PortFrontends>,
    affinity: Option<Duration>,
}

/// The addresses of one Service port.
struct PortFrontends {
    name: String,
    /// `clusterIP:port` for each cluster IP.
    cluster_addresses: Vec<SocketAddr>,
    /// `nodeAddress:nodePort` for each node address.
    node_addresses: Vec<SocketAddr>,
}

impl ServiceFrontends {
    fn of(service: &Value, node_addresses: &[IpAddr]) -> ServiceFrontends {
        let none = ServiceFrontends {
            ports: Vec::new(),
            affinity: None,
        };
        let service_type = str_at(service, "/spec/type").unwrap_or("ClusterIP");
        if service_type == "ExternalName" {
            return none;
        }
        let cluster_ips = cluster_ips(service);
        if cluster_ips.is_empty() {
            // Headless (or not allocated yet): clients reach the pods directly.
            return none;
        }
        let with_node_ports = matches!(service_type, "NodePort" | "LoadBalancer");
        let mut ports = Vec::new();
        let spec_ports = service
            .pointer("/spec/ports")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default();
        for port in spec_ports {
            if port
                .get("protocol")
                .and_then(Value::as_str)
                .unwrap_or("TCP")
                != "TCP"
            {
                continue;
            }
            let Some(number) = port_number(port.get("port")) else {
                continue;
            };
            let cluster_addresses: Vec<SocketAddr> = cluster_ips
                .iter()
                .map(|ip| SocketAddr::new(*ip, number))
                .collect();
            let mut node_port_addresses = Vec::new();
            if with_node_ports {
                if let Some(node_port) = port_number(port.get("nodePort")) {
                    node_port_addresses.extend(
                        node_addresses
                            .iter()
                            .map(|ip| SocketAddr::new(*ip, node_port)),
                    );
                }
            }
            ports.push(PortFrontends {
                name: port
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
                cluster_addresses,
                node_addresses: node_port_addresses,
            });
        }
        let affinity = (str_at(service, "/spec/sessionAffinity") == Some("ClientIP")).then(|| {
            service
                .pointer("/spec/sessionAffinityConfig/clientIP/timeoutSeconds")
                .and_then(Value::as_u64)
                .filter(|s| *s > 0)
                .map_or(DEFAULT_AFFINITY_TIMEOUT, Duration::from_secs)
        });
        ServiceFrontends { ports, affinity }
    }

    fn is_empty(&self) -> bool {
        self.ports
            .iter()
            .all(|p| p.cluster_addresses.is_empty() && p.node_addresses.is_empty())
    }
}

/// The Service's cluster IPs: `spec.clusterIPs`, else `spec.clusterIP`; `None` and anything
/// unparsable are skipped.
fn cluster_ips(service: &Value) -> Vec<IpAddr> {
    let listed: Vec<&str> = service
        .pointer("/spec/clusterIPs")
        .and_then(Value::as_array)
        .map(|ips| ips.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let texts = if listed.is_empty() {
        str_at(service, "/spec/clusterIP").into_iter().collect()
    } else {
        listed
    };
    let mut ips: Vec<IpAddr> = Vec::new();
    for ip in texts.into_iter().filter_map(|t| t.parse::<IpAddr>().ok()) {
        if !ips.contains(&ip) {
            ips.push(ip);
        }
    }
    ips
}

/// The endpoints of one Service port, by kube-proxy's rule: the ready ones, else the serving
/// terminating ones; with `node`, only those whose `nodeName` is that node.
fn backends_for_port(
    slices: &[&Value],
    port_name: &str,
    namespace: &str,
    pod_state: &impl Fn(&str, &str) -> PodState,
    node: Option<&str>,
) -> Vec<SocketAddr> {
    let mut ready = BTreeSet::new();
    let mut terminating = BTreeSet::new();
    for slice in slices {
        let Some(target_port) = slice_port(slice, port_name) else {
            continue;
        };
        let endpoints = slice
            .get("endpoints")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default();
        for endpoint in endpoints {
            if node.is_some_and(|node| str_at(endpoint, "/nodeName") != Some(node)) {
                continue;
            }
            // kube-proxy uses the first address only.
            let Some(ip) = endpoint
                .pointer("/addresses/0")
                .and_then(Value::as_str)
                .and_then(|a| a.parse::<IpAddr>().ok())
            else {
                continue;
            };
            let conditions = endpoint.get("conditions");
            let condition = |name: &str| conditions.and_then(|c| c.get(name)?.as_bool());
            let mut is_ready = condition("ready").unwrap_or(true);
            let is_serving = condition("serving").unwrap_or(is_ready);
            let mut is_terminating = condition("terminating").unwrap_or(false);
            match pod_of(endpoint, namespace).map(|(ns, name)| pod_state(ns, name)) {
                Some(PodState::Gone) => continue,
                Some(PodState::Terminating) => {
                    is_ready = false;
                    is_terminating = true;
                }
                Some(PodState::Live) | None => {}
            }
            let address = SocketAddr::new(ip, target_port);
            if is_ready {
                ready.insert(address);
            } else if is_serving && is_terminating {
                terminating.insert(address);
            }
        }
    }
    let chosen = if ready.is_empty() { terminating } else { ready };
    chosen.into_iter().collect()
}

/// The number of the slice's TCP port named `name`.
fn slice_port(slice: &Value, name: &str) -> Option<u16> {
    slice
        .get("ports")?
        .as_array()?
        .iter()
        .find(|p| {
            p.get("name").and_then(Value::as_str).unwrap_or_default() == name
                && p.get("protocol").and_then(Value::as_str).unwrap_or("TCP") == "TCP"
        })
        .and_then(|p| port_number(p.get("port")))
}

/// The pod an endpoint points at: its `targetRef` when that is a Pod.
fn pod_of<'a>(endpoint: &'a Value, slice_namespace: &'a str) -> Option<(&'a str, &'a str)> {
    let target = endpoint.get("targetRef")?;
    if target.get("kind").and_then(Value::as_str) != Some("Pod") {
        return None;
    }
    let name = target.get("name")?.as_str()?;
    let namespace = target
        .get("namespace")
        .and_then(Value::as_str)
        .filter(|ns| !ns.is_empty())
        .unwrap_or(slice_namespace);
    Some((namespace, name))
}

fn port_number(value: Option<&Value>) -> Option<u16> {
    value
        .and_then(Value::as_u64)
        .and_then(|p| u16::try_from(p).ok())
        .filter(|p| *p != 0)
}

fn str_at<'a>(value: &'a Value, pointer: &str) -> Option<&'a str> {
    value.pointer(pointer).and_then(Value::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NODE: &str = "127.0.0.1";

    fn addr(text: &str) -> SocketAddr {
        text.parse().expect("test address")
    }

    fn service(name: &str, spec: Value) -> Value {
        json!({"metadata": {"namespace": "default", "name": name}, "spec": spec})
    }

    fn slice(service: &str, ports: Value, endpoints: Value) -> Value {
        json!({
            "metadata": {"namespace": "default", "name": format!("{service}-abc"),
                         "labels": {SERVICE_NAME_LABEL: service}},
            "addressType": "IPv4",
            "ports": ports,
            "endpoints": endpoints,
        })
    }

    fn endpoint(ip: &str, pod: &str, conditions: Value) -> Value {
        json!({"addresses": [ip], "conditions": conditions,
               "targetRef": {"kind": "Pod", "namespace": "default", "name": pod}})
    }

    fn web_service() -> Value {
        service(
            "web",
            json!({"type": "NodePort", "clusterIP": "127.96.0.10", "clusterIPs": ["127.96.0.10"],
                   "ports": [{"name": "http", "port": 80, "targetPort": 8080, "nodePort": 30080,
                              "protocol": "TCP"}]}),
        )
    }

    fn build(services: &[Value], slices: &[Value]) -> RoutingTable {
        RoutingTable::build(
            services,
            slices,
            |_, _| PodState::Live,
            &[NODE.parse().expect("ip")],
        )
    }

    #[test]
    fn frontends_by_service_type() {
        let cases: Vec<(&str, Value, Vec<&str>)> = vec![
            (
                "cluster IP on every port",
                json!({"clusterIP": "127.96.0.2", "ports": [{"port": 80}, {"name": "b", "port": 81}]}),
                vec!["127.96.0.2:80", "127.96.0.2:81"],
            ),
            (
                "node port adds the node address",
                json!({"type": "NodePort", "clusterIP": "127.96.0.3",
                       "ports": [{"port": 80, "nodePort": 31000}]}),
                vec!["127.0.0.1:31000", "127.96.0.3:80"],
            ),
            (
                "load balancer listens on its node ports too",
                json!({"type": "LoadBalancer", "clusterIP": "127.96.0.4",
                       "ports": [{"port": 80, "nodePort": 31001}]}),
                vec!["127.0.0.1:31001", "127.96.0.4:80"],
            ),
            (
                "a cluster IP service ignores a stray node port",
                json!({"clusterIP": "127.96.0.5", "ports": [{"port": 80, "nodePort": 31002}]}),
                vec!["127.96.0.5:80"],
            ),
            (
                "headless gets nothing",
                json!({"clusterIP": "None", "ports": [{"port": 80}]}),
                vec![],
            ),
            (
                "external name gets nothing",
                json!({"type": "ExternalName", "externalName": "example.com", "ports": [{"port": 80}]}),
                vec![],
            ),
            (
                "UDP is not proxied",
                json!({"clusterIP": "127.96.0.6", "ports": [{"port": 53, "protocol": "UDP"},
                                                              {"port": 53, "name": "tcp", "protocol": "TCP"}]}),
                vec!["127.96.0.6:53"],
            ),
        ];
        for (what, spec, expected) in cases {
            let table = build(&[service("s", spec)], &[]);
            let got: Vec<String> = table.routes.keys().map(ToString::to_string).collect();
            assert_eq!(got, expected, "{what}");
        }
    }

    #[test]
    fn endpoint_conditions_choose_the_rotation() {
        let ready = json!({"ready": true, "serving": true, "terminating": false});
        let not_ready = json!({"ready": false, "serving": false, "terminating": false});
        let draining = json!({"ready": false, "serving": true, "terminating": true});
        let dead = json!({"ready": false, "serving": false, "terminating": true});
        let cases: Vec<(&str, Vec<Value>, Vec<&str>)> = vec![
            (
                "ready endpoints only",
                vec![
                    endpoint("127.128.0.1", "a", ready.clone()),
                    endpoint("127.128.0.2", "b", not_ready.clone()),
                    endpoint("127.128.0.3", "c", draining.clone()),
                ],
                vec!["127.128.0.1:8080"],
            ),
            (
                "absent conditions mean ready",
                vec![json!({"addresses": ["127.128.0.4"]})],
                vec!["127.128.0.4:8080"],
            ),
            (
                "serving terminating endpoints when none is ready",
                vec![
                    endpoint("127.128.0.2", "b", not_ready.clone()),
                    endpoint("127.128.0.3", "c", draining.clone()),
                    endpoint("127.128.0.5", "e", dead.clone()),
                ],
                vec!["127.128.0.3:8080"],
            ),
            (
                "nothing usable",
                vec![endpoint("127.128.0.5", "e", dead)],
                vec![],
            ),
        ];
        for (what, endpoints, expected) in cases {
            let slices = [slice(
                "web",
                json!([{"name": "http", "port": 8080, "protocol": "TCP"}]),
                json!(endpoints),
            )];
            let table = build(&[web_service()], &slices);
            for frontend in ["127.96.0.10:80", "127.0.0.1:30080"] {
                let route = &table.routes[&addr(frontend)];
                let got: Vec<String> = route.backends.iter().map(ToString::to_string).collect();
                assert_eq!(got, expected, "{what} via {frontend}");
            }
        }
    }

    #[test]
    fn ports_are_matched_by_name_across_slices() {
        let svc = service(
            "multi",
            json!({"clusterIP": "127.96.0.7", "ports": [{"name": "http", "port": 80},
                                                          {"name": "admin", "port": 9000}]}),
        );
        let slices = [
            slice(
                "multi",
                json!([{"name": "admin", "port": 9901}, {"name": "http", "port": 8080}]),
                json!([{"addresses": ["127.128.1.1"]}]),
            ),
            slice(
                "multi",
                json!([{"name": "http", "port": 8081}]),
                json!([{"addresses": ["127.128.1.2"]}]),
            ),
            slice(
                "other",
                json!([{"name": "http", "port": 7000}]),
                json!([{"addresses": ["127.128.1.3"]}]),
            ),
        ];
        let table = build(&[svc], &slices);
        assert_eq!(
            table.routes[&addr("127.96.0.7:80")].backends,
            vec![addr("127.128.1.1:8080"), addr("127.128.1.2:8081")]
        );
        assert_eq!(
            table.routes[&addr("127.96.0.7:9000")].backends,
            vec![addr("127.128.1.1:9901")]
        );
        assert_eq!(table.routes[&addr("127.96.0.7:80")].port_name, "http");
    }

    #[test]
    fn pods_being_deleted_leave_rotation_before_their_slice_changes() {
        let ready = json!({"ready": true});
        let slices = [slice(
            "web",
            json!([{"name": "http", "port": 8080}]),
            json!([
                endpoint("127.128.0.1", "live", ready.clone()),
                endpoint("127.128.0.2", "deleting", ready.clone()),
                endpoint("127.128.0.3", "gone", ready.clone()),
            ]),
        )];
        let state = |_: &str, name: &str| match name {
            "deleting" => PodState::Terminating,
            "gone" => PodState::Gone,
            _ => PodState::Live,
        };
        let node = [NODE.parse().expect("ip")];
        let table = RoutingTable::build(&[web_service()], &slices, state, &node);
        assert_eq!(
            table.routes[&addr("127.96.0.10:80")].backends,
            vec![addr("127.128.0.1:8080")]
        );

        // With no other endpoint, the terminating pod keeps serving (it is still serving), the
        // deleted one never does.
        let only_leaving = [slice(
            "web",
            json!([{"name": "http", "port": 8080}]),
            json!([
                endpoint("127.128.0.2", "deleting", ready.clone()),
                endpoint("127.128.0.3", "gone", ready),
            ]),
        )];
        let table = RoutingTable::build(&[web_service()], &only_leaving, state, &node);
        assert_eq!(
            table.routes[&addr("127.96.0.10:80")].backends,
            vec![addr("127.128.0.2:8080")]
        );
        assert_eq!(
            table.routed_ips(),
            HashSet::from(["127.128.0.2".parse::<IpAddr>().expect("ip")])
        );
    }

    #[test]
    fn local_traffic_policies_keep_their_frontends_to_this_nodes_endpoints() {
        let on = |ip: &str, pod: &str, node: &str| {
            let mut e = endpoint(ip, pod, json!({"ready": true}));
            e["nodeName"] = json!(node);
            e
        };
        let slices = [slice(
            "web",
            json!([{"name": "http", "port": 8080}]),
            json!([
                on("127.128.0.1", "here", "node-a"),
                on("127.128.0.2", "there", "node-b"),
            ]),
        )];
        let both = vec![addr("127.128.0.1:8080"), addr("127.128.0.2:8080")];
        let here = vec![addr("127.128.0.1:8080")];
        let node = [NODE.parse().expect("ip")];
        let cases = [
            ("no policy", json!({}), both.clone(), both.clone()),
            (
                "internal Local",
                json!({"internalTrafficPolicy": "Local"}),
                here.clone(),
                both.clone(),
            ),
            (
                "external Local",
                json!({"externalTrafficPolicy": "Local"}),
                both.clone(),
                here.clone(),
            ),
            (
                "both Local",
                json!({"internalTrafficPolicy": "Local", "externalTrafficPolicy": "Local"}),
                here.clone(),
                here.clone(),
            ),
            (
                "Cluster spelled out",
                json!({"internalTrafficPolicy": "Cluster", "externalTrafficPolicy": "Cluster"}),
                both.clone(),
                both.clone(),
            ),
        ];
        for (what, policies, cluster, node_port) in cases {
            let mut svc = web_service();
            for (field, value) in policies.as_object().expect("object") {
                svc["spec"][field] = value.clone();
            }
            let table = RoutingTable::build_for_node(
                std::slice::from_ref(&svc),
                &slices,
                |_, _| PodState::Live,
                &node,
                Some("node-a"),
            );
            assert_eq!(
                table.routes[&addr("127.96.0.10:80")].backends,
                cluster,
                "{what}"
            );
            assert_eq!(
                table.routes[&addr("127.0.0.1:30080")].backends,
                node_port,
                "{what}"
            );
            // The kind tells kernel forwarding whether to keep the client's address.
            assert_eq!(
                table.routes[&addr("127.96.0.10:80")].kind,
                FrontendKind::ClusterIp,
                "{what}"
            );
            assert_eq!(
                table.routes[&addr("127.0.0.1:30080")].kind,
                FrontendKind::NodePort {
                    local: policies.get("externalTrafficPolicy") == Some(&json!("Local"))
                },
                "{what}"
            );
            // A proxy that does not know its node ignores the policies.
            let unplaced = RoutingTable::build(&[svc], &slices, |_, _| PodState::Live, &node);
            assert_eq!(
                unplaced.routes[&addr("127.96.0.10:80")].backends,
                both,
                "{what}"
            );
        }
        // With no endpoint on this node, a Local frontend has none.
        let mut svc = web_service();
        svc["spec"]["internalTrafficPolicy"] = json!("Local");
        let table = RoutingTable::build_for_node(
            &[svc],
            &slices,
            |_, _| PodState::Live,
            &node,
            Some("node-c"),
        );
        assert!(table.routes[&addr("127.96.0.10:80")].backends.is_empty());
        assert_eq!(table.routes[&addr("127.0.0.1:30080")].backends.len(), 2);
    }

    #[test]
    fn services_publishing_not_ready_addresses_keep_deleting_pods() {
        let mut svc = web_service();
        svc["spec"]["publishNotReadyAddresses"] = json!(true);
        let slices = [slice(
            "web",
            json!([{"name": "http", "port": 8080}]),
            json!([
                endpoint("127.128.0.1", "live", json!({"ready": true})),
                endpoint("127.128.0.2", "deleting", json!({"ready": true})),
                endpoint("127.128.0.3", "gone", json!({"ready": true})),
            ]),
        )];
        let state = |_: &str, name: &str| match name {
            "deleting" => PodState::Terminating,
            "gone" => PodState::Gone,
            _ => PodState::Live,
        };
        let table = RoutingTable::build(&[svc], &slices, state, &[NODE.parse().expect("ip")]);
        assert_eq!(
            table.routes[&addr("127.96.0.10:80")].backends,
            vec![addr("127.128.0.1:8080"), addr("127.128.0.2:8080")]
        );
    }

    #[test]
    fn session_affinity_timeout() {
        let cases = [
            (json!({}), None),
            (json!({"sessionAffinity": "None"}), None),
            (
                json!({"sessionAffinity": "ClientIP"}),
                Some(DEFAULT_AFFINITY_TIMEOUT),
            ),
            (
                json!({"sessionAffinity": "ClientIP",
                       "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 30}}}),
                Some(Duration::from_secs(30)),
            ),
        ];
        for (extra, expected) in cases {
            let mut spec = json!({"clusterIP": "127.96.0.8", "ports": [{"port": 80}]});
            if let (Some(spec), Some(extra)) = (spec.as_object_mut(), extra.as_object()) {
                spec.extend(extra.clone());
            }
            let table = build(&[service("s", spec)], &[]);
            assert_eq!(
                table.routes[&addr("127.96.0.8:80")].affinity,
                expected,
                "{extra}"
            );
        }
    }

    #[test]
    fn slices_of_other_namespaces_do_not_count() {
        let mut foreign = slice(
            "web",
            json!([{"name": "http", "port": 8080}]),
            json!([{"addresses": ["127.128.9.9"]}]),
        );
        foreign["metadata"]["namespace"] = json!("elsewhere");
        let table = build(&[web_service()], &[foreign]);
        assert!(table.routes[&addr("127.96.0.10:80")].backends.is_empty());
    }
}
