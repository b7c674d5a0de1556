//! Planners of Skiff's controllers.
//!
//! A planner is the pure decision core of a controller: it takes the observed objects and the
//! current time and returns what one controller sync would write, without doing any I/O. An
//! asynchronous reconciler (informers, work queue, API client) is built around it elsewhere and
//! only applies what the planner decided. Keeping behaviour here makes it testable with tables
//! taken from the upstream Kubernetes unit tests.

pub mod apiserver_endpoints;
pub mod certificates;
pub mod cloneset;
pub mod clusterrole_aggregation;
pub mod cronjob;
pub mod daemonset;
pub mod deployment;
pub mod disruption;
pub mod endpoints;
pub mod endpointslice;
pub mod gc;
pub mod hpa;
pub mod job;
pub mod leader_election;
pub mod manager;
pub mod namespace_defaults;
pub mod node_lifecycle;
pub mod replicaset;
pub mod replicationcontroller;
pub mod resourcequota;
pub mod shell;
pub mod statefulset;
pub mod token_secrets;
pub mod volume;
