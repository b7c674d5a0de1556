//! The authenticated identity a request carries, and the user and group names Kubernetes gives
//! special meaning.

/// The group whose members every request is allowed, before RBAC is asked (kube-apiserver's
/// privileged-group authorizer).
pub const SYSTEM_MASTERS: &str = "system:masters";
/// The group every authenticated user is in.
pub const SYSTEM_AUTHENTICATED: &str = "system:authenticated";
/// The group of requests without credentials.
pub const SYSTEM_UNAUTHENTICATED: &str = "system:unauthenticated";
/// The user name of requests without credentials.
pub const ANONYMOUS: &str = "system:anonymous";
/// The prefix of every ServiceAccount's user name: `system:serviceaccount:<ns>:<name>`.
pub const SERVICE_ACCOUNT_PREFIX: &str = "system:serviceaccount:";

/// Who is asking, as `user.Info`: a name, groups, and an optional uid.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UserInfo {
    /// The user name (`jane`, `system:serviceaccount:dev:default`).
    pub name: String,
    /// The user's unique id, when the authenticator knows one.
    pub uid: String,
    /// Every group the user is in.
    pub groups: Vec<String>,
    /// What else the authenticator knows (`authentication.kubernetes.io/pod-name`, ...), as
    /// `user.Info`'s extra, which reviews report and impersonation can carry.
    pub extra: std::collections::BTreeMap<String, Vec<String>>,
}

impl UserInfo {
    /// A user with a name and groups.
    pub fn new(name: impl Into<String>, groups: &[&str]) -> UserInfo {
        UserInfo {
            name: name.into(),
            uid: String::new(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
            extra: Default::default(),
        }
    }

    /// Whether the user is in `group`.
    pub fn in_group(&self, group: &str) -> bool {
        self.groups.iter().any(|g| g == group)
    }
}

/// `serviceaccount.MatchesUsername`: whether `user` is the ServiceAccount `name` in
/// `namespace`.
pub fn is_service_account(user: &str, namespace: &str, name: &str) -> bool {
    user.strip_prefix(SERVICE_ACCOUNT_PREFIX)
        .and_then(|rest| rest.strip_prefix(namespace))
        .and_then(|rest| rest.strip_prefix(':'))
        == Some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_account_user_names_match_namespace_and_name_exactly() {
        let user = "system:serviceaccount:dev:default";
        assert!(is_service_account(user, "dev", "default"));
        assert!(!is_service_account(user, "de", "v:default"));
        assert!(!is_service_account(user, "dev", "def"));
        assert!(!is_service_account(
            "system:serviceaccounts:dev:default",
            "dev",
            "default"
        ));
        assert!(!is_service_account("default", "dev", "default"));
    }
}
