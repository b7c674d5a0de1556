//! The OpenAPI v3 documents served under `/openapi/v3`.
//!
//! kubectl depends on them in two places. `apply` and `create -f` look for the `fieldValidation`
//! query parameter on the PATCH operation of the kind they send; when it is there they leave
//! validation to the server, and when it is not they fall back to client-side validation, which
//! fails without a schema. `kubectl explain` finds the kind's schema through the
//! `x-kubernetes-group-version-kind` extension and walks `$ref`s to print field descriptions.
//!
//! The schemas come from `k8s-openapi`'s `schemars` implementations (and our CloneSet types),
//! rewritten from JSON Schema 2020-12 into the OpenAPI 3.0 dialect the real apiserver publishes.
//! Every document is built once, on first use, and reused for the life of the process.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use k8s_openapi::api::autoscaling;
use k8s_openapi::apimachinery::pkg::apis::meta::v1 as meta;
use schemars::generate::SchemaSettings;
use schemars::{JsonSchema, SchemaGenerator};
use serde_json::{json, Map, Value};
use skiff_api::resources::{self, ResourceInfo, Subresource};

/// The Kubernetes release the documents claim to describe, as `info.version`.
pub(crate) const KUBERNETES_VERSION: &str = crate::discovery::KUBERNETES_RELEASE;

/// Where schemars puts definitions, and where OpenAPI 3.0 wants them.
const SCHEMARS_REF_PREFIX: &str = "#/$defs/";
const OPENAPI_REF_PREFIX: &str = "#/components/schemas/";

const LIST_META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ListMeta";
const DELETE_OPTIONS: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions";
const STATUS: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.Status";
const PATCH: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.Patch";
const SCALE: &str = "io.k8s.api.autoscaling.v1.Scale";
const INT_OR_STRING: &str = "io.k8s.apimachinery.pkg.util.intstr.IntOrString";
const QUANTITY: &str = "io.k8s.apimachinery.pkg.api.resource.Quantity";
/// Definitions generated from our own doc comments rather than from Kubernetes' texts.
const KRUISE_DEFINITION_PREFIX: &str = "io.kruise.";

/// One group-version's document, with the bytes served and the hash the root advertises.
struct GroupVersionDocument {
    value: Arc<Value>,
    bytes: Bytes,
    hash: String,
}

/// All documents, keyed by their path under `/openapi/v3/` (`api/v1`, `apis/apps/v1`).
fn documents() -> &'static BTreeMap<String, GroupVersionDocument> {
    static DOCUMENTS: OnceLock<BTreeMap<String, GroupVersionDocument>> = OnceLock::new();
    DOCUMENTS.get_or_init(|| {
        let mut out = BTreeMap::new();
        for (group, versions) in resources::groups() {
            for version in versions {
                if !skiff_api::kinds::all_resources()
                    .any(|r| r.group == group && r.version == version)
                {
                    // Custom resources come and go: their documents are built on request.
                    continue;
                }
                let value = build_group_version_document(group, version);
                let bytes = Bytes::from(value.to_string());
                let hash = stable_hash_hex(&bytes);
                out.insert(
                    path_key(group, version),
                    GroupVersionDocument {
                        value: Arc::new(value),
                        bytes,
                        hash,
                    },
                );
            }
        }
        out
    })
}

/// The path of a group-version's document under `/openapi/v3/`: `api/v1` for the core group,
/// `apis/<group>/<version>` otherwise. The root document uses the same strings as its keys.
pub fn path_key(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

/// The `/openapi/v3` discovery document: each served group-version with the URL of its document.
/// The URL carries a hash of the document so clients may cache it for as long as it is unchanged.
pub fn root_document() -> Value {
    let mut paths: Map<String, Value> = documents()
        .iter()
        .map(|(key, doc)| {
            (
                key.clone(),
                json!({"serverRelativeURL": format!("/openapi/v3/{key}?hash={}", doc.hash)}),
            )
        })
        .collect();
    for (key, bytes) in custom_documents() {
        let hash = stable_hash_hex(&bytes);
        paths.insert(
            key.clone(),
            json!({"serverRelativeURL": format!("/openapi/v3/{key}?hash={hash}")}),
        );
    }
    json!({ "paths": paths })
}

/// The documents of the custom resources' group-versions, built from their definitions'
/// schemas on each request (they change whenever a definition does).
fn custom_documents() -> Vec<(String, Bytes)> {
    let kinds = skiff_api::kinds::custom_kinds();
    let mut group_versions: Vec<(&'static str, &'static str)> = Vec::new();
    for kind in kinds.iter() {
        for info in kind.versions {
            if !group_versions.contains(&(info.group, info.version)) {
                group_versions.push((info.group, info.version));
            }
        }
    }
    group_versions
        .into_iter()
        .map(|(group, version)| {
            let doc = custom_group_version_document(group, version);
            (path_key(group, version), Bytes::from(doc.to_string()))
        })
        .collect()
}

/// The definition name Kubernetes gives a custom kind: the group reversed, then version and
/// kind (`com.example.v1.Widget`).
fn custom_definition_name(info: &ResourceInfo) -> String {
    let reversed: Vec<&str> = info.group.split('.').rev().collect();
    format!("{}.{}.{}", reversed.join("."), info.version, info.kind)
}

/// Copies `name` and every definition it references, transitively, from `from` into `into`.
fn copy_with_references(name: &str, from: &Map<String, Value>, into: &mut Map<String, Value>) {
    if into.contains_key(name) {
        return;
    }
    let Some(schema) = from.get(name) else {
        return;
    };
    into.insert(name.to_string(), schema.clone());
    let mut references = Vec::new();
    collect_references(schema, &mut references);
    for reference in references {
        copy_with_references(&reference, from, into);
    }
}

fn collect_references(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                match (key.as_str(), v) {
                    ("$ref", Value::String(r)) => {
                        if let Some(name) = r.strip_prefix(OPENAPI_REF_PREFIX) {
                            out.push(name.to_string());
                        }
                    }
                    _ => collect_references(v, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect_references(v, out)),
        _ => {}
    }
}

/// One custom group-version's document: each kind's schema from its definition, with the
/// type and object metadata every object has, and its list.
fn custom_group_version_document(group: &str, version: &str) -> Value {
    // The shared definitions (object and list metadata, options, Status, Scale) are taken from
    // the built-in documents that hold them.
    let mut library = Map::new();
    for (g, v) in [("", "v1"), ("apps", "v1")] {
        if let Some(doc) = group_version_document(g, v) {
            if let Some(found) = doc
                .pointer("/components/schemas")
                .and_then(Value::as_object)
            {
                for (name, schema) in found {
                    library
                        .entry(name.clone())
                        .or_insert_with(|| schema.clone());
                }
            }
        }
    }
    let mut schemas = Map::new();
    copy_with_references(
        "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta",
        &library,
        &mut schemas,
    );
    copy_with_references(LIST_META, &library, &mut schemas);
    let mut paths = BTreeMap::new();
    for info in resources::resources_in(group, version) {
        let strategy = skiff_api::kinds::strategy_for(info);
        let Some(schema) = strategy.openapi_schema(version) else {
            continue;
        };
        // kubectl explain finds a resource's kind through its paths.
        let served = ServedKind {
            info,
            definition: custom_definition_name(info),
        };
        add_resource_paths(&mut paths, group, version, &served);
        let gvk = json!([{"group": info.group, "version": info.version, "kind": info.kind}]);
        let mut schema = schema.clone();
        if let Some(map) = schema.as_object_mut() {
            let properties = map.entry("properties").or_insert_with(|| json!({}));
            properties["apiVersion"] = json!({"type": "string", "description": "APIVersion defines the versioned schema of this representation of an object. Servers should convert recognized schemas to the latest internal value, and may reject unrecognized values. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#resources"});
            properties["kind"] = json!({"type": "string", "description": "Kind is a string value representing the REST resource this object represents. Servers may infer this from the endpoint the client submits requests to. Cannot be updated. In CamelCase. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds"});
            properties["metadata"] = json!({"allOf": [{"$ref": format!("{OPENAPI_REF_PREFIX}io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta")}], "default": {}, "description": "Standard object's metadata. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata"});
            map.insert("x-kubernetes-group-version-kind".into(), gvk.clone());
        }
        let name = custom_definition_name(info);
        let list = json!({
            "type": "object",
            "description": format!("{} is a list of {}", info.list_kind(), info.kind),
            "required": ["items"],
            "properties": {
                "apiVersion": {"type": "string"},
                "items": {"type": "array", "items": {"$ref": format!("{OPENAPI_REF_PREFIX}{name}")}},
                "kind": {"type": "string"},
                "metadata": {"allOf": [{"$ref": format!("{OPENAPI_REF_PREFIX}{LIST_META}")}], "default": {}},
            },
            "x-kubernetes-group-version-kind": [{"group": info.group, "version": info.version, "kind": info.list_kind()}],
        });
        schemas.insert(format!("{name}List"), list);
        schemas.insert(name, schema);
    }
    let mut referenced = Vec::new();
    collect_references(&json!(paths), &mut referenced);
    for name in referenced {
        copy_with_references(&name, &library, &mut schemas);
    }
    json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes CRD Swagger", "version": "v0.1.0"},
        "paths": paths,
        "components": {"schemas": schemas},
    })
}

/// The OpenAPI 3.0 document for one group-version (`""`, `"v1"` for the core group), or `None`
/// when that group-version is not served.
pub fn group_version_document(group: &str, version: &str) -> Option<Arc<Value>> {
    documents()
        .get(&path_key(group, version))
        .map(|doc| Arc::clone(&doc.value))
}

/// The serialized document for a path under `/openapi/v3/` (`apis/apps/v1`), ready to send, or
/// `None` when no such document exists. Any `?hash=` query must be removed first.
pub fn document_bytes(path: &str) -> Option<Bytes> {
    let path = path.trim_matches('/');
    documents()
        .get(path)
        .map(|doc| doc.bytes.clone())
        .or_else(|| {
            custom_documents()
                .into_iter()
                .find(|(key, _)| key == path)
                .map(|(_, bytes)| bytes)
        })
}

/// The hash advertised for a path under `/openapi/v3/`; a server can answer requests carrying it
/// with long-lived cache headers, as the real apiserver does.
pub fn document_hash(path: &str) -> Option<&'static str> {
    documents()
        .get(path.trim_matches('/'))
        .map(|doc| doc.hash.as_str())
}

/// A hex digest that stays the same across builds and runs for the same bytes (unlike std's
/// `DefaultHasher`), so client caches stay valid over restarts. It guards caches, not secrets:
/// 128 bits from two FNV-1a passes with different offsets.
fn stable_hash_hex(bytes: &[u8]) -> String {
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut low: u64 = 0xcbf2_9ce4_8422_2325;
    let mut high: u64 = 0x6c62_272e_07bb_0142;
    for &byte in bytes {
        low = (low ^ u64::from(byte)).wrapping_mul(PRIME);
        high = (high ^ u64::from(byte.rotate_left(3))).wrapping_mul(PRIME);
    }
    format!("{high:016X}{low:016X}")
}

/// Adds `T`'s schema, and everything it references, to the generator; returns its definition
/// name.
fn register<T: JsonSchema>(generator: &mut SchemaGenerator) -> String {
    generator.subschema_for::<T>();
    T::schema_name().into_owned()
}

/// The Rust type behind each served kind, as a function registering its schema. `None` for a
/// kind the table lists without a type (a test catches that).
fn kind_registrar(info: &ResourceInfo) -> Option<fn(&mut SchemaGenerator) -> String> {
    skiff_api::kinds::strategy_for(info)
        .typed(info.version)
        .map(|typed| typed.register_schema)
}

/// A served kind together with the name of its schema definition.
struct ServedKind {
    info: &'static ResourceInfo,
    definition: String,
}

/// Builds one group-version's document: the schemas of its kinds and lists and of everything
/// they reference, the shared meta types its operations use, and its paths.
fn build_group_version_document(group: &str, version: &str) -> Value {
    let mut generator = SchemaSettings::draft2020_12().into_generator();
    let kinds: Vec<ServedKind> = resources::resources_in(group, version)
        .filter_map(|info| {
            kind_registrar(info).map(|registrar| ServedKind {
                info,
                definition: registrar(&mut generator),
            })
        })
        .collect();
    register::<meta::ListMeta>(&mut generator);
    register::<meta::DeleteOptions>(&mut generator);
    register::<meta::Status>(&mut generator);
    register::<meta::Patch>(&mut generator);
    let serves_scale = kinds
        .iter()
        .any(|k| k.info.has_subresource(Subresource::Scale));
    if serves_scale {
        register::<autoscaling::v1::Scale>(&mut generator);
    }

    let mut schemas: BTreeMap<String, Value> = generator
        .take_definitions(true)
        .into_iter()
        .map(|(name, schema)| (name, to_openapi3(schema)))
        .collect();
    apply_kubernetes_scalar_shapes(&mut schemas);
    apply_kubernetes_enums(&mut schemas);
    for (name, schema) in schemas.iter_mut() {
        if name.starts_with(KRUISE_DEFINITION_PREFIX) {
            unwrap_descriptions(schema);
        }
    }

    for kind in &kinds {
        if let Some(Value::Object(schema)) = schemas.get_mut(&kind.definition) {
            // k8s-openapi lists `metadata` as required because its Rust field is not optional;
            // Kubernetes does not.
            if let Some(Value::Array(required)) = schema.get_mut("required") {
                required.retain(|name| name != "metadata");
                if required.is_empty() {
                    schema.remove("required");
                }
            }
            schema.insert(
                "x-kubernetes-group-version-kind".into(),
                json!([gvk(group, version, kind.info.kind)]),
            );
        }
        schemas.insert(
            list_definition(&kind.definition),
            list_schema(group, version, kind.info.kind, &kind.definition),
        );
    }
    tag_schema(&mut schemas, STATUS, json!([gvk("", "v1", "Status")]));
    let mut delete_options_kinds = vec![gvk("", "v1", "DeleteOptions")];
    if !group.is_empty() {
        delete_options_kinds.push(gvk(group, version, "DeleteOptions"));
    }
    tag_schema(
        &mut schemas,
        DELETE_OPTIONS,
        Value::Array(delete_options_kinds),
    );
    if serves_scale {
        tag_schema(
            &mut schemas,
            SCALE,
            json!([gvk("autoscaling", "v1", "Scale")]),
        );
    }

    let mut paths = BTreeMap::new();
    for kind in &kinds {
        add_resource_paths(&mut paths, group, version, kind);
    }

    sort_keys(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": KUBERNETES_VERSION},
        "paths": paths,
        "components": {"schemas": schemas},
    }))
}

/// `{group, version, kind}` as the GVK extensions spell it.
fn gvk(group: &str, version: &str, kind: &str) -> Value {
    json!({"group": group, "kind": kind, "version": version})
}

fn tag_schema(schemas: &mut BTreeMap<String, Value>, name: &str, kinds: Value) {
    if let Some(Value::Object(schema)) = schemas.get_mut(name) {
        schema.insert("x-kubernetes-group-version-kind".into(), kinds);
    }
}

fn schema_ref(definition: &str) -> Value {
    json!({ "$ref": format!("{OPENAPI_REF_PREFIX}{definition}") })
}

fn list_definition(item_definition: &str) -> String {
    format!("{item_definition}List")
}

/// The `<Kind>List` schema, which k8s-openapi models as a generic without a schema.
fn list_schema(group: &str, version: &str, kind: &str, item_definition: &str) -> Value {
    json!({
        "description": format!("{kind}List is a list of {kind} objects."),
        "type": "object",
        "properties": {
            "apiVersion": {
                "description": "APIVersion defines the versioned schema of this representation of an object. Servers should convert recognized schemas to the latest internal value, and may reject unrecognized values. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#resources",
                "type": "string",
            },
            "items": {
                "description": format!("The {kind} objects in this list."),
                "type": "array",
                "items": schema_ref(item_definition),
            },
            "kind": {
                "description": "Kind is a string value representing the REST resource this object represents. Servers may infer this from the endpoint the client submits requests to. Cannot be updated. In CamelCase. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds",
                "type": "string",
            },
            "metadata": {
                "allOf": [schema_ref(LIST_META)],
                "description": "Standard list metadata. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds",
            },
        },
        "required": ["items"],
        "x-kubernetes-group-version-kind": [gvk(group, version, &format!("{kind}List"))],
    })
}

/// Gives IntOrString and Quantity the shapes the real apiserver publishes in v3 documents: a
/// `oneOf` of the scalar types they accept. kubectl explain then names them (`<IntOrString>`)
/// instead of printing a bare scalar type. IntOrString also keeps the
/// `x-kubernetes-int-or-string` marker, which custom resource schemas use for the same idea.
fn apply_kubernetes_scalar_shapes(schemas: &mut BTreeMap<String, Value>) {
    let description_of = |schemas: &BTreeMap<String, Value>, name: &str| {
        schemas
            .get(name)
            .and_then(|s| s.get("description"))
            .cloned()
            .unwrap_or_else(|| Value::String(String::new()))
    };
    if schemas.contains_key(INT_OR_STRING) {
        let description = description_of(schemas, INT_OR_STRING);
        schemas.insert(
            INT_OR_STRING.into(),
            json!({
                "description": description,
                "format": "int-or-string",
                "oneOf": [{"type": "integer"}, {"type": "string"}],
                "x-kubernetes-int-or-string": true,
            }),
        );
    }
    if schemas.contains_key(QUANTITY) {
        let description = description_of(schemas, QUANTITY);
        schemas.insert(
            QUANTITY.into(),
            json!({
                "description": description,
                "oneOf": [{"type": "string"}, {"type": "number"}],
            }),
        );
    }
}

/// String fields Kubernetes 1.36 marks as enums, with their values, as its OpenAPI documents
/// list them (`kubectl explain` prints them as `enum: A, B`). `k8s-openapi` keeps the field
/// types as plain strings, so the values are restored here: (definition, property, values).
const KUBERNETES_ENUMS: &[(&str, &str, &[&str])] = &[
    (
        "io.k8s.api.apps.v1.DeploymentStrategy",
        "type",
        &["Recreate", "RollingUpdate"],
    ),
    (
        "io.k8s.api.core.v1.Container",
        "imagePullPolicy",
        &["Always", "IfNotPresent", "Never"],
    ),
    (
        "io.k8s.api.core.v1.Container",
        "terminationMessagePolicy",
        &["FallbackToLogsOnError", "File"],
    ),
    (
        "io.k8s.api.core.v1.ContainerPort",
        "protocol",
        &["SCTP", "TCP", "UDP"],
    ),
    (
        "io.k8s.api.core.v1.PodSpec",
        "restartPolicy",
        &["Always", "Never", "OnFailure"],
    ),
    (
        "io.k8s.api.core.v1.PodSpec",
        "dnsPolicy",
        &["ClusterFirst", "ClusterFirstWithHostNet", "Default", "None"],
    ),
    (
        "io.k8s.api.core.v1.PodSpec",
        "preemptionPolicy",
        &["Never", "PreemptLowerPriority"],
    ),
    (
        "io.k8s.api.core.v1.PodStatus",
        "phase",
        &["Failed", "Pending", "Running", "Succeeded", "Unknown"],
    ),
    (
        "io.k8s.api.core.v1.PodStatus",
        "qosClass",
        &["BestEffort", "Burstable", "Guaranteed"],
    ),
    (
        "io.k8s.api.core.v1.Toleration",
        "operator",
        &["Equal", "Exists"],
    ),
    (
        "io.k8s.api.core.v1.Toleration",
        "effect",
        &["NoExecute", "NoSchedule", "PreferNoSchedule"],
    ),
    (
        "io.k8s.api.core.v1.ServicePort",
        "protocol",
        &["SCTP", "TCP", "UDP"],
    ),
    (
        "io.k8s.api.core.v1.ServiceSpec",
        "type",
        &["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"],
    ),
    (
        "io.k8s.api.core.v1.ServiceSpec",
        "sessionAffinity",
        &["ClientIP", "None"],
    ),
    (
        "io.k8s.api.core.v1.ServiceSpec",
        "externalTrafficPolicy",
        &["Cluster", "Local"],
    ),
    (
        "io.k8s.api.core.v1.ServiceSpec",
        "internalTrafficPolicy",
        &["Cluster", "Local"],
    ),
    (
        "io.k8s.api.core.v1.ServiceSpec",
        "ipFamilyPolicy",
        &["PreferDualStack", "RequireDualStack", "SingleStack"],
    ),
    (
        "io.k8s.api.core.v1.NamespaceStatus",
        "phase",
        &["Active", "Terminating"],
    ),
    (
        "io.k8s.api.discovery.v1.EndpointSlice",
        "addressType",
        &["FQDN", "IPv4", "IPv6"],
    ),
    (
        "io.k8s.api.autoscaling.v2.MetricSpec",
        "type",
        &[
            "ContainerResource",
            "External",
            "Object",
            "Pods",
            "Resource",
        ],
    ),
    (
        "io.k8s.api.autoscaling.v2.MetricTarget",
        "type",
        &["AverageValue", "Utilization", "Value"],
    ),
    (
        "io.k8s.api.autoscaling.v2.HPAScalingPolicy",
        "type",
        &["Percent", "Pods"],
    ),
    (
        "io.k8s.api.autoscaling.v2.HPAScalingRules",
        "selectPolicy",
        &["Disabled", "Max", "Min"],
    ),
];

/// Adds `enum` to the string fields of [`KUBERNETES_ENUMS`] present in `schemas`.
fn apply_kubernetes_enums(schemas: &mut BTreeMap<String, Value>) {
    for (definition, property, values) in KUBERNETES_ENUMS {
        if let Some(Value::Object(field)) = schemas
            .get_mut(*definition)
            .and_then(|s| s.get_mut("properties"))
            .and_then(|p| p.get_mut(*property))
        {
            field.insert("enum".into(), json!(values));
        }
    }
}

/// Rewrites a JSON Schema 2020-12 schema from schemars into the OpenAPI 3.0 dialect, the way
/// Kubernetes writes it:
///
/// * `#/$defs/X` references become `#/components/schemas/X`;
/// * a `$ref` with sibling keywords (a field's description) becomes `allOf: [{$ref}]` next to
///   those keywords, since OpenAPI 3.0 ignores siblings of `$ref`;
/// * `null` alternatives (`type: [T, "null"]`, `anyOf: [S, {type: null}]`) are dropped. An
///   optional field is expressed by leaving it out of `required`, and Kubernetes publishes no
///   `nullable` for its optional fields;
/// * `const` becomes a one-value `enum`, boolean schemas become `{}` or `{not: {}}`, and
///   draft-only keywords (`$schema`, `$defs`, `$id`) are removed.
fn to_openapi3(schema: Value) -> Value {
    match schema {
        Value::Bool(true) => json!({}),
        Value::Bool(false) => json!({"not": {}}),
        Value::Object(map) => Value::Object(convert_object(map)),
        other => other,
    }
}

fn convert_object(mut map: Map<String, Value>) -> Map<String, Value> {
    for key in ["items", "additionalProperties", "not"] {
        if let Some(child) = map.get_mut(key) {
            *child = to_openapi3(child.take());
        }
    }
    for key in ["properties", "patternProperties"] {
        if let Some(Value::Object(children)) = map.get_mut(key) {
            for child in children.values_mut() {
                *child = to_openapi3(child.take());
            }
        }
    }
    for key in ["allOf", "anyOf", "oneOf", "prefixItems"] {
        if let Some(Value::Array(children)) = map.get_mut(key) {
            for child in children.iter_mut() {
                *child = to_openapi3(child.take());
            }
        }
    }
    for key in ["$schema", "$defs", "$id"] {
        map.remove(key);
    }
    if let Some(value) = map.remove("const") {
        map.insert("enum".into(), Value::Array(vec![value]));
    }
    if let Some(Value::Array(types)) = map.get_mut("type") {
        types.retain(|t| t != "null");
        match types.len() {
            0 => {
                map.remove("type");
            }
            1 => {
                let only = types.remove(0);
                map.insert("type".into(), only);
            }
            _ => {}
        }
    }
    for key in ["anyOf", "oneOf"] {
        let Some(Value::Array(alternatives)) = map.get_mut(key) else {
            continue;
        };
        let before = alternatives.len();
        alternatives.retain(|alternative| !is_null_schema(alternative));
        if alternatives.len() == before {
            continue;
        }
        match alternatives.len() {
            0 => {
                map.remove(key);
            }
            1 => {
                let only = alternatives.remove(0);
                map.remove(key);
                if let Value::Object(only) = only {
                    for (k, v) in only {
                        map.entry(k).or_insert(v);
                    }
                }
            }
            _ => {}
        }
    }
    if let Some(Value::String(reference)) = map.get_mut("$ref") {
        if let Some(name) = reference.strip_prefix(SCHEMARS_REF_PREFIX) {
            *reference = format!("{OPENAPI_REF_PREFIX}{name}");
        }
    }
    if map.len() > 1 {
        if let Some(reference) = map.remove("$ref") {
            let wrapped = json!({ "$ref": reference });
            match map.get_mut("allOf") {
                Some(Value::Array(all_of)) => all_of.insert(0, wrapped),
                _ => {
                    map.insert("allOf".into(), Value::Array(vec![wrapped]));
                }
            }
        }
    }
    map
}

/// Joins the hard-wrapped lines of doc-comment descriptions into paragraphs, as Kubernetes
/// writes its descriptions; blank lines still separate paragraphs.
fn unwrap_descriptions(schema: &mut Value) {
    match schema {
        Value::Object(map) => {
            for (key, value) in map.iter_mut() {
                match value {
                    Value::String(text) if key == "description" => {
                        *text = text
                            .split("\n\n")
                            .map(|paragraph| paragraph.replace('\n', " "))
                            .collect::<Vec<_>>()
                            .join("\n\n");
                    }
                    other => unwrap_descriptions(other),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(unwrap_descriptions),
        _ => {}
    }
}

/// Whether a schema only admits `null`.
fn is_null_schema(schema: &Value) -> bool {
    match schema {
        Value::Object(map) => {
            map.get("type").is_some_and(|t| t == "null")
                || map
                    .get("enum")
                    .is_some_and(|e| e.as_array().is_some_and(|v| v.iter().all(Value::is_null)))
        }
        _ => false,
    }
}

/// Sorts object keys recursively, as Go's JSON encoding of the real documents does, so the
/// bytes (and so the advertised hash) depend only on content.
fn sort_keys(value: Value) -> Value {
    match value {
        Value::Object(map) => {
            let sorted: BTreeMap<String, Value> =
                map.into_iter().map(|(k, v)| (k, sort_keys(v))).collect();
            Value::Object(sorted.into_iter().collect())
        }
        Value::Array(items) => Value::Array(items.into_iter().map(sort_keys).collect()),
        other => other,
    }
}

/// `AppsV1`, `CoreV1`, `CoordinationV1`, `AppsKruiseIoV1alpha1`: the prefix of Kubernetes'
/// operation ids.
fn operation_prefix(group: &str, version: &str) -> String {
    let group_part: String = if group.is_empty() {
        "Core".to_string()
    } else {
        group
            .strip_suffix(".k8s.io")
            .unwrap_or(group)
            .split(['.', '-'])
            .map(capitalize)
            .collect()
    };
    format!("{group_part}{}", capitalize(version))
}

fn capitalize(word: &str) -> String {
    let mut chars = word.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// A query parameter in the shape the real documents use.
fn query_parameter(name: &str, description: &str, type_: &str) -> Value {
    json!({
        "name": name,
        "in": "query",
        "description": description,
        "schema": {"type": type_, "uniqueItems": true},
    })
}

fn path_parameter(name: &str, description: &str) -> Value {
    json!({
        "name": name,
        "in": "path",
        "description": description,
        "required": true,
        "schema": {"type": "string", "uniqueItems": true},
    })
}

fn pretty_parameter() -> Value {
    query_parameter(
        "pretty",
        "If 'true', the output is indented for people to read.",
        "string",
    )
}

fn dry_run_parameter() -> Value {
    query_parameter(
        "dryRun",
        "When present, the request is processed in full but nothing is persisted. The only valid value is All.",
        "string",
    )
}

fn field_manager_parameter() -> Value {
    query_parameter(
        "fieldManager",
        "A name for the actor making the change, recorded in managedFields.",
        "string",
    )
}

/// The parameter kubectl looks for before leaving schema validation to the server.
fn field_validation_parameter() -> Value {
    query_parameter(
        "fieldValidation",
        "How the server treats unknown or duplicate fields in the request body: Ignore drops them, Warn drops them and adds a warning header per field, Strict fails the request. kubectl sends Strict unless validation is turned off.",
        "string",
    )
}

fn list_parameters() -> Vec<Value> {
    vec![
        query_parameter(
            "allowWatchBookmarks",
            "Asks a watch for BOOKMARK events, which carry only a resourceVersion.",
            "boolean",
        ),
        query_parameter(
            "continue",
            "The token from a previous page of a limited list, to fetch the next page.",
            "string",
        ),
        query_parameter(
            "fieldSelector",
            "Restricts the list to objects whose fields match. Defaults to everything.",
            "string",
        ),
        query_parameter(
            "labelSelector",
            "Restricts the list to objects whose labels match. Defaults to everything.",
            "string",
        ),
        query_parameter(
            "limit",
            "The most objects to return; a continue token is returned when more exist.",
            "integer",
        ),
        query_parameter(
            "resourceVersion",
            "The resourceVersion the list or watch must be at least as new as.",
            "string",
        ),
        query_parameter(
            "resourceVersionMatch",
            "How resourceVersion is applied to a list: Exact or NotOlderThan.",
            "string",
        ),
        query_parameter(
            "sendInitialEvents",
            "Makes a watch start with ADDED events for the current objects.",
            "boolean",
        ),
        query_parameter(
            "timeoutSeconds",
            "How long a list or watch may run.",
            "integer",
        ),
        query_parameter(
            "watch",
            "Streams changes instead of returning a list.",
            "boolean",
        ),
    ]
}

fn delete_parameters() -> Vec<Value> {
    vec![
        dry_run_parameter(),
        query_parameter(
            "gracePeriodSeconds",
            "Seconds before the object is deleted; zero deletes at once.",
            "integer",
        ),
        query_parameter(
            "orphanDependents",
            "Deprecated in favour of propagationPolicy: whether dependents are orphaned.",
            "boolean",
        ),
        query_parameter(
            "propagationPolicy",
            "How dependents are garbage collected: Orphan, Background or Foreground.",
            "string",
        ),
    ]
}

/// A `200 OK` (and optionally `201 Created` / `202 Accepted`) response returning `definition`.
fn responses(definition: &str, extra_codes: &[(&str, &str)]) -> Value {
    let body = json!({
        "application/json": {"schema": schema_ref(definition)},
        "application/yaml": {"schema": schema_ref(definition)},
    });
    let mut out = Map::new();
    out.insert(
        "200".into(),
        json!({"description": "OK", "content": body.clone()}),
    );
    for (code, description) in extra_codes {
        out.insert(
            (*code).into(),
            json!({"description": description, "content": body.clone()}),
        );
    }
    out.insert("401".into(), json!({"description": "Unauthorized"}));
    Value::Object(out)
}

fn json_body(definition: &str) -> Value {
    json!({"content": {"*/*": {"schema": schema_ref(definition)}}, "required": true})
}

/// The PATCH request body. Strategic merge patch is left out on purpose: when it is listed,
/// kubectl computes apply patches from this document, which would need complete
/// `x-kubernetes-patch-*` metadata; without it kubectl uses the patch metadata compiled into it
/// for built-in kinds and a JSON merge patch for CloneSets, as it does against a real cluster.
fn patch_body() -> Value {
    let patch = schema_ref(PATCH);
    json!({
        "content": {
            "application/apply-patch+yaml": {"schema": patch.clone()},
            "application/json-patch+json": {"schema": patch.clone()},
            "application/merge-patch+json": {"schema": patch},
        },
        "required": true,
    })
}

/// Everything an operation object needs.
struct Operation<'a> {
    action: &'a str,
    operation_id: String,
    description: String,
    tag: &'a str,
    gvk: Value,
    parameters: Vec<Value>,
    request_body: Option<Value>,
    responses: Value,
}

impl Operation<'_> {
    fn into_json(self) -> Value {
        let mut out = Map::new();
        out.insert("description".into(), self.description.into());
        out.insert("operationId".into(), self.operation_id.into());
        out.insert("tags".into(), json!([self.tag]));
        out.insert("parameters".into(), Value::Array(self.parameters));
        if let Some(body) = self.request_body {
            out.insert("requestBody".into(), body);
        }
        out.insert("responses".into(), self.responses);
        out.insert("x-kubernetes-action".into(), self.action.into());
        out.insert("x-kubernetes-group-version-kind".into(), self.gvk);
        Value::Object(out)
    }
}

fn add_resource_paths(
    paths: &mut BTreeMap<String, Value>,
    group: &str,
    version: &str,
    kind: &ServedKind,
) {
    let info = kind.info;
    let prefix = if group.is_empty() {
        format!("/api/{version}")
    } else {
        format!("/apis/{group}/{version}")
    };
    let tag = format!(
        "{}_{version}",
        if group.is_empty() { "core" } else { group }
    );
    let op_prefix = operation_prefix(group, version);
    let scope = if info.namespaced { "Namespaced" } else { "" };
    let collection = if info.namespaced {
        format!("{prefix}/namespaces/{{namespace}}/{}", info.plural)
    } else {
        format!("{prefix}/{}", info.plural)
    };
    let item = format!("{collection}/{{name}}");
    let kind_gvk = gvk(group, version, info.kind);
    let definition = kind.definition.as_str();
    let list = list_definition(definition);
    let mut scope_parameters = Vec::new();
    if info.namespaced {
        scope_parameters.push(path_parameter(
            "namespace",
            "The namespace the objects live in.",
        ));
    }
    scope_parameters.push(pretty_parameter());
    let mut item_parameters = vec![path_parameter(
        "name",
        &format!("The name of the {}.", info.kind),
    )];
    item_parameters.extend(scope_parameters.iter().cloned());

    let mut write_parameters = vec![dry_run_parameter(), field_manager_parameter()];
    write_parameters.push(field_validation_parameter());
    let mut patch_parameters = write_parameters.clone();
    patch_parameters.push(query_parameter(
        "force",
        "Makes an apply take ownership of fields managed by others. Only for apply patches.",
        "boolean",
    ));
    let mut delete_collection_parameters = delete_parameters();
    delete_collection_parameters.extend(list_parameters());

    let mut collection_ops = json!({
        "parameters": scope_parameters,
        "get": Operation {
            action: "list",
            operation_id: format!("list{op_prefix}{scope}{}", info.kind),
            description: format!("list or watch objects of kind {}", info.kind),
            tag: &tag,
            gvk: kind_gvk.clone(),
            parameters: list_parameters(),
            request_body: None,
            responses: responses(&list, &[]),
        }.into_json(),
        "post": Operation {
            action: "post",
            operation_id: format!("create{op_prefix}{scope}{}", info.kind),
            description: format!("create a {}", info.kind),
            tag: &tag,
            gvk: kind_gvk.clone(),
            parameters: write_parameters.clone(),
            request_body: Some(json_body(definition)),
            responses: responses(definition, &[("201", "Created"), ("202", "Accepted")]),
        }.into_json(),
    });
    if crate::discovery::supports_delete_collection(info) {
        collection_ops["delete"] = Operation {
            action: "deletecollection",
            operation_id: format!("delete{op_prefix}Collection{scope}{}", info.kind),
            description: format!("delete collection of {}", info.kind),
            tag: &tag,
            gvk: kind_gvk.clone(),
            parameters: delete_collection_parameters,
            request_body: Some(json_body(DELETE_OPTIONS)),
            responses: responses(STATUS, &[]),
        }
        .into_json();
    }
    paths.insert(collection, collection_ops);

    let item_ops = json!({
        "parameters": item_parameters.clone(),
        "get": Operation {
            action: "get",
            operation_id: format!("read{op_prefix}{scope}{}", info.kind),
            description: format!("read the specified {}", info.kind),
            tag: &tag,
            gvk: kind_gvk.clone(),
            parameters: Vec::new(),
            request_body: None,
            responses: responses(definition, &[]),
        }.into_json(),
        "put": Operation {
            action: "put",
            operation_id: format!("replace{op_prefix}{scope}{}", info.kind),
            description: format!("replace the specified {}", info.kind),
            tag: &tag,
            gvk: kind_gvk.clone(),
            parameters: write_parameters.clone(),
            request_body: Some(json_body(definition)),
            responses: responses(definition, &[("201", "Created")]),
        }.into_json(),
        "patch": Operation {
            action: "patch",
            operation_id: format!("patch{op_prefix}{scope}{}", info.kind),
            description: format!("partially update the specified {}", info.kind),
            tag: &tag,
            gvk: kind_gvk.clone(),
            parameters: patch_parameters.clone(),
            request_body: Some(patch_body()),
            responses: responses(definition, &[("201", "Created")]),
        }.into_json(),
        "delete": Operation {
            action: "delete",
            operation_id: format!("delete{op_prefix}{scope}{}", info.kind),
            description: format!("delete a {}", info.kind),
            tag: &tag,
            gvk: kind_gvk.clone(),
            parameters: delete_parameters(),
            request_body: Some(json_body(DELETE_OPTIONS)),
            responses: responses(STATUS, &[("202", "Accepted")]),
        }.into_json(),
    });
    paths.insert(item.clone(), item_ops);

    if info.namespaced {
        paths.insert(
            format!("{prefix}/{}", info.plural),
            json!({
                "parameters": [pretty_parameter()],
                "get": Operation {
                    action: "list",
                    operation_id: format!("list{op_prefix}{}ForAllNamespaces", info.kind),
                    description: format!("list or watch objects of kind {}", info.kind),
                    tag: &tag,
                    gvk: kind_gvk.clone(),
                    parameters: list_parameters(),
                    request_body: None,
                    responses: responses(&list, &[]),
                }.into_json(),
            }),
        );
    }

    for subresource in [Subresource::Status, Subresource::Scale] {
        if !info.has_subresource(subresource) {
            continue;
        }
        let (suffix, sub_definition, sub_gvk) = match subresource {
            Subresource::Scale => ("Scale", SCALE, gvk("autoscaling", "v1", "Scale")),
            _ => ("Status", definition, kind_gvk.clone()),
        };
        let what = format!("{} of the specified {}", subresource.name(), info.kind);
        paths.insert(
            format!("{item}/{}", subresource.name()),
            json!({
                "parameters": item_parameters.clone(),
                "get": Operation {
                    action: "get",
                    operation_id: format!("read{op_prefix}{scope}{}{suffix}", info.kind),
                    description: format!("read {what}"),
                    tag: &tag,
                    gvk: sub_gvk.clone(),
                    parameters: Vec::new(),
                    request_body: None,
                    responses: responses(sub_definition, &[]),
                }.into_json(),
                "put": Operation {
                    action: "put",
                    operation_id: format!("replace{op_prefix}{scope}{}{suffix}", info.kind),
                    description: format!("replace {what}"),
                    tag: &tag,
                    gvk: sub_gvk.clone(),
                    parameters: write_parameters.clone(),
                    request_body: Some(json_body(sub_definition)),
                    responses: responses(sub_definition, &[("201", "Created")]),
                }.into_json(),
                "patch": Operation {
                    action: "patch",
                    operation_id: format!("patch{op_prefix}{scope}{}{suffix}", info.kind),
                    description: format!("partially update {what}"),
                    tag: &tag,
                    gvk: sub_gvk,
                    parameters: patch_parameters.clone(),
                    request_body: Some(patch_body()),
                    responses: responses(sub_definition, &[("201", "Created")]),
                }.into_json(),
            }),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use skiff_api::resources::all as all_resources;

    /// Every `$ref` in a value, with the JSON path where it sits.
    fn refs(value: &Value, path: &str, out: &mut Vec<(String, String)>) {
        match value {
            Value::Object(map) => {
                for (key, child) in map {
                    if key == "$ref" {
                        if let Value::String(target) = child {
                            out.push((path.to_string(), target.clone()));
                        }
                    }
                    refs(child, &format!("{path}/{key}"), out);
                }
            }
            Value::Array(items) => {
                for (i, child) in items.iter().enumerate() {
                    refs(child, &format!("{path}/{i}"), out);
                }
            }
            _ => {}
        }
    }

    fn document(group: &str, version: &str) -> Arc<Value> {
        group_version_document(group, version)
            .unwrap_or_else(|| panic!("no document for {group}/{version}"))
    }

    fn schemas(doc: &Value) -> &Map<String, Value> {
        doc["components"]["schemas"]
            .as_object()
            .expect("components.schemas is an object")
    }

    fn has_gvk(schema: &Value, group: &str, version: &str, kind: &str) -> bool {
        schema["x-kubernetes-group-version-kind"]
            .as_array()
            .is_some_and(|kinds| kinds.contains(&gvk(group, version, kind)))
    }

    #[test]
    fn every_served_kind_and_its_list_has_a_schema_carrying_its_gvk() {
        for info in all_resources() {
            assert!(
                kind_registrar(info).is_some(),
                "{} {} has no schema registered",
                info.api_version(),
                info.kind
            );
            let doc = document(info.group, info.version);
            for kind in [info.kind.to_string(), info.list_kind()] {
                let found = schemas(&doc)
                    .values()
                    .filter(|s| has_gvk(s, info.group, info.version, &kind))
                    .count();
                assert_eq!(found, 1, "{} {kind}", info.api_version());
            }
        }
    }

    #[test]
    fn every_ref_resolves_within_its_document() {
        for key in documents().keys() {
            let doc = documents()[key].value.clone();
            let mut found = Vec::new();
            refs(&doc, "", &mut found);
            assert!(!found.is_empty(), "{key} has no references at all");
            for (path, target) in found {
                let name = target
                    .strip_prefix(OPENAPI_REF_PREFIX)
                    .unwrap_or_else(|| panic!("{key}{path}: {target} is not a component ref"));
                assert!(
                    schemas(&doc).contains_key(name),
                    "{key}{path}: {target} does not resolve"
                );
            }
        }
    }

    #[test]
    fn no_json_schema_2020_keywords_remain() {
        fn check(value: &Value, path: &str) {
            match value {
                Value::Object(map) => {
                    for forbidden in ["$defs", "$schema", "const", "nullable", "prefixItems"] {
                        assert!(!map.contains_key(forbidden), "{path} has {forbidden}");
                    }
                    if map.contains_key("$ref") {
                        assert_eq!(map.len(), 1, "{path}: $ref with siblings");
                    }
                    assert!(
                        !map.get("type").is_some_and(Value::is_array),
                        "{path}: type list"
                    );
                    for (key, child) in map {
                        // `properties` maps names to schemas; a field may be called "const".
                        if key == "properties" {
                            for (name, schema) in child.as_object().into_iter().flatten() {
                                check(schema, &format!("{path}/properties/{name}"));
                            }
                        } else {
                            check(child, &format!("{path}/{key}"));
                        }
                    }
                }
                Value::Array(items) => items.iter().for_each(|item| check(item, path)),
                _ => {}
            }
        }
        for (key, doc) in documents() {
            check(&doc.value["components"], key);
        }
    }

    #[test]
    fn root_lists_every_group_version_with_the_hash_of_its_bytes() {
        let root = root_document();
        let listed = root["paths"].as_object().expect("paths");
        let mut expected = 0;
        for (group, versions) in resources::groups() {
            for version in versions {
                expected += 1;
                let key = path_key(group, version);
                let bytes = document_bytes(&key).expect("bytes served");
                let hash = stable_hash_hex(&bytes);
                assert_eq!(hash.len(), 32);
                assert_eq!(document_hash(&key), Some(hash.as_str()));
                assert_eq!(
                    listed[&key]["serverRelativeURL"],
                    format!("/openapi/v3/{key}?hash={hash}")
                );
                let parsed: Value = serde_json::from_slice(&bytes).expect("bytes are JSON");
                assert_eq!(&parsed, document(group, version).as_ref());
            }
        }
        assert_eq!(listed.len(), expected);
        assert!(listed.contains_key("api/v1"));
        assert!(listed.contains_key("apis/apps.kruise.io/v1alpha1"));
        assert!(document_bytes("apis/apps/v2").is_none());
        assert!(group_version_document("apps", "v2").is_none());
    }

    #[test]
    fn documents_are_stable_between_builds() {
        for (group, versions) in resources::groups() {
            for version in versions {
                let first = build_group_version_document(group, version).to_string();
                let second = build_group_version_document(group, version).to_string();
                assert_eq!(first, second, "{group}/{version}");
                assert_eq!(
                    stable_hash_hex(first.as_bytes()),
                    document_hash(&path_key(group, version)).unwrap_or_default()
                );
            }
        }
        assert_eq!(root_document(), root_document());
    }

    #[test]
    fn stable_hash_is_fixed_and_sensitive_to_every_byte() {
        assert_eq!(stable_hash_hex(b""), "6C62272E07BB0142CBF29CE484222325");
        assert_ne!(stable_hash_hex(b"{\"a\":1}"), stable_hash_hex(b"{\"a\":2}"));
        assert_ne!(stable_hash_hex(b"ab"), stable_hash_hex(b"ba"));
    }

    #[test]
    fn every_kind_has_the_operations_kubectl_looks_for() {
        for info in all_resources() {
            let doc = document(info.group, info.version);
            let prefix = if info.group.is_empty() {
                format!("/api/{}", info.version)
            } else {
                format!("/apis/{}/{}", info.group, info.version)
            };
            let collection = if info.namespaced {
                format!("{prefix}/namespaces/{{namespace}}/{}", info.plural)
            } else {
                format!("{prefix}/{}", info.plural)
            };
            let item = format!("{collection}/{{name}}");
            let expected_gvk = gvk(info.group, info.version, info.kind);
            for (path, method, action) in [
                (&collection, "get", "list"),
                (&collection, "post", "post"),
                (&item, "get", "get"),
                (&item, "put", "put"),
                (&item, "patch", "patch"),
                (&item, "delete", "delete"),
            ] {
                let operation = &doc["paths"][path.as_str()][method];
                assert_eq!(operation["x-kubernetes-action"], action, "{path} {method}");
                assert_eq!(
                    operation["x-kubernetes-group-version-kind"], expected_gvk,
                    "{path} {method}"
                );
                let declares_field_validation =
                    operation["parameters"].as_array().is_some_and(|params| {
                        params
                            .iter()
                            .any(|p| p["name"] == "fieldValidation" && p["in"] == "query")
                    });
                assert_eq!(
                    declares_field_validation,
                    matches!(method, "post" | "put" | "patch"),
                    "{path} {method}"
                );
            }
        }
    }

    #[test]
    fn patch_bodies_leave_strategic_merge_to_kubectl_builtins() {
        let doc = document("apps", "v1");
        let content = &doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]
            ["patch"]["requestBody"]["content"];
        assert!(content.get("application/merge-patch+json").is_some());
        assert!(content
            .get("application/strategic-merge-patch+json")
            .is_none());
    }

    #[test]
    fn subresource_paths_name_their_own_kinds() {
        let doc = document("apps", "v1");
        let base = "/apis/apps/v1/namespaces/{namespace}/deployments/{name}";
        let scale = &doc["paths"][format!("{base}/scale")]["patch"];
        assert_eq!(
            scale["x-kubernetes-group-version-kind"],
            gvk("autoscaling", "v1", "Scale")
        );
        assert!(has_gvk(&schemas(&doc)[SCALE], "autoscaling", "v1", "Scale"));
        let status = &doc["paths"][format!("{base}/status")]["put"];
        assert_eq!(
            status["x-kubernetes-group-version-kind"],
            gvk("apps", "v1", "Deployment")
        );
        assert_eq!(
            doc["paths"]["/apis/apps/v1/deployments"]["get"]["operationId"],
            "listAppsV1DeploymentForAllNamespaces"
        );
    }

    #[test]
    fn operation_ids_follow_kubernetes_naming() {
        let cases = [
            ("", "v1", "CoreV1"),
            ("apps", "v1", "AppsV1"),
            ("coordination.k8s.io", "v1", "CoordinationV1"),
            ("apps.kruise.io", "v1alpha1", "AppsKruiseIoV1alpha1"),
            ("autoscaling", "v2", "AutoscalingV2"),
        ];
        for (group, version, expected) in cases {
            assert_eq!(operation_prefix(group, version), expected);
        }
        let doc = document("", "v1");
        assert_eq!(
            doc["paths"]["/api/v1/namespaces/{namespace}/pods/{name}"]["patch"]["operationId"],
            "patchCoreV1NamespacedPod"
        );
        assert_eq!(
            doc["paths"]["/api/v1/nodes/{name}"]["get"]["operationId"],
            "readCoreV1Node"
        );
    }

    #[test]
    fn scalars_take_the_shapes_kubernetes_publishes() {
        let doc = document("apps", "v1");
        let int_or_string = &schemas(&doc)[INT_OR_STRING];
        assert_eq!(int_or_string["format"], "int-or-string");
        assert_eq!(int_or_string["x-kubernetes-int-or-string"], true);
        assert_eq!(
            int_or_string["oneOf"],
            json!([{"type": "integer"}, {"type": "string"}])
        );
        assert!(int_or_string["description"]
            .as_str()
            .is_some_and(|d| d.starts_with("IntOrString")));
        let quantity = &schemas(&doc)[QUANTITY];
        assert_eq!(
            quantity["oneOf"],
            json!([{"type": "string"}, {"type": "number"}])
        );
        assert!(quantity.get("x-kubernetes-int-or-string").is_none());
    }

    #[test]
    fn kinds_do_not_require_metadata_and_fields_keep_descriptions() {
        let doc = document("apps", "v1");
        let deployment = &schemas(&doc)["io.k8s.api.apps.v1.Deployment"];
        assert!(deployment.get("required").is_none());
        let strategy =
            &schemas(&doc)["io.k8s.api.apps.v1.DeploymentSpec"]["properties"]["strategy"];
        assert_eq!(
            strategy["allOf"],
            json!([{"$ref": "#/components/schemas/io.k8s.api.apps.v1.DeploymentStrategy"}])
        );
        assert!(strategy["description"]
            .as_str()
            .is_some_and(|d| d.contains("strategy")));
    }

    #[test]
    fn cloneset_document_describes_kruise_fields_in_one_line_paragraphs() {
        let doc = document("apps.kruise.io", "v1alpha1");
        let all = schemas(&doc);
        let cloneset = &all["io.kruise.apps.v1alpha1.CloneSet"];
        assert!(has_gvk(cloneset, "apps.kruise.io", "v1alpha1", "CloneSet"));
        let update = &all["io.kruise.apps.v1alpha1.CloneSetUpdateStrategy"]["properties"];
        assert_eq!(
            update["partition"]["allOf"],
            json!([{"$ref": format!("{OPENAPI_REF_PREFIX}{INT_OR_STRING}")}])
        );
        assert_eq!(update["paused"]["type"], "boolean");
        let max_unavailable = update["maxUnavailable"]["description"]
            .as_str()
            .expect("described");
        assert!(max_unavailable.contains("Defaults to 20%"));
        assert!(!max_unavailable.contains('\n'));
        assert!(all.contains_key("io.k8s.api.core.v1.PodTemplateSpec"));
        assert!(doc["paths"]
            .get("/apis/apps.kruise.io/v1alpha1/namespaces/{namespace}/clonesets/{name}/scale")
            .is_some());
    }

    #[test]
    fn conversion_rewrites_draft_2020_constructs() {
        let cases = [
            (json!(true), json!({})),
            (json!(false), json!({"not": {}})),
            (
                json!({"type": ["integer", "null"], "format": "int32"}),
                json!({"type": "integer", "format": "int32"}),
            ),
            (json!({"type": ["null"]}), json!({})),
            (
                json!({"description": "d", "anyOf": [{"$ref": "#/$defs/X"}, {"type": "null"}]}),
                json!({"description": "d", "allOf": [{"$ref": "#/components/schemas/X"}]}),
            ),
            (
                json!({"$ref": "#/$defs/X"}),
                json!({"$ref": "#/components/schemas/X"}),
            ),
            (
                json!({"$ref": "#/$defs/X", "description": "d", "allOf": [{"type": "object"}]}),
                json!({"description": "d", "allOf": [{"$ref": "#/components/schemas/X"}, {"type": "object"}]}),
            ),
            (json!({"const": "A"}), json!({"enum": ["A"]})),
            (
                json!({"oneOf": [{"type": "string"}, {"type": "integer"}]}),
                json!({"oneOf": [{"type": "string"}, {"type": "integer"}]}),
            ),
            (
                json!({"type": "object", "properties": {"a": {"type": ["string", "null"]}},
                       "additionalProperties": true, "$schema": "x"}),
                json!({"type": "object", "properties": {"a": {"type": "string"}},
                       "additionalProperties": {}}),
            ),
            (
                json!({"type": "array", "items": {"anyOf": [{"$ref": "#/$defs/Y"}, {"const": null}]}}),
                json!({"type": "array", "items": {"$ref": "#/components/schemas/Y"}}),
            ),
        ];
        for (input, expected) in cases {
            assert_eq!(
                sort_keys(to_openapi3(input.clone())),
                sort_keys(expected),
                "{input}"
            );
        }
    }
}

/// Runs the real `kubectl explain` against a minimal loopback server that answers discovery and
/// serves these documents, to prove kubectl can find kinds and walk fields in them.
#[cfg(test)]
mod enums {
    use super::*;

    #[test]
    fn deployment_strategy_type_lists_its_values() {
        let doc = group_version_document("apps", "v1").expect("apps/v1 is served");
        let field = doc
            .pointer("/components/schemas/io.k8s.api.apps.v1.DeploymentStrategy/properties/type")
            .expect("strategy type");
        assert_eq!(field["enum"], json!(["Recreate", "RollingUpdate"]));
        assert_eq!(field["type"], "string");
    }

    #[test]
    fn every_listed_enum_names_a_published_string_field() {
        let mut found = std::collections::BTreeSet::new();
        for (group, version) in [
            ("", "v1"),
            ("apps", "v1"),
            ("autoscaling", "v2"),
            ("discovery.k8s.io", "v1"),
        ] {
            let doc = group_version_document(group, version).expect("served");
            for (definition, property, values) in KUBERNETES_ENUMS {
                let Some(schema) = doc.pointer(&format!("/components/schemas/{definition}")) else {
                    continue;
                };
                let field = &schema["properties"][*property];
                assert_eq!(field["enum"], json!(values), "{definition}.{property}");
                found.insert((*definition, *property));
            }
        }
        for (definition, property, _) in KUBERNETES_ENUMS {
            assert!(
                found.contains(&(*definition, *property)),
                "{definition}.{property} is in no document"
            );
        }
    }
}

#[cfg(test)]
mod kubectl_explain {
    use super::*;
    use skiff_api::resources::all as all_resources;
    use std::io::{BufRead, BufReader, Write};
    use std::net::{TcpListener, TcpStream};
    use std::process::{Command, Stdio};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::{Duration, Instant};

    const VERBS: [&str; 8] = [
        "create",
        "delete",
        "deletecollection",
        "get",
        "list",
        "patch",
        "update",
        "watch",
    ];

    /// The legacy discovery answer for one path, or `None` when it is not a discovery path.
    fn discovery(path: &str, address: &str) -> Option<Value> {
        if path == "/api" {
            return Some(json!({
                "kind": "APIVersions",
                "versions": ["v1"],
                "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": address}],
            }));
        }
        if path == "/apis" {
            let groups: Vec<Value> = resources::groups()
                .into_iter()
                .filter(|(group, _)| !group.is_empty())
                .map(|(group, versions)| {
                    let versions: Vec<Value> = versions
                        .iter()
                        .map(|v| json!({"groupVersion": format!("{group}/{v}"), "version": v}))
                        .collect();
                    json!({"name": group, "versions": versions, "preferredVersion": versions[0]})
                })
                .collect();
            return Some(json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}));
        }
        let group_version = path
            .strip_prefix("/api/")
            .map(|v| ("", v))
            .or_else(|| path.strip_prefix("/apis/")?.split_once('/'))?;
        let listed: Vec<Value> = all_resources()
            .filter(|r| (r.group, r.version) == group_version)
            .map(|r| {
                json!({
                    "name": r.plural, "singularName": r.singular, "namespaced": r.namespaced,
                    "kind": r.kind, "verbs": VERBS, "shortNames": r.short_names,
                    "categories": r.categories,
                })
            })
            .collect();
        if listed.is_empty() {
            return None;
        }
        let (group, version) = group_version;
        Some(json!({
            "kind": "APIResourceList",
            "apiVersion": "v1",
            "groupVersion": if group.is_empty() { version.to_string() } else { format!("{group}/{version}") },
            "resources": listed,
        }))
    }

    fn respond(stream: &mut TcpStream, address: &str) -> std::io::Result<()> {
        let mut reader = BufReader::new(stream.try_clone()?);
        let mut request_line = String::new();
        reader.read_line(&mut request_line)?;
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header)? == 0 || header == "\r\n" {
                break;
            }
        }
        let target = request_line.split_whitespace().nth(1).unwrap_or("/");
        let path = target.split('?').next().unwrap_or(target);
        let (status, body): (&str, Bytes) = if path == "/version" {
            (
                "200 OK",
                Bytes::from(
                    json!({"major": "1", "minor": crate::discovery::KUBERNETES_MINOR, "gitVersion": KUBERNETES_VERSION})
                        .to_string(),
                ),
            )
        } else if path == "/openapi/v3" {
            ("200 OK", Bytes::from(root_document().to_string()))
        } else if let Some(bytes) = path.strip_prefix("/openapi/v3/").and_then(document_bytes) {
            ("200 OK", bytes)
        } else if let Some(answer) = discovery(path, address) {
            ("200 OK", Bytes::from(answer.to_string()))
        } else {
            (
                "404 Not Found",
                Bytes::from(
                    json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                           "reason": "NotFound", "code": 404})
                    .to_string(),
                ),
            )
        };
        write!(
            stream,
            "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        )?;
        stream.write_all(&body)?;
        stream.flush()
    }

    /// Serves until `stop` is set and one more connection arrives to wake the accept loop.
    fn serve(listener: TcpListener, stop: Arc<AtomicBool>) {
        let address = listener
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or_default();
        for stream in listener.incoming() {
            if stop.load(Ordering::SeqCst) {
                break;
            }
            let Ok(mut stream) = stream else { continue };
            let address = address.clone();
            std::thread::spawn(move || {
                let _ = respond(&mut stream, &address);
            });
        }
    }

    /// Runs kubectl with a fresh home and cache against `server`, killing it after `limit`.
    /// `files` are written into the home directory, which is also kubectl's working directory.
    fn run_kubectl(
        args: &[&str],
        files: &[(&str, &str)],
        server: &str,
        limit: Duration,
    ) -> (bool, String, String) {
        let home = tempfile::tempdir().expect("temp home");
        for (name, content) in files {
            std::fs::write(home.path().join(name), content).expect("write input file");
        }
        let kubeconfig = home.path().join("config");
        std::fs::write(
            &kubeconfig,
            format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: skiff\n  cluster:\n    server: {server}\n\
                 contexts:\n- name: skiff\n  context:\n    cluster: skiff\n    user: skiff\n\
                 current-context: skiff\nusers:\n- name: skiff\n  user: {{}}\n"
            ),
        )
        .expect("write kubeconfig");
        let mut child = Command::new("kubectl")
            .args(args)
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .arg("--cache-dir")
            .arg(home.path().join("cache"))
            .env("HOME", home.path())
            .current_dir(home.path())
            .env_remove("KUBECONFIG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("kubectl is on the PATH");
        let deadline = Instant::now() + limit;
        loop {
            match child.try_wait() {
                Ok(Some(_)) => break,
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                _ => {
                    let _ = child.kill();
                    break;
                }
            }
        }
        let output = child.wait_with_output().expect("kubectl output");
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    }

    fn with_server<T>(run: impl FnOnce(&str) -> T) -> T {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        let address = listener.local_addr().expect("local address");
        let stop = Arc::new(AtomicBool::new(false));
        let server = {
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || serve(listener, stop))
        };
        let result = run(&format!("http://{address}"));
        stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(address);
        let _ = server.join();
        result
    }

    #[test]
    fn kubectl_explain_prints_deployment_strategy_from_the_documents() {
        let (ok, stdout, stderr) = with_server(|server| {
            run_kubectl(
                &["explain", "deployment.spec.strategy"],
                &[],
                server,
                Duration::from_secs(15),
            )
        });
        assert!(ok, "kubectl failed:\n{stdout}\n{stderr}");
        assert!(stdout.contains("GROUP:      apps"), "{stdout}");
        assert!(stdout.contains("KIND:       Deployment"), "{stdout}");
        assert!(
            stdout.contains("FIELD: strategy <DeploymentStrategy>"),
            "{stdout}"
        );
        assert!(
            stdout.contains("The deployment strategy to use to replace existing pods with new"),
            "{stdout}"
        );
        assert!(
            stdout.contains("rollingUpdate\t<RollingUpdateDeployment>"),
            "{stdout}"
        );
        assert!(stdout.contains("type\t<string>"), "{stdout}");
        assert!(
            stdout.contains("enum: Recreate, RollingUpdate"),
            "kubectl explain shows the strategy types: {stdout}"
        );
    }

    #[test]
    fn kubectl_explain_walks_cloneset_fields_and_names_int_or_string() {
        let (ok, stdout, stderr) = with_server(|server| {
            run_kubectl(
                &["explain", "clonesets.spec.updateStrategy"],
                &[],
                server,
                Duration::from_secs(15),
            )
        });
        assert!(ok, "kubectl failed:\n{stdout}\n{stderr}");
        assert!(stdout.contains("GROUP:      apps.kruise.io"), "{stdout}");
        assert!(stdout.contains("KIND:       CloneSet"), "{stdout}");
        assert!(stdout.contains("partition\t<IntOrString>"), "{stdout}");
        assert!(
            stdout.contains("inPlaceUpdateStrategy\t<InPlaceUpdateStrategy>"),
            "{stdout}"
        );
    }

    /// With `fieldValidation` advertised, kubectl's default (strict) validation leaves checking
    /// to the server instead of downloading a schema for client-side validation, which would
    /// fail here since `/openapi/v2` does not exist.
    #[test]
    fn kubectl_default_validation_accepts_built_in_and_cloneset_manifests() {
        const MANIFESTS: &str = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: nginx
        image: nginx
---
apiVersion: apps.kruise.io/v1alpha1
kind: CloneSet
metadata:
  name: sample
spec:
  replicas: 2
  selector:
    matchLabels: {app: sample}
  template:
    metadata:
      labels: {app: sample}
    spec:
      containers:
      - name: nginx
        image: nginx:alpine
  updateStrategy:
    type: InPlaceIfPossible
    partition: 1
";
        let (ok, stdout, stderr) = with_server(|server| {
            run_kubectl(
                &[
                    "create",
                    "-f",
                    "manifests.yaml",
                    "--dry-run=client",
                    "-o",
                    "name",
                ],
                &[("manifests.yaml", MANIFESTS)],
                server,
                Duration::from_secs(15),
            )
        });
        assert!(ok, "kubectl failed:\n{stdout}\n{stderr}");
        assert_eq!(
            stdout.lines().collect::<Vec<_>>(),
            ["deployment.apps/web", "cloneset.apps.kruise.io/sample"],
            "{stderr}"
        );
    }
}
