//! The worker loop every controller runs over its queue.

use std::fmt::{Debug, Display};
use std::future::Future;
use std::hash::Hash;
use std::sync::Arc;
use std::time::Duration;

use crate::workqueue::WorkQueue;

/// How often a key is retried with backoff before it is dropped, as in Kubernetes' workload
/// controllers. A dropped key comes back with the next change to its object.
pub const DEFAULT_MAX_RETRIES: u32 = 15;

/// How a pool of workers treats failures.
#[derive(Clone, Copy, Debug)]
pub struct WorkerOptions {
    /// How many keys are processed concurrently.
    pub workers: usize,
    /// Failures of one key retried with backoff before it is dropped.
    pub max_retries: u32,
}

/// Runs `workers` concurrent loops that take keys from `queue` and reconcile them, until the
/// queue is shut down and drained. See [`run_workers_with`].
pub async fn run_workers<T, F, Fut, E>(queue: WorkQueue<T>, workers: usize, reconcile: F)
where
    T: Hash + Eq + Clone + Debug + Send + Sync + 'static,
    F: Fn(T) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Option<Duration>, E>> + Send + 'static,
    E: Display + Send + 'static,
{
    let options = WorkerOptions {
        workers,
        max_retries: DEFAULT_MAX_RETRIES,
    };
    run_workers_with(queue, options, reconcile).await
}

/// Runs a pool of workers over `queue`.
///
/// For each key, `reconcile` decides:
/// - `Ok(None)`: done; the key's failure history is forgotten.
/// - `Ok(Some(delay))`: done for now; the key is processed again after `delay` (for
///   time-based conditions such as progress deadlines).
/// - `Err(e)`: retried with the queue's per-key backoff, up to `max_retries` times, then
///   dropped with an error log. A panic counts as an error.
///
/// The queue guarantees no key is reconciled by two workers at once.
pub async fn run_workers_with<T, F, Fut, E>(
    queue: WorkQueue<T>,
    options: WorkerOptions,
    reconcile: F,
) where
    T: Hash + Eq + Clone + Debug + Send + Sync + 'static,
    F: Fn(T) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Option<Duration>, E>> + Send + 'static,
    E: Display + Send + 'static,
{
    let reconcile = Arc::new(reconcile);
    let handles: Vec<_> = (0..options.workers.max(1))
        .map(|_| {
            let queue = queue.clone();
            let reconcile = reconcile.clone();
            tokio::spawn(async move {
                while let Some(key) = queue.get().await {
                    process(&queue, &*reconcile, options.max_retries, key).await;
                }
            })
        })
        .collect();
    for handle in handles {
        if let Err(e) = handle.await {
            tracing::error!("work queue worker ended abnormally: {e}");
        }
    }
}

async fn process<T, F, Fut, E>(queue: &WorkQueue<T>, reconcile: &F, max_retries: u32, key: T)
where
    T: Hash + Eq + Clone + Debug + Send + Sync + 'static,
    F: Fn(T) -> Fut,
    Fut: Future<Output = Result<Option<Duration>, E>>,
    E: Display,
{
    let outcome = crate::panics::catch(reconcile(key.clone())).await;
    let failure = match outcome {
        Ok(Ok(requeue)) => {
            queue.forget(&key);
            if let Some(delay) = requeue {
                queue.add_after(key.clone(), delay);
            }
            None
        }
        Ok(Err(e)) => Some(e.to_string()),
        Err(panic) => {
            tracing::error!(?key, "reconcile panicked, retrying with back-off: {panic}");
            Some(format!("reconcile panicked: {panic}"))
        }
    };
    if let Some(message) = failure {
        if queue.num_requeues(&key) < max_retries {
            tracing::debug!(?key, "reconcile failed, retrying: {message}");
            queue.add_rate_limited(key.clone());
        } else {
            tracing::error!(
                ?key,
                "dropping key after {max_retries} failed retries: {message}"
            );
            queue.forget(&key);
        }
    }
    queue.done(&key);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use tokio::time::Instant;

    #[derive(Debug)]
    struct Failed;

    impl Display for Failed {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("failed")
        }
    }

    type Log = Arc<Mutex<Vec<(&'static str, Duration)>>>;

    fn record(log: &Log, key: &'static str, start: Instant) -> usize {
        let mut log = log.lock().unwrap_or_else(|e| e.into_inner());
        log.push((key, Instant::now() - start));
        log.iter().filter(|(k, _)| *k == key).count()
    }

    #[tokio::test(start_paused = true)]
    async fn errors_retry_with_backoff_then_drop() {
        let queue = WorkQueue::new();
        let log: Log = Arc::default();
        let start = Instant::now();
        queue.add("broken");
        let runner = tokio::spawn(run_workers_with(
            queue.clone(),
            WorkerOptions {
                workers: 2,
                max_retries: 3,
            },
            {
                let log = log.clone();
                move |key| {
                    let log = log.clone();
                    async move {
                        record(&log, key, start);
                        Err::<Option<Duration>, _>(Failed)
                    }
                }
            },
        ));
        // 1 attempt + 3 retries at 5, 10 and 20ms backoff; after that the key is dropped.
        tokio::time::sleep(Duration::from_secs(60)).await;
        queue.shutdown();
        let _ = runner.await;
        let log = log.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let times: Vec<u64> = log.iter().map(|(_, t)| t.as_millis() as u64).collect();
        assert_eq!(times, vec![0, 5, 15, 35]);
        assert_eq!(queue.num_requeues(&"broken"), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_panicking_key_is_retried_with_backoff_while_the_worker_serves_others() {
        let queue = WorkQueue::new();
        let log: Log = Arc::default();
        let start = Instant::now();
        queue.add("flaky");
        let runner = tokio::spawn(run_workers(queue.clone(), 1, {
            let log = log.clone();
            move |key| {
                let log = log.clone();
                async move {
                    let seen = record(&log, key, start);
                    if key == "flaky" && seen < 3 {
                        panic!("a field the reconciler assumed was set is missing");
                    }
                    Ok::<_, Failed>(None)
                }
            }
        }));
        // Other keys arrive while "flaky" waits out its back-off: the single worker serves them.
        tokio::time::sleep(Duration::from_millis(1)).await;
        queue.add("steady-1");
        queue.add("steady-2");
        tokio::time::sleep(Duration::from_secs(10)).await;
        queue.shutdown();
        runner
            .await
            .expect("the worker pool ends normally after panics");
        let log = log.lock().unwrap_or_else(|e| e.into_inner()).clone();
        assert_eq!(
            log,
            vec![
                ("flaky", Duration::ZERO),
                ("steady-1", Duration::from_millis(1)),
                ("steady-2", Duration::from_millis(1)),
                ("flaky", Duration::from_millis(5)),
                ("flaky", Duration::from_millis(15)),
            ],
            "two panics retried after 5 and 10 ms of back-off, then success"
        );
        assert_eq!(
            queue.num_requeues(&"flaky"),
            0,
            "success forgets the failures"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn ok_some_requeues_after_the_delay_and_panics_count_as_errors() {
        let queue = WorkQueue::new();
        let log: Log = Arc::default();
        let start = Instant::now();
        queue.add("periodic");
        queue.add("panicky");
        let runner = tokio::spawn(run_workers(queue.clone(), 1, {
            let log = log.clone();
            move |key| {
                let log = log.clone();
                async move {
                    let seen = record(&log, key, start);
                    match (key, seen) {
                        ("periodic", 1) => Ok(Some(Duration::from_secs(30))),
                        ("panicky", 1) => panic!("bad object"),
                        _ => Ok::<_, Failed>(None),
                    }
                }
            }
        }));
        tokio::time::sleep(Duration::from_secs(120)).await;
        queue.shutdown();
        let _ = runner.await;
        let log = log.lock().unwrap_or_else(|e| e.into_inner()).clone();
        assert_eq!(
            log,
            vec![
                ("periodic", Duration::ZERO),
                ("panicky", Duration::ZERO),
                ("panicky", Duration::from_millis(5)),
                ("periodic", Duration::from_secs(30)),
            ]
        );
    }
}
