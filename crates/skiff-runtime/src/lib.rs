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
//!
//! A controller wires them together like this:
//!
//! ```no_run
//! use std::sync::Arc;
//! use k8s_openapi::api::apps::v1::ReplicaSet;
//! use skiff_client::Client;
//! use skiff_runtime::{
//!     run_workers, EventRecorder, EventSource, EventType, Informer, InformerConfig, ObjectRef,
//!     Store, WorkQueue,
//! };
//!
//! async fn run(client: Arc<dyn Client>) -> Result<(), skiff_client::ClientError> {
//!     let informer = Informer::start(client.clone(), InformerConfig::for_kind::<ReplicaSet>()?);
//!     let replica_sets: Store<ReplicaSet> = Store::new(&informer);
//!     let queue = WorkQueue::new();
//!     informer.add_handler({
//!         let queue = queue.clone();
//!         move |change| {
//!             if let Some(key) = change.key() {
//!                 queue.add(key);
//!             }
//!         }
//!     });
//!     let recorder = EventRecorder::new(client, EventSource::component("replicaset-controller"));
//!     informer.wait_synced().await;
//!     run_workers(queue, 5, move |key: String| {
//!         let replica_sets = replica_sets.clone();
//!         let recorder = recorder.clone();
//!         async move {
//!             let Some(rs) = replica_sets.get_by_key(&key) else {
//!                 return Ok::<_, skiff_client::ClientError>(None);
//!             };
//!             if let Ok(involved) = ObjectRef::from_object(&*rs) {
//!                 recorder.record(&involved, EventType::Normal, "Synced", "nothing to do");
//!             }
//!             Ok(None)
//!         }
//!     })
//!     .await;
//!     Ok(())
//! }
//! ```

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod events;
pub mod expectations;
pub mod informer;
pub mod panics;
pub mod store;
pub mod workers;
pub mod workqueue;

pub use events::{EventRecorder, EventSource, EventType, ObjectRef};
pub use expectations::Expectations;
pub use informer::{Informer, InformerConfig, Notification};
pub use store::Store;
pub use workers::{run_workers, run_workers_with, WorkerOptions};
pub use workqueue::WorkQueue;
