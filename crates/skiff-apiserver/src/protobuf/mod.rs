//! Decoding of Kubernetes protobuf request bodies into Kubernetes JSON.
//!
//! kubectl 1.32 and later send `application/vnd.kubernetes.protobuf` bodies from its
//! typed-client commands (`create deployment`, `create namespace`, `autoscale`, ...) and
//! never fall back to JSON, while the rest of the server works on JSON. [`decode`] turns
//! such a body into exactly the JSON the same client would have sent, so everything
//! after it is unaware of the wire format.
//!
//! The wire form is the magic prefix `k8s\0` followed by a `runtime.Unknown` envelope
//! whose `raw` field holds the object's own protobuf message.

mod json;
mod types;

use k8s_pb::api::apps::v1 as apps_v1;
use k8s_pb::api::authentication::v1 as authentication_v1;
use k8s_pb::api::authorization::v1 as authorization_v1;
use k8s_pb::api::autoscaling::v1 as autoscaling_v1;
use k8s_pb::api::autoscaling::v2 as autoscaling_v2;
use k8s_pb::api::batch::v1 as batch_v1;
use k8s_pb::api::coordination::v1 as coordination_v1;
use k8s_pb::api::core::v1 as core_v1;
use k8s_pb::api::policy::v1 as policy_v1;
use k8s_pb::api::rbac::v1 as rbac_v1;
use k8s_pb::apimachinery::pkg::apis::meta::v1 as meta_v1;
use k8s_pb::apimachinery::pkg::runtime::Unknown;
use prost::Message;
use serde_json::{Map, Value};

use json::ToJson;

/// The media type of protobuf bodies, to recognise them by `Content-Type`.
pub const PROTOBUF_MEDIA_TYPE: &str = "application/vnd.kubernetes.protobuf";

/// Every Kubernetes protobuf body starts with these four bytes, which tell it apart
/// from a bare protobuf message.
pub const MAGIC: &[u8; 4] = b"k8s\0";

/// The `(apiVersion, kind)` pairs of objects [`decode`] understands, for callers that want to
/// list them (e.g. in an error message or documentation). [`decode`] also reads
/// `DeleteOptions` in any group version, which is no object.
pub const SUPPORTED_KINDS: &[(&str, &str)] = &[
    ("v1", "Namespace"),
    ("v1", "Pod"),
    ("v1", "Service"),
    ("v1", "ConfigMap"),
    ("v1", "Secret"),
    ("v1", "Node"),
    ("v1", "Endpoints"),
    ("v1", "Event"),
    ("v1", "ServiceAccount"),
    ("v1", "ResourceQuota"),
    ("scheduling.k8s.io/v1", "PriorityClass"),
    ("networking.k8s.io/v1", "Ingress"),
    ("certificates.k8s.io/v1", "CertificateSigningRequest"),
    ("apps/v1", "Deployment"),
    ("apps/v1", "ReplicaSet"),
    ("apps/v1", "ControllerRevision"),
    ("autoscaling/v1", "HorizontalPodAutoscaler"),
    ("autoscaling/v2", "HorizontalPodAutoscaler"),
    ("coordination.k8s.io/v1", "Lease"),
    ("batch/v1", "Job"),
    ("batch/v1", "CronJob"),
    ("policy/v1", "Eviction"),
    ("policy/v1", "PodDisruptionBudget"),
    ("rbac.authorization.k8s.io/v1", "Role"),
    ("rbac.authorization.k8s.io/v1", "ClusterRole"),
    ("rbac.authorization.k8s.io/v1", "RoleBinding"),
    ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"),
    ("authorization.k8s.io/v1", "SelfSubjectAccessReview"),
    ("authorization.k8s.io/v1", "SubjectAccessReview"),
    ("authorization.k8s.io/v1", "SelfSubjectRulesReview"),
    ("authentication.k8s.io/v1", "SelfSubjectReview"),
    ("authentication.k8s.io/v1", "TokenRequest"),
    ("authentication.k8s.io/v1", "TokenReview"),
];

/// Why a protobuf body could not be turned into JSON; the message is meant to be shown
/// to the client in a `Status`.
#[derive(Debug, thiserror::Error)]
pub enum ProtobufError {
    /// The body lacks the `k8s\0` prefix, so it is not a Kubernetes protobuf body.
    #[error("the protobuf body does not start with the Kubernetes magic prefix \"k8s\\x00\"")]
    MissingMagic,
    /// The `runtime.Unknown` envelope after the prefix is malformed or truncated.
    #[error("the protobuf envelope could not be decoded: {0}")]
    Envelope(#[source] prost::DecodeError),
    /// The envelope does not say what the object is.
    #[error("the protobuf envelope does not name the object's apiVersion and kind")]
    MissingTypeMeta,
    /// The envelope announces a compression we do not undo.
    #[error("unsupported protobuf content encoding {0:?}")]
    UnsupportedContentEncoding(String),
    /// The envelope's payload is in a format other than protobuf.
    #[error("unsupported content type {0:?} inside the protobuf envelope")]
    UnsupportedContentType(String),
    /// No decoder exists for this kind; the body should be sent as JSON instead.
    #[error(
        "protobuf request bodies are not supported for kind {kind:?} in {api_version:?}; send it as application/json"
    )]
    UnsupportedKind {
        /// The envelope's `apiVersion`.
        api_version: String,
        /// The envelope's `kind`.
        kind: String,
    },
    /// The object inside the envelope is malformed or truncated.
    #[error("the {kind} in the protobuf body could not be decoded: {source}")]
    Object {
        /// The kind whose message failed to decode.
        kind: String,
        /// What prost found wrong.
        #[source]
        source: prost::DecodeError,
    },
    /// A timestamp lies outside the range Kubernetes can write as RFC 3339.
    #[error("timestamp {seconds}s {nanos}ns is out of range")]
    InvalidTime {
        /// Seconds since the Unix epoch as sent.
        seconds: i64,
        /// Nanoseconds as sent.
        nanos: i32,
    },
    /// An IntOrString whose type tag is neither 0 (int) nor 1 (string).
    #[error("IntOrString has invalid type {0} (expected 0 for int or 1 for string)")]
    InvalidIntOrString(i64),
    /// An embedded raw object or field set that is not JSON.
    #[error("{type_name} bytes are not valid JSON: {source}")]
    RawNotJson {
        /// The Kubernetes type that embeds the raw bytes.
        type_name: &'static str,
        /// Where JSON parsing failed.
        #[source]
        source: serde_json::Error,
    },
}

impl ProtobufError {
    /// True when the body was well-formed but names a kind we cannot decode, which
    /// the server reports as 415 Unsupported Media Type rather than 400 Bad Request.
    pub fn is_unsupported_kind(&self) -> bool {
        matches!(self, ProtobufError::UnsupportedKind { .. })
    }
}

/// Decodes a Kubernetes protobuf request body into the object's Kubernetes JSON form,
/// with `kind` and `apiVersion` set, as if the client had sent JSON.
pub fn decode(body: &[u8]) -> Result<Value, ProtobufError> {
    let envelope_bytes = body
        .strip_prefix(MAGIC)
        .ok_or(ProtobufError::MissingMagic)?;
    let envelope = Unknown::decode(envelope_bytes).map_err(ProtobufError::Envelope)?;
    let type_meta = envelope.type_meta.unwrap_or_default();
    let api_version = type_meta.api_version.unwrap_or_default();
    let kind = type_meta.kind.unwrap_or_default();
    if api_version.is_empty() || kind.is_empty() {
        return Err(ProtobufError::MissingTypeMeta);
    }
    let content_encoding = envelope.content_encoding.unwrap_or_default();
    if !content_encoding.is_empty() {
        return Err(ProtobufError::UnsupportedContentEncoding(content_encoding));
    }
    let content_type = envelope.content_type.unwrap_or_default();
    if !content_type.is_empty() && content_type != PROTOBUF_MEDIA_TYPE {
        return Err(ProtobufError::UnsupportedContentType(content_type));
    }
    let raw = envelope.raw.unwrap_or_default();
    let object = match (api_version.as_str(), kind.as_str()) {
        ("v1", "Namespace") => object_json::<core_v1::Namespace>(&raw, &kind)?,
        ("v1", "Pod") => object_json::<core_v1::Pod>(&raw, &kind)?,
        ("v1", "Service") => object_json::<core_v1::Service>(&raw, &kind)?,
        ("v1", "ConfigMap") => object_json::<core_v1::ConfigMap>(&raw, &kind)?,
        ("v1", "Secret") => object_json::<core_v1::Secret>(&raw, &kind)?,
        ("v1", "Node") => object_json::<core_v1::Node>(&raw, &kind)?,
        ("v1", "Endpoints") => object_json::<core_v1::Endpoints>(&raw, &kind)?,
        ("v1", "Event") => object_json::<core_v1::Event>(&raw, &kind)?,
        ("v1", "ServiceAccount") => object_json::<core_v1::ServiceAccount>(&raw, &kind)?,
        ("v1", "ResourceQuota") => object_json::<core_v1::ResourceQuota>(&raw, &kind)?,
        ("networking.k8s.io/v1", "Ingress") => {
            object_json::<k8s_pb::api::networking::v1::Ingress>(&raw, &kind)?
        }
        ("certificates.k8s.io/v1", "CertificateSigningRequest") => {
            object_json::<k8s_pb::api::certificates::v1::CertificateSigningRequest>(&raw, &kind)?
        }
        ("scheduling.k8s.io/v1", "PriorityClass") => {
            object_json::<k8s_pb::api::scheduling::v1::PriorityClass>(&raw, &kind)?
        }
        ("apps/v1", "Deployment") => object_json::<apps_v1::Deployment>(&raw, &kind)?,
        ("apps/v1", "ReplicaSet") => object_json::<apps_v1::ReplicaSet>(&raw, &kind)?,
        ("apps/v1", "ControllerRevision") => {
            object_json::<apps_v1::ControllerRevision>(&raw, &kind)?
        }
        ("autoscaling/v1", "HorizontalPodAutoscaler") => {
            object_json::<autoscaling_v1::HorizontalPodAutoscaler>(&raw, &kind)?
        }
        ("autoscaling/v2", "HorizontalPodAutoscaler") => {
            object_json::<autoscaling_v2::HorizontalPodAutoscaler>(&raw, &kind)?
        }
        ("coordination.k8s.io/v1", "Lease") => object_json::<coordination_v1::Lease>(&raw, &kind)?,
        ("batch/v1", "Job") => object_json::<batch_v1::Job>(&raw, &kind)?,
        ("batch/v1", "CronJob") => object_json::<batch_v1::CronJob>(&raw, &kind)?,
        ("policy/v1", "Eviction") => object_json::<policy_v1::Eviction>(&raw, &kind)?,
        ("policy/v1", "PodDisruptionBudget") => {
            object_json::<policy_v1::PodDisruptionBudget>(&raw, &kind)?
        }
        ("rbac.authorization.k8s.io/v1", "Role") => object_json::<rbac_v1::Role>(&raw, &kind)?,
        ("rbac.authorization.k8s.io/v1", "ClusterRole") => {
            object_json::<rbac_v1::ClusterRole>(&raw, &kind)?
        }
        ("rbac.authorization.k8s.io/v1", "RoleBinding") => {
            object_json::<rbac_v1::RoleBinding>(&raw, &kind)?
        }
        ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding") => {
            object_json::<rbac_v1::ClusterRoleBinding>(&raw, &kind)?
        }
        ("authorization.k8s.io/v1", "SelfSubjectAccessReview") => {
            object_json::<authorization_v1::SelfSubjectAccessReview>(&raw, &kind)?
        }
        ("authorization.k8s.io/v1", "SubjectAccessReview") => {
            object_json::<authorization_v1::SubjectAccessReview>(&raw, &kind)?
        }
        ("authorization.k8s.io/v1", "SelfSubjectRulesReview") => {
            object_json::<authorization_v1::SelfSubjectRulesReview>(&raw, &kind)?
        }
        ("authentication.k8s.io/v1", "SelfSubjectReview") => {
            object_json::<authentication_v1::SelfSubjectReview>(&raw, &kind)?
        }
        ("authentication.k8s.io/v1", "TokenRequest") => {
            object_json::<authentication_v1::TokenRequest>(&raw, &kind)?
        }
        ("authentication.k8s.io/v1", "TokenReview") => {
            object_json::<authentication_v1::TokenReview>(&raw, &kind)?
        }
        // Clients encode DeleteOptions in the group version of the resource they delete
        // (`v1`, `apps/v1`, `policy/v1`, ...) or in `meta.k8s.io/v1`: the type is the same.
        (_, "DeleteOptions") => object_json::<meta_v1::DeleteOptions>(&raw, &kind)?,
        _ => return Err(ProtobufError::UnsupportedKind { api_version, kind }),
    };
    // Go writes TypeMeta first: kind, then apiVersion.
    let mut with_type = Map::new();
    with_type.insert("kind".to_owned(), Value::String(kind));
    with_type.insert("apiVersion".to_owned(), Value::String(api_version));
    with_type.extend(object);
    Ok(Value::Object(with_type))
}

/// Decodes one object message and converts it to its JSON fields.
fn object_json<M: Message + Default + ToJson>(
    raw: &[u8],
    kind: &str,
) -> Result<Map<String, Value>, ProtobufError> {
    let message = M::decode(raw).map_err(|source| ProtobufError::Object {
        kind: kind.to_owned(),
        source,
    })?;
    match message.to_json()? {
        Value::Object(fields) => Ok(fields),
        _ => Ok(Map::new()),
    }
}
