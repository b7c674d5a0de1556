//! One frontend: a listener, the choice of an endpoint for each accepted connection, and the
//! TCP splice between the two.
//!
//! The route of a frontend lives in a `watch` channel, so a change reaches the next connection
//! at once without restarting the listener, and connections already open are left alone.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify};
use tokio::task::AbortHandle;
use tokio::time::Instant;

use crate::table::Route;

/// How connections are forwarded.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ForwardSettings {
    /// The longest one connection attempt to an endpoint may take.
    pub connect_timeout: Duration,
    /// How long a client's connection may wait, across retries, for an endpoint that accepts.
    pub retry_window: Duration,
}

/// The first pause after every endpoint refused; it doubles up to [`MAX_RETRY_PAUSE`].
const FIRST_RETRY_PAUSE: Duration = Duration::from_millis(10);
const MAX_RETRY_PAUSE: Duration = Duration::from_millis(200);

/// Affinity entries are swept of expired ones once the map holds this many.
const AFFINITY_SWEEP_AT: usize = 4096;

/// Connection attempts in progress and the last connection made, per endpoint IP: a pod is
/// only fully out of rotation when no connection is still on its way to it, and safe to signal
/// once its latest connection had a moment to be accepted and read by the server.
#[derive(Default)]
pub(crate) struct Connecting {
    state: Mutex<ConnectingState>,
    /// Woken whenever an IP's count of attempts drops to zero.
    settled: Notify,
}

#[derive(Default)]
struct ConnectingState {
    counts: HashMap<IpAddr, usize>,
    last_connected: HashMap<IpAddr, Instant>,
}

/// `last_connected` is swept of entries older than this once it holds this many.
const LAST_CONNECTED_SWEEP_AT: usize = 4096;
const LAST_CONNECTED_KEEP: Duration = Duration::from_secs(60);

impl Connecting {
    fn lock(&self) -> MutexGuard<'_, ConnectingState> {
        // Only plain map updates happen under the lock.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Counts an attempt to `ip` until the returned guard is dropped.
    fn begin(self: &Arc<Self>, ip: IpAddr) -> ConnectingGuard {
        *self.lock().counts.entry(ip).or_default() += 1;
        ConnectingGuard {
            connecting: self.clone(),
            ip,
            connected: false,
        }
    }

    /// How many attempts to `ip` are under way.
    pub(crate) fn count(&self, ip: IpAddr) -> usize {
        self.lock().counts.get(&ip).copied().unwrap_or(0)
    }

    /// When the last connection to `ip` was established, if one was lately.
    pub(crate) fn last_connected(&self, ip: IpAddr) -> Option<Instant> {
        self.lock().last_connected.get(&ip).copied()
    }

    /// Resolves the next time some IP's count drops to zero (register before checking).
    pub(crate) fn settled(&self) -> &Notify {
        &self.settled
    }
}

/// Keeps an attempt counted in [`Connecting`].
struct ConnectingGuard {
    connecting: Arc<Connecting>,
    ip: IpAddr,
    connected: bool,
}

impl ConnectingGuard {
    /// Marks the attempt as having established a connection.
    fn connected(mut self) {
        self.connected = true;
    }
}

impl Drop for ConnectingGuard {
    fn drop(&mut self) {
        let mut state = self.connecting.lock();
        if self.connected {
            let now = Instant::now();
            if state.last_connected.len() >= LAST_CONNECTED_SWEEP_AT {
                state
                    .last_connected
                    .retain(|_, at| now.duration_since(*at) < LAST_CONNECTED_KEEP);
            }
            state.last_connected.insert(self.ip, now);
        }
        let now_zero = match state.counts.get_mut(&self.ip) {
            Some(n) if *n > 1 => {
                *n -= 1;
                false
            }
            _ => {
                state.counts.remove(&self.ip);
                true
            }
        };
        drop(state);
        if now_zero {
            self.connecting.settled.notify_waiters();
        }
    }
}

/// The state shared by a frontend's listener and its connections.
struct Balancer {
    route: watch::Receiver<Arc<Route>>,
    next: AtomicUsize,
    affinity: Mutex<HashMap<IpAddr, Sticky>>,
    connecting: Arc<Connecting>,
    settings: ForwardSettings,
}

/// A client IP's endpoint under `ClientIP` affinity, and when it was last chosen.
#[derive(Clone, Copy)]
struct Sticky {
    backend: SocketAddr,
    last_used: Instant,
}

impl Balancer {
    fn affinity(&self) -> MutexGuard<'_, HashMap<IpAddr, Sticky>> {
        self.affinity.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The next endpoint to try for `client`, skipping those that already failed.
    fn choose(
        &self,
        route: &Route,
        client: IpAddr,
        failed: &HashSet<SocketAddr>,
    ) -> Option<SocketAddr> {
        if route.backends.is_empty() {
            return None;
        }
        if let Some(timeout) = route.affinity {
            let sticky = self.affinity().get(&client).copied();
            if let Some(sticky) = sticky {
                if sticky.last_used.elapsed() < timeout
                    && !failed.contains(&sticky.backend)
                    && route.backends.contains(&sticky.backend)
                {
                    return Some(sticky.backend);
                }
            }
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let count = route.backends.len();
        (0..count)
            .map(|i| route.backends[(start + i) % count])
            .find(|b| !failed.contains(b))
    }

    /// Records the endpoint `client` was sent to, under `ClientIP` affinity.
    fn remember(&self, route: &Route, client: IpAddr, backend: SocketAddr) {
        let Some(timeout) = route.affinity else {
            return;
        };
        let now = Instant::now();
        let mut affinity = self.affinity();
        if affinity.len() >= AFFINITY_SWEEP_AT {
            affinity.retain(|_, s| now.duration_since(s.last_used) < timeout);
        }
        affinity.insert(
            client,
            Sticky {
                backend,
                last_used: now,
            },
        );
    }

    /// Connects to an endpoint for `client`: on refusal or a failed attempt the next endpoint
    /// is tried; when all failed (or there is none) it waits briefly for the route to change
    /// and tries again, until the retry window closes.
    async fn connect(&self, client: IpAddr) -> Option<TcpStream> {
        let deadline = Instant::now() + self.settings.retry_window;
        let mut route_changes = self.route.clone();
        let mut failed = HashSet::new();
        let mut pause = FIRST_RETRY_PAUSE;
        loop {
            let route = route_changes.borrow_and_update().clone();
            let Some(backend) = self.choose(&route, client, &failed) else {
                let now = Instant::now();
                if now >= deadline {
                    return None;
                }
                let wake = (now + pause).min(deadline);
                tokio::select! {
                    _ = route_changes.changed() => {}
                    _ = tokio::time::sleep_until(wake) => {}
                }
                pause = (pause * 2).min(MAX_RETRY_PAUSE);
                failed.clear();
                continue;
            };
            let counted = self.connecting.begin(backend.ip());
            // The route may have moved on between the choice and the count: a drain that saw
            // no attempt under way must not be followed by one.
            if !self.route.borrow().backends.contains(&backend) {
                drop(counted);
                continue;
            }
            match tokio::time::timeout(self.settings.connect_timeout, TcpStream::connect(backend))
                .await
            {
                Ok(Ok(stream)) => {
                    counted.connected();
                    self.remember(&route, client, backend);
                    return Some(stream);
                }
                Ok(Err(e)) => {
                    tracing::debug!(%backend, error = %e, "endpoint refused, trying another");
                    failed.insert(backend);
                }
                Err(_) => {
                    tracing::debug!(%backend, "endpoint did not answer in time, trying another");
                    failed.insert(backend);
                }
            }
        }
    }
}

/// A listening frontend. Dropping it stops the listener; open connections carry on.
pub(crate) struct Frontend {
    route: watch::Sender<Arc<Route>>,
    listener: AbortHandle,
}

impl Frontend {
    /// Binds `address` and starts accepting.
    pub(crate) async fn bind(
        address: SocketAddr,
        route: Route,
        connecting: Arc<Connecting>,
        settings: ForwardSettings,
    ) -> std::io::Result<Frontend> {
        let listener = TcpListener::bind(address).await?;
        let (route_tx, route_rx) = watch::channel(Arc::new(route));
        let balancer = Arc::new(Balancer {
            route: route_rx,
            next: AtomicUsize::new(0),
            affinity: Mutex::new(HashMap::new()),
            connecting,
            settings,
        });
        let task = tokio::spawn(accept_loop(listener, balancer)).abort_handle();
        Ok(Frontend {
            route: route_tx,
            listener: task,
        })
    }

    /// The route new connections follow.
    pub(crate) fn route(&self) -> Arc<Route> {
        self.route.borrow().clone()
    }

    /// Points new connections at `route` (a no-op when nothing changed).
    pub(crate) fn set_route(&self, route: Route) {
        self.route.send_if_modified(|current| {
            if **current == route {
                return false;
            }
            *current = Arc::new(route);
            true
        });
    }
}

impl Drop for Frontend {
    fn drop(&mut self) {
        self.listener.abort();
    }
}

async fn accept_loop(listener: TcpListener, balancer: Arc<Balancer>) {
    let mut failures = 0u32;
    loop {
        match listener.accept().await {
            Ok((client, peer)) => {
                failures = 0;
                tokio::spawn(forward(client, peer, balancer.clone()));
            }
            Err(e) => {
                // Typically out of file descriptors: back off instead of spinning.
                failures = failures.saturating_add(1);
                tracing::warn!(error = %e, "proxy accept failed");
                let pause = Duration::from_millis(10 * u64::from(failures.min(100)));
                tokio::time::sleep(pause).await;
            }
        }
    }
}

async fn forward(mut client: TcpStream, peer: SocketAddr, balancer: Arc<Balancer>) {
    let Some(mut backend) = balancer.connect(peer.ip()).await else {
        tracing::debug!(%peer, "no endpoint accepted the connection");
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = backend.set_nodelay(true);
    if let Err(e) = tokio::io::copy_bidirectional(&mut client, &mut backend).await {
        tracing::debug!(%peer, error = %e, "proxied connection ended with an error");
    }
}
