//! Processes found through `/proc` by a marker in their environment, so that a test can count,
//! check and kill exactly the processes its pods started and nothing else on the machine.

use std::time::{SystemTime, UNIX_EPOCH};

/// A process whose environment carries a test's marker, as `/proc` showed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaggedProcess {
    /// Its process id.
    pub pid: i32,
    /// The command name from `/proc/PID/stat` (the part in parentheses), when it was readable.
    pub command_name: Option<String>,
    /// The one-letter state from `/proc/PID/stat` (`R`, `S`, `Z`...), when it was readable.
    pub state: Option<String>,
    /// The command line with its arguments joined by spaces.
    pub command_line: String,
}

impl TaggedProcess {
    /// Whether the process is still alive: not a zombie waiting to be reaped, nor dead.
    pub fn is_live(&self) -> bool {
        !matches!(self.state.as_deref(), Some("Z" | "X"))
    }
}

/// The processes whose environment holds `VARIABLE=VALUE` with a `VALUE` that `matches`
/// accepts, by increasing pid. Processes that exit while being read are skipped; a missing
/// `/proc` fails the test, as nothing could be checked without it.
pub fn tagged_processes(variable: &str, matches: impl Fn(&str) -> bool) -> Vec<TaggedProcess> {
    let entries = std::fs::read_dir("/proc")
        .unwrap_or_else(|e| panic!("this test reads /proc, which cannot be listed: {e}"));
    let prefix = format!("{variable}=");
    let mut found = Vec::new();
    for entry in entries.filter_map(Result::ok) {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|p| p.parse::<i32>().ok())
        else {
            continue;
        };
        let Ok(environ) = std::fs::read(entry.path().join("environ")) else {
            continue;
        };
        let tagged = environ
            .split(|b| *b == 0)
            .filter_map(|var| std::str::from_utf8(var).ok())
            .filter_map(|var| var.strip_prefix(&prefix))
            .any(&matches);
        if !tagged {
            continue;
        }
        let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        // `pid (comm) state ...`: the command name sits in parentheses and may hold any byte.
        let (command_name, state) = match (stat.find('('), stat.rfind(')')) {
            (Some(open), Some(close)) if open < close => (
                Some(stat[open + 1..close].to_string()),
                stat[close + 1..]
                    .split_whitespace()
                    .next()
                    .map(String::from),
            ),
            _ => (None, None),
        };
        let command_line = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let command_line = String::from_utf8_lossy(&command_line).replace('\0', " ");
        found.push(TaggedProcess {
            pid,
            command_name,
            state,
            command_line: command_line.trim_end().to_string(),
        });
    }
    found.sort_unstable_by_key(|process| process.pid);
    found
}

/// A marker unique to this test run (the process id and the clock), for tagging what it starts.
pub fn unique_run_marker() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("{}-{nanos}", std::process::id())
}
