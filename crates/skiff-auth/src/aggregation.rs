//! ClusterRole aggregation.
