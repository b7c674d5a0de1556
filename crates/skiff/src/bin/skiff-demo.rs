//! The demo HTTP server alone (`skiff demo-server` without the rest of Skiff), so that a
//! test image can carry it: linked on its own, the binary keeps only the demo server's code.

use std::process::ExitCode;

fn main() -> ExitCode {
    ExitCode::from(skiff_node::demo::main_from_env())
}
