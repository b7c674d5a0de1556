//! The one API every controller, the scheduler and node agents use to read and write cluster
//! state.
//!
//! [`Client`] is object-safe and speaks JSON values, so the same controller code runs against
//! the in-process registry (`skiff_apiserver::LocalClient`, same admission as HTTP requests)
//! or a remote server over HTTPS ([`RemoteClient`]). [`Api`] adds typed access for any `k8s-openapi` resource (and CloneSets).

pub mod logs;
pub mod metrics;
pub mod remote;
pub mod streams;

use std::marker::PhantomData;
use std::sync::Arc;

use async_trait::async_trait;
use futures::stream::BoxStream;
use k8s_openapi::serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use skiff_api::patch::PatchType;
use skiff_api::resources::{self, ResourceInfo, Subresource};
use skiff_auth::user::UserInfo;

pub use remote::{Credentials, RemoteClient, RemoteConfig};
pub use skiff_api::request_options::{DeleteOptions, ListOptions};
pub use skiff_api::status::ApiError;

/// Why a client call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The API answered with an error `Status`.
    #[error("{0}")]
    Api(ApiError),
    /// The object could not be converted to or from its typed form.
    #[error("object does not match its type: {0}")]
    Decode(String),
    /// The resource is not served.
    #[error("resource {0} is not served")]
    UnknownResource(String),
    /// The server could not be reached, or the connection failed before an answer.
    #[error("transport: {0}")]
    Transport(String),
    /// The client's configuration (server URL, CA, credentials, kubeconfig) is unusable.
    #[error("client configuration: {0}")]
    Config(String),
}

impl ClientError {
    /// The HTTP status code of an API error (0 for other errors).
    pub fn code(&self) -> u16 {
        match self {
            ClientError::Api(e) => e.code,
            _ => 0,
        }
    }

    /// The error as client-go words it: an API error's `Status` message alone, which is what
    /// Kubernetes' controllers put in their events (`Error creating: pods is forbidden: ...`).
    pub fn message(&self) -> String {
        match self {
            ClientError::Api(e) => e.message.clone(),
            other => other.to_string(),
        }
    }

    /// Whether the object was not found.
    pub fn is_not_found(&self) -> bool {
        self.code() == 404
    }

    /// Whether the write lost a race (409 Conflict) or the object already exists.
    pub fn is_conflict(&self) -> bool {
        self.code() == 409
    }
}

impl From<ApiError> for ClientError {
    fn from(e: ApiError) -> Self {
        ClientError::Api(e)
    }
}

/// One watch event.
#[derive(Clone, Debug, PartialEq)]
pub struct WatchEvent {
    /// `ADDED`, `MODIFIED`, `DELETED`, `BOOKMARK` or `ERROR`.
    pub event_type: &'static str,
    /// The object (a `Status` for `ERROR`).
    pub object: Value,
}

/// One page of a list.
#[derive(Clone, Debug)]
pub struct ObjectList {
    /// The items.
    pub items: Vec<Value>,
    /// The revision the list reflects; watch from it to miss nothing.
    pub resource_version: String,
    /// The continue token for the next page, if any.
    pub continue_token: Option<String>,
}

/// Where an object lives: its resource and namespace.
#[derive(Clone, Copy, Debug)]
pub struct Scope<'a> {
    /// The resource, in the version the caller speaks.
    pub resource: &'static ResourceInfo,
    /// The namespace, or `None` for cluster-scoped resources and all-namespace lists/watches.
    pub namespace: Option<&'a str>,
}

/// The untyped API every component uses.
#[async_trait]
pub trait Client: Send + Sync + 'static {
    /// Reads one object.
    async fn get(&self, scope: Scope<'_>, name: &str) -> Result<Value, ClientError>;
    /// Lists objects.
    async fn list(
        &self,
        scope: Scope<'_>,
        options: &ListOptions,
    ) -> Result<ObjectList, ClientError>;
    /// Watches objects from `options.resource_version` (or from a synthetic initial listing).
    async fn watch(
        &self,
        scope: Scope<'_>,
        options: &ListOptions,
    ) -> Result<BoxStream<'static, WatchEvent>, ClientError>;
    /// Creates an object.
    async fn create(&self, scope: Scope<'_>, object: Value) -> Result<Value, ClientError>;
    /// Replaces an object (its `metadata.resourceVersion`, if set, is a precondition).
    async fn update(&self, scope: Scope<'_>, object: Value) -> Result<Value, ClientError>;
    /// Replaces an object's status (its `metadata.resourceVersion`, if set, is a precondition).
    async fn update_status(&self, scope: Scope<'_>, object: Value) -> Result<Value, ClientError>;
    /// Patches an object, or its status with `status: true`.
    async fn patch(
        &self,
        scope: Scope<'_>,
        name: &str,
        patch_type: PatchType,
        patch: Value,
        status: bool,
    ) -> Result<Value, ClientError>;
    /// Deletes an object. Returns the object if its deletion is still pending (finalizers or a
    /// graceful shutdown), `None` if it is gone.
    async fn delete(
        &self,
        scope: Scope<'_>,
        name: &str,
        options: &DeleteOptions,
    ) -> Result<Option<Value>, ClientError>;
    /// Binds a pod to a node (`pods/NAME/binding`); fails with 409 if it is already bound.
    async fn bind_pod(&self, namespace: &str, name: &str, node: &str) -> Result<(), ClientError>;

    /// Requests a token for the ServiceAccount `name` in `namespace` (`serviceaccounts/NAME/token`,
    /// an `authentication.k8s.io/v1` TokenRequest), as the kubelet does for projected token
    /// volumes. Clients that cannot issue tokens refuse.
    async fn create_token(
        &self,
        namespace: &str,
        name: &str,
        request: Value,
    ) -> Result<Value, ClientError> {
        let _ = (namespace, name, request);
        Err(ClientError::UnknownResource(
            "serviceaccounts/token".to_string(),
        ))
    }

    /// The same client acting as `user`, every call authorized as an HTTP request from that
    /// user would be, so in-process controllers hold exactly the rights RBAC gives them.
    /// `None` from clients that cannot act for someone else (they keep their own identity).
    fn as_user(&self, user: UserInfo) -> Option<Arc<dyn Client>> {
        let _ = user;
        None
    }

    /// Replaces a CertificateSigningRequest's conditions through its `approval` subresource,
    /// as approvers decide requests; clients without it answer that it is not served.
    async fn update_approval(&self, scope: Scope<'_>, object: Value) -> Result<Value, ClientError> {
        let _ = object;
        Err(ClientError::UnknownResource(format!(
            "{}/approval",
            scope.resource.plural
        )))
    }

    /// Reads a workload's `autoscaling/v1` Scale (`.../NAME/scale`), so autoscalers can size
    /// any scalable kind without knowing it.
    async fn get_scale(&self, scope: Scope<'_>, name: &str) -> Result<Value, ClientError> {
        require_scale(scope.resource)?;
        let object = self.get(scope, name).await?;
        Ok(skiff_api::scale::scale_of(&object))
    }

    /// Writes a Scale's `spec.replicas` to its workload; the Scale's `resourceVersion`, if set,
    /// is a precondition, as for `PUT .../scale`.
    async fn update_scale(&self, scope: Scope<'_>, scale: Value) -> Result<Value, ClientError> {
        require_scale(scope.resource)?;
        write_scale(self, scope, scale).await
    }
}

/// Writes a Scale's `spec.replicas` to its workload through `client`'s get and update: what
/// `PUT .../scale` does, for clients that have no subresource call of their own.
pub async fn write_scale<C: Client + ?Sized>(
    client: &C,
    scope: Scope<'_>,
    scale: Value,
) -> Result<Value, ClientError> {
    let name = name_of(&scale).to_string();
    let replicas = scale
        .pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    let mut object = client.get(scope, &name).await?;
    if let Some(rv) = scale
        .pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
    {
        object["metadata"]["resourceVersion"] = Value::String(rv.to_string());
    }
    object["spec"]["replicas"] = Value::from(replicas);
    let updated = client.update(scope, object).await?;
    Ok(skiff_api::scale::scale_of(&updated))
}

/// The object's `metadata.name`, empty when it has none.
fn name_of(object: &Value) -> &str {
    object
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// Refuses a scale call on a resource without the `scale` subresource.
pub fn require_scale(resource: &ResourceInfo) -> Result<(), ClientError> {
    if resource.subresources.contains(&Subresource::Scale) {
        Ok(())
    } else {
        Err(ClientError::UnknownResource(format!(
            "{}/scale",
            resource.plural
        )))
    }
}

/// Typed access to one kind through any [`Client`].
pub struct Api<K> {
    client: Arc<dyn Client>,
    resource: &'static ResourceInfo,
    namespace: Option<String>,
    kind: PhantomData<fn() -> K>,
}

impl<K> Clone for Api<K> {
    fn clone(&self) -> Self {
        Api {
            client: self.client.clone(),
            resource: self.resource,
            namespace: self.namespace.clone(),
            kind: PhantomData,
        }
    }
}

impl<K> Api<K>
where
    K: k8s_openapi::Resource + Serialize + DeserializeOwned,
{
    /// Access to `K` in `namespace` (or cluster-wide / all namespaces with `None`).
    pub fn new(client: Arc<dyn Client>, namespace: Option<&str>) -> Result<Api<K>, ClientError> {
        let resource = resources::find_by_kind(K::API_VERSION, K::KIND).ok_or_else(|| {
            ClientError::UnknownResource(format!("{}/{}", K::API_VERSION, K::KIND))
        })?;
        Ok(Api {
            client,
            resource,
            namespace: namespace.map(str::to_string),
            kind: PhantomData,
        })
    }

    /// The same kind in another namespace.
    pub fn in_namespace(&self, namespace: Option<&str>) -> Api<K> {
        Api {
            namespace: namespace.map(str::to_string),
            ..self.clone()
        }
    }

    /// The resource this API reads and writes.
    pub fn resource(&self) -> &'static ResourceInfo {
        self.resource
    }

    /// The untyped client underneath.
    pub fn client(&self) -> &Arc<dyn Client> {
        &self.client
    }

    fn scope(&self) -> Scope<'_> {
        Scope {
            resource: self.resource,
            namespace: self.namespace.as_deref(),
        }
    }

    /// Decodes a JSON object as `K`.
    pub fn decode(value: Value) -> Result<K, ClientError> {
        serde_json::from_value(value).map_err(|e| ClientError::Decode(e.to_string()))
    }

    fn encode(object: &K) -> Result<Value, ClientError> {
        serde_json::to_value(object).map_err(|e| ClientError::Decode(e.to_string()))
    }

    /// Reads one object.
    pub async fn get(&self, name: &str) -> Result<K, ClientError> {
        Self::decode(self.client.get(self.scope(), name).await?)
    }

    /// Reads one object, `None` if it does not exist.
    pub async fn get_opt(&self, name: &str) -> Result<Option<K>, ClientError> {
        match self.get(name).await {
            Ok(k) => Ok(Some(k)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Lists objects, with the revision the list reflects.
    pub async fn list(&self, options: &ListOptions) -> Result<(Vec<K>, String), ClientError> {
        let list = self.client.list(self.scope(), options).await?;
        let items = list
            .items
            .into_iter()
            .map(Self::decode)
            .collect::<Result<Vec<K>, _>>()?;
        Ok((items, list.resource_version))
    }

    /// Creates an object.
    pub async fn create(&self, object: &K) -> Result<K, ClientError> {
        Self::decode(
            self.client
                .create(self.scope(), Self::encode(object)?)
                .await?,
        )
    }

    /// Replaces an object.
    pub async fn update(&self, object: &K) -> Result<K, ClientError> {
        Self::decode(
            self.client
                .update(self.scope(), Self::encode(object)?)
                .await?,
        )
    }

    /// Replaces an object's status.
    pub async fn update_status(&self, object: &K) -> Result<K, ClientError> {
        Self::decode(
            self.client
                .update_status(self.scope(), Self::encode(object)?)
                .await?,
        )
    }

    /// Patches an object (or its status).
    pub async fn patch(
        &self,
        name: &str,
        patch_type: PatchType,
        patch: Value,
        status: bool,
    ) -> Result<K, ClientError> {
        Self::decode(
            self.client
                .patch(self.scope(), name, patch_type, patch, status)
                .await?,
        )
    }

    /// Deletes an object; `Some` while its deletion is pending.
    pub async fn delete(
        &self,
        name: &str,
        options: &DeleteOptions,
    ) -> Result<Option<K>, ClientError> {
        match self.client.delete(self.scope(), name, options).await? {
            Some(v) => Ok(Some(Self::decode(v)?)),
            None => Ok(None),
        }
    }

    /// Watches objects; events carry JSON, decode them with [`Api::decode`].
    pub async fn watch(
        &self,
        options: &ListOptions,
    ) -> Result<BoxStream<'static, WatchEvent>, ClientError> {
        self.client.watch(self.scope(), options).await
    }
}
