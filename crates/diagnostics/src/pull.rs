//! The masters' pull: every node's own report, on an interval and on demand, aggregated.
//!
//! The agents come from the leading Mesos master's state summary (one follower); the other
//! masters are asked on their 1050, the agents through their Admin Router (61001), which
//! serves the agent's socket; in strict security both ask the masters' service-account token,
//! which every pull sends. A node that does not answer in
//! [`crate::PULL_TIMEOUT`] is reported unhealthy with the reason, keeping the units it was
//! last seen with.

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dcos_mesos_api::follow;
use tokio_util::sync::CancellationToken;

use crate::model::{Cluster, NodeHealth};

/// How the masters pull.
#[derive(Clone, Debug)]
pub struct Pull {
    /// Every master.
    pub masters: Vec<IpAddr>,
    /// Their dcos-diagnostics port (1050).
    pub master_port: u16,
    /// The agents' Admin Router port (61001).
    pub agent_router_port: u16,
    /// How the leading Mesos master's state summary is read (the agents).
    pub mesos: follow::Config,
    /// How often every node is pulled.
    pub interval: Duration,
    /// Where bundles are written.
    pub bundles_dir: PathBuf,
}

/// The puller of one master.
#[derive(Clone)]
pub struct Puller {
    inner: Arc<Inner>,
}

struct Inner {
    pull: Pull,
    me: IpAddr,
    client: reqwest::Client,
    follower: follow::Follower,
    /// The last aggregate and when it was made: readers never wait for a pull.
    last: std::sync::RwLock<Option<(Instant, Cluster)>>,
    /// Held while pulling: one pull at a time; callers that waited take its result.
    pulling: tokio::sync::Mutex<()>,
}

/// The largest answer read from a node.
pub const MAX_ANSWER: usize = 1024 * 1024;
/// The largest Mesos state read for a bundle.
pub const MAX_STATE: usize = 64 * 1024 * 1024;
/// The most units kept of one node's answer.
const MAX_UNITS: usize = 256;
/// The longest unit output kept of one node's answer.
const MAX_OUTPUT: usize = 64 * 1024;

/// A node to pull: where, and what it is.
#[derive(Clone, Debug)]
pub struct Target {
    /// Its IP.
    pub ip: String,
    /// `master`, `agent` or `agent_public`.
    pub role: &'static str,
    /// Its Mesos id, when the master knows it.
    pub mesos_id: String,
    /// Where its `/system/health/v1` is.
    pub url: String,
}

impl Puller {
    /// The puller of the master at `me`.
    pub fn new(pull: Pull, me: IpAddr) -> Puller {
        let follower = follow::Follower::spawn(pull.mesos.clone());
        Puller {
            inner: Arc::new(Inner {
                client: reqwest::Client::builder()
                    .timeout(crate::PULL_TIMEOUT)
                    .redirect(reqwest::redirect::Policy::none())
                    .build()
                    .expect("a plain HTTP client builds"),
                pull,
                me,
                follower,
                last: std::sync::RwLock::new(None),
                pulling: tokio::sync::Mutex::new(()),
            }),
        }
    }

    /// Every node but this master: the other masters, then the agents the leading Mesos
    /// master lists.
    pub fn targets(&self) -> Vec<Target> {
        let p = &self.inner.pull;
        let mut out: Vec<Target> = p
            .masters
            .iter()
            .filter(|m| **m != self.inner.me)
            .map(|m| Target {
                ip: m.to_string(),
                role: "master",
                mesos_id: String::new(),
                url: format!(
                    "http://{}/system/health/v1",
                    std::net::SocketAddr::new(*m, p.master_port)
                ),
            })
            .collect();
        if let Some(snapshot) = self.inner.follower.current() {
            for agent in snapshot.state["slaves"].as_array().into_iter().flatten() {
                let Some(host) = agent["hostname"].as_str() else {
                    continue;
                };
                let Ok(ip) = host.parse::<IpAddr>() else {
                    continue;
                };
                // A master that is also an agent is pulled (or is this node) as a master.
                if ip == self.inner.me || p.masters.contains(&ip) {
                    continue;
                }
                let public = agent["attributes"]["public_ip"] == "true";
                out.push(Target {
                    ip: ip.to_string(),
                    role: if public { "agent_public" } else { "agent" },
                    mesos_id: agent["id"].as_str().unwrap_or_default().to_string(),
                    url: format!(
                        "http://{}/system/health/v1",
                        std::net::SocketAddr::new(ip, p.agent_router_port)
                    ),
                });
            }
        }
        out
    }

    /// The leading Mesos master's IP, if known.
    pub fn leader(&self) -> Option<String> {
        self.inner
            .follower
            .current()
            .map(|s| s.leader.ip().to_string())
    }

    /// GETs `url` as this cluster's component (with its token when security asks one),
    /// reading at most `limit` bytes of the answer.
    pub async fn get(&self, url: &str, limit: usize) -> Result<Vec<u8>, String> {
        let mut request = self.inner.client.get(url);
        if let Some(credentials) = &self.inner.pull.mesos.credentials {
            let token = (credentials.0)().await?;
            request = request.header("Authorization", format!("token={token}"));
        }
        let mut response = request.send().await.map_err(|e| e.to_string())?;
        if !response.status().is_success() {
            return Err(format!("{url} answered {}", response.status()));
        }
        let mut out = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| e.to_string())? {
            if out.len() + chunk.len() > limit {
                return Err(format!("{url} answered more than {limit} bytes"));
            }
            out.extend_from_slice(&chunk);
        }
        Ok(out)
    }

    async fn ask(&self, target: &Target) -> Result<NodeHealth, String> {
        let bytes = self.get(&target.url, MAX_ANSWER).await?;
        let mut health: NodeHealth = serde_json::from_slice(&bytes).map_err(|e| e.to_string())?;
        // What the node says of its address and role must be what it was asked as; its
        // units are kept within bounds, with names that are unit names and health 0 or 1.
        health.ip = target.ip.clone();
        health.hostname = target.ip.clone();
        health.node_role = target.role.to_string();
        health.units.retain(|u| crate::valid_unit(&u.id));
        health.units.truncate(MAX_UNITS);
        for unit in &mut health.units {
            unit.health = unit.health.min(crate::model::UNHEALTHY);
            if unit.output.len() > MAX_OUTPUT {
                let mut end = MAX_OUTPUT;
                while !unit.output.is_char_boundary(end) {
                    end -= 1;
                }
                unit.output.truncate(end);
            }
        }
        if health.mesos_id.is_empty() {
            health.mesos_id = target.mesos_id.clone();
        }
        Ok(health)
    }

    /// Pulls every node now; `local` is this master's own report.
    async fn pull_now<F, Fut>(&self, previous: Option<&Cluster>, local: F) -> Cluster
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = NodeHealth>,
    {
        let targets = self.targets();
        let asks = targets
            .iter()
            .map(|t| async move { (t, self.ask(t).await) });
        let (mine, answers) = tokio::join!(local(), futures::future::join_all(asks));
        let mut cluster = Cluster {
            leader: self.leader(),
            updated: now_rfc3339(),
            ..Cluster::default()
        };
        cluster.nodes.insert(mine.ip.clone(), mine);
        for (target, answer) in answers {
            let node = answer.unwrap_or_else(|why| {
                let known = previous
                    .and_then(|c| c.nodes.get(&target.ip))
                    .map(|n| n.units.clone())
                    .unwrap_or_default();
                tracing::warn!(node = %target.ip, %why, "a node's dcos-diagnostics did not answer");
                NodeHealth::unreachable(&target.ip, target.role, &target.mesos_id, &known, &why)
            });
            cluster.nodes.insert(target.ip.clone(), node);
        }
        cluster
    }

    /// The aggregate: pulled now if `fresh`, if never pulled, or if older than the
    /// interval; else the last one.
    pub async fn cluster<F, Fut>(&self, fresh: bool, local: F) -> Cluster
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = NodeHealth>,
    {
        let asked = Instant::now();
        let read = || {
            self.inner
                .last
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .clone()
        };
        if let Some((at, cluster)) = read() {
            if !fresh && at.elapsed() < self.inner.pull.interval {
                return cluster;
            }
        }
        let _pulling = self.inner.pulling.lock().await;
        // A pull that ended while this call waited is as fresh as one it would make.
        let previous = read();
        if let Some((at, cluster)) = &previous {
            if *at >= asked {
                return cluster.clone();
            }
        }
        let cluster = self
            .pull_now(previous.as_ref().map(|(_, c)| c), local)
            .await;
        *self.inner.last.write().unwrap_or_else(|e| e.into_inner()) =
            Some((Instant::now(), cluster.clone()));
        cluster
    }

    /// Pulls every interval until `stop`.
    pub async fn run<F, Fut>(&self, local: F, stop: CancellationToken)
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = NodeHealth>,
    {
        // The follower needs a moment to find the leader before the first pull.
        let _ = self.inner.follower.ready(Duration::from_secs(10)).await;
        loop {
            self.cluster(true, &local).await;
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(self.inner.pull.interval) => {}
            }
        }
    }
}

/// Now, as RFC 3339 UTC.
pub fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}
