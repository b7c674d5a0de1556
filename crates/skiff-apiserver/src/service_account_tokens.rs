//! ServiceAccount tokens as kube-apiserver issues them: ES256 JWTs signed with a key kept under
//! the data directory, carrying `iss`, `sub`, `aud`, `exp`, `iat`, `nbf`, `jti` and the
//! `kubernetes.io` private claim that names the namespace, the ServiceAccount and the object
//! (pod, secret or node) the token is bound to. Signing and checking the signature, issuer,
//! audiences and times live here, with the time passed in; whether the bound objects still
//! exist is the caller's question (`token_request.rs`).

use std::collections::BTreeMap;
use std::path::Path;

use base64::Engine as _;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use serde::{Deserialize, Serialize};

/// The issuer every token names and every verified token must name (k3s's and kubeadm's
/// default `--service-account-issuer`).
pub const ISSUER: &str = "https://kubernetes.default.svc.cluster.local";

/// The audiences the API server itself accepts, and the default of a TokenRequest without
/// any (k3s's `--api-audiences`).
pub const API_AUDIENCES: &[&str] = &[ISSUER, "k3s"];

/// A name and uid, as the private claim records each object a token refers to.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectRef {
    /// The object's name.
    pub name: String,
    /// The object's uid, compared with the live object's on every request.
    pub uid: String,
}

/// The `kubernetes.io` private claim.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KubernetesClaim {
    /// The ServiceAccount's namespace.
    pub namespace: String,
    /// The ServiceAccount the token speaks for.
    pub serviceaccount: ObjectRef,
    /// The pod the token is bound to, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<ObjectRef>,
    /// The Secret the token is bound to, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<ObjectRef>,
    /// The node of the bound pod (or the bound node), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<ObjectRef>,
    /// When an extended kubelet token should have expired (seconds since the epoch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warnafter: Option<i64>,
}

/// Every claim of a ServiceAccount token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Who is meant to accept the token.
    pub aud: Vec<String>,
    /// When the token expires, in seconds since the epoch.
    pub exp: i64,
    /// When the token was issued.
    pub iat: i64,
    /// The issuer, [`ISSUER`].
    pub iss: String,
    /// The token's id, reported as the `credential-id` extra.
    #[serde(default)]
    pub jti: String,
    /// What the token names in Kubernetes.
    #[serde(rename = "kubernetes.io")]
    pub kubernetes: KubernetesClaim,
    /// Not valid before, in seconds since the epoch.
    pub nbf: i64,
    /// `system:serviceaccount:<namespace>:<name>`.
    pub sub: String,
}

impl Claims {
    /// The claims of a token for the ServiceAccount `account` in `namespace`, valid from `now`
    /// for `lifetime_seconds` and accepted by `audiences`.
    pub fn new(
        namespace: &str,
        account: ObjectRef,
        audiences: Vec<String>,
        now: i64,
        lifetime_seconds: i64,
    ) -> Claims {
        Claims {
            aud: audiences,
            exp: now.saturating_add(lifetime_seconds),
            iat: now,
            iss: ISSUER.to_string(),
            jti: uuid::Uuid::new_v4().to_string(),
            sub: format!(
                "{}{namespace}:{}",
                skiff_auth::user::SERVICE_ACCOUNT_PREFIX,
                account.name
            ),
            kubernetes: KubernetesClaim {
                namespace: namespace.to_string(),
                serviceaccount: account,
                ..KubernetesClaim::default()
            },
            nbf: now,
        }
    }
}

/// Why a token was refused; every reason is a 401 to the client.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    /// Not a JWT this server signed (bad form, other key, other algorithm, tampered).
    #[error("invalid token: {0}")]
    Invalid(String),
    /// Signed here, but for someone else or at another time.
    #[error("{0}")]
    Rejected(String),
}

/// The allowed clock skew, as kube-apiserver allows it on `exp` and `nbf`.
const LEEWAY_SECONDS: i64 = 60;

/// Signs and verifies ServiceAccount tokens with one ES256 key.
pub struct TokenSigner {
    encoding: EncodingKey,
    decoding: DecodingKey,
    key_id: String,
}

impl std::fmt::Debug for TokenSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSigner")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

impl TokenSigner {
    /// The signer whose PKCS#8 key is at `path`, creating the key (mode 0600) at first start
    /// so that tokens stay valid across restarts.
    pub fn load_or_create(path: &Path) -> std::io::Result<TokenSigner> {
        let pkcs8 = match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let document = EcdsaKeyPair::generate_pkcs8(
                    &ECDSA_P256_SHA256_FIXED_SIGNING,
                    &SystemRandom::new(),
                )
                .map_err(|_| std::io::Error::other("could not generate a signing key"))?;
                write_private(path, document.as_ref())?;
                document.as_ref().to_vec()
            }
            Err(e) => return Err(e),
        };
        TokenSigner::from_pkcs8(&pkcs8).map_err(|e| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("{}: {e}", path.display()),
            )
        })
    }

    /// The signer of a P-256 key in PKCS#8 form.
    pub fn from_pkcs8(pkcs8: &[u8]) -> Result<TokenSigner, String> {
        let pair = EcdsaKeyPair::from_pkcs8(
            &ECDSA_P256_SHA256_FIXED_SIGNING,
            pkcs8,
            &SystemRandom::new(),
        )
        .map_err(|e| format!("not a P-256 key in PKCS#8 form: {e}"))?;
        let public = pair.public_key().as_ref();
        let digest = ring::digest::digest(&ring::digest::SHA256, public);
        Ok(TokenSigner {
            encoding: EncodingKey::from_ec_der(pkcs8),
            decoding: DecodingKey::from_ec_der(public),
            key_id: base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest.as_ref()),
        })
    }

    /// A freshly generated signer, for tests and servers without a data directory.
    pub fn generate() -> TokenSigner {
        let document =
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
                .expect("the system random source works");
        TokenSigner::from_pkcs8(document.as_ref()).expect("a generated key parses")
    }

    /// The signed token for `claims`.
    pub fn sign(&self, claims: &Claims) -> String {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.key_id.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding)
            .expect("claims serialize and the key signs")
    }

    /// The claims of `token` if this server signed it for [`ISSUER`], one of `audiences`
    /// accepts it, and it is valid at `now` (seconds since the epoch).
    pub fn verify(&self, token: &str, audiences: &[&str], now: i64) -> Result<Claims, TokenError> {
        let mut validation = Validation::new(Algorithm::ES256);
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        validation.required_spec_claims.clear();
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &validation)
            .map_err(|e| TokenError::Invalid(e.to_string()))?;
        let claims = data.claims;
        if claims.iss != ISSUER {
            return Err(TokenError::Invalid(format!(
                "token issuer {:?} is not {ISSUER:?}",
                claims.iss
            )));
        }
        if now > claims.exp.saturating_add(LEEWAY_SECONDS) {
            return Err(TokenError::Rejected(
                "service account token has expired".into(),
            ));
        }
        if now < claims.nbf.saturating_sub(LEEWAY_SECONDS) {
            return Err(TokenError::Rejected(
                "service account token is not valid yet".into(),
            ));
        }
        if !claims.aud.iter().any(|a| audiences.contains(&a.as_str())) {
            return Err(TokenError::Rejected("token audiences are invalid".into()));
        }
        let expected_subject = format!(
            "{}{}:{}",
            skiff_auth::user::SERVICE_ACCOUNT_PREFIX,
            claims.kubernetes.namespace,
            claims.kubernetes.serviceaccount.name
        );
        if claims.sub != expected_subject {
            return Err(TokenError::Invalid(
                "the subject does not name the token's ServiceAccount".into(),
            ));
        }
        Ok(claims)
    }
}

/// The identity a verified token gives, as kube-apiserver's ServiceAccount authenticator
/// builds it: the ServiceAccount's user name and uid, its groups, and the bound pod, node and
/// token id as extra.
pub fn user_of(claims: &Claims) -> skiff_auth::user::UserInfo {
    let namespace = &claims.kubernetes.namespace;
    let mut extra = BTreeMap::new();
    if let Some(pod) = &claims.kubernetes.pod {
        extra.insert(
            "authentication.kubernetes.io/pod-name".to_string(),
            vec![pod.name.clone()],
        );
        extra.insert(
            "authentication.kubernetes.io/pod-uid".to_string(),
            vec![pod.uid.clone()],
        );
    }
    if let Some(node) = &claims.kubernetes.node {
        extra.insert(
            "authentication.kubernetes.io/node-name".to_string(),
            vec![node.name.clone()],
        );
        extra.insert(
            "authentication.kubernetes.io/node-uid".to_string(),
            vec![node.uid.clone()],
        );
    }
    if !claims.jti.is_empty() {
        extra.insert(
            "authentication.kubernetes.io/credential-id".to_string(),
            vec![format!("JTI={}", claims.jti)],
        );
    }
    skiff_auth::user::UserInfo {
        name: claims.sub.clone(),
        uid: claims.kubernetes.serviceaccount.uid.clone(),
        groups: vec![
            "system:serviceaccounts".to_string(),
            format!("system:serviceaccounts:{namespace}"),
            skiff_auth::user::SYSTEM_AUTHENTICATED.to_string(),
        ],
        extra,
    }
}

/// The issuer of legacy Secret tokens, which never expire and name no audience.
pub const LEGACY_ISSUER: &str = "kubernetes/serviceaccount";

/// The claims of a legacy token, as kube-controller-manager's tokens controller writes them
/// into `kubernetes.io/service-account-token` Secrets.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LegacyClaims {
    /// [`LEGACY_ISSUER`].
    pub iss: String,
    /// The ServiceAccount's namespace.
    #[serde(rename = "kubernetes.io/serviceaccount/namespace")]
    pub namespace: String,
    /// The Secret holding the token.
    #[serde(rename = "kubernetes.io/serviceaccount/secret.name")]
    pub secret_name: String,
    /// The ServiceAccount's name.
    #[serde(rename = "kubernetes.io/serviceaccount/service-account.name")]
    pub service_account_name: String,
    /// The ServiceAccount's uid.
    #[serde(rename = "kubernetes.io/serviceaccount/service-account.uid")]
    pub service_account_uid: String,
    /// `system:serviceaccount:<namespace>:<name>`.
    pub sub: String,
}

impl LegacyClaims {
    /// The claims of the token Secret `secret` holds for ServiceAccount `account`.
    pub fn new(namespace: &str, account: &str, account_uid: &str, secret: &str) -> LegacyClaims {
        LegacyClaims {
            iss: LEGACY_ISSUER.to_string(),
            namespace: namespace.to_string(),
            secret_name: secret.to_string(),
            service_account_name: account.to_string(),
            service_account_uid: account_uid.to_string(),
            sub: format!(
                "{}{namespace}:{account}",
                skiff_auth::user::SERVICE_ACCOUNT_PREFIX
            ),
        }
    }

    /// The identity the token gives: the ServiceAccount's name, uid and groups.
    pub fn user(&self) -> skiff_auth::user::UserInfo {
        skiff_auth::user::UserInfo {
            name: self.sub.clone(),
            uid: self.service_account_uid.clone(),
            groups: vec![
                "system:serviceaccounts".to_string(),
                format!("system:serviceaccounts:{}", self.namespace),
                skiff_auth::user::SYSTEM_AUTHENTICATED.to_string(),
            ],
            extra: BTreeMap::new(),
        }
    }
}

impl TokenSigner {
    /// The signed legacy token for `claims`.
    pub fn sign_legacy(&self, claims: &LegacyClaims) -> String {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.key_id.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding)
            .expect("claims serialize and the key signs")
    }

    /// The claims of a legacy token this server signed.
    pub fn verify_legacy(&self, token: &str) -> Result<LegacyClaims, TokenError> {
        let mut validation = Validation::new(Algorithm::ES256);
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        validation.required_spec_claims.clear();
        let claims = jsonwebtoken::decode::<LegacyClaims>(token, &self.decoding, &validation)
            .map_err(|e| TokenError::Invalid(e.to_string()))?
            .claims;
        if claims.iss != LEGACY_ISSUER {
            return Err(TokenError::Invalid("not a legacy token".into()));
        }
        let expected = format!(
            "{}{}:{}",
            skiff_auth::user::SERVICE_ACCOUNT_PREFIX,
            claims.namespace,
            claims.service_account_name
        );
        if claims.sub != expected {
            return Err(TokenError::Invalid(
                "the subject does not name the token's ServiceAccount".into(),
            ));
        }
        Ok(claims)
    }
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let partial = path.with_extension("partial");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&partial)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&partial, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000;

    fn claims() -> Claims {
        let mut claims = Claims::new(
            "dev",
            ObjectRef {
                name: "builder".into(),
                uid: "sa-uid".into(),
            },
            vec![ISSUER.to_string()],
            NOW,
            3600,
        );
        claims.kubernetes.pod = Some(ObjectRef {
            name: "web".into(),
            uid: "pod-uid".into(),
        });
        claims
    }

    #[test]
    fn signed_tokens_verify_and_carry_kubernetes_claims() {
        let signer = TokenSigner::generate();
        let token = signer.sign(&claims());
        let verified = signer
            .verify(&token, API_AUDIENCES, NOW + 10)
            .expect("valid");
        assert_eq!(verified, claims_with_jti(&verified));
        let payload = token.split('.').nth(1).expect("three parts");
        let json: serde_json::Value = serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(payload)
                .expect("base64url"),
        )
        .expect("json");
        assert_eq!(json["sub"], "system:serviceaccount:dev:builder");
        assert_eq!(json["iss"], ISSUER);
        assert_eq!(json["exp"], NOW + 3600);
        assert_eq!(json["kubernetes.io"]["namespace"], "dev");
        assert_eq!(
            json["kubernetes.io"]["serviceaccount"],
            serde_json::json!({"name": "builder", "uid": "sa-uid"})
        );
        assert_eq!(
            json["kubernetes.io"]["pod"],
            serde_json::json!({"name": "web", "uid": "pod-uid"})
        );
        assert!(json["kubernetes.io"].get("secret").is_none());
        let header = token.split('.').next().expect("header");
        let header: serde_json::Value = serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(header)
                .expect("base64url"),
        )
        .expect("json");
        assert_eq!(header["alg"], "ES256");
    }

    fn claims_with_jti(verified: &Claims) -> Claims {
        Claims {
            jti: verified.jti.clone(),
            ..claims()
        }
    }

    #[test]
    fn expired_future_and_foreign_audience_tokens_are_rejected() {
        let signer = TokenSigner::generate();
        let token = signer.sign(&claims());
        assert_eq!(
            signer.verify(&token, API_AUDIENCES, NOW + 3600 + LEEWAY_SECONDS + 1),
            Err(TokenError::Rejected(
                "service account token has expired".into()
            ))
        );
        assert!(signer
            .verify(&token, API_AUDIENCES, NOW + 3600 + LEEWAY_SECONDS)
            .is_ok());
        assert!(matches!(
            signer.verify(&token, API_AUDIENCES, NOW - LEEWAY_SECONDS - 1),
            Err(TokenError::Rejected(_))
        ));
        assert_eq!(
            signer.verify(&token, &["vault"], NOW),
            Err(TokenError::Rejected("token audiences are invalid".into()))
        );
    }

    #[test]
    fn tampered_and_foreign_tokens_are_invalid() {
        let signer = TokenSigner::generate();
        let token = signer.sign(&claims());
        let other = TokenSigner::generate();
        assert!(matches!(
            other.verify(&token, API_AUDIENCES, NOW),
            Err(TokenError::Invalid(_))
        ));
        let mut forged = claims();
        forged.sub = "system:serviceaccount:kube-system:admin".into();
        forged.kubernetes.namespace = "kube-system".into();
        let forged_payload = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(serde_json::to_vec(&forged).expect("json"));
        let parts: Vec<&str> = token.split('.').collect();
        let tampered = format!("{}.{}.{}", parts[0], forged_payload, parts[2]);
        assert!(matches!(
            signer.verify(&tampered, API_AUDIENCES, NOW),
            Err(TokenError::Invalid(_))
        ));
        assert!(matches!(
            signer.verify("not-a-jwt", API_AUDIENCES, NOW),
            Err(TokenError::Invalid(_))
        ));
    }

    #[test]
    fn the_key_is_created_once_and_kept_across_restarts() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("service-account.key");
        let first = TokenSigner::load_or_create(&path).expect("created");
        let token = first.sign(&claims());
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(&path).expect("key file").permissions(),
        );
        assert_eq!(mode & 0o777, 0o600);
        let second = TokenSigner::load_or_create(&path).expect("loaded");
        assert!(second.verify(&token, API_AUDIENCES, NOW).is_ok());
    }

    #[test]
    fn legacy_tokens_verify_only_as_legacy_tokens() {
        let signer = TokenSigner::generate();
        let claims = LegacyClaims::new("dev", "robot", "sa-1", "robot-token");
        let token = signer.sign_legacy(&claims);
        assert_eq!(signer.verify_legacy(&token), Ok(claims.clone()));
        assert_eq!(claims.user().name, "system:serviceaccount:dev:robot");
        assert_eq!(claims.user().groups[1], "system:serviceaccounts:dev");
        // A legacy token is no bound token, and a bound token no legacy one.
        assert!(matches!(
            signer.verify(&token, API_AUDIENCES, NOW),
            Err(TokenError::Invalid(_))
        ));
        let bound = signer.sign(&claims_fixture());
        assert!(matches!(
            signer.verify_legacy(&bound),
            Err(TokenError::Invalid(_))
        ));
        assert!(TokenSigner::generate().verify_legacy(&token).is_err());
    }

    fn claims_fixture() -> Claims {
        claims()
    }

    #[test]
    fn users_of_pod_bound_tokens_carry_groups_and_extra() {
        let user = user_of(&claims());
        assert_eq!(user.name, "system:serviceaccount:dev:builder");
        assert_eq!(user.uid, "sa-uid");
        assert_eq!(
            user.groups,
            [
                "system:serviceaccounts",
                "system:serviceaccounts:dev",
                "system:authenticated"
            ]
        );
        assert_eq!(user.extra["authentication.kubernetes.io/pod-name"], ["web"]);
        assert_eq!(
            user.extra["authentication.kubernetes.io/pod-uid"],
            ["pod-uid"]
        );
        assert!(user.extra["authentication.kubernetes.io/credential-id"][0].starts_with("JTI="));
    }
}
