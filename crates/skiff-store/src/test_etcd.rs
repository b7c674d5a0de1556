//! A throwaway single-member etcd on loopback, for the etcd backend's tests, the end-to-end tests
//! of `skiff up --datastore-endpoint` and the store benchmark.
//!
//! It runs Debian's `etcd` binary (package `etcd-server`) in a temporary directory on free
//! loopback ports, and is killed and its directory removed when dropped, whatever the test's
//! outcome. Failing to start is a panic with a message naming the package, never a silent skip.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// How long etcd may take to start answering.
const START_DEADLINE: Duration = Duration::from_secs(30);

/// A running (or stopped, restartable) single-member etcd owned by a test.
pub struct TestEtcd {
    dir: tempfile::TempDir,
    client_port: u16,
    peer_port: u16,
    tls: Option<ServerTls>,
    process: Option<Child>,
    /// The member's name and the `--initial-cluster` list, for a member of a [`TestEtcdCluster`].
    membership: Option<(String, String)>,
}

/// PEM files etcd serves its client URL with, requiring client certificates signed by `ca_file`.
#[derive(Clone, Debug)]
pub struct ServerTls {
    /// The certificate authority client certificates must chain to.
    pub ca_file: PathBuf,
    /// etcd's serving certificate, valid for `127.0.0.1`.
    pub cert_file: PathBuf,
    /// Its private key.
    pub key_file: PathBuf,
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0")
        .unwrap_or_else(|e| panic!("cannot bind a loopback port: {e}"));
    listener
        .local_addr()
        .unwrap_or_else(|e| panic!("cannot read a bound port: {e}"))
        .port()
}

impl TestEtcd {
    /// Starts etcd and waits until it answers its health check.
    pub fn start() -> TestEtcd {
        Self::start_with(None)
    }

    /// Starts etcd serving `https://` with client certificate authentication.
    pub fn start_tls(tls: ServerTls) -> TestEtcd {
        Self::start_with(Some(tls))
    }

    fn start_with(tls: Option<ServerTls>) -> TestEtcd {
        let dir = tempfile::Builder::new()
            .prefix("skiff-etcd-")
            .tempdir()
            .unwrap_or_else(|e| panic!("cannot create a temporary directory for etcd: {e}"));
        let mut etcd = TestEtcd {
            dir,
            client_port: 0,
            peer_port: 0,
            tls,
            process: None,
            membership: None,
        };
        // Another process may take a port between our probe and etcd's bind: try a few pairs.
        for attempt in 1..=3 {
            etcd.client_port = free_port();
            etcd.peer_port = free_port();
            if etcd.try_launch() {
                return etcd;
            }
            eprintln!(
                "etcd did not start (attempt {attempt}); log:\n{}",
                etcd.log()
            );
        }
        panic!("etcd did not start; log:\n{}", etcd.log());
    }

    /// The client URL, `http://127.0.0.1:PORT` (`https://` when serving TLS).
    pub fn endpoint(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}", self.client_port)
    }

    /// etcd's output so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Kills etcd (SIGKILL, no chance to flush anything but what it already committed).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.process.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Freezes etcd (SIGSTOP): its connections stay open but nothing answers, as with a
    /// peer cut off by the network.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Lets a paused etcd run again (SIGCONT).
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, which: &str) {
        let child = self.process.as_ref().expect("etcd is not running");
        let status = Command::new("kill")
            .arg(which)
            .arg(child.id().to_string())
            .status()
            .unwrap_or_else(|e| panic!("cannot run kill {which}: {e}"));
        assert!(status.success(), "kill {which} failed");
    }

    /// Starts a killed etcd again on the same data directory and ports.
    pub fn restart(&mut self) {
        self.kill();
        assert!(
            self.try_launch(),
            "etcd did not restart; log:\n{}",
            self.log()
        );
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("etcd.log")
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn try_launch(&mut self) -> bool {
        let log_start = self.spawn();
        self.wait_started(log_start)
    }

    /// Starts the etcd process and returns where its log for this start begins.
    fn spawn(&mut self) -> usize {
        let log_start = self.log().len();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .unwrap_or_else(|e| panic!("cannot open the etcd log: {e}"));
        let log_err = log
            .try_clone()
            .unwrap_or_else(|e| panic!("cannot share the etcd log: {e}"));
        let client = self.endpoint();
        let peer = self.peer_url();
        let (name, initial_cluster) = self
            .membership
            .clone()
            .unwrap_or_else(|| ("test".to_string(), format!("test={peer}")));
        let mut command = Command::new("etcd");
        if let Some(tls) = &self.tls {
            command
                .arg(format!("--cert-file={}", tls.cert_file.display()))
                .arg(format!("--key-file={}", tls.key_file.display()))
                .arg(format!("--trusted-ca-file={}", tls.ca_file.display()))
                .arg("--client-cert-auth");
        }
        let spawned = command
            .arg(format!("--name={name}"))
            // Lets tests ping every second to find a frozen etcd quickly.
            .arg("--grpc-keepalive-min-time=1s")
            .arg(format!("--data-dir={}", self.data_dir().display()))
            .arg(format!("--listen-client-urls={client}"))
            .arg(format!("--advertise-client-urls={client}"))
            .arg(format!("--listen-peer-urls={peer}"))
            .arg(format!("--initial-advertise-peer-urls={peer}"))
            .arg(format!("--initial-cluster={initial_cluster}"))
            .arg("--initial-cluster-token=skiff-test")
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn();
        let child = match spawned {
            Ok(child) => child,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
                "the etcd binary is not on the PATH: install Debian's etcd-server package \
                 (apt-get install -y etcd-server)"
            ),
            Err(e) => panic!("cannot start etcd: {e}"),
        };
        self.process = Some(child);
        log_start
    }

    /// Waits until the etcd spawned at `log_start` serves; kills it and returns `false` if it
    /// exits or does not serve in time.
    fn wait_started(&mut self, log_start: usize) -> bool {
        let started = Instant::now();
        while started.elapsed() < START_DEADLINE {
            if let Some(child) = self.process.as_mut() {
                if let Ok(Some(_)) = child.try_wait() {
                    self.process = None;
                    return false;
                }
            }
            if self.answers(log_start) {
                return true;
            }
            thread::sleep(Duration::from_millis(50));
        }
        self.kill();
        false
    }

    fn peer_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.peer_port)
    }

    /// The temporary directory etcd runs in.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl TestEtcd {
    /// Whether the etcd just launched is ready. Its own log must say so since `log_start`:
    /// another etcd that won a race for the same port would answer a health check too, while
    /// ours exits on its failed bind.
    fn answers(&self, log_start: usize) -> bool {
        let log = self.log();
        let ours = log.get(log_start..).unwrap_or_default();
        let serving = format!("client requests on 127.0.0.1:{}", self.client_port);
        if !ours.contains("ready to serve client requests") || !ours.contains(&serving) {
            return false;
        }
        // Over TLS the health check (plain HTTP) cannot ask; the log line is enough.
        self.tls.is_some() || healthy(self.client_port)
    }
}

/// Whether etcd's `/health` answers healthy on `port`.
fn healthy(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let request = "GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer.contains("\"health\":\"true\"")
}

impl Drop for TestEtcd {
    fn drop(&mut self) {
        if self.process.is_some() {
            // A paused etcd must run again to die of SIGKILL promptly and be reaped.
            let _ = Command::new("kill")
                .arg("-CONT")
                .arg(
                    self.process
                        .as_ref()
                        .map(|c| c.id().to_string())
                        .unwrap_or_default(),
                )
                .status();
        }
        self.kill();
        if thread::panicking() {
            eprintln!("--- etcd log ---\n{}--- end of etcd log ---", self.log());
        }
    }
}

/// A throwaway etcd cluster of several members on loopback (peer and client URLs on free
/// ports, each member in its own temporary directory), for tests of quorum: members can be
/// killed and restarted one by one. Every member is killed and its directory removed on drop.
pub struct TestEtcdCluster {
    members: Vec<TestEtcd>,
}

impl TestEtcdCluster {
    /// Starts `size` members and waits until each serves (which needs a quorum of them).
    pub fn start(size: usize) -> TestEtcdCluster {
        assert!(size > 0, "a cluster has at least one member");
        let mut members: Vec<TestEtcd> = (0..size)
            .map(|index| {
                let dir = tempfile::Builder::new()
                    .prefix(&format!("skiff-etcd-{index}-"))
                    .tempdir()
                    .unwrap_or_else(|e| {
                        panic!("cannot create a temporary directory for etcd: {e}")
                    });
                TestEtcd {
                    dir,
                    client_port: free_port(),
                    peer_port: free_port(),
                    tls: None,
                    process: None,
                    membership: None,
                }
            })
            .collect();
        let initial_cluster = members
            .iter()
            .enumerate()
            .map(|(index, member)| format!("member{index}={}", member.peer_url()))
            .collect::<Vec<_>>()
            .join(",");
        for (index, member) in members.iter_mut().enumerate() {
            member.membership = Some((format!("member{index}"), initial_cluster.clone()));
        }
        // All start before any waits: none serves before a quorum has met.
        let log_starts: Vec<usize> = members.iter_mut().map(TestEtcd::spawn).collect();
        for (index, (member, log_start)) in members.iter_mut().zip(log_starts).enumerate() {
            assert!(
                member.wait_started(log_start),
                "etcd member {index} did not start; log:\n{}",
                member.log()
            );
        }
        TestEtcdCluster { members }
    }

    /// Every member's client URL, comma-separated, as `--datastore-endpoint` takes them.
    pub fn endpoints(&self) -> String {
        self.members
            .iter()
            .map(TestEtcd::endpoint)
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Kills member `index` (SIGKILL).
    pub fn kill(&mut self, index: usize) {
        self.members[index].kill();
    }

    /// Starts killed member `index` again on its data directory and ports and waits until it
    /// serves (which needs a quorum with the members still running).
    pub fn restart(&mut self, index: usize) {
        let member = &mut self.members[index];
        member.kill();
        let log_start = member.spawn();
        assert!(
            member.wait_started(log_start),
            "etcd member {index} did not restart; log:\n{}",
            member.log()
        );
    }

    /// Member `index`'s output so far.
    pub fn log(&self, index: usize) -> String {
        self.members[index].log()
    }
}
