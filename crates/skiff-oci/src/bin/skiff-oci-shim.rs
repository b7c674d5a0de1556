//! The embedded runtime's shim as a program of its own, for this crate's tests and
//! benchmarks (`node-monitor` as first argument runs the node's monitor instead); the `skiff`
//! binary exposes the same entry points as hidden subcommands.

fn main() {
    let mut args = std::env::args_os().skip(1).peekable();
    if args.peek().is_some_and(|a| a == "node-monitor") {
        args.next();
        std::process::exit(skiff_oci::monitor_main(args));
    }
    std::process::exit(skiff_oci::shim_main(args));
}
