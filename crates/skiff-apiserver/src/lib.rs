//! Skiff's Kubernetes-compatible API server.
//!
//! The server owns HTTP: routing, authentication, content negotiation (JSON, YAML and
//! protobuf in; JSON and Table out), discovery, OpenAPI, the patch verbs, and admission over the
//! generic [`registry::Registry`], which is the only path to the store. It knows nothing of
//! controllers or processes.

pub mod admission;
pub mod admission_policies;
pub mod aggregator;
pub mod allocator;
pub mod api_services;
pub mod authz;
pub mod bodies;
pub mod bootstrap_tokens;
pub mod client_certs;
pub mod component_status;
pub mod crd_controller;
pub mod discovery;
pub mod eviction;
pub mod filter;
pub mod flow_control;
pub mod inflight;
pub mod local_client;
pub mod logs;
pub mod meta;
pub mod metrics;
pub mod metrics_api;
pub mod node_graph;
pub mod node_restriction;
pub mod openapi;
pub mod openapi_v2;
pub mod options;
pub mod policy_admission;
pub mod protobuf;
pub mod rbac_bootstrap;
pub mod rbac_controller_roles;
pub mod recovery;
pub mod registry;
pub mod scale;
pub mod server;
pub mod service_account_tokens;
pub mod snapshot_cache;
pub mod status;
pub mod stored_json;
pub mod stored_labels;
pub mod streaming;
pub mod system;
pub mod token_request;
pub mod webhooks;

pub use local_client::LocalClient;
