//! Nodes (`v1`): node defaults, the node printer and field selectors.

use serde_json::{Map, Value};

use super::{Kind, KindStrategy, RegistryHook, TypedVersion};
use crate::{
    defaults,
    printers::{self, Printer},
    resources::{res, ResourceInfo, Subresource::Status},
};

/// `v1` Nodes.
pub static V1: ResourceInfo = ResourceInfo {
    short_names: &["no"],
    subresources: &[Status],
    ..res("", "v1", "Node", "nodes", "node", false)
};

/// The kind's entry in the kind table.
pub static KIND: Kind = Kind {
    versions: &[&V1],
    strategy: &Strategy,
};

/// The kind's behaviour.
pub struct Strategy;

impl KindStrategy for Strategy {
    fn typed(&self, _version: &str) -> Option<TypedVersion> {
        Some(TypedVersion::of::<k8s_openapi::api::core::v1::Node>())
    }

    fn apply_defaults(&self, _version: &str, root: &mut Map<String, Value>) {
        defaults::default_node(root);
    }

    fn printer(&self) -> Option<Printer> {
        Some(Printer::new(printers::node_columns(), printers::node_cells))
    }

    fn field_selectors(&self) -> Option<&'static [&'static str]> {
        Some(&["metadata.name", "spec.unschedulable"])
    }

    fn registry_hook(&self) -> RegistryHook {
        RegistryHook::Node
    }
}
