//! Bootstrap tokens, as Kubernetes' `bootstrap.kubernetes.io/token` Secrets in `kube-system`:
//! a bearer token `<id>.<secret>` authenticates as `system:bootstrap:<id>` in
//! `system:bootstrappers` (and the Secret's `auth-extra-groups`) while its Secret allows
//! authentication and has not expired. Nodes join with one: RBAC lets the bootstrap group do
//! no more than ask for a node client certificate.

use base64::Engine as _;
use rand::Rng as _;
use serde_json::{json, Value};
use skiff_api::kinds;
use skiff_auth::user::{UserInfo, SYSTEM_AUTHENTICATED};

use crate::registry::Registry;

/// The Secret type of bootstrap tokens.
pub const TOKEN_SECRET_TYPE: &str = "bootstrap.kubernetes.io/token";
/// The namespace bootstrap token Secrets live in.
pub const TOKEN_NAMESPACE: &str = "kube-system";
/// The prefix of a token Secret's name, followed by the token id.
pub const TOKEN_SECRET_PREFIX: &str = "bootstrap-token-";
/// The prefix of a bootstrap token's user name, followed by the token id.
pub const BOOTSTRAP_USER_PREFIX: &str = "system:bootstrap:";
/// The group every bootstrap token is in.
pub const BOOTSTRAPPERS_GROUP: &str = "system:bootstrappers";
/// The extra group of the token `skiff up` makes for joining nodes, which RBAC binds to the
/// node bootstrap roles.
pub const NODE_TOKEN_GROUP: &str = "system:bootstrappers:skiff:default-node-token";

const ID_LEN: usize = 6;
const SECRET_LEN: usize = 16;
const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";

/// Splits a bearer token of the form `[a-z0-9]{6}.[a-z0-9]{16}` into id and secret.
pub fn parse(token: &str) -> Option<(&str, &str)> {
    let (id, secret) = token.split_once('.')?;
    let valid = |part: &str, len: usize| {
        part.len() == len
            && part
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    };
    (valid(id, ID_LEN) && valid(secret, SECRET_LEN)).then_some((id, secret))
}

/// A new random token `<id>.<secret>`.
pub fn generate() -> String {
    let mut rng = rand::rng();
    let mut pick = |len: usize| -> String {
        (0..len)
            .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
            .collect()
    };
    let id = pick(ID_LEN);
    let secret = pick(SECRET_LEN);
    format!("{id}.{secret}")
}

/// The Secret that makes `token` authenticate, with `extra_groups`, never expiring.
pub fn token_secret(token: &str, extra_groups: &[&str]) -> Option<Value> {
    let (id, secret) = parse(token)?;
    let encode = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    Some(json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": format!("{TOKEN_SECRET_PREFIX}{id}"), "namespace": TOKEN_NAMESPACE},
        "type": TOKEN_SECRET_TYPE,
        "data": {
            "token-id": encode(id),
            "token-secret": encode(secret),
            "usage-bootstrap-authentication": encode("true"),
            "usage-bootstrap-signing": encode("true"),
            "auth-extra-groups": encode(&extra_groups.join(",")),
            "description": encode("The token nodes join the cluster with."),
        },
    }))
}

fn data(secret: &Value, key: &str) -> Option<String> {
    let encoded = secret.pointer("/data")?.get(key)?.as_str()?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .ok()?;
    String::from_utf8(bytes).ok()
}

fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The user `token` authenticates as against its stored Secret (`None`: refused), at `now`.
pub fn user_of(secret: &Value, token: &str, now: jiff::Timestamp) -> Option<UserInfo> {
    let (id, presented) = parse(token)?;
    if secret.pointer("/type").and_then(Value::as_str) != Some(TOKEN_SECRET_TYPE)
        || secret.pointer("/metadata/deletionTimestamp").is_some()
        || data(secret, "token-id").as_deref() != Some(id)
        || data(secret, "usage-bootstrap-authentication").as_deref() != Some("true")
    {
        return None;
    }
    let stored = data(secret, "token-secret")?;
    if !same(stored.as_bytes(), presented.as_bytes()) {
        return None;
    }
    if let Some(expiration) = data(secret, "expiration") {
        let expires: jiff::Timestamp = expiration.parse().ok()?;
        if expires <= now {
            return None;
        }
    }
    let mut groups = vec![BOOTSTRAPPERS_GROUP.to_string()];
    for group in data(secret, "auth-extra-groups")
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|g| !g.is_empty())
    {
        // Only bootstrap groups may be added, as Kubernetes insists.
        if group.starts_with("system:bootstrappers:") && !groups.iter().any(|g| g == group) {
            groups.push(group.to_string());
        }
    }
    groups.push(SYSTEM_AUTHENTICATED.to_string());
    Some(UserInfo {
        name: format!("{BOOTSTRAP_USER_PREFIX}{id}"),
        uid: String::new(),
        groups,
        extra: Default::default(),
    })
}

/// Authenticates `token` as a bootstrap token against the Secrets in `registry`.
pub async fn authenticate(registry: &Registry, token: &str) -> Option<UserInfo> {
    let (id, _) = parse(token)?;
    let secret = registry
        .get(
            &kinds::secret::V1,
            Some(TOKEN_NAMESPACE),
            &format!("{TOKEN_SECRET_PREFIX}{id}"),
        )
        .await
        .ok()?;
    user_of(&secret, token, jiff::Timestamp::now())
}

/// Creates the Secret of `token` unless it exists already.
pub async fn ensure_token(
    registry: &Registry,
    token: &str,
    extra_groups: &[&str],
) -> Result<(), crate::status::ApiError> {
    let Some(secret) = token_secret(token, extra_groups) else {
        return Err(crate::status::ApiError::bad_request(
            "a bootstrap token has the form [a-z0-9]{6}.[a-z0-9]{16}",
        ));
    };
    match registry
        .create(
            &kinds::secret::V1,
            Some(TOKEN_NAMESPACE),
            secret,
            crate::registry::WriteOptions::default(),
        )
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if e.code == 409 => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "abcdef.0123456789abcdef";

    fn now() -> jiff::Timestamp {
        "2026-06-01T00:00:00Z".parse().unwrap()
    }

    #[test]
    fn tokens_have_a_six_character_id_and_a_sixteen_character_secret() {
        assert_eq!(parse(TOKEN), Some(("abcdef", "0123456789abcdef")));
        for bad in [
            "abcdef",
            "abcde.0123456789abcdef",
            "ABCDEF.0123456789abcdef",
            "abcdef.0123456789abcde!",
            "",
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
        let made = generate();
        assert!(parse(&made).is_some(), "{made}");
        assert_ne!(made, generate());
    }

    #[test]
    fn a_token_authenticates_as_its_bootstrap_user_with_its_extra_groups() {
        let secret = token_secret(TOKEN, &[NODE_TOKEN_GROUP, "not-a-bootstrap-group"]).unwrap();
        let user = user_of(&secret, TOKEN, now()).expect("authenticated");
        assert_eq!(user.name, "system:bootstrap:abcdef");
        assert_eq!(
            user.groups,
            [BOOTSTRAPPERS_GROUP, NODE_TOKEN_GROUP, SYSTEM_AUTHENTICATED]
        );
    }

    #[test]
    fn a_wrong_secret_an_expired_token_or_one_not_for_authentication_is_refused() {
        let secret = token_secret(TOKEN, &[]).unwrap();
        assert!(user_of(&secret, "abcdef.0123456789abcdee", now()).is_none());
        let mut expired = secret.clone();
        expired["data"]["expiration"] =
            json!(base64::engine::general_purpose::STANDARD.encode("2026-01-01T00:00:00Z"));
        assert!(user_of(&expired, TOKEN, now()).is_none());
        let mut unusable = secret.clone();
        unusable["data"]["usage-bootstrap-authentication"] =
            json!(base64::engine::general_purpose::STANDARD.encode("false"));
        assert!(user_of(&unusable, TOKEN, now()).is_none());
        let mut opaque = secret;
        opaque["type"] = json!("Opaque");
        assert!(user_of(&opaque, TOKEN, now()).is_none());
    }
}
