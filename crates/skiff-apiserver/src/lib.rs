//! Skiff's Kubernetes-compatible API server.
