//! The host's side of the network tests: commands that must succeed and the routes they check.

use std::collections::BTreeSet;
use std::process::Command;

/// Runs a host command and returns its stdout, failing the test unless it succeeds.
pub fn host(program: &str, args: &[&str]) -> String {
    let output = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e} (is it installed?)"));
    assert!(
        output.status.success(),
        "{program} {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The destinations of the host's `unreachable` routes: the guards a test checks before it
/// sends anything into the cluster's ranges.
pub fn unreachable_routes() -> BTreeSet<String> {
    host("ip", &["-4", "route", "show", "type", "unreachable"])
        .lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace().skip_while(|w| *w == "unreachable");
            words.next().map(str::to_string)
        })
        .collect()
}
