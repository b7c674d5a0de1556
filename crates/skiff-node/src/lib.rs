//! Skiff's node agents.
//!
//! A node agent is the only component that changes what a pod *is* after it is bound: it reports
//! the node (its Node object, status and Lease) and drives each bound pod's status from
//! `Pending` to `Running` and, on deletion, confirms the pod is gone. Everything goes through
//! `skiff-client`, so an agent runs in the server process or on another machine alike.
//!
//! [`simulated`] holds nodes that run nothing: pods follow a scripted timeline, which makes
//! large clusters and failure scenarios cheap to reproduce.

pub mod agent;
pub mod demo;
pub mod drain;
pub mod hooks;
pub mod metrics;
mod observed;
pub mod probes;
pub mod simulated;
pub mod status_core;
pub mod store_images;
pub mod wiring;
