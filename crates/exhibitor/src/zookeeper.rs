//! Debian's Apache ZooKeeper as a child process: where it is installed, the `zoo.cfg` and
//! `myid` it runs with, its supervision, and its four-letter-word status.
//!
//! dcos-rs does not reimplement ZooKeeper: it runs the Java server from Debian's `zookeeper`
//! package (`/usr/share/java/zookeeper.jar`, with `java` from its dependencies), as DC/OS
//! runs the one Exhibitor ships.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// ZooKeeper's client port.
pub const CLIENT_PORT: u16 = 2181;
/// The quorum (follower to leader) port.
pub const QUORUM_PORT: u16 = 2888;
/// The leader election port.
pub const ELECTION_PORT: u16 = 3888;

/// Where Debian's `zookeeper` package puts the server.
pub const DEBIAN_JAR: &str = "/usr/share/java/zookeeper.jar";
const MAIN_CLASS: &str = "org.apache.zookeeper.server.quorum.QuorumPeerMain";

/// ZooKeeper's tick in milliseconds; sessions may last 2 to 20 ticks (DC/OS' Exhibitor default).
pub const TICK_MS: u64 = 2000;

/// Errors finding or running ZooKeeper.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file of the Debian package is missing.
    #[error("{what} is missing ({path}): install Debian's `zookeeper` package (apt-get install zookeeper), which brings Java with it")]
    NotInstalled {
        /// What is missing.
        what: &'static str,
        /// Where it was looked for.
        path: PathBuf,
    },
    /// This node is not in the ensemble.
    #[error("this node ({ip}) is not in the master list {masters:?}; only masters run ZooKeeper")]
    NotAMaster {
        /// This node.
        ip: IpAddr,
        /// The ensemble.
        masters: Vec<IpAddr>,
    },
    /// Writing the config or data dir failed.
    #[error("cannot prepare ZooKeeper's files in {dir}")]
    Files {
        /// The data dir.
        dir: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The server process could not be started.
    #[error("cannot start ZooKeeper ({java})")]
    Spawn {
        /// The Java binary.
        java: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// The Java binary and the server jar.
#[derive(Clone, Debug)]
pub struct Installation {
    /// `java`.
    pub java: PathBuf,
    /// The server jar (its manifest names the jars it needs).
    pub jar: PathBuf,
}

impl Installation {
    /// Finds Debian's ZooKeeper: `$JAVA_HOME/bin/java` or `/usr/bin/java`, and [`DEBIAN_JAR`].
    pub fn find() -> Result<Self, Error> {
        let java = std::env::var_os("JAVA_HOME")
            .map(|home| PathBuf::from(home).join("bin/java"))
            .filter(|java| java.exists())
            .unwrap_or_else(|| PathBuf::from("/usr/bin/java"));
        let jar = PathBuf::from(DEBIAN_JAR);
        for (what, path) in [("Java", &java), ("ZooKeeper's server jar", &jar)] {
            if !path.exists() {
                let path = path.clone();
                return Err(Error::NotInstalled { what, path });
            }
        }
        Ok(Self { java, jar })
    }
}

/// One server of an ensemble: its id, its ports, its data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerConfig {
    /// This server's id (`myid`): its position in `servers`, from 1.
    pub id: usize,
    /// Every server of the ensemble, in id order (the sorted master list: the same everywhere).
    pub servers: Vec<IpAddr>,
    /// Where clients connect (this server's IP, [`CLIENT_PORT`]).
    pub client: SocketAddr,
    /// Snapshots, transaction logs, `myid` and `zoo.cfg`.
    pub data_dir: PathBuf,
    /// A quorum (with quorum and election ports), not a standalone server.
    pub ensemble: bool,
}

impl ServerConfig {
    /// The server `ip` of the ensemble of `masters`, keeping its files in `data_dir`. Ids
    /// follow the sorted master list, as DC/OS numbers its static ensemble.
    pub fn for_master(ip: IpAddr, masters: &[IpAddr], data_dir: PathBuf) -> Result<Self, Error> {
        let mut servers = masters.to_vec();
        servers.sort();
        servers.dedup();
        let position = servers.iter().position(|m| *m == ip);
        let id = position.ok_or_else(|| Error::NotAMaster {
            ip,
            masters: masters.to_vec(),
        })? + 1;
        Ok(Self {
            id,
            servers,
            client: SocketAddr::new(ip, CLIENT_PORT),
            data_dir,
            ensemble: true,
        })
    }

    /// A one-server ensemble on `client` (tests use a loopback address and a free port).
    pub fn standalone(client: SocketAddr, data_dir: PathBuf) -> Self {
        Self {
            id: 1,
            servers: vec![client.ip()],
            client,
            data_dir,
            ensemble: false,
        }
    }

    /// The settings beyond ports and paths, as Exhibitor's `zooCfgExtra` shows them.
    pub fn cfg_extra(&self) -> serde_json::Value {
        serde_json::json!({
            "tickTime": TICK_MS.to_string(),
            "initLimit": "10",
            "syncLimit": "5",
            "maxClientCnxns": "0",
            "autopurge.snapRetainCount": "3",
            "autopurge.purgeInterval": "1",
        })
    }

    /// The `zoo.cfg` text.
    pub fn zoo_cfg(&self) -> String {
        let mut cfg = format!(
            "# Written by dcos-exhibitor at every start; edits are lost.\n\
             tickTime={TICK_MS}\n\
             initLimit=10\n\
             syncLimit=5\n\
             dataDir={data}\n\
             clientPort={port}\n\
             clientPortAddress={ip}\n\
             # Its admin server would take 8080, Marathon's port.\n\
             admin.enableServer=false\n\
             4lw.commands.whitelist=srvr,stat,mntr,ruok,conf\n\
             autopurge.snapRetainCount=3\n\
             autopurge.purgeInterval=1\n\
             # One master's components share one IP: do not cap connections per client IP.\n\
             maxClientCnxns=0\n",
            data = self.data_dir.display(),
            port = self.client.port(),
            ip = self.client.ip(),
        );
        if self.ensemble {
            // Listen for peers only on this server's own address, as every port here does;
            // a one-master ensemble is a quorum of one, not a standalone server, as in DC/OS.
            cfg.push_str("quorumListenOnAllIPs=false\nstandaloneEnabled=false\n");
            for (i, ip) in self.servers.iter().enumerate() {
                cfg.push_str(&format!(
                    "server.{}={ip}:{QUORUM_PORT}:{ELECTION_PORT}\n",
                    i + 1
                ));
            }
        }
        cfg
    }

    fn cfg_file(&self) -> PathBuf {
        self.data_dir.join("zoo.cfg")
    }

    fn pid_file(&self) -> PathBuf {
        self.data_dir.join("zookeeper.pid")
    }

    /// Writes `zoo.cfg` and `myid` into the data dir (created if missing).
    pub fn write(&self) -> Result<(), Error> {
        let files = |source| Error::Files {
            dir: self.data_dir.clone(),
            source,
        };
        fs_err::create_dir_all(&self.data_dir).map_err(files)?;
        fs_err::write(self.cfg_file(), self.zoo_cfg()).map_err(files)?;
        fs_err::write(self.data_dir.join("myid"), format!("{}\n", self.id)).map_err(files)
    }

    /// Writes the files and starts the server once, unsupervised: it is killed when the
    /// returned child is dropped. Tests use it for a throwaway standalone server.
    pub fn spawn(&self, install: &Installation) -> Result<Child, Error> {
        self.write()?;
        self.command(install)
            .spawn()
            .map_err(|source| Error::Spawn {
                java: install.java.clone(),
                source,
            })
    }

    fn command(&self, install: &Installation) -> Command {
        let mut command = Command::new(&install.java);
        command
            // A small, fast-starting JVM: ZooKeeper's data here is kilobytes.
            .args([
                "-Xms16m",
                "-Xmx256m",
                "-XX:+UseSerialGC",
                "-XX:TieredStopAtLevel=1",
            ])
            .arg(format!("-Dzookeeper.log.dir={}", self.data_dir.display()))
            .arg("-cp")
            .arg(&install.jar)
            .arg(MAIN_CLASS)
            .arg(self.cfg_file())
            .stdin(Stdio::null())
            .kill_on_drop(true);
        command
    }
}

/// What the supervisor reports about its server.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Process {
    /// The running server's pid.
    pub pid: Option<u32>,
    /// How many times it was started.
    pub starts: u32,
}

/// Runs the server until `shutdown`, restarting it (with backoff) whenever it exits, and
/// publishing its pid on `process`. A server left running by a killed supervisor is stopped
/// first: it holds the ports.
pub async fn supervise(
    config: ServerConfig,
    install: Installation,
    process: watch::Sender<Process>,
    shutdown: CancellationToken,
) -> Result<(), Error> {
    config.write()?;
    stop_leftover(&config.pid_file()).await;
    let mut backoff = Duration::from_millis(500);
    let mut starts = 0;
    while !shutdown.is_cancelled() {
        let mut child = config
            .command(&install)
            .spawn()
            .map_err(|source| Error::Spawn {
                java: install.java.clone(),
                source,
            })?;
        starts += 1;
        let pid = child.id();
        if let Some(pid) = pid {
            let _ = fs_err::write(config.pid_file(), pid.to_string());
        }
        process.send_replace(Process { pid, starts });
        tracing::info!(pid, id = config.id, client = %config.client, "started ZooKeeper");
        let started = tokio::time::Instant::now();
        tokio::select! {
            status = child.wait() => {
                process.send_replace(Process { pid: None, starts });
                tracing::error!(?status, "ZooKeeper exited; restarting it");
                if started.elapsed() > Duration::from_secs(30) {
                    backoff = Duration::from_millis(500);
                }
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(10));
            }
            _ = shutdown.cancelled() => {
                stop(&mut child).await;
                process.send_replace(Process { pid: None, starts });
            }
        }
    }
    let _ = fs_err::remove_file(config.pid_file());
    Ok(())
}

/// SIGTERM, then SIGKILL after five seconds.
async fn stop(child: &mut Child) {
    if let Some(pid) = child.id() {
        signal(pid, nix::sys::signal::Signal::SIGTERM);
        if tokio::time::timeout(Duration::from_secs(5), child.wait())
            .await
            .is_ok()
        {
            return;
        }
    }
    let _ = child.kill().await;
}

fn signal(pid: u32, signal: nix::sys::signal::Signal) {
    if let Ok(pid) = i32::try_from(pid) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), signal);
    }
}

/// Kills the server a previous supervisor started, if it still runs (pid file, and the
/// process is ZooKeeper's main class, not a recycled pid).
async fn stop_leftover(pid_file: &Path) {
    let Some(pid) = fs_err::read_to_string(pid_file)
        .ok()
        .and_then(|p| p.trim().parse::<u32>().ok())
    else {
        return;
    };
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    if !String::from_utf8_lossy(&cmdline).contains(MAIN_CLASS) {
        return;
    }
    tracing::warn!(
        pid,
        "stopping the ZooKeeper a previous supervisor left running"
    );
    signal(pid, nix::sys::signal::Signal::SIGKILL);
    for _ in 0..50 {
        if !Path::new(&format!("/proc/{pid}")).exists() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A server's role, from `srvr`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// The ensemble's leader.
    Leader,
    /// A follower.
    Follower,
    /// An observer.
    Observer,
    /// A one-server ensemble.
    Standalone,
}

/// What a server says of itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Status {
    /// It answers and serves clients.
    Serving(Mode),
    /// It answers but serves no clients (no quorum: "not currently serving requests").
    NotServing,
    /// It does not answer.
    Down,
}

/// Asks the server at `addr` with the `srvr` four-letter word (one second at most).
pub async fn status(addr: SocketAddr) -> Status {
    match tokio::time::timeout(Duration::from_secs(1), four_letter_word(addr, "srvr")).await {
        Ok(Ok(text)) => parse_srvr(&text),
        _ => Status::Down,
    }
}

/// Whether the server at `addr` answers `ruok` with `imok`.
pub async fn is_ok(addr: SocketAddr) -> bool {
    let asked = tokio::time::timeout(Duration::from_secs(1), four_letter_word(addr, "ruok"));
    matches!(asked.await, Ok(Ok(answer)) if answer == "imok")
}

async fn four_letter_word(addr: SocketAddr, word: &str) -> std::io::Result<String> {
    let mut stream = TcpStream::connect(addr).await?;
    stream.write_all(word.as_bytes()).await?;
    let mut text = String::new();
    stream.take(64 * 1024).read_to_string(&mut text).await?;
    Ok(text)
}

fn parse_srvr(text: &str) -> Status {
    let mode = text.lines().find_map(|l| l.strip_prefix("Mode: "));
    match mode.map(str::trim) {
        Some("leader") => Status::Serving(Mode::Leader),
        Some("follower") => Status::Serving(Mode::Follower),
        Some("observer") => Status::Serving(Mode::Observer),
        Some("standalone") => Status::Serving(Mode::Standalone),
        _ if text.contains("not currently serving") => Status::NotServing,
        _ => Status::Down,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ensemble_numbers_the_masters_in_sorted_order() {
        let masters: Vec<IpAddr> = ["10.0.0.3", "10.0.0.1", "10.0.0.2"]
            .iter()
            .map(|m| m.parse().unwrap())
            .collect();
        let c = ServerConfig::for_master(masters[1], &masters, "/d".into()).unwrap();
        assert_eq!(c.id, 1);
        let cfg = c.zoo_cfg();
        assert!(cfg.contains("clientPortAddress=10.0.0.1\n"));
        assert!(cfg.contains(
            "server.1=10.0.0.1:2888:3888\nserver.2=10.0.0.2:2888:3888\nserver.3=10.0.0.3:2888:3888\n"
        ));
        assert!(cfg.contains("admin.enableServer=false\n"));
        let other: IpAddr = "10.0.0.9".parse().unwrap();
        let err = ServerConfig::for_master(other, &masters, "/d".into()).unwrap_err();
        assert!(err.to_string().contains("only masters run ZooKeeper"));
    }

    #[test]
    fn one_server_runs_standalone() {
        let c = ServerConfig::standalone("127.0.0.1:22181".parse().unwrap(), "/d".into());
        assert!(!c.zoo_cfg().contains("server.1="));
    }

    #[test]
    fn srvr_modes() {
        let srvr = "Zookeeper version: 3.8.0\nLatency min/avg/max: 0/0.0/0\nMode: follower\nNode count: 5\n";
        assert_eq!(parse_srvr(srvr), Status::Serving(Mode::Follower));
        let down = "This ZooKeeper instance is not currently serving requests\n";
        assert_eq!(parse_srvr(down), Status::NotServing);
        assert_eq!(parse_srvr(""), Status::Down);
    }
}
