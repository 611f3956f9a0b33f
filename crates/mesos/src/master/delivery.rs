//! The master's state machine behind its lock, with the streams its messages go to.
//!
//! A handler locks the [`Core`], runs one transition with [`Core::apply`], and the core
//! delivers what the transition sent ([`Outbound`]) before the lock is released: frameworks
//! get RecordIO-framed scheduler events, agents their [`AgentEvent`]s, operator subscribers
//! operator events, each stream in the order the master made them. A stream that is closed
//! or cannot take more (its reader is stuck) is a disconnection, which the core tells the
//! master as one more transition.

use std::collections::HashMap;
use std::ops::Deref;

use bytes::Bytes;
use dcos_mesos_api::operator;
use serde::Serialize;
use tokio::sync::mpsc::{self, Receiver, Sender};

use crate::protocol::AgentEvent;
use crate::recordio;
use crate::scheduler::Event;

use super::state::{Master, Outbound};

/// Buffered events per stream before its reader is considered stuck.
pub const STREAM_BUFFER: usize = 256 * 1024;
/// Operator event streams at most (Mesos' `--max_operator_event_stream_subscribers`).
pub const MAX_OPERATOR_SUBSCRIBERS: usize = 1000;

/// The master and its streams. Reading the master goes through `Deref`; changing it goes
/// through [`Core::apply`], which delivers what the change sent.
pub struct Core {
    master: Master,
    links: Links,
}

/// The open streams.
#[derive(Default)]
struct Links {
    /// Framework streams, by framework id.
    frameworks: HashMap<String, FrameworkLink>,
    /// Agent streams, by agent id.
    agents: HashMap<String, AgentLink>,
    /// Streams made for a SUBSCRIBE that is being handled, by `Mesos-Stream-Id`: the
    /// master's [`Outbound::OpenFramework`] takes one.
    opening_frameworks: HashMap<String, Sender<Bytes>>,
    /// The same for agents, by agent id.
    opening_agents: HashMap<String, Sender<AgentEvent>>,
    /// Operator subscribers.
    operators: Vec<Sender<Bytes>>,
}

struct FrameworkLink {
    stream_id: String,
    tx: Sender<Bytes>,
}

struct AgentLink {
    session: u64,
    tx: Sender<AgentEvent>,
}

/// One RecordIO record of `event`'s JSON.
fn frame(event: &impl Serialize) -> Bytes {
    match serde_json::to_vec(event) {
        Ok(json) => recordio::encode(&json),
        Err(e) => {
            tracing::error!(error = %e, "an event cannot be written as JSON");
            Bytes::new()
        }
    }
}

impl Deref for Core {
    type Target = Master;

    fn deref(&self) -> &Master {
        &self.master
    }
}

impl Core {
    /// The master, with no streams yet.
    pub fn new(master: Master) -> Core {
        Core {
            master,
            links: Links::default(),
        }
    }

    /// Runs one transition of the master and delivers what it sent.
    pub fn apply<R>(&mut self, transition: impl FnOnce(&mut Master) -> R) -> R {
        let result = transition(&mut self.master);
        self.deliver();
        result
    }

    /// A stream for the framework SUBSCRIBE being handled (`stream_id`), to be passed to a
    /// transition that opens it ([`Master::subscribe`]); unused, it ends with the transition.
    pub fn framework_stream(&mut self, stream_id: &str) -> Receiver<Bytes> {
        let (tx, rx) = mpsc::channel(STREAM_BUFFER);
        self.links
            .opening_frameworks
            .insert(stream_id.to_string(), tx);
        rx
    }

    /// The same for the agent SUBSCRIBE being handled ([`Master::agent_subscribe`]).
    pub fn agent_stream(&mut self, agent_id: &str) -> Receiver<AgentEvent> {
        let (tx, rx) = mpsc::channel(STREAM_BUFFER);
        self.links.opening_agents.insert(agent_id.to_string(), tx);
        rx
    }

    /// A new operator subscriber, whose stream starts with `first` (the SUBSCRIBED
    /// snapshot, taken under the same lock: no event falls between). Beyond
    /// [`MAX_OPERATOR_SUBSCRIBERS`] the oldest streams are closed, as Mesos does, so clients
    /// and proxies that never close their connections cannot grow the list without bound.
    pub fn operator_stream(&mut self, first: &operator::Event) -> Receiver<Bytes> {
        let (tx, rx) = mpsc::channel(STREAM_BUFFER);
        let _ = tx.try_send(frame(first));
        let operators = &mut self.links.operators;
        operators.retain(|s| !s.is_closed());
        if operators.len() >= MAX_OPERATOR_SUBSCRIBERS {
            let excess = operators.len() + 1 - MAX_OPERATOR_SUBSCRIBERS;
            operators.drain(..excess);
        }
        operators.push(tx);
        self.master.watch_operators(true);
        rx
    }

    /// Heartbeats every stream.
    pub fn heartbeat(&mut self) {
        let beat = frame(&Event::Heartbeat);
        for link in self.links.frameworks.values() {
            let _ = link.tx.try_send(beat.clone());
        }
        for link in self.links.agents.values() {
            let _ = link.tx.try_send(AgentEvent::Heartbeat);
        }
        self.publish(&operator::Event::Heartbeat);
    }

    /// Ends every stream: the master is stopping.
    pub fn close_streams(&mut self) {
        self.apply(Master::close_streams);
        self.links.operators.clear();
        self.master.watch_operators(false);
    }

    /// Delivers what the master sent, and what the disconnections found on the way make it
    /// send, until it has sent nothing more.
    fn deliver(&mut self) {
        loop {
            let sent = self.master.take_outbox();
            if sent.is_empty() {
                break;
            }
            for out in sent {
                self.deliver_one(out);
            }
        }
        // Streams made for a call that did not open them end here.
        self.links.opening_frameworks.clear();
        self.links.opening_agents.clear();
    }

    fn deliver_one(&mut self, out: Outbound) {
        match out {
            Outbound::OpenFramework {
                framework_id,
                stream_id,
            } => match self.links.opening_frameworks.remove(&stream_id) {
                Some(tx) => {
                    let link = FrameworkLink { stream_id, tx };
                    self.links.frameworks.insert(framework_id, link);
                }
                None => {
                    self.links.frameworks.remove(&framework_id);
                    self.master
                        .framework_disconnected(&framework_id, &stream_id);
                }
            },
            Outbound::CloseFramework { framework_id } => {
                self.links.frameworks.remove(&framework_id);
            }
            Outbound::Framework {
                framework_id,
                event,
            } => self.send_framework(&framework_id, &event),
            Outbound::OpenAgent { agent_id, session } => {
                match self.links.opening_agents.remove(&agent_id) {
                    Some(tx) => {
                        self.links
                            .agents
                            .insert(agent_id, AgentLink { session, tx });
                    }
                    None => {
                        self.links.agents.remove(&agent_id);
                        self.master.agent_disconnected(&agent_id, session);
                    }
                }
            }
            Outbound::CloseAgent { agent_id } => {
                self.links.agents.remove(&agent_id);
            }
            Outbound::Agent { agent_id, event } => self.send_agent(&agent_id, *event),
            Outbound::Operator(event) => self.publish(&event),
        }
    }

    fn send_framework(&mut self, framework_id: &str, event: &Event) {
        let Some(link) = self.links.frameworks.get(framework_id) else {
            return;
        };
        if link.tx.try_send(frame(event)).is_ok() {
            return;
        }
        tracing::warn!(
            framework_id,
            "framework stream closed or stuck; disconnecting it"
        );
        if let Some(link) = self.links.frameworks.remove(framework_id) {
            self.master
                .framework_disconnected(framework_id, &link.stream_id);
        }
    }

    fn send_agent(&mut self, agent_id: &str, event: AgentEvent) {
        let Some(link) = self.links.agents.get(agent_id) else {
            return;
        };
        if link.tx.try_send(event).is_ok() {
            return;
        }
        tracing::warn!(agent_id, "agent stream closed or stuck; disconnecting it");
        if let Some(link) = self.links.agents.remove(agent_id) {
            self.master.agent_disconnected(agent_id, link.session);
        }
    }

    /// Sends an operator event to every subscriber, dropping the ones that are gone.
    fn publish(&mut self, event: &operator::Event) {
        if self.links.operators.is_empty() {
            return;
        }
        let record = frame(event);
        self.links
            .operators
            .retain(|s| s.try_send(record.clone()).is_ok());
        if self.links.operators.is_empty() {
            self.master.watch_operators(false);
        }
    }
}
