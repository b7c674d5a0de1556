//! The options of list, watch and delete requests, as Kubernetes' `ListOptions` and
//! `DeleteOptions` carry them: shared by the server, which reads them from a query, and by
//! clients, which send them.

use std::time::Duration;

/// Options of a list or watch.
#[derive(Clone, Debug, Default)]
pub struct ListOptions {
    /// `labelSelector`.
    pub label_selector: Option<String>,
    /// `fieldSelector`.
    pub field_selector: Option<String>,
    /// `limit`: at most this many items per page.
    pub limit: Option<usize>,
    /// `continue`: the token of the previous page.
    pub continue_token: Option<String>,
    /// `resourceVersion`: for a watch, the revision to start after.
    pub resource_version: Option<String>,
    /// `allowWatchBookmarks`.
    pub allow_bookmarks: bool,
    /// `resourceVersionMatch`: `Exact` lists at `resource_version` itself, `NotOlderThan`
    /// (like no match with a resourceVersion) at least as new as it.
    pub resource_version_match: Option<String>,
    /// `sendInitialEvents` of a watch: `true` starts with the current state as `ADDED` events
    /// ended by a bookmark (when bookmarks are allowed); `false` starts with changes only.
    pub send_initial_events: Option<bool>,
    /// `timeoutSeconds` of a watch.
    pub timeout: Option<Duration>,
}

/// The deletion options Kubernetes clients send.
#[derive(Clone, Debug, Default)]
pub struct DeleteOptions {
    /// `gracePeriodSeconds`.
    pub grace_period_seconds: Option<i64>,
    /// `propagationPolicy`: `Orphan`, `Background` or `Foreground`.
    pub propagation_policy: Option<String>,
    /// `preconditions.uid`.
    pub precondition_uid: Option<String>,
    /// `preconditions.resourceVersion`.
    pub precondition_resource_version: Option<String>,
    /// Validate but do not persist.
    pub dry_run: bool,
}
