//! Starts every controller over shared informers, as kube-controller-manager does.

use std::future::Future;
use std::sync::Arc;

use skiff_api::resources;
use skiff_client::Client;
use skiff_runtime::{EventRecorder, EventSource, Informer, InformerConfig};

use crate::cloneset::controller::CloneSetController;
use crate::deployment::controller::DeploymentController;
use crate::endpoints::controller::EndpointsController;
use crate::endpointslice::controller::EndpointSliceController;
use crate::gc::controller::GarbageCollector;
use crate::replicaset::controller::ReplicaSetController;

/// Concurrent syncs per controller, as kube-controller-manager's defaults (5 for Deployments and
/// ReplicaSets; 20 for the garbage collector).
const DEPLOYMENT_WORKERS: usize = 5;
const REPLICASET_WORKERS: usize = 5;
const GC_WORKERS: usize = 20;
/// OpenKruise's default `--cloneset-workers`.
const CLONESET_WORKERS: usize = 3;
/// kube-controller-manager's `--concurrent-endpoint-syncs` and
/// `--concurrent-service-endpoint-syncs`.
const ENDPOINTS_WORKERS: usize = 5;
const ENDPOINTSLICE_WORKERS: usize = 5;

fn informer(client: &Arc<dyn Client>, group: &str, version: &str, plural: &str) -> Informer {
    let resource =
        resources::find(group, version, plural).expect("every controlled resource is registered");
    Informer::start(client.clone(), InformerConfig::new(resource))
}

/// Runs the Deployment, ReplicaSet, CloneSet, Endpoints, EndpointSlice and
/// garbage-collection controllers until `shutdown` resolves.
pub async fn run(client: Arc<dyn Client>, shutdown: impl Future<Output = ()> + Send) {
    let deployments = informer(&client, "apps", "v1", "deployments");
    let replica_sets = informer(&client, "apps", "v1", "replicasets");
    let pods = informer(&client, "", "v1", "pods");
    let controller_revisions = informer(&client, "apps", "v1", "controllerrevisions");
    let clonesets = informer(&client, "apps.kruise.io", "v1alpha1", "clonesets");
    let services = informer(&client, "", "v1", "services");
    let endpoints = informer(&client, "", "v1", "endpoints");
    let endpoint_slices = informer(&client, "discovery.k8s.io", "v1", "endpointslices");
    let nodes = informer(&client, "", "v1", "nodes");
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
    ] {
        i.wait_synced().await;
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
    let gc = GarbageCollector::new(
        client.clone(),
        vec![
            deployments,
            replica_sets,
            pods,
            controller_revisions,
            clonesets,
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
    );
    let running = futures::future::join5(
        deployment_controller.run(DEPLOYMENT_WORKERS),
        replica_set_controller.run(REPLICASET_WORKERS),
        gc.run(GC_WORKERS),
        clone_set_controller.run(CLONESET_WORKERS),
        futures::future::join(
            endpoints_controller.run(ENDPOINTS_WORKERS),
            endpoint_slice_controller.run(ENDPOINTSLICE_WORKERS),
        ),
    );
    tokio::select! {
        _ = running => {}
        _ = shutdown => {
            stoppers.0.shutdown();
            stoppers.1.shutdown();
            stoppers.2.shutdown();
            stoppers.3.shutdown();
            endpoint_stoppers.0.shutdown();
            endpoint_stoppers.1.shutdown();
        }
    }
}

/// kube-controller-manager's `--concurrent-serviceaccount-token-syncs` default, for the
/// namespace defaults.
const NAMESPACE_DEFAULTS_WORKERS: usize = 5;

/// Gives every namespace its `default` ServiceAccount and the `kube-root-ca.crt` ConfigMap
/// holding `ca_pem`, until `shutdown` resolves.
pub async fn run_namespace_defaults(
    client: Arc<dyn Client>,
    ca_pem: String,
    shutdown: impl Future<Output = ()> + Send,
) {
    let namespaces = informer(&client, "", "v1", "namespaces");
    let service_accounts = informer(&client, "", "v1", "serviceaccounts");
    let config_maps = informer(&client, "", "v1", "configmaps");
    for i in [&namespaces, &service_accounts, &config_maps] {
        i.wait_synced().await;
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
        _ = shutdown => stopper.shutdown(),
    }
}
