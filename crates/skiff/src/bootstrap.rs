//! The credentials every server of one shared datastore must agree on, shared through the
//! datastore itself, as k3s shares its bootstrap data: the cluster CA (certificate and key),
//! the admin token, the ServiceAccount signing key and the front-proxy CA.
//!
//! The first server to start stores its own (made in its data directory as on a lone server);
//! every later one finds them there and writes them into its data directory before anything
//! reads them, so a kubeconfig or a ServiceAccount token from one server works against all of
//! them. The record sits beside the API objects, outside the `/registry/` keys the API serves,
//! and is exactly as protected as the Secrets the datastore already holds.

use std::collections::BTreeMap;
use std::path::Path;

use base64::Engine as _;
use skiff_store::{Store, StoreError};

use crate::kubeconfig::write_private;

/// Where the shared credentials live in the datastore.
const BOOTSTRAP_KEY: &str = "/bootstrap/credentials";

/// The data directory files shared, by name.
pub(crate) const SHARED_FILES: [&str; 4] = ["ca.crt", "ca.key", "token", "service-account.key"];

/// Shared files a record stored by an older server may lack: the requestheader CA, which
/// every server must present the same of to aggregated servers. Without it in the record,
/// each server keeps its own.
const SHARED_IF_STORED: [&str; 2] = ["front-proxy-ca.crt", "front-proxy-ca.key"];

/// Makes this server's credentials the cluster's: the stored ones if another server stored
/// them, else its own (created now if missing), stored for the others.
pub(crate) async fn share_credentials(store: &dyn Store, data_dir: &Path) -> Result<(), String> {
    if let Some(stored) = read_stored(store).await? {
        return write_local(data_dir, &stored);
    }
    create_local(data_dir)?;
    let own = read_local(data_dir)?;
    let bytes = serde_json::to_vec(&own).map_err(|e| e.to_string())?;
    match store.create(BOOTSTRAP_KEY, bytes).await {
        Ok(_) => {
            tracing::info!("stored this server's CA and credentials for the other servers");
            Ok(())
        }
        // Another server stored its own first: theirs win.
        Err(StoreError::AlreadyExists(_)) => match read_stored(store).await? {
            Some(stored) => write_local(data_dir, &stored),
            None => Err("the shared credentials vanished while being read".into()),
        },
        Err(e) => Err(format!("cannot store the shared credentials: {e}")),
    }
}

/// File name → base64 of its bytes.
type Credentials = BTreeMap<String, String>;

async fn read_stored(store: &dyn Store) -> Result<Option<Credentials>, String> {
    let Some(stored) = store
        .get(BOOTSTRAP_KEY)
        .await
        .map_err(|e| format!("cannot read the shared credentials: {e}"))?
    else {
        return Ok(None);
    };
    let credentials: Credentials = serde_json::from_slice(&stored.value)
        .map_err(|e| format!("the shared credentials are unreadable: {e}"))?;
    for name in SHARED_FILES {
        if !credentials.contains_key(name) {
            return Err(format!("the shared credentials lack {name}"));
        }
    }
    Ok(Some(credentials))
}

/// Creates what a lone server would on its first start.
fn create_local(data_dir: &Path) -> Result<(), String> {
    crate::pki::load_or_create_ca(data_dir).map_err(|e| format!("cannot create the CA: {e}"))?;
    crate::kubeconfig::load_or_create_token(&data_dir.join("token"))
        .map_err(|e| format!("cannot create the admin token: {e}"))?;
    skiff_apiserver::service_account_tokens::TokenSigner::load_or_create(
        &data_dir.join("service-account.key"),
    )
    .map_err(|e| format!("cannot create the ServiceAccount signing key: {e}"))?;
    crate::pki::load_or_create_front_proxy_ca(data_dir)
        .map_err(|e| format!("cannot create the front-proxy CA: {e}"))?;
    Ok(())
}

fn read_local(data_dir: &Path) -> Result<Credentials, String> {
    SHARED_FILES
        .iter()
        .chain(SHARED_IF_STORED.iter())
        .map(|name| {
            let path = data_dir.join(name);
            let bytes =
                std::fs::read(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            Ok((
                name.to_string(),
                base64::engine::general_purpose::STANDARD.encode(bytes),
            ))
        })
        .collect()
}

fn write_local(data_dir: &Path, credentials: &Credentials) -> Result<(), String> {
    let stored_optional = SHARED_IF_STORED
        .into_iter()
        .filter(|name| credentials.contains_key(*name));
    for name in SHARED_FILES.into_iter().chain(stored_optional) {
        let encoded = credentials
            .get(name)
            .ok_or_else(|| format!("the shared credentials lack {name}"))?;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .map_err(|e| format!("the shared {name} is not base64: {e}"))?;
        let path = data_dir.join(name);
        if std::fs::read(&path).ok().as_deref() != Some(bytes.as_slice()) {
            write_private(&path, &bytes)
                .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use skiff_store::SqliteStore;

    fn files(dir: &Path) -> Vec<Vec<u8>> {
        SHARED_FILES
            .iter()
            .chain(SHARED_IF_STORED.iter())
            .map(|name| std::fs::read(dir.join(name)).expect("shared file written"))
            .collect()
    }

    #[tokio::test]
    async fn the_first_server_stores_its_credentials_and_the_others_take_them() {
        let scratch = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&scratch.path().join("state.db")).unwrap();
        let first = tempfile::tempdir().unwrap();
        let second = tempfile::tempdir().unwrap();
        share_credentials(&store, first.path()).await.unwrap();
        let first_files = files(first.path());
        // The second server made credentials of its own earlier; the shared ones replace them.
        create_local(second.path()).unwrap();
        assert_ne!(files(second.path()), first_files);
        share_credentials(&store, second.path()).await.unwrap();
        assert_eq!(files(second.path()), first_files);
        // A restart of the first changes nothing.
        share_credentials(&store, first.path()).await.unwrap();
        assert_eq!(files(first.path()), first_files);
    }

    #[tokio::test]
    async fn a_record_without_the_front_proxy_ca_leaves_each_server_its_own() {
        let scratch = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&scratch.path().join("state.db")).unwrap();
        let older = tempfile::tempdir().unwrap();
        create_local(older.path()).unwrap();
        let mut record = read_local(older.path()).unwrap();
        for name in SHARED_IF_STORED {
            record.remove(name);
        }
        store
            .create(BOOTSTRAP_KEY, serde_json::to_vec(&record).unwrap())
            .await
            .unwrap();
        let joining = tempfile::tempdir().unwrap();
        create_local(joining.path()).unwrap();
        let own_ca = std::fs::read(joining.path().join("front-proxy-ca.crt")).unwrap();
        share_credentials(&store, joining.path()).await.unwrap();
        assert_eq!(
            std::fs::read(joining.path().join("ca.crt")).unwrap(),
            std::fs::read(older.path().join("ca.crt")).unwrap()
        );
        assert_eq!(
            std::fs::read(joining.path().join("front-proxy-ca.crt")).unwrap(),
            own_ca
        );
    }

    #[tokio::test]
    async fn incomplete_shared_credentials_are_refused() {
        let scratch = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&scratch.path().join("state.db")).unwrap();
        store
            .create(BOOTSTRAP_KEY, br#"{"token":"YWJj"}"#.to_vec())
            .await
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let error = share_credentials(&store, dir.path()).await.unwrap_err();
        assert!(error.contains("lack ca.crt"), "{error}");
    }
}
