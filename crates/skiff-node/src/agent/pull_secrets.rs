//! The credentials a pod pulls its images with: the Secrets its `imagePullSecrets` name, then
//! those its ServiceAccount's `imagePullSecrets` name, read into one keyring as kubelet's
//! `MakeDockerKeyring` does and matched against the image (most specific key first).

use std::sync::Arc;

use k8s_openapi::api::core::v1::{Pod, Secret, ServiceAccount};
use skiff_client::{Api, Client};
use skiff_images::keyring::Keyring;
use skiff_images::Reference;
use skiff_runtime::{EventRecorder, EventType, ObjectRef};

use super::runtime::PullCredentials;

/// The Secret type holding a `.dockerconfigjson` document.
const DOCKER_CONFIG_JSON_TYPE: &str = "kubernetes.io/dockerconfigjson";
/// The legacy Secret type holding a `.dockercfg` document (the `auths` map alone).
const DOCKER_CFG_TYPE: &str = "kubernetes.io/dockercfg";

/// The names of the pull Secrets of `pod` and then of `service_account`, each once, in order.
pub fn pull_secret_names(pod: &Pod, service_account: Option<&ServiceAccount>) -> Vec<String> {
    let from_pod = pod
        .spec
        .as_ref()
        .and_then(|s| s.image_pull_secrets.as_ref())
        .into_iter()
        .flatten();
    let from_account = service_account
        .and_then(|a| a.image_pull_secrets.as_ref())
        .into_iter()
        .flatten();
    let mut names: Vec<String> = Vec::new();
    for reference in from_pod.chain(from_account) {
        if !reference.name.is_empty() && !names.contains(&reference.name) {
            names.push(reference.name.clone());
        }
    }
    names
}

/// Adds one Secret's registry credentials to `keyring`; Secrets of other types, and
/// documents that do not parse, add nothing (kubelet skips them too).
pub fn add_secret(keyring: &mut Keyring, secret: &Secret) {
    let data = secret.data.clone().unwrap_or_default();
    let document = match secret.type_.as_deref() {
        Some(DOCKER_CONFIG_JSON_TYPE) => data.get(".dockerconfigjson").map(|b| b.0.clone()),
        Some(DOCKER_CFG_TYPE) => data.get(".dockercfg").and_then(|b| {
            // The legacy document is the `auths` map itself.
            let auths: serde_json::Value = serde_json::from_slice(&b.0).ok()?;
            serde_json::to_vec(&serde_json::json!({ "auths": auths })).ok()
        }),
        _ => None,
    };
    if let Some(document) = document {
        if let Err(error) = keyring.add_docker_config_json(&document) {
            tracing::warn!(
                secret = secret.metadata.name.as_deref().unwrap_or(""),
                %error,
                "skipping an unreadable image pull secret"
            );
        }
    }
}

/// The credentials to try for `image`, best match first, read from the API. Secrets that
/// cannot be read are reported on the pod as kubelet does (`FailedToRetrieveImagePullSecret`)
/// and the pull goes on without them.
pub async fn pull_credentials(
    client: Arc<dyn Client>,
    pod: &Pod,
    image: &str,
    recorder: &EventRecorder,
) -> PullCredentials {
    let Ok(reference) = Reference::parse(image) else {
        return Vec::new();
    };
    let namespace = pod.metadata.namespace.clone().unwrap_or_default();
    let account_name = pod
        .spec
        .as_ref()
        .and_then(|s| s.service_account_name.clone())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "default".to_string());
    let account = match Api::<ServiceAccount>::new(client.clone(), Some(&namespace)) {
        Ok(api) => api.get_opt(&account_name).await.ok().flatten(),
        Err(_) => None,
    };
    let names = pull_secret_names(pod, account.as_ref());
    if names.is_empty() {
        return Vec::new();
    }
    let Ok(secrets) = Api::<Secret>::new(client, Some(&namespace)) else {
        return Vec::new();
    };
    let mut keyring = Keyring::default();
    let mut missing = Vec::new();
    for name in names {
        match secrets.get_opt(&name).await {
            Ok(Some(secret)) => add_secret(&mut keyring, &secret),
            _ => missing.push(name),
        }
    }
    if !missing.is_empty() {
        if let Ok(involved) = ObjectRef::from_object(pod) {
            recorder.record(
                &involved,
                EventType::Warning,
                "FailedToRetrieveImagePullSecret",
                format!(
                    "Unable to retrieve some image pull secrets ({}); attempting to pull the image may not succeed.",
                    missing.join(", ")
                ),
            );
        }
    }
    keyring.lookup(&reference)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn secret(type_: &str, key: &str, document: serde_json::Value) -> Secret {
        use base64::Engine;
        let encoded = base64::engine::general_purpose::STANDARD.encode(document.to_string());
        serde_json::from_value(json!({
            "metadata": {"name": "s"},
            "type": type_,
            "data": {key: encoded},
        }))
        .unwrap()
    }

    #[test]
    fn the_pods_secrets_come_before_its_service_accounts_each_once() {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "p"},
            "spec": {"containers": [], "imagePullSecrets": [{"name": "a"}, {"name": "b"}]},
        }))
        .unwrap();
        let account: ServiceAccount = serde_json::from_value(json!({
            "metadata": {"name": "default"},
            "imagePullSecrets": [{"name": "b"}, {"name": "c"}],
        }))
        .unwrap();
        assert_eq!(pull_secret_names(&pod, Some(&account)), vec!["a", "b", "c"]);
        assert_eq!(pull_secret_names(&pod, None), vec!["a", "b"]);
    }

    #[test]
    fn both_docker_secret_types_give_credentials() {
        let reference = Reference::parse("registry.example:5000/team/app:1").unwrap();
        let json_secret = secret(
            DOCKER_CONFIG_JSON_TYPE,
            ".dockerconfigjson",
            json!({"auths": {"registry.example:5000": {"username": "new", "password": "p1"}}}),
        );
        let cfg_secret = secret(
            DOCKER_CFG_TYPE,
            ".dockercfg",
            json!({"registry.example:5000/team": {"username": "old", "password": "p2"}}),
        );
        let opaque = secret(
            "Opaque",
            ".dockerconfigjson",
            json!({"auths": {"registry.example:5000": {"username": "x", "password": "y"}}}),
        );
        let mut keyring = Keyring::default();
        for s in [&json_secret, &cfg_secret, &opaque] {
            add_secret(&mut keyring, s);
        }
        let users: Vec<String> = keyring
            .lookup(&reference)
            .into_iter()
            .map(|c| c.username)
            .collect();
        // The more specific key (with a path) is tried first; the Opaque Secret is ignored.
        assert_eq!(users, vec!["old", "new"]);
    }
}
