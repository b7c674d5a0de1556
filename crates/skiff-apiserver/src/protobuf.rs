//! Placeholder protobuf decoding until the real decoder lands.
#![allow(missing_docs)]
#[derive(Debug, thiserror::Error)]
#[error("protobuf bodies are not supported yet")]
pub struct ProtobufError;
pub fn decode(_b: &[u8]) -> Result<serde_json::Value, ProtobufError> { Err(ProtobufError) }
