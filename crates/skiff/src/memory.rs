//! Giving freed heap memory back to the system.
//!
//! glibc's allocator keeps memory a program frees: it returns pages to the system only from the
//! top of each arena's heap, so one live allocation above a large freed region (a list answer's
//! buffers, a batch of decoded objects, history freed by compaction) pins the whole region, and
//! a busy server's resident size only ever climbs. `malloc_trim` walks every arena and releases
//! the whole pages inside free chunks; calling it now and then bounds what a past burst of load
//! keeps resident. It only returns pages nobody uses, so it never changes what the program sees.

use std::time::Duration;

/// How often [`release_loop`] gives freed memory back: often enough that memory freed after a
/// burst of load returns within seconds, rarely enough that the walk over the arenas (a few
/// milliseconds for hundreds of MiB) costs nothing measurable.
pub const RELEASE_INTERVAL: Duration = Duration::from_secs(10);

/// Returns the free pages of every allocator arena to the system. Returns whether any memory
/// was released; without glibc there is nothing to do and it returns `false`.
// `malloc_trim` is a glibc call that `nix` does not wrap.
#[allow(unsafe_code)]
pub fn release_free_memory() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: malloc_trim only inspects and trims the allocator's own free lists, under the
        // allocator's locks; it is safe to call from any thread at any time.
        unsafe { libc::malloc_trim(0) == 1 }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}

/// Gives freed memory back every `every`, for as long as the process runs.
pub async fn release_loop(every: Duration) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        // The walk takes the arenas' locks; keep it off the async workers.
        if tokio::task::spawn_blocking(release_free_memory)
            .await
            .is_err()
        {
            tracing::warn!("releasing free memory failed");
        }
    }
}

#[cfg(all(test, target_os = "linux", target_env = "gnu"))]
mod tests {
    use super::*;

    /// This process's resident memory in KiB.
    fn resident_kib() -> u64 {
        let status = std::fs::read_to_string("/proc/self/status").expect("read status");
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|kib| kib.parse().ok())
            .expect("VmRSS in /proc/self/status")
    }

    #[test]
    fn freed_memory_pinned_below_a_live_allocation_goes_back_to_the_system() {
        // Run on a thread of our own so the chunks come from one arena and nothing else in the
        // test process frees or allocates in between.
        let (before_release, after_release) = std::thread::spawn(|| {
            // 64 MiB in 4 KiB chunks (below the mmap threshold, so they share the arena's
            // heap), then one live allocation above them that keeps the heap from shrinking
            // from the top when they are freed.
            let chunks: Vec<Vec<u8>> = (0..16 * 1024).map(|i| vec![i as u8; 4096]).collect();
            let pin = vec![1u8; 4096];
            drop(chunks);
            let before = resident_kib();
            let released = release_free_memory();
            let after = resident_kib();
            assert!(released, "malloc_trim found nothing to release");
            drop(pin);
            (before, after)
        })
        .join()
        .expect("allocating thread");
        assert!(
            after_release + 32 * 1024 <= before_release,
            "at least half of the 64 MiB freed should leave the process: \
             {before_release} KiB resident before, {after_release} KiB after"
        );
    }
}
