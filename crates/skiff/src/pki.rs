//! The cluster's own certificate authority and the API server's serving certificate.
//!
//! kubectl sends bearer tokens only over TLS, and a token should never cross a network in the
//! clear anyway, so the API is HTTPS from the first start: a CA is created once per data
//! directory and the serving certificate is reissued when the addresses it must cover change.

use std::net::IpAddr;
use std::path::Path;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType,
};

use crate::kubeconfig::write_private;

/// PEM files for the API server and the CA clients trust.
pub struct ServingMaterial {
    /// The CA certificate (PEM), for kubeconfig `certificate-authority-data`.
    pub ca_pem: String,
    /// The serving certificate chain (PEM).
    pub cert_pem: String,
    /// The serving key (PEM).
    pub key_pem: String,
}

type PkiResult<T> = Result<T, Box<dyn std::error::Error>>;

/// The CA's parameters; the same every time, so a stored CA key can sign again after a restart.
fn ca_params() -> PkiResult<CertificateParams> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params
        .distinguished_name
        .push(DnType::CommonName, "skiff-ca");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.not_after = rcgen::date_time_ymd(2099, 1, 1);
    Ok(params)
}

/// The CA of the data directory `dir`, created there on first use.
pub(crate) fn load_or_create_ca(dir: &Path) -> PkiResult<(String, KeyPair)> {
    let cert_path = dir.join("ca.crt");
    let key_path = dir.join("ca.key");
    if let (Ok(cert), Ok(key)) = (
        std::fs::read_to_string(&cert_path),
        std::fs::read_to_string(&key_path),
    ) {
        return Ok((cert, KeyPair::from_pem(&key)?));
    }
    let key = KeyPair::generate()?;
    let cert = ca_params()?.self_signed(&key)?;
    write_private(&key_path, key.serialize_pem().as_bytes())?;
    write_private(&cert_path, cert.pem().as_bytes())?;
    Ok((cert.pem(), key))
}

/// A client certificate and its key (PEM), for a kubeconfig's `client-certificate-data` and
/// `client-key-data`.
pub struct ClientMaterial {
    /// The certificate, signed by the cluster CA.
    pub cert_pem: String,
    /// Its private key.
    pub key_pem: String,
}

/// Issues a client certificate signed by the cluster CA in `dir` for `user` (the subject's
/// common name) in `group` (its organization), as kube-apiserver's x509 authenticator reads
/// them. The CA must exist already: `skiff up` creates it.
pub fn client_material(dir: &Path, user: &str, group: Option<&str>) -> PkiResult<ClientMaterial> {
    let key_path = dir.join("ca.key");
    let ca_key = std::fs::read_to_string(&key_path).map_err(|e| {
        format!(
            "cannot read the cluster CA key {} (run `skiff up` first): {e}",
            key_path.display()
        )
    })?;
    let ca = ca_params()?;
    let issuer = Issuer::from_params(&ca, KeyPair::from_pem(&ca_key)?);
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.distinguished_name.push(DnType::CommonName, user);
    if let Some(group) = group {
        params
            .distinguished_name
            .push(DnType::OrganizationName, group);
    }
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    params.not_after = rcgen::date_time_ymd(2099, 1, 1);
    let cert = params.signed_by(&key, &issuer)?;
    Ok(ClientMaterial {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// The requestheader CA (`front-proxy-ca.crt`, PEM) and the front-proxy client certificate
/// it signed, which the API server presents to aggregated servers.
pub struct FrontProxyMaterial {
    /// The requestheader CA certificate, published for aggregated servers to trust.
    pub ca_pem: String,
    /// The client certificate, issued to `front-proxy-client`.
    pub cert_pem: String,
    /// Its private key.
    pub key_pem: String,
}

/// The requestheader CA's parameters: a CA of its own, apart from the cluster CA, as
/// kube-apiserver's `--requestheader-client-ca-file` is, so that no cluster client certificate
/// can assert identity headers.
fn front_proxy_ca_params() -> PkiResult<CertificateParams> {
    let mut params = ca_params()?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, "skiff-front-proxy-ca");
    Ok(params)
}

/// The requestheader CA of data directory `dir` (`front-proxy-ca.crt` and `.key`), created
/// there on first use.
pub(crate) fn load_or_create_front_proxy_ca(dir: &Path) -> PkiResult<(String, KeyPair)> {
    let cert_path = dir.join("front-proxy-ca.crt");
    let key_path = dir.join("front-proxy-ca.key");
    if let (Ok(cert), Ok(key)) = (
        std::fs::read_to_string(&cert_path),
        std::fs::read_to_string(&key_path),
    ) {
        return Ok((cert, KeyPair::from_pem(&key)?));
    }
    let key = KeyPair::generate()?;
    let cert = front_proxy_ca_params()?.self_signed(&key)?;
    write_private(&key_path, key.serialize_pem().as_bytes())?;
    write_private(&cert_path, cert.pem().as_bytes())?;
    Ok((cert.pem(), key))
}

/// Loads the requestheader CA of data directory `dir` (creating it on first start) and
/// issues a front-proxy client certificate with it.
pub fn front_proxy_material(dir: &Path) -> PkiResult<FrontProxyMaterial> {
    let (ca_pem, ca_key) = load_or_create_front_proxy_ca(dir)?;
    let ca_params = front_proxy_ca_params()?;
    let issuer = Issuer::from_params(&ca_params, ca_key);
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.distinguished_name.push(
        DnType::CommonName,
        skiff_apiserver::aggregator::FRONT_PROXY_CLIENT_NAME,
    );
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    params.not_after = rcgen::date_time_ymd(2099, 1, 1);
    let cert = params.signed_by(&key, &issuer)?;
    Ok(FrontProxyMaterial {
        ca_pem,
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// How far back an issued certificate's validity starts, so a node whose clock is a little
/// behind accepts it at once (kube-controller-manager's signer backdates by five minutes).
const ISSUE_BACKDATE: std::time::Duration = std::time::Duration::from_secs(5 * 60);

/// The cluster CA as the CertificateSigningRequest signer's issuer: it checks each request's
/// signature and signs it for client use.
pub struct ClusterIssuer {
    ca_key_pem: String,
}

impl ClusterIssuer {
    /// The issuer of the CA in data directory `dir` (which `skiff up` created).
    pub fn load(dir: &Path) -> PkiResult<ClusterIssuer> {
        let ca_key_pem = std::fs::read_to_string(dir.join("ca.key"))?;
        KeyPair::from_pem(&ca_key_pem)?;
        Ok(ClusterIssuer { ca_key_pem })
    }
}

impl skiff_controllers::certificates::CertificateIssuer for ClusterIssuer {
    fn issue(
        &self,
        request_pem: &str,
        usages: &[&str],
        lifetime: std::time::Duration,
    ) -> Result<String, String> {
        let mut request = rcgen::CertificateSigningRequestParams::from_pem(request_pem)
            .map_err(|e| format!("invalid certificate request: {e}"))?;
        let since_epoch = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_err(|e| e.to_string())?;
        let epoch = rcgen::date_time_ymd(1970, 1, 1);
        let params = &mut request.params;
        params.not_before = epoch + since_epoch.saturating_sub(ISSUE_BACKDATE);
        params.not_after = epoch + since_epoch.saturating_add(lifetime);
        params.is_ca = IsCa::NoCa;
        params.key_usages = Vec::new();
        params.extended_key_usages = Vec::new();
        for usage in usages {
            match *usage {
                "digital signature" => params.key_usages.push(KeyUsagePurpose::DigitalSignature),
                "key encipherment" => params.key_usages.push(KeyUsagePurpose::KeyEncipherment),
                "client auth" => params
                    .extended_key_usages
                    .push(rcgen::ExtendedKeyUsagePurpose::ClientAuth),
                "server auth" => params
                    .extended_key_usages
                    .push(rcgen::ExtendedKeyUsagePurpose::ServerAuth),
                other => return Err(format!("invalid usage for client certificate: {other}")),
            }
        }
        let ca = ca_params().map_err(|e| e.to_string())?;
        let key = KeyPair::from_pem(&self.ca_key_pem).map_err(|e| e.to_string())?;
        let issuer = Issuer::from_params(&ca, key);
        let cert = request.signed_by(&issuer).map_err(|e| e.to_string())?;
        Ok(cert.pem())
    }
}

/// Loads the CA (creating it on first start) and issues a serving certificate valid for
/// `localhost`, `127.0.0.1`, `::1`, `extra_ips` and `extra_names` (the `kubernetes` Service's
/// cluster IP and names, as kube-apiserver's certificate holds them, so pods verify it).
pub fn serving_material(
    dir: &Path,
    extra_ips: &[IpAddr],
    extra_names: &[String],
) -> PkiResult<ServingMaterial> {
    let (ca_pem, ca_key) = load_or_create_ca(dir)?;
    let ca = ca_params()?;
    let issuer = Issuer::from_params(&ca, ca_key);
    let key = KeyPair::generate()?;
    let mut names = vec!["localhost".to_string()];
    names.extend(extra_names.iter().cloned());
    let mut params = CertificateParams::new(names)?;
    params
        .distinguished_name
        .push(DnType::CommonName, "skiff-apiserver");
    let mut ips: Vec<IpAddr> = vec!["127.0.0.1".parse()?, "::1".parse()?];
    for ip in extra_ips {
        if !ip.is_unspecified() && !ips.contains(ip) {
            ips.push(*ip);
        }
    }
    params
        .subject_alt_names
        .extend(ips.into_iter().map(SanType::IpAddress));
    params.not_after = rcgen::date_time_ymd(2099, 1, 1);
    let cert = params.signed_by(&key, &issuer)?;
    Ok(ServingMaterial {
        ca_pem,
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// `--tls-san`'s values as IP addresses and DNS names (a `*.` wildcard first label allowed),
/// in their order, without repeats; a value that is neither is refused. Pure.
pub fn subject_alternative_names(values: &[String]) -> Result<(Vec<IpAddr>, Vec<String>), String> {
    let mut ips: Vec<IpAddr> = Vec::new();
    let mut names: Vec<String> = Vec::new();
    for value in values {
        let value = value.trim();
        if let Ok(ip) = value.parse::<IpAddr>() {
            if !ips.contains(&ip) {
                ips.push(ip);
            }
            continue;
        }
        let name = value.trim_end_matches('.').to_ascii_lowercase();
        let body = name.strip_prefix("*.").unwrap_or(&name);
        let label_ok = |label: &str| {
            let bytes = label.as_bytes();
            !bytes.is_empty()
                && bytes.len() <= 63
                && bytes
                    .iter()
                    .all(|b| b.is_ascii_alphanumeric() || *b == b'-')
                && bytes.first() != Some(&b'-')
                && bytes.last() != Some(&b'-')
        };
        if body.is_empty() || name.len() > 253 || !body.split('.').all(label_ok) {
            return Err(format!(
                "--tls-san {value:?} is neither an IP address nor a DNS name"
            ));
        }
        if !names.contains(&name) {
            names.push(name);
        }
    }
    Ok((ips, names))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_front_proxy_ca_is_its_own_and_signs_the_client_certificate() {
        use rustls::pki_types::pem::PemObject as _;
        let dir = tempfile::tempdir().unwrap();
        let serving = serving_material(dir.path(), &[], &[]).unwrap();
        let first = front_proxy_material(dir.path()).unwrap();
        let second = front_proxy_material(dir.path()).unwrap();
        assert_eq!(first.ca_pem, second.ca_pem, "the CA survives restarts");
        assert_ne!(first.ca_pem, serving.ca_pem, "apart from the cluster CA");
        let der =
            rustls::pki_types::CertificateDer::from_pem_slice(first.cert_pem.as_bytes()).unwrap();
        let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
        let common_name = cert
            .subject()
            .iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok())
            .unwrap();
        assert_eq!(common_name, "front-proxy-client");
        let issuer = cert
            .issuer()
            .iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok())
            .unwrap();
        assert_eq!(issuer, "skiff-front-proxy-ca");
    }

    #[test]
    fn tls_san_values_are_addresses_or_dns_names() {
        let values: Vec<String> = [
            "skiff.example",
            "198.18.0.7",
            "*.Nodes.Example.",
            "::1",
            "skiff.example",
        ]
        .map(String::from)
        .into();
        let (ips, names) = subject_alternative_names(&values).unwrap();
        assert_eq!(
            ips,
            vec![
                "198.18.0.7".parse::<IpAddr>().unwrap(),
                "::1".parse().unwrap()
            ]
        );
        assert_eq!(names, ["skiff.example", "*.nodes.example"]);
        for bad in [
            "",
            "bad name",
            "-x.example",
            "a..b",
            "*.",
            "x_y.example",
            "é.example",
        ] {
            let error = subject_alternative_names(&[bad.to_string()]).unwrap_err();
            assert!(
                error.contains("neither an IP address nor a DNS name"),
                "{bad}: {error}"
            );
        }
    }

    #[test]
    fn ca_is_created_once_and_signs_serving_certs() {
        let dir = tempfile::tempdir().unwrap();
        let first = serving_material(dir.path(), &["127.0.0.1".parse().unwrap()], &[]).unwrap();
        let second = serving_material(dir.path(), &["10.1.2.3".parse().unwrap()], &[]).unwrap();
        assert_eq!(first.ca_pem, second.ca_pem, "the CA survives restarts");
        assert_ne!(first.cert_pem, second.cert_pem);
        assert!(first.key_pem.contains("PRIVATE KEY"));
    }

    #[test]
    fn serving_certs_name_the_kubernetes_service() {
        use rustls::pki_types::pem::PemObject as _;
        let dir = tempfile::tempdir().unwrap();
        let in_cluster_names = [
            "kubernetes",
            "kubernetes.default",
            "kubernetes.default.svc",
            "kubernetes.default.svc.cluster.local",
        ]
        .map(String::from);
        let service_ip = std::net::Ipv4Addr::new(198, 19, 0, 1);
        let material = serving_material(
            dir.path(),
            &["127.0.0.1".parse().unwrap(), IpAddr::V4(service_ip)],
            &in_cluster_names,
        )
        .unwrap();
        let der = rustls::pki_types::CertificateDer::from_pem_slice(material.cert_pem.as_bytes())
            .unwrap();
        let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
        let san = cert.subject_alternative_name().unwrap().unwrap();
        let names: Vec<String> = san
            .value
            .general_names
            .iter()
            .map(|n| match n {
                x509_parser::extensions::GeneralName::DNSName(d) => d.to_string(),
                x509_parser::extensions::GeneralName::IPAddress(ip) => format!("{ip:?}"),
                other => format!("{other:?}"),
            })
            .collect();
        for name in &in_cluster_names {
            assert!(names.contains(name), "{names:?}");
        }
        let service_ip = service_ip.octets();
        assert!(
            names.contains(&format!("{:?}", &service_ip[..])),
            "{names:?}"
        );
    }
}
