//! Who may do what, decided without I/O.
//!
//! kube-apiserver authorizes every request from its attributes (user, verb, API group,
//! resource, subresource, name, namespace, or a non-resource path) against RBAC Roles and
//! bindings. This crate is that decision as pure functions over a snapshot of those objects, so
//! the server, review endpoints and tests share one implementation:
//!
//! - [`user`]: the authenticated identity and Kubernetes' well-known user and group names;
//! - [`attributes`]: what a request asks to do, and the 403 message Kubernetes words for it;
//! - [`request_info`]: those attributes as kube-apiserver derives them from a method and URL;
//! - [`rule`]: matching one `PolicyRule` against a request, and whether rules cover others
//!   (the escalation check);
//! - [`rbac`]: resolving the rules bound to a user and the authorizer chain (`system:masters`
//!   first, then RBAC);
//! - [`aggregation`]: the rules an aggregated ClusterRole should hold;
//! - [`node`]: the Node authorizer, deciding kubelets' requests from the graph of their pods.

pub mod aggregation;
pub mod attributes;
pub mod node;
pub mod rbac;
pub mod request_info;
pub mod rule;
pub mod user;
