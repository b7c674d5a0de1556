//! The [`Store`] on etcd, for servers that share one datastore (`skiff up
//! --datastore-endpoint`).
//!
//! Everything maps onto etcd's own model, which is the one this crate borrows: keys live under a
//! root prefix of our own, revisions are etcd's revisions (a key's `mod_revision` is its
//! `metadata.resourceVersion`), creates and conditional writes are transactions comparing
//! `create_revision` and `mod_revision`, watches are etcd watches from a revision, and compaction
//! is etcd's. etcd answers a write only once the cluster has committed it, so a write is durable
//! before it is acknowledged.
//!
//! Every call is bounded by [`EtcdOptions::request_timeout`]: with etcd unreachable, operations
//! fail with [`StoreError::Backend`] instead of hanging, and work again once etcd is back (the
//! client reconnects by itself). A watch whose stream breaks, or whose connection stops answering
//! keepalive pings, ends with a `Backend` error, which the trait allows: its user re-lists and
//! watches again.
//!
//! The trait has no bookmark item, so etcd's progress notifications are not requested; API
//! watch bookmarks carry the last delivered revision, as on SQLite. Lists are at the current
//! revision, as the trait's are.
//!
//! Extracted parts ([`ValueExtractor`]) are computed when a value is read rather than kept in
//! memory, since this backend keeps no copy of the data: the part is then never stale, and costs
//! what parsing by the reader would.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use etcd_client::{
    Certificate, Client, CompactionOptions, Compare, CompareOp, ConnectOptions, DeleteOptions,
    EventType, GetOptions, Identity, PutOptions, TlsOptions, Txn, TxnOp, TxnOpResponse,
    WatchOptions,
};
use futures::stream::{self, BoxStream};
use futures::StreamExt;

use crate::{
    EventKind, KeyValue, ListResult, Revision, Store, StoreError, ValueExtractor, WatchEvent,
};

/// The root prefix keys live under unless told otherwise, so one etcd can hold other data too.
pub const DEFAULT_ROOT_PREFIX: &str = "/skiff";

/// How long one call may take before it fails, unless told otherwise: long enough for an etcd
/// leader election, short enough that a request never outlives an API request's patience.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// The largest answer accepted from etcd: etcd's own limit on what it sends (2 GiB - 1).
const MAX_MESSAGE_BYTES: usize = i32::MAX as usize;

/// How often open watches' connections are pinged unless told otherwise: twice etcd's minimum.
pub const DEFAULT_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);

/// Client certificates for `https://` endpoints.
#[derive(Clone, Debug)]
pub struct EtcdTls {
    /// PEM file of the certificate authority that signed etcd's serving certificates.
    pub ca_file: PathBuf,
    /// PEM file of this client's certificate.
    pub cert_file: PathBuf,
    /// PEM file of this client's private key.
    pub key_file: PathBuf,
}

/// How to reach etcd and where our keys live in it.
#[derive(Clone, Debug)]
pub struct EtcdOptions {
    /// Endpoint URLs (`http://127.0.0.1:2379`, `https://a:2379`); the client balances over them.
    pub endpoints: Vec<String>,
    /// Prefix put before every key, so several stores (or other programs) can share one etcd.
    pub root_prefix: String,
    /// Bound on every call: connecting, reading, writing, opening a watch.
    pub request_timeout: Duration,
    /// Client certificates, required for `https://` endpoints.
    pub tls: Option<EtcdTls>,
    /// How often a connection with open watches is pinged; a ping unanswered within
    /// `request_timeout` ends the watches with an error instead of leaving them silent on a
    /// peer the network cut off. etcd refuses pings more often than its
    /// `--grpc-keepalive-min-time` (5 s by default).
    pub keepalive_interval: Duration,
}

impl EtcdOptions {
    /// Options for `endpoints` with the default prefix and timeout and no TLS.
    pub fn new(endpoints: Vec<String>) -> Self {
        EtcdOptions {
            endpoints,
            root_prefix: DEFAULT_ROOT_PREFIX.to_string(),
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            tls: None,
            keepalive_interval: DEFAULT_KEEPALIVE_INTERVAL,
        }
    }

    /// Parses `--datastore-endpoint`'s comma-separated list of URLs.
    pub fn parse_endpoints(list: &str) -> Result<Vec<String>, StoreError> {
        let endpoints: Vec<String> = list
            .split(',')
            .map(str::trim)
            .filter(|endpoint| !endpoint.is_empty())
            .map(str::to_string)
            .collect();
        if endpoints.is_empty() {
            return Err(StoreError::Backend(
                "no etcd endpoint given: want a comma-separated list of http:// or https:// URLs"
                    .to_string(),
            ));
        }
        for endpoint in &endpoints {
            if !endpoint.starts_with("http://") && !endpoint.starts_with("https://") {
                return Err(StoreError::Backend(format!(
                    "etcd endpoint {endpoint:?} must start with http:// or https://"
                )));
            }
        }
        Ok(endpoints)
    }
}

/// A [`Store`] kept in etcd.
pub struct EtcdStore {
    client: Client,
    root: Vec<u8>,
    timeout: Duration,
    /// The latest compacted revision seen; etcd's only moves forward, so this is a lower bound
    /// that saves probing when nothing changed.
    known_compacted: AtomicI64,
    extractor: RwLock<Option<Arc<dyn ValueExtractor>>>,
}

fn backend(doing: &str, error: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(format!("etcd: {doing}: {error}"))
}

/// The failure of a call etcd answered with an error. When etcd itself refused it (its
/// messages start with `etcdserver: `, such as `etcdserver: request timed out` without quorum),
/// the message is etcd's own text, which kube-apiserver hands to clients as it is.
fn refused(doing: &str, error: etcd_client::Error) -> StoreError {
    if let etcd_client::Error::GRpcStatus(status) = &error {
        if status.message().starts_with("etcdserver: ") {
            return StoreError::Backend(status.message().to_string());
        }
    }
    backend(doing, error)
}

/// The failure of a call etcd did not answer within `timeout`.
fn unanswered(doing: &str, timeout: std::time::Duration) -> StoreError {
    StoreError::Timeout(format!("etcd: {doing}: no answer within {timeout:?}"))
}

/// How long to pause before sending again a call no member accepted.
const UNSENT_RETRY_PAUSE: std::time::Duration = std::time::Duration::from_millis(20);

/// Whether a call failed before it was sent: the connection to its member was refused. Only
/// then is making it again safe for a write, which might otherwise be applied twice.
fn never_sent(error: &etcd_client::Error) -> bool {
    let etcd_client::Error::GRpcStatus(status) = error else {
        return false;
    };
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(status);
    while let Some(cause) = source {
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::ConnectionRefused {
                return true;
            }
        }
        source = cause.source();
    }
    false
}

/// Whether a call's connection to its member broke after it was sent (the member died or
/// closed the stream): gRPC reports `Cancelled` or `Unavailable` with no answer from etcd.
/// A read can be made again elsewhere; a write may or may not have been applied.
fn lost_in_flight(error: &etcd_client::Error) -> bool {
    let etcd_client::Error::GRpcStatus(status) = error else {
        return false;
    };
    matches!(
        status.code(),
        tonic::Code::Cancelled | tonic::Code::Unavailable
    ) && !status.message().starts_with("etcdserver: ")
}

/// Whether a call only reads, so that making it again after a lost connection is safe.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Idempotence {
    /// A range, count or watch: it may be sent again to another member.
    Read,
    /// A transaction that changes keys: sent again, it could be applied twice.
    Write,
}

fn is_compacted_error(error: &etcd_client::Error) -> bool {
    error
        .to_string()
        .contains("required revision has been compacted")
}

/// The first key after every key starting with `prefix` (etcd's range end for a prefix).
fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    // Every byte was 0xff: the range runs to the end of the keyspace, which etcd spells `\0`.
    vec![0]
}

fn read_pem(path: &PathBuf, what: &str) -> Result<Vec<u8>, StoreError> {
    std::fs::read(path).map_err(|e| {
        StoreError::Backend(format!(
            "cannot read the etcd {what} {}: {e}",
            path.display()
        ))
    })
}

impl EtcdStore {
    /// Connects to etcd. Fails if no endpoint answers within the request timeout, so a
    /// misconfigured server stops at start-up rather than at its first request.
    pub async fn connect(options: EtcdOptions) -> Result<Self, StoreError> {
        if options.endpoints.is_empty() {
            return Err(StoreError::Backend("no etcd endpoint given".to_string()));
        }
        let mut connect = ConnectOptions::new()
            // Each call is bounded by `bounded`, whose message says what was being done.
            .with_connect_timeout(options.request_timeout)
            .with_keep_alive(options.keepalive_interval, options.request_timeout);
        let wants_tls = options.endpoints.iter().any(|e| e.starts_with("https://"));
        match (&options.tls, wants_tls) {
            (Some(tls), _) => {
                let ca = read_pem(&tls.ca_file, "certificate authority")?;
                let cert = read_pem(&tls.cert_file, "client certificate")?;
                let key = read_pem(&tls.key_file, "client key")?;
                connect = connect.with_tls(
                    TlsOptions::new()
                        .ca_certificate(Certificate::from_pem(ca))
                        .identity(Identity::from_pem(cert, key)),
                );
            }
            (None, true) => {
                return Err(StoreError::Backend(
                    "https:// etcd endpoints need a certificate authority, client certificate \
                     and key"
                        .to_string(),
                ))
            }
            (None, false) => {}
        }
        let timeout = options.request_timeout;
        let client =
            tokio::time::timeout(timeout, Client::connect(&options.endpoints, Some(connect)))
                .await
                .map_err(|_| {
                    StoreError::Backend(format!(
                        "etcd at {} did not answer within {timeout:?}",
                        options.endpoints.join(",")
                    ))
                })?
                .map_err(|e| backend("connecting", e))?;
        let store = EtcdStore {
            client,
            root: options.root_prefix.into_bytes(),
            timeout,
            known_compacted: AtomicI64::new(0),
            extractor: RwLock::new(None),
        };
        // One round trip proves an endpoint answers.
        store.current_revision().await?;
        Ok(store)
    }

    /// Runs one etcd call, failing with a clear `Backend` error if it does not finish in time.
    /// A call that never left this process (its member refused the connection: a dead member
    /// of a cluster whose others still answer) is made again, on whichever member the client
    /// picks next, until the timeout.
    async fn bounded<T, Call>(
        &self,
        doing: &str,
        idempotence: Idempotence,
        mut call: impl FnMut() -> Call,
    ) -> Result<T, StoreError>
    where
        Call: std::future::Future<Output = Result<T, etcd_client::Error>>,
    {
        let deadline = tokio::time::Instant::now() + self.timeout;
        let mut unsent = None;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match tokio::time::timeout(left, call()).await {
                Ok(Ok(value)) => return Ok(value),
                Ok(Err(error)) if never_sent(&error) => {
                    if left.is_zero() {
                        // The last attempt, made with no time left, was refused too.
                        return Err(StoreError::Timeout(format!(
                            "etcd: {doing}: no member answered within {:?}: {error}",
                            self.timeout
                        )));
                    }
                    unsent = Some(error.to_string());
                    // Not a wait for luck: the next attempt goes to another member, and the
                    // pause only keeps a cluster with no member left from spinning.
                    tokio::time::sleep(UNSENT_RETRY_PAUSE.min(left)).await;
                }
                Ok(Err(error)) if lost_in_flight(&error) => {
                    if idempotence == Idempotence::Write || left.is_zero() {
                        return Err(StoreError::Backend(format!(
                            "etcd: {doing}: the connection to the member closed before it \
                             answered{}: {error}",
                            if idempotence == Idempotence::Write {
                                " (the write may or may not have been applied)"
                            } else {
                                ""
                            }
                        )));
                    }
                    unsent = Some(error.to_string());
                    tokio::time::sleep(UNSENT_RETRY_PAUSE.min(left)).await;
                }
                Ok(Err(error)) => return Err(refused(doing, error)),
                Err(_) => {
                    return Err(StoreError::Timeout(match unsent {
                        Some(error) => format!(
                            "etcd: {doing}: no member answered within {:?}: {error}",
                            self.timeout
                        ),
                        None => format!(
                            "etcd: {doing}: no answer within {:?} (a write may or may not have \
                             been applied)",
                            self.timeout
                        ),
                    }))
                }
            }
        }
    }

    /// A KV client that accepts answers of any size etcd sends (gRPC's default stops at 4 MiB,
    /// which a list of a few thousand objects exceeds).
    fn kv(&self) -> etcd_client::KvClient {
        self.client
            .kv_client()
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
    }

    fn etcd_key(&self, key: &str) -> Vec<u8> {
        let mut full = self.root.clone();
        full.extend_from_slice(key.as_bytes());
        full
    }

    fn our_key(&self, etcd_key: &[u8]) -> Result<String, StoreError> {
        let rest = etcd_key
            .strip_prefix(self.root.as_slice())
            .ok_or_else(|| StoreError::Backend("etcd returned a key outside our prefix".into()))?;
        String::from_utf8(rest.to_vec())
            .map_err(|_| StoreError::Backend("etcd returned a key that is not UTF-8".into()))
    }

    fn extract(&self, kv: &mut KeyValue) {
        let extractor = self
            .extractor
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone();
        kv.extracted = extractor.and_then(|e| e.extract(&kv.key, &kv.value));
    }

    fn convert(&self, kv: &etcd_client::KeyValue) -> Result<KeyValue, StoreError> {
        Ok(KeyValue {
            key: self.our_key(kv.key())?,
            value: Arc::from(kv.value()),
            create_revision: kv.create_revision(),
            mod_revision: kv.mod_revision(),
            extracted: None,
        })
    }

    fn current(&self, kv: &etcd_client::KeyValue) -> Result<KeyValue, StoreError> {
        let mut converted = self.convert(kv)?;
        self.extract(&mut converted);
        Ok(converted)
    }

    /// Whether etcd still holds history at `revision` (a range there succeeds).
    async fn readable_at(&self, revision: Revision) -> Result<bool, StoreError> {
        self.bounded("probing the compacted revision", Idempotence::Read, || {
            let (mut kv, root) = (self.kv(), self.root.clone());
            let options = GetOptions::new().with_revision(revision).with_count_only();
            async move {
                match kv.get(root, Some(options)).await {
                    Ok(_) => Ok(true),
                    Err(error) if is_compacted_error(&error) => Ok(false),
                    // A revision not written yet is not compacted either.
                    Err(error) if error.to_string().contains("future revision") => Ok(true),
                    Err(error) => Err(error),
                }
            }
        })
        .await
    }

    /// A transaction that writes `key` only if it exists (and, with `expected`, only if its
    /// `mod_revision` matches), reading it back otherwise to say why not.
    fn guarded(&self, key: &[u8], expected: Option<Revision>, write: TxnOp) -> Txn {
        let mut compares = vec![Compare::create_revision(
            key.to_vec(),
            CompareOp::Greater,
            0,
        )];
        if let Some(expected) = expected {
            compares.push(Compare::mod_revision(
                key.to_vec(),
                CompareOp::Equal,
                expected,
            ));
        }
        Txn::new()
            .when(compares)
            .and_then(vec![write])
            .or_else(vec![TxnOp::get(key.to_vec(), None)])
    }

    /// Turns a failed guarded transaction into `NotFound` or `Conflict`.
    fn why_not(
        &self,
        key: &str,
        expected: Option<Revision>,
        response: &etcd_client::TxnResponse,
    ) -> StoreError {
        let current = response.op_responses().into_iter().find_map(|op| match op {
            TxnOpResponse::Get(get) => get.kvs().first().map(|kv| kv.mod_revision()),
            _ => None,
        });
        match (current, expected) {
            (Some(actual), Some(expected)) => StoreError::Conflict {
                key: key.to_string(),
                expected,
                actual,
            },
            _ => StoreError::NotFound(key.to_string()),
        }
    }

    fn header_revision(
        header: Option<&etcd_client::ResponseHeader>,
        doing: &str,
    ) -> Result<Revision, StoreError> {
        header
            .map(|h| h.revision())
            .ok_or_else(|| backend(doing, "response without a header"))
    }

    async fn list_page(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: Option<usize>,
    ) -> Result<ListResult, StoreError> {
        let from = self.etcd_key(prefix);
        let end = prefix_end(&from);
        let start = match start_after {
            Some(after) => {
                let mut after = self.etcd_key(after);
                after.push(0);
                after.max(from)
            }
            None => from,
        };
        let mut options = GetOptions::new().with_range(end);
        match limit {
            Some(0) => options = options.with_count_only(),
            Some(limit) => {
                let limit = i64::try_from(limit)
                    .map_err(|_| StoreError::Backend(format!("list limit {limit} is too large")))?;
                options = options.with_limit(limit);
            }
            None => {}
        }
        let response = self
            .bounded("listing", Idempotence::Read, || {
                let (mut kv, start, options) = (self.kv(), start.clone(), options.clone());
                async move { kv.get(start, Some(options)).await }
            })
            .await?;
        let revision = Self::header_revision(response.header(), "listing")?;
        let items = response
            .kvs()
            .iter()
            .map(|kv| self.current(kv))
            .collect::<Result<Vec<_>, _>>()?;
        let count = usize::try_from(response.count()).unwrap_or(0);
        Ok(ListResult {
            remaining: count.saturating_sub(items.len()),
            items,
            revision,
        })
    }
}

#[async_trait]
impl Store for EtcdStore {
    async fn create(&self, key: &str, value: Vec<u8>) -> Result<KeyValue, StoreError> {
        let etcd_key = self.etcd_key(key);
        let txn = Txn::new()
            .when(vec![Compare::create_revision(
                etcd_key.clone(),
                CompareOp::Equal,
                0,
            )])
            .and_then(vec![TxnOp::put(etcd_key, value.clone(), None)]);
        let response = self
            .bounded("creating", Idempotence::Write, || {
                let (mut kv, txn) = (self.kv(), txn.clone());
                async move { kv.txn(txn).await }
            })
            .await?;
        if !response.succeeded() {
            return Err(StoreError::AlreadyExists(key.to_string()));
        }
        let revision = Self::header_revision(response.header(), "creating")?;
        let mut created = KeyValue {
            key: key.to_string(),
            value: Arc::from(value),
            create_revision: revision,
            mod_revision: revision,
            extracted: None,
        };
        self.extract(&mut created);
        Ok(created)
    }

    async fn update(
        &self,
        key: &str,
        value: Vec<u8>,
        expected_revision: Option<Revision>,
    ) -> Result<KeyValue, StoreError> {
        let etcd_key = self.etcd_key(key);
        let put = TxnOp::put(
            etcd_key.clone(),
            value.clone(),
            Some(PutOptions::new().with_prev_key()),
        );
        let txn = self.guarded(&etcd_key, expected_revision, put);
        let response = self
            .bounded("updating", Idempotence::Write, || {
                let (mut kv, txn) = (self.kv(), txn.clone());
                async move { kv.txn(txn).await }
            })
            .await?;
        if !response.succeeded() {
            return Err(self.why_not(key, expected_revision, &response));
        }
        let revision = Self::header_revision(response.header(), "updating")?;
        let create_revision = response
            .op_responses()
            .into_iter()
            .find_map(|op| match op {
                TxnOpResponse::Put(put) => put.prev_key().map(|kv| kv.create_revision()),
                _ => None,
            })
            .ok_or_else(|| backend("updating", "no previous value in the answer"))?;
        let mut updated = KeyValue {
            key: key.to_string(),
            value: Arc::from(value),
            create_revision,
            mod_revision: revision,
            extracted: None,
        };
        self.extract(&mut updated);
        Ok(updated)
    }

    async fn delete(
        &self,
        key: &str,
        expected_revision: Option<Revision>,
    ) -> Result<KeyValue, StoreError> {
        let etcd_key = self.etcd_key(key);
        let delete = TxnOp::delete(etcd_key.clone(), Some(DeleteOptions::new().with_prev_key()));
        let txn = self.guarded(&etcd_key, expected_revision, delete);
        let response = self
            .bounded("deleting", Idempotence::Write, || {
                let (mut kv, txn) = (self.kv(), txn.clone());
                async move { kv.txn(txn).await }
            })
            .await?;
        if !response.succeeded() {
            return Err(self.why_not(key, expected_revision, &response));
        }
        let revision = Self::header_revision(response.header(), "deleting")?;
        let last = response
            .op_responses()
            .into_iter()
            .find_map(|op| match op {
                TxnOpResponse::Delete(delete) => delete.prev_kvs().first().cloned(),
                _ => None,
            })
            .ok_or_else(|| backend("deleting", "no previous value in the answer"))?;
        let mut deleted = self.convert(&last)?;
        deleted.mod_revision = revision;
        Ok(deleted)
    }

    async fn get(&self, key: &str) -> Result<Option<KeyValue>, StoreError> {
        let etcd_key = self.etcd_key(key);
        let response = self
            .bounded("reading", Idempotence::Read, || {
                let (mut kv, etcd_key) = (self.kv(), etcd_key.clone());
                async move { kv.get(etcd_key, None).await }
            })
            .await?;
        response
            .kvs()
            .first()
            .map(|kv| self.current(kv))
            .transpose()
    }

    async fn list(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: Option<usize>,
    ) -> Result<ListResult, StoreError> {
        self.list_page(prefix, start_after, limit).await
    }

    async fn watch(
        &self,
        prefix: &str,
        after_revision: Revision,
    ) -> Result<BoxStream<'static, Result<WatchEvent, StoreError>>, StoreError> {
        // etcd keeps the event at its compaction revision; the trait promises none at or below
        // it, so refuse here what etcd would still serve.
        let probe = after_revision.max(1);
        if !self.readable_at(probe).await? || after_revision < self.known_compacted() {
            let compacted = self.compacted_revision().await?;
            if after_revision < compacted {
                return Err(StoreError::Compacted {
                    requested: after_revision,
                    compacted,
                });
            }
        }
        let start = after_revision
            .checked_add(1)
            .ok_or_else(|| StoreError::Backend("watch revision out of range".to_string()))?;
        let from = self.etcd_key(prefix);
        let options = WatchOptions::new()
            .with_range(prefix_end(&from))
            .with_start_revision(start)
            .with_prev_key();
        let mut etcd_watch = self
            .bounded("watching", Idempotence::Read, || {
                let mut client = self
                    .client
                    .watch_client()
                    .max_decoding_message_size(MAX_MESSAGE_BYTES);
                let (from, options) = (from.clone(), options.clone());
                async move { client.watch(from, Some(options)).await }
            })
            .await?;
        // Wait for etcd to confirm the watch, so a watch that could not start fails here.
        let first = match tokio::time::timeout(self.timeout, etcd_watch.message()).await {
            Ok(Ok(first)) => first,
            Ok(Err(error)) => return Err(refused("watching", error)),
            Err(_) => return Err(unanswered("watching", self.timeout)),
        };
        let mut pending = VecDeque::new();
        match first {
            Some(response) if response.created() && !response.canceled() => {
                if !response.events().is_empty() {
                    pending.push_back(response);
                }
            }
            Some(response) if response.compact_revision() > 0 => {
                return Err(StoreError::Compacted {
                    requested: after_revision,
                    compacted: response.compact_revision(),
                })
            }
            Some(response) => {
                return Err(backend(
                    "watching",
                    format!("etcd refused the watch: {}", response.cancel_reason()),
                ))
            }
            None => return Err(backend("watching", "etcd closed the watch at once")),
        }
        let state = WatchState {
            etcd_watch,
            responses: pending,
            events: VecDeque::new(),
            root: self.root.clone(),
            after_revision,
            ended: false,
        };
        Ok(stream::unfold(state, WatchState::next).boxed())
    }

    async fn current_revision(&self) -> Result<Revision, StoreError> {
        let response = self
            .bounded("reading the revision", Idempotence::Read, || {
                let mut kv = self.kv();
                let root = self.root.clone();
                async move {
                    kv.get(root, Some(GetOptions::new().with_count_only()))
                        .await
                }
            })
            .await?;
        Self::header_revision(response.header(), "reading the revision")
    }

    async fn compact(&self, revision: Revision) -> Result<(), StoreError> {
        let mut kv = self.kv();
        // Not physical, as the Kubernetes API server compacts: etcd moves its compaction
        // revision when it applies the request and frees the space in the background, so a
        // large database cannot make the call outlast the timeout.
        let call = kv.compact(revision, Some(CompactionOptions::new()));
        match tokio::time::timeout(self.timeout, call).await {
            Ok(Ok(_)) => {
                self.known_compacted.fetch_max(revision, Ordering::Relaxed);
                Ok(())
            }
            // Compacting at or below the compacted revision changes nothing.
            Ok(Err(error)) if is_compacted_error(&error) => Ok(()),
            Ok(Err(error)) => Err(refused("compacting", error)),
            Err(_) => Err(unanswered("compacting", self.timeout)),
        }
    }

    async fn compacted_revision(&self) -> Result<Revision, StoreError> {
        // etcd does not report its compaction revision, but a read below it fails: the
        // smallest readable revision is it. The known value is usually still right, which
        // costs one read; otherwise search between it and now.
        let known = self.known_compacted();
        if self.readable_at(known.max(1)).await? {
            return Ok(known);
        }
        let (mut unreadable, mut readable) = (known.max(1), self.current_revision().await?);
        while readable - unreadable > 1 {
            let middle = unreadable + (readable - unreadable) / 2;
            if self.readable_at(middle).await? {
                readable = middle;
            } else {
                unreadable = middle;
            }
        }
        self.known_compacted.fetch_max(readable, Ordering::Relaxed);
        Ok(readable)
    }

    fn backend_name(&self) -> &'static str {
        "etcd"
    }

    fn set_extractor(&self, extractor: Arc<dyn ValueExtractor>) -> Result<(), StoreError> {
        *self
            .extractor
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(extractor);
        Ok(())
    }
}

impl EtcdStore {
    fn known_compacted(&self) -> Revision {
        self.known_compacted.load(Ordering::Relaxed)
    }
}

/// A live etcd watch turned into the trait's stream of events.
struct WatchState {
    etcd_watch: etcd_client::WatchStream,
    responses: VecDeque<etcd_client::WatchResponse>,
    events: VecDeque<WatchEvent>,
    root: Vec<u8>,
    after_revision: Revision,
    ended: bool,
}

impl WatchState {
    async fn next(mut self) -> Option<(Result<WatchEvent, StoreError>, Self)> {
        loop {
            if self.ended {
                return None;
            }
            if let Some(event) = self.events.pop_front() {
                return Some((Ok(event), self));
            }
            if let Some(response) = self.responses.pop_front() {
                if let Err(error) = self.take(&response) {
                    self.ended = true;
                    return Some((Err(error), self));
                }
                continue;
            }
            match self.etcd_watch.message().await {
                Ok(Some(response)) => self.responses.push_back(response),
                Ok(None) => {
                    self.ended = true;
                    return Some((
                        Err(backend("watching", "etcd closed the watch stream")),
                        self,
                    ));
                }
                Err(error) => {
                    self.ended = true;
                    return Some((Err(backend("watch stream broken", error)), self));
                }
            }
        }
    }

    /// Queues the events of one etcd response, or says why the watch must end.
    fn take(&mut self, response: &etcd_client::WatchResponse) -> Result<(), StoreError> {
        if response.canceled() {
            if response.compact_revision() > 0 {
                return Err(StoreError::Compacted {
                    requested: self.after_revision,
                    compacted: response.compact_revision(),
                });
            }
            return Err(backend(
                "watching",
                format!("etcd cancelled the watch: {}", response.cancel_reason()),
            ));
        }
        // A response without events (a progress report) has nothing to deliver.
        for event in response.events() {
            let converted = self.convert(event)?;
            self.after_revision = converted.revision;
            self.events.push_back(converted);
        }
        Ok(())
    }

    fn key_value(&self, kv: &etcd_client::KeyValue) -> Result<KeyValue, StoreError> {
        let key = kv
            .key()
            .strip_prefix(self.root.as_slice())
            .ok_or_else(|| backend("watching", "event for a key outside our prefix"))?;
        Ok(KeyValue {
            key: String::from_utf8(key.to_vec())
                .map_err(|_| backend("watching", "event for a key that is not UTF-8"))?,
            value: Arc::from(kv.value()),
            create_revision: kv.create_revision(),
            mod_revision: kv.mod_revision(),
            extracted: None,
        })
    }

    fn convert(&self, event: &etcd_client::Event) -> Result<WatchEvent, StoreError> {
        let kv = event
            .kv()
            .ok_or_else(|| backend("watching", "event without a key"))?;
        let prev = event.prev_kv().map(|p| self.key_value(p)).transpose()?;
        match event.event_type() {
            EventType::Put => {
                let current = self.key_value(kv)?;
                let kind = if current.create_revision == current.mod_revision {
                    EventKind::Created
                } else {
                    EventKind::Updated
                };
                Ok(WatchEvent {
                    kind,
                    revision: current.mod_revision,
                    prev: if kind == EventKind::Created {
                        None
                    } else {
                        prev
                    },
                    kv: current,
                })
            }
            EventType::Delete => {
                let revision = kv.mod_revision();
                let before = prev.ok_or_else(|| {
                    backend(
                        "watching",
                        format!("the value deleted at revision {revision} is compacted away"),
                    )
                })?;
                let mut last = before.clone();
                last.mod_revision = revision;
                Ok(WatchEvent {
                    kind: EventKind::Deleted,
                    revision,
                    kv: last,
                    prev: Some(before),
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_end_increments_the_last_byte_that_can_be() {
        assert_eq!(prefix_end(b"/a/"), b"/a0".to_vec());
        assert_eq!(prefix_end(b"/a\xff"), b"/b".to_vec());
        assert_eq!(prefix_end(b"\xff\xff"), vec![0]);
    }

    #[test]
    fn endpoint_lists_are_split_on_commas_and_need_a_scheme() {
        assert_eq!(
            EtcdOptions::parse_endpoints("http://127.0.0.1:2379, https://b:2379").unwrap(),
            ["http://127.0.0.1:2379", "https://b:2379"]
        );
        assert!(EtcdOptions::parse_endpoints("127.0.0.1:2379").is_err());
        assert!(EtcdOptions::parse_endpoints(" , ").is_err());
    }

    #[test]
    fn only_a_broken_connection_counts_as_lost_in_flight() {
        let status = |code, message: &str| {
            etcd_client::Error::GRpcStatus(tonic::Status::new(code, message.to_string()))
        };
        let cases = [
            (tonic::Code::Cancelled, "operation was canceled", true),
            (tonic::Code::Unavailable, "connection closed", true),
            // etcd's own answers: the member is alive and refused the call.
            (
                tonic::Code::Unavailable,
                "etcdserver: request timed out",
                false,
            ),
            (
                tonic::Code::Unavailable,
                "etcdserver: leader changed",
                false,
            ),
            (
                tonic::Code::InvalidArgument,
                "etcdserver: key is not provided",
                false,
            ),
            (tonic::Code::Unknown, "connection closed", false),
        ];
        for (code, message, want) in cases {
            assert_eq!(
                lost_in_flight(&status(code, message)),
                want,
                "{code:?} {message:?}"
            );
        }
        assert!(!lost_in_flight(&etcd_client::Error::InvalidArgs(
            "x".to_string()
        )));
    }
}
