//! Secrets (`v1`): the `Opaque` default, type-specific keys, and immutability.

use jiff::Timestamp;
use serde_json::{Map, Value};

use super::{Kind, KindStrategy, RegistryHook, TypedVersion};
use crate::errors::FieldErrorType;
use crate::printers::*;
use crate::validation::*;
use crate::{
    defaults,
    errors::FieldError,
    printers::{age_col, col, name_col, Printer},
    resources::{res, ResourceInfo},
    validation,
};

/// `v1` Secrets.
pub static V1: ResourceInfo = res("", "v1", "Secret", "secrets", "secret", true);

/// The kind's entry in the kind table.
pub static KIND: Kind = Kind {
    versions: &[&V1],
    strategy: &Strategy,
};

/// The kind's behaviour.
pub struct Strategy;

impl KindStrategy for Strategy {
    fn typed(&self, _version: &str) -> Option<TypedVersion> {
        Some(TypedVersion::of::<k8s_openapi::api::core::v1::Secret>())
    }

    fn apply_defaults(&self, _version: &str, root: &mut Map<String, Value>) {
        defaults::default_str(root, "type", "Opaque");
    }

    fn validate(&self, obj: &Value, errs: &mut Vec<FieldError>) {
        validate_secret(obj, errs);
    }

    fn validate_update(&self, new: &Value, old: &Value, errs: &mut Vec<FieldError>) {
        immutable_secret_type(new, old, errs);
        validation::validate_immutable_data(new, old, errs);
        self.validate(new, errs);
    }

    fn printer(&self) -> Option<Printer> {
        Some(Printer::new(
            vec![
                name_col(),
                col("Type", "string", "The type of the secret."),
                col("Data", "string", "Number of entries in data."),
                age_col(),
            ],
            secret_cells,
        ))
    }

    fn registry_hook(&self) -> RegistryHook {
        RegistryHook::Secret
    }

    fn field_selectors(&self) -> Option<&'static [&'static str]> {
        Some(&["type", "metadata.namespace", "metadata.name"])
    }
}

fn validate_secret(obj: &Value, errs: &mut Vec<FieldError>) {
    let total = validate_data_keys(obj, &["data"], errs);
    if total > MAX_DATA_SIZE {
        errs.push(FieldError {
            error_type: FieldErrorType::TooLong,
            field: "data".to_string(),
            bad_value: None,
            detail: format!("may not be more than {MAX_DATA_SIZE} bytes"),
        });
    }
    let data = field(obj, "data");
    match str_at(obj, "type") {
        "kubernetes.io/service-account-token" => {
            let annotations = field(field(obj, "metadata"), "annotations");
            if str_at(annotations, "kubernetes.io/service-account.name").is_empty() {
                errs.push(FieldError::required(
                    "metadata.annotations[kubernetes.io/service-account.name]",
                    "",
                ));
            }
        }
        "kubernetes.io/basic-auth"
            if data.get("username").is_none() && data.get("password").is_none() =>
        {
            errs.push(FieldError::required(
                "data[username]",
                "either username or password is required",
            ));
        }
        secret_type => {
            let required: &[&str] = match secret_type {
                "kubernetes.io/dockercfg" => &[".dockercfg"],
                "kubernetes.io/dockerconfigjson" => &[".dockerconfigjson"],
                "kubernetes.io/ssh-auth" => &["ssh-privatekey"],
                "kubernetes.io/tls" => &["tls.key", "tls.crt"],
                _ => &[],
            };
            for key in required {
                if data.get(*key).is_none() {
                    errs.push(FieldError::required(format!("data[{key}]"), ""));
                }
            }
        }
    }
}

/// A Secret's `type` never changes.
fn immutable_secret_type(new: &Value, old: &Value, errs: &mut Vec<FieldError>) {
    if str_at(new, "type") != str_at(old, "type") {
        errs.push(FieldError::invalid(
            "type",
            &Value::from(str_at(new, "type")),
            IMMUTABLE,
        ));
    }
}

fn secret_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    vec![
        name(obj),
        text(obj, "/type").into(),
        map_len(obj, "/data").into(),
        age(obj, now),
    ]
}
