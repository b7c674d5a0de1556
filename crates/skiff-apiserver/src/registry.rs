//! The generic registry: every read and write of an API object, over the store.
//!
//! HTTP handlers and in-process clients both call this, so there is one place that decides
//! identity (uid, creation time), generation, resourceVersion, status/spec separation, graceful
//! deletion and finalizers, and that runs admission on every write.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use futures::stream::BoxStream;
use futures::StreamExt;
use serde_json::{json, Value};
use skiff_api::kinds::RegistryHook;
use skiff_api::managed_fields;
use skiff_api::resources::{self, ResourceInfo, Subresource};
use skiff_store::{EventKind, KeyValue, Revision, Store, StoreError};

use crate::admission::{self, FieldValidation};
use crate::allocator::{ServiceAllocator, ServiceRange};
use crate::filter::Filter;
use crate::meta;
use crate::status::{ApiError, ServerApiError};
use crate::stored_json;
use crate::stored_labels::{label_verdict, LabelExtractor};

/// How many times a read-modify-write retries after losing a race with another writer.
const MAX_CONFLICT_RETRIES: usize = 16;

/// The outcome of a write: the object as stored, and warnings for the client.
#[derive(Clone, Debug)]
pub struct Written {
    /// The object in the request's version, with its new resourceVersion.
    pub object: Value,
    /// Messages for `Warning` headers.
    pub warnings: Vec<String>,
}

/// Options shared by create, update and patch.
#[derive(Clone, Copy, Debug, Default)]
pub struct WriteOptions {
    /// What to do with unknown fields.
    pub field_validation: FieldValidation,
    /// Validate and default but do not persist.
    pub dry_run: bool,
    /// Who writes, as `managedFields` records it; an empty name records nothing.
    pub field_manager: FieldManagerName,
    /// `force=true` on a server-side apply: take the fields other managers own.
    pub force: bool,
    /// The object comes from a server-side apply, which already set its `managedFields`.
    pub applied: bool,
    /// The subresource an update is recorded under when it is not the one written through
    /// (`scale` writes the main object).
    pub recorded_subresource: Option<&'static str>,
}

/// A field manager's name, at most the 128 bytes Kubernetes keeps, stored inline so write
/// options stay `Copy`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct FieldManagerName {
    bytes: [u8; FieldManagerName::MAX],
    len: u8,
}

impl FieldManagerName {
    /// The longest name kept; longer ones are cut on a character boundary.
    pub const MAX: usize = 128;

    /// The name `name`, cut to [`FieldManagerName::MAX`] bytes.
    pub fn new(name: &str) -> FieldManagerName {
        let mut end = name.len().min(Self::MAX);
        while !name.is_char_boundary(end) {
            end -= 1;
        }
        let mut bytes = [0u8; Self::MAX];
        bytes[..end].copy_from_slice(&name.as_bytes()[..end]);
        FieldManagerName {
            bytes,
            // `end` is at most 128.
            len: u8::try_from(end).unwrap_or(0),
        }
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.bytes[..usize::from(self.len)]).unwrap_or("")
    }
}

impl Default for FieldManagerName {
    fn default() -> Self {
        FieldManagerName::new("")
    }
}

impl std::fmt::Debug for FieldManagerName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.as_str())
    }
}

pub use skiff_api::request_options::{DeleteOptions, ListOptions};

/// One page of a list, of decoded objects ([`ObjectList`]) or of objects as stored
/// ([`StoredList`]).
#[derive(Clone, Debug)]
pub struct ListPage<T> {
    /// The selected objects.
    pub items: Vec<T>,
    /// The store revision the list reflects.
    pub resource_version: Revision,
    /// The token for the next page, if there is one.
    pub continue_token: Option<String>,
    /// How many objects follow this page, when known.
    pub remaining: Option<usize>,
}

/// A page of decoded objects in the request's version, for callers that work on the objects.
pub type ObjectList = ListPage<Value>;

/// A page of objects exactly as stored (storage version, no `metadata.resourceVersion`), for
/// answers that can be written from the stored bytes: see [`Registry::list_stored`].
pub type StoredList = ListPage<KeyValue>;

/// Only the `metadata` of a stored object: a label selector needs nothing else, and skipping
/// the rest while parsing allocates nothing for it.
#[derive(serde::Deserialize)]
struct MetadataOnly {
    #[serde(default)]
    metadata: Value,
}

/// What a delete did.
#[derive(Clone, Debug)]
pub enum Deleted {
    /// The object is gone; this was its last state.
    Gone(Value),
    /// Deletion started and waits for finalizers or a graceful shutdown; this is the object now.
    Pending(Value),
}

/// One event of a watch, in the request's version.
#[derive(Clone, Debug, PartialEq)]
pub struct WatchEvent {
    /// `ADDED`, `MODIFIED`, `DELETED`, `BOOKMARK` or `ERROR`.
    pub event_type: &'static str,
    /// The object (a `Status` for `ERROR`).
    pub object: Value,
}

/// The registry over one store.
#[derive(Clone)]
pub struct Registry {
    store: Arc<dyn Store>,
    services: Arc<ServiceAllocator>,
    /// The ServiceAccount token signer, shared by every clone once installed.
    token_signer: Arc<std::sync::OnceLock<Arc<crate::service_account_tokens::TokenSigner>>>,
    /// The `DefaultTolerationSeconds` admission's not-ready and unreachable seconds.
    toleration_seconds: (i64, i64),
    /// The authorizer's RBAC snapshot, retired by every RBAC write through `store`.
    rbac: Arc<crate::snapshot_cache::RbacCache>,
    /// The webhook configurations, retired by every write of either kind through `store`.
    webhooks: Arc<crate::snapshot_cache::WebhookCache>,
    /// Each namespace's ResourceQuotas, retired by every quota write through `store`.
    quotas: Arc<crate::snapshot_cache::QuotaCache>,
    /// The admission policies and bindings, retired by every policy write through `store`.
    policies: Arc<crate::admission_policies::PolicyCache>,
    /// The Node authorizer's graph of what each node's pods reference.
    node_graph: Arc<crate::node_graph::NodeGraphCache>,
    /// `store` itself, as the tracker that retires the caches above.
    cache_tracker: Arc<crate::snapshot_cache::WriteTrackingStore>,
    /// The aggregation layer's client identity and what its checks discovered.
    aggregator: Arc<crate::aggregator::Aggregator>,
}

/// What the registry does for `resource`'s kind beyond the generic behaviour.
fn hook(resource: &ResourceInfo) -> RegistryHook {
    skiff_api::kinds::strategy_for(resource).registry_hook()
}

/// A pod's quality-of-service class, from its containers' requests and limits.
fn qos_class(pod: &Value) -> &'static str {
    let containers: Vec<&Value> = ["containers", "initContainers"]
        .iter()
        .filter_map(|f| pod.pointer(&format!("/spec/{f}")).and_then(Value::as_array))
        .flatten()
        .collect();
    let mut any = false;
    let mut guaranteed = true;
    for c in containers {
        let requests = c.pointer("/resources/requests");
        let limits = c.pointer("/resources/limits");
        for res in ["cpu", "memory"] {
            let r = requests.and_then(|r| r.get(res));
            let l = limits.and_then(|l| l.get(res));
            if r.is_some() || l.is_some() {
                any = true;
            }
            match (r, l) {
                (_, None) => guaranteed = false,
                (Some(r), Some(l)) if r != l => guaranteed = false,
                _ => {}
            }
        }
    }
    if !any {
        "BestEffort"
    } else if guaranteed {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

/// Random suffix alphabet Kubernetes uses for generated names (no vowels, no confusable digits).
const NAME_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// The longest `generateName` prefix kept: a name's 63 bytes less the random suffix, as
/// Kubernetes' `MaxGeneratedNameLength`.
pub const MAX_GENERATED_NAME_PREFIX_BYTES: usize = 58;

/// `generateName` plus five random characters, as Kubernetes generates names. A longer prefix
/// is cut to [`MAX_GENERATED_NAME_PREFIX_BYTES`], on a character boundary so that a
/// multi-byte character never splits; validation then judges the result.
pub fn generate_name(prefix: &str) -> String {
    let prefix = &prefix[..prefix.floor_char_boundary(MAX_GENERATED_NAME_PREFIX_BYTES)];
    let mut out = prefix.to_string();
    for _ in 0..5 {
        let i = (uuid::Uuid::new_v4().as_u128() % NAME_ALPHABET.len() as u128) as usize;
        out.push(NAME_ALPHABET[i] as char);
    }
    out
}

/// When a graceful deletion started at `now` with `grace_seconds` ends. Kubernetes keeps any
/// grace period a client asks for; one reaching past the last representable instant ends
/// there instead of overflowing.
pub fn deletion_deadline(now: jiff::Timestamp, grace_seconds: i64) -> jiff::Timestamp {
    now.checked_add(jiff::SignedDuration::from_secs(grace_seconds))
        .unwrap_or(if grace_seconds < 0 {
            jiff::Timestamp::MIN
        } else {
            jiff::Timestamp::MAX
        })
}

/// Everything except metadata and status: what `generation` tracks.
fn spec_part(obj: &Value) -> Value {
    match obj {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(k, _)| {
                    !matches!(k.as_str(), "metadata" | "status" | "apiVersion" | "kind")
                })
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        ),
        _ => Value::Null,
    }
}

/// What a continue token carries from one page to the next.
#[derive(Clone, Debug, PartialEq, Eq)]
struct ContinueToken {
    /// The revision of the first page, which every later page reports.
    revision: Revision,
    /// The last key returned; the next page starts after it.
    start: String,
    /// For lists without selectors, how many objects followed `start` when the page was
    /// served, so later pages report `remainingItemCount` without counting the rest of the
    /// keys again (which would make paging quadratic). Absent in tokens that never had it.
    remaining: Option<usize>,
}

/// The continue token: the revision of the first page, the last key returned, and the count
/// of what followed it when known.
fn encode_continue(token: &ContinueToken) -> String {
    use base64::Engine;
    let mut raw = json!({"v": "meta.k8s.io/v1", "rv": token.revision, "start": token.start});
    if let Some(remaining) = token.remaining {
        raw["remaining"] = json!(remaining);
    }
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw.to_string())
}

fn decode_continue(token: &str) -> Result<ContinueToken, ApiError> {
    use base64::Engine;
    let bad = || {
        ApiError::bad_request("continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)")
    };
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .map_err(|_| bad())?;
    let v: Value = serde_json::from_slice(&raw).map_err(|_| bad())?;
    let rv = v.get("rv").and_then(Value::as_i64).ok_or_else(bad)?;
    let start = v.get("start").and_then(Value::as_str).ok_or_else(bad)?;
    let remaining = match v.get("remaining") {
        None => None,
        Some(count) => Some(
            count
                .as_u64()
                .and_then(|c| usize::try_from(c).ok())
                .ok_or_else(bad)?,
        ),
    };
    Ok(ContinueToken {
        revision: rv,
        start: start.to_string(),
        remaining,
    })
}

fn parse_resource_version(rv: &str) -> Result<Revision, ApiError> {
    rv.parse::<Revision>()
        .ok()
        .filter(|r| *r >= 0)
        .ok_or_else(|| ApiError::bad_request(format!("invalid resource version: {rv}")))
}

/// The revision a write's `metadata.resourceVersion` requires: none when it is empty or
/// `"0"`, which Kubernetes takes as an unconditional write.
fn precondition_revision(rv: &str) -> Result<Option<Revision>, ApiError> {
    if rv.is_empty() {
        return Ok(None);
    }
    Ok(Some(parse_resource_version(rv)?).filter(|r| *r != 0))
}

impl Registry {
    /// A registry over `store`. Installs [`LabelExtractor`] in the store, so that label
    /// selectors read labels the store keeps parsed instead of parsing every object.
    pub fn new(store: Arc<dyn Store>) -> Registry {
        Registry::with_service_range(store, ServiceRange::default())
    }

    /// A registry over `store` whose Services get cluster IPs from `range`.
    pub fn with_service_range(store: Arc<dyn Store>, range: ServiceRange) -> Registry {
        if let Err(error) = store.set_extractor(Arc::new(LabelExtractor)) {
            // Lists still work without it, parsing each object's labels themselves.
            tracing::warn!(%error, "the store keeps no parsed labels");
        }
        use crate::snapshot_cache::{Retire, WriteTrackingStore, RBAC_KEY_PREFIX};
        use skiff_api::kinds::{resource_quota, webhook_configuration};
        let rbac = Arc::new(crate::snapshot_cache::RbacCache::default());
        let webhooks = Arc::new(crate::snapshot_cache::WebhookCache::default());
        let quotas = Arc::new(crate::snapshot_cache::QuotaCache::default());
        let policies = Arc::new(crate::admission_policies::PolicyCache::default());
        let policies_retired: Arc<dyn Retire> = policies.clone();
        let (rbac_retired, webhooks_retired, quotas_retired): (
            Arc<dyn Retire>,
            Arc<dyn Retire>,
            Arc<dyn Retire>,
        ) = (rbac.clone(), webhooks.clone(), quotas.clone());
        let watched = vec![
            (RBAC_KEY_PREFIX.to_string(), rbac_retired),
            (
                webhook_configuration::MUTATING_V1.key_prefix(),
                webhooks_retired.clone(),
            ),
            (
                webhook_configuration::VALIDATING_V1.key_prefix(),
                webhooks_retired,
            ),
            (resource_quota::V1.key_prefix(), quotas_retired),
            (
                crate::admission_policies::POLICY_KEY_PREFIX.to_string(),
                policies_retired,
            ),
        ];
        let cache_tracker = Arc::new(WriteTrackingStore::new(store, watched));
        Registry {
            store: cache_tracker.clone(),
            cache_tracker,
            services: Arc::new(ServiceAllocator::for_range(range)),
            token_signer: Arc::default(),
            toleration_seconds: (
                skiff_api::kinds::pod::DEFAULT_TOLERATION_SECONDS,
                skiff_api::kinds::pod::DEFAULT_TOLERATION_SECONDS,
            ),
            rbac,
            policies,
            webhooks,
            quotas,
            node_graph: Arc::default(),
            aggregator: Arc::default(),
        }
    }

    /// The range Services' cluster IPs come from.
    pub fn service_range(&self) -> ServiceRange {
        self.services.range()
    }

    /// Installs the key ServiceAccount tokens are signed and verified with; every clone of
    /// this registry sees it. Without one, TokenRequests are refused and no bearer token but
    /// the admin's is accepted. A second install is ignored.
    pub fn install_token_signer(&self, signer: Arc<crate::service_account_tokens::TokenSigner>) {
        let _ = self.token_signer.set(signer);
    }

    /// The aggregation layer, shared by every clone: the front-proxy client identity
    /// requests to aggregated servers present, and the remote group versions discovered.
    pub fn aggregator(&self) -> &crate::aggregator::Aggregator {
        &self.aggregator
    }

    /// The ServiceAccount admission plugin, on when this registry issues tokens: the pod's
    /// ServiceAccount must exist (a namespace's `default` one is awaited briefly, since its
    /// controller creates it just after the namespace), then the pod gets its token volume.
    async fn admit_service_account(&self, pod: &mut Value) -> Result<(), ApiError> {
        use skiff_api::service_account_admission as plugin;
        if !plugin::applies_to(pod) {
            return Ok(());
        }
        let namespace = meta::namespace(pod).unwrap_or("default").to_string();
        let account_name = plugin::service_account_name(pod).to_string();
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(2);
        let account = loop {
            match self
                .get(
                    &skiff_api::kinds::service_account::V1,
                    Some(&namespace),
                    &account_name,
                )
                .await
            {
                Ok(account) => break account,
                Err(e) if e.code == 404 => {
                    if account_name != "default" || tokio::time::Instant::now() >= deadline {
                        return Err(ApiError::forbidden(
                            plugin::missing_service_account_message(
                                meta::name(pod),
                                &namespace,
                                &account_name,
                            ),
                        ));
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
                Err(e) => return Err(e),
            }
        };
        let suffix = plugin::suffix_from(rand::random());
        plugin::admit(pod, &account, &suffix);
        Ok(())
    }

    /// The installed ServiceAccount token signer.
    pub fn token_signer(&self) -> Option<&Arc<crate::service_account_tokens::TokenSigner>> {
        self.token_signer.get()
    }

    /// The same registry with other `DefaultTolerationSeconds` (kube-apiserver's
    /// `--default-not-ready-toleration-seconds` and `--default-unreachable-toleration-seconds`):
    /// the tolerations new pods get of the `not-ready` and `unreachable` NoExecute taints.
    pub fn with_default_toleration_seconds(mut self, not_ready: i64, unreachable: i64) -> Self {
        self.toleration_seconds = (not_ready, unreachable);
        self
    }

    /// The underlying store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The cached RBAC snapshot the authorizer decides from, and what retires it.
    pub fn rbac_cache(&self) -> &Arc<crate::snapshot_cache::RbacCache> {
        &self.rbac
    }

    /// The cached admission policies and bindings, and what retires them.
    pub fn policy_cache(&self) -> &Arc<crate::admission_policies::PolicyCache> {
        &self.policies
    }

    /// The cached webhook configurations dynamic admission matches against.
    pub fn webhook_cache(&self) -> &Arc<crate::snapshot_cache::WebhookCache> {
        &self.webhooks
    }

    /// The cached ResourceQuotas of each namespace quota admission charges.
    pub fn quota_cache(&self) -> &Arc<crate::snapshot_cache::QuotaCache> {
        &self.quotas
    }

    /// Retires the caches for writes made through other servers of the store too, from the
    /// store's watch (see [`crate::snapshot_cache`]); until then only this registry's own
    /// writes retire them. Needs a tokio runtime.
    pub fn follow_store_for_caches(&self) {
        self.cache_tracker.follow_store();
    }

    /// The Node authorizer's graph of what each node's pods reference.
    pub fn node_graph(&self) -> &Arc<crate::node_graph::NodeGraphCache> {
        &self.node_graph
    }

    /// Decodes a stored value, stamping its resourceVersion, in the storage version.
    fn decode(&self, kv: &KeyValue) -> Result<Value, ApiError> {
        let mut obj: Value = serde_json::from_slice(&kv.value)
            .map_err(|e| ApiError::internal(format!("corrupt object at {}: {e}", kv.key)))?;
        meta::set(
            &mut obj,
            "resourceVersion",
            Value::String(kv.mod_revision.to_string()),
        );
        Ok(obj)
    }

    /// Converts a stored object to the version the client asked for.
    fn present(&self, resource: &ResourceInfo, obj: Value) -> Result<Value, ApiError> {
        let mut obj = admission::convert(obj, &resource.api_version())?;
        skiff_api::wire::fill_never_omitted(resource, &mut obj);
        Ok(obj)
    }

    fn encode(obj: &Value) -> Result<Vec<u8>, ApiError> {
        let mut copy = obj.clone();
        meta::remove(&mut copy, "resourceVersion");
        serde_json::to_vec(&copy).map_err(|e| ApiError::internal(e.to_string()))
    }

    async fn get_stored(
        &self,
        resource: &ResourceInfo,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<(Value, Revision), ApiError> {
        let key = resource.key(namespace, name);
        let kv = self
            .store
            .get(&key)
            .await
            .map_err(|e| ApiError::from_store(e, resource, name))?
            .ok_or_else(|| ApiError::not_found(resource, name))?;
        Ok((self.decode(&kv)?, kv.mod_revision))
    }

    /// Reads one object.
    pub async fn get(
        &self,
        resource: &ResourceInfo,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Value, ApiError> {
        let (obj, _) = self.get_stored(resource, namespace, name).await?;
        self.present(resource, obj)
    }

    /// Lists objects of a resource in one namespace (or all), decoded and in the request's
    /// version.
    pub async fn list(
        &self,
        resource: &ResourceInfo,
        namespace: Option<&str>,
        options: &ListOptions,
    ) -> Result<ObjectList, ApiError> {
        let storage = resources::storage_resource(resource);
        self.list_selected(resource, namespace, options, |filter, kv| {
            if label_verdict(filter, kv) == Some(false) {
                return Ok(None);
            }
            let obj = self.decode(kv)?;
            if filter.matches(storage, &obj) {
                Ok(Some(self.present(resource, obj)?))
            } else {
                Ok(None)
            }
        })
        .await
    }

    /// Lists like [`Registry::list`] but leaves each selected object as stored, so the caller
    /// can write it out without building a tree for it ([`Registry::write_listed_json`]) or
    /// decode one object at a time ([`Registry::decode_listed`]). Without selectors no object
    /// is decoded at all; a label selector reads the labels the store keeps parsed
    /// ([`crate::stored_labels`]), or decodes only `metadata` where it keeps none.
    pub async fn list_stored(
        &self,
        resource: &ResourceInfo,
        namespace: Option<&str>,
        options: &ListOptions,
    ) -> Result<StoredList, ApiError> {
        let storage = resources::storage_resource(resource);
        self.list_selected(resource, namespace, options, |filter, kv| {
            let verdict = label_verdict(filter, kv);
            let selected = if filter.is_everything() {
                true
            } else if verdict == Some(false) {
                false
            } else if filter.reads_only_metadata() && verdict == Some(true) {
                true
            } else if filter.reads_only_metadata() {
                let only: MetadataOnly = serde_json::from_slice(&kv.value).map_err(|e| {
                    ApiError::internal(format!("corrupt object at {}: {e}", kv.key))
                })?;
                filter.matches(storage, &json!({"metadata": only.metadata}))
            } else {
                filter.matches(storage, &self.decode(kv)?)
            };
            Ok(selected.then(|| kv.clone()))
        })
        .await
    }

    /// One object of a [`StoredList`], decoded with its resourceVersion and in the request's
    /// version: what [`Registry::list`] would have returned for it.
    pub fn decode_listed(&self, resource: &ResourceInfo, kv: &KeyValue) -> Result<Value, ApiError> {
        self.present(resource, self.decode(kv)?)
    }

    /// Appends one object of a [`StoredList`] to `out` as the JSON [`Registry::list`] would
    /// have produced for it. When the request's version is the storage version the stored
    /// bytes are copied with the resourceVersion spliced in; otherwise (a conversion) or for a
    /// stored object of unexpected shape, the object is decoded, converted and encoded.
    pub fn write_listed_json(
        &self,
        resource: &ResourceInfo,
        kv: &KeyValue,
        out: &mut Vec<u8>,
    ) -> Result<(), ApiError> {
        // Custom resources are defaulted on read too, so their stored bytes may lack defaults
        // added to their schema since they were written.
        let defaulted_on_read = skiff_api::kinds::strategy_for(resource)
            .openapi_schema(resource.version)
            .is_some();
        if resource.is_storage_entry()
            && !defaulted_on_read
            && stored_json::write_with_resource_version(&kv.value, kv.mod_revision, out)
        {
            return Ok(());
        }
        let obj = self.decode_listed(resource, kv)?;
        serde_json::to_writer(out, &obj).map_err(|e| ApiError::internal(e.to_string()))
    }

    /// The paging loop shared by every list: reads the store page by page from the continue
    /// token, lets `select` decide on (and transform) each stored object, and fills in the
    /// continue token and `remainingItemCount` as Kubernetes does.
    async fn list_selected<T>(
        &self,
        resource: &ResourceInfo,
        namespace: Option<&str>,
        options: &ListOptions,
        mut select: impl FnMut(&Filter, &KeyValue) -> Result<Option<T>, ApiError>,
    ) -> Result<ListPage<T>, ApiError> {
        let filter = Filter::parse(
            resource,
            options.label_selector.as_deref(),
            options.field_selector.as_deref(),
        )?;
        let prefix = resource.namespace_prefix(namespace);
        let continuing = options
            .continue_token
            .as_deref()
            .is_some_and(|t| !t.is_empty());
        let wanted = options
            .resource_version
            .as_deref()
            .filter(|rv| !rv.is_empty() && *rv != "0" && !continuing)
            .map(parse_resource_version)
            .transpose()?;
        if let Some(wanted) = wanted {
            if options.resource_version_match.as_deref() == Some(crate::options::MATCH_EXACT) {
                return self
                    .list_exact(resource, &prefix, wanted, &filter, select)
                    .await;
            }
            let current = self
                .store
                .current_revision()
                .await
                .map_err(|e| ApiError::from_store(e, resource, ""))?;
            if wanted > current {
                return Err(ApiError::too_large_resource_version(wanted, current));
            }
        }
        let token = match options.continue_token.as_deref() {
            Some(token) if !token.is_empty() => {
                let token = decode_continue(token)?;
                let compacted = self
                    .store
                    .compacted_revision()
                    .await
                    .map_err(|e| ApiError::from_store(e, resource, ""))?;
                if token.revision < compacted {
                    return Err(ApiError::expired("The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list."));
                }
                Some(token)
            }
            _ => None,
        };
        let first_revision = token.as_ref().map(|t| t.revision);
        let limit = options.limit.filter(|l| *l > 0);
        // remainingItemCount is reported only for pages cut by a limit without selectors.
        // Such a first page counts what follows it once; later pages subtract from the count
        // their token carries. Every other read only needs to know whether more keys follow.
        let carried_remaining = token.as_ref().and_then(|t| t.remaining);
        let count_exactly =
            limit.is_some() && filter.is_everything() && carried_remaining.is_none();
        let mut items = Vec::new();
        let mut cursor = token.map(|t| t.start);
        let mut revision;
        let mut continue_token = None;
        let mut remaining = None;
        // Read in pages from the store until the page is full or the keys run out; selectors
        // may reject many stored objects, so a page can take several store reads.
        loop {
            let batch_limit = limit.map(|l| l.saturating_mul(2).max(64));
            let batch = if count_exactly {
                self.store
                    .list(&prefix, cursor.as_deref(), batch_limit)
                    .await
            } else {
                self.store
                    .list_uncounted(&prefix, cursor.as_deref(), batch_limit)
                    .await
            }
            .map_err(|e| ApiError::from_store(e, resource, ""))?;
            revision = batch.revision;
            let batch_len = batch.items.len();
            let mut exhausted = batch.remaining == 0;
            for (i, kv) in batch.items.iter().enumerate() {
                cursor = Some(kv.key.clone());
                if let Some(item) = select(&filter, kv)? {
                    items.push(item);
                }
                if limit.is_some_and(|l| items.len() >= l) {
                    let more = batch.remaining > 0 || i + 1 < batch_len;
                    if more {
                        let left = filter.is_everything().then(|| match carried_remaining {
                            // Objects created meanwhile can make the carried count run out
                            // early; a page with a successor still has at least one left.
                            Some(before) => before.saturating_sub(items.len()).max(1),
                            None => batch.remaining.saturating_add(batch_len - i - 1),
                        });
                        continue_token = Some(encode_continue(&ContinueToken {
                            revision: first_revision.unwrap_or(revision),
                            start: kv.key.clone(),
                            remaining: left,
                        }));
                        remaining = left;
                    }
                    exhausted = true;
                    break;
                }
            }
            if exhausted || batch_len == 0 {
                break;
            }
        }
        Ok(ListPage {
            items,
            resource_version: first_revision.unwrap_or(revision),
            continue_token,
            remaining,
        })
    }

    /// A list exactly at revision `wanted`: the current state with every later change under
    /// `prefix` undone, from the history the store keeps since its last compaction. The whole
    /// list comes in one page, as a server that does not page a list may answer.
    async fn list_exact<T>(
        &self,
        resource: &ResourceInfo,
        prefix: &str,
        wanted: Revision,
        filter: &Filter,
        mut select: impl FnMut(&Filter, &KeyValue) -> Result<Option<T>, ApiError>,
    ) -> Result<ListPage<T>, ApiError> {
        let store_error = |e| ApiError::from_store(e, resource, "");
        let listed = self
            .store
            .list(prefix, None, None)
            .await
            .map_err(store_error)?;
        let current = listed.revision;
        if wanted > current {
            return Err(ApiError::too_large_resource_version(wanted, current));
        }
        let mut state: std::collections::BTreeMap<String, KeyValue> = listed
            .items
            .into_iter()
            .map(|kv| (kv.key.clone(), kv))
            .collect();
        if wanted < current {
            let too_old =
                || ApiError::expired("The resourceVersion for the provided list is too old.");
            if wanted < self.store.compacted_revision().await.map_err(store_error)? {
                return Err(too_old());
            }
            // Every revision up to `current` is a change somewhere in the store, so watching
            // everything from `wanted` reaches `current` with the changes under `prefix` on the
            // way; those are undone newest first.
            let mut events = match self.store.watch("", wanted).await {
                Ok(events) => events,
                Err(StoreError::Compacted { .. }) => return Err(too_old()),
                Err(e) => return Err(store_error(e)),
            };
            let mut later = Vec::new();
            let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
            loop {
                let event = match tokio::time::timeout_at(deadline, events.next()).await {
                    Ok(Some(Ok(event))) => event,
                    Ok(Some(Err(e))) => return Err(store_error(e)),
                    Ok(None) | Err(_) => {
                        return Err(ApiError::internal(format!(
                            "the store's history from revision {wanted} ended before revision {current}"
                        )))
                    }
                };
                let revision = event.revision;
                if event.kv.key.starts_with(prefix) {
                    later.push(event);
                }
                if revision >= current {
                    break;
                }
            }
            for event in later.into_iter().rev() {
                if event.revision > current {
                    continue;
                }
                match event.prev {
                    Some(prev) => state.insert(prev.key.clone(), prev),
                    None => state.remove(&event.kv.key),
                };
            }
        }
        let mut items = Vec::new();
        for kv in state.values() {
            if let Some(item) = select(filter, kv)? {
                items.push(item);
            }
        }
        Ok(ListPage {
            items,
            resource_version: wanted,
            continue_token: None,
            remaining: None,
        })
    }

    async fn namespace_state(&self, namespace: &str) -> Result<Option<Value>, ApiError> {
        let ns = &skiff_api::kinds::namespace::V1;
        match self.get_stored(ns, None, namespace).await {
            Ok((obj, _)) => Ok(Some(obj)),
            Err(e) if e.code == 404 => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Creates an object. `namespace` comes from the URL and wins over an empty one in the body.
    pub async fn create(
        &self,
        resource: &ResourceInfo,
        namespace: Option<&str>,
        mut obj: Value,
        options: WriteOptions,
    ) -> Result<Written, ApiError> {
        if !obj.is_object() {
            return Err(ApiError::bad_request(
                "the object provided is not a JSON object",
            ));
        }
        check_type_meta(resource, &obj)?;
        obj["apiVersion"] = Value::String(resource.api_version());
        obj["kind"] = Value::String(resource.kind.to_string());
        if resource.namespaced {
            let ns = namespace.unwrap_or("default");
            match meta::namespace(&obj) {
                Some(body_ns) if body_ns != ns => {
                    return Err(ApiError::bad_request(
                        "the namespace of the provided object does not match the namespace sent on the request",
                    ))
                }
                _ => meta::set(&mut obj, "namespace", Value::String(ns.to_string())),
            }
        } else {
            meta::remove(&mut obj, "namespace");
        }
        let (mut obj, warnings) = admission::normalize(resource, obj, options.field_validation)?;

        if meta::name(&obj).is_empty() {
            if let Some(prefix) = obj
                .pointer("/metadata/generateName")
                .and_then(Value::as_str)
                .filter(|p| !p.is_empty())
            {
                let name = generate_name(prefix);
                meta::set(&mut obj, "name", Value::String(name));
            }
        }
        let name = meta::name(&obj).to_string();

        if resource.namespaced {
            let ns = meta::namespace(&obj).unwrap_or("default").to_string();
            match self.namespace_state(&ns).await? {
                None => return Err(ApiError::namespace_not_found(&ns)),
                Some(state) if meta::is_deleting(&state) => {
                    return Err(ApiError {
                        details: Some(json!({"name": name, "group": resource.group, "kind": resource.plural,
                            "causes": [{"reason": "NamespaceTerminating", "message": format!("namespace {ns} is being terminated"), "field": "metadata.namespace"}]})),
                        ..ApiError::forbidden(format!(
                            "{} \"{}\" is forbidden: unable to create new content in namespace {} because it is being terminated",
                            resource.qualified_plural(), name, ns
                        ))
                    })
                }
                Some(_) => {}
            }
        }

        // Identity and bookkeeping belong to the server, whatever the client sent.
        let md = meta::metadata_mut(&mut obj);
        md.insert(
            "uid".into(),
            Value::String(uuid::Uuid::new_v4().to_string()),
        );
        md.insert(
            "creationTimestamp".into(),
            Value::String(meta::now_rfc3339()),
        );
        md.remove("resourceVersion");
        md.remove("deletionTimestamp");
        md.remove("deletionGracePeriodSeconds");
        md.remove("selfLink");
        if resource.has_generation {
            md.insert("generation".into(), json!(1));
        } else {
            md.remove("generation");
        }
        if resource.has_subresource(Subresource::Status) {
            match hook(resource) {
                RegistryHook::Pod => {
                    let qos = qos_class(&obj);
                    obj["status"] = json!({"phase": "Pending", "qosClass": qos});
                }
                RegistryHook::Namespace | RegistryHook::Node => {}
                // Status belongs to controllers: a new object starts with an empty one.
                RegistryHook::Service | RegistryHook::Secret | RegistryHook::Generic => {
                    obj["status"] = json!({})
                }
            }
        }

        skiff_api::kinds::strategy_for(resource).prepare_for_write(&mut obj, None);
        if hook(resource) == RegistryHook::Pod {
            // Before the kind's defaults, which add the standard seconds only where these
            // left a taint untolerated.
            if let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) {
                let (not_ready, unreachable) = self.toleration_seconds;
                skiff_api::kinds::pod::add_default_tolerations(spec, not_ready, unreachable);
            }
        }
        self.admit_priority(resource, &mut obj).await?;
        admission::apply_defaults(resource, &mut obj);
        self.admit_limit_ranges(resource, &mut obj).await?;
        if hook(resource) == RegistryHook::Pod && self.token_signer().is_some() {
            self.admit_service_account(&mut obj).await?;
        }
        let namespace_name = meta::namespace(&obj).unwrap_or("").to_string();
        let mut attempt = crate::webhooks::AdmissionAttempt {
            resource,
            subresource: "",
            operation: "CREATE",
            namespace: &namespace_name,
            name: &name,
            object: Some(obj),
            old_object: None,
            dry_run: options.dry_run,
        };
        let mut warnings = warnings;
        warnings.extend(self.run_mutating_webhooks(&mut attempt).await?);
        let obj = attempt.object.take().unwrap_or_default();
        let storage = resources::storage_resource(resource);
        let mut errors = Vec::new();
        skiff_api::kinds::strategy_for(resource).validate_create_as_sent(&obj, &mut errors);
        let mut stored = admission::convert(obj, &storage.api_version())?;
        skiff_api::wire::fill_never_omitted(storage, &mut stored);
        self.prepare_create(storage, &mut stored);
        errors.extend(admission::validate_create(storage, &stored));
        if !errors.is_empty() {
            // Named by the stored kind, as Kubernetes names the internal type it validates.
            return Err(ApiError::invalid(storage, &name, &errors));
        }
        attempt.object = Some(self.present(resource, stored.clone())?);
        warnings.extend(self.run_validating_webhooks(&attempt).await?);
        self.admit_quota(storage, &stored, None, options.dry_run)
            .await?;
        if hook(storage) == RegistryHook::Service {
            self.allocate_service(resource, &name, &mut stored, None)
                .await?;
        }
        let allocates_addresses = hook(storage) == RegistryHook::Service;
        let release = |registry: &Registry, stored: Value| {
            let services = registry.services.clone();
            async move {
                if allocates_addresses {
                    services.release(&stored).await;
                }
            }
        };
        record_managed_fields(resource, None, &mut stored, None, &options);
        if options.dry_run {
            release(self, stored.clone()).await;
            return Ok(Written {
                object: self.present(resource, stored)?,
                warnings,
            });
        }
        let key = storage.key(meta::namespace(&stored), &name);
        let kv = match self.store.create(&key, Self::encode(&stored)?).await {
            Ok(kv) => kv,
            Err(e) => {
                release(self, stored).await;
                return Err(ApiError::from_store(e, resource, &name));
            }
        };
        let object = self.present(resource, self.decode(&kv)?)?;
        Ok(Written { object, warnings })
    }

    /// Gives a Service its cluster IP and node ports (the stored Services are read once, the
    /// first time an allocation is needed).
    async fn allocate_service(
        &self,
        resource: &ResourceInfo,
        name: &str,
        service: &mut Value,
        previous: Option<&Value>,
    ) -> Result<(), ApiError> {
        let existing = if self.services.needs_existing().await {
            let storage = resources::storage_resource(resource);
            let listed = self
                .store
                .list(&storage.key_prefix(), None, None)
                .await
                .map_err(|e| ApiError::from_store(e, resource, name))?;
            listed
                .items
                .iter()
                .filter_map(|kv| self.decode(kv).ok())
                .collect()
        } else {
            Vec::new()
        };
        self.services
            .allocate(service, previous, move || existing)
            .await
            .map_err(|errors| ApiError::invalid(resource, name, &errors))
    }

    /// Kind-specific preparation of a new object, after defaulting.
    fn prepare_create(&self, storage: &ResourceInfo, obj: &mut Value) {
        if hook(storage) == RegistryHook::Namespace {
            if obj.pointer("/status/phase").is_none() {
                obj["status"] = json!({"phase": "Active"});
            }
            // Every new namespace carries the `kubernetes` finalizer, which the namespace
            // lifecycle removes once the namespace is empty.
            if !obj.get("spec").is_some_and(Value::is_object) {
                obj["spec"] = json!({});
            }
            let finalizers = &mut obj["spec"]["finalizers"];
            match finalizers.as_array_mut() {
                Some(list) if list.iter().any(|f| f == "kubernetes") => {}
                Some(list) => list.push(json!("kubernetes")),
                None => *finalizers = json!(["kubernetes"]),
            }
        }
    }

    /// Replaces an object (PUT), or its status with `Subresource::Status`.
    pub async fn update(
        &self,
        resource: &ResourceInfo,
        namespace: Option<&str>,
        name: &str,
        obj: Value,
        subresource: Option<Subresource>,
        options: WriteOptions,
    ) -> Result<Written, ApiError> {
        check_type_meta(resource, &obj)?;
        let body_name = meta::name(&obj);
        if !body_name.is_empty() && body_name != name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({body_name}) does not match the name on the URL ({name})"
            )));
        }
        let required = meta::resource_version(&obj)
            .map(precondition_revision)
            .transpose()?
            .flatten();
        self.write_loop(
            resource,
            namespace,
            name,
            subresource,
            options,
            required,
            |_| Ok(obj.clone()),
        )
        .await
    }

    /// Read-modify-write of one object: `change` maps the current object (request version) to
    /// the desired one. Retries on conflicts unless the caller pinned a resourceVersion.
    #[allow(clippy::too_many_arguments)]
    pub async fn write_loop(
        &self,
        resource: &ResourceInfo,
        namespace: Option<&str>,
        name: &str,
        subresource: Option<Subresource>,
        options: WriteOptions,
        required_revision: Option<Revision>,
        change: impl Fn(Value) -> Result<Value, ApiError>,
    ) -> Result<Written, ApiError> {
        let storage = resources::storage_resource(resource);
        for _ in 0..MAX_CONFLICT_RETRIES {
            let (old, revision) = self.get_stored(storage, namespace, name).await?;
            if required_revision.is_some_and(|r| r != revision) {
                return Err(ApiError::conflict(resource, name));
            }
            let current = self.present(resource, old.clone())?;
            let desired = change(current)?;
            // A resourceVersion in the desired object is a precondition (PUT bodies and patches
            // that carry one).
            if let Some(rv) = meta::resource_version(&desired) {
                if precondition_revision(rv)?.is_some_and(|r| r != revision) {
                    return Err(ApiError::conflict(resource, name));
                }
            }
            let (new, warnings) =
                self.admit_update(resource, storage, &old, desired, subresource, options)?;
            let (mut new, warnings) = self
                .admit_update_by_webhooks(resource, storage, &old, new, subresource, options)
                .await
                .map(|(new, more)| (new, [warnings, more].concat()))?;
            if subresource.is_none() && strip_rv(&new) != strip_rv(&old) {
                // Boxed: charging a quota writes its status through this same loop.
                Box::pin(self.admit_quota(storage, &new, Some(&old), options.dry_run)).await?;
            }
            if hook(storage) == RegistryHook::Service && subresource.is_none() {
                self.allocate_service(resource, name, &mut new, Some(&old))
                    .await?;
            }
            record_managed_fields(resource, Some(&old), &mut new, subresource, &options);
            if strip_rv(&new) == strip_rv(&old) {
                return Ok(Written {
                    object: self.present(resource, old)?,
                    warnings,
                });
            }
            let is_service = hook(storage) == RegistryHook::Service;
            if options.dry_run {
                if is_service {
                    self.services.release_difference(&new, Some(&old)).await;
                }
                // What the write would store, at the version it would replace: nothing was
                // written, so the answer names the current resourceVersion.
                meta::set(
                    &mut new,
                    "resourceVersion",
                    Value::String(revision.to_string()),
                );
                return Ok(Written {
                    object: self.present(resource, new)?,
                    warnings,
                });
            }
            let key = storage.key(namespace, name);
            let finished = meta::is_deleting(&new) && !finalizers_pending(storage, &new);

            let result = if finished {
                self.store.delete(&key, Some(revision)).await
            } else {
                self.store
                    .update(&key, Self::encode(&new)?, Some(revision))
                    .await
            };
            if is_service {
                match (&result, finished) {
                    (Ok(_), true) => self.services.release(&new).await,
                    (Ok(_), false) => self.services.release_difference(&old, Some(&new)).await,
                    (Err(_), _) => self.services.release_difference(&new, Some(&old)).await,
                }
            }
            match result {
                Ok(kv) => {
                    let object = if finished {
                        let mut gone = new;
                        meta::set(
                            &mut gone,
                            "resourceVersion",
                            Value::String(kv.mod_revision.to_string()),
                        );
                        gone
                    } else {
                        self.decode(&kv)?
                    };
                    return Ok(Written {
                        object: self.present(resource, object)?,
                        warnings,
                    });
                }
                Err(StoreError::Conflict { .. }) if required_revision.is_none() => continue,
                Err(e) => return Err(ApiError::from_store(e, resource, name)),
            }
        }
        Err(ApiError::conflict(resource, name))
    }

    /// The admission webhooks on an update: mutating ones may patch the admitted object
    /// (which is then validated again), validating ones see the final object.
    async fn admit_update_by_webhooks(
        &self,
        resource: &ResourceInfo,
        storage: &ResourceInfo,
        old: &Value,
        new: Value,
        subresource: Option<Subresource>,
        options: WriteOptions,
    ) -> Result<(Value, Vec<String>), ApiError> {
        let name = meta::name(old).to_string();
        let namespace = meta::namespace(old).unwrap_or("").to_string();
        let presented = self.present(resource, new.clone())?;
        let mut attempt = crate::webhooks::AdmissionAttempt {
            resource,
            // Writes through `scale` reach here as updates of the object itself, recorded
            // under their subresource; admission matches them as `<resource>/scale`.
            subresource: subresource.map_or(
                options.recorded_subresource.unwrap_or(""),
                Subresource::name,
            ),
            operation: "UPDATE",
            namespace: &namespace,
            name: &name,
            object: Some(presented.clone()),
            old_object: Some(self.present(resource, old.clone())?),
            dry_run: options.dry_run,
        };
        let mut warnings = self.run_mutating_webhooks(&mut attempt).await?;
        let mut new = new;
        if attempt.object.as_ref() != Some(&presented) {
            new = admission::convert(
                attempt.object.clone().unwrap_or_default(),
                &storage.api_version(),
            )?;
            let errors = admission::validate_update(storage, &new, old);
            if !errors.is_empty() {
                return Err(ApiError::invalid(resource, &name, &errors));
            }
        }
        warnings.extend(self.run_validating_webhooks(&attempt).await?);
        Ok((new, warnings))
    }

    /// Admission of an update: merges server-owned fields from `old` (storage version) into
    /// `desired` (request version) and returns the new storage-version object.
    fn admit_update(
        &self,
        resource: &ResourceInfo,
        storage: &ResourceInfo,
        old: &Value,
        mut desired: Value,
        subresource: Option<Subresource>,
        options: WriteOptions,
    ) -> Result<(Value, Vec<String>), ApiError> {
        if !desired.is_object() {
            return Err(ApiError::bad_request(
                "the object provided is not a JSON object",
            ));
        }
        let name = meta::name(old).to_string();
        desired["apiVersion"] = Value::String(resource.api_version());
        desired["kind"] = Value::String(resource.kind.to_string());
        let (mut desired, warnings) =
            admission::normalize(resource, desired, options.field_validation)?;
        admission::apply_defaults(resource, &mut desired);
        let mut desired = admission::convert(desired, &storage.api_version())?;
        skiff_api::wire::fill_never_omitted(storage, &mut desired);
        // A server-side apply decided the ownership, whichever part of the object it wrote.
        let applied_entries = options
            .applied
            .then(|| desired.pointer("/metadata/managedFields").cloned())
            .flatten();

        let mut new = match subresource {
            // The apps kinds' status strategy keeps the new metadata (annotations included,
            // which is how the Deployment controller records revisions) but not spec or labels.
            Some(Subresource::Status) if matches!(storage.kind, "Deployment" | "ReplicaSet") => {
                let mut new = desired;
                match old.get("spec") {
                    Some(spec) => new["spec"] = spec.clone(),
                    None => {
                        if let Some(map) = new.as_object_mut() {
                            map.remove("spec");
                        }
                    }
                }
                match old.pointer("/metadata/labels") {
                    Some(labels) => meta::set(&mut new, "labels", labels.clone()),
                    None => meta::remove(&mut new, "labels"),
                }
                new
            }
            // Only `spec.ephemeralContainers` is taken from the request; everything else stays.
            Some(Subresource::EphemeralContainers) => {
                let mut new = old.clone();
                let containers = desired
                    .pointer("/spec/ephemeralContainers")
                    .filter(|list| !list.is_null())
                    .cloned();
                if let Some(spec) = new.get_mut("spec").and_then(Value::as_object_mut) {
                    match containers {
                        Some(list) => {
                            spec.insert("ephemeralContainers".to_string(), list);
                        }
                        None => {
                            spec.remove("ephemeralContainers");
                        }
                    }
                }
                new
            }
            // Approvers change only the conditions; everything else stays as stored.
            Some(Subresource::Approval) => {
                let mut new = old.clone();
                let conditions = desired
                    .pointer("/status/conditions")
                    .filter(|list| !list.is_null())
                    .cloned();
                if !new.get("status").is_some_and(Value::is_object) {
                    new["status"] = json!({});
                }
                match conditions {
                    Some(list) => new["status"]["conditions"] = list,
                    None => {
                        if let Some(status) = new["status"].as_object_mut() {
                            status.remove("conditions");
                        }
                    }
                }
                new
            }
            Some(Subresource::Status) => {
                let mut new = old.clone();
                match desired.get("status") {
                    Some(status) => new["status"] = status.clone(),
                    None => {
                        if let Some(map) = new.as_object_mut() {
                            map.remove("status");
                        }
                    }
                }
                new
            }
            _ => {
                let mut new = desired;
                if storage.has_subresource(Subresource::Status) {
                    match old.get("status") {
                        Some(status) => new["status"] = status.clone(),
                        None => {
                            if let Some(map) = new.as_object_mut() {
                                map.remove("status");
                            }
                        }
                    }
                }
                new
            }
        };
        if let Some(entries) = applied_entries {
            meta::set(&mut new, "managedFields", entries);
        }
        // Server-owned metadata always comes from the stored object.
        let old_md = old.get("metadata").cloned().unwrap_or_else(|| json!({}));
        let md = meta::metadata_mut(&mut new);
        for field in [
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
            "name",
            "namespace",
        ] {
            match old_md.get(field) {
                Some(v) => md.insert(field.to_string(), v.clone()),
                None => md.remove(field),
            };
        }
        md.remove("resourceVersion");
        if storage.has_generation && spec_part(&new) != spec_part(old) {
            let generation = old_md
                .get("generation")
                .and_then(Value::as_i64)
                .unwrap_or(0);
            meta::set(&mut new, "generation", json!(generation.saturating_add(1)));
        }
        skiff_api::kinds::strategy_for(storage).prepare_for_write(&mut new, Some(old));
        if meta::is_deleting(old) {
            // Once deletion started, finalizers may only be removed.
            let before = meta::finalizers(old);
            let added: Vec<String> = meta::finalizers(&new)
                .into_iter()
                .filter(|f| !before.contains(f))
                .collect();
            if !added.is_empty() {
                return Err(ApiError::invalid(
                    resource,
                    &name,
                    &[skiff_api::errors::FieldError::forbidden(
                        "metadata.finalizers",
                        format!("no new finalizers can be added if the object is being deleted, found new finalizers []string{{{}}}",
                            added.iter().map(|f| format!("{f:?}")).collect::<Vec<_>>().join(", ")),
                    )],
                ));
            }
        }
        let errors = if subresource == Some(Subresource::EphemeralContainers) {
            skiff_api::validation::validate_ephemeral_containers_update(&new, old)
        } else {
            admission::validate_update(storage, &new, old)
        };
        if !errors.is_empty() {
            return Err(ApiError::invalid(resource, &name, &errors));
        }
        Ok((new, warnings))
    }

    /// Deletes an object: at once, or by marking it when finalizers or a graceful pod shutdown
    /// must happen first.
    pub async fn delete(
        &self,
        resource: &ResourceInfo,
        namespace: Option<&str>,
        name: &str,
        options: &DeleteOptions,
    ) -> Result<Deleted, ApiError> {
        let storage = resources::storage_resource(resource);
        if hook(storage) == RegistryHook::Namespace
            && matches!(name, "default" | "kube-system" | "kube-public")
        {
            return Err(ApiError {
                details: Some(json!({"name": name, "kind": "namespaces"})),
                ..ApiError::forbidden(format!(
                    "namespaces \"{name}\" is forbidden: this namespace may not be deleted"
                ))
            });
        }
        for _ in 0..MAX_CONFLICT_RETRIES {
            let (old, revision) = self.get_stored(storage, namespace, name).await?;
            if let Some(uid) = &options.precondition_uid {
                if uid != meta::uid(&old) {
                    return Err(ApiError::conflict_message(resource, name, format!(
                        "Precondition failed: UID in precondition: {uid}, UID in object meta: {}", meta::uid(&old))));
                }
            }
            if let Some(rv) = &options.precondition_resource_version {
                if parse_resource_version(rv)? != revision {
                    return Err(ApiError::conflict_message(resource, name, format!(
                        "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {revision}")));
                }
            }
            let old_namespace = meta::namespace(&old).unwrap_or("").to_string();
            let attempt = crate::webhooks::AdmissionAttempt {
                resource,
                subresource: "",
                operation: "DELETE",
                namespace: &old_namespace,
                name,
                object: None,
                old_object: Some(self.present(resource, old.clone())?),
                dry_run: options.dry_run,
            };
            self.run_validating_webhooks(&attempt).await?;
            let grace = self.grace_period(storage, &old, options);
            // Foreground and orphan deletion are finalizers the garbage collector honours.
            let default_policy = skiff_api::kinds::strategy_for(storage)
                .default_propagation()
                .map(|(policy, _)| policy);
            let gc_finalizer = match options.propagation_policy.as_deref().or(default_policy) {
                Some("Foreground") => Some(("foregroundDeletion", "orphan")),
                Some("Orphan") => Some(("orphan", "foregroundDeletion")),
                _ => None,
            };
            // The object as it will be marked: with the collector's finalizer, if any.
            let mut marked = old.clone();
            if let Some((add, remove)) = gc_finalizer {
                if !meta::is_deleting(&old) {
                    let mut finalizers = meta::finalizers(&old);
                    finalizers.retain(|f| f != remove);
                    if !finalizers.iter().any(|f| f == add) {
                        finalizers.push(add.to_string());
                    }
                    meta::set(&mut marked, "finalizers", json!(finalizers));
                }
            }
            if let Some(finalizer) = skiff_api::kinds::strategy_for(storage).deletion_finalizer() {
                let mut finalizers = meta::finalizers(&marked);
                if !meta::is_deleting(&old) && !finalizers.iter().any(|f| f == finalizer) {
                    finalizers.push(finalizer.to_string());
                    meta::set(&mut marked, "finalizers", json!(finalizers));
                }
            }
            let pending = finalizers_pending(storage, &marked) || grace > 0;
            if !pending {
                if options.dry_run {
                    return Ok(Deleted::Gone(self.present(resource, old)?));
                }
                match self
                    .store
                    .delete(&storage.key(namespace, name), Some(revision))
                    .await
                {
                    Ok(kv) => {
                        if hook(storage) == RegistryHook::Service {
                            self.services.release(&old).await;
                        }
                        let mut gone = old;
                        meta::set(
                            &mut gone,
                            "resourceVersion",
                            Value::String(kv.mod_revision.to_string()),
                        );
                        return Ok(Deleted::Gone(self.present(resource, gone)?));
                    }
                    Err(StoreError::Conflict { .. }) => continue,
                    Err(e) => return Err(ApiError::from_store(e, resource, name)),
                }
            }
            // Graceful: mark, and let the owner of the shutdown (node agent, finalizer holder)
            // finish the deletion.
            let mut new = marked;
            let already = meta::is_deleting(&old);
            let current_grace = old
                .pointer("/metadata/deletionGracePeriodSeconds")
                .and_then(Value::as_i64);
            if !already || current_grace.is_some_and(|g| grace < g) {
                let when = deletion_deadline(jiff::Timestamp::now(), grace);
                meta::set(
                    &mut new,
                    "deletionTimestamp",
                    Value::String(meta::format_time(when)),
                );
                meta::set(&mut new, "deletionGracePeriodSeconds", json!(grace));
                if storage.has_generation || old.pointer("/metadata/generation").is_some() {
                    let g = old
                        .pointer("/metadata/generation")
                        .and_then(Value::as_i64)
                        .unwrap_or(0);
                    meta::set(&mut new, "generation", json!(g.saturating_add(1)));
                }
            }
            if hook(storage) == RegistryHook::Namespace {
                new["status"]["phase"] = json!("Terminating");
            }
            if new == old {
                return Ok(Deleted::Pending(self.present(resource, old)?));
            }
            if options.dry_run {
                return Ok(Deleted::Pending(self.present(resource, new)?));
            }
            match self
                .store
                .update(
                    &storage.key(namespace, name),
                    Self::encode(&new)?,
                    Some(revision),
                )
                .await
            {
                Ok(kv) => return Ok(Deleted::Pending(self.present(resource, self.decode(&kv)?)?)),
                Err(StoreError::Conflict { .. }) => continue,
                Err(e) => return Err(ApiError::from_store(e, resource, name)),
            }
        }
        Err(ApiError::conflict(resource, name))
    }

    /// The grace period a deletion gets: only pods that a node runs shut down gracefully.
    fn grace_period(&self, storage: &ResourceInfo, obj: &Value, options: &DeleteOptions) -> i64 {
        if hook(storage) != RegistryHook::Pod {
            return 0;
        }
        let on_node = obj
            .pointer("/spec/nodeName")
            .and_then(Value::as_str)
            .is_some_and(|n| !n.is_empty());
        let terminal = matches!(
            obj.pointer("/status/phase").and_then(Value::as_str),
            Some("Succeeded") | Some("Failed")
        );
        if !on_node || terminal {
            return 0;
        }
        let grace = options
            .grace_period_seconds
            .or_else(|| {
                obj.pointer("/spec/terminationGracePeriodSeconds")
                    .and_then(Value::as_i64)
            })
            .unwrap_or(30);
        // Kubernetes treats a negative grace period as one second on the delete path.
        if grace < 0 {
            1
        } else {
            grace
        }
    }

    /// A read-modify-write that only the control plane itself makes (binding a pod, releasing
    /// a namespace): it bypasses admission, which exists to protect objects from clients, and
    /// retries on conflicts. Deletes the object when the change leaves it deleting with no
    /// finalizer pending.
    pub async fn system_update(
        &self,
        resource: &ResourceInfo,
        namespace: Option<&str>,
        name: &str,
        change: impl Fn(Value) -> Result<Value, ApiError>,
    ) -> Result<Value, ApiError> {
        let storage = resources::storage_resource(resource);
        let key = storage.key(namespace, name);
        for _ in 0..MAX_CONFLICT_RETRIES {
            let (old, revision) = self.get_stored(storage, namespace, name).await?;
            let mut new = change(old.clone())?;
            meta::remove(&mut new, "resourceVersion");
            if strip_rv(&new) == strip_rv(&old) {
                return self.present(resource, old);
            }
            let finished = meta::is_deleting(&new) && !finalizers_pending(storage, &new);
            let result = if finished {
                self.store.delete(&key, Some(revision)).await
            } else {
                self.store
                    .update(&key, Self::encode(&new)?, Some(revision))
                    .await
            };
            match result {
                Ok(kv) => {
                    meta::set(
                        &mut new,
                        "resourceVersion",
                        Value::String(kv.mod_revision.to_string()),
                    );
                    return self.present(resource, new);
                }
                Err(StoreError::Conflict { .. }) => continue,
                Err(e) => return Err(ApiError::from_store(e, resource, name)),
            }
        }
        Err(ApiError::conflict(resource, name))
    }

    /// Assigns a pod to a node (the `binding` subresource): sets `spec.nodeName` once and the
    /// `PodScheduled` condition.
    pub async fn bind_pod(
        &self,
        namespace: &str,
        name: &str,
        node: &str,
    ) -> Result<Value, ApiError> {
        let resource = &skiff_api::kinds::pod::V1;
        let now = meta::now_rfc3339();
        self.system_update(resource, Some(namespace), name, |mut pod| {
            if meta::is_deleting(&pod) {
                return Err(ApiError::conflict_message(
                    resource,
                    name,
                    format!("pod {name} is being deleted, cannot be assigned to a host"),
                ));
            }
            if let Some(existing) = pod
                .pointer("/spec/nodeName")
                .and_then(Value::as_str)
                .filter(|n| !n.is_empty())
            {
                return Err(ApiError::conflict_message(
                    resource,
                    name,
                    format!("pod {name} is already assigned to node \"{existing}\""),
                ));
            }
            // One write: nobody may see the pod bound but not yet marked scheduled.
            pod["spec"]["nodeName"] = json!(node);
            let mut conditions: Vec<Value> = pod["status"]["conditions"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .filter(|c| c["type"] != "PodScheduled")
                .collect();
            conditions.push(json!({
                "type": "PodScheduled", "status": "True",
                "lastProbeTime": null, "lastTransitionTime": now,
            }));
            pod["status"]["conditions"] = json!(conditions);
            Ok(pod)
        })
        .await
    }

    /// Watches a resource from a revision (or, without one, from a synthetic listing of the
    /// current state). Ends with an `ERROR` event when the revision is too old.
    pub async fn watch(
        &self,
        resource: &'static ResourceInfo,
        namespace: Option<&str>,
        options: &ListOptions,
    ) -> Result<BoxStream<'static, WatchEvent>, ApiError> {
        let filter = Filter::parse(
            resource,
            options.label_selector.as_deref(),
            options.field_selector.as_deref(),
        )?;
        let prefix = resource.namespace_prefix(namespace);
        let start = options
            .resource_version
            .as_deref()
            .filter(|rv| !rv.is_empty() && *rv != "0")
            .map(parse_resource_version)
            .transpose()?;
        let mut initial = VecDeque::new();
        // Without sendInitialEvents, a watch from no resourceVersion starts with the state.
        let send_initial = options.send_initial_events.unwrap_or(start.is_none());
        let after = match start {
            Some(rv) if !send_initial => rv,
            None if !send_initial => self
                .store
                .current_revision()
                .await
                .map_err(|e| ApiError::from_store(e, resource, ""))?,
            _ => {
                let listed = self
                    .store
                    .list(&prefix, None, None)
                    .await
                    .map_err(|e| ApiError::from_store(e, resource, ""))?;
                let storage = resources::storage_resource(resource);
                for kv in &listed.items {
                    let obj = self.decode(kv)?;
                    if filter.matches(storage, &obj) {
                        initial.push_back(WatchEvent {
                            event_type: "ADDED",
                            object: self.present(resource, obj)?,
                        });
                    }
                }
                if let Some(wanted) = start.filter(|rv| *rv > listed.revision) {
                    return Err(ApiError::too_large_resource_version(
                        wanted,
                        listed.revision,
                    ));
                }
                if options.send_initial_events == Some(true) && options.allow_bookmarks {
                    initial.push_back(WatchEvent {
                        event_type: "BOOKMARK",
                        object: crate::options::initial_events_end_bookmark(
                            resource.kind,
                            &resource.api_version(),
                            listed.revision,
                        ),
                    });
                }
                listed.revision
            }
        };
        let events = match self.store.watch(&prefix, after).await {
            Ok(events) => events,
            Err(StoreError::Compacted {
                requested,
                compacted,
            }) => {
                let err = ApiError::expired(format!(
                    "too old resource version: {requested} ({compacted})"
                ));
                return Ok(futures::stream::iter([WatchEvent {
                    event_type: "ERROR",
                    object: err.to_status(),
                }])
                .boxed());
            }
            Err(e) => return Err(ApiError::from_store(e, resource, "")),
        };
        let registry = self.clone();
        let storage = resources::storage_resource(resource);
        let bookmarks = options.allow_bookmarks;
        let state = WatchState {
            registry,
            resource,
            storage,
            filter,
            events,
            initial,
            last_revision: after,
            bookmark_every: Duration::from_secs(30),
            bookmarks,
            done: false,
        };
        let stream = futures::stream::unfold(state, |mut st| async move {
            let ev = st.next().await?;
            Some((ev, st))
        });
        Ok(match options.timeout {
            Some(t) => stream.take_until(tokio::time::sleep(t)).boxed(),
            None => stream.boxed(),
        })
    }
}

/// Refuses a request body whose `kind` or `apiVersion` names another type than the endpoint
/// serves, with the messages of Kubernetes' decoder. Both may be left out.
/// Records the write in `managedFields` as an update by the options' manager (a server-side
/// apply has recorded itself already). The entries start from the ones the request carries, or
/// the stored object's when it carries none; a create starts from none.
fn record_managed_fields(
    resource: &ResourceInfo,
    old: Option<&Value>,
    new: &mut Value,
    subresource: Option<Subresource>,
    options: &WriteOptions,
) {
    let manager = options.field_manager;
    if options.applied || manager.as_str().is_empty() {
        return;
    }
    let base = match old {
        None => Vec::new(),
        Some(_) if new.pointer("/metadata/managedFields").is_some() => {
            managed_fields::entries_of(new)
        }
        Some(old) => managed_fields::entries_of(old),
    };
    let recorded_subresource = options.recorded_subresource.unwrap_or(match subresource {
        Some(Subresource::Status) => "status",
        Some(Subresource::EphemeralContainers) => "ephemeralcontainers",
        _ => "",
    });
    let api_version = resource.api_version();
    let now = meta::now_rfc3339();
    let entries = managed_fields::record_update(
        resource,
        base,
        old,
        new,
        &managed_fields::Writer {
            manager: manager.as_str(),
            api_version: &api_version,
            subresource: recorded_subresource,
            now: &now,
        },
    );
    managed_fields::set_entries(new, entries);
}

fn check_type_meta(resource: &ResourceInfo, obj: &Value) -> Result<(), ApiError> {
    let expected_version = resource.api_version();
    let kind = obj.get("kind").and_then(Value::as_str).unwrap_or("");
    let api_version = obj
        .get("apiVersion")
        .and_then(Value::as_str)
        .filter(|v| !v.is_empty())
        .unwrap_or(&expected_version);
    let kind = if kind.is_empty() { resource.kind } else { kind };
    if kind == resource.kind && api_version == expected_version {
        return Ok(());
    }
    let registered = resources::all().any(|r| r.kind == kind && r.api_version() == api_version);
    if kind == resource.kind && registered {
        return Err(ApiError::bad_request(format!(
            "the API version in the data ({api_version}) does not match the expected API version ({expected_version})"
        )));
    }
    let version = api_version.rsplit('/').next().unwrap_or(api_version);
    let cause = if registered {
        // Kubernetes decodes the other kind, then fails to convert it to the internal type of
        // the endpoint, which lives in the package named after the group's first label.
        let package = match resource.group.split('.').next() {
            Some("") | None => "core",
            Some(first) => first,
        };
        format!(
            "converting ({version}.{kind}) to ({package}.{}): unknown conversion",
            resource.kind
        )
    } else {
        format!(
            "no kind \"{kind}\" is registered for version \"{api_version}\" in scheme \"pkg/api/legacyscheme/scheme.go:30\""
        )
    };
    Err(ApiError::bad_request(format!(
        "{kind} in version \"{version}\" cannot be handled as a {}: {cause}",
        resource.kind
    )))
}

/// Whether something must still happen before a deleted object may go: metadata finalizers, or
/// for namespaces the `spec.finalizers` the namespace lifecycle empties.
fn finalizers_pending(storage: &ResourceInfo, obj: &Value) -> bool {
    !meta::finalizers(obj).is_empty()
        || (hook(storage) == RegistryHook::Namespace
            && obj
                .pointer("/spec/finalizers")
                .and_then(Value::as_array)
                .is_some_and(|f| !f.is_empty()))
}

/// The object without its resourceVersion, for no-op detection.
fn strip_rv(obj: &Value) -> Value {
    let mut copy = obj.clone();
    meta::remove(&mut copy, "resourceVersion");
    copy
}

/// The state of one watch: store events turned into API events, with selector transitions.
struct WatchState {
    registry: Registry,
    resource: &'static ResourceInfo,
    storage: &'static ResourceInfo,
    filter: Filter,
    events: BoxStream<'static, Result<skiff_store::WatchEvent, StoreError>>,
    initial: VecDeque<WatchEvent>,
    last_revision: Revision,
    bookmark_every: Duration,
    bookmarks: bool,
    done: bool,
}

impl WatchState {
    async fn next(&mut self) -> Option<WatchEvent> {
        if let Some(ev) = self.initial.pop_front() {
            return Some(ev);
        }
        loop {
            if self.done {
                return None;
            }
            let item = if self.bookmarks {
                match tokio::time::timeout(self.bookmark_every, self.events.next()).await {
                    Ok(item) => item,
                    Err(_) => return Some(self.bookmark()),
                }
            } else {
                self.events.next().await
            };
            let event = match item {
                None => return None,
                Some(Err(_)) => {
                    // A watcher that fell behind is closed; the client resumes from the last
                    // revision it saw, which the store still holds.
                    self.done = true;
                    return None;
                }
                Some(Ok(ev)) => ev,
            };
            self.last_revision = event.revision;
            match self.translate(&event) {
                Ok(Some(ev)) => return Some(ev),
                Ok(None) => continue,
                Err(err) => {
                    self.done = true;
                    return Some(WatchEvent {
                        event_type: "ERROR",
                        object: err.to_status(),
                    });
                }
            }
        }
    }

    fn bookmark(&self) -> WatchEvent {
        WatchEvent {
            event_type: "BOOKMARK",
            object: json!({
                "kind": self.resource.kind,
                "apiVersion": self.resource.api_version(),
                "metadata": {"resourceVersion": self.last_revision.to_string()},
            }),
        }
    }

    fn translate(&self, event: &skiff_store::WatchEvent) -> Result<Option<WatchEvent>, ApiError> {
        let obj = self.registry.decode(&event.kv)?;
        let now_matches = self.filter.matches(self.storage, &obj);
        let before_matches = match &event.prev {
            Some(prev) => self
                .filter
                .matches(self.storage, &self.registry.decode(prev)?),
            None => false,
        };
        let event_type = match event.kind {
            EventKind::Created if now_matches => "ADDED",
            EventKind::Updated if now_matches && before_matches => "MODIFIED",
            EventKind::Updated if now_matches => "ADDED",
            EventKind::Updated if before_matches => "DELETED",
            EventKind::Deleted if before_matches || now_matches => "DELETED",
            _ => return Ok(None),
        };
        Ok(Some(WatchEvent {
            event_type,
            object: self.registry.present(self.resource, obj)?,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qos_follows_requests_and_limits() {
        let best = json!({"spec":{"containers":[{"name":"a"}]}});
        assert_eq!(qos_class(&best), "BestEffort");
        let guaranteed = json!({"spec":{"containers":[{"name":"a","resources":{"limits":{"cpu":"1","memory":"1Gi"}}}]}});
        assert_eq!(qos_class(&guaranteed), "Guaranteed");
        let burst =
            json!({"spec":{"containers":[{"name":"a","resources":{"requests":{"cpu":"1"}}}]}});
        assert_eq!(qos_class(&burst), "Burstable");
    }

    #[test]
    fn continue_tokens_round_trip_and_reject_garbage() {
        for remaining in [None, Some(0), Some(17)] {
            let token = ContinueToken {
                revision: 42,
                start: "/registry/core/pods/default/a".to_string(),
                remaining,
            };
            assert_eq!(decode_continue(&encode_continue(&token)).unwrap(), token);
        }
        assert_eq!(decode_continue("%%%").unwrap_err().code, 400);
        use base64::Engine;
        let encode = |raw: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw);
        let before_counts = encode(r#"{"v":"meta.k8s.io/v1","rv":7,"start":"/k"}"#);
        assert_eq!(decode_continue(&before_counts).unwrap().remaining, None);
        let negative = encode(r#"{"v":"meta.k8s.io/v1","rv":7,"start":"/k","remaining":-1}"#);
        assert_eq!(decode_continue(&negative).unwrap_err().code, 400);
    }

    #[test]
    fn bodies_must_name_the_endpoint_type() {
        let configmaps = &skiff_api::kinds::config_map::V1;
        let deployments = &skiff_api::kinds::deployment::V1;
        let message = |resource: &ResourceInfo, body: Value| {
            check_type_meta(resource, &body).map_err(|e| (e.code, e.message))
        };
        let cases: &[(&ResourceInfo, Value, Result<(), &str>)] = &[
            (configmaps, json!({"metadata": {"name": "a"}}), Ok(())),
            (
                configmaps,
                json!({"apiVersion": "v1", "kind": "ConfigMap"}),
                Ok(()),
            ),
            (deployments, json!({"kind": "Deployment"}), Ok(())),
            (
                configmaps,
                json!({"apiVersion": "v1", "kind": "Widget"}),
                Err(
                    r#"Widget in version "v1" cannot be handled as a ConfigMap: no kind "Widget" is registered for version "v1" in scheme "pkg/api/legacyscheme/scheme.go:30""#,
                ),
            ),
            (
                configmaps,
                json!({"apiVersion": "v1", "kind": "Secret"}),
                Err(
                    r#"Secret in version "v1" cannot be handled as a ConfigMap: converting (v1.Secret) to (core.ConfigMap): unknown conversion"#,
                ),
            ),
            (
                deployments,
                json!({"apiVersion": "apps/v1", "kind": "ReplicaSet"}),
                Err(
                    r#"ReplicaSet in version "v1" cannot be handled as a Deployment: converting (v1.ReplicaSet) to (apps.Deployment): unknown conversion"#,
                ),
            ),
            (
                deployments,
                json!({"apiVersion": "apps/v9", "kind": "Deployment"}),
                Err(
                    r#"Deployment in version "v9" cannot be handled as a Deployment: no kind "Deployment" is registered for version "apps/v9" in scheme "pkg/api/legacyscheme/scheme.go:30""#,
                ),
            ),
        ];
        for (resource, body, want) in cases {
            let want = want.map_err(|m| (400, m.to_string()));
            assert_eq!(message(resource, body.clone()), want, "{body}");
        }
        let hpa_v2 = &skiff_api::kinds::horizontal_pod_autoscaler::V2;
        assert_eq!(
            message(hpa_v2, json!({"apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler"})),
            Err((400, "the API version in the data (autoscaling/v1) does not match the expected API version (autoscaling/v2)".to_string()))
        );
    }

    #[test]
    fn zero_or_empty_resource_versions_make_writes_unconditional() {
        assert_eq!(precondition_revision(""), Ok(None));
        assert_eq!(precondition_revision("0"), Ok(None));
        assert_eq!(precondition_revision("17"), Ok(Some(17)));
        assert_eq!(precondition_revision("x").unwrap_err().code, 400);
    }

    #[test]
    fn generated_names_use_the_kubernetes_alphabet() {
        let n = generate_name("web-");
        assert_eq!(n.len(), 9);
        assert!(n[4..].bytes().all(|b| NAME_ALPHABET.contains(&b)));
    }

    #[test]
    fn generated_names_cut_long_prefixes_on_a_character_boundary() {
        // 57 ASCII bytes and a two-byte character spanning bytes 57 and 58.
        let prefix = format!("{}é-tail", "a".repeat(57));
        let name = generate_name(&prefix);
        assert_eq!(&name[..57], "a".repeat(57));
        assert_eq!(name.len(), 57 + 5, "the split character is dropped whole");
        let ascii = "b".repeat(80);
        assert_eq!(
            generate_name(&ascii).len(),
            MAX_GENERATED_NAME_PREFIX_BYTES + 5
        );
    }

    #[test]
    fn deletion_deadlines_saturate_instead_of_overflowing() {
        let now = jiff::Timestamp::from_second(1_700_000_000).unwrap();
        assert_eq!(
            deletion_deadline(now, 30),
            jiff::Timestamp::from_second(1_700_000_030).unwrap()
        );
        assert_eq!(
            deletion_deadline(now, 999_999_999_999),
            jiff::Timestamp::MAX
        );
        assert_eq!(deletion_deadline(now, i64::MAX), jiff::Timestamp::MAX);
        assert_eq!(deletion_deadline(now, i64::MIN), jiff::Timestamp::MIN);
    }
}
