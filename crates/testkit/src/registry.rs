//! A real image registry for tests: Debian's `docker-registry` (Distribution 2.8) on a loopback
//! address, with its storage in a temporary directory, killed on drop.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub use dcos_registry::REGISTRY_BIN;

/// What the registry's log says when its port is taken.
const IN_USE: &str = "address already in use";

/// How long the registry may take to answer `/v2/`.
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// Ports tried when the registry is to pick a free one.
const PORT_ATTEMPTS: usize = 5;

/// A running registry.
pub struct Registry {
    child: Child,
    addr: SocketAddr,
    dir: tempfile::TempDir,
}

impl Registry {
    /// Starts a registry listening on `addr` (port 0 picks a free one) without auth.
    pub fn start(addr: SocketAddr) -> std::io::Result<Registry> {
        Registry::start_inner(addr, None)
    }

    /// Starts a registry that wants basic auth (htpasswd, bcrypt) from `user`/`password`.
    pub fn start_with_auth(
        addr: SocketAddr,
        user: &str,
        password: &str,
    ) -> std::io::Result<Registry> {
        Registry::start_inner(addr, Some((user, password)))
    }

    /// A free port is found by binding it and letting it go, so another test can take it
    /// before the registry binds it: the registry then exits, and another port is tried.
    fn start_inner(addr: SocketAddr, auth: Option<(&str, &str)>) -> std::io::Result<Registry> {
        if addr.port() != 0 {
            return Registry::start_on(addr, auth);
        }
        let mut attempt = 1;
        loop {
            let free = TcpListener::bind(addr)?.local_addr()?;
            match Registry::start_on(free, auth) {
                Err(e) if attempt < PORT_ATTEMPTS && e.to_string().contains(IN_USE) => {
                    attempt += 1;
                }
                started => return started,
            }
        }
    }

    fn start_on(addr: SocketAddr, auth: Option<(&str, &str)>) -> std::io::Result<Registry> {
        let dir = tempfile::Builder::new()
            .prefix("dcos-registry-")
            .tempdir()?;
        let storage = dir.path().join("storage");
        fs_err::create_dir(&storage)?;
        let htpasswd = dir.path().join("htpasswd");
        if let Some((user, password)) = auth {
            let hash = bcrypt::hash(password, 4).map_err(std::io::Error::other)?;
            fs_err::write(&htpasswd, format!("{user}:{hash}\n"))?;
        }
        let config = dcos_registry::config_yaml(
            addr,
            &storage,
            auth.map(|_| dcos_registry::Htpasswd {
                realm: "dcos-test",
                path: &htpasswd,
            }),
        );
        let config_path = dir.path().join("config.yml");
        fs_err::write(&config_path, config)?;
        let log = std::fs::File::create(dir.path().join("registry.log"))?;
        let child = Command::new(REGISTRY_BIN)
            .arg("serve")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?;
        let mut registry = Registry { child, addr, dir };
        registry.wait_ready()?;
        Ok(registry)
    }

    /// Waits until this registry answers `/v2/`: its log must say it listens, as whatever
    /// took the port (another test's registry) would answer too.
    fn wait_ready(&mut self) -> std::io::Result<()> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Err(std::io::Error::other(format!(
                    "docker-registry exited ({status}):\n{}",
                    crate::tail(&self.log_path(), 20)
                )));
            }
            let log = std::fs::read_to_string(self.log_path()).unwrap_or_default();
            let listening = log.contains("listening on");
            let connected = listening
                .then(|| TcpStream::connect_timeout(&self.addr, Duration::from_secs(1)).ok())
                .flatten();
            if let Some(stream) = connected {
                let host = self.host();
                if let Ok(r) = crate::http::get(stream, &host, "/v2/") {
                    if r.status == 200 || r.status == 401 {
                        return Ok(());
                    }
                }
            }
            if Instant::now() >= deadline {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("docker-registry did not answer on {}", self.addr),
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `host:port`, the registry part of an image reference.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    /// The registry's storage root (Distribution's filesystem driver layout).
    pub fn storage_dir(&self) -> PathBuf {
        self.dir.path().join("storage")
    }

    /// The file holding blob `digest` (`sha256:<hex>`) in the registry's storage: tests
    /// corrupt it to check digest verification.
    pub fn blob_data(&self, digest: &str) -> PathBuf {
        let hex = digest.trim_start_matches("sha256:");
        self.storage_dir()
            .join("docker/registry/v2/blobs/sha256")
            .join(&hex[..2.min(hex.len())])
            .join(hex)
            .join("data")
    }

    /// The registry's log (requests and errors).
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("registry.log")
    }

    /// The registry's temporary directory (config, htpasswd, storage, log).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    /// A port taken after it was picked: the registry starts on another.
    #[test]
    fn a_taken_port_is_retried_with_another() {
        let taken = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let err = Registry::start_on(taken.local_addr().unwrap(), None)
            .err()
            .unwrap();
        assert!(err.to_string().contains(IN_USE), "{err}");
        let reg = Registry::start(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).unwrap();
        assert_ne!(reg.addr(), taken.local_addr().unwrap());
    }
}
