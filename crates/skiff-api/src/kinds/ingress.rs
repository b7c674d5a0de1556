//! Ingresses (`networking.k8s.io/v1`): HTTP routes to Services. Stored and validated; no
//! ingress controller acts on them yet.

use jiff::Timestamp;
use serde_json::Value;

use super::{Kind, KindStrategy, TypedVersion};
use crate::printers::*;
use crate::validation::*;
use crate::{
    errors::FieldError,
    printers::Printer,
    resources::{res, ResourceInfo, Subresource::Status},
};

/// `networking.k8s.io/v1` Ingresses.
pub static V1: ResourceInfo = ResourceInfo {
    short_names: &["ing"],
    subresources: &[Status],
    has_generation: true,
    ..res(
        "networking.k8s.io",
        "v1",
        "Ingress",
        "ingresses",
        "ingress",
        true,
    )
};

/// The kind's entry in the kind table.
pub static KIND: Kind = Kind {
    versions: &[&V1],
    strategy: &Strategy,
};

/// The values `pathType` accepts.
pub const PATH_TYPES: &[&str] = &["Exact", "ImplementationSpecific", "Prefix"];

/// The kind's behaviour.
pub struct Strategy;

impl KindStrategy for Strategy {
    fn typed(&self, _version: &str) -> Option<TypedVersion> {
        Some(TypedVersion::of::<k8s_openapi::api::networking::v1::Ingress>())
    }

    fn validate(&self, obj: &Value, errs: &mut Vec<FieldError>) {
        validate_spec(field(obj, "spec"), errs);
    }

    fn printer(&self) -> Option<Printer> {
        Some(Printer::new(
            vec![
                name_col(),
                col(
                    "Class",
                    "string",
                    "The name of the IngressClass resource that should be used for ingress class.",
                ),
                col(
                    "Hosts",
                    "string",
                    "Hosts that incoming requests are matched against before the ingress rule",
                ),
                col(
                    "Address",
                    "string",
                    "Address is a list containing ingress points for the load-balancer",
                ),
                col("Ports", "string", "Ports of TLS configurations that open"),
                age_col(),
            ],
            ingress_cells,
        ))
    }
}

/// `ValidateIngressSpec`, the parts that matter for stored routes.
fn validate_spec(spec: &Value, errs: &mut Vec<FieldError>) {
    let default_backend = field(spec, "defaultBackend");
    let rules = array_at(spec, "rules");
    if default_backend.is_null() && rules.is_empty() {
        errs.push(FieldError::invalid(
            "spec",
            &Value::String("rules".into()),
            "either `defaultBackend` or `rules` must be specified",
        ));
    }
    if !default_backend.is_null() {
        validate_backend(default_backend, "spec.defaultBackend", errs);
    }
    if let Some(class) = field(spec, "ingressClassName").as_str() {
        for message in dns1123_subdomain_errors(class) {
            errs.push(FieldError::invalid(
                "spec.ingressClassName",
                field(spec, "ingressClassName"),
                message,
            ));
        }
    }
    for (i, rule) in rules.iter().enumerate() {
        let path = index("spec.rules", i);
        let host = str_at(rule, "host");
        if !host.is_empty() {
            let checked = host.strip_prefix("*.").unwrap_or(host);
            for message in dns1123_subdomain_errors(checked) {
                errs.push(FieldError::invalid(
                    join(&path, "host"),
                    field(rule, "host"),
                    message,
                ));
            }
        }
        let http = field(rule, "http");
        if http.is_null() {
            continue;
        }
        let paths = array_at(http, "paths");
        let paths_at = join(&path, "http.paths");
        if paths.is_empty() {
            errs.push(FieldError::required(paths_at.clone(), ""));
        }
        for (j, p) in paths.iter().enumerate() {
            let at = index(&paths_at, j);
            let path_type = field(p, "pathType");
            // The typed round trip writes a missing `pathType` as an empty string.
            match path_type.as_str().filter(|t| !t.is_empty()) {
                None => errs.push(FieldError::required(
                    join(&at, "pathType"),
                    "pathType must be specified",
                )),
                Some(t) if !PATH_TYPES.contains(&t) => errs.push(FieldError::not_supported(
                    join(&at, "pathType"),
                    path_type,
                    PATH_TYPES,
                )),
                Some(t) => {
                    let value = str_at(p, "path");
                    if (t != "ImplementationSpecific" || !value.is_empty())
                        && !value.starts_with('/')
                    {
                        errs.push(FieldError::invalid(
                            join(&at, "path"),
                            field(p, "path"),
                            "must be an absolute path",
                        ));
                    }
                }
            }
            validate_backend(field(p, "backend"), &join(&at, "backend"), errs);
        }
    }
}

/// `validateIngressBackend`: exactly one of a Service (with a port name or number) and a
/// resource.
fn validate_backend(backend: &Value, path: &str, errs: &mut Vec<FieldError>) {
    let service = field(backend, "service");
    let resource = field(backend, "resource");
    match (service.is_null(), resource.is_null()) {
        (true, true) => errs.push(FieldError::invalid(
            path,
            &Value::String(String::new()),
            "one backend type must be specified",
        )),
        (false, false) => errs.push(FieldError::invalid(
            path,
            &Value::String(String::new()),
            "cannot set both resource and service backends",
        )),
        (false, true) => {
            let name = str_at(service, "name");
            let at = join(path, "service");
            if name.is_empty() {
                errs.push(FieldError::required(join(&at, "name"), ""));
            } else {
                for message in dns1123_label_errors(name) {
                    errs.push(FieldError::invalid(
                        join(&at, "name"),
                        field(service, "name"),
                        message,
                    ));
                }
            }
            let port = field(service, "port");
            let has_name = !str_at(port, "name").is_empty();
            let number = int_at(port, "number");
            match (has_name, number) {
                (true, Some(_)) => errs.push(FieldError::invalid(
                    join(&at, "port"),
                    port,
                    "cannot set both port name & port number",
                )),
                (false, None) => errs.push(FieldError::invalid(
                    join(&at, "port"),
                    port,
                    "port name or number is required",
                )),
                (false, Some(n)) if !(1..=65535).contains(&n) => errs.push(FieldError::invalid(
                    join(&at, "port.number"),
                    field(port, "number"),
                    "must be between 1 and 65535, inclusive",
                )),
                _ => {}
            }
        }
        (true, false) => {}
    }
}

/// `formatHosts`: up to three rule hosts, `*` when none names one.
fn hosts(obj: &Value) -> String {
    let rules = list(obj, "/spec/rules");
    let named: Vec<&str> = rules
        .iter()
        .map(|r| text(r, "/host"))
        .filter(|h| !h.is_empty())
        .collect();
    if named.is_empty() {
        return "*".to_string();
    }
    if rules.len() > 3 {
        let shown: Vec<&str> = rules
            .iter()
            .take(3)
            .map(|r| text(r, "/host"))
            .filter(|h| !h.is_empty())
            .collect();
        return format!("{} + {} more...", shown.join(","), rules.len() - 3);
    }
    named.join(",")
}

fn ingress_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    let addresses: Vec<&str> = list(obj, "/status/loadBalancer/ingress")
        .iter()
        .map(|i| {
            let ip = text(i, "/ip");
            if ip.is_empty() {
                text(i, "/hostname")
            } else {
                ip
            }
        })
        .filter(|a| !a.is_empty())
        .collect();
    let ports = if list(obj, "/spec/tls").is_empty() {
        "80"
    } else {
        "80, 443"
    };
    let class = text(obj, "/spec/ingressClassName");
    vec![
        name(obj),
        or_none(class).into(),
        hosts(obj).into(),
        addresses.join(",").into(),
        ports.into(),
        age(obj, now),
    ]
}
