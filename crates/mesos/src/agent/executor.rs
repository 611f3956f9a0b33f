//! Custom executors and the executor HTTP API (`POST /api/v1/executor`).
//!
//! A task whose `executor` carries a command runs under that executor, not the built-in
//! command executor. The agent starts the executor's command once per (framework, executor
//! id), in its own sandbox and process group, with `MESOS_AGENT_ENDPOINT` and friends in its
//! environment. The executor SUBSCRIBEs and holds a RecordIO stream of events: SUBSCRIBED,
//! then LAUNCH for each of its tasks, KILL, ACKNOWLEDGED, MESSAGE and SHUTDOWN. It reports
//! task states with UPDATE calls, which the agent checkpoints and delivers to the master like
//! its own (at least once, in order); once the scheduler acknowledges one, the executor gets
//! ACKNOWLEDGED with the update's uuid.
//!
//! Events for an executor that is not connected (not yet subscribed, or reconnecting after an
//! agent restart) wait in its backlog. An executor that exits, or never subscribes within the
//! registration timeout, takes its unfinished tasks with it: TASK_FAILED with
//! REASON_EXECUTOR_TERMINATED (TASK_KILLED for tasks being killed).

use std::path::PathBuf;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use nix::sys::signal::Signal;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::{checkpoint, fetcher, launcher, sandbox, Run, Shared};
use crate::api::{self, ExecutorInfo, FrameworkInfo, Id, Reason, Source, TaskInfo, TaskState, TaskStatus};
use crate::http::{check_json, stream_response, text};
use crate::protocol::{AgentCall, AGENT_API_PATH};
use crate::recordio;

/// How long a started executor has to subscribe (Mesos' `executor_registration_timeout`).
const REGISTRATION_TIMEOUT: Duration = Duration::from_secs(60);
/// How long an executor told to SHUTDOWN has before its process group is killed.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// Events buffered on an executor's stream before it counts as stuck.
const STREAM_BUFFER: usize = 1024;

/// A custom executor, checkpointed under `meta/executors/`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(super) struct Executor {
    framework: FrameworkInfo,
    info: ExecutorInfo,
    container_id: String,
    sandbox: PathBuf,
    pid: Option<u32>,
    /// The process `pid` names (see [`checkpoint::Process`]); never signalled without it.
    #[serde(default)]
    process: Option<checkpoint::Process>,
    /// Events waiting for the executor to (re-)subscribe.
    backlog: Vec<Value>,
    /// Whether it has subscribed at least once.
    subscribed: bool,
    /// SHUTDOWN was sent; no new tasks go to it.
    shutting_down: bool,
    /// The open event stream, if connected.
    #[serde(skip)]
    stream: Option<(u64, mpsc::Sender<Bytes>)>,
}

impl Executor {
    fn key(&self) -> String {
        key(&framework_id(&self.framework), &self.info.executor_id.value)
    }

    /// Sends an event now if connected, else keeps it for the next subscription.
    fn deliver(&mut self, event: Value) {
        if let Some((_, tx)) = &self.stream {
            match tx.try_send(recordio::encode(event.to_string().as_bytes())) {
                Ok(()) => return,
                Err(_) => {
                    tracing::warn!(executor = %self.key(), "executor stream closed or stuck; holding events");
                    self.stream = None;
                }
            }
        }
        self.backlog.push(event);
    }
}

fn key(framework_id: &str, executor_id: &str) -> String {
    format!("{framework_id}__{executor_id}")
}

fn framework_id(framework: &FrameworkInfo) -> String {
    framework
        .id
        .as_ref()
        .map(|i| i.value.clone())
        .unwrap_or_default()
}

/// Whether a task runs under a custom executor: it names one with a command. (LAUNCH_GROUP's
/// DEFAULT executor has none; its tasks run under the built-in command executor.)
pub(super) fn is_custom(task: &TaskInfo) -> bool {
    task.executor
        .as_ref()
        .is_some_and(|e| e.command.is_some() && e.kind.as_deref() != Some("DEFAULT"))
}

impl Shared {
    /// Writes an executor's latest state to its checkpoint (`executor` may be a stale
    /// snapshot; an executor no longer held is not written back).
    fn executor_checkpoint(&self, executor: &Executor) {
        let ekey = executor.key();
        let _guard = self.lock_checkpoints();
        let Some(executor) = self.lock().executors.get(&ekey).cloned() else {
            return;
        };
        let dir = self.meta_dir().join("executors");
        let path = dir.join(format!("{ekey}.json"));
        let result = serde_json::to_vec(&executor)
            .map_err(std::io::Error::other)
            .and_then(|text| {
                checkpoint::create_dir(&dir)?;
                checkpoint::write_atomic(&path, &text)
            });
        if let Err(e) = result {
            tracing::error!(error = %e, executor = %ekey, "cannot checkpoint executor");
        }
    }

    fn executor_forget(&self, executor_key: &str) {
        let path = self
            .meta_dir()
            .join("executors")
            .join(format!("{executor_key}.json"));
        let _guard = self.lock_checkpoints();
        if let Err(e) = checkpoint::remove(&path) {
            tracing::error!(error = %e, executor = %executor_key, "cannot remove executor checkpoint");
        }
    }
}

/// Runs a task under its custom executor, starting the executor if it is not running.
pub(super) fn launch(shared: &Shared, framework: FrameworkInfo, task: TaskInfo) {
    let Some(info) = task.executor.clone() else {
        return;
    };
    let fw = framework_id(&framework);
    let ekey = key(&fw, &info.executor_id.value);
    let task_key = format!("{fw}__{}", task.task_id.value);
    let mut st = shared.lock();
    if st
        .runs
        .get(&task_key)
        .is_some_and(|r| !TaskState::is_terminal(r.state))
    {
        tracing::warn!(task = %task_key, "task already running; ignoring the duplicate launch");
        return;
    }
    let agent_id = st.id.clone().unwrap_or_default();
    let fresh = st.executors.get(&ekey).is_none_or(|e| e.shutting_down);
    if fresh {
        let container_id = uuid::Uuid::new_v4().to_string();
        let sandbox = match sandbox::sandbox_dir(
            &shared.config.work_dir,
            &agent_id,
            &fw,
            &info.executor_id.value,
            &container_id,
        ) {
            Ok(sandbox) => sandbox,
            Err(e) => {
                drop(st);
                let executor_id = info.executor_id.value;
                return super::refuse(shared, framework, task, &executor_id, &e.to_string());
            }
        };
        st.executors.insert(
            ekey.clone(),
            Executor {
                framework: framework.clone(),
                info: info.clone(),
                container_id,
                sandbox,
                pid: None,
                process: None,
                backlog: Vec::new(),
                subscribed: false,
                shutting_down: false,
                stream: None,
            },
        );
    }
    let Some(executor) = st.executors.get_mut(&ekey) else {
        return;
    };
    let run = Run {
        framework,
        task: task.clone(),
        executor_id: info.executor_id.value.clone(),
        container_id: executor.container_id.clone(),
        sandbox: executor.sandbox.clone(),
        pid: executor.pid,
        process: executor.process.clone(),
        state: TaskState::Staging,
        killing: false,
        pending: Default::default(),
        last_status: None,
        started: api::now_secs(),
        custom: true,
        health_killed: false,
        last_sent: None,
    };
    executor.deliver(json!({"type": "LAUNCH", "launch": {"task": task}}));
    let executor = executor.clone();
    st.runs.insert(task_key, run.clone());
    drop(st);
    shared.checkpoint(&run);
    shared.executor_checkpoint(&executor);
    if fresh {
        tokio::spawn(start(shared.clone(), executor));
    }
}

/// Starts an executor's process and watches it until it exits.
async fn start(shared: Shared, executor: Executor) {
    let ekey = executor.key();
    let container_id = executor.container_id.clone();
    let command = executor.info.command.clone().unwrap_or_default();
    let spawned = async {
        let user = launcher::requested_user(&executor.framework, &command);
        let run_as = launcher::run_as(shared.config.switch_user, user)?;
        fetcher::fetch_uris(&shared, &command, &executor.sandbox).await?;
        let agent_id = shared.lock().id.clone().unwrap_or_default();
        let fw = framework_id(&executor.framework);
        let endpoint = shared.endpoint();
        let env = sandbox::executor_env(
            &shared.place(
                &agent_id,
                &fw,
                &executor.info.executor_id.value,
                &executor.sandbox,
                &endpoint,
            ),
            &executor.info,
        );
        launcher::spawn_command(&command, &executor.sandbox, env, run_as.as_ref())
    }
    .await;
    let mut child = match spawned {
        Ok(child) => child,
        Err(e) => {
            tracing::warn!(executor = %ekey, error = %e, "executor failed to start");
            terminated(
                &shared,
                &ekey,
                &container_id,
                format!("Failed to launch container: {e}"),
                Reason::ContainerLaunchFailed,
            );
            return;
        }
    };
    let pid = child.id();
    let process = pid.and_then(checkpoint::Process::of);
    let (executor, runs) = {
        let mut st = shared.lock();
        let Some(executor) = st.executors.get_mut(&ekey) else {
            return;
        };
        executor.pid = pid;
        executor.process = process.clone();
        let executor = executor.clone();
        let mut runs = Vec::new();
        for run in st
            .runs
            .values_mut()
            .filter(|r| r.container_id == container_id)
        {
            run.pid = pid;
            run.process = process.clone();
            runs.push(run.clone());
        }
        (executor, runs)
    };
    shared.executor_checkpoint(&executor);
    for run in &runs {
        shared.checkpoint(run);
    }
    tracing::info!(executor = %ekey, pid, "executor started");
    tokio::spawn(registration_deadline(
        shared.clone(),
        ekey.clone(),
        container_id.clone(),
    ));
    let status = child.wait().await;
    let message = match status {
        Ok(s) => format!("Executor terminated ({s})"),
        Err(e) => format!("Executor terminated: {e}"),
    };
    terminated(
        &shared,
        &ekey,
        &container_id,
        message,
        Reason::ExecutorTerminated,
    );
}

/// Kills an executor that has not subscribed within the registration timeout.
async fn registration_deadline(shared: Shared, ekey: String, container_id: String) {
    tokio::time::sleep(REGISTRATION_TIMEOUT).await;
    let process = {
        let st = shared.lock();
        match st.executors.get(&ekey) {
            Some(e) if e.container_id == container_id && !e.subscribed => e.process.clone(),
            _ => return,
        }
    };
    tracing::warn!(executor = %ekey, "executor did not subscribe in time; killing it");
    if let Some(process) = process {
        process.signal_group(Signal::SIGKILL);
    }
}

/// The executor is gone: its unfinished tasks end with it.
fn terminated(shared: &Shared, ekey: &str, container_id: &str, message: String, reason: Reason) {
    let keys: Vec<(String, bool)> = {
        let mut st = shared.lock();
        if st
            .executors
            .get(ekey)
            .is_some_and(|e| e.container_id == container_id)
        {
            st.executors.remove(ekey);
        }
        st.runs
            .iter()
            .filter(|(k, r)| {
                !k.starts_with("completed::")
                    && r.container_id == container_id
                    && !TaskState::is_terminal(r.state)
            })
            .map(|(k, r)| (k.clone(), r.killing))
            .collect()
    };
    shared.executor_forget(ekey);
    tracing::info!(executor = %ekey, tasks = keys.len(), %message, "executor ended");
    for (key, killing) in keys {
        if killing {
            shared.report(
                &key,
                TaskState::Killed,
                Some(message.clone()),
                None,
                Source::Agent,
            );
        } else {
            shared.report(
                &key,
                TaskState::Failed,
                Some(message.clone()),
                Some(reason),
                Source::Agent,
            );
        }
    }
}

/// Re-attaches to checkpointed executors that still run; the others' tasks have ended.
pub(super) fn recover(shared: &Shared) {
    let dir = shared.meta_dir().join("executors");
    let Ok(entries) = fs_err::read_dir(&dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().is_none_or(|x| x != "json") {
            continue;
        }
        let executor = match fs_err::read(&path).map(|b| serde_json::from_slice::<Executor>(&b)) {
            Ok(Ok(e)) => e,
            _ => {
                tracing::warn!(path = %path.display(), "unreadable executor checkpoint; ignoring it");
                continue;
            }
        };
        let ekey = executor.key();
        let container_id = executor.container_id.clone();
        match executor
            .process
            .clone()
            .filter(checkpoint::Process::is_running)
        {
            Some(process) => {
                tracing::info!(executor = %ekey, pid = process.pid, "re-attached to running executor; waiting for it to re-subscribe");
                shared.lock().executors.insert(ekey.clone(), executor);
                let shared = shared.clone();
                tokio::spawn(async move {
                    while process.is_running() {
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                    terminated(
                        &shared,
                        &ekey,
                        &container_id,
                        "Executor terminated".into(),
                        Reason::ExecutorTerminated,
                    );
                });
            }
            None => terminated(
                shared,
                &ekey,
                &container_id,
                "Executor terminated while the agent was down".into(),
                Reason::ExecutorTerminated,
            ),
        }
    }
}

/// KILL for a task under a custom executor: the executor kills it, unless it never got it.
pub(super) fn kill_task(shared: &Shared, task_key: &str, grace: Option<Duration>) {
    let never_sent = {
        let mut st = shared.lock();
        let Some(run) = st.runs.get_mut(task_key) else {
            return;
        };
        if TaskState::is_terminal(run.state) {
            return;
        }
        run.killing = true;
        let task_id = run.task.task_id.clone();
        let mut kill_policy = run.task.kill_policy.clone();
        if let Some(g) = grace {
            kill_policy
                .get_or_insert_with(Default::default)
                .grace_period = Some(api::DurationInfo {
                nanoseconds: g.as_nanos() as i64,
            });
        }
        let ekey = key(&run.framework_id(), &run.executor_id);
        let Some(executor) = st.executors.get_mut(&ekey) else {
            return;
        };
        let before = executor.backlog.len();
        executor
            .backlog
            .retain(|ev| ev.pointer("/launch/task/task_id/value") != Some(&json!(task_id.value)));
        let never_sent = executor.backlog.len() != before;
        if !never_sent {
            executor.deliver(
                json!({"type": "KILL", "kill": {"task_id": task_id, "kill_policy": kill_policy}}),
            );
        }
        never_sent
    };
    if never_sent {
        shared.report(
            task_key,
            TaskState::Killed,
            Some("Killed before delivery to the executor".into()),
            None,
            Source::Agent,
        );
    }
}

/// The scheduler acknowledged an update the executor sent: tell the executor.
pub(super) fn acknowledged(shared: &Shared, run: &Run, status: TaskStatus) {
    if status.source != Some(Source::Executor) {
        return;
    }
    let ekey = key(&run.framework_id(), &run.executor_id);
    if let Some(executor) = shared.lock().executors.get_mut(&ekey) {
        executor.deliver(json!({"type": "ACKNOWLEDGED", "acknowledged": {"task_id": status.task_id, "uuid": status.uuid}}));
    }
}

/// A framework message for an executor.
pub(super) fn message(shared: &Shared, framework_id: &str, executor_id: &str, data: String) {
    match shared
        .lock()
        .executors
        .get_mut(&key(framework_id, executor_id))
    {
        Some(executor) => executor.deliver(json!({"type": "MESSAGE", "message": {"data": data}})),
        None => {
            tracing::warn!(
                framework_id,
                executor_id,
                "message for an unknown executor dropped"
            )
        }
    }
}

/// The framework is gone: SHUTDOWN its executors, then kill what is left of them.
pub(super) fn shutdown_framework(shared: &Shared, framework_id: &str) {
    let processes: Vec<checkpoint::Process> = {
        let mut st = shared.lock();
        st.executors
            .values_mut()
            .filter(|e| self::framework_id(&e.framework) == framework_id)
            .filter_map(|e| {
                e.shutting_down = true;
                e.deliver(json!({"type": "SHUTDOWN"}));
                e.process.clone()
            })
            .collect()
    };
    for process in processes {
        tokio::spawn(async move {
            tokio::time::sleep(SHUTDOWN_GRACE).await;
            if process.signal_group(Signal::SIGTERM) {
                tokio::time::sleep(super::DEFAULT_KILL_GRACE).await;
                process.signal_group(Signal::SIGKILL);
            }
        });
    }
}

/// Ends every executor's event stream (the agent is stopping).
pub(super) fn disconnect_all(shared: &Shared) {
    for executor in shared.lock().executors.values_mut() {
        executor.stream = None;
    }
}

// === the executor HTTP API ===

fn bad(message: impl Into<String>) -> Response {
    text(StatusCode::BAD_REQUEST, message)
}

fn required<'a>(call: &'a Value, pointer: &str, what: &str) -> Result<&'a Value, Response> {
    call.pointer(pointer)
        .filter(|v| !v.is_null())
        .ok_or_else(|| {
            bad(format!(
                "Failed to validate executor::Call: Expecting '{what}' to be present"
            ))
        })
}

/// `POST /api/v1/executor`: SUBSCRIBE, UPDATE and MESSAGE calls from executors.
pub(super) async fn api(State(shared): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    match call(&shared, &headers, &body) {
        Ok(r) | Err(r) => r,
    }
}

fn call(shared: &Shared, headers: &HeaderMap, body: &Bytes) -> Result<Response, Response> {
    check_json(headers)?;
    let call: Value = serde_json::from_slice(body)
        .ok()
        .filter(Value::is_object)
        .ok_or_else(|| bad("Failed to parse body into Call protobuf: not a JSON object"))?;
    let kind = required(&call, "/type", "type")?
        .as_str()
        .unwrap_or_default()
        .to_string();
    let id = |pointer: &str, what: &str| -> Result<String, Response> {
        let value = required(&call, pointer, what)?.as_str().unwrap_or_default();
        api::validate_id(value)
            .map_err(|e| bad(format!("Failed to validate executor::Call: '{what}': {e}")))?;
        Ok(value.to_string())
    };
    let fw = id("/framework_id/value", "framework_id")?;
    let ex = id("/executor_id/value", "executor_id")?;
    let ekey = key(&fw, &ex);
    if !shared.lock().executors.contains_key(&ekey) {
        let known_framework = shared.lock().runs.values().any(|r| r.framework_id() == fw);
        return Err(bad(if known_framework {
            "Executor cannot be found"
        } else {
            "Framework cannot be found"
        }));
    }
    match kind.as_str() {
        "SUBSCRIBE" => subscribe(shared, &ekey, &call),
        "UPDATE" => update(shared, &fw, &ex, &call),
        "MESSAGE" => {
            let data = required(&call, "/message/data", "message.data")?
                .as_str()
                .ok_or_else(|| bad("Failed to parse body into Call protobuf: 'message.data' must be a base64 string"))?
                .to_string();
            forward_message(shared, fw, ex, data);
            Ok(StatusCode::ACCEPTED.into_response())
        }
        other => Err(bad(format!(
            "Failed to validate executor::Call: unsupported call type '{other}'"
        ))),
    }
}

fn subscribe(shared: &Shared, ekey: &str, call: &Value) -> Result<Response, Response> {
    // Tasks the executor already runs (it re-subscribes after an agent restart): their
    // LAUNCH events must not be replayed.
    let known: Vec<Value> = call
        .pointer("/subscribe/unacknowledged_tasks")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|t| t.pointer("/task_id/value").cloned())
        .collect();
    let (tx, rx) = mpsc::channel(STREAM_BUFFER);
    let mut st = shared.lock();
    let agent_info = json!({
        "id": {"value": st.id.clone().unwrap_or_default()},
        "hostname": shared.host(),
        "port": shared.config.listen.port(),
        "resources": shared.config.resources.to_api(None),
    });
    let Some(executor) = st.executors.get_mut(ekey) else {
        return Err(bad("Executor cannot be found"));
    };
    let session = executor.stream.as_ref().map_or(0, |(s, _)| s + 1);
    let subscribed = json!({"type": "SUBSCRIBED", "subscribed": {
        "executor_info": executor.info,
        "framework_info": executor.framework,
        "agent_info": agent_info,
        "container_id": {"value": executor.container_id},
    }});
    let _ = tx.try_send(recordio::encode(subscribed.to_string().as_bytes()));
    executor.subscribed = true;
    executor.stream = Some((session, tx));
    let backlog = std::mem::take(&mut executor.backlog);
    for event in backlog {
        let replay = event
            .pointer("/launch/task/task_id/value")
            .is_some_and(|id| known.contains(id));
        if !replay {
            executor.deliver(event);
        }
    }
    let snapshot = executor.clone();
    drop(st);
    shared.executor_checkpoint(&snapshot);
    tracing::info!(executor = %ekey, "executor subscribed");
    let on_close = {
        let shared = shared.clone();
        let ekey = ekey.to_string();
        move || {
            if let Some(e) = shared.lock().executors.get_mut(&ekey) {
                if e.stream.as_ref().is_some_and(|(s, _)| *s == session) {
                    e.stream = None;
                }
            }
        }
    };
    Ok(stream_response(rx, on_close, None))
}

fn update(shared: &Shared, fw: &str, ex: &str, call: &Value) -> Result<Response, Response> {
    let status: TaskStatus =
        serde_json::from_value(required(call, "/update/status", "update.status")?.clone())
            .map_err(|e| {
                bad(format!(
                    "Failed to parse body into Call protobuf: 'update.status': {e}"
                ))
            })?;
    if status.uuid.as_deref().is_none_or(str::is_empty) {
        return Err(bad(
            "Failed to validate executor::Call: Expecting 'uuid' to be present",
        ));
    }
    if status.state == TaskState::Staging {
        return Err(bad(
            "Failed to validate executor::Call: Received TASK_STAGING from executor, which is reserved for the agent",
        ));
    }
    let task_key = format!("{fw}__{}", status.task_id.value);
    let owned = shared
        .lock()
        .runs
        .get(&task_key)
        .is_some_and(|r| r.custom && r.executor_id == ex);
    if !owned {
        return Err(bad(format!(
            "Task '{}' is not a task of executor '{ex}'",
            status.task_id.value
        )));
    }
    let task_id = status.task_id.value.clone();
    let status = TaskStatus {
        source: Some(Source::Executor),
        ..status
    };
    if !shared.enqueue(&task_key, status) {
        return Err(bad(format!(
            "Task '{task_id}' has already reached a terminal state"
        )));
    }
    Ok(StatusCode::ACCEPTED.into_response())
}

/// Relays an executor's message to its scheduler through the master.
fn forward_message(shared: &Shared, fw: String, ex: String, data: String) {
    let (master, agent_id) = {
        let st = shared.lock();
        (st.master, st.id.clone())
    };
    let (Some(master), Some(agent_id)) = (master, agent_id) else {
        tracing::warn!(framework_id = %fw, "executor message dropped: no master");
        return;
    };
    let call = AgentCall::Message {
        agent_id: Id::new(agent_id),
        framework_id: Id::new(fw),
        executor_id: Id::new(ex),
        data,
    };
    let client = shared.client.clone();
    tokio::spawn(async move {
        if let Err(e) = client
            .post(format!("http://{master}{AGENT_API_PATH}"))
            .timeout(Duration::from_secs(5))
            .json(&call)
            .send()
            .await
        {
            tracing::warn!(error = %e, "executor message not delivered");
        }
    });
}
