//! Exec output handling and [`LocalExecRunner`], a runner for commands that run as plain host
//! processes.

use std::io;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::Command;

use super::{ExecOutput, ExecRunner};

/// Kubelet keeps the first 10 KiB of an exec probe's output.
pub const MAX_EXEC_OUTPUT_BYTES: usize = 10 * 1024;

/// Cuts `output` to [`MAX_EXEC_OUTPUT_BYTES`] without splitting a character.
pub fn truncate_output(output: &str) -> String {
    if output.len() <= MAX_EXEC_OUTPUT_BYTES {
        return output.to_string();
    }
    let mut end = MAX_EXEC_OUTPUT_BYTES;
    while !output.is_char_boundary(end) {
        end -= 1;
    }
    output[..end].to_string()
}

/// Runs commands as child processes of the agent, in their own process group so a timeout
/// kills everything they started. Containers that are plain host processes use it directly;
/// others can wrap it with their own environment.
#[derive(Clone, Debug, Default)]
pub struct LocalExecRunner {
    /// Environment variables of the command.
    pub env: Vec<(String, String)>,
    /// Start from an empty environment instead of the agent's own.
    pub clear_env: bool,
    /// Working directory; the agent's when `None`.
    pub working_dir: Option<PathBuf>,
}

#[async_trait]
impl ExecRunner for LocalExecRunner {
    async fn exec(&self, command: &[String], timeout: Duration) -> io::Result<ExecOutput> {
        let Some((program, args)) = command.split_first() else {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "empty command"));
        };
        let mut child_command = Command::new(program);
        child_command
            .args(args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        if self.clear_env {
            child_command.env_clear();
            child_command.envs(self.env.iter().map(|(k, v)| (k, v)));
        }
        if let Some(dir) = &self.working_dir {
            child_command.current_dir(dir);
        }
        let mut child = child_command.spawn()?;
        // Abandoning the exec (its caller gave up) must not leave its processes behind.
        let mut group = GroupKiller(child.id());

        let collected = Arc::new(Mutex::new(Vec::new()));
        let mut readers: Vec<_> = [
            child
                .stdout
                .take()
                .map(|out| spawn_reader(out, collected.clone())),
            child
                .stderr
                .take()
                .map(|err| spawn_reader(err, collected.clone())),
        ]
        .into_iter()
        .flatten()
        .collect();
        let deadline = tokio::time::Instant::now() + timeout;

        let finished = tokio::time::timeout_at(deadline, async {
            let status = child.wait().await;
            // The output is complete once every writer, the child's children too, closed it.
            for reader in readers.iter_mut() {
                let _ = reader.await;
            }
            status
        })
        .await;

        let (exit_code, timed_out) = match finished {
            Ok(status) => {
                // Like a container's exec, a finished command may leave background work running.
                group.disarm();
                (exit_code_of(status?), false)
            }
            Err(_) => {
                group.kill();
                let _ = child.kill().await;
                (-1, true)
            }
        };
        for reader in readers {
            reader.abort();
        }
        let bytes = collected.lock().map(|b| b.clone()).unwrap_or_default();
        Ok(ExecOutput {
            exit_code,
            output: truncate_output(&String::from_utf8_lossy(&bytes)),
            timed_out,
        })
    }
}

/// Shells report a death by signal N as 128 + N.
fn exit_code_of(status: std::process::ExitStatus) -> i32 {
    status
        .code()
        .or_else(|| status.signal().map(|signal| 128 + signal))
        .unwrap_or(-1)
}

/// Kills a command's process group when dropped, unless disarmed.
struct GroupKiller(Option<u32>);

impl GroupKiller {
    fn disarm(&mut self) {
        self.0 = None;
    }

    fn kill(&mut self) {
        let Some(pid) = self.0.take().and_then(|id| i32::try_from(id).ok()) else {
            return;
        };
        // `pid` leads the group this runner created for its child, which has not been reaped
        // yet, so the id cannot have been reused; a group already gone is no error here.
        let _ = nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
}

impl Drop for GroupKiller {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Appends what `source` produces to `sink`, keeping the first bytes up to the output limit and
/// draining the rest so the writer never blocks on a full pipe.
fn spawn_reader<R>(mut source: R, sink: Arc<Mutex<Vec<u8>>>) -> tokio::task::JoinHandle<()>
where
    R: AsyncRead + Unpin + Send + 'static,
{
    tokio::spawn(async move {
        let mut chunk = [0u8; 4096];
        loop {
            match source.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(read) => {
                    if let Ok(mut collected) = sink.lock() {
                        let room = MAX_EXEC_OUTPUT_BYTES.saturating_sub(collected.len());
                        collected.extend_from_slice(&chunk[..read.min(room)]);
                    }
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncates_to_ten_kibibytes_on_a_char_boundary() {
        let short = "fine";
        assert_eq!(truncate_output(short), "fine");
        let long = "a".repeat(MAX_EXEC_OUTPUT_BYTES + 5);
        assert_eq!(truncate_output(&long).len(), MAX_EXEC_OUTPUT_BYTES);
        let multibyte = format!("{}é", "a".repeat(MAX_EXEC_OUTPUT_BYTES - 1));
        assert_eq!(truncate_output(&multibyte).len(), MAX_EXEC_OUTPUT_BYTES - 1);
    }
}
