//! The registry's object machinery, over a real SQLite store.

mod support;

use std::time::Duration;

use futures::StreamExt;
use serde_json::{json, Value};
use skiff_api::resources::{self, ResourceInfo, Subresource};
use skiff_apiserver::registry::{DeleteOptions, Deleted, ListOptions, WriteOptions};
use skiff_apiserver::system;
use support::fresh_registry;

fn res(group: &str, version: &str, plural: &str) -> &'static ResourceInfo {
    resources::find(group, version, plural).unwrap()
}

fn deployment(name: &str, image: &str) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                         "spec": {"containers": [{"name": "c", "image": image}]}}
        }
    })
}

fn opts() -> WriteOptions {
    WriteOptions::default()
}

#[tokio::test]
async fn generation_moves_only_with_the_spec() {
    let (_d, r) = fresh_registry().await;
    let deploy = res("apps", "v1", "deployments");
    let created = r
        .create(deploy, Some("default"), deployment("web", "a:1"), opts())
        .await
        .unwrap()
        .object;
    assert_eq!(created["metadata"]["generation"], 1);
    assert_eq!(
        created["spec"]["strategy"]["rollingUpdate"]["maxSurge"],
        "25%"
    );

    // A label change is not a spec change.
    let mut relabeled = created.clone();
    relabeled["metadata"]["labels"]["extra"] = json!("x");
    let after_label = r
        .update(deploy, Some("default"), "web", relabeled, None, opts())
        .await
        .unwrap()
        .object;
    assert_eq!(after_label["metadata"]["generation"], 1);

    let mut changed = after_label.clone();
    changed["spec"]["template"]["spec"]["containers"][0]["image"] = json!("a:2");
    let after_spec = r
        .update(deploy, Some("default"), "web", changed, None, opts())
        .await
        .unwrap()
        .object;
    assert_eq!(after_spec["metadata"]["generation"], 2);

    // Status writes never move generation, and spec sent to /status is ignored.
    let mut status = after_spec.clone();
    status["status"] = json!({"observedGeneration": 2, "replicas": 3});
    status["spec"]["replicas"] = json!(10);
    let after_status = r
        .update(
            deploy,
            Some("default"),
            "web",
            status,
            Some(Subresource::Status),
            opts(),
        )
        .await
        .unwrap()
        .object;
    assert_eq!(after_status["metadata"]["generation"], 2);
    assert_eq!(after_status["spec"]["replicas"], 3);
    assert_eq!(after_status["status"]["replicas"], 3);

    // And status sent to the main resource is ignored.
    let mut sneaky = after_status.clone();
    sneaky["status"]["replicas"] = json!(99);
    let after_main = r
        .update(deploy, Some("default"), "web", sneaky, None, opts())
        .await
        .unwrap()
        .object;
    assert_eq!(after_main["status"]["replicas"], 3);
}

#[tokio::test]
async fn unchanged_updates_write_nothing() {
    let (_d, r) = fresh_registry().await;
    let deploy = res("apps", "v1", "deployments");
    let created = r
        .create(deploy, Some("default"), deployment("web", "a:1"), opts())
        .await
        .unwrap()
        .object;
    let same = r
        .update(
            deploy,
            Some("default"),
            "web",
            created.clone(),
            None,
            opts(),
        )
        .await
        .unwrap()
        .object;
    assert_eq!(
        same["metadata"]["resourceVersion"],
        created["metadata"]["resourceVersion"]
    );
}

#[tokio::test]
async fn stale_resource_versions_conflict() {
    let (_d, r) = fresh_registry().await;
    let deploy = res("apps", "v1", "deployments");
    let created = r
        .create(deploy, Some("default"), deployment("web", "a:1"), opts())
        .await
        .unwrap()
        .object;
    let mut first = created.clone();
    first["spec"]["replicas"] = json!(4);
    let mut second = created.clone();
    second["spec"]["replicas"] = json!(5);
    r.update(deploy, Some("default"), "web", first, None, opts())
        .await
        .unwrap();
    let err = r
        .update(deploy, Some("default"), "web", second, None, opts())
        .await
        .unwrap_err();
    assert_eq!(err.code, 409);
    assert_eq!(err.reason, "Conflict");
    assert!(
        err.message.contains("the object has been modified"),
        "{}",
        err.message
    );
}

#[tokio::test]
async fn creates_need_an_existing_namespace_and_a_valid_object() {
    let (_d, r) = fresh_registry().await;
    let deploy = res("apps", "v1", "deployments");
    let err = r
        .create(deploy, Some("nope"), deployment("web", "a:1"), opts())
        .await
        .unwrap_err();
    assert_eq!(
        (err.code, err.message.as_str()),
        (404, "namespaces \"nope\" not found")
    );

    let mut bad = deployment("bad", "a:1");
    bad["spec"]["template"]["metadata"]["labels"] = json!({"app": "other"});
    let err = r
        .create(deploy, Some("default"), bad, opts())
        .await
        .unwrap_err();
    assert_eq!(err.code, 422);
    assert!(
        err.message
            .starts_with("Deployment.apps \"bad\" is invalid: "),
        "{}",
        err.message
    );
    assert!(
        err.message
            .contains("`selector` does not match template `labels`"),
        "{}",
        err.message
    );

    r.create(deploy, Some("default"), deployment("web", "a:1"), opts())
        .await
        .unwrap();
    let err = r
        .create(deploy, Some("default"), deployment("web", "a:1"), opts())
        .await
        .unwrap_err();
    assert_eq!(
        (err.code, err.message.as_str()),
        (409, "deployments.apps \"web\" already exists")
    );
}

#[tokio::test]
async fn generate_name_and_list_paging() {
    let (_d, r) = fresh_registry().await;
    let cm = res("", "v1", "configmaps");
    for _ in 0..7 {
        let obj = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"generateName": "c-", "labels": {"n": "x"}}});
        let created = r
            .create(cm, Some("default"), obj, opts())
            .await
            .unwrap()
            .object;
        assert!(created["metadata"]["name"]
            .as_str()
            .unwrap()
            .starts_with("c-"));
    }
    let mut seen = Vec::new();
    let mut token = None;
    loop {
        let page = r
            .list(
                cm,
                Some("default"),
                &ListOptions {
                    limit: Some(3),
                    continue_token: token.clone(),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert!(page.items.len() <= 3);
        seen.extend(
            page.items
                .iter()
                .map(|i| i["metadata"]["name"].as_str().unwrap().to_string()),
        );
        match page.continue_token {
            Some(t) => token = Some(t),
            None => break,
        }
    }
    assert_eq!(seen.len(), 7);
    let mut sorted = seen.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted, seen, "pages are in key order without repeats");
}

#[tokio::test]
async fn finalizers_hold_deletion_until_removed() {
    let (_d, r) = fresh_registry().await;
    let cm = res("", "v1", "configmaps");
    let obj = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "held", "finalizers": ["example.com/hold"]}});
    r.create(cm, Some("default"), obj, opts()).await.unwrap();
    let pending = match r
        .delete(cm, Some("default"), "held", &DeleteOptions::default())
        .await
        .unwrap()
    {
        Deleted::Pending(o) => o,
        Deleted::Gone(_) => panic!("deleted despite a finalizer"),
    };
    assert!(pending["metadata"]["deletionTimestamp"].is_string());
    let mut released = pending.clone();
    released["metadata"]["finalizers"] = json!([]);
    r.update(cm, Some("default"), "held", released, None, opts())
        .await
        .unwrap();
    assert_eq!(
        r.get(cm, Some("default"), "held").await.unwrap_err().code,
        404
    );
}

#[tokio::test]
async fn pods_on_a_node_terminate_gracefully() {
    let (_d, r) = fresh_registry().await;
    let pods = res("", "v1", "pods");
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
        "spec": {"containers": [{"name": "c", "image": "nginx"}]}});
    r.create(pods, Some("default"), pod.clone(), opts())
        .await
        .unwrap();
    r.bind_pod("default", "p", "node-1").await.unwrap();
    let bound = r.get(pods, Some("default"), "p").await.unwrap();
    assert_eq!(bound["spec"]["nodeName"], "node-1");
    assert!(bound["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["type"] == "PodScheduled" && c["status"] == "True"));
    assert_eq!(
        r.bind_pod("default", "p", "node-2").await.unwrap_err().code,
        409
    );

    match r
        .delete(pods, Some("default"), "p", &DeleteOptions::default())
        .await
        .unwrap()
    {
        Deleted::Pending(o) => assert_eq!(o["metadata"]["deletionGracePeriodSeconds"], 30),
        Deleted::Gone(_) => panic!("a bound pod must wait for its node"),
    }
    let now = DeleteOptions {
        grace_period_seconds: Some(0),
        ..Default::default()
    };
    assert!(matches!(
        r.delete(pods, Some("default"), "p", &now).await.unwrap(),
        Deleted::Gone(_)
    ));

    // An unscheduled pod goes at once.
    r.create(pods, Some("default"), pod, opts()).await.unwrap();
    assert!(matches!(
        r.delete(pods, Some("default"), "p", &DeleteOptions::default())
            .await
            .unwrap(),
        Deleted::Gone(_)
    ));
}

#[tokio::test]
async fn watches_resume_and_follow_selectors() {
    let (_d, r) = fresh_registry().await;
    let cm = res("", "v1", "configmaps");
    let make = |name: &str, tier: &str| json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "labels": {"tier": tier}}});
    let a = r
        .create(cm, Some("default"), make("a", "web"), opts())
        .await
        .unwrap()
        .object;
    let from = a["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    let options = ListOptions {
        label_selector: Some("tier=web".into()),
        resource_version: Some(from),
        ..Default::default()
    };
    let mut events = r.watch(cm, Some("default"), &options).await.unwrap();
    r.create(cm, Some("default"), make("b", "web"), opts())
        .await
        .unwrap();
    r.create(cm, Some("default"), make("c", "db"), opts())
        .await
        .unwrap();
    let mut moved = r.get(cm, Some("default"), "a").await.unwrap();
    moved["metadata"]["labels"]["tier"] = json!("db");
    r.update(cm, Some("default"), "a", moved, None, opts())
        .await
        .unwrap();
    let mut got = Vec::new();
    for _ in 0..2 {
        let ev = tokio::time::timeout(Duration::from_secs(5), events.next())
            .await
            .unwrap()
            .unwrap();
        got.push((
            ev.event_type,
            ev.object["metadata"]["name"].as_str().unwrap().to_string(),
        ));
    }
    // "c" never matched; "a" leaving the selection is a deletion for this watcher.
    assert_eq!(
        got,
        vec![("ADDED", "b".to_string()), ("DELETED", "a".to_string())]
    );
}

#[tokio::test]
async fn watching_a_compacted_revision_answers_expired() {
    let (_d, r) = fresh_registry().await;
    let cm = res("", "v1", "configmaps");
    for i in 0..3 {
        let obj =
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": format!("c{i}")}});
        r.create(cm, Some("default"), obj, opts()).await.unwrap();
    }
    let current = r.store().current_revision().await.unwrap();
    r.store().compact(current).await.unwrap();
    let options = ListOptions {
        resource_version: Some("1".into()),
        ..Default::default()
    };
    let mut events = r.watch(cm, Some("default"), &options).await.unwrap();
    let ev = events.next().await.unwrap();
    assert_eq!(ev.event_type, "ERROR");
    assert_eq!(ev.object["code"], 410);
    assert_eq!(ev.object["reason"], "Expired");
}

#[tokio::test]
async fn hpa_is_served_in_both_versions_from_one_object() {
    let (_d, r) = fresh_registry().await;
    let v1 = res("autoscaling", "v1", "horizontalpodautoscalers");
    let v2 = res("autoscaling", "v2", "horizontalpodautoscalers");
    let hpa = json!({"apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "web"},
        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                 "minReplicas": 1, "maxReplicas": 10, "targetCPUUtilizationPercentage": 50}});
    r.create(v1, Some("default"), hpa, opts()).await.unwrap();
    let as_v2 = r.get(v2, Some("default"), "web").await.unwrap();
    assert_eq!(as_v2["apiVersion"], "autoscaling/v2");
    assert_eq!(as_v2["spec"]["metrics"][0]["resource"]["name"], "cpu");
    assert_eq!(
        as_v2["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"],
        50
    );
    let as_v1 = r.get(v1, Some("default"), "web").await.unwrap();
    assert_eq!(as_v1["spec"]["targetCPUUtilizationPercentage"], 50);
}

#[tokio::test]
async fn namespaces_empty_before_they_go() {
    let (_d, r) = fresh_registry().await;
    let ns = res("", "v1", "namespaces");
    let cm = res("", "v1", "configmaps");
    r.create(
        ns,
        None,
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team"}}),
        opts(),
    )
    .await
    .unwrap();
    r.create(
        cm,
        Some("team"),
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}),
        opts(),
    )
    .await
    .unwrap();
    match r
        .delete(ns, None, "team", &DeleteOptions::default())
        .await
        .unwrap()
    {
        Deleted::Pending(o) => assert_eq!(o["status"]["phase"], "Terminating"),
        Deleted::Gone(_) => panic!("a namespace waits for its contents"),
    }
    let err = r
        .create(
            cm,
            Some("team"),
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "d"}}),
            opts(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code, 403);
    system::finalize_namespace(&r, "team").await.unwrap();
    assert_eq!(r.get(ns, None, "team").await.unwrap_err().code, 404);
    assert_eq!(r.get(cm, Some("team"), "c").await.unwrap_err().code, 404);
    assert_eq!(
        r.delete(ns, None, "default", &DeleteOptions::default())
            .await
            .unwrap_err()
            .code,
        403
    );
}

#[tokio::test]
async fn exact_lists_rebuild_the_past_and_refuse_what_history_lacks() {
    let (_d, r) = fresh_registry().await;
    let configmaps = res("", "v1", "configmaps");
    let cm = |name: &str, value: &str| {
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name},
               "data": {"v": value}})
    };
    let rv_of = |obj: &Value| {
        obj["metadata"]["resourceVersion"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let a1 = r
        .create(configmaps, Some("default"), cm("a", "1"), opts())
        .await
        .unwrap()
        .object;
    let b = r
        .create(configmaps, Some("default"), cm("b", "1"), opts())
        .await
        .unwrap()
        .object;
    let mut a2 = a1.clone();
    a2["data"]["v"] = json!("2");
    r.update(configmaps, Some("default"), "a", a2, None, opts())
        .await
        .unwrap();
    r.delete(configmaps, Some("default"), "b", &DeleteOptions::default())
        .await
        .unwrap();
    let exact = |rv: String| ListOptions {
        resource_version: Some(rv),
        resource_version_match: Some("Exact".to_string()),
        ..Default::default()
    };
    let summary = |list: &skiff_apiserver::registry::ObjectList| -> Vec<(String, String)> {
        list.items
            .iter()
            .map(|o| {
                (
                    o["metadata"]["name"].as_str().unwrap().to_string(),
                    o["data"]["v"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    };
    let at_a1 = r
        .list(configmaps, Some("default"), &exact(rv_of(&a1)))
        .await
        .unwrap();
    assert_eq!(summary(&at_a1), [("a".to_string(), "1".to_string())]);
    assert_eq!(at_a1.resource_version.to_string(), rv_of(&a1));
    let at_b = r
        .list(configmaps, Some("default"), &exact(rv_of(&b)))
        .await
        .unwrap();
    assert_eq!(
        summary(&at_b),
        [
            ("a".to_string(), "1".to_string()),
            ("b".to_string(), "1".to_string())
        ]
    );
    // Each object keeps the resourceVersion it had then.
    assert_eq!(rv_of(&at_b.items[1]), rv_of(&b));

    let current = r.store().current_revision().await.unwrap();
    let future = r
        .list(
            configmaps,
            Some("default"),
            &exact((current + 5).to_string()),
        )
        .await
        .unwrap_err();
    assert_eq!((future.code, future.reason), (504, "Timeout"));
    assert_eq!(
        future.message,
        format!(
            "Timeout: Too large resource version: {}, current: {current}",
            current + 5
        )
    );

    r.store().compact(current).await.unwrap();
    let gone = r
        .list(configmaps, Some("default"), &exact(rv_of(&a1)))
        .await
        .unwrap_err();
    assert_eq!((gone.code, gone.reason), (410, "Expired"));
    assert_eq!(
        gone.message,
        "The resourceVersion for the provided list is too old."
    );
}

#[tokio::test]
async fn a_multibyte_generate_name_across_the_cut_is_invalid_not_a_crash() {
    let (_d, r) = fresh_registry().await;
    let pods = res("", "v1", "pods");
    let prefix = format!("{}é-", "a".repeat(57));
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"generateName": prefix},
        "spec": {"containers": [{"name": "c", "image": "nginx"}]}});
    let err = r
        .create(pods, Some("default"), pod, opts())
        .await
        .expect_err("a prefix that is not a DNS subdomain makes an invalid name");
    assert_eq!(err.code, 422, "{err}");
    assert_eq!(err.reason, "Invalid");

    // A long ASCII prefix is cut to 58 bytes and the name is valid.
    let long = format!("{}-", "b".repeat(70));
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"generateName": long},
        "spec": {"containers": [{"name": "c", "image": "nginx"}]}});
    let created = r
        .create(pods, Some("default"), pod, opts())
        .await
        .unwrap()
        .object;
    let name = created["metadata"]["name"].as_str().unwrap();
    assert_eq!(name.len(), 63);
    assert!(name.starts_with(&"b".repeat(58)));
}

#[tokio::test]
async fn a_huge_grace_period_is_kept_and_the_deadline_saturates() {
    let (_d, r) = fresh_registry().await;
    let pods = res("", "v1", "pods");
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "slow"},
        "spec": {"containers": [{"name": "c", "image": "nginx"}]}});
    r.create(pods, Some("default"), pod, opts()).await.unwrap();
    r.bind_pod("default", "slow", "node-1").await.unwrap();
    let huge = DeleteOptions {
        grace_period_seconds: Some(999_999_999_999),
        ..Default::default()
    };
    let marked = match r
        .delete(pods, Some("default"), "slow", &huge)
        .await
        .unwrap()
    {
        Deleted::Pending(o) => o,
        Deleted::Gone(_) => panic!("a bound pod with a grace period must wait for its node"),
    };
    assert_eq!(
        marked["metadata"]["deletionGracePeriodSeconds"],
        999_999_999_999i64
    );
    let deadline = marked["metadata"]["deletionTimestamp"].as_str().unwrap();
    assert!(deadline.starts_with("9999-"), "{deadline}");

    // A shorter grace period still shortens it.
    let short = DeleteOptions {
        grace_period_seconds: Some(5),
        ..Default::default()
    };
    match r
        .delete(pods, Some("default"), "slow", &short)
        .await
        .unwrap()
    {
        Deleted::Pending(o) => assert_eq!(o["metadata"]["deletionGracePeriodSeconds"], 5),
        Deleted::Gone(_) => panic!("a grace period of 5 s still waits"),
    }

    // A negative grace period counts as one second, as on Kubernetes' delete path.
    let negative = DeleteOptions {
        grace_period_seconds: Some(-5),
        ..Default::default()
    };
    match r
        .delete(pods, Some("default"), "slow", &negative)
        .await
        .unwrap()
    {
        Deleted::Pending(o) => assert_eq!(o["metadata"]["deletionGracePeriodSeconds"], 1),
        Deleted::Gone(_) => panic!("a negative grace period is one second, not immediate"),
    }
}

#[tokio::test]
async fn dry_run_updates_answer_at_the_current_resource_version_and_store_nothing() {
    let (_d, r) = fresh_registry().await;
    let config_maps = res("", "v1", "configmaps");
    let config_map = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "settings"}, "data": {"mode": "fast"}});
    let created = r
        .create(config_maps, Some("default"), config_map, opts())
        .await
        .unwrap()
        .object;
    let version = created["metadata"]["resourceVersion"].clone();
    assert!(version.is_string(), "created without a resourceVersion");

    let mut changed = created.clone();
    changed["data"]["mode"] = json!("slow");
    let dry_run = WriteOptions {
        dry_run: true,
        ..opts()
    };
    let answer = r
        .update(
            config_maps,
            Some("default"),
            "settings",
            changed,
            None,
            dry_run,
        )
        .await
        .unwrap()
        .object;
    assert_eq!(answer["data"]["mode"], "slow");
    assert_eq!(answer["metadata"]["resourceVersion"], version);
    let stored = r
        .get(config_maps, Some("default"), "settings")
        .await
        .unwrap();
    assert_eq!(stored, created, "the dry run stored something");
}

#[tokio::test]
async fn empty_metadata_maps_are_not_stored_and_change_nothing() {
    let (_d, r) = fresh_registry().await;
    let config_maps = res("", "v1", "configmaps");
    let config_map = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "plain", "annotations": {}, "labels": {}}, "data": {"k": "v"}});
    let created = r
        .create(config_maps, Some("default"), config_map, opts())
        .await
        .unwrap()
        .object;
    assert_eq!(created["metadata"].get("annotations"), None);
    assert_eq!(created["metadata"].get("labels"), None);

    let mut with_empty = created.clone();
    with_empty["metadata"]["annotations"] = json!({});
    with_empty["metadata"]["finalizers"] = json!([]);
    let updated = r
        .update(
            config_maps,
            Some("default"),
            "plain",
            with_empty,
            None,
            opts(),
        )
        .await
        .unwrap()
        .object;
    assert_eq!(
        updated, created,
        "adding empty maps changed the object or its resourceVersion"
    );
}

fn pod_with_app(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
           "spec": {"containers": [{"name": "app", "image": "busybox"}]}})
}

#[tokio::test]
async fn ephemeral_containers_subresource_only_adds_ephemeral_containers() {
    let (_d, r) = fresh_registry().await;
    let pods = res("", "v1", "pods");
    let created = r
        .create(pods, Some("default"), pod_with_app("web"), opts())
        .await
        .unwrap()
        .object;

    // The write adds a debugger; the image and label changes riding along are ignored.
    let mut request = created.clone();
    request["spec"]["ephemeralContainers"] = json!([{"name": "debugger", "image": "busybox",
        "stdin": true, "tty": true, "targetContainerName": "app"}]);
    request["spec"]["containers"][0]["image"] = json!("alpine");
    request["metadata"]["labels"] = json!({"sneaked": "in"});
    let added = r
        .update(
            pods,
            Some("default"),
            "web",
            request,
            Some(Subresource::EphemeralContainers),
            opts(),
        )
        .await
        .expect("adding an ephemeral container is allowed")
        .object;
    let debugger = &added["spec"]["ephemeralContainers"][0];
    assert_eq!(debugger["name"], "debugger");
    assert_eq!(debugger["targetContainerName"], "app");
    assert_eq!(
        debugger["imagePullPolicy"], "Always",
        "ephemeral containers are defaulted like containers"
    );
    assert_eq!(added["spec"]["containers"][0]["image"], "busybox");
    assert!(added["metadata"].get("labels").is_none());

    // Changing it through the subresource is Kubernetes' 422.
    let mut changed = added.clone();
    changed["spec"]["ephemeralContainers"][0]["image"] = json!("alpine");
    let err = r
        .update(
            pods,
            Some("default"),
            "web",
            changed,
            Some(Subresource::EphemeralContainers),
            opts(),
        )
        .await
        .expect_err("an existing ephemeral container may not change");
    assert_eq!((err.code, err.reason), (422, "Invalid"));
    assert_eq!(
        err.message,
        "Pod \"web\" is invalid: spec.ephemeralContainers: Forbidden: existing ephemeral containers \"debugger\" may not be changed\n\
         \x20 core.EphemeralContainer{\n\
         \x20 \tEphemeralContainerCommon: core.EphemeralContainerCommon{\n\
         \x20 \t\tName:    \"debugger\",\n\
         - \t\tImage:   \"busybox\",\n\
         + \t\tImage:   \"alpine\",\n\
         \x20 \t\tCommand: nil,\n\
         \x20 \t\tArgs:    nil,\n\
         \x20 \t\t... // 21 identical fields\n\
         \x20 \t},\n\
         \x20 \tTargetContainerName: \"app\",\n\
         \x20 }\n",
        "Kubernetes appends the change's diff"
    );

    // A plain pod update may not touch them either.
    let mut removed = added.clone();
    removed["spec"]
        .as_object_mut()
        .unwrap()
        .remove("ephemeralContainers");
    let err = r
        .update(pods, Some("default"), "web", removed, None, opts())
        .await
        .expect_err("a pod update may not remove ephemeral containers");
    assert_eq!(err.code, 422);
}

fn as_manager(name: &str) -> WriteOptions {
    WriteOptions {
        field_manager: skiff_apiserver::registry::FieldManagerName::new(name),
        ..WriteOptions::default()
    }
}

/// The `managedFields` entry of `manager`, failing the test when absent.
fn managed_entry<'a>(object: &'a Value, manager: &str) -> &'a Value {
    object["metadata"]["managedFields"]
        .as_array()
        .and_then(|list| list.iter().find(|e| e["manager"] == manager))
        .unwrap_or_else(|| panic!("no entry for {manager}: {}", object["metadata"]))
}

#[tokio::test]
async fn writes_record_their_managers_fields() {
    let (_d, r) = fresh_registry().await;
    let deploy = res("apps", "v1", "deployments");
    let created = r
        .create(
            deploy,
            Some("default"),
            deployment("web", "a:1"),
            as_manager("creator"),
        )
        .await
        .unwrap()
        .object;
    let creator = managed_entry(&created, "creator");
    assert_eq!(creator["operation"], "Update");
    assert_eq!(creator["apiVersion"], "apps/v1");
    assert!(creator["fieldsV1"].pointer("/f:spec/f:replicas").is_some());
    assert!(
        creator["fieldsV1"].pointer("/f:metadata/f:name").is_none(),
        "identity is nobody's: {creator}"
    );

    // A no-op write by someone else records nothing and writes nothing.
    let same = r
        .update(
            deploy,
            Some("default"),
            "web",
            created.clone(),
            None,
            as_manager("editor"),
        )
        .await
        .unwrap()
        .object;
    assert_eq!(same, created);

    // A change moves the field to its writer.
    let mut scaled = created.clone();
    scaled["spec"]["replicas"] = json!(5);
    let edited = r
        .update(
            deploy,
            Some("default"),
            "web",
            scaled,
            None,
            as_manager("editor"),
        )
        .await
        .unwrap()
        .object;
    assert!(managed_entry(&edited, "editor")["fieldsV1"]
        .pointer("/f:spec/f:replicas")
        .is_some());
    assert!(managed_entry(&edited, "creator")["fieldsV1"]
        .pointer("/f:spec/f:replicas")
        .is_none());

    // Status writes are recorded under the subresource.
    let mut status = edited.clone();
    status["status"] = json!({"replicas": 5});
    let with_status = r
        .update(
            deploy,
            Some("default"),
            "web",
            status,
            Some(Subresource::Status),
            as_manager("kube-controller-manager"),
        )
        .await
        .unwrap()
        .object;
    let controller = managed_entry(&with_status, "kube-controller-manager");
    assert_eq!(controller["subresource"], "status");
    assert!(controller["fieldsV1"]
        .pointer("/f:status/f:replicas")
        .is_some());
    assert!(controller["fieldsV1"].get("f:spec").is_none());
    assert!(managed_entry(&with_status, "editor")["fieldsV1"]
        .pointer("/f:spec/f:replicas")
        .is_some());
}
