//! The registries file in the shape k3s users know (`registries.yaml`).
//!
//! ```yaml
//! mirrors:
//!   docker.io:
//!     endpoint: ["http://127.0.0.1:5000", "https://mirror.example"]
//!     rewrite:
//!       "^library/(.*)": "mirrored/$1"
//!   "127.0.0.1:5000":
//!     endpoint: ["http://127.0.0.1:5000"]
//! configs:
//!   "mirror.example":
//!     auth: {username: user, password: secret}   # or {auth: base64(user:secret)}
//!     tls: {ca_file: /etc/ssl/mirror-ca.pem}
//! ```
//!
//! A mirror's endpoints are tried in order, then the registry itself; an `http://` endpoint
//! is reached over plain HTTP. `configs` are keyed by the host actually contacted. Rewrites
//! are honoured in their simple prefix form (`^PREFIX(.*)` to `REPLACEMENT$1`); client
//! certificates (`cert_file`, `key_file`) are refused until the registry client can present
//! them, rather than silently ignored. A top-level `disable_default_endpoint: true` (k3s has
//! it as a flag, `--disable-default-registry-endpoint`) stops the fallback to the registry
//! itself after its mirrors.

use std::collections::BTreeMap;
use std::path::PathBuf;

use base64::Engine;
use serde::Deserialize;

use crate::pull::{MirrorConfig, PrefixRewrite, RegistryConfig, TlsConfig};

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
    /// Never fall back to a registry itself once its mirrors (or the `*` mirrors) are tried:
    /// the file's form of k3s's `--disable-default-registry-endpoint`, so one file can keep
    /// every pull on known endpoints.
    #[serde(default)]
    pub disable_default_endpoint: bool,
}

/// Where to reach one registry.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mirror {
    /// URLs of the endpoints, in order of preference.
    #[serde(default)]
    pub endpoint: Vec<String>,
    /// Repository rewrites on these endpoints: regular expression to replacement.
    #[serde(default)]
    pub rewrite: BTreeMap<String, String>,
}

/// Settings for one registry host.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostConfig {
    /// Basic-auth credentials.
    pub auth: Option<Auth>,
    /// Certificate checks.
    pub tls: Option<Tls>,
}

/// Basic-auth credentials: `username` and `password`, or `auth` (base64 of
/// `username:password`, as in a Docker config), which wins when both are given.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Auth {
    /// The user name.
    #[serde(default)]
    pub username: String,
    /// The password.
    #[serde(default)]
    pub password: String,
    /// base64 of `username:password`.
    #[serde(default)]
    pub auth: Option<String>,
    /// An OAuth identity token; refused until the registry client can exchange one.
    #[serde(default)]
    pub identity_token: Option<String>,
}

impl Auth {
    /// The user name and password this entry gives for `host`.
    fn credentials(&self, host: &str) -> Result<(String, String), RegistriesError> {
        if self.identity_token.is_some() {
            return Err(RegistriesError(format!(
                "configs.{host}.auth.identity_token is not supported yet; give username and password"
            )));
        }
        let Some(encoded) = &self.auth else {
            return Ok((self.username.clone(), self.password.clone()));
        };
        let malformed = || {
            RegistriesError(format!(
                "configs.{host}.auth.auth must be base64(username:password)"
            ))
        };
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .map_err(|_| malformed())?;
        let decoded = String::from_utf8(decoded).map_err(|_| malformed())?;
        let (username, password) = decoded.split_once(':').ok_or_else(malformed)?;
        Ok((username.to_string(), password.to_string()))
    }
}

/// TLS settings for one host, as k3s names them.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tls {
    /// PEM file of the authorities to trust for this host.
    pub ca_file: Option<PathBuf>,
    /// Client certificate (PEM); not supported yet.
    pub cert_file: Option<PathBuf>,
    /// Client key (PEM); not supported yet.
    pub key_file: Option<PathBuf>,
    /// Accept any certificate from this host.
    #[serde(default)]
    pub insecure_skip_verify: bool,
}

/// Why a registries file cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("registries file: {0}")]
pub struct RegistriesError(String);

impl RegistriesFile {
    /// The puller settings this file describes; reads the CA files it names.
    pub fn to_config(&self) -> Result<RegistryConfig, RegistriesError> {
        let mut config = RegistryConfig {
            disable_default_endpoint: self.disable_default_endpoint,
            ..RegistryConfig::default()
        };
        for (registry, mirror) in &self.mirrors {
            let mut endpoints = Vec::new();
            for endpoint in &mirror.endpoint {
                let (scheme, rest) = endpoint.split_once("://").ok_or_else(|| {
                    RegistriesError(format!(
                        "endpoint {endpoint:?} of {registry:?} has no scheme"
                    ))
                })?;
                let host = rest.trim_end_matches('/').trim_end_matches("/v2");
                if host.is_empty() || host.contains('/') {
                    return Err(RegistriesError(format!(
                        "endpoint {endpoint:?} of {registry:?}: only a scheme and host[:port] are supported"
                    )));
                }
                match scheme {
                    "http" => {
                        if !config.plain_http.iter().any(|known| known == host) {
                            config.plain_http.push(host.to_string());
                        }
                    }
                    "https" => {}
                    _ => {
                        return Err(RegistriesError(format!(
                            "endpoint {endpoint:?}: scheme must be http or https"
                        )))
                    }
                }
                endpoints.push(host.to_string());
            }
            let rewrites = mirror
                .rewrite
                .iter()
                .map(|(pattern, replacement)| simple_rewrite(registry, pattern, replacement))
                .collect::<Result<_, _>>()?;
            config.mirrors.insert(
                registry.clone(),
                MirrorConfig {
                    endpoints,
                    rewrites,
                },
            );
        }
        for (host, settings) in &self.configs {
            if let Some(auth) = &settings.auth {
                config
                    .credentials
                    .insert(host.clone(), auth.credentials(host)?);
            }
            if let Some(tls) = &settings.tls {
                if tls.cert_file.is_some() || tls.key_file.is_some() {
                    return Err(RegistriesError(format!(
                        "configs.{host}.tls: client certificates (cert_file, key_file) are not supported yet"
                    )));
                }
                let ca_pem = tls
                    .ca_file
                    .as_ref()
                    .map(|path| {
                        std::fs::read(path).map_err(|e| {
                            RegistriesError(format!(
                                "configs.{host}.tls.ca_file {}: {e}",
                                path.display()
                            ))
                        })
                    })
                    .transpose()?;
                config.tls.insert(
                    host.clone(),
                    TlsConfig {
                        ca_pem,
                        insecure_skip_verify: tls.insecure_skip_verify,
                    },
                );
            }
        }
        Ok(config)
    }
}

/// A rewrite of the form `^PREFIX(.*)` (optionally ending in `$`) to `REPLACEMENT$1`, with
/// no other pattern syntax in PREFIX than escaped characters.
fn simple_rewrite(
    registry: &str,
    pattern: &str,
    replacement: &str,
) -> Result<PrefixRewrite, RegistriesError> {
    let unsupported = || {
        RegistriesError(format!(
            "mirrors.{registry}.rewrite {pattern:?}: only rewrites of the form \"^prefix(.*)\": \"replacement$1\" are supported"
        ))
    };
    let body = pattern.strip_prefix('^').ok_or_else(unsupported)?;
    let body = body.strip_suffix('$').unwrap_or(body);
    let escaped_prefix = body.strip_suffix("(.*)").ok_or_else(unsupported)?;
    let mut prefix = String::new();
    let mut chars = escaped_prefix.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => prefix.push(chars.next().ok_or_else(unsupported)?),
            '.' | '*' | '+' | '?' | '(' | ')' | '[' | ']' | '{' | '}' | '|' | '^' | '$' => {
                return Err(unsupported())
            }
            other => prefix.push(other),
        }
    }
    let replacement = replacement
        .strip_suffix("${1}")
        .or_else(|| replacement.strip_suffix("$1"))
        .filter(|rest| !rest.contains('$'))
        .ok_or_else(unsupported)?;
    Ok(PrefixRewrite {
        prefix,
        replacement: replacement.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pull::{plan_endpoints, Endpoint};
    use crate::Reference;

    fn config(value: serde_json::Value) -> Result<RegistryConfig, RegistriesError> {
        serde_json::from_value::<RegistriesFile>(value)
            .expect("the file's shape")
            .to_config()
    }

    fn plan(config: &RegistryConfig, image: &str) -> Vec<(String, String)> {
        plan_endpoints(config, &Reference::parse(image).unwrap())
            .into_iter()
            .map(|Endpoint { host, repository }| (host, repository))
            .collect()
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(h, r)| (h.to_string(), r.to_string()))
            .collect()
    }

    #[test]
    fn plain_http_endpoints_and_credentials_are_read() {
        let config = config(serde_json::json!({
            "mirrors": {"127.0.0.1:5000": {"endpoint": ["http://127.0.0.1:5000"]}, "secure.test": {"endpoint": ["https://secure.test/"]}},
            "configs": {"secure.test": {"auth": {"username": "u", "password": "p"}}},
        }))
        .unwrap();
        assert_eq!(config.plain_http, ["127.0.0.1:5000"]);
        assert_eq!(
            config.credentials["secure.test"],
            ("u".to_string(), "p".to_string())
        );
        assert_eq!(
            plan(&config, "127.0.0.1:5000/app"),
            pairs(&[("127.0.0.1:5000", "app")])
        );
    }

    #[test]
    fn the_auth_field_is_base64_of_user_and_password_and_wins() {
        let config = config(serde_json::json!({
            "configs": {
                // base64("robot:s3cret:with:colons")
                "a.test": {"auth": {"auth": "cm9ib3Q6czNjcmV0OndpdGg6Y29sb25z", "username": "ignored"}},
                "b.test": {"auth": {"username": "u", "password": "p"}},
            },
        }))
        .unwrap();
        assert_eq!(
            config.credentials["a.test"],
            ("robot".to_string(), "s3cret:with:colons".to_string())
        );
        assert_eq!(
            config.credentials["b.test"],
            ("u".to_string(), "p".to_string())
        );
        let error = config_error(serde_json::json!({
            "configs": {"c.test": {"auth": {"auth": "not base64!"}}},
        }));
        assert!(
            error.contains("configs.c.test.auth.auth must be base64"),
            "{error}"
        );
        let error = config_error(serde_json::json!({
            "configs": {"d.test": {"auth": {"identity_token": "t"}}},
        }));
        assert!(error.contains("identity_token is not supported"), "{error}");
    }

    #[test]
    fn mirrors_come_first_in_order_then_the_registry_itself() {
        let config = config(serde_json::json!({
            "mirrors": {
                "docker.io": {"endpoint": ["http://127.0.0.1:5001", "https://mirror.test:8443/v2"]},
                "*": {"endpoint": ["https://everything.test"]},
                "self.test": {"endpoint": ["https://mirror.test", "https://self.test"]},
            },
        }))
        .unwrap();
        assert_eq!(config.plain_http, ["127.0.0.1:5001"]);
        assert_eq!(
            plan(&config, "nginx"),
            pairs(&[
                ("127.0.0.1:5001", "library/nginx"),
                ("mirror.test:8443", "library/nginx"),
                ("docker.io", "library/nginx"),
            ])
        );
        // A registry listed among its own endpoints is not tried twice.
        assert_eq!(
            plan(&config, "self.test/app"),
            pairs(&[("mirror.test", "app"), ("self.test", "app")])
        );
        // `*` stands for registries without mirrors of their own.
        assert_eq!(
            plan(&config, "other.test/app"),
            pairs(&[("everything.test", "app"), ("other.test", "app")])
        );
        let no_default = RegistryConfig {
            disable_default_endpoint: true,
            ..config.clone()
        };
        assert_eq!(
            plan(&no_default, "nginx"),
            pairs(&[
                ("127.0.0.1:5001", "library/nginx"),
                ("mirror.test:8443", "library/nginx")
            ])
        );
        // The file itself can turn the fallback off.
        let from_file = serde_json::from_value::<RegistriesFile>(serde_json::json!({
            "mirrors": {"*": {"endpoint": ["http://127.0.0.1:9"]}},
            "disable_default_endpoint": true,
        }))
        .expect("the file's shape")
        .to_config()
        .unwrap();
        assert_eq!(
            plan(&from_file, "nginx:1.18"),
            pairs(&[("127.0.0.1:9", "library/nginx")])
        );
        // With no mirror at all, the registry is still the place to pull from.
        assert_eq!(
            plan(&RegistryConfig::default(), "quay.test/app"),
            pairs(&[("quay.test", "app")])
        );
    }

    #[test]
    fn simple_rewrites_apply_on_mirror_endpoints_only() {
        let config = config(serde_json::json!({
            "mirrors": {"docker.io": {
                "endpoint": ["https://mirror.test"],
                "rewrite": {"^library/(.*)": "mirrored/$1", "^team\\-x/(.*)$": "x/${1}"},
            }},
        }))
        .unwrap();
        assert_eq!(
            plan(&config, "nginx"),
            pairs(&[
                ("mirror.test", "mirrored/nginx"),
                ("docker.io", "library/nginx")
            ])
        );
        assert_eq!(
            plan(&config, "team-x/app"),
            pairs(&[("mirror.test", "x/app"), ("docker.io", "team-x/app")])
        );
        for pattern in [
            "library/(.*)",
            "^lib.ary/(.*)",
            "^library/([a-z]+)",
            "^(a|b)/(.*)",
        ] {
            let error = super::simple_rewrite("docker.io", pattern, "x/$1").unwrap_err();
            assert!(
                error.to_string().contains("only rewrites of the form"),
                "{pattern}: {error}"
            );
        }
        assert!(super::simple_rewrite("docker.io", "^a/(.*)", "b/$2").is_err());
    }

    #[test]
    fn tls_settings_are_read_and_client_certificates_refused() {
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, "PEM").unwrap();
        let config = config(serde_json::json!({
            "configs": {
                "secure.test": {"tls": {"ca_file": ca}},
                "lab.test": {"tls": {"insecure_skip_verify": true}},
            },
        }))
        .unwrap();
        assert_eq!(
            config.tls["secure.test"].ca_pem.as_deref(),
            Some(&b"PEM"[..])
        );
        assert!(!config.tls["secure.test"].insecure_skip_verify);
        assert!(config.tls["lab.test"].insecure_skip_verify);

        let error = config_error(serde_json::json!({
            "configs": {"secure.test": {"tls": {"cert_file": ca, "key_file": ca}}},
        }));
        assert!(error.contains("client certificates"), "{error}");
        let error = config_error(serde_json::json!({
            "configs": {"secure.test": {"tls": {"ca_file": dir.path().join("missing.pem")}}},
        }));
        assert!(
            error.contains("ca_file") && error.contains("missing.pem"),
            "{error}"
        );
    }

    fn config_error(value: serde_json::Value) -> String {
        config(value).unwrap_err().to_string()
    }

    #[test]
    fn endpoints_must_be_plain_urls() {
        for endpoint in [
            "127.0.0.1:5000",
            "ftp://mirror.test",
            "https://mirror.test/some/path",
        ] {
            let error = config_error(serde_json::json!({
                "mirrors": {"docker.io": {"endpoint": [endpoint]}},
            }));
            assert!(
                error.starts_with("registries file: "),
                "{endpoint}: {error}"
            );
        }
    }
}
