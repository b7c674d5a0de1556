//! Throughput and latency figures for the SQLite store, printed as a table.
//!
//! Run with `cargo bench -p skiff-store`. It uses a fresh database in a temporary directory
//! (set `SKIFF_BENCH_DIR` to put it on another disk); fsync cost dominates the write figures,
//! so they depend on the disk far more than on the code.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use skiff_store::{SqliteStore, Store};

const VALUE_SIZE: usize = 1024;
const SEQUENTIAL_WRITES: usize = 1_000;
const TASKS: usize = 64;
const LIST_KEYS: usize = 10_000;
const LIST_ROUNDS: usize = 20;
const GETS: usize = 100_000;

fn value(seed: usize) -> Vec<u8> {
    (0..VALUE_SIZE).map(|n| (n + seed) as u8).collect()
}

fn report(name: &str, operations: usize, elapsed: Duration) {
    let per_second = operations as f64 / elapsed.as_secs_f64();
    let mean = elapsed / operations.max(1) as u32;
    println!("{name:<44} {operations:>7} ops {per_second:>12.0} ops/s   mean {mean:>10.2?}");
}

fn report_latencies(name: &str, mut samples: Vec<Duration>) {
    samples.sort_unstable();
    let mean = samples.iter().sum::<Duration>() / samples.len().max(1) as u32;
    let p50 = samples.get(samples.len() / 2).copied().unwrap_or_default();
    let p99 = samples
        .get(samples.len() * 99 / 100)
        .copied()
        .unwrap_or_default();
    let max = samples.last().copied().unwrap_or_default();
    println!(
        "{name:<44} {:>7} runs mean {mean:>10.2?} p50 {p50:>10.2?} p99 {p99:>10.2?} max {max:>10.2?}",
        samples.len()
    );
}

/// Runs `per_task` writes in each of `TASKS` tasks; `op` makes one write from (task, index).
async fn concurrently<F, Fut>(store: &Arc<SqliteStore>, per_task: usize, op: F) -> Duration
where
    F: Fn(Arc<SqliteStore>, usize) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let started = Instant::now();
    let handles: Vec<_> = (0..TASKS)
        .map(|task| {
            let store = Arc::clone(store);
            let op = op.clone();
            tokio::spawn(async move {
                for n in 0..per_task {
                    op(Arc::clone(&store), n * TASKS + task).await;
                }
            })
        })
        .collect();
    for handle in handles {
        handle.await.expect("bench task panicked");
    }
    started.elapsed()
}

async fn run() {
    let dir = match std::env::var_os("SKIFF_BENCH_DIR") {
        Some(base) => tempfile::tempdir_in(base),
        None => tempfile::tempdir(),
    }
    .expect("create bench dir");
    let path = dir.path().join("bench.db");
    let store = Arc::new(SqliteStore::open(&path).expect("open store"));
    println!("value size {VALUE_SIZE} B, {TASKS} concurrent tasks\n");

    let started = Instant::now();
    for n in 0..SEQUENTIAL_WRITES {
        store
            .create(&format!("/bench/items/seq-{n:05}"), value(n))
            .await
            .expect("create");
    }
    report("create, sequential", SEQUENTIAL_WRITES, started.elapsed());

    let concurrent_keys = LIST_KEYS - SEQUENTIAL_WRITES;
    let per_task = concurrent_keys / TASKS;
    let before = store.stats();
    let elapsed = concurrently(&store, per_task, |store, n| async move {
        store
            .create(&format!("/bench/items/par-{n:05}"), value(n))
            .await
            .expect("create");
    })
    .await;
    let after = store.stats();
    report("create, concurrent", per_task * TASKS, elapsed);
    let mut filler = per_task * TASKS;
    while filler < concurrent_keys {
        store
            .create(&format!("/bench/items/par-{filler:05}"), value(filler))
            .await
            .expect("create");
        filler += 1;
    }
    println!(
        "{:<44} {:.1} writes per transaction",
        "  group commit batch size (concurrent)",
        (after.writes - before.writes) as f64
            / (after.transactions - before.transactions).max(1) as f64
    );

    let started = Instant::now();
    for n in 0..SEQUENTIAL_WRITES {
        store
            .update(&format!("/bench/items/seq-{n:05}"), value(n + 1), None)
            .await
            .expect("update");
    }
    report("update, sequential", SEQUENTIAL_WRITES, started.elapsed());

    let elapsed = concurrently(&store, per_task, |store, n| async move {
        let key = format!("/bench/items/par-{n:05}");
        let current = store.get(&key).await.expect("get").expect("key exists");
        store
            .update(&key, value(n + 2), Some(current.mod_revision))
            .await
            .expect("update");
    })
    .await;
    report(
        "get + conditional update, concurrent",
        per_task * TASKS,
        elapsed,
    );

    let mut samples = Vec::new();
    for _ in 0..LIST_ROUNDS {
        let started = Instant::now();
        let listed = store.list("/bench/items/", None, None).await.expect("list");
        samples.push(started.elapsed());
        assert_eq!(listed.items.len(), LIST_KEYS);
    }
    report_latencies("list, all 10,000 keys", samples);

    let mut samples = Vec::new();
    for _ in 0..LIST_ROUNDS {
        let started = Instant::now();
        let mut after: Option<String> = None;
        loop {
            let page = store
                .list("/bench/items/", after.as_deref(), Some(500))
                .await
                .expect("list page");
            after = page.items.last().map(|kv| kv.key.clone());
            if page.remaining == 0 {
                break;
            }
        }
        samples.push(started.elapsed());
    }
    report_latencies("list, 10,000 keys in pages of 500", samples);

    let keys: Vec<String> = (0..LIST_KEYS)
        .map(|n| format!("/bench/items/par-{:05}", n % concurrent_keys))
        .collect();
    let started = Instant::now();
    for n in 0..GETS {
        let found = store.get(&keys[n % keys.len()]).await.expect("get");
        assert!(found.is_some());
    }
    report("get", GETS, started.elapsed());

    let last = store.current_revision().await.expect("revision");
    let started = Instant::now();
    let mut watch = store.watch("/bench/", 0).await.expect("watch");
    let mut replayed = 0;
    while let Some(event) = watch.next().await {
        replayed += 1;
        if event.expect("event").revision == last {
            break;
        }
    }
    report(
        "watch replay of the whole history",
        replayed,
        started.elapsed(),
    );

    drop(watch);
    let store = Arc::try_unwrap(store).expect("no other handles");
    drop(store);
    let started = Instant::now();
    let reopened = SqliteStore::open(&path).expect("reopen");
    report(
        &format!("reopen (10,000 keys, {last} events)"),
        1,
        started.elapsed(),
    );

    let started = Instant::now();
    reopened.compact(last).await.expect("compact");
    report("compact the whole history", 1, started.elapsed());
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("build runtime");
    runtime.block_on(run());
}
