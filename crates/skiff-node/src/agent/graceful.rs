//! Stopping one container run within its grace period: `SIGTERM`, then `SIGKILL` if it is
//! still there when the grace period ends, as kubelet's runtime does.
//!
//! The run is reached through [`StoppableRun`], so the sequence is tested against a recording
//! fake on a paused clock instead of real processes.

use async_trait::async_trait;
use nix::sys::signal::Signal;
use tokio::time::Instant;

use super::process::ContainerProcess;

/// The side effects a stop needs from a container run: signal it, and wait for it to end.
#[async_trait]
pub trait StoppableRun: Send + Sync {
    /// Sends `signal` to the run.
    fn signal(&self, signal: Signal);
    /// Waits until every process of the run is gone and returns its exit code.
    async fn wait(&self) -> i32;
}

#[async_trait]
impl StoppableRun for ContainerProcess {
    fn signal(&self, signal: Signal) {
        ContainerProcess::signal(self, signal);
    }

    async fn wait(&self) -> i32 {
        ContainerProcess::wait(self).await
    }
}

/// How a stop ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stopped {
    /// The run ended on `SIGTERM` within the grace period.
    Terminated,
    /// The grace period ran out and the run was sent `SIGKILL`.
    Killed,
}

/// Sends `SIGTERM` to `run` and waits for it until `deadline`; sends `SIGKILL` then if it has not
/// ended. A deadline already past sends `SIGKILL` right after `SIGTERM`.
pub async fn stop_within(run: &dyn StoppableRun, deadline: Instant) -> Stopped {
    run.signal(Signal::SIGTERM);
    tokio::select! {
        _ = run.wait() => Stopped::Terminated,
        _ = tokio::time::sleep_until(deadline) => {
            run.signal(Signal::SIGKILL);
            Stopped::Killed
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use std::time::Duration;
    use tokio::sync::watch;

    /// A container run that records the signals it gets (with the paused clock's time) and
    /// ends `ends_after` its `SIGTERM`, or never when `None`; `SIGKILL` always ends it.
    struct RecordingRun {
        origin: Instant,
        ends_after: Option<Duration>,
        signals: Mutex<Vec<(Signal, Duration)>>,
        gone: watch::Sender<bool>,
    }

    impl RecordingRun {
        fn new(ends_after: Option<Duration>) -> RecordingRun {
            RecordingRun {
                origin: Instant::now(),
                ends_after,
                signals: Mutex::new(Vec::new()),
                gone: watch::channel(false).0,
            }
        }

        fn signals(&self) -> Vec<(Signal, Duration)> {
            self.signals.lock().unwrap().clone()
        }
    }

    #[async_trait]
    impl StoppableRun for RecordingRun {
        fn signal(&self, signal: Signal) {
            let at = Instant::now() - self.origin;
            self.signals.lock().unwrap().push((signal, at));
            if signal == Signal::SIGKILL {
                self.gone.send_replace(true);
            }
        }

        async fn wait(&self) -> i32 {
            let term = self
                .signals()
                .iter()
                .find(|(s, _)| *s == Signal::SIGTERM)
                .map(|(_, at)| *at);
            let ends = match (term, self.ends_after) {
                (Some(at), Some(after)) => Some(self.origin + at + after),
                _ => None,
            };
            let mut gone = self.gone.subscribe();
            match ends {
                Some(at) => {
                    tokio::select! {
                        _ = tokio::time::sleep_until(at) => 143,
                        _ = gone.wait_for(|g| *g) => 137,
                    }
                }
                None => {
                    let _ = gone.wait_for(|g| *g).await;
                    137
                }
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_run_that_ends_on_sigterm_gets_no_sigkill() {
        let run = RecordingRun::new(Some(Duration::from_secs(3)));
        let outcome = stop_within(&run, Instant::now() + Duration::from_secs(30)).await;
        assert_eq!(outcome, Stopped::Terminated);
        assert_eq!(run.signals(), vec![(Signal::SIGTERM, Duration::ZERO)]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_run_that_ignores_sigterm_is_killed_when_the_grace_period_ends() {
        let run = RecordingRun::new(None);
        let outcome = stop_within(&run, Instant::now() + Duration::from_secs(30)).await;
        assert_eq!(outcome, Stopped::Killed);
        assert_eq!(
            run.signals(),
            vec![
                (Signal::SIGTERM, Duration::ZERO),
                (Signal::SIGKILL, Duration::from_secs(30))
            ]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_run_is_killed_at_the_deadline_not_when_it_would_have_ended() {
        let run = RecordingRun::new(Some(Duration::from_secs(45)));
        let outcome = stop_within(&run, Instant::now() + Duration::from_secs(30)).await;
        assert_eq!(outcome, Stopped::Killed);
        assert_eq!(run.signals()[1], (Signal::SIGKILL, Duration::from_secs(30)));
    }

    #[tokio::test(start_paused = true)]
    async fn with_no_grace_left_sigkill_follows_sigterm_at_once() {
        let run = RecordingRun::new(None);
        let outcome = stop_within(&run, Instant::now()).await;
        assert_eq!(outcome, Stopped::Killed);
        assert_eq!(
            run.signals(),
            vec![
                (Signal::SIGTERM, Duration::ZERO),
                (Signal::SIGKILL, Duration::ZERO)
            ]
        );
    }
}
