//! JSON views of the master's state: the v0 endpoints (`/master/state`, `/state-summary`,
//! `/master/slaves`, `/master/frameworks`, `/master/tasks`) and v1 operator objects.

use std::collections::HashMap;
use std::ops::Bound::{Excluded, Unbounded};
use std::sync::{Mutex, MutexGuard, PoisonError};

use dcos_mesos_api::operator;
use serde::Serialize;
use serde_json::{json, Map, Value};

use crate::api::{self, Id, TaskState};

use super::delivery::Core;
use super::state::{Agent, Framework, Master, Task};

/// Every task state Mesos counts in `state-summary`.
const COUNTED_STATES: &[TaskState] = &[
    TaskState::Staging,
    TaskState::Starting,
    TaskState::Running,
    TaskState::Killing,
    TaskState::Finished,
    TaskState::Killed,
    TaskState::Failed,
    TaskState::Lost,
    TaskState::Error,
    TaskState::Unreachable,
];

fn attributes(agent: &Agent) -> Value {
    Value::Object(
        agent
            .info
            .attributes
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect(),
    )
}

/// A task in v0 form, serialised straight from the task (the state endpoint writes
/// hundreds of thousands of them).
#[derive(Serialize)]
struct TaskV0<'a> {
    id: &'a str,
    name: &'a str,
    framework_id: &'a str,
    executor_id: &'a str,
    slave_id: &'a str,
    state: TaskState,
    resources: Value,
    statuses: Vec<StatusV0<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    labels: Option<&'a Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    discovery: Option<&'a Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    container: Option<std::borrow::Cow<'a, Value>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    health_check: Option<&'a Value>,
}

#[derive(Serialize)]
struct StatusV0<'a> {
    state: TaskState,
    timestamp: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    container_status: Option<&'a Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    healthy: Option<bool>,
}

impl<'a> TaskV0<'a> {
    fn of(task: &'a Task) -> Self {
        let info = &task.info;
        TaskV0 {
            id: &info.task_id.value,
            name: &info.name,
            framework_id: &task.framework_id,
            executor_id: task.executor_id.as_deref().unwrap_or_default(),
            slave_id: &info.agent_id.value,
            state: task.state,
            resources: task.resources.to_state_json(),
            statuses: task
                .statuses
                .iter()
                .map(|s| StatusV0 {
                    state: s.state,
                    timestamp: s.timestamp.unwrap_or(0.0),
                    container_status: s.container_status.as_ref(),
                    healthy: s.healthy,
                })
                .collect(),
            // v0 renders labels as the list itself.
            labels: info.labels.as_ref().map(|l| l.get("labels").unwrap_or(l)),
            discovery: info.discovery.as_ref(),
            container: info.container.as_ref().map(without_secrets),
            health_check: info.health_check.as_ref(),
        }
    }
}

/// A task in v0 form.
pub fn task_v0(task: &Task) -> Value {
    serde_json::to_value(TaskV0::of(task)).unwrap_or(Value::Null)
}

/// A task in v1 form (operator API and events).
pub fn task_v1(task: &Task) -> operator::Task {
    operator::Task {
        name: task.info.name.clone(),
        task_id: task.info.task_id.clone(),
        framework_id: Id::new(&task.framework_id),
        agent_id: task.info.agent_id.clone(),
        executor_id: task.executor_id.as_ref().map(Id::new),
        state: task.state,
        resources: task.info.resources.clone(),
        statuses: task.statuses.clone(),
        labels: task.info.labels.clone(),
        discovery: task.info.discovery.clone(),
        container: task
            .info
            .container
            .as_ref()
            .map(|c| without_secrets(c).into_owned()),
    }
}

/// Where a task's container holds its registry password (`mesos.image.docker.credential`).
const IMAGE_SECRET: &str = "/mesos/image/docker/credential/secret";

/// A task's container as the state shows it: the image's registry password is the agent's
/// to use, never an answer to whoever reads the master's state.
fn without_secrets(container: &Value) -> std::borrow::Cow<'_, Value> {
    if container.pointer(IMAGE_SECRET).is_none() {
        return std::borrow::Cow::Borrowed(container);
    }
    let mut shown = container.clone();
    if let Some(credential) = shown
        .pointer_mut("/mesos/image/docker/credential")
        .and_then(Value::as_object_mut)
    {
        credential.remove("secret");
    }
    std::borrow::Cow::Owned(shown)
}

/// An agent in v0 form.
pub fn agent_v0(agent: &Agent) -> Value {
    let mut v = json!({
        "id": agent.id,
        "pid": agent.pid(),
        "hostname": agent.info.hostname,
        "port": agent.info.port,
        "registered_time": agent.registered_time,
        "resources": agent.total.to_state_json(),
        "used_resources": agent.used.to_state_json(),
        "offered_resources": agent.offered.to_state_json(),
        "reserved_resources": {},
        "unreserved_resources": agent.total.to_state_json(),
        "attributes": attributes(agent),
        "active": agent.active(),
        "version": agent.info.version,
        "capabilities": ["MULTI_ROLE", "HIERARCHICAL_ROLE", "RESERVATION_REFINEMENT"],
    });
    if let Some(t) = agent.reregistered_time {
        v["reregistered_time"] = json!(t);
    }
    v
}

/// An agent in v1 form.
pub fn agent_v1(agent: &Agent) -> operator::Agent {
    operator::Agent {
        agent_info: operator::AgentInfo {
            hostname: agent.info.hostname.clone(),
            port: agent.info.port,
            id: Id::new(&agent.id),
            resources: agent.total.to_api(None),
            attributes: agent.attributes_v1(),
        },
        active: agent.active(),
        version: agent.info.version.clone(),
        pid: agent.pid(),
        registered_time: operator::TimeInfo::from_secs(agent.registered_time),
        total_resources: agent.total.to_api(None),
        allocated_resources: agent.used.to_api(None),
        offered_resources: agent.offered.to_api(None),
    }
}

/// `get_tasks`: every task of the frameworks not torn down.
pub fn get_tasks(master: &Master) -> operator::GetTasks {
    let frameworks = || master.frameworks();
    operator::GetTasks {
        tasks: frameworks()
            .flat_map(|f| f.tasks.values())
            .map(task_v1)
            .collect(),
        completed_tasks: frameworks()
            .flat_map(|f| f.completed_tasks.iter())
            .map(task_v1)
            .collect(),
        ..operator::GetTasks::default()
    }
}

/// `get_agents`.
pub fn get_agents(master: &Master) -> operator::GetAgents {
    operator::GetAgents {
        agents: master.agents().map(agent_v1).collect(),
        recovered_agents: Vec::new(),
    }
}

/// `get_frameworks`.
pub fn get_frameworks(master: &Master) -> operator::GetFrameworks {
    let done = |f: &Framework| operator::Framework {
        framework_info: f.info.clone(),
        ..operator::Framework::default()
    };
    operator::GetFrameworks {
        frameworks: master.frameworks().map(Framework::to_operator).collect(),
        completed_frameworks: master.completed_frameworks().iter().map(done).collect(),
    }
}

/// `get_state`.
pub fn get_state(master: &Master) -> operator::GetState {
    operator::GetState {
        get_tasks: get_tasks(master),
        get_executors: operator::GetExecutors::default(),
        get_frameworks: get_frameworks(master),
        get_agents: get_agents(master),
    }
}

/// A framework in v0 form.
pub fn framework_v0(master: &Master, fw: &Framework) -> Value {
    let mut v = framework_head(master, fw);
    v["tasks"] = fw.tasks.values().map(task_v0).collect();
    v["completed_tasks"] = fw.completed_tasks.iter().map(task_v0).collect();
    v
}

/// A framework in v0 form without its task lists.
fn framework_head(master: &Master, fw: &Framework) -> Value {
    let offers: Vec<Value> = fw
        .offers
        .iter()
        .filter_map(|id| master.offer(id))
        .map(|o| json!({"id": o.id, "framework_id": o.framework_id, "slave_id": o.agent_id, "resources": o.resources.to_state_json()}))
        .collect();
    let (used, offered) = (fw.used_resources(), fw.offered_resources(master));
    let mut v = json!({
        "id": fw.id(),
        "name": fw.info.name,
        "pid": Value::Null,
        "hostname": fw.info.hostname.clone().unwrap_or_default(),
        "webui_url": fw.info.webui_url.clone().unwrap_or_default(),
        "user": fw.info.user,
        "role": fw.role(),
        "roles": fw.info.all_roles(),
        "principal": fw.info.principal,
        "active": fw.active,
        "connected": fw.connected(),
        "recovered": fw.recovered,
        "checkpoint": fw.info.checkpoint.unwrap_or(false),
        "failover_timeout": fw.info.failover_timeout.unwrap_or(0.0),
        "capabilities": fw.info.capabilities.iter().filter_map(|c| c.get("type").cloned()).collect::<Vec<_>>(),
        "registered_time": fw.registered_time,
        "unregistered_time": 0,
        "resources": used.add(&offered).to_state_json(),
        "used_resources": used.to_state_json(),
        "offered_resources": offered.to_state_json(),
        "unreachable_tasks": [],
        "offers": offers,
        "executors": [],
    });
    if let Some(t) = fw.reregistered_time {
        v["reregistered_time"] = json!(t);
    }
    v
}

/// `/version`.
pub fn version() -> Value {
    json!({
        "version": crate::MESOS_VERSION,
        "git_tag": crate::MESOS_VERSION,
        "git_sha": "",
        "build_date": "",
        "build_time": 0,
        "build_user": "dcos-rs",
        "dcos_rs_version": env!("CARGO_PKG_VERSION"),
    })
}

/// `/master/state` without its long lists (`slaves`, `frameworks`, `completed_frameworks`).
fn state_head(master: &Master, flags: &Value) -> Value {
    let agents = || master.agents();
    let mut v = version();
    let extra = json!({
        "start_time": master.start_time(),
        "elected_time": master.elected_time(),
        "id": master.id(),
        "pid": master.pid(),
        "hostname": master.ip(),
        "activated_slaves": agents().filter(|a| a.active()).count(),
        "deactivated_slaves": agents().filter(|a| !a.active() && !a.unreachable).count(),
        "unreachable_slaves": agents().filter(|a| a.unreachable).count(),
        "cluster": master.cluster(),
        "leader": master.pid(),
        "leader_info": master.master_info(),
        "flags": flags,
        "recovered_slaves": master.recovered_agents().map(|(id, info)| json!({"id": id, "hostname": info.hostname, "port": info.port})).collect::<Vec<_>>(),
        "orphan_tasks": [],
        "unregistered_frameworks": [],
    });
    merge(&mut v, extra);
    v
}

/// How many agents or tasks are rendered under one hold of the master's lock.
const PIECE: usize = 500;

/// Renders `/master/state` piece by piece into `out`.
///
/// The master's lock is held for one piece (a few hundred agents or tasks) at a time, and
/// each piece is handed to `out` only after the lock is released, so a slow reader never
/// holds the master. With 100,000 tasks the master keeps allocating and answering while the
/// document is written, and neither side holds the whole document. The price: pieces are
/// read at slightly different moments, as if the cluster changed while it was read (each
/// agent, framework and task is consistent in itself).
pub fn write_state(
    master: &Mutex<Core>,
    flags: &Value,
    out: &mut impl std::io::Write,
) -> std::io::Result<()> {
    let lock = || master.lock().unwrap_or_else(PoisonError::into_inner);
    let mut piece = Piece::default();
    let (agent_ids, framework_ids, completed) = {
        let m = lock();
        piece.open_object(&state_head(&m, flags))?;
        let mut agents: Vec<String> = m.agents().map(|a| a.id.clone()).collect();
        agents.sort();
        let mut frameworks: Vec<String> = m
            .frameworks()
            .filter(|f| f.active)
            .map(|f| f.id().to_string())
            .collect();
        frameworks.sort();
        (agents, frameworks, m.completed_frameworks().len())
    };
    piece.raw(",\"slaves\":[");
    for ids in agent_ids.chunks(PIECE) {
        {
            let m = lock();
            for agent in ids.iter().filter_map(|id| m.agent(id)) {
                piece.item(&agent_v0(agent))?;
            }
        }
        piece.flush(out)?;
    }
    piece.raw("],\"frameworks\":[");
    for id in &framework_ids {
        write_framework(&lock, |m| m.framework(id), &mut piece, out)?;
    }
    piece.raw("],\"completed_frameworks\":[");
    for i in 0..completed {
        write_framework(&lock, |m| m.completed_frameworks().get(i), &mut piece, out)?;
    }
    piece.raw("]}");
    piece.flush(out)
}

/// One framework of [`write_state`]: its fields, then its tasks piece by piece.
fn write_framework<'m>(
    lock: &impl Fn() -> MutexGuard<'m, Core>,
    find: impl for<'a> Fn(&'a Master) -> Option<&'a Framework>,
    piece: &mut Piece,
    out: &mut impl std::io::Write,
) -> std::io::Result<()> {
    let completed = {
        let m = lock();
        let Some(fw) = find(&m) else { return Ok(()) };
        piece.separate();
        piece.open_object(&framework_head(&m, fw))?;
        fw.completed_tasks.len()
    };
    piece.raw(",\"tasks\":[");
    let mut after: Option<String> = None;
    loop {
        let mut rendered = 0;
        {
            let m = lock();
            let Some(fw) = find(&m) else { break };
            let range = match &after {
                None => fw.tasks.range::<String, _>(..),
                Some(k) => fw
                    .tasks
                    .range::<String, _>((Excluded(k.clone()), Unbounded)),
            };
            for (id, task) in range.take(PIECE) {
                piece.item(&TaskV0::of(task))?;
                after = Some(id.clone());
                rendered += 1;
            }
        }
        piece.flush(out)?;
        if rendered < PIECE {
            break;
        }
    }
    piece.raw("],\"completed_tasks\":[");
    for start in (0..completed).step_by(PIECE) {
        {
            let m = lock();
            if let Some(fw) = find(&m) {
                for task in fw.completed_tasks.iter().skip(start).take(PIECE) {
                    piece.item(&TaskV0::of(task))?;
                }
            }
        }
        piece.flush(out)?;
    }
    piece.raw("]}");
    piece.first = false;
    Ok(())
}

/// The bytes rendered under one hold of the lock, and whether the next list item is the
/// list's first (no comma before it).
#[derive(Default)]
struct Piece {
    buf: Vec<u8>,
    first: bool,
}

impl Piece {
    /// Literal JSON, after which the next item takes no comma (it opens a list, or closes
    /// an item whose caller sets `first` again).
    fn raw(&mut self, text: &str) {
        self.buf.extend_from_slice(text.as_bytes());
        self.first = true;
    }

    fn separate(&mut self) {
        if !self.first {
            self.buf.push(b',');
        }
        self.first = false;
    }

    fn item(&mut self, value: &impl Serialize) -> std::io::Result<()> {
        self.separate();
        serde_json::to_writer(&mut self.buf, value).map_err(std::io::Error::other)
    }

    /// An object without its closing brace, for more fields to follow.
    fn open_object(&mut self, object: &Value) -> std::io::Result<()> {
        let start = self.buf.len();
        serde_json::to_writer(&mut self.buf, object).map_err(std::io::Error::other)?;
        // Every head has fields, so a field added after it follows a comma correctly.
        debug_assert!(self.buf.len() > start + 2, "an empty head object");
        self.buf.pop();
        Ok(())
    }

    fn flush(&mut self, out: &mut impl std::io::Write) -> std::io::Result<()> {
        out.write_all(&self.buf)?;
        self.buf.clear();
        Ok(())
    }
}

fn merge(into: &mut Value, from: Value) {
    if let (Value::Object(a), Value::Object(b)) = (into, from) {
        a.extend(b);
    }
}

fn count_states<'a>(tasks: impl Iterator<Item = &'a Task>) -> Map<String, Value> {
    let mut counts: Map<String, Value> = COUNTED_STATES
        .iter()
        .map(|s| (s.to_string(), json!(0)))
        .collect();
    for t in tasks {
        if let Some(Value::Number(n)) = counts.get(t.state.as_str()) {
            let n = n.as_u64().unwrap_or(0) + 1;
            counts.insert(t.state.to_string(), json!(n));
        }
    }
    counts
}

/// Renders `/master/state-summary` piece by piece into `out`, as [`write_state`] does.
///
/// The history service reads it every 2 s. One hold of the lock counts every task once,
/// grouped by agent, and renders the frameworks; the agents follow a few hundred per hold.
/// The summary stays linear in agents and tasks and never holds the master for long.
pub fn write_state_summary(
    master: &Mutex<Core>,
    out: &mut impl std::io::Write,
) -> std::io::Result<()> {
    let lock = || master.lock().unwrap_or_else(PoisonError::into_inner);
    let mut piece = Piece::default();
    let (agent_ids, mut per_agent) = {
        let m = lock();
        piece.open_object(&json!({"hostname": m.ip(), "cluster": m.cluster()}))?;
        let mut by_agent: HashMap<&str, Vec<&Task>> = HashMap::new();
        for t in m
            .frameworks()
            .flat_map(|f| f.tasks.values().chain(f.completed_tasks.iter()))
        {
            by_agent
                .entry(t.info.agent_id.value.as_str())
                .or_default()
                .push(t);
        }
        // What each agent's entry adds to its agent_v0: task counts and running frameworks.
        let per_agent: HashMap<String, Value> = by_agent
            .into_iter()
            .map(|(agent, tasks)| {
                let mut fws: Vec<&str> = tasks
                    .iter()
                    .filter(|t| !TaskState::is_terminal(t.state))
                    .map(|t| t.framework_id.as_str())
                    .collect();
                fws.sort_unstable();
                fws.dedup();
                let mut extra = count_states(tasks.into_iter());
                extra.insert("framework_ids".into(), json!(fws));
                (agent.to_string(), Value::Object(extra))
            })
            .collect();
        let mut frameworks: Vec<&Framework> = m.frameworks().filter(|f| f.active).collect();
        frameworks.sort_by_key(|f| f.id().to_string());
        piece.raw(",\"frameworks\":[");
        for f in frameworks {
            piece.item(&framework_summary(&m, f))?;
        }
        let mut agents: Vec<String> = m.agents().map(|a| a.id.clone()).collect();
        agents.sort();
        (agents, per_agent)
    };
    piece.raw("],\"slaves\":[");
    for ids in agent_ids.chunks(PIECE) {
        {
            let m = lock();
            for agent in ids.iter().filter_map(|id| m.agent(id)) {
                let mut v = agent_v0(agent);
                let extra = per_agent.remove(&agent.id).unwrap_or_else(|| {
                    let mut none = count_states(std::iter::empty());
                    none.insert("framework_ids".into(), json!([]));
                    Value::Object(none)
                });
                merge(&mut v, extra);
                piece.item(&v)?;
            }
        }
        piece.flush(out)?;
    }
    piece.raw("]}");
    piece.flush(out)
}

/// One framework of the state-summary.
fn framework_summary(master: &Master, f: &Framework) -> Value {
    let mut agent_ids: Vec<&str> = f
        .tasks
        .values()
        .map(|t| t.info.agent_id.value.as_str())
        .collect();
    agent_ids.sort_unstable();
    agent_ids.dedup();
    let mut v = json!({
        "id": f.id(),
        "name": f.info.name,
        "pid": Value::Null,
        "hostname": f.info.hostname.clone().unwrap_or_default(),
        "webui_url": f.info.webui_url.clone().unwrap_or_default(),
        "active": f.active,
        "connected": f.connected(),
        "used_resources": f.used_resources().to_state_json(),
        "offered_resources": f.offered_resources(master).to_state_json(),
        "capabilities": f.info.capabilities.iter().filter_map(|c| c.get("type").cloned()).collect::<Vec<_>>(),
        "slave_ids": agent_ids,
    });
    merge(
        &mut v,
        Value::Object(count_states(
            f.tasks.values().chain(f.completed_tasks.iter()),
        )),
    );
    v
}

/// `/metrics/snapshot`, with Mesos's key names.
pub fn metrics(master: &Master) -> Value {
    let active: Vec<&Agent> = master.agents().filter(|a| a.active()).collect();
    let total = active
        .iter()
        .fold(crate::resources::Resources::default(), |acc, a| {
            acc.add(&a.total)
        });
    let used = active
        .iter()
        .fold(crate::resources::Resources::default(), |acc, a| {
            acc.add(&a.used)
        });
    let tasks = || master.frameworks().flat_map(|f| f.tasks.values());
    let count = |state: TaskState| tasks().filter(|t| t.state == state).count();
    let mut v = json!({
        "master/elected": 1,
        "master/uptime_secs": api::now_secs() - master.start_time(),
        "master/slaves_active": active.len(),
        "master/slaves_connected": active.len(),
        "master/slaves_disconnected": master.agents().filter(|a| !a.connected).count(),
        "master/slaves_inactive": master.agents().count() - active.len(),
        "master/slaves_unreachable": master.agents().filter(|a| a.unreachable).count(),
        "master/frameworks_active": master.frameworks().filter(|f| f.active && f.connected()).count(),
        "master/frameworks_connected": master.frameworks().filter(|f| f.connected()).count(),
        "master/frameworks_disconnected": master.frameworks().filter(|f| !f.connected()).count(),
        "master/frameworks_inactive": master.completed_frameworks().len(),
        "master/outstanding_offers": master.offer_count(),
        "master/tasks_staging": count(TaskState::Staging),
        "master/tasks_starting": count(TaskState::Starting),
        "master/tasks_running": count(TaskState::Running),
        "master/tasks_killing": count(TaskState::Killing),
        "master/cpus_total": total.cpus, "master/cpus_used": used.cpus,
        "master/cpus_percent": if total.cpus > 0.0 { used.cpus / total.cpus } else { 0.0 },
        "master/mem_total": total.mem, "master/mem_used": used.mem,
        "master/mem_percent": if total.mem > 0.0 { used.mem / total.mem } else { 0.0 },
        "master/disk_total": total.disk, "master/disk_used": used.disk,
        "master/gpus_total": total.gpus, "master/gpus_used": used.gpus,
    });
    for key in [
        "master/tasks_finished",
        "master/tasks_failed",
        "master/tasks_killed",
        "master/tasks_lost",
        "master/tasks_error",
        "master/tasks_unreachable",
    ] {
        v[key] = json!(0);
    }
    for (k, n) in master.counters() {
        v[*k] = json!(n);
    }
    master
        .allocation_runs()
        .to_metrics("allocator/mesos/allocation_run_ms", &mut v);
    v
}
