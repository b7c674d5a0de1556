//! Keeps one local APIService per served group version, as kube-aggregator's
//! auto-registration and CRD registration controllers do: before serving, then after every
//! change to CustomResourceDefinitions or APIServices, and every few seconds besides (a
//! definition's kind joins or leaves the served groups just after its own watch event). What
//! to write is decided by the pure [`skiff_api::kinds::api_service::plan`].

use std::time::Duration;

use futures::StreamExt;
use skiff_api::kinds::api_service::{self, plan, Step};
use skiff_api::kinds::custom_resource_definition::V1 as CRDS;
use skiff_api::resources::Subresource;

use axum::body::Body;
use axum::http::{header, HeaderValue};
use axum::response::Response;
use serde_json::{json, Value};

use crate::registry::{DeleteOptions, ListOptions, Registry, WriteOptions};
use crate::status::ApiError;

/// How often the APIServices are compared with the served groups without any event.
const RESYNC: Duration = Duration::from_secs(5);

/// The group versions served now, core first, then the review groups (served outside the
/// kind table) and `extra` (such as `metrics.k8s.io`).
fn served(extra: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
    skiff_api::resources::groups()
        .into_iter()
        .flat_map(|(group, versions)| versions.into_iter().map(move |v| (group, v)))
        .chain(crate::discovery::REVIEW_GROUPS.iter().map(|g| (*g, "v1")))
        .chain(extra.iter().copied())
        .collect()
}

async fn pass(
    registry: &Registry,
    extra: &[(&'static str, &'static str)],
) -> Result<usize, ApiError> {
    let stored = registry
        .list(&api_service::V1, None, &ListOptions::default())
        .await?
        .items;
    let now = jiff::Timestamp::now()
        .round(jiff::Unit::Second)
        .unwrap_or_else(|_| jiff::Timestamp::now())
        .to_string();
    let mut writes = 0;
    for step in plan(&served(extra), &stored, &now) {
        let written = match step {
            Step::Create(object) => registry
                .create(&api_service::V1, None, object, WriteOptions::default())
                .await
                .map(|_| ()),
            Step::Delete(name) => registry
                .delete(&api_service::V1, None, &name, &DeleteOptions::default())
                .await
                .map(|_| ()),
            Step::WriteStatus(object) => {
                let name = object
                    .pointer("/metadata/name")
                    .and_then(|n| n.as_str())
                    .unwrap_or("")
                    .to_string();
                registry
                    .update(
                        &api_service::V1,
                        None,
                        &name,
                        object,
                        Some(Subresource::Status),
                        WriteOptions::default(),
                    )
                    .await
                    .map(|_| ())
            }
        };
        match written {
            Ok(()) => writes += 1,
            // Another writer got there first; the next pass sees its result.
            Err(e) if e.code == 409 || e.code == 404 => {}
            Err(e) => return Err(e),
        }
    }
    Ok(writes)
}

/// Checks the APIServices naming a Service and writes their availability.
async fn check_remote(registry: &Registry) {
    match registry
        .list(&api_service::V1, None, &ListOptions::default())
        .await
    {
        Ok(list) => {
            let now = jiff::Timestamp::now()
                .round(jiff::Unit::Second)
                .unwrap_or_else(|_| jiff::Timestamp::now())
                .to_string();
            crate::aggregator::check_remote(registry, &list.items, &now).await;
        }
        Err(error) => tracing::warn!(%error, "listing APIServices to check failed"),
    }
}

/// Creates the APIServices of the groups served at start, the kind table's and `extra`, and
/// writes their status: run before the server serves, so nothing is left to write once it
/// does.
pub async fn ensure_at_start(
    registry: &Registry,
    extra: &[(&'static str, &'static str)],
) -> Result<(), ApiError> {
    // The creates, then the status of what they created.
    for _ in 0..3 {
        if pass(registry, extra).await? == 0 {
            break;
        }
    }
    Ok(())
}

/// Starts the loop keeping the APIServices in step with the served groups and `extra`.
pub fn spawn(registry: Registry, extra: Vec<(&'static str, &'static str)>) {
    tokio::spawn(run(registry, extra));
}

async fn run(registry: Registry, extra: Vec<(&'static str, &'static str)>) {
    loop {
        let options = ListOptions::default();
        let watches = futures::future::try_join(
            registry.watch(&CRDS, None, &options),
            registry.watch(&api_service::V1, None, &options),
        )
        .await;
        match watches {
            Ok((definitions, api_services)) => {
                let mut changes = futures::stream::select(definitions, api_services);
                loop {
                    if let Err(error) = pass(&registry, &extra).await {
                        tracing::warn!(%error, "keeping the local APIServices failed");
                    }
                    check_remote(&registry).await;
                    tokio::select! {
                        event = changes.next() => if event.is_none() { break },
                        () = tokio::time::sleep(RESYNC) => {}
                    }
                }
            }
            Err(error) => tracing::warn!(%error, "watching for APIService changes failed"),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// kube-aggregator's answer for a group version an APIService hands to a Service it cannot
/// reach, as Go's `http.Error` writes it.
pub const SERVICE_UNAVAILABLE: &str = "service unavailable\n";

/// Serves a request under `/apis/GROUP/VERSION` that no built-in or custom kind serves but a
/// stored APIService hands to a Service: proxied to the aggregated server as `user`, or
/// kube-aggregator's 503 while it is unavailable. `GET /apis/GROUP` of such a group is answered
/// here from the APIServices, as kube-aggregator answers it. Any other request is handed back.
pub async fn remote_group_answer(
    registry: &Registry,
    req: axum::extract::Request,
    user: &skiff_auth::user::UserInfo,
) -> Result<Response, axum::extract::Request> {
    let path = req.uri().path().to_string();
    let mut segments = path.trim_matches('/').split('/');
    let (Some("apis"), Some(group)) = (segments.next(), segments.next()) else {
        return Err(req);
    };
    let version = segments.next();
    let served_here = skiff_api::resources::all()
        .any(|r| r.group == group && version.is_none_or(|v| v.is_empty() || r.version == v))
        || crate::discovery::REVIEW_GROUPS.contains(&group)
        || group == crate::metrics_api::GROUP;
    if served_here || group.is_empty() {
        return Err(req);
    }
    let Some(version) = version.filter(|v| !v.is_empty()) else {
        return match remote_group_doc(registry, group).await {
            Some(doc) if req.method() == axum::http::Method::GET => {
                let mut resp = Response::new(Body::from(doc.to_string()));
                resp.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                );
                Ok(resp)
            }
            _ => Err(req),
        };
    };
    let name = api_service::name_for(group, version);
    let Ok(stored) = registry.get(&api_service::V1, None, &name).await else {
        return Err(req);
    };
    if api_service::service_reference(&stored).is_none() {
        return Err(req);
    }
    Ok(crate::aggregator::proxy(registry, &stored, req, user).await)
}

/// The `APIGroup` document of a group only aggregated servers serve, from its APIServices.
async fn remote_group_doc(registry: &Registry, group: &str) -> Option<Value> {
    let stored = registry
        .list(&api_service::V1, None, &ListOptions::default())
        .await
        .ok()?
        .items;
    let mut versions: Vec<(i64, String)> = stored
        .iter()
        .filter(|s| s.pointer("/spec/group").and_then(Value::as_str) == Some(group))
        .filter(|s| api_service::service_reference(s).is_some())
        .filter_map(|s| {
            let version = s.pointer("/spec/version").and_then(Value::as_str)?;
            let priority = s
                .pointer("/spec/versionPriority")
                .and_then(Value::as_i64)
                .unwrap_or(0);
            Some((priority, version.to_string()))
        })
        .collect();
    if versions.is_empty() {
        return None;
    }
    versions.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
    let entries: Vec<Value> = versions
        .iter()
        .map(|(_, v)| json!({"groupVersion": format!("{group}/{v}"), "version": v}))
        .collect();
    Some(
        json!({"kind": "APIGroup", "apiVersion": "v1", "name": group,
        "versions": entries, "preferredVersion": entries[0]}),
    )
}
