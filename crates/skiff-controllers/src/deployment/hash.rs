//! Pod-template hashing and ReplicaSet naming.
//!
//! Kubernetes names a Deployment's ReplicaSets `<deployment>-<hash>` where the hash is an FNV-1a
//! digest of the pod template (plus the collision count) rendered with a vowel-free alphabet, so
//! names are deterministic (creation is idempotent) and never spell words. The digest input here
//! is the template's canonical JSON rather than Go's object dump, so hash values differ from a
//! real cluster's while format, alphabet and collision handling are the same.

use k8s_openapi::api::core::v1::PodTemplateSpec;

/// Alphabet of `SafeEncodeString`: no vowels and no look-alike characters.
pub const SAFE_ALPHABET: &[u8; 27] = b"bcdfghjklmnpqrstvwxz2456789";

/// Longest object name Kubernetes accepts (DNS-1123 subdomain).
const MAX_NAME_LENGTH: usize = 253;

const FNV_OFFSET_BASIS: u32 = 2_166_136_261;
const FNV_PRIME: u32 = 16_777_619;

fn fnv1a32(hash: u32, bytes: &[u8]) -> u32 {
    bytes
        .iter()
        .fold(hash, |h, b| (h ^ u32::from(*b)).wrapping_mul(FNV_PRIME))
}

/// Maps every byte of `s` onto the safe alphabet (`rand.SafeEncodeString`).
pub fn safe_encode_string(s: &str) -> String {
    s.bytes()
        .map(|b| char::from(SAFE_ALPHABET[usize::from(b) % SAFE_ALPHABET.len()]))
        .collect()
}

/// The pod-template-hash of a template: FNV-1a 32 over the template's canonical JSON, then, when
/// a collision count is set, over the count as little-endian u32 followed by four zero bytes;
/// the decimal digest is rendered with [`safe_encode_string`]. Bumping the collision count is how
/// a name clash with a foreign ReplicaSet is escaped.
pub fn compute_hash(template: &PodTemplateSpec, collision_count: Option<i32>) -> String {
    // Serialization of these plain data types cannot fail; an empty input would still hash.
    let canonical = serde_json::to_vec(template).unwrap_or_default();
    let mut hash = fnv1a32(FNV_OFFSET_BASIS, &canonical);
    if let Some(count) = collision_count {
        let mut bytes = [0u8; 8];
        bytes[..4].copy_from_slice(&(count as u32).to_le_bytes());
        hash = fnv1a32(hash, &bytes);
    }
    safe_encode_string(&hash.to_string())
}

/// `<deployment>-<hash>`, truncating the Deployment name so the result fits 253 characters; a
/// hash that leaves no room is appended to the full name (the API server then rejects it).
pub fn replica_set_name(deployment_name: &str, hash: &str) -> String {
    let budget = MAX_NAME_LENGTH as isize - 1 - hash.len() as isize;
    let prefix = if budget > 0 && deployment_name.len() > budget as usize {
        truncate_at_char_boundary(deployment_name, budget as usize)
    } else {
        deployment_name
    };
    format!("{prefix}-{hash}")
}

fn truncate_at_char_boundary(s: &str, max_bytes: usize) -> &str {
    let mut end = max_bytes.min(s.len());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    use std::collections::BTreeMap;

    fn template(image_label: &str) -> PodTemplateSpec {
        PodTemplateSpec {
            metadata: Some(ObjectMeta {
                labels: Some(BTreeMap::from([(
                    "app".to_string(),
                    image_label.to_string(),
                )])),
                ..Default::default()
            }),
            spec: None,
        }
    }

    #[test]
    fn safe_encoding_maps_decimal_digits_into_the_alphabet() {
        // '0' is 48 and 48 % 27 = 21 -> '4'; '9' is 57 and 57 % 27 = 3 -> 'f'.
        assert_eq!(safe_encode_string("0123456789"), "456789bcdf");
    }

    #[test]
    fn hash_is_deterministic_and_uses_only_the_safe_alphabet() {
        let a = compute_hash(&template("web"), None);
        assert_eq!(a, compute_hash(&template("web"), None));
        assert!(!a.is_empty() && a.len() <= 10);
        assert!(a.bytes().all(|b| SAFE_ALPHABET.contains(&b)));
    }

    #[test]
    fn hash_changes_with_template_and_collision_count() {
        let base = compute_hash(&template("web"), None);
        assert_ne!(base, compute_hash(&template("api"), None));
        let c1 = compute_hash(&template("web"), Some(1));
        let c2 = compute_hash(&template("web"), Some(2));
        assert_ne!(base, c1);
        assert_ne!(c1, c2);
        // A zero count still feeds eight bytes, so it differs from an unset count.
        assert_ne!(base, compute_hash(&template("web"), Some(0)));
    }
}
