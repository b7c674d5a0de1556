//! The in-process implementation of `skiff_client::Client`: calls go straight into this
//! process's registry, with no HTTP but the same admission, and, when the client acts as a
//! user, the same authorization as HTTP requests.

use std::sync::Arc;

use async_trait::async_trait;
use futures::stream::BoxStream;
use futures::StreamExt;
use serde_json::Value;
use skiff_api::patch::PatchType;
use skiff_api::resources::{ResourceInfo, Subresource};
use skiff_auth::attributes::{Attributes, ResourceTarget};
use skiff_auth::user::UserInfo;
use skiff_client::{
    require_scale, write_scale, Client, ClientError, DeleteOptions, ListOptions, ObjectList, Scope,
    WatchEvent,
};

use crate::registry::{self, Registry, WriteOptions};
use crate::status::ApiError;

/// A client that goes straight into the registry of this process: no HTTP, same admission,
/// and, when it acts as a user, the same authorization.
#[derive(Clone)]
pub struct LocalClient {
    registry: Registry,
    /// Who the calls are made as; `None` is the control plane itself, never authorized.
    user: Option<UserInfo>,
}

impl LocalClient {
    /// A client over `registry` with the control plane's own unrestricted rights (the API
    /// server's loopback identity): for informers and start-up work, not for controllers.
    pub fn new(registry: Registry) -> LocalClient {
        LocalClient {
            registry,
            user: None,
        }
    }

    /// A client over `registry` whose every call is authorized for `user` with the decision
    /// HTTP requests get, refused with the same 403.
    pub fn as_user(registry: Registry, user: UserInfo) -> LocalClient {
        LocalClient {
            registry,
            user: Some(user),
        }
    }

    /// This client without its user: for the object reads and writes a subresource call the
    /// user was already authorized for is made of.
    fn unrestricted(&self) -> LocalClient {
        LocalClient::new(self.registry.clone())
    }

    /// Write options naming the component as `managedFields` records it, as Kubernetes' own
    /// components name themselves: node agents `kubelet`, the scheduler `kube-scheduler`, the
    /// controllers `kube-controller-manager`, the control plane itself `kube-apiserver`.
    fn write_options(&self) -> WriteOptions {
        let manager = match &self.user {
            None => "kube-apiserver",
            Some(user) if user.name.starts_with("system:node:") => "kubelet",
            Some(user) if user.name == "system:kube-scheduler" => "kube-scheduler",
            Some(_) => "kube-controller-manager",
        };
        WriteOptions {
            field_manager: registry::FieldManagerName::new(manager),
            ..WriteOptions::default()
        }
    }

    /// The user calls are made as, if any.
    pub fn user(&self) -> Option<&UserInfo> {
        self.user.as_ref()
    }

    /// Refuses a call its user may not make, as kube-apiserver's authorization filter does.
    async fn authorize(
        &self,
        verb: &str,
        resource: &ResourceInfo,
        subresource: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<(), ClientError> {
        let Some(user) = &self.user else {
            return Ok(());
        };
        let attrs = Attributes::resource(
            user.clone(),
            verb,
            ResourceTarget {
                namespace: namespace.unwrap_or("").to_string(),
                api_group: resource.group.to_string(),
                api_version: resource.version.to_string(),
                resource: resource.plural.to_string(),
                subresource: subresource.to_string(),
                name: name.to_string(),
            },
        );
        let decision = crate::authz::authorize(&self.registry, &attrs).await?;
        if decision.allowed {
            return Ok(());
        }
        let refusal = crate::authz::forbidden(&attrs, &decision.reason);
        tracing::warn!(user = %user.name, error = %refusal.message, "request refused");
        Err(ClientError::Api(refusal))
    }

    /// Authorizes and makes a replacing write of the object `object` names, or of one of its
    /// subresources: what `update`, `update_status` and `update_approval` each do.
    async fn authorized_update(
        &self,
        scope: Scope<'_>,
        object: Value,
        subresource: Option<Subresource>,
        options: WriteOptions,
    ) -> Result<Value, ClientError> {
        let name = name_of(&object).to_string();
        let subresource_name = subresource.map_or("", Subresource::name);
        self.authorize(
            "update",
            scope.resource,
            subresource_name,
            scope.namespace,
            &name,
        )
        .await?;
        let written = self
            .registry
            .update(
                scope.resource,
                scope.namespace,
                &name,
                object,
                subresource,
                options,
            )
            .await?;
        Ok(written.object)
    }
}

fn name_of(object: &Value) -> &str {
    object
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
}

#[async_trait]
impl Client for LocalClient {
    fn as_user(&self, user: UserInfo) -> Option<Arc<dyn Client>> {
        Some(Arc::new(LocalClient::as_user(self.registry.clone(), user)))
    }

    async fn get(&self, scope: Scope<'_>, name: &str) -> Result<Value, ClientError> {
        self.authorize("get", scope.resource, "", scope.namespace, name)
            .await?;
        Ok(self
            .registry
            .get(scope.resource, scope.namespace, name)
            .await?)
    }

    async fn list(
        &self,
        scope: Scope<'_>,
        options: &ListOptions,
    ) -> Result<ObjectList, ClientError> {
        self.authorize("list", scope.resource, "", scope.namespace, "")
            .await?;
        let list = self
            .registry
            .list(scope.resource, scope.namespace, options)
            .await?;
        Ok(ObjectList {
            items: list.items,
            resource_version: list.resource_version.to_string(),
            continue_token: list.continue_token,
        })
    }

    async fn watch(
        &self,
        scope: Scope<'_>,
        options: &ListOptions,
    ) -> Result<BoxStream<'static, WatchEvent>, ClientError> {
        self.authorize("watch", scope.resource, "", scope.namespace, "")
            .await?;
        let events = self
            .registry
            .watch(scope.resource, scope.namespace, options)
            .await?;
        Ok(events
            .map(|e: registry::WatchEvent| WatchEvent {
                event_type: e.event_type,
                object: e.object,
            })
            .boxed())
    }

    async fn create(&self, scope: Scope<'_>, object: Value) -> Result<Value, ClientError> {
        self.authorize("create", scope.resource, "", scope.namespace, "")
            .await?;
        let w = self
            .registry
            .create(
                scope.resource,
                scope.namespace,
                object,
                self.write_options(),
            )
            .await?;
        Ok(w.object)
    }

    async fn update(&self, scope: Scope<'_>, object: Value) -> Result<Value, ClientError> {
        self.authorized_update(scope, object, None, self.write_options())
            .await
    }

    async fn update_status(&self, scope: Scope<'_>, object: Value) -> Result<Value, ClientError> {
        self.authorized_update(
            scope,
            object,
            Some(Subresource::Status),
            self.write_options(),
        )
        .await
    }

    async fn update_approval(&self, scope: Scope<'_>, object: Value) -> Result<Value, ClientError> {
        self.authorized_update(
            scope,
            object,
            Some(Subresource::Approval),
            WriteOptions::default(),
        )
        .await
    }

    async fn patch(
        &self,
        scope: Scope<'_>,
        name: &str,
        patch_type: PatchType,
        patch: Value,
        status: bool,
    ) -> Result<Value, ClientError> {
        let resource = scope.resource;
        let sub = status.then_some(Subresource::Status);
        let subresource = if status { "status" } else { "" };
        self.authorize("patch", resource, subresource, scope.namespace, name)
            .await?;
        let w =
            self.registry
                .write_loop(
                    resource,
                    scope.namespace,
                    name,
                    sub,
                    self.write_options(),
                    None,
                    |current| {
                        skiff_api::patch::apply_patch(resource, &current, patch_type, &patch)
                            .map_err(|e| ApiError {
                                code: e.code(),
                                reason: e.reason(),
                                message: e.to_string(),
                                details: None,
                            })
                    },
                )
                .await?;
        Ok(w.object)
    }

    async fn delete(
        &self,
        scope: Scope<'_>,
        name: &str,
        options: &DeleteOptions,
    ) -> Result<Option<Value>, ClientError> {
        self.authorize("delete", scope.resource, "", scope.namespace, name)
            .await?;
        match self
            .registry
            .delete(scope.resource, scope.namespace, name, options)
            .await?
        {
            registry::Deleted::Gone(_) => Ok(None),
            registry::Deleted::Pending(obj) => Ok(Some(obj)),
        }
    }

    async fn bind_pod(&self, namespace: &str, name: &str, node: &str) -> Result<(), ClientError> {
        self.authorize(
            "create",
            &skiff_api::kinds::pod::V1,
            "binding",
            Some(namespace),
            name,
        )
        .await?;
        self.registry.bind_pod(namespace, name, node).await?;
        Ok(())
    }

    async fn create_token(
        &self,
        namespace: &str,
        name: &str,
        request: Value,
    ) -> Result<Value, ClientError> {
        self.authorize(
            "create",
            &skiff_api::kinds::service_account::V1,
            "token",
            Some(namespace),
            name,
        )
        .await?;
        Ok(crate::token_request::request_token(
            &self.registry,
            namespace,
            name,
            request,
            crate::token_request::now_seconds(),
        )
        .await?)
    }

    async fn get_scale(&self, scope: Scope<'_>, name: &str) -> Result<Value, ClientError> {
        require_scale(scope.resource)?;
        self.authorize("get", scope.resource, "scale", scope.namespace, name)
            .await?;
        let object = self.unrestricted().get(scope, name).await?;
        Ok(skiff_api::scale::scale_of(&object))
    }

    async fn update_scale(&self, scope: Scope<'_>, scale: Value) -> Result<Value, ClientError> {
        require_scale(scope.resource)?;
        let name = name_of(&scale).to_string();
        self.authorize("update", scope.resource, "scale", scope.namespace, &name)
            .await?;
        write_scale(&self.unrestricted(), scope, scale).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ConfigMap;
    use skiff_client::Api;

    async fn client() -> (tempfile::TempDir, Arc<dyn Client>) {
        let dir = tempfile::tempdir().unwrap();
        let store = skiff_store::SqliteStore::open(&dir.path().join("s.db")).unwrap();
        let registry = Registry::new(Arc::new(store));
        crate::system::ensure_builtin_namespaces(&registry)
            .await
            .unwrap();
        (dir, Arc::new(LocalClient::new(registry)))
    }

    #[tokio::test]
    async fn typed_round_trip_through_the_registry() {
        let (_dir, client) = client().await;
        let api: Api<ConfigMap> = Api::new(client, Some("default")).unwrap();
        let mut cm = ConfigMap::default();
        cm.metadata.name = Some("c".into());
        cm.data = Some([("a".to_string(), "b".to_string())].into());
        let created = api.create(&cm).await.unwrap();
        assert!(created.metadata.uid.is_some());
        let patched = api
            .patch(
                "c",
                PatchType::Merge,
                serde_json::json!({"data": {"a": "z"}}),
                false,
            )
            .await
            .unwrap();
        assert_eq!(patched.data.unwrap()["a"], "z");
        let stale = created.clone();
        assert!(api.update(&stale).await.unwrap_err().is_conflict());
        assert!(api
            .delete("c", &DeleteOptions::default())
            .await
            .unwrap()
            .is_none());
        assert!(api.get_opt("c").await.unwrap().is_none());
    }

    fn controller_user() -> UserInfo {
        UserInfo::new(
            "system:serviceaccount:kube-system:replicaset-controller",
            &[
                "system:serviceaccounts",
                "system:serviceaccounts:kube-system",
                "system:authenticated",
            ],
        )
    }

    #[tokio::test]
    async fn a_client_acting_as_a_user_holds_only_what_rbac_grants() {
        let (_dir, admin) = client().await;
        let acting = admin
            .as_user(controller_user())
            .expect("a local client acts for users");
        let config_maps = Scope {
            resource: &skiff_api::kinds::config_map::V1,
            namespace: Some("default"),
        };
        let body = serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap",
                                      "metadata": {"name": "c"}});
        let refused = acting
            .create(config_maps, body.clone())
            .await
            .expect_err("no rule grants it");
        let ClientError::Api(status) = &refused else {
            panic!("expected a Status, got {refused:?}");
        };
        assert_eq!(status.code, 403);
        assert_eq!(
            status.message,
            r#"configmaps is forbidden: User "system:serviceaccount:kube-system:replicaset-controller" cannot create resource "configmaps" in API group "" in the namespace "default""#
        );
        assert_eq!(
            refused.message(),
            status.message,
            "events carry the message alone"
        );
        let role = serde_json::json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": "cm-writer"},
            "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["create"]}]});
        let binding = serde_json::json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
            "metadata": {"name": "cm-writer"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cm-writer"},
            "subjects": [{"kind": "ServiceAccount", "name": "replicaset-controller", "namespace": "kube-system"}]});
        for (resource, object) in [
            (&skiff_api::kinds::cluster_role::V1, role),
            (&skiff_api::kinds::cluster_role_binding::V1, binding),
        ] {
            admin
                .create(
                    Scope {
                        resource,
                        namespace: None,
                    },
                    object,
                )
                .await
                .expect("the unrestricted client writes RBAC");
        }
        acting
            .create(config_maps, body)
            .await
            .expect("the binding grants create");
        // Create is all it grants.
        assert_eq!(acting.get(config_maps, "c").await.unwrap_err().code(), 403);
        assert_eq!(
            acting
                .delete(config_maps, "c", &DeleteOptions::default())
                .await
                .unwrap_err()
                .code(),
            403
        );
    }

    #[tokio::test]
    async fn scale_calls_are_authorized_on_the_scale_subresource() {
        let (_dir, admin) = client().await;
        let deployments = Scope {
            resource: &skiff_api::kinds::deployment::V1,
            namespace: Some("default"),
        };
        admin
            .create(
                deployments,
                serde_json::json!({"apiVersion": "apps/v1", "kind": "Deployment",
                    "metadata": {"name": "web"},
                    "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
                        "template": {"metadata": {"labels": {"app": "web"}},
                            "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}}),
            )
            .await
            .expect("deployment");
        let role = serde_json::json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": "scaler"},
            "rules": [{"apiGroups": ["*"], "resources": ["*/scale"], "verbs": ["get", "update"]}]});
        let binding = serde_json::json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
            "metadata": {"name": "scaler"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "scaler"},
            "subjects": [{"kind": "ServiceAccount", "name": "replicaset-controller", "namespace": "kube-system"}]});
        for (resource, object) in [
            (&skiff_api::kinds::cluster_role::V1, role),
            (&skiff_api::kinds::cluster_role_binding::V1, binding),
        ] {
            admin
                .create(
                    Scope {
                        resource,
                        namespace: None,
                    },
                    object,
                )
                .await
                .expect("rbac");
        }
        let acting = admin.as_user(controller_user()).expect("acting client");
        let mut scale = acting
            .get_scale(deployments, "web")
            .await
            .expect("get scale");
        assert_eq!(
            acting.get(deployments, "web").await.unwrap_err().code(),
            403
        );
        scale["spec"]["replicas"] = serde_json::json!(3);
        let scaled = acting
            .update_scale(deployments, scale)
            .await
            .expect("update scale");
        assert_eq!(scaled["spec"]["replicas"], 3);
    }
}
