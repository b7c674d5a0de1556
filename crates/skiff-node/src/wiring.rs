//! The real node's parts plugged into the agent: probes and hooks with kubelet's semantics and
//! messages.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use k8s_openapi::api::core::v1::{LifecycleHandler, Probe};

use crate::agent::{ExecFn, ProbeContext, ProbeResult, Prober};
use crate::hooks::{self, PreStopOutcome};
use crate::probes::{self, ExecOutput, ExecRunner, ProbeTarget};

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
