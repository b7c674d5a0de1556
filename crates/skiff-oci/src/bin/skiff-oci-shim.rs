//! The embedded runtime's shim as a program of its own, for this crate's tests and
//! benchmarks; the `skiff` binary exposes the same entry point as a hidden subcommand.

fn main() {
    std::process::exit(skiff_oci::shim_main(std::env::args_os().skip(1)));
}
