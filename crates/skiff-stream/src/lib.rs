//! The streaming protocols behind `kubectl exec`, `attach` and `port-forward`, server side,
//! independent of any HTTP server: [`negotiate`] picks the protocol from the upgrade request's
//! headers (a pure function), then [`remotecommand`] and [`portforward`] run a session over the
//! upgraded connection and hand the caller plain async byte streams.

pub mod negotiate;
pub mod portforward;
pub mod remotecommand;
pub mod spdy;
pub mod websocket;
