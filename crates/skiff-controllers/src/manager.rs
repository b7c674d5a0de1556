//! Starts every controller over shared informers, as kube-controller-manager does.

use std::future::Future;
use std::sync::Arc;

use skiff_api::kinds;
use skiff_api::resources::ResourceInfo;
use skiff_client::Client;
use skiff_runtime::{EventRecorder, EventSource, Informer, InformerConfig};

use crate::cloneset::controller::CloneSetController;
use crate::clusterrole_aggregation::ClusterRoleAggregationController;
use crate::cronjob::controller::CronJobController;
use crate::daemonset::controller::DaemonSetController;
use crate::deployment::controller::DeploymentController;
use crate::endpoints::controller::EndpointsController;
use crate::endpointslice::controller::EndpointSliceController;
use crate::gc::controller::GarbageCollector;
use crate::job::controller::{JobController, TtlAfterFinishedController};
use crate::replicaset::controller::ReplicaSetController;

/// Concurrent syncs per controller, as kube-controller-manager's defaults (5 for Deployments and
/// ReplicaSets; 20 for the garbage collector).
const DEPLOYMENT_WORKERS: usize = 5;
const REPLICASET_WORKERS: usize = 5;
const GC_WORKERS: usize = 20;
/// OpenKruise's default `--cloneset-workers`.
const CLONESET_WORKERS: usize = 3;
/// kube-controller-manager's `--concurrent-daemonset-syncs` default.
const DAEMONSET_WORKERS: usize = 2;
/// kube-controller-manager's `--concurrent-endpoint-syncs` and
/// `--concurrent-service-endpoint-syncs`.
const ENDPOINTS_WORKERS: usize = 5;
const ENDPOINTSLICE_WORKERS: usize = 5;
/// kube-controller-manager runs the ClusterRole aggregator with 5 workers.
const CLUSTERROLE_AGGREGATION_WORKERS: usize = 5;
/// kube-controller-manager's `--concurrent-job-syncs` and `--concurrent-ttl-after-finished-syncs`.
const JOB_WORKERS: usize = 5;
const TTL_AFTER_FINISHED_WORKERS: usize = 5;
/// kube-controller-manager's `--concurrent-cron-job-syncs`.
const CRONJOB_WORKERS: usize = 5;

fn informer(client: &Arc<dyn Client>, resource: &'static ResourceInfo) -> Informer {
    Informer::start(client.clone(), InformerConfig::new(resource))
}

/// Runs the Deployment, ReplicaSet, CloneSet, Endpoints, EndpointSlice, ClusterRole
/// aggregation and garbage-collection controllers until `shutdown` resolves (which also ends a
/// wait for the informers to sync).
pub async fn run(client: Arc<dyn Client>, shutdown: impl Future<Output = ()> + Send) {
    tokio::pin!(shutdown);
    let deployments = informer(&client, &kinds::deployment::V1);
    let replica_sets = informer(&client, &kinds::replica_set::V1);
    let pods = informer(&client, &kinds::pod::V1);
    let controller_revisions = informer(&client, &kinds::controller_revision::V1);
    let clonesets = informer(&client, &kinds::clone_set::V1ALPHA1);
    let services = informer(&client, &kinds::service::V1);
    let endpoints = informer(&client, &kinds::endpoints::V1);
    let endpoint_slices = informer(&client, &kinds::endpoint_slice::V1);
    let nodes = informer(&client, &kinds::node::V1);
    let cluster_roles = informer(&client, &kinds::cluster_role::V1);
    let jobs = informer(&client, &kinds::job::V1);
    let cron_jobs = informer(&client, &kinds::cron_job::V1);
    let daemon_sets = informer(&client, &kinds::daemon_set::V1);
    for i in [
        &deployments,
        &replica_sets,
        &pods,
        &clonesets,
        &controller_revisions,
        &services,
        &endpoints,
        &endpoint_slices,
        &nodes,
        &cluster_roles,
        &jobs,
        &cron_jobs,
        &daemon_sets,
    ] {
        tokio::select! {
            _ = i.wait_synced() => {}
            _ = &mut shutdown => return,
        }
    }

    let deployment_controller = DeploymentController::new(
        client.clone(),
        deployments.clone(),
        replica_sets.clone(),
        pods.clone(),
        EventRecorder::new(
            client.clone(),
            EventSource::component("deployment-controller"),
        ),
    );
    let replica_set_controller = ReplicaSetController::new(
        client.clone(),
        replica_sets.clone(),
        pods.clone(),
        EventRecorder::new(
            client.clone(),
            EventSource::component("replicaset-controller"),
        ),
    );
    let clone_set_controller = CloneSetController::new(
        client.clone(),
        clonesets.clone(),
        pods.clone(),
        controller_revisions.clone(),
        EventRecorder::new(
            client.clone(),
            EventSource::component("cloneset-controller"),
        ),
    );
    let endpoints_controller = EndpointsController::new(
        client.clone(),
        services.clone(),
        pods.clone(),
        endpoints,
        EventRecorder::new(
            client.clone(),
            EventSource::component("endpoint-controller"),
        ),
    );
    let daemon_set_controller = DaemonSetController::new(
        client.clone(),
        daemon_sets.clone(),
        pods.clone(),
        nodes.clone(),
        controller_revisions.clone(),
        EventRecorder::new(
            client.clone(),
            EventSource::component("daemonset-controller"),
        ),
    );
    let endpoint_slice_controller = EndpointSliceController::new(
        client.clone(),
        services,
        pods.clone(),
        endpoint_slices,
        nodes,
        EventRecorder::new(
            client.clone(),
            EventSource::component("endpointslice-controller"),
        ),
    );
    let aggregation_controller =
        ClusterRoleAggregationController::new(client.clone(), cluster_roles);
    let job_controller = JobController::new(
        client.clone(),
        jobs.clone(),
        pods.clone(),
        EventRecorder::new(client.clone(), EventSource::component("job-controller")),
    );
    let ttl_controller = TtlAfterFinishedController::new(client.clone(), jobs.clone());
    let cron_job_controller = CronJobController::new(
        client.clone(),
        cron_jobs.clone(),
        jobs.clone(),
        EventRecorder::new(client.clone(), EventSource::component("cronjob-controller")),
    );
    let gc = GarbageCollector::new(
        client.clone(),
        vec![
            deployments,
            replica_sets,
            pods,
            controller_revisions,
            clonesets,
            jobs,
            cron_jobs,
            daemon_sets,
        ],
    );

    let stoppers = (
        deployment_controller.clone(),
        replica_set_controller.clone(),
        gc.clone(),
        clone_set_controller.clone(),
    );
    let endpoint_stoppers = (
        endpoints_controller.clone(),
        endpoint_slice_controller.clone(),
        aggregation_controller.clone(),
        job_controller.clone(),
        ttl_controller.clone(),
        cron_job_controller.clone(),
        daemon_set_controller.clone(),
    );
    let running = futures::future::join5(
        deployment_controller.run(DEPLOYMENT_WORKERS),
        replica_set_controller.run(REPLICASET_WORKERS),
        gc.run(GC_WORKERS),
        clone_set_controller.run(CLONESET_WORKERS),
        futures::future::join4(
            endpoints_controller.run(ENDPOINTS_WORKERS),
            endpoint_slice_controller.run(ENDPOINTSLICE_WORKERS),
            aggregation_controller.run(CLUSTERROLE_AGGREGATION_WORKERS),
            futures::future::join4(
                job_controller.run(JOB_WORKERS),
                ttl_controller.run(TTL_AFTER_FINISHED_WORKERS),
                cron_job_controller.run(CRONJOB_WORKERS),
                daemon_set_controller.run(DAEMONSET_WORKERS),
            ),
        ),
    );
    tokio::select! {
        _ = running => {}
        _ = &mut shutdown => {
            stoppers.0.shutdown();
            stoppers.1.shutdown();
            stoppers.2.shutdown();
            stoppers.3.shutdown();
            endpoint_stoppers.0.shutdown();
            endpoint_stoppers.1.shutdown();
            endpoint_stoppers.2.shutdown();
            endpoint_stoppers.3.shutdown();
            endpoint_stoppers.4.shutdown();
            endpoint_stoppers.5.shutdown();
            endpoint_stoppers.6.shutdown();
        }
    }
}

/// kube-controller-manager's `--concurrent-serviceaccount-token-syncs` default, for the
/// namespace defaults.
const NAMESPACE_DEFAULTS_WORKERS: usize = 5;

/// Concurrent syncs of the legacy token Secrets controller.
const TOKEN_SECRETS_WORKERS: usize = 2;

/// Fills legacy ServiceAccount token Secrets (and deletes those whose account is gone) until
/// `shutdown` resolves; `signer` is the API server's key, `ca_pem` the CA the Secrets carry.
pub async fn run_token_secrets(
    client: Arc<dyn Client>,
    signer: Arc<dyn crate::token_secrets::LegacyTokenSigner>,
    ca_pem: String,
    shutdown: impl Future<Output = ()> + Send,
) {
    let secrets = informer(&client, &kinds::secret::V1);
    let service_accounts = informer(&client, &kinds::service_account::V1);
    tokio::pin!(shutdown);
    for i in [&secrets, &service_accounts] {
        tokio::select! {
            _ = i.wait_synced() => {}
            _ = &mut shutdown => return,
        }
    }
    let controller = crate::token_secrets::TokenSecretsController::new(
        client,
        secrets,
        service_accounts,
        signer,
        &ca_pem,
    );
    let stopper = controller.clone();
    tokio::select! {
        _ = controller.run(TOKEN_SECRETS_WORKERS) => {}
        _ = &mut shutdown => stopper.shutdown(),
    }
}

/// Gives every namespace its `default` ServiceAccount and the `kube-root-ca.crt` ConfigMap
/// holding `ca_pem`, until `shutdown` resolves.
pub async fn run_namespace_defaults(
    client: Arc<dyn Client>,
    ca_pem: String,
    shutdown: impl Future<Output = ()> + Send,
) {
    let namespaces = informer(&client, &kinds::namespace::V1);
    let service_accounts = informer(&client, &kinds::service_account::V1);
    let config_maps = informer(&client, &kinds::config_map::V1);
    tokio::pin!(shutdown);
    for i in [&namespaces, &service_accounts, &config_maps] {
        tokio::select! {
            _ = i.wait_synced() => {}
            _ = &mut shutdown => return,
        }
    }
    let controller = crate::namespace_defaults::NamespaceDefaultsController::new(
        client,
        namespaces,
        service_accounts,
        config_maps,
        &ca_pem,
    );
    let stopper = controller.clone();
    tokio::select! {
        _ = controller.run(NAMESPACE_DEFAULTS_WORKERS) => {}
        _ = &mut shutdown => stopper.shutdown(),
    }
}

/// Runs the node lifecycle controller (with its NoExecute taint eviction), configured by
/// `skiff up`'s flags, and the disruption controller keeping PodDisruptionBudgets' status,
/// until `shutdown` resolves.
pub async fn run_node_controllers(
    client: Arc<dyn Client>,
    settings: crate::node_lifecycle::controller::NodeLifecycleSettings,
    shutdown: impl Future<Output = ()> + Send,
) {
    let shutdown = futures::FutureExt::shared(Box::pin(shutdown));
    futures::future::join(
        crate::node_lifecycle::controller::run(client.clone(), settings, shutdown.clone()),
        crate::disruption::controller::run(client, shutdown),
    )
    .await;
}
