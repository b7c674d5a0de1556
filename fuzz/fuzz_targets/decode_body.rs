//! Request bodies: the first byte picks JSON, YAML or Kubernetes protobuf, the rest is the
//! body. Decoding must answer an object or a 4xx `Status`, never panic.
#![no_main]

use axum::http::{header, HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;

const CONTENT_TYPES: [&str; 3] = [
    "application/json",
    "application/yaml",
    "application/vnd.kubernetes.protobuf",
];

fuzz_target!(|data: &[u8]| {
    let Some((selector, body)) = data.split_first() else {
        return;
    };
    let content_type = CONTENT_TYPES[usize::from(*selector) % CONTENT_TYPES.len()];
    let mut headers = HeaderMap::new();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Err(error) = skiff_apiserver::bodies::decode_object(&headers, body) {
        assert!((400..500).contains(&error.code), "{error}");
    }
});
