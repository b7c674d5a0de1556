//! Pod and container cgroups, placed and sized as the kubelet's cgroupfs driver does.
//!
//! The pure half decides: a pod's QoS class ([`qos`]), where its cgroups live
//! ([`layout`]: `kubepods/`, `kubepods/burstable/`, `kubepods/besteffort/`, `pod<uid>/`, one
//! child per container, all under a configurable root) and what limits they get
//! ([`resources`]: CPU shares or weight, CFS quota, memory limit, summed over the pod as the
//! kubelet sums them). The other half acts through the [`CgroupDriver`] trait: real drivers for
//! cgroup v1 ([`v1`]) and v2 ([`v2`]), picked at start from the mount table ([`detect`]), and a
//! recording fake ([`fake`]) for tests of callers. [`PodCgroups`] ties both together for the
//! node agent and the container runtime.

pub mod detect;
pub mod driver;
pub mod fake;
mod fsutil;
pub mod layout;
pub mod manager;
pub mod migration_lock;
pub mod qos;
pub mod resources;
pub mod v1;
pub mod v2;

pub use detect::{detect, Hierarchy};
pub use driver::{CgroupDriver, CgroupError, CgroupUsage, CgroupVersion};
pub use layout::{CgroupLayout, CgroupPath, NameError};
pub use manager::{ExistingPod, PodCgroup, PodCgroups};
pub use qos::{pod_qos, QosClass};
pub use resources::{CgroupLimits, CpuQuota};
