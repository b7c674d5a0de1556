//! Skiff's scheduler: places pending pods on nodes as kube-scheduler does.
//!
//! [`planner`] holds the decision, pure and table-tested: which nodes a pod may go to, how they
//! score, and the `FailedScheduling` text when none fits. [`run`] is the thin asynchronous
//! shell around it: it watches pods and nodes through a [`skiff_client::Client`], binds pods,
//! records events and the `PodScheduled` condition, and retries pods that did not fit when the
//! cluster changes.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod events;
pub mod matching;
pub mod planner;
pub mod requests;
mod shell;
pub mod spread;
pub mod volumes;
mod watch;

pub use planner::{needs_scheduling, schedule, NodeChoice, PodsByNode, Unschedulable};
pub use shell::{run, run_with, SchedulerConfig, SchedulerError};
