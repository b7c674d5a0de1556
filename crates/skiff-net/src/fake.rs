//! A [`PodNetwork`] that records calls instead of touching the kernel, for tests of the code
//! that drives it.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::sync::Mutex;

use async_trait::async_trait;

use crate::config::HostConfig;
use crate::network::{NetError, PodAttachment, PodNetwork};

/// One call the fake received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetworkCall {
    /// [`PodNetwork::ensure_host`].
    EnsureHost,
    /// [`PodNetwork::setup_pod`] with the pod's uid and address.
    SetupPod(String, Ipv4Addr),
    /// [`PodNetwork::teardown_pod`] with the pod's uid.
    TeardownPod(String),
    /// [`PodNetwork::teardown_host`].
    TeardownHost,
}

#[derive(Debug, Default)]
struct FakeState {
    calls: Vec<NetworkCall>,
    host_ready: bool,
    pods: BTreeMap<String, Ipv4Addr>,
    fail_next_setup: Option<String>,
}

/// Records every call and keeps the state a real network would have, so tests can assert both
/// what was asked and what resulted.
#[derive(Debug)]
pub struct RecordingPodNetwork {
    config: HostConfig,
    state: Mutex<FakeState>,
}

impl RecordingPodNetwork {
    /// A fake network for `config`.
    pub fn new(config: HostConfig) -> Self {
        RecordingPodNetwork {
            config,
            state: Mutex::new(FakeState::default()),
        }
    }

    /// Every call so far, in order.
    pub fn calls(&self) -> Vec<NetworkCall> {
        self.lock().calls.clone()
    }

    /// Whether the host is set up (ensured and not torn down).
    pub fn host_ready(&self) -> bool {
        self.lock().host_ready
    }

    /// The pods set up now, with their addresses.
    pub fn pods(&self) -> BTreeMap<String, Ipv4Addr> {
        self.lock().pods.clone()
    }

    /// Makes the next `setup_pod` fail with `message`, as a kernel refusal would.
    pub fn fail_next_setup(&self, message: &str) {
        self.lock().fail_next_setup = Some(message.to_string());
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, FakeState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[async_trait]
impl PodNetwork for RecordingPodNetwork {
    fn config(&self) -> &HostConfig {
        &self.config
    }

    async fn ensure_host(&self) -> Result<(), NetError> {
        let mut state = self.lock();
        state.calls.push(NetworkCall::EnsureHost);
        state.host_ready = true;
        Ok(())
    }

    async fn setup_pod(&self, pod_uid: &str, ip: Ipv4Addr) -> Result<PodAttachment, NetError> {
        let netns_path = self.config.netns_path(pod_uid)?;
        let mut state = self.lock();
        state
            .calls
            .push(NetworkCall::SetupPod(pod_uid.to_string(), ip));
        if let Some(message) = state.fail_next_setup.take() {
            return Err(NetError::Unexpected(message));
        }
        if !state.host_ready {
            return Err(NetError::Unexpected(
                "setup_pod before ensure_host".to_string(),
            ));
        }
        state.pods.insert(pod_uid.to_string(), ip);
        Ok(PodAttachment {
            netns_path,
            ip,
            prefix_len: self.config.pod_range.pod_cidr.prefix_len(),
            gateway: self.config.gateway(),
            host_interface: self.config.host_interface(pod_uid),
        })
    }

    async fn teardown_pod(&self, pod_uid: &str) -> Result<(), NetError> {
        let mut state = self.lock();
        state
            .calls
            .push(NetworkCall::TeardownPod(pod_uid.to_string()));
        state.pods.remove(pod_uid);
        Ok(())
    }

    async fn teardown_host(&self) -> Result<(), NetError> {
        let mut state = self.lock();
        state.calls.push(NetworkCall::TeardownHost);
        state.host_ready = false;
        Ok(())
    }
}
