//! Client certificate authentication, as kube-apiserver's x509 authenticator does it: the TLS
//! listener asks for a client certificate but also accepts connections without one; a
//! certificate the cluster CA signed authenticates its connection's requests as the user in
//! its subject's common name, in the groups of its organizations.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;

use axum::Extension;
use axum_server::accept::Accept;
use skiff_auth::user::{UserInfo, SYSTEM_AUTHENTICATED};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;
use tower_layer::Layer;

/// The user a connection's verified client certificate names, kept in every request of the
/// connection; `None` when the client sent no certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertificateUser(pub Option<UserInfo>);

/// The user a certificate names: its subject's common name, and its organizations as groups
/// (plus `system:authenticated`). `None` for a certificate without a common name.
pub fn user_of_certificate(der: &[u8]) -> Option<UserInfo> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let subject = cert.subject();
    let name = subject
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())?
        .to_string();
    if name.is_empty() {
        return None;
    }
    let mut groups: Vec<String> = subject
        .iter_organization()
        .filter_map(|o| o.as_str().ok().map(str::to_string))
        .collect();
    groups.push(SYSTEM_AUTHENTICATED.to_string());
    Some(UserInfo {
        name,
        uid: String::new(),
        groups,
        extra: Default::default(),
    })
}

/// A rustls server configuration that verifies client certificates against `client_ca_pem`
/// while allowing clients that send none.
pub fn server_config(
    cert_pem: &[u8],
    key_pem: &[u8],
    client_ca_pem: &[u8],
) -> io::Result<rustls::ServerConfig> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let invalid =
        |e: &dyn std::fmt::Display| io::Error::new(io::ErrorKind::InvalidData, e.to_string());
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| invalid(&e))?;
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| invalid(&e))?;
    let mut roots = rustls::RootCertStore::empty();
    for ca in CertificateDer::pem_slice_iter(client_ca_pem) {
        roots
            .add(ca.map_err(|e| invalid(&e))?)
            .map_err(|e| invalid(&e))?;
    }
    let verifier = rustls::server::WebPkiClientVerifier::builder(Arc::new(roots))
        .allow_unauthenticated()
        .build()
        .map_err(|e| invalid(&e))?;
    let mut config = rustls::ServerConfig::builder()
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs, key)
        .map_err(|e| invalid(&e))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// Wraps the TLS acceptor: once the handshake is done, the connection's service adds the
/// [`CertificateUser`] to each of its requests.
#[derive(Clone)]
pub struct CertificateUserAcceptor<A> {
    inner: A,
}

impl<A> CertificateUserAcceptor<A> {
    /// Wraps a TLS acceptor.
    pub fn new(inner: A) -> Self {
        CertificateUserAcceptor { inner }
    }
}

impl<A, S> Accept<TcpStream, S> for CertificateUserAcceptor<A>
where
    A: Accept<TcpStream, S, Stream = TlsStream<TcpStream>> + Clone + Send + 'static,
    A::Future: Send + 'static,
    A::Service: Send + 'static,
    S: Send + 'static,
{
    type Stream = TlsStream<TcpStream>;
    type Service = axum::middleware::AddExtension<A::Service, CertificateUser>;
    type Future = Pin<Box<dyn Future<Output = io::Result<(Self::Stream, Self::Service)>> + Send>>;

    fn accept(&self, stream: TcpStream, service: S) -> Self::Future {
        let accepting = self.inner.accept(stream, service);
        Box::pin(async move {
            let (stream, service) = accepting.await?;
            let user = stream
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|chain| chain.first())
                .and_then(|leaf| user_of_certificate(leaf.as_ref()));
            Ok((stream, Extension(CertificateUser(user)).layer(service)))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{CertificateParams, DnType, KeyPair};

    #[test]
    fn a_certificate_names_its_user_and_groups() {
        let key = KeyPair::generate().expect("key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, "jane");
        params
            .distinguished_name
            .push(DnType::OrganizationName, "devs");
        let cert = params.self_signed(&key).expect("cert");
        assert_eq!(
            user_of_certificate(cert.der()),
            Some(UserInfo::new("jane", &["devs", SYSTEM_AUTHENTICATED]))
        );
        let mut nameless = CertificateParams::new(Vec::<String>::new()).expect("params");
        nameless.distinguished_name = rcgen::DistinguishedName::new();
        nameless
            .distinguished_name
            .push(DnType::OrganizationName, "devs");
        let cert = nameless.self_signed(&key).expect("cert");
        assert_eq!(user_of_certificate(cert.der()), None);
        assert_eq!(user_of_certificate(b"not a certificate"), None);
    }
}
