//! The admission plugins that decide from other stored objects: Priority (a pod's
//! `priorityClassName` becomes its `spec.priority`; one `globalDefault` class at most),
//! LimitRanger (a namespace's LimitRanges default and bound pod and claim resources) and
//! ResourceQuota (a namespace's quotas refuse what would exceed them). The decisions are
//! `skiff_api`'s pure functions; this module reads the objects they need and, for quotas,
//! records each admitted object's usage.
//!
//! ResourceQuota admission is race-free as Kubernetes' is: the usage is written to the quota's
//! status with its resourceVersion as a precondition before the object is stored, so of two
//! concurrent creates competing for the last slot one write conflicts, re-reads the quota and
//! is refused. The quotas are read from the registry's cache (retired by every quota write
//! before it is acknowledged), so a write needs no list while no quota changed; after a conflict
//! they are read from the store.

use std::sync::Arc;

use serde_json::{json, Value};
use skiff_api::kinds::{limit_range, priority_class, resource_quota};
use skiff_api::resources::{ResourceInfo, Subresource};

use crate::meta;
use crate::registry::{ListOptions, Registry, WriteOptions};
use crate::status::ApiError;

/// How many times quota admission re-reads the quotas after a concurrent change.
const QUOTA_CONFLICT_RETRIES: usize = 16;

/// Kubernetes' `admission.NewForbidden`: `<resource> "<name>" is forbidden: <reason>`, with
/// the object in `details`.
pub fn forbidden(resource: &ResourceInfo, name: &str, reason: &str) -> ApiError {
    ApiError {
        details: Some(json!({"name": name, "group": resource.group, "kind": resource.plural})),
        ..ApiError::forbidden(format!(
            "{} \"{name}\" is forbidden: {reason}",
            resource.qualified_plural()
        ))
    }
}

fn is_core(resource: &ResourceInfo, plural: &str) -> bool {
    resource.group.is_empty() && resource.plural == plural
}

impl Registry {
    async fn list_all(
        &self,
        resource: &ResourceInfo,
        namespace: Option<&str>,
    ) -> Result<Vec<Value>, ApiError> {
        let mut items = self
            .list(resource, namespace, &ListOptions::default())
            .await?
            .items;
        items.sort_by(|a, b| meta::name(a).cmp(meta::name(b)));
        Ok(items)
    }

    /// The Priority plugin on a new pod (before the pod's own defaults, so a priority the
    /// client sent is told from one the server filled), and its check that a new
    /// PriorityClass marked `globalDefault` is the only one.
    pub(crate) async fn admit_priority(
        &self,
        resource: &ResourceInfo,
        obj: &mut Value,
    ) -> Result<(), ApiError> {
        if is_core(resource, "pods") {
            let classes = self.list_all(&priority_class::V1, None).await?;
            return priority_class::admit_pod(obj, &classes)
                .map_err(|reason| forbidden(resource, meta::name(obj), &reason));
        }
        if resource.group == priority_class::V1.group
            && resource.plural == priority_class::V1.plural
            && obj.get("globalDefault").and_then(Value::as_bool) == Some(true)
        {
            let classes = self.list_all(&priority_class::V1, None).await?;
            if let Some(existing) = classes.iter().find(|c| {
                c.get("globalDefault").and_then(Value::as_bool) == Some(true)
                    && meta::name(c) != meta::name(obj)
            }) {
                return Err(forbidden(
                    resource,
                    meta::name(obj),
                    &priority_class::second_default_message(meta::name(existing)),
                ));
            }
        }
        Ok(())
    }

    /// The LimitRanger plugin on a new pod or PersistentVolumeClaim: defaults, then bounds.
    pub(crate) async fn admit_limit_ranges(
        &self,
        resource: &ResourceInfo,
        obj: &mut Value,
    ) -> Result<(), ApiError> {
        let pod = is_core(resource, "pods");
        if !pod && !is_core(resource, "persistentvolumeclaims") {
            return Ok(());
        }
        let namespace = meta::namespace(obj).unwrap_or("default").to_string();
        let ranges = self.list_all(&limit_range::V1, Some(&namespace)).await?;
        if ranges.is_empty() {
            return Ok(());
        }
        let verdict = if pod {
            limit_range::default_pod(obj, &ranges);
            limit_range::check_pod(obj, &ranges)
        } else {
            limit_range::check_claim(obj, &ranges)
        };
        verdict.map_err(|reason| forbidden(resource, meta::name(obj), &reason))
    }

    /// The ResourceQuota plugin on a new namespaced object, or on an update of one from
    /// `previous`: refused if what it adds would exceed a quota of its namespace, else the
    /// usage is recorded in each quota it counts against (unless `dry_run`) before the caller
    /// stores it.
    pub(crate) async fn admit_quota(
        &self,
        resource: &ResourceInfo,
        obj: &Value,
        previous: Option<&Value>,
        dry_run: bool,
    ) -> Result<(), ApiError> {
        if !resource.namespaced {
            return Ok(());
        }
        let namespace = meta::namespace(obj).unwrap_or("default").to_string();
        let name = meta::name(obj).to_string();
        let cache = self.quota_cache();
        let mut last_conflict = None;
        for attempt in 0..QUOTA_CONFLICT_RETRIES {
            // After a conflict the cached quotas are known to be behind: read the store.
            let cached = if attempt == 0 {
                cache.current_tagged_for(&namespace)
            } else {
                None
            };
            let (tag, quotas) = match cached {
                Some(tagged) => tagged,
                None => {
                    let tag = cache.generation();
                    let quotas =
                        Arc::new(self.list_all(&resource_quota::V1, Some(&namespace)).await?);
                    cache.offer_for(namespace.clone(), tag, quotas.clone());
                    (tag, quotas)
                }
            };
            if quotas.is_empty() {
                return Ok(());
            }
            let charges = match previous {
                None => skiff_api::quota::admit(&quotas, resource.group, resource.plural, obj),
                Some(old) => skiff_api::quota::admit_update(
                    &quotas,
                    resource.group,
                    resource.plural,
                    old,
                    obj,
                ),
            }
            .map_err(|reason| forbidden(resource, &name, &reason))?;
            if dry_run || charges.is_empty() {
                return Ok(());
            }
            let mut charged = quotas.as_ref().clone();
            let mut conflicted = false;
            for charge in &charges {
                let mut quota = quotas[charge.index].clone();
                quota["status"]["used"] = Value::Object(charge.used.clone());
                let quota_name = meta::name(&quota).to_string();
                match self
                    .update(
                        &resource_quota::V1,
                        Some(&namespace),
                        &quota_name,
                        quota,
                        Some(Subresource::Status),
                        WriteOptions::default(),
                    )
                    .await
                {
                    Ok(written) => charged[charge.index] = written.object,
                    Err(e) if e.code == 409 || e.code == 404 => {
                        last_conflict = Some(e);
                        conflicted = true;
                        break;
                    }
                    Err(e) => return Err(e),
                }
            }
            if !conflicted {
                // Each usage write retired the cache; when they were the only quota writes
                // since the quotas were read, the quotas as written are current.
                let writes = u64::try_from(charges.len()).unwrap_or(u64::MAX);
                if let Some(after) = tag.checked_add(writes) {
                    cache.offer_for(namespace, after, Arc::new(charged));
                }
                return Ok(());
            }
        }
        Err(last_conflict.unwrap_or_else(|| ApiError::internal("quota admission did not settle")))
    }
}

/// Creates the built-in PriorityClasses (`system-node-critical`, `system-cluster-critical`)
/// that do not exist yet, as kube-apiserver's scheduling post-start hook does.
pub async fn ensure_system_priority_classes(registry: &Registry) -> Result<(), ApiError> {
    for class in priority_class::system_classes() {
        match registry
            .create(&priority_class::V1, None, class, WriteOptions::default())
            .await
        {
            Ok(_) => {}
            Err(e) if e.code == 409 => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
