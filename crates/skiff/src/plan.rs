//! `skiff rollout plan`: the steps a Deployment's rollout takes, computed offline by the same
//! planner the controller runs.

use std::path::Path;

use serde_json::Value;
use skiff_api::resources;
use skiff_controllers::deployment::rollout_plan;

/// How to print the plan.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum Output {
    /// A table of NEW and OLD replica counts per step.
    Table,
    /// `{"maxSurge": S, "maxUnavailable": U, "steps": [{"new": N, "old": O}, ...]}`.
    Json,
}

/// Finds the Deployment in a (possibly multi-document) manifest, defaulted and validated as the
/// API server would.
fn load_deployment(path: &Path) -> Result<Value, String> {
    let text = if path.as_os_str() == "-" {
        std::io::read_to_string(std::io::stdin()).map_err(|e| format!("reading stdin: {e}"))?
    } else {
        std::fs::read_to_string(path).map_err(|e| format!("reading {}: {e}", path.display()))?
    };
    let resource =
        resources::find("apps", "v1", "deployments").expect("deployments are registered");
    let documents: Vec<Value> =
        skiff_api::yaml::documents(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    for value in documents {
        if value.get("kind").and_then(Value::as_str) != Some("Deployment") {
            continue;
        }
        let mut obj = value;
        if obj.pointer("/metadata/namespace").is_none() {
            obj["metadata"]["namespace"] = Value::String("default".into());
        }
        skiff_api::defaults::apply_defaults(resource, &mut obj);
        let errors = skiff_api::validation::validate_create(resource, &obj);
        if !errors.is_empty() {
            let name = obj
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or("");
            return Err(skiff_api::errors::invalid_message(
                &resource.qualified_kind(),
                name,
                &errors,
            ));
        }
        return Ok(obj);
    }
    Err(format!("{}: no Deployment found", path.display()))
}

/// Prints the rollout plan of the Deployment in `path`.
pub fn run(path: &Path, output: Output) -> Result<(), String> {
    let obj = load_deployment(path)?;
    let deployment =
        serde_json::from_value(obj).map_err(|e| format!("not a valid Deployment: {e}"))?;
    let plan = rollout_plan(&deployment).map_err(|e| e.to_string())?;
    let text = match output {
        Output::Json => serde_json::to_string(&plan).map_err(|e| e.to_string())? + "\n",
        Output::Table => plan.render_table(),
    };
    // A reader that stops early (`| head`) is no error of ours; other write failures are.
    match std::io::Write::write_all(&mut std::io::stdout().lock(), text.as_bytes()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(format!("writing the plan: {e}"))
        }
        _ => Ok(()),
    }
}
