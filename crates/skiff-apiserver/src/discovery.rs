//! Discovery documents: what kubectl reads to learn which resources exist and how to name them.

use serde_json::{json, Value};
use skiff_api::resources::{self, ResourceInfo, Subresource};

use crate::component_status;
use crate::metrics_api;

/// The Kubernetes minor version Skiff implements; kubectl's dispatcher picks its client by it.
pub const KUBERNETES_MINOR: &str = "36";

/// The Kubernetes release whose API Skiff serves, the prefix of `gitVersion` in `/version`.
pub const KUBERNETES_RELEASE: &str = "v1.36.0";

/// `GET /version`.
pub fn version() -> Value {
    json!({
        "major": "1",
        "minor": KUBERNETES_MINOR,
        "gitVersion": format!("{KUBERNETES_RELEASE}-skiff.{}", env!("CARGO_PKG_VERSION")),
        "gitCommit": "",
        "gitTreeState": "clean",
        "buildDate": "",
        "goVersion": "",
        "compiler": "rustc",
        "platform": format!("{}/{}", std::env::consts::OS, go_arch()),
    })
}

fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

const ALL_VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

/// The verbs a resource supports: namespaces cannot be deleted as a collection (their storage
/// has no `DeleteCollection`), every other resource supports all.
pub fn verbs(r: &ResourceInfo) -> &'static [&'static str] {
    const NO_COLLECTION_DELETE: &[&str] = &[
        "create", "delete", "get", "list", "patch", "update", "watch",
    ];
    if supports_delete_collection(r) {
        ALL_VERBS
    } else {
        NO_COLLECTION_DELETE
    }
}

/// Whether `DELETE` on the collection is served.
pub fn supports_delete_collection(r: &ResourceInfo) -> bool {
    skiff_api::kinds::strategy_for(r).serves_delete_collection()
}

fn subresource_verbs(sub: Subresource) -> &'static [&'static str] {
    match sub {
        Subresource::Status
        | Subresource::Scale
        | Subresource::EphemeralContainers
        | Subresource::Approval => &["get", "patch", "update"],
        Subresource::Binding | Subresource::Token | Subresource::Eviction => &["create"],
        Subresource::Log => &["get"],
    }
}

fn subresource_kind(
    resource: &ResourceInfo,
    sub: Subresource,
) -> (&'static str, &'static str, &'static str) {
    match sub {
        Subresource::Scale => ("autoscaling", "v1", "Scale"),
        Subresource::Binding => ("", "v1", "Binding"),
        Subresource::Eviction => ("policy", "v1", "Eviction"),
        Subresource::Log => ("", "v1", "Pod"),
        Subresource::Token => ("authentication.k8s.io", "v1", "TokenRequest"),
        Subresource::Status | Subresource::EphemeralContainers | Subresource::Approval => {
            (resource.group, resource.version, resource.kind)
        }
    }
}

/// Which discovery format a request's `Accept` header asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DiscoveryFormat {
    /// `APIGroupDiscoveryList` in `apidiscovery.k8s.io/v2`.
    AggregatedV2,
    /// `APIGroupDiscoveryList` in `apidiscovery.k8s.io/v2beta1`.
    AggregatedV2Beta1,
    /// `APIVersions` / `APIGroupList`.
    Legacy,
}

impl DiscoveryFormat {
    /// Picks the first aggregated version the client lists, else legacy. A client that does not
    /// list a version must never be sent it: kubectl would parse nothing and not fall back.
    pub fn from_accept(accept: &str) -> DiscoveryFormat {
        for part in accept.split(',') {
            let params: Vec<&str> = part.split(';').map(str::trim).collect();
            let is_aggregated = params.contains(&"g=apidiscovery.k8s.io")
                && params.contains(&"as=APIGroupDiscoveryList");
            if !is_aggregated {
                continue;
            }
            if params.contains(&"v=v2") {
                return DiscoveryFormat::AggregatedV2;
            }
            if params.contains(&"v=v2beta1") {
                return DiscoveryFormat::AggregatedV2Beta1;
            }
        }
        DiscoveryFormat::Legacy
    }

    /// The exact `Content-Type` for a reply in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            DiscoveryFormat::AggregatedV2 => {
                "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
            }
            DiscoveryFormat::AggregatedV2Beta1 => {
                "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList"
            }
            DiscoveryFormat::Legacy => "application/json",
        }
    }

    fn api_version(self) -> &'static str {
        match self {
            DiscoveryFormat::AggregatedV2Beta1 => "apidiscovery.k8s.io/v2beta1",
            _ => "apidiscovery.k8s.io/v2",
        }
    }
}

fn aggregated_resource(r: &ResourceInfo) -> Value {
    let subresources: Vec<Value> = r
        .subresources
        .iter()
        .map(|s| {
            let (g, v, k) = subresource_kind(r, *s);
            json!({
                "subresource": s.name(),
                "responseKind": {"group": g, "version": v, "kind": k},
                "verbs": subresource_verbs(*s),
            })
        })
        .collect();
    let mut out = json!({
        "resource": r.plural,
        "responseKind": {"group": r.group, "version": r.version, "kind": r.kind},
        "scope": if r.namespaced { "Namespaced" } else { "Cluster" },
        "singularResource": r.singular,
        "verbs": verbs(r),
    });
    if !r.short_names.is_empty() {
        out["shortNames"] = json!(r.short_names);
    }
    if !r.categories.is_empty() {
        out["categories"] = json!(r.categories);
    }
    if !subresources.is_empty() {
        out["subresources"] = json!(subresources);
    }
    out
}

/// The review kinds (`kubectl auth can-i`, `can-i --list`, `auth whoami`): computed on each
/// `create` and never stored, so they are advertised here rather than in the kind table.
/// `(group, plural, singular, kind)`, all in `v1`, cluster-scoped, `create` only.
const REVIEWS: [(&str, &str, &str, &str); 5] = [
    (
        "authentication.k8s.io",
        "selfsubjectreviews",
        "selfsubjectreview",
        "SelfSubjectReview",
    ),
    (
        "authentication.k8s.io",
        "tokenreviews",
        "tokenreview",
        "TokenReview",
    ),
    (
        "authorization.k8s.io",
        "selfsubjectaccessreviews",
        "selfsubjectaccessreview",
        "SelfSubjectAccessReview",
    ),
    (
        "authorization.k8s.io",
        "selfsubjectrulesreviews",
        "selfsubjectrulesreview",
        "SelfSubjectRulesReview",
    ),
    (
        "authorization.k8s.io",
        "subjectaccessreviews",
        "subjectaccessreview",
        "SubjectAccessReview",
    ),
];

/// The groups of the review kinds (all in `v1`), in order.
pub const REVIEW_GROUPS: [&str; 2] = ["authentication.k8s.io", "authorization.k8s.io"];

fn reviews_in(
    group: &str,
) -> impl Iterator<Item = &'static (&'static str, &'static str, &'static str, &'static str)> + '_ {
    REVIEWS.iter().filter(move |r| r.0 == group)
}

/// The aggregated document for the core group (`/api`) or for all named groups (`/apis`).
pub fn aggregated(core: bool, format: DiscoveryFormat) -> Value {
    let items: Vec<Value> = resources::groups()
        .into_iter()
        .filter(|(g, _)| g.is_empty() == core)
        .map(|(group, versions)| {
            let versions: Vec<Value> = versions
                .iter()
                .map(|v| {
                    let mut res: Vec<Value> = resources::resources_in(group, v)
                        .map(aggregated_resource)
                        .collect();
                    if (group, *v) == ("", "v1") {
                        let mut cs = aggregated_resource(&component_status::COMPONENT_STATUS);
                        cs["verbs"] = json!(component_status::VERBS);
                        res.push(cs);
                    }
                    json!({"version": v, "resources": res, "freshness": "Current"})
                })
                .collect();
            json!({"metadata": {"name": group, "creationTimestamp": null}, "versions": versions})
        })
        .collect();
    let mut items = items;
    if !core {
        for group in REVIEW_GROUPS {
            let resources: Vec<Value> = reviews_in(group)
                .map(|(g, plural, singular, kind)| {
                    json!({
                        "resource": plural,
                        "responseKind": {"group": g, "version": "v1", "kind": kind},
                        "scope": "Cluster",
                        "singularResource": singular,
                        "verbs": ["create"],
                    })
                })
                .collect();
            items.push(json!({
                "metadata": {"name": group, "creationTimestamp": null},
                "versions": [{"version": "v1", "resources": resources, "freshness": "Current"}],
            }));
        }
    }
    json!({
        "kind": "APIGroupDiscoveryList",
        "apiVersion": format.api_version(),
        "metadata": {},
        "items": items,
    })
}

/// `GET /api` in the legacy format.
pub fn api_versions(server_address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    })
}

fn api_group(group: &str, versions: &[&str]) -> Value {
    let vs: Vec<Value> = versions
        .iter()
        .map(|v| json!({"groupVersion": format!("{group}/{v}"), "version": v}))
        .collect();
    json!({
        "name": group,
        "versions": vs,
        "preferredVersion": {"groupVersion": format!("{group}/{}", versions[0]), "version": versions[0]},
    })
}

/// `GET /apis` in the legacy format.
pub fn api_group_list() -> Value {
    let groups: Vec<Value> = resources::groups()
        .into_iter()
        .filter(|(g, _)| !g.is_empty())
        .map(|(g, vs)| api_group(g, &vs))
        .chain(REVIEW_GROUPS.iter().map(|g| api_group(g, &["v1"])))
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// `GET /apis/GROUP`, or `None` for an unknown group.
pub fn api_group_doc(group: &str) -> Option<Value> {
    if REVIEW_GROUPS.contains(&group) {
        let mut doc = api_group(group, &["v1"]);
        doc["kind"] = json!("APIGroup");
        doc["apiVersion"] = json!("v1");
        return Some(doc);
    }
    resources::groups()
        .into_iter()
        .find(|(g, _)| *g == group && !g.is_empty())
        .map(|(g, vs)| {
            let mut doc = api_group(g, &vs);
            doc["kind"] = json!("APIGroup");
            doc["apiVersion"] = json!("v1");
            doc
        })
}

/// `GET /api/v1` or `GET /apis/GROUP/VERSION`, or `None` if not served.
pub fn api_resource_list(group: &str, version: &str) -> Option<Value> {
    if REVIEW_GROUPS.contains(&group) && version == "v1" {
        let list: Vec<Value> = reviews_in(group)
            .map(|(_, plural, singular, kind)| {
                json!({"name": plural, "singularName": singular, "namespaced": false,
                       "kind": kind, "verbs": ["create"]})
            })
            .collect();
        return Some(json!({"kind": "APIResourceList", "apiVersion": "v1",
                           "groupVersion": format!("{group}/v1"), "resources": list}));
    }
    let served: Vec<&ResourceInfo> = resources::resources_in(group, version).collect();
    if served.is_empty() {
        return None;
    }
    let mut list = Vec::new();
    for r in served {
        let mut entry = json!({
            "name": r.plural,
            "singularName": r.singular,
            "namespaced": r.namespaced,
            "kind": r.kind,
            "verbs": verbs(r),
        });
        if !r.short_names.is_empty() {
            entry["shortNames"] = json!(r.short_names);
        }
        if !r.categories.is_empty() {
            entry["categories"] = json!(r.categories);
        }
        list.push(entry);
        for s in r.subresources {
            let (g, v, k) = subresource_kind(r, *s);
            let mut sub = json!({
                "name": format!("{}/{}", r.plural, s.name()),
                "singularName": "",
                "namespaced": r.namespaced,
                "kind": k,
                "verbs": subresource_verbs(*s),
            });
            if (g, v) != (r.group, r.version) {
                sub["group"] = json!(g);
                sub["version"] = json!(v);
            }
            list.push(sub);
        }
    }
    if (group, version) == ("", "v1") {
        let cs = &component_status::COMPONENT_STATUS;
        list.push(json!({
            "name": cs.plural,
            "singularName": cs.singular,
            "namespaced": false,
            "kind": cs.kind,
            "verbs": component_status::VERBS,
            "shortNames": cs.short_names,
        }));
    }
    let gv = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    Some(
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": list}),
    )
}

/// The resources of `metrics.k8s.io/v1beta1`: name, kind, namespaced.
const METRICS_RESOURCES: [(&str, &str, bool); 2] = [
    ("nodes", "NodeMetrics", false),
    ("pods", "PodMetrics", true),
];

/// The verbs metrics-server serves.
const METRICS_VERBS: [&str; 2] = ["get", "list"];

/// `GET /apis/metrics.k8s.io`; served only while something measures usage.
pub fn metrics_group_doc() -> Value {
    let mut doc = api_group(metrics_api::GROUP, &[metrics_api::VERSION]);
    doc["kind"] = json!("APIGroup");
    doc["apiVersion"] = json!("v1");
    doc
}

/// `GET /apis/metrics.k8s.io/v1beta1`: `PodMetrics` and `NodeMetrics`, get and list only.
pub fn metrics_resource_list() -> Value {
    let resources: Vec<Value> = METRICS_RESOURCES
        .iter()
        .map(|(name, kind, namespaced)| {
            json!({
                "name": name,
                "singularName": "",
                "namespaced": namespaced,
                "kind": kind,
                "verbs": METRICS_VERBS,
            })
        })
        .collect();
    json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": metrics_api::API_VERSION,
        "resources": resources,
    })
}

/// Adds `metrics.k8s.io` to an `/apis` discovery document in either format, as the
/// aggregator does once metrics-server's APIService is available. kubectl top decides
/// "Metrics API not available" from this.
pub fn advertise_metrics(doc: &mut Value, format: DiscoveryFormat) {
    let entry = match format {
        DiscoveryFormat::Legacy => {
            let entry = api_group(metrics_api::GROUP, &[metrics_api::VERSION]);
            if let Some(groups) = doc.get_mut("groups").and_then(Value::as_array_mut) {
                groups.push(entry);
            }
            return;
        }
        DiscoveryFormat::AggregatedV2 | DiscoveryFormat::AggregatedV2Beta1 => {
            let resources: Vec<Value> = METRICS_RESOURCES
                .iter()
                .map(|(name, kind, namespaced)| {
                    json!({
                        "resource": name,
                        "responseKind": {"group": metrics_api::GROUP, "version": metrics_api::VERSION, "kind": kind},
                        "scope": if *namespaced { "Namespaced" } else { "Cluster" },
                        "singularResource": "",
                        "verbs": METRICS_VERBS,
                    })
                })
                .collect();
            json!({
                "metadata": {"name": metrics_api::GROUP, "creationTimestamp": null},
                "versions": [{"version": metrics_api::VERSION, "resources": resources, "freshness": "Current"}],
            })
        }
    };
    if let Some(items) = doc.get_mut("items").and_then(Value::as_array_mut) {
        items.push(entry);
    }
}

/// The resources of an aggregated server's `APIResourceList` in aggregated discovery's
/// shape: each resource with its subresources (`flunders/status`) nested under it.
fn aggregated_remote_resources(group: &str, version: &str, list: &Value) -> Vec<Value> {
    let resources = list
        .get("resources")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let text = |r: &Value, field: &str| {
        r.get(field)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let strings = |r: &Value, field: &str| r.get(field).cloned().unwrap_or_else(|| json!([]));
    let mut out: Vec<Value> = Vec::new();
    for resource in resources.iter().filter(|r| !text(r, "name").contains('/')) {
        let name = text(resource, "name");
        let kind_of = |r: &Value| {
            json!({"group": r.get("group").and_then(Value::as_str).unwrap_or(group),
                "version": r.get("version").and_then(Value::as_str).unwrap_or(version),
                "kind": text(r, "kind")})
        };
        let namespaced = resource
            .get("namespaced")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let mut entry = json!({
            "resource": name,
            "responseKind": kind_of(resource),
            "scope": if namespaced { "Namespaced" } else { "Cluster" },
            "singularResource": text(resource, "singularName"),
            "verbs": strings(resource, "verbs"),
        });
        for field in ["shortNames", "categories"] {
            if let Some(values) = resource
                .get(field)
                .filter(|v| v.as_array().is_some_and(|a| !a.is_empty()))
            {
                entry[field] = values.clone();
            }
        }
        let prefix = format!("{name}/");
        let subresources: Vec<Value> = resources
            .iter()
            .filter_map(|r| {
                let sub = text(r, "name").strip_prefix(&prefix)?.to_string();
                Some(json!({"subresource": sub, "responseKind": kind_of(r), "verbs": strings(r, "verbs")}))
            })
            .collect();
        if !subresources.is_empty() {
            entry["subresources"] = json!(subresources);
        }
        out.push(entry);
    }
    out
}

/// Adds the group versions aggregated servers serve to an `/apis` discovery document in
/// either format, as kube-aggregator merges them: the legacy list names every APIService's
/// group version; aggregated discovery lists the resources a check last read, `Current` while
/// the APIService is available and `Stale` once it is not.
pub fn advertise_remote(
    doc: &mut Value,
    format: DiscoveryFormat,
    remote: &[crate::aggregator::RemoteGroupVersion],
) {
    let mut groups: Vec<(&str, Vec<&crate::aggregator::RemoteGroupVersion>)> = Vec::new();
    for entry in remote {
        match groups.iter_mut().find(|(g, _)| *g == entry.group) {
            Some((_, versions)) => versions.push(entry),
            None => groups.push((&entry.group, vec![entry])),
        }
    }
    for (group, versions) in groups {
        match format {
            DiscoveryFormat::Legacy => {
                let names: Vec<&str> = versions.iter().map(|v| v.version.as_str()).collect();
                if let Some(list) = doc.get_mut("groups").and_then(Value::as_array_mut) {
                    list.push(api_group(group, &names));
                }
            }
            DiscoveryFormat::AggregatedV2 | DiscoveryFormat::AggregatedV2Beta1 => {
                let entries: Vec<Value> = versions
                    .iter()
                    .filter_map(|v| {
                        let list = v.resources.as_ref()?;
                        Some(json!({
                            "version": v.version,
                            "resources": aggregated_remote_resources(group, &v.version, list),
                            "freshness": if v.available { "Current" } else { "Stale" },
                        }))
                    })
                    .collect();
                if entries.is_empty() {
                    continue;
                }
                if let Some(items) = doc.get_mut("items").and_then(Value::as_array_mut) {
                    items.push(json!({
                        "metadata": {"name": group, "creationTimestamp": null},
                        "versions": entries,
                    }));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespaces_do_not_advertise_deletecollection() {
        let namespaces = resources::find("", "v1", "namespaces").expect("served");
        assert!(!verbs(namespaces).contains(&"deletecollection"));
        let pods = resources::find("", "v1", "pods").expect("served");
        assert!(verbs(pods).contains(&"deletecollection"));
        let legacy = api_resource_list("", "v1").expect("core v1");
        let entry = legacy["resources"]
            .as_array()
            .and_then(|rs| rs.iter().find(|r| r["name"] == "namespaces"))
            .cloned()
            .expect("namespaces listed");
        assert!(!entry["verbs"]
            .as_array()
            .expect("verbs")
            .iter()
            .any(|v| v == "deletecollection"));
    }

    #[test]
    fn pods_ephemeralcontainers_is_discovered_with_get_patch_and_update() {
        let legacy = api_resource_list("", "v1").expect("core v1");
        let entry = legacy["resources"]
            .as_array()
            .and_then(|rs| rs.iter().find(|r| r["name"] == "pods/ephemeralcontainers"))
            .cloned()
            .expect("pods/ephemeralcontainers listed");
        assert_eq!(entry["kind"], "Pod");
        assert_eq!(entry["verbs"], json!(["get", "patch", "update"]));
    }

    #[test]
    fn version_reports_kubernetes_1_36_with_a_skiff_suffix() {
        let doc = version();
        assert_eq!(doc["major"], "1");
        assert_eq!(doc["minor"], "36");
        let git_version = doc["gitVersion"].as_str().unwrap();
        assert!(
            git_version.starts_with("v1.36.") && git_version.contains("-skiff."),
            "gitVersion {git_version}"
        );
    }

    #[test]
    fn accept_header_picks_only_a_listed_aggregated_version() {
        let v2 = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";
        assert_eq!(
            DiscoveryFormat::from_accept(v2),
            DiscoveryFormat::AggregatedV2
        );
        let beta = "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";
        assert_eq!(
            DiscoveryFormat::from_accept(beta),
            DiscoveryFormat::AggregatedV2Beta1
        );
        assert_eq!(
            DiscoveryFormat::from_accept("application/json, */*"),
            DiscoveryFormat::Legacy
        );
    }

    #[test]
    fn aggregated_lists_deployments_with_scale() {
        let doc = aggregated(false, DiscoveryFormat::AggregatedV2);
        let apps = doc["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["metadata"]["name"] == "apps")
            .unwrap();
        let deploy = apps["versions"][0]["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["resource"] == "deployments")
            .unwrap();
        assert_eq!(deploy["shortNames"], json!(["deploy"]));
        assert!(deploy["subresources"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["subresource"] == "scale" && s["responseKind"]["kind"] == "Scale"));
        let core = aggregated(true, DiscoveryFormat::AggregatedV2);
        assert_eq!(core["items"].as_array().unwrap().len(), 1);
        assert_eq!(core["items"][0]["metadata"]["name"], "");
    }

    #[test]
    fn remote_group_versions_are_added_with_their_resources_and_freshness() {
        use crate::aggregator::RemoteGroupVersion;
        let list = json!({"kind": "APIResourceList", "groupVersion": "wardle.example.com/v1alpha1",
            "resources": [
                {"name": "flunders", "singularName": "flunder", "namespaced": true,
                    "kind": "Flunder", "verbs": ["get", "list"], "shortNames": ["fl"]},
                {"name": "flunders/status", "singularName": "", "namespaced": true,
                    "kind": "Flunder", "verbs": ["get", "patch"]}]});
        let remote = [
            RemoteGroupVersion {
                group: "wardle.example.com".into(),
                version: "v1alpha1".into(),
                available: true,
                resources: Some(list),
            },
            RemoteGroupVersion {
                group: "never.example.com".into(),
                version: "v1".into(),
                available: false,
                resources: None,
            },
        ];
        let mut legacy = api_group_list();
        advertise_remote(&mut legacy, DiscoveryFormat::Legacy, &remote);
        let names: Vec<&Value> = legacy["groups"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| &g["name"])
            .collect();
        assert!(names.contains(&&json!("wardle.example.com")), "{names:?}");
        assert!(
            names.contains(&&json!("never.example.com")),
            "every APIService's group is listed"
        );

        let mut doc = aggregated(false, DiscoveryFormat::AggregatedV2);
        advertise_remote(&mut doc, DiscoveryFormat::AggregatedV2, &remote);
        let items = doc["items"].as_array().unwrap();
        assert!(
            !items
                .iter()
                .any(|g| g["metadata"]["name"] == "never.example.com"),
            "a group never discovered has no resources to list"
        );
        let wardle = items
            .iter()
            .find(|g| g["metadata"]["name"] == "wardle.example.com")
            .unwrap();
        assert_eq!(wardle["versions"][0]["freshness"], "Current");
        assert_eq!(
            wardle["versions"][0]["resources"],
            json!([{"resource": "flunders",
                "responseKind": {"group": "wardle.example.com", "version": "v1alpha1", "kind": "Flunder"},
                "scope": "Namespaced", "singularResource": "flunder", "verbs": ["get", "list"],
                "shortNames": ["fl"],
                "subresources": [{"subresource": "status",
                    "responseKind": {"group": "wardle.example.com", "version": "v1alpha1", "kind": "Flunder"},
                    "verbs": ["get", "patch"]}]}])
        );
        let mut stale = remote[0].clone();
        stale.available = false;
        let mut doc = aggregated(false, DiscoveryFormat::AggregatedV2);
        advertise_remote(&mut doc, DiscoveryFormat::AggregatedV2, &[stale]);
        let wardle = doc["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["metadata"]["name"] == "wardle.example.com")
            .unwrap();
        assert_eq!(wardle["versions"][0]["freshness"], "Stale");
    }

    #[test]
    fn metrics_group_is_added_to_both_formats() {
        let mut legacy = api_group_list();
        advertise_metrics(&mut legacy, DiscoveryFormat::Legacy);
        let group = legacy["groups"]
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["name"] == "metrics.k8s.io")
            .unwrap();
        assert_eq!(
            group["preferredVersion"],
            json!({"groupVersion": "metrics.k8s.io/v1beta1", "version": "v1beta1"})
        );

        let mut aggregated_doc = aggregated(false, DiscoveryFormat::AggregatedV2);
        advertise_metrics(&mut aggregated_doc, DiscoveryFormat::AggregatedV2);
        let group = aggregated_doc["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["metadata"]["name"] == "metrics.k8s.io")
            .unwrap();
        let resources = group["versions"][0]["resources"].as_array().unwrap();
        let kinds: Vec<(&str, &str)> = resources
            .iter()
            .map(|r| {
                (
                    r["resource"].as_str().unwrap(),
                    r["scope"].as_str().unwrap(),
                )
            })
            .collect();
        assert_eq!(kinds, [("nodes", "Cluster"), ("pods", "Namespaced")]);
        assert_eq!(resources[1]["responseKind"]["kind"], "PodMetrics");
        assert_eq!(resources[1]["verbs"], json!(["get", "list"]));

        let list = metrics_resource_list();
        assert_eq!(list["groupVersion"], "metrics.k8s.io/v1beta1");
        assert_eq!(list["resources"][1]["kind"], "PodMetrics");
        assert_eq!(list["resources"][1]["namespaced"], true);
        assert_eq!(metrics_group_doc()["kind"], "APIGroup");
    }
}
