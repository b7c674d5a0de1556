//! `skiff kubeconfig --user NAME [--group G]`: a kubeconfig for another user of the cluster,
//! authenticating with a new client certificate the cluster CA signs (common name the user,
//! organization the group), so RBAC decides what that user may do.

use std::path::PathBuf;

use serde_json::Value;

use crate::{kubeconfig, pki};

/// Options of `skiff kubeconfig`.
#[derive(clap::Args, Clone, Debug)]
pub struct KubeconfigArgs {
    /// The user name the certificate authenticates as.
    #[arg(long)]
    pub user: String,
    /// The group the user is in (the certificate's organization).
    #[arg(long)]
    pub group: Option<String>,
    /// A server the kubeconfig names, `https://HOST:PORT`; repeat for each server of a
    /// cluster on one datastore. The first is the cluster's `server` (kubectl's); all are
    /// listed in the `skiff.dev/servers` cluster extension, for clients that fail over.
    /// Default: the server the admin kubeconfig names.
    #[arg(long = "server", value_name = "URL")]
    pub servers: Vec<String>,
    /// The data directory of the `skiff up` whose CA signs the certificate.
    #[arg(long, env = "SKIFF_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
}

/// Prints the kubeconfig to standard output.
pub fn run(args: &KubeconfigArgs) -> Result<(), Box<dyn std::error::Error>> {
    if args.user.is_empty() {
        return Err("--user must not be empty".into());
    }
    let data_dir = args
        .data_dir
        .clone()
        .unwrap_or_else(crate::up::default_data_dir);
    let admin_path = data_dir.join("kubeconfig");
    let admin = std::fs::read_to_string(&admin_path).map_err(|e| {
        format!(
            "cannot read {} (run `skiff up` first): {e}",
            admin_path.display()
        )
    })?;
    let admin: Value = skiff_api::yaml::from_str(&admin)
        .map_err(|e| format!("cannot parse {}: {e}", admin_path.display()))?;
    let servers = if args.servers.is_empty() {
        let server = admin
            .pointer("/clusters/0/cluster/server")
            .and_then(Value::as_str)
            .ok_or_else(|| format!("{} names no server", admin_path.display()))?;
        vec![server.to_string()]
    } else {
        for server in &args.servers {
            if !server.starts_with("https://") {
                return Err(format!("--server {server:?} is not an https:// URL").into());
            }
        }
        args.servers.clone()
    };
    let ca_pem = std::fs::read_to_string(data_dir.join("ca.crt"))?;
    let client = pki::client_material(&data_dir, &args.user, args.group.as_deref())?;
    print!(
        "{}",
        kubeconfig::render_client(
            &servers,
            &ca_pem,
            &args.user,
            &client.cert_pem,
            &client.key_pem
        )
    );
    Ok(())
}
