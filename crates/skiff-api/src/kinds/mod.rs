//! One home per kind: each served kind has a module here declaring everything kind-specific
//! about it (its resource info in every served version, defaults, validation, printer columns,
//! field selectors and the registry hooks it needs), and [`KINDS`] lists them all.
//!
//! This follows the shape of Kubernetes' per-kind registry strategies: generic machinery
//! (admission, printing, selectors, the registry) asks the kind's [`KindStrategy`] instead of
//! matching on kind names. Adding a kind is one new module plus one line in [`KINDS`]. Helpers
//! several kinds share (object metadata and pod template validation, table building, label
//! selectors) stay in the shared modules the kind modules call.

use std::sync::{Arc, RwLock};

use serde_json::{Map, Value};

use crate::errors::FieldError;
use crate::printers::Printer;
use crate::resources::ResourceInfo;

pub mod admission_policy;
pub mod api_service;
pub mod certificate_signing_request;
pub mod clone_set;
pub mod cluster_role;
pub mod cluster_role_binding;
pub mod component_status;
pub mod config_map;
pub mod controller_revision;
pub mod cron_job;
pub mod custom_resource_definition;
pub mod daemon_set;
pub mod deployment;
pub mod endpoint_slice;
pub mod endpoints;
pub mod event;
pub mod events_event;
pub mod flow_schema;
pub mod horizontal_pod_autoscaler;
pub mod ingress;
pub mod ingress_class;
pub mod job;
pub mod lease;
pub mod limit_range;
pub mod namespace;
pub mod network_policy;
pub mod node;
pub mod persistent_volume;
pub mod persistent_volume_claim;
pub mod pod;
pub mod pod_disruption_budget;
pub mod pod_template;
pub mod priority_class;
pub mod priority_level_configuration;
pub mod replica_set;
pub mod replication_controller;
pub mod resource_quota;
pub mod role;
pub mod role_binding;
pub mod runtime_class;
pub mod secret;
pub mod service;
pub mod service_account;
pub mod stateful_set;
pub mod storage_class;
pub mod typed;
pub mod webhook_configuration;

pub use typed::{TypedError, TypedVersion};

/// Every kind Skiff serves, in discovery order. Within a group, a kind's preferred version
/// comes first (see [`Kind::versions`]).
pub static KINDS: &[&Kind] = &[
    &namespace::KIND,
    &pod::KIND,
    &node::KIND,
    &service::KIND,
    &endpoints::KIND,
    &event::KIND,
    &events_event::KIND,
    &config_map::KIND,
    &secret::KIND,
    &service_account::KIND,
    &deployment::KIND,
    &replica_set::KIND,
    &controller_revision::KIND,
    &daemon_set::KIND,
    &stateful_set::KIND,
    &horizontal_pod_autoscaler::KIND,
    &lease::KIND,
    &endpoint_slice::KIND,
    &clone_set::KIND,
    &job::KIND,
    &cron_job::KIND,
    &cluster_role_binding::KIND,
    &cluster_role::KIND,
    &role_binding::KIND,
    &role::KIND,
    &pod_disruption_budget::KIND,
    &persistent_volume::KIND,
    &persistent_volume_claim::KIND,
    &storage_class::KIND,
    &resource_quota::KIND,
    &limit_range::KIND,
    &pod_template::KIND,
    &replication_controller::KIND,
    &priority_class::KIND,
    &runtime_class::KIND,
    &ingress_class::KIND,
    &ingress::KIND,
    &network_policy::KIND,
    &custom_resource_definition::KIND,
    &certificate_signing_request::KIND,
    &webhook_configuration::VALIDATING_KIND,
    &webhook_configuration::MUTATING_KIND,
    &admission_policy::POLICY_KIND,
    &admission_policy::BINDING_KIND,
    &flow_schema::KIND,
    &priority_level_configuration::KIND,
    &api_service::KIND,
];

/// Kinds served but never stored: computed on each request by the server, so they take no part
/// in storage, namespace clean-up or the resource lists built from [`KINDS`]; their strategies
/// still give them their printers.
pub static COMPUTED_KINDS: &[&Kind] = &[&component_status::KIND];

/// One served kind: the versions it is served in and the strategy that gives it its behaviour.
pub struct Kind {
    /// The kind in each served version, preferred version first; all share one storage version.
    pub versions: &'static [&'static ResourceInfo],
    /// What is specific to the kind.
    pub strategy: &'static dyn KindStrategy,
}

/// The rule a kind's object names must follow, as Kubernetes' `ValidateObjectMeta` name
/// functions differ by kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NameRule {
    /// An RFC 1123 subdomain (most kinds).
    Dns1123Subdomain,
    /// An RFC 1123 label (namespaces).
    Dns1123Label,
    /// An RFC 1035 label (services, whose names become DNS labels).
    Dns1035Label,
    /// Any valid path segment (the RBAC kinds, whose names such as `system:node` carry colons).
    PathSegment,
}

/// What the registry does for a kind beyond the generic create, update and delete, so that the
/// registry dispatches on this instead of on kind names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RegistryHook {
    /// Nothing beyond the generic behaviour.
    Generic,
    /// Pods: a new pod starts `Pending` with its QoS class, and pods a node runs are deleted
    /// gracefully.
    Pod,
    /// Namespaces: the built-in ones cannot be deleted, new ones start `Active` with the
    /// `kubernetes` finalizer, and deleting one marks it `Terminating` until its content is gone.
    Namespace,
    /// Nodes: the status a node registers with is kept on create.
    Node,
    /// Secrets: the write-only `stringData` is folded into `data` when a body is decoded.
    Secret,
    /// Services: cluster IPs and node ports are allocated on create and update and released on
    /// delete.
    Service,
}

/// Everything specific to one kind; every method has the generic behaviour as its default, so
/// a kind module states only what differs.
pub trait KindStrategy: Sync {
    /// The Rust type behind the kind in `version`, for strict decoding and OpenAPI schemas;
    /// `None` for a kind without one (its objects are admitted as sent).
    fn typed(&self, _version: &str) -> Option<TypedVersion> {
        None
    }

    /// Adds the keys Kubernetes never omits for the kind in `version` (see `wire.rs`), leaving
    /// every value already present untouched.
    fn fill_never_omitted(&self, _version: &str, _root: &mut Map<String, Value>) {}

    /// Fills in the defaults Kubernetes applies to an object of this kind in `version` (the
    /// version the client sent, before conversion). Never fails.
    fn apply_defaults(&self, _version: &str, _root: &mut Map<String, Value>) {}

    /// The rule object names must follow.
    fn name_rule(&self) -> NameRule {
        NameRule::Dns1123Subdomain
    }

    /// The kind's own validation of a new object (after metadata validation), on the storage
    /// version.
    fn validate(&self, _obj: &Value, _errs: &mut Vec<FieldError>) {}

    /// Validation of a new object in the version the client sent, before conversion, for
    /// kinds whose rules depend on the version written through (`events.k8s.io/v1` Events are
    /// held to stricter rules than core ones). Runs beside [`KindStrategy::validate`].
    fn validate_create_as_sent(&self, _obj: &Value, _errs: &mut Vec<FieldError>) {}

    /// The kind's validation of an update (after metadata update validation). By default
    /// Kubernetes re-runs the kind's full validation on the new object.
    fn validate_update(&self, new: &Value, _old: &Value, errs: &mut Vec<FieldError>) {
        self.validate(new, errs);
    }

    /// The Table columns and cells `kubectl get` shows; `None` for the generic `Name` and
    /// `Created At`.
    fn printer(&self) -> Option<Printer> {
        None
    }

    /// The fields a field selector may name; `None` for only `metadata.name` and
    /// `metadata.namespace` (Kubernetes' default).
    fn field_selectors(&self) -> Option<&'static [&'static str]> {
        None
    }

    /// The field a field selector's `label` names in the stored version, when the kind is
    /// stored under other names (`events.k8s.io` Events); `None` for the same name.
    fn stored_field_label(&self, _label: &str) -> Option<&'static str> {
        None
    }

    /// The warning attached to every request for the kind in `version`, when deprecated.
    fn deprecation_warning(&self, _version: &str) -> Option<&'static str> {
        None
    }

    /// Whether the kind is a custom resource (no Go types behind it), which Kubernetes serves
    /// without strategic merge patch.
    fn is_custom_resource(&self) -> bool {
        false
    }

    /// Whether `DELETE` on the collection is served.
    fn serves_delete_collection(&self) -> bool {
        true
    }

    /// Sets the fields the server owns on a create (`old` is `None`) or derives them from the
    /// stored object on an update, after admission (a DaemonSet's template generation).
    fn prepare_for_write(&self, _new: &mut Value, _old: Option<&Value>) {}

    /// Removes the fields a custom resource's schema for `version` does not specify and
    /// returns their paths (`spec.foo`); nothing for kinds with Rust types, whose decoding
    /// drops unknown fields.
    fn prune(&self, _version: &str, _obj: &mut Value) -> Vec<String> {
        Vec::new()
    }

    /// The OpenAPI v3 schema a custom resource's definition gives `version`; `None` for kinds
    /// with Rust types, whose schemas come from those types.
    fn openapi_schema(&self, _version: &str) -> Option<&Value> {
        None
    }

    /// The printer columns a custom resource's definition declares for `version`; `None` for
    /// kinds whose printer is Rust code ([`KindStrategy::printer`]).
    fn custom_columns(&self, _version: &str) -> Option<&[crate::printers::CustomColumn]> {
        None
    }

    /// Where a custom resource keeps the replica counts its `scale` subresource shows; `None`
    /// for the built-in layout (`spec.replicas`, `status.replicas`).
    fn scale_paths(&self, _version: &str) -> Option<crate::crd::ScalePaths> {
        None
    }

    /// The finalizer the first delete adds before the object goes, for kinds whose deletion
    /// takes work (a CustomResourceDefinition's objects are deleted first).
    fn deletion_finalizer(&self) -> Option<&'static str> {
        None
    }

    /// Whether a create records its requester in `spec.username`, `uid`, `groups` and `extra`
    /// (CertificateSigningRequests, whose approvers judge who asked).
    fn records_requestor(&self) -> bool {
        false
    }

    /// What the registry does for the kind beyond the generic behaviour.
    fn registry_hook(&self) -> RegistryHook {
        RegistryHook::Generic
    }

    /// The propagation a delete without `propagationPolicy` gets, with the warning it
    /// answers (Jobs orphan their pods); `None` for background deletion.
    fn default_propagation(&self) -> Option<(&'static str, &'static str)> {
        None
    }
}

/// The strategy of a resource the table does not list: generic in every respect.
struct GenericStrategy;

impl KindStrategy for GenericStrategy {}

/// The kinds registered at run time from CustomResourceDefinitions, replaced as a whole on
/// each change so that readers take a cheap snapshot (one `Arc` clone) and never hold the lock
/// while they work.
///
/// The catalogue is process-wide, as the definitions it mirrors are cluster-wide. Each entry is
/// leaked (`Box::leak`) so that it is `&'static` like the built-in table's: an entry is made
/// only when a definition's generation changes (see `crate::crd`), which bounds the leak by the
/// number of definition changes a server sees.
static CUSTOM_KINDS: RwLock<Vec<&'static Kind>> = RwLock::new(Vec::new());

/// Readers' snapshot of [`CUSTOM_KINDS`], rebuilt by each registration.
static CUSTOM_SNAPSHOT: RwLock<Option<Arc<Vec<&'static Kind>>>> = RwLock::new(None);

/// The custom kinds registered now, in registration order.
pub fn custom_kinds() -> Arc<Vec<&'static Kind>> {
    let snapshot = CUSTOM_SNAPSHOT.read().unwrap_or_else(|e| e.into_inner());
    match snapshot.as_ref() {
        Some(kinds) => kinds.clone(),
        None => Arc::new(Vec::new()),
    }
}

/// Registers (or replaces, matched by group and plural) a custom kind.
pub fn register_custom_kind(kind: &'static Kind) {
    let first = kind.versions.first().copied();
    let mut kinds = CUSTOM_KINDS.write().unwrap_or_else(|e| e.into_inner());
    if let Some(first) = first {
        kinds.retain(|k| {
            !k.versions
                .iter()
                .any(|v| v.group == first.group && v.plural == first.plural)
        });
    }
    kinds.push(kind);
    publish(&kinds);
}

/// Removes the custom kind serving `plural` in `group`, if registered.
pub fn unregister_custom_kind(group: &str, plural: &str) {
    let mut kinds = CUSTOM_KINDS.write().unwrap_or_else(|e| e.into_inner());
    kinds.retain(|k| {
        !k.versions
            .iter()
            .any(|v| v.group == group && v.plural == plural)
    });
    publish(&kinds);
}

fn publish(kinds: &[&'static Kind]) {
    let mut snapshot = CUSTOM_SNAPSHOT.write().unwrap_or_else(|e| e.into_inner());
    *snapshot = Some(Arc::new(kinds.to_vec()));
}

/// The kind entry of a resource, stored or computed, found by group and kind; the built-in
/// table first, then the custom kinds.
pub fn kind_of(resource: &ResourceInfo) -> Option<&'static Kind> {
    let matches = |k: &&Kind| {
        k.versions
            .iter()
            .any(|v| v.group == resource.group && v.kind == resource.kind)
    };
    KINDS
        .iter()
        .chain(COMPUTED_KINDS)
        .copied()
        .find(matches)
        .or_else(|| custom_kinds().iter().copied().find(matches))
}

/// The strategy of a resource; a resource outside the table gets the generic behaviour.
pub fn strategy_for(resource: &ResourceInfo) -> &'static dyn KindStrategy {
    match kind_of(resource) {
        Some(kind) => kind.strategy,
        None => &GenericStrategy,
    }
}

/// Every served resource in every version, in discovery order.
pub fn all_resources() -> impl Iterator<Item = &'static ResourceInfo> {
    KINDS.iter().flat_map(|k| k.versions.iter().copied())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources;

    #[test]
    fn each_kind_appears_once_and_its_versions_share_group_kind_and_plural() {
        for (i, kind) in KINDS.iter().enumerate() {
            let first = kind.versions.first().expect("a kind serves a version");
            for v in kind.versions {
                assert_eq!(
                    (v.group, v.kind, v.plural),
                    (first.group, first.kind, first.plural)
                );
            }
            for other in &KINDS[i + 1..] {
                let o = other.versions[0];
                assert!(
                    (o.group, o.kind) != (first.group, first.kind),
                    "{} listed twice",
                    first.qualified_kind()
                );
            }
        }
    }

    #[test]
    fn every_served_version_finds_its_storage_version_and_its_own_strategy() {
        for kind in KINDS {
            for v in kind.versions {
                let storage = resources::storage_resource(v);
                match v.storage_group {
                    None => assert!(kind.versions.iter().any(|s| std::ptr::eq(*s, storage))),
                    Some(group) => assert!(storage.group == group && storage.is_storage_entry()),
                }
                assert!(std::ptr::eq(
                    kind_of(v).expect("listed kinds are found"),
                    *kind
                ));
                assert_eq!(resources::find(v.group, v.version, v.plural), Some(*v));
            }
        }
    }

    #[test]
    fn kinds_keep_their_own_name_rules_and_hooks() {
        use crate::kinds::{namespace, pod, service};
        assert_eq!(
            strategy_for(&namespace::V1).name_rule(),
            NameRule::Dns1123Label
        );
        assert_eq!(
            strategy_for(&service::V1).name_rule(),
            NameRule::Dns1035Label
        );
        assert_eq!(
            strategy_for(&pod::V1).name_rule(),
            NameRule::Dns1123Subdomain
        );
        assert_eq!(strategy_for(&pod::V1).registry_hook(), RegistryHook::Pod);
        assert_eq!(
            strategy_for(&service::V1).registry_hook(),
            RegistryHook::Service
        );
        assert_eq!(
            strategy_for(&lease::V1).registry_hook(),
            RegistryHook::Generic
        );
    }

    #[test]
    fn computed_kinds_print_but_are_not_stored_resources() {
        let cs = &component_status::V1;
        assert!(resources::all().all(|r| r.kind != cs.kind));
        assert!(resources::find("", "v1", "componentstatuses").is_none());
        assert!(strategy_for(cs).printer().is_some());
    }

    #[test]
    fn custom_kinds_join_and_leave_the_catalogue() {
        let definition = serde_json::json!({
            "metadata": {"name": "gizmos.catalogue.example.com"},
            "spec": {"group": "catalogue.example.com", "scope": "Cluster",
                "names": {"plural": "gizmos", "kind": "Gizmo", "shortNames": ["gz"]},
                "versions": [
                    {"name": "v2", "served": true, "storage": true,
                     "schema": {"openAPIV3Schema": {"type": "object"}}},
                    {"name": "v1", "served": true, "storage": false,
                     "schema": {"openAPIV3Schema": {"type": "object"}}}]}
        });
        let kind = crate::crd::kind_for(&definition).expect("a served kind");
        assert!(resources::find("catalogue.example.com", "v1", "gizmos").is_none());
        register_custom_kind(kind);
        let v1 = resources::find("catalogue.example.com", "v1", "gizmos").expect("v1 served");
        assert!(!v1.namespaced);
        assert_eq!(resources::storage_resource(v1).version, "v2");
        assert!(std::ptr::eq(kind_of(v1).expect("found"), kind));
        assert!(strategy_for(v1).is_custom_resource());
        assert!(resources::groups()
            .iter()
            .any(|(g, versions)| *g == "catalogue.example.com" && versions == &["v2", "v1"]));
        // Conversion between served versions is `None`: only apiVersion changes.
        let stored = serde_json::json!({"apiVersion": "catalogue.example.com/v2", "kind": "Gizmo",
            "metadata": {"name": "g"}, "spec": {"a": 1}});
        let converted =
            crate::conversion::convert(stored.clone(), "catalogue.example.com/v1").expect("None");
        let mut expected = stored;
        expected["apiVersion"] = serde_json::json!("catalogue.example.com/v1");
        assert_eq!(converted, expected);
        // The built-in resources are still found first, and unchanged.
        assert_eq!(resources::find("", "v1", "pods"), Some(&pod::V1));
        // Re-registering replaces instead of duplicating.
        register_custom_kind(crate::crd::kind_for(&definition).expect("a served kind"));
        assert_eq!(
            resources::all().filter(|r| r.plural == "gizmos").count(),
            2,
            "one entry per served version"
        );
        unregister_custom_kind("catalogue.example.com", "gizmos");
        assert!(resources::find("catalogue.example.com", "v1", "gizmos").is_none());
        assert!(kind_of(v1).is_none());
        assert!(
            crate::conversion::convert(converted, "catalogue.example.com/v2").is_err(),
            "no conversion once the kind is gone"
        );
    }

    #[test]
    fn a_resource_outside_the_table_gets_the_generic_strategy() {
        let unknown = ResourceInfo {
            kind: "Widget",
            ..crate::resources::res("example.com", "v1", "Widget", "widgets", "widget", true)
        };
        assert!(kind_of(&unknown).is_none());
        let generic = strategy_for(&unknown);
        assert!(generic.printer().is_none());
        assert!(generic.field_selectors().is_none());
        assert_eq!(generic.registry_hook(), RegistryHook::Generic);
    }
}
