//! The Rust type behind a kind in one version, captured as plain functions so that generic code
//! (strict decoding in admission, schemas in OpenAPI) can use it without naming the type.

use schemars::{JsonSchema, SchemaGenerator};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

/// Why an object did not round-trip through its type.
#[derive(Debug)]
pub enum TypedError {
    /// The object does not decode as the type; the decoder's own error, whose position and
    /// category callers inspect.
    Decode(serde_json::Error),
    /// The decoded object could not be encoded again; the encoder's message.
    Encode(String),
}

/// Functions made for one Rust type; build it with [`TypedVersion::of`].
#[derive(Clone, Copy)]
pub struct TypedVersion {
    /// Decodes an object as the type and encodes it back, pushing the path of every field the
    /// type does not define (rendered as Kubernetes does: `spec.containers[0].foo`).
    pub round_trip: fn(Value, &mut Vec<String>) -> Result<Value, TypedError>,
    /// Adds the type's schema, and everything it references, to a generator; returns the name
    /// of its definition.
    pub register_schema: fn(&mut SchemaGenerator) -> String,
}

impl TypedVersion {
    /// The functions for `T`.
    pub fn of<T: DeserializeOwned + Serialize + JsonSchema>() -> TypedVersion {
        TypedVersion {
            round_trip: round_trip::<T>,
            register_schema: register_schema::<T>,
        }
    }
}

fn round_trip<T: DeserializeOwned + Serialize>(
    obj: Value,
    unknown: &mut Vec<String>,
) -> Result<Value, TypedError> {
    let typed: T = serde_ignored::deserialize(obj, |path| unknown.push(render_path(&path)))
        .map_err(TypedError::Decode)?;
    let mut value = serde_json::to_value(typed).map_err(|e| TypedError::Encode(e.to_string()))?;
    write_whole_floats_as_go_does(&mut value);
    Ok(value)
}

/// The largest magnitude below which every whole `f64` is an exact integer (2^53).
const EXACT_WHOLE_FLOAT: f64 = 9_007_199_254_740_992.0;

/// Writes whole floating-point numbers without a fraction (`1`, not `1.0`), as Go's encoder
/// prints a `float64`: a typed field such as a schema's `minimum` then reads back exactly as
/// the client sent it, so re-applying an unchanged object changes nothing.
fn write_whole_floats_as_go_does(value: &mut Value) {
    match value {
        Value::Number(n) if n.is_f64() => {
            let Some(x) = n.as_f64() else { return };
            let negative_zero = x == 0.0 && x.is_sign_negative();
            if x.fract() == 0.0 && x.abs() < EXACT_WHOLE_FLOAT && !negative_zero {
                // Exact: whole and within the range where f64 holds every integer.
                *value = Value::from(x as i64);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(write_whole_floats_as_go_does),
        Value::Object(fields) => fields.values_mut().for_each(write_whole_floats_as_go_does),
        _ => {}
    }
}

fn register_schema<T: JsonSchema>(generator: &mut SchemaGenerator) -> String {
    generator.subschema_for::<T>();
    T::schema_name().into_owned()
}

/// Renders a serde path as Kubernetes renders field paths: `spec.containers[0].foo`.
fn render_path(path: &serde_ignored::Path<'_>) -> String {
    use serde_ignored::Path;
    match path {
        Path::Root => String::new(),
        Path::Seq { parent, index } => format!("{}[{}]", render_path(parent), index),
        Path::Map { parent, key } => {
            let p = render_path(parent);
            if p.is_empty() {
                key.to_string()
            } else {
                format!("{p}.{key}")
            }
        }
        Path::Some { parent }
        | Path::NewtypeStruct { parent }
        | Path::NewtypeVariant { parent } => render_path(parent),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn unknown_fields_are_named_by_their_kubernetes_path_and_dropped() {
        let typed = TypedVersion::of::<k8s_openapi::api::core::v1::Pod>();
        let mut unknown = Vec::new();
        let out = (typed.round_trip)(
            json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "foo": 1}]}, "bar": 2}),
            &mut unknown,
        )
        .expect("a pod decodes");
        unknown.sort();
        assert_eq!(unknown, vec!["bar", "spec.containers[0].foo"]);
        assert_eq!(out.pointer("/spec/containers/0/foo"), None);
        assert_eq!(out.pointer("/spec/containers/0/name"), Some(&json!("c")));
    }

    #[test]
    fn whole_floats_come_back_as_integers_as_go_prints_them() {
        let typed = TypedVersion::of::<
            k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::JSONSchemaProps,
        >();
        let out = (typed.round_trip)(
            json!({"type": "integer", "minimum": 1, "maximum": 2.5, "multipleOf": 3.0}),
            &mut Vec::new(),
        )
        .expect("a schema decodes");
        assert_eq!(serde_json::to_string(&out["minimum"]).unwrap(), "1");
        assert_eq!(serde_json::to_string(&out["multipleOf"]).unwrap(), "3");
        assert_eq!(serde_json::to_string(&out["maximum"]).unwrap(), "2.5");
    }

    #[test]
    fn a_value_of_the_wrong_type_is_a_decode_error() {
        let typed = TypedVersion::of::<k8s_openapi::api::core::v1::Pod>();
        let result = (typed.round_trip)(json!({"spec": {"containers": 5}}), &mut Vec::new());
        assert!(matches!(result, Err(TypedError::Decode(_))), "{result:?}");
    }
}
