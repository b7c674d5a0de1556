//! Defaulting: the values Kubernetes fills in when a client leaves a field out.
//!
//! The API server decodes every submitted object into a `serde_json::Value` and calls
//! [`apply_defaults`] before validation and storage, as Kubernetes' generated defaulters run
//! when a request body is decoded. Nested types are defaulted wherever they occur, so every
//! pod template inside a Deployment, ReplicaSet or CloneSet gets the pod-spec defaults.
//!
//! Besides the `SetDefaults_*` functions, Kubernetes fills a few fields on create through its
//! built-in admission plugins and registry strategies (pod priority,
//! service account and not-ready tolerations, service IP families). Those are applied here
//! too, because a client sees them on the created object just the same.
//!
//! Defaulting never fails: a field of the wrong JSON type is left alone for validation to
//! report.

use serde_json::{json, Map, Value};

use crate::resources::ResourceInfo;

/// Mode bits Kubernetes gives secret, config map, downward API and projected volumes (0644).
const DEFAULT_VOLUME_MODE: i64 = 420;

/// Fills in every default Kubernetes applies to an object of `resource`'s kind and version.
///
/// Called on the version the client sent (an `autoscaling/v1` HPA gets v1 defaults), before
/// conversion to the storage version. Unknown kinds are left untouched.
pub fn apply_defaults(resource: &ResourceInfo, obj: &mut Value) {
    let Some(root) = obj.as_object_mut() else {
        return;
    };
    crate::kinds::strategy_for(resource).apply_defaults(resource.version, root);
}

// ---------------------------------------------------------------------------------------------
// JSON helpers. Go's defaulters test "unset" as the zero value of the field: an empty string, a
// nil pointer, or (for plain integers such as probe timeouts) zero. In JSON all of these may
// arrive as a missing key or an explicit null.

/// Whether a field counts as unset for a pointer or struct field.
pub(crate) fn is_unset(map: &Map<String, Value>, key: &str) -> bool {
    map.get(key).is_none_or(Value::is_null)
}

/// Sets a string field left empty.
pub(crate) fn default_str(map: &mut Map<String, Value>, key: &str, value: &str) {
    let empty = match map.get(key) {
        None | Some(Value::Null) => true,
        Some(Value::String(s)) => s.is_empty(),
        _ => false,
    };
    if empty {
        map.insert(key.to_string(), Value::String(value.to_string()));
    }
}

/// Sets a pointer field left nil.
pub(crate) fn default_value(map: &mut Map<String, Value>, key: &str, value: Value) {
    if is_unset(map, key) {
        map.insert(key.to_string(), value);
    }
}

/// Sets a plain integer field left at zero.
fn default_nonzero(map: &mut Map<String, Value>, key: &str, value: i64) {
    let zero = match map.get(key) {
        None | Some(Value::Null) => true,
        Some(Value::Number(n)) => n.as_i64() == Some(0),
        _ => false,
    };
    if zero {
        map.insert(key.to_string(), json!(value));
    }
}

/// The object under `key`, created empty when missing or null. `None` when the field holds
/// something other than an object, which validation will report.
pub(crate) fn child<'a>(
    map: &'a mut Map<String, Value>,
    key: &str,
) -> Option<&'a mut Map<String, Value>> {
    if is_unset(map, key) {
        map.insert(key.to_string(), Value::Object(Map::new()));
    }
    map.get_mut(key).and_then(Value::as_object_mut)
}

/// The object under `key` when present; never creates it.
pub(crate) fn existing<'a>(
    map: &'a mut Map<String, Value>,
    key: &str,
) -> Option<&'a mut Map<String, Value>> {
    map.get_mut(key).and_then(Value::as_object_mut)
}

/// The objects of the array under `key`, skipping entries that are not objects.
pub(crate) fn each_object<'a>(
    map: &'a mut Map<String, Value>,
    key: &str,
) -> impl Iterator<Item = &'a mut Map<String, Value>> {
    map.get_mut(key)
        .and_then(Value::as_array_mut)
        .into_iter()
        .flat_map(|items| items.iter_mut().filter_map(Value::as_object_mut))
}

/// A string field, or `""` when missing or not a string.
pub(crate) fn str_of<'a>(map: &'a Map<String, Value>, key: &str) -> &'a str {
    map.get(key).and_then(Value::as_str).unwrap_or("")
}

// ---------------------------------------------------------------------------------------------
// core/v1

pub(crate) fn default_requests_from_limits(container: &mut Map<String, Value>) {
    let Some(resources) = existing(container, "resources") else {
        return;
    };
    let Some(limits) = resources.get("limits").and_then(Value::as_object).cloned() else {
        return;
    };
    let Some(requests) = child(resources, "requests") else {
        return;
    };
    for (name, quantity) in limits {
        requests.entry(name).or_insert(quantity);
    }
}

/// SetDefaults_PodSpec plus the container, probe, volume and field-selector defaults the
/// generated defaulters apply to every PodSpec, in a pod or a template.
pub(crate) fn default_pod_spec(spec: &mut Map<String, Value>) {
    default_str(spec, "dnsPolicy", "ClusterFirst");
    default_str(spec, "restartPolicy", "Always");
    default_value(spec, "securityContext", json!({}));
    default_value(spec, "terminationGracePeriodSeconds", json!(30));
    default_str(spec, "schedulerName", "default-scheduler");
    for volume in each_object(spec, "volumes") {
        default_volume(volume);
    }
    for key in ["initContainers", "containers", "ephemeralContainers"] {
        for container in each_object(spec, key) {
            default_container(container);
        }
    }
}

fn default_volume(volume: &mut Map<String, Value>) {
    const SOURCES: &[&str] = &[
        "hostPath",
        "emptyDir",
        "gcePersistentDisk",
        "awsElasticBlockStore",
        "gitRepo",
        "secret",
        "nfs",
        "iscsi",
        "glusterfs",
        "persistentVolumeClaim",
        "rbd",
        "flexVolume",
        "cinder",
        "cephfs",
        "flocker",
        "downwardAPI",
        "fc",
        "azureFile",
        "configMap",
        "vsphereVolume",
        "quobyte",
        "azureDisk",
        "photonPersistentDisk",
        "projected",
        "portworxVolume",
        "scaleIO",
        "storageos",
        "csi",
        "ephemeral",
        "image",
    ];
    // SetDefaults_Volume: a volume naming no source is an emptyDir.
    if SOURCES.iter().all(|s| is_unset(volume, s)) {
        volume.insert("emptyDir".to_string(), json!({}));
    }
    if let Some(host_path) = existing(volume, "hostPath") {
        default_value(host_path, "type", json!(""));
    }
    for key in ["secret", "configMap"] {
        if let Some(source) = existing(volume, key) {
            default_value(source, "defaultMode", json!(DEFAULT_VOLUME_MODE));
        }
    }
    if let Some(downward) = existing(volume, "downwardAPI") {
        default_value(downward, "defaultMode", json!(DEFAULT_VOLUME_MODE));
        default_downward_items(downward);
    }
    if let Some(projected) = existing(volume, "projected") {
        default_value(projected, "defaultMode", json!(DEFAULT_VOLUME_MODE));
        for source in each_object(projected, "sources") {
            if let Some(downward) = existing(source, "downwardAPI") {
                default_downward_items(downward);
            }
            if let Some(token) = existing(source, "serviceAccountToken") {
                default_value(token, "expirationSeconds", json!(3600));
            }
        }
    }
    if let Some(claim_spec) = existing(volume, "ephemeral")
        .and_then(|e| existing(e, "volumeClaimTemplate"))
        .and_then(|t| existing(t, "spec"))
    {
        default_value(claim_spec, "volumeMode", json!("Filesystem"));
    }
}

fn default_downward_items(downward: &mut Map<String, Value>) {
    for item in each_object(downward, "items") {
        if let Some(field_ref) = existing(item, "fieldRef") {
            default_str(field_ref, "apiVersion", "v1");
        }
    }
}

fn default_container(container: &mut Map<String, Value>) {
    let image = str_of(container, "image").to_string();
    default_str(container, "imagePullPolicy", pull_policy_for(&image));
    default_str(container, "terminationMessagePath", "/dev/termination-log");
    default_str(container, "terminationMessagePolicy", "File");
    // Kubernetes always writes the resource requirements struct, empty or not.
    default_value(container, "resources", json!({}));
    for port in each_object(container, "ports") {
        default_str(port, "protocol", "TCP");
    }
    for env in each_object(container, "env") {
        if let Some(field_ref) = existing(env, "valueFrom").and_then(|v| existing(v, "fieldRef")) {
            default_str(field_ref, "apiVersion", "v1");
        }
    }
    for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
        if let Some(probe) = existing(container, probe) {
            default_nonzero(probe, "timeoutSeconds", 1);
            default_nonzero(probe, "periodSeconds", 10);
            default_nonzero(probe, "successThreshold", 1);
            default_nonzero(probe, "failureThreshold", 3);
            if let Some(http_get) = existing(probe, "httpGet") {
                default_http_get(http_get);
            }
            if let Some(grpc) = existing(probe, "grpc") {
                default_value(grpc, "service", json!(""));
            }
        }
    }
    if let Some(lifecycle) = existing(container, "lifecycle") {
        for hook in ["postStart", "preStop"] {
            if let Some(http_get) = existing(lifecycle, hook).and_then(|h| existing(h, "httpGet")) {
                default_http_get(http_get);
            }
        }
    }
}

fn default_http_get(http_get: &mut Map<String, Value>) {
    default_str(http_get, "path", "/");
    default_str(http_get, "scheme", "HTTP");
}

/// `Always` for images tagged `latest` or not tagged at all, else `IfNotPresent`, as
/// Kubernetes decides from the parsed image reference. An image pinned by digest alone is not
/// "latest".
fn pull_policy_for(image: &str) -> &'static str {
    if image.is_empty() {
        // An unparsable reference has no tag.
        return "IfNotPresent";
    }
    let (name, has_digest) = match image.split_once('@') {
        Some((name, _)) => (name, true),
        None => (image, false),
    };
    let last_component = name.rsplit('/').next().unwrap_or(name);
    let tag = last_component.split_once(':').map(|(_, tag)| tag);
    match tag {
        Some("latest") => "Always",
        Some(_) => "IfNotPresent",
        None if has_digest => "IfNotPresent",
        None => "Always",
    }
}

/// The pod-spec defaults inside a `template` (Deployment, ReplicaSet, CloneSet).
pub(crate) fn default_template(spec: &mut Map<String, Value>) {
    if let Some(pod_spec) = child(spec, "template").and_then(|t| child(t, "spec")) {
        default_pod_spec(pod_spec);
    }
}

// ---------------------------------------------------------------------------------------------
// apps/v1

// ---------------------------------------------------------------------------------------------
// autoscaling

// ---------------------------------------------------------------------------------------------
// apps.kruise.io/v1alpha1

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::find;

    fn defaulted(group: &str, version: &str, plural: &str, mut obj: Value) -> Value {
        let resource = find(group, version, plural).expect("resource is registered");
        apply_defaults(resource, &mut obj);
        obj
    }

    /// What Kubernetes fills into a template's pod spec with one container `nginx`.
    fn defaulted_template_spec(image: &str, pull: &str) -> Value {
        json!({
            "containers": [{
                "name": "nginx",
                "image": image,
                "imagePullPolicy": pull,
                "resources": {},
                "terminationMessagePath": "/dev/termination-log",
                "terminationMessagePolicy": "File"
            }],
            "dnsPolicy": "ClusterFirst",
            "restartPolicy": "Always",
            "schedulerName": "default-scheduler",
            "securityContext": {},
            "terminationGracePeriodSeconds": 30
        })
    }

    #[test]
    fn deployment_gets_kubernetes_defaults_including_its_template() {
        // The object `kubectl create deployment nginx --image=nginx:1.25` sends.
        let out = defaulted(
            "apps",
            "v1",
            "deployments",
            json!({
                "apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "nginx", "labels": {"app": "nginx"}},
                "spec": {
                    "selector": {"matchLabels": {"app": "nginx"}},
                    "strategy": {},
                    "template": {
                        "metadata": {"labels": {"app": "nginx"}},
                        "spec": {"containers": [{"name": "nginx", "image": "nginx:1.25", "resources": {}}]}
                    }
                }
            }),
        );
        assert_eq!(
            out["spec"],
            json!({
                "replicas": 1,
                "selector": {"matchLabels": {"app": "nginx"}},
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}},
                "template": {
                    "metadata": {"labels": {"app": "nginx"}},
                    "spec": defaulted_template_spec("nginx:1.25", "IfNotPresent")
                },
                "revisionHistoryLimit": 10,
                "progressDeadlineSeconds": 600
            })
        );
    }

    #[test]
    fn deployment_keeps_given_values_and_recreate_gets_no_rolling_update() {
        let out = defaulted(
            "apps",
            "v1",
            "deployments",
            json!({"spec": {
                "replicas": 0,
                "revisionHistoryLimit": 0,
                "strategy": {"type": "Recreate"},
                "template": {"spec": {"containers": []}}
            }}),
        );
        assert_eq!(out["spec"]["replicas"], json!(0));
        assert_eq!(out["spec"]["revisionHistoryLimit"], json!(0));
        assert_eq!(out["spec"]["strategy"], json!({"type": "Recreate"}));

        let partial = defaulted(
            "apps",
            "v1",
            "deployments",
            json!({"spec": {"strategy": {"rollingUpdate": {"maxSurge": 1}}}}),
        );
        assert_eq!(
            partial["spec"]["strategy"],
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": "25%"}})
        );
    }

    #[test]
    fn replica_set_defaults_replicas_and_template_but_not_requests() {
        let out = defaulted(
            "apps",
            "v1",
            "replicasets",
            json!({"spec": {"template": {"spec": {"containers": [{
                "name": "nginx", "image": "nginx",
                "resources": {"limits": {"cpu": "1"}}
            }]}}}}),
        );
        assert_eq!(out["spec"]["replicas"], json!(1));
        let container = &out["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(container["imagePullPolicy"], json!("Always"));
        // Requests are copied from limits only in real pods, never in templates.
        assert_eq!(container["resources"], json!({"limits": {"cpu": "1"}}));
    }

    #[test]
    fn pod_gets_spec_container_probe_and_admission_defaults() {
        // The object `kubectl run web --image=nginx --port=80` sends, plus a probe and env.
        let out = defaulted(
            "",
            "v1",
            "pods",
            json!({
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": "web", "labels": {"run": "web"}},
                "spec": {"containers": [{
                    "name": "web", "image": "nginx", "ports": [{"containerPort": 80}],
                    "resources": {"limits": {"memory": "64Mi"}},
                    "env": [{"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}],
                    "readinessProbe": {"httpGet": {"port": 80}},
                    "livenessProbe": {"grpc": {"port": 9000}, "periodSeconds": 3}
                }]}
            }),
        );
        assert_eq!(
            out["spec"],
            json!({
                "containers": [{
                    "name": "web", "image": "nginx",
                    "ports": [{"containerPort": 80, "protocol": "TCP"}],
                    "resources": {"limits": {"memory": "64Mi"}, "requests": {"memory": "64Mi"}},
                    "env": [{"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName", "apiVersion": "v1"}}}],
                    "readinessProbe": {
                        "httpGet": {"port": 80, "path": "/", "scheme": "HTTP"},
                        "timeoutSeconds": 1, "periodSeconds": 10, "successThreshold": 1, "failureThreshold": 3
                    },
                    "livenessProbe": {
                        "grpc": {"port": 9000, "service": ""},
                        "timeoutSeconds": 1, "periodSeconds": 3, "successThreshold": 1, "failureThreshold": 3
                    },
                    "imagePullPolicy": "Always",
                    "terminationMessagePath": "/dev/termination-log",
                    "terminationMessagePolicy": "File"
                }],
                "enableServiceLinks": true,
                "dnsPolicy": "ClusterFirst",
                "restartPolicy": "Always",
                "securityContext": {},
                "terminationGracePeriodSeconds": 30,
                "schedulerName": "default-scheduler",
                "priority": 0,
                "preemptionPolicy": "PreemptLowerPriority",
                "serviceAccountName": "default",
                "serviceAccount": "default",
                "tolerations": [
                    {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
                    {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}
                ]
            })
        );
    }

    #[test]
    fn pod_keeps_its_own_tolerations_and_account() {
        let out = defaulted(
            "",
            "v1",
            "pods",
            json!({"spec": {
                "serviceAccountName": "builder",
                "tolerations": [{"operator": "Exists"}],
                "containers": [{"name": "a", "image": "a"}]
            }}),
        );
        assert_eq!(out["spec"]["serviceAccountName"], json!("builder"));
        assert_eq!(out["spec"]["serviceAccount"], json!("builder"));
        assert_eq!(out["spec"]["tolerations"], json!([{"operator": "Exists"}]));
    }

    #[test]
    fn image_pull_policy_follows_the_tag() {
        let cases = [
            ("nginx", "Always"),
            ("nginx:latest", "Always"),
            ("nginx:1.25", "IfNotPresent"),
            ("registry:5000/team/app", "Always"),
            ("registry:5000/team/app:v2", "IfNotPresent"),
            ("nginx@sha256:abcd", "IfNotPresent"),
            ("nginx:latest@sha256:abcd", "Always"),
            ("", "IfNotPresent"),
        ];
        for (image, want) in cases {
            assert_eq!(pull_policy_for(image), want, "image {image:?}");
        }
    }

    #[test]
    fn pod_volumes_get_source_and_mode_defaults() {
        let out = defaulted(
            "",
            "v1",
            "pods",
            json!({"spec": {"volumes": [
                {"name": "scratch"},
                {"name": "cfg", "configMap": {"name": "cfg"}},
                {"name": "host", "hostPath": {"path": "/tmp"}}
            ], "containers": []}}),
        );
        assert_eq!(
            out["spec"]["volumes"],
            json!([
                {"name": "scratch", "emptyDir": {}},
                {"name": "cfg", "configMap": {"name": "cfg", "defaultMode": 420}},
                {"name": "host", "hostPath": {"path": "/tmp", "type": ""}}
            ])
        );
    }

    #[test]
    fn service_gets_cluster_ip_defaults() {
        // `kubectl create service clusterip web --tcp=80:8080` plus an unnamed target port.
        let out = defaulted(
            "",
            "v1",
            "services",
            json!({"metadata": {"name": "web"}, "spec": {
                "selector": {"app": "web"},
                "ports": [{"name": "80-8080", "port": 80, "targetPort": 8080}, {"name": "b", "port": 81}]
            }}),
        );
        assert_eq!(
            out["spec"],
            json!({
                "selector": {"app": "web"},
                "ports": [
                    {"name": "80-8080", "port": 80, "targetPort": 8080, "protocol": "TCP"},
                    {"name": "b", "port": 81, "protocol": "TCP", "targetPort": 81}
                ],
                "sessionAffinity": "None",
                "type": "ClusterIP",
                "internalTrafficPolicy": "Cluster",
                "ipFamilyPolicy": "SingleStack",
                "ipFamilies": ["IPv4"]
            })
        );
        assert_eq!(out["status"], json!({"loadBalancer": {}}));
    }

    #[test]
    fn service_type_specific_defaults() {
        let node_port = defaulted(
            "",
            "v1",
            "services",
            json!({"spec": {"type": "NodePort", "ports": [{"port": 80}]}}),
        );
        assert_eq!(node_port["spec"]["externalTrafficPolicy"], json!("Cluster"));
        let lb = defaulted(
            "",
            "v1",
            "services",
            json!({"spec": {"type": "LoadBalancer", "sessionAffinity": "ClientIP"}}),
        );
        assert_eq!(lb["spec"]["allocateLoadBalancerNodePorts"], json!(true));
        assert_eq!(
            lb["spec"]["sessionAffinityConfig"],
            json!({"clientIP": {"timeoutSeconds": 10800}})
        );
        let external = defaulted(
            "",
            "v1",
            "services",
            json!({"spec": {"type": "ExternalName", "externalName": "example.com"}}),
        );
        assert!(external["spec"].get("ipFamilies").is_none());
        assert!(external["spec"].get("internalTrafficPolicy").is_none());
        let headless = defaulted("", "v1", "services", json!({"spec": {"clusterIP": "None"}}));
        assert_eq!(
            headless["spec"]["ipFamilyPolicy"],
            json!("RequireDualStack")
        );
    }

    #[test]
    fn namespace_gets_label_and_phase() {
        let out = defaulted(
            "",
            "v1",
            "namespaces",
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-a"}, "status": {}}),
        );
        assert_eq!(
            out,
            json!({
                "apiVersion": "v1", "kind": "Namespace",
                "metadata": {"name": "team-a", "labels": {"kubernetes.io/metadata.name": "team-a"}},
                "status": {"phase": "Active"}
            })
        );
    }

    #[test]
    fn emptied_namespace_finalizers_stay_empty() {
        let out = defaulted(
            "",
            "v1",
            "namespaces",
            json!({"metadata": {"name": "team-a"}, "spec": {"finalizers": []}}),
        );
        assert_eq!(out["spec"], json!({"finalizers": []}));
    }

    #[test]
    fn secret_type_defaults_to_opaque() {
        let out = defaulted("", "v1", "secrets", json!({"data": {}}));
        assert_eq!(out["type"], json!("Opaque"));
        let typed = defaulted("", "v1", "secrets", json!({"type": "kubernetes.io/tls"}));
        assert_eq!(typed["type"], json!("kubernetes.io/tls"));
    }

    #[test]
    fn endpoints_and_node_defaults() {
        let ep = defaulted(
            "",
            "v1",
            "endpoints",
            json!({"subsets": [{"ports": [{"port": 80}]}]}),
        );
        assert_eq!(ep["subsets"][0]["ports"][0]["protocol"], json!("TCP"));
        let slice = defaulted(
            "discovery.k8s.io",
            "v1",
            "endpointslices",
            json!({"ports": [{"port": 80}, {"name": "dns", "port": 53, "protocol": "UDP"}]}),
        );
        assert_eq!(
            slice["ports"],
            json!([{"port": 80, "name": "", "protocol": "TCP"},
                   {"name": "dns", "port": 53, "protocol": "UDP"}])
        );
        let node = defaulted(
            "",
            "v1",
            "nodes",
            json!({"status": {"capacity": {"cpu": "2"}}}),
        );
        assert_eq!(node["status"]["allocatable"], json!({"cpu": "2"}));
    }

    #[test]
    fn hpa_v2_gets_min_replicas_cpu_metric_and_full_behavior() {
        let out = defaulted(
            "autoscaling",
            "v2",
            "horizontalpodautoscalers",
            json!({"spec": {
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                "maxReplicas": 5,
                "behavior": {"scaleDown": {"stabilizationWindowSeconds": 60}}
            }}),
        );
        assert_eq!(out["spec"]["minReplicas"], json!(1));
        assert_eq!(
            out["spec"]["metrics"],
            json!([{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}}])
        );
        assert_eq!(
            out["spec"]["behavior"],
            json!({
                "scaleUp": {
                    "stabilizationWindowSeconds": 0, "selectPolicy": "Max",
                    "policies": [{"type": "Pods", "value": 4, "periodSeconds": 15}, {"type": "Percent", "value": 100, "periodSeconds": 15}]
                },
                "scaleDown": {
                    "stabilizationWindowSeconds": 60, "selectPolicy": "Max",
                    "policies": [{"type": "Percent", "value": 100, "periodSeconds": 15}]
                }
            })
        );
        let without_behavior = defaulted(
            "autoscaling",
            "v2",
            "horizontalpodautoscalers",
            json!({"spec": {"maxReplicas": 5}}),
        );
        assert!(without_behavior["spec"].get("behavior").is_none());
    }

    #[test]
    fn hpa_v1_gets_only_min_replicas() {
        let out = defaulted(
            "autoscaling",
            "v1",
            "horizontalpodautoscalers",
            json!({"spec": {"maxReplicas": 3}}),
        );
        assert_eq!(out["spec"], json!({"maxReplicas": 3, "minReplicas": 1}));
    }

    #[test]
    fn clone_set_gets_openkruise_defaults() {
        let out = defaulted(
            "apps.kruise.io",
            "v1alpha1",
            "clonesets",
            json!({"spec": {
                "selector": {"matchLabels": {"app": "nginx"}},
                "template": {
                    "metadata": {"labels": {"app": "nginx"}},
                    "spec": {"containers": [{"name": "nginx", "image": "nginx:1.25"}]}
                }
            }}),
        );
        assert_eq!(
            out["spec"],
            json!({
                "selector": {"matchLabels": {"app": "nginx"}},
                "template": {
                    "metadata": {"labels": {"app": "nginx"}},
                    "spec": defaulted_template_spec("nginx:1.25", "IfNotPresent")
                },
                "replicas": 1,
                "revisionHistoryLimit": 10,
                "scaleStrategy": {},
                "updateStrategy": {"type": "ReCreate", "partition": 0, "maxUnavailable": "20%", "maxSurge": 0}
            })
        );
        let in_place = defaulted(
            "apps.kruise.io",
            "v1alpha1",
            "clonesets",
            json!({"spec": {"updateStrategy": {"type": "InPlaceIfPossible", "partition": "50%"}}}),
        );
        assert_eq!(
            in_place["spec"]["updateStrategy"],
            json!({"type": "InPlaceIfPossible", "partition": "50%", "inPlaceUpdateStrategy": {}, "maxUnavailable": "20%", "maxSurge": 0})
        );
    }

    #[test]
    fn kinds_without_defaults_and_malformed_input_are_left_alone() {
        let cm = json!({"metadata": {"name": "x"}, "data": {"a": "b"}});
        assert_eq!(defaulted("", "v1", "configmaps", cm.clone()), cm);
        let weird = json!({"spec": "not an object"});
        assert_eq!(defaulted("apps", "v1", "deployments", weird.clone()), weird);
        let not_object = json!([1, 2]);
        assert_eq!(defaulted("", "v1", "pods", not_object.clone()), not_object);
    }
}
