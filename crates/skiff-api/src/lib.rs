//! Kubernetes API types and machinery for Skiff.
//!
//! This crate owns what the API means, not how it travels or where it is kept: the registry of
//! served resources, defaulting and validation with Kubernetes' messages, label and field
//! selectors, the patch formats, server-side printing, and the OpenKruise CloneSet types. It
//! does no I/O and knows nothing of HTTP, tokio or storage.

pub mod admission_authz;
pub mod admission_cel;
pub mod admission_policy;
pub mod cloneset;
pub mod conversion;
pub mod crd;
pub mod defaults;
pub mod errors;
pub mod eviction;
pub mod flow_control;
pub mod go_diff;
pub mod kinds;
pub mod managed_fields;
pub mod nesting;
pub mod patch;
pub mod printers;
pub mod priority_fairness;
pub mod quantity;
pub mod quota;
pub mod rbac;
pub mod request_options;
pub mod resources;
pub mod scale;
pub mod selector;
pub mod service_account_admission;
pub mod status;
pub mod validation;
pub mod webhook_matching;
pub mod wire;
pub mod yaml;

pub use k8s_openapi;
