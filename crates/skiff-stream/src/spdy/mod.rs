//! SPDY/3.1, the multiplexing protocol kubectl speaks for exec, attach and port-forward (and,
//! tunnelled in WebSocket messages, for port-forward from 1.31 on). No maintained crate
//! implements it, so it is written here: [`frame`] is the wire format and header compression,
//! [`connection`] the server side of a session.

pub mod connection;
pub mod dictionary;
pub mod frame;

pub use connection::{SpdyConnection, SpdyStream};
