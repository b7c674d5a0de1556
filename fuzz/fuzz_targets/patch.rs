//! The patch formats: the first byte picks JSON patch, merge patch, strategic merge patch or
//! apply, the rest is the patch body, applied to a Deployment. Every failure must map to a
//! Kubernetes status code, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::json;
use skiff_api::patch::{self, PatchError, PatchType};

const PATCH_TYPES: [PatchType; 4] = [
    PatchType::Json,
    PatchType::Merge,
    PatchType::StrategicMerge,
    PatchType::Apply,
];

fuzz_target!(|data: &[u8]| {
    let Some((selector, body)) = data.split_first() else {
        return;
    };
    let patch_type = PATCH_TYPES[usize::from(*selector) % PATCH_TYPES.len()];
    let deployments = skiff_api::resources::find("apps", "v1", "deployments").expect("deployments");
    let target = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "labels": {"app": "web"}, "finalizers": ["a", "b"]},
        "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                 "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 1}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [
                                  {"name": "c", "image": "nginx", "env": [{"name": "A", "value": "1"}],
                                   "ports": [{"containerPort": 80, "protocol": "TCP"}]}],
                                       "volumes": [{"name": "v", "emptyDir": {}}]}}}
    });
    let check = |error: PatchError| {
        let code = error.code();
        assert!((400..=500).contains(&code), "{error}");
    };
    match patch::decode_patch_body(patch_type, body) {
        Ok(document) => {
            if let Err(error) = patch::apply_patch(deployments, &target, patch_type, &document) {
                check(error);
            }
        }
        Err(error) => check(error),
    }
});
