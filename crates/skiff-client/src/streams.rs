//! Streaming into pods (`pods/exec`, `pods/attach`, `pods/portforward`).
//!
//! The contract is defined next to the API server, which negotiates the protocol and hands the
//! upgraded connection over; it is re-exported here so node agents name it through the client
//! crate like everything else they use to talk to the cluster.

pub use skiff_apiserver::streaming::Refusal;
pub use skiff_apiserver::streaming::{
    PodStreamKind, PodStreamRequest, PodStreams, UpgradedConnection, UpgradedIo,
};
