//! Container log files and serving them to `kubectl logs`.
//!
//! Each run of a container writes `logs/<container>/<restartCount>.log` in its pod directory,
//! one entry per line in the CRI logging format: `<RFC 3339 time> <stdout|stderr> <F|P> <text>`
//! (`P` marks a partial line whose rest follows). A file that grows past its cap is rotated to
//! `<n>.log.1`, so a chatty container keeps at most twice the cap. The previous run's file stays
//! for `kubectl logs --previous`.

use std::collections::HashSet;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::Pod;
use skiff_client::logs::{select_container, LogOptions, LogStream, PodLogs};
use skiff_client::{ApiError, Client, ClientError, Scope};

use super::sandbox::pod_dir;

/// Where a log file is rotated by default (10 MiB).
pub const DEFAULT_LOG_CAP: u64 = 10 * 1024 * 1024;
/// How often a followed log is checked for more output.
const FOLLOW_POLL: Duration = Duration::from_millis(100);

/// The log directory of one container.
pub fn container_log_dir(pod_dir: &Path, container: &str) -> PathBuf {
    pod_dir.join("logs").join(container)
}

/// The log file of run `restart_count` of a container.
pub fn log_path(pod_dir: &Path, container: &str, restart_count: i32) -> PathBuf {
    container_log_dir(pod_dir, container).join(format!("{restart_count}.log"))
}

/// Appends entries to one run's log file, rotating it at its cap.
pub struct LogWriter {
    path: PathBuf,
    file: File,
    size: u64,
    cap: u64,
}

impl LogWriter {
    /// Opens (creating) the file for appending.
    pub fn open(path: &Path, cap: u64) -> io::Result<LogWriter> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        let size = file.metadata()?.len();
        Ok(LogWriter {
            path: path.to_path_buf(),
            file,
            size,
            cap: cap.max(1024),
        })
    }

    /// Writes a chunk of output as entries; a chunk not ending in a newline ends with a
    /// partial entry. Failures are logged, never fatal: a full disk must not stop a container.
    pub fn write(&mut self, stream: &str, chunk: &[u8], at: Timestamp) {
        let mut out = Vec::with_capacity(chunk.len() + 64);
        let time = at.to_string();
        let mut rest = chunk;
        while !rest.is_empty() {
            let (line, tag, next) = match rest.iter().position(|b| *b == b'\n') {
                Some(i) => (&rest[..i], 'F', &rest[i + 1..]),
                None => (rest, 'P', &rest[rest.len()..]),
            };
            out.extend_from_slice(format!("{time} {stream} {tag} ").as_bytes());
            out.extend_from_slice(line);
            out.push(b'\n');
            rest = next;
        }
        if self.size + out.len() as u64 > self.cap && self.size > 0 {
            if let Err(e) = self.rotate() {
                tracing::warn!(path = %self.path.display(), error = %e, "rotating a container log failed");
            }
        }
        match self.file.write_all(&out) {
            Ok(()) => self.size += out.len() as u64,
            Err(e) => {
                tracing::warn!(path = %self.path.display(), error = %e, "writing a container log failed")
            }
        }
    }

    fn rotate(&mut self) -> io::Result<()> {
        let rotated = rotated_path(&self.path);
        std::fs::rename(&self.path, rotated)?;
        self.file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)?;
        self.size = 0;
        Ok(())
    }

    /// Flushes buffered output.
    pub fn flush(&mut self) {
        let _ = self.file.flush();
    }
}

fn rotated_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".1");
    PathBuf::from(name)
}

/// One entry of a log file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// When it was written, as stored.
    pub time: String,
    /// Whether the line continues in the next entry.
    pub partial: bool,
    /// The text, without newline.
    pub text: Vec<u8>,
}

/// Parses entries; malformed lines are kept as plain text so nothing is lost.
pub fn parse_entries(bytes: &[u8]) -> Vec<Entry> {
    bytes
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|line| {
            let mut parts = line.splitn(4, |b| *b == b' ');
            let time = parts.next().unwrap_or_default();
            let _stream = parts.next();
            let tag = parts.next();
            let text = parts.next();
            match (tag, text) {
                (Some(tag), Some(text)) if tag == b"F" || tag == b"P" => Entry {
                    time: String::from_utf8_lossy(time).into_owned(),
                    partial: tag == b"P",
                    text: text.to_vec(),
                },
                (Some(tag), None) if tag == b"F" || tag == b"P" => Entry {
                    time: String::from_utf8_lossy(time).into_owned(),
                    partial: tag == b"P",
                    text: Vec::new(),
                },
                _ => Entry {
                    time: String::new(),
                    partial: false,
                    text: line.to_vec(),
                },
            }
        })
        .collect()
}

/// Renders entries as `kubectl logs` shows them, applying `sinceSeconds` or `sinceTime`, `tailLines` and
/// `timestamps` (`limitBytes` is applied on the stream).
pub fn render(entries: &[Entry], options: &LogOptions, now: Timestamp) -> Vec<u8> {
    let since = options.since(now);
    let kept: Vec<&Entry> = entries
        .iter()
        .filter(|e| match since {
            Some(since) => e.time.parse::<Timestamp>().map_or(true, |t| t >= since),
            None => true,
        })
        .collect();
    // Whole lines end at an entry that is not partial.
    let start = match options.tail_lines {
        Some(n) => {
            let mut complete = 0u64;
            let mut start = kept.len();
            for i in (0..kept.len()).rev() {
                if !kept[i].partial || i == kept.len() - 1 {
                    if complete == n {
                        break;
                    }
                    complete += 1;
                }
                start = i;
            }
            // Back up to the beginning of the line `start` is in.
            while start > 0 && kept[start - 1].partial {
                start -= 1;
            }
            start
        }
        None => 0,
    };
    let mut out = Vec::new();
    let mut line_start = true;
    for e in &kept[start..] {
        if options.timestamps && line_start {
            out.extend_from_slice(e.time.as_bytes());
            out.push(b' ');
        }
        out.extend_from_slice(&e.text);
        if !e.partial {
            out.push(b'\n');
        }
        line_start = !e.partial;
    }
    out
}

fn read_all(path: &Path) -> Vec<u8> {
    let mut bytes = std::fs::read(rotated_path(path)).unwrap_or_default();
    bytes.extend(std::fs::read(path).unwrap_or_default());
    bytes
}

/// The runs of a container that have log files, in order.
pub fn runs(dir: &Path) -> Vec<i32> {
    let mut out: Vec<i32> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .filter_map(|e| {
            e.file_name()
                .to_str()?
                .strip_suffix(".log")?
                .parse::<i32>()
                .ok()
        })
        .collect();
    out.sort_unstable();
    out
}

/// The container runs whose processes still run, as `uid/container/run`; a followed log ends
/// when its run leaves this set.
#[derive(Clone, Debug, Default)]
pub struct LiveRuns {
    inner: Arc<Mutex<HashSet<String>>>,
}

impl LiveRuns {
    fn key(uid: &str, container: &str, run: i32) -> String {
        format!("{uid}/{container}/{run}")
    }

    /// Marks a run as running.
    pub fn insert(&self, uid: &str, container: &str, run: i32) {
        if let Ok(mut set) = self.inner.lock() {
            set.insert(Self::key(uid, container, run));
        }
    }

    /// Marks a run as finished.
    pub fn remove(&self, uid: &str, container: &str, run: i32) {
        if let Ok(mut set) = self.inner.lock() {
            set.remove(&Self::key(uid, container, run));
        }
    }

    /// Whether a run is running.
    pub fn contains(&self, uid: &str, container: &str, run: i32) -> bool {
        self.inner
            .lock()
            .map(|set| set.contains(&Self::key(uid, container, run)))
            .unwrap_or(false)
    }
}

/// Serves logs from the agent's files.
#[derive(Clone)]
pub struct AgentLogs {
    client: Arc<dyn Client>,
    data_dir: PathBuf,
    live: LiveRuns,
}

impl AgentLogs {
    /// Logs under `data_dir`, pods looked up through `client`.
    pub fn new(client: Arc<dyn Client>, data_dir: PathBuf, live: LiveRuns) -> AgentLogs {
        AgentLogs {
            client,
            data_dir,
            live,
        }
    }
}

fn api_error(e: ClientError) -> ApiError {
    match e {
        ClientError::Api(e) => e,
        other => ApiError::internal(other.to_string()),
    }
}

/// A file being followed: where reading stopped and what is left of a partial line.
struct Follow {
    path: PathBuf,
    offset: u64,
    pending: Vec<u8>,
    uid: String,
    container: String,
    run: i32,
    live: LiveRuns,
    options: LogOptions,
    remaining: Option<u64>,
    finished: bool,
}

impl Follow {
    /// New complete entries since the last read, rendered; rotation starts the file over.
    fn read_more(&mut self) -> Vec<u8> {
        let Ok(mut file) = File::open(&self.path) else {
            return Vec::new();
        };
        let len = file.metadata().map(|m| m.len()).unwrap_or(0);
        if len < self.offset {
            self.offset = 0;
        }
        if file.seek(SeekFrom::Start(self.offset)).is_err() {
            return Vec::new();
        }
        let mut bytes = Vec::new();
        if file.read_to_end(&mut bytes).is_err() {
            return Vec::new();
        }
        self.offset += bytes.len() as u64;
        self.pending.extend_from_slice(&bytes);
        let Some(last_newline) = self.pending.iter().rposition(|b| *b == b'\n') else {
            return Vec::new();
        };
        let complete: Vec<u8> = self.pending.drain(..=last_newline).collect();
        let options = LogOptions {
            tail_lines: None,
            since_seconds: None,
            since_time: None,
            ..self.options.clone()
        };
        render(&parse_entries(&complete), &options, Timestamp::now())
    }

    fn limit(&mut self, mut bytes: Vec<u8>) -> Vec<u8> {
        if let Some(remaining) = self.remaining.as_mut() {
            if bytes.len() as u64 >= *remaining {
                bytes.truncate(*remaining as usize);
                self.finished = true;
            }
            *remaining -= bytes.len() as u64;
        }
        bytes
    }
}

#[async_trait]
impl PodLogs for AgentLogs {
    async fn logs(
        &self,
        namespace: &str,
        pod_name: &str,
        container: Option<&str>,
        options: LogOptions,
    ) -> Result<LogStream, ApiError> {
        let pods = skiff_api::resources::find("", "v1", "pods")
            .ok_or_else(|| ApiError::internal("pods are not served"))?;
        let scope = Scope {
            resource: pods,
            namespace: Some(namespace),
        };
        let value = self.client.get(scope, pod_name).await.map_err(api_error)?;
        let container = select_container(&value, container)?;
        let pod: Pod =
            serde_json::from_value(value).map_err(|e| ApiError::internal(e.to_string()))?;
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let dir = container_log_dir(&pod_dir(&self.data_dir, &uid), &container);
        let known = runs(&dir);
        let run = if options.previous {
            match known.len() {
                n if n >= 2 => known[n - 2],
                _ => {
                    return Err(ApiError::bad_request(format!(
                    "previous terminated container \"{container}\" in pod \"{pod_name}\" not found"
                )))
                }
            }
        } else {
            match known.last() {
                Some(run) => *run,
                None => {
                    let reason = pod
                        .status
                        .as_ref()
                        .and_then(|s| {
                            s.container_statuses
                                .iter()
                                .chain(s.init_container_statuses.iter())
                                .flatten()
                                .find(|c| c.name == container)
                        })
                        .and_then(|c| c.state.as_ref()?.waiting.as_ref()?.reason.clone())
                        .unwrap_or_else(|| "ContainerCreating".to_string());
                    return Err(ApiError::bad_request(format!(
                        "container \"{container}\" in pod \"{pod_name}\" is waiting to start: {reason}"
                    )));
                }
            }
        };
        let path = dir.join(format!("{run}.log"));
        let everything = read_all(&path);
        let offset = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        // Only whole entries go out now; a half-written one is read again when following.
        let cut = everything
            .iter()
            .rposition(|b| *b == b'\n')
            .map_or(0, |i| i + 1);
        let pending_from_current = (everything.len() - cut) as u64;
        let first = render(
            &parse_entries(&everything[..cut]),
            &options,
            Timestamp::now(),
        );
        let mut follow = Follow {
            path,
            offset: offset.saturating_sub(pending_from_current),
            pending: Vec::new(),
            uid,
            container,
            run,
            live: self.live.clone(),
            remaining: options.limit_bytes,
            options: options.clone(),
            finished: !options.follow || options.previous,
        };
        let first = follow.limit(first);
        let head = futures::stream::iter([Ok(Bytes::from(first))]);
        let tail = futures::stream::unfold(follow, |mut f| async move {
            loop {
                if f.finished {
                    return None;
                }
                let alive = f.live.contains(&f.uid, &f.container, f.run);
                let more = f.read_more();
                if !more.is_empty() {
                    let more = f.limit(more);
                    return Some((Ok(Bytes::from(more)), f));
                }
                if !alive {
                    return None;
                }
                tokio::time::sleep(FOLLOW_POLL).await;
            }
        });
        Ok(head.chain(tail).boxed())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(lines: &[(&str, bool, &str)]) -> Vec<Entry> {
        lines
            .iter()
            .map(|(t, p, x)| Entry {
                time: t.to_string(),
                partial: *p,
                text: x.as_bytes().to_vec(),
            })
            .collect()
    }

    #[test]
    fn written_chunks_become_entries_and_render_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.log");
        let mut w = LogWriter::open(&path, 1 << 20).unwrap();
        let t: Timestamp = "2024-05-01T10:00:00Z".parse().unwrap();
        w.write("stdout", b"one\ntwo\nhal", t);
        w.write("stderr", b"f\n", t);
        w.flush();
        let parsed = parse_entries(&std::fs::read(&path).unwrap());
        assert_eq!(parsed.len(), 4);
        assert_eq!(
            render(&parsed, &LogOptions::default(), t),
            b"one\ntwo\nhalf\n".to_vec()
        );
    }

    #[test]
    fn tail_since_and_timestamps_select_lines() {
        let e = entries(&[
            ("2024-05-01T10:00:00Z", false, "a"),
            ("2024-05-01T10:00:05Z", true, "b1"),
            ("2024-05-01T10:00:06Z", false, "b2"),
            ("2024-05-01T10:00:09Z", false, "c"),
        ]);
        let now: Timestamp = "2024-05-01T10:00:10Z".parse().unwrap();
        let cases = [
            (LogOptions::default(), "a\nb1b2\nc\n"),
            (
                LogOptions {
                    tail_lines: Some(1),
                    ..Default::default()
                },
                "c\n",
            ),
            (
                LogOptions {
                    tail_lines: Some(2),
                    ..Default::default()
                },
                "b1b2\nc\n",
            ),
            (
                LogOptions {
                    tail_lines: Some(0),
                    ..Default::default()
                },
                "",
            ),
            (
                LogOptions {
                    tail_lines: Some(10),
                    ..Default::default()
                },
                "a\nb1b2\nc\n",
            ),
            (
                LogOptions {
                    since_seconds: Some(2),
                    ..Default::default()
                },
                "c\n",
            ),
            (
                LogOptions {
                    since_time: Some("2024-05-01T10:00:06Z".parse().unwrap()),
                    ..Default::default()
                },
                "b2\nc\n",
            ),
            (
                // Further back than time goes: every line, not none.
                LogOptions {
                    since_seconds: Some(u64::MAX),
                    ..Default::default()
                },
                "a\nb1b2\nc\n",
            ),
            (
                LogOptions {
                    timestamps: true,
                    tail_lines: Some(2),
                    ..Default::default()
                },
                "2024-05-01T10:00:05Z b1b2\n2024-05-01T10:00:09Z c\n",
            ),
        ];
        for (options, expected) in cases {
            assert_eq!(
                String::from_utf8(render(&e, &options, now)).unwrap(),
                expected,
                "{options:?}"
            );
        }
    }

    #[test]
    fn big_logs_rotate_at_their_cap() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.log");
        let mut w = LogWriter::open(&path, 2048).unwrap();
        let t = Timestamp::now();
        for i in 0..100 {
            w.write("stdout", format!("line {i}\n").as_bytes(), t);
        }
        w.flush();
        let current = std::fs::metadata(&path).unwrap().len();
        assert!(current <= 2048, "{current}");
        assert!(rotated_path(&path).exists());
        let all = render(&parse_entries(&read_all(&path)), &LogOptions::default(), t);
        assert!(String::from_utf8(all).unwrap().ends_with("line 99\n"));
    }
}
