//! `skiff_client::RemoteClient` against a real `skiff up`, with the admin credentials of the
//! kubeconfig the server wrote: reads and writes answer as the in-process client's do (the
//! same `Status` codes, reasons and messages), watches see every change once, across the
//! server closing them, and end with 410 when their revision is compacted, and a controller of
//! `skiff-controllers` does its job over HTTPS unchanged; a CertificateSigningRequest is decided
//! through its `approval` subresource.
//!
//! Run with `cargo test -p skiff --test remote_client`. Needs `kubectl` on the PATH. Every wait
//! polls a condition against a deadline.

mod support;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use serde_json::{json, Value};
use skiff_api::kinds;
use skiff_api::patch::PatchType;
use skiff_apiserver::LocalClient;
use skiff_client::{
    Client, ClientError, Credentials, DeleteOptions, ListOptions, RemoteClient, RemoteConfig,
    Scope, WatchEvent,
};
use support::{wait_for, Skiff, DEADLINE};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

fn remote(skiff: &Skiff) -> RemoteClient {
    RemoteClient::from_kubeconfig(&skiff.kubeconfig()).expect("a client from the kubeconfig")
}

fn config_maps(namespace: &str) -> Scope<'_> {
    Scope {
        resource: &kinds::config_map::V1,
        namespace: Some(namespace),
    }
}

fn config_map(name: &str, value: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap",
           "metadata": {"name": name, "labels": {"test": "remote"}},
           "data": {"key": value}})
}

/// A client over a registry of its own in a temporary directory, to compare answers with.
async fn local() -> (tempfile::TempDir, LocalClient) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = skiff_store::SqliteStore::open(&dir.path().join("local.db")).expect("a store");
    let registry = skiff_apiserver::registry::Registry::new(Arc::new(store));
    skiff_apiserver::system::ensure_builtin_namespaces(&registry)
        .await
        .expect("the built-in namespaces");
    (dir, LocalClient::new(registry))
}

/// The `Status` of a failed call: code, reason, message.
fn status_of(result: Result<impl std::fmt::Debug, ClientError>) -> (u16, &'static str, String) {
    match result {
        Err(ClientError::Api(status)) => (status.code, status.reason, status.message),
        other => panic!("expected an API error, got {other:?}"),
    }
}

/// The errors a missing object, a duplicate create and a stale update give.
async fn error_answers(client: &dyn Client) -> Vec<(u16, &'static str, String)> {
    let scope = config_maps("default");
    let missing = status_of(client.get(scope, "missing").await);
    let created = client
        .create(scope, config_map("twice", "1"))
        .await
        .expect("the first create");
    let duplicate = status_of(client.create(scope, config_map("twice", "1")).await);
    let mut newer = created.clone();
    newer["data"]["key"] = json!("2");
    client.update(scope, newer).await.expect("an update");
    let mut stale = created;
    stale["data"]["key"] = json!("3");
    let conflict = status_of(client.update(scope, stale).await);
    let missing_delete = status_of(
        client
            .delete(scope, "missing", &DeleteOptions::default())
            .await,
    );
    vec![missing, duplicate, conflict, missing_delete]
}

#[test]
fn reads_writes_and_errors_answer_as_the_local_client_does() {
    let skiff = Skiff::start();
    let rt = runtime();
    rt.block_on(async {
        let client = remote(&skiff);
        let scope = config_maps("default");

        // Create, read, list, update, patch in three formats, delete.
        let created = client
            .create(scope, config_map("one", "a"))
            .await
            .expect("create");
        assert!(created["metadata"]["uid"].is_string(), "{created}");
        let read = client.get(scope, "one").await.expect("get");
        assert_eq!(read["data"]["key"], "a");
        assert_eq!(
            read["metadata"]["resourceVersion"],
            created["metadata"]["resourceVersion"]
        );
        let listed = client
            .list(
                scope,
                &ListOptions {
                    label_selector: Some("test=remote".to_string()),
                    ..ListOptions::default()
                },
            )
            .await
            .expect("list");
        let names: Vec<&str> = listed
            .items
            .iter()
            .filter_map(|i| i["metadata"]["name"].as_str())
            .collect();
        assert_eq!(names, ["one"]);
        assert!(!listed.resource_version.is_empty());
        let mut changed = read.clone();
        changed["data"]["key"] = json!("b");
        let updated = client.update(scope, changed).await.expect("update");
        assert_eq!(updated["data"]["key"], "b");
        assert_ne!(
            updated["metadata"]["resourceVersion"],
            read["metadata"]["resourceVersion"]
        );
        let merged = client
            .patch(
                scope,
                "one",
                PatchType::Merge,
                json!({"data": {"more": "m"}}),
                false,
            )
            .await
            .expect("merge patch");
        assert_eq!(merged["data"], json!({"key": "b", "more": "m"}));
        let strategic = client
            .patch(
                scope,
                "one",
                PatchType::StrategicMerge,
                json!({"metadata": {"labels": {"extra": "x"}}}),
                false,
            )
            .await
            .expect("strategic merge patch");
        assert_eq!(strategic["metadata"]["labels"]["extra"], "x");
        let json_patched = client
            .patch(
                scope,
                "one",
                PatchType::Json,
                json!([{"op": "remove", "path": "/data/more"}]),
                false,
            )
            .await
            .expect("JSON patch");
        assert_eq!(json_patched["data"], json!({"key": "b"}));
        let gone = client
            .delete(scope, "one", &DeleteOptions::default())
            .await
            .expect("delete");
        assert!(gone.is_none(), "a ConfigMap goes at once: {gone:?}");
        assert_eq!(
            client.get(scope, "one").await.expect_err("deleted").code(),
            404
        );

        // The same failures give the same Status over HTTPS as in process.
        let over_https = error_answers(&client).await;
        let (_dir, local) = local().await;
        let in_process = error_answers(&local).await;
        assert_eq!(over_https, in_process);
        assert_eq!(
            over_https[0],
            (
                404,
                "NotFound",
                r#"configmaps "missing" not found"#.to_string()
            )
        );
        assert_eq!(
            over_https[1],
            (
                409,
                "AlreadyExists",
                r#"configmaps "twice" already exists"#.to_string()
            )
        );
        assert_eq!(over_https[2].0, 409);
        assert_eq!(over_https[2].1, "Conflict");
        assert!(
            over_https[2]
                .2
                .starts_with(r#"Operation cannot be fulfilled on configmaps "twice""#),
            "{:?}",
            over_https[2]
        );

        // Acting as a controller's ServiceAccount, a call holds only what RBAC grants it, and a
        // refusal reads as in process.
        let controller = skiff_auth::user::UserInfo::new(
            "system:serviceaccount:kube-system:replicaset-controller",
            &[
                "system:serviceaccounts",
                "system:serviceaccounts:kube-system",
                "system:authenticated",
            ],
        );
        let acting = client
            .as_user(controller.clone())
            .expect("a remote client acts for users");
        let refused = status_of(acting.create(scope, config_map("denied", "x")).await);
        let local_acting = local.as_user(controller).expect("a local acting client");
        assert_eq!(
            refused,
            status_of(local_acting.create(scope, config_map("denied", "x")).await)
        );
        assert_eq!(
            refused,
            (
                403,
                "Forbidden",
                r#"configmaps is forbidden: User "system:serviceaccount:kube-system:replicaset-controller" cannot create resource "configmaps" in API group "" in the namespace "default""#.to_string()
            )
        );
        let pods = Scope {
            resource: &kinds::pod::V1,
            namespace: Some("default"),
        };
        acting
            .list(pods, &ListOptions::default())
            .await
            .expect("its role lets the ReplicaSet controller list pods");

        // The scale subresource of a Deployment.
        let deployments = Scope {
            resource: &kinds::deployment::V1,
            namespace: Some("default"),
        };
        client
            .create(
                deployments,
                json!({"apiVersion": "apps/v1", "kind": "Deployment",
                    "metadata": {"name": "web"},
                    "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "web"}},
                        "template": {"metadata": {"labels": {"app": "web"}},
                            "spec": {"containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10"}]}}}}),
            )
            .await
            .expect("a Deployment");
        let mut scale = client
            .get_scale(deployments, "web")
            .await
            .expect("get scale");
        assert_eq!(scale["kind"], "Scale");
        assert_eq!(scale["spec"]["replicas"], 0);
        assert_eq!(scale["status"]["selector"], "app=web");
        scale["spec"]["replicas"] = json!(2);
        // The Deployment controller writes the Deployment meanwhile; without a
        // resourceVersion the write is unconditional, as `kubectl scale` without one is.
        scale["metadata"]
            .as_object_mut()
            .expect("metadata")
            .remove("resourceVersion");
        let scaled = client
            .update_scale(deployments, scale)
            .await
            .expect("update scale");
        assert_eq!(scaled["spec"]["replicas"], 2);
        let deployment = client.get(deployments, "web").await.expect("get");
        assert_eq!(deployment["spec"]["replicas"], 2);

        // Wrong credentials are refused as kubectl's would be.
        let mut config = RemoteConfig::from_kubeconfig(&skiff.kubeconfig()).expect("config");
        config.credentials = Credentials::Token("not-the-token".to_string());
        let stranger = RemoteClient::new(config).expect("client");
        assert_eq!(
            status_of(stranger.get(scope, "twice").await),
            (401, "Unauthorized", "Unauthorized".to_string())
        );
    });
}

/// The next event of `events`, failing the test if none comes within the deadline.
async fn next_event(
    events: &mut futures::stream::BoxStream<'static, WatchEvent>,
    what: &str,
) -> WatchEvent {
    tokio::time::timeout(DEADLINE, events.next())
        .await
        .unwrap_or_else(|_| panic!("no watch event for {what} within {DEADLINE:?}"))
        .unwrap_or_else(|| panic!("the watch ended before {what}"))
}

/// Polls `probe` until it holds, failing the test with `what` at the deadline.
async fn wait_until<F, Fut>(what: &str, mut probe: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while !probe().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn summary(event: &WatchEvent) -> (&'static str, String, String) {
    (
        event.event_type,
        event.object["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        event.object["data"]["key"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    )
}

#[test]
fn a_watch_sees_every_change_once_across_the_server_closing_it() {
    let skiff = Skiff::start();
    let rt = runtime();
    rt.block_on(async {
        let mut config = RemoteConfig::from_kubeconfig(&skiff.kubeconfig()).expect("config");
        // Each watch request lasts a second, so the server ends it between the changes below.
        config.watch_window = Duration::from_secs(1);
        let client = RemoteClient::new(config).expect("client");
        let scope = config_maps("default");
        let selected = ListOptions {
            label_selector: Some("test=remote".to_string()),
            ..ListOptions::default()
        };
        let list = client.list(scope, &selected).await.expect("list");
        let mut events = client
            .watch(
                scope,
                &ListOptions {
                    resource_version: Some(list.resource_version.clone()),
                    ..selected.clone()
                },
            )
            .await
            .expect("watch");

        client
            .create(scope, config_map("watched", "1"))
            .await
            .expect("create");
        assert_eq!(
            summary(&next_event(&mut events, "the create").await),
            ("ADDED", "watched".to_string(), "1".to_string())
        );
        let reopens = client.watch_reopens();
        wait_until(
            "the server to end the watch and the client to reopen it",
            || {
                let client = client.clone();
                async move { client.watch_reopens() > reopens }
            },
        )
        .await;
        client
            .patch(
                scope,
                "watched",
                PatchType::Merge,
                json!({"data": {"key": "2"}}),
                false,
            )
            .await
            .expect("patch");
        assert_eq!(
            summary(&next_event(&mut events, "the patch").await),
            ("MODIFIED", "watched".to_string(), "2".to_string())
        );
        let reopens = client.watch_reopens();
        wait_until("a second reopen", || {
            let client = client.clone();
            async move { client.watch_reopens() > reopens }
        })
        .await;
        client
            .delete(scope, "watched", &DeleteOptions::default())
            .await
            .expect("delete");
        assert_eq!(
            summary(&next_event(&mut events, "the delete").await),
            ("DELETED", "watched".to_string(), "2".to_string())
        );
        // Nothing was repeated: the next event is the next change.
        let reopens = client.watch_reopens();
        wait_until("a third reopen", || {
            let client = client.clone();
            async move { client.watch_reopens() > reopens }
        })
        .await;
        client
            .create(scope, config_map("after", "3"))
            .await
            .expect("create");
        assert_eq!(
            summary(&next_event(&mut events, "the last create").await),
            ("ADDED", "after".to_string(), "3".to_string())
        );
    });
}

#[test]
fn a_watch_from_a_compacted_revision_ends_with_410() {
    let skiff = Skiff::start_with(&["--compaction-interval", "1"]);
    let rt = runtime();
    rt.block_on(async {
        let client = remote(&skiff);
        let scope = config_maps("default");
        let old = client
            .create(scope, config_map("old", "1"))
            .await
            .expect("create");
        let old_revision = old["metadata"]["resourceVersion"]
            .as_str()
            .expect("a resourceVersion")
            .to_string();
        client
            .create(scope, config_map("newer", "2"))
            .await
            .expect("create");
        // Compaction runs every second; soon the old revision is gone.
        let deadline = tokio::time::Instant::now() + DEADLINE;
        let status = loop {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the old revision was never compacted"
            );
            let options = ListOptions {
                resource_version: Some(old_revision.clone()),
                timeout: Some(Duration::from_secs(1)),
                ..ListOptions::default()
            };
            match client.watch(scope, &options).await {
                Err(ClientError::Api(status)) if status.code == 410 => break status.to_status(),
                Err(other) => panic!("unexpected watch failure {other:?}"),
                Ok(mut events) => {
                    let mut expired = None;
                    while let Some(event) = events.next().await {
                        if event.event_type == "ERROR" {
                            expired = Some(event.object);
                            break;
                        }
                    }
                    if let Some(status) = expired {
                        break status;
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        assert_eq!(status["code"], 410, "{status}");
        assert_eq!(status["reason"], "Expired", "{status}");
        let message = status["message"].as_str().unwrap_or_default();
        assert!(
            message.starts_with(&format!("too old resource version: {old_revision} (")),
            "{message}"
        );
    });
}

/// `text` without the terminal colour sequences the server's log may carry.
fn without_colours(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // An escape sequence runs to its final letter.
            for next in chars.by_ref() {
                if next.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

const REPLICASET_BINDING: &str = "system:controller:replicaset-controller";

#[test]
fn the_replicaset_controller_runs_unchanged_over_the_remote_client() {
    let skiff = Skiff::start();
    let kubectl = skiff.kubectl();
    // The server's own ReplicaSet controller loses its rights, so pods appear only if the one
    // run here over HTTPS creates them.
    kubectl.ok(&["delete", "clusterrolebinding", REPLICASET_BINDING]);
    kubectl.ok(&[
        "create",
        "-f",
        &skiff
            .file_path(&skiff.write_file(
                "rs.yaml",
                "apiVersion: apps/v1\nkind: ReplicaSet\nmetadata:\n  name: remote\nspec:\n  replicas: 3\n  selector:\n    matchLabels:\n      app: remote\n  template:\n    metadata:\n      labels:\n        app: remote\n    spec:\n      containers:\n      - name: c\n        image: registry.k8s.io/pause:3.10\n",
            ))
            .to_string_lossy(),
    ]);
    let refusal = "request refused user=system:serviceaccount:kube-system:replicaset-controller";
    wait_for("the server's controller to be refused", DEADLINE, || {
        without_colours(&skiff.log())
            .contains(refusal)
            .then_some(())
    });
    let pods = kubectl.json(&["get", "pods", "-l", "app=remote"]);
    assert_eq!(
        pods["items"],
        json!([]),
        "no pod without the remote controller"
    );

    let rt = runtime();
    let controller = rt.block_on(async {
        let client: Arc<dyn Client> = Arc::new(remote(&skiff));
        let replica_sets = skiff_runtime::Informer::start(
            client.clone(),
            skiff_runtime::InformerConfig::new(&kinds::replica_set::V1),
        );
        let pods = skiff_runtime::Informer::start(
            client.clone(),
            skiff_runtime::InformerConfig::new(&kinds::pod::V1),
        );
        tokio::time::timeout(DEADLINE, async {
            replica_sets.wait_synced().await;
            pods.wait_synced().await;
        })
        .await
        .expect("the informers sync over HTTPS");
        let controller = skiff_controllers::replicaset::controller::ReplicaSetController::new(
            client.clone(),
            replica_sets,
            pods,
            skiff_runtime::EventRecorder::new(
                client,
                skiff_runtime::EventSource::component("replicaset-controller"),
            ),
        );
        tokio::spawn(skiff_controllers::shell::QueuedController::run(
            controller.clone(),
            2,
        ));
        controller
    });

    let owned = wait_for(
        "the remote controller to create three pods",
        DEADLINE,
        || {
            let pods = kubectl.json(&["get", "pods", "-l", "app=remote"]);
            let items = pods["items"].as_array()?.clone();
            (items.len() == 3).then_some(items)
        },
    );
    for pod in &owned {
        let owner = &pod["metadata"]["ownerReferences"][0];
        assert_eq!(owner["kind"], "ReplicaSet", "{pod}");
        assert_eq!(owner["name"], "remote", "{pod}");
        assert_eq!(owner["controller"], true, "{pod}");
    }
    wait_for(
        "the remote controller to count the replicas",
        DEADLINE,
        || {
            let replica_set = kubectl.json(&["get", "replicaset", "remote"]);
            (replica_set["status"]["replicas"] == 3).then_some(())
        },
    );
    // Scaled down, it deletes what is too many.
    kubectl.ok(&["scale", "replicaset", "remote", "--replicas=1"]);
    wait_for("the remote controller to delete two pods", DEADLINE, || {
        let pods = kubectl.json(&["get", "pods", "-l", "app=remote"]);
        let live = pods["items"]
            .as_array()?
            .iter()
            .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
            .count();
        (live == 1).then_some(())
    });
    skiff_controllers::shell::QueuedController::shutdown(&controller);
    drop(rt);
}

#[test]
fn a_certificate_request_is_decided_through_its_approval_subresource_over_https() {
    let skiff = Skiff::start();
    let rt = runtime();
    rt.block_on(async {
        let client = remote(&skiff);
        let scope = Scope {
            resource: &kinds::certificate_signing_request::V1,
            namespace: None,
        };
        let key = rcgen::KeyPair::generate().expect("a key");
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "jane");
        let pem = params
            .serialize_request(&key)
            .expect("a request")
            .pem()
            .expect("PEM");
        use base64::Engine as _;
        let request = base64::engine::general_purpose::STANDARD.encode(pem);
        let created = client
            .create(
                scope,
                json!({"apiVersion": "certificates.k8s.io/v1", "kind": "CertificateSigningRequest",
                       "metadata": {"name": "jane"},
                       "spec": {"request": request, "signerName": "example.com/signer",
                                "usages": ["client auth"]}}),
            )
            .await
            .expect("created");
        let mut decided = created.clone();
        decided["status"] = json!({"conditions": [{"type": "Denied", "status": "True",
            "reason": "Refused", "message": "not today"}]});
        decided["spec"]["usages"] = json!(["server auth"]);
        let answered = client
            .update_approval(scope, decided)
            .await
            .expect("the approval subresource takes the decision");
        assert_eq!(answered["status"]["conditions"][0]["type"], "Denied");
        assert_eq!(
            answered["spec"], created["spec"],
            "the approval subresource changes nothing but the conditions"
        );
    });
}
