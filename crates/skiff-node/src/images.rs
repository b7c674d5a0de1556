//! The node's image catalog: how an image reference becomes something to run without a registry.
//!
//! TRANSITIONAL: pods run real images from the content store
//! ([`crate::store_images::StoreImages`]); the catalog only answers when the store has no such
//! image, and goes once the tests run real images instead of these aliases.
//!
//! There is nothing to pull. An image is either a directory registered with
//! `skiff image import` (kept in `catalog.json` under the catalog directory) or one of the
//! built-in aliases that make the usual tutorial manifests run unchanged:
//!
//! | reference (any tag)                                      | runs                          |
//! |----------------------------------------------------------|-------------------------------|
//! | `skiff/demo`, `nginx`, `httpd`, `ikubernetes/myapp`      | the demo HTTP server, port 80 |
//! | `busybox`                                                | the host's shell tools        |
//!
//! Imported images win over aliases, so importing `nginx:1.25` replaces the alias for that tag.
//! References are parsed like Docker's (`[registry/]path[:tag][@digest]`); the Docker Hub
//! spellings `docker.io/library/nginx` and `library/nginx` name the same image as `nginx`.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

/// The tag a reference without one means, as in Docker.
pub const DEFAULT_TAG: &str = "latest";

/// The name of the catalog file inside the catalog directory.
pub const CATALOG_FILE: &str = "catalog.json";

/// The catalog directory's name inside a Skiff data directory.
pub const CATALOG_SUBDIR: &str = "images";

/// The port every demo-server alias serves, as the images it stands in for do.
pub const DEMO_PORT: u16 = 80;

/// The tag shown for built-in aliases in [`ImageCatalog::list`]: they accept any tag.
pub const ANY_TAG: &str = "*";

/// Repositories served by the built-in demo server (any tag).
pub const DEMO_ALIASES: &[&str] = &["skiff/demo", "nginx", "httpd", "ikubernetes/myapp"];

/// Repositories served by the host's shell tools (any tag).
pub const HOST_SHELL_ALIASES: &[&str] = &["busybox"];

/// What a built-in image runs instead of a registered directory.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Builtin {
    /// The demo HTTP server inside the `skiff` binary, reporting `version` (the image tag).
    Demo {
        /// The port it listens on.
        port: u16,
        /// What `GET /` reports as the version.
        version: String,
    },
    /// The host's own tools: `sh -c ...` runs with whatever the machine has.
    HostShell,
}

/// A runnable image: what the node agent needs to turn a container spec into a process.
///
/// `entrypoint` and `cmd` play the parts of Docker's `ENTRYPOINT` and `CMD`, so a pod's
/// `command` and `args` override them by Kubernetes' rules.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Image {
    /// The repository in its short Docker Hub form (`nginx`, `example.com/team/app`).
    pub name: String,
    /// The tag.
    pub tag: String,
    /// The directory registered (absolute); relative programs and a relative `working_dir`
    /// are meant against it. `None` for the demo server, `/` for the host shell.
    pub root: Option<PathBuf>,
    /// The image's entrypoint (Docker `ENTRYPOINT`).
    pub entrypoint: Vec<String>,
    /// The image's default arguments (Docker `CMD`).
    pub cmd: Vec<String>,
    /// Environment the image sets, before the container's own `env`.
    pub env: Vec<(String, String)>,
    /// The image's working directory, when it sets one.
    pub working_dir: Option<String>,
    /// Set for the built-in aliases.
    pub builtin: Option<Builtin>,
}

impl Image {
    /// `name:tag`, the form container statuses report in `image`.
    pub fn reference(&self) -> String {
        format!("{}:{}", self.name, self.tag)
    }

    /// A stable identity for `imageID` in container statuses: it changes when the image's
    /// name, tag, directory or configuration change, and stays the same across restarts.
    pub fn image_id(&self) -> String {
        let mut hashed = format!("{}\0", self.reference());
        match &self.builtin {
            // The demo entrypoint is the running binary's path, which moves between builds;
            // the alias itself is the identity.
            Some(Builtin::Demo { port, version }) => {
                hashed.push_str(&format!("builtin-demo\0{port}\0{version}"));
            }
            Some(Builtin::HostShell) => hashed.push_str("builtin-host-shell"),
            None => {
                if let Some(root) = &self.root {
                    hashed.push_str(&root.to_string_lossy());
                }
                for part in [&self.entrypoint, &self.cmd] {
                    hashed.push('\0');
                    hashed.push_str(&part.join("\u{1}"));
                }
                for (key, value) in &self.env {
                    hashed.push_str(&format!("\0{key}={value}"));
                }
                hashed.push('\0');
                hashed.push_str(self.working_dir.as_deref().unwrap_or(""));
            }
        }
        let digest = ring::digest::digest(&ring::digest::SHA256, hashed.as_bytes());
        let hex: String = digest
            .as_ref()
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect();
        format!("skiff://sha256:{hex}")
    }
}

/// Why a reference or a catalog operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// The reference does not parse as a Docker image reference.
    #[error("invalid reference format: {reference:?}: {reason}")]
    InvalidReference {
        /// The reference as given.
        reference: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A digest pins content a directory cannot promise.
    #[error("cannot import {0:?}: an imported image is named by repository and tag, not digest")]
    DigestNotAllowed(String),
    /// The directory to register is missing or not a directory.
    #[error("image directory {path}: {reason}")]
    InvalidDirectory {
        /// The directory as given.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// An environment variable name the process environment cannot hold.
    #[error("invalid environment variable name {0:?}: it must be non-empty and have no '='")]
    InvalidEnvName(String),
    /// The catalog file exists but is not a catalog.
    #[error("image catalog {path} is corrupt: {source}")]
    Corrupt {
        /// The catalog file.
        path: PathBuf,
        /// The parse failure.
        #[source]
        source: serde_json::Error,
    },
    /// Reading or writing the catalog failed.
    #[error("image catalog {path}: {source}")]
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// The failure.
        #[source]
        source: std::io::Error,
    },
}

/// A parsed Docker image reference, normalised so spellings of one image compare equal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageReference {
    /// The repository in short form: Docker Hub's `docker.io/` and `library/` dropped.
    pub name: String,
    /// The tag, if the reference has one.
    pub tag: Option<String>,
    /// The digest (`sha256:...`), if the reference has one.
    pub digest: Option<String>,
}

impl ImageReference {
    /// Parses `[registry[:port]/]path[:tag][@digest]` with Docker's grammar: lowercase path
    /// components joined by `.`, `_`, `__` or dashes, tags of at most 128 word characters,
    /// dots and dashes, names of at most 255 characters.
    pub fn parse(reference: &str) -> Result<Self, ImageError> {
        let invalid = |reason: &str| ImageError::InvalidReference {
            reference: reference.to_string(),
            reason: reason.to_string(),
        };
        if reference.is_empty() {
            return Err(invalid("the reference is empty"));
        }
        let (rest, digest) = match reference.split_once('@') {
            Some((rest, digest)) => {
                if !is_valid_digest(digest) {
                    return Err(invalid(
                        "the digest must be ALGORITHM:HEX with 32+ hex digits",
                    ));
                }
                (rest, Some(digest.to_string()))
            }
            None => (reference, None),
        };
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(colon) => {
                let colon = last_slash + colon;
                let tag = &rest[colon + 1..];
                if !is_valid_tag(tag) {
                    return Err(invalid(
                        "the tag must be 1-128 letters, digits, '_', '.' or '-', not starting with '.' or '-'",
                    ));
                }
                (&rest[..colon], Some(tag.to_string()))
            }
            None => (rest, None),
        };
        if name.is_empty() {
            return Err(invalid("the repository name is empty"));
        }
        if name.len() > 255 {
            return Err(invalid(
                "the repository name must not be more than 255 characters",
            ));
        }
        let (domain, path) = split_domain(name);
        if let Some(domain) = domain {
            if !is_valid_domain(domain) {
                return Err(invalid("the registry must be HOST or HOST:PORT"));
            }
        }
        if path.chars().any(|c| c.is_ascii_uppercase()) {
            return Err(invalid("the repository name must be lowercase"));
        }
        if !path.split('/').all(is_valid_path_component) {
            return Err(invalid(
                "each repository path component must be lowercase letters and digits, \
                 joined by '.', '_', '__' or dashes",
            ));
        }
        Ok(ImageReference {
            name: familiar_name(domain, path),
            tag,
            digest,
        })
    }

    /// The tag, or `latest` when the reference has none.
    pub fn tag_or_default(&self) -> &str {
        self.tag.as_deref().unwrap_or(DEFAULT_TAG)
    }
}

/// Splits off the registry the way Docker does: the first component is a registry when it has
/// a `.` or `:`, is `localhost`, or has uppercase letters (which a path cannot).
fn split_domain(name: &str) -> (Option<&str>, &str) {
    match name.split_once('/') {
        Some((first, rest))
            if first.contains(['.', ':'])
                || first == "localhost"
                || first.chars().any(|c| c.is_ascii_uppercase()) =>
        {
            (Some(first), rest)
        }
        _ => (None, name),
    }
}

/// The short form of a repository: Docker Hub's own spellings collapse to the bare path.
fn familiar_name(domain: Option<&str>, path: &str) -> String {
    match domain {
        None | Some("docker.io") | Some("index.docker.io") => match path.strip_prefix("library/") {
            Some(short) if !short.contains('/') => short.to_string(),
            _ => path.to_string(),
        },
        Some(domain) => format!("{domain}/{path}"),
    }
}

/// `alnum+ (separator alnum+)*` with separators `.`, `_`, `__` or one or more `-`.
fn is_valid_path_component(component: &str) -> bool {
    let bytes = component.as_bytes();
    let is_alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    if bytes.is_empty() || !is_alnum(bytes[0]) || !is_alnum(bytes[bytes.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < bytes.len() {
        if is_alnum(bytes[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && !is_alnum(bytes[i]) {
            i += 1;
        }
        let separator = &component[start..i];
        let allowed = matches!(separator, "." | "_" | "__")
            || (!separator.is_empty() && separator.bytes().all(|b| b == b'-'));
        if !allowed {
            return false;
        }
    }
    true
}

/// `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
fn is_valid_tag(tag: &str) -> bool {
    let word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut chars = tag.chars();
    match chars.next() {
        Some(first) if word(first) => {}
        _ => return false,
    }
    tag.len() <= 128 && chars.all(|c| word(c) || c == '.' || c == '-')
}

/// `host[:port]` where host is dot-separated alphanumeric labels with inner dashes.
fn is_valid_domain(domain: &str) -> bool {
    let (host, port) = match domain.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (domain, None),
    };
    if let Some(port) = port {
        if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
            return false;
        }
    }
    !host.is_empty()
        && host.split('.').all(|label| {
            let bytes = label.as_bytes();
            !bytes.is_empty()
                && bytes[0].is_ascii_alphanumeric()
                && bytes[bytes.len() - 1].is_ascii_alphanumeric()
                && bytes
                    .iter()
                    .all(|b| b.is_ascii_alphanumeric() || *b == b'-')
        })
}

/// `algorithm:hex`: algorithm components of letters and digits joined by `+.-_`, 32+ hex digits.
fn is_valid_digest(digest: &str) -> bool {
    let Some((algorithm, hex)) = digest.split_once(':') else {
        return false;
    };
    let algorithm_ok = algorithm.split(['+', '.', '-', '_']).all(|part| {
        let mut chars = part.chars();
        matches!(chars.next(), Some(c) if c.is_ascii_alphabetic())
            && chars.all(|c| c.is_ascii_alphanumeric())
    });
    algorithm_ok && hex.len() >= 32 && hex.bytes().all(|b| b.is_ascii_hexdigit())
}

/// One imported image as the catalog file keeps it.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct StoredImage {
    name: String,
    tag: String,
    root: PathBuf,
    #[serde(default)]
    entrypoint: Vec<String>,
    #[serde(default)]
    cmd: Vec<String>,
    #[serde(default)]
    env: Vec<(String, String)>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    working_dir: Option<String>,
}

impl StoredImage {
    fn to_image(&self) -> Image {
        Image {
            name: self.name.clone(),
            tag: self.tag.clone(),
            root: Some(self.root.clone()),
            entrypoint: self.entrypoint.clone(),
            cmd: self.cmd.clone(),
            env: self.env.clone(),
            working_dir: self.working_dir.clone(),
            builtin: None,
        }
    }
}

/// The catalog file: a version so the format can change later.
#[derive(Debug, Default, Serialize, Deserialize)]
struct CatalogFile {
    version: u32,
    /// Keyed by `name:tag`, so the file lists images sorted and one entry per reference.
    images: BTreeMap<String, StoredImage>,
}

/// What identifies one version of the catalog file on disk, to notice another process's import.
type FileStamp = (SystemTime, u64, u64);

fn file_stamp(metadata: &fs::Metadata) -> FileStamp {
    #[cfg(unix)]
    let inode = std::os::unix::fs::MetadataExt::ino(metadata);
    #[cfg(not(unix))]
    let inode = 0;
    (
        metadata.modified().unwrap_or(SystemTime::UNIX_EPOCH),
        metadata.len(),
        inode,
    )
}

#[derive(Debug, Default)]
struct Loaded {
    stamp: Option<FileStamp>,
    file: CatalogFile,
}

/// The node's images: imported directories persisted in `catalog.json`, plus built-in aliases.
///
/// Imports from another process (`skiff image import` while `skiff up` runs) are picked up by
/// the next [`list`](Self::list) or [`resolve`](Self::resolve): the file is re-read whenever it
/// changed.
#[derive(Debug)]
pub struct ImageCatalog {
    dir: PathBuf,
    demo_program: PathBuf,
    loaded: Mutex<Loaded>,
}

impl ImageCatalog {
    /// Opens the catalog kept in `dir` (normally `DATA_DIR/images`); a missing directory or
    /// file is an empty catalog, created on the first import.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self, ImageError> {
        let dir = dir.into();
        let demo_program = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("skiff"));
        let loaded = read_catalog(&dir.join(CATALOG_FILE))?;
        Ok(ImageCatalog {
            dir,
            demo_program,
            loaded: Mutex::new(loaded),
        })
    }

    /// Opens the catalog of a Skiff data directory, where `skiff up` and `skiff image` keep it.
    pub fn open_in_data_dir(data_dir: &Path) -> Result<Self, ImageError> {
        Self::open(data_dir.join(CATALOG_SUBDIR))
    }

    /// Runs the demo server from `program` instead of the running binary: for agents embedded
    /// in processes that are not `skiff` (tests, other front ends).
    pub fn with_demo_program(mut self, program: impl Into<PathBuf>) -> Self {
        self.demo_program = program.into();
        self
    }

    /// The catalog file's path, for messages.
    pub fn path(&self) -> PathBuf {
        self.dir.join(CATALOG_FILE)
    }

    /// Registers `dir` as the image `reference` (tag `latest` if none), replacing an earlier
    /// import of the same `name:tag`. The directory is stored as an absolute path.
    pub fn import(
        &self,
        reference: &str,
        dir: &Path,
        entrypoint: Vec<String>,
        cmd: Vec<String>,
        env: Vec<(String, String)>,
        working_dir: Option<String>,
    ) -> Result<Image, ImageError> {
        let parsed = ImageReference::parse(reference)?;
        if parsed.digest.is_some() {
            return Err(ImageError::DigestNotAllowed(reference.to_string()));
        }
        let invalid_dir = |reason: String| ImageError::InvalidDirectory {
            path: dir.to_path_buf(),
            reason,
        };
        let root = dir.canonicalize().map_err(|e| invalid_dir(e.to_string()))?;
        if !root.is_dir() {
            return Err(invalid_dir("not a directory".to_string()));
        }
        if let Some((bad, _)) = env.iter().find(|(k, _)| k.is_empty() || k.contains('=')) {
            return Err(ImageError::InvalidEnvName(bad.clone()));
        }
        let stored = StoredImage {
            tag: parsed.tag_or_default().to_string(),
            name: parsed.name,
            root,
            entrypoint,
            cmd,
            env,
            working_dir,
        };
        let image = stored.to_image();

        let mut loaded = self.lock();
        // Start from the file as it is now, so an import by another process is not lost.
        let mut current = read_catalog(&self.path())?;
        current.file.version = 1;
        current
            .file
            .images
            .insert(format!("{}:{}", stored.name, stored.tag), stored);
        self.write_atomically(&current.file)?;
        current.stamp = fs::metadata(self.path()).ok().map(|m| file_stamp(&m));
        *loaded = current;
        Ok(image)
    }

    /// Every image: imported ones sorted by `name:tag`, then the built-in aliases with the tag
    /// [`ANY_TAG`], since they accept any.
    pub fn list(&self) -> Vec<Image> {
        let mut images: Vec<Image> = {
            let loaded = self.refreshed();
            loaded
                .file
                .images
                .values()
                .map(StoredImage::to_image)
                .collect()
        };
        for name in DEMO_ALIASES {
            images.push(self.demo_image(name, ANY_TAG));
        }
        for name in HOST_SHELL_ALIASES {
            images.push(host_shell_image(name, ANY_TAG));
        }
        images
    }

    /// The image a pod's `image` field names, or `None` when nothing here provides it (the
    /// agent then reports `ErrImagePull`). A `docker.io/library/` prefix and a digest are
    /// tolerated; imported images take precedence over the aliases.
    pub fn resolve(&self, reference: &str) -> Option<Image> {
        let parsed = ImageReference::parse(reference).ok()?;
        let tag = parsed.tag_or_default();
        let key = format!("{}:{tag}", parsed.name);
        if let Some(stored) = self.refreshed().file.images.get(&key) {
            return Some(stored.to_image());
        }
        if DEMO_ALIASES.contains(&parsed.name.as_str()) {
            return Some(self.demo_image(&parsed.name, tag));
        }
        if HOST_SHELL_ALIASES.contains(&parsed.name.as_str()) {
            return Some(host_shell_image(&parsed.name, tag));
        }
        None
    }

    fn demo_image(&self, name: &str, tag: &str) -> Image {
        Image {
            name: name.to_string(),
            tag: tag.to_string(),
            root: None,
            entrypoint: vec![
                self.demo_program.to_string_lossy().into_owned(),
                "demo-server".to_string(),
            ],
            cmd: Vec::new(),
            env: vec![
                ("SKIFF_DEMO_VERSION".to_string(), tag.to_string()),
                ("SKIFF_DEMO_PORT".to_string(), DEMO_PORT.to_string()),
            ],
            working_dir: None,
            builtin: Some(Builtin::Demo {
                port: DEMO_PORT,
                version: tag.to_string(),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Loaded> {
        // The guarded data is a cache that is replaced whole, so a panic elsewhere cannot leave
        // it half-written.
        self.loaded
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The cache, re-read first if the file changed since; a file that became unreadable keeps
    /// the last good contents rather than making every image vanish.
    fn refreshed(&self) -> std::sync::MutexGuard<'_, Loaded> {
        let mut loaded = self.lock();
        let path = self.path();
        let stamp = fs::metadata(&path).ok().map(|m| file_stamp(&m));
        if stamp != loaded.stamp {
            match read_catalog(&path) {
                Ok(fresh) => *loaded = fresh,
                Err(error) => {
                    tracing::warn!(%error, "keeping the image catalog read before");
                }
            }
        }
        loaded
    }

    fn write_atomically(&self, file: &CatalogFile) -> Result<(), ImageError> {
        let io_error = |path: &Path| {
            let path = path.to_path_buf();
            move |source| ImageError::Io { path, source }
        };
        fs::create_dir_all(&self.dir).map_err(io_error(&self.dir))?;
        let mut bytes = serde_json::to_vec_pretty(file).map_err(|e| ImageError::Io {
            path: self.path(),
            source: std::io::Error::other(e),
        })?;
        bytes.push(b'\n');
        let temporary = self
            .dir
            .join(format!(".{CATALOG_FILE}.{}.tmp", std::process::id()));
        let write = || -> std::io::Result<()> {
            let mut out = fs::File::create(&temporary)?;
            out.write_all(&bytes)?;
            out.sync_all()?;
            fs::rename(&temporary, self.path())
        };
        write().map_err(|source| {
            let _ = fs::remove_file(&temporary);
            ImageError::Io {
                path: self.path(),
                source,
            }
        })
    }
}

fn host_shell_image(name: &str, tag: &str) -> Image {
    Image {
        name: name.to_string(),
        tag: tag.to_string(),
        root: Some(PathBuf::from("/")),
        entrypoint: Vec::new(),
        cmd: vec!["sh".to_string()],
        env: Vec::new(),
        working_dir: None,
        builtin: Some(Builtin::HostShell),
    }
}

fn read_catalog(path: &Path) -> Result<Loaded, ImageError> {
    // Stamped before reading: a write in between makes the stamp stale, which only means one
    // more re-read later, never a missed change.
    let stamp = fs::metadata(path).ok().map(|m| file_stamp(&m));
    let bytes = match fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Loaded::default()),
        Err(source) => {
            return Err(ImageError::Io {
                path: path.to_path_buf(),
                source,
            })
        }
    };
    let file = serde_json::from_slice(&bytes).map_err(|source| ImageError::Corrupt {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(Loaded { stamp, file })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalog(dir: &Path) -> ImageCatalog {
        ImageCatalog::open(dir.join(CATALOG_SUBDIR))
            .expect("open catalog")
            .with_demo_program("/opt/skiff/bin/skiff")
    }

    fn import_simple(catalog: &ImageCatalog, reference: &str, dir: &Path) -> Image {
        catalog
            .import(reference, dir, vec![], vec![], vec![], None)
            .expect("import")
    }

    #[test]
    fn references_parse_like_docker() {
        // (reference, Some((name, tag, digest))) or None when Docker rejects it.
        type Expected = Option<(&'static str, Option<&'static str>, Option<&'static str>)>;
        let digest = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        let with_digest = format!("nginx:1.25@{digest}");
        let cases: Vec<(&str, Expected)> = vec![
            ("nginx", Some(("nginx", None, None))),
            ("nginx:alpine", Some(("nginx", Some("alpine"), None))),
            (
                "nginx:1.25.3-Alpine_x",
                Some(("nginx", Some("1.25.3-Alpine_x"), None)),
            ),
            (
                "docker.io/library/nginx:1",
                Some(("nginx", Some("1"), None)),
            ),
            ("index.docker.io/library/nginx", Some(("nginx", None, None))),
            ("library/nginx", Some(("nginx", None, None))),
            (
                "docker.io/ikubernetes/myapp:v1",
                Some(("ikubernetes/myapp", Some("v1"), None)),
            ),
            (
                "ikubernetes/myapp:v1",
                Some(("ikubernetes/myapp", Some("v1"), None)),
            ),
            ("localhost/app", Some(("localhost/app", None, None))),
            (
                "localhost:5000/team/app:2",
                Some(("localhost:5000/team/app", Some("2"), None)),
            ),
            (
                "registry.example.com/a/b/c",
                Some(("registry.example.com/a/b/c", None, None)),
            ),
            ("my-app__x.y_z--w", Some(("my-app__x.y_z--w", None, None))),
            (&with_digest, Some(("nginx", Some("1.25"), Some(digest)))),
            ("", None),
            ("Nginx", None),
            ("team/Nginx:1", None),
            ("nginx:", None),
            ("nginx:-x", None),
            ("nginx:.x", None),
            ("nginx:a/b", None),
            ("-nginx", None),
            ("nginx-", None),
            ("ng..inx", None),
            ("ng___inx", None),
            ("ng._inx", None),
            ("a//b", None),
            ("/nginx", None),
            ("nginx/", None),
            ("nginx@sha256:abc", None),
            ("nginx@:0123456789abcdef0123456789abcdef", None),
            ("exa_mple.com/app", None),
            ("example.com:port/app", None),
            ("nginx latest", None),
        ];
        for (reference, expected) in cases {
            let parsed = ImageReference::parse(reference).ok();
            let got = parsed
                .as_ref()
                .map(|p| (p.name.as_str(), p.tag.as_deref(), p.digest.as_deref()));
            assert_eq!(got, expected, "reference {reference:?}");
        }
    }

    #[test]
    fn over_long_names_and_tags_are_refused() {
        let long_name = format!("{}/app", "a".repeat(252));
        assert!(ImageReference::parse(&long_name).is_err());
        let just_fits = format!("{}/app", "a".repeat(251));
        assert!(ImageReference::parse(&just_fits).is_ok());
        assert!(ImageReference::parse(&format!("app:{}", "t".repeat(128))).is_ok());
        assert!(ImageReference::parse(&format!("app:{}", "t".repeat(129))).is_err());
    }

    #[test]
    fn uppercase_repositories_are_reported_as_such() {
        let error = ImageReference::parse("Team/app")
            .err()
            .map(|e| e.to_string());
        // "Team" is taken for a registry (as Docker does), so the path itself is fine.
        assert_eq!(error, None);
        let error = ImageReference::parse("team/App")
            .err()
            .map(|e| e.to_string());
        assert_eq!(
            error.as_deref(),
            Some("invalid reference format: \"team/App\": the repository name must be lowercase")
        );
    }

    #[test]
    fn built_in_aliases_resolve_with_any_tag() {
        let data = tempfile::tempdir().expect("tempdir");
        let catalog = catalog(data.path());
        let cases = [
            ("nginx", "nginx", "latest"),
            ("nginx:alpine", "nginx", "alpine"),
            ("nginx:1.25", "nginx", "1.25"),
            ("docker.io/library/nginx:1.7.9", "nginx", "1.7.9"),
            ("httpd:2.2", "httpd", "2.2"),
            ("httpd:2.4", "httpd", "2.4"),
            ("ikubernetes/myapp:v1", "ikubernetes/myapp", "v1"),
            ("skiff/demo:v2", "skiff/demo", "v2"),
            (
                "nginx@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
                "nginx",
                "latest",
            ),
        ];
        for (reference, name, tag) in cases {
            let image = catalog
                .resolve(reference)
                .unwrap_or_else(|| panic!("{reference} resolves"));
            assert_eq!(image.name, name, "{reference}");
            assert_eq!(image.tag, tag, "{reference}");
            assert_eq!(
                image.builtin,
                Some(Builtin::Demo {
                    port: 80,
                    version: tag.to_string()
                }),
                "{reference}"
            );
            assert_eq!(image.root, None);
            assert_eq!(image.entrypoint, ["/opt/skiff/bin/skiff", "demo-server"]);
            assert!(image.cmd.is_empty());
            assert_eq!(
                image.env,
                [
                    ("SKIFF_DEMO_VERSION".to_string(), tag.to_string()),
                    ("SKIFF_DEMO_PORT".to_string(), "80".to_string()),
                ]
            );
        }
    }

    #[test]
    fn busybox_runs_the_host_shell() {
        let data = tempfile::tempdir().expect("tempdir");
        let catalog = catalog(data.path());
        for reference in [
            "busybox",
            "busybox:1.36",
            "docker.io/library/busybox:latest",
        ] {
            let image = catalog.resolve(reference).expect("busybox resolves");
            assert_eq!(image.builtin, Some(Builtin::HostShell), "{reference}");
            assert_eq!(image.root.as_deref(), Some(Path::new("/")));
            assert!(image.entrypoint.is_empty());
            assert_eq!(image.cmd, ["sh"]);
        }
    }

    #[test]
    fn unknown_and_invalid_references_do_not_resolve() {
        let data = tempfile::tempdir().expect("tempdir");
        let catalog = catalog(data.path());
        for reference in [
            "redis",
            "nginxx",
            "quay.io/nginx",
            "example.com/library/nginx",
            "mynginx/nginx",
            "Nginx",
            "nginx:",
            "",
        ] {
            assert_eq!(catalog.resolve(reference), None, "{reference:?}");
        }
    }

    #[test]
    fn imports_resolve_by_name_and_tag() {
        let data = tempfile::tempdir().expect("tempdir");
        let root = tempfile::tempdir().expect("image dir");
        let catalog = catalog(data.path());
        let image = catalog
            .import(
                "example.com/team/app:1.0",
                root.path(),
                vec!["bin/server".to_string()],
                vec!["--port".to_string(), "8080".to_string()],
                vec![("MODE".to_string(), "demo".to_string())],
                Some("/srv".to_string()),
            )
            .expect("import");
        let canonical = root.path().canonicalize().expect("canonical");
        let expected = Image {
            name: "example.com/team/app".to_string(),
            tag: "1.0".to_string(),
            root: Some(canonical),
            entrypoint: vec!["bin/server".to_string()],
            cmd: vec!["--port".to_string(), "8080".to_string()],
            env: vec![("MODE".to_string(), "demo".to_string())],
            working_dir: Some("/srv".to_string()),
            builtin: None,
        };
        assert_eq!(image, expected);
        assert_eq!(catalog.resolve("example.com/team/app:1.0"), Some(expected));
        assert_eq!(catalog.resolve("example.com/team/app"), None, "no latest");
        assert_eq!(catalog.resolve("example.com/team/app:2.0"), None);
    }

    #[test]
    fn an_import_without_tag_is_latest_and_docker_hub_spellings_match() {
        let data = tempfile::tempdir().expect("tempdir");
        let root = tempfile::tempdir().expect("image dir");
        let catalog = catalog(data.path());
        let image = import_simple(&catalog, "tools", root.path());
        assert_eq!(image.reference(), "tools:latest");
        for reference in [
            "tools",
            "tools:latest",
            "library/tools",
            "docker.io/library/tools:latest",
            "tools@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        ] {
            assert_eq!(
                catalog.resolve(reference).map(|i| i.reference()),
                Some("tools:latest".to_string()),
                "{reference}"
            );
        }
    }

    #[test]
    fn imports_take_precedence_over_aliases_for_their_tag_only() {
        let data = tempfile::tempdir().expect("tempdir");
        let root = tempfile::tempdir().expect("image dir");
        let catalog = catalog(data.path());
        import_simple(&catalog, "nginx:custom", root.path());
        let custom = catalog.resolve("nginx:custom").expect("resolves");
        assert_eq!(custom.builtin, None);
        let other = catalog.resolve("nginx:1.25").expect("resolves");
        assert!(matches!(other.builtin, Some(Builtin::Demo { .. })));
    }

    #[test]
    fn importing_again_replaces_the_entry() {
        let data = tempfile::tempdir().expect("tempdir");
        let first = tempfile::tempdir().expect("image dir");
        let second = tempfile::tempdir().expect("image dir");
        let catalog = catalog(data.path());
        import_simple(&catalog, "app:1", first.path());
        import_simple(&catalog, "app:1", second.path());
        let imported: Vec<Image> = catalog
            .list()
            .into_iter()
            .filter(|i| i.builtin.is_none())
            .collect();
        assert_eq!(imported.len(), 1);
        assert_eq!(
            imported[0].root,
            Some(second.path().canonicalize().expect("canonical"))
        );
    }

    #[test]
    fn imports_persist_and_other_processes_see_them() {
        let data = tempfile::tempdir().expect("tempdir");
        let root = tempfile::tempdir().expect("image dir");
        let running = catalog(data.path());
        assert_eq!(running.resolve("app:1"), None);
        // Another process (a second handle on the same directory) imports.
        let imported = import_simple(&catalog(data.path()), "app:1", root.path());
        assert_eq!(running.resolve("app:1"), Some(imported.clone()));
        // And a fresh open reads it back from the file.
        let reopened = catalog(data.path());
        assert_eq!(reopened.resolve("app:1"), Some(imported));
        assert!(data
            .path()
            .join(CATALOG_SUBDIR)
            .join(CATALOG_FILE)
            .is_file());
    }

    #[test]
    fn imports_by_two_handles_both_survive() {
        let data = tempfile::tempdir().expect("tempdir");
        let root = tempfile::tempdir().expect("image dir");
        let first = catalog(data.path());
        let second = catalog(data.path());
        import_simple(&first, "a:1", root.path());
        import_simple(&second, "b:1", root.path());
        let reopened = catalog(data.path());
        assert!(reopened.resolve("a:1").is_some());
        assert!(reopened.resolve("b:1").is_some());
    }

    #[test]
    fn list_shows_imports_sorted_then_aliases() {
        let data = tempfile::tempdir().expect("tempdir");
        let root = tempfile::tempdir().expect("image dir");
        let catalog = catalog(data.path());
        import_simple(&catalog, "zeta:1", root.path());
        import_simple(&catalog, "alpha:2", root.path());
        let listed: Vec<(String, String, bool)> = catalog
            .list()
            .into_iter()
            .map(|i| (i.name, i.tag, i.builtin.is_some()))
            .collect();
        let row = |n: &str, t: &str, b: bool| (n.to_string(), t.to_string(), b);
        assert_eq!(
            listed,
            [
                row("alpha", "2", false),
                row("zeta", "1", false),
                row("skiff/demo", "*", true),
                row("nginx", "*", true),
                row("httpd", "*", true),
                row("ikubernetes/myapp", "*", true),
                row("busybox", "*", true),
            ]
        );
    }

    #[test]
    fn imports_are_validated() {
        let data = tempfile::tempdir().expect("tempdir");
        let root = tempfile::tempdir().expect("image dir");
        let file = root.path().join("file");
        fs::write(&file, b"x").expect("write");
        let catalog = catalog(data.path());
        let digest = "app@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        let env = |k: &str| vec![(k.to_string(), "v".to_string())];
        type Env = Vec<(String, String)>;
        // (reference, directory, env, the error variant expected)
        let cases: Vec<(&str, PathBuf, Env, &str)> = vec![
            ("App:1", root.path().into(), vec![], "InvalidReference"),
            (digest, root.path().into(), vec![], "DigestNotAllowed"),
            (
                "app:1",
                root.path().join("missing"),
                vec![],
                "InvalidDirectory",
            ),
            ("app:1", file.clone(), vec![], "InvalidDirectory"),
            ("app:1", root.path().into(), env(""), "InvalidEnvName"),
            ("app:1", root.path().into(), env("A=B"), "InvalidEnvName"),
        ];
        for (reference, dir, env, expected) in cases {
            let error = catalog
                .import(reference, &dir, vec![], vec![], env, None)
                .expect_err(reference);
            let kind = format!("{error:?}");
            assert!(
                kind.starts_with(expected),
                "{reference} {dir:?}: {kind} is not {expected}"
            );
        }
        assert_eq!(
            catalog
                .list()
                .iter()
                .filter(|i| i.builtin.is_none())
                .count(),
            0
        );
    }

    #[test]
    fn a_relative_directory_is_stored_absolute() {
        let data = tempfile::tempdir().expect("tempdir");
        let catalog = catalog(data.path());
        let image = import_simple(&catalog, "here:1", Path::new("."));
        let root = image.root.expect("root");
        assert!(root.is_absolute());
        assert_eq!(root, Path::new(".").canonicalize().expect("cwd"));
    }

    #[test]
    fn a_corrupt_catalog_is_reported_on_open() {
        let data = tempfile::tempdir().expect("tempdir");
        let dir = data.path().join(CATALOG_SUBDIR);
        fs::create_dir_all(&dir).expect("mkdir");
        fs::write(dir.join(CATALOG_FILE), b"{not json").expect("write");
        let error = ImageCatalog::open(&dir).expect_err("corrupt");
        assert!(matches!(error, ImageError::Corrupt { .. }), "{error:?}");
    }

    #[test]
    fn a_catalog_that_turns_corrupt_keeps_its_last_good_contents() {
        let data = tempfile::tempdir().expect("tempdir");
        let root = tempfile::tempdir().expect("image dir");
        let catalog = catalog(data.path());
        import_simple(&catalog, "app:1", root.path());
        fs::write(
            catalog.path(),
            b"garbage that is longer than before, surely",
        )
        .expect("write");
        assert!(catalog.resolve("app:1").is_some());
    }

    #[test]
    fn image_ids_are_stable_and_follow_content() {
        let data = tempfile::tempdir().expect("tempdir");
        let root = tempfile::tempdir().expect("image dir");
        let other_root = tempfile::tempdir().expect("image dir");
        let catalog = catalog(data.path());
        let nginx = catalog.resolve("nginx:1.25").expect("nginx");
        let id = nginx.image_id();
        let hex = id.strip_prefix("skiff://sha256:").expect("prefix");
        assert_eq!(hex.len(), 64);
        assert!(hex.bytes().all(|b| b.is_ascii_hexdigit()));
        // The demo binary's path is not part of the identity.
        let moved = ImageCatalog::open(data.path().join(CATALOG_SUBDIR))
            .expect("open")
            .with_demo_program("/elsewhere/skiff");
        assert_eq!(moved.resolve("nginx:1.25").expect("nginx").image_id(), id);
        assert_ne!(catalog.resolve("nginx:1.26").expect("nginx").image_id(), id);

        let first = import_simple(&catalog, "app:1", root.path()).image_id();
        assert_eq!(catalog.resolve("app:1").expect("app").image_id(), first);
        let moved = import_simple(&catalog, "app:1", other_root.path()).image_id();
        assert_ne!(moved, first);
        let reconfigured = catalog
            .import(
                "app:1",
                other_root.path(),
                vec!["x".into()],
                vec![],
                vec![],
                None,
            )
            .expect("import")
            .image_id();
        assert_ne!(reconfigured, moved);
    }
}
