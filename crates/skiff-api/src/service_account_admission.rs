//! The ServiceAccount admission plugin's decisions on a new pod, as kube-apiserver's
//! `ServiceAccount` plugin makes them: the pod's ServiceAccount must exist, its image pull
//! secrets are copied to a pod without any, and unless automounting is turned off on the pod
//! or its ServiceAccount the pod gets the `kube-api-access-<suffix>` projected volume (a
//! token, the cluster CA, the namespace) mounted read-only in every container and init
//! container. Pure: the caller looks the ServiceAccount up and picks the suffix.

use serde_json::{json, Value};

/// Where every container finds its ServiceAccount's credentials.
pub const TOKEN_MOUNT_PATH: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// The prefix of the projected volume's name; five random characters follow.
pub const VOLUME_NAME_PREFIX: &str = "kube-api-access-";

/// The lifetime kube-apiserver gives the projected token (an hour and seven seconds, so it
/// can be told apart from tokens clients request).
pub const PROJECTED_TOKEN_EXPIRATION_SECONDS: i64 = 3607;

/// The characters of generated name suffixes (no vowels, no look-alikes), as Kubernetes uses.
pub const SUFFIX_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// The annotation that marks a mirror pod, which the plugin leaves alone.
const MIRROR_POD_ANNOTATION: &str = "kubernetes.io/config.mirror";

/// The name of the ServiceAccount a pod runs as (`default` when it names none).
pub fn service_account_name(pod: &Value) -> &str {
    pod.pointer("/spec/serviceAccountName")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .unwrap_or("default")
}

/// Whether the plugin has anything to decide for `pod` (mirror pods are left alone).
pub fn applies_to(pod: &Value) -> bool {
    pod.pointer("/metadata/annotations")
        .and_then(|a| a.get(MIRROR_POD_ANNOTATION))
        .is_none()
}

/// The Forbidden message for a pod whose ServiceAccount does not exist.
pub fn missing_service_account_message(pod_name: &str, namespace: &str, account: &str) -> String {
    format!(
        "pods \"{pod_name}\" is forbidden: error looking up service account {namespace}/{account}: serviceaccount \"{account}\" not found"
    )
}

/// Whether the pod gets the token volume: the pod's `automountServiceAccountToken` wins,
/// then its ServiceAccount's, and both unset means yes.
pub fn should_automount(pod: &Value, account: &Value) -> bool {
    if let Some(pod_says) = pod
        .pointer("/spec/automountServiceAccountToken")
        .and_then(Value::as_bool)
    {
        return pod_says;
    }
    account
        .get("automountServiceAccountToken")
        .and_then(Value::as_bool)
        .unwrap_or(true)
}

/// The projected volume kube-apiserver adds, named `volume_name`.
pub fn token_volume(volume_name: &str) -> Value {
    json!({
        "name": volume_name,
        "projected": {
            "defaultMode": 420,
            "sources": [
                {"serviceAccountToken": {"expirationSeconds": PROJECTED_TOKEN_EXPIRATION_SECONDS, "path": "token"}},
                {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}},
            ],
        },
    })
}

/// Applies the plugin to a new pod whose ServiceAccount is `account`; `suffix` names the
/// volume if one is added.
pub fn admit(pod: &mut Value, account: &Value, suffix: &str) {
    let Some(spec) = pod.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    let has_pull_secrets = spec
        .get("imagePullSecrets")
        .and_then(Value::as_array)
        .is_some_and(|s| !s.is_empty());
    if !has_pull_secrets {
        if let Some(secrets) = account
            .get("imagePullSecrets")
            .and_then(Value::as_array)
            .filter(|s| !s.is_empty())
        {
            let names: Vec<Value> = secrets
                .iter()
                .filter_map(|s| s.get("name").cloned())
                .map(|name| json!({"name": name}))
                .collect();
            spec.insert("imagePullSecrets".into(), Value::Array(names));
        }
    }
    if !should_automount(&Value::Object(spec_view(spec)), account) {
        return;
    }
    let volume_name = format!("{VOLUME_NAME_PREFIX}{suffix}");
    let mut mounted = false;
    for field in ["initContainers", "containers"] {
        let Some(containers) = spec.get_mut(field).and_then(Value::as_array_mut) else {
            continue;
        };
        for container in containers.iter_mut().filter_map(Value::as_object_mut) {
            let mounts = container.entry("volumeMounts").or_insert_with(|| json!([]));
            if !mounts.is_array() {
                *mounts = json!([]);
            }
            let list = mounts.as_array_mut().expect("made an array");
            let already = list
                .iter()
                .any(|m| m.get("mountPath").and_then(Value::as_str) == Some(TOKEN_MOUNT_PATH));
            if !already {
                list.push(json!({
                    "name": volume_name,
                    "readOnly": true,
                    "mountPath": TOKEN_MOUNT_PATH,
                }));
                mounted = true;
            }
        }
    }
    if mounted {
        let volumes = spec.entry("volumes").or_insert_with(|| json!([]));
        if !volumes.is_array() {
            *volumes = json!([]);
        }
        volumes
            .as_array_mut()
            .expect("made an array")
            .push(token_volume(&volume_name));
    }
}

/// The pod's spec wrapped as a pod, for [`should_automount`].
fn spec_view(spec: &serde_json::Map<String, Value>) -> serde_json::Map<String, Value> {
    let mut pod = serde_json::Map::new();
    let mut view = serde_json::Map::new();
    if let Some(automount) = spec.get("automountServiceAccountToken") {
        view.insert("automountServiceAccountToken".into(), automount.clone());
    }
    pod.insert("spec".into(), Value::Object(view));
    pod
}

/// A five-character suffix from `random`, one byte per character.
pub fn suffix_from(random: [u8; 5]) -> String {
    random
        .iter()
        .map(|b| SUFFIX_ALPHABET[usize::from(*b) % SUFFIX_ALPHABET.len()] as char)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod() -> Value {
        json!({
            "metadata": {"name": "web", "namespace": "dev"},
            "spec": {
                "serviceAccountName": "default",
                "initContainers": [{"name": "init", "image": "busybox"}],
                "containers": [
                    {"name": "app", "image": "nginx"},
                    {"name": "side", "image": "busybox", "volumeMounts": [
                        {"name": "own", "mountPath": TOKEN_MOUNT_PATH}
                    ]},
                ],
            },
        })
    }

    #[test]
    fn pods_get_the_projected_volume_and_a_read_only_mount_in_every_container() {
        let mut pod = pod();
        admit(&mut pod, &json!({"metadata": {"name": "default"}}), "ss22h");
        let volumes = pod["spec"]["volumes"].as_array().expect("volumes");
        assert_eq!(volumes.len(), 1);
        assert_eq!(volumes[0], token_volume("kube-api-access-ss22h"));
        assert_eq!(
            volumes[0]["projected"]["sources"][0]["serviceAccountToken"],
            json!({"expirationSeconds": 3607, "path": "token"})
        );
        let mount = json!({"name": "kube-api-access-ss22h", "readOnly": true, "mountPath": TOKEN_MOUNT_PATH});
        assert_eq!(
            pod["spec"]["initContainers"][0]["volumeMounts"],
            json!([mount])
        );
        assert_eq!(pod["spec"]["containers"][0]["volumeMounts"], json!([mount]));
        // A container that mounts something at the path already keeps its own.
        assert_eq!(
            pod["spec"]["containers"][1]["volumeMounts"],
            json!([{"name": "own", "mountPath": TOKEN_MOUNT_PATH}])
        );
    }

    #[test]
    fn automount_false_on_the_pod_or_its_account_adds_nothing() {
        let mut on_pod = pod();
        on_pod["spec"]["automountServiceAccountToken"] = json!(false);
        admit(&mut on_pod, &json!({}), "abcde");
        assert!(on_pod["spec"].get("volumes").is_none());
        assert!(on_pod["spec"]["containers"][0]
            .get("volumeMounts")
            .is_none());

        let mut on_account = pod();
        admit(
            &mut on_account,
            &json!({"automountServiceAccountToken": false}),
            "abcde",
        );
        assert!(on_account["spec"].get("volumes").is_none());

        // The pod's own true wins over its account's false.
        let mut pod_wins = pod();
        pod_wins["spec"]["automountServiceAccountToken"] = json!(true);
        admit(
            &mut pod_wins,
            &json!({"automountServiceAccountToken": false}),
            "abcde",
        );
        assert_eq!(
            pod_wins["spec"]["volumes"][0]["name"],
            "kube-api-access-abcde"
        );
    }

    #[test]
    fn the_accounts_pull_secrets_go_to_pods_without_their_own() {
        let account = json!({"imagePullSecrets": [{"name": "regcred"}]});
        let mut without = pod();
        admit(&mut without, &account, "abcde");
        assert_eq!(
            without["spec"]["imagePullSecrets"],
            json!([{"name": "regcred"}])
        );
        let mut with = pod();
        with["spec"]["imagePullSecrets"] = json!([{"name": "mine"}]);
        admit(&mut with, &account, "abcde");
        assert_eq!(with["spec"]["imagePullSecrets"], json!([{"name": "mine"}]));
    }

    #[test]
    fn missing_accounts_are_refused_with_kubernetes_words() {
        assert_eq!(
            missing_service_account_message("web", "dev", "builder"),
            "pods \"web\" is forbidden: error looking up service account dev/builder: serviceaccount \"builder\" not found"
        );
    }

    #[test]
    fn suffixes_use_the_name_alphabet() {
        let suffix = suffix_from([0, 26, 27, 255, 100]);
        assert_eq!(suffix.len(), 5);
        assert!(suffix.bytes().all(|b| SUFFIX_ALPHABET.contains(&b)));
        assert!(applies_to(&pod()));
        assert!(!applies_to(
            &json!({"metadata": {"annotations": {"kubernetes.io/config.mirror": "x"}}})
        ));
    }
}
