//! Pulls from a real distribution registry on loopback (`docker-registry`), of images built
//! and pushed by the test support.

mod support;

use std::fs;

use skiff_images::pull::Platform;
use skiff_images::registries::RegistriesFile;
use skiff_images::{ContentStore, Digest, Keyring, Puller, Reference, RegistryConfig};
use support::{Registry, TestImage, TestLayer};

fn app_image(version: &str) -> TestImage {
    let page = TestLayer::of_files(&[(
        "www/index.html",
        format!("version {version}\n").into_bytes(),
        0o644,
    )]);
    TestImage::new(
        vec![TestLayer::busybox(), page],
        &Platform::current().architecture,
        &["/bin/busybox", "httpd", "-f"],
    )
}

fn puller(registry: &Registry, dir: &std::path::Path) -> Puller {
    let store = ContentStore::open(dir).expect("store");
    let config = RegistryConfig {
        plain_http: vec![registry.address.clone()],
        ..RegistryConfig::default()
    };
    Puller::new(store, config)
}

fn snapshot_file(store: &ContentStore, diff_id: &Digest, path: &str) -> String {
    fs::read_to_string(store.snapshot_path(diff_id).join(path))
        .unwrap_or_else(|e| panic!("{path} in snapshot {diff_id}: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_by_tag_stores_verified_blobs_and_unpacks_layers() {
    let registry = Registry::start();
    let image = app_image("2.2");
    let manifest = registry.push(&image, "test/httpd", "2.2").await;
    let dir = tempfile::tempdir().unwrap();
    let puller = puller(&registry, dir.path());
    let reference = Reference::parse(&format!("{}/test/httpd:2.2", registry.address)).unwrap();
    let record = puller.pull(&reference).await.expect("pull by tag");
    assert_eq!(record.name, format!("{}/test/httpd", registry.address));
    assert_eq!(record.tag.as_deref(), Some("2.2"));
    assert_eq!(record.digest, manifest.to_string());
    assert_eq!(record.size, image.size());
    let store = ContentStore::open(dir.path()).unwrap();
    for blob in &record.blobs {
        assert!(
            store.contains(&Digest::parse(blob).unwrap()),
            "blob {blob} stored"
        );
    }
    assert_eq!(
        snapshot_file(&store, &image.layers[1].diff_id, "www/index.html"),
        "version 2.2\n"
    );
    let busybox = store
        .snapshot_path(&image.layers[0].diff_id)
        .join("bin/busybox");
    assert_eq!(
        fs::read(busybox).unwrap(),
        fs::read(support::BUSYBOX).unwrap()
    );
    assert_eq!(store.images().unwrap(), vec![record]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_by_digest_pins_the_manifest() {
    let registry = Registry::start();
    let old = app_image("1");
    let old_digest = registry.push(&old, "test/app", "v").await;
    // The tag moves on; the digest still names the first image.
    registry.push(&app_image("2"), "test/app", "v").await;
    let dir = tempfile::tempdir().unwrap();
    let puller = puller(&registry, dir.path());
    let reference =
        Reference::parse(&format!("{}/test/app@{old_digest}", registry.address)).unwrap();
    let record = puller.pull(&reference).await.expect("pull by digest");
    assert_eq!(record.digest, old_digest.to_string());
    assert_eq!(record.tag, None);
    let store = ContentStore::open(dir.path()).unwrap();
    assert_eq!(
        snapshot_file(&store, &old.layers[1].diff_id, "www/index.html"),
        "version 1\n"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_multi_arch_index_resolves_to_this_nodes_platform() {
    let registry = Registry::start();
    let here = Platform::current().architecture;
    let other = if here == "amd64" { "arm64" } else { "amd64" };
    let image_for = |arch: &str| {
        TestImage::new(
            vec![TestLayer::of_files(&[(
                "arch",
                arch.as_bytes().to_vec(),
                0o644,
            )])],
            arch,
            &["/bin/true"],
        )
    };
    let (native, foreign) = (image_for(&here), image_for(other));
    let index = registry
        .push_index(&[(other, &foreign), (&here, &native)], "test/multi", "1")
        .await;
    let dir = tempfile::tempdir().unwrap();
    let puller = puller(&registry, dir.path());
    let reference = Reference::parse(&format!("{}/test/multi:1", registry.address)).unwrap();
    let record = puller.pull(&reference).await.expect("pull index");
    assert_eq!(
        record.digest,
        index.to_string(),
        "the image is known by its index digest"
    );
    assert_eq!(
        record.manifest,
        Digest::sha256_of(&native.manifest()).to_string()
    );
    let store = ContentStore::open(dir.path()).unwrap();
    assert_eq!(
        snapshot_file(&store, &native.layers[0].diff_id, "arch"),
        here
    );
    assert!(
        !store.snapshot_path(&foreign.layers[0].diff_id).exists(),
        "the other platform is not unpacked"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_tag_fails_with_the_registrys_error() {
    let registry = Registry::start();
    registry.push(&app_image("1"), "test/app", "1").await;
    let dir = tempfile::tempdir().unwrap();
    let puller = puller(&registry, dir.path());
    let reference = Reference::parse(&format!("{}/test/app:missing", registry.address)).unwrap();
    let error = puller
        .pull(&reference)
        .await
        .expect_err("a missing tag fails")
        .to_string();
    assert!(
        error.contains("manifest unknown"),
        "the registry's error is kept: {error}"
    );
    assert!(ContentStore::open(dir.path())
        .unwrap()
        .images()
        .unwrap()
        .is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupted_blob_is_refused_and_nothing_is_recorded() {
    let registry = Registry::start();
    let image = app_image("1");
    registry.push(&image, "test/app", "1").await;
    let layer = Digest::sha256_of(&image.layers[1].compressed);
    let file = registry.blob_file(&layer);
    let mut bytes = fs::read(&file).expect("the registry stores the blob");
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    fs::write(&file, bytes).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let puller = puller(&registry, dir.path());
    let reference = Reference::parse(&format!("{}/test/app:1", registry.address)).unwrap();
    let error = puller
        .pull(&reference)
        .await
        .expect_err("a corrupted blob fails")
        .to_string();
    assert!(
        error.contains(&layer.to_string()) && error.contains("digest"),
        "the error names the blob and the digest: {error}"
    );
    let store = ContentStore::open(dir.path()).unwrap();
    assert!(!store.contains(&layer), "the corrupted blob is not stored");
    assert!(store.images().unwrap().is_empty(), "no image is recorded");
    assert_eq!(
        fs::read_dir(dir.path().join("ingest")).unwrap().count(),
        0,
        "no partial blob is left"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_pulls_of_one_image_download_each_blob_once() {
    let registry = Registry::start();
    let image = app_image("1");
    registry.push(&image, "test/app", "1").await;
    let dir = tempfile::tempdir().unwrap();
    let puller = puller(&registry, dir.path());
    let reference = Reference::parse(&format!("{}/test/app:1", registry.address)).unwrap();
    let pulls: Vec<_> = (0..4)
        .map(|_| {
            let (puller, reference) = (puller.clone(), reference.clone());
            tokio::spawn(async move { puller.pull(&reference).await })
        })
        .collect();
    for pull in pulls {
        pull.await.unwrap().expect("every pull succeeds");
    }
    let blobs = 1 + image.layers.len() as u64;
    assert_eq!(
        puller.downloads(),
        blobs,
        "config and layers are each downloaded once"
    );
    assert_eq!(
        ContentStore::open(dir.path())
            .unwrap()
            .images()
            .unwrap()
            .len(),
        1
    );
}

/// Bytes that gzip cannot shrink, so a layer of them takes a while to download.
fn incompressible(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(2).wrapping_add(1);
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state.to_le_bytes()[0]
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pulls_through_separate_store_handles_download_each_blob_once() {
    let registry = Registry::start();
    let layers = (0..3)
        .map(|i| TestLayer::of_files(&[("data/blob", incompressible(8 << 20, i + 1), 0o644)]))
        .collect();
    let image = TestImage::new(layers, &Platform::current().architecture, &["/bin/sh"]);
    registry.push(&image, "test/big", "1").await;
    let dir = tempfile::tempdir().unwrap();
    // Two handles and two pullers share nothing in memory, as two processes would not.
    let first = puller(&registry, dir.path());
    let second = puller(&registry, dir.path());
    let reference = Reference::parse(&format!("{}/test/big:1", registry.address)).unwrap();
    let (a, b) = tokio::join!(first.pull(&reference), second.pull(&reference));
    let (a, b) = (a.expect("first pull"), b.expect("second pull"));
    assert_eq!(a, b, "both pulls record the same image");
    let blobs = 1 + image.layers.len() as u64;
    assert_eq!(
        first.downloads() + second.downloads(),
        blobs,
        "config and layers are each downloaded once between the two pullers \
         (first {}, second {})",
        first.downloads(),
        second.downloads()
    );
    let store = ContentStore::open(dir.path()).unwrap();
    for blob in &a.blobs {
        assert!(
            store.contains(&Digest::parse(blob).unwrap()),
            "{blob} stored"
        );
    }
    let ingest: Vec<_> = fs::read_dir(dir.path().join("ingest"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(
        ingest.is_empty(),
        "no lock or partial file is left: {ingest:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_auth_credentials_are_presented_and_required() {
    let registry = Registry::start_with_basic_auth();
    let image = app_image("private");
    let digest = registry.push(&image, "team/private", "1").await;
    let reference = Reference::parse(&format!("{}/team/private:1", registry.address)).unwrap();

    let anonymous_dir = tempfile::tempdir().unwrap();
    let error = puller(&registry, anonymous_dir.path())
        .pull(&reference)
        .await
        .expect_err("an anonymous pull is refused")
        .to_string();
    assert!(
        error.starts_with("unauthorized: ") && error.contains("/v2/team/private/manifests/1"),
        "the refusal names the request: {error}"
    );

    let dir = tempfile::tempdir().unwrap();
    let store = ContentStore::open(dir.path()).unwrap();
    let mut config = RegistryConfig {
        plain_http: vec![registry.address.clone()],
        ..RegistryConfig::default()
    };
    config.credentials.insert(
        registry.address.clone(),
        (support::USER.to_string(), support::PASSWORD.to_string()),
    );
    let record = Puller::new(store, config)
        .pull(&reference)
        .await
        .expect("pull with credentials");
    assert_eq!(record.digest, digest.to_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_from_a_pull_secret_are_presented() {
    let registry = Registry::start_with_basic_auth();
    let image = app_image("secret");
    let digest = registry.push(&image, "team/secret", "1").await;
    let reference = Reference::parse(&format!("{}/team/secret:1", registry.address)).unwrap();
    let secret = serde_json::json!({"auths": {
        format!("http://{}/team", registry.address): {
            "username": support::USER,
            "password": support::PASSWORD,
        },
        "https://index.docker.io/v1/": {"username": "hub", "password": "wrong"},
    }});
    let keyring = Keyring::from_docker_config_json(&serde_json::to_vec(&secret).unwrap())
        .expect("a valid .dockerconfigjson");
    let found = keyring.lookup(&reference);
    assert_eq!(
        found.len(),
        1,
        "only the registry's own entry applies: {found:?}"
    );

    // One puller serves every pod: an anonymous attempt first must not stick to the registry.
    let dir = tempfile::tempdir().unwrap();
    let puller = puller(&registry, dir.path());
    let error = puller
        .pull(&reference)
        .await
        .expect_err("an anonymous pull is refused")
        .to_string();
    assert!(error.starts_with("unauthorized: "), "{error}");
    let record = puller
        .pull_with_credentials(&reference, found.first())
        .await
        .expect("pull with the Secret's credentials");
    assert_eq!(record.digest, digest.to_string());
}

/// A loopback address nothing listens on: connections to it are refused at once.
fn closed_loopback_address() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("free port");
    let address = listener.local_addr().unwrap().to_string();
    drop(listener);
    address
}

fn registries(value: serde_json::Value) -> RegistryConfig {
    serde_json::from_value::<RegistriesFile>(value)
        .expect("registries file shape")
        .to_config()
        .expect("registries file")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_registry_is_trusted_through_its_ca_file() {
    let registry = Registry::start_with_tls();
    let image = app_image("tls");
    let digest = registry.push(&image, "team/tls", "1").await;
    let reference = Reference::parse(&format!("{}/team/tls:1", registry.address)).unwrap();

    let untrusting_dir = tempfile::tempdir().unwrap();
    let store = ContentStore::open(untrusting_dir.path()).unwrap();
    let error = Puller::new(store, RegistryConfig::default())
        .pull(&reference)
        .await
        .expect_err("a certificate from an unknown CA is refused")
        .to_string();
    assert!(
        error.contains("certificate") && error.contains("UnknownIssuer"),
        "the error says the certificate is not trusted: {error}"
    );

    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("registry-ca.pem");
    fs::write(&ca_file, registry.ca_pem.as_ref().unwrap()).unwrap();
    let config = registries(serde_json::json!({
        "configs": {registry.address.clone(): {"tls": {"ca_file": ca_file}}},
    }));
    let store = ContentStore::open(dir.path().join("store")).unwrap();
    let record = Puller::new(store, config)
        .pull(&reference)
        .await
        .expect("pull trusting the CA file");
    assert_eq!(record.digest, digest.to_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mirror_serves_docker_hub_images_after_a_dead_one_with_rewrites() {
    let registry = Registry::start();
    let image = app_image("mirrored");
    let digest = registry.push(&image, "mirrored/app", "1").await;
    let dead = closed_loopback_address();
    let mut config = registries(serde_json::json!({
        "mirrors": {"docker.io": {
            "endpoint": [format!("http://{dead}"), format!("http://{}", registry.address)],
            "rewrite": {"^library/(.*)": "mirrored/$1"},
        }},
    }));
    // Docker Hub itself must never be contacted from a test, even if the mirror failed.
    config.disable_default_endpoint = true;
    let dir = tempfile::tempdir().unwrap();
    let puller = Puller::new(ContentStore::open(dir.path()).unwrap(), config);
    let record = puller
        .pull(&Reference::parse("docker.io/library/app:1").unwrap())
        .await
        .expect("pull through the mirror");
    assert_eq!(record.name, "docker.io/library/app");
    assert_eq!(record.digest, digest.to_string());
    assert_eq!(puller.attempted_hosts(), [dead, registry.address.clone()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_registry_itself_is_tried_after_its_mirrors() {
    let registry = Registry::start();
    let image = app_image("default");
    let digest = registry.push(&image, "team/app", "1").await;
    let dead = closed_loopback_address();
    let mut config = registries(serde_json::json!({
        "mirrors": {registry.address.clone(): {"endpoint": [format!("http://{dead}")]}},
    }));
    config.plain_http.push(registry.address.clone());
    let dir = tempfile::tempdir().unwrap();
    let puller = Puller::new(ContentStore::open(dir.path()).unwrap(), config);
    let reference = Reference::parse(&format!("{}/team/app:1", registry.address)).unwrap();
    let record = puller
        .pull(&reference)
        .await
        .expect("pull from the registry");
    assert_eq!(record.digest, digest.to_string());
    assert_eq!(puller.attempted_hosts(), [dead, registry.address.clone()]);
}
