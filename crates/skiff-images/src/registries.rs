//! The registries file in the shape k3s users know (`registries.yaml`), reduced to what the
//! puller honours today: plain-HTTP endpoints and basic-auth credentials per registry.
//!
//! ```yaml
//! mirrors:
//!   "127.0.0.1:5000":
//!     endpoint: ["http://127.0.0.1:5000"]
//! configs:
//!   "127.0.0.1:5000":
//!     auth: {username: user, password: secret}
//! ```
//!
//! A mirror whose endpoint is `http://` on the registry's own host means the registry speaks
//! plain HTTP; mirrors to other hosts are refused for now rather than silently ignored.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::pull::RegistryConfig;

/// The file's top level.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistriesFile {
    /// Endpoints by registry name.
    #[serde(default)]
    pub mirrors: BTreeMap<String, Mirror>,
    /// Credentials and TLS settings by registry host.
    #[serde(default)]
    pub configs: BTreeMap<String, HostConfig>,
}

/// Where to reach one registry.
#[derive(Debug, Default, Deserialize)]
pub struct Mirror {
    /// URLs of the endpoints, in order of preference.
    #[serde(default)]
    pub endpoint: Vec<String>,
}

/// Settings for one registry host.
#[derive(Debug, Default, Deserialize)]
pub struct HostConfig {
    /// Basic-auth credentials.
    pub auth: Option<Auth>,
}

/// Basic-auth credentials.
#[derive(Debug, Default, Deserialize)]
pub struct Auth {
    /// The user name.
    pub username: String,
    /// The password.
    pub password: String,
}

/// Why a registries file cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("registries file: {0}")]
pub struct RegistriesError(String);

impl RegistriesFile {
    /// The puller settings this file describes.
    pub fn to_config(&self) -> Result<RegistryConfig, RegistriesError> {
        let mut config = RegistryConfig::default();
        for (registry, mirror) in &self.mirrors {
            for endpoint in &mirror.endpoint {
                let (scheme, host) = endpoint.split_once("://").ok_or_else(|| {
                    RegistriesError(format!(
                        "endpoint {endpoint:?} of {registry:?} has no scheme"
                    ))
                })?;
                let host = host.trim_end_matches('/');
                if host != registry {
                    return Err(RegistriesError(format!(
                        "mirror {endpoint:?} for {registry:?}: mirrors to other hosts are not supported yet"
                    )));
                }
                match scheme {
                    "http" => config.plain_http.push(registry.clone()),
                    "https" => {}
                    _ => {
                        return Err(RegistriesError(format!(
                            "endpoint {endpoint:?}: scheme must be http or https"
                        )))
                    }
                }
            }
        }
        for (registry, host) in &self.configs {
            if let Some(auth) = &host.auth {
                config.credentials.insert(
                    registry.clone(),
                    (auth.username.clone(), auth.password.clone()),
                );
            }
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_endpoints_and_credentials_are_read() {
        let file: RegistriesFile = serde_json::from_value(serde_json::json!({
            "mirrors": {"127.0.0.1:5000": {"endpoint": ["http://127.0.0.1:5000"]}, "secure.test": {"endpoint": ["https://secure.test/"]}},
            "configs": {"secure.test": {"auth": {"username": "u", "password": "p"}}},
        }))
        .unwrap();
        let config = file.to_config().unwrap();
        assert_eq!(config.plain_http, ["127.0.0.1:5000"]);
        assert_eq!(
            config.credentials["secure.test"],
            ("u".to_string(), "p".to_string())
        );
    }

    #[test]
    fn mirrors_to_other_hosts_are_refused() {
        let file: RegistriesFile = serde_json::from_value(serde_json::json!({
            "mirrors": {"docker.io": {"endpoint": ["http://127.0.0.1:5000"]}},
        }))
        .unwrap();
        let error = file.to_config().unwrap_err().to_string();
        assert!(error.contains("not supported yet"), "{error}");
    }
}
