//! What a container runtime needs from an image's config blob: the process to run, its
//! environment, working directory and user, the ports it exposes and its labels.
//!
//! The blob is the OCI image configuration (Docker's is the same shape); only its `config`
//! object is read here. A field that is missing or `null` reads as empty.

use std::collections::BTreeMap;

use serde::Deserialize;

/// The runtime settings an image carries, as its config blob's `config` object gives them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageConfig {
    /// `Entrypoint`: the command a container runs unless the pod sets `command`.
    pub entrypoint: Vec<String>,
    /// `Cmd`: the arguments (or the command, without an entrypoint) unless the pod sets `args`.
    pub cmd: Vec<String>,
    /// `Env`, split at the first `=`, in the image's order.
    pub env: Vec<(String, String)>,
    /// `WorkingDir`, unless empty.
    pub working_dir: Option<String>,
    /// `User` (`name`, `uid`, `uid:gid`...), unless empty.
    pub user: Option<String>,
    /// The keys of `ExposedPorts` (`80/tcp`), sorted.
    pub exposed_ports: Vec<String>,
    /// `Labels`.
    pub labels: BTreeMap<String, String>,
}

/// The config blob's top level; everything but `config` is ignored.
#[derive(Deserialize)]
struct ConfigBlob {
    #[serde(default)]
    config: Option<RuntimeSection>,
}

/// The blob's `config` object, with Docker's capitalized field names.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RuntimeSection {
    #[serde(default)]
    entrypoint: Option<StringOrList>,
    #[serde(default)]
    cmd: Option<StringOrList>,
    #[serde(default)]
    env: Option<Vec<String>>,
    #[serde(default)]
    working_dir: Option<String>,
    #[serde(default)]
    user: Option<String>,
    #[serde(default)]
    exposed_ports: Option<BTreeMap<String, serde_json::Value>>,
    #[serde(default)]
    labels: Option<BTreeMap<String, String>>,
}

/// `Entrypoint` and `Cmd` are lists; some old builders wrote a single string.
#[derive(Deserialize)]
#[serde(untagged)]
enum StringOrList {
    List(Vec<String>),
    One(String),
}

impl StringOrList {
    fn into_vec(self) -> Vec<String> {
        match self {
            StringOrList::List(list) => list,
            StringOrList::One(one) => vec![one],
        }
    }
}

impl ImageConfig {
    /// Reads the runtime settings from the bytes of an image config blob.
    pub fn parse(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        let blob: ConfigBlob = serde_json::from_slice(bytes)?;
        let Some(section) = blob.config else {
            return Ok(ImageConfig::default());
        };
        let non_empty = |text: Option<String>| text.filter(|t| !t.is_empty());
        Ok(ImageConfig {
            entrypoint: section
                .entrypoint
                .map(StringOrList::into_vec)
                .unwrap_or_default(),
            cmd: section.cmd.map(StringOrList::into_vec).unwrap_or_default(),
            env: section
                .env
                .unwrap_or_default()
                .into_iter()
                .map(|entry| match entry.split_once('=') {
                    Some((name, value)) => (name.to_string(), value.to_string()),
                    None => (entry, String::new()),
                })
                .collect(),
            working_dir: non_empty(section.working_dir),
            user: non_empty(section.user),
            exposed_ports: section
                .exposed_ports
                .unwrap_or_default()
                .into_keys()
                .collect(),
            labels: section.labels.unwrap_or_default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_runtime_field_is_read_from_the_config_object() {
        let blob = br#"{
            "architecture": "amd64",
            "os": "linux",
            "config": {
                "User": "101:101",
                "ExposedPorts": {"8080/tcp": {}, "53/udp": {}},
                "Env": ["PATH=/usr/bin:/bin", "GREETING=a=b", "EMPTY="],
                "Entrypoint": ["/docker-entrypoint.sh"],
                "Cmd": ["nginx", "-g", "daemon off;"],
                "WorkingDir": "/srv",
                "Labels": {"maintainer": "someone", "version": "2.4"},
                "StopSignal": "SIGQUIT"
            },
            "rootfs": {"type": "layers", "diff_ids": []}
        }"#;
        let config = ImageConfig::parse(blob).unwrap();
        assert_eq!(config.entrypoint, ["/docker-entrypoint.sh"]);
        assert_eq!(config.cmd, ["nginx", "-g", "daemon off;"]);
        assert_eq!(
            config.env,
            [
                ("PATH".to_string(), "/usr/bin:/bin".to_string()),
                ("GREETING".to_string(), "a=b".to_string()),
                ("EMPTY".to_string(), String::new()),
            ]
        );
        assert_eq!(config.working_dir.as_deref(), Some("/srv"));
        assert_eq!(config.user.as_deref(), Some("101:101"));
        assert_eq!(config.exposed_ports, ["53/udp", "8080/tcp"]);
        assert_eq!(config.labels["version"], "2.4");
        assert_eq!(config.labels.len(), 2);
    }

    #[test]
    fn missing_and_null_fields_read_as_empty() {
        let blob = br#"{"config": {"Entrypoint": null, "Cmd": null, "Env": null,
            "WorkingDir": "", "User": "", "ExposedPorts": null, "Labels": null}}"#;
        assert_eq!(ImageConfig::parse(blob).unwrap(), ImageConfig::default());
        assert_eq!(
            ImageConfig::parse(br#"{"config": null}"#).unwrap(),
            ImageConfig::default()
        );
        assert_eq!(
            ImageConfig::parse(br#"{"os": "linux"}"#).unwrap(),
            ImageConfig::default()
        );
    }

    #[test]
    fn a_single_string_command_is_one_argument() {
        let blob = br#"{"config": {"Cmd": "/bin/sh"}}"#;
        assert_eq!(ImageConfig::parse(blob).unwrap().cmd, ["/bin/sh"]);
    }

    #[test]
    fn a_blob_that_is_not_json_is_an_error() {
        assert!(ImageConfig::parse(b"not json").is_err());
        assert!(ImageConfig::parse(br#"{"config": {"Cmd": 5}}"#).is_err());
    }
}
