//! Admission of a decoded object: the first byte picks a served kind, the rest is its JSON.
//! The typed round trip, defaults, conversion to the storage version and validation must
//! answer or refuse with a 4xx `Status`, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use skiff_api::resources::{self, RESOURCES};
use skiff_apiserver::admission::{self, FieldValidation};

fuzz_target!(|data: &[u8]| {
    let Some((selector, body)) = data.split_first() else {
        return;
    };
    let resource = &RESOURCES[usize::from(*selector) % RESOURCES.len()];
    let Ok(mut object) = serde_json::from_slice::<Value>(body) else {
        return;
    };
    if !object.is_object() {
        return;
    }
    object["apiVersion"] = Value::String(resource.api_version());
    object["kind"] = Value::String(resource.kind.to_string());
    let (mut object, _warnings) =
        match admission::normalize(resource, object, FieldValidation::Warn) {
            Ok(normalized) => normalized,
            Err(error) => {
                assert!((400..500).contains(&error.code), "{error}");
                return;
            }
        };
    admission::apply_defaults(resource, &mut object);
    let storage = resources::storage_resource(resource);
    let stored = admission::convert(object, &storage.api_version())
        .expect("conversion of an admitted object");
    let _ = admission::validate_create(storage, &stored);
});
