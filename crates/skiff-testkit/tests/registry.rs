//! The registry launcher: test images pushed to a real `docker-registry` pull back whole
//! through Skiff's puller, over plain HTTP, with basic auth, and with TLS and basic auth.

use std::collections::HashMap;

use skiff_images::build::{ImageBuilder, PushTarget};
use skiff_images::pull::Platform;
use skiff_images::registries::RegistriesFile;
use skiff_images::{ContentStore, Digest, Puller, Reference, RegistryConfig};
use skiff_testkit::images;
use skiff_testkit::registry::{Registry, RegistryOptions, PASSWORD, USER};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Pulls `name` from `registry` into a fresh store and returns the index page the httpd
/// image serves, read from the pulled layers, and the pulled digest.
fn pull_page(registry: &Registry, name: &str, config: RegistryConfig) -> (String, String) {
    let dir = tempfile::tempdir().unwrap();
    let store = ContentStore::open(dir.path()).unwrap();
    let puller = Puller::new(store.clone(), config);
    let reference = Reference::parse(name).unwrap();
    let record = runtime()
        .block_on(puller.pull(&reference))
        .unwrap_or_else(|e| panic!("pulling {name}: {e}; registry log:\n{}", registry.log()));
    let site = store.snapshot_path(&Digest::parse(record.diff_ids.last().unwrap()).unwrap());
    let page = std::fs::read_to_string(site.join("www/index.html")).unwrap();
    (page, record.digest)
}

#[test]
fn an_image_pushed_over_plain_http_pulls_back_whole() {
    let registry = Registry::start();
    let digest = registry.push(&images::httpd("2.2"), "test/httpd", "2.2");
    let config = RegistryConfig {
        plain_http: vec![registry.address.clone()],
        ..RegistryConfig::default()
    };
    let name = registry.image_name("test/httpd", "2.2");
    let (page, pulled) = pull_page(&registry, &name, config);
    assert_eq!(page, "version=2.2\n");
    assert_eq!(pulled, digest.to_string());
    assert!(
        registry.blob_file(&digest).is_file(),
        "the manifest is stored in the registry's own storage"
    );
}

#[test]
fn pushing_without_credentials_to_an_auth_registry_is_refused() {
    let registry = Registry::start_with_basic_auth();
    let image = images::shell();
    let anonymous = PushTarget {
        credentials: None,
        ..registry.push_target()
    };
    let error = runtime()
        .block_on(image.build().push(&anonymous, "test/shell", "1"))
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("401") || error.to_lowercase().contains("unauthorized"),
        "{error}"
    );
    let digest = registry.push(&image, "test/shell", "1");
    let config = RegistryConfig {
        plain_http: vec![registry.address.clone()],
        credentials: HashMap::from([(
            registry.address.clone(),
            (USER.to_string(), PASSWORD.to_string()),
        )]),
        ..RegistryConfig::default()
    };
    let dir = tempfile::tempdir().unwrap();
    let puller = Puller::new(ContentStore::open(dir.path()).unwrap(), config);
    let reference = Reference::parse(&registry.image_name("test/shell", "1")).unwrap();
    let record = runtime().block_on(puller.pull(&reference)).unwrap();
    assert_eq!(record.digest, digest.to_string());
}

#[test]
fn a_tls_registry_with_basic_auth_takes_pushes_and_pulls_trusting_its_ca() {
    let registry = Registry::start_with(RegistryOptions {
        basic_auth: true,
        tls: true,
    });
    let ca_file = registry.ca_file().expect("a TLS registry has a CA file");
    let ca_pem = std::fs::read(&ca_file).unwrap();
    assert_eq!(
        Some(String::from_utf8(ca_pem.clone()).unwrap()),
        registry.ca_pem
    );
    let digest = registry.push(&images::httpd("2.4"), "test/httpd", "2.4");
    let file: RegistriesFile = serde_json::from_str(&registry.registries_file(true)).unwrap();
    let config = file.to_config().unwrap();
    assert_eq!(
        config.tls[&registry.address].ca_pem.as_deref(),
        Some(&ca_pem[..])
    );
    let name = registry.image_name("test/httpd", "2.4");
    let (page, pulled) = pull_page(&registry, &name, config);
    assert_eq!(page, "version=2.4\n");
    assert_eq!(pulled, digest.to_string());
}

#[test]
fn a_multi_platform_index_pulls_the_image_of_this_platform() {
    let registry = Registry::start();
    let here = images::httpd("2.2").build();
    let elsewhere = ImageBuilder::new()
        .layer(here.layers[0].clone())
        .platform(Platform {
            os: "linux".into(),
            architecture: "s390x-elsewhere".into(),
            variant: None,
        })
        .build();
    let index = runtime().block_on(registry.push_index(&[&elsewhere, &here], "test/multi", "1"));
    let dir = tempfile::tempdir().unwrap();
    let store = ContentStore::open(dir.path()).unwrap();
    let config = RegistryConfig {
        plain_http: vec![registry.address.clone()],
        ..RegistryConfig::default()
    };
    let puller = Puller::new(store, config);
    let reference = Reference::parse(&registry.image_name("test/multi", "1")).unwrap();
    let record = runtime().block_on(puller.pull(&reference)).unwrap();
    assert_eq!(
        record.digest,
        index.to_string(),
        "the name resolves to the index"
    );
    assert_eq!(
        record.manifest,
        here.manifest_digest.to_string(),
        "the index resolves to this platform's image"
    );
}

#[test]
fn the_registries_file_reaches_a_plain_registry_and_leaves_credentials_out_on_request() {
    let registry = Registry::start_with_basic_auth();
    registry.push(&images::httpd("2.2"), "test/httpd", "2.2");
    let name = registry.image_name("test/httpd", "2.2");
    let with: RegistriesFile = serde_json::from_str(&registry.registries_file(true)).unwrap();
    let (page, _) = pull_page(&registry, &name, with.to_config().unwrap());
    assert_eq!(page, "version=2.2\n");
    let without: RegistriesFile = serde_json::from_str(&registry.registries_file(false)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let puller = Puller::new(
        ContentStore::open(dir.path()).unwrap(),
        without.to_config().unwrap(),
    );
    let error = runtime()
        .block_on(puller.pull(&Reference::parse(&name).unwrap()))
        .unwrap_err()
        .to_string();
    assert!(error.contains("unauthorized"), "{error}");
}
