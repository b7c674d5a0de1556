//! OCI images for Skiff: Docker references, a content store of verified blobs, pulls from
//! OCI distribution registries, imports of `docker save` and OCI archives, and layers
//! unpacked into read-only snapshots.

pub mod archive;
pub mod build;
pub mod config;
pub mod digest;
pub mod gc;
pub mod keyring;
pub mod pull;
pub mod reference;
pub mod registries;
pub mod rootfs;
pub mod store;
pub mod unpack;

pub use config::ImageConfig;
pub use digest::Digest;
pub use keyring::{Credentials, Keyring};
pub use pull::{PullError, Puller, RegistryConfig};
pub use reference::Reference;
pub use rootfs::{LowerDirs, SnapshotForm};
pub use store::{ContentStore, ImageRecord, StoreError};
