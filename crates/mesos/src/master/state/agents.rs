//! Agents: who may subscribe as which agent, (re-)registration with the tasks an agent
//! reports, the calls of registered agents, a stream's end, and unreachability.

use std::collections::HashSet;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use dcos_mesos_api::operator;

use crate::api::{self, Id, Reason, TaskState, TaskStatus};
use crate::protocol::{AgentEvent, AgentInfo, TaskReport};
use crate::resources::Resources;
use crate::scheduler::{events, Event};

use super::{master_status, scalars, CallError, Framework, Master, Outbound, Task};

/// An agent.
#[derive(Debug)]
pub struct Agent {
    /// Its id.
    pub(in crate::master) id: String,
    /// What it said about itself.
    pub(in crate::master) info: AgentInfo,
    /// Its total resources.
    pub(in crate::master) total: Resources,
    /// Resources of its non-terminal tasks.
    pub(in crate::master) used: Resources,
    /// Resources in outstanding offers.
    pub(in crate::master) offered: Resources,
    /// Its outstanding offers.
    pub(in crate::master) offers: HashSet<String>,
    /// Whether its event stream is open.
    pub(in crate::master) connected: bool,
    /// A token that grows with each (re-)subscription, so a stale stream's end is ignored.
    pub(in crate::master) session: u64,
    /// Seconds since the epoch.
    pub(in crate::master) registered_time: f64,
    /// Seconds since the epoch, when it re-registered.
    pub(in crate::master) reregistered_time: Option<f64>,
    /// When its stream ended.
    pub(in crate::master) disconnected_at: Option<Instant>,
    /// Marked unreachable (its tasks were reported so).
    pub(in crate::master) unreachable: bool,
    /// The address its subscription connected from (none for in-process callers).
    pub(in crate::master) peer: Option<IpAddr>,
}

impl Agent {
    /// Whether it is connected and can be offered.
    pub fn active(&self) -> bool {
        self.connected && !self.unreachable
    }

    /// `slave(1)@ip:port`.
    pub fn pid(&self) -> String {
        format!("slave(1)@{}:{}", self.info.hostname, self.info.port)
    }

    /// Its text attributes in the v1 form.
    pub(in crate::master) fn attributes_v1(&self) -> Vec<api::Attribute> {
        self.info
            .attributes
            .iter()
            .map(|(name, value)| api::Attribute {
                name: name.clone(),
                kind: "TEXT".into(),
                text: Some(api::Text {
                    value: value.clone(),
                }),
                ..api::Attribute::default()
            })
            .collect()
    }
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

impl Master {
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

    /// An agent (re-)subscribes from `peer` on a new stream. Returns its id and the
    /// subscription's token (see [`Master::agent_disconnected`]).
    pub fn agent_subscribe(
        &mut self,
        agent_id: Option<Id>,
        info: AgentInfo,
        tasks: Vec<TaskReport>,
        total: Resources,
        peer: Option<IpAddr>,
    ) -> (String, u64) {
        let now = api::now_secs();
        let id = self.agent_id_for(agent_id);
        self.recovered_agents.remove(&id);
        self.next_id += 1;
        let session = self.next_id;
        // Offers on the old connection are void.
        self.remove_agent_offers(&id, true);
        let hostname = info.hostname.clone();
        let reregistered = match self.agents.get_mut(&id) {
            Some(agent) => {
                agent.info = info;
                agent.total = total;
                agent.session = session;
                agent.disconnected_at = None;
                agent.unreachable = false;
                agent.reregistered_time = Some(now);
                agent.peer = peer;
                true
            }
            None => {
                let agent = Agent {
                    id: id.clone(),
                    info,
                    total,
                    used: Resources::default(),
                    offered: Resources::default(),
                    offers: HashSet::new(),
                    connected: false,
                    session,
                    registered_time: now,
                    reregistered_time: None,
                    disconnected_at: None,
                    unreachable: false,
                    peer,
                };
                self.agents.insert(id.clone(), agent);
                false
            }
        };
        self.adopt_tasks(&id, tasks);
        if let Some(agent) = self.agents.get_mut(&id) {
            agent.connected = true;
            self.outbox.push(Outbound::OpenAgent {
                agent_id: id.clone(),
                session,
            });
            let registered = AgentEvent::Registered {
                agent_id: Id::new(&id),
                master_id: self.id.clone(),
            };
            self.outbox.agent(agent, registered);
            self.outbox.operator(|| {
                operator::Event::AgentAdded(Box::new(operator::AgentAdded {
                    agent: crate::master::views::agent_v1(agent),
                }))
            });
        }
        self.count(if reregistered {
            "master/slave_reregistrations"
        } else {
            "master/slave_registrations"
        });
        tracing::info!(agent_id = %id, %hostname, reregistered, "agent subscribed");
        (id, session)
    }

    /// Takes the agent's word for what runs on it (after a master or agent restart).
    fn adopt_tasks(&mut self, agent_id: &str, reports: Vec<TaskReport>) {
        let reported: HashSet<(&str, &str)> = reports
            .iter()
            .filter_map(|r| {
                let fw = r.framework.id.as_ref()?;
                Some((fw.value.as_str(), r.task.task_id.value.as_str()))
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
                    .filter(|t| !reported.contains(&(f.id(), t.info.task_id.value.as_str())))
                    .map(move |t| (f.id().to_string(), t.info.task_id.clone()))
            })
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
        for mut report in reports {
            let Some(fw_id) = report.framework.id.clone().map(|i| i.value) else {
                continue;
            };
            if report.state.is_terminal() {
                // Its terminal update is on its way; until then the task holds its resources.
                let known = self
                    .frameworks
                    .get(&fw_id)
                    .and_then(|f| f.tasks.get(&report.task.task_id.value));
                if let Some(known) = known {
                    used = used.add(&known.resources);
                }
                continue;
            }
            let resources = Resources::from_api(&report.task.resources).unwrap_or_default();
            used = used.add(&resources);
            let now = self.now();
            let fw = self.frameworks.entry(fw_id.clone()).or_insert_with(|| {
                let mut f = Framework::new(report.framework.clone(), api::now_secs());
                f.recovered = true;
                f.disconnected_at = Some(now);
                f
            });
            // It runs where it is reported from.
            report.task.agent_id = Id::new(agent_id);
            fw.used = fw.used.add(&scalars(&resources));
            let task = Task {
                framework_id: fw_id,
                state: report.state,
                resources,
                statuses: report.status.into_iter().collect(),
                executor_id: report
                    .task
                    .executor
                    .as_ref()
                    .map(|e| e.executor_id.value.clone()),
                info: report.task,
            };
            if let Some(known) = fw.tasks.insert(task.info.task_id.value.clone(), task) {
                fw.used = fw.used.sub(&scalars(&known.resources));
                if known.info.agent_id.value != agent_id {
                    if let Some(was) = self.agents.get_mut(&known.info.agent_id.value) {
                        was.used = was.used.sub(&known.resources);
                    }
                }
            }
        }
        if let Some(agent) = self.agents.get_mut(agent_id) {
            agent.used = used;
        }
    }

    /// The agent's stream ended (or could not take more events). The end of a stream that
    /// was already replaced (`session` is not the agent's) changes nothing.
    pub fn agent_disconnected(&mut self, agent_id: &str, session: u64) {
        let now = self.now();
        let Some(agent) = self.agents.get_mut(agent_id) else {
            return;
        };
        if agent.session != session || !agent.connected {
            return;
        }
        agent.connected = false;
        agent.disconnected_at = Some(now);
        self.outbox.push(Outbound::CloseAgent {
            agent_id: agent_id.to_string(),
        });
        tracing::warn!(agent_id, "agent disconnected");
        self.remove_agent_offers(agent_id, true);
    }

    /// Marks agents disconnected for longer than `timeout` unreachable, reporting their tasks
    /// TASK_UNREACHABLE (partition-aware frameworks) or TASK_LOST. Returns their ids.
    pub fn mark_unreachable(&mut self, timeout: Duration) -> Vec<String> {
        let now = self.now();
        let mut lost: Vec<String> = self
            .agents
            .values()
            .filter(|a| {
                !a.unreachable
                    && a.disconnected_at
                        .is_some_and(|at| now.duration_since(at) >= timeout)
            })
            .map(|a| a.id.clone())
            .collect();
        lost.sort();
        for agent_id in &lost {
            tracing::warn!(agent_id, "agent unreachable");
            if let Some(a) = self.agents.get_mut(agent_id) {
                a.unreachable = true;
            }
            let tasks: Vec<(String, Id, bool)> = self
                .frameworks
                .values()
                .flat_map(|f| {
                    let aware = f.partition_aware();
                    f.tasks
                        .values()
                        .filter(|t| t.info.agent_id.value == *agent_id)
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
                    Some(agent_id),
                    state,
                    Reason::AgentRemoved,
                    "Agent is unreachable".into(),
                );
                self.apply_update(&fw, st);
            }
            self.outbox.operator(|| {
                operator::Event::AgentRemoved(operator::AgentRemoved {
                    agent_id: Id::new(agent_id),
                })
            });
        }
        lost
    }

    /// Calls other than SUBSCRIBE come from agents with an open stream only, over a
    /// connection from the address the agent subscribed from (agent ids are public in
    /// `/master/state`).
    fn check_agent_caller(&self, agent_id: &Id, peer: Option<IpAddr>) -> Result<(), CallError> {
        let refused = |why: &str| Err(CallError::Forbidden(format!("Agent {agent_id} {why}")));
        match self.agents.get(&agent_id.value) {
            Some(a) if a.active() => match (a.peer, peer) {
                (Some(subscribed), Some(now)) if subscribed != now => {
                    refused("is registered from another address")
                }
                _ => Ok(()),
            },
            _ => refused("is not registered"),
        }
    }

    /// An agent's UPDATE: a status of one of its own tasks, recorded and forwarded.
    pub fn agent_update(
        &mut self,
        agent_id: Id,
        framework_id: &Id,
        mut status: TaskStatus,
        peer: Option<IpAddr>,
    ) -> Result<(), CallError> {
        self.check_agent_caller(&agent_id, peer)?;
        let placed = self
            .frameworks
            .get(&framework_id.value)
            .and_then(|f| f.tasks.get(&status.task_id.value))
            .map(|t| &t.info.agent_id);
        if placed.is_some_and(|a| *a != agent_id) {
            return Err(CallError::Forbidden(format!(
                "Task {} does not run on agent {agent_id}",
                status.task_id
            )));
        }
        status.agent_id = Some(agent_id);
        self.apply_update(&framework_id.value, status);
        Ok(())
    }

    /// An agent's MESSAGE: an executor's message, relayed to its framework's scheduler.
    pub fn agent_message(
        &mut self,
        agent_id: Id,
        framework_id: &Id,
        executor_id: Id,
        data: String,
        peer: Option<IpAddr>,
    ) -> Result<(), CallError> {
        self.check_agent_caller(&agent_id, peer)?;
        self.count("master/messages_executor_to_framework");
        if let Some(fw) = self.frameworks.get(&framework_id.value) {
            let message = events::Message {
                agent_id,
                executor_id,
                data,
            };
            self.outbox.framework(fw, Event::Message(message));
        }
        Ok(())
    }
}
