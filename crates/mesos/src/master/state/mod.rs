//! The master as a state machine: frameworks, agents, offers and tasks, and every transition
//! between them.
//!
//! Nothing here does I/O. A transition (a scheduler call, an agent's call, a tick of the
//! clock) changes the state and records what the master sends because of it, in order, as
//! [`Outbound`] messages: events for a framework's stream, for an agent, for operator
//! subscribers, and which streams open and close. The caller takes them with
//! [`Master::take_outbox`] and delivers them ([`super::delivery::Core`] does, under the lock the
//! transition ran under, so every stream sees its events in the order they were made).
//!
//! The seams:
//! - [`frameworks`]: SUBSCRIBE, failover, disconnection, TEARDOWN, failover timeouts.
//! - [`agents`]: agents (re-)registering, the tasks they report, their calls, their
//!   disconnection and unreachability, the registry's recovered agents.
//! - [`offers`]: offers, filters, DECLINE / REVIVE / SUPPRESS, allocation cycles.
//! - [`tasks`]: ACCEPT (launches), KILL, SHUTDOWN, status updates and acknowledgements,
//!   messages between schedulers and executors.
//! - [`reconcile`]: the answers to RECONCILE.
//!
//! Views and the allocator read the state through `&Master` (accessors here, and the
//! read-only fields of [`Framework`], [`Agent`], [`Task`] and [`Offer`]); only transitions
//! change it.

mod agents;
mod frameworks;
mod offers;
mod reconcile;
mod tasks;

#[cfg(test)]
mod proptests;
#[cfg(test)]
pub(in crate::master) mod testing;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::{Duration, Instant};

use dcos_mesos_api::operator;
use serde_json::{json, Value};

use crate::api::{self, Id, Reason, Source, TaskState, TaskStatus};
use crate::protocol::{AgentEvent, AgentInfo};
use crate::resources::Resources;
use crate::scheduler::{CallBody, Event};

pub use agents::Agent;
pub use frameworks::Framework;
pub use offers::Offer;
pub use tasks::Task;

/// How many completed tasks a framework keeps (Mesos's `max_completed_tasks_per_framework`).
const MAX_COMPLETED_TASKS: usize = 1000;
/// How many completed frameworks the master keeps.
const MAX_COMPLETED_FRAMEWORKS: usize = 50;
/// Default DECLINE/ACCEPT refusal.
pub const DEFAULT_REFUSE: Duration = Duration::from_secs(5);

/// What the master sends, in the order a transition made it.
#[expect(
    clippy::large_enum_variant,
    reason = "most messages are framework events; boxing them would allocate for each"
)]
#[derive(Clone, Debug, PartialEq)]
pub enum Outbound {
    /// From now on the framework's events go to the stream its SUBSCRIBE opened as
    /// `stream_id`; the framework's earlier stream ends.
    OpenFramework {
        /// The framework.
        framework_id: String,
        /// The new stream's `Mesos-Stream-Id`.
        stream_id: String,
    },
    /// The framework's stream ends.
    CloseFramework {
        /// The framework.
        framework_id: String,
    },
    /// An event on the framework's stream.
    Framework {
        /// The framework.
        framework_id: String,
        /// The event.
        event: Event,
    },
    /// From now on the agent's events go to the stream its SUBSCRIBE opened; its earlier
    /// stream ends.
    OpenAgent {
        /// The agent.
        agent_id: String,
        /// The subscription's token.
        session: u64,
    },
    /// The agent's stream ends.
    CloseAgent {
        /// The agent.
        agent_id: String,
    },
    /// An event for the agent.
    Agent {
        /// The agent.
        agent_id: String,
        /// The event.
        event: Box<AgentEvent>,
    },
    /// An event for every operator subscriber.
    Operator(operator::Event),
}

/// What transitions have sent and not yet handed over.
#[derive(Debug, Default)]
struct Outbox {
    sent: Vec<Outbound>,
    /// Whether anyone subscribes to operator events (they are made only then).
    operators: bool,
}

impl Outbox {
    fn push(&mut self, out: Outbound) {
        self.sent.push(out);
    }

    /// An event for `fw`'s stream, if it has one.
    fn framework(&mut self, fw: &Framework, event: Event) {
        if fw.stream.is_some() {
            self.sent.push(Outbound::Framework {
                framework_id: fw.id().to_string(),
                event,
            });
        }
    }

    /// An event for `agent`, if it is connected.
    fn agent(&mut self, agent: &Agent, event: AgentEvent) {
        if agent.connected {
            self.sent.push(Outbound::Agent {
                agent_id: agent.id.clone(),
                event: Box::new(event),
            });
        }
    }

    /// An operator event, rendered only when someone subscribes.
    fn operator(&mut self, event: impl FnOnce() -> operator::Event) {
        if self.operators {
            self.sent.push(Outbound::Operator(event()));
        }
    }
}

/// Where the master's time comes from: the system's, or (in tests) a clock moved by hand.
#[derive(Clone, Copy, Debug)]
enum Clock {
    System,
    #[cfg_attr(not(test), allow(dead_code))]
    Manual(Instant),
}

/// Scheduler-call failures, with Mesos's status and text.
#[derive(Debug, PartialEq, Eq)]
pub enum CallError {
    /// 400.
    BadRequest(String),
    /// 403.
    Forbidden(String),
}

impl CallError {
    /// 400 `Failed to validate scheduler::Call: <why>`.
    pub(in crate::master) fn invalid(why: impl std::fmt::Display) -> CallError {
        CallError::BadRequest(format!("Failed to validate scheduler::Call: {why}"))
    }
}

/// The whole master.
pub struct Master {
    id: String,
    ip: String,
    port: u16,
    cluster: String,
    start_time: f64,
    elected_time: Option<f64>,
    frameworks: HashMap<String, Framework>,
    /// Torn-down frameworks, newest last.
    completed_frameworks: VecDeque<Framework>,
    agents: HashMap<String, Agent>,
    /// Agents known from the registry that have not re-registered since the master started.
    recovered_agents: HashMap<String, AgentInfo>,
    offers: HashMap<String, Offer>,
    /// Offer filters: framework -> agent -> refused until.
    filters: HashMap<String, HashMap<String, Instant>>,
    /// Role weights for DRF.
    weights: HashMap<String, f64>,
    /// Counters for `/metrics/snapshot`.
    counters: BTreeMap<&'static str, u64>,
    /// How long recent allocation cycles took (`allocator/mesos/allocation_run_ms`).
    allocation_runs: Timer,
    next_id: u64,
    /// The sequence number of the next new framework (`<master id>-<seq>` as Mesos'
    /// `nextFrameworkId`): counted for the master's life, never derived from what it still
    /// keeps, so an id is never given twice.
    next_framework: u64,
    clock: Clock,
    outbox: Outbox,
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

/// `r` without its ports. A framework's sums span agents, whose ports are not comparable
/// (two agents offer the same port numbers); its ports are the union over its offers and
/// tasks, which views compute ([`Framework::used_resources`]).
fn scalars(r: &Resources) -> Resources {
    Resources {
        ports: dcos_ports::RangeSet::new(),
        ..*r
    }
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
            counters: BTreeMap::new(),
            allocation_runs: Timer::default(),
            next_id: 0,
            next_framework: 0,
            clock: Clock::System,
            outbox: Outbox::default(),
        }
    }

    // === the outbox and the clock ===

    /// What the transitions since the last call sent, oldest first.
    pub fn take_outbox(&mut self) -> Vec<Outbound> {
        std::mem::take(&mut self.outbox.sent)
    }

    /// Whether operator events are made: only while someone subscribes to them.
    pub fn watch_operators(&mut self, on: bool) {
        self.outbox.operators = on;
    }

    /// The master's now.
    pub fn now(&self) -> Instant {
        match self.clock {
            Clock::System => Instant::now(),
            Clock::Manual(now) => now,
        }
    }

    /// Moves the master's clock by hand (it stops following the system's).
    #[cfg(test)]
    pub fn advance(&mut self, by: Duration) {
        self.clock = Clock::Manual(self.now() + by);
    }

    fn count(&mut self, key: &'static str) {
        *self.counters.entry(key).or_default() += 1;
    }

    fn fresh_id(&mut self, prefix: &str) -> String {
        self.next_id += 1;
        format!("{}-{prefix}{}", self.id, self.next_id)
    }

    // === scheduler calls ===

    /// A scheduler call other than SUBSCRIBE (see [`Master::subscribe`]), from the stream
    /// `stream_id` of `framework_id`.
    pub fn scheduler_call(
        &mut self,
        framework_id: &Id,
        stream_id: Option<&str>,
        body: CallBody,
    ) -> Result<(), CallError> {
        let fw = framework_id.value.as_str();
        self.check_caller(fw, stream_id)?;
        match body {
            CallBody::Teardown => {
                self.teardown(fw);
            }
            CallBody::Accept(accept) => self.accept(fw, accept),
            CallBody::Decline(decline) => {
                self.decline(fw, &decline.offer_ids, decline.filters.as_ref())
            }
            CallBody::Revive => self.revive(fw),
            CallBody::Suppress => self.suppress(fw),
            CallBody::Kill(kill) => {
                let grace = kill
                    .kill_policy
                    .and_then(|p| p.grace_period)
                    .map(|g| g.nanoseconds);
                self.kill(fw, &kill.task_id, kill.agent_id.as_ref(), grace);
            }
            CallBody::Shutdown(shutdown) => self.shutdown_executor(fw, &shutdown),
            CallBody::Acknowledge(ack) => {
                use base64::Engine as _;
                let bytes = base64::engine::general_purpose::STANDARD.decode(&ack.uuid);
                if bytes.map(|b| b.len()) != Ok(16) {
                    return Err(CallError::invalid(format!(
                        "Not a valid UUID: '{}'",
                        ack.uuid
                    )));
                }
                self.acknowledge(fw, ack);
            }
            CallBody::Reconcile(reconcile) => self.reconcile(fw, &reconcile.tasks),
            CallBody::Message(message) => self.framework_message(fw, message),
            CallBody::Request(_) => {}
            CallBody::Subscribe(_)
            | CallBody::AcceptInverseOffers(_)
            | CallBody::DeclineInverseOffers(_) => {
                return Err(CallError::invalid(format!(
                    "Unsupported call type '{}'",
                    body.kind()
                )));
            }
        }
        Ok(())
    }

    // === the leader's life ===

    /// Takes the registry's agents (less the unreachable ones) as recovered: they are expected
    /// to re-register. The master leads from `now` (seconds since the epoch).
    pub fn recover(&mut self, agents: Vec<(String, AgentInfo)>, unreachable: &[String], now: f64) {
        for (id, info) in agents {
            if !unreachable.contains(&id) && !self.agents.contains_key(&id) {
                self.recovered_agents.insert(id, info);
            }
        }
        self.elected_time = Some(now);
    }

    /// Forgets the recovered agents that never re-registered; returns their ids.
    pub fn expire_recovered_agents(&mut self) -> Vec<String> {
        self.recovered_agents.drain().map(|(id, _)| id).collect()
    }

    /// Ends every stream (frameworks, agents): the master is stopping. Frameworks and agents
    /// see their stream end and reconnect elsewhere.
    pub fn close_streams(&mut self) {
        let offers: Vec<String> = self.offers.keys().cloned().collect();
        for id in offers {
            self.remove_offer(&id, false);
        }
        let now = self.now();
        for fw in self.frameworks.values_mut() {
            if fw.stream.take().is_some() {
                fw.disconnected_at = Some(now);
                self.outbox.push(Outbound::CloseFramework {
                    framework_id: fw.id().to_string(),
                });
            }
        }
        for agent in self.agents.values_mut() {
            if agent.connected {
                agent.connected = false;
                agent.disconnected_at = Some(now);
                self.outbox.push(Outbound::CloseAgent {
                    agent_id: agent.id.clone(),
                });
            }
        }
    }

    // === what views and the allocator read ===

    /// The master's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Its address.
    pub fn ip(&self) -> &str {
        &self.ip
    }

    /// The cluster's name.
    pub fn cluster(&self) -> &str {
        &self.cluster
    }

    /// Seconds since the epoch.
    pub fn start_time(&self) -> f64 {
        self.start_time
    }

    /// When this master was elected leader, if it leads.
    pub fn elected_time(&self) -> Option<f64> {
        self.elected_time
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

    /// The frameworks not torn down (including disconnected and recovered ones).
    pub fn frameworks(&self) -> impl Iterator<Item = &Framework> {
        self.frameworks.values()
    }

    /// A framework not torn down.
    pub fn framework(&self, id: &str) -> Option<&Framework> {
        self.frameworks.get(id)
    }

    /// Torn-down frameworks, oldest first.
    pub fn completed_frameworks(&self) -> &VecDeque<Framework> {
        &self.completed_frameworks
    }

    /// Every agent that registered with this master.
    pub fn agents(&self) -> impl Iterator<Item = &Agent> {
        self.agents.values()
    }

    /// An agent.
    pub fn agent(&self, id: &str) -> Option<&Agent> {
        self.agents.get(id)
    }

    /// Agents recovered from the registry that have not re-registered yet.
    pub fn recovered_agents(&self) -> impl Iterator<Item = (&String, &AgentInfo)> {
        self.recovered_agents.iter()
    }

    /// An outstanding offer.
    pub fn offer(&self, id: &str) -> Option<&Offer> {
        self.offers.get(id)
    }

    /// How many offers are outstanding.
    pub fn offer_count(&self) -> usize {
        self.offers.len()
    }

    /// The role's DRF weight.
    pub fn weight(&self, role: &str) -> f64 {
        self.weights.get(role).copied().unwrap_or(1.0)
    }

    /// Whether a DECLINE (or ACCEPT) filter keeps `agent_id`'s resources from `framework_id`
    /// at `now`.
    pub fn is_filtered(&self, framework_id: &str, agent_id: &str, now: Instant) -> bool {
        self.filters
            .get(framework_id)
            .and_then(|f| f.get(agent_id))
            .is_some_and(|until| *until > now)
    }

    /// The counters of `/metrics/snapshot`.
    pub fn counters(&self) -> &BTreeMap<&'static str, u64> {
        &self.counters
    }

    /// How long recent allocation cycles took.
    pub fn allocation_runs(&self) -> &Timer {
        &self.allocation_runs
    }
}
