//! Frameworks: SUBSCRIBE (and failover), the caller check of every other call, a stream's
//! end, TEARDOWN and the failover timeout.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use dcos_mesos_api::operator;
use dcos_ports::RangeSet;

use crate::api::{self, FrameworkInfo, Id, TaskState};
use crate::protocol::AgentEvent;
use crate::resources::Resources;
use crate::scheduler::{events, Event, Subscribed};

use super::{CallError, Master, Outbound, Task, MAX_COMPLETED_FRAMEWORKS, MAX_COMPLETED_TASKS};

/// A framework.
#[derive(Debug)]
pub struct Framework {
    /// Its info (with `id`).
    pub(in crate::master) info: FrameworkInfo,
    /// Its stream's `Mesos-Stream-Id` while connected.
    pub(in crate::master) stream: Option<String>,
    /// False once torn down.
    pub(in crate::master) active: bool,
    /// No offers while suppressed.
    pub(in crate::master) suppressed: bool,
    /// Seconds since the epoch.
    pub(in crate::master) registered_time: f64,
    /// Seconds since the epoch, when it re-subscribed.
    pub(in crate::master) reregistered_time: Option<f64>,
    /// When its stream ended, for the failover timeout.
    pub(in crate::master) disconnected_at: Option<Instant>,
    /// Non-terminal tasks, by task id.
    pub(in crate::master) tasks: BTreeMap<String, Task>,
    /// Terminal tasks, newest last.
    pub(in crate::master) completed_tasks: VecDeque<Task>,
    /// Its outstanding offers.
    pub(in crate::master) offers: HashSet<String>,
    /// Resources of its non-terminal tasks, less ports (see [`Framework::used_resources`]).
    pub(in crate::master) used: Resources,
    /// Resources in its outstanding offers, less ports.
    pub(in crate::master) offered: Resources,
    /// Known from an agent's report only, not re-subscribed yet.
    pub(in crate::master) recovered: bool,
}

impl Framework {
    pub(super) fn new(info: FrameworkInfo, now: f64) -> Framework {
        Framework {
            info,
            stream: None,
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

    /// The framework's id.
    pub fn id(&self) -> &str {
        self.info.id.as_ref().map_or("", |i| i.value.as_str())
    }

    /// Whether its stream is open.
    pub fn connected(&self) -> bool {
        self.stream.is_some()
    }

    /// The role it is allocated under.
    pub fn role(&self) -> &str {
        match (self.info.roles.first(), &self.info.role) {
            (Some(role), _) | (None, Some(role)) => role,
            (None, None) => "*",
        }
    }

    /// Resources of its non-terminal tasks, with the union of their ports.
    pub(in crate::master) fn used_resources(&self) -> Resources {
        let ports = self
            .tasks
            .values()
            .fold(RangeSet::new(), |acc, t| acc.union(&t.resources.ports));
        Resources {
            ports,
            ..self.used.clone()
        }
    }

    /// Resources in its outstanding offers, with the union of their ports.
    pub(in crate::master) fn offered_resources(&self, master: &Master) -> Resources {
        let ports = self
            .offers
            .iter()
            .filter_map(|id| master.offer(id))
            .fold(RangeSet::new(), |acc, o| acc.union(&o.resources.ports));
        Resources {
            ports,
            ..self.offered.clone()
        }
    }

    /// Whether it handles TASK_UNREACHABLE (else it hears TASK_LOST).
    pub(super) fn partition_aware(&self) -> bool {
        self.info
            .capabilities
            .iter()
            .any(|c| c.get("type").and_then(|t| t.as_str()) == Some("PARTITION_AWARE"))
    }

    /// Keeps `task` among the completed ones.
    pub(super) fn complete(&mut self, task: Task) {
        self.completed_tasks.push_back(task);
        while self.completed_tasks.len() > MAX_COMPLETED_TASKS {
            self.completed_tasks.pop_front();
        }
    }

    /// How an operator sees it.
    pub(in crate::master) fn to_operator(&self) -> operator::Framework {
        operator::Framework {
            framework_info: self.info.clone(),
            active: self.active,
            connected: self.connected(),
            recovered: self.recovered,
            registered_time: Some(operator::TimeInfo::from_secs(self.registered_time)),
        }
    }
}

impl Master {
    /// SUBSCRIBE: registers a new framework, or re-subscribes a known one on a new stream
    /// (`stream_id`): a failover, whose old stream hears ERROR and ends. Returns the
    /// framework's id. `call_framework_id` is the call's `framework_id`.
    pub fn subscribe(
        &mut self,
        call_framework_id: Option<&Id>,
        mut info: FrameworkInfo,
        stream_id: String,
    ) -> Result<String, CallError> {
        if call_framework_id != info.id.as_ref() {
            return Err(CallError::invalid(
                "'framework_id' differs from 'subscribe.framework_info.id'",
            ));
        }
        if info.user.is_empty() {
            return Err(CallError::invalid(
                "Expecting 'framework_info.user' to be present",
            ));
        }
        if info.name.is_empty() {
            return Err(CallError::invalid(
                "Expecting 'framework_info.name' to be present",
            ));
        }
        let now = api::now_secs();
        let id = match info.id.as_ref().map(|i| i.value.clone()) {
            Some(id) => {
                self.resubscribe(&id, info, now)?;
                id
            }
            None => {
                // Never an id a framework holds already (one may have re-subscribed with an
                // id this master had not issued yet).
                let id = loop {
                    let id = format!("{}-{:04}", self.id, self.next_framework);
                    self.next_framework += 1;
                    let taken = self.frameworks.contains_key(&id)
                        || self.completed_frameworks.iter().any(|f| f.id() == id);
                    if !taken {
                        break id;
                    }
                };
                info.id = Some(Id::new(&id));
                self.frameworks
                    .insert(id.clone(), Framework::new(info, now));
                self.count("master/messages_register_framework");
                id
            }
        };
        // Offers made to a previous connection are void; the new one never saw them.
        self.remove_framework_offers(&id, false);
        let master_info = self.master_info();
        let Some(fw) = self.frameworks.get_mut(&id) else {
            return Ok(id);
        };
        fw.stream = Some(stream_id.clone());
        self.outbox.push(Outbound::OpenFramework {
            framework_id: id.clone(),
            stream_id,
        });
        let subscribed = Subscribed {
            framework_id: Id::new(&id),
            heartbeat_interval_seconds: Some(crate::master::HEARTBEAT_SECS),
            master_info: Some(master_info),
        };
        self.outbox.framework(fw, Event::Subscribed(subscribed));
        self.outbox.operator(|| {
            operator::Event::FrameworkAdded(Box::new(operator::FrameworkAdded {
                framework: operator::Framework {
                    registered_time: None,
                    ..fw.to_operator()
                },
            }))
        });
        tracing::info!(framework_id = %id, name = %fw.info.name, "framework subscribed");
        Ok(id)
    }

    /// A SUBSCRIBE with the framework's id: a failover of a known framework, or one this
    /// master does not know (it restarted), which is accepted.
    fn resubscribe(&mut self, id: &str, info: FrameworkInfo, now: f64) -> Result<(), CallError> {
        if self.completed_frameworks.iter().any(|f| f.id() == id) {
            return Err(CallError::Forbidden(format!(
                "Framework {id} has been removed"
            )));
        }
        // An id this master would issue next cannot be claimed ahead of it.
        let unissued = id
            .strip_prefix(&format!("{}-", self.id))
            .and_then(|n| n.parse::<u64>().ok())
            .is_some_and(|n| n >= self.next_framework);
        if unissued && !self.frameworks.contains_key(id) {
            return Err(CallError::Forbidden(format!(
                "Framework {id} was never registered"
            )));
        }
        match self.frameworks.get_mut(id) {
            Some(fw) => {
                // An authenticated framework stays its principal's: another account cannot
                // take over its stream (and its tasks).
                if fw.info.principal.is_some() && fw.info.principal != info.principal {
                    return Err(CallError::Forbidden(format!(
                        "Framework {id} is registered by another principal"
                    )));
                }
                // The old connection hears ERROR; opening the new stream ends it.
                self.outbox.framework(
                    fw,
                    Event::Error(events::Error {
                        message: "Framework failed over".into(),
                    }),
                );
                fw.info = info;
                fw.disconnected_at = None;
                fw.reregistered_time = Some(now);
                fw.recovered = false;
                fw.active = true;
            }
            None => {
                self.frameworks
                    .insert(id.to_string(), Framework::new(info, now));
            }
        }
        self.count("master/messages_reregister_framework");
        Ok(())
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
            Some(s) if s != stream => Err(CallError::BadRequest(format!(
                "The stream ID '{s}' included in this request didn't match the stream ID currently associated with framework ID {framework_id}"
            ))),
            Some(_) => Ok(()),
        }
    }

    /// The framework's stream `stream_id` ended (the scheduler went away, or its stream
    /// could not take more events). Its offers are void; it has its failover timeout to
    /// come back. The end of a stream that was already replaced changes nothing.
    pub fn framework_disconnected(&mut self, framework_id: &str, stream_id: &str) {
        let now = self.now();
        let Some(fw) = self.frameworks.get_mut(framework_id) else {
            return;
        };
        if fw.stream.as_deref() != Some(stream_id) {
            return;
        }
        fw.stream = None;
        fw.disconnected_at = Some(now);
        self.outbox.push(Outbound::CloseFramework {
            framework_id: framework_id.to_string(),
        });
        tracing::info!(framework_id, "framework disconnected");
        self.remove_framework_offers(framework_id, true);
    }

    /// TEARDOWN (or failover timeout): kill the framework's tasks and forget it. False if
    /// no such framework runs.
    pub fn teardown(&mut self, framework_id: &str) -> bool {
        self.remove_framework_offers(framework_id, true);
        let Some(mut fw) = self.frameworks.remove(framework_id) else {
            return false;
        };
        let agent_ids: HashSet<&str> = fw
            .tasks
            .values()
            .map(|t| t.info.agent_id.value.as_str())
            .collect();
        for agent in agent_ids.into_iter().filter_map(|a| self.agents.get(a)) {
            self.outbox.agent(
                agent,
                AgentEvent::ShutdownFramework {
                    framework_id: Id::new(framework_id),
                },
            );
        }
        for (_, mut task) in std::mem::take(&mut fw.tasks) {
            if let Some(agent) = self.agents.get_mut(&task.info.agent_id.value) {
                agent.used = agent.used.sub(&task.resources);
            }
            task.state = TaskState::Killed;
            fw.complete(task);
        }
        fw.used = Resources::default();
        fw.active = false;
        if fw.stream.take().is_some() {
            self.outbox.push(Outbound::CloseFramework {
                framework_id: framework_id.to_string(),
            });
        }
        self.filters.remove(framework_id);
        self.outbox.operator(|| {
            operator::Event::FrameworkRemoved(Box::new(operator::FrameworkRemoved {
                framework_info: fw.info.clone(),
            }))
        });
        self.completed_frameworks.push_back(fw);
        while self.completed_frameworks.len() > MAX_COMPLETED_FRAMEWORKS {
            self.completed_frameworks.pop_front();
        }
        tracing::info!(framework_id, "framework removed");
        true
    }

    /// Tears down frameworks whose failover timeout has passed.
    pub fn expire_frameworks(&mut self) {
        let now = self.now();
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
}
