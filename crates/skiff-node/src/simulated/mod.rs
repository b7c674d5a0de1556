//! Simulated nodes: Node objects, leases and pod lifecycles without running anything.

pub mod duration;
pub mod timeline;
