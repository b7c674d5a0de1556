//! NetworkPolicies (`networking.k8s.io/v1`): which traffic reaches and leaves selected pods.
//! Stored, defaulted and validated; Skiff's pod network does not enforce them yet.

use jiff::Timestamp;
use serde_json::{json, Map, Value};

use super::{Kind, KindStrategy, TypedVersion};
use crate::printers::*;
use crate::selector::LabelSelector;
use crate::validation::*;
use crate::{
    errors::FieldError,
    printers::Printer,
    resources::{res, ResourceInfo},
};

/// `networking.k8s.io/v1` NetworkPolicies.
pub static V1: ResourceInfo = ResourceInfo {
    short_names: &["netpol"],
    has_generation: true,
    ..res(
        "networking.k8s.io",
        "v1",
        "NetworkPolicy",
        "networkpolicies",
        "networkpolicy",
        true,
    )
};

/// The kind's entry in the kind table.
pub static KIND: Kind = Kind {
    versions: &[&V1],
    strategy: &Strategy,
};

/// The values `spec.policyTypes` accepts.
pub const POLICY_TYPES: &[&str] = &["Ingress", "Egress"];

/// The kind's behaviour.
pub struct Strategy;

impl KindStrategy for Strategy {
    fn typed(&self, _version: &str) -> Option<TypedVersion> {
        Some(TypedVersion::of::<
            k8s_openapi::api::networking::v1::NetworkPolicy,
        >())
    }

    fn apply_defaults(&self, _version: &str, root: &mut Map<String, Value>) {
        let Some(spec) = root.get_mut("spec").and_then(Value::as_object_mut) else {
            return;
        };
        for direction in ["ingress", "egress"] {
            for rule in spec
                .get_mut(direction)
                .and_then(Value::as_array_mut)
                .into_iter()
                .flatten()
            {
                for port in rule
                    .get_mut("ports")
                    .and_then(Value::as_array_mut)
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_object_mut)
                {
                    port.entry("protocol").or_insert_with(|| json!("TCP"));
                }
            }
        }
        if spec
            .get("policyTypes")
            .and_then(Value::as_array)
            .is_none_or(Vec::is_empty)
        {
            let mut types = vec![json!("Ingress")];
            if spec
                .get("egress")
                .and_then(Value::as_array)
                .is_some_and(|e| !e.is_empty())
            {
                types.push(json!("Egress"));
            }
            spec.insert("policyTypes".into(), Value::Array(types));
        }
    }

    fn validate(&self, obj: &Value, errs: &mut Vec<FieldError>) {
        let spec = field(obj, "spec");
        validate_label_selector(field(spec, "podSelector"), "spec.podSelector", errs);
        let types = array_at(spec, "policyTypes");
        for (i, t) in types.iter().enumerate() {
            if !t.as_str().is_some_and(|s| POLICY_TYPES.contains(&s)) {
                errs.push(FieldError::not_supported(
                    index("spec.policyTypes", i),
                    t,
                    POLICY_TYPES,
                ));
            }
        }
        if types.len() > 2 {
            errs.push(FieldError::invalid(
                "spec.policyTypes",
                field(spec, "policyTypes"),
                "may not specify more than two policyTypes",
            ));
        }
        for (direction, peers) in [("ingress", "from"), ("egress", "to")] {
            for (i, rule) in array_at(spec, direction).iter().enumerate() {
                let at = index(&format!("spec.{direction}"), i);
                for (j, port) in array_at(rule, "ports").iter().enumerate() {
                    validate_port(port, &index(&join(&at, "ports"), j), errs);
                }
                for (j, peer) in array_at(rule, peers).iter().enumerate() {
                    validate_peer(peer, &index(&join(&at, peers), j), errs);
                }
            }
        }
    }

    fn printer(&self) -> Option<Printer> {
        Some(Printer::new(
            vec![
                name_col(),
                col(
                    "Pod-Selector",
                    "string",
                    "Select the pods to which this NetworkPolicy object applies.",
                ),
                age_col(),
            ],
            policy_cells,
        ))
    }
}

fn validate_port(port: &Value, path: &str, errs: &mut Vec<FieldError>) {
    let protocol = field(port, "protocol");
    if let Some(p) = protocol.as_str() {
        if !["TCP", "UDP", "SCTP"].contains(&p) {
            errs.push(FieldError::not_supported(
                join(path, "protocol"),
                protocol,
                &["SCTP", "TCP", "UDP"],
            ));
        }
    }
    let value = field(port, "port");
    let end = int_at(port, "endPort");
    match value {
        Value::Number(n) => {
            let n = n.as_i64().unwrap_or(0);
            if !(1..=65535).contains(&n) {
                errs.push(FieldError::invalid(
                    join(path, "port"),
                    value,
                    "must be between 1 and 65535, inclusive",
                ));
            }
            if let Some(end) = end {
                if end < n {
                    errs.push(FieldError::invalid(
                        join(path, "endPort"),
                        field(port, "endPort"),
                        "must be greater than or equal to `port`",
                    ));
                }
            }
        }
        Value::String(s) => {
            for message in port_name_errors(s) {
                errs.push(FieldError::invalid(join(path, "port"), value, message));
            }
            if end.is_some() {
                errs.push(FieldError::forbidden(
                    join(path, "endPort"),
                    "may not be specified when `port` is non-numeric",
                ));
            }
        }
        _ => {
            if end.is_some() {
                errs.push(FieldError::required(
                    join(path, "endPort"),
                    "may not be specified when `port` is not specified",
                ));
            }
        }
    }
}

fn validate_peer(peer: &Value, path: &str, errs: &mut Vec<FieldError>) {
    let pod = field(peer, "podSelector");
    let namespace = field(peer, "namespaceSelector");
    let block = field(peer, "ipBlock");
    let set = [&pod, &namespace, &block]
        .iter()
        .filter(|v| !v.is_null())
        .count();
    if set == 0 {
        errs.push(FieldError::required(path, "must specify a peer"));
    }
    if !block.is_null() && set > 1 {
        errs.push(FieldError::forbidden(
            path,
            "may not specify both ipBlock and another peer",
        ));
    }
    if !pod.is_null() {
        validate_label_selector(pod, &join(path, "podSelector"), errs);
    }
    if !namespace.is_null() {
        validate_label_selector(namespace, &join(path, "namespaceSelector"), errs);
    }
    if !block.is_null() {
        let cidr = field(block, "cidr");
        let at = join(path, "ipBlock.cidr");
        match cidr.as_str() {
            None | Some("") => errs.push(FieldError::required(at, "")),
            Some(c) if c.parse::<ipnet_like::Cidr>().is_err() => errs.push(FieldError::invalid(
                at,
                cidr,
                "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)",
            )),
            Some(_) => {}
        }
    }
}

/// CIDR parsing without another dependency: an address and a prefix length that fits it.
mod ipnet_like {
    use std::net::IpAddr;
    use std::str::FromStr;

    /// A parsed `address/prefix`.
    pub struct Cidr;

    impl FromStr for Cidr {
        type Err = ();

        fn from_str(s: &str) -> Result<Cidr, ()> {
            let (address, prefix) = s.split_once('/').ok_or(())?;
            let address: IpAddr = address.parse().map_err(|_| ())?;
            let prefix: u8 = prefix.parse().map_err(|_| ())?;
            let max = if address.is_ipv4() { 32 } else { 128 };
            if prefix > max {
                return Err(());
            }
            Ok(Cidr)
        }
    }
}

fn policy_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    let selector = match LabelSelector::from_label_selector(
        obj.pointer("/spec/podSelector").unwrap_or(&Value::Null),
    ) {
        Ok(s) => or_none(&s.to_string()),
        Err(_) => "<error>".to_string(),
    };
    vec![name(obj), selector.into(), age(obj, now)]
}
