//! Label and field selectors: the input, split at its first newline, is a label selector and a
//! field selector for pods. Parsing must succeed or answer 400, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (label, field) = text.split_once('\n').unwrap_or((text, ""));
    let pods = skiff_api::resources::find("", "v1", "pods").expect("pods");
    match skiff_apiserver::filter::Filter::parse(pods, Some(label), Some(field)) {
        Ok(filter) => {
            let pod = serde_json::json!({"metadata": {"name": "p", "namespace": "default",
                "labels": {"app": "web", "tier": "1"}}, "spec": {"nodeName": "n"},
                "status": {"phase": "Running"}});
            let _ = filter.matches(pods, &pod);
        }
        Err(error) => assert_eq!(error.code, 400, "{error}"),
    }
});
