//! Leader election on `coordination.k8s.io/v1` Leases, as client-go's `leaderelection` runs
//! it for kube-controller-manager and kube-scheduler: when several servers share one store, the
//! work given to [`run_elected`] runs on exactly one of them at a time.
//!
//! The decisions are in [`planner`]; this module reads and writes the Lease and starts and
//! stops the elected work.

pub mod planner;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use rand::Rng;
use skiff_client::{Api, Client, ClientError};
use skiff_runtime::{EventRecorder, EventSource, EventType, ObjectRef};
use tokio::sync::watch;

use planner::{plan_attempt, released, Attempt, ElectionTiming, LeaderRecord, Observation};

/// The namespace of the control plane's election Leases.
pub const LEASE_NAMESPACE: &str = "kube-system";
/// The Lease kube-controller-manager is elected with.
pub const CONTROLLER_MANAGER_LEASE: &str = "kube-controller-manager";
/// The Lease kube-scheduler is elected with.
pub const SCHEDULER_LEASE: &str = "kube-scheduler";

/// One election: which Lease, who is running for it, and its timing.
#[derive(Clone, Debug)]
pub struct Election {
    /// The Lease's name in [`LEASE_NAMESPACE`].
    pub lease_name: String,
    /// This candidate's identity, `<hostname>_<uuid>` as Kubernetes' components make it.
    pub identity: String,
    /// Lease duration, renew deadline and retry period.
    pub timing: ElectionTiming,
    /// The component named as the source of the `LeaderElection` event.
    pub event_component: String,
}

/// An identity as Kubernetes' components make theirs: the host name, `_`, a fresh UUID, so a
/// restarted process is a new candidate.
pub fn candidate_identity(host_name: &str) -> String {
    format!("{host_name}_{}", uuid::Uuid::new_v4())
}

/// The work an elected server does: given a future that resolves when leadership ends, a
/// future that runs until then (and returns once its work has stopped).
pub type ElectedWork = Box<
    dyn Fn(Pin<Box<dyn Future<Output = ()> + Send>>) -> Pin<Box<dyn Future<Output = ()> + Send>>
        + Send
        + Sync,
>;

fn record_of(lease: &Lease) -> LeaderRecord {
    let spec = lease.spec.clone().unwrap_or_default();
    LeaderRecord {
        holder_identity: spec.holder_identity.unwrap_or_default(),
        lease_duration_seconds: spec.lease_duration_seconds.unwrap_or(0),
        acquire_time: spec.acquire_time.map(|t| t.0),
        renew_time: spec.renew_time.map(|t| t.0),
        lease_transitions: spec.lease_transitions.unwrap_or(0),
    }
}

/// Writes `record` into `lease`'s spec, leaving fields election does not own alone.
fn apply_record(spec: Option<LeaseSpec>, record: &LeaderRecord) -> LeaseSpec {
    LeaseSpec {
        holder_identity: Some(record.holder_identity.clone()),
        lease_duration_seconds: Some(record.lease_duration_seconds),
        acquire_time: record.acquire_time.map(MicroTime),
        renew_time: record.renew_time.map(MicroTime),
        lease_transitions: Some(record.lease_transitions),
        ..spec.unwrap_or_default()
    }
}

/// MicroTime keeps microseconds: records compare as they come back from the server.
fn now_in_micros() -> Timestamp {
    let now = Timestamp::now();
    let micros = now.as_microsecond();
    Timestamp::from_microsecond(micros).unwrap_or(now)
}

/// A candidate: reads and writes the Lease through the API.
struct Candidate {
    leases: Api<Lease>,
    election: Election,
    remembered: Option<Observation>,
    /// The Lease as last read or written, for its resourceVersion and the release.
    last_lease: Option<Lease>,
}

impl Candidate {
    /// One attempt to take or renew the lease; `Ok(true)` when this candidate holds it now.
    async fn try_acquire_or_renew(&mut self) -> Result<bool, ClientError> {
        let now = now_in_micros();
        let current = self.leases.get_opt(&self.election.lease_name).await?;
        let current_record = current.as_ref().map(record_of);
        let (attempt, observation) = plan_attempt(
            &self.election.identity,
            &self.election.timing,
            current_record.as_ref(),
            self.remembered.as_ref(),
            now,
        );
        self.remembered = observation;
        let written = match attempt {
            Attempt::Wait { .. } => {
                self.last_lease = current;
                return Ok(false);
            }
            Attempt::Create(record) => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(self.election.lease_name.clone()),
                        namespace: Some(LEASE_NAMESPACE.to_string()),
                        ..ObjectMeta::default()
                    },
                    spec: Some(apply_record(None, &record)),
                };
                self.leases.create(&lease).await?
            }
            Attempt::Write(record) => {
                let Some(mut lease) = current else {
                    return Ok(false);
                };
                lease.spec = Some(apply_record(lease.spec.take(), &record));
                self.leases.update(&lease).await?
            }
        };
        self.remembered = Some(Observation {
            record: record_of(&written),
            observed_at: now,
        });
        self.last_lease = Some(written);
        Ok(true)
    }

    /// Gives the lease up, if this candidate still holds it as last written.
    async fn release(&mut self) {
        let Some(mut lease) = self.last_lease.take() else {
            return;
        };
        let record = record_of(&lease);
        if record.holder_identity != self.election.identity {
            return;
        }
        lease.spec = Some(apply_record(
            lease.spec.take(),
            &released(&record, now_in_micros()),
        ));
        match self.leases.update(&lease).await {
            Ok(_) => tracing::info!(lease = %self.election.lease_name, "released the leader lease"),
            Err(error) => {
                tracing::warn!(lease = %self.election.lease_name, %error, "cannot release the leader lease")
            }
        }
    }
}

/// A wait of one retry period stretched by up to client-go's jitter factor, so candidates do
/// not all try at the same instant.
fn jittered(period: Duration) -> Duration {
    let factor: f64 = rand::rng().random_range(0.0..planner::JITTER_FACTOR);
    period.mul_f64(1.0 + factor)
}

/// Runs for the lease until `shutdown` resolves: while this server leads, `work` runs; it is
/// stopped (and awaited) as soon as the lease is not renewed within the renew deadline, before
/// any other candidate can take it. On shutdown the work is stopped and the lease released.
pub async fn run_elected(
    client: Arc<dyn Client>,
    election: Election,
    work: ElectedWork,
    shutdown: impl Future<Output = ()> + Send,
) {
    let leases = match Api::<Lease>::new(client.clone(), Some(LEASE_NAMESPACE)) {
        Ok(api) => api,
        Err(error) => {
            tracing::error!(%error, "leader election cannot address Leases");
            return;
        }
    };
    let recorder = EventRecorder::new(client, EventSource::component(&election.event_component));
    let timing = election.timing;
    let mut candidate = Candidate {
        leases,
        election,
        remembered: None,
        last_lease: None,
    };
    tokio::pin!(shutdown);
    loop {
        // Candidacy: try every retry period until the lease is ours.
        loop {
            let attempt =
                tokio::time::timeout(timing.renew_deadline, candidate.try_acquire_or_renew());
            tokio::select! {
                _ = &mut shutdown => return,
                result = attempt => match result {
                    Ok(Ok(true)) => break,
                    Ok(Ok(false)) => {}
                    Ok(Err(error)) => tracing::debug!(lease = %candidate.election.lease_name, %error, "cannot take the leader lease yet"),
                    Err(_) => tracing::debug!(lease = %candidate.election.lease_name, "taking the leader lease timed out"),
                },
            }
            tokio::select! {
                _ = &mut shutdown => return,
                _ = tokio::time::sleep(jittered(timing.retry_period)) => {}
            }
        }
        let mut last_renewed = tokio::time::Instant::now();
        tracing::info!(lease = %candidate.election.lease_name, identity = %candidate.election.identity, "became leader");
        if let Some(lease) = &candidate.last_lease {
            match ObjectRef::from_object(lease) {
                Ok(involved) => recorder.record(
                    &involved,
                    EventType::Normal,
                    "LeaderElection",
                    format!("{} became leader", candidate.election.identity),
                ),
                Err(error) => tracing::warn!(%error, "cannot name the Lease in an event"),
            }
        }
        let (stop_leading, leading_stopped) = watch::channel(false);
        let stopped = {
            let mut leading_stopped = leading_stopped.clone();
            Box::pin(async move {
                let _ = leading_stopped.wait_for(|s| *s).await;
            })
        };
        let mut running = tokio::spawn(work(stopped));
        // Leadership: renew every retry period; stop at the renew deadline without a renewal.
        let ended_by_shutdown = loop {
            let deadline = last_renewed + timing.renew_deadline;
            tokio::select! {
                _ = &mut shutdown => break true,
                _ = &mut running => {
                    tracing::warn!(lease = %candidate.election.lease_name, "the elected work ended on its own");
                    break false;
                }
                _ = tokio::time::sleep(timing.retry_period) => {}
            }
            let attempt = tokio::time::timeout_at(deadline, candidate.try_acquire_or_renew());
            let lost = tokio::select! {
                _ = &mut shutdown => break true,
                result = attempt => match result {
                    Ok(Ok(true)) => {
                        last_renewed = tokio::time::Instant::now();
                        false
                    }
                    // Someone else holds it: it is lost already.
                    Ok(Ok(false)) => true,
                    Ok(Err(error)) => {
                        tracing::warn!(lease = %candidate.election.lease_name, %error, "cannot renew the leader lease");
                        tokio::time::Instant::now() >= deadline
                    }
                    Err(_) => true,
                },
            };
            if lost {
                tracing::warn!(lease = %candidate.election.lease_name, identity = %candidate.election.identity, "leader lease lost; stopping");
                break false;
            }
        };
        let _ = stop_leading.send(true);
        if !running.is_finished() {
            // The lease runs out for others this long after the renew deadline.
            let margin = timing.lease_duration.saturating_sub(timing.renew_deadline);
            if tokio::time::timeout(margin, &mut running).await.is_err() {
                tracing::warn!(lease = %candidate.election.lease_name, "the elected work is still stopping as the lease runs out");
                let _ = (&mut running).await;
            }
        }
        tracing::info!(lease = %candidate.election.lease_name, "stopped leading");
        if ended_by_shutdown {
            candidate.release().await;
            return;
        }
        candidate.remembered = None;
        candidate.last_lease = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identities_are_the_host_name_and_a_fresh_uuid() {
        let a = candidate_identity("server-a");
        let b = candidate_identity("server-a");
        assert_ne!(a, b, "each candidate is new");
        let (host, uuid) = a.split_once('_').expect("host_uuid");
        assert_eq!(host, "server-a");
        let groups: Vec<usize> = uuid.split('-').map(str::len).collect();
        assert_eq!(groups, [8, 4, 4, 4, 12], "{uuid}");
        assert_eq!(&uuid[14..15], "4", "a version 4 UUID: {uuid}");
    }

    #[test]
    fn a_lease_round_trips_through_the_record() {
        let now = now_in_micros();
        let record = LeaderRecord {
            holder_identity: "me_x".into(),
            lease_duration_seconds: 15,
            acquire_time: Some(now),
            renew_time: Some(now),
            lease_transitions: 2,
        };
        let lease = Lease {
            metadata: ObjectMeta::default(),
            spec: Some(apply_record(None, &record)),
        };
        let json = serde_json::to_value(&lease).unwrap();
        let back: Lease = serde_json::from_value(json).unwrap();
        assert_eq!(record_of(&back), record);
    }
}
