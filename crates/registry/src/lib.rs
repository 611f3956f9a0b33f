//! `dcos-registry.service`: an image registry of the cluster's own on every master, for
//! air-gapped clusters (off by default; `dcos cluster up --registry`, or `registry: true` in
//! a master's node.yaml). It runs Debian's `docker-registry` (Distribution 2.8, the
//! reference implementation of the Registry HTTP API v2) with a configuration written here:
//! storage under the node's work dir, listening on the node's IP at [`PORT`] (an added row
//! of the port contract). Operators push with `dcos image push`, agents pull the images of
//! their containers from `<master-ip>:5000/<repo>:<tag>`. Each master keeps its own storage:
//! push to every master whose registry agents name (or to one, and name that one).

#![warn(missing_docs)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// The binary Debian's `docker-registry` package installs.
pub const REGISTRY_BIN: &str = "/usr/bin/docker-registry";
/// The registry's port on a master (Docker's registry port; the contract's added row).
pub const PORT: u16 = 5000;

/// The unit's configuration.
#[derive(Clone, Debug)]
pub struct Config {
    /// Where it listens (`<node-ip>:5000`).
    pub listen: SocketAddr,
    /// Its directory: `config.yml`, `data/` (the images), `registry.log`.
    pub dir: PathBuf,
}

/// Errors running the registry.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Debian's docker-registry is not installed.
    #[error(
        "{REGISTRY_BIN} not found: install Debian's docker-registry (scripts/install-deps does)"
    )]
    NotInstalled,
    /// Its files could not be written or it could not be started.
    #[error("cannot run the image registry in {dir}: {source}")]
    Io {
        /// Its directory.
        dir: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// It exited on its own.
    #[error("the image registry exited ({status}); its log: {log}")]
    Exited {
        /// How it ended.
        status: std::process::ExitStatus,
        /// Where its log is.
        log: PathBuf,
    },
}

/// Basic authentication for a registry: the realm and an htpasswd file (bcrypt entries).
pub struct Htpasswd<'a> {
    /// The realm the registry names in its challenge.
    pub realm: &'a str,
    /// The file.
    pub path: &'a Path,
}

/// Distribution's configuration for a registry on `addr` storing under `storage`: the
/// filesystem driver, deletes allowed (so an operator can remove an image), the access log,
/// and basic auth if `auth` is given.
pub fn config_yaml(addr: SocketAddr, storage: &Path, auth: Option<Htpasswd<'_>>) -> String {
    let mut config = format!(
        "version: 0.1\nlog:\n  level: info\n  accesslog:\n    disabled: false\n\
         storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: {}\n\
         http:\n  addr: {}\n  headers:\n    X-Content-Type-Options: [nosniff]\n",
        quoted(&storage.to_string_lossy()),
        // Deleting images only where clients must authenticate: an open registry on the
        // node's network must not let anyone remove what agents run.
        auth.is_some(),
        quoted(&addr.to_string()),
    );
    if let Some(auth) = auth {
        config.push_str(&format!(
            "auth:\n  htpasswd:\n    realm: {}\n    path: {}\n",
            quoted(auth.realm),
            quoted(&auth.path.to_string_lossy())
        ));
    }
    config
}

/// `text` as a YAML double-quoted scalar (a JSON string is one): an IPv6 address in
/// brackets, or a path with `: ` or `#`, stays one value.
fn quoted(text: &str) -> String {
    let mut out = String::from('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Runs the registry until `shutdown` (then stops it), or fails when it exits on its own
/// (the node's supervisor starts the unit again).
pub async fn serve(config: Config, shutdown: CancellationToken) -> Result<(), Error> {
    if !Path::new(REGISTRY_BIN).is_file() {
        return Err(Error::NotInstalled);
    }
    let io = |source| Error::Io {
        dir: config.dir.clone(),
        source,
    };
    let data = config.dir.join("data");
    fs_err::create_dir_all(&data).map_err(io)?;
    let config_path = config.dir.join("config.yml");
    fs_err::write(&config_path, config_yaml(config.listen, &data, None)).map_err(io)?;
    let log_path = config.dir.join("registry.log");
    // Appended, not truncated: the log of a registry that exited is what says why, and the
    // supervisor starts the unit again at once.
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(io)?;
    let mut child = tokio::process::Command::new(REGISTRY_BIN)
        .arg("serve")
        .arg(&config_path)
        // `REGISTRY_*` variables would override the configuration written above.
        .env_clear()
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone().map_err(io)?)
        .stderr(log)
        // A registry outliving its unit would hold the port against the next start.
        .kill_on_drop(true)
        .spawn()
        .map_err(io)?;
    tracing::info!(addr = %config.listen, dir = %config.dir.display(), "serving the image registry");
    tokio::select! {
        _ = shutdown.cancelled() => {
            let _ = child.start_kill();
            let _ = tokio::time::timeout(STOP_TIMEOUT, child.wait()).await;
            Ok(())
        }
        status = child.wait() => Err(match status {
            Ok(status) => Error::Exited { status, log: log_path },
            Err(source) => Error::Io { dir: config.dir.clone(), source },
        }),
    }
}

/// How long a stopping registry may take to exit.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_config_names_storage_address_and_auth() {
        let addr: SocketAddr = "10.0.0.1:5000".parse().unwrap();
        let yaml = config_yaml(addr, Path::new("/var/lib/r/data"), None);
        assert!(yaml.contains("rootdirectory: \"/var/lib/r/data\"\n"));
        assert!(yaml.contains("addr: \"10.0.0.1:5000\"\n"));
        let v6 = config_yaml("[fd00::1]:5000".parse().unwrap(), Path::new("/a: #b"), None);
        assert!(v6.contains("addr: \"[fd00::1]:5000\"\n"), "{v6}");
        assert!(v6.contains("rootdirectory: \"/a: #b\"\n"), "{v6}");
        assert!(!yaml.contains("auth:"));
        let auth = Htpasswd {
            realm: "dcos",
            path: Path::new("/etc/htpasswd"),
        };
        let yaml = config_yaml(addr, Path::new("/d"), Some(auth));
        assert!(
            yaml.contains("auth:\n  htpasswd:\n    realm: \"dcos\"\n    path: \"/etc/htpasswd\"\n")
        );
    }
}
