//! Write throughput and latency of the etcd backend against the SQLite one on the same machine,
//! with 1 and 64 concurrent writers, printed as a table.
//!
//! Run with `cargo bench -p skiff-store --bench etcd_vs_sqlite` (needs Debian's `etcd-server`).
//! Both stores keep their files in the system's temporary directory, so they sync to the same
//! disk; etcd runs as one member on loopback, with its default settings, and then as a
//! three-member cluster on loopback (`etcd-3`), where each write is also replicated to a
//! majority of members before it is acknowledged.

use std::sync::Arc;
use std::time::{Duration, Instant};

use skiff_store::test_etcd::{TestEtcd, TestEtcdCluster};
use skiff_store::{EtcdOptions, EtcdStore, SqliteStore, Store};

const VALUE_SIZE: usize = 1024;
const SINGLE_WRITER_WRITES: usize = 500;
const WRITES_PER_CONCURRENT_WRITER: usize = 50;

struct Figures {
    writes: usize,
    elapsed: Duration,
    latencies: Vec<Duration>,
}

/// Runs `writers` tasks each creating `per_writer` keys, timing every write.
async fn run(store: Arc<dyn Store>, label: &str, writers: usize, per_writer: usize) -> Figures {
    let started = Instant::now();
    let tasks: Vec<_> = (0..writers)
        .map(|writer| {
            let store = Arc::clone(&store);
            let label = label.to_string();
            tokio::spawn(async move {
                let mut latencies = Vec::with_capacity(per_writer);
                for n in 0..per_writer {
                    let key = format!("/bench/{label}/{writer}/{n}");
                    let value = vec![(n % 251) as u8; VALUE_SIZE];
                    let write_started = Instant::now();
                    store.create(&key, value).await.expect("create");
                    latencies.push(write_started.elapsed());
                }
                latencies
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await.expect("writer task"));
    }
    Figures {
        writes: writers * per_writer,
        elapsed: started.elapsed(),
        latencies,
    }
}

fn print(backend: &str, writers: usize, mut figures: Figures) {
    figures.latencies.sort_unstable();
    let at = |fraction: usize| {
        figures
            .latencies
            .get(figures.latencies.len() * fraction / 100)
            .copied()
            .unwrap_or_default()
    };
    let per_second = figures.writes as f64 / figures.elapsed.as_secs_f64();
    println!(
        "{backend:<8} {writers:>3} writer(s) {:>6} writes {per_second:>9.0} writes/s   p50 {:>10.2?}   p99 {:>10.2?}",
        figures.writes,
        at(50),
        at(99),
    );
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let dir = tempfile::tempdir().expect("temp dir");
    let sqlite: Arc<dyn Store> =
        Arc::new(SqliteStore::open(&dir.path().join("bench.db")).expect("open SQLite"));
    let etcd_server = TestEtcd::start();
    let etcd: Arc<dyn Store> = Arc::new(
        EtcdStore::connect(EtcdOptions::new(vec![etcd_server.endpoint()]))
            .await
            .expect("connect to etcd"),
    );
    let etcd_cluster = TestEtcdCluster::start(3);
    let etcd_3: Arc<dyn Store> = Arc::new(
        EtcdStore::connect(EtcdOptions::new(
            etcd_cluster
                .endpoints()
                .split(',')
                .map(str::to_string)
                .collect(),
        ))
        .await
        .expect("connect to the etcd cluster"),
    );
    println!("create of a {VALUE_SIZE}-byte value, each acknowledged after its commit");
    for (backend, store) in [("sqlite", &sqlite), ("etcd", &etcd), ("etcd-3", &etcd_3)] {
        let single = run(Arc::clone(store), "one", 1, SINGLE_WRITER_WRITES).await;
        print(backend, 1, single);
        let concurrent = run(Arc::clone(store), "many", 64, WRITES_PER_CONCURRENT_WRITER).await;
        print(backend, 64, concurrent);
    }
}
