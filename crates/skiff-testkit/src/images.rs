//! The test images: real OCI images built from files on this machine with
//! [`skiff_images::build`], each written as an OCI archive once per set of inputs and cached
//! under the target directory.
//!
//! - [`demo`]: Skiff's demo HTTP server (the `skiff-demo` binary) with exactly the shared
//!   libraries and loader it needs, reporting its tag as its version;
//! - [`httpd`]: busybox's `httpd` serving `version=<tag>` from `/www`, bound to the pod's IP;
//! - [`shell`]: busybox and its applets, `/bin/sh` first among them;
//! - [`python`]: the host's `python3` with its standard library and the PyPI `kubernetes`
//!   client with what it requires, as installed on the host.
//!
//! Names live under [`TEST_REGISTRY`], a loopback port nothing serves: an image missing from
//! the store fails to pull at once and no test ever reaches beyond the machine.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex, OnceLock};

use skiff_images::build::{
    BuiltImage, ImageBuilder, ImageConfig, LayerBuilder, LayerCompression, DEFAULT_PATH,
};
use skiff_images::digest::{Algorithm, Hasher};

/// Where test image names live: `127.0.0.1:9` (the discard port, which nothing serves here).
pub const TEST_REGISTRY: &str = "127.0.0.1:9/skiff-test";

/// The static busybox of Debian's `busybox-static` package.
pub const BUSYBOX: &str = "/bin/busybox";

/// The tag of the [`shell`] image; not `latest`, whose default pull policy is `Always`.
pub const SHELL_TAG: &str = "1.36";

/// Bumped whenever what the recipes below produce changes, so old cached archives are not
/// reused.
const RECIPE_VERSION: &str = "2";

/// A test image: its full name and the OCI archive holding it.
#[derive(Clone)]
pub struct TestImage {
    /// `127.0.0.1:9/skiff-test/<repository>:<tag>`.
    pub name: String,
    /// The repository part of the name, `skiff-test/<repository>`, to push it elsewhere.
    pub repository: String,
    /// The tag.
    pub tag: String,
    /// The OCI image archive (`oci-layout`, `index.json`, blobs), complete once visible.
    pub archive: PathBuf,
    recipe: Recipe,
}

impl std::fmt::Debug for TestImage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestImage")
            .field("name", &self.name)
            .field("archive", &self.archive)
            .finish()
    }
}

impl TestImage {
    /// Builds the image again in memory (the same bytes as the archive), to push it.
    pub fn build(&self) -> BuiltImage {
        self.recipe.build()
    }
}

/// What a test image is made of; everything it reads from the host is in its inputs.
#[derive(Clone, Debug)]
enum Recipe {
    Demo {
        binary: PathBuf,
        libraries: Vec<PathBuf>,
        tag: String,
    },
    Httpd {
        tag: String,
    },
    Shell,
    Python {
        interpreter: PathBuf,
        files: Vec<PathBuf>,
    },
}

impl Recipe {
    /// The host files the image copies.
    fn inputs(&self) -> Vec<PathBuf> {
        match self {
            Recipe::Demo {
                binary, libraries, ..
            } => std::iter::once(binary.clone())
                .chain(libraries.iter().cloned())
                .collect(),
            Recipe::Httpd { .. } | Recipe::Shell => vec![PathBuf::from(BUSYBOX)],
            Recipe::Python { files, .. } => files.clone(),
        }
    }

    fn build(&self) -> BuiltImage {
        match self {
            Recipe::Demo {
                binary,
                libraries,
                tag,
            } => {
                // Kept until the layer is built, which reads the file.
                let program = without_debug_info(binary);
                let mut layer = LayerBuilder::new();
                layer
                    .host_file_with_mode("skiff-demo", program.path(), 0o755)
                    .unwrap_or_else(|e| panic!("demo image: {e}"));
                for library in libraries {
                    let path = library.to_string_lossy();
                    layer
                        .host_file_with_mode(&path, library, 0o755)
                        .unwrap_or_else(|e| panic!("demo image: {e}"));
                }
                ImageBuilder::new()
                    .layer(built_layer(&layer))
                    .config(ImageConfig {
                        entrypoint: vec!["/skiff-demo".into()],
                        env: vec![
                            ("PATH".into(), DEFAULT_PATH.into()),
                            ("SKIFF_DEMO_VERSION".into(), tag.clone()),
                        ],
                        exposed_ports: vec!["80/tcp".into()],
                        ..ImageConfig::default()
                    })
                    .build()
            }
            Recipe::Httpd { tag } => {
                let mut site = LayerBuilder::new();
                site.file("www/index.html", format!("version={tag}\n"), 0o644)
                    .unwrap_or_else(|e| panic!("httpd image: {e}"));
                ImageBuilder::new()
                    .layer(busybox_layer())
                    .layer(built_layer(&site))
                    .config(ImageConfig {
                        cmd: [
                            "sh",
                            "-c",
                            "exec httpd -f -v -p ${SKIFF_POD_IP:-0.0.0.0}:80 -h /www",
                        ]
                        .map(String::from)
                        .to_vec(),
                        env: vec![("PATH".into(), DEFAULT_PATH.into())],
                        exposed_ports: vec!["80/tcp".into()],
                        ..ImageConfig::default()
                    })
                    .build()
            }
            Recipe::Shell => ImageBuilder::new()
                .layer(busybox_layer())
                .config(ImageConfig {
                    cmd: vec!["sh".into()],
                    env: vec![("PATH".into(), DEFAULT_PATH.into())],
                    ..ImageConfig::default()
                })
                .build(),
            Recipe::Python { interpreter, files } => python_image(interpreter, files),
        }
    }
}

/// A copy of `binary` without its debug sections (`strip --strip-debug`, which keeps the
/// symbols panics name): a debug build of the demo server shrinks from about 35 MB to 11 MB,
/// and every test server imports it for each tag. Where `strip` is missing the copy is whole.
fn without_debug_info(binary: &Path) -> tempfile::NamedTempFile {
    let copy = tempfile::NamedTempFile::new()
        .unwrap_or_else(|e| panic!("a temporary file for the demo binary: {e}"));
    let stripped = Command::new("strip")
        .arg("--strip-debug")
        .arg("-o")
        .arg(copy.path())
        .arg(binary)
        .status()
        .is_ok_and(|status| status.success());
    if !stripped {
        std::fs::copy(binary, copy.path())
            .unwrap_or_else(|e| panic!("copying {}: {e}", binary.display()));
    }
    copy
}

fn built_layer(layer: &LayerBuilder) -> skiff_images::build::Layer {
    layer
        .build(LayerCompression::None)
        .unwrap_or_else(|e| panic!("building a test image layer: {e}"))
}

/// Busybox at `/bin/busybox`, a symlink to it for every applet at the path busybox lists for
/// it (`/bin/sh`, `/usr/bin/wget`...), and a world-writable `/tmp`.
fn busybox_layer() -> skiff_images::build::Layer {
    let mut layer = LayerBuilder::new();
    layer
        .host_file_with_mode("bin/busybox", BUSYBOX, 0o755)
        .and_then(|l| l.directory("tmp", 0o1777))
        .unwrap_or_else(|e| panic!("busybox layer: {e}"));
    for applet in busybox_applets() {
        layer
            .symlink(&applet, "/bin/busybox")
            .unwrap_or_else(|e| panic!("busybox applet {applet}: {e}"));
    }
    built_layer(&layer)
}

/// The paths busybox installs its applets at (`busybox --list-full`), except its own and
/// those at the root (`linuxrc`).
fn busybox_applets() -> Vec<String> {
    let output = Command::new(BUSYBOX)
        .arg("--list-full")
        .output()
        .unwrap_or_else(|e| {
            panic!("running {BUSYBOX}: {e} (the tests need Debian's busybox-static package)")
        });
    assert!(
        output.status.success(),
        "{BUSYBOX} --list-full failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(str::trim)
        .filter(|path| path.contains('/') && *path != "bin/busybox")
        .map(str::to_string)
        .collect()
}

/// The shared libraries and dynamic loader `ldd` lists for a binary, as absolute paths;
/// the kernel's vDSO (no file) is left out. Fails on a library `ldd` could not find.
pub fn parse_ldd(output: &str) -> Result<Vec<PathBuf>, String> {
    let mut paths = Vec::new();
    for line in output.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if line.contains("not found") {
            return Err(format!("ldd could not find a library: {line}"));
        }
        if line.contains("statically linked") || line.contains("not a dynamic executable") {
            continue;
        }
        // `libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)` or
        // `/lib64/ld-linux-x86-64.so.2 (0x...)` or `linux-vdso.so.1 (0x...)`.
        let file = match line.split_once("=>") {
            Some((_, resolved)) => resolved.trim(),
            None => line,
        };
        let path = file.split_whitespace().next().unwrap_or_default();
        if path.starts_with('/') {
            paths.push(PathBuf::from(path));
        }
    }
    paths.sort();
    paths.dedup();
    Ok(paths)
}

/// The libraries and loader `binary` needs, from `ldd`.
fn shared_libraries(binary: &Path) -> Vec<PathBuf> {
    let output = Command::new("ldd")
        .arg(binary)
        .output()
        .unwrap_or_else(|e| panic!("running ldd {}: {e}", binary.display()));
    // ldd exits 1 for a static binary, with "not a dynamic executable".
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    parse_ldd(&text).unwrap_or_else(|e| panic!("{}: {e}", binary.display()))
}

/// The demo server image `127.0.0.1:9/skiff-test/demo:<tag>`, from the `skiff-demo` binary
/// beside the running test's executable in the target directory (Cargo builds it before the
/// `skiff` package's integration tests).
pub fn demo(tag: &str) -> TestImage {
    let binary = target_dir()
        .map(|dir| dir.join("skiff-demo"))
        .filter(|path| path.is_file())
        .unwrap_or_else(|| {
            panic!(
                "no skiff-demo binary in the target directory; build it first \
                 (cargo build -p skiff --bin skiff-demo)"
            )
        });
    demo_from_binary(&binary, tag)
}

/// The demo server image from a given binary: the binary as `/skiff-demo`, the shared
/// libraries and loader `ldd` lists for it at their paths, and nothing else of the host;
/// Entrypoint `/skiff-demo`, `SKIFF_DEMO_VERSION=<tag>` and a `PATH` in its environment.
pub fn demo_from_binary(binary: &Path, tag: &str) -> TestImage {
    let libraries = shared_libraries(binary);
    cached(
        "demo",
        tag,
        Recipe::Demo {
            binary: binary.to_path_buf(),
            libraries,
            tag: tag.to_string(),
        },
    )
}

/// The busybox `httpd` image `127.0.0.1:9/skiff-test/httpd:<tag>`: serves `/www` where
/// `index.html` is `version=<tag>\n`, on port 80 of `$SKIFF_POD_IP` (all addresses without it).
pub fn httpd(tag: &str) -> TestImage {
    cached(
        "httpd",
        tag,
        Recipe::Httpd {
            tag: tag.to_string(),
        },
    )
}

/// The shell image `127.0.0.1:9/skiff-test/shell:1.36`: busybox with its applets; runs `sh`.
pub fn shell() -> TestImage {
    cached("shell", SHELL_TAG, Recipe::Shell)
}

/// The tag of the [`python`] image.
pub const PYTHON_TAG: &str = "3";

/// The Python image `127.0.0.1:9/skiff-test/python:3`: the host's `python3` (the one on the
/// `PATH`, whose site-packages hold the PyPI `kubernetes` client), the shared libraries `ldd`
/// lists for it and its extension modules (without debug sections), its standard library without tests, IDLE, Tk and
/// byte code, and the `kubernetes` distribution (without its unused asyncio client) with every
/// one it requires (not the others of site-packages), all at their host paths; `/usr/bin/python3` leads to the interpreter and
/// the image runs `python3`. No CA bundle is needed: the in-cluster configuration trusts the
/// mounted `ca.crt`.
pub fn python() -> TestImage {
    let probe = Command::new("python3")
        .args(["-c", PYTHON_PROBE])
        .output()
        .unwrap_or_else(|e| {
            panic!("running python3: {e} (the tests need Debian's python3 and PyPI's kubernetes)")
        });
    assert!(
        probe.status.success(),
        "python3 could not list the kubernetes client's files (is the PyPI `kubernetes` \
         package installed?): {}",
        String::from_utf8_lossy(&probe.stderr)
    );
    let mut interpreter = None;
    let mut files = Vec::new();
    for line in String::from_utf8_lossy(&probe.stdout).lines() {
        match line.split_once(' ') {
            Some(("interpreter", path)) => {
                interpreter = Some(PathBuf::from(path));
                files.push(PathBuf::from(path));
            }
            Some(("stdlib" | "package", path)) => collect_python_files(Path::new(path), &mut files),
            _ => panic!("unexpected line from the python3 probe: {line:?}"),
        }
    }
    let interpreter = interpreter.expect("the python3 probe names its interpreter");
    files.sort();
    files.dedup();
    cached("python", PYTHON_TAG, Recipe::Python { interpreter, files })
}

/// Prints `interpreter PATH`, `stdlib PATH` and a `package PATH` for each top-level module or
/// package of the `kubernetes` distribution and those it requires (extras left out).
const PYTHON_PROBE: &str = r#"
import os, sys, sysconfig
from importlib import metadata

def requirement_name(requirement):
    spec = requirement.split(';')[0].strip()
    for separator in '<>=!~[( ':
        spec = spec.split(separator)[0]
    return spec

seen, pending = {}, ['kubernetes']
while pending:
    name = pending.pop().lower().replace('_', '-')
    if name in seen:
        continue
    try:
        dist = metadata.distribution(name)
    except metadata.PackageNotFoundError:
        if name == 'kubernetes':
            raise
        continue
    seen[name] = dist
    for requirement in dist.requires or []:
        if 'extra' not in requirement.partition(';')[2]:
            pending.append(requirement_name(requirement))

print('interpreter', os.path.realpath(sys.executable))
print('stdlib', sysconfig.get_path('stdlib'))
for dist in seen.values():
    tops = set()
    for file in dist.files or []:
        top = file.parts[0]
        if top.endswith(('.dist-info', '.egg-info', '.pth')) or top in ('..', '__pycache__'):
            continue
        tops.add(top)
    for top in sorted(tops):
        print('package', os.path.join(str(dist.locate_file('')), top))
"#;

/// Directories of a Python tree the test image leaves out: byte code (written again on first
/// import), test suites, GUI and packaging tools, the build configuration, and other
/// site-packages (the probe names the ones wanted); and the `kubernetes` client's asyncio
/// twin (`kubernetes/aio`, 40 MB the synchronous client never imports).
fn skipped_python_directory(parent: &Path, name: &str) -> bool {
    let asyncio_client = name == "aio" && parent.file_name().is_some_and(|p| p == "kubernetes");
    asyncio_client
        || matches!(
            name,
            "__pycache__"
                | "test"
                | "tests"
                | "e2e_test"
                | "idlelib"
                | "tkinter"
                | "turtledemo"
                | "ensurepip"
                | "lib2to3"
                | "pydoc_data"
                | "site-packages"
                | "dist-packages"
        )
        || name.starts_with("config-")
}

/// Every regular file under `path` (or `path` itself), following symbolic links, without the
/// directories [`skipped_python_directory`] names.
fn collect_python_files(path: &Path, files: &mut Vec<PathBuf>) {
    let metadata = std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("reading python file {}: {e}", path.display()));
    if metadata.is_file() {
        files.push(path.to_path_buf());
        return;
    }
    if !metadata.is_dir() {
        return;
    }
    let entries = std::fs::read_dir(path)
        .unwrap_or_else(|e| panic!("listing python directory {}: {e}", path.display()));
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let child = entry.path();
        if child.is_dir() && skipped_python_directory(path, &name) {
            continue;
        }
        collect_python_files(&child, files);
    }
}

/// The Python image's single layer: every file at its host path, extension modules whose
/// libraries the host lacks (`_tkinter` without Tk, say) left out, the libraries `ldd` lists
/// for the interpreter and the extension modules, and `/usr/bin/python3` leading to the
/// interpreter.
fn python_image(interpreter: &Path, files: &[PathBuf]) -> BuiltImage {
    let mut layer = LayerBuilder::new();
    let mut libraries = shared_libraries(interpreter);
    for file in files {
        let is_extension = file.extension().is_some_and(|e| e == "so");
        if is_extension {
            let output = Command::new("ldd")
                .arg(file)
                .output()
                .unwrap_or_else(|e| panic!("running ldd {}: {e}", file.display()));
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
            match parse_ldd(&text) {
                Ok(needed) => libraries.extend(needed),
                Err(_) => continue,
            }
        }
        layer
            .host_file(&file.to_string_lossy(), file)
            .unwrap_or_else(|e| panic!("python image: {e}"));
    }
    libraries.sort();
    libraries.dedup();
    // Kept until the layer is built, which reads them; `libpython` alone loses half its size.
    let mut stripped = Vec::new();
    for library in &libraries {
        let copy = without_debug_info(library);
        layer
            .host_file_with_mode(&library.to_string_lossy(), copy.path(), 0o755)
            .unwrap_or_else(|e| panic!("python image: {e}"));
        stripped.push(copy);
    }
    let interpreter_path = interpreter.to_string_lossy();
    if interpreter_path != "/usr/bin/python3" {
        layer
            .symlink("usr/bin/python3", &interpreter_path)
            .unwrap_or_else(|e| panic!("python image: {e}"));
    }
    layer
        .directory("tmp", 0o1777)
        .unwrap_or_else(|e| panic!("python image: {e}"));
    let layer = built_layer(&layer);
    drop(stripped);
    ImageBuilder::new()
        .layer(layer)
        .config(ImageConfig {
            cmd: vec!["python3".into()],
            env: vec![("PATH".into(), DEFAULT_PATH.into())],
            ..ImageConfig::default()
        })
        .build()
}

/// The build directory of the running test (`target/debug`): the parent of the `deps`
/// directory its executable is in.
fn target_dir() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    exe.ancestors()
        .find(|dir| dir.file_name().is_some_and(|name| name == "deps"))
        .and_then(Path::parent)
        .map(Path::to_path_buf)
}

/// Where archives are cached: `skiff-test-images` in the build directory, else in the
/// system's temporary directory.
fn cache_dir() -> PathBuf {
    target_dir()
        .unwrap_or_else(std::env::temp_dir)
        .join("skiff-test-images")
}

/// Images this process has made or found, by name.
fn made() -> &'static Mutex<HashMap<String, TestImage>> {
    static MADE: OnceLock<Mutex<HashMap<String, TestImage>>> = OnceLock::new();
    MADE.get_or_init(Mutex::default)
}

/// The image `repository:tag` from `recipe`: from this process's memory, else from the
/// cached archive whose name carries the hash of the recipe and of every input's bytes, else
/// built and written there (through a temporary file renamed into place, so a concurrent
/// test process sees a whole archive or none).
fn cached(repository: &str, tag: &str, recipe: Recipe) -> TestImage {
    let name = format!("{TEST_REGISTRY}/{repository}:{tag}");
    let mut made = made().lock().unwrap_or_else(|e| e.into_inner());
    if let Some(image) = made.get(&name) {
        return image.clone();
    }
    let key = cache_key(&name, &recipe);
    let dir = cache_dir();
    std::fs::create_dir_all(&dir)
        .unwrap_or_else(|e| panic!("creating the image cache {}: {e}", dir.display()));
    let archive = dir.join(format!("{repository}-{tag}-{}.tar", &key[..16]));
    if !archive.is_file() {
        recipe
            .build()
            .write_oci_archive(&archive, &name)
            .unwrap_or_else(|e| panic!("writing test image {name}: {e}"));
        remove_superseded(&dir, &format!("{repository}-{tag}-"), &archive);
    }
    let image = TestImage {
        repository: format!(
            "{}/{repository}",
            TEST_REGISTRY.split_once('/').map_or("", |(_, path)| path)
        ),
        tag: tag.to_string(),
        name: name.clone(),
        archive,
        recipe,
    };
    made.insert(name, image.clone());
    image
}

/// Removes the archives of the same image built from other inputs (an older `skiff-demo`,
/// say), so the cache holds one archive per image: names `<prefix><16 hex>.tar` but `keep`.
/// Servers that were given one keep their hard link to it.
fn remove_superseded(dir: &Path, prefix: &str, keep: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let superseded = name
            .strip_prefix(prefix)
            .and_then(|rest| rest.strip_suffix(".tar"))
            .is_some_and(|key| key.len() == 16 && key.bytes().all(|b| b.is_ascii_hexdigit()));
        if superseded && entry.path() != keep {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// A hex SHA-256 of the recipe and the bytes of every file it reads.
fn cache_key(name: &str, recipe: &Recipe) -> String {
    let mut hasher = Hasher::new(Algorithm::Sha256);
    hasher.update(format!("{RECIPE_VERSION}\n{name}\n{recipe:?}\n").as_bytes());
    if matches!(recipe, Recipe::Python { .. }) {
        // Thousands of files: their sizes and change times stand for their bytes.
        for input in recipe.inputs() {
            let metadata = std::fs::metadata(&input)
                .unwrap_or_else(|e| panic!("reading test image input {}: {e}", input.display()));
            let changed = metadata
                .modified()
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .unwrap_or_default();
            hasher.update(format!("{} {changed:?}\n", metadata.len()).as_bytes());
        }
        return hasher.finish().hex().to_string();
    }
    for input in recipe.inputs() {
        let bytes = std::fs::read(&input)
            .unwrap_or_else(|e| panic!("reading test image input {}: {e}", input.display()));
        hasher.update(&bytes);
    }
    if matches!(recipe, Recipe::Httpd { .. } | Recipe::Shell) {
        hasher.update(busybox_applets().join("\n").as_bytes());
    }
    hasher.finish().hex().to_string()
}

/// An `Arc` of an image built once per process, for tests that push the same image often.
pub fn built(image: &TestImage) -> Arc<BuiltImage> {
    static BUILT: OnceLock<Mutex<HashMap<String, Arc<BuiltImage>>>> = OnceLock::new();
    let mut built = BUILT
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    built
        .entry(image.name.clone())
        .or_insert_with(|| Arc::new(image.build()))
        .clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ldd_output_gives_the_libraries_and_loader_but_not_the_vdso() {
        let output = "\tlinux-vdso.so.1 (0x00007ffd)\n\
            \tlibgcc_s.so.1 => /lib/x86_64-linux-gnu/libgcc_s.so.1 (0x00007f6a)\n\
            \tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f6b)\n\
            \t/lib64/ld-linux-x86-64.so.2 (0x00007f6c)\n";
        assert_eq!(
            parse_ldd(output).unwrap(),
            [
                "/lib/x86_64-linux-gnu/libc.so.6",
                "/lib/x86_64-linux-gnu/libgcc_s.so.1",
                "/lib64/ld-linux-x86-64.so.2",
            ]
            .map(PathBuf::from)
        );
        assert_eq!(
            parse_ldd("\tnot a dynamic executable\n").unwrap(),
            Vec::<PathBuf>::new()
        );
        let missing = parse_ldd("\tlibfoo.so.1 => not found\n").unwrap_err();
        assert!(missing.contains("libfoo.so.1"), "{missing}");
    }
}
