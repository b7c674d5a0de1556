//! Pull throughput from a real distribution registry on loopback (`docker-registry`): an
//! image of five layers of incompressible files (about 50 MB compressed) pulled into an empty
//! content store (cold: download, verify, store and unpack every layer) and again into the
//! store that holds it (warm: the manifest is fetched, every blob and snapshot is found).
//!
//! Run with `cargo bench -p skiff-images --bench pull`; `-- --runs N` sets how many cold
//! pulls are timed (3 by default). Registry and puller share the machine's cores, so the
//! figures are a floor for what a separate registry would allow.

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use rand::RngCore;
use skiff_images::pull::Platform;
use skiff_images::{ContentStore, Puller, Reference, RegistryConfig};
use support::{Registry, TestImage, TestLayer};

/// Layers in the image, and the files and bytes per file in each.
const LAYERS: usize = 5;
const FILES_PER_LAYER: usize = 40;
const FILE_BYTES: usize = 256 * 1024;

fn main() {
    let runs = std::env::args()
        .skip_while(|arg| arg != "--runs")
        .nth(1)
        .map(|n| n.parse::<usize>().expect("--runs takes a number"))
        .unwrap_or(3)
        .max(1);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    runtime.block_on(run(runs));
}

fn random_image() -> TestImage {
    let mut rng = rand::rng();
    let layers = (0..LAYERS)
        .map(|layer| {
            let files: Vec<(String, Vec<u8>, u32)> = (0..FILES_PER_LAYER)
                .map(|file| {
                    let mut bytes = vec![0u8; FILE_BYTES];
                    rng.fill_bytes(&mut bytes);
                    (format!("data/layer{layer}/file{file}"), bytes, 0o644)
                })
                .collect();
            let borrowed: Vec<(&str, Vec<u8>, u32)> = files
                .iter()
                .map(|(path, bytes, mode)| (path.as_str(), bytes.clone(), *mode))
                .collect();
            TestLayer::of_files(&borrowed)
        })
        .collect();
    TestImage::new(layers, &Platform::current().architecture, &["/bin/sh"])
}

fn megabytes_per_second(bytes: u64, elapsed: Duration) -> f64 {
    bytes as f64 / 1e6 / elapsed.as_secs_f64()
}

async fn run(runs: usize) {
    let registry = Registry::start();
    let image = random_image();
    let size = image.size();
    registry.push(&image, "bench/big", "1").await;
    let reference = Reference::parse(&format!("{}/bench/big:1", registry.address)).unwrap();
    let config = RegistryConfig {
        plain_http: vec![registry.address.clone()],
        ..RegistryConfig::default()
    };
    println!(
        "image: {LAYERS} layers, {:.1} MB compressed ({} files of {} KiB of random bytes)",
        size as f64 / 1e6,
        LAYERS * FILES_PER_LAYER,
        FILE_BYTES / 1024
    );
    println!("{:<6} {:>10} {:>10}", "pull", "seconds", "MB/s");
    let mut cold = Vec::new();
    let mut warm = Vec::new();
    for _ in 0..runs {
        let dir = tempfile::tempdir().expect("a store directory");
        let puller = Puller::new(
            ContentStore::open(dir.path()).expect("a content store"),
            config.clone(),
        );
        let started = Instant::now();
        puller.pull(&reference).await.expect("cold pull");
        let elapsed = started.elapsed();
        println!(
            "{:<6} {:>10.3} {:>10.1}",
            "cold",
            elapsed.as_secs_f64(),
            megabytes_per_second(size, elapsed)
        );
        cold.push(elapsed);
        let started = Instant::now();
        puller.pull(&reference).await.expect("warm pull");
        let elapsed = started.elapsed();
        println!(
            "{:<6} {:>10.3} {:>10.1}",
            "warm",
            elapsed.as_secs_f64(),
            megabytes_per_second(size, elapsed)
        );
        warm.push(elapsed);
    }
    cold.sort();
    warm.sort();
    let median = |times: &[Duration]| times[times.len() / 2];
    println!(
        "median cold {:.3} s ({:.1} MB/s), warm {:.3} s ({:.1} MB/s nominal)",
        median(&cold).as_secs_f64(),
        megabytes_per_second(size, median(&cold)),
        median(&warm).as_secs_f64(),
        megabytes_per_second(size, median(&warm))
    );
}
