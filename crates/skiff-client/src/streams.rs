//! Streaming into pods (`pods/exec`, `pods/attach`, `pods/portforward`): the contract between
//! the API server, which checks a request, negotiates the protocol and hands the upgraded
//! connection over, and the node agent, which runs the session. It lives in the client crate,
//! which both sides depend on.

use async_trait::async_trait;
/// The answer to a refused upgrade, for the nodes that refuse one.
pub use skiff_stream::negotiate::Refusal;
use skiff_stream::negotiate::{Negotiated, StreamKind};
use skiff_stream::portforward::PortForwardOptions;
use skiff_stream::remotecommand::RemoteCommandOptions;
use tokio::io::{AsyncRead, AsyncWrite};

/// Which streaming subresource a request is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PodStreamKind {
    /// `pods/exec`: run a new command in a container.
    Exec,
    /// `pods/attach`: connect to a running container's own stdio.
    Attach,
    /// `pods/portforward`: connect to ports in the pod's network.
    PortForward,
}

impl PodStreamKind {
    /// The subresource's name in the path.
    pub fn subresource(self) -> &'static str {
        match self {
            Self::Exec => "exec",
            Self::Attach => "attach",
            Self::PortForward => "portforward",
        }
    }

    /// The protocol family its upgrade negotiates.
    pub fn protocol_kind(self) -> StreamKind {
        match self {
            Self::Exec | Self::Attach => StreamKind::RemoteCommand,
            Self::PortForward => StreamKind::PortForward,
        }
    }
}

/// A checked streaming request, as the node receives it.
#[derive(Debug, Clone)]
pub struct PodStreamRequest {
    /// The subresource.
    pub kind: PodStreamKind,
    /// The pod's namespace.
    pub namespace: String,
    /// The pod's name.
    pub pod: String,
    /// The pod's UID, so a pod recreated under the same name is never reached by mistake.
    pub uid: String,
    /// The container (exec and attach; defaulted as Kubernetes does).
    pub container: Option<String>,
    /// The command to run (exec only), as given in the repeated `command` parameters.
    pub command: Vec<String>,
    /// The streams asked for (exec and attach).
    pub remote_command: RemoteCommandOptions,
    /// The ports asked for in the query (port-forward over the kubelet's WebSocket form).
    pub ports: PortForwardOptions,
    /// The protocol chosen for the upgrade.
    pub negotiated: Negotiated,
}

/// Both halves of an upgraded connection, whatever carries it.
pub trait UpgradedIo: AsyncRead + AsyncWrite + Send + Unpin {}

impl<T: AsyncRead + AsyncWrite + Send + Unpin> UpgradedIo for T {}

/// The client's connection after the `101` answer: the protocol chosen runs on it.
pub type UpgradedConnection = Box<dyn UpgradedIo>;

/// Runs streaming sessions into pods; implemented by the node agent that runs them.
#[async_trait]
pub trait PodStreams: Send + Sync {
    /// Whether `request` can be served now (the container runs, the pod has an address), before
    /// the upgrade is answered; a refusal is the answer the client gets instead, as the
    /// kubelet's answer passes through kube-apiserver (plain text: kubectl prints it after
    /// `unable to upgrade connection: `).
    async fn check(&self, request: &PodStreamRequest) -> Result<(), Refusal>;

    /// Runs the session of `request` on `connection`, whose `101` was sent, until it ends.
    async fn serve(&self, request: PodStreamRequest, connection: UpgradedConnection);
}
