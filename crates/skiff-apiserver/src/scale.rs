//! The `/scale` subresource: an `autoscaling/v1` `Scale` view of a workload's replica count.

use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::Response;
use serde_json::{json, Value};
use skiff_api::patch::{self, PatchType};
use skiff_api::resources::ResourceInfo;

use crate::registry::{Registry, WriteOptions, Written};
use crate::status::ApiError;
use crate::{bodies, meta};

pub use skiff_api::scale::scale_of;

fn scale_resource() -> &'static ResourceInfo {
    // Scale is not stored; patches to it merge like any built-in kind without list merge keys.
    &skiff_api::kinds::config_map::V1
}

fn replicas_of(scale: &Value, resource: &ResourceInfo, name: &str) -> Result<i64, ApiError> {
    // Absent or null is Go's zero value; anything but an int32 fails to decode, as it does
    // into Kubernetes' ScaleSpec.
    let replicas = match scale.pointer("/spec/replicas") {
        None | Some(Value::Null) => 0,
        Some(value) => value
            .as_i64()
            .filter(|r| i32::try_from(*r).is_ok())
            .ok_or_else(|| {
                ApiError::bad_request(format!(
                    "Scale in version \"v1\" cannot be handled as a Scale: json: cannot unmarshal {} into Go struct field ScaleSpec.spec.replicas of type int32",
                    bodies::go_json_kind(value)
                ))
            })?,
    };
    if replicas < 0 {
        return Err(ApiError::invalid(
            resource,
            name,
            &[skiff_api::errors::FieldError::invalid(
                "spec.replicas",
                &json!(replicas),
                "must be greater than or equal to 0",
            )],
        ));
    }
    Ok(replicas)
}

/// GET, PUT or PATCH on `.../NAME/scale`.
#[allow(clippy::too_many_arguments)]
pub async fn handle(
    registry: &Registry,
    resource: &ResourceInfo,
    namespace: Option<&str>,
    name: &str,
    method: &Method,
    headers: &HeaderMap,
    raw: &[u8],
    options: WriteOptions,
) -> Result<Response, ApiError> {
    let w: Written = match *method {
        Method::GET => {
            let obj = registry.get(resource, namespace, name).await?;
            return Ok(crate::server::written(
                StatusCode::OK,
                Written {
                    object: scale_of(&obj),
                    warnings: vec![],
                },
            ));
        }
        Method::PUT => {
            let options = scale_writes(options);
            let scale = bodies::decode_object(headers, raw)?;
            let replicas = replicas_of(&scale, resource, name)?;
            let required = meta::resource_version(&scale)
                .map(|rv| {
                    rv.parse::<i64>().map_err(|_| {
                        ApiError::bad_request(format!("invalid resource version: {rv}"))
                    })
                })
                .transpose()?;
            registry
                .write_loop(
                    resource,
                    namespace,
                    name,
                    None,
                    options,
                    required,
                    |mut obj| {
                        obj["spec"]["replicas"] = json!(replicas);
                        Ok(obj)
                    },
                )
                .await?
        }
        Method::PATCH => {
            let ct = headers
                .get(axum::http::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            let patch_type = PatchType::from_content_type(ct).ok_or_else(|| {
                ApiError::unsupported_media_type(format!("unsupported patch type {ct}"))
            })?;
            let doc = patch::decode_patch_body(patch_type, raw).map_err(bodies::patch_error)?;
            let options = scale_writes(options);
            registry
                .write_loop(resource, namespace, name, None, options, None, |mut obj| {
                    let patched =
                        patch::apply_patch(scale_resource(), &scale_of(&obj), patch_type, &doc)
                            .map_err(bodies::patch_error)?;
                    obj["spec"]["replicas"] = json!(replicas_of(&patched, resource, name)?);
                    Ok(obj)
                })
                .await?
        }
        _ => return Err(ApiError::method_not_allowed()),
    };
    Ok(crate::server::written(
        StatusCode::OK,
        Written {
            object: scale_of(&w.object),
            warnings: w.warnings,
        },
    ))
}

/// Writes through `scale` are recorded in `managedFields` under that subresource, with the
/// main object's paths (`.spec.replicas`), as Kubernetes records them.
fn scale_writes(options: WriteOptions) -> WriteOptions {
    WriteOptions {
        recorded_subresource: Some("scale"),
        ..options
    }
}
