//! The master's state machine: frameworks, agents, tasks, offers. No I/O happens here but
//! sending on channels; HTTP handlers lock the [`Master`] briefly, call one method, unlock.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use crate::api::{self, FrameworkInfo, Id, Reason, Source, TaskInfo, TaskState, TaskStatus};
use crate::protocol::{AgentEvent, AgentInfo, TaskReport};
use crate::recordio;
use crate::resources::Resources;

/// How many completed tasks a framework keeps (Mesos's `max_completed_tasks_per_framework`).
const MAX_COMPLETED_TASKS: usize = 1000;
/// Operator event streams at most (Mesos' `--max_operator_event_stream_subscribers`).
pub const MAX_OPERATOR_SUBSCRIBERS: usize = 1000;
/// How many completed frameworks the master keeps.
const MAX_COMPLETED_FRAMEWORKS: usize = 50;
/// Default DECLINE/ACCEPT refusal.
pub const DEFAULT_REFUSE: Duration = Duration::from_secs(5);
/// Buffered events per framework stream before the framework is considered stuck.
pub const STREAM_BUFFER: usize = 256 * 1024;

/// A framework's event stream.
pub struct Stream {
    /// `Mesos-Stream-Id`.
    pub id: String,
    /// RecordIO-framed events.
    pub tx: mpsc::Sender<Bytes>,
}

/// A task as the master tracks it.
#[derive(Clone, Debug)]
pub struct Task {
    /// The task as launched.
    pub info: TaskInfo,
    /// Its framework.
    pub framework_id: String,
    /// Its current state.
    pub state: TaskState,
    /// Its resources.
    pub resources: Resources,
    /// Every status seen, oldest first.
    pub statuses: Vec<TaskStatus>,
    /// The executor (custom executors only).
    pub executor_id: Option<String>,
}

impl Task {
    fn latest_status(&self, agent_id: &str) -> TaskStatus {
        let mut st = self.statuses.last().cloned().unwrap_or_else(|| TaskStatus {
            task_id: self.info.task_id.clone(),
            state: self.state.clone(),
            ..TaskStatus::default()
        });
        st.state = self.state.clone();
        st.agent_id = Some(Id::new(agent_id));
        st
    }
}

/// A framework.
pub struct Framework {
    /// Its info (with `id`).
    pub info: FrameworkInfo,
    /// Its stream while connected.
    pub stream: Option<Stream>,
    /// False once torn down.
    pub active: bool,
    /// No offers while suppressed.
    pub suppressed: bool,
    /// Seconds since the epoch.
    pub registered_time: f64,
    /// Seconds since the epoch, when it re-subscribed.
    pub reregistered_time: Option<f64>,
    /// When its stream broke, for the failover timeout.
    pub disconnected_at: Option<Instant>,
    /// Running (non-terminal) tasks, by task id.
    pub tasks: BTreeMap<String, Task>,
    /// Terminal tasks, newest last.
    pub completed_tasks: VecDeque<Task>,
    /// Outstanding offers.
    pub offers: HashSet<String>,
    /// Resources of its non-terminal tasks.
    pub used: Resources,
    /// Resources in its outstanding offers.
    pub offered: Resources,
    /// Recovered from an agent's report, not yet re-subscribed.
    pub recovered: bool,
}

impl Framework {
    /// The framework's id.
    pub fn id(&self) -> &str {
        self.info.id.as_ref().map_or("", |i| i.value.as_str())
    }

    /// Whether it has a live stream.
    pub fn connected(&self) -> bool {
        self.stream.as_ref().is_some_and(|s| !s.tx.is_closed())
    }

    /// The role it is allocated under.
    pub fn role(&self) -> String {
        self.info
            .all_roles()
            .into_iter()
            .next()
            .unwrap_or_else(|| "*".into())
    }

    /// Sends an event; a full or closed stream disconnects the framework.
    fn send(&mut self, event: &Value) {
        let Some(stream) = &self.stream else {
            return;
        };
        let frame = recordio::encode(event.to_string().as_bytes());
        if stream.tx.try_send(frame).is_err() {
            tracing::warn!(
                framework_id = self.id(),
                "framework stream closed or stuck; disconnecting it"
            );
            self.stream = None;
            self.disconnected_at = Some(Instant::now());
        }
    }
}

/// An agent.
pub struct Agent {
    /// Its id.
    pub id: String,
    /// What it said about itself.
    pub info: AgentInfo,
    /// Its total resources.
    pub total: Resources,
    /// Resources of its non-terminal tasks.
    pub used: Resources,
    /// Resources in outstanding offers.
    pub offered: Resources,
    /// Its event stream while connected.
    pub tx: Option<mpsc::Sender<AgentEvent>>,
    /// A token that grows with each (re-)subscription, so a stale stream's end is ignored.
    pub session: u64,
    /// Seconds since the epoch.
    pub registered_time: f64,
    /// Seconds since the epoch, when it re-registered.
    pub reregistered_time: Option<f64>,
    /// When its stream broke.
    pub disconnected_at: Option<Instant>,
    /// Marked unreachable (its tasks were reported so).
    pub unreachable: bool,
    /// The address its subscription connected from (none for in-process callers).
    pub peer: Option<IpAddr>,
}

impl Agent {
    /// Whether it is connected and can be offered.
    pub fn active(&self) -> bool {
        self.tx.as_ref().is_some_and(|t| !t.is_closed()) && !self.unreachable
    }

    /// `slave(1)@ip:port`.
    pub fn pid(&self) -> String {
        format!("slave(1)@{}:{}", self.info.hostname, self.info.port)
    }

    fn send(&mut self, event: AgentEvent) {
        if let Some(tx) = &self.tx {
            if tx.try_send(event).is_err() {
                tracing::warn!(agent_id = %self.id, "agent stream closed or stuck; disconnecting it");
                self.tx = None;
                self.disconnected_at = Some(Instant::now());
            }
        }
    }
}

/// An outstanding offer.
#[derive(Clone, Debug)]
pub struct Offer {
    /// Its id.
    pub id: String,
    /// Its framework.
    pub framework_id: String,
    /// Its agent.
    pub agent_id: String,
    /// Its resources.
    pub resources: Resources,
    /// The role it was allocated to.
    pub role: String,
}

/// Scheduler-call failures, with Mesos's status and text.
#[derive(Debug, PartialEq, Eq)]
pub enum CallError {
    /// 400.
    BadRequest(String),
    /// 403.
    Forbidden(String),
}

/// The whole master.
pub struct Master {
    /// The master's id.
    pub id: String,
    /// Its address.
    pub ip: String,
    /// Its port.
    pub port: u16,
    /// The cluster's name.
    pub cluster: String,
    /// Seconds since the epoch.
    pub start_time: f64,
    /// When this master was elected leader, if it leads.
    pub elected_time: Option<f64>,
    /// Frameworks by id.
    pub frameworks: HashMap<String, Framework>,
    /// Torn-down frameworks, newest last.
    pub completed_frameworks: VecDeque<Framework>,
    /// Agents by id.
    pub agents: HashMap<String, Agent>,
    /// Agents known from the registry that have not re-registered since the master started.
    pub recovered_agents: HashMap<String, AgentInfo>,
    /// Outstanding offers.
    pub offers: HashMap<String, Offer>,
    /// Offer filters: (framework, agent) -> refused until.
    pub filters: HashMap<(String, String), Instant>,
    /// Role weights for DRF.
    pub weights: HashMap<String, f64>,
    /// Operator event stream subscribers.
    pub subscribers: Vec<mpsc::Sender<Bytes>>,
    /// Counters for `/metrics/snapshot`.
    pub counters: BTreeMap<&'static str, u64>,
    /// How long recent allocation cycles took (`allocator/mesos/allocation_run_ms`).
    pub allocation_runs: Timer,
    next_id: u64,
    /// The sequence number of the next new framework (`<master id>-<seq>` as Mesos'
    /// `nextFrameworkId`): counted for the master's life, never derived from what it still
    /// keeps, so an id is never given twice.
    next_framework: u64,
}

/// A Mesos timer metric: the count of samples, the last, and percentiles over a window of
/// the most recent ones (Mesos keeps a window too).
#[derive(Debug, Default)]
pub struct Timer {
    count: u64,
    window: VecDeque<f64>,
}

impl Timer {
    /// How many recent samples the percentiles cover.
    const WINDOW: usize = 1000;

    /// Records one sample, in milliseconds.
    pub fn record(&mut self, ms: f64) {
        self.count += 1;
        if self.window.len() == Self::WINDOW {
            self.window.pop_front();
        }
        self.window.push_back(ms);
    }

    /// `<key>`, `<key>/count`, `/min`, `/max`, `/p50`, `/p90`, `/p99` as Mesos names them.
    pub fn to_metrics(&self, key: &str, into: &mut Value) {
        let Some(last) = self.window.back() else {
            return;
        };
        let mut sorted: Vec<f64> = self.window.iter().copied().collect();
        sorted.sort_by(f64::total_cmp);
        let at = |q: f64| sorted[((sorted.len() - 1) as f64 * q).round() as usize];
        into[key] = json!(last);
        into[format!("{key}/count")] = json!(self.count);
        into[format!("{key}/min")] = json!(sorted[0]);
        into[format!("{key}/max")] = json!(sorted[sorted.len() - 1]);
        for (name, q) in [("p50", 0.5), ("p90", 0.9), ("p99", 0.99)] {
            into[format!("{key}/{name}")] = json!(at(q));
        }
    }
}

fn status_update_event(status: &TaskStatus) -> Value {
    json!({"type": "UPDATE", "update": {"status": status}})
}

/// Whether `name` is a DNS hostname: dot-separated labels of letters, digits and `-`.
fn dns_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.trim_end_matches('.').split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// A master-generated status (no uuid: schedulers do not acknowledge these).
fn master_status(
    task_id: &Id,
    agent_id: Option<&str>,
    state: TaskState,
    reason: Reason,
    message: String,
) -> TaskStatus {
    TaskStatus {
        task_id: task_id.clone(),
        state,
        message: Some(message),
        source: Some(Source::Master),
        reason: Some(reason),
        agent_id: agent_id.map(Id::new),
        timestamp: Some(api::now_secs()),
        ..TaskStatus::default()
    }
}

impl Master {
    /// A master with no state.
    pub fn new(ip: String, port: u16, cluster: String, weights: HashMap<String, f64>) -> Master {
        Master {
            id: uuid::Uuid::new_v4().to_string(),
            ip,
            port,
            cluster,
            start_time: api::now_secs(),
            elected_time: None,
            frameworks: HashMap::new(),
            completed_frameworks: VecDeque::new(),
            agents: HashMap::new(),
            recovered_agents: HashMap::new(),
            offers: HashMap::new(),
            filters: HashMap::new(),
            weights,
            subscribers: Vec::new(),
            counters: BTreeMap::new(),
            allocation_runs: Timer::default(),
            next_id: 0,
            next_framework: 0,
        }
    }

    fn count(&mut self, key: &'static str) {
        *self.counters.entry(key).or_default() += 1;
    }

    fn fresh_id(&mut self, prefix: &str) -> String {
        self.next_id += 1;
        format!("{}-{prefix}{}", self.id, self.next_id)
    }

    /// The `master@ip:port` pid.
    pub fn pid(&self) -> String {
        format!("master@{}:{}", self.ip, self.port)
    }

    /// MasterInfo in its JSON form.
    pub fn master_info(&self) -> Value {
        let ip_u32 = self
            .ip
            .parse::<std::net::Ipv4Addr>()
            .map(|ip| u32::from_le_bytes(ip.octets()))
            .unwrap_or(0);
        json!({
            "id": self.id,
            "ip": ip_u32,
            "port": self.port,
            "pid": self.pid(),
            "hostname": self.ip,
            "version": crate::MESOS_VERSION,
            "address": {"hostname": self.ip, "ip": self.ip, "port": self.port},
        })
    }

    /// Adds an operator-API subscriber; beyond [`MAX_OPERATOR_SUBSCRIBERS`] the oldest
    /// streams are closed, as Mesos does, so clients and proxies that never close their
    /// connections cannot grow the list without bound.
    pub fn add_subscriber(&mut self, tx: mpsc::Sender<Bytes>) {
        self.subscribers.retain(|s| !s.is_closed());
        if self.subscribers.len() >= MAX_OPERATOR_SUBSCRIBERS {
            let excess = self.subscribers.len() + 1 - MAX_OPERATOR_SUBSCRIBERS;
            self.subscribers.drain(..excess);
        }
        self.subscribers.push(tx);
    }

    /// Sends an operator-API event to every subscriber, dropping the ones that are gone.
    pub fn publish(&mut self, event: Value) {
        if self.subscribers.is_empty() {
            return;
        }
        let frame = recordio::encode(event.to_string().as_bytes());
        self.subscribers
            .retain(|s| s.try_send(frame.clone()).is_ok());
    }

    /// Ends every event stream (frameworks, agents, operator subscribers): the master is
    /// stopping. Frameworks and agents see their stream end and reconnect elsewhere.
    pub fn close_streams(&mut self) {
        for fw in self.frameworks.values_mut() {
            fw.stream = None;
        }
        for agent in self.agents.values_mut() {
            agent.tx = None;
        }
        self.subscribers.clear();
    }

    // === frameworks ===

    /// SUBSCRIBE: registers a new framework or re-subscribes a known one. Returns the
    /// framework id and the stream the HTTP response drains.
    pub fn subscribe(
        &mut self,
        mut info: FrameworkInfo,
        stream_id: String,
    ) -> Result<(String, mpsc::Receiver<Bytes>), CallError> {
        if info.user.is_empty() {
            return Err(CallError::BadRequest(
                "Failed to validate scheduler::Call: Expecting 'framework_info.user' to be present"
                    .into(),
            ));
        }
        if info.name.is_empty() {
            return Err(CallError::BadRequest(
                "Failed to validate scheduler::Call: Expecting 'framework_info.name' to be present"
                    .into(),
            ));
        }
        let (tx, rx) = mpsc::channel(STREAM_BUFFER);
        let now = api::now_secs();
        let id = match info.id.as_ref().map(|i| i.value.clone()) {
            Some(id) => {
                if self.completed_frameworks.iter().any(|f| f.id() == id) {
                    return Err(CallError::Forbidden(format!(
                        "Framework {id} has been removed"
                    )));
                }
                match self.frameworks.get_mut(&id) {
                    Some(fw) => {
                        // Failover: the new connection replaces the old one, which hears ERROR.
                        if fw.connected() {
                            fw.send(&json!({"type": "ERROR", "error": {"message": "Framework failed over"}}));
                        }
                        let tasks = std::mem::take(&mut fw.tasks);
                        fw.info = info.clone();
                        fw.tasks = tasks;
                        fw.stream = Some(Stream { id: stream_id, tx });
                        fw.disconnected_at = None;
                        fw.reregistered_time = Some(now);
                        fw.recovered = false;
                        fw.active = true;
                    }
                    None => {
                        // Known to the framework, not to this master (it restarted): accept it.
                        self.frameworks.insert(
                            id.clone(),
                            new_framework(info.clone(), Stream { id: stream_id, tx }, now),
                        );
                    }
                }
                self.count("master/messages_reregister_framework");
                id
            }
            None => {
                let id = format!("{}-{:04}", self.id, self.next_framework);
                self.next_framework += 1;
                info.id = Some(Id::new(&id));
                self.frameworks.insert(
                    id.clone(),
                    new_framework(info.clone(), Stream { id: stream_id, tx }, now),
                );
                self.count("master/messages_register_framework");
                id
            }
        };
        // Offers made to a previous connection are void.
        self.rescind_framework_offers(&id);
        let master_info = self.master_info();
        if let Some(fw) = self.frameworks.get_mut(&id) {
            fw.send(&json!({
                "type": "SUBSCRIBED",
                "subscribed": {
                    "framework_id": {"value": id},
                    "heartbeat_interval_seconds": crate::master::HEARTBEAT_SECS,
                    "master_info": master_info,
                }
            }));
        }
        let info_json = self
            .frameworks
            .get(&id)
            .map(|f| serde_json::to_value(&f.info).unwrap_or_default());
        self.publish(json!({"type": "FRAMEWORK_ADDED", "framework_added": {"framework": {"framework_info": info_json, "active": true, "connected": true, "recovered": false}}}));
        tracing::info!(framework_id = %id, name = %info.name, "framework subscribed");
        Ok((id, rx))
    }

    /// Checks that a non-SUBSCRIBE call comes from the framework's current stream.
    pub fn check_caller(
        &self,
        framework_id: &str,
        stream_id: Option<&str>,
    ) -> Result<(), CallError> {
        let Some(fw) = self.frameworks.get(framework_id) else {
            return Err(CallError::BadRequest("Framework cannot be found".into()));
        };
        let Some(stream) = &fw.stream else {
            return Err(CallError::Forbidden("Framework is not subscribed".into()));
        };
        match stream_id {
            None => Err(CallError::BadRequest(
                "All non-subscribe calls should include the 'Mesos-Stream-Id' header".into(),
            )),
            Some(s) if s != stream.id => Err(CallError::BadRequest(format!(
                "The stream ID '{s}' included in this request didn't match the stream ID currently associated with framework ID {framework_id}"
            ))),
            Some(_) => Ok(()),
        }
    }

    /// The framework's stream ended (the scheduler went away).
    pub fn framework_disconnected(&mut self, framework_id: &str, stream_id: &str) {
        if let Some(fw) = self.frameworks.get_mut(framework_id) {
            if fw.stream.as_ref().is_some_and(|s| s.id == stream_id) {
                fw.stream = None;
                fw.disconnected_at = Some(Instant::now());
                tracing::info!(framework_id, "framework disconnected");
            }
        }
        self.rescind_framework_offers(framework_id);
    }

    /// TEARDOWN (or failover timeout): kill the framework's tasks and forget it.
    pub fn teardown(&mut self, framework_id: &str) -> bool {
        self.rescind_framework_offers(framework_id);
        let Some(mut fw) = self.frameworks.remove(framework_id) else {
            return false;
        };
        let agent_ids: HashSet<String> = fw
            .tasks
            .values()
            .map(|t| t.info.agent_id.value.clone())
            .collect();
        for agent_id in agent_ids {
            if let Some(agent) = self.agents.get_mut(&agent_id) {
                agent.send(AgentEvent::ShutdownFramework {
                    framework_id: Id::new(framework_id),
                });
            }
        }
        for (_, mut task) in std::mem::take(&mut fw.tasks) {
            if let Some(agent) = self.agents.get_mut(&task.info.agent_id.value) {
                agent.used = agent.used.sub(&task.resources);
            }
            task.state = TaskState::Killed;
            fw.completed_tasks.push_back(task);
            if fw.completed_tasks.len() > MAX_COMPLETED_TASKS {
                fw.completed_tasks.pop_front();
            }
        }
        fw.used = Resources::default();
        fw.active = false;
        if let Some(stream) = fw.stream.take() {
            drop(stream);
        }
        self.filters.retain(|(f, _), _| f != framework_id);
        self.publish(
            json!({"type": "FRAMEWORK_REMOVED", "framework_removed": {"framework_info": fw.info}}),
        );
        self.completed_frameworks.push_back(fw);
        while self.completed_frameworks.len() > MAX_COMPLETED_FRAMEWORKS {
            self.completed_frameworks.pop_front();
        }
        tracing::info!(framework_id, "framework removed");
        true
    }

    /// Tears down frameworks whose failover timeout has passed.
    pub fn expire_frameworks(&mut self) {
        let now = Instant::now();
        let expired: Vec<String> = self
            .frameworks
            .values()
            .filter(|f| !f.recovered)
            .filter(|f| {
                f.disconnected_at.is_some_and(|at| {
                    let timeout = f.info.failover_timeout.unwrap_or(0.0).clamp(0.0, 1e9);
                    now.duration_since(at) >= Duration::from_secs_f64(timeout)
                })
            })
            .map(|f| f.id().to_string())
            .collect();
        for id in expired {
            tracing::info!(framework_id = %id, "framework failover timeout passed");
            self.teardown(&id);
        }
    }

    // === offers ===

    fn rescind_framework_offers(&mut self, framework_id: &str) {
        let ids: Vec<String> = self
            .offers
            .values()
            .filter(|o| o.framework_id == framework_id)
            .map(|o| o.id.clone())
            .collect();
        for id in ids {
            self.remove_offer(&id, true);
        }
    }

    /// Removes an offer, returning its resources to the agent; tells the framework if `rescind`.
    pub fn remove_offer(&mut self, offer_id: &str, rescind: bool) -> Option<Offer> {
        let offer = self.offers.remove(offer_id)?;
        if let Some(agent) = self.agents.get_mut(&offer.agent_id) {
            agent.offered = agent.offered.sub(&offer.resources);
        }
        if let Some(fw) = self.frameworks.get_mut(&offer.framework_id) {
            fw.offers.remove(offer_id);
            fw.offered = fw.offered.sub(&offer.resources);
            if rescind {
                fw.send(&json!({"type": "RESCIND", "rescind": {"offer_id": {"value": offer_id}}}));
            }
        }
        Some(offer)
    }

    /// Makes the offers the allocator decided on and sends them, one OFFERS event per framework.
    pub fn make_offers(&mut self, decisions: Vec<(String, String, Resources)>) {
        let mut by_framework: HashMap<String, Vec<Value>> = HashMap::new();
        for (framework_id, agent_id, resources) in decisions {
            let id = self.fresh_id("O");
            let Some(fw) = self.frameworks.get_mut(&framework_id) else {
                continue;
            };
            let Some(agent) = self.agents.get_mut(&agent_id) else {
                continue;
            };
            let role = fw.role();
            agent.offered = agent.offered.add(&resources);
            fw.offered = fw.offered.add(&resources);
            fw.offers.insert(id.clone());
            let attributes: Vec<Value> = agent
                .info
                .attributes
                .iter()
                .map(|(k, v)| json!({"name": k, "type": "TEXT", "text": {"value": v}}))
                .collect();
            by_framework.entry(framework_id.clone()).or_default().push(json!({
                "id": {"value": id},
                "framework_id": {"value": framework_id},
                "agent_id": {"value": agent_id},
                "hostname": agent.info.hostname,
                "url": {
                    "scheme": "http",
                    "address": {"hostname": agent.info.hostname, "ip": agent.info.hostname, "port": agent.info.port},
                    "path": "/slave(1)"
                },
                "resources": resources.to_api(Some(&role)),
                "attributes": attributes,
                "allocation_info": {"role": role},
            }));
            self.offers.insert(
                id.clone(),
                Offer {
                    id,
                    framework_id,
                    agent_id,
                    resources,
                    role,
                },
            );
        }
        for (framework_id, offers) in by_framework {
            if let Some(fw) = self.frameworks.get_mut(&framework_id) {
                fw.send(&json!({"type": "OFFERS", "offers": {"offers": offers}}));
            }
        }
    }

    fn add_filter(&mut self, framework_id: &str, agent_id: &str, filters: Option<&api::Filters>) {
        let secs = filters
            .and_then(|f| f.refuse_seconds)
            .unwrap_or(DEFAULT_REFUSE.as_secs_f64());
        if secs > 0.0 && secs.is_finite() {
            let until = Instant::now() + Duration::from_secs_f64(secs.min(365.0 * 86400.0));
            self.filters
                .insert((framework_id.to_string(), agent_id.to_string()), until);
        }
    }

    /// DECLINE.
    pub fn decline(
        &mut self,
        framework_id: &str,
        offer_ids: &[Id],
        filters: Option<&api::Filters>,
    ) {
        for oid in offer_ids {
            let owned = self
                .offers
                .get(&oid.value)
                .is_some_and(|o| o.framework_id == framework_id);
            if owned {
                if let Some(offer) = self.remove_offer(&oid.value, false) {
                    self.add_filter(framework_id, &offer.agent_id, filters);
                }
            }
        }
    }

    /// REVIVE: forget the framework's filters and resume offers.
    pub fn revive(&mut self, framework_id: &str) {
        self.filters.retain(|(f, _), _| f != framework_id);
        if let Some(fw) = self.frameworks.get_mut(framework_id) {
            fw.suppressed = false;
        }
    }

    /// SUPPRESS: no more offers until REVIVE.
    pub fn suppress(&mut self, framework_id: &str) {
        if let Some(fw) = self.frameworks.get_mut(framework_id) {
            fw.suppressed = true;
        }
    }

    // === launching ===

    fn send_update(&mut self, framework_id: &str, status: TaskStatus) {
        self.publish(json!({"type": "TASK_UPDATED", "task_updated": {"framework_id": {"value": framework_id}, "status": status, "state": status.state}}));
        if let Some(fw) = self.frameworks.get_mut(framework_id) {
            fw.send(&status_update_event(&status));
        }
    }

    /// ACCEPT with LAUNCH / LAUNCH_GROUP operations. Invalid tasks are answered with
    /// TASK_ERROR (or TASK_LOST for a void offer) updates, as Mesos does; what the
    /// operations do not use goes back to the pool with the call's filters.
    pub fn accept(
        &mut self,
        framework_id: &str,
        offer_ids: &[Id],
        operations: &[Value],
        filters: Option<&api::Filters>,
    ) {
        self.count("master/messages_accept");
        // The tasks are read straight from the call: a launch of hundreds of tasks is not
        // copied on the way.
        let tasks_of_ops: Vec<(TaskInfo, Option<api::ExecutorInfo>)> = operations
            .iter()
            .flat_map(|op| match op.get("type").and_then(Value::as_str) {
                Some("LAUNCH") => op
                    .pointer("/launch/task_infos")
                    .and_then(Value::as_array)
                    .map(|ts| ts.iter().map(|t| (t, None)).collect::<Vec<_>>())
                    .unwrap_or_default(),
                Some("LAUNCH_GROUP") => {
                    let executor = op.pointer("/launch_group/executor");
                    op.pointer("/launch_group/task_group/tasks")
                        .and_then(Value::as_array)
                        .map(|ts| ts.iter().map(|t| (t, executor)).collect::<Vec<_>>())
                        .unwrap_or_default()
                }
                _ => Vec::new(),
            })
            .filter_map(|(t, e)| {
                let task = TaskInfo::deserialize(t);
                let executor = e.and_then(|e| api::ExecutorInfo::deserialize(e).ok());
                match task {
                    Ok(task) => Some((task, executor)),
                    Err(err) => {
                        let task_id = t
                            .pointer("/task_id/value")
                            .and_then(Value::as_str)
                            .unwrap_or("")
                            .to_string();
                        self.send_update(
                            framework_id,
                            master_status(
                                &Id::new(task_id),
                                None,
                                TaskState::Error,
                                Reason::TaskInvalid,
                                format!("Task is invalid: {err}"),
                            ),
                        );
                        None
                    }
                }
            })
            .collect();

        // Every offer must exist, belong to this framework, and all be on one agent.
        let mut offers = Vec::new();
        let mut invalid = None;
        for oid in offer_ids {
            match self.offers.get(&oid.value) {
                Some(o) if o.framework_id == framework_id => offers.push(o.clone()),
                Some(_) => {
                    invalid = Some(format!(
                        "Offer {} is not owned by framework {framework_id}",
                        oid.value
                    ))
                }
                None => invalid = Some(format!("Offer {} is no longer valid", oid.value)),
            }
        }
        if offers.is_empty() && invalid.is_none() {
            invalid = Some("No offers specified".into());
        }
        if let Some(first) = offers.first() {
            if offers.iter().any(|o| o.agent_id != first.agent_id) {
                invalid = Some("Aggregated offers must belong to one single agent".into());
            }
        }
        if let Some(message) = invalid {
            // The offers that were valid go back; every task is reported lost.
            for o in &offers {
                self.remove_offer(&o.id, false);
            }
            for (task, _) in tasks_of_ops {
                self.send_update(
                    framework_id,
                    master_status(
                        &task.task_id,
                        Some(&task.agent_id.value),
                        TaskState::Lost,
                        Reason::InvalidOffers,
                        message.clone(),
                    ),
                );
            }
            return;
        }
        let agent_id = offers[0].agent_id.clone();
        let mut available = Resources::default();
        for o in &offers {
            if let Some(removed) = self.remove_offer(&o.id, false) {
                available = available.add(&removed.resources);
            }
        }
        for (task, executor) in tasks_of_ops {
            match self.validate_task(framework_id, &agent_id, &task, &available) {
                Ok(resources) => {
                    available = available.sub(&resources);
                    self.launch(framework_id, &agent_id, task, executor, resources);
                }
                Err(message) => {
                    self.send_update(
                        framework_id,
                        master_status(
                            &task.task_id,
                            Some(&agent_id),
                            TaskState::Error,
                            Reason::TaskInvalid,
                            message,
                        ),
                    );
                }
            }
        }
        self.add_filter(framework_id, &agent_id, filters);
    }

    fn validate_task(
        &self,
        framework_id: &str,
        agent_id: &str,
        task: &TaskInfo,
        available: &Resources,
    ) -> Result<Resources, String> {
        let id = &task.task_id.value;
        if id.is_empty() || id.contains('/') || id.chars().any(char::is_control) {
            return Err(format!("Task ID '{id}' is invalid: it must be non-empty and contain no '/' or control characters"));
        }
        if task.agent_id.value != agent_id {
            return Err(format!(
                "Task uses agent ID '{}' but the offers are for agent '{agent_id}'",
                task.agent_id.value
            ));
        }
        let fw = self
            .frameworks
            .get(framework_id)
            .ok_or("Framework cannot be found")?;
        if fw.tasks.contains_key(id) {
            return Err(format!("Task has duplicate ID: {id}"));
        }
        if task.command.is_none() && task.executor.is_none() {
            return Err("Task should have at least one (but not both) of CommandInfo or ExecutorInfo present".into());
        }
        let mut resources = Resources::from_api(&task.resources)
            .map_err(|e| format!("Task uses invalid resources: {e}"))?;
        if let Some(ex) = &task.executor {
            resources = resources.add(
                &Resources::from_api(&ex.resources)
                    .map_err(|e| format!("Executor uses invalid resources: {e}"))?,
            );
        }
        if resources.cpus < 0.01 && resources.mem < 32.0 && task.executor.is_none() {
            // Mesos requires some cpus or mem for command tasks (they get executor overhead).
        }
        if !available.contains(&resources) {
            return Err(format!(
                "Task uses more resources {resources} than available {available}"
            ));
        }
        Ok(resources)
    }

    fn launch(
        &mut self,
        framework_id: &str,
        agent_id: &str,
        task: TaskInfo,
        executor: Option<api::ExecutorInfo>,
        resources: Resources,
    ) {
        let mut task = task;
        if task.executor.is_none() {
            task.executor = executor;
        }
        // Mesos fills in the executor's framework, which executors check against their own.
        if let Some(e) = task.executor.as_mut() {
            e.framework_id.get_or_insert_with(|| Id::new(framework_id));
        }
        let status = TaskStatus {
            task_id: task.task_id.clone(),
            state: TaskState::Staging,
            source: Some(Source::Master),
            agent_id: Some(Id::new(agent_id)),
            timestamp: Some(api::now_secs()),
            ..TaskStatus::default()
        };
        let record = Task {
            framework_id: framework_id.to_string(),
            state: TaskState::Staging,
            resources: resources.clone(),
            statuses: vec![status],
            executor_id: task.executor.as_ref().map(|e| e.executor_id.value.clone()),
            info: task.clone(),
        };
        // Rendered only for operator-API subscribers, and before the record is stored.
        let added = (!self.subscribers.is_empty()).then(|| {
            json!({"type": "TASK_ADDED", "task_added": {"task": crate::master::views::task_v1(&record)}})
        });
        let Some(fw) = self.frameworks.get_mut(framework_id) else {
            return;
        };
        let task_id = task.task_id.value.clone();
        fw.used = fw.used.add(&resources);
        fw.tasks.insert(task_id.clone(), record);
        let info = fw.info.clone();
        if let Some(agent) = self.agents.get_mut(agent_id) {
            agent.used = agent.used.add(&resources);
            agent.send(AgentEvent::RunTask {
                framework: info,
                task,
            });
        }
        self.count("master/tasks_launched");
        if let Some(added) = added {
            self.publish(added);
        }
        tracing::info!(framework_id, agent_id, task_id, "launching task");
    }

    /// KILL.
    pub fn kill(
        &mut self,
        framework_id: &str,
        task_id: &Id,
        agent_id: Option<&Id>,
        grace_period_ns: Option<i64>,
    ) {
        let found = self
            .frameworks
            .get(framework_id)
            .and_then(|f| f.tasks.get(&task_id.value))
            .map(|t| t.info.agent_id.value.clone());
        match found {
            Some(agent_id) => {
                if let Some(agent) = self.agents.get_mut(&agent_id) {
                    if agent.active() {
                        agent.send(AgentEvent::KillTask {
                            framework_id: Id::new(framework_id),
                            task_id: task_id.clone(),
                            grace_period_ns,
                        });
                        return;
                    }
                }
                // The agent is not reachable: the kill is answered by reconciliation later.
                let state = self
                    .frameworks
                    .get(framework_id)
                    .and_then(|f| f.tasks.get(&task_id.value))
                    .map(|t| t.latest_status(&agent_id));
                if let Some(st) = state {
                    self.send_update(framework_id, st);
                }
            }
            None => {
                let agent = agent_id.map(|a| a.value.clone());
                self.send_update(
                    framework_id,
                    master_status(
                        task_id,
                        agent.as_deref(),
                        TaskState::Lost,
                        Reason::Reconciliation,
                        "Attempted to kill an unknown task".into(),
                    ),
                );
            }
        }
    }

    /// RECONCILE: explicit (the given tasks) or implicit (every task of the framework).
    pub fn reconcile(&mut self, framework_id: &str, tasks: &[(Id, Option<Id>)]) {
        let Some(fw) = self.frameworks.get(framework_id) else {
            return;
        };
        let mut updates = Vec::new();
        if tasks.is_empty() {
            for t in fw.tasks.values() {
                let mut st = t.latest_status(&t.info.agent_id.value);
                st.uuid = None;
                st.reason = Some(Reason::Reconciliation);
                updates.push(st);
            }
        } else {
            for (task_id, agent_id) in tasks {
                match fw.tasks.get(&task_id.value) {
                    Some(t) => {
                        let mut st = t.latest_status(&t.info.agent_id.value);
                        st.uuid = None;
                        st.reason = Some(Reason::Reconciliation);
                        updates.push(st);
                    }
                    None => {
                        // As Mesos: nothing while the task's agent (or, without an agent id,
                        // any agent) is recovered from the registry and not re-registered
                        // yet. After a failover the agent is about to report its tasks.
                        let transitioning = match agent_id {
                            Some(a) => self.recovered_agents.contains_key(&a.value),
                            None => !self.recovered_agents.is_empty(),
                        };
                        if transitioning {
                            continue;
                        }
                        let completed = fw
                            .completed_tasks
                            .iter()
                            .rev()
                            .find(|t| t.info.task_id == *task_id);
                        let st = match completed {
                            Some(t) => {
                                let mut st = t.latest_status(&t.info.agent_id.value);
                                st.uuid = None;
                                st.reason = Some(Reason::Reconciliation);
                                st
                            }
                            None => master_status(
                                task_id,
                                agent_id.as_ref().map(|a| a.value.as_str()),
                                TaskState::Lost,
                                Reason::Reconciliation,
                                "Reconciliation: Task is unknown".into(),
                            ),
                        };
                        updates.push(st);
                    }
                }
            }
        }
        for st in updates {
            if let Some(fw) = self.frameworks.get_mut(framework_id) {
                fw.send(&status_update_event(&st));
            }
        }
    }

    /// ACKNOWLEDGE: relayed to the agent, which stops retrying the update.
    pub fn acknowledge(&mut self, framework_id: &str, agent_id: &Id, task_id: &Id, uuid: String) {
        if let Some(agent) = self.agents.get_mut(&agent_id.value) {
            agent.send(AgentEvent::Acknowledge {
                framework_id: Id::new(framework_id),
                task_id: task_id.clone(),
                uuid,
            });
        }
    }

    /// MESSAGE: relayed to the executor's agent.
    pub fn framework_message(
        &mut self,
        framework_id: &str,
        agent_id: &Id,
        executor_id: &Id,
        data: String,
    ) {
        if let Some(agent) = self.agents.get_mut(&agent_id.value) {
            agent.send(AgentEvent::FrameworkMessage {
                framework_id: Id::new(framework_id),
                executor_id: executor_id.clone(),
                data,
            });
        }
    }

    /// An executor's message, relayed to its framework's scheduler as a MESSAGE event.
    pub fn executor_message(
        &mut self,
        framework_id: &str,
        agent_id: &Id,
        executor_id: &Id,
        data: String,
    ) {
        self.count("master/messages_executor_to_framework");
        if let Some(fw) = self.frameworks.get_mut(framework_id) {
            fw.send(&json!({"type": "MESSAGE", "message": {"agent_id": agent_id, "executor_id": executor_id, "data": data}}));
        }
    }

    // === agents ===

    /// The id of a (re-)subscribing agent: the one it had, or a new one.
    pub fn agent_id_for(&mut self, agent_id: Option<Id>) -> String {
        if let Some(id) = agent_id.map(|a| a.value).filter(|a| !a.is_empty()) {
            return id;
        }
        // A new id is one no agent holds, even one that named itself in this form.
        loop {
            self.next_id += 1;
            let id = format!("{}-S{}", self.id, self.next_id);
            if !self.agents.contains_key(&id) && !self.recovered_agents.contains_key(&id) {
                return id;
            }
        }
    }

    /// Whether an agent may subscribe from `peer` with `agent_id` and `info`. Its hostname
    /// is an IP address or a DNS name (nothing Admin Router could read as another address);
    /// an address it declares is the one it connects from (Admin Router proxies
    /// `/agent/<id>/` there); and a known agent's id (connected, disconnected or recovered
    /// from the registry) is taken only by the agent at that agent's address, as a Mesos
    /// agent whose address changed must register anew. The message says why not.
    pub fn check_agent_subscriber(
        &self,
        agent_id: Option<&Id>,
        info: &AgentInfo,
        peer: Option<IpAddr>,
    ) -> Result<(), String> {
        let declared = info.hostname.parse::<IpAddr>().ok();
        if declared.is_none() && !dns_name(&info.hostname) {
            return Err(format!(
                "Agent hostname {:?} is neither an IP address nor a DNS name",
                info.hostname
            ));
        }
        let same_host = |a: IpAddr, b: IpAddr| a == b || (a.is_loopback() && b.is_loopback());
        if let (Some(declared), Some(peer)) = (declared, peer) {
            if !same_host(declared, peer) {
                return Err(format!(
                    "Agent declares address {declared} but connects from {peer}"
                ));
            }
        }
        let Some(id) = agent_id else {
            return Ok(());
        };
        let known = match (
            self.agents.get(&id.value),
            self.recovered_agents.get(&id.value),
        ) {
            (Some(a), _) => Some((&a.info, a.peer)),
            (None, Some(info)) => Some((info, None)),
            (None, None) => None,
        };
        let Some((was, was_peer)) = known else {
            return Ok(());
        };
        // Exact addresses here: two agents on one host's loopback addresses are different.
        let moved = was_peer.zip(peer).is_some_and(|(a, b)| a != b)
            || was.hostname != info.hostname
            || was.port != info.port;
        if moved {
            return Err(format!(
                "Agent {} is registered at {}:{}; refusing its id from another address",
                id.value, was.hostname, was.port
            ));
        }
        Ok(())
    }

    /// An agent (re-)subscribes. Returns its id, the session token, and its event stream.
    pub fn agent_subscribe(
        &mut self,
        agent_id: Option<Id>,
        info: AgentInfo,
        tasks: Vec<TaskReport>,
        total: Resources,
    ) -> (String, u64, mpsc::Receiver<AgentEvent>) {
        let (tx, rx) = mpsc::channel(STREAM_BUFFER);
        let now = api::now_secs();
        let id = self.agent_id_for(agent_id);
        self.recovered_agents.remove(&id);
        let session = {
            self.next_id += 1;
            self.next_id
        };
        let reregistered = match self.agents.get_mut(&id) {
            Some(agent) => {
                // Offers on the old connection are void.
                agent.info = info.clone();
                agent.total = total;
                agent.tx = Some(tx.clone());
                agent.session = session;
                agent.disconnected_at = None;
                agent.unreachable = false;
                agent.reregistered_time = Some(now);
                true
            }
            None => {
                self.agents.insert(
                    id.clone(),
                    Agent {
                        id: id.clone(),
                        info: info.clone(),
                        total,
                        used: Resources::default(),
                        offered: Resources::default(),
                        tx: Some(tx.clone()),
                        session,
                        registered_time: now,
                        reregistered_time: None,
                        disconnected_at: None,
                        unreachable: false,
                        peer: None,
                    },
                );
                false
            }
        };
        let stale: Vec<String> = self
            .offers
            .values()
            .filter(|o| o.agent_id == id)
            .map(|o| o.id.clone())
            .collect();
        for o in stale {
            self.remove_offer(&o, true);
        }
        self.adopt_tasks(&id, tasks);
        let _ = tx.try_send(AgentEvent::Registered {
            agent_id: Id::new(&id),
            master_id: self.id.clone(),
        });
        self.count(if reregistered {
            "master/slave_reregistrations"
        } else {
            "master/slave_registrations"
        });
        self.publish(json!({"type": "AGENT_ADDED", "agent_added": {"agent": crate::master::views::agent_v1(&self.agents[&id])}}));
        tracing::info!(agent_id = %id, hostname = %info.hostname, reregistered, "agent subscribed");
        (id, session, rx)
    }

    /// Takes the agent's word for what runs on it (after a master or agent restart).
    fn adopt_tasks(&mut self, agent_id: &str, reports: Vec<TaskReport>) {
        let reported: HashSet<(String, String)> = reports
            .iter()
            .filter_map(|r| {
                r.framework
                    .id
                    .as_ref()
                    .map(|f| (f.value.clone(), r.task.task_id.value.clone()))
            })
            .collect();
        // Tasks the master thinks run there but the agent does not know are gone.
        let missing: Vec<(String, Id)> = self
            .frameworks
            .values()
            .flat_map(|f| {
                f.tasks
                    .values()
                    .filter(|t| t.info.agent_id.value == agent_id)
                    .map(move |t| (f.id().to_string(), t.info.task_id.clone()))
            })
            .filter(|(f, t)| !reported.contains(&(f.clone(), t.value.clone())))
            .collect();
        for (fw, task_id) in missing {
            let st = master_status(
                &task_id,
                Some(agent_id),
                TaskState::Lost,
                Reason::AgentRemoved,
                "Task was not found on the re-registered agent".into(),
            );
            self.apply_update(&fw, st);
        }
        let mut used = Resources::default();
        for report in reports {
            let Some(fw_id) = report.framework.id.clone().map(|i| i.value) else {
                continue;
            };
            if TaskState::is_terminal(report.state) {
                continue;
            }
            let resources = Resources::from_api(&report.task.resources).unwrap_or_default();
            used = used.add(&resources);
            let fw = self.frameworks.entry(fw_id.clone()).or_insert_with(|| {
                let mut f = new_framework(
                    report.framework.clone(),
                    Stream {
                        id: String::new(),
                        tx: mpsc::channel(1).0,
                    },
                    api::now_secs(),
                );
                f.stream = None;
                f.recovered = true;
                f.disconnected_at = Some(Instant::now());
                f
            });
            let task_id = report.task.task_id.value.clone();
            if !fw.tasks.contains_key(&task_id) {
                fw.used = fw.used.add(&resources);
            }
            let statuses = report.status.clone().into_iter().collect();
            fw.tasks.insert(
                task_id,
                Task {
                    framework_id: fw_id,
                    state: report.state.clone(),
                    resources,
                    statuses,
                    executor_id: report
                        .task
                        .executor
                        .as_ref()
                        .map(|e| e.executor_id.value.clone()),
                    info: report.task,
                },
            );
        }
        if let Some(agent) = self.agents.get_mut(agent_id) {
            agent.used = used;
        }
    }

    /// The agent's stream ended.
    pub fn agent_disconnected(&mut self, agent_id: &str, session: u64) {
        let Some(agent) = self.agents.get_mut(agent_id) else {
            return;
        };
        if agent.session != session {
            return;
        }
        agent.tx = None;
        agent.disconnected_at = Some(Instant::now());
        tracing::warn!(agent_id, "agent disconnected");
        let offers: Vec<String> = self
            .offers
            .values()
            .filter(|o| o.agent_id == agent_id)
            .map(|o| o.id.clone())
            .collect();
        for o in offers {
            self.remove_offer(&o, true);
        }
    }

    /// Marks agents disconnected for longer than `timeout` unreachable, reporting their tasks
    /// TASK_UNREACHABLE (partition-aware frameworks) or TASK_LOST. Returns their ids.
    pub fn mark_unreachable(&mut self, timeout: Duration) -> Vec<String> {
        let now = Instant::now();
        let lost: Vec<String> = self
            .agents
            .values()
            .filter(|a| {
                !a.unreachable
                    && a.disconnected_at
                        .is_some_and(|at| now.duration_since(at) >= timeout)
            })
            .map(|a| a.id.clone())
            .collect();
        for agent_id in &lost {
            let agent_id = agent_id.clone();
            tracing::warn!(agent_id, "agent unreachable");
            if let Some(a) = self.agents.get_mut(&agent_id) {
                a.unreachable = true;
            }
            let tasks: Vec<(String, Id, bool)> =
                self.frameworks
                    .values()
                    .flat_map(|f| {
                        let aware = f.info.capabilities.iter().any(|c| {
                            c.get("type").and_then(Value::as_str) == Some("PARTITION_AWARE")
                        });
                        f.tasks
                            .values()
                            .filter(|t| t.info.agent_id.value == agent_id)
                            .map(move |t| (f.id().to_string(), t.info.task_id.clone(), aware))
                    })
                    .collect();
            for (fw, task_id, aware) in tasks {
                let state = if aware {
                    TaskState::Unreachable
                } else {
                    TaskState::Lost
                };
                let st = master_status(
                    &task_id,
                    Some(&agent_id),
                    state,
                    Reason::AgentRemoved,
                    "Agent is unreachable".into(),
                );
                self.apply_update(&fw, st);
            }
            self.publish(json!({"type": "AGENT_REMOVED", "agent_removed": {"agent_id": {"value": agent_id}}}));
        }
        lost
    }

    /// A status update from an agent (or made by the master): record it and forward it.
    pub fn apply_update(&mut self, framework_id: &str, status: TaskStatus) {
        let task_key = status.task_id.value.clone();
        let agent_id = status.agent_id.as_ref().map(|a| a.value.clone());
        if let Some(fw) = self.frameworks.get_mut(framework_id) {
            if let Some(task) = fw.tasks.get_mut(&task_key) {
                // TASK_UNREACHABLE keeps the task (it may come back); other terminal states end it.
                task.state = status.state.clone();
                let mut short = status.clone();
                short.uuid = None;
                task.statuses.push(short);
                if task.statuses.len() > 20 {
                    task.statuses.remove(0);
                }
                if TaskState::is_terminal(status.state) {
                    if let Some(done) = fw.tasks.remove(&task_key) {
                        fw.used = fw.used.sub(&done.resources);
                        if let Some(agent) = agent_id.as_ref().and_then(|a| self.agents.get_mut(a))
                        {
                            agent.used = agent.used.sub(&done.resources);
                        }
                        fw.completed_tasks.push_back(done);
                        while fw.completed_tasks.len() > MAX_COMPLETED_TASKS {
                            fw.completed_tasks.pop_front();
                        }
                    }
                }
            }
        }
        let key = match status.state {
            TaskState::Finished => "master/tasks_finished",
            TaskState::Failed => "master/tasks_failed",
            TaskState::Killed => "master/tasks_killed",
            TaskState::Lost => "master/tasks_lost",
            TaskState::Error => "master/tasks_error",
            TaskState::Unreachable => "master/tasks_unreachable",
            _ => "master/status_updates",
        };
        self.count(key);
        self.send_update(framework_id, status);
    }
}

fn new_framework(info: FrameworkInfo, stream: Stream, now: f64) -> Framework {
    Framework {
        info,
        stream: Some(stream),
        active: true,
        suppressed: false,
        registered_time: now,
        reregistered_time: None,
        disconnected_at: None,
        tasks: BTreeMap::new(),
        completed_tasks: VecDeque::new(),
        offers: HashSet::new(),
        used: Resources::default(),
        offered: Resources::default(),
        recovered: false,
    }
}
