//! The OCI runtime boundary for Skiff's node agent: a container's description becomes an OCI
//! runtime bundle ([`bundle`], pure), and an [`OciRuntime`] turns bundles into containers.
//!
//! Two runtimes implement it through runc's command line ([`CliRuntime`]): `crun` or `runc`
//! installed on the machine, and the embedded default, youki's `libcontainer` inside Skiff's
//! own binary, run out of process as a shim ([`shim`]). Neither leaves a process of its own
//! beside a running container; the one process kept is the node's [`monitor`], when asked.
//!
//! Measured by `benches/startup.rs` (release build, 2 cores shared with other builds): a
//! busybox container goes from `create` to running in 16 ms (p50; p99 37 ms) with the
//! embedded shim, 17 ms (31 ms) with crun and 30 ms (49 ms) with runc, and no process of
//! any runtime stays resident beside running containers.
//!
//! With a [`monitor`] (one small process per node, not one per container), containers and
//! their exit codes outlive the owner's restarts.
//!
//! A container's stdin can be a pipe, or all its streams a terminal the runtime opens and
//! sends over a console socket ([`console`]); the monitor keeps their ends too.

pub mod bundle;
pub mod cli;
pub mod console;
pub mod monitor;
pub mod pages;
pub mod runtime;
pub mod shim;

pub use bundle::{generate_spec, write_bundle, BundleError, ContainerConfig};
pub use cli::CliRuntime;
pub use monitor::monitor_main;
pub use runtime::{
    ContainerId, ContainerState, ContainerStatus, ExecChild, ExecProcess, HeldInput, InputRequest,
    OciError, OciRuntime, ProcessStdio, RecoveredStreams,
};
pub use shim::{embedded_runtime, shim_main};
