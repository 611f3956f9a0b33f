//! Custom executors.
//!
//! A task whose `executor` carries a command runs under that executor, not the built-in
//! command executor. The agent starts the executor's command once per (framework, executor
//! id), in its own container (sandbox and process group), with `MESOS_AGENT_ENDPOINT` and
//! friends in its environment. The executor SUBSCRIBEs ([`endpoint`]) and holds a RecordIO stream
//! of [`Event`]s: SUBSCRIBED, then LAUNCH for each of its tasks, KILL, ACKNOWLEDGED, MESSAGE
//! and SHUTDOWN. It reports task states with UPDATE calls, which the agent checkpoints and
//! delivers to the master like its own (at least once, in order); once the scheduler
//! acknowledges one, the executor gets ACKNOWLEDGED with the update's uuid.
//!
//! Events for an executor that is not connected (not yet subscribed, or reconnecting after an
//! agent restart) wait in its backlog. An executor that exits, or never subscribes within the
//! registration timeout, takes its unfinished tasks with it: TASK_FAILED with
//! REASON_EXECUTOR_TERMINATED (TASK_KILLED for tasks being killed).

pub(crate) mod endpoint;

use std::path::PathBuf;
use std::time::Duration;

use axum::body::Bytes;
use nix::sys::signal::Signal;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use super::checkpoint::Process;
use super::containerizer::{self, Exited, Handle, Launch, Waited};
use super::state::{is_completed, Run, Shared};
use super::{sandbox, tasks};
use crate::api::{self, ExecutorInfo, FrameworkInfo, Reason, Source, TaskInfo, TaskState};
use crate::api::{KillPolicy, TaskStatus};
use crate::recordio;
use dcos_mesos_api::executor::{self as wire, Event};

/// How long a started executor has to subscribe (Mesos' `executor_registration_timeout`).
const REGISTRATION_TIMEOUT: Duration = Duration::from_secs(60);
/// How long an executor told to SHUTDOWN has before its process group is killed.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// A custom executor, checkpointed under `meta/executors/`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Executor {
    framework: FrameworkInfo,
    info: ExecutorInfo,
    container_id: String,
    sandbox: PathBuf,
    pid: Option<u32>,
    /// The process `pid` names (see [`Process`]); never signalled without it.
    #[serde(default)]
    process: Option<Process>,
    /// Events waiting for the executor to (re-)subscribe.
    backlog: Vec<Event>,
    /// Whether it has subscribed at least once.
    subscribed: bool,
    /// SHUTDOWN was sent; no new tasks go to it.
    shutting_down: bool,
    /// The open event stream, if connected: its session number and sender.
    #[serde(skip)]
    stream: Option<(u64, mpsc::Sender<Bytes>)>,
}

impl Executor {
    /// `<framework>__<executor>`, its key among the executors and its checkpoint's name.
    pub(crate) fn key(&self) -> String {
        key(&framework_id(&self.framework), &self.info.executor_id.value)
    }

    /// Its container, as the containerizer knows it.
    fn handle(&self) -> Handle {
        Handle {
            container_id: self.container_id.clone(),
            pid: self.pid,
            process: self.process.clone(),
        }
    }

    /// Sends an event now if connected, else keeps it for the next subscription.
    fn deliver(&mut self, event: Event) {
        if let Some((_, tx)) = &self.stream {
            let record = recordio::encode(&serde_json::to_vec(&event).unwrap_or_default());
            match tx.try_send(record) {
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
pub(crate) fn is_custom(task: &TaskInfo) -> bool {
    task.executor
        .as_ref()
        .is_some_and(|e| e.command.is_some() && e.kind.as_deref() != Some("DEFAULT"))
}

/// A new executor for `framework`, in a fresh sandbox; why not if its ids are refused.
fn create(
    shared: &Shared,
    agent_id: &str,
    framework: &FrameworkInfo,
    info: &ExecutorInfo,
) -> Result<Executor, String> {
    let container_id = uuid::Uuid::new_v4().to_string();
    let sandbox = sandbox::sandbox_dir(
        &shared.config.work_dir,
        agent_id,
        &framework_id(framework),
        &info.executor_id.value,
        &container_id,
    )
    .map_err(|e| e.to_string())?;
    Ok(Executor {
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
    })
}

/// Runs a task under its custom executor, starting the executor if it is not running.
pub(crate) fn launch(shared: &Shared, framework: FrameworkInfo, task: TaskInfo) {
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
        match create(shared, &agent_id, &framework, &info) {
            Ok(executor) => st.executors.insert(ekey.clone(), executor),
            Err(why) => {
                drop(st);
                let executor_id = info.executor_id.value;
                return tasks::refuse(shared, framework, task, &executor_id, &why);
            }
        };
    }
    let Some(executor) = st.executors.get_mut(&ekey) else {
        return;
    };
    let mut run = Run::staging(
        framework,
        task.clone(),
        info.executor_id.value.clone(),
        executor.container_id.clone(),
        executor.sandbox.clone(),
    );
    run.pid = executor.pid;
    run.process = executor.process.clone();
    run.custom = true;
    executor.deliver(Event::Launch(Box::new(wire::Launch { task })));
    let executor = executor.clone();
    st.runs.insert(task_key, run.clone());
    drop(st);
    shared.checkpoint(&run);
    shared.checkpoint_executor(&executor);
    if fresh {
        tokio::spawn(start(shared.clone(), executor));
    }
}

/// Starts an executor's container and watches it until it exits.
async fn start(shared: Shared, executor: Executor) {
    let ekey = executor.key();
    let container_id = executor.container_id.clone();
    let command = executor.info.command.clone().unwrap_or_default();
    let (agent_id, fw, endpoint) = (
        shared.agent_id(),
        framework_id(&executor.framework),
        shared.endpoint(),
    );
    let place = shared.place(
        &agent_id,
        &fw,
        &executor.info.executor_id.value,
        &executor.sandbox,
        &endpoint,
    );
    let launch = Launch {
        container_id: &container_id,
        framework: &executor.framework,
        command: &command,
        task: None,
        sandbox: &executor.sandbox,
        env: sandbox::executor_env(&place, &executor.info),
    };
    let launched = match shared.containerizer.launch(launch).await {
        Ok(launched) => launched,
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
    started(&shared, &ekey, launched.pid, launched.process.clone());
    tracing::info!(executor = %ekey, pid = launched.pid, "executor started");
    tokio::spawn(registration_deadline(
        shared.clone(),
        ekey.clone(),
        container_id.clone(),
    ));
    watch(shared, executor, launched.exited).await;
}

/// Records the started executor's process on it and its tasks, and checkpoints them.
fn started(shared: &Shared, ekey: &str, pid: Option<u32>, process: Option<Process>) {
    let (executor, runs) = {
        let mut st = shared.lock();
        let Some(executor) = st.executors.get_mut(ekey) else {
            return;
        };
        executor.pid = pid;
        executor.process = process.clone();
        let executor = executor.clone();
        let mut runs = Vec::new();
        for run in st
            .runs
            .values_mut()
            .filter(|r| r.container_id == executor.container_id)
        {
            run.pid = pid;
            run.process = process.clone();
            runs.push(run.clone());
        }
        (executor, runs)
    };
    shared.checkpoint_executor(&executor);
    for run in &runs {
        shared.checkpoint(run);
    }
}

/// Waits for an executor's end, destroys its container, and ends its tasks.
async fn watch(shared: Shared, executor: Executor, exited: Exited) {
    let waited: Waited = exited.await;
    let message = match waited.status {
        Some(Ok(s)) => format!("Executor terminated ({s})"),
        Some(Err(e)) => format!("Executor terminated: {e}"),
        None => "Executor terminated".into(),
    };
    let (ekey, container_id) = (executor.key(), executor.container_id.clone());
    containerizer::destroy(
        &shared.containerizer,
        container_id.clone(),
        executor.sandbox,
    )
    .await;
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
    let container = {
        let st = shared.lock();
        match st.executors.get(&ekey) {
            Some(e) if e.container_id == container_id && !e.subscribed => e.handle(),
            _ => return,
        }
    };
    tracing::warn!(executor = %ekey, "executor did not subscribe in time; killing it");
    let _ = shared.containerizer.signal(&container, Signal::SIGKILL);
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
                !is_completed(k)
                    && r.container_id == container_id
                    && !TaskState::is_terminal(r.state)
            })
            .map(|(k, r)| (k.clone(), r.killing))
            .collect()
    };
    shared.forget_executor(ekey);
    tracing::info!(executor = %ekey, tasks = keys.len(), %message, "executor ended");
    for (key, killing) in keys {
        let (state, reason) = match killing {
            true => (TaskState::Killed, None),
            false => (TaskState::Failed, Some(reason)),
        };
        shared.report(&key, state, Some(message.clone()), reason, Source::Agent);
    }
}

/// Re-attaches to checkpointed executors that still run; the others' tasks have ended.
pub(crate) fn recover(shared: &Shared) {
    for executor in shared.load_executors() {
        let ekey = executor.key();
        match shared.containerizer.reattach(&executor.handle()) {
            Some(exited) => {
                tracing::info!(executor = %ekey, pid = executor.pid, "re-attached to running executor; waiting for it to re-subscribe");
                shared.lock().executors.insert(ekey, executor.clone());
                tokio::spawn(watch(shared.clone(), executor, exited));
            }
            None => {
                shared
                    .containerizer
                    .destroy(&executor.container_id, &executor.sandbox);
                terminated(
                    shared,
                    &ekey,
                    &executor.container_id,
                    "Executor terminated while the agent was down".into(),
                    Reason::ExecutorTerminated,
                );
            }
        }
    }
}

/// KILL for a task under a custom executor: the executor kills it, unless it never got it.
pub(crate) fn kill_task(shared: &Shared, task_key: &str, grace: Option<Duration>) {
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
                .get_or_insert_with(KillPolicy::default)
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
            .retain(|event| event.launched_task() != Some(&task_id));
        let never_sent = executor.backlog.len() != before;
        if !never_sent {
            executor.deliver(Event::Kill(wire::Kill {
                task_id,
                kill_policy,
            }));
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
pub(crate) fn acknowledged(shared: &Shared, run: &Run, status: TaskStatus) {
    if status.source != Some(Source::Executor) {
        return;
    }
    let ekey = key(&run.framework_id(), &run.executor_id);
    if let Some(executor) = shared.lock().executors.get_mut(&ekey) {
        executor.deliver(Event::Acknowledged(wire::Acknowledged {
            task_id: status.task_id,
            uuid: status.uuid.unwrap_or_default(),
        }));
    }
}

/// A framework message for an executor.
pub(crate) fn message(shared: &Shared, framework_id: &str, executor_id: &str, data: String) {
    match shared
        .lock()
        .executors
        .get_mut(&key(framework_id, executor_id))
    {
        Some(executor) => executor.deliver(Event::Message(wire::Message { data })),
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
pub(crate) fn shutdown_framework(shared: &Shared, framework_id: &str) {
    let containers: Vec<Handle> = {
        let mut st = shared.lock();
        st.executors
            .values_mut()
            .filter(|e| self::framework_id(&e.framework) == framework_id)
            .map(|e| {
                e.shutting_down = true;
                e.deliver(Event::Shutdown);
                e.handle()
            })
            .collect()
    };
    for container in containers {
        let containerizer = shared.containerizer.clone();
        tokio::spawn(async move {
            tokio::time::sleep(SHUTDOWN_GRACE).await;
            if containerizer.signal(&container, Signal::SIGTERM).is_ok() {
                tokio::time::sleep(tasks::DEFAULT_KILL_GRACE).await;
                let _ = containerizer.signal(&container, Signal::SIGKILL);
            }
        });
    }
}

/// Ends every executor's event stream (the agent is stopping).
pub(crate) fn disconnect_all(shared: &Shared) {
    for executor in shared.lock().executors.values_mut() {
        executor.stream = None;
    }
}
