//! What a request asks to do (`authorizer.Attributes`), and the words of the 403 Kubernetes
//! answers when it is not allowed.

use crate::user::UserInfo;

/// What a resource request targets.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ResourceTarget {
    /// The namespace, empty for cluster-scoped resources and for lists across namespaces.
    pub namespace: String,
    /// The API group, empty for the core group.
    pub api_group: String,
    /// The API version (not used by RBAC, kept for reviews).
    pub api_version: String,
    /// The plural resource (`pods`).
    pub resource: String,
    /// The subresource (`status`, `log`), or empty.
    pub subresource: String,
    /// The object's name, empty for lists and creates without a name in the path.
    pub name: String,
}

/// A resource or a non-resource request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// A request on API objects.
    Resource(ResourceTarget),
    /// A request on any other path (`/healthz`, `/version`, `/api`).
    NonResource {
        /// The request path.
        path: String,
    },
}

/// Who asks to do what on which target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attributes {
    /// The requesting user.
    pub user: UserInfo,
    /// The verb: `get`, `list`, `watch`, `create`, `update`, `patch`, `delete`,
    /// `deletecollection`, or any other (`impersonate`, `bind`, `escalate`), and for
    /// non-resource requests the lowercase HTTP method.
    pub verb: String,
    /// What the request targets.
    pub target: Target,
}

impl Attributes {
    /// A resource request, for building attributes in code and tests.
    pub fn resource(user: UserInfo, verb: &str, target: ResourceTarget) -> Attributes {
        Attributes {
            user,
            verb: verb.to_string(),
            target: Target::Resource(target),
        }
    }

    /// A non-resource request.
    pub fn non_resource(user: UserInfo, verb: &str, path: &str) -> Attributes {
        Attributes {
            user,
            verb: verb.to_string(),
            target: Target::NonResource {
                path: path.to_string(),
            },
        }
    }

    /// The namespace the request is in, empty for cluster-scoped and non-resource requests.
    pub fn namespace(&self) -> &str {
        match &self.target {
            Target::Resource(r) => &r.namespace,
            Target::NonResource { .. } => "",
        }
    }

    /// `forbiddenMessage`: what the user cannot do, as the 403 names it.
    pub fn forbidden_detail(&self) -> String {
        let user = &self.user.name;
        let verb = &self.verb;
        match &self.target {
            Target::NonResource { path } => {
                format!("User {user:?} cannot {verb} path {path:?}")
            }
            Target::Resource(r) => {
                let resource = if r.subresource.is_empty() {
                    r.resource.clone()
                } else {
                    format!("{}/{}", r.resource, r.subresource)
                };
                let group = &r.api_group;
                if r.namespace.is_empty() {
                    format!(
                        "User {user:?} cannot {verb} resource {resource:?} in API group {group:?} at the cluster scope"
                    )
                } else {
                    let ns = &r.namespace;
                    format!(
                        "User {user:?} cannot {verb} resource {resource:?} in API group {group:?} in the namespace {ns:?}"
                    )
                }
            }
        }
    }

    /// The whole message of the 403 `Status` (`errors.NewForbidden` around
    /// `responsewriters.Forbidden`), with the authorizer's reason appended when it gave one.
    pub fn forbidden_message(&self, reason: &str) -> String {
        let mut detail = self.forbidden_detail();
        if !reason.is_empty() {
            detail.push_str(": ");
            detail.push_str(reason);
        }
        match &self.target {
            Target::NonResource { .. } => format!("forbidden: {detail}"),
            Target::Resource(r) => {
                let qualified = if r.api_group.is_empty() {
                    r.resource.clone()
                } else {
                    format!("{}.{}", r.resource, r.api_group)
                };
                if qualified.is_empty() {
                    format!("forbidden: {detail}")
                } else if r.name.is_empty() {
                    format!("{qualified} is forbidden: {detail}")
                } else {
                    format!("{qualified} {:?} is forbidden: {detail}", r.name)
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jane() -> UserInfo {
        UserInfo::new("jane", &["system:authenticated"])
    }

    fn target(group: &str, resource: &str, sub: &str, ns: &str, name: &str) -> ResourceTarget {
        ResourceTarget {
            namespace: ns.into(),
            api_group: group.into(),
            api_version: "v1".into(),
            resource: resource.into(),
            subresource: sub.into(),
            name: name.into(),
        }
    }

    #[test]
    fn forbidden_messages_are_worded_as_kubernetes_words_them() {
        let list = Attributes::resource(jane(), "list", target("", "pods", "", "default", ""));
        assert_eq!(
            list.forbidden_message(""),
            r#"pods is forbidden: User "jane" cannot list resource "pods" in API group "" in the namespace "default""#
        );
        let nodes = Attributes::resource(jane(), "get", target("", "nodes", "", "", "n1"));
        assert_eq!(
            nodes.forbidden_message(""),
            r#"nodes "n1" is forbidden: User "jane" cannot get resource "nodes" in API group "" at the cluster scope"#
        );
        let exec =
            Attributes::resource(jane(), "create", target("", "pods", "exec", "dev", "web-0"));
        assert_eq!(
            exec.forbidden_message(""),
            r#"pods "web-0" is forbidden: User "jane" cannot create resource "pods/exec" in API group "" in the namespace "dev""#
        );
        let deploy = Attributes::resource(
            jane(),
            "create",
            target("apps", "deployments", "", "default", ""),
        );
        assert_eq!(
            deploy.forbidden_message(r#"RBAC: role.rbac.authorization.k8s.io "x" not found"#),
            r#"deployments.apps is forbidden: User "jane" cannot create resource "deployments" in API group "apps" in the namespace "default": RBAC: role.rbac.authorization.k8s.io "x" not found"#
        );
        let path = Attributes::non_resource(jane(), "get", "/metrics");
        assert_eq!(
            path.forbidden_message(""),
            r#"forbidden: User "jane" cannot get path "/metrics""#
        );
    }
}
