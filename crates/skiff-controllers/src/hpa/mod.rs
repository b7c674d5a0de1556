//! The HorizontalPodAutoscaler controller (`autoscaling/v2`).
//!
//! - [`replica_calculator`]: how many replicas one resource metric asks for, with
//!   Kubernetes' tolerance and its treatment of unready, missing and ignored pods.
//! - [`normalize`]: stabilization windows, `behavior` policies and min/max limits.
//! - [`sync`]: one reconcile as a pure plan (new size, status, conditions, events).
//! - [`controller`]: the shell that feeds the plan from informers, the metrics source and the
//!   target's scale subresource, and applies it.
//!
//! Differences from upstream, all deliberate: only `Resource` and `ContainerResource` metrics
//! are evaluated (no custom or external metrics API is served, so `Pods`, `Object` and
//! `External` metrics report `ScalingActive=False`); the per-direction `tolerance` of
//! `behavior` (alpha) is not read; overlapping selectors of two autoscalers are not detected
//! (no `AmbiguousSelector`).

pub mod controller;
pub mod normalize;
pub mod replica_calculator;
pub mod sync;

use std::future::Future;
use std::sync::Arc;

use skiff_client::metrics::ResourceMetrics;
use skiff_client::Client;

pub use normalize::History;
pub use replica_calculator::ReplicaCalculator;
pub use sync::{plan_sync, HpaConfig, Rescale, ScaleView, SyncPlan};

/// Runs the autoscaler controller until `shutdown` resolves; it reads usage from `metrics`
/// and sizes targets through their scale subresource.
pub async fn run(
    client: Arc<dyn Client>,
    metrics: Arc<dyn ResourceMetrics>,
    config: HpaConfig,
    shutdown: impl Future<Output = ()> + Send,
) {
    let client = crate::manager::controller_client(
        &client,
        crate::manager::identities::HORIZONTAL_POD_AUTOSCALER,
    );
    tokio::pin!(shutdown);
    let controller = tokio::select! {
        controller = controller::HpaController::start(client, metrics, config) => controller,
        _ = &mut shutdown => return,
    };
    let stopper = controller.clone();
    tokio::select! {
        _ = controller.run() => {}
        _ = &mut shutdown => stopper.shutdown(),
    }
}
