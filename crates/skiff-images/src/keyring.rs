//! Registry credentials from `kubernetes.io/dockerconfigjson` Secrets (and the older
//! `kubernetes.io/dockercfg`, the same entries without the `auths` wrapper), matched to an image
//! the way the kubelet's credential keyring does, so a pod's `imagePullSecrets` pick the same
//! login here as on a real node.
//!
//! A key in `auths` is a registry host, optionally with a scheme and a path
//! (`registry.test:5000`, `https://registry.test/team`, `https://index.docker.io/v1/`). The
//! scheme is ignored, a leading `/v1/` or `/v2/` path is the API version, not a repository
//! prefix, and a host part may be a glob (`*.registry.test`). A key matches an image when
//! the hosts have as many dot-separated parts and each part matches, the ports are the same,
//! and the key's path is a prefix of the image's repository path. Keys are tried from the
//! most specific (reverse lexical order); when none matches, images of the default registry
//! (`docker.io`) use the `index.docker.io` entry.

use std::collections::BTreeMap;

use base64::Engine;
use serde::Deserialize;

use crate::reference::Reference;

/// The host Docker Hub's credentials are filed under, whatever spelling the key used.
const DOCKER_HUB_HOST: &str = "index.docker.io";

/// A user name and password to present to a registry with basic authentication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The user name.
    pub username: String,
    /// The password.
    pub password: String,
}

/// Why a `.dockerconfigjson` value cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid .dockerconfigjson: {0}")]
pub struct KeyringError(String);

/// The `.dockerconfigjson` document.
#[derive(Debug, Default, Deserialize)]
struct DockerConfigJson {
    #[serde(default)]
    auths: BTreeMap<String, DockerConfigEntry>,
}

/// One `auths` entry; `auth` (base64 of `user:password`) wins over the separate fields.
#[derive(Debug, Default, Deserialize)]
struct DockerConfigEntry {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    auth: String,
}

/// Credentials by normalized key (`host[:port][/path]`), kept in lookup order.
#[derive(Debug, Clone, Default)]
pub struct Keyring {
    entries: Vec<(String, Credentials)>,
}

impl Keyring {
    /// Reads the `.dockerconfigjson` value of one Secret.
    pub fn from_docker_config_json(bytes: &[u8]) -> Result<Keyring, KeyringError> {
        let mut keyring = Keyring::default();
        keyring.add_docker_config_json(bytes)?;
        Ok(keyring)
    }

    /// Adds the entries of one more Secret (a pod may name several `imagePullSecrets`).
    pub fn add_docker_config_json(&mut self, bytes: &[u8]) -> Result<(), KeyringError> {
        let config: DockerConfigJson =
            serde_json::from_slice(bytes).map_err(|e| KeyringError(e.to_string()))?;
        self.add_entries(config.auths)
    }

    /// Adds the entries of a `kubernetes.io/dockercfg` Secret's `.dockercfg` value: the
    /// registry-to-entry map that `.dockerconfigjson` later wrapped in `auths`.
    pub fn add_docker_cfg(&mut self, bytes: &[u8]) -> Result<(), KeyringError> {
        let entries: BTreeMap<String, DockerConfigEntry> =
            serde_json::from_slice(bytes).map_err(|e| KeyringError(format!(".dockercfg: {e}")))?;
        self.add_entries(entries)
    }

    fn add_entries(
        &mut self,
        entries: BTreeMap<String, DockerConfigEntry>,
    ) -> Result<(), KeyringError> {
        for (location, entry) in entries {
            let credentials = entry.credentials(&location)?;
            let Some(key) = normalized_key(&location) else {
                continue;
            };
            self.entries.push((key, credentials));
        }
        // Longer, more specific keys sort after their prefixes; reversed, they come first.
        // The sort is stable, so entries under one key keep the order they were added in.
        self.entries.sort_by(|a, b| b.0.cmp(&a.0));
        Ok(())
    }

    /// The credentials to try for `reference`, best match first; empty when none applies.
    pub fn lookup(&self, reference: &Reference) -> Vec<Credentials> {
        let image = format!("{}/{}", reference.registry(), reference.repository());
        let matched: Vec<Credentials> = self
            .entries
            .iter()
            .filter(|(key, _)| key_matches(key, &image))
            .map(|(_, credentials)| credentials.clone())
            .collect();
        if !matched.is_empty() || !is_docker_hub(reference.registry()) {
            return matched;
        }
        self.entries
            .iter()
            .filter(|(key, _)| key == DOCKER_HUB_HOST)
            .map(|(_, credentials)| credentials.clone())
            .collect()
    }
}

impl DockerConfigEntry {
    fn credentials(self, location: &str) -> Result<Credentials, KeyringError> {
        if self.auth.is_empty() {
            return Ok(Credentials {
                username: self.username,
                password: self.password,
            });
        }
        let malformed = || {
            KeyringError(format!(
                "auths[{location:?}].auth must be base64(username:password)"
            ))
        };
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(self.auth.trim())
            .map_err(|_| malformed())?;
        let decoded = String::from_utf8(decoded).map_err(|_| malformed())?;
        let (username, password) = decoded.split_once(':').ok_or_else(malformed)?;
        Ok(Credentials {
            username: username.to_string(),
            password: password.trim_matches('\0').to_string(),
        })
    }
}

/// Whether a registry name is Docker Hub under one of its names.
fn is_docker_hub(registry: &str) -> bool {
    registry == crate::reference::DEFAULT_REGISTRY || registry == DOCKER_HUB_HOST
}

/// `host[:port]` and the path after it, without scheme or API version (`/v1/`, `/v2/`);
/// `None` for a key with no host.
fn normalized_key(location: &str) -> Option<String> {
    let without_scheme = location
        .strip_prefix("https://")
        .or_else(|| location.strip_prefix("http://"))
        .unwrap_or(location);
    let (host, path) = split_host(without_scheme);
    if host.is_empty() {
        return None;
    }
    let path = if path.starts_with("/v1/") || path.starts_with("/v2/") {
        &path[3..]
    } else {
        path
    };
    if path.is_empty() || path == "/" {
        Some(host.to_string())
    } else {
        Some(format!("{host}{path}"))
    }
}

/// Splits `host[:port]/path` at the first slash; the path keeps its slash.
fn split_host(text: &str) -> (&str, &str) {
    match text.find('/') {
        Some(slash) => text.split_at(slash),
        None => (text, ""),
    }
}

/// Splits `host[:port]` into its dot-separated name parts and its port (empty if none).
fn host_parts(host: &str) -> (Vec<&str>, &str) {
    match host.rsplit_once(':') {
        Some((name, port)) => (name.split('.').collect(), port),
        None => (host.split('.').collect(), ""),
    }
}

/// Whether the normalized key names the image `host[:port]/repository`.
fn key_matches(key: &str, image: &str) -> bool {
    let (key_host, key_path) = split_host(key);
    let (image_host, image_path) = split_host(image);
    let (key_parts, key_port) = host_parts(key_host);
    let (image_parts, image_port) = host_parts(image_host);
    key_port == image_port
        && key_parts.len() == image_parts.len()
        && image_path.starts_with(key_path)
        && key_parts
            .iter()
            .zip(&image_parts)
            .all(|(pattern, part)| glob_matches(pattern.as_bytes(), part.as_bytes()))
}

/// Shell-style matching of one host part: `*` is any run of characters, `?` any one.
fn glob_matches(pattern: &[u8], text: &[u8]) -> bool {
    match pattern.split_first() {
        None => text.is_empty(),
        Some((b'*', rest)) => (0..=text.len()).any(|skip| glob_matches(rest, &text[skip..])),
        Some((b'?', rest)) => !text.is_empty() && glob_matches(rest, &text[1..]),
        Some((c, rest)) => text.first() == Some(c) && glob_matches(rest, &text[1..]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keyring(auths: &[(&str, &str)]) -> Keyring {
        let auths: serde_json::Map<String, serde_json::Value> = auths
            .iter()
            .map(|(key, user)| {
                (
                    key.to_string(),
                    serde_json::json!({"username": user, "password": "secret"}),
                )
            })
            .collect();
        let bytes = serde_json::to_vec(&serde_json::json!({ "auths": auths })).unwrap();
        Keyring::from_docker_config_json(&bytes).expect("valid config")
    }

    fn users(keyring: &Keyring, image: &str) -> Vec<String> {
        keyring
            .lookup(&Reference::parse(image).expect("valid reference"))
            .into_iter()
            .map(|credentials| credentials.username)
            .collect()
    }

    #[test]
    fn keys_match_images_as_the_kubelet_keyring_does() {
        // (keys in the Secret, image, users whose credentials apply in order)
        let cases: &[(&[&str], &str, &[&str])] = &[
            (
                &["registry.test"],
                "registry.test/app:1",
                &["registry.test"],
            ),
            (
                &["https://registry.test"],
                "registry.test/app",
                &["https://registry.test"],
            ),
            (
                &["http://registry.test/"],
                "registry.test/a/b",
                &["http://registry.test/"],
            ),
            (
                &["registry.test:5000"],
                "registry.test:5000/app",
                &["registry.test:5000"],
            ),
            // The port must be the same on both sides.
            (&["registry.test:5000"], "registry.test/app", &[]),
            (&["registry.test"], "registry.test:5000/app", &[]),
            // A path in the key is a repository prefix.
            (
                &["registry.test/team"],
                "registry.test/team/app",
                &["registry.test/team"],
            ),
            (&["registry.test/team"], "registry.test/other/app", &[]),
            // The API version in a key is not a path.
            (
                &["https://registry.test/v2/"],
                "registry.test/app",
                &["https://registry.test/v2/"],
            ),
            (
                &["https://registry.test/v1/"],
                "registry.test/app",
                &["https://registry.test/v1/"],
            ),
            // Globs stand for one host part each.
            (
                &["*.registry.test"],
                "eu.registry.test/app",
                &["*.registry.test"],
            ),
            (&["*.registry.test"], "registry.test/app", &[]),
            (&["*.registry.test"], "a.b.registry.test/app", &[]),
            (
                &["eu-?.registry.test"],
                "eu-1.registry.test/app",
                &["eu-?.registry.test"],
            ),
            (&["*.*.test"], "eu.registry.test/app", &["*.*.test"]),
            // Another host never matches, nor a host that only starts alike.
            (&["registry.test"], "other.test/app", &[]),
            (&["registry.te"], "registry.test/app", &[]),
            // The most specific key comes first; every matching key is offered.
            (
                &["registry.test", "registry.test/team", "*.test"],
                "registry.test/team/app",
                &["registry.test/team", "registry.test", "*.test"],
            ),
            // Docker Hub under each of its spellings.
            (
                &["https://index.docker.io/v1/"],
                "nginx",
                &["https://index.docker.io/v1/"],
            ),
            (
                &["index.docker.io"],
                "library/nginx:1.27",
                &["index.docker.io"],
            ),
            (&["docker.io"], "docker.io/team/app", &["docker.io"]),
            (
                &["https://index.docker.io/v1/"],
                "index.docker.io/team/app",
                &["https://index.docker.io/v1/"],
            ),
            // A Docker Hub key whose path is a repository prefix matches only that prefix.
            (&["docker.io/team"], "team/app", &["docker.io/team"]),
            (&["docker.io/team"], "other/app", &[]),
            // A more specific match wins over the Docker Hub fallback.
            (
                &["https://index.docker.io/v1/", "docker.io/team"],
                "team/app",
                &["docker.io/team"],
            ),
            // Docker Hub's credentials are not offered to other registries.
            (&["https://index.docker.io/v1/"], "registry.test/app", &[]),
        ];
        for (keys, image, expected) in cases {
            let auths: Vec<(&str, &str)> = keys.iter().map(|key| (*key, *key)).collect();
            assert_eq!(
                users(&keyring(&auths), image),
                *expected,
                "keys {keys:?}, image {image}"
            );
        }
    }

    #[test]
    fn the_auth_field_is_base64_of_user_and_password_and_wins() {
        let auth = base64::engine::general_purpose::STANDARD.encode("robot:pa:ss");
        let bytes = serde_json::to_vec(&serde_json::json!({"auths": {
            "registry.test": {"auth": auth, "username": "ignored", "password": "ignored"},
        }}))
        .unwrap();
        let keyring = Keyring::from_docker_config_json(&bytes).unwrap();
        let found = keyring.lookup(&Reference::parse("registry.test/app").unwrap());
        assert_eq!(
            found,
            [Credentials {
                username: "robot".into(),
                password: "pa:ss".into()
            }]
        );
    }

    #[test]
    fn malformed_configs_are_refused_with_a_reason() {
        let not_base64 = br#"{"auths": {"registry.test": {"auth": "%%%"}}}"#;
        let error = Keyring::from_docker_config_json(not_base64).unwrap_err();
        assert!(
            error.to_string().contains("base64(username:password)"),
            "{error}"
        );

        let no_colon = serde_json::to_vec(&serde_json::json!({"auths": {
            "registry.test": {"auth": base64::engine::general_purpose::STANDARD.encode("robot")},
        }}))
        .unwrap();
        let error = Keyring::from_docker_config_json(&no_colon).unwrap_err();
        assert!(
            error.to_string().contains("base64(username:password)"),
            "{error}"
        );

        let error = Keyring::from_docker_config_json(b"[1]").unwrap_err();
        assert!(
            error.to_string().starts_with("invalid .dockerconfigjson"),
            "{error}"
        );
    }

    #[test]
    fn a_legacy_dockercfg_secret_reads_the_same_entries() {
        let auth = base64::engine::general_purpose::STANDARD.encode("old:style");
        let bytes = serde_json::to_vec(&serde_json::json!({
            "https://index.docker.io/v1/": {"auth": auth, "email": "a@b.test"},
            "registry.test:5000": {"username": "plain", "password": "p"},
        }))
        .unwrap();
        let mut keyring = Keyring::default();
        keyring.add_docker_cfg(&bytes).unwrap();
        assert_eq!(
            keyring.lookup(&Reference::parse("nginx").unwrap()),
            [Credentials {
                username: "old".into(),
                password: "style".into()
            }]
        );
        assert_eq!(users(&keyring, "registry.test:5000/app"), ["plain"]);
        assert!(
            users(&keyring, "registry.test/app").is_empty(),
            "the port must match"
        );
        let error = Keyring::default()
            .add_docker_cfg(br#"{"registry.test": "not an entry"}"#)
            .unwrap_err();
        assert!(error.to_string().contains(".dockercfg"), "{error}");
    }

    #[test]
    fn several_secrets_add_up() {
        let mut keyring = keyring(&[("registry.test", "first")]);
        keyring
            .add_docker_config_json(
                br#"{"auths": {"registry.test": {"username": "second", "password": "p"}}}"#,
            )
            .unwrap();
        assert_eq!(users(&keyring, "registry.test/app"), ["first", "second"]);
    }
}
