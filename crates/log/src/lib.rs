//! dcos-log (`dcos-log-master.service`, `dcos-log-agent.service`): every unit's output kept
//! on every node with rotation and a size cap, and DC/OS' log API over it and over tasks'
//! sandbox files, on the unix socket `<run dir>/dcos-log.sock` that Admin Router serves at
//! `/system/v1/logs/` (and, on masters, at `/system/v1/agent/{id}/logs/` and
//! `/system/v1/leader/{mesos,marathon}/logs/`).
//!
//! - [`rotate`]: the supervisor's side: a unit's stdout and stderr are pumped line by line
//!   into `<logs dir>/<unit>.log`, each line prefixed with its time ([`record`]); at 10 MiB
//!   the file is rotated to `<unit>.log.<generation>` and the newest 5 rotated files kept.
//! - [`source`], [`journal`]: reading those files as journald would be read: forwards and
//!   backwards across rotations, several units merged in time order, matches, cursors that
//!   stay valid across rotation.
//! - [`api`]: dcos-log's v1 (`/v1/range/`, `/v1/stream/`, and per task container) and v2
//!   (`/v2/component[/{unit}]`, `/v2/task/...`) endpoints with their parameters, headers,
//!   status codes and `text/plain`, `application/json` and `text/event-stream` bodies.
//! - [`files`], [`select`]: which files a request may read: unit logs found by listing the
//!   logs dir, sandbox files opened beneath the agent's work dir without following links.
//! - [`discover`]: a task's sandbox found from the Mesos master's state (v2 `/task/{id}`).
//!
//! The DC/OS CLI 0.6.1 reads logs through this API only when Cosmos lists `LOGGING` (v1)
//! or `LOGGING_V2` (v2, preferred when listed); otherwise it reads Mesos' files API.

#![warn(missing_docs)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::UnixListener;
use tokio_util::sync::CancellationToken;

pub mod api;
pub mod discover;
pub mod files;
pub mod format;
pub mod journal;
pub mod record;
pub mod rotate;
pub mod select;
pub mod source;

pub use rotate::{pump, RotatingLog, Rotation};

/// The socket's name in the node's run dir.
pub const SOCKET_NAME: &str = "dcos-log.sock";

/// What the service serves.
#[derive(Clone, Debug)]
pub struct Config {
    /// The unix socket to listen on (`<run dir>/dcos-log.sock`).
    pub socket: PathBuf,
    /// The node's unit logs (`<work dir>/logs`).
    pub logs_dir: PathBuf,
    /// The agent's work dir, which holds the sandboxes (`slaves/<agent>/frameworks/...`):
    /// agents only.
    pub sandboxes: Option<PathBuf>,
    /// The Mesos master's state URL (`http://<master ip>:5050/master/state`; a standby
    /// redirects to the leader), for v2's `/task/{id}`: masters only.
    pub mesos_state: Option<String>,
    /// `_HOSTNAME` of unit entries (default: the host's name).
    pub hostname: Option<String>,
    /// Limits and timings.
    pub tuning: Tuning,
}

impl Config {
    /// A config with the defaults for a node whose run dir and logs dir are these.
    pub fn new(run_dir: &std::path::Path, logs_dir: PathBuf) -> Config {
        Config {
            socket: run_dir.join(SOCKET_NAME),
            logs_dir,
            sandboxes: None,
            mesos_state: None,
            hostname: None,
            tuning: Tuning::default(),
        }
    }
}

/// Limits and timings of the API.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tuning {
    /// Entries one range answer holds at most; skips are capped the same.
    pub max_entries: u64,
    /// How often a followed log is checked for new lines.
    pub poll: Duration,
    /// After how long without an entry a followed event stream gets a `: ping` comment
    /// (dcos-log's 15 s: proxies drop idle connections).
    pub keepalive: Duration,
    /// How often a followed journal looks for units whose logs appeared.
    pub rescan: Duration,
    /// Open connections at most: followed logs hold theirs, so this caps them too.
    pub max_connections: usize,
}

impl Default for Tuning {
    fn default() -> Self {
        Tuning {
            max_entries: 100_000,
            poll: Duration::from_millis(250),
            keepalive: Duration::from_secs(15),
            rescan: Duration::from_secs(5),
            max_connections: 128,
        }
    }
}

/// Why the service cannot run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The socket cannot be bound.
    #[error("failed to bind the dcos-log socket {}", path.display())]
    Bind {
        /// The socket path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// Binds `config.socket` and serves until `shutdown` is cancelled; followed logs end then.
pub async fn serve(config: Config, shutdown: CancellationToken) -> Result<(), Error> {
    let path = config.socket.clone();
    let bind_err = |source| Error::Bind {
        path: path.clone(),
        source,
    };
    if let Some(dir) = path.parent() {
        fs_err::create_dir_all(dir).map_err(bind_err)?;
    }
    // A socket left by a killed predecessor would make bind fail.
    let _ = fs_err::remove_file(&path);
    let listener = UnixListener::bind(&path).map_err(bind_err)?;
    tracing::info!(socket = %path.display(), "listening for dcos-log requests");
    serve_on(listener, config, shutdown).await;
    let _ = fs_err::remove_file(&path);
    Ok(())
}

/// Serves on a bound listener until `shutdown` is cancelled.
pub async fn serve_on(listener: UnixListener, config: Config, shutdown: CancellationToken) {
    let limits = dcos_serve::Limits::api()
        .connections(config.tuning.max_connections)
        .body(4 * 1024);
    let router = router(config, shutdown.clone());
    dcos_serve::serve(listener, router, limits, shutdown).await;
}

/// The API's routes (the paths below Admin Router's `/system/v1/logs`), testable without a
/// socket.
pub fn router(config: Config, shutdown: CancellationToken) -> axum::Router {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap_or_default();
    let ctx = api::Ctx {
        logs_dir: config.logs_dir,
        sandboxes: config.sandboxes,
        mesos_state: config.mesos_state,
        node: select::Node::local(config.hostname),
        tuning: config.tuning,
        shutdown,
        http,
    };
    api::router(Arc::new(ctx))
}
