//! The ZooKeeper backend: the real Apache ZooKeeper ensemble of the masters (run by
//! `dcos-exhibitor`), through the async `zookeeper-client` crate.
//!
//! A [`ZooKeeper`] is one ZooKeeper session. Its ephemeral nodes live until [`Store::close`],
//! until the last clone is dropped, or until the ensemble expires the session (the process
//! died or was cut off for longer than the session timeout); an expired session is closed for
//! good, so every later operation fails with [`Error::SessionClosed`] and its owner starts over,
//! as a Mesos master or Marathon that loses its ZooKeeper session does.
//!
//! A session cut off from the ensemble for half its timeout is closed here too, without
//! waiting to hear of its expiry (which only a reconnection brings): by then the ensemble is
//! about to expire it, and an owner that led must stop before another is elected, as Mesos'
//! contenders do.
//!
//! Watches are ZooKeeper's persistent watches (3.6+). ZooKeeper does not replay the events of
//! a disconnection (ZOOKEEPER-4698), so a watch ends at any disconnection: its consumer re-reads
//! and watches again, which is what [`Watch::recv`] returning `None` asks of it anyway.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use tokio::sync::mpsc::{self, error::TrySendError};
use zookeeper_client as zk;

use crate::{path, CreateMode, Error, EventKind, Result, Stat, Store, Watch, WatchedEvent};

/// How long `close` waits for the ensemble to confirm the session's end.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(10);

/// A session on a ZooKeeper ensemble, the backend's [`Store`]. Clones share the session.
#[derive(Clone)]
pub struct ZooKeeper {
    inner: Arc<Inner>,
}

struct Inner {
    // Taken out by `close`: dropping the last `zk::Client` is what ends the session.
    client: Mutex<Option<zk::Client>>,
    servers: String,
    id: i64,
    closed: AtomicBool,
}

/// Ends a watch's forwarding task when the [`Watch`] is dropped.
struct Forwarder(tokio::task::JoinHandle<()>);

impl Drop for Forwarder {
    fn drop(&mut self) {
        self.0.abort();
    }
}

// === impl ZooKeeper ===

impl ZooKeeper {
    /// Opens a session on the ensemble `servers` (`host:port,host:port`, optionally followed
    /// by a chroot such as `/mesos`), asking for `session_timeout`. Tries the servers in turn
    /// for about that long before failing.
    pub async fn connect(servers: &str, session_timeout: Duration) -> Result<Self> {
        let storage = |e: zk::Error| Error::Storage {
            store: format!("zk://{servers}"),
            path: None,
            source: e.into(),
        };
        let client = zk::Client::connector()
            .with_session_timeout(session_timeout)
            .connect(servers)
            .await
            .map_err(storage)?;
        let id = client.session_id().0;
        tracing::debug!(
            session = format_args!("{id:#x}"),
            servers,
            "opened a ZooKeeper session"
        );
        let states = client.state_watcher();
        let inner = Arc::new(Inner {
            client: Mutex::new(Some(client)),
            servers: servers.to_owned(),
            id,
            closed: AtomicBool::new(false),
        });
        tokio::spawn(expire_when_cut_off(
            Arc::downgrade(&inner),
            states,
            session_timeout / 2,
        ));
        Ok(Self { inner })
    }

    /// The ensemble's connect string.
    pub fn servers(&self) -> &str {
        &self.inner.servers
    }

    fn client(&self) -> Result<zk::Client> {
        let closed = Error::SessionClosed {
            session: self.inner.id,
        };
        if self.inner.closed.load(Ordering::Acquire) {
            return Err(closed);
        }
        let client = self
            .inner
            .client
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        client.clone().ok_or(closed)
    }

    /// Maps ZooKeeper's error for an operation on `path`.
    fn error(&self, path: &str, error: zk::Error) -> Error {
        let path = path.to_owned();
        match error {
            zk::Error::NoNode => Error::NoNode { path },
            zk::Error::NodeExists => Error::NodeExists { path },
            zk::Error::NotEmpty => Error::NotEmpty { path },
            zk::Error::NoChildrenForEphemerals => Error::NoChildrenForEphemerals { path },
            zk::Error::SessionExpired | zk::Error::ClientClosed => {
                // Expiry is final: the session's ephemeral nodes are gone.
                self.inner.closed.store(true, Ordering::Release);
                Error::SessionClosed {
                    session: self.inner.id,
                }
            }
            error => Error::Storage {
                store: format!("zk://{}", self.inner.servers),
                path: Some(path),
                source: error.into(),
            },
        }
    }

    /// A `BadVersion` error naming the version the node is at (ZooKeeper does not say).
    async fn bad_version(&self, path: &str, expected: i64) -> Error {
        match self.get(path).await {
            Ok(Some((_, stat))) => Error::BadVersion {
                path: path.to_owned(),
                expected,
                actual: stat.version,
            },
            Ok(None) => Error::NoNode { path: path.into() },
            Err(e) => e,
        }
    }

    fn version(expected: Option<i64>) -> Option<i32> {
        // A version beyond ZooKeeper's i32 can never match: ask for one that cannot either.
        expected.map(|v| i32::try_from(v).unwrap_or(i32::MIN))
    }
}

/// Closes the session once it has been disconnected for `grace`, or has expired.
async fn expire_when_cut_off(inner: Weak<Inner>, mut states: zk::StateWatcher, grace: Duration) {
    loop {
        let state = states.changed().await;
        let expired = match state {
            zk::SessionState::Disconnected => {
                let reconnected = async {
                    loop {
                        match states.changed().await {
                            zk::SessionState::SyncConnected
                            | zk::SessionState::ConnectedReadOnly => return true,
                            zk::SessionState::Disconnected => {}
                            _ => return false,
                        }
                    }
                };
                !matches!(tokio::time::timeout(grace, reconnected).await, Ok(true))
            }
            zk::SessionState::SyncConnected | zk::SessionState::ConnectedReadOnly => false,
            _ => true,
        };
        let Some(inner) = inner.upgrade() else {
            return;
        };
        if expired {
            if !inner.closed.swap(true, Ordering::AcqRel) {
                tracing::warn!(
                    session = format_args!("{:#x}", inner.id),
                    ?state,
                    "the ZooKeeper session is lost; closing it"
                );
            }
            // Ends it for good: the client goes, and with it the session and its watches.
            inner
                .client
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take();
            return;
        }
    }
}

fn stat(stat: &zk::Stat) -> Stat {
    Stat {
        version: stat.version.into(),
        cversion: stat.cversion.into(),
        ephemeral_owner: stat.ephemeral_owner,
        num_children: usize::try_from(stat.num_children).unwrap_or(0),
        data_length: usize::try_from(stat.data_length).unwrap_or(0),
    }
}

fn zk_mode(mode: CreateMode) -> zk::CreateMode {
    match mode {
        CreateMode::Persistent => zk::CreateMode::Persistent,
        CreateMode::Ephemeral => zk::CreateMode::Ephemeral,
        CreateMode::PersistentSequential => zk::CreateMode::PersistentSequential,
        CreateMode::EphemeralSequential => zk::CreateMode::EphemeralSequential,
    }
}

impl Store for ZooKeeper {
    fn session_id(&self) -> i64 {
        self.inner.id
    }

    async fn get(&self, path: &str) -> Result<Option<(Vec<u8>, Stat)>> {
        path::validate(path)?;
        match self.client()?.get_data(path).await {
            Ok((data, s)) => Ok(Some((data, stat(&s)))),
            Err(zk::Error::NoNode) => Ok(None),
            Err(e) => Err(self.error(path, e)),
        }
    }

    async fn create(&self, path: &str, data: &[u8], mode: CreateMode) -> Result<String> {
        path::validate_create(path, mode)?;
        if path == "/" && !mode.is_sequential() {
            return Err(Error::NodeExists { path: path.into() });
        }
        let options = zk_mode(mode).with_acls(zk::Acls::anyone_all());
        let client = self.client()?;
        match client.create(path, data, &options).await {
            Ok((_, sequence)) if mode.is_sequential() => Ok(format!("{path}{sequence}")),
            Ok(_) => Ok(path.to_owned()),
            // These name the parent, as the embedded backend does.
            Err(e @ (zk::Error::NoNode | zk::Error::NoChildrenForEphemerals)) => {
                Err(self.error(path::parent(path).unwrap_or("/"), e))
            }
            Err(e) => Err(self.error(path, e)),
        }
    }

    async fn set(&self, path: &str, data: &[u8], expected_version: Option<i64>) -> Result<Stat> {
        path::validate(path)?;
        let version = Self::version(expected_version);
        match self.client()?.set_data(path, data, version).await {
            Ok(s) => Ok(stat(&s)),
            Err(zk::Error::BadVersion) => {
                Err(self.bad_version(path, expected_version.unwrap_or(-1)).await)
            }
            Err(e) => Err(self.error(path, e)),
        }
    }

    async fn delete(&self, path: &str, expected_version: Option<i64>) -> Result<()> {
        path::validate(path)?;
        if path == "/" {
            let (path, why) = (path.into(), "the root cannot be deleted");
            return Err(Error::InvalidPath { path, why });
        }
        let version = Self::version(expected_version);
        match self.client()?.delete(path, version).await {
            Ok(()) => Ok(()),
            Err(zk::Error::BadVersion) => {
                Err(self.bad_version(path, expected_version.unwrap_or(-1)).await)
            }
            Err(e) => Err(self.error(path, e)),
        }
    }

    async fn children(&self, path: &str) -> Result<Vec<String>> {
        path::validate(path)?;
        let mut names = self
            .client()?
            .list_children(path)
            .await
            .map_err(|e| self.error(path, e))?;
        names.sort();
        Ok(names)
    }

    async fn watch(&self, path: &str) -> Result<Watch> {
        path::validate(path)?;
        let client = self.client()?;
        let mut watcher = client
            .watch(path, zk::AddWatchMode::Persistent)
            .await
            .map_err(|e| self.error(path, e))?;
        let (events, rx) = mpsc::channel(crate::WATCH_CAPACITY);
        let watched = path.to_owned();
        let task = tokio::spawn(async move {
            loop {
                let event = watcher.changed().await;
                let kind = match event.event_type {
                    zk::EventType::NodeCreated => EventKind::NodeCreated,
                    zk::EventType::NodeDataChanged => EventKind::NodeDataChanged,
                    zk::EventType::NodeDeleted => EventKind::NodeDeleted,
                    zk::EventType::NodeChildrenChanged => EventKind::NodeChildrenChanged,
                    // Disconnected (events may be lost), expired or closed: the watch ends.
                    zk::EventType::Session => match event.session_state {
                        zk::SessionState::SyncConnected => continue,
                        _ => return,
                    },
                };
                let event = WatchedEvent {
                    kind,
                    path: event.path,
                };
                match events.try_send(event) {
                    Ok(()) => {}
                    Err(TrySendError::Closed(_)) => return,
                    Err(TrySendError::Full(_)) => {
                        tracing::warn!(path = %watched, "a watcher fell behind; ending its watch");
                        return;
                    }
                }
            }
        });
        Ok(Watch::new(path.to_owned(), rx, Forwarder(task)))
    }

    async fn close(self) -> Result<()> {
        self.inner.closed.store(true, Ordering::Release);
        let client = self
            .inner
            .client
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let Some(client) = client else {
            return Ok(());
        };
        let mut states = client.state_watcher();
        // The session closes when its last client goes; operations in flight hold clones
        // for as long as they run.
        drop(client);
        let closed = async {
            loop {
                if matches!(
                    states.changed().await,
                    zk::SessionState::Closed | zk::SessionState::Expired
                ) {
                    return;
                }
            }
        };
        if tokio::time::timeout(CLOSE_TIMEOUT, closed).await.is_err() {
            tracing::warn!(
                session = self.inner.id,
                "ZooKeeper did not confirm the session's end; it expires on its own"
            );
        }
        Ok(())
    }
}

impl std::fmt::Debug for ZooKeeper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ZooKeeper")
            .field("session", &format_args!("{:#x}", self.inner.id))
            .field("servers", &self.inner.servers)
            .finish()
    }
}
