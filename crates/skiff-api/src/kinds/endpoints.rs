//! Endpoints (`v1`, deprecated in favour of EndpointSlices).

use jiff::Timestamp;
use serde_json::{Map, Value};

use super::{Kind, KindStrategy, TypedVersion};
use crate::defaults::*;
use crate::printers::*;
use crate::validation::*;
use crate::{
    errors::FieldError,
    printers::{age_col, col, name_col, Printer},
    resources::{res, ResourceInfo},
};

/// `v1` Endpoints.
pub static V1: ResourceInfo = ResourceInfo {
    short_names: &["ep"],
    ..res("", "v1", "Endpoints", "endpoints", "endpoints", true)
};

/// The kind's entry in the kind table.
pub static KIND: Kind = Kind {
    versions: &[&V1],
    strategy: &Strategy,
};

/// The kind's behaviour.
pub struct Strategy;

impl KindStrategy for Strategy {
    fn typed(&self, _version: &str) -> Option<TypedVersion> {
        Some(TypedVersion::of::<k8s_openapi::api::core::v1::Endpoints>())
    }

    fn apply_defaults(&self, _version: &str, root: &mut Map<String, Value>) {
        default_endpoints(root);
    }

    fn validate(&self, obj: &Value, errs: &mut Vec<FieldError>) {
        validate_endpoints(obj, errs);
    }

    fn printer(&self) -> Option<Printer> {
        Some(Printer::new(
            vec![
                name_col(),
                col(
                    "Endpoints",
                    "string",
                    "The first addresses and ports the endpoints hold.",
                ),
                age_col(),
            ],
            endpoints_cells,
        ))
    }

    fn deprecation_warning(&self, version: &str) -> Option<&'static str> {
        (version == "v1").then_some(
            "v1 Endpoints is deprecated in v1.33+; use discovery.k8s.io/v1 EndpointSlice",
        )
    }
}

/// `ValidateEndpoints`: every subset lists an address, every address is an IP, ports are
/// named when there are several, numbered 1-65535, with a protocol.
fn validate_endpoints(obj: &Value, errs: &mut Vec<FieldError>) {
    for (i, subset) in array_at(obj, "subsets").iter().enumerate() {
        let path = index("subsets", i);
        let ready = array_at(subset, "addresses");
        let not_ready = array_at(subset, "notReadyAddresses");
        if ready.is_empty() && not_ready.is_empty() {
            errs.push(FieldError::required(
                path.clone(),
                "must specify `addresses` or `notReadyAddresses`",
            ));
        }
        for (j, address) in ready.iter().enumerate() {
            validate_endpoint_address(address, &index(&join(&path, "addresses"), j), errs);
        }
        for (j, address) in not_ready.iter().enumerate() {
            validate_endpoint_address(address, &index(&join(&path, "notReadyAddresses"), j), errs);
        }
        let ports = array_at(subset, "ports");
        for (j, port) in ports.iter().enumerate() {
            let port_path = index(&join(&path, "ports"), j);
            let name = str_at(port, "name");
            if ports.len() > 1 && name.is_empty() {
                errs.push(FieldError::required(join(&port_path, "name"), ""));
            } else if !name.is_empty() {
                validate_dns_label_field(name, &join(&port_path, "name"), errs);
            }
            let number = int_at(port, "port").unwrap_or(0);
            if !(1..=65535).contains(&number) {
                errs.push(FieldError::invalid(
                    join(&port_path, "port"),
                    &Value::from(number),
                    PORT_RANGE,
                ));
            }
            validate_protocol(port, &port_path, errs);
        }
    }
}

/// `net.JoinHostPort`: brackets around IPv6 hosts.
fn join_host_port(host: &str, port: i64) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// `formatEndpoints`: the first three `ip:port` pairs and how many more there are.
fn format_endpoints(obj: &Value) -> String {
    const MAX: usize = 3;
    let subsets = list(obj, "/subsets");
    if subsets.is_empty() {
        return "<none>".to_string();
    }
    let mut shown: Vec<String> = Vec::new();
    let mut more = false;
    let mut count = 0;
    for subset in subsets {
        let addresses = list(subset, "/addresses");
        let ports = list(subset, "/ports");
        if ports.is_empty() {
            count += addresses.len();
            for address in addresses {
                if shown.len() == MAX {
                    more = true;
                    break;
                }
                shown.push(text(address, "/ip").to_string());
            }
            continue;
        }
        for port in ports {
            count += addresses.len();
            for address in addresses {
                if shown.len() == MAX {
                    more = true;
                    break;
                }
                shown.push(join_host_port(text(address, "/ip"), int(port, "/port", 0)));
            }
        }
    }
    let joined = shown.join(",");
    if more {
        format!("{joined} + {} more...", count - MAX)
    } else {
        joined
    }
}

fn endpoints_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    vec![name(obj), format_endpoints(obj).into(), age(obj, now)]
}

fn default_endpoints(root: &mut Map<String, Value>) {
    for subset in each_object(root, "subsets") {
        for port in each_object(subset, "ports") {
            default_str(port, "protocol", "TCP");
        }
    }
}
