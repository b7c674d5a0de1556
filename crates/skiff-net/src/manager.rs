//! What the node agent calls: addresses from the node's pod range, kept in a file, joined to
//! the side effects of a [`PodNetwork`].

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::PathBuf;

use tokio::sync::Mutex;

use crate::config::check_pod_uid;
use crate::ipam::PodAddressFile;
use crate::network::{NetError, PodAttachment, PodNetwork};

/// A node's pod network: attach a pod when its sandbox is created, detach it when the pod is
/// gone. Addresses are handed out one at a time, so none is handed out twice; the setups of
/// different pods run at the same time.
pub struct PodNetworkManager<N> {
    network: N,
    addresses: Mutex<PodAddressFile>,
}

impl<N: PodNetwork> PodNetworkManager<N> {
    /// Loads the address file (`state_file`, created on first use) and makes the host ready.
    pub async fn start(network: N, state_file: impl Into<PathBuf>) -> Result<Self, NetError> {
        let addresses = PodAddressFile::open(state_file, network.config().pod_range)?;
        network.ensure_host().await?;
        Ok(PodNetworkManager {
            network,
            addresses: Mutex::new(addresses),
        })
    }

    /// The network underneath.
    pub fn network(&self) -> &N {
        &self.network
    }

    /// Gives the pod an address (the one it holds, after a restart too) and its namespace. An
    /// address allocated for this call is released again if the setup fails.
    pub async fn attach(&self, pod_uid: &str) -> Result<PodAttachment, NetError> {
        check_pod_uid(pod_uid)?;
        // Only the address is taken under the lock: the namespaces and veths of different
        // pods are set up at the same time (a pod's own steps come from its one worker).
        let (ip, new) = self.addresses.lock().await.allocate(pod_uid)?;
        match self.network.setup_pod(pod_uid, ip).await {
            Ok(attachment) => Ok(attachment),
            Err(err) => {
                if new {
                    if let Err(release) = self.addresses.lock().await.release(pod_uid) {
                        tracing::warn!(pod_uid, %release, "could not release the address of a failed setup");
                    }
                }
                Err(err)
            }
        }
    }

    /// Removes the pod's namespace and veth, then frees its address. Idempotent. Only the
    /// release takes the address lock: the teardowns of different pods (200 at a shutdown)
    /// run at the same time, and the address is free only once nothing of the pod is left.
    pub async fn detach(&self, pod_uid: &str) -> Result<(), NetError> {
        check_pod_uid(pod_uid)?;
        self.network.teardown_pod(pod_uid).await?;
        self.addresses.lock().await.release(pod_uid)?;
        Ok(())
    }

    /// Every pod holding an address, so the agent can detach those it no longer runs.
    pub async fn attached_pods(&self) -> BTreeMap<String, Ipv4Addr> {
        self.addresses.lock().await.addresses().pods().clone()
    }

    /// Removes the host's part (after every pod is detached).
    pub async fn shutdown(&self) -> Result<(), NetError> {
        let _addresses = self.addresses.lock().await;
        self.network.teardown_host().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::HostConfig;
    use crate::fake::{NetworkCall, RecordingPodNetwork};
    use crate::ipam::PodRange;
    use crate::ranges::ClusterRanges;

    fn config() -> HostConfig {
        HostConfig::new(
            "sktest0",
            ClusterRanges::parse("198.18.0.0/16", "198.19.0.0/16", 24).unwrap(),
            PodRange::new("198.18.9.0/24".parse().unwrap()).unwrap(),
            "/run/skiff/netns",
        )
        .unwrap()
    }

    fn ip(text: &str) -> Ipv4Addr {
        text.parse().unwrap()
    }

    #[tokio::test]
    async fn attach_detach_and_restart() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("pod-addresses.json");
        let manager = PodNetworkManager::start(RecordingPodNetwork::new(config()), &state)
            .await
            .unwrap();
        let a = manager.attach("pod-a").await.unwrap();
        let b = manager.attach("pod-b").await.unwrap();
        assert_eq!((a.ip, b.ip), (ip("198.18.9.2"), ip("198.18.9.3")));
        assert_eq!(a.gateway, ip("198.18.9.1"));
        assert_eq!(a.prefix_len, 24);
        assert_eq!(a.netns_path, PathBuf::from("/run/skiff/netns/pod-a"));
        // Attaching again gives the same answer.
        assert_eq!(manager.attach("pod-a").await.unwrap(), a);
        manager.detach("pod-a").await.unwrap();
        manager.detach("pod-a").await.unwrap();
        assert_eq!(
            manager.network().calls(),
            vec![
                NetworkCall::EnsureHost,
                NetworkCall::SetupPod("pod-a".into(), ip("198.18.9.2")),
                NetworkCall::SetupPod("pod-b".into(), ip("198.18.9.3")),
                NetworkCall::SetupPod("pod-a".into(), ip("198.18.9.2")),
                NetworkCall::TeardownPod("pod-a".into()),
                NetworkCall::TeardownPod("pod-a".into()),
            ]
        );
        drop(manager);

        // A restart finds pod-b's address and does not reuse pod-a's at once.
        let restarted = PodNetworkManager::start(RecordingPodNetwork::new(config()), &state)
            .await
            .unwrap();
        assert_eq!(
            restarted.attached_pods().await,
            BTreeMap::from([("pod-b".to_string(), ip("198.18.9.3"))])
        );
        assert_eq!(
            restarted.attach("pod-b").await.unwrap().ip,
            ip("198.18.9.3")
        );
        assert_eq!(
            restarted.attach("pod-c").await.unwrap().ip,
            ip("198.18.9.4")
        );
        restarted.shutdown().await.unwrap();
        assert!(!restarted.network().host_ready());
    }

    #[tokio::test]
    async fn a_failed_setup_gives_its_new_address_back() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("pod-addresses.json");
        let manager = PodNetworkManager::start(RecordingPodNetwork::new(config()), &state)
            .await
            .unwrap();
        manager.network().fail_next_setup("veth refused");
        let err = manager.attach("pod-a").await.unwrap_err();
        assert_eq!(err.to_string(), "veth refused");
        assert!(manager.attached_pods().await.is_empty());
        // An address the pod already held survives a failed retry.
        let held = manager.attach("pod-a").await.unwrap().ip;
        manager.network().fail_next_setup("veth refused");
        manager.attach("pod-a").await.unwrap_err();
        assert_eq!(manager.attached_pods().await.get("pod-a"), Some(&held));
    }

    #[tokio::test]
    async fn bad_uids_are_refused_before_any_side_effect() {
        let dir = tempfile::tempdir().unwrap();
        let manager = PodNetworkManager::start(
            RecordingPodNetwork::new(config()),
            dir.path().join("state.json"),
        )
        .await
        .unwrap();
        for bad in ["../etc", "", "a b"] {
            assert!(matches!(
                manager.attach(bad).await,
                Err(NetError::InvalidPodUid(_))
            ));
            assert!(manager.detach(bad).await.is_err());
        }
        assert_eq!(manager.network().calls(), vec![NetworkCall::EnsureHost]);
    }

    /// A network whose setup of `pod-slow` and teardown of `pod-leaving-slowly` wait until
    /// `gate` is opened.
    struct GatedNetwork {
        inner: RecordingPodNetwork,
        /// Told when a gated setup or teardown has begun.
        entered: tokio::sync::Notify,
        gate: tokio::sync::Notify,
    }

    #[async_trait::async_trait]
    impl PodNetwork for GatedNetwork {
        fn config(&self) -> &HostConfig {
            self.inner.config()
        }
        async fn ensure_host(&self) -> Result<(), NetError> {
            self.inner.ensure_host().await
        }
        async fn setup_pod(&self, pod_uid: &str, ip: Ipv4Addr) -> Result<PodAttachment, NetError> {
            if pod_uid == "pod-slow" {
                self.entered.notify_one();
                self.gate.notified().await;
            }
            self.inner.setup_pod(pod_uid, ip).await
        }
        async fn teardown_pod(&self, pod_uid: &str) -> Result<(), NetError> {
            if pod_uid == "pod-leaving-slowly" {
                self.entered.notify_one();
                self.gate.notified().await;
            }
            self.inner.teardown_pod(pod_uid).await
        }
        async fn teardown_host(&self) -> Result<(), NetError> {
            self.inner.teardown_host().await
        }
    }

    #[tokio::test]
    async fn pods_are_torn_down_at_the_same_time() {
        let dir = tempfile::tempdir().unwrap();
        let network = GatedNetwork {
            inner: RecordingPodNetwork::new(config()),
            entered: tokio::sync::Notify::new(),
            gate: tokio::sync::Notify::new(),
        };
        let manager = std::sync::Arc::new(
            PodNetworkManager::start(network, dir.path().join("pod-addresses.json"))
                .await
                .unwrap(),
        );
        manager.attach("pod-leaving-slowly").await.unwrap();
        manager.attach("pod-fast").await.unwrap();
        let slow = tokio::spawn({
            let manager = manager.clone();
            async move { manager.detach("pod-leaving-slowly").await }
        });
        manager.network().entered.notified().await;
        // The slow teardown holds no lock the next pod's needs.
        tokio::time::timeout(
            std::time::Duration::from_secs(10),
            manager.detach("pod-fast"),
        )
        .await
        .expect("a pod's teardown waited for another pod's")
        .unwrap();
        assert!(
            !slow.is_finished(),
            "the gated teardown ended before its gate opened"
        );
        // The slow pod keeps its address until its teardown is over.
        assert_eq!(
            manager.attached_pods().await,
            BTreeMap::from([("pod-leaving-slowly".to_string(), ip("198.18.9.2"))])
        );
        manager.network().gate.notify_one();
        slow.await.unwrap().unwrap();
        assert!(manager.attached_pods().await.is_empty());
    }

    #[tokio::test]
    async fn pods_are_set_up_at_the_same_time_with_different_addresses() {
        let dir = tempfile::tempdir().unwrap();
        let network = GatedNetwork {
            inner: RecordingPodNetwork::new(config()),
            entered: tokio::sync::Notify::new(),
            gate: tokio::sync::Notify::new(),
        };
        let manager = std::sync::Arc::new(
            PodNetworkManager::start(network, dir.path().join("pod-addresses.json"))
                .await
                .unwrap(),
        );
        let slow = tokio::spawn({
            let manager = manager.clone();
            async move { manager.attach("pod-slow").await }
        });
        manager.network().entered.notified().await;
        // The slow setup holds no lock the next pod needs: it is set up meanwhile.
        let fast = tokio::time::timeout(
            std::time::Duration::from_secs(10),
            manager.attach("pod-fast"),
        )
        .await
        .expect("a pod's setup waited for another pod's")
        .unwrap();
        assert!(
            !slow.is_finished(),
            "the gated setup ended before its gate opened"
        );
        manager.network().gate.notify_one();
        let slow = slow.await.unwrap().unwrap();
        assert_ne!(slow.ip, fast.ip);
        assert_eq!((slow.ip, fast.ip), (ip("198.18.9.2"), ip("198.18.9.3")));
    }
}
