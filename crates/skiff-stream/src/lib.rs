//! The streaming protocols behind `kubectl exec`, `attach` and `port-forward`, server side,
//! independent of any HTTP server: [`negotiate`] picks the protocol from the upgrade request's
//! headers (a pure function), then [`remotecommand`] and [`portforward`] run a session over the
//! upgraded connection and hand the caller plain async byte streams.
//!
//! A server with the request's headers, query and connection in hand wires an exec like this:
//!
//! ```no_run
//! use skiff_stream::negotiate::{negotiate, StreamKind};
//! use skiff_stream::remotecommand::{
//!     CommandOutcome, RemoteCommandOptions, RemoteCommandSession, STREAM_CREATION_TIMEOUT,
//! };
//! use tokio::io::AsyncWriteExt;
//!
//! async fn serve_exec(
//!     headers: &http::HeaderMap,
//!     query: &str,
//!     mut connection: tokio::net::TcpStream,
//! ) -> std::io::Result<()> {
//!     let refused = match negotiate(StreamKind::RemoteCommand, headers) {
//!         Ok(negotiated) => match RemoteCommandOptions::from_query(query) {
//!             Ok(options) => {
//!                 connection.write_all(&negotiated.response_head()).await?;
//!                 let Ok(mut session) = RemoteCommandSession::start(
//!                     connection,
//!                     &negotiated,
//!                     options,
//!                     STREAM_CREATION_TIMEOUT,
//!                 )
//!                 .await
//!                 else {
//!                     return Ok(());
//!                 };
//!                 // Connect session.stdin / stdout / stderr / resize to the process here.
//!                 if let Some(stdout) = session.stdout.as_mut() {
//!                     stdout.write_all(b"hello\n").await?;
//!                 }
//!                 session.finish(CommandOutcome::Exited(0)).await;
//!                 return Ok(());
//!             }
//!             Err(refusal) => refusal,
//!         },
//!         Err(refusal) => refusal,
//!     };
//!     connection.write_all(&refused.response_bytes()).await
//! }
//! ```

pub mod negotiate;
pub mod portforward;
pub mod remotecommand;
pub mod spdy;
pub mod websocket;
