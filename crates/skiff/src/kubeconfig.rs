//! The admin credentials and the kubeconfig that points `kubectl` at this server.

use std::io::Write;
use std::path::Path;

use rand::RngCore;

/// Reads the admin token from `path`, creating a fresh random one on first start.
pub fn load_or_create_token(path: &Path) -> std::io::Result<String> {
    if let Ok(existing) = std::fs::read_to_string(path) {
        let token = existing.trim().to_string();
        if !token.is_empty() {
            return Ok(token);
        }
    }
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    write_private(path, format!("{token}\n").as_bytes())?;
    Ok(token)
}

/// Writes a file readable only by its owner: it holds credentials.
pub fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    {
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut f = opts.open(&tmp)?;
        f.write_all(contents)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)
}

/// The kubeconfig for `server` (trusting `ca_pem`) with the admin token, context `skiff`
/// current.
pub fn render(server: &str, ca_pem: &str, token: &str) -> String {
    use base64::Engine;
    let ca_data = base64::engine::general_purpose::STANDARD.encode(ca_pem);
    let doc = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "skiff", "cluster": {"server": server, "certificate-authority-data": ca_data}}],
        "users": [{"name": "skiff-admin", "user": {"token": token}}],
        "contexts": [{"name": "skiff", "context": {"cluster": "skiff", "user": "skiff-admin", "namespace": "default"}}],
        "current-context": "skiff",
        "preferences": {},
    });
    skiff_api::yaml::to_string(&doc).unwrap_or_default()
}

/// A kubeconfig for `servers` (trusting `ca_pem`) that authenticates as `user` with a client
/// certificate, in a context `USER@skiff` made current. The first server is the cluster's
/// `server`, which kubectl uses; with several, all are listed in order in the
/// `skiff.dev/servers` cluster extension, which Skiff's own clients fail over along.
pub fn render_client(
    servers: &[String],
    ca_pem: &str,
    user: &str,
    cert_pem: &str,
    key_pem: &str,
) -> String {
    use base64::Engine;
    let encode = |pem: &str| base64::engine::general_purpose::STANDARD.encode(pem);
    let context = format!("{user}@skiff");
    let mut cluster = serde_json::json!({
        "server": servers.first().map(String::as_str).unwrap_or_default(),
        "certificate-authority-data": encode(ca_pem),
    });
    if servers.len() > 1 {
        cluster["extensions"] = serde_json::json!([{
            "name": skiff_client::remote::SERVERS_EXTENSION,
            "extension": {"servers": servers},
        }]);
    }
    let doc = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "skiff", "cluster": cluster}],
        "users": [{"name": user, "user": {"client-certificate-data": encode(cert_pem), "client-key-data": encode(key_pem)}}],
        "contexts": [{"name": context, "context": {"cluster": "skiff", "user": user, "namespace": "default"}}],
        "current-context": context,
        "preferences": {},
    });
    skiff_api::yaml::to_string(&doc).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_kubeconfig_lists_every_server_for_failover() {
        let servers = vec![
            "https://127.0.0.1:6443".to_string(),
            "https://127.0.0.1:7443".to_string(),
        ];
        let ca = "-----BEGIN CERTIFICATE-----\nMA==\n-----END CERTIFICATE-----\n";
        let text = render_client(&servers, ca, "ann", "cert", "key");
        let config =
            skiff_client::RemoteConfig::from_kubeconfig_text(&text, Path::new(".")).expect("parse");
        assert_eq!(config.server, "https://127.0.0.1:6443");
        assert_eq!(config.fallback_servers, vec!["https://127.0.0.1:7443"]);

        let single = render_client(&servers[..1], ca, "ann", "cert", "key");
        assert!(!single.contains("extensions"), "{single}");
        let config = skiff_client::RemoteConfig::from_kubeconfig_text(&single, Path::new("."))
            .expect("parse");
        assert!(config.fallback_servers.is_empty());
    }

    #[test]
    fn token_is_created_once_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        let first = load_or_create_token(&path).unwrap();
        assert_eq!(first.len(), 64);
        assert_eq!(load_or_create_token(&path).unwrap(), first);
    }

    #[test]
    fn kubeconfig_names_server_token_and_context() {
        let text = render("https://127.0.0.1:1234", "PEM", "abc");
        let doc: serde_json::Value = skiff_api::yaml::from_str(&text).unwrap();
        assert_eq!(doc["current-context"], "skiff");
        assert_eq!(
            doc["clusters"][0]["cluster"]["server"],
            "https://127.0.0.1:1234"
        );
        assert_eq!(
            doc["clusters"][0]["cluster"]["certificate-authority-data"],
            "UEVN"
        );
        assert_eq!(doc["users"][0]["user"]["token"], "abc");
    }
}
