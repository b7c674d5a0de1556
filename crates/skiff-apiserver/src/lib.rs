//! Skiff's Kubernetes-compatible API server.

pub mod openapi;
