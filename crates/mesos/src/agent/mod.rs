//! The Mesos agent (`dcos-mesos-slave.service`, port 5051).
//!
//! It registers with the leading master over the agent protocol, runs command tasks with a
//! built-in command executor (each task in its own sandbox and process group), delivers
//! status updates at least once and in order per task (retried until acknowledged), and
//! checkpoints every task so a restarted agent re-attaches to the ones still running.
//! A task whose container names an image runs in it, as the Mesos containerizer runs it
//! (`container`).
//!
//! What a framework sends cannot reach past its sandbox: ids that are not plain names are
//! refused (TASK_ERROR), fetches land inside the sandbox and read local files only from
//! allowed directories (`containerizer::fetcher`), tasks run as their user
//! (`containerizer::launcher`), the files API serves sandboxes only and follows no symlink
//! out of them (`files`), and checkpointed pids are trusted only with their start time and
//! boot (`checkpoint`).
//!
//! Its parts:
//! - `state`: the runs, executors and master in memory, and the handle all parts share;
//! - `checkpoint`: what survives a restart, and how a checkpointed process is known again;
//! - `link`: the master link (subscription, event stream, status updates and their
//!   acknowledgements);
//! - `tasks`: command tasks (launch, supervision, kill, recovery) and `executor`: custom
//!   executors and their v1 executor API;
//! - `containerizer`: the interface tasks and executors run through, and the real
//!   containerizer (processes, and `container` for images); `health`: health checks;
//! - `http`: routes, `/state`, statistics, `/metrics/snapshot` and the operator API; `files`:
//!   the files API;
//! - `statsd`: each container's StatsD socket, relayed to dcos-metrics;
//! - `procfs`: what the agent reads of `/proc`; `sandbox`, `beneath`: sandbox paths.

mod beneath;
mod checkpoint;
pub mod container;
mod containerizer;
mod executor;
mod files;
mod health;
mod http;
mod link;
mod procfs;
pub mod sandbox;
mod state;
mod statsd;
mod tasks;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::resources::Resources;
use state::Shared;

/// Where local URIs may be fetched from unless configured otherwise.
pub const DEFAULT_FETCH_DIR: &str = "/var/lib/dcos/fetch";
/// The largest URI the fetcher saves unless configured otherwise: 10 GiB.
pub const DEFAULT_FETCH_MAX_BYTES: u64 = 10 << 30;

/// The agent's configuration.
#[derive(Clone, Debug)]
pub struct Config {
    /// Where to listen (the node's IP, port 5051).
    pub listen: SocketAddr,
    /// The masters (`ip:5050`), tried in order.
    pub masters: Vec<SocketAddr>,
    /// Sandboxes and checkpoints live here.
    pub work_dir: PathBuf,
    /// Advertised resources (ports: the contract's ranges minus co-located component ports).
    pub resources: Resources,
    /// Text attributes.
    pub attributes: BTreeMap<String, String>,
    /// The only directories local URIs (`file:///...` or a plain absolute path) are fetched
    /// from; any other local path fails the task. The fetcher runs as the agent (root), so
    /// without this a framework could copy any host file into a sandbox it can read.
    /// Symlinks below these directories are not followed. Default: [`DEFAULT_FETCH_DIR`]
    /// (`/var/lib/dcos/fetch`); empty allows no local URIs at all.
    pub fetch_allowed_dirs: Vec<PathBuf>,
    /// The largest URI the fetcher saves, in bytes; a larger one fails the task. Default:
    /// [`DEFAULT_FETCH_MAX_BYTES`] (10 GiB).
    pub fetch_max_bytes: u64,
    /// Run each task as its user (the command's `user`, else the framework's), as Mesos'
    /// `--switch_user` (default true). An agent not running as root can then run tasks only
    /// as itself and refuses other users; false runs every task as the agent's user.
    pub switch_user: bool,
    /// The `dcos` binary whose hidden `container-init` is a container's PID 1. Default (None):
    /// this process's own executable, which is `dcos` in production (tests point it at one).
    pub container_init: Option<PathBuf>,
    /// Where the images of tasks in containers come from; without one such tasks fail.
    pub images: Option<Arc<dyn container::ImageStore>>,
    /// Registries (`host:port`) reached over plain http, besides loopback ones: the masters'
    /// cluster-local registries.
    pub insecure_registries: Vec<String>,
    /// Its service account's login, when it must authenticate to the master (strict).
    pub login: Option<dcos_iam::client::ServiceLogin>,
    /// Strict security: its API asks a token, checked against the keys the IAM publishes
    /// at this address (a master's Admin Router: the IAM itself is on masters' loopback).
    pub verify_tokens: Option<SocketAddr>,
    /// The node's dcos-metrics StatsD collector (UDP): each task gets a StatsD socket of its
    /// own on the agent's IP (`STATSD_UDP_HOST`, `STATSD_UDP_PORT`) whose datagrams are
    /// relayed there, as DC/OS' metrics module does. Default: `127.0.0.1:8124`; None gives
    /// tasks no StatsD.
    pub statsd: Option<SocketAddr>,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            listen: SocketAddr::from(([0, 0, 0, 0], 5051)),
            masters: Vec::new(),
            work_dir: PathBuf::from("/var/lib/mesos/slave"),
            resources: Resources::default(),
            attributes: BTreeMap::new(),
            fetch_allowed_dirs: vec![PathBuf::from(DEFAULT_FETCH_DIR)],
            fetch_max_bytes: DEFAULT_FETCH_MAX_BYTES,
            switch_user: true,
            container_init: None,
            images: None,
            insecure_registries: Vec::new(),
            login: None,
            verify_tokens: None,
            statsd: Some(dcos_metrics::relay::DEFAULT_COLLECTOR),
        }
    }
}

impl Config {
    /// Detects cpus, memory and disk from the host.
    pub fn host_resources(work_dir: &Path) -> (f64, f64, f64) {
        let cpus = std::thread::available_parallelism()
            .map(|n| n.get() as f64)
            .unwrap_or(1.0);
        let mem_kb = procfs::mem_total_kib().unwrap_or(1024.0 * 1024.0);
        // Mesos leaves the larger of 1 GiB and half the memory to the system on small hosts.
        let mem_mb = mem_kb / 1024.0;
        let mem = (mem_mb - (1024.0f64).min(mem_mb / 2.0)).max(32.0);
        let disk = nix::sys::statvfs::statvfs(work_dir)
            .map(|s| (s.blocks_available() as f64) * (s.fragment_size() as f64) / 1_048_576.0)
            .unwrap_or(10240.0);
        let disk = (disk - (5120.0f64).min(disk / 2.0)).max(0.0);
        (cpus, mem.floor(), disk.floor())
    }
}

/// Errors starting or running the agent.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The port could not be bound.
    #[error("failed to bind the Mesos agent on {addr}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The work dir is unusable.
    #[error("cannot use agent work dir {path}")]
    WorkDir {
        /// The dir.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// Binds the configured address and serves until `shutdown` is cancelled.
pub async fn serve(config: Config, shutdown: CancellationToken) -> Result<(), Error> {
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|source| Error::Bind {
            addr: config.listen,
            source,
        })?;
    serve_on(listener, config, shutdown).await
}

/// Serves on an already-bound listener until `shutdown` is cancelled.
pub async fn serve_on(
    listener: TcpListener,
    config: Config,
    shutdown: CancellationToken,
) -> Result<(), Error> {
    let addr = listener.local_addr().unwrap_or(config.listen);
    let mut config = config;
    config.listen = addr;
    fs_err::create_dir_all(config.work_dir.join("meta")).map_err(|source| Error::WorkDir {
        path: config.work_dir.clone(),
        source,
    })?;
    if config.images.is_none() {
        config.images = open_images(&config.work_dir, config.insecure_registries.clone());
    }
    let verify_tokens = config.verify_tokens;
    let shared = Shared::new(config);
    tasks::recover(&shared);
    tracing::info!(%addr, "listening for Mesos agent requests");
    // Strict security: every endpoint but the probes and the executor API (its callers are
    // the agent's own executors, bound to their containers) asks a token.
    let app = dcos_iam::client::require_tokens(
        http::router(shared.clone()),
        verify_tokens,
        &[
            "/health",
            "/slave(1)/health",
            "/version",
            "/api/v1/executor",
        ],
    );
    let server = dcos_serve::serve(listener, app, LIMITS, shutdown.clone());
    // Graceful shutdown waits for every open response, and executors' event streams never
    // end on their own: a stopping agent ends them (checkpointing executors reconnect).
    tokio::spawn({
        let (shared, shutdown) = (shared.clone(), shutdown.clone());
        async move {
            shutdown.cancelled().await;
            executor::disconnect_all(&shared);
        }
    });
    let master_link = link::follow(shared.clone(), shutdown.clone());
    let sender = link::updates::sender(shared.clone(), shutdown.clone());
    let images = container::collect_images(shared.config.images.clone(), shutdown.clone());
    let statsd = statsd::sweep(shared.clone(), shutdown.clone());
    tokio::join!(server, master_link, sender, images, statsd);
    Ok(())
}

/// The image store at `<work_dir>/images`; without it, tasks in images fail (and say why).
fn open_images(
    work_dir: &Path,
    insecure_registries: Vec<String>,
) -> Option<Arc<dyn container::ImageStore>> {
    let opened = dcos_image::Store::open(&work_dir.join("images"), insecure_registries);
    // The layers hold images' setuid files and device-free but root-owned trees: only the
    // agent may reach them.
    let private = std::os::unix::fs::PermissionsExt::from_mode(0o700);
    if let Err(e) = std::fs::set_permissions(work_dir.join("images"), private) {
        tracing::warn!(error = %e, "cannot make the image store private");
    }
    match opened {
        Ok(store) => Some(Arc::new(container::RegistryImages(store))),
        Err(e) => {
            tracing::error!(error = %e, "cannot open the image store; tasks in images will fail");
            None
        }
    }
}

/// What 5051 allows: executors' event streams (one per executor), the master's and Admin
/// Router's calls, operators' reads of the files API; executor calls and launches are small.
pub const LIMITS: dcos_serve::Limits = dcos_serve::Limits::api()
    .connections(4096)
    .body(16 * 1024 * 1024);
