//! `skiff image`: the node's images from the command line (the OCI content store filled by
//! pulls, archive imports and directories built into one-layer images), and
//! `skiff demo-server`, the program the demo test image runs.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Subcommand;
use skiff_images::build::{ImageBuilder, ImageConfig, LayerBuilder, LayerCompression};
use skiff_images::registries::RegistriesFile;
use skiff_images::{ContentStore, ImageRecord, Puller, Reference, RegistryConfig};

/// `skiff image ...`.
#[derive(Subcommand, Debug)]
pub enum ImageCommand {
    /// Import a `docker save` or OCI image archive (FILE, also .tar.gz or .tar.zst) into the
    /// content store, or, given NAME:TAG and DIR, build a one-layer image of the directory.
    Import(ImportArgs),
    /// List the stored images (name, tag, digest, size).
    Ls(LsArgs),
    /// Pull an image from its registry into the content store.
    Pull(PullArgs),
    /// Remove an image from the content store, with the blobs and layers no other image needs.
    Rm(RmArgs),
}

/// Options of `skiff image import`.
#[derive(clap::Args, Debug)]
pub struct ImportArgs {
    /// The archive to import, or with DIR the image reference `NAME[:TAG]` (tag `latest` if
    /// omitted).
    #[arg(value_name = "FILE|NAME:TAG")]
    pub reference: String,
    /// The directory holding the image's files.
    #[arg(value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// One word of the image's entrypoint (Docker ENTRYPOINT); repeat for more.
    #[arg(long, value_name = "CMD", allow_hyphen_values = true)]
    pub entrypoint: Vec<String>,
    /// One default argument (Docker CMD); repeat for more.
    #[arg(long, value_name = "ARG", allow_hyphen_values = true)]
    pub cmd: Vec<String>,
    /// An environment variable the image sets; repeat for more.
    #[arg(long, value_name = "K=V", value_parser = parse_env)]
    pub env: Vec<(String, String)>,
    /// The image's working directory.
    #[arg(long, value_name = "DIR")]
    pub workdir: Option<String>,
    /// The data directory of the `skiff up` whose node runs the image.
    #[arg(long, env = "SKIFF_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
}

/// Options of `skiff image ls`.
#[derive(clap::Args, Debug)]
pub struct LsArgs {
    /// The data directory of the `skiff up` whose content store to list.
    #[arg(long, env = "SKIFF_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
}

/// Options of `skiff image pull`.
#[derive(clap::Args, Debug)]
pub struct PullArgs {
    /// The image reference (`nginx`, `registry:5000/app:1`, `app@sha256:...`).
    #[arg(value_name = "NAME")]
    pub reference: String,
    /// A registries file (k3s' `registries.yaml` shape): plain-HTTP endpoints and credentials.
    #[arg(long, value_name = "FILE")]
    pub registry_config: Option<PathBuf>,
    /// The data directory whose content store receives the image.
    #[arg(long, env = "SKIFF_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
}

/// Options of `skiff image rm`.
#[derive(clap::Args, Debug)]
pub struct RmArgs {
    /// The image reference to remove (by tag, or by digest for every name it has).
    #[arg(value_name = "NAME")]
    pub reference: String,
    /// The data directory whose content store holds the image.
    #[arg(long, env = "SKIFF_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
}

fn parse_env(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_string(), value.to_string())),
        _ => Err(format!("expected K=V, got {text:?}")),
    }
}

/// The content store of a data directory: `DATA_DIR/content`.
fn open_store(data_dir: Option<&PathBuf>) -> Result<ContentStore, String> {
    let data_dir = data_dir
        .cloned()
        .unwrap_or_else(crate::up::default_data_dir);
    ContentStore::open(data_dir.join(CONTENT_SUBDIR)).map_err(|e| e.to_string())
}

/// Where a data directory keeps its content store.
pub(crate) const CONTENT_SUBDIR: &str = "content";

/// Runs `skiff image ...`.
pub fn run(command: &ImageCommand) -> ExitCode {
    let result = match command {
        ImageCommand::Import(args) => import(args),
        ImageCommand::Ls(args) => list(args),
        ImageCommand::Pull(args) => pull(args),
        ImageCommand::Rm(args) => remove(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn import(args: &ImportArgs) -> Result<(), String> {
    let Some(dir) = &args.dir else {
        return import_archive(args);
    };
    let reference = Reference::parse(&args.reference).map_err(|e| e.to_string())?;
    if reference.digest().is_some() {
        return Err(format!(
            "{}: a directory is imported under NAME[:TAG], not a digest",
            args.reference
        ));
    }
    let layer = directory_layer(dir)?
        .build(LayerCompression::Gzip)
        .map_err(|e| e.to_string())?;
    let image = ImageBuilder::new()
        .layer(layer)
        .config(ImageConfig {
            entrypoint: args.entrypoint.clone(),
            cmd: args.cmd.clone(),
            env: args.env.clone(),
            working_dir: args.workdir.clone(),
            ..ImageConfig::default()
        })
        .build();
    let store = open_store(args.data_dir.as_ref())?;
    let record = image
        .import_into(&store, &reference.to_string())
        .map_err(|e| e.to_string())?;
    println!(
        "imported {} {} from {}",
        display_name(&record),
        record.digest,
        dir.display()
    );
    Ok(())
}

/// One layer holding `dir`'s tree: directories, regular files and symbolic links with their
/// modes; sockets, pipes and devices are left out.
fn directory_layer(dir: &Path) -> Result<LayerBuilder, String> {
    let metadata = std::fs::metadata(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    if !metadata.is_dir() {
        return Err(format!("{}: not a directory", dir.display()));
    }
    let mut layer = LayerBuilder::new();
    let mut pending = vec![(dir.to_path_buf(), String::new())];
    while let Some((host_dir, image_dir)) = pending.pop() {
        let entries =
            std::fs::read_dir(&host_dir).map_err(|e| format!("{}: {e}", host_dir.display()))?;
        for entry in entries {
            let entry = entry.map_err(|e| format!("{}: {e}", host_dir.display()))?;
            let host_path = entry.path();
            let name = entry.file_name();
            let name = name
                .to_str()
                .ok_or_else(|| format!("{}: the name is not UTF-8", host_path.display()))?;
            let image_path = format!("{image_dir}/{name}");
            let metadata = std::fs::symlink_metadata(&host_path)
                .map_err(|e| format!("{}: {e}", host_path.display()))?;
            let mode = std::os::unix::fs::PermissionsExt::mode(&metadata.permissions()) & 0o7777;
            let kind = metadata.file_type();
            let added = if kind.is_dir() {
                pending.push((host_path.clone(), image_path.clone()));
                layer.directory(&image_path, mode)
            } else if kind.is_file() {
                layer.host_file_with_mode(&image_path, &host_path, mode)
            } else if kind.is_symlink() {
                let target = std::fs::read_link(&host_path)
                    .map_err(|e| format!("{}: {e}", host_path.display()))?;
                let target = target.to_str().ok_or_else(|| {
                    format!("{}: the link's target is not UTF-8", host_path.display())
                })?;
                layer.symlink(&image_path, target)
            } else {
                continue;
            };
            added.map_err(|e| format!("{}: {e}", host_path.display()))?;
        }
    }
    Ok(layer)
}

fn import_archive(args: &ImportArgs) -> Result<(), String> {
    let store = open_store(args.data_dir.as_ref())?;
    let records = skiff_images::archive::import_archive(&store, Path::new(&args.reference))
        .map_err(|e| e.to_string())?;
    for record in records {
        println!("imported {} {}", display_name(&record), record.digest);
    }
    Ok(())
}

/// `name:tag`, or `name@digest` for an image pulled by digest only.
fn display_name(record: &ImageRecord) -> String {
    match &record.tag {
        Some(tag) => format!("{}:{tag}", record.name),
        None => format!("{}@{}", record.name, record.digest),
    }
}

/// Reads a registries file (k3s' `registries.yaml` shape); none means plain defaults.
pub fn registry_config(path: Option<&Path>) -> Result<RegistryConfig, String> {
    let Some(path) = path else {
        return Ok(RegistryConfig::default());
    };
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let file: RegistriesFile =
        skiff_api::yaml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    file.to_config()
        .map_err(|e| format!("{}: {e}", path.display()))
}

fn pull(args: &PullArgs) -> Result<(), String> {
    let reference = Reference::parse(&args.reference).map_err(|e| e.to_string())?;
    let config = registry_config(args.registry_config.as_deref())?;
    let store = open_store(args.data_dir.as_ref())?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let record = runtime
        .block_on(Puller::new(store, config).pull(&reference))
        .map_err(|e| format!("pulling {reference}: {e}"))?;
    println!("pulled {} {}", display_name(&record), record.digest);
    Ok(())
}

fn remove(args: &RmArgs) -> Result<(), String> {
    let reference = Reference::parse(&args.reference).map_err(|e| e.to_string())?;
    let store = open_store(args.data_dir.as_ref())?;
    let removed = store
        .remove_image(
            &reference.name(),
            reference.effective_tag(),
            reference.digest(),
        )
        .map_err(|e| e.to_string())?;
    if removed.is_empty() {
        return Err(format!("no such image: {reference}"));
    }
    for record in removed {
        println!("deleted {}", display_name(&record));
    }
    Ok(())
}

/// Docker's human-readable size: decimal units, four significant digits (`1.235MB`).
fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 7] = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit + 1 < UNITS.len() {
        value /= 1000.0;
        unit += 1;
    }
    let digits = if value >= 1000.0 {
        0
    } else if value >= 100.0 {
        1
    } else if value >= 10.0 {
        2
    } else {
        3
    };
    let text = format!("{value:.digits$}");
    let text = if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        text
    };
    format!("{text}{}", UNITS[unit])
}

fn print_table<const N: usize>(header: [&str; N], rows: &[[String; N]]) {
    let header = header.map(String::from);
    let widths: Vec<usize> = (0..N)
        .map(|column| {
            rows.iter()
                .chain(std::iter::once(&header))
                .map(|row| row[column].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    for row in std::iter::once(&header).chain(rows.iter()) {
        let mut line = String::new();
        for (column, cell) in row.iter().enumerate() {
            if column + 1 == N {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<width$}   ", width = widths[column]));
            }
        }
        println!("{line}");
    }
}

fn list(args: &LsArgs) -> Result<(), String> {
    let store = open_store(args.data_dir.as_ref())?;
    let stored: Vec<[String; 4]> = store
        .images()
        .map_err(|e| e.to_string())?
        .iter()
        .map(|record| {
            [
                record.name.clone(),
                record.tag.clone().unwrap_or_else(|| "<none>".to_string()),
                record.digest.clone(),
                human_size(record.size),
            ]
        })
        .collect();
    print_table(["NAME", "TAG", "DIGEST", "SIZE"], &stored);
    Ok(())
}

/// Runs `skiff demo-server`: the demo HTTP server, configured from the environment (the
/// program of the demo test image, also built alone as `skiff-demo`).
pub fn demo_server() -> ExitCode {
    ExitCode::from(skiff_node::demo::main_from_env())
}

#[cfg(test)]
mod tests {
    use super::human_size;

    #[test]
    fn sizes_print_as_docker_prints_them() {
        for (bytes, text) in [
            (0, "0B"),
            (999, "999B"),
            (1000, "1kB"),
            (1_234_567, "1.235MB"),
            (52_430_000, "52.43MB"),
            (123_456_789_000, "123.5GB"),
        ] {
            assert_eq!(human_size(bytes), text, "{bytes}");
        }
    }
}
