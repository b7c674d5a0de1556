//! kubelet's image manager: which pull policy applies, whether to pull, and the events and
//! messages kubelet 1.36 reports on the way from a container's `image` to what runs.
//!
//! The decision and the texts are pure functions; [`ensure_image`] strings them together over
//! an [`ImageService`] and reports each event through a callback. Back-off between failed
//! pulls is the pod machine's (`ErrImagePull` then `ImagePullBackOff`), not this module's.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

use super::machine::{Severity, StartFailure};
use super::runtime::{ImageLookupError, ImageService, PullCredentials, ResolvedImage};

/// A container's `imagePullPolicy`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PullPolicy {
    /// Pull at every container start.
    Always,
    /// Pull only when the node does not have the image.
    IfNotPresent,
    /// Never pull: the image must be on the node.
    Never,
}

impl PullPolicy {
    /// The policy in effect: the spec's, else the API server's default by tag (`:latest` or
    /// no tag and no digest pulls `Always`, anything else `IfNotPresent`). An unknown value
    /// cannot pass validation; it is read as `IfNotPresent`.
    pub fn effective(spec: Option<&str>, image: &str) -> PullPolicy {
        match spec {
            Some("Always") => PullPolicy::Always,
            Some("Never") => PullPolicy::Never,
            Some(_) => PullPolicy::IfNotPresent,
            None => default_for(image),
        }
    }
}

/// The API server's default policy for `image` (`SetDefaults_Container`).
fn default_for(image: &str) -> PullPolicy {
    let (name, digested) = match image.split_once('@') {
        Some((name, _)) => (name, true),
        None => (image, false),
    };
    let last = name.rsplit('/').next().unwrap_or(name);
    match last.split_once(':').map(|(_, tag)| tag) {
        Some("latest") => PullPolicy::Always,
        Some(_) => PullPolicy::IfNotPresent,
        None if digested || image.is_empty() => PullPolicy::IfNotPresent,
        None => PullPolicy::Always,
    }
}

/// What the node has of an image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Presence {
    /// Nothing.
    Missing,
    /// A stored image, which a registry also serves.
    Stored,
    /// An image that exists only here (a transitional built-in alias or an imported
    /// directory): no registry has it, so it is never pulled.
    LocalOnly,
}

/// What to do about an image before starting a container.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PullDecision {
    /// Run the image the node has.
    UsePresent,
    /// Pull it first.
    Pull,
    /// Fail with `ErrImageNeverPull`.
    NeverPullMissing,
}

/// kubelet's `shouldPullImage`, with node-only images never pulled.
pub fn decide(policy: PullPolicy, presence: Presence) -> PullDecision {
    match (policy, presence) {
        (_, Presence::LocalOnly) => PullDecision::UsePresent,
        (PullPolicy::Always, _) => PullDecision::Pull,
        (_, Presence::Stored) => PullDecision::UsePresent,
        (PullPolicy::IfNotPresent, Presence::Missing) => PullDecision::Pull,
        (PullPolicy::Never, Presence::Missing) => PullDecision::NeverPullMissing,
    }
}

/// The `Pulled` message for an image the node already has.
pub fn already_present_message(image: &str) -> String {
    format!("Container image \"{image}\" already present on machine and can be accessed by the pod")
}

/// The `ErrImageNeverPull` message.
pub fn never_pull_message(image: &str) -> String {
    format!("Container image \"{image}\" is not present with pull policy of Never")
}

/// The `Pulling` message.
pub fn pulling_message(image: &str) -> String {
    format!("Pulling image \"{image}\"")
}

/// The `Pulled` message after a pull: the download's time, the time including waiting for
/// another pull of the same image, and the image's size.
pub fn pulled_message(image: &str, pull: Duration, total: Duration, size: u64) -> String {
    format!(
        "Successfully pulled image \"{image}\" in {} ({} including waiting). Image size: {size} bytes.",
        go_duration(truncate_to_millis(pull)),
        go_duration(truncate_to_millis(total)),
    )
}

/// The message of an image reference that does not parse (`InspectFailed`, then the
/// container's `InvalidImageName`).
pub fn invalid_name_message(image: &str, error: &str) -> String {
    format!("Failed to apply default image tag \"{image}\": couldn't parse image name \"{image}\": {error}")
}

/// The message of an image store that cannot be read (`InspectFailed`, then
/// `ImageInspectError`).
pub fn inspect_failed_message(image: &str, error: &str) -> String {
    format!("Failed to inspect image \"{image}\": {error}")
}

fn truncate_to_millis(d: Duration) -> Duration {
    Duration::from_millis(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// A duration as Go's `time.Duration.String` prints it: `0s`, `1.5µs`, `523ms`, `1.234s`,
/// `2m3.5s`, `1h0m0s`.
pub fn go_duration(d: Duration) -> String {
    let nanos = d.as_nanos();
    if nanos == 0 {
        return "0s".to_string();
    }
    if nanos < 1_000_000_000 {
        let (unit, scale) = if nanos < 1_000 {
            ("ns", 1)
        } else if nanos < 1_000_000 {
            ("µs", 1_000)
        } else {
            ("ms", 1_000_000)
        };
        return format!("{}{unit}", decimal(nanos, scale));
    }
    let total_seconds = nanos / 1_000_000_000;
    let hours = total_seconds / 3600;
    let minutes = (total_seconds % 3600) / 60;
    let seconds = decimal(nanos % 60_000_000_000, 1_000_000_000);
    match (hours, minutes) {
        (0, 0) => format!("{seconds}s"),
        (0, m) => format!("{m}m{seconds}s"),
        (h, m) => format!("{h}h{m}m{seconds}s"),
    }
}

/// `value / scale` with the fraction's trailing zeros dropped.
fn decimal(value: u128, scale: u128) -> String {
    let whole = value / scale;
    let fraction = value % scale;
    if fraction == 0 {
        return whole.to_string();
    }
    let width = scale.ilog10() as usize;
    let digits = format!("{fraction:0width$}");
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

/// Why a container's image could not be made ready: the machine's failure kind and the
/// container's waiting message.
pub type ImageFailure = (StartFailure, String);

/// Makes a container's image ready as kubelet's `EnsureImageExists` does, reporting its
/// events through `record`; `credentials` is awaited only when a pull happens.
pub async fn ensure_image<C>(
    service: &dyn ImageService,
    image: &str,
    policy: PullPolicy,
    credentials: C,
    record: &mut (dyn FnMut(Severity, &'static str, String) + Send),
) -> Result<ResolvedImage, ImageFailure>
where
    C: Future<Output = PullCredentials>,
{
    let found = match service.find(image).await {
        Ok(found) => found,
        Err(ImageLookupError::InvalidName(error)) => {
            let message = invalid_name_message(image, &error);
            record(Severity::Warning, "InspectFailed", message.clone());
            return Err((StartFailure::InvalidImageName, message));
        }
        Err(ImageLookupError::Inspect(error)) => {
            let message = inspect_failed_message(image, &error);
            record(Severity::Warning, "InspectFailed", message.clone());
            return Err((StartFailure::ImageInspect, message));
        }
    };
    let presence = match &found {
        None => Presence::Missing,
        Some(resolved) if resolved.local_only => Presence::LocalOnly,
        Some(_) => Presence::Stored,
    };
    match (decide(policy, presence), found) {
        (PullDecision::UsePresent, Some(resolved)) => {
            record(Severity::Normal, "Pulled", already_present_message(image));
            Ok(resolved)
        }
        (PullDecision::NeverPullMissing, _) | (PullDecision::UsePresent, None) => {
            let message = never_pull_message(image);
            record(Severity::Warning, "ErrImageNeverPull", message.clone());
            Err((StartFailure::NeverPull, message))
        }
        (PullDecision::Pull, _) => {
            let credentials = credentials.await;
            record(Severity::Normal, "Pulling", pulling_message(image));
            let began = Instant::now();
            match service.pull(image, &credentials).await {
                Ok(pulled) => {
                    let total = began.elapsed();
                    record(
                        Severity::Normal,
                        "Pulled",
                        pulled_message(
                            image,
                            pulled.pull_duration.min(total),
                            total,
                            pulled.image.size,
                        ),
                    );
                    Ok(pulled.image)
                }
                // The machine reports `Failed` and `Error: ErrImagePull` with this text.
                Err(error) => Err((StartFailure::ImagePull, error)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::runtime::PulledImage;
    use async_trait::async_trait;
    use std::sync::Mutex;

    #[test]
    fn the_effective_policy_is_the_specs_else_the_default_by_tag() {
        let cases = [
            (Some("Always"), "nginx:1.25", PullPolicy::Always),
            (Some("Never"), "nginx", PullPolicy::Never),
            (Some("IfNotPresent"), "nginx", PullPolicy::IfNotPresent),
            (None, "nginx", PullPolicy::Always),
            (None, "nginx:latest", PullPolicy::Always),
            (None, "nginx:1.25", PullPolicy::IfNotPresent),
            (None, "registry:5000/team/app", PullPolicy::Always),
            (None, "registry:5000/team/app:v2", PullPolicy::IfNotPresent),
            (None, "nginx@sha256:abcd", PullPolicy::IfNotPresent),
            (None, "nginx:latest@sha256:abcd", PullPolicy::Always),
        ];
        for (spec, image, want) in cases {
            assert_eq!(PullPolicy::effective(spec, image), want, "{spec:?} {image}");
        }
    }

    #[test]
    fn the_decision_follows_kubelets_should_pull_image() {
        use Presence::*;
        use PullDecision::*;
        use PullPolicy::*;
        let cases = [
            (Always, Missing, Pull),
            (Always, Stored, Pull),
            (Always, LocalOnly, UsePresent),
            (IfNotPresent, Missing, Pull),
            (IfNotPresent, Stored, UsePresent),
            (IfNotPresent, LocalOnly, UsePresent),
            (Never, Missing, NeverPullMissing),
            (Never, Stored, UsePresent),
            (Never, LocalOnly, UsePresent),
        ];
        for (policy, presence, want) in cases {
            assert_eq!(decide(policy, presence), want, "{policy:?} {presence:?}");
        }
    }

    #[test]
    fn event_texts_are_kubelets() {
        assert_eq!(
            already_present_message("nginx:1.25"),
            "Container image \"nginx:1.25\" already present on machine and can be accessed by the pod"
        );
        assert_eq!(
            never_pull_message("app:1"),
            "Container image \"app:1\" is not present with pull policy of Never"
        );
        assert_eq!(pulling_message("nginx"), "Pulling image \"nginx\"");
        assert_eq!(
            pulled_message(
                "nginx:1.18",
                Duration::from_micros(1_234_567),
                Duration::from_micros(2_500_900),
                52_428_800
            ),
            "Successfully pulled image \"nginx:1.18\" in 1.234s (2.5s including waiting). Image size: 52428800 bytes."
        );
        assert_eq!(
            invalid_name_message("Bad:Name", "invalid reference format"),
            "Failed to apply default image tag \"Bad:Name\": couldn't parse image name \"Bad:Name\": invalid reference format"
        );
    }

    #[test]
    fn durations_print_as_go_prints_them() {
        let cases = [
            (Duration::ZERO, "0s"),
            (Duration::from_millis(523), "523ms"),
            (Duration::from_millis(1), "1ms"),
            (Duration::from_micros(1500), "1.5ms"),
            (Duration::from_nanos(1500), "1.5µs"),
            (Duration::from_millis(1000), "1s"),
            (Duration::from_millis(1230), "1.23s"),
            (Duration::from_millis(123_456), "2m3.456s"),
            (Duration::from_secs(3600), "1h0m0s"),
            (Duration::from_millis(3_723_500), "1h2m3.5s"),
        ];
        for (d, want) in cases {
            assert_eq!(go_duration(d), want, "{d:?}");
        }
    }

    /// An image service that records what it was asked and answers from fixed values.
    #[derive(Default)]
    struct RecordingImages {
        found: Option<Result<Option<ResolvedImage>, ImageLookupError>>,
        pulled: Option<Result<PulledImage, String>>,
        calls: Mutex<Vec<String>>,
    }

    #[async_trait]
    impl ImageService for RecordingImages {
        async fn find(&self, image: &str) -> Result<Option<ResolvedImage>, ImageLookupError> {
            self.calls.lock().unwrap().push(format!("find {image}"));
            self.found.clone().unwrap_or(Ok(None))
        }
        async fn pull(
            &self,
            image: &str,
            credentials: &PullCredentials,
        ) -> Result<PulledImage, String> {
            let users: Vec<&str> = credentials.iter().map(|c| c.username.as_str()).collect();
            self.calls
                .lock()
                .unwrap()
                .push(format!("pull {image} as {users:?}"));
            self.pulled
                .clone()
                .unwrap_or_else(|| Err("not configured".to_string()))
        }
    }

    type Recorded = Vec<(Severity, &'static str, String)>;

    async fn run(
        images: &RecordingImages,
        image: &str,
        policy: PullPolicy,
    ) -> (Result<ResolvedImage, ImageFailure>, Recorded) {
        let mut events = Vec::new();
        let credentials = async {
            vec![skiff_images::keyring::Credentials {
                username: "robot".into(),
                password: "secret".into(),
            }]
        };
        let result = ensure_image(
            images,
            image,
            policy,
            credentials,
            &mut |severity, reason, message| events.push((severity, reason, message)),
        )
        .await;
        (result, events)
    }

    fn stored(id: &str) -> ResolvedImage {
        ResolvedImage {
            image_id: id.to_string(),
            size: 42,
            ..ResolvedImage::default()
        }
    }

    #[tokio::test]
    async fn a_missing_image_is_pulled_with_the_pods_credentials() {
        let images = RecordingImages {
            pulled: Some(Ok(PulledImage {
                image: stored("docker.io/library/app@sha256:1"),
                pull_duration: Duration::from_millis(5),
            })),
            ..RecordingImages::default()
        };
        let (result, events) = run(&images, "app:1", PullPolicy::IfNotPresent).await;
        assert_eq!(result.unwrap().image_id, "docker.io/library/app@sha256:1");
        assert_eq!(
            *images.calls.lock().unwrap(),
            vec!["find app:1", "pull app:1 as [\"robot\"]"]
        );
        assert_eq!(events.len(), 2, "{events:?}");
        assert_eq!(
            (events[0].0, events[0].1, events[0].2.as_str()),
            (Severity::Normal, "Pulling", "Pulling image \"app:1\"")
        );
        assert_eq!((events[1].0, events[1].1), (Severity::Normal, "Pulled"));
        assert!(
            events[1]
                .2
                .starts_with("Successfully pulled image \"app:1\" in ")
                && events[1]
                    .2
                    .ends_with(" including waiting). Image size: 42 bytes."),
            "{}",
            events[1].2
        );
    }

    #[tokio::test]
    async fn a_stored_image_is_used_unless_the_policy_is_always() {
        let images = RecordingImages {
            found: Some(Ok(Some(stored("id-1")))),
            pulled: Some(Err("registry down".into())),
            ..RecordingImages::default()
        };
        let (result, events) = run(&images, "app:1", PullPolicy::IfNotPresent).await;
        assert_eq!(result.unwrap().image_id, "id-1");
        assert_eq!(
            events,
            vec![(Severity::Normal, "Pulled", already_present_message("app:1"))]
        );
        let (result, events) = run(&images, "app:1", PullPolicy::Always).await;
        assert_eq!(
            result.unwrap_err(),
            (StartFailure::ImagePull, "registry down".to_string())
        );
        assert_eq!(
            events,
            vec![(Severity::Normal, "Pulling", pulling_message("app:1"))]
        );
    }

    #[tokio::test]
    async fn never_fails_without_pulling_and_local_images_are_never_pulled() {
        let images = RecordingImages::default();
        let (result, events) = run(&images, "app:1", PullPolicy::Never).await;
        assert_eq!(
            result.unwrap_err(),
            (StartFailure::NeverPull, never_pull_message("app:1"))
        );
        assert_eq!(
            events,
            vec![(
                Severity::Warning,
                "ErrImageNeverPull",
                never_pull_message("app:1")
            )]
        );
        assert_eq!(*images.calls.lock().unwrap(), vec!["find app:1"]);

        let alias = RecordingImages {
            found: Some(Ok(Some(ResolvedImage {
                local_only: true,
                ..stored("alias")
            }))),
            ..RecordingImages::default()
        };
        let (result, _) = run(&alias, "nginx", PullPolicy::Always).await;
        assert_eq!(result.unwrap().image_id, "alias");
        assert_eq!(*alias.calls.lock().unwrap(), vec!["find nginx"]);
    }

    #[tokio::test]
    async fn a_bad_reference_is_an_invalid_image_name() {
        let images = RecordingImages {
            found: Some(Err(ImageLookupError::InvalidName(
                "invalid reference format".into(),
            ))),
            ..RecordingImages::default()
        };
        let (result, events) = run(&images, "Bad:Name", PullPolicy::IfNotPresent).await;
        let message = invalid_name_message("Bad:Name", "invalid reference format");
        assert_eq!(
            result.unwrap_err(),
            (StartFailure::InvalidImageName, message.clone())
        );
        assert_eq!(events, vec![(Severity::Warning, "InspectFailed", message)]);
    }
}
