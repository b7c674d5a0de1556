//! Docker image references: parsing and normalization as Docker and the kubelet apply them.
//!
//! `nginx` names `docker.io/library/nginx:latest`; `localhost:5000/app` keeps its registry;
//! a digest (`name@sha256:...`) pins the content exactly, and a tag beside it is kept only for
//! display.

use std::fmt;

/// The registry an unqualified name refers to.
pub const DEFAULT_REGISTRY: &str = "docker.io";
/// The legacy spelling of Docker Hub, normalized to [`DEFAULT_REGISTRY`].
const LEGACY_DEFAULT_REGISTRY: &str = "index.docker.io";
/// The namespace of Docker Hub's official images.
const OFFICIAL_NAMESPACE: &str = "library";
/// The tag a reference without tag or digest stands for.
pub const DEFAULT_TAG: &str = "latest";
/// Docker's limit on the length of a repository name, registry included.
const MAX_NAME_LENGTH: usize = 255;
/// Docker's limit on the length of a tag.
const MAX_TAG_LENGTH: usize = 128;

/// Why a string is not an image reference; the texts are Docker's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReferenceError {
    /// The string does not follow the reference grammar.
    #[error("invalid reference format")]
    InvalidFormat,
    /// The repository part has upper-case letters.
    #[error("invalid reference format: repository name ({0}) must be lowercase")]
    NameNotLowercase(String),
    /// The name is longer than 255 characters.
    #[error("repository name must not be more than {MAX_NAME_LENGTH} characters")]
    NameTooLong,
    /// The string is empty.
    #[error("repository name must have at least one component")]
    NameEmpty,
    /// A bare 64-hex string, which Docker reserves for image IDs.
    #[error("invalid repository name ({0}), cannot specify 64-byte hexadecimal strings")]
    HexIdentifier(String),
    /// The digest names an algorithm this store cannot verify.
    #[error("unsupported digest algorithm")]
    UnsupportedDigest,
    /// The digest's hex part has the wrong length or characters.
    #[error("invalid checksum digest format")]
    InvalidDigest,
}

/// A normalized image reference: registry, repository, and a tag and/or digest.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    registry: String,
    repository: String,
    tag: Option<String>,
    digest: Option<String>,
}

impl Reference {
    /// Parses and normalizes `reference` with Docker's rules.
    pub fn parse(reference: &str) -> Result<Self, ReferenceError> {
        if reference.is_empty() {
            return Err(ReferenceError::NameEmpty);
        }
        if reference.len() == 64 && reference.bytes().all(is_lower_hex) {
            return Err(ReferenceError::HexIdentifier(reference.to_string()));
        }
        let (name_and_tag, digest) = match reference.split_once('@') {
            Some((name, digest)) => (name, Some(parse_digest(digest)?)),
            None => (reference, None),
        };
        let last_slash = name_and_tag.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match name_and_tag[last_slash..].rfind(':') {
            Some(i) => {
                let split = last_slash + i;
                let tag = &name_and_tag[split + 1..];
                if !is_valid_tag(tag) {
                    return Err(ReferenceError::InvalidFormat);
                }
                (&name_and_tag[..split], Some(tag.to_string()))
            }
            None => (name_and_tag, None),
        };
        let (registry, repository) = split_registry(name);
        if repository.to_lowercase() != repository {
            return Err(ReferenceError::NameNotLowercase(repository));
        }
        if !is_valid_domain(&registry) || !repository.split('/').all(is_valid_path_component) {
            return Err(ReferenceError::InvalidFormat);
        }
        if registry.len() + 1 + repository.len() > MAX_NAME_LENGTH {
            return Err(ReferenceError::NameTooLong);
        }
        Ok(Reference {
            registry,
            repository,
            tag,
            digest,
        })
    }

    /// The registry host (and port), `docker.io` for Docker Hub.
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// The repository path inside the registry, `library/nginx` for `nginx`.
    pub fn repository(&self) -> &str {
        &self.repository
    }

    /// The tag as written, if any.
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// The digest that pins the content, if any.
    pub fn digest(&self) -> Option<&str> {
        self.digest.as_deref()
    }

    /// The full name without tag or digest: `docker.io/library/nginx`.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// The tag a pull by name uses: the one written, else `latest` when no digest pins it.
    pub fn effective_tag(&self) -> Option<&str> {
        match (&self.tag, &self.digest) {
            (Some(tag), _) => Some(tag),
            (None, None) => Some(DEFAULT_TAG),
            (None, Some(_)) => None,
        }
    }

    /// The shortest spelling Docker prints: `nginx` for `docker.io/library/nginx`.
    pub fn familiar_name(&self) -> String {
        if self.registry == DEFAULT_REGISTRY {
            match self.repository.strip_prefix("library/") {
                Some(short) if !short.contains('/') => short.to_string(),
                _ => self.repository.clone(),
            }
        } else {
            self.name()
        }
    }

    /// This reference with its digest replaced, for the pull of one platform's manifest.
    pub fn with_digest(&self, digest: &str) -> Reference {
        Reference {
            digest: Some(digest.to_string()),
            ..self.clone()
        }
    }
}

impl fmt::Display for Reference {
    /// The normalized form with the default tag filled in: `docker.io/library/nginx:latest`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.name())?;
        if let Some(tag) = self.effective_tag() {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

/// Docker's `splitDockerDomain`: the first component is a registry only if it looks like a host.
fn split_registry(name: &str) -> (String, String) {
    let (mut registry, mut rest) = match name.split_once('/') {
        Some((first, rest))
            if first.contains(['.', ':'])
                || first == "localhost"
                || first.to_lowercase() != first =>
        {
            (first.to_string(), rest.to_string())
        }
        _ => (DEFAULT_REGISTRY.to_string(), name.to_string()),
    };
    if registry == LEGACY_DEFAULT_REGISTRY {
        registry = DEFAULT_REGISTRY.to_string();
    }
    if registry == DEFAULT_REGISTRY && !rest.contains('/') {
        rest = format!("{OFFICIAL_NAMESPACE}/{rest}");
    }
    (registry, rest)
}

fn is_lower_hex(byte: u8) -> bool {
    byte.is_ascii_digit() || (b'a'..=b'f').contains(&byte)
}

/// `host[:port]`: dot-separated labels of letters, digits and inner hyphens, or a bracketed
/// IPv6 address, then an optional numeric port.
fn is_valid_domain(domain: &str) -> bool {
    let (host, port) = if let Some(rest) = domain.strip_prefix('[') {
        let Some((address, after)) = rest.split_once(']') else {
            return false;
        };
        if address.is_empty() || !address.bytes().all(|b| b.is_ascii_hexdigit() || b == b':') {
            return false;
        }
        match after {
            "" => return true,
            _ => match after.strip_prefix(':') {
                Some(port) => ("", Some(port)),
                None => return false,
            },
        }
    } else {
        match domain.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (domain, None),
        }
    };
    let port_ok = port.is_none_or(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    let label_ok = |label: &str| {
        let bytes = label.as_bytes();
        !bytes.is_empty()
            && bytes
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || *b == b'-')
            && bytes[0] != b'-'
            && bytes[bytes.len() - 1] != b'-'
    };
    port_ok && (host.is_empty() && domain.starts_with('[') || host.split('.').all(label_ok))
}

/// `[a-z0-9]+` runs joined by `.`, `_`, `__` or any run of `-`.
fn is_valid_path_component(component: &str) -> bool {
    let bytes = component.as_bytes();
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    if bytes.is_empty() || !alnum(bytes[0]) || !alnum(bytes[bytes.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < bytes.len() {
        if alnum(bytes[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && !alnum(bytes[i]) {
            i += 1;
        }
        let separator = &component[start..i];
        let allowed = matches!(separator, "." | "_" | "__") || separator.bytes().all(|b| b == b'-');
        if !allowed {
            return false;
        }
    }
    true
}

/// `[\w][\w.-]{0,127}`.
fn is_valid_tag(tag: &str) -> bool {
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let bytes = tag.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= MAX_TAG_LENGTH
        && word(bytes[0])
        && bytes.iter().all(|b| word(*b) || *b == b'.' || *b == b'-')
}

/// Checks `algorithm:hex`; only sha256 and sha512, the algorithms the store verifies.
fn parse_digest(digest: &str) -> Result<String, ReferenceError> {
    let Some((algorithm, hex)) = digest.split_once(':') else {
        return Err(ReferenceError::InvalidFormat);
    };
    let algorithm_ok = !algorithm.is_empty()
        && algorithm.as_bytes()[0].is_ascii_alphabetic()
        && algorithm
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'.' | b'-' | b'_'));
    if !algorithm_ok || hex.len() < 32 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ReferenceError::InvalidFormat);
    }
    let expected_length = match algorithm {
        "sha256" => 64,
        "sha512" => 128,
        _ => return Err(ReferenceError::UnsupportedDigest),
    };
    if hex.len() != expected_length || !hex.bytes().all(is_lower_hex) {
        return Err(ReferenceError::InvalidDigest);
    }
    Ok(digest.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "ff4a8eb070e12018233797e865841d877a7835c4c6d5cfc52e5481995da6b2f7";

    /// Docker's normalization: input, then the full name, tag and digest it stands for.
    #[test]
    fn references_normalize_as_docker_does() {
        let digest = format!("sha256:{HEX}");
        let pinned = format!("nginx@{digest}");
        let tagged_pinned = format!("nginx:1.25@{digest}");
        let cases: Vec<(&str, &str, Option<&str>, Option<&str>)> = vec![
            ("nginx", "docker.io/library/nginx", Some("latest"), None),
            ("nginx:1.25", "docker.io/library/nginx", Some("1.25"), None),
            (
                "library/nginx",
                "docker.io/library/nginx",
                Some("latest"),
                None,
            ),
            (
                "docker.io/nginx",
                "docker.io/library/nginx",
                Some("latest"),
                None,
            ),
            (
                "index.docker.io/nginx",
                "docker.io/library/nginx",
                Some("latest"),
                None,
            ),
            (
                "index.docker.io/user/app:v1",
                "docker.io/user/app",
                Some("v1"),
                None,
            ),
            ("user/app", "docker.io/user/app", Some("latest"), None),
            (
                "user/team/app",
                "docker.io/user/team/app",
                Some("latest"),
                None,
            ),
            ("localhost/app", "localhost/app", Some("latest"), None),
            (
                "localhost:5000/app:dev",
                "localhost:5000/app",
                Some("dev"),
                None,
            ),
            (
                "127.0.0.1:5000/test/httpd:2.2",
                "127.0.0.1:5000/test/httpd",
                Some("2.2"),
                None,
            ),
            ("ghcr.io/org/tool", "ghcr.io/org/tool", Some("latest"), None),
            (
                "Registry.Example/app",
                "Registry.Example/app",
                Some("latest"),
                None,
            ),
            ("[::1]:5000/app", "[::1]:5000/app", Some("latest"), None),
            (
                "a.b/c__d/e-f---g/h.i",
                "a.b/c__d/e-f---g/h.i",
                Some("latest"),
                None,
            ),
            (
                "foo_bar.com:8080",
                "docker.io/library/foo_bar.com",
                Some("8080"),
                None,
            ),
            (&pinned, "docker.io/library/nginx", None, Some(&digest)),
            (
                &tagged_pinned,
                "docker.io/library/nginx",
                Some("1.25"),
                Some(&digest),
            ),
        ];
        for (input, name, tag, pin) in cases {
            let parsed =
                Reference::parse(input).unwrap_or_else(|e| panic!("{input:?} should parse: {e}"));
            assert_eq!(parsed.name(), name, "name of {input:?}");
            assert_eq!(parsed.effective_tag(), tag, "tag of {input:?}");
            assert_eq!(parsed.digest(), pin, "digest of {input:?}");
        }
    }

    #[test]
    fn the_display_form_is_fully_qualified_and_the_familiar_form_short() {
        let nginx = Reference::parse("nginx").unwrap();
        assert_eq!(nginx.to_string(), "docker.io/library/nginx:latest");
        assert_eq!(nginx.familiar_name(), "nginx");
        let user = Reference::parse("docker.io/user/app:1").unwrap();
        assert_eq!(user.familiar_name(), "user/app");
        let local = Reference::parse("localhost:5000/a/b").unwrap();
        assert_eq!(local.familiar_name(), "localhost:5000/a/b");
        let pinned = Reference::parse(&format!("nginx@sha256:{HEX}")).unwrap();
        assert_eq!(
            pinned.to_string(),
            format!("docker.io/library/nginx@sha256:{HEX}")
        );
    }

    /// Inputs Docker refuses, with its error.
    #[test]
    fn malformed_references_are_refused_with_dockers_messages() {
        let long_name = format!("a/{}", "b".repeat(MAX_NAME_LENGTH));
        let long_tag = format!("app:{}", "t".repeat(MAX_TAG_LENGTH + 1));
        let cases: Vec<(String, ReferenceError)> = vec![
            (String::new(), ReferenceError::NameEmpty),
            (
                HEX.to_string(),
                ReferenceError::HexIdentifier(HEX.to_string()),
            ),
            (
                "Uppercase".into(),
                ReferenceError::NameNotLowercase("library/Uppercase".into()),
            ),
            (
                "docker.io/User/app".into(),
                ReferenceError::NameNotLowercase("User/app".into()),
            ),
            ("app:".into(), ReferenceError::InvalidFormat),
            (":tag".into(), ReferenceError::InvalidFormat),
            ("app:-tag".into(), ReferenceError::InvalidFormat),
            (long_tag, ReferenceError::InvalidFormat),
            ("a//b".into(), ReferenceError::InvalidFormat),
            ("app/".into(), ReferenceError::InvalidFormat),
            ("-app".into(), ReferenceError::InvalidFormat),
            ("a..b".into(), ReferenceError::InvalidFormat),
            ("a___b".into(), ReferenceError::InvalidFormat),
            ("a b".into(), ReferenceError::InvalidFormat),
            ("host:port/app".into(), ReferenceError::InvalidFormat),
            ("-host.io/app".into(), ReferenceError::InvalidFormat),
            ("app@sha256:abc".into(), ReferenceError::InvalidFormat),
            ("app@sha256".into(), ReferenceError::InvalidFormat),
            (format!("app@md5:{HEX}"), ReferenceError::UnsupportedDigest),
            (format!("app@sha256:{HEX}00"), ReferenceError::InvalidDigest),
            (
                format!("app@sha256:{}", HEX.to_uppercase()),
                ReferenceError::InvalidDigest,
            ),
            (long_name, ReferenceError::NameTooLong),
        ];
        for (input, expected) in cases {
            assert_eq!(Reference::parse(&input), Err(expected), "parsing {input:?}");
        }
    }
}
