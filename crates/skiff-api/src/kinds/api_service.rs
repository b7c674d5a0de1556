//! APIServices (`apiregistration.k8s.io/v1`): which server answers each group version. Skiff
//! serves every group itself, so it keeps one local APIService per served group version (as
//! kube-aggregator's auto-registration and CRD registration controllers do), `Available`
//! with reason `Local`; [`plan`] decides, pure, what keeping them takes. An APIService naming
//! a Service hands its group version to an aggregated server: [`resolve_endpoint`] finds
//! where it listens and [`remote_status`] words its `Available` condition as
//! kube-aggregator's availability controller does.

use jiff::Timestamp;
use serde_json::{json, Map, Value};

use super::{Kind, KindStrategy, TypedVersion};
use crate::errors::FieldError;
use crate::printers::*;
use crate::resources::{res, ResourceInfo, Subresource::Status};
use crate::wire::object_at;

/// `apiregistration.k8s.io/v1` APIServices.
pub static V1: ResourceInfo = ResourceInfo {
    subresources: &[Status],
    categories: &["api-extensions"],
    ..res(
        "apiregistration.k8s.io",
        "v1",
        "APIService",
        "apiservices",
        "apiservice",
        false,
    )
};

/// The kind's entry in the kind table.
pub static KIND: Kind = Kind {
    versions: &[&V1],
    strategy: &Strategy,
};

/// The label marking an APIService the server manages.
pub const AUTOMANAGED_LABEL: &str = "kube-aggregator.kubernetes.io/automanaged";

/// Kubernetes' priorities of the built-in group versions (group, version, group priority
/// minimum, version priority); other served groups are treated as custom resources' groups.
const BUILT_IN_PRIORITIES: &[(&str, &str, i64, i64)] = &[
    ("", "v1", 18000, 1),
    ("apiregistration.k8s.io", "v1", 18000, 15),
    ("apps", "v1", 17800, 15),
    ("events.k8s.io", "v1", 17750, 15),
    ("authentication.k8s.io", "v1", 17700, 15),
    ("authorization.k8s.io", "v1", 17600, 15),
    ("autoscaling", "v2", 17500, 30),
    ("autoscaling", "v1", 17500, 15),
    ("batch", "v1", 17400, 15),
    ("certificates.k8s.io", "v1", 17300, 15),
    ("networking.k8s.io", "v1", 17200, 15),
    ("policy", "v1", 17100, 15),
    ("rbac.authorization.k8s.io", "v1", 17000, 15),
    ("storage.k8s.io", "v1", 16800, 15),
    ("apiextensions.k8s.io", "v1", 16700, 15),
    ("admissionregistration.k8s.io", "v1", 16700, 15),
    ("scheduling.k8s.io", "v1", 16600, 15),
    ("coordination.k8s.io", "v1", 16500, 15),
    ("node.k8s.io", "v1", 16300, 15),
    ("discovery.k8s.io", "v1", 16200, 15),
    ("flowcontrol.apiserver.k8s.io", "v1", 16100, 21),
];

/// The priorities kube-aggregator gives custom resources' group versions.
const CUSTOM_PRIORITIES: (i64, i64) = (1000, 100);

/// The metrics API's group, which metrics-server registers with an APIService of its own.
const METRICS_GROUP: &str = "metrics.k8s.io";

/// The priorities metrics-server's APIService registration (as k3s ships it) gives
/// `v1beta1.metrics.k8s.io`.
const METRICS_PRIORITIES: (i64, i64) = (100, 100);

/// The name of the APIService of a group version: `v1.apps`, `v1.` for the core group.
pub fn name_for(group: &str, version: &str) -> String {
    format!("{version}.{group}")
}

/// The local APIService of a served group version.
pub fn local_api_service(group: &str, version: &str) -> Value {
    let built_in = BUILT_IN_PRIORITIES
        .iter()
        .find(|(g, v, _, _)| *g == group && *v == version);
    let ((group_priority, version_priority), managed) = match built_in {
        Some((_, _, g, v)) => ((*g, *v), "onstart"),
        None if group == METRICS_GROUP => (METRICS_PRIORITIES, "true"),
        None => (CUSTOM_PRIORITIES, "true"),
    };
    let mut spec = json!({"version": version, "groupPriorityMinimum": group_priority,
        "versionPriority": version_priority});
    if !group.is_empty() {
        spec["group"] = json!(group);
    }
    json!({"apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService",
        "metadata": {"name": name_for(group, version), "labels": {AUTOMANAGED_LABEL: managed}},
        "spec": spec})
}

/// The condition of a local APIService.
pub fn local_available_condition(now: &str) -> Value {
    json!({"type": "Available", "status": "True", "reason": "Local",
        "message": "Local APIServices are always available", "lastTransitionTime": now})
}

/// One write keeping the local APIServices.
#[derive(Clone, Debug, PartialEq)]
pub enum Step {
    /// Create the APIService of a served group version.
    Create(Value),
    /// Delete the managed APIService of a group version no longer served.
    Delete(String),
    /// Write a local APIService's status (the object as stored, with its condition).
    WriteStatus(Value),
}

fn is_local(api_service: &Value) -> bool {
    api_service
        .pointer("/spec/service")
        .is_none_or(Value::is_null)
}

/// What keeping the local APIServices takes, given the served group versions and the stored
/// APIServices; `now` is the RFC 3339 time a new condition records.
pub fn plan(served: &[(&str, &str)], stored: &[Value], now: &str) -> Vec<Step> {
    let mut steps = Vec::new();
    let name = |obj: &Value| text(obj, "/metadata/name").to_string();
    for (group, version) in served {
        let wanted = name_for(group, version);
        match stored.iter().find(|s| name(s) == wanted) {
            None => steps.push(Step::Create(local_api_service(group, version))),
            Some(current) if is_local(current) => {
                let available = list(current, "/status/conditions").iter().any(|c| {
                    text(c, "/type") == "Available"
                        && text(c, "/status") == "True"
                        && text(c, "/reason") == "Local"
                });
                if !available {
                    let mut updated = current.clone();
                    updated["status"] = json!({"conditions": [local_available_condition(now)]});
                    steps.push(Step::WriteStatus(updated));
                }
            }
            Some(_) => {}
        }
    }
    for current in stored {
        let managed = !text(
            current,
            &format!("/metadata/labels/{}", AUTOMANAGED_LABEL.replace('/', "~1")),
        )
        .is_empty();
        let still_served = served.iter().any(|(g, v)| name_for(g, v) == name(current));
        if managed && is_local(current) && !still_served {
            steps.push(Step::Delete(name(current)));
        }
    }
    steps
}

/// What the availability check of an APIService naming a Service found, one variant per
/// reason kube-aggregator's availability controller writes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RemoteCheck {
    /// The Service does not exist.
    ServiceNotFound,
    /// The cluster IP Service has no port numbered as `spec.service.port`.
    ServicePortError(i64),
    /// No EndpointSlice names the Service.
    EndpointsNotFound,
    /// No ready endpoint serves the Service port's name.
    MissingEndpoints(String),
    /// The aggregated server did not answer `GET /apis/GROUP/VERSION` with success; the
    /// message is the failure as upstream words it.
    FailedDiscoveryCheck(String),
    /// Every check passed.
    Passed,
}

/// The label an EndpointSlice names its Service by.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// The Service an APIService hands its group version to: namespace, name and port
/// (`spec.service.port`, 443 when unset, as kube-aggregator defaults it). `None` for a local
/// APIService.
pub fn service_reference(api_service: &Value) -> Option<(String, String, i64)> {
    let service = api_service
        .pointer("/spec/service")
        .filter(|s| !s.is_null())?;
    Some((
        text(service, "/namespace").to_string(),
        text(service, "/name").to_string(),
        service.get("port").and_then(Value::as_i64).unwrap_or(443),
    ))
}

/// Where an aggregated server listens: the first ready endpoint address of the Service's
/// EndpointSlices (`slices`, any; those of other Services are skipped) serving the port named
/// as the Service's port numbered `port`, as kube-aggregator's endpoint routing resolves it.
/// The failure is the check that failed.
pub fn resolve_endpoint(
    service: Option<&Value>,
    slices: &[Value],
    port: i64,
) -> Result<(String, u16), RemoteCheck> {
    let service = service.ok_or(RemoteCheck::ServiceNotFound)?;
    let service_name = text(service, "/metadata/name");
    let port_name = list(service, "/spec/ports")
        .iter()
        .find(|p| p.get("port").and_then(Value::as_i64) == Some(port))
        .map(|p| text(p, "/name").to_string())
        .ok_or(RemoteCheck::ServicePortError(port))?;
    let label = format!("/metadata/labels/{}", SERVICE_NAME_LABEL.replace('/', "~1"));
    let own: Vec<&Value> = slices
        .iter()
        .filter(|s| text(s, &label) == service_name)
        .collect();
    if own.is_empty() {
        return Err(RemoteCheck::EndpointsNotFound);
    }
    for slice in own {
        let target_port = list(slice, "/ports")
            .iter()
            .find(|p| text(p, "/name") == port_name)
            .and_then(|p| p.get("port").and_then(Value::as_u64))
            .and_then(|p| u16::try_from(p).ok());
        let Some(target_port) = target_port else {
            continue;
        };
        let ready = list(slice, "/endpoints").iter().find_map(|e| {
            let is_ready = e
                .pointer("/conditions/ready")
                .and_then(Value::as_bool)
                .unwrap_or(true);
            let address = e.pointer("/addresses/0").and_then(Value::as_str);
            address.filter(|_| is_ready).map(str::to_string)
        });
        if let Some(address) = ready {
            return Ok((address, target_port));
        }
    }
    Err(RemoteCheck::MissingEndpoints(port_name))
}

/// The `Available` condition kube-aggregator writes for `check` of the APIService whose
/// Service is `namespace`/`name`, at `now` (RFC 3339).
pub fn remote_available_condition(
    namespace: &str,
    name: &str,
    check: &RemoteCheck,
    now: &str,
) -> Value {
    let (status, reason, message) = match check {
        RemoteCheck::ServiceNotFound => (
            "False",
            "ServiceNotFound",
            format!("service/{name} in {namespace:?} is not present"),
        ),
        RemoteCheck::ServicePortError(port) => (
            "False",
            "ServicePortError",
            format!("service/{name} in {namespace:?} is not listening on port {port}"),
        ),
        RemoteCheck::EndpointsNotFound => (
            "False",
            "EndpointsNotFound",
            format!("cannot find endpointslices for service/{name} in {namespace:?}"),
        ),
        RemoteCheck::MissingEndpoints(port_name) => (
            "False",
            "MissingEndpoints",
            format!(
                "endpointslices for service/{name} in {namespace:?} have no addresses with port name {port_name:?}"
            ),
        ),
        RemoteCheck::FailedDiscoveryCheck(message) => {
            ("False", "FailedDiscoveryCheck", message.clone())
        }
        RemoteCheck::Passed => ("True", "Passed", "all checks passed".to_string()),
    };
    json!({"type": "Available", "status": status, "lastTransitionTime": now,
        "reason": reason, "message": message})
}

/// The APIService with its `Available` condition set to `condition`, or `None` when it holds
/// that condition already. The transition time is kept while the status stays the same, as
/// upstream's condition helper keeps it.
pub fn remote_status(current: &Value, condition: Value) -> Option<Value> {
    let mut condition = condition;
    let conditions = list(current, "/status/conditions");
    let previous = conditions.iter().find(|c| text(c, "/type") == "Available");
    if let Some(previous) = previous {
        if text(previous, "/status") == text(&condition, "/status") {
            condition["lastTransitionTime"] = previous
                .get("lastTransitionTime")
                .cloned()
                .unwrap_or(Value::Null);
        }
        if *previous == condition {
            return None;
        }
    }
    let mut kept: Vec<Value> = conditions
        .iter()
        .filter(|c| text(c, "/type") != "Available")
        .cloned()
        .collect();
    kept.push(condition);
    let mut updated = current.clone();
    updated["status"] = json!({"conditions": kept});
    Some(updated)
}

/// Whether an APIService's `Available` condition is `True`.
pub fn is_available(api_service: &Value) -> bool {
    list(api_service, "/status/conditions")
        .iter()
        .any(|c| text(c, "/type") == "Available" && text(c, "/status") == "True")
}

/// The kind's behaviour.
pub struct Strategy;

impl KindStrategy for Strategy {
    fn typed(&self, _version: &str) -> Option<TypedVersion> {
        Some(TypedVersion::of::<
            k8s_openapi::kube_aggregator::pkg::apis::apiregistration::v1::APIService,
        >())
    }

    fn name_rule(&self) -> super::NameRule {
        super::NameRule::PathSegment
    }

    fn fill_never_omitted(&self, _version: &str, root: &mut Map<String, Value>) {
        // The status is a struct, which Go never omits.
        object_at(root, "status");
    }

    fn validate(&self, obj: &Value, errs: &mut Vec<FieldError>) {
        let group = text(obj, "/spec/group");
        let version = text(obj, "/spec/version");
        if version.is_empty() {
            errs.push(FieldError::required("spec.version", ""));
        }
        let expected = name_for(group, version);
        let name = text(obj, "/metadata/name");
        if !version.is_empty() && name != expected {
            errs.push(FieldError::invalid(
                "metadata.name",
                &json!(name),
                format!("must be {expected}"),
            ));
        }
        for (field, max) in [("groupPriorityMinimum", 20000), ("versionPriority", 1000)] {
            let value = obj
                .pointer(&format!("/spec/{field}"))
                .unwrap_or(&Value::Null);
            let n = value.as_i64().unwrap_or(0);
            if n <= 0 || n > max {
                errs.push(FieldError::invalid(
                    format!("spec.{field}"),
                    value,
                    format!("must be positive and less than {max}"),
                ));
            }
        }
    }

    fn printer(&self) -> Option<Printer> {
        Some(Printer::new(
            vec![
                name_col(),
                col(
                    "Service",
                    "string",
                    "The reference to the service that hosts the API endpoint.",
                ),
                col("Available", "string", "Whether this service is available."),
                age_col(),
            ],
            api_service_cells,
        ))
    }
}

fn api_service_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    let service = if is_local(obj) {
        "Local".to_string()
    } else {
        format!(
            "{}/{}",
            text(obj, "/spec/service/namespace"),
            text(obj, "/spec/service/name")
        )
    };
    let available = list(obj, "/status/conditions")
        .iter()
        .find(|c| text(c, "/type") == "Available")
        .map(|c| match (text(c, "/status"), text(c, "/reason")) {
            ("True", _) => "True".to_string(),
            (status, "") => status.to_string(),
            (status, reason) => format!("{status} ({reason})"),
        })
        .unwrap_or_else(|| "Unknown".to_string());
    vec![name(obj), service.into(), available.into(), age(obj, now)]
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: &str = "2026-12-06T10:00:00Z";

    #[test]
    fn served_group_versions_get_local_api_services_with_kubernetes_priorities() {
        let steps = plan(
            &[("", "v1"), ("apps", "v1"), ("example.com", "v1")],
            &[],
            NOW,
        );
        let created: Vec<&Value> = steps
            .iter()
            .map(|s| match s {
                Step::Create(obj) => obj,
                other => panic!("only creates expected: {other:?}"),
            })
            .collect();
        assert_eq!(created[0]["metadata"]["name"], "v1.");
        assert!(
            created[0]["spec"].get("group").is_none(),
            "core omits group"
        );
        assert_eq!(created[0]["spec"]["groupPriorityMinimum"], 18000);
        assert_eq!(created[1]["metadata"]["name"], "v1.apps");
        assert_eq!(
            (
                &created[1]["spec"]["groupPriorityMinimum"],
                &created[1]["spec"]["versionPriority"]
            ),
            (&json!(17800), &json!(15))
        );
        assert_eq!(
            created[1]["metadata"]["labels"][AUTOMANAGED_LABEL],
            "onstart"
        );
        assert_eq!(created[2]["metadata"]["labels"][AUTOMANAGED_LABEL], "true");
        assert_eq!(created[2]["spec"]["groupPriorityMinimum"], 1000);
        let metrics = local_api_service("metrics.k8s.io", "v1beta1");
        assert_eq!(metrics["metadata"]["name"], "v1beta1.metrics.k8s.io");
        assert_eq!(
            (
                &metrics["spec"]["groupPriorityMinimum"],
                &metrics["spec"]["versionPriority"]
            ),
            (&json!(100), &json!(100)),
            "as metrics-server registers it"
        );
        assert!(metrics["spec"].get("service").is_none(), "served locally");
    }

    #[test]
    fn statuses_are_written_once_and_unserved_managed_ones_go() {
        let mut apps = local_api_service("apps", "v1");
        let gone = local_api_service("gone.example.com", "v1");
        let mut remote = local_api_service("metrics.k8s.io", "v1beta1");
        remote["spec"]["service"] = json!({"namespace": "kube-system", "name": "metrics-server"});
        remote["metadata"]["labels"] = json!({});
        let steps = plan(
            &[("apps", "v1")],
            &[apps.clone(), gone, remote.clone()],
            NOW,
        );
        assert_eq!(steps.len(), 2, "{steps:?}");
        let Step::WriteStatus(written) = &steps[0] else {
            panic!("a status first: {steps:?}");
        };
        assert_eq!(
            written["status"]["conditions"],
            json!([{"type": "Available", "status": "True", "reason": "Local",
                "message": "Local APIServices are always available", "lastTransitionTime": NOW}])
        );
        assert_eq!(steps[1], Step::Delete("v1.gone.example.com".into()));
        apps["status"] = written["status"].clone();
        assert!(plan(&[("apps", "v1")], &[apps, remote], NOW).is_empty());
    }

    #[test]
    fn rows_show_local_or_the_service_and_availability() {
        let now: Timestamp = "2026-12-06T10:00:00Z".parse().expect("time");
        let mut obj = local_api_service("apps", "v1");
        obj["metadata"]["creationTimestamp"] = json!("2026-12-06T09:00:00Z");
        assert_eq!(
            api_service_cells(&obj, now),
            [
                json!("v1.apps"),
                json!("Local"),
                json!("Unknown"),
                json!("60m")
            ]
        );
        obj["spec"]["service"] = json!({"namespace": "kube-system", "name": "metrics-server"});
        obj["status"] = json!({"conditions": [{"type": "Available", "status": "False",
            "reason": "MissingEndpoints"}]});
        let row = api_service_cells(&obj, now);
        assert_eq!(
            (&row[1], &row[2]),
            (
                &json!("kube-system/metrics-server"),
                &json!("False (MissingEndpoints)")
            )
        );
    }

    fn service(ports: Value) -> Value {
        json!({"metadata": {"name": "api", "namespace": "wardle"},
            "spec": {"type": "ClusterIP", "ports": ports}})
    }

    fn slice(service: &str, port_name: &str, port: i64, endpoints: Value) -> Value {
        json!({"metadata": {"name": format!("{service}-abc"), "namespace": "wardle",
                "labels": {SERVICE_NAME_LABEL: service}},
            "ports": [{"name": port_name, "port": port}], "endpoints": endpoints})
    }

    #[test]
    fn endpoints_resolve_through_the_service_port_name_and_ready_slices() {
        let svc = service(json!([{"name": "https", "port": 443, "targetPort": 8443}]));
        let ready = json!([{"addresses": ["127.0.0.1"], "conditions": {"ready": true}}]);
        let not_ready = json!([{"addresses": ["127.0.0.2"], "conditions": {"ready": false}}]);
        assert_eq!(
            resolve_endpoint(None, &[], 443),
            Err(RemoteCheck::ServiceNotFound)
        );
        assert_eq!(
            resolve_endpoint(Some(&svc), &[], 444),
            Err(RemoteCheck::ServicePortError(444))
        );
        let other = slice("other", "https", 9000, ready.clone());
        assert_eq!(
            resolve_endpoint(Some(&svc), std::slice::from_ref(&other), 443),
            Err(RemoteCheck::EndpointsNotFound)
        );
        let unready = slice("api", "https", 8443, not_ready);
        let wrong_name = slice("api", "http", 8080, ready.clone());
        assert_eq!(
            resolve_endpoint(Some(&svc), &[unready.clone(), wrong_name], 443),
            Err(RemoteCheck::MissingEndpoints("https".into()))
        );
        let good = slice("api", "https", 8443, ready);
        assert_eq!(
            resolve_endpoint(Some(&svc), &[other, unready, good], 443),
            Ok(("127.0.0.1".to_string(), 8443))
        );
    }

    #[test]
    fn remote_conditions_use_kube_aggregators_reasons_and_messages() {
        let cases = [
            (
                RemoteCheck::ServiceNotFound,
                "False",
                "ServiceNotFound",
                "service/api in \"wardle\" is not present",
            ),
            (
                RemoteCheck::ServicePortError(444),
                "False",
                "ServicePortError",
                "service/api in \"wardle\" is not listening on port 444",
            ),
            (
                RemoteCheck::EndpointsNotFound,
                "False",
                "EndpointsNotFound",
                "cannot find endpointslices for service/api in \"wardle\"",
            ),
            (
                RemoteCheck::MissingEndpoints("https".into()),
                "False",
                "MissingEndpoints",
                "endpointslices for service/api in \"wardle\" have no addresses with port name \"https\"",
            ),
            (
                RemoteCheck::FailedDiscoveryCheck("failing or missing response from x".into()),
                "False",
                "FailedDiscoveryCheck",
                "failing or missing response from x",
            ),
            (RemoteCheck::Passed, "True", "Passed", "all checks passed"),
        ];
        for (check, status, reason, message) in cases {
            let condition = remote_available_condition("wardle", "api", &check, NOW);
            assert_eq!(
                condition,
                json!({"type": "Available", "status": status, "lastTransitionTime": NOW,
                    "reason": reason, "message": message}),
                "{check:?}"
            );
        }
    }

    #[test]
    fn remote_status_is_written_on_change_only_and_keeps_the_transition_time() {
        let mut remote = local_api_service("wardle.example.com", "v1alpha1");
        remote["spec"]["service"] = json!({"namespace": "wardle", "name": "api"});
        assert_eq!(
            service_reference(&remote),
            Some(("wardle".into(), "api".into(), 443))
        );
        assert_eq!(service_reference(&local_api_service("apps", "v1")), None);
        let passed = remote_available_condition("wardle", "api", &RemoteCheck::Passed, NOW);
        let first = remote_status(&remote, passed).expect("a first condition is written");
        assert!(is_available(&first));
        let later = "2026-12-06T11:00:00Z";
        let again = remote_available_condition("wardle", "api", &RemoteCheck::Passed, later);
        assert_eq!(remote_status(&first, again), None, "nothing changed");
        let failed = RemoteCheck::FailedDiscoveryCheck("down".into());
        let down = remote_status(
            &first,
            remote_available_condition("wardle", "api", &failed, later),
        )
        .expect("a change of status is written");
        assert!(!is_available(&down));
        assert_eq!(down["status"]["conditions"][0]["lastTransitionTime"], later);
        let other = RemoteCheck::MissingEndpoints("https".into());
        let moved = remote_status(
            &down,
            remote_available_condition("wardle", "api", &other, "2026-12-06T12:00:00Z"),
        )
        .expect("a new reason is written");
        assert_eq!(
            (
                &moved["status"]["conditions"][0]["reason"],
                &moved["status"]["conditions"][0]["lastTransitionTime"]
            ),
            (&json!("MissingEndpoints"), &json!(later)),
            "the status stayed False, so the transition time stays"
        );
    }

    #[test]
    fn names_must_be_version_dot_group() {
        let mut errs = Vec::new();
        Strategy.validate(&local_api_service("apps", "v1"), &mut errs);
        assert!(errs.is_empty(), "{errs:?}");
        let mut wrong = local_api_service("apps", "v1");
        wrong["metadata"]["name"] = json!("apps");
        Strategy.validate(&wrong, &mut errs);
        assert_eq!(
            errs.iter().map(FieldError::full).collect::<Vec<_>>(),
            ["metadata.name: Invalid value: \"apps\": must be v1.apps"]
        );
    }
}
