//! What the service knows, gathered on request with short caches: the node's metrics, the
//! agent's containers, the application metrics tasks sent, the node's Mesos id, and the
//! Mesos and Marathon metrics for Prometheus.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::agent::{self, AgentContainer, AgentState, ContainerInfo, MasterState, NodeDims};
use crate::api::{unit, Datapoint, Message, Value};
use crate::fetch::Fetcher;
use crate::node::NodeCollector;
use crate::prometheus::{self, Exposition, DATAPOINT_HELP};
use crate::store::AppStore;
use crate::{Config, Role};

/// How long a node collection is reused: requests within it share one (and one cpu
/// interval).
pub const NODE_CACHE: Duration = Duration::from_secs(2);
/// How long a node collection may take (a hung network filesystem's `statvfs`).
pub const NODE_DEADLINE: Duration = Duration::from_secs(10);
/// How long a read of a component's metrics (Mesos `/metrics/snapshot`, Marathon
/// `/metrics`) is reused: scrapes within it share one read.
pub const SNAPSHOT_CACHE: Duration = Duration::from_secs(2);
/// How long a read of the agent's containers is reused.
pub const AGENT_CACHE: Duration = Duration::from_secs(5);
/// How long a known Mesos id is trusted before it is read again.
pub const MESOS_ID_TTL: Duration = Duration::from_secs(300);
/// How long after a failed read the Mesos id is tried again.
pub const MESOS_ID_RETRY: Duration = Duration::from_secs(10);
/// Bytes of an agent's `/containers` read at most.
pub const CONTAINERS_LIMIT: usize = 16 * 1024 * 1024;
/// Bytes of a `/state` read at most.
pub const STATE_LIMIT: usize = 64 * 1024 * 1024;
/// Bytes of a `/metrics/snapshot` or Marathon `/metrics` read at most.
pub const SNAPSHOT_LIMIT: usize = 4 * 1024 * 1024;

/// How long relayed datagrams of a container the agent's last read did not list are
/// accepted (a container newer than the read).
pub const UNKNOWN_GRACE: Duration = Duration::from_secs(30);
/// A read that started this long after an unknown container's first datagram and does not
/// list it ends its grace.
pub const UNKNOWN_SETTLE: Duration = Duration::from_secs(2);
/// Unknown containers in grace at most; datagrams of further ones are dropped.
pub const MAX_UNKNOWN: usize = 64;
/// How often an unknown container's datagram makes the agent's containers be read again at
/// most.
pub const UNKNOWN_REREAD: Duration = Duration::from_secs(1);

/// Which relayed containers are accepted: those the agent listed, and unknown ones for a
/// grace period.
#[derive(Default)]
struct Admission {
    /// The agent's containers as last read.
    latest: Arc<AgentView>,
    /// Unknown containers, by when their first datagram arrived.
    grace: HashMap<String, Instant>,
    /// When an unknown container last asked for a read.
    reread_at: Option<Instant>,
}

/// A component's metrics as last read, and when; None if the read failed.
type SnapshotCache = tokio::sync::Mutex<Option<(Instant, Option<Arc<serde_json::Value>>)>>;

/// The node's last collection, and the one still running after its request gave up.
#[derive(Default)]
struct NodeCache {
    last: Option<(Instant, Arc<Vec<Datapoint>>)>,
    /// A collection that outlived [`NODE_DEADLINE`]: no other starts until it ends.
    running: Option<tokio::task::JoinHandle<Vec<Datapoint>>>,
}

/// The agent's containers as last read.
#[derive(Clone, Debug, Default)]
pub struct AgentView {
    /// Containers by id.
    pub containers: BTreeMap<String, ContainerInfo>,
    /// When it was read; None if no read succeeded yet.
    pub read_at: Option<Instant>,
}

/// The service's state, shared by its handlers and background tasks.
pub struct Collector {
    config: Config,
    fetch: Fetcher,
    node: Arc<NodeCollector>,
    node_cache: tokio::sync::Mutex<NodeCache>,
    view: tokio::sync::Mutex<(Option<Instant>, Arc<AgentView>)>,
    mesos_id: Mutex<(String, Option<Instant>)>,
    admission: Mutex<Admission>,
    /// The master's, the agent's and Marathon's metrics as last read (or failed), each read
    /// by one request at a time.
    snapshots: [SnapshotCache; 3],
    /// Application metrics from StatsD.
    pub apps: AppStore,
}

impl Collector {
    /// The collector of `config`.
    pub fn new(config: Config) -> Collector {
        let fetch = Fetcher::new(config.request_timeout, config.login.clone());
        Collector {
            node: Arc::new(NodeCollector::new(config.proc_root.clone())),
            apps: AppStore::new(config.store_limits),
            fetch,
            node_cache: tokio::sync::Mutex::new(NodeCache::default()),
            view: tokio::sync::Mutex::new((None, Arc::new(AgentView::default()))),
            mesos_id: Mutex::new((String::new(), None)),
            admission: Mutex::new(Admission::default()),
            snapshots: Default::default(),
            config,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The node's datapoints: a collection at most [`NODE_CACHE`] old. One collection runs
    /// at a time: while one that outlived [`NODE_DEADLINE`] still runs (a hung `statvfs`),
    /// requests answer the last datapoints rather than start another blocking thread.
    pub async fn node_datapoints(&self) -> Arc<Vec<Datapoint>> {
        let node = self.node.clone();
        self.node_datapoints_with(move || node.collect(), NODE_DEADLINE)
            .await
    }

    async fn node_datapoints_with(
        &self,
        collect: impl FnOnce() -> Vec<Datapoint> + Send + 'static,
        deadline: Duration,
    ) -> Arc<Vec<Datapoint>> {
        let mut cache = self.node_cache.lock().await;
        let cache = &mut *cache;
        let last = |c: &NodeCache| c.last.as_ref().map(|(_, p)| p.clone()).unwrap_or_default();
        let handle = match cache.running.take() {
            // A late collection that ended is as fresh as a new one.
            Some(h) if h.is_finished() => h,
            Some(h) => {
                cache.running = Some(h);
                return last(cache);
            }
            None => {
                if let Some((at, points)) = cache.last.as_ref() {
                    if at.elapsed() < NODE_CACHE {
                        return points.clone();
                    }
                }
                tokio::task::spawn_blocking(collect)
            }
        };
        // Kept in the cache while awaited: a request dropped meanwhile leaves it there too.
        let handle = cache.running.insert(handle);
        let collected = tokio::time::timeout(deadline, handle).await;
        if collected.is_ok() {
            cache.running = None;
        }
        match collected {
            Ok(Ok(points)) => {
                let points = Arc::new(points);
                cache.last = Some((Instant::now(), points.clone()));
                points
            }
            Ok(Err(_)) => last(cache),
            Err(_) => {
                tracing::warn!(
                    "node metrics could not be collected in time; answering the last ones"
                );
                last(cache)
            }
        }
    }

    /// The node's dimensions.
    pub async fn node_dims(&self) -> NodeDims {
        NodeDims {
            mesos_id: self.mesos_id().await,
            cluster_id: self.config.cluster_id.clone(),
            hostname: self.config.node_ip.to_string(),
        }
    }

    /// `/v0/node`.
    pub async fn node_message(&self) -> Message {
        let datapoints = self.node_datapoints().await.as_ref().clone();
        Message {
            datapoints,
            dimensions: self.node_dims().await.dimensions(),
        }
    }

    /// The node's Mesos id: the agent's own (agents), the leading master's (masters), ""
    /// while unknown. Read at most every [`MESOS_ID_TTL`] (every [`MESOS_ID_RETRY`] while
    /// unknown).
    pub async fn mesos_id(&self) -> String {
        let (known, checked) = self.lock_id().clone();
        let due = match checked {
            None => true,
            Some(at) if known.is_empty() => at.elapsed() >= MESOS_ID_RETRY,
            Some(at) => at.elapsed() >= MESOS_ID_TTL,
        };
        if !due {
            return known;
        }
        self.lock_id().1 = Some(Instant::now());
        let read = match (self.config.role, &self.config.agent, &self.config.master) {
            (Role::Agent, Some(agent), _) => self
                .fetch
                .json::<AgentState>(&format!("{agent}/state"), STATE_LIMIT)
                .await
                .map(|s| s.id),
            (Role::Master, _, Some(master)) => self
                .fetch
                .json::<MasterState>(&format!("{master}/state"), STATE_LIMIT)
                .await
                .map(|s| s.mesos_id()),
            _ => return known,
        };
        match read {
            Ok(id) if !id.is_empty() => {
                self.lock_id().0 = id.clone();
                id
            }
            Ok(_) => known,
            Err(e) => {
                tracing::debug!(error = %e, "cannot read the node's Mesos id");
                known
            }
        }
    }

    fn lock_id(&self) -> std::sync::MutexGuard<'_, (String, Option<Instant>)> {
        self.mesos_id.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The agent's containers: a read at most [`AGENT_CACHE`] old, else the last good one
    /// if the agent cannot be read.
    pub async fn view(&self) -> Arc<AgentView> {
        self.view_within(AGENT_CACHE).await
    }

    /// The agent's containers: a read at most `max_age` old, else the last good one.
    async fn view_within(&self, max_age: Duration) -> Arc<AgentView> {
        let Some(agent) = self.config.agent.clone() else {
            return Arc::default();
        };
        let mut view = self.view.lock().await;
        if view.0.is_some_and(|at| at.elapsed() < max_age) {
            return view.1.clone();
        }
        view.0 = Some(Instant::now());
        let started = Instant::now();
        let (containers_url, state_url) = (format!("{agent}/containers"), format!("{agent}/state"));
        let (list, state) = tokio::join!(
            self.fetch
                .json::<Vec<AgentContainer>>(&containers_url, CONTAINERS_LIMIT),
            self.fetch.json::<AgentState>(&state_url, STATE_LIMIT),
        );
        match (list, state) {
            (Ok(list), Ok(state)) => {
                if !state.id.is_empty() {
                    let mut id = self.lock_id();
                    id.0 = state.id.clone();
                    id.1 = Some(Instant::now());
                }
                let node = NodeDims {
                    mesos_id: state.id.clone(),
                    cluster_id: self.config.cluster_id.clone(),
                    hostname: self.config.node_ip.to_string(),
                };
                view.1 = Arc::new(AgentView {
                    containers: agent::containers(&list, &state, &node),
                    read_at: Some(started),
                });
                self.lock_admission().latest = view.1.clone();
            }
            (Err(e), _) | (_, Err(e)) => {
                tracing::warn!(error = %e, "cannot read the agent's containers; answering the last ones");
            }
        }
        view.1.clone()
    }

    fn lock_admission(&self) -> std::sync::MutexGuard<'_, Admission> {
        self.admission.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether a relayed datagram of `container_id` is accepted: always without an agent to
    /// ask; else if the agent's last read listed it, or it is unknown but in its grace (at
    /// most [`MAX_UNKNOWN`] at a time, for [`UNKNOWN_GRACE`], ended by a read that started
    /// [`UNKNOWN_SETTLE`] after its first datagram and does not list it). An unknown
    /// container has the agent read again, at most every [`UNKNOWN_REREAD`].
    pub fn admit(self: &Arc<Self>, container_id: &str) -> bool {
        if self.config.agent.is_none() {
            return true;
        }
        let now = Instant::now();
        let mut a = self.lock_admission();
        if a.latest.containers.contains_key(container_id) {
            return true;
        }
        let read_at = a.latest.read_at;
        let in_grace = |first: Instant| {
            now.saturating_duration_since(first) < UNKNOWN_GRACE
                && read_at.is_none_or(|r| r <= first + UNKNOWN_SETTLE)
        };
        let admitted = match a.grace.get(container_id) {
            Some(first) => in_grace(*first),
            None => {
                a.grace.retain(|_, first| in_grace(*first));
                if a.grace.len() >= MAX_UNKNOWN {
                    return false;
                }
                a.grace.insert(container_id.to_string(), now);
                true
            }
        };
        if a.reread_at.is_none_or(|at| at.elapsed() >= UNKNOWN_REREAD) {
            a.reread_at = Some(now);
            let this = self.clone();
            tokio::spawn(async move {
                this.view_within(UNKNOWN_REREAD).await;
            });
        }
        admitted
    }

    /// Sets the agent's containers as if just read (tests of the API without an agent).
    #[cfg(test)]
    pub(crate) async fn preset_view(&self, containers: BTreeMap<String, ContainerInfo>) {
        let view = Arc::new(AgentView {
            containers,
            read_at: Some(Instant::now()),
        });
        *self.view.lock().await = (Some(Instant::now()), view.clone());
        self.lock_admission().latest = view;
    }

    /// The ids of `/v0/containers`: the agent's containers and those that sent metrics.
    pub async fn container_ids(&self) -> Vec<String> {
        let view = self.view().await;
        let mut ids: Vec<String> = view.containers.keys().cloned().collect();
        ids.extend(self.apps.container_ids());
        ids.sort();
        ids.dedup();
        ids
    }

    /// `/v0/containers/{id}`: None if the agent does not run it or gave no statistics.
    pub async fn container_message(&self, id: &str) -> Option<Message> {
        let view = self.view().await;
        let c = view.containers.get(id)?;
        if c.datapoints.is_empty() {
            return None;
        }
        Some(Message {
            datapoints: c.datapoints.clone(),
            dimensions: c.dimensions.clone(),
        })
    }

    /// `/v0/containers/{id}/app[/{metric}]`: the container's application metrics (only
    /// those named `metric` if given); None if there are none. The task's labels become
    /// tags of each datapoint, under its StatsD tags.
    pub async fn app_message(&self, id: &str, metric: Option<&str>) -> Option<Message> {
        let app = self.apps.container(id)?;
        let view = self.view().await;
        let info = view.containers.get(id);
        let mut dimensions = match info {
            Some(i) => i.dimensions.clone(),
            None => self.node_dims().await.dimensions(),
        };
        dimensions.container_id = id.to_string();
        if dimensions.executor_id.is_empty() {
            dimensions.executor_id = app.executor_id.clone();
        }
        if dimensions.framework_id.is_empty() {
            dimensions.framework_id = app.framework_id.clone();
        }
        // Identity dimensions win over labels, and both over StatsD tags: a tag whose
        // sanitized name is a dimension's or a label's is dropped.
        let mut labels = std::mem::take(&mut dimensions.labels);
        labels.retain(|k, _| !crate::api::is_dimension_name(k));
        let label_names: HashSet<String> =
            labels.keys().map(|k| prometheus::label_name(k)).collect();
        let datapoints: Vec<Datapoint> = app
            .series
            .iter()
            .filter(|((name, _), _)| metric.is_none_or(|m| m == name))
            .map(|((name, tags), latest)| {
                let mut all = labels.clone();
                all.extend(
                    tags.iter()
                        .filter(|(k, _)| {
                            !crate::api::is_dimension_name(k)
                                && !label_names.contains(&prometheus::label_name(k))
                        })
                        .cloned(),
                );
                Datapoint {
                    name: name.clone(),
                    value: Value(latest.value),
                    unit: unit::NONE.to_string(),
                    timestamp: latest.timestamp.clone(),
                    tags: all,
                }
            })
            .collect();
        if datapoints.is_empty() {
            return None;
        }
        Some(Message {
            datapoints,
            dimensions,
        })
    }

    /// Reads the agent again if due and drops the application metrics of containers it no
    /// longer runs, and stale series.
    pub async fn expire(&self) {
        let view = self.view().await;
        let running: HashSet<String> = view.containers.keys().cloned().collect();
        let proof = match (self.config.agent.is_some(), view.read_at) {
            (true, Some(at)) => Some((&running, at)),
            _ => None,
        };
        let refused = self.apps.expire(proof);
        if refused > 0 {
            tracing::warn!(
                refused,
                "application metrics dropped at the store's limits or as oversized lines"
            );
        }
    }

    /// The Prometheus exposition of everything: node, container and application datapoints,
    /// and the Mesos and Marathon metrics of this node.
    pub async fn prometheus(&self) -> String {
        let (node, dims, view, master, agent_snap, marathon) = tokio::join!(
            self.node_datapoints(),
            self.node_dims(),
            self.view(),
            self.snapshot(0, self.config.master.as_deref(), "/metrics/snapshot"),
            self.snapshot(1, self.config.agent.as_deref(), "/metrics/snapshot"),
            self.snapshot(2, self.config.marathon.as_deref(), "/metrics"),
        );
        let mut e = Exposition::new();
        let node_dims = dims.dimensions();
        for d in node.iter() {
            add_datapoint(&mut e, d, &node_dims.pairs());
        }
        for c in view.containers.values() {
            let pairs = c.dimensions.pairs();
            for d in &c.datapoints {
                add_datapoint(&mut e, d, &pairs);
            }
        }
        // By id, not `all()`: one container's copy at a time, not the whole store's.
        for id in self.apps.container_ids() {
            if let Some(m) = self.app_message(&id, None).await {
                let pairs = m.dimensions.pairs();
                for d in &m.datapoints {
                    add_datapoint(&mut e, d, &pairs);
                }
            }
        }
        let base = [
            ("mesos_id", dims.mesos_id.as_str()),
            ("cluster_id", dims.cluster_id.as_str()),
            ("hostname", dims.hostname.as_str()),
        ];
        for (snapshot, role, help) in [
            (&master, "master", "Mesos master metric"),
            (&agent_snap, "agent", "Mesos agent metric"),
        ] {
            if let Some(s) = snapshot {
                for (key, v) in prometheus::snapshot_values(s.as_ref()) {
                    let labels = base.iter().copied().chain([("role", role)]);
                    e.add(&format!("mesos.{key}"), &format!("{help} {key}"), labels, v);
                }
            }
        }
        if let Some(m) = &marathon {
            for (name, v) in prometheus::marathon_values(m.as_ref()) {
                e.add(
                    &prometheus::marathon_name(&name),
                    &format!("Marathon metric {name}"),
                    base.iter().copied(),
                    v,
                );
            }
        }
        e.render()
    }

    /// A component's metrics as JSON (cache `slot`), None if it is not configured or cannot
    /// be read: a read at most [`SNAPSHOT_CACHE`] old, one at a time.
    async fn snapshot(
        &self,
        slot: usize,
        base: Option<&str>,
        path: &str,
    ) -> Option<Arc<serde_json::Value>> {
        let url = format!("{}{path}", base?);
        let mut cache = self.snapshots[slot].lock().await;
        if let Some((at, v)) = cache.as_ref() {
            if at.elapsed() < SNAPSHOT_CACHE {
                return v.clone();
            }
        }
        let read = match self.fetch.json(&url, SNAPSHOT_LIMIT).await {
            Ok(v) => Some(Arc::new(v)),
            Err(e) => {
                tracing::debug!(error = %e, "skipping metrics that cannot be read");
                None
            }
        };
        *cache = Some((Instant::now(), read.clone()));
        read
    }
}

/// A datapoint as a sample: its dimensions, then its tags. A dimension wins over a tag
/// whose sanitized name is the same, so a task's tags cannot spoof whose metrics they are.
fn add_datapoint(e: &mut Exposition, d: &Datapoint, dims: &[(&str, &str)]) {
    let tags = d.tags.iter().map(|(k, v)| (k.as_str(), v.as_str()));
    let labels = prometheus::dedup_labels(dims.iter().copied().chain(tags));
    e.add(&d.name, DATAPOINT_HELP, labels, d.value.0);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agent_collector() -> Arc<Collector> {
        let mut c = Config::new(
            Role::Agent,
            "/nonexistent.sock".into(),
            std::net::Ipv4Addr::LOCALHOST.into(),
        );
        // Nothing listens there: re-reads fail at once and the preset view stays.
        c.agent = Some("http://127.0.0.1:9".into());
        Arc::new(Collector::new(c))
    }

    #[tokio::test]
    async fn relayed_ids_the_agent_does_not_list_are_admitted_only_briefly_and_few() {
        let c = agent_collector();
        let listed = ContainerInfo::default();
        c.preset_view([("c1".to_string(), listed)].into()).await;
        assert!(c.admit("c1"));
        // Unknown: in grace, up to the cap.
        for i in 0..MAX_UNKNOWN {
            assert!(c.admit(&format!("new{i}")), "{i}");
        }
        assert!(c.admit("new0"), "still in grace");
        assert!(!c.admit("one-too-many"));
        assert!(c.admit("c1"), "listed ones are unaffected");
        // Grace ends with time...
        let long_ago = Instant::now() - UNKNOWN_GRACE - Duration::from_secs(1);
        c.lock_admission().grace.insert("new0".into(), long_ago);
        assert!(!c.admit("new0"));
        // ... and with a later read that does not list it.
        let before = Instant::now() - UNKNOWN_SETTLE - Duration::from_secs(1);
        c.lock_admission().grace.insert("new1".into(), before);
        c.preset_view([("c1".to_string(), ContainerInfo::default())].into())
            .await;
        assert!(!c.admit("new1"));
        // Expired entries make room for new ones.
        assert!(c.admit("later"));
    }

    #[tokio::test]
    async fn component_metrics_are_read_once_per_cache_period() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let reads = Arc::new(AtomicUsize::new(0));
        let counted = reads.clone();
        let app = axum::Router::new().route(
            "/metrics",
            axum::routing::get(move || {
                let counted = counted.clone();
                async move {
                    counted.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    axum::Json(serde_json::json!({"gauges": {}}))
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        let c = agent_collector();
        let base = format!("http://{addr}");
        let (a, b, d) = tokio::join!(
            c.snapshot(2, Some(&base), "/metrics"),
            c.snapshot(2, Some(&base), "/metrics"),
            c.snapshot(2, Some(&base), "/metrics"),
        );
        assert!(a.is_some() && b.is_some() && d.is_some());
        assert!(c.snapshot(2, Some(&base), "/metrics").await.is_some());
        assert_eq!(
            reads.load(Ordering::SeqCst),
            1,
            "one read in flight, then cached"
        );
        server.abort();
    }

    #[tokio::test]
    async fn without_an_agent_every_relayed_id_is_admitted() {
        let c = Arc::new(Collector::new(Config::new(
            Role::Agent,
            "/nonexistent.sock".into(),
            std::net::Ipv4Addr::LOCALHOST.into(),
        )));
        assert!(c.admit("anything"));
    }

    #[tokio::test]
    async fn a_hung_node_collection_is_not_started_again_while_it_runs() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let c = agent_collector();
        let started = Arc::new(AtomicUsize::new(0));
        let (release, hold) = std::sync::mpsc::channel::<()>();
        let hold = Arc::new(Mutex::new(hold));
        let point = |name: &str| Datapoint {
            name: name.into(),
            value: Value(1.0),
            unit: unit::NONE.into(),
            timestamp: String::new(),
            tags: BTreeMap::new(),
        };
        let collect = |name: &'static str| {
            let started = started.clone();
            let hold = hold.clone();
            move || {
                started.fetch_add(1, Ordering::SeqCst);
                let _ = hold.lock().unwrap().recv();
                vec![point(name)]
            }
        };
        let short = Duration::from_millis(50);
        // The first collection hangs past its deadline: nothing to answer yet.
        assert!(c
            .node_datapoints_with(collect("first"), short)
            .await
            .is_empty());
        // Later requests do not start another while it runs.
        for _ in 0..5 {
            assert!(c
                .node_datapoints_with(collect("other"), short)
                .await
                .is_empty());
        }
        assert_eq!(started.load(Ordering::SeqCst), 1);
        // Once it ends, its datapoints are answered and cached.
        release.send(()).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        let points = loop {
            let points = c.node_datapoints_with(collect("other"), short).await;
            if !points.is_empty() || Instant::now() > deadline {
                break points;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        assert_eq!(points[0].name, "first");
        assert_eq!(started.load(Ordering::SeqCst), 1);
        let again = c.node_datapoints_with(collect("other"), short).await;
        assert_eq!(again[0].name, "first", "within the cache");
        assert_eq!(started.load(Ordering::SeqCst), 1);
    }
}
