//! The `skiff` binary's one-shot commands (`skiff image ...`) run against a data directory,
//! and the tables they print split into cells.

use std::path::Path;
use std::process::Command;

/// Runs `skiff ARGS --data-dir DATA_DIR` with no `SKIFF_DATA_DIR` inherited, so the command
/// sees only the test's directory; whether it succeeded, its stdout and its stderr.
pub fn skiff(data_dir: &Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_skiff"))
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .env_remove("SKIFF_DATA_DIR")
        .output()
        .expect("run skiff");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Splits a listing into rows of cells separated by three or more spaces, so that a cell
/// holding single spaces (`built-in: demo server`) stays whole; a blank line is an empty row.
pub fn rows(listing: &str) -> Vec<Vec<String>> {
    listing
        .lines()
        .map(|line| {
            line.split("   ")
                .map(str::trim)
                .filter(|cell| !cell.is_empty())
                .map(String::from)
                .collect()
        })
        .collect()
}
