//! EndpointSlices (`discovery.k8s.io/v1`).

use std::collections::BTreeSet;

use jiff::Timestamp;
use serde_json::{json, Map, Value};

use super::{Kind, KindStrategy, TypedVersion};
use crate::defaults::*;
use crate::printers::*;
use crate::validation::*;
use crate::wire::or_insert;
use crate::{
    errors::FieldError,
    printers::{age_col, col, name_col, Printer},
    resources::{res, ResourceInfo},
};

/// `discovery.k8s.io/v1` EndpointSlices.
pub static V1: ResourceInfo = ResourceInfo {
    // Every change of endpoints, ports or address type bumps a slice's generation.
    has_generation: true,
    ..res(
        "discovery.k8s.io",
        "v1",
        "EndpointSlice",
        "endpointslices",
        "endpointslice",
        true,
    )
};

/// The kind's entry in the kind table.
pub static KIND: Kind = Kind {
    versions: &[&V1],
    strategy: &Strategy,
};

/// The kind's behaviour.
pub struct Strategy;

impl KindStrategy for Strategy {
    fn fill_never_omitted(&self, _version: &str, root: &mut Map<String, Value>) {
        or_insert(root, "endpoints", Value::Null);
    }

    fn typed(&self, _version: &str) -> Option<TypedVersion> {
        Some(TypedVersion::of::<
            k8s_openapi::api::discovery::v1::EndpointSlice,
        >())
    }

    fn apply_defaults(&self, _version: &str, root: &mut Map<String, Value>) {
        default_endpoint_slice(root);
    }

    fn validate(&self, obj: &Value, errs: &mut Vec<FieldError>) {
        validate_endpoint_slice(obj, errs);
    }

    fn printer(&self) -> Option<Printer> {
        Some(Printer::new(
            vec![
                name_col(),
                col(
                    "AddressType",
                    "string",
                    "The type of address carried by this EndpointSlice.",
                ),
                col(
                    "Ports",
                    "string",
                    "The network ports exposed by each endpoint in this slice.",
                ),
                col("Endpoints", "string", "The unique endpoints in this slice."),
                age_col(),
            ],
            endpoint_slice_cells,
        ))
    }
}

/// Most endpoints one EndpointSlice may hold.
const MAX_SLICE_ENDPOINTS: usize = 1000;

/// Most addresses one EndpointSlice endpoint may hold.
const MAX_ENDPOINT_ADDRESSES: usize = 100;

/// `ValidateEndpointSlice`: a supported address type, endpoints with 1 to 100 addresses of
/// that type, at most 1000 endpoints, and uniquely named ports with a protocol.
fn validate_endpoint_slice(obj: &Value, errs: &mut Vec<FieldError>) {
    let address_type = str_at(obj, "addressType");
    match address_type {
        "IPv4" | "IPv6" | "FQDN" => {}
        "" => errs.push(FieldError::required("addressType", "")),
        other => errs.push(FieldError::not_supported(
            "addressType",
            &Value::from(other),
            &["FQDN", "IPv4", "IPv6"],
        )),
    }
    let endpoints = array_at(obj, "endpoints");
    if endpoints.len() > MAX_SLICE_ENDPOINTS {
        errs.push(too_many("endpoints", endpoints.len(), MAX_SLICE_ENDPOINTS));
    }
    for (i, endpoint) in endpoints.iter().enumerate() {
        let path = index("endpoints", i);
        let addresses_path = join(&path, "addresses");
        let addresses = array_at(endpoint, "addresses");
        if addresses.is_empty() {
            errs.push(FieldError::required(
                addresses_path.clone(),
                "must contain at least 1 address",
            ));
        } else if addresses.len() > MAX_ENDPOINT_ADDRESSES {
            errs.push(too_many(
                addresses_path.clone(),
                addresses.len(),
                MAX_ENDPOINT_ADDRESSES,
            ));
        }
        for (j, address) in addresses.iter().enumerate() {
            let text = address.as_str().unwrap_or("");
            let message = match address_type {
                "IPv4" if text.parse::<std::net::Ipv4Addr>().is_err() => {
                    Some("must be a valid IPv4 address")
                }
                "IPv6" if text.parse::<std::net::Ipv6Addr>().is_err() => {
                    Some("must be a valid IPv6 address")
                }
                "FQDN" if !matches_dns_subdomain(text) => Some(DNS1123_SUBDOMAIN_MSG),
                _ => None,
            };
            if let Some(message) = message {
                errs.push(FieldError::invalid(
                    index(&addresses_path, j),
                    &Value::from(text),
                    message,
                ));
            }
        }
        let hostname = str_at(endpoint, "hostname");
        if !hostname.is_empty() {
            validate_dns_label_field(hostname, &join(&path, "hostname"), errs);
        }
        let node_name = str_at(endpoint, "nodeName");
        if !node_name.is_empty() && !matches_dns_subdomain(node_name) {
            errs.push(FieldError::invalid(
                join(&path, "nodeName"),
                &Value::from(node_name),
                DNS1123_SUBDOMAIN_MSG,
            ));
        }
    }
    let mut names = BTreeSet::new();
    for (i, port) in array_at(obj, "ports").iter().enumerate() {
        let path = index("ports", i);
        let name = str_at(port, "name");
        if !name.is_empty() {
            validate_dns_label_field(name, &join(&path, "name"), errs);
        }
        if !names.insert(name) {
            errs.push(FieldError::duplicate(
                join(&path, "name"),
                &Value::from(name),
            ));
        }
        if let Some(number) = int_at(port, "port") {
            if !(1..=65535).contains(&number) {
                errs.push(FieldError::invalid(
                    join(&path, "port"),
                    &Value::from(number),
                    PORT_RANGE,
                ));
            }
        }
        validate_protocol(port, &path, errs);
    }
}

/// `listWithMoreString`: up to three items, then how many more; `<unset>` when empty.
fn first_three_and_more(items: Vec<String>) -> String {
    const MAX: usize = 3;
    if items.is_empty() {
        return "<unset>".to_string();
    }
    let joined = items[..items.len().min(MAX)].join(",");
    if items.len() > MAX {
        format!("{joined} + {} more...", items.len() - MAX)
    } else {
        joined
    }
}

/// `printEndpointSlice`: port numbers (else names, else `*`) and every endpoint address,
/// whatever its conditions.
fn endpoint_slice_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    let ports = list(obj, "/ports")
        .iter()
        .map(|p| match p.get("port").and_then(Value::as_i64) {
            Some(n) => n.to_string(),
            None => p
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or("*")
                .to_string(),
        })
        .collect();
    let addresses = list(obj, "/endpoints")
        .iter()
        .flat_map(|e| list(e, "/addresses"))
        .filter_map(|a| a.as_str().map(str::to_string))
        .collect();
    vec![
        name(obj),
        text(obj, "/addressType").into(),
        first_three_and_more(ports).into(),
        first_three_and_more(addresses).into(),
        age(obj, now),
    ]
}

/// discovery/v1 `SetDefaults_EndpointPort`: an unnamed port is named `""`, TCP by default.
fn default_endpoint_slice(root: &mut Map<String, Value>) {
    for port in each_object(root, "ports") {
        if port.get("name").is_none_or(Value::is_null) {
            port.insert("name".to_string(), json!(""));
        }
        default_str(port, "protocol", "TCP");
    }
}
