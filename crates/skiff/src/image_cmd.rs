//! `skiff image`: the node's images from the command line (the OCI content store filled by
//! pulls and archive imports, beside the catalog of imported directories and built-in
//! aliases), and `skiff demo-server`, the process the built-in demo images run.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Subcommand;
use skiff_images::registries::RegistriesFile;
use skiff_images::{ContentStore, ImageRecord, Puller, Reference, RegistryConfig};
use skiff_node::images::{Builtin, Image, ImageCatalog};

/// `skiff image ...`.
#[derive(Subcommand, Debug)]
pub enum ImageCommand {
    /// Import a `docker save` or OCI image archive (FILE, also .tar.gz or .tar.zst) into the
    /// content store, or, given NAME:TAG and DIR, register a directory as an image.
    Import(ImportArgs),
    /// List the stored images (name, tag, digest, size), then the catalog of directories and
    /// built-in aliases (which accept any tag).
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
    /// The data directory of the `skiff up` whose catalog to list.
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

fn open_catalog(data_dir: Option<&PathBuf>) -> Result<ImageCatalog, String> {
    let data_dir = data_dir
        .cloned()
        .unwrap_or_else(crate::up::default_data_dir);
    ImageCatalog::open_in_data_dir(&data_dir).map_err(|e| e.to_string())
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
    let catalog = open_catalog(args.data_dir.as_ref())?;
    let image = catalog
        .import(
            &args.reference,
            dir,
            args.entrypoint.clone(),
            args.cmd.clone(),
            args.env.clone(),
            args.workdir.clone(),
        )
        .map_err(|e| e.to_string())?;
    let root = image
        .root
        .as_ref()
        .map(|r| r.display().to_string())
        .unwrap_or_default();
    println!("imported {} from {root}", image.reference());
    Ok(())
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

fn source(image: &Image) -> String {
    match (&image.builtin, &image.root) {
        (Some(Builtin::Demo { .. }), _) => "built-in: demo server".to_string(),
        (Some(Builtin::HostShell), _) => "built-in: host shell".to_string(),
        (None, Some(root)) => root.display().to_string(),
        (None, None) => String::new(),
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
    if !stored.is_empty() {
        print_table(["NAME", "TAG", "DIGEST", "SIZE"], &stored);
        println!();
    }
    let catalog = open_catalog(args.data_dir.as_ref())?;
    let rows: Vec<[String; 3]> = catalog
        .list()
        .iter()
        .map(|image| [image.name.clone(), image.tag.clone(), source(image)])
        .collect();
    let header = ["NAME", "TAG", "SOURCE"].map(String::from);
    let width = |column: usize| {
        rows.iter()
            .chain(std::iter::once(&header))
            .map(|row| row[column].chars().count())
            .max()
            .unwrap_or(0)
    };
    let (name_width, tag_width) = (width(0), width(1));
    for row in std::iter::once(&header).chain(rows.iter()) {
        println!(
            "{:<name_width$}   {:<tag_width$}   {}",
            row[0], row[1], row[2]
        );
    }
    Ok(())
}

/// Runs `skiff demo-server`: the demo HTTP server, configured from the environment.
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
