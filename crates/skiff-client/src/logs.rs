//! Reading container logs (`pods/NAME/log`).
//!
//! The contract is defined next to the API server, which streams it to kubectl; it is
//! re-exported here so agents and tools name it through the client crate like everything else
//! they use to talk to the cluster.

pub use skiff_apiserver::logs::{select_container, LogOptions, LogStream, PodLogs};
