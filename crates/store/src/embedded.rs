//! The embedded backend: one redb file per component process, watches in process.
//!
//! Tables: `nodes` maps a node's key to (version, cversion, ephemeral owner, number of
//! children, data); `ephemerals` maps each ephemeral node's path to its session; `meta` counts
//! opens, which makes session ids unique across restarts.
//!
//! redb locks the file, so one process owns it: on open, every ephemeral node in it belongs to
//! a process that is gone (crashed or killed) and is deleted, as ZooKeeper would on session
//! expiry.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};

use redb::{Database, Durability, ReadableTable, Table, TableDefinition, WriteTransaction};
use tokio::sync::mpsc::{self, error::TrySendError};

use crate::{path, CreateMode, Error, EventKind, Result, Stat, Store, Watch, WatchedEvent, Write};

/// (version, cversion, ephemeral owner, number of children, data)
type Row = (i64, i64, i64, u64, &'static [u8]);
type NodesTable = redb::ReadOnlyTable<&'static str, Row>;

// Keys are `parent \0 name`, not the path, so that a node's children are one contiguous range
// (`parent\0` .. `parent\x01`) without grandchildren; paths cannot contain control characters.
const NODES: TableDefinition<&str, Row> = TableDefinition::new("nodes");
const EPHEMERALS: TableDefinition<&str, i64> = TableDefinition::new("ephemerals");
const META: TableDefinition<&str, i64> = TableDefinition::new("meta");

fn key(path: &str) -> String {
    match path::parent(path) {
        None => path.to_owned(),
        Some(parent) => format!("{parent}\0{}", path::name(path)),
    }
}

/// An open store file. Cheap to clone; the file closes when the last handle and session go.
#[derive(Clone)]
pub struct Embedded {
    shared: Arc<Shared>,
}

/// A session on an [`Embedded`] store, the backend's [`Store`]. Clones share the session; it
/// ends on [`Store::close`] or when the last clone is dropped.
#[derive(Clone)]
pub struct Session {
    inner: Arc<SessionInner>,
}

struct Shared {
    db: Database,
    file: PathBuf,
    epoch: i64,
    sessions: AtomicI64,
    // Held from the start of a write transaction until its watch events are queued, so that
    // watchers see changes in commit order (redb serialises writers anyway).
    writer: Mutex<()>,
    watches: Mutex<Watches>,
}

struct SessionInner {
    shared: Arc<Shared>,
    id: i64,
    closed: AtomicBool,
}

// A flat list: in-process watchers are a handful (leader detectors, caches).
#[derive(Default)]
struct Watches {
    next_id: u64,
    subscribers: Vec<Subscriber>,
}

struct Subscriber {
    id: u64,
    session: i64,
    path: String,
    events: mpsc::Sender<WatchedEvent>,
}

/// Unsubscribes a [`Watch`] when dropped.
struct Registration {
    shared: Weak<Shared>,
    id: u64,
}

struct Node {
    version: i64,
    cversion: i64,
    owner: i64,
    num_children: u64,
    data: Vec<u8>,
}

/// One write transaction's tables and the events it will fire once committed.
struct Tx<'t> {
    nodes: Table<'t, &'static str, Row>,
    ephemerals: Table<'t, &'static str, i64>,
    events: Vec<WatchedEvent>,
}

/// Why a transaction failed: the operation's rule, or redb.
enum Fail {
    Node(Error),
    Db(redb::Error),
}

// === impl Embedded ===

impl Embedded {
    /// Opens (or creates) the store file, repairing it after a crash and deleting the
    /// ephemeral nodes its previous owner left. Blocks; call it once at start-up.
    pub fn open(file: impl AsRef<Path>) -> Result<Self> {
        let file = file.as_ref().to_owned();
        let db = Database::create(&file).map_err(|e| Error::Storage {
            store: file.display().to_string(),
            path: None,
            source: e.into(),
        })?;
        let mut shared = Shared {
            db,
            file,
            epoch: 0,
            sessions: AtomicI64::new(0),
            writer: Mutex::default(),
            watches: Mutex::default(),
        };
        let (epoch, stale) = recover(&shared.db).map_err(|fail| fail.into_error(&shared, None))?;
        shared.epoch = epoch;
        tracing::info!(file = %shared.file.display(), stale, "opened store; deleted the ephemeral nodes of its previous owner");
        Ok(Self {
            shared: Arc::new(shared),
        })
    }

    /// Starts a session.
    pub fn session(&self) -> Session {
        // The open counter in the high half keeps ids unique across restarts.
        let id =
            self.shared.epoch << 32 | (self.shared.sessions.fetch_add(1, Ordering::Relaxed) + 1);
        let inner = SessionInner {
            shared: Arc::clone(&self.shared),
            id,
            closed: AtomicBool::new(false),
        };
        Session {
            inner: Arc::new(inner),
        }
    }

    /// The store file.
    pub fn file(&self) -> &Path {
        &self.shared.file
    }
}

impl std::fmt::Debug for Embedded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Embedded")
            .field("file", &self.shared.file)
            .finish()
    }
}

/// Creates the tables and the root, bumps the open counter, deletes every ephemeral node.
fn recover(db: &Database) -> Result<(i64, usize), Fail> {
    let txn = begin_write(db)?;
    let epoch = {
        let mut meta = txn.open_table(META)?;
        let epoch = meta.get("epoch")?.map_or(0, |v| v.value()) + 1;
        meta.insert("epoch", epoch)?;
        epoch
    };
    let stale = {
        let mut tx = Tx::open(&txn)?;
        if Node::load(&tx.nodes, "/")?.is_none() {
            tx.put("/", &Node::new(Vec::new(), 0))?;
        }
        tx.delete_ephemerals(None)?
    };
    txn.commit()?;
    Ok((epoch, stale))
}

fn begin_write(db: &Database) -> Result<WriteTransaction, Fail> {
    let mut txn = db.begin_write()?;
    // fsync before commit returns: an acknowledged write survives kill -9 and power loss.
    txn.set_durability(Durability::Immediate);
    Ok(txn)
}

// === impl Session ===

impl Session {
    /// Runs `f` on the blocking pool. Writes wait for the one writer and fsync, which can take
    /// milliseconds, and must not stall the runtime's workers (reads, by contrast, are MVCC
    /// snapshots that never wait, so they run inline). A cancelled caller cannot leave a
    /// half-done write: the transaction commits or aborts as a whole either way.
    async fn blocking<T: Send + 'static>(
        &self,
        path: Option<&str>,
        f: impl FnOnce(&SessionInner) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let inner = Arc::clone(&self.inner);
        let joined = tokio::task::spawn_blocking(move || f(&inner)).await;
        joined.map_err(|e| self.inner.shared.storage(path, e))?
    }

    async fn write<T: Send + 'static>(
        &self,
        path: &str,
        op: impl FnOnce(&mut Tx<'_>, &str, i64) -> Result<T, Fail> + Send + 'static,
    ) -> Result<T> {
        let owned = path.to_owned();
        self.blocking(Some(path), move |inner| {
            inner.shared.write(Some(&owned), |tx| {
                inner.ensure_open()?;
                op(tx, &owned, inner.id)
            })
        })
        .await
    }

    fn read<T>(&self, path: &str, f: impl FnOnce(&NodesTable) -> Result<T, Fail>) -> Result<T> {
        path::validate(path)?;
        self.inner.ensure_open()?;
        let run = || f(&self.inner.shared.db.begin_read()?.open_table(NODES)?);
        run().map_err(|fail| fail.into_error(&self.inner.shared, Some(path)))
    }
}

impl Store for Session {
    fn session_id(&self) -> i64 {
        self.inner.id
    }

    async fn get(&self, path: &str) -> Result<Option<(Vec<u8>, Stat)>> {
        let node = self.read(path, |nodes| Ok(Node::load(nodes, path)?))?;
        Ok(node.map(Node::into_parts))
    }

    async fn create(&self, path: &str, data: &[u8], mode: CreateMode) -> Result<String> {
        let data = data.to_vec();
        self.write(path, move |tx, path, id| tx.create(path, data, mode, id))
            .await
    }

    async fn set(&self, path: &str, data: &[u8], expected_version: Option<i64>) -> Result<Stat> {
        let data = data.to_vec();
        self.write(path, move |tx, path, _| {
            tx.set(path, data, expected_version)
        })
        .await
    }

    async fn delete(&self, path: &str, expected_version: Option<i64>) -> Result<()> {
        self.write(path, move |tx, path, _| tx.delete(path, expected_version))
            .await
    }

    async fn write_all(&self, writes: Vec<Write>) -> Result<()> {
        let Some(first) = writes.first().map(|w| w.path().to_owned()) else {
            return Ok(());
        };
        self.write(&first, move |tx, _, id| {
            for w in writes {
                match w {
                    Write::Put { path, data } => match tx.set(&path, data.clone(), None) {
                        Ok(_) => {}
                        Err(Fail::Node(Error::NoNode { .. })) => {
                            for ancestor in path::ancestors(&path) {
                                if Node::load(&tx.nodes, ancestor)?.is_none() {
                                    tx.create(ancestor, Vec::new(), CreateMode::Persistent, id)?;
                                }
                            }
                            tx.create(&path, data, CreateMode::Persistent, id)?;
                        }
                        Err(e) => return Err(e),
                    },
                    Write::Remove { path } => match tx.delete(&path, None) {
                        Ok(()) | Err(Fail::Node(Error::NoNode { .. })) => {}
                        Err(e) => return Err(e),
                    },
                }
            }
            Ok(())
        })
        .await
    }

    async fn children(&self, path: &str) -> Result<Vec<String>> {
        self.read(path, |nodes| {
            if Node::load(nodes, path)?.is_none() {
                return Err(Error::NoNode { path: path.into() }.into());
            }
            let (from, to) = (format!("{path}\0"), format!("{path}\x01"));
            let mut names = Vec::new();
            for entry in nodes.range(from.as_str()..to.as_str())? {
                names.push(entry?.0.value()[from.len()..].to_owned());
            }
            Ok(names)
        })
    }

    async fn watch(&self, path: &str) -> Result<Watch> {
        path::validate(path)?;
        self.inner.watch(path)
    }

    async fn close(self) -> Result<()> {
        self.blocking(None, SessionInner::expire).await
    }
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("id", &format_args!("{:#x}", self.inner.id))
            .field("file", &self.inner.shared.file)
            .finish()
    }
}

// === impl SessionInner ===

impl SessionInner {
    fn ensure_open(&self) -> Result<()> {
        match self.closed.load(Ordering::Acquire) {
            true => Err(Error::SessionClosed { session: self.id }),
            false => Ok(()),
        }
    }

    fn watch(&self, path: &str) -> Result<Watch> {
        let (events, rx) = mpsc::channel(crate::WATCH_CAPACITY);
        let mut watches = self.shared.watches();
        // Checked under the watches lock, which `expire` takes after marking the session
        // closed, so a watch cannot outlive a concurrent close.
        self.ensure_open()?;
        watches.next_id += 1;
        let (id, session, path) = (watches.next_id, self.id, path.to_owned());
        watches.subscribers.push(Subscriber {
            id,
            session,
            path: path.clone(),
            events,
        });
        let shared = Arc::downgrade(&self.shared);
        Ok(Watch::new(path, rx, Registration { shared, id }))
    }

    /// Ends the session once: deletes its ephemeral nodes and ends its watches.
    fn expire(&self) -> Result<()> {
        if self.closed.load(Ordering::Acquire) {
            return Ok(());
        }
        // Marked closed under the writer lock, so no write of this session can slip in after.
        self.shared
            .write(None, |tx| match self.closed.swap(true, Ordering::AcqRel) {
                true => Ok(0),
                false => tx.delete_ephemerals(Some(self.id)),
            })?;
        self.shared
            .watches()
            .subscribers
            .retain(|s| s.session != self.id);
        Ok(())
    }
}

impl Drop for SessionInner {
    fn drop(&mut self) {
        // Synchronous, so that the nodes are gone when the drop returns: one commit of blocking
        // on whichever thread drops the last handle. If it fails, the next open deletes them.
        if let Err(error) = self.expire() {
            tracing::warn!(
                session = self.id,
                error = &error as &dyn std::error::Error,
                "could not end the session"
            );
        }
    }
}

// === impl Shared ===

impl Shared {
    fn storage(
        &self,
        path: Option<&str>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Error {
        let (store, path) = (self.file.display().to_string(), path.map(str::to_owned));
        Error::Storage {
            store,
            path,
            source: source.into(),
        }
    }

    fn write<T>(
        &self,
        path: Option<&str>,
        f: impl FnOnce(&mut Tx<'_>) -> Result<T, Fail>,
    ) -> Result<T> {
        let _writer = lock(&self.writer);
        let run = || -> Result<_, Fail> {
            let txn = begin_write(&self.db)?;
            let mut tx = Tx::open(&txn)?;
            let out = f(&mut tx)?;
            let events = std::mem::take(&mut tx.events);
            drop(tx);
            // Every change fires an event: none means nothing to commit, so skip the fsync.
            match events.is_empty() {
                true => txn.abort()?,
                false => txn.commit()?,
            }
            Ok((out, events))
        };
        let (out, events) = run().map_err(|fail| fail.into_error(self, path))?;
        self.dispatch(events);
        Ok(out)
    }

    fn watches(&self) -> MutexGuard<'_, Watches> {
        lock(&self.watches)
    }

    /// Queues each event for the watchers of its path, without waiting: a watcher that has
    /// fallen `WATCH_CAPACITY` events behind is cut off (it sees the end of its watch).
    fn dispatch(&self, events: Vec<WatchedEvent>) {
        let mut watches = self.watches();
        for event in events {
            watches.subscribers.retain(|s| match s.path == event.path {
                false => true,
                true => match s.events.try_send(event.clone()) {
                    Ok(()) => true,
                    Err(TrySendError::Closed(_)) => false,
                    Err(TrySendError::Full(_)) => {
                        tracing::warn!(path = %s.path, "a watcher fell behind; ending its watch");
                        false
                    }
                },
            });
        }
    }
}

/// The data behind these locks stays consistent if a holder panics, so poisoning is ignored.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Drop for Registration {
    fn drop(&mut self) {
        if let Some(shared) = self.shared.upgrade() {
            shared.watches().subscribers.retain(|s| s.id != self.id);
        }
    }
}

// === impl Tx ===

impl<'t> Tx<'t> {
    fn open(txn: &'t WriteTransaction) -> Result<Self, Fail> {
        let (nodes, ephemerals) = (txn.open_table(NODES)?, txn.open_table(EPHEMERALS)?);
        Ok(Self {
            nodes,
            ephemerals,
            events: Vec::new(),
        })
    }

    fn node(&self, path: &str) -> Result<Node, Fail> {
        Node::load(&self.nodes, path)?
            .ok_or_else(|| Fail::Node(Error::NoNode { path: path.into() }))
    }

    fn put(&mut self, path: &str, node: &Node) -> Result<(), Fail> {
        let row = (
            node.version,
            node.cversion,
            node.owner,
            node.num_children,
            node.data.as_slice(),
        );
        self.nodes.insert(key(path).as_str(), row)?;
        Ok(())
    }

    fn fire(&mut self, kind: EventKind, path: &str) {
        self.events.push(WatchedEvent {
            kind,
            path: path.to_owned(),
        });
    }

    fn create(
        &mut self,
        path: &str,
        data: Vec<u8>,
        mode: CreateMode,
        session: i64,
    ) -> Result<String, Fail> {
        path::validate_create(path, mode)?;
        let parent_path = match path::parent(path) {
            Some(parent) => parent,
            // A sequential node named by the prefix "/" is a child of the root.
            None if mode.is_sequential() => "/",
            None => return Err(Error::NodeExists { path: path.into() }.into()),
        };
        let mut parent = self.node(parent_path)?;
        if parent.owner != 0 {
            let path = parent_path.to_owned();
            return Err(Error::NoChildrenForEphemerals { path }.into());
        }
        // As ZooKeeper: the sequence is the parent's cversion, so deletions advance it too.
        let path = match mode.is_sequential() {
            true => format!("{path}{:010}", parent.cversion),
            false => path.to_owned(),
        };
        if Node::load(&self.nodes, &path)?.is_some() {
            return Err(Error::NodeExists { path }.into());
        }
        parent.cversion += 1;
        parent.num_children += 1;
        self.put(parent_path, &parent)?;
        let owner = if mode.is_ephemeral() { session } else { 0 };
        self.put(&path, &Node::new(data, owner))?;
        if owner != 0 {
            self.ephemerals.insert(path.as_str(), owner)?;
        }
        self.fire(EventKind::NodeCreated, &path);
        self.fire(EventKind::NodeChildrenChanged, parent_path);
        Ok(path)
    }

    fn set(&mut self, path: &str, data: Vec<u8>, expected: Option<i64>) -> Result<Stat, Fail> {
        path::validate(path)?;
        let mut node = self.node(path)?;
        check_version(path, expected, node.version)?;
        node.version += 1;
        node.data = data;
        self.put(path, &node)?;
        self.fire(EventKind::NodeDataChanged, path);
        Ok(node.stat())
    }

    fn delete(&mut self, path: &str, expected: Option<i64>) -> Result<(), Fail> {
        path::validate(path)?;
        let Some(parent_path) = path::parent(path) else {
            let (path, why) = (path.into(), "the root cannot be deleted");
            return Err(Error::InvalidPath { path, why }.into());
        };
        let node = self.node(path)?;
        check_version(path, expected, node.version)?;
        if node.num_children > 0 {
            return Err(Error::NotEmpty { path: path.into() }.into());
        }
        self.nodes.remove(key(path).as_str())?;
        if node.owner != 0 {
            self.ephemerals.remove(path)?;
        }
        let mut parent = self.node(parent_path)?;
        parent.cversion += 1;
        parent.num_children = parent.num_children.saturating_sub(1);
        self.put(parent_path, &parent)?;
        self.fire(EventKind::NodeDeleted, path);
        self.fire(EventKind::NodeChildrenChanged, parent_path);
        Ok(())
    }

    /// Deletes the ephemeral nodes of `session` (of every session if `None`).
    fn delete_ephemerals(&mut self, session: Option<i64>) -> Result<usize, Fail> {
        let mut paths = Vec::new();
        for entry in self.ephemerals.iter()? {
            let (path, owner) = entry?;
            if session.is_none_or(|id| id == owner.value()) {
                paths.push(path.value().to_owned());
            }
        }
        for path in &paths {
            self.delete(path, None)?;
        }
        Ok(paths.len())
    }
}

fn check_version(path: &str, expected: Option<i64>, actual: i64) -> Result<(), Fail> {
    match expected {
        Some(expected) if expected != actual => {
            let path = path.to_owned();
            Err(Error::BadVersion {
                path,
                expected,
                actual,
            }
            .into())
        }
        _ => Ok(()),
    }
}

// === impl Node ===

impl Node {
    fn new(data: Vec<u8>, owner: i64) -> Self {
        Self {
            version: 0,
            cversion: 0,
            owner,
            num_children: 0,
            data,
        }
    }

    fn load(
        table: &impl ReadableTable<&'static str, Row>,
        path: &str,
    ) -> Result<Option<Self>, redb::StorageError> {
        let row = table.get(key(path).as_str())?;
        Ok(row.map(|row| {
            let (version, cversion, owner, num_children, data) = row.value();
            Self {
                version,
                cversion,
                owner,
                num_children,
                data: data.to_vec(),
            }
        }))
    }

    fn into_parts(self) -> (Vec<u8>, Stat) {
        let stat = self.stat();
        (self.data, stat)
    }

    fn stat(&self) -> Stat {
        Stat {
            version: self.version,
            cversion: self.cversion,
            ephemeral_owner: self.owner,
            num_children: usize::try_from(self.num_children).unwrap_or(usize::MAX),
            data_length: self.data.len(),
        }
    }
}

// === impl Fail ===

impl Fail {
    fn into_error(self, shared: &Shared, path: Option<&str>) -> Error {
        match self {
            Self::Node(error) => error,
            Self::Db(source) => shared.storage(path, source),
        }
    }
}

impl From<Error> for Fail {
    fn from(error: Error) -> Self {
        Self::Node(error)
    }
}

macro_rules! fail_from_redb {
    ($($error:ty),*) => {$(
        impl From<$error> for Fail {
            fn from(error: $error) -> Self {
                Self::Db(error.into())
            }
        }
    )*};
}

fail_from_redb!(
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn dropped_watches_leave_no_registration() {
        let dir = tempfile::tempdir().unwrap();
        let store = Embedded::open(dir.path().join("store.redb")).unwrap();
        let session = store.session();
        let watches = [
            session.watch("/a").await.unwrap(),
            session.watch("/a").await.unwrap(),
        ];
        let other = session.watch("/b").await.unwrap();
        assert_eq!(store.shared.watches().subscribers.len(), 3);
        drop(watches);
        drop(other);
        assert!(store.shared.watches().subscribers.is_empty());
    }
}
