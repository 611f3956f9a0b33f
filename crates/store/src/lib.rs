//! Replicated state for dcos-rs: a ZooKeeper-shaped API with pluggable backends.
//!
//! Components (the Mesos master's registry and leader election, Marathon's state) talk to the
//! [`Store`] trait: hierarchical nodes (`/mesos/registry/agents/<id>`) with versioned data,
//! compare-and-set, sequential and ephemeral nodes, watches, and sessions. Owns no ports.
//!
//! Backends:
//! - [`embedded`]: one redb file per component process (single master); watches in process.
//! - [`zookeeper`]: the masters' ZooKeeper ensemble (several masters, or `--store zookeeper`).
//!
//! `tests/it/suite.rs` is the behaviour both must pass. [`AnyStore`] is either, chosen at start
//! from a [`Location`]; [`path`] validates node paths; [`election`] is leader election as Mesos
//! does it under `/mesos`.

#![warn(missing_docs)]

use std::future::Future;

use tokio::sync::mpsc;

pub mod election;
pub mod embedded;
pub mod file;
pub mod path;
pub mod records;
pub mod zookeeper;

pub use election::{Candidate, Contender, LeaderElection, Lost, Standing};
pub use embedded::{Embedded, Session};
pub use zookeeper::ZooKeeper;

/// Mesos' and Marathon's default ZooKeeper session timeout.
pub const ZK_SESSION_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// The result of a store operation.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// How many undelivered events a [`Watch`] holds before the store ends it.
pub const WATCH_CAPACITY: usize = 64;

/// A store handle bound to one session, as a ZooKeeper client is: ephemeral nodes it creates
/// live until the session is closed (or, for the embedded backend, the last clone dropped).
///
/// Clones share the session. Paths are absolute (`/a/b`), see [`path::validate`].
pub trait Store: Clone + Send + Sync + 'static {
    /// This session's id, the [`Stat::ephemeral_owner`] of the ephemeral nodes it creates.
    fn session_id(&self) -> i64;

    /// The data and stat of the node at `path`, or `None` if there is none.
    fn get(&self, path: &str) -> impl Future<Output = Result<Option<(Vec<u8>, Stat)>>> + Send;

    /// Creates the node and returns its actual path (with the sequence suffix for sequential
    /// modes). Fails with `NoNode` if the parent is missing, `NodeExists` if the node is there.
    fn create(
        &self,
        path: &str,
        data: &[u8],
        mode: CreateMode,
    ) -> impl Future<Output = Result<String>> + Send;

    /// Replaces the node's data if its version is `expected_version` (any version if `None`).
    fn set(
        &self,
        path: &str,
        data: &[u8],
        expected_version: Option<i64>,
    ) -> impl Future<Output = Result<Stat>> + Send;

    /// Deletes a node without children if its version is `expected_version` (or any if `None`).
    fn delete(
        &self,
        path: &str,
        expected_version: Option<i64>,
    ) -> impl Future<Output = Result<()>> + Send;

    /// The names (not paths) of the node's children, sorted.
    fn children(&self, path: &str) -> impl Future<Output = Result<Vec<String>>> + Send;

    /// Subscribes to changes of `path` (which need not exist yet): its creation, data changes
    /// and deletion, and changes to its list of children. Like ZooKeeper's persistent watch.
    fn watch(&self, path: &str) -> impl Future<Output = Result<Watch>> + Send;

    /// Ends the session: its ephemeral nodes are deleted, then every operation through any
    /// clone fails with [`Error::SessionClosed`].
    fn close(self) -> impl Future<Output = Result<()>> + Send;

    /// Creates `path` and any missing ancestors as empty persistent nodes; Ok if it exists.
    fn ensure_path(&self, path: &str) -> impl Future<Output = Result<()>> + Send {
        async move {
            path::validate(path)?;
            for node in path::ancestors(path).chain([path]) {
                match self.create(node, &[], CreateMode::Persistent).await {
                    Ok(_) | Err(Error::NodeExists { .. }) => {}
                    Err(e) => return Err(e),
                }
            }
            Ok(())
        }
    }

    /// Applies unconditional writes in order. The embedded backend applies them in one
    /// transaction (all or none, one fsync: the way to write many nodes quickly); the
    /// default, which ZooKeeper uses, sends one request each.
    fn write_all(&self, writes: Vec<Write>) -> impl Future<Output = Result<()>> + Send {
        async move {
            for w in writes {
                match w {
                    Write::Put { path, data } => match self.set(&path, &data, None).await {
                        Ok(_) => {}
                        Err(Error::NoNode { .. }) => {
                            self.create_all(&path, &data, CreateMode::Persistent)
                                .await?;
                        }
                        Err(e) => return Err(e),
                    },
                    Write::Remove { path } => match self.delete(&path, None).await {
                        Ok(()) | Err(Error::NoNode { .. }) => {}
                        Err(e) => return Err(e),
                    },
                }
            }
            Ok(())
        }
    }

    /// [`Store::create`] after creating any missing ancestors (see [`Store::ensure_path`]).
    fn create_all(
        &self,
        path: &str,
        data: &[u8],
        mode: CreateMode,
    ) -> impl Future<Output = Result<String>> + Send {
        async move {
            path::validate_create(path, mode)?;
            if let Some(parent) = path::ancestors(path).last() {
                self.ensure_path(parent).await?;
            }
            self.create(path, data, mode).await
        }
    }
}

/// One write of [`Store::write_all`]: unconditional, so it never conflicts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Write {
    /// Sets the node's data, creating it (a persistent node) and its ancestors if missing.
    Put {
        /// The node.
        path: String,
        /// Its data.
        data: Vec<u8>,
    },
    /// Deletes the node (which must have no children) if it exists.
    Remove {
        /// The node.
        path: String,
    },
}

impl Write {
    /// The node it writes.
    pub fn path(&self) -> &str {
        match self {
            Write::Put { path, .. } | Write::Remove { path } => path,
        }
    }
}

/// How a node is created, as in ZooKeeper.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CreateMode {
    /// Lives until deleted.
    Persistent,
    /// Deleted when the creating session ends; cannot have children.
    Ephemeral,
    /// Persistent, with a 10-digit counter of the parent appended to the name.
    PersistentSequential,
    /// Ephemeral, with a 10-digit counter of the parent appended to the name.
    EphemeralSequential,
}

// === impl CreateMode ===

impl CreateMode {
    /// Whether the node goes away with its session.
    pub fn is_ephemeral(self) -> bool {
        matches!(self, Self::Ephemeral | Self::EphemeralSequential)
    }

    /// Whether a sequence number is appended to the name.
    pub fn is_sequential(self) -> bool {
        matches!(self, Self::PersistentSequential | Self::EphemeralSequential)
    }
}

/// A node's metadata (ZooKeeper's `Stat`, without zxids and times).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stat {
    /// Data version: 0 on create, +1 on every `set`.
    pub version: i64,
    /// Children version: +1 on every child created or deleted. Sequential names use it.
    pub cversion: i64,
    /// The owning session's id for an ephemeral node, 0 for a persistent one.
    pub ephemeral_owner: i64,
    /// How many children the node has.
    pub num_children: usize,
    /// The length of the data in bytes.
    pub data_length: usize,
}

/// What changed, as ZooKeeper's watch event types.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// The watched node was created.
    NodeCreated,
    /// The watched node's data was set.
    NodeDataChanged,
    /// The watched node was deleted.
    NodeDeleted,
    /// A child of the watched node was created or deleted.
    NodeChildrenChanged,
}

/// One change to a watched path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WatchedEvent {
    /// What changed.
    pub kind: EventKind,
    /// The watched path (for `NodeChildrenChanged`, the parent).
    pub path: String,
}

/// A subscription to the changes of one path (see [`Store::watch`]). Dropping it unsubscribes.
pub struct Watch {
    path: String,
    events: mpsc::Receiver<WatchedEvent>,
    // Whatever the backend needs dropped to unsubscribe (the embedded registry entry).
    _registration: Box<dyn Send + Sync>,
}

// === impl Watch ===

impl Watch {
    pub(crate) fn new(
        path: String,
        events: mpsc::Receiver<WatchedEvent>,
        registration: impl Send + Sync + 'static,
    ) -> Self {
        let _registration = Box::new(registration);
        Self {
            path,
            events,
            _registration,
        }
    }

    /// The watched path.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The next event. `None` means the watch ended: the consumer fell [`WATCH_CAPACITY`]
    /// events behind, or the session or store closed. Re-read the state and watch again.
    pub async fn recv(&mut self) -> Option<WatchedEvent> {
        self.events.recv().await
    }
}

impl std::fmt::Debug for Watch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watch")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// Errors of store operations, ZooKeeper's where one exists. Each names the node.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The node (for `create`, its parent) does not exist.
    #[error("node {path} does not exist")]
    NoNode {
        /// The missing node.
        path: String,
    },
    /// `create` found the node already there.
    #[error("node {path} already exists")]
    NodeExists {
        /// The existing node.
        path: String,
    },
    /// A compare-and-set found another version.
    #[error("node {path} is at version {actual}, not the expected {expected}")]
    BadVersion {
        /// The node.
        path: String,
        /// The version the caller expected.
        expected: i64,
        /// The node's version.
        actual: i64,
    },
    /// `delete` of a node that has children.
    #[error("node {path} has children")]
    NotEmpty {
        /// The node.
        path: String,
    },
    /// `create` under an ephemeral node.
    #[error("node {path} is ephemeral and cannot have children")]
    NoChildrenForEphemerals {
        /// The ephemeral parent.
        path: String,
    },
    /// The path is not a valid node path.
    #[error("invalid node path {path:?}: {why}")]
    InvalidPath {
        /// The path as given.
        path: String,
        /// The rule it breaks.
        why: &'static str,
    },
    /// The session was closed; open a new one.
    #[error("session {session:#x} is closed")]
    SessionClosed {
        /// The session's id.
        session: i64,
    },
    /// The backend failed (I/O, corruption, the file is locked by another process).
    #[error("storage failure in {store}{}", at_node(.path))]
    Storage {
        /// The store: a file for the embedded backend.
        store: String,
        /// The node being accessed, if any.
        path: Option<String>,
        /// The backend's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

fn at_node(path: &Option<String>) -> String {
    path.as_ref()
        .map(|p| format!(" at node {p}"))
        .unwrap_or_default()
}

/// Where a component keeps its state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Location {
    /// A redb file of its own (one master).
    Embedded(std::path::PathBuf),
    /// The masters' ZooKeeper ensemble.
    ZooKeeper {
        /// `host:port,host:port`.
        servers: String,
        /// The session timeout to ask for.
        session_timeout: std::time::Duration,
    },
}

impl Location {
    /// The ensemble of `masters` on ZooKeeper's client port, with [`ZK_SESSION_TIMEOUT`].
    pub fn zookeeper(masters: &[std::net::IpAddr]) -> Self {
        let servers: Vec<String> = masters
            .iter()
            .map(|ip| std::net::SocketAddr::new(*ip, 2181).to_string())
            .collect();
        Self::ZooKeeper {
            servers: servers.join(","),
            session_timeout: ZK_SESSION_TIMEOUT,
        }
    }

    /// Opens a session: the file (created with its directory if missing), or the ensemble.
    pub async fn open(&self) -> Result<AnyStore> {
        match self {
            Self::Embedded(file) => {
                let file = file.clone();
                let opened = tokio::task::spawn_blocking(move || {
                    if let Some(dir) = file.parent() {
                        std::fs::create_dir_all(dir).map_err(|e| Error::Storage {
                            store: dir.display().to_string(),
                            path: None,
                            source: e.into(),
                        })?;
                    }
                    Embedded::open(&file)
                })
                .await
                .map_err(|e| Error::Storage {
                    store: "embedded".into(),
                    path: None,
                    source: e.into(),
                })??;
                Ok(AnyStore::Embedded(opened.session()))
            }
            Self::ZooKeeper {
                servers,
                session_timeout,
            } => Ok(AnyStore::ZooKeeper(
                ZooKeeper::connect(servers, *session_timeout).await?,
            )),
        }
    }
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Embedded(file) => write!(f, "{}", file.display()),
            Self::ZooKeeper { servers, .. } => write!(f, "zk://{servers}"),
        }
    }
}

/// A session on either backend, so that components need not be generic over it.
#[derive(Clone, Debug)]
pub enum AnyStore {
    /// The embedded backend.
    Embedded(Session),
    /// The ZooKeeper backend.
    ZooKeeper(ZooKeeper),
}

macro_rules! either {
    ($self:ident, $s:ident => $e:expr) => {
        match $self {
            AnyStore::Embedded($s) => $e,
            AnyStore::ZooKeeper($s) => $e,
        }
    };
}

impl Store for AnyStore {
    fn session_id(&self) -> i64 {
        either!(self, s => s.session_id())
    }

    async fn get(&self, path: &str) -> Result<Option<(Vec<u8>, Stat)>> {
        either!(self, s => s.get(path).await)
    }

    async fn create(&self, path: &str, data: &[u8], mode: CreateMode) -> Result<String> {
        either!(self, s => s.create(path, data, mode).await)
    }

    async fn set(&self, path: &str, data: &[u8], expected_version: Option<i64>) -> Result<Stat> {
        either!(self, s => s.set(path, data, expected_version).await)
    }

    async fn delete(&self, path: &str, expected_version: Option<i64>) -> Result<()> {
        either!(self, s => s.delete(path, expected_version).await)
    }

    async fn children(&self, path: &str) -> Result<Vec<String>> {
        either!(self, s => s.children(path).await)
    }

    async fn watch(&self, path: &str) -> Result<Watch> {
        either!(self, s => s.watch(path).await)
    }

    async fn write_all(&self, writes: Vec<Write>) -> Result<()> {
        either!(self, s => s.write_all(writes).await)
    }

    async fn close(self) -> Result<()> {
        either!(self, s => s.close().await)
    }
}
