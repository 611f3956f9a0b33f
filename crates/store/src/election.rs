//! Leader election as the Mesos master does it under `/mesos` (the ZooKeeper recipe): each
//! contender creates an ephemeral sequential node `<dir>/json.info_<seq>` holding its
//! `MasterInfo` JSON; the lowest sequence leads. When the leader's session ends its node goes,
//! and the next one leads. Detectors (agents, Marathon, Mesos-DNS) read the leader the same way.
//!
//! Marathon elects its leader the same way through Curator's `LeaderLatch`, whose contender
//! nodes are `_c_<id>-latch-<seq>` holding the participant's `host:port`
//! ([`LeaderElection::curator`]).
//!
//! Every contender watches the directory rather than only its predecessor: an election has a
//! handful of contenders (the masters), so the herd effect is negligible and the code simpler.

use tokio_util::sync::CancellationToken;

use crate::{path, CreateMode, Error, Result, Store, Watch};

/// The name prefix of Mesos' contender nodes (Mesos >= 0.24; older ones used `info_`).
pub const MESOS_PREFIX: &str = "json.info_";

/// The name prefix of Curator's `LeaderLatch` contender nodes.
pub const CURATOR_PREFIX: &str = "_c_";

/// An election among the sequential children of a directory (`json.info_<seq>` for Mesos).
#[derive(Clone, Debug)]
pub struct LeaderElection<S> {
    store: S,
    dir: String,
    prefix: &'static str,
}

/// What a candidate sees of its election at one moment (see [`Candidate::standing`]).
#[derive(Debug)]
pub struct Standing {
    /// The leader's node and data.
    pub leader: Option<(String, Vec<u8>)>,
    /// Whether this candidate is the leader.
    pub leading: bool,
    /// Set before the read: its next event (or end) means the contenders changed since.
    pub changes: Watch,
}

/// How long [`Candidate::standing`] waits before reading an unreadable store again.
const RETRY: std::time::Duration = std::time::Duration::from_millis(500);

/// A contender: its node exists while its session lives or until it withdraws.
#[derive(Debug)]
pub struct Candidate<S> {
    election: LeaderElection<S>,
    path: String,
}

// === impl LeaderElection ===

impl<S: Store> LeaderElection<S> {
    /// The election in `dir` (`/mesos` for the Mesos masters), through `store`'s session.
    pub fn new(store: S, dir: &str) -> Result<Self> {
        Self::with_prefix(store, dir, MESOS_PREFIX)
    }

    /// The election in `dir` as Curator's `LeaderLatch` holds it (Marathon's
    /// `/marathon/leader-curator`).
    pub fn curator(store: S, dir: &str) -> Result<Self> {
        Self::with_prefix(store, dir, CURATOR_PREFIX)
    }

    fn with_prefix(store: S, dir: &str, prefix: &'static str) -> Result<Self> {
        path::validate(dir)?;
        Ok(Self {
            store,
            dir: dir.to_owned(),
            prefix,
        })
    }

    /// The election's directory.
    pub fn dir(&self) -> &str {
        &self.dir
    }

    /// Enters the election with `data` (a Mesos `MasterInfo` as JSON), creating the directory
    /// if needed. The candidacy lasts as long as the store's session.
    pub async fn join(&self, data: &[u8]) -> Result<Candidate<S>> {
        self.store.ensure_path(&self.dir).await?;
        let name = match self.prefix {
            // Curator names each latch node by its client; the session id serves.
            CURATOR_PREFIX => format!("{CURATOR_PREFIX}{:016x}-latch-", self.store.session_id()),
            prefix => prefix.to_owned(),
        };
        let prefix = path::join(&self.dir, &name);
        let path = self
            .store
            .create(&prefix, data, CreateMode::EphemeralSequential)
            .await?;
        Ok(Candidate {
            election: self.clone(),
            path,
        })
    }

    /// The contenders' paths, leader first (the lowest sequence, the name's last ten digits).
    /// Other children (Mesos' `log_replicas`) are ignored.
    pub async fn contenders(&self) -> Result<Vec<String>> {
        let names = match self.store.children(&self.dir).await {
            Ok(names) => names,
            Err(Error::NoNode { .. }) => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let mut contenders: Vec<(i64, String)> = names
            .iter()
            .filter(|name| name.starts_with(self.prefix))
            .filter_map(|name| {
                let digits = name.get(name.len().checked_sub(10)?..)?;
                let sequence: i64 = digits.parse().ok()?;
                Some((sequence, path::join(&self.dir, name)))
            })
            .collect();
        contenders.sort();
        Ok(contenders.into_iter().map(|(_, path)| path).collect())
    }

    /// The leader's path and data, or `None` if nobody contends.
    pub async fn leader(&self) -> Result<Option<(String, Vec<u8>)>> {
        // The leader may go between listing and reading; then the next one leads.
        loop {
            let Some(leader) = self.contenders().await?.into_iter().next() else {
                return Ok(None);
            };
            if let Some((data, _)) = self.store.get(&leader).await? {
                return Ok(Some((leader, data)));
            }
        }
    }

    /// Subscribes to changes of the contenders (`NodeChildrenChanged` on the directory).
    pub async fn watch(&self) -> Result<Watch> {
        self.store.watch(&self.dir).await
    }
}

// === impl Candidate ===

impl<S: Store> Candidate<S> {
    /// This contender's node (`<dir>/json.info_<seq>`).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The election this candidate is in.
    pub fn election(&self) -> &LeaderElection<S> {
        &self.election
    }

    /// Whether this candidate leads now. Fails with `NoNode` if its node is gone (its
    /// session ended): it is out of the election and must join again.
    pub async fn is_leader(&self) -> Result<bool> {
        let contenders = self.election.contenders().await?;
        if !contenders.contains(&self.path) {
            return Err(Error::NoNode {
                path: self.path.clone(),
            });
        }
        Ok(contenders.first() == Some(&self.path))
    }

    /// Who leads, whether this candidate does, and a watch for the next change. A store that
    /// cannot be read (its connection is being re-established) is read again every 500 ms;
    /// the only errors are the end of the candidacy: `NoNode` (its node is gone) or
    /// `SessionClosed`.
    pub async fn standing(&self) -> Result<Standing> {
        loop {
            match self.read_standing().await {
                Err(e @ Error::Storage { .. }) => {
                    tracing::warn!(dir = %self.election.dir, error = %e, "cannot read the leader election; retrying");
                    tokio::time::sleep(RETRY).await;
                }
                read => return read,
            }
        }
    }

    async fn read_standing(&self) -> Result<Standing> {
        // Watch before reading, so a change in between is not missed.
        let changes = self.election.watch().await?;
        loop {
            let contenders = self.election.contenders().await?;
            if !contenders.contains(&self.path) {
                let path = self.path.clone();
                return Err(Error::NoNode { path });
            }
            let first = &contenders[0];
            // The leader may go between listing and reading; then read again.
            if let Some((data, _)) = self.election.store.get(first).await? {
                return Ok(Standing {
                    leading: *first == self.path,
                    leader: Some((first.clone(), data)),
                    changes,
                });
            }
        }
    }

    /// Returns once this candidate leads (at once if it does). Fails as [`Self::is_leader`].
    pub async fn wait_until_leader(&self) -> Result<()> {
        loop {
            // Watch before reading, so a change in between is not missed.
            let mut changes = self.election.watch().await?;
            if self.is_leader().await? {
                return Ok(());
            }
            // Any change (or the end of the watch) means: read again.
            let _ = changes.recv().await;
        }
    }

    /// Leaves the election, deleting this candidate's node.
    pub async fn withdraw(self) -> Result<()> {
        self.election.store.delete(&self.path, None).await
    }
}

/// A named service's candidacy in a Curator election (Marathon's and Metronome's
/// `/<service>/leader-curator`), holding its `host:port`: it follows the election, publishing
/// who leads, until it leads itself, then holds on until its candidacy ends.
#[derive(Debug)]
pub struct Contender<S> {
    candidate: Candidate<S>,
    component: &'static str,
    me: String,
}

/// A [`Contender`]'s candidacy ended: the store session closed or expired. The service stops
/// (and its supervisor starts it again as a new contender), as on losing leadership.
#[derive(Debug, thiserror::Error)]
#[error("{component} {me} lost its candidacy in {dir}")]
pub struct Lost {
    /// The service (`Marathon`).
    pub component: &'static str,
    /// Its `host:port`.
    pub me: String,
    /// The election's directory.
    pub dir: String,
}

// === impl Contender ===

impl<S: Store> Contender<S> {
    /// Enters the Curator election in `dir` as `component` at `me` (`host:port`).
    pub async fn curator(store: S, dir: &str, component: &'static str, me: String) -> Result<Self> {
        let candidate = LeaderElection::curator(store, dir)?
            .join(me.as_bytes())
            .await?;
        Ok(Self {
            candidate,
            component,
            me,
        })
    }

    /// Follows the election, passing each leader's `host:port` to `follow`, until this
    /// contender leads (`Ok(true)`) or `stop` is cancelled (`Ok(false)`).
    pub async fn until_leading(
        &self,
        stop: &CancellationToken,
        mut follow: impl FnMut(String),
    ) -> Result<bool, Lost> {
        loop {
            let Some(mut standing) = self.standing(stop).await? else {
                return Ok(false);
            };
            // By node, not by `host:port`: the node of this service's killed predecessor
            // names the same address until its session expires.
            if standing.leading {
                return Ok(true);
            }
            if let Some((_, leader)) = standing.leader {
                let leader = String::from_utf8_lossy(&leader).into_owned();
                tracing::info!(%leader, "following the leading {}", self.component);
                follow(leader);
            }
            tokio::select! {
                _ = stop.cancelled() => return Ok(false),
                _ = standing.changes.recv() => {}
            }
        }
    }

    /// Returns when this candidacy ends (an error) or `stop` is cancelled.
    pub async fn while_leading(&self, stop: &CancellationToken) -> Result<(), Lost> {
        while let Some(mut standing) = self.standing(stop).await? {
            tokio::select! {
                _ = stop.cancelled() => return Ok(()),
                _ = standing.changes.recv() => {}
            }
        }
        Ok(())
    }

    /// The election now, `None` once `stop` is cancelled; its only error is the candidacy's end.
    async fn standing(&self, stop: &CancellationToken) -> Result<Option<Standing>, Lost> {
        tokio::select! {
            _ = stop.cancelled() => Ok(None),
            standing = self.candidate.standing() => standing.map(Some).map_err(|_| Lost {
                component: self.component,
                me: self.me.clone(),
                dir: self.candidate.election.dir.clone(),
            }),
        }
    }
}
