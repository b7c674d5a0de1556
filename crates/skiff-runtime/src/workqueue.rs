//! A rate-limited, delaying work queue with client-go's guarantees.
//!
//! Controllers enqueue keys from informer notifications and process them with a few workers.
//! The queue makes that safe and cheap:
//! - an item waiting in the queue is stored once, however often it is added (dedup);
//! - an item is never handed to two workers at once: adding it while it is being processed
//!   only marks it dirty, and it is queued again when the worker calls [`WorkQueue::done`];
//! - failed items come back later with a per-item exponential backoff bounded by an overall
//!   token bucket ([`default_controller_rate_limiter`]);
//! - delayed items ([`WorkQueue::add_after`]) keep only their earliest due time.
//!
//! Time is tokio's, so tests drive it with paused time.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::hash::Hash;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

/// Decides how long a failed item waits before it is retried.
pub trait RateLimiter<T>: Send + Sync {
    /// The delay before `item` is retried; counts as one more failure of `item`.
    fn when(&self, item: &T) -> Duration;
    /// Clears `item`'s failure history once it was processed successfully.
    fn forget(&self, item: &T);
    /// How many times `item` failed since it was last forgotten.
    fn num_requeues(&self, item: &T) -> u32;
}

fn lock<V>(mutex: &Mutex<V>) -> MutexGuard<'_, V> {
    // The guarded state stays consistent across a panic in another thread: every critical
    // section below is a handful of collection operations.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Per-item exponential backoff: `base * 2^failures`, capped at `max`.
///
/// Spreads retries of one broken object out so it cannot hog the workers.
pub struct ItemExponentialFailureRateLimiter<T> {
    base: Duration,
    max: Duration,
    failures: Mutex<HashMap<T, u32>>,
}

impl<T> ItemExponentialFailureRateLimiter<T> {
    /// A limiter starting at `base` and never waiting longer than `max`.
    pub fn new(base: Duration, max: Duration) -> Self {
        ItemExponentialFailureRateLimiter {
            base,
            max,
            failures: Mutex::new(HashMap::new()),
        }
    }
}

impl<T: Hash + Eq + Clone + Send> RateLimiter<T> for ItemExponentialFailureRateLimiter<T> {
    fn when(&self, item: &T) -> Duration {
        let mut failures = lock(&self.failures);
        let count = failures.entry(item.clone()).or_insert(0);
        let exponent = *count;
        *count = count.saturating_add(1);
        let factor = 1u128.checked_shl(exponent).unwrap_or(u128::MAX);
        let nanos = self.base.as_nanos().saturating_mul(factor);
        if nanos >= self.max.as_nanos() {
            return self.max;
        }
        // `nanos` is below `max`, which fits a Duration, so it fits u64 nanoseconds too.
        Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
    }

    fn forget(&self, item: &T) {
        lock(&self.failures).remove(item);
    }

    fn num_requeues(&self, item: &T) -> u32 {
        lock(&self.failures).get(item).copied().unwrap_or(0)
    }
}

/// An overall token bucket (`qps` refill, `burst` capacity) shared by all items.
///
/// Protects the API server when many items fail at once. Like Go's `rate.Limiter.Reserve`,
/// every call takes a token, possibly one that only exists in the future; the returned delay
/// is how long until that token exists.
pub struct BucketRateLimiter {
    qps: f64,
    burst: f64,
    bucket: Mutex<Option<(f64, Instant)>>,
}

impl BucketRateLimiter {
    /// A bucket holding `burst` tokens, refilled at `qps` tokens per second.
    pub fn new(qps: f64, burst: u32) -> Self {
        BucketRateLimiter {
            qps,
            burst: f64::from(burst),
            bucket: Mutex::new(None),
        }
    }
}

impl<T> RateLimiter<T> for BucketRateLimiter {
    fn when(&self, _item: &T) -> Duration {
        let now = Instant::now();
        let mut bucket = lock(&self.bucket);
        let (tokens, last) = bucket.unwrap_or((self.burst, now));
        let refilled = now.saturating_duration_since(last).as_secs_f64() * self.qps;
        let available = (tokens + refilled).min(self.burst) - 1.0;
        *bucket = Some((available, now));
        if available >= 0.0 || self.qps <= 0.0 {
            Duration::ZERO
        } else {
            Duration::try_from_secs_f64(-available / self.qps).unwrap_or(Duration::MAX)
        }
    }

    fn forget(&self, _item: &T) {}

    fn num_requeues(&self, _item: &T) -> u32 {
        0
    }
}

/// The strictest of several limiters: the longest delay, the highest requeue count.
pub struct MaxOfRateLimiter<T> {
    limiters: Vec<Box<dyn RateLimiter<T>>>,
}

impl<T> MaxOfRateLimiter<T> {
    /// Combines `limiters`.
    pub fn new(limiters: Vec<Box<dyn RateLimiter<T>>>) -> Self {
        MaxOfRateLimiter { limiters }
    }
}

impl<T> RateLimiter<T> for MaxOfRateLimiter<T> {
    fn when(&self, item: &T) -> Duration {
        self.limiters
            .iter()
            .map(|l| l.when(item))
            .max()
            .unwrap_or(Duration::ZERO)
    }

    fn forget(&self, item: &T) {
        for limiter in &self.limiters {
            limiter.forget(item);
        }
    }

    fn num_requeues(&self, item: &T) -> u32 {
        self.limiters
            .iter()
            .map(|l| l.num_requeues(item))
            .max()
            .unwrap_or(0)
    }
}

/// The limiter Kubernetes controllers use: per-item backoff from 5ms to 1000s, and overall at
/// most 10 retries per second with bursts of 100.
pub fn default_controller_rate_limiter<T>() -> MaxOfRateLimiter<T>
where
    T: Hash + Eq + Clone + Send + 'static,
{
    MaxOfRateLimiter::new(vec![
        Box::new(ItemExponentialFailureRateLimiter::new(
            Duration::from_millis(5),
            Duration::from_secs(1000),
        )),
        Box::new(BucketRateLimiter::new(10.0, 100)),
    ])
}

struct State<T> {
    queue: VecDeque<T>,
    /// Items that need processing: queued, or added again while being processed.
    dirty: HashSet<T>,
    processing: HashSet<T>,
    /// Delayed items by due time; the sequence number keeps equal times distinct.
    waiting: BTreeMap<(Instant, u64), T>,
    waiting_since: HashMap<T, (Instant, u64)>,
    sequence: u64,
    shutting_down: bool,
}

impl<T: Hash + Eq + Clone> State<T> {
    /// Marks `item` as needing processing; true if it became available to a worker.
    fn insert(&mut self, item: T) -> bool {
        if self.shutting_down || self.dirty.contains(&item) {
            return false;
        }
        self.dirty.insert(item.clone());
        if self.processing.contains(&item) {
            return false;
        }
        self.queue.push_back(item);
        true
    }

    /// Moves delayed items that are due into the queue.
    fn promote_due(&mut self, now: Instant) {
        while let Some(entry) = self.waiting.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let item = entry.remove();
            self.waiting_since.remove(&item);
            self.insert(item);
        }
    }

    fn next_due(&self) -> Option<Instant> {
        self.waiting.keys().next().map(|(at, _)| *at)
    }
}

struct Inner<T> {
    state: Mutex<State<T>>,
    wakeup: Notify,
    limiter: Box<dyn RateLimiter<T>>,
}

/// The longest delay [`WorkQueue::add_after`] arms: thirty years, tokio's own "far future".
pub const LONGEST_DELAY: Duration = Duration::from_secs(30 * 365 * 24 * 60 * 60);

/// A work queue of keys, shared by the event handlers that fill it and the workers that drain
/// it. Cloning is cheap and yields the same queue.
pub struct WorkQueue<T> {
    inner: Arc<Inner<T>>,
}

impl<T> Clone for WorkQueue<T> {
    fn clone(&self) -> Self {
        WorkQueue {
            inner: self.inner.clone(),
        }
    }
}

impl<T> Default for WorkQueue<T>
where
    T: Hash + Eq + Clone + Send + Sync + 'static,
{
    fn default() -> Self {
        Self::new()
    }
}

impl<T> WorkQueue<T>
where
    T: Hash + Eq + Clone + Send + Sync + 'static,
{
    /// A queue with [`default_controller_rate_limiter`].
    pub fn new() -> Self {
        Self::with_rate_limiter(default_controller_rate_limiter())
    }

    /// A queue whose [`WorkQueue::add_rate_limited`] asks `limiter` for delays.
    pub fn with_rate_limiter(limiter: impl RateLimiter<T> + 'static) -> Self {
        WorkQueue {
            inner: Arc::new(Inner {
                state: Mutex::new(State {
                    queue: VecDeque::new(),
                    dirty: HashSet::new(),
                    processing: HashSet::new(),
                    waiting: BTreeMap::new(),
                    waiting_since: HashMap::new(),
                    sequence: 0,
                    shutting_down: false,
                }),
                wakeup: Notify::new(),
                limiter: Box::new(limiter),
            }),
        }
    }

    /// Queues `item` unless it is already queued; deferred until `done` if it is being
    /// processed. Ignored after shutdown.
    pub fn add(&self, item: T) {
        let queued = lock(&self.inner.state).insert(item);
        if queued {
            self.inner.wakeup.notify_one();
        }
    }

    /// Queues `item` once `delay` has passed. If it is already waiting, the earlier due time
    /// wins. A zero delay queues at once.
    pub fn add_after(&self, item: T, delay: Duration) {
        if delay.is_zero() {
            self.add(item);
            return;
        }
        // A delay no clock can hold (a requeue computed from user-given seconds) waits for
        // as long as one can: the key then comes back with its object's next change.
        let due = Instant::now()
            .checked_add(delay.min(LONGEST_DELAY))
            .unwrap_or_else(Instant::now);
        {
            let mut state = lock(&self.inner.state);
            if state.shutting_down {
                return;
            }
            if let Some(&(current, sequence)) = state.waiting_since.get(&item) {
                if current <= due {
                    return;
                }
                state.waiting.remove(&(current, sequence));
            }
            state.sequence += 1;
            let slot = (due, state.sequence);
            state.waiting.insert(slot, item.clone());
            state.waiting_since.insert(item, slot);
        }
        // Sleeping workers recompute when to wake up.
        self.inner.wakeup.notify_waiters();
    }

    /// Queues `item` after the delay the rate limiter chooses for it (one more failure).
    pub fn add_rate_limited(&self, item: T) {
        let delay = self.inner.limiter.when(&item);
        self.add_after(item, delay);
    }

    /// Clears `item`'s failure history so its next failure starts from the shortest delay.
    pub fn forget(&self, item: &T) {
        self.inner.limiter.forget(item);
    }

    /// How many times `item` was requeued with a rate limit since it was last forgotten.
    pub fn num_requeues(&self, item: &T) -> u32 {
        self.inner.limiter.num_requeues(item)
    }

    /// Waits for the next item and marks it as being processed; the caller must call
    /// [`WorkQueue::done`] with it. After shutdown, the items still queued are handed out,
    /// then `None`.
    pub async fn get(&self) -> Option<T> {
        loop {
            let wakeup = self.inner.wakeup.notified();
            tokio::pin!(wakeup);
            let next_due = {
                let mut state = lock(&self.inner.state);
                // Registered before the state is read, so no wakeup between the two is lost.
                wakeup.as_mut().enable();
                state.promote_due(Instant::now());
                if let Some(item) = state.queue.pop_front() {
                    state.dirty.remove(&item);
                    state.processing.insert(item.clone());
                    let more = !state.queue.is_empty();
                    drop(state);
                    if more {
                        self.inner.wakeup.notify_one();
                    }
                    return Some(item);
                }
                if state.shutting_down {
                    return None;
                }
                state.next_due()
            };
            match next_due {
                Some(due) => {
                    tokio::select! {
                        _ = &mut wakeup => {}
                        _ = tokio::time::sleep_until(due) => {}
                    }
                }
                None => wakeup.await,
            }
        }
    }

    /// Ends processing of `item`; if it was added meanwhile, it is queued again now.
    pub fn done(&self, item: &T) {
        let requeued = {
            let mut state = lock(&self.inner.state);
            state.processing.remove(item);
            if state.dirty.contains(item) {
                state.queue.push_back(item.clone());
                true
            } else {
                false
            }
        };
        if requeued {
            self.inner.wakeup.notify_one();
        }
    }

    /// How many items are ready for a worker (delayed items count once they are due).
    pub fn len(&self) -> usize {
        let mut state = lock(&self.inner.state);
        state.promote_due(Instant::now());
        state.queue.len()
    }

    /// Whether no item is ready for a worker.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Stops accepting items and drops delayed ones; workers drain what is queued, then
    /// [`WorkQueue::get`] returns `None`.
    pub fn shutdown(&self) {
        {
            let mut state = lock(&self.inner.state);
            state.shutting_down = true;
            state.waiting.clear();
            state.waiting_since.clear();
        }
        self.inner.wakeup.notify_waiters();
    }

    /// Whether [`WorkQueue::shutdown`] was called.
    pub fn is_shutting_down(&self) -> bool {
        lock(&self.inner.state).shutting_down
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn extreme_delays_are_capped_instead_of_overflowing_the_clock() {
        let q: WorkQueue<&'static str> = WorkQueue::new();
        let cases = [
            ("i32-max-seconds", Duration::from_secs(i32::MAX as u64)),
            ("i64-max-seconds", Duration::from_secs(i64::MAX as u64)),
            ("u64-max-nanos", Duration::from_nanos(u64::MAX)),
            ("duration-max", Duration::MAX),
        ];
        for (key, delay) in cases {
            q.add_after(key, delay);
        }
        q.add_after("soon", Duration::from_secs(1));
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(q.len(), 1, "only the short delay is due");
        assert_eq!(q.get().await, Some("soon"));
        q.done(&"soon");
        let state = lock(&q.inner.state);
        let latest = state.waiting.keys().map(|(at, _)| *at).max();
        assert!(
            latest.is_some_and(|at| at <= Instant::now() + LONGEST_DELAY),
            "every delay is capped"
        );
        assert_eq!(state.waiting.len(), 4);
    }

    fn queue() -> WorkQueue<&'static str> {
        WorkQueue::new()
    }

    async fn next(q: &WorkQueue<&'static str>) -> Option<&'static str> {
        tokio::time::timeout(Duration::from_secs(1), q.get())
            .await
            .ok()
            .flatten()
    }

    #[tokio::test(start_paused = true)]
    async fn queue_semantics_table() {
        // Each case runs a script and checks the order items come out in.
        enum Step {
            Add(&'static str),
            Get(&'static str),
            Done(&'static str),
            Len(usize),
        }
        use Step::*;
        let cases: Vec<(&str, Vec<Step>)> = vec![
            (
                "duplicates are stored once",
                vec![
                    Add("a"),
                    Add("b"),
                    Add("a"),
                    Len(2),
                    Get("a"),
                    Get("b"),
                    Len(0),
                ],
            ),
            (
                "re-add while processing waits for done",
                vec![
                    Add("a"),
                    Get("a"),
                    Add("a"),
                    Len(0),
                    Done("a"),
                    Len(1),
                    Get("a"),
                ],
            ),
            (
                "several re-adds while processing collapse into one",
                vec![
                    Add("a"),
                    Get("a"),
                    Add("a"),
                    Add("a"),
                    Done("a"),
                    Len(1),
                    Get("a"),
                    Done("a"),
                    Len(0),
                ],
            ),
            (
                "done without re-add does not requeue",
                vec![Add("a"), Get("a"), Done("a"), Len(0)],
            ),
            (
                "other items flow while one is processed",
                vec![Add("a"), Get("a"), Add("b"), Add("a"), Get("b"), Len(0)],
            ),
            (
                "fifo order",
                vec![Add("c"), Add("a"), Add("b"), Get("c"), Get("a"), Get("b")],
            ),
        ];
        for (name, steps) in cases {
            let q = queue();
            for (i, step) in steps.into_iter().enumerate() {
                match step {
                    Add(item) => q.add(item),
                    Get(want) => assert_eq!(next(&q).await, Some(want), "{name}: step {i}"),
                    Done(item) => q.done(&item),
                    Len(want) => assert_eq!(q.len(), want, "{name}: step {i}"),
                }
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn an_item_is_never_processed_twice_at_once() {
        let q = queue();
        q.add("a");
        let first = q.get().await;
        assert_eq!(first, Some("a"));
        q.add("a");
        // A second worker does not get "a" while the first still holds it.
        assert_eq!(next(&q).await, None);
        let waiting = tokio::spawn({
            let q = q.clone();
            async move { q.get().await }
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        q.done(&"a");
        assert_eq!(waiting.await.ok().flatten(), Some("a"));
    }

    #[tokio::test(start_paused = true)]
    async fn add_after_waits_and_keeps_the_earliest_time() {
        let q = queue();
        let start = Instant::now();
        q.add_after("a", Duration::from_secs(10));
        q.add_after("a", Duration::from_secs(3));
        q.add_after("a", Duration::from_secs(20));
        assert_eq!(q.len(), 0);
        assert_eq!(q.get().await, Some("a"));
        assert_eq!(Instant::now() - start, Duration::from_secs(3));
        q.done(&"a");
        // The later due times were merged into the earliest: nothing else comes.
        tokio::time::advance(Duration::from_secs(30)).await;
        assert_eq!(q.len(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_sleeping_worker_wakes_for_an_earlier_delay() {
        let q = queue();
        let start = Instant::now();
        q.add_after("late", Duration::from_secs(60));
        let worker = tokio::spawn({
            let q = q.clone();
            async move { (q.get().await, Instant::now()) }
        });
        tokio::task::yield_now().await;
        q.add_after("soon", Duration::from_secs(1));
        let (item, at) = worker.await.unwrap_or((None, start));
        assert_eq!(item, Some("soon"));
        assert_eq!(at - start, Duration::from_secs(1));
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_drains_then_returns_none() {
        let q = queue();
        q.add("a");
        q.add_after("b", Duration::from_secs(1));
        let idle = tokio::spawn({
            let q = q.clone();
            async move {
                let first = q.get().await;
                let second = q.get().await;
                (first, second)
            }
        });
        tokio::task::yield_now().await;
        q.shutdown();
        q.add("c");
        assert_eq!(idle.await.ok(), Some((Some("a"), None)));
        assert!(q.is_shutting_down());
    }

    #[test]
    fn exponential_limiter_doubles_up_to_the_cap() {
        let limiter = ItemExponentialFailureRateLimiter::new(
            Duration::from_millis(5),
            Duration::from_secs(1000),
        );
        let delays: Vec<Duration> = (0..5).map(|_| limiter.when(&"a")).collect();
        assert_eq!(
            delays,
            [5, 10, 20, 40, 80].map(Duration::from_millis).to_vec()
        );
        assert_eq!(limiter.num_requeues(&"a"), 5);
        // Another item has its own history.
        assert_eq!(limiter.when(&"b"), Duration::from_millis(5));
        for _ in 0..200 {
            limiter.when(&"a");
        }
        assert_eq!(limiter.when(&"a"), Duration::from_secs(1000));
        limiter.forget(&"a");
        assert_eq!(limiter.num_requeues(&"a"), 0);
        assert_eq!(limiter.when(&"a"), Duration::from_millis(5));
    }

    #[tokio::test(start_paused = true)]
    async fn bucket_limiter_allows_a_burst_then_spaces_by_qps() {
        let limiter = BucketRateLimiter::new(10.0, 100);
        for i in 0..100 {
            assert_eq!(
                RateLimiter::<&str>::when(&limiter, &"x"),
                Duration::ZERO,
                "{i}"
            );
        }
        assert_eq!(
            RateLimiter::<&str>::when(&limiter, &"x"),
            Duration::from_millis(100)
        );
        assert_eq!(
            RateLimiter::<&str>::when(&limiter, &"y"),
            Duration::from_millis(200)
        );
        // One second refills ten tokens; two of them were already promised.
        tokio::time::advance(Duration::from_secs(1)).await;
        for _ in 0..8 {
            assert_eq!(RateLimiter::<&str>::when(&limiter, &"z"), Duration::ZERO);
        }
        assert_eq!(
            RateLimiter::<&str>::when(&limiter, &"z"),
            Duration::from_millis(100)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn default_limiter_takes_the_longest_delay() {
        let limiter = default_controller_rate_limiter::<&str>();
        assert_eq!(limiter.when(&"a"), Duration::from_millis(5));
        assert_eq!(limiter.when(&"a"), Duration::from_millis(10));
        assert_eq!(limiter.num_requeues(&"a"), 2);
        // Exhaust the burst: the bucket's delay now dominates a fresh item's 5ms.
        for _ in 0..98 {
            limiter.when(&"b");
            limiter.forget(&"b");
        }
        assert_eq!(limiter.when(&"c"), Duration::from_millis(100));
        limiter.forget(&"a");
        assert_eq!(limiter.num_requeues(&"a"), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn rate_limited_adds_grow_per_item() {
        let q = queue();
        let start = Instant::now();
        q.add_rate_limited("a");
        assert_eq!(q.get().await, Some("a"));
        assert_eq!(Instant::now() - start, Duration::from_millis(5));
        q.done(&"a");
        q.add_rate_limited("a");
        let start = Instant::now();
        assert_eq!(q.get().await, Some("a"));
        assert_eq!(Instant::now() - start, Duration::from_millis(10));
        assert_eq!(q.num_requeues(&"a"), 2);
        q.forget(&"a");
        assert_eq!(q.num_requeues(&"a"), 0);
    }
}
