//! `/state` (and `/slave(1)/state`): the agent, its frameworks, their executors and tasks,
//! in the shape of Mesos' agent state endpoint.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use crate::agent::state::{AgentState, Run, Shared};
use crate::api::{FrameworkInfo, TaskState};
use crate::resources::Resources;

/// A run's task.
fn task_json(run: &Run, agent_id: &str) -> Value {
    let statuses: Vec<Value> = run
        .last_status
        .iter()
        .map(|s| {
            let mut v = json!({"state": s.state, "timestamp": s.timestamp, "container_status": s.container_status});
            if let Some(healthy) = s.healthy {
                v["healthy"] = json!(healthy);
            }
            v
        })
        .collect();
    json!({
        "id": run.task.task_id.value,
        "name": run.task.name,
        "framework_id": run.framework_id(),
        "executor_id": if run.task.executor.is_some() { run.executor_id.clone() } else { String::new() },
        "slave_id": agent_id,
        "state": run.state,
        "resources": Resources::from_api(&run.task.resources).unwrap_or_default().to_state_json(),
        "statuses": statuses,
        "labels": run.task.labels.as_ref().and_then(|l| l.get("labels").cloned()).unwrap_or(json!([])),
        "discovery": run.task.discovery,
    })
}

/// The executor name Mesos shows: a custom executor's own, else the command executor's.
fn executor_name(first: &Run) -> String {
    match (&first.task.executor, first.custom) {
        (Some(e), true) => e.name.clone().unwrap_or_default(),
        _ => format!(
            "Command Executor (Task: {}) (Command: sh -c '{}')",
            first.task.task_id.value,
            first
                .task
                .command
                .as_ref()
                .and_then(|c| c.value.clone())
                .unwrap_or_default()
        ),
    }
}

/// One executor run (one container) of a framework, with its tasks; whether it still runs.
fn executor_json(framework_id: &str, runs: &[&Run], agent_id: &str) -> (Value, bool) {
    let first = runs[0];
    let (tasks, completed): (Vec<&Run>, Vec<&Run>) =
        runs.iter().partition(|r| !TaskState::is_terminal(r.state));
    let resources = runs.iter().fold(Resources::default(), |acc, r| {
        acc.add(&Resources::from_api(&r.task.resources).unwrap_or_default())
    });
    let executor = json!({
        "id": first.executor_id,
        "name": executor_name(first),
        "source": if first.custom { String::new() } else { first.task.task_id.value.clone() },
        "container": first.container_id,
        "directory": first.sandbox.display().to_string(),
        "resources": resources.to_state_json(),
        "framework_id": framework_id,
        "tasks": tasks.iter().map(|r| task_json(r, agent_id)).collect::<Vec<_>>(),
        "queued_tasks": [],
        "completed_tasks": completed.iter().map(|r| task_json(r, agent_id)).collect::<Vec<_>>(),
    });
    (executor, !tasks.is_empty())
}

/// Runs by container (one executor run each: a command task has its own, a custom
/// executor's tasks share theirs).
type Containers<'a> = BTreeMap<String, Vec<&'a Run>>;

/// Every framework with runs here, with its executors.
fn frameworks_json(st: &AgentState, agent_id: &str) -> Vec<Value> {
    let mut frameworks: BTreeMap<String, (FrameworkInfo, Containers<'_>)> = BTreeMap::new();
    for run in st.runs.values() {
        frameworks
            .entry(run.framework_id())
            .or_insert_with(|| (run.framework.clone(), BTreeMap::new()))
            .1
            .entry(run.container_id.clone())
            .or_default()
            .push(run);
    }
    frameworks
        .into_iter()
        .map(|(id, (info, containers))| {
            let (mut live, mut done) = (Vec::new(), Vec::new());
            for runs in containers.values() {
                match executor_json(&id, runs, agent_id) {
                    (executor, true) => live.push(executor),
                    (executor, false) => done.push(executor),
                }
            }
            json!({
                "id": id,
                "name": info.name,
                "user": info.user,
                "hostname": info.hostname,
                "role": info.all_roles().first().cloned().unwrap_or_else(|| "*".into()),
                "checkpoint": info.checkpoint.unwrap_or(false),
                "failover_timeout": info.failover_timeout.unwrap_or(0.0),
                "executors": live,
                "completed_executors": done,
            })
        })
        .collect()
}

/// `/state`.
pub(super) async fn state(State(shared): State<Shared>) -> Response {
    let st = shared.lock();
    let agent_id = st.id.clone().unwrap_or_default();
    let config = &shared.config;
    let masters: Vec<String> = config.masters.iter().map(|m| m.to_string()).collect();
    let mut v = super::version();
    let extra = json!({
        "start_time": st.start_time,
        "id": agent_id,
        "pid": format!("slave(1)@{}", shared.endpoint()),
        "hostname": shared.host(),
        "resources": config.resources.to_state_json(),
        "attributes": config.attributes,
        "master_hostname": st.master.map(|m| m.ip().to_string()),
        "flags": {
            "work_dir": config.work_dir.display().to_string(),
            "port": config.listen.port().to_string(),
            "master": masters.join(","),
        },
        "frameworks": frameworks_json(&st, &agent_id),
        "completed_frameworks": [],
        "capabilities": ["MULTI_ROLE", "HIERARCHICAL_ROLE", "RESERVATION_REFINEMENT"],
    });
    if let (Value::Object(a), Value::Object(b)) = (&mut v, extra) {
        a.extend(b);
    }
    Json(v).into_response()
}
