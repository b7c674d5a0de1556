//! The controller runtime: what every Skiff controller, the scheduler and node agents build
//! on, modelled on client-go.
//!
//! - [`informer::Informer`]: list-then-watch over one resource with a local cache, change
//!   notifications, resume and relist; [`store::Store`] is its typed view.
//! - [`workqueue::WorkQueue`]: deduplicating, rate-limited, delaying queue of keys that never
//!   hands one key to two workers at once; [`workers::run_workers`] drives it.
//! - [`expectations::Expectations`]: suppresses syncs until a controller's own writes are seen.
//! - [`events::EventRecorder`]: core/v1 Events with Kubernetes' counting and aggregation.
//!
//! The runtime sees the cluster only through [`skiff_client::Client`], so the same code runs
//! in-process or against a remote server. It knows no kind-specific logic.

pub mod events;
pub mod expectations;
pub mod informer;
pub mod store;
pub mod workers;
pub mod workqueue;

pub use events::{EventRecorder, EventSource, EventType, ObjectRef};
pub use expectations::Expectations;
pub use informer::{Informer, InformerConfig, Notification};
pub use store::Store;
pub use workers::{run_workers, run_workers_with, WorkerOptions};
pub use workqueue::WorkQueue;
