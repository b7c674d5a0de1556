//! The receiving end of a runtime's console socket (`--console-socket`): for a container whose
//! bundle asks for a terminal, the runtime opens the pseudo-terminal inside the container and
//! sends its master end over this unix socket, with `SCM_RIGHTS`, before `create` returns.
//! Whoever holds the master then reads the terminal's output, writes its input and sets its
//! size.
//!
//! The socket lives in a directory of its own, only root may enter, under the system's
//! temporary directory: a unix socket's path is limited to about 100 bytes, which a runtime
//! root deep in a data directory could exceed.

// accept4(2) and recvmsg(2) hand back new descriptors as raw numbers, owned from then on.
#![allow(unsafe_code)]

use std::fs;
use std::io::IoSliceMut;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::socket::{
    accept4, bind, listen, recvmsg, socket, AddressFamily, Backlog, ControlMessageOwned, MsgFlags,
    SockFlag, SockType, UnixAddr,
};

/// A fresh path for a console socket, unique to this process and call.
pub fn fresh_path() -> PathBuf {
    static SERIAL: AtomicU64 = AtomicU64::new(0);
    let serial = SERIAL.fetch_add(1, Ordering::Relaxed);
    std::env::temp_dir()
        .join(format!("skiff-console-{}-{serial}", std::process::id()))
        .join("socket")
}

/// A listening console socket, removed with its directory when dropped.
#[derive(Debug)]
pub struct ConsoleSocket {
    path: PathBuf,
    listener: OwnedFd,
}

impl ConsoleSocket {
    /// Listens at `path` (from [`fresh_path`]), making its directory, private to root.
    pub fn bind(path: &Path) -> std::io::Result<ConsoleSocket> {
        let dir = path
            .parent()
            .ok_or_else(|| std::io::Error::other("a console socket needs a directory"))?;
        fs::DirBuilder::new().mode(0o700).create(dir)?;
        let bound = (|| {
            let listener = socket(
                AddressFamily::Unix,
                SockType::Stream,
                SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
                None,
            )?;
            bind(listener.as_raw_fd(), &UnixAddr::new(path)?)?;
            listen(&listener, Backlog::new(4).unwrap_or(Backlog::MAXCONN))?;
            Ok::<_, Errno>(listener)
        })();
        match bound {
            Ok(listener) => Ok(ConsoleSocket {
                path: path.to_path_buf(),
                listener,
            }),
            Err(errno) => {
                let _ = fs::remove_file(path);
                let _ = fs::remove_dir(dir);
                Err(errno.into())
            }
        }
    }

    /// Where it listens.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The terminal's master end the runtime sent, waiting for it up to `limit` (it is
    /// usually already there: runtimes send it before `create` returns).
    pub fn receive(&self, limit: Duration) -> std::io::Result<OwnedFd> {
        let deadline = Instant::now() + limit;
        let connection = loop {
            match accept4(self.listener.as_raw_fd(), SockFlag::SOCK_CLOEXEC) {
                // SAFETY: accept4 returned a new descriptor that nothing else owns.
                Ok(fd) => break unsafe { OwnedFd::from_raw_fd(fd) },
                Err(Errno::EAGAIN | Errno::EINTR) => {
                    wait_readable(self.listener.as_fd(), deadline)?;
                }
                Err(errno) => return Err(errno.into()),
            }
        };
        // The accepted socket is blocking; wait for the message with the same deadline.
        wait_readable(connection.as_fd(), deadline)?;
        let mut name = [0u8; 4096];
        let mut control = nix::cmsg_space!([RawFd; 4]);
        let mut iov = [IoSliceMut::new(&mut name)];
        let message = recvmsg::<()>(
            connection.as_raw_fd(),
            &mut iov,
            Some(&mut control),
            MsgFlags::MSG_CMSG_CLOEXEC,
        )?;
        let mut received: Vec<OwnedFd> = Vec::new();
        for cmsg in message.cmsgs()? {
            if let ControlMessageOwned::ScmRights(fds) = cmsg {
                // SAFETY: the kernel installed these descriptors for this process alone.
                received.extend(
                    fds.into_iter()
                        .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }),
                );
            }
        }
        // One descriptor is expected; any other is closed as it drops.
        received.into_iter().next().ok_or_else(|| {
            std::io::Error::other("the runtime sent no terminal over the console socket")
        })
    }
}

/// Waits until `fd` is readable, or fails at `deadline`.
fn wait_readable(fd: std::os::fd::BorrowedFd<'_>, deadline: Instant) -> std::io::Result<()> {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the runtime sent no terminal in time",
            ));
        }
        let millis = u16::try_from(left.as_millis()).unwrap_or(u16::MAX);
        let mut fds = [PollFd::new(fd, PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::from(millis)) {
            Ok(0) | Err(Errno::EINTR) => continue,
            Ok(_) => return Ok(()),
            Err(errno) => return Err(errno.into()),
        }
    }
}

impl Drop for ConsoleSocket {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
        if let Some(dir) = self.path.parent() {
            let _ = fs::remove_dir(dir);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{IoSlice, Read, Write};
    use std::os::fd::AsRawFd;

    #[test]
    fn the_master_end_sent_over_the_socket_drives_the_terminal() {
        let path = fresh_path();
        let console = ConsoleSocket::bind(&path).unwrap();
        let pty = nix::pty::openpty(None, None).unwrap();
        // A runtime's side: connect and send the master with the terminal's name.
        let runtime = socket(
            AddressFamily::Unix,
            SockType::Stream,
            SockFlag::SOCK_CLOEXEC,
            None,
        )
        .unwrap();
        nix::sys::socket::connect(runtime.as_raw_fd(), &UnixAddr::new(&path).unwrap()).unwrap();
        let fds = [pty.master.as_raw_fd()];
        nix::sys::socket::sendmsg::<()>(
            runtime.as_raw_fd(),
            &[IoSlice::new(b"/dev/pts/0")],
            &[nix::sys::socket::ControlMessage::ScmRights(&fds)],
            MsgFlags::empty(),
            None,
        )
        .unwrap();
        drop(pty.master);

        let master = console.receive(Duration::from_secs(5)).unwrap();
        // What is written to the received master reaches the terminal's other end.
        let mut writer = fs::File::from(master);
        writer.write_all(b"typed\n").unwrap();
        let mut slave = fs::File::from(pty.slave);
        let mut seen = [0u8; 64];
        let n = slave.read(&mut seen).unwrap();
        assert_eq!(&seen[..n], b"typed\n");

        drop(console);
        assert!(!path.exists(), "the socket is removed");
        assert!(!path.parent().unwrap().exists(), "its directory is removed");
    }

    #[test]
    fn a_runtime_that_sends_nothing_times_out() {
        let console = ConsoleSocket::bind(&fresh_path()).unwrap();
        let started = Instant::now();
        let error = console.receive(Duration::from_millis(200)).unwrap_err();
        assert_eq!(error.kind(), std::io::ErrorKind::TimedOut);
        assert!(started.elapsed() >= Duration::from_millis(200));
    }
}
