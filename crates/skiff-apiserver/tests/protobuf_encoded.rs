//! Bodies built here from the protobuf types, the way Go's marshaller writes them (every
//! non-pointer scalar present, zero or not), and decoded back to Kubernetes JSON.

use std::collections::BTreeMap;

use k8s_pb::api::apps::v1 as apps;
use k8s_pb::api::autoscaling::v1 as autoscaling_v1;
use k8s_pb::api::autoscaling::v2 as autoscaling_v2;
use k8s_pb::api::batch::v1 as batch;
use k8s_pb::api::coordination::v1 as coordination;
use k8s_pb::api::core::v1 as core;
use k8s_pb::api::policy::v1 as policy;
use k8s_pb::apimachinery::pkg::api::resource::Quantity;
use k8s_pb::apimachinery::pkg::apis::meta::v1 as meta;
use k8s_pb::apimachinery::pkg::runtime::{RawExtension, TypeMeta, Unknown};
use k8s_pb::apimachinery::pkg::util::intstr::IntOrString;
use prost::Message;
use serde_json::json;
use skiff_apiserver::protobuf::{decode, ProtobufError, MAGIC, SUPPORTED_KINDS};

/// Wraps an object message the way client-go's protobuf serializer does.
fn body(api_version: &str, kind: &str, object: &impl Message) -> Vec<u8> {
    envelope(Unknown {
        type_meta: Some(TypeMeta {
            api_version: Some(api_version.to_owned()),
            kind: Some(kind.to_owned()),
        }),
        raw: Some(object.encode_to_vec()),
        content_encoding: Some(String::new()),
        content_type: Some(String::new()),
    })
}

fn envelope(unknown: Unknown) -> Vec<u8> {
    let mut bytes = MAGIC.to_vec();
    bytes.extend(unknown.encode_to_vec());
    bytes
}

fn some(text: &str) -> Option<String> {
    Some(text.to_owned())
}

fn string_map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(key, value)| ((*key).to_owned(), (*value).to_owned()))
        .collect()
}

/// ObjectMeta as Go writes a fresh one: every string and integer present and zero, and
/// the zero creation time as an empty message.
fn go_object_meta(name: &str, labels: &[(&str, &str)]) -> meta::ObjectMeta {
    meta::ObjectMeta {
        name: some(name),
        generate_name: some(""),
        namespace: some(""),
        self_link: some(""),
        uid: some(""),
        resource_version: some(""),
        generation: Some(0),
        creation_timestamp: Some(meta::Time::default()),
        labels: string_map(labels),
        ..Default::default()
    }
}

fn go_container(name: &str, image: &str) -> core::Container {
    core::Container {
        name: some(name),
        image: some(image),
        working_dir: some(""),
        resources: Some(core::ResourceRequirements::default()),
        termination_message_path: some(""),
        image_pull_policy: some(""),
        stdin: Some(false),
        stdin_once: Some(false),
        tty: Some(false),
        termination_message_policy: some(""),
        ..Default::default()
    }
}

#[test]
fn create_deployment_matches_kubectl_json() {
    let deployment = apps::Deployment {
        metadata: Some(go_object_meta("nginx", &[("app", "nginx")])),
        spec: Some(apps::DeploymentSpec {
            replicas: Some(1),
            selector: Some(meta::LabelSelector {
                match_labels: string_map(&[("app", "nginx")]),
                ..Default::default()
            }),
            template: Some(core::PodTemplateSpec {
                metadata: Some(go_object_meta("", &[("app", "nginx")])),
                spec: Some(core::PodSpec {
                    containers: vec![go_container("nginx", "nginx:1.18")],
                    restart_policy: some(""),
                    dns_policy: some(""),
                    service_account_name: some(""),
                    host_network: Some(false),
                    scheduler_name: some(""),
                    ..Default::default()
                }),
            }),
            strategy: Some(apps::DeploymentStrategy {
                r#type: some(""),
                rolling_update: None,
            }),
            min_ready_seconds: Some(0),
            paused: Some(false),
            ..Default::default()
        }),
        status: Some(apps::DeploymentStatus {
            observed_generation: Some(0),
            replicas: Some(0),
            updated_replicas: Some(0),
            ready_replicas: Some(0),
            available_replicas: Some(0),
            unavailable_replicas: Some(0),
            ..Default::default()
        }),
    };
    let decoded = decode(&body("apps/v1", "Deployment", &deployment)).expect("decodes");
    assert_eq!(
        decoded,
        json!({"kind":"Deployment","apiVersion":"apps/v1",
               "metadata":{"name":"nginx","creationTimestamp":null,"labels":{"app":"nginx"}},
               "spec":{"replicas":1,"selector":{"matchLabels":{"app":"nginx"}},
                       "template":{"metadata":{"creationTimestamp":null,"labels":{"app":"nginx"}},
                                   "spec":{"containers":[{"name":"nginx","image":"nginx:1.18","resources":{}}]}},
                       "strategy":{}},
               "status":{}})
    );
}

#[test]
fn create_namespace_configmap_and_secret_match_kubectl_json() {
    let namespace = core::Namespace {
        metadata: Some(go_object_meta("foo", &[])),
        spec: Some(core::NamespaceSpec::default()),
        status: Some(core::NamespaceStatus {
            phase: some(""),
            ..Default::default()
        }),
    };
    let config_map = core::ConfigMap {
        metadata: Some(go_object_meta("c", &[])),
        data: string_map(&[("a", "b")]),
        ..Default::default()
    };
    let secret = core::Secret {
        metadata: Some(go_object_meta("s", &[])),
        data: BTreeMap::from([("a".to_owned(), b"b".to_vec())]),
        r#type: some(""),
        ..Default::default()
    };
    let cases = [
        (
            body("v1", "Namespace", &namespace),
            json!({"kind":"Namespace","apiVersion":"v1","metadata":{"name":"foo","creationTimestamp":null},"spec":{},"status":{}}),
        ),
        (
            body("v1", "ConfigMap", &config_map),
            json!({"kind":"ConfigMap","apiVersion":"v1","metadata":{"name":"c","creationTimestamp":null},"data":{"a":"b"}}),
        ),
        (
            body("v1", "Secret", &secret),
            json!({"kind":"Secret","apiVersion":"v1","metadata":{"name":"s","creationTimestamp":null},"data":{"a":"Yg=="}}),
        ),
    ];
    for (bytes, expected) in cases {
        assert_eq!(decode(&bytes).expect("decodes"), expected);
    }
}

#[test]
fn create_service_clusterip_matches_kubectl_json() {
    let service = core::Service {
        metadata: Some(go_object_meta("s", &[("app", "s")])),
        spec: Some(core::ServiceSpec {
            ports: vec![core::ServicePort {
                name: some("80-8080"),
                protocol: some("TCP"),
                port: Some(80),
                target_port: Some(IntOrString {
                    r#type: Some(0),
                    int_val: Some(8080),
                    str_val: some(""),
                }),
                node_port: Some(0),
                ..Default::default()
            }],
            selector: string_map(&[("app", "s")]),
            cluster_ip: some(""),
            r#type: some("ClusterIP"),
            session_affinity: some(""),
            load_balancer_ip: some(""),
            external_name: some(""),
            external_traffic_policy: some(""),
            health_check_node_port: Some(0),
            publish_not_ready_addresses: Some(false),
            ..Default::default()
        }),
        status: Some(core::ServiceStatus {
            load_balancer: Some(core::LoadBalancerStatus::default()),
            ..Default::default()
        }),
    };
    assert_eq!(
        decode(&body("v1", "Service", &service)).expect("decodes"),
        json!({"kind":"Service","apiVersion":"v1",
               "metadata":{"name":"s","creationTimestamp":null,"labels":{"app":"s"}},
               "spec":{"ports":[{"name":"80-8080","protocol":"TCP","port":80,"targetPort":8080}],
                       "selector":{"app":"s"},"type":"ClusterIP"},
               "status":{"loadBalancer":{}}})
    );
}

#[test]
fn autoscale_matches_kubectl_json() {
    let hpa = autoscaling_v1::HorizontalPodAutoscaler {
        metadata: Some(go_object_meta("nginx", &[])),
        spec: Some(autoscaling_v1::HorizontalPodAutoscalerSpec {
            scale_target_ref: Some(autoscaling_v1::CrossVersionObjectReference {
                kind: some("Deployment"),
                name: some("nginx"),
                api_version: some("apps/v1"),
            }),
            min_replicas: Some(1),
            max_replicas: Some(10),
            target_cpu_utilization_percentage: Some(50),
        }),
        status: Some(autoscaling_v1::HorizontalPodAutoscalerStatus {
            current_replicas: Some(0),
            desired_replicas: Some(0),
            ..Default::default()
        }),
    };
    assert_eq!(
        decode(&body("autoscaling/v1", "HorizontalPodAutoscaler", &hpa)).expect("decodes"),
        json!({"kind":"HorizontalPodAutoscaler","apiVersion":"autoscaling/v1",
               "metadata":{"name":"nginx","creationTimestamp":null},
               "spec":{"scaleTargetRef":{"kind":"Deployment","name":"nginx","apiVersion":"apps/v1"},
                       "minReplicas":1,"maxReplicas":10,"targetCPUUtilizationPercentage":50},
               "status":{"currentReplicas":0,"desiredReplicas":0}})
    );
}

#[test]
fn create_pdb_and_drain_eviction_match_kubectl_json() {
    let pdb = policy::PodDisruptionBudget {
        metadata: Some(go_object_meta("db", &[])),
        spec: Some(policy::PodDisruptionBudgetSpec {
            min_available: Some(IntOrString {
                r#type: Some(0),
                int_val: Some(2),
                str_val: some(""),
            }),
            selector: Some(meta::LabelSelector {
                match_labels: string_map(&[("app", "db")]),
                ..Default::default()
            }),
            ..Default::default()
        }),
        status: Some(policy::PodDisruptionBudgetStatus {
            observed_generation: Some(0),
            disruptions_allowed: Some(0),
            current_healthy: Some(0),
            desired_healthy: Some(0),
            expected_pods: Some(0),
            ..Default::default()
        }),
    };
    assert_eq!(
        decode(&body("policy/v1", "PodDisruptionBudget", &pdb)).expect("decodes"),
        json!({"kind":"PodDisruptionBudget","apiVersion":"policy/v1",
               "metadata":{"name":"db","creationTimestamp":null},
               "spec":{"minAvailable":2,"selector":{"matchLabels":{"app":"db"}}},
               "status":{"disruptionsAllowed":0,"currentHealthy":0,"desiredHealthy":0,"expectedPods":0}})
    );
    let mut pod_meta = go_object_meta("db-1", &[]);
    pod_meta.namespace = some("default");
    let eviction = policy::Eviction {
        metadata: Some(pod_meta),
        delete_options: Some(meta::DeleteOptions {
            grace_period_seconds: Some(30),
            ..Default::default()
        }),
    };
    assert_eq!(
        decode(&body("policy/v1", "Eviction", &eviction)).expect("decodes"),
        json!({"kind":"Eviction","apiVersion":"policy/v1",
               "metadata":{"name":"db-1","namespace":"default","creationTimestamp":null},
               "deleteOptions":{"gracePeriodSeconds":30}})
    );
}

#[test]
fn pointer_zeros_survive_and_special_types_take_their_json_forms() {
    let created = meta::Time {
        seconds: Some(1_704_164_645),
        nanos: Some(0),
    };
    let deployment = apps::Deployment {
        metadata: Some(meta::ObjectMeta {
            name: some("web"),
            namespace: some("default"),
            creation_timestamp: Some(created),
            deletion_timestamp: Some(created),
            deletion_grace_period_seconds: Some(0),
            owner_references: vec![meta::OwnerReference {
                api_version: some("v1"),
                kind: some("Thing"),
                name: some("owner"),
                uid: some("u-1"),
                controller: Some(true),
                block_owner_deletion: Some(false),
            }],
            managed_fields: vec![meta::ManagedFieldsEntry {
                manager: some("kubectl"),
                operation: some("Update"),
                fields_type: some("FieldsV1"),
                fields_v1: Some(meta::FieldsV1 {
                    raw: Some(br#"{"f:spec":{}}"#.to_vec()),
                }),
                ..Default::default()
            }],
            ..Default::default()
        }),
        spec: Some(apps::DeploymentSpec {
            replicas: Some(0),
            strategy: Some(apps::DeploymentStrategy {
                r#type: some("RollingUpdate"),
                rolling_update: Some(apps::RollingUpdateDeployment {
                    max_unavailable: Some(IntOrString {
                        r#type: Some(0),
                        int_val: Some(0),
                        str_val: some(""),
                    }),
                    max_surge: Some(IntOrString {
                        r#type: Some(1),
                        int_val: Some(0),
                        str_val: some("25%"),
                    }),
                }),
            }),
            template: Some(core::PodTemplateSpec {
                metadata: None,
                spec: Some(core::PodSpec {
                    volumes: vec![core::Volume {
                        name: some("scratch"),
                        volume_source: Some(core::VolumeSource {
                            empty_dir: Some(core::EmptyDirVolumeSource {
                                medium: some(""),
                                size_limit: Some(Quantity {
                                    string: some("1Gi"),
                                }),
                            }),
                            ..Default::default()
                        }),
                    }],
                    containers: vec![core::Container {
                        name: some("web"),
                        ports: vec![core::ContainerPort {
                            name: some("http"),
                            host_port: Some(0),
                            container_port: Some(80),
                            protocol: some("TCP"),
                            host_ip: some(""),
                        }],
                        env: vec![core::EnvVar {
                            name: some("NODE"),
                            value: some(""),
                            value_from: Some(core::EnvVarSource {
                                field_ref: Some(core::ObjectFieldSelector {
                                    api_version: some(""),
                                    field_path: some("spec.nodeName"),
                                }),
                                ..Default::default()
                            }),
                        }],
                        resources: Some(core::ResourceRequirements {
                            limits: BTreeMap::from([(
                                "cpu".to_owned(),
                                Quantity {
                                    string: some("500m"),
                                },
                            )]),
                            ..Default::default()
                        }),
                        readiness_probe: Some(core::Probe {
                            handler: Some(core::ProbeHandler {
                                http_get: Some(core::HttpGetAction {
                                    path: some("/healthz"),
                                    port: Some(IntOrString {
                                        r#type: Some(1),
                                        int_val: Some(0),
                                        str_val: some("http"),
                                    }),
                                    host: some(""),
                                    scheme: some("HTTP"),
                                    ..Default::default()
                                }),
                                ..Default::default()
                            }),
                            initial_delay_seconds: Some(0),
                            period_seconds: Some(10),
                            ..Default::default()
                        }),
                        ..Default::default()
                    }],
                    termination_grace_period_seconds: Some(30),
                    ..Default::default()
                }),
            }),
            ..Default::default()
        }),
        status: Some(apps::DeploymentStatus {
            conditions: vec![apps::DeploymentCondition {
                r#type: some("Available"),
                status: some("True"),
                last_update_time: Some(meta::Time::default()),
                last_transition_time: Some(created),
                reason: some(""),
                message: some(""),
            }],
            ..Default::default()
        }),
    };
    let decoded = decode(&body("apps/v1", "Deployment", &deployment)).expect("decodes");
    assert_eq!(
        decoded,
        json!({"kind":"Deployment","apiVersion":"apps/v1",
            "metadata":{"name":"web","namespace":"default",
                "creationTimestamp":"2024-01-02T03:04:05Z","deletionTimestamp":"2024-01-02T03:04:05Z",
                "deletionGracePeriodSeconds":0,
                "ownerReferences":[{"apiVersion":"v1","kind":"Thing","name":"owner","uid":"u-1",
                                    "controller":true,"blockOwnerDeletion":false}],
                "managedFields":[{"manager":"kubectl","operation":"Update","fieldsType":"FieldsV1",
                                  "fieldsV1":{"f:spec":{}}}]},
            "spec":{"replicas":0,
                "template":{"metadata":{"creationTimestamp":null},
                    "spec":{"volumes":[{"name":"scratch","emptyDir":{"sizeLimit":"1Gi"}}],
                        "containers":[{"name":"web",
                            "ports":[{"name":"http","containerPort":80,"protocol":"TCP"}],
                            "env":[{"name":"NODE","valueFrom":{"fieldRef":{"fieldPath":"spec.nodeName"}}}],
                            "resources":{"limits":{"cpu":"500m"}},
                            "readinessProbe":{"httpGet":{"path":"/healthz","port":"http","scheme":"HTTP"},
                                              "periodSeconds":10}}],
                        "terminationGracePeriodSeconds":30}},
                "strategy":{"type":"RollingUpdate","rollingUpdate":{"maxUnavailable":0,"maxSurge":"25%"}}},
            "status":{"conditions":[{"type":"Available","status":"True","lastUpdateTime":null,
                                     "lastTransitionTime":"2024-01-02T03:04:05Z"}]}})
    );
}

#[test]
fn micro_times_bytes_and_raw_extensions_convert() {
    let lease = coordination::Lease {
        metadata: Some(meta::ObjectMeta {
            name: some("node-1"),
            ..Default::default()
        }),
        spec: Some(coordination::LeaseSpec {
            holder_identity: some("node-1"),
            lease_duration_seconds: Some(40),
            renew_time: Some(meta::MicroTime {
                seconds: Some(1_704_164_645),
                nanos: Some(123_456_789),
            }),
            lease_transitions: Some(0),
            ..Default::default()
        }),
    };
    let secret = core::Secret {
        metadata: None,
        immutable: Some(false),
        data: BTreeMap::from([("bin".to_owned(), vec![0u8, 255, 10])]),
        string_data: string_map(&[("plain", "text")]),
        r#type: some("Opaque"),
    };
    let revision = apps::ControllerRevision {
        metadata: None,
        data: Some(RawExtension {
            raw: Some(br#"{"spec":{"template":{"$patch":"replace"}}}"#.to_vec()),
        }),
        revision: Some(3),
    };
    let hpa = autoscaling_v2::HorizontalPodAutoscaler {
        metadata: None,
        spec: Some(autoscaling_v2::HorizontalPodAutoscalerSpec {
            max_replicas: Some(5),
            metrics: vec![autoscaling_v2::MetricSpec {
                r#type: some("Resource"),
                resource: Some(autoscaling_v2::ResourceMetricSource {
                    name: some("cpu"),
                    target: Some(autoscaling_v2::MetricTarget {
                        r#type: some("Utilization"),
                        average_utilization: Some(80),
                        ..Default::default()
                    }),
                }),
                ..Default::default()
            }],
            behavior: Some(autoscaling_v2::HorizontalPodAutoscalerBehavior {
                scale_down: Some(autoscaling_v2::HpaScalingRules {
                    stabilization_window_seconds: Some(0),
                    policies: vec![autoscaling_v2::HpaScalingPolicy {
                        r#type: some("Pods"),
                        value: Some(1),
                        period_seconds: Some(60),
                    }],
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }),
        status: None,
    };
    let cases = [
        (
            body("coordination.k8s.io/v1", "Lease", &lease),
            json!({"kind":"Lease","apiVersion":"coordination.k8s.io/v1",
                   "metadata":{"name":"node-1","creationTimestamp":null},
                   "spec":{"holderIdentity":"node-1","leaseDurationSeconds":40,
                           "renewTime":"2024-01-02T03:04:05.123456Z","leaseTransitions":0}}),
        ),
        (
            body("v1", "Secret", &secret),
            json!({"kind":"Secret","apiVersion":"v1","metadata":{"creationTimestamp":null},
                   "immutable":false,"data":{"bin":"AP8K"},"stringData":{"plain":"text"},"type":"Opaque"}),
        ),
        (
            body("apps/v1", "ControllerRevision", &revision),
            json!({"kind":"ControllerRevision","apiVersion":"apps/v1","metadata":{"creationTimestamp":null},
                   "data":{"spec":{"template":{"$patch":"replace"}}},"revision":3}),
        ),
        (
            body("autoscaling/v2", "HorizontalPodAutoscaler", &hpa),
            json!({"kind":"HorizontalPodAutoscaler","apiVersion":"autoscaling/v2",
                   "metadata":{"creationTimestamp":null},
                   "spec":{"scaleTargetRef":{"kind":"","name":""},"maxReplicas":5,
                           "metrics":[{"type":"Resource","resource":{"name":"cpu",
                                       "target":{"type":"Utilization","averageUtilization":80}}}],
                           "behavior":{"scaleDown":{"stabilizationWindowSeconds":0,
                                       "policies":[{"type":"Pods","value":1,"periodSeconds":60}]}}},
                   "status":{"desiredReplicas":0}}),
        ),
    ];
    for (bytes, expected) in cases {
        assert_eq!(decode(&bytes).expect("decodes"), expected);
    }
}

#[test]
fn create_cronjob_matches_kubectl_json() {
    let cron_job = batch::CronJob {
        metadata: Some(go_object_meta("hello", &[])),
        spec: Some(batch::CronJobSpec {
            schedule: some("*/1 * * * *"),
            concurrency_policy: some(""),
            job_template: Some(batch::JobTemplateSpec {
                metadata: Some(go_object_meta("hello", &[])),
                spec: Some(batch::JobSpec {
                    template: Some(core::PodTemplateSpec {
                        metadata: Some(go_object_meta("", &[])),
                        spec: Some(core::PodSpec {
                            containers: vec![go_container("hello", "busybox")],
                            restart_policy: some("OnFailure"),
                            dns_policy: some(""),
                            service_account_name: some(""),
                            host_network: Some(false),
                            scheduler_name: some(""),
                            ..Default::default()
                        }),
                    }),
                    ..Default::default()
                }),
            }),
            ..Default::default()
        }),
        status: Some(batch::CronJobStatus::default()),
    };
    let decoded = decode(&body("batch/v1", "CronJob", &cron_job)).expect("decodes");
    assert_eq!(
        decoded,
        json!({"kind":"CronJob","apiVersion":"batch/v1",
               "metadata":{"name":"hello","creationTimestamp":null},
               "spec":{"schedule":"*/1 * * * *",
                       "jobTemplate":{"metadata":{"name":"hello","creationTimestamp":null},
                                      "spec":{"template":{"metadata":{"creationTimestamp":null},
                                              "spec":{"containers":[{"name":"hello","image":"busybox","resources":{}}],
                                                      "restartPolicy":"OnFailure"}}}}},
               "status":{}})
    );
}

#[test]
fn every_listed_kind_decodes_an_empty_object() {
    for (api_version, kind) in SUPPORTED_KINDS {
        let bytes = envelope(Unknown {
            type_meta: Some(TypeMeta {
                api_version: some(api_version),
                kind: some(kind),
            }),
            raw: Some(Vec::new()),
            ..Default::default()
        });
        let decoded = decode(&bytes).unwrap_or_else(|error| panic!("{kind}: {error}"));
        assert_eq!(decoded["kind"], json!(kind));
        assert_eq!(decoded["apiVersion"], json!(api_version));
        assert_eq!(
            decoded["metadata"],
            json!({"creationTimestamp": null}),
            "{kind}"
        );
    }
}

#[test]
fn unsupported_kinds_are_named_in_the_error() {
    let bytes = body("apps/v1", "StatefulSet", &apps::StatefulSet::default());
    let error = decode(&bytes).expect_err("StatefulSet has no decoder");
    assert!(error.is_unsupported_kind());
    assert!(matches!(
        &error,
        ProtobufError::UnsupportedKind { api_version, kind }
            if api_version == "apps/v1" && kind == "StatefulSet"
    ));
    assert!(error.to_string().contains("\"StatefulSet\""), "{error}");
    // Same kind name, other group version: still unsupported.
    let wrong_version = body("apps/v1beta1", "Deployment", &apps::Deployment::default());
    assert!(decode(&wrong_version)
        .expect_err("unsupported")
        .is_unsupported_kind());
}

/// Recognises the error a malformed body must produce.
type ErrorCheck = fn(&ProtobufError) -> bool;

#[test]
fn malformed_envelopes_are_rejected() {
    let valid_raw = core::Namespace::default().encode_to_vec();
    let with = |api_version: &str, kind: &str, encoding: &str, content_type: &str| {
        envelope(Unknown {
            type_meta: Some(TypeMeta {
                api_version: some(api_version),
                kind: some(kind),
            }),
            raw: Some(valid_raw.clone()),
            content_encoding: some(encoding),
            content_type: some(content_type),
        })
    };
    let namespace = with("v1", "Namespace", "", "");
    let cases: Vec<(&str, Vec<u8>, ErrorCheck)> = vec![
        ("empty body", vec![], |e| {
            matches!(e, ProtobufError::MissingMagic)
        }),
        ("JSON body", br#"{"kind":"Namespace"}"#.to_vec(), |e| {
            matches!(e, ProtobufError::MissingMagic)
        }),
        (
            "wrong magic",
            [b"k8s\x01".as_slice(), &namespace[4..]].concat(),
            |e| matches!(e, ProtobufError::MissingMagic),
        ),
        ("magic only", MAGIC.to_vec(), |e| {
            matches!(e, ProtobufError::MissingTypeMeta)
        }),
        ("no kind", with("v1", "", "", ""), |e| {
            matches!(e, ProtobufError::MissingTypeMeta)
        }),
        (
            "gzip",
            with("v1", "Namespace", "gzip", ""),
            |e| matches!(e, ProtobufError::UnsupportedContentEncoding(encoding) if encoding == "gzip"),
        ),
        (
            "json payload",
            with("v1", "Namespace", "", "application/json"),
            |e| matches!(e, ProtobufError::UnsupportedContentType(_)),
        ),
        (
            "truncated envelope",
            namespace[..namespace.len() - 1].to_vec(),
            |e| matches!(e, ProtobufError::Envelope(_)),
        ),
        (
            "garbage object",
            envelope(Unknown {
                type_meta: Some(TypeMeta {
                    api_version: some("v1"),
                    kind: some("Namespace"),
                }),
                raw: Some(vec![0x0a, 0xff, 0xff, 0xff]),
                ..Default::default()
            }),
            |e| matches!(e, ProtobufError::Object { kind, .. } if kind == "Namespace"),
        ),
    ];
    assert!(
        decode(&namespace).is_ok(),
        "the unmodified envelope decodes"
    );
    for (name, bytes, is_expected) in cases {
        let error = decode(&bytes).expect_err(name);
        assert!(is_expected(&error), "{name}: {error:?}");
    }
}

#[test]
fn bad_special_values_are_errors_not_panics() {
    let bad_int_or_string = core::Service {
        spec: Some(core::ServiceSpec {
            ports: vec![core::ServicePort {
                target_port: Some(IntOrString {
                    r#type: Some(7),
                    ..Default::default()
                }),
                ..Default::default()
            }],
            ..Default::default()
        }),
        ..Default::default()
    };
    let bad_time = core::Namespace {
        metadata: Some(meta::ObjectMeta {
            creation_timestamp: Some(meta::Time {
                seconds: Some(i64::MAX),
                nanos: Some(0),
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    let bad_raw = apps::ControllerRevision {
        data: Some(RawExtension {
            raw: Some(b"\x0a\x02hi".to_vec()),
        }),
        ..Default::default()
    };
    assert!(matches!(
        decode(&body("v1", "Service", &bad_int_or_string)),
        Err(ProtobufError::InvalidIntOrString(7))
    ));
    assert!(matches!(
        decode(&body("v1", "Namespace", &bad_time)),
        Err(ProtobufError::InvalidTime { .. })
    ));
    assert!(matches!(
        decode(&body("apps/v1", "ControllerRevision", &bad_raw)),
        Err(ProtobufError::RawNotJson { .. })
    ));
}

/// A small deterministic generator so the noise is the same on every run.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn random_and_corrupted_bodies_never_panic() {
    let fixtures_dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/protobuf");
    let mut samples = vec![body("apps/v1", "Deployment", &apps::Deployment::default())];
    for entry in std::fs::read_dir(&fixtures_dir).expect("fixtures directory") {
        let path = entry.expect("directory entry").path();
        if path.extension().is_some_and(|extension| extension == "pb") {
            samples.push(std::fs::read(&path).expect("fixture readable"));
        }
    }
    let mut random = XorShift(0x9E37_79B9_7F4A_7C15);
    for sample in &samples {
        // Every truncation.
        for length in 0..sample.len() {
            let _ = decode(&sample[..length]);
        }
        // Every single-byte corruption, with a pseudo-random replacement.
        for position in 0..sample.len() {
            let mut corrupted = sample.clone();
            corrupted[position] = (random.next() & 0xff) as u8;
            let _ = decode(&corrupted);
        }
    }
    // Pure noise behind a valid magic prefix.
    for _ in 0..2_000 {
        let length = (random.next() % 256) as usize;
        let mut noise = MAGIC.to_vec();
        noise.extend((0..length).map(|_| (random.next() & 0xff) as u8));
        let _ = decode(&noise);
    }
}
