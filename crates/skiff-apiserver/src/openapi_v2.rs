//! The Swagger 2.0 document served at `/openapi/v2`, in the protobuf form kubectl asks for.
//!
//! kubectl 1.27 (and every later client, for kinds missing from the v3 documents) decides
//! whether the server validates fields by looking for the `fieldValidation` query parameter on
//! the kind's PATCH operation in this document. Without the document, `apply` and `create -f`
//! fail with "failed to download openapi"; with an operation lacking the parameter they validate
//! against the document's schemas themselves.
//!
//! The document carries only the PATCH operations, built from the v3 documents, and no schema
//! definitions. Without definitions kubectl computes strategic merge patches from the types
//! compiled into it (so list merge keys stay right), but `kubectl explain` of clients that read
//! only this document (1.27) finds no schema.

use std::sync::OnceLock;

use bytes::Bytes;
use prost::Message;
use serde_json::Value;

use crate::openapi;

/// The media type the real apiserver answers with. Clients ask for
/// `application/com.github.proto-openapi.spec.v2@v1.0+protobuf`, but `@` is not allowed in a
/// media type and Go clients refuse a response labelled so.
pub const MEDIA_TYPE: &str = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf";

/// `openapi.v2.Document`, with only the fields served.
#[derive(Clone, PartialEq, Message)]
struct Document {
    #[prost(string, tag = "1")]
    swagger: String,
    #[prost(message, optional, tag = "2")]
    info: Option<Info>,
    #[prost(message, optional, tag = "8")]
    paths: Option<Paths>,
}

/// `openapi.v2.Info`.
#[derive(Clone, PartialEq, Message)]
struct Info {
    #[prost(string, tag = "1")]
    title: String,
    #[prost(string, tag = "2")]
    version: String,
}

/// `openapi.v2.Paths`.
#[derive(Clone, PartialEq, Message)]
struct Paths {
    #[prost(message, repeated, tag = "2")]
    path: Vec<NamedPathItem>,
}

/// `openapi.v2.NamedPathItem`.
#[derive(Clone, PartialEq, Message)]
struct NamedPathItem {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(message, optional, tag = "2")]
    value: Option<PathItem>,
}

/// `openapi.v2.PathItem`, with only its PATCH operation.
#[derive(Clone, PartialEq, Message)]
struct PathItem {
    #[prost(message, optional, tag = "8")]
    patch: Option<Operation>,
}

/// `openapi.v2.Operation`.
#[derive(Clone, PartialEq, Message)]
struct Operation {
    #[prost(string, tag = "3")]
    description: String,
    #[prost(string, tag = "5")]
    operation_id: String,
    #[prost(message, repeated, tag = "8")]
    parameters: Vec<ParametersItem>,
    #[prost(message, repeated, tag = "13")]
    vendor_extension: Vec<NamedAny>,
}

/// `openapi.v2.ParametersItem`; its oneof holds a `Parameter` (field 1).
#[derive(Clone, PartialEq, Message)]
struct ParametersItem {
    #[prost(message, optional, tag = "1")]
    parameter: Option<Parameter>,
}

/// `openapi.v2.Parameter`; its oneof holds a `NonBodyParameter` (field 2).
#[derive(Clone, PartialEq, Message)]
struct Parameter {
    #[prost(message, optional, tag = "2")]
    non_body_parameter: Option<NonBodyParameter>,
}

/// `openapi.v2.NonBodyParameter`; its oneof holds a `QueryParameterSubSchema` (field 3).
#[derive(Clone, PartialEq, Message)]
struct NonBodyParameter {
    #[prost(message, optional, tag = "3")]
    query_parameter_sub_schema: Option<QueryParameterSubSchema>,
}

/// `openapi.v2.QueryParameterSubSchema`.
#[derive(Clone, PartialEq, Message)]
struct QueryParameterSubSchema {
    #[prost(string, tag = "2")]
    r#in: String,
    #[prost(string, tag = "3")]
    description: String,
    #[prost(string, tag = "4")]
    name: String,
    #[prost(string, tag = "6")]
    r#type: String,
    #[prost(bool, tag = "20")]
    unique_items: bool,
}

/// `openapi.v2.NamedAny`: a vendor extension.
#[derive(Clone, PartialEq, Message)]
struct NamedAny {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(message, optional, tag = "2")]
    value: Option<AnyValue>,
}

/// `openapi.v2.Any`, carrying its value as YAML as Kubernetes does.
#[derive(Clone, PartialEq, Message)]
struct AnyValue {
    #[prost(string, tag = "2")]
    yaml: String,
}

/// The encoded document, built once from the v3 documents.
pub fn document_bytes() -> Bytes {
    static BYTES: OnceLock<Bytes> = OnceLock::new();
    BYTES
        .get_or_init(|| Bytes::from(build().encode_to_vec()))
        .clone()
}

/// `(group, version)` of a v3 document key (`api/v1`, `apis/apps/v1`).
fn group_version_of(key: &str) -> Option<(&str, &str)> {
    match key.split('/').collect::<Vec<_>>().as_slice() {
        ["api", version] => Some(("", version)),
        ["apis", group, version] => Some((group, version)),
        _ => None,
    }
}

fn build() -> Document {
    let root = openapi::root_document();
    let mut path = Vec::new();
    let keys = root
        .get("paths")
        .and_then(Value::as_object)
        .map(|paths| paths.keys().cloned().collect::<Vec<_>>())
        .unwrap_or_default();
    for key in keys {
        let Some((group, version)) = group_version_of(&key) else {
            continue;
        };
        let Some(doc) = openapi::group_version_document(group, version) else {
            continue;
        };
        let Some(paths) = doc.get("paths").and_then(Value::as_object) else {
            continue;
        };
        for (url, item) in paths {
            if let Some(patch) = item.get("patch").and_then(patch_operation) {
                path.push(NamedPathItem {
                    name: url.clone(),
                    value: Some(PathItem { patch: Some(patch) }),
                });
            }
        }
    }
    Document {
        swagger: "2.0".to_string(),
        info: Some(Info {
            title: "Kubernetes".to_string(),
            version: openapi::KUBERNETES_VERSION.to_string(),
        }),
        paths: Some(Paths { path }),
    }
}

/// The v2 form of a v3 PATCH operation: its id, query parameters and kind extensions.
fn patch_operation(op: &Value) -> Option<Operation> {
    let text = |v: &Value, key: &str| v.get(key).and_then(Value::as_str).unwrap_or("").to_string();
    let parameters = op
        .get("parameters")
        .and_then(Value::as_array)
        .map(|params| {
            params
                .iter()
                .filter(|p| p.get("in").and_then(Value::as_str) == Some("query"))
                .map(|p| ParametersItem {
                    parameter: Some(Parameter {
                        non_body_parameter: Some(NonBodyParameter {
                            query_parameter_sub_schema: Some(QueryParameterSubSchema {
                                r#in: "query".to_string(),
                                description: text(p, "description"),
                                name: text(p, "name"),
                                r#type: p
                                    .pointer("/schema/type")
                                    .and_then(Value::as_str)
                                    .unwrap_or("string")
                                    .to_string(),
                                unique_items: true,
                            }),
                        }),
                    }),
                })
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    let mut vendor_extension = Vec::new();
    for name in ["x-kubernetes-action", "x-kubernetes-group-version-kind"] {
        if let Some(value) = op.get(name) {
            let yaml = skiff_api::yaml::to_string(value).ok()?;
            vendor_extension.push(NamedAny {
                name: name.to_string(),
                value: Some(AnyValue { yaml }),
            });
        }
    }
    // Only operations kubectl can match to a kind matter.
    if !vendor_extension
        .iter()
        .any(|e| e.name == "x-kubernetes-group-version-kind")
    {
        return None;
    }
    Some(Operation {
        description: text(op, "description"),
        operation_id: text(op, "operationId"),
        parameters,
        vendor_extension,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decoded() -> Document {
        Document::decode(document_bytes()).expect("the document decodes")
    }

    fn patch_of(doc: &Document, url: &str) -> Operation {
        doc.paths
            .as_ref()
            .and_then(|p| p.path.iter().find(|item| item.name == url))
            .and_then(|item| item.value.clone())
            .and_then(|item| item.patch)
            .unwrap_or_else(|| panic!("no PATCH operation for {url}"))
    }

    #[test]
    fn every_kind_declares_field_validation_on_its_patch() {
        let doc = decoded();
        assert_eq!(doc.swagger, "2.0");
        for url in [
            "/apis/apps/v1/namespaces/{namespace}/deployments/{name}",
            "/api/v1/namespaces/{namespace}/configmaps/{name}",
            "/api/v1/namespaces/{name}",
        ] {
            let op = patch_of(&doc, url);
            let names: Vec<String> = op
                .parameters
                .iter()
                .filter_map(|p| p.parameter.as_ref()?.non_body_parameter.as_ref())
                .filter_map(|p| p.query_parameter_sub_schema.as_ref())
                .map(|q| q.name.clone())
                .collect();
            assert!(
                names.iter().any(|n| n == "fieldValidation"),
                "{url}: {names:?}"
            );
        }
    }

    #[test]
    fn patch_operations_name_their_kind_in_yaml() {
        let op = patch_of(
            &decoded(),
            "/apis/apps/v1/namespaces/{namespace}/deployments/{name}",
        );
        let gvk = op
            .vendor_extension
            .iter()
            .find(|e| e.name == "x-kubernetes-group-version-kind")
            .and_then(|e| e.value.clone())
            .expect("the kind extension");
        let parsed: Value = skiff_api::yaml::from_str(&gvk.yaml).expect("YAML");
        assert_eq!(
            parsed,
            serde_json::json!({"group": "apps", "version": "v1", "kind": "Deployment"})
        );
    }

    #[test]
    fn document_keys_name_group_versions() {
        assert_eq!(group_version_of("api/v1"), Some(("", "v1")));
        assert_eq!(group_version_of("apis/apps/v1"), Some(("apps", "v1")));
        assert_eq!(group_version_of("version"), None);
    }
}
