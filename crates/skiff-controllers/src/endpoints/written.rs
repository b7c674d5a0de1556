//! Remembers a controller's own writes until its informer cache shows them (upstream
//! `staleEndpointsTracker` and `EndpointSliceTracker`). A sync that plans from a cache missing
//! its last write would redo it: create a second slice, or update from an old version. Pod
//! events arrive within milliseconds of each other during a rollout, so this matters.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// How long a write may stay unseen before it is forgotten; a cache never lags this much
/// unless the object was changed again by someone else in a way that hides the write.
const FORGET_AFTER: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expected {
    /// The object was written at this resourceVersion.
    Version(u64),
    /// The object was deleted.
    Gone,
}

/// Unseen writes by object name.
type Writes = HashMap<String, (Expected, Instant)>;

/// Writes a cache has yet to show, grouped by the Service they were made for.
#[derive(Debug, Default)]
pub struct WrittenVersions {
    groups: Mutex<HashMap<String, Writes>>,
}

fn parse_version(version: &str) -> Option<u64> {
    version.parse().ok()
}

impl WrittenVersions {
    /// No writes remembered.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Writes>> {
        match self.groups.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Records that object `name` of `group` was created or updated to `resource_version`.
    pub fn written(&self, group: &str, name: &str, resource_version: Option<&str>) {
        let Some(version) = resource_version.and_then(parse_version) else {
            return;
        };
        self.lock().entry(group.to_string()).or_default().insert(
            name.to_string(),
            (Expected::Version(version), Instant::now()),
        );
    }

    /// Records that object `name` of `group` was deleted.
    pub fn deleted(&self, group: &str, name: &str) {
        self.lock()
            .entry(group.to_string())
            .or_default()
            .insert(name.to_string(), (Expected::Gone, Instant::now()));
    }

    /// Whether the cache still lacks one of the group's writes; `cached_version` gives the
    /// resourceVersion the cache holds for a name (`None` when absent). Writes the cache shows
    /// are forgotten.
    pub fn is_stale(&self, group: &str, cached_version: impl Fn(&str) -> Option<String>) -> bool {
        let mut groups = self.lock();
        let Some(writes) = groups.get_mut(group) else {
            return false;
        };
        let now = Instant::now();
        writes.retain(|name, (expected, at)| {
            if now.duration_since(*at) > FORGET_AFTER {
                return false;
            }
            let cached = cached_version(name);
            let seen = match expected {
                Expected::Gone => cached.is_none(),
                Expected::Version(want) => cached
                    .as_deref()
                    .and_then(parse_version)
                    .is_some_and(|have| have >= *want),
            };
            !seen
        });
        let stale = !writes.is_empty();
        if !stale {
            groups.remove(group);
        }
        stale
    }

    /// Forgets every write of a group, once its Service is gone.
    pub fn forget(&self, group: &str) {
        self.lock().remove(group);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_until_the_cache_shows_every_write() {
        let tracker = WrittenVersions::new();
        assert!(!tracker.is_stale("ns/web", |_| None), "nothing written");

        tracker.written("ns/web", "web-abcde", Some("12"));
        tracker.deleted("ns/web", "web-old");
        let cache_before = |name: &str| match name {
            "web-abcde" => Some("11".to_string()),
            "web-old" => Some("3".to_string()),
            _ => None,
        };
        assert!(tracker.is_stale("ns/web", cache_before));
        assert!(
            !tracker.is_stale("ns/other", cache_before),
            "groups are apart"
        );

        let cache_half = |name: &str| match name {
            "web-abcde" => Some("12".to_string()),
            "web-old" => Some("3".to_string()),
            _ => None,
        };
        assert!(
            tracker.is_stale("ns/web", cache_half),
            "the deletion is unseen"
        );

        let cache_after = |name: &str| match name {
            "web-abcde" => Some("15".to_string()),
            _ => None,
        };
        assert!(!tracker.is_stale("ns/web", cache_after));
        assert!(
            !tracker.is_stale("ns/web", cache_before),
            "seen writes are forgotten"
        );
    }

    #[test]
    fn a_created_object_missing_from_the_cache_is_stale_until_forgotten() {
        let tracker = WrittenVersions::new();
        tracker.written("ns/web", "web", Some("7"));
        assert!(tracker.is_stale("ns/web", |_| None));
        tracker.forget("ns/web");
        assert!(!tracker.is_stale("ns/web", |_| None));
    }
}
