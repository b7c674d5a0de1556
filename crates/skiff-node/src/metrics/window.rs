//! The sliding window metrics-server keeps: the last two samples of a cumulative CPU counter,
//! from which the mean rate over the time between them is reported.

use std::time::{Duration, Instant, SystemTime};

/// One reading of a cumulative CPU counter and the memory in use at that moment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sample {
    /// Wall-clock time of the reading (reported as the window's end).
    pub at: SystemTime,
    /// Monotonic time of the reading (measures the window's length).
    pub taken: Instant,
    /// CPU time consumed since the counter started, in nanoseconds.
    pub cpu_time_ns: u64,
    /// Working-set memory at the reading, in bytes.
    pub memory_bytes: u64,
}

/// Usage computed from a complete window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WindowUsage {
    /// When the window ended.
    pub timestamp: SystemTime,
    /// How long it was.
    pub window: Duration,
    /// Mean CPU use over the window, in nanocores.
    pub cpu_nanocores: u64,
    /// Memory at the window's end, in bytes.
    pub memory_bytes: u64,
}

/// The last two samples of one counter.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Window {
    previous: Option<Sample>,
    latest: Option<Sample>,
}

impl Window {
    /// An empty window: no usage until two samples arrived.
    pub fn new() -> Window {
        Window::default()
    }

    /// Adds a sample. A counter that went backwards was reset (a process restarted or
    /// exited unreaped), so the window starts over from this sample, as metrics-server drops
    /// such points.
    pub fn push(&mut self, sample: Sample) {
        let went_back = self.latest.is_some_and(|latest| {
            sample.cpu_time_ns < latest.cpu_time_ns || sample.taken <= latest.taken
        });
        self.previous = if went_back { None } else { self.latest };
        self.latest = Some(sample);
    }

    /// The usage over the window, once it holds two samples.
    pub fn usage(&self) -> Option<WindowUsage> {
        let (previous, latest) = (self.previous?, self.latest?);
        let window = latest.taken.checked_duration_since(previous.taken)?;
        let window_ns = window.as_nanos();
        if window_ns == 0 {
            return None;
        }
        let used_ns = u128::from(latest.cpu_time_ns.saturating_sub(previous.cpu_time_ns));
        let nanocores = used_ns.saturating_mul(1_000_000_000) / window_ns;
        Some(WindowUsage {
            timestamp: latest.at,
            window,
            cpu_nanocores: u64::try_from(nanocores).unwrap_or(u64::MAX),
            memory_bytes: latest.memory_bytes,
        })
    }

    /// The latest sample, if any.
    pub fn latest(&self) -> Option<&Sample> {
        self.latest.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(base: (SystemTime, Instant), after_ms: u64, cpu_ms: u64, memory: u64) -> Sample {
        let offset = Duration::from_millis(after_ms);
        Sample {
            at: base.0 + offset,
            taken: base.1 + offset,
            cpu_time_ns: cpu_ms * 1_000_000,
            memory_bytes: memory,
        }
    }

    #[test]
    fn usage_is_the_mean_rate_between_the_last_two_samples() {
        let base = (SystemTime::now(), Instant::now());
        // (samples, expected (nanocores, window ms))
        /// Samples as (ms after start, cumulative CPU ms, memory).
        type Samples = Vec<(u64, u64, u64)>;
        let cases: Vec<(Samples, Option<(u64, u64)>)> = vec![
            (vec![], None),
            (vec![(0, 100, 1)], None),
            // 500 ms of CPU over 1 s: half a core.
            (vec![(0, 100, 1), (1000, 600, 2)], Some((500_000_000, 1000))),
            // Only the last two samples count.
            (
                vec![(0, 0, 1), (1000, 1000, 1), (3000, 1100, 1)],
                Some((50_000_000, 2000)),
            ),
            // A counter that went back restarts the window.
            (vec![(0, 900, 1), (1000, 100, 1)], None),
            (
                vec![(0, 900, 1), (1000, 100, 1), (2000, 350, 1)],
                Some((250_000_000, 1000)),
            ),
            // Idle.
            (vec![(0, 100, 1), (5000, 100, 1)], Some((0, 5000))),
        ];
        for (samples, expected) in cases {
            let mut window = Window::new();
            for (after, cpu, memory) in &samples {
                window.push(sample(base, *after, *cpu, *memory));
            }
            let got = window
                .usage()
                .map(|u| (u.cpu_nanocores, u.window.as_millis() as u64));
            assert_eq!(got, expected, "{samples:?}");
        }
    }

    #[test]
    fn usage_reports_the_latest_memory_and_time() {
        let base = (SystemTime::now(), Instant::now());
        let mut window = Window::new();
        window.push(sample(base, 0, 0, 10));
        window.push(sample(base, 2000, 0, 20));
        let usage = window.usage().unwrap();
        assert_eq!(usage.memory_bytes, 20);
        assert_eq!(usage.timestamp, base.0 + Duration::from_secs(2));
    }
}
