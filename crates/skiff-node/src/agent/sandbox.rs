//! A pod's sandbox on disk: its directory, its volumes, and the shell prologue that gives each
//! container its mounts, a private `/tmp` and the pod's hostname.
//!
//! Layout under `DATA/pods/<uid>/`:
//! - `pod` — `namespace/name`, so leftovers can be named after a restart;
//! - `pgids` — process groups started for the pod, one per line: the group ID, then its
//!   leader's start time (clock ticks since boot) and the boot ID;
//! - `volumes/<name>/` — emptyDir, configMap, secret, downwardAPI and projected contents;
//! - `containers/<name>/tmp/` — the container's private `/tmp`;
//! - `logs/<container>/<restartCount>.log` — see the log module.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{ConfigMap, Container, KeyToPath, Pod, Secret, Volume};
use skiff_client::{Api, Client};

use super::command::{field_value, resource_value, PodFacts};

/// The directory of pod `uid`.
pub fn pod_dir(data_dir: &Path, uid: &str) -> PathBuf {
    data_dir.join("pods").join(uid)
}

/// Where a volume's contents live on the host, and whether it is read-only by nature.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PreparedVolume {
    /// The volume's name.
    pub name: String,
    /// The host path to bind.
    pub host_path: PathBuf,
}

/// Why a volume could not be set up; kubelet reports `FailedMount` with this text.
#[derive(Debug, thiserror::Error)]
#[error("MountVolume.SetUp failed for volume \"{volume}\" : {message}")]
pub struct VolumeError {
    /// The volume.
    pub volume: String,
    /// What went wrong.
    pub message: String,
}

fn io_error(volume: &str, e: std::io::Error) -> VolumeError {
    VolumeError {
        volume: volume.to_string(),
        message: e.to_string(),
    }
}

/// A file of a volume: its path inside the volume, its bytes and its mode, if set.
type VolumeFile = (String, Vec<u8>, Option<i32>);

/// Writes `files` (relative path, bytes) into `dir`, replacing what was there, with `mode`.
fn write_files(dir: &Path, files: &[VolumeFile], default_mode: Option<i32>) -> std::io::Result<()> {
    if dir.exists() {
        std::fs::remove_dir_all(dir)?;
    }
    std::fs::create_dir_all(dir)?;
    for (path, bytes, mode) in files {
        // Keys are validated names, but stay inside the volume whatever they say.
        if path.split('/').any(|part| part == ".." || part.is_empty()) {
            continue;
        }
        let target = dir.join(path);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&target, bytes)?;
        let mode = mode.or(default_mode).unwrap_or(0o644) as u32 & 0o777;
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(mode))?;
    }
    Ok(())
}

/// Selects and renames keys as `items` says (all keys when there are no items).
fn project(
    data: Vec<(String, Vec<u8>)>,
    items: Option<&Vec<KeyToPath>>,
) -> Result<Vec<VolumeFile>, String> {
    match items {
        None => Ok(data.into_iter().map(|(k, v)| (k, v, None)).collect()),
        Some(items) => items
            .iter()
            .map(|item| {
                data.iter()
                    .find(|(k, _)| *k == item.key)
                    .map(|(_, v)| (item.path.clone(), v.clone(), item.mode))
                    .ok_or_else(|| {
                        format!("configmap references non-existent config key: {}", item.key)
                    })
            })
            .collect(),
    }
}

fn config_map_data(cm: &ConfigMap) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = cm
        .data
        .clone()
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, v.into_bytes()))
        .collect();
    out.extend(
        cm.binary_data
            .clone()
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, v.0)),
    );
    out
}

fn secret_data(secret: &Secret) -> Vec<(String, Vec<u8>)> {
    secret
        .data
        .clone()
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, v.0))
        .collect()
}

/// Creates every volume of the pod under its directory (or finds its host path).
pub async fn prepare_volumes(
    client: Arc<dyn Client>,
    pod: &Pod,
    dir: &Path,
    facts: &PodFacts,
) -> Result<Vec<PreparedVolume>, VolumeError> {
    let namespace = pod.metadata.namespace.clone().unwrap_or_default();
    let spec = pod.spec.clone().unwrap_or_default();
    let mut out = Vec::new();
    for volume in spec.volumes.as_deref().unwrap_or_default() {
        let target = dir.join("volumes").join(&volume.name);
        let fail = |message: String| VolumeError {
            volume: volume.name.clone(),
            message,
        };
        let host_path = if let Some(host) = &volume.host_path {
            let path = PathBuf::from(&host.path);
            match host.type_.as_deref() {
                Some("DirectoryOrCreate") => {
                    std::fs::create_dir_all(&path).map_err(|e| io_error(&volume.name, e))?
                }
                Some("FileOrCreate") if !path.exists() => {
                    std::fs::write(&path, b"").map_err(|e| io_error(&volume.name, e))?
                }
                Some("Directory") if !path.is_dir() => {
                    return Err(fail(format!(
                        "hostPath type check failed: {} is not a directory",
                        host.path
                    )))
                }
                Some("File") if !path.is_file() => {
                    return Err(fail(format!(
                        "hostPath type check failed: {} is not a file",
                        host.path
                    )))
                }
                _ => {}
            }
            path
        } else if volume.empty_dir.is_some() {
            std::fs::create_dir_all(&target).map_err(|e| io_error(&volume.name, e))?;
            // Writable by whichever user the containers run as, as Kubernetes makes it.
            std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o777))
                .map_err(|e| io_error(&volume.name, e))?;
            target
        } else if let Some(source) = &volume.config_map {
            let api: Api<ConfigMap> =
                Api::new(client.clone(), Some(&namespace)).map_err(|e| fail(e.to_string()))?;
            let files = match api
                .get_opt(&source.name)
                .await
                .map_err(|e| fail(e.to_string()))?
            {
                Some(cm) => project(config_map_data(&cm), source.items.as_ref()).map_err(fail)?,
                None if source.optional == Some(true) => Vec::new(),
                None => return Err(fail(format!("configmap \"{}\" not found", source.name))),
            };
            write_files(&target, &files, source.default_mode)
                .map_err(|e| io_error(&volume.name, e))?;
            target
        } else if let Some(source) = &volume.secret {
            let api: Api<Secret> =
                Api::new(client.clone(), Some(&namespace)).map_err(|e| fail(e.to_string()))?;
            let name = source.secret_name.clone().unwrap_or_default();
            let files = match api.get_opt(&name).await.map_err(|e| fail(e.to_string()))? {
                Some(secret) => {
                    project(secret_data(&secret), source.items.as_ref()).map_err(fail)?
                }
                None if source.optional == Some(true) => Vec::new(),
                None => return Err(fail(format!("secret \"{name}\" not found"))),
            };
            write_files(&target, &files, source.default_mode.or(Some(0o644)))
                .map_err(|e| io_error(&volume.name, e))?;
            target
        } else if let Some(source) = &volume.downward_api {
            let mut files = Vec::new();
            for item in source.items.as_deref().unwrap_or_default() {
                if let Some(text) = downward_item(pod, &spec.containers, item, facts) {
                    files.push((item.path.clone(), text.into_bytes(), item.mode));
                }
            }
            write_files(&target, &files, source.default_mode)
                .map_err(|e| io_error(&volume.name, e))?;
            target
        } else if let Some(projected) = &volume.projected {
            let mut files = Vec::new();
            for source in projected.sources.as_deref().unwrap_or_default() {
                if let Some(cm_source) = &source.config_map {
                    let api: Api<ConfigMap> = Api::new(client.clone(), Some(&namespace))
                        .map_err(|e| fail(e.to_string()))?;
                    match api
                        .get_opt(&cm_source.name)
                        .await
                        .map_err(|e| fail(e.to_string()))?
                    {
                        Some(cm) => files.extend(
                            project(config_map_data(&cm), cm_source.items.as_ref())
                                .map_err(fail)?,
                        ),
                        None if cm_source.optional == Some(true) => {}
                        None => {
                            return Err(fail(format!("configmap \"{}\" not found", cm_source.name)))
                        }
                    }
                }
                if let Some(secret_source) = &source.secret {
                    let api: Api<Secret> = Api::new(client.clone(), Some(&namespace))
                        .map_err(|e| fail(e.to_string()))?;
                    match api
                        .get_opt(&secret_source.name)
                        .await
                        .map_err(|e| fail(e.to_string()))?
                    {
                        Some(secret) => files.extend(
                            project(secret_data(&secret), secret_source.items.as_ref())
                                .map_err(fail)?,
                        ),
                        None if secret_source.optional == Some(true) => {}
                        None => {
                            return Err(fail(format!(
                                "secret \"{}\" not found",
                                secret_source.name
                            )))
                        }
                    }
                }
                if let Some(downward) = &source.downward_api {
                    for item in downward.items.as_deref().unwrap_or_default() {
                        if let Some(text) = downward_item(pod, &spec.containers, item, facts) {
                            files.push((item.path.clone(), text.into_bytes(), item.mode));
                        }
                    }
                }
                if let Some(token_source) = &source.service_account_token {
                    let token = request_pod_token(
                        client.as_ref(),
                        pod,
                        token_source.audience.as_deref(),
                        token_expiration(token_source.expiration_seconds),
                    )
                    .await
                    .map_err(fail)?;
                    files.push((token_source.path.clone(), token.into_bytes(), None));
                }
            }
            write_files(&target, &files, projected.default_mode)
                .map_err(|e| io_error(&volume.name, e))?;
            target
        } else if let Some(source) = &volume.persistent_volume_claim {
            claim_directory(client.as_ref(), &namespace, &source.claim_name)
                .await
                .map_err(fail)?
        } else {
            // Volume types that need a storage backend (NFS, ...) get an empty directory.
            std::fs::create_dir_all(&target).map_err(|e| io_error(&volume.name, e))?;
            target
        };
        out.push(PreparedVolume {
            name: volume.name.clone(),
            host_path,
        });
    }
    Ok(out)
}

/// The directory on this node behind claim `name`: its volume's `hostPath` or `local` path,
/// made if missing. A claim not bound yet is an error, so the pod waits (the node retries)
/// until the binder has given it a volume, as the kubelet's volume manager waits.
async fn claim_directory(
    client: &dyn Client,
    namespace: &str,
    name: &str,
) -> Result<PathBuf, String> {
    use skiff_api::kinds::{persistent_volume, persistent_volume_claim};
    let processing = |detail: String| format!("error processing PVC {namespace}/{name}: {detail}");
    let claim_scope = skiff_client::Scope {
        resource: &persistent_volume_claim::V1,
        namespace: Some(namespace),
    };
    let claim = client.get(claim_scope, name).await.map_err(|e| {
        processing(format!(
            "failed to fetch PVC from API server: {}",
            e.message()
        ))
    })?;
    let text = |v: &serde_json::Value, p: &str| {
        v.pointer(p)
            .and_then(serde_json::Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let volume_name = text(&claim, "/spec/volumeName");
    if text(&claim, "/status/phase") != "Bound" || volume_name.is_empty() {
        return Err(processing("PVC is not bound".to_string()));
    }
    let volume_scope = skiff_client::Scope {
        resource: &persistent_volume::V1,
        namespace: None,
    };
    let volume = client.get(volume_scope, &volume_name).await.map_err(|e| {
        processing(format!(
            "failed to fetch PV {volume_name} from API server: {}",
            e.message()
        ))
    })?;
    let path = [text(&volume, "/spec/hostPath/path"), text(&volume, "/spec/local/path")]
        .into_iter()
        .find(|p| !p.is_empty())
        .ok_or_else(|| {
            processing(format!("volume {volume_name} is neither a hostPath nor a local volume, which this node cannot mount"))
        })?;
    let path = PathBuf::from(path);
    std::fs::create_dir_all(&path).map_err(|e| e.to_string())?;
    Ok(path)
}

/// The lifetime a projected token asks for (kubelet's default: an hour).
fn token_expiration(expiration_seconds: Option<i64>) -> i64 {
    expiration_seconds.unwrap_or(3600)
}

/// A projected `serviceAccountToken` file the node keeps fresh while the pod runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenFile {
    /// The file on the host.
    pub file: PathBuf,
    /// The audience asked for; `None` means the API server's.
    pub audience: Option<String>,
    /// The lifetime asked for, in seconds.
    pub expiration_seconds: i64,
    /// The file's mode.
    pub mode: u32,
}

/// When the kubelet replaces a token issued at `issued_at` (seconds) for `lifetime` seconds:
/// once 80 % of its lifetime has passed, and at least once a day.
pub fn token_refresh_at(issued_at: i64, lifetime: i64) -> i64 {
    let eighty_percent = lifetime.saturating_mul(8) / 10;
    issued_at.saturating_add(eighty_percent.clamp(0, 24 * 3600))
}

/// A token for the pod's ServiceAccount, bound to the pod, through the TokenRequest
/// subresource.
pub async fn request_pod_token(
    client: &dyn Client,
    pod: &Pod,
    audience: Option<&str>,
    expiration_seconds: i64,
) -> Result<String, String> {
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
    let account = pod
        .spec
        .as_ref()
        .and_then(|s| s.service_account_name.as_deref())
        .filter(|n| !n.is_empty())
        .unwrap_or("default");
    let mut spec = serde_json::json!({
        "expirationSeconds": expiration_seconds,
        "boundObjectRef": {
            "kind": "Pod",
            "apiVersion": "v1",
            "name": pod.metadata.name.clone().unwrap_or_default(),
            "uid": pod.metadata.uid.clone().unwrap_or_default(),
        },
    });
    if let Some(audience) = audience.filter(|a| !a.is_empty()) {
        spec["audiences"] = serde_json::json!([audience]);
    }
    let request = serde_json::json!({
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenRequest",
        "spec": spec,
    });
    let answer = client
        .create_token(namespace, account, request)
        .await
        .map_err(|e| format!("failed to fetch token: {e}"))?;
    answer
        .pointer("/status/token")
        .and_then(serde_json::Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| "failed to fetch token: the TokenRequest answer has no token".to_string())
}

/// The projected token files of `pod`, whose sandbox is `dir`.
pub fn token_files(pod: &Pod, dir: &Path) -> Vec<TokenFile> {
    let mut out = Vec::new();
    let volumes = pod
        .spec
        .as_ref()
        .and_then(|s| s.volumes.as_deref())
        .unwrap_or_default();
    for volume in volumes {
        let Some(projected) = &volume.projected else {
            continue;
        };
        for source in projected.sources.as_deref().unwrap_or_default() {
            let Some(token) = &source.service_account_token else {
                continue;
            };
            if token
                .path
                .split('/')
                .any(|part| part == ".." || part.is_empty())
            {
                continue;
            }
            out.push(TokenFile {
                file: dir.join("volumes").join(&volume.name).join(&token.path),
                audience: token.audience.clone(),
                expiration_seconds: token_expiration(token.expiration_seconds),
                mode: projected.default_mode.unwrap_or(0o644) as u32 & 0o777,
            });
        }
    }
    out
}

/// Replaces a token file at once: readers see the old token or the new one, never half.
pub fn write_token(file: &Path, token: &str, mode: u32) -> std::io::Result<()> {
    let partial = file.with_extension("refreshing");
    std::fs::write(&partial, token)?;
    std::fs::set_permissions(&partial, std::fs::Permissions::from_mode(mode))?;
    std::fs::rename(&partial, file)
}

/// How long after it was issued a token of `lifetime` seconds is replaced: the kubelet's
/// schedule, [`token_refresh_at`].
pub fn kubelet_refresh_delay(lifetime: i64) -> std::time::Duration {
    std::time::Duration::from_secs(token_refresh_at(0, lifetime).max(0) as u64)
}

/// How long to wait before trying a failed refresh again.
const TOKEN_RETRY: std::time::Duration = std::time::Duration::from_secs(10);

/// Keeps `pod`'s token files fresh, as the kubelet's token manager does: each is replaced
/// `refresh_delay(lifetime)` after it was issued ([`kubelet_refresh_delay`] in the agent), and
/// tried again every 10 seconds on failure. Runs until the task is dropped; the first tokens
/// were written when the volumes were prepared.
pub async fn keep_tokens_fresh(
    client: Arc<dyn Client>,
    pod: Arc<Pod>,
    tokens: Vec<TokenFile>,
    refresh_delay: fn(i64) -> std::time::Duration,
) {
    if tokens.is_empty() {
        return;
    }
    let issued = tokio::time::Instant::now();
    let mut due: Vec<tokio::time::Instant> = tokens
        .iter()
        .map(|t| issued + refresh_delay(t.expiration_seconds))
        .collect();
    loop {
        let Some(next) = due.iter().min().copied() else {
            return;
        };
        tokio::time::sleep_until(next).await;
        for (token, due_at) in tokens.iter().zip(due.iter_mut()) {
            let now = tokio::time::Instant::now();
            if *due_at > now {
                continue;
            }
            let fresh = request_pod_token(
                client.as_ref(),
                &pod,
                token.audience.as_deref(),
                token.expiration_seconds,
            )
            .await;
            match fresh.map(|t| write_token(&token.file, &t, token.mode)) {
                Ok(Ok(())) => *due_at = now + refresh_delay(token.expiration_seconds),
                Ok(Err(e)) => {
                    tracing::warn!(file = %token.file.display(), error = %e, "writing a refreshed token failed");
                    *due_at = now + TOKEN_RETRY;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "refreshing a projected token failed");
                    *due_at = now + TOKEN_RETRY;
                }
            }
        }
    }
}

fn downward_item(
    pod: &Pod,
    containers: &[Container],
    item: &k8s_openapi::api::core::v1::DownwardAPIVolumeFile,
    facts: &PodFacts,
) -> Option<String> {
    if let Some(field) = &item.field_ref {
        return field_value(pod, &field.field_path, facts);
    }
    let resource = item.resource_field_ref.as_ref()?;
    let container = containers
        .iter()
        .find(|c| Some(c.name.as_str()) == resource.container_name.as_deref())
        .or_else(|| containers.first())?;
    resource_value(
        container,
        &resource.resource,
        resource.divisor.as_ref().map(|d| d.0.as_str()),
        facts,
    )
}

/// Quotes `text` for a POSIX shell.
pub fn sh_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// One bind mount inside the container's mount namespace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mount {
    /// The host path.
    pub source: PathBuf,
    /// Where the container sees it.
    pub target: String,
    /// Whether to make it read-only.
    pub read_only: bool,
}

/// The mounts a container asks for, from its `volumeMounts` and the pod's prepared volumes.
pub fn container_mounts(container: &Container, volumes: &[PreparedVolume]) -> Vec<Mount> {
    container
        .volume_mounts
        .as_deref()
        .unwrap_or_default()
        .iter()
        .filter_map(|m| {
            let volume = volumes.iter().find(|v| v.name == m.name)?;
            let source = match m.sub_path.as_deref().filter(|s| !s.is_empty()) {
                Some(sub) if !sub.split('/').any(|p| p == "..") => volume.host_path.join(sub),
                Some(_) => return None,
                None => volume.host_path.clone(),
            };
            Some(Mount {
                source,
                target: m.mount_path.clone(),
                read_only: m.read_only == Some(true),
            })
        })
        .collect()
}

/// The argv that runs `command` in its own mount and UTS namespaces: a private `/tmp`, each
/// mount bound at its path, the pod's hostname, the working directory, then `exec`.
pub fn isolated_argv(
    command: &[String],
    mounts: &[Mount],
    private_tmp: &Path,
    hostname: &str,
    working_dir: Option<&str>,
) -> Vec<String> {
    let mut script = String::from("set -e\nmount --make-rprivate / 2>/dev/null || true\n");
    let bind = |script: &mut String, m: &Mount| {
        let source = sh_quote(&m.source.to_string_lossy());
        let target = sh_quote(&m.target);
        script.push_str(&format!(
            "if [ -d {source} ]; then mkdir -p {target}; else mkdir -p \"$(dirname {target})\"; [ -e {target} ] || : > {target}; fi\nmount --bind {source} {target}\n"
        ));
        if m.read_only {
            script.push_str(&format!("mount -o remount,bind,ro {target}\n"));
        }
    };
    // Every source is bound before /tmp is covered, so sources under the host's /tmp stay
    // reachable: mounts inside /tmp go onto the private /tmp's directory, which then covers
    // /tmp with its submounts.
    let private = private_tmp.to_string_lossy().into_owned();
    // A program that lives under the host's /tmp (a binary built or unpacked there) would vanish
    // behind the private /tmp: bind it to the same path inside.
    let mut mounts = mounts.to_vec();
    if let Some(program) = command.first().filter(|p| p.starts_with("/tmp/")) {
        if !mounts.iter().any(|m| &m.target == program) {
            mounts.push(Mount {
                source: PathBuf::from(program),
                target: program.clone(),
                read_only: true,
            });
        }
    }
    for m in &mounts {
        let inside_tmp = m.target == "/tmp" || m.target.starts_with("/tmp/");
        if inside_tmp {
            let relocated = Mount {
                target: format!("{private}{}", &m.target["/tmp".len()..]),
                ..m.clone()
            };
            bind(&mut script, &relocated);
        } else {
            bind(&mut script, m);
        }
    }
    script.push_str(&format!("mount --rbind {} /tmp\n", sh_quote(&private)));
    script.push_str(&format!(
        "echo {} > /proc/sys/kernel/hostname 2>/dev/null || true\n",
        sh_quote(hostname)
    ));
    if let Some(dir) = working_dir {
        let dir = sh_quote(dir);
        script.push_str(&format!("mkdir -p {dir}\ncd {dir}\n"));
    }
    script.push_str("set +e\nexec \"$@\"\n");
    let mut argv = vec![
        "unshare".to_string(),
        "--mount".to_string(),
        "--uts".to_string(),
        "--".to_string(),
        "/bin/sh".to_string(),
        "-c".to_string(),
        script,
        "skiff-container".to_string(),
    ];
    argv.extend(command.iter().cloned());
    argv
}

/// Whether containers can get their own mount and UTS namespaces here: root, with `unshare`
/// working.
pub fn isolation_available() -> bool {
    if !nix::unistd::geteuid().is_root() {
        return false;
    }
    std::process::Command::new("unshare")
        .args([
            "--mount",
            "--uts",
            "--",
            "/bin/sh",
            "-c",
            "mount --make-rprivate / && true",
        ])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A volume of the pod by name.
pub fn volume<'p>(pod: &'p Pod, name: &str) -> Option<&'p Volume> {
    pod.spec
        .as_ref()?
        .volumes
        .as_deref()?
        .iter()
        .find(|v| v.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_refreshed_after_eighty_percent_of_their_lifetime_and_daily() {
        assert_eq!(token_refresh_at(1_000, 3607), 1_000 + 2885);
        assert_eq!(token_refresh_at(1_000, 600), 1_000 + 480);
        assert_eq!(token_refresh_at(1_000, 7 * 24 * 3600), 1_000 + 24 * 3600);
    }

    #[test]
    fn projected_token_sources_become_token_files() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web", "namespace": "dev", "uid": "u"},
            "spec": {
                "containers": [{"name": "c"}],
                "volumes": [
                    {"name": "kube-api-access-abcde", "projected": {"defaultMode": 420, "sources": [
                        {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                        {"configMap": {"name": "kube-root-ca.crt"}},
                    ]}},
                    {"name": "vault", "projected": {"sources": [
                        {"serviceAccountToken": {"audience": "vault", "path": "../escape"}},
                        {"serviceAccountToken": {"audience": "vault", "path": "vault-token"}},
                    ]}},
                    {"name": "data", "emptyDir": {}},
                ],
            },
        }))
        .unwrap();
        let files = token_files(&pod, Path::new("/pods/u"));
        assert_eq!(
            files,
            vec![
                TokenFile {
                    file: "/pods/u/volumes/kube-api-access-abcde/token".into(),
                    audience: None,
                    expiration_seconds: 3607,
                    mode: 0o644,
                },
                TokenFile {
                    file: "/pods/u/volumes/vault/vault-token".into(),
                    audience: Some("vault".into()),
                    expiration_seconds: 3600,
                    mode: 0o644,
                },
            ]
        );
    }

    #[test]
    fn token_files_are_replaced_whole() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        write_token(&file, "first", 0o644).unwrap();
        write_token(&file, "second", 0o600).unwrap();
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "second");
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn shell_quoting_survives_quotes() {
        assert_eq!(sh_quote("a b"), "'a b'");
        assert_eq!(sh_quote("it's"), r"'it'\''s'");
    }

    #[test]
    fn mounts_follow_volume_mounts_and_sub_paths() {
        let container: Container = serde_json::from_value(serde_json::json!({
            "name": "c",
            "volumeMounts": [
                {"name": "data", "mountPath": "/data"},
                {"name": "cfg", "mountPath": "/etc/app.conf", "subPath": "app.conf", "readOnly": true},
                {"name": "cfg", "mountPath": "/bad", "subPath": "../escape"},
                {"name": "missing", "mountPath": "/nowhere"}
            ]
        }))
        .unwrap();
        let volumes = vec![
            PreparedVolume {
                name: "data".into(),
                host_path: "/d/volumes/data".into(),
            },
            PreparedVolume {
                name: "cfg".into(),
                host_path: "/d/volumes/cfg".into(),
            },
        ];
        assert_eq!(
            container_mounts(&container, &volumes),
            vec![
                Mount {
                    source: "/d/volumes/data".into(),
                    target: "/data".into(),
                    read_only: false
                },
                Mount {
                    source: "/d/volumes/cfg/app.conf".into(),
                    target: "/etc/app.conf".into(),
                    read_only: true
                },
            ]
        );
    }

    #[test]
    fn the_isolated_command_execs_the_container_command_last() {
        let argv = isolated_argv(
            &["sleep".to_string(), "1".to_string()],
            &[],
            Path::new("/d/tmp"),
            "web-0",
            Some("/srv"),
        );
        assert_eq!(&argv[..4], &["unshare", "--mount", "--uts", "--"]);
        assert_eq!(&argv[argv.len() - 2..], &["sleep", "1"]);
        let script = &argv[6];
        assert!(script.contains("mount --rbind '/d/tmp' /tmp"));
        assert!(script.contains("echo 'web-0' > /proc/sys/kernel/hostname"));
        assert!(script.ends_with("exec \"$@\"\n"));
    }

    #[test]
    fn programs_under_the_host_tmp_stay_reachable_behind_the_private_tmp() {
        let argv = isolated_argv(
            &["/tmp/build/skiff".to_string(), "demo-server".to_string()],
            &[],
            Path::new("/data/pods/u/tmp"),
            "p",
            None,
        );
        let script = &argv[6];
        let bind = script.find("mount --bind '/tmp/build/skiff' '/data/pods/u/tmp/build/skiff'");
        let cover = script.find("mount --rbind '/data/pods/u/tmp' /tmp");
        assert!(
            bind.is_some() && cover.is_some() && bind < cover,
            "{script}"
        );
        let plain = isolated_argv(
            &["/usr/bin/env".to_string()],
            &[],
            Path::new("/d/tmp"),
            "p",
            None,
        );
        assert!(!plain[6].contains("/usr/bin/env"), "{}", plain[6]);
    }
}
