//! What the graceful-termination tests check on both runtimes: a pod whose preStop hook, SIGTERM
//! trap and main loop each append the boot clock (`/proc/uptime`) to a file of a host
//! directory, deleted with a 3 s grace period; the files then tell in which order each step
//! came.

use std::path::Path;
use std::time::Instant;

use super::LineStream;

/// Seconds since the machine booted, as containers read them from `/proc/uptime` (busybox's
/// `date` has no sub-second format): the same clock, `CLOCK_BOOTTIME`.
pub fn uptime_seconds() -> f64 {
    let now = nix::time::clock_gettime(nix::time::ClockId::CLOCK_BOOTTIME)
        .unwrap_or_else(|e| panic!("cannot read the boot-time clock: {e}"));
    now.tv_sec() as f64 + now.tv_nsec() as f64 / 1e9
}

/// The `kubectl` arguments of a watch on pod `pod` printing each event's type on a line of
/// its own. Started before the delete, it sees the pod go without `kubectl delete`'s own
/// polling delay.
pub fn event_watch_args(pod: &str) -> [&str; 7] {
    [
        "get",
        "pod",
        pod,
        "-w",
        "--output-watch-events",
        "-o",
        "jsonpath={.type}{\"\\n\"}",
    ]
}

/// The times in a file of one time a line (the first word of each line, in seconds of the
/// boot clock); none when the file is missing.
pub fn read_times(path: &Path) -> Vec<f64> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_whitespace().next()?.parse().ok())
        .collect()
}

/// What a graceful termination left in the pod's directory, and when the test saw it start
/// and end.
#[derive(Debug)]
pub struct Termination {
    /// The boot clock when the delete was sent.
    pub deleted_at: f64,
    /// Seconds from the delete until a watch saw the pod go.
    pub gone_after: f64,
    /// When the preStop hook ran (`prestop`).
    pub pre_stop: Vec<f64>,
    /// When the container's SIGTERM trap ran (`term`).
    pub term: Vec<f64>,
    /// When the container's loop last wrote (`alive`).
    pub alive: Vec<f64>,
}

impl Termination {
    /// Deletes the pod through `delete` once `watch` (over [`event_watch_args`]) has listed
    /// it, waits until the watch sees it go, and reads what its files in `dir` recorded.
    pub fn after_delete(dir: &Path, mut watch: LineStream, delete: impl FnOnce()) -> Termination {
        watch.wait_for_line("the watch to list the pod", |l| l == "ADDED");
        let deleted_at = uptime_seconds();
        let began = Instant::now();
        delete();
        watch.wait_for_line("the pod to go", |l| l == "DELETED");
        let gone_after = began.elapsed().as_secs_f64();
        Termination::read(dir, deleted_at, gone_after)
    }

    /// Reads the `prestop`, `term` and `alive` files of `dir`.
    pub fn read(dir: &Path, deleted_at: f64, gone_after: f64) -> Termination {
        Termination {
            deleted_at,
            gone_after,
            pre_stop: read_times(&dir.join("prestop")),
            term: read_times(&dir.join("term")),
            alive: read_times(&dir.join("alive")),
        }
    }

    /// The timeline in one line, for failure messages.
    pub fn report(&self) -> String {
        format!(
            "deleted at {:.3}, gone after {:.3} s; preStop {:?}, TERM {:?}, last alive {:?}",
            self.deleted_at,
            self.gone_after,
            self.pre_stop,
            self.term,
            self.alive.last()
        )
    }

    /// Asserts Kubernetes' order for a container that ignores SIGTERM and a 3 s grace period:
    /// preStop first; SIGTERM once it is done (after its 1 s sleep); the container lives on
    /// until SIGKILL at the end of the grace period, and only then is the pod gone. Only the
    /// order and the lower bounds are asserted: how soon each step follows is the machine's
    /// load, bounded by the watch's deadline.
    pub fn assert_pre_stop_then_sigterm_then_sigkill(&self) {
        let report = self.report();
        assert_eq!(self.pre_stop.len(), 1, "one preStop: {report}");
        assert_eq!(self.term.len(), 1, "one SIGTERM: {report}");
        // `/proc/uptime` counts in hundredths, rounded down.
        assert!(
            self.pre_stop[0] + 0.01 >= self.deleted_at,
            "preStop ran after the delete: {report}"
        );
        assert!(
            self.term[0] - self.pre_stop[0] >= 1.0,
            "SIGTERM came only after the preStop hook's 1 s: {report}"
        );
        let last_alive = self.alive.last().copied().unwrap_or_default();
        assert!(
            last_alive > self.term[0] && last_alive - self.deleted_at >= 2.0,
            "the container ran on after SIGTERM into the end of the grace period: {report}"
        );
        assert!(
            self.gone_after >= 3.0,
            "the pod is gone no sooner than the 3 s grace period: {report}"
        );
        assert!(
            last_alive < self.deleted_at + self.gone_after,
            "the container was killed before the pod was gone: {report}"
        );
    }
}
