//! Network namespaces made ahead of pods: creating one costs the kernel its network locks (tens
//! of milliseconds on a busy machine), so a few are kept pinned under the namespace directory
//! and a pod's setup takes one with two mount calls. A background task refills the pool; the
//! pool is emptied when the host network is torn down, and whatever a crash left is swept at
//! the next start.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use nix::mount::{mount, MsFlags};
use tokio::sync::{Mutex, Notify};

use crate::linux::{pin_new_netns, remove_pinned_netns};
use crate::network::NetError;

/// How many namespaces are kept ready unless configured otherwise.
pub const DEFAULT_SPARE_NAMESPACES: usize = 4;

/// How many namespaces are missing: enough to bring `ready` up to `target`, none once the pool
/// is closed. Pure, for the table test.
pub(crate) fn spares_to_make(ready: usize, target: usize, closed: bool) -> usize {
    if closed {
        return 0;
    }
    target.saturating_sub(ready)
}

/// Names spares uniquely across the pools of one process (a restarted network in a test
/// makes a second pool while the first one's last creation may still finish).
static NEXT_SPARE: AtomicU64 = AtomicU64::new(0);

#[derive(Default)]
struct PoolState {
    ready: Vec<PathBuf>,
    closed: bool,
}

/// The pool of one node's pod network.
pub(crate) struct SparePool {
    dir: PathBuf,
    target: usize,
    state: Mutex<PoolState>,
    wake: Notify,
    refill: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl SparePool {
    /// A pool of `target` namespaces pinned in `dir` (made on [`SparePool::open`]).
    pub(crate) fn new(dir: PathBuf, target: usize) -> Arc<SparePool> {
        Arc::new(SparePool {
            dir,
            target,
            state: Mutex::new(PoolState::default()),
            wake: Notify::new(),
            refill: std::sync::Mutex::new(None),
        })
    }

    /// Removes what an earlier run left in the pool's directory and starts the refill on the
    /// current tokio runtime. Calling it again while the refill runs changes nothing.
    pub(crate) async fn open(self: &Arc<Self>) -> Result<(), NetError> {
        if self.target == 0 {
            return Ok(());
        }
        let running = self
            .refill
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .as_ref()
            .is_some_and(|task| !task.is_finished());
        if running {
            return Ok(());
        }
        {
            let mut state = self.state.lock().await;
            let owned = std::mem::take(&mut state.ready);
            sweep_dir(&self.dir, &owned)?;
            state.closed = false;
        }
        std::fs::create_dir_all(&self.dir)
            .map_err(|err| NetError::io(format!("create {}", self.dir.display()), err))?;
        let task = tokio::spawn(refill_loop(self.clone()));
        *self
            .refill
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(task);
        Ok(())
    }

    /// Moves a ready namespace to `path` (a pod's pin) and asks for another; false when none
    /// was ready, and the caller makes its own.
    pub(crate) async fn take_into(&self, path: &Path) -> Result<bool, NetError> {
        let spare = {
            let mut state = self.state.lock().await;
            if state.closed {
                return Ok(false);
            }
            state.ready.pop()
        };
        self.wake.notify_one();
        let Some(spare) = spare else {
            return Ok(false);
        };
        let moved = move_pin(&spare, path);
        // The spare's pin goes either way: the namespace now lives on at `path`, or the move
        // failed and the caller makes a fresh one.
        if let Err(error) = remove_pinned_netns(&spare) {
            tracing::warn!(spare = %spare.display(), %error, "removing a spare namespace pin failed");
        }
        match moved {
            Ok(()) => Ok(true),
            Err(error) => {
                tracing::warn!(%error, "a spare network namespace could not be used; making one");
                Ok(false)
            }
        }
    }

    /// Stops the refill, waits for a creation under way, and removes every spare and the
    /// pool's directory.
    pub(crate) async fn close(&self) -> Result<(), NetError> {
        let owned = {
            let mut state = self.state.lock().await;
            state.closed = true;
            std::mem::take(&mut state.ready)
        };
        self.wake.notify_one();
        let task = self
            .refill
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
        if let Some(task) = task {
            let _ = task.await;
        }
        sweep_dir(&self.dir, &owned)?;
        match std::fs::remove_dir(&self.dir) {
            Ok(()) => Ok(()),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(err) => Err(NetError::io(format!("remove {}", self.dir.display()), err)),
        }
    }

    /// Marks the pool closed without waiting (the network is dropped without a teardown, as
    /// after a crash): the refill stops after the creation under way, whose pin it removes.
    pub(crate) fn abandon(&self) {
        if let Ok(mut state) = self.state.try_lock() {
            state.closed = true;
        }
        if let Some(task) = self
            .refill
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take()
        {
            task.abort();
        }
    }

    #[cfg(test)]
    async fn ready_count(&self) -> usize {
        self.state.lock().await.ready.len()
    }
}

/// Keeps the pool at its target until it is closed.
async fn refill_loop(pool: Arc<SparePool>) {
    loop {
        let (wanted, closed) = {
            let state = pool.state.lock().await;
            (
                spares_to_make(state.ready.len(), pool.target, state.closed),
                state.closed,
            )
        };
        if closed {
            return;
        }
        if wanted == 0 {
            pool.wake.notified().await;
            continue;
        }
        let name = format!(
            "{}-{}",
            std::process::id(),
            NEXT_SPARE.fetch_add(1, Ordering::Relaxed)
        );
        let path = pool.dir.join(name);
        match make_spare(path.clone()).await {
            Ok(()) => {
                let mut state = pool.state.lock().await;
                if state.closed {
                    drop(state);
                    let _ = remove_pinned_netns(&path);
                    return;
                }
                state.ready.push(path);
            }
            Err(error) => {
                tracing::warn!(%error, "making a spare network namespace failed");
                // Pods make their own meanwhile; try again a little later.
                tokio::select! {
                    _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
                    _ = pool.wake.notified() => {}
                }
            }
        }
    }
}

/// Pins a fresh namespace at `path` on a thread of its own; the thread removes the pin again
/// when nobody waits for it any more (the refill was cancelled), so none is ever orphaned.
async fn make_spare(path: PathBuf) -> Result<(), NetError> {
    let (done, answer) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("skiff-netns-spare".into())
        .spawn(move || {
            let made = pin_new_netns(&path);
            let pinned = made.is_ok();
            if done.send(made).is_err() && pinned {
                let _ = remove_pinned_netns(&path);
            }
        })
        .map_err(|err| NetError::io("start a namespace thread", err))?;
    answer
        .await
        .map_err(|_| NetError::Unexpected("the namespace thread ended without answering".into()))?
}

/// Pins the namespace pinned at `from` at `to` as well.
fn move_pin(from: &Path, to: &Path) -> Result<(), NetError> {
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(to)
        .map_err(|err| NetError::io(format!("create {}", to.display()), err))?;
    mount(Some(from), to, None::<&str>, MsFlags::MS_BIND, None::<&str>).map_err(|errno| {
        let _ = std::fs::remove_file(to);
        NetError::io(
            format!("bind-mount {} on {}", from.display(), to.display()),
            errno.into(),
        )
    })
}

/// Removes the pins in `dir` and those in `owned`.
fn sweep_dir(dir: &Path, owned: &[PathBuf]) -> Result<(), NetError> {
    for path in owned {
        remove_pinned_netns(path)?;
    }
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(err) => return Err(NetError::io(format!("read {}", dir.display()), err)),
    };
    for entry in entries.flatten() {
        remove_pinned_netns(&entry.path())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pool_is_refilled_up_to_its_target_and_not_once_closed() {
        // (ready, target, closed) -> to make
        let cases = [
            (0, 4, false, 4),
            (3, 4, false, 1),
            (4, 4, false, 0),
            (6, 4, false, 0),
            (0, 0, false, 0),
            (0, 4, true, 0),
            (2, 4, true, 0),
        ];
        for (ready, target, closed, wanted) in cases {
            assert_eq!(
                spares_to_make(ready, target, closed),
                wanted,
                "ready {ready}, target {target}, closed {closed}"
            );
        }
    }

    #[tokio::test]
    async fn a_pool_of_none_makes_nothing_and_closes_cleanly() {
        let dir = tempfile::tempdir().unwrap();
        let pool = SparePool::new(dir.path().join("spare"), 0);
        pool.open().await.unwrap();
        assert!(!pool.take_into(&dir.path().join("pod")).await.unwrap());
        assert_eq!(pool.ready_count().await, 0);
        pool.close().await.unwrap();
        assert!(!dir.path().join("spare").exists());
    }
}
