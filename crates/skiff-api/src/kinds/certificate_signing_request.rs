//! CertificateSigningRequests (`certificates.k8s.io/v1`): a client asks a signer for a
//! certificate; approvers add an `Approved` or `Denied` condition through the `approval`
//! subresource, and the signer writes `status.certificate` through `status`.

use base64::Engine;
use jiff::Timestamp;
use serde_json::Value;

use super::{Kind, KindStrategy, TypedVersion};
use crate::printers::*;
use crate::validation::*;
use crate::{
    errors::FieldError,
    printers::Printer,
    resources::{
        res, ResourceInfo,
        Subresource::{Approval, Status},
    },
};

/// `certificates.k8s.io/v1` CertificateSigningRequests.
pub static V1: ResourceInfo = ResourceInfo {
    short_names: &["csr"],
    subresources: &[Approval, Status],
    ..res(
        "certificates.k8s.io",
        "v1",
        "CertificateSigningRequest",
        "certificatesigningrequests",
        "certificatesigningrequest",
        false,
    )
};

/// The kind's entry in the kind table.
pub static KIND: Kind = Kind {
    versions: &[&V1],
    strategy: &Strategy,
};

/// The signer of client certificates for kubelets, which the node bootstrap uses.
pub const KUBELET_CLIENT_SIGNER: &str = "kubernetes.io/kube-apiserver-client-kubelet";

/// The shortest certificate lifetime a request may ask for (`expirationSeconds`), as
/// Kubernetes refuses anything below ten minutes.
pub const MIN_EXPIRATION_SECONDS: i64 = 600;

/// The key usages a request may name (`certificates.k8s.io/v1` `KeyUsage`).
pub const KEY_USAGES: &[&str] = &[
    "signing",
    "digital signature",
    "content commitment",
    "key encipherment",
    "key agreement",
    "data encipherment",
    "cert sign",
    "crl sign",
    "encipher only",
    "decipher only",
    "any",
    "server auth",
    "client auth",
    "code signing",
    "email protection",
    "s/mime",
    "ipsec end system",
    "ipsec tunnel",
    "ipsec user",
    "timestamping",
    "ocsp signing",
    "microsoft sgc",
    "netscape sgc",
];

/// The condition types that decide a request; a request carries at most one of each, and never
/// both `Approved` and `Denied`.
const DECISIONS: &[&str] = &["Approved", "Denied"];

/// The kind's behaviour.
pub struct Strategy;

impl KindStrategy for Strategy {
    fn typed(&self, _version: &str) -> Option<TypedVersion> {
        Some(TypedVersion::of::<
            k8s_openapi::api::certificates::v1::CertificateSigningRequest,
        >())
    }

    fn validate(&self, obj: &Value, errs: &mut Vec<FieldError>) {
        let spec = field(obj, "spec");
        validate_request(field(spec, "request"), errs);
        validate_signer_name(field(spec, "signerName"), errs);
        validate_usages(array_at(spec, "usages"), errs);
        if let Some(seconds) = int_at(spec, "expirationSeconds") {
            if seconds < MIN_EXPIRATION_SECONDS {
                errs.push(FieldError::invalid(
                    "spec.expirationSeconds",
                    field(spec, "expirationSeconds"),
                    "may not specify a duration less than 600 seconds (10 minutes)",
                ));
            }
        }
        validate_conditions(array_at(field(obj, "status"), "conditions"), errs);
    }

    fn validate_update(&self, new: &Value, old: &Value, errs: &mut Vec<FieldError>) {
        self.validate(new, errs);
        let new_conditions = array_at(field(new, "status"), "conditions");
        let old_conditions = array_at(field(old, "status"), "conditions");
        for decision in DECISIONS {
            let had = old_conditions
                .iter()
                .any(|c| str_at(c, "type") == *decision);
            let has = new_conditions
                .iter()
                .any(|c| str_at(c, "type") == *decision);
            if had && !has {
                errs.push(FieldError::forbidden(
                    "status.conditions",
                    format!("updates may not remove a condition of type \"{decision}\""),
                ));
            }
        }
        let old_certificate = str_at(field(old, "status"), "certificate");
        let new_certificate = str_at(field(new, "status"), "certificate");
        if !old_certificate.is_empty() && old_certificate != new_certificate {
            errs.push(FieldError::forbidden(
                "status.certificate",
                "updates may not modify existing certificate content",
            ));
        }
    }

    fn prepare_for_write(&self, new: &mut Value, old: Option<&Value>) {
        // The spec (the request and who made it) is fixed once created: updates keep it.
        if let Some(spec) = old.and_then(|o| o.get("spec")) {
            new["spec"] = spec.clone();
        }
    }

    fn records_requestor(&self) -> bool {
        true
    }

    fn printer(&self) -> Option<Printer> {
        Some(Printer::new(
            vec![
                name_col(),
                age_col(),
                col(
                    "SignerName",
                    "string",
                    "signerName indicates the requested signer, and is a qualified name.",
                ),
                col(
                    "Requestor",
                    "string",
                    "username contains the name of the user that created the CertificateSigningRequest.",
                ),
                col(
                    "RequestedDuration",
                    "string",
                    "expirationSeconds is the requested duration of validity of the issued certificate.",
                ),
                col(
                    "Condition",
                    "string",
                    "conditions applied to the request. Known conditions are \"Approved\", \"Denied\", and \"Failed\".",
                ),
            ],
            csr_cells,
        ))
    }
}

/// `spec.request` must be a PEM `CERTIFICATE REQUEST` block (sent base64-encoded, as JSON
/// carries bytes).
fn validate_request(request: &Value, errs: &mut Vec<FieldError>) {
    let pem = request
        .as_str()
        .and_then(|b64| base64::engine::general_purpose::STANDARD.decode(b64).ok())
        .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
        .unwrap_or_default();
    let has_block = pem.contains("-----BEGIN CERTIFICATE REQUEST-----")
        && pem.contains("-----END CERTIFICATE REQUEST-----");
    if !has_block {
        errs.push(FieldError::invalid(
            "spec.request",
            request,
            "PEM block type must be CERTIFICATE REQUEST",
        ));
    }
}

/// `spec.signerName` is required and has the form `example.com/signer-name`.
fn validate_signer_name(signer: &Value, errs: &mut Vec<FieldError>) {
    let name = signer.as_str().unwrap_or("");
    if name.is_empty() {
        errs.push(FieldError::required("spec.signerName", ""));
        return;
    }
    let well_formed = match name.split_once('/') {
        Some((domain, path)) => {
            !path.is_empty() && dns1123_subdomain_errors(domain).is_empty() && !path.contains("//")
        }
        None => false,
    };
    if !well_formed {
        errs.push(FieldError::invalid(
            "spec.signerName",
            signer,
            "must be a fully qualified domain and path of the form 'example.com/signer-name'",
        ));
    }
}

fn validate_usages(usages: &[Value], errs: &mut Vec<FieldError>) {
    if usages.is_empty() {
        errs.push(FieldError::required(
            "spec.usages",
            "usages must be provided",
        ));
    }
    let mut seen: Vec<&str> = Vec::new();
    for (i, usage) in usages.iter().enumerate() {
        let text = usage.as_str().unwrap_or("");
        if !KEY_USAGES.contains(&text) {
            errs.push(FieldError::not_supported(
                format!("spec.usages[{i}]"),
                usage,
                KEY_USAGES,
            ));
        } else if seen.contains(&text) {
            errs.push(FieldError::duplicate(format!("spec.usages[{i}]"), usage));
        }
        seen.push(text);
    }
}

fn validate_conditions(conditions: &[Value], errs: &mut Vec<FieldError>) {
    let mut seen: Vec<&str> = Vec::new();
    for (i, condition) in conditions.iter().enumerate() {
        let kind = str_at(condition, "type");
        let path = format!("status.conditions[{i}]");
        if kind.is_empty() {
            errs.push(FieldError::required(format!("{path}.type"), ""));
        }
        if DECISIONS.contains(&kind) || kind == "Failed" {
            if seen.contains(&kind) {
                errs.push(FieldError::duplicate(
                    format!("{path}.type"),
                    field(condition, "type"),
                ));
            }
            if str_at(condition, "status") != "True" {
                errs.push(FieldError::not_supported(
                    format!("{path}.status"),
                    field(condition, "status"),
                    &["True"],
                ));
            }
        }
        seen.push(kind);
    }
    if seen.contains(&"Approved") && seen.contains(&"Denied") {
        errs.push(FieldError::invalid(
            "status.conditions",
            &Value::Array(conditions.to_vec()),
            "Approved and Denied conditions are mutually exclusive",
        ));
    }
}

/// `Approved`, `Denied` or `Pending`, then `,Failed` and `,Issued` when they apply, as
/// `kubectl get csr` shows a request's state.
pub fn condition_summary(obj: &Value) -> String {
    let status = field(obj, "status");
    let conditions = array_at(status, "conditions");
    let has = |t: &str| conditions.iter().any(|c| str_at(c, "type") == t);
    let mut summary = if has("Denied") {
        "Denied".to_string()
    } else if has("Approved") {
        "Approved".to_string()
    } else {
        "Pending".to_string()
    };
    if has("Failed") {
        summary.push_str(",Failed");
    }
    if !str_at(status, "certificate").is_empty() {
        summary.push_str(",Issued");
    }
    summary
}

fn csr_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    let duration = match obj
        .pointer("/spec/expirationSeconds")
        .and_then(Value::as_i64)
    {
        Some(seconds) => human_duration(seconds),
        None => "<none>".to_string(),
    };
    vec![
        name(obj),
        age(obj, now),
        text(obj, "/spec/signerName").into(),
        text(obj, "/spec/username").into(),
        duration.into(),
        condition_summary(obj).into(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn request_b64() -> String {
        base64::engine::general_purpose::STANDARD.encode(
            "-----BEGIN CERTIFICATE REQUEST-----\nMIIB\n-----END CERTIFICATE REQUEST-----\n",
        )
    }

    fn csr() -> Value {
        json!({"metadata": {"name": "node-csr"}, "spec": {
            "request": request_b64(),
            "signerName": KUBELET_CLIENT_SIGNER,
            "usages": ["digital signature", "client auth"]}})
    }

    fn errors_of(obj: &Value) -> Vec<String> {
        let mut errs = Vec::new();
        Strategy.validate(obj, &mut errs);
        errs.iter().map(FieldError::full).collect()
    }

    #[test]
    fn a_well_formed_request_is_valid() {
        assert_eq!(errors_of(&csr()), Vec::<String>::new());
    }

    #[test]
    fn request_signer_usages_and_duration_get_kubernetes_messages() {
        let mut obj = csr();
        obj["spec"]["request"] = json!(base64::engine::general_purpose::STANDARD.encode("junk"));
        obj["spec"]["signerName"] = json!("no-slash");
        obj["spec"]["usages"] = json!([]);
        obj["spec"]["expirationSeconds"] = json!(60);
        let errors = errors_of(&obj).join("\n");
        assert!(errors.contains("spec.request: Invalid value"), "{errors}");
        assert!(
            errors.contains("PEM block type must be CERTIFICATE REQUEST"),
            "{errors}"
        );
        assert!(
            errors.contains(
                "must be a fully qualified domain and path of the form 'example.com/signer-name'"
            ),
            "{errors}"
        );
        assert!(
            errors.contains("spec.usages: Required value: usages must be provided"),
            "{errors}"
        );
        assert!(
            errors.contains("may not specify a duration less than 600 seconds (10 minutes)"),
            "{errors}"
        );
    }

    #[test]
    fn unknown_and_repeated_usages_are_refused() {
        let mut obj = csr();
        obj["spec"]["usages"] = json!(["client auth", "flying", "client auth"]);
        let errors = errors_of(&obj).join("\n");
        assert!(
            errors.contains("spec.usages[1]: Unsupported value: \"flying\""),
            "{errors}"
        );
        assert!(
            errors.contains("spec.usages[2]: Duplicate value: \"client auth\""),
            "{errors}"
        );
    }

    #[test]
    fn approved_and_denied_exclude_each_other_and_cannot_be_removed() {
        let mut both = csr();
        both["status"] = json!({"conditions": [
            {"type": "Approved", "status": "True"}, {"type": "Denied", "status": "True"}]});
        let errors = errors_of(&both).join("\n");
        assert!(
            errors.contains("Approved and Denied conditions are mutually exclusive"),
            "{errors}"
        );

        let mut approved = csr();
        approved["status"] = json!({"conditions": [{"type": "Approved", "status": "True"}]});
        let mut errs = Vec::new();
        Strategy.validate_update(&csr(), &approved, &mut errs);
        let errors: Vec<String> = errs.iter().map(FieldError::full).collect();
        assert!(
            errors
                .iter()
                .any(|e| e.contains("updates may not remove a condition of type \"Approved\"")),
            "{errors:?}"
        );
    }

    #[test]
    fn an_issued_certificate_cannot_be_replaced() {
        let mut old = csr();
        old["status"] = json!({"certificate": "AAAA"});
        let mut new = csr();
        new["status"] = json!({"certificate": "BBBB"});
        let mut errs = Vec::new();
        Strategy.validate_update(&new, &old, &mut errs);
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert!(errs[0]
            .full()
            .contains("updates may not modify existing certificate content"));
    }

    #[test]
    fn updates_keep_the_spec_they_were_created_with() {
        let old = csr();
        let mut new = csr();
        new["spec"]["signerName"] = json!("example.com/other");
        Strategy.prepare_for_write(&mut new, Some(&old));
        assert_eq!(new["spec"], old["spec"]);
    }

    #[test]
    fn the_condition_column_reads_as_kubectl_shows_it() {
        let mut obj = csr();
        assert_eq!(condition_summary(&obj), "Pending");
        obj["status"] = json!({"conditions": [{"type": "Approved", "status": "True"}]});
        assert_eq!(condition_summary(&obj), "Approved");
        obj["status"]["certificate"] = json!("AAAA");
        assert_eq!(condition_summary(&obj), "Approved,Issued");
        obj["status"] = json!({"conditions": [{"type": "Denied", "status": "True"},
            {"type": "Failed", "status": "True"}]});
        assert_eq!(condition_summary(&obj), "Denied,Failed");
    }

    #[test]
    fn cells_name_signer_requestor_and_duration() {
        let mut obj = csr();
        obj["spec"]["username"] = json!("system:bootstrap:abcdef");
        obj["spec"]["expirationSeconds"] = json!(3600);
        let cells = csr_cells(&obj, Timestamp::now());
        assert_eq!(cells[2], json!(KUBELET_CLIENT_SIGNER));
        assert_eq!(cells[3], json!("system:bootstrap:abcdef"));
        assert_eq!(cells[4], json!("60m"));
        assert_eq!(cells[5], json!("Pending"));
    }
}
