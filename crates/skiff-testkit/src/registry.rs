//! A real distribution registry for tests: Debian's `docker-registry` (the CNCF distribution
//! registry) on a free loopback port with a temporary storage directory, plain HTTP or TLS
//! with a certificate from a CA made here, with or without htpasswd basic auth; stopped and
//! its storage removed when dropped.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use skiff_images::build::{BuiltImage, ImageIndex, PushTarget};
use skiff_images::Digest;

use crate::images::{built, TestImage};

/// The user of a registry started with basic auth.
pub const USER: &str = "skiff";
/// That user's password.
pub const PASSWORD: &str = "skiff-secret";
/// The bcrypt hash of [`PASSWORD`] at cost 4 (fast to check), for the htpasswd file.
const PASSWORD_BCRYPT: &str = "$2b$04$eChUvDK..Gfi2sw1QnPZ.e2fF8sxhw3CMLp6pUNY95iEglICokzTG";

/// How long the registry may take to answer after it is started.
const START_DEADLINE: Duration = Duration::from_secs(20);

/// How a registry is started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RegistryOptions {
    /// Require [`USER`] and [`PASSWORD`] (HTTP basic auth through an htpasswd file).
    pub basic_auth: bool,
    /// Serve HTTPS with a certificate for 127.0.0.1 signed by a CA made for this registry.
    pub tls: bool,
}

/// A running `docker-registry serve`.
pub struct Registry {
    child: Child,
    storage: tempfile::TempDir,
    /// `127.0.0.1:PORT`.
    pub address: String,
    /// The PEM of the CA that signed the registry's certificate, when it serves TLS.
    pub ca_pem: Option<String>,
    options: RegistryOptions,
}

impl Registry {
    /// A plain-HTTP registry without auth.
    pub fn start() -> Registry {
        Self::start_with(RegistryOptions::default())
    }

    /// A plain-HTTP registry requiring [`USER`] and [`PASSWORD`].
    pub fn start_with_basic_auth() -> Registry {
        Self::start_with(RegistryOptions {
            basic_auth: true,
            tls: false,
        })
    }

    /// A registry serving HTTPS (see [`Registry::ca_pem`] and [`Registry::ca_file`]).
    pub fn start_with_tls() -> Registry {
        Self::start_with(RegistryOptions {
            basic_auth: false,
            tls: true,
        })
    }

    /// Starts `docker-registry` as `options` say and waits (bounded) until `/v2/` answers.
    pub fn start_with(options: RegistryOptions) -> Registry {
        let storage = tempfile::Builder::new()
            .prefix("skiff-test-registry-")
            .tempdir()
            .unwrap_or_else(|e| panic!("creating the registry's storage: {e}"));
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .unwrap_or_else(|e| panic!("finding a free loopback port: {e}"))
            .port();
        let address = format!("127.0.0.1:{port}");
        let mut config = format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {address}\n",
            storage.path().join("data").display()
        );
        let ca_pem = options.tls.then(|| {
            let (ca_pem, cert_pem, key_pem) = certificates();
            let cert = storage.path().join("server.pem");
            let key = storage.path().join("server-key.pem");
            write(&cert, &cert_pem);
            write(&key, &key_pem);
            write(&storage.path().join("ca.pem"), &ca_pem);
            config.push_str(&format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                cert.display(),
                key.display()
            ));
            ca_pem
        });
        if options.basic_auth {
            let htpasswd = storage.path().join("htpasswd");
            write(&htpasswd, &format!("{USER}:{PASSWORD_BCRYPT}\n"));
            config.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: skiff-test\n    path: {}\n",
                htpasswd.display()
            ));
        }
        let config_path = storage.path().join("config.yml");
        write(&config_path, &config);
        let log = std::fs::File::create(storage.path().join("registry.log"))
            .unwrap_or_else(|e| panic!("creating the registry's log: {e}"));
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("starting docker-registry: {e} (the tests need Debian's docker-registry package)")
            });
        let mut registry = Registry {
            child,
            storage,
            address,
            ca_pem,
            options,
        };
        registry.wait_until_answering();
        registry
    }

    fn wait_until_answering(&mut self) {
        let started = Instant::now();
        loop {
            // Plain HTTP to a TLS port is answered 400, which says it listens all the same.
            let up = if self.options.tls { 400 } else { 200 };
            if matches!(self.status_of("/v2/"), Some(status) if status == up || status == 401) {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "docker-registry exited early ({status}); its log:\n{}",
                    self.log()
                );
            }
            assert!(
                started.elapsed() < START_DEADLINE,
                "docker-registry did not answer on {} within {START_DEADLINE:?}; its log:\n{}",
                self.address,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// What the registry has logged.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.storage.path().join("registry.log")).unwrap_or_default()
    }

    /// The HTTP status of a plain `GET path`, or `None` when nothing answers.
    fn status_of(&self, path: &str) -> Option<u16> {
        let mut stream = TcpStream::connect(&self.address).ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
        write!(
            stream,
            "GET {path} HTTP/1.0\r\nHost: {}\r\n\r\n",
            self.address
        )
        .ok()?;
        let mut response = String::new();
        stream.read_to_string(&mut response).ok()?;
        response.split_whitespace().nth(1)?.parse().ok()
    }

    /// The CA certificate file (PEM) of a TLS registry, for a registries file's `ca_file`.
    pub fn ca_file(&self) -> Option<PathBuf> {
        self.options.tls.then(|| self.storage.path().join("ca.pem"))
    }

    /// The file in the registry's storage holding the blob `digest`, to tamper with.
    pub fn blob_file(&self, digest: &Digest) -> PathBuf {
        let hex = digest.hex();
        self.storage
            .path()
            .join("data/docker/registry/v2/blobs")
            .join(digest.algorithm_name())
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }

    /// How to push here: the right protocol, CA and credentials.
    pub fn push_target(&self) -> PushTarget {
        PushTarget {
            registry: self.address.clone(),
            plain_http: !self.options.tls,
            ca_pem: self.ca_pem.clone(),
            credentials: self
                .options
                .basic_auth
                .then(|| (USER.to_string(), PASSWORD.to_string())),
        }
    }

    /// A registries file (k3s's `registries.yaml` shape, written as JSON, which YAML reads)
    /// reaching this registry: over plain HTTP, or over HTTPS trusting its CA file; with its
    /// credentials when `with_credentials` (else a pull must bring its own).
    pub fn registries_file(&self, with_credentials: bool) -> String {
        let scheme = if self.options.tls { "https" } else { "http" };
        let mut host = serde_json::Map::new();
        if let Some(ca_file) = self.ca_file() {
            host.insert(
                "tls".into(),
                serde_json::json!({"ca_file": ca_file.to_string_lossy()}),
            );
        }
        if with_credentials && self.options.basic_auth {
            host.insert(
                "auth".into(),
                serde_json::json!({"username": USER, "password": PASSWORD}),
            );
        }
        let file = serde_json::json!({
            "mirrors": {&self.address: {"endpoint": [format!("{scheme}://{}", self.address)]}},
            "configs": {&self.address: host},
        });
        serde_json::to_string_pretty(&file).unwrap_or_else(|e| panic!("{e}"))
    }

    /// The reference `127.0.0.1:PORT/<repository>:<tag>` of an image in this registry.
    pub fn image_name(&self, repository: &str, tag: &str) -> String {
        format!("{}/{repository}:{tag}", self.address)
    }

    /// Pushes a test image as `repository:tag` and returns the manifest's digest; for code
    /// outside an async runtime.
    pub fn push(&self, image: &TestImage, repository: &str, tag: &str) -> Digest {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("starting a runtime to push: {e}"));
        runtime.block_on(self.push_async(image, repository, tag))
    }

    /// Pushes a test image as `repository:tag` and returns the manifest's digest.
    pub async fn push_async(&self, image: &TestImage, repository: &str, tag: &str) -> Digest {
        self.push_built(&built(image), repository, tag).await
    }

    /// Pushes any built image as `repository:tag` and returns the manifest's digest.
    pub async fn push_built(&self, image: &BuiltImage, repository: &str, tag: &str) -> Digest {
        image
            .push(&self.push_target(), repository, tag)
            .await
            .unwrap_or_else(|e| panic!("pushing {repository}:{tag}: {e}"))
    }

    /// Pushes `images` (one per platform) and an index of them as `repository:tag`; returns
    /// the index's digest.
    pub async fn push_index(&self, images: &[&BuiltImage], repository: &str, tag: &str) -> Digest {
        ImageIndex::push(images, &self.push_target(), repository, tag)
            .await
            .unwrap_or_else(|e| panic!("pushing the index {repository}:{tag}: {e}"))
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn write(path: &std::path::Path, text: &str) {
    std::fs::write(path, text).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
}

/// A CA and a serving certificate it signed for 127.0.0.1: the CA's PEM, the certificate's
/// PEM and its key's PEM.
fn certificates() -> (String, String, String) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, SanType};
    let ca_key = KeyPair::generate().expect("a CA key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "skiff-test-registry-ca");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key).expect("a CA certificate");
    let issuer = Issuer::from_params(&ca_params, ca_key);
    let key = KeyPair::generate().expect("a server key");
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("server parameters");
    params
        .subject_alt_names
        .push(SanType::IpAddress(std::net::IpAddr::V4(
            std::net::Ipv4Addr::LOCALHOST,
        )));
    let cert = params
        .signed_by(&key, &issuer)
        .expect("a server certificate");
    (ca_cert.pem(), cert.pem(), key.serialize_pem())
}
