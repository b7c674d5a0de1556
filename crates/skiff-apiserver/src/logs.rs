//! The `pods/NAME/log` contract between the API server and the node agent, defined in the
//! client crate both depend on and named here too.

pub use skiff_client::logs::{select_container, LogOptions, LogStream, PodLogs};
