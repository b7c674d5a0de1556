//! Services (`v1`): DNS-1035 names, service defaults and validation, and address allocation.

use std::collections::BTreeSet;

use jiff::Timestamp;
use serde_json::{json, Map, Value};

use super::{Kind, KindStrategy, NameRule, RegistryHook, TypedVersion};
use crate::defaults::*;
use crate::errors::FieldErrorType;
use crate::printers::*;
use crate::selector::format_labels;
use crate::validation::*;
use crate::wire::object_at;
use crate::{
    errors::FieldError,
    printers::Printer,
    resources::{res, ResourceInfo, Subresource::Status},
};

/// `v1` Services.
pub static V1: ResourceInfo = ResourceInfo {
    short_names: &["svc"],
    categories: &["all"],
    subresources: &[Status],
    ..res("", "v1", "Service", "services", "service", true)
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
        object_at(object_at(root, "status"), "loadBalancer");
    }

    fn typed(&self, _version: &str) -> Option<TypedVersion> {
        Some(TypedVersion::of::<k8s_openapi::api::core::v1::Service>())
    }

    fn apply_defaults(&self, _version: &str, root: &mut Map<String, Value>) {
        default_service(root);
    }

    fn name_rule(&self) -> NameRule {
        NameRule::Dns1035Label
    }

    fn validate(&self, obj: &Value, errs: &mut Vec<FieldError>) {
        validate_service(obj, errs);
    }

    fn validate_update(&self, new: &Value, old: &Value, errs: &mut Vec<FieldError>) {
        self.validate(new, errs);
        validate_service_update(new, old, errs);
    }

    fn printer(&self) -> Option<Printer> {
        Some(Printer::new(service_columns(), service_cells))
    }

    fn field_selectors(&self) -> Option<&'static [&'static str]> {
        Some(&[
            "metadata.namespace",
            "metadata.name",
            "spec.clusterIP",
            "spec.type",
        ])
    }

    fn registry_hook(&self) -> RegistryHook {
        RegistryHook::Service
    }
}

fn validate_service(obj: &Value, errs: &mut Vec<FieldError>) {
    let spec = field(obj, "spec");
    let service_type = str_at(spec, "type");
    let headless = str_at(spec, "clusterIP") == "None";
    let ports = array_at(spec, "ports");
    if ports.is_empty() && !headless && service_type != "ExternalName" {
        errs.push(FieldError::required("spec.ports", ""));
    }
    if service_type == "ExternalName" {
        let cname = str_at(spec, "externalName");
        let cname = cname.strip_suffix('.').unwrap_or(cname);
        if cname.is_empty() {
            errs.push(FieldError::required("spec.externalName", ""));
        } else {
            for msg in dns1123_subdomain_errors(cname) {
                errs.push(FieldError::invalid(
                    "spec.externalName",
                    &Value::from(cname),
                    msg,
                ));
            }
        }
    }
    let mut names = BTreeSet::new();
    for (i, port) in ports.iter().enumerate() {
        let p_path = index("spec.ports", i);
        let name = str_at(port, "name");
        if ports.len() > 1 && name.is_empty() {
            errs.push(FieldError::required(join(&p_path, "name"), ""));
        } else if !name.is_empty() {
            for msg in dns1123_label_errors(name) {
                errs.push(FieldError::invalid(
                    join(&p_path, "name"),
                    &Value::from(name),
                    msg,
                ));
            }
            if !names.insert(name) {
                errs.push(FieldError::duplicate(
                    join(&p_path, "name"),
                    &Value::from(name),
                ));
            }
        }
        let number = int_at(port, "port").unwrap_or(0);
        if !(1..=65535).contains(&number) {
            errs.push(FieldError::invalid(
                join(&p_path, "port"),
                &Value::from(number),
                PORT_RANGE,
            ));
        }
        validate_protocol(port, &p_path, errs);
        match port.get("targetPort") {
            Some(Value::Number(n)) => {
                let n = n.as_i64().unwrap_or(0);
                if !(1..=65535).contains(&n) {
                    errs.push(FieldError::invalid(
                        join(&p_path, "targetPort"),
                        &Value::from(n),
                        PORT_RANGE,
                    ));
                }
            }
            Some(Value::String(s)) => {
                for msg in port_name_errors(s) {
                    errs.push(FieldError::invalid(
                        join(&p_path, "targetPort"),
                        &Value::from(s.as_str()),
                        msg,
                    ));
                }
            }
            _ => {}
        }
    }
    if spec.get("selector").is_some_and(|s| !s.is_null()) {
        validate_labels(field(spec, "selector"), "spec.selector", errs);
    }
    match str_at(spec, "sessionAffinity") {
        "ClientIP" | "None" => {}
        "" => errs.push(FieldError::required("spec.sessionAffinity", "")),
        other => errs.push(FieldError::not_supported(
            "spec.sessionAffinity",
            &Value::from(other),
            &["ClientIP", "None"],
        )),
    }
    match service_type {
        "ClusterIP" | "ExternalName" | "LoadBalancer" | "NodePort" => {}
        "" => errs.push(FieldError::required("spec.type", "")),
        other => errs.push(FieldError::not_supported(
            "spec.type",
            &Value::from(other),
            &["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"],
        )),
    }
    if service_type == "ClusterIP" {
        for (i, port) in ports.iter().enumerate() {
            if int_at(port, "nodePort").unwrap_or(0) != 0 {
                errs.push(FieldError::forbidden(
                    join(&index("spec.ports", i), "nodePort"),
                    "may not be used when `type` is 'ClusterIP'",
                ));
            }
        }
    }
    let mut seen = BTreeSet::new();
    for (i, port) in ports.iter().enumerate() {
        let protocol = str_at(port, "protocol");
        let number = int_at(port, "port").unwrap_or(0);
        if !seen.insert((protocol, number)) {
            errs.push(FieldError {
                error_type: FieldErrorType::Duplicate,
                field: index("spec.ports", i),
                bad_value: Some(format!(
                    "core.ServicePort{{Name:\"\", Protocol:{protocol:?}, AppProtocol:(*string)(nil), Port:{number}, TargetPort:intstr.IntOrString{{Type:0, IntVal:0, StrVal:\"\"}}, NodePort:0}}"
                )),
                detail: String::new(),
            });
        }
    }
}

fn validate_service_update(new: &Value, old: &Value, errs: &mut Vec<FieldError>) {
    let new_ip = str_at(field(new, "spec"), "clusterIP");
    let old_ip = str_at(field(old, "spec"), "clusterIP");
    // An update that leaves the address out keeps the allocated one.
    if !old_ip.is_empty() && !new_ip.is_empty() && new_ip != old_ip {
        errs.push(invalid_raw(
            "spec.clusterIPs[0]",
            go_string_slice(field(field(new, "spec"), "clusterIPs")),
            "may not change once set",
        ));
    }
}

fn service_columns() -> Vec<Column> {
    vec![
        name_col(),
        col("Type", "string", "How the service is exposed."),
        col(
            "Cluster-IP",
            "string",
            "The service's virtual IP in the cluster.",
        ),
        col(
            "External-IP",
            "string",
            "Addresses the service is reachable at from outside the cluster.",
        ),
        col("Port(s)", "string", "The ports the service exposes."),
        age_col(),
        wide(
            "Selector",
            "string",
            "Labels of the pods traffic is routed to.",
        ),
    ]
}

fn string_list(obj: &Value, pointer: &str) -> Vec<String> {
    list(obj, pointer)
        .iter()
        .filter_map(Value::as_str)
        .map(str::to_string)
        .collect()
}

fn service_external_ip(svc: &Value, kind: &str) -> String {
    let external_ips = string_list(svc, "/spec/externalIPs");
    match kind {
        "ClusterIP" | "NodePort" => {
            if external_ips.is_empty() {
                "<none>".to_string()
            } else {
                external_ips.join(",")
            }
        }
        "LoadBalancer" => {
            let mut ingress: Vec<String> = list(svc, "/status/loadBalancer/ingress")
                .iter()
                .map(|i| {
                    let ip = text(i, "/ip");
                    if ip.is_empty() {
                        text(i, "/hostname").to_string()
                    } else {
                        ip.to_string()
                    }
                })
                .filter(|s| !s.is_empty())
                .collect();
            ingress.sort();
            ingress.dedup();
            ingress.extend(external_ips);
            if ingress.is_empty() {
                "<pending>".to_string()
            } else {
                ingress.join(",")
            }
        }
        "ExternalName" => text(svc, "/spec/externalName").to_string(),
        _ => "<unknown>".to_string(),
    }
}

fn service_cells(svc: &Value, now: Timestamp) -> Vec<Value> {
    // Stored services always carry a type; ClusterIP is what the server defaults it to.
    let kind = match text(svc, "/spec/type") {
        "" => "ClusterIP",
        other => other,
    };
    let cluster_ip = string_list(svc, "/spec/clusterIPs")
        .into_iter()
        .next()
        .unwrap_or_else(|| or_none(text(svc, "/spec/clusterIP")));
    let ports: Vec<String> = list(svc, "/spec/ports")
        .iter()
        .map(|p| {
            let port = int(p, "/port", 0);
            let protocol = match text(p, "/protocol") {
                "" => "TCP",
                other => other,
            };
            match int(p, "/nodePort", 0) {
                node_port if node_port > 0 => format!("{port}:{node_port}/{protocol}"),
                _ => format!("{port}/{protocol}"),
            }
        })
        .collect();
    vec![
        name(svc),
        kind.into(),
        cluster_ip.into(),
        service_external_ip(svc, kind).into(),
        or_none(&ports.join(",")).into(),
        age(svc, now),
        format_labels(svc.pointer("/spec/selector").and_then(Value::as_object)).into(),
    ]
}

fn default_service(root: &mut Map<String, Value>) {
    let Some(spec) = child(root, "spec") else {
        return;
    };
    default_str(spec, "sessionAffinity", "None");
    match str_of(spec, "sessionAffinity") {
        "None" => {
            spec.remove("sessionAffinityConfig");
        }
        "ClientIP" => {
            let has_timeout = spec
                .get("sessionAffinityConfig")
                .and_then(|c| c.get("clientIP"))
                .and_then(|c| c.get("timeoutSeconds"))
                .is_some_and(|t| !t.is_null());
            if !has_timeout {
                spec.insert(
                    "sessionAffinityConfig".to_string(),
                    json!({"clientIP": {"timeoutSeconds": DEFAULT_CLIENT_IP_TIMEOUT_SECONDS}}),
                );
            }
        }
        _ => {}
    }
    default_str(spec, "type", "ClusterIP");
    for port in each_object(spec, "ports") {
        default_str(port, "protocol", "TCP");
        let target_unset = match port.get("targetPort") {
            None | Some(Value::Null) => true,
            Some(Value::Number(n)) => n.as_i64() == Some(0),
            Some(Value::String(s)) => s.is_empty(),
            _ => false,
        };
        if target_unset {
            if let Some(number) = port.get("port").filter(|p| p.is_number()).cloned() {
                port.insert("targetPort".to_string(), number);
            }
        }
    }
    let service_type = str_of(spec, "type").to_string();
    let has_external_ips = spec
        .get("externalIPs")
        .and_then(Value::as_array)
        .is_some_and(|ips| !ips.is_empty());
    let externally_accessible = service_type == "LoadBalancer"
        || service_type == "NodePort"
        || (service_type == "ClusterIP" && has_external_ips);
    if externally_accessible {
        default_str(spec, "externalTrafficPolicy", "Cluster");
    }
    if matches!(
        service_type.as_str(),
        "ClusterIP" | "NodePort" | "LoadBalancer"
    ) {
        default_value(spec, "internalTrafficPolicy", json!("Cluster"));
    }
    if service_type == "LoadBalancer" {
        default_value(spec, "allocateLoadBalancerNodePorts", json!(true));
    }
    // IP families are chosen by the service registry when it allocates addresses; Skiff runs a
    // single-stack IPv4 cluster. Headless services without a selector ask for every family the
    // cluster has, as Kubernetes does.
    if service_type != "ExternalName" {
        let headless = str_of(spec, "clusterIP") == "None";
        let has_selector = spec
            .get("selector")
            .and_then(Value::as_object)
            .is_some_and(|s| !s.is_empty());
        let policy = if headless && !has_selector {
            "RequireDualStack"
        } else {
            "SingleStack"
        };
        default_value(spec, "ipFamilyPolicy", json!(policy));
        let families_unset = spec
            .get("ipFamilies")
            .and_then(Value::as_array)
            .is_none_or(|f| f.is_empty());
        if families_unset {
            spec.insert("ipFamilies".to_string(), json!(["IPv4"]));
        }
    }
    // A Service always reports a load balancer status, empty until one is provisioned.
    if let Some(status) = child(root, "status") {
        default_value(status, "loadBalancer", json!({}));
    }
}

/// The session affinity timeout Kubernetes gives `ClientIP` services (three hours).
const DEFAULT_CLIENT_IP_TIMEOUT_SECONDS: i64 = 10800;
