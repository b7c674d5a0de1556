//! The join token nodes present to `skiff agent`, as k3s's `node-token`: `K10<hash>::<token>`,
//! where `<hash>` is the SHA-256 (hex) of the cluster CA certificate (PEM), so an agent can
//! pin the CA it fetches before trusting it, and `<token>` is a Kubernetes bootstrap token
//! (`<id>.<secret>`) that authenticates the node's certificate request.

use std::path::Path;

/// The prefix of a join token carrying the CA hash, as k3s's secure token format.
const PREFIX: &str = "K10";

/// The SHA-256 (lowercase hex) of the CA certificate PEM.
pub fn ca_hash(ca_pem: &str) -> String {
    ring::digest::digest(&ring::digest::SHA256, ca_pem.as_bytes())
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A join token: the CA hash it pins (if it carries one) and the bootstrap token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JoinToken {
    /// The SHA-256 (hex) of the cluster CA's PEM, when the token carries it.
    pub ca_hash: Option<String>,
    /// The bootstrap token `<id>.<secret>`.
    pub bootstrap: String,
}

impl JoinToken {
    /// Reads `K10<hash>::<id>.<secret>` or a bare `<id>.<secret>`.
    pub fn parse(text: &str) -> Option<JoinToken> {
        let text = text.trim();
        let (ca_hash, bootstrap) = match text.strip_prefix(PREFIX) {
            Some(rest) => {
                let (hash, token) = rest.split_once("::")?;
                let hex = hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit());
                if !hex {
                    return None;
                }
                (Some(hash.to_ascii_lowercase()), token)
            }
            None => (None, text),
        };
        skiff_apiserver::bootstrap_tokens::parse(bootstrap)?;
        Some(JoinToken {
            ca_hash,
            bootstrap: bootstrap.to_string(),
        })
    }

    /// The token as written to `DATA/node-token`.
    pub fn render(&self) -> String {
        match &self.ca_hash {
            Some(hash) => format!("{PREFIX}{hash}::{}", self.bootstrap),
            None => self.bootstrap.clone(),
        }
    }
}

/// The bootstrap token kept in `path` (made on first start), with the file rewritten to pin
/// `ca_pem`; the file is readable only by its owner.
pub fn load_or_create(path: &Path, ca_pem: &str) -> std::io::Result<String> {
    let bootstrap = std::fs::read_to_string(path)
        .ok()
        .and_then(|text| JoinToken::parse(&text))
        .map(|t| t.bootstrap)
        .unwrap_or_else(skiff_apiserver::bootstrap_tokens::generate);
    let token = JoinToken {
        ca_hash: Some(ca_hash(ca_pem)),
        bootstrap: bootstrap.clone(),
    };
    let rendered = format!("{}\n", token.render());
    if std::fs::read_to_string(path).ok().as_deref() != Some(rendered.as_str()) {
        crate::kubeconfig::write_private(path, rendered.as_bytes())?;
    }
    Ok(bootstrap)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_join_token_carries_the_ca_hash_and_the_bootstrap_token() {
        let hash = ca_hash("-----BEGIN CERTIFICATE-----\n");
        assert_eq!(hash.len(), 64);
        let token = JoinToken {
            ca_hash: Some(hash.clone()),
            bootstrap: "abcdef.0123456789abcdef".into(),
        };
        let text = token.render();
        assert!(text.starts_with("K10") && text.ends_with("::abcdef.0123456789abcdef"));
        assert_eq!(JoinToken::parse(&text), Some(token));
        let bare = JoinToken::parse("abcdef.0123456789abcdef").unwrap();
        assert_eq!(bare.ca_hash, None);
        assert_eq!(JoinToken::parse("K10zz::abcdef.0123456789abcdef"), None);
        assert_eq!(JoinToken::parse(&format!("K10{hash}::nonsense")), None);
    }

    #[test]
    fn the_token_file_is_private_and_keeps_its_token_across_starts() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node-token");
        let first = load_or_create(&path, "CA one").unwrap();
        assert_eq!(load_or_create(&path, "CA one").unwrap(), first);
        let written = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            JoinToken::parse(&written).unwrap().ca_hash,
            Some(ca_hash("CA one"))
        );
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
