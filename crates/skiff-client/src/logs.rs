//! Reading container logs (`pods/NAME/log`): the contract between the API server and whoever
//! holds the logs (the node agent), so the server streams logs without knowing how or where
//! containers run. It lives in the client crate, which both sides depend on.

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use serde_json::Value;

use skiff_api::status::ApiError;

/// The query of a `pods/log` request, as kubectl sends it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LogOptions {
    /// `previous=true`: the instance before the current one (`kubectl logs --previous`).
    pub previous: bool,
    /// `follow=true`: keep streaming until the container stops or the reader leaves.
    pub follow: bool,
    /// `tailLines=N`: only the last N lines.
    pub tail_lines: Option<u64>,
    /// `limitBytes=N`: stop after N bytes.
    pub limit_bytes: Option<u64>,
    /// `timestamps=true`: prefix each line with the RFC 3339 time it was written.
    pub timestamps: bool,
    /// `sinceSeconds=N`: only lines written in the last N seconds.
    pub since_seconds: Option<u64>,
    /// `sinceTime=RFC3339`: only lines written at or after that time (`kubectl logs
    /// --since-time`).
    pub since_time: Option<jiff::Timestamp>,
}

impl LogOptions {
    /// The earliest time a line may carry to be shown at `now`: `sinceTime`, else `now`
    /// minus `sinceSeconds` (none when that lies before any representable time).
    pub fn since(&self, now: jiff::Timestamp) -> Option<jiff::Timestamp> {
        if let Some(time) = self.since_time {
            return Some(time);
        }
        let seconds = i64::try_from(self.since_seconds?).ok()?;
        now.checked_sub(jiff::SignedDuration::from_secs(seconds))
            .ok()
    }
}

/// A stream of log bytes.
pub type LogStream = BoxStream<'static, std::io::Result<Bytes>>;

/// Serves container logs; implemented by the node agent that runs the containers.
#[async_trait]
pub trait PodLogs: Send + Sync {
    /// The log of `container` (defaulted as Kubernetes does when `None`) of pod
    /// `namespace/pod`. Errors carry the status the API answers with.
    async fn logs(
        &self,
        namespace: &str,
        pod: &str,
        container: Option<&str>,
        options: LogOptions,
    ) -> Result<LogStream, ApiError>;
}

/// Picks the container a log request means, as the API server's pod log REST does: the one
/// asked for if the pod has it, the `kubectl.kubernetes.io/default-container` annotation, or
/// the only container; otherwise a 400 listing the choices.
pub fn select_container(pod: &Value, requested: Option<&str>) -> Result<String, ApiError> {
    let pod_name = pod
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    let names = |field: &str| -> Vec<String> {
        pod.pointer(&format!("/spec/{field}"))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|c| c.get("name").and_then(Value::as_str).map(str::to_string))
            .collect()
    };
    let containers = names("containers");
    let init_containers = names("initContainers");
    let ephemeral = names("ephemeralContainers");
    if let Some(name) = requested.filter(|n| !n.is_empty()) {
        let known = containers
            .iter()
            .chain(&init_containers)
            .chain(&ephemeral)
            .any(|c| c == name);
        if known {
            return Ok(name.to_string());
        }
        return Err(ApiError::bad_request(format!(
            "container {name} is not valid for pod {pod_name}"
        )));
    }
    if let Some(default) = pod
        .pointer("/metadata/annotations/kubectl.kubernetes.io~1default-container")
        .and_then(Value::as_str)
        .filter(|d| containers.iter().any(|c| c == d))
    {
        return Ok(default.to_string());
    }
    if containers.len() == 1 {
        return Ok(containers[0].clone());
    }
    let mut message = format!(
        "a container name must be specified for pod {pod_name}, choose one of: [{}]",
        containers.join(" ")
    );
    if !init_containers.is_empty() {
        message.push_str(&format!(
            " or one of the init containers: [{}]",
            init_containers.join(" ")
        ));
    }
    if !ephemeral.is_empty() {
        message.push_str(&format!(
            " or one of the ephemeral containers: [{}]",
            ephemeral.join(" ")
        ));
    }
    Err(ApiError::bad_request(message))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_earliest_line_comes_from_since_time_or_since_seconds() {
        let now: jiff::Timestamp = "2024-05-01T10:00:10Z".parse().unwrap();
        let at = |text: &str| Some(text.parse::<jiff::Timestamp>().unwrap());
        let seconds = |n| LogOptions {
            since_seconds: Some(n),
            ..LogOptions::default()
        };
        assert_eq!(LogOptions::default().since(now), None);
        assert_eq!(seconds(10).since(now), at("2024-05-01T10:00:00Z"));
        // Further back than time goes: every line.
        assert_eq!(seconds(u64::MAX).since(now), None);
        assert_eq!(seconds(i64::MAX as u64).since(now), None);
        let time = LogOptions {
            since_time: at("2024-05-01T09:00:00Z"),
            ..LogOptions::default()
        };
        assert_eq!(time.since(now), at("2024-05-01T09:00:00Z"));
    }

    #[test]
    fn containers_are_chosen_as_kubernetes_chooses_them() {
        let one = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a"}]}});
        let two = json!({"metadata": {"name": "p"},
            "spec": {"containers": [{"name": "a"}, {"name": "b"}], "initContainers": [{"name": "i"}]}});
        let annotated = json!({"metadata": {"name": "p",
                "annotations": {"kubectl.kubernetes.io/default-container": "b"}},
            "spec": {"containers": [{"name": "a"}, {"name": "b"}]}});
        let cases: Vec<(&Value, Option<&str>, Result<&str, &str>)> = vec![
            (&one, None, Ok("a")),
            (&one, Some("a"), Ok("a")),
            (&one, Some("z"), Err("container z is not valid for pod p")),
            (&two, Some("i"), Ok("i")),
            (
                &two,
                None,
                Err("a container name must be specified for pod p, choose one of: [a b] or one of the init containers: [i]"),
            ),
            (&annotated, None, Ok("b")),
        ];
        for (pod, requested, expected) in cases {
            let got = select_container(pod, requested);
            match expected {
                Ok(name) => assert_eq!(got.unwrap(), name),
                Err(message) => {
                    let e = got.unwrap_err();
                    assert_eq!(e.code, 400);
                    assert_eq!(e.message, message);
                }
            }
        }
    }
}
