//! ComponentStatuses (`v1`, deprecated since Kubernetes 1.19): computed on each request and
//! never stored, so listed in [`COMPUTED_KINDS`](super::COMPUTED_KINDS) rather than the table
//! of stored kinds.

use jiff::Timestamp;
use serde_json::Value;

use super::{Kind, KindStrategy};
use crate::printers::*;
use crate::resources::{res, ResourceInfo};

/// `v1` ComponentStatuses.
pub static V1: ResourceInfo = ResourceInfo {
    short_names: &["cs"],
    ..res(
        "",
        "v1",
        "ComponentStatus",
        "componentstatuses",
        "componentstatus",
        false,
    )
};

/// The kind's entry in the table of computed kinds.
pub static KIND: Kind = Kind {
    versions: &[&V1],
    strategy: &Strategy,
};

/// The kind's behaviour.
pub struct Strategy;

impl KindStrategy for Strategy {
    fn printer(&self) -> Option<Printer> {
        Some(Printer::new(
            vec![
                name_col(),
                col("Status", "string", "Status of the component conditions"),
                col("Message", "string", "Message of the component conditions"),
                col("Error", "string", "Error of the component conditions"),
            ],
            component_status_cells,
        ))
    }
}

/// `printComponentStatus`: the Healthy condition as Healthy/Unhealthy, else Unknown.
fn component_status_cells(obj: &Value, _now: Timestamp) -> Vec<Value> {
    let mut status = "Unknown";
    let mut message = "";
    let mut error = "";
    for condition in obj["conditions"].as_array().into_iter().flatten() {
        if condition["type"] == "Healthy" {
            status = if condition["status"] == "True" {
                "Healthy"
            } else {
                "Unhealthy"
            };
            message = condition["message"].as_str().unwrap_or("");
            error = condition["error"].as_str().unwrap_or("");
            break;
        }
    }
    vec![name(obj), status.into(), message.into(), error.into()]
}
