//! The real node's parts plugged into the agent: images from the catalog, probes and hooks with
//! kubelet's semantics and messages.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use k8s_openapi::api::core::v1::{LifecycleHandler, Probe};

use crate::agent::{
    ExecFn, ImageLookupError, ImageService, ProbeContext, ProbeResult, Prober, PullCredentials,
    PulledImage, ResolvedImage,
};
use crate::hooks::{self, PreStopOutcome};
use crate::images::ImageCatalog;
use crate::probes::{self, ExecOutput, ExecRunner, ProbeTarget};

/// Resolves images through the node's catalog (imported directories and built-in aliases).
pub struct CatalogImages {
    catalog: ImageCatalog,
}

impl CatalogImages {
    /// Images from `catalog`.
    pub fn new(catalog: ImageCatalog) -> CatalogImages {
        CatalogImages { catalog }
    }
}

impl CatalogImages {
    /// The catalog's image for `image`, run on the host's filesystem.
    pub fn resolve(&self, image: &str) -> Option<ResolvedImage> {
        let found = self.catalog.resolve(image)?;
        let image_id = found.image_id();
        Some(ResolvedImage {
            entrypoint: found.entrypoint,
            cmd: found.cmd,
            env: found.env,
            working_dir: found.working_dir,
            image_id,
            local_only: true,
            ..ResolvedImage::default()
        })
    }
}

#[async_trait]
impl ImageService for CatalogImages {
    async fn find(&self, image: &str) -> Result<Option<ResolvedImage>, ImageLookupError> {
        Ok(self.resolve(image))
    }

    async fn pull(
        &self,
        image: &str,
        _credentials: &PullCredentials,
    ) -> Result<PulledImage, String> {
        Err(format!(
            "image \"{image}\" is not in this node's image catalog"
        ))
    }
}

/// Runs exec checks through the agent's in-container exec.
struct AgentExec(ExecFn);

#[async_trait]
impl ExecRunner for AgentExec {
    async fn exec(&self, command: &[String], timeout: Duration) -> std::io::Result<ExecOutput> {
        match (self.0)(command.to_vec(), timeout).await {
            Ok(out) => Ok(ExecOutput {
                exit_code: out.exit_code,
                output: out.output,
                timed_out: false,
            }),
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => Ok(ExecOutput {
                exit_code: -1,
                output: String::new(),
                timed_out: true,
            }),
            Err(e) => Err(e),
        }
    }
}

/// Probes and hooks as kubelet runs them.
pub struct KubeletProber;

fn target(ctx: &ProbeContext) -> ProbeTarget {
    ProbeTarget {
        pod_ip: IpAddr::V4(ctx.pod_ip),
        host_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
        container_ports: ctx.container_ports.clone(),
        exec: Arc::new(AgentExec(ctx.exec.clone())),
    }
}

#[async_trait]
impl Prober for KubeletProber {
    async fn probe(&self, probe: &Probe, ctx: &ProbeContext) -> ProbeResult {
        match probes::run_probe(probe, &target(ctx)).await {
            // kubelet counts a warning (e.g. a redirect to another host) as a success.
            probes::ProbeResult::Success | probes::ProbeResult::Warning(_) => ProbeResult::Success,
            probes::ProbeResult::Failure(message) | probes::ProbeResult::Unknown(message) => {
                ProbeResult::Failure(message)
            }
        }
    }

    async fn run_hook(
        &self,
        handler: &LifecycleHandler,
        ctx: &ProbeContext,
        deadline: tokio::time::Instant,
    ) -> Result<(), String> {
        match hooks::run_pre_stop(handler, &target(ctx), deadline).await {
            PreStopOutcome::Completed | PreStopOutcome::DeadlineReached => Ok(()),
            PreStopOutcome::Failed(error) => Err(error.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tutorial_images_resolve_through_the_catalog() {
        let dir = tempfile::tempdir().unwrap();
        let catalog = ImageCatalog::open(dir.path().join("images"))
            .unwrap()
            .with_demo_program("/bin/skiff");
        let images = CatalogImages::new(catalog);
        let demo = images
            .resolve("nginx:1.18")
            .expect("nginx is the demo server");
        assert_eq!(
            demo.entrypoint,
            vec!["/bin/skiff".to_string(), "demo-server".to_string()]
        );
        assert!(demo
            .env
            .contains(&("SKIFF_DEMO_VERSION".to_string(), "1.18".to_string())));
        assert!(images.resolve("busybox").is_some());
        assert!(images.resolve("example.com/unknown:1").is_none());
    }
}
