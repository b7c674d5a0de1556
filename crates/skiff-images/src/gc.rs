//! Image garbage collection as the kubelet does it, as a pure planner: it is told the images
//! present, the ones pods use, the image filesystem's usage and the time, and answers which
//! images to remove. Removing them is the caller's job.
//!
//! - When usage reaches the high threshold (85 %), enough is freed to come back down to the
//!   low threshold (80 %): `capacity * (100 - low) / 100 - available` bytes.
//! - Candidates are the images no pod uses and the runtime has not pinned, least recently used
//!   first, then earliest detected; an image detected less than the minimum age ago (2 minutes)
//!   is skipped, as it was likely pulled for a pod about to start.
//! - With a maximum age set (off by default), an unused image last used longer ago than it is
//!   removed whatever the disk usage, once the collector itself has run that long.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime};

use crate::store::{ContentStore, ImageRecord, StoreError};

/// The kubelet's `imageGCHighThresholdPercent` default.
pub const DEFAULT_HIGH_THRESHOLD_PERCENT: u8 = 85;
/// The kubelet's `imageGCLowThresholdPercent` default.
pub const DEFAULT_LOW_THRESHOLD_PERCENT: u8 = 80;
/// The kubelet's `imageMinimumGCAge` default.
pub const DEFAULT_MIN_AGE: Duration = Duration::from_secs(120);

/// When and how much to collect; the kubelet's `ImageGCPolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GcPolicy {
    /// Disk usage (percent) at which collection starts.
    pub high_threshold_percent: u8,
    /// Disk usage (percent) collection tries to come back down to.
    pub low_threshold_percent: u8,
    /// How long after it is first seen an image is safe from collection.
    pub min_age: Duration,
    /// Unused for longer than this, an image goes regardless of disk usage (`None`: never).
    pub max_age: Option<Duration>,
}

impl Default for GcPolicy {
    fn default() -> Self {
        GcPolicy {
            high_threshold_percent: DEFAULT_HIGH_THRESHOLD_PERCENT,
            low_threshold_percent: DEFAULT_LOW_THRESHOLD_PERCENT,
            min_age: DEFAULT_MIN_AGE,
            max_age: None,
        }
    }
}

/// Why a policy or a collection is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GcError {
    /// A threshold above 100 %.
    #[error("invalid {name} {value}, must be in range [0-100]")]
    ThresholdOutOfRange {
        /// `HighThresholdPercent` or `LowThresholdPercent`, as the kubelet names them.
        name: &'static str,
        /// The value given.
        value: u8,
    },
    /// The low threshold above the high one.
    #[error("LowThresholdPercent {low} can not be higher than HighThresholdPercent {high}")]
    LowAboveHigh {
        /// The low threshold.
        low: u8,
        /// The high threshold.
        high: u8,
    },
    /// The filesystem reported no capacity (the kubelet's `InvalidDiskCapacity` event).
    #[error("invalid capacity 0 on image filesystem")]
    InvalidCapacity,
}

impl GcPolicy {
    /// Checks the thresholds as the kubelet does when it starts.
    pub fn validate(&self) -> Result<(), GcError> {
        for (name, value) in [
            ("HighThresholdPercent", self.high_threshold_percent),
            ("LowThresholdPercent", self.low_threshold_percent),
        ] {
            if value > 100 {
                return Err(GcError::ThresholdOutOfRange { name, value });
            }
        }
        if self.low_threshold_percent > self.high_threshold_percent {
            return Err(GcError::LowAboveHigh {
                low: self.low_threshold_percent,
                high: self.high_threshold_percent,
            });
        }
        Ok(())
    }
}

/// The size and free space of the filesystem holding the images.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FilesystemUsage {
    /// Total bytes.
    pub capacity_bytes: u64,
    /// Bytes an unprivileged writer can still use.
    pub available_bytes: u64,
}

/// One image as the runtime lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresentImage {
    /// The image's ID (its digest), which pods' `imageID`s are matched against.
    pub id: String,
    /// Its size in bytes, what removing it frees.
    pub size: u64,
    /// Kept by the runtime whatever happens (a sandbox image, say).
    pub pinned: bool,
}

/// What the collector remembers of an image between rounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Tracked {
    size: u64,
    pinned: bool,
    first_detected: SystemTime,
    /// `None` until a pod is seen using it.
    last_used: Option<SystemTime>,
}

/// Why an image is to be removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RemovalReason {
    /// Unused for longer than the policy's maximum age.
    Age,
    /// Disk usage is over the high threshold.
    Space,
}

/// One image the plan removes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Removal {
    /// The image's ID.
    pub id: String,
    /// Its size.
    pub size: u64,
    /// Why.
    pub reason: RemovalReason,
}

/// The outcome of one round: what to remove, and whether that is enough.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcPlan {
    /// The images to remove, in order.
    pub removals: Vec<Removal>,
    /// Bytes the disk-usage rule wants freed (0 when under the high threshold).
    pub bytes_to_free: u64,
    /// Bytes the removals for space free.
    pub bytes_freed_for_space: u64,
}

impl GcPlan {
    /// The kubelet's `FreeDiskSpaceFailed` warning when the images eligible for removal cannot
    /// free what is needed; `freed` is what removing them actually freed.
    pub fn shortfall_message(&self, freed: u64) -> Option<String> {
        (freed < self.bytes_to_free).then(|| {
            format!(
                "Failed to garbage collect required amount of images. Attempted to free {} bytes, but only found {freed} bytes eligible to free.",
                self.bytes_to_free
            )
        })
    }
}

/// The collector's memory of images across rounds (first seen, last used), as the kubelet's
/// image GC manager keeps it; every method takes the time, none reads a clock or a disk.
#[derive(Debug, Clone)]
pub struct ImageGc {
    policy: GcPolicy,
    began: SystemTime,
    records: BTreeMap<String, Tracked>,
}

impl ImageGc {
    /// A collector with `policy`, started at `began` (the maximum age waits that long).
    pub fn new(policy: GcPolicy, began: SystemTime) -> Result<Self, GcError> {
        policy.validate()?;
        Ok(ImageGc {
            policy,
            began,
            records: BTreeMap::new(),
        })
    }

    /// Takes in the images present and those pods use at `now`: new images are detected now,
    /// used ones are marked used now, and images gone are forgotten.
    pub fn detect(&mut self, now: SystemTime, present: &[PresentImage], in_use: &BTreeSet<String>) {
        let ids: BTreeSet<&str> = present.iter().map(|image| image.id.as_str()).collect();
        self.records.retain(|id, _| ids.contains(id.as_str()));
        for image in present {
            let record = self.records.entry(image.id.clone()).or_insert(Tracked {
                size: image.size,
                pinned: image.pinned,
                first_detected: now,
                last_used: None,
            });
            record.size = image.size;
            record.pinned = image.pinned;
            if in_use.contains(&image.id) {
                record.last_used = Some(now);
            }
        }
    }

    /// Forgets an image once it is removed.
    pub fn forget(&mut self, id: &str) {
        self.records.remove(id);
    }

    /// The unused, unpinned images in eviction order: least recently used first (never used
    /// before any use), ties broken by earliest detection.
    fn eviction_order(&self, in_use: &BTreeSet<String>) -> Vec<(&String, &Tracked)> {
        let mut images: Vec<_> = self
            .records
            .iter()
            .filter(|(id, record)| !in_use.contains(*id) && !record.pinned)
            .collect();
        images.sort_by_key(|(_, record)| (record.last_used, record.first_detected));
        images
    }

    /// One collection round at `now`: detects the images, then plans removals by age and by
    /// disk usage. Fails, removing nothing, when the filesystem reports no capacity.
    pub fn plan(
        &mut self,
        now: SystemTime,
        present: &[PresentImage],
        in_use: &BTreeSet<String>,
        usage: FilesystemUsage,
    ) -> Result<GcPlan, GcError> {
        self.detect(now, present, in_use);
        let mut plan = GcPlan::default();
        let mut candidates = self.eviction_order(in_use);
        if let Some(max_age) = self.policy.max_age.filter(|age| !age.is_zero()) {
            // Until the collector has run for the maximum age, every image might yet be used.
            if elapsed(self.began, now) > max_age {
                candidates.retain(|(id, record)| {
                    let unused_for =
                        elapsed(record.last_used.unwrap_or(SystemTime::UNIX_EPOCH), now);
                    if unused_for > max_age {
                        plan.removals.push(Removal {
                            id: (*id).clone(),
                            size: record.size,
                            reason: RemovalReason::Age,
                        });
                        false
                    } else {
                        true
                    }
                });
            }
        }
        let capacity = u128::from(usage.capacity_bytes);
        if capacity == 0 {
            return Err(GcError::InvalidCapacity);
        }
        let available = u128::from(usage.available_bytes).min(capacity);
        let usage_percent = 100 - available * 100 / capacity;
        if usage_percent < u128::from(self.policy.high_threshold_percent) {
            return Ok(plan);
        }
        let target_available = capacity * u128::from(100 - self.policy.low_threshold_percent) / 100;
        let to_free = target_available.saturating_sub(available);
        plan.bytes_to_free = u64::try_from(to_free).unwrap_or(u64::MAX);
        let mut freed: u64 = 0;
        for (id, record) in candidates {
            if record.last_used.is_some_and(|used| used >= now) {
                continue;
            }
            if elapsed(record.first_detected, now) < self.policy.min_age {
                continue;
            }
            plan.removals.push(Removal {
                id: id.clone(),
                size: record.size,
                reason: RemovalReason::Space,
            });
            freed = freed.saturating_add(record.size);
            if freed >= plan.bytes_to_free {
                break;
            }
        }
        plan.bytes_freed_for_space = freed;
        Ok(plan)
    }

    /// Every unused image old enough to go, whatever the disk usage (the kubelet's
    /// `DeleteUnusedImages`, run when the node is short of disk).
    pub fn plan_remove_all_unused(
        &mut self,
        now: SystemTime,
        present: &[PresentImage],
        in_use: &BTreeSet<String>,
    ) -> Vec<Removal> {
        self.detect(now, present, in_use);
        self.eviction_order(in_use)
            .into_iter()
            .filter(|(_, record)| {
                record.last_used.is_none_or(|used| used < now)
                    && elapsed(record.first_detected, now) >= self.policy.min_age
            })
            .map(|(id, record)| Removal {
                id: id.clone(),
                size: record.size,
                reason: RemovalReason::Space,
            })
            .collect()
    }
}

impl ImageRecord {
    /// The image's ID for garbage collection: its config digest, shared by every name and tag
    /// of the same content (what `crictl images` shows as IMAGE ID).
    pub fn image_id(&self) -> &str {
        &self.config
    }
}

impl ContentStore {
    /// The stored images as the collector sees them: one per image ID, with the largest size
    /// any of its records gives.
    pub fn gc_inventory(&self) -> Result<Vec<PresentImage>, StoreError> {
        let mut sizes: BTreeMap<String, u64> = BTreeMap::new();
        for record in self.images()? {
            let size = sizes.entry(record.image_id().to_string()).or_default();
            *size = (*size).max(record.size);
        }
        Ok(sizes
            .into_iter()
            .map(|(id, size)| PresentImage {
                id,
                size,
                pinned: false,
            })
            .collect())
    }

    /// Removes every record of the image `id` (all its names and tags), then the blobs,
    /// snapshots and merged trees no other record needs. Returns the records removed.
    pub fn remove_image_id(&self, id: &str) -> Result<Vec<ImageRecord>, StoreError> {
        let doomed: Vec<ImageRecord> = self
            .images()?
            .into_iter()
            .filter(|record| record.image_id() == id)
            .collect();
        let mut removed = Vec::new();
        for record in doomed {
            removed.extend(self.remove_image(&record.name, None, Some(&record.digest))?);
        }
        Ok(removed)
    }
}

/// Time from `earlier` to `later`, zero if the clock went backwards.
fn elapsed(earlier: SystemTime, later: SystemTime) -> Duration {
    later.duration_since(earlier).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000 + seconds)
    }

    fn image(n: u32, size: u64) -> PresentImage {
        PresentImage {
            id: format!("sha256:{n}"),
            size,
            pinned: false,
        }
    }

    fn used(ids: &[u32]) -> BTreeSet<String> {
        ids.iter().map(|n| format!("sha256:{n}")).collect()
    }

    fn no_min_age() -> GcPolicy {
        GcPolicy {
            min_age: Duration::ZERO,
            ..GcPolicy::default()
        }
    }

    /// A disk 90 % full, where `to_free` bytes must go to come down to 80 %.
    fn full_disk_needing(to_free: u64) -> FilesystemUsage {
        FilesystemUsage {
            capacity_bytes: 10 * to_free,
            available_bytes: to_free,
        }
    }

    fn ids(removals: &[Removal]) -> Vec<&str> {
        removals.iter().map(|r| r.id.as_str()).collect()
    }

    fn stored(name: &str, tag: &str, config: &[u8], size: u64) -> ImageRecord {
        let config_digest = crate::Digest::sha256_of(config);
        let manifest = crate::Digest::sha256_of(format!("{name}{config:?}").as_bytes());
        ImageRecord {
            name: name.to_string(),
            tag: Some(tag.to_string()),
            digest: manifest.to_string(),
            manifest: manifest.to_string(),
            config: config_digest.to_string(),
            size,
            blobs: vec![config_digest.to_string()],
            diff_ids: vec![],
        }
    }

    #[test]
    fn the_store_inventory_has_one_entry_per_image_and_removal_takes_every_name() {
        let dir = tempfile::tempdir().unwrap();
        let store = ContentStore::open(dir.path()).unwrap();
        for config in [&b"app"[..], b"db"] {
            store
                .put(&crate::Digest::sha256_of(config), config)
                .unwrap();
        }
        let app = stored("r/app", "1", b"app", 700);
        store.put_image(app.clone()).unwrap();
        store
            .put_image(stored("r/app", "latest", b"app", 700))
            .unwrap();
        store
            .put_image(stored("mirror/app", "1", b"app", 700))
            .unwrap();
        let db = stored("r/db", "5", b"db", 300);
        store.put_image(db.clone()).unwrap();
        let inventory = store.gc_inventory().unwrap();
        let mut expected = vec![
            PresentImage {
                id: app.config.clone(),
                size: 700,
                pinned: false,
            },
            PresentImage {
                id: db.config.clone(),
                size: 300,
                pinned: false,
            },
        ];
        expected.sort_by(|a, b| a.id.cmp(&b.id));
        assert_eq!(inventory, expected);

        // A collection round on a full disk picks the unused image; removing it by ID takes
        // all three of its records and its blobs, and leaves the other image alone.
        let mut gc = ImageGc::new(no_min_age(), at(0)).unwrap();
        let in_use: BTreeSet<String> = [db.image_id().to_string()].into();
        let plan = gc
            .plan(at(1), &inventory, &in_use, full_disk_needing(500))
            .unwrap();
        assert_eq!(ids(&plan.removals), [app.image_id()]);
        let removed = store.remove_image_id(&plan.removals[0].id).unwrap();
        assert_eq!(removed.len(), 3);
        let left = store.images().unwrap();
        assert_eq!(left, [db]);
        assert!(!store.contains(&crate::Digest::sha256_of(b"app")));
        assert!(store.contains(&crate::Digest::sha256_of(b"db")));
    }

    #[test]
    fn the_defaults_are_the_kubelets() {
        let policy = GcPolicy::default();
        assert_eq!(policy.high_threshold_percent, 85);
        assert_eq!(policy.low_threshold_percent, 80);
        assert_eq!(policy.min_age, Duration::from_secs(120));
        assert_eq!(policy.max_age, None);
    }

    #[test]
    fn policies_are_validated_with_the_kubelets_messages() {
        let policy = |high, low| GcPolicy {
            high_threshold_percent: high,
            low_threshold_percent: low,
            ..GcPolicy::default()
        };
        let cases: [(u8, u8, Option<&str>); 4] = [
            (2, 1, None),
            (
                101,
                0,
                Some("invalid HighThresholdPercent 101, must be in range [0-100]"),
            ),
            (
                100,
                101,
                Some("invalid LowThresholdPercent 101, must be in range [0-100]"),
            ),
            (
                1,
                2,
                Some("LowThresholdPercent 2 can not be higher than HighThresholdPercent 1"),
            ),
        ];
        for (high, low, expected) in cases {
            let result = policy(high, low).validate().map_err(|e| e.to_string());
            assert_eq!(result.err().as_deref(), expected, "high {high} low {low}");
        }
        assert!(ImageGc::new(policy(1, 2), at(0)).is_err());
    }

    #[test]
    fn detection_records_first_sight_and_use_and_forgets_removed_images() {
        let mut gc = ImageGc::new(no_min_age(), at(0)).unwrap();
        gc.detect(at(0), &[image(0, 1024), image(1, 2048)], &used(&[1]));
        assert_eq!(gc.records["sha256:0"].first_detected, at(0));
        assert_eq!(gc.records["sha256:0"].last_used, None);
        assert_eq!(gc.records["sha256:1"].last_used, Some(at(0)));
        // The container stops: the last use stays; a new image is detected now.
        gc.detect(
            at(5),
            &[image(0, 1024), image(1, 2048), image(2, 1)],
            &used(&[]),
        );
        assert_eq!(gc.records["sha256:1"].last_used, Some(at(0)));
        assert_eq!(gc.records["sha256:2"].first_detected, at(5));
        assert_eq!(gc.records["sha256:1"].first_detected, at(0));
        gc.detect(at(6), &[], &used(&[]));
        assert!(gc.records.is_empty(), "images gone are forgotten");
    }

    #[test]
    fn images_in_use_are_never_removed() {
        let mut gc = ImageGc::new(no_min_age(), at(0)).unwrap();
        let present = [image(0, 1024), image(1, 2048)];
        let plan = gc
            .plan(at(60), &present, &used(&[1]), full_disk_needing(2048))
            .unwrap();
        assert_eq!(ids(&plan.removals), ["sha256:0"]);
        assert_eq!(plan.bytes_freed_for_space, 1024);
        assert_eq!(plan.bytes_to_free, 2048);
        assert_eq!(
            plan.shortfall_message(1024).as_deref(),
            Some("Failed to garbage collect required amount of images. Attempted to free 2048 bytes, but only found 1024 bytes eligible to free.")
        );
        let all = gc.plan_remove_all_unused(
            at(61),
            &[image(0, 1), image(1, 2), image(2, 2)],
            &used(&[2]),
        );
        assert_eq!(ids(&all), ["sha256:0", "sha256:1"]);
    }

    #[test]
    fn the_least_recently_used_goes_first() {
        let mut gc = ImageGc::new(no_min_age(), at(0)).unwrap();
        let present = [image(0, 1024), image(1, 2048)];
        gc.detect(at(0), &present, &used(&[0, 1]));
        gc.detect(at(1), &present, &used(&[1]));
        gc.detect(at(2), &present, &used(&[]));
        let plan = gc
            .plan(at(62), &present, &used(&[]), full_disk_needing(1024))
            .unwrap();
        assert_eq!(ids(&plan.removals), ["sha256:0"]);
        assert_eq!(plan.bytes_freed_for_space, 1024);
        assert_eq!(plan.shortfall_message(1024), None);
    }

    #[test]
    fn a_never_used_image_goes_before_a_used_one_and_ties_go_by_detection() {
        let mut gc = ImageGc::new(no_min_age(), at(0)).unwrap();
        gc.detect(at(0), &[image(0, 1024)], &used(&[0]));
        gc.detect(at(1), &[image(0, 1024), image(1, 2048)], &used(&[0]));
        let plan = gc
            .plan(
                at(2),
                &[image(0, 1024), image(1, 2048)],
                &used(&[]),
                full_disk_needing(1024),
            )
            .unwrap();
        assert_eq!(ids(&plan.removals), ["sha256:1"], "never used sorts first");
        assert_eq!(plan.bytes_freed_for_space, 2048);

        let mut gc = ImageGc::new(no_min_age(), at(0)).unwrap();
        gc.detect(at(0), &[image(5, 10)], &used(&[]));
        gc.detect(at(1), &[image(5, 10), image(3, 10)], &used(&[]));
        let order = gc.plan_remove_all_unused(at(2), &[image(5, 10), image(3, 10)], &used(&[]));
        assert_eq!(
            ids(&order),
            ["sha256:5", "sha256:3"],
            "same last use: earliest detected first"
        );
    }

    #[test]
    fn under_the_high_threshold_nothing_is_planned() {
        let mut gc = ImageGc::new(
            GcPolicy {
                high_threshold_percent: 90,
                ..no_min_age()
            },
            at(0),
        )
        .unwrap();
        let usage = FilesystemUsage {
            capacity_bytes: 1000,
            available_bytes: 600,
        };
        let plan = gc
            .plan(at(10), &[image(0, 450)], &used(&[]), usage)
            .unwrap();
        assert_eq!(plan, GcPlan::default());
    }

    #[test]
    fn over_the_high_threshold_enough_is_freed_to_reach_the_low_one() {
        let policy = GcPolicy {
            high_threshold_percent: 90,
            low_threshold_percent: 80,
            ..no_min_age()
        };
        let usage = FilesystemUsage {
            capacity_bytes: 1000,
            available_bytes: 50,
        };
        let mut gc = ImageGc::new(policy, at(0)).unwrap();
        let plan = gc
            .plan(at(10), &[image(0, 450)], &used(&[]), usage)
            .unwrap();
        assert_eq!(plan.bytes_to_free, 150, "1000 * 20 % - 50");
        assert_eq!(ids(&plan.removals), ["sha256:0"]);
        assert_eq!(plan.shortfall_message(450), None);

        let mut gc = ImageGc::new(policy, at(0)).unwrap();
        let plan = gc.plan(at(10), &[image(0, 50)], &used(&[]), usage).unwrap();
        assert_eq!(plan.bytes_freed_for_space, 50);
        assert!(
            plan.shortfall_message(50).is_some(),
            "not enough could be freed"
        );

        // Exactly at the threshold counts as over it.
        let at_threshold = FilesystemUsage {
            capacity_bytes: 1000,
            available_bytes: 100,
        };
        let mut gc = ImageGc::new(policy, at(0)).unwrap();
        let plan = gc
            .plan(at(10), &[image(0, 200)], &used(&[]), at_threshold)
            .unwrap();
        assert_eq!(plan.bytes_to_free, 100);
    }

    #[test]
    fn removal_stops_once_enough_is_freed() {
        let mut gc = ImageGc::new(no_min_age(), at(0)).unwrap();
        let present: Vec<_> = (0..5).map(|n| image(n, 1000)).collect();
        for (n, second) in [(3, 1), (1, 2), (4, 3), (0, 4), (2, 5)] {
            gc.detect(at(second), &present, &used(&[n]));
        }
        let plan = gc
            .plan(at(10), &present, &used(&[]), full_disk_needing(1500))
            .unwrap();
        assert_eq!(ids(&plan.removals), ["sha256:3", "sha256:1"]);
    }

    #[test]
    fn an_image_younger_than_the_minimum_age_stays() {
        let policy = GcPolicy {
            min_age: Duration::from_secs(60),
            ..GcPolicy::default()
        };
        let mut gc = ImageGc::new(policy, at(0)).unwrap();
        let present = [image(0, 1024), image(1, 2048)];
        let plan = gc
            .plan(at(0), &present, &used(&[1]), full_disk_needing(1024))
            .unwrap();
        assert!(plan.removals.is_empty(), "just pulled: {plan:?}");
        let plan = gc
            .plan(at(59), &present, &used(&[1]), full_disk_needing(1024))
            .unwrap();
        assert!(plan.removals.is_empty());
        let plan = gc
            .plan(at(60), &present, &used(&[1]), full_disk_needing(1024))
            .unwrap();
        assert_eq!(ids(&plan.removals), ["sha256:0"]);
        let mut fresh = ImageGc::new(policy, at(0)).unwrap();
        assert!(fresh
            .plan_remove_all_unused(at(0), &present, &used(&[1]))
            .is_empty());
        assert_eq!(
            ids(&fresh.plan_remove_all_unused(at(60), &present, &used(&[1]))),
            ["sha256:0"]
        );
    }

    #[test]
    fn pinned_images_are_never_removed() {
        let mut gc = ImageGc::new(no_min_age(), at(0)).unwrap();
        let mut pinned = image(1, 1024);
        pinned.pinned = true;
        let present = [pinned.clone(), image(2, 1024)];
        let plan = gc
            .plan(at(1), &present, &used(&[]), full_disk_needing(4096))
            .unwrap();
        assert_eq!(ids(&plan.removals), ["sha256:2"]);
        let mut other = pinned;
        other.id = "sha256:3".into();
        let all = gc.plan_remove_all_unused(at(2), &[image(1, 1), other], &used(&[]));
        assert_eq!(ids(&all), ["sha256:1"]);
    }

    #[test]
    fn images_unused_past_the_maximum_age_go_whatever_the_disk_usage() {
        let policy = GcPolicy {
            max_age: Some(Duration::from_secs(60)),
            ..no_min_age()
        };
        let roomy = FilesystemUsage {
            capacity_bytes: 1000,
            available_bytes: 900,
        };
        let mut gc = ImageGc::new(policy, at(0)).unwrap();
        let present = [image(0, 1024), image(1, 2048)];
        gc.detect(at(0), &present, &used(&[0, 1]));
        let plan = gc.plan(at(0), &present, &used(&[1]), roomy).unwrap();
        assert!(plan.removals.is_empty(), "used just now");
        let plan = gc.plan(at(60), &present, &used(&[1]), roomy).unwrap();
        assert!(plan.removals.is_empty(), "not past the maximum age yet");
        let plan = gc.plan(at(61), &present, &used(&[1]), roomy).unwrap();
        assert_eq!(
            plan.removals,
            [Removal {
                id: "sha256:0".into(),
                size: 1024,
                reason: RemovalReason::Age
            }]
        );

        // The collector waits its own maximum age before trusting its records.
        let mut young = ImageGc::new(policy, at(1000)).unwrap();
        young.detect(at(0), &present, &used(&[]));
        assert!(young
            .plan(at(1060), &present, &used(&[]), roomy)
            .unwrap()
            .removals
            .is_empty());
        assert_eq!(
            young
                .plan(at(1061), &present, &used(&[]), roomy)
                .unwrap()
                .removals
                .len(),
            2
        );

        // No maximum age: nothing goes however long it sits.
        let mut never = ImageGc::new(no_min_age(), at(0)).unwrap();
        assert!(never
            .plan(at(10_000_000), &present, &used(&[]), roomy)
            .unwrap()
            .removals
            .is_empty());
    }

    #[test]
    fn a_filesystem_without_capacity_is_refused_and_availability_is_capped() {
        let mut gc = ImageGc::new(no_min_age(), at(0)).unwrap();
        let error = gc
            .plan(
                at(1),
                &[image(0, 1)],
                &used(&[]),
                FilesystemUsage {
                    capacity_bytes: 0,
                    available_bytes: 0,
                },
            )
            .unwrap_err();
        assert_eq!(error.to_string(), "invalid capacity 0 on image filesystem");
        let odd = FilesystemUsage {
            capacity_bytes: 100,
            available_bytes: 500,
        };
        assert_eq!(
            gc.plan(at(1), &[image(0, 1)], &used(&[]), odd).unwrap(),
            GcPlan::default()
        );
        let huge = FilesystemUsage {
            capacity_bytes: u64::MAX,
            available_bytes: 1,
        };
        let plan = gc
            .plan(at(1), &[image(0, u64::MAX)], &used(&[]), huge)
            .unwrap();
        assert_eq!(
            plan.bytes_to_free,
            u64::MAX / 5 - 1,
            "20 % of the capacity less the 1 byte free"
        );
        assert_eq!(plan.bytes_freed_for_space, u64::MAX);
    }
}
