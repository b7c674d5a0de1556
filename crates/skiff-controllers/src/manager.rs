//! Starts every controller over shared informers, as kube-controller-manager does.

use std::future::Future;
use std::sync::Arc;

use skiff_api::kinds;
use skiff_api::resources::ResourceInfo;
use skiff_apiserver::rbac_controller_roles::CONTROLLER_NAMESPACE;
use skiff_auth::user::{UserInfo, SERVICE_ACCOUNT_PREFIX, SYSTEM_AUTHENTICATED};
use skiff_client::{Client, Scope};
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
use crate::shell::QueuedController;
use crate::statefulset::controller::StatefulSetController;

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
/// kube-controller-manager's `--concurrent-rc-syncs`.
const REPLICATION_CONTROLLER_WORKERS: usize = 5;
/// kube-controller-manager's `--concurrent-cron-job-syncs`.
const CRONJOB_WORKERS: usize = 5;
/// kube-controller-manager's `--concurrent-statefulset-syncs`.
const STATEFULSET_WORKERS: usize = 5;

/// The ServiceAccount (in `kube-system`) each built-in controller acts as, as
/// kube-controller-manager's with `--use-service-account-credentials`; each is bound to the
/// `system:controller:<name>` ClusterRole that says what it may do. A new controller takes
/// its line here and its role in `skiff_apiserver::rbac_controller_roles`.
pub mod identities {
    /// The Deployment controller.
    pub const DEPLOYMENT: &str = "deployment-controller";
    /// The ReplicaSet controller.
    pub const REPLICASET: &str = "replicaset-controller";
    /// The CloneSet controller (OpenKruise's, under a Skiff role).
    pub const CLONESET: &str = "cloneset-controller";
    /// The Endpoints controller.
    pub const ENDPOINTS: &str = "endpoint-controller";
    /// The EndpointSlice controller.
    pub const ENDPOINTSLICE: &str = "endpointslice-controller";
    /// The ClusterRole aggregation controller.
    pub const CLUSTERROLE_AGGREGATION: &str = "clusterrole-aggregation-controller";
    /// The Job controller.
    pub const JOB: &str = "job-controller";
    /// The TTL-after-finished controller.
    pub const TTL_AFTER_FINISHED: &str = "ttl-after-finished-controller";
    /// The CronJob controller.
    pub const CRONJOB: &str = "cronjob-controller";
    /// The garbage collector.
    pub const GARBAGE_COLLECTOR: &str = "generic-garbage-collector";
    /// The HorizontalPodAutoscaler controller.
    pub const HORIZONTAL_POD_AUTOSCALER: &str = "horizontal-pod-autoscaler";
    /// The PersistentVolume binder, with the local-path provisioner and the protection finalizers.
    pub const PERSISTENT_VOLUME_BINDER: &str = "persistent-volume-binder";
    /// The StatefulSet controller.
    pub const STATEFULSET: &str = "statefulset-controller";
    /// The DaemonSet controller.
    pub const DAEMONSET: &str = "daemon-set-controller";
    /// The node lifecycle controller, with its NoExecute taint eviction.
    pub const NODE: &str = "node-controller";
    /// The disruption controller.
    pub const DISRUPTION: &str = "disruption-controller";
    /// The ReplicationController manager.
    pub const REPLICATION_CONTROLLER: &str = "replication-controller";
    /// The resource quota controller.
    pub const RESOURCE_QUOTA: &str = "resourcequota-controller";
    /// The CertificateSigningRequest approver and signer.
    pub const CERTIFICATE: &str = "certificate-controller";
}

/// The user a controller's ServiceAccount `name` in `kube-system` authenticates as: its
/// name and the groups a ServiceAccount token gives.
pub fn controller_user(name: &str) -> UserInfo {
    UserInfo::new(
        format!("{SERVICE_ACCOUNT_PREFIX}{CONTROLLER_NAMESPACE}:{name}"),
        &[
            "system:serviceaccounts",
            &format!("system:serviceaccounts:{CONTROLLER_NAMESPACE}"),
            SYSTEM_AUTHENTICATED,
        ],
    )
}

/// `client` acting as the controller `name`, so its writes are authorized by its role; a
/// client that cannot act for others is returned as it is.
pub fn controller_client(client: &Arc<dyn Client>, name: &str) -> Arc<dyn Client> {
    client
        .as_user(controller_user(name))
        .unwrap_or_else(|| client.clone())
}

/// Creates the controllers' ServiceAccounts in `kube-system` that do not exist yet, as
/// kube-controller-manager's client builder does before a controller starts; the server calls
/// it before it serves, so clients see no write of it after start.
pub async fn ensure_controller_service_accounts(client: &Arc<dyn Client>) {
    let scope = Scope {
        resource: &kinds::service_account::V1,
        namespace: Some(CONTROLLER_NAMESPACE),
    };
    for name in skiff_apiserver::rbac_controller_roles::controller_names() {
        let account = serde_json::json!({"apiVersion": "v1", "kind": "ServiceAccount",
                                         "metadata": {"name": name, "namespace": CONTROLLER_NAMESPACE}});
        match client.create(scope, account).await {
            Ok(_) => {}
            Err(e) if e.is_conflict() => {}
            Err(error) => {
                tracing::warn!(%error, account = name, "cannot create a controller's ServiceAccount")
            }
        }
    }
}

fn informer(client: &Arc<dyn Client>, resource: &'static ResourceInfo) -> Informer {
    Informer::start(client.clone(), InformerConfig::new(resource))
}

/// Runs the Deployment, ReplicaSet, CloneSet, Endpoints, EndpointSlice, ClusterRole
/// aggregation and garbage-collection controllers until `shutdown` resolves (which also ends a
/// wait for the informers to sync).
///
/// Informers read with `client`'s own rights, as kube-controller-manager's shared informers
/// use its own credentials; each controller writes as its ServiceAccount (see [`identities`]).
pub async fn run(client: Arc<dyn Client>, shutdown: impl Future<Output = ()> + Send) {
    tokio::pin!(shutdown);
    let as_controller = |name: &str| controller_client(&client, name);
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
    let stateful_sets = informer(&client, &kinds::stateful_set::V1);
    let replication_controllers = informer(&client, &kinds::replication_controller::V1);
    let claims = informer(&client, &kinds::persistent_volume_claim::V1);
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
        &stateful_sets,
        &replication_controllers,
        &claims,
    ] {
        tokio::select! {
            _ = i.wait_synced() => {}
            _ = &mut shutdown => return,
        }
    }

    let identity_client = as_controller(identities::DEPLOYMENT);
    let deployment_controller = DeploymentController::new(
        identity_client.clone(),
        deployments.clone(),
        replica_sets.clone(),
        pods.clone(),
        EventRecorder::new(
            identity_client,
            EventSource::component("deployment-controller"),
        ),
    );
    let identity_client = as_controller(identities::REPLICASET);
    let replica_set_controller = ReplicaSetController::new(
        identity_client.clone(),
        replica_sets.clone(),
        pods.clone(),
        EventRecorder::new(
            identity_client,
            EventSource::component("replicaset-controller"),
        ),
    );
    let identity_client = as_controller(identities::REPLICATION_CONTROLLER);
    let replication_controller_manager = ReplicaSetController::with_flavor(
        &crate::replicationcontroller::FLAVOR,
        identity_client.clone(),
        replication_controllers.clone(),
        pods.clone(),
        EventRecorder::new(
            identity_client,
            EventSource::component("replication-controller"),
        ),
    );
    let identity_client = as_controller(identities::CLONESET);
    let clone_set_controller = CloneSetController::new(
        identity_client.clone(),
        clonesets.clone(),
        pods.clone(),
        controller_revisions.clone(),
        EventRecorder::new(
            identity_client,
            EventSource::component("cloneset-controller"),
        ),
    );
    let identity_client = as_controller(identities::ENDPOINTS);
    let endpoints_controller = EndpointsController::new(
        identity_client.clone(),
        services.clone(),
        pods.clone(),
        endpoints,
        EventRecorder::new(
            identity_client,
            EventSource::component("endpoint-controller"),
        ),
    );
    let identity_client = as_controller(identities::DAEMONSET);
    let daemon_set_controller = DaemonSetController::new(
        identity_client.clone(),
        daemon_sets.clone(),
        pods.clone(),
        nodes.clone(),
        controller_revisions.clone(),
        EventRecorder::new(
            identity_client,
            EventSource::component("daemonset-controller"),
        ),
    );
    let identity_client = as_controller(identities::STATEFULSET);
    let stateful_set_controller = StatefulSetController::new(
        identity_client.clone(),
        stateful_sets.clone(),
        pods.clone(),
        controller_revisions.clone(),
        Some(claims.clone()),
        EventRecorder::new(
            identity_client,
            EventSource::component("statefulset-controller"),
        ),
    );
    let identity_client = as_controller(identities::ENDPOINTSLICE);
    let endpoint_slice_controller = EndpointSliceController::new(
        identity_client.clone(),
        services,
        pods.clone(),
        endpoint_slices,
        nodes,
        EventRecorder::new(
            identity_client,
            EventSource::component("endpointslice-controller"),
        ),
    );
    let aggregation_controller = ClusterRoleAggregationController::new(
        as_controller(identities::CLUSTERROLE_AGGREGATION),
        cluster_roles,
    );
    let identity_client = as_controller(identities::JOB);
    let job_controller = JobController::new(
        identity_client.clone(),
        jobs.clone(),
        pods.clone(),
        EventRecorder::new(identity_client, EventSource::component("job-controller")),
    );
    let ttl_controller = TtlAfterFinishedController::new(
        as_controller(identities::TTL_AFTER_FINISHED),
        jobs.clone(),
    );
    let identity_client = as_controller(identities::CRONJOB);
    let cron_job_controller = CronJobController::new(
        identity_client.clone(),
        cron_jobs.clone(),
        jobs.clone(),
        EventRecorder::new(
            identity_client,
            EventSource::component("cronjob-controller"),
        ),
    );
    let gc = GarbageCollector::new(
        as_controller(identities::GARBAGE_COLLECTOR),
        vec![
            deployments,
            replica_sets,
            pods,
            controller_revisions,
            clonesets,
            jobs,
            cron_jobs,
            daemon_sets,
            stateful_sets,
            replication_controllers,
            claims.clone(),
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
        stateful_set_controller.clone(),
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
            futures::future::join5(
                job_controller.run(JOB_WORKERS),
                ttl_controller.run(TTL_AFTER_FINISHED_WORKERS),
                cron_job_controller.run(CRONJOB_WORKERS),
                futures::future::join(
                    daemon_set_controller.run(DAEMONSET_WORKERS),
                    stateful_set_controller.run(STATEFULSET_WORKERS),
                ),
                replication_controller_manager
                    .clone()
                    .run(REPLICATION_CONTROLLER_WORKERS),
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
            endpoint_stoppers.7.shutdown();
            replication_controller_manager.shutdown();
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
/// `skiff up`'s flags, the disruption controller keeping PodDisruptionBudgets' status, and
/// the resource quota controller keeping ResourceQuotas' status, until `shutdown` resolves.
pub async fn run_node_controllers(
    client: Arc<dyn Client>,
    settings: crate::node_lifecycle::controller::NodeLifecycleSettings,
    shutdown: impl Future<Output = ()> + Send,
) {
    let shutdown = futures::FutureExt::shared(Box::pin(shutdown));
    futures::future::join3(
        crate::node_lifecycle::controller::run(
            client.clone(),
            controller_client(&client, identities::NODE),
            settings,
            shutdown.clone(),
        ),
        crate::disruption::controller::run(
            client.clone(),
            controller_client(&client, identities::DISRUPTION),
            shutdown.clone(),
        ),
        crate::resourcequota::controller::run(
            controller_client(&client, identities::RESOURCE_QUOTA),
            shutdown,
        ),
    )
    .await;
}

/// Concurrent syncs of the certificate controller (kube-controller-manager runs its CSR
/// approver and signer with 5 workers each).
const CERTIFICATE_WORKERS: usize = 5;

/// Approves kubelet client certificate requests the requester may make and signs approved
/// client requests with `issuer`, until `shutdown` resolves; writes as the
/// `certificate-controller` identity.
pub async fn run_certificates(
    client: Arc<dyn Client>,
    reviewer: Arc<dyn crate::certificates::AccessReviewer>,
    issuer: Arc<dyn crate::certificates::CertificateIssuer>,
    shutdown: impl Future<Output = ()> + Send,
) {
    let requests = informer(&client, &kinds::certificate_signing_request::V1);
    tokio::pin!(shutdown);
    tokio::select! {
        _ = requests.wait_synced() => {}
        _ = &mut shutdown => return,
    }
    let controller = crate::certificates::CertificateController::new(
        controller_client(&client, identities::CERTIFICATE),
        requests,
        reviewer,
        issuer,
        crate::certificates::DEFAULT_SIGNING_DURATION,
    );
    let stopper = controller.clone();
    tokio::select! {
        _ = controller.run(CERTIFICATE_WORKERS) => {}
        _ = &mut shutdown => stopper.shutdown(),
    }
}
