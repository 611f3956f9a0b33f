//! Tasks: ACCEPT's launches, KILL and SHUTDOWN, status updates (from agents or made by the
//! master) and their acknowledgements, and scheduler messages for executors.

use dcos_mesos_api::operator;

use crate::api::{self, ExecutorInfo, Id, Reason, Source, TaskInfo, TaskState, TaskStatus};
use crate::protocol::AgentEvent;
use crate::resources::Resources;
use crate::scheduler::{Accept, Acknowledge, Event, Message, Operation, Shutdown, Update};

use super::{master_status, scalars, Master};

/// A task as the master tracks it.
#[derive(Clone, Debug)]
pub struct Task {
    /// The task as launched.
    pub(in crate::master) info: TaskInfo,
    /// Its framework.
    pub(in crate::master) framework_id: String,
    /// Its current state.
    pub(in crate::master) state: TaskState,
    /// Its resources (with its executor's).
    pub(in crate::master) resources: Resources,
    /// The latest statuses, oldest first.
    pub(in crate::master) statuses: Vec<TaskStatus>,
    /// The executor (custom executors only).
    pub(in crate::master) executor_id: Option<String>,
}

/// How many statuses a task keeps.
const MAX_STATUSES: usize = 20;

impl Task {
    /// Its latest status, in its current state, from `agent_id`.
    pub(super) fn latest_status(&self, agent_id: &str) -> TaskStatus {
        let mut st = self.statuses.last().cloned().unwrap_or_else(|| TaskStatus {
            task_id: self.info.task_id.clone(),
            ..TaskStatus::default()
        });
        st.state = self.state;
        st.agent_id = Some(Id::new(agent_id));
        st
    }

    /// The answer to a reconciliation: its latest status, without a uuid.
    pub(super) fn reconciled(&self) -> TaskStatus {
        let mut st = self.latest_status(&self.info.agent_id.value);
        st.uuid = None;
        st.reason = Some(Reason::Reconciliation);
        st
    }
}

/// The tasks an ACCEPT's operations launch, each with the executor of its group. Other
/// operations (reservations, volumes) do nothing here: agents offer unreserved resources.
fn launches(operations: Vec<Operation>) -> Vec<(TaskInfo, Option<ExecutorInfo>)> {
    let mut tasks = Vec::new();
    for op in operations {
        match op {
            Operation::Launch(launch) => {
                tasks.extend(launch.task_infos.into_iter().map(|t| (t, None)));
            }
            Operation::LaunchGroup(group) => {
                let executor = group.executor;
                tasks.extend(
                    group
                        .task_group
                        .tasks
                        .into_iter()
                        .map(|t| (t, Some(executor.clone()))),
                );
            }
            other => {
                tracing::debug!(operation = %other.kind(), "offer operation ignored");
            }
        }
    }
    tasks
}

impl Master {
    /// ACCEPT with LAUNCH / LAUNCH_GROUP operations. Invalid tasks are answered with
    /// TASK_ERROR (or TASK_LOST for a void offer) updates, as Mesos does; what the
    /// operations do not use goes back to the pool with the call's filters.
    pub fn accept(&mut self, framework_id: &str, accept: Accept) {
        self.count("master/messages_accept");
        let Accept {
            offer_ids,
            operations,
            filters,
        } = accept;
        let tasks = launches(operations);
        let (agent_id, mut available) = match self.take_offers(framework_id, &offer_ids) {
            Ok(taken) => taken,
            Err(message) => {
                for (task, _) in tasks {
                    let st = master_status(
                        &task.task_id,
                        Some(&task.agent_id.value),
                        TaskState::Lost,
                        Reason::InvalidOffers,
                        message.clone(),
                    );
                    self.send_update(framework_id, st);
                }
                return;
            }
        };
        for (task, executor) in tasks {
            match self.validate_task(framework_id, &agent_id, &task, &available) {
                Ok(resources) => {
                    available = available.sub(&resources);
                    self.launch(framework_id, &agent_id, task, executor, resources);
                }
                Err(message) => {
                    let st = master_status(
                        &task.task_id,
                        Some(&agent_id),
                        TaskState::Error,
                        Reason::TaskInvalid,
                        message,
                    );
                    self.send_update(framework_id, st);
                }
            }
        }
        self.add_filter(framework_id, &agent_id, filters.as_ref());
    }

    /// Takes an ACCEPT's offers: every one must exist, belong to the framework, and all be on
    /// one agent. Returns the agent and what the offers held; or, when they do not qualify,
    /// why (the valid ones go back to the pool).
    fn take_offers(
        &mut self,
        framework_id: &str,
        offer_ids: &[Id],
    ) -> Result<(String, Resources), String> {
        let mut valid: Vec<String> = Vec::new();
        let mut agent_id: Option<String> = None;
        let mut invalid = None;
        for oid in offer_ids {
            match self.offers.get(&oid.value) {
                Some(o) if o.framework_id == framework_id => {
                    match &agent_id {
                        None => agent_id = Some(o.agent_id.clone()),
                        Some(a) if *a != o.agent_id => {
                            invalid =
                                Some("Aggregated offers must belong to one single agent".into());
                        }
                        Some(_) => {}
                    }
                    valid.push(oid.value.clone());
                }
                Some(_) => {
                    invalid = Some(format!(
                        "Offer {oid} is not owned by framework {framework_id}"
                    ));
                }
                None => invalid = Some(format!("Offer {oid} is no longer valid")),
            }
        }
        let mut available = Resources::default();
        for id in &valid {
            if let Some(removed) = self.remove_offer(id, false) {
                available = available.add(&removed.resources);
            }
        }
        match (invalid, agent_id) {
            (None, Some(agent_id)) => Ok((agent_id, available)),
            (Some(message), _) => Err(message),
            (None, None) => Err("No offers specified".into()),
        }
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
        if !available.contains(&resources) {
            return Err(format!(
                "Task uses more resources {resources} than available {available}"
            ));
        }
        Ok(resources)
    }

    /// Records a valid task as STAGING and sends it to its agent.
    fn launch(
        &mut self,
        framework_id: &str,
        agent_id: &str,
        mut task: TaskInfo,
        executor: Option<ExecutorInfo>,
        resources: Resources,
    ) {
        if task.executor.is_none() {
            task.executor = executor;
        }
        // Mesos fills in the executor's framework, which executors check against their own.
        if let Some(e) = task.executor.as_mut() {
            e.framework_id.get_or_insert_with(|| Id::new(framework_id));
        }
        let Some(fw) = self.frameworks.get_mut(framework_id) else {
            return;
        };
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
            resources,
            statuses: vec![status],
            executor_id: task.executor.as_ref().map(|e| e.executor_id.value.clone()),
            info: task.clone(),
        };
        self.outbox.operator(|| {
            operator::Event::TaskAdded(Box::new(operator::TaskAdded {
                task: crate::master::views::task_v1(&record),
            }))
        });
        fw.used = fw.used.add(&scalars(&record.resources));
        if let Some(agent) = self.agents.get_mut(agent_id) {
            agent.used = agent.used.add(&record.resources);
            let run = AgentEvent::RunTask {
                framework: fw.info.clone(),
                task,
            };
            self.outbox.agent(agent, run);
        }
        let task_id = record.info.task_id.value.clone();
        tracing::info!(framework_id, agent_id, task_id, "launching task");
        fw.tasks.insert(task_id, record);
        self.count("master/tasks_launched");
    }

    /// KILL: sent to the task's agent; answered by the master when the agent is out of
    /// reach (its latest status) or the task unknown (TASK_LOST).
    pub fn kill(
        &mut self,
        framework_id: &str,
        task_id: &Id,
        agent_id: Option<&Id>,
        grace_period_ns: Option<i64>,
    ) {
        let Some(fw) = self.frameworks.get(framework_id) else {
            return;
        };
        let Some(task) = fw.tasks.get(&task_id.value) else {
            let st = master_status(
                task_id,
                agent_id.map(|a| a.value.as_str()),
                TaskState::Lost,
                Reason::Reconciliation,
                "Attempted to kill an unknown task".into(),
            );
            self.send_update(framework_id, st);
            return;
        };
        let on = &task.info.agent_id.value;
        match self.agents.get(on) {
            Some(agent) if agent.active() => {
                let kill = AgentEvent::KillTask {
                    framework_id: Id::new(framework_id),
                    task_id: task_id.clone(),
                    grace_period_ns,
                };
                self.outbox.agent(agent, kill);
            }
            _ => {
                // The agent is not reachable: the kill is answered by reconciliation later.
                let st = task.latest_status(on);
                self.send_update(framework_id, st);
            }
        }
    }

    /// SHUTDOWN: executors here run one task each, so shutting one down kills its tasks.
    pub fn shutdown_executor(&mut self, framework_id: &str, shutdown: &Shutdown) {
        let tasks: Vec<Id> = self
            .frameworks
            .get(framework_id)
            .map(|f| {
                f.tasks
                    .values()
                    .filter(|t| {
                        t.info.agent_id == shutdown.agent_id
                            && t.executor_id.as_deref() == Some(shutdown.executor_id.as_str())
                    })
                    .map(|t| t.info.task_id.clone())
                    .collect()
            })
            .unwrap_or_default();
        for t in tasks {
            self.kill(framework_id, &t, Some(&shutdown.agent_id), None);
        }
    }

    /// Tells the framework (and operator subscribers) of a status.
    pub(super) fn send_update(&mut self, framework_id: &str, status: TaskStatus) {
        self.outbox.operator(|| {
            operator::Event::TaskUpdated(Box::new(operator::TaskUpdated {
                framework_id: Id::new(framework_id),
                state: status.state,
                status: status.clone(),
            }))
        });
        if let Some(fw) = self.frameworks.get(framework_id) {
            self.outbox.framework(fw, Event::Update(Update { status }));
        }
    }

    /// A status update from an agent (or made by the master): record it and forward it. A
    /// terminal state ends the task and frees its resources (TASK_UNREACHABLE keeps it: its
    /// agent may come back).
    pub fn apply_update(&mut self, framework_id: &str, status: TaskStatus) {
        let task_key = &status.task_id.value;
        if let Some(fw) = self.frameworks.get_mut(framework_id) {
            if let Some(task) = fw.tasks.get_mut(task_key) {
                task.state = status.state;
                let mut short = status.clone();
                short.uuid = None;
                task.statuses.push(short);
                if task.statuses.len() > MAX_STATUSES {
                    task.statuses.remove(0);
                }
                if status.state.is_terminal() {
                    if let Some(done) = fw.tasks.remove(task_key) {
                        fw.used = fw.used.sub(&scalars(&done.resources));
                        if let Some(agent) = self.agents.get_mut(&done.info.agent_id.value) {
                            agent.used = agent.used.sub(&done.resources);
                        }
                        fw.complete(done);
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

    /// ACKNOWLEDGE: relayed to the agent, which stops retrying the update.
    pub fn acknowledge(&mut self, framework_id: &str, ack: Acknowledge) {
        if let Some(agent) = self.agents.get(&ack.agent_id.value) {
            let ack = AgentEvent::Acknowledge {
                framework_id: Id::new(framework_id),
                task_id: ack.task_id,
                uuid: ack.uuid,
            };
            self.outbox.agent(agent, ack);
        }
    }

    /// MESSAGE: relayed to the executor's agent.
    pub fn framework_message(&mut self, framework_id: &str, message: Message) {
        if let Some(agent) = self.agents.get(&message.agent_id.value) {
            let message = AgentEvent::FrameworkMessage {
                framework_id: Id::new(framework_id),
                executor_id: message.executor_id,
                data: message.data,
            };
            self.outbox.agent(agent, message);
        }
    }
}
