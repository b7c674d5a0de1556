//! ConfigMaps (`v1`): key validation and immutability.

use jiff::Timestamp;
use serde_json::Value;

use super::{Kind, KindStrategy, TypedVersion};
use crate::errors::FieldErrorType;
use crate::printers::*;
use crate::validation::*;
use crate::{
    errors::FieldError,
    printers::{age_col, col, name_col, Printer},
    resources::{res, ResourceInfo},
    validation,
};

/// `v1` ConfigMaps.
pub static V1: ResourceInfo = ResourceInfo {
    short_names: &["cm"],
    ..res("", "v1", "ConfigMap", "configmaps", "configmap", true)
};

/// The kind's entry in the kind table.
pub static KIND: Kind = Kind {
    versions: &[&V1],
    strategy: &Strategy,
};

/// The kind's behaviour.
pub struct Strategy;

impl KindStrategy for Strategy {
    fn typed(&self, _version: &str) -> Option<TypedVersion> {
        Some(TypedVersion::of::<k8s_openapi::api::core::v1::ConfigMap>())
    }

    fn validate(&self, obj: &Value, errs: &mut Vec<FieldError>) {
        validate_config_map(obj, errs);
    }

    fn validate_update(&self, new: &Value, old: &Value, errs: &mut Vec<FieldError>) {
        validation::validate_immutable_data(new, old, errs);
        self.validate(new, errs);
    }

    fn printer(&self) -> Option<Printer> {
        Some(Printer::new(
            vec![
                name_col(),
                col(
                    "Data",
                    "string",
                    "Number of entries in data and binaryData.",
                ),
                age_col(),
            ],
            config_map_cells,
        ))
    }
}

fn validate_config_map(obj: &Value, errs: &mut Vec<FieldError>) {
    let total = validate_data_keys(obj, &["data", "binaryData"], errs);
    if let (Some(data), Some(binary)) = (
        obj.get("data").and_then(Value::as_object),
        obj.get("binaryData").and_then(Value::as_object),
    ) {
        let mut keys: Vec<&String> = data.keys().filter(|k| binary.contains_key(*k)).collect();
        keys.sort();
        for key in keys {
            errs.push(FieldError::invalid(
                "data",
                &Value::from(key.as_str()),
                "duplicate of key present in binaryData",
            ));
        }
    }
    if total > MAX_DATA_SIZE {
        errs.push(FieldError {
            error_type: FieldErrorType::TooLong,
            field: String::new(),
            bad_value: None,
            detail: format!("may not be more than {MAX_DATA_SIZE} bytes"),
        });
    }
}

fn config_map_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    let entries = map_len(obj, "/data") + map_len(obj, "/binaryData");
    vec![name(obj), entries.into(), age(obj, now)]
}
