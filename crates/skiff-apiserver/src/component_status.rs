//! `v1 ComponentStatus` (`kubectl get cs`): deprecated since Kubernetes 1.19 but still served,
//! read-only, computed on each request. Skiff reports the scheduler and the controller manager,
//! which run in this process whenever it serves, and the store, probed with a read (Kubernetes
//! names its store `etcd-0`; Skiff's is SQLite, so `sqlite-0`).

use jiff::Timestamp;
use serde_json::{json, Value};
use skiff_api::printers::IncludeObject;

use crate::registry::Registry;
use crate::status::ApiError;

/// The warning every ComponentStatus request carries, as Kubernetes sends it.
pub const DEPRECATION_WARNING: &str = "v1 ComponentStatus is deprecated in v1.19+";

/// The plural in paths.
const PLURAL: &str = "componentstatuses";

/// The resource, for discovery and printing; not in the table of stored kinds, since nothing
/// stores it and it serves only `get` and `list`.
pub use skiff_api::kinds::component_status::V1 as COMPONENT_STATUS;

/// The verbs it serves.
pub const VERBS: &[&str] = &["get", "list"];

/// The name of the store's entry.
pub const STORE_COMPONENT: &str = "sqlite-0";

/// Which ComponentStatus a path names: `Some(None)` for the list, `Some(Some(name))` for one,
/// `None` when the path is not a ComponentStatus path.
pub fn parse_path(path: &str) -> Option<Option<&str>> {
    let rest = path.strip_prefix("/api/v1/")?.trim_end_matches('/');
    match rest.split_once('/') {
        None if rest == PLURAL => Some(None),
        Some((PLURAL, name)) if !name.is_empty() && !name.contains('/') => Some(Some(name)),
        _ => None,
    }
}

/// One component's health: `ok` or why not.
fn component(name: &str, health: Result<(), String>) -> Value {
    let condition = match health {
        Ok(()) => json!({"type": "Healthy", "status": "True", "message": "ok"}),
        Err(error) => json!({"type": "Healthy", "status": "False", "error": error}),
    };
    json!({
        "kind": "ComponentStatus",
        "apiVersion": "v1",
        "metadata": {"name": name},
        "conditions": [condition],
    })
}

/// Every component, probing the store now.
async fn components(registry: &Registry) -> Vec<Value> {
    let namespaces = &skiff_api::kinds::namespace::V1;
    let store = registry
        .get(namespaces, None, "default")
        .await
        .map(|_| ())
        .map_err(|e| e.message);
    vec![
        component("scheduler", Ok(())),
        component("controller-manager", Ok(())),
        component(&format!("{}-0", registry.store().backend_name()), store),
    ]
}

/// Answers a GET of the list (`name` None) or of one component, as JSON or as the Table
/// `kubectl get cs` prints.
pub async fn serve(
    registry: &Registry,
    name: Option<&str>,
    table: bool,
    include: IncludeObject,
) -> Result<Value, ApiError> {
    let all = components(registry).await;
    let selected: Vec<Value> = match name {
        None => all,
        Some(name) => {
            let one = all
                .into_iter()
                .find(|c| c["metadata"]["name"] == name)
                .ok_or_else(|| ApiError::not_found(&COMPONENT_STATUS, name))?;
            vec![one]
        }
    };
    if table {
        return Ok(printed(&selected, include));
    }
    Ok(match name {
        Some(_) => selected.into_iter().next().unwrap_or(Value::Null),
        None => json!({
            "kind": "ComponentStatusList",
            "apiVersion": "v1",
            "metadata": {},
            "items": selected,
        }),
    })
}

/// The Table kubectl prints: NAME, STATUS, MESSAGE, ERROR (kubectl's own printer columns).
fn printed(components: &[Value], include: IncludeObject) -> Value {
    skiff_api::printers::table(&COMPONENT_STATUS, components, include, Timestamp::now())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_name_the_list_or_one_component() {
        assert_eq!(parse_path("/api/v1/componentstatuses"), Some(None));
        assert_eq!(
            parse_path("/api/v1/componentstatuses/scheduler"),
            Some(Some("scheduler"))
        );
        assert_eq!(parse_path("/api/v1/namespaces"), None);
        assert_eq!(parse_path("/api/v1/componentstatuses/a/b"), None);
    }

    #[test]
    fn healthy_and_failing_components_read_like_kubernetes() {
        let healthy = component("scheduler", Ok(()));
        assert_eq!(
            healthy["conditions"],
            json!([{"type": "Healthy", "status": "True", "message": "ok"}])
        );
        let failing = component(STORE_COMPONENT, Err("disk I/O error".into()));
        assert_eq!(
            failing["conditions"],
            json!([{"type": "Healthy", "status": "False", "error": "disk I/O error"}])
        );
    }
}
