//! A throttling TCP relay on loopback, so a test can catch an image download halfway.

use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// A loopback TCP proxy to `upstream` whose responses flow at a limited rate while
/// `throttled` is set, so a download can be caught halfway.
pub struct SlowProxy {
    /// `127.0.0.1:PORT`, where clients connect.
    pub address: String,
    throttled: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
}

impl SlowProxy {
    /// Starts relaying to `upstream` (`host:port`), throttled.
    pub fn start(upstream: &str) -> SlowProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let throttled = Arc::new(AtomicBool::new(true));
        let stop = Arc::new(AtomicBool::new(false));
        let (upstream, flag, stopping) = (upstream.to_string(), throttled.clone(), stop.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if stopping.load(Ordering::SeqCst) {
                    return;
                }
                let (Ok(client), Ok(server)) = (client, TcpStream::connect(&upstream)) else {
                    continue;
                };
                let (mut client_read, mut server_write) =
                    (client.try_clone().unwrap(), server.try_clone().unwrap());
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut client_read, &mut server_write);
                    let _ = server_write.shutdown(std::net::Shutdown::Write);
                });
                let (mut server_read, mut client_write, flag) = (server, client, flag.clone());
                std::thread::spawn(move || {
                    let mut buffer = [0u8; 8192];
                    loop {
                        let n = match std::io::Read::read(&mut server_read, &mut buffer) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => n,
                        };
                        if std::io::Write::write_all(&mut client_write, &buffer[..n]).is_err() {
                            break;
                        }
                        if flag.load(Ordering::SeqCst) {
                            // About 160 kB/s: a megabyte layer takes seconds.
                            std::thread::sleep(Duration::from_millis(50));
                        }
                    }
                    let _ = client_write.shutdown(std::net::Shutdown::Write);
                });
            }
        });
        SlowProxy {
            address,
            throttled,
            stop,
        }
    }
}

impl SlowProxy {
    /// Slows the responses (the start state) or lets them flow at full speed.
    pub fn set_throttled(&self, throttled: bool) {
        self.throttled.store(throttled, Ordering::SeqCst);
    }
}

impl Drop for SlowProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(&self.address);
    }
}
