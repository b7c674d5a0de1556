//! Test support: a real distribution registry on a loopback port, and real OCI images built
//! here from a static busybox and files, pushed to it or written as archives.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use oci_client::client::{Certificate, CertificateEncoding, ClientConfig, ClientProtocol};
use oci_client::secrets::RegistryAuth;
use skiff_images::Digest;

/// A CA and a serving certificate it signed for 127.0.0.1: the CA's PEM, the certificate's
/// PEM and its key's PEM.
fn certificates() -> (String, String, String) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, SanType};
    let ca_key = KeyPair::generate().expect("CA key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "skiff-test-registry-ca");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key).expect("CA certificate");
    let issuer = Issuer::from_params(&ca_params, ca_key);
    let key = KeyPair::generate().expect("server key");
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("server params");
    params
        .subject_alt_names
        .push(SanType::IpAddress(std::net::IpAddr::V4(
            std::net::Ipv4Addr::LOCALHOST,
        )));
    let cert = params.signed_by(&key, &issuer).expect("server certificate");
    (ca_cert.pem(), cert.pem(), key.serialize_pem())
}

/// The static busybox the Debian `busybox-static` package installs.
pub const BUSYBOX: &str = "/bin/busybox";

/// A `docker-registry serve` process on a free loopback port, storing in a temporary
/// directory; stopped when dropped.
pub struct Registry {
    child: Child,
    storage: tempfile::TempDir,
    /// `127.0.0.1:PORT`.
    pub address: String,
    auth: RegistryAuth,
    /// The PEM of the CA that signed the registry's certificate, when it serves TLS.
    pub ca_pem: Option<String>,
}

/// The user of a registry started with [`Registry::start_with_basic_auth`].
pub const USER: &str = "skiff";
/// That user's password.
pub const PASSWORD: &str = "skiff-secret";
/// The bcrypt hash of [`PASSWORD`] (cost 4, to keep requests fast), for the htpasswd file.
const PASSWORD_BCRYPT: &str = "$2b$04$eChUvDK..Gfi2sw1QnPZ.e2fF8sxhw3CMLp6pUNY95iEglICokzTG";

impl Registry {
    /// Starts the registry and waits (bounded) until `/v2/` answers.
    pub fn start() -> Registry {
        Self::start_configured(false, false)
    }

    /// Starts a registry that requires [`USER`] and [`PASSWORD`] (HTTP basic auth).
    pub fn start_with_basic_auth() -> Registry {
        Self::start_configured(true, false)
    }

    /// Starts a registry serving HTTPS with a certificate for 127.0.0.1 signed by a CA made
    /// here (see [`Registry::ca_pem`]).
    pub fn start_with_tls() -> Registry {
        Self::start_configured(false, true)
    }

    fn start_configured(basic_auth: bool, tls: bool) -> Registry {
        let storage = tempfile::tempdir().expect("registry storage");
        let port = TcpListener::bind("127.0.0.1:0")
            .expect("free port")
            .local_addr()
            .unwrap()
            .port();
        let address = format!("127.0.0.1:{port}");
        let config = storage.path().join("config.yml");
        let mut text = format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {address}\n",
            storage.path().join("data").display()
        );
        let auth = if basic_auth {
            let htpasswd = storage.path().join("htpasswd");
            std::fs::write(&htpasswd, format!("{USER}:{PASSWORD_BCRYPT}\n")).expect("htpasswd");
            text.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: skiff-test\n    path: {}\n",
                htpasswd.display()
            ));
            RegistryAuth::Basic(USER.to_string(), PASSWORD.to_string())
        } else {
            RegistryAuth::Anonymous
        };
        let ca_pem = tls.then(|| {
            let (ca_pem, cert_pem, key_pem) = certificates();
            let cert = storage.path().join("server.pem");
            let key = storage.path().join("server-key.pem");
            std::fs::write(&cert, cert_pem).expect("server certificate");
            std::fs::write(&key, key_pem).expect("server key");
            text.push_str(&format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                cert.display(),
                key.display()
            ));
            ca_pem
        });
        std::fs::write(&config, text).expect("registry config");
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("docker-registry must be installed (Debian package docker-registry)");
        let mut registry = Registry {
            child,
            storage,
            address,
            auth,
            ca_pem,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            // Plain HTTP to a TLS port is answered 400, which says it is up all the same.
            let up = if registry.ca_pem.is_some() { 400 } else { 200 };
            if matches!(registry.get_status("/v2/"), Some(status) if status == up || status == 401)
            {
                return registry;
            }
            if let Ok(Some(status)) = registry.child.try_wait() {
                panic!("docker-registry exited early: {status}");
            }
            assert!(
                Instant::now() < deadline,
                "docker-registry did not answer on {} within 20s",
                registry.address
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn get_status(&self, path: &str) -> Option<u16> {
        let mut stream = TcpStream::connect(&self.address).ok()?;
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

    /// The file in the registry's storage holding the blob `digest`.
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

    /// An OCI client for this registry: plain HTTP, or HTTPS trusting its CA.
    pub fn client(&self) -> oci_client::Client {
        let _ = rustls::crypto::ring::default_provider().install_default();
        match &self.ca_pem {
            None => oci_client::Client::new(ClientConfig {
                protocol: ClientProtocol::HttpsExcept(vec![self.address.clone()]),
                ..ClientConfig::default()
            }),
            Some(ca_pem) => oci_client::Client::try_from(ClientConfig {
                protocol: ClientProtocol::Https,
                extra_root_certificates: vec![Certificate {
                    encoding: CertificateEncoding::Pem,
                    data: ca_pem.clone().into_bytes(),
                }],
                ..ClientConfig::default()
            })
            .expect("a client trusting the test CA"),
        }
    }

    /// A reference in this registry.
    pub fn reference(&self, repository: &str, tag: &str) -> oci_client::Reference {
        oci_client::Reference::with_tag(
            self.address.clone(),
            repository.to_string(),
            tag.to_string(),
        )
    }

    /// Pushes `image` as `repository:tag`; returns the manifest's digest.
    pub async fn push(&self, image: &TestImage, repository: &str, tag: &str) -> Digest {
        let client = self.client();
        let reference = self.reference(repository, tag);
        client.store_auth_if_needed(&self.address, &self.auth).await;
        for blob in image
            .layers
            .iter()
            .map(|l| &l.compressed)
            .chain(std::iter::once(&image.config))
        {
            client
                .push_blob(
                    &reference,
                    blob.clone(),
                    &Digest::sha256_of(blob).to_string(),
                )
                .await
                .expect("push blob");
        }
        let manifest = image.manifest();
        client
            .push_manifest_raw(
                &reference,
                manifest.clone(),
                oci_client::manifest::OCI_IMAGE_MEDIA_TYPE.parse().unwrap(),
            )
            .await
            .expect("push manifest");
        Digest::sha256_of(&manifest)
    }

    /// Pushes one image per `(architecture, image)` and an index of them as `repository:tag`;
    /// returns the index's digest.
    pub async fn push_index(
        &self,
        images: &[(&str, &TestImage)],
        repository: &str,
        tag: &str,
    ) -> Digest {
        let mut entries = Vec::new();
        for (architecture, image) in images {
            let digest = self
                .push(image, repository, &format!("{tag}-{architecture}"))
                .await;
            entries.push(serde_json::json!({
                "mediaType": oci_client::manifest::OCI_IMAGE_MEDIA_TYPE,
                "digest": digest.to_string(),
                "size": image.manifest().len(),
                "platform": {"os": "linux", "architecture": architecture},
            }));
        }
        let index = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": oci_client::manifest::OCI_IMAGE_INDEX_MEDIA_TYPE,
            "manifests": entries,
        }))
        .unwrap();
        self.client()
            .push_manifest_raw(
                &self.reference(repository, tag),
                index.clone(),
                oci_client::manifest::OCI_IMAGE_INDEX_MEDIA_TYPE
                    .parse()
                    .unwrap(),
            )
            .await
            .expect("push index");
        Digest::sha256_of(&index)
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One layer: its tar stream gzip-compressed, and the uncompressed stream's digest.
pub struct TestLayer {
    /// The blob as pushed.
    pub compressed: Vec<u8>,
    /// The diff ID.
    pub diff_id: Digest,
}

impl TestLayer {
    /// A layer of `(path, contents, mode)` files (parent directories included).
    pub fn of_files(files: &[(&str, Vec<u8>, u32)]) -> TestLayer {
        let mut builder = tar::Builder::new(Vec::new());
        let mut directories = std::collections::BTreeSet::new();
        for (path, contents, mode) in files {
            let mut parent = Path::new(path).parent();
            let mut missing = Vec::new();
            while let Some(dir) = parent.filter(|d| !d.as_os_str().is_empty()) {
                if directories.insert(dir.to_path_buf()) {
                    missing.push(dir.to_path_buf());
                }
                parent = dir.parent();
            }
            for dir in missing.into_iter().rev() {
                let mut header = header(tar::EntryType::Directory, 0o755, 0);
                builder
                    .append_data(&mut header, dir, std::io::empty())
                    .unwrap();
            }
            let mut header = header(tar::EntryType::Regular, *mode, contents.len() as u64);
            builder
                .append_data(&mut header, path, &contents[..])
                .unwrap();
        }
        let plain = builder.into_inner().unwrap();
        let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gzip.write_all(&plain).unwrap();
        TestLayer {
            compressed: gzip.finish().unwrap(),
            diff_id: Digest::sha256_of(&plain),
        }
    }

    /// The static busybox as `bin/busybox`, with `bin/sh` linked to it.
    pub fn busybox() -> TestLayer {
        let binary = std::fs::read(BUSYBOX)
            .expect("busybox must be installed (Debian package busybox-static)");
        TestLayer::of_files(&[("bin/busybox", binary, 0o755)])
    }
}

fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut header = tar::Header::new_ustar();
    header.set_entry_type(kind);
    header.set_mode(mode);
    header.set_size(size);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(1_700_000_000);
    header
}

/// An OCI image: layers and a config naming their diff IDs.
pub struct TestImage {
    /// Bottom layer first.
    pub layers: Vec<TestLayer>,
    /// The config blob.
    pub config: Vec<u8>,
}

impl TestImage {
    /// An image of `layers` for linux/`architecture` running `entrypoint`.
    pub fn new(layers: Vec<TestLayer>, architecture: &str, entrypoint: &[&str]) -> TestImage {
        let config = serde_json::to_vec(&serde_json::json!({
            "architecture": architecture,
            "os": "linux",
            "config": {"Entrypoint": entrypoint},
            "rootfs": {"type": "layers", "diff_ids": layers.iter().map(|l| l.diff_id.to_string()).collect::<Vec<_>>()},
        }))
        .unwrap();
        TestImage { layers, config }
    }

    /// The image manifest's bytes.
    pub fn manifest(&self) -> Vec<u8> {
        let descriptor = |media_type: &str, bytes: &[u8]| serde_json::json!({"mediaType": media_type, "digest": Digest::sha256_of(bytes).to_string(), "size": bytes.len()});
        serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": oci_client::manifest::OCI_IMAGE_MEDIA_TYPE,
            "config": descriptor(oci_client::manifest::IMAGE_CONFIG_MEDIA_TYPE, &self.config),
            "layers": self.layers.iter().map(|l| descriptor(oci_client::manifest::IMAGE_LAYER_GZIP_MEDIA_TYPE, &l.compressed)).collect::<Vec<_>>(),
        }))
        .unwrap()
    }

    /// The compressed size of config and layers.
    pub fn size(&self) -> u64 {
        (self.config.len()
            + self
                .layers
                .iter()
                .map(|l| l.compressed.len())
                .sum::<usize>()) as u64
    }

    /// Writes the image as a `docker save` archive naming it `repo_tags`.
    pub fn write_docker_save(&self, path: &Path, repo_tags: &[&str]) {
        self.write_docker_save_compressed(path, repo_tags, Compression::None)
    }

    /// The same, with the whole archive compressed.
    pub fn write_docker_save_compressed(
        &self,
        path: &Path,
        repo_tags: &[&str],
        compression: Compression,
    ) {
        let mut builder = tar::Builder::new(Vec::new());
        let config_name = format!("{}.json", Digest::sha256_of(&self.config).hex());
        append(&mut builder, &config_name, &self.config);
        let mut layer_names = Vec::new();
        for (i, layer) in self.layers.iter().enumerate() {
            // docker save writes uncompressed layers; gzip ones are accepted too.
            let name = format!("layer{i}/layer.tar");
            let mut plain = Vec::new();
            flate2::read::GzDecoder::new(&layer.compressed[..])
                .read_to_end(&mut plain)
                .unwrap();
            append(&mut builder, &name, &plain);
            layer_names.push(name);
        }
        let manifest = serde_json::to_vec(&serde_json::json!([{"Config": config_name, "RepoTags": repo_tags, "Layers": layer_names}])).unwrap();
        append(&mut builder, "manifest.json", &manifest);
        std::fs::write(path, compression.apply(builder.into_inner().unwrap())).unwrap();
    }

    /// Writes the image as an OCI image layout archive named `name`.
    pub fn write_oci_archive(&self, path: &Path, name: &str, compression: Compression) {
        let mut builder = tar::Builder::new(Vec::new());
        append(
            &mut builder,
            "oci-layout",
            br#"{"imageLayoutVersion":"1.0.0"}"#,
        );
        let manifest = self.manifest();
        for blob in self
            .layers
            .iter()
            .map(|l| &l.compressed)
            .chain([&self.config, &manifest])
        {
            append(
                &mut builder,
                &format!("blobs/sha256/{}", Digest::sha256_of(blob).hex()),
                blob,
            );
        }
        let index = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "manifests": [{
                "mediaType": oci_client::manifest::OCI_IMAGE_MEDIA_TYPE,
                "digest": Digest::sha256_of(&manifest).to_string(),
                "size": manifest.len(),
                "annotations": {"io.containerd.image.name": name, "org.opencontainers.image.ref.name": name.rsplit(':').next().unwrap()},
            }],
        }))
        .unwrap();
        append(&mut builder, "index.json", &index);
        let bytes = builder.into_inner().unwrap();
        let bytes = compression.apply(bytes);
        std::fs::write(path, bytes).unwrap();
    }
}

/// How an archive file is compressed.
#[derive(Clone, Copy, Debug)]
pub enum Compression {
    /// A plain `.tar`.
    None,
    /// `.tar.gz`.
    Gzip,
    /// `.tar.zst`.
    Zstd,
}

impl Compression {
    fn apply(self, bytes: Vec<u8>) -> Vec<u8> {
        match self {
            Compression::None => bytes,
            Compression::Gzip => {
                let mut encoder =
                    flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                encoder.write_all(&bytes).unwrap();
                encoder.finish().unwrap()
            }
            Compression::Zstd => ruzstd::encoding::compress_to_vec(
                &bytes[..],
                ruzstd::encoding::CompressionLevel::Fastest,
            ),
        }
    }
}

fn append(builder: &mut tar::Builder<Vec<u8>>, name: &str, bytes: &[u8]) {
    let mut header = header(tar::EntryType::Regular, 0o644, bytes.len() as u64);
    builder.append_data(&mut header, name, bytes).unwrap();
}
