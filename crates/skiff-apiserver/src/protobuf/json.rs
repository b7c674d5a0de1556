//! Turning decoded protobuf messages into the JSON that Go's `encoding/json` would
//! produce for the same Kubernetes object.
//!
//! The protobuf wire form cannot tell a Go pointer from a Go value: the Go marshaller
//! writes every non-pointer scalar, zero or not, and every non-pointer struct. So each
//! field carries an emission rule (see [`emit`]) recorded from the Go type definitions,
//! and the per-type tables in `types.rs` pick one rule per field.

use std::collections::BTreeMap;

use base64::Engine as _;
use k8s_pb::apimachinery::pkg::api::resource::Quantity;
use k8s_pb::apimachinery::pkg::apis::meta::v1::{Duration, FieldsV1, MicroTime, Time};
use k8s_pb::apimachinery::pkg::runtime::RawExtension;
use k8s_pb::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::{Map, Value};

use super::ProtobufError;

/// Seconds from the Unix epoch to Go's zero `time.Time` (0001-01-01T00:00:00Z), which
/// Kubernetes serialises as `null`.
const GO_ZERO_TIME_UNIX_SECONDS: i64 = -62_135_596_800;

/// A value that has a Kubernetes JSON form; implemented for every message reachable
/// from the supported kinds so conversion is checked by the compiler, not at run time.
pub(crate) trait ToJson {
    /// Fails only where Go's JSON marshaller would fail too (bad times, raw bytes that
    /// are not JSON, an impossible IntOrString type).
    fn to_json(&self) -> Result<Value, ProtobufError>;
}

/// Go's notion of an empty value, which decides what `omitempty` drops.
pub(crate) trait IsZero {
    /// True when Go's `omitempty` would leave the field out.
    fn is_zero(&self) -> bool;
}

impl ToJson for String {
    fn to_json(&self) -> Result<Value, ProtobufError> {
        Ok(Value::String(self.clone()))
    }
}

impl ToJson for bool {
    fn to_json(&self) -> Result<Value, ProtobufError> {
        Ok(Value::Bool(*self))
    }
}

impl ToJson for i32 {
    fn to_json(&self) -> Result<Value, ProtobufError> {
        Ok(Value::from(*self))
    }
}

impl ToJson for i64 {
    fn to_json(&self) -> Result<Value, ProtobufError> {
        Ok(Value::from(*self))
    }
}

/// Go's `[]byte` is standard, padded base64 in JSON (Secret `data`, ConfigMap
/// `binaryData`).
impl ToJson for Vec<u8> {
    fn to_json(&self) -> Result<Value, ProtobufError> {
        Ok(Value::String(
            base64::engine::general_purpose::STANDARD.encode(self),
        ))
    }
}

impl IsZero for String {
    fn is_zero(&self) -> bool {
        self.is_empty()
    }
}

impl IsZero for bool {
    fn is_zero(&self) -> bool {
        !*self
    }
}

impl IsZero for i32 {
    fn is_zero(&self) -> bool {
        *self == 0
    }
}

impl IsZero for i64 {
    fn is_zero(&self) -> bool {
        *self == 0
    }
}

impl IsZero for Vec<u8> {
    fn is_zero(&self) -> bool {
        self.is_empty()
    }
}

/// `metav1.Time`: RFC 3339 in UTC with whole seconds; Go's zero time is `null`.
impl ToJson for Time {
    fn to_json(&self) -> Result<Value, ProtobufError> {
        format_time(self.seconds, self.nanos, "%Y-%m-%dT%H:%M:%SZ")
    }
}

/// `metav1.MicroTime`: RFC 3339 in UTC with exactly six fractional digits.
impl ToJson for MicroTime {
    fn to_json(&self) -> Result<Value, ProtobufError> {
        format_time(self.seconds, self.nanos, "%Y-%m-%dT%H:%M:%S%.6fZ")
    }
}

/// Both time types travel as (seconds, nanos) and are normalised the way Go's
/// `time.Unix` does. An empty message is Go's zero time, which is how the Go marshaller
/// writes an unset timestamp.
fn format_time(
    seconds: Option<i64>,
    nanos: Option<i32>,
    pattern: &str,
) -> Result<Value, ProtobufError> {
    if seconds.is_none() && nanos.is_none() {
        return Ok(Value::Null);
    }
    let seconds = seconds.unwrap_or(0);
    let nanos = nanos.unwrap_or(0);
    let instant = i128::from(seconds) * 1_000_000_000 + i128::from(nanos);
    if instant == i128::from(GO_ZERO_TIME_UNIX_SECONDS) * 1_000_000_000 {
        return Ok(Value::Null);
    }
    let timestamp = jiff::Timestamp::from_nanosecond(instant)
        .map_err(|_| ProtobufError::InvalidTime { seconds, nanos })?;
    Ok(Value::String(timestamp.strftime(pattern).to_string()))
}

/// `metav1.Duration`: Go's `time.Duration.String()` form, e.g. `1h2m3.5s`, `300ms`.
impl ToJson for Duration {
    fn to_json(&self) -> Result<Value, ProtobufError> {
        Ok(Value::String(go_duration_string(
            self.duration.unwrap_or(0),
        )))
    }
}

/// Formats nanoseconds the way Go's `time.Duration.String` does, because clients
/// compare these strings literally.
pub(crate) fn go_duration_string(nanoseconds: i64) -> String {
    const MICROSECOND: u64 = 1_000;
    const MILLISECOND: u64 = 1_000_000;
    const SECOND: u64 = 1_000_000_000;
    if nanoseconds == 0 {
        return "0s".to_owned();
    }
    let sign = if nanoseconds < 0 { "-" } else { "" };
    let magnitude = nanoseconds.unsigned_abs();
    if magnitude < SECOND {
        return if magnitude < MICROSECOND {
            format!("{sign}{magnitude}ns")
        } else if magnitude < MILLISECOND {
            format!("{sign}{}µs", decimal_with_fraction(magnitude, 3))
        } else {
            format!("{sign}{}ms", decimal_with_fraction(magnitude, 6))
        };
    }
    let seconds_text = decimal_with_fraction(magnitude % (60 * SECOND), 9);
    let whole_minutes = magnitude / (60 * SECOND);
    let hours = whole_minutes / 60;
    let minutes = whole_minutes % 60;
    if hours > 0 {
        format!("{sign}{hours}h{minutes}m{seconds_text}s")
    } else if minutes > 0 {
        format!("{sign}{minutes}m{seconds_text}s")
    } else {
        format!("{sign}{seconds_text}s")
    }
}

/// `value / 10^digits` as a decimal with trailing zeros (and a bare point) removed.
fn decimal_with_fraction(value: u64, digits: u32) -> String {
    let scale = 10u64.pow(digits);
    let whole = value / scale;
    let fraction = value % scale;
    if fraction == 0 {
        return whole.to_string();
    }
    let padded = format!("{fraction:0width$}", width = digits as usize);
    format!("{whole}.{}", padded.trim_end_matches('0'))
}

/// `intstr.IntOrString`: type 0 is a JSON number, type 1 a JSON string.
impl ToJson for IntOrString {
    fn to_json(&self) -> Result<Value, ProtobufError> {
        match self.r#type.unwrap_or(0) {
            0 => Ok(Value::from(self.int_val.unwrap_or(0))),
            1 => Ok(Value::String(self.str_val.clone().unwrap_or_default())),
            other => Err(ProtobufError::InvalidIntOrString(other)),
        }
    }
}

/// `resource.Quantity` is its string form; Go's zero quantity prints as `"0"`.
impl ToJson for Quantity {
    fn to_json(&self) -> Result<Value, ProtobufError> {
        Ok(Value::String(
            self.string.clone().unwrap_or_else(|| "0".to_owned()),
        ))
    }
}

/// `runtime.RawExtension` embeds another object's JSON verbatim.
impl ToJson for RawExtension {
    fn to_json(&self) -> Result<Value, ProtobufError> {
        raw_json(self.raw.as_deref(), "RawExtension")
    }
}

/// `metav1.FieldsV1` (managedFields) embeds a JSON field set verbatim.
impl ToJson for FieldsV1 {
    fn to_json(&self) -> Result<Value, ProtobufError> {
        raw_json(self.raw.as_deref(), "FieldsV1")
    }
}

/// Go writes empty raw bytes as `null` and refuses bytes that are not JSON.
fn raw_json(raw: Option<&[u8]>, type_name: &'static str) -> Result<Value, ProtobufError> {
    match raw {
        None | Some([]) => Ok(Value::Null),
        Some(bytes) => serde_json::from_slice(bytes)
            .map_err(|source| ProtobufError::RawNotJson { type_name, source }),
    }
}

/// Emission rules, one per way a Go struct field can be declared. The names are used
/// as-is in the per-type tables.
pub(crate) mod emit {
    use super::*;

    /// Go pointer (`*T`): present exactly when set, even when set to zero
    /// (`replicas: 0` must survive).
    pub(crate) fn ptr<T: ToJson>(
        out: &mut Map<String, Value>,
        name: &str,
        value: &Option<T>,
    ) -> Result<(), ProtobufError> {
        if let Some(value) = value {
            out.insert(name.to_owned(), value.to_json()?);
        }
        Ok(())
    }

    /// Go scalar value with `omitempty`: dropped when unset or zero.
    pub(crate) fn omit<T: ToJson + IsZero>(
        out: &mut Map<String, Value>,
        name: &str,
        value: &Option<T>,
    ) -> Result<(), ProtobufError> {
        if let Some(value) = value.as_ref().filter(|value| !value.is_zero()) {
            out.insert(name.to_owned(), value.to_json()?);
        }
        Ok(())
    }

    /// Go value that is always written: scalars without `omitempty`, and every
    /// non-pointer struct (Go's `omitempty` never drops a struct).
    pub(crate) fn always<T: ToJson + Default>(
        out: &mut Map<String, Value>,
        name: &str,
        value: &Option<T>,
    ) -> Result<(), ProtobufError> {
        let json = match value {
            Some(value) => value.to_json()?,
            None => T::default().to_json()?,
        };
        out.insert(name.to_owned(), json);
        Ok(())
    }

    /// Slices: an empty list is indistinguishable from an absent one on the wire, so
    /// both are left out.
    pub(crate) fn list<T: ToJson>(
        out: &mut Map<String, Value>,
        name: &str,
        values: &[T],
    ) -> Result<(), ProtobufError> {
        if values.is_empty() {
            return Ok(());
        }
        let items = values
            .iter()
            .map(ToJson::to_json)
            .collect::<Result<Vec<_>, _>>()?;
        out.insert(name.to_owned(), Value::Array(items));
        Ok(())
    }

    /// Maps (labels, data, resource lists): left out when empty, like lists.
    pub(crate) fn map<T: ToJson>(
        out: &mut Map<String, Value>,
        name: &str,
        values: &BTreeMap<String, T>,
    ) -> Result<(), ProtobufError> {
        if values.is_empty() {
            return Ok(());
        }
        let mut object = Map::new();
        for (key, value) in values {
            object.insert(key.clone(), value.to_json()?);
        }
        out.insert(name.to_owned(), Value::Object(object));
        Ok(())
    }

    /// Embedded Go struct (`json:",inline"`, e.g. a Volume's VolumeSource): its fields
    /// sit directly in the parent object.
    pub(crate) fn inline<T: ToJson + Default>(
        out: &mut Map<String, Value>,
        value: &Option<T>,
    ) -> Result<(), ProtobufError> {
        let json = match value {
            Some(value) => value.to_json()?,
            None => T::default().to_json()?,
        };
        if let Value::Object(fields) = json {
            out.extend(fields);
        }
        Ok(())
    }
}

/// Declares the JSON form of protobuf message types, one line per field:
/// `"jsonName" = rust_field: rule` or `rust_field: inline`.
macro_rules! json_objects {
    ($( $ty:path { $( $($json:literal =)? $field:ident : $rule:ident ),* $(,)? } ),* $(,)?) => {
        $(
            impl $crate::protobuf::json::ToJson for $ty {
                fn to_json(&self) -> Result<::serde_json::Value, $crate::protobuf::ProtobufError> {
                    #[allow(unused_mut)]
                    let mut out = ::serde_json::Map::new();
                    $( $crate::protobuf::json::json_field!(out, self.$field, $rule $(, $json)?); )*
                    Ok(::serde_json::Value::Object(out))
                }
            }
        )*
    };
}

/// One field of [`json_objects!`]: inline fields have no name of their own.
macro_rules! json_field {
    ($out:ident, $value:expr, inline) => {
        $crate::protobuf::json::emit::inline(&mut $out, &$value)?
    };
    ($out:ident, $value:expr, $rule:ident, $json:literal) => {
        $crate::protobuf::json::emit::$rule(&mut $out, $json, &$value)?
    };
}

pub(crate) use json_field;
pub(crate) use json_objects;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_format_like_go() {
        let cases: &[(i64, &str)] = &[
            (0, "0s"),
            (1, "1ns"),
            (1_500, "1.5µs"),
            (1_000_000, "1ms"),
            (1_234_000, "1.234ms"),
            (1_000_000_000, "1s"),
            (1_500_000_000, "1.5s"),
            (60_000_000_000, "1m0s"),
            (90_000_000_000, "1m30s"),
            (3_600_000_000_000, "1h0m0s"),
            (3_723_500_000_000, "1h2m3.5s"),
            (-5_000_000_000, "-5s"),
            (i64::MIN, "-2562047h47m16.854775808s"),
        ];
        for (nanoseconds, expected) in cases {
            assert_eq!(
                go_duration_string(*nanoseconds),
                *expected,
                "{nanoseconds}ns"
            );
        }
    }

    #[test]
    fn times_format_as_rfc3339_and_zero_is_null() {
        let time = |seconds: Option<i64>, nanos: Option<i32>| Time { seconds, nanos };
        let cases: &[(Time, Value)] = &[
            (time(None, None), Value::Null),
            (time(Some(GO_ZERO_TIME_UNIX_SECONDS), None), Value::Null),
            (
                time(Some(1_704_164_645), None),
                Value::from("2024-01-02T03:04:05Z"),
            ),
            (
                time(Some(1_704_164_645), Some(999_999_999)),
                Value::from("2024-01-02T03:04:05Z"),
            ),
            (time(Some(-1), None), Value::from("1969-12-31T23:59:59Z")),
            (time(Some(0), Some(0)), Value::from("1970-01-01T00:00:00Z")),
            (time(Some(0), Some(-1)), Value::from("1969-12-31T23:59:59Z")),
            (
                time(Some(1), Some(2_000_000_000)),
                Value::from("1970-01-01T00:00:03Z"),
            ),
        ];
        for (input, expected) in cases {
            assert_eq!(&input.to_json().expect("valid time"), expected, "{input:?}");
        }
    }

    #[test]
    fn micro_times_keep_six_fraction_digits() {
        let micro = MicroTime {
            seconds: Some(1_704_164_645),
            nanos: Some(123_456_789),
        };
        assert_eq!(
            micro.to_json().expect("valid time"),
            Value::from("2024-01-02T03:04:05.123456Z")
        );
        let whole = MicroTime {
            seconds: Some(1_704_164_645),
            nanos: None,
        };
        assert_eq!(
            whole.to_json().expect("valid time"),
            Value::from("2024-01-02T03:04:05.000000Z")
        );
    }

    #[test]
    fn out_of_range_times_are_errors() {
        for (seconds, nanos) in [(i64::MAX, 0), (i64::MIN, 0), (300_000_000_000, 0)] {
            let time = Time {
                seconds: Some(seconds),
                nanos: Some(nanos),
            };
            assert!(time.to_json().is_err(), "{seconds}s {nanos}ns");
        }
    }

    #[test]
    fn int_or_string_follows_its_type_tag() {
        let value = |r#type, int_val, str_val: Option<&str>| IntOrString {
            r#type,
            int_val,
            str_val: str_val.map(str::to_owned),
        };
        let cases: &[(IntOrString, Value)] = &[
            (value(None, None, None), Value::from(0)),
            (
                value(Some(0), Some(8080), Some("ignored")),
                Value::from(8080),
            ),
            (value(Some(1), Some(3), Some("25%")), Value::from("25%")),
            (value(Some(1), None, None), Value::from("")),
        ];
        for (input, expected) in cases {
            assert_eq!(&input.to_json().expect("valid"), expected, "{input:?}");
        }
        assert!(value(Some(2), None, None).to_json().is_err());
    }

    #[test]
    fn raw_bytes_must_be_json() {
        let raw = |bytes: Option<&[u8]>| RawExtension {
            raw: bytes.map(<[u8]>::to_vec),
        };
        assert_eq!(raw(None).to_json().expect("null"), Value::Null);
        assert_eq!(raw(Some(b"")).to_json().expect("null"), Value::Null);
        assert_eq!(
            raw(Some(br#"{"a":1}"#)).to_json().expect("json"),
            serde_json::json!({"a": 1})
        );
        assert!(raw(Some(b"\x0a\x01")).to_json().is_err());
    }

    #[test]
    fn emission_rules_match_go_pointer_and_omitempty_semantics() {
        let mut out = Map::new();
        emit::ptr(&mut out, "replicas", &Some(0i32)).expect("ok");
        emit::ptr::<i32>(&mut out, "unsetPointer", &None).expect("ok");
        emit::omit(&mut out, "zeroOmitted", &Some(0i32)).expect("ok");
        emit::omit(&mut out, "emptyOmitted", &Some(String::new())).expect("ok");
        emit::omit(&mut out, "set", &Some("x".to_owned())).expect("ok");
        emit::always(&mut out, "required", &None::<i32>).expect("ok");
        emit::always(&mut out, "struct", &None::<Quantity>).expect("ok");
        emit::list::<String>(&mut out, "emptyList", &[]).expect("ok");
        emit::map::<String>(&mut out, "emptyMap", &BTreeMap::new()).expect("ok");
        assert_eq!(
            Value::Object(out),
            serde_json::json!({"replicas": 0, "set": "x", "required": 0, "struct": "0"})
        );
    }
}
