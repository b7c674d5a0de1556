//! OCI images for Skiff: Docker references, a content store of verified blobs, pulls from
//! OCI distribution registries, imports of `docker save` and OCI archives, and layers
//! unpacked into read-only snapshots.

pub mod archive;
pub mod build;
pub mod digest;
pub mod keyring;
pub mod pull;
pub mod reference;
pub mod registries;
pub mod store;
pub mod unpack;

pub use digest::Digest;
pub use keyring::{Credentials, Keyring};
pub use pull::{PullError, Puller, RegistryConfig};
pub use reference::Reference;
pub use store::{ContentStore, ImageRecord, StoreError};
