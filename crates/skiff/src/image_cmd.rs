//! `skiff image`: the node's image catalog from the command line, and `skiff demo-server`, the
//! process the built-in demo images run.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;
use skiff_node::images::{Builtin, Image, ImageCatalog};

/// `skiff image ...`.
#[derive(Subcommand, Debug)]
pub enum ImageCommand {
    /// Register a directory as an image, so pods naming NAME:TAG run programs from it.
    Import(ImportArgs),
    /// List the imported images, then the built-in aliases (which accept any tag).
    Ls(LsArgs),
}

/// Options of `skiff image import`.
#[derive(clap::Args, Debug)]
pub struct ImportArgs {
    /// The image reference, `NAME[:TAG]` (tag `latest` if omitted).
    #[arg(value_name = "NAME:TAG")]
    pub reference: String,
    /// The directory holding the image's files.
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
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

/// Runs `skiff image ...`.
pub fn run(command: &ImageCommand) -> ExitCode {
    let result = match command {
        ImageCommand::Import(args) => import(args),
        ImageCommand::Ls(args) => list(args),
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
    let catalog = open_catalog(args.data_dir.as_ref())?;
    let image = catalog
        .import(
            &args.reference,
            &args.dir,
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

fn source(image: &Image) -> String {
    match (&image.builtin, &image.root) {
        (Some(Builtin::Demo { .. }), _) => "built-in: demo server".to_string(),
        (Some(Builtin::HostShell), _) => "built-in: host shell".to_string(),
        (None, Some(root)) => root.display().to_string(),
        (None, None) => String::new(),
    }
}

fn list(args: &LsArgs) -> Result<(), String> {
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
