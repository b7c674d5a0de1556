//! The resource registry: every kind Skiff serves, with the facts discovery, routing and storage
//! need about it.

/// A subresource the server answers under `.../NAME/<subresource>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Subresource {
    /// `/status`: writes change only `.status`.
    Status,
    /// `/scale`: an `autoscaling/v1` `Scale` view of `spec.replicas`.
    Scale,
    /// `/binding` (pods): assigns a node.
    Binding,
    /// `/log` (pods): container logs as text.
    Log,
    /// `/token` (ServiceAccounts): a TokenRequest for a signed token.
    Token,
    /// `/eviction` (pods): a `policy/v1` Eviction, a delete that honours disruption budgets.
    Eviction,
    /// `/ephemeralcontainers` (pods): writes may only add to `spec.ephemeralContainers`.
    EphemeralContainers,
    /// `/approval` (CertificateSigningRequests): writes change only `status.conditions`.
    Approval,
}

impl Subresource {
    /// The path segment naming this subresource.
    pub fn name(self) -> &'static str {
        match self {
            Subresource::Status => "status",
            Subresource::Scale => "scale",
            Subresource::Binding => "binding",
            Subresource::Log => "log",
            Subresource::Token => "token",
            Subresource::Eviction => "eviction",
            Subresource::EphemeralContainers => "ephemeralcontainers",
            Subresource::Approval => "approval",
        }
    }

    /// Parses a path segment.
    pub fn parse(segment: &str) -> Option<Subresource> {
        [
            Subresource::Status,
            Subresource::Scale,
            Subresource::Binding,
            Subresource::Log,
            Subresource::Token,
            Subresource::Eviction,
            Subresource::EphemeralContainers,
            Subresource::Approval,
        ]
        .into_iter()
        .find(|s| s.name() == segment)
    }
}

/// Everything the server needs to know about one served resource in one version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResourceInfo {
    /// API group; empty for the core group.
    pub group: &'static str,
    /// API version within the group.
    pub version: &'static str,
    /// Kind, e.g. `Deployment`.
    pub kind: &'static str,
    /// Plural resource name used in paths, e.g. `deployments`.
    pub plural: &'static str,
    /// Singular name, e.g. `deployment`.
    pub singular: &'static str,
    /// Whether objects live in a namespace.
    pub namespaced: bool,
    /// Short names kubectl accepts, e.g. `deploy`.
    pub short_names: &'static [&'static str],
    /// Categories, e.g. `all` for `kubectl get all`.
    pub categories: &'static [&'static str],
    /// Subresources served.
    pub subresources: &'static [Subresource],
    /// The version objects are stored in. Objects of other versions are converted on the way in
    /// and out; all versions of a resource share one key space.
    pub storage_version: &'static str,
    /// The group objects are stored under when it is not the resource's own: `events.k8s.io`
    /// Events are core Events, one object served in two shapes, as in Kubernetes.
    pub storage_group: Option<&'static str>,
    /// Whether `metadata.generation` tracks changes to `.spec` (kinds with a spec and status).
    pub has_generation: bool,
}

impl ResourceInfo {
    /// `group/version`, or just `version` for the core group.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// `plural.group` as Kubernetes names resources in messages (`deployments.apps`), or just the
    /// plural for the core group.
    pub fn qualified_plural(&self) -> String {
        if self.group.is_empty() {
            self.plural.to_string()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    /// `Kind.group` as Kubernetes names kinds in validation messages (`Deployment.apps`).
    pub fn qualified_kind(&self) -> String {
        if self.group.is_empty() {
            self.kind.to_string()
        } else {
            format!("{}.{}", self.kind, self.group)
        }
    }

    /// Whether the resource serves `sub`.
    pub fn has_subresource(&self, sub: Subresource) -> bool {
        self.subresources.contains(&sub)
    }

    /// The group the resource's objects are stored under: its own unless it declares another.
    pub fn stored_group(&self) -> &'static str {
        self.storage_group.unwrap_or(self.group)
    }

    /// Whether this entry is the one objects are stored as (its own group and storage version),
    /// so each stored object is visited once when walking every resource.
    pub fn is_storage_entry(&self) -> bool {
        self.storage_group.is_none() && self.version == self.storage_version
    }

    /// The store key prefix of all objects of this resource, shared by every version (and by
    /// a resource stored under another group's).
    pub fn key_prefix(&self) -> String {
        let group = match self.stored_group() {
            "" => "core",
            group => group,
        };
        format!("/registry/{}/{}/", group, self.plural)
    }

    /// The store key prefix of the objects in one namespace (or all, for `None`).
    pub fn namespace_prefix(&self, namespace: Option<&str>) -> String {
        match (self.namespaced, namespace) {
            (true, Some(ns)) => format!("{}{}/", self.key_prefix(), ns),
            _ => self.key_prefix(),
        }
    }

    /// The store key of one object.
    pub fn key(&self, namespace: Option<&str>, name: &str) -> String {
        format!("{}{}", self.namespace_prefix(namespace), name)
    }

    /// The kind of the list type, e.g. `DeploymentList`.
    pub fn list_kind(&self) -> String {
        format!("{}List", self.kind)
    }
}

/// A resource with no short names, categories or subresources, stored in its own version: the
/// base kind modules build their entries from.
pub(crate) const fn res(
    group: &'static str,
    version: &'static str,
    kind: &'static str,
    plural: &'static str,
    singular: &'static str,
    namespaced: bool,
) -> ResourceInfo {
    ResourceInfo {
        group,
        version,
        kind,
        plural,
        singular,
        namespaced,
        short_names: &[],
        categories: &[],
        subresources: &[],
        storage_version: version,
        storage_group: None,
        has_generation: false,
    }
}

/// Every resource Skiff serves: the kind table's, then the custom resources registered at run
/// time. Within a group, a resource's preferred version comes first.
pub fn all() -> impl Iterator<Item = &'static ResourceInfo> {
    let custom = crate::kinds::custom_kinds();
    crate::kinds::all_resources()
        .chain((0..custom.len()).flat_map(move |i| custom[i].versions.iter().copied()))
}

/// The API groups served, in discovery order, each with its versions (preferred first).
pub fn groups() -> Vec<(&'static str, Vec<&'static str>)> {
    let mut out: Vec<(&'static str, Vec<&'static str>)> = Vec::new();
    for r in all() {
        match out.iter_mut().find(|(g, _)| *g == r.group) {
            Some((_, versions)) => {
                if !versions.contains(&r.version) {
                    versions.push(r.version);
                }
            }
            None => out.push((r.group, vec![r.version])),
        }
    }
    out
}

/// The resources served in one group-version.
pub fn resources_in(group: &str, version: &str) -> impl Iterator<Item = &'static ResourceInfo> {
    let group = group.to_string();
    let version = version.to_string();
    all().filter(move |r| r.group == group && r.version == version)
}

/// The warning Kubernetes attaches to every request for a deprecated resource (kubectl prints
/// it as `Warning: ...`), or `None` when the resource is current.
pub fn deprecation_warning(info: &ResourceInfo) -> Option<&'static str> {
    crate::kinds::strategy_for(info).deprecation_warning(info.version)
}

/// Finds a resource by group, version and plural. The built-in table is searched first, so a
/// built-in resource costs no look at the custom ones.
pub fn find(group: &str, version: &str, plural: &str) -> Option<&'static ResourceInfo> {
    let matches =
        |r: &&ResourceInfo| r.group == group && r.version == version && r.plural == plural;
    crate::kinds::all_resources()
        .find(matches)
        .or_else(|| all().find(matches))
}

/// Finds the resource an `apiVersion` and `kind` name.
pub fn find_by_kind(api_version: &str, kind: &str) -> Option<&'static ResourceInfo> {
    let (group, version) = split_api_version(api_version);
    all().find(|r| r.group == group && r.version == version && r.kind == kind)
}

/// The storage-version entry for a resource served in any version.
///
/// A custom resource whose definition was replaced since the caller looked it up may no longer
/// list that version; its own entry then stands in, since all versions share one key space.
pub fn storage_resource(resource: &ResourceInfo) -> &'static ResourceInfo {
    let group = resource.stored_group();
    let matches = |r: &&ResourceInfo| {
        r.group == group
            && r.storage_group.is_none()
            && r.plural == resource.plural
            && r.version == resource.storage_version
    };
    crate::kinds::all_resources()
        .find(matches)
        .or_else(|| all().find(matches))
        .or_else(|| all().find(|r| r.group == resource.group && r.plural == resource.plural))
        .unwrap_or_else(|| leak_copy(resource))
}

/// A `'static` copy of a resource no longer registered (a custom resource whose definition
/// went away while a request was under way), so that request can still finish.
fn leak_copy(resource: &ResourceInfo) -> &'static ResourceInfo {
    Box::leak(Box::new(resource.clone()))
}

/// Splits `group/version` (or a bare core `version`) into its parts.
pub fn split_api_version(api_version: &str) -> (&str, &str) {
    match api_version.split_once('/') {
        Some((g, v)) => (g, v),
        None => ("", api_version),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_endpoints_carry_a_deprecation_warning() {
        let endpoints = find("", "v1", "endpoints").unwrap();
        assert_eq!(
            deprecation_warning(endpoints),
            Some("v1 Endpoints is deprecated in v1.33+; use discovery.k8s.io/v1 EndpointSlice")
        );
        for current in all().filter(|r| r.kind != "Endpoints") {
            assert_eq!(deprecation_warning(current), None, "{}", current.kind);
        }
    }

    #[test]
    fn keys_are_shared_between_versions_and_scoped_by_namespace() {
        let v1 = find("autoscaling", "v1", "horizontalpodautoscalers").unwrap();
        let v2 = find("autoscaling", "v2", "horizontalpodautoscalers").unwrap();
        assert_eq!(v1.key(Some("a"), "b"), v2.key(Some("a"), "b"));
        assert_eq!(
            v1.key(Some("a"), "b"),
            "/registry/autoscaling/horizontalpodautoscalers/a/b"
        );
        let ns = find("", "v1", "namespaces").unwrap();
        assert_eq!(ns.key(Some("ignored"), "x"), "/registry/core/namespaces/x");
        assert_eq!(storage_resource(v1).version, "v2");
    }

    #[test]
    fn groups_list_preferred_version_first() {
        let groups = groups();
        let autoscaling = groups.iter().find(|(g, _)| *g == "autoscaling").unwrap();
        assert_eq!(autoscaling.1, vec!["v2", "v1"]);
        assert_eq!(groups[0].0, "");
    }
}
